//! Revocation without restarts (docs/OPERATIONS.md, "Revoking a department"): the federation
//! operator revokes a department with `causeway certs revoke` while every gateway runs, and the
//! department is cut off within a few reload intervals: its new handshakes fail over HTTPS and
//! QUIC, the connections it already holds are closed, and its own gateway can reach nobody, while
//! the other departments keep exchanging. A CRL of another CA, an older CRL and a stale CRL are
//! the attacks (or accidents) beside it.
//!
//! Every gateway here reads `certs/crl.pem` (the CA directory's own file, so revoking is
//! publishing) every second. Nothing waits a fixed time: each test polls for what must happen,
//! up to [`DEADLINE`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use causeway::identity::pki;
use causeway::identity::tls::TlsMaterial;
use causeway::transport::frame::{self, RequestHeader, ResetCode};
use causeway::transport::{paths, Transport, HTTPS_ALPN, QUIC_ALPN};
use causeway_tests::{exchange, get_text, raw_quic_connect, raw_quic_stream, rewrite, Federation};
use causeway_tests::{raw_peer_post, StreamOutcome};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long anything here may take: many reload intervals of one second.
const DEADLINE: Duration = Duration::from_secs(30);

macro_rules! over_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn https() {
                super::$name(causeway::transport::Transport::Https).await
            }
            #[tokio::test]
            async fn quic() {
                super::$name(causeway::transport::Transport::Quic).await
            }
        }
    )*};
}

over_both_transports!(a_revoked_department_is_cut_off_without_a_restart);

/// Wait until `check` holds, up to [`DEADLINE`]; fail naming `what` otherwise.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    causeway_tests::eventually(what, DEADLINE, check).await
}

fn certs(fed: &Federation) -> PathBuf {
    fed.root.path().join("certs")
}

/// Start the demo federation with every gateway honouring `certs/crl.pem` (a first, empty CRL
/// signed now), read again every second, stale CRLs treated as `stale` says.
async fn federation_with_crl(transport: Transport, stale: &str) -> Federation {
    let mut fed = Federation::create_with(transport).unwrap();
    pki::refresh_crl(&certs(&fed), time::Duration::days(30)).unwrap();
    let ids: Vec<String> = fed
        .layout
        .departments
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    for dept in &fed.layout.departments {
        rewrite(
            &dept.config,
            "[identity]\n",
            &format!(
                "[identity]\ncrl = \"../certs/crl.pem\"\ncrl_reload_secs = 1\ncrl_stale = \"{stale}\"\n"
            ),
        );
    }
    for id in ids {
        fed.start_dept(&id).await.unwrap();
    }
    fed
}

/// The federation operator revokes `dept`'s certificate; the CRL lands where gateways read it.
fn revoke(fed: &Federation, dept: &str) {
    pki::revoke(
        &certs(fed),
        &certs(fed).join(format!("{dept}.pem")),
        pki::revocation_reason("keyCompromise").unwrap(),
        time::Duration::days(30),
    )
    .unwrap();
}

/// TLS material holding `dept`'s certificate and key, as the department itself (or whoever stole
/// its key) holds them.
fn held_by(fed: &Federation, dept: &str) -> TlsMaterial {
    TlsMaterial::load(
        &certs(fed).join("ca.pem"),
        None,
        &certs(fed).join(format!("{dept}.pem")),
        &certs(fed).join(format!("{dept}.key")),
    )
    .unwrap()
}

/// An HTTP/2 connection to a peer port, held open by a task: the sender, and the task, which
/// ends when the connection does.
async fn open_h2(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

/// GET the peer's checkpoint on an open HTTP/2 connection: its status, or why it failed.
async fn checkpoint_over(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
) -> Result<u16, String> {
    let request = http::Request::get(format!("https://127.0.0.1{}", paths::CHECKPOINT))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), sender.send_request(request)).await {
        Ok(Ok(response)) => Ok(response.status().as_u16()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

fn checkpoint_frame() -> Vec<u8> {
    frame::encode(RequestHeader::new("GET", paths::CHECKPOINT, None), b"")
}

/// The readiness body of `dept`'s gateway and whether it said ready.
async fn readiness(fed: &Federation, dept: &str) -> (bool, Value) {
    let admin = fed.gateway(dept).admin_addr.unwrap();
    let (status, body) = get_text(admin, "/readyz").await.unwrap();
    (status == 200, serde_json::from_str(&body).unwrap())
}

async fn a_revoked_department_is_cut_off_without_a_restart(transport: Transport) {
    let mut fed = federation_with_crl(transport, "fail-closed").await;
    // Before: the tax office exchanges both ways, and holds connections over both transports.
    assert_eq!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    assert_eq!(exchange(&fed, "social-welfare", "tax-office").await, 200);
    let civil = fed.gateway("civil-registry");
    let (civil_https, civil_quic) = (civil.peer_addr, civil.quic_addr.unwrap());
    let tax = held_by(&fed, "tax-office");
    let (mut h2, h2_task) = open_h2(civil_https, tax.client_config(HTTPS_ALPN).unwrap()).await;
    assert_eq!(checkpoint_over(&mut h2).await, Ok(200));
    let quic = raw_quic_connect(civil_quic, tax.quic_client_config(QUIC_ALPN).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        raw_quic_stream(&quic, &checkpoint_frame(), true, DEADLINE)
            .await
            .unwrap(),
        StreamOutcome::Response(200, _)
    ));

    // The operator revokes the tax office. Nobody restarts anything.
    revoke(&fed, "tax-office");

    // The connections it holds are closed: HTTP/2 dropped, QUIC closed with REVOKED.
    eventually(
        "the revoked department's HTTP/2 connection is closed",
        || {
            let finished = h2_task.is_finished();
            async move { finished }
        },
    )
    .await;
    assert!(
        checkpoint_over(&mut h2).await.is_err(),
        "nothing more goes over the closed HTTP/2 connection"
    );
    eventually("the revoked department's QUIC connection is closed", || {
        let closed = quic.close_reason().is_some();
        async move { closed }
    })
    .await;
    match quic.close_reason().unwrap() {
        quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(
            close.error_code.into_inner(),
            u64::from(ResetCode::Revoked.code()),
            "{close:?}"
        ),
        other => panic!("closed otherwise than with REVOKED: {other}"),
    }

    // Its new handshakes fail, over HTTPS and over QUIC.
    let refused = raw_peer_post(
        civil_https,
        tax.client_config(HTTPS_ALPN).unwrap(),
        Bytes::from_static(b"{}"),
    )
    .await;
    assert!(refused.is_err(), "a new HTTPS handshake got {refused:?}");
    let quic_again =
        match raw_quic_connect(civil_quic, tax.quic_client_config(QUIC_ALPN).unwrap()).await {
            // TLS 1.3: the client may finish before the server refuses its certificate.
            Ok(conn) => raw_quic_stream(&conn, &checkpoint_frame(), true, DEADLINE)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
    assert!(
        !matches!(quic_again, Ok(StreamOutcome::Response(..))),
        "a new QUIC handshake got {quic_again:?}"
    );

    // Its own gateway reaches nobody, and nobody reaches it: its pooled connections are closed
    // and new ones refused by the other side's CRL.
    let f = &fed;
    eventually(
        "the revoked department's gateway can no longer ask",
        || async move { exchange(f, "tax-office", "civil-registry").await != 200 },
    )
    .await;
    eventually("no department can ask the revoked one", || async move {
        exchange(f, "social-welfare", "tax-office").await != 200
    })
    .await;

    // The others keep exchanging.
    assert_eq!(exchange(f, "social-welfare", "civil-registry").await, 200);
    let (ready, body) = readiness(f, "civil-registry").await;
    assert!(ready, "{body}");
    assert_eq!(body["revocation"]["number"], "2", "{body}");
    assert_eq!(body["revocation"]["revoked"], 1, "{body}");
    assert!(
        body["revocation"]["connections_closed"].as_u64().unwrap() >= 2,
        "the HTTP/2 and QUIC connections: {body}"
    );
    fed.stop().await;
}

#[tokio::test]
async fn a_crl_of_another_ca_or_an_older_crl_is_refused_and_the_last_good_one_stays() {
    let mut fed = federation_with_crl(Transport::Https, "fail-closed").await;
    let crl = certs(&fed).join(pki::CRL);
    let first = std::fs::read(&crl).unwrap();
    revoke(&fed, "tax-office");
    let current = std::fs::read(&crl).unwrap();
    let f = &fed;
    eventually("the revocation is in force", || async move {
        exchange(f, "tax-office", "civil-registry").await != 200
    })
    .await;

    // Another CA of the same federation name (so the same issuer name), whose list is newer
    // and revokes nobody, dropped in place: it would lift the tax office's revocation.
    let other = tempfile::tempdir().unwrap();
    pki::init_federation("demo", other.path()).unwrap();
    for _ in 0..5 {
        pki::refresh_crl(other.path(), time::Duration::days(30)).unwrap();
    }
    std::fs::copy(other.path().join(pki::CRL), &crl).unwrap();
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        eventually(&format!("{dept} refuses the foreign CRL"), || async move {
            let (_, body) = readiness(f, dept).await;
            body["revocation"]["last_refusal"]
                .as_str()
                .is_some_and(|e| e.contains("its signature does not verify"))
        })
        .await;
    }
    let (ready, body) = readiness(&fed, "civil-registry").await;
    assert!(!ready, "a refused CRL makes the gateway not ready: {body}");
    let refusal = body["revocation"]["last_refusal"].as_str().unwrap();
    assert!(refusal.contains("crl.pem"), "names the file: {refusal}");
    assert_eq!(
        body["revocation"]["number"], "2",
        "the last good CRL: {body}"
    );
    // Still revoked; everyone else still served.
    assert_ne!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    assert_eq!(
        exchange(&fed, "social-welfare", "civil-registry").await,
        200
    );
    let metrics = get_text(
        fed.gateway("civil-registry").admin_addr.unwrap(),
        "/metrics",
    )
    .await
    .unwrap()
    .1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("causeway_crl_refusals_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // The federation's own first CRL (number 1, revoking nobody), put back: a rollback.
    std::fs::write(&crl, &first).unwrap();
    eventually("the older CRL is refused", || async move {
        let (_, body) = readiness(f, "civil-registry").await;
        body["revocation"]["last_refusal"]
            .as_str()
            .is_some_and(|e| e.contains("CRL number 1 is lower than 2"))
    })
    .await;
    assert_ne!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    assert_eq!(
        exchange(&fed, "social-welfare", "civil-registry").await,
        200
    );

    // The operator publishes the CA's current list again, then re-signs it: accepted, ready again.
    std::fs::write(&crl, &current).unwrap();
    pki::refresh_crl(&certs(&fed), time::Duration::days(30)).unwrap();
    eventually("the current CRL is accepted", || async move {
        let (ready, body) = readiness(f, "civil-registry").await;
        ready && body["revocation"]["number"] == "3"
    })
    .await;
    assert_ne!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    fed.stop().await;
}

#[tokio::test]
async fn a_stale_crl_fails_closed_until_a_fresh_one_is_published() {
    let mut fed = federation_with_crl(Transport::Https, "fail-closed").await;
    assert_eq!(
        exchange(&fed, "social-welfare", "civil-registry").await,
        200
    );
    // A CRL that goes stale in two seconds (the operator forgot to re-sign it in time).
    pki::refresh_crl(&certs(&fed), time::Duration::seconds(2)).unwrap();
    let f = &fed;
    eventually("exchanges stop once the CRL is stale", || async move {
        exchange(f, "social-welfare", "civil-registry").await != 200
    })
    .await;
    let (ready, body) = readiness(&fed, "civil-registry").await;
    assert!(!ready && body["revocation"]["stale"] == true, "{body}");
    // A fresh CRL, and no restart: exchanges resume.
    pki::refresh_crl(&certs(&fed), time::Duration::days(30)).unwrap();
    eventually("exchanges resume with a fresh CRL", || async move {
        exchange(f, "social-welfare", "civil-registry").await == 200
    })
    .await;
    fed.stop().await;
}

#[tokio::test]
async fn a_stale_crl_only_warns_when_so_configured() {
    let mut fed = federation_with_crl(Transport::Https, "warn").await;
    pki::refresh_crl(&certs(&fed), time::Duration::seconds(2)).unwrap();
    let f = &fed;
    eventually("the CRL is stale", || async move {
        let (_, body) = readiness(f, "civil-registry").await;
        body["revocation"]["stale"] == true && body["revocation"]["number"] == "2"
    })
    .await;
    let (ready, body) = readiness(&fed, "civil-registry").await;
    assert!(ready, "stale under warn is still ready: {body}");
    assert_eq!(
        exchange(&fed, "social-welfare", "civil-registry").await,
        200
    );
    // And a revocation still cuts a department off.
    revoke(&fed, "tax-office");
    eventually("the revocation is honoured", || async move {
        exchange(f, "tax-office", "civil-registry").await != 200
    })
    .await;
    fed.stop().await;
}

#[tokio::test]
async fn the_oversight_node_stops_pulling_from_a_revoked_department() {
    let mut fed = federation_with_crl(Transport::Https, "fail-closed").await;
    let layout = causeway::layout::create_oversight(&fed.layout, "audit-office").unwrap();
    let text = std::fs::read_to_string(&layout.config)
        .unwrap()
        .replace("grace_secs = 30", "grace_secs = 0")
        .replace("pull_interval_ms = 2000", "pull_interval_ms = 3600000")
        .replace(
            "[identity]\n",
            "[identity]\ncrl = \"../certs/crl.pem\"\ncrl_reload_secs = 1\n",
        );
    std::fs::write(&layout.config, text).unwrap();
    let (gateway, _) = causeway_tests::start_oversight(&fed).await.unwrap();
    let node = gateway.oversight().unwrap().clone();
    let pulled = |node: Arc<causeway::oversight::Oversight>| async move {
        node.pull_all(Arc::new(|_: &str, _, _| {}))
            .await
            .into_iter()
            .map(|(dept, report)| (dept, report.is_ok()))
            .collect::<Vec<_>>()
    };
    assert!(pulled(node.clone()).await.iter().all(|(_, ok)| *ok));

    revoke(&fed, "tax-office");
    let expected = vec![
        ("civil-registry".to_owned(), true),
        ("social-welfare".to_owned(), true),
        ("tax-office".to_owned(), false),
    ];
    let (node, pulled, expected) = (&node, &pulled, &expected);
    eventually(
        "the oversight node pulls from all but the revoked department",
        || async move { pulled(node.clone()).await == *expected },
    )
    .await;
    gateway.shutdown().await;
    fed.stop().await;
}
