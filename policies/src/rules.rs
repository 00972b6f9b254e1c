//! Compiled rules: grants, deny rules and their constraints, after validation. Each rule knows how
//! to check itself against a request; the set (`set.rs`) decides which rules to ask.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decision::{FieldRelease, ReasonCode, Request, RuleRef};
use crate::glob::Glob;

/// Who a rule is about: one department, a named group, or (deny rules only) anyone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ConsumerSpec {
    /// One department, by id.
    Dept(String),
    /// A group declared in `groups.toml` (written `group:NAME`).
    Group(String),
    /// Every consumer (a deny rule without `consumer`).
    Any,
}

impl std::fmt::Display for ConsumerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumerSpec::Dept(d) => f.write_str(d),
            ConsumerSpec::Group(g) => write!(f, "group:{g}"),
            ConsumerSpec::Any => f.write_str("*"),
        }
    }
}

/// A validity window in Unix seconds: `valid_from` inclusive, `valid_until` exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First second in force (inclusive), if bounded.
    pub valid_from: Option<i64>,
    /// First second no longer in force (exclusive), if bounded.
    pub valid_until: Option<i64>,
}

impl Window {
    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: i64) -> bool {
        !matches!(self.valid_from, Some(f) if at < f)
            && !matches!(self.valid_until, Some(u) if at >= u)
    }

    /// Whether the window is unbounded on both sides.
    pub fn is_always(&self) -> bool {
        self.valid_from.is_none() && self.valid_until.is_none()
    }
}

/// Format Unix seconds as RFC 3339 (for messages).
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix}"))
}

/// A bound of a `range` constraint: both bounds are numbers, or both are text (compared
/// lexicographically, which orders ISO 8601 dates correctly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Bound {
    /// A numeric bound.
    Number(f64),
    /// A text bound.
    Text(String),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Number(n) => write!(f, "{n}"),
            Bound::Text(t) => write!(f, "\"{t}\""),
        }
    }
}

/// Constraints on one request parameter. Every operator given must hold; naming a parameter makes it
/// required.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParamConstraint {
    /// The value must equal this literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<Value>,
    /// The value must equal one of these literals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    /// The value (text, or a number's decimal text) must match this glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Glob>,
    /// The value must lie in this inclusive range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(Bound, Bound)>,
}

/// A number carried by a JSON value: a number, or text that parses as one.
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Equality between a request value and a policy literal: identical JSON, or equal numbers when one
/// side is a number and the other its text (`"2023"` equals `2023`).
fn literal_eq(value: &Value, literal: &Value) -> bool {
    if value == literal {
        return true;
    }
    match (value, literal) {
        (Value::String(_), Value::Number(_))
        | (Value::Number(_), Value::String(_))
        | (Value::Number(_), Value::Number(_)) => {
            matches!((as_number(value), as_number(literal)), (Some(a), Some(b)) if a == b)
        }
        _ => false,
    }
}

fn show(v: &Value) -> String {
    v.to_string()
}

impl ParamConstraint {
    /// `Ok` when `value` satisfies every operator, else a sentence fragment saying which one failed.
    pub(crate) fn check(&self, value: &Value) -> Result<(), String> {
        if let Some(exact) = &self.exact {
            if !literal_eq(value, exact) {
                return Err(format!("must be {}", show(exact)));
            }
        }
        if let Some(list) = &self.one_of {
            if !list.iter().any(|l| literal_eq(value, l)) {
                let shown: Vec<String> = list.iter().map(show).collect();
                return Err(format!("must be one of [{}]", shown.join(", ")));
            }
        }
        if let Some(glob) = &self.pattern {
            let matched = match value {
                Value::String(s) => glob.is_match(s),
                Value::Number(n) => glob.is_match(&n.to_string()),
                _ => false,
            };
            if !matched {
                return Err(format!("must match pattern \"{}\"", glob.as_str()));
            }
        }
        if let Some((lo, hi)) = &self.range {
            let inside = match (lo, hi) {
                (Bound::Number(lo), Bound::Number(hi)) => {
                    as_number(value).is_some_and(|v| *lo <= v && v <= *hi)
                }
                (Bound::Text(lo), Bound::Text(hi)) => match value {
                    Value::String(s) => lo.as_str() <= s.as_str() && s.as_str() <= hi.as_str(),
                    _ => false,
                },
                _ => false,
            };
            if !inside {
                return Err(format!("must be in range [{lo}, {hi}]"));
            }
        }
        Ok(())
    }
}

/// A parameter that fails its constraints ([`check_params`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamFailure<'a> {
    /// The parameter's name.
    pub name: &'a str,
    /// Whether the request lacks it (rather than has a value that fails).
    pub missing: bool,
    /// The full sentence, with the value and the constraint: for the provider's admins only.
    pub message: String,
}

/// Check named constraints against request parameters; the failure names the first parameter
/// that fails.
pub(crate) fn check_params<'a>(
    constraints: &'a [(String, ParamConstraint)],
    params: &std::collections::BTreeMap<String, Value>,
) -> Result<(), ParamFailure<'a>> {
    for (name, c) in constraints {
        match params.get(name) {
            None => {
                return Err(ParamFailure {
                    name,
                    missing: true,
                    message: format!("parameter \"{name}\" is required"),
                })
            }
            Some(v) => {
                if let Err(why) = c.check(v) {
                    return Err(ParamFailure {
                        name,
                        missing: false,
                        message: format!("parameter \"{name}\" = {} {why}", show(v)),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Operators of a row predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RowOp {
    /// `=`
    #[serde(rename = "=")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `in` (the literal is a list)
    #[serde(rename = "in")]
    In,
    /// `not-in` (the literal is a list)
    #[serde(rename = "not-in")]
    NotIn,
}

impl RowOp {
    /// Every operator with its policy-file spelling.
    pub const ALL: [(&'static str, RowOp); 8] = [
        ("=", RowOp::Eq),
        ("!=", RowOp::Ne),
        ("<", RowOp::Lt),
        ("<=", RowOp::Le),
        (">", RowOp::Gt),
        (">=", RowOp::Ge),
        ("in", RowOp::In),
        ("not-in", RowOp::NotIn),
    ];

    /// The policy-file spelling.
    pub fn as_str(&self) -> &'static str {
        RowOp::ALL
            .iter()
            .find(|(_, op)| op == self)
            .map(|(s, _)| *s)
            .expect("every operator is listed in ALL")
    }
}

/// A typed row predicate: `column op literal`. Never SQL text: adapters bind the literal as a
/// parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowPredicate {
    /// The column (dataset field) compared.
    pub column: String,
    /// The comparison.
    pub op: RowOp,
    /// The literal (a list for `in` / `not-in`).
    pub value: Value,
}

/// Request rate allowed per (consumer, dataset). Enforced by [`crate::RateLimiter`], outside the
/// immutable policy snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests per calendar minute (UTC), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
    /// Requests per calendar day (UTC), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u64>,
}

/// Byte offsets of a rule's parts in its file, so that admin tooling (`check`) can point at them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Spans {
    pub id: usize,
    pub dataset: usize,
    /// Aligned with the grant's `fields`.
    pub fields: Vec<usize>,
    /// Aligned with `fields`: the mask's value, when the field has one.
    pub masks: Vec<Option<usize>>,
    /// Aligned with `params`: the parameter's name.
    pub params: Vec<usize>,
    /// Aligned with `row_filter`: the column.
    pub columns: Vec<usize>,
}

/// A compiled `[[grant]]`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Grant {
    /// Where it is written.
    pub rule: RuleRef,
    /// The consumer as written.
    pub consumer: ConsumerSpec,
    /// The departments it applies to (a group expanded), sorted.
    pub consumers: Vec<String>,
    /// The dataset.
    pub dataset: String,
    /// The allowed purposes, as written.
    pub purposes: Vec<String>,
    /// The consumer's applications the grant allows, as written; `None` allows any application,
    /// and a request that names none.
    pub applications: Option<Vec<String>>,
    /// The accepted legal bases; `None` accepts any.
    pub legal_bases: Option<Vec<String>>,
    /// The released fields in order, with masks.
    pub fields: Vec<FieldRelease>,
    /// Parameter constraints, sorted by parameter name.
    pub params: Vec<(String, ParamConstraint)>,
    /// Row predicates.
    pub row_filter: Vec<RowPredicate>,
    /// Maximum rows per request.
    pub max_rows: Option<u64>,
    /// Rate limit per consumer and dataset.
    pub rate_limit: Option<RateLimit>,
    /// Whether a case reference is required.
    pub require_case: bool,
    /// When the grant is in force.
    pub window: Window,
    pub(crate) spans: Spans,
}

/// How far a request got through a grant's checks before failing (higher is closer to allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrantFailure {
    pub stage: u8,
    pub code: ReasonCode,
    /// For the provider's admins: what was wanted and what the request had.
    pub message: String,
    /// For the consumer: the grant and the condition, never a value or a list.
    pub told: String,
}

impl Grant {
    /// Whether the grant applies to this consumer department.
    pub fn covers_consumer(&self, consumer: &str) -> bool {
        self.consumers
            .binary_search_by(|c| c.as_str().cmp(consumer))
            .is_ok()
    }

    /// Whether the grant allows this purpose.
    pub fn allows_purpose(&self, purpose: &str) -> bool {
        self.purposes.iter().any(|p| p == purpose)
    }

    /// Whether the grant allows a request from this application of the consumer (`None`: the
    /// request names no application, which only a grant without `applications` allows).
    pub fn allows_application(&self, application: Option<&str>) -> bool {
        match (&self.applications, application) {
            (None, _) => true,
            (Some(apps), Some(app)) => apps.iter().any(|a| a == app),
            (Some(_), None) => false,
        }
    }

    /// Check the grant's conditions (application, window, legal basis, case, parameters) in that
    /// order; the caller has already matched consumer, dataset and purpose.
    ///
    /// The application comes first: a grant that does not admit the application does not apply
    /// to the request at all (like a grant for another consumer), so any grant that does admit it
    /// gets further, and the denial names what that grant lacked. `application-not-allowed` is
    /// then the reason only when no grant for (consumer, dataset, purpose) admits the application.
    pub(crate) fn check(&self, request: &Request<'_>) -> Result<(), GrantFailure> {
        let id = &self.rule.id;
        let fail = |stage, code, message, told| {
            Err(GrantFailure {
                stage,
                code,
                message,
                told,
            })
        };
        if !self.allows_application(request.application) {
            let allowed = self.applications.as_deref().unwrap_or_default().join(", ");
            return match request.application {
                None => fail(
                    0,
                    ReasonCode::ApplicationNotAllowed,
                    format!(
                        "grant \"{id}\" requires the consumer's gateway to name the application, \
                         one of: {allowed}"
                    ),
                    format!(
                        "grant \"{id}\" requires the consumer's gateway to name the application"
                    ),
                ),
                Some(app) => fail(
                    0,
                    ReasonCode::ApplicationNotAllowed,
                    format!(
                        "application \"{app}\" is not allowed by grant \"{id}\" (allowed: {allowed})"
                    ),
                    format!("grant \"{id}\" does not admit the requesting application"),
                ),
            };
        }
        if let Some(from) = self.window.valid_from {
            if request.at_unix < from {
                return fail(
                    1,
                    ReasonCode::NotYetValid,
                    format!("grant \"{id}\" is not valid before {}", rfc3339(from)),
                    format!("grant \"{id}\" is not yet in force"),
                );
            }
        }
        if let Some(until) = self.window.valid_until {
            if request.at_unix >= until {
                return fail(
                    1,
                    ReasonCode::Expired,
                    format!("grant \"{id}\" expired at {}", rfc3339(until)),
                    format!("grant \"{id}\" has expired"),
                );
            }
        }
        if let Some(bases) = &self.legal_bases {
            if !bases.iter().any(|b| b == request.legal_basis) {
                return if request.legal_basis.is_empty() {
                    fail(
                        2,
                        ReasonCode::LegalBasisNotAllowed,
                        format!(
                            "grant \"{id}\" requires a legal basis, one of: {}",
                            bases.join("; ")
                        ),
                        format!("grant \"{id}\" requires a legal basis"),
                    )
                } else {
                    fail(
                        2,
                        ReasonCode::LegalBasisNotAllowed,
                        format!(
                            "legal basis \"{}\" is not accepted by grant \"{id}\" (accepted: {})",
                            request.legal_basis,
                            bases.join("; ")
                        ),
                        format!("grant \"{id}\" does not accept the request's legal basis"),
                    )
                };
            }
        }
        if self.require_case && request.case.trim().is_empty() {
            let message = format!("grant \"{id}\" requires a case reference");
            return fail(3, ReasonCode::CaseRequired, message.clone(), message);
        }
        if let Err(why) = check_params(&self.params, request.params) {
            let name = why.name;
            let told = if why.missing {
                format!("parameter \"{name}\" is required by grant \"{id}\"")
            } else {
                format!("parameter \"{name}\" does not meet the constraint of grant \"{id}\"")
            };
            return fail(
                4,
                ReasonCode::ParamConstraint,
                format!("{} by grant \"{id}\"", why.message),
                told,
            );
        }
        Ok(())
    }
}

/// A compiled `[[deny]]`: when it matches, the request is denied whatever the grants say.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DenyRule {
    /// Where it is written.
    pub rule: RuleRef,
    /// The consumer as written (`Any` when omitted).
    pub consumer: ConsumerSpec,
    /// The departments it applies to (a group expanded); empty for `Any`.
    pub consumers: Vec<String>,
    /// The dataset; `None` for every dataset.
    pub dataset: Option<String>,
    /// The purposes; `None` for every purpose.
    pub purposes: Option<Vec<String>>,
    /// The consumer's applications; `None` for every request. When given, the rule matches a
    /// request from one of them and a request that names no application (the provider cannot
    /// tell that it does not come from one of them).
    pub applications: Option<Vec<String>>,
    /// Parameter conditions: the rule matches only when all of them hold.
    pub params: Vec<(String, ParamConstraint)>,
    /// When the rule is in force.
    pub window: Window,
    /// The rule's reason with its id: the full explanation, which the consumer is told only when a
    /// grant would otherwise have allowed its request.
    pub message: String,
    pub(crate) spans: Spans,
}

impl DenyRule {
    /// Whether the rule applies to a request from this application of the consumer. A rule with
    /// `applications` also applies to a request that names none: it fails closed, since such a
    /// request may come from one of them.
    pub fn covers_application(&self, application: Option<&str>) -> bool {
        match (&self.applications, application) {
            (Some(apps), Some(app)) => apps.iter().any(|a| a == app),
            (None, _) | (Some(_), None) => true,
        }
    }

    /// Whether the rule applies to every application `grant` allows: it names none, or the grant
    /// allows only applications it names (a grant without `applications` allows any).
    pub(crate) fn covers_applications_of(&self, grant: &Grant) -> bool {
        match (&self.applications, &grant.applications) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(denied), Some(allowed)) => allowed.iter().all(|a| denied.contains(a)),
        }
    }

    /// Whether this rule denies the request (consumer, dataset, purpose, application, window and
    /// parameters all match).
    pub fn matches(&self, request: &Request<'_>) -> bool {
        let consumer_ok = match self.consumer {
            ConsumerSpec::Any => true,
            _ => self.consumers.iter().any(|c| c == request.consumer),
        };
        consumer_ok
            && !matches!(&self.dataset, Some(d) if d != request.dataset)
            && !matches!(&self.purposes, Some(ps) if !ps.iter().any(|p| p == request.purpose))
            && self.covers_application(request.application)
            && self.window.contains(request.at_unix)
            && check_params(&self.params, request.params).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_equality_accepts_numeric_text() {
        assert!(literal_eq(&json!("2023"), &json!(2023)));
        assert!(literal_eq(&json!(2023), &json!("2023")));
        assert!(literal_eq(&json!(2023.0), &json!(2023)));
        assert!(!literal_eq(&json!("2023x"), &json!(2023)));
        assert!(!literal_eq(&json!(true), &json!("true")));
    }

    #[test]
    fn constraints() {
        let c = ParamConstraint {
            range: Some((Bound::Number(2015.0), Bound::Number(2024.0))),
            ..Default::default()
        };
        assert!(c.check(&json!(2015)).is_ok());
        assert!(c.check(&json!("2024")).is_ok());
        assert_eq!(
            c.check(&json!(2025)),
            Err("must be in range [2015, 2024]".to_string())
        );
        assert!(c.check(&json!("soon")).is_err());
        let c = ParamConstraint {
            range: Some((
                Bound::Text("2020-01-01".into()),
                Bound::Text("2020-12-31".into()),
            )),
            ..Default::default()
        };
        assert!(c.check(&json!("2020-06-30")).is_ok());
        assert!(c.check(&json!("2021-01-01")).is_err());
        let c = ParamConstraint {
            pattern: Some(Glob::new("D??????").expect("valid")),
            one_of: Some(vec![json!("D000001"), json!("D000002")]),
            ..Default::default()
        };
        assert!(c.check(&json!("D000001")).is_ok());
        assert!(c.check(&json!("D000003")).unwrap_err().contains("one of"));
        let c = ParamConstraint {
            exact: Some(json!(true)),
            ..Default::default()
        };
        assert!(c.check(&json!(true)).is_ok());
        assert!(c.check(&json!(false)).is_err());
    }

    #[test]
    fn window_is_inclusive_from_exclusive_until() {
        let w = Window {
            valid_from: Some(100),
            valid_until: Some(200),
        };
        assert!(!w.contains(99));
        assert!(w.contains(100));
        assert!(w.contains(199));
        assert!(!w.contains(200));
    }
}
