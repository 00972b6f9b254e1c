//! `causeway request`: call the local gateway's client API from the shell.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  causeway request --config causeway-demo/social-welfare/causeway.toml \\\n    --provider civil-registry --dataset residents --param national_id=D000042 \\\n    --purpose benefit-eligibility --legal-basis 'Social Welfare Act s.12' --officer officer-17"
)]
pub(crate) struct RequestArgs {
    /// The asking gateway's config (its [client] listen address is used).
    #[arg(long, required_unless_present = "gateway")]
    config: Option<PathBuf>,
    /// Or the client API address directly, like 127.0.0.1:7001.
    #[arg(long)]
    gateway: Option<SocketAddr>,
    /// Department that holds the data.
    #[arg(long)]
    provider: String,
    /// Dataset.
    #[arg(long)]
    dataset: String,
    /// Parameter, name=value (repeatable); integers are sent as numbers.
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, serde_json::Value)>,
    /// Purpose.
    #[arg(long)]
    purpose: String,
    /// Legal basis.
    #[arg(long)]
    legal_basis: String,
    /// Case reference.
    #[arg(long, default_value = "")]
    case: String,
    /// Officer asking.
    #[arg(long)]
    officer: String,
}

fn parse_param(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s.split_once('=').ok_or("expected name=value")?;
    let value = v
        .parse::<i64>()
        .map_or_else(|_| serde_json::json!(v), |n| serde_json::json!(n));
    Ok((k.to_owned(), value))
}

pub(crate) async fn run(args: RequestArgs) -> Result<ExitCode> {
    let addr = match (args.gateway, &args.config) {
        (Some(addr), _) => addr,
        (None, Some(config)) => crate::config::GatewayConfig::load(config)?.client.listen,
        (None, None) => bail!("pass --config FILE or --gateway ADDR"),
    };
    let body = serde_json::json!({
        "provider": args.provider,
        "dataset": args.dataset,
        "params": args.params.into_iter().collect::<serde_json::Map<_, _>>(),
        "purpose": args.purpose,
        "legal_basis": args.legal_basis,
        "case": args.case,
        "officer": args.officer,
    });
    let (status, answer) =
        crate::transport::client::post_json(addr, crate::transport::paths::REQUESTS, &body).await?;
    let pretty = serde_json::from_slice::<serde_json::Value>(&answer)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or_else(|_| String::from_utf8_lossy(&answer).into_owned());
    println!("{status}\n{pretty}");
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
