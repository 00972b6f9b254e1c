//! What every command promises a script: `--output table|json` (and `csv` where an export has
//! it), exactly one JSON document on stdout in JSON mode (messages, warnings and progress go to
//! stderr), the documented exit codes, and `CAUSEWAY_CONFIG` as every `--config`'s default.
//!
//! The exit codes (docs/OPERATIONS.md, "The command line in scripts"):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | checked, and found a problem: verification failed, cross-check findings, `doctor` failures, an entry that does not exist |
//! | 2 | usage: an unknown option, a missing or malformed argument |
//! | 3 | could not run: a file or config that does not read, a gateway or node that cannot be reached, any other error |
//! | 4 | refused: the provider's policy denied the request, or the oversight node refused the sign-in or the query |

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::builder::TypedValueParser as _;

/// The environment variable every `--config` option falls back to.
pub(crate) const CONFIG_ENV: &str = "CAUSEWAY_CONFIG";

/// Exit code: checked, and found a problem.
pub(crate) const PROBLEM: u8 = 1;
/// Exit code: usage error (clap's own).
pub(crate) const USAGE: u8 = 2;
/// Exit code: could not run.
pub(crate) const UNAVAILABLE: u8 = 3;
/// Exit code: refused by the provider's policy or by the oversight node.
pub(crate) const REFUSED: u8 = 4;

/// The exit codes, as every leaf command's `--help` ends.
pub(crate) const EXIT_CODES_HELP: &str = "Exit codes:
  0  success
  1  checked, and found a problem (verification failed, findings, doctor failures, no such entry)
  2  usage error (unknown option, missing or malformed argument)
  3  could not run (unreadable file or config, gateway or node unreachable, other errors)
  4  refused (the provider's policy denied the request, or the oversight node refused)";

/// How a command prints its data: a table for people, or one JSON document for scripts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Aligned text for a terminal.
    #[default]
    Table,
    /// One JSON document (an object or an array) on stdout, nothing else.
    Json,
    /// RFC 4180 CSV (exports only).
    Csv,
}

impl Output {
    /// Whether this is JSON mode.
    pub(crate) fn is_json(self) -> bool {
        self == Output::Json
    }
}

/// `--output table|json`, for a command whose data has no CSV form.
#[derive(clap::Args, Clone, Copy, Debug)]
pub(crate) struct OutputArg {
    /// How to print the result: `table` for people, `json` for scripts (one JSON document on
    /// stdout; messages go to stderr).
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "table",
        value_parser = clap::builder::PossibleValuesParser::new(["table", "json"])
            .map(|s| if s == "json" { Output::Json } else { Output::Table })
    )]
    pub(crate) output: Output,
}

impl OutputArg {
    /// Whether JSON was asked for.
    pub(crate) fn is_json(self) -> bool {
        self.output.is_json()
    }
}

/// `--output table|json|csv`, for an export.
#[derive(clap::Args, Clone, Copy, Debug)]
pub(crate) struct ExportArg {
    /// How to print the result: `table` for people, `json` for scripts (one JSON document on
    /// stdout), `csv` for a spreadsheet.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

/// Print `value` as stdout's one JSON document, pretty, with control and bidi characters of other
/// parties' text as `\uXXXX` (the same value, decoded).
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{}", crate::text::json(&text));
    Ok(())
}

/// Print a check's JSON verdict (`{"ok": true|false, ...}`) as [`print_json`] does; exit 0 if it
/// is ok, 1 if not.
pub(crate) fn print_verdict(report: &serde_json::Value) -> Result<ExitCode> {
    print_json(report)?;
    Ok(if report["ok"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An error that ends a command with a documented exit code other than 3.
#[derive(Debug)]
pub(crate) struct Exit {
    code: u8,
    message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Checked, and found a problem (exit code 1): `message` says what, and what to do.
pub(crate) fn problem(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: PROBLEM,
        message: message.into(),
    }
    .into()
}

/// A usage error found after parsing (exit code 2): an option missing for this situation.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// Refused by the provider's policy or the oversight node (exit code 4).
pub(crate) fn refused(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: REFUSED,
        message: message.into(),
    }
    .into()
}

/// The exit code an error ends a command with: the one an [`Exit`] in its chain names, else 3.
pub(crate) fn exit_code(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(UNAVAILABLE, |e| e.code)
}

/// Whether errors are reported as JSON log lines (`--log-format json`: stderr then carries JSON
/// lines only).
static JSON_ERRORS: AtomicBool = AtomicBool::new(false);

/// Report errors as JSON log lines from now on.
pub(crate) fn report_errors_as_json() {
    JSON_ERRORS.store(true, Ordering::Relaxed);
}

/// Report `error` on stderr and turn it into its exit code.
pub(crate) fn fail(error: &anyhow::Error) -> ExitCode {
    if JSON_ERRORS.load(Ordering::Relaxed) {
        tracing::error!(error = format!("{error:#}"), "failed");
    } else {
        eprintln!("error: {error:#}");
    }
    ExitCode::from(exit_code(error))
}

/// Append the exit codes to the `--help` of every leaf command under `command`.
pub(crate) fn with_exit_codes(command: clap::Command) -> clap::Command {
    let command = command.mut_subcommands(with_exit_codes);
    if command.has_subcommands() {
        return command;
    }
    let help = match command.get_after_help() {
        Some(help) => format!("{help}\n\n{EXIT_CODES_HELP}"),
        None => EXIT_CODES_HELP.to_owned(),
    };
    command.after_help(help)
}

/// The ledger's entries as a range, for messages: "entries 0..=41", or "no entries".
pub(crate) fn held(size: u64) -> String {
    match size {
        0 => "no entries yet".to_owned(),
        1 => "entry 0 only".to_owned(),
        n => format!("entries 0..={}", n - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_in_the_chain_names_the_code_and_anything_else_is_3() {
        assert_eq!(exit_code(&problem("entry 9 does not exist")), PROBLEM);
        assert_eq!(exit_code(&refused("denied")), REFUSED);
        let wrapped = anyhow::Context::context(Err::<(), _>(problem("x")), "reading");
        assert_eq!(exit_code(&wrapped.unwrap_err()), PROBLEM);
        assert_eq!(exit_code(&anyhow::anyhow!("cannot read")), UNAVAILABLE);
        assert_eq!(held(42), "entries 0..=41");
        assert_eq!(held(0), "no entries yet");
    }
}
