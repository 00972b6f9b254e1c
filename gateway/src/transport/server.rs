//! One accept loop for every listener: optional TLS (required client certificates on peer ports),
//! HTTP/1.1 and HTTP/2, connection limits ([`super::limits`]), size and time limits, an idle
//! timeout that counts requests rather than frames, and graceful shutdown that drains in-flight
//! requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::coalesce::Coalesce;
use super::limits::Connections;
use super::{json_response, ProtocolResponse};
use crate::identity::revocation::{refused, PeerWatch};

/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request header block.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Time allowed to send a whole request body once the headers are in: a client that stalls its
/// body (a slowloris on the body) gets `408 body-timeout` and its connection back, instead of
/// holding a task and a buffer forever (docs/PROTOCOL.md, "Limits").
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 keep-alive: a PING after this much silence on a connection, which is closed if the PING
/// is not answered within [`KEEPALIVE_TIMEOUT`], so dead peers do not hold connections.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long an HTTP/2 keep-alive PING may go unanswered.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler sees of a request.
pub struct Call {
    /// The request head.
    pub parts: http::request::Parts,
    /// The body, read in full (bounded).
    pub body: Bytes,
    /// The peer's leaf certificate, on TLS listeners.
    pub peer_cert: Option<CertificateDer<'static>>,
}

/// Serve `handler` on `listener` until `shutdown` turns true, then drain. Handlers answer with a
/// [`ProtocolResponse`] (status and JSON) or, like the oversight dashboard, a full HTTP response.
///
/// `connections` holds the listener's [`ListenerLimits`](super::limits::ListenerLimits): a
/// connection over its limits is closed as soon as it is accepted, before TLS, and one with no
/// request in flight for the idle timeout is closed gracefully.
pub async fn serve<H, F, R>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    connections: Arc<Connections>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Call) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
    R: Into<Response<Full<Bytes>>> + 'static,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let limits = *connections.limits();
    let mut tasks = JoinSet::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        while tasks.try_join_next().is_some() {}
        let permit = match connections.admit(remote.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                tracing::debug!(%remote, listener = connections.name(), limit = refusal.as_str(),
                    "connection refused: over the listener's connection limit");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let acceptor = acceptor.clone();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_concurrent_streams(256);
        let connection = Connection {
            connections: connections.clone(),
            remote,
            activity: Arc::new(Activity::new()),
            shutdown: shutdown.clone(),
        };
        tasks.spawn(async move {
            let _permit = permit;
            let activity = connection.activity.clone();
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(Coalesce::new(stream)),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    let peer_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .cloned();
                    // Per connection, not per request: a watch that wakes when a new CRL is applied.
                    let watch = connection
                        .connections
                        .revocation()
                        .zip(peer_cert.clone())
                        .map(|(revocation, leaf)| revocation.watch_peer(leaf));
                    let svc = hyper::service::service_fn(move |req| {
                        let request = activity.begin();
                        handle(
                            handler.clone(),
                            limits.max_body,
                            peer_cert.clone(),
                            req,
                            request,
                        )
                    });
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    connection
                        .drive(conn.into_owned(), limits.idle_timeout, watch)
                        .await;
                }
                None => {
                    let svc = hyper::service::service_fn(move |req| {
                        let request = activity.begin();
                        handle(handler.clone(), limits.max_body, None, req, request)
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    connection
                        .drive(conn.into_owned(), limits.idle_timeout, None)
                        .await;
                }
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some connections did not finish within 10 s of shutdown");
        // Left to finish on their own: shutdown waits no longer for them.
        tasks.detach_all();
    }
}

/// How long shutdown waits for connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection told to close (idle, or shutting down) may take to finish closing once
/// no request is in flight: an HTTP/2 graceful close waits for the client to answer a PING, and a
/// client that never does is dropped after this.
const CLOSE_GRACE: Duration = KEEPALIVE_TIMEOUT;

/// A connection's requests in flight and when the last one ended: its idle clock counts requests,
/// not frames, so PINGs and other control frames do not keep a connection open. A few atomic
/// operations per request, no lock.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    begun: AtomicBool,
    /// When the last request ended, in milliseconds since `opened`.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            begun: AtomicBool::new(false),
            last_end_ms: AtomicU64::new(0),
        }
    }

    /// A request has begun; it ends when the returned guard is dropped (answered, or abandoned by
    /// hyper because the client reset it).
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.begun.store(true, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection will have been idle for `idle`; `None` while a request is in flight.
    fn idle_at(&self, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last_end = Duration::from_millis(self.last_end_ms.load(Ordering::Acquire));
        Some(self.opened + last_end + idle)
    }
}

/// One request in flight on a connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        // Rounded up: the idle clock may close a connection late by a millisecond, never early.
        let now = activity.opened.elapsed().as_millis() as u64 + 1;
        activity.last_end_ms.fetch_max(now, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one connection's task knows besides the hyper connection itself.
struct Connection {
    connections: Arc<Connections>,
    remote: SocketAddr,
    activity: Arc<Activity>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Drive `conn` to its end. Close it gracefully once no request has been in flight for
    /// `idle`, or when the listener shuts down; drop it if no request has begun within
    /// [`HEADER_TIMEOUT`] (hyper's header timeout starts only once HTTP/1.1 is chosen, so a client
    /// that connects and says nothing, or stalls the HTTP/2 preface, would otherwise hold it), or
    /// if it has not finished closing [`CLOSE_GRACE`] after being told to with nothing in flight.
    /// Drop it at once, requests in flight and all, when `watch` says its peer is refused (its
    /// certificate revoked): a revoked department gets nothing more, not even a graceful end.
    async fn drive<C>(mut self, conn: C, idle: Duration, mut watch: Option<PeerWatch>)
    where
        C: GracefulConnection,
        C::Error: std::fmt::Display,
    {
        let remote = self.remote;
        tokio::pin!(conn);
        let header_deadline = tokio::time::sleep(HEADER_TIMEOUT);
        tokio::pin!(header_deadline);
        let mut header_checked = false;
        let mut closing_since: Option<Instant> = None;
        let ended = loop {
            let now = Instant::now();
            let wake = match closing_since {
                None => self.activity.idle_at(idle).unwrap_or(now + idle),
                Some(since) => since + CLOSE_GRACE,
            };
            tokio::select! {
                ended = conn.as_mut() => break ended,
                reason = refused(&mut watch) => {
                    tracing::info!(%remote, listener = self.connections.name(), reason,
                        "peer connection closed: the CRL in force refuses its peer");
                    return;
                }
                _ = &mut header_deadline, if !header_checked => {
                    header_checked = true;
                    if !self.activity.begun.load(Ordering::Relaxed) {
                        tracing::info!(%remote, "no request within the header timeout; connection closed");
                        return;
                    }
                }
                _ = self.shutdown.changed(), if closing_since.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let idle_at = self.activity.idle_at(idle);
                    match closing_since {
                        None if idle_at.is_some_and(|at| at <= Instant::now()) => {
                            tracing::debug!(%remote, listener = self.connections.name(),
                                idle_secs = idle.as_secs_f64(), "idle connection closed");
                            self.connections.count_idle_close();
                            conn.as_mut().graceful_shutdown();
                            closing_since = Some(Instant::now());
                        }
                        Some(_) if idle_at.is_some() => {
                            tracing::debug!(%remote, "the connection did not finish closing; dropped");
                            return;
                        }
                        // A request is in flight: never cut it; look again later.
                        Some(_) => closing_since = Some(Instant::now()),
                        None => {}
                    }
                }
            }
        };
        if let Err(e) = ended {
            tracing::debug!(%remote, error = %e, "connection ended with an error");
        }
    }
}

/// Read the body (bounded in size and time) and answer with `handler`; `_in_flight` marks the
/// request in flight on its connection until the answer is ready or hyper drops it.
async fn handle<H, F, R>(
    handler: H,
    max_body: usize,
    peer_cert: Option<CertificateDer<'static>>,
    req: Request<Incoming>,
    _in_flight: InFlight,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible>
where
    H: Fn(Call) -> F,
    F: Future<Output = R>,
    R: Into<Response<Full<Bytes>>>,
{
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max_body).collect());
    let body = match collected.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Err(_) => {
            let r = json_response(
                408,
                &serde_json::json!({"error": {"code": "body-timeout", "message":
                    format!("the request body did not arrive within {} s", BODY_TIMEOUT.as_secs())}}),
            );
            return Ok(r.into());
        }
        Ok(Err(e)) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let (status, code, message) = if too_large {
                (
                    413,
                    "body-too-large",
                    format!("the request body is larger than {max_body} bytes"),
                )
            } else {
                (
                    400,
                    "bad-body",
                    "the request body could not be read".to_owned(),
                )
            };
            let r = json_response(
                status,
                &serde_json::json!({"error": {"code": code, "message": message}}),
            );
            return Ok(r.into());
        }
    };
    Ok(handler(Call {
        parts,
        body,
        peer_cert,
    })
    .await
    .into())
}

/// A protocol response as an HTTP response.
impl From<ProtocolResponse> for Response<Full<Bytes>> {
    fn from(r: ProtocolResponse) -> Self {
        let content_type = if r.body.first() == Some(&b'{') {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        Response::builder()
            .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(r.body))
            .expect("a response from a valid status and static header always builds")
    }
}
