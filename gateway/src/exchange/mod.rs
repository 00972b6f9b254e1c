//! The exchange pipeline: a request is a value flowing down a `tower` stack, one layer per concern.
//!
//! Provider side, outermost first (assembled in [`provider_pipeline`]):
//! 1. [`rescue`]: turns every outcome and error into a protocol response (the only layer that does).
//! 2. [`authenticate`]: the peer's department, from its TLS certificate and nothing else.
//! 3. [`verify`]: the envelope's signature against that department's directory key; freshness; replay.
//! 4. [`canonicalize`]: the case a reference matching the purpose's pattern and the legal basis a
//!    code, so that no free text is notarized (refused with no entry otherwise); the parameters
//!    checked against the dataset's declarations and brought to their canonical form, which is
//!    all that the stages below read of them.
//! 5. [`notarize`]: everything below happens inside it; it records the outcome (allowed, denied or
//!    failed) in the ledger, with the canonical subject's tag, and releases nothing until that
//!    entry is durable.
//! 6. [`authorize`]: the policy decision on the canonical parameters, and the rate limit (and the
//!    shadow set's decision, for comparison).
//! 7. [`fetch`]: the dataset's query through its adapter, the canonical parameters bound.
//! 8. [`shape`]: keeps only the rows the row filter admits and the granted fields, masked as the
//!    policy says.
//!
//! Above each of 2, 3 and 5 to 8 an [`observe`] layer opens that stage's span and records its
//! metrics (canonicalizing, a few string checks in memory, runs inside the verify stage's span).
//!
//! Transports (HTTPS/2 today) turn bytes into an [`Inbound`] and a [`ProtocolResponse`] back into
//! bytes; nothing here knows which transport carried a request. The consumer side lives in [`consumer`].

pub mod authenticate;
pub mod authorize;
pub mod canonicalize;
pub mod consumer;
pub mod envelope;
pub mod fetch;
pub mod notarize;
pub mod observe;
pub mod recent;
pub mod rescue;
pub mod shape;
pub mod signer;
pub mod throttle;
pub mod verify;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use causeway_adapters::{Catalog, FetchError};
use causeway_policy::{Decision, PolicySet, RateLimiter};
use rustls_pki_types::CertificateDer;
use tower::{Service, ServiceBuilder};

use crate::directory::LiveDirectory;
use crate::identity::{DeptId, TagKey};
pub use crate::transport::ProtocolResponse;
use canonicalize::CanonicalParams;
use causeway_ledger::{Ledger, LedgerError};
use envelope::Envelope;

/// A boxed future, as every layer returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a transport hands to the pipeline.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The leaf certificate the peer presented in the handshake.
    pub peer_cert: Option<CertificateDer<'static>>,
    /// The envelope signature (header or frame field).
    pub signature: Option<String>,
    /// The envelope's exact bytes.
    pub body: Bytes,
}

/// After [`authenticate`]: we know which department is speaking.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The peer department, from its certificate.
    pub peer: DeptId,
    /// The envelope signature.
    pub signature: Option<String>,
    /// The envelope's exact bytes.
    pub body: Bytes,
}

/// After [`verify`]: a fresh, unreplayed envelope signed by the peer.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The envelope.
    pub envelope: Envelope,
    /// SHA-256 hex of its exact bytes.
    pub request_digest: String,
}

/// After [`canonicalize`]: the verified request and its parameters as the provider reads them.
#[derive(Debug, Clone)]
pub struct Canonicalized {
    /// The verified request, its envelope as received.
    pub verified: Verified,
    /// Its parameters in canonical form: what the decision, the query and the subject tag read.
    pub params: CanonicalParams,
}

/// After [`authorize`]: the policy allowed it.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The verified request.
    pub verified: Verified,
    /// Its parameters in canonical form, as decided on.
    pub params: CanonicalParams,
    /// The allowing decision.
    pub decision: Decision,
}

/// After [`fetch`]: the source's rows, not yet shaped.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The authorized request.
    pub authorized: Authorized,
    /// Everything the query returned.
    pub rows: causeway_adapters::Rows,
}

/// After [`shape`]: exactly what may leave.
#[derive(Debug, Clone)]
pub struct Shaped {
    /// The authorized request.
    pub authorized: Authorized,
    /// Released field names, in grant order.
    pub fields: Vec<String>,
    /// Released rows, masked.
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// What [`notarize`] hands up: the outcome and the durable receipt for it.
#[derive(Debug)]
pub struct Notarized {
    /// The exchange id.
    pub id: uuid::Uuid,
    /// What happened.
    pub outcome: Outcome,
    /// The provider's receipt for the ledger entry.
    pub receipt: causeway_ledger::receipt::Receipt,
}

/// The three recorded outcomes of an authenticated, verified request.
#[derive(Debug)]
pub enum Outcome {
    /// Allowed and fetched: the data leaves.
    Released(Box<Shaped>),
    /// The policy said no.
    Denied(Decision),
    /// Allowed, but the source failed.
    Failed(FetchError),
}

/// Errors layers return; [`rescue`] maps each to a status and a stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// No or unusable client identity.
    #[error("{0}")]
    Unauthenticated(String),
    /// The envelope is malformed or its signature does not verify.
    #[error(transparent)]
    Envelope(#[from] envelope::EnvelopeError),
    /// The envelope names another consumer than the certificate, or another provider than us.
    #[error("{0}")]
    Misaddressed(String),
    /// Issued too long ago or in the future.
    #[error("the envelope was issued {skew_secs} s away from this gateway's clock (limit {limit_secs} s); check the clocks")]
    Stale {
        /// Distance from our clock.
        skew_secs: i64,
        /// The limit.
        limit_secs: u64,
    },
    /// Seen before.
    #[error("the envelope {0} was already received; envelopes are single use")]
    Replayed(uuid::Uuid),
    /// The case is not a reference matching the purpose's pattern, or the legal basis not a code:
    /// refused before anything is notarized.
    #[error(transparent)]
    NotAReference(#[from] causeway_policy::NotAReference),
    /// The policy said no (carried up to [`notarize`]). Its text is what the consumer may be told.
    #[error("denied: {}", .0.told().message)]
    Denied(Box<Decision>),
    /// The source failed (carried up to [`notarize`]).
    #[error("fetch failed: {error}")]
    Fetch {
        /// What failed.
        error: FetchError,
        /// The allowing decision, for the record.
        decision: Box<Decision>,
    },
    /// The consumer department used up its budget of decisions: refused without one, counted.
    #[error("too many requests from this department in this window; slow down")]
    TooManyRequests,
    /// The consumer department used up its budget of notarized denials: refused, counted.
    #[error("too many denied requests from this department in this window; the rest are counted, not answered")]
    TooManyDenials,
    /// The ledger could not record it: nothing is released.
    #[error("the ledger cannot record this exchange, so no data is released: {0}")]
    Ledger(#[from] LedgerError),
}

/// Everything the provider side needs, shared by all requests.
#[derive(Clone)]
pub struct ProviderContext {
    /// This gateway's department.
    pub me: DeptId,
    /// The federation directory.
    pub directory: Arc<LiveDirectory>,
    /// This gateway's ledger.
    pub ledger: Arc<Ledger>,
    /// The policy set in force (swapped atomically on reload).
    pub policies: Arc<RwLock<Arc<PolicySet>>>,
    /// Request counters for the grants' rate limits; lives as long as the gateway, across reloads.
    pub limiter: Arc<RateLimiter>,
    /// A candidate policy set decided beside the active one, if configured (`policies_shadow`).
    pub shadow: Option<Arc<crate::policy_reload::ShadowPolicies>>,
    /// The datasets this gateway serves.
    pub catalog: Arc<Catalog>,
    /// This department's tag key, for the subject tags it writes.
    pub tag_key: TagKey,
    /// This department's own pseudonym key, for `hash` masks.
    pub pseudonyms: causeway_policy::PseudonymKey,
    /// Largest accepted envelope clock skew.
    pub max_skew_secs: u64,
    /// Envelopes already seen.
    pub replay: Arc<verify::ReplayCache>,
    /// Batch signatures that already verified (one Ed25519 check per consumer batch).
    pub batches: Arc<envelope::VerifiedBatches>,
    /// This gateway's metrics.
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// Each consumer department's budget of decisions and notarized denials.
    pub rate_limits: Arc<crate::rate_limits::RateLimits>,
}

/// The provider pipeline, top to bottom as it runs.
pub fn provider_pipeline(
    cx: &ProviderContext,
) -> impl Service<
    Inbound,
    Response = ProtocolResponse,
    Error = Infallible,
    Future = BoxFuture<Result<ProtocolResponse, Infallible>>,
> + Clone
       + Send
       + 'static {
    use observe::{
        AuthenticateStage, AuthorizeStage, FetchStage, NotarizeStage, ObserveLayer, ShapeStage,
        VerifyStage,
    };
    let m = &cx.metrics;
    ServiceBuilder::new()
        .layer(rescue::RescueLayer)
        .layer(ObserveLayer::new(AuthenticateStage, m))
        .layer(authenticate::AuthenticateLayer::new(cx.directory.clone()))
        .layer(ObserveLayer::new(VerifyStage, m))
        .layer(verify::VerifyLayer::new(cx))
        .layer(canonicalize::CanonicalizeLayer::new(cx))
        .layer(ObserveLayer::new(NotarizeStage, m))
        .layer(notarize::NotarizeLayer::new(cx))
        .layer(ObserveLayer::new(AuthorizeStage, m))
        .layer(authorize::AuthorizeLayer::new(cx))
        .layer(ObserveLayer::new(FetchStage, m))
        .layer(fetch::FetchLayer::new(cx.catalog.clone()))
        .layer(ObserveLayer::new(ShapeStage, m))
        .service(shape::Shape::new(cx.pseudonyms.clone()))
}
