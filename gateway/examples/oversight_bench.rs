//! Oversight numbers: pull + verify throughput over mTLS from three departments, search latency
//! over a replica of 1,000,000 entries, and the cross-check after a pull, full and incremental.
//!
//! ```text
//! cargo run --release -p causeway --example oversight_bench -- [--entries 1000000] [--pull-entries 100000] [--queries 2000]
//! ```
//!
//! 1. Pull: lays out the demo federation in a temporary directory, writes `--pull-entries`
//!    synthetic exchange entries into each of the three departments' ledgers (through the real
//!    ledger: group commit, signed checkpoints), starts the three gateways and an oversight node,
//!    and times one full pull (fetch, re-hash, chain, Merkle root, consistency proofs, indexing).
//! 2. Search: fills a fresh replica with `--entries` synthetic entries directly (verified by the same
//!    `LogFollower`, not over the network), then times searches by subject tag and by department
//!    pair + a one-hour window, and reports p50 and p99.
//! 3. Cross-check: one full pass over that replica; then, after each of 3 pulls of 1,000 more
//!    entries per department, a full pass against the node's incremental refresh (medians, ratio).

/// The allocator the `causeway` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use causeway::config::GatewayConfig;
use causeway::gateway::Gateway;
use causeway::identity::DeptId;
use causeway::layout;
use causeway::oversight::crosscheck::{self, CrossCheck, Incremental};
use causeway::oversight::replica::{LogState, Query, Replica};
use causeway::oversight::Oversight;
use causeway_ledger::entry::{Entry, Kind, PeerReceipt, Side};
use causeway_ledger::{Ledger, LedgerOptions};

const DEPARTMENTS: [&str; 3] = ["civil-registry", "tax-office", "social-welfare"];
const DATASETS: [&str; 3] = ["residents", "income", "benefits"];
const PURPOSES: [&str; 4] = [
    "benefit-eligibility",
    "tax-assessment",
    "statistics",
    "fraud-investigation",
];
/// Synthetic entries span 30 days.
const SPAN_MS: u64 = 30 * 24 * 3600 * 1000;
const START_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .expect("in range")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

fn hex64(rng: &mut Rng) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        rng.next(),
        rng.next(),
        rng.next(),
        rng.next()
    )
}

fn subject_tag(n: u64) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("subject-{n}").as_bytes()))
}

/// A synthetic exchange entry written by `log`, the size and shape of a real one.
fn synthetic(rng: &mut Rng, log: &str, n: u64, subjects: u64, time_ms: u64) -> Entry {
    let other = DEPARTMENTS[(rng.next() % 3) as usize];
    let other = if other == log {
        DEPARTMENTS[(DEPARTMENTS.iter().position(|d| *d == log).unwrap_or(0) + 1) % 3]
    } else {
        other
    };
    let provider_side = rng.next().is_multiple_of(2);
    let (consumer, provider) = if provider_side {
        (other, log)
    } else {
        (log, other)
    };
    let allowed = !rng.next().is_multiple_of(5);
    let mut e = Entry::new(if allowed {
        Kind::Exchange
    } else {
        Kind::Denied
    });
    e.time = rfc3339(time_ms);
    e.side = Some(if provider_side {
        Side::Provider
    } else {
        Side::Consumer
    });
    // Unique per (log, n): the cross-check would report a collision as a duplicate.
    let log_no = DEPARTMENTS.iter().position(|d| *d == log).unwrap_or(3) as u128;
    e.id = Some(format!(
        "0190{:028x}",
        log_no << 100 | (n as u128) << 20 | (rng.next() as u128 & 0xfffff)
    ));
    e.consumer = Some(consumer.into());
    e.provider = Some(provider.into());
    e.dataset = Some(DATASETS[(rng.next() % 3) as usize].into());
    e.purpose = Some(PURPOSES[(rng.next() % 4) as usize].into());
    e.legal_basis = Some("social-welfare-act:s12".into());
    e.officer = Some(hex64(rng));
    e.subjects = vec![subject_tag(rng.next() % subjects)];
    e.request_digest = Some(hex64(rng));
    e.decision = Some(if allowed { "allow" } else { "deny" }.into());
    e.reason = Some(
        if allowed {
            "granted"
        } else {
            "purpose-not-allowed"
        }
        .into(),
    );
    e.rule = Some("welfare-residents.toml:9".into());
    e.policy = Some(hex64(rng));
    if allowed {
        e.response_digest = Some(hex64(rng));
        e.fields = vec!["name".into(), "birth_date".into(), "address".into()];
        e.rows = Some(1);
        e.outcome = Some("ok".into());
    }
    if !provider_side {
        e.peer_receipt = Some(PeerReceipt {
            log: format!("demo/{provider}"),
            index: n,
            leaf_hash: hex64(rng),
            checkpoint_size: n + 1,
        });
    }
    e
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let entries = arg("--entries", 1_000_000);
    let pull_entries = arg("--pull-entries", 100_000);
    let queries = arg("--queries", 2_000) as usize;
    if pull_entries > 0 {
        pull_bench(pull_entries).await?;
    }
    if entries > 0 {
        search_bench(entries, queries)?;
    }
    Ok(())
}

async fn pull_bench(per_dept: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let layout = layout::create(dir.path(), "demo", layout::DEMO_DEPARTMENTS)?;
    layout::generate_demo_data(&layout, 10)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let fill = Instant::now();
    for dept in &layout.departments {
        let key = causeway::identity::GatewayKey::load(
            &dir.path()
                .join("certs")
                .join(format!("{}.signing.key", dept.id)),
        )?;
        let ledger = Arc::new(Ledger::open(
            &dept.dir.join("ledger"),
            LedgerOptions::default(),
            key.to_note_signer(),
        )?);
        let mut n = 0;
        while n < per_dept {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..4096.min(per_dept - n) {
                let time = START_MS + SPAN_MS * n / per_dept;
                let e = synthetic(&mut rng, dept.id.as_str(), n, 200_000, time);
                let ledger = ledger.clone();
                batch.spawn(async move { ledger.append(e).await.map(|_| ()) });
                n += 1;
            }
            while let Some(r) = batch.join_next().await {
                r??;
            }
        }
        ledger.close();
    }
    println!(
        "pull: wrote {} entries into 3 department ledgers in {:.1} s",
        3 * per_dept,
        fill.elapsed().as_secs_f64()
    );
    let mut gateways = Vec::new();
    for dept in &layout.departments {
        gateways.push(Gateway::start(&GatewayConfig::load(&dept.config)?).await?);
    }
    let oversight = layout::create_oversight(&layout, "audit-office")?;
    let (node, _) = Oversight::open(&GatewayConfig::load(&oversight.config)?)?;
    let started = Instant::now();
    let reports = node.pull_all(Arc::new(|_: &str, _, _| {})).await;
    let elapsed = started.elapsed();
    let mut pulled = 0;
    for (dept, r) in &reports {
        let r = r.as_ref().map_err(|e| anyhow::anyhow!("{dept}: {e}"))?;
        anyhow::ensure!(r.flag.is_none(), "{dept} flagged: {:?}", r.flag);
        pulled += r.to - r.from;
    }
    println!(
        "pull: {pulled} entries from 3 departments pulled over mTLS (HTTPS/2) and verified in {:.2} s: {:.0} entries/s (includes the cross-check of the result)",
        elapsed.as_secs_f64(),
        pulled as f64 / elapsed.as_secs_f64()
    );
    node.close();
    for g in gateways {
        g.shutdown().await;
    }
    Ok(())
}

fn search_bench(total: u64, queries: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let replica = Replica::open(dir.path(), 64 * 1024)?;
    let subjects = total / 5;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let fill = Instant::now();
    let per_dept = total / 3;
    for dept in DEPARTMENTS {
        replicate(&replica, &mut rng, dept, 0..per_dept, per_dept, subjects)?;
    }
    let fill_s = fill.elapsed().as_secs_f64();
    println!(
        "search: replica of {} entries filled (re-hashed, chained, indexed) in {fill_s:.1} s ({:.0} entries/s); {} bytes on disk",
        per_dept * 3,
        (per_dept * 3) as f64 / fill_s,
        std::fs::metadata(dir.path().join("data.mdb"))?.len()
    );
    let mut by_subject = Vec::with_capacity(queries);
    let mut found = 0;
    for _ in 0..queries {
        let tag = subject_tag(rng.next() % subjects);
        let t = Instant::now();
        let r = replica.search(&Query {
            subject_tag: Some(tag),
            ..Query::default()
        })?;
        by_subject.push(t.elapsed());
        found += r.records.len();
    }
    let mut by_pair = Vec::with_capacity(queries);
    let mut pair_found = 0;
    for _ in 0..queries {
        let c = DEPARTMENTS[(rng.next() % 3) as usize];
        let p = DEPARTMENTS
            .iter()
            .find(|d| **d != c)
            .copied()
            .unwrap_or("tax-office");
        let from = START_MS + rng.next() % (SPAN_MS - 3_600_000);
        let t = Instant::now();
        let r = replica.search(&Query {
            consumer: Some(c.into()),
            provider: Some(p.into()),
            from_ms: Some(from),
            to_ms: Some(from + 3_600_000),
            ..Query::default()
        })?;
        by_pair.push(t.elapsed());
        pair_found += r.records.len();
    }
    for (name, mut times, hits) in [
        ("subject tag", by_subject, found),
        ("department pair + 1 h window", by_pair, pair_found),
    ] {
        times.sort();
        println!(
            "search by {name}: {queries} queries over {} entries: p50 {:.3} ms, p99 {:.3} ms ({:.1} results per query on average)",
            per_dept * 3,
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            hits as f64 / queries as f64
        );
    }
    crosscheck_bench(&replica, &mut rng, per_dept, subjects)
}

/// The cross-check over the filled replica: one full pass, then after each of a few pulls of
/// 1,000 more entries per department, a full pass (what the node ran after every pull before)
/// against the node's incremental refresh.
fn crosscheck_bench(replica: &Replica, rng: &mut Rng, per_dept: u64, subjects: u64) -> Result<()> {
    const PULLS: usize = 3;
    const PER_PULL: u64 = 1_000;
    let directory = causeway::directory::Directory::parse("federation = \"demo\"\n")?;
    let settings = CrossCheck {
        grace_secs: 30,
        late_secs: 60,
    };
    let mut incremental = Incremental::default();
    let t = Instant::now();
    let findings = incremental.refresh(replica, &directory, &replica.states()?, settings)?;
    println!(
        "cross-check over {} entries: {:.1} s ({} findings: synthetic entries have no other side)",
        per_dept * 3,
        t.elapsed().as_secs_f64(),
        findings.len()
    );
    let (mut full, mut kept) = (Vec::new(), Vec::new());
    for pull in 0..PULLS as u64 {
        let from = per_dept + pull * PER_PULL;
        for dept in DEPARTMENTS {
            replicate(
                replica,
                rng,
                dept,
                from..from + PER_PULL,
                per_dept,
                subjects,
            )?;
        }
        let states = replica.states()?;
        let t = Instant::now();
        let all = crosscheck::run(replica, &directory, &states, settings)?;
        full.push(t.elapsed());
        let t = Instant::now();
        let found = incremental.refresh(replica, &directory, &states, settings)?;
        kept.push(t.elapsed());
        anyhow::ensure!(
            found == all,
            "the incremental cross-check found something else"
        );
    }
    full.sort();
    kept.sort();
    let (full, kept) = (percentile(&full, 0.5), percentile(&kept, 0.5));
    println!(
        "cross-check after each pull of {PER_PULL} entries per department (median of {PULLS}): full pass {:.0} ms, incremental {:.1} ms: {:.0}x less",
        full.as_secs_f64() * 1e3,
        kept.as_secs_f64() * 1e3,
        full.as_secs_f64() / kept.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// Append synthetic entries `ns` of `dept`'s log to the replica, verified and indexed, continuing
/// its stored state, 10,000 to a transaction.
fn replicate(
    replica: &Replica,
    rng: &mut Rng,
    dept: &str,
    ns: std::ops::Range<u64>,
    per_dept: u64,
    subjects: u64,
) -> Result<()> {
    let id = DeptId::new(dept)?;
    let mut state = replica.state(dept)?;
    let mut follower = state.follower()?;
    for start in ns.clone().step_by(10_000) {
        let mut batch = Vec::with_capacity(10_000);
        for n in start..(start + 10_000).min(ns.end) {
            // Entries arrive in time order, as a log writes them.
            let time = START_MS + SPAN_MS * n / per_dept;
            let mut e = synthetic(rng, dept, n, subjects, time);
            e.index = follower.size();
            e.prev = match follower.size() {
                0 => causeway_ledger::entry::GENESIS_PREV.to_owned(),
                _ => state_last(&batch, &state),
            };
            let bytes = e.to_bytes();
            let parsed = follower
                .follow(&bytes)
                .map_err(|b| anyhow::anyhow!("{b}"))?;
            batch.push((bytes, parsed));
        }
        state.advance(&follower);
        replica.commit(&id, &batch, &state)?;
    }
    Ok(())
}

/// The leaf hash (hex) of the entry before the next one: the last in `batch`, or the state's.
fn state_last(batch: &[(Vec<u8>, Entry)], state: &LogState) -> String {
    match batch.last() {
        Some((bytes, _)) => hex::encode(causeway_ledger::merkle::leaf_hash(bytes)),
        None => state.last_leaf.clone().unwrap_or_default(),
    }
}
