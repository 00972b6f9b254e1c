//! The policy files as written: serde structs that mirror the TOML, with spans kept on every value
//! a later check may need to point at. Unknown keys are rejected here (`deny_unknown_fields`);
//! everything that needs more than one value at a time is checked in `compile`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `purposes.toml`: the federation's closed list of purposes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurposesFile {
    #[serde(default)]
    pub purpose: Vec<RawPurpose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPurpose {
    pub id: Spanned<String>,
    pub description: String,
    /// An anchored regular expression a case reference for this purpose must also match.
    #[serde(default)]
    pub case_pattern: Option<Spanned<String>>,
}

/// `groups.toml`: named sets of consumer departments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupsFile {
    #[serde(default)]
    pub group: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub id: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    pub members: Vec<Spanned<String>>,
}

/// Any other `*.toml`: one data-sharing agreement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgreementFile {
    #[serde(default)]
    #[allow(dead_code)]
    pub agreement: Option<RawAgreement>,
    #[serde(default)]
    pub grant: Vec<Spanned<RawGrant>>,
    #[serde(default)]
    pub deny: Vec<Spanned<RawDeny>>,
}

/// Descriptive header of an agreement; not used in decisions but validated so typos surface.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct RawAgreement {
    pub title: String,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

pub(crate) type Strings = Vec<Spanned<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrant {
    pub id: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    pub consumer: Spanned<String>,
    pub dataset: Spanned<String>,
    pub purposes: Spanned<Strings>,
    /// The consumer's applications the grant allows; omitted means any (and a request naming none).
    #[serde(default)]
    pub applications: Option<Spanned<Strings>>,
    #[serde(default)]
    pub legal_bases: Option<Spanned<Strings>>,
    pub fields: Spanned<Strings>,
    #[serde(default)]
    pub masks: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub params: BTreeMap<Spanned<String>, Spanned<RawConstraint>>,
    #[serde(default)]
    pub row_filter: Vec<Spanned<RawRowPredicate>>,
    #[serde(default)]
    pub max_rows: Option<Spanned<i64>>,
    #[serde(default)]
    pub rate_limit: Option<Spanned<RawRateLimit>>,
    #[serde(default)]
    pub require_case: bool,
    #[serde(default)]
    pub valid_from: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub valid_until: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeny {
    pub id: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    /// Shown to the consumer as the reason; defaults to a sentence naming the rule.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub consumer: Option<Spanned<String>>,
    #[serde(default)]
    pub dataset: Option<Spanned<String>>,
    #[serde(default)]
    pub purposes: Option<Spanned<Strings>>,
    /// The consumer's applications the rule applies to; omitted means every request.
    #[serde(default)]
    pub applications: Option<Spanned<Strings>>,
    #[serde(default)]
    pub params: BTreeMap<Spanned<String>, Spanned<RawConstraint>>,
    #[serde(default)]
    pub valid_from: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub valid_until: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConstraint {
    #[serde(default)]
    pub exact: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub one_of: Option<Spanned<Vec<toml::Value>>>,
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    #[serde(default)]
    pub range: Option<Spanned<Vec<toml::Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRowPredicate {
    pub column: Spanned<String>,
    pub op: Spanned<String>,
    pub value: Spanned<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    #[serde(default)]
    pub per_minute: Option<Spanned<i64>>,
    #[serde(default)]
    pub per_day: Option<Spanned<i64>>,
}
