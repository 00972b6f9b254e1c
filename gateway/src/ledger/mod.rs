//! The access log: an append-only, hash-chained Merkle tree of entries, signed and durable.
//!
//! The pure parts ([`merkle`], [`note`], [`checkpoint`], [`receipt`]) are functions over bytes with no
//! disk, socket or clock. [`store`] is the thin LMDB layer under them. [`Ledger`] ties them together:
//! one writer thread takes appends from any number of tasks, batches whatever is waiting into one
//! write transaction (entries, tree nodes, frontier and a freshly signed checkpoint), commits it with
//! fsync once, and only then answers each caller with its receipt. Nothing is acknowledged before it
//! is durable, and a failed commit acknowledges nothing.

pub mod checkpoint;
pub mod entry;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod store;
pub mod tlog_proof;
pub mod verify;
pub mod witness;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot};

use self::checkpoint::{sign_checkpoint, Checkpoint};
use self::entry::{Entry, GENESIS_PREV};
use self::merkle::{Frontier, Hash};
use self::note::NoteSigner;
use self::store::{Batch, Store};

/// File beside the LMDB environment holding the log's note verifier key (public).
pub const VKEY_FILE: &str = "log.vkey";

/// Most entries one write transaction takes.
pub const MAX_BATCH: usize = 4096;

/// Why the ledger could not do what was asked. Any of these means: release no data.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The LMDB map is full.
    #[error("the ledger is full: raise [ledger] map_size_mib and restart")]
    Full,
    /// A storage error (disk full, read-only, I/O).
    #[error("the ledger could not be written: {0}")]
    Storage(String),
    /// Stored data that does not make sense.
    #[error("the ledger is corrupt: {0}")]
    Corrupt(String),
    /// The writer has stopped (shutdown).
    #[error("the ledger is closed")]
    Closed,
}

/// What an append returns once the entry is durable.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The entry as stored (with index, time and prev filled in).
    pub entry: Entry,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// The signed checkpoint of the batch that committed it.
    pub checkpoint: Arc<String>,
    /// Size of that checkpoint.
    pub checkpoint_size: u64,
    /// Inclusion proof of the entry in that checkpoint.
    pub inclusion_proof: Vec<Hash>,
}

struct Pending {
    entry: Entry,
    reply: oneshot::Sender<Result<Appended, LedgerError>>,
}

struct Shared {
    store: Store,
    origin: String,
    latest: RwLock<(u64, Arc<String>)>,
}

/// An open access log with its group-commit writer.
pub struct Ledger {
    shared: Arc<Shared>,
    queue: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Ledger {
    /// Open the log in `dir`, check that its stored checkpoint matches its stored tree, and start the writer.
    pub fn open(dir: &Path, map_size_mib: u64, signer: NoteSigner) -> Result<Ledger, LedgerError> {
        let store = Store::open(dir, map_size_mib)?;
        // The public key beside the log lets `causeway log verify` check it without a directory.
        std::fs::write(
            dir.join(VKEY_FILE),
            format!("{}\n", signer.verifier().to_vkey()),
        )
        .map_err(|e| LedgerError::Storage(format!("{}: {e}", dir.join(VKEY_FILE).display())))?;
        let head = store.head()?;
        let origin = signer.verifier().name().to_owned();
        let frontier = head.frontier;
        let latest = match head.checkpoint {
            Some(note) => {
                let cp = checkpoint::open_checkpoint(&note, &signer.verifier()).map_err(|e| {
                    LedgerError::Corrupt(format!(
                        "the stored checkpoint does not verify with this gateway's key: {e}"
                    ))
                })?;
                if cp.size != frontier.size() || cp.root != frontier.root() {
                    return Err(LedgerError::Corrupt(format!(
                        "the stored checkpoint (size {}) does not match the stored tree (size {})",
                        cp.size,
                        frontier.size()
                    )));
                }
                note
            }
            None => sign(&origin, &frontier, &signer)?,
        };
        let last_leaf = if frontier.size() == 0 {
            None
        } else {
            let leaf = store.read(|r| Ok(merkle::NodeSource::node(r, 0, frontier.size() - 1)))?;
            Some(leaf.ok_or_else(|| LedgerError::Corrupt("the last leaf hash is missing".into()))?)
        };
        let shared = Arc::new(Shared {
            store,
            origin,
            latest: RwLock::new((frontier.size(), Arc::new(latest))),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            shared: shared.clone(),
            signer,
            frontier,
            last_leaf,
        };
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| LedgerError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Ledger {
            shared,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Append an entry; resolves once it is durable, with its receipt material.
    pub async fn append(&self, entry: Entry) -> Result<Appended, LedgerError> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = self.queue.lock().expect("ledger queue lock poisoned");
            let tx = queue.as_ref().ok_or(LedgerError::Closed)?;
            tx.send(Pending { entry, reply })
                .map_err(|_| LedgerError::Closed)?;
        }
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    /// The log's origin (its checkpoint signer name).
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// The latest signed checkpoint note and its size.
    pub fn checkpoint(&self) -> (u64, Arc<String>) {
        let latest = self.shared.latest.read().expect("checkpoint lock poisoned");
        (latest.0, latest.1.clone())
    }

    /// Read from the store.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&store::Reader<'_>) -> Result<R, LedgerError>,
    ) -> Result<R, LedgerError> {
        self.shared.store.read(f)
    }

    /// Stop taking appends, let the writer commit what is queued, and wait for it.
    pub fn close(&self) {
        self.queue
            .lock()
            .expect("ledger queue lock poisoned")
            .take();
        if let Some(handle) = self.writer.lock().expect("writer lock poisoned").take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.close();
    }
}

fn sign(origin: &str, frontier: &Frontier, signer: &NoteSigner) -> Result<String, LedgerError> {
    let cp = Checkpoint {
        origin: origin.to_owned(),
        size: frontier.size(),
        root: frontier.root(),
        extensions: Vec::new(),
    };
    sign_checkpoint(&cp, signer)
        .map_err(|e| LedgerError::Storage(format!("signing the checkpoint: {e}")))
}

/// The single writer: owns the tree's right edge and the signing key.
struct Writer {
    shared: Arc<Shared>,
    signer: NoteSigner,
    frontier: Frontier,
    last_leaf: Option<Hash>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Pending>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<Pending>) {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 formatting of the current time cannot fail");
        let mut frontier = self.frontier.clone();
        let mut prev = self.last_leaf;
        let mut entries = Vec::with_capacity(batch.len());
        let mut nodes = Vec::new();
        let mut waiting = Vec::with_capacity(batch.len());
        for Pending { mut entry, reply } in batch {
            entry.index = frontier.size();
            if entry.time.is_empty() {
                entry.time = now.clone();
            }
            entry.prev = prev.map_or_else(|| GENESIS_PREV.to_owned(), hex::encode);
            let bytes = entry.to_bytes();
            let leaf = merkle::leaf_hash(&bytes);
            nodes.extend(frontier.append(leaf));
            prev = Some(leaf);
            entries.push((entry.index, bytes.clone()));
            waiting.push((entry, bytes, leaf, reply));
        }
        let result = sign(&self.shared.origin, &frontier, &self.signer).and_then(|note| {
            self.shared.store.commit(&Batch {
                entries: &entries,
                nodes: &nodes,
                frontier: &frontier,
                checkpoint: &note,
            })?;
            Ok(note)
        });
        let note = match result {
            Ok(note) => Arc::new(note),
            Err(e) => {
                tracing::error!(error = %e, entries = waiting.len(), "ledger commit failed; no data is released");
                for (.., reply) in waiting {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let size = frontier.size();
        self.frontier = frontier;
        self.last_leaf = prev;
        *self
            .shared
            .latest
            .write()
            .expect("checkpoint lock poisoned") = (size, note.clone());
        let proofs = self.shared.store.read(|reader| {
            waiting
                .iter()
                .map(|(entry, ..)| {
                    merkle::inclusion_proof(reader, entry.index, size)
                        .map_err(|e| LedgerError::Corrupt(format!("inclusion proof: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match proofs {
            Ok(proofs) => {
                for ((entry, bytes, leaf_hash, reply), inclusion_proof) in
                    waiting.into_iter().zip(proofs)
                {
                    let _ = reply.send(Ok(Appended {
                        entry,
                        bytes,
                        leaf_hash,
                        checkpoint: note.clone(),
                        checkpoint_size: size,
                        inclusion_proof,
                    }));
                }
            }
            Err(e) => {
                for (.., reply) in waiting {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
