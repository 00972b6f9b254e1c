//! One accept loop for every listener: optional TLS (required client certificates on peer ports),
//! HTTP/1.1 and HTTP/2, size and time limits, graceful shutdown that drains in-flight requests.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::coalesce::Coalesce;
use super::{json_response, ProtocolResponse};

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
pub async fn serve<H, F, R>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    max_body: usize,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Call) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
    R: Into<Response<Full<Bytes>>> + 'static,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
        let watcher = graceful.watcher();
        tokio::spawn(async move {
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
                    let started = Arc::new(AtomicBool::new(false));
                    let seen = started.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        seen.store(true, Ordering::Relaxed);
                        handle(handler.clone(), max_body, peer_cert.clone(), req)
                    });
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    until_done(watcher.watch(conn.into_owned()), &started, remote).await;
                }
                None => {
                    let started = Arc::new(AtomicBool::new(false));
                    let seen = started.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        seen.store(true, Ordering::Relaxed);
                        handle(handler.clone(), max_body, None, req)
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    until_done(watcher.watch(conn.into_owned()), &started, remote).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within 10 s of shutdown");
    }
}

/// Drive one connection to its end, but drop it if no request has begun within
/// [`HEADER_TIMEOUT`]: hyper's header timeout starts only once HTTP/1.1 is chosen, so a client that
/// connects and says nothing (or stalls the HTTP/2 preface) would otherwise hold it forever.
async fn until_done<C, E>(conn: C, started: &AtomicBool, remote: std::net::SocketAddr)
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = &mut conn => ended,
        _ = tokio::time::sleep(HEADER_TIMEOUT) => {
            if !started.load(Ordering::Relaxed) {
                tracing::info!(%remote, "no request within the header timeout; connection closed");
                return;
            }
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

async fn handle<H, F, R>(
    handler: H,
    max_body: usize,
    peer_cert: Option<CertificateDer<'static>>,
    req: Request<Incoming>,
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
