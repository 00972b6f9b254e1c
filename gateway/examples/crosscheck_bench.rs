//! Cross-check benchmark: what an oversight node spends after each pull, over a replica that
//! already holds many exchanges. A full cross-check (`crosscheck::run`, what every refresh did
//! before) against the incremental one (`crosscheck::Incremental`, what the node runs now), each
//! after the same pull of new exchanges. Reports medians and their ratio.
//!
//! ```sh
//! cargo run --release -p causeway --example crosscheck_bench                 # 100,000 exchanges
//! cargo run --release -p causeway --example crosscheck_bench -- 20000 500     # exchanges, per pull
//! ```

/// The allocator the `causeway` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use causeway::config::Directory;
use causeway::identity::{DeptId, GatewayKey};
use causeway::ledger::entry::{Entry, Kind, PeerReceipt, Side, GENESIS_PREV};
use causeway::ledger::merkle::leaf_hash;
use causeway::oversight::crosscheck::{self, CrossCheck, Incremental};
use causeway::oversight::replica::Replica;

const SETTINGS: CrossCheck = CrossCheck {
    grace_secs: 30,
    late_secs: 60,
};
const ROUNDS: usize = 7;

fn directory() -> Directory {
    let mut text = "federation = \"bench\"\n".to_owned();
    for (i, id) in ["civil-registry", "social-welfare"].iter().enumerate() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]);
        let vkey = GatewayKey::new(&format!("bench/{id}"), key)
            .expect("valid name")
            .vkey();
        text.push_str(&format!(
            "[[department]]\nid = \"{id}\"\nname = \"{id}\"\nvkey = \"{vkey}\"\n"
        ));
    }
    Directory::parse(&text).expect("valid directory")
}

/// One side's entry of exchange `n`, the size of a real one.
fn entry(side: Side, n: u64) -> Entry {
    let mut e = Entry::new(Kind::Exchange);
    e.time = "2026-01-01T10:00:00Z".into();
    e.side = Some(side);
    e.id = Some(format!("0193a3c2-7f00-7000-8000-{n:012}"));
    e.consumer = Some("social-welfare".into());
    e.provider = Some("civil-registry".into());
    e.dataset = Some("residents".into());
    e.purpose = Some("benefit-eligibility".into());
    e.legal_basis = Some("Social Welfare Act s.12".into());
    e.officer = Some("ab".repeat(32));
    e.subjects = vec!["cd".repeat(32)];
    e.request_digest = Some("ef".repeat(32));
    e.response_digest = Some("01".repeat(32));
    e.fields = vec!["name".into(), "address".into()];
    e.rows = Some(1);
    e.decision = Some("allow".into());
    e.reason = Some("granted".into());
    e.outcome = Some("ok".into());
    e.policy = Some("23".repeat(32));
    e
}

/// Pull exchanges `from..to` into both logs: the provider's entry, then the consumer's with a
/// receipt naming it, as a node's pull of both departments would store them.
fn pull(replica: &Replica, from: u64, to: u64) {
    let mut provider_leaves = Vec::new();
    for (dept, side) in [
        ("civil-registry", Side::Provider),
        ("social-welfare", Side::Consumer),
    ] {
        let mut state = replica.state(dept).expect("state");
        let mut follower = state.follower().expect("follower");
        let mut prev = state.last_leaf.clone().unwrap_or(GENESIS_PREV.to_owned());
        let mut batch = Vec::new();
        for (k, n) in (from..to).enumerate() {
            let mut e = entry(side, n);
            e.index = follower.size();
            e.prev = prev;
            if side == Side::Consumer {
                let (index, leaf): &(u64, String) = &provider_leaves[k];
                e.peer_receipt = Some(PeerReceipt {
                    log: "bench/civil-registry".into(),
                    index: *index,
                    leaf_hash: leaf.clone(),
                    checkpoint_size: index + 1,
                });
            }
            let bytes = e.to_bytes();
            prev = hex::encode(leaf_hash(&bytes));
            if side == Side::Provider {
                provider_leaves.push((e.index, prev.clone()));
            }
            let parsed = follower.follow(&bytes).expect("a well-formed log");
            batch.push((bytes, parsed));
        }
        state.advance(&follower);
        state.last_pull_started_ms = Some(u64::MAX / 2);
        replica
            .commit(&DeptId::new(dept).expect("id"), &batch, &state)
            .expect("commit");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let exchanges: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let per_pull: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let replica = Replica::open(dir.path(), 16 * 1024).expect("replica");
    let directory = directory();
    let started = Instant::now();
    for from in (0..exchanges).step_by(10_000) {
        pull(&replica, from, (from + 10_000).min(exchanges));
    }
    println!(
        "replica: {exchanges} exchanges in two logs ({} entries), laid out in {:.1} s",
        2 * exchanges,
        started.elapsed().as_secs_f64()
    );
    let mut incremental = Incremental::default();
    let states = replica.states().expect("states");
    incremental
        .refresh(&replica, &directory, &states, SETTINGS)
        .expect("first refresh");
    let (mut full, mut kept) = (Vec::new(), Vec::new());
    let mut next = exchanges;
    for _ in 0..ROUNDS {
        pull(&replica, next, next + per_pull);
        next += per_pull;
        let states = replica.states().expect("states");
        let t = Instant::now();
        let all = crosscheck::run(&replica, &directory, &states, SETTINGS).expect("full run");
        full.push(t.elapsed());
        let t = Instant::now();
        let found = incremental
            .refresh(&replica, &directory, &states, SETTINGS)
            .expect("refresh");
        kept.push(t.elapsed());
        assert_eq!(
            found, all,
            "the incremental cross-check must find what a full one finds"
        );
    }
    let (full, kept) = (median(full), median(kept));
    println!(
        "after each pull of {per_pull} exchanges (median of {ROUNDS}): full cross-check {:.1} ms, incremental {:.2} ms: {:.0}x less",
        full.as_secs_f64() * 1e3,
        kept.as_secs_f64() * 1e3,
        full.as_secs_f64() / kept.as_secs_f64().max(1e-9)
    );
}
