//! Reading the TOML files an operator writes: every error names the file, line and column.

use std::path::Path;

/// Turn a toml error into `file:line:col: message`.
pub fn toml_error(path: &Path, text: &str, e: toml::de::Error) -> anyhow::Error {
    let position = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before
                .rfind('\n')
                .map_or(before.len(), |nl| before.len() - nl - 1)
                + 1;
            format!(":{line}:{col}")
        })
        .unwrap_or_default();
    anyhow::anyhow!("{}{position}: {}", path.display(), e.message())
}
