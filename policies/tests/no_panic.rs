//! Whatever the bytes, loading returns a set or an error and never panics (the in-process cousin
//! of the cargo-fuzz target in policies/fuzz).

use causeway_policy::{check_set, explain, samples, PolicySet, Request};
use proptest::prelude::*;

/// Valid sample files, then mutated: a byte range replaced by arbitrary text.
fn mutated() -> impl Strategy<Value = (usize, usize, usize, String)> {
    (
        0..4usize,
        any::<prop::sample::Index>().prop_map(|i| i.index(usize::MAX)),
        0..40usize,
        "\\PC{0,12}|[\\[\\]=\"{},.\\n a-z0-9_:-]{0,12}",
    )
        .prop_map(|(file, at, len, insert)| (file, at, len, insert))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_samples_never_panic((file, at, len, insert) in mutated()) {
        let mut files = samples::sources("civil-registry");
        let index = file % files.len();
        let text = &mut files[index].1;
        let mut start = at % (text.len() + 1);
        while !text.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) { end -= 1; }
        text.replace_range(start..end, &insert);
        match PolicySet::from_sources(&files) {
            Ok(set) => {
                let params = Default::default();
                for g in set.grants() {
                    let r = Request { consumer: &g.consumers[0], dataset: &g.dataset, purpose: &g.purposes[0], legal_basis: "", case: "", application: Some("app"), params: &params, at_unix: 0 };
                    let _ = set.decide(&r);
                    let _ = explain(&set, &r);
                }
                let _ = check_set(&set, None);
            }
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(!shown.is_empty());
                // Every diagnostic names a file.
                for d in e.diagnostics() {
                    prop_assert!(!d.file.as_os_str().is_empty());
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let files = vec![("purposes.toml".to_string(), text.clone()), ("a.toml".to_string(), text)];
        let _ = PolicySet::from_sources(&files).map(|s| s.hash().to_string());
    }
}
