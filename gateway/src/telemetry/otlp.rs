//! The HTTP client that carries OTLP to the collector: HTTP/1.1 over the hyper and tokio-rustls
//! (ring) already in the workspace, instead of the reqwest client opentelemetry-otlp would bring.
//!
//! The SDK exports from its own threads, outside any tokio runtime, so requests run on one small
//! runtime of their own that lives as long as the process; export never competes with exchanges
//! for the gateway's workers and keeps working while the gateway's runtime shuts down.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

use super::TelemetryError;

/// Longest wait for one export request, connection included.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest collector answer read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Posts OTLP requests to a collector over `http://` or `https://` (with `[telemetry] ca`).
#[derive(Clone)]
pub(crate) struct CollectorClient {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for CollectorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorClient")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl CollectorClient {
    /// A client trusting the CA bundle `ca` for `https://` collectors (none: `http://` only).
    pub(crate) fn new(ca: Option<&Path>) -> Result<CollectorClient, TelemetryError> {
        let Some(ca) = ca else {
            return Ok(CollectorClient { tls: None });
        };
        let problem = |problem: String| TelemetryError::Ca {
            path: ca.to_owned(),
            problem,
        };
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(ca).map_err(|e| problem(e.to_string()))? {
            roots
                .add(der.map_err(|e| problem(e.to_string()))?)
                .map_err(|e| problem(format!("not a usable CA certificate: {e}")))?;
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(crate::identity::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| problem(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(CollectorClient {
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
        })
    }

    async fn post(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (mut parts, body) = request.into_parts();
        let host = parts
            .uri
            .host()
            .ok_or("the collector URL has no host")?
            .to_owned();
        let https = parts.uri.scheme_str() == Some("https");
        let port = parts.uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = parts
            .uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.to_string());
        parts.uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()?;
        parts.headers.insert(http::header::HOST, authority.parse()?);
        let request = Request::from_parts(parts, Full::new(body));
        let tcp = tokio::net::TcpStream::connect((
            host.trim_start_matches('[').trim_end_matches(']'),
            port,
        ))
        .await?;
        let _ = tcp.set_nodelay(true);
        if !https {
            return exchange(tcp, request).await;
        }
        let tls = self
            .tls
            .as_ref()
            .ok_or("an https:// collector needs [telemetry] ca (the PEM bundle that signed its certificate)")?;
        let name = ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )?;
        exchange(tls.connect(name, tcp).await?, request).await
    }
}

async fn exchange<IO>(io: IO, request: Request<Full<Bytes>>) -> Result<Response<Bytes>, HttpError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}

fn export_runtime() -> Result<&'static tokio::runtime::Runtime, HttpError> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-export")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| "cannot start the OTLP export runtime".into())
}

// The trait is declared with `async_trait`; this is its expansion, to avoid one more dependency.
impl HttpClient for CollectorClient {
    fn send_bytes<'client, 'call>(
        &'client self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'call>>
    where
        'client: 'call,
        Self: 'call,
    {
        let client = self.clone();
        Box::pin(async move {
            let (answer, answered) = tokio::sync::oneshot::channel();
            export_runtime()?.spawn(async move {
                let result = match tokio::time::timeout(EXPORT_TIMEOUT, client.post(request)).await
                {
                    Ok(result) => result,
                    Err(_) => Err("the collector did not answer in time".into()),
                };
                let _ = answer.send(result);
            });
            answered
                .await
                .map_err(|_| HttpError::from("the OTLP export was dropped"))?
        })
    }
}
