//! Verify the provider's receipt: it must verify under the provider's directory key and name this
//! very exchange (its id, our request digest, this consumer, the response digest of what came), or
//! nothing is released.

use causeway_ledger::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use causeway_ledger::entry::Side;
use causeway_ledger::note::NoteVerifier;
use causeway_ledger::receipt::{Receipt, VerifiedReceipt};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::seal::Sealed;
use super::send::Sent;
use super::{ConsumerContext, ConsumerError};
use crate::exchange::envelope::payload_digest;
use crate::identity::DeptId;

/// The provider's answer as JSON. The receipt is kept as the provider wrote it: it is parsed to be
/// verified, and passed on to the application byte for byte instead of being written out again.
#[derive(Debug, Deserialize)]
pub struct ProviderAnswer<'a> {
    pub(super) exchange: Option<uuid::Uuid>,
    #[serde(default)]
    pub(super) fields: Vec<String>,
    #[serde(default)]
    pub(super) rows: Vec<Vec<serde_json::Value>>,
    #[serde(borrow)]
    receipt: Option<&'a RawValue>,
    pub(super) error: Option<serde_json::Value>,
    pub(super) decision: Option<serde_json::Value>,
}

impl<'a> ProviderAnswer<'a> {
    /// Read a provider's answer body.
    pub fn parse(body: &'a [u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }

    /// The receipt as the provider wrote it and as parsed for verification; none if the provider
    /// refused before notarizing.
    pub fn receipt(&self) -> Option<(&'a RawValue, serde_json::Result<Receipt>)> {
        self.receipt
            .map(|raw| (raw, serde_json::from_str::<Receipt>(raw.get())))
    }
}

/// After [`verify`]: a receipt that verifies and names this very exchange.
pub struct Receipted<'b> {
    /// The provider's answer (its rows, fields, decision or error).
    pub answer: ProviderAnswer<'b>,
    /// The receipt as the provider wrote it, passed on to the application byte for byte.
    pub raw_receipt: &'b RawValue,
    /// The receipt, parsed.
    pub receipt: Receipt,
    /// What it proves: the provider's entry and the checkpoint that includes it.
    pub verified: VerifiedReceipt,
    /// Whether the provider released data (status 200).
    pub released: bool,
    /// The digest of what was released, if anything was.
    pub response_digest: Option<String>,
}

/// Check the receipt in `answer` for the exchange `sealed`, as `sent` brought it.
pub fn verify<'b>(
    cx: &ConsumerContext,
    sealed: &Sealed,
    sent: &Sent,
    answer: ProviderAnswer<'b>,
) -> Result<Receipted<'b>, ConsumerError> {
    let provider = &sealed.provider;
    let provider_id = &provider.id;
    let Some((raw_receipt, parsed)) = answer.receipt() else {
        // Refused before notarization (authentication, envelope): pass the provider's reason on.
        return Err(ConsumerError::RefusedByProvider {
            exchange: sealed.envelope.id,
            status: sent.status,
            error: answer
                .error
                .unwrap_or_else(|| serde_json::json!({"code": "provider-error"})),
        });
    };
    // Each checkpoint under the key valid for its size: a receipt the provider signed just
    // before rotating its key is the old key's.
    let opened = |note: &str| {
        let key = provider
            .keys
            .key_for_note(note)
            .map_err(CheckpointError::KeyRefused)?;
        cx.checkpoints.open(provider_id, key, note)
    };
    let checked = parsed.map_err(|e| e.to_string()).and_then(|receipt| {
        let verified = receipt
            .verify_with(&provider.verifier, opened)
            .map_err(|e| e.to_string())?;
        Ok((receipt, verified))
    });
    let (receipt, verified) = checked.map_err(|e| {
        tracing::error!(provider = %provider_id, error = %e, "the provider's receipt does not verify; nothing released");
        ConsumerError::BadReceipt(format!(
            "the receipt from {provider_id} does not verify: {e}"
        ))
    })?;
    let peer_entry = &verified.entry;
    let released = sent.status == 200;
    let response_digest =
        released.then(|| payload_digest(&sealed.envelope, &answer.fields, &answer.rows));
    let envelope = &sealed.envelope;
    let consistent = peer_entry.id.as_deref() == Some(envelope.id.to_string().as_str())
        && answer.exchange == Some(envelope.id)
        && peer_entry.request_digest.as_deref() == Some(sealed.request_digest.as_str())
        && peer_entry.side == Some(Side::Provider)
        && peer_entry.consumer.as_deref() == Some(cx.me.as_str())
        && peer_entry.response_digest == response_digest;
    if !consistent {
        tracing::error!(provider = %provider_id, exchange = %envelope.id, "the provider's entry does not match this exchange");
        return Err(ConsumerError::BadReceipt(format!(
            "the entry {provider_id} notarized does not match this exchange"
        )));
    }
    Ok(Receipted {
        answer,
        raw_receipt,
        receipt,
        verified,
        released,
        response_digest,
    })
}

/// The signed checkpoint notes that verified most recently, per provider. A provider signs one
/// checkpoint per ledger batch and hands it out in every receipt of that batch; a note byte-for-byte
/// equal to one that already verified under the same key need not be verified again (profile in
/// docs/performance-history.md: the signature check was about 8% of an exchange's CPU). Receipts of
/// consecutive batches arrive interleaved, so a few notes are kept, not only the last.
#[derive(Default)]
pub struct OpenedCheckpoints {
    recent: std::sync::Mutex<std::collections::HashMap<DeptId, RecentNotes>>,
}

/// Notes kept per provider.
pub(super) const RECENT_NOTES: usize = 8;

/// The verifier the notes were checked with and the last [`RECENT_NOTES`] of them, oldest first.
struct RecentNotes {
    key: NoteVerifier,
    notes: std::collections::VecDeque<(String, Checkpoint)>,
}

impl OpenedCheckpoints {
    /// Open `note` as a checkpoint of `dept`'s log `log`, verifying its signature unless this very
    /// note already verified under this very key.
    pub fn open(
        &self,
        dept: &DeptId,
        log: &NoteVerifier,
        note: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let seen = |recent: &RecentNotes| {
            (recent.key == *log)
                .then(|| recent.notes.iter().find(|(n, _)| n == note))
                .flatten()
                .map(|(_, cp)| cp.clone())
        };
        if let Some(cp) = self.lock().get(dept).and_then(seen) {
            return Ok(cp);
        }
        let cp = open_checkpoint(note, log)?;
        let mut recent = self.lock();
        let recent = recent.entry(dept.clone()).or_insert_with(|| RecentNotes {
            key: log.clone(),
            notes: Default::default(),
        });
        if recent.key != *log {
            recent.key = log.clone();
            recent.notes.clear();
        }
        if recent.notes.len() == RECENT_NOTES {
            recent.notes.pop_front();
        }
        recent.notes.push_back((note.to_owned(), cp.clone()));
        Ok(cp)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<DeptId, RecentNotes>> {
        self.recent
            .lock()
            .expect("the checkpoint cache is never left poisoned")
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use causeway_ledger::checkpoint::sign_checkpoint;
    use causeway_ledger::note::NoteSigner;

    fn signed(signer: &NoteSigner, size: u64) -> String {
        let cp = Checkpoint {
            origin: signer.name().into(),
            size,
            root: [7; 32],
            extensions: vec![],
        };
        sign_checkpoint(&cp, signer).unwrap()
    }

    #[test]
    fn a_cached_checkpoint_is_reused_only_for_the_same_bytes_and_key() {
        let log = NoteSigner::new("demo/civil-registry", SigningKey::from_bytes(&[1; 32])).unwrap();
        let other =
            NoteSigner::new("demo/civil-registry", SigningKey::from_bytes(&[2; 32])).unwrap();
        let dept = DeptId::new("civil-registry").unwrap();
        let cache = OpenedCheckpoints::default();
        let note = signed(&log, 5);
        assert_eq!(cache.open(&dept, &log.verifier(), &note).unwrap().size, 5);
        assert_eq!(cache.open(&dept, &log.verifier(), &note).unwrap().size, 5);
        // A different note (tampered size) is verified, not taken from the cache.
        let tampered = note.replacen("\n5\n", "\n6\n", 1);
        assert_ne!(tampered, note);
        assert!(cache.open(&dept, &log.verifier(), &tampered).is_err());
        // The cached note does not pass for another key with the same name.
        assert!(cache.open(&dept, &other.verifier(), &note).is_err());
        // And the cache still answers for the genuine note afterwards.
        assert!(cache.open(&dept, &log.verifier(), &note).is_ok());
    }

    #[test]
    fn interleaved_batches_hit_the_cache_and_old_notes_age_out() {
        let log = NoteSigner::new("demo/civil-registry", SigningKey::from_bytes(&[1; 32])).unwrap();
        let dept = DeptId::new("civil-registry").unwrap();
        let cache = OpenedCheckpoints::default();
        let notes: Vec<String> = (1..=RECENT_NOTES as u64 + 1)
            .map(|n| signed(&log, n))
            .collect();
        for note in &notes {
            cache.open(&dept, &log.verifier(), note).unwrap();
        }
        let kept = |size: u64| {
            let recent = cache.lock();
            recent[&dept].notes.iter().any(|(_, cp)| cp.size == size)
        };
        assert!(!kept(1), "the oldest note is dropped");
        assert!((2..=RECENT_NOTES as u64 + 1).all(kept));
        // An older, still-kept note opens from the cache; a forged copy of it does not.
        assert_eq!(
            cache.open(&dept, &log.verifier(), &notes[1]).unwrap().size,
            2
        );
        let forged = notes[1].replacen("\n2\n", "\n20\n", 1);
        assert!(cache.open(&dept, &log.verifier(), &forged).is_err());
    }
}
