//! The consumer side: an application asks its own gateway, which signs an envelope, asks the
//! provider, verifies the provider's receipt, notarizes its own entry naming that receipt, and only
//! then answers the application.
//!
//! Like the provider's pipeline, a request is a value going down a stack of stages, each in its own
//! file and each returning a typed [`ConsumerError`] that only [`answer`] turns into a response.
//! Top to bottom as [`handle`] runs them:
//! 1. [`authenticate`]: who is asking, the registered application from its client certificate and
//!    the officer from a verified token ([`crate::callers`]); the host and content type.
//! 2. [`check`]: a well-formed request, free of control characters, whose case is a short
//!    reference and legal basis a code (no free text enters a ledger), for a provider the directory
//!    lists, and an officer with the role its purpose requires.
//! 3. [`authorize`]: the department's own outbound rules; a refusal is notarized here and never
//!    reaches the provider.
//! 4. [`seal`]: the envelope, with the officer tagged and the application named, encoded and signed.
//! 5. [`send`]: to the provider, over whichever transport is configured.
//! 6. [`receipt`]: the provider's receipt verifies and names this very exchange.
//! 7. [`notarize`]: this gateway's own entry, durable before anything is released.
//! 8. [`answer`]: the application's answer, or the refusal.
//!
//! The stages are plain functions, not `tower` services: nothing here is shared between requests
//! but the context, and one request runs them in order.

pub mod answer;
pub mod authenticate;
pub mod authorize;
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
use crate::directory::LiveDirectory;
use crate::identity::{DeptId, TagKey};
use crate::rate_limits::RateLimits;
use crate::transport::client::PeerError;
use crate::transport::peer::PeerTransport;
use crate::transport::server::Call;
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
    /// Legal basis: a code the provider's grant lists, or empty
    /// ([`causeway_policy::references::CODE_PATTERN`]).
    pub legal_basis: String,
    /// Case reference: a short reference, or empty ([`causeway_policy::references::CASE_PATTERN`]).
    #[serde(default)]
    pub case: String,
    /// No longer accepted: the officer is proven by a bearer token, never named in the body.
    #[serde(default)]
    pub officer: Option<serde::de::IgnoredAny>,
}

/// Everything the consumer side needs.
#[derive(Clone)]
pub struct ConsumerContext {
    /// This department.
    pub me: DeptId,
    /// Signs our envelopes (those ready together share one signature).
    pub signer: Arc<super::signer::EnvelopeSigner>,
    /// The directory.
    pub directory: Arc<LiveDirectory>,
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
    /// Who may call the client API, and what each application may ask.
    pub callers: Arc<crate::callers::Callers>,
    /// Each application's and each officer's budget of requests and notarized refusals.
    pub rate_limits: CallerLimits,
}

/// The budgets of the client API's callers ([`crate::rate_limits`]).
#[derive(Clone)]
pub struct CallerLimits {
    /// Per application (by id): requests, and refusals by the outbound rules.
    pub applications: Arc<RateLimits>,
    /// Per officer (by keyed tag): requests.
    pub officers: Arc<RateLimits>,
}

/// Why the consumer side did not answer with the provider's data; [`answer::refuse`] maps each to a
/// status and a stable code (docs/PROTOCOL.md).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The caller is not admitted (host, content type, certificate, application, token).
    #[error(transparent)]
    Caller(#[from] crate::callers::CallerError),
    /// The application's request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The application or the officer used up its budget of requests for this window.
    #[error("too many requests from this {0} in this window; slow down")]
    RateLimited(&'static str),
    /// The application used up its budget of notarized refusals: further ones are only counted.
    #[error("too many requests refused by this department's outbound rules in this window; the rest are counted, not notarized one by one")]
    TooManyRefusals,
    /// A text field holds control or bidirectional-control characters.
    #[error(
        "`{0}` holds control or bidirectional-control characters, which are refused in every field"
    )]
    ControlCharacters(String),
    /// The case is not a short reference, or the legal basis not a code: free text would be kept
    /// for ever in both ledgers, so the request is refused before anything is notarized or sent.
    #[error(transparent)]
    NotAReference(#[from] causeway_policy::NotAReference),
    /// The department's outbound rules do not let this application ask this; the refusal is
    /// notarized in this gateway's ledger and the provider never hears of it.
    #[error("application {application} may not ask {provider} for {dataset} for {purpose} under this department's outbound rules (refusal notarized as log entry {log_index})")]
    Outbound {
        /// The exchange id the refusal was notarized under.
        exchange: uuid::Uuid,
        /// The application.
        application: crate::identity::AppId,
        /// The provider asked.
        provider: DeptId,
        /// The dataset asked for.
        dataset: String,
        /// The purpose given.
        purpose: String,
        /// This gateway's ledger index of the refusal.
        log_index: u64,
    },
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
pub async fn handle(cx: &ConsumerContext, call: &Call) -> ProtocolResponse {
    let answered = async {
        let caller = authenticate::authenticate(cx, call)?;
        let checked = check::check(cx, caller, &call.body)?;
        let checked = authorize::authorize(cx, checked).await?;
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
