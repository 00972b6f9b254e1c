//! Faults and hostile input against real gateways (issue 8): a provider that is down or never
//! answers, slow and oversized clients on every listener, and ten thousand malformed envelopes,
//! frames and JSON bodies.
//!
//! Every test is bounded: waits poll a condition against a deadline (no sleeps as synchronization),
//! loops have fixed counts, and random inputs come from a seeded generator so a failure replays.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway::exchange::envelope::{self, Envelope, SIGNATURE_HEADER};
use causeway::identity::tls::TlsMaterial;
use causeway::transport::frame::{self, RequestHeader};
use causeway::transport::server::{BODY_TIMEOUT, HANDSHAKE_TIMEOUT, HEADER_TIMEOUT};
use causeway::transport::{paths, HTTPS_ALPN, QUIC_ALPN};
use causeway_tests::{
    get_text, raw_quic_connect, raw_quic_stream, rewrite, start_oversight, Federation,
    StreamOutcome,
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The consumer's `[client] request_timeout_ms` in the deadline test.
const DEADLINE_MS: u64 = 500;

/// SplitMix64: seeded and dependency-free, so a failing input replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Poll `done` until it holds or `within` passes; true if it held.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// TCP sockets of this machine connected to `port` that are still open on the connecting side
/// (ESTABLISHED or SYN_SENT): a connection the gateway forgot to close stays in one of these.
fn open_connections_to(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state)) = (cols.get(2), cols.get(3)) else {
                continue;
            };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && (*state == "01" || *state == "02") {
                n += 1;
            }
        }
    }
    n
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn client_body(national_id: &str) -> Value {
    json!({"provider": "civil-registry", "dataset": "residents",
        "params": {"national_id": national_id}, "purpose": "benefit-eligibility",
        "legal_basis": "test-act:s1", "case": ""})
}

/// POST raw bytes to a plain HTTP/1.1 listener; status and body.
async fn post_raw(addr: SocketAddr, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Bytes)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// An HTTP/2 connection to a peer port holding `dept`'s certificate.
async fn peer_h2(
    fed: &Federation,
    dept: &str,
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let certs = fed.root.path().join("certs");
    let tls = TlsMaterial::load(
        &certs.join("ca.pem"),
        None,
        &certs.join(format!("{dept}.pem")),
        &certs.join(format!("{dept}.key")),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls.client_config(HTTPS_ALPN).unwrap())
        .connect(name, tcp)
        .await
        .unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// POST to the peer exchange endpoint over `sender`; status and body, or the error.
async fn peer_post(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    signature: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut request = http::Request::post(format!("https://127.0.0.1{}", paths::EXCHANGE));
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    sender.ready().await?;
    let response =
        tokio::time::timeout(Duration::from_secs(10), sender.send_request(request)).await??;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// A clean refusal: a 4xx with a JSON `{"error": {"code", ...}}` body. Valid-looking mutations
/// may also be real decisions (200 with a receipt, 403 with a reason): never a 5xx.
fn assert_clean(what: &str, input: &[u8], status: u16, body: &[u8]) {
    let shown = String::from_utf8_lossy(&input[..input.len().min(300)]).into_owned();
    assert!(
        status < 500,
        "{what}: {status} {} for input {shown:?}",
        String::from_utf8_lossy(body)
    );
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{what}: {status} with a body that is not JSON: {} (input {shown:?})",
            String::from_utf8_lossy(body)
        )
    });
    if status >= 400 {
        assert!(
            value["error"]["code"].is_string() || value["error"].is_object(),
            "{what}: {status} without an error code: {value} (input {shown:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_or_black_holed_gets_502_or_504_in_time_and_nothing_leaks() {
    let mut fed = Federation::create().unwrap();
    // The black hole: accepts, reads, never answers; a connection ends only when the gateway
    // closes it, so a leaked connection also shows as a task that never ends.
    let hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let black_hole = tokio::spawn(async move {
        while let Ok((mut stream, _)) = hole.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let tax_peer = fed.layout.dept("tax-office").unwrap().peer;
    rewrite(
        &fed.layout.directory_source(),
        &format!("https://{tax_peer}\""),
        &format!("https://{hole_addr}\""),
    );
    fed.layout.publish_directory().unwrap();
    let config = fed.layout.dept("social-welfare").unwrap().config.clone();
    rewrite(
        &config,
        "[client]\n",
        &format!("[client]\nrequest_timeout_ms = {DEADLINE_MS}\n"),
    );
    // civil-registry is never started: its peer port refuses connections ("down").
    let down_port = fed.layout.dept("civil-registry").unwrap().peer.port();
    fed.start_dept("social-welfare").await.unwrap();
    let client = fed.client("social-welfare").unwrap();

    let ask = move |provider: &'static str, n: usize| {
        let client = client.clone();
        async move {
            let mut body = client_body(&format!("D{:06}", 1 + n % 150));
            body["provider"] = json!(provider);
            let started = Instant::now();
            let (status, answer) = client
                .post(serde_json::to_vec(&body).unwrap())
                .await
                .expect("the consumer answers");
            (status, answer, started.elapsed())
        }
    };
    // Warm up (lazy clients, first connections), then take the baseline.
    for n in 0..10 {
        ask("civil-registry", n).await;
        ask("tax-office", n).await;
    }
    let tasks_before = alive_tasks();

    // Generous bound: the deadline is enforced, not a performance figure.
    let bound = Duration::from_millis(DEADLINE_MS * 10);
    let mut codes = std::collections::BTreeMap::<(u16, String), usize>::new();
    for wave in 0..10 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..100 {
            let n = wave * 100 + i;
            let provider = if i % 2 == 0 {
                "civil-registry"
            } else {
                "tax-office"
            };
            let asked = ask(provider, n);
            set.spawn(async move { (provider, asked.await) });
        }
        while let Some(done) = set.join_next().await {
            let (provider, (status, answer, took)) = done.unwrap();
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            let code = answer["error"]["code"].as_str().unwrap_or("").to_owned();
            match provider {
                "civil-registry" => assert_eq!(
                    (status, code.as_str()),
                    (502, "provider-unreachable"),
                    "{answer}"
                ),
                _ => assert_eq!(
                    (status, code.as_str()),
                    (504, "provider-timeout"),
                    "{answer}"
                ),
            }
            assert!(
                took < bound,
                "{provider}: answered after {took:?}, deadline {DEADLINE_MS} ms"
            );
            *codes.entry((status, code)).or_default() += 1;
        }
    }
    assert_eq!(codes.values().sum::<usize>(), 1000, "{codes:?}");

    // Nothing left behind: no open connection towards either peer and no extra task (each
    // black-holed connection the gateway kept open would also keep a black-hole reader alive).
    let settled = eventually(Duration::from_secs(5), || {
        open_connections_to(hole_addr.port()) <= 2
            && open_connections_to(down_port) == 0
            && alive_tasks() <= tasks_before + 8
    })
    .await;
    assert!(
        settled,
        "after 1,000 failed requests: {} connections to the black hole, {} to the down peer, {} tasks (before: {tasks_before})",
        open_connections_to(hole_addr.port()),
        open_connections_to(down_port),
        alive_tasks()
    );
    black_hole.abort();
    fed.stop().await;
}

/// Read until the server closes the connection (EOF or error); how long that took, or None if it
/// stayed open for `within`.
async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
    .is_ok()
}

/// A plain TCP client that sends `head`, then drips one byte every 500 ms (a slowloris), until the
/// server closes the connection or `within` passes. True if the server closed it.
async fn slowloris(addr: SocketAddr, head: &'static [u8], within: Duration) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head).await.unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {} // a 408 or similar before the close
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if stream.write_all(b"X").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_on_every_listener_without_slowing_anyone_else() {
    let fed = Federation::start().await.unwrap();
    let (oversight, _) = start_oversight(&fed).await.unwrap();
    let registry = fed.gateway("civil-registry");
    let welfare = fed.gateway("social-welfare");
    let plain = [
        ("client API", welfare.client_addr, paths::REQUESTS),
        ("admin", welfare.admin_addr.unwrap(), "/healthz"),
        ("oversight dashboard", oversight.client_addr, "/"),
    ];
    let limit = HEADER_TIMEOUT.max(BODY_TIMEOUT).max(HANDSHAKE_TIMEOUT) + Duration::from_secs(4);

    let mut slow = tokio::task::JoinSet::new();
    for (name, addr, _) in plain {
        // Headers dripped byte by byte.
        slow.spawn(async move {
            (
                format!("{name}: dripped headers"),
                slowloris(
                    addr,
                    b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                    limit,
                )
                .await,
            )
        });
        // Complete headers, a body that never finishes.
        slow.spawn(async move {
            (
                format!("{name}: stalled body"),
                slowloris(
                    addr,
                    b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{",
                    limit,
                )
                .await,
            )
        });
        // Connected, nothing sent.
        slow.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            (
                format!("{name}: silent"),
                closed_within(&mut stream, limit).await,
            )
        });
    }
    // Peer ports (a department's, the oversight node's own-log port): a TCP connection that
    // never starts the TLS handshake.
    let peer = registry.peer_addr;
    for (name, addr) in [("peer", peer), ("oversight peer", oversight.peer_addr)] {
        slow.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            (
                format!("{name}: no TLS handshake"),
                closed_within(&mut stream, limit).await,
            )
        });
    }
    // Peer port, authenticated HTTP/2: a stream whose body never finishes gets a 408.
    let mut h2 = peer_h2(&fed, "social-welfare", peer).await;
    let stalled = {
        let request = http::Request::post(format!("https://127.0.0.1{}", paths::EXCHANGE))
            .header(http::header::CONTENT_LENGTH, "100000")
            .body(NeverEnds)
            .unwrap();
        let (mut sender, conn) = {
            let certs = fed.root.path().join("certs");
            let tls = TlsMaterial::load(
                &certs.join("ca.pem"),
                None,
                &certs.join("social-welfare.pem"),
                &certs.join("social-welfare.key"),
            )
            .unwrap();
            let tcp = TcpStream::connect(peer).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let stream = tokio_rustls::TlsConnector::from(tls.client_config(HTTPS_ALPN).unwrap())
                .connect(name, tcp)
                .await
                .unwrap();
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap()
        };
        tokio::spawn(conn);
        tokio::spawn(async move {
            tokio::time::timeout(limit, sender.send_request(request))
                .await
                .map(|r| r.map(|r| r.status().as_u16()))
        })
    };

    // Meanwhile everyone else is served promptly: exchanges, admin, the peer port.
    for n in 0..5 {
        let (status, answer) = fed
            .request(
                "social-welfare",
                "civil-registry",
                "residents",
                json!({"national_id": format!("D{:06}", n + 1)}),
                "benefit-eligibility",
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{answer}");
        let (status, _) = get_text(welfare.admin_addr.unwrap(), "/healthz")
            .await
            .unwrap();
        assert_eq!(status, 200);
        // The dashboard answers (its one open route; every other one wants a signed-in staff member).
        assert_eq!(
            get_text(oversight.client_addr, "/healthz").await.unwrap().0,
            200
        );
        let (status, _) = peer_post(&mut h2, None, b"{}".to_vec()).await.unwrap();
        assert!((400..500).contains(&status), "{status}");
    }

    while let Some(done) = slow.join_next().await {
        let (what, closed) = done.unwrap();
        assert!(closed, "{what}: still open after {limit:?}");
    }
    match stalled.await.unwrap() {
        Ok(Ok(status)) => assert_eq!(status, 408, "a stalled peer body"),
        Ok(Err(e)) => panic!("a stalled peer body: {e}"),
        Err(_) => panic!("a stalled peer body: no answer within {limit:?}"),
    }
}

/// A request body that never sends a byte and never ends.
struct NeverEnds;

impl hyper::body::Body for NeverEnds {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_and_bodies_are_refused_on_every_listener() {
    let fed = Federation::start().await.unwrap();
    let (oversight, _) = start_oversight(&fed).await.unwrap();
    let welfare = fed.gateway("social-welfare");
    let big_header = "a".repeat(causeway::transport::server::MAX_HEADER_BYTES + 1024);
    // The client API speaks mutual TLS: the same limits, through an application's connection.
    let client = fed.client("social-welfare").unwrap();
    let (status, body) = client
        .post(vec![b' '; causeway::gateway::MAX_CLIENT_BODY + 1])
        .await
        .unwrap();
    assert_eq!(
        status,
        413,
        "client API: {}",
        String::from_utf8_lossy(&body)
    );
    assert_clean("client API", b"<large body>", status, &body);
    // A closed connection (Err) is a refusal too.
    if let Ok((status, _)) = client
        .post_with(b"{}".to_vec(), &[("x-big", &big_header)])
        .await
    {
        assert_eq!(status, 431, "client API: oversized header block");
    }
    for (name, addr, path, max_body) in [
        ("admin", welfare.admin_addr.unwrap(), "/healthz", 1024),
        (
            "oversight dashboard",
            oversight.client_addr,
            "/",
            causeway::oversight::dashboard::MAX_FORM_BYTES,
        ),
    ] {
        let (status, body) = post_raw(addr, path, vec![b' '; max_body + 1])
            .await
            .unwrap();
        assert_eq!(status, 413, "{name}: {}", String::from_utf8_lossy(&body));
        assert_clean(name, b"<large body>", status, &body);

        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Big: {big_header}\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| {
                panic!("{name}: an oversized header block left the connection open")
            });
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{name}: {answer}"
        );
    }

    let peer = fed.gateway("civil-registry").peer_addr;
    let mut h2 = peer_h2(&fed, "social-welfare", peer).await;
    let (status, body) = peer_post(
        &mut h2,
        Some("AAAA"),
        vec![b' '; causeway::gateway::MAX_PEER_BODY + 1],
    )
    .await
    .unwrap();
    assert_eq!(status, 413, "peer: {}", String::from_utf8_lossy(&body));
    let request = http::Request::post(format!("https://127.0.0.1{}", paths::EXCHANGE))
        .header("x-big", big_header.as_str())
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let mut h2_big = peer_h2(&fed, "social-welfare", peer).await;
    match tokio::time::timeout(Duration::from_secs(5), h2_big.send_request(request)).await {
        Ok(Ok(response)) => assert_eq!(response.status(), 431, "peer: oversized header block"),
        Ok(Err(_)) => {} // refused at the HTTP/2 layer
        Err(_) => panic!("peer: an oversized header block got no answer"),
    }

    // Everyone is still served.
    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000001"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    fed.assert_carried_by_transport("social-welfare");
}

/// One mutation of `valid`: flipped, inserted, deleted or duplicated bytes, a value of the wrong
/// type, a huge number, deep nesting, or random bytes.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    match rng.below(9) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let i = rng.below(out.len() + 1);
            let n = 1 + rng.below(8);
            let extra = rng.bytes(n);
            out.splice(i..i, extra);
        }
        2 => {
            let i = rng.below(out.len());
            let j = (i + 1 + rng.below(16)).min(out.len());
            out.drain(i..j);
        }
        3 => {
            // A value of the wrong type for a random field.
            let mut value: Value = serde_json::from_slice(valid).unwrap();
            let keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            let key = &keys[rng.below(keys.len())];
            let wrong = [
                json!(null),
                json!(12345),
                json!(-1.5e300),
                json!([1, "two", null]),
                json!({"nested": {"deeper": true}}),
                json!(true),
                json!(""),
                json!("x".repeat(1000)),
            ];
            value[key] = wrong[rng.below(wrong.len())].clone();
            out = serde_json::to_vec(&value).unwrap();
        }
        4 => {
            let mut value: Value = serde_json::from_slice(valid).unwrap();
            let keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            value
                .as_object_mut()
                .unwrap()
                .remove(&keys[rng.below(keys.len())]);
            out = serde_json::to_vec(&value).unwrap();
        }
        5 => {
            // Huge numbers in place of a string.
            let text = String::from_utf8_lossy(valid).into_owned();
            let huge = [
                "1e999999",
                "123456789012345678901234567890123456789",
                "-0",
                "1E-99999",
            ];
            out = text
                .replacen(
                    "\"D0",
                    &format!("{}, \"z\":\"D0", huge[rng.below(huge.len())]),
                    1,
                )
                .into_bytes();
        }
        6 => {
            // Deep nesting, either bracket kind, sometimes inside a valid field.
            let depth = 1 + rng.below(20_000);
            let (open, close) = if rng.below(2) == 0 {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            out = if rng.below(2) == 0 {
                nested.into_bytes()
            } else {
                String::from_utf8_lossy(valid)
                    .replacen(
                        "\"params\":{",
                        &format!("\"params\":{{\"deep\":{nested},"),
                        1,
                    )
                    .into_bytes()
            };
        }
        7 => {
            let n = rng.below(2048);
            out = rng.bytes(n);
        }
        _ => {
            // Truncated.
            out.truncate(rng.below(out.len()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_envelopes_frames_and_bodies_get_clean_refusals() {
    let fed = Arc::new(Federation::start().await.unwrap());
    let key = fed.signing_key("social-welfare");
    let valid = Envelope {
        v: envelope::ENVELOPE_VERSION,
        id: uuid::Uuid::now_v7(),
        consumer: causeway::identity::DeptId::new("social-welfare").unwrap(),
        provider: causeway::identity::DeptId::new("civil-registry").unwrap(),
        dataset: "residents".into(),
        params: [("national_id".to_owned(), json!("D000010"))].into(),
        purpose: "benefit-eligibility".into(),
        legal_basis: "test-act:s1".into(),
        case: String::new(),
        officer: "tag".into(),
        application: None,
        issued_at: envelope::now_rfc3339(),
        nonce: envelope::nonce(),
    }
    .to_bytes();
    let mut rng = Rng(0x00C0_FFEE_2026_0008);

    // 4,000 envelopes on the peer exchange endpoint, 32 in flight on one HTTP/2 connection: half
    // re-signed (so they reach the parser and policy), half with a stale or broken signature.
    let peer = fed.gateway("civil-registry").peer_addr;
    let h2 = peer_h2(&fed, "social-welfare", peer).await;
    let mut inputs = Vec::new();
    for i in 0..4000 {
        let body = mutate(&mut rng, &valid);
        let signature = match i % 4 {
            0 | 1 => Some(Envelope::sign(&body, &key)),
            2 => Some(Envelope::sign(&valid, &key)),
            _ => [
                None,
                Some("AAAA".to_owned()),
                Some("!!not base64".to_owned()),
            ][rng.below(3)]
            .clone(),
        };
        inputs.push((signature, body));
    }
    for chunk in inputs.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for (signature, body) in chunk.iter().cloned() {
            let mut h2 = h2.clone();
            set.spawn(async move {
                let answer = peer_post(&mut h2, signature.as_deref(), body.clone()).await;
                (body, answer)
            });
        }
        while let Some(done) = set.join_next().await {
            let (body, answer) = done.unwrap();
            let (status, answer) = answer.expect("the peer port answers");
            assert_clean("peer exchange", &body, status, &answer);
        }
    }

    // 4,000 JSON bodies on the client API.
    let client = fed.client("social-welfare").unwrap();
    let valid_request = serde_json::to_vec(&client_body("D000010")).unwrap();
    let bodies: Vec<Vec<u8>> = (0..4000)
        .map(|_| mutate(&mut rng, &valid_request))
        .collect();
    for chunk in bodies.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for body in chunk.iter().cloned() {
            let client = client.clone();
            set.spawn(async move {
                let answer = client.post(body.clone()).await;
                (body, answer)
            });
        }
        while let Some(done) = set.join_next().await {
            let (body, answer) = done.unwrap();
            let (status, answer) = answer.expect("the client API answers");
            assert_clean("client API", &body, status, &answer);
        }
    }

    // 2,000 QUIC frames: valid frames around mutated envelopes, and mutated frames.
    let quic = fed.layout.dept("civil-registry").unwrap().quic.unwrap();
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
    let conn = raw_quic_connect(quic, tls).await.unwrap();
    let frames: Vec<Vec<u8>> = (0..2000)
        .map(|i| {
            let body = mutate(&mut rng, &valid);
            let header = RequestHeader {
                method: "POST".into(),
                path: paths::EXCHANGE.into(),
                signature: Some(Envelope::sign(&body, &key)),
                traceparent: None,
                length: 0,
            };
            let framed = frame::encode(header, &body);
            if i % 2 == 0 {
                framed
            } else {
                mutate_frame(&mut rng, framed)
            }
        })
        .collect();
    for chunk in frames.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for bytes in chunk.iter().cloned() {
            let conn = conn.clone();
            set.spawn(async move {
                let outcome = raw_quic_stream(&conn, &bytes, true, Duration::from_secs(15)).await;
                (bytes, outcome)
            });
        }
        while let Some(done) = set.join_next().await {
            let (bytes, outcome) = done.unwrap();
            match outcome.expect("every frame gets an answer or a reset") {
                StreamOutcome::Response(status, body) => {
                    assert_clean("QUIC frame", &bytes, status, &body)
                }
                StreamOutcome::Reset(code, raw) => {
                    assert!(code.is_some(), "reset with an unknown code {raw}")
                }
            }
        }
    }

    // Still serving.
    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000001"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
}

/// A mutated frame: the length prefix, header bytes or body bytes changed.
fn mutate_frame(rng: &mut Rng, mut framed: Vec<u8>) -> Vec<u8> {
    match rng.below(4) {
        0 => {
            let announced = [0u32, 1, 2, 3, 16 * 1024 + 1, u32::MAX, rng.next() as u32];
            framed[..4].copy_from_slice(&announced[rng.below(announced.len())].to_be_bytes());
        }
        1 => {
            let i = 4 + rng.below(framed.len() - 4);
            framed[i] ^= 1 << rng.below(8);
        }
        2 => framed.truncate(rng.below(framed.len())),
        _ => {
            let n = 1 + rng.below(64);
            framed.extend(rng.bytes(n));
        }
    }
    framed
}

/// A small ext4 filesystem (an image file, loop-mounted on a fresh directory) while it lives: a
/// ledger disk that can fill up and whose files can be made immutable.
struct SmallDisk {
    dir: tempfile::TempDir,
    /// Holds the image file; removed after the filesystem is unmounted.
    _image: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> SmallDisk {
        let (image, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let file = image.path().join("disk.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(mib << 20))
            .unwrap();
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = std::process::Command::new(program).args(args).status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "{program} {args:?} failed ({status:?}): this test fills a real filesystem and \
                 needs e2fsprogs and root (CAP_SYS_ADMIN, loop devices), as CI runs it"
            );
        };
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), file.as_os_str()],
        );
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                file.as_os_str(),
                dir.path().as_os_str(),
            ],
        );
        SmallDisk { dir, _image: image }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Write a file until the filesystem refuses with "no space left"; its size.
    fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join(name)).unwrap();
        let chunk = vec![0xA5u8; 16 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => return written, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // The loop device was set up by `mount -o loop`, so unmounting releases it too. Tasks of
        // the stopped gateways may still hold the ledger open while the test's runtime winds
        // down: then detach now (lazily), and the kernel unmounts once they let go.
        let umount = |lazy: bool| {
            std::process::Command::new("umount")
                .args(lazy.then_some("--lazy"))
                .arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
    }
}

fn chattr(flag: &str, path: &std::path::Path) {
    let status = std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chattr {flag} {}", path.display());
}

/// The provider's ledger lives on an 8 MiB ext4 filesystem. Filled up, then made read-only (the data
/// file immutable), the provider answers 503 `ledger-unavailable` with no rows, stays up and says
/// why on /readyz; once space returns or the file is writable again, exchanges succeed without a
/// restart. Every exchange a client saw succeed is in the ledger, which verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_ledger_disk_releases_nothing_and_recovers_without_a_restart() {
    let disk = SmallDisk::mount(8);
    let ledger = disk.path().join("ledger");
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept("civil-registry").unwrap().config.clone();
    rewrite(
        &config,
        "dir = \"ledger\"",
        &format!("dir = \"{}\"", ledger.display()),
    );
    // Filling the ledger's free pages takes a few hundred exchanges: above the demo's rate limit.
    rewrite(
        &fed.dept_dir("civil-registry")
            .join("policies/welfare-residents.toml"),
        "per_minute = 600,",
        "per_minute = 100000,",
    );
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.unwrap();
    }
    let admin = fed.gateway("civil-registry").admin_addr.unwrap();
    let mut acknowledged = Vec::new();
    let mut n = 0;
    let mut ask = |fed: &Federation| {
        n += 1;
        let body = client_body(&format!("D{:06}", 1 + n % 150));
        let client = fed.client("social-welfare").unwrap();
        async move {
            let (status, answer) = client.post_json(&body).await.unwrap();
            (status, answer)
        }
    };
    let refused_cleanly = |status: u16, answer: &Value| {
        status == 503
            && answer["provider_status"] == 503
            && answer["error"]["code"] == "ledger-unavailable"
            && answer.get("rows").is_none()
    };

    for (what, break_disk, mend_disk) in [
        (
            "disk full",
            Box::new(|| {
                disk.fill("filler");
            }) as Box<dyn Fn()>,
            Box::new(|| std::fs::remove_file(disk.path().join("filler")).unwrap()) as Box<dyn Fn()>,
        ),
        (
            "read-only",
            Box::new(|| chattr("+i", &ledger.join("data.mdb"))),
            Box::new(|| chattr("-i", &ledger.join("data.mdb"))),
        ),
    ] {
        let (status, answer) = ask(&fed).await;
        assert_eq!(status, 200, "{what}: before: {answer}");
        acknowledged.push(answer["receipt"]["index"].as_u64().unwrap());

        break_disk();
        // Entries may still fit in pages the ledger file already has; then it must refuse.
        let mut refusals = 0;
        for _ in 0..3000 {
            let (status, answer) = ask(&fed).await;
            if status == 200 {
                // A commit that fits in pages the file already has is as durable as any other.
                acknowledged.push(answer["receipt"]["index"].as_u64().unwrap());
                continue;
            }
            assert!(
                refused_cleanly(status, &answer),
                "{what}: {status} {answer}"
            );
            refusals += 1;
            if refusals == 5 {
                break;
            }
        }
        assert_eq!(refusals, 5, "{what}: the provider kept answering 200");
        let (status, ready) = get_text(admin, "/readyz").await.unwrap();
        assert_eq!(status, 503, "{what}: {ready}");
        assert!(ready.contains("last_commit_error"), "{ready}");
        assert_eq!(
            get_text(admin, "/healthz").await.unwrap().0,
            200,
            "{what}: stays up"
        );

        mend_disk();
        let (status, answer) = ask(&fed).await;
        assert_eq!(
            status, 200,
            "{what}: once mended, the next exchange succeeds: {answer}"
        );
        acknowledged.push(answer["receipt"]["index"].as_u64().unwrap());
        assert_eq!(
            get_text(admin, "/readyz").await.unwrap().0,
            200,
            "{what}: ready again"
        );
    }

    fed.stop().await;
    let verified = causeway_tests::verify_ledger(&ledger, &fed.directory()).unwrap();
    let entries = causeway_tests::ledger_entries(&ledger).unwrap();
    for index in &acknowledged {
        let entry = &entries[usize::try_from(*index).unwrap()];
        assert_eq!(entry["index"], *index);
        assert_eq!(entry["side"], "provider", "{entry}");
    }
    assert!(verified.entries >= acknowledged.len() as u64);
}
