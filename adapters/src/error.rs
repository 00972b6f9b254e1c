//! The two error types of this crate: one for an admin fixing a datasets file, one for a fetch.
//!
//! [`DatasetsError`] is for the local operator and may name files, keys and SQL. [`FetchError`] may be
//! shown to another department: its `Display` never contains SQL text, paths, hostnames or driver
//! messages. Those details are logged locally with `tracing::warn!` where the error is mapped.

use std::path::PathBuf;
use std::time::Duration;

/// A datasets file could not be read, parsed or validated, or one of its sources could not be opened.
///
/// `Display` is `path/datasets.toml:LINE:COL: what is wrong (what to do)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetsError {
    /// The file itself could not be read.
    #[error("{}: cannot read the datasets file: {source} (check the path and its permissions)", path.display())]
    Read {
        /// The datasets file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// Something at a known place in the file is wrong.
    #[error("{}:{line}:{column}: {problem}", path.display())]
    Invalid {
        /// The datasets file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column (in characters) of the offending key or value.
        column: usize,
        /// What is wrong and, in parentheses, what to do.
        problem: String,
    },
}

/// Why a fetch failed. Safe to show to another department: see [`FetchError::code`].
///
/// The `Display` text says what the requester can do about it and nothing about the provider's
/// infrastructure; the adapter has already logged the detail locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No dataset of that name exists at this gateway.
    #[error("unknown dataset \"{name}\"")]
    UnknownDataset {
        /// The name that was asked for.
        name: String,
    },
    /// A parameter is unknown, missing, of the wrong type, or out of its declared range or pattern.
    #[error("bad parameter \"{name}\": {problem}")]
    BadParameter {
        /// The parameter's name, as sent or as declared.
        name: String,
        /// What is wrong with it, in terms of the dataset's declared parameter.
        problem: String,
    },
    /// The query yields more rows than allowed. Results are never silently truncated.
    #[error("the result has more than {limit} rows (narrow the request)")]
    TooManyRows {
        /// The row limit in force.
        limit: u64,
    },
    /// The deadline passed before the whole result was read.
    #[error("the data source did not answer within {} ms (try again later)", after.as_millis())]
    Timeout {
        /// The time limit in force.
        after: Duration,
    },
    /// The data source cannot be reached or refused the connection (network, credentials, file).
    #[error("the data source is unavailable (try again later)")]
    Unavailable,
    /// The data source was reached but the query failed or returned values the dataset does not declare.
    #[error("the data source could not answer the query")]
    QueryFailed,
}

impl FetchError {
    /// A stable, documented machine-readable code (see docs/DATASETS.md):
    /// `unknown-dataset`, `bad-parameter`, `too-many-rows`, `timeout`, `unavailable`, `query-failed`.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::UnknownDataset { .. } => "unknown-dataset",
            FetchError::BadParameter { .. } => "bad-parameter",
            FetchError::TooManyRows { .. } => "too-many-rows",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Unavailable => "unavailable",
            FetchError::QueryFailed => "query-failed",
        }
    }

    /// True when the same request may succeed later without change (timeouts, unavailable sources).
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Timeout { .. } | FetchError::Unavailable)
    }

    pub(crate) fn bad_parameter(name: &str, problem: impl Into<String>) -> FetchError {
        FetchError::BadParameter {
            name: name.to_owned(),
            problem: problem.into(),
        }
    }
}
