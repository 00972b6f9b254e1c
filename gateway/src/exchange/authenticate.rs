//! Who is calling: the department named in the peer certificate's identity URI, and nothing else.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt};

use super::{Authenticated, BoxFuture, ExchangeError, Inbound};
use crate::config::Directory;
use crate::identity::{identity_from_cert, PeerIdentity};

/// Adds [`Authenticate`].
#[derive(Clone)]
pub struct AuthenticateLayer {
    directory: Arc<Directory>,
}

impl AuthenticateLayer {
    /// Authenticate against this directory.
    pub fn new(directory: Arc<Directory>) -> Self {
        AuthenticateLayer { directory }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            directory: self.directory.clone(),
        }
    }
}

/// Maps the peer certificate to a department listed in the directory.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    directory: Arc<Directory>,
}

impl<S, R> Service<Inbound> for Authenticate<S>
where
    S: Service<Authenticated, Response = R, Error = ExchangeError> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = R;
    type Error = ExchangeError;
    type Future = BoxFuture<Result<R, ExchangeError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let inner = self.inner.clone();
        let directory = self.directory.clone();
        Box::pin(async move {
            let cert = inbound.peer_cert.ok_or_else(|| {
                ExchangeError::Unauthenticated("no client certificate was presented".into())
            })?;
            let peer = match identity_from_cert(&cert, &directory.federation) {
                Ok(PeerIdentity::Dept(id)) => id,
                Ok(PeerIdentity::Oversight(_)) => {
                    return Err(ExchangeError::Unauthenticated(
                        "oversight nodes do not request data".into(),
                    ))
                }
                Err(e) => return Err(ExchangeError::Unauthenticated(e.to_string())),
            };
            if directory.department(&peer).is_none() {
                return Err(ExchangeError::Unauthenticated(format!(
                    "department {peer} is not in the federation directory"
                )));
            }
            inner
                .oneshot(Authenticated {
                    peer,
                    signature: inbound.signature,
                    body: inbound.body,
                })
                .await
        })
    }
}
