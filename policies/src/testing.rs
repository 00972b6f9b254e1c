//! `causeway policy test`: `*.test.toml` files of request -> expected decision cases that live
//! next to the policies (like `opa test`), so a policy change that alters a decision fails review.
//!
//! ```toml
//! at = 2025-06-01T00:00:00Z          # "now" for every case (or per case)
//!
//! [[test]]
//! name = "welfare reads a resident"
//! consumer = "social-welfare"
//! dataset = "residents"
//! purpose = "benefit-eligibility"
//! legal_basis = "social-security-act:s12"   # optional
//! case = "SW-2025-0001"                      # optional
//! application = "benefits-portal"            # optional: the consumer's application (default: none)
//! params = { national_id = "D000001" }       # optional
//! expect = { allowed = true, reason = "granted", rule = "welfare-residents", fields = ["name", "address"] }
//! ```
//!
//! `expect` requires `allowed`; `reason` (a reason code), `rule` (a rule id, or `""` for none),
//! `fields` (exact, in order), `masks` (`{ field = "mask" }`, `""` for none) and `max_rows` are checked
//! when given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use toml::Spanned;

use crate::compile::{header_offset, humanize, instant, scalar};
use crate::decision::{Decision, ReasonCode, Request};
use crate::error::{Diagnostic, LineIndex, LoadError};
use crate::mask::Mask;
use crate::set::PolicySet;
use crate::suggest::did_you_mean;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    at: Option<Spanned<toml::Value>>,
    #[serde(default)]
    test: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Spanned<String>,
    consumer: String,
    dataset: String,
    purpose: String,
    #[serde(default)]
    legal_basis: String,
    #[serde(default)]
    case: String,
    /// Omitted: the request names no application, as from an older consumer gateway.
    #[serde(default)]
    application: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    #[serde(default)]
    at: Option<Spanned<toml::Value>>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    allowed: bool,
    #[serde(default)]
    reason: Option<Spanned<String>>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    masks: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    max_rows: Option<u64>,
}

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The test file.
    pub file: PathBuf,
    /// The line of the case's `[[test]]` header.
    pub line: u32,
    /// The case's name.
    pub name: String,
    /// What did not match the expectation; empty when the case passed.
    pub failures: Vec<String>,
    /// The decision the policy set gave.
    pub decision: Decision,
}

impl CaseResult {
    /// Whether the decision matched every expectation.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The outcome of running a directory's test files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// Every case, in file then position order.
    pub cases: Vec<CaseResult>,
    /// Problems in the test files themselves (their cases did not run).
    pub errors: Vec<Diagnostic>,
    /// The hash of the policy set tested.
    pub policy_hash: String,
}

impl TestReport {
    /// Number of cases that passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    /// Number of cases that failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// Whether every test file was valid and every case passed.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.failed() == 0
    }
}

/// Load the policy set in `dir` and run every `*.test.toml` file in it against the set.
pub fn run_tests(dir: &Path) -> Result<TestReport, LoadError> {
    let set = PolicySet::load_dir(dir)?;
    let io = |path: &Path, source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !name.ends_with(".test.toml") || !entry.path().is_file() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(|e| io(&entry.path(), e))?;
        files.push((entry.path(), text));
    }
    files.sort();
    Ok(run(&set, &files))
}

/// Run in-memory test files `(file name, content)` against `set`.
pub fn run_test_sources(set: &PolicySet, files: &[(String, String)]) -> TestReport {
    let mut files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(n, c)| (PathBuf::from(n), c.clone()))
        .collect();
    files.sort();
    run(set, &files)
}

fn run(set: &PolicySet, files: &[(PathBuf, String)]) -> TestReport {
    let mut report = TestReport {
        policy_hash: set.hash().to_string(),
        ..TestReport::default()
    };
    for (path, text) in files {
        run_file(set, path, text, &mut report);
    }
    report
}

fn run_file(set: &PolicySet, path: &Path, text: &str, report: &mut TestReport) {
    let lines = LineIndex::new(text);
    let err = |span: Option<std::ops::Range<usize>>, message: String| Diagnostic {
        file: path.to_path_buf(),
        position: span.map(|s| lines.position(text, s.start)),
        message,
    };
    let parsed: TestFile = match toml::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(err(e.span(), humanize(e.message())));
            return;
        }
    };
    let default_at = match &parsed.at {
        None => None,
        Some(v) => match instant(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                report.errors.push(err(Some(v.span()), format!("at: {e}")));
                return;
            }
        },
    };
    for case in parsed.test {
        let line = lines
            .position(
                text,
                header_offset(text, case.name.span().start, "test")
                    .unwrap_or(case.name.span().start),
            )
            .line;
        let at = match &case.at {
            None => default_at,
            Some(v) => match instant(v.get_ref()) {
                Ok(t) => Some(t),
                Err(e) => {
                    report.errors.push(err(Some(v.span()), format!("at: {e}")));
                    continue;
                }
            },
        };
        let Some(at) = at else {
            report.errors.push(err(
                Some(case.name.span()),
                "no time for this case: set `at` at the top of the file or in the case".to_string(),
            ));
            continue;
        };
        if let Some(reason) = &case.expect.reason {
            if ReasonCode::from_name(reason.get_ref()).is_none() {
                let hint =
                    did_you_mean(reason.get_ref(), ReasonCode::ALL.iter().map(|c| c.as_str()));
                report.errors.push(err(
                    Some(reason.span()),
                    format!("unknown reason code \"{}\"{hint}", reason.get_ref()),
                ));
                continue;
            }
        }
        let mut expected_masks = BTreeMap::new();
        let mut bad_mask = false;
        for (field, mask) in &case.expect.masks {
            if mask.get_ref().is_empty() {
                expected_masks.insert(field.clone(), None);
                continue;
            }
            match mask.get_ref().parse::<Mask>() {
                Ok(m) => {
                    expected_masks.insert(field.clone(), Some(m));
                }
                Err(e) => {
                    report.errors.push(err(Some(mask.span()), e));
                    bad_mask = true;
                }
            }
        }
        if bad_mask {
            continue;
        }
        let params: BTreeMap<String, Value> = match case
            .params
            .iter()
            .map(|(k, v)| json(v).map(|j| (k.clone(), j)))
            .collect::<Result<_, _>>()
        {
            Ok(p) => p,
            Err(e) => {
                report
                    .errors
                    .push(err(Some(case.name.span()), format!("params: {e}")));
                continue;
            }
        };
        let request = Request {
            consumer: &case.consumer,
            dataset: &case.dataset,
            purpose: &case.purpose,
            legal_basis: &case.legal_basis,
            case: &case.case,
            application: case.application.as_deref(),
            params: &params,
            at_unix: at,
        };
        let decision = set.decide(&request);
        let mut failures = compare(&case.expect, &expected_masks, &decision);
        // A gateway refuses such a request before it decides: the decision above never happens.
        if let Err(e) = set.check_references(&request) {
            failures.insert(0, format!("{} ({})", e, e.code()));
        }
        report.cases.push(CaseResult {
            file: path.to_path_buf(),
            line,
            name: case.name.into_inner(),
            failures,
            decision,
        });
    }
}

fn json(v: &toml::Value) -> Result<Value, String> {
    match v {
        toml::Value::Array(items) => items
            .iter()
            .map(json)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        toml::Value::Table(t) => t
            .iter()
            .map(|(k, v)| json(v).map(|j| (k.clone(), j)))
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(Value::Object),
        other => scalar(other),
    }
}

fn describe(d: &Decision) -> String {
    format!(
        "{} ({}: {})",
        if d.allowed { "allowed" } else { "denied" },
        d.reason.code,
        d.reason.message
    )
}

fn compare(expect: &Expect, masks: &BTreeMap<String, Option<Mask>>, d: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    if expect.allowed != d.allowed {
        failures.push(format!(
            "expected {}, got {}",
            if expect.allowed { "allowed" } else { "denied" },
            describe(d)
        ));
    }
    if let Some(reason) = &expect.reason {
        if reason.get_ref() != d.reason.code.as_str() {
            failures.push(format!(
                "expected reason {}, got {}",
                reason.get_ref(),
                describe(d)
            ));
        }
    }
    if let Some(rule) = &expect.rule {
        let got = d.rule.as_ref().map_or("", |r| r.id.as_str());
        if rule != got {
            let shown = |s: &str| {
                if s.is_empty() {
                    "no rule".to_string()
                } else {
                    format!("rule \"{s}\"")
                }
            };
            failures.push(format!("expected {}, got {}", shown(rule), shown(got)));
        }
    }
    if let Some(fields) = &expect.fields {
        let got: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
        if *fields != got {
            failures.push(format!(
                "expected fields [{}], got [{}]",
                fields.join(", "),
                got.join(", ")
            ));
        }
    }
    for (field, mask) in masks {
        let shown = |m: Option<Mask>| m.map_or("no mask".to_string(), |m| format!("mask {m}"));
        match d.field(field) {
            None => failures.push(format!(
                "expected field \"{field}\" with {}, but it is not released",
                shown(*mask)
            )),
            Some(f) if f.mask != *mask => failures.push(format!(
                "expected {} on \"{field}\", got {}",
                shown(*mask),
                shown(f.mask)
            )),
            Some(_) => {}
        }
    }
    if let Some(max) = expect.max_rows {
        if d.max_rows != Some(max) {
            failures.push(format!(
                "expected max_rows {max}, got {}",
                d.max_rows.map_or("none".to_string(), |m| m.to_string())
            ));
        }
    }
    failures
}
