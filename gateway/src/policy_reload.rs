//! The policy sets a gateway decides with, and their hot reload.
//!
//! [`LivePolicies`] holds the set in force for one policy directory behind an atomic swap, with the
//! outcome of the last reload attempt. [`ShadowPolicies`] is an optional candidate directory that
//! decides every request beside the active set without counting, so admins see what a change
//! would do to live traffic before they switch. [`PolicyWatch`] is the task that re-reads the
//! directories when a file changes (names, sizes and modification times are polled every second)
//! or on SIGHUP.
//!
//! A set is checked against the gateway's datasets as it loads: a parameter literal that is not in
//! the canonical form its dataset compares in (docs/POLICY.md, "Canonical parameters") is a load
//! error, since it could never match; a deny rule on `"Alice"` would protect nobody.
//!
//! Rules it keeps: a set that fails validation never replaces the running one (the error is logged
//! with its `file:line:col`, kept for `/readyz` and counted); every set that takes effect is first
//! notarized as one `policy-change` ledger entry carrying its hash and the files added, removed and
//! modified, and only then swapped in; a request takes one snapshot of the set, so a reload never
//! changes a decision halfway.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use causeway_adapters::{Dataset, FieldType, ParamType};
use causeway_policy::{
    file_changes, noncanonical_literals, CanonicalForm, DatasetCatalog, DatasetSchema, Decision,
    FileChanges, FileDigest, LoadError, ParamSchema, PolicySet, Request, ValueKind,
};
use serde_json::{json, Value};
use tokio::sync::watch;

use causeway_ledger::entry::{Entry, Kind};
use causeway_ledger::{Ledger, LedgerError};

/// How often the policy directories are polled for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a reload did not take effect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The directory could not be read or a file in it is invalid; every diagnostic is
    /// `file:line:col: message`.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The new set could not be notarized, so it was not put in force.
    #[error("the ledger cannot record the policy change, so the running set stays in force: {0}")]
    Ledger(#[from] LedgerError),
    /// The loading task did not finish (it panicked or the runtime is shutting down).
    #[error("the policy loader stopped unexpectedly: {0}")]
    Task(String),
}

/// What a reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The directory yields the set already in force.
    Unchanged,
    /// A new set took effect; its hash.
    Changed(String),
}

/// The policy set in force for one directory, swapped whole on reload, and how the last reload
/// went.
#[derive(Debug)]
pub struct LivePolicies {
    dir: Option<PathBuf>,
    datasets: Option<Arc<DatasetCatalog>>,
    set: Arc<RwLock<Arc<PolicySet>>>,
    last_error: Mutex<Option<String>>,
    failures: AtomicU64,
}

impl LivePolicies {
    /// Load `dir` (no directory: the empty set, which denies everything), checked against
    /// `datasets` (this load and every reload) when given.
    pub fn load(
        dir: Option<&Path>,
        datasets: Option<Arc<DatasetCatalog>>,
    ) -> Result<LivePolicies, LoadError> {
        let set = load(dir, datasets.as_deref())?;
        Ok(LivePolicies {
            dir: dir.map(Path::to_path_buf),
            datasets,
            set: Arc::new(RwLock::new(Arc::new(set))),
            last_error: Mutex::new(None),
            failures: AtomicU64::new(0),
        })
    }

    /// The shared slot the exchange pipeline reads (one snapshot per request).
    pub fn slot(&self) -> Arc<RwLock<Arc<PolicySet>>> {
        self.set.clone()
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        read_slot(&self.set)
    }

    /// The policy directory, if one is configured.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The error of the last reload attempt, if it failed (`None` once a later attempt succeeds).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many reload attempts have failed since start.
    pub fn reload_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The `/readyz` detail: hash in force, last error, failure count.
    pub fn status(&self) -> Value {
        json!({
            "dir": self.dir.as_ref().map(|d| d.display().to_string()),
            "hash": self.current().hash(),
            "last_error": self.last_error(),
            "reload_failures": self.reload_failures(),
        })
    }

    fn record_failure(&self, error: &ReloadError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
    }

    fn record_success(&self) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn swap(&self, set: Arc<PolicySet>) {
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = set;
    }

    /// Read the directory again. `notarize` is called with (old, new) before a different set is
    /// swapped in; if it fails, the running set stays.
    async fn reload<F, Fut>(&self, notarize: F) -> Result<Reloaded, ReloadError>
    where
        F: FnOnce(Arc<PolicySet>, Arc<PolicySet>) -> Fut,
        Fut: std::future::Future<Output = Result<(), ReloadError>>,
    {
        let result = async {
            let dir = self.dir.clone();
            let datasets = self.datasets.clone();
            let new =
                tokio::task::spawn_blocking(move || load(dir.as_deref(), datasets.as_deref()))
                    .await
                    .map_err(|e| ReloadError::Task(e.to_string()))??;
            let old = self.current();
            if new.hash() == old.hash() {
                return Ok(Reloaded::Unchanged);
            }
            let new = Arc::new(new);
            notarize(old, new.clone()).await?;
            let hash = new.hash().to_owned();
            self.swap(new);
            Ok(Reloaded::Changed(hash))
        }
        .await;
        match &result {
            Ok(_) => self.record_success(),
            Err(e) => self.record_failure(e),
        }
        result
    }
}

fn load(dir: Option<&Path>, datasets: Option<&DatasetCatalog>) -> Result<PolicySet, LoadError> {
    let set = match dir {
        Some(dir) => PolicySet::load_dir(dir)?,
        None => PolicySet::from_sources(&[])?,
    };
    if let Some(datasets) = datasets {
        let diagnostics = noncanonical_literals(&set, datasets);
        if !diagnostics.is_empty() {
            return Err(LoadError::Invalid { diagnostics });
        }
    }
    Ok(set)
}

/// What the policy engine needs to know of a datasets file's datasets: names, field types,
/// parameters with their canonical forms and whether they take any text, and subjects.
pub fn dataset_schemas<'a>(
    datasets: impl IntoIterator<Item = &'a Dataset>,
) -> Result<DatasetCatalog, String> {
    let mut catalog = DatasetCatalog::new();
    for dataset in datasets {
        let mut schema = DatasetSchema::new(&dataset.name).subject(&dataset.subject_param);
        for field in &dataset.fields {
            let kind = match field.ty {
                FieldType::String => ValueKind::String,
                FieldType::Integer => ValueKind::Integer,
                FieldType::Float => ValueKind::Float,
                FieldType::Boolean => ValueKind::Boolean,
                FieldType::Date => ValueKind::Date,
                FieldType::Datetime => ValueKind::Datetime,
                other => {
                    return Err(format!(
                        "field \"{}\" of dataset \"{}\" has type \"{}\", which the policy checker does not know yet",
                        field.name,
                        dataset.name,
                        other.as_str()
                    ))
                }
            };
            schema = schema.field(&field.name, kind);
        }
        for param in &dataset.params {
            let mut described = ParamSchema::new(&param.name);
            if let ParamType::String {
                pattern, normalize, ..
            } = &param.ty
            {
                described.free_text = pattern.is_none();
                if !normalize.is_none() {
                    let normalize = *normalize;
                    let canonical: CanonicalForm =
                        Arc::new(move |value: &str| normalize.canonical(value).into_owned());
                    described.canonical = Some(canonical);
                }
            }
            schema = schema.param_schema(described);
        }
        catalog.insert(schema);
    }
    Ok(catalog)
}

fn read_slot(slot: &RwLock<Arc<PolicySet>>) -> Arc<PolicySet> {
    // The lock only guards an Arc swap; a poisoned lock still holds a whole set.
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A candidate policy directory decided beside the active one. Only the active decision counts;
/// differences are counted and logged (reason codes and rules only, never parameters).
#[derive(Debug)]
pub struct ShadowPolicies {
    live: LivePolicies,
    differences: AtomicU64,
}

impl ShadowPolicies {
    /// Load the candidate directory, checked against `datasets` when given.
    pub fn load(
        dir: &Path,
        datasets: Option<Arc<DatasetCatalog>>,
    ) -> Result<ShadowPolicies, LoadError> {
        Ok(ShadowPolicies {
            live: LivePolicies::load(Some(dir), datasets)?,
            differences: AtomicU64::new(0),
        })
    }

    /// The candidate set and its reload status.
    pub fn live(&self) -> &LivePolicies {
        &self.live
    }

    /// How many requests the candidate decided differently from the active set since start.
    pub fn differences(&self) -> u64 {
        self.differences.load(Ordering::Relaxed)
    }

    /// Decide `request` with the candidate set and compare with the active decision (taken before
    /// rate limiting, which depends on traffic, not on policy). Returns the candidate's decision.
    pub fn observe(&self, request: &Request<'_>, active: &Decision) -> Decision {
        let candidate = self.live.current().decide(request);
        if differs(active, &candidate) {
            self.differences.fetch_add(1, Ordering::Relaxed);
            let rule = |d: &Decision| d.rule.as_ref().map(|r| format!("{}:{}", r.file, r.line));
            tracing::info!(
                consumer = request.consumer,
                dataset = request.dataset,
                purpose = request.purpose,
                active = %active.reason.code,
                active_rule = ?rule(active),
                shadow = %candidate.reason.code,
                shadow_rule = ?rule(&candidate),
                shadow_policy = %candidate.policy_hash,
                "the shadow policy set decides this request differently"
            );
        }
        candidate
    }

    /// The `/readyz` detail of the candidate set.
    pub fn status(&self) -> Value {
        let mut status = self.live.status();
        status["differences"] = json!(self.differences());
        status
    }
}

/// Whether two decisions differ in effect: allowed or not, why, and what would be released.
fn differs(a: &Decision, b: &Decision) -> bool {
    a.allowed != b.allowed
        || a.reason.code != b.reason.code
        || a.fields != b.fields
        || a.max_rows != b.max_rows
        || a.row_filter != b.row_filter
        || a.rate_limit != b.rate_limit
}

/// The `/readyz` detail of a gateway's policies: `{"hash", "last_error", "reload_failures",
/// "shadow": {..., "differences"}}`.
pub fn status(active: &LivePolicies, shadow: Option<&ShadowPolicies>) -> Value {
    let mut status = active.status();
    status["shadow"] = shadow.map_or(Value::Null, ShadowPolicies::status);
    status
}

/// What makes a directory "changed": its policy files' names, sizes and modification times (or
/// the error reading it).
type Fingerprint = Result<Vec<(String, u64, Option<SystemTime>)>, String>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // The same selection as PolicySet::load_dir; test files never change the set.
        if !name.ends_with(".toml") || name.ends_with(".test.toml") {
            continue;
        }
        let meta = std::fs::metadata(entry.path()).map_err(|e| e.to_string())?;
        out.push((name, meta.len(), meta.modified().ok()));
    }
    out.sort();
    Ok(out)
}

/// `None` when no directory is configured (nothing to watch).
async fn fingerprint_of(dir: Option<&Path>) -> Option<Fingerprint> {
    let dir = dir?.to_path_buf();
    let read = tokio::task::spawn_blocking(move || fingerprint(&dir)).await;
    Some(read.unwrap_or_else(|e| Err(e.to_string())))
}

/// Why a reload was attempted (recorded in the `policy-change` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A policy file was added, removed or modified.
    FileChange,
    /// The process received SIGHUP.
    Signal,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::FileChange => "file-change",
            Trigger::Signal => "sighup",
        }
    }
}

/// The reload task: watches the active (and shadow) policy directories and puts valid new sets in
/// force.
pub struct PolicyWatch {
    active: Arc<LivePolicies>,
    shadow: Option<Arc<ShadowPolicies>>,
    ledger: Arc<Ledger>,
}

impl PolicyWatch {
    /// Watch `active` (notarizing its changes in `ledger`) and `shadow`.
    pub fn new(
        active: Arc<LivePolicies>,
        shadow: Option<Arc<ShadowPolicies>>,
        ledger: Arc<Ledger>,
    ) -> PolicyWatch {
        PolicyWatch {
            active,
            shadow,
            ledger,
        }
    }

    /// Re-read the active directory now; a different valid set is notarized, then swapped in.
    pub async fn reload_active(&self, trigger: Trigger) -> Result<Reloaded, ReloadError> {
        let ledger = self.ledger.clone();
        let result = self
            .active
            .reload(|old, new| async move {
                let changes = file_changes(&old, &new);
                notarize(
                    &ledger,
                    &new,
                    Some(old.hash()),
                    Some(&changes),
                    trigger.as_str(),
                )
                .await
            })
            .await;
        log_outcome("active", self.active.dir(), &result);
        result
    }

    /// Re-read the shadow directory now (nothing is notarized: the candidate decides nothing).
    pub async fn reload_shadow(&self) -> Option<Result<Reloaded, ReloadError>> {
        let shadow = self.shadow.as_ref()?;
        let result = shadow.live.reload(|_, _| async { Ok(()) }).await;
        log_outcome("shadow", shadow.live.dir(), &result);
        Some(result)
    }

    /// Poll every [`POLL_INTERVAL`] and listen for SIGHUP until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let shadow_dir = self.shadow.as_ref().and_then(|s| s.live.dir());
        // Nothing seen yet: the first poll re-reads both directories once, which closes the window
        // between the start-up load and this task's first look (usually: unchanged, no entry).
        let unseen = || Some(Err("not yet read".to_owned()));
        let (mut active_seen, mut shadow_seen) = (unseen(), unseen());
        let mut rereads = crate::files::Rereads::new("policies", POLL_INTERVAL, stop);
        while let Some(why) = rereads.next().await {
            let trigger = match why {
                crate::files::Reread::Poll => Trigger::FileChange,
                crate::files::Reread::Signal => Trigger::Signal,
            };
            let active_now = fingerprint_of(self.active.dir()).await;
            if trigger == Trigger::Signal || active_now != active_seen {
                active_seen = active_now;
                let _ = self.reload_active(trigger).await;
            }
            let shadow_now = fingerprint_of(shadow_dir).await;
            if trigger == Trigger::Signal || shadow_now != shadow_seen {
                shadow_seen = shadow_now;
                let _ = self.reload_shadow().await;
            }
        }
    }
}

fn log_outcome(which: &str, dir: Option<&Path>, result: &Result<Reloaded, ReloadError>) {
    let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
    match result {
        Ok(Reloaded::Changed(hash)) => {
            tracing::info!(which, dir, policy = %hash, "policy set reloaded")
        }
        Ok(Reloaded::Unchanged) => {
            tracing::debug!(which, dir, "policy directory re-read; the set is unchanged")
        }
        Err(error) => tracing::error!(
            which,
            dir,
            %error,
            "policy reload failed; the running set stays in force"
        ),
    }
}

/// At start: record the set taking effect as a `policy-change` entry, unless the last one recorded
/// has the same hash. The summary of file changes is against the files the last entry recorded.
pub async fn notarize_at_start(ledger: &Ledger, set: &PolicySet) -> Result<(), ReloadError> {
    let last = ledger.last_of_kind(Kind::PolicyChange)?;
    let previous = last.as_ref().and_then(|e| e.policy.clone());
    if previous.as_deref() == Some(set.hash()) {
        return Ok(());
    }
    let recorded: Option<Vec<FileDigest>> = match &last {
        // No set was ever recorded: every file is new.
        None => Some(Vec::new()),
        Some(e) => e
            .detail
            .as_ref()
            .and_then(|d| d.get("files"))
            .and_then(|f| serde_json::from_value(f.clone()).ok()),
    };
    let changes = recorded.map(|old| changes_between(&old, set.files()));
    notarize(ledger, set, previous.as_deref(), changes.as_ref(), "start").await
}

/// Like [`causeway_policy::file_changes`], from recorded digests (the previous set is gone).
fn changes_between(old: &[FileDigest], new: &[FileDigest]) -> FileChanges {
    let find = |list: &[FileDigest], name: &str| {
        list.iter()
            .find(|f| f.name == name)
            .map(|f| f.sha256.clone())
    };
    let mut out = FileChanges::default();
    for f in new {
        match find(old, &f.name) {
            None => out.added.push(f.name.clone()),
            Some(d) if d != f.sha256 => out.modified.push(f.name.clone()),
            Some(_) => {}
        }
    }
    out.removed = old
        .iter()
        .filter(|f| find(new, &f.name).is_none())
        .map(|f| f.name.clone())
        .collect();
    out.added.sort();
    out.modified.sort();
    out.removed.sort();
    out
}

/// Append one `policy-change` entry: the new hash, the previous one, what triggered it, the files
/// changed (`null` when the previous files are unknown) and the new set's file digests (so the
/// next start can summarize its changes).
async fn notarize(
    ledger: &Ledger,
    set: &PolicySet,
    previous: Option<&str>,
    changes: Option<&FileChanges>,
    trigger: &str,
) -> Result<(), ReloadError> {
    let mut entry = Entry::new(Kind::PolicyChange);
    entry.policy = Some(set.hash().to_owned());
    entry.detail = Some(json!({
        "previous": previous,
        "trigger": trigger,
        "changes": changes,
        "files": set.files(),
    }));
    ledger.append(entry).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use causeway_policy::ReasonCode;

    use super::*;

    const PURPOSES: &str = "[[purpose]]\nid = \"statistics\"\ndescription = \"Statistics\"\n";

    fn grant(fields: &str) -> String {
        format!(
            "[[grant]]\nid = \"stats\"\nconsumer = \"statistics-office\"\ndataset = \"residents\"\n\
             purposes = [\"statistics\"]\nfields = [{fields}]\n"
        )
    }

    fn set(files: &[(&str, &str)]) -> PolicySet {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        PolicySet::from_sources(&files).expect("valid set")
    }

    fn shadow_of(candidate: PolicySet) -> ShadowPolicies {
        ShadowPolicies {
            live: LivePolicies {
                dir: None,
                datasets: None,
                set: Arc::new(RwLock::new(Arc::new(candidate))),
                last_error: Mutex::new(None),
                failures: AtomicU64::new(0),
            },
            differences: AtomicU64::new(0),
        }
    }

    #[test]
    fn shadow_counts_only_decisions_that_differ() {
        let active = set(&[("purposes.toml", PURPOSES), ("s.toml", &grant("\"name\""))]);
        let shadow = shadow_of(set(&[
            ("purposes.toml", PURPOSES),
            ("s.toml", &grant("\"name\", \"address\"")),
        ]));
        let params = BTreeMap::new();
        let request = Request {
            consumer: "statistics-office",
            dataset: "residents",
            purpose: "statistics",
            legal_basis: "",
            case: "",
            application: None,
            params: &params,
            at_unix: 1_700_000_000,
        };
        // Same decision (both deny with no-grant) for another consumer: not counted.
        let other = Request {
            consumer: "tax-office",
            ..request
        };
        let d = shadow.observe(&other, &active.decide(&other));
        assert_eq!(d.reason.code, ReasonCode::NoGrant);
        assert_eq!(shadow.differences(), 0);
        // The candidate releases one more field: counted, and the candidate's decision returned.
        let d = shadow.observe(&request, &active.decide(&request));
        assert_eq!(d.fields.len(), 2);
        assert_eq!(shadow.differences(), 1);
        assert_eq!(shadow.status()["differences"], json!(1));
    }

    #[test]
    fn changes_between_recorded_digests() {
        let digest = |name: &str, sha: &str| FileDigest {
            name: name.into(),
            sha256: sha.into(),
        };
        let old = [
            digest("a.toml", "1"),
            digest("b.toml", "2"),
            digest("c.toml", "3"),
        ];
        let new = [
            digest("a.toml", "1"),
            digest("b.toml", "9"),
            digest("d.toml", "4"),
        ];
        let changes = changes_between(&old, &new);
        assert_eq!(changes.added, ["d.toml"]);
        assert_eq!(changes.removed, ["c.toml"]);
        assert_eq!(changes.modified, ["b.toml"]);
    }

    #[tokio::test]
    async fn a_broken_directory_never_replaces_the_running_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("purposes.toml"), PURPOSES).expect("write");
        std::fs::write(dir.path().join("s.toml"), grant("\"name\"")).expect("write");
        let live = LivePolicies::load(Some(dir.path()), None).expect("loads");
        let before = live.current().hash().to_owned();

        std::fs::write(
            dir.path().join("s.toml"),
            "[[grant]]\nid = \"stats\"\nfeilds = 1\n",
        )
        .expect("write");
        let mut notarized = 0;
        let result = live
            .reload(|_, _| {
                notarized += 1;
                async { Ok(()) }
            })
            .await;
        assert!(matches!(result, Err(ReloadError::Load(_))), "{result:?}");
        assert_eq!(notarized, 0);
        assert_eq!(live.current().hash(), before);
        assert_eq!(live.reload_failures(), 1);
        let error = live.last_error().expect("error kept");
        assert!(error.contains("s.toml:3:1"), "{error}");

        std::fs::write(dir.path().join("s.toml"), grant("\"address\"")).expect("write");
        let result = live.reload(|_, _| async { Ok(()) }).await;
        assert!(matches!(result, Ok(Reloaded::Changed(_))), "{result:?}");
        assert_ne!(live.current().hash(), before);
        assert_eq!(live.last_error(), None);
        assert_eq!(live.reload_failures(), 1);
    }

    #[tokio::test]
    async fn a_deny_literal_that_is_not_canonical_never_goes_into_force() {
        let datasets = causeway_adapters::parse_datasets(
            "[[dataset]]\nname = \"residents\"\nadapter = \"sqlite\"\ndatabase = \"x.sqlite\"\n\
             query = \"SELECT name FROM residents WHERE name = :name\"\nsubject = \"name\"\n\
             [[dataset.param]]\nname = \"name\"\ntype = \"string\"\n\
             normalize = [\"trim\", \"casefold\"]\npattern = \"[a-z]+\"\n\
             [[dataset.field]]\nname = \"name\"\ntype = \"string\"\nclassification = \"personal\"\n",
        )
        .expect("valid datasets");
        let catalog = Arc::new(dataset_schemas(&datasets).expect("known types"));
        let deny = |literal: &str| {
            format!(
                "[[deny]]\nid = \"protected\"\ndataset = \"residents\"\n\
                 params = {{ name = {{ one_of = [\"{literal}\"] }} }}\n"
            )
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("purposes.toml"), PURPOSES).expect("write");
        std::fs::write(dir.path().join("d.toml"), deny("Alice")).expect("write");
        let refused = LivePolicies::load(Some(dir.path()), Some(catalog.clone()))
            .expect_err("refused at start")
            .to_string();
        assert!(
            refused.contains("d.toml:4:12:") && refused.contains("(write \"alice\")"),
            "{refused}"
        );

        std::fs::write(dir.path().join("d.toml"), deny("alice")).expect("write");
        let live = LivePolicies::load(Some(dir.path()), Some(catalog)).expect("loads");
        let before = live.current().hash().to_owned();
        std::fs::write(dir.path().join("d.toml"), deny("Bob ")).expect("write");
        let result = live.reload(|_, _| async { Ok(()) }).await;
        assert!(matches!(result, Err(ReloadError::Load(_))), "{result:?}");
        assert_eq!(live.current().hash(), before, "the running set stays");
    }

    #[tokio::test]
    async fn a_set_that_cannot_be_notarized_does_not_take_effect() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("purposes.toml"), PURPOSES).expect("write");
        let live = LivePolicies::load(Some(dir.path()), None).expect("loads");
        let before = live.current().hash().to_owned();
        std::fs::write(dir.path().join("s.toml"), grant("\"name\"")).expect("write");
        let result = live
            .reload(|_, _| async { Err(ReloadError::Task("ledger refused".into())) })
            .await;
        assert!(result.is_err());
        assert_eq!(live.current().hash(), before);
        assert_eq!(live.reload_failures(), 1);
    }
}
