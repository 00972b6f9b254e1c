//! `causeway policy check`: everything that is wrong with a policy directory (errors) and
//! everything that is suspicious (warnings), optionally against the provider's datasets.
//!
//! Errors are load errors plus, when a [`DatasetCatalog`] is given, references to datasets,
//! fields, parameters and columns that do not exist, masks that cannot apply to a field's type, and
//! parameter literals that are not in the canonical form the provider compares in
//! ([`noncanonical_literals`]). Warnings are rules that can never take effect (shadowed by an
//! earlier grant, or refused by an unconditional deny rule), overlapping grants that release
//! different fields, and constraints on parameters (or subjects) that take any text.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compile::SourceFile;
use crate::error::{Diagnostic, LineIndex, LoadError, Position};
use crate::mask::Mask;
use crate::rules::{Bound, ConsumerSpec, DenyRule, Grant, ParamConstraint, Window};
use crate::set::PolicySet;
use crate::suggest::did_you_mean;

/// The type of a dataset field's values, as the datasets file declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ValueKind {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// A number.
    Float,
    /// True or false.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 date and time.
    Datetime,
}

impl ValueKind {
    /// The name used in datasets files.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Integer => "integer",
            ValueKind::Float => "float",
            ValueKind::Boolean => "boolean",
            ValueKind::Date => "date",
            ValueKind::Datetime => "datetime",
        }
    }
}

/// What a mask needs of a field's type; `None` when it applies to any type.
fn mask_applies(mask: Mask, kind: ValueKind) -> Result<(), &'static str> {
    let ok = match mask {
        Mask::Redact | Mask::Hash => true,
        Mask::Last(_) => matches!(kind, ValueKind::String | ValueKind::Integer),
        Mask::Year => matches!(kind, ValueKind::Date | ValueKind::Datetime),
        Mask::Round(_) => matches!(kind, ValueKind::Integer | ValueKind::Float),
    };
    if ok {
        return Ok(());
    }
    Err(match mask {
        Mask::Last(_) => "string and integer fields",
        Mask::Year => "date and datetime fields",
        _ => "integer and float fields",
    })
}

/// A provider's canonical form of one parameter's values (the datasets file's `normalize`): the
/// form in which the gateway decides, so the only form in which a policy literal can ever match.
pub type CanonicalForm = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What the policy engine needs to know about one dataset parameter.
#[derive(Clone)]
pub struct ParamSchema {
    /// Its name.
    pub name: String,
    /// Any text is accepted (a string parameter without a pattern): a policy that constrains it,
    /// or a subject tag, meets every spelling the database may read as the same value.
    pub free_text: bool,
    /// How the provider brings a value to its canonical form before deciding; `None` when values
    /// are compared as sent.
    pub canonical: Option<CanonicalForm>,
}

impl ParamSchema {
    /// A parameter compared as sent, whose values are constrained by their type or a pattern.
    pub fn new(name: impl Into<String>) -> ParamSchema {
        ParamSchema {
            name: name.into(),
            free_text: false,
            canonical: None,
        }
    }
}

impl std::fmt::Debug for ParamSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamSchema")
            .field("name", &self.name)
            .field("free_text", &self.free_text)
            .field("canonical", &self.canonical.is_some())
            .finish()
    }
}

/// What the policy engine needs to know about one dataset: its fields with their types, its
/// parameters and its subject. The gateway builds it from its datasets file.
#[derive(Debug, Clone, Default)]
pub struct DatasetSchema {
    /// The dataset name.
    pub name: String,
    /// Its fields (result columns) and their types.
    pub fields: Vec<(String, ValueKind)>,
    /// Its parameters.
    pub params: Vec<ParamSchema>,
    /// The parameter that identifies the data subject, if known.
    pub subject: Option<String>,
}

impl DatasetSchema {
    /// A dataset with no fields or parameters yet.
    pub fn new(name: impl Into<String>) -> DatasetSchema {
        DatasetSchema {
            name: name.into(),
            ..DatasetSchema::default()
        }
    }

    /// Add a field.
    pub fn field(mut self, name: impl Into<String>, kind: ValueKind) -> DatasetSchema {
        self.fields.push((name.into(), kind));
        self
    }

    /// Add a parameter compared as sent ([`ParamSchema::new`]).
    pub fn param(self, name: impl Into<String>) -> DatasetSchema {
        self.param_schema(ParamSchema::new(name))
    }

    /// Add a parameter described in full.
    pub fn param_schema(mut self, param: ParamSchema) -> DatasetSchema {
        self.params.push(param);
        self
    }

    /// Name the subject parameter.
    pub fn subject(mut self, name: impl Into<String>) -> DatasetSchema {
        self.subject = Some(name.into());
        self
    }

    fn kind(&self, field: &str) -> Option<ValueKind> {
        self.fields
            .iter()
            .find(|(n, _)| n == field)
            .map(|(_, k)| *k)
    }

    fn param_named(&self, name: &str) -> Option<&ParamSchema> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// The datasets a provider offers, for checking policies against them.
#[derive(Debug, Clone, Default)]
pub struct DatasetCatalog {
    datasets: BTreeMap<String, DatasetSchema>,
}

impl DatasetCatalog {
    /// An empty catalog.
    pub fn new() -> DatasetCatalog {
        DatasetCatalog::default()
    }

    /// Add (or replace) a dataset.
    pub fn insert(&mut self, schema: DatasetSchema) {
        self.datasets.insert(schema.name.clone(), schema);
    }

    /// Builder form of [`DatasetCatalog::insert`].
    pub fn with(mut self, schema: DatasetSchema) -> DatasetCatalog {
        self.insert(schema);
        self
    }

    /// The dataset called `name`.
    pub fn get(&self, name: &str) -> Option<&DatasetSchema> {
        self.datasets.get(name)
    }
}

/// The result of checking a policy directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Problems that stop the set from loading or that contradict the datasets.
    pub errors: Vec<Diagnostic>,
    /// Rules that can never take effect, and overlapping grants.
    pub warnings: Vec<Diagnostic>,
    /// The content hash, when the set loads.
    pub policy_hash: Option<String>,
    /// Number of grants (when the set loads).
    pub grants: usize,
    /// Number of deny rules (when the set loads).
    pub denies: usize,
}

impl Report {
    /// Whether there are no errors (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Check the policy directory `dir`, and its references to `datasets` when given.
pub fn check(dir: &Path, datasets: Option<&DatasetCatalog>) -> Report {
    report(PolicySet::load_dir(dir), dir, datasets)
}

/// [`check`] over in-memory `(file name, content)` pairs.
pub fn check_sources(files: &[(String, String)], datasets: Option<&DatasetCatalog>) -> Report {
    report(PolicySet::from_sources(files), Path::new(""), datasets)
}

/// Every literal of a parameter constraint (`exact`, `one_of`, a text `range` bound, a `pattern`)
/// that is not in the canonical form its dataset declares for that parameter. The provider decides
/// on canonical values, so such a literal never matches: a deny rule on `"Alice"` would protect
/// nobody once `Alice` is compared as `alice`. A deny rule without a dataset is checked against
/// every dataset that has the parameter. The gateway refuses to load a set with any of these; they
/// are errors of [`check`] too.
pub fn noncanonical_literals(set: &PolicySet, datasets: &DatasetCatalog) -> Vec<Diagnostic> {
    let mut checker = Checker::new(set);
    checker.literals(datasets);
    checker.errors
}

/// [`check`] for a set that is already loaded.
pub fn check_set(set: &PolicySet, datasets: Option<&DatasetCatalog>) -> Report {
    let mut checker = Checker::new(set);
    if let Some(catalog) = datasets {
        checker.datasets(catalog);
        checker.literals(catalog);
    }
    checker.shadowing();
    let mut errors = checker.errors;
    let mut warnings = checker.warnings;
    errors.sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
    warnings.sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
    warnings.dedup();
    Report {
        errors,
        warnings,
        policy_hash: Some(set.hash().to_string()),
        grants: set.grants().len(),
        denies: set.denies().len(),
    }
}

fn report(
    loaded: Result<PolicySet, LoadError>,
    dir: &Path,
    datasets: Option<&DatasetCatalog>,
) -> Report {
    match loaded {
        Ok(set) => check_set(&set, datasets),
        Err(LoadError::Invalid { diagnostics }) => Report {
            errors: diagnostics,
            ..Report::default()
        },
        Err(other) => Report {
            errors: vec![Diagnostic {
                file: dir.to_path_buf(),
                position: None,
                message: other.to_string(),
            }],
            ..Report::default()
        },
    }
}

struct Checker<'a> {
    set: &'a PolicySet,
    files: HashMap<&'a str, (&'a SourceFile, LineIndex)>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn new(set: &'a PolicySet) -> Checker<'a> {
        let files = set
            .sources()
            .iter()
            .map(|s| (s.name.as_str(), (s, LineIndex::new(&s.text))))
            .collect();
        Checker {
            set,
            files,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn diag(&self, file: &str, offset: Option<usize>, line: u32, message: String) -> Diagnostic {
        match self.files.get(file) {
            Some((source, lines)) => Diagnostic {
                file: source.display.clone(),
                position: Some(match offset {
                    Some(o) => lines.position(&source.text, o),
                    None => Position { line, col: 1 },
                }),
                message,
            },
            None => Diagnostic {
                file: PathBuf::from(file),
                position: None,
                message,
            },
        }
    }

    fn error_at(&mut self, file: &str, offset: usize, message: String) {
        let d = self.diag(file, Some(offset), 0, message);
        self.errors.push(d);
    }

    fn warn_at(&mut self, file: &str, offset: usize, message: String) {
        let d = self.diag(file, Some(offset), 0, message);
        self.warnings.push(d);
    }

    fn warn_rule(&mut self, file: &str, line: u32, message: String) {
        let d = self.diag(file, None, line, message);
        self.warnings.push(d);
    }

    fn datasets(&mut self, catalog: &DatasetCatalog) {
        let names = || catalog.datasets.keys().map(String::as_str);
        for g in self.set.grants() {
            let file = g.rule.file.as_str();
            let Some(ds) = catalog.get(&g.dataset) else {
                let hint = did_you_mean(&g.dataset, names());
                self.error_at(
                    file,
                    g.spans.dataset,
                    format!("unknown dataset \"{}\"{hint}", g.dataset),
                );
                continue;
            };
            let field_names = || ds.fields.iter().map(|(n, _)| n.as_str());
            for (i, f) in g.fields.iter().enumerate() {
                let at = g.spans.fields.get(i).copied().unwrap_or(g.spans.id);
                match ds.kind(&f.name) {
                    None => {
                        let hint = did_you_mean(&f.name, field_names());
                        self.error_at(
                            file,
                            at,
                            format!("dataset \"{}\" has no field \"{}\"{hint}", ds.name, f.name),
                        );
                    }
                    Some(kind) => {
                        if let Some(mask) = f.mask {
                            if let Err(needs) = mask_applies(mask, kind) {
                                let at = g.spans.masks.get(i).copied().flatten().unwrap_or(at);
                                self.error_at(
                                    file,
                                    at,
                                    format!(
                                        "mask \"{mask}\" cannot apply to field \"{}\" of type {} (it applies to {needs})",
                                        f.name,
                                        kind.as_str()
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            self.params(file, ds, &g.params, &g.spans.params, g.spans.id);
            if let Some(subject) = ds.subject.as_deref() {
                if ds.param_named(subject).is_some_and(|p| p.free_text) {
                    self.warn_at(
                        file,
                        g.spans.dataset,
                        format!(
                            "dataset \"{}\" identifies its subject by \"{subject}\", which has no pattern: \
                             spellings the database reads as one id are tagged as different subjects \
                             (give it a pattern, and a normalize, in the datasets file)",
                            ds.name
                        ),
                    );
                }
            }
            for (i, p) in g.row_filter.iter().enumerate() {
                if ds.kind(&p.column).is_none() {
                    let at = g.spans.columns.get(i).copied().unwrap_or(g.spans.id);
                    let hint = did_you_mean(&p.column, field_names());
                    self.error_at(
                        file,
                        at,
                        format!(
                            "row_filter: dataset \"{}\" has no field \"{}\"{hint}",
                            ds.name, p.column
                        ),
                    );
                }
            }
        }
        for d in self.set.denies() {
            let file = d.rule.file.as_str();
            let Some(name) = &d.dataset else { continue };
            match catalog.get(name) {
                None => {
                    let hint = did_you_mean(name, names());
                    self.error_at(
                        file,
                        d.spans.dataset,
                        format!("unknown dataset \"{name}\"{hint}"),
                    );
                }
                Some(ds) => self.params(file, ds, &d.params, &d.spans.params, d.spans.id),
            }
        }
    }

    fn params(
        &mut self,
        file: &str,
        ds: &DatasetSchema,
        params: &[(String, ParamConstraint)],
        spans: &[usize],
        fallback: usize,
    ) {
        for (i, (name, _)) in params.iter().enumerate() {
            let at = spans.get(i).copied().unwrap_or(fallback);
            match ds.param_named(name) {
                None => {
                    let hint = did_you_mean(name, ds.params.iter().map(|p| p.name.as_str()));
                    self.error_at(
                        file,
                        at,
                        format!("constraint on parameter \"{name}\", which dataset \"{}\" does not have{hint}", ds.name),
                    );
                }
                Some(p) if p.free_text => self.warn_at(
                    file,
                    at,
                    format!(
                        "constraint on parameter \"{name}\" of dataset \"{}\", which has no pattern: \
                         the database may read other spellings as the same value and the constraint \
                         would not see them (give it a pattern, and a normalize, in the datasets file)",
                        ds.name
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    /// Errors for literals not in their parameter's canonical form ([`noncanonical_literals`]).
    fn literals(&mut self, catalog: &DatasetCatalog) {
        let mut found: Vec<(String, usize, String)> = Vec::new();
        let mut look = |file: &str,
                        dataset: &DatasetSchema,
                        params: &[(String, ParamConstraint)],
                        spans: &[usize],
                        fallback: usize| {
            for (i, (name, constraint)) in params.iter().enumerate() {
                let Some(canonical) = dataset.param_named(name).and_then(|p| p.canonical.as_ref())
                else {
                    continue;
                };
                for literal in text_literals(constraint) {
                    let wanted = canonical(literal);
                    if wanted != literal {
                        let at = spans.get(i).copied().unwrap_or(fallback);
                        found.push((
                            file.to_owned(),
                            at,
                            format!(
                                "parameter \"{name}\" of dataset \"{}\" is compared in its canonical form, \
                                 so {literal:?} can never match (write {wanted:?})",
                                dataset.name
                            ),
                        ));
                    }
                }
            }
        };
        for g in self.set.grants() {
            if let Some(ds) = catalog.get(&g.dataset) {
                look(&g.rule.file, ds, &g.params, &g.spans.params, g.spans.id);
            }
        }
        for d in self.set.denies() {
            match &d.dataset {
                Some(name) => {
                    if let Some(ds) = catalog.get(name) {
                        look(&d.rule.file, ds, &d.params, &d.spans.params, d.spans.id);
                    }
                }
                None => {
                    for ds in catalog.datasets.values() {
                        look(&d.rule.file, ds, &d.params, &d.spans.params, d.spans.id);
                    }
                }
            }
        }
        found.dedup();
        for (file, at, message) in found {
            self.error_at(&file, at, message);
        }
    }

    fn shadowing(&mut self) {
        let grants = self.set.grants();
        let mut by_key: HashMap<(&str, &str, &str), Vec<usize>> = HashMap::new();
        for (i, g) in grants.iter().enumerate() {
            for c in &g.consumers {
                for p in &g.purposes {
                    by_key
                        .entry((c.as_str(), g.dataset.as_str(), p.as_str()))
                        .or_default()
                        .push(i);
                }
            }
        }
        let mut never_decides = vec![false; grants.len()];
        for (bi, b) in grants.iter().enumerate() {
            // Shadowed: for every (consumer, purpose) it covers, an earlier grant allows whatever it allows.
            let mut shadow: Option<&Grant> = None;
            let mut all_shadowed = true;
            let mut overlaps: Vec<(&Grant, String)> = Vec::new();
            for c in &b.consumers {
                for p in &b.purposes {
                    let earlier = by_key
                        .get(&(c.as_str(), b.dataset.as_str(), p.as_str()))
                        .map(|v| {
                            v.iter()
                                .copied()
                                .take_while(|&i| i < bi)
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    match earlier
                        .iter()
                        .map(|&i| &grants[i])
                        .find(|a| allows_all_of(a, b))
                    {
                        Some(a) => {
                            shadow.get_or_insert(a);
                        }
                        None => all_shadowed = false,
                    }
                    for &ai in earlier.iter().filter(|&&ai| !never_decides[ai]) {
                        let a = &grants[ai];
                        if a.fields != b.fields
                            && !disjoint_applications(a, b)
                            && !overlaps.iter().any(|(o, _)| o.rule == a.rule)
                        {
                            overlaps.push((a, format!("({c}, {}, {p})", b.dataset)));
                        }
                    }
                }
            }
            if all_shadowed {
                if let Some(a) = shadow {
                    never_decides[bi] = true;
                    self.warn_rule(
                        &b.rule.file,
                        b.rule.line,
                        format!(
                            "grant \"{}\" never decides: {} is checked first and allows every request it allows",
                            b.rule.id, a.rule
                        ),
                    );
                    continue;
                }
            }
            for (a, key) in overlaps {
                self.warn_rule(
                    &b.rule.file,
                    b.rule.line,
                    format!(
                        "grant \"{}\" overlaps {} for {key} but releases different fields; \
                         the first grant whose conditions hold decides",
                        b.rule.id, a.rule
                    ),
                );
            }
            if let Some(d) = self.set.denies().iter().find(|d| refuses_all_of(d, b)) {
                self.warn_rule(
                    &b.rule.file,
                    b.rule.line,
                    format!(
                        "grant \"{}\" can never allow: deny rule {} refuses all of it",
                        b.rule.id, d.rule
                    ),
                );
            }
        }
    }
}

/// The text a constraint compares request values with: `exact` and `one_of` strings, text `range`
/// bounds, and the `pattern` glob (whose literal characters must be canonical to ever match).
fn text_literals(c: &ParamConstraint) -> impl Iterator<Item = &str> {
    let exact = c.exact.iter().filter_map(|v| v.as_str());
    let one_of = c.one_of.iter().flatten().filter_map(|v| v.as_str());
    let range = c
        .range
        .iter()
        .flat_map(|(lo, hi)| [lo, hi])
        .filter_map(|b| match b {
            Bound::Text(t) => Some(t.as_str()),
            Bound::Number(_) => None,
        });
    let pattern = c.pattern.iter().map(|g| g.as_str());
    exact.chain(one_of).chain(range).chain(pattern)
}

/// Whether `a` allows every request `b` allows (for a consumer, dataset and purpose both cover).
fn allows_all_of(a: &Grant, b: &Grant) -> bool {
    let bases = match (&a.legal_bases, &b.legal_bases) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(ab), Some(bb)) => bb.iter().all(|x| ab.contains(x)),
    };
    let applications = match (&a.applications, &b.applications) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(aa), Some(ba)) => ba.iter().all(|x| aa.contains(x)),
    };
    let case = !a.require_case || b.require_case;
    let params = a.params.iter().all(|ap| b.params.contains(ap));
    applications && bases && case && params && window_contains(a.window, b.window)
}

/// Whether no request can satisfy both grants' `applications` (each lists its own, none in common):
/// then releasing different fields is the point, not an overlap.
fn disjoint_applications(a: &Grant, b: &Grant) -> bool {
    match (&a.applications, &b.applications) {
        (Some(aa), Some(ba)) => !aa.iter().any(|x| ba.contains(x)),
        _ => false,
    }
}

fn window_contains(outer: Window, inner: Window) -> bool {
    let from = match (outer.valid_from, inner.valid_from) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i >= o,
    };
    let until = match (outer.valid_until, inner.valid_until) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i <= o,
    };
    from && until
}

/// Whether an unconditional deny rule covers every (consumer, purpose) of a grant, and every
/// application it allows.
fn refuses_all_of(d: &DenyRule, g: &Grant) -> bool {
    let dataset = match &d.dataset {
        None => true,
        Some(ds) => *ds == g.dataset,
    };
    let consumers = matches!(d.consumer, ConsumerSpec::Any)
        || g.consumers.iter().all(|c| d.consumers.contains(c));
    let purposes = match &d.purposes {
        None => true,
        Some(ps) => g.purposes.iter().all(|p| ps.contains(p)),
    };
    d.params.is_empty()
        && d.window.is_always()
        && d.covers_applications_of(g)
        && dataset
        && consumers
        && purposes
}
