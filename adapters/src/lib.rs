//! Causeway's data sources: the datasets file, the [`Source`] trait, and one module per kind of
//! database a department keeps its records in.
//!
//! A gateway opens a [`Catalog`] from its datasets file. Each dataset names an adapter, a query the
//! provider's admin wrote with `:name` placeholders, typed parameters, and the fields it yields with
//! their classification. [`Catalog::fetch`] checks a request's parameters against those declarations,
//! runs the query with bound parameters only, and enforces the row limit and the deadline while
//! reading, not after.
//!
//! # Adapters
//! - `sqlite`: a SQLite file, read-only connections, queries on tokio's blocking pool, the deadline
//!   enforced by a progress handler inside SQLite's VM.
//! - `postgres`: tokio-postgres, read-only sessions, optional TLS (rustls, verify-full), cancel
//!   requests at the deadline or past the row limit.
//! - `mysql`: mysql_async for MySQL and MariaDB, read-only sessions, `KILL QUERY` at the deadline or
//!   past the row limit.
//! - `http`: an internal REST service answering JSON (hyper client, optional TLS and mTLS, bearer
//!   token), parameters percent-encoded into a URL template, JSON pointers to rows and fields.
//!
//! Network sources keep a small pool per dataset; a connection goes back to it only when it is known
//! to be in sync with the server. A server that is unreachable at start makes its dataset not ready
//! ([`Catalog::check`]) without stopping the gateway.
//!
//! # What this crate owns
//! - The datasets file format and its validation, with `file:line:col` errors (docs/DATASETS.md).
//! - Parameter validation and binding; requesters never send SQL.
//! - Connection pools, read-only access, row limits, deadlines, and the mapping of driver failures to
//!   a small set of stable error codes ([`FetchError::code`]) whose text never leaks SQL, paths or
//!   hostnames. Details go to the local log through `tracing`.
//!
//! # What it must not know
//! Policies, grants, masks, purposes, ledgers, receipts, peers and HTTP serving. It fetches what it is
//! told and returns every declared field; dropping and masking fields and notarizing the exchange are
//! the gateway's job.
#![warn(missing_docs)]

mod canonical;
mod civil;
mod datasets;
mod error;
mod http;
mod mysql;
mod params;
mod pool;
mod postgres;
mod query;
mod source;
mod sqlite;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use canonical::{Normalization, NormalizeStep};
pub use datasets::{
    AdapterKind, Dataset, FieldDef, FieldType, ParamDef, ParamType, Pattern, CLASSIFICATIONS,
    DEFAULT_MAX_ROWS, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT_MS, MAX_MAX_ROWS, MAX_POOL_SIZE,
    MAX_STRING_PARAM_CHARS, MAX_TIMEOUT_MS,
};
pub use error::{DatasetsError, FetchError};
pub use params::{bind, BoundParams, ParamValue};
pub use source::{BoxFuture, Limits, Rows, Source};

use datasets::{Connection, Spans};
use source::OpenProblem;

/// How long after a fetch's deadline the catalog stops waiting for a source that overruns it.
const OUTER_DEADLINE_GRACE: Duration = Duration::from_millis(100);

/// Every dataset of one gateway, opened: definitions plus a live [`Source`] per dataset.
pub struct Catalog {
    path: PathBuf,
    entries: Vec<Entry>,
}

struct Entry {
    dataset: Dataset,
    source: Box<dyn Source>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("path", &self.path)
            .field(
                "datasets",
                &self
                    .entries
                    .iter()
                    .map(|e| &e.dataset.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Catalog {
    /// Parse and validate a datasets file (relative paths inside resolve against the file's
    /// directory), and open each dataset's source.
    ///
    /// Errors name the file, line and column, what is wrong and what to do. For SQLite, a missing
    /// database file, a query that does not compile or is not read-only, and fields that are not
    /// the query's result columns are all errors here.
    pub async fn open(datasets_file: &Path) -> Result<Catalog, DatasetsError> {
        let text = tokio::fs::read_to_string(datasets_file)
            .await
            .map_err(|source| DatasetsError::Read {
                path: datasets_file.to_owned(),
                source,
            })?;
        let base_dir = match datasets_file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let parsed = datasets::parse(datasets_file, &text, &base_dir)?;
        let mut entries = Vec::with_capacity(parsed.datasets.len());
        for (dataset, spans) in parsed.datasets {
            let source = open_source(&dataset, &spans, &parsed.locator).await?;
            tracing::info!(dataset = %dataset.name, adapter = dataset.adapter.as_str(), "dataset opened");
            entries.push(Entry { dataset, source });
        }
        Ok(Catalog {
            path: datasets_file.to_owned(),
            entries,
        })
    }

    /// The datasets file this catalog was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dataset of that name.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.entry(name).map(|e| &e.dataset)
    }

    /// Every dataset, in file order.
    pub fn datasets(&self) -> impl Iterator<Item = &Dataset> {
        self.entries.iter().map(|e| &e.dataset)
    }

    /// Validate and bind `params` (unknown, missing, wrong type or pattern mismatch is
    /// [`FetchError::BadParameter`] naming the parameter), run the dataset's query with bound
    /// parameters only, and enforce the row limit and the deadline while reading.
    ///
    /// The limits in force are the stricter of `limits` and the dataset's own `max_rows` and
    /// `timeout_ms`. More rows than `max_rows` is [`FetchError::TooManyRows`]: a result is never
    /// silently truncated.
    pub async fn fetch(
        &self,
        dataset: &str,
        params: &BTreeMap<String, serde_json::Value>,
        limits: Limits,
    ) -> Result<Rows, FetchError> {
        let entry = self
            .entry(dataset)
            .ok_or_else(|| FetchError::UnknownDataset {
                name: dataset.to_owned(),
            })?;
        let bound = bind(&entry.dataset, params)?;
        self.fetch_bound(dataset, &bound, limits).await
    }

    /// [`Catalog::fetch`] with parameters already bound ([`bind`]) against this dataset: for a
    /// caller that reads the canonical values itself before the fetch (the gateway decides on
    /// them), so that they are checked and normalized once.
    pub async fn fetch_bound(
        &self,
        dataset: &str,
        bound: &BoundParams,
        limits: Limits,
    ) -> Result<Rows, FetchError> {
        let entry = self
            .entry(dataset)
            .ok_or_else(|| FetchError::UnknownDataset {
                name: dataset.to_owned(),
            })?;
        let limits = limits.min(Limits {
            max_rows: entry.dataset.max_rows,
            timeout: entry.dataset.timeout,
        });
        let started = Instant::now();
        // Sources enforce the deadline themselves and clean up after it; this outer bound, a little
        // later so as not to pre-empt that, covers a source that does not.
        let guard = limits.timeout + OUTER_DEADLINE_GRACE;
        let result = match tokio::time::timeout(guard, entry.source.fetch(bound, limits)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                after: limits.timeout,
            }),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(rows) => tracing::debug!(dataset, rows = rows.rows.len(), elapsed_ms, "fetched"),
            Err(e) => tracing::warn!(dataset, code = e.code(), elapsed_ms, "fetch failed"),
        }
        result
    }

    /// Check that one dataset's source can answer now (for readiness): `Ok` or the error a fetch
    /// would likely meet.
    pub async fn check(&self, dataset: &str, timeout: Duration) -> Result<(), FetchError> {
        let entry = self
            .entry(dataset)
            .ok_or_else(|| FetchError::UnknownDataset {
                name: dataset.to_owned(),
            })?;
        entry.source.check(timeout).await
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.dataset.name == name)
    }
}

/// Parse and validate a datasets file without opening any source: its dataset definitions, in
/// file order, for tools that check other files against them (`causeway policy check
/// --datasets`). The same validation as [`Catalog::open`] up to, not including, connecting: a
/// missing SQLite file or an unreachable server is not an error here.
pub fn read_datasets(datasets_file: &Path) -> Result<Vec<Dataset>, DatasetsError> {
    let text = std::fs::read_to_string(datasets_file).map_err(|source| DatasetsError::Read {
        path: datasets_file.to_owned(),
        source,
    })?;
    let base_dir = match datasets_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let parsed = datasets::parse(datasets_file, &text, &base_dir)?;
    Ok(parsed.datasets.into_iter().map(|(d, _)| d).collect())
}

/// Parse and validate the text of a datasets file, as [`read_datasets`] does with a file (relative
/// paths resolve against `.`): for fuzzing and for tools that already hold the text. Never touches
/// the file system or a network.
pub fn parse_datasets(text: &str) -> Result<Vec<Dataset>, DatasetsError> {
    let parsed = datasets::parse(Path::new("datasets.toml"), text, Path::new("."))?;
    Ok(parsed.datasets.into_iter().map(|(d, _)| d).collect())
}

async fn open_source(
    dataset: &Dataset,
    spans: &Spans,
    locator: &datasets::Locator,
) -> Result<Box<dyn Source>, DatasetsError> {
    let opened: Result<Box<dyn Source>, OpenProblem> = match &dataset.connection {
        Connection::Sqlite(settings) => {
            sqlite::SqliteSource::open(&dataset.name, settings, &dataset.fields)
                .await
                .map(|s| Box::new(s) as Box<dyn Source>)
        }
        Connection::Postgres(settings) => postgres::PostgresSource::open(
            &dataset.name,
            settings,
            &dataset.params,
            &dataset.fields,
            dataset.timeout,
        )
        .await
        .map(|s| Box::new(s) as Box<dyn Source>),
        Connection::Mysql(settings) => {
            mysql::MysqlSource::open(&dataset.name, settings, &dataset.fields, dataset.timeout)
                .await
                .map(|s| Box::new(s) as Box<dyn Source>)
        }
        Connection::Http(settings) => {
            http::HttpSource::open(&dataset.name, settings, &dataset.fields)
                .map(|s| Box::new(s) as Box<dyn Source>)
        }
    };
    opened.map_err(|problem| match problem {
        OpenProblem::Connection(p) => locator.error(&spans.connection, p),
        OpenProblem::Query(p) => locator.error(&spans.query, p),
        OpenProblem::Field(i, p) => locator.error(spans.fields.get(i).unwrap_or(&spans.name), p),
        OpenProblem::Secret(p) => {
            locator.error(spans.secret.as_ref().unwrap_or(&spans.connection), p)
        }
    })
}
