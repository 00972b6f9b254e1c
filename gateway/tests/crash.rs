//! Crash safety: SIGKILL a provider gateway while clients are writing; every receipt a client got
//! must survive, the chain must verify, and the next checkpoint must be consistent with the last one
//! handed out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway::config::GatewayConfig;
use causeway::directory::Directory;
use causeway::gateway::Gateway;
use causeway::layout::{self, DEMO_DEPARTMENTS};
use causeway_ledger::checkpoint::open_checkpoint;
use causeway_ledger::merkle::{consistency_proof, verify_consistency};
use causeway_ledger::receipt::Receipt;
use causeway_ledger::store::Store;
use causeway_ledger::verify::verify_log;
use serde_json::json;

mod support;
use support::{raise_officer_budget, serve, wait_ready, CaseDesk};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_entry() {
    let root = tempfile::tempdir().unwrap();
    let layout = layout::create(root.path(), "demo", DEMO_DEPARTMENTS).unwrap();
    layout::generate_demo_data(&layout, 200).unwrap();
    raise_officer_budget(&layout);
    let registry = layout.dept("civil-registry").unwrap().clone();
    let mut provider = serve(&registry.config);
    wait_ready(registry.admin).await;
    let consumer = Gateway::start(
        &GatewayConfig::load(&layout.dept("social-welfare").unwrap().config).unwrap(),
    )
    .await
    .unwrap();

    let receipts: Arc<Mutex<Vec<Receipt>>> = Arc::default();
    let exchanges: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (receipts, exchanges, stop, addr) = (
            receipts.clone(),
            exchanges.clone(),
            stop.clone(),
            CaseDesk::of(&layout, "social-welfare"),
        );
        clients.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"provider": "civil-registry", "dataset": "residents",
                    "params": {"national_id": format!("D{:06}", 1 + (c * 7 + n) % 200)},
                    "purpose": "benefit-eligibility", "legal_basis": "t"});
                // In flight at the kill: a clean 502/504, never a 200 without a receipt.
                let answered = addr.post(&body).await;
                if let Ok((status, _)) = &answered {
                    assert!(
                        [200, 502, 504].contains(status),
                        "a request in flight at the kill answered {status}"
                    );
                }
                if let Ok((200, answer)) = answered {
                    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
                    exchanges
                        .lock()
                        .unwrap()
                        .push(answer["exchange"].as_str().unwrap().to_owned());
                    receipts
                        .lock()
                        .unwrap()
                        .push(serde_json::from_value(answer["receipt"].clone()).unwrap());
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while receipts.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "clients got too few answers");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    provider.kill().unwrap(); // SIGKILL, mid-traffic
    provider.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let receipts = receipts.lock().unwrap().clone();

    // Restart and write a little more, then stop cleanly and inspect.
    let mut provider = serve(&registry.config);
    wait_ready(registry.admin).await;
    let body = json!({"provider": "civil-registry", "dataset": "residents", "params": {"national_id": "D000001"},
        "purpose": "benefit-eligibility", "legal_basis": "t"});
    let (status, _) = CaseDesk::of(&layout, "social-welfare")
        .post(&body)
        .await
        .unwrap();
    assert_eq!(status, 200, "the restarted provider serves");
    provider.kill().unwrap();
    provider.wait().unwrap();
    consumer.shutdown().await;

    let directory = Directory::load(&layout.directory).unwrap();
    let log = directory.department(&registry.id).unwrap().verifier.clone();
    let store = Store::open(&registry.dir.join("ledger"), 1024, 1024).unwrap();
    store
        .read(|r| {
            for receipt in &receipts {
                let verified = receipt.verify(&log).expect("every receipt verifies");
                let stored = r
                    .entry(receipt.index)?
                    .expect("every acknowledged entry is stored");
                assert_eq!(
                    causeway_ledger::merkle::leaf_hash(stored),
                    verified.leaf_hash,
                    "entry {}",
                    receipt.index
                );
            }
            verify_log(r, &log, |_| {}).expect("the chain verifies after the crash");
            // The newest checkpoint is consistent with the largest one any client was handed.
            let newest = open_checkpoint(&r.checkpoints()?.last().unwrap().1, &log).unwrap();
            let handed = receipts
                .iter()
                .map(|rc| open_checkpoint(&rc.checkpoint, &log).unwrap())
                .max_by_key(|c| c.size)
                .unwrap();
            let proof = consistency_proof(r, handed.size, newest.size).unwrap();
            verify_consistency(handed.size, newest.size, &handed.root, &newest.root, &proof)
                .expect("no checkpoint handed out before the crash is contradicted after it");
            Ok(())
        })
        .unwrap();
    assert!(receipts.len() >= 200);

    // Every exchange a client saw succeed is in both ledgers, and both verify.
    let exchanges = exchanges.lock().unwrap().clone();
    let welfare = layout.dept("social-welfare").unwrap();
    for (dept, side) in [(&registry, "provider"), (welfare, "consumer")] {
        let store = Store::open(&dept.dir.join("ledger"), 1024, 1024).unwrap();
        let mut ids = std::collections::HashSet::new();
        store
            .read(|r| {
                r.for_each_entry(0, u64::MAX, |_, bytes| {
                    let entry: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                    if entry["side"] == side {
                        ids.insert(entry["id"].as_str().unwrap_or_default().to_owned());
                    }
                    Ok(())
                })?;
                let log = directory.department(&dept.id).unwrap().verifier.clone();
                verify_log(r, &log, |_| {}).expect("both chains verify after the crash");
                Ok(())
            })
            .unwrap();
        let missing: Vec<&String> = exchanges.iter().filter(|id| !ids.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged exchanges are missing from the {side} ledger: {:?}",
            missing.len(),
            exchanges.len(),
            &missing[..missing.len().min(5)]
        );
    }
}
