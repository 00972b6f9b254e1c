//! The QUIC peer port on its own: who it refuses, how it treats bad frames, and the consumer's
//! fallback to HTTPS. Exchange semantics over QUIC are covered by `exchange.rs`, which runs every
//! exchange test over both transports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway::exchange::envelope::{self, Envelope};
use causeway::identity::tls::TlsMaterial;
use causeway::identity::DeptId;
use causeway::transport::frame::{self, RequestHeader, ResetCode};
use causeway::transport::peer::PeerRequest;
use causeway::transport::{paths, Transport, QUIC_ALPN};
use causeway_tests::{quic_client, raw_quic_connect, raw_quic_stream, Federation, StreamOutcome};
use serde_json::json;

/// Long enough for any loopback answer; a refusal must come well before it.
const WAIT: Duration = Duration::from_secs(5);

fn fed_ca(fed: &Federation) -> std::path::PathBuf {
    fed.root.path().join("certs/ca.pem")
}

/// rustls client config for raw QUIC tests: trusts `fed`'s CA, presents `dept`'s certificate
/// from `certs`.
fn client_tls(fed: &Federation, certs: &std::path::Path, dept: &str) -> Arc<rustls::ClientConfig> {
    TlsMaterial::load(
        &fed_ca(fed),
        None,
        &certs.join(format!("{dept}.pem")),
        &certs.join(format!("{dept}.key")),
    )
    .unwrap()
    .quic_client_config(QUIC_ALPN)
    .unwrap()
}

fn checkpoint_request() -> Vec<u8> {
    frame::encode(RequestHeader::new("GET", paths::CHECKPOINT, None), b"")
}

/// A signed exchange request frame from social-welfare to civil-registry.
fn exchange_request(fed: &Federation) -> Vec<u8> {
    let envelope = Envelope {
        v: envelope::ENVELOPE_VERSION,
        id: uuid::Uuid::now_v7(),
        consumer: DeptId::new("social-welfare").unwrap(),
        provider: DeptId::new("civil-registry").unwrap(),
        dataset: "residents".into(),
        params: BTreeMap::from([("national_id".to_owned(), json!("D000010"))]),
        purpose: "benefit-eligibility".into(),
        legal_basis: "test-act:s1".into(),
        case: String::new(),
        officer: "tag".into(),
        application: None,
        issued_at: envelope::now_rfc3339(),
        nonce: envelope::nonce(),
    };
    let bytes = envelope.to_bytes();
    let signature = Envelope::sign(&bytes, &fed.signing_key("social-welfare"));
    frame::encode(
        RequestHeader::new("POST", paths::EXCHANGE, Some(signature)),
        &bytes,
    )
}

/// The connection still serves: a checkpoint and a real exchange, each on a new stream.
async fn assert_still_serves(fed: &Federation, conn: &quinn::Connection, after: &str) {
    match raw_quic_stream(conn, &checkpoint_request(), true, WAIT)
        .await
        .unwrap_or_else(|e| panic!("after {after}: {e:#}"))
    {
        StreamOutcome::Response(200, body) => assert!(
            body.starts_with(b"demo/civil-registry\n"),
            "after {after}: not a checkpoint: {body:?}"
        ),
        other => panic!("after {after}: {other:?}"),
    }
    match raw_quic_stream(conn, &exchange_request(fed), true, WAIT)
        .await
        .unwrap_or_else(|e| panic!("after {after}: {e:#}"))
    {
        StreamOutcome::Response(200, body) => {
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer["rows"].as_array().map(Vec::len), Some(1), "{answer}");
        }
        other => panic!("after {after}: {other:?}"),
    }
    assert!(
        conn.close_reason().is_none(),
        "after {after}: connection closed"
    );
}

/// A federation preferring QUIC whose civil registry times request frames out after `ms`.
async fn federation_with_frame_timeout(ms: u64) -> Federation {
    let mut fed = Federation::create_with(Transport::Quic).unwrap();
    let config = fed.layout.dept("civil-registry").unwrap().config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    let patched = text.replace(
        "prefer = \"quic\"",
        &format!("prefer = \"quic\"\nquic_frame_timeout_ms = {ms}"),
    );
    assert_ne!(text, patched);
    std::fs::write(&config, patched).unwrap();
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.unwrap();
    }
    fed
}

fn quic_addr(fed: &Federation, dept: &str) -> std::net::SocketAddr {
    fed.gateway(dept).quic_addr.expect("the QUIC port is open")
}

#[tokio::test]
async fn the_quic_port_refuses_a_client_without_a_certificate_or_without_its_alpn() {
    let fed = Federation::start_with(Transport::Quic).await.unwrap();
    let addr = quic_addr(&fed, "civil-registry");
    let roots = {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(fed_ca(&fed)).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    };
    let mut anonymous =
        rustls::ClientConfig::builder_with_provider(causeway::identity::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    anonymous.alpn_protocols = vec![QUIC_ALPN[0].to_vec()];

    let certs = fed.root.path().join("certs");
    let mut wrong_alpn = (*client_tls(&fed, &certs, "social-welfare")).clone();
    wrong_alpn.alpn_protocols = vec![b"h3".to_vec()];

    for (what, config) in [
        ("no certificate", anonymous),
        ("ALPN h3 instead of causeway/1", wrong_alpn),
    ] {
        let started = Instant::now();
        // With TLS 1.3 the client may consider its side done before the server has checked its
        // certificate; the refusal then arrives as the connection closing under the first stream.
        let result = async {
            let conn = raw_quic_connect(addr, Arc::new(config)).await?;
            raw_quic_stream(&conn, &checkpoint_request(), true, WAIT).await
        }
        .await;
        let error = match result {
            Ok(outcome) => panic!("{what}: the QUIC port answered {outcome:?}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            !error.contains("hung") && !error.contains("in time"),
            "{what}: the refusal must be an error, not a hang: {error}"
        );
        assert!(
            started.elapsed() < WAIT,
            "{what}: refused only after {:?}",
            started.elapsed()
        );
        assert!(error.contains("handshake failed"), "{what}: {error}");
    }
}

#[tokio::test]
async fn the_quic_port_refuses_a_certificate_from_another_ca() {
    let fed = Federation::start_with(Transport::Quic).await.unwrap();
    // Another federation with the same department names but its own CA. The client trusts the
    // real CA, so only the server's check of the client certificate can refuse it.
    let other = Federation::create().unwrap();
    let client = quic_client(
        &fed_ca(&fed),
        &other.root.path().join("certs"),
        "social-welfare",
        "demo",
    )
    .unwrap();
    let provider = fed
        .directory()
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap()
        .clone();
    let started = Instant::now();
    let result = tokio::time::timeout(
        WAIT,
        client.send(
            &provider,
            &PeerRequest::get(paths::CHECKPOINT),
            Duration::from_secs(3),
        ),
    )
    .await
    .expect("the refusal must not hang");
    let (error, _) = result.expect_err("a foreign CA's certificate must be refused");
    let error = error.to_string();
    assert!(
        error.contains("handshake failed") && error.contains("certificate"),
        "{error}"
    );
    assert!(started.elapsed() < WAIT);
    // A certificate from the federation's own CA passes on the same port.
    let own = quic_client(
        &fed_ca(&fed),
        &fed.root.path().join("certs"),
        "social-welfare",
        "demo",
    )
    .unwrap();
    let (status, _) = own
        .send(
            &provider,
            &PeerRequest::get(paths::CHECKPOINT),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_frame_announcing_more_than_the_limit_is_reset_before_anything_is_buffered() {
    // A long frame timeout: a server that waited for the announced bytes would not answer in WAIT.
    let fed = federation_with_frame_timeout(60_000).await;
    let certs = fed.root.path().join("certs");
    let conn = raw_quic_connect(
        quic_addr(&fed, "civil-registry"),
        client_tls(&fed, &certs, "social-welfare"),
    )
    .await
    .unwrap();

    // A 4 GiB header announced, nothing else sent, stream left open.
    let outcome = raw_quic_stream(&conn, &u32::MAX.to_be_bytes(), false, WAIT)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        StreamOutcome::Reset(Some(ResetCode::FrameTooLarge), 0x1)
    );
    assert_still_serves(&fed, &conn, "an oversized header").await;

    // A valid header announcing a 1 GiB body, no body sent, stream left open.
    let header = br#"{"method":"POST","path":"/causeway/v1/exchange","length":1073741824}"#;
    let mut bytes = (header.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(header);
    let outcome = raw_quic_stream(&conn, &bytes, false, WAIT).await.unwrap();
    assert_eq!(
        outcome,
        StreamOutcome::Reset(Some(ResetCode::FrameTooLarge), 0x1)
    );
    assert_still_serves(&fed, &conn, "an oversized body").await;
}

#[tokio::test]
async fn truncated_unfinished_and_garbage_frames_get_a_reset_and_the_connection_serves_on() {
    let fed = federation_with_frame_timeout(300).await;
    let certs = fed.root.path().join("certs");
    let conn = raw_quic_connect(
        quic_addr(&fed, "civil-registry"),
        client_tls(&fed, &certs, "social-welfare"),
    )
    .await
    .unwrap();
    let complete = checkpoint_request();
    let mut truncated_header = 100u32.to_be_bytes().to_vec();
    truncated_header.extend_from_slice(b"{\"method\"");
    let body_frame = frame::encode(RequestHeader::new("POST", paths::EXCHANGE, None), b"{}");
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"hello");
    let mut trailing = complete.clone();
    trailing.extend_from_slice(b"more");
    let cases: Vec<(&str, Vec<u8>, bool, ResetCode)> = vec![
        (
            "a truncated prefix",
            vec![0, 0],
            true,
            ResetCode::TruncatedFrame,
        ),
        (
            "a truncated header",
            truncated_header,
            true,
            ResetCode::TruncatedFrame,
        ),
        (
            "a truncated body",
            body_frame[..body_frame.len() - 1].to_vec(),
            true,
            ResetCode::TruncatedFrame,
        ),
        ("garbage JSON", garbage, true, ResetCode::MalformedFrame),
        (
            "bytes after the body",
            trailing,
            true,
            ResetCode::MalformedFrame,
        ),
        (
            "a partial frame never finished",
            complete[..10].to_vec(),
            false,
            ResetCode::FrameTimeout,
        ),
        (
            "a whole frame whose stream never finishes",
            complete.clone(),
            false,
            ResetCode::FrameTimeout,
        ),
    ];
    for (what, bytes, finish, expected) in cases {
        let outcome = raw_quic_stream(&conn, &bytes, finish, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        assert_eq!(
            outcome,
            StreamOutcome::Reset(Some(expected), expected.code().into()),
            "{what}"
        );
        assert_still_serves(&fed, &conn, what).await;
    }
    // Protocol-level refusals are answers, not resets.
    // Log endpoints with a query string go through the same dispatch as over HTTPS.
    let proof = frame::encode(
        RequestHeader::new(
            "GET",
            "/causeway/v1/log/proof/inclusion?index=0&size=2",
            None,
        ),
        b"",
    );
    match raw_quic_stream(&conn, &proof, true, WAIT).await.unwrap() {
        StreamOutcome::Response(200, body) => {
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                (answer["index"].as_u64(), answer["size"].as_u64()),
                (Some(0), Some(2)),
                "{answer}"
            );
            assert_eq!(
                answer["proof"].as_array().map(Vec::len),
                Some(1),
                "{answer}"
            );
        }
        other => panic!("inclusion proof: {other:?}"),
    }
    // The worked example of docs/PROTOCOL.md, byte for byte.
    let unknown = frame::encode(RequestHeader::new("GET", "/x", None), b"");
    assert_eq!(
        raw_quic_stream(&conn, &unknown, true, WAIT).await.unwrap(),
        StreamOutcome::Response(
            404,
            Bytes::from_static(
                br#"{"error":{"code":"not-found","message":"no such endpoint: /x"}}"#
            )
        )
    );
    let unsigned = frame::encode(
        RequestHeader::new("POST", paths::EXCHANGE, None),
        b"{\"v\":1}",
    );
    match raw_quic_stream(&conn, &unsigned, true, WAIT).await.unwrap() {
        StreamOutcome::Response(401, body) => {
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer["error"]["code"], "bad-signature", "{answer}");
        }
        other => panic!("unsigned envelope: {other:?}"),
    }
}

#[tokio::test]
async fn the_consumer_falls_back_to_https_when_quic_is_down_and_counts_it() {
    let mut fed = Federation::create_with(Transport::Quic).unwrap();
    // The civil registry stops serving QUIC, though the directory still lists its quic:// endpoint.
    let registry = fed.layout.dept("civil-registry").unwrap().config.clone();
    let text = std::fs::read_to_string(&registry).unwrap();
    let without_quic: String = text
        .lines()
        .filter(|l| !l.starts_with("quic = "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without_quic);
    std::fs::write(&registry, without_quic).unwrap();
    // A short request timeout makes the QUIC handshake give up after a third of it.
    let welfare = fed.layout.dept("social-welfare").unwrap().config.clone();
    let text = std::fs::read_to_string(&welfare).unwrap();
    std::fs::write(
        &welfare,
        text.replace("[client]\n", "[client]\nrequest_timeout_ms = 3000\n"),
    )
    .unwrap();
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.unwrap();
    }
    assert_eq!(fed.gateway("civil-registry").quic_addr, None);

    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let (https, quic, fallbacks) = fed.gateway("social-welfare").transport_stats().snapshot();
    assert_eq!((https, quic, fallbacks), (1, 0, 1));

    // Towards a provider that does serve QUIC, the same gateway still uses it.
    let (status, answer) = fed
        .request(
            "social-welfare",
            "tax-office",
            "income",
            json!({"national_id": "D000042", "year": 2024}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let (_, quic, fallbacks) = fed.gateway("social-welfare").transport_stats().snapshot();
    assert_eq!((quic, fallbacks), (1, 1));
}
