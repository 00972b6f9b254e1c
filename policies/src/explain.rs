//! `causeway policy explain`: a decision with its reasons spelled out, and for a denial the grant
//! that came closest to allowing the request and everything it lacked.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, Request, RuleRef};
use crate::rules::{check_params, rfc3339, ConsumerSpec, Grant, ParamConstraint};
use crate::set::PolicySet;

/// One condition of a grant that a request does not meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// The policy key that failed: `consumer`, `dataset`, `purposes`, `applications`,
    /// `valid_from`, `valid_until`, `legal_bases`, `require_case`, `params.NAME`, or `deny` (a deny
    /// rule refuses the request).
    pub constraint: String,
    /// What was wanted and what the request had.
    pub message: String,
}

/// The grant nearest to allowing a denied request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosestGrant {
    /// The grant.
    pub rule: RuleRef,
    /// Everything the request lacked for this grant to allow it.
    pub missing: Vec<Missing>,
}

/// A decision with its explanation: the full one, for the provider's admins. The consumer is told
/// only [`Decision::told`], which the text form shows on its `told:` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The decision, exactly as [`PolicySet::decide`] gives it.
    pub decision: Decision,
    /// For a denial, the grant nearest to allowing: fewest mismatches of consumer, dataset and
    /// purpose, then fewest unmet conditions, then same dataset, then rule order. `None` when the
    /// request was allowed or the set has no grants.
    pub closest: Option<ClosestGrant>,
}

/// Explain how `set` decides `request`.
pub fn explain(set: &PolicySet, request: &Request<'_>) -> Explanation {
    let decision = set.decide(request);
    if decision.allowed {
        return Explanation {
            decision,
            closest: None,
        };
    }
    let deny = set.denies().iter().find(|d| d.matches(request));
    let closest = set
        .grants()
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut missing = missing(set, g, request);
            if let Some(d) = deny {
                missing.push(Missing {
                    constraint: "deny".to_string(),
                    message: format!("deny rule {} refuses this request", d.rule),
                });
            }
            // Who, what and why (consumer, dataset, purpose) matter more than the conditions.
            let identity = missing
                .iter()
                .filter(|m| matches!(m.constraint.as_str(), "consumer" | "dataset" | "purposes"))
                .count();
            let key = (identity, missing.len(), g.dataset != request.dataset, i);
            (key, g, missing)
        })
        .min_by_key(|(key, _, _)| *key)
        .map(|(_, g, missing)| ClosestGrant {
            rule: g.rule.clone(),
            missing,
        });
    Explanation { decision, closest }
}

/// Every condition of `g` that `request` does not meet.
fn missing(set: &PolicySet, g: &Grant, request: &Request<'_>) -> Vec<Missing> {
    let mut out = Vec::new();
    let mut push = |constraint: &str, message: String| {
        out.push(Missing {
            constraint: constraint.to_string(),
            message,
        });
    };
    if !g.covers_consumer(request.consumer) {
        let who = match &g.consumer {
            ConsumerSpec::Group(name) => format!("group \"{name}\" ({})", g.consumers.join(", ")),
            other => format!("\"{other}\""),
        };
        push(
            "consumer",
            format!("the grant is for {who}, not \"{}\"", request.consumer),
        );
    }
    if g.dataset != request.dataset {
        push(
            "dataset",
            format!(
                "the grant is for dataset \"{}\", not \"{}\"",
                g.dataset, request.dataset
            ),
        );
    }
    if !g.allows_purpose(request.purpose) {
        let declared = if set.is_declared_purpose(request.purpose) {
            ""
        } else {
            " (not a declared purpose)"
        };
        push(
            "purposes",
            format!(
                "purpose \"{}\"{declared} is not among {}",
                request.purpose,
                g.purposes.join(", ")
            ),
        );
    }
    if !g.allows_application(request.application) {
        let allowed = g.applications.as_deref().unwrap_or_default().join(", ");
        let message = match request.application {
            None => format!(
                "the grant is for applications {allowed}, and the request names none \
                 (the consumer's gateway did not say)"
            ),
            Some(app) => format!("the grant is for applications {allowed}, not \"{app}\""),
        };
        push("applications", message);
    }
    if let Some(from) = g.window.valid_from {
        if request.at_unix < from {
            push(
                "valid_from",
                format!("the grant is not valid before {}", rfc3339(from)),
            );
        }
    }
    if let Some(until) = g.window.valid_until {
        if request.at_unix >= until {
            push(
                "valid_until",
                format!("the grant expired at {}", rfc3339(until)),
            );
        }
    }
    if let Some(bases) = &g.legal_bases {
        if !bases.iter().any(|b| b == request.legal_basis) {
            let had = if request.legal_basis.is_empty() {
                "none".to_string()
            } else {
                format!("\"{}\"", request.legal_basis)
            };
            push(
                "legal_bases",
                format!(
                    "legal basis must be one of: {} (the request has {had})",
                    bases.join("; ")
                ),
            );
        }
    }
    if g.require_case && request.case.trim().is_empty() {
        push("require_case", "a case reference is required".to_string());
    }
    for (name, c) in &g.params {
        let one: [(String, ParamConstraint); 1] = [(name.clone(), c.clone())];
        if let Err(why) = check_params(&one, request.params) {
            push(&format!("params.{name}"), why.message);
        }
    }
    out
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.decision;
        writeln!(
            f,
            "decision: {} ({})",
            if d.allowed { "allowed" } else { "denied" },
            d.reason.code
        )?;
        writeln!(f, "reason:   {}", d.reason.message)?;
        match &d.rule {
            Some(rule) => writeln!(f, "rule:     {rule}")?,
            None => writeln!(f, "rule:     none (default deny)")?,
        }
        if !d.allowed {
            let told = d.told();
            writeln!(f, "told:     {} ({})", told.message, told.code)?;
        }
        if d.allowed {
            let fields: Vec<String> = d
                .fields
                .iter()
                .map(|r| match r.mask {
                    Some(m) => format!("{} ({m})", r.name),
                    None => r.name.clone(),
                })
                .collect();
            writeln!(f, "fields:   {}", fields.join(", "))?;
            if let Some(max) = d.max_rows {
                writeln!(f, "max rows: {max}")?;
            }
            if let Some(limit) = d.rate_limit {
                let per = |n: Option<u64>, w: &str| n.map(|n| format!("{n}/{w}"));
                let parts: Vec<String> =
                    [per(limit.per_minute, "minute"), per(limit.per_day, "day")]
                        .into_iter()
                        .flatten()
                        .collect();
                writeln!(f, "rate:     {}", parts.join(", "))?;
            }
        }
        if let Some(closest) = &self.closest {
            writeln!(f, "closest grant: {}", closest.rule)?;
            if closest.missing.is_empty() {
                writeln!(f, "  (nothing missing)")?;
            }
            for m in &closest.missing {
                writeln!(f, "  missing {}: {}", m.constraint, m.message)?;
            }
        }
        write!(f, "policy set: {}", d.policy_hash)
    }
}
