//! The department's registered client applications (`applications.toml`) and its outbound rules:
//! which application may ask which provider for which datasets and purposes. Once an application
//! is registered, it may ask only what its rules allow (default deny).
//!
//! ```toml
//! [[application]]
//! id = "benefits-portal"              # its certificate names it (causeway certs issue-app)
//! name = "Benefits case management"
//! officers = "required"               # every request carries an officer's token (the default)
//!
//! [[application.may_ask]]
//! provider = "civil-registry"
//! datasets = ["residents"]            # or ["*"]
//! purposes = ["benefit-eligibility"]  # or ["*"]
//! ```
//!
//! `officers = "none"` registers a batch job that acts on its own: its requests carry no officer,
//! and the ledger records them as the application's.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::files::{position, toml_error};
use crate::identity::{AppId, DeptId};

/// Whether an application's requests carry an officer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Officers {
    /// Every request carries an officer's token (the default).
    #[default]
    Required,
    /// The application acts on its own (a batch job): no token.
    None,
}

/// One outbound rule: this provider, these datasets, these purposes (`*`: any).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MayAsk {
    /// The provider department.
    pub provider: DeptId,
    /// Datasets, or `["*"]`.
    pub datasets: Vec<String>,
    /// Purposes, or `["*"]`.
    pub purposes: Vec<String>,
}

/// A registered application.
#[derive(Debug, Clone)]
pub struct Application {
    /// Its id.
    pub id: AppId,
    /// Its display name.
    pub name: String,
    /// Whether its requests carry an officer.
    pub officers: Officers,
    /// What it may ask.
    pub may_ask: Vec<MayAsk>,
}

impl Application {
    /// Whether the outbound rules let this application ask `provider` for `dataset` for `purpose`.
    pub fn may_ask(&self, provider: &DeptId, dataset: &str, purpose: &str) -> bool {
        let matches = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        self.may_ask.iter().any(|rule| {
            rule.provider == *provider
                && matches(&rule.datasets, dataset)
                && matches(&rule.purposes, purpose)
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "application", default)]
    applications: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: toml::Spanned<AppId>,
    name: String,
    #[serde(default)]
    officers: Officers,
    #[serde(default)]
    may_ask: Vec<toml::Spanned<MayAsk>>,
}

/// Every registered application, by id.
#[derive(Debug, Clone, Default)]
pub struct Applications {
    by_id: BTreeMap<AppId, Application>,
}

impl Applications {
    /// Read and validate an applications file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("{}: cannot read the applications file: {e}", path.display())
        })?;
        Self::parse(path, &text)
    }

    /// Parse applications-file text; errors name `path:line:col`.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
        let at = |span: std::ops::Range<usize>| position(path, text, span.start);
        let mut by_id = BTreeMap::new();
        for entry in file.applications {
            let id_at = at(entry.id.span());
            let id = entry.id.into_inner();
            if entry.name.trim().is_empty() {
                bail!("{id_at}: application {id} needs a name");
            }
            let mut may_ask = Vec::new();
            for rule in entry.may_ask {
                let rule_at = at(rule.span());
                let rule = rule.into_inner();
                for (field, list) in [("datasets", &rule.datasets), ("purposes", &rule.purposes)] {
                    if list.is_empty() {
                        bail!("{rule_at}: `{field}` is empty: list what the application may ask for, or \"*\" for any");
                    }
                    if let Some(bad) = list.iter().find(|v| v.is_empty() || v.len() > 128) {
                        bail!("{rule_at}: `{field}` holds {bad:?}: names are 1 to 128 characters");
                    }
                }
                may_ask.push(rule);
            }
            let application = Application {
                id: id.clone(),
                name: entry.name,
                officers: entry.officers,
                may_ask,
            };
            if by_id.insert(id.clone(), application).is_some() {
                bail!("{id_at}: application {id} is registered twice");
            }
        }
        Ok(Applications { by_id })
    }

    /// The application with this id, if registered.
    pub fn get(&self, id: &AppId) -> Option<&Application> {
        self.by_id.get(id)
    }

    /// Every application.
    pub fn iter(&self) -> impl Iterator<Item = &Application> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Applications> {
        Applications::parse(Path::new("applications.toml"), text)
    }

    #[test]
    fn rules_allow_only_what_they_name() {
        let apps = parse(
            "[[application]]\nid = \"portal\"\nname = \"Portal\"\n[[application.may_ask]]\nprovider = \"civil-registry\"\ndatasets = [\"residents\"]\npurposes = [\"*\"]\n\n[[application]]\nid = \"idle\"\nname = \"Registered, may ask nothing\"\nofficers = \"none\"\n",
        )
        .unwrap();
        let registry = DeptId::new("civil-registry").unwrap();
        let tax = DeptId::new("tax-office").unwrap();
        let portal = apps.get(&AppId::new("portal").unwrap()).unwrap();
        assert!(portal.may_ask(&registry, "residents", "anything"));
        assert!(!portal.may_ask(&registry, "households", "anything"));
        assert!(!portal.may_ask(&tax, "residents", "anything"));
        let idle = apps.get(&AppId::new("idle").unwrap()).unwrap();
        assert_eq!(idle.officers, Officers::None);
        assert!(!idle.may_ask(&registry, "residents", "x"));
        assert!(apps.get(&AppId::new("nobody").unwrap()).is_none());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let dup = parse("[[application]]\nid = \"a\"\nname = \"A\"\n[[application]]\nid = \"a\"\nname = \"B\"\n")
            .unwrap_err()
            .to_string();
        assert!(dup.starts_with("applications.toml:5:6:"), "{dup}");
        assert!(dup.contains("registered twice"), "{dup}");
        let unknown = parse("[[application]]\nid = \"a\"\nname = \"A\"\nofficer = \"none\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.starts_with("applications.toml:4:"), "{unknown}");
        let bad_id = parse("[[application]]\nid = \"Bad Id\"\nname = \"A\"\n")
            .unwrap_err()
            .to_string();
        assert!(bad_id.starts_with("applications.toml:2:"), "{bad_id}");
        let empty = parse("[[application]]\nid = \"a\"\nname = \"A\"\n[[application.may_ask]]\nprovider = \"x\"\ndatasets = []\npurposes = [\"*\"]\n")
            .unwrap_err()
            .to_string();
        assert!(empty.contains("`datasets` is empty"), "{empty}");
    }
}
