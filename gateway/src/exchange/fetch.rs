//! Run the dataset's query through its adapter: the requester's parameters, in the canonical form
//! the policy decided on, are bound, never spliced.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use causeway_adapters::{Catalog, Limits};
use tower::{Layer, Service, ServiceExt};

use super::{Authorized, BoxFuture, ExchangeError, Fetched};

/// Row limit when the grant names none (the dataset's own limit still applies).
pub const DEFAULT_MAX_ROWS: u64 = 1000;
/// Deadline of one fetch when the dataset names a longer one.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Adds [`Fetch`].
#[derive(Clone)]
pub struct FetchLayer {
    catalog: Arc<Catalog>,
}

impl FetchLayer {
    /// Fetch from this catalog.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        FetchLayer { catalog }
    }
}

impl<S> Layer<S> for FetchLayer {
    type Service = Fetch<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Fetch {
            inner,
            catalog: self.catalog.clone(),
        }
    }
}

/// Queries the source for an authorized request.
#[derive(Clone)]
pub struct Fetch<S> {
    inner: S,
    catalog: Arc<Catalog>,
}

impl<S, R> Service<Authorized> for Fetch<S>
where
    S: Service<Fetched, Response = R, Error = ExchangeError> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = R;
    type Error = ExchangeError;
    type Future = BoxFuture<Result<R, ExchangeError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, authorized: Authorized) -> Self::Future {
        let inner = self.inner.clone();
        let catalog = self.catalog.clone();
        Box::pin(async move {
            let limits = Limits {
                max_rows: authorized.decision.max_rows.unwrap_or(DEFAULT_MAX_ROWS),
                timeout: FETCH_TIMEOUT,
            };
            let dataset = &authorized.verified.envelope.dataset;
            let fetched = match &authorized.params.bound {
                Ok(bound) => catalog.fetch_bound(dataset, bound, limits).await,
                Err(unbound) => Err(unbound.clone()),
            };
            match fetched {
                Ok(rows) => inner.oneshot(Fetched { authorized, rows }).await,
                Err(error) => Err(ExchangeError::Fetch {
                    error,
                    decision: Box::new(authorized.decision),
                }),
            }
        })
    }
}
