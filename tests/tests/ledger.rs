//! The access log across gateways: served proofs, witness cosignatures, offline evidence, forks.

use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway::identity::DeptId;
use causeway::log_api::paths;
use causeway_ledger::checkpoint::{open_checkpoint, sign_checkpoint, Checkpoint};
use causeway_ledger::merkle::{verify_consistency, verify_inclusion, Hash, MemoryTree};
use causeway_ledger::tlog_proof::{verify_tlog_proof, TlogProof};
use causeway_ledger::witness::AddCheckpointRequest;
use causeway_tests::{ledger_entries, Federation};
use serde_json::{json, Value};

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

async fn get(
    fed: &Federation,
    as_dept: &str,
    provider: &str,
    path_and_query: &str,
) -> (u16, Bytes) {
    let client = fed.peer_client_as(as_dept).unwrap();
    let dept = fed
        .directory()
        .department(&DeptId::new(provider).unwrap())
        .unwrap()
        .clone();
    let request = http::Request::get(format!("https://{provider}{path_and_query}"))
        .body(Bytes::new())
        .unwrap();
    client
        .send(&dept, request, Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test]
async fn witnesses_cosign_and_an_evidence_file_verifies_offline() {
    let mut fed = Federation::start().await.unwrap();
    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000005"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let index = answer["receipt"]["index"].as_u64().unwrap();

    // Both other departments cosign the civil registry's newest checkpoint within a few seconds.
    let ledger = fed.gateway("civil-registry").ledger().clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ledger.cosigned_checkpoint().map(|c| c.0) != Some(ledger.checkpoint().0) {
        assert!(
            Instant::now() < deadline,
            "no cosigned checkpoint within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, served) = get(&fed, "tax-office", "civil-registry", paths::CHECKPOINT).await;
    assert_eq!(status, 200);
    let served = String::from_utf8(served.to_vec()).unwrap();
    assert_eq!(served.matches("/witness ").count(), 2, "{served}");

    let directory = fed.directory();
    let log = directory
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap()
        .verifier
        .clone();
    let evidence = TlogProof::parse(&ledger.evidence(index).unwrap().to_text()).unwrap();
    let verified = verify_tlog_proof(&evidence, &log, &directory.witnesses()).unwrap();
    assert_eq!(verified.index, index);
    assert_eq!(verified.cosignatures.len(), 2);

    // Tampering with the entry inside the evidence breaks it.
    let mut forged = evidence.clone();
    let extra = forged.extra.as_mut().unwrap();
    let at = extra.windows(9).position(|w| w == b"residents").unwrap();
    extra[at] = b'R';
    assert!(verify_tlog_proof(&forged, &log, &directory.witnesses()).is_err());
    fed.stop().await;
}

#[tokio::test]
async fn served_inclusion_and_consistency_proofs_verify_against_signed_checkpoints() {
    let fed = Federation::start().await.unwrap();
    for n in 0..5 {
        let (status, _) = fed
            .request(
                "tax-office",
                "civil-registry",
                "residents",
                json!({"national_id": format!("D0000{n}1")}),
                "tax-assessment",
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let directory = fed.directory();
    let log = directory
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap()
        .verifier
        .clone();
    let (_, note) = get(&fed, "tax-office", "civil-registry", paths::CHECKPOINT).await;
    let checkpoint = open_checkpoint(std::str::from_utf8(&note).unwrap(), &log).unwrap();
    assert!(checkpoint.size >= 6);

    let (status, body) = get(
        &fed,
        "tax-office",
        "civil-registry",
        &format!("{}?index=2&size={}", paths::INCLUSION, checkpoint.size),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let leaf: Hash = hex::decode(v["leaf_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    verify_inclusion(
        &leaf,
        2,
        checkpoint.size,
        &hashes(&v["proof"]),
        &checkpoint.root,
    )
    .unwrap();

    let old = fed
        .gateway("civil-registry")
        .ledger()
        .read(|r| r.checkpoints())
        .unwrap()[1]
        .clone();
    let old_cp = open_checkpoint(&old.1, &log).unwrap();
    let (status, body) = get(
        &fed,
        "tax-office",
        "civil-registry",
        &format!(
            "{}?old={}&new={}",
            paths::CONSISTENCY,
            old_cp.size,
            checkpoint.size
        ),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    verify_consistency(
        old_cp.size,
        checkpoint.size,
        &old_cp.root,
        &checkpoint.root,
        &hashes(&v["proof"]),
    )
    .unwrap();

    let (status, _) = get(
        &fed,
        "tax-office",
        "civil-registry",
        &format!(
            "{}?index=2&size={}",
            paths::INCLUSION,
            checkpoint.size + 100
        ),
    )
    .await;
    assert_eq!(
        status, 400,
        "proofs for sizes the log does not have are refused"
    );
    let (status, _) = get(
        &fed,
        "tax-office",
        "civil-registry",
        &format!("{}?start=0&end=5", paths::ENTRIES),
    )
    .await;
    assert_eq!(status, 403, "a peer certificate cannot read full entries");
}

#[tokio::test]
async fn a_log_that_signs_two_trees_of_one_size_is_caught_by_a_witness() {
    // Only the witness runs: the civil registry's key is used below to equivocate by hand.
    let mut fed = Federation::create().unwrap();
    fed.start_dept("social-welfare").await.unwrap();
    let key = fed.signing_key("civil-registry");
    let signed = |leaves: &[&[u8]]| {
        let mut tree = MemoryTree::new();
        for leaf in leaves {
            tree.append_entry(leaf);
        }
        let cp = Checkpoint {
            origin: "demo/civil-registry".into(),
            size: tree.size(),
            root: tree.root(),
            extensions: vec![],
        };
        sign_checkpoint(&cp, key.note_signer()).unwrap()
    };
    let honest = signed(&[b"a", b"b"]);
    let forked = signed(&[b"a", b"c"]);
    let witness = fed
        .directory()
        .department(&DeptId::new("social-welfare").unwrap())
        .unwrap()
        .clone();
    let client = fed.peer_client_as("civil-registry").unwrap();
    let post = |old: u64, note: &str| {
        let body = AddCheckpointRequest {
            old_size: old,
            proof: vec![],
            checkpoint: note.to_owned(),
        }
        .to_body();
        http::Request::post(format!("https://social-welfare{}", paths::ADD_CHECKPOINT))
            .body(Bytes::from(body))
            .unwrap()
    };
    let (status, line) = client
        .send(&witness, post(0, &honest), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&line));
    assert!(String::from_utf8_lossy(&line).starts_with("— demo/social-welfare/witness "));
    let (status, answer) = client
        .send(&witness, post(0, &forked), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        status,
        409,
        "the witness already cosigned size 2: {}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(String::from_utf8_lossy(&answer).trim(), "2");
    let (status, answer) = client
        .send(&witness, post(2, &forked), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("fork"));
    fed.stop().await;

    let entries = ledger_entries(&fed.ledger_dir("social-welfare")).unwrap();
    let fork = entries
        .iter()
        .find(|e| e["kind"] == "fork")
        .expect("the witness recorded the fork");
    assert_eq!(fork["detail"]["known"], honest.as_str());
    assert_eq!(fork["detail"]["presented"], forked.as_str());
    assert_eq!(fork["provider"], "civil-registry");
}
