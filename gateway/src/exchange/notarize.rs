//! Record what happened before anything leaves: allowed, denied, or failed.
//!
//! Everything below this layer (authorize, fetch, shape) runs inside it. Its result, success or
//! refusal, becomes one ledger entry; the response waits until that entry is durable. If the ledger
//! cannot take it, the caller gets an error and the rows are dropped here (fail closed).

use std::sync::Arc;
use std::task::{Context, Poll};

use causeway_policy::Decision;
use tower::{Layer, Service, ServiceExt};

use super::envelope::payload_digest;
use super::{BoxFuture, Canonicalized, ExchangeError, Notarized, Outcome, ProviderContext, Shaped};
use crate::identity::TagKey;
use crate::rate_limits::RateLimits;
use causeway_ledger::entry::{Entry, Kind, Side};
use causeway_ledger::receipt::Receipt;
use causeway_ledger::Ledger;

/// Adds [`Notarize`].
#[derive(Clone)]
pub struct NotarizeLayer {
    ledger: Arc<Ledger>,
    tag_key: TagKey,
    rate_limits: Arc<RateLimits>,
}

impl NotarizeLayer {
    /// Notarize into `cx.ledger`.
    pub fn new(cx: &ProviderContext) -> Self {
        NotarizeLayer {
            ledger: cx.ledger.clone(),
            tag_key: cx.tag_key.clone(),
            rate_limits: cx.rate_limits.clone(),
        }
    }
}

impl<S> Layer<S> for NotarizeLayer {
    type Service = Notarize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Notarize {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// Appends the provider-side entry and attaches its receipt.
#[derive(Clone)]
pub struct Notarize<S> {
    inner: S,
    /// Shared by every clone: a request clones the services below each layer.
    layer: Arc<NotarizeLayer>,
}

impl<S> Service<Canonicalized> for Notarize<S>
where
    S: Service<Canonicalized, Response = Shaped, Error = ExchangeError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Notarized;
    type Error = ExchangeError;
    type Future = BoxFuture<Result<Notarized, ExchangeError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Canonicalized) -> Self::Future {
        let inner = self.inner.clone();
        let layer = self.layer.clone();
        Box::pin(async move {
            // Every decision counts against the consumer's budget; past it, none is made.
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if !layer
                .rate_limits
                .decision(request.verified.envelope.consumer.as_str(), now)
            {
                return Err(ExchangeError::TooManyRequests);
            }
            let mut entry = provider_entry(&request, &layer.tag_key);
            let id = request.verified.envelope.id;
            let outcome = match inner.oneshot(request).await {
                Ok(shaped) => {
                    record_decision(&mut entry, &shaped.authorized.decision);
                    entry.response_digest = Some(payload_digest(
                        &shaped.authorized.verified.envelope,
                        &shaped.fields,
                        &shaped.rows,
                    ));
                    entry.fields = shaped.fields.clone();
                    entry.rows = Some(shaped.rows.len() as u64);
                    entry.outcome = Some("ok".into());
                    Outcome::Released(Box::new(shaped))
                }
                Err(ExchangeError::Denied(decision)) => {
                    let reason = decision.told().code.as_str();
                    let consumer = entry.consumer.as_deref().unwrap_or_default();
                    if !layer.rate_limits.denial(consumer, reason, now) {
                        return Err(ExchangeError::TooManyDenials);
                    }
                    entry.kind = Kind::Denied;
                    record_decision(&mut entry, &decision);
                    Outcome::Denied(*decision)
                }
                Err(ExchangeError::Fetch { error, decision }) => {
                    record_decision(&mut entry, &decision);
                    entry.outcome = Some(error.code().to_owned());
                    Outcome::Failed(error)
                }
                Err(other) => return Err(other),
            };
            let appended = layer.ledger.append(entry).await?;
            Ok(Notarized {
                id,
                outcome,
                receipt: Receipt::new(layer.ledger.origin(), &appended),
            })
        })
    }
}

fn provider_entry(request: &Canonicalized, tag_key: &TagKey) -> Entry {
    let verified = &request.verified;
    let env = &verified.envelope;
    let mut entry = Entry::new(Kind::Exchange);
    entry.side = Some(Side::Provider);
    entry.id = Some(env.id.to_string());
    entry.consumer = Some(env.consumer.to_string());
    entry.provider = Some(env.provider.to_string());
    entry.dataset = Some(env.dataset.clone());
    entry.purpose = Some(env.purpose.clone());
    entry.legal_basis = Some(env.legal_basis.clone());
    entry.case = (!env.case.is_empty()).then(|| env.case.clone());
    entry.officer = (!env.officer.is_empty()).then(|| env.officer.clone());
    entry.application = env.application.as_ref().map(|a| a.to_string());
    entry.request_digest = Some(verified.request_digest.clone());
    // The subject's identifier is never stored: only the keyed tag of its canonical form, the
    // one every spelling of it that the database would read as the same id comes to.
    if let Some(subject) = &request.params.subject {
        entry.subjects = vec![tag_key.tag("subject", subject)];
    }
    entry
}

/// The decision as the consumer is told it ([`Decision::told`]), not its full explanation: the
/// entry travels to the consumer in the receipt, and the consumer's gateway copies its `reason` and
/// `rule` into its own ledger. Were a deny rule recorded here for a consumer that no grant allows,
/// the receipt would tell that consumer what the answer does not (docs/POLICY.md, "What the
/// consumer is told").
fn record_decision(entry: &mut Entry, decision: &Decision) {
    let told = decision.told();
    entry.decision = Some(if decision.allowed { "allow" } else { "deny" }.into());
    entry.reason = Some(told.code.as_str().into());
    entry.rule = told.rule.map(|r| format!("{}:{}", r.file, r.line));
    entry.policy = Some(decision.policy_hash.clone());
}
