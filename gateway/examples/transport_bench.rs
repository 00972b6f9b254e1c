//! QUIC vs HTTPS/2 between two gateways on loopback.
//!
//! ```text
//! cargo run --release -p causeway --example transport_bench [-- ROUNDS REQUESTS CONCURRENCY]
//! ```
//!
//! Lays out a two-department federation in a temporary directory, starts both gateways (each
//! serving HTTPS/2 and QUIC), and has the consumer's [`PeerTransport`] call the provider:
//! - `exchange`: signed envelopes through the whole provider pipeline (policy, SQLite, ledger
//!   group commit with fsync) — what a department sees;
//! - `checkpoint`: `GET /causeway/v1/log/checkpoint` — mostly transport cost.
//!
//! Each round runs REQUESTS calls with CONCURRENCY in flight on one connection per transport,
//! alternating transports; the figures are medians over rounds of each round's p50, p99 and
//! throughput. First-exchange time is the first call on a brand-new connection (handshake
//! included), against the second call on it, over fresh connections.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use causeway::config::{Department, Directory, GatewayConfig};
use causeway::exchange::envelope::{self, Envelope};
use causeway::federation;
use causeway::gateway::Gateway;
use causeway::identity::tls::TlsMaterial;
use causeway::identity::{DeptId, GatewayKey};
use causeway::transport::client::PeerClient;
use causeway::transport::peer::{PeerRequest, PeerTransport};
use causeway::transport::quic::QuicClient;
use causeway::transport::{paths, Transport, HTTPS_ALPN, QUIC_ALPN};

const CONSUMER: &str = "social-welfare";
const PROVIDER: &str = "civil-registry";
const PEOPLE: u32 = 2_000;

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Exchange,
    Checkpoint,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Exchange => "exchange",
            Workload::Checkpoint => "checkpoint",
        }
    }
}

struct Bench {
    certs: std::path::PathBuf,
    provider: Department,
    key: GatewayKey,
    federation: String,
}

impl Bench {
    fn transport(&self, transport: Transport) -> Result<PeerTransport> {
        let tls = TlsMaterial::load(
            &self.certs.join("ca.pem"),
            None,
            &self.certs.join(format!("{CONSUMER}.pem")),
            &self.certs.join(format!("{CONSUMER}.key")),
        )?;
        let https = PeerClient::new(tls.client_config(HTTPS_ALPN)?, self.federation.clone());
        let quic = match transport {
            Transport::Quic => Some(QuicClient::new(
                tls.quic_client_config(QUIC_ALPN)?,
                self.federation.clone(),
            )?),
            Transport::Https => None,
        };
        Ok(PeerTransport::new(https, quic, transport))
    }

    fn request(&self, workload: Workload, n: usize) -> PeerRequest {
        match workload {
            Workload::Checkpoint => PeerRequest::get(paths::CHECKPOINT),
            Workload::Exchange => {
                let envelope = Envelope {
                    v: envelope::ENVELOPE_VERSION,
                    id: uuid::Uuid::now_v7(),
                    consumer: DeptId::new(CONSUMER).expect("valid id"),
                    provider: DeptId::new(PROVIDER).expect("valid id"),
                    dataset: "residents".into(),
                    params: BTreeMap::from([(
                        "national_id".to_owned(),
                        serde_json::json!(format!("D{:06}", 1 + n % PEOPLE as usize)),
                    )]),
                    purpose: "benefit-eligibility".into(),
                    legal_basis: "Bench Act s.1".into(),
                    case: String::new(),
                    officer: "bench".into(),
                    issued_at: envelope::now_rfc3339(),
                    nonce: envelope::nonce(),
                };
                let bytes = envelope.to_bytes();
                let signature = Envelope::sign(&bytes, &self.key);
                PeerRequest::exchange(signature, Bytes::from(bytes))
            }
        }
    }

    async fn call(&self, peer: &PeerTransport, workload: Workload, n: usize) -> Result<()> {
        let (status, body) = peer
            .send(
                &self.provider,
                self.request(workload, n),
                Duration::from_secs(30),
            )
            .await?;
        ensure!(
            status == 200,
            "{} answered {status}: {}",
            workload.name(),
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }
}

struct Round {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

async fn round(
    bench: &Arc<Bench>,
    peer: &Arc<PeerTransport>,
    workload: Workload,
    requests: usize,
    concurrency: usize,
) -> Result<Round> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (bench, peer, next) = (bench.clone(), peer.clone(), next.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                bench.call(&peer, workload, n).await?;
                latencies.push(t.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    while let Some(worker) = workers.join_next().await {
        latencies.extend(worker??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Round {
        p50: at(0.50),
        p99: at(0.99),
        per_sec: requests as f64 / elapsed.as_secs_f64(),
    })
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .context("arguments are ROUNDS REQUESTS CONCURRENCY")
        })
        .collect::<Result<_>>()?;
    let rounds = args.first().copied().unwrap_or(5);
    let requests = args.get(1).copied().unwrap_or(3_000);
    let concurrency = args.get(2).copied().unwrap_or(64);

    let dir = tempfile::tempdir()?;
    let departments: Vec<(&str, &str)> = federation::DEMO_DEPARTMENTS
        .iter()
        .copied()
        .filter(|(id, _)| [CONSUMER, PROVIDER].contains(id))
        .collect();
    let layout = federation::create_with(dir.path(), "bench", &departments, Transport::Https)?;
    federation::generate_demo_data(&layout, PEOPLE)?;
    // The sample grant allows 600 requests a minute; a benchmark needs more.
    let grant = layout
        .dept(PROVIDER)
        .context("provider laid out")?
        .dir
        .join("policies/welfare-residents.toml");
    let text = std::fs::read_to_string(&grant)?;
    std::fs::write(
        &grant,
        text.replace(
            "per_minute = 600, per_day = 50000",
            "per_minute = 100000000, per_day = 1000000000",
        ),
    )?;
    let mut gateways = Vec::new();
    for dept in &layout.departments {
        gateways.push(Gateway::start(&GatewayConfig::load(&dept.config)?).await?);
    }
    let directory = Directory::load(&layout.directory)?;
    let provider = directory
        .department(&DeptId::new(PROVIDER)?)
        .context("provider listed")?
        .clone();
    let certs = dir.path().join("certs");
    let bench = Arc::new(Bench {
        key: GatewayKey::load(&certs.join(format!("{CONSUMER}.signing.key")))?,
        certs,
        provider,
        federation: directory.federation.clone(),
    });

    println!(
        "transport_bench: {rounds} rounds x {requests} calls, {concurrency} in flight, one connection per transport, loopback, {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let peers = [
        (
            Transport::Https,
            Arc::new(bench.transport(Transport::Https)?),
        ),
        (Transport::Quic, Arc::new(bench.transport(Transport::Quic)?)),
    ];
    for workload in [Workload::Checkpoint, Workload::Exchange] {
        // Warm up: connections, caches, the ledger's first batches.
        for (_, peer) in &peers {
            round(&bench, peer, workload, 500, concurrency).await?;
        }
        let mut results: BTreeMap<&str, Vec<Round>> = BTreeMap::new();
        for _ in 0..rounds {
            for (transport, peer) in &peers {
                let r = round(&bench, peer, workload, requests, concurrency).await?;
                results.entry(transport.as_str()).or_default().push(r);
            }
        }
        let summary = |t: &str| {
            let rs = &results[t];
            (
                median(rs.iter().map(|r| r.p50).collect()),
                median(rs.iter().map(|r| r.p99).collect()),
                median(rs.iter().map(|r| r.per_sec).collect()),
            )
        };
        let (h50, h99, hps) = summary("https");
        let (q50, q99, qps) = summary("quic");
        println!("\n{} ({concurrency} concurrent):", workload.name());
        println!(
            "  {:<8} {:>10} {:>10} {:>12}",
            "", "p50 ms", "p99 ms", "calls/s"
        );
        println!(
            "  {:<8} {:>10.3} {:>10.3} {:>12.0}",
            "HTTPS/2",
            ms(h50),
            ms(h99),
            hps
        );
        println!(
            "  {:<8} {:>10.3} {:>10.3} {:>12.0}",
            "QUIC",
            ms(q50),
            ms(q99),
            qps
        );
        println!(
            "  QUIC/HTTPS: p50 x{:.2}, p99 x{:.2}, throughput x{:.2}",
            ms(q50) / ms(h50),
            ms(q99) / ms(h99),
            qps / hps
        );
    }

    // First call on a brand-new connection vs the next call on it.
    let trials = 30;
    println!("\nnew connection, median of {trials} fresh connections each:");
    println!(
        "  {:<8} {:>14} {:>14} {:>14}",
        "", "first call ms", "second ms", "setup ms"
    );
    let mut setup = BTreeMap::new();
    for workload in [Workload::Checkpoint, Workload::Exchange] {
        let mut firsts: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut seconds: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for n in 0..trials {
            for transport in Transport::ALL {
                let peer = bench.transport(transport)?;
                let t = Instant::now();
                bench.call(&peer, workload, n).await?;
                firsts
                    .entry(transport.as_str())
                    .or_default()
                    .push(t.elapsed());
                let t = Instant::now();
                bench.call(&peer, workload, n + 1).await?;
                seconds
                    .entry(transport.as_str())
                    .or_default()
                    .push(t.elapsed());
                let (https, quic, fallbacks) = peer.stats().snapshot();
                ensure!(
                    fallbacks == 0 && (transport == Transport::Quic) == (quic == 2 && https == 0),
                    "{transport} calls went elsewhere: {https} https, {quic} quic, {fallbacks} fallbacks"
                );
                peer.close();
            }
        }
        for transport in Transport::ALL {
            let t = transport.as_str();
            let first = median(firsts[t].clone());
            let second = median(seconds[t].clone());
            println!(
                "  {:<8} {:>14.3} {:>14.3} {:>14.3}   ({})",
                if transport == Transport::Https {
                    "HTTPS/2"
                } else {
                    "QUIC"
                },
                ms(first),
                ms(second),
                ms(first.saturating_sub(second)),
                workload.name()
            );
            setup.insert((workload.name(), t), first);
        }
        println!(
            "  QUIC/HTTPS first {}: x{:.2}",
            workload.name(),
            ms(setup[&(workload.name(), "quic")]) / ms(setup[&(workload.name(), "https")])
        );
    }

    for gateway in gateways {
        gateway.shutdown().await;
    }
    Ok(())
}
