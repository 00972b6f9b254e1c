//! "Send this request to department D": the consumer side's one door to the peer transports.
//!
//! [`PeerTransport`] picks the preferred transport (`[peer] prefer`), uses QUIC when the directory
//! lists a `quic://` endpoint for the department, and falls back to HTTPS when QUIC could not
//! carry the request at all (no handshake, no stream, or refused unread). A request that may have
//! reached the provider is never sent twice: its envelope would be refused as a replay anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::{PeerClient, PeerError};
use super::quic::{Delivery, QuicClient};
use super::SIGNATURE_HEADER;
use super::{Transport, HTTPS_ALPN, QUIC_ALPN};
use crate::directory::Department;
use crate::identity::tls::TlsMaterial;

/// Longest wait for a QUIC handshake before falling back to HTTPS; at most a third of the
/// request's time is spent on it.
pub const QUIC_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A request to a peer, whichever transport carries it.
#[derive(Debug, Clone)]
pub struct PeerRequest {
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// The envelope signature, for exchanges.
    pub signature: Option<String>,
    /// W3C trace context of the caller's span (`traceparent` header over HTTPS, frame field over
    /// QUIC), so the provider's spans join the caller's trace.
    pub traceparent: Option<String>,
    /// Body.
    pub body: Bytes,
}

impl PeerRequest {
    /// `POST /causeway/v1/exchange` with a signed envelope.
    pub fn exchange(signature: String, envelope: Bytes) -> Self {
        PeerRequest {
            method: http::Method::POST,
            path: super::paths::EXCHANGE.to_owned(),
            signature: Some(signature),
            traceparent: None,
            body: envelope,
        }
    }

    /// A `GET` of `path` (log endpoints).
    pub fn get(path: impl Into<String>) -> Self {
        PeerRequest {
            method: http::Method::GET,
            path: path.into(),
            signature: None,
            traceparent: None,
            body: Bytes::new(),
        }
    }

    fn to_http(&self, dept: &Department) -> Result<http::Request<Bytes>, PeerError> {
        let mut request = http::Request::builder()
            .method(self.method.clone())
            .uri(format!("https://{}{}", dept.id, self.path));
        if !self.body.is_empty() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(signature) = &self.signature {
            request = request.header(SIGNATURE_HEADER, signature.as_str());
        }
        if let Some(traceparent) = &self.traceparent {
            request = request.header(super::observe::TRACEPARENT, traceparent.as_str());
        }
        request
            .body(self.body.clone())
            .map_err(|e| PeerError::Protocol {
                dept: dept.id.clone(),
                problem: format!("cannot form the request: {e}"),
            })
    }
}

/// Requests sent per transport, and fallbacks from QUIC to HTTPS (for metrics).
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Requests carried over HTTPS (including fallbacks).
    pub https: AtomicU64,
    /// Requests carried over QUIC.
    pub quic: AtomicU64,
    /// Requests that QUIC could not carry and HTTPS did.
    pub fallbacks: AtomicU64,
}

impl TransportStats {
    /// (https, quic, fallbacks) as read now.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.https.load(Ordering::Relaxed),
            self.quic.load(Ordering::Relaxed),
            self.fallbacks.load(Ordering::Relaxed),
        )
    }
}

/// Connections to peer gateways over both transports.
pub struct PeerTransport {
    https: Arc<PeerClient>,
    quic: Option<QuicClient>,
    prefer: Transport,
    stats: TransportStats,
}

impl PeerTransport {
    /// A transport preferring `prefer`; `quic` is needed only when QUIC is preferred.
    pub fn new(https: PeerClient, quic: Option<QuicClient>, prefer: Transport) -> Self {
        PeerTransport {
            https: Arc::new(https),
            quic,
            prefer,
            stats: TransportStats::default(),
        }
    }

    /// The client a node with TLS identity `tls` uses towards the federation `federation`'s peers:
    /// HTTPS always, and a QUIC client too when QUIC is preferred. Both check each provider
    /// against the CRL in force at the handshake and close pooled connections it refuses later.
    pub fn connect(tls: &TlsMaterial, federation: &str, prefer: Transport) -> anyhow::Result<Self> {
        let revocation = tls.revocation().clone();
        let quic = match prefer {
            Transport::Quic => Some(
                QuicClient::new(tls.quic_client_config(QUIC_ALPN)?, federation.to_owned())?
                    .with_revocation(revocation.clone()),
            ),
            Transport::Https => None,
        };
        let https = PeerClient::new(tls.client_config(HTTPS_ALPN)?, federation.to_owned())
            .with_revocation(revocation);
        Ok(PeerTransport::new(https, quic, prefer))
    }

    /// Counters of requests and fallbacks.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// The HTTPS client alone, for callers that speak HTTP requests directly.
    pub fn https_client(&self) -> Arc<PeerClient> {
        self.https.clone()
    }

    /// The preferred transport.
    pub fn prefer(&self) -> Transport {
        self.prefer
    }

    /// Send `request` to `dept` and read the whole (bounded) answer within `timeout`.
    pub async fn send(
        &self,
        dept: &Department,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<(u16, Bytes), PeerError> {
        let deadline = Instant::now() + timeout;
        if let (Transport::Quic, Some(quic), Some(_)) = (self.prefer, &self.quic, &dept.quic) {
            let connect_timeout = (timeout / 3).min(QUIC_CONNECT_TIMEOUT);
            let attempt =
                tokio::time::timeout(timeout, quic.send(dept, &request, connect_timeout)).await;
            match attempt {
                Ok(Ok(answer)) => {
                    self.stats.quic.fetch_add(1, Ordering::Relaxed);
                    return Ok(answer);
                }
                Ok(Err((error, Delivery::NotSent))) => {
                    self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %dept.id, %error, "QUIC failed before the request left; falling back to HTTPS");
                }
                Ok(Err((error, Delivery::MaybeSent))) => return Err(error),
                Err(_) => return Err(PeerError::Timeout(dept.id.clone())),
            }
        }
        let request = request.to_http(dept)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let answer = self.https.send(dept, request, remaining).await?;
        self.stats.https.fetch_add(1, Ordering::Relaxed);
        Ok(answer)
    }

    /// Close QUIC connections (gateway shutdown); HTTPS connections close when dropped.
    pub fn close(&self) {
        if let Some(quic) = &self.quic {
            quic.close();
        }
    }
}
