//! Decision latency and compile time at scale (issue 9's numbers).
//!
//! Run: `cargo run --release -p causeway-policy --example bench_decide`
//!
//! Prints the median and p99 latency of `PolicySet::decide` with 10 and with 10,000 grants
//! (200 consumer departments, 500 datasets), their ratio, and the median time to parse, validate
//! and compile 10,000 grants. A bench binary, not a test: nothing here asserts on time.

/// The allocator the `causeway` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use causeway_policy::{PolicySet, Request};
use serde_json::json;

const PURPOSES: [&str; 4] = [
    "benefit-eligibility",
    "tax-assessment",
    "fraud-investigation",
    "statistics",
];
const DEPTS: usize = 200;
const DATASETS: usize = 500;

/// A tiny deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn purposes_file() -> String {
    PURPOSES
        .iter()
        .map(|p| format!("[[purpose]]\nid = \"{p}\"\ndescription = \"{p}\"\n\n"))
        .collect()
}

/// `n` grants spread over 200 departments and 500 datasets, in files of 100 grants. Every fifth
/// grant masks a field, every third constrains a parameter, every seventh needs a case.
fn policy(n: usize) -> Vec<(String, String)> {
    let mut rng = Rng(0x5eed);
    let mut files = vec![("purposes.toml".to_string(), purposes_file())];
    let mut text = String::new();
    for i in 0..n {
        let consumer = rng.below(DEPTS);
        let dataset = rng.below(DATASETS);
        let p1 = PURPOSES[rng.below(4)];
        let p2 = PURPOSES[rng.below(4)];
        let purposes = if p1 == p2 {
            format!("\"{p1}\"")
        } else {
            format!("\"{p1}\", \"{p2}\"")
        };
        writeln!(
            text,
            "[[grant]]\nid = \"g{i}\"\nconsumer = \"dept-{consumer}\"\ndataset = \"ds-{dataset}\"\npurposes = [{purposes}]\nfields = [\"f1\", \"f2\", \"f3\", \"f4\", \"f5\"]\nmax_rows = 100"
        )
        .expect("write to String");
        if i % 5 == 0 {
            writeln!(text, "masks = {{ f2 = \"hash\", f4 = \"round:100\" }}")
                .expect("write to String");
        }
        if i % 3 == 0 {
            writeln!(text, "params = {{ id = {{ pattern = \"D[0-9]*\" }}, year = {{ range = [2000, 2030] }} }}")
                .expect("write to String");
        }
        if i % 7 == 0 {
            writeln!(text, "require_case = true").expect("write to String");
        }
        text.push('\n');
        if (i + 1) % 100 == 0 || i + 1 == n {
            files.push((
                format!("agreements-{:04}.toml", i / 100),
                std::mem::take(&mut text),
            ));
        }
    }
    files
}

struct Req {
    consumer: String,
    dataset: String,
    purpose: &'static str,
}

/// Requests: three in four aimed at an existing grant's (consumer, dataset), the rest random.
fn requests(set: &PolicySet, count: usize) -> Vec<Req> {
    let mut rng = Rng(0xbeef);
    (0..count)
        .map(|_| {
            let (consumer, dataset) = if rng.below(4) != 0 && !set.grants().is_empty() {
                let g = &set.grants()[rng.below(set.grants().len())];
                (g.consumers[0].clone(), g.dataset.clone())
            } else {
                (
                    format!("dept-{}", rng.below(DEPTS)),
                    format!("ds-{}", rng.below(DATASETS)),
                )
            };
            Req {
                consumer,
                dataset,
                purpose: PURPOSES[rng.below(4)],
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Median and p99 of single `decide` calls, plus the mean from timing whole batches (which
/// excludes the cost of reading the clock around each call, but includes dropping each decision).
///
/// Before each timed call the request's strings are copied into reused buffers, outside the timed
/// region: the gateway decides a request it has just parsed, so its bytes are in cache. Reading
/// them from 4,096 requests last touched 4,096 decisions ago instead timed cache misses of the
/// bench's own data, and more of them the larger the policy set (whose data evicts them). Every
/// request carries the same parameters, so one map serves them all.
fn measure(set: &PolicySet, reqs: &[Req]) -> (Duration, Duration, Duration, usize) {
    let mut params = BTreeMap::new();
    params.insert("id".to_string(), json!("D000042"));
    params.insert("year".to_string(), json!(2024));
    let decide = |consumer: &str, dataset: &str, purpose: &str| {
        set.decide(&Request {
            consumer,
            dataset,
            purpose,
            legal_basis: "",
            case: "C-1",
            application: None,
            params: &params,
            at_unix: 1_750_000_000,
        })
    };
    for r in reqs.iter().take(10_000) {
        black_box(decide(&r.consumer, &r.dataset, r.purpose));
    }
    let rounds = 200_000;
    let mut samples = Vec::with_capacity(rounds);
    let mut allowed = 0;
    let (mut consumer, mut dataset) = (String::new(), String::new());
    for i in 0..rounds {
        let r = &reqs[i % reqs.len()];
        consumer.clone_from(&r.consumer);
        dataset.clone_from(&r.dataset);
        let t = Instant::now();
        let d = black_box(decide(&consumer, &dataset, r.purpose));
        samples.push(t.elapsed());
        allowed += usize::from(d.allowed);
    }
    samples.sort();
    let batch = Instant::now();
    for i in 0..rounds {
        let r = &reqs[i % reqs.len()];
        black_box(decide(&r.consumer, &r.dataset, r.purpose));
    }
    let mean = batch.elapsed() / rounds as u32;
    (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        mean,
        allowed * 100 / rounds,
    )
}

fn main() {
    let small = PolicySet::from_sources(&policy(10)).expect("generated policy loads");
    let large_files = policy(10_000);
    let large = PolicySet::from_sources(&large_files).expect("generated policy loads");
    println!("decide() latency (200 departments, 500 datasets; 200,000 decisions each):");
    let mut medians = Vec::new();
    for (name, set) in [("10 grants", &small), ("10,000 grants", &large)] {
        let reqs = requests(set, 4096);
        let (median, p99, mean, allowed) = measure(set, &reqs);
        println!(
            "  {name:>14}: median {median:>8.2?}  p99 {p99:>8.2?}  batch mean {mean:>8.2?}  ({allowed}% allowed)"
        );
        medians.push(median);
    }
    println!(
        "  ratio 10,000 / 10 grants (median): {:.2}x",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );

    let bytes: usize = large_files.iter().map(|(_, c)| c.len()).sum();
    let mut compile = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let set = black_box(PolicySet::from_sources(&large_files).expect("loads"));
        compile.push(t.elapsed());
        // Dropping a set is not loading one (the gateway drops the old set after the swap).
        drop(set);
    }
    compile.sort();
    let mut parse_only = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for (_, text) in &large_files {
            black_box(text.parse::<toml::Table>().expect("valid TOML"));
        }
        parse_only.push(t.elapsed());
    }
    parse_only.sort();
    println!(
        "parse + validate + compile 10,000 grants ({} files, {} KiB): median {:.1?} (min {:.1?}, max {:.1?})",
        large_files.len(),
        bytes / 1024,
        compile[compile.len() / 2],
        compile[0],
        compile[compile.len() - 1]
    );
    println!(
        "  of which TOML parsing alone (toml::Table): median {:.1?}",
        parse_only[parse_only.len() / 2]
    );
}
