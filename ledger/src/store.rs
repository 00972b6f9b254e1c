//! The LMDB layer under the ledger: a thin, durable key-value mapping and nothing more.
//!
//! Databases in one environment:
//! - `entries`: index (u64 big-endian) -> the entry's exact bytes
//! - `nodes`: level (u8) || index (u64 big-endian) -> hash of that perfect subtree (level 0 = leaves)
//! - `checkpoints`: tree size (u64 big-endian) -> the signed checkpoint note for that size
//! - `meta`: `frontier` -> the compact right edge of the tree; `checkpoint` -> the latest signed note;
//!   `cosigned` -> the latest checkpoint with witness cosignatures (size || note)
//! - `witness`: another log's origin -> what this gateway last cosigned for it (size || root || note)
//!
//! Every batch writes all four in one transaction and commits it with fsync (LMDB's default), so a
//! crash leaves entries, tree and checkpoint consistent: all of the batch or none of it.
//!
//! The data file is kept written with zeros 0.5 to 1.5 MiB past LMDB's last page
//! ([`Store::keep_zeroed_ahead`]): the pages a commit adds then land inside the file, so the
//! commit's `fdatasync` has no new size or block allocation to make durable, one synchronous
//! metadata write fewer per commit (docs/performance-history.md, "Sixth pass").

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use lmdb::{Cursor, Database, DatabaseFlags, Transaction, WriteFlags};

use super::env::{Env, MapError, Txn};
use super::merkle::{Frontier, Hash, NodeSource};
use super::witness::WitnessState;
use super::LedgerError;

const META_FRONTIER: &[u8] = b"frontier";
const META_CHECKPOINT: &[u8] = b"checkpoint";
const META_COSIGNED: &[u8] = b"cosigned";

/// Below this many bytes written past LMDB's last page, the data file is extended.
const ZEROED_LOW_WATER: u64 = 512 << 10;
/// How much one extension writes (at most: never past the map size).
const ZEROED_STEP: u64 = 1 << 20;

/// What an extension writes, aligned for `O_DIRECT`.
#[repr(C, align(4096))]
struct Zeros([u8; ZEROED_STEP as usize]);
static ZEROS: Zeros = Zeros([0; ZEROED_STEP as usize]);

/// One committed batch.
pub struct Batch<'a> {
    /// (index, entry bytes)
    pub entries: &'a [(u64, Vec<u8>)],
    /// Perfect-subtree nodes completed by the batch.
    pub nodes: &'a [(u8, u64, Hash)],
    /// The frontier after the batch.
    pub frontier: &'a Frontier,
    /// The signed checkpoint covering the batch.
    pub checkpoint: &'a str,
}

/// What a ledger reopens with.
pub struct Head {
    /// The tree's right edge.
    pub frontier: Frontier,
    /// The latest signed checkpoint, if any entry was ever written.
    pub checkpoint: Option<String>,
}

/// An open LMDB environment holding one log.
pub struct Store {
    env: Env,
    entries: Database,
    nodes: Database,
    checkpoints: Database,
    meta: Database,
    witness: Database,
    /// The data file, only ever written past its end ([`Store::keep_zeroed_ahead`]).
    data: File,
    /// How long the data file was when last looked at (it never shrinks).
    zeroed_to: AtomicU64,
    page_size: u64,
}

impl From<lmdb::Error> for LedgerError {
    fn from(e: lmdb::Error) -> Self {
        match e {
            lmdb::Error::MapFull => LedgerError::Full,
            other => LedgerError::Storage(other.to_string()),
        }
    }
}

impl MapError for LedgerError {
    fn is_full(&self) -> bool {
        matches!(self, LedgerError::Full)
    }
}

fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

impl Store {
    /// Open (creating if needed) the environment in `dir`, with a map of `map_size_mib` that
    /// grows up to `max_map_size_mib` as the log fills it.
    pub fn open(
        dir: &Path,
        map_size_mib: u64,
        max_map_size_mib: u64,
    ) -> Result<Store, LedgerError> {
        let mut env =
            Env::open(dir, map_size_mib, max_map_size_mib).map_err(LedgerError::Storage)?;
        let lmdb = env.lmdb();
        let db = |name| {
            lmdb.create_db(Some(name), DatabaseFlags::empty())
                .map_err(LedgerError::from)
        };
        let (entries, nodes, checkpoints, meta) = (
            db("entries")?,
            db("nodes")?,
            db("checkpoints")?,
            db("meta")?,
        );
        let witness = db("witness")?;
        // Zeros go straight to the disk where it can (`O_DIRECT`): copying them through the page
        // cache cost a few percent of the CPU an exchange takes.
        let path = dir.join("data.mdb");
        let io = |e: std::io::Error| LedgerError::Storage(format!("{}: {e}", path.display()));
        let data = File::options()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .or_else(|_| File::options().write(true).open(&path))
            .map_err(io)?;
        let page_size = lmdb.stat()?.page_size().into();
        let zeroed_to = AtomicU64::new(data.metadata().map_err(io)?.len());
        Ok(Store {
            env,
            entries,
            nodes,
            checkpoints,
            meta,
            witness,
            data,
            zeroed_to,
            page_size,
        })
    }

    /// Read the state a writer resumes from.
    pub fn head(&self) -> Result<Head, LedgerError> {
        let txn = self.env.ro()?;
        let frontier = match txn.get(self.meta, &META_FRONTIER) {
            Ok(bytes) => Frontier::from_bytes(bytes)
                .map_err(|e| LedgerError::Corrupt(format!("stored frontier: {e}")))?,
            Err(lmdb::Error::NotFound) => Frontier::default(),
            Err(e) => return Err(e.into()),
        };
        let checkpoint = match txn.get(self.meta, &META_CHECKPOINT) {
            Ok(bytes) => Some(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| LedgerError::Corrupt("stored checkpoint is not UTF-8".into()))?,
            ),
            Err(lmdb::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Head {
            frontier,
            checkpoint,
        })
    }

    /// Write a batch and commit it durably, growing the map if it runs out (nothing of a write
    /// that ran out was committed). Entries and checkpoints are appended (their keys only grow),
    /// which fills LMDB's pages instead of splitting them in half.
    pub fn commit(&self, batch: &Batch<'_>) -> Result<(), LedgerError> {
        self.env.write(|txn| self.put_batch(txn, batch))
    }

    fn put_batch(
        &self,
        txn: &mut lmdb::RwTransaction<'_>,
        batch: &Batch<'_>,
    ) -> Result<(), LedgerError> {
        for (index, bytes) in batch.entries {
            txn.put(
                self.entries,
                &index.to_be_bytes(),
                bytes,
                WriteFlags::APPEND,
            )?;
        }
        for (level, index, hash) in batch.nodes {
            txn.put(
                self.nodes,
                &node_key(*level, *index),
                hash,
                WriteFlags::empty(),
            )?;
        }
        txn.put(
            self.meta,
            &META_FRONTIER,
            &batch.frontier.to_bytes(),
            WriteFlags::empty(),
        )?;
        txn.put(
            self.meta,
            &META_CHECKPOINT,
            &batch.checkpoint,
            WriteFlags::empty(),
        )?;
        txn.put(
            self.checkpoints,
            &batch.frontier.size().to_be_bytes(),
            &batch.checkpoint,
            WriteFlags::APPEND,
        )
        .map_err(LedgerError::from)
    }

    /// If less than 512 KiB of the data file lies past LMDB's last page, write another MiB of zeros
    /// at its end (never past the map size) and make that durable. A commit that grows the file
    /// makes its `fdatasync` write the file's size and block map as well; one that writes inside
    /// it does not. Holds LMDB's write lock meanwhile, so no commit extends the file under it,
    /// and writes only past the file's end, so nothing LMDB wrote is touched. Returns the bytes
    /// written. A failure (a full disk) leaves the file as LMDB left it, plus some zeros.
    pub fn keep_zeroed_ahead(&self) -> Result<u64, LedgerError> {
        let io = |e: std::io::Error| LedgerError::Storage(e.to_string());
        // Most batches end here: the file reaches at least as far as it did last time.
        let info = self.env.info()?;
        if self.zeroed_to.load(Ordering::Relaxed) >= self.used(&info) + ZEROED_LOW_WATER {
            return Ok(0);
        }
        let txn = self.env.rw()?;
        let info = self.env.info_in(&txn)?;
        let used = self.used(&info);
        let end = self.data.metadata().map_err(io)?.len();
        self.zeroed_to.store(end, Ordering::Relaxed);
        let to = end.saturating_add(ZEROED_STEP).min(info.map_size() as u64);
        if end < used || end >= used + ZEROED_LOW_WATER || to <= end {
            return Ok(0);
        }
        self.data
            .write_all_at(&ZEROS.0[..(to - end) as usize], end)
            .map_err(io)?;
        self.data.sync_data().map_err(io)?;
        self.zeroed_to.store(to, Ordering::Relaxed);
        drop(txn);
        Ok(to - end)
    }

    /// Bytes of the data file up to and including LMDB's last page.
    fn used(&self, info: &lmdb::Info) -> u64 {
        (info.last_pgno() as u64 + 1) * self.page_size
    }

    /// Replace the stored checkpoint for `size` and the latest one, as an attacker with the disk
    /// could (for tests of verification).
    #[cfg(test)]
    pub fn overwrite_checkpoint(&self, size: u64, note: &str) -> Result<(), LedgerError> {
        self.env.write(|txn| {
            for (db, key) in [
                (self.checkpoints, &size.to_be_bytes()[..]),
                (self.meta, META_CHECKPOINT),
            ] {
                txn.put(db, &key, &note, WriteFlags::empty())?;
            }
            Ok(())
        })
    }

    /// The latest cosigned checkpoint (size, note), if witnesses ever cosigned one.
    pub fn cosigned(&self) -> Result<Option<(u64, String)>, LedgerError> {
        let txn = self.env.ro()?;
        match txn.get(self.meta, &META_COSIGNED) {
            Ok(bytes) if bytes.len() > 8 => {
                let size = u64::from_be_bytes(bytes[..8].try_into().expect("checked length"));
                let note = String::from_utf8(bytes[8..].to_vec()).map_err(|_| {
                    LedgerError::Corrupt("stored cosigned checkpoint is not UTF-8".into())
                })?;
                Ok(Some((size, note)))
            }
            Ok(_) => Err(LedgerError::Corrupt(
                "stored cosigned checkpoint is truncated".into(),
            )),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Store the latest cosigned checkpoint.
    pub fn put_cosigned(&self, size: u64, note: &str) -> Result<(), LedgerError> {
        let mut value = size.to_be_bytes().to_vec();
        value.extend_from_slice(note.as_bytes());
        self.env.write(|txn| {
            txn.put(self.meta, &META_COSIGNED, &value, WriteFlags::empty())
                .map_err(LedgerError::from)
        })
    }

    /// What this gateway, as a witness, last cosigned for the log `origin`.
    pub fn witness_state(&self, origin: &str) -> Result<Option<WitnessState>, LedgerError> {
        let txn = self.env.ro()?;
        let bytes = match txn.get(self.witness, &origin.as_bytes()) {
            Ok(b) => b,
            Err(lmdb::Error::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let corrupt = || LedgerError::Corrupt(format!("witness state of {origin} is malformed"));
        if bytes.len() < 40 {
            return Err(corrupt());
        }
        Ok(Some(WitnessState {
            size: u64::from_be_bytes(bytes[..8].try_into().expect("checked length")),
            root: bytes[8..40].try_into().expect("checked length"),
            note: String::from_utf8(bytes[40..].to_vec()).map_err(|_| corrupt())?,
        }))
    }

    /// Durably record what this gateway cosigned for `origin`.
    pub fn put_witness_state(&self, origin: &str, state: &WitnessState) -> Result<(), LedgerError> {
        let mut value = state.size.to_be_bytes().to_vec();
        value.extend_from_slice(&state.root);
        value.extend_from_slice(state.note.as_bytes());
        self.env.write(|txn| {
            txn.put(
                self.witness,
                &origin.as_bytes(),
                &value,
                WriteFlags::empty(),
            )
            .map_err(LedgerError::from)
        })
    }

    /// Run `f` over a consistent read-only view.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&Reader<'_>) -> Result<R, LedgerError>,
    ) -> Result<R, LedgerError> {
        let txn = self.env.ro()?;
        let reader = Reader { store: self, txn };
        f(&reader)
    }
}

/// A read transaction over the store.
pub struct Reader<'s> {
    store: &'s Store,
    txn: Txn<'s, lmdb::RoTransaction<'s>>,
}

impl Reader<'_> {
    /// The exact bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<Option<&[u8]>, LedgerError> {
        match self.txn.get(self.store.entries, &index.to_be_bytes()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Visit entries in index order from `start` (inclusive) to `end` (exclusive).
    pub fn for_each_entry<'r>(
        &'r self,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, &'r [u8]) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        if start >= end {
            return Ok(());
        }
        let mut cursor = self.txn.open_ro_cursor(self.store.entries)?;
        for item in cursor.iter_from(start.to_be_bytes()) {
            let (key, value) = item?;
            let key: [u8; 8] = key
                .try_into()
                .map_err(|_| LedgerError::Corrupt("an entry key is not 8 bytes".into()))?;
            let index = u64::from_be_bytes(key);
            if index >= end {
                break;
            }
            f(index, value)?;
        }
        Ok(())
    }

    /// Every stored checkpoint note, by tree size ascending.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>, LedgerError> {
        let mut cursor = self.txn.open_ro_cursor(self.store.checkpoints)?;
        let mut out = Vec::new();
        for item in cursor.iter_start() {
            let (key, value) = item?;
            let key: [u8; 8] = key
                .try_into()
                .map_err(|_| LedgerError::Corrupt("a checkpoint key is not 8 bytes".into()))?;
            let note = String::from_utf8(value.to_vec())
                .map_err(|_| LedgerError::Corrupt("a stored checkpoint is not UTF-8".into()))?;
            out.push((u64::from_be_bytes(key), note));
        }
        Ok(out)
    }
}

impl NodeSource for Reader<'_> {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        let bytes = self
            .txn
            .get(self.store.nodes, &node_key(level, index))
            .ok()?;
        bytes.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(store: &Store, frontier: &mut Frontier, entries: std::ops::Range<u64>) {
        let entries: Vec<(u64, Vec<u8>)> = entries.map(|i| (i, vec![b'e'; 700])).collect();
        let nodes: Vec<_> = entries
            .iter()
            .flat_map(|(_, bytes)| frontier.append(super::super::merkle::leaf_hash(bytes)))
            .collect();
        let checkpoint = format!("checkpoint {}", frontier.size());
        store
            .commit(&Batch {
                entries: &entries,
                nodes: &nodes,
                frontier,
                checkpoint: &checkpoint,
            })
            .unwrap();
    }

    #[test]
    fn the_data_file_is_kept_zeroed_ahead_without_touching_a_page_lmdb_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.mdb");
        let store = Store::open(dir.path(), 64, 64).unwrap();
        let mut frontier = Frontier::default();
        let mut next = 0;
        for _ in 0..50 {
            commit(&store, &mut frontier, next..next + 20);
            next += 20;
            let before = std::fs::read(&file).unwrap();
            let written = store.keep_zeroed_ahead().unwrap();
            let after = std::fs::read(&file).unwrap();
            assert_eq!(after.len() as u64, before.len() as u64 + written);
            assert_eq!(
                after[..before.len()],
                before[..],
                "only written past the end"
            );
            assert!(after[before.len()..].iter().all(|b| *b == 0));
            let ahead = after.len() as u64 - store.used(&store.env.info().unwrap());
            assert!(
                (ZEROED_LOW_WATER..=ZEROED_LOW_WATER + ZEROED_STEP).contains(&ahead),
                "{ahead} bytes past the last page"
            );
        }
        // It extends in steps, not after every batch.
        let extended = (0..50)
            .filter(|_| {
                commit(&store, &mut frontier, next..next + 20);
                next += 20;
                store.keep_zeroed_ahead().unwrap() > 0
            })
            .count();
        assert!((1..10).contains(&extended), "{extended} extensions");
        // LMDB reopens a file longer than its pages, and every entry reads back.
        drop(store);
        let store = Store::open(dir.path(), 64, 64).unwrap();
        assert_eq!(store.head().unwrap().frontier.size(), next);
        store
            .read(|r| {
                assert_eq!(r.entry(next - 1)?.unwrap(), &[b'e'; 700][..]);
                Ok(())
            })
            .unwrap();
        commit(&store, &mut frontier, next..next + 1);
    }

    #[test]
    fn the_data_file_never_grows_past_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1, 1).unwrap();
        commit(&store, &mut Frontier::default(), 0..10);
        while store.keep_zeroed_ahead().unwrap() > 0 {}
        let len = std::fs::metadata(dir.path().join("data.mdb"))
            .unwrap()
            .len();
        assert_eq!(len, 1 << 20);
    }

    #[test]
    fn an_entry_index_that_does_not_grow_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 64, 64).unwrap();
        let mut frontier = Frontier::default();
        commit(&store, &mut frontier, 0..5);
        let stale = [(3, b"again".to_vec())];
        let mut grown = frontier.clone();
        grown.append([1; 32]);
        let result = store.commit(&Batch {
            entries: &stale,
            nodes: &[],
            frontier: &grown,
            checkpoint: "x",
        });
        assert!(matches!(result, Err(LedgerError::Storage(_))), "{result:?}");
        store
            .read(|r| {
                assert_eq!(r.entry(3)?.unwrap(), &[b'e'; 700][..]);
                Ok(())
            })
            .unwrap();
    }
}
