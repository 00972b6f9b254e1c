//! The crate's layers, checked: every module imports only modules of a lower layer (the order is
//! stated in `src/lib.rs`), and the ledger crate depends on no network, TLS, policy or adapter
//! crate. Reads the sources, so a new `crate::` path that points upwards fails here, in any file,
//! tests included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `causeway` and its layer, lowest first (as in `src/lib.rs`).
const LAYERS: &[(&str, u32)] = &[
    ("files", 1),
    ("identity", 2),
    ("policy_reload", 2),
    ("rate_limits", 2),
    ("text", 2),
    ("directory", 3),
    ("config", 4),
    ("telemetry", 5),
    ("callers", 5),
    ("transport", 6),
    ("exchange", 7),
    ("log_api", 7),
    ("admin", 8),
    ("oversight", 8),
    ("gateway", 9),
    ("layout", 10),
    ("cli", 11),
    ("fuzzing", 11),
];

fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
        .unwrap_or_else(|| panic!("module `{module}` has no layer: add it to LAYERS and lib.rs"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (doc links may name any module).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |nl| &after[nl..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules a source names through `crate::`, including `use crate::{a, b::c}`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let preceded = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if preceded {
            continue; // `causeway_crate::` or the like, not this crate
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        named.insert(ident(group[start..i].trim_start()).to_owned());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        named.insert(ident(group[start..i].trim_start()).to_owned());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            named.insert(ident(rest).to_owned());
        }
    }
    named.retain(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    named
}

#[test]
fn no_module_imports_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        if matches!(module, "lib" | "main") {
            continue;
        }
        let own = layer(module);
        let text = without_comments(&std::fs::read_to_string(file).unwrap());
        for named in crate_paths(&text) {
            if named != module && layer(&named) >= own {
                upward
                    .entry(format!("{} ({module}, layer {own})", relative.display()))
                    .or_default()
                    .insert(format!("{named} (layer {})", layer(&named)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules importing a module of their own layer or above:\n{upward:#?}"
    );
}

#[test]
fn the_checker_sees_grouped_and_plain_paths() {
    let text = without_comments(
        "use crate::{a::B, c, d::{e, f}};\n// crate::commented\nlet x = crate::g::h();\n/* crate::i */",
    );
    let names: Vec<String> = crate_paths(&text).into_iter().collect();
    assert_eq!(names, ["a", "c", "d", "g"]);
}

#[test]
fn the_ledger_crate_knows_no_network_tls_policy_or_adapters() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ledger/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let forbidden = [
        "causeway",
        "causeway-policy",
        "causeway-adapters",
        "hyper",
        "hyper-util",
        "h2",
        "http",
        "rustls",
        "tokio-rustls",
        "quinn",
        "rusqlite",
        "tokio-postgres",
        "mysql_async",
    ];
    for section in ["dependencies", "dev-dependencies"] {
        let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
            continue;
        };
        for name in deps.keys() {
            assert!(
                !forbidden.contains(&name.as_str()),
                "causeway-ledger [{section}] names {name}"
            );
        }
    }
}
