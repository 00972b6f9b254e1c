//! Decisions: default deny, every deny reason, precedence, field order, masks, hash.

mod common;

use causeway_policy::{Mask, PolicySet, ReasonCode};
use common::{field_names, req, set, JUNE_2025, PURPOSES};
use serde_json::json;

const RESIDENTS: &str = r#"
[agreement]
title = "Residents"

[[grant]]
id = "welfare-residents"
consumer = "social-welfare"
dataset = "residents"
purposes = ["benefit-eligibility", "fraud-investigation"]
legal_bases = ["social-security-act:s12", "fraud-act:s3"]
fields = ["address", "name", "birth_date", "household"]
masks = { birth_date = "year", household = "redact" }
params = { national_id = { pattern = "D[0-9][0-9][0-9][0-9][0-9][0-9]" } }
max_rows = 1
require_case = true
valid_from = 2025-01-01T00:00:00Z
valid_until = 2026-01-01T00:00:00Z
"#;

fn welfare() -> common::R {
    req("social-welfare", "residents", "benefit-eligibility")
        .basis("social-security-act:s12")
        .case("CASE-1")
        .param("national_id", json!("D000001"))
}

#[test]
fn granted_releases_fields_in_grant_order_with_masks() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    let d = welfare().decide(&s);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.reason.code, ReasonCode::Granted);
    assert_eq!(
        field_names(&d),
        ["address", "name", "birth_date", "household"]
    );
    assert_eq!(d.fields[0].mask, None);
    assert_eq!(d.fields[2].mask, Some(Mask::Year));
    assert_eq!(d.fields[3].mask, Some(Mask::Redact));
    assert_eq!(d.max_rows, Some(1));
    assert_eq!(d.policy_hash, s.hash());
    let rule = d.rule.expect("a rule decided");
    assert_eq!(
        (rule.file.as_str(), rule.line, rule.id.as_str()),
        ("residents.toml", 5, "welfare-residents")
    );
    assert_eq!(
        d.reason.message,
        "granted by \"welfare-residents\" (residents.toml:5)"
    );
}

#[test]
fn default_deny_without_any_grant() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    for r in [
        req("tax-office", "residents", "benefit-eligibility"),
        req("social-welfare", "income", "benefit-eligibility"),
        req("nobody", "nothing", "statistics"),
    ] {
        let d = r.decide(&s);
        assert!(!d.allowed);
        assert_eq!(d.reason.code, ReasonCode::NoGrant);
        assert_eq!(d.rule, None);
        assert!(d.fields.is_empty());
        assert_eq!(d.max_rows, None);
    }
    let d = req("tax-office", "residents", "statistics").decide(&s);
    assert_eq!(
        d.reason.message,
        "no grant lets \"tax-office\" read \"residents\""
    );
    let empty = set(&[]);
    assert_eq!(welfare().decide(&empty).reason.code, ReasonCode::NoGrant);
}

#[test]
fn unknown_purpose_is_denied_before_anything_else() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    let mut r = welfare();
    r.purpose = "benefit-eligibilty".into();
    let d = r.decide(&s);
    assert!(!d.allowed);
    assert_eq!(d.reason.code, ReasonCode::UnknownPurpose);
    assert_eq!(d.rule, None);
    assert_eq!(
        d.reason.message,
        "purpose \"benefit-eligibilty\" is not declared (did you mean \"benefit-eligibility\"?)"
    );
}

#[test]
fn purpose_not_allowed_names_the_grant() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    let mut r = welfare();
    r.purpose = "statistics".into();
    let d = r.decide(&s);
    assert_eq!(d.reason.code, ReasonCode::PurposeNotAllowed);
    assert_eq!(d.rule.map(|r| r.id), Some("welfare-residents".to_string()));
    assert!(
        d.reason
            .message
            .contains("only for benefit-eligibility, fraud-investigation, not for \"statistics\""),
        "{}",
        d.reason.message
    );
}

#[test]
fn each_condition_has_its_own_reason() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    let code = |r: common::R| r.decide(&s).reason.code;
    assert_eq!(code(welfare()), ReasonCode::Granted);
    assert_eq!(
        code(welfare().basis("Because")),
        ReasonCode::LegalBasisNotAllowed
    );
    assert_eq!(code(welfare().basis("")), ReasonCode::LegalBasisNotAllowed);
    assert_eq!(code(welfare().case("")), ReasonCode::CaseRequired);
    assert_eq!(code(welfare().case("   ")), ReasonCode::CaseRequired);
    assert_eq!(
        code(welfare().param("national_id", json!("X1"))),
        ReasonCode::ParamConstraint
    );
    let mut no_param = welfare();
    no_param.params.clear();
    assert_eq!(code(no_param.clone()), ReasonCode::ParamConstraint);
    assert_eq!(
        no_param.decide(&s).reason.message,
        "parameter \"national_id\" is required by grant \"welfare-residents\""
    );
    assert_eq!(
        welfare().param("national_id", json!("X1")).decide(&s).reason.message,
        "parameter \"national_id\" = \"X1\" must match pattern \"D[0-9][0-9][0-9][0-9][0-9][0-9]\" by grant \"welfare-residents\""
    );
    assert_eq!(
        welfare().basis("Because").decide(&s).reason.message,
        "legal basis \"Because\" is not accepted by grant \"welfare-residents\" (accepted: social-security-act:s12; fraud-act:s3)"
    );
}

#[test]
fn validity_window_is_inclusive_from_exclusive_until() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    let from = 1_735_689_600; // 2025-01-01T00:00:00Z
    let until = 1_767_225_600; // 2026-01-01T00:00:00Z
    let code = |t: i64| welfare().at(t).decide(&s).reason.code;
    assert_eq!(code(from - 1), ReasonCode::NotYetValid);
    assert_eq!(code(from), ReasonCode::Granted);
    assert_eq!(code(until - 1), ReasonCode::Granted);
    assert_eq!(code(until), ReasonCode::Expired);
    assert_eq!(
        welfare().at(until).decide(&s).reason.message,
        "grant \"welfare-residents\" expired at 2026-01-01T00:00:00Z"
    );
    assert_eq!(
        welfare().at(from - 1).decide(&s).reason.message,
        "grant \"welfare-residents\" is not valid before 2025-01-01T00:00:00Z"
    );
}

#[test]
fn deny_rules_override_grants() {
    let deny = r#"
[[deny]]
id = "protected-persons"
reason = "The record is protected"
dataset = "residents"
params = { national_id = { one_of = ["D000013"] } }

[[deny]]
id = "no-fraud-on-residents"
consumer = "social-welfare"
purposes = ["fraud-investigation"]
valid_until = 2025-07-01T00:00:00Z
"#;
    let s = set(&[("residents.toml", RESIDENTS), ("zz-deny.toml", deny)]);
    assert!(welfare().decide(&s).allowed);
    let d = welfare().param("national_id", json!("D000013")).decide(&s);
    assert!(!d.allowed);
    assert_eq!(d.reason.code, ReasonCode::DeniedByRule);
    assert_eq!(
        d.reason.message,
        "The record is protected (deny rule \"protected-persons\")"
    );
    let rule = d.rule.expect("deny rule");
    assert_eq!(
        (rule.file.as_str(), rule.line, rule.id.as_str()),
        ("zz-deny.toml", 2, "protected-persons")
    );
    // A deny rule applies even where no grant exists, and the full explanation says so; the
    // consumer is told what it would be told without the rule, so that it cannot learn whom a
    // rule protects.
    let d = req("tax-office", "residents", "statistics")
        .param("national_id", json!("D000013"))
        .decide(&s);
    assert_eq!(d.reason.code, ReasonCode::DeniedByRule);
    let unprotected = req("tax-office", "residents", "statistics")
        .param("national_id", json!("D000014"))
        .decide(&s);
    assert_eq!(d.told(), unprotected.told());
    assert_eq!(d.told().code, ReasonCode::NoGrant);
    // The consumer with a grant is told the rule.
    let d = welfare().param("national_id", json!("D000013")).decide(&s);
    assert_eq!(d.told().code, ReasonCode::DeniedByRule);
    assert_eq!(d.told().message, d.reason.message);

    let mut fraud = welfare().basis("fraud-act:s3");
    fraud.purpose = "fraud-investigation".into();
    let d = fraud.decide(&s);
    assert_eq!(d.reason.code, ReasonCode::DeniedByRule);
    assert_eq!(d.rule.map(|r| r.line), Some(8));
    // ... until the deny rule's own window closes.
    assert!(fraud.at(1_751_328_000).decide(&s).allowed);
}

#[test]
fn groups_expand_to_their_members() {
    let groups =
        "[[group]]\nid = \"benefit-agencies\"\nmembers = [\"social-welfare\", \"housing\"]\n";
    let grant = r#"
[[grant]]
id = "agencies"
consumer = "group:benefit-agencies"
dataset = "residents"
purposes = ["benefit-eligibility"]
fields = ["name"]

[[deny]]
id = "no-housing-stats"
consumer = "group:benefit-agencies"
dataset = "residents"
purposes = ["statistics"]
"#;
    let s = set(&[("groups.toml", groups), ("a.toml", grant)]);
    assert!(
        req("social-welfare", "residents", "benefit-eligibility")
            .decide(&s)
            .allowed
    );
    assert!(
        req("housing", "residents", "benefit-eligibility")
            .decide(&s)
            .allowed
    );
    assert_eq!(
        req("tax-office", "residents", "benefit-eligibility")
            .decide(&s)
            .reason
            .code,
        ReasonCode::NoGrant
    );
    assert_eq!(
        req("housing", "residents", "statistics")
            .decide(&s)
            .reason
            .code,
        ReasonCode::DeniedByRule
    );
    assert_eq!(
        req("tax-office", "residents", "statistics")
            .decide(&s)
            .reason
            .code,
        ReasonCode::NoGrant
    );
}

#[test]
fn first_satisfied_grant_wins_and_denials_name_the_closest() {
    let grants = r#"
[[grant]]
id = "with-case"
consumer = "social-welfare"
dataset = "income"
purposes = ["benefit-eligibility"]
fields = ["gross_income", "year"]
require_case = true

[[grant]]
id = "recent-years"
consumer = "social-welfare"
dataset = "income"
purposes = ["benefit-eligibility"]
fields = ["year"]
params = { year = { range = [2020, 2024] } }
"#;
    let s = set(&[("income.toml", grants)]);
    let base = || req("social-welfare", "income", "benefit-eligibility");
    let d = base().case("C-1").param("year", json!(2010)).decide(&s);
    assert_eq!(d.rule.map(|r| r.id), Some("with-case".into()));
    assert_eq!(
        field_names(&base().case("C-1").decide(&s)),
        ["gross_income", "year"]
    );
    let d = base().param("year", json!("2022")).decide(&s);
    assert_eq!(
        (d.allowed, d.rule.map(|r| r.id)),
        (true, Some("recent-years".into()))
    );
    assert_eq!(
        field_names(&base().param("year", json!(2022)).decide(&s)),
        ["year"]
    );
    // Neither holds: "recent-years" got further (to its parameters) than "with-case" (case).
    let d = base().param("year", json!(2019)).decide(&s);
    assert_eq!(d.reason.code, ReasonCode::ParamConstraint);
    assert_eq!(d.rule.map(|r| r.id), Some("recent-years".into()));
    assert_eq!(
        d.reason.message,
        "parameter \"year\" = 2019 must be in range [2020, 2024] by grant \"recent-years\""
    );
    // No case and no year: "recent-years" (failing at its parameters) is still closer.
    let d = base().decide(&s);
    assert_eq!(
        (d.reason.code, d.rule.map(|r| r.id)),
        (ReasonCode::ParamConstraint, Some("recent-years".into()))
    );
}

#[test]
fn row_filters_and_rate_limits_travel_with_the_decision() {
    let g = r#"
[[grant]]
id = "adults"
consumer = "social-welfare"
dataset = "residents"
purposes = ["statistics"]
fields = ["birth_date"]
row_filter = [{ column = "age", op = ">=", value = 18 }, { column = "municipality", op = "in", value = ["North", "South"] }]
rate_limit = { per_minute = 10, per_day = 1000 }
"#;
    let s = set(&[("a.toml", g)]);
    let d = req("social-welfare", "residents", "statistics").decide(&s);
    assert!(d.allowed);
    assert_eq!(d.row_filter.len(), 2);
    let json = serde_json::to_value(&d).expect("serializes");
    assert_eq!(
        json["row_filter"][0],
        json!({"column": "age", "op": ">=", "value": 18})
    );
    assert_eq!(json["row_filter"][1]["value"], json!(["North", "South"]));
    assert_eq!(
        json["rate_limit"],
        json!({"per_minute": 10, "per_day": 1000})
    );
}

#[test]
fn decisions_serialize_for_the_ledger() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    let d = welfare().decide(&s);
    let json = serde_json::to_value(&d).expect("serializes");
    assert_eq!(json["reason"]["code"], json!("granted"));
    assert_eq!(
        json["fields"][2],
        json!({"name": "birth_date", "mask": "year"})
    );
    assert_eq!(json["fields"][0], json!({"name": "address"}));
    assert_eq!(json["rule"]["file"], json!("residents.toml"));
    let back: causeway_policy::Decision = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, d);
    let denied = serde_json::to_value(welfare().case("").decide(&s)).expect("serializes");
    assert_eq!(denied["reason"]["code"], json!("case-required"));
    assert_eq!(denied["fields"], json!([]));
}

#[test]
fn hash_is_stable_and_content_addressed() {
    let files = |order_flipped: bool, text: &str| {
        let mut v = vec![
            ("purposes.toml".to_string(), PURPOSES.to_string()),
            ("residents.toml".to_string(), text.to_string()),
            ("notes.test.toml".to_string(), "anything".to_string()),
        ];
        if order_flipped {
            v.reverse();
        }
        v
    };
    let a = PolicySet::from_sources(&files(false, RESIDENTS)).expect("loads");
    let b = PolicySet::from_sources(&files(true, RESIDENTS)).expect("loads");
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    assert!(a
        .hash()
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    // Test files do not count.
    let mut without_tests = files(false, RESIDENTS);
    without_tests.pop();
    assert_eq!(
        PolicySet::from_sources(&without_tests)
            .expect("loads")
            .hash(),
        a.hash()
    );
    // Any byte of content counts, and so does a file's name.
    let c = PolicySet::from_sources(&files(false, &format!("{RESIDENTS}\n"))).expect("loads");
    assert_ne!(a.hash(), c.hash());
    let renamed = vec![
        ("purposes.toml".to_string(), PURPOSES.to_string()),
        ("residents2.toml".to_string(), RESIDENTS.to_string()),
    ];
    assert_ne!(
        PolicySet::from_sources(&renamed).expect("loads").hash(),
        a.hash()
    );
    // Known answer: SHA-256 over (u64 BE name length, name, u64 BE content length, content)*.
    let only = PolicySet::from_sources(&[("purposes.toml".into(), String::new())]).expect("loads");
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(13u64.to_be_bytes());
    h.update(b"purposes.toml");
    h.update(0u64.to_be_bytes());
    assert_eq!(only.hash(), hex::encode(h.finalize()));
    assert_eq!(welfare().at(JUNE_2025).decide(&a).policy_hash, a.hash());
}

#[test]
fn masks_cannot_be_bypassed_by_case_or_parameters() {
    let s = set(&[("residents.toml", RESIDENTS)]);
    let plain = welfare().decide(&s);
    // Parameters that name a field, or ask for masks, change nothing about what is released.
    let tricky = welfare()
        .param("fields", json!(["birth_date", "household"]))
        .param("birth_date", json!("1985-03-14"))
        .param("mask", json!(null))
        .decide(&s);
    assert_eq!(tricky.fields, plain.fields);
    // Names are case-sensitive: another spelling of the consumer or dataset is another name.
    assert_eq!(
        req("Social-Welfare", "residents", "benefit-eligibility")
            .decide(&s)
            .reason
            .code,
        ReasonCode::NoGrant
    );
    let mut other_case = welfare();
    other_case.dataset = "Residents".into();
    assert_eq!(other_case.decide(&s).reason.code, ReasonCode::NoGrant);
    // Applying the decision's masks: the year mask and redact hold whatever the stored value.
    let year = plain
        .field("birth_date")
        .and_then(|f| f.mask)
        .expect("masked");
    let key = causeway_policy::PseudonymKey::new(b"k");
    let pseudonyms = key.scope("social-welfare", "birth_date");
    assert_eq!(year.apply(&json!("1985-03-14"), pseudonyms), json!(1985));
    let redact = plain
        .field("household")
        .and_then(|f| f.mask)
        .expect("masked");
    assert_eq!(
        redact.apply(&json!("H-17"), pseudonyms),
        serde_json::Value::Null
    );
    // A field that is not granted has no release at all.
    assert!(plain.field("national_id").is_none());
}
