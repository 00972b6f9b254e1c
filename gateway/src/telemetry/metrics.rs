//! A small metric registry: counters, gauges and histograms with labels, kept in atomics, rendered
//! as Prometheus text (exposition format 0.0.4) for `GET /metrics`, and mirrored into
//! OpenTelemetry instruments when OTLP metric export is configured.
//!
//! Each gateway owns one [`Metrics`] (several gateways share a process in tests and the demo).
//! Values the gateway already keeps elsewhere (ledger size, forks, transport fallbacks, policy
//! reload failures) are not copied: they are read when scraped, through [`Metrics::collect`].
//!
//! Times of day are Unix-seconds gauges named `*_timestamp_seconds` (an age is `time() - x` in
//! PromQL), never a "seconds since" that goes stale between scrapes. Every OpenTelemetry
//! instrument carries its UCUM unit ([`unit`]). Each registry also reports the build
//! (`causeway_build_info`) and the process's resource use ([`super::process`]).
//!
//! Label values come from closed sets (outcome and reason codes, sides, transports) or from the
//! federation directory and datasets file; as a guard against a peer inventing names, a family
//! holds at most [`MAX_SERIES`] label sets and folds the rest into one whose labels are `other`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use causeway_ledger::{CommitObserver, LedgerError};

use super::process::ProcessStats;

/// Most label sets one family holds; the rest are counted under `other`.
pub const MAX_SERIES: usize = 1000;
/// Histogram buckets for durations, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Histogram buckets for ledger batch sizes, in entries.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// The Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations with a sum and a count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

struct Family<V> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: RwLock<BTreeMap<Vec<String>, Arc<V>>>,
}

/// A label set as a map key: owned (`Vec<String>`) in the map, borrowed from the caller's
/// `&[&str]` to look a series up, so that recording a value allocates nothing once its series
/// exists. Ordered as `Vec<String>` is, element by element.
trait LabelValues {
    fn count(&self) -> usize;
    fn at(&self, i: usize) -> &str;
}

impl LabelValues for Vec<String> {
    fn count(&self) -> usize {
        self.len()
    }
    fn at(&self, i: usize) -> &str {
        &self[i]
    }
}

impl LabelValues for &[&str] {
    fn count(&self) -> usize {
        self.len()
    }
    fn at(&self, i: usize) -> &str {
        self[i]
    }
}

impl<'a> std::borrow::Borrow<dyn LabelValues + 'a> for Vec<String> {
    fn borrow(&self) -> &(dyn LabelValues + 'a) {
        self
    }
}

impl Ord for dyn LabelValues + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (0..self.count())
            .map(|i| self.at(i))
            .cmp((0..other.count()).map(|i| other.at(i)))
    }
}

impl PartialOrd for dyn LabelValues + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn LabelValues + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for dyn LabelValues + '_ {}

impl<V> Family<V> {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family {
            name,
            help,
            labels,
            series: RwLock::new(BTreeMap::new()),
        }
    }

    fn series(&self, values: &[&str], make: impl FnOnce() -> V) -> Arc<V> {
        debug_assert_eq!(
            values.len(),
            self.labels.len(),
            "{}: label count",
            self.name
        );
        if let Some(series) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&values as &dyn LabelValues)
        {
            return series.clone();
        }
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut series = self.series.write().unwrap_or_else(|p| p.into_inner());
        let key = if series.len() >= MAX_SERIES && !series.contains_key(&key) {
            vec!["other".to_owned(); key.len()]
        } else {
            key
        };
        series
            .entry(key)
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Arc<V>)> {
        self.series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn header(&self, out: &mut String, kind: Kind) {
        header(out, self.name, self.help, kind);
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: Kind) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        help.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

fn attributes(names: &[&'static str], values: &[&str]) -> Vec<KeyValue> {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| KeyValue::new(*n, (*v).to_owned()))
        .collect()
}

/// The OpenTelemetry name of a Prometheus family: without the `_total` suffix counters carry.
fn otel_name(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// The UCUM unit of a family, from its name as the Prometheus naming rules have it (base units as
/// suffixes: `_seconds`, `_bytes`); counts are annotations of what is counted (`{exchange}`),
/// and `1` is for what has no unit (ratios, flags, serials, info).
pub fn unit(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        return "s";
    }
    if base.ends_with("_bytes") {
        return "By";
    }
    const COUNTED: &[(&str, &str)] = &[
        ("exchanges", "{exchange}"),
        ("decisions", "{decision}"),
        ("fetch_errors", "{error}"),
        ("_commits", "{commit}"),
        ("_entries", "{entry}"),
        ("_envelopes", "{envelope}"),
        ("cosignatures", "{cosignature}"),
        ("forks", "{fork}"),
        ("requests", "{request}"),
        ("fallbacks", "{request}"),
        ("failures", "{reload}"),
        ("differences", "{request}"),
        ("rotations", "{rotation}"),
        ("refusals", "{refusal}"),
        ("changes", "{change}"),
        ("connections", "{connection}"),
        ("handshakes", "{handshake}"),
        ("retries", "{packet}"),
        ("_fds", "{file}"),
        ("findings", "{finding}"),
        ("queries", "{query}"),
        ("sign_ins", "{sign_in}"),
    ];
    COUNTED
        .iter()
        .find(|(part, _)| base.contains(part))
        .map_or("1", |(_, unit)| unit)
}

/// A counter family.
pub struct CounterVec {
    family: Family<AtomicU64>,
    otel: Option<opentelemetry::metrics::Counter<u64>>,
}

impl CounterVec {
    fn new(
        meter: Option<&Meter>,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        let counter = CounterVec {
            family: Family::new(name, help, labels),
            otel: meter.map(|m| {
                m.u64_counter(otel_name(name))
                    .with_description(help)
                    .with_unit(unit(name))
                    .build()
            }),
        };
        if labels.is_empty() {
            counter.family.series(&[], AtomicU64::default);
        }
        counter
    }

    /// Add one to the series with these label values (in the family's label order).
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    /// Add `n`.
    pub fn add(&self, labels: &[&str], n: u64) {
        self.family
            .series(labels, AtomicU64::default)
            .fetch_add(n, Ordering::Relaxed);
        if let Some(otel) = &self.otel {
            otel.add(n, &attributes(self.family.labels, labels));
        }
    }

    /// The current value of one series (0 if it was never touched).
    pub fn get(&self, labels: &[&str]) -> u64 {
        self.family
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&labels as &dyn LabelValues)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }

    fn render(&self, out: &mut String) {
        self.family.header(out, Kind::Counter);
        for (values, v) in self.family.snapshot() {
            sample(
                out,
                self.family.name,
                self.family.labels,
                &values,
                None,
                v.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

/// A gauge family set by the code that knows the value.
pub struct GaugeVec {
    family: Family<AtomicU64>,
    otel: Option<opentelemetry::metrics::Gauge<f64>>,
}

impl GaugeVec {
    fn new(
        meter: Option<&Meter>,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        GaugeVec {
            family: Family::new(name, help, labels),
            otel: meter.map(|m| {
                m.f64_gauge(name)
                    .with_description(help)
                    .with_unit(unit(name))
                    .build()
            }),
        }
    }

    /// Set the series with these label values.
    pub fn set(&self, labels: &[&str], value: f64) {
        self.family
            .series(labels, AtomicU64::default)
            .store(value.to_bits(), Ordering::Relaxed);
        if let Some(otel) = &self.otel {
            otel.record(value, &attributes(self.family.labels, labels));
        }
    }

    fn render(&self, out: &mut String) {
        self.family.header(out, Kind::Gauge);
        for (values, v) in self.family.snapshot() {
            sample(
                out,
                self.family.name,
                self.family.labels,
                &values,
                None,
                f64::from_bits(v.load(Ordering::Relaxed)),
            );
        }
    }
}

struct Buckets {
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicU64,
}

/// A histogram family with fixed buckets.
pub struct HistogramVec {
    family: Family<Buckets>,
    bounds: &'static [f64],
    otel: Option<opentelemetry::metrics::Histogram<f64>>,
}

impl HistogramVec {
    fn new(
        meter: Option<&Meter>,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        let histogram = HistogramVec {
            family: Family::new(name, help, labels),
            bounds,
            otel: meter.map(|m| {
                m.f64_histogram(name)
                    .with_description(help)
                    .with_unit(unit(name))
                    .with_boundaries(bounds.to_vec())
                    .build()
            }),
        };
        if labels.is_empty() {
            histogram.family.series(&[], || histogram.empty());
        }
        histogram
    }

    fn empty(&self) -> Buckets {
        Buckets {
            counts: self.bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Record one observation.
    pub fn observe(&self, labels: &[&str], value: f64) {
        let series = self.family.series(labels, || self.empty());
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            series.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        series.count.fetch_add(1, Ordering::Relaxed);
        let _ = series
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
        if let Some(otel) = &self.otel {
            otel.record(value, &attributes(self.family.labels, labels));
        }
    }

    /// How many observations one series has.
    pub fn count(&self, labels: &[&str]) -> u64 {
        self.family
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&labels as &dyn LabelValues)
            .map_or(0, |v| v.count.load(Ordering::Relaxed))
    }

    fn render(&self, out: &mut String) {
        let name = self.family.name;
        self.family.header(out, Kind::Histogram);
        for (values, series) in self.family.snapshot() {
            let mut cumulative = 0;
            let bucket = format!("{name}_bucket");
            for (bound, count) in self.bounds.iter().zip(&series.counts) {
                cumulative += count.load(Ordering::Relaxed);
                sample(
                    out,
                    &bucket,
                    self.family.labels,
                    &values,
                    Some(*bound),
                    cumulative as f64,
                );
            }
            let count = series.count.load(Ordering::Relaxed);
            sample(
                out,
                &bucket,
                self.family.labels,
                &values,
                Some(f64::INFINITY),
                count as f64,
            );
            let sum = f64::from_bits(series.sum.load(Ordering::Relaxed));
            sample(
                out,
                &format!("{name}_sum"),
                self.family.labels,
                &values,
                None,
                sum,
            );
            sample(
                out,
                &format!("{name}_count"),
                self.family.labels,
                &values,
                None,
                count as f64,
            );
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn sample(
    out: &mut String,
    name: &str,
    labels: &[&str],
    values: &[String],
    le: Option<f64>,
    value: f64,
) {
    out.push_str(name);
    let mut pairs: Vec<String> = labels
        .iter()
        .zip(values)
        .map(|(l, v)| format!("{l}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{}\"", number(le)));
    }
    if !pairs.is_empty() {
        let _ = write!(out, "{{{}}}", pairs.join(","));
    }
    let _ = writeln!(out, " {}", number(value));
}

/// Label values and a value, as a collector reports them.
pub type Sample = (Vec<String>, f64);

type SampleFn = Arc<dyn Fn() -> Vec<Sample> + Send + Sync>;

struct Collector {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    sample: SampleFn,
}

/// Every metric of one gateway.
pub struct Metrics {
    /// `causeway_exchanges_total{side, peer, outcome}`: exchanges finished, by this gateway's side
    /// (`provider`, `consumer`), the other department and the outcome code (`ok`, a policy reason
    /// code, an adapter error code or a protocol error code).
    pub exchanges: CounterVec,
    /// `causeway_exchange_duration_seconds{side, peer}`: time from request to answer.
    pub exchange_seconds: HistogramVec,
    /// `causeway_policy_decisions_total{decision, reason}`: policy decisions (after the rate limit).
    pub decisions: CounterVec,
    /// `causeway_fetch_duration_seconds{dataset}`: time of the dataset query and shaping.
    pub fetch_seconds: HistogramVec,
    /// `causeway_fetch_errors_total{dataset, code}`: fetches that failed, by adapter error code.
    pub fetch_errors: CounterVec,
    /// `causeway_ledger_batch_entries`: entries per group commit.
    pub ledger_batch: HistogramVec,
    /// `causeway_envelope_signing_batch_envelopes`: envelopes per envelope signature (1: signed
    /// alone; more: a burst that shared one, docs/PROTOCOL.md "Signature").
    pub signing_batch: HistogramVec,
    /// `causeway_ledger_commit_duration_seconds`: time of one group commit (sign, write, fsync).
    pub ledger_commit_seconds: HistogramVec,
    /// `causeway_ledger_commits_total{result}`: group commits, `ok` or `failed`.
    pub ledger_commits: CounterVec,
    /// `causeway_peer_up{peer}`: 1 if the last request to that department reached it, else 0.
    pub peer_up: GaugeVec,
    last_commit: Mutex<SystemTime>,
    collectors: Mutex<Vec<Collector>>,
    meter: Option<Meter>,
}

impl Metrics {
    /// A registry; with `meter`, every metric is also recorded into OpenTelemetry instruments.
    pub fn new(meter: Option<Meter>) -> Metrics {
        let m = meter.as_ref();
        let metrics = Metrics {
            exchanges: CounterVec::new(
                m,
                "causeway_exchanges_total",
                "Exchanges finished, by side, peer department and outcome code.",
                &["side", "peer", "outcome"],
            ),
            exchange_seconds: HistogramVec::new(
                m,
                "causeway_exchange_duration_seconds",
                "Time from request to answer of an exchange, in seconds.",
                &["side", "peer"],
                LATENCY_BUCKETS,
            ),
            decisions: CounterVec::new(
                m,
                "causeway_policy_decisions_total",
                "Policy decisions, by decision and reason code.",
                &["decision", "reason"],
            ),
            fetch_seconds: HistogramVec::new(
                m,
                "causeway_fetch_duration_seconds",
                "Time of a dataset query through its adapter, with shaping, in seconds.",
                &["dataset"],
                LATENCY_BUCKETS,
            ),
            fetch_errors: CounterVec::new(
                m,
                "causeway_fetch_errors_total",
                "Dataset fetches that failed, by adapter error code.",
                &["dataset", "code"],
            ),
            ledger_batch: HistogramVec::new(
                m,
                "causeway_ledger_batch_entries",
                "Entries per ledger group commit.",
                &[],
                BATCH_BUCKETS,
            ),
            signing_batch: HistogramVec::new(
                m,
                "causeway_envelope_signing_batch_envelopes",
                "Envelopes per envelope signature (1: signed alone).",
                &[],
                BATCH_BUCKETS,
            ),
            ledger_commit_seconds: HistogramVec::new(
                m,
                "causeway_ledger_commit_duration_seconds",
                "Time of one ledger group commit (sign, write, fsync), in seconds.",
                &[],
                LATENCY_BUCKETS,
            ),
            ledger_commits: CounterVec::new(
                m,
                "causeway_ledger_commits_total",
                "Ledger group commits, by result (ok, failed).",
                &["result"],
            ),
            peer_up: GaugeVec::new(
                m,
                "causeway_peer_up",
                "1 if the last request to the department reached it, else 0.",
                &["peer"],
            ),
            last_commit: Mutex::new(SystemTime::now()),
            collectors: Mutex::new(Vec::new()),
            meter,
        };
        metrics.collect_build_and_process();
        metrics
    }

    /// `causeway_build_info` and the `process_*` metrics every node reports.
    fn collect_build_and_process(&self) {
        self.collect(
            "causeway_build_info",
            "Always 1; the labels say which build runs: its version and, when the build recorded \
             them (CAUSEWAY_BUILD_COMMIT, CAUSEWAY_BUILD_RUSTC), its commit and compiler.",
            Kind::Gauge,
            &["version", "commit", "rustc"],
            || {
                vec![(
                    vec![
                        env!("CARGO_PKG_VERSION").to_owned(),
                        option_env!("CAUSEWAY_BUILD_COMMIT")
                            .unwrap_or_default()
                            .to_owned(),
                        option_env!("CAUSEWAY_BUILD_RUSTC")
                            .unwrap_or_default()
                            .to_owned(),
                    ],
                    1.0,
                )]
            },
        );
        type Read = fn(&ProcessStats) -> Option<f64>;
        let families: [(&'static str, &'static str, Kind, Read); 6] = [
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                Kind::Counter,
                |s| Some(s.cpu_seconds),
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Kind::Gauge,
                |s| Some(s.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Kind::Gauge,
                |s| Some(s.virtual_bytes),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                Kind::Gauge,
                |s| s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                Kind::Gauge,
                |s| s.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Kind::Gauge,
                |s| Some(s.start_time_seconds),
            ),
        ];
        for (name, help, kind, read) in families {
            self.collect(name, help, kind, &[], move || {
                ProcessStats::read()
                    .and_then(|s| read(&s))
                    .map(|v| vec![(vec![], v)])
                    .unwrap_or_default()
            });
        }
    }

    /// Report a value kept elsewhere, read at each scrape (and each OTLP export) by `sample`.
    /// `kind` is [`Kind::Counter`] or [`Kind::Gauge`].
    pub fn collect(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
        sample: impl Fn() -> Vec<Sample> + Send + Sync + 'static,
    ) {
        let sample: SampleFn = Arc::new(sample);
        if let Some(meter) = &self.meter {
            let read = sample.clone();
            let observe = move |observe: &dyn Fn(f64, &[KeyValue])| {
                for (values, value) in read() {
                    let values: Vec<&str> = values.iter().map(String::as_str).collect();
                    observe(value, &attributes(labels, &values));
                }
            };
            match kind {
                Kind::Counter => {
                    meter
                        .f64_observable_counter(otel_name(name))
                        .with_description(help)
                        .with_unit(unit(name))
                        .with_callback(move |o| observe(&|v, a| o.observe(v, a)))
                        .build();
                }
                _ => {
                    meter
                        .f64_observable_gauge(name)
                        .with_description(help)
                        .with_unit(unit(name))
                        .with_callback(move |o| observe(&|v, a| o.observe(v, a)))
                        .build();
                }
            }
        }
        self.collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Collector {
                name,
                help,
                kind,
                labels,
                sample,
            });
    }

    /// When the ledger last committed a batch (and so signed a new checkpoint), or when this
    /// registry was made (the gateway started) if it has not since.
    pub fn last_commit(&self) -> SystemTime {
        *self.last_commit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything, as Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.exchanges.render(&mut out);
        self.exchange_seconds.render(&mut out);
        self.decisions.render(&mut out);
        self.fetch_seconds.render(&mut out);
        self.fetch_errors.render(&mut out);
        self.ledger_batch.render(&mut out);
        self.signing_batch.render(&mut out);
        self.ledger_commit_seconds.render(&mut out);
        self.ledger_commits.render(&mut out);
        self.peer_up.render(&mut out);
        let collectors = self.collectors.lock().unwrap_or_else(|p| p.into_inner());
        for c in collectors.iter() {
            header(&mut out, c.name, c.help, c.kind);
            for (values, value) in (c.sample)() {
                sample(&mut out, c.name, c.labels, &values, None, value);
            }
        }
        out
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, entries: usize, elapsed: Duration, error: Option<&LedgerError>) {
        self.ledger_batch.observe(&[], entries as f64);
        self.ledger_commit_seconds
            .observe(&[], elapsed.as_secs_f64());
        self.ledger_commits
            .inc(&[if error.is_some() { "failed" } else { "ok" }]);
        if error.is_none() {
            *self.last_commit.lock().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_collected_values() {
        let m = Metrics::new(None);
        m.exchanges.inc(&["provider", "tax", "ok"]);
        m.exchanges.inc(&["provider", "tax", "ok"]);
        m.exchanges.inc(&["consumer", "we\"ird\\", "denied"]);
        m.exchange_seconds.observe(&["provider", "tax"], 0.003);
        m.exchange_seconds.observe(&["provider", "tax"], 20.0);
        m.collect(
            "causeway_test_forks_total",
            "Forks.",
            Kind::Counter,
            &[],
            || vec![(vec![], 2.0)],
        );
        let text = m.render();
        assert!(
            text.contains("# TYPE causeway_exchanges_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "causeway_exchanges_total{side=\"provider\",peer=\"tax\",outcome=\"ok\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("peer=\"we\\\"ird\\\\\""), "{text}");
        assert!(text.contains("causeway_exchange_duration_seconds_bucket{side=\"provider\",peer=\"tax\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("causeway_exchange_duration_seconds_bucket{side=\"provider\",peer=\"tax\",le=\"10\"} 1\n"), "{text}");
        assert!(text.contains("causeway_exchange_duration_seconds_bucket{side=\"provider\",peer=\"tax\",le=\"+Inf\"} 2\n"), "{text}");
        assert!(
            text.contains(
                "causeway_exchange_duration_seconds_count{side=\"provider\",peer=\"tax\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("causeway_ledger_commits_total")
                && text.contains("causeway_ledger_batch_entries_count 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE causeway_test_forks_total counter\ncauseway_test_forks_total 2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn build_and_process_metrics_are_reported() {
        let text = Metrics::new(None).render();
        let build = format!(
            "causeway_build_info{{version=\"{}\",",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name}: {text}");
        }
    }

    #[test]
    fn every_family_has_a_ucum_unit() {
        assert_eq!(unit("causeway_exchange_duration_seconds"), "s");
        assert_eq!(unit("causeway_certificate_expiry_timestamp_seconds"), "s");
        assert_eq!(unit("process_cpu_seconds_total"), "s");
        assert_eq!(unit("process_resident_memory_bytes"), "By");
        assert_eq!(unit("causeway_exchanges_total"), "{exchange}");
        assert_eq!(unit("causeway_ledger_entries"), "{entry}");
        assert_eq!(unit("causeway_ledger_batch_entries"), "{entry}");
        assert_eq!(unit("causeway_build_info"), "1");
        assert_eq!(unit("causeway_peer_up"), "1");
    }

    #[test]
    fn invented_label_values_are_folded() {
        let m = Metrics::new(None);
        for i in 0..MAX_SERIES + 10 {
            m.fetch_errors.inc(&[&format!("d{i}"), "timeout"]);
        }
        assert_eq!(m.fetch_errors.get(&["other", "other"]), 10);
        assert_eq!(m.fetch_errors.get(&["d1", "timeout"]), 1);
    }

    #[test]
    fn label_sets_that_share_prefixes_are_separate_series() {
        let m = Metrics::new(None);
        let sets: [[&str; 2]; 5] = [["a", "b"], ["a", "bb"], ["ab", ""], ["", "ab"], ["a", ""]];
        for (n, labels) in sets.iter().enumerate() {
            for _ in 0..=n {
                m.fetch_errors.inc(labels);
            }
        }
        for (n, labels) in sets.iter().enumerate() {
            assert_eq!(m.fetch_errors.get(labels), n as u64 + 1, "{labels:?}");
        }
        assert_eq!(m.fetch_errors.get(&["b", "a"]), 0);
    }

    #[test]
    fn commits_are_observed() {
        let m = Metrics::new(None);
        m.committed(3, Duration::from_millis(2), None);
        m.committed(1, Duration::from_millis(2), Some(&LedgerError::Full));
        assert_eq!(m.ledger_commits.get(&["ok"]), 1);
        assert_eq!(m.ledger_commits.get(&["failed"]), 1);
        assert_eq!(m.ledger_batch.count(&[]), 2);
    }
}
