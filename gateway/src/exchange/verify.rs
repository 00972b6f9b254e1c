//! Is the envelope really from the peer, meant for us, fresh, and new?

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt};

use super::envelope::{digest, Envelope, VerifiedBatches};
use super::{Authenticated, BoxFuture, ExchangeError, ProviderContext, Verified};
use crate::directory::LiveDirectory;
use crate::identity::DeptId;
use causeway_ledger::entry::{Entry, Side};
use causeway_ledger::{Ledger, LedgerError};

/// Most envelope ids remembered; beyond this the oldest are forgotten early, which is safe only
/// because they are also refused as stale once older than the skew window.
pub const MAX_REMEMBERED: usize = 1_000_000;

/// Envelope ids seen within the freshness window.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<uuid::Uuid, i64>>,
}

impl ReplayCache {
    /// Record `id` (issued at `issued`); false if it was already seen.
    pub fn first_sight(&self, id: uuid::Uuid, issued: i64, now: i64, window: i64) -> bool {
        let mut seen = self.seen.lock().expect("replay cache lock poisoned");
        if seen.len() >= MAX_REMEMBERED / 2 {
            seen.retain(|_, t| *t >= now - 2 * window);
        }
        if seen.len() >= MAX_REMEMBERED {
            if let Some(oldest) = seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                seen.remove(&oldest);
            }
        }
        seen.insert(id, issued).is_none()
    }

    /// Remember every exchange the provider side of `ledger` notarized within the last two
    /// freshness windows (`window` seconds each), so that an envelope captured before a restart is
    /// refused after it as it was before. Every envelope that passed this check was notarized,
    /// allowed or denied, before it was answered, so the ledger knows them all. Returns how many
    /// were remembered.
    pub fn remember_notarized(
        &self,
        ledger: &Ledger,
        now: i64,
        window: i64,
    ) -> Result<usize, LedgerError> {
        let since = now - 2 * window;
        let size = ledger.checkpoint().0;
        let ids = ledger.read(|reader| {
            let mut ids = Vec::new();
            for index in (0..size).rev().take(MAX_REMEMBERED) {
                let Some(bytes) = reader.entry(index)? else {
                    break;
                };
                let Ok(entry) = Entry::from_bytes(bytes) else {
                    continue;
                };
                let time = time::OffsetDateTime::parse(
                    &entry.time,
                    &time::format_description::well_known::Rfc3339,
                )
                .map(|t| t.unix_timestamp())
                .unwrap_or(i64::MIN);
                if time < since {
                    break;
                }
                if entry.side == Some(Side::Provider) {
                    if let Some(id) = entry.id.as_deref().and_then(|id| id.parse().ok()) {
                        ids.push((id, time));
                    }
                }
            }
            Ok(ids)
        })?;
        let mut seen = self.seen.lock().expect("replay cache lock poisoned");
        let remembered = ids.len();
        seen.extend(ids);
        Ok(remembered)
    }
}

/// Adds [`VerifyEnvelope`].
#[derive(Clone)]
pub struct VerifyLayer {
    me: DeptId,
    directory: Arc<LiveDirectory>,
    replay: Arc<ReplayCache>,
    batches: Arc<VerifiedBatches>,
    max_skew_secs: u64,
}

impl VerifyLayer {
    /// Verify envelopes addressed to `cx.me`.
    pub fn new(cx: &ProviderContext) -> Self {
        VerifyLayer {
            me: cx.me.clone(),
            directory: cx.directory.clone(),
            replay: cx.replay.clone(),
            batches: cx.batches.clone(),
            max_skew_secs: cx.max_skew_secs,
        }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyEnvelope<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifyEnvelope {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// Checks signature, addressing, freshness and replay.
#[derive(Clone)]
pub struct VerifyEnvelope<S> {
    inner: S,
    /// Shared by every clone: a request clones the services below each layer.
    layer: Arc<VerifyLayer>,
}

impl VerifyLayer {
    fn check(&self, req: &Authenticated) -> Result<Verified, ExchangeError> {
        let directory = self.directory.current();
        let key = &directory
            .department(&req.peer)
            .ok_or_else(|| {
                ExchangeError::Unauthenticated(format!(
                    "department {} is not in the directory",
                    req.peer
                ))
            })?
            .verifier;
        // The signature is checked before the JSON is trusted for anything.
        Envelope::verify_signature(
            &req.body,
            req.signature.as_deref(),
            &req.peer,
            key,
            Some(&self.batches),
        )?;
        let envelope = Envelope::parse(&req.body)?;
        if envelope.consumer != req.peer {
            return Err(ExchangeError::Misaddressed(format!(
                "the envelope names consumer {} but the certificate is {}'s",
                envelope.consumer, req.peer
            )));
        }
        if envelope.provider != self.me {
            return Err(ExchangeError::Misaddressed(format!(
                "the envelope is addressed to {}, this gateway is {}",
                envelope.provider, self.me
            )));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let issued = envelope.issued_at_unix()?;
        let window = i64::try_from(self.max_skew_secs).unwrap_or(i64::MAX);
        if (now - issued).abs() > window {
            return Err(ExchangeError::Stale {
                skew_secs: now - issued,
                limit_secs: self.max_skew_secs,
            });
        }
        if !self.replay.first_sight(envelope.id, issued, now, window) {
            return Err(ExchangeError::Replayed(envelope.id));
        }
        Ok(Verified {
            request_digest: digest(&req.body),
            envelope,
        })
    }
}

impl<S, R> Service<Authenticated> for VerifyEnvelope<S>
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

    fn call(&mut self, req: Authenticated) -> Self::Future {
        let checked = self.layer.check(&req);
        let inner = self.inner.clone();
        Box::pin(async move { inner.oneshot(checked?).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_refuses_second_sight() {
        let cache = ReplayCache::default();
        let id = uuid::Uuid::now_v7();
        assert!(cache.first_sight(id, 100, 100, 60));
        assert!(!cache.first_sight(id, 100, 101, 60));
        assert!(cache.first_sight(uuid::Uuid::now_v7(), 100, 101, 60));
    }
}
