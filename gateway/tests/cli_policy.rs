//! `causeway policy check|test|explain|diff`, run as the real binary against copies of the sample
//! policy directories.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary copy of a demo department's sample files: its policy and test files
/// (`policies/samples/<dept>`) in `policies/`, its datasets file (`gateway/samples/<dept>`) beside
/// it (as `causeway demo` lays them out).
struct Sample {
    root: tempfile::TempDir,
}

impl Sample {
    fn copy(dept: &str) -> Sample {
        let root = tempfile::tempdir().expect("tempdir");
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::create_dir(root.path().join("policies")).expect("mkdir");
        let policies = samples.join("policies/samples").join(dept);
        for entry in std::fs::read_dir(&policies).expect("samples exist") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().expect("file name").to_owned();
            std::fs::copy(&path, root.path().join("policies").join(&name)).expect("copy");
        }
        let datasets = samples
            .join("gateway/samples")
            .join(dept)
            .join("datasets.toml");
        std::fs::copy(datasets, root.path().join("datasets.toml")).expect("copy");
        Sample { root }
    }

    fn policies(&self) -> PathBuf {
        self.root.path().join("policies")
    }

    fn datasets(&self) -> PathBuf {
        self.root.path().join("datasets.toml")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.policies().join(name), text).expect("write");
    }

    fn edit(&self, name: &str, from: &str, to: &str) {
        let path = self.policies().join(name);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{name} does not contain {from:?}");
        std::fs::write(path, text.replacen(from, to, 1)).expect("write");
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn causeway(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn check_accepts_the_samples_against_their_datasets_files() {
    for dept in ["civil-registry", "tax-office"] {
        let s = Sample::copy(dept);
        let run = causeway(&[
            "policy",
            "check",
            p(&s.policies()),
            "--datasets",
            p(&s.datasets()),
        ]);
        assert!(run.ok, "{dept}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("checked against the datasets file"),
            "{}",
            run.stdout
        );
        assert!(!run.stdout.contains("error:"), "{}", run.stdout);
    }
}

#[test]
fn check_fails_with_the_position_and_a_suggestion() {
    let s = Sample::copy("civil-registry");
    s.edit(
        "tax-residents.toml",
        "fields = [\"name\", \"address\"]",
        "feilds = [\"name\", \"address\"]",
    );
    let run = causeway(&["policy", "check", p(&s.policies())]);
    assert!(!run.ok, "a broken set must exit non-zero: {}", run.stdout);
    assert!(
        run.stdout.contains(
            "tax-residents.toml:15:1: unknown field \"feilds\" (did you mean \"fields\"?)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn check_with_datasets_rejects_a_field_the_dataset_lacks() {
    let s = Sample::copy("civil-registry");
    s.edit(
        "tax-residents.toml",
        "fields = [\"name\", \"address\"]",
        "fields = [\"name\", \"adress\"]",
    );
    // Without the datasets file the policy language cannot know the field is wrong.
    assert!(causeway(&["policy", "check", p(&s.policies())]).ok);
    let run = causeway(&[
        "policy",
        "check",
        p(&s.policies()),
        "--datasets",
        p(&s.datasets()),
    ]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stdout.contains("adress"), "{}", run.stdout);
    assert!(
        run.stdout.contains("tax-residents.toml:15:"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_lists_warnings_and_still_succeeds() {
    let s = Sample::copy("civil-registry");
    // A second grant for the same (consumer, dataset, purpose) that releases less: it never decides.
    s.write(
        "tax-residents-copy.toml",
        "[[grant]]\nid = \"tax-residents-names\"\nconsumer = \"tax-office\"\ndataset = \"residents\"\n\
         purposes = [\"tax-assessment\"]\nfields = [\"name\"]\n",
    );
    let run = causeway(&["policy", "check", p(&s.policies())]);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("warning: "), "{}", run.stdout);
    assert!(run.stdout.contains("tax-residents-names"), "{}", run.stdout);
}

#[test]
fn test_runs_the_sample_cases_and_fails_on_a_wrong_expectation() {
    let s = Sample::copy("tax-office");
    let run = causeway(&["policy", "test", p(&s.policies())]);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(" 0 failed"), "{}", run.stdout);
    assert!(run.stdout.contains("ok    "), "{}", run.stdout);

    // The policy changes under the test file: the test must catch it.
    s.edit("welfare-income.toml", "\"round:100\"", "\"redact\"");
    let run = causeway(&["policy", "test", p(&s.policies())]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stdout.contains("FAIL  "), "{}", run.stdout);
}

#[test]
fn explain_shows_the_deciding_rule_and_for_a_denial_what_was_missing() {
    let s = Sample::copy("civil-registry");
    let dir = s.policies();
    let allowed = causeway(&[
        "policy",
        "explain",
        p(&dir),
        "--consumer",
        "social-welfare",
        "--dataset",
        "residents",
        "--purpose",
        "benefit-eligibility",
        "--param",
        "national_id=D000042",
    ]);
    assert!(allowed.ok, "{}", allowed.stderr);
    assert!(
        allowed.stdout.contains("decision: allowed (granted)"),
        "{}",
        allowed.stdout
    );
    assert!(
        allowed
            .stdout
            .contains("\"welfare-residents\" (welfare-residents.toml:9)"),
        "{}",
        allowed.stdout
    );

    let denied = causeway(&[
        "policy",
        "explain",
        p(&dir),
        "--consumer",
        "tax-office",
        "--dataset",
        "residents",
        "--purpose",
        "fraud-investigation",
        "--legal-basis",
        "tax-fraud-act:s9",
        "--param",
        "national_id=D000042",
        "--at",
        "2024-06-01T09:00:00Z",
    ]);
    assert!(denied.ok, "{}", denied.stderr);
    assert!(
        denied.stdout.contains("decision: denied (case-required)"),
        "{}",
        denied.stdout
    );
    assert!(
        denied
            .stdout
            .contains("closest grant: \"tax-fraud-pilot-2024\" (tax-residents.toml:20)"),
        "{}",
        denied.stdout
    );
    assert!(
        denied.stdout.contains("missing require_case"),
        "{}",
        denied.stdout
    );
    // Only the case was missing: the legal basis was given.
    assert!(
        !denied.stdout.contains("missing legal_bases"),
        "{}",
        denied.stdout
    );

    let json = causeway(&[
        "policy",
        "explain",
        p(&dir),
        "--consumer",
        "oversight",
        "--dataset",
        "residents",
        "--purpose",
        "statistics",
        "--output",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON output");
    assert_eq!(value["decision"]["reason"]["code"], "no-grant");
}

#[test]
fn explain_rejects_a_malformed_param() {
    let s = Sample::copy("civil-registry");
    let run = causeway(&[
        "policy",
        "explain",
        p(&s.policies()),
        "--consumer",
        "social-welfare",
        "--dataset",
        "residents",
        "--purpose",
        "benefit-eligibility",
        "--param",
        "national_id",
    ]);
    assert!(!run.ok);
    assert!(run.stderr.contains("NAME=VALUE"), "{}", run.stderr);
}

#[test]
fn diff_lists_access_gained_and_lost_as_tuples() {
    let old = Sample::copy("tax-office");
    let new = Sample::copy("tax-office");
    new.edit(
        "welfare-income.toml",
        "fields = [\"national_id\", \"year\", \"gross_income\", \"tax_paid\"]",
        "fields = [\"national_id\", \"year\", \"gross_income\"]",
    );
    new.edit(
        "welfare-income.toml",
        "masks = { tax_paid = \"round:100\" }\n",
        "",
    );
    new.write(
        "statistics-income.toml",
        "[[grant]]\nid = \"statistics-income\"\nconsumer = \"statistics-office\"\ndataset = \"income\"\n\
         purposes = [\"statistics\"]\nfields = [\"year\", \"gross_income\"]\nmasks = { gross_income = \"round:1000\" }\n",
    );
    let run = causeway(&["policy", "diff", p(&old.policies()), p(&new.policies())]);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.contains(&"- social-welfare income benefit-eligibility tax_paid (round:100)"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"+ statistics-office income statistics year"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"+ statistics-office income statistics gross_income (round:1000)"),
        "{}",
        run.stdout
    );
    // Unchanged access is not listed.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("social-welfare income benefit-eligibility year")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "files: added statistics-income.toml; removed -; modified welfare-income.toml"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn every_policy_command_has_an_example_in_its_help() {
    for command in ["check", "test", "explain", "diff"] {
        let run = causeway(&["policy", command, "--help"]);
        assert!(run.ok, "{command}: {}", run.stderr);
        assert!(run.stdout.contains("Example"), "{command}: {}", run.stdout);
        assert!(
            run.stdout.contains(&format!("causeway policy {command}")),
            "{command}: {}",
            run.stdout
        );
    }
}
