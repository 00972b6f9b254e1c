//! Arbitrary bytes as policy files: loading must return a set or an error, never panic, and a set
//! that loads must decide any request without panicking.
#![no_main]

use std::collections::BTreeMap;

use causeway_policy::{check_set, explain, PolicySet, Request};
use libfuzzer_sys::fuzz_target;

const PURPOSES: &str = "[[purpose]]\nid = \"p\"\ndescription = \"d\"\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A `---` line splits the input into an agreement file and a groups file.
    let (first, second) = match text.split_once("\n---\n") {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let mut files = vec![
        ("purposes.toml".to_string(), PURPOSES.to_string()),
        ("a.toml".to_string(), first.to_string()),
    ];
    if let Some(b) = second {
        files.push(("groups.toml".to_string(), b.to_string()));
    }
    let set = match PolicySet::from_sources(&files) {
        Ok(set) => set,
        Err(e) => {
            let _ = e.to_string();
            // Also fuzz purposes.toml itself.
            let _ = PolicySet::from_sources(&[("purposes.toml".to_string(), text.to_string())]);
            return;
        }
    };
    let mut params = BTreeMap::new();
    params.insert(
        "x".to_string(),
        serde_json::Value::String(text.chars().take(32).collect()),
    );
    for g in set.grants() {
        // No application (an older consumer gateway), then the first one the grant lists.
        let listed = g.applications.as_ref().and_then(|apps| apps.first());
        for application in [None, listed.map(String::as_str)] {
            let request = Request {
                consumer: g.consumers.first().map_or("c", String::as_str),
                dataset: &g.dataset,
                purpose: "p",
                legal_basis: "",
                case: "",
                application,
                params: &params,
                at_unix: 0,
            };
            let _ = set.decide(&request);
            let _ = explain(&set, &request);
        }
    }
    let _ = check_set(&set, None);
});
