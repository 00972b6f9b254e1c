//! `causeway policy ...`: the admin's tools for policy directories, run before a change ships.
//!
//! `check` validates (optionally against the datasets file), `test` runs the `*.test.toml` cases,
//! `explain` shows how one request is decided and, for a denial, what the closest grant lacked, and
//! `diff` lists the access a change gains and loses. All of them read files only: no gateway, no
//! network, no ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::output::{print_json, OutputArg};
use crate::policy_reload::dataset_schemas;
use causeway_policy::{ChangeKind, DatasetCatalog, PolicySet, Request};
use clap::{Args, Subcommand};
use serde_json::Value;

/// `causeway policy ...`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Load and validate a policy directory: every error with file:line:col, then the warnings
    /// (shadowed or overlapping grants, grants a deny rule refuses). Exits non-zero on any error.
    #[command(after_help = "Examples:\n  \
        causeway policy check causeway-demo/civil-registry/policies\n  \
        causeway policy check causeway-demo/civil-registry/policies --datasets causeway-demo/civil-registry/datasets.toml")]
    Check {
        /// The policy directory.
        dir: PathBuf,
        /// The gateway's datasets file: also check datasets, fields, parameters, row-filter
        /// columns and mask types against it (no database is opened).
        #[arg(long, value_name = "FILE")]
        datasets: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Run the `*.test.toml` cases (request -> expected decision) next to the policies. Exits
    /// non-zero if a case fails or a test file is invalid.
    #[command(
        after_help = "Example:\n  causeway policy test causeway-demo/civil-registry/policies"
    )]
    Test {
        /// The policy directory.
        dir: PathBuf,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Decide one request and say why: the decision, the deciding rule (file:line), and for a
    /// denial the closest grant and everything it lacked.
    #[command(after_help = "Example:\n  \
        causeway policy explain causeway-demo/civil-registry/policies \\\n    \
        --consumer tax-office --dataset residents --purpose fraud-investigation \\\n    \
        --legal-basis 'tax-fraud-act:s9' --case TX-FRAUD-2025-001 --param national_id=D000042")]
    Explain(ExplainArgs),
    /// The access gained (+), lost (-) and re-masked (~) from OLD_DIR to NEW_DIR, as
    /// (consumer, dataset, purpose, field) tuples, and the files added, removed and modified.
    #[command(
        after_help = "Example:\n  causeway policy diff /etc/causeway/policies ./policies-next"
    )]
    Diff {
        /// The policy directory in force.
        old_dir: PathBuf,
        /// The proposed policy directory.
        new_dir: PathBuf,
        #[command(flatten)]
        output: OutputArg,
    },
}

/// `causeway policy explain` arguments.
#[derive(Args)]
pub struct ExplainArgs {
    /// The policy directory.
    dir: PathBuf,
    /// The asking department.
    #[arg(long)]
    consumer: String,
    /// The dataset asked for.
    #[arg(long)]
    dataset: String,
    /// The declared purpose.
    #[arg(long)]
    purpose: String,
    /// The legal basis cited.
    #[arg(long, default_value = "")]
    legal_basis: String,
    /// The case reference.
    #[arg(long, default_value = "")]
    case: String,
    /// The consumer's application (for example benefits-portal), as the consumer's gateway
    /// authenticated it. Omit it for a request whose gateway names no application, which a grant
    /// that lists `applications` never allows.
    #[arg(long, value_name = "ID")]
    application: Option<String>,
    /// A request parameter, `name=value` (repeatable). A value that reads as a JSON number,
    /// boolean or "quoted string" is that; anything else is text.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, Value)>,
    /// Decide as of this RFC 3339 time instead of now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    #[command(flatten)]
    output: OutputArg,
}

fn parse_param(arg: &str) -> Result<(String, Value), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got \"{arg}\""))?;
    if name.is_empty() {
        return Err(format!("the parameter name is empty in \"{arg}\""));
    }
    let value = match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v,
        _ => Value::String(value.to_owned()),
    };
    Ok((name.to_owned(), value))
}

/// Run one `policy` subcommand.
pub fn run(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Check {
            dir,
            datasets,
            output,
        } => check(&dir, datasets.as_deref(), output.is_json()),
        PolicyCommand::Test { dir, output } => test(&dir, output.is_json()),
        PolicyCommand::Explain(args) => explain(args),
        PolicyCommand::Diff {
            old_dir,
            new_dir,
            output,
        } => diff(&old_dir, &new_dir, output.is_json()),
    }
}

fn check(dir: &Path, datasets: Option<&Path>, json: bool) -> Result<ExitCode> {
    let catalog = datasets.map(dataset_catalog).transpose()?;
    let report = causeway_policy::check(dir, catalog.as_ref());
    if json {
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
        print_json(&serde_json::json!({
            "dir": dir, "ok": report.is_ok(), "errors": errors, "warnings": warnings, "grants": report.grants, "denies": report.denies,
            "policy_set": report.policy_hash, "datasets_checked": catalog.is_some(),
        }))?;
        return Ok(if report.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    for error in &report.errors {
        println!("error: {error}");
    }
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    if !report.is_ok() {
        println!(
            "{}: {} error(s), {} warning(s)",
            dir.display(),
            report.errors.len(),
            report.warnings.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{}: ok: {} grant(s), {} deny rule(s), {} warning(s){} (policy set {})",
        dir.display(),
        report.grants,
        report.denies,
        report.warnings.len(),
        if catalog.is_some() {
            ", checked against the datasets file"
        } else {
            ""
        },
        report.policy_hash.as_deref().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

/// What the policy checker needs of the gateway's datasets file: names, field types, parameters.
fn dataset_catalog(file: &Path) -> Result<DatasetCatalog> {
    let datasets = causeway_adapters::read_datasets(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    dataset_schemas(&datasets).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

fn load(dir: &Path) -> Result<PolicySet> {
    PolicySet::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))
}

fn test(dir: &Path, json: bool) -> Result<ExitCode> {
    let report = causeway_policy::run_tests(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        let cases: Vec<Value> = report
            .cases
            .iter()
            .map(|case| {
                serde_json::json!({
                    "file": case.file, "line": case.line, "name": case.name,
                    "passed": case.passed(),
                    "failures": case.failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "dir": dir, "ok": report.is_ok(), "passed": report.passed(), "failed": report.failed(),
            "errors": report.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "cases": cases, "policy_set": report.policy_hash,
        }))?;
        return Ok(if report.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    for error in &report.errors {
        println!("error: {error}");
    }
    for case in &report.cases {
        let at = format!("{}:{}", case.file.display(), case.line);
        if case.passed() {
            println!("ok    {at}  {}", case.name);
        } else {
            println!("FAIL  {at}  {}", case.name);
            for failure in &case.failures {
                println!("        {failure}");
            }
        }
    }
    println!(
        "{} passed, {} failed, {} invalid test file(s) (policy set {})",
        report.passed(),
        report.failed(),
        report.errors.len(),
        report.policy_hash
    );
    if report.cases.is_empty() && report.errors.is_empty() {
        println!(
            "note: no *.test.toml files in {}; see docs/POLICY.md, \"Test files\"",
            dir.display()
        );
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn explain(args: ExplainArgs) -> Result<ExitCode> {
    let set = load(&args.dir)?;
    let at_unix = match &args.at {
        Some(at) => time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .with_context(|| {
                format!("--at {at}: not an RFC 3339 time (example: 2025-06-01T12:00:00Z)")
            })?
            .unix_timestamp(),
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let mut params = BTreeMap::new();
    for (name, value) in args.params {
        if params.insert(name.clone(), value).is_some() {
            bail!("--param {name} is given twice");
        }
    }
    let request = Request {
        consumer: &args.consumer,
        dataset: &args.dataset,
        purpose: &args.purpose,
        legal_basis: &args.legal_basis,
        case: &args.case,
        application: args.application.as_deref(),
        params: &params,
        at_unix,
    };
    let explanation = causeway_policy::explain(&set, &request);
    if args.output.is_json() {
        print_json(&explanation)?;
    } else {
        println!("{explanation}");
    }
    Ok(ExitCode::SUCCESS)
}

fn diff(old_dir: &Path, new_dir: &Path, json: bool) -> Result<ExitCode> {
    let old = load(old_dir)?;
    let new = load(new_dir)?;
    let changes = causeway_policy::diff(&old, &new);
    let files = causeway_policy::file_changes(&old, &new);
    if json {
        let out = serde_json::json!({
            "old": old.hash(), "new": new.hash(), "access": changes, "files": files,
        });
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for change in &changes {
        println!("{change}");
    }
    let count = |kind| changes.iter().filter(|c| c.change == kind).count();
    println!(
        "access: {} gained, {} lost, {} re-masked (consumer dataset purpose field)",
        count(ChangeKind::Gained),
        count(ChangeKind::Lost),
        count(ChangeKind::Changed)
    );
    let list = |names: &[String]| {
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        }
    };
    println!(
        "files: added {}; removed {}; modified {}",
        list(&files.added),
        list(&files.removed),
        list(&files.modified)
    );
    println!("policy set {} -> {}", old.hash(), new.hash());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_read_json_scalars_and_fall_back_to_text() {
        assert_eq!(
            parse_param("national_id=D000042").unwrap(),
            ("national_id".into(), Value::String("D000042".into()))
        );
        assert_eq!(parse_param("year=2024").unwrap().1, serde_json::json!(2024));
        assert_eq!(
            parse_param("id=\"2024\"").unwrap().1,
            serde_json::json!("2024")
        );
        assert_eq!(parse_param("a=b=c").unwrap().1, serde_json::json!("b=c"));
        assert_eq!(parse_param("list=[1]").unwrap().1, serde_json::json!("[1]"));
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("=x").is_err());
    }
}
