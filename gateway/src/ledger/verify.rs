//! `causeway log verify`: re-derive everything from the stored entry bytes, trusting no stored hash.
//!
//! Re-hashes every entry, checks indexes and the `prev` chain, rebuilds the Merkle tree, and checks
//! every stored checkpoint (signature, and root at its size) against the rebuilt tree, so any two
//! stored checkpoints are consistent by construction. Reports the first index that is wrong.

use super::checkpoint::{open_checkpoint, Checkpoint};
use super::entry::GENESIS_PREV;
use super::merkle::NodeSource;
use super::merkle::{leaf_hash, Frontier};
use super::note::parse_note;
use super::note::NoteVerifier;

use super::store::Reader;
use super::LedgerError;

/// The fields the chain check needs; the rest of the entry is covered by its hash and not parsed,
/// which keeps verification of millions of entries cheap.
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
/// Checkpoint signatures are checked on a second thread while this one re-hashes the entries; the
/// roots are compared here as the rebuilt tree reaches each checkpoint's size.
pub fn verify_log(
    reader: &Reader<'_>,
    log: &NoteVerifier,
    mut progress: impl FnMut(u64),
) -> Result<Verified, VerifyFailure> {
    let checkpoints = reader.checkpoints()?;
    std::thread::scope(|scope| {
        let signatures = scope.spawn(|| {
            checkpoints
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
        });
        let chain = verify_chain(reader, &checkpoints, &mut progress);
        let signature_problem = signatures
            .join()
            .expect("the signature thread does not panic");
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

fn first_index(f: &VerifyFailure) -> u64 {
    match f {
        VerifyFailure::Entry { index, .. } => *index,
        VerifyFailure::Checkpoint { size, .. } => size.saturating_sub(1),
        VerifyFailure::Storage(_) => 0,
    }
}

/// Indexes, `prev` links, leaf hashes, and each stored checkpoint's root against the rebuilt tree.
fn verify_chain(
    reader: &Reader<'_>,
    checkpoints: &[(u64, String)],
    progress: &mut impl FnMut(u64),
) -> Result<Verified, VerifyFailure> {
    let mut pending = checkpoints.iter().peekable();
    let mut frontier = Frontier::default();
    let mut prev = GENESIS_PREV.to_owned();
    let mut problem: Option<VerifyFailure> = None;
    let check_roots =
        |frontier: &Frontier,
         pending: &mut std::iter::Peekable<std::slice::Iter<'_, (u64, String)>>| {
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
        };
    problem = problem.or_else(|| check_roots(&frontier, &mut pending));
    reader.for_each_entry(0, u64::MAX, |index, bytes| {
        if problem.is_some() {
            return Ok(());
        }
        let fail = |problem: String| Some(VerifyFailure::Entry { index, problem });
        if index != frontier.size() {
            problem = fail(format!(
                "missing entry {} (next stored is {index})",
                frontier.size()
            ));
            return Ok(());
        }
        match serde_json::from_slice::<ChainFields<'_>>(bytes) {
            Err(e) => problem = fail(format!("not a valid entry: {e}")),
            Ok(entry) if entry.index != index => {
                problem = fail(format!("says index {}", entry.index))
            }
            Ok(entry) if entry.prev != prev => {
                problem = fail("prev does not match the previous entry's hash".into())
            }
            Ok(_) => {}
        }
        let leaf = leaf_hash(bytes);
        // The stored leaf hash is not trusted for correctness (the rebuilt tree and the signed roots
        // are), but when it disagrees it pinpoints which entry's bytes changed.
        if problem.is_none() && reader.node(0, index).is_some_and(|h| h != leaf) {
            problem = fail(
                "its bytes changed after it was written (hash differs from the recorded leaf)"
                    .into(),
            );
        }
        prev.clear();
        prev.push_str(&hex::encode(leaf));
        frontier.append(leaf);
        if index % 65_536 == 0 {
            progress(index);
        }
        if problem.is_none() {
            problem = check_roots(&frontier, &mut pending);
        }
        Ok(())
    })?;
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
        root: hex::encode(frontier.root()),
    })
}
