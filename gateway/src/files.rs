//! Reading the TOML files an operator writes: every error names the file, line and column.

use std::path::Path;

/// Turn a toml error into `file:line:col: message`.
pub fn toml_error(path: &Path, text: &str, e: toml::de::Error) -> anyhow::Error {
    let position = e
        .span()
        .map(|span| {
            let (line, col) = line_and_column(text, span.start);
            format!(":{line}:{col}")
        })
        .unwrap_or_default();
    anyhow::anyhow!("{}{position}: {}", path.display(), e.message())
}

/// `file:line:col` of byte `offset` in `text`, for errors found after parsing (a duplicate id, say).
pub fn position(path: &Path, text: &str, offset: usize) -> String {
    let (line, col) = line_and_column(text, offset);
    format!("{}:{line}:{col}", path.display())
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}
