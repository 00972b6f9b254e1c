//! The `postgres` adapter: tokio-postgres over a small pool, TLS optional (rustls, verify-full).
//!
//! Each pooled connection holds the dataset's prepared statement. Sessions start with
//! `default_transaction_read_only = on` and a server-side `statement_timeout` equal to the dataset's
//! timeout, as a backstop to the client-side deadline. Rows are read one at a time from the wire;
//! when the row limit is passed or the deadline hits, the query is cancelled on the server and the
//! connection goes back to the pool only once it is known to be in sync again.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_core::Stream;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type};
use tokio_postgres::{Client, NoTls, RowStream, Socket, Statement};

use crate::civil;
use crate::datasets::{FieldDef, FieldType, ParamDef, ParamType, ServerSettings};
use crate::error::FetchError;
use crate::params::{BoundParams, ParamValue};
use crate::pool::{Pool, PoolError, Pooled};
use crate::query::Dialect;
use crate::source::{match_columns, BoxFuture, Limits, OpenProblem, Rows, Source};

/// A pooled connection idle for longer than this is pinged before use.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How long to wait for the server to acknowledge a cancel and for the connection to resync.
const RESYNC: Duration = Duration::from_secs(2);

/// A PostgreSQL dataset.
pub(crate) struct PostgresSource {
    dataset: String,
    settings: ServerSettings,
    tls: Option<RustlsMake>,
    sql: String,
    order: Vec<String>,
    params: Vec<ParamDef>,
    fields: Vec<FieldDef>,
    /// Set once a connection has checked the statement against the declarations.
    columns: OnceLock<Vec<usize>>,
    statement_timeout: Duration,
    pool: Pool<PgConn>,
}

struct PgConn {
    client: Client,
    statement: Statement,
    /// When the connection last finished a query in sync (for the idle check).
    last_used: Instant,
}

/// A connection-level failure: the detail is for the local log only.
#[derive(Debug)]
enum ConnectFailure {
    /// The server could not be reached or refused us (network, credentials, secret).
    Unreachable(String),
    /// The server is fine but the query does not fit the dataset's declarations.
    Definition(OpenProblem),
}

impl PostgresSource {
    /// Build the source and try one connection. An unreachable server is not an error here (the
    /// dataset is just not ready); a query that does not fit its declarations is.
    pub(crate) async fn open(
        dataset: &str,
        settings: &ServerSettings,
        params: &[ParamDef],
        fields: &[FieldDef],
        timeout: Duration,
    ) -> Result<PostgresSource, OpenProblem> {
        if let Some(secret) = &settings.password {
            secret.read().map_err(OpenProblem::Secret)?;
        }
        let tls = match &settings.tls {
            None => None,
            Some(files) => Some(RustlsMake(
                crate::tls::client_config(files).map_err(OpenProblem::Connection)?,
            )),
        };
        let positional = settings.query.positional(Dialect::Postgres);
        let source = PostgresSource {
            dataset: dataset.to_owned(),
            settings: settings.clone(),
            tls,
            sql: positional.sql,
            order: positional.order,
            params: params.to_vec(),
            fields: fields.to_vec(),
            columns: OnceLock::new(),
            statement_timeout: timeout,
            pool: Pool::new(settings.pool_size),
        };
        let deadline = Instant::now() + timeout;
        let first = source
            .pool
            .get(deadline, |c| !c.client.is_closed(), || source.connect())
            .await
            .map(drop);
        match first {
            Ok(()) => Ok(source),
            Err(PoolError::Connect(ConnectFailure::Definition(p))) => Err(p),
            Err(PoolError::Connect(ConnectFailure::Unreachable(detail))) => {
                tracing::warn!(dataset, %detail, "postgres: database unreachable at start; dataset not ready");
                Ok(source)
            }
            Err(PoolError::Timeout) => {
                tracing::warn!(dataset, "postgres: no connection within the dataset's timeout at start; dataset not ready");
                Ok(source)
            }
        }
    }

    async fn connect(&self) -> Result<PgConn, ConnectFailure> {
        let s = &self.settings;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&s.host)
            .port(s.port)
            .user(&s.user)
            .dbname(&s.database)
            .application_name("causeway")
            .options(format!(
                "-c default_transaction_read_only=on -c statement_timeout={}",
                self.statement_timeout.as_millis().max(1)
            ));
        if let Some(secret) = &s.password {
            config.password(secret.read().map_err(ConnectFailure::Unreachable)?);
        }
        let client = match &self.tls {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config.connect(NoTls).await.map_err(unreachable)?;
                spawn_connection(&self.dataset, connection);
                client
            }
            Some(tls) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let (client, connection) =
                    config.connect(tls.clone()).await.map_err(unreachable)?;
                spawn_connection(&self.dataset, connection);
                client
            }
        };
        let statement = client
            .prepare(&self.sql)
            .await
            .map_err(|e| match e.as_db_error() {
                // The server answered: the query itself is wrong for this database.
                Some(db) if !is_connection_state(db.code()) => {
                    ConnectFailure::Definition(OpenProblem::Query(format!(
                        "PostgreSQL cannot prepare the query: {} (fix the SQL)",
                        db.message()
                    )))
                }
                _ => unreachable(e),
            })?;
        if self.columns.get().is_none() {
            let columns = self.check(&statement).map_err(ConnectFailure::Definition)?;
            let _ = self.columns.set(columns);
        }
        Ok(PgConn {
            client,
            statement,
            last_used: Instant::now(),
        })
    }

    /// A connection from the pool. One that sat idle longer than [`IDLE_CHECK`] is pinged first,
    /// so that a connection the server closed meanwhile (restart, terminate) is replaced before it
    /// fails a request. A failure in the middle of a query is not retried: it is reported.
    async fn checkout(
        &self,
        deadline: Instant,
    ) -> Result<Pooled<PgConn>, PoolError<ConnectFailure>> {
        loop {
            let mut conn = self
                .pool
                .get(deadline, |c| !c.client.is_closed(), || self.connect())
                .await?;
            if conn.is_fresh() || conn.last_used.elapsed() < IDLE_CHECK {
                return Ok(conn);
            }
            conn.set_busy(true);
            match tokio::time::timeout_at(deadline.into(), conn.client.simple_query("")).await {
                Ok(Ok(_)) => {
                    conn.set_busy(false);
                    return Ok(conn);
                }
                Ok(Err(e)) => {
                    tracing::debug!(dataset = %self.dataset, error = %e, "postgres: idle pooled connection is dead; replacing it");
                    conn.discard();
                }
                Err(_) => {
                    conn.discard();
                    return Err(PoolError::Timeout);
                }
            }
        }
    }

    /// Match the prepared statement's parameters and columns to the declarations.
    fn check(&self, statement: &Statement) -> Result<Vec<usize>, OpenProblem> {
        for (name, ty) in self.order.iter().zip(statement.params()) {
            let Some(def) = self.params.iter().find(|p| &p.name == name) else {
                continue;
            };
            if !param_fits(&def.ty, ty) {
                return Err(OpenProblem::Query(format!(
                    "parameter \"{name}\" is declared {} but PostgreSQL expects {} there (cast the placeholder in the query, e.g. :{name}::{})",
                    def.ty.as_str(),
                    ty.name(),
                    match def.ty {
                        ParamType::Integer { .. } => "int8",
                        ParamType::Date => "date",
                        _ => "text",
                    }
                )));
            }
        }
        let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
        let columns = match_columns(&names, &self.fields)?;
        for (field, &col) in self.fields.iter().zip(&columns) {
            let ty = statement.columns()[col].type_();
            if !column_fits(field.ty, ty) {
                return Err(OpenProblem::Field(
                    self.fields.iter().position(|f| f.name == field.name).unwrap_or(0),
                    format!(
                        "field \"{}\" is declared {} but the query yields PostgreSQL type {} (change the field's type or cast the column in the query)",
                        field.name,
                        field.ty.as_str(),
                        ty.name()
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
                tracing::warn!(dataset = %self.dataset, %detail, "postgres: cannot connect");
                return Err(FetchError::Unavailable);
            }
            Err(PoolError::Connect(ConnectFailure::Definition(problem))) => {
                tracing::error!(dataset = %self.dataset, ?problem, "postgres: the query no longer fits the dataset's declarations");
                return Err(FetchError::QueryFailed);
            }
        };
        let Some(columns) = self.columns.get() else {
            return Err(FetchError::QueryFailed); // set by the connect above
        };
        let mut values = Vec::with_capacity(self.order.len());
        for name in &self.order {
            values.push(PgParam(
                params.get(name).cloned().unwrap_or(ParamValue::Null),
            ));
        }
        conn.set_busy(true);
        let outcome = tokio::time::timeout_at(
            deadline.into(),
            self.read(&conn, &values, columns, limits.max_rows),
        )
        .await;
        let failure = match outcome {
            Ok(Ok(rows)) => {
                conn.last_used = Instant::now();
                conn.set_busy(false);
                return Ok(rows);
            }
            Ok(Err(f)) => f,
            Err(_) => Failure::Deadline,
        };
        match failure {
            Failure::Db(e) => {
                tracing::warn!(dataset = %self.dataset, error = %e, "postgres: query failed");
                let fetch = map_error(&e, limits);
                if conn.client.is_closed() || fetch == FetchError::Unavailable {
                    conn.discard();
                } else {
                    // The server reported the error and ended the query: the connection is in sync.
                    conn.set_busy(false);
                }
                Err(fetch)
            }
            Failure::BadValue(detail) => {
                tracing::warn!(dataset = %self.dataset, %detail, "postgres: value does not fit the declared field type");
                self.resync_in_background(conn);
                Err(FetchError::QueryFailed)
            }
            Failure::TooManyRows => {
                self.resync_in_background(conn);
                Err(FetchError::TooManyRows {
                    limit: limits.max_rows,
                })
            }
            Failure::Deadline => {
                tracing::warn!(dataset = %self.dataset, after_ms = limits.timeout.as_millis() as u64, "postgres: deadline passed; cancelling the query");
                self.resync_in_background(conn);
                Err(timeout)
            }
        }
    }

    async fn read(
        &self,
        conn: &PgConn,
        values: &[PgParam],
        columns: &[usize],
        max_rows: u64,
    ) -> Result<Rows, Failure> {
        let mut stream = Box::pin(
            conn.client
                .query_raw(
                    &conn.statement,
                    values.iter().map(|v| v as &(dyn ToSql + Sync)),
                )
                .await
                .map_err(Failure::Db)?,
        );
        let types: Vec<Type> = conn
            .statement
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        let mut rows = Vec::new();
        while let Some(row) = next(&mut stream).await {
            let row = row.map_err(Failure::Db)?;
            if rows.len() as u64 >= max_rows {
                return Err(Failure::TooManyRows);
            }
            let mut out = Vec::with_capacity(self.fields.len());
            for (field, &col) in self.fields.iter().zip(columns) {
                let raw: RawCell = row.try_get(col).map_err(Failure::Db)?;
                out.push(decode(field, &types[col], raw.0).map_err(Failure::BadValue)?);
            }
            rows.push(out);
        }
        Ok(Rows {
            fields: self.fields.iter().map(|f| f.name.clone()).collect(),
            rows,
        })
    }

    /// Cancel whatever the connection is running and wait until it answers again; only then does
    /// it go back to the pool. Runs after the fetch has returned its error, so the requester does
    /// not wait for the server; the connection counts against the pool until it is done.
    fn resync_in_background(&self, mut conn: Pooled<PgConn>) {
        let dataset = self.dataset.clone();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let token = conn.client.cancel_token();
            let cancelled = match tls {
                None => tokio::time::timeout(RESYNC, token.cancel_query(NoTls)).await,
                Some(tls) => tokio::time::timeout(RESYNC, token.cancel_query(tls)).await,
            };
            if !matches!(cancelled, Ok(Ok(()))) {
                tracing::warn!(%dataset, "postgres: cancel request failed; closing the connection");
                conn.discard();
                return;
            }
            // Responses come in order: once this empty query answers, the cancelled one is over.
            match tokio::time::timeout(RESYNC, conn.client.simple_query("")).await {
                Ok(Ok(_)) if !conn.client.is_closed() => conn.set_busy(false),
                _ => conn.discard(),
            }
        });
    }
}

impl Source for PostgresSource {
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
            let conn = match self
                .pool
                .get(deadline, |c| !c.client.is_closed(), || self.connect())
                .await
            {
                Ok(c) => c,
                Err(PoolError::Timeout) => return Err(FetchError::Timeout { after: timeout }),
                Err(PoolError::Connect(ConnectFailure::Unreachable(detail))) => {
                    tracing::warn!(dataset = %self.dataset, %detail, "postgres: not ready");
                    return Err(FetchError::Unavailable);
                }
                Err(PoolError::Connect(ConnectFailure::Definition(problem))) => {
                    tracing::error!(dataset = %self.dataset, ?problem, "postgres: the query no longer fits the dataset's declarations");
                    return Err(FetchError::QueryFailed);
                }
            };
            match tokio::time::timeout_at(deadline.into(), conn.client.simple_query("")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    tracing::warn!(dataset = %self.dataset, error = %e, "postgres: not ready");
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

enum Failure {
    Db(tokio_postgres::Error),
    BadValue(String),
    TooManyRows,
    Deadline,
}

async fn next(
    stream: &mut Pin<Box<RowStream>>,
) -> Option<Result<tokio_postgres::Row, tokio_postgres::Error>> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

fn spawn_connection<S, T>(dataset: &str, connection: tokio_postgres::Connection<S, T>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let dataset = dataset.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%dataset, error = %e, "postgres: connection closed");
        }
    });
}

fn unreachable(e: tokio_postgres::Error) -> ConnectFailure {
    ConnectFailure::Unreachable(e.to_string())
}

/// Server states that say "this connection or server cannot serve you now", not "your SQL is wrong".
fn is_connection_state(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("28") // invalid authorization
        || c.starts_with("53") // insufficient resources
        || c.starts_with("57") // operator intervention (shutdown, terminated, cancelled)
        || c.starts_with("58") // system error
        || c == "3D000" // database does not exist
}

fn map_error(e: &tokio_postgres::Error, limits: Limits) -> FetchError {
    if e.is_closed() {
        return FetchError::Unavailable;
    }
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => FetchError::Timeout {
            after: limits.timeout,
        },
        Some(c) if is_connection_state(c) => FetchError::Unavailable,
        Some(_) => FetchError::QueryFailed,
        // No SQLSTATE: an I/O or protocol error on the connection.
        None if e.source().is_some_and(|s| s.is::<std::io::Error>()) => FetchError::Unavailable,
        None => FetchError::QueryFailed,
    }
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || (ty.name() == "citext" && matches!(ty.kind(), Kind::Simple))
}

fn param_fits(declared: &ParamType, ty: &Type) -> bool {
    match declared {
        ParamType::String { .. } | ParamType::Enum { .. } => is_text(ty),
        ParamType::Integer { .. } => matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8),
        ParamType::Date => *ty == Type::DATE || is_text(ty),
    }
}

fn column_fits(declared: FieldType, ty: &Type) -> bool {
    match declared {
        FieldType::String => is_text(ty) || *ty == Type::UUID,
        FieldType::Integer => matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC),
        FieldType::Float => matches!(
            *ty,
            Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC | Type::INT2 | Type::INT4 | Type::INT8
        ),
        FieldType::Boolean => *ty == Type::BOOL,
        FieldType::Date => *ty == Type::DATE || is_text(ty),
        FieldType::Datetime => matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ) || is_text(ty),
    }
}

/// A bound parameter, encoded for whatever type the server inferred (checked at open).
#[derive(Debug)]
struct PgParam(ParamValue);

impl ToSql for PgParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match &self.0 {
            ParamValue::Null => Ok(IsNull::Yes),
            ParamValue::Text(s) => s.as_str().to_sql(ty, out),
            ParamValue::Integer(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            ParamValue::Date(s) if *ty == Type::DATE => {
                let days = civil::parse_date(s).ok_or("invalid date")?
                    - civil::days_from_civil(2000, 1, 1);
                i32::try_from(days)?.to_sql(&Type::INT4, out)
            }
            ParamValue::Date(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true // which types fit was checked against the statement when the source opened
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A column's raw binary value, decoded by [`decode`] with the declared field type in hand.
struct RawCell<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawCell<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawCell(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawCell(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL binary format to the declared JSON type.
fn decode(field: &FieldDef, ty: &Type, raw: Option<&[u8]>) -> Result<Value, String> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let bad = |what: &str| format!("field {}: {what} ({})", field.name, ty.name());
    let int = |raw: &[u8]| -> Result<i64, String> {
        Ok(match raw.len() {
            2 => i64::from(i16::from_be_bytes([raw[0], raw[1]])),
            4 => i64::from(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])),
            8 => i64::from_be_bytes(raw.try_into().map_err(|_| bad("bad integer"))?),
            _ => return Err(bad("bad integer")),
        })
    };
    let text = |raw: &[u8]| {
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| bad("text is not UTF-8"))
    };
    Ok(match (field.ty, ty.clone()) {
        (FieldType::Integer, Type::INT2 | Type::INT4 | Type::INT8) => Value::from(int(raw)?),
        (FieldType::Float, Type::INT2 | Type::INT4 | Type::INT8) => Value::from(int(raw)? as f64),
        (FieldType::Float, Type::FLOAT4) => {
            let f = f32::from_be_bytes(raw.try_into().map_err(|_| bad("bad float4"))?);
            serde_json::Number::from_f64(f64::from(f))
                .map(Value::Number)
                .ok_or_else(|| bad("not finite"))?
        }
        (FieldType::Float, Type::FLOAT8) => {
            let f = f64::from_be_bytes(raw.try_into().map_err(|_| bad("bad float8"))?);
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| bad("not finite"))?
        }
        (FieldType::Integer | FieldType::Float, Type::NUMERIC) => {
            let s = numeric_to_string(raw).ok_or_else(|| bad("bad or non-finite numeric"))?;
            if field.ty == FieldType::Integer {
                Value::from(
                    s.parse::<i64>()
                        .map_err(|_| bad("numeric is not an integer in i64 range"))?,
                )
            } else {
                let f: f64 = s.parse().map_err(|_| bad("numeric out of float range"))?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| bad("not finite"))?
            }
        }
        (FieldType::Boolean, Type::BOOL) => Value::Bool(raw.first().is_some_and(|b| *b != 0)),
        (FieldType::Date, Type::DATE) => {
            let days = int(raw)?;
            if days == i64::from(i32::MAX) || days == i64::from(i32::MIN) {
                return Err(bad("infinite date"));
            }
            Value::String(
                civil::format_date(days + civil::days_from_civil(2000, 1, 1))
                    .ok_or_else(|| bad("date out of range"))?,
            )
        }
        (FieldType::Datetime, Type::TIMESTAMP | Type::TIMESTAMPTZ) => {
            let micros = int(raw)?;
            if micros == i64::MAX || micros == i64::MIN {
                return Err(bad("infinite timestamp"));
            }
            let epoch_2000 = civil::days_from_civil(2000, 1, 1) * 86_400_000_000;
            Value::String(
                civil::format_timestamp_micros(
                    micros.saturating_add(epoch_2000),
                    *ty == Type::TIMESTAMPTZ,
                )
                .ok_or_else(|| bad("timestamp out of range"))?,
            )
        }
        (FieldType::String, Type::UUID) => {
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            if hex.len() != 32 {
                return Err(bad("bad uuid"));
            }
            Value::String(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        (FieldType::Date, t) if is_text(&t) => {
            let s = text(raw)?;
            if !crate::params::is_date(&s) {
                return Err(bad("text is not a YYYY-MM-DD date"));
            }
            Value::String(s)
        }
        (FieldType::String | FieldType::Datetime, t) if is_text(&t) => Value::String(text(raw)?),
        _ => return Err(bad("type does not fit the declared field type")),
    })
}

/// PostgreSQL's binary NUMERIC as a decimal string; `None` for NaN, infinities or garbage.
fn numeric_to_string(raw: &[u8]) -> Option<String> {
    let word =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*raw.get(i)?, *raw.get(i + 1)?])) };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    if sign != 0x0000 && sign != 0x4000 {
        return None;
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    if digits.iter().any(|d| *d > 9999) {
        return None;
    }
    // Integer part: base-10000 digits with index 0..=weight.
    let mut int = String::new();
    for i in 0..=weight.max(-1) {
        let d = digits.get(i as usize).copied().unwrap_or(0);
        if int.is_empty() {
            if d != 0 {
                int = d.to_string();
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut i = weight + 1;
    while frac.len() < dscale {
        let d = if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        i += 1;
    }
    frac.truncate(dscale);
    let negative = sign == 0x4000 && (int != "0" || frac.chars().any(|c| c != '0'));
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

/// `MakeTlsConnect` over tokio-rustls: verify-full against the dataset's `ca_file`.
#[derive(Clone)]
struct RustlsMake(Arc<rustls::ClientConfig>);

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
}

/// A TLS stream to PostgreSQL (no channel binding).
pub(crate) struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl MakeTlsConnect<Socket> for RustlsMake {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: Arc::clone(&self.0),
            server_name: rustls::pki_types::ServerName::try_from(domain.to_owned())?,
        })
    }
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, std::io::Error>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            connector
                .connect(self.server_name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::numeric_to_string;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_binary_to_decimal() {
        assert_eq!(
            numeric_to_string(&numeric(2, 1, 0, 0, &[1, 2345])).as_deref(),
            Some("12345")
        );
        assert_eq!(
            numeric_to_string(&numeric(2, 0, 0x4000, 2, &[12, 3400])).as_deref(),
            Some("-12.34")
        );
        assert_eq!(
            numeric_to_string(&numeric(1, -1, 0, 5, &[50])).as_deref(),
            Some("0.00500")
        );
        assert_eq!(
            numeric_to_string(&numeric(0, 0, 0, 0, &[])).as_deref(),
            Some("0")
        );
        assert_eq!(
            numeric_to_string(&numeric(1, 2, 0, 0, &[7])).as_deref(),
            Some("700000000")
        );
        assert_eq!(
            numeric_to_string(&numeric(0, 0, 0xC000, 0, &[])),
            None,
            "NaN"
        );
    }
}
