//! The `mysql` adapter: mysql_async (MySQL and MariaDB) over a small pool.
//!
//! Sessions start read-only (`SET SESSION TRANSACTION READ ONLY`), in UTC, with the server's own
//! statement time limit set to the dataset's timeout as a backstop. The deadline is enforced by
//! the server: when it passes, a side connection sends `KILL QUERY` for our connection id, the
//! running statement ends with an error, and the connection is back in sync without being torn down.
//! Rows are read one at a time; past the row limit the query is killed the same way.

use std::time::{Duration, Instant};

use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Statement, Value as MyValue};
use serde_json::Value;

use crate::datasets::{FieldDef, FieldType, ServerSettings};
use crate::error::FetchError;
use crate::params::{BoundParams, ParamValue};
use crate::pool::{Pool, PoolError, Pooled};
use crate::query::Dialect;
use crate::source::{match_columns, BoxFuture, Limits, OpenProblem, Rows, Source};

/// A pooled connection idle for longer than this is pinged before use.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How long to wait for a kill to take effect and the connection to answer again.
const RESYNC: Duration = Duration::from_secs(2);

/// MySQL's character set number for binary strings (BLOB, BINARY): not text.
const BINARY_CHARSET: u16 = 63;

/// A MySQL or MariaDB dataset.
pub(crate) struct MysqlSource {
    dataset: String,
    settings: ServerSettings,
    sql: String,
    order: Vec<String>,
    fields: Vec<FieldDef>,
    statement_timeout: Duration,
    pool: Pool<MyConn>,
}

struct MyConn {
    conn: Conn,
    /// When the connection last finished a command in sync (for the idle check).
    last_used: Instant,
    statement: Statement,
    /// `columns[j]` is the statement column that yields field `j`.
    columns: Vec<usize>,
}

#[derive(Debug)]
enum ConnectFailure {
    Unreachable(String),
    Definition(OpenProblem),
}

enum Failure {
    Db(mysql_async::Error),
    BadValue(String),
    TooManyRows,
    /// The deadline passed and the statement did not stop after `KILL QUERY`.
    Stuck,
}

impl MysqlSource {
    /// Build the source and try one connection. An unreachable server is not an error here (the
    /// dataset is just not ready); a query that does not fit its declarations is.
    pub(crate) async fn open(
        dataset: &str,
        settings: &ServerSettings,
        fields: &[FieldDef],
        timeout: Duration,
    ) -> Result<MysqlSource, OpenProblem> {
        if let Some(secret) = &settings.password {
            secret.read().map_err(OpenProblem::Secret)?;
        }
        if settings.tls.is_some() {
            return Err(OpenProblem::Connection(
                "TLS to MySQL is not supported yet (remove tls and ca_file, or reach the server over a trusted network)".into(),
            ));
        }
        let positional = settings.query.positional(Dialect::Mysql);
        let source = MysqlSource {
            dataset: dataset.to_owned(),
            settings: settings.clone(),
            sql: positional.sql,
            order: positional.order,
            fields: fields.to_vec(),
            statement_timeout: timeout,
            pool: Pool::new(settings.pool_size),
        };
        let first = source
            .pool
            .get(Instant::now() + timeout, |_| true, || source.connect())
            .await
            .map(drop);
        match first {
            Ok(()) => Ok(source),
            Err(PoolError::Connect(ConnectFailure::Definition(p))) => Err(p),
            Err(PoolError::Connect(ConnectFailure::Unreachable(detail))) => {
                tracing::warn!(dataset, %detail, "mysql: database unreachable at start; dataset not ready");
                Ok(source)
            }
            Err(PoolError::Timeout) => {
                tracing::warn!(
                    dataset,
                    "mysql: no connection within the dataset's timeout at start; dataset not ready"
                );
                Ok(source)
            }
        }
    }

    fn opts(&self) -> Result<Opts, String> {
        let s = &self.settings;
        let password = match &s.password {
            Some(secret) => Some(secret.read()?),
            None => None,
        };
        Ok(OptsBuilder::default()
            .ip_or_hostname(s.host.clone())
            .tcp_port(s.port)
            .user(Some(s.user.clone()))
            .pass(password)
            .db_name(Some(s.database.clone()))
            .prefer_socket(false)
            .init(vec![
                "SET SESSION TRANSACTION READ ONLY".to_owned(),
                "SET time_zone = '+00:00'".to_owned(),
            ])
            .into())
    }

    async fn connect(&self) -> Result<MyConn, ConnectFailure> {
        let opts = self.opts().map_err(ConnectFailure::Unreachable)?;
        let mut conn = Conn::new(opts)
            .await
            .map_err(|e| ConnectFailure::Unreachable(e.to_string()))?;
        // Backstop on the server: MariaDB counts seconds, MySQL milliseconds (SELECT only).
        let limit = if conn.server_version() >= (10, 0, 0) || is_mariadb(&mut conn).await {
            format!(
                "SET SESSION max_statement_time = {:.3}",
                self.statement_timeout.as_secs_f64()
            )
        } else {
            format!(
                "SET SESSION max_execution_time = {}",
                self.statement_timeout.as_millis().max(1)
            )
        };
        conn.query_drop(limit)
            .await
            .map_err(|e| ConnectFailure::Unreachable(e.to_string()))?;
        let statement = conn.prep(self.sql.as_str()).await.map_err(|e| match e {
            mysql_async::Error::Server(se) if !is_connection_state(se.code) => {
                ConnectFailure::Definition(OpenProblem::Query(format!(
                    "the server cannot prepare the query: {} (fix the SQL)",
                    se.message
                )))
            }
            other => ConnectFailure::Unreachable(other.to_string()),
        })?;
        let columns = self.check(&statement).map_err(ConnectFailure::Definition)?;
        Ok(MyConn {
            conn,
            last_used: Instant::now(),
            statement,
            columns,
        })
    }

    /// A connection from the pool. One that sat idle longer than [`IDLE_CHECK`] is pinged first,
    /// so that a connection the server closed meanwhile (restart, `wait_timeout`, KILL) is replaced
    /// before it fails a request. A failure in the middle of a query is not retried: it is reported.
    async fn checkout(
        &self,
        deadline: Instant,
    ) -> Result<Pooled<MyConn>, PoolError<ConnectFailure>> {
        loop {
            let mut conn = self.pool.get(deadline, |_| true, || self.connect()).await?;
            if conn.is_fresh() || conn.last_used.elapsed() < IDLE_CHECK {
                return Ok(conn);
            }
            conn.set_busy(true);
            match tokio::time::timeout_at(deadline.into(), conn.conn.ping()).await {
                Ok(Ok(())) => {
                    conn.set_busy(false);
                    return Ok(conn);
                }
                Ok(Err(e)) => {
                    tracing::debug!(dataset = %self.dataset, error = %e, "mysql: idle pooled connection is dead; replacing it");
                    conn.discard();
                }
                Err(_) => {
                    conn.discard();
                    return Err(PoolError::Timeout);
                }
            }
        }
    }

    fn check(&self, statement: &Statement) -> Result<Vec<usize>, OpenProblem> {
        let cols = statement.columns();
        let names: Vec<String> = cols.iter().map(|c| c.name_str().into_owned()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let columns = match_columns(&names, &self.fields)?;
        for (j, (field, &col)) in self.fields.iter().zip(&columns).enumerate() {
            let c = &cols[col];
            if !column_fits(field.ty, c.column_type(), c.character_set()) {
                return Err(OpenProblem::Field(
                    j,
                    format!(
                        "field \"{}\" is declared {} but the query yields MySQL type {:?} (change the field's type or CAST the column in the query)",
                        field.name,
                        field.ty.as_str(),
                        c.column_type()
                    ),
                ));
            }
        }
        Ok(columns)
    }

    async fn run(&self, params: &BoundParams, limits: Limits) -> Result<Rows, FetchError> {
        let deadline = Instant::now() + limits.timeout;
        let timeout = FetchError::Timeout {
            after: limits.timeout,
        };
        let mut conn = match self.checkout(deadline).await {
            Ok(c) => c,
            Err(PoolError::Timeout) => return Err(timeout),
            Err(PoolError::Connect(ConnectFailure::Unreachable(detail))) => {
                tracing::warn!(dataset = %self.dataset, %detail, "mysql: cannot connect");
                return Err(FetchError::Unavailable);
            }
            Err(PoolError::Connect(ConnectFailure::Definition(problem))) => {
                tracing::error!(dataset = %self.dataset, ?problem, "mysql: the query no longer fits the dataset's declarations");
                return Err(FetchError::QueryFailed);
            }
        };
        let values: Vec<MyValue> = self
            .order
            .iter()
            .map(|name| match params.get(name) {
                None | Some(ParamValue::Null) => MyValue::NULL,
                Some(ParamValue::Integer(i)) => MyValue::Int(*i),
                Some(ParamValue::Text(s) | ParamValue::Date(s)) => {
                    MyValue::Bytes(s.as_bytes().to_vec())
                }
            })
            .collect();
        let id = conn.conn.id();
        conn.set_busy(true);
        let outcome = {
            let read = read(&mut conn, values, &self.fields, limits.max_rows);
            tokio::pin!(read);
            tokio::select! {
                r = &mut read => Some(r),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    // Ask the server to stop, then let the read finish on the error it gets.
                    kill_query(&self.dataset, self.opts(), id).await;
                    match tokio::time::timeout(RESYNC, &mut read).await {
                        Ok(_) => None,
                        Err(_) => Some(Err(Failure::Stuck)),
                    }
                }
            }
        };
        match outcome {
            Some(Err(Failure::Stuck)) => {
                tracing::warn!(dataset = %self.dataset, "mysql: query did not stop after KILL QUERY; closing the connection");
                conn.discard();
                Err(timeout)
            }
            None => {
                tracing::warn!(dataset = %self.dataset, after_ms = limits.timeout.as_millis() as u64, "mysql: deadline passed; query killed");
                conn.set_busy(false);
                Err(timeout)
            }
            Some(Ok(rows)) => {
                conn.last_used = Instant::now();
                conn.set_busy(false);
                Ok(rows)
            }
            Some(Err(Failure::Db(e))) => {
                match &e {
                    // The server's message may quote a parameter or a value ("Incorrect DATE
                    // value: '...'", a SIGNAL's text): its code and SQLSTATE only.
                    mysql_async::Error::Server(se) => {
                        tracing::warn!(dataset = %self.dataset, code = se.code, sqlstate = %se.state, "mysql: query failed")
                    }
                    _ => tracing::warn!(dataset = %self.dataset, error = %e, "mysql: query failed"),
                }
                let fetch = map_error(&e, limits);
                if fetch == FetchError::Unavailable {
                    conn.discard();
                } else {
                    conn.set_busy(false);
                }
                Err(fetch)
            }
            Some(Err(Failure::BadValue(detail))) => {
                tracing::warn!(dataset = %self.dataset, %detail, "mysql: value does not fit the declared field type");
                self.resync_in_background(conn, id);
                Err(FetchError::QueryFailed)
            }
            Some(Err(Failure::TooManyRows)) => {
                self.resync_in_background(conn, id);
                Err(FetchError::TooManyRows {
                    limit: limits.max_rows,
                })
            }
        }
    }

    /// Stop the abandoned statement on the server and drain it; only then does the connection go
    /// back to the pool. Runs after the fetch has returned its error.
    fn resync_in_background(&self, mut conn: Pooled<MyConn>, id: u32) {
        let dataset = self.dataset.clone();
        let opts = self.opts();
        tokio::spawn(async move {
            kill_query(&dataset, opts, id).await;
            // The next command first drains what is left of the killed result.
            match tokio::time::timeout(RESYNC, conn.conn.query_drop("DO 0")).await {
                Ok(Ok(())) => conn.set_busy(false),
                _ => conn.discard(),
            }
        });
    }
}

/// `KILL QUERY id` from a short-lived side connection.
async fn kill_query(dataset: &str, opts: Result<Opts, String>, id: u32) {
    let kill = async {
        let mut side = Conn::new(opts?).await.map_err(|e| e.to_string())?;
        side.query_drop(format!("KILL QUERY {id}"))
            .await
            .map_err(|e| e.to_string())?;
        side.disconnect().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(RESYNC, kill).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(dataset, error = %e, "mysql: KILL QUERY failed"),
        Err(_) => tracing::warn!(dataset, "mysql: KILL QUERY timed out"),
    }
}

async fn read(
    conn: &mut MyConn,
    values: Vec<MyValue>,
    fields: &[FieldDef],
    max_rows: u64,
) -> Result<Rows, Failure> {
    let params = if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    };
    let mut result = conn
        .conn
        .exec_iter(&conn.statement, params)
        .await
        .map_err(Failure::Db)?;
    let cols = conn.statement.columns();
    let mut rows = Vec::new();
    while let Some(mut row) = result.next().await.map_err(Failure::Db)? {
        if rows.len() as u64 >= max_rows {
            return Err(Failure::TooManyRows);
        }
        let mut out = Vec::with_capacity(fields.len());
        for (field, &col) in fields.iter().zip(&conn.columns) {
            let v = row.take::<MyValue, _>(col).unwrap_or(MyValue::NULL);
            out.push(decode(field, cols[col].column_type(), v).map_err(Failure::BadValue)?);
        }
        rows.push(out);
    }
    Ok(Rows {
        fields: fields.iter().map(|f| f.name.clone()).collect(),
        rows,
    })
}

async fn is_mariadb(conn: &mut Conn) -> bool {
    matches!(
        conn.query_first::<String, _>("SELECT VERSION()").await,
        Ok(Some(v)) if v.contains("MariaDB")
    )
}

/// Server error codes that mean "cannot serve you now", not "your SQL is wrong".
fn is_connection_state(code: u16) -> bool {
    matches!(
        code,
        1040 // too many connections
            | 1044 | 1045 // access denied
            | 1049 // unknown database
            | 1053 // server shutdown in progress
            | 1129 | 1130 // host blocked / not allowed
            | 1152 | 1153 | 1158..=1161 // aborted connection, packet errors
            | 1203 // too many user connections
            | 1927 // connection killed (MariaDB)
            | 2002..=2013 // client-side connection errors
            | 4031 // disconnected by server (inactivity)
    )
}

fn map_error(e: &mysql_async::Error, limits: Limits) -> FetchError {
    match e {
        mysql_async::Error::Server(se) => match se.code {
            // Interrupted (KILL QUERY), MySQL max_execution_time, MariaDB max_statement_time.
            1317 | 3024 | 1969 => FetchError::Timeout {
                after: limits.timeout,
            },
            c if is_connection_state(c) => FetchError::Unavailable,
            _ => FetchError::QueryFailed,
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => FetchError::Unavailable,
        _ => FetchError::QueryFailed,
    }
}

fn is_text(ty: ColumnType, charset: u16) -> bool {
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB => charset != BINARY_CHARSET,
        _ => false,
    }
}

fn is_int(ty: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        ty,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_YEAR
    )
}

fn column_fits(declared: FieldType, ty: ColumnType, charset: u16) -> bool {
    use ColumnType::*;
    let decimal = matches!(ty, MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL);
    match declared {
        FieldType::String => is_text(ty, charset),
        FieldType::Integer => is_int(ty) || decimal,
        FieldType::Float => {
            is_int(ty) || decimal || matches!(ty, MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE)
        }
        FieldType::Boolean => matches!(ty, MYSQL_TYPE_TINY | MYSQL_TYPE_BIT | MYSQL_TYPE_LONGLONG),
        FieldType::Date => {
            matches!(ty, MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE) || is_text(ty, charset)
        }
        FieldType::Datetime => {
            matches!(
                ty,
                MYSQL_TYPE_DATETIME
                    | MYSQL_TYPE_DATETIME2
                    | MYSQL_TYPE_TIMESTAMP
                    | MYSQL_TYPE_TIMESTAMP2
            ) || is_text(ty, charset)
        }
    }
}

/// A binary-protocol value to the declared JSON type.
fn decode(field: &FieldDef, ty: ColumnType, v: MyValue) -> Result<Value, String> {
    let bad = |what: &str| format!("field {}: {what} ({ty:?})", field.name);
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| bad("text is not UTF-8"));
    let finite = |f: f64| {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| bad("not finite"))
    };
    Ok(match (field.ty, v) {
        (_, MyValue::NULL) => Value::Null,
        (FieldType::Integer, MyValue::Int(i)) => Value::from(i),
        (FieldType::Integer, MyValue::UInt(u)) => {
            Value::from(i64::try_from(u).map_err(|_| bad("unsigned integer beyond i64"))?)
        }
        (FieldType::Integer, MyValue::Bytes(b)) if !is_text(ty, 0) => {
            // DECIMAL comes as text: accept it only if it is a whole number.
            let s = text(b)?;
            let whole = match s.split_once('.') {
                Some((int, frac)) if frac.chars().all(|c| c == '0') => int.to_owned(),
                Some(_) => return Err(bad("decimal is not a whole number")),
                None => s,
            };
            Value::from(
                whole
                    .parse::<i64>()
                    .map_err(|_| bad("decimal beyond i64"))?,
            )
        }
        (FieldType::Float, MyValue::Int(i)) => Value::from(i as f64),
        (FieldType::Float, MyValue::UInt(u)) => Value::from(u as f64),
        (FieldType::Float, MyValue::Float(f)) => finite(f64::from(f))?,
        (FieldType::Float, MyValue::Double(f)) => finite(f)?,
        (FieldType::Float, MyValue::Bytes(b)) if !is_text(ty, 0) => finite(
            text(b)?
                .parse::<f64>()
                .map_err(|_| bad("decimal is not a number"))?,
        )?,
        (FieldType::Boolean, MyValue::Int(0) | MyValue::UInt(0)) => Value::Bool(false),
        (FieldType::Boolean, MyValue::Int(1) | MyValue::UInt(1)) => Value::Bool(true),
        (FieldType::Boolean, MyValue::Bytes(b)) if b.len() == 1 && b[0] <= 1 => {
            Value::Bool(b[0] == 1)
        }
        (FieldType::Date, MyValue::Date(y, m, d, 0, 0, 0, 0)) => {
            let s = format!("{y:04}-{m:02}-{d:02}");
            if !crate::params::is_date(&s) {
                return Err(bad("date is zero or invalid"));
            }
            Value::String(s)
        }
        (FieldType::Datetime, MyValue::Date(y, m, d, h, mi, s, us)) => {
            let date = format!("{y:04}-{m:02}-{d:02}");
            if !crate::params::is_date(&date) {
                return Err(bad("date is zero or invalid"));
            }
            let frac = if us == 0 {
                String::new()
            } else {
                format!(".{us:06}")
            };
            // The session runs in UTC, so TIMESTAMP values are UTC; DATETIME has no zone.
            let zone = if matches!(
                ty,
                ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2
            ) {
                "Z"
            } else {
                ""
            };
            Value::String(format!("{date}T{h:02}:{mi:02}:{s:02}{frac}{zone}"))
        }
        (FieldType::Date, MyValue::Bytes(b)) => {
            let s = text(b)?;
            if !crate::params::is_date(&s) {
                return Err(bad("text is not a YYYY-MM-DD date"));
            }
            Value::String(s)
        }
        (FieldType::String | FieldType::Datetime, MyValue::Bytes(b)) => Value::String(text(b)?),
        _ => return Err(bad("value does not fit the declared field type")),
    })
}

impl Source for MysqlSource {
    fn fetch<'a>(
        &'a self,
        params: &'a BoundParams,
        limits: Limits,
    ) -> BoxFuture<'a, Result<Rows, FetchError>> {
        Box::pin(self.run(params, limits))
    }

    fn check(&self, timeout: Duration) -> BoxFuture<'_, Result<(), FetchError>> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let mut conn = match self.pool.get(deadline, |_| true, || self.connect()).await {
                Ok(c) => c,
                Err(PoolError::Timeout) => return Err(FetchError::Timeout { after: timeout }),
                Err(PoolError::Connect(ConnectFailure::Unreachable(detail))) => {
                    tracing::warn!(dataset = %self.dataset, %detail, "mysql: not ready");
                    return Err(FetchError::Unavailable);
                }
                Err(PoolError::Connect(ConnectFailure::Definition(problem))) => {
                    tracing::error!(dataset = %self.dataset, ?problem, "mysql: the query no longer fits the dataset's declarations");
                    return Err(FetchError::QueryFailed);
                }
            };
            conn.set_busy(true);
            match tokio::time::timeout_at(deadline.into(), conn.conn.ping()).await {
                Ok(Ok(())) => {
                    conn.set_busy(false);
                    Ok(())
                }
                Ok(Err(e)) => {
                    tracing::warn!(dataset = %self.dataset, error = %e, "mysql: not ready");
                    conn.discard();
                    Err(FetchError::Unavailable)
                }
                Err(_) => {
                    conn.discard();
                    Err(FetchError::Timeout { after: timeout })
                }
            }
        })
    }
}
