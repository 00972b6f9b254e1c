//! Does the envelope cite a case reference and a legal-basis code, not free text?
//!
//! The case and the legal basis go into this gateway's ledger entry, into the consumer's (which
//! copies the receipt) and into every oversight replica, for ever. So before anything is notarized
//! the case must match the pattern `purposes.toml` declares for the purpose (by default a short
//! reference) and the legal basis must be a code ([`PolicySet::check_references`]). An envelope
//! that fails is refused with 400 and **no** ledger entry: like a malformed envelope, it is not an
//! exchange, and an entry, even with those fields blanked, would only record that a consumer once
//! sent text that cannot be kept. An honest consumer's gateway refuses such a request itself; one
//! that reaches here needs a purpose pattern narrower than the default, or a consumer that does not
//! check.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use causeway_policy::{PolicySet, Request};
use tower::{Layer, Service, ServiceExt};

use super::{BoxFuture, ExchangeError, ProviderContext, Verified};

/// Adds [`CheckReferences`].
#[derive(Clone)]
pub struct ReferencesLayer {
    policies: Arc<RwLock<Arc<PolicySet>>>,
}

impl ReferencesLayer {
    /// Check against the purposes of whatever set is in force at the time of each request.
    pub fn new(cx: &ProviderContext) -> Self {
        ReferencesLayer {
            policies: cx.policies.clone(),
        }
    }
}

impl<S> Layer<S> for ReferencesLayer {
    type Service = CheckReferences<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CheckReferences {
            inner,
            policies: self.policies.clone(),
        }
    }
}

/// Refuses an envelope whose case or legal basis is not fit for a ledger, as
/// [`ExchangeError::NotAReference`].
#[derive(Clone)]
pub struct CheckReferences<S> {
    inner: S,
    policies: Arc<RwLock<Arc<PolicySet>>>,
}

impl<S, R> Service<Verified> for CheckReferences<S>
where
    S: Service<Verified, Response = R, Error = ExchangeError> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = R;
    type Error = ExchangeError;
    type Future = BoxFuture<Result<R, ExchangeError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, verified: Verified) -> Self::Future {
        // The lock only guards an Arc swap, so a poisoned lock still holds a whole set.
        let set = self
            .policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let env = &verified.envelope;
        let checked = set.check_references(&Request {
            consumer: env.consumer.as_str(),
            dataset: &env.dataset,
            purpose: &env.purpose,
            legal_basis: &env.legal_basis,
            case: &env.case,
            application: env.application.as_ref().map(|a| a.as_str()),
            params: &env.params,
            at_unix: 0,
        });
        let inner = self.inner.clone();
        Box::pin(async move {
            checked?;
            inner.oneshot(verified).await
        })
    }
}
