//! Evidence for one replicated entry: a C2SP tlog-proof that verifies offline with the directory.
//!
//! The replica holds every entry's exact bytes and the signed (cosigned) checkpoint it verified for
//! each log, but not the tree's inner nodes. So the inclusion proof is asked of the log's owner, at
//! the size of the checkpoint held here, and verified against that checkpoint's root before it is
//! handed on: what a department serves is never trusted. The result is the entry's bytes, the proof
//! and the held note, exactly what `causeway log verify-proof --directory` checks.

use std::sync::Arc;

use serde::Deserialize;

use super::pull::{blocking, REQUEST_TIMEOUT};
use super::replica::{decode_hash, ReplicaError};
use super::Oversight;
use crate::directory::{Department, Directory};
use crate::identity::DeptId;
use crate::log_api::paths;
use crate::transport::peer::PeerRequest;
use causeway_ledger::merkle::{leaf_hash, verify_inclusion, Hash};
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
    /// The owner could not be asked for the proof.
    #[error("{log}'s gateway could not be asked for the inclusion proof of #{index}: {problem}; retry later")]
    Unreachable {
        /// The log.
        log: String,
        /// The entry.
        index: u64,
        /// What went wrong.
        problem: String,
    },
    /// The owner served a proof that does not lead to the root of the checkpoint held here.
    #[error("{log}'s gateway served an inclusion proof for #{index} that does not verify against the checkpoint of size {size} held here ({problem}): nothing was returned; report it to the department and retry")]
    BadProof {
        /// The log.
        log: String,
        /// The entry.
        index: u64,
        /// The checkpoint size.
        size: u64,
        /// What was wrong.
        problem: String,
    },
    /// The replica could not be read.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

#[derive(Deserialize)]
struct InclusionAnswer {
    proof: Vec<String>,
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
    /// Evidence for entry `index` of `log` (a department id or log origin): its bytes from the
    /// replica, an inclusion proof fetched from the log's owner at the size of the checkpoint held
    /// here and verified against that checkpoint's root, and the held (cosigned) checkpoint.
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
        let path = format!("{}?index={index}&size={}", paths::INCLUSION, held.size);
        let unreachable = |problem: String| EvidenceError::Unreachable {
            log: dept.clone(),
            index,
            problem,
        };
        let (status, body) = self
            .peers
            .send(&owner, PeerRequest::get(path), REQUEST_TIMEOUT)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if status != 200 {
            let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(unreachable(format!("it answered {status}: {text}")));
        }
        let bad = |problem: &str| EvidenceError::BadProof {
            log: dept.clone(),
            index,
            size: held.size,
            problem: problem.to_owned(),
        };
        let answer: InclusionAnswer = serde_json::from_slice(&body)
            .map_err(|_| bad("the answer is not the documented JSON"))?;
        let proof: Vec<Hash> = answer
            .proof
            .iter()
            .map(|h| decode_hash(h).ok_or_else(|| bad("a hash is not 32 bytes of hex")))
            .collect::<Result<_, _>>()?;
        verify_inclusion(&leaf_hash(&bytes), index, held.size, &proof, &root)
            .map_err(|e| bad(&e.to_string()))?;
        Ok(TlogProof {
            extra: Some(bytes),
            index,
            proof,
            checkpoint: held.note.clone(),
        })
    }
}
