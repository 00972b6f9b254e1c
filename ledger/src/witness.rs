//! The witness side of C2SP tlog-witness (<https://c2sp.org/tlog-witness>), as a pure state machine:
//! each gateway cosigns its peers' checkpoints, and only those consistent with the last checkpoint
//! it cosigned for that log.
//!
//! This module owns the `add-checkpoint` request body format, the decision for one request given
//! the stored [`WitnessState`] of that log (cosign, or refuse with the reason the spec maps to an
//! HTTP status), and fork detection: when a log is caught having signed two checkpoints that cannot
//! both be true, the error carries both signed notes as evidence. The caller persists the new state
//! atomically with the check (the spec's race warning) and supplies the time; this module has no
//! storage and no clock.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use super::keys::{KeyHistory, KeyRefusal};
use super::merkle::{empty_root, verify_consistency, Hash};
use super::note::{parse_note, Cosigner, NoteError, NoteVerifier, MAX_NOTE_BYTES};

/// Prefix of the old-size line of an add-checkpoint request (C2SP tlog-witness, "add-checkpoint").
pub const OLD_SIZE_PREFIX: &str = "old ";
/// Most consistency proof lines a request may carry (C2SP tlog-witness: "MUST NOT send more than 63").
pub const MAX_CONSISTENCY_PROOF_LINES: usize = 63;
/// Largest add-checkpoint request body accepted.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = MAX_NOTE_BYTES + 4096;
/// Content type of the body of a 409 response: the known size in decimal and a newline.
pub const CONFLICT_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Two checkpoints signed by the same log that cannot both be views of one append-only log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkEvidence {
    /// The signed checkpoint note seen (and, for a witness, cosigned) first.
    pub known: String,
    /// The conflicting signed checkpoint note.
    pub presented: String,
}

/// Why a checkpoint was not cosigned. [`WitnessError::http_status`] gives the status the spec
/// assigns to each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The request body is not `old N`, proof lines, a blank line and a note.
    #[error("malformed add-checkpoint request: {reason}")]
    BadRequest {
        /// What is wrong.
        reason: &'static str,
    },
    /// The checkpoint is not signed by the log's key, or names another origin.
    #[error("checkpoint rejected: {0}")]
    BadSignature(CheckpointError),
    /// No key may sign a checkpoint of this size: the key valid for it is revoked there.
    #[error("checkpoint rejected: {0}")]
    KeyRefused(KeyRefusal),
    /// The client's old size is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// The old size sent.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The client's old size is not the size this witness last cosigned; the client should retry
    /// from `known_size`.
    #[error("old size {old} does not match the last cosigned size {known_size}")]
    Conflict {
        /// The old size sent.
        old: u64,
        /// The size of the latest checkpoint this witness cosigned for the log.
        known_size: u64,
    },
    /// The consistency proof does not prove that the checkpoint extends the last cosigned one.
    #[error("consistency proof from size {old} to size {size} does not verify")]
    BadProof {
        /// The old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The log signed two checkpoints of the same size with different roots: equivocation.
    #[error("fork: the log signed two different roots for one tree size; both checkpoints are attached as evidence")]
    Fork(Box<ForkEvidence>),
    /// The cosignature could not be produced (bad timestamp).
    #[error("cannot cosign: {0}")]
    Cosign(NoteError),
}

impl WitnessError {
    /// The HTTP status C2SP tlog-witness assigns: 400, 403, 409 or 422 (500 for local failures).
    pub fn http_status(&self) -> u16 {
        match self {
            WitnessError::BadRequest { .. } | WitnessError::OldSizeTooLarge { .. } => 400,
            WitnessError::BadSignature(_) | WitnessError::KeyRefused(_) => 403,
            WitnessError::Conflict { .. } | WitnessError::Fork(_) => 409,
            WitnessError::BadProof { .. } => 422,
            WitnessError::Cosign(_) => 500,
        }
    }

    /// The 409 response body (`<known size>\n`, content type [`CONFLICT_CONTENT_TYPE`]), if any.
    pub fn conflict_body(&self) -> Option<String> {
        match self {
            WitnessError::Conflict { known_size, .. } => Some(format!("{known_size}\n")),
            _ => None,
        }
    }
}

/// What a witness remembers about one log: the latest checkpoint it cosigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessState {
    /// Tree size of the latest cosigned checkpoint.
    pub size: u64,
    /// Root hash of the latest cosigned checkpoint.
    pub root: Hash,
    /// That checkpoint's signed note, kept as evidence should the log ever contradict it.
    pub note: String,
}

/// An add-checkpoint request body: old size, consistency proof, signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// Size of the checkpoint the client believes the witness last cosigned (0 if none).
    pub old_size: u64,
    /// RFC 6962 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl AddCheckpointRequest {
    /// The request body: `old N\n`, one base64 hash per line, a blank line, the checkpoint note.
    pub fn to_body(&self) -> String {
        let mut out = format!("{OLD_SIZE_PREFIX}{}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&BASE64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a request body, with the limits of the spec (at most 63 proof lines).
    pub fn parse(body: &str) -> Result<Self, WitnessError> {
        let bad = |reason| WitnessError::BadRequest { reason };
        if body.len() > MAX_ADD_CHECKPOINT_BYTES {
            return Err(bad("request body is too large"));
        }
        let (first, mut rest) = body
            .split_once('\n')
            .ok_or(bad("missing the old size line"))?;
        let old_size = first
            .strip_prefix(OLD_SIZE_PREFIX)
            .and_then(parse_decimal)
            .ok_or(bad(
                "first line must be \"old N\", N decimal without leading zeroes",
            ))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(bad("missing the blank line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_CONSISTENCY_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let hash: Hash = (line.len() == 44)
                .then(|| BASE64.decode(line).ok())
                .flatten()
                .and_then(|v| v.try_into().ok())
                .ok_or(bad("proof line is not standard base64 of a 32-byte hash"))?;
            proof.push(hash);
        }
        parse_note(rest).map_err(|_| bad("the checkpoint is not a well-formed signed note"))?;
        Ok(Self {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }
}

/// The checkpoint's origin, read without verifying anything, so the caller can look up the log's
/// key and stored state (and answer 404 for unknown logs) before calling [`add_checkpoint`].
pub fn checkpoint_origin(signed_checkpoint: &str) -> Option<String> {
    let note = parse_note(signed_checkpoint).ok()?;
    Checkpoint::parse(&note.text).ok().map(|cp| cp.origin)
}

/// [`add_checkpoint`] for a log whose key may have rotated: the checkpoint is checked under the
/// key `keys` names for its size, and refused ([`WitnessError::KeyRefused`], 403) if that key is
/// revoked at that size (a leaked key signing checkpoints the log never made).
pub fn add_checkpoint_under(
    state: Option<&WitnessState>,
    old_size: u64,
    consistency_proof: &[Hash],
    signed_checkpoint: &str,
    keys: &KeyHistory,
    cosigner: &Cosigner,
    now: u64,
) -> Result<(WitnessState, String), WitnessError> {
    let log = keys
        .key_for_note(signed_checkpoint)
        .map_err(WitnessError::KeyRefused)?;
    add_checkpoint(
        state,
        old_size,
        consistency_proof,
        signed_checkpoint,
        log,
        cosigner,
        now,
    )
}

/// One add-checkpoint request, C2SP tlog-witness semantics: verify the log's signature, check that
/// `old_size` is the last cosigned size (`state`, `None` if this witness never cosigned for the log)
/// and the consistency proof from it, then cosign at `now` (POSIX seconds). Returns the state to
/// persist and the cosignature line to answer with.
///
/// A checkpoint of the same size as the cosigned one but with another root is a fork, reported with
/// both signed notes. A failing consistency proof is [`WitnessError::BadProof`]: it may be a broken
/// client rather than a lying log, so it is not called a fork.
pub fn add_checkpoint(
    state: Option<&WitnessState>,
    old_size: u64,
    consistency_proof: &[Hash],
    signed_checkpoint: &str,
    log: &NoteVerifier,
    cosigner: &Cosigner,
    now: u64,
) -> Result<(WitnessState, String), WitnessError> {
    let cp = open_checkpoint(signed_checkpoint, log).map_err(WitnessError::BadSignature)?;
    if old_size > cp.size {
        return Err(WitnessError::OldSizeTooLarge {
            old: old_size,
            size: cp.size,
        });
    }
    let (known_size, known_root) = state.map_or((0, empty_root()), |s| (s.size, s.root));
    if old_size != known_size {
        return Err(WitnessError::Conflict {
            old: old_size,
            known_size,
        });
    }
    if let Some(s) = state {
        if cp.size == s.size && cp.root != s.root {
            return Err(WitnessError::Fork(Box::new(ForkEvidence {
                known: s.note.clone(),
                presented: signed_checkpoint.to_owned(),
            })));
        }
    }
    verify_consistency(old_size, cp.size, &known_root, &cp.root, consistency_proof).map_err(
        |_| WitnessError::BadProof {
            old: old_size,
            size: cp.size,
        },
    )?;
    let line = cosigner
        .cosign_line(&cp.to_text(), now)
        .map_err(WitnessError::Cosign)?;
    Ok((
        WitnessState {
            size: cp.size,
            root: cp.root,
            note: signed_checkpoint.to_owned(),
        },
        line,
    ))
}

/// Compares two signed checkpoints of the same log, for example the ones two witnesses (or a
/// witness and a receipt) hold. Both must carry the log's signature. Same size with different roots
/// is a fork; otherwise `proof` must be the consistency proof from the smaller to the larger, and if
/// it fails the log could not show that its two checkpoints are consistent: [`WitnessError::BadProof`].
pub fn check_consistent(
    a: &str,
    b: &str,
    proof: &[Hash],
    log: &NoteVerifier,
) -> Result<(), WitnessError> {
    let ca = open_checkpoint(a, log).map_err(WitnessError::BadSignature)?;
    let cb = open_checkpoint(b, log).map_err(WitnessError::BadSignature)?;
    if ca.size == cb.size && ca.root != cb.root {
        return Err(WitnessError::Fork(Box::new(ForkEvidence {
            known: a.to_owned(),
            presented: b.to_owned(),
        })));
    }
    let (small, large) = if ca.size <= cb.size {
        (&ca, &cb)
    } else {
        (&cb, &ca)
    };
    verify_consistency(small.size, large.size, &small.root, &large.root, proof).map_err(|_| {
        WitnessError::BadProof {
            old: small.size,
            size: large.size,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::{sign_checkpoint, verify_cosignatures};
    use super::super::merkle::{consistency_proof, root_at, MemoryTree};
    use super::super::note::NoteSigner;
    use super::*;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "causeway.example/tax";

    struct Log {
        signer: NoteSigner,
        tree: MemoryTree,
    }

    impl Log {
        fn new(seed: u8) -> Self {
            Self {
                signer: NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap(),
                tree: MemoryTree::new(),
            }
        }
        fn grow(&mut self, n: u64, tag: &str) {
            for i in 0..n {
                self.tree.append_entry(format!("{tag} {i}").as_bytes());
            }
        }
        fn checkpoint_at(&self, size: u64) -> String {
            let cp = Checkpoint {
                origin: ORIGIN.into(),
                size,
                root: root_at(&self.tree, size).unwrap(),
                extensions: vec![],
            };
            sign_checkpoint(&cp, &self.signer).unwrap()
        }
        fn request(&self, old: u64, new: u64) -> AddCheckpointRequest {
            AddCheckpointRequest {
                old_size: old,
                proof: consistency_proof(&self.tree, old, new).unwrap(),
                checkpoint: self.checkpoint_at(new),
            }
        }
    }

    fn witness() -> Cosigner {
        Cosigner::new("causeway.example/health", SigningKey::from_bytes(&[40; 32])).unwrap()
    }

    fn submit(
        state: Option<&WitnessState>,
        req: &AddCheckpointRequest,
        log: &NoteVerifier,
    ) -> Result<(WitnessState, String), WitnessError> {
        // Every request goes through the wire format, as it would over HTTP.
        let req = AddCheckpointRequest::parse(&req.to_body())?;
        add_checkpoint(
            state,
            req.old_size,
            &req.proof,
            &req.checkpoint,
            log,
            &witness(),
            1_700_000_000,
        )
    }

    #[test]
    fn witness_follows_a_growing_log_and_its_cosignatures_verify() {
        let mut log = Log::new(1);
        let v = log.signer.verifier();
        log.grow(5, "a");
        let (s1, line) = submit(None, &log.request(0, 5), &v).unwrap();
        assert_eq!((s1.size, s1.root), (5, log.tree.root()));
        let cosigned = format!("{}{line}", log.checkpoint_at(5));
        let (_, cos) = verify_cosignatures(&cosigned, &v, &[witness().verifier()]).unwrap();
        assert_eq!(cos.len(), 1);
        assert_eq!(cos[0].timestamp, 1_700_000_000);

        log.grow(12, "b");
        let (s2, _) = submit(Some(&s1), &log.request(5, 17), &v).unwrap();
        assert_eq!(s2.size, 17);
        // Re-submitting the same checkpoint is fine (same size, same root, empty proof).
        let (s3, _) = submit(Some(&s2), &log.request(17, 17), &v).unwrap();
        assert_eq!(s3, s2);
    }

    #[test]
    fn refusals_carry_the_status_the_spec_assigns() {
        let mut log = Log::new(1);
        let v = log.signer.verifier();
        log.grow(9, "a");
        let (state, _) = submit(None, &log.request(0, 4), &v).unwrap();

        // Stale old size: 409 with the known size as body.
        let e = submit(Some(&state), &log.request(2, 9), &v).unwrap_err();
        assert_eq!(
            e,
            WitnessError::Conflict {
                old: 2,
                known_size: 4
            }
        );
        assert_eq!(e.http_status(), 409);
        assert_eq!(e.conflict_body().as_deref(), Some("4\n"));
        // Old size above the checkpoint: 400.
        let mut req = log.request(4, 9);
        req.checkpoint = log.checkpoint_at(3);
        req.proof.clear();
        assert_eq!(
            submit(Some(&state), &req, &v).unwrap_err().http_status(),
            400
        );
        // Broken proof: 422, and the state is not advanced (the caller keeps `state`).
        let mut req = log.request(4, 9);
        req.proof[0][0] ^= 1;
        let e = submit(Some(&state), &req, &v).unwrap_err();
        assert_eq!(e, WitnessError::BadProof { old: 4, size: 9 });
        assert_eq!(e.http_status(), 422);
        // Not signed by the log's key: 403.
        let other = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[2; 32])).unwrap();
        let e = submit(Some(&state), &log.request(4, 9), &other.verifier()).unwrap_err();
        assert_eq!(e.http_status(), 403);
        // Proof lines above the spec's limit: 400 before any hashing.
        let mut body = String::from("old 4\n");
        body.push_str(&format!("{}\n", BASE64.encode([0u8; 32])).repeat(64));
        body.push('\n');
        body.push_str(&log.checkpoint_at(9));
        assert_eq!(
            AddCheckpointRequest::parse(&body)
                .unwrap_err()
                .http_status(),
            400
        );
        for bad in [
            "",
            "old 4",
            "old 04\n\n",
            "old x\n\n",
            "new 4\n\n",
            "old 4\n\nnot a note\n",
        ] {
            assert!(AddCheckpointRequest::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn equivocation_is_caught_as_a_fork_with_both_checkpoints() {
        // The log shows the witness one history, then signs a different history of the same size.
        let mut honest = Log::new(1);
        honest.grow(6, "a");
        let mut forked = Log::new(1);
        forked.grow(6, "z");
        let v = honest.signer.verifier();
        let (state, _) = submit(None, &honest.request(0, 6), &v).unwrap();
        let e = submit(Some(&state), &forked.request(6, 6), &v).unwrap_err();
        let WitnessError::Fork(evidence) = &e else {
            panic!("expected a fork, got {e:?}");
        };
        assert_eq!(evidence.known, honest.checkpoint_at(6));
        assert_eq!(evidence.presented, forked.checkpoint_at(6));
        assert_eq!(e.http_status(), 409);
        // Both pieces of evidence carry the log's signature, so anyone can check them later.
        assert_eq!(
            check_consistent(&evidence.known, &evidence.presented, &[], &v),
            Err(WitnessError::Fork(evidence.clone()))
        );

        // A larger forked checkpoint cannot be proven consistent with what the witness cosigned.
        forked.grow(4, "y");
        let e = submit(Some(&state), &forked.request(6, 10), &v).unwrap_err();
        assert_eq!(e, WitnessError::BadProof { old: 6, size: 10 });
        // Two witnesses holding different checkpoints: only the honest pair is consistent.
        honest.grow(4, "b");
        let proof = consistency_proof(&honest.tree, 6, 10).unwrap();
        check_consistent(
            &honest.checkpoint_at(10),
            &honest.checkpoint_at(6),
            &proof,
            &v,
        )
        .unwrap();
        assert!(check_consistent(
            &honest.checkpoint_at(6),
            &forked.checkpoint_at(10),
            &proof,
            &v
        )
        .is_err());
    }

    #[test]
    fn origin_lookup_does_not_need_keys() {
        let mut log = Log::new(1);
        log.grow(1, "a");
        assert_eq!(
            checkpoint_origin(&log.checkpoint_at(1)).as_deref(),
            Some(ORIGIN)
        );
        assert_eq!(checkpoint_origin("garbage"), None);
    }

    /// Attack: a leaked log key, revoked from size 6 once the log rotated at size 8, signs a
    /// checkpoint of a tree the log never had. Witnesses refuse it (403), though its signature is
    /// the old key's; checkpoints before the revocation, and the new key's, are still cosigned.
    #[test]
    fn a_checkpoint_under_a_revoked_key_is_refused_beyond_revoked_from() {
        use crate::keys::RetiredKey;
        let mut log = Log::new(1);
        log.grow(10, "e");
        let new_key = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[2; 32])).unwrap();
        let keys = KeyHistory::new(
            vec![RetiredKey {
                verifier: log.signer.verifier(),
                until_size: 8,
                revoked_from: Some(6),
            }],
            new_key.verifier(),
        )
        .unwrap();
        let w = witness();
        let submit_under = |state: Option<&WitnessState>, req: &AddCheckpointRequest| {
            let req = AddCheckpointRequest::parse(&req.to_body()).unwrap();
            add_checkpoint_under(
                state,
                req.old_size,
                &req.proof,
                &req.checkpoint,
                &keys,
                &w,
                1,
            )
        };
        // Before revoked_from, the old key is still good.
        let (state, _) = submit_under(None, &log.request(0, 5)).unwrap();
        // The attacker's checkpoint of size 7 (in the revoked range) under the leaked key.
        let mut attacker = Log::new(1);
        attacker.grow(7, "forged");
        let forged = AddCheckpointRequest {
            old_size: 0,
            proof: vec![],
            checkpoint: attacker.checkpoint_at(7),
        };
        let refused = submit_under(None, &forged).unwrap_err();
        assert!(
            matches!(
                refused,
                WitnessError::KeyRefused(KeyRefusal::Revoked {
                    size: 7,
                    revoked_from: 6,
                    ..
                })
            ),
            "{refused}"
        );
        assert_eq!(refused.http_status(), 403);
        // Past until_size, the leaked key is not the log's key at all.
        attacker.grow(5, "more");
        let past = AddCheckpointRequest {
            old_size: 0,
            proof: vec![],
            checkpoint: attacker.checkpoint_at(12),
        };
        let refused = submit_under(None, &past).unwrap_err();
        assert!(
            matches!(refused, WitnessError::BadSignature(_)),
            "{refused}"
        );
        // The log's own checkpoint under the new key is cosigned.
        let new_log = Log {
            signer: new_key,
            tree: log.tree,
        };
        submit_under(Some(&state), &new_log.request(5, 10)).unwrap();
    }
}
