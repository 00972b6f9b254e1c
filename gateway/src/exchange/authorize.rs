//! May this consumer read this dataset for this purpose? Asks the policy set in force, then the
//! rate limiter; a shadow candidate set, if configured, decides beside it without counting. Both
//! decide on the canonical parameters ([`super::canonicalize`]), never the envelope's spelling.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use causeway_policy::{PolicySet, RateLimiter, Request};
use tower::{Layer, Service, ServiceExt};

use super::{Authorized, BoxFuture, Canonicalized, ExchangeError, ProviderContext};
use crate::policy_reload::ShadowPolicies;

/// Adds [`Authorize`].
#[derive(Clone)]
pub struct AuthorizeLayer {
    policies: Arc<RwLock<Arc<PolicySet>>>,
    limiter: Arc<RateLimiter>,
    shadow: Option<Arc<ShadowPolicies>>,
}

impl AuthorizeLayer {
    /// Decide with whatever set is in force at the time of each request, count allowed requests in
    /// `cx.limiter`, and compare with `cx.shadow`.
    pub fn new(cx: &ProviderContext) -> Self {
        AuthorizeLayer {
            policies: cx.policies.clone(),
            limiter: cx.limiter.clone(),
            shadow: cx.shadow.clone(),
        }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// Applies the policy decision and the rate limit: a denial (including `rate-limited`) stops here,
/// as [`ExchangeError::Denied`].
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    /// Shared by every clone: a request clones the services below each layer.
    layer: Arc<AuthorizeLayer>,
}

impl<S, R> Service<Canonicalized> for Authorize<S>
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

    fn call(&mut self, request: Canonicalized) -> Self::Future {
        let Canonicalized { verified, params } = request;
        // One snapshot per request: a reload never changes a decision halfway. The lock only
        // guards an Arc swap, so a poisoned lock still holds a whole set.
        let set = self
            .layer
            .policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let env = &verified.envelope;
        let request = Request {
            consumer: env.consumer.as_str(),
            dataset: &env.dataset,
            purpose: &env.purpose,
            legal_basis: &env.legal_basis,
            case: &env.case,
            application: env.application.as_ref().map(|a| a.as_str()),
            params: params.for_decision(env),
            at_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let decided = set.decide(&request);
        if let Some(shadow) = &self.layer.shadow {
            shadow.observe(&request, &decided);
        }
        let decision = self.layer.limiter.admit(&request, decided);
        let inner = self.inner.clone();
        Box::pin(async move {
            if !decision.allowed {
                return Err(ExchangeError::Denied(Box::new(decision)));
            }
            inner
                .oneshot(Authorized {
                    verified,
                    params,
                    decision,
                })
                .await
        })
    }
}
