//! Log signing-key rotation without a restart (docs/OPERATIONS.md, "Rotating a signing key"): a
//! department writes a new signing key over its `[identity] signing_key` file; its running
//! gateway appends a `key-rotation` entry signed by the old key and signs every later checkpoint
//! (and envelope) with the new one; the operator lists the new key, the old one retired at the
//! rotation's size (`causeway federation rotate-key`), and publishes the directory. Exchanges go
//! on once peers have it, and the whole history verifies, offline, with the directory alone: the
//! log, and evidence files made before and after the rotation.
//!
//! The attacks beside it are unit tests: a forged key-rotation entry and a revoked key's
//! checkpoints (`causeway-ledger`: `a_forged_key_rotation_does_not_verify`,
//! `a_checkpoint_under_a_revoked_key_is_refused_beyond_revoked_from`), another log's key written
//! over the key file (`causeway`: `gateway::key_rotation`).
//!
//! Every gateway here reads its files again every second. Nothing waits a fixed time: each test
//! polls for what must happen, up to [`DEADLINE`].

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use causeway::directory::source;
use causeway::gateway::Gateway;
use causeway::identity::{write_secret, DeptId, GatewayKey};
use causeway::log_api::paths;
use causeway::transport::Transport;
use causeway_ledger::checkpoint::{open_checkpoint, sign_checkpoint, Checkpoint};
use causeway_ledger::entry::Kind;
use causeway_ledger::merkle::MemoryTree;
use causeway_ledger::tlog_proof::{verify_tlog_proof, verify_tlog_proof_under, TlogProof};
use causeway_ledger::witness::AddCheckpointRequest;
use causeway_tests::{exchange, rewrite, start_oversight, verify_ledger, Federation};
use ed25519_dalek::SigningKey;

/// How long anything here may take: many reload intervals of one second.
const DEADLINE: Duration = Duration::from_secs(30);

/// The department whose key rotates: it both asks (of the civil registry) and is asked (by
/// social welfare).
const ROTATED: &str = "tax-office";

/// Wait until `check` holds, up to [`DEADLINE`]; fail naming `what` otherwise.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    causeway_tests::eventually(what, DEADLINE, check).await
}

/// The demo federation, every gateway reading its files again every second.
async fn federation() -> Federation {
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
            "[identity]\ncrl_reload_secs = 1\n",
        );
    }
    for id in ids {
        fed.start_dept(&id).await.unwrap();
    }
    fed
}

fn signing_key_file(fed: &Federation, dept: &str) -> PathBuf {
    fed.root
        .path()
        .join("certs")
        .join(format!("{dept}.signing.key"))
}

/// How far the oversight node has replicated `dept`'s log, if a pull of every log now verifies
/// (each department's checkpoint under the key its directory names for the checkpoint's size).
async fn pulled(oversight: &Gateway, dept: &str) -> Option<u64> {
    let node = oversight.oversight().expect("an oversight node");
    let reports = node.pull_all(std::sync::Arc::new(|_: &str, _, _| {})).await;
    let mut size = None;
    for (d, report) in reports {
        match report {
            Ok(r) if r.flag.is_none() => size = if d == dept { Some(r.to) } else { size },
            Ok(r) => panic!("{d} flagged: {:?}", r.flag),
            Err(e) => {
                eprintln!("pulling {d}: {e}");
                return None;
            }
        }
    }
    size
}

/// The evidence file for entry `index` of `dept`'s log, written to `dir`.
fn evidence(fed: &Federation, dept: &str, index: u64, dir: &std::path::Path) -> PathBuf {
    let proof = fed.gateway(dept).ledger().evidence(index).unwrap();
    let path = dir.join(format!("{dept}-{index}.tlog-proof"));
    std::fs::write(&path, proof.to_text()).unwrap();
    path
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).unwrap();
    seed
}

/// Run the `causeway` command line (on a thread of its own: it starts its own runtime).
fn cli(args: &[&str]) -> ExitCode {
    let args: Vec<String> = std::iter::once("causeway")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    std::thread::spawn(move || causeway::cli::run_args(args))
        .join()
        .expect("the command line does not panic")
}

#[tokio::test]
async fn a_department_rotates_its_log_key_while_running_and_its_whole_history_verifies() {
    let mut fed = federation().await;
    let files = tempfile::tempdir().unwrap();
    let (oversight, _) = start_oversight(&fed).await.unwrap();
    assert_eq!(exchange(&fed, "social-welfare", ROTATED).await, 200);
    assert_eq!(exchange(&fed, ROTATED, "civil-registry").await, 200);
    // The oversight node holds the log as the old key signed it.
    eventually("the oversight node pulls every log", || async {
        pulled(&oversight, ROTATED).await.is_some()
    })
    .await;
    let ledger = fed.gateway(ROTATED).ledger().clone();
    let old = ledger.verifier();
    let before_index = ledger.checkpoint().0 - 1;
    let before = evidence(&fed, ROTATED, before_index, files.path());

    // The department writes its new key over the file.
    let key_file = signing_key_file(&fed, ROTATED);
    let new = GatewayKey::new(old.name(), SigningKey::from_bytes(&random_seed())).unwrap();
    write_secret(&key_file, new.to_file_contents().as_bytes()).unwrap();
    eventually("the gateway rotates to the new key", || {
        let ledger = ledger.clone();
        let new = new.vkey();
        async move { ledger.verifier().to_vkey() == new }
    })
    .await;
    let rotation = ledger
        .last_of_kind(Kind::KeyRotation)
        .unwrap()
        .expect("a key-rotation entry");
    let until_size = rotation.index + 1;
    assert_eq!(
        std::fs::read_to_string(fed.ledger_dir(ROTATED).join(causeway_ledger::VKEY_FILE))
            .unwrap()
            .trim(),
        new.vkey()
    );

    // Until the directory lists the new key, the civil registry refuses the envelopes it signs.
    assert_ne!(exchange(&fed, ROTATED, "civil-registry").await, 200);

    // The operator lists the new key, retiring the old one at the rotation's size, and publishes.
    let source_path = fed.layout.directory_source().to_string_lossy().into_owned();
    let new_vkey =
        std::fs::read_to_string(fed.ledger_dir(ROTATED).join(causeway_ledger::VKEY_FILE)).unwrap();
    let until = until_size.to_string();
    assert_eq!(
        cli(&[
            "federation",
            "rotate-key",
            "--directory",
            &source_path,
            "--id",
            ROTATED,
            "--vkey",
            new_vkey.trim(),
            "--until-size",
            &until,
        ]),
        ExitCode::SUCCESS
    );
    fed.layout.publish_directory().unwrap();

    // Exchanges go on, both ways, once the peers have it.
    eventually("the peers accept the new key", || async {
        exchange(&fed, ROTATED, "civil-registry").await == 200
            && exchange(&fed, "social-welfare", ROTATED).await == 200
    })
    .await;
    let after_index = ledger.checkpoint().0 - 1;
    let (_, head) = ledger.checkpoint();
    open_checkpoint(&head, &new.note_signer().verifier()).unwrap();
    let after = evidence(&fed, ROTATED, after_index, files.path());
    // Witnesses cosign the new key's checkpoints once they have the directory.
    eventually("witnesses cosign under the new key", || {
        let ledger = ledger.clone();
        async move {
            ledger
                .cosigned_checkpoint()
                .is_some_and(|(size, _)| size > until_size)
        }
    })
    .await;
    // The oversight node's next pull proves the new key's checkpoint consistent with the old
    // key's it held, and replicates past the rotation.
    eventually("the oversight node pulls past the rotation", || async {
        pulled(&oversight, ROTATED)
            .await
            .is_some_and(|size| size > until_size)
    })
    .await;
    oversight.shutdown().await;
    // The gateway restarts with its new key and the published directory.
    fed.stop_dept(ROTATED).await;
    fed.start_dept(ROTATED).await.unwrap();
    assert_eq!(exchange(&fed, "social-welfare", ROTATED).await, 200);
    fed.stop().await;

    // The whole history verifies with the directory alone, for every department.
    let directory = fed.directory();
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        verify_ledger(&fed.ledger_dir(dept), &directory).unwrap_or_else(|e| panic!("{dept}: {e}"));
    }
    let directory_file = fed.layout.directory.to_string_lossy().into_owned();
    let ledger_dir = fed.ledger_dir(ROTATED).to_string_lossy().into_owned();
    for args in [
        vec![
            "log",
            "verify",
            "--ledger",
            &ledger_dir,
            "--directory",
            &directory_file,
        ],
        vec!["log", "verify", "--ledger", &ledger_dir],
    ] {
        assert_eq!(cli(&args), ExitCode::SUCCESS, "{args:?}");
    }
    // Evidence made before the rotation (a checkpoint of the old key) and after it both verify
    // offline, each under the key valid for its checkpoint.
    let tax = directory
        .department(&DeptId::new(ROTATED).unwrap())
        .unwrap()
        .clone();
    for (file, signed_by_old) in [(&before, true), (&after, false)] {
        let proof = TlogProof::parse(&std::fs::read_to_string(file).unwrap()).unwrap();
        verify_tlog_proof_under(&proof, &tax.keys, &directory.witnesses())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Only the key of its size verifies it.
        assert_eq!(
            verify_tlog_proof(&proof, &new.note_signer().verifier(), &[]).is_err(),
            signed_by_old
        );
        let file = file.to_string_lossy().into_owned();
        assert_eq!(
            cli(&["log", "verify-proof", &file, "--directory", &directory_file]),
            ExitCode::SUCCESS
        );
    }
}

/// A compromised key (docs/OPERATIONS.md, "A compromised signing key"): the operator retires the
/// civil registry's leaked key, revoked from size 5 though it signed up to size 10. Whoever holds
/// the leaked key (here: its file) gets no witness to cosign a checkpoint of size 5 or more under
/// it, nor one past its last size; checkpoints it signed before the leak are still cosigned.
#[tokio::test]
async fn witnesses_refuse_checkpoints_under_a_revoked_key() {
    let mut fed = Federation::create().unwrap();
    let leaked = fed.signing_key("civil-registry");
    let replacement = GatewayKey::new(
        "demo/civil-registry",
        SigningKey::from_bytes(&random_seed()),
    )
    .unwrap();
    let source_path = fed.layout.directory_source();
    let text = source::rotate_key(
        &std::fs::read_to_string(&source_path).unwrap(),
        &source::KeyRotation {
            id: DeptId::new("civil-registry").unwrap(),
            instance: None,
            new_vkey: replacement.vkey(),
            until_size: 10,
            until_time: "2026-12-06T12:00:00Z".into(),
            revoked_from: Some(5),
        },
    )
    .unwrap();
    std::fs::write(&source_path, text).unwrap();
    fed.layout.publish_directory().unwrap();
    fed.start_dept("social-welfare").await.unwrap();

    let signed = |size: u64, key: &GatewayKey| {
        let mut tree = MemoryTree::new();
        for i in 0..size {
            tree.append_entry(format!("entry {i}").as_bytes());
        }
        let cp = Checkpoint {
            origin: "demo/civil-registry".into(),
            size,
            root: tree.root(),
            extensions: vec![],
        };
        sign_checkpoint(&cp, key.note_signer()).unwrap()
    };
    let witness = fed
        .directory()
        .department(&DeptId::new("social-welfare").unwrap())
        .unwrap()
        .clone();
    // The attacker holds the civil registry's files: its certificate too.
    let client = fed.peer_client_as("civil-registry").unwrap();
    let post = |note: String| {
        let body = AddCheckpointRequest {
            old_size: 0,
            proof: vec![],
            checkpoint: note,
        }
        .to_body();
        http::Request::post(format!("https://social-welfare{}", paths::ADD_CHECKPOINT))
            .body(Bytes::from(body))
            .unwrap()
    };
    for (size, key, why) in [
        (7, &leaked, "revoked"),
        (5, &leaked, "revoked"),
        (12, &leaked, "not signed by"),
    ] {
        let (status, answer) = client
            .send(&witness, post(signed(size, key)), Duration::from_secs(5))
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, 403, "size {size}: {answer}");
        assert!(answer.contains(why), "size {size}: {answer}");
    }
    // Before the leak, the old key's checkpoints are still the log's.
    let (status, answer) = client
        .send(&witness, post(signed(4, &leaked)), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    fed.stop().await;
}
