//! Observability end to end: one exchange is one trace across both gateways (over HTTPS and over
//! QUIC) whose HTTP spans follow OpenTelemetry's semantic conventions and whose status is Error only
//! for failures, `/metrics` is valid Prometheus text whose counters follow traffic (with the build,
//! the process and Unix-seconds timestamps), metrics exported over OTLP carry their units, and
//! `/readyz` says "not ready" (503) when the ledger cannot commit or the policy files do not load.
//!
//! Traces are collected by an OTLP/HTTP receiver running in the test (protobuf bodies decoded with
//! opentelemetry-proto). Every gateway of the test process exports through the one global
//! subscriber; each trace test tells its own spans apart by the trace id it sends as the
//! application.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway::telemetry::{ExportPlan, LogFormat, TelemetrySection, Tracing};
use causeway::transport::Transport;
use causeway_ledger::entry::{Entry, Kind};
use causeway_ledger::LedgerError;
use causeway_tests::{get_text, Federation};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::{json, Value};

const PROVIDER: &str = "civil-registry";
const CONSUMER: &str = "social-welfare";
/// OTLP `SpanKind` values.
const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;
/// OTLP `Status.code` values.
const STATUS_UNSET: i32 = 0;
const STATUS_ERROR: i32 = 2;
/// Longest wait for something that happens in the background (export, reload).
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The in-test OTLP/HTTP receiver.

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    /// OTLP span kind: 2 server, 3 client.
    kind: i32,
    attributes: BTreeMap<String, String>,
    /// Every attribute value of every event of the span.
    event_values: Vec<String>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    status: i32,
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Metric names received over OTLP, by `causeway.department`.
    metrics: HashMap<String, Vec<String>>,
    /// The unit each metric name arrived with.
    units: HashMap<String, String>,
}

struct Receiver {
    url: String,
    received: Arc<Mutex<Received>>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn accept(received: &Mutex<Received>, path: &str, body: &[u8]) -> u16 {
    let mut received = received.lock().unwrap();
    match path {
        "/v1/traces" => {
            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                return 400;
            };
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        received.spans.push(ReceivedSpan {
                            trace_id: hex::encode(&span.trace_id),
                            span_id: hex::encode(&span.span_id),
                            parent: hex::encode(&span.parent_span_id),
                            name: span.name.clone(),
                            kind: span.kind,
                            attributes: attributes(&span.attributes),
                            event_values: span
                                .events
                                .iter()
                                .flat_map(|e| e.attributes.iter().map(|kv| text(&kv.value)))
                                .collect(),
                            status: span.status.as_ref().map_or(0, |s| s.code),
                        });
                    }
                }
            }
            200
        }
        "/v1/metrics" => {
            let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
                return 400;
            };
            for resource in request.resource_metrics {
                let department = resource
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .and_then(|a| a.get("causeway.department").cloned())
                    .unwrap_or_default();
                for scope in resource.scope_metrics {
                    for metric in scope.metrics {
                        received
                            .units
                            .insert(metric.name.clone(), metric.unit.clone());
                        received
                            .metrics
                            .entry(department.clone())
                            .or_default()
                            .push(metric.name);
                    }
                }
            }
            200
        }
        _ => 404,
    }
}

/// A collector on 127.0.0.1:0, on its own thread and runtime so that a test blocking on a flush
/// never starves it.
fn start_receiver() -> Receiver {
    let received = Arc::new(Mutex::new(Received::default()));
    let (bound, address) = std::sync::mpsc::channel::<SocketAddr>();
    let shared = received.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("receiver binds");
            bound
                .send(listener.local_addr().expect("address"))
                .expect("test waits");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let shared = shared.clone();
                            async move {
                                let path = request.uri().path().to_owned();
                                let body = request.into_body().collect().await?.to_bytes();
                                let status = accept(&shared, &path, &body);
                                Ok::<_, hyper::Error>(
                                    http::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/x-protobuf")
                                        .body(Full::new(Bytes::new()))
                                        .expect("response builds"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    let addr = address.recv().expect("receiver started");
    Receiver {
        url: format!("http://{addr}"),
        received,
    }
}

/// The receiver and the process's trace pipeline exporting to it, set up once per test process.
fn telemetry() -> &'static (Receiver, Tracing) {
    static TELEMETRY: OnceLock<(Receiver, Tracing)> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let receiver = start_receiver();
        let section = TelemetrySection {
            endpoint: Some(receiver.url.clone()),
            ..TelemetrySection::default()
        };
        let plan = ExportPlan::resolve(&section, |_| None).expect("plan");
        let tracing = Tracing::install(
            LogFormat::Text,
            &plan,
            None,
            causeway::telemetry::DEFAULT_LOG_FILTER,
        )
        .expect("subscriber installs");
        assert!(tracing.exporting());
        (receiver, tracing)
    })
}

/// The harness gives each federation free ports when it lays it out and the gateways bind them
/// later; federations built in parallel in one process can collide, so these tests take turns.
async fn one_federation_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Poll `probe` until it returns `Some`; fail after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span expected: {spans:#?}");
    found[0]
}

async fn one_exchange_is_one_trace(transport: Transport) {
    let (receiver, _) = telemetry();
    let _turn = one_federation_at_a_time().await;
    let mut fed = Federation::start_with(transport)
        .await
        .expect("federation starts");
    // The application's own span: a fresh trace id per test, so tests sharing the receiver never
    // see each other's spans.
    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let app_span = &uuid::Uuid::now_v7().simple().to_string()[16..];
    let traceparent = format!("00-{trace_id}-{app_span}-01");
    let (status, answer) = fed
        .request_with_headers(
            CONSUMER,
            PROVIDER,
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
            &[("traceparent", traceparent.as_str())],
        )
        .await
        .expect("request");
    assert_eq!(status, 200, "{answer}");
    fed.assert_carried_by_transport(CONSUMER);
    let exchange = answer["exchange"].as_str().expect("exchange id").to_owned();

    let spans = eventually("both gateways' spans at the collector", || async {
        tokio::task::spawn_blocking(|| telemetry().1.force_flush())
            .await
            .expect("flush");
        let spans: Vec<ReceivedSpan> = receiver
            .received
            .lock()
            .unwrap()
            .spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        let complete = ["client_request", "peer_send", "peer_request", "shape"]
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name));
        if !complete && std::env::var_os("CAUSEWAY_TEST_DEBUG").is_some() {
            eprintln!("{trace_id}: {spans:#?}");
        }
        complete.then_some(spans)
    })
    .await;

    // Consumer: the application's request, then the client span towards the provider.
    let client = find(&spans, "client_request");
    assert_eq!(client.parent, app_span, "child of the application's span");
    assert_eq!(client.kind, SPAN_KIND_SERVER);
    assert_eq!(client.attributes["exchange"], exchange);
    assert_eq!(client.attributes["peer"], PROVIDER);
    assert_eq!(client.attributes["outcome"], "ok");
    // OpenTelemetry HTTP semantic conventions, and no error status on success.
    assert_eq!(client.attributes["http.request.method"], "POST");
    assert_eq!(client.attributes["url.path"], "/v1/requests");
    assert_eq!(client.attributes["http.route"], "/v1/requests");
    assert_eq!(client.attributes["http.response.status_code"], "200");
    assert_eq!(client.attributes["network.protocol.name"], "http");
    assert_eq!(client.status, STATUS_UNSET, "{client:?}");
    let send = find(&spans, "peer_send");
    assert_eq!(send.parent, client.span_id);
    assert_eq!(send.kind, SPAN_KIND_CLIENT, "{send:?}");
    assert_eq!(send.attributes["http.request.method"], "POST");
    assert_eq!(send.attributes["http.route"], "/causeway/v1/exchange");
    assert_eq!(send.attributes["http.response.status_code"], "200");
    assert_eq!(send.attributes["server.address"], "127.0.0.1", "{send:?}");
    assert!(
        send.attributes["server.port"].parse::<u16>().is_ok(),
        "{send:?}"
    );
    assert_eq!(send.status, STATUS_UNSET, "{send:?}");
    // Provider: its root span is a child of the consumer's client span, through the wire.
    let provider = find(&spans, "peer_request");
    assert_eq!(provider.parent, send.span_id, "{spans:#?}");
    assert_eq!(provider.kind, SPAN_KIND_SERVER);
    assert_eq!(provider.attributes["transport"], transport.as_str());
    assert_eq!(provider.attributes["peer"], CONSUMER);
    assert_eq!(provider.attributes["exchange"], exchange);
    assert_eq!(provider.attributes["outcome"], "ok");
    assert_eq!(provider.attributes["http.request.method"], "POST");
    assert_eq!(provider.attributes["url.path"], "/causeway/v1/exchange");
    assert_eq!(provider.attributes["http.route"], "/causeway/v1/exchange");
    assert_eq!(provider.attributes["http.response.status_code"], "200");
    let (protocol, version) = match transport {
        Transport::Quic => ("causeway", "1"),
        _ => ("http", "2"),
    };
    assert_eq!(provider.attributes["network.protocol.name"], protocol);
    assert_eq!(provider.attributes["network.protocol.version"], version);
    assert_eq!(provider.status, STATUS_UNSET, "{provider:?}");
    assert!(!provider.attributes.contains_key("error.type"));
    // Every pipeline layer shows, nested as the layers are.
    let authenticate = find(&spans, "authenticate");
    assert_eq!(authenticate.parent, provider.span_id);
    let verify = find(&spans, "verify_envelope");
    assert_eq!(verify.parent, authenticate.span_id);
    let notarize = spans
        .iter()
        .find(|s| s.name == "notarize" && s.parent == verify.span_id)
        .expect("provider notarize span");
    let authorize = find(&spans, "authorize");
    assert_eq!(authorize.parent, notarize.span_id);
    assert_eq!(authorize.attributes["decision"], "allow");
    let fetch = find(&spans, "fetch");
    assert_eq!(fetch.parent, authorize.span_id);
    assert_eq!(fetch.attributes["dataset"], "residents");
    assert_eq!(find(&spans, "shape").parent, fetch.span_id);
    assert!(
        spans
            .iter()
            .any(|s| s.name == "notarize" && s.parent == client.span_id),
        "the consumer's notarization: {spans:#?}"
    );
    // No personal data anywhere in the trace: not the subject's id, not the officer.
    for span in &spans {
        for value in span.attributes.values().chain(&span.event_values) {
            assert!(
                !value.contains("D000042") && !value.contains("officer-1"),
                "personal data in span {}: {value}",
                span.name
            );
        }
    }
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exchange_is_one_trace_over_https() {
    one_exchange_is_one_trace(Transport::Https).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exchange_is_one_trace_over_quic() {
    one_exchange_is_one_trace(Transport::Quic).await;
}

/// Ask `civil-registry` as `tax-office` for `purpose` in a trace of its own; the answer's status
/// and, once they reached the collector, the trace's spans named in `wanted`.
async fn traced_request(
    fed: &Federation,
    purpose: &str,
    wanted: &[&str],
) -> (u16, Vec<ReceivedSpan>) {
    let (receiver, _) = telemetry();
    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let traceparent = format!(
        "00-{trace_id}-{}-01",
        &uuid::Uuid::now_v7().simple().to_string()[16..]
    );
    let (status, _) = fed
        .request_with_headers(
            "tax-office",
            PROVIDER,
            "residents",
            json!({"national_id": "D000042"}),
            purpose,
            &[("traceparent", traceparent.as_str())],
        )
        .await
        .expect("request");
    let spans = eventually("the trace's spans at the collector", || async {
        tokio::task::spawn_blocking(|| telemetry().1.force_flush())
            .await
            .expect("flush");
        let spans: Vec<ReceivedSpan> = receiver
            .received
            .lock()
            .unwrap()
            .spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        wanted
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
            .then_some(spans)
    })
    .await;
    (status, spans)
}

/// Span status follows OpenTelemetry's HTTP conventions: a denial (403) leaves the server spans
/// unset and marks the client span an error; a provider that cannot be reached makes the
/// consumer's answer a 502, an error on its server span, with the client span's error type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_status_is_error_for_failures_and_unset_for_denials() {
    let _turn = one_federation_at_a_time().await;
    let mut fed = Federation::start().await.expect("federation starts");

    let (status, spans) = traced_request(
        &fed,
        "benefit-eligibility",
        &["client_request", "peer_send", "peer_request"],
    )
    .await;
    assert_eq!(status, 403);
    for server in ["client_request", "peer_request"] {
        let span = find(&spans, server);
        assert_eq!(
            span.attributes["http.response.status_code"], "403",
            "{span:?}"
        );
        assert_eq!(span.status, STATUS_UNSET, "{span:?}");
    }
    let send = find(&spans, "peer_send");
    assert_eq!(
        send.attributes["http.response.status_code"], "403",
        "{send:?}"
    );
    assert_eq!(send.status, STATUS_ERROR, "{send:?}");
    assert_eq!(send.attributes["error.type"], "403", "{send:?}");

    fed.stop_dept(PROVIDER).await;
    let (status, spans) =
        traced_request(&fed, "tax-assessment", &["client_request", "peer_send"]).await;
    assert_eq!(status, 502);
    let client = find(&spans, "client_request");
    assert_eq!(client.attributes["http.response.status_code"], "502");
    assert_eq!(client.status, STATUS_ERROR, "{client:?}");
    assert_eq!(client.attributes["error.type"], "502");
    let failed: Vec<_> = spans.iter().filter(|s| s.name == "peer_send").collect();
    assert!(
        !failed.is_empty()
            && failed.iter().all(|s| s.status == STATUS_ERROR
                && ["unreachable", "timeout", "protocol"]
                    .contains(&s.attributes.get("error.type").map_or("", String::as_str))),
        "{failed:#?}"
    );
    fed.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A strict reader of the Prometheus text format (0.0.4).

#[derive(Debug)]
struct Exposition {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    /// The value of the one series of `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    /// The value of `name` with these labels, 0 if the series does not exist yet.
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// The sum over every series of `name` whose labels include these.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// Labels `{a="x",b="y"}` (the braces stripped); escapes `\\`, `\"`, `\n` only.
fn parse_labels(mut s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").ok_or(format!("bad label in {s:?}"))?;
        if !valid_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        s = &rest[end + 1..];
        s = match s.strip_prefix(',') {
            Some(more) if !more.is_empty() => more,
            Some(_) => return Err("trailing comma".into()),
            None if s.is_empty() => s,
            None => return Err(format!("junk after label: {s:?}")),
        };
    }
    Ok(labels)
}

fn parse_exposition(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the text must end with a newline".into());
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashMap<String, ()> = HashMap::new();
    let mut seen_samples: HashMap<String, ()> = HashMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !valid_name(name, true) || helps.insert(name.to_owned(), ()).is_some() {
                return Err(at("bad or repeated HELP".into()));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("bad TYPE".into()))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                || !valid_name(name, true)
                || seen_samples.contains_key(name)
                || types.insert(name.to_owned(), kind.to_owned()).is_some()
            {
                return Err(at("bad, repeated or late TYPE".into()));
            }
        } else if line.starts_with('#') {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value".into()))?;
            let value = parse_value(value).map_err(at)?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (
                    name,
                    parse_labels(
                        labels
                            .strip_suffix('}')
                            .ok_or_else(|| at("unclosed {".into()))?,
                    )
                    .map_err(at)?,
                ),
                None => (series, BTreeMap::new()),
            };
            if !valid_name(name, true) {
                return Err(at("bad metric name".into()));
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| types.get(*base).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            let kind = types
                .get(family)
                .ok_or_else(|| at("sample before its TYPE".into()))?;
            if kind == "counter" && (value.is_nan() || value < 0.0) {
                return Err(at("negative counter".into()));
            }
            if name.ends_with("_bucket") && kind == "histogram" && !labels.contains_key("le") {
                return Err(at("bucket without le".into()));
            }
            seen_samples.insert(family.to_owned(), ());
            if samples
                .iter()
                .any(|(n, l, _): &(String, BTreeMap<String, String>, f64)| {
                    n == name && *l == labels
                })
            {
                return Err(at("duplicate series".into()));
            }
            samples.push((name.to_owned(), labels, value));
        }
    }
    // Histograms: cumulative buckets ending at +Inf, which equals _count.
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for (name, labels, value) in &samples {
            if *name == bucket {
                let mut rest = labels.clone();
                let le = parse_value(&rest.remove("le").expect("checked"))?;
                series.entry(rest).or_default().push((le, *value));
            }
        }
        for (labels, buckets) in series {
            let ordered = buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
            let last = buckets.last().expect("one bucket at least");
            let count = samples
                .iter()
                .find(|(n, l, _)| *n == format!("{family}_count") && *l == labels)
                .map(|(_, _, v)| *v);
            if !ordered || last.0 != f64::INFINITY || count != Some(last.1) {
                return Err(format!(
                    "{family}{labels:?}: buckets {buckets:?}, count {count:?}"
                ));
            }
        }
    }
    Ok(Exposition { samples })
}

async fn scrape(fed: &Federation, dept: &str) -> Exposition {
    let admin = fed.gateway(dept).admin_addr.expect("admin listener");
    let (status, text) = get_text(admin, "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{text}");
    parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn readyz(fed: &Federation, dept: &str) -> (u16, Value) {
    let admin = fed.gateway(dept).admin_addr.expect("admin listener");
    let (status, text) = get_text(admin, "/readyz").await.expect("readyz");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[test]
fn the_strict_reader_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n";
    assert_eq!(
        parse_exposition(good)
            .unwrap()
            .value("a_total", &[("x", "1"), ("y", "q\"")]),
        Some(3.0)
    );
    for bad in [
        "a_total 3\n",                    // no TYPE
        "# TYPE a counter\na{x=\"1\"} 3", // no final newline
        "# TYPE a counter\na{x=1} 3\n",   // unquoted
        "# TYPE a counter\na 3\na 4\n",   // duplicate
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",                          // no +Inf
        "# TYPE a counter\na -1\n", // negative counter
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_follow_traffic() {
    let _turn = one_federation_at_a_time().await;
    let mut fed = Federation::start().await.expect("federation starts");
    let consumer = "tax-office";
    let before_p = scrape(&fed, PROVIDER).await;
    let before_c = scrape(&fed, consumer).await;

    let (status, answer) = fed
        .request(
            consumer,
            PROVIDER,
            "residents",
            json!({"national_id": "D000042"}),
            "tax-assessment",
        )
        .await
        .expect("request");
    assert_eq!(status, 200, "{answer}");
    let (status, denied) = fed
        .request(
            consumer,
            PROVIDER,
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .expect("request");
    assert_eq!(status, 403, "{denied}");
    let reason = denied["error"]["code"]
        .as_str()
        .expect("reason code")
        .to_owned();

    let after_p = scrape(&fed, PROVIDER).await;
    let after_c = scrape(&fed, consumer).await;
    let moved = |before: &Exposition, after: &Exposition, name: &str, labels: &[(&str, &str)]| {
        after.count(name, labels) - before.count(name, labels)
    };
    for (side, scraped, peer) in [
        ("provider", (&before_p, &after_p), consumer),
        ("consumer", (&before_c, &after_c), PROVIDER),
    ] {
        let (before, after) = scraped;
        for outcome in ["ok", reason.as_str()] {
            let labels = [("side", side), ("peer", peer), ("outcome", outcome)];
            assert_eq!(
                moved(before, after, "causeway_exchanges_total", &labels),
                1.0,
                "{side} {outcome}"
            );
        }
        let timed = [("side", side), ("peer", peer)];
        assert_eq!(
            moved(
                before,
                after,
                "causeway_exchange_duration_seconds_count",
                &timed
            ),
            2.0,
            "{side}"
        );
    }
    let decisions =
        |e: &Exposition, d: &str| e.sum("causeway_policy_decisions_total", &[("decision", d)]);
    assert_eq!(
        decisions(&after_p, "allow") - decisions(&before_p, "allow"),
        1.0
    );
    assert_eq!(
        moved(
            &before_p,
            &after_p,
            "causeway_policy_decisions_total",
            &[("decision", "deny"), ("reason", &reason)]
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before_p,
            &after_p,
            "causeway_fetch_duration_seconds_count",
            &[("dataset", "residents")]
        ),
        1.0
    );
    // Both sides notarized both exchanges.
    for (before, after) in [(&before_p, &after_p), (&before_c, &after_c)] {
        assert!(moved(before, after, "causeway_ledger_entries", &[]) >= 2.0);
        assert!(
            moved(
                before,
                after,
                "causeway_ledger_commits_total",
                &[("result", "ok")]
            ) >= 1.0
        );
        assert!(moved(before, after, "causeway_ledger_batch_entries_count", &[]) >= 1.0);
        assert_eq!(
            after.count("causeway_ledger_commits_total", &[("result", "failed")]),
            0.0
        );
    }
    assert_eq!(
        after_c.value("causeway_peer_up", &[("peer", PROVIDER)]),
        Some(1.0)
    );
    // At least the two exchanges (witness cosignature requests use the same transport).
    assert!(
        moved(
            &before_c,
            &after_c,
            "causeway_peer_requests_total",
            &[("transport", "https")]
        ) >= 2.0
    );
    assert_eq!(
        after_c.value("causeway_transport_fallbacks_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        after_p.value("causeway_witness_forks_total", &[]),
        Some(0.0)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        after_p
            .value("causeway_certificate_expiry_timestamp_seconds", &[])
            .expect("expiry")
            > now + 7.0 * 86400.0
    );
    // Times are Unix seconds, not ages: the last commit was a moment ago, not at 1970.
    let committed = after_p
        .value("causeway_ledger_last_commit_timestamp_seconds", &[])
        .expect("last commit");
    assert!(
        committed <= now + 1.0 && committed > now - 600.0,
        "{committed} vs {now}"
    );
    // The build and the process.
    assert_eq!(
        after_p.value(
            "causeway_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit", ""),
                ("rustc", "")
            ]
        ),
        Some(1.0)
    );
    assert!(
        after_p
            .value("process_resident_memory_bytes", &[])
            .expect("rss")
            > 0.0
    );
    assert!(after_p.value("process_open_fds", &[]).expect("fds") > 0.0);
    let started = after_p
        .value("process_start_time_seconds", &[])
        .expect("start time");
    assert!(started <= now + 1.0 && started > now - 86400.0, "{started}");
    assert_eq!(after_p.value("causeway_policy_load_failed", &[]), Some(0.0));
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_over_otlp_when_configured() {
    let (receiver, _) = telemetry();
    let _turn = one_federation_at_a_time().await;
    let mut fed = Federation::create().expect("federation");
    // Only the provider exports; a long interval, so what arrives is the final export at shutdown.
    let config = fed
        .layout
        .departments
        .iter()
        .find(|d| d.id.as_str() == PROVIDER)
        .expect("provider")
        .config
        .clone();
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{text}\n[telemetry]\nendpoint = \"{}\"\nmetrics_interval_secs = 3600\n",
            receiver.url
        ),
    )
    .expect("config");
    for dept in ["civil-registry", "tax-office", "social-welfare"] {
        fed.start_dept(dept).await.expect("starts");
    }
    let (status, answer) = fed
        .request(
            CONSUMER,
            PROVIDER,
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .expect("request");
    assert_eq!(status, 200, "{answer}");
    fed.stop().await;
    let names = receiver
        .received
        .lock()
        .unwrap()
        .metrics
        .get(PROVIDER)
        .cloned()
        .unwrap_or_default();
    let units = receiver.received.lock().unwrap().units.clone();
    for (name, unit) in [
        ("causeway_exchanges", "{exchange}"),
        ("causeway_exchange_duration_seconds", "s"),
        ("causeway_ledger_commit_duration_seconds", "s"),
        ("causeway_ledger_entries", "{entry}"),
        ("causeway_ledger_last_commit_timestamp_seconds", "s"),
        ("process_resident_memory_bytes", "By"),
        ("causeway_build_info", "1"),
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not exported: {names:?}"
        );
        assert_eq!(units.get(name).map(String::as_str), Some(unit), "{name}");
    }
}

#[tokio::test]
async fn readyz_fails_when_the_ledger_cannot_commit() {
    let _turn = one_federation_at_a_time().await;
    let mut fed = Federation::create().expect("federation");
    // A ledger map of 1 MiB that may not grow, filled below: LMDB refuses the next commit
    // (MDB_MAP_FULL).
    let config = fed
        .layout
        .departments
        .iter()
        .find(|d| d.id.as_str() == PROVIDER)
        .expect("provider")
        .config
        .clone();
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("[ledger]\n"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "[ledger]\n",
            "[ledger]\nmap_size_mib = 1\nmax_map_size_mib = 1\n",
        ),
    )
    .expect("config");
    for dept in ["civil-registry", "tax-office", "social-welfare"] {
        fed.start_dept(dept).await.expect("starts");
    }
    let (status, ready) = readyz(&fed, PROVIDER).await;
    assert_eq!((status, &ready["ready"]), (200, &json!(true)), "{ready}");

    // Fill it with ever smaller entries, until not even a small one fits.
    let ledger = fed.gateway(PROVIDER).ledger().clone();
    for padding in [32 * 1024, 4096, 512, 0] {
        let mut error = None;
        for _ in 0..1000 {
            let mut filler = Entry::new(Kind::PolicyChange);
            filler.detail = Some(json!({"padding": "x".repeat(padding)}));
            if let Err(e) = ledger.append(filler).await {
                error = Some(e);
                break;
            }
        }
        assert!(
            matches!(error, Some(LedgerError::Full)),
            "{padding}: {error:?}"
        );
    }

    let (status, ready) = readyz(&fed, PROVIDER).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["ledger"]["ready"], false);
    let problem = ready["ledger"]["last_commit_error"]
        .as_str()
        .expect("the commit error");
    assert!(problem.contains("full"), "{problem}");
    for fine in ["certificate", "directory", "policies", "datasets"] {
        assert_eq!(ready[fine]["ready"], true, "{fine}: {ready}");
    }
    assert!(
        scrape(&fed, PROVIDER)
            .await
            .count("causeway_ledger_commits_total", &[("result", "failed")])
            >= 1.0
    );
    // The gateway stays alive, and fails closed.
    let admin = fed.gateway(PROVIDER).admin_addr.expect("admin");
    assert_eq!(get_text(admin, "/healthz").await.expect("healthz").0, 200);
    let (status, answer) = fed
        .request(
            CONSUMER,
            PROVIDER,
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .expect("request");
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &json!("ledger-unavailable")),
        "{answer}"
    );
    fed.stop().await;
}

#[tokio::test]
async fn readyz_fails_while_the_policy_files_do_not_load() {
    let _turn = one_federation_at_a_time().await;
    let mut fed = Federation::start().await.expect("federation starts");
    let (status, ready) = readyz(&fed, PROVIDER).await;
    assert_eq!(status, 200, "{ready}");
    let broken = fed.dept_dir(PROVIDER).join("policies").join("broken.toml");
    std::fs::write(&broken, "[[grant]]\nid = \"broken\"\nfeilds = [\"name\"]\n").expect("write");
    let ready = eventually("/readyz to report the broken file", || async {
        let (status, ready) = readyz(&fed, PROVIDER).await;
        (status == 503).then_some(ready)
    })
    .await;
    assert_eq!(ready["policies"]["ready"], false, "{ready}");
    let error = ready["policies"]["last_error"]
        .as_str()
        .expect("the load error");
    assert!(error.contains("broken.toml"), "{error}");
    assert_eq!(ready["ledger"]["ready"], true, "{ready}");
    let scraped = scrape(&fed, PROVIDER).await;
    assert_eq!(scraped.value("causeway_policy_load_failed", &[]), Some(1.0));
    assert!(
        scraped.count(
            "causeway_policy_reload_failures_total",
            &[("set", "active")]
        ) >= 1.0
    );

    std::fs::remove_file(&broken).expect("remove");
    eventually("/readyz to recover", || async {
        (readyz(&fed, PROVIDER).await.0 == 200).then_some(())
    })
    .await;
    fed.stop().await;
}
