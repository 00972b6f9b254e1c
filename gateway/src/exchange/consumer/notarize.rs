//! Notarize the consumer's side: an entry naming the provider's receipt, durable before the
//! application hears anything.

use causeway_ledger::entry::{Entry, Kind, PeerReceipt, Side};
use tracing::Instrument;

use super::receipt::Receipted;
use super::seal::Sealed;
use super::{ConsumerContext, ConsumerError};

/// Append this gateway's entry for the exchange; its index once durable.
pub async fn notarize(
    cx: &ConsumerContext,
    sealed: &Sealed,
    receipted: &Receipted<'_>,
) -> Result<u64, ConsumerError> {
    let envelope = &sealed.envelope;
    let peer_entry = &receipted.verified.entry;
    let released = receipted.released;
    let mut entry = Entry::new(if peer_entry.kind == Kind::Denied {
        Kind::Denied
    } else {
        Kind::Exchange
    });
    entry.side = Some(Side::Consumer);
    entry.id = Some(envelope.id.to_string());
    entry.consumer = Some(cx.me.to_string());
    entry.provider = Some(sealed.provider.id.to_string());
    entry.dataset = Some(envelope.dataset.clone());
    entry.purpose = Some(envelope.purpose.clone());
    entry.legal_basis = Some(envelope.legal_basis.clone());
    entry.case = (!envelope.case.is_empty()).then(|| envelope.case.clone());
    entry.officer = (!envelope.officer.is_empty()).then(|| envelope.officer.clone());
    entry.application = envelope.application.as_ref().map(|a| a.to_string());
    entry.subjects = peer_entry.subjects.clone();
    entry.request_digest = Some(sealed.request_digest.clone());
    entry.response_digest = receipted.response_digest.clone();
    entry.fields = if released {
        receipted.answer.fields.clone()
    } else {
        Vec::new()
    };
    entry.rows = released.then_some(receipted.answer.rows.len() as u64);
    entry.decision = peer_entry.decision.clone();
    if let Some(decision) = &peer_entry.decision {
        crate::transport::observe::learn_decision(decision == "allow");
    }
    entry.reason = peer_entry.reason.clone();
    entry.rule = peer_entry.rule.clone();
    entry.outcome = peer_entry.outcome.clone();
    entry.policy = peer_entry.policy.clone();
    entry.peer_receipt = Some(PeerReceipt {
        log: receipted.receipt.log.clone(),
        index: receipted.receipt.index,
        leaf_hash: receipted.receipt.leaf_hash.clone(),
        checkpoint_size: receipted.verified.checkpoint.size,
    });
    let notarizing = tracing::info_span!("notarize", log_index = tracing::field::Empty);
    let appended = cx
        .ledger
        .append(entry)
        .instrument(notarizing.clone())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot notarize the consumer entry; nothing released");
            ConsumerError::Ledger(e)
        })?;
    notarizing.record("log_index", appended.entry.index);
    crate::transport::observe::learn_log_index(appended.entry.index);
    Ok(appended.entry.index)
}
