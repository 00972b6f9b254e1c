//! A log's signing keys over time, and the `key-rotation` entry by which one hands over to the next.
//!
//! A gateway's log key may be replaced (routinely, or because it leaked). The old key signs a
//! `key-rotation` entry naming the new one ([`Rotation`]); the checkpoint that covers that entry
//! (tree size = its index + 1) is the old key's last, and every later checkpoint is signed by the
//! new key. A verifier that knows the history ([`KeyHistory`]: each retired key, the largest size
//! it signed, and the size from which it is revoked if it was compromised) checks every checkpoint
//! under the key that was valid for its size, so history written before a rotation keeps
//! verifying. Where the history comes from (the federation directory, or the log's own rotation
//! entries) is the caller's business: this module knows no directory.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::entry::{Entry, Kind};
use super::note::{KeyType, NoteError, NoteSignature, NoteSigner, NoteVerifier};

/// First line of the message the old key signs in a rotation (docs/LEDGER.md, "Key rotation").
pub const ROTATION_MESSAGE_HEADER: &str = "causeway key rotation";

/// The message the old key signs to hand its log over to `new_vkey`:
/// `causeway key rotation\n<origin>\n<new vkey>\n`. It cannot be read as a checkpoint (its second
/// line is not a tree size), so the signature cannot be replayed as one.
pub fn rotation_message(origin: &str, new_vkey: &str) -> String {
    format!("{ROTATION_MESSAGE_HEADER}\n{origin}\n{new_vkey}\n")
}

/// Why a key history or a rotation is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyHistoryError {
    /// A key of the history names another log.
    #[error("key {vkey} names the log {name:?}, but the log is {origin:?}; every key of a log has its origin as its name")]
    OtherOrigin {
        /// The key.
        vkey: String,
        /// Its name.
        name: String,
        /// The log's origin.
        origin: String,
    },
    /// A log key that is not a plain Ed25519 note key.
    #[error("key {vkey} is not an Ed25519 note key (type 0x01)")]
    WrongType {
        /// The key.
        vkey: String,
    },
    /// Retired keys out of order.
    #[error("retired keys must be listed oldest first with strictly increasing until_size ({until_size} follows {previous})")]
    NotIncreasing {
        /// This key's `until_size`.
        until_size: u64,
        /// The one before it.
        previous: u64,
    },
    /// A revocation past the key's last size.
    #[error("key {vkey}: revoked_from = {revoked_from} is larger than until_size = {until_size}; a key can only be revoked from a size it signed")]
    RevokedPastUntil {
        /// The key.
        vkey: String,
        /// Its `revoked_from`.
        revoked_from: u64,
        /// Its `until_size`.
        until_size: u64,
    },
    /// One key listed twice.
    #[error("key {vkey} is listed twice in one log's history; a rotation needs a new key")]
    Repeated {
        /// The key.
        vkey: String,
    },
    /// A `key-rotation` entry that is not signed by the key it replaces, or does not parse.
    #[error("key-rotation entry {index}: {problem}")]
    BadRotation {
        /// Its index.
        index: u64,
        /// What is wrong.
        problem: String,
    },
}

impl KeyHistoryError {
    /// What is wrong, without the entry index (for callers that name the entry themselves).
    pub fn problem(&self) -> String {
        match self {
            KeyHistoryError::BadRotation { problem, .. } => problem.clone(),
            other => other.to_string(),
        }
    }

    fn at(self, index: u64) -> Self {
        match self {
            KeyHistoryError::BadRotation { problem, .. } => {
                KeyHistoryError::BadRotation { index, problem }
            }
            other => other,
        }
    }
}

/// Why no key may check a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRefusal {
    /// The key that signed this size was compromised: checkpoints of this size or larger under it
    /// are not trusted.
    #[error("checkpoints of size {size} were signed by key {vkey}, which is revoked from size {revoked_from}: it is not trusted there")]
    Revoked {
        /// The revoked key.
        vkey: String,
        /// The checkpoint's size.
        size: u64,
        /// From which size it is revoked.
        revoked_from: u64,
    },
    /// The note is not a checkpoint, so its size (and key) cannot be told.
    #[error("not a signed checkpoint: {0}")]
    NotACheckpoint(String),
}

/// A key a log no longer signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// The key (same name, the log's origin, as every key of the log).
    pub verifier: NoteVerifier,
    /// The largest checkpoint size it signed: its key-rotation entry's index + 1.
    pub until_size: u64,
    /// If it was compromised: checkpoints of this size or larger under it are refused.
    pub revoked_from: Option<u64>,
}

/// Which key signs a log's checkpoints of which size: retired keys, oldest first, then the current
/// key, which signs every size past the last retired key's `until_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHistory {
    retired: Vec<RetiredKey>,
    current: NoteVerifier,
}

impl KeyHistory {
    /// A log that never rotated: one key for every size.
    pub fn single(current: NoteVerifier) -> Self {
        KeyHistory {
            retired: Vec::new(),
            current,
        }
    }

    /// A history with `retired` keys (oldest first), checked: one origin and key type, `until_size`
    /// strictly increasing, `revoked_from <= until_size`, no key twice.
    pub fn new(retired: Vec<RetiredKey>, current: NoteVerifier) -> Result<Self, KeyHistoryError> {
        let origin = current.name().to_owned();
        let mut previous: Option<u64> = None;
        let mut seen = std::collections::HashSet::new();
        for key in retired
            .iter()
            .map(|r| &r.verifier)
            .chain(std::iter::once(&current))
        {
            if key.name() != origin {
                return Err(KeyHistoryError::OtherOrigin {
                    vkey: key.to_vkey(),
                    name: key.name().to_owned(),
                    origin,
                });
            }
            if key.key_type() != KeyType::Ed25519 {
                return Err(KeyHistoryError::WrongType {
                    vkey: key.to_vkey(),
                });
            }
            if !seen.insert(key.public_key().to_bytes()) {
                return Err(KeyHistoryError::Repeated {
                    vkey: key.to_vkey(),
                });
            }
        }
        for r in &retired {
            if let Some(previous) = previous.filter(|p| *p >= r.until_size) {
                return Err(KeyHistoryError::NotIncreasing {
                    until_size: r.until_size,
                    previous,
                });
            }
            if let Some(revoked_from) = r.revoked_from.filter(|f| *f > r.until_size) {
                return Err(KeyHistoryError::RevokedPastUntil {
                    vkey: r.verifier.to_vkey(),
                    revoked_from,
                    until_size: r.until_size,
                });
            }
            previous = Some(r.until_size);
        }
        Ok(KeyHistory { retired, current })
    }

    /// The history a log's own `key-rotation` entries tell (`(index, rotation)`, in log order),
    /// ending at `current`: each rotation must be signed by the key before it, and the last must
    /// name `current`. Trust in the first key still comes from elsewhere (the directory).
    pub fn from_rotations(
        rotations: &[(u64, Rotation)],
        current: NoteVerifier,
    ) -> Result<Self, KeyHistoryError> {
        let mut retired = Vec::with_capacity(rotations.len());
        let mut expected_old: Option<NoteVerifier> = None;
        for (index, rotation) in rotations {
            let bad = |problem: String| KeyHistoryError::BadRotation {
                index: *index,
                problem,
            };
            let (old, new) = rotation.verify().map_err(|e| e.at(*index))?;
            if let Some(expected) = expected_old.as_ref().filter(|e| **e != old) {
                return Err(bad(format!(
                    "it hands over from {}, but the rotation before it handed over to {}",
                    old.to_vkey(),
                    expected.to_vkey()
                )));
            }
            retired.push(RetiredKey {
                verifier: old,
                until_size: index + 1,
                revoked_from: None,
            });
            expected_old = Some(new);
        }
        if let Some(last) = expected_old.filter(|last| *last != current) {
            return Err(KeyHistoryError::BadRotation {
                index: rotations.last().map_or(0, |(i, _)| *i),
                problem: format!(
                    "the last rotation hands over to {}, but the log's key is {}",
                    last.to_vkey(),
                    current.to_vkey()
                ),
            });
        }
        KeyHistory::new(retired, current)
    }

    /// The key the log signs with now.
    pub fn current(&self) -> &NoteVerifier {
        &self.current
    }

    /// The retired keys, oldest first.
    pub fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    /// The log's origin (every key's name).
    pub fn origin(&self) -> &str {
        self.current.name()
    }

    /// Every key of the log, oldest first, the current one last.
    pub fn keys(&self) -> impl Iterator<Item = &NoteVerifier> {
        self.retired
            .iter()
            .map(|r| &r.verifier)
            .chain(std::iter::once(&self.current))
    }

    /// The key valid for checkpoints of `size`, unless it is revoked there.
    pub fn key_for(&self, size: u64) -> Result<&NoteVerifier, KeyRefusal> {
        match self.retired.iter().find(|r| size <= r.until_size) {
            None => Ok(&self.current),
            Some(r) => match r.revoked_from {
                Some(revoked_from) if size >= revoked_from => Err(KeyRefusal::Revoked {
                    vkey: r.verifier.to_vkey(),
                    size,
                    revoked_from,
                }),
                _ => Ok(&r.verifier),
            },
        }
    }

    /// The key valid for a signed checkpoint note, by the size it states (read before anything is
    /// verified: the caller then verifies the note with the key returned, so a lie about the size
    /// only picks a key that does not verify it).
    pub fn key_for_note(&self, note: &str) -> Result<&NoteVerifier, KeyRefusal> {
        // A log that never rotated has one key: nothing to read (this runs for every receipt).
        if self.retired.is_empty() {
            return Ok(&self.current);
        }
        // The size is the checkpoint's second line; the note is parsed and verified in full by
        // whoever opens it with the key returned.
        let size = note
            .split('\n')
            .nth(1)
            .and_then(|line| line.parse::<u64>().ok())
            .ok_or_else(|| KeyRefusal::NotACheckpoint("no size on its second line".into()))?;
        self.key_for(size)
    }

    /// Opens a signed checkpoint of this log under the key valid for its size.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let key = self
            .key_for_note(note)
            .map_err(CheckpointError::KeyRefused)?;
        super::checkpoint::open_checkpoint(note, key)
    }

    /// The key-rotation entries this history implies: for each retired key, the entry at
    /// `until_size - 1` must be a [`Rotation`] from that key to the next one.
    pub fn rotation_indexes(&self) -> impl Iterator<Item = (u64, &NoteVerifier, &NoteVerifier)> {
        let next = self
            .retired
            .iter()
            .skip(1)
            .map(|r| &r.verifier)
            .chain(std::iter::once(&self.current));
        self.retired
            .iter()
            .zip(next)
            .map(|(r, next)| (r.until_size.saturating_sub(1), &r.verifier, next))
    }
}

/// A `key-rotation` entry's `detail`: the old key hands the log over to the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The key that signed checkpoints up to and including this entry's.
    pub old_vkey: String,
    /// The key that signs every later checkpoint.
    pub new_vkey: String,
    /// The old key's signature over [`rotation_message`], base64 of key id || Ed25519 signature
    /// (as in a signed-note signature line).
    pub signature: String,
}

impl Rotation {
    /// `old` hands its log over to `new` (same name).
    pub fn sign(old: &NoteSigner, new: &NoteVerifier) -> Result<Self, NoteError> {
        let new_vkey = new.to_vkey();
        let line = old.sign_line(&rotation_message(old.name(), &new_vkey))?;
        let signature = line
            .trim_end()
            .rsplit_once(' ')
            .map(|(_, sig)| sig.to_owned())
            .expect("a signature line is `— name base64`");
        Ok(Rotation {
            old_vkey: old.verifier().to_vkey(),
            new_vkey,
            signature,
        })
    }

    /// The old and new keys, if the old key signed this hand-over to the new one, both are Ed25519
    /// note keys, and both name the same log. (The error's index is 0: the caller knows the
    /// entry's.)
    pub fn verify(&self) -> Result<(NoteVerifier, NoteVerifier), KeyHistoryError> {
        let bad = |problem: String| KeyHistoryError::BadRotation { index: 0, problem };
        let key = |vkey: &str| {
            NoteVerifier::from_vkey(vkey)
                .map_err(|e| bad(format!("{vkey:?} is not a verifier key: {e}")))
        };
        let (old, new) = (key(&self.old_vkey)?, key(&self.new_vkey)?);
        if old.name() != new.name() {
            return Err(bad(format!(
                "it hands log {:?} over to a key named {:?}",
                old.name(),
                new.name()
            )));
        }
        for k in [&old, &new] {
            if k.key_type() != KeyType::Ed25519 {
                return Err(bad(format!("{} is not an Ed25519 note key", k.to_vkey())));
            }
        }
        if old == new {
            return Err(bad("it hands the log over to the same key".into()));
        }
        let raw = BASE64
            .decode(&self.signature)
            .ok()
            .filter(|raw| raw.len() > 4)
            .ok_or_else(|| bad("the signature is not base64 of a key id and a signature".into()))?;
        let signature = NoteSignature {
            name: old.name().to_owned(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            signature: raw[4..].to_vec(),
        };
        old.verify(&rotation_message(old.name(), &self.new_vkey), &signature)
            .map_err(|_| {
                bad(format!(
                    "it is not signed by the key it replaces ({})",
                    self.old_vkey
                ))
            })?;
        Ok((old, new))
    }

    /// The rotation an entry records, if it is a `key-rotation` entry (`Err` if its detail is not
    /// a rotation).
    pub fn from_entry(entry: &Entry) -> Option<Result<Self, KeyHistoryError>> {
        (entry.kind == Kind::KeyRotation).then(|| {
            entry
                .detail
                .clone()
                .ok_or_else(|| "it has no detail".to_owned())
                .and_then(|d| serde_json::from_value(d).map_err(|e| e.to_string()))
                .map_err(|problem| KeyHistoryError::BadRotation {
                    index: entry.index,
                    problem,
                })
        })
    }

    /// Whether stored entry bytes may be a `key-rotation` entry, from the head of the layout the
    /// ledger writes (`{"v":V,"index":N,"time":"...","kind":"key-rotation"`), without parsing the
    /// entry: lets a scan of a whole log parse only the few that may be.
    pub fn may_be_in(bytes: &[u8]) -> bool {
        const KIND: &[u8] = br#""kind":"key-rotation""#;
        let head = &bytes[..bytes.len().min(160)];
        head.windows(KIND.len()).any(|w| w == KIND)
    }
}

/// The key-rotation entries of a log (index and rotation, in log order), scanning every entry's
/// head (see [`Rotation::may_be_in`]); an entry that is one but does not parse is an error.
pub fn rotations_in(
    reader: &super::store::Reader<'_>,
) -> Result<Vec<(u64, Rotation)>, KeyHistoryError> {
    let mut found = Vec::new();
    let mut problem = None;
    let scanned = reader.for_each_entry(0, u64::MAX, |index, bytes| {
        if problem.is_none() && Rotation::may_be_in(bytes) {
            match Entry::from_bytes(bytes)
                .ok()
                .and_then(|e| Rotation::from_entry(&e))
            {
                Some(Ok(rotation)) => found.push((index, rotation)),
                Some(Err(e)) => problem = Some(e),
                None => {}
            }
        }
        Ok(())
    });
    if let Err(e) = scanned {
        return Err(KeyHistoryError::BadRotation {
            index: 0,
            problem: format!("the log could not be read: {e}"),
        });
    }
    match problem {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::new("test/log", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn keys_are_picked_by_size_and_a_revoked_range_is_refused() {
        let (a, b, c) = (signer(1), signer(2), signer(3));
        let history = KeyHistory::new(
            vec![
                RetiredKey {
                    verifier: a.verifier(),
                    until_size: 10,
                    revoked_from: None,
                },
                RetiredKey {
                    verifier: b.verifier(),
                    until_size: 20,
                    revoked_from: Some(15),
                },
            ],
            c.verifier(),
        )
        .unwrap();
        assert_eq!(history.key_for(1).unwrap(), &a.verifier());
        assert_eq!(history.key_for(10).unwrap(), &a.verifier());
        assert_eq!(history.key_for(11).unwrap(), &b.verifier());
        assert_eq!(history.key_for(14).unwrap(), &b.verifier());
        assert!(matches!(
            history.key_for(15),
            Err(KeyRefusal::Revoked {
                revoked_from: 15,
                ..
            })
        ));
        assert!(history.key_for(20).is_err());
        assert_eq!(history.key_for(21).unwrap(), &c.verifier());
        let rotations: Vec<u64> = history.rotation_indexes().map(|(i, ..)| i).collect();
        assert_eq!(rotations, vec![9, 19]);
    }

    #[test]
    fn bad_histories_are_refused() {
        let (a, b) = (signer(1), signer(2));
        let retired = |until_size, revoked_from| RetiredKey {
            verifier: a.verifier(),
            until_size,
            revoked_from,
        };
        assert!(matches!(
            KeyHistory::new(vec![retired(5, Some(6))], b.verifier()),
            Err(KeyHistoryError::RevokedPastUntil { .. })
        ));
        assert!(matches!(
            KeyHistory::new(vec![retired(5, None)], a.verifier()),
            Err(KeyHistoryError::Repeated { .. })
        ));
        let other = NoteSigner::new("test/other", SigningKey::from_bytes(&[2; 32])).unwrap();
        assert!(matches!(
            KeyHistory::new(vec![retired(5, None)], other.verifier()),
            Err(KeyHistoryError::OtherOrigin { .. })
        ));
        let c = signer(3);
        let twice = vec![
            retired(5, None),
            RetiredKey {
                verifier: b.verifier(),
                until_size: 5,
                revoked_from: None,
            },
        ];
        assert!(matches!(
            KeyHistory::new(twice, c.verifier()),
            Err(KeyHistoryError::NotIncreasing { .. })
        ));
    }

    /// Attack: a rotation naming the attacker's key, signed by the attacker's key (or by nobody),
    /// does not hand the log over.
    #[test]
    fn a_rotation_not_signed_by_the_old_key_is_refused() {
        let (old, new, attacker) = (signer(1), signer(2), signer(9));
        let genuine = Rotation::sign(&old, &new.verifier()).unwrap();
        assert_eq!(genuine.verify().unwrap(), (old.verifier(), new.verifier()));
        // Signed by the attacker but claiming to come from the old key.
        let mut forged = Rotation::sign(&attacker, &attacker.verifier()).unwrap();
        forged.old_vkey = old.verifier().to_vkey();
        forged.new_vkey = attacker.verifier().to_vkey();
        assert!(forged.verify().is_err());
        // The genuine signature moved onto another new key.
        let mut moved = genuine.clone();
        moved.new_vkey = attacker.verifier().to_vkey();
        assert!(moved.verify().is_err());
        // And a history built from it is refused.
        assert!(KeyHistory::from_rotations(&[(4, moved)], attacker.verifier()).is_err());
        let history = KeyHistory::from_rotations(&[(4, genuine)], new.verifier()).unwrap();
        assert_eq!(history.key_for(5).unwrap(), &old.verifier());
        assert_eq!(history.key_for(6).unwrap(), &new.verifier());
    }

    #[test]
    fn the_rotation_message_is_not_a_checkpoint() {
        let text = rotation_message("test/log", &signer(2).verifier().to_vkey());
        assert!(Checkpoint::parse(&text).is_err());
    }
}
