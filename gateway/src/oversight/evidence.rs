//! Evidence for one replicated entry: a C2SP tlog-proof that verifies offline with the directory.
//!
//! The replica holds every entry's exact bytes, its log's Merkle tree and the signed (cosigned)
//! checkpoint it verified, so the inclusion proof is made here, at the size of that checkpoint, and
//! checked against its root before it is handed on. No department is asked: a request for the
//! proof of entry N would tell the log's owner which of its entries oversight is looking at, and it
//! can tell whose each of its entries is (its own tag key), so whom a subject officer looked up or
//! which exchange an investigation is about. Nor can a department that rewrote its log after the
//! pull change the evidence. The result is the entry's bytes, the proof and the held note, exactly
//! what `causeway log verify-proof --directory` checks.

use std::sync::Arc;

use super::pull::blocking;
use super::replica::{decode_hash, ReplicaError};
use super::Oversight;
use crate::directory::{Department, Directory};
use crate::identity::DeptId;
use causeway_ledger::merkle::{leaf_hash, verify_inclusion};
use causeway_ledger::tlog_proof::TlogProof;

/// Why evidence for a replicated entry could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The directory lists no log by that name.
    #[error("no log {log:?} in the federation directory: name a department id or log origin")]
    UnknownLog {
        /// The name asked for.
        log: String,
    },
    /// The entry is not (yet) in the replica.
    #[error("{log} #{index} is not replicated yet ({size} entries verified so far): wait for the next pull, or run `causeway audit pull` with the node stopped")]
    NotReplicated {
        /// The log.
        log: String,
        /// The entry asked for.
        index: u64,
        /// Entries replicated.
        size: u64,
    },
    /// The replica could not be read.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

/// The log named `log` (a member id or a log origin) and whom to ask for its proofs: a
/// department's, or an oversight node's own log when the directory lists it as pullable. The one
/// place an oversight node turns a log name into its owner.
pub fn log_owner(directory: &Directory, log: &str) -> Option<Arc<Department>> {
    DeptId::new(log)
        .ok()
        .and_then(|id| directory.log(&id).cloned())
        .or_else(|| directory.by_origin(log).cloned())
}

impl Oversight {
    /// Evidence for entry `index` of `log` (a department id or log origin): its bytes, its
    /// inclusion proof at the size of the checkpoint held here (checked against that checkpoint's
    /// root) and the held (cosigned) checkpoint, all from the replica.
    pub async fn evidence(&self, log: &str, index: u64) -> Result<TlogProof, EvidenceError> {
        let owner = log_owner(&self.directory(), log).ok_or_else(|| EvidenceError::UnknownLog {
            log: log.chars().take(80).collect(),
        })?;
        let dept = owner.id.to_string();
        let (state, bytes) = blocking(&self.replica, {
            let dept = dept.clone();
            move |r| Ok((r.state(&dept)?, r.entry_bytes(&dept, index)?))
        })
        .await?;
        let not_replicated = || EvidenceError::NotReplicated {
            log: dept.clone(),
            index,
            size: state.size,
        };
        let (Some(held), Some(bytes)) = (state.checkpoint.as_ref(), bytes) else {
            return Err(not_replicated());
        };
        if index >= state.size || index >= held.size {
            return Err(not_replicated());
        }
        let root = decode_hash(&held.root)
            .ok_or_else(|| ReplicaError::Corrupt(format!("{dept}'s held root is not hex")))?;
        let size = held.size;
        let proof = blocking(&self.replica, {
            let dept = dept.clone();
            move |r| r.inclusion_proof(&dept, index, size)
        })
        .await?;
        verify_inclusion(&leaf_hash(&bytes), index, size, &proof, &root).map_err(|e| {
            ReplicaError::Corrupt(format!(
                "{dept} #{index}: the stored tree does not lead to the held checkpoint's root ({e})"
            ))
        })?;
        Ok(TlogProof {
            extra: Some(bytes),
            index,
            proof,
            checkpoint: held.note.clone(),
        })
    }
}
