//! May this consumer read this dataset for this purpose? Asks the policy set in force.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use causeway_policy::{PolicySet, Request};
use tower::{Layer, Service, ServiceExt};

use super::{Authorized, BoxFuture, ExchangeError, Verified};

/// Adds [`Authorize`].
#[derive(Clone)]
pub struct AuthorizeLayer {
    policies: Arc<RwLock<Arc<PolicySet>>>,
}

impl AuthorizeLayer {
    /// Decide with whatever set is in force at the time of each request.
    pub fn new(policies: Arc<RwLock<Arc<PolicySet>>>) -> Self {
        AuthorizeLayer { policies }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            policies: self.policies.clone(),
        }
    }
}

/// Applies the policy decision: a denial stops here, as [`ExchangeError::Denied`].
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    policies: Arc<RwLock<Arc<PolicySet>>>,
}

impl<S, R> Service<Verified> for Authorize<S>
where
    S: Service<Authorized, Response = R, Error = ExchangeError> + Clone + Send + 'static,
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
        // One snapshot per request: a reload never changes a decision halfway.
        let set = self.policies.read().expect("policy lock poisoned").clone();
        let env = &verified.envelope;
        let decision = set.decide(&Request {
            consumer: env.consumer.as_str(),
            dataset: &env.dataset,
            purpose: &env.purpose,
            legal_basis: &env.legal_basis,
            case: &env.case,
            params: &env.params,
            at_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
        });
        let inner = self.inner.clone();
        Box::pin(async move {
            if !decision.allowed {
                return Err(ExchangeError::Denied(Box::new(decision)));
            }
            inner.oneshot(Authorized { verified, decision }).await
        })
    }
}
