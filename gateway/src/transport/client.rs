//! The consumer's side of the HTTPS peer port: one HTTP/2 connection per provider, over mTLS, reused
//! across exchanges, and checked to be the department we meant to reach.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::sync::Mutex;

use super::MAX_RESPONSE_BYTES;
use crate::config::Department;
use crate::identity::{identity_from_cert, DeptId, PeerIdentity};

/// Why a peer could not be asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The directory lists no endpoint of that transport for it.
    #[error("department {dept} has no {transport} endpoint in the federation directory")]
    NoEndpoint {
        /// Department.
        dept: DeptId,
        /// The transport asked for.
        transport: super::Transport,
    },
    /// TCP or TLS failed.
    #[error("cannot reach {dept} at {endpoint}: {problem}")]
    Unreachable {
        /// Department.
        dept: DeptId,
        /// Endpoint.
        endpoint: String,
        /// What went wrong.
        problem: String,
    },
    /// The server's certificate is not that department's.
    #[error("the server at {endpoint} is not department {dept}: {problem}")]
    WrongPeer {
        /// Department expected.
        dept: DeptId,
        /// Endpoint.
        endpoint: String,
        /// What it was instead.
        problem: String,
    },
    /// No answer in time.
    #[error("department {0} did not answer in time")]
    Timeout(DeptId),
    /// The peer reset the QUIC stream (docs/PROTOCOL.md, "Reset codes").
    #[error("department {dept} reset the exchange's stream with {}", describe_reset(*.code))]
    Reset {
        /// Department.
        dept: DeptId,
        /// The application error code.
        code: u64,
    },
    /// An HTTP/2 or QUIC error mid-exchange.
    #[error("the exchange with {dept} failed: {problem}")]
    Protocol {
        /// Department.
        dept: DeptId,
        /// What went wrong.
        problem: String,
    },
}

fn describe_reset(code: u64) -> String {
    match super::frame::ResetCode::from_code(code) {
        Some(c) => c.to_string(),
        None => format!("unknown code 0x{code:x}"),
    }
}

/// Connections to peer gateways.
pub struct PeerClient {
    connector: tokio_rustls::TlsConnector,
    federation: String,
    /// One slot per peer. Connecting happens under that peer's slot only, so a peer that is
    /// black-holed (accepts and never answers) delays requests to itself, never those to others.
    connections: std::sync::Mutex<HashMap<DeptId, Arc<PeerSlot>>>,
}

type PeerSlot = Mutex<Option<SendRequest<Full<Bytes>>>>;

impl PeerClient {
    /// A client presenting our certificate (in `tls`) to peers of `federation`.
    pub fn new(tls: Arc<ClientConfig>, federation: String) -> Self {
        PeerClient {
            connector: tokio_rustls::TlsConnector::from(tls),
            federation,
            connections: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Send one request and read the whole (bounded) answer.
    pub async fn send(
        &self,
        dept: &Department,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), PeerError> {
        tokio::time::timeout(timeout, self.send_inner(dept, request))
            .await
            .map_err(|_| PeerError::Timeout(dept.id.clone()))?
    }

    async fn send_inner(
        &self,
        dept: &Department,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes), PeerError> {
        let mut sender = self.connection(dept).await?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.slot(&dept.id).lock().await.take();
                return Err(PeerError::Protocol {
                    dept: dept.id.clone(),
                    problem: e.to_string(),
                });
            }
        };
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| PeerError::Protocol {
                dept: dept.id.clone(),
                problem: format!("reading the answer: {e}"),
            })?
            .to_bytes();
        Ok((status, body))
    }

    fn slot(&self, dept: &DeptId) -> Arc<PeerSlot> {
        self.connections
            .lock()
            .expect("the slot map is never left poisoned: no code panics while holding it")
            .entry(dept.clone())
            .or_default()
            .clone()
    }

    async fn connection(&self, dept: &Department) -> Result<SendRequest<Full<Bytes>>, PeerError> {
        let slot = self.slot(&dept.id);
        let mut slot = slot.lock().await;
        if let Some(sender) = slot.as_ref() {
            if !sender.is_closed() && sender.is_ready() {
                return Ok(sender.clone());
            }
            *slot = None;
        }
        let endpoint = dept.https.clone().ok_or_else(|| PeerError::NoEndpoint {
            dept: dept.id.clone(),
            transport: super::Transport::Https,
        })?;
        let unreachable = |problem: String| PeerError::Unreachable {
            dept: dept.id.clone(),
            endpoint: endpoint.clone(),
            problem,
        };
        let host = endpoint
            .rsplit_once(':')
            .map_or(endpoint.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|e| unreachable(e.to_string()))?;
        let tcp = tokio::net::TcpStream::connect(&endpoint)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(server_name, super::coalesce::Coalesce::new(tcp))
            .await
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        let wrong = |problem: String| PeerError::WrongPeer {
            dept: dept.id.clone(),
            endpoint: endpoint.clone(),
            problem,
        };
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| wrong("it presented no certificate".into()))?;
        match identity_from_cert(cert, &self.federation) {
            Ok(PeerIdentity::Dept(id)) if id == dept.id => {}
            Ok(other) => {
                return Err(wrong(format!(
                    "its certificate says {}",
                    other.uri(&self.federation)
                )))
            }
            Err(e) => return Err(wrong(e.to_string())),
        }
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| unreachable(format!("HTTP/2: {e}")))?;
        let id = dept.id.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %id, error = %e, "peer connection closed");
            }
        });
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// POST JSON over plain HTTP/1.1 to a loopback listener (an application calling its gateway's
/// client API); returns the status and the raw body.
pub async fn post_json(
    addr: std::net::SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, Bytes)> {
    use anyhow::Context;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| {
            format!("cannot reach the gateway's client API at {addr}; is it running?")
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
