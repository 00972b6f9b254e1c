//! `causeway log oversight`: a department (or another oversight node) watches the watchers
//! ([`crate::oversight::watch`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::output::{print_json, OutputArg};
use crate::config::GatewayConfig;
use crate::oversight::watch::{watch_oversight_logs, WatchOptions};
use crate::text::visible;

/// `causeway log oversight`.
#[derive(Args)]
#[command(after_help = "Examples:
  causeway log oversight --config causeway-demo/civil-registry/causeway.toml
  causeway log oversight --config causeway-demo/tax-office/causeway.toml --node audit-office --output json

Exits 0 when every oversight log verified and none shows less than this member cosigned, 1
otherwise (a flagged log keeps its evidence: both signed checkpoints).")]
pub(crate) struct OversightLogArgs {
    /// This member's gateway config (its certificate, directory and ledger).
    #[arg(long, env = super::output::CONFIG_ENV)]
    config: PathBuf,
    /// Only this oversight node's log.
    #[arg(long)]
    node: Option<String>,
    /// Where the verified copies are kept between runs (default: `oversight-logs` beside the
    /// ledger directory). Keeping it is what lets a later run notice a rewritten or truncated log.
    #[arg(long)]
    replica: Option<PathBuf>,
    /// Every oversight query, not only those whose results touched this department.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    output: OutputArg,
}

pub(crate) async fn run(args: OversightLogArgs) -> Result<ExitCode> {
    let config = GatewayConfig::load(&args.config)?;
    let options = WatchOptions {
        node: args.node,
        replica: args.replica,
        all: args.all,
    };
    let (ok, report) = watch_oversight_logs(&config, &options).await?;
    let nodes = report["oversight_logs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if args.output.is_json() {
        print_json(&report)?;
    } else {
        for n in &nodes {
            let s = |k: &str| visible(n[k].as_str().unwrap_or(""));
            match n["status"].as_str() {
                Some("verified") => println!(
                    "{}: verified, {} entries, cosigned by {} known witness(es)",
                    s("node"),
                    n["size"],
                    n["witnesses"]
                ),
                _ => println!(
                    "{}: {}: {}",
                    s("node"),
                    s("status").to_uppercase(),
                    s("problem")
                ),
            }
            let queries = n["queries"].as_array().cloned().unwrap_or_default();
            println!(
                "  {} oversight quer{} {}",
                queries.len(),
                if queries.len() == 1 { "y" } else { "ies" },
                if options.all {
                    "in all"
                } else {
                    "touched this department's exchanges"
                }
            );
            for q in queries {
                let s = |k: &str| visible(q[k].as_str().unwrap_or("-"));
                println!(
                    "  #{:<6} {}  {:<24} {:<16} {:<15} {} result(s)  filter {}",
                    q["index"],
                    s("time"),
                    s("asked_by"),
                    s("role"),
                    s("query"),
                    q["results"],
                    visible(&q["filter"].to_string())
                );
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
