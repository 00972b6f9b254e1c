//! The http adapter against an in-test upstream on an ephemeral port: a raw HTTP/1.1 server whose
//! answers are chosen by path, so that every failure (non-2xx, malformed JSON, oversized or slow
//! body) can be produced on purpose.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_adapters::{Catalog, FetchError, Limits};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const GENEROUS: Limits = Limits {
    max_rows: 1_000_000,
    timeout: Duration::from_secs(10),
};

/// Request heads the upstream has seen, in order.
type Seen = Arc<Mutex<Vec<String>>>;

struct Upstream {
    port: u16,
    seen: Seen,
    connections: Arc<Mutex<usize>>,
}

async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Seen = Arc::default();
    let connections: Arc<Mutex<usize>> = Arc::default();
    let (s, c) = (Arc::clone(&seen), Arc::clone(&connections));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            *c.lock().expect("lock") += 1;
            tokio::spawn(serve(stream, Arc::clone(&s)));
        }
    });
    Upstream {
        port,
        seen,
        connections,
    }
}

/// Answer requests on one keep-alive connection.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, seen: Seen) {
    let mut buf = Vec::new();
    loop {
        let head = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        seen.lock().expect("lock").push(head.clone());
        let target = head.split(' ').nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or("/").to_owned();
        let respond = |status: &str, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let reply = if path.starts_with("/people/") {
            let id = path.trim_start_matches("/people/");
            respond(
                "200 OK",
                &json!({"data": {"items": [
                    {"id": id, "name": {"given": "Zoë", "family": "O'Brien \"Bob\""}, "born": "1980-02-29",
                     "children": 2, "income": 1234.5, "verified": true, "note": null}
                ]}})
                .to_string(),
            )
        } else if path.starts_with("/one/") {
            respond(
                "200 OK",
                &json!({"data": {"items": {"id": "x", "name": {"given": "Solo"}}}}).to_string(),
            )
        } else if let Some(code) = path.strip_prefix("/status/") {
            respond(
                &format!("{code} Whatever"),
                "{\"error\": \"internal detail: db01.internal:5432\"}",
            )
        } else if path.starts_with("/malformed/") {
            respond("200 OK", "{\"data\": {\"items\": [")
        } else if path.starts_with("/big/") {
            respond(
                "200 OK",
                &format!(
                    "{{\"data\": {{\"items\": [], \"pad\": \"{}\"}}}}",
                    "x".repeat(5000)
                ),
            )
        } else if path.starts_with("/many/") {
            let items: Vec<Value> = (0..200).map(|i| json!({"id": i.to_string()})).collect();
            respond("200 OK", &json!({"data": {"items": items}}).to_string())
        } else if path.starts_with("/wrongtype/") {
            respond(
                "200 OK",
                &json!({"data": {"items": [{"id": "x", "children": "two"}]}}).to_string(),
            )
        } else if path.starts_with("/slow/") {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"data\": ")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        } else {
            respond("404 Not Found", "{}")
        };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn datasets(up: &Upstream, dir: &tempfile::TempDir, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[[dataset]]
name = "people"
adapter = "http"
url = "http://127.0.0.1:{port}/{{kind}}/{{id}}?v=1"
rows = "/data/items"
subject = "id"
max_rows = 100
timeout_ms = 1000
max_body_bytes = 4096
{extra}
[[dataset.param]]
name = "kind"
type = "enum"
values = ["people", "one", "status", "malformed", "big", "many", "wrongtype", "slow", "missing"]
[[dataset.param]]
name = "id"
type = "string"

[[dataset.field]]
name = "id"
type = "string"
classification = "personal"
[[dataset.field]]
name = "given_name"
path = "/name/given"
type = "string"
classification = "personal"
[[dataset.field]]
name = "children"
type = "integer"
classification = "personal"
[[dataset.field]]
name = "verified"
type = "boolean"
classification = "internal"
[[dataset.field]]
name = "born"
type = "date"
classification = "personal"
"#,
        port = up.port
    );
    let path = dir.path().join("datasets.toml");
    std::fs::write(&path, text).expect("write");
    path
}

async fn catalog(up: &Upstream, dir: &tempfile::TempDir, extra: &str) -> Catalog {
    match Catalog::open(&datasets(up, dir, extra)).await {
        Ok(c) => c,
        Err(e) => panic!("catalog should open: {e}"),
    }
}

fn params(kind: &str, id: &str) -> BTreeMap<String, Value> {
    [
        ("kind".to_owned(), json!(kind)),
        ("id".to_owned(), json!(id)),
    ]
    .into()
}

#[tokio::test]
async fn rows_are_mapped_from_json_pointers_and_parameters_are_percent_encoded() {
    let up = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = catalog(&up, &dir, "").await;
    let rows = catalog
        .fetch("people", &params("people", "D000001"), GENEROUS)
        .await
        .expect("fetch");
    assert_eq!(
        rows.fields,
        vec!["id", "given_name", "children", "verified", "born"]
    );
    assert_eq!(
        rows.rows,
        vec![vec![
            json!("D000001"),
            json!("Zoë"),
            json!(2),
            json!(true),
            json!("1980-02-29")
        ]]
    );
    let rows = catalog
        .fetch(
            "people",
            &params("people", "a/b?c=d&e#f %é' OR 1=1 --"),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert_eq!(rows.rows.len(), 1);
    let head = up
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        head.starts_with(
            "GET /people/a%2Fb%3Fc%3Dd%26e%23f%20%25%C3%A9%27%20OR%201%3D1%20--?v=1 HTTP/1.1\r\n"
        ),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("host: 127.0.0.1:{}", up.port)),
        "{head}"
    );
    // One object instead of an array is one row; missing fields are null.
    let rows = catalog
        .fetch("people", &params("one", "x"), GENEROUS)
        .await
        .expect("fetch");
    assert_eq!(
        rows.rows,
        vec![vec![
            json!("x"),
            json!("Solo"),
            json!(null),
            json!(null),
            json!(null)
        ]]
    );
    assert_eq!(
        *up.connections.lock().expect("lock"),
        1,
        "keep-alive connection reused"
    );
}

#[tokio::test]
async fn upstream_failures_map_to_codes_without_leaking_detail() {
    let up = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = catalog(&up, &dir, "").await;
    let cases = [
        (params("status", "500"), "unavailable"),
        (params("status", "503"), "unavailable"),
        (params("status", "401"), "unavailable"),
        (params("status", "400"), "query-failed"),
        (params("malformed", "x"), "query-failed"),
        (params("big", "x"), "query-failed"),
        (params("wrongtype", "x"), "query-failed"),
        (params("many", "x"), "too-many-rows"),
    ];
    for (p, code) in cases {
        let err = catalog
            .fetch("people", &p, GENEROUS)
            .await
            .expect_err("failure");
        assert_eq!(err.code(), code, "{p:?}: {err}");
        let shown = err.to_string();
        assert!(
            !shown.contains("db01") && !shown.contains("127.0.0.1"),
            "{shown}"
        );
    }
    let rows = catalog
        .fetch("people", &params("missing", "x"), GENEROUS)
        .await
        .expect("404 is no data, not a failure");
    assert!(rows.rows.is_empty());
    // After all that, the dataset still answers.
    let rows = catalog
        .fetch("people", &params("people", "D1"), GENEROUS)
        .await
        .expect("fetch");
    assert_eq!(rows.rows.len(), 1);
}

#[tokio::test]
async fn a_slow_body_hits_the_deadline() {
    let up = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = catalog(&up, &dir, "").await;
    let started = Instant::now();
    let err = catalog
        .fetch("people", &params("slow", "x"), GENEROUS)
        .await
        .expect_err("slow");
    assert_eq!(
        err,
        FetchError::Timeout {
            after: Duration::from_millis(1000)
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let rows = catalog
        .fetch("people", &params("people", "D1"), GENEROUS)
        .await
        .expect("next request works");
    assert_eq!(rows.rows.len(), 1);
}

#[tokio::test]
async fn bearer_tokens_come_from_the_environment_or_a_file() {
    let up = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "s3cr3t-from-file\n").expect("write");
    let catalog = catalog(&up, &dir, "bearer_token_file = \"token\"").await;
    catalog
        .fetch("people", &params("people", "D1"), GENEROUS)
        .await
        .expect("fetch");
    let head = up
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        head.lines()
            .any(|l| l == "authorization: Bearer s3cr3t-from-file"),
        "{head}"
    );

    let var = format!("CAUSEWAY_TEST_HTTP_TOKEN_{}", std::process::id());
    let e = Catalog::open(&datasets(
        &up,
        &dir,
        &format!("bearer_token_env = \"{var}\""),
    ))
    .await
    .expect_err("unset variable")
    .to_string();
    assert!(
        e.contains(&format!(":11:20: environment variable {var} is not set")),
        "{e}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_unavailable() {
    let up = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let text = std::fs::read_to_string(datasets(&up, &dir, "")).expect("read");
    std::fs::write(
        dir.path().join("datasets.toml"),
        text.replace(&up.port.to_string(), &port.to_string()),
    )
    .expect("write");
    let catalog = Catalog::open(&dir.path().join("datasets.toml"))
        .await
        .expect("opens: not ready is not an error");
    assert_eq!(
        catalog.check("people", Duration::from_secs(2)).await,
        Err(FetchError::Unavailable)
    );
    let err = catalog
        .fetch("people", &params("people", "D1"), GENEROUS)
        .await
        .expect_err("down");
    assert_eq!(err, FetchError::Unavailable);
}

#[tokio::test]
async fn url_templates_are_checked_at_open() {
    let up = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(datasets(&up, &dir, "")).expect("read");
    let file = dir.path().join("datasets.toml").display().to_string();
    for (from, to, want) in [
        ("/{kind}/{id}?v=1", "/{kind}/{idd}?v=1", format!("{file}:5:7: the url uses {{idd}} but no parameter \"idd\" is declared (did you mean \"id\"?)")),
        ("http://127.0.0.1", "http://{kind}", format!("{file}:5:7: placeholders may not appear in the url's host or port")),
        ("http://127.0.0.1", "https://127.0.0.1", format!("{file}:5:7: an https url needs `ca_file`")),
        ("rows = \"/data/items\"", "rows = \"data\"", format!("{file}:6:8: rows must be a JSON pointer")),
        ("max_body_bytes = 4096", "query = \"SELECT 1\"", format!("{file}:10:9: `query` does not apply to the http adapter")),
    ] {
        assert!(text.contains(from), "{from}");
        std::fs::write(dir.path().join("datasets.toml"), text.replace(from, to)).expect("write");
        let e = Catalog::open(&dir.path().join("datasets.toml")).await.expect_err("bad url").to_string();
        assert!(e.starts_with(&want), "got:  {e}\nwant: {want}...");
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written as PEM files.
struct Pki {
    server: rustls::ServerConfig,
}

fn pki(dir: &std::path::Path, require_client_cert: bool) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issue = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("sign");
        (cert, key)
    };
    let (server_cert, server_key) = issue("127.0.0.1");
    let (client_cert, client_key) = issue("gateway.civil-registry");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("client.pem"), client_cert.pem()).expect("write");
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("write");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let builder = rustls::ServerConfig::builder_with_provider(std::sync::Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = if require_client_cert {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .expect("verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let server = builder
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
                .expect("key der"),
        )
        .expect("server config");
    Pki { server }
}

async fn tls_upstream(config: rustls::ServerConfig) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Seen = Arc::default();
    let connections: Arc<Mutex<usize>> = Arc::default();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (s, c) = (Arc::clone(&seen), Arc::clone(&connections));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            *c.lock().expect("lock") += 1;
            let (acceptor, seen) = (acceptor.clone(), Arc::clone(&s));
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls, seen).await;
                }
            });
        }
    });
    Upstream {
        port,
        seen,
        connections,
    }
}

#[tokio::test]
async fn https_with_a_private_ca_and_mtls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = tls_upstream(pki(dir.path(), true).server).await;
    let with_identity =
        "ca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"";
    let text = std::fs::read_to_string(datasets(&up, &dir, with_identity))
        .expect("read")
        .replace("http://", "https://");
    let file = dir.path().join("datasets.toml");
    std::fs::write(&file, &text).expect("write");
    let catalog = Catalog::open(&file).await.unwrap_or_else(|e| panic!("{e}"));
    let rows = catalog
        .fetch("people", &params("people", "D1"), GENEROUS)
        .await
        .expect("fetch over mTLS");
    assert_eq!(rows.rows[0][1], json!("Zoë"));
    assert_eq!(up.seen.lock().expect("lock").len(), 1);

    // Without a client certificate the upstream refuses us: unavailable, and nothing was served.
    std::fs::write(
        &file,
        text.replace(
            "client_cert = \"client.pem\"\nclient_key = \"client.key\"",
            "",
        ),
    )
    .expect("write");
    let catalog = Catalog::open(&file).await.unwrap_or_else(|e| panic!("{e}"));
    let err = catalog
        .fetch("people", &params("people", "D1"), GENEROUS)
        .await
        .expect_err("no client cert");
    assert_eq!(err, FetchError::Unavailable);

    // A CA that did not sign the upstream's certificate: unavailable.
    let other = tempfile::tempdir().expect("tempdir");
    let _ = pki(other.path(), false);
    std::fs::copy(other.path().join("ca.pem"), dir.path().join("ca.pem")).expect("copy");
    std::fs::write(&file, &text).expect("write");
    let catalog = Catalog::open(&file).await.unwrap_or_else(|e| panic!("{e}"));
    let err = catalog
        .fetch("people", &params("people", "D1"), GENEROUS)
        .await
        .expect_err("wrong CA");
    assert_eq!(err, FetchError::Unavailable);
    assert_eq!(
        up.seen.lock().expect("lock").len(),
        1,
        "no request reached the upstream without trust"
    );
}
