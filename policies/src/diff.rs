//! `causeway policy diff`: the effect of a policy change, as the (consumer, dataset, purpose, field)
//! access gained and lost, so a reviewer sees what a change does before it ships; and the files
//! added, removed and modified, for the `policy-change` ledger entry.
//!
//! Access is what some grant could ever release: groups are expanded to departments, grants that a
//! deny rule refuses outright (no parameters, no window, and no `applications` or all of the
//! grant's) are left out, and the grants' conditions (applications, windows, legal bases, case,
//! parameters) are not evaluated: narrowing or widening a grant's `applications` changes no access
//! tuple and is not reported. A field released under a different mask is reported as `changed`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rules::{ConsumerSpec, DenyRule, Grant};
use crate::set::PolicySet;

/// What happened to one access tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// The new set releases the field where the old one did not.
    Gained,
    /// The old set released the field and the new one does not.
    Lost,
    /// Both release it, under different masks.
    Changed,
}

/// One change of access between two policy sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccessChange {
    /// Gained, lost or changed.
    pub change: ChangeKind,
    /// The consumer department.
    pub consumer: String,
    /// The dataset.
    pub dataset: String,
    /// The purpose.
    pub purpose: String,
    /// The field.
    pub field: String,
    /// How the old set released it: `"unmasked"` or mask names (empty when it did not).
    pub before: Vec<String>,
    /// How the new set releases it (empty when it does not).
    pub after: Vec<String>,
}

impl fmt::Display for AccessChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.change {
            ChangeKind::Gained => '+',
            ChangeKind::Lost => '-',
            ChangeKind::Changed => '~',
        };
        write!(
            f,
            "{sign} {} {} {} {}",
            self.consumer, self.dataset, self.purpose, self.field
        )?;
        match self.change {
            ChangeKind::Changed => write!(
                f,
                " ({} -> {})",
                self.before.join(" | "),
                self.after.join(" | ")
            ),
            ChangeKind::Gained if self.after != ["unmasked"] => {
                write!(f, " ({})", self.after.join(" | "))
            }
            ChangeKind::Lost if self.before != ["unmasked"] => {
                write!(f, " ({})", self.before.join(" | "))
            }
            _ => Ok(()),
        }
    }
}

type Access = BTreeMap<(String, String, String, String), BTreeSet<String>>;

/// Whether `d` refuses every request `g` could allow for this consumer and purpose.
fn unconditional_deny_covers(d: &DenyRule, g: &Grant, consumer: &str, purpose: &str) -> bool {
    d.params.is_empty()
        && d.window.is_always()
        && d.covers_applications_of(g)
        && (matches!(d.consumer, ConsumerSpec::Any) || d.consumers.iter().any(|c| c == consumer))
        && !matches!(&d.dataset, Some(ds) if *ds != g.dataset)
        && !matches!(&d.purposes, Some(ps) if !ps.iter().any(|p| p == purpose))
}

fn access(set: &PolicySet) -> Access {
    let mut out = Access::new();
    for g in set.grants() {
        for c in &g.consumers {
            for p in &g.purposes {
                if set
                    .denies()
                    .iter()
                    .any(|d| unconditional_deny_covers(d, g, c, p))
                {
                    continue;
                }
                for field in &g.fields {
                    let how = field.mask.map_or("unmasked".to_string(), |m| m.to_string());
                    out.entry((c.clone(), g.dataset.clone(), p.clone(), field.name.clone()))
                        .or_default()
                        .insert(how);
                }
            }
        }
    }
    out
}

/// The access gained, lost and changed from `old` to `new`, sorted by consumer, dataset, purpose
/// and field.
pub fn diff(old: &PolicySet, new: &PolicySet) -> Vec<AccessChange> {
    let before = access(old);
    let after = access(new);
    let keys: BTreeSet<&(String, String, String, String)> =
        before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let b = before.get(key);
        let a = after.get(key);
        let change = match (b, a) {
            (None, Some(_)) => ChangeKind::Gained,
            (Some(_), None) => ChangeKind::Lost,
            (Some(b), Some(a)) if a != b => ChangeKind::Changed,
            _ => continue,
        };
        let (consumer, dataset, purpose, field) = key.clone();
        out.push(AccessChange {
            change,
            consumer,
            dataset,
            purpose,
            field,
            before: b.map(|s| s.iter().cloned().collect()).unwrap_or_default(),
            after: a.map(|s| s.iter().cloned().collect()).unwrap_or_default(),
        });
    }
    out
}

/// Which policy files differ between two sets (by name and content digest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChanges {
    /// Files only in the new set.
    pub added: Vec<String>,
    /// Files only in the old set.
    pub removed: Vec<String>,
    /// Files in both whose content differs.
    pub modified: Vec<String>,
}

impl FileChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

/// The files added, removed and modified from `old` to `new`, each list sorted by name.
pub fn file_changes(old: &PolicySet, new: &PolicySet) -> FileChanges {
    let before: BTreeMap<&str, &str> = old
        .files()
        .iter()
        .map(|f| (f.name.as_str(), f.sha256.as_str()))
        .collect();
    let after: BTreeMap<&str, &str> = new
        .files()
        .iter()
        .map(|f| (f.name.as_str(), f.sha256.as_str()))
        .collect();
    let mut out = FileChanges::default();
    for (name, digest) in &after {
        match before.get(name) {
            None => out.added.push(name.to_string()),
            Some(d) if d != digest => out.modified.push(name.to_string()),
            Some(_) => {}
        }
    }
    out.removed = before
        .keys()
        .filter(|n| !after.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    out
}
