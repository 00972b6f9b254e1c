//! Case references and legal-basis codes: the only words of a request, besides ids, that enter the
//! immutable ledgers of both parties and every oversight replica. Free text there ("Applicant
//! D000042, HIV+ status review") would be personal data that nobody can ever erase, so a case is a
//! short reference and a legal basis is a code, and a request that carries anything else is
//! refused before anything is notarized (docs/POLICY.md, "Case references and legal-basis codes").
//!
//! Both sides use the same definitions: the consumer's gateway checks a request against the
//! default case pattern and the code form before it signs an envelope; the provider's gateway
//! checks the envelope against the pattern its `purposes.toml` declares for the purpose
//! ([`crate::PolicySet::check_references`]) before it notarizes anything. A purpose's
//! `case_pattern` only narrows the default: a case matches both, so no pattern can let free text
//! (a space, a comma, more than [`REFERENCE_MAX`] characters) through.

use regex::{Regex, RegexBuilder};

/// The longest case reference or legal-basis code, in characters.
pub const REFERENCE_MAX: usize = 64;

/// The case pattern of a purpose that declares none; every case matches it, whatever its purpose
/// declares. The empty case (no case reference) matches.
pub const CASE_PATTERN: &str = "^[A-Za-z0-9._:/-]{0,64}$";

/// The form of a legal-basis code: what a grant's `legal_bases` lists and a request cites.
pub const CODE_PATTERN: &str = "^[A-Za-z0-9._:/-]{1,64}$";

/// The most memory one compiled case pattern may take: far more than a reference format needs,
/// far less than a pattern written to exhaust the gateway.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

fn is_reference_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
}

/// Whether `case` matches [`CASE_PATTERN`]: at most 64 ASCII letters, digits and `. _ : / -`
/// (the empty case, "no case reference", included).
pub fn is_case_reference(case: &str) -> bool {
    case.len() <= REFERENCE_MAX && case.chars().all(is_reference_char)
}

/// Whether `text` matches [`CODE_PATTERN`]: a non-empty [case reference](is_case_reference).
pub fn is_code(text: &str) -> bool {
    !text.is_empty() && is_case_reference(text)
}

/// A purpose's declared `case_pattern`, compiled. Matching is linear in the case's length (the
/// `regex` crate never backtracks).
#[derive(Debug, Clone)]
pub struct CasePattern {
    source: String,
    regex: Regex,
}

impl CasePattern {
    /// Compile `source`, which must be anchored (`^...$`) so that it reads as a whole-reference
    /// match; it is compiled as `^(?:source)$` all the same, so an alternation cannot unanchor it.
    /// The error says what to write instead.
    pub fn new(source: &str) -> Result<CasePattern, String> {
        if !(source.starts_with('^') && source.ends_with('$')) {
            return Err(format!(
                "case_pattern must be anchored, ^...$, to match the whole case reference \
                 (for example \"^FR-[0-9]{{4}}-[0-9]{{6}}$\"); the default is \"{CASE_PATTERN}\""
            ));
        }
        let regex = RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                let why = e.to_string();
                let why = why
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned();
                format!("case_pattern is not a regular expression: {why}")
            })?;
        Ok(CasePattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `case`, a non-empty case reference, matches both the default pattern and this one.
    pub fn matches(&self, case: &str) -> bool {
        is_case_reference(case) && self.regex.is_match(case)
    }
}

/// Why a request's case or legal basis cannot enter a ledger. Its message says what to send
/// instead and never repeats what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotAReference {
    /// The case is not a short reference matching the pattern of its purpose.
    #[error("the case is not a case reference: send a short reference to the case file matching {pattern}, or none, never a description of the person or the matter (case and legal basis are kept in both ledgers for ever)")]
    Case {
        /// The pattern the case must match: [`CASE_PATTERN`] or the purpose's own.
        pattern: String,
    },
    /// The legal basis is neither empty nor a code.
    #[error("the legal basis is not a code: send the code of a legal basis the provider's grant lists (matching {CODE_PATTERN}), never the text of the law or a sentence (case and legal basis are kept in both ledgers for ever)")]
    LegalBasis,
}

impl NotAReference {
    /// The stable reason code: `case-not-a-reference` or `legal-basis-not-a-code`.
    pub fn code(&self) -> &'static str {
        match self {
            NotAReference::Case { .. } => "case-not-a-reference",
            NotAReference::LegalBasis => "legal-basis-not-a-code",
        }
    }
}

/// Check a case and legal basis against the default pattern and `purpose_pattern`, if the purpose
/// declares one. The empty case and the empty legal basis pass: whether a grant requires them is
/// its own condition (`require_case`, `legal_bases`).
pub fn check(
    case: &str,
    legal_basis: &str,
    purpose_pattern: Option<&CasePattern>,
) -> Result<(), NotAReference> {
    let case_fits = case.is_empty()
        || match purpose_pattern {
            Some(pattern) => pattern.matches(case),
            None => is_case_reference(case),
        };
    if !case_fits {
        return Err(NotAReference::Case {
            pattern: purpose_pattern
                .map_or(CASE_PATTERN, CasePattern::as_str)
                .to_owned(),
        });
    }
    if !(legal_basis.is_empty() || is_code(legal_basis)) {
        return Err(NotAReference::LegalBasis);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_patterns_are_what_the_functions_check() {
        let case = Regex::new(CASE_PATTERN).unwrap();
        let code = Regex::new(CODE_PATTERN).unwrap();
        for text in [
            "",
            "SW-2025-0001",
            "a/b:c.d_e-f",
            "Applicant D000042 ..., HIV+ status review",
            "x y",
            "caf\u{e9}",
            "a,b",
            &"a".repeat(64),
            &"a".repeat(65),
            "line\nbreak",
        ] {
            assert_eq!(is_case_reference(text), case.is_match(text), "{text:?}");
            assert_eq!(is_code(text), code.is_match(text), "{text:?}");
        }
    }

    #[test]
    fn free_text_is_refused_and_references_pass() {
        assert!(check("SW-2025-0001", "social-welfare-act:s12", None).is_ok());
        assert!(check("", "", None).is_ok());
        assert_eq!(
            check("Applicant D000042 ..., HIV+ status review", "", None)
                .unwrap_err()
                .code(),
            "case-not-a-reference"
        );
        assert_eq!(
            check("", "Social Welfare Act s.12", None)
                .unwrap_err()
                .code(),
            "legal-basis-not-a-code"
        );
    }

    #[test]
    fn a_purpose_pattern_narrows_the_default_and_never_widens_it() {
        let fraud = CasePattern::new("^FR-[0-9]{4}-[0-9]{6}$").unwrap();
        assert!(check("FR-2025-000123", "", Some(&fraud)).is_ok());
        assert_eq!(
            check("SW-2025-0001", "", Some(&fraud)),
            Err(NotAReference::Case {
                pattern: "^FR-[0-9]{4}-[0-9]{6}$".into()
            })
        );
        // A pattern that would admit anything still admits only references.
        let anything = CasePattern::new("^.*$").unwrap();
        assert!(anything.matches("SW-1"));
        assert!(!anything.matches("HIV+ status review"));
        assert!(!anything.matches(&"a".repeat(65)));
        // Alternation cannot unanchor it.
        let either = CasePattern::new("^A$|^B$").unwrap();
        assert!(either.matches("A") && !either.matches("AB") && !either.matches("xB"));
    }

    #[test]
    fn messages_never_repeat_the_request() {
        let secret = "Applicant D000042 HIV+";
        for e in [
            check(secret, "", None).unwrap_err(),
            check("", secret, None).unwrap_err(),
        ] {
            assert!(!e.to_string().contains("D000042"), "{e}");
        }
    }

    #[test]
    fn patterns_must_be_anchored_and_valid() {
        assert!(CasePattern::new("FR-[0-9]+")
            .unwrap_err()
            .contains("anchored"));
        let bad = CasePattern::new("^FR-[0-9+$").unwrap_err();
        assert!(
            bad.starts_with("case_pattern is not a regular expression: "),
            "{bad}"
        );
        assert!(!bad.contains('\n'), "{bad}");
    }
}
