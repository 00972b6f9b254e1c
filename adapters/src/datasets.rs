//! The datasets file: its TOML format, validation with `file:line:col` errors, and the definitions
//! ([`Dataset`], [`ParamDef`], [`FieldDef`]) that the rest of the gateway reads.
//!
//! Parsing is pure (text in, definitions or an error out); opening sources is [`crate::Catalog`]'s job.
//! The format is documented in docs/DATASETS.md.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::canonical::{Normalization, NormalizeStep};
use crate::error::DatasetsError;
use crate::query::{Dialect, NamedQuery, UrlTemplate};

/// Default row limit when a dataset does not set `max_rows`.
pub const DEFAULT_MAX_ROWS: u64 = 1000;
/// Largest `max_rows` a dataset may set.
pub const MAX_MAX_ROWS: u64 = 1_000_000;
/// Default deadline when a dataset does not set `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// Largest `timeout_ms` a dataset may set.
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// Default and largest `max_length` of a string parameter, in characters.
pub const MAX_STRING_PARAM_CHARS: usize = 256;
/// Default connection pool size per dataset.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// Largest connection pool a dataset may ask for.
pub const MAX_POOL_SIZE: usize = 64;

/// Default `max_body_bytes` of an http dataset (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
/// Largest `max_body_bytes` an http dataset may set (64 MiB).
pub const MAX_MAX_BODY_BYTES: u64 = 64 << 20;

/// Classifications a field may carry, least to most protected.
pub const CLASSIFICATIONS: &[&str] = &["public", "internal", "personal", "sensitive"];

/// One dataset as the admin defined it: what it is called, which adapter serves it, its typed
/// parameters and the fields it yields. Connection settings stay inside the crate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dataset {
    /// The name requesters use.
    pub name: String,
    /// A free-text description for admins and `policy explain`, if any.
    pub description: Option<String>,
    /// Which kind of source serves it.
    pub adapter: AdapterKind,
    /// The parameter that identifies the data subject (always a declared, required parameter).
    pub subject_param: String,
    /// The parameters, in declaration order.
    pub params: Vec<ParamDef>,
    /// The fields, in declaration order (the order of [`crate::Rows::fields`]).
    pub fields: Vec<FieldDef>,
    /// The dataset's own row limit; a fetch uses the smaller of this and the caller's.
    pub max_rows: u64,
    /// The dataset's own deadline; a fetch uses the smaller of this and the caller's.
    pub timeout: Duration,
    pub(crate) connection: Connection,
}

impl Dataset {
    /// The parameter of that name, if declared.
    pub fn param(&self, name: &str) -> Option<&ParamDef> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The field of that name, if declared.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The kind of source that serves a dataset (`adapter = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AdapterKind {
    /// A SQLite file, opened read-only.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
    /// A MySQL or MariaDB server.
    Mysql,
    /// An internal REST service answering JSON.
    Http,
}

impl AdapterKind {
    /// The name used in datasets files.
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Sqlite => "sqlite",
            AdapterKind::Postgres => "postgres",
            AdapterKind::Mysql => "mysql",
            AdapterKind::Http => "http",
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ParamDef {
    /// Its name, as used in `:name` placeholders and in requests.
    pub name: String,
    /// Its type and constraints.
    pub ty: ParamType,
    /// If true, the parameter may be missing or `null`, and binds SQL `NULL`.
    pub optional: bool,
    /// A free-text description, if any.
    pub description: Option<String>,
}

/// A parameter's type with its constraints.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ParamType {
    /// A JSON string of at most `max_length` characters and no control characters, brought to its
    /// canonical form by `normalize`, which must then match `pattern` (anchored at both ends) if set.
    String {
        /// Maximum length in characters (at most 256), of the value as sent.
        max_length: usize,
        /// The anchored pattern the canonical value must match, if any.
        pattern: Option<Pattern>,
        /// How a value is brought to its canonical form before the pattern, the policy decision,
        /// the query and the subject tag read it.
        normalize: Normalization,
    },
    /// A JSON integer within `min..=max` (either bound optional).
    Integer {
        /// Inclusive lower bound.
        min: Option<i64>,
        /// Inclusive upper bound.
        max: Option<i64>,
    },
    /// A JSON string `YYYY-MM-DD` naming a real calendar date.
    Date,
    /// A JSON string that is one of `values`.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
}

impl ParamType {
    /// The name used in datasets files.
    pub fn as_str(&self) -> &'static str {
        match self {
            ParamType::String { .. } => "string",
            ParamType::Integer { .. } => "integer",
            ParamType::Date => "date",
            ParamType::Enum { .. } => "enum",
        }
    }
}

/// A string parameter's pattern, always matched against the whole value.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    anchored: regex::Regex,
}

impl Pattern {
    /// Compile `source` (regex syntax), anchored at both ends.
    pub fn new(source: &str) -> Result<Pattern, String> {
        let anchored = regex::Regex::new(&format!("^(?:{source})$")).map_err(|e| match e {
            regex::Error::Syntax(s) => s.lines().last().unwrap_or("invalid").trim().to_owned(),
            other => other.to_string(),
        })?;
        Ok(Pattern {
            source: source.to_owned(),
            anchored,
        })
    }

    /// The pattern as written in the datasets file.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.anchored.is_match(value)
    }
}

/// A declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldDef {
    /// Its name (a result column of the query).
    pub name: String,
    /// The type of its values.
    pub ty: FieldType,
    /// One of [`CLASSIFICATIONS`]: `public`, `internal`, `personal`, `sensitive`.
    pub classification: String,
    /// A free-text description, if any.
    pub description: Option<String>,
}

/// The type of a field's values as they appear in [`crate::Rows`] (any field may also be `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A JSON integer (i64).
    Integer,
    /// A JSON number.
    Float,
    /// A JSON boolean (SQLite: integer 0 or 1).
    Boolean,
    /// A JSON string `YYYY-MM-DD`.
    Date,
    /// A JSON string, RFC 3339 date and time.
    Datetime,
}

impl FieldType {
    /// The name used in datasets files.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
        }
    }
}

/// Adapter-specific connection settings, resolved (paths absolute).
#[derive(Debug, Clone)]
pub(crate) enum Connection {
    Sqlite(SqliteSettings),
    Postgres(ServerSettings),
    Mysql(ServerSettings),
    Http(HttpSettings),
}

/// A secret named in the datasets file: read when a connection is made, never stored in the file,
/// never logged.
#[derive(Clone)]
pub(crate) enum Secret {
    /// An environment variable's value.
    Env(String),
    /// A file's content, without a trailing newline.
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "Secret::Env({name})"),
            Secret::File(path) => write!(f, "Secret::File({})", path.display()),
        }
    }
}

impl Secret {
    /// The secret's value now (so that a rotated file or variable takes effect on the next
    /// connection). The error says where it was looked for, never the value.
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::Env(name) => std::env::var(name).map_err(|_| {
                format!("environment variable {name} is not set or not UTF-8 (set it, or use a *_file key)")
            }),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("cannot read secret file {}: {e} (check the path and its permissions)", path.display())),
        }
    }
}

/// Settings for a PostgreSQL or MySQL server.
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Option<Secret>,
    pub tls: Option<TlsFiles>,
    pub query: NamedQuery,
    pub pool_size: usize,
}

/// Files for TLS to a database or an upstream.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    /// PEM roots the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM certificate chain and key for mTLS, if any.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// Settings for an http upstream.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    pub url: UrlTemplate,
    /// JSON pointer to the rows: an array of objects, or one object (one row).
    pub rows: String,
    /// `paths[j]` is the JSON pointer to field `j` inside a row object.
    pub paths: Vec<String>,
    pub bearer: Option<Secret>,
    pub tls: Option<TlsFiles>,
    pub max_body_bytes: u64,
    pub pool_size: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct SqliteSettings {
    pub database: PathBuf,
    pub query: NamedQuery,
    pub pool_size: usize,
}

/// Where in the file each checked item is, so that errors found while opening a source can point
/// at the right line.
#[derive(Debug, Clone)]
pub(crate) struct Spans {
    pub name: Range<usize>,
    /// `password_env`/`password_file`/`bearer_token_*`, if set.
    pub secret: Option<Range<usize>>,
    pub connection: Range<usize>,
    pub query: Range<usize>,
    pub fields: Vec<Range<usize>>,
}

/// A parsed and validated datasets file, not yet opened.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    pub datasets: Vec<(Dataset, Spans)>,
    /// Turns a byte span into a `DatasetsError` naming this file.
    pub locator: Locator,
}

/// Maps byte offsets of one file to `path:line:col`.
#[derive(Debug, Clone)]
pub(crate) struct Locator {
    path: PathBuf,
    text: String,
}

impl Locator {
    pub fn new(path: &Path, text: &str) -> Locator {
        Locator {
            path: path.to_owned(),
            text: text.to_owned(),
        }
    }

    /// An error at `span` (its start is reported).
    pub fn error(&self, span: &Range<usize>, problem: impl Into<String>) -> DatasetsError {
        let at = span.start.min(self.text.len());
        let before = self.text.get(..at).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        DatasetsError::Invalid {
            path: self.path.clone(),
            line,
            column,
            problem: problem.into(),
        }
    }
}

// ---- the file as written (serde), every table closed to unknown keys ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    dataset: Vec<RawDataset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: Spanned<String>,
    description: Option<String>,
    adapter: Spanned<AdapterKind>,
    database: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    tls: Option<Spanned<TlsMode>>,
    ca_file: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    rows: Option<Spanned<String>>,
    bearer_token_env: Option<Spanned<String>>,
    bearer_token_file: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<u64>>,
    subject: Spanned<String>,
    max_rows: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    pool_size: Option<Spanned<u64>>,
    #[serde(default)]
    param: Vec<RawParam>,
    #[serde(default)]
    field: Vec<RawField>,
}

/// `tls = "..."` for database connections, named after PostgreSQL's `sslmode` values.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum TlsMode {
    /// Plain TCP (a database on the same host or a trusted network).
    Disable,
    /// TLS, the server's certificate checked against `ca_file` and its name against `host`.
    VerifyFull,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    name: Spanned<String>,
    #[serde(rename = "type")]
    ty: Spanned<RawParamType>,
    description: Option<String>,
    #[serde(default)]
    optional: bool,
    pattern: Option<Spanned<String>>,
    normalize: Option<Spanned<Vec<NormalizeStep>>>,
    max_length: Option<Spanned<u64>>,
    min: Option<Spanned<i64>>,
    max: Option<Spanned<i64>>,
    values: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawParamType {
    String,
    Integer,
    Date,
    Enum,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Spanned<String>,
    #[serde(rename = "type")]
    ty: Spanned<FieldType>,
    classification: Spanned<String>,
    description: Option<String>,
    path: Option<Spanned<String>>,
}

/// Parse and validate the text of a datasets file. Relative paths resolve against `base_dir`.
pub(crate) fn parse(path: &Path, text: &str, base_dir: &Path) -> Result<ParsedFile, DatasetsError> {
    let locator = Locator::new(path, text);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        locator.error(&span, explain_toml_error(e.message()))
    })?;
    let mut datasets: Vec<(Dataset, Spans)> = Vec::new();
    for rd in raw.dataset {
        let (dataset, spans) = validate_dataset(rd, base_dir, &locator)?;
        if datasets.iter().any(|(d, _)| d.name == dataset.name) {
            return Err(locator.error(
                &spans.name,
                format!(
                    "dataset \"{}\" is defined twice (rename or remove one of them)",
                    dataset.name
                ),
            ));
        }
        datasets.push((dataset, spans));
    }
    Ok(ParsedFile { datasets, locator })
}

fn validate_dataset(
    rd: RawDataset,
    base_dir: &Path,
    loc: &Locator,
) -> Result<(Dataset, Spans), DatasetsError> {
    let name_span = rd.name.span();
    let name = rd.name.into_inner();
    if !is_dataset_name(&name) {
        return Err(loc.error(
            &name_span,
            format!("dataset name \"{name}\" is not allowed (use lowercase letters, digits, '-' and '_', starting with a letter or digit)"),
        ));
    }

    // Parameters.
    let mut params: Vec<ParamDef> = Vec::new();
    let mut param_spans: Vec<Range<usize>> = Vec::new();
    for rp in rd.param {
        let span = rp.name.span();
        let p = validate_param(rp, loc)?;
        if params.iter().any(|q| q.name == p.name) {
            return Err(loc.error(
                &span,
                format!("parameter \"{}\" is declared twice (remove one)", p.name),
            ));
        }
        params.push(p);
        param_spans.push(span);
    }

    // The subject.
    let subject_span = rd.subject.span();
    let subject = rd.subject.into_inner();
    match params.iter().find(|p| p.name == subject) {
        None => {
            let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            return Err(loc.error(
                &subject_span,
                format!(
                    "subject \"{subject}\" is not a declared parameter {}",
                    advice(
                        &subject,
                        &names,
                        "declare it with [[dataset.param]] or name one of the parameters"
                    )
                ),
            ));
        }
        Some(p) if p.optional => {
            return Err(loc.error(
                &subject_span,
                format!("subject parameter \"{subject}\" is optional (the parameter that identifies the data subject must be required: remove `optional = true`)"),
            ));
        }
        Some(_) => {}
    }

    // Fields.
    let mut fields: Vec<FieldDef> = Vec::new();
    let mut field_spans: Vec<Range<usize>> = Vec::new();
    let mut field_paths: Vec<Option<Spanned<String>>> = Vec::new();
    for rf in rd.field {
        let span = rf.name.span();
        field_paths.push(rf.path);
        let fname = rf.name.into_inner();
        if fname.is_empty() || fname.chars().any(char::is_control) {
            return Err(loc.error(
                &span,
                "field name is empty or has control characters (use the query's column name)",
            ));
        }
        if fields.iter().any(|f| f.name == fname) {
            return Err(loc.error(
                &span,
                format!("field \"{fname}\" is declared twice (remove one)"),
            ));
        }
        let cspan = rf.classification.span();
        let classification = rf.classification.into_inner();
        if !CLASSIFICATIONS.contains(&classification.as_str()) {
            return Err(loc.error(
                &cspan,
                format!(
                    "unknown classification \"{classification}\" {}",
                    advice(
                        &classification,
                        CLASSIFICATIONS,
                        &format!("use one of: {}", CLASSIFICATIONS.join(", "))
                    )
                ),
            ));
        }
        fields.push(FieldDef {
            name: fname,
            ty: rf.ty.into_inner(),
            classification,
            description: rf.description,
        });
        field_spans.push(span);
    }
    if fields.is_empty() {
        return Err(loc.error(
            &name_span,
            format!("dataset \"{name}\" declares no fields (add a [[dataset.field]] for each column it yields)"),
        ));
    }

    let max_rows = match rd.max_rows {
        None => DEFAULT_MAX_ROWS,
        Some(m) => {
            let v = *m.get_ref();
            if v == 0 || v > MAX_MAX_ROWS {
                return Err(loc.error(
                    &m.span(),
                    format!("max_rows = {v} is out of range (use 1 to {MAX_MAX_ROWS})"),
                ));
            }
            v
        }
    };
    let timeout_ms = match rd.timeout_ms {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => {
            let v = *t.get_ref();
            if v == 0 || v > MAX_TIMEOUT_MS {
                return Err(loc.error(
                    &t.span(),
                    format!("timeout_ms = {v} is out of range (use 1 to {MAX_TIMEOUT_MS})"),
                ));
            }
            v
        }
    };
    let pool_size = match rd.pool_size {
        None => DEFAULT_POOL_SIZE,
        Some(p) => {
            let v = *p.get_ref();
            if v == 0 || v > MAX_POOL_SIZE as u64 {
                return Err(loc.error(
                    &p.span(),
                    format!("pool_size = {v} is out of range (use 1 to {MAX_POOL_SIZE})"),
                ));
            }
            v as usize
        }
    };

    // Adapter-specific settings.
    let adapter_span = rd.adapter.span();
    let adapter = rd.adapter.into_inner();
    let kind = adapter.as_str();
    let needs = |key: &str, what: &str| {
        loc.error(
            &adapter_span,
            format!("the {kind} adapter needs `{key}` ({what})"),
        )
    };
    // Keys that belong to other adapters are errors, not silently ignored.
    let allowed: &[&str] = match adapter {
        AdapterKind::Sqlite => &["database", "query"],
        AdapterKind::Postgres => &[
            "host",
            "port",
            "user",
            "database",
            "password_env",
            "password_file",
            "tls",
            "ca_file",
            "query",
        ],
        AdapterKind::Mysql => &[
            "host",
            "port",
            "user",
            "database",
            "password_env",
            "password_file",
            "query",
        ],
        AdapterKind::Http => &[
            "url",
            "rows",
            "bearer_token_env",
            "bearer_token_file",
            "ca_file",
            "client_cert",
            "client_key",
            "max_body_bytes",
        ],
    };
    let present: [(&str, Option<Range<usize>>); 16] = [
        ("database", rd.database.as_ref().map(Spanned::span)),
        ("query", rd.query.as_ref().map(Spanned::span)),
        ("host", rd.host.as_ref().map(Spanned::span)),
        ("port", rd.port.as_ref().map(Spanned::span)),
        ("user", rd.user.as_ref().map(Spanned::span)),
        ("password_env", rd.password_env.as_ref().map(Spanned::span)),
        (
            "password_file",
            rd.password_file.as_ref().map(Spanned::span),
        ),
        ("tls", rd.tls.as_ref().map(Spanned::span)),
        ("ca_file", rd.ca_file.as_ref().map(Spanned::span)),
        ("client_cert", rd.client_cert.as_ref().map(Spanned::span)),
        ("client_key", rd.client_key.as_ref().map(Spanned::span)),
        ("url", rd.url.as_ref().map(Spanned::span)),
        ("rows", rd.rows.as_ref().map(Spanned::span)),
        (
            "bearer_token_env",
            rd.bearer_token_env.as_ref().map(Spanned::span),
        ),
        (
            "bearer_token_file",
            rd.bearer_token_file.as_ref().map(Spanned::span),
        ),
        (
            "max_body_bytes",
            rd.max_body_bytes.as_ref().map(Spanned::span),
        ),
    ];
    for (key, span) in &present {
        if let Some(span) = span {
            if !allowed.contains(key) {
                return Err(loc.error(
                    span,
                    format!("`{key}` does not apply to the {kind} adapter (remove it; this adapter takes: {})", allowed.join(", ")),
                ));
            }
        }
    }
    if adapter != AdapterKind::Http {
        if let Some(p) = field_paths.iter().flatten().next() {
            return Err(loc.error(
                &p.span(),
                format!("`path` applies to fields of the http adapter only (remove it; {kind} fields are named by the query's columns)"),
            ));
        }
    }
    let mut secret_span = None;
    let mut secret = |env: Option<Spanned<String>>,
                      file: Option<Spanned<String>>,
                      what: &str|
     -> Result<Option<Secret>, DatasetsError> {
        match (env, file) {
            (Some(_), Some(f)) => Err(loc.error(
                &f.span(),
                format!("both {what}_env and {what}_file are set (keep one)"),
            )),
            (Some(e), None) => {
                secret_span = Some(e.span());
                let var = e.into_inner();
                if var.is_empty() || var.contains('=') || var.contains('\0') {
                    return Err(loc.error(
                        &secret_span.clone().unwrap_or_default(),
                        format!("{what}_env must name an environment variable"),
                    ));
                }
                Ok(Some(Secret::Env(var)))
            }
            (None, Some(f)) => {
                secret_span = Some(f.span());
                Ok(Some(Secret::File(base_dir.join(f.into_inner()))))
            }
            (None, None) => Ok(None),
        }
    };
    let non_empty = |v: Option<Spanned<String>>,
                     key: &str,
                     what: &str|
     -> Result<(String, Range<usize>), DatasetsError> {
        let v = v.ok_or_else(|| needs(key, what))?;
        let span = v.span();
        let v = v.into_inner();
        if v.trim().is_empty() {
            return Err(loc.error(&span, format!("`{key}` is empty ({what})")));
        }
        Ok((v, span))
    };
    let (connection, connection_span, query_span) = match adapter {
        AdapterKind::Sqlite => {
            let (db, db_span) = non_empty(
                rd.database,
                "database",
                "the SQLite file, relative to this datasets file",
            )?;
            let (q, q_span) = non_empty(rd.query, "query", "a SELECT with :name placeholders")?;
            let query = check_query(&q, Dialect::Sqlite, &params, &param_spans, &q_span, loc)?;
            (
                Connection::Sqlite(SqliteSettings {
                    database: base_dir.join(db),
                    query,
                    pool_size,
                }),
                db_span,
                q_span,
            )
        }
        AdapterKind::Postgres | AdapterKind::Mysql => {
            let (host, host_span) = non_empty(
                rd.host,
                "host",
                "the database server's host name or address",
            )?;
            let (user, _) = non_empty(rd.user, "user", "the database role to log in as")?;
            let (database, _) =
                non_empty(rd.database, "database", "the database name on the server")?;
            let password = secret(rd.password_env, rd.password_file, "password")?;
            let tls = match rd.tls.as_ref().map(|t| *t.get_ref()) {
                None | Some(TlsMode::Disable) => {
                    if let Some(ca) = &rd.ca_file {
                        return Err(loc.error(&ca.span(), "ca_file is set but tls is not \"verify-full\" (set tls = \"verify-full\" or remove ca_file)"));
                    }
                    None
                }
                Some(TlsMode::VerifyFull) => {
                    let (ca, _) = non_empty(rd.ca_file, "ca_file", "the PEM file of the CA that signed the database server's certificate, for tls = \"verify-full\"")?;
                    Some(TlsFiles {
                        ca_file: base_dir.join(ca),
                        client_identity: None,
                    })
                }
            };
            let dialect = if adapter == AdapterKind::Postgres {
                Dialect::Postgres
            } else {
                Dialect::Mysql
            };
            let (q, q_span) = non_empty(rd.query, "query", "a SELECT with :name placeholders")?;
            let query = check_query(&q, dialect, &params, &param_spans, &q_span, loc)?;
            let port = rd.port.map_or(
                if adapter == AdapterKind::Postgres {
                    5432
                } else {
                    3306
                },
                Spanned::into_inner,
            );
            let settings = ServerSettings {
                host,
                port,
                user,
                database,
                password,
                tls,
                query,
                pool_size,
            };
            let connection = if adapter == AdapterKind::Postgres {
                Connection::Postgres(settings)
            } else {
                Connection::Mysql(settings)
            };
            (connection, host_span, q_span)
        }
        AdapterKind::Http => {
            let (url, url_span) = non_empty(
                rd.url,
                "url",
                "the upstream URL template, with {name} for each parameter",
            )?;
            let template = UrlTemplate::parse(&url).map_err(|e| loc.error(&url_span, e))?;
            let used = template.params();
            let declared: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            for u in &used {
                if !declared.contains(u) {
                    return Err(loc.error(
                        &url_span,
                        format!(
                            "the url uses {{{u}}} but no parameter \"{u}\" is declared {}",
                            advice(
                                u,
                                &declared,
                                &format!("add a [[dataset.param]] named \"{u}\"")
                            )
                        ),
                    ));
                }
            }
            for (p, pspan) in params.iter().zip(&param_spans) {
                if !used.contains(&p.name.as_str()) {
                    return Err(loc.error(pspan, format!("parameter \"{}\" is declared but the url never uses {{{}}} (use it in the url or remove it)", p.name, p.name)));
                }
            }
            let rows = match rd.rows {
                None => String::new(),
                Some(r) => {
                    let span = r.span();
                    let r = r.into_inner();
                    if !(r.is_empty() || r.starts_with('/')) {
                        return Err(loc.error(&span, "rows must be a JSON pointer such as \"/data/items\" (or \"\" for the whole response)"));
                    }
                    r
                }
            };
            let mut paths = Vec::with_capacity(fields.len());
            for (f, p) in fields.iter().zip(field_paths) {
                match p {
                    None => {
                        paths.push(format!("/{}", f.name.replace('~', "~0").replace('/', "~1")))
                    }
                    Some(p) => {
                        let span = p.span();
                        let p = p.into_inner();
                        if !(p.is_empty() || p.starts_with('/')) {
                            return Err(loc.error(
                                &span,
                                "path must be a JSON pointer into one row, such as \"/name/given\"",
                            ));
                        }
                        paths.push(p);
                    }
                }
            }
            let bearer = secret(rd.bearer_token_env, rd.bearer_token_file, "bearer_token")?;
            let client_identity =
                match (rd.client_cert, rd.client_key) {
                    (None, None) => None,
                    (Some(c), Some(k)) => {
                        Some((base_dir.join(c.into_inner()), base_dir.join(k.into_inner())))
                    }
                    (Some(c), None) => return Err(loc.error(
                        &c.span(),
                        "client_cert is set without client_key (set both for mTLS to the upstream)",
                    )),
                    (None, Some(k)) => return Err(loc.error(
                        &k.span(),
                        "client_key is set without client_cert (set both for mTLS to the upstream)",
                    )),
                };
            let tls = match rd.ca_file {
                Some(ca) => Some(TlsFiles {
                    ca_file: base_dir.join(ca.into_inner()),
                    client_identity,
                }),
                None if template.is_https() => {
                    return Err(loc.error(&url_span, "an https url needs `ca_file` (the PEM file of the CA that signed the upstream's certificate)"));
                }
                None => {
                    if client_identity.is_some() {
                        return Err(loc.error(
                            &url_span,
                            "client_cert and client_key need an https url and ca_file",
                        ));
                    }
                    None
                }
            };
            if tls.is_some() && !template.is_https() {
                return Err(loc.error(
                    &url_span,
                    "ca_file is set but the url is not https (use https:// or remove ca_file)",
                ));
            }
            let max_body_bytes = match rd.max_body_bytes {
                None => DEFAULT_MAX_BODY_BYTES,
                Some(m) => {
                    let v = *m.get_ref();
                    if v == 0 || v > MAX_MAX_BODY_BYTES {
                        return Err(loc.error(&m.span(), format!("max_body_bytes = {v} is out of range (use 1 to {MAX_MAX_BODY_BYTES})")));
                    }
                    v
                }
            };
            let settings = HttpSettings {
                url: template,
                rows,
                paths,
                bearer,
                tls,
                max_body_bytes,
                pool_size,
            };
            (Connection::Http(settings), url_span.clone(), url_span)
        }
    };

    let dataset = Dataset {
        name,
        description: rd.description,
        adapter,
        subject_param: subject,
        params,
        fields,
        max_rows,
        timeout: Duration::from_millis(timeout_ms),
        connection,
    };
    let spans = Spans {
        name: name_span,
        secret: secret_span,
        connection: connection_span,
        query: query_span,
        fields: field_spans,
    };
    Ok((dataset, spans))
}

/// Every placeholder must be a declared parameter and every parameter must be used.
fn check_query(
    sql: &str,
    dialect: Dialect,
    params: &[ParamDef],
    param_spans: &[Range<usize>],
    span: &Range<usize>,
    loc: &Locator,
) -> Result<NamedQuery, DatasetsError> {
    if sql.trim().is_empty() {
        return Err(loc.error(
            span,
            "query is empty (write a SELECT with :name placeholders)",
        ));
    }
    let query = NamedQuery::parse(sql, dialect);
    let used = query.params();
    let declared: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    for u in &used {
        if !declared.contains(u) {
            return Err(loc.error(
                span,
                format!(
                    "the query uses :{u} but no parameter \"{u}\" is declared {}",
                    advice(
                        u,
                        &declared,
                        &format!("add a [[dataset.param]] named \"{u}\"")
                    )
                ),
            ));
        }
    }
    for (p, pspan) in params.iter().zip(param_spans) {
        if !used.contains(&p.name.as_str()) {
            return Err(loc.error(
                pspan,
                format!(
                    "parameter \"{}\" is declared but the query never uses :{} (use it in the query or remove it)",
                    p.name, p.name
                ),
            ));
        }
    }
    Ok(query)
}

fn validate_param(rp: RawParam, loc: &Locator) -> Result<ParamDef, DatasetsError> {
    let name_span = rp.name.span();
    let name = rp.name.into_inner();
    if !is_param_name(&name) {
        return Err(loc.error(
            &name_span,
            format!("parameter name \"{name}\" is not allowed (use letters, digits and '_', starting with a letter or '_')"),
        ));
    }
    let kind = *rp.ty.get_ref();
    let not_for = |key: &str, span: Range<usize>| {
        let ty = match kind {
            RawParamType::String => "string",
            RawParamType::Integer => "integer",
            RawParamType::Date => "date",
            RawParamType::Enum => "enum",
        };
        Err(loc.error(
            &span,
            format!(
                "`{key}` does not apply to a parameter of type {ty} (remove it or change the type)"
            ),
        ))
    };
    if kind != RawParamType::String {
        if let Some(p) = &rp.pattern {
            return not_for("pattern", p.span());
        }
        if let Some(p) = &rp.max_length {
            return not_for("max_length", p.span());
        }
        if let Some(p) = &rp.normalize {
            return not_for("normalize", p.span());
        }
    }
    if kind != RawParamType::Integer {
        if let Some(p) = &rp.min {
            return not_for("min", p.span());
        }
        if let Some(p) = &rp.max {
            return not_for("max", p.span());
        }
    }
    if kind != RawParamType::Enum {
        if let Some(p) = &rp.values {
            return not_for("values", p.span());
        }
    }
    let ty = match kind {
        RawParamType::String => {
            let max_length = match rp.max_length {
                None => MAX_STRING_PARAM_CHARS,
                Some(m) => {
                    let v = *m.get_ref();
                    if v == 0 || v > MAX_STRING_PARAM_CHARS as u64 {
                        return Err(loc.error(
                            &m.span(),
                            format!("max_length = {v} is out of range (use 1 to {MAX_STRING_PARAM_CHARS})"),
                        ));
                    }
                    v as usize
                }
            };
            let pattern = match rp.pattern {
                None => None,
                Some(p) => Some(Pattern::new(p.get_ref()).map_err(|e| {
                    loc.error(
                        &p.span(),
                        format!("pattern is not a valid regular expression: {e} (fix the pattern; it is matched against the whole value)"),
                    )
                })?),
            };
            let normalize =
                Normalization::new(rp.normalize.map(Spanned::into_inner).into_iter().flatten());
            ParamType::String {
                max_length,
                pattern,
                normalize,
            }
        }
        RawParamType::Integer => {
            let min = rp.min.as_ref().map(|m| *m.get_ref());
            let max = rp.max.as_ref().map(|m| *m.get_ref());
            if let (Some(lo), Some(hi), Some(span)) = (min, max, rp.max.as_ref().map(|m| m.span()))
            {
                if lo > hi {
                    return Err(
                        loc.error(&span, format!("max = {hi} is below min = {lo} (swap them)"))
                    );
                }
            }
            ParamType::Integer { min, max }
        }
        RawParamType::Date => ParamType::Date,
        RawParamType::Enum => {
            let values = rp.values.ok_or_else(|| {
                loc.error(
                    &name_span,
                    format!("enum parameter \"{name}\" has no `values` (list the allowed values, e.g. values = [\"a\", \"b\"])"),
                )
            })?;
            let span = values.span();
            let values = values.into_inner();
            if values.is_empty() {
                return Err(loc.error(&span, "values is empty (list at least one allowed value)"));
            }
            let distinct: BTreeSet<&String> = values.iter().collect();
            if distinct.len() != values.len() {
                return Err(loc.error(&span, "values lists a value twice (remove the duplicate)"));
            }
            ParamType::Enum { values }
        }
    };
    Ok(ParamDef {
        name,
        ty,
        optional: rp.optional,
        description: rp.description,
    })
}

fn is_dataset_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.len() <= 128
}

fn is_param_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

/// Rewrite serde/toml messages into `what is wrong (what to do)`, with "did you mean" where it helps.
fn explain_toml_error(message: &str) -> String {
    let message = message.trim();
    for (prefix, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let Some((bad, tail)) = rest.split_once('`') else {
                break;
            };
            let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            let otherwise = format!("expected one of: {}", expected.join(", "));
            return format!(
                "unknown {what} \"{bad}\" {}",
                advice(bad, &expected, &otherwise)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((field, _)) = rest.split_once('`') {
            return format!("missing required key \"{field}\" (add `{field} = ...` to this table)");
        }
    }
    format!("{message} (fix the TOML at this place)")
}

/// `(did you mean "x"?)` if one candidate is close to `word`, else `(otherwise)`.
pub(crate) fn advice(word: &str, candidates: &[&str], otherwise: &str) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!("(did you mean \"{c}\"?)"),
        None => format!("({otherwise})"),
    }
}

/// The candidate closest to `word`, if it is close enough to be a typo of it.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3) && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[dataset]]
name = "residents"
adapter = "sqlite"
database = "civil.sqlite"
query = "SELECT name FROM residents WHERE national_id = :national_id"
subject = "national_id"

[[dataset.param]]
name = "national_id"
type = "string"
pattern = "D[0-9]{6}"

[[dataset.field]]
name = "name"
type = "string"
classification = "personal"
"#;

    fn err(text: &str) -> String {
        match parse(Path::new("dir/datasets.toml"), text, Path::new("dir")) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_a_good_file_with_defaults() {
        let parsed = parse(Path::new("d/datasets.toml"), GOOD, Path::new("/base")).expect("valid");
        let (d, _) = &parsed.datasets[0];
        assert_eq!(d.name, "residents");
        assert_eq!(d.subject_param, "national_id");
        assert_eq!(d.max_rows, DEFAULT_MAX_ROWS);
        assert_eq!(d.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        let Connection::Sqlite(s) = &d.connection else {
            panic!("sqlite")
        };
        assert_eq!(s.database, Path::new("/base/civil.sqlite"));
        match &d.params[0].ty {
            ParamType::String {
                pattern: Some(p),
                max_length,
                normalize,
            } => {
                assert_eq!(*max_length, 256);
                assert!(
                    normalize.is_none(),
                    "values are compared as sent by default"
                );
                assert!(p.is_match("D000001"));
                assert!(!p.is_match("xD000001"), "patterns are anchored");
                assert!(!p.is_match("D0000012"), "patterns are anchored");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_key_names_line_column_and_suggests() {
        let text = GOOD.replace("classification = ", "clasification = ");
        let e = err(&text);
        assert!(
            e.starts_with("dir/datasets.toml:17:1: unknown field \"clasification\" (did you mean \"classification\"?)"),
            "{e}"
        );
        let text = GOOD.replace("adapter = \"sqlite\"", "adapter = \"sqlit\"");
        let e = err(&text);
        assert!(
            e.starts_with(
                "dir/datasets.toml:4:11: unknown value \"sqlit\" (did you mean \"sqlite\"?)"
            ),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_point_at_the_value() {
        let e = err(&GOOD.replace("pattern = \"D[0-9]{6}\"", "pattern = \"D[0-9\""));
        assert!(
            e.starts_with("dir/datasets.toml:12:11: pattern is not a valid regular expression"),
            "{e}"
        );
        let e = err(&GOOD.replace("subject = \"national_id\"", "subject = \"national_ld\""));
        assert!(e.contains(":7:11: subject \"national_ld\" is not a declared parameter (did you mean \"national_id\"?)"), "{e}");
        let e = err(&GOOD.replace("= :national_id", "= :nid"));
        assert!(
            e.contains(":6:9: the query uses :nid but no parameter"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"personal\"", "\"personel\""));
        assert!(
            e.contains(":17:18: unknown classification \"personel\" (did you mean \"personal\"?)"),
            "{e}"
        );
        let e = err(&GOOD.replace("type = \"string\"\npattern", "type = \"integer\"\npattern"));
        assert!(
            e.contains("`pattern` does not apply to a parameter of type integer"),
            "{e}"
        );
        let e = err(&format!("{GOOD}\nmax_rows = 0\n"));
        assert!(
            e.contains("unknown field \"max_rows\""),
            "max_rows after [[dataset.field]] belongs to the field table: {e}"
        );
        let e = err(&GOOD.replace("subject = ", "max_rows = 0\nsubject = "));
        assert!(e.contains(":7:12: max_rows = 0 is out of range"), "{e}");
        let e = err(&GOOD.replace("subject = \"national_id\"\n", ""));
        assert!(e.contains("missing required key \"subject\""), "{e}");
        let e = err(&format!("{GOOD}{GOOD}"));
        assert!(e.contains("dataset \"residents\" is defined twice"), "{e}");
    }

    #[test]
    fn normalize_is_parsed_and_checked() {
        let text = GOOD.replace(
            "pattern = \"D[0-9]{6}\"",
            "pattern = \"D[0-9]{6}\"\nnormalize = [\"casefold\", \"trim\", \"nfc\"]",
        );
        let parsed = parse(Path::new("d/datasets.toml"), &text, Path::new("/base")).expect("valid");
        let ParamType::String { normalize, .. } = &parsed.datasets[0].0.params[0].ty else {
            panic!("a string parameter")
        };
        assert_eq!(
            normalize.to_string(),
            "nfc, trim, casefold",
            "applied in a fixed order"
        );

        let e = err(&GOOD.replace(
            "pattern = \"D[0-9]{6}\"",
            "normalize = [\"trim\", \"lowercase\"]",
        ));
        assert!(
            e.starts_with("dir/datasets.toml:12:"),
            "the error names the line: {e}"
        );
        assert!(
            e.contains("unknown value \"lowercase\"") && e.contains("casefold"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "type = \"string\"\npattern = \"D[0-9]{6}\"",
            "type = \"integer\"\nnormalize = [\"trim\"]",
        ));
        assert!(
            e.contains(":12:13: `normalize` does not apply to a parameter of type integer"),
            "{e}"
        );
    }

    #[test]
    fn suggestion_only_for_close_words() {
        assert_eq!(did_you_mean("feilds", &["fields", "name"]), Some("fields"));
        assert_eq!(did_you_mean("zzz", &["fields", "name"]), None);
        assert_eq!(advice("zzz", &["fields"], "add it"), "(add it)");
    }
}
