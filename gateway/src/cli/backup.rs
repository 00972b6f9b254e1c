//! `causeway log backup` and `causeway log restore`: a consistent copy of a ledger while its
//! gateway serves, and its return into an empty ledger directory (docs/OPERATIONS.md, "Back up and
//! restore"). The work is the ledger crate's ([`causeway_ledger::backup`]); this names the
//! ledger from the command line or the gateway's config and reports what was copied.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::config::GatewayConfig;
use causeway_ledger::backup::{self, Manifest};

/// Which ledger: its directory, or the config of the gateway (or oversight node) that keeps it.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct LedgerChoice {
    /// The ledger directory (the gateway's `[ledger] dir`).
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// The gateway's config file: its `[ledger] dir` is the ledger.
    #[arg(long, env = super::output::CONFIG_ENV)]
    config: Option<PathBuf>,
}

impl LedgerChoice {
    fn dir(&self) -> Result<PathBuf> {
        match (&self.ledger, &self.config) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Some(config)) => Ok(GatewayConfig::load(config)
                .with_context(|| format!("reading {}", config.display()))?
                .ledger
                .dir),
            (None, None) => anyhow::bail!("pass --ledger DIR or --config FILE"),
        }
    }
}

/// `causeway log backup`.
#[derive(Args)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    ledger: LedgerChoice,
    /// The backup directory to create (it must not exist; it appears only once complete).
    #[arg(long)]
    out: PathBuf,
}

/// `causeway log restore`.
#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// The backup directory (from `causeway log backup`).
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    ledger: LedgerChoice,
}

fn describe(manifest: &Manifest) -> String {
    let files: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    format!(
        "{} entries, checkpoint at tree size {}{}; files: {}",
        manifest.entries,
        manifest.tree_size,
        manifest
            .origin
            .as_deref()
            .map(|o| format!(" of log {o}"))
            .unwrap_or_default(),
        files.join(", ")
    )
}

/// Back up a ledger, live or not, from this (separate) process.
pub(crate) fn run_backup(args: BackupArgs) -> Result<ExitCode> {
    let dir = args.ledger.dir()?;
    let manifest = backup::backup(&dir, &args.out)
        .with_context(|| format!("backing up the ledger in {}", dir.display()))?;
    println!(
        "{}: backup of {}: {}",
        args.out.display(),
        dir.display(),
        describe(&manifest)
    );
    for name in &manifest.skipped {
        eprintln!(
            "note: {} is not a regular file and was not backed up",
            dir.join(name).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Restore a backup into an empty ledger directory (the gateway stopped).
pub(crate) fn run_restore(args: RestoreArgs) -> Result<ExitCode> {
    let dir = args.ledger.dir()?;
    let manifest = backup::restore(&args.from, &dir)
        .with_context(|| format!("restoring {} into {}", args.from.display(), dir.display()))?;
    println!(
        "{}: restored from {}: {}",
        dir.display(),
        args.from.display(),
        describe(&manifest)
    );
    eprintln!(
        "note: this log now ends at tree size {}; its witnesses and oversight nodes may hold later \
         checkpoints and will report it as truncated (docs/OPERATIONS.md, \"Back up and restore\")",
        manifest.tree_size
    );
    Ok(ExitCode::SUCCESS)
}
