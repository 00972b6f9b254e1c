//! The edge of the consumer side: the application's answer once its entry is durable, and every
//! refusal as a status and a stable code (docs/PROTOCOL.md). Only this file builds responses.

use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::receipt::Receipted;
use super::seal::Sealed;
use super::send::Sent;
use super::ConsumerError;
use crate::identity::DeptId;
use crate::transport::client::PeerError;
use crate::transport::{json_response, ProtocolResponse};

/// What the application is told, serialized without a JSON tree in between (its keys in the
/// alphabetical order a `serde_json` map would write them in).
#[derive(Serialize)]
struct Answer<'a> {
    /// The salt of the entries' commitment to the released rows: with the rows and fields it
    /// opens that commitment (`causeway log open`), so the application can prove what it received.
    #[serde(skip_serializing_if = "Option::is_none")]
    commitment_salt: Option<&'a str>,
    consumer_log_index: u64,
    dataset: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
    exchange: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [String]>,
    provider: &'a DeptId,
    receipt: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<&'a [Vec<serde_json::Value>]>,
}

/// The application's answer: the provider's status, its rows and fields if it released any, its
/// receipt as it came, and this gateway's log index.
pub fn answer(
    sealed: &Sealed,
    sent: &Sent,
    receipted: Receipted<'_>,
    consumer_log_index: u64,
) -> ProtocolResponse {
    let released = receipted.released;
    let answer = receipted.answer;
    let body = Answer {
        commitment_salt: released.then_some(sealed.envelope.nonce.as_str()),
        consumer_log_index,
        dataset: &sealed.envelope.dataset,
        decision: answer.decision,
        error: answer.error,
        exchange: sealed.envelope.id,
        fields: released.then_some(&answer.fields[..]),
        provider: &sealed.provider.id,
        receipt: receipted.raw_receipt,
        rows: released.then_some(&answer.rows[..]),
    };
    json_response(sent.status, &body)
}

/// A refusal: the status and code for `error`.
pub fn refuse(error: &ConsumerError) -> ProtocolResponse {
    let (status, code) = match error {
        ConsumerError::Caller(e) => e.status_and_code(),
        ConsumerError::BadRequest(_) => (400, "bad-request"),
        ConsumerError::RateLimited(_) => (429, "rate-limited"),
        ConsumerError::TooManyRefusals => (429, "too-many-refusals"),
        ConsumerError::ControlCharacters(_) => (400, "control-characters"),
        ConsumerError::NotAReference(e) => (400, e.code()),
        ConsumerError::Outbound {
            exchange,
            log_index,
            ..
        } => {
            return json_response(
                403,
                &json!({"exchange": exchange, "consumer_log_index": log_index, "error": {"code": "outbound-denied", "message": error.to_string()}}),
            )
        }
        ConsumerError::UnknownProvider(_) => (404, "unknown-provider"),
        ConsumerError::Provider(PeerError::Timeout(_)) => (504, "provider-timeout"),
        ConsumerError::Provider(_) => (502, "provider-unreachable"),
        ConsumerError::BadProviderAnswer { .. } => (502, "bad-provider-answer"),
        ConsumerError::RefusedByProvider {
            exchange,
            status,
            error,
        } => {
            return json_response(
                *status,
                &json!({"exchange": exchange, "provider_status": status, "error": error}),
            )
        }
        ConsumerError::BadReceipt(_) => (502, "bad-receipt"),
        ConsumerError::Ledger(_) => (503, "ledger-unavailable"),
    };
    json_response(
        status,
        &json!({"error": {"code": code, "message": error.to_string()}}),
    )
}
