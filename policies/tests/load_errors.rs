//! Load errors: exact file:line:col positions, suggestions, and nothing silently ignored.

mod common;

use std::fs;

use causeway_policy::{LoadError, PolicySet};
use common::{load_err, PURPOSES};

const GRANT_HEAD: &str =
    "[[grant]]\nid = \"g\"\nconsumer = \"social-welfare\"\ndataset = \"residents\"\n";

#[test]
fn unknown_field_via_load_dir_names_path_line_col_and_suggestion() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("policies");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("purposes.toml"), PURPOSES).expect("write");
    // `feilds` sits on line 12, indented by four spaces.
    let tax = "# Tax office agreement\n\n[agreement]\ntitle = \"Income\"\n\n[[grant]]\nid = \"welfare-income\"\nconsumer = \"social-welfare\"\ndataset = \"income\"\npurposes = [\"benefit-eligibility\"]\n\n    feilds = [\"year\"]\n";
    fs::write(dir.join("tax.toml"), tax).expect("write");
    let err = PolicySet::load_dir(&dir).expect_err("must not load");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:12:5: unknown field \"feilds\" (did you mean \"fields\"?)",
            dir.join("tax.toml").display()
        )
    );
    let d = &err.diagnostics()[0];
    assert_eq!(
        (d.position.map(|p| p.line), d.position.map(|p| p.col)),
        (Some(12), Some(5))
    );
}

#[test]
fn unknown_field_from_sources_uses_the_bare_name() {
    let text =
        format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\"]\nmax_row = 3\n");
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:7:1: unknown field \"max_row\" (did you mean \"max_rows\"?)"
    );
}

#[test]
fn unknown_field_without_close_match_lists_allowed_keys() {
    let text = "[agreement]\ntitle = \"t\"\ncolour = \"red\"\n";
    let err = load_err(&[("a.toml", text)]);
    assert!(
        err.starts_with("a.toml:3:1: unknown field \"colour\" (allowed: title, reference"),
        "{err}"
    );
}

#[test]
fn unknown_top_level_table() {
    assert_eq!(
        load_err(&[("a.toml", "[[grnt]]\nid = \"g\"\n")]),
        "a.toml:1:3: unknown field \"grnt\" (did you mean \"grant\"?)"
    );
}

#[test]
fn unknown_purpose_points_at_the_list_element() {
    let text = format!(
        "{GRANT_HEAD}purposes = [\"benefit-eligibility\", \"statistcs\"]\nfields = [\"name\"]\n"
    );
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:5:36: unknown purpose \"statistcs\" (did you mean \"statistics\"?)"
    );
    let text = format!("{GRANT_HEAD}purposes = [\"marketing\"]\nfields = [\"name\"]\n");
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:5:13: unknown purpose \"marketing\" (declare it in purposes.toml first)"
    );
}

#[test]
fn deny_rule_with_unknown_purpose() {
    let text = "[[deny]]\nid = \"d\"\npurposes = [\"fraud-investigations\"]\n";
    assert_eq!(
        load_err(&[("a.toml", text)]),
        "a.toml:3:13: unknown purpose \"fraud-investigations\" (did you mean \"fraud-investigation\"?)"
    );
}

#[test]
fn bad_toml_syntax() {
    let err = load_err(&[("a.toml", "[[grant]]\nid = \"g\nconsumer = \"x\"\n")]);
    assert!(err.starts_with("a.toml:2:8: "), "{err}");
    let err = load_err(&[("a.toml", "[[grant]\n")]);
    assert!(err.starts_with("a.toml:1:"), "{err}");
    // toml 0.8 says "invalid table header", 0.9 "unclosed array table, expected `]`".
    assert!(
        err.contains("invalid") || err.contains("expected `]`"),
        "{err}"
    );
}

#[test]
fn wrong_type_and_missing_field() {
    let text = format!("{GRANT_HEAD}purposes = \"statistics\"\nfields = [\"name\"]\n");
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:5:12: invalid type: string \"statistics\", expected a sequence"
    );
    let text = format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\"]\n\n[[grant]]\nid = \"h\"\nconsumer = \"x\"\npurposes = [\"statistics\"]\nfields = [\"a\"]\n");
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:8:1: missing field \"dataset\""
    );
}

#[test]
fn missing_purposes_file() {
    let err =
        PolicySet::from_sources(&[("a.toml".into(), String::new())]).expect_err("must not load");
    assert!(
        err.to_string()
            .starts_with("purposes.toml: missing: every policy directory declares its purposes"),
        "{err}"
    );
}

#[test]
fn purposes_file_rejects_unknown_keys_and_duplicates() {
    let p = "[[purpose]]\nid = \"statistics\"\ndescription = \"s\"\n\n[[purpose]]\nid = \"statistics\"\ndescription = \"again\"\n";
    assert_eq!(
        load_err(&[("purposes.toml", p)]),
        "purposes.toml:6:6: purpose \"statistics\" is declared twice"
    );
    let p = "[[purpose]]\nid = \"statistics\"\ndescripton = \"s\"\n";
    assert_eq!(
        load_err(&[("purposes.toml", p)]),
        "purposes.toml:3:1: unknown field \"descripton\" (did you mean \"description\"?)"
    );
}

#[test]
fn groups_must_be_declared_and_prefixed() {
    let groups =
        "[[group]]\nid = \"benefit-agencies\"\nmembers = [\"social-welfare\", \"housing\"]\n";
    let grant = |consumer: &str| {
        format!("[[grant]]\nid = \"g\"\nconsumer = \"{consumer}\"\ndataset = \"residents\"\npurposes = [\"statistics\"]\nfields = [\"name\"]\n")
    };
    assert_eq!(
        load_err(&[
            ("groups.toml", groups),
            ("a.toml", &grant("group:benefit-agency"))
        ]),
        "a.toml:3:12: unknown group \"benefit-agency\" (did you mean \"group:benefit-agencies\"?)"
    );
    assert_eq!(
        load_err(&[
            ("groups.toml", groups),
            ("a.toml", &grant("benefit-agencies"))
        ]),
        "a.toml:3:12: \"benefit-agencies\" is a group: write \"group:benefit-agencies\""
    );
    assert_eq!(
        load_err(&[("a.toml", &grant("group:nobody"))]),
        "a.toml:3:12: unknown group \"nobody\" (declare it in groups.toml)"
    );
}

#[test]
fn masks_must_refer_to_released_fields_and_exist() {
    let text = format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\", \"address\"]\nmasks = {{ adress = \"redact\" }}\n");
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:7:11: mask for \"adress\", which is not a released field (did you mean \"address\"?)"
    );
    let text = format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\"]\nmasks = {{ name = \"last\" }}\n");
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:7:18: mask \"last\" needs a character count, as in \"last:4\""
    );
    let text = format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\"]\nmasks = {{ name = \"hsh\" }}\n");
    assert_eq!(
        load_err(&[("a.toml", &text)]),
        "a.toml:7:18: unknown mask \"hsh\" (did you mean \"hash\"?)"
    );
}

#[test]
fn constraints_that_say_nothing_or_are_malformed() {
    let base = format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\"]\n");
    let err = load_err(&[(
        "a.toml",
        &format!("{base}params = {{ national_id = {{}} }}\n"),
    )]);
    assert_eq!(err, "a.toml:7:12: constraint on parameter \"national_id\" has no operator (use exact, one_of, pattern or range)");
    let err = load_err(&[(
        "a.toml",
        &format!("{base}params = {{ national_id = {{ patern = \"D*\" }} }}\n"),
    )]);
    assert_eq!(
        err,
        "a.toml:7:28: unknown field \"patern\" (did you mean \"pattern\"?)"
    );
    let err = load_err(&[(
        "a.toml",
        &format!("{base}params = {{ national_id = {{ pattern = \"D[0-9\" }} }}\n"),
    )]);
    assert_eq!(err, "a.toml:7:38: pattern: unclosed [ in pattern");
    let err = load_err(&[(
        "a.toml",
        &format!("{base}params = {{ year = {{ range = [2024, 2015] }} }}\n"),
    )]);
    assert_eq!(
        err,
        "a.toml:7:29: range: the lower bound is greater than the upper bound"
    );
    let err = load_err(&[(
        "a.toml",
        &format!("{base}params = {{ year = {{ range = [2015] }} }}\n"),
    )]);
    assert!(
        err.starts_with("a.toml:7:29: range: write [low, high]"),
        "{err}"
    );
    let err = load_err(&[(
        "a.toml",
        &format!("{base}params = {{ year = {{ one_of = [] }} }}\n"),
    )]);
    assert_eq!(
        err,
        "a.toml:7:30: one_of is empty: nothing could ever match"
    );
    let err = load_err(&[("a.toml", &format!("{base}rate_limit = {{}}\n"))]);
    assert_eq!(
        err,
        "a.toml:7:14: rate_limit needs per_minute, per_day or both"
    );
    let err = load_err(&[("a.toml", &format!("{base}max_rows = 0\n"))]);
    assert_eq!(err, "a.toml:7:12: max_rows must be at least 1");
    let err = load_err(&[(
        "a.toml",
        &format!("{base}row_filter = [{{ column = \"age\", op = \"=>\", value = 18 }}]\n"),
    )]);
    assert_eq!(
        err,
        "a.toml:7:38: unknown operator \"=>\" (did you mean \">=\"?)"
    );
}

#[test]
fn validity_windows_must_be_well_formed() {
    let base = format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\"]\n");
    let err = load_err(&[(
        "a.toml",
        &format!("{base}valid_from = 2025-01-01T00:00:00\n"),
    )]);
    assert!(
        err.starts_with("a.toml:7:14: valid_from: \"2025-01-01T00:00:00\" needs a UTC offset"),
        "{err}"
    );
    let err = load_err(&[(
        "a.toml",
        &format!("{base}valid_from = 2025-01-01\nvalid_until = 2024-01-01\n"),
    )]);
    assert_eq!(
        err,
        "a.toml:8:15: valid_until must be later than valid_from (valid_until is exclusive)"
    );
    let err = load_err(&[("a.toml", &format!("{base}valid_until = \"next year\"\n"))]);
    assert!(
        err.starts_with("a.toml:7:15: valid_until: \"next year\" is not an RFC 3339"),
        "{err}"
    );
}

#[test]
fn duplicate_rule_ids_across_files() {
    let g = format!("{GRANT_HEAD}purposes = [\"statistics\"]\nfields = [\"name\"]\n");
    assert_eq!(
        load_err(&[("a.toml", &g), ("b.toml", &g)]),
        "b.toml:2:6: rule id \"g\" is already used at a.toml:1"
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let bad_a = "[[grant]]\nid = \"x\"\nconsumer = \"c\"\ndataset = \"d\"\npurposes = [\"nope\"]\nfields = [\"f\", \"f\"]\n";
    let bad_b = "[[deny]]\nid = \"y\"\nreasn = \"no\"\n";
    let err = load_err(&[("b.toml", bad_b), ("a.toml", bad_a)]);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "a.toml:5:13: unknown purpose \"nope\" (declare it in purposes.toml first)",
            "a.toml:6:16: field \"f\" is listed twice",
            "b.toml:3:1: unknown field \"reasn\" (did you mean \"reason\"?)",
        ]
    );
}

#[test]
fn load_dir_skips_test_files_and_other_files_and_reports_io() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    fs::write(dir.join("purposes.toml"), PURPOSES).expect("write");
    fs::write(dir.join("x.test.toml"), "this is [[ not toml").expect("write");
    fs::write(dir.join("README.md"), "# notes").expect("write");
    fs::create_dir(dir.join("sub.toml")).expect("mkdir");
    let set = PolicySet::load_dir(dir).expect("loads");
    assert!(set.grants().is_empty());
    let same =
        PolicySet::from_sources(&[("purposes.toml".into(), PURPOSES.into())]).expect("loads");
    assert_eq!(set.hash(), same.hash());

    let missing = dir.join("nope");
    match PolicySet::load_dir(&missing) {
        Err(LoadError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}
