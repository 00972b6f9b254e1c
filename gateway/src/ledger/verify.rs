//! `causeway log verify`: re-derive everything from the stored entry bytes, trusting no stored hash.
//!
//! Re-hashes every entry, checks indexes and the `prev` chain, rebuilds the Merkle tree, and checks
//! every stored checkpoint (signature, and root at its size) against the rebuilt tree, so any two
//! stored checkpoints are consistent by construction. Reports the first index that is wrong.

use super::checkpoint::open_checkpoint;
use super::entry::{Entry, GENESIS_PREV};
use super::merkle::{leaf_hash, Frontier};
use super::note::NoteVerifier;

use super::store::Reader;
use super::LedgerError;

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
pub fn verify_log(
    reader: &Reader<'_>,
    log: &NoteVerifier,
    mut progress: impl FnMut(u64),
) -> Result<Verified, VerifyFailure> {
    let checkpoints = reader.checkpoints()?;
    let mut pending = checkpoints.iter().peekable();
    let mut frontier = Frontier::default();
    let mut prev = GENESIS_PREV.to_owned();
    let mut first_problem: Option<VerifyFailure> = None;
    let mut checked_checkpoints = 0;
    let mut check_checkpoints_at =
        |frontier: &Frontier, first_problem: &mut Option<VerifyFailure>| {
            while let Some((size, note)) = pending.next_if(|(size, _)| *size <= frontier.size()) {
                checked_checkpoints += 1;
                let problem = match open_checkpoint(note, log) {
                    Err(e) => Some(format!("signature does not verify: {e}")),
                    Ok(cp) if cp.size != *size => {
                        Some(format!("stored under size {size} but says {}", cp.size))
                    }
                    Ok(cp) if *size == frontier.size() && cp.root != frontier.root() => {
                        Some("its root is not the root of the stored entries".to_owned())
                    }
                    Ok(_) if *size != frontier.size() => {
                        Some("no entries for this size".to_owned())
                    }
                    Ok(_) => None,
                };
                if let (Some(problem), None) = (problem, first_problem.as_ref()) {
                    *first_problem = Some(VerifyFailure::Checkpoint {
                        size: *size,
                        problem,
                    });
                }
            }
        };
    check_checkpoints_at(&frontier, &mut first_problem);
    reader.for_each_entry(0, u64::MAX, |index, bytes| {
        if first_problem.is_some() {
            return Ok(());
        }
        let fail = |problem: String| Some(VerifyFailure::Entry { index, problem });
        if index != frontier.size() {
            first_problem = fail(format!(
                "missing entry {} (next stored is {index})",
                frontier.size()
            ));
            return Ok(());
        }
        match Entry::from_bytes(bytes) {
            Err(e) => first_problem = fail(format!("not a valid entry: {e}")),
            Ok(entry) if entry.index != index => {
                first_problem = fail(format!("says index {}", entry.index))
            }
            Ok(entry) if entry.prev != prev => {
                first_problem = fail("prev does not match the previous entry's hash".into())
            }
            Ok(_) => {}
        }
        let leaf = leaf_hash(bytes);
        // The stored leaf hash is not trusted for correctness (the rebuilt tree and the signed roots
        // are), but when it disagrees it pinpoints which entry's bytes changed.
        if first_problem.is_none()
            && super::merkle::NodeSource::node(reader, 0, index).is_some_and(|h| h != leaf)
        {
            first_problem = fail(
                "its bytes changed after it was written (hash differs from the recorded leaf)"
                    .into(),
            );
        }
        prev = hex::encode(leaf);
        frontier.append(leaf);
        if index % 65_536 == 0 {
            progress(index);
        }
        check_checkpoints_at(&frontier, &mut first_problem);
        Ok(())
    })?;
    progress(frontier.size());
    if let Some(problem) = first_problem {
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
        checkpoints: checked_checkpoints,
        root: hex::encode(frontier.root()),
    })
}
