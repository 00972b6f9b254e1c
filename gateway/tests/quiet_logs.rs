//! Nothing personal in logs or traces at any level (docs/OPERATIONS.md, "Logs").
//!
//! Three real `causeway serve` processes run with `RUST_LOG=trace`, the civil registry's residents
//! in PostgreSQL, and export spans and metrics to a collector in this test. After real exchanges
//! through their client APIs (allowed, denied, a forged token), neither what they wrote to stderr
//! nor what reached the collector holds a national id that was asked for, a released value, the
//! officer or a token. With `CAUSEWAY_UNSAFE_DEBUG_LOGS=1` the PostgreSQL driver's parameter lines
//! do appear (so the caps are what hides them) and the collector still receives nothing personal.

#![cfg(unix)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway::layout::{self, Layout, DEMO_APP, DEMO_DEPARTMENTS};
use causeway::transport::app_client::{bearer, AppClient};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::Served;

/// The switch under test, spelled as an operator would type it.
const UNSAFE_SWITCH: &str = "CAUSEWAY_UNSAFE_DEBUG_LOGS";
/// The officer every application acts for; an id no log line may carry.
const OFFICER: &str = "officer-4471";
/// Longest wait for a gateway to come up or to stop.
const PATIENCE: Duration = Duration::from_secs(60);

fn serve(config: &Path, log: &Path, collector: &str, unsafe_debug: bool) -> Served {
    let file = std::fs::File::create(log).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_causeway"));
    command
        .args(["serve", "--config", config.to_str().expect("UTF-8 path")])
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove(UNSAFE_SWITCH)
        .stdout(Stdio::from(file.try_clone().expect("log file")))
        .stderr(Stdio::from(file));
    if unsafe_debug {
        command.env(UNSAFE_SWITCH, "1");
    }
    Served(command.spawn().expect("the causeway binary starts"))
}

async fn wait_ready(admin: SocketAddr) {
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(admin).await.is_err() {
        assert!(Instant::now() < deadline, "a gateway did not come up");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An OTLP/HTTP collector on 127.0.0.1:0 that keeps every body (spans and metrics, protobuf) as it
/// came: strings travel in protobuf as plain UTF-8, so a leak shows as a substring.
async fn collector() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("collector binds");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let body = request.into_body().collect().await?.to_bytes();
                            kept.lock().unwrap().push(body);
                            Ok::<_, hyper::Error>(
                                http::Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::new()))
                                    .expect("response builds"),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, bodies)
}

/// Department `dept`'s case-desk application acting for [`OFFICER`], with the token it sends.
fn case_desk(layout: &Layout, dept: &str) -> (AppClient, String) {
    let creds = layout.app_credentials(dept, DEMO_APP);
    let addr = layout.dept(dept).expect("department").client;
    let client = AppClient::mutual_tls(addr, &creds.ca, &creds.cert, &creds.key).expect("client");
    let token = layout
        .officer_token(dept, OFFICER, &[])
        .expect("the demo identity provider signs");
    (client, token)
}

async fn ask(
    desk: &(AppClient, String),
    provider: &str,
    dataset: &str,
    params: Value,
    purpose: &str,
) -> (u16, Value) {
    let body = json!({"provider": provider, "dataset": dataset, "params": params,
        "purpose": purpose, "legal_basis": "test-act:s1", "case": "C-1"});
    let authorization = bearer(&desk.1);
    let (status, answer) = desk
        .0
        .post(
            causeway::transport::paths::REQUESTS,
            &[("authorization", &authorization)],
            serde_json::to_vec(&body).expect("JSON"),
        )
        .await
        .expect("the client API answers");
    let answer = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    (status, answer)
}

/// What one federation run left behind.
struct Run {
    /// Everything the three gateways wrote to stdout and stderr.
    logs: String,
    /// Every OTLP body the collector received.
    exported: Vec<Bytes>,
    /// What no log line and no exported span may contain.
    personal: Vec<String>,
    /// How many of them are values the allowed exchange released.
    released: usize,
    /// `(what, status, answer)` of each exchange, checked once the federation is torn down.
    statuses: Vec<(&'static str, u16, Value)>,
}

async fn run_federation(unsafe_debug: bool) -> Run {
    let root = tempfile::tempdir().expect("tempdir");
    let layout = layout::create(root.path(), "demo", DEMO_DEPARTMENTS).expect("layout");
    layout::generate_demo_data(&layout, 200).expect("demo data");
    let database = format!(
        "causeway_quiet_logs_{}_{}",
        std::process::id(),
        if unsafe_debug { "unsafe" } else { "capped" }
    );
    layout::move_registry_to_postgres(
        &layout,
        &format!("postgres://postgres@127.0.0.1:5432/{database}"),
    )
    .await
    .expect("PostgreSQL runs on 127.0.0.1:5432 with trust auth");
    let (collector, bodies) = collector().await;
    let mut served = Vec::new();
    for dept in &layout.departments {
        let log = root.path().join(format!("{}.log", dept.id));
        served.push(serve(&dept.config, &log, &collector, unsafe_debug));
    }
    for dept in &layout.departments {
        wait_ready(dept.admin).await;
    }

    let welfare = case_desk(&layout, "social-welfare");
    let tax = case_desk(&layout, "tax-office");
    let registry = case_desk(&layout, "civil-registry");
    let mut personal: Vec<String> = [
        "D000042", "D000043", "D000044", "D000045", "D000046", "D000047",
    ]
    .map(String::from)
    .into();
    personal.push(OFFICER.to_owned());
    let mut statuses = Vec::new();
    // Allowed, from PostgreSQL: the released values are personal too.
    let (status, answer) = ask(
        &welfare,
        "civil-registry",
        "residents",
        json!({"national_id": "D000042"}),
        "benefit-eligibility",
    )
    .await;
    let before = personal.len();
    for row in answer["rows"].as_array().into_iter().flatten() {
        for value in row.as_array().into_iter().flatten() {
            // Name, birth date, address; shorter values could match a log line by chance.
            if let Some(text) = value.as_str().filter(|t| t.len() >= 8) {
                personal.push(text.to_owned());
            }
        }
    }
    let released = personal.len() - before;
    statuses.push(("allowed from PostgreSQL", status, answer));
    let (status, answer) = ask(
        &tax,
        "civil-registry",
        "residents",
        json!({"national_id": "D000043"}),
        "tax-assessment",
    )
    .await;
    statuses.push(("allowed, fewer fields", status, answer));
    // Denied by the provider's policy, after the consumer sent it.
    let (status, answer) = ask(
        &welfare,
        "civil-registry",
        "residents",
        json!({"national_id": "D000044"}),
        "marketing",
    )
    .await;
    statuses.push(("denied", status, answer));
    // Allowed, from SQLite at another provider.
    let (status, answer) = ask(
        &welfare,
        "tax-office",
        "income",
        json!({"national_id": "D000045", "year": 2024}),
        "benefit-eligibility",
    )
    .await;
    statuses.push(("allowed from SQLite", status, answer));
    // Refused by a provider with no grant at all.
    let (status, answer) = ask(
        &registry,
        "social-welfare",
        "benefits",
        json!({"national_id": "D000047"}),
        "statistics",
    )
    .await;
    statuses.push(("no grant", status, answer));
    // A forged token: its signature's last characters changed.
    let mut forged = welfare.1.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 2.., &format!("{last}{last}"));
    let (status, answer) = ask(
        &(welfare.0.clone(), forged.clone()),
        "civil-registry",
        "residents",
        json!({"national_id": "D000046"}),
        "benefit-eligibility",
    )
    .await;
    statuses.push(("forged token", status, answer));
    for token in [&welfare.1, &tax.1, &registry.1, &forged] {
        personal.push(token.clone());
        // The claims alone name the officer.
        personal.push(token.split('.').nth(1).expect("a JWT").to_owned());
    }

    for gateway in &served {
        gateway.terminate();
    }
    for gateway in served {
        gateway.exited().await;
    }
    // Drop the scratch database whatever happened.
    if let Ok((client, connection)) = tokio_postgres::connect(
        "host=127.0.0.1 user=postgres dbname=postgres",
        tokio_postgres::NoTls,
    )
    .await
    {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .await;
    }
    let mut logs = String::new();
    for dept in &layout.departments {
        let log = root.path().join(format!("{}.log", dept.id));
        logs.push_str(&std::fs::read_to_string(&log).expect("log"));
    }
    let exported = bodies.lock().unwrap().clone();
    Run {
        logs,
        exported,
        personal,
        released,
        statuses,
    }
}

impl Run {
    fn check_statuses(&self) {
        let expected = [200, 200, 403, 200, 403, 401];
        assert_eq!(self.statuses.len(), expected.len());
        for ((what, status, answer), want) in self.statuses.iter().zip(expected) {
            assert_eq!(*status, want, "{what}: {answer}");
        }
        assert!(
            self.released > 0,
            "the allowed exchange released values: {:?}",
            self.statuses[0]
        );
    }

    /// The log lines holding `needle`, for a failure message.
    fn lines_with(&self, needle: &str) -> String {
        self.logs
            .lines()
            .filter(|l| l.contains(needle))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn assert_nothing_personal_exported(&self) {
        let spans: Vec<&Bytes> = self
            .exported
            .iter()
            .filter(|b| contains(b, b"peer_request"))
            .collect();
        assert!(!spans.is_empty(), "the gateways exported their spans");
        for secret in &self.personal {
            assert!(
                !self.exported.iter().any(|b| contains(b, secret.as_bytes())),
                "exported over OTLP: {secret}"
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_personal_reaches_logs_or_traces_at_trace_level() {
    let run = run_federation(false).await;
    run.check_statuses();
    // RUST_LOG=trace was in force: Causeway's own debug lines are there.
    assert!(
        run.logs.contains("DEBUG") && run.logs.contains("fetched"),
        "{}",
        run.logs
    );
    for secret in &run.personal {
        assert!(
            !run.logs.contains(secret.as_str()),
            "{secret} is in the logs:\n{}",
            run.lines_with(secret)
        );
    }
    assert!(!run.logs.contains(UNSAFE_SWITCH), "no unsafe warning");
    run.assert_nothing_personal_exported();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsafe_switch_lifts_the_caps_on_log_lines_only() {
    let run = run_federation(true).await;
    run.check_statuses();
    assert!(
        run.logs
            .lines()
            .any(|l| l.contains("WARN") && l.contains(UNSAFE_SWITCH)),
        "a warning at start names the switch:\n{}",
        run.lines_with("WARN")
    );
    // The driver's own line, with the parameter: what the caps hide.
    assert!(
        run.logs
            .lines()
            .any(|l| l.contains("tokio_postgres") && l.contains("D000042")),
        "the PostgreSQL driver logs its parameters at debug:\n{}",
        run.lines_with("tokio_postgres")
    );
    run.assert_nothing_personal_exported();
}
