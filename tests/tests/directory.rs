//! The signed directory fetched from an HTTPS URL (docs/OPERATIONS.md, "The federation
//! directory"): a gateway with `directory_url` takes newer versions from the operator's server,
//! over mutual TLS under the federation CA, and keeps each one it applies on disk. A server with a
//! certificate of another CA (an impostor on the network path) is never believed, even when it
//! serves a validly signed directory: the last good version stays.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use causeway::directory::signed::publish_file;
use causeway::directory::source::{self, Listing, Member};
use causeway::directory::Directory;
use causeway::identity::tls::TlsMaterial;
use causeway::identity::{pki, DeptId, PeerIdentity};
use causeway_tests::{eventually, get_text, rewrite, Federation};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// A minimal HTTPS file server: serves `file` on every GET, with the TLS configuration currently
/// in `tls` (the test swaps it for an impostor's).
async fn file_server(file: PathBuf, tls: Arc<Mutex<Arc<rustls::ServerConfig>>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.lock().unwrap().clone());
            let file = file.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    let body = std::fs::read(&file).unwrap_or_default();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A server identity issued by the CA in `ca_dir`, for 127.0.0.1.
fn server_tls(ca_dir: &Path, out: &Path) -> Arc<rustls::ServerConfig> {
    let issued = pki::issue(
        ca_dir,
        out,
        &PeerIdentity::Oversight(DeptId::new("directory-host").unwrap()),
        &["127.0.0.1".into()],
    )
    .unwrap();
    TlsMaterial::load(&ca_dir.join(pki::CA_CERT), None, &issued.cert, &issued.key)
        .unwrap()
        .server_config(&[b"http/1.1"])
        .unwrap()
}

async fn directory_status(admin: SocketAddr) -> Value {
    let (_, body) = get_text(admin, "/readyz").await.unwrap();
    serde_json::from_str::<Value>(&body).unwrap()["directory"].clone()
}

/// List one more oversight node in the source and publish to `out`: the new serial.
fn publish_with(fed: &Federation, id: &str, out: &Path) -> u64 {
    let source_path = fed.layout.directory_source();
    let text = std::fs::read_to_string(&source_path).unwrap();
    let listing = Listing {
        id: DeptId::new(id).unwrap(),
        name: id.into(),
        https: None,
        quic: None,
        // Any well-formed key will do: this listing only has to make a new version.
        vkey: causeway::fuzzing::TEST_VKEY.to_owned(),
        witness: None,
    };
    std::fs::write(
        &source_path,
        source::add(&text, Member::Oversight, &listing).unwrap(),
    )
    .unwrap();
    let certs = fed.root.path().join("certs");
    publish_file(
        &source_path,
        &certs.join(pki::DIRECTORY_KEY),
        None,
        out,
        time::Duration::days(30),
    )
    .unwrap()
}

#[tokio::test]
async fn a_directory_fetched_over_https_is_applied_and_an_impostor_server_is_not_believed() {
    let mut fed = Federation::create().unwrap();
    let certs = fed.root.path().join("certs");
    // The operator's server holds its own copy of the published directory.
    let served = fed.root.path().join("served.toml");
    std::fs::copy(&fed.layout.directory, &served).unwrap();
    let genuine = server_tls(&certs, &fed.root.path().join("server"));
    let tls = Arc::new(Mutex::new(genuine.clone()));
    let addr = file_server(served.clone(), tls.clone()).await;
    let registry = fed.layout.dept("civil-registry").unwrap().clone();
    rewrite(
        &registry.config,
        "directory_reload_secs = 2\n",
        &format!("directory_reload_secs = 1\ndirectory_url = \"https://{addr}/federation.toml\"\n"),
    );
    fed.start_dept("civil-registry").await.unwrap();
    let first = directory_status(registry.admin).await["serial"]
        .as_u64()
        .unwrap();

    // A newer version on the server only: the gateway fetches it, applies it, keeps it on disk.
    let second = publish_with(&fed, "dpa", &served);
    assert_eq!(second, first + 1);
    let admin = registry.admin;
    eventually(
        "the fetched directory is applied",
        DEADLINE,
        || async move { directory_status(admin).await["serial"] == second },
    )
    .await;
    let kept = Directory::load(&fed.layout.directory).unwrap();
    assert_eq!(
        kept.serial,
        Some(second),
        "the applied version is kept on disk"
    );
    assert!(kept.oversight_node(&DeptId::new("dpa").unwrap()).is_some());
    assert!(directory_status(registry.admin).await["source"]
        .as_str()
        .unwrap()
        .starts_with("https://"));

    // An impostor takes the server's place, with a certificate of another CA named `demo` too,
    // serving a validly signed, newer directory: the TLS handshake fails, nothing is applied.
    let other_ca = tempfile::tempdir().unwrap();
    pki::init_federation("demo", other_ca.path()).unwrap();
    *tls.lock().unwrap() = server_tls(other_ca.path(), other_ca.path());
    let third = publish_with(&fed, "ombudsman", &served);
    eventually("the impostor is refused", DEADLINE, || async move {
        let status = directory_status(admin).await;
        status["last_refusal"]
            .as_str()
            .unwrap_or("")
            .contains("TLS")
    })
    .await;
    let status = directory_status(registry.admin).await;
    assert_eq!(status["serial"], second, "{status}");
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(
        Directory::load(&fed.layout.directory).unwrap().serial,
        Some(second)
    );

    // The genuine server is back: the newer version is applied.
    *tls.lock().unwrap() = genuine;
    eventually(
        "the genuine server's directory is applied",
        DEADLINE,
        || async move { directory_status(admin).await["serial"] == third },
    )
    .await;
    fed.stop().await;
}

/// A TCP relay to `to` that counts the connections it carried.
async fn relay(to: SocketAddr) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let carried = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = carried.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, carried)
}

/// social-welfare asks the civil registry for one resident: the status.
async fn ask(fed: &Federation) -> u16 {
    let params = serde_json::json!({"national_id": "D000001"});
    fed.request(
        "social-welfare",
        "civil-registry",
        "residents",
        params,
        "benefit-eligibility",
    )
    .await
    .unwrap()
    .0
}

#[tokio::test]
async fn a_moved_endpoint_is_used_from_the_next_request_although_the_old_one_still_answers() {
    let mut fed = Federation::start().await.unwrap();
    // social-welfare holds a pooled connection to the civil registry's address.
    assert_eq!(ask(&fed).await, 200);
    let old = fed.layout.dept("civil-registry").unwrap().peer;
    // The civil registry moves behind a new address (a relay here); the old one still answers.
    let (new, carried) = relay(old).await;
    rewrite(
        &fed.layout.directory_source(),
        &format!("https://{old}\""),
        &format!("https://{new}\""),
    );
    fed.layout.publish_directory().unwrap();
    let admin = fed.layout.dept("social-welfare").unwrap().admin;
    let serial = Directory::load(&fed.layout.directory).unwrap().serial;
    eventually(
        "social-welfare applies the new directory",
        DEADLINE,
        || async move { directory_status(admin).await["serial"].as_u64() == serial },
    )
    .await;
    assert_eq!(ask(&fed).await, 200);
    assert!(
        carried.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the request went to the new endpoint, not over the pooled connection to the old one"
    );
    fed.stop().await;
}
