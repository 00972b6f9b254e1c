//! The [`Source`] trait every adapter implements, and the value types that cross it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::datasets::FieldDef;
use crate::error::FetchError;
use crate::params::BoundParams;

/// A boxed, sendable future, so that [`Source`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How much a fetch may read and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// More rows than this is an error ([`FetchError::TooManyRows`]), never a silent truncation.
    pub max_rows: u64,
    /// Time for the whole fetch, including waiting for a pooled connection.
    pub timeout: Duration,
}

impl Limits {
    /// The stricter of two limits, field by field.
    pub fn min(self, other: Limits) -> Limits {
        Limits {
            max_rows: self.max_rows.min(other.max_rows),
            timeout: self.timeout.min(other.timeout),
        }
    }
}

/// The result of a fetch: the dataset's fields in declared order and one value per field per row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rows {
    /// Field names, in the dataset's declared order.
    pub fields: Vec<String>,
    /// Rows; `rows[i][j]` is the value of `fields[j]`, typed as declared, or `null`.
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// One opened data source serving one dataset: it knows its query and connection, and runs the
/// query with bound parameters only.
///
/// Implementations enforce `limits` while reading (the row count while stepping through results, the
/// deadline on the driver), map every failure to a [`FetchError`], and log the detail locally.
pub trait Source: Send + Sync {
    /// Run the dataset's query with `params` (already validated against the dataset's declarations).
    fn fetch<'a>(
        &'a self,
        params: &'a BoundParams,
        limits: Limits,
    ) -> BoxFuture<'a, Result<Rows, FetchError>>;

    /// Check that the source can answer now (for readiness probes): a connection can be had and the
    /// query still yields the declared fields.
    fn check(&self, timeout: Duration) -> BoxFuture<'_, Result<(), FetchError>>;
}

/// Why a source could not be opened from its definition; the catalog turns it into a
/// `file:line:col` error pointing at the right key.
#[derive(Debug)]
pub(crate) enum OpenProblem {
    /// Something about the connection settings (points at `database`, `host` or `url`).
    Connection(String),
    /// Something about the query (points at `query`).
    Query(String),
    /// Field `index` does not fit the query (points at that field).
    Field(usize, String),
    /// A secret cannot be read (points at `*_env` / `*_file`).
    Secret(String),
}

/// Match query column names to declared fields: `columns[j]` yields `fields[j]`.
pub(crate) fn match_columns(
    names: &[&str],
    fields: &[FieldDef],
) -> Result<Vec<usize>, OpenProblem> {
    let mut columns = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        match names.iter().position(|n| *n == f.name) {
            Some(c) => columns.push(c),
            None => {
                return Err(OpenProblem::Field(
                    i,
                    format!(
                        "field \"{}\" is not a column of the query (its columns: {}; rename the field or alias the column with AS)",
                        f.name,
                        names.join(", ")
                    ),
                ))
            }
        }
    }
    for n in names {
        if !fields.iter().any(|f| f.name == *n) {
            return Err(OpenProblem::Query(format!(
                "the query yields column \"{n}\" but no field declares it (add a [[dataset.field]] for it, or remove it from the SELECT)"
            )));
        }
    }
    if names.len() != fields.len() {
        return Err(OpenProblem::Query(
            "the query yields the same column name twice (alias the columns with AS)".into(),
        ));
    }
    Ok(columns)
}
