//! `causeway request`: call the local gateway's client API from the shell.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::config::GatewayConfig;
use crate::transport::app_client::{bearer, request_body, AppClient};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  causeway request --config causeway-demo/social-welfare/causeway.toml \\\n    --provider civil-registry --dataset residents --param national_id=D000042 \\\n    --purpose benefit-eligibility --legal-basis 'social-welfare-act:s12' --officer officer-17\n  causeway request --config /etc/causeway/causeway.toml --cert app.pem --key app.key --token \"$TOKEN\" ...\n\nWith --config, the request goes over mutual TLS with the application's certificate (--cert and\n--key; in a demo layout the case-desk application's by default) and the officer's token (--token,\nor --officer to get one from the demo identity provider). Without a token the application acts on\nits own, which only applications registered with officers = \"none\" may."
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
    /// Legal basis: the code a grant lists (for example social-welfare-act:s12), never free text.
    #[arg(long)]
    legal_basis: String,
    /// Case reference: at most 64 letters, digits and . _ : / - (for example SW-2025-0001), never a
    /// description.
    #[arg(long, default_value = "")]
    case: String,
    /// The officer's access token from the department's identity provider.
    #[arg(long, conflicts_with = "officer")]
    token: Option<String>,
    /// Get a token for this officer from the demo identity provider (demo layouts only).
    #[arg(long)]
    officer: Option<String>,
    /// The application's certificate (PEM).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The application's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

fn parse_param(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s.split_once('=').ok_or("expected name=value")?;
    let value = v
        .parse::<i64>()
        .map_or_else(|_| serde_json::json!(v), |n| serde_json::json!(n));
    Ok((k.to_owned(), value))
}

pub(crate) async fn run(args: RequestArgs) -> Result<ExitCode> {
    let client = match (args.gateway, &args.config) {
        (Some(addr), _) => AppClient::plaintext(addr),
        (None, Some(config_path)) => {
            let config = GatewayConfig::load(config_path)?;
            let addr = config.client.listen;
            match (&config.client.app_ca, &args.cert, &args.key) {
                (None, ..) => AppClient::plaintext(addr),
                (Some(_), Some(cert), Some(key)) => {
                    AppClient::mutual_tls(addr, &config.identity.ca, cert, key)?
                }
                (Some(_), ..) => {
                    let certs = config.identity.ca.parent().unwrap_or(Path::new("."));
                    let stem = format!("{}-app-{}", config.department, crate::layout::DEMO_APP);
                    let (cert, key) = (
                        certs.join(format!("{stem}.pem")),
                        certs.join(format!("{stem}.key")),
                    );
                    if !cert.exists() {
                        bail!("the client API needs the application's certificate: pass --cert and --key (issued with `causeway certs issue-app`)");
                    }
                    AppClient::mutual_tls(addr, &config.identity.ca, &cert, &key)?
                }
            }
        }
        (None, None) => bail!("pass --config FILE or --gateway ADDR"),
    };
    let token = match (&args.token, &args.officer, &args.config) {
        (Some(token), ..) => Some(token.clone()),
        (None, Some(officer), Some(config)) => {
            Some(super::tokens::demo_token(config, officer, &[], 900)?)
        }
        (None, Some(_), None) => bail!("--officer gets a token from the demo identity provider a config names: pass --config, or --token"),
        (None, None, _) => None,
    };
    let body = request_body(
        &args.provider,
        &args.dataset,
        serde_json::Value::Object(args.params.into_iter().collect()),
        &args.purpose,
        &args.legal_basis,
        &args.case,
    );
    let authorization = token.as_deref().map(bearer);
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    let (status, answer) = client
        .post(crate::transport::paths::REQUESTS, &headers, body)
        .await?;
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
