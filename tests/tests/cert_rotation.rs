//! Certificate renewal without restarts (docs/OPERATIONS.md, "Renewing a certificate"): a
//! department renews its TLS certificate the way it enrolled (`causeway certs request`, then the
//! operator's `causeway certs sign`), writes the new pair over its `[identity] cert` and `key`
//! files, and its running gateway presents the new certificate to every new connection, over
//! HTTPS and QUIC, while connections already open keep the old one and exchanges go on.
//!
//! The attacks beside it: whoever can write the gateway's certificate files (but holds no key of
//! the federation CA) drops in another department's certificate and key, or a certificate for
//! this department from another CA of the same name. Neither is ever presented: the gateway keeps
//! its certificate in force and says why on `/readyz` and `/metrics`.
//!
//! Every gateway here reads its files again every second (`crl_reload_secs = 1`, with no CRL
//! configured: the certificate is watched without one), except in the SIGHUP test, where only
//! the signal can bring the renewal in. Nothing waits a fixed time: each test polls for what must
//! happen, up to [`DEADLINE`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use causeway::identity::tls::{serial, TlsMaterial};
use causeway::identity::{pki, DeptId, PeerIdentity};
use causeway::transport::{paths, Transport, HTTPS_ALPN, QUIC_ALPN};
use causeway_tests::{exchange, get_text, raw_quic_connect, rewrite, Federation};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// How long anything here may take: many reload intervals of one second.
const DEADLINE: Duration = Duration::from_secs(30);

/// The department whose certificate is renewed: it both asks (of the civil registry) and is
/// asked (by social welfare).
const RENEWED: &str = "tax-office";

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

/// Start the demo federation with every gateway reading its files again every second, and no
/// CRL.
async fn federation() -> Federation {
    federation_reloading_every(1).await
}

/// Start the demo federation with every gateway reading its files again every `secs` seconds.
async fn federation_reloading_every(secs: u64) -> Federation {
    let mut fed = Federation::create_with(Transport::Https).unwrap();
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
            &format!("[identity]\ncrl_reload_secs = {secs}\n"),
        );
    }
    for id in ids {
        fed.start_dept(&id).await.unwrap();
    }
    fed
}

/// TLS material holding `dept`'s current certificate and key, as a peer of the federation.
fn held_by(fed: &Federation, dept: &str) -> TlsMaterial {
    TlsMaterial::load(
        &certs(fed).join("ca.pem"),
        None,
        &certs(fed).join(format!("{dept}.pem")),
        &certs(fed).join(format!("{dept}.key")),
    )
    .unwrap()
}

/// The certificate `dept`'s gateway presents in its files now.
fn on_disk(fed: &Federation, dept: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(certs(fed).join(format!("{dept}.pem"))).unwrap()
}

/// The renewal, as a department and its operator do it: a new key and request made in a
/// directory of their own (the signing keys `certs request` also makes there are not used: the
/// directory keeps listing the ones in force), the request signed by the federation CA. The new
/// certificate and key files.
fn renew(fed: &Federation, out: &std::path::Path, dept: &str) -> (PathBuf, PathBuf) {
    let who = PeerIdentity::Dept(DeptId::new(dept).unwrap());
    let requested = pki::request(
        &certs(fed).join(pki::CA_CERT),
        out,
        &who,
        &["localhost".into(), "127.0.0.1".into()],
    )
    .unwrap();
    let cert = pki::sign(&certs(fed), &requested.csr, &who, out).unwrap();
    (cert, requested.key)
}

/// Write a certificate and key over `dept`'s `[identity]` files, the key first.
fn install(fed: &Federation, dept: &str, cert: &std::path::Path, key: &std::path::Path) {
    std::fs::copy(key, certs(fed).join(format!("{dept}.key"))).unwrap();
    std::fs::copy(cert, certs(fed).join(format!("{dept}.pem"))).unwrap();
}

/// A new TLS connection to a peer port: the certificate the gateway presented, and the
/// connection.
async fn connect_https(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> (
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    (presented, stream)
}

/// The serial number of the certificate a new connection to `dept`'s HTTPS peer port is shown.
async fn served_over_https(fed: &Federation, dept: &str, peer: &TlsMaterial) -> String {
    let addr = fed.gateway(dept).peer_addr;
    let (presented, _) = connect_https(addr, peer.client_config(HTTPS_ALPN).unwrap()).await;
    serial(&presented).unwrap()
}

/// The serial number of the certificate a new connection to `dept`'s QUIC peer port is shown.
async fn served_over_quic(fed: &Federation, dept: &str, peer: &TlsMaterial) -> String {
    let addr = fed.gateway(dept).quic_addr.unwrap();
    let conn = raw_quic_connect(addr, peer.quic_client_config(QUIC_ALPN).unwrap())
        .await
        .unwrap();
    let chain = conn
        .peer_identity()
        .unwrap()
        .downcast::<Vec<CertificateDer<'static>>>()
        .unwrap();
    conn.close(0u32.into(), b"");
    serial(&chain[0]).unwrap()
}

/// An HTTP/2 connection over `stream`, held open by a task.
async fn h2_over(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// GET the peer's checkpoint on an open HTTP/2 connection: its status.
async fn checkpoint_over(sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>) -> u16 {
    let request = http::Request::get(format!("https://127.0.0.1{}", paths::CHECKPOINT))
        .body(Full::new(Bytes::new()))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("an answer within 5 s")
        .expect("an answer")
        .status()
        .as_u16()
}

/// The readiness body of `dept`'s gateway and whether it said ready.
async fn readiness(fed: &Federation, dept: &str) -> (bool, Value) {
    let admin = fed.gateway(dept).admin_addr.unwrap();
    let (status, body) = get_text(admin, "/readyz").await.unwrap();
    (status == 200, serde_json::from_str(&body).unwrap())
}

/// The value of the sample `name` (with its labels) on `dept`'s `/metrics`.
async fn metric(fed: &Federation, dept: &str, sample: &str) -> Option<f64> {
    let admin = fed.gateway(dept).admin_addr.unwrap();
    let (_, text) = get_text(admin, "/metrics").await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_renewed_certificate_is_presented_to_new_connections_without_a_restart() {
    let mut fed = federation().await;
    let welfare = held_by(&fed, "social-welfare");
    let old = serial(&on_disk(&fed, RENEWED)).unwrap();
    assert_eq!(served_over_https(&fed, RENEWED, &welfare).await, old);
    assert_eq!(served_over_quic(&fed, RENEWED, &welfare).await, old);
    assert_eq!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    assert_eq!(exchange(&fed, "social-welfare", "tax-office").await, 200);
    // A connection opened before the renewal.
    let (presented, stream) = connect_https(
        fed.gateway(RENEWED).peer_addr,
        welfare.client_config(HTTPS_ALPN).unwrap(),
    )
    .await;
    assert_eq!(serial(&presented).unwrap(), old);
    let mut open = h2_over(stream).await;
    assert_eq!(checkpoint_over(&mut open).await, 200);

    // The department renews; nobody restarts anything.
    let renewal = tempfile::tempdir().unwrap();
    let (cert, key) = renew(&fed, renewal.path(), RENEWED);
    let new = serial(&CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
    assert_ne!(new, old);
    install(&fed, RENEWED, &cert, &key);

    let (f, welfare_ref, new_ref) = (&fed, &welfare, new.as_str());
    eventually(
        "new HTTPS connections are shown the renewed certificate",
        || async move { served_over_https(f, RENEWED, welfare_ref).await == new_ref },
    )
    .await;
    assert_eq!(served_over_quic(&fed, RENEWED, &welfare).await, new);
    // The connection opened before keeps going (with the certificate it was made with).
    assert_eq!(checkpoint_over(&mut open).await, 200);
    // A new connection, shown the new certificate, is served.
    let (presented, stream) = connect_https(
        fed.gateway(RENEWED).peer_addr,
        welfare.client_config(HTTPS_ALPN).unwrap(),
    )
    .await;
    assert_eq!(serial(&presented).unwrap(), new);
    assert_eq!(checkpoint_over(&mut h2_over(stream).await).await, 200);
    // Exchanges go on both ways.
    assert_eq!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    assert_eq!(exchange(&fed, "social-welfare", "tax-office").await, 200);

    let (ready, body) = readiness(&fed, RENEWED).await;
    assert!(ready, "{body}");
    assert_eq!(body["certificate"]["serial"], new.as_str(), "{body}");
    assert!(body["certificate"]["rotations"] == 1, "{body}");
    assert_eq!(
        metric(
            &fed,
            RENEWED,
            "causeway_certificate_rotations_total{result=\"applied\"}"
        )
        .await,
        Some(1.0)
    );
    fed.stop().await;
}

#[tokio::test]
async fn a_certificate_for_another_department_or_from_another_ca_is_never_presented() {
    let mut fed = federation().await;
    let welfare = held_by(&fed, "social-welfare");
    let old = serial(&on_disk(&fed, RENEWED)).unwrap();
    let f = &fed;

    // Whoever can write the tax office's certificate files drops in the civil registry's pair:
    // the tax office's gateway would then pass as the civil registry in every handshake.
    let civil = certs(&fed);
    install(
        &fed,
        RENEWED,
        &civil.join("civil-registry.pem"),
        &civil.join("civil-registry.key"),
    );
    eventually(
        "the other department's certificate is refused",
        || async move {
            let (_, body) = readiness(f, RENEWED).await;
            body["certificate"]["last_refusal"]
                .as_str()
                .is_some_and(|e| e.contains("is for causeway://demo/dept/civil-registry"))
        },
    )
    .await;
    let (ready, body) = readiness(&fed, RENEWED).await;
    assert!(
        !ready,
        "a refused renewal makes the gateway not ready: {body}"
    );
    assert!(
        body["certificate"]["last_refusal"]
            .as_str()
            .unwrap()
            .contains("tax-office.pem"),
        "names the file: {body}"
    );
    assert_eq!(body["certificate"]["serial"], old.as_str(), "{body}");
    assert_eq!(served_over_https(&fed, RENEWED, &welfare).await, old);
    assert_eq!(served_over_quic(&fed, RENEWED, &welfare).await, old);
    assert_eq!(exchange(&fed, "social-welfare", "tax-office").await, 200);
    assert_eq!(exchange(&fed, "tax-office", "civil-registry").await, 200);

    // A certificate for the tax office itself, from another CA named like the federation's.
    let other = tempfile::tempdir().unwrap();
    pki::init_federation("demo", other.path()).unwrap();
    let who = PeerIdentity::Dept(DeptId::new(RENEWED).unwrap());
    let forged = pki::issue(
        other.path(),
        other.path(),
        &who,
        &["localhost".into(), "127.0.0.1".into()],
    )
    .unwrap();
    install(&fed, RENEWED, &forged.cert, &forged.key);
    eventually("the other CA's certificate is refused", || async move {
        let (_, body) = readiness(f, RENEWED).await;
        body["certificate"]["last_refusal"]
            .as_str()
            .is_some_and(|e| e.contains("does not chain to the federation's CA bundle"))
    })
    .await;
    assert_eq!(served_over_https(&fed, RENEWED, &welfare).await, old);
    assert_eq!(exchange(&fed, "social-welfare", "tax-office").await, 200);
    let refused = metric(
        &fed,
        RENEWED,
        "causeway_certificate_rotations_total{result=\"refused\"}",
    )
    .await;
    assert!(refused.is_some_and(|n| n >= 2.0), "{refused:?}");

    // The real renewal: presented, and the gateway ready again.
    let renewal = tempfile::tempdir().unwrap();
    let (cert, key) = renew(&fed, renewal.path(), RENEWED);
    let new = serial(&CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
    install(&fed, RENEWED, &cert, &key);
    let new_ref = new.as_str();
    eventually("the renewal is put in force", || async move {
        let (ready, body) = readiness(f, RENEWED).await;
        ready && body["certificate"]["serial"] == new_ref
    })
    .await;
    assert_eq!(served_over_https(&fed, RENEWED, &welfare).await, new);
    fed.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_puts_a_renewal_in_force_at_once() {
    // Files read again only hourly: only the signal can bring the renewal in before the deadline.
    let mut fed = federation_reloading_every(3600).await;
    // This process (the tests and their gateways) handles SIGHUP from here on, whether or not the
    // gateways' listeners are registered yet: the signal never ends the test process.
    let _handled = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let welfare = held_by(&fed, "social-welfare");
    let old = serial(&on_disk(&fed, RENEWED)).unwrap();
    // Served once before the files change: the gateway's file watch has taken its first look
    // (it looks once as it starts) while the files were still the old ones.
    assert_eq!(served_over_https(&fed, RENEWED, &welfare).await, old);
    let renewal = tempfile::tempdir().unwrap();
    let (cert, key) = renew(&fed, renewal.path(), RENEWED);
    let new = serial(&CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
    install(&fed, RENEWED, &cert, &key);
    assert_eq!(
        served_over_https(&fed, RENEWED, &welfare).await,
        old,
        "not before the signal"
    );
    let (f, welfare_ref, new_ref) = (&fed, &welfare, new.as_str());
    eventually("a SIGHUP puts the renewal in force", || async move {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        served_over_https(f, RENEWED, welfare_ref).await == new_ref
    })
    .await;
    assert_eq!(exchange(&fed, "social-welfare", "tax-office").await, 200);
    fed.stop().await;
}
