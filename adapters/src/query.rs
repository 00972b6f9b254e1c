//! Named placeholders (`:name`) in an admin's SQL, rewritten to each driver's positional form.
//!
//! The scanner skips string literals, quoted identifiers, comments and PostgreSQL `::` casts and
//! dollar-quoted strings, so a `:word` inside any of those is left alone. Values are never spliced
//! into SQL text: the rewritten query only holds positional markers, and values are bound by the driver.

/// Which SQL dialect's quoting rules apply while scanning, and which positional marker to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?1`, `?2`, ... (a parameter used twice binds once).
    Sqlite,
    /// `$1`, `$2`, ... (a parameter used twice binds once).
    Postgres,
    /// `?` per occurrence; backslash escapes inside string literals.
    Mysql,
}

/// A query split into SQL text and the parameter names it uses, in order of appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedQuery {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Sql(String),
    Param(String),
}

/// The query in a driver's positional form, with the parameter name for each position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PositionalQuery {
    /// SQL text with positional markers only.
    pub sql: String,
    /// `order[i]` is the parameter bound at position `i` (0-based).
    pub order: Vec<String>,
}

impl NamedQuery {
    /// Split `sql` into text and `:name` placeholders under `dialect`'s quoting rules.
    pub fn parse(sql: &str, dialect: Dialect) -> NamedQuery {
        let chars: Vec<char> = sql.chars().collect();
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match c {
                '\'' | '"' | '`' => {
                    let end = skip_quoted(&chars, i, c, dialect == Dialect::Mysql);
                    text.extend(&chars[i..end]);
                    i = end;
                }
                '-' if next == Some('-') => {
                    let end = chars[i..]
                        .iter()
                        .position(|&c| c == '\n')
                        .map_or(chars.len(), |p| i + p);
                    text.extend(&chars[i..end]);
                    i = end;
                }
                '#' if dialect == Dialect::Mysql => {
                    let end = chars[i..]
                        .iter()
                        .position(|&c| c == '\n')
                        .map_or(chars.len(), |p| i + p);
                    text.extend(&chars[i..end]);
                    i = end;
                }
                '/' if next == Some('*') => {
                    let end = find(&chars, i + 2, &['*', '/']).map_or(chars.len(), |p| p + 2);
                    text.extend(&chars[i..end]);
                    i = end;
                }
                '$' if dialect == Dialect::Postgres => {
                    // Dollar quoting: $tag$ ... $tag$ (tag may be empty).
                    let tag_end = chars[i + 1..]
                        .iter()
                        .position(|&c| !(c.is_alphanumeric() || c == '_'))
                        .map(|p| i + 1 + p);
                    match tag_end {
                        // `$1` is a positional parameter, not a tag: tags never start with a digit.
                        Some(t)
                            if chars[t] == '$'
                                && !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) =>
                        {
                            let tag: Vec<char> = chars[i..=t].to_vec();
                            let end =
                                find(&chars, t + 1, &tag).map_or(chars.len(), |p| p + tag.len());
                            text.extend(&chars[i..end]);
                            i = end;
                        }
                        _ => {
                            text.push(c);
                            i += 1;
                        }
                    }
                }
                ':' if next == Some(':') => {
                    text.push_str("::");
                    i += 2;
                }
                ':' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_') => {
                    let start = i + 1;
                    let end = chars[start..]
                        .iter()
                        .position(|&c| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(chars.len(), |p| start + p);
                    if !text.is_empty() {
                        pieces.push(Piece::Sql(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Param(chars[start..end].iter().collect()));
                    i = end;
                }
                _ => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Sql(text));
        }
        NamedQuery { pieces }
    }

    /// Distinct parameter names in order of first appearance.
    pub fn params(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Param(name) = p {
                if !seen.contains(&name.as_str()) {
                    seen.push(name);
                }
            }
        }
        seen
    }

    /// Rewrite to the dialect's positional markers.
    pub fn positional(&self, dialect: Dialect) -> PositionalQuery {
        let mut sql = String::new();
        let mut order: Vec<String> = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Sql(s) => sql.push_str(s),
                Piece::Param(name) => match dialect {
                    Dialect::Mysql => {
                        order.push(name.clone());
                        sql.push('?');
                    }
                    Dialect::Sqlite | Dialect::Postgres => {
                        let index = match order.iter().position(|n| n == name) {
                            Some(i) => i + 1,
                            None => {
                                order.push(name.clone());
                                order.len()
                            }
                        };
                        sql.push(if dialect == Dialect::Sqlite { '?' } else { '$' });
                        sql.push_str(&index.to_string());
                    }
                },
            }
        }
        PositionalQuery { sql, order }
    }
}

/// Index just past the closing quote of the literal that opens at `start`.
fn skip_quoted(chars: &[char], start: usize, quote: char, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if backslash_escapes && c == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2; // doubled quote is an escaped quote
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// Position of the first occurrence of `needle` in `chars` at or after `from`.
fn find(chars: &[char], from: usize, needle: &[char]) -> Option<usize> {
    if from > chars.len() || needle.is_empty() {
        return None;
    }
    chars[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// An http dataset's `url`: fixed scheme and authority, `{name}` placeholders in the path and query.
///
/// Values are percent-encoded (everything but RFC 3986 unreserved characters), so a value can never
/// add a path segment, a query parameter or a fragment, and placeholders are refused in the
/// authority so that a value can never choose the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlTemplate {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    pieces: Vec<Piece>,
}

impl UrlTemplate {
    /// Parse and check a template; the error says what to fix.
    pub fn parse(url: &str) -> Result<UrlTemplate, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("url must start with http:// or https://".into());
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return Err("url has no host".into());
        }
        if authority.contains(['{', '}']) {
            return Err("placeholders may not appear in the url's host or port (put them in the path or query)".into());
        }
        if authority.contains('@') {
            return Err(
                "url must not carry credentials (use bearer_token_env or bearer_token_file)".into(),
            );
        }
        let default_port = if https { 443 } else { 80 };
        let bad_port = |p: &str| format!("url port \"{p}\" is not a number from 1 to 65535");
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((h, after)) = bracketed.split_once(']') else {
                return Err("url has a '[' without a matching ']'".into());
            };
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad_port(p))?,
            };
            (h.to_owned(), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad_port(p))?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err("url has no host or a zero port".into());
        }
        if path.contains(['#', ' ']) || path.chars().any(char::is_control) {
            return Err("url must not contain spaces, control characters or a #fragment".into());
        }
        let path = if path.is_empty() { "/" } else { path };
        let mut pieces = Vec::new();
        let mut rest = path;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err("url has a '}' without a matching '{'".into());
            }
            let Some(close) = rest[open..].find('}') else {
                return Err("url has a '{' without a matching '}'".into());
            };
            let name = &rest[open + 1..open + close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("url placeholder {{{name}}} must name a parameter"));
            }
            if open > 0 {
                pieces.push(Piece::Sql(rest[..open].to_owned()));
            }
            pieces.push(Piece::Param(name.to_owned()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Sql(rest.to_owned()));
        }
        Ok(UrlTemplate {
            https,
            host,
            port,
            authority: authority.to_owned(),
            pieces,
        })
    }

    /// Distinct parameter names used.
    pub fn params(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Param(name) = p {
                if !seen.contains(&name.as_str()) {
                    seen.push(name);
                }
            }
        }
        seen
    }

    /// True for `https://`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host to connect to (no brackets around IPv6 addresses).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]` as written, for the `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path and query with each placeholder replaced by its percent-encoded value
    /// (`None`, for a missing optional parameter, renders empty).
    pub fn render(&self, value: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Sql(s) => out.push_str(s),
                Piece::Param(name) => {
                    if let Some(v) = value(name) {
                        percent_encode_into(&v, &mut out);
                    }
                }
            }
        }
        out
    }
}

/// Percent-encode every byte that is not an RFC 3986 unreserved character.
pub(crate) fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positional(sql: &str, d: Dialect) -> (String, Vec<String>) {
        let q = NamedQuery::parse(sql, d).positional(d);
        (q.sql, q.order)
    }

    #[test]
    fn rewrites_placeholders_per_dialect() {
        let sql = "SELECT a FROM t WHERE x = :id AND y > :year OR x = :id";
        assert_eq!(
            positional(sql, Dialect::Sqlite),
            (
                "SELECT a FROM t WHERE x = ?1 AND y > ?2 OR x = ?1".into(),
                vec!["id".into(), "year".into()]
            )
        );
        assert_eq!(
            positional(sql, Dialect::Postgres).0,
            "SELECT a FROM t WHERE x = $1 AND y > $2 OR x = $1"
        );
        let (my, order) = positional(sql, Dialect::Mysql);
        assert_eq!(my, "SELECT a FROM t WHERE x = ? AND y > ? OR x = ?");
        assert_eq!(order, vec!["id", "year", "id"]);
    }

    #[test]
    fn leaves_literals_comments_and_casts_alone() {
        let sql = "SELECT ':no', \":nope\", x::text -- :c\n /* :d */ FROM t WHERE a = :yes";
        let q = NamedQuery::parse(sql, Dialect::Postgres);
        assert_eq!(q.params(), vec!["yes"]);
        assert_eq!(
            q.positional(Dialect::Postgres).sql,
            "SELECT ':no', \":nope\", x::text -- :c\n /* :d */ FROM t WHERE a = $1"
        );
        let q = NamedQuery::parse(
            "SELECT $$ :no $$, $t$ :no $t$ WHERE a = :yes",
            Dialect::Postgres,
        );
        assert_eq!(q.params(), vec!["yes"]);
        let q = NamedQuery::parse(
            "SELECT 'it''s :no', 'a\\' :no' WHERE a = :yes # :no",
            Dialect::Mysql,
        );
        assert_eq!(q.params(), vec!["yes"]);
        // `$1` written by hand is not a dollar quote.
        let q = NamedQuery::parse("SELECT $1, :yes", Dialect::Postgres);
        assert_eq!(q.params(), vec!["yes"]);
    }

    #[test]
    fn url_templates_encode_values_and_keep_the_host_fixed() {
        let t =
            UrlTemplate::parse("https://registry.internal:8443/people/{id}?year={year}&id={id}")
                .expect("valid");
        assert!(t.is_https());
        assert_eq!(
            (t.host(), t.port(), t.authority()),
            ("registry.internal", 8443, "registry.internal:8443")
        );
        assert_eq!(t.params(), vec!["id", "year"]);
        let path = t.render(|n| {
            Some(if n == "id" {
                "a/b?c=d&e#f %é".into()
            } else {
                "2024".into()
            })
        });
        assert_eq!(path, "/people/a%2Fb%3Fc%3Dd%26e%23f%20%25%C3%A9?year=2024&id=a%2Fb%3Fc%3Dd%26e%23f%20%25%C3%A9");
        let t = UrlTemplate::parse("http://[::1]:8080/x/{a}").expect("ipv6");
        assert_eq!((t.host(), t.port()), ("::1", 8080));
        assert_eq!(
            UrlTemplate::parse("http://127.0.0.1")
                .expect("bare")
                .render(|_| None),
            "/"
        );
        for bad in [
            "ftp://x/",
            "http://{host}/x",
            "http://u:p@x/",
            "http://x/{a",
            "http://x/a}",
            "http://x/{}",
            "http://x/#f",
            "http://x:99999/",
        ] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
