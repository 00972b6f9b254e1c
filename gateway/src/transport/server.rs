//! One accept loop for every listener: optional TLS (required client certificates on peer ports),
//! HTTP/1.1 and HTTP/2, size and time limits, graceful shutdown that drains in-flight requests.

use std::future::Future;
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

use crate::exchange::ProtocolResponse;

/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request header block.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What a handler sees of a request.
pub struct Call {
    /// The request head.
    pub parts: http::request::Parts,
    /// The body, read in full (bounded).
    pub body: Bytes,
    /// The peer's leaf certificate, on TLS listeners.
    pub peer_cert: Option<CertificateDer<'static>>,
}

/// Serve `handler` on `listener` until `shutdown` turns true, then drain.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    max_body: usize,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Call) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ProtocolResponse> + Send + 'static,
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
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_concurrent_streams(256);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
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
                    let svc = hyper::service::service_fn(move |req| {
                        handle(handler.clone(), max_body, peer_cert.clone(), req)
                    });
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                }
                None => {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(handler.clone(), max_body, None, req)
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
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

async fn handle<H, F>(
    handler: H,
    max_body: usize,
    peer_cert: Option<CertificateDer<'static>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible>
where
    H: Fn(Call) -> F,
    F: Future<Output = ProtocolResponse>,
{
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
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
            let r = crate::exchange::rescue::json_response(
                status,
                &serde_json::json!({"error": {"code": code, "message": message}}),
            );
            return Ok(to_http(r));
        }
    };
    Ok(to_http(
        handler(Call {
            parts,
            body,
            peer_cert,
        })
        .await,
    ))
}

/// A protocol response as an HTTP response.
pub fn to_http(r: ProtocolResponse) -> Response<Full<Bytes>> {
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
