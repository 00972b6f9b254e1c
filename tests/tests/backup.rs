//! Backup and restore of a live ledger (docs/OPERATIONS.md, "Back up and restore"): a provider
//! gateway serves concurrent exchanges while `causeway log backup` copies its ledger from another
//! process; the load goes on; then the ledger is restored into a fresh ledger directory, the
//! gateway starts on it, `causeway log verify` passes, and every exchange acknowledged before the
//! backup began is in the restored log at the index its receipt names.
//!
//! The command line runs in a separate process, as an operator runs it beside a gateway (LMDB
//! forbids one process to open an environment twice): this test binary runs itself again as
//! `causeway` ([`command_line`]), so the test needs nothing built beyond itself.

use std::path::Path;
use std::process::{Command, ExitCode, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use causeway::identity::DeptId;
use causeway::log_api::paths;
use causeway_ledger::witness::AddCheckpointRequest;
use causeway_tests::{eventually, exchange, ledger_entries, start_oversight, Federation};
use serde_json::{json, Value};

const PROVIDER: &str = "civil-registry";
/// Set in the child process: the `causeway` arguments (a JSON array) to run.
const CLI_ARGS: &str = "CAUSEWAY_TEST_CLI_ARGS";
/// Tasks asking concurrently.
const LOAD_TASKS: usize = 6;

/// Not a test of its own: the body of the child process [`causeway`] starts. Without
/// [`CLI_ARGS`] (a normal test run) it does nothing.
#[test]
fn command_line() {
    let Ok(args) = std::env::var(CLI_ARGS) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).expect("arguments as a JSON array");
    let code = causeway::cli::run_args(std::iter::once("causeway".to_owned()).chain(args));
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", ExitCode::SUCCESS),
        "the command failed"
    );
}

/// Run `causeway ARGS` as a separate process (this binary, as [`command_line`]).
fn causeway(args: &[&str]) -> Output {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "command_line", "--nocapture", "--test-threads=1"])
        .env(CLI_ARGS, serde_json::to_string(args).expect("arguments"))
        .output()
        .expect("the test binary runs again")
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An exchange the provider acknowledged: its id and the provider's log index from its receipt.
type Acknowledged = (String, u64);

/// Ask `PROVIDER` as `consumer` until told to stop, recording every acknowledged exchange.
fn load(
    fed: &Federation,
    consumer: &str,
    purpose: &'static str,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let client = fed.client(consumer).expect("client");
    tokio::spawn(async move {
        let body = json!({
            "provider": PROVIDER, "dataset": "residents", "params": {"national_id": "D000042"},
            "purpose": purpose, "legal_basis": "test-act:s1", "case": "",
        });
        let mut failures = 0;
        while !stop.load(Ordering::Relaxed) {
            match client.post_json(&body).await {
                Ok((200, answer)) => {
                    let id = answer["exchange"].as_str().expect("exchange id").to_owned();
                    let index = answer["receipt"]["index"].as_u64().expect("receipt index");
                    acknowledged.lock().unwrap().push((id, index));
                }
                other => {
                    eprintln!("an exchange failed under load: {other:?}");
                    failures += 1;
                }
            }
        }
        failures
    })
}

fn entry_at(entries: &[Value], index: u64) -> &Value {
    entries
        .iter()
        .find(|e| e["index"] == index)
        .unwrap_or_else(|| panic!("no entry {index} in the restored ledger"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_backed_up_under_load_restores_with_every_acknowledged_exchange() {
    let mut fed = Federation::start().await.expect("federation starts");
    let ledger = fed.ledger_dir(PROVIDER);
    let files = tempfile::tempdir().expect("tempdir");
    let backup = files.path().join("civil-registry-backup");

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..LOAD_TASKS)
        .map(|i| {
            let (consumer, purpose) = if i % 2 == 0 {
                ("tax-office", "tax-assessment")
            } else {
                ("social-welfare", "benefit-eligibility")
            };
            load(&fed, consumer, purpose, acknowledged.clone(), stop.clone())
        })
        .collect();
    let count = || acknowledged.lock().unwrap().len();
    eventually("exchanges under way", Duration::from_secs(60), || async {
        count() >= 30
    })
    .await;

    // Everything acknowledged so far must survive; the backup runs while the load goes on.
    let before: Vec<Acknowledged> = acknowledged.lock().unwrap().clone();
    let out = tokio::task::spawn_blocking({
        let (ledger, backup) = (ledger.clone(), backup.clone());
        move || {
            causeway(&[
                "log",
                "backup",
                "--ledger",
                ledger.to_str().expect("utf-8 path"),
                "--out",
                backup.to_str().expect("utf-8 path"),
            ])
        }
    })
    .await
    .expect("backup process");
    assert!(out.status.success(), "the backup failed: {}", said(&out));
    assert!(said(&out).contains("backup of"), "{}", said(&out));
    let after_backup = count();
    eventually(
        "exchanges after the backup",
        Duration::from_secs(60),
        || async { count() >= after_backup + 30 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        assert_eq!(
            task.await.expect("load task"),
            0,
            "every exchange under load succeeds"
        );
    }
    // The federation saw the log grow past the backup point: witnesses cosigned a larger tree,
    // and an oversight node pulled it.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(backup.join("causeway-backup.json")).expect("the manifest"),
    )
    .expect("the manifest is JSON");
    let backed_up = manifest["tree_size"].as_u64().expect("tree_size");
    let provider_ledger = fed.gateway(PROVIDER).ledger().clone();
    eventually(
        "witnesses cosign the whole log, past the backup point",
        Duration::from_secs(60),
        || async {
            let size = provider_ledger.checkpoint().0;
            size > backed_up
                && provider_ledger
                    .cosigned_checkpoint()
                    .is_some_and(|(cosigned, _)| cosigned == size)
        },
    )
    .await;
    drop(provider_ledger);
    let (oversight, _) = start_oversight(&fed).await.expect("oversight node starts");
    fed.stop().await;

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for file in std::fs::read_dir(&backup).unwrap() {
        let file = file.unwrap();
        assert_eq!(
            file.metadata().unwrap().permissions().mode() & 0o777,
            0o600,
            "{:?}",
            file.file_name()
        );
    }

    // A backup verifies as a ledger does (and stays restorable after).
    let out = causeway(&["log", "verify", "--ledger", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "log verify of the backup: {}",
        said(&out)
    );

    // Restore into the gateway's ledger directory, fresh: refused over the old ledger, which the
    // operator moves aside first.
    let config = fed.dept_dir(PROVIDER).join("causeway.toml");
    let restore = |ledger: &Path| {
        causeway(&[
            "log",
            "restore",
            "--from",
            backup.to_str().expect("utf-8 path"),
            "--ledger",
            ledger.to_str().expect("utf-8 path"),
        ])
    };
    let refused = restore(&ledger);
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("is not empty")
            && said(&refused).contains("move the ledger directory aside"),
        "{}",
        said(&refused)
    );
    let old = ledger.with_extension("old");
    std::fs::rename(&ledger, &old).expect("move the old ledger aside");
    let out = causeway(&[
        "log",
        "restore",
        "--from",
        backup.to_str().expect("utf-8 path"),
        "--config",
        config.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "the restore failed: {}", said(&out));
    let restored = ledger_entries(&ledger).expect("the restored ledger reads");
    let live = ledger_entries(&old).expect("the old ledger reads");
    assert!(
        restored.len() < live.len(),
        "the backup is a point in the past: {} then {} entries",
        restored.len(),
        live.len()
    );

    // A gateway starts on it and serves; the log verifies; nothing acknowledged before the
    // backup is missing.
    for dept in [PROVIDER, "tax-office", "social-welfare"] {
        fed.start_dept(dept)
            .await
            .expect("the gateways start, the provider restored");
    }
    assert_eq!(
        exchange(&fed, "tax-office", PROVIDER).await,
        200,
        "the restored gateway serves"
    );
    // Its witnesses cosigned a larger tree: they answer the restored log's checkpoint with the
    // size they hold (409), which it cannot prove it extends.
    let restored_size = fed.gateway(PROVIDER).ledger().checkpoint().0;
    let mut refusals = Vec::new();
    for witness in ["tax-office", "social-welfare"] {
        let dept = fed
            .directory()
            .department(&DeptId::new(witness).expect("id"))
            .expect("listed")
            .clone();
        let body = AddCheckpointRequest {
            old_size: 0,
            proof: vec![],
            checkpoint: fed.gateway(PROVIDER).ledger().checkpoint().1.to_string(),
        }
        .to_body();
        let request = http::Request::post(format!("https://{witness}{}", paths::ADD_CHECKPOINT))
            .body(Bytes::from(body))
            .expect("request");
        let (status, answer) = fed
            .peer_client_as(PROVIDER)
            .expect("client")
            .send(&dept, request, Duration::from_secs(5))
            .await
            .expect("the witness answers");
        refusals.push((status, String::from_utf8_lossy(&answer).trim().to_owned()));
    }
    assert!(
        refusals.iter().any(|(status, answer)| *status == 409
            && answer.parse::<u64>().is_ok_and(|held| held > restored_size)),
        "restored at {restored_size}: {refusals:?}"
    );
    // The oversight node sees the log go back in time: it flags it `shrunk`.
    let node = oversight.oversight().expect("an oversight node");
    let reports = node.pull_all(Arc::new(|_: &str, _, _| {})).await;
    let flag = reports
        .iter()
        .find(|(dept, _)| dept == PROVIDER)
        .and_then(|(_, report)| report.as_ref().ok())
        .and_then(|report| report.flag.clone())
        .unwrap_or_else(|| panic!("the restored log is not flagged: {reports:?}"));
    assert_eq!(flag.reason, "shrunk", "{flag:?}");
    oversight.shutdown().await;
    fed.stop().await;
    let out = causeway(&["log", "verify", "--ledger", ledger.to_str().unwrap()]);
    assert!(out.status.success(), "log verify: {}", said(&out));
    assert!(said(&out).contains(": ok: "), "{}", said(&out));
    let entries = ledger_entries(&ledger).expect("the restored ledger reads");
    assert!(before.len() >= 30);
    for (id, index) in &before {
        let entry = entry_at(&entries, *index);
        assert_eq!(entry["id"], json!(id), "entry {index}: {entry}");
        assert_eq!(entry["side"], "provider", "entry {index}: {entry}");
        assert_eq!(entry, entry_at(&live, *index), "entry {index} as it was");
    }
}
