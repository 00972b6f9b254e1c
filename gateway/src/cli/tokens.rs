//! `causeway tokens`: the demo's local identity provider, so the tour works offline. Real
//! deployments get officers' tokens from their own identity provider.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::callers::tokens::DemoIssuer;
use crate::config::GatewayConfig;
use crate::layout::DEMO_IDP_KID as DEMO_KID;

#[derive(Subcommand)]
pub(crate) enum TokensCommand {
    /// Issue an officer's access token from the demo identity provider that a gateway's
    /// [officers] section trusts (its key lies beside the JWKS as `<name>.key`).
    #[command(
        after_help = "Examples:\n  causeway tokens issue --config causeway-demo/social-welfare/causeway.toml --officer officer-17\n  causeway tokens issue --config causeway-demo/social-welfare/causeway.toml --officer o-2 --role caseworker --ttl-secs 300"
    )]
    Issue {
        /// The gateway config whose [officers] section names issuer, audience and JWKS.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// The officer id (the token's `sub`).
        #[arg(long)]
        officer: String,
        /// A role the officer holds (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// How long the token is valid, in seconds.
        #[arg(long, default_value_t = 900)]
        ttl_secs: u64,
    },
}

pub(crate) fn run(command: TokensCommand) -> Result<ExitCode> {
    match command {
        TokensCommand::Issue {
            config,
            officer,
            roles,
            ttl_secs,
        } => {
            println!("{}", demo_token(&config, &officer, &roles, ttl_secs)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A token for `officer` from the demo issuer of the gateway `config` describes.
pub(crate) fn demo_token(
    config: &Path,
    officer: &str,
    roles: &[String],
    ttl_secs: u64,
) -> Result<String> {
    let config = GatewayConfig::load(config)?;
    let officers = config.officers.as_ref().with_context(|| {
        "the config has no [officers] section: this gateway takes no officers' tokens"
    })?;
    let key = demo_key_path(&officers.jwks);
    if !key.exists() {
        anyhow::bail!(
            "{}: no demo issuer key beside the JWKS; this gateway trusts a real identity provider, so get the officer's token from it (and pass it with --token)",
            key.display()
        );
    }
    DemoIssuer::load(&key, DEMO_KID)?.issue(
        &officers.issuer,
        &officers.audience,
        officer,
        roles,
        ttl_secs,
    )
}

/// `X.jwks.json` -> `X.key`.
fn demo_key_path(jwks: &Path) -> PathBuf {
    let name = jwks
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".jwks.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(&name);
    jwks.with_file_name(format!("{stem}.key"))
}
