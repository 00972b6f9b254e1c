//! The edge of the pipeline: every outcome and every error becomes a protocol response here, and
//! only here. Codes are stable and documented in docs/PROTOCOL.md; messages never carry SQL,
//! paths, hostnames or personal data. A decision is answered with what the consumer may be told
//! ([`Decision::told`]), never its full explanation: no request value, no grant's lists, and a
//! deny rule only to a consumer that a grant would otherwise have allowed.

use std::borrow::Cow;
use std::convert::Infallible;
use std::task::{Context, Poll};

use causeway_policy::Decision;
use serde::Serialize;
use serde_json::json;
use tower::{Layer, Service};

use super::envelope::EnvelopeError;
use super::{BoxFuture, ExchangeError, Inbound, Notarized, Outcome, ProtocolResponse};
pub use crate::transport::json_response;
use causeway_ledger::receipt::Receipt;

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
    S: Service<Inbound, Response = Notarized, Error = ExchangeError> + Send + 'static,
    S::Future: Send,
{
    type Response = ProtocolResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<ProtocolResponse, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The stages below are always ready; were one not, its call would answer the request.
        self.inner.poll_ready(cx).map(|_| Ok(()))
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let answer = self.inner.call(inbound);
        Box::pin(async move {
            Ok(match answer.await {
                Ok(notarized) => respond(notarized),
                Err(e) => refuse(&e),
            })
        })
    }
}

/// The provider's answer body, serialized straight from the outcome with no JSON tree in between
/// (its keys in the alphabetical order a `serde_json` map would write them in).
#[derive(Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<DecisionBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody<'a>>,
    exchange: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [String]>,
    receipt: &'a Receipt,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<&'a [Vec<serde_json::Value>]>,
}

/// A policy decision as answers show it: what the consumer may be told.
#[derive(Serialize)]
struct DecisionBody<'a> {
    allowed: bool,
    message: &'a str,
    policy: &'a str,
    reason: &'static str,
    rule: Option<String>,
}

impl<'a> From<&'a Decision> for DecisionBody<'a> {
    fn from(d: &'a Decision) -> Self {
        let told = d.told();
        DecisionBody {
            allowed: d.allowed,
            message: told.message,
            policy: &d.policy_hash,
            reason: told.code.as_str(),
            rule: told.rule.map(|r| format!("{}:{}", r.file, r.line)),
        }
    }
}

/// A stable error code and a message for people.
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: Cow<'a, str>,
}

fn respond(n: Notarized) -> ProtocolResponse {
    let mut answer = Answer {
        decision: None,
        error: None,
        exchange: n.id,
        fields: None,
        receipt: &n.receipt,
        rows: None,
    };
    let status = match &n.outcome {
        Outcome::Released(shaped) => {
            answer.decision = Some((&shaped.authorized.decision).into());
            answer.fields = Some(&shaped.fields);
            answer.rows = Some(&shaped.rows);
            200
        }
        Outcome::Denied(decision) => {
            let told = decision.told();
            answer.decision = Some(decision.into());
            answer.error = Some(ErrorBody {
                code: told.code.as_str(),
                message: Cow::Borrowed(told.message),
            });
            403
        }
        Outcome::Failed(error) => {
            answer.error = Some(ErrorBody {
                code: error.code(),
                message: Cow::Owned(error.to_string()),
            });
            fetch_status(error.code())
        }
    };
    json_response(status, &answer)
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
        ExchangeError::NotAReference(e) => (400, e.code()),
        ExchangeError::TooManyRequests => (429, "too-many-requests"),
        ExchangeError::TooManyDenials => (429, "too-many-denials"),
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
