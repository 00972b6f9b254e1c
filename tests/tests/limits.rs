//! Connection limits on every listener (issue "Accountable callers", item 7): connections over a
//! listener's overall or per-address limit are closed as they arrive, places free when connections
//! end, idle connections are closed however much they PING, a request in flight is never cut, and
//! the QUIC port asks for address validation, then refuses, as handshakes pile up.
//!
//! Real sockets against real gateways. Waits poll a condition against a deadline; the only timing
//! assertions are lower bounds the server cannot beat (it cannot close an idle connection before
//! its idle timeout) and generous upper bounds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use causeway::identity::tls::TlsMaterial;
use causeway::transport::frame::{self, RequestHeader};
use causeway::transport::{paths, QUIC_ALPN};
use causeway_tests::{raw_quic_connect, raw_quic_stream, rewrite, Federation, StreamOutcome};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// A kept-alive HTTP/1.1 connection to an admin listener, to read `/metrics` as often as needed
/// without opening a connection per read.
struct MetricsReader(http1::SendRequest<Empty<Bytes>>);

impl MetricsReader {
    async fn connect(admin: SocketAddr) -> MetricsReader {
        let stream = TcpStream::connect(admin).await.unwrap();
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        MetricsReader(sender)
    }

    /// The value of one sample, e.g. `causeway_connections_open{listener="client"}`; 0 if absent.
    async fn value(&mut self, sample: &str) -> f64 {
        self.0.ready().await.unwrap();
        let request = http::Request::get("/metrics")
            .header(http::header::HOST, "admin")
            .body(Empty::new())
            .unwrap();
        let response = self.0.send_request(request).await.unwrap();
        let text = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(text.to_vec()).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Poll `sample` until it reads `want` or `within` passes; true if it did.
    async fn wait_for(&mut self, sample: &str, want: f64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.value(sample).await == want {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8 on Linux), so
/// that one test can be several remote addresses.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// An HTTP/1.1 client on `stream` that keeps its connection open while the sender lives.
async fn http1_client(stream: TcpStream) -> http1::SendRequest<Empty<Bytes>> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// GET a path the client API does not serve: answered 404 by a connection the listener admitted.
async fn get_404(sender: &mut http1::SendRequest<Empty<Bytes>>) -> Result<u16> {
    sender.ready().await?;
    let request = http::Request::get("/no-such-endpoint")
        .header(http::header::HOST, "client")
        .body(Empty::new())?;
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .context("no answer")??;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// Whether the server closed `stream` (end of stream or reset) within `within`, without sending
/// anything first.
async fn closed_silently_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The tests below speak raw HTTP/1.1 and h2c to the client API, so they put it on the development
/// listener (plain HTTP on loopback, as the case-desk application): the limits apply before TLS
/// and are the same on the mutual-TLS listener.
fn plaintext_client_api(config: &std::path::Path) {
    rewrite(
        config,
        "app_ca = \"../certs/social-welfare-apps-ca.pem\"\n",
        "insecure_plaintext_as = \"case-desk\"\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_limit_are_closed_at_once_and_a_place_frees_when_one_ends() {
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept("social-welfare").unwrap().config.clone();
    rewrite(
        &config,
        "[client]\n",
        "[client]\nmax_connections = 5\nmax_connections_per_address = 3\n",
    );
    plaintext_client_api(&config);
    rewrite(&config, "[peer]\n", "[peer]\nmax_connections = 1\n");
    fed.start_dept("social-welfare").await.unwrap();
    let welfare = fed.gateway("social-welfare");
    let (client, peer) = (welfare.client_addr, welfare.peer_addr);
    let mut metrics = MetricsReader::connect(welfare.admin_addr.unwrap()).await;
    let open = r#"causeway_connections_open{listener="client"}"#;

    // Three from 127.0.0.1: its per-address limit.
    let mut first = Vec::new();
    for _ in 0..3 {
        let mut sender = http1_client(connect_from("127.0.0.1", client).await).await;
        assert_eq!(get_404(&mut sender).await.unwrap(), 404);
        first.push(sender);
    }
    let mut fourth = connect_from("127.0.0.1", client).await;
    assert!(
        closed_silently_within(&mut fourth, Duration::from_secs(5)).await,
        "a fourth connection from one address stayed open"
    );

    // Two from 127.0.0.2 fill the listener; then even a new address is turned away.
    let mut second = Vec::new();
    for _ in 0..2 {
        let mut sender = http1_client(connect_from("127.0.0.2", client).await).await;
        assert_eq!(get_404(&mut sender).await.unwrap(), 404);
        second.push(sender);
    }
    let mut sixth = connect_from("127.0.0.3", client).await;
    assert!(
        closed_silently_within(&mut sixth, Duration::from_secs(5)).await,
        "a sixth connection stayed open"
    );

    // Those admitted are still served.
    for sender in first.iter_mut().chain(second.iter_mut()) {
        assert_eq!(get_404(sender).await.unwrap(), 404);
    }
    assert_eq!(metrics.value(open).await, 5.0);
    let refused = |limit: &str| {
        format!(r#"causeway_connections_refused_total{{listener="client",limit="{limit}"}}"#)
    };
    assert_eq!(metrics.value(&refused("per-address")).await, 1.0);
    assert_eq!(metrics.value(&refused("overall")).await, 1.0);

    // Closing one of 127.0.0.1's connections gives its place back, to that address...
    drop(first.pop());
    assert!(
        metrics.wait_for(open, 4.0, Duration::from_secs(5)).await,
        "the closed connection's place was not given back"
    );
    let mut again = http1_client(connect_from("127.0.0.1", client).await).await;
    assert_eq!(get_404(&mut again).await.unwrap(), 404);
    // ... and closing one of 127.0.0.2's lets a new address in.
    drop(second.pop());
    assert!(metrics.wait_for(open, 4.0, Duration::from_secs(5)).await);
    let mut third_address = http1_client(connect_from("127.0.0.3", client).await).await;
    assert_eq!(get_404(&mut third_address).await.unwrap(), 404);
    assert_eq!(metrics.value(&refused("overall")).await, 1.0);

    // The peer port counts before TLS: with one connection held mid-handshake (it would be given
    // 10 s to say hello), a second is closed at once, well before that.
    let held = TcpStream::connect(peer).await.unwrap();
    let peer_open = r#"causeway_connections_open{listener="peer"}"#;
    assert!(
        metrics
            .wait_for(peer_open, 1.0, Duration::from_secs(5))
            .await
    );
    let mut over = TcpStream::connect(peer).await.unwrap();
    let started = Instant::now();
    assert!(
        closed_silently_within(&mut over, causeway::transport::server::HANDSHAKE_TIMEOUT).await
    );
    assert!(
        started.elapsed() < causeway::transport::server::HANDSHAKE_TIMEOUT / 2,
        "closed only after {:?}: by the handshake timeout, not the limit",
        started.elapsed()
    );
    assert_eq!(
        metrics
            .value(r#"causeway_connections_refused_total{listener="peer",limit="overall"}"#)
            .await,
        1.0
    );
    // (Shutdown waits for a connection in its TLS handshake, up to the handshake timeout.)
    drop(held);
    fed.stop().await;
}

/// HTTP/2 frame types and flags this file speaks (RFC 9113 section 6).
mod h2_frame {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const ACK: u8 = 0x1;

    pub fn encode(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend([kind, flags, 0, 0, 0, 0]);
        out.extend(payload);
        out
    }
}

/// What a hand-written HTTP/2 client that sends no request saw of its connection.
#[derive(Debug)]
struct IdleH2 {
    /// When it began to connect: the server's idle clock cannot have started earlier.
    connected: Instant,
    /// When the server closed it.
    closed: Instant,
    /// The error code of the last GOAWAY (0 is NO_ERROR), if one came.
    goaway: Option<u32>,
    /// PINGs of ours the server acknowledged.
    pongs: usize,
}

/// Speak HTTP/2 (prior knowledge, no TLS) on `stream` without ever sending a request: answer the
/// server's SETTINGS and PINGs and, with `ping_every`, PING the server until it says GOAWAY; read
/// until the server closes the connection. `connected` is when the connection began.
async fn idle_h2(
    (mut stream, connected): (TcpStream, Instant),
    ping_every: Option<Duration>,
) -> Result<IdleH2> {
    use h2_frame::*;
    stream.write_all(PREFACE).await?;
    stream.write_all(&encode(SETTINGS, 0, &[])).await?;
    let mut pings = tokio::time::interval(ping_every.unwrap_or(Duration::from_secs(3600)));
    let mut buf = BytesMut::with_capacity(4096);
    let (mut goaway, mut pongs) = (None, 0);
    loop {
        tokio::select! {
            read = stream.read_buf(&mut buf) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return Ok(IdleH2 { connected, closed: Instant::now(), goaway, pongs });
                }
                while buf.len() >= 9 {
                    let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                    if buf.len() < 9 + len {
                        break;
                    }
                    let (kind, flags) = (buf[3], buf[4]);
                    buf.advance(9);
                    let payload = buf.split_to(len);
                    match (kind, flags & ACK) {
                        // Unchecked: a write error shows as the read's end.
                        (SETTINGS, 0) => {
                            let _ = stream.write_all(&encode(SETTINGS, ACK, &[])).await;
                        }
                        (PING, 0) => {
                            let _ = stream.write_all(&encode(PING, ACK, &payload)).await;
                        }
                        (PING, _) => pongs += 1,
                        (GOAWAY, _) if len >= 8 => {
                            goaway = Some(u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]));
                        }
                        _ => {}
                    }
                }
            }
            // After a GOAWAY, only answer: a PING written after the server's close would come
            // back as a reset, which may discard what was still to be read.
            _ = pings.tick(), if ping_every.is_some() && goaway.is_none() => {
                let _ = stream.write_all(&encode(PING, 0, b"causeway")).await;
            }
        }
    }
}

/// A request body that trickles `chunks` pieces, one every `every`, then ends.
struct Trickle(tokio::sync::mpsc::Receiver<Bytes>);

impl Trickle {
    fn start(chunks: usize, every: Duration) -> Trickle {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            for _ in 0..chunks {
                tokio::time::sleep(every).await;
                if tx.send(Bytes::from_static(b"{}  ")).await.is_err() {
                    return;
                }
            }
        });
        Trickle(rx)
    }
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_however_much_they_ping_but_requests_in_flight_never_cut() {
    const IDLE: Duration = Duration::from_secs(1);
    let bound = IDLE + Duration::from_secs(20);
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept("social-welfare").unwrap().config.clone();
    rewrite(&config, "[client]\n", "[client]\nidle_timeout_secs = 1\n");
    plaintext_client_api(&config);
    fed.start_dept("social-welfare").await.unwrap();
    let welfare = fed.gateway("social-welfare");
    let client = welfare.client_addr;

    // HTTP/2 that PINGs every 100 ms and never asks for anything: GOAWAY (NO_ERROR), then closed.
    let connecting = Instant::now();
    let pinging = tokio::spawn(idle_h2(
        (TcpStream::connect(client).await.unwrap(), connecting),
        Some(Duration::from_millis(100)),
    ));

    // HTTP/2 with one request whose body takes 3 s (three idle timeouts) to arrive: answered in
    // full, and only then is the connection closed for idleness.
    let (mut sender, conn) = http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(TcpStream::connect(client).await.unwrap()),
    )
    .await
    .unwrap();
    let h2_conn = tokio::spawn(conn);
    let request = http::Request::post("http://client/no-such-endpoint")
        .body(Trickle::start(6, Duration::from_millis(500)))
        .unwrap();
    let sent = Instant::now();
    let response = tokio::time::timeout(bound, sender.send_request(request))
        .await
        .expect("the request in flight was answered")
        .expect("the request in flight was not cut");
    assert_eq!(response.status(), 404);
    response.into_body().collect().await.unwrap();
    let answered = Instant::now();
    assert!(
        answered - sent >= 3 * IDLE,
        "the body took {:?}",
        answered - sent
    );
    // Not even a GOAWAY while it was in flight: the connection takes another request at once.
    // (The server's idle clock restarts once it answers, which is after this request was sent.)
    let last_sent = Instant::now();
    let request = http::Request::get("http://client/no-such-endpoint")
        .body(Trickle::start(0, Duration::ZERO))
        .unwrap();
    let response = sender.send_request(request).await.expect("still open");
    assert_eq!(response.status(), 404);
    response.into_body().collect().await.unwrap();
    // `sender` stays alive: a client whose senders are all gone closes the connection itself.
    tokio::time::timeout(bound, h2_conn)
        .await
        .expect("the HTTP/2 connection was closed once idle")
        .unwrap()
        .expect("closed gracefully");
    assert!(last_sent.elapsed() >= IDLE);
    assert!(sender.is_closed());

    // HTTP/1.1 keep-alive: closed once idle after its response; and one that never sent a
    // request, too.
    let mut silent = http1_client(TcpStream::connect(client).await.unwrap()).await;
    let stream = TcpStream::connect(client).await.unwrap();
    let (mut h1_sender, h1_conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    let h1_conn = tokio::spawn(h1_conn);
    let h1_sent = Instant::now();
    assert_eq!(get_404(&mut h1_sender).await.unwrap(), 404);
    tokio::time::timeout(bound, h1_conn)
        .await
        .expect("the HTTP/1.1 connection was closed once idle")
        .unwrap()
        .unwrap();
    assert!(h1_sent.elapsed() >= IDLE);
    assert!(
        get_404(&mut silent).await.is_err(),
        "an HTTP/1.1 connection that never asked anything is closed too"
    );

    let seen = tokio::time::timeout(bound, pinging)
        .await
        .expect("the pinging connection was closed")
        .unwrap()
        .unwrap();
    assert_eq!(seen.goaway, Some(0), "GOAWAY with NO_ERROR: {seen:?}");
    assert!(
        seen.closed - seen.connected >= IDLE,
        "closed before the idle timeout: {seen:?}"
    );
    assert!(
        seen.pongs >= 2,
        "the server answered its PINGs all along: {seen:?}"
    );

    let mut metrics = MetricsReader::connect(welfare.admin_addr.unwrap()).await;
    assert!(
        metrics
            .value(r#"causeway_connections_idle_closed_total{listener="client"}"#)
            .await
            >= 4.0
    );
    fed.stop().await;
}

/// The soft limit on open files, raised towards `want` (as far as the hard limit allows, or
/// further as root) with util-linux `prlimit`, since this crate forbids the unsafe `setrlimit`.
fn raise_open_files(want: u64) -> u64 {
    let soft = || -> u64 {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let value = line.split_whitespace().nth(3).unwrap();
        value.parse().unwrap_or(u64::MAX)
    };
    if soft() < want {
        let _ = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={want}:{want}"))
            .status();
        if soft() < want {
            let _ = std::process::Command::new("prlimit")
                .arg(format!("--pid={}", std::process::id()))
                .arg(format!("--nofile={want}:"))
                .status();
        }
    }
    soft()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_http2_connections_are_closed_while_another_client_is_served() {
    const CONNECTIONS: usize = 2000;
    const IDLE: Duration = Duration::from_secs(3);
    // Both ends of every connection live in this process, plus the gateways' own files.
    let files = raise_open_files(3 * CONNECTIONS as u64);
    assert!(
        files >= 2 * CONNECTIONS as u64 + 500,
        "this test holds {CONNECTIONS} connections (both ends in this process) but may open only \
         {files} files: raise `ulimit -n`"
    );
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept("social-welfare").unwrap().config.clone();
    rewrite(
        &config,
        "[client]\n",
        "[client]\nmax_connections_per_address = 4096\nidle_timeout_secs = 3\n",
    );
    plaintext_client_api(&config);
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.unwrap();
    }
    let client = fed.gateway("social-welfare").client_addr;
    let admin = fed.gateway("social-welfare").admin_addr.unwrap();
    let mut metrics = MetricsReader::connect(admin).await;

    let opening = Instant::now();
    let mut idle = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS / 100 {
        let batch = connect_many(client, 100).await;
        for connection in batch {
            idle.spawn(idle_h2(connection, None));
        }
    }
    let opened_in = opening.elapsed();
    let peak = metrics
        .value(r#"causeway_connections_open{listener="client"}"#)
        .await;
    eprintln!("{CONNECTIONS} connections opened in {opened_in:?}; {peak} open at once");
    if opened_in < IDLE {
        // None can have been closed yet: the listener holds them all.
        assert!(peak >= CONNECTIONS as f64, "{peak} open");
    }

    // Meanwhile, exchanges through the same listener succeed.
    let bound = IDLE + Duration::from_secs(60);
    let deadline = Instant::now() + bound;
    let mut served = 0;
    let mut closed = Vec::new();
    let mut ask = tokio::time::interval(Duration::from_millis(100));
    while !idle.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} idle connections still open after {bound:?}",
            idle.len()
        );
        tokio::select! {
            Some(done) = idle.join_next() => closed.push(done.unwrap().unwrap()),
            _ = ask.tick() => {
                let (status, answer) = fed
                    .request(
                        "social-welfare",
                        "civil-registry",
                        "residents",
                        json!({"national_id": format!("D{:06}", 1 + served % 150)}),
                        "benefit-eligibility",
                    )
                    .await
                    .unwrap();
                assert_eq!(status, 200, "{answer}");
                served += 1;
            }
        }
    }
    assert!(served > 0);
    eprintln!("{served} exchanges served while the idle connections were open");
    assert_eq!(closed.len(), CONNECTIONS);
    for seen in &closed {
        assert_eq!(seen.goaway, Some(0), "GOAWAY with NO_ERROR: {seen:?}");
        assert!(
            seen.closed - seen.connected >= IDLE,
            "closed before the idle timeout: {seen:?}"
        );
    }
    // Every place is given back.
    let open = r#"causeway_connections_open{listener="client"}"#;
    assert!(
        metrics.wait_for(open, 0.0, Duration::from_secs(10)).await,
        "connections still counted open after all closed"
    );
    assert!(
        metrics
            .value(r#"causeway_connections_idle_closed_total{listener="client"}"#)
            .await
            >= CONNECTIONS as f64
    );
    fed.stop().await;
}

/// Open `n` TCP connections to `addr` at once; each with the moment it began to connect.
async fn connect_many(addr: SocketAddr, n: usize) -> Vec<(TcpStream, Instant)> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(async move {
            let began = Instant::now();
            (TcpStream::connect(addr).await, began)
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(connected) = set.join_next().await {
        let (stream, began) = connected.unwrap();
        out.push((stream.unwrap(), began));
    }
    out
}

/// What a QUIC server did with a connection attempt that then goes silent.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// It began its handshake with us (after a Retry, if `retried`); the handshake now waits for
    /// our next flight, which never comes.
    Handshaking { retried: bool },
    /// It refused the attempt (`CONNECTION_REFUSED`).
    Refused { retried: bool },
}

/// A QUIC client driven by hand (quinn-proto, no I/O of its own) that starts a handshake, follows
/// a Retry, and stops as soon as the server has begun its part: a handshake held open on the
/// server, as an attacker would hold one.
struct StalledClient {
    socket: UdpSocket,
    endpoint: quinn_proto::Endpoint,
    conn: quinn_proto::Connection,
}

impl StalledClient {
    async fn start(server: SocketAddr, config: quinn::ClientConfig) -> Result<(Self, Attempt)> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let mut endpoint = quinn_proto::Endpoint::new(
            Arc::new(quinn_proto::EndpointConfig::default()),
            None,
            false,
            None,
        );
        let (_, conn) = endpoint.connect(Instant::now(), config, server, "127.0.0.1")?;
        let mut client = StalledClient {
            socket,
            endpoint,
            conn,
        };
        client.flush().await?;
        let mut retried = false;
        loop {
            let mut buf = vec![0u8; 65_536];
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(5), client.socket.recv_from(&mut buf))
                    .await
                    .context("the server did not answer")??;
            // A long header (bit 7) of type Retry (bits 5-4 = 11), RFC 9000 section 17.2.5.
            let is_retry = buf[0] & 0x80 != 0 && buf[0] & 0x30 == 0x30;
            let event = client.endpoint.handle(
                Instant::now(),
                from,
                None,
                None,
                BytesMut::from(&buf[..n]),
                &mut Vec::new(),
            );
            let Some(quinn_proto::DatagramEvent::ConnectionEvent(_, event)) = event else {
                continue;
            };
            client.conn.handle_event(event);
            while let Some(event) = client.conn.poll() {
                if let quinn_proto::Event::ConnectionLost { reason } = event {
                    return match reason {
                        quinn::ConnectionError::ConnectionClosed(close)
                            if close.error_code
                                == quinn::TransportErrorCode::CONNECTION_REFUSED =>
                        {
                            Ok((client, Attempt::Refused { retried }))
                        }
                        other => bail!("the handshake failed otherwise: {other}"),
                    };
                }
            }
            if is_retry {
                retried = true;
                client.flush().await?;
                continue;
            }
            return Ok((client, Attempt::Handshaking { retried }));
        }
    }

    /// Send what the connection has to send.
    async fn flush(&mut self) -> Result<()> {
        let mut buf = Vec::new();
        while let Some(transmit) = self.conn.poll_transmit(Instant::now(), 1, &mut buf) {
            self.socket
                .send_to(&buf[..transmit.size], transmit.destination)
                .await?;
            buf.clear();
        }
        Ok(())
    }

    /// Give up the handshake, telling the server (which then forgets it).
    async fn close(mut self) -> Result<()> {
        self.conn
            .close(Instant::now(), quinn::VarInt::from_u32(0), Bytes::new());
        self.flush().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_handshakes_over_the_threshold_get_a_retry_and_over_the_limit_are_refused() {
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept("civil-registry").unwrap().config.clone();
    rewrite(
        &config,
        "[peer]\n",
        "[peer]\nquic_handshakes_before_retry = 2\nquic_max_handshakes = 4\n",
    );
    fed.start_dept("civil-registry").await.unwrap();
    let registry = fed.gateway("civil-registry");
    let quic = registry.quic_addr.unwrap();
    let mut metrics = MetricsReader::connect(registry.admin_addr.unwrap()).await;
    let certs = fed.root.path().join("certs");
    let tls = TlsMaterial::load(
        &certs.join("ca.pem"),
        None,
        &certs.join("social-welfare.pem"),
        &certs.join("social-welfare.key"),
    )
    .unwrap()
    .quic_client_config(QUIC_ALPN)
    .unwrap();
    let client_config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls.clone()).unwrap(),
    ));
    let checkpoint = frame::encode(RequestHeader::new("GET", paths::CHECKPOINT, None), b"");
    let wait = Duration::from_secs(10);
    let answers =
        |outcome: Result<StreamOutcome>| matches!(outcome, Ok(StreamOutcome::Response(200, _)));

    let existing = raw_quic_connect(quic, tls.clone()).await.unwrap();
    assert!(answers(
        raw_quic_stream(&existing, &checkpoint, true, wait).await
    ));

    // Two handshakes held open: below the threshold, no Retry.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let (client, attempt) = StalledClient::start(quic, client_config.clone())
            .await
            .unwrap();
        assert_eq!(attempt, Attempt::Handshaking { retried: false });
        stalled.push(client);
    }
    // At the threshold: each new client proves its address first, then its handshake proceeds.
    for _ in 0..2 {
        let (client, attempt) = StalledClient::start(quic, client_config.clone())
            .await
            .unwrap();
        assert_eq!(attempt, Attempt::Handshaking { retried: true });
        stalled.push(client);
    }
    assert_eq!(metrics.value("causeway_quic_handshakes").await, 4.0);
    // At the hard limit: refused, stalled or real client alike, with no Retry first.
    let (_refused, attempt) = StalledClient::start(quic, client_config.clone())
        .await
        .unwrap();
    assert_eq!(attempt, Attempt::Refused { retried: false });
    let error = raw_quic_connect(quic, tls.clone())
        .await
        .expect_err("a client over the handshake limit is refused");
    assert!(
        matches!(
            error.downcast_ref::<quinn::ConnectionError>(),
            Some(quinn::ConnectionError::ConnectionClosed(close))
                if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
        ),
        "{error:#}"
    );
    // The established connection is served throughout.
    assert!(answers(
        raw_quic_stream(&existing, &checkpoint, true, wait).await
    ));
    assert_eq!(metrics.value("causeway_quic_retries_total").await, 2.0);
    assert_eq!(
        metrics
            .value(r#"causeway_connections_refused_total{listener="quic",limit="handshakes"}"#)
            .await,
        2.0
    );

    // The held handshakes given up, new clients connect at once, without a Retry.
    for client in stalled {
        client.close().await.unwrap();
    }
    assert!(
        metrics
            .wait_for("causeway_quic_handshakes", 0.0, Duration::from_secs(5))
            .await,
        "the abandoned handshakes are still counted"
    );
    let fresh = raw_quic_connect(quic, tls).await.unwrap();
    assert!(answers(
        raw_quic_stream(&fresh, &checkpoint, true, wait).await
    ));
    assert!(answers(
        raw_quic_stream(&existing, &checkpoint, true, wait).await
    ));
    assert_eq!(metrics.value("causeway_quic_retries_total").await, 2.0);
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_quic_connection_is_closed_however_much_it_pings() {
    const IDLE: Duration = Duration::from_secs(1);
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept("civil-registry").unwrap().config.clone();
    rewrite(&config, "[peer]\n", "[peer]\nquic_idle_timeout_secs = 1\n");
    fed.start_dept("civil-registry").await.unwrap();
    let quic = fed.gateway("civil-registry").quic_addr.unwrap();
    let certs = fed.root.path().join("certs");
    let tls = TlsMaterial::load(
        &certs.join("ca.pem"),
        None,
        &certs.join("social-welfare.pem"),
        &certs.join("social-welfare.key"),
    )
    .unwrap()
    .quic_client_config(QUIC_ALPN)
    .unwrap();
    // A client that PINGs every 100 ms: the QUIC idle timeout alone would never end it.
    let mut config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_millis(100)));
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client((std::net::Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let conn = endpoint
        .connect_with(config, quic, "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let checkpoint = frame::encode(RequestHeader::new("GET", paths::CHECKPOINT, None), b"");
    // The server's idle clock starts once it has answered, which is after this request was sent;
    // when this client gets to read the answer is up to the scheduler, so time from the sending.
    let asked = Instant::now();
    let outcome = raw_quic_stream(&conn, &checkpoint, true, Duration::from_secs(10)).await;
    assert!(
        matches!(outcome, Ok(StreamOutcome::Response(200, _))),
        "{outcome:?}"
    );

    let reason = tokio::time::timeout(IDLE + Duration::from_secs(20), conn.closed())
        .await
        .expect("the idle connection was closed");
    assert!(asked.elapsed() >= IDLE);
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, quinn::VarInt::from_u32(0), "NO_ERROR");
            assert_eq!(&close.reason[..], b"idle");
        }
        other => panic!("closed otherwise: {other}"),
    }
    fed.stop().await;
}
