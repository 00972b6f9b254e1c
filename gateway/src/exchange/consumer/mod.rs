//! The consumer side: an application asks its own gateway, which signs an envelope, asks the
//! provider, verifies the provider's receipt, notarizes its own entry naming that receipt, and only
//! then answers the application.
//!
//! Like the provider's pipeline, a request is a value going down a stack of stages, each in its own
//! file and each returning a typed [`ConsumerError`] that only [`answer`] turns into a response.
//! Top to bottom as [`handle`] runs them:
//! 1. [`check`]: a well-formed request for a provider the directory lists.
//! 2. [`seal`]: the envelope, with the officer tagged, encoded and signed.
//! 3. [`send`]: to the provider, over whichever transport is configured.
//! 4. [`receipt`]: the provider's receipt verifies and names this very exchange.
//! 5. [`notarize`]: this gateway's own entry, durable before anything is released.
//! 6. [`answer`]: the application's answer, or the refusal.
//!
//! The stages are plain functions, not `tower` services: nothing here is shared between requests
//! but the context, and one request runs them in order.

pub mod answer;
pub mod check;
pub mod notarize;
pub mod receipt;
pub mod seal;
pub mod send;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use causeway_ledger::Ledger;
use causeway_ledger::LedgerError;
use serde::Deserialize;

use super::ProtocolResponse;
use crate::directory::Directory;
use crate::identity::{DeptId, TagKey};
use crate::transport::client::PeerError;
use crate::transport::peer::PeerTransport;
pub use receipt::{OpenedCheckpoints, ProviderAnswer};

/// `POST /v1/requests` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    /// Department that holds the data.
    pub provider: String,
    /// Dataset name.
    pub dataset: String,
    /// Query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Purpose.
    pub purpose: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Case reference.
    #[serde(default)]
    pub case: String,
    /// The officer asking (tagged before it leaves this gateway).
    pub officer: String,
}

/// Everything the consumer side needs.
#[derive(Clone)]
pub struct ConsumerContext {
    /// This department.
    pub me: DeptId,
    /// Signs our envelopes (those ready together share one signature).
    pub signer: Arc<super::signer::EnvelopeSigner>,
    /// The directory.
    pub directory: Arc<Directory>,
    /// Connections to providers, over whichever transport is configured.
    pub peers: Arc<PeerTransport>,
    /// Our ledger.
    pub ledger: Arc<Ledger>,
    /// Tag key for officers.
    pub tag_key: TagKey,
    /// How long to wait for a provider.
    pub timeout: Duration,
    /// The last checkpoint each provider signed that verified here.
    pub checkpoints: Arc<OpenedCheckpoints>,
}

/// Why the consumer side did not answer with the provider's data; [`answer::refuse`] maps each to a
/// status and a stable code (docs/PROTOCOL.md).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The application's request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The directory lists no such provider.
    #[error("department {0} is not in the federation directory")]
    UnknownProvider(DeptId),
    /// The provider could not be reached, or did not answer in time.
    #[error(transparent)]
    Provider(#[from] PeerError),
    /// The provider's answer is not JSON.
    #[error("{provider} answered {status} with a body that is not JSON")]
    BadProviderAnswer {
        /// The provider.
        provider: DeptId,
        /// The status it answered with.
        status: u16,
    },
    /// The provider refused before notarizing (authentication, envelope): its reason is passed on.
    #[error("the provider answered {status} without a receipt")]
    RefusedByProvider {
        /// The exchange.
        exchange: uuid::Uuid,
        /// The provider's status.
        status: u16,
        /// The provider's `error` object.
        error: serde_json::Value,
    },
    /// The provider's receipt does not verify, or its entry is not this exchange's.
    #[error("{0}")]
    BadReceipt(String),
    /// This gateway's ledger cannot record the exchange: nothing is released.
    #[error("this gateway's ledger cannot record the exchange, so nothing is released: {0}")]
    Ledger(#[from] LedgerError),
}

/// Handle one application request: the stages in order; the first refusal answers.
pub async fn handle(cx: &ConsumerContext, body: &[u8]) -> ProtocolResponse {
    let answered = async {
        let checked = check::check(cx, body)?;
        let sealed = seal::seal(cx, checked).await?;
        let sent = send::send(cx, &sealed).await?;
        let answer = sent.answer(&sealed)?;
        let receipted = receipt::verify(cx, &sealed, &sent, answer)?;
        let consumer_log_index = notarize::notarize(cx, &sealed, &receipted).await?;
        Ok(answer::answer(
            &sealed,
            &sent,
            receipted,
            consumer_log_index,
        ))
    };
    answered.await.unwrap_or_else(|e| answer::refuse(&e))
}
