//! Grants and deny rules that name the consumer's applications: `applications = [...]`, the
//! `application-not-allowed` reason, where the check sits among a grant's conditions, load errors,
//! explain, check, diff and test files.

mod common;

use causeway_policy::{
    check_sources, diff, explain, run_test_sources, Decision, PolicySet, ReasonCode,
};
use common::{field_names, load_err, req, set, JUNE_2025, PURPOSES};
use serde_json::json;

const PORTAL: &str = r#"[[grant]]
id = "portal-residents"
consumer = "social-welfare"
dataset = "residents"
purposes = ["benefit-eligibility"]
applications = ["benefits-portal", "caseworker-desktop"]
fields = ["name", "address"]
"#;

fn rule_id(d: &Decision) -> Option<&str> {
    d.rule.as_ref().map(|r| r.id.as_str())
}

fn welfare() -> common::R {
    req("social-welfare", "residents", "benefit-eligibility")
}

#[test]
fn a_listed_application_is_allowed_and_others_are_not() {
    let s = set(&[("portal.toml", PORTAL)]);
    for app in ["benefits-portal", "caseworker-desktop"] {
        let d = welfare().app(app).decide(&s);
        assert!(d.allowed, "{app}: {d:?}");
        assert_eq!(field_names(&d), ["name", "address"]);
    }

    let d = welfare().app("tax-robot").decide(&s);
    assert!(!d.allowed);
    assert_eq!(d.reason.code, ReasonCode::ApplicationNotAllowed);
    assert_eq!(rule_id(&d), Some("portal-residents"));
    assert_eq!(
        d.reason.message,
        "application \"tax-robot\" is not allowed by grant \"portal-residents\" \
         (allowed: benefits-portal, caseworker-desktop)"
    );
    assert!(d.fields.is_empty());

    // An older consumer gateway that does not say which application asks: refused.
    let d = welfare().decide(&s);
    assert!(!d.allowed);
    assert_eq!(d.reason.code, ReasonCode::ApplicationNotAllowed);
    assert_eq!(
        d.reason.message,
        "grant \"portal-residents\" requires the consumer's gateway to name the application, \
         one of: benefits-portal, caseworker-desktop"
    );

    // The wire name of the new code.
    let json = serde_json::to_value(&d).expect("serializes");
    assert_eq!(json["reason"]["code"], json!("application-not-allowed"));

    // The reference evaluation agrees.
    for r in [
        welfare(),
        welfare().app("benefits-portal"),
        welfare().app("x"),
    ] {
        assert_eq!(r.decide(&s), s.decide_by_scan(&r.request()));
    }
}

#[test]
fn hostile_application_values_match_nothing_but_the_exact_id() {
    let s = set(&[("portal.toml", PORTAL)]);
    let long = "b".repeat(100_000);
    for app in [
        "",
        " ",
        "Benefits-Portal",
        "BENEFITS-PORTAL",
        "benefits-portal ",
        " benefits-portal",
        "benefits-portal\n",
        "benefits-portal\0",
        "benefits-portal,caseworker-desktop",
        "benefits",
        "benefits-portal-2",
        "benefits_portal",
        "bеnefits-portal", // Cyrillic "е"
        "*",
        "group:benefits-portal",
        long.as_str(),
    ] {
        let d = welfare().app(app).decide(&s);
        assert!(!d.allowed, "{app:?} must not be allowed");
        assert_eq!(d.reason.code, ReasonCode::ApplicationNotAllowed, "{app:?}");
        assert_eq!(
            d,
            s.decide_by_scan(&welfare().app(app).request()),
            "{app:?}"
        );
        let e = explain(&s, &welfare().app(app).request());
        assert_eq!(
            e.closest.expect("closest").missing[0].constraint,
            "applications"
        );
    }
}

#[test]
fn a_grant_without_applications_allows_any_and_none() {
    let open = PORTAL
        .replace("portal-residents", "open-residents")
        .replace(
            "applications = [\"benefits-portal\", \"caseworker-desktop\"]\n",
            "",
        )
        .replace("\"name\", \"address\"", "\"name\"");
    // The restricted grant first: a listed application gets its fields, any other request the
    // open grant's.
    let s = set(&[("a.toml", PORTAL), ("b.toml", &open)]);
    let d = welfare().app("benefits-portal").decide(&s);
    assert_eq!(rule_id(&d), Some("portal-residents"));
    assert_eq!(field_names(&d), ["name", "address"]);
    for r in [welfare(), welfare().app("tax-robot")] {
        let d = r.decide(&s);
        assert!(d.allowed, "{d:?}");
        assert_eq!(rule_id(&d), Some("open-residents"));
        assert_eq!(field_names(&d), ["name"]);
    }
}

/// The application is a grant's first condition: a grant that does not admit it does not apply,
/// so the denial names what a grant that does admit it lacked.
#[test]
fn the_application_is_checked_before_the_other_conditions() {
    // One grant, unlisted application and expired: the application decides.
    let expired = PORTAL.replace(
        "fields = [\"name\", \"address\"]",
        "fields = [\"name\", \"address\"]\nvalid_until = 2025-01-01\nrequire_case = true",
    );
    let s = set(&[("portal.toml", &expired)]);
    assert_eq!(
        welfare().app("tax-robot").decide(&s).reason.code,
        ReasonCode::ApplicationNotAllowed
    );
    assert_eq!(
        welfare().decide(&s).reason.code,
        ReasonCode::ApplicationNotAllowed
    );
    // A listed application gets the next condition.
    assert_eq!(
        welfare().app("benefits-portal").decide(&s).reason.code,
        ReasonCode::Expired
    );
    let before = welfare()
        .app("benefits-portal")
        .at(JUNE_2025 - 365 * 86_400);
    assert_eq!(before.decide(&s).reason.code, ReasonCode::CaseRequired);

    // A later grant that admits every application but needs a legal basis: an unlisted
    // application is told about the legal basis, which it can give, not about the first grant.
    let with_basis = r#"[[grant]]
id = "any-app-with-basis"
consumer = "social-welfare"
dataset = "residents"
purposes = ["benefit-eligibility"]
legal_bases = ["social-security-act:s12"]
fields = ["name"]
"#;
    let s = set(&[("a.toml", PORTAL), ("b.toml", with_basis)]);
    for r in [welfare().app("tax-robot"), welfare()] {
        let d = r.decide(&s);
        assert_eq!(d.reason.code, ReasonCode::LegalBasisNotAllowed, "{d:?}");
        assert_eq!(rule_id(&d), Some("any-app-with-basis"));
        let d = r.basis("social-security-act:s12").decide(&s);
        assert!(d.allowed, "{d:?}");
    }
    assert!(welfare().app("benefits-portal").decide(&s).allowed);

    // Two grants for other applications: the first one is named.
    let other = PORTAL
        .replace("portal-residents", "desk-residents")
        .replace(
            "\"benefits-portal\", \"caseworker-desktop\"",
            "\"front-desk\"",
        );
    let s = set(&[("a.toml", PORTAL), ("b.toml", &other)]);
    let d = welfare().app("tax-robot").decide(&s);
    assert_eq!(d.reason.code, ReasonCode::ApplicationNotAllowed);
    assert_eq!(rule_id(&d), Some("portal-residents"));
    assert!(welfare().app("front-desk").decide(&s).allowed);

    // The purpose is checked before the application.
    let d = req("social-welfare", "residents", "statistics")
        .app("tax-robot")
        .decide(&s);
    assert_eq!(d.reason.code, ReasonCode::PurposeNotAllowed);
}

#[test]
fn deny_rules_may_name_applications_and_fail_closed_without_one() {
    let deny = r#"[[deny]]
id = "retired-app"
reason = "The caseworker desktop is retired"
dataset = "residents"
applications = ["caseworker-desktop"]
"#;
    let s = set(&[("portal.toml", PORTAL), ("zz.toml", deny)]);
    let d = welfare().app("caseworker-desktop").decide(&s);
    assert_eq!(d.reason.code, ReasonCode::DeniedByRule);
    assert_eq!(
        d.reason.message,
        "The caseworker desktop is retired (deny rule \"retired-app\")"
    );
    assert!(welfare().app("benefits-portal").decide(&s).allowed);
    // No application named: the provider cannot tell it is not the retired one.
    assert_eq!(welfare().decide(&s).reason.code, ReasonCode::DeniedByRule);
    // Another consumer's request from an application the rule does not name is not matched.
    let d = req("tax-office", "residents", "benefit-eligibility")
        .app("benefits-portal")
        .decide(&s);
    assert_eq!(d.reason.code, ReasonCode::NoGrant);
    for r in [
        welfare().app("caseworker-desktop"),
        welfare().app("benefits-portal"),
        welfare(),
    ] {
        assert_eq!(r.decide(&s), s.decide_by_scan(&r.request()));
    }
}

const GRANT_HEAD: &str = "[[grant]]\nid = \"g\"\nconsumer = \"social-welfare\"\ndataset = \"residents\"\npurposes = [\"statistics\"]\nfields = [\"name\"]\n";

#[test]
fn malformed_application_lists_are_load_errors_with_positions() {
    let grant = |line: &str| format!("{GRANT_HEAD}{line}\n");
    let cases: [(&str, &str); 11] = [
        (
            "applications = []",
            "a.toml:7:16: applications is empty: list at least one application id, or omit the key to cover every application",
        ),
        (
            "applications = [\"Benefits-Portal\"]",
            "a.toml:7:17: invalid application id \"Benefits-Portal\": use lowercase letters, digits and '-', 1 to 63 characters, not starting with '-' (did you mean \"benefits-portal\"?)",
        ),
        (
            "applications = [\"ok\", \"benefits_portal\"]",
            "a.toml:7:23: invalid application id \"benefits_portal\": use lowercase letters, digits and '-', 1 to 63 characters, not starting with '-' (did you mean \"benefits-portal\"?)",
        ),
        (
            "applications = [\"-portal\"]",
            "a.toml:7:17: invalid application id \"-portal\": use lowercase letters, digits and '-', 1 to 63 characters, not starting with '-'",
        ),
        (
            "applications = [\"\"]",
            "a.toml:7:17: invalid application id \"\": use lowercase letters, digits and '-', 1 to 63 characters, not starting with '-'",
        ),
        (
            "applications = [\"portal\\n\"]",
            "a.toml:7:17: invalid application id \"portal\\n\": use lowercase letters, digits and '-', 1 to 63 characters, not starting with '-'",
        ),
        (
            "applications = [\"benefits-portal\", \"benefits-portal\"]",
            "a.toml:7:36: application \"benefits-portal\" is listed twice",
        ),
        (
            "applications = \"benefits-portal\"",
            "a.toml:7:16: invalid type: string \"benefits-portal\", expected a sequence",
        ),
        (
            "applications = [7]",
            "a.toml:7:17: invalid type: integer `7`, expected a string",
        ),
        (
            "aplications = [\"benefits-portal\"]",
            "a.toml:7:1: unknown field \"aplications\" (did you mean \"applications\"?)",
        ),
        (
            "application = \"benefits-portal\"",
            "a.toml:7:1: unknown field \"application\" (did you mean \"applications\"?)",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(load_err(&[("a.toml", &grant(line))]), expected, "{line}");
    }
    // 63 characters load; 64 do not.
    set(&[(
        "a.toml",
        &grant(&format!("applications = [\"{}\"]", "a".repeat(63))),
    )]);
    let err = load_err(&[(
        "a.toml",
        &grant(&format!("applications = [\"{}\"]", "a".repeat(64))),
    )]);
    assert!(
        err.starts_with("a.toml:7:17: invalid application id \"aaaa"),
        "{err}"
    );
    // Deny rules are validated the same way.
    assert_eq!(
        load_err(&[(
            "a.toml",
            "[[deny]]\nid = \"d\"\napplications = [\"Portal\"]\n"
        )]),
        "a.toml:3:17: invalid application id \"Portal\": use lowercase letters, digits and '-', 1 to 63 characters, not starting with '-' (did you mean \"portal\"?)"
    );
    assert_eq!(
        load_err(&[("a.toml", "[[deny]]\nid = \"d\"\napplications = []\n")]),
        "a.toml:3:16: applications is empty: list at least one application id, or omit the key to cover every application"
    );
}

#[test]
fn explain_names_the_unmet_application_condition() {
    let s = set(&[("portal.toml", PORTAL)]);
    let e = explain(&s, &welfare().app("tax-robot").request());
    assert_eq!(e.decision.reason.code, ReasonCode::ApplicationNotAllowed);
    let closest = e.closest.as_ref().expect("a closest grant");
    assert_eq!(closest.rule.id, "portal-residents");
    assert_eq!(closest.missing.len(), 1);
    assert_eq!(closest.missing[0].constraint, "applications");
    assert_eq!(
        closest.missing[0].message,
        "the grant is for applications benefits-portal, caseworker-desktop, not \"tax-robot\""
    );
    let text = e.to_string();
    assert!(
        text.starts_with("decision: denied (application-not-allowed)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  missing applications: the grant is for applications benefits-portal, caseworker-desktop, not \"tax-robot\"\n"
        ),
        "{text}"
    );

    // No application, and a case the grant would also want: both are listed, in decision order.
    let strict = PORTAL.replace(
        "fields = [\"name\", \"address\"]",
        "fields = [\"name\", \"address\"]\nrequire_case = true",
    );
    let s = set(&[("portal.toml", &strict)]);
    let e = explain(&s, &welfare().request());
    let missing = e.closest.expect("closest").missing;
    let constraints: Vec<&str> = missing.iter().map(|m| m.constraint.as_str()).collect();
    assert_eq!(constraints, ["applications", "require_case"]);
    assert_eq!(
        missing[0].message,
        "the grant is for applications benefits-portal, caseworker-desktop, and the request \
         names none (the consumer's gateway did not say)"
    );
    // A listed application: only the case is missing.
    let e = explain(&s, &welfare().app("benefits-portal").request());
    assert_eq!(e.decision.reason.code, ReasonCode::CaseRequired);
    let missing = e.closest.expect("closest").missing;
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].constraint, "require_case");
}

#[test]
fn check_takes_applications_into_account() {
    let grant = |id: &str, apps: Option<&str>, fields: &str| {
        let apps = apps.map_or(String::new(), |a| format!("applications = [{a}]\n"));
        format!(
            "[[grant]]\nid = \"{id}\"\nconsumer = \"social-welfare\"\ndataset = \"residents\"\n\
             purposes = [\"statistics\"]\n{apps}fields = [{fields}]\n\n"
        )
    };
    let warnings = |text: String| {
        let mut files = vec![
            ("a.toml".to_string(), text),
            ("purposes.toml".to_string(), PURPOSES.to_string()),
        ];
        files.sort();
        let report = check_sources(&files, None);
        assert!(report.is_ok(), "{:?}", report.errors);
        report
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };

    // A grant for some applications does not shadow a later one for all of them.
    let text =
        grant("portal", Some("\"benefits-portal\""), "\"name\"") + &grant("any", None, "\"name\"");
    assert_eq!(warnings(text), Vec::<String>::new());
    // The other way round it does, and so does a grant for more applications.
    let text =
        grant("any", None, "\"name\"") + &grant("portal", Some("\"benefits-portal\""), "\"name\"");
    assert_eq!(
        warnings(text),
        ["a.toml:8:1: grant \"portal\" never decides: \"any\" (a.toml:1) is checked first and allows every request it allows"]
    );
    let text = grant(
        "both",
        Some("\"benefits-portal\", \"front-desk\""),
        "\"name\"",
    ) + &grant("portal", Some("\"benefits-portal\""), "\"name\"");
    assert_eq!(warnings(text).len(), 1);

    // Grants for different applications releasing different fields do not overlap; grants whose
    // applications meet do.
    let text = grant("portal", Some("\"benefits-portal\""), "\"name\"")
        + &grant("desk", Some("\"front-desk\""), "\"name\", \"address\"");
    assert_eq!(warnings(text), Vec::<String>::new());
    let text = grant("portal", Some("\"benefits-portal\""), "\"name\"")
        + &grant(
            "desk",
            Some("\"front-desk\", \"benefits-portal\""),
            "\"name\", \"address\"",
        );
    assert_eq!(
        warnings(text),
        ["a.toml:9:1: grant \"desk\" overlaps \"portal\" (a.toml:1) for (social-welfare, residents, statistics) but releases different fields; the first grant whose conditions hold decides"]
    );

    // A deny rule for some applications refuses all of a grant only for those applications.
    let deny = "[[deny]]\nid = \"retired\"\napplications = [\"front-desk\", \"old-desk\"]\n";
    let text = grant("desk", Some("\"front-desk\""), "\"name\"") + deny;
    assert_eq!(
        warnings(text),
        ["a.toml:1:1: grant \"desk\" can never allow: deny rule \"retired\" (a.toml:9) refuses all of it"]
    );
    let text = grant("any", None, "\"name\"") + deny;
    assert_eq!(warnings(text), Vec::<String>::new());
    let text = grant(
        "two",
        Some("\"front-desk\", \"benefits-portal\""),
        "\"name\"",
    ) + deny;
    assert_eq!(warnings(text), Vec::<String>::new());
}

#[test]
fn diff_does_not_compare_applications_but_respects_deny_rules_for_them() {
    let open = PORTAL.replace(
        "applications = [\"benefits-portal\", \"caseworker-desktop\"]\n",
        "",
    );
    let restricted = set(&[("portal.toml", PORTAL)]);
    let unrestricted = set(&[("portal.toml", &open)]);
    // Narrowing or widening `applications` changes no (consumer, dataset, purpose, field).
    assert_eq!(diff(&unrestricted, &restricted), []);
    assert_eq!(diff(&restricted, &unrestricted), []);

    // A deny rule for all of the grant's applications takes its access away; one for only some
    // of them does not.
    let all =
        "[[deny]]\nid = \"d\"\napplications = [\"caseworker-desktop\", \"benefits-portal\"]\n";
    let some = "[[deny]]\nid = \"d\"\napplications = [\"caseworker-desktop\"]\n";
    let lines = |new: &PolicySet| {
        diff(&restricted, new)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines(&set(&[("portal.toml", PORTAL), ("zz.toml", all)])),
        [
            "- social-welfare residents benefit-eligibility address",
            "- social-welfare residents benefit-eligibility name",
        ]
    );
    assert_eq!(
        lines(&set(&[("portal.toml", PORTAL), ("zz.toml", some)])),
        Vec::<String>::new()
    );
    let unrestricted_denied = set(&[("portal.toml", &open), ("zz.toml", all)]);
    assert_eq!(diff(&unrestricted, &unrestricted_denied), []);
}

#[test]
fn test_files_can_name_the_application() {
    let s = set(&[("portal.toml", PORTAL)]);
    let tests = r#"
at = 2025-06-01T00:00:00Z

[[test]]
name = "the portal reads residents"
consumer = "social-welfare"
dataset = "residents"
purpose = "benefit-eligibility"
application = "benefits-portal"
expect = { allowed = true, reason = "granted", rule = "portal-residents" }

[[test]]
name = "another application does not"
consumer = "social-welfare"
dataset = "residents"
purpose = "benefit-eligibility"
application = "tax-robot"
expect = { allowed = false, reason = "application-not-allowed", rule = "portal-residents" }

[[test]]
name = "nor does a request that names none"
consumer = "social-welfare"
dataset = "residents"
purpose = "benefit-eligibility"
expect = { allowed = false, reason = "application-not-allowed" }

[[test]]
name = "a wrong expectation fails"
consumer = "social-welfare"
dataset = "residents"
purpose = "benefit-eligibility"
application = "tax-robot"
expect = { allowed = true }
"#;
    let report = run_test_sources(&s, &[("a.test.toml".into(), tests.into())]);
    assert_eq!(report.errors, []);
    assert_eq!((report.passed(), report.failed()), (3, 1));
    assert_eq!(
        report.cases[3].failures,
        ["expected allowed, got denied (application-not-allowed: application \"tax-robot\" is not allowed by grant \"portal-residents\" (allowed: benefits-portal, caseworker-desktop))"]
    );

    // A misspelt reason code is a test-file error with a suggestion; so is a misspelt key.
    let bad = |text: &str| {
        run_test_sources(&s, &[("t.test.toml".into(), text.into())])
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let case = "at = 2025-06-01\n[[test]]\nname = \"n\"\nconsumer = \"c\"\ndataset = \"d\"\npurpose = \"statistics\"\n";
    assert_eq!(
        bad(&format!(
            "{case}expect = {{ allowed = false, reason = \"application-not-alowed\" }}\n"
        )),
        ["t.test.toml:7:38: unknown reason code \"application-not-alowed\" (did you mean \"application-not-allowed\"?)"]
    );
    assert_eq!(
        bad(&format!(
            "{case}aplication = \"x\"\nexpect = {{ allowed = false }}\n"
        )),
        ["t.test.toml:7:1: unknown field \"aplication\" (did you mean \"application\"?)"]
    );
}
