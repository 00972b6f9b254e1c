//! A federation that changes without restarts (docs/OPERATIONS.md, "Running a federation"):
//! real `causeway serve` processes for three departments and an oversight node, and the operator's
//! and departments' commands run as a person would run them. A fourth department enrolls and
//! exchanges within the reload interval; another renews its certificate and rotates its signing
//! key; a department is removed from the directory (its open
//! connections are closed) and revoked (the CRL travels with the directory); a rolled-back, a tampered and an expired directory are
//! refused while the last good one stays in force. No process restarts. Afterwards every log
//! verifies against the directory, every gateway recorded each directory version it applied, and
//! the oversight node verified every log, the new department's included.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use causeway::layout::{self, DeptPorts, DEMO_DEPARTMENTS, DEMO_OVERSIGHT};
use serde_json::{json, Value};
use support::{raise_officer_budget, serve, wait_ready, CaseDesk};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long anything here may take: many reload intervals (directories every 2 s, CRLs every 1 s).
const DEADLINE: Duration = Duration::from_secs(40);

/// The new department.
const STATS: &str = "statistics-office";

/// Run `causeway args`; it must succeed. Its stdout.
fn causeway(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the causeway binary runs");
    assert!(
        out.status.success(),
        "causeway {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The entries `causeway log show --output json` printed: one JSON array.
fn entries(shown: &str) -> Vec<Value> {
    serde_json::from_str(shown).expect("log show --output json prints one JSON array")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The gateway processes; killed when the test ends, however it ends.
#[derive(Default)]
struct Processes(Vec<Child>);

impl Processes {
    fn start(&mut self, config: &Path) -> usize {
        self.0.push(serve(config));
        self.0.len() - 1
    }

    /// SIGHUP: read the files again now.
    fn hangup(&self, which: usize) {
        let status = Command::new("kill")
            .args(["-HUP", &self.0[which].id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM each and wait: they drain and close their ledgers.
    fn stop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Wait until `check` holds, up to [`DEADLINE`]; fail naming `what` otherwise.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: still not so after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `path` over plain HTTP/1.1 (the admin listener, the oversight dashboard): status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, &format!("GET {path} HTTP/1.1\r\n"), "").await;
    (status, body)
}

/// GET `path` from the oversight dashboard, signed in with the session `cookie`.
async fn staff_get(addr: SocketAddr, cookie: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http(
        addr,
        &format!("GET {path} HTTP/1.1\r\ncookie: {cookie}\r\n"),
        "",
    )
    .await;
    (status, body)
}

/// The password of the oversight node's one staff account (`viewer`).
const STAFF_PASSWORD: &str = "lifecycle viewer passphrase";

/// Sign in to the oversight dashboard as `viewer`: the `causeway_session=...` cookie.
async fn sign_in(addr: SocketAddr) -> String {
    let body = json!({"name": "viewer", "password": STAFF_PASSWORD}).to_string();
    let (status, head, answer) = http(
        addr,
        &format!(
            "POST /api/login HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().split(';').next())
        .find(|c| c.starts_with("causeway_session="))
        .expect("a session cookie")
        .to_owned()
}

/// One HTTP/1.1 exchange: `start` is the request line and any headers (each ending in CRLF).
async fn http(addr: SocketAddr, start: &str, body: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{start}host: {addr}\r\nconnection: close\r\n\r\n{body}").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let (head, body) = (head.to_owned(), body.to_owned());
    (status, head.clone(), dechunk(&head, &body))
}

fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    // Chunked: hex size line, chunk, CRLF; until the empty chunk.
    let (mut rest, mut out) = (body, String::new());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

async fn readyz(admin: SocketAddr) -> (u16, Value) {
    let (status, body) = get(admin, "/readyz").await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A metric's value on an admin listener (0 if absent).
async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let (_, text) = get(admin, "/metrics").await;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Ask the civil registry for one resident, as `consumer`'s case desk; the status.
async fn ask(layout: &layout::Layout, consumer: &str, purpose: &str) -> u16 {
    let body = json!({"provider": "civil-registry", "dataset": "residents",
        "params": {"national_id": "D000001"}, "purpose": purpose,
        "legal_basis": "statistics-act:s3"});
    match CaseDesk::of(layout, consumer).post(&body).await {
        Ok((status, _)) => status,
        Err(_) => 0,
    }
}

/// The civil registry's grant for the statistics office (written before anyone starts).
const STATS_GRANT: &str = r#"[[grant]]
id = "statistics-residents"
consumer = "statistics-office"
dataset = "residents"
purposes = ["benefit-eligibility"]
fields = ["name"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federation_changes_its_members_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let mut layout = layout::create(dir, "demo", DEMO_DEPARTMENTS).unwrap();
    layout::generate_demo_data(&layout, 20).unwrap();
    raise_officer_budget(&layout);
    let certs = dir.join("certs");
    let source = layout.directory_source();
    let published = layout.directory.clone();
    // The operator signs and publishes the source: the new serial.
    let publish = |extra: &[&str]| -> u64 {
        let mut args = vec!["federation", "publish", "--directory", s(&source)];
        args.extend(["--ca", s(&certs), "--out", s(&published)]);
        args.extend(extra);
        causeway(&args).trim().parse().unwrap()
    };
    causeway(&["certs", "crl", "--ca", s(&certs)]);
    std::fs::write(
        dir.join("civil-registry/policies/statistics.toml"),
        STATS_GRANT,
    )
    .unwrap();
    let oversight = layout::create_oversight(&layout, DEMO_OVERSIGHT).unwrap();
    layout::write_staff(
        &oversight.config,
        &[(
            "viewer",
            &[causeway::oversight::staff::Role::Viewer],
            STAFF_PASSWORD,
        )],
    )
    .unwrap();
    let mut running = Processes::default();
    let mut process = std::collections::HashMap::new();
    for dept in &layout.departments {
        process.insert(dept.id.to_string(), running.start(&dept.config));
    }
    running.start(&oversight.config);
    for dept in &layout.departments {
        wait_ready(dept.admin).await;
    }
    wait_ready(oversight.dashboard).await;
    let registry = layout.dept("civil-registry").unwrap().admin;
    assert_eq!(
        ask(&layout, "social-welfare", "benefit-eligibility").await,
        200
    );
    let (_, ready) = readyz(registry).await;
    let first = ready["directory"]["serial"].as_u64().unwrap();
    assert_eq!(ready["directory"]["signed"], true, "{ready}");

    // 1. A fourth department enrolls: its keys never leave it; the operator signs its request,
    //    lists it and publishes. Nobody restarts.
    causeway(&[
        "certs",
        "request",
        "--dept",
        STATS,
        "--ca",
        s(&certs.join("ca.pem")),
        "--out",
        s(&certs),
    ]);
    let csr = certs.join(format!("{STATS}.csr.pem"));
    causeway(&[
        "certs",
        "sign",
        "--ca",
        s(&certs),
        "--csr",
        s(&csr),
        "--dept",
        STATS,
        "--out",
        s(&certs),
    ]);
    let ports = DeptPorts::free().unwrap();
    causeway(&[
        "federation",
        "add",
        "--directory",
        s(&source),
        "--id",
        STATS,
        "--name",
        "Statistics Office",
        "--https",
        &format!("https://{}", ports.peer),
        "--keys",
        s(&certs.join(format!("{STATS}.pub.toml"))),
    ]);
    let before_stats = std::fs::read(&published).unwrap();
    let serial = publish(&[]);
    assert_eq!(serial, first + 1);
    let stats = layout::add_department(&layout, STATS, "Statistics Office", ports).unwrap();
    running.start(&stats.config);
    wait_ready(stats.admin).await;
    layout.departments.push(stats.clone());
    eventually(
        "the new department exchanges with the civil registry",
        || {
            let layout = layout.clone();
            async move { ask(&layout, STATS, "benefit-eligibility").await == 200 }
        },
    )
    .await;

    // A department renews its certificate with a new key, which never leaves it; the operator
    //    signs; the files are renamed into place and the gateway told (SIGHUP). It presents the
    //    new certificate from the next handshake on, and exchanges continue.
    let welfare = layout.dept("social-welfare").unwrap().clone();
    let serial_before = readyz(welfare.admin).await.1["certificate"]["serial"].clone();
    let renewal = dir.join("renewal");
    causeway(&[
        "certs",
        "request",
        "--dept",
        "social-welfare",
        "--ca",
        s(&certs.join("ca.pem")),
        "--out",
        s(&renewal),
    ]);
    causeway(&[
        "certs",
        "sign",
        "--ca",
        s(&certs),
        "--csr",
        s(&renewal.join("social-welfare.csr.pem")),
        "--dept",
        "social-welfare",
        "--out",
        s(&renewal),
    ]);
    std::fs::rename(
        renewal.join("social-welfare.key"),
        certs.join("social-welfare.key"),
    )
    .unwrap();
    std::fs::rename(
        renewal.join("social-welfare.pem"),
        certs.join("social-welfare.pem"),
    )
    .unwrap();
    running.hangup(process["social-welfare"]);
    eventually("the renewed certificate is in force", || {
        let serial_before = serial_before.clone();
        async move {
            let (status, ready) = readyz(welfare.admin).await;
            status == 200 && ready["certificate"]["serial"] != serial_before
        }
    })
    .await;
    assert_eq!(
        ask(&layout, "social-welfare", "benefit-eligibility").await,
        200
    );

    // The same department rotates its signing key: the gateway takes the new key file over
    //    (SIGHUP), its log hands itself over in a key-rotation entry signed by the old key, and
    //    the operator lists the new key with the old one retired. Evidence made before the
    //    rotation keeps verifying.
    let welfare_ledger = welfare.dir.join("ledger");
    let evidence_before = dir.join("before-rotation.tlog-proof");
    std::fs::write(
        &evidence_before,
        causeway(&[
            "log",
            "proof",
            "--ledger",
            s(&welfare_ledger),
            "--index",
            "1",
        ]),
    )
    .unwrap();
    let old_vkey = std::fs::read_to_string(welfare_ledger.join("log.vkey")).unwrap();
    let new_key = dir.join("new-signing-key");
    causeway(&[
        "certs",
        "request",
        "--dept",
        "social-welfare",
        "--ca",
        s(&certs.join("ca.pem")),
        "--out",
        s(&new_key),
    ]);
    std::fs::rename(
        new_key.join("social-welfare.signing.key"),
        certs.join("social-welfare.signing.key"),
    )
    .unwrap();
    running.hangup(process["social-welfare"]);
    let vkey_file = welfare_ledger.join("log.vkey");
    eventually("the log is handed over to the new key", || {
        let (vkey_file, old_vkey) = (vkey_file.clone(), old_vkey.clone());
        async move { std::fs::read_to_string(&vkey_file).unwrap() != old_vkey }
    })
    .await;
    let new_vkey = std::fs::read_to_string(&vkey_file).unwrap();
    let rotation = entries(&causeway(&[
        "log",
        "show",
        "--ledger",
        s(&welfare_ledger),
        "--output",
        "json",
    ]))
    .into_iter()
    .find(|e| e["kind"] == "key-rotation")
    .expect("a key-rotation entry");
    let until_size = (rotation["index"].as_u64().unwrap() + 1).to_string();
    causeway(&[
        "federation",
        "rotate-key",
        "--directory",
        s(&source),
        "--id",
        "social-welfare",
        "--vkey",
        new_vkey.trim(),
        "--until-size",
        &until_size,
    ]);
    publish(&[]);
    eventually("exchanges go on under the new key", || {
        let layout = layout.clone();
        async move { ask(&layout, "social-welfare", "benefit-eligibility").await == 200 }
    })
    .await;

    // 2. The tax office leaves: removed from the directory, its open connection to the civil
    //    registry is closed; then revoked, it cannot even handshake.
    assert_eq!(ask(&layout, "tax-office", "tax-assessment").await, 200);
    let before_removal = std::fs::read(&published).unwrap();
    let closed_before = metric(registry, "causeway_crl_connections_closed_total").await;
    causeway(&[
        "federation",
        "remove",
        "--directory",
        s(&source),
        "--id",
        "tax-office",
    ]);
    publish(&[]);
    eventually(
        "the removed department's open connection is closed",
        || async move {
            metric(registry, "causeway_crl_connections_closed_total").await > closed_before
        },
    )
    .await;
    eventually("the removed department is refused", || {
        let layout = layout.clone();
        async move { ask(&layout, "tax-office", "tax-assessment").await != 200 }
    })
    .await;
    causeway(&[
        "certs",
        "revoke",
        "--ca",
        s(&certs),
        "--cert",
        s(&certs.join("tax-office.pem")),
        "--reason",
        "cessationOfOperation",
    ]);
    // The CRL travels with the directory: publishing is all it takes.
    publish(&[]);
    eventually(
        "the CRL revoking the tax office is in force",
        || async move { readyz(registry).await.1["revocation"]["revoked"] == 1 },
    )
    .await;
    assert_ne!(ask(&layout, "tax-office", "tax-assessment").await, 200);
    let (_, ready) = readyz(registry).await;
    let good = ready["directory"]["serial"].as_u64().unwrap();
    assert_eq!(good, first + 4, "{ready}");

    // 3. Bad directories are refused by name; the last good one stays in force and serves.
    let good_bytes = std::fs::read(&published).unwrap();
    let refused = |what: &'static str, bytes: Vec<u8>| {
        let published = published.clone();
        let layout = layout.clone();
        async move {
            std::fs::write(&published, bytes).unwrap();
            eventually(what, || async move {
                let (status, ready) = readyz(registry).await;
                let refusal = ready["directory"]["last_refusal"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                status == 503 && refusal.contains(what)
            })
            .await;
            let (_, ready) = readyz(registry).await;
            assert_eq!(ready["directory"]["serial"], good, "{ready}");
            assert_eq!(ask(&layout, STATS, "benefit-eligibility").await, 200);
            assert_ne!(ask(&layout, "tax-office", "tax-assessment").await, 200);
        }
    };
    // A rolled-back one: the file before the statistics office joined (validly signed).
    refused("older than the one in force", before_stats).await;
    // A tampered one: the removed department put back by hand.
    let tampered = String::from_utf8(good_bytes.clone())
        .unwrap()
        .replace("serial = ", "serial = 9");
    refused(
        "not signed by the federation operator",
        tampered.into_bytes(),
    )
    .await;
    // An expired one, validly signed with a higher serial.
    publish(&["--valid-days", "0"]);
    let expired = std::fs::read(&published).unwrap();
    refused("expired", expired).await;
    assert!(metric(registry, "causeway_directory_refusals_total").await >= 3.0);
    // The operator publishes a good one again: everyone is ready.
    let last = publish(&[]);
    eventually("a good directory is in force again", || async move {
        let (status, ready) = readyz(registry).await;
        status == 200 && ready["directory"]["serial"] == last
    })
    .await;

    // The oversight node verified every log, the new department's included.
    let dashboard = oversight.dashboard;
    let cookie = sign_in(dashboard).await;
    let session = cookie.as_str();
    eventually("the oversight node verified every log", || async move {
        let (status, body) = staff_get(dashboard, session, "/api/status").await;
        let Ok(statuses) = serde_json::from_str::<Value>(&body) else {
            return false;
        };
        let logs = statuses["logs"].as_array().cloned().unwrap_or_default();
        if std::env::var_os("CAUSEWAY_TEST_LOGS").is_some() {
            eprintln!("{status} {body}");
        }
        status == 200
            && logs.iter().any(|l| l["department"] == STATS)
            && logs
                .iter()
                .all(|l| l["state"]["size"].as_u64() > Some(0) && l["state"]["flag"].is_null())
    })
    .await;
    // The oversight node is operable like a gateway: ready, and its metrics show each pull.
    let oversight_admin = oversight.admin.unwrap();
    eventually(
        "the oversight node applied the last directory and is ready",
        || async move {
            let (status, ready) = readyz(oversight_admin).await;
            status == 200 && ready["directory"]["serial"] == last
        },
    )
    .await;
    let pulled = metric(
        oversight_admin,
        "causeway_oversight_replicated_entries{department=\"statistics-office\"}",
    )
    .await;
    assert!(pulled > 0.0, "the new department's log is pulled: {pulled}");
    assert!(metric(oversight_admin, "causeway_directory_serial").await >= last as f64);
    let (status, membership) = staff_get(dashboard, &cookie, "/api/membership").await;
    assert_eq!(status, 200, "{membership}");
    let (status, page) = staff_get(dashboard, &cookie, "/").await;
    assert!(status == 200 && page.contains("Membership history") && page.contains(STATS));
    running.stop();

    // Every log verifies against the directory (the tax office's against the last one that
    // listed it); each recorded the versions it applied.
    let listing_tax = dir.join("federation.before-removal.toml");
    std::fs::write(&listing_tax, &before_removal).unwrap();
    for dept in &layout.departments {
        let ledger = dept.dir.join("ledger");
        let directory = if dept.id.as_str() == "tax-office" {
            &listing_tax
        } else {
            &published
        };
        causeway(&[
            "log",
            "verify",
            "--ledger",
            s(&ledger),
            "--directory",
            s(directory),
        ]);
        let shown = causeway(&["log", "show", "--ledger", s(&ledger), "--output", "json"]);
        let serials: Vec<u64> = entries(&shown)
            .into_iter()
            .filter(|e| e["kind"] == "directory-change")
            .filter_map(|e| e["detail"]["serial"].as_u64())
            .collect();
        assert!(
            !serials.is_empty(),
            "{}: no directory-change entry",
            dept.id
        );
        assert!(
            serials.windows(2).all(|w| w[0] < w[1]),
            "{}: {serials:?}",
            dept.id
        );
        if dept.id.as_str() == "civil-registry" {
            assert_eq!(
                serials,
                vec![first, first + 1, first + 2, first + 3, first + 4, last],
                "only good versions are recorded"
            );
        }
    }
    // The oversight node shows the membership history it notarized, newest first, and its own
    // log verifies too.
    let history: Vec<Value> = serde_json::from_str::<Value>(&membership).unwrap()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["departments"].clone())
        .collect();
    assert!(
        history
            .iter()
            .any(|d| d.as_array().is_some_and(|d| d.iter().any(|x| x == STATS))),
        "the oversight node shows the membership history: {history:?}"
    );
    assert!(
        history
            .first()
            .and_then(Value::as_array)
            .is_some_and(|d| !d.iter().any(|x| x == "tax-office")),
        "{history:?}"
    );
    // Evidence files from before and after the key rotation verify offline against the directory.
    let welfare_size = entries(&causeway(&[
        "log",
        "show",
        "--ledger",
        s(&welfare_ledger),
        "--output",
        "json",
    ]))
    .len();
    let evidence_after = dir.join("after-rotation.tlog-proof");
    std::fs::write(
        &evidence_after,
        causeway(&[
            "log",
            "proof",
            "--ledger",
            s(&welfare_ledger),
            "--index",
            &(welfare_size - 1).to_string(),
        ]),
    )
    .unwrap();
    for evidence in [&evidence_before, &evidence_after] {
        causeway(&[
            "log",
            "verify-proof",
            s(evidence),
            "--directory",
            s(&published),
        ]);
    }
    let ledger: PathBuf = oversight.dir.join("ledger");
    causeway(&["log", "verify", "--ledger", s(&ledger)]);
}
