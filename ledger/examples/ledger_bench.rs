//! Ledger benchmark: durable group commit against one fsync per entry, append-to-receipt latency,
//! inclusion-proof verification, and `log verify` over a large log. Reports medians and ratios.
//!
//! ```sh
//! cargo run --release -p causeway-ledger --example ledger_bench            # default sizes
//! cargo run --release -p causeway-ledger --example ledger_bench -- 1000000 # entries for the verify run
//! ```

/// The allocator the `causeway` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_ledger::entry::{Entry, Kind, Side};
use causeway_ledger::merkle::{leaf_hash, verify_inclusion};
use causeway_ledger::note::NoteSigner;
use causeway_ledger::verify::verify_log;
use causeway_ledger::{Ledger, LedgerOptions};

fn signer() -> NoteSigner {
    NoteSigner::new("bench/log", ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
        .expect("valid name")
}

/// An entry the size of a real exchange entry (about 800 bytes).
fn entry(n: u64) -> Entry {
    let mut e = Entry::new(Kind::Exchange);
    e.side = Some(Side::Provider);
    e.id = Some(format!("0193a3c2-7f00-7000-8000-{n:012}"));
    e.consumer = Some("social-welfare".into());
    e.provider = Some("civil-registry".into());
    e.dataset = Some("residents".into());
    e.purpose = Some("benefit-eligibility".into());
    e.legal_basis = Some("social-welfare-act:s12".into());
    e.officer = Some("ab".repeat(32));
    e.subjects = vec!["cd".repeat(32)];
    e.request_digest = Some("ef".repeat(32));
    e.response_digest = Some("01".repeat(32));
    e.fields = vec!["name".into(), "birth_date".into(), "address".into()];
    e.rows = Some(1);
    e.decision = Some("allow".into());
    e.reason = Some("granted".into());
    e.rule = Some("welfare-residents.toml:9".into());
    e.outcome = Some("ok".into());
    e.policy = Some("23".repeat(32));
    e
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `writers` tasks append `per_writer` entries each; returns entries per second and the user and
/// system CPU time per entry.
async fn throughput(
    options: LedgerOptions,
    writers: u64,
    per_writer: u64,
) -> (f64, (Duration, Duration)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Arc::new(Ledger::open(dir.path(), options, signer()).expect("open"));
    let started = Instant::now();
    let (user, system) = cpu_times();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                ledger
                    .append(entry(w * per_writer + i))
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let entries = writers * per_writer;
    let rate = entries as f64 / started.elapsed().as_secs_f64();
    let (user_after, system_after) = cpu_times();
    let per_entry = |d: Duration| d / entries as u32;
    ledger.close();
    (
        rate,
        (
            per_entry(user_after - user),
            per_entry(system_after - system),
        ),
    )
}

#[tokio::main]
async fn main() {
    let verify_entries: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!("ledger_bench: 64 concurrent writers, fsync on every commit (LMDB default)\n");

    let mut baseline = Vec::new();
    let mut grouped = Vec::new();
    let mut grouped_cpu = Vec::new();
    for round in 0..3 {
        let one_by_one = LedgerOptions {
            max_batch: 1,
            batch_window: Duration::ZERO,
            ..LedgerOptions::default()
        };
        baseline.push(throughput(one_by_one, 64, 20).await.0);
        let (rate, cpu) = throughput(LedgerOptions::default(), 64, 1500).await;
        grouped.push(rate);
        grouped_cpu.push(cpu);
        println!(
            "  round {round}: one fsync per entry {:>9.0}/s   group commit {rate:>9.0}/s, \
             CPU per append {:.1} us ({:.1} us in the kernel)",
            baseline[round],
            (cpu.0 + cpu.1).as_secs_f64() * 1e6,
            cpu.1.as_secs_f64() * 1e6
        );
    }
    baseline.sort_by(f64::total_cmp);
    grouped.sort_by(f64::total_cmp);
    grouped_cpu.sort_by_key(|(user, system)| *user + *system);
    let (b, g) = (baseline[1], grouped[1]);
    println!(
        "durable appends, median of 3: baseline {b:.0}/s, group commit {g:.0}/s, ratio {:.1}x; \
         CPU per group-committed append {:.1} us ({:.1} us in the kernel)\n",
        g / b,
        (grouped_cpu[1].0 + grouped_cpu[1].1).as_secs_f64() * 1e6,
        grouped_cpu[1].1.as_secs_f64() * 1e6
    );

    // Append -> receipt (durable, signed checkpoint and inclusion proof in hand) at 1,000 appends/s.
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger =
        Arc::new(Ledger::open(dir.path(), LedgerOptions::default(), signer()).expect("open"));
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut tasks = Vec::new();
    for n in 0..5000u64 {
        tick.tick().await;
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            ledger.append(entry(n)).await.expect("append");
            t.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.push(t.await.expect("append task"));
    }
    latencies.sort();
    println!(
        "append -> receipt at 1,000/s (5,000 appends): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );

    // Inclusion proof verification.
    let appended = ledger.append(entry(1)).await.expect("append");
    let root =
        causeway_ledger::checkpoint::open_checkpoint(&appended.checkpoint, &signer().verifier())
            .expect("checkpoint")
            .root;
    let leaf = leaf_hash(&appended.bytes);
    let mut times = Vec::new();
    for _ in 0..20_000 {
        let t = Instant::now();
        verify_inclusion(
            &leaf,
            appended.entry.index,
            appended.checkpoint_size,
            &appended.inclusion_proof,
            &root,
        )
        .expect("verifies");
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "inclusion proof verification (size {}): median {:.2} us\n",
        appended.checkpoint_size,
        percentile(&times, 0.5).as_secs_f64() * 1e6
    );
    ledger.close();

    // log verify over a large log: wall time, and CPU time of this process over the cores it has.
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger =
        Arc::new(Ledger::open(dir.path(), LedgerOptions::default(), signer()).expect("open"));
    let fill = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..64 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..verify_entries).step_by(64) {
                ledger.append(entry(i)).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    println!(
        "filled {verify_entries} entries in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let verifier = signer().verifier();
    let cpu = cpu_time();
    let wall = Instant::now();
    let verified = ledger
        .read(|r| Ok(verify_log(r, &verifier, |_| {})))
        .expect("read")
        .expect("the log verifies");
    let cpu = cpu_time() - cpu;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "log verify: {} entries, {} checkpoints in {:.2} s wall, {:.2} s CPU on {cores} cores \
         ({:.2} s CPU per core): {:.0} entries/s",
        verified.entries,
        verified.checkpoints,
        wall.elapsed().as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() / cores as f64,
        verified.entries as f64 / wall.elapsed().as_secs_f64()
    );
    ledger.close();
}

/// This process's user + system CPU time.
fn cpu_time() -> Duration {
    let (user, system) = cpu_times();
    user + system
}

/// This process's user and system CPU time, apart.
fn cpu_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        Duration::from_millis(ticks(11) * 10),
        Duration::from_millis(ticks(12) * 10),
    )
}
