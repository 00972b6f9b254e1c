//! The consumer's envelope signer: envelopes for one provider that are ready at the same moment
//! share one Ed25519 signature ([`EnvelopeSignature::sign_batch`]), so that a burst of requests
//! costs one signature here and one verification at the provider instead of one each.
//!
//! Nothing waits for a batch to fill. The first envelope to arrive while no batch is being signed
//! leads: it yields to the runtime once, so that the requests of the same burst that are already
//! runnable can add theirs, then signs everything queued and hands each its signature. Under light
//! load a batch is one envelope, signed as before; under load, batches grow with the burst.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::envelope::{EnvelopeSignature, MAX_SIGNING_BATCH};
use crate::identity::{DeptId, GatewayKey};
use crate::telemetry::Metrics;

/// Signs envelopes, batching those that arrive together (per provider, so that a provider learns
/// nothing about requests to other departments).
pub struct EnvelopeSigner {
    /// Replaced when the gateway's log key rotates (one atomic load per signed batch).
    key: arc_swap::ArcSwap<GatewayKey>,
    queues: Mutex<HashMap<DeptId, Arc<Queue>>>,
    metrics: Arc<Metrics>,
}

/// Envelopes for one provider waiting for a signature.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<(Bytes, oneshot::Sender<EnvelopeSignature>)>,
    /// A leader has taken charge of what is queued.
    led: bool,
}

impl EnvelopeSigner {
    /// A signer with this gateway's key, recording batch sizes in `metrics`.
    pub fn new(key: Arc<GatewayKey>, metrics: Arc<Metrics>) -> Self {
        EnvelopeSigner {
            key: arc_swap::ArcSwap::new(key),
            queues: Mutex::default(),
            metrics,
        }
    }

    /// The signature for `bytes` (an envelope for `provider`): its own, or a share of one over
    /// the envelopes queued with it.
    pub async fn sign(&self, provider: &DeptId, bytes: Bytes) -> EnvelopeSignature {
        let queue = self.queue(provider);
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut state = queue.lock();
            state.waiting.push((bytes, tx));
            !std::mem::replace(&mut state.led, true)
        };
        if lead {
            // Signs on drop, so that what is queued is signed even if this request is dropped
            // while it yields (its caller gave up): the others are not left waiting.
            let _lead = Lead {
                queue: &queue,
                signer: self,
            };
            tokio::task::yield_now().await;
        }
        rx.await
            .expect("a leader signs every envelope queued before it lets go")
    }

    /// Sign every later batch with `key` (the gateway's log key rotated).
    pub fn replace_key(&self, key: Arc<GatewayKey>) {
        self.key.store(key);
    }

    fn queue(&self, provider: &DeptId) -> Arc<Queue> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.entry(provider.clone()).or_default().clone()
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The leader's duty: sign batches until the queue is empty, then let go.
struct Lead<'a> {
    queue: &'a Queue,
    signer: &'a EnvelopeSigner,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        loop {
            let batch: Vec<_> = {
                let mut state = self.queue.lock();
                if state.waiting.is_empty() {
                    state.led = false;
                    return;
                }
                let n = state.waiting.len().min(MAX_SIGNING_BATCH);
                state.waiting.drain(..n).collect()
            };
            let bodies: Vec<&[u8]> = batch.iter().map(|(bytes, _)| &bytes[..]).collect();
            let key = self.signer.key.load();
            let signatures = EnvelopeSignature::sign_batch(&bodies, key.signing_key());
            self.signer
                .metrics
                .signing_batch
                .observe(&[], bodies.len() as f64);
            for ((_, reply), signature) in batch.into_iter().zip(signatures) {
                // A caller that gave up no longer listens; nothing to do for it.
                let _ = reply.send(signature);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Wake, Waker};

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::exchange::envelope::{Envelope, VerifiedBatches};

    fn key() -> Arc<GatewayKey> {
        Arc::new(GatewayKey::new("test/consumer", SigningKey::from_bytes(&[9; 32])).unwrap())
    }

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// Polls once, as the runtime would when the request's task runs.
    fn poll<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(&Waker::from(Arc::new(Noop))))
    }

    /// Envelopes queued while the leader yields share one signature, and each verifies on its
    /// own; the provider's cache verifies their statement once and refuses another body with it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_shares_one_signature_and_each_envelope_verifies() {
        let key = key();
        let signer = EnvelopeSigner::new(key.clone(), Arc::new(Metrics::new(None)));
        let provider = DeptId::new("civil-registry").unwrap();
        let bodies: Vec<Bytes> = (0..5)
            .map(|i| Bytes::from(format!("{{\"n\":{i}}}")))
            .collect();
        let mut requests: Vec<_> = bodies
            .iter()
            .map(|body| Box::pin(signer.sign(&provider, body.clone())))
            .collect();
        // The first leads and yields; the other four queue behind it.
        for request in &mut requests {
            assert!(poll(request.as_mut()).is_pending());
        }
        let signatures: Vec<_> = requests
            .iter_mut()
            .map(|request| match poll(request.as_mut()) {
                Poll::Ready(sig) => sig,
                Poll::Pending => panic!("the leader signed the whole batch when it resumed"),
            })
            .collect();
        let EnvelopeSignature::Batch(first) = &signatures[0] else {
            panic!("a burst of five is signed as a batch: {:?}", signatures[0]);
        };
        assert_eq!(first.size, 5);
        let verifier = key.note_signer().verifier();
        let consumer = DeptId::new("social-welfare").unwrap();
        let cache = VerifiedBatches::default();
        for (i, (body, sig)) in bodies.iter().zip(&signatures).enumerate() {
            let EnvelopeSignature::Batch(batch) = sig else {
                panic!("{sig:?}")
            };
            assert_eq!(batch.signature, first.signature, "one signature for all");
            assert_eq!(usize::from(batch.index), i);
            let header = sig.to_header();
            for cached in [None, Some(&cache)] {
                Envelope::verify_signature(body, Some(&header), &consumer, &verifier, cached)
                    .unwrap();
                assert!(
                    Envelope::verify_signature(b"{}", Some(&header), &consumer, &verifier, cached)
                        .is_err(),
                    "the batch's signature does not cover another body"
                );
            }
        }
        // Alone, an envelope is signed as it always was.
        let alone = signer.sign(&provider, bodies[0].clone()).await;
        assert!(matches!(alone, EnvelopeSignature::Single(_)), "{alone:?}");
    }

    /// A leader whose request is dropped while it yields still signs what it took charge of,
    /// and the queue is free for the next one.
    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_leader_leaves_no_one_waiting() {
        let signer = EnvelopeSigner::new(key(), Arc::new(Metrics::new(None)));
        let provider = DeptId::new("civil-registry").unwrap();
        let mut leader = Box::pin(signer.sign(&provider, Bytes::from_static(b"{}")));
        let mut follower = Box::pin(signer.sign(&provider, Bytes::from_static(b"[]")));
        assert!(poll(leader.as_mut()).is_pending());
        assert!(poll(follower.as_mut()).is_pending());
        drop(leader);
        match poll(follower.as_mut()) {
            Poll::Ready(EnvelopeSignature::Batch(batch)) => assert_eq!(batch.size, 2),
            other => panic!("the follower is answered by the dropped leader: {other:?}"),
        }
        let later = signer.sign(&provider, Bytes::from_static(b"1")).await;
        assert!(matches!(later, EnvelopeSignature::Single(_)), "{later:?}");
    }
}
