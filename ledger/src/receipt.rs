//! The provider's receipt: proof that an exchange was notarized before any data left.
//!
//! A receipt carries the entry's exact bytes, its index and leaf hash, the signed checkpoint of the
//! batch that committed it, and the inclusion proof. Anyone holding the provider's note verifier
//! key can check it with no network access.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use super::entry::Entry;
use super::merkle::{leaf_hash, verify_inclusion, Hash};
use super::note::NoteVerifier;
use super::Appended;

/// Longest inclusion proof accepted (a tree of 2^64 leaves needs 64).
pub const MAX_PROOF_HASHES: usize = 64;
/// Largest entry accepted in a receipt.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// A notarization receipt, as it travels in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The log's origin.
    pub log: String,
    /// Entry index.
    pub index: u64,
    /// Leaf hash, hex.
    pub leaf_hash: String,
    /// The entry's exact bytes, base64.
    pub entry: String,
    /// Signed checkpoint note that covers the entry.
    pub checkpoint: String,
    /// Inclusion proof hashes, hex, leaf to root.
    pub inclusion_proof: Vec<String>,
}

/// A receipt that checked out.
#[derive(Debug, Clone)]
pub struct VerifiedReceipt {
    /// The notarized entry.
    pub entry: Entry,
    /// The checkpoint it is included in.
    pub checkpoint: Checkpoint,
    /// Its leaf hash.
    pub leaf_hash: Hash,
}

/// Why a receipt was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// A field is not well formed.
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// The checkpoint is not signed by the expected log.
    #[error("the receipt's checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// The proof does not lead from the entry to the checkpoint's root.
    #[error("the inclusion proof does not verify: {0}")]
    Proof(String),
}

impl Receipt {
    /// Build the receipt of an appended entry.
    pub fn new(origin: &str, appended: &Appended) -> Self {
        Receipt {
            log: origin.to_owned(),
            index: appended.entry.index,
            leaf_hash: hex::encode(appended.leaf_hash),
            entry: base64::engine::general_purpose::STANDARD.encode(&appended.bytes),
            checkpoint: appended.checkpoint.as_str().to_owned(),
            inclusion_proof: appended.inclusion_proof.iter().map(hex::encode).collect(),
        }
    }

    /// Check everything against the log's key: entry bytes -> leaf hash -> proof -> signed root.
    pub fn verify(&self, log: &NoteVerifier) -> Result<VerifiedReceipt, ReceiptError> {
        self.verify_with(log, |note| open_checkpoint(note, log))
    }

    /// [`Receipt::verify`], opening the checkpoint note with `open` (which must verify it against
    /// `log` exactly as [`open_checkpoint`] does): lets a caller that sees the same signed
    /// checkpoint in many receipts (one per ledger batch) check its signature once.
    pub fn verify_with(
        &self,
        log: &NoteVerifier,
        open: impl FnOnce(&str) -> Result<Checkpoint, CheckpointError>,
    ) -> Result<VerifiedReceipt, ReceiptError> {
        if self.log != log.name() {
            return Err(ReceiptError::Checkpoint(format!(
                "receipt names log {:?}, expected {:?}",
                self.log,
                log.name()
            )));
        }
        if self.entry.len() > MAX_ENTRY_BYTES * 4 / 3 + 4
            || self.inclusion_proof.len() > MAX_PROOF_HASHES
        {
            return Err(ReceiptError::Malformed("too large"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.entry)
            .map_err(|_| ReceiptError::Malformed("entry is not base64"))?;
        let leaf = leaf_hash(&bytes);
        if hex::encode(leaf) != self.leaf_hash {
            return Err(ReceiptError::Proof(
                "the leaf hash is not the hash of the entry".into(),
            ));
        }
        let checkpoint =
            open(&self.checkpoint).map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
        let proof = self
            .inclusion_proof
            .iter()
            .map(|h| {
                hex::decode(h)
                    .ok()
                    .and_then(|v| <Hash>::try_from(v).ok())
                    .ok_or(ReceiptError::Malformed("proof hash is not 32 bytes of hex"))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        verify_inclusion(&leaf, self.index, checkpoint.size, &proof, &checkpoint.root)
            .map_err(|e| ReceiptError::Proof(e.to_string()))?;
        let entry = Entry::from_bytes(&bytes)
            .map_err(|_| ReceiptError::Malformed("entry is not a ledger entry"))?;
        if entry.index != self.index {
            return Err(ReceiptError::Malformed(
                "entry index differs from receipt index",
            ));
        }
        Ok(VerifiedReceipt {
            entry,
            checkpoint,
            leaf_hash: leaf,
        })
    }
}
