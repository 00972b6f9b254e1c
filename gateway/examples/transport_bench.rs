//! QUIC vs HTTPS/2 between two gateways on loopback, then through a relay that adds a round-trip
//! time.
//!
//! ```text
//! cargo run --release -p causeway --example transport_bench [-- ROUNDS REQUESTS CONCURRENCY] [--rtt MS]
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
//!
//! Loopback has no round-trip time, so a handshake's round trips cost nothing there. The last
//! section (`--rtt MS`, default 20; `--rtt 0` skips it) repeats the first-exchange measurement
//! with the consumer pointed at in-process relays that delay every datagram (QUIC) and every byte
//! (TCP) by RTT/2 each way, and hold a new TCP connection for one RTT to stand for the SYN/SYN-ACK
//! exchange that loopback completes instantly (see [`relay`]). The kernel here has no netem.

/// The allocator the `causeway` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use causeway::config::GatewayConfig;
use causeway::directory::{Department, Directory};
use causeway::exchange::envelope::{self, Envelope};
use causeway::gateway::Gateway;
use causeway::identity::tls::TlsMaterial;
use causeway::identity::{DeptId, GatewayKey};
use causeway::layout;
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

#[derive(Clone)]
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
                    legal_basis: "bench-act:s1".into(),
                    case: String::new(),
                    officer: "bench".into(),
                    application: None,
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

fn label(transport: Transport) -> &'static str {
    match transport {
        Transport::Https => "HTTPS/2",
        Transport::Quic => "QUIC",
    }
}

struct Args {
    rounds: usize,
    requests: usize,
    concurrency: usize,
    /// Round-trip time the relays add for the last section; `None` skips it.
    rtt: Option<Duration>,
}

const USAGE: &str = "arguments are [ROUNDS REQUESTS CONCURRENCY] [--rtt MS]";

fn parse_args() -> Result<Args> {
    let mut numbers = Vec::new();
    let mut rtt_ms = 20;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--rtt" {
            rtt_ms = args.next().context(USAGE)?.parse().context(USAGE)?;
        } else {
            numbers.push(arg.parse::<usize>().context(USAGE)?);
        }
    }
    if numbers.len() > 3 {
        bail!(USAGE);
    }
    Ok(Args {
        rounds: numbers.first().copied().unwrap_or(5),
        requests: numbers.get(1).copied().unwrap_or(3_000),
        concurrency: numbers.get(2).copied().unwrap_or(64),
        rtt: (rtt_ms > 0).then(|| Duration::from_millis(rtt_ms)),
    })
}

/// Starts both gateways; returns them and the bench as the consumer (calling the provider directly).
async fn start(dir: &std::path::Path) -> Result<(Vec<Gateway>, Bench)> {
    let departments: Vec<(&str, &str)> = layout::DEMO_DEPARTMENTS
        .iter()
        .copied()
        .filter(|(id, _)| [CONSUMER, PROVIDER].contains(id))
        .collect();
    let layout = layout::create_with(dir, "bench", &departments, Transport::Https)?;
    layout::generate_demo_data(&layout, PEOPLE)?;
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
        .as_ref()
        .clone();
    let certs = dir.join("certs");
    let bench = Bench {
        key: GatewayKey::load(&certs.join(format!("{CONSUMER}.signing.key")))?,
        certs,
        provider,
        federation: directory.federation.clone(),
    };
    Ok((gateways, bench))
}

/// p50, p99 and throughput with `concurrency` calls in flight on one connection per transport.
async fn throughput(bench: &Arc<Bench>, args: &Args) -> Result<()> {
    let Args {
        rounds,
        requests,
        concurrency,
        ..
    } = *args;
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
            round(bench, peer, workload, 500, concurrency).await?;
        }
        let mut results: BTreeMap<&str, Vec<Round>> = BTreeMap::new();
        for _ in 0..rounds {
            for (transport, peer) in &peers {
                let r = round(bench, peer, workload, requests, concurrency).await?;
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
    for (_, peer) in &peers {
        peer.close();
    }
    Ok(())
}

/// Medians over fresh connections of one transport.
#[derive(Clone, Copy)]
struct Fresh {
    /// The first call on a brand-new connection, handshake included.
    first: Duration,
    /// The next call on that connection.
    second: Duration,
}

impl Fresh {
    /// What the connection's setup added to its first call.
    fn setup(&self) -> Duration {
        self.first.saturating_sub(self.second)
    }
}

/// [`Fresh`] for both transports.
struct FreshPair {
    https: Fresh,
    quic: Fresh,
}

impl FreshPair {
    fn rows(&self) -> [(Transport, Fresh); 2] {
        [(Transport::Https, self.https), (Transport::Quic, self.quic)]
    }
}

/// The first and second call on `trials` brand-new connections per transport, alternating
/// transports so that drift on the machine touches both alike, and swapping which goes first
/// so that neither always follows the other's work (the provider's ledger commits, fsyncs).
async fn fresh_connections(bench: &Bench, workload: Workload, trials: usize) -> Result<FreshPair> {
    let mut firsts: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut seconds: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for n in 0..trials {
        let mut order = Transport::ALL;
        if n % 2 == 1 {
            order.reverse();
        }
        for transport in order {
            // A new PeerTransport has no pooled connection (and a new rustls config, so no
            // session to resume): its first call must connect.
            let peer = bench.transport(transport)?;
            let t = Instant::now();
            bench.call(&peer, workload, 2 * n).await?;
            firsts
                .entry(transport.as_str())
                .or_default()
                .push(t.elapsed());
            let t = Instant::now();
            bench.call(&peer, workload, 2 * n + 1).await?;
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
    let fresh = |transport: Transport| {
        let t = transport.as_str();
        Fresh {
            first: median(firsts[t].clone()),
            second: median(seconds[t].clone()),
        }
    };
    Ok(FreshPair {
        https: fresh(Transport::Https),
        quic: fresh(Transport::Quic),
    })
}

/// First call vs second call on fresh connections, on loopback.
async fn new_connections_loopback(bench: &Bench) -> Result<()> {
    let trials = 30;
    println!("\nnew connection, median of {trials} fresh connections each:");
    println!(
        "  {:<8} {:>14} {:>14} {:>14}",
        "", "first call ms", "second ms", "setup ms"
    );
    for workload in [Workload::Checkpoint, Workload::Exchange] {
        let fresh = fresh_connections(bench, workload, trials).await?;
        for (transport, f) in fresh.rows() {
            println!(
                "  {:<8} {:>14.3} {:>14.3} {:>14.3}   ({})",
                label(transport),
                ms(f.first),
                ms(f.second),
                ms(f.setup()),
                workload.name()
            );
        }
        println!(
            "  QUIC/HTTPS first {}: x{:.2}",
            workload.name(),
            ms(fresh.quic.first) / ms(fresh.https.first)
        );
    }
    Ok(())
}

/// First call vs second call on fresh connections through relays adding `rtt`, in ms and RTTs.
async fn new_connections_with_rtt(bench: &Bench, rtt: Duration) -> Result<()> {
    let trials = 15;
    let https = bench
        .provider
        .https
        .as_deref()
        .context("provider has HTTPS")?;
    let quic = bench
        .provider
        .quic
        .as_deref()
        .context("provider has QUIC")?;
    let tcp = relay::Relay::tcp(resolve(https).await?, rtt).await?;
    let udp = relay::Relay::udp(resolve(quic).await?, rtt).await?;
    // The client takes the TLS server name from the endpoint's host, so the relays listen on
    // 127.0.0.1 (in the provider's certificate) and only the ports change.
    let relayed = Bench {
        provider: Department {
            https: Some(tcp.addr().to_string()),
            quic: Some(udp.addr().to_string()),
            ..bench.provider.clone()
        },
        ..bench.clone()
    };
    let rtts = |d: Duration| d.as_secs_f64() / rtt.as_secs_f64();
    println!(
        "\nnew connection through a {} ms RTT relay, median of {trials} fresh connections each:",
        ms(rtt)
    );
    println!(
        "  {:<8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "", "first ms", "second ms", "setup ms", "first RTT", "second RTT", "setup RTT"
    );
    for workload in [Workload::Checkpoint, Workload::Exchange] {
        let fresh = fresh_connections(&relayed, workload, trials).await?;
        for (transport, f) in fresh.rows() {
            println!(
                "  {:<8} {:>9.1} {:>9.1} {:>9.1} {:>10.2} {:>10.2} {:>10.2}   ({})",
                label(transport),
                ms(f.first),
                ms(f.second),
                ms(f.setup()),
                rtts(f.first),
                rtts(f.second),
                rtts(f.setup()),
                workload.name()
            );
        }
        let (h, q) = (fresh.https, fresh.quic);
        println!(
            "  QUIC - HTTPS {}: first {:+.2} RTT, setup {:+.2} RTT (expected -1: TCP+TLS 1.3 = 3 RTT, QUIC = 2 RTT)",
            workload.name(),
            rtts(q.first) - rtts(h.first),
            rtts(q.setup()) - rtts(h.setup()),
        );
    }
    // Say what the figures include: the TCP handshake's RTT is the relay's model, not a measurement.
    for line in [
        "The relays delay every datagram (QUIC) and every byte (TCP) by RTT/2 each way, late by",
        "microseconds. Loopback completes TCP's SYN/SYN-ACK at once, so the TCP relay holds each new",
        "connection for one RTT before forwarding anything: that RTT is modelled, not measured.",
        "Not modelled: loss, jitter, bandwidth, TCP congestion control and ACKs over the delay",
        "(the kernel's TCP runs on loopback either side of the relay; QUIC's runs end to end).",
    ] {
        println!("  {line}");
    }
    // Keep the relays up while the last connections' closes (and QUIC's last ACKs) cross them:
    // otherwise the provider waits for them until its shutdown's drain timeout (10 s).
    tokio::time::sleep(2 * rtt + Duration::from_millis(50)).await;
    Ok(())
}

async fn resolve(endpoint: &str) -> Result<std::net::SocketAddr> {
    tokio::net::lookup_host(endpoint)
        .await?
        .next()
        .with_context(|| format!("{endpoint} has no address"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let (gateways, bench) = start(dir.path()).await?;
    let bench = Arc::new(bench);

    println!(
        "transport_bench: {} rounds x {} calls, {} in flight, one connection per transport, loopback, {} CPUs",
        args.rounds,
        args.requests,
        args.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    throughput(&bench, &args).await?;
    new_connections_loopback(&bench).await?;
    if let Some(rtt) = args.rtt {
        new_connections_with_rtt(&bench, rtt).await?;
    }

    for gateway in gateways {
        gateway.shutdown().await;
    }
    Ok(())
}

/// In-process relays that put a round-trip time between the consumer and the provider.
///
/// What they model: propagation delay (RTT/2 each way, for every datagram or byte, with no limit
/// on bandwidth) and, for TCP, the one RTT of the SYN/SYN-ACK exchange. What they do not: loss,
/// reordering, jitter, limited bandwidth, or TCP congestion control and ACK timing over the
/// delayed path (the kernel's TCP runs on the loopback legs either side of the relay; QUIC's
/// congestion control and ACKs run end to end and do see the delay).
mod relay {
    use std::collections::hash_map::{Entry, HashMap};
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::{TcpListener, TcpStream, UdpSocket};
    use tokio::sync::mpsc;
    use tokio::task::{JoinHandle, JoinSet};
    use tokio::time::Instant;

    const LOOPBACK: (std::net::Ipv4Addr, u16) = (std::net::Ipv4Addr::LOCALHOST, 0);

    /// A running relay; dropping it stops it and everything it forwards.
    pub struct Relay {
        addr: SocketAddr,
        task: JoinHandle<()>,
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            // The task owns the JoinSets of its connections and flows: they are aborted with it.
            self.task.abort();
        }
    }

    impl Relay {
        /// Where clients should connect instead of the real endpoint.
        pub fn addr(&self) -> SocketAddr {
            self.addr
        }

        /// A TCP relay to `upstream`: bytes each way arrive `rtt / 2` late, and nothing moves on
        /// a new connection until `rtt` after it was accepted.
        pub async fn tcp(upstream: SocketAddr, rtt: Duration) -> io::Result<Relay> {
            let listener = TcpListener::bind(LOOPBACK).await?;
            let addr = listener.local_addr()?;
            let task = tokio::spawn(tcp_accept(listener, upstream, rtt));
            Ok(Relay { addr, task })
        }

        /// A UDP relay to `upstream`: every datagram each way arrives `rtt / 2` late.
        pub async fn udp(upstream: SocketAddr, rtt: Duration) -> io::Result<Relay> {
            let front = Arc::new(UdpSocket::bind(LOOPBACK).await?);
            let addr = front.local_addr()?;
            let task = tokio::spawn(udp_front(front, upstream, rtt / 2));
            Ok(Relay { addr, task })
        }
    }

    /// The entry of a delay line: items pushed come out of the [`Delayed`] end `delay` later.
    struct DelayIn<T> {
        tx: mpsc::UnboundedSender<(Instant, T)>,
        delay: Duration,
    }

    // Not derived: that would ask for `T: Clone`.
    impl<T> Clone for DelayIn<T> {
        fn clone(&self) -> Self {
            DelayIn {
                tx: self.tx.clone(),
                delay: self.delay,
            }
        }
    }

    impl<T> DelayIn<T> {
        /// False once the other end is gone.
        fn push(&self, item: T) -> bool {
            self.tx.send((Instant::now() + self.delay, item)).is_ok()
        }
    }

    /// The exit of a delay line. The delay is the same for every item, so deadlines grow in
    /// order of arrival and one FIFO with one timer keeps order while letting each item wait
    /// only for its own deadline, never behind the delays of earlier ones: the line adds
    /// latency, not a bandwidth limit (it is unbounded, and the reader never waits on it).
    struct Delayed<T>(mpsc::UnboundedReceiver<(Instant, T)>);

    impl<T> Delayed<T> {
        /// The next item once it is due; `None` when the entry is gone and the line empty.
        async fn next(&mut self) -> Option<T> {
            let (due, item) = self.0.recv().await?;
            sleep_until_precisely(due).await;
            Some(item)
        }
    }

    /// How late tokio's timer may fire: its wheel ticks in whole milliseconds, and the driver
    /// parks in whole milliseconds too.
    const TIMER_SLACK: Duration = Duration::from_millis(2);

    /// Sleep until `due`, late by microseconds rather than by tokio's 1-2 ms: at 20 ms RTT those
    /// would add ~0.15 RTT per round trip and blur the handshake counts. The timer covers all but
    /// the last TIMER_SLACK; yielding covers the rest (CPU for at most 2 ms a hop, and only while
    /// something is due: the relays carry little traffic).
    async fn sleep_until_precisely(due: Instant) {
        if let Some(early) = due.checked_sub(TIMER_SLACK) {
            tokio::time::sleep_until(early).await;
        }
        while Instant::now() < due {
            tokio::task::yield_now().await;
        }
    }

    fn delay_line<T>(delay: Duration) -> (DelayIn<T>, Delayed<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (DelayIn { tx, delay }, Delayed(rx))
    }

    async fn tcp_accept(listener: TcpListener, upstream: SocketAddr, rtt: Duration) {
        let mut connections = JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            connections.spawn(tcp_connection(client, upstream, rtt));
            while connections.try_join_next().is_some() {}
        }
    }

    async fn tcp_connection(client: TcpStream, upstream: SocketAddr, rtt: Duration) {
        // On a network the client's first bytes (the TLS ClientHello) leave one RTT after its
        // SYN, once the SYN-ACK is back; loopback finished that handshake at once and a relay in
        // user space cannot delay it. So leave the client's bytes unread for one RTT: they then
        // reach the server 1.5 RTT after the connect, as they would over the network.
        sleep_until_precisely(Instant::now() + rtt).await;
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        // The relay must not add Nagle waits of its own; the endpoints set no-delay themselves.
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::join!(
            pipe(client_read, server_write, rtt / 2),
            pipe(server_read, client_write, rtt / 2),
        );
    }

    /// Copy `from` to `to`, each chunk `one_way` after it was read; EOF is passed on as a
    /// shutdown after the same delay.
    async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, one_way: Duration) {
        // `None` stands for the end of the stream.
        let (line, mut delayed) = delay_line::<Option<Bytes>>(one_way);
        let read = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let chunk = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => None,
                    Ok(n) => Some(Bytes::copy_from_slice(&buf[..n])),
                };
                let end = chunk.is_none();
                if !line.push(chunk) || end {
                    return;
                }
            }
        };
        let write = async move {
            while let Some(chunk) = delayed.next().await {
                let Some(bytes) = chunk else {
                    let _ = to.shutdown().await;
                    return;
                };
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        };
        tokio::join!(read, write);
    }

    /// Receives the clients' datagrams on `front` and forwards each, `one_way` later, from an
    /// upstream socket of that client's own: the server tells QUIC clients apart by address.
    async fn udp_front(front: Arc<UdpSocket>, upstream: SocketAddr, one_way: Duration) {
        // Owned here so that the flows' tasks stop with the relay.
        let mut tasks = JoinSet::new();
        // Answers to every client share one line: the delay is the same for all.
        let (back, mut delayed) = delay_line::<(SocketAddr, Bytes)>(one_way);
        let sender = front.clone();
        tasks.spawn(async move {
            while let Some((client, datagram)) = delayed.next().await {
                let _ = sender.send_to(&datagram, client).await;
            }
        });
        let mut flows: HashMap<SocketAddr, DelayIn<Bytes>> = HashMap::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok((n, client)) = front.recv_from(&mut buf).await {
            let datagram = Bytes::copy_from_slice(&buf[..n]);
            let flow = match flows.entry(client) {
                Entry::Occupied(flow) => flow.into_mut(),
                Entry::Vacant(slot) => {
                    match udp_flow(client, upstream, one_way, &back, &mut tasks).await {
                        Ok(flow) => slot.insert(flow),
                        // The datagram is lost, as on a network; QUIC retransmits.
                        Err(_) => continue,
                    }
                }
            };
            flow.push(datagram);
        }
    }

    /// An upstream socket for `client`: what the client sends goes out of it `one_way` later,
    /// and what comes back is queued on `back` for the client.
    async fn udp_flow(
        client: SocketAddr,
        upstream: SocketAddr,
        one_way: Duration,
        back: &DelayIn<(SocketAddr, Bytes)>,
        tasks: &mut JoinSet<()>,
    ) -> io::Result<DelayIn<Bytes>> {
        let socket = Arc::new(UdpSocket::bind(LOOPBACK).await?);
        socket.connect(upstream).await?;
        let (to_server, mut delayed) = delay_line::<Bytes>(one_way);
        let sender = socket.clone();
        tasks.spawn(async move {
            while let Some(datagram) = delayed.next().await {
                let _ = sender.send(&datagram).await;
            }
        });
        let back = back.clone();
        tasks.spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match socket.recv(&mut buf).await {
                    Ok(n) => {
                        if !back.push((client, Bytes::copy_from_slice(&buf[..n]))) {
                            return;
                        }
                    }
                    // An ICMP port-unreachable from an earlier datagram; the server may be back.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(_) => return,
                }
            }
        });
        Ok(to_server)
    }
}
