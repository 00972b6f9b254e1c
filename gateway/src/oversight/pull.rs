//! Pulling one department's log over mTLS and verifying it before anything is stored.
//!
//! A pull fetches the signed checkpoint (and checks the log's signature and every known witness's
//! cosignature), proves it consistent with the checkpoint held from the last pull (RFC 9162
//! consistency proof), then fetches the new entries in pages and follows them with a
//! [`LogFollower`]: each entry is re-hashed here, its `index` and `prev` checked, and the tree rebuilt.
//! Every chunk is proven to be a prefix of the signed tree (consistency proof from the chunk's
//! own root) before it is committed, and the last chunk's root must equal the checkpoint's. A
//! department that contradicts itself is flagged with both signed checkpoints kept as evidence;
//! an unreachable one just keeps its last error.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::replica::{decode_hash, Flag, HeldCheckpoint, LogState, Replica, ReplicaError};
use crate::directory::Department;
use crate::log_api::{paths, MAX_ENTRIES_PER_CALL};
use crate::transport::peer::{PeerRequest, PeerTransport};
use causeway_ledger::checkpoint::verify_cosignatures;
use causeway_ledger::merkle::{verify_consistency, Hash};
use causeway_ledger::note::NoteVerifier;

/// Entries verified and committed per transaction.
pub const CHUNK: u64 = 10_000;
/// Time allowed for one request to a department.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a pull stopped without evidence of wrongdoing (try again later).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The department could not be asked, or answered with an error status.
    #[error("{dept}: {problem}")]
    Peer {
        /// Department.
        dept: String,
        /// What went wrong.
        problem: String,
    },
    /// The replica could not be written.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

/// What one pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// Department.
    pub dept: String,
    /// Replicated size before.
    pub from: u64,
    /// Replicated size after.
    pub to: u64,
    /// Known witnesses that cosigned the checkpoint.
    pub witnesses: usize,
    /// Set if the department's log is (now or already) flagged.
    pub flag: Option<Flag>,
    /// True if this pull found the evidence.
    pub newly_flagged: bool,
}

#[derive(Deserialize)]
struct ConsistencyAnswer {
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct EntriesAnswer {
    start: u64,
    entries: Vec<String>,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of the current time cannot fail")
}

/// One department's log, as seen from the oversight node.
pub struct LogPuller<'a> {
    /// How to reach departments.
    pub peers: &'a PeerTransport,
    /// The department.
    pub dept: &'a Department,
    /// Witness keys of the federation.
    pub witnesses: &'a [NoteVerifier],
    /// Where verified entries go.
    pub replica: Arc<Replica>,
}

impl LogPuller<'_> {
    async fn get(&self, path: String) -> Result<bytes::Bytes, PullError> {
        let peer = |problem: String| PullError::Peer {
            dept: self.dept.id.to_string(),
            problem,
        };
        let (status, body) = self
            .peers
            .send(self.dept, PeerRequest::get(path.clone()), REQUEST_TIMEOUT)
            .await
            .map_err(|e| peer(e.to_string()))?;
        if status != 200 {
            let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(peer(format!("{path} answered {status}: {text}")));
        }
        Ok(body)
    }

    async fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, PullError> {
        let body = self
            .get(format!("{}?old={old}&new={new}", paths::CONSISTENCY))
            .await?;
        let bad = |problem: &str| PullError::Peer {
            dept: self.dept.id.to_string(),
            problem: format!("consistency proof {old}..{new}: {problem}"),
        };
        let answer: ConsistencyAnswer =
            serde_json::from_slice(&body).map_err(|_| bad("not the documented JSON"))?;
        answer
            .proof
            .iter()
            .map(|h| decode_hash(h).ok_or_else(|| bad("a hash is not 32 bytes of hex")))
            .collect()
    }

    /// Pull and verify everything new. `progress(done, total)` is called as entries are verified.
    pub async fn pull(
        &self,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<PullReport, PullError> {
        let dept = self.dept.id.to_string();
        let replica = self.replica.clone();
        let mut state = blocking(&replica, {
            let dept = dept.clone();
            move |r| r.state(&dept)
        })
        .await?;
        let from = state.size;
        if state.flag.is_some() {
            return Ok(self.report(&state, from, false));
        }
        let started_ms =
            (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        match self.pull_inner(&mut state, progress).await {
            Ok(()) => {
                if state.flag.is_none() {
                    state.last_pull_started_ms = Some(started_ms);
                }
                state.last_error = None;
                state.last_pull = Some(now_rfc3339());
                self.save(&state).await?;
                let newly_flagged = state.flag.is_some();
                Ok(self.report(&state, from, newly_flagged))
            }
            Err(PullError::Peer { dept, problem }) => {
                state.last_error = Some(problem.clone());
                state.last_pull = Some(now_rfc3339());
                self.save(&state).await?;
                Err(PullError::Peer { dept, problem })
            }
            Err(e) => Err(e),
        }
    }

    fn report(&self, state: &LogState, from: u64, newly_flagged: bool) -> PullReport {
        PullReport {
            newly_flagged,
            dept: self.dept.id.to_string(),
            from,
            to: state.size,
            witnesses: state.witnesses.len(),
            flag: state.flag.clone(),
        }
    }

    async fn save(&self, state: &LogState) -> Result<(), PullError> {
        let (dept, state) = (self.dept.id.to_string(), state.clone());
        blocking(&self.replica, move |r| r.put_state(&dept, &state)).await?;
        Ok(())
    }

    fn flag(
        &self,
        state: &mut LogState,
        reason: &str,
        message: String,
        served: Option<&str>,
        detail: Option<serde_json::Value>,
    ) {
        tracing::error!(department = %self.dept.id, reason, %message, "oversight: department log flagged; evidence kept");
        state.flag = Some(Flag {
            reason: reason.to_owned(),
            message,
            detected_at: now_rfc3339(),
            held: state.checkpoint.as_ref().map(|c| c.note.clone()),
            served: served.map(str::to_owned),
            detail,
        });
    }

    async fn pull_inner(
        &self,
        state: &mut LogState,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<(), PullError> {
        let peer = |problem: String| PullError::Peer {
            dept: self.dept.id.to_string(),
            problem,
        };
        let note = self.get(paths::CHECKPOINT.to_owned()).await?;
        let note = String::from_utf8(note.to_vec())
            .map_err(|_| peer("the checkpoint is not UTF-8".into()))?;
        // Under the key valid for its size (the department may have rotated its key).
        let key = self
            .dept
            .keys
            .key_for_note(&note)
            .map_err(|e| peer(format!("the served checkpoint is refused: {e}")))?;
        let (cp, cosignatures) = verify_cosignatures(&note, key, self.witnesses)
            .map_err(|e| peer(format!("the served checkpoint does not verify: {e}")))?;
        // 1. The new checkpoint must extend the one held.
        if let Some(held) = state.checkpoint.clone() {
            let held_root = decode_hash(&held.root)
                .ok_or_else(|| ReplicaError::Corrupt("a held root is not hex".into()))?;
            if cp.size < held.size {
                let message = format!(
                    "the log shrank: it signed size {} before and now serves size {}",
                    held.size, cp.size
                );
                self.flag(state, "shrunk", message, Some(&note), None);
                return Ok(());
            }
            let proof = if cp.size == held.size {
                Vec::new()
            } else {
                self.consistency(held.size, cp.size).await?
            };
            if verify_consistency(held.size, cp.size, &held_root, &cp.root, &proof).is_err() {
                let (reason, message) = if cp.size == held.size {
                    (
                        "fork",
                        format!(
                            "two signed checkpoints of size {} with different roots",
                            cp.size
                        ),
                    )
                } else {
                    ("inconsistent", format!(
                        "the checkpoint of size {} is not consistent with the one of size {} held since the last pull (history was rewritten)",
                        cp.size, held.size
                    ))
                };
                let proof: Vec<String> = proof.iter().map(hex::encode).collect();
                self.flag(
                    state,
                    reason,
                    message,
                    Some(&note),
                    Some(serde_json::json!({"consistency_proof": proof})),
                );
                return Ok(());
            }
        }
        state.checkpoint = Some(HeldCheckpoint {
            size: cp.size,
            root: hex::encode(cp.root),
            note: note.clone(),
        });
        state.witnesses = cosignatures
            .iter()
            .map(|c| c.witness.name().to_owned())
            .collect();
        // 2. Fetch, follow and commit the new entries chunk by chunk.
        let mut follower = state.follower()?;
        let total = cp.size;
        progress(follower.size(), total);
        while follower.size() < cp.size {
            let chunk_end = (follower.size() + CHUNK).min(cp.size);
            let mut batch = Vec::new();
            while follower.size() < chunk_end {
                let start = follower.size();
                let end = chunk_end.min(start + MAX_ENTRIES_PER_CALL);
                let body = self
                    .get(format!("{}?start={start}&end={end}", paths::ENTRIES))
                    .await?;
                let answer: EntriesAnswer = serde_json::from_slice(&body)
                    .map_err(|_| peer("the entries answer is not the documented JSON".into()))?;
                if answer.start != start || answer.entries.is_empty() {
                    return Err(peer(format!(
                        "asked for entries {start}..{end} and got {} from {}",
                        answer.entries.len(),
                        answer.start
                    )));
                }
                for encoded in answer.entries.iter().take((end - start) as usize) {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map_err(|_| peer("an entry is not base64".into()))?;
                    match follower.follow(&bytes) {
                        Ok(entry) => batch.push((bytes, entry)),
                        Err(brk) => {
                            let detail = serde_json::json!({"index": brk.index, "entry": encoded});
                            self.flag(
                                state,
                                "chain-break",
                                format!("the log it signed is not a valid chain: {brk}"),
                                Some(&note),
                                Some(detail),
                            );
                            return Ok(());
                        }
                    }
                }
                progress(follower.size(), total);
            }
            // The chunk must be a prefix of the signed tree before it is stored.
            let ours = follower.root();
            let proof = if chunk_end == cp.size {
                Vec::new()
            } else {
                self.consistency(chunk_end, cp.size).await?
            };
            if verify_consistency(chunk_end, cp.size, &ours, &cp.root, &proof).is_err() {
                let message = format!(
                    "the entries served up to {chunk_end} do not hash to the tree its checkpoint of size {} signs",
                    cp.size
                );
                self.flag(state, "entries-mismatch", message, Some(&note), None);
                return Ok(());
            }
            state.advance(&follower);
            let (dept, snapshot) = (self.dept.id.clone(), state.clone());
            blocking(&self.replica, move |r| r.commit(&dept, &batch, &snapshot)).await?;
        }
        Ok(())
    }
}

/// Run a replica operation off the async threads.
pub async fn blocking<R: Send + 'static>(
    replica: &Arc<Replica>,
    f: impl FnOnce(&Replica) -> Result<R, ReplicaError> + Send + 'static,
) -> Result<R, ReplicaError> {
    let replica = replica.clone();
    tokio::task::spawn_blocking(move || f(&replica))
        .await
        .map_err(|e| ReplicaError::Storage(format!("a replica task failed: {e}")))?
}
