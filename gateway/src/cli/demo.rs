//! `causeway demo`: a whole federation on this machine, with traffic, ready to explore.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::GatewayConfig;
use crate::gateway::Gateway;
use crate::layout::{self, Layout, DEMO_DEPARTMENTS, DEMO_FEDERATION};
use crate::transport::app_client;

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Where to lay the federation out (reused, and its gateways restarted, if it already holds one).
    #[arg(long, default_value = "causeway-demo")]
    dir: PathBuf,
    /// Send the demo traffic, print what happened, shut down cleanly and exit.
    #[arg(long)]
    once: bool,
    /// Where the civil registry keeps its residents: the demo's SQLite file, or PostgreSQL.
    #[arg(long, value_enum, default_value = "sqlite")]
    db: DemoDatabase,
    /// PostgreSQL for `--db postgres`; the database is created if missing and its `residents` table replaced.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/causeway_demo"
    )]
    pg_url: String,
    /// Synthetic people per department database.
    #[arg(long, default_value_t = 10_000)]
    people: u32,
    /// Transport between gateways (both are served; QUIC falls back to HTTPS).
    #[arg(long, value_enum, default_value_t = DemoTransport::Https)]
    transport: DemoTransport,
}

/// `--db`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DemoDatabase {
    Sqlite,
    Postgres,
}

/// `--transport`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum DemoTransport {
    /// HTTP/2 over mutual TLS.
    Https,
    /// QUIC with mutual TLS (ALPN causeway/1).
    Quic,
}

impl From<DemoTransport> for crate::transport::Transport {
    fn from(t: DemoTransport) -> Self {
        match t {
            DemoTransport::Https => crate::transport::Transport::Https,
            DemoTransport::Quic => crate::transport::Transport::Quic,
        }
    }
}

/// The demo's traffic: (consumer, provider, dataset, params, purpose, legal basis).
fn traffic() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    serde_json::Value,
    &'static str,
    &'static str,
)> {
    vec![
        (
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
            "social-welfare-act:s12",
        ),
        (
            "tax-office",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "tax-assessment",
            "taxation-act:s5",
        ),
        (
            "social-welfare",
            "tax-office",
            "income",
            json!({"national_id": "D000042", "year": 2024}),
            "benefit-eligibility",
            "social-welfare-act:s12",
        ),
        (
            "tax-office",
            "civil-registry",
            "residents",
            json!({"national_id": "D000043"}),
            "benefit-eligibility",
            "social-welfare-act:s12",
        ),
        (
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000044"}),
            "marketing",
            "none",
        ),
        (
            "civil-registry",
            "social-welfare",
            "benefits",
            json!({"national_id": "D000042"}),
            "statistics",
            "statistics-act:s3",
        ),
    ]
}

pub(crate) async fn run(args: DemoArgs) -> Result<ExitCode> {
    let layout = if args.dir.join("federation.toml").exists() {
        println!("Restarting the federation in {}", args.dir.display());
        let layout = layout::open(&args.dir)?;
        layout::set_preferred_transport(&layout, args.transport.into())?;
        layout
    } else {
        println!(
            "Creating a federation of {} departments in {} ...",
            DEMO_DEPARTMENTS.len(),
            args.dir.display()
        );
        let layout = layout::create_with(
            &args.dir,
            DEMO_FEDERATION,
            DEMO_DEPARTMENTS,
            args.transport.into(),
        )?;
        layout::generate_demo_data(&layout, args.people)?;
        if args.db == DemoDatabase::Postgres {
            layout::move_registry_to_postgres(&layout, &args.pg_url).await?;
            println!(
                "  civil-registry keeps its residents in PostgreSQL ({})",
                args.pg_url
            );
        }
        layout
    };
    let mut gateways = Vec::new();
    for dept in &layout.departments {
        let config = GatewayConfig::load(&dept.config)?;
        let gateway = Gateway::start(&config)
            .await
            .with_context(|| format!("starting {}", dept.id))?;
        let quic = gateway
            .quic_addr
            .map(|a| format!("  quic://{a}"))
            .unwrap_or_default();
        let scheme = if config.client.app_ca.is_some() {
            "https"
        } else {
            "http"
        };
        println!(
            "  {:<15} client {scheme}://{}  peer https://{}{quic}",
            dept.id, gateway.client_addr, gateway.peer_addr
        );
        gateways.push(gateway);
    }
    println!(
        "\nTraffic (each request goes application -> its gateway -> provider gateway over mTLS):\n"
    );
    let result = send_traffic(&layout).await;
    let (mut https, mut quic, mut fallbacks) = (0, 0, 0);
    for gateway in &gateways {
        let (h, q, f) = gateway.transport_stats().snapshot();
        (https, quic, fallbacks) = (https + h, quic + q, fallbacks + f);
    }
    println!(
        "\nGateway to gateway: {quic} request(s) over QUIC, {https} over HTTPS/2 ({fallbacks} QUIC fallback(s)); preferred: {}",
        crate::transport::Transport::from(args.transport)
    );
    if let Some(registry) = layout
        .dept("civil-registry")
        .and_then(|d| gateways.iter().find(|g| g.department() == &d.id))
    {
        if let Err(e) = write_evidence(&layout, registry).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not write the evidence example"
            );
        }
    }
    match start_oversight(&layout, &gateways).await {
        Ok(nodes) => {
            for (i, node) in nodes.into_iter().enumerate() {
                gateways.insert(i, node);
            }
        }
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "could not start the oversight nodes"
        ),
    }
    print_tour(&layout);
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "demo traffic failed");
    }
    if !args.once {
        println!("\nServing. Press Ctrl-C to stop (ledgers are committed on the way out).");
        super::wait_for_signal().await;
    }
    for gateway in gateways {
        gateway.shutdown().await;
    }
    println!("All gateways stopped cleanly.");
    Ok(ExitCode::SUCCESS)
}

/// Start the oversight nodes (laid out on first run: two centres, each pulling every department
/// and the other's log), have each pull and verify every log once, and say where their
/// dashboards are. Laying a node out publishes a directory that lists it: the running
/// `departments` apply it first, as an operator waits for them to, so that they answer and
/// witness the nodes from the start.
async fn start_oversight(layout: &Layout, departments: &[Gateway]) -> Result<Vec<Gateway>> {
    let mut laid_out = Vec::new();
    for (id, _) in layout::DEMO_OVERSIGHT_NODES {
        laid_out.push(match layout::open_oversight_node(layout, id)? {
            Some(o) => o,
            None => layout::create_oversight(layout, id)?,
        });
    }
    for gateway in departments {
        gateway
            .reload_directory()
            .await
            .with_context(|| format!("{} applying the directory", gateway.department()))?;
    }
    let mut nodes = Vec::new();
    for oversight in &laid_out {
        if !oversight.dir.join(layout::DEMO_STAFF_PASSWORDS).exists() {
            layout::create_demo_staff(oversight)?;
        }
        let config = GatewayConfig::load(&oversight.config)?;
        let gateway = Gateway::start(&config)
            .await
            .with_context(|| format!("starting oversight node {}", config.department))?;
        nodes.push((gateway, oversight));
    }
    witnessed(departments.iter().chain(nodes.iter().map(|(g, _)| g))).await;
    for (gateway, oversight) in &nodes {
        let node = gateway
            .oversight()
            .context("an oversight config starts an oversight node")?;
        let reports = node.pull_all(std::sync::Arc::new(|_: &str, _, _| {})).await;
        println!(
            "\nOversight node {} pulled and verified every department's log and the other centre's:",
            node.id()
        );
        for (dept, report) in reports {
            match report {
                Ok(r) => println!(
                    "  {dept:<15} {:>4} entries verified, checkpoint cosigned by {} witness(es){}",
                    r.to,
                    r.witnesses,
                    r.flag
                        .map(|f| format!("  FLAGGED: {}", f.message))
                        .unwrap_or_default()
                ),
                Err(e) => println!("  {dept:<15} not pulled: {e}"),
            }
        }
        println!(
            "  cross-check findings: {}\n  dashboard: http://{}/  (loopback only; sign in as viewer, investigator, officer or admin:\n    their passwords are in {}, readable by you only)\n  cargo run --release -- audit subject --id D000042 --config {} --staff officer",
            node.findings().len(),
            gateway.client_addr,
            oversight.dir.join(layout::DEMO_STAFF_PASSWORDS).display(),
            oversight.config.display()
        );
    }
    Ok(nodes.into_iter().map(|(g, _)| g).collect())
}

/// Wait until the witnesses cosigned every node's latest checkpoint (a few seconds at most), so
/// that the pulls that follow show witnessed logs; go on regardless after 10 s.
async fn witnessed<'a>(nodes: impl Iterator<Item = &'a Gateway>) {
    let ledgers: Vec<_> = nodes.map(|g| g.ledger().clone()).collect();
    let cosigned = || {
        ledgers.iter().all(|l| {
            let size = l.checkpoint().0;
            l.cosigned_checkpoint().is_some_and(|(s, _)| s == size)
        })
    };
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cosigned() && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn send_traffic(layout: &Layout) -> Result<()> {
    for (consumer, provider, dataset, params, purpose, legal_basis) in traffic() {
        let client = layout.app_client(consumer, crate::layout::DEMO_APP)?;
        let token = layout.officer_token(consumer, "demo-officer-1", &[])?;
        let body = app_client::request_body(provider, dataset, params, purpose, legal_basis, "");
        let (status, answer) = client
            .post(
                crate::transport::paths::REQUESTS,
                &[("authorization", &app_client::bearer(&token))],
                body,
            )
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        let outcome = if status == 200 {
            let fields = answer["fields"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            format!("ALLOWED  fields {fields}")
        } else {
            format!(
                "{status} {}",
                answer["error"]["code"].as_str().unwrap_or("error")
            )
        };
        println!(
            "  {consumer:>14} -> {provider:<15} {dataset:<10} {purpose:<20} {outcome:<45} provider log #{}, consumer log #{}",
            answer["receipt"]["index"],
            answer["consumer_log_index"]
        );
    }
    Ok(())
}

/// Wait (briefly) for witnesses to cosign the civil registry's log, then export entry 1 as an
/// offline-verifiable evidence file and verify it the way anyone could.
async fn write_evidence(layout: &Layout, registry: &Gateway) -> Result<()> {
    let ledger = registry.ledger();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline
        && ledger.cosigned_checkpoint().map(|c| c.0) != Some(ledger.checkpoint().0)
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let proof = ledger.evidence(1)?;
    let dir = layout.dir.join("evidence");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("civil-registry-1.tlog-proof");
    std::fs::write(&path, proof.to_text())?;
    let directory = crate::directory::Directory::load(&layout.directory)?;
    let log = directory
        .department(registry.department())
        .context("civil-registry is listed")?;
    let verified = causeway_ledger::tlog_proof::verify_tlog_proof(
        &proof,
        &log.verifier,
        &directory.witnesses(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "\nEvidence: {} proves entry 1 of the civil registry's log (size {}), cosigned by {} witness(es).\n  verify it offline: cargo run --release -- log verify-proof {} --directory {}",
        path.display(),
        verified.checkpoint.size,
        verified.cosignatures.len(),
        path.display(),
        layout.directory.display()
    );
    Ok(())
}

fn print_tour(layout: &Layout) {
    let welfare = layout.dept("social-welfare");
    let dir = layout.dir.display();
    println!("\nTry it yourself:");
    if let Some(w) = welfare {
        println!(
            "  TOKEN=$(cargo run -q --release -- tokens issue --config {dir}/social-welfare/causeway.toml --officer me)\n  curl -s https://{}/v1/requests --cacert {dir}/certs/ca.pem \\\n    --cert {dir}/certs/social-welfare-app-case-desk.pem --key {dir}/certs/social-welfare-app-case-desk.key \\\n    -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n    -d '{{\"provider\":\"civil-registry\",\"dataset\":\"residents\",\"params\":{{\"national_id\":\"D000007\"}},\"purpose\":\"benefit-eligibility\",\"legal_basis\":\"social-welfare-act:s12\"}}'",
            w.client
        );
    }
    println!("  cargo run --release -- request --config {dir}/social-welfare/causeway.toml --provider civil-registry \\\n    --dataset residents --param national_id=D000007 --purpose benefit-eligibility --legal-basis 'social-welfare-act:s12' --officer me");
    println!("  cargo run --release -- log show --ledger {dir}/civil-registry/ledger");
    println!("  cargo run --release -- log verify --ledger {dir}/civil-registry/ledger --directory {dir}/federation.toml");
    println!("  cargo run --release -- policy check {dir}/civil-registry/policies");
}
