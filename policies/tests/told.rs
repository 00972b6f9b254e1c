//! What the consumer is told about a denial (`Decision::told`), beside the full explanation that
//! `rule`, `reason` and `explain` keep for the provider's admins: a deny rule's reason only for a
//! consumer a grant would otherwise have allowed, and never a request value or a grant's list.

mod common;

use causeway_policy::{explain, samples, Decision, PolicySet, RateLimiter, ReasonCode, Told};
use common::{req, set, JUNE_2025};
use serde_json::json;

/// The civil registry's demo policy set (with its protected-persons deny rule).
fn civil_registry() -> PolicySet {
    PolicySet::from_sources(&samples::sources("civil-registry")).expect("the samples load")
}

/// The told part as owned values, to compare two decisions' told parts.
fn told(d: &Decision) -> (ReasonCode, String, Option<String>) {
    let Told {
        code,
        message,
        rule,
    } = d.told();
    (code, message.to_owned(), rule.map(|r| r.to_string()))
}

#[test]
fn without_a_grant_a_protected_person_is_told_apart_from_no_one() {
    let s = civil_registry();
    for (consumer, purpose, code) in [
        (
            "tax-office",
            "benefit-eligibility",
            ReasonCode::PurposeNotAllowed,
        ),
        (
            "social-welfare",
            "statistics",
            ReasonCode::PurposeNotAllowed,
        ),
        ("tax-office", "fraud-investigation", ReasonCode::Expired),
        ("oversight", "statistics", ReasonCode::NoGrant),
    ] {
        let ask = |id: &str| {
            req(consumer, "residents", purpose)
                .param("national_id", json!(id))
                .decide(&s)
        };
        let (protected, other) = (ask("D009999"), ask("D000042"));
        assert_eq!(told(&protected), told(&other), "{consumer} {purpose}");
        assert_eq!(protected.told().code, code);
        // The full explanation still names the deny rule, for the ledger's readers and explain.
        assert_eq!(protected.reason.code, ReasonCode::DeniedByRule);
        assert_eq!(
            protected.rule.as_ref().map(|r| r.id.as_str()),
            Some("protected-persons")
        );
        let explained = explain(
            &s,
            &req(consumer, "residents", purpose)
                .param("national_id", json!("D009999"))
                .request(),
        )
        .to_string();
        assert!(
            explained.contains("decision: denied (denied-by-rule)")
                && explained.contains("\"protected-persons\" (protected-persons.toml:10)")
                && explained.contains(&format!("({code})")),
            "{explained}"
        );
    }
}

#[test]
fn with_a_grant_the_deny_rule_and_its_reason_are_told() {
    let s = civil_registry();
    let d = req("social-welfare", "residents", "benefit-eligibility")
        .param("national_id", json!("D009999"))
        .decide(&s);
    let (code, message, rule) = told(&d);
    assert_eq!(code, ReasonCode::DeniedByRule);
    assert!(message.starts_with("The record is protected"), "{message}");
    assert_eq!(
        rule.as_deref(),
        Some("\"protected-persons\" (protected-persons.toml:10)")
    );
    assert_eq!(
        (d.reason.code, d.reason.message.as_str()),
        (code, &*message)
    );
}

/// Every condition a grant can fail, with request values and grant lists that must not reach the
/// consumer; the full explanation keeps them.
#[test]
fn denials_name_the_condition_never_a_value() {
    let s = set(&[(
        "residents.toml",
        r#"
[[grant]]
id = "one-of"
consumer = "social-welfare"
dataset = "residents"
purposes = ["benefit-eligibility"]
fields = ["name"]
params = { national_id = { one_of = ["D000099", "D000100"] } }

[[grant]]
id = "pattern-range-exact"
consumer = "social-welfare"
dataset = "income"
purposes = ["benefit-eligibility"]
fields = ["year"]
params = { national_id = { pattern = "Q7?????" }, year = { range = [2015, 2019] }, kind = { exact = "annual-77" } }

[[grant]]
id = "bases"
consumer = "social-welfare"
dataset = "residents"
purposes = ["fraud-investigation"]
legal_bases = ["fraud-act:s3", "secret-act:s88"]
fields = ["name"]

[[grant]]
id = "apps"
consumer = "social-welfare"
dataset = "residents"
purposes = ["statistics"]
applications = ["stats-batch-77"]
fields = ["name"]

[[grant]]
id = "window"
consumer = "tax-office"
dataset = "residents"
purposes = ["tax-assessment"]
fields = ["name"]
valid_from = 2031-03-04T05:06:07Z

[[grant]]
id = "expired"
consumer = "tax-office"
dataset = "residents"
purposes = ["statistics"]
fields = ["name"]
valid_until = 2019-08-09T10:11:12Z
"#,
    )]);
    let cases = [
        (
            req("social-welfare", "residents", "benefit-eligibility")
                .param("national_id", json!("D000042")),
            ReasonCode::ParamConstraint,
            vec!["D000042", "D000099", "D000100"],
        ),
        (
            req("social-welfare", "income", "benefit-eligibility")
                .param("national_id", json!("D000042"))
                .param("year", json!(2024))
                .param("kind", json!("monthly")),
            ReasonCode::ParamConstraint,
            vec!["D000042", "Q7", "2024", "monthly", "annual-77"],
        ),
        (
            req("social-welfare", "income", "benefit-eligibility")
                .param("national_id", json!("Q712345"))
                .param("year", json!(2024))
                .param("kind", json!("annual-77")),
            ReasonCode::ParamConstraint,
            vec!["Q712345", "2024", "2015", "2019", "annual-77"],
        ),
        (
            req("social-welfare", "residents", "fraud-investigation").basis("test-act:s1"),
            ReasonCode::LegalBasisNotAllowed,
            vec!["test-act:s1", "fraud-act:s3", "secret-act:s88"],
        ),
        (
            req("social-welfare", "residents", "fraud-investigation"),
            ReasonCode::LegalBasisNotAllowed,
            vec!["fraud-act:s3", "secret-act:s88"],
        ),
        (
            req("social-welfare", "residents", "statistics").app("case-desk"),
            ReasonCode::ApplicationNotAllowed,
            vec!["case-desk", "stats-batch-77"],
        ),
        (
            req("social-welfare", "residents", "statistics"),
            ReasonCode::ApplicationNotAllowed,
            vec!["stats-batch-77"],
        ),
        (
            req("tax-office", "residents", "tax-assessment"),
            ReasonCode::NotYetValid,
            vec!["2031"],
        ),
        (
            req("tax-office", "residents", "statistics"),
            ReasonCode::Expired,
            vec!["2019"],
        ),
        (
            req("tax-office", "residents", "benefit-eligibility"),
            ReasonCode::PurposeNotAllowed,
            vec![
                "tax-office",
                "residents",
                "benefit-eligibility",
                "tax-assessment",
                "statistics",
            ],
        ),
        (
            req("tax-office", "vehicles", "benefit-eligibility"),
            ReasonCode::NoGrant,
            vec!["tax-office", "vehicles"],
        ),
        (
            req("tax-office", "residents", "marketing-77"),
            ReasonCode::UnknownPurpose,
            vec!["marketing-77"],
        ),
    ];
    for (r, code, values) in cases {
        let d = r.decide(&s);
        let told = d.told();
        assert_eq!((d.reason.code, told.code), (code, code), "{d:?}");
        for value in &values {
            assert!(
                !told.message.contains(value),
                "{code}: {value:?} in {:?}",
                told.message
            );
        }
        assert!(
            values.iter().any(|v| d.reason.message.contains(v)),
            "the full explanation keeps the detail: {:?}",
            d.reason.message
        );
    }
    // Named: the parameter, not its value.
    let d = req("social-welfare", "residents", "benefit-eligibility")
        .param("national_id", json!("D000042"))
        .decide(&s);
    assert_eq!(
        d.told().message,
        "parameter \"national_id\" does not meet the constraint of grant \"one-of\""
    );
    let d = req("social-welfare", "residents", "benefit-eligibility").decide(&s);
    assert_eq!(
        d.told().message,
        "parameter \"national_id\" is required by grant \"one-of\""
    );
}

#[test]
fn a_rate_limited_denial_names_the_window_and_the_grant_only() {
    let s = set(&[(
        "a.toml",
        "[[grant]]\nid = \"g\"\nconsumer = \"c\"\ndataset = \"d\"\npurposes = [\"statistics\"]\nfields = [\"x\"]\nrate_limit = { per_minute = 7 }\n",
    )]);
    let limiter = RateLimiter::new();
    let r = req("c", "d", "statistics").at(JUNE_2025);
    for _ in 0..7 {
        assert!(limiter.admit(&r.request(), r.decide(&s)).allowed);
    }
    let last = limiter.admit(&r.request(), r.decide(&s));
    assert_eq!(last.told().code, ReasonCode::RateLimited);
    assert_eq!(
        last.told().message,
        "the rate limit per minute is reached (grant \"g\")"
    );
    assert!(last.reason.message.contains("7 requests per minute"));
}

#[test]
fn an_allowed_decision_is_told_as_decided_and_a_bare_denial_tells_only_its_code() {
    let s = civil_registry();
    let d = req("social-welfare", "residents", "benefit-eligibility")
        .param("national_id", json!("D000042"))
        .decide(&s);
    assert!(d.allowed && d.disclosure.is_none());
    assert_eq!(d.told().message, d.reason.message);
    assert_eq!(d.told().rule, d.rule.as_ref());
    // A denial read from an older serialization carries no disclosure: it is told its code only.
    let mut json =
        serde_json::to_value(req("social-welfare", "residents", "statistics").decide(&s))
            .expect("serializes");
    json.as_object_mut().expect("object").remove("disclosure");
    let bare: Decision = serde_json::from_value(json).expect("deserializes");
    assert_eq!(bare.told().code, ReasonCode::PurposeNotAllowed);
    assert_eq!(bare.told().rule, None);
    assert!(!bare.told().message.contains("statistics"));
}
