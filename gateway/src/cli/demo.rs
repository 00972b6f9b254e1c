//! `causeway demo`: a whole federation on this machine, with traffic, ready to explore.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::GatewayConfig;
use crate::federation::{self, Layout, DEMO_DEPARTMENTS, DEMO_FEDERATION};
use crate::gateway::Gateway;

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Where to lay the federation out (reused, and its gateways restarted, if it already holds one).
    #[arg(long, default_value = "causeway-demo")]
    dir: PathBuf,
    /// Send the demo traffic, print what happened, shut down cleanly and exit.
    #[arg(long)]
    once: bool,
    /// Synthetic people per department database.
    #[arg(long, default_value_t = 10_000)]
    people: u32,
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
            "Social Welfare Act s.12",
        ),
        (
            "tax-office",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "tax-assessment",
            "Taxation Act s.5",
        ),
        (
            "social-welfare",
            "tax-office",
            "income",
            json!({"national_id": "D000042", "year": 2024}),
            "benefit-eligibility",
            "Social Welfare Act s.12",
        ),
        (
            "tax-office",
            "civil-registry",
            "residents",
            json!({"national_id": "D000043"}),
            "benefit-eligibility",
            "Social Welfare Act s.12",
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
            "Statistics Act s.3",
        ),
    ]
}

pub(crate) async fn run(args: DemoArgs) -> Result<ExitCode> {
    let layout = if args.dir.join("federation.toml").exists() {
        println!("Restarting the federation in {}", args.dir.display());
        federation::open(&args.dir)?
    } else {
        println!(
            "Creating a federation of {} departments in {} ...",
            DEMO_DEPARTMENTS.len(),
            args.dir.display()
        );
        let layout = federation::create(&args.dir, DEMO_FEDERATION, DEMO_DEPARTMENTS)?;
        federation::generate_demo_data(&layout, args.people)?;
        layout
    };
    let mut gateways = Vec::new();
    for dept in &layout.departments {
        let config = GatewayConfig::load(&dept.config)?;
        let gateway = Gateway::start(&config)
            .await
            .with_context(|| format!("starting {}", dept.id))?;
        println!(
            "  {:<15} client http://{}  peer https://{}",
            dept.id, gateway.client_addr, gateway.peer_addr
        );
        gateways.push(gateway);
    }
    println!(
        "\nTraffic (each request goes application -> its gateway -> provider gateway over mTLS):\n"
    );
    let result = send_traffic(&layout).await;
    print_tour(&layout);
    if let Err(e) = result {
        eprintln!("demo traffic failed: {e:#}");
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

async fn send_traffic(layout: &Layout) -> Result<()> {
    for (consumer, provider, dataset, params, purpose, legal_basis) in traffic() {
        let dept = layout.dept(consumer).context("demo department missing")?;
        let body = json!({
            "provider": provider, "dataset": dataset, "params": params,
            "purpose": purpose, "legal_basis": legal_basis, "case": "", "officer": "demo-officer-1",
        });
        let (status, answer) =
            super::request::post_json(dept.client, crate::transport::paths::REQUESTS, &body)
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

fn print_tour(layout: &Layout) {
    let welfare = layout.dept("social-welfare");
    let dir = layout.dir.display();
    println!("\nTry it yourself:");
    if let Some(w) = welfare {
        println!(
            "  curl -s http://{}/v1/requests -H 'content-type: application/json' \\\n    -d '{{\"provider\":\"civil-registry\",\"dataset\":\"residents\",\"params\":{{\"national_id\":\"D000007\"}},\"purpose\":\"benefit-eligibility\",\"legal_basis\":\"Social Welfare Act s.12\",\"officer\":\"me\"}}'",
            w.client
        );
    }
    println!("  cargo run --release -- request --config {dir}/social-welfare/causeway.toml --provider civil-registry \\\n    --dataset residents --param national_id=D000007 --purpose benefit-eligibility --legal-basis 'Social Welfare Act s.12' --officer me");
    println!("  cargo run --release -- log show --ledger {dir}/civil-registry/ledger");
    println!("  cargo run --release -- log verify --ledger {dir}/civil-registry/ledger --directory {dir}/federation.toml");
    println!("  cargo run --release -- policy check {dir}/civil-registry/policies");
}
