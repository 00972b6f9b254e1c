//! `causeway doctor` against a laid-out federation whose gateways run as real processes: a healthy
//! node passes (peers' clocks read over the peer listener), and each part an operator can break
//! (a key file's mode, a foreign certificate, a tampered directory, a stopped database, a changed
//! ledger byte, a rolled-back directory, a CRL revoking the node) fails the check that names it. `causeway request`, run against the same gateways,
//! prints exactly one document on stdout and puts the status in the exit code.

mod support;

use std::path::Path;
use std::process::{Child, Command};

use causeway::layout::{self, DEMO_DEPARTMENTS};
use lmdb::{Transaction, WriteFlags};
use serde_json::Value;
use support::{causeway, causeway_with, serve, text, wait_ready};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `causeway doctor --config config --output json`: its exit code and its one JSON document.
fn doctor(config: &Path) -> (i32, Value) {
    let out = causeway(&["doctor", "--config", s(config), "--output", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed one JSON document ({e}): {}", text(&out)));
    (out.status.code().unwrap(), report)
}

/// The check named `name` in a doctor report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

/// The names of the checks that failed.
fn failed(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

/// Gateway processes, stopped however the test ends.
struct Running(Vec<Child>);

impl Running {
    /// SIGTERM the one at `at` and wait: it drains and closes its ledger.
    fn stop(&mut self, at: usize) {
        let mut child = self.0.remove(at);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Keep a copy of `path`; put it back with [`restore`].
fn keep(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn restore(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_node_and_fails_the_check_each_broken_part_names() {
    let root = tempfile::tempdir().unwrap();
    let layout = layout::create(root.path(), "demo", DEMO_DEPARTMENTS).unwrap();
    layout::generate_demo_data(&layout, 50).unwrap();
    let dept = |id: &str| layout.dept(id).unwrap().clone();
    let (registry, welfare, tax) = (
        dept("civil-registry"),
        dept("social-welfare"),
        dept("tax-office"),
    );
    let mut running = Running(vec![serve(&registry.config), serve(&welfare.config)]);
    wait_ready(registry.admin).await;
    wait_ready(welfare.admin).await;

    // `causeway request`: one JSON document on stdout, the status on stderr and in the exit code.
    let ask = |purpose: &str, output: &str| {
        causeway(&[
            "request",
            "--config",
            s(&welfare.config),
            "--provider",
            "civil-registry",
            "--dataset",
            "residents",
            "--param",
            "national_id=D000007",
            "--purpose",
            purpose,
            "--legal-basis",
            "social-welfare-act:s12",
            "--officer",
            "officer-17",
            "--output",
            output,
        ])
    };
    let allowed = ask("benefit-eligibility", "json");
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    let answer: Value = serde_json::from_slice(&allowed.stdout)
        .unwrap_or_else(|e| panic!("one JSON document on stdout ({e}): {}", text(&allowed)));
    assert!(
        answer["rows"].is_array() && answer["fields"].is_array(),
        "{answer:#}"
    );
    assert!(answer["commitment_salt"].is_string(), "{answer:#}");
    assert!(
        String::from_utf8_lossy(&allowed.stderr).contains("200"),
        "the status goes to stderr: {}",
        text(&allowed)
    );
    let table = ask("benefit-eligibility", "table");
    assert_eq!(table.status.code(), Some(0), "{}", text(&table));
    let shown = String::from_utf8_lossy(&table.stdout);
    assert!(
        shown.starts_with("name") && shown.contains("row(s); exchange"),
        "{shown}"
    );
    let denied = ask("marketing", "json");
    assert_eq!(
        denied.status.code(),
        Some(4),
        "a denied request exits 4: {}",
        text(&denied)
    );
    let refusal: Value = serde_json::from_slice(&denied.stdout)
        .unwrap_or_else(|e| panic!("one JSON document on stdout ({e}): {}", text(&denied)));
    assert!(refusal["error"]["code"].is_string(), "{refusal:#}");
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));

    // A healthy node, with the other two running: every check passes; its own ledger does not
    // exist yet (it never ran), which is a warning.
    let (code, report) = doctor(&tax.config);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert!(failed(&report).is_empty(), "{report:#}");
    for name in [
        "config",
        "file: TLS key",
        "file: signing key",
        "file: tag key",
        "certificate expiry",
        "certificate chain",
        "certificate identity",
        "signing key",
        "directory signature",
        "directory expiry",
        "directory listing",
        "database: income",
        "clock: civil-registry",
        "clock: social-welfare",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    assert_eq!(check(&report, "ledger")["status"], "warn", "{report:#}");
    // The same through CAUSEWAY_CONFIG, as a table.
    let table = causeway_with(&["doctor"], &[("CAUSEWAY_CONFIG", s(&tax.config))]);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table));
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("0 failed"),
        "{}",
        text(&table)
    );

    // A running node with a ledger: it verifies, and the stopped peer is only a warning.
    running.stop(1);
    let (code, report) = doctor(&welfare.config);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(check(&report, "ledger")["status"], "ok", "{report:#}");
    assert_eq!(check(&report, "directory serial")["status"], "ok");
    assert_eq!(check(&report, "clock: civil-registry")["status"], "ok");
    assert_eq!(check(&report, "clock: tax-office")["status"], "warn");

    let config = causeway::config::GatewayConfig::load(&welfare.config).unwrap();
    let broken = |what: &str, expected: &str, named: &str| {
        let (code, report) = doctor(&welfare.config);
        assert_eq!(code, 1, "{what}: doctor must fail: {report:#}");
        assert_eq!(report["ok"], false);
        assert_eq!(
            failed(&report),
            vec![expected.to_owned()],
            "{what}: {report:#}"
        );
        let found = check(&report, expected);
        assert!(
            found["detail"].as_str().unwrap().contains(named),
            "{what}: the detail names {named:?}: {found:#}"
        );
        assert!(
            found["fix"].is_string(),
            "{what}: says what to do: {found:#}"
        );
        found.clone()
    };

    // 1. A key readable by others.
    set_mode(&config.identity.signing_key, 0o644);
    let found = broken(
        "a signing key made 0644",
        "file: signing key",
        s(&config.identity.signing_key),
    );
    assert!(found["fix"].as_str().unwrap().contains("chmod 600"));
    set_mode(&config.identity.signing_key, 0o600);

    // 2. A certificate and key from another federation's CA.
    let other = root.path().join("other-ca");
    for args in [
        vec!["certs", "init", "--federation", "demo", "--out", s(&other)],
        vec![
            "certs",
            "issue",
            "--dept",
            "social-welfare",
            "--out",
            s(&other),
        ],
    ] {
        let out = causeway(&args);
        assert!(out.status.success(), "{}", text(&out));
    }
    let (cert, key) = (keep(&config.identity.cert), keep(&config.identity.key));
    std::fs::copy(other.join("social-welfare.pem"), &config.identity.cert).unwrap();
    std::fs::copy(other.join("social-welfare.key"), &config.identity.key).unwrap();
    set_mode(&config.identity.key, 0o600);
    broken(
        "a foreign certificate",
        "certificate chain",
        s(&config.identity.cert),
    );
    restore(&config.identity.cert, &cert);
    restore(&config.identity.key, &key);

    // 3. A directory changed after the operator signed it.
    let directory = keep(&layout.directory);
    let tampered =
        String::from_utf8(directory.clone())
            .unwrap()
            .replacen("Tax Office", "Tax 0ffice", 1);
    assert_ne!(tampered.as_bytes(), &directory[..]);
    std::fs::write(&layout.directory, tampered).unwrap();
    broken(
        "a tampered directory",
        "directory signature",
        "not signed by the federation operator",
    );
    restore(&layout.directory, &directory);

    // 4. A database that does not answer: the dataset points at a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let datasets = config.datasets.clone().unwrap();
    let kept = keep(&datasets);
    let moved = String::from_utf8(kept.clone()).unwrap().replace(
        "adapter = \"sqlite\"\ndatabase = \"social-welfare.sqlite\"",
        &format!("adapter = \"postgres\"\nhost = \"127.0.0.1\"\nport = {closed}\nuser = \"causeway\"\ndatabase = \"welfare\""),
    );
    assert!(moved.contains("postgres"), "{moved}");
    std::fs::write(&datasets, moved).unwrap();
    broken("a stopped database", "database: benefits", "postgres");
    restore(&datasets, &kept);

    // 5. One changed byte in the ledger.
    flip_entry_1(&config.ledger.dir);
    let found = broken("a changed ledger byte", "ledger", "FAILED at entry 1:");
    assert!(found["fix"].as_str().unwrap().contains("backup"));
    flip_entry_1(&config.ledger.dir);

    // 6. A rolled-back directory: the operator published a newer one, the node took it into force
    //    (its ledger recorded the serial), and then the older file was put back in its place.
    let older = keep(&layout.directory);
    let published = causeway(&[
        "federation",
        "publish",
        "--directory",
        s(&layout.directory_source()),
        "--ca",
        s(&layout.dir.join("certs")),
        "--out",
        s(&layout.directory),
        "--no-crl",
    ]);
    assert!(published.status.success(), "{}", text(&published));
    running.0.push(serve(&welfare.config));
    wait_ready(welfare.admin).await;
    running.stop(running.0.len() - 1);
    let newer = keep(&layout.directory);
    restore(&layout.directory, &older);
    broken(
        "a rolled-back directory",
        "directory serial",
        "a rolled-back directory",
    );
    restore(&layout.directory, &newer);

    // 7. The federation's CRL, once the config names it, revokes this node's own certificate.
    let certs = layout.dir.join("certs");
    let revoke = causeway(&[
        "certs",
        "revoke",
        "--ca",
        s(&certs),
        "--cert",
        s(&config.identity.cert),
    ]);
    assert!(revoke.status.success(), "{}", text(&revoke));
    let kept = keep(&welfare.config);
    let named = String::from_utf8(kept.clone()).unwrap().replacen(
        "[identity]\n",
        "[identity]\ncrl = \"../certs/crl.pem\"\n",
        1,
    );
    std::fs::write(&welfare.config, named).unwrap();
    broken(
        "a revoked certificate",
        "certificate revocation",
        "revokes this node's own certificate",
    );
    restore(&welfare.config, &kept);

    let (code, report) = doctor(&welfare.config);
    assert_eq!(code, 0, "everything put back: {report:#}");
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Swap the case of one letter inside entry 1's `"kind"` value (the JSON still parses), as an
/// attacker with the disk would; the same call swaps it back.
fn flip_entry_1(ledger: &Path) {
    let env = lmdb::Environment::new()
        .set_max_dbs(8)
        .open(ledger)
        .unwrap();
    let db = env.open_db(Some("entries")).unwrap();
    let mut txn = env.begin_rw_txn().unwrap();
    let mut bytes = txn.get(db, &1u64.to_be_bytes()).unwrap().to_vec();
    let at = bytes
        .windows(8)
        .position(|w| w == b"\"kind\":\"")
        .expect("an entry has a kind")
        + 8;
    bytes[at] ^= 0x20;
    txn.put(db, &1u64.to_be_bytes(), &bytes, WriteFlags::empty())
        .unwrap();
    txn.commit().unwrap();
}
