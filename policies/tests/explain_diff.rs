//! `explain` (closest grant, what was missing) and `diff` (access gained and lost).

mod common;

use causeway_policy::{diff, explain, file_changes, ChangeKind, ReasonCode};
use common::{req, set};
use serde_json::json;

const INCOME: &str = r#"[[grant]]
id = "welfare-income"
consumer = "social-welfare"
dataset = "income"
purposes = ["benefit-eligibility"]
legal_bases = ["social-assistance-act:s14"]
fields = ["year", "gross_income"]
params = { year = { range = [2015, 2030] } }
require_case = true

[[grant]]
id = "stats-income"
consumer = "statistics-office"
dataset = "income"
purposes = ["statistics"]
fields = ["year", "gross_income"]
masks = { gross_income = "round:1000" }
"#;

#[test]
fn explain_names_the_closest_grant_and_everything_missing() {
    let s = set(&[("income.toml", INCOME)]);
    let e = explain(
        &s,
        &req("social-welfare", "income", "benefit-eligibility")
            .param("year", json!(2010))
            .request(),
    );
    assert_eq!(e.decision.reason.code, ReasonCode::LegalBasisNotAllowed);
    let closest = e.closest.as_ref().expect("a closest grant");
    assert_eq!(closest.rule.id, "welfare-income");
    let constraints: Vec<&str> = closest
        .missing
        .iter()
        .map(|m| m.constraint.as_str())
        .collect();
    assert_eq!(constraints, ["legal_bases", "require_case", "params.year"]);
    assert_eq!(
        closest.missing[2].message,
        "parameter \"year\" = 2010 must be in range [2015, 2030]"
    );
    let text = e.to_string();
    assert!(
        text.starts_with("decision: denied (legal-basis-not-allowed)\n"),
        "{text}"
    );
    assert!(
        text.contains("rule:     \"welfare-income\" (income.toml:1)"),
        "{text}"
    );
    assert!(
        text.contains("  missing require_case: a case reference is required"),
        "{text}"
    );

    // A consumer with no grant: the closest is the grant for the same dataset and purpose.
    let e = explain(&s, &req("tax-office", "income", "statistics").request());
    assert_eq!(e.decision.reason.code, ReasonCode::NoGrant);
    let closest = e.closest.expect("a closest grant");
    assert_eq!(closest.rule.id, "stats-income");
    assert_eq!(closest.missing.len(), 1);
    assert_eq!(
        closest.missing[0].message,
        "the grant is for \"statistics-office\", not \"tax-office\""
    );

    // Allowed: nothing is missing, and the explanation lists the fields and masks.
    let e = explain(
        &s,
        &req("statistics-office", "income", "statistics").request(),
    );
    assert!(e.decision.allowed);
    assert_eq!(e.closest, None);
    assert!(
        e.to_string()
            .contains("fields:   year, gross_income (round:1000)"),
        "{e}"
    );
}

#[test]
fn explain_a_deny_rule() {
    let deny = "[[deny]]\nid = \"freeze\"\ndataset = \"income\"\npurposes = [\"statistics\"]\n";
    let s = set(&[("income.toml", INCOME), ("zz.toml", deny)]);
    let e = explain(
        &s,
        &req("statistics-office", "income", "statistics").request(),
    );
    assert_eq!(e.decision.reason.code, ReasonCode::DeniedByRule);
    let closest = e.closest.expect("closest");
    assert_eq!(closest.rule.id, "stats-income");
    assert_eq!(closest.missing.len(), 1);
    assert_eq!(closest.missing[0].constraint, "deny");
}

#[test]
fn diff_reports_access_gained_lost_and_remasked() {
    let old = set(&[("income.toml", INCOME)]);
    let new_text = INCOME
        .replace(
            "fields = [\"year\", \"gross_income\"]\nparams",
            "fields = [\"year\", \"gross_income\", \"tax_paid\"]\nparams",
        )
        .replace("round:1000", "round:100")
        .replace(
            "purposes = [\"statistics\"]",
            "purposes = [\"statistics\", \"fraud-investigation\"]",
        );
    let new = set(&[("income.toml", &new_text), ("freeze.toml", "[[deny]]\nid = \"f\"\nconsumer = \"statistics-office\"\npurposes = [\"fraud-investigation\"]\n")]);
    let lines: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "+ social-welfare income benefit-eligibility tax_paid",
            "~ statistics-office income statistics gross_income (round:1000 -> round:100)",
        ]
    );
    let back = diff(&new, &old);
    assert_eq!(back[0].change, ChangeKind::Lost);
    assert_eq!(
        back[0].to_string(),
        "- social-welfare income benefit-eligibility tax_paid"
    );
    assert!(diff(&old, &old).is_empty());

    let changes = file_changes(&old, &new);
    assert_eq!(changes.added, ["freeze.toml"]);
    assert_eq!(changes.modified, ["income.toml"]);
    assert!(changes.removed.is_empty());
    assert!(file_changes(&old, &old).is_empty());
}

#[test]
fn diff_expands_groups() {
    let groups = "[[group]]\nid = \"agencies\"\nmembers = [\"a\", \"b\"]\n";
    let grant = |consumer: &str| {
        format!("[[grant]]\nid = \"g\"\nconsumer = \"{consumer}\"\ndataset = \"d\"\npurposes = [\"statistics\"]\nfields = [\"x\"]\n")
    };
    let old = set(&[("groups.toml", groups), ("g.toml", &grant("a"))]);
    let new = set(&[
        ("groups.toml", groups),
        ("g.toml", &grant("group:agencies")),
    ]);
    let lines: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
    assert_eq!(lines, ["+ b d statistics x"]);
}
