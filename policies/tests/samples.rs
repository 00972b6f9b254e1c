//! The demo federation's sample policies load and decide as issue 2 describes.

mod common;

use std::path::Path;

use causeway_policy::{samples, PolicySet, ReasonCode};
use common::{field_names, req};
use serde_json::json;

/// The sample policy files of a department as `causeway demo` lays them out: everything under
/// samples/<dept>/ except datasets.toml (which belongs beside the gateway config) goes into a
/// policies/ directory.
fn laid_out(dept: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(dept);
    let tmp = tempfile::tempdir().expect("tempdir");
    let policies = tmp.path().join(dept).join("policies");
    std::fs::create_dir_all(&policies).expect("mkdir");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&src).expect("sample dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") && name != "datasets.toml" {
            std::fs::copy(entry.path(), policies.join(&name)).expect("copy");
            names.push(name);
        }
    }
    (tmp, policies, names)
}

fn sample(dept: &str) -> PolicySet {
    let (_tmp, dir, _) = laid_out(dept);
    let from_disk = PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{dept}: {e}"));
    let embedded =
        PolicySet::from_sources(&samples::sources(dept)).unwrap_or_else(|e| panic!("{dept}: {e}"));
    assert_eq!(
        from_disk.hash(),
        embedded.hash(),
        "{dept}: embedded samples differ from samples/{dept}"
    );
    from_disk
}

#[test]
fn every_sample_directory_is_embedded_and_loads() {
    for dept in samples::DEPARTMENTS {
        let (_tmp, _, on_disk) = laid_out(dept);
        for name in &on_disk {
            assert!(
                samples::files(dept).iter().any(|(n, _)| n == name),
                "samples/{dept}/{name} is not embedded in src/samples.rs"
            );
        }
        assert_eq!(
            samples::files(dept).len(),
            on_disk.len(),
            "{dept}: embedded file that is not on disk"
        );
        let set = sample(dept);
        let ids: Vec<&str> = set.purposes().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "benefit-eligibility",
                "tax-assessment",
                "fraud-investigation",
                "statistics"
            ]
        );
    }
    assert!(samples::files("nobody").is_empty());
}

#[test]
fn civil_registry_residents() {
    let s = sample("civil-registry");
    let d = req("social-welfare", "residents", "benefit-eligibility")
        .param("national_id", json!("D000001"))
        .decide(&s);
    assert!(d.allowed, "{d:?}");
    assert_eq!(field_names(&d), ["name", "birth_date", "address"]);
    let d = req("tax-office", "residents", "tax-assessment")
        .param("national_id", json!("D000001"))
        .decide(&s);
    assert!(d.allowed, "{d:?}");
    assert_eq!(field_names(&d), ["name", "address"]);

    assert_eq!(
        req("tax-office", "residents", "benefit-eligibility")
            .decide(&s)
            .reason
            .code,
        ReasonCode::PurposeNotAllowed
    );
    assert_eq!(
        req("social-welfare", "residents", "statistics")
            .decide(&s)
            .reason
            .code,
        ReasonCode::PurposeNotAllowed
    );
    assert_eq!(
        req("social-welfare", "residents", "marketing")
            .decide(&s)
            .reason
            .code,
        ReasonCode::UnknownPurpose
    );
    assert_eq!(
        req("social-welfare", "income", "benefit-eligibility")
            .decide(&s)
            .reason
            .code,
        ReasonCode::NoGrant
    );
    assert_eq!(
        req("oversight", "residents", "statistics")
            .decide(&s)
            .reason
            .code,
        ReasonCode::NoGrant
    );
}

#[test]
fn tax_office_income() {
    let s = sample("tax-office");
    let d = req("social-welfare", "income", "benefit-eligibility")
        .param("national_id", json!("D000001"))
        .param("year", json!(2024))
        .decide(&s);
    assert!(d.allowed, "{d:?}");
    assert_eq!(
        field_names(&d),
        ["national_id", "year", "gross_income", "tax_paid"]
    );
    assert_eq!(
        req("civil-registry", "income", "benefit-eligibility")
            .decide(&s)
            .reason
            .code,
        ReasonCode::NoGrant
    );
    assert_eq!(
        req("social-welfare", "income", "tax-assessment")
            .decide(&s)
            .reason
            .code,
        ReasonCode::PurposeNotAllowed
    );
}

#[test]
fn social_welfare_shares_nothing() {
    let s = sample("social-welfare");
    for consumer in ["civil-registry", "tax-office"] {
        let d = req(consumer, "benefits", "benefit-eligibility")
            .param("national_id", json!("D000001"))
            .decide(&s);
        assert_eq!(d.reason.code, ReasonCode::NoGrant);
    }
}

#[test]
fn samples_use_masks_rate_limits_an_expired_grant_and_a_deny_rule() {
    use causeway_policy::{Mask, RateLimit};
    let cr = sample("civil-registry");
    let d = req("social-welfare", "residents", "benefit-eligibility")
        .param("national_id", json!("D000042"))
        .decide(&cr);
    assert_eq!(
        d.rate_limit,
        Some(RateLimit {
            per_minute: Some(600),
            per_day: Some(50_000)
        })
    );
    let d = req("social-welfare", "residents", "benefit-eligibility")
        .param("national_id", json!("D009999"))
        .decide(&cr);
    assert_eq!(
        (d.allowed, d.reason.code),
        (false, ReasonCode::DeniedByRule)
    );
    let d = req("tax-office", "residents", "fraud-investigation")
        .basis("tax-fraud-act:s9")
        .case("C-1")
        .param("national_id", json!("D000042"))
        .decide(&cr);
    assert_eq!(d.reason.code, ReasonCode::Expired);

    let tax = sample("tax-office");
    let d = req("social-welfare", "income", "benefit-eligibility").decide(&tax);
    assert_eq!(
        d.field("tax_paid").and_then(|f| f.mask),
        Some(Mask::Round(100))
    );
    assert_eq!(d.field("gross_income").and_then(|f| f.mask), None);
}

#[test]
fn the_examples_in_docs_policy_md_load() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/POLICY.md"))
            .expect("docs/POLICY.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or(""))
        .collect();
    assert!(blocks.len() >= 3, "purposes, groups and agreement examples");
    let files = vec![
        ("purposes.toml".to_string(), blocks[0].to_string()),
        ("groups.toml".to_string(), blocks[1].to_string()),
        ("agreement.toml".to_string(), blocks[2].to_string()),
    ];
    let set =
        PolicySet::from_sources(&files).unwrap_or_else(|e| panic!("docs/POLICY.md examples: {e}"));
    assert_eq!(set.grants().len(), 1);
    assert_eq!(set.denies().len(), 1);
}
