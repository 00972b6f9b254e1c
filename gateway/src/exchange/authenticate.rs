//! Who is calling: the department named in the peer certificate's identity URI, and nothing else.

use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::CertificateDer;
use tower::{Layer, Service, ServiceExt};

use super::recent::Recent;
use super::{Authenticated, BoxFuture, ExchangeError, Inbound};
use crate::directory::LiveDirectory;
use crate::identity::{identity_from_cert, DeptId, PeerIdentity};

/// Adds [`Authenticate`].
#[derive(Clone)]
pub struct AuthenticateLayer {
    directory: Arc<LiveDirectory>,
    known: Arc<KnownCertificates>,
}

impl AuthenticateLayer {
    /// Authenticate against this directory.
    pub fn new(directory: Arc<LiveDirectory>) -> Self {
        AuthenticateLayer {
            directory,
            known: Arc::new(KnownCertificates(Recent::new(KNOWN_CERTIFICATES))),
        }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            directory: self.directory.clone(),
            known: self.known.clone(),
        }
    }
}

/// Maps the peer certificate to a department listed in the directory.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    directory: Arc<LiveDirectory>,
    known: Arc<KnownCertificates>,
}

/// The departments of the certificates that authenticated most recently. A certificate's identity
/// is a function of its bytes and the federation's name alone, so a peer's certificate is parsed
/// once rather than on every request of its connection (revocation is the handshake's business;
/// directory membership is still checked on every request).
struct KnownCertificates(Recent<CertificateDer<'static>, DeptId>);

/// Certificates remembered: every department's, a few times over for rotation.
const KNOWN_CERTIFICATES: usize = 64;

impl KnownCertificates {
    fn department(
        &self,
        cert: &CertificateDer<'static>,
        federation: &str,
    ) -> Result<DeptId, ExchangeError> {
        if let Some(dept) = self.0.get(cert) {
            return Ok(dept);
        }
        let dept = match identity_from_cert(cert, federation) {
            Ok(PeerIdentity::Dept(id)) => id,
            Ok(PeerIdentity::Oversight(_)) => {
                return Err(ExchangeError::Unauthenticated(
                    "oversight nodes do not request data".into(),
                ))
            }
            Err(e) => return Err(ExchangeError::Unauthenticated(e.to_string())),
        };
        Ok(self.0.get_or_insert_with(cert.clone(), || dept))
    }
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
        let known = self.known.clone();
        Box::pin(async move {
            let cert = inbound.peer_cert.ok_or_else(|| {
                ExchangeError::Unauthenticated("no client certificate was presented".into())
            })?;
            let peer = known.department(&cert, directory.federation())?;
            if directory.current().department(&peer).is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(uri: &str) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        let key = rcgen::KeyPair::generate().unwrap();
        CertificateDer::from(params.self_signed(&key).unwrap().der().to_vec())
    }

    #[test]
    fn department_certificates_are_parsed_once_and_nothing_else_is_remembered() {
        let known = KnownCertificates(Recent::new(KNOWN_CERTIFICATES));
        let remembered = || known.0.len();
        let a = cert("causeway://demo/dept/a");
        for _ in 0..3 {
            assert_eq!(known.department(&a, "demo").unwrap().as_str(), "a");
        }
        assert_eq!(remembered(), 1);
        assert_eq!(
            known
                .department(&cert("causeway://demo/dept/b"), "demo")
                .unwrap()
                .as_str(),
            "b"
        );
        for refused in [
            "causeway://demo/oversight/o",
            "causeway://other/dept/a",
            "https://demo/dept/a",
        ] {
            assert!(
                known.department(&cert(refused), "demo").is_err(),
                "{refused}"
            );
        }
        assert_eq!(remembered(), 2);
        for i in 0..KNOWN_CERTIFICATES {
            known
                .department(&cert(&format!("causeway://demo/dept/d{i}")), "demo")
                .unwrap();
        }
        assert_eq!(remembered(), KNOWN_CERTIFICATES);
        assert_eq!(known.department(&a, "demo").unwrap().as_str(), "a");
    }
}
