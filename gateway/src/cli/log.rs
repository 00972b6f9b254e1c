//! `causeway log`: show and verify a ledger from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::output::{held, print_json, print_verdict, problem, OutputArg};
use crate::directory::Directory;
use crate::text::{self, visible};
use causeway_ledger::entry::Entry;
use causeway_ledger::keys::{rotations_in, KeyHistory};
use causeway_ledger::note::NoteVerifier;
use causeway_ledger::store::Store;
use causeway_ledger::tlog_proof::{verify_tlog_proof_under, TlogProof};
use causeway_ledger::verify::verify_log_history;
use causeway_ledger::VKEY_FILE;

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
        #[command(flatten)]
        output: OutputArg,
    },
    /// Print an entry as a self-contained evidence file (C2SP tlog-proof@v1) that verifies offline.
    #[command(
        after_help = "Example:\n  causeway log proof --ledger causeway-demo/civil-registry/ledger --index 1 > exchange-1.tlog-proof"
    )]
    Proof {
        /// The ledger directory.
        #[arg(long)]
        ledger: PathBuf,
        /// The entry's index.
        #[arg(long)]
        index: u64,
    },
    /// Verify an evidence file offline against the federation directory.
    #[command(
        after_help = "Example:\n  causeway log verify-proof exchange-1.tlog-proof --directory causeway-demo/federation.toml"
    )]
    VerifyProof {
        /// The evidence file (from `causeway log proof`).
        file: PathBuf,
        /// The federation directory: the log's key and the witnesses' keys.
        #[arg(long)]
        directory: PathBuf,
        /// Fail unless at least this many known witnesses cosigned.
        #[arg(long, default_value_t = 0)]
        min_witnesses: usize,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Check that an application's answer opens an entry's commitment to the released rows: proof
    /// of exactly what was received, which nobody without the answer can derive from the entry.
    #[command(
        after_help = "Example:\n  causeway request --output json ... > answer.json   (keep the answer: it holds fields, rows and commitment_salt)\n  causeway log open --ledger causeway-demo/civil-registry/ledger --index 1 --answer answer.json\n\nExits 0 if the answer opens the entry's response_digest, 1 if it does not or there is no such entry."
    )]
    Open {
        /// The ledger directory (the provider's or the consumer's: both record the commitment).
        #[arg(long)]
        ledger: PathBuf,
        /// The entry's index.
        #[arg(long)]
        index: u64,
        /// The application's JSON answer (`fields`, `rows`, `commitment_salt`).
        #[arg(long)]
        answer: PathBuf,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Pull and verify every oversight node's own log (the record of oversight queries) and list
    /// the queries whose results touched this department.
    Oversight(super::watch::OversightLogArgs),
    /// Back up a ledger while its gateway serves: a snapshot of one committed state, with the
    /// ledger directory's other files and a manifest, written whole or not at all (mode 0600).
    #[command(
        after_help = "Examples:\n  causeway log backup --ledger /var/lib/causeway/ledger --out /backups/ledger-2026-12-06\n  causeway log backup --config /etc/causeway/causeway.toml --out /backups/ledger-$(date +%F)"
    )]
    Backup(super::backup::BackupArgs),
    /// Restore a backup into an empty ledger directory, with the gateway stopped.
    #[command(
        after_help = "Example:\n  causeway log restore --from /backups/ledger-2026-12-06 --ledger /var/lib/causeway/ledger\n\nRead docs/OPERATIONS.md, \"Back up and restore\", first: the restored log ends where the backup did."
    )]
    Restore(super::backup::RestoreArgs),
    /// Print entries.
    #[command(
        after_help = "Examples:\n  causeway log show --ledger causeway-demo/civil-registry/ledger\n  causeway log show --ledger DIR --output json --from 100 --limit 10 | jq '.[].kind'"
    )]
    Show {
        /// The ledger directory.
        #[arg(long)]
        ledger: PathBuf,
        /// `table`, or `json`: one array of the entries, each its stored bytes, except that control
        /// and bidi characters JSON allows raw are written as \uXXXX (the same entry, decoded).
        #[command(flatten)]
        output: OutputArg,
        /// First index.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
}

/// `causeway log open`.
fn open_commitment(
    ledger: &Path,
    index: u64,
    answer: &Path,
    output: OutputArg,
) -> Result<ExitCode> {
    #[derive(serde::Deserialize)]
    struct Opening {
        fields: Vec<String>,
        rows: Vec<Vec<serde_json::Value>>,
        #[serde(default)]
        commitment_salt: String,
    }
    let text = std::fs::read(answer).with_context(|| format!("reading {}", answer.display()))?;
    // `causeway request` once printed the status on a first line, then the answer.
    let json = match text.iter().position(|b| *b == b'{') {
        Some(start) => &text[start..],
        None => &text[..],
    };
    let opening: Opening = serde_json::from_slice(json).with_context(|| {
        format!(
            "{}: not an answer with fields, rows and commitment_salt",
            answer.display()
        )
    })?;
    let store = open_store(ledger)?;
    let entry = entry_at(&store, ledger, index)?;
    let entry = causeway_ledger::entry::Entry::from_bytes(&entry)
        .with_context(|| format!("entry {index} is not an entry"))?;
    let digest = entry
        .response_digest
        .with_context(|| format!("entry {index} released nothing, so it commits to nothing"))?;
    let opens = causeway_ledger::commitment::open(
        entry.v,
        &digest,
        &opening.commitment_salt,
        &opening.fields,
        &opening.rows,
    );
    if output.is_json() {
        print_json(&serde_json::json!({
            "index": index, "response_digest": digest, "opens": opens,
            "fields": opening.fields.len(), "rows": opening.rows.len(),
        }))?;
    } else if opens {
        println!(
            "entry {index}: the answer opens its commitment {digest} ({} field(s), {} row(s))",
            opening.fields.len(),
            opening.rows.len()
        );
    } else {
        println!("entry {index}: the answer does NOT open its commitment {digest}");
    }
    Ok(if opens {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How many entries the ledger holds.
fn size_of(store: &Store) -> Result<u64> {
    Ok(store.head()?.frontier.size())
}

/// The bytes of entry `index`; an index past the end is a problem (exit code 1) that says which
/// entries there are, not a damaged ledger.
fn entry_at(store: &Store, ledger: &Path, index: u64) -> Result<Vec<u8>> {
    let size = size_of(store)?;
    if index >= size {
        return Err(problem(format!(
            "{}: entry {index} does not exist: the ledger holds {}",
            ledger.display(),
            held(size)
        )));
    }
    store
        .read(|r| Ok(r.entry(index)?.map(<[u8]>::to_vec)))?
        .with_context(|| {
            format!(
                "{}: entry {index} is missing although the ledger holds {}: the ledger is damaged; run `causeway log verify`",
                ledger.display(),
                held(size)
            )
        })
}

pub(super) fn open_store(ledger: &Path) -> Result<Store> {
    anyhow::ensure!(
        ledger.join("data.mdb").exists(),
        "{}: no ledger here (expected data.mdb); pass the gateway's [ledger] dir",
        ledger.display()
    );
    Ok(Store::open(
        ledger,
        causeway_ledger::DEFAULT_MAP_SIZE_MIB,
        causeway_ledger::DEFAULT_MAX_MAP_SIZE_MIB,
    )?)
}

/// The log's keys over time: from the directory's key history when one is given, else from the
/// ledger's own `log.vkey` and the key-rotation entries of the log (each signed by the key it
/// retires, so only the first key's trust comes from outside).
pub(super) fn log_keys(
    store: &Store,
    ledger: &Path,
    directory: Option<&Path>,
) -> Result<(KeyHistory, String)> {
    let path = ledger.join(VKEY_FILE);
    let own: NoteVerifier = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let Some(directory) = directory else {
        let rotations = store.read(|r| Ok(rotations_in(r)))??;
        let rotated = rotations.len();
        let keys = KeyHistory::from_rotations(&rotations, own)
            .map_err(|e| anyhow::anyhow!("{}: {e}", ledger.display()))?;
        return Ok((
            keys,
            format!(
                "the key in {} and the {rotated} key rotation(s) in the log (pass --directory to check against the federation)",
                path.display()
            ),
        ));
    };
    let dir = Directory::load(directory)?;
    let (dept, listed) = dir
        .logs()
        .flat_map(|d| d.instances.iter().map(move |i| (d, i)))
        .find(|(_, i)| i.verifier.name() == own.name())
        .with_context(|| {
            format!(
                "{}: no department or oversight node has log origin {:?}",
                directory.display(),
                own.name()
            )
        })?;
    let rotated = listed.keys.retired().len();
    Ok((
        listed.keys.clone(),
        format!(
            "{}'s key{} in {}",
            dept.id,
            if rotated > 0 {
                format!(" history ({} keys)", rotated + 1)
            } else {
                String::new()
            },
            directory.display()
        ),
    ))
}

pub(crate) fn run(command: LogCommand) -> Result<ExitCode> {
    match command {
        LogCommand::Backup(args) => super::backup::run_backup(args),
        LogCommand::Restore(args) => super::backup::run_restore(args),
        LogCommand::Verify {
            ledger,
            directory,
            output,
        } => {
            let store = open_store(&ledger)?;
            let (keys, which) = log_keys(&store, &ledger, directory.as_deref())?;
            let total = store.read(|r| Ok(r.checkpoints()?.last().map_or(0, |(size, _)| *size)))?;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} entries, {per_sec}, eta {eta}",
                )
                .expect("a valid progress template")
                .progress_chars("=> "),
            );
            bar.set_message("verifying");
            if total < 100_000 || output.is_json() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let result =
                store.read(|r| Ok(verify_log_history(r, &keys, |done| bar.set_position(done))))?;
            bar.finish_and_clear();
            if output.is_json() {
                let report = match &result {
                    Ok(v) => serde_json::json!({
                        "ledger": ledger, "ok": true, "entries": v.entries,
                        "checkpoints": v.checkpoints, "revoked_checkpoints": v.revoked,
                        "root": v.root, "keys": which,
                    }),
                    Err(failure) => serde_json::json!({
                        "ledger": ledger, "ok": false, "failure": failure.to_string(), "keys": which,
                    }),
                };
                return print_verdict(&report);
            }
            match result {
                Ok(v) => {
                    let revoked = if v.revoked > 0 {
                        format!("; {} checkpoint(s) under a revoked key not counted, later ones cover their entries", v.revoked)
                    } else {
                        String::new()
                    };
                    println!(
                        "{}: ok: {} entries, {} checkpoints, root {} (signatures checked with {which}{revoked})",
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
        LogCommand::Open {
            ledger,
            index,
            answer,
            output,
        } => open_commitment(&ledger, index, &answer, output),
        LogCommand::Proof { ledger, index } => {
            let store = open_store(&ledger)?;
            entry_at(&store, &ledger, index)?;
            print!("{}", causeway_ledger::evidence(&store, index)?.to_text());
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::VerifyProof {
            file,
            directory,
            min_witnesses,
            output,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let proof =
                TlogProof::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let dir = Directory::load(&directory)?;
            let origin = causeway_ledger::witness::checkpoint_origin(&proof.checkpoint)
                .with_context(|| format!("{}: the checkpoint has no origin", file.display()))?;
            let log = dir.by_origin(&origin).with_context(|| {
                format!(
                    "{}: no department or oversight node has log origin {origin:?}",
                    directory.display()
                )
            })?;
            let verified = verify_tlog_proof_under(&proof, &log.keys, &dir.witnesses());
            if output.is_json() {
                let entry = proof.extra.as_deref().and_then(|b| {
                    serde_json::from_str::<serde_json::Value>(&String::from_utf8_lossy(b)).ok()
                });
                let report = match &verified {
                    Ok(v) => {
                        let witnesses: Vec<&str> =
                            v.cosignatures.iter().map(|c| c.witness.name()).collect();
                        let enough = witnesses.len() >= min_witnesses;
                        serde_json::json!({
                            "file": file, "ok": enough, "index": v.index, "log": log.id.as_str(),
                            "origin": origin, "size": v.checkpoint.size, "witnesses": witnesses,
                            "failure": (!enough).then(|| format!("only {} known witness(es) cosigned; --min-witnesses is {min_witnesses}", witnesses.len())),
                            "entry": entry,
                        })
                    }
                    Err(e) => serde_json::json!({
                        "file": file, "ok": false, "log": log.id.as_str(), "origin": origin,
                        "failure": e.to_string(),
                    }),
                };
                return print_verdict(&report);
            }
            match verified {
                Ok(v) if v.cosignatures.len() >= min_witnesses => {
                    let witnesses: Vec<&str> =
                        v.cosignatures.iter().map(|c| c.witness.name()).collect();
                    println!(
                        "{}: ok: entry {} is in {}'s log at size {}, signed by {}; cosigned by {} known witness(es){}",
                        file.display(),
                        v.index,
                        log.id,
                        v.checkpoint.size,
                        origin,
                        witnesses.len(),
                        if witnesses.is_empty() { String::new() } else { format!(": {}", witnesses.join(", ")) }
                    );
                    if let Some(entry) = proof
                        .extra
                        .as_deref()
                        .and_then(|b| Entry::from_bytes(b).ok())
                    {
                        println!("{}", table_row(&entry));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Ok(v) => {
                    eprintln!(
                        "{}: only {} known witness(es) cosigned; --min-witnesses is {min_witnesses}",
                        file.display(),
                        v.cosignatures.len()
                    );
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    eprintln!("{}: FAILED: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        LogCommand::Oversight(_) => {
            anyhow::bail!("`log oversight` runs on the async runtime: cli::run dispatches it")
        }
        LogCommand::Show {
            ledger,
            output,
            from,
            limit,
        } => {
            let store = open_store(&ledger)?;
            let size = size_of(&store)?;
            if from >= size && from > 0 {
                return Err(problem(format!(
                    "{}: --from {from}: entry {from} does not exist: the ledger holds {}",
                    ledger.display(),
                    held(size)
                )));
            }
            let end = from.saturating_add(limit);
            let json = output.is_json();
            if json {
                print!("[");
            } else {
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
            let mut first = true;
            store.read(|r| {
                r.for_each_entry(from, end, |_, bytes| {
                    if json {
                        // The stored bytes are one JSON object each: the array holds them as
                        // they were hashed.
                        let separator = if std::mem::take(&mut first) {
                            "\n"
                        } else {
                            ",\n"
                        };
                        let entry = String::from_utf8_lossy(bytes);
                        if serde_json::from_str::<serde::de::IgnoredAny>(&entry).is_ok() {
                            print!("{separator}{}", text::json(&entry));
                        } else {
                            let damaged = serde_json::json!({ "unparseable_entry": entry });
                            print!("{separator}{}", text::json(&damaged.to_string()));
                        }
                        return Ok(());
                    }
                    match Entry::from_bytes(bytes) {
                        Ok(e) => println!("{}", table_row(&e)),
                        Err(_) => println!("(unparseable entry bytes)"),
                    }
                    Ok(())
                })
            })?;
            if json {
                println!("\n]");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One entry as a table row; the entry's text is another party's, so control and bidi characters
/// are shown as escapes.
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
        visible(e.time.get(..19).unwrap_or(&e.time)),
        e.kind.as_str(),
        e.side
            .map_or_else(dash, |s| format!("{s:?}").to_lowercase()),
        visible(&parties),
        visible(e.dataset.as_deref().unwrap_or("-")),
        visible(e.purpose.as_deref().unwrap_or("-")),
        visible(&decision),
        e.rows.map_or_else(dash, |r| r.to_string()),
    )
}
