//! `causeway request`: call the local gateway's client API from the shell.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::output::{print_json, OutputArg, PROBLEM, REFUSED, UNAVAILABLE};
use crate::config::GatewayConfig;
use crate::text::visible;
use crate::transport::app_client::{bearer, request_body, AppClient};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  causeway request --config causeway-demo/social-welfare/causeway.toml \\\n    --provider civil-registry --dataset residents --param national_id=D000042 \\\n    --purpose benefit-eligibility --legal-basis 'social-welfare-act:s12' --officer officer-17\n  causeway request --config /etc/causeway/causeway.toml --cert app.pem --key app.key --token \"$TOKEN\" --output json ... > answer.json\n\nThe answer goes to stdout (a table, or with --output json the gateway's JSON answer, as one\ndocument: keep it to prove later what was received, `causeway log open`); the HTTP status goes to\nstderr and into the exit code: 0 answered (200), 1 the gateway or provider found the request\nwrong (400, 404, 429 ...), 3 unreachable or failed (5xx), 4 denied (401, 403).\n\nWith --config, the request goes over mutual TLS with the application's certificate (--cert and\n--key; in a demo layout the case-desk application's by default) and the officer's token (--token,\nor --officer to get one from the demo identity provider). Without a token the application acts on\nits own, which only applications registered with officers = \"none\" may."
)]
pub(crate) struct RequestArgs {
    /// The asking gateway's config (its [client] listen address is used).
    #[arg(long, env = super::output::CONFIG_ENV, required_unless_present = "gateway")]
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
    #[command(flatten)]
    output: OutputArg,
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
    // A body that is not JSON (a proxy's error page, say) is still one JSON document.
    let answer = serde_json::from_slice::<serde_json::Value>(&answer).unwrap_or_else(
        |_| serde_json::json!({"status": status, "body": String::from_utf8_lossy(&answer)}),
    );
    let code = &answer["error"]["code"];
    match code.as_str() {
        Some(code) => eprintln!("causeway: {status} {}", visible(code)),
        None => eprintln!("causeway: {status}"),
    }
    if args.output.is_json() {
        print_json(&answer)?;
    } else {
        print!("{}", answer_table(&answer));
    }
    Ok(match status {
        200 => ExitCode::SUCCESS,
        401 | 403 => ExitCode::from(REFUSED),
        400..=499 => ExitCode::from(PROBLEM),
        _ => ExitCode::from(UNAVAILABLE),
    })
}

/// The answer for a terminal: the rows under their field names and where both sides recorded
/// the exchange, or the refusal's code and message. Other parties' text is shown with control and
/// bidi characters escaped.
fn answer_table(answer: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => visible(s).into_owned(),
        serde_json::Value::Null => "-".to_owned(),
        other => visible(&other.to_string()).into_owned(),
    };
    let mut out = String::new();
    if !answer["error"].is_null() {
        let _ = writeln!(
            out,
            "refused: {}: {}",
            text(&answer["error"]["code"]),
            text(&answer["error"]["message"])
        );
        if let Some(id) = answer["exchange"].as_str() {
            let _ = writeln!(out, "exchange {}", visible(id));
        }
        return out;
    }
    let Some(fields) = answer["fields"].as_array() else {
        let _ = writeln!(out, "{}", text(answer));
        return out;
    };
    let rows: Vec<Vec<String>> = answer["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map_or_else(Vec::new, |r| r.iter().map(text).collect())
                })
                .collect()
        })
        .unwrap_or_default();
    let header: Vec<String> = fields.iter().map(text).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&header[i]))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect();
        cells.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let _ = writeln!(
        out,
        "\n{} row(s); exchange {}; provider log #{}, consumer log #{} (keep the answer with --output json to prove later what was received)",
        rows.len(),
        text(&answer["exchange"]),
        text(&answer["receipt"]["index"]),
        text(&answer["consumer_log_index"]),
    );
    out
}
