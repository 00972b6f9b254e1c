//! The QUIC peer port (quinn) and the consumer's QUIC client (docs/PROTOCOL.md, "QUIC peer port").
//!
//! Same trust as the HTTPS port: rustls with the federation roots and a required client
//! certificate, TLS 1.3 only, ALPN `causeway/1`, no 0-RTT. One bidirectional stream carries one
//! exchange as one request [`frame`] and one response frame. The server turns a request frame into
//! the same [`Call`] the HTTPS port builds, so both ports feed one handler (the gateway's peer API)
//! and nothing above this module knows which transport carried a request. Framing errors reset
//! only their stream, with a [`ResetCode`]; the connection keeps serving other streams.
//!
//! Load is bounded before any handshake work: above `quic_max_connections` open or
//! `quic_max_handshakes` in progress a connection attempt is refused, and above
//! `quic_handshakes_before_retry` in progress a client must first prove its address with a Retry.
//! A connection with no stream in flight for the idle timeout is closed with `NO_ERROR`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{AsyncUdpSocket, Connection, ConnectionError, RecvStream, SendStream, VarInt};
use rustls_pki_types::CertificateDer;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinSet;

use super::client::PeerError;
use super::frame::{
    self, FrameError, FrameLimits, Header, RequestHeader, ResetCode, ResponseHeader,
};
use super::limits::{Held, QuicLoad};
use super::peer::PeerRequest;
use super::server::Call;
use super::ProtocolResponse;
use super::SIGNATURE_HEADER;
use super::{Transport, QUIC_ALPN};
use crate::directory::Department;
use crate::identity::revocation::{refused, Revocation};
use crate::identity::{identity_from_cert, DeptId};

/// How long shutdown waits for in-flight streams before closing connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for peers to acknowledge the close and for the socket to be released.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a QUIC endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the QUIC socket on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The rustls configuration cannot be used for QUIC.
    #[error("the TLS configuration cannot be used for QUIC: {0}")]
    Tls(String),
}

/// Limits and timeouts of a QUIC peer port.
#[derive(Debug, Clone)]
pub struct QuicSettings {
    /// Time allowed for a whole request frame, up to the end of its stream (`[peer] quic_frame_timeout_ms`).
    pub frame_timeout: Duration,
    /// Limits on request frames.
    pub limits: FrameLimits,
    /// Time allowed for a handshake.
    pub handshake_timeout: Duration,
    /// A connection with no stream in flight for this long is closed with `NO_ERROR`, whatever
    /// else it sends (PINGs do not keep it open); one with no packets for this long is gone
    /// (`[peer] quic_idle_timeout_secs`).
    pub idle_timeout: Duration,
    /// Concurrent streams (exchanges) per connection.
    pub max_streams: u32,
    /// Connections open at once, handshaking or established (`[peer] quic_max_connections`);
    /// more are refused.
    pub max_connections: usize,
    /// Handshakes in progress at once (`[peer] quic_max_handshakes`); more are refused.
    pub max_handshakes: usize,
    /// Once this many handshakes are in progress, a client must prove its address with a Retry
    /// round trip before its handshake is accepted (`[peer] quic_handshakes_before_retry`).
    pub handshakes_before_retry: usize,
    /// The revocation state whose refusals close open connections with [`ResetCode::Revoked`]
    /// (docs/OPERATIONS.md, "Revoking a department").
    pub revocation: Option<Arc<Revocation>>,
}

impl Default for QuicSettings {
    fn default() -> Self {
        QuicSettings {
            frame_timeout: Duration::from_secs(10),
            limits: FrameLimits::REQUEST,
            handshake_timeout: super::server::HANDSHAKE_TIMEOUT,
            idle_timeout: Duration::from_secs(60),
            max_streams: 256,
            max_connections: 4096,
            max_handshakes: 64,
            handshakes_before_retry: 16,
            revocation: None,
        }
    }
}

fn transport_config(idle: Duration, max_streams: u32) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(max_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    Arc::new(t)
}

fn code(c: ResetCode) -> VarInt {
    VarInt::from_u32(c.code())
}

/// A bound QUIC peer port, not yet serving.
pub struct QuicServer {
    endpoint: quinn::Endpoint,
    socket: Weak<dyn AsyncUdpSocket>,
    settings: QuicSettings,
    load: Arc<QuicLoad>,
}

impl QuicServer {
    /// Bind `addr` with `tls` (from [`crate::identity::tls::TlsMaterial::quic_server_config`]).
    ///
    /// `reset_secret` keys stateless resets (RFC 9000 section 10.3). It must be the same after a
    /// restart (derive it from the gateway's key): then a peer still holding a connection to the
    /// previous process learns at its next packet that the connection is gone, instead of waiting
    /// for the idle timeout.
    pub fn bind(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        reset_secret: [u8; 32],
        settings: QuicSettings,
    ) -> Result<QuicServer, QuicError> {
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| QuicError::Tls(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport_config(
            settings.idle_timeout,
            settings.max_streams,
        ));
        let bind = |source| QuicError::Bind { addr, source };
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let socket = std::net::UdpSocket::bind(addr).map_err(bind)?;
        let socket = runtime.wrap_udp_socket(socket).map_err(bind)?;
        let weak = Arc::downgrade(&socket);
        // Both the reset key and the connection-id key must survive a restart: quinn answers with
        // a stateless reset only packets whose connection id its own generator could have made.
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset_secret);
        let cid_key = u64::from_be_bytes(
            ring::hmac::sign(&reset_key, b"causeway connection id key").as_ref()[..8]
                .try_into()
                .expect("an HMAC-SHA256 tag is longer than 8 bytes"),
        );
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config,
            Some(config),
            socket,
            runtime,
        )
        .map_err(bind)?;
        Ok(QuicServer {
            endpoint,
            socket: weak,
            settings,
            load: Arc::default(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Connections and handshakes in progress, and what the port did about load (for metrics).
    pub fn load(&self) -> Arc<QuicLoad> {
        self.load.clone()
    }

    /// Serve `handler` until `shutdown` turns true; then refuse new connections, let in-flight
    /// streams finish, close every connection and release the UDP port.
    pub async fn serve<H, F>(self, handler: H, mut shutdown: watch::Receiver<bool>)
    where
        H: Fn(Call) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = ProtocolResponse> + Send + 'static,
    {
        let settings = Arc::new(self.settings);
        let load = self.load;
        let (drain, draining) = watch::channel(false);
        let mut connections = JoinSet::new();
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => match incoming {
                    Some(i) => i,
                    None => break,
                },
                _ = shutdown.changed() => break,
            };
            while connections.try_join_next().is_some() {}
            let Some(admitted) = admit(incoming, &settings, &load) else {
                continue;
            };
            connections.spawn(serve_connection(
                admitted,
                handler.clone(),
                settings.clone(),
                load.clone(),
                draining.clone(),
            ));
        }
        self.endpoint.set_server_config(None);
        let _ = drain.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        // NO_ERROR promises the peers that every stream we accepted was answered (PROTOCOL.md).
        let close = if drained.is_err() {
            tracing::warn!("some QUIC exchanges did not finish within 10 s of shutdown");
            connections.abort_all();
            ResetCode::InternalError
        } else {
            ResetCode::NoError
        };
        self.endpoint.close(code(close), b"shutting down");
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.endpoint.wait_idle()).await;
        drop(self.endpoint);
        // The endpoint's driver task drops the socket after our last handle goes; wait for it, so a
        // gateway restarted right away can bind the same port.
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        while self.socket.strong_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A connection attempt let in, holding its places in `load` until its handshake (`handshake`) or
/// the whole connection (`connection`) ends.
struct Admitted {
    incoming: quinn::Incoming,
    handshake: Held,
    connection: Held,
}

/// What to do with a connection attempt: refuse it over the limits, ask the client to prove its
/// address (a Retry, RFC 9000 section 8.1.2) while many handshakes are in progress, or let it in.
/// Only the accept loop calls this, so the counts it checks cannot change before it takes its
/// places.
fn admit(incoming: quinn::Incoming, settings: &QuicSettings, load: &QuicLoad) -> Option<Admitted> {
    let remote = incoming.remote_address();
    let handshakes = load.handshakes();
    if load.open() >= settings.max_connections {
        tracing::debug!(%remote, max = settings.max_connections,
            "QUIC connection refused: quic_max_connections are open");
        load.count_refused(false);
        incoming.refuse();
        None
    } else if handshakes >= settings.max_handshakes {
        tracing::debug!(%remote, max = settings.max_handshakes,
            "QUIC connection refused: quic_max_handshakes are in progress");
        load.count_refused(true);
        incoming.refuse();
        None
    } else if handshakes >= settings.handshakes_before_retry && !incoming.remote_address_validated()
    {
        tracing::debug!(%remote, handshakes, "QUIC client asked to prove its address (Retry)");
        load.count_retry();
        if let Err(e) = incoming.retry() {
            // quinn allows a Retry whenever the address is not validated yet.
            e.into_incoming().refuse();
        }
        None
    } else {
        Some(Admitted {
            incoming,
            handshake: load.hold_handshake(),
            connection: load.hold_connection(),
        })
    }
}

async fn serve_connection<H, F>(
    admitted: Admitted,
    handler: H,
    settings: Arc<QuicSettings>,
    load: Arc<QuicLoad>,
    mut draining: watch::Receiver<bool>,
) where
    H: Fn(Call) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ProtocolResponse> + Send + 'static,
{
    let Admitted {
        incoming,
        handshake,
        connection: _connection,
    } = admitted;
    let remote = incoming.remote_address();
    let handshaken = tokio::time::timeout(settings.handshake_timeout, incoming).await;
    drop(handshake);
    let conn = match handshaken {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::info!(%remote, error = %e, "QUIC handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "QUIC handshake timed out");
            return;
        }
    };
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(QUIC_ALPN[0]) {
        tracing::info!(%remote, "QUIC client did not negotiate ALPN causeway/1");
        conn.close(code(ResetCode::Refused), b"ALPN causeway/1 required");
        return;
    }
    let peer_cert = peer_leaf(&conn);
    // Per connection, not per stream: a watch that wakes when a new CRL is applied.
    let mut watch = settings
        .revocation
        .as_ref()
        .zip(peer_cert.clone())
        .map(|(revocation, leaf)| revocation.watch_peer(leaf));
    let mut streams = JoinSet::new();
    let mut idle = false;
    let mut refusal = None;
    loop {
        // The idle clock runs only while no stream is in flight, and restarts at every event.
        let idle_clock = tokio::time::sleep(settings.idle_timeout);
        let (send, recv) = tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    if !matches!(e, ConnectionError::ApplicationClosed(_) | ConnectionError::LocallyClosed) {
                        tracing::debug!(%remote, error = %e, "QUIC connection ended");
                    }
                    break;
                }
            },
            _ = draining.changed() => break,
            reason = refused(&mut watch) => {
                refusal = Some(reason);
                break;
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => continue,
            _ = idle_clock, if streams.is_empty() => {
                idle = true;
                break;
            }
        };
        streams.spawn(serve_stream(
            send,
            recv,
            peer_cert.clone(),
            handler.clone(),
            settings.clone(),
        ));
    }
    if let Some(reason) = refusal {
        // A revoked peer gets nothing more: streams in flight are cut, not answered.
        tracing::info!(%remote, reason, "QUIC peer connection closed: the CRL in force refuses its peer");
        streams.abort_all();
        conn.close(
            code(ResetCode::Revoked),
            b"peer refused by the CRL in force",
        );
        return;
    }
    while streams.join_next().await.is_some() {}
    if *draining.borrow() {
        conn.close(code(ResetCode::NoError), b"shutting down");
    } else if idle {
        // NO_ERROR: every stream accepted was answered, so the client may reconnect and resend.
        let idle_secs = settings.idle_timeout.as_secs_f64();
        tracing::debug!(%remote, idle_secs, "idle QUIC connection closed");
        load.count_idle_close();
        conn.close(code(ResetCode::NoError), b"idle");
    }
}

/// The leaf certificate the peer presented (quinn's rustls session hands out the whole chain).
fn peer_leaf(conn: &Connection) -> Option<CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.into_iter().next())
}

async fn serve_stream<H, F>(
    mut send: SendStream,
    mut recv: RecvStream,
    peer_cert: Option<CertificateDer<'static>>,
    handler: H,
    settings: Arc<QuicSettings>,
) where
    H: Fn(Call) -> F,
    F: Future<Output = ProtocolResponse>,
{
    let read = tokio::time::timeout(
        settings.frame_timeout,
        read_frame::<RequestHeader>(&mut recv, &settings.limits),
    )
    .await;
    let refuse = |send: &mut SendStream, recv: &mut RecvStream, reason: ResetCode| {
        let _ = recv.stop(code(reason));
        let _ = send.reset(code(reason));
    };
    let (header, body) = match read {
        Ok(Ok(frame)) => frame,
        Ok(Err(ReadFrameError::Frame(e))) => {
            tracing::info!(error = %e, "QUIC request frame refused");
            return refuse(&mut send, &mut recv, e.reset_code());
        }
        Ok(Err(ReadFrameError::Stream(e))) => {
            tracing::debug!(error = %e, "QUIC request stream failed");
            return refuse(&mut send, &mut recv, ResetCode::InternalError);
        }
        Err(_) => {
            tracing::info!(
                timeout_ms = settings.frame_timeout.as_millis() as u64,
                "QUIC request frame did not arrive in time"
            );
            return refuse(&mut send, &mut recv, ResetCode::FrameTimeout);
        }
    };
    let call = match to_call(header, body, peer_cert) {
        Ok(call) => call,
        Err(e) => {
            tracing::info!(error = %e, "QUIC request header does not form a request");
            return refuse(&mut send, &mut recv, ResetCode::MalformedFrame);
        }
    };
    let response = handler(call).await;
    let bytes = frame::encode(ResponseHeader::new(response.status), &response.body);
    if let Err(e) = send.write_all(&bytes).await {
        tracing::debug!(error = %e, "the peer went away before the response was sent");
        return;
    }
    let _ = send.finish();
    // Stay until the peer has acknowledged the answer: closing the connection (at shutdown) only
    // after every accepted stream got here is what lets a client retry unanswered requests.
    let _ = tokio::time::timeout(settings.frame_timeout.max(DRAIN_TIMEOUT), send.stopped()).await;
}

/// The request frame as the HTTPS port would have delivered it.
fn to_call(
    header: RequestHeader,
    body: Bytes,
    peer_cert: Option<CertificateDer<'static>>,
) -> Result<Call, http::Error> {
    let mut request = http::Request::builder()
        .method(header.method.as_str())
        .uri(header.path.as_str());
    if let Some(signature) = header.signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    if let Some(traceparent) = header.traceparent {
        request = request.header(super::observe::TRACEPARENT, traceparent);
    }
    let (parts, ()) = request.body(())?.into_parts();
    Ok(Call {
        parts,
        body,
        peer_cert,
    })
}

/// Why a frame could not be read off a stream.
#[derive(Debug, thiserror::Error)]
enum ReadFrameError {
    /// The bytes do not form an acceptable frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream or connection failed.
    #[error(transparent)]
    Stream(#[from] quinn::ReadError),
}

async fn read_exact(
    recv: &mut RecvStream,
    buf: &mut [u8],
    part: &'static str,
) -> Result<(), ReadFrameError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(quinn::ReadExactError::FinishedEarly(got)) => Err(FrameError::Truncated {
            part,
            expected: buf.len() as u64,
            got: got as u64,
        }
        .into()),
        Err(quinn::ReadExactError::ReadError(e)) => Err(e.into()),
    }
}

/// Read one frame and the end of the stream; nothing is buffered beyond what `limits` allow.
async fn read_frame<H: Header>(
    recv: &mut RecvStream,
    limits: &FrameLimits,
) -> Result<(H, Bytes), ReadFrameError> {
    let mut prefix = [0u8; frame::PREFIX_LEN];
    read_exact(recv, &mut prefix, "prefix").await?;
    let mut header = vec![0u8; frame::header_len(prefix, limits)?];
    read_exact(recv, &mut header, "header").await?;
    let header: H = frame::parse_header(&header, limits)?;
    let mut body = vec![0u8; frame::body_len(&header, limits)?];
    read_exact(recv, &mut body, "body").await?;
    let mut probe = [0u8; 1];
    match recv.read(&mut probe).await? {
        None => Ok((header, Bytes::from(body))),
        Some(_) => Err(FrameError::TrailingBytes.into()),
    }
}

/// A QUIC CRYPTO_ERROR (RFC 9000 section 20.1: 0x0100-0x01ff, a TLS alert): the handshake failed.
fn is_crypto_error(code: quinn::TransportErrorCode) -> bool {
    (0x100..=0x1ff).contains(&u64::from(code))
}

/// Whether a failed QUIC request can have reached the provider's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It certainly did not (no connection, no stream, or refused unread): another transport may
    /// carry the same request.
    NotSent,
    /// It may have: the request must not be sent again (the provider would refuse it as a replay).
    MaybeSent,
}

/// The consumer's QUIC connections: one per provider, a stream per exchange.
pub struct QuicClient {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    federation: String,
    /// One connection per provider, with the endpoint it was made to.
    connections: Mutex<HashMap<DeptId, (String, Connection)>>,
    revocation: Option<Arc<Revocation>>,
}

impl QuicClient {
    /// A client presenting our certificate (in `tls`, from
    /// [`crate::identity::tls::TlsMaterial::quic_client_config`]) to peers of `federation`.
    pub fn new(tls: Arc<rustls::ClientConfig>, federation: String) -> Result<Self, QuicError> {
        let crypto = QuicClientConfig::try_from(tls).map_err(|e| QuicError::Tls(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport_config(QuicSettings::default().idle_timeout, 0));
        // A dual-stack socket reaches IPv4 and IPv6 peers; fall back to IPv4 where IPv6 is off.
        let v6: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, 0).into();
        let v4: SocketAddr = (std::net::Ipv4Addr::UNSPECIFIED, 0).into();
        let endpoint = quinn::Endpoint::client(v6)
            .or_else(|_| quinn::Endpoint::client(v4))
            .map_err(|source| QuicError::Bind { addr: v4, source })?;
        Ok(QuicClient {
            endpoint,
            config,
            federation,
            connections: Mutex::new(HashMap::new()),
            revocation: None,
        })
    }

    /// Close each connection as soon as `revocation` refuses the provider's certificate (with
    /// [`ResetCode::Revoked`]), so that no request goes out on it after a CRL revoking it is
    /// applied.
    pub fn with_revocation(mut self, revocation: Arc<Revocation>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Send one request on a new stream of the connection to `dept` (opened within
    /// `connect_timeout` if there is none) and read the whole bounded answer. The caller bounds
    /// the total time.
    pub async fn send(
        &self,
        dept: &Department,
        request: &PeerRequest,
        connect_timeout: Duration,
    ) -> Result<(u16, Bytes), (PeerError, Delivery)> {
        let not_sent = |e| (e, Delivery::NotSent);
        let mut retried = false;
        loop {
            let conn = self
                .connection(dept, connect_timeout)
                .await
                .map_err(not_sent)?;
            let result = self.exchange(dept, &conn, request).await;
            if result.is_err() && conn.close_reason().is_some() {
                self.forget(dept, &conn).await;
                // A reused connection that turned out closed (the provider restarted or shut it
                // down) without having taken the request: one retry on a fresh connection.
                if matches!(result, Err((_, Delivery::NotSent))) && !retried {
                    retried = true;
                    continue;
                }
            }
            return result;
        }
    }

    /// Close every connection (gateway shutdown).
    pub fn close(&self) {
        self.endpoint
            .close(code(ResetCode::NoError), b"shutting down");
    }

    async fn forget(&self, dept: &Department, conn: &Connection) {
        let mut connections = self.connections.lock().await;
        if connections
            .get(&dept.id)
            .is_some_and(|(_, c)| c.stable_id() == conn.stable_id())
        {
            connections.remove(&dept.id);
        }
    }

    async fn exchange(
        &self,
        dept: &Department,
        conn: &Connection,
        request: &PeerRequest,
    ) -> Result<(u16, Bytes), (PeerError, Delivery)> {
        let protocol = |problem: String| PeerError::Protocol {
            dept: dept.id.clone(),
            problem,
        };
        let lost = |e: &ConnectionError| match e {
            // Nothing of ours was processed on a connection the peer has no state for, or whose
            // handshake it refused (TLS 1.3 lets a client send before the server has checked it).
            ConnectionError::Reset => Delivery::NotSent,
            ConnectionError::ConnectionClosed(close) if is_crypto_error(close.error_code) => {
                Delivery::NotSent
            }
            // A server closes with NO_ERROR only after answering every stream it accepted.
            ConnectionError::ApplicationClosed(close)
                if close.error_code == code(ResetCode::NoError) =>
            {
                Delivery::NotSent
            }
            _ => Delivery::MaybeSent,
        };
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| {
            let delivery = lost(&e);
            (protocol(format!("opening a QUIC stream: {e}")), delivery)
        })?;
        let mut header = RequestHeader::new(
            request.method.as_str(),
            &request.path,
            request.signature.clone(),
        );
        header.traceparent = request.traceparent.clone();
        let bytes = frame::encode(header, &request.body);
        let reset = |code: VarInt| {
            let code = code.into_inner();
            let delivery = if ResetCode::from_code(code) == Some(ResetCode::Refused) {
                Delivery::NotSent
            } else {
                Delivery::MaybeSent
            };
            (
                PeerError::Reset {
                    dept: dept.id.clone(),
                    code,
                },
                delivery,
            )
        };
        if let Err(e) = send.write_all(&bytes).await {
            return Err(match e {
                quinn::WriteError::Stopped(code) => reset(code),
                quinn::WriteError::ConnectionLost(e) => {
                    let delivery = lost(&e);
                    (protocol(format!("sending the request: {e}")), delivery)
                }
                e => (
                    protocol(format!("sending the request: {e}")),
                    Delivery::MaybeSent,
                ),
            });
        }
        let _ = send.finish();
        match read_frame::<ResponseHeader>(&mut recv, &FrameLimits::RESPONSE).await {
            Ok((header, body)) => Ok((header.status, body)),
            Err(ReadFrameError::Stream(quinn::ReadError::Reset(code))) => Err(reset(code)),
            Err(ReadFrameError::Stream(quinn::ReadError::ConnectionLost(e))) => {
                let delivery = lost(&e);
                Err((protocol(format!("reading the answer: {e}")), delivery))
            }
            Err(e) => {
                // A bad answer: tell the provider why, and keep the connection for others.
                if let ReadFrameError::Frame(f) = &e {
                    let _ = recv.stop(code(f.reset_code()));
                }
                Err((
                    protocol(format!("reading the answer: {e}")),
                    Delivery::MaybeSent,
                ))
            }
        }
    }

    async fn connection(
        &self,
        dept: &Department,
        connect_timeout: Duration,
    ) -> Result<Connection, PeerError> {
        let mut connections = self.connections.lock().await;
        if let Some((made_to, conn)) = connections.get(&dept.id) {
            if conn.close_reason().is_none() && dept.quic.as_deref() == Some(made_to.as_str()) {
                return Ok(conn.clone());
            }
            // Closed, or to an endpoint the directory no longer names: streams already open on
            // it finish; new ones go to a new connection.
            connections.remove(&dept.id);
        }
        let endpoint = dept.quic.clone().ok_or_else(|| PeerError::NoEndpoint {
            dept: dept.id.clone(),
            transport: Transport::Quic,
        })?;
        let unreachable = |problem: String| PeerError::Unreachable {
            dept: dept.id.clone(),
            endpoint: format!("quic://{endpoint}"),
            problem,
        };
        let conn = tokio::time::timeout(connect_timeout, async {
            let addr = tokio::net::lookup_host(&endpoint)
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .next()
                .ok_or_else(|| unreachable("the host name has no address".into()))?;
            let host = endpoint
                .rsplit_once(':')
                .map_or(endpoint.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            // quinn instruments the connection's driver task with the span current here; the
            // connection outlives this request, so the request's span (and its whole trace) would
            // stay open until the connection closes. Connect with no current span.
            let connecting = tracing::subscriber::with_default(
                tracing::subscriber::NoSubscriber::default(),
                || self.endpoint.connect_with(self.config.clone(), addr, host),
            )
            .map_err(|e| unreachable(e.to_string()))?;
            connecting
                .await
                .map_err(|e| unreachable(format!("QUIC handshake: {e}")))
        })
        .await
        .map_err(|_| unreachable(format!("no QUIC handshake within {connect_timeout:?}")))??;
        let wrong = |problem: String| PeerError::WrongPeer {
            dept: dept.id.clone(),
            endpoint: format!("quic://{endpoint}"),
            problem,
        };
        let cert = peer_leaf(&conn).ok_or_else(|| wrong("it presented no certificate".into()))?;
        match identity_from_cert(&cert, &self.federation) {
            Ok(identity) if identity == dept.identity() => {}
            Ok(other) => {
                conn.close(code(ResetCode::Refused), b"wrong peer");
                return Err(wrong(format!(
                    "its certificate says {}",
                    other.uri(&self.federation)
                )));
            }
            Err(e) => {
                conn.close(code(ResetCode::Refused), b"wrong peer");
                return Err(wrong(e.to_string()));
            }
        }
        if let Some(revocation) = &self.revocation {
            let mut watch = revocation.watch_peer(cert);
            let watched = conn.clone();
            let id = dept.id.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = watched.closed() => {}
                    reason = watch.refused() => {
                        tracing::info!(peer = %id, reason, "QUIC connection to a peer closed: the CRL in force refuses it");
                        watched.close(code(ResetCode::Revoked), b"peer refused by the CRL in force");
                    }
                }
            });
        }
        connections.insert(dept.id.clone(), (endpoint, conn.clone()));
        Ok(conn)
    }
}
