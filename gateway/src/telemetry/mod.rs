//! Observability: logs, traces and metrics (docs/OPERATIONS.md).
//!
//! - **Logs** are `tracing` events, printed human-readable or as JSON lines (`--log-format`), each
//!   with the fields of the spans it happened in, so every line of an exchange names its request id
//!   and exchange id.
//! - **Traces** are the same `tracing` spans, exported as OpenTelemetry spans over OTLP/HTTP
//!   (protobuf) when a collector is configured (`[telemetry] endpoint` or the standard `OTEL_*`
//!   variables), and off otherwise. W3C trace context (`traceparent`) crosses every hop, so one
//!   exchange is one trace: application, consumer gateway, provider gateway
//!   ([`crate::transport::observe`] opens the root spans and carries the context).
//! - **Metrics** live in a small in-house registry ([`metrics`]) served as Prometheus text on the
//!   admin listener (`GET /metrics`), and are also exported over OTLP when a collector is configured,
//!   each instrument with its UCUM unit; the process's own use of CPU, memory and files is read from
//!   `/proc` at each scrape ([`process`]).
//!
//! Span and metric attributes carry exchange ids, dataset names, purposes, department ids and
//! outcome codes; never parameters, officers or any other personal data. Libraries that would log
//! such data below warnings are capped whatever `RUST_LOG` says ([`caps`]).

pub mod caps;
pub mod metrics;
mod otlp;
pub mod process;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use crate::config::TelemetrySection;
pub use caps::{LibraryLogs, UNSAFE_DEBUG_LOGS};
pub use metrics::Metrics;

/// The only OTLP protocol built in (OTLP/HTTP with protobuf bodies, port 4318 by convention).
pub const PROTOCOL: &str = "http/protobuf";
/// Path appended to a base endpoint for spans (OTLP/HTTP specification).
pub const TRACES_PATH: &str = "/v1/traces";
/// Path appended to a base endpoint for metrics (OTLP/HTTP specification).
pub const METRICS_PATH: &str = "/v1/metrics";
/// How often metrics are exported over OTLP unless configured otherwise.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(60);
/// The `service.name` resource attribute unless configured otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "causeway";

/// Why telemetry could not be set up as configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A setting (from the config or an `OTEL_*` variable) has a value we cannot use.
    #[error("{setting}: {problem}")]
    Setting {
        /// `[telemetry] field` or the variable's name.
        setting: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The collector's CA bundle cannot be used.
    #[error("[telemetry] ca = {path}: {problem}")]
    Ca {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The OTLP exporter could not be built.
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
    /// A global `tracing` subscriber is already installed.
    #[error("cannot install the log and trace subscriber: {0}")]
    Subscriber(String),
}

fn setting(setting: &str, problem: impl Into<String>) -> TelemetryError {
    TelemetryError::Setting {
        setting: setting.to_owned(),
        problem: problem.into(),
    }
}

/// How to sample new traces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Record every trace.
    Always,
    /// Record none (a sampled parent is still honoured when `parent_based`).
    Never {
        /// Follow the caller's sampling decision.
        parent_based: bool,
    },
    /// Record this share of new traces.
    Ratio {
        /// 0.0 to 1.0.
        ratio: f64,
        /// Follow the caller's sampling decision.
        parent_based: bool,
    },
}

impl Sampling {
    fn sampler(self) -> Sampler {
        let (root, parent_based) = match self {
            Sampling::Always => (Sampler::AlwaysOn, true),
            Sampling::Never { parent_based } => (Sampler::AlwaysOff, parent_based),
            Sampling::Ratio {
                ratio,
                parent_based,
            } => (Sampler::TraceIdRatioBased(ratio), parent_based),
        };
        if parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }
}

/// Telemetry settings after merging `[telemetry]` with the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPlan {
    /// Full URL spans are posted to, or `None`: no trace export.
    pub traces: Option<String>,
    /// Full URL metrics are posted to, or `None`: no metric export.
    pub metrics: Option<String>,
    /// Trace sampling.
    pub sampling: Sampling,
    /// `service.name`.
    pub service_name: String,
    /// CA bundle for `https://` collectors.
    pub ca: Option<PathBuf>,
    /// Metric export interval.
    pub metrics_interval: Duration,
}

impl ExportPlan {
    /// Merge `section` with the environment as `env` reads it (`std::env::var` in production; a
    /// map in tests). The config wins over the environment; `OTEL_SDK_DISABLED=true` turns every
    /// export off, and `OTEL_TRACES_EXPORTER=none` / `OTEL_METRICS_EXPORTER=none` one of them.
    pub fn resolve(
        section: &TelemetrySection,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ExportPlan, TelemetryError> {
        let env = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let protocol = section
            .protocol
            .clone()
            .map(|p| ("[telemetry] protocol", p))
            .or_else(|| {
                env("OTEL_EXPORTER_OTLP_PROTOCOL").map(|p| ("OTEL_EXPORTER_OTLP_PROTOCOL", p))
            });
        if let Some((name, protocol)) = protocol {
            if protocol != PROTOCOL {
                return Err(setting(
                    name,
                    format!("\"{protocol}\" is not supported; causeway speaks OTLP over \"{PROTOCOL}\" only (a collector's port 4318)"),
                ));
            }
        }
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = |signal_var: &str, path: &str, exporter_var: &str| {
            if disabled || env(exporter_var).is_some_and(|v| v.eq_ignore_ascii_case("none")) {
                return Ok(None);
            }
            let (name, url) = match (&section.endpoint, env(signal_var)) {
                (Some(base), _) => ("[telemetry] endpoint", join(base, path)),
                (None, Some(url)) => (signal_var, url),
                (None, None) => match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
                    Some(base) => ("OTEL_EXPORTER_OTLP_ENDPOINT", join(&base, path)),
                    None => return Ok(None),
                },
            };
            check_url(name, &url)?;
            Ok(Some(url))
        };
        let traces = endpoint(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            TRACES_PATH,
            "OTEL_TRACES_EXPORTER",
        )?;
        let metrics = endpoint(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            METRICS_PATH,
            "OTEL_METRICS_EXPORTER",
        )?;
        let sampling = match section.sampling {
            Some(ratio) if (0.0..=1.0).contains(&ratio) => Sampling::Ratio {
                ratio,
                parent_based: true,
            },
            Some(ratio) => {
                return Err(setting(
                    "[telemetry] sampling",
                    format!("{ratio} is not a share between 0.0 and 1.0"),
                ))
            }
            None => sampling_from_env(&env)?,
        };
        let metrics_interval = match (
            section.metrics_interval_secs,
            env("OTEL_METRIC_EXPORT_INTERVAL"),
        ) {
            (Some(0), _) => {
                return Err(setting(
                    "[telemetry] metrics_interval_secs",
                    "must be at least 1",
                ))
            }
            (Some(secs), _) => Duration::from_secs(secs),
            (None, Some(ms)) => match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(setting(
                        "OTEL_METRIC_EXPORT_INTERVAL",
                        format!("\"{ms}\" is not a positive number of milliseconds"),
                    ))
                }
            },
            (None, None) => DEFAULT_METRICS_INTERVAL,
        };
        Ok(ExportPlan {
            traces,
            metrics,
            sampling,
            service_name: section
                .service_name
                .clone()
                .or_else(|| env("OTEL_SERVICE_NAME"))
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
            ca: section.ca.clone(),
            metrics_interval,
        })
    }

    /// [`ExportPlan::resolve`] against the process environment.
    pub fn from_env(section: &TelemetrySection) -> Result<ExportPlan, TelemetryError> {
        Self::resolve(section, |name| std::env::var(name).ok())
    }

    fn resource(&self, department: Option<&str>) -> Resource {
        let mut resource = Resource::builder_empty().with_service_name(self.service_name.clone());
        if let Some(department) = department {
            resource = resource
                .with_attribute(KeyValue::new("causeway.department", department.to_owned()));
        }
        resource.build()
    }

    fn client(&self) -> Result<otlp::CollectorClient, TelemetryError> {
        otlp::CollectorClient::new(self.ca.as_deref())
    }

    /// A meter provider exporting to the metrics endpoint, or `None` when metric export is off.
    /// Each gateway keeps its own (several run in one process in tests and the demo).
    pub fn meter_provider(
        &self,
        department: Option<&str>,
    ) -> Result<Option<SdkMeterProvider>, TelemetryError> {
        let Some(url) = &self.metrics else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(self.client()?)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(self.metrics_interval)
            .build();
        Ok(Some(
            SdkMeterProvider::builder()
                .with_reader(reader)
                .with_resource(self.resource(department))
                .build(),
        ))
    }

    fn tracer_provider(
        &self,
        department: Option<&str>,
    ) -> Result<Option<SdkTracerProvider>, TelemetryError> {
        let Some(url) = &self.traces else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(self.client()?)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok(Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(self.sampling.sampler())
                .with_resource(self.resource(department))
                .build(),
        ))
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

fn check_url(name: &str, url: &str) -> Result<(), TelemetryError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| setting(name, format!("\"{url}\" is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(setting(
            name,
            format!("\"{url}\" must be an http:// or https:// URL with a host"),
        )),
    }
}

fn sampling_from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Sampling, TelemetryError> {
    let ratio = || -> Result<f64, TelemetryError> {
        match env("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(arg) => match arg.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(setting(
                    "OTEL_TRACES_SAMPLER_ARG",
                    format!("\"{arg}\" is not a share between 0.0 and 1.0"),
                )),
            },
        }
    };
    Ok(match env("OTEL_TRACES_SAMPLER").as_deref() {
        None | Some("parentbased_always_on") | Some("always_on") => Sampling::Always,
        Some("always_off") => Sampling::Never {
            parent_based: false,
        },
        Some("parentbased_always_off") => Sampling::Never { parent_based: true },
        Some("traceidratio") => Sampling::Ratio {
            ratio: ratio()?,
            parent_based: false,
        },
        Some("parentbased_traceidratio") => Sampling::Ratio {
            ratio: ratio()?,
            parent_based: true,
        },
        Some(other) => {
            return Err(setting(
                "OTEL_TRACES_SAMPLER",
                format!("\"{other}\" is not supported; use always_on, always_off, traceidratio or their parentbased_ forms"),
            ))
        }
    })
}

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the fields of every enclosing span.
    Json,
}

/// What `RUST_LOG` is when unset: warnings from libraries, Causeway's own lines from `info`.
pub const DEFAULT_LOG_FILTER: &str = "warn,causeway=info";

/// The demo's default: as [`DEFAULT_LOG_FILTER`] without the access log, whose lines would bury
/// the tour's own table of exchanges (`RUST_LOG=warn,causeway=info` shows them).
pub const DEMO_LOG_FILTER: &str = "warn,causeway=info,causeway::access=warn";

/// The process's log and trace pipeline: the global `tracing` subscriber, and the OTLP span
/// exporter when one is configured. Call [`Tracing::shutdown`] before exiting so the last spans
/// leave.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// Install the global subscriber: logs to stderr filtered by `RUST_LOG` (default
    /// `default_filter`, e.g. [`DEFAULT_LOG_FILTER`]) with library targets capped at warnings unless
    /// [`UNSAFE_DEBUG_LOGS`] is set (then a warning says so), and, when `plan.traces` is set,
    /// Causeway's own spans exported over OTLP ([`caps`]). `department` becomes the
    /// `causeway.department` resource attribute (one gateway per process).
    pub fn install(
        format: LogFormat,
        plan: &ExportPlan,
        department: Option<&str>,
        default_filter: &str,
    ) -> Result<Tracing, TelemetryError> {
        let rust_log = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
        let library_logs = LibraryLogs::from_env();
        // Colour only for a person at a terminal: never escape codes in a file or a journal.
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        let fmt = match format {
            LogFormat::Text => fmt.boxed(),
            LogFormat::Json => fmt.json().boxed(),
        };
        let provider = plan.tracer_provider(department)?;
        // Spans are exported whatever RUST_LOG says about log lines.
        let otel = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("causeway"))
                .with_filter(caps::exported())
        });
        tracing_subscriber::registry()
            .with(fmt.with_filter(library_logs.filter(rust_log)))
            .with(otel)
            .try_init()
            .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
        if library_logs == LibraryLogs::Uncapped {
            if tracing::enabled!(tracing::Level::WARN) {
                tracing::warn!("{}", caps::UNSAFE_WARNING);
            } else {
                // RUST_LOG hides warnings, not necessarily every library line: say it anyway.
                eprintln!("warning: {}", caps::UNSAFE_WARNING);
            }
        }
        Ok(Tracing { provider })
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Send every finished span now; blocks until the collector answered or gave up.
    pub fn force_flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "could not flush spans to the collector");
            }
        }
    }

    /// Flush and stop the exporter; blocks (call it outside async code, or in `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "could not flush the last spans to the collector");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn plan(
        section: &TelemetrySection,
        env: &[(&str, &str)],
    ) -> Result<ExportPlan, TelemetryError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ExportPlan::resolve(section, |name| env.get(name).cloned())
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        let p = plan(&TelemetrySection::default(), &[]).unwrap();
        assert_eq!((p.traces, p.metrics), (None, None));
        assert_eq!(p.sampling, Sampling::Always);
        assert_eq!(p.service_name, "causeway");
    }

    #[test]
    fn config_endpoint_is_a_base_and_wins_over_env() {
        let section = TelemetrySection {
            endpoint: Some("http://collector:4318/".into()),
            ..Default::default()
        };
        let p = plan(
            &section,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4318")],
        )
        .unwrap();
        assert_eq!(p.traces.as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(
            p.metrics.as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
    }

    #[test]
    fn env_endpoints_follow_the_otel_rules() {
        let p = plan(
            &TelemetrySection::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9999/custom"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("OTEL_SERVICE_NAME", "tax-gw"),
            ],
        )
        .unwrap();
        assert_eq!(p.traces.as_deref(), Some("http://t:9999/custom"));
        assert_eq!(p.metrics.as_deref(), Some("https://c:4318/v1/metrics"));
        assert_eq!(
            p.sampling,
            Sampling::Ratio {
                ratio: 0.25,
                parent_based: true
            }
        );
        assert_eq!(p.service_name, "tax-gw");
    }

    #[test]
    fn disabled_and_none_turn_exports_off() {
        let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")];
        let p = plan(
            &TelemetrySection::default(),
            &[env[0], ("OTEL_SDK_DISABLED", "true")],
        )
        .unwrap();
        assert_eq!((p.traces, p.metrics), (None, None));
        let p = plan(
            &TelemetrySection::default(),
            &[env[0], ("OTEL_METRICS_EXPORTER", "none")],
        )
        .unwrap();
        assert!(p.traces.is_some() && p.metrics.is_none());
    }

    #[test]
    fn unusable_settings_are_named() {
        let grpc = TelemetrySection {
            protocol: Some("grpc".into()),
            ..Default::default()
        };
        let e = plan(&grpc, &[]).unwrap_err().to_string();
        assert!(e.starts_with("[telemetry] protocol:"), "{e}");
        let e = plan(
            &TelemetrySection::default(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT:"), "{e}");
        let ratio = TelemetrySection {
            sampling: Some(1.5),
            ..Default::default()
        };
        assert!(plan(&ratio, &[]).is_err());
        assert!(plan(
            &TelemetrySection::default(),
            &[("OTEL_TRACES_SAMPLER", "jaeger_remote")]
        )
        .is_err());
    }
}
