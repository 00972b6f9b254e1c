//! # causeway-policy: who may read what, for which purpose, and why
//!
//! This crate owns Causeway's policy language: the TOML files in which a provider department writes
//! its data-sharing agreements (see `docs/POLICY.md`), their validation (every error with file, line,
//! column and a suggestion), their compilation into an immutable, indexed [`PolicySet`], and the
//! decision procedure ([`PolicySet::decide`]) that turns a [`Request`] into a [`Decision`] naming the
//! rule and the constraint that decided, the fields to release with their [`Mask`]s, and the content
//! hash of the set. Default deny: what no grant allows is refused, and `[[deny]]` rules override
//! grants. A decision also says what the consumer may be told ([`Decision::told`]): a deny rule
//! only to a consumer that a grant would otherwise have allowed, and never a value of the request
//! or of a grant.
//!
//! Around the decision it offers what admins and the gateway need: [`RateLimiter`] (the counters
//! that live outside the immutable snapshot), [`check`] (errors and warnings, optionally against a
//! [`DatasetCatalog`]), [`run_tests`] (`*.test.toml` cases), [`explain`] (the closest grant and what
//! was missing), [`diff`] (access gained and lost) and [`file_changes`]. What a request's case
//! and legal basis may be, so that no free text enters a ledger, is in [`references`]
//! ([`PolicySet::check_references`]). The demo federation's sample policies are in [`samples`].
//!
//! It must not know about HTTP, TLS, networks, ledgers, databases or clocks. Everything here is a
//! pure function over strings, files and structs: the caller passes "now" (`Request::at_unix`),
//! applies the decision (drops and masks fields, enforces rate limits with [`RateLimiter`]), and
//! notarizes it. The gateway (crate `causeway`) depends on this crate, never the reverse.
//!
//! ```
//! use std::collections::BTreeMap;
//! use causeway_policy::{PolicySet, Request, ReasonCode};
//!
//! let set = PolicySet::from_sources(&[
//!     ("purposes.toml".into(), "[[purpose]]\nid = \"statistics\"\ndescription = \"Official statistics\"\n".into()),
//!     ("stats.toml".into(), r#"
//! [[grant]]
//! id = "stats-residents"
//! consumer = "statistics-office"
//! dataset = "residents"
//! purposes = ["statistics"]
//! fields = ["birth_date", "address"]
//! masks = { birth_date = "year" }
//! "#.into()),
//! ]).expect("valid policy");
//! let params = BTreeMap::new();
//! let request = Request {
//!     consumer: "statistics-office", dataset: "residents", purpose: "statistics",
//!     legal_basis: "", case: "", application: Some("census-portal"), params: &params,
//!     at_unix: 1_700_000_000,
//! };
//! let decision = set.decide(&request);
//! assert!(decision.allowed);
//! assert_eq!(decision.fields[0].name, "birth_date");
//! assert_eq!(set.decide(&Request { consumer: "tax-office", ..request }).reason.code, ReasonCode::NoGrant);
//! ```
#![warn(missing_docs)]

mod check;
mod compile;
mod decision;
mod diff;
mod error;
mod explain;
mod glob;
mod mask;
mod rate;
mod raw;
pub mod references;
mod rules;
pub mod samples;
mod set;
mod suggest;
mod testing;

pub use check::{
    check, check_set, check_sources, noncanonical_literals, CanonicalForm, DatasetCatalog,
    DatasetSchema, ParamSchema, Report, ValueKind,
};
pub use compile::{Purpose, GROUPS_FILE, GROUP_PREFIX, PURPOSES_FILE};
pub use decision::{
    Decision, Disclosure, FieldRelease, Reason, ReasonCode, Request, RuleRef, Told,
};
pub use diff::{diff, file_changes, AccessChange, ChangeKind, FileChanges};
pub use error::{Diagnostic, LoadError, Position};
pub use explain::{explain, ClosestGrant, Explanation, Missing};
pub use glob::Glob;
pub use mask::{Mask, PseudonymKey, Pseudonyms};
pub use rate::{RateLimited, RateLimiter, RateWindow};
pub use references::NotAReference;
pub use rules::{
    Bound, ConsumerSpec, DenyRule, Grant, ParamConstraint, RateLimit, RowOp, RowPredicate, Window,
};
pub use set::{FileDigest, PolicySet};
pub use testing::{run_test_sources, run_tests, CaseResult, TestReport};
