//! Private by construction: what a curious department can and cannot get out of the access logs
//! it legitimately holds. Every attack uses only what such a department holds: its own ledger, and
//! the entries the peer log endpoints hand it.

use causeway_ledger::commitment::{legacy_digest, open};
use causeway_tests::{ledger_entries, Federation};
use serde_json::{json, Value};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<Value>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().clone())
        .collect()
}

/// A tax-office entry commits to the released row (national id, year, income, tax paid) with a
/// salt only the two parties hold: an attacker who guesses the exact row cannot confirm it, so
/// enumerating the id and income space recovers nothing. The application, which holds the salt,
/// can open the commitment in both ledgers and prove what it received; a changed row does not
/// open it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_rows_are_committed_to_with_a_salt_only_the_parties_hold() {
    let mut fed = Federation::start().await.unwrap();
    let (status, answer) = fed
        .request(
            "social-welfare",
            "tax-office",
            "income",
            json!({"national_id": "D000042", "year": 2024}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let (fields, released) = (strings(&answer["fields"]), rows(&answer["rows"]));
    assert!(!released.is_empty(), "{answer}");
    let exchange = answer["exchange"].as_str().unwrap().to_owned();
    let salt = answer["commitment_salt"].as_str().unwrap().to_owned();

    for dept in ["tax-office", "social-welfare"] {
        let entry = ledger_entries(&fed.ledger_dir(dept))
            .unwrap()
            .into_iter()
            .find(|e| e["id"] == exchange.as_str())
            .unwrap();
        let digest = entry["response_digest"].as_str().unwrap();
        assert_eq!(entry["v"], 2, "{entry}");
        // The attack that worked on version 1 entries: hash the guessed payload and compare.
        assert_ne!(
            legacy_digest(&fields, &released),
            digest,
            "{dept}: the exact row confirms against the entry without the salt"
        );
        // The party that holds the salt opens it; nothing else does.
        assert!(open(2, digest, &salt, &fields, &released), "{dept}");
        let mut changed = released.clone();
        changed[0][2] = json!(changed[0][2].as_i64().unwrap_or(0) + 1);
        assert!(!open(2, digest, &salt, &fields, &changed), "{dept}");
        assert!(!open(2, digest, "", &fields, &released), "{dept}");
    }
    // The salt is stored in no ledger.
    for dept in ["tax-office", "social-welfare"] {
        let text = std::fs::read(fed.ledger_dir(dept).join("data.mdb")).unwrap();
        assert!(
            !text.windows(salt.len()).any(|w| w == salt.as_bytes()),
            "{dept}'s ledger holds the salt"
        );
    }

    // `causeway log open` checks an opening against an entry, from the files alone.
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("answer.json");
    std::fs::write(&kept, serde_json::to_vec(&answer).unwrap()).unwrap();
    let mut tampered_answer = answer.clone();
    tampered_answer["rows"][0][2] = json!(1);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_vec(&tampered_answer).unwrap()).unwrap();
    let index = ledger_entries(&fed.ledger_dir("tax-office"))
        .unwrap()
        .iter()
        .position(|e| e["id"] == exchange.as_str())
        .unwrap();
    let ledger = fed.ledger_dir("tax-office");
    fed.stop().await;
    let run = |answer: &std::path::Path| {
        let args = [
            "causeway",
            "log",
            "open",
            "--ledger",
            ledger.to_str().unwrap(),
            "--index",
            &index.to_string(),
            "--answer",
            answer.to_str().unwrap(),
        ]
        .map(str::to_owned);
        std::thread::scope(|s| s.spawn(|| causeway::cli::run_args(args)).join().unwrap())
    };
    assert_eq!(run(&kept), std::process::ExitCode::SUCCESS);
    assert_eq!(run(&tampered), std::process::ExitCode::FAILURE);
}
