//! `run_tests`: *.test.toml cases next to the policies.

mod common;

use std::path::Path;

use causeway_policy::{run_test_sources, run_tests, samples};
use common::set;

const GRANT: &str = "[[grant]]\nid = \"g\"\nconsumer = \"c\"\ndataset = \"d\"\npurposes = [\"statistics\"]\nfields = [\"a\", \"b\"]\nmasks = { b = \"hash\" }\nmax_rows = 5\n";

#[test]
fn sample_test_files_pass() {
    for (dept, expected_cases) in [
        ("civil-registry", 9),
        ("tax-office", 3),
        ("social-welfare", 2),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (name, content) in samples::files(dept) {
            std::fs::write(tmp.path().join(name), content).expect("write");
        }
        let report = run_tests(tmp.path()).unwrap_or_else(|e| panic!("{dept}: {e}"));
        assert_eq!(report.errors, [], "{dept}");
        let failed: Vec<_> = report.cases.iter().filter(|c| !c.passed()).collect();
        assert!(failed.is_empty(), "{dept}: {failed:#?}");
        assert_eq!(report.cases.len(), expected_cases, "{dept}");
        assert!(report.is_ok());
    }
}

#[test]
fn failures_say_what_differed() {
    let s = set(&[("a.toml", GRANT)]);
    let tests = r#"
at = 2025-01-01T00:00:00Z

[[test]]
name = "passes"
consumer = "c"
dataset = "d"
purpose = "statistics"
expect = { allowed = true, reason = "granted", rule = "g", fields = ["a", "b"], masks = { a = "", b = "hash" }, max_rows = 5 }

[[test]]
name = "fails everywhere"
consumer = "c"
dataset = "d"
purpose = "statistics"
expect = { allowed = false, reason = "no-grant", rule = "", fields = ["b", "a"], masks = { a = "redact", b = "", z = "hash" }, max_rows = 6 }

[[test]]
name = "denied as expected"
consumer = "x"
dataset = "d"
purpose = "statistics"
expect = { allowed = false }
"#;
    let report = run_test_sources(&s, &[("a.test.toml".into(), tests.into())]);
    assert_eq!(report.errors, []);
    assert_eq!((report.passed(), report.failed()), (2, 1));
    assert!(!report.is_ok());
    let failed = &report.cases[1];
    assert_eq!(
        (failed.name.as_str(), failed.line),
        ("fails everywhere", 11)
    );
    assert_eq!(
        failed.failures,
        [
            "expected denied, got allowed (granted: granted by \"g\" (a.toml:1))",
            "expected reason no-grant, got allowed (granted: granted by \"g\" (a.toml:1))",
            "expected no rule, got rule \"g\"",
            "expected fields [b, a], got [a, b]",
            "expected mask redact on \"a\", got no mask",
            "expected no mask on \"b\", got mask hash",
            "expected field \"z\" with mask hash, but it is not released",
            "expected max_rows 6, got 5",
        ]
    );
    assert_eq!(report.policy_hash, s.hash());
}

#[test]
fn broken_test_files_are_errors_with_positions() {
    let s = set(&[("a.toml", GRANT)]);
    let case = |extra: &str| {
        format!("[[test]]\nname = \"n\"\nconsumer = \"c\"\ndataset = \"d\"\npurpose = \"statistics\"\n{extra}\n")
    };
    let run = |text: String| {
        let r = run_test_sources(&s, &[("t.test.toml".into(), text)]);
        r.errors.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(
        run(case("expect = { allowed = true }")),
        ["t.test.toml:2:8: no time for this case: set `at` at the top of the file or in the case"]
    );
    assert_eq!(
        run(format!(
            "at = 2025-01-01\n{}",
            case("expect = { allowed = true, reason = \"grantd\" }")
        )),
        ["t.test.toml:7:37: unknown reason code \"grantd\" (did you mean \"granted\"?)"]
    );
    assert_eq!(
        run(format!(
            "at = 2025-01-01\n{}",
            case("expect = { alowed = true }")
        )),
        ["t.test.toml:7:12: unknown field \"alowed\" (did you mean \"allowed\"?)"]
    );
    assert_eq!(
        run(format!(
            "at = 2025-01-01\n{}",
            case("expect = { allowed = true, masks = { a = \"hsh\" } }")
        )),
        ["t.test.toml:7:42: unknown mask \"hsh\" (did you mean \"hash\"?)"]
    );
}

#[test]
fn run_tests_needs_a_loadable_policy_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(run_tests(tmp.path()).is_err(), "no purposes.toml");
    assert!(run_tests(&Path::new("/nonexistent").join("x")).is_err());
}
