//! The edge of the pipeline: every outcome and every error becomes a protocol response here, and
//! only here. Codes are stable and documented in docs/PROTOCOL.md; messages never carry SQL,
//! paths, hostnames or personal data.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use causeway_policy::Decision;
use serde_json::json;
use tower::{Layer, Service, ServiceExt};

use super::envelope::EnvelopeError;
use super::{BoxFuture, ExchangeError, Inbound, Notarized, Outcome, ProtocolResponse};

/// Adds [`Rescue`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RescueLayer;

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Rescue { inner }
    }
}

/// Turns the pipeline's result into a status and JSON body.
#[derive(Clone)]
pub struct Rescue<S> {
    inner: S,
}

impl<S> Service<Inbound> for Rescue<S>
where
    S: Service<Inbound, Response = Notarized, Error = ExchangeError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = ProtocolResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<ProtocolResponse, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            Ok(match inner.oneshot(inbound).await {
                Ok(notarized) => respond(notarized),
                Err(e) => refuse(&e),
            })
        })
    }
}

fn decision_json(d: &Decision) -> serde_json::Value {
    json!({
        "allowed": d.allowed,
        "reason": d.reason.code.as_str(),
        "message": d.reason.message,
        "rule": d.rule.as_ref().map(|r| format!("{}:{}", r.file, r.line)),
        "policy": d.policy_hash,
    })
}

fn respond(n: Notarized) -> ProtocolResponse {
    let (status, body) = match &n.outcome {
        Outcome::Released(shaped) => (
            200,
            json!({
                "exchange": n.id,
                "decision": decision_json(&shaped.authorized.decision),
                "fields": shaped.fields,
                "rows": shaped.rows,
                "receipt": n.receipt,
            }),
        ),
        Outcome::Denied(decision) => (
            403,
            json!({
                "exchange": n.id,
                "error": { "code": decision.reason.code.as_str(), "message": decision.reason.message },
                "decision": decision_json(decision),
                "receipt": n.receipt,
            }),
        ),
        Outcome::Failed(error) => (
            fetch_status(error.code()),
            json!({
                "exchange": n.id,
                "error": { "code": error.code(), "message": error.to_string() },
                "receipt": n.receipt,
            }),
        ),
    };
    json_response(status, &body)
}

/// HTTP status of each adapter error code.
fn fetch_status(code: &str) -> u16 {
    match code {
        "bad-parameter" => 400,
        "unknown-dataset" => 404,
        "too-many-rows" => 422,
        "timeout" => 504,
        "unavailable" => 503,
        _ => 502,
    }
}

/// The status and stable code of an error that stopped the exchange before or at notarization.
pub fn error_code(e: &ExchangeError) -> (u16, &'static str) {
    match e {
        ExchangeError::Unauthenticated(_) => (401, "unauthenticated"),
        ExchangeError::Envelope(EnvelopeError::TooLarge) => (413, "envelope-too-large"),
        ExchangeError::Envelope(EnvelopeError::Malformed(_)) => (400, "bad-envelope"),
        ExchangeError::Envelope(_) => (401, "bad-signature"),
        ExchangeError::Misaddressed(_) => (403, "misaddressed"),
        ExchangeError::Stale { .. } => (401, "stale-envelope"),
        ExchangeError::Replayed(_) => (409, "replayed-envelope"),
        ExchangeError::Ledger(_) => (503, "ledger-unavailable"),
        ExchangeError::Denied(_) | ExchangeError::Fetch { .. } => (500, "internal"),
    }
}

fn refuse(e: &ExchangeError) -> ProtocolResponse {
    let (status, code) = error_code(e);
    if status >= 500 {
        tracing::error!(code, error = %e, "exchange refused");
    } else {
        tracing::warn!(code, error = %e, "exchange refused");
    }
    json_response(
        status,
        &json!({ "error": { "code": code, "message": e.to_string() } }),
    )
}

/// A JSON protocol response.
pub fn json_response(status: u16, body: &serde_json::Value) -> ProtocolResponse {
    ProtocolResponse {
        status,
        body: Bytes::from(serde_json::to_vec(body).expect("JSON values always serialize")),
    }
}
