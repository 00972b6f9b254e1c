//! The Prometheus alert rules in docs/OPERATIONS.md ("Alert rules for Prometheus") are valid rule
//! files for `promtool check rules`, and name only metrics that Causeway registers.

use std::collections::BTreeSet;

use causeway_tests::{promtool, repo};

/// The YAML block that follows the heading `### Alert rules for Prometheus`.
fn rules_block() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/OPERATIONS.md")).unwrap();
    let section = doc
        .split_once("### Alert rules for Prometheus")
        .expect("docs/OPERATIONS.md has the section \"Alert rules for Prometheus\"")
        .1;
    let block = section
        .split_once("```yaml\n")
        .expect("the section holds a ```yaml block")
        .1;
    block
        .split_once("\n```")
        .expect("the yaml block is closed")
        .0
        .to_owned()
}

#[test]
fn the_documented_alert_rules_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("causeway.rules.yml");
    std::fs::write(&file, rules_block()).unwrap();
    let out = std::process::Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Every string literal `"causeway_..."` in the gateway's sources.
fn registered_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![repo().join("gateway/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("\"causeway_").skip(1) {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if piece[name.len()..].starts_with('"') {
                        names.insert(format!("causeway_{name}"));
                    }
                }
            }
        }
    }
    names
}

#[test]
fn the_alert_rules_name_only_metrics_causeway_registers() {
    let registered = registered_metric_names();
    assert!(
        registered.contains("causeway_exchanges_total"),
        "{registered:?}"
    );
    let rules = rules_block();
    let mut unknown = Vec::new();
    for piece in rules.split("causeway_").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let name = format!("causeway_{name}");
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        if !registered.contains(base) && !name.is_empty() {
            unknown.push(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "the alert rules name metrics Causeway does not register: {unknown:?}"
    );
}
