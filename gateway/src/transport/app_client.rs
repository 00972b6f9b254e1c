//! An application's connection to its own gateway's client API: mutual TLS with the application's
//! certificate (or plain HTTP where the gateway is set up for development), the officer's token,
//! one HTTP/1.1 request per connection. `causeway request`, the demo's traffic and the tests use it.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use crate::identity::tls::TlsMaterial;

/// A client of one gateway's client API.
#[derive(Clone)]
pub struct AppClient {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl AppClient {
    /// Plain HTTP, for a gateway whose client API is set to `insecure_plaintext_as`.
    pub fn plaintext(addr: SocketAddr) -> Self {
        AppClient { addr, tls: None }
    }

    /// Mutual TLS: the gateway verified against the CA bundle `ca`, the application's `cert` and
    /// `key` presented.
    pub fn mutual_tls(addr: SocketAddr, ca: &Path, cert: &Path, key: &Path) -> Result<Self> {
        let tls = TlsMaterial::load(ca, None, cert, key)?.application_client_config()?;
        Ok(AppClient {
            addr,
            tls: Some(tokio_rustls::TlsConnector::from(tls)),
        })
    }

    /// The address it calls.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// POST `body` to `path` with `headers` (`content-type: application/json` and `host` are set
    /// unless given); the status and the raw answer.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Bytes)> {
        let addr = self.addr;
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| {
                format!("cannot reach the gateway's client API at {addr}; is it running?")
            })?;
        let _ = stream.set_nodelay(true);
        let mut request = http::Request::post(path);
        let named = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !named("host") {
            request = request.header(http::header::HOST, addr.to_string());
        }
        if !named("content-type") {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        let response = match &self.tls {
            Some(connector) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let tls = connector
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS with the client API at {addr}"))?;
                send(TokioIo::new(tls), request).await?
            }
            None => send(TokioIo::new(stream), request).await?,
        };
        Ok(response)
    }
}

async fn send<T>(io: T, request: http::Request<Full<Bytes>>) -> Result<(u16, Bytes)>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// The shape of a request an application sends, for callers that build it from parts.
pub fn request_body(
    provider: &str,
    dataset: &str,
    params: serde_json::Value,
    purpose: &str,
    legal_basis: &str,
    case: &str,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "provider": provider, "dataset": dataset, "params": params, "purpose": purpose,
        "legal_basis": legal_basis, "case": case,
    }))
    .expect("plain JSON values serialize")
}

/// `Authorization` header value for a bearer `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
