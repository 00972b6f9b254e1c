//! A small, safe glob matcher for parameter `pattern` constraints.
//!
//! Syntax: `*` any run of characters (possibly empty), `?` exactly one character, `[...]` one
//! character from a set (`[0-9A-F]`, negated with `[!...]`), `\` escapes the next character.
//! Everything else matches itself. The whole value must match. Matching is O(len(pattern) x
//! len(value)) in the worst case (single-star backtracking), so a hostile pattern or value cannot
//! make a decision slow.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyOne => true,
            Token::AnyRun => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
            }
        }
    }
}

/// A compiled glob pattern. Serializes as its source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Glob::new(&s)
    }
}

impl From<Glob> for String {
    fn from(g: Glob) -> String {
        g.source
    }
}

impl Glob {
    /// Compile a pattern; the error says what is malformed.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                }
                '?' => tokens.push(Token::AnyOne),
                '\\' => match chars.next() {
                    Some(e) => tokens.push(Token::Literal(e)),
                    None => return Err("pattern ends with a lone \\".to_string()),
                },
                '[' => {
                    let negated = chars.peek() == Some(&'!');
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        if c == ']' && !ranges.is_empty() {
                            closed = true;
                            break;
                        }
                        let lo = if c == '\\' {
                            chars.next().ok_or("pattern ends with a lone \\")?
                        } else {
                            c
                        };
                        if chars.peek() == Some(&'-') {
                            let mut look = chars.clone();
                            look.next();
                            match look.peek() {
                                Some(&hi) if hi != ']' => {
                                    chars.next();
                                    chars.next();
                                    if hi < lo {
                                        return Err(format!(
                                            "character range {lo}-{hi} is reversed"
                                        ));
                                    }
                                    ranges.push((lo, hi));
                                    continue;
                                }
                                _ => {}
                            }
                        }
                        ranges.push((lo, lo));
                    }
                    if !closed {
                        return Err("unclosed [ in pattern".to_string());
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Literal(c)),
            }
        }
        Ok(Glob {
            source: pattern.to_string(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        let t = &self.tokens;
        // `vi` is a byte offset into `value`, always on a character boundary.
        let (mut ti, mut vi) = (0usize, 0usize);
        let next_char = |at: usize| value[at..].chars().next();
        // The last `*` seen and the byte offset it is currently tried at.
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = next_char(vi) {
            if ti < t.len() && t[ti] == Token::AnyRun {
                star = Some((ti, vi));
                ti += 1;
            } else if ti < t.len() && t[ti].matches(c) {
                ti += 1;
                vi += c.len_utf8();
            } else if let Some((st, sv)) = star {
                // Let the star swallow one more character and retry after it.
                let swallowed = next_char(sv).map_or(1, char::len_utf8);
                ti = st + 1;
                vi = sv + swallowed;
                star = Some((st, vi));
            } else {
                return false;
            }
        }
        while ti < t.len() && t[ti] == Token::AnyRun {
            ti += 1;
        }
        ti == t.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, v: &str) -> bool {
        Glob::new(p).expect("valid pattern").is_match(v)
    }

    #[test]
    fn basics() {
        assert!(m("D??????", "D000001"));
        assert!(!m("D??????", "D0000012"));
        assert!(m("D[0-9][0-9]*", "D12abc"));
        assert!(!m("D[0-9][0-9]*", "Dx2abc"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("[!a-c]x", "dx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m(r"a\*", "a*"));
        assert!(!m(r"a\*", "ab"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("*ö?", "ÅäöÜ"));
        assert!(m("?ä*", "Åä"));
        assert!(!m("*ö", "ÅäöÜ"));
    }

    #[test]
    fn malformed() {
        assert!(Glob::new("[abc").is_err());
        assert!(Glob::new("abc\\").is_err());
        assert!(Glob::new("[z-a]").is_err());
    }

    #[test]
    fn pathological_is_fast() {
        let p = "*a*a*a*a*a*a*a*a*b";
        let v = "a".repeat(5000);
        assert!(!m(p, &v));
    }
}
