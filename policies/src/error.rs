//! Load errors: what is wrong with a policy directory, and exactly where.
//!
//! Every problem found while reading, parsing, validating or compiling policy files becomes a
//! [`Diagnostic`] that names the file, the 1-based line and column (from TOML spans) and says what
//! to do. [`LoadError`] carries one or more of them; its `Display` prints one diagnostic per line in
//! the form `policies/tax.toml:12:5: unknown field "feilds" (did you mean "fields"?)`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A 1-based line and column inside a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in characters (not bytes).
    pub col: u32,
}

impl Position {
    /// The position of byte offset `offset` in `text` (clamped to the end of the text).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }
}

/// Line starts of one text, for turning many byte offsets into positions without rescanning.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// Same as [`Position::of_offset`], in O(log lines + line length).
    pub(crate) fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let col = text[start..offset].chars().count() + 1;
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }
}

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file, as given to the loader (for `load_dir`, the directory joined with the file name).
    pub file: PathBuf,
    /// Where in the file, when the problem has a place (a missing file has none).
    pub position: Option<Position>,
    /// What is wrong and, where possible, what to do (`unknown field "feilds" (did you mean "fields"?)`).
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                p.line,
                p.col,
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Why a policy set could not be loaded. A set that fails to load never replaces a running one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The directory or a file in it could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The directory or file that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// One or more files are invalid. `Display` prints every diagnostic, one per line, first one first.
    #[error("{}", DisplayList(diagnostics))]
    Invalid {
        /// Every problem found, in file order then position order. Never empty.
        diagnostics: Vec<Diagnostic>,
    },
}

impl LoadError {
    /// All diagnostics carried by this error (an I/O error has none).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Invalid { diagnostics } => diagnostics,
            LoadError::Io { .. } => &[],
        }
    }
}

struct DisplayList<'a>(&'a [Diagnostic]);

impl fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Position::of_offset(text, 0), Position { line: 1, col: 1 });
        assert_eq!(Position::of_offset(text, 6), Position { line: 2, col: 1 });
        // Byte 9 is the space after "bé" (é is two bytes): column 3, not 4.
        assert_eq!(Position::of_offset(text, 9), Position { line: 2, col: 3 });
        // Byte 8 is inside é: clamped back to its start.
        assert_eq!(Position::of_offset(text, 8), Position { line: 2, col: 2 });
        assert_eq!(Position::of_offset(text, 1000).line, 3);
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                index.position(text, offset),
                Position::of_offset(text, offset),
                "offset {offset}"
            );
        }
    }
}
