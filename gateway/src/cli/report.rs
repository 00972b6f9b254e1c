//! `causeway verify-report`: check a citizen's report bundle offline, with the directory alone.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::output::{print_verdict, OutputArg};
use crate::directory::Directory;
use crate::oversight::bundle::{parse_bundle, verify_bundle, MAX_BUNDLE_BYTES};
use crate::text::visible;

/// `causeway verify-report`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  causeway verify-report my-report.json --directory federation.toml\n\nExits 0 when every entry, proof, signature and row checks out, 1 naming the first thing that does not. Needs nothing but the two files (docs/CITIZEN-REPORT.md)."
)]
pub(crate) struct VerifyReportArgs {
    /// The bundle (`causeway audit subject --bundle` wrote it).
    bundle: PathBuf,
    /// The federation directory (federation.toml): every log's and oversight node's keys.
    #[arg(long)]
    directory: PathBuf,
    /// Fail unless every department checkpoint is cosigned by at least this many known witnesses.
    #[arg(long, default_value_t = 0)]
    min_witnesses: usize,
    #[command(flatten)]
    output: OutputArg,
}

pub(crate) fn run(args: VerifyReportArgs) -> Result<ExitCode> {
    let file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let directory = Directory::load(&args.directory)?;
    let name = args.bundle.display();
    let result = parse_bundle(&bytes).and_then(|b| verify_bundle(&b, &directory).map(|v| (b, v)));
    if args.output.is_json() {
        let report = match &result {
            Ok((_, v)) if v.exchanges > 0 && v.min_witnesses < args.min_witnesses => {
                serde_json::json!({
                    "bundle": args.bundle, "ok": false,
                    "failure": format!("a department checkpoint is cosigned by only {} known witness(es); --min-witnesses is {}", v.min_witnesses, args.min_witnesses),
                })
            }
            Ok((b, v)) => serde_json::json!({
                "bundle": args.bundle, "ok": true, "exchanges": v.exchanges, "entries": v.entries,
                "logs": v.logs, "subject_tags": b.subject.tags, "min_witnesses": v.min_witnesses,
                "node": v.node, "query_index": v.query_index, "query_time": v.query_time,
                "generated_at": b.generated_at,
            }),
            Err(failure) => serde_json::json!({
                "bundle": args.bundle, "ok": false, "failure": failure.to_string(),
            }),
        };
        return print_verdict(&report);
    }
    match result {
        Ok((_, v)) if v.exchanges > 0 && v.min_witnesses < args.min_witnesses => {
            println!(
                "{name}: FAILED: a department checkpoint is cosigned by only {} known witness(es); --min-witnesses is {}",
                v.min_witnesses, args.min_witnesses
            );
            Ok(ExitCode::FAILURE)
        }
        Ok((b, v)) => {
            println!(
                "{name}: ok: {} exchange(s) that touched subject tags {}.. ({} tag(s)), {} entries from {} department log(s) ({}), each proven into a checkpoint its log signed and at least {} known witness(es) cosigned; every row says what its entries say",
                v.exchanges,
                visible(b.subject.tags[0].get(..12).unwrap_or("")),
                b.subject.tags.len(),
                v.entries,
                v.logs.len(),
                visible(&v.logs.iter().cloned().collect::<Vec<_>>().join(", ")),
                v.min_witnesses,
            );
            println!(
                "{name}: the report was notarized by oversight node {} as entry {} of its log at {}, for exactly these tags; generated at {}",
                visible(&v.node),
                v.query_index,
                visible(&v.query_time),
                visible(&b.generated_at)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!("{name}: FAILED: {}", visible(&failure.to_string()));
            Ok(ExitCode::FAILURE)
        }
    }
}
