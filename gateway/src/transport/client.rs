//! The consumer's side of the HTTPS peer port: one HTTP/2 connection per provider, over mTLS, reused
//! across exchanges, and checked to be the department we meant to reach.
//!
//! Requests go straight onto the `h2` connection from the task that asks, and the answer wakes that
//! task directly: hyper's client would hand each request to its connection task over a channel and
//! spawn one more task per request to wait for the answer (docs/performance-history.md, "Seventh pass").

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::Request;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::sync::Mutex;

use super::MAX_RESPONSE_BYTES;
use crate::directory::Department;
use crate::identity::revocation::{refused, Revocation};
use crate::identity::{identity_from_cert, DeptId};

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
    revocation: Option<Arc<Revocation>>,
}

type PeerSlot = Mutex<Option<Connection>>;

/// An open HTTP/2 connection to a peer.
#[derive(Clone)]
struct Connection {
    sender: SendRequest<Bytes>,
    /// Set when the task driving the connection ends (the peer closed it, or it failed).
    closed: Arc<AtomicBool>,
    /// The endpoint it was made to: a directory that moves the peer elsewhere retires it.
    endpoint: Arc<str>,
}

/// HTTP/2 settings as hyper's client had them: windows larger than the protocol's 64 KiB default,
/// so that a large answer is not held up by flow control, and no server push.
fn h2_builder() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_header_list_size(16 * 1024)
        .max_send_buffer_size(1024 * 1024)
        .enable_push(false);
    builder
}

impl PeerClient {
    /// A client presenting our certificate (in `tls`) to peers of `federation`.
    pub fn new(tls: Arc<ClientConfig>, federation: String) -> Self {
        PeerClient {
            connector: tokio_rustls::TlsConnector::from(tls),
            federation,
            connections: std::sync::Mutex::new(HashMap::new()),
            revocation: None,
        }
    }

    /// Close each pooled connection as soon as `revocation` refuses the provider's certificate,
    /// so that no request goes out on it after a CRL revoking it is applied.
    pub fn with_revocation(mut self, revocation: Arc<Revocation>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Send one request and read the whole (bounded) answer.
    pub async fn send(
        &self,
        dept: &Department,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), PeerError> {
        tokio::time::timeout(timeout, self.send_inner(dept, request))
            .await
            .map_err(|_| PeerError::Timeout(dept.id.clone()))?
    }

    async fn send_inner(
        &self,
        dept: &Department,
        request: Request<Bytes>,
    ) -> Result<(u16, Bytes), PeerError> {
        let protocol = |problem: String| PeerError::Protocol {
            dept: dept.id.clone(),
            problem,
        };
        let (mut head, body) = request.into_parts();
        if !body.is_empty() {
            head.headers
                .insert(http::header::CONTENT_LENGTH, body.len().into());
        }
        // The slot hands out a clone of the connection's sender: it is this request's own.
        let Connection { sender, closed, .. } = self.connection(dept).await?;
        let (mut sender, closed) = match sender.ready().await {
            Ok(sender) => (sender, closed),
            Err(_) => {
                // Closed or gone away (the provider restarted, say) before anything of this
                // request was sent: one fresh connection.
                self.forget(&dept.id, &closed).await;
                let Connection { sender, closed, .. } = self.connection(dept).await?;
                let sender = sender.ready().await.map_err(|e| protocol(e.to_string()))?;
                (sender, closed)
            }
        };
        let sent = sender
            .send_request(Request::from_parts(head, ()), body.is_empty())
            .and_then(|(response, mut stream)| {
                if !body.is_empty() {
                    stream.send_data(body, true)?;
                }
                Ok(response)
            });
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.forget(&dept.id, &closed).await;
                return Err(protocol(e.to_string()));
            }
        };
        let response = response.await.map_err(|e| protocol(e.to_string()))?;
        let status = response.status().as_u16();
        let body = read_body(response.into_body(), MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| protocol(format!("reading the answer: {e}")))?;
        Ok((status, body))
    }

    /// Drop the connection whose end `closed` marks from its slot, unless another request already
    /// replaced it.
    async fn forget(&self, dept: &DeptId, closed: &Arc<AtomicBool>) {
        let slot = self.slot(dept);
        let mut slot = slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(&held.closed, closed))
        {
            *slot = None;
        }
    }

    fn slot(&self, dept: &DeptId) -> Arc<PeerSlot> {
        self.connections
            .lock()
            .expect("the slot map is never left poisoned: no code panics while holding it")
            .entry(dept.clone())
            .or_default()
            .clone()
    }

    async fn connection(&self, dept: &Department) -> Result<Connection, PeerError> {
        let slot = self.slot(&dept.id);
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref() {
            // A connection to an endpoint the directory no longer names is left to close once
            // its requests end (its last sender dropped).
            if !connection.closed.load(Ordering::Acquire)
                && dept.https.as_deref() == Some(&*connection.endpoint)
            {
                return Ok(connection.clone());
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
            Ok(identity) if identity == dept.identity() => {}
            Ok(other) => {
                return Err(wrong(format!(
                    "its certificate says {}",
                    other.uri(&self.federation)
                )))
            }
            Err(e) => return Err(wrong(e.to_string())),
        }
        let mut watch = self
            .revocation
            .as_ref()
            .map(|revocation| revocation.watch_peer(cert.clone()));
        let (sender, conn) = h2_builder()
            .handshake(tls)
            .await
            .map_err(|e| unreachable(format!("HTTP/2: {e}")))?;
        let closed = Arc::new(AtomicBool::new(false));
        let id = dept.id.clone();
        let ended = Arc::clone(&closed);
        tokio::spawn(async move {
            tokio::select! {
                result = conn => if let Err(e) = result {
                    tracing::debug!(peer = %id, error = %e, "peer connection closed");
                },
                reason = refused(&mut watch) => {
                    // Dropping the connection closes it and fails every request still on it.
                    tracing::info!(peer = %id, reason, "connection to a peer closed: the CRL in force refuses it");
                }
            }
            ended.store(true, Ordering::Release);
        });
        let connection = Connection {
            sender,
            closed,
            endpoint: endpoint.as_str().into(),
        };
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// The whole answer, up to `limit` bytes; an answer in one DATA frame is not copied.
async fn read_body(mut body: h2::RecvStream, limit: usize) -> Result<Bytes, String> {
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut len = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = body.flow_control().release_capacity(chunk.len());
        len += chunk.len();
        if len > limit {
            return Err(format!("the answer is longer than {limit} bytes"));
        }
        match first.take() {
            None if rest.is_empty() => first = Some(chunk),
            None => rest.extend_from_slice(&chunk),
            Some(earlier) => {
                rest.extend_from_slice(&earlier);
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answer one request over a real HTTP/2 connection (in memory) with `frames` as its DATA
    /// frames, and read it back as the peer client does, with `limit`.
    async fn answered_with(
        frames: &'static [&'static [u8]],
        limit: usize,
    ) -> Result<Bytes, String> {
        let (near, far) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut conn = h2::server::handshake(far).await.expect("server handshake");
            let (_, mut respond) = conn
                .accept()
                .await
                .expect("a request")
                .expect("a well-formed request");
            let mut stream = respond
                .send_response(http::Response::new(()), frames.is_empty())
                .expect("send the head");
            for (i, frame) in frames.iter().enumerate() {
                stream
                    .send_data(Bytes::from_static(frame), i + 1 == frames.len())
                    .expect("send a frame");
            }
            while conn.accept().await.is_some() {}
        });
        let (sender, conn) = h2_builder()
            .handshake::<_, Bytes>(near)
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut sender = sender.ready().await.expect("ready");
        let request = Request::get("https://civil-registry/")
            .body(())
            .expect("request");
        let (response, _) = sender.send_request(request, true).expect("send");
        let response = response.await.expect("an answer");
        read_body(response.into_body(), limit).await
    }

    #[tokio::test]
    async fn an_answer_in_one_frame_in_several_or_in_none_reads_back_whole() {
        assert_eq!(
            answered_with(&[b"{\"rows\":[]}"], 100).await.unwrap(),
            &b"{\"rows\":[]}"[..]
        );
        assert_eq!(
            answered_with(&[b"ab", b"cd", b"ef"], 100).await.unwrap(),
            &b"abcdef"[..]
        );
        assert_eq!(answered_with(&[], 100).await.unwrap(), &b""[..]);
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_limit_is_refused_wherever_it_crosses_it() {
        assert_eq!(
            answered_with(&[b"abcdef"], 6).await.unwrap(),
            &b"abcdef"[..]
        );
        const ONE: &[&[u8]] = &[b"abcdefg"];
        const THREE: &[&[u8]] = &[b"abc", b"def", b"g"];
        for frames in [ONE, THREE] {
            let e = answered_with(frames, 6).await.unwrap_err();
            assert_eq!(e, "the answer is longer than 6 bytes");
        }
    }
}
