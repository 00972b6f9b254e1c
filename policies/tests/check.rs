//! `check`: errors against the datasets, and warnings for rules that never take effect.

mod common;

use causeway_policy::{check, check_sources, samples, DatasetCatalog, DatasetSchema, ValueKind};
use common::PURPOSES;

fn catalog() -> DatasetCatalog {
    DatasetCatalog::new()
        .with(
            DatasetSchema::new("residents")
                .field("name", ValueKind::String)
                .field("birth_date", ValueKind::Date)
                .field("address", ValueKind::String)
                .field("household", ValueKind::String)
                .param("national_id"),
        )
        .with(
            DatasetSchema::new("income")
                .field("national_id", ValueKind::String)
                .field("year", ValueKind::Integer)
                .field("gross_income", ValueKind::Integer)
                .field("tax_paid", ValueKind::Integer)
                .param("national_id")
                .param("year"),
        )
}

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect();
    v.push(("purposes.toml".into(), PURPOSES.into()));
    v
}

fn messages(diags: &[causeway_policy::Diagnostic]) -> Vec<String> {
    diags.iter().map(ToString::to_string).collect()
}

#[test]
fn references_to_the_datasets_are_checked() {
    let text = r#"[[grant]]
id = "g"
consumer = "social-welfare"
dataset = "residents"
purposes = ["statistics"]
fields = ["name", "birth_date", "adress"]
masks = { name = "year", birth_date = "year" }
params = { national_id = { pattern = "D*" }, nationl_id = { exact = "x" } }
row_filter = [{ column = "age", op = ">=", value = 18 }]

[[grant]]
id = "h"
consumer = "social-welfare"
dataset = "incme"
purposes = ["statistics"]
fields = ["year"]

[[grant]]
id = "i"
consumer = "social-welfare"
dataset = "income"
purposes = ["statistics"]
fields = ["gross_income", "national_id"]
masks = { gross_income = "round:1000", national_id = "last:4" }

[[deny]]
id = "d"
dataset = "residnts"
"#;
    let report = check_sources(&files(&[("a.toml", text)]), Some(&catalog()));
    assert!(!report.is_ok());
    assert_eq!(
        messages(&report.errors),
        [
            "a.toml:6:33: dataset \"residents\" has no field \"adress\" (did you mean \"address\"?)",
            "a.toml:7:18: mask \"year\" cannot apply to field \"name\" of type string (it applies to date and datetime fields)",
            "a.toml:8:46: constraint on parameter \"nationl_id\", which dataset \"residents\" does not have (did you mean \"national_id\"?)",
            "a.toml:9:26: row_filter: dataset \"residents\" has no field \"age\"",
            "a.toml:14:11: unknown dataset \"incme\" (did you mean \"income\"?)",
            "a.toml:28:11: unknown dataset \"residnts\" (did you mean \"residents\"?)",
        ]
    );
    // Without a catalog, the same files are fine.
    let report = check_sources(&files(&[("a.toml", text)]), None);
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_eq!((report.grants, report.denies), (3, 1));
    assert!(report.policy_hash.is_some());
}

#[test]
fn shadowed_overlapping_and_denied_grants_are_warned_about() {
    let text = r#"[[grant]]
id = "broad"
consumer = "social-welfare"
dataset = "income"
purposes = ["benefit-eligibility", "statistics"]
fields = ["year", "gross_income"]

[[grant]]
id = "narrow"
consumer = "social-welfare"
dataset = "income"
purposes = ["statistics"]
fields = ["year"]
require_case = true

[[grant]]
id = "other-fields"
consumer = "social-welfare"
dataset = "income"
purposes = ["statistics", "fraud-investigation"]
fields = ["tax_paid"]

[[grant]]
id = "blocked"
consumer = "tax-office"
dataset = "income"
purposes = ["statistics"]
fields = ["year"]

[[grant]]
id = "fine"
consumer = "tax-office"
dataset = "residents"
purposes = ["tax-assessment"]
fields = ["name"]

[[deny]]
id = "no-stats-for-tax"
consumer = "tax-office"
purposes = ["statistics"]
"#;
    let report = check_sources(&files(&[("a.toml", text)]), Some(&catalog()));
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_eq!(
        messages(&report.warnings),
        [
            "a.toml:8:1: grant \"narrow\" never decides: \"broad\" (a.toml:1) is checked first and allows every request it allows",
            "a.toml:16:1: grant \"other-fields\" overlaps \"broad\" (a.toml:1) for (social-welfare, income, statistics) but releases different fields; the first grant whose conditions hold decides",
            "a.toml:23:1: grant \"blocked\" can never allow: deny rule \"no-stats-for-tax\" (a.toml:37) refuses all of it",
        ]
    );
}

#[test]
fn conditions_keep_a_later_grant_alive() {
    let text = r#"[[grant]]
id = "with-case"
consumer = "c"
dataset = "income"
purposes = ["statistics"]
fields = ["year"]
require_case = true

[[grant]]
id = "without-case"
consumer = "c"
dataset = "income"
purposes = ["statistics"]
fields = ["year"]
"#;
    let report = check_sources(&files(&[("a.toml", text)]), None);
    assert_eq!(report.warnings, []);
}

#[test]
fn load_errors_are_reported_as_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("purposes.toml"), PURPOSES).expect("write");
    std::fs::write(tmp.path().join("a.toml"), "[[grant]]\nid = 5\n").expect("write");
    let report = check(tmp.path(), None);
    assert!(!report.is_ok());
    assert_eq!(report.policy_hash, None);
    assert!(report.errors[0]
        .to_string()
        .starts_with(&format!("{}:2:6: ", tmp.path().join("a.toml").display())));
    let report = check(&tmp.path().join("missing"), None);
    assert!(
        report.errors[0].message.contains("cannot read"),
        "{:?}",
        report.errors
    );
}

#[test]
fn samples_check_clean_against_their_datasets() {
    for dept in samples::DEPARTMENTS {
        let report = check_sources(&samples::sources(dept), Some(&catalog()));
        assert!(report.is_ok(), "{dept}: {:?}", report.errors);
        assert_eq!(report.warnings, [], "{dept}");
    }
}

/// A catalog whose `people` dataset compares `name` lowercased and trimmed (as a datasets file
/// with `normalize = ["trim", "casefold"]` declares it) and takes any text for `note`.
fn canonical_catalog() -> DatasetCatalog {
    use causeway_policy::ParamSchema;
    use std::sync::Arc;
    let lower: causeway_policy::CanonicalForm = Arc::new(|v: &str| v.trim().to_lowercase());
    DatasetCatalog::new().with(
        DatasetSchema::new("people")
            .field("address", ValueKind::String)
            .param_schema(ParamSchema {
                canonical: Some(lower),
                ..ParamSchema::new("name")
            })
            .param_schema(ParamSchema {
                free_text: true,
                ..ParamSchema::new("note")
            })
            .subject("note"),
    )
}

#[test]
fn literals_must_be_in_the_canonical_form_the_provider_compares_in() {
    let text = r#"[[deny]]
id = "protected"
dataset = "people"
params = { name = { one_of = ["alice", "Bob"] } }

[[deny]]
id = "everywhere"
params = { name = { exact = " carol" } }

[[grant]]
id = "g"
consumer = "social-welfare"
dataset = "people"
purposes = ["statistics"]
fields = ["address"]
params = { name = { pattern = "A*" } }
"#;
    let files = files(&[("a.toml", text)]);
    let report = check_sources(&files, Some(&canonical_catalog()));
    assert_eq!(
        messages(&report.errors),
        [
            "a.toml:4:12: parameter \"name\" of dataset \"people\" is compared in its canonical form, so \"Bob\" can never match (write \"bob\")",
            "a.toml:8:12: parameter \"name\" of dataset \"people\" is compared in its canonical form, so \" carol\" can never match (write \"carol\")",
            "a.toml:16:12: parameter \"name\" of dataset \"people\" is compared in its canonical form, so \"A*\" can never match (write \"a*\")",
        ]
    );
    let set = causeway_policy::PolicySet::from_sources(&files).expect("loads without datasets");
    assert_eq!(
        causeway_policy::noncanonical_literals(&set, &canonical_catalog()).len(),
        3,
        "the gateway's load check finds the same"
    );
    let fixed = text
        .replace("\"Bob\"", "\"bob\"")
        .replace("\" carol\"", "\"carol\"")
        .replace("\"A*\"", "\"a*\"");
    let report = check_sources(&files_of(&fixed), Some(&canonical_catalog()));
    assert!(report.is_ok(), "{:?}", report.errors);
}

fn files_of(text: &str) -> Vec<(String, String)> {
    files(&[("a.toml", text)])
}

#[test]
fn constraints_and_subjects_that_take_any_text_are_warned_about() {
    let text = r#"[[grant]]
id = "g"
consumer = "social-welfare"
dataset = "people"
purposes = ["statistics"]
fields = ["address"]
params = { note = { exact = "x" }, name = { exact = "alice" } }
"#;
    let report = check_sources(&files_of(text), Some(&canonical_catalog()));
    assert!(report.is_ok(), "{:?}", report.errors);
    let warnings = messages(&report.warnings);
    assert!(
        warnings.iter().any(|w| w.starts_with("a.toml:7:12: constraint on parameter \"note\" of dataset \"people\", which has no pattern")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("a.toml:4:11: dataset \"people\" identifies its subject by \"note\", which has no pattern")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("parameter \"name\"")),
        "a parameter with a pattern is not warned about: {warnings:?}"
    );
}
