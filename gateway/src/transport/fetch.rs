//! Fetching a published file (the federation directory) from an HTTPS URL under the federation
//! CA: mutual TLS with this node's own certificate, the server verified against the federation's
//! trust bundle and the CRL in force, one HTTP/1.1 GET per fetch, the body capped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

/// How long one fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a published file is fetched from, and how.
#[derive(Clone)]
pub struct Fetcher {
    url: http::Uri,
    host: String,
    port: u16,
    tls: tokio_rustls::TlsConnector,
    max_bytes: usize,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher of `url` (`https://host[:port]/path`) with `tls` (this node's client config,
    /// which verifies servers against the federation CA), reading at most `max_bytes`.
    pub fn new(url: &str, tls: Arc<ClientConfig>, max_bytes: usize) -> anyhow::Result<Fetcher> {
        let parsed: http::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("{url:?} is not a URL: {e}"))?;
        anyhow::ensure!(
            parsed.scheme_str() == Some("https"),
            "{url:?} must be an https:// URL (served with a certificate of the federation CA)"
        );
        let host = parsed
            .host()
            .ok_or_else(|| anyhow::anyhow!("{url:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        ServerName::try_from(host.clone())
            .map_err(|_| anyhow::anyhow!("{url:?}: {host:?} is not a host name or address"))?;
        Ok(Fetcher {
            port: parsed.port_u16().unwrap_or(443),
            url: parsed,
            host,
            tls: tokio_rustls::TlsConnector::from(tls),
            max_bytes,
        })
    }

    /// The URL, for messages.
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// GET the file: its bytes, or what went wrong (naming the URL's host, never a secret).
    pub async fn fetch(&self) -> Result<Vec<u8>, String> {
        tokio::time::timeout(FETCH_TIMEOUT, self.get())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {FETCH_TIMEOUT:?}")))
    }

    async fn get(&self) -> Result<Vec<u8>, String> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let path = self.url.path_and_query().map_or("/", |p| p.as_str());
        let request = http::Request::get(path)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| format!("the body: {e} (at most {} bytes)", self.max_bytes))?;
        Ok(body.to_bytes().to_vec())
    }
}
