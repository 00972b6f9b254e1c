//! Validation and compilation: raw TOML (see `raw.rs`) in, checked rules (see `rules.rs`) out, or
//! every problem found with its file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use toml::Spanned;

use crate::decision::{FieldRelease, RuleRef};
use crate::error::{Diagnostic, LineIndex, Position};
use crate::glob::Glob;
use crate::mask::Mask;
use crate::raw;
use crate::references::{is_code, CasePattern, REFERENCE_MAX};
use crate::rules::{
    Bound, ConsumerSpec, DenyRule, Grant, ParamConstraint, RateLimit, RowOp, RowPredicate, Spans,
    Window,
};
use crate::set::FxMap;
use crate::suggest::did_you_mean;

/// The file that declares the closed list of purposes.
pub const PURPOSES_FILE: &str = "purposes.toml";
/// The optional file that declares consumer groups.
pub const GROUPS_FILE: &str = "groups.toml";
/// The prefix that names a group in a `consumer` key.
pub const GROUP_PREFIX: &str = "group:";

/// One policy file to compile.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// The bare file name (used in rule references and the content hash).
    pub name: String,
    /// How to show the file in diagnostics.
    pub display: PathBuf,
    /// Its content.
    pub text: String,
}

/// A declared purpose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Purpose {
    /// The purpose id used in grants and requests.
    pub id: String,
    /// What the purpose covers, for people.
    pub description: String,
    /// The pattern a case reference for this purpose must match besides the default
    /// ([`crate::references::CASE_PATTERN`]), as written; `None` for the default alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_pattern: Option<String>,
}

/// Everything a directory declares, validated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Compiled {
    pub purposes: Vec<Purpose>,
    /// Aligned with `purposes`: each one's compiled `case_pattern`.
    pub case_patterns: Vec<Option<CasePattern>>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub grants: Vec<Grant>,
    pub denies: Vec<DenyRule>,
}

/// Whether a file name is a policy file (`*.toml` but not `*.test.toml`).
pub(crate) fn is_policy_file(name: &str) -> bool {
    name.ends_with(".toml") && !name.ends_with(".test.toml")
}

/// Ids of departments, groups, purposes, rules and datasets.
pub(crate) fn is_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The longest application id (the length of a DNS label).
pub(crate) const APPLICATION_ID_MAX: usize = 63;

/// Ids of the consumer's applications: lowercase ASCII letters, digits and `-`, 1 to 63
/// characters, not starting with `-`.
pub(crate) fn is_application_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= APPLICATION_ID_MAX
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Names of fields, parameters and columns.
pub(crate) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Diagnostics for one file.
struct FileCtx<'a> {
    file: &'a SourceFile,
    lines: LineIndex,
    diags: &'a mut Vec<Diagnostic>,
}

impl FileCtx<'_> {
    fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let position = span.map(|s| self.lines.position(&self.file.text, s.start));
        self.diags.push(Diagnostic {
            file: self.file.display.clone(),
            position,
            message: message.into(),
        });
    }

    fn at<T>(&mut self, v: &Spanned<T>, message: impl Into<String>) {
        self.err(Some(v.span()), message);
    }

    fn line_of(&self, offset: usize) -> u32 {
        self.lines.position(&self.file.text, offset).line
    }

    /// Parse the file as `T`, turning TOML and serde errors into diagnostics with suggestions.
    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        match toml::from_str::<T>(&self.file.text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(e.span(), humanize(e.message()));
                None
            }
        }
    }
}

/// Rewrite serde's and toml's messages into the house style, with "did you mean" suggestions.
pub(crate) fn humanize(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, tail)) = rest.split_once('`') {
            let expected = backticked(tail);
            let hint = did_you_mean(name, expected.iter().map(String::as_str));
            if !hint.is_empty() {
                return format!("unknown field \"{name}\"{hint}");
            }
            return if expected.is_empty() {
                format!("unknown field \"{name}\" (this table takes no fields)")
            } else {
                format!(
                    "unknown field \"{name}\" (allowed: {})",
                    expected.join(", ")
                )
            };
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return format!("missing field \"{name}\"");
        }
    }
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Compile a directory's files (already filtered to policy files, sorted by name).
pub(crate) fn compile(files: &[SourceFile]) -> Result<Compiled, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut out = Compiled::default();

    // 1. Purposes: required, closed list.
    let mut purpose_ids: BTreeMap<String, ()> = BTreeMap::new();
    match files.iter().find(|f| f.name == PURPOSES_FILE) {
        None => diags.push(Diagnostic {
            file: PathBuf::from(PURPOSES_FILE),
            position: None,
            message: format!(
                "missing: every policy directory declares its purposes in {PURPOSES_FILE} \
                 ([[purpose]] id = \"...\", description = \"...\"; see docs/POLICY.md)"
            ),
        }),
        Some(file) => {
            let mut ctx = FileCtx {
                file,
                lines: LineIndex::new(&file.text),
                diags: &mut diags,
            };
            if let Some(parsed) = ctx.parse::<raw::PurposesFile>() {
                for p in parsed.purpose {
                    if !is_id(p.id.get_ref()) {
                        ctx.at(&p.id, bad_id("purpose id", p.id.get_ref()));
                    } else if purpose_ids.insert(p.id.get_ref().clone(), ()).is_some() {
                        ctx.at(
                            &p.id,
                            format!("purpose \"{}\" is declared twice", p.id.get_ref()),
                        );
                    } else {
                        let case_pattern = p.case_pattern.as_ref().and_then(|pattern| {
                            CasePattern::new(pattern.get_ref())
                                .map_err(|e| ctx.at(pattern, e))
                                .ok()
                        });
                        out.purposes.push(Purpose {
                            id: p.id.into_inner(),
                            description: p.description,
                            case_pattern: case_pattern.as_ref().map(|c| c.as_str().to_owned()),
                        });
                        out.case_patterns.push(case_pattern);
                    }
                }
            }
        }
    }

    // 2. Groups: optional.
    if let Some(file) = files.iter().find(|f| f.name == GROUPS_FILE) {
        let mut ctx = FileCtx {
            file,
            lines: LineIndex::new(&file.text),
            diags: &mut diags,
        };
        if let Some(parsed) = ctx.parse::<raw::GroupsFile>() {
            for g in parsed.group {
                let id = g.id.get_ref();
                if !is_id(id) {
                    ctx.at(&g.id, bad_id("group id", id));
                    continue;
                }
                if out.groups.contains_key(id) {
                    ctx.at(&g.id, format!("group \"{id}\" is declared twice"));
                    continue;
                }
                let mut members = BTreeSet::new();
                for m in &g.members {
                    if m.get_ref().starts_with(GROUP_PREFIX) {
                        ctx.at(m, "groups cannot contain groups: list department ids");
                    } else if !is_id(m.get_ref()) {
                        ctx.at(m, bad_id("department id", m.get_ref()));
                    } else if !members.insert(m.get_ref().clone()) {
                        ctx.at(
                            m,
                            format!("\"{}\" is listed twice in group \"{id}\"", m.get_ref()),
                        );
                    }
                }
                if g.members.is_empty() {
                    ctx.at(&g.id, format!("group \"{id}\" has no members"));
                }
                out.groups.insert(id.clone(), members.into_iter().collect());
            }
        }
    }

    // 3. Agreements.
    // Every agreement file needs only the purposes and groups, so files are parsed and compiled in
    // parallel; rule ids are unique across files, so duplicates are found while merging in order.
    let env = Env {
        purposes: &purpose_ids,
        groups: &out.groups,
    };
    let agreements: Vec<&SourceFile> = files
        .iter()
        .filter(|f| f.name != PURPOSES_FILE && f.name != GROUPS_FILE)
        .collect();
    let compiled = parallel_map(&agreements, |file| compile_agreement(file, &env));
    let mut rule_ids: FxMap<String, (&str, u32)> = FxMap::default();
    for (file, (file_diags, rules)) in agreements.iter().zip(compiled) {
        diags.extend(file_diags);
        for r in rules {
            if let Some((first_file, first_line)) = rule_ids.get(&r.id) {
                diags.push(Diagnostic {
                    file: file.display.clone(),
                    position: Some(r.id_position),
                    message: format!(
                        "rule id \"{}\" is already used at {first_file}:{first_line}",
                        r.id
                    ),
                });
                continue;
            }
            rule_ids.insert(r.id, (&file.name, r.line));
            diags.extend(r.diags);
            match r.compiled {
                Some(Rule::Grant(g)) => out.grants.push(g),
                Some(Rule::Deny(d)) => out.denies.push(d),
                None => {}
            }
        }
    }

    if diags.is_empty() {
        Ok(out)
    } else {
        diags.sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
        Err(diags)
    }
}

/// The line of the `[[grant]]` / `[[deny]]` header that opens the table whose body starts at
/// `offset` (toml 0.8 does not give array-of-tables elements a usable span, so we look backwards
/// from the rule's `id`; for an inline table, the line of the `id` itself).
fn header_line(ctx: &FileCtx<'_>, offset: usize, table: &str) -> u32 {
    ctx.line_of(header_offset(&ctx.file.text, offset, table).unwrap_or(offset))
}

/// The offset of the nearest `[[table]]` header that starts a line at or before `offset`.
pub(crate) fn header_offset(text: &str, offset: usize, table: &str) -> Option<usize> {
    let header = format!("[[{table}]]");
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let mut search_end = before.len();
    loop {
        let i = before[..search_end].rfind(&header)?;
        let line_start = before[..i].rfind('\n').map_or(0, |n| n + 1);
        if before[line_start..i].trim().is_empty() {
            return Some(i);
        }
        search_end = i;
    }
}

fn bad_id(what: &str, got: &str) -> String {
    format!("invalid {what} \"{got}\": use letters, digits, '.', '_' and '-', starting with a letter or digit")
}

fn bad_name(what: &str, got: &str) -> String {
    format!("invalid {what} \"{got}\": use letters, digits and '_', starting with a letter or '_'")
}

/// One rule of an agreement file, compiled on its own.
struct RuleOut {
    id: String,
    id_position: Position,
    line: u32,
    /// This rule's problems, kept only if its id is not a duplicate.
    diags: Vec<Diagnostic>,
    compiled: Option<Rule>,
}

enum Rule {
    Grant(Grant),
    Deny(DenyRule),
}

/// Parse and compile one agreement file: its own diagnostics (a parse error, invalid rule ids) and
/// its rules in order, grants first.
fn compile_agreement(file: &SourceFile, env: &Env<'_>) -> (Vec<Diagnostic>, Vec<RuleOut>) {
    let mut diags = Vec::new();
    let mut ctx = FileCtx {
        file,
        lines: LineIndex::new(&file.text),
        diags: &mut diags,
    };
    let mut rules = Vec::new();
    let Some(parsed) = ctx.parse::<raw::AgreementFile>() else {
        return (diags, rules);
    };
    for g in parsed.grant {
        let line = header_line(&ctx, g.get_ref().id.span().start, "grant");
        let g = g.into_inner();
        if let Some(named) = rule_ref(&mut ctx, &g.id, line) {
            rules.push(compile_rule(&mut ctx, named, line, |ctx, rule| {
                compile_grant(ctx, env, rule, g).map(Rule::Grant)
            }));
        }
    }
    for d in parsed.deny {
        let line = header_line(&ctx, d.get_ref().id.span().start, "deny");
        let d = d.into_inner();
        if let Some(named) = rule_ref(&mut ctx, &d.id, line) {
            rules.push(compile_rule(&mut ctx, named, line, |ctx, rule| {
                compile_deny(ctx, env, rule, d).map(Rule::Deny)
            }));
        }
    }
    (diags, rules)
}

/// A rule with a valid id (see [`rule_ref`]), compiled by `compile`, with the problems found while compiling it.
fn compile_rule(
    ctx: &mut FileCtx<'_>,
    (rule, id_position): (RuleRef, Position),
    line: u32,
    compile: impl FnOnce(&mut FileCtx<'_>, RuleRef) -> Option<Rule>,
) -> RuleOut {
    let id = rule.id.clone();
    let before = ctx.diags.len();
    let compiled = compile(ctx, rule);
    let diags = ctx.diags.split_off(before);
    RuleOut {
        id,
        id_position,
        line,
        diags,
        compiled,
    }
}

/// The reference of a rule with a valid id, and where the id is (an invalid id is reported here).
fn rule_ref(ctx: &mut FileCtx<'_>, id: &Spanned<String>, line: u32) -> Option<(RuleRef, Position)> {
    let name = id.get_ref();
    if !is_id(name) {
        ctx.at(id, bad_id("rule id", name));
        return None;
    }
    let rule = RuleRef {
        file: ctx.file.name.clone(),
        line,
        id: name.clone(),
    };
    Some((rule, ctx.lines.position(&ctx.file.text, id.span().start)))
}

/// `f` over `items` on up to `available_parallelism` threads; results in item order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut done = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut done = work();
        for h in helpers {
            done.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

struct Env<'a> {
    purposes: &'a BTreeMap<String, ()>,
    groups: &'a BTreeMap<String, Vec<String>>,
}

impl Env<'_> {
    fn consumer(
        &self,
        ctx: &mut FileCtx<'_>,
        raw: &Spanned<String>,
    ) -> Option<(ConsumerSpec, Vec<String>)> {
        let s = raw.get_ref();
        if let Some(group) = s.strip_prefix(GROUP_PREFIX) {
            return match self.groups.get(group) {
                Some(members) => Some((ConsumerSpec::Group(group.to_string()), members.clone())),
                None => {
                    let hint = did_you_mean(group, self.groups.keys().map(String::as_str));
                    let hint = if hint.is_empty() {
                        format!(" (declare it in {GROUPS_FILE})")
                    } else {
                        hint.replacen("\"", &format!("\"{GROUP_PREFIX}"), 1)
                    };
                    ctx.at(raw, format!("unknown group \"{group}\"{hint}"));
                    None
                }
            };
        }
        if self.groups.contains_key(s) {
            ctx.at(
                raw,
                format!("\"{s}\" is a group: write \"{GROUP_PREFIX}{s}\""),
            );
            return None;
        }
        if !is_id(s) {
            ctx.at(raw, bad_id("consumer department id", s));
            return None;
        }
        Some((ConsumerSpec::Dept(s.clone()), vec![s.clone()]))
    }

    fn purposes(&self, ctx: &mut FileCtx<'_>, raw: &Spanned<raw::Strings>) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        if raw.get_ref().is_empty() {
            ctx.at(raw, "purposes is empty: list at least one declared purpose");
            return None;
        }
        for p in raw.get_ref() {
            let id = p.get_ref();
            if !self.purposes.contains_key(id) {
                let mut hint = did_you_mean(id, self.purposes.keys().map(String::as_str));
                if hint.is_empty() {
                    hint = format!(" (declare it in {PURPOSES_FILE} first)");
                }
                ctx.at(p, format!("unknown purpose \"{id}\"{hint}"));
                ok = false;
            } else if out.contains(id) {
                ctx.at(p, format!("purpose \"{id}\" is listed twice"));
                ok = false;
            } else {
                out.push(id.clone());
            }
        }
        ok.then_some(out)
    }
}

fn compile_grant(
    ctx: &mut FileCtx<'_>,
    env: &Env<'_>,
    rule: RuleRef,
    g: raw::RawGrant,
) -> Option<Grant> {
    let before = ctx.diags.len();
    let consumer = env.consumer(ctx, &g.consumer);
    if !is_id(g.dataset.get_ref()) {
        ctx.at(&g.dataset, bad_id("dataset name", g.dataset.get_ref()));
    }
    let purposes = env.purposes(ctx, &g.purposes);
    let applications = g
        .applications
        .as_ref()
        .map(|list| compile_applications(ctx, list));

    let legal_bases = match &g.legal_bases {
        None => None,
        Some(list) => {
            if list.get_ref().is_empty() {
                ctx.at(
                    list,
                    "legal_bases is empty: remove it to accept any legal basis, or list them",
                );
            }
            let mut out: Vec<String> = Vec::new();
            for b in list.get_ref() {
                if b.get_ref().trim().is_empty() {
                    ctx.at(b, "empty legal basis");
                } else if !is_code(b.get_ref()) {
                    ctx.at(
                        b,
                        format!(
                            "legal basis \"{}\" is not a code: list codes of 1 to {REFERENCE_MAX} letters, digits \
                             and . _ : / - (for example \"social-welfare-act:s12\"), which requests cite; \
                             the law's own words belong in the agreement's description",
                            b.get_ref()
                        ),
                    );
                } else if out.contains(b.get_ref()) {
                    ctx.at(
                        b,
                        format!("legal basis \"{}\" is listed twice", b.get_ref()),
                    );
                } else {
                    out.push(b.get_ref().clone());
                }
            }
            Some(out)
        }
    };

    let mut fields: Vec<FieldRelease> = Vec::new();
    let mut spans = Spans {
        id: g.id.span().start,
        dataset: g.dataset.span().start,
        ..Spans::default()
    };
    if g.fields.get_ref().is_empty() {
        ctx.at(
            &g.fields,
            "fields is empty: a grant releases at least one field",
        );
    }
    for f in g.fields.get_ref() {
        let name = f.get_ref();
        if !is_name(name) {
            ctx.at(f, bad_name("field name", name));
        } else if fields.iter().any(|r| &r.name == name) {
            ctx.at(f, format!("field \"{name}\" is listed twice"));
        } else {
            fields.push(FieldRelease {
                name: name.clone(),
                mask: None,
            });
            spans.fields.push(f.span().start);
            spans.masks.push(None);
        }
    }
    for (field, mask) in &g.masks {
        let Some(at) = fields.iter().position(|r| &r.name == field.get_ref()) else {
            let hint = did_you_mean(
                field.get_ref(),
                g.fields.get_ref().iter().map(|f| f.get_ref().as_str()),
            );
            ctx.at(
                field,
                format!(
                    "mask for \"{}\", which is not a released field{hint}",
                    field.get_ref()
                ),
            );
            continue;
        };
        match mask.get_ref().parse::<Mask>() {
            Ok(m) => {
                fields[at].mask = Some(m);
                if let Some(slot) = spans.masks.get_mut(at) {
                    *slot = Some(mask.span().start);
                }
            }
            Err(e) => ctx.at(mask, e),
        }
    }

    let (params, param_spans) = compile_params(ctx, &g.params);
    spans.params = param_spans;
    let (row_filter, column_spans) = compile_row_filter(ctx, &g.row_filter);
    spans.columns = column_spans;

    let max_rows = match &g.max_rows {
        None => None,
        Some(n) if *n.get_ref() >= 1 => u64::try_from(*n.get_ref()).ok(),
        Some(n) => {
            ctx.at(n, "max_rows must be at least 1");
            None
        }
    };

    let rate_limit = g.rate_limit.as_ref().and_then(|r| compile_rate(ctx, r));
    let window = compile_window(ctx, g.valid_from.as_ref(), g.valid_until.as_ref());

    if ctx.diags.len() != before {
        return None;
    }
    let (consumer, mut consumers) = consumer?;
    consumers.sort();
    Some(Grant {
        rule,
        consumer,
        consumers,
        dataset: g.dataset.into_inner(),
        purposes: purposes?,
        applications,
        legal_bases,
        fields,
        params,
        row_filter,
        max_rows,
        rate_limit,
        require_case: g.require_case,
        window,
        spans,
    })
}

fn compile_deny(
    ctx: &mut FileCtx<'_>,
    env: &Env<'_>,
    rule: RuleRef,
    d: raw::RawDeny,
) -> Option<DenyRule> {
    let before = ctx.diags.len();
    let consumer = match &d.consumer {
        None => Some((ConsumerSpec::Any, Vec::new())),
        Some(c) => env.consumer(ctx, c),
    };
    if let Some(ds) = &d.dataset {
        if !is_id(ds.get_ref()) {
            ctx.at(ds, bad_id("dataset name", ds.get_ref()));
        }
    }
    let purposes = match &d.purposes {
        None => Some(None),
        Some(p) => env.purposes(ctx, p).map(Some),
    };
    let applications = d
        .applications
        .as_ref()
        .map(|list| compile_applications(ctx, list));
    let (params, param_spans) = compile_params(ctx, &d.params);
    let spans = Spans {
        id: d.id.span().start,
        dataset: d
            .dataset
            .as_ref()
            .map_or(d.id.span().start, |ds| ds.span().start),
        params: param_spans,
        ..Spans::default()
    };
    let window = compile_window(ctx, d.valid_from.as_ref(), d.valid_until.as_ref());
    if ctx.diags.len() != before {
        return None;
    }
    let (consumer, mut consumers) = consumer?;
    consumers.sort();
    let message = match d.reason {
        Some(r) if !r.trim().is_empty() => format!("{r} (deny rule \"{}\")", rule.id),
        _ => format!("denied by rule \"{}\"", rule.id),
    };
    Some(DenyRule {
        rule,
        consumer,
        consumers,
        dataset: d.dataset.map(Spanned::into_inner),
        purposes: purposes?,
        applications,
        params,
        window,
        message,
        spans,
    })
}

/// An `applications` list: at least one id, each well-formed and listed once. The ids are kept in
/// the order written (a problem is reported, and the rule then does not compile).
fn compile_applications(ctx: &mut FileCtx<'_>, list: &Spanned<raw::Strings>) -> Vec<String> {
    if list.get_ref().is_empty() {
        ctx.at(
            list,
            "applications is empty: list at least one application id, or omit the key to cover every application",
        );
    }
    let mut out: Vec<String> = Vec::new();
    for a in list.get_ref() {
        let id = a.get_ref();
        if !is_application_id(id) {
            // The usual slips: capitals, and `_` for `-`.
            let fixed = id.to_ascii_lowercase().replace('_', "-");
            let hint = if fixed != *id && is_application_id(&fixed) {
                format!(" (did you mean \"{fixed}\"?)")
            } else {
                String::new()
            };
            ctx.at(
                a,
                format!(
                    "invalid application id \"{}\": use lowercase letters, digits and '-', \
                     1 to {APPLICATION_ID_MAX} characters, not starting with '-'{hint}",
                    id.escape_debug()
                ),
            );
        } else if out.contains(id) {
            ctx.at(a, format!("application \"{id}\" is listed twice"));
        } else {
            out.push(id.clone());
        }
    }
    out
}

fn compile_rate(ctx: &mut FileCtx<'_>, r: &Spanned<raw::RawRateLimit>) -> Option<RateLimit> {
    let raw = r.get_ref();
    if raw.per_minute.is_none() && raw.per_day.is_none() {
        ctx.at(r, "rate_limit needs per_minute, per_day or both");
        return None;
    }
    let mut positive = |v: &Option<Spanned<i64>>, what: &str| -> Option<u64> {
        let v = v.as_ref()?;
        match u64::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                ctx.at(v, format!("{what} must be at least 1"));
                None
            }
        }
    };
    let per_minute = positive(&raw.per_minute, "per_minute");
    let per_day = positive(&raw.per_day, "per_day");
    Some(RateLimit {
        per_minute,
        per_day,
    })
}

fn compile_window(
    ctx: &mut FileCtx<'_>,
    from: Option<&Spanned<toml::Value>>,
    until: Option<&Spanned<toml::Value>>,
) -> Window {
    let mut instant = |v: Option<&Spanned<toml::Value>>, what: &str| -> Option<i64> {
        let v = v?;
        match instant(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.at(v, format!("{what}: {e}"));
                None
            }
        }
    };
    let window = Window {
        valid_from: instant(from, "valid_from"),
        valid_until: instant(until, "valid_until"),
    };
    if let (Some(f), Some(u), Some(span)) = (window.valid_from, window.valid_until, until) {
        if u <= f {
            ctx.at(
                span,
                "valid_until must be later than valid_from (valid_until is exclusive)",
            );
        }
    }
    window
}

/// Unix seconds of an RFC 3339 date-time (TOML or string), or of a bare date at 00:00 UTC.
pub(crate) fn instant(v: &toml::Value) -> Result<i64, String> {
    let text = match v {
        toml::Value::Datetime(dt) => dt.to_string(),
        toml::Value::String(s) => s.clone(),
        _ => return Err("expected an RFC 3339 date-time such as 2025-01-01T00:00:00Z".to_string()),
    };
    parse_instant(&text)
}

pub(crate) fn parse_instant(text: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, &date_format) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    if text.len() > 10
        && text
            .as_bytes()
            .get(10)
            .is_some_and(|b| *b == b'T' || *b == b' ')
    {
        return Err(format!(
            "\"{text}\" needs a UTC offset, as in 2025-01-01T00:00:00Z or 2025-01-01T00:00:00+02:00"
        ));
    }
    Err(format!(
        "\"{text}\" is not an RFC 3339 date-time such as 2025-01-01T00:00:00Z"
    ))
}

/// A scalar literal (string, number, boolean, date-time as text).
pub(crate) fn scalar(v: &toml::Value) -> Result<Value, String> {
    match v {
        toml::Value::String(s) => Ok(Value::String(s.clone())),
        toml::Value::Integer(i) => Ok(Value::from(*i)),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| "numbers must be finite".to_string()),
        toml::Value::Boolean(b) => Ok(Value::Bool(*b)),
        toml::Value::Datetime(d) => Ok(Value::String(d.to_string())),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            Err("expected a single value (text, number or boolean)".to_string())
        }
    }
}

fn bound(v: &toml::Value) -> Option<Bound> {
    match v {
        toml::Value::Integer(i) => Some(Bound::Number(*i as f64)),
        toml::Value::Float(f) if f.is_finite() => Some(Bound::Number(*f)),
        toml::Value::String(s) => Some(Bound::Text(s.clone())),
        toml::Value::Datetime(d) => Some(Bound::Text(d.to_string())),
        _ => None,
    }
}

fn compile_params(
    ctx: &mut FileCtx<'_>,
    raw: &BTreeMap<Spanned<String>, Spanned<raw::RawConstraint>>,
) -> (Vec<(String, ParamConstraint)>, Vec<usize>) {
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for (name, c) in raw {
        if !is_name(name.get_ref()) {
            ctx.at(name, bad_name("parameter name", name.get_ref()));
            continue;
        }
        if let Some(pc) = compile_constraint(ctx, name, c) {
            out.push((name.get_ref().clone(), pc));
            spans.push(name.span().start);
        }
    }
    (out, spans)
}

fn compile_constraint(
    ctx: &mut FileCtx<'_>,
    name: &Spanned<String>,
    c: &Spanned<raw::RawConstraint>,
) -> Option<ParamConstraint> {
    let raw = c.get_ref();
    let before = ctx.diags.len();
    let mut out = ParamConstraint::default();
    if raw.exact.is_none() && raw.one_of.is_none() && raw.pattern.is_none() && raw.range.is_none() {
        ctx.at(
            name,
            format!(
                "constraint on parameter \"{}\" has no operator (use exact, one_of, pattern or range)",
                name.get_ref()
            ),
        );
        return None;
    }
    if let Some(e) = &raw.exact {
        match scalar(e.get_ref()) {
            Ok(v) => out.exact = Some(v),
            Err(msg) => ctx.at(e, format!("exact: {msg}")),
        }
    }
    if let Some(list) = &raw.one_of {
        if list.get_ref().is_empty() {
            ctx.at(list, "one_of is empty: nothing could ever match");
        }
        let mut values = Vec::new();
        for v in list.get_ref() {
            match scalar(v) {
                Ok(v) => values.push(v),
                Err(msg) => ctx.at(list, format!("one_of: {msg}")),
            }
        }
        out.one_of = Some(values);
    }
    if let Some(p) = &raw.pattern {
        match Glob::new(p.get_ref()) {
            Ok(g) => out.pattern = Some(g),
            Err(msg) => ctx.at(p, format!("pattern: {msg}")),
        }
    }
    if let Some(r) = &raw.range {
        let items = r.get_ref();
        let bounds: Vec<Option<Bound>> = items.iter().map(bound).collect();
        match bounds.as_slice() {
            [Some(Bound::Number(lo)), Some(Bound::Number(hi))] => {
                if lo > hi {
                    ctx.at(r, "range: the lower bound is greater than the upper bound");
                }
                out.range = Some((Bound::Number(*lo), Bound::Number(*hi)));
            }
            [Some(Bound::Text(lo)), Some(Bound::Text(hi))] => {
                if lo > hi {
                    ctx.at(r, "range: the lower bound is greater than the upper bound");
                }
                out.range = Some((Bound::Text(lo.clone()), Bound::Text(hi.clone())));
            }
            _ => ctx.at(
                r,
                "range: write [low, high] with two numbers or two texts/dates (both inclusive)",
            ),
        }
    }
    (ctx.diags.len() == before).then_some(out)
}

fn compile_row_filter(
    ctx: &mut FileCtx<'_>,
    raw: &[Spanned<raw::RawRowPredicate>],
) -> (Vec<RowPredicate>, Vec<usize>) {
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for p in raw {
        let p = p.get_ref();
        if !is_name(p.column.get_ref()) {
            ctx.at(&p.column, bad_name("column name", p.column.get_ref()));
            continue;
        }
        let op = match RowOp::ALL.iter().find(|(s, _)| s == p.op.get_ref()) {
            Some((_, op)) => *op,
            None => {
                let names = RowOp::ALL.iter().map(|(s, _)| *s);
                let mut hint = did_you_mean(p.op.get_ref(), names);
                if hint.is_empty() {
                    hint = " (operators: =, !=, <, <=, >, >=, in, not-in)".to_string();
                }
                ctx.at(
                    &p.op,
                    format!("unknown operator \"{}\"{hint}", p.op.get_ref()),
                );
                continue;
            }
        };
        let value = if matches!(op, RowOp::In | RowOp::NotIn) {
            match p.value.get_ref() {
                toml::Value::Array(items) if !items.is_empty() => {
                    match items.iter().map(scalar).collect::<Result<Vec<_>, _>>() {
                        Ok(v) => Value::Array(v),
                        Err(msg) => {
                            ctx.at(&p.value, msg);
                            continue;
                        }
                    }
                }
                _ => {
                    ctx.at(
                        &p.value,
                        format!("operator \"{}\" needs a non-empty list", op.as_str()),
                    );
                    continue;
                }
            }
        } else {
            match scalar(p.value.get_ref()) {
                Ok(v) => v,
                Err(msg) => {
                    ctx.at(&p.value, msg);
                    continue;
                }
            }
        };
        out.push(RowPredicate {
            column: p.column.get_ref().clone(),
            op,
            value,
        });
        spans.push(p.column.span().start);
    }
    (out, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_suggests() {
        assert_eq!(
            humanize("unknown field `feilds`, expected one of `id`, `fields`, `dataset`"),
            "unknown field \"feilds\" (did you mean \"fields\"?)"
        );
        assert_eq!(
            humanize("unknown field `zzz`, expected `a` or `b`"),
            "unknown field \"zzz\" (allowed: a, b)"
        );
        assert_eq!(humanize("missing field `id`"), "missing field \"id\"");
        assert_eq!(
            humanize("invalid table header\nexpected `.`, `]`\n"),
            "invalid table header; expected `.`, `]`"
        );
    }

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1970-01-02T00:00:00Z"), Ok(86_400));
        assert_eq!(parse_instant("1970-01-02T02:00:00+02:00"), Ok(86_400));
        assert_eq!(parse_instant("1970-01-02"), Ok(86_400));
        assert!(parse_instant("1970-01-02T00:00:00")
            .unwrap_err()
            .contains("needs a UTC offset"));
        assert!(parse_instant("yesterday").is_err());
    }

    #[test]
    fn ids_and_names() {
        assert!(is_id("social-welfare"));
        assert!(is_id("v1.2_x"));
        assert!(!is_id("-x"));
        assert!(!is_id("a b"));
        assert!(!is_id(""));
        assert!(is_name("birth_date"));
        assert!(!is_name("birth-date"));
        assert!(!is_name("1x"));
        assert!(is_application_id("benefits-portal"));
        assert!(is_application_id("a"));
        assert!(is_application_id("7-app-"));
        assert!(is_application_id(&"a".repeat(63)));
        assert!(!is_application_id(&"a".repeat(64)));
        assert!(!is_application_id(""));
        assert!(!is_application_id("-portal"));
        assert!(!is_application_id("Benefits-Portal"));
        assert!(!is_application_id("benefits_portal"));
        assert!(!is_application_id("benefits.portal"));
        assert!(!is_application_id("b\u{e9}n\u{e9}fits"));
        assert!(!is_application_id("benefits portal"));
    }
}
