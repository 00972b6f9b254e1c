//! One trace per exchange: the root spans of the client and peer APIs, W3C trace context in and
//! out, and what the pipeline learns about a request on the way down.
//!
//! - An application's request to the client API opens a `client_request` span, child of the
//!   application's `traceparent` header if it sent one.
//! - The consumer's call to the provider is a `peer_send` span (kind client); its context travels
//!   as `traceparent`, in an HTTP header over HTTPS and in the request frame's header over QUIC.
//! - The provider's peer API opens a `peer_request` span (kind server) whose parent is exactly that
//!   context, and never anything else in the process (two gateways share a process in tests).
//!
//! Every log line inside a request carries these spans' fields: the request id, and, once known,
//! the peer department, exchange id, dataset and purpose. The pipeline fills them in through
//! [`learn_peer`] and [`learn_exchange`] on the request's root span.
//!
//! Each exchange also ends with one access-log line on each side, at info under the target
//! [`ACCESS_TARGET`]: the exchange id, consumer, provider, dataset, purpose, application, decision,
//! reason code, status, duration and ledger index ([`access_line`]). Ids, names and codes only:
//! never parameters, rows, officers, cases or subjects, which the pipeline does not even hand in.
//!
//! The root and `peer_send` spans carry OpenTelemetry's HTTP semantic conventions
//! (`http.request.method`, `url.path`, `http.route`, `http.response.status_code`,
//! `server.address`, `server.port`, `network.protocol.name` and `.version`, `error.type`), so any
//! tracing backend reads them as HTTP spans. A server span's status is Error for a 5xx answer and
//! unset otherwise (a 4xx is the caller's mistake, not the server's); a client span's is Error when
//! the request failed or the answer is 4xx or 5xx.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::client::PeerError;
use super::peer::{PeerRequest, PeerTransport};
use super::server::Call;
use super::{paths, ProtocolResponse, Transport};
use crate::directory::Department;
use crate::identity::DeptId;
use crate::telemetry::Metrics;

/// A boxed future, as the wrapped handlers return.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The W3C trace context header (and the QUIC request frame field of the same name).
pub const TRACEPARENT: &str = "traceparent";

/// Largest error answer read for its outcome code.
const MAX_CODE_BODY: usize = 64 * 1024;

/// The `tracing` target of the access-log lines (one per exchange and side); `RUST_LOG` can turn
/// them off with `causeway::access=warn`.
pub const ACCESS_TARGET: &str = "causeway::access";

tokio::task_local! {
    static REQUEST: RequestScope;
}

/// The root span of the request this task is serving, and what the pipeline learned for metrics
/// and the access log.
struct RequestScope {
    span: Span,
    learned: Mutex<Learned>,
}

/// What the pipeline learned about one request on its way down.
#[derive(Default)]
struct Learned {
    peer: Option<DeptId>,
    exchange: Option<uuid::Uuid>,
    dataset: Option<String>,
    purpose: Option<String>,
    application: Option<String>,
    /// The policy's decision, once one was taken (here, or by the provider for a consumer).
    allowed: Option<bool>,
    outcome: Option<String>,
    log_index: Option<u64>,
}

impl RequestScope {
    fn new(span: Span) -> Self {
        RequestScope {
            span,
            learned: Mutex::new(Learned::default()),
        }
    }

    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.learned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn with_scope(f: impl FnOnce(&RequestScope)) {
    let _ = REQUEST.try_with(f);
}

/// The department on the other side of this request: recorded on the root span (and so on every
/// later log line) and used as the `peer` metric label.
pub fn learn_peer(peer: &DeptId) {
    with_scope(|scope| {
        scope.span.record("peer", tracing::field::display(peer));
        scope.learned().peer = Some(peer.clone());
    });
}

/// The exchange this request carries: its id, dataset and purpose go on the root span. Never its
/// parameters, officer or case: they are not even asked for.
pub fn learn_exchange(id: &uuid::Uuid, dataset: &str, purpose: &str) {
    with_scope(|scope| {
        scope.span.record("exchange", tracing::field::display(id));
        scope.span.record("dataset", dataset);
        scope.span.record("purpose", purpose);
        let mut learned = scope.learned();
        learned.exchange = Some(*id);
        learned.dataset = Some(dataset.to_owned());
        learned.purpose = Some(purpose.to_owned());
    });
}

/// The registered application that asked (named in the envelope), for the access log.
pub fn learn_application(application: &str) {
    with_scope(|scope| scope.learned().application = Some(application.to_owned()));
}

/// The policy's decision on this exchange, for the access log.
pub fn learn_decision(allowed: bool) {
    with_scope(|scope| scope.learned().allowed = Some(allowed));
}

/// This side's ledger index of the exchange, once its entry is durable, for the access log.
pub fn learn_log_index(index: u64) {
    with_scope(|scope| scope.learned().log_index = Some(index));
}

/// The outcome code of the exchange (`ok`, a reason or error code), as the pipeline decided it.
pub fn learn_outcome(outcome: &str) {
    with_scope(|scope| scope.learned().outcome = Some(outcome.to_owned()));
}

/// The peer learned so far for this request, if any.
pub fn current_peer() -> Option<DeptId> {
    REQUEST
        .try_with(|scope| scope.learned().peer.clone())
        .ok()
        .flatten()
}

/// Which side of an exchange this gateway played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// It asked, for one of its applications.
    Consumer,
    /// It answered from its datasets.
    Provider,
}

/// Write the exchange's access-log line: one per exchange and side, at info under
/// [`ACCESS_TARGET`], outside the request's span so that it stands alone. `decision` is `allow`
/// or `deny` once a policy decided, else `none` (refused before any policy: authentication, a
/// malformed or replayed envelope, a provider out of reach); `reason` is the outcome code (`ok`,
/// the policy's reason, or the error's stable code).
fn access_line(
    me: &DeptId,
    side: Side,
    learned: &Learned,
    status: u16,
    reason: &str,
    elapsed: Duration,
) {
    let peer = learned.peer.as_ref().map(DeptId::as_str);
    let (consumer, provider) = match side {
        Side::Consumer => (Some(me.as_str()), peer),
        Side::Provider => (peer, Some(me.as_str())),
    };
    let decision = match learned.allowed {
        Some(true) => "allow",
        Some(false) => "deny",
        None => "none",
    };
    tracing::info!(
        target: ACCESS_TARGET,
        side = match side {
            Side::Consumer => "consumer",
            Side::Provider => "provider",
        },
        exchange = learned.exchange.map(tracing::field::display),
        consumer,
        provider,
        dataset = learned.dataset.as_deref(),
        purpose = learned.purpose.as_deref(),
        application = learned.application.as_deref(),
        decision,
        reason,
        status,
        duration_ms = elapsed.as_micros() as f64 / 1000.0,
        log_index = learned.log_index,
        "exchange"
    );
}

fn request_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// The trace context a request arrived with (an empty context if none or malformed).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// The `traceparent` value naming `span` as the parent, if spans are being recorded.
pub fn traceparent(span: &Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The endpoints this gateway serves, as `http.route` names them: a path outside this list is
/// left without a route (it is whatever a caller sent).
const ROUTES: &[&str] = &[
    paths::EXCHANGE,
    paths::CHECKPOINT,
    paths::REQUESTS,
    "/causeway/v1/log/entries",
    "/causeway/v1/log/proof/inclusion",
    "/causeway/v1/log/proof/consistency",
    "/causeway/v1/witness/add-checkpoint",
    "/causeway/v1/directory",
];

/// `network.protocol.name` and `.version` of a call: HTTP over the HTTPS port, Causeway's own
/// framing over QUIC (docs/PROTOCOL.md).
fn protocol(call: &Call, transport: Option<Transport>) -> (&'static str, &'static str) {
    if transport == Some(Transport::Quic) {
        return ("causeway", "1");
    }
    let version = match call.parts.version {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    ("http", version)
}

/// The host and port the caller addressed (`:authority` or `Host`), when it said.
fn addressed(call: &Call) -> Option<http::uri::Authority> {
    call.parts.uri.authority().cloned().or_else(|| {
        call.parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
    })
}

fn root_span(name: &'static str, call: &Call, transport: Option<Transport>) -> Span {
    let path = call.parts.uri.path();
    let route = ROUTES.iter().find(|r| **r == path).copied();
    let (protocol, version) = protocol(call, transport);
    let authority = addressed(call);
    let host = authority.as_ref().map(http::uri::Authority::host);
    let port = authority.as_ref().and_then(http::uri::Authority::port_u16);
    let span = match name {
        "peer_request" => tracing::info_span!(
            "peer_request",
            otel.kind = "server",
            otel.status_code = Empty,
            request_id = %request_id(),
            transport = transport.map_or("", Transport::as_str),
            http.request.method = %call.parts.method,
            url.path = path,
            http.route = route,
            server.address = host,
            server.port = port,
            network.protocol.name = protocol,
            network.protocol.version = version,
            peer = Empty,
            exchange = Empty,
            dataset = Empty,
            purpose = Empty,
            outcome = Empty,
            http.response.status_code = Empty,
            "error.type" = Empty,
        ),
        _ => tracing::info_span!(
            "client_request",
            otel.kind = "server",
            otel.status_code = Empty,
            request_id = %request_id(),
            http.request.method = %call.parts.method,
            url.path = path,
            http.route = route,
            server.address = host,
            server.port = port,
            network.protocol.name = protocol,
            network.protocol.version = version,
            peer = Empty,
            exchange = Empty,
            dataset = Empty,
            purpose = Empty,
            outcome = Empty,
            http.response.status_code = Empty,
            "error.type" = Empty,
        ),
    };
    // The caller's context, or a new trace: never whatever happens to be current in this process.
    let _ = span.set_parent(extract(&call.parts.headers));
    span
}

/// Record a server span's answer: its status code, outcome, and status Error for a 5xx only.
fn finish(span: &Span, status: u16, outcome: Option<&str>) {
    span.record("http.response.status_code", status);
    if let Some(outcome) = outcome {
        span.record("outcome", outcome);
    }
    if status >= 500 {
        span.record("otel.status_code", "error");
        span.record("error.type", status.to_string().as_str());
    }
}

/// Wrap the peer API handler of one transport: every request runs in a `peer_request` span, child
/// of the `traceparent` it carries. Exchange metrics are recorded by the pipeline
/// ([`crate::exchange::observe`]), which knows the typed outcome.
pub fn peer_requests<H, F>(
    handler: H,
    transport: Transport,
    me: DeptId,
) -> impl Fn(Call) -> BoxFuture<ProtocolResponse> + Clone + Send + Sync + 'static
where
    H: Fn(Call) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ProtocolResponse> + Send + 'static,
{
    move |call: Call| {
        let span = root_span("peer_request", &call, Some(transport));
        let scope = RequestScope::new(span.clone());
        let handler = handler.clone();
        let me = me.clone();
        let exchange = call.parts.uri.path() == paths::EXCHANGE;
        Box::pin(REQUEST.scope(scope, async move {
            let started = Instant::now();
            let response = handler(call).instrument(span.clone()).await;
            let _ = REQUEST.try_with(|scope| {
                let learned = scope.learned();
                let outcome = learned.outcome.as_deref();
                finish(&span, response.status, outcome);
                if exchange {
                    let reason = outcome.unwrap_or("none");
                    access_line(
                        &me,
                        Side::Provider,
                        &learned,
                        response.status,
                        reason,
                        started.elapsed(),
                    );
                }
            });
            response
        }))
    }
}

/// Wrap the client API handler: every request runs in a `client_request` span, child of the
/// application's `traceparent`; each exchange is counted by outcome and provider, timed, and
/// updates that provider's `causeway_peer_up`.
pub fn client_requests<H, F>(
    handler: H,
    metrics: Arc<Metrics>,
    me: DeptId,
) -> impl Fn(Call) -> BoxFuture<ProtocolResponse> + Clone + Send + Sync + 'static
where
    H: Fn(Call) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ProtocolResponse> + Send + 'static,
{
    move |call: Call| {
        let span = root_span("client_request", &call, None);
        let scope = RequestScope::new(span.clone());
        let handler = handler.clone();
        let metrics = metrics.clone();
        let me = me.clone();
        let exchange =
            call.parts.method == http::Method::POST && call.parts.uri.path() == paths::REQUESTS;
        Box::pin(REQUEST.scope(scope, async move {
            let started = Instant::now();
            let response = handler(call).instrument(span.clone()).await;
            let outcome = outcome_code(&response);
            finish(&span, response.status, Some(&outcome));
            if exchange {
                let elapsed = started.elapsed();
                let _ = REQUEST.try_with(|scope| {
                    let learned = scope.learned();
                    record_consumer(&metrics, learned.peer.as_ref(), &outcome, elapsed);
                    access_line(
                        &me,
                        Side::Consumer,
                        &learned,
                        response.status,
                        &outcome,
                        elapsed,
                    );
                });
            }
            response
        }))
    }
}

fn record_consumer(metrics: &Metrics, provider: Option<&DeptId>, outcome: &str, elapsed: Duration) {
    let peer = provider.map_or("unknown", DeptId::as_str);
    metrics.exchanges.inc(&["consumer", peer, outcome]);
    metrics
        .exchange_seconds
        .observe(&["consumer", peer], elapsed.as_secs_f64());
    if provider.is_some() {
        let reached = !matches!(outcome, "provider-unreachable" | "provider-timeout");
        metrics
            .peer_up
            .set(&[peer], if reached { 1.0 } else { 0.0 });
    }
}

/// The outcome code of a client API answer: `ok`, or the stable `error.code` every error answer
/// carries (docs/PROTOCOL.md), including the provider's reason codes passed through.
fn outcome_code(response: &ProtocolResponse) -> String {
    if response.status == 200 {
        return "ok".into();
    }
    let code = (response.body.len() <= MAX_CODE_BODY)
        .then(|| serde_json::from_slice::<serde_json::Value>(&response.body).ok())
        .flatten()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    code.unwrap_or_else(|| format!("status-{}", response.status))
}

/// Send `request` to `dept` in a `peer_send` span (kind client) whose context travels with the
/// request as `traceparent`, so the provider's spans join this trace.
pub async fn send_to_peer(
    peers: &PeerTransport,
    dept: &Department,
    mut request: PeerRequest,
    timeout: Duration,
) -> Result<(u16, Bytes), PeerError> {
    let url_path = request.path.split('?').next().unwrap_or_default();
    let route = ROUTES.iter().find(|r| **r == url_path).copied();
    // The HTTPS endpoint, as the directory lists it; QUIC, when preferred, uses its own.
    let endpoint = dept
        .https
        .as_deref()
        .and_then(|a| a.parse::<http::uri::Authority>().ok());
    let span = tracing::info_span!(
        "peer_send",
        otel.kind = "client",
        otel.status_code = Empty,
        peer = %dept.id,
        http.request.method = request.method.as_str(),
        url.path = url_path,
        http.route = route,
        server.address = endpoint.as_ref().map(|a| a.host()),
        server.port = endpoint.as_ref().and_then(|a| a.port_u16()),
        http.response.status_code = Empty,
        "error.type" = Empty,
    );
    request.traceparent = traceparent(&span);
    let result = peers
        .send(dept, request, timeout)
        .instrument(span.clone())
        .await;
    match &result {
        Ok((status, _)) => {
            span.record("http.response.status_code", status);
            if *status >= 400 {
                span.record("otel.status_code", "error");
                span.record("error.type", status.to_string().as_str());
            }
        }
        Err(e) => {
            span.record("otel.status_code", "error");
            span.record("error.type", error_type(e));
        }
    }
    result
}

/// `error.type` of a request that got no answer: the kind of failure, never its detail.
fn error_type(error: &PeerError) -> &'static str {
    match error {
        PeerError::NoEndpoint { .. } => "no-endpoint",
        PeerError::Unreachable { .. } => "unreachable",
        PeerError::WrongPeer { .. } => "wrong-peer",
        PeerError::Timeout(_) => "timeout",
        PeerError::Reset { .. } => "reset",
        _ => "protocol",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_codes_come_from_the_error_body() {
        let ok = ProtocolResponse {
            status: 200,
            body: Bytes::from_static(b"{\"rows\":[]}"),
        };
        assert_eq!(outcome_code(&ok), "ok");
        let denied = ProtocolResponse {
            status: 403,
            body: Bytes::from_static(b"{\"error\":{\"code\":\"no-grant\",\"message\":\"x\"}}"),
        };
        assert_eq!(outcome_code(&denied), "no-grant");
        let odd = ProtocolResponse {
            status: 502,
            body: Bytes::from_static(b"not json"),
        };
        assert_eq!(outcome_code(&odd), "status-502");
    }

    #[test]
    fn every_log_line_of_a_request_names_its_request_and_exchange() {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let id = uuid::Uuid::now_v7();
        let peer = DeptId::new("tax-office").unwrap();
        let handler = move |_call: Call| {
            let peer = peer.clone();
            async move {
                learn_peer(&peer);
                learn_exchange(&id, "residents", "tax-assessment");
                tracing::warn!("something inside the exchange");
                ProtocolResponse {
                    status: 200,
                    body: Bytes::from_static(b"{}"),
                }
            }
        };
        let call = Call {
            parts: http::Request::post(paths::EXCHANGE)
                .body(())
                .unwrap()
                .into_parts()
                .0,
            body: Bytes::new(),
            peer_cert: None,
        };
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(peer_requests(
                handler,
                Transport::Quic,
                DeptId::new("civil-registry").unwrap(),
            )(call));
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .find(|l: &serde_json::Value| l["fields"]["message"] == "something inside the exchange")
            .unwrap_or_else(|| panic!("{text}"));
        let root = &line["span"];
        assert_eq!(root["name"], "peer_request", "{line}");
        assert_eq!(
            root["request_id"].as_str().map(str::len),
            Some(16),
            "{line}"
        );
        assert_eq!(root["exchange"], id.to_string(), "{line}");
        assert_eq!(root["peer"], "tax-office", "{line}");
        assert_eq!(root["transport"], "quic", "{line}");
        assert!(!text.contains("D000042"), "{text}");
    }

    #[test]
    fn no_traceparent_without_a_trace_pipeline() {
        // No OpenTelemetry layer is installed in unit tests: nothing to propagate, nothing invented.
        assert_eq!(traceparent(&tracing::info_span!("x")), None);
    }
}
