//! The OpenAPI 3.1 descriptions in docs/openapi/: an independent validator accepts each; each
//! listener serves its own at `GET /openapi.json`, byte for byte; and schemathesis, a
//! property-based API tester, finds that a running federation (a department's client API and its
//! admin endpoints, an oversight node's dashboard and query API) answers as they say.
//!
//! The validator and schemathesis come from PyPI (the install line is [`INSTALL`]); without them
//! these tests fail, saying how to install them, rather than pass without checking anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use causeway::identity::tls::TlsMaterial;
use causeway::layout::DEMO_APP;
use causeway_tests::{exchange, sign_in, staff_csrf, start_oversight, Federation, STAFF_PASSWORD};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

/// How CI installs the Python tools these tests run (.ci/run).
const INSTALL: &str =
    "python3 -m pip install --quiet 'schemathesis==4.32.5' 'openapi-spec-validator==0.9.0'";

/// Test cases per operation and phase.
const MAX_EXAMPLES: &str = "8";

/// The time budget of one schemathesis run, in seconds: it stops generating when it is spent, so
/// the four runs together stay well within two minutes on a busy machine.
const MAX_TIME_SECS: &str = "15";

/// How long one schemathesis run may take before the test gives up on it (generation stopped by
/// its own budget, plus the requests in flight and the report).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// Checks left out of `--checks all`, and why:
/// - `unsupported_method`: the listeners answer a method a path does not serve with `404
///   not-found` (and the admin paths answer any method), never `405` with an `Allow` header, as
///   the descriptions say. Their handlers answer a status and a body, no headers.
/// - `positive_data_acceptance`: whether a well-formed request is accepted depends on what no
///   static description holds: the provider's datasets and policies (a `POST /v1/requests` for
///   a dataset the provider does not have is well formed and refused), which staff accounts,
///   exchanges and log entries exist, the sign-in form's CSRF cookie. Every such refusal is
///   described, and checked by the other checks.
const EXCLUDED_CHECKS: &str = "unsupported_method,positive_data_acceptance";

/// The three descriptions, by listener.
const DOCUMENTS: [&str; 3] = ["client", "admin", "oversight"];

fn document(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/openapi")
        .join(format!("{name}.json"))
}

/// Run `command`; its output, or a failure that says how to install what is missing.
fn run(command: &mut Command, what: &str) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); install it: {INSTALL}"))
}

#[test]
fn every_description_is_valid_openapi_3_1() {
    for name in DOCUMENTS {
        let path = document(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["openapi"], "3.1.0", "{}", path.display());
        // An independent validator of the OpenAPI 3.1 schema and its JSON Schema 2020-12 parts.
        let out = run(
            Command::new("python3")
                .args(["-m", "openapi_spec_validator", "--schema", "3.1.0"])
                .arg(&path),
            "python3 -m openapi_spec_validator",
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !said.contains("No module named openapi_spec_validator"),
            "openapi-spec-validator is not installed; install it: {INSTALL}"
        );
        assert!(
            out.status.success() && said.contains("OK"),
            "{} is not a valid OpenAPI 3.1 description:\n{said}",
            path.display()
        );
        // Every operation says who may call it: the document's security, or its own.
        for (route, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(
                    op.get("security").is_some() || doc.get("security").is_some(),
                    "{name}: {method} {route} says nothing about authentication"
                );
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{name}: {method} {route} describes no response"
                );
            }
        }
    }
}

/// GET `path` at `addr` over HTTP/1.1 (mutual TLS with `tls`, else plain); status, content type
/// and body.
async fn get(
    addr: SocketAddr,
    path: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> (u16, String, Bytes) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = match tls {
        Some(config) => {
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(ServerName::IpAddress(addr.ip().into()), stream)
                .await
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        }
        None => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, body)
}

/// The mutual-TLS client config of `dept`'s demo application.
fn app_tls(fed: &Federation, dept: &str) -> Arc<rustls::ClientConfig> {
    let creds = fed.layout.app_credentials(dept, DEMO_APP);
    TlsMaterial::load(&creds.ca, None, &creds.cert, &creds.key)
        .unwrap()
        .application_client_config()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_serves_its_description_byte_for_byte() {
    let fed = Federation::start().await.unwrap();
    let (oversight, _layout) = start_oversight(&fed).await.unwrap();
    let dept = "social-welfare";
    let gateway = fed.gateway(dept);
    let listeners = [
        (
            "client",
            gateway.client_addr,
            Some(app_tls(&fed, dept)),
            "the client API",
        ),
        (
            "admin",
            gateway.admin_addr.unwrap(),
            None,
            "a gateway's admin",
        ),
        (
            "admin",
            oversight.admin_addr.unwrap(),
            None,
            "an oversight node's admin",
        ),
        (
            "oversight",
            oversight.client_addr,
            None,
            "the oversight dashboard (no sign-in)",
        ),
    ];
    for (name, addr, tls, listener) in listeners {
        let file = std::fs::read(document(name)).unwrap();
        let (status, content_type, body) = get(addr, "/openapi.json", tls).await;
        assert_eq!(
            status,
            200,
            "{listener}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(content_type, "application/json", "{listener}");
        assert!(
            body == file,
            "{listener} does not serve docs/openapi/{name}.json byte for byte (rebuild after editing it)"
        );
    }
    // The dashboard's gate still checks the host: a DNS-rebinding name gets nothing.
    let stream = tokio::net::TcpStream::connect(oversight.client_addr)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = sender
        .send_request(
            http::Request::get("/openapi.json")
                .header(http::header::HOST, "attacker.example")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 421);
    oversight.shutdown().await;
}

/// How to start schemathesis here: `st` or `schemathesis` on the PATH, else its CLI through the
/// `python3` that has the module.
fn schemathesis() -> Command {
    for program in ["st", "schemathesis"] {
        let found = Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Command::new(program);
        }
    }
    let module = Command::new("python3")
        .args(["-c", "import schemathesis.cli"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        module,
        "schemathesis is not installed (neither `st` nor `schemathesis` on the PATH, nor the Python module); install it: {INSTALL}"
    );
    let mut command = Command::new("python3");
    command.args([
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; schemathesis()",
    ]);
    command
}

/// Run schemathesis against `base` with description `name`, its configuration `config`
/// (schemathesis.toml: credentials for the description's security schemes) and `extra`
/// arguments, writing everything it writes under `scratch/run`; the failures it reports, if any.
async fn conformance(
    name: &str,
    run: &str,
    base: &str,
    config: &str,
    extra: Vec<String>,
    scratch: &Path,
) -> Option<String> {
    let dir = scratch.join(run);
    std::fs::create_dir_all(&dir).unwrap();
    let config_file = dir.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let mut command = schemathesis();
    command
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(document(name))
        .args(["--url", base])
        .args(["--checks", "all", "--exclude-checks", EXCLUDED_CHECKS])
        .args(["--max-examples", MAX_EXAMPLES, "--max-time", MAX_TIME_SECS])
        .args(["--workers", "1", "--request-timeout", "20"])
        .args(["--seed", "26"])
        .args(["--report", "junit", "--report-dir"])
        .arg(dir.join("report"))
        .args(extra)
        .stdin(Stdio::null());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let out = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!("schemathesis on the {name} API did not finish within {RUN_TIMEOUT:?}")
        })
        .unwrap_or_else(|e| panic!("cannot run schemathesis ({e}); install it: {INSTALL}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- schemathesis, {run} ---\n{said}");
    (!out.status.success()).then(|| format!("{run} ({base}):\n{said}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_federation_conforms_to_its_descriptions() {
    let scratch = tempfile::tempdir().unwrap();
    let fed = Federation::start().await.unwrap();
    // Exchanges to find: allowed ones in both directions the demo policies grant.
    for (consumer, provider) in [
        ("social-welfare", "civil-registry"),
        ("social-welfare", "tax-office"),
        ("tax-office", "civil-registry"),
    ] {
        assert_eq!(exchange(&fed, consumer, provider).await, 200);
    }
    let (oversight, _layout) = start_oversight(&fed).await.unwrap();
    oversight
        .oversight()
        .unwrap()
        .pull_all(Arc::new(|_: &str, _, _| {}))
        .await;

    let mut failures = Vec::new();

    // The client API, as the consumer's case-desk application (its certificate) acting for an
    // officer (a token from the department's identity provider). The token goes in a header of
    // every request: schemathesis applies a configured credential only when it can satisfy every
    // scheme of a security requirement, and it has no configuration for the certificate's
    // `mutualTLS` scheme (the certificate is given to its HTTP client instead).
    let dept = "social-welfare";
    let creds = fed.layout.app_credentials(dept, DEMO_APP);
    let token = fed.layout.officer_token(dept, "officer-1", &[]).unwrap();
    let client = fed.gateway(dept).client_addr;
    let path = |p: &Path| p.display().to_string();
    failures.extend(
        conformance(
            "client",
            "the client API",
            &format!("https://{client}"),
            "",
            vec![
                "--request-cert".into(),
                path(&creds.cert),
                "--request-cert-key".into(),
                path(&creds.key),
                "--tls-verify".into(),
                path(&creds.ca),
                "--header".into(),
                format!("Authorization: Bearer {token}"),
            ],
            scratch.path(),
        )
        .await,
    );

    // The admin endpoints of a department gateway (no authentication: loopback). The listener
    // takes 16 connections per address at once and closes any more as they open (docs/PROTOCOL.md,
    // "Limits"); schemathesis keeps the connections of its earlier phases open, so its requests
    // here ask for their connection to be closed after the answer.
    let admin = fed.gateway(dept).admin_addr.unwrap();
    failures.extend(
        conformance(
            "admin",
            "a gateway's admin endpoints",
            &format!("http://{admin}"),
            "",
            vec!["--header".into(), "Connection: close".into()],
            scratch.path(),
        )
        .await,
    );

    // The oversight node's dashboard and API, signed in as a member holding every role (every
    // route answers), then as a viewer (most refuse), its posts carrying the session's CSRF token.
    // Signing out would end the session the rest of the run uses: `POST /logout` is left out. A
    // page asked for without the session is answered with a redirect to the sign-in form (as
    // described), so `303` counts as a refusal there.
    let dashboard = oversight.client_addr;
    for account in ["admin", "viewer"] {
        let cookie = sign_in(dashboard, account, STAFF_PASSWORD).await.unwrap();
        let csrf = staff_csrf(dashboard, &cookie).await.unwrap();
        let session = cookie.strip_prefix("causeway_session=").unwrap();
        failures.extend(
        conformance(
            "oversight",
            &format!("the oversight dashboard, signed in as {account}"),
            &format!("http://{dashboard}"),
            &format!(
                "[auth.openapi.staffSession]\napi_key = \"{session}\"\n\n\
                 [parameters]\n\"body.csrf\" = \"{csrf}\"\n\n\
                 [checks.negative_data_rejection]\n\
                 expected-statuses = [303, 400, 401, 403, 404, 405, 406, 409, 415, 422, 428, 429, \"5xx\"]\n"
            ),
            vec![
                "--exclude-path".into(),
                "/logout".into(),
                "--max-redirects".into(),
                "0".into(),
            ],
            scratch.path(),
        )
        .await,
    );
    }

    oversight.shutdown().await;
    assert!(
        failures.is_empty(),
        "the running federation does not conform to its OpenAPI descriptions (docs/openapi/):\n\n{}",
        failures.join("\n\n")
    );
}
