//! The consumer side: an application asks its own gateway, which signs an envelope, asks the
//! provider, verifies the provider's receipt, notarizes its own entry naming that receipt, and only
//! then answers the application.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use tracing::Instrument;

use super::envelope::{self, digest, payload_digest, Envelope};
use super::rescue::json_response;
use super::ProtocolResponse;
use crate::config::Directory;
use crate::identity::{DeptId, TagKey};
use crate::ledger::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use crate::ledger::entry::{Entry, Kind, PeerReceipt, Side};
use crate::ledger::note::NoteVerifier;
use crate::ledger::receipt::Receipt;
use crate::ledger::Ledger;
use crate::telemetry::observe;
use crate::transport::client::PeerError;
use crate::transport::peer::{PeerRequest, PeerTransport};

/// `POST /v1/requests` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    /// Department that holds the data.
    pub provider: String,
    /// Dataset name.
    pub dataset: String,
    /// Query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Purpose.
    pub purpose: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Case reference.
    #[serde(default)]
    pub case: String,
    /// The officer asking (tagged before it leaves this gateway).
    pub officer: String,
}

/// The provider's answer as JSON. The receipt is kept as the provider wrote it: it is parsed to be
/// verified, and passed on to the application byte for byte instead of being written out again.
#[derive(Debug, Deserialize)]
pub(crate) struct ProviderAnswer<'a> {
    exchange: Option<uuid::Uuid>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    rows: Vec<Vec<serde_json::Value>>,
    #[serde(borrow)]
    receipt: Option<&'a RawValue>,
    error: Option<serde_json::Value>,
    decision: Option<serde_json::Value>,
}

impl<'a> ProviderAnswer<'a> {
    /// Read a provider's answer body.
    pub(crate) fn parse(body: &'a [u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }

    /// The receipt as the provider wrote it and as parsed for verification; none if the provider
    /// refused before notarizing.
    pub(crate) fn receipt(&self) -> Option<(&'a RawValue, serde_json::Result<Receipt>)> {
        self.receipt
            .map(|raw| (raw, serde_json::from_str::<Receipt>(raw.get())))
    }
}

/// What the application is told, serialized without a JSON tree in between (its keys in the
/// alphabetical order a `serde_json` map would write them in).
#[derive(Serialize)]
struct Answer<'a> {
    consumer_log_index: u64,
    dataset: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
    exchange: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [String]>,
    provider: &'a DeptId,
    receipt: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<&'a [Vec<serde_json::Value>]>,
}

/// Everything the consumer side needs.
#[derive(Clone)]
pub struct ConsumerContext {
    /// This department.
    pub me: DeptId,
    /// Signs our envelopes (those ready together share one signature).
    pub signer: Arc<super::signer::EnvelopeSigner>,
    /// The directory.
    pub directory: Arc<Directory>,
    /// Connections to providers, over whichever transport is configured.
    pub peers: Arc<PeerTransport>,
    /// Our ledger.
    pub ledger: Arc<Ledger>,
    /// Tag key for officers.
    pub tag_key: TagKey,
    /// How long to wait for a provider.
    pub timeout: Duration,
    /// The last checkpoint each provider signed that verified here.
    pub checkpoints: Arc<OpenedCheckpoints>,
}

/// The signed checkpoint notes that verified most recently, per provider. A provider signs one
/// checkpoint per ledger batch and hands it out in every receipt of that batch; a note byte-for-byte
/// equal to one that already verified under the same key need not be verified again (profile in
/// docs/PERFORMANCE.md: the signature check was about 8% of an exchange's CPU). Receipts of
/// consecutive batches arrive interleaved, so a few notes are kept, not only the last.
#[derive(Default)]
pub struct OpenedCheckpoints {
    recent: std::sync::Mutex<std::collections::HashMap<DeptId, RecentNotes>>,
}

/// Notes kept per provider.
const RECENT_NOTES: usize = 8;

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

fn problem(status: u16, code: &str, message: impl Into<String>) -> ProtocolResponse {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message.into()}}),
    )
}

/// Handle one application request.
pub async fn handle(cx: &ConsumerContext, body: &[u8]) -> ProtocolResponse {
    let request: ClientRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                400,
                "bad-request",
                format!(
                "{e}; expected {{provider, dataset, params, purpose, legal_basis, case, officer}}"
            ),
            )
        }
    };
    let Ok(provider_id) = DeptId::new(&request.provider) else {
        return problem(400, "bad-request", "provider is not a department id");
    };
    let Some(provider) = cx.directory.department(&provider_id) else {
        return problem(
            404,
            "unknown-provider",
            format!("department {provider_id} is not in the federation directory"),
        );
    };
    if request.officer.trim().is_empty() {
        return problem(400, "bad-request", "officer must name who is asking");
    }
    let envelope = Envelope {
        v: envelope::ENVELOPE_VERSION,
        id: envelope::exchange_id(),
        consumer: cx.me.clone(),
        provider: provider_id.clone(),
        dataset: request.dataset,
        params: request.params,
        purpose: request.purpose,
        legal_basis: request.legal_basis,
        case: request.case,
        officer: cx.tag_key.tag("officer", &request.officer),
        issued_at: envelope::now_rfc3339(),
        nonce: envelope::nonce(),
    };
    observe::learn_peer(&provider_id);
    observe::learn_exchange(&envelope);
    let bytes = match envelope.encode() {
        Ok(bytes) => bytes,
        Err(e) => return problem(400, "bad-request", e.to_string()),
    };
    let request_digest = digest(&bytes);
    let bytes = Bytes::from(bytes);
    let signature = cx.signer.sign(&provider_id, bytes.clone()).await;
    let request = PeerRequest::exchange(signature.to_header(), bytes);
    let (status, answer) = match observe::send_to_peer(&cx.peers, provider, request, cx.timeout)
        .await
    {
        Ok(r) => r,
        Err(e @ PeerError::Timeout(_)) => return problem(504, "provider-timeout", e.to_string()),
        Err(e) => return problem(502, "provider-unreachable", e.to_string()),
    };
    let answer = match ProviderAnswer::parse(&answer) {
        Ok(a) => a,
        Err(_) => {
            return problem(
                502,
                "bad-provider-answer",
                format!("{provider_id} answered {status} with a body that is not JSON"),
            )
        }
    };
    let Some((raw_receipt, parsed)) = answer.receipt() else {
        // Refused before notarization (authentication, envelope): pass the provider's reason on.
        let error = answer
            .error
            .unwrap_or_else(|| json!({"code": "provider-error"}));
        return json_response(
            status,
            &json!({"exchange": envelope.id, "provider_status": status, "error": error}),
        );
    };
    let opened = |note: &str| cx.checkpoints.open(&provider_id, &provider.verifier, note);
    let checked = parsed.map_err(|e| e.to_string()).and_then(|receipt| {
        let verified = receipt
            .verify_with(&provider.verifier, opened)
            .map_err(|e| e.to_string())?;
        Ok((receipt, verified))
    });
    let (receipt, verified) = match checked {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(provider = %provider_id, error = %e, "the provider's receipt does not verify; nothing released");
            return problem(
                502,
                "bad-receipt",
                format!("the receipt from {provider_id} does not verify: {e}"),
            );
        }
    };
    let peer_entry = &verified.entry;
    let released = status == 200;
    let response_digest = released.then(|| payload_digest(&answer.fields, &answer.rows));
    let consistent = peer_entry.id.as_deref() == Some(envelope.id.to_string().as_str())
        && answer.exchange == Some(envelope.id)
        && peer_entry.request_digest.as_deref() == Some(request_digest.as_str())
        && peer_entry.side == Some(Side::Provider)
        && peer_entry.consumer.as_deref() == Some(cx.me.as_str())
        && peer_entry.response_digest == response_digest;
    if !consistent {
        tracing::error!(provider = %provider_id, exchange = %envelope.id, "the provider's entry does not match this exchange");
        return problem(
            502,
            "bad-receipt",
            format!("the entry {provider_id} notarized does not match this exchange"),
        );
    }
    let mut entry = Entry::new(if peer_entry.kind == Kind::Denied {
        Kind::Denied
    } else {
        Kind::Exchange
    });
    entry.side = Some(Side::Consumer);
    entry.id = Some(envelope.id.to_string());
    entry.consumer = Some(cx.me.to_string());
    entry.provider = Some(provider_id.to_string());
    entry.dataset = Some(envelope.dataset.clone());
    entry.purpose = Some(envelope.purpose.clone());
    entry.legal_basis = Some(envelope.legal_basis.clone());
    entry.case = (!envelope.case.is_empty()).then(|| envelope.case.clone());
    entry.officer = Some(envelope.officer.clone());
    entry.subjects = peer_entry.subjects.clone();
    entry.request_digest = Some(request_digest);
    entry.response_digest = response_digest;
    entry.fields = if released {
        answer.fields.clone()
    } else {
        Vec::new()
    };
    entry.rows = released.then_some(answer.rows.len() as u64);
    entry.decision = peer_entry.decision.clone();
    entry.reason = peer_entry.reason.clone();
    entry.rule = peer_entry.rule.clone();
    entry.outcome = peer_entry.outcome.clone();
    entry.policy = peer_entry.policy.clone();
    entry.peer_receipt = Some(PeerReceipt {
        log: receipt.log.clone(),
        index: receipt.index,
        leaf_hash: receipt.leaf_hash.clone(),
        checkpoint_size: verified.checkpoint.size,
    });
    let notarizing = tracing::info_span!("notarize", log_index = tracing::field::Empty);
    let appended = match cx.ledger.append(entry).instrument(notarizing.clone()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot notarize the consumer entry; nothing released");
            return problem(
                503,
                "ledger-unavailable",
                format!(
                    "this gateway's ledger cannot record the exchange, so nothing is released: {e}"
                ),
            );
        }
    };
    notarizing.record("log_index", appended.entry.index);
    let body = Answer {
        consumer_log_index: appended.entry.index,
        dataset: &envelope.dataset,
        decision: answer.decision,
        error: answer.error,
        exchange: envelope.id,
        fields: released.then_some(&answer.fields[..]),
        provider: &provider_id,
        receipt: raw_receipt,
        rows: released.then_some(&answer.rows[..]),
    };
    json_response(status, &body)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::ledger::checkpoint::sign_checkpoint;
    use crate::ledger::note::NoteSigner;

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
