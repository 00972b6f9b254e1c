//! Text from outside, made safe to show to a person.
//!
//! Ledger entries and replicated logs hold text that other departments and their applications
//! wrote: a case reference, a purpose, a peer's whole log. Printed raw, a control character can
//! clear an overseer's terminal or retitle its window (`ESC [ 2 J`, `ESC ] 0 ; ... BEL`), and a
//! bidirectional control can make a line read other than it is (`U+202E`). A spreadsheet evaluates
//! a CSV cell that starts with `=`, `+`, `-` or `@` as a formula. This module owns the one
//! definition of a forbidden character, which the client API refuses on the way in
//! ([`crate::callers`]), and the escapes every table, page, JSON line and CSV export applies on the
//! way out.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` may not appear in any text a caller sends: control characters (C0, DEL, C1) and
/// the Unicode bidirectional controls, which can make a log line or a table read other than it is.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` for a terminal or a page: each forbidden character becomes a visible escape in Rust's
/// notation (`\u{1b}`, `\u{202e}`); everything else is unchanged. A backslash is not escaped, so
/// text that spells `\u{1b}` itself reads the same as an escaped ESC, which is harmless.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_forbidden_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        push_visible(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_visible(out: &mut String, c: char) {
    if is_forbidden_char(c) {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    } else {
        out.push(c);
    }
}

/// `s` for HTML text and attribute values: `& < > " '` as entities, and forbidden characters as
/// visible escapes (see [`visible`]).
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => push_visible(&mut out, c),
        }
    }
    out
}

/// Serialized JSON for a terminal: every forbidden character except the line feed becomes a
/// `\uXXXX` escape. `serde_json` already escapes C0 controls inside strings but writes DEL, C1
/// and bidirectional controls raw; outside strings only whitespace can occur, of which pretty
/// printing uses line feeds and spaces. The result decodes to the same value.
pub fn json(s: &str) -> Cow<'_, str> {
    let escape = |c: char| c != '\n' && is_forbidden_char(c);
    if !s.chars().any(escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if escape(c) {
            // Every forbidden character is in the Basic Multilingual Plane: one `\uXXXX` each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One CSV cell (RFC 4180) of text from outside, neutralized the OWASP way: a cell that starts
/// with `=`, `+`, `-`, `@`, a tab or a carriage return, which a spreadsheet would take for a
/// formula, gets a leading `'`. Forbidden characters other than tab, carriage return and line feed
/// (which a quoted cell carries) become visible escapes, since an export printed to a terminal is
/// shown there. The cell is quoted when it holds `,`, `"` or a line break. Numeric columns (a row
/// count) are written as numbers and do not go through here.
pub fn csv_cell(s: &str) -> String {
    let mut text = String::with_capacity(s.len() + 1);
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        text.push('\'');
    }
    for c in s.chars() {
        if matches!(c, '\t' | '\r' | '\n') {
            text.push(c);
        } else {
            push_visible(&mut text, c);
        }
    }
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_forbidden() {
        for c in [
            '\0', '\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{061C}', '\u{200E}',
            '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}',
        ] {
            assert!(is_forbidden_char(c), "{c:?}");
        }
        for c in [
            'a', ' ', 'é', 'Ж', '/', '\\', '\u{00A0}', '\u{200D}', '\u{2070}',
        ] {
            assert!(!is_forbidden_char(c), "{c:?}");
        }
    }

    #[test]
    fn terminal_escapes_and_bidi_overrides_become_visible() {
        assert_eq!(
            visible("a\u{1b}[2J\u{1b}]0;title\u{7}b\u{9b}1m\u{202E}cba\u{7f}"),
            r"a\u{1b}[2J\u{1b}]0;title\u{7}b\u{9b}1m\u{202e}cba\u{7f}"
        );
        assert_eq!(visible("line\nnext\ttab\r"), r"line\u{a}next\u{9}tab\u{d}");
        assert!(matches!(visible("plain é"), Cow::Borrowed("plain é")));
    }

    #[test]
    fn html_escapes_markup_and_shows_controls() {
        assert_eq!(
            html("<a href='x'>\"&\u{1b}[2J\u{202E}</a>"),
            r"&lt;a href=&#39;x&#39;&gt;&quot;&amp;\u{1b}[2J\u{202e}&lt;/a&gt;"
        );
    }

    #[test]
    fn json_stays_valid_and_decodes_to_the_same_value() {
        let value =
            serde_json::json!({"a": "x\u{1b}\u{7}\u{7f}\u{9b}\u{202E}\u{2066}y\n", "b": [1, 2]});
        for text in [
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string_pretty(&value).unwrap(),
        ] {
            let shown = json(&text);
            assert!(
                !shown.contains(|c: char| c != '\n' && is_forbidden_char(c)),
                "{shown:?}"
            );
            assert!(shown.contains(r"\u007f\u009b\u202e\u2066y"), "{shown}");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&shown).unwrap(),
                value
            );
        }
        assert!(matches!(json("{\"a\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_evaluate_start_with_a_quote() {
        for (text, cell) in [
            (
                r#"=HYPERLINK("http://x","y")"#,
                r#""'=HYPERLINK(""http://x"",""y"")""#,
            ),
            ("+cmd", "'+cmd"),
            ("-2+3", "'-2+3"),
            ("@SUM(1)", "'@SUM(1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("\u{1b}[2J", r"\u{1b}[2J"),
            ("\u{202E}gnp.exe", r"\u{202e}gnp.exe"),
            ("a=1,b", "\"a=1,b\""),
            ("two\nlines", "\"two\nlines\""),
            ("civil-registry", "civil-registry"),
            ("2026-01-31T14:00:00Z", "2026-01-31T14:00:00Z"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(text), cell, "{text:?}");
        }
    }
}
