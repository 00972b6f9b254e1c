//! A flood of sign-in attempts against an oversight node, as anyone who can reach its dashboard
//! could send: each attempt is an Argon2id verification (19 MiB and tens of milliseconds of a
//! core), so unbounded they take the node's memory and CPU. The node checks a few passwords at a
//! time and queues the rest; its peak memory stays bounded and staff can still sign in afterwards.
//! A real `causeway serve` process; its peak resident memory read from /proc.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use causeway::layout::{self, DEMO_DEPARTMENTS, DEMO_OVERSIGHT};
use causeway::oversight::staff::Role;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use support::{serve, wait_ready, Served};

const PASSWORD: &str = "correct horse battery staple";
const ATTEMPTS: usize = 64;
/// One Argon2id verification's memory (the argon2 crate's default m = 19 MiB).
const ARGON2_MIB: u64 = 19;

/// POST /api/login as `name`: the status.
async fn sign_in(addr: SocketAddr, name: String, password: &'static str) -> u16 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = serde_json::json!({"name": name, "password": password}).to_string();
    let request = http::Request::post("/api/login")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

/// The process's peak resident memory (VmHWM), in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_waits_its_turn_instead_of_taking_the_nodes_memory() {
    let root = tempfile::tempdir().unwrap();
    let fed = layout::create(root.path(), "demo", DEMO_DEPARTMENTS).unwrap();
    let oversight = layout::create_oversight(&fed, DEMO_OVERSIGHT).unwrap();
    layout::write_staff(&oversight.config, &[("viewer", &[Role::Viewer], PASSWORD)]).unwrap();
    let node = Served(serve(&oversight.config));
    wait_ready(oversight.dashboard).await;
    let addr = oversight.dashboard;

    // One verification's worth is the baseline.
    assert_eq!(sign_in(addr, "viewer".into(), PASSWORD).await, 200);
    let before = peak_mib(node.0.id());

    // Attempts under names that are no account (each is checked against a dummy hash, at the
    // same cost, so that the answer does not tell whether a name exists), all at once.
    let flood: Vec<_> = (0..ATTEMPTS)
        .map(|i| tokio::spawn(sign_in(addr, format!("guess-{i}"), "wrong password!")))
        .collect();
    for attempt in flood {
        let status = attempt.await.unwrap();
        assert!(status == 401 || status == 503, "{status}");
    }
    let after = peak_mib(node.0.id());
    let grown = after.saturating_sub(before);
    eprintln!(
        "{ATTEMPTS} concurrent sign-in attempts: peak resident memory {before} MiB -> {after} MiB"
    );
    // The node checks one password per core at a time (at most 8); unbounded, 64 attempts at
    // once took 1,202 MiB more on a 2-core machine.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(8)) as u64;
    assert!(
        grown < (cores + 4) * ARGON2_MIB,
        "{ATTEMPTS} concurrent attempts grew the node's peak memory by {grown} MiB: verifications are not bounded"
    );

    // Staff still sign in once the flood is over.
    assert_eq!(sign_in(addr, "viewer".into(), PASSWORD).await, 200);
    node.stop().await;
}
