//! Case references and legal-basis codes (docs/POLICY.md): a purpose's `case_pattern` and a
//! grant's `legal_bases` are checked at load with their positions, and `check_references` refuses
//! free text with a code and a message that never repeats it.

mod common;

use std::collections::BTreeMap;

use causeway_policy::{run_test_sources, NotAReference, Request};
use common::{load_err, set, PURPOSES};

const GRANT: &str = "[[grant]]\nid = \"g\"\nconsumer = \"social-welfare\"\ndataset = \"residents\"\npurposes = [\"fraud-investigation\"]\nfields = [\"name\"]\n";

fn purposes_with(pattern: &str) -> String {
    format!(
        "[[purpose]]\nid = \"fraud-investigation\"\ndescription = \"Fraud\"\ncase_pattern = {pattern}\n\n[[purpose]]\nid = \"statistics\"\ndescription = \"Statistics\"\n"
    )
}

fn request<'a>(
    purpose: &'a str,
    legal_basis: &'a str,
    case: &'a str,
    params: &'a BTreeMap<String, serde_json::Value>,
) -> Request<'a> {
    Request {
        consumer: "social-welfare",
        dataset: "residents",
        purpose,
        legal_basis,
        case,
        application: None,
        params,
        at_unix: common::JUNE_2025,
    }
}

#[test]
fn a_legal_basis_that_is_not_a_code_does_not_load_and_says_where() {
    let text = format!("{GRANT}legal_bases = [\"fraud-act:s3\", \"Social Welfare Act s.12\"]\n");
    let err = load_err(&[("a.toml", &text)]);
    assert!(
        err.starts_with("a.toml:7:32: legal basis \"Social Welfare Act s.12\" is not a code: list codes of 1 to 64 letters, digits and . _ : / -"),
        "{err}"
    );
    let long = "a".repeat(65);
    let err = load_err(&[("a.toml", &format!("{GRANT}legal_bases = [\"{long}\"]\n"))]);
    assert!(err.starts_with("a.toml:7:16: legal basis"), "{err}");
    set(&[(
        "a.toml",
        &format!("{GRANT}legal_bases = [\"{}\"]\n", "a".repeat(64)),
    )]);
}

#[test]
fn a_case_pattern_that_is_unanchored_or_invalid_does_not_load_and_says_where() {
    let err = load_err(&[("purposes.toml", &purposes_with("\"FR-[0-9]+\""))]);
    assert!(
        err.starts_with("purposes.toml:4:16: case_pattern must be anchored, ^...$"),
        "{err}"
    );
    let err = load_err(&[("purposes.toml", &purposes_with("\"^FR-[0-9+$\""))]);
    assert!(
        err.starts_with("purposes.toml:4:16: case_pattern is not a regular expression: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let err = load_err(&[("purposes.toml", &purposes_with("3"))]);
    assert!(err.starts_with("purposes.toml:4:16: "), "{err}");
}

#[test]
fn a_purposes_case_pattern_narrows_the_default_and_the_default_refuses_free_text() {
    let set = set(&[
        (
            "purposes.toml",
            &purposes_with("'^FR-[0-9]{4}-[0-9]{3,6}$'"),
        ),
        ("a.toml", GRANT),
    ]);
    assert_eq!(
        set.purposes()[0].case_pattern.as_deref(),
        Some("^FR-[0-9]{4}-[0-9]{3,6}$")
    );
    let params = BTreeMap::new();
    let check = |purpose, legal_basis, case| {
        set.check_references(&request(purpose, legal_basis, case, &params))
    };
    assert_eq!(
        check("fraud-investigation", "fraud-act:s3", "FR-2025-000123"),
        Ok(())
    );
    assert_eq!(
        check("fraud-investigation", "", ""),
        Ok(()),
        "no case is the grant's business"
    );
    assert_eq!(
        check("fraud-investigation", "", "SW-2025-0001"),
        Err(NotAReference::Case {
            pattern: "^FR-[0-9]{4}-[0-9]{3,6}$".into()
        })
    );
    assert_eq!(check("statistics", "", "SW-2025-0001"), Ok(()));
    let diagnosis = "Applicant D000042 ..., HIV+ status review";
    for purpose in ["statistics", "fraud-investigation", "undeclared"] {
        let refused = check(purpose, "", diagnosis).unwrap_err();
        assert_eq!(refused.code(), "case-not-a-reference");
        assert!(!refused.to_string().contains("D000042"), "{refused}");
    }
    let refused = check("statistics", "Social Welfare Act s.12", "").unwrap_err();
    assert_eq!(refused, NotAReference::LegalBasis);
    assert_eq!(refused.code(), "legal-basis-not-a-code");
    assert!(!refused.to_string().contains("Welfare"), "{refused}");
}

#[test]
fn the_legal_basis_must_be_one_the_grant_lists_and_the_denial_does_not_repeat_it() {
    let set = set(&[(
        "a.toml",
        &format!("{GRANT}legal_bases = [\"fraud-act:s3\"]\n"),
    )]);
    let params = BTreeMap::new();
    assert!(
        set.decide(&request("fraud-investigation", "fraud-act:s3", "", &params))
            .allowed
    );
    let denied = set.decide(&request(
        "fraud-investigation",
        "secret-act:s88",
        "",
        &params,
    ));
    assert_eq!(denied.reason.code.as_str(), "legal-basis-not-allowed");
    let told = denied.told().message;
    assert!(
        !told.contains("secret-act") && !told.contains("fraud-act"),
        "{told}"
    );
}

#[test]
fn a_test_case_with_free_text_fails_with_the_gateways_reason() {
    let tests = "at = 2025-06-01T00:00:00Z\n\n[[test]]\nname = \"free text\"\nconsumer = \"social-welfare\"\ndataset = \"residents\"\npurpose = \"fraud-investigation\"\ncase = \"HIV+ status review\"\nexpect = { allowed = true }\n";
    let policies = set(&[("purposes.toml", PURPOSES), ("a.toml", GRANT)]);
    let report = run_test_sources(&policies, &[("a.test.toml".into(), tests.into())]);
    let case = &report.cases[0];
    assert!(
        case.failures
            .iter()
            .any(|f| f.contains("(case-not-a-reference)")),
        "{:?}",
        case.failures
    );
}
