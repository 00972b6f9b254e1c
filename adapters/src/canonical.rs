//! Canonical forms of parameter values: what a string parameter's `normalize` list does to a value
//! before anything else reads it (docs/DATASETS.md, "Canonical values").
//!
//! A database compares keys by its own rules: MariaDB's default collations ignore case, accents and
//! trailing spaces, so `alice`, `ALICE`, `Alice ` and `Álice` all find the row keyed `Alice`. The
//! gateway decides, queries and tags on one value; a dataset declares how a value is brought to
//! that form, and its `pattern` is then matched against the result, which keeps out what the
//! normalization does not cover (accents, other scripts).

use std::borrow::Cow;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

/// One step of a parameter's normalization, as written in `normalize = [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NormalizeStep {
    /// Unicode Normalization Form C: one encoding for each character (`A` + combining acute and
    /// the precomposed `Á` become the same).
    Nfc,
    /// Remove leading and trailing whitespace (Unicode `White_Space`).
    Trim,
    /// Lowercase (Rust's `str::to_lowercase`, the Unicode default lowercase mapping).
    Casefold,
}

impl NormalizeStep {
    /// The name used in datasets files.
    pub fn as_str(self) -> &'static str {
        match self {
            NormalizeStep::Nfc => "nfc",
            NormalizeStep::Trim => "trim",
            NormalizeStep::Casefold => "casefold",
        }
    }
}

/// The normalization of a string parameter: any subset of [`NormalizeStep`], always applied in the
/// same order, NFC, then trim, then case folding, whatever order the file lists them in.
///
/// NFC comes first so that the later steps see each character in one encoding; trimming before
/// case folding changes nothing (no whitespace has case) but keeps the copy short. Lowercasing
/// an NFC string can in rare cases yield one that is not NFC (a few characters lowercase to a
/// letter and a combining mark), so when both are declared NFC is applied again after folding,
/// which makes [`Normalization::canonical`] idempotent: a canonical value is its own canonical form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Normalization {
    nfc: bool,
    trim: bool,
    casefold: bool,
}

impl Normalization {
    /// No normalization: values are compared as sent.
    pub const NONE: Normalization = Normalization {
        nfc: false,
        trim: false,
        casefold: false,
    };

    /// The normalization made of these steps (repetitions are harmless).
    pub fn new(steps: impl IntoIterator<Item = NormalizeStep>) -> Normalization {
        let mut n = Normalization::NONE;
        for step in steps {
            match step {
                NormalizeStep::Nfc => n.nfc = true,
                NormalizeStep::Trim => n.trim = true,
                NormalizeStep::Casefold => n.casefold = true,
            }
        }
        n
    }

    /// True when values are left as sent.
    pub fn is_none(&self) -> bool {
        *self == Normalization::NONE
    }

    /// The steps, in the order they are applied.
    pub fn steps(&self) -> impl Iterator<Item = NormalizeStep> + '_ {
        [
            (self.nfc, NormalizeStep::Nfc),
            (self.trim, NormalizeStep::Trim),
            (self.casefold, NormalizeStep::Casefold),
        ]
        .into_iter()
        .filter_map(|(on, step)| on.then_some(step))
    }

    /// The canonical form of `value`. Borrows when `value` is already canonical (the usual case on
    /// the exchange path), so only a value that changes is copied.
    pub fn canonical<'a>(&self, value: &'a str) -> Cow<'a, str> {
        let mut value = Cow::Borrowed(value);
        if self.nfc {
            value = nfc(value);
        }
        if self.trim {
            value = match value {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
                Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
            };
        }
        if self.casefold && value.chars().any(changes_when_lowercased) {
            value = Cow::Owned(value.to_lowercase());
            if self.nfc {
                value = nfc(value);
            }
        }
        value
    }
}

impl std::fmt::Display for Normalization {
    /// `nfc, trim, casefold` (the steps in order), or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        for (i, step) in self.steps().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(step.as_str())?;
        }
        Ok(())
    }
}

fn nfc(value: Cow<'_, str>) -> Cow<'_, str> {
    if unicode_normalization::is_nfc(&value) {
        value
    } else {
        Cow::Owned(value.nfc().collect())
    }
}

fn changes_when_lowercased(c: char) -> bool {
    let mut lower = c.to_lowercase();
    !(lower.next() == Some(c) && lower.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Normalization = Normalization {
        nfc: true,
        trim: true,
        casefold: true,
    };

    #[test]
    fn variants_of_one_name_have_one_canonical_form() {
        for variant in [
            "alice",
            "ALICE",
            "Alice ",
            " \u{a0}aLiCe\t",
            "Alice\u{2003}",
        ] {
            assert_eq!(ALL.canonical(variant), "alice", "{variant:?}");
        }
        // Accents are kept (a pattern keeps them out): both encodings of Á become one.
        assert_eq!(ALL.canonical("A\u{301}lice"), "\u{e1}lice");
        assert_eq!(ALL.canonical("\u{c1}lice"), "\u{e1}lice");
        assert_eq!(
            Normalization::new([NormalizeStep::Trim]).canonical(" D000042 "),
            "D000042"
        );
        assert_eq!(Normalization::NONE.canonical(" Alice "), " Alice ");
    }

    #[test]
    fn a_canonical_value_is_borrowed() {
        assert!(matches!(ALL.canonical("alice"), Cow::Borrowed("alice")));
        assert!(matches!(ALL.canonical("bob "), Cow::Borrowed("bob")));
        assert!(matches!(ALL.canonical("Bob"), Cow::Owned(_)));
    }

    #[test]
    fn canonical_is_idempotent_for_every_character() {
        // Each character alone, and after a letter and before a combining mark, where NFC composes.
        for c in (0..=0x10ffff_u32).filter_map(char::from_u32) {
            for s in [c.to_string(), format!("A{c}\u{301}")] {
                let once = ALL.canonical(&s).into_owned();
                assert_eq!(ALL.canonical(&once), once, "{:?}", s);
            }
        }
    }

    #[test]
    fn steps_apply_in_a_fixed_order_and_display_in_it() {
        let n = Normalization::new([NormalizeStep::Casefold, NormalizeStep::Nfc]);
        assert_eq!(n.to_string(), "nfc, casefold");
        assert_eq!(Normalization::NONE.to_string(), "none");
        assert_eq!(ALL.to_string(), "nfc, trim, casefold");
    }
}
