//! `causeway log`: show and verify a ledger from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::config::Directory;
use crate::ledger::entry::Entry;
use crate::ledger::note::NoteVerifier;
use crate::ledger::store::Store;
use crate::ledger::verify::verify_log;
use crate::ledger::VKEY_FILE;

#[derive(Subcommand)]
pub(crate) enum LogCommand {
    /// Re-hash every entry, check the chain, the Merkle root and every checkpoint signature.
    #[command(
        after_help = "Examples:\n  causeway log verify --ledger causeway-demo/civil-registry/ledger\n  causeway log verify --ledger DIR --directory causeway-demo/federation.toml"
    )]
    Verify {
        /// The ledger directory.
        #[arg(long)]
        ledger: PathBuf,
        /// Check signatures against this federation directory instead of the ledger's own log.vkey.
        #[arg(long)]
        directory: Option<PathBuf>,
    },
    /// Print entries.
    #[command(
        after_help = "Examples:\n  causeway log show --ledger causeway-demo/civil-registry/ledger\n  causeway log show --ledger DIR --json --from 100 --limit 10"
    )]
    Show {
        /// The ledger directory.
        #[arg(long)]
        ledger: PathBuf,
        /// One JSON entry per line (exact stored bytes) instead of a table.
        #[arg(long)]
        json: bool,
        /// First index.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
}

fn open_store(ledger: &Path) -> Result<Store> {
    anyhow::ensure!(
        ledger.join("data.mdb").exists(),
        "{}: no ledger here (expected data.mdb); pass the gateway's [ledger] dir",
        ledger.display()
    );
    Ok(Store::open(ledger, 64 * 1024)?)
}

fn log_key(ledger: &Path, directory: Option<&Path>) -> Result<(NoteVerifier, String)> {
    let path = ledger.join(VKEY_FILE);
    let own: NoteVerifier = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let Some(directory) = directory else {
        return Ok((
            own,
            format!(
                "the key in {} (pass --directory to check against the federation)",
                path.display()
            ),
        ));
    };
    let dir = Directory::load(directory)?;
    let listed = dir
        .departments()
        .find(|d| d.origin() == own.name())
        .with_context(|| {
            format!(
                "{}: no department has log origin {:?}",
                directory.display(),
                own.name()
            )
        })?;
    Ok((
        listed.verifier.clone(),
        format!("{}'s key in {}", listed.id, directory.display()),
    ))
}

pub(crate) fn run(command: LogCommand) -> Result<ExitCode> {
    match command {
        LogCommand::Verify { ledger, directory } => {
            let store = open_store(&ledger)?;
            let (key, which) = log_key(&ledger, directory.as_deref())?;
            let result = store.read(|r| Ok(verify_log(r, &key, |_| {})))?;
            match result {
                Ok(v) => {
                    println!(
                        "{}: ok: {} entries, {} checkpoints, root {} (signatures checked with {which})",
                        ledger.display(),
                        v.entries,
                        v.checkpoints,
                        v.root
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(failure) => {
                    eprintln!("{}: FAILED at {failure}", ledger.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        LogCommand::Show {
            ledger,
            json,
            from,
            limit,
        } => {
            let store = open_store(&ledger)?;
            let end = from.saturating_add(limit);
            if !json {
                println!(
                    "{:>6}  {:<20}  {:<13}  {:<8}  {:<33}  {:<10}  {:<20}  {:<22}  {:>4}",
                    "INDEX",
                    "TIME",
                    "KIND",
                    "SIDE",
                    "CONSUMER -> PROVIDER",
                    "DATASET",
                    "PURPOSE",
                    "DECISION",
                    "ROWS"
                );
            }
            store.read(|r| {
                r.for_each_entry(from, end, |_, bytes| {
                    if json {
                        println!("{}", String::from_utf8_lossy(bytes));
                        return Ok(());
                    }
                    match Entry::from_bytes(bytes) {
                        Ok(e) => println!("{}", table_row(&e)),
                        Err(_) => println!("(unparseable entry bytes)"),
                    }
                    Ok(())
                })
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn table_row(e: &Entry) -> String {
    let dash = || "-".to_owned();
    let parties = match (&e.consumer, &e.provider) {
        (Some(c), Some(p)) => format!("{c} -> {p}"),
        _ => dash(),
    };
    let decision = match (&e.decision, &e.reason) {
        (Some(d), Some(r)) => format!("{d} ({r})"),
        (Some(d), None) => d.clone(),
        _ => dash(),
    };
    format!(
        "{:>6}  {:<20}  {:<13}  {:<8}  {:<33}  {:<10}  {:<20}  {:<22}  {:>4}",
        e.index,
        e.time.get(..19).unwrap_or(&e.time),
        e.kind.as_str(),
        e.side
            .map_or_else(dash, |s| format!("{s:?}").to_lowercase()),
        parties,
        e.dataset.clone().unwrap_or_else(dash),
        e.purpose.clone().unwrap_or_else(dash),
        decision,
        e.rows.map_or_else(dash, |r| r.to_string()),
    )
}
