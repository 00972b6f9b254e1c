//! The request's parameters as the provider reads them: checked against the dataset's declared
//! parameters and brought to their canonical form (docs/DATASETS.md, `normalize` and `pattern`),
//! once, before anything decides, queries or notarizes.
//!
//! A database may read several spellings as one key (MariaDB's default collations ignore case,
//! accents and trailing spaces). If the policy decided on the spelling sent, the query bound it
//! and the ledger tagged it, `ALICE` would fetch the row a deny rule on `alice` protects, and the
//! entry would carry a tag the citizen's report never looks for. So the decision, the query and
//! the subject tag all read [`CanonicalParams`], never the envelope's own parameters; the envelope
//! (its signed bytes, its digest) stays exactly as received.
//!
//! The same stage first refuses free text: the case and the legal basis go into this gateway's
//! ledger entry, the consumer's and every oversight replica, for ever, so the case must match the
//! pattern `purposes.toml` declares for the purpose (by default a short reference) and the legal
//! basis must be a code ([`PolicySet::check_references`]). An envelope that fails is refused with
//! 400 and **no** ledger entry: like a malformed envelope, it is not an exchange, and an entry,
//! even with those fields blanked, would only record that a consumer once sent text that cannot be
//! kept. An honest consumer's gateway refuses such a request itself; one that reaches here needs a
//! purpose pattern narrower than the default, or a consumer that does not check.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use causeway_adapters::{bind, BoundParams, Catalog, FetchError, ParamValue};
use causeway_policy::{PolicySet, Request};
use serde_json::Value;
use tower::{Layer, Service, ServiceExt};

use super::envelope::Envelope;
use super::{BoxFuture, Canonicalized, ExchangeError, ProviderContext, Verified};

/// The parameters of one request in canonical form, or why they have none.
#[derive(Debug, Clone)]
pub struct CanonicalParams {
    /// Bound for the adapter, or why they do not bind: then nothing is queried, and an allowed
    /// request fails with this error (`bad-parameter`, `unknown-dataset`), notarized as such.
    pub bound: Result<BoundParams, FetchError>,
    /// The canonical values as JSON for the policy decision, only when one differs from what the
    /// envelope carries: an already canonical request is decided on the envelope's map, uncopied.
    renamed: Option<BTreeMap<String, Value>>,
    /// The data subject's identifier in canonical form, when the subject parameter binds: the
    /// value the ledger tags.
    pub subject: Option<String>,
}

impl CanonicalParams {
    /// Read `envelope`'s parameters against its dataset in `catalog`.
    pub fn read(catalog: &Catalog, envelope: &Envelope) -> CanonicalParams {
        let Some(dataset) = catalog.dataset(&envelope.dataset) else {
            return CanonicalParams {
                bound: Err(FetchError::UnknownDataset {
                    name: envelope.dataset.clone(),
                }),
                renamed: None,
                subject: None,
            };
        };
        let sent = &envelope.params;
        match bind(dataset, sent) {
            Ok(bound) => {
                let subject = bound
                    .get(&dataset.subject_param)
                    .and_then(ParamValue::as_text)
                    .map(|s| s.into_owned());
                let changed = bound.iter().any(|(name, value)| match value {
                    ParamValue::Text(canonical) => {
                        sent.get(name).and_then(Value::as_str) != Some(canonical.as_str())
                    }
                    _ => false,
                });
                let renamed = changed.then(|| {
                    let mut params = sent.clone();
                    for (name, value) in bound.iter() {
                        if let ParamValue::Text(canonical) = value {
                            params.insert(name.to_owned(), Value::String(canonical.clone()));
                        }
                    }
                    params
                });
                CanonicalParams {
                    bound: Ok(bound),
                    renamed,
                    subject,
                }
            }
            Err(error) => {
                // Another parameter may be what is wrong: the subject is still tagged if it binds,
                // so that the attempt appears in that citizen's report.
                let subject = dataset
                    .param(&dataset.subject_param)
                    .zip(sent.get(&dataset.subject_param))
                    .and_then(|(def, value)| def.bind(value).ok())
                    .and_then(|value| value.as_text().map(|s| s.into_owned()));
                CanonicalParams {
                    bound: Err(error),
                    renamed: None,
                    subject,
                }
            }
        }
    }

    /// The parameters the policy decides on: the canonical values, or, when they do not bind, the
    /// envelope's (the request is then refused with the binding error if allowed; nothing is
    /// fetched either way).
    pub fn for_decision<'a>(&'a self, envelope: &'a Envelope) -> &'a BTreeMap<String, Value> {
        self.renamed.as_ref().unwrap_or(&envelope.params)
    }

    /// Parameters never read against a dataset, for tests of the stages below.
    #[cfg(test)]
    pub(crate) fn unread() -> CanonicalParams {
        CanonicalParams {
            bound: Err(FetchError::QueryFailed),
            renamed: None,
            subject: None,
        }
    }
}

/// Adds [`Canonicalize`].
#[derive(Clone)]
pub struct CanonicalizeLayer {
    catalog: Arc<Catalog>,
    policies: Arc<RwLock<Arc<PolicySet>>>,
}

impl CanonicalizeLayer {
    /// Read parameters against the datasets of `cx`, and case references against the purposes of
    /// whatever policy set is in force at the time of each request.
    pub fn new(cx: &ProviderContext) -> Self {
        CanonicalizeLayer {
            catalog: cx.catalog.clone(),
            policies: cx.policies.clone(),
        }
    }
}

impl<S> Layer<S> for CanonicalizeLayer {
    type Service = Canonicalize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Canonicalize {
            inner,
            catalog: self.catalog.clone(),
            policies: self.policies.clone(),
        }
    }
}

/// Refuses an envelope whose case or legal basis is not fit for a ledger, as
/// [`ExchangeError::NotAReference`]; otherwise attaches the request's [`CanonicalParams`]. A
/// parameter that does not bind is carried down, so that the request is still decided and
/// notarized, as every verified request is.
#[derive(Clone)]
pub struct Canonicalize<S> {
    inner: S,
    catalog: Arc<Catalog>,
    policies: Arc<RwLock<Arc<PolicySet>>>,
}

impl<S, R> Service<Verified> for Canonicalize<S>
where
    S: Service<Canonicalized, Response = R, Error = ExchangeError> + Clone + Send + 'static,
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
        let env = &verified.envelope;
        // The lock only guards an Arc swap, so a poisoned lock still holds a whole set.
        let references = self
            .policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .check_references(&Request {
                consumer: env.consumer.as_str(),
                dataset: &env.dataset,
                purpose: &env.purpose,
                legal_basis: &env.legal_basis,
                case: &env.case,
                application: env.application.as_ref().map(|a| a.as_str()),
                params: &env.params,
                at_unix: 0,
            });
        if let Err(refused) = references {
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        let params = CanonicalParams::read(&self.catalog, &verified.envelope);
        let inner = self.inner.clone();
        Box::pin(async move { inner.oneshot(Canonicalized { verified, params }).await })
    }
}
