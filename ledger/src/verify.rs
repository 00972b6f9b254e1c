//! `causeway log verify`: re-derive everything from the stored entry bytes, trusting no stored hash.
//!
//! Re-hashes every entry, checks indexes and the `prev` chain, rebuilds the Merkle tree, and checks
//! every stored checkpoint (signature, and root at its size) against the rebuilt tree, so any two
//! stored checkpoints are consistent by construction. Reports the first index that is wrong.

use super::checkpoint::{open_checkpoint, open_checkpoint_batch, Checkpoint};
use super::entry::Entry;
use super::keys::{KeyHistory, Rotation};
use super::merkle::{leaf_hash, Frontier, Hash, NodeSource};
use super::note::parse_note;
use super::note::NoteVerifier;

use super::store::Reader;
use super::LedgerError;

/// The fields the chain check needs, for entries that are not in the ledger's canonical layout.
#[derive(serde::Deserialize)]
struct ChainFields<'a> {
    index: u64,
    #[serde(borrow)]
    prev: &'a str,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Of those, checkpoints signed by a key revoked at their size: their roots match the log,
    /// but their signatures prove nothing (later checkpoints, under the next key, cover them).
    pub revoked: u64,
    /// The latest checkpoint's root, hex.
    pub root: String,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// An entry is wrong.
    #[error("entry {index}: {problem}")]
    Entry {
        /// Its index.
        index: u64,
        /// What is wrong.
        problem: String,
    },
    /// A checkpoint is wrong.
    #[error("checkpoint at size {size}: {problem}")]
    Checkpoint {
        /// Its tree size.
        size: u64,
        /// What is wrong.
        problem: String,
    },
    /// The store could not be read.
    #[error("{0}")]
    Storage(String),
}

impl From<LedgerError> for VerifyFailure {
    fn from(e: LedgerError) -> Self {
        VerifyFailure::Storage(e.to_string())
    }
}

/// Verify a whole log. `progress` is called with the number of entries checked so far.
///
/// Checkpoint signatures are checked on a second thread, in batches, while this one reads the
/// entries; entries are re-hashed on every core, a window at a time, and folded into the rebuilt
/// tree here in order, where each checkpoint's root is compared as the tree reaches its size.
pub fn verify_log(
    reader: &Reader<'_>,
    log: &NoteVerifier,
    progress: impl FnMut(u64),
) -> Result<Verified, VerifyFailure> {
    verify_log_history(reader, &KeyHistory::single(log.clone()), progress)
}

/// [`verify_log`] for a log whose key rotated: each checkpoint is checked under the key `keys`
/// names for its size, and each key-rotation entry the history implies must be at its index and
/// signed by the key it retires.
pub fn verify_log_history(
    reader: &Reader<'_>,
    keys: &KeyHistory,
    mut progress: impl FnMut(u64),
) -> Result<Verified, VerifyFailure> {
    let checkpoints = reader.checkpoints()?;
    let rotation_problem = verify_rotations(reader, keys);
    std::thread::scope(|scope| {
        let signatures = scope.spawn(|| verify_signatures(&checkpoints, keys));
        let chain = verify_chain(reader, &checkpoints, &mut progress);
        let (signature_problem, revoked) = signatures
            .join()
            .expect("the signature thread does not panic");
        let signature_problem = match (signature_problem, rotation_problem) {
            (Some(a), Some(b)) => Some(if first_index(&b) < first_index(&a) {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        };
        let chain = chain.map(|verified| Verified {
            revoked,
            ..verified
        });
        // Report whichever problem comes first in the log.
        match (chain, signature_problem) {
            (Ok(verified), None) => Ok(verified),
            (Ok(_), Some(problem)) => Err(problem),
            (Err(problem), None) => Err(problem),
            (Err(chain), Some(sig)) => Err(if first_index(&sig) < first_index(&chain) {
                sig
            } else {
                chain
            }),
        }
    })
}

/// Checkpoints verified per Ed25519 batch.
const SIGNATURE_BATCH: usize = 64;

/// The first key-rotation entry the history implies that is missing or wrong.
fn verify_rotations(reader: &Reader<'_>, keys: &KeyHistory) -> Option<VerifyFailure> {
    keys.rotation_indexes().find_map(|(index, old, new)| {
        let fail = |problem: String| Some(VerifyFailure::Entry { index, problem });
        let bytes = match reader.entry(index) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return fail(
                "the key history names a key-rotation entry here, but the log has no such entry"
                    .into(),
            ),
            Err(e) => return Some(e.into()),
        };
        let rotation = Entry::from_bytes(bytes)
            .ok()
            .and_then(|e| Rotation::from_entry(&e));
        match rotation {
            None => fail(format!(
                "the key history retires {old} here, but this is not a key-rotation entry"
            )),
            Some(Err(e)) => fail(e.problem()),
            Some(Ok(rotation)) => match rotation.verify() {
                Err(e) => fail(e.problem()),
                Ok((o, n)) if (&o, &n) != (old, new) => fail(format!(
                    "it hands the log from {o} to {n}, but the key history says from {old} to {new}"
                )),
                Ok(_) => None,
            },
        }
    })
}

/// The first stored checkpoint whose signature or size is wrong, and how many were under a revoked
/// key (not checked: a revoked key proves nothing). Each run of checkpoints under one key is
/// checked in batches; batches that verify as a whole are done; a batch that does not is opened
/// note by note to name the checkpoint and the reason.
fn verify_signatures(
    checkpoints: &[(u64, String)],
    keys: &KeyHistory,
) -> (Option<VerifyFailure>, u64) {
    let mut revoked = 0;
    let mut rest = checkpoints;
    while let Some((size, _)) = rest.first() {
        // The run of checkpoints that the same key (or the same revocation) covers.
        let key = keys.key_for(*size).ok();
        let len = rest
            .iter()
            .position(|(size, _)| keys.key_for(*size).ok() != key)
            .unwrap_or(rest.len());
        let (run, after) = rest.split_at(len);
        match key {
            None => revoked += run.len() as u64,
            Some(key) => {
                if let Some(problem) = verify_run(run, key) {
                    return (Some(problem), revoked);
                }
            }
        }
        rest = after;
    }
    (None, revoked)
}

/// The first checkpoint of a run under one key whose signature or size is wrong.
fn verify_run(checkpoints: &[(u64, String)], log: &NoteVerifier) -> Option<VerifyFailure> {
    checkpoints.chunks(SIGNATURE_BATCH).find_map(|batch| {
        let notes: Vec<&str> = batch.iter().map(|(_, note)| note.as_str()).collect();
        let sizes_match = |opened: Vec<Checkpoint>| {
            opened
                .iter()
                .zip(batch)
                .all(|(cp, (size, _))| cp.size == *size)
        };
        if open_checkpoint_batch(&notes, log).is_some_and(sizes_match) {
            return None;
        }
        batch
            .iter()
            .find_map(|(size, note)| match open_checkpoint(note, log) {
                Err(e) => Some(VerifyFailure::Checkpoint {
                    size: *size,
                    problem: format!("signature does not verify: {e}"),
                }),
                Ok(cp) if cp.size != *size => Some(VerifyFailure::Checkpoint {
                    size: *size,
                    problem: format!("stored under size {size} but says {}", cp.size),
                }),
                Ok(_) => None,
            })
    })
}

fn first_index(f: &VerifyFailure) -> u64 {
    match f {
        VerifyFailure::Entry { index, .. } => *index,
        VerifyFailure::Checkpoint { size, .. } => size.saturating_sub(1),
        VerifyFailure::Storage(_) => 0,
    }
}

/// Entries read and hashed per round of parallel work.
const WINDOW: usize = 32_768;

/// Indexes, `prev` links, leaf hashes, and each stored checkpoint's root against the rebuilt tree.
fn verify_chain(
    reader: &Reader<'_>,
    checkpoints: &[(u64, String)],
    progress: &mut impl FnMut(u64),
) -> Result<Verified, VerifyFailure> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut chain = Chain {
        reader,
        pending: checkpoints.iter().peekable(),
        frontier: Frontier::default(),
        prev: [0; 32],
        problem: None,
    };
    chain.problem = check_roots(&chain.frontier, &mut chain.pending);
    let mut window = Vec::with_capacity(WINDOW);
    reader.for_each_entry(0, u64::MAX, |index, bytes| {
        if chain.problem.is_none() {
            window.push((index, bytes));
        }
        if window.len() == WINDOW {
            chain.fold(&window, &read_entries(&window, threads));
            window.clear();
            progress(chain.frontier.size());
        }
        Ok(())
    })?;
    chain.fold(&window, &read_entries(&window, threads));
    let Chain {
        frontier,
        mut pending,
        problem,
        ..
    } = chain;
    progress(frontier.size());
    if let Some(problem) = problem {
        return Err(problem);
    }
    if let Some((size, _)) = pending.peek() {
        return Err(VerifyFailure::Checkpoint {
            size: *size,
            problem: format!(
                "covers {size} entries but only {} are stored",
                frontier.size()
            ),
        });
    }
    Ok(Verified {
        entries: frontier.size(),
        checkpoints: checkpoints.len() as u64,
        revoked: 0,
        root: hex::encode(frontier.root()),
    })
}

/// What one entry's bytes say: its index and `prev` (or why they cannot be read), and its leaf hash.
type Read = (Result<(u64, Hash), String>, Hash);

/// Reads a window of entries on `threads` threads.
fn read_entries(window: &[(u64, &[u8])], threads: usize) -> Vec<Read> {
    let read = |part: &[(u64, &[u8])]| -> Vec<Read> {
        part.iter()
            .map(|(_, bytes)| {
                // Hash first: it streams the bytes into cache for the field reads.
                let leaf = leaf_hash(bytes);
                (chain_fields(bytes), leaf)
            })
            .collect()
    };
    if threads < 2 || window.len() < 1024 {
        return read(window);
    }
    let per_thread = window.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let rest: Vec<_> = window
            .chunks(per_thread)
            .skip(1)
            .map(|part| scope.spawn(move || read(part)))
            .collect();
        let mut out = read(&window[..per_thread]);
        for part in rest {
            out.extend(part.join().expect("reading entries does not panic"));
        }
        out
    })
}

/// The rebuilt log so far.
struct Chain<'a, 'r> {
    reader: &'a Reader<'r>,
    pending: Pending<'a>,
    frontier: Frontier,
    /// Leaf hash of the last entry folded in (zeros before the first).
    prev: Hash,
    problem: Option<VerifyFailure>,
}

impl Chain<'_, '_> {
    /// Folds read entries into the tree in order, stopping at the first problem.
    fn fold(&mut self, window: &[(u64, &[u8])], read: &[Read]) {
        for (&(index, _), (fields, leaf)) in window.iter().zip(read) {
            if self.problem.is_some() {
                return;
            }
            let fail = |problem: String| Some(VerifyFailure::Entry { index, problem });
            if index != self.frontier.size() {
                self.problem = fail(format!(
                    "missing entry {} (next stored is {index})",
                    self.frontier.size()
                ));
                return;
            }
            match fields {
                Err(e) => self.problem = fail(e.clone()),
                Ok((said, _)) if *said != index => {
                    self.problem = fail(format!("says index {said}"))
                }
                Ok((_, said_prev)) if *said_prev != self.prev => {
                    self.problem = index
                        .checked_sub(1)
                        .and_then(|before| changed_bytes(self.reader, before, &self.prev))
                        .or_else(|| fail("prev does not match the previous entry's hash".into()))
                }
                Ok(_) => {}
            }
            self.prev = *leaf;
            self.frontier.push(*leaf);
            if self.problem.is_none() {
                self.problem = check_roots(&self.frontier, &mut self.pending).map(|wrong_root| {
                    changed_bytes(self.reader, index, leaf).unwrap_or(wrong_root)
                });
            }
        }
    }
}

type Pending<'a> = std::iter::Peekable<std::slice::Iter<'a, (u64, String)>>;

/// Every checkpoint whose size the rebuilt tree has reached must have the rebuilt root.
fn check_roots(frontier: &Frontier, pending: &mut Pending<'_>) -> Option<VerifyFailure> {
    while let Some((size, note)) = pending.next_if(|(size, _)| *size <= frontier.size()) {
        let fail = |problem: &str| {
            Some(VerifyFailure::Checkpoint {
                size: *size,
                problem: problem.to_owned(),
            })
        };
        if *size != frontier.size() {
            return fail("no entries for this size");
        }
        let root = parse_note(note)
            .ok()
            .and_then(|n| Checkpoint::parse(&n.text).ok())
            .map(|cp| cp.root);
        match root {
            None => return fail("not a checkpoint note"),
            Some(root) if root != frontier.root() => {
                return fail("its root is not the root of the stored entries")
            }
            Some(_) => {}
        }
    }
    None
}

/// The stored leaf hash is not trusted for correctness (the rebuilt tree and the signed roots are),
/// but once a check fails it pinpoints the entry whose bytes changed after it was written.
fn changed_bytes(reader: &Reader<'_>, index: u64, rehashed: &Hash) -> Option<VerifyFailure> {
    reader
        .node(0, index)
        .filter(|recorded| recorded != rehashed)
        .map(|_| VerifyFailure::Entry {
            index,
            problem: "its bytes changed after it was written (hash differs from the recorded leaf)"
                .into(),
        })
}

/// An entry's `index` and `prev`. Entries the ledger writes have one layout (`{"v":V,"index":N,`
/// ... `,"prev":"<64 hex>"}`, see [`super::entry::Entry`]), and those two fields are read by
/// position: parsing a million entries' JSON would cost more than hashing them. The rest of the
/// bytes are covered by the leaf hash and the signed roots. Anything else goes through the JSON
/// parser, which reads the two fields or says why the bytes are not an entry.
fn chain_fields(bytes: &[u8]) -> Result<(u64, Hash), String> {
    if let Some(fields) = canonical_chain_fields(bytes) {
        return Ok(fields);
    }
    let parsed: ChainFields<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a valid entry: {e}"))?;
    let prev = lower_hex_hash(parsed.prev.as_bytes())
        .ok_or_else(|| "prev is not 64 lowercase hex digits".to_owned())?;
    Ok((parsed.index, prev))
}

fn canonical_chain_fields(bytes: &[u8]) -> Option<(u64, Hash)> {
    const VERSIONS: [&[u8]; 2] = [br#"{"v":2,"index":"#, br#"{"v":1,"index":"#];
    const PREV: &[u8] = br#","prev":""#;
    let rest = VERSIONS.iter().find_map(|head| bytes.strip_prefix(*head))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if rest.get(digits) != Some(&b',') || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let index = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    // The head and the tail must not overlap.
    let middle = rest.len().checked_sub(digits + PREV.len() + 64 + 2)?;
    let tail = &rest[rest.len() - PREV.len() - 64 - 2..];
    if middle == 0 || !tail.starts_with(PREV) || !tail.ends_with(b"\"}") {
        return None;
    }
    let prev = lower_hex_hash(&tail[PREV.len()..PREV.len() + 64])?;
    Some((index, prev))
}

/// Decodes 64 lowercase hex digits (the ledger writes no others: uppercase is not its layout).
fn lower_hex_hash(hex: &[u8]) -> Option<Hash> {
    let mut hash = [0; 32];
    if hex.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    hex::decode_to_slice(hex, &mut hash).ok().map(|()| hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Entry, Kind};
    use proptest::prelude::*;

    fn entry(index: u64, prev: Hash, detail: &str) -> Vec<u8> {
        let mut e = Entry::new(Kind::PolicyChange);
        e.index = index;
        e.time = "2026-11-22T10:00:00Z".into();
        e.detail = Some(serde_json::json!({ "note": detail }));
        e.prev = hex::encode(prev);
        e.to_bytes()
    }

    proptest! {
        #[test]
        fn written_entries_are_read_by_position(index: u64, prev: [u8; 32], detail in ".{0,40}") {
            let bytes = entry(index, prev, &detail);
            prop_assert_eq!(canonical_chain_fields(&bytes), Some((index, prev)));
        }

        #[test]
        fn mutated_entries_read_by_position_agree_with_the_json_parser(
            index: u64, prev: [u8; 32], at: prop::sample::Index, byte: u8,
        ) {
            let mut bytes = entry(index, prev, "x");
            let at = at.index(bytes.len());
            bytes[at] = byte;
            if let (Some(fast), Ok(parsed)) = (canonical_chain_fields(&bytes), serde_json::from_slice::<ChainFields<'_>>(&bytes)) {
                prop_assert_eq!(fast.0, parsed.index);
                prop_assert_eq!(hex::encode(fast.1), parsed.prev);
            }
        }
    }

    #[test]
    fn version_1_entries_are_still_read_by_position() {
        let prev = [0x5a; 32];
        let v2 = String::from_utf8(entry(9, prev, "x")).unwrap();
        let v1 = v2.replacen("{\"v\":2,", "{\"v\":1,", 1);
        assert_ne!(v1, v2);
        assert_eq!(canonical_chain_fields(v1.as_bytes()), Some((9, prev)));
        assert_eq!(canonical_chain_fields(v2.as_bytes()), Some((9, prev)));
        let v3 = v2.replacen("{\"v\":2,", "{\"v\":3,", 1);
        assert_eq!(
            canonical_chain_fields(v3.as_bytes()),
            None,
            "an unknown version goes to the parser"
        );
    }

    #[test]
    fn hostile_layouts_fall_back_to_the_parser_or_fail() {
        let prev = [0xab; 32];
        let good = String::from_utf8(entry(7, prev, "x")).unwrap();
        // Another field order is still an entry, read by the parser.
        let head = format!("{{\"v\":{},\"index\":7,", crate::entry::ENTRY_VERSION);
        assert!(good.starts_with(&head), "{good}");
        let reordered = good.replacen(&head, "{\"index\":7,\"v\":2,", 1);
        assert_eq!(canonical_chain_fields(reordered.as_bytes()), None);
        assert_eq!(chain_fields(reordered.as_bytes()), Ok((7, prev)));
        // Uppercase hex, a leading zero, an index past u64, a prev in the middle only, truncation.
        for bad in [
            good.replace(&hex::encode(prev), &hex::encode(prev).to_uppercase()),
            good.replacen("\"index\":7", "\"index\":07", 1),
            good.replacen("\"index\":7", "\"index\":18446744073709551616", 1),
            good[..good.len() - 2].to_owned(),
            format!("{{\"v\":1,\"index\":7,\"prev\":\"{}\"}}", &"0".repeat(63)),
            "{\"v\":1,\"index\":".to_owned(),
            String::new(),
        ] {
            assert_eq!(canonical_chain_fields(bad.as_bytes()), None, "{bad}");
            assert!(chain_fields(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
