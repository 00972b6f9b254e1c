//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use causeway_policy::{Decision, PolicySet, Request};
use serde_json::Value;

/// The federation-wide purposes used by the tests.
pub const PURPOSES: &str = r#"
[[purpose]]
id = "benefit-eligibility"
description = "Benefits"

[[purpose]]
id = "tax-assessment"
description = "Taxes"

[[purpose]]
id = "fraud-investigation"
description = "Fraud"

[[purpose]]
id = "statistics"
description = "Statistics"
"#;

/// 2025-06-01T00:00:00Z
pub const JUNE_2025: i64 = 1_748_736_000;

fn with_purposes(files: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = files
        .iter()
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect();
    if !files.iter().any(|(n, _)| *n == "purposes.toml") {
        out.push(("purposes.toml".to_string(), PURPOSES.to_string()));
    }
    out
}

/// Compile files (adding the standard purposes.toml unless given); panics with the error.
pub fn set(files: &[(&str, &str)]) -> PolicySet {
    match PolicySet::from_sources(&with_purposes(files)) {
        Ok(s) => s,
        Err(e) => panic!("policy should load, got:\n{e}"),
    }
}

/// The load error's display for files that must not load.
pub fn load_err(files: &[(&str, &str)]) -> String {
    match PolicySet::from_sources(&with_purposes(files)) {
        Ok(_) => panic!("policy should not load"),
        Err(e) => e.to_string(),
    }
}

/// A request under construction.
#[derive(Clone)]
pub struct R {
    pub consumer: String,
    pub dataset: String,
    pub purpose: String,
    pub legal_basis: String,
    pub case: String,
    pub application: Option<String>,
    pub params: BTreeMap<String, Value>,
    pub at: i64,
}

pub fn req(consumer: &str, dataset: &str, purpose: &str) -> R {
    R {
        consumer: consumer.into(),
        dataset: dataset.into(),
        purpose: purpose.into(),
        legal_basis: String::new(),
        case: String::new(),
        application: None,
        params: BTreeMap::new(),
        at: JUNE_2025,
    }
}

impl R {
    pub fn param(mut self, k: &str, v: Value) -> R {
        self.params.insert(k.into(), v);
        self
    }
    pub fn basis(mut self, b: &str) -> R {
        self.legal_basis = b.into();
        self
    }
    pub fn case(mut self, c: &str) -> R {
        self.case = c.into();
        self
    }
    pub fn app(mut self, a: &str) -> R {
        self.application = Some(a.into());
        self
    }
    pub fn at(mut self, t: i64) -> R {
        self.at = t;
        self
    }
    pub fn request(&self) -> Request<'_> {
        Request {
            consumer: &self.consumer,
            dataset: &self.dataset,
            purpose: &self.purpose,
            legal_basis: &self.legal_basis,
            case: &self.case,
            application: self.application.as_deref(),
            params: &self.params,
            at_unix: self.at,
        }
    }
    pub fn decide(&self, set: &PolicySet) -> Decision {
        set.decide(&self.request())
    }
}

/// The names of released fields.
pub fn field_names(d: &Decision) -> Vec<&str> {
    d.fields.iter().map(|f| f.name.as_str()).collect()
}
