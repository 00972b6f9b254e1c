//! Requests in, decisions out: the values that cross the boundary between the policy engine and the
//! gateway, and that the gateway records in its ledger.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mask::Mask;
use crate::rules::{RateLimit, RowPredicate};

/// One request to decide, borrowed from the gateway's envelope. The engine has no clock: the
/// caller passes "now" as `at_unix` (seconds since the Unix epoch, UTC).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The consumer department id, as authenticated from its certificate.
    pub consumer: &'a str,
    /// The dataset asked for.
    pub dataset: &'a str,
    /// The declared purpose of the request.
    pub purpose: &'a str,
    /// The legal basis the consumer cites (empty when none).
    pub legal_basis: &'a str,
    /// The consumer's case reference (empty when none).
    pub case: &'a str,
    /// The consumer's application (for example `benefits-portal`), as the consumer's gateway
    /// authenticated it from the application's certificate and wrote it into the signed envelope;
    /// `None` when that gateway did not say (older gateways). A grant that lists `applications`
    /// never allows a request without one.
    pub application: Option<&'a str>,
    /// The request parameters (for example `national_id`).
    pub params: &'a BTreeMap<String, serde_json::Value>,
    /// "Now", in Unix seconds.
    pub at_unix: i64,
}

/// The outcome of one decision. A denial releases nothing: `fields` is empty and `max_rows`,
/// `row_filter` and `rate_limit` are unset.
///
/// `rule` and `reason` are the full explanation, for the provider's admins (`causeway policy
/// explain`, test files, shadow mode). What the consumer may be told is [`Decision::told`]: for a
/// denial, the reason the grants alone give (a deny rule's own reason only when a grant would
/// otherwise have allowed), in words that never repeat a request value or a grant's lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The rule that decided; `None` for the default deny (no rule applies) and for an undeclared
    /// purpose.
    pub rule: Option<RuleRef>,
    /// Why, machine-readable and human-readable.
    pub reason: Reason,
    /// What the consumer is told about a denial; `None` for an allowed decision, whose `rule` and
    /// `reason` the consumer may see. Read it through [`Decision::told`]. Boxed: an allowed
    /// decision, the common case, stays small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<Box<Disclosure>>,
    /// The fields to release, in the order the grant lists them, each with its mask. Every field not
    /// listed here must be dropped.
    pub fields: Vec<FieldRelease>,
    /// The most rows one request may return.
    pub max_rows: Option<u64>,
    /// Row predicates that every released row must satisfy (all of them), to be applied by the adapter
    /// with bound parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_filter: Vec<RowPredicate>,
    /// The rate limit the gateway must enforce for (consumer, dataset), see [`crate::RateLimiter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// The content hash of the policy set that decided ([`crate::PolicySet::hash`]).
    pub policy_hash: String,
}

/// Where a rule is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleRef {
    /// The policy file's name within its directory (for example `welfare-residents.toml`).
    pub file: String,
    /// The 1-based line of the rule's `[[grant]]` or `[[deny]]` header.
    pub line: u32,
    /// The rule's `id`, unique within the policy set.
    pub id: String,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\" ({}:{})", self.id, self.file, self.line)
    }
}

/// Why a decision came out the way it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Machine-readable code.
    pub code: ReasonCode,
    /// A sentence for people that names the rule and the constraint that decided.
    pub message: String,
}

/// What the consumer of a denied request is told: the decision as the grants alone make it, worded
/// without the request's values or the grants' lists (see docs/POLICY.md, "What the consumer is
/// told").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    /// The reason code the consumer sees.
    pub code: ReasonCode,
    /// A sentence that names at most a grant, a parameter or a condition, never a value.
    pub message: String,
    /// The rule the consumer is shown, if any.
    pub rule: Option<RuleRef>,
}

/// What the consumer may be told about a decision, borrowed from it ([`Decision::told`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told<'a> {
    /// The reason code.
    pub code: ReasonCode,
    /// The sentence for people.
    pub message: &'a str,
    /// The rule, if any.
    pub rule: Option<&'a RuleRef>,
}

/// Machine-readable reason codes. Serialized in kebab-case (`no-grant`, `param-constraint`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReasonCode {
    /// A grant allowed the request.
    Granted,
    /// No grant names this consumer and dataset (the default deny).
    NoGrant,
    /// The purpose is not in the declared list (`purposes.toml`).
    UnknownPurpose,
    /// Grants exist for this consumer and dataset, but none for this purpose.
    PurposeNotAllowed,
    /// No grant for this consumer, dataset and purpose admits the request's application: each lists
    /// the applications it allows, and the request's is not among them (or the request names none).
    ApplicationNotAllowed,
    /// The grant lists legal bases and the request's is not one of them.
    LegalBasisNotAllowed,
    /// The grant requires a case reference and the request has none.
    CaseRequired,
    /// A request parameter is missing or violates the grant's constraint on it.
    ParamConstraint,
    /// The grant's `valid_until` has passed.
    Expired,
    /// The grant's `valid_from` has not yet come.
    NotYetValid,
    /// A `[[deny]]` rule matched.
    DeniedByRule,
    /// The grant's rate limit for this consumer and dataset is used up.
    RateLimited,
}

impl ReasonCode {
    /// Every code, in declaration order.
    pub const ALL: [ReasonCode; 12] = [
        ReasonCode::Granted,
        ReasonCode::NoGrant,
        ReasonCode::UnknownPurpose,
        ReasonCode::PurposeNotAllowed,
        ReasonCode::ApplicationNotAllowed,
        ReasonCode::LegalBasisNotAllowed,
        ReasonCode::CaseRequired,
        ReasonCode::ParamConstraint,
        ReasonCode::Expired,
        ReasonCode::NotYetValid,
        ReasonCode::DeniedByRule,
        ReasonCode::RateLimited,
    ];

    /// The kebab-case name, as serialized.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReasonCode::Granted => "granted",
            ReasonCode::NoGrant => "no-grant",
            ReasonCode::UnknownPurpose => "unknown-purpose",
            ReasonCode::PurposeNotAllowed => "purpose-not-allowed",
            ReasonCode::ApplicationNotAllowed => "application-not-allowed",
            ReasonCode::LegalBasisNotAllowed => "legal-basis-not-allowed",
            ReasonCode::CaseRequired => "case-required",
            ReasonCode::ParamConstraint => "param-constraint",
            ReasonCode::Expired => "expired",
            ReasonCode::NotYetValid => "not-yet-valid",
            ReasonCode::DeniedByRule => "denied-by-rule",
            ReasonCode::RateLimited => "rate-limited",
        }
    }

    /// The code with this kebab-case name.
    pub fn from_name(name: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field to release, with the mask to apply to its value (if any).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldRelease {
    /// The field (column) name.
    pub name: String,
    /// The mask to apply before release; `None` releases the value as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
}

impl Decision {
    /// A denial carrying no fields, explained by `rule`, `code` and `message` and told to the
    /// consumer as `disclosure`.
    pub(crate) fn deny(
        rule: Option<RuleRef>,
        code: ReasonCode,
        message: String,
        disclosure: Disclosure,
        hash: &str,
    ) -> Decision {
        Decision {
            allowed: false,
            rule,
            reason: Reason { code, message },
            disclosure: Some(Box::new(disclosure)),
            fields: Vec::new(),
            max_rows: None,
            row_filter: Vec::new(),
            rate_limit: None,
            policy_hash: hash.to_string(),
        }
    }

    /// What the consumer may be told: for an allowed decision its `rule` and `reason`; for a denial
    /// its [`Disclosure`]. A denial without one (built by hand, or read from an older
    /// serialization) is told only its code, in a fixed sentence, and no rule.
    pub fn told(&self) -> Told<'_> {
        match (&self.disclosure, self.allowed) {
            (Some(d), _) => Told {
                code: d.code,
                message: &d.message,
                rule: d.rule.as_ref(),
            },
            (None, true) => Told {
                code: self.reason.code,
                message: &self.reason.message,
                rule: self.rule.as_ref(),
            },
            (None, false) => Told {
                code: self.reason.code,
                message: "the request is denied by the provider's policy",
                rule: None,
            },
        }
    }

    /// The field release for `name`, if the decision releases it.
    pub fn field(&self, name: &str) -> Option<&FieldRelease> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_kebab_case_and_round_trip() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ReasonCode::from_name(code.as_str()), Some(code));
        }
        assert_eq!(ReasonCode::from_name("granted"), Some(ReasonCode::Granted));
        assert_eq!(
            ReasonCode::from_name("application-not-allowed"),
            Some(ReasonCode::ApplicationNotAllowed)
        );
        assert_eq!(ReasonCode::from_name("nope"), None);
    }
}
