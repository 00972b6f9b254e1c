//! The `http` adapter: an internal REST service answering JSON, reached with hyper's HTTP/1.1
//! client over a small pool of keep-alive connections, plain or TLS (rustls, optional mTLS).
//!
//! The URL is the dataset's template with each parameter percent-encoded into the path or query;
//! the host never depends on a parameter. The response must be 2xx JSON no larger than
//! `max_body_bytes`; a JSON pointer selects the rows (an array of objects, or one object), and each
//! field is read from its own pointer inside a row and checked against its declared type.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::datasets::{FieldDef, FieldType, HttpSettings};
use crate::error::FetchError;
use crate::params::BoundParams;
use crate::pool::{Pool, PoolError};
use crate::source::{BoxFuture, Limits, OpenProblem, Rows, Source};

/// A stream the HTTP client can run over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An http dataset.
pub(crate) struct HttpSource {
    dataset: String,
    settings: HttpSettings,
    tls: Option<tokio_rustls::TlsConnector>,
    fields: Vec<FieldDef>,
    pool: Pool<SendRequest<Empty<Bytes>>>,
}

/// Why a fetch failed, with the detail for the local log.
enum Failure {
    Unavailable(String),
    QueryFailed(String),
    TooManyRows,
    Deadline,
}

impl HttpSource {
    /// Build the source. Nothing is fetched at open: an upstream has no cheap "prepare", and a
    /// readiness probe ([`Source::check`]) only opens a connection.
    pub(crate) fn open(
        dataset: &str,
        settings: &HttpSettings,
        fields: &[FieldDef],
    ) -> Result<HttpSource, OpenProblem> {
        if let Some(secret) = &settings.bearer {
            secret.read().map_err(OpenProblem::Secret)?;
        }
        let tls = match &settings.tls {
            None => None,
            Some(files) => Some(tokio_rustls::TlsConnector::from(
                crate::tls::client_config(files).map_err(OpenProblem::Connection)?,
            )),
        };
        Ok(HttpSource {
            dataset: dataset.to_owned(),
            settings: settings.clone(),
            tls,
            fields: fields.to_vec(),
            pool: Pool::new(settings.pool_size),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let url = &self.settings.url;
        let tcp = TcpStream::connect((url.host(), url.port()))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(url.host().to_owned())
                    .map_err(|e| format!("TLS server name: {e}"))?;
                Box::new(
                    connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake: {e}"))?,
                )
            }
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        let dataset = self.dataset.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%dataset, error = %e, "http: upstream connection closed");
            }
        });
        Ok(sender)
    }

    async fn run(&self, params: &BoundParams, limits: Limits) -> Result<Rows, FetchError> {
        let deadline = Instant::now() + limits.timeout;
        let mut stale = false;
        let first = self.attempt(params, limits, deadline, &mut stale).await;
        if stale && Instant::now() < deadline {
            // A pooled connection died while idle (server restart, idle timeout): the query is
            // read-only, so running it again on a fresh connection is safe.
            tracing::debug!(dataset = %self.dataset, "http: pooled connection was dead; retrying on a fresh one");
            return self.attempt(params, limits, deadline, &mut stale).await;
        }
        first
    }

    async fn attempt(
        &self,
        params: &BoundParams,
        limits: Limits,
        deadline: Instant,
        stale: &mut bool,
    ) -> Result<Rows, FetchError> {
        let timeout = FetchError::Timeout {
            after: limits.timeout,
        };
        let mut sender = match self
            .pool
            .get(
                deadline,
                |s| !s.is_closed() && s.is_ready(),
                || self.connect(),
            )
            .await
        {
            Ok(s) => s,
            Err(PoolError::Timeout) => return Err(timeout),
            Err(PoolError::Connect(detail)) => {
                tracing::warn!(dataset = %self.dataset, %detail, "http: cannot reach the upstream");
                return Err(FetchError::Unavailable);
            }
        };
        sender.set_busy(true);
        let outcome = tokio::time::timeout_at(
            deadline.into(),
            self.exchange(&mut sender, params, limits.max_rows),
        )
        .await
        .unwrap_or(Err(Failure::Deadline));
        match outcome {
            Ok(rows) => {
                sender.set_busy(false); // the whole body was read: the connection can be reused
                Ok(rows)
            }
            Err(Failure::TooManyRows) => {
                sender.set_busy(false);
                Err(FetchError::TooManyRows {
                    limit: limits.max_rows,
                })
            }
            Err(Failure::Deadline) => {
                tracing::warn!(dataset = %self.dataset, after_ms = limits.timeout.as_millis() as u64, "http: deadline passed");
                sender.discard();
                Err(timeout)
            }
            Err(Failure::Unavailable(detail)) => {
                tracing::warn!(dataset = %self.dataset, %detail, "http: upstream unavailable");
                // Only failures before any answer arrived: the upstream never saw the request, or
                // closed the kept-alive connection as it arrived.
                *stale = !sender.is_fresh()
                    && (detail.starts_with("connection") || detail.starts_with("request"));
                sender.discard();
                Err(FetchError::Unavailable)
            }
            Err(Failure::QueryFailed(detail)) => {
                tracing::warn!(dataset = %self.dataset, %detail, "http: upstream answer unusable");
                sender.discard();
                Err(FetchError::QueryFailed)
            }
        }
    }

    async fn exchange(
        &self,
        sender: &mut SendRequest<Empty<Bytes>>,
        params: &BoundParams,
        max_rows: u64,
    ) -> Result<Rows, Failure> {
        let url = &self.settings.url;
        let path = url.render(|name| params.get(name).and_then(|v| v.as_text()).map(Into::into));
        let mut request = http::Request::get(path)
            .header(http::header::HOST, url.authority())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "causeway");
        if let Some(secret) = &self.settings.bearer {
            let token = secret.read().map_err(Failure::Unavailable)?;
            let mut value =
                http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    Failure::Unavailable("bearer token is not a valid header value".into())
                })?;
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| Failure::QueryFailed(format!("building the request: {e}")))?;
        sender
            .ready()
            .await
            .map_err(|e| Failure::Unavailable(format!("connection: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Unavailable(format!("request: {e}")))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), self.settings.max_body_bytes as usize)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Failure::QueryFailed(format!(
                        "response body larger than max_body_bytes = {}",
                        self.settings.max_body_bytes
                    ))
                } else {
                    Failure::Unavailable(format!("reading the body: {e}"))
                }
            })?
            .to_bytes();
        if status == http::StatusCode::NOT_FOUND {
            // A REST resource that does not exist is no data about that subject, not a failure.
            return Ok(Rows {
                fields: self.fields.iter().map(|f| f.name.clone()).collect(),
                rows: Vec::new(),
            });
        }
        if !status.is_success() {
            let detail = format!("upstream answered {status}");
            return Err(
                if status.is_server_error()
                    || status == http::StatusCode::UNAUTHORIZED
                    || status == http::StatusCode::FORBIDDEN
                    || status == http::StatusCode::TOO_MANY_REQUESTS
                {
                    Failure::Unavailable(detail)
                } else {
                    Failure::QueryFailed(detail)
                },
            );
        }
        let document: Value = serde_json::from_slice(&body)
            .map_err(|e| Failure::QueryFailed(format!("response is not JSON: {e}")))?;
        rows_from(
            &document,
            &self.settings.rows,
            &self.settings.paths,
            &self.fields,
            max_rows,
        )
    }
}

/// Select the rows with `rows_pointer` and read each field with its pointer.
fn rows_from(
    document: &Value,
    rows_pointer: &str,
    paths: &[String],
    fields: &[FieldDef],
    max_rows: u64,
) -> Result<Rows, Failure> {
    let selected = document.pointer(rows_pointer).ok_or_else(|| {
        Failure::QueryFailed(format!("response has nothing at rows = \"{rows_pointer}\""))
    })?;
    let items: Vec<&Value> = match selected {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![selected],
        Value::Null => Vec::new(),
        _ => {
            return Err(Failure::QueryFailed(format!(
                "rows = \"{rows_pointer}\" is neither an array, an object nor null"
            )))
        }
    };
    if items.len() as u64 > max_rows {
        return Err(Failure::TooManyRows);
    }
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        if !item.is_object() {
            return Err(Failure::QueryFailed("a row is not a JSON object".into()));
        }
        let mut row = Vec::with_capacity(fields.len());
        for (field, path) in fields.iter().zip(paths) {
            let v = item.pointer(path).cloned().unwrap_or(Value::Null);
            row.push(check_value(field, v).map_err(Failure::QueryFailed)?);
        }
        rows.push(row);
    }
    Ok(Rows {
        fields: fields.iter().map(|f| f.name.clone()).collect(),
        rows,
    })
}

fn check_value(field: &FieldDef, v: Value) -> Result<Value, String> {
    let fits = match (&v, field.ty) {
        (Value::Null, _) => true,
        (Value::String(_), FieldType::String | FieldType::Datetime) => true,
        (Value::String(s), FieldType::Date) => crate::params::is_date(s),
        (Value::Number(n), FieldType::Integer) => n.is_i64(),
        (Value::Number(_), FieldType::Float) => true,
        (Value::Bool(_), FieldType::Boolean) => true,
        _ => false,
    };
    if fits {
        Ok(v)
    } else {
        Err(format!(
            "field {}: upstream value does not fit the declared type {}",
            field.name,
            field.ty.as_str()
        ))
    }
}

impl Source for HttpSource {
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
            match self
                .pool
                .get(
                    deadline,
                    |s| !s.is_closed() && s.is_ready(),
                    || self.connect(),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(PoolError::Timeout) => Err(FetchError::Timeout { after: timeout }),
                Err(PoolError::Connect(detail)) => {
                    tracing::warn!(dataset = %self.dataset, %detail, "http: not ready");
                    Err(FetchError::Unavailable)
                }
            }
        })
    }
}
