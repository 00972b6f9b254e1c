//! The `sqlite` adapter: a SQLite file opened read-only, queried inline when that is quick and on
//! tokio's blocking pool otherwise.
//!
//! Connections are opened with `SQLITE_OPEN_READ_ONLY` and `PRAGMA query_only`, and the query must be a
//! single read-only statement (checked when the source opens). A small pool of connections per dataset
//! keeps the prepared statement cached. The deadline is enforced inside SQLite's VM by a progress
//! handler that interrupts the statement when time is up; the row limit is counted while stepping.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::datasets::{FieldDef, FieldType, SqliteSettings};
use crate::error::FetchError;
use crate::params::{BoundParams, ParamValue};
use crate::query::Dialect;
use crate::source::{match_columns, BoxFuture, Limits, OpenProblem, Rows, Source};

/// SQLite VM instructions between deadline checks: small enough to stop within a millisecond or so.
const PROGRESS_OPS: i32 = 10_000;

/// How long a fetch may run on the async worker that asked for it. A point lookup takes tens of
/// microseconds, far less than the two thread hand-offs of the blocking pool; anything slower is
/// interrupted at this budget and run again (it only reads) on the blocking pool with the full
/// deadline.
const INLINE_BUDGET: Duration = Duration::from_micros(500);

/// VM instructions between budget checks when running inline.
const INLINE_PROGRESS_OPS: i32 = 1_000;

/// A read-only SQLite dataset.
pub(crate) struct SqliteSource {
    dataset: String,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

/// What the blocking threads need.
struct Shared {
    path: PathBuf,
    sql: String,
    order: Vec<String>,
    fields: Vec<FieldDef>,
    /// `columns[j]` is the query column that yields `fields[j]`.
    columns: Vec<usize>,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteSource {
    /// Open the file, prepare the query, and check it against the declared fields.
    pub(crate) async fn open(
        dataset: &str,
        settings: &SqliteSettings,
        fields: &[FieldDef],
    ) -> Result<SqliteSource, OpenProblem> {
        let positional = settings.query.positional(Dialect::Sqlite);
        let path = settings.database.clone();
        let sql = positional.sql.clone();
        let declared = fields.to_vec();
        let (conn, columns) = tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path)
                .map_err(|e| OpenProblem::Connection(describe_open(&path, &e)))?;
            recommend_wal(&conn, &path);
            let columns = check_query(&conn, &sql, &declared)?;
            Ok::<_, OpenProblem>((conn, columns))
        })
        .await
        .map_err(|_| OpenProblem::Connection("opening the database panicked".into()))??;
        Ok(SqliteSource {
            dataset: dataset.to_owned(),
            shared: Arc::new(Shared {
                path: settings.database.clone(),
                sql: positional.sql,
                order: positional.order,
                fields: fields.to_vec(),
                columns,
                idle: Mutex::new(vec![conn]),
            }),
            permits: Arc::new(Semaphore::new(settings.pool_size)),
        })
    }

    async fn run(&self, params: &BoundParams, limits: Limits) -> Result<Rows, FetchError> {
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let timeout = FetchError::Timeout {
            after: limits.timeout,
        };
        let permit =
            tokio::time::timeout_at(deadline.into(), Arc::clone(&self.permits).acquire_owned())
                .await
                .map_err(|_| timeout.clone())?
                .map_err(|_| FetchError::Unavailable)?;
        let mut values = Vec::with_capacity(self.shared.order.len());
        for name in &self.shared.order {
            let v = params.get(name).ok_or_else(|| {
                tracing::warn!(dataset = %self.dataset, param = %name, "sqlite: parameter not bound");
                FetchError::QueryFailed
            })?;
            values.push(to_sql(v));
        }
        // Inline first, on an idle connection, within a small budget; the blocking pool otherwise.
        if let Some(rows) = self.shared.fetch_inline(&values, limits.max_rows, deadline) {
            drop(permit);
            return rows.map_err(|failure| failure.into_fetch_error(&self.dataset, limits));
        }
        let shared = Arc::clone(&self.shared);
        // The permit moves into the task: a connection counts against the pool until it is back.
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            shared.fetch_blocking(&values, limits.max_rows, deadline)
        });
        // The progress handler stops the statement at the deadline; this outer bound only covers a
        // blocking pool too busy to start the task in time.
        match tokio::time::timeout_at(deadline.into(), task).await {
            Err(_) => Err(timeout),
            Ok(Err(join)) => {
                tracing::warn!(dataset = %self.dataset, error = %join, "sqlite: fetch task failed");
                Err(FetchError::QueryFailed)
            }
            Ok(Ok(Ok(rows))) => Ok(rows),
            Ok(Ok(Err(failure))) => Err(failure.into_fetch_error(&self.dataset, limits)),
        }
    }
}

impl Source for SqliteSource {
    fn fetch<'a>(
        &'a self,
        params: &'a BoundParams,
        limits: Limits,
    ) -> BoxFuture<'a, Result<Rows, FetchError>> {
        Box::pin(self.run(params, limits))
    }

    fn check(&self, timeout: Duration) -> BoxFuture<'_, Result<(), FetchError>> {
        Box::pin(async move {
            let shared = Arc::clone(&self.shared);
            let dataset = self.dataset.clone();
            let task = tokio::task::spawn_blocking(move || {
                let conn = match shared.take_connection() {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(%dataset, error = %e, "sqlite: cannot open database");
                        return Err(FetchError::Unavailable);
                    }
                };
                let result = check_query(&conn, &shared.sql, &shared.fields).map(|_| ()).map_err(|p| {
                    tracing::warn!(%dataset, problem = ?p, "sqlite: query no longer matches the dataset");
                    FetchError::QueryFailed
                });
                shared.give_back(conn);
                result
            });
            match tokio::time::timeout(timeout, task).await {
                Err(_) => Err(FetchError::Timeout { after: timeout }),
                Ok(Err(_)) => Err(FetchError::QueryFailed),
                Ok(Ok(r)) => r,
            }
        })
    }
}

/// A failure inside the blocking task, mapped to a [`FetchError`] (and logged) on the async side.
enum Failure {
    TooManyRows,
    Sqlite(rusqlite::Error),
    /// A value that does not fit the declared field type.
    BadValue {
        field: String,
        found: &'static str,
    },
}

impl Failure {
    fn into_fetch_error(self, dataset: &str, limits: Limits) -> FetchError {
        match self {
            Failure::TooManyRows => FetchError::TooManyRows {
                limit: limits.max_rows,
            },
            Failure::BadValue { field, found } => {
                tracing::warn!(%dataset, %field, found, "sqlite: value does not fit the declared field type");
                FetchError::QueryFailed
            }
            Failure::Sqlite(e) => {
                let code = e.sqlite_error_code();
                tracing::warn!(%dataset, error = %e, "sqlite: query failed");
                match code {
                    Some(ErrorCode::OperationInterrupted) => FetchError::Timeout {
                        after: limits.timeout,
                    },
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                        FetchError::Timeout {
                            after: limits.timeout,
                        }
                    }
                    Some(
                        ErrorCode::CannotOpen
                        | ErrorCode::NotADatabase
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::PermissionDenied
                        | ErrorCode::DatabaseCorrupt,
                    ) => FetchError::Unavailable,
                    _ => FetchError::QueryFailed,
                }
            }
        }
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sqlite(e)
    }
}

impl Shared {
    fn take_connection(&self) -> Result<Connection, rusqlite::Error> {
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        match pooled {
            Some(c) => Ok(c),
            None => open_connection(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    /// Run the query on this thread if a connection is idle and it finishes within
    /// [`INLINE_BUDGET`] without waiting for a lock; `None` when it must go to the blocking pool.
    fn fetch_inline(
        &self,
        values: &[SqlValue],
        max_rows: u64,
        deadline: Instant,
    ) -> Option<Result<Rows, Failure>> {
        let budget = deadline.min(Instant::now() + INLINE_BUDGET);
        let conn = self.idle.lock().ok()?.pop()?;
        let result = self.fetch_on(
            conn,
            values,
            max_rows,
            budget,
            Duration::ZERO,
            INLINE_PROGRESS_OPS,
        );
        match result {
            Err(Failure::Sqlite(e))
                if budget < deadline
                    && matches!(
                        e.sqlite_error_code(),
                        Some(
                            ErrorCode::OperationInterrupted
                                | ErrorCode::DatabaseBusy
                                | ErrorCode::DatabaseLocked
                        )
                    ) =>
            {
                None
            }
            result => Some(result),
        }
    }

    fn fetch_blocking(
        &self,
        values: &[SqlValue],
        max_rows: u64,
        deadline: Instant,
    ) -> Result<Rows, Failure> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Failure::Sqlite(interrupted()));
        }
        let conn = self.take_connection()?;
        self.fetch_on(conn, values, max_rows, deadline, remaining, PROGRESS_OPS)
    }

    /// Run the query on `conn`, stopping at `deadline`, waiting at most `busy` for a lock; the
    /// connection goes back to the pool unless it broke.
    fn fetch_on(
        &self,
        conn: Connection,
        values: &[SqlValue],
        max_rows: u64,
        deadline: Instant,
        busy: Duration,
        progress_ops: i32,
    ) -> Result<Rows, Failure> {
        let result = conn
            .busy_timeout(busy)
            .map_err(Failure::from)
            .and_then(|()| {
                conn.progress_handler(progress_ops, Some(move || Instant::now() >= deadline));
                let result = self.read(&conn, values, max_rows, deadline);
                conn.progress_handler(0, None::<fn() -> bool>);
                result
            });
        // A connection that hit an I/O or corruption error is dropped; statement-level failures
        // (interrupt, row limit, bad value) leave it usable.
        let broken = matches!(
            &result,
            Err(Failure::Sqlite(e)) if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::SystemIoFailure | ErrorCode::DatabaseCorrupt)
            )
        );
        if !broken {
            self.give_back(conn);
        }
        result
    }

    fn read(
        &self,
        conn: &Connection,
        values: &[SqlValue],
        max_rows: u64,
        deadline: Instant,
    ) -> Result<Rows, Failure> {
        let mut stmt = conn.prepare_cached(&self.sql)?;
        for (i, v) in values.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, v)?;
        }
        let mut cursor = stmt.raw_query();
        let mut rows = Vec::new();
        while let Some(row) = cursor.next()? {
            if rows.len() as u64 >= max_rows {
                return Err(Failure::TooManyRows);
            }
            if Instant::now() >= deadline {
                return Err(Failure::Sqlite(interrupted()));
            }
            let mut out = Vec::with_capacity(self.fields.len());
            for (field, &col) in self.fields.iter().zip(&self.columns) {
                out.push(to_json(field, row.get_ref(col)?)?);
            }
            rows.push(out);
        }
        Ok(Rows {
            fields: self.fields.iter().map(|f| f.name.clone()).collect(),
            rows,
        })
    }
}

fn interrupted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
        Some("deadline passed".into()),
    )
}

fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Belt and braces on top of the read-only open: refuse any write even through ATTACH tricks.
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// A database in the rollback-journal mode costs each query about five more system calls than in
/// WAL mode (file locks, a check for a hot journal, a header read), and while a read runs the
/// department's own writers cannot commit. The gateway only reads, so it cannot switch the mode
/// itself: it says how.
fn recommend_wal(conn: &Connection, path: &Path) {
    let mode = conn
        .pragma_query_value(None, "journal_mode", |row| row.get::<_, String>(0))
        .unwrap_or_default();
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::info!(
            database = %path.display(),
            journal_mode = %mode,
            "sqlite: the database is not in WAL mode; in WAL mode reads would be cheaper and would \
             not hold up its writers' commits: run `PRAGMA journal_mode=WAL` on it once (docs/DATASETS.md)"
        );
    }
}

fn describe_open(path: &Path, e: &rusqlite::Error) -> String {
    if !path.exists() {
        format!(
            "database file {} does not exist (create it, or fix `database`, which is relative to this datasets file)",
            path.display()
        )
    } else {
        format!(
            "cannot open {} read-only as SQLite: {e} (check that it is a SQLite database and readable; \
             in WAL mode the gateway also needs its -shm file, or write access to the directory to create it)",
            path.display()
        )
    }
}

/// Prepare `sql` and match its result columns to the declared fields.
fn check_query(
    conn: &Connection,
    sql: &str,
    fields: &[FieldDef],
) -> Result<Vec<usize>, OpenProblem> {
    let compile = |e: rusqlite::Error| {
        OpenProblem::Query(format!("query does not compile: {e} (fix the SQL)"))
    };
    // Count statements the way SQLite splits them (a trailing `;`, blanks or comments are fine).
    let mut batch = rusqlite::Batch::new(conn, sql);
    let mut statements = 0;
    while batch.next().map_err(compile)?.is_some() {
        statements += 1;
    }
    if statements != 1 {
        return Err(OpenProblem::Query(
            "query must be exactly one statement (write a single SELECT)".into(),
        ));
    }
    let stmt = conn.prepare(sql).map_err(compile)?;
    if !stmt.readonly() {
        return Err(OpenProblem::Query(
            "query would modify the database (datasets are read-only: write a SELECT)".into(),
        ));
    }
    let names = stmt.column_names();
    if names.is_empty() {
        return Err(OpenProblem::Query(
            "query yields no columns (write a SELECT)".into(),
        ));
    }
    match_columns(&names, fields)
}

fn to_sql(v: &ParamValue) -> SqlValue {
    match v {
        ParamValue::Null => SqlValue::Null,
        ParamValue::Text(s) | ParamValue::Date(s) => SqlValue::Text(s.clone()),
        ParamValue::Integer(i) => SqlValue::Integer(*i),
        // ParamValue is non_exhaustive for other crates only; every variant is handled here.
    }
}

/// Convert one SQLite value to the declared field type; anything that does not fit is an error,
/// not a silent conversion.
fn to_json(field: &FieldDef, v: ValueRef<'_>) -> Result<Value, Failure> {
    let bad = |found: &'static str| Failure::BadValue {
        field: field.name.clone(),
        found,
    };
    let text = |b: &[u8]| -> Result<String, Failure> {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| bad("text that is not UTF-8"))
    };
    Ok(match (field.ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (FieldType::String | FieldType::Datetime, ValueRef::Text(b)) => Value::String(text(b)?),
        (FieldType::Date, ValueRef::Text(b)) => {
            let s = text(b)?;
            if !crate::params::is_date(&s) {
                return Err(bad("text that is not a YYYY-MM-DD date"));
            }
            Value::String(s)
        }
        (FieldType::Integer, ValueRef::Integer(i)) => Value::from(i),
        (FieldType::Float, ValueRef::Integer(i)) => Value::from(i as f64),
        (FieldType::Float, ValueRef::Real(f)) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| bad("a non-finite real"))?,
        (FieldType::Boolean, ValueRef::Integer(0)) => Value::Bool(false),
        (FieldType::Boolean, ValueRef::Integer(1)) => Value::Bool(true),
        (_, ValueRef::Integer(_)) => return Err(bad("an integer")),
        (_, ValueRef::Real(_)) => return Err(bad("a real")),
        (_, ValueRef::Text(_)) => return Err(bad("text")),
        (_, ValueRef::Blob(_)) => return Err(bad("a blob")),
    })
}
