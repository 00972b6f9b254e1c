//! `causeway-ledger`: Causeway's access log, a transparency log that any verifier can check offline.
//!
//! **What it owns.** The entry format ([`entry`]); the RFC 9162 Merkle tree and its inclusion and
//! consistency proofs ([`merkle`]); C2SP signed notes, cosignatures and Ed25519 keys ([`note`]);
//! tlog checkpoints ([`checkpoint`]); a log's signing keys over time and the `key-rotation` entry
//! that hands a log from one to the next ([`keys`]); the provider's receipt ([`receipt`]);
//! tlog-proof evidence files ([`tlog_proof`]); a witness's state and its `add-checkpoint` rules
//! ([`witness`]); offline verification of a whole log ([`verify`]); and the LMDB storage under all of it ([`env`],
//! [`store`], and [`Ledger`], the single writer that group-commits appends).
//!
//! **What it must not know.** No HTTP, TLS, sockets or transports; no policy, datasets or database
//! adapters; no federation directory or gateway configuration. Callers hand it entries, keys and
//! bytes; it hands back receipts, proofs and verdicts. A standalone verifier can depend on this
//! crate alone.
//!
//! **How it is built.** The pure parts ([`merkle`], [`note`], [`checkpoint`], [`receipt`],
//! [`tlog_proof`]) are functions over bytes with no disk, socket or clock. [`store`] is the thin LMDB
//! layer under them. [`Ledger`] ties them together: one writer thread takes appends from any number
//! of tasks, batches whatever is waiting into one write transaction (entries, tree nodes, frontier
//! and a freshly signed checkpoint), commits it with fsync once, and only then answers each caller
//! with its receipt. Nothing is acknowledged before it is durable, and a failed commit acknowledges
//! nothing.

#![warn(missing_docs)]

pub mod backup;
pub mod checkpoint;
pub mod commitment;
pub mod entry;
pub mod env;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod store;
pub mod tlog_proof;
pub mod verify;
pub mod witness;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use self::checkpoint::{sign_checkpoint, Checkpoint};
use self::entry::{Entry, Kind, GENESIS_PREV};
use self::keys::Rotation;
use self::merkle::{Frontier, Hash};
use self::note::{NoteSigner, NoteVerifier};
use self::store::{Batch, Store};

/// File beside the LMDB environment holding the log's note verifier key (public).
pub const VKEY_FILE: &str = "log.vkey";

/// The LMDB map a ledger starts with, in MiB: address space, not disk, until used.
pub const DEFAULT_MAP_SIZE_MIB: u64 = 64 * 1024;
/// The largest the map grows to, in MiB (16 TiB of the 128 TiB a 64-bit process can address).
pub const DEFAULT_MAX_MAP_SIZE_MIB: u64 = 16 * 1024 * 1024;

/// How large the ledger's map is and how the writer batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerOptions {
    /// LMDB map size in MiB to start with (the file is sparse); it doubles when full.
    pub map_size_mib: u64,
    /// The map never grows past this many MiB: a ledger that fills it refuses to release data.
    pub max_map_size_mib: u64,
    /// The longest a batch stays open for more appends after its first one arrives.
    pub batch_window: Duration,
    /// A batch closes early once no append has arrived for this long.
    pub batch_gap: Duration,
    /// Most entries one write transaction takes.
    pub max_batch: usize,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            map_size_mib: DEFAULT_MAP_SIZE_MIB,
            max_map_size_mib: DEFAULT_MAX_MAP_SIZE_MIB,
            batch_window: Duration::from_millis(2),
            batch_gap: Duration::from_micros(100),
            max_batch: 4096,
        }
    }
}

/// Why the ledger could not do what was asked. Any of these means: release no data.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The LMDB map is full and cannot grow.
    #[error(
        "the ledger's map is full and cannot grow: raise [ledger] max_map_size_mib and restart"
    )]
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
    /// A key rotation that cannot be done (another origin, the same key).
    #[error("cannot rotate the log key: {0}")]
    Rotation(String),
}

/// Told about every group commit, from the writer thread (metrics): must be quick and not block.
pub trait CommitObserver: Send + Sync {
    /// A batch of `entries` committed in `elapsed`, or failed to (`error`; nothing in it was
    /// acknowledged).
    fn committed(&self, entries: usize, elapsed: Duration, error: Option<&LedgerError>);
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
    reply: Reply,
    /// A `key-rotation` entry: the writer has the key in force sign the hand-over to this one, ends
    /// the batch with it, and signs every later checkpoint with it.
    /// Boxed: one pointer on every append's way through the queue.
    rotate_to: Option<Box<NoteSigner>>,
}

struct Shared {
    store: Store,
    dir: PathBuf,
    origin: String,
    /// The key that signs new checkpoints (read by callers, never by the commit path).
    key: RwLock<NoteVerifier>,
    latest: RwLock<(u64, Arc<String>)>,
    /// The latest checkpoint that witnesses cosigned (it may lag `latest`).
    cosigned: RwLock<Option<(u64, Arc<String>)>>,
    /// Why the last commit failed, if it did (readiness).
    commit_error: Mutex<Option<LedgerError>>,
    observer: OnceLock<Arc<dyn CommitObserver>>,
}

/// An open access log with its group-commit writer.
pub struct Ledger {
    shared: Arc<Shared>,
    queue: RwLock<Option<mpsc::Sender<Pending>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Ledger {
    /// Open the log in `dir`, check that its stored checkpoint matches its stored tree, and start the writer.
    pub fn open(
        dir: &Path,
        options: LedgerOptions,
        signer: NoteSigner,
    ) -> Result<Ledger, LedgerError> {
        let store = Store::open(dir, options.map_size_mib, options.max_map_size_mib)?;
        write_vkey(dir, &signer.verifier())?;
        let head = store.head()?;
        let origin = signer.verifier().name().to_owned();
        let frontier = head.frontier;
        let latest = match head.checkpoint {
            Some(note) => {
                let configured = signer.verifier();
                // After a key rotation (the log's last entry), the head is the old key's last
                // checkpoint, and the configured key must be the one it was handed over to.
                let key = match last_rotation(&store, frontier.size())? {
                    Some((old, new)) if new == configured => {
                        tracing::info!(old = %old, "the ledger's last entry is a key rotation to this gateway's key: its next checkpoint is the new key's first");
                        old
                    }
                    Some((_, new)) => {
                        return Err(LedgerError::Corrupt(format!(
                            "the log's last entry hands it over to the key {new}, but this gateway's key is {configured}: configure the key the log was handed over to"
                        )))
                    }
                    None => configured,
                };
                let cp = checkpoint::open_checkpoint(&note, &key).map_err(|e| {
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
        let cosigned = store.cosigned()?.map(|(size, note)| (size, Arc::new(note)));
        let shared = Arc::new(Shared {
            store,
            dir: dir.to_owned(),
            key: RwLock::new(signer.verifier()),
            origin,
            latest: RwLock::new((frontier.size(), Arc::new(latest))),
            cosigned: RwLock::new(cosigned),
            commit_error: Mutex::new(None),
            observer: OnceLock::new(),
        });
        let (tx, rx) = mpsc::channel();
        let handle = Writer::start(shared.clone(), signer, frontier, last_leaf, options, rx)
            .map_err(|e| LedgerError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Ledger {
            shared,
            queue: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Append an entry; resolves once it is durable, with its receipt material.
    pub async fn append(&self, entry: Entry) -> Result<Appended, LedgerError> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = self.queue.read().expect("ledger queue lock poisoned");
            let tx = queue.as_ref().ok_or(LedgerError::Closed)?;
            tx.send(Pending {
                entry,
                reply,
                rotate_to: None,
            })
            .map_err(|_| LedgerError::Closed)?;
        }
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    /// Hand the log over to `new` (same origin, another key): appends a `key-rotation` entry whose
    /// detail is a [`Rotation`] signed by the key in force, and resolves once it is durable, with
    /// its index. The checkpoint that covers it (size index + 1) is the old key's last; every later
    /// one is signed by `new`. No checkpoint is skipped or signed by both keys, and appends
    /// queued meanwhile simply land in the next batch. Also rewrites [`VKEY_FILE`].
    pub async fn rotate_key(&self, new: NoteSigner) -> Result<u64, LedgerError> {
        let verifier = new.verifier();
        if verifier.name() != self.shared.origin {
            return Err(LedgerError::Rotation(format!(
                "the new key is named {:?}, but this log's origin is {:?}",
                verifier.name(),
                self.shared.origin
            )));
        }
        if verifier == self.verifier() {
            return Err(LedgerError::Rotation(
                "the new key is the key in force".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        {
            let queue = self.queue.read().expect("ledger queue lock poisoned");
            let tx = queue.as_ref().ok_or(LedgerError::Closed)?;
            tx.send(Pending {
                entry: Entry::new(Kind::KeyRotation),
                reply,
                rotate_to: Some(Box::new(new)),
            })
            .map_err(|_| LedgerError::Closed)?;
        }
        let appended = answer.await.map_err(|_| LedgerError::Closed)??;
        *self.shared.key.write().expect("key lock poisoned") = verifier.clone();
        write_vkey(&self.shared.dir, &verifier)?;
        Ok(appended.entry.index)
    }

    /// The key that signs this log's new checkpoints.
    pub fn verifier(&self) -> NoteVerifier {
        self.shared.key.read().expect("key lock poisoned").clone()
    }

    /// Report every later group commit to `observer` (one observer per ledger; later calls are
    /// ignored).
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        let _ = self.shared.observer.set(observer);
    }

    /// Why the last group commit failed, or `None` if it succeeded (or none has run yet).
    pub fn last_commit_error(&self) -> Option<LedgerError> {
        self.shared
            .commit_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

    /// The checkpoint to serve: the latest cosigned one if witnesses have caught up with the log,
    /// else the latest signed one.
    pub fn served_checkpoint(&self) -> (u64, Arc<String>) {
        let latest = self.checkpoint();
        match self
            .shared
            .cosigned
            .read()
            .expect("checkpoint lock poisoned")
            .as_ref()
        {
            Some((size, note)) if *size == latest.0 => (*size, note.clone()),
            _ => latest,
        }
    }

    /// The latest checkpoint with witness cosignatures, if any.
    pub fn cosigned_checkpoint(&self) -> Option<(u64, Arc<String>)> {
        self.shared
            .cosigned
            .read()
            .expect("checkpoint lock poisoned")
            .clone()
    }

    /// Record `note` (a checkpoint of this log at `size`, with cosignature lines appended).
    pub fn set_cosigned(&self, size: u64, note: String) -> Result<(), LedgerError> {
        self.shared.store.put_cosigned(size, &note)?;
        *self
            .shared
            .cosigned
            .write()
            .expect("checkpoint lock poisoned") = Some((size, Arc::new(note)));
        Ok(())
    }

    /// The state this gateway, as a witness, keeps for another log.
    pub fn witness_state(
        &self,
        origin: &str,
    ) -> Result<Option<witness::WitnessState>, LedgerError> {
        self.shared.store.witness_state(origin)
    }

    /// Persist the witness state for another log (durably, before the cosignature is handed out).
    pub fn put_witness_state(
        &self,
        origin: &str,
        state: &witness::WitnessState,
    ) -> Result<(), LedgerError> {
        self.shared.store.put_witness_state(origin, state)
    }

    /// A self-contained evidence file for entry `index` (see [`evidence`]).
    pub fn evidence(&self, index: u64) -> Result<tlog_proof::TlogProof, LedgerError> {
        evidence(&self.shared.store, index)
    }

    /// Read from the store.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&store::Reader<'_>) -> Result<R, LedgerError>,
    ) -> Result<R, LedgerError> {
        self.shared.store.read(f)
    }

    /// The most recent entry of `kind`, walking back from the head (for the records a gateway
    /// repeats only when they change: the policy set and the directory in force).
    pub fn last_of_kind(&self, kind: Kind) -> Result<Option<Entry>, LedgerError> {
        let (size, _) = self.checkpoint();
        self.read(|r| last_of_kind(r, size, kind))
    }

    /// Stop taking appends, let the writer commit what is queued, and wait for it.
    pub fn close(&self) {
        self.queue
            .write()
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

/// Evidence for entry `index`: its exact bytes, the inclusion proof, and the newest checkpoint that
/// covers it, preferring the cosigned one, as a C2SP tlog-proof@v1 file that verifies offline.
pub fn evidence(store: &Store, index: u64) -> Result<tlog_proof::TlogProof, LedgerError> {
    let head = store.head()?;
    let note = match store.cosigned()? {
        Some((size, note)) if size > index => note,
        _ => head
            .checkpoint
            .ok_or_else(|| LedgerError::Corrupt("the ledger has no checkpoint yet".into()))?,
    };
    store.read(|r| {
        let entry = r
            .entry(index)?
            .ok_or_else(|| LedgerError::Corrupt(format!("there is no entry {index}")))?
            .to_vec();
        tlog_proof::TlogProof::build(r, &entry, index, &note)
            .map_err(|e| LedgerError::Corrupt(e.to_string()))
    })
}

/// The public key beside the log lets `causeway log verify` check it without a directory.
fn write_vkey(dir: &Path, key: &NoteVerifier) -> Result<(), LedgerError> {
    let path = dir.join(VKEY_FILE);
    std::fs::write(&path, format!("{}\n", key.to_vkey()))
        .map_err(|e| LedgerError::Storage(format!("{}: {e}", path.display())))
}

/// The old and new keys of the log's last entry, if it is a key rotation (signed by the key it
/// retires; one that is not is corrupt).
fn last_rotation(
    store: &Store,
    size: u64,
) -> Result<Option<(NoteVerifier, NoteVerifier)>, LedgerError> {
    let Some(index) = size.checked_sub(1) else {
        return Ok(None);
    };
    let Some(bytes) = store.read(|r| Ok(r.entry(index)?.map(<[u8]>::to_vec)))? else {
        return Ok(None);
    };
    if !Rotation::may_be_in(&bytes) {
        return Ok(None);
    }
    let rotation = Entry::from_bytes(&bytes)
        .ok()
        .and_then(|e| Rotation::from_entry(&e))
        .transpose()
        .and_then(|r| r.map(|r| r.verify()).transpose())
        .map_err(|e| LedgerError::Corrupt(format!("entry {index}: {}", e.problem())))?;
    Ok(rotation)
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

/// The writer's first stage: orders appends into batches, gives them indexes and `prev` links,
/// extends the tree and signs each batch's checkpoint, then hands the batch to the [`Committer`].
/// While one batch is being made durable the next one is gathered and prepared on top of it, so
/// the fsync of one batch overlaps the preparation of the next, and a batch stays open for appends
/// while the committer is busy.
struct Writer {
    shared: Arc<Shared>,
    signer: NoteSigner,
    frontier: Frontier,
    last_leaf: Option<Hash>,
    /// Batches carry the epoch they were prepared in; a failed commit starts a new one.
    epoch: u64,
    rewind: Arc<Mutex<Option<Rewind>>>,
    in_flight: Arc<InFlight>,
    options: LedgerOptions,
    /// Rotations prepared in this process, `(index of the key-rotation entry, key before it)`:
    /// a failed commit that takes one back puts the key before it back in force.
    rotations: Vec<(u64, NoteSigner)>,
}

/// Batches handed to the committer and not yet committed. While there are any, appends gather in
/// the queue without waking the writer for each one: it sleeps until the committer is free (or the
/// batch window passes) and then takes them all at once.
#[derive(Default)]
struct InFlight {
    batches: Mutex<usize>,
    drained: Condvar,
}

impl InFlight {
    fn count(&self) -> std::sync::MutexGuard<'_, usize> {
        self.batches.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handed_over(&self) {
        *self.count() += 1;
    }

    fn committed(&self) {
        let mut n = self.count();
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.drained.notify_all();
        }
    }

    /// Sleep until nothing is being committed, or until `deadline`; whether there was anything.
    fn wait_drained(&self, deadline: Instant) -> bool {
        let guard = self.count();
        if *guard == 0 {
            return false;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = self.drained.wait_timeout_while(guard, wait, |n| *n > 0);
        true
    }
}

/// Whether a batch should wait a gap for more appends when the committer is idle. A gap costs every
/// caller in the batch its length, and pays only when appends come in together. With one exchange
/// at a time none can arrive while its own append waits: after [`GapYield::EMPTY_IN_A_ROW`]
/// batches whose first gap brought nothing, a lone append is committed at once, and one batch in
/// [`GapYield::PROBE_EVERY`] still waits, to notice when appends come in together again.
#[derive(Default)]
struct GapYield {
    /// Batches in a row whose first gap brought nothing.
    empty: u32,
    /// Batches closed without waiting since the last one that waited.
    skipped: u32,
}

impl GapYield {
    /// After this many empty first gaps in a row, batches stop waiting.
    const EMPTY_IN_A_ROW: u32 = 8;
    /// While they do, every this many batches one waits a gap anyway.
    const PROBE_EVERY: u32 = 16;

    /// Whether this batch waits a gap.
    fn worth_waiting(&mut self) -> bool {
        if self.empty < Self::EMPTY_IN_A_ROW || self.skipped + 1 >= Self::PROBE_EVERY {
            self.skipped = 0;
            return true;
        }
        self.skipped += 1;
        false
    }

    /// A batch's first gap brought `appends`.
    fn first_gap(&mut self, appends: usize) {
        self.empty = if appends == 0 { self.empty + 1 } else { 0 };
    }
}

/// After a failed commit, the durable state the writer must continue from.
struct Rewind {
    epoch: u64,
    frontier: Frontier,
    last_leaf: Option<Hash>,
}

/// A batch ready to commit: everything goes into one write transaction.
struct Prepared {
    epoch: u64,
    started: Instant,
    entries: Vec<(u64, Vec<u8>)>,
    nodes: Vec<(u8, u64, Hash)>,
    frontier: Frontier,
    note: String,
    /// Each entry with its leaf hash (the last one is the new last leaf) and its caller.
    waiting: Vec<(Entry, Hash, Reply)>,
}

/// Where an append's outcome goes.
type Reply = oneshot::Sender<Result<Appended, LedgerError>>;

/// Answer every caller of a batch with `e`: none of its entries is durable.
fn refuse_all(waiting: Vec<(Entry, Hash, Reply)>, e: &LedgerError) {
    for (.., reply) in waiting {
        let _ = reply.send(Err(e.clone()));
    }
}

impl Writer {
    fn start(
        shared: Arc<Shared>,
        signer: NoteSigner,
        frontier: Frontier,
        last_leaf: Option<Hash>,
        options: LedgerOptions,
        rx: mpsc::Receiver<Pending>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let rewind = Arc::new(Mutex::new(None));
        let in_flight = Arc::new(InFlight::default());
        let committer = Committer {
            shared: shared.clone(),
            frontier: frontier.clone(),
            last_leaf,
            epoch: 0,
            failure: None,
            rewind: rewind.clone(),
            in_flight: in_flight.clone(),
            short_of_space: false,
        };
        let writer = Writer {
            shared,
            signer,
            frontier,
            last_leaf,
            epoch: 0,
            rewind,
            in_flight,
            options,
            rotations: Vec::new(),
        };
        // At most one prepared batch waits while another commits.
        let (to_commit, prepared) = mpsc::sync_channel(1);
        let committer = std::thread::Builder::new()
            .name("ledger-commit".into())
            .spawn(move || committer.run(prepared))?;
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                writer.run(rx, to_commit);
                let _ = committer.join();
            })
    }

    /// Group commit: the first append opens a batch. If the committer is busy, the batch waits for
    /// it (up to the batch window), takes every append queued meanwhile and closes. If it is idle,
    /// the batch takes what arrives in each further gap and closes when a gap brings nothing, when
    /// it is full, or when its window has passed; it does not wait at all while gaps have been
    /// bringing nothing ([`GapYield`]). Either way the writer sleeps instead of waking for each
    /// append. Dropping `to_commit` at the end lets the committer finish what is queued and stop.
    fn run(mut self, rx: mpsc::Receiver<Pending>, to_commit: mpsc::SyncSender<Prepared>) {
        let mut gaps = GapYield::default();
        while let Ok(first) = rx.recv() {
            let deadline = Instant::now() + self.options.batch_window;
            let mut batch = vec![first];
            // With the committer idle, gather in gaps only while gaps have been bringing appends.
            let gather = !self.in_flight.wait_drained(deadline) && gaps.worth_waiting();
            let mut gaps_waited = 0;
            loop {
                let before = batch.len();
                let room = self.options.max_batch.saturating_sub(before);
                batch.extend(rx.try_iter().take(room));
                let brought = batch.len() - before;
                match gaps_waited {
                    // Appends queued with the first one came in together, as if in a gap.
                    0 if brought > 0 => gaps.first_gap(brought),
                    1 => gaps.first_gap(brought),
                    _ => {}
                }
                let gap = deadline
                    .saturating_duration_since(Instant::now())
                    .min(self.options.batch_gap);
                let quiet = gaps_waited > 0 && brought == 0;
                if !gather || quiet || gap.is_zero() || batch.len() >= self.options.max_batch {
                    break;
                }
                std::thread::sleep(gap);
                gaps_waited += 1;
            }
            // A key rotation ends its batch: its checkpoint is the old key's last.
            while !batch.is_empty() {
                let rest = match batch.iter().position(|p| p.rotate_to.is_some()) {
                    Some(at) if at + 1 < batch.len() => batch.split_off(at + 1),
                    _ => Vec::new(),
                };
                if let Some(prepared) = self.prepare(batch) {
                    self.in_flight.handed_over();
                    if to_commit.send(prepared).is_err() {
                        return;
                    }
                }
                batch = rest;
            }
        }
    }

    /// Indexes, `prev` links, bytes, tree nodes and the signed checkpoint of a batch, built on the
    /// batch before it (or on the durable state, after a failed commit).
    fn prepare(&mut self, batch: Vec<Pending>) -> Option<Prepared> {
        if let Some(rewind) = self.rewind.lock().expect("rewind lock poisoned").take() {
            self.epoch = rewind.epoch;
            self.frontier = rewind.frontier;
            self.last_leaf = rewind.last_leaf;
            // A rotation that did not become durable did not happen.
            while let Some((index, _)) = self.rotations.last() {
                if *index < self.frontier.size() {
                    break;
                }
                let (_, before) = self.rotations.pop().expect("just looked");
                self.signer = before;
            }
        }
        let started = Instant::now();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 formatting of the current time cannot fail");
        let mut frontier = self.frontier.clone();
        let mut prev = self.last_leaf;
        let mut entries = Vec::with_capacity(batch.len());
        let mut nodes = Vec::new();
        let mut waiting = Vec::with_capacity(batch.len());
        let mut rotate_to = None;
        for Pending {
            mut entry,
            reply,
            rotate_to: new_key,
        } in batch
        {
            entry.index = frontier.size();
            if entry.time.is_empty() {
                entry.time = now.clone();
            }
            if let Some(new_key) = new_key {
                // The key in force hands over; `run` made this the batch's last entry.
                match Rotation::sign(&self.signer, &new_key.verifier()) {
                    Ok(rotation) => {
                        entry.detail = Some(
                            serde_json::to_value(rotation)
                                .expect("a rotation is plain strings and always serializes"),
                        );
                        rotate_to = Some(new_key);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(LedgerError::Rotation(e.to_string())));
                        continue;
                    }
                }
            }
            entry.prev = prev.map_or_else(|| GENESIS_PREV.to_owned(), hex::encode);
            let bytes = entry.to_bytes();
            let leaf = merkle::leaf_hash(&bytes);
            nodes.extend(frontier.append(leaf));
            prev = Some(leaf);
            entries.push((entry.index, bytes));
            waiting.push((entry, leaf, reply));
        }
        let note = match sign(&self.shared.origin, &frontier, &self.signer) {
            Ok(note) => note,
            Err(e) => {
                tracing::error!(error = %e, entries = waiting.len(), "signing a checkpoint failed; no data is released");
                refuse_all(waiting, &e);
                return None;
            }
        };
        self.frontier = frontier.clone();
        self.last_leaf = prev;
        if let Some(new_key) = rotate_to {
            let before = std::mem::replace(&mut self.signer, *new_key);
            self.rotations.push((frontier.size() - 1, before));
            tracing::info!(
                index = frontier.size() - 1,
                key = %self.signer.verifier(),
                "the log key is rotated: checkpoints after this batch are signed by the new key"
            );
        }
        if waiting.is_empty() {
            return None;
        }
        Some(Prepared {
            epoch: self.epoch,
            started,
            entries,
            nodes,
            frontier,
            note,
            waiting,
        })
    }
}

/// Tree nodes held in memory while a batch's receipts are made.
struct BatchNodes(std::collections::HashMap<(u8, u64), Hash>);

impl merkle::NodeSource for BatchNodes {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        self.0.get(&(level, index)).copied()
    }
}

/// The writer's second stage: commits each prepared batch in one write transaction with fsync,
/// publishes its checkpoint, and only then answers the batch's callers with their receipts.
struct Committer {
    shared: Arc<Shared>,
    /// The durable tree's right edge and last leaf.
    frontier: Frontier,
    last_leaf: Option<Hash>,
    epoch: u64,
    /// Why the last commit failed: batches prepared on top of it fail with it.
    failure: Option<LedgerError>,
    rewind: Arc<Mutex<Option<Rewind>>>,
    in_flight: Arc<InFlight>,
    /// The data file could not be extended ahead of use (said once until it can again).
    short_of_space: bool,
}

impl Committer {
    fn run(mut self, prepared: mpsc::Receiver<Prepared>) {
        while let Ok(batch) = prepared.recv() {
            self.commit(batch);
            self.in_flight.committed();
        }
    }

    fn committed(&self, entries: usize, started: Instant, error: Option<&LedgerError>) {
        *self
            .shared
            .commit_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = error.cloned();
        if let Some(observer) = self.shared.observer.get() {
            observer.committed(entries, started.elapsed(), error);
        }
    }

    fn commit(&mut self, batch: Prepared) {
        let Prepared {
            epoch,
            started,
            entries,
            nodes,
            frontier,
            note,
            waiting,
        } = batch;
        if epoch != self.epoch {
            // Prepared on top of a batch that failed: its indexes and links are wrong.
            let e = self.failure.clone().unwrap_or(LedgerError::Closed);
            refuse_all(waiting, &e);
            return;
        }
        let result = self.shared.store.commit(&Batch {
            entries: &entries,
            nodes: &nodes,
            frontier: &frontier,
            checkpoint: &note,
        });
        if let Err(e) = result {
            tracing::error!(error = %e, entries = waiting.len(), "ledger commit failed; no data is released");
            self.committed(waiting.len(), started, Some(&e));
            refuse_all(waiting, &e);
            self.epoch += 1;
            self.failure = Some(e);
            *self.rewind.lock().expect("rewind lock poisoned") = Some(Rewind {
                epoch: self.epoch,
                frontier: self.frontier.clone(),
                last_leaf: self.last_leaf,
            });
            return;
        }
        self.committed(waiting.len(), started, None);
        let size = frontier.size();
        // Every node a proof for this batch needs is either new in it or a perfect subtree of the
        // tree it extended, so proofs come from memory; the store answers anything else.
        let known = BatchNodes(
            self.frontier
                .nodes()
                .chain(nodes.iter().copied())
                .map(|(level, index, hash)| ((level, index), hash))
                .collect(),
        );
        self.frontier = frontier;
        self.last_leaf = waiting.last().map(|(_, leaf, _)| *leaf);
        let note = Arc::new(note);
        *self
            .shared
            .latest
            .write()
            .expect("checkpoint lock poisoned") = (size, note.clone());
        let proofs = waiting
            .iter()
            .map(|(entry, ..)| {
                merkle::inclusion_proof(&known, entry.index, size).or_else(|_| {
                    self.shared.store.read(|r| {
                        merkle::inclusion_proof(r, entry.index, size)
                            .map_err(|e| LedgerError::Corrupt(format!("inclusion proof: {e}")))
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>();
        match proofs {
            Ok(proofs) => {
                // The stored bytes go back to their callers; nothing is copied per entry.
                for (((entry, leaf_hash, reply), (_, bytes)), inclusion_proof) in
                    waiting.into_iter().zip(entries).zip(proofs)
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
                refuse_all(waiting, &e);
            }
        }
        // Between batches, after this one's callers have their receipts.
        match self.shared.store.keep_zeroed_ahead() {
            Err(e) if !self.short_of_space => {
                tracing::warn!(error = %e, "cannot extend the ledger's data file: it goes on in the space it holds (at most 1.5 MiB) and then refuses every exchange; free space on its disk");
                self.short_of_space = true;
            }
            Ok(_) => self.short_of_space = false,
            Err(_) => {}
        }
    }
}

/// The most recent entry of `kind` among the first `size` entries, walking back: what a running
/// [`Ledger`] and a read-only [`Store`] (`causeway doctor`, beside a serving gateway) both ask.
pub fn last_of_kind(
    r: &store::Reader<'_>,
    size: u64,
    kind: Kind,
) -> Result<Option<Entry>, LedgerError> {
    for index in (0..size).rev() {
        if let Some(bytes) = r.entry(index)? {
            if let Ok(e) = Entry::from_bytes(bytes) {
                if e.kind == kind {
                    return Ok(Some(e));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Kind;
    use crate::verify::{verify_log, VerifyFailure};

    fn signer() -> NoteSigner {
        NoteSigner::new("test/log", ed25519_dalek::SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_batched_and_every_receipt_proves_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            Arc::new(Ledger::open(dir.path(), LedgerOptions::default(), signer()).unwrap());
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                ledger.append(Entry::new(Kind::Exchange)).await.unwrap()
            }));
        }
        let mut indexes = Vec::new();
        for t in tasks {
            let a = t.await.unwrap();
            let cp = checkpoint::open_checkpoint(&a.checkpoint, &signer().verifier()).unwrap();
            merkle::verify_inclusion(
                &a.leaf_hash,
                a.entry.index,
                cp.size,
                &a.inclusion_proof,
                &cp.root,
            )
            .unwrap();
            assert_eq!(merkle::leaf_hash(&a.bytes), a.leaf_hash);
            indexes.push(a.entry.index);
        }
        indexes.sort();
        assert_eq!(
            indexes,
            (0..200).collect::<Vec<_>>(),
            "every index exactly once"
        );
        let checkpoints = ledger.read(|r| r.checkpoints()).unwrap();
        assert!(
            checkpoints.len() < 200,
            "concurrent appends share commits ({} checkpoints)",
            checkpoints.len()
        );
        ledger
            .read(|r| Ok(verify_log(r, &signer().verifier(), |_| {})))
            .unwrap()
            .unwrap();
    }

    /// A lone append stops waiting for company once gaps keep bringing none, still waits one batch
    /// in [`GapYield::PROBE_EVERY`], and waits again as soon as appends come in together.
    #[test]
    fn batches_stop_waiting_for_gaps_that_bring_nothing_and_resume_when_appends_come_together() {
        let mut gaps = GapYield::default();
        for _ in 0..GapYield::EMPTY_IN_A_ROW {
            assert!(
                gaps.worth_waiting(),
                "waits until gaps have shown they bring nothing"
            );
            gaps.first_gap(0);
        }
        let waits: Vec<bool> = (0..2 * GapYield::PROBE_EVERY)
            .map(|_| {
                let waits = gaps.worth_waiting();
                if waits {
                    gaps.first_gap(0);
                }
                waits
            })
            .collect();
        assert_eq!(
            waits.iter().filter(|w| **w).count(),
            2,
            "one probe in every {} batches: {waits:?}",
            GapYield::PROBE_EVERY
        );

        // A probe's gap brings an append (or appends were queued together): wait again at once.
        gaps.first_gap(3);
        assert!(gaps.worth_waiting());
        assert!(gaps.worth_waiting());
    }

    /// The writer sleeps on [`InFlight`] while a batch commits: it must come back as soon as the
    /// last batch in flight is committed, at its deadline otherwise, and not wait at all when idle.
    #[test]
    fn the_writer_waits_for_the_committer_only_while_a_batch_is_in_flight() {
        let in_flight = Arc::new(InFlight::default());
        let far = Instant::now() + Duration::from_secs(60);
        assert!(!in_flight.wait_drained(far), "idle: no wait");

        in_flight.handed_over();
        in_flight.handed_over();
        let committer = std::thread::spawn({
            let in_flight = in_flight.clone();
            move || {
                in_flight.committed();
                std::thread::sleep(Duration::from_millis(20));
                in_flight.committed();
            }
        });
        let started = Instant::now();
        assert!(in_flight.wait_drained(far), "busy: waited");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "woken by the last commit, not the deadline"
        );
        assert_eq!(*in_flight.count(), 0);
        committer.join().unwrap();

        in_flight.handed_over();
        assert!(
            in_flight.wait_drained(Instant::now() + Duration::from_millis(5)),
            "deadline"
        );
        assert_eq!(*in_flight.count(), 1, "still in flight after the deadline");
    }

    /// A ledger that fills its map grows it instead of refusing: appends arriving meanwhile all
    /// succeed, in order, and the log verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_map_grows_and_no_append_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = LedgerOptions {
            map_size_mib: 1,
            ..LedgerOptions::default()
        };
        let ledger = Arc::new(Ledger::open(dir.path(), options, signer()).unwrap());
        let mut indexes = Vec::new();
        for _ in 0..30 {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let ledger = ledger.clone();
                    tokio::spawn(async move {
                        let mut entry = Entry::new(Kind::Exchange);
                        entry.reason = Some("x".repeat(1024));
                        ledger.append(entry).await
                    })
                })
                .collect();
            for t in tasks {
                indexes.push(t.await.unwrap().unwrap().entry.index);
            }
        }
        indexes.sort();
        assert_eq!(indexes, (0..1500).collect::<Vec<_>>());
        let data = std::fs::metadata(dir.path().join("data.mdb"))
            .unwrap()
            .len();
        assert!(data > 2 << 20, "the 1 MiB map grew ({data} bytes)");
        ledger
            .read(|r| Ok(verify_log(r, &signer().verifier(), |_| {})))
            .unwrap()
            .unwrap();
    }

    /// A gateway upgraded in place keeps its log: entries written in version 1 (as the previous
    /// release wrote them) and version 2 entries appended after them form one chain that verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_written_in_version_1_keeps_verifying_after_version_2_entries() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), LedgerOptions::default(), signer()).unwrap();
        for n in 0..20 {
            let mut old = Entry::new(Kind::Exchange);
            old.v = 1;
            old.response_digest = Some(format!("{n:064x}"));
            ledger.append(old).await.unwrap();
        }
        ledger.close();
        drop(ledger);
        let upgraded = Ledger::open(dir.path(), LedgerOptions::default(), signer()).unwrap();
        for _ in 0..20 {
            let mut new = Entry::new(Kind::Exchange);
            new.application = Some("case-desk".into());
            upgraded.append(new).await.unwrap();
        }
        let verified = upgraded
            .read(|r| Ok(verify_log(r, &signer().verifier(), |_| {})))
            .unwrap()
            .unwrap();
        assert_eq!(verified.entries, 40);
        let versions: Vec<u32> = upgraded
            .read(|r| {
                let mut v = Vec::new();
                r.for_each_entry(0, u64::MAX, |_, bytes| {
                    v.push(Entry::from_bytes(bytes).unwrap().v);
                    Ok(())
                })?;
                Ok(v)
            })
            .unwrap();
        assert_eq!(&versions[..20], &[1; 20]);
        assert_eq!(&versions[20..], &[crate::entry::ENTRY_VERSION; 20]);
    }

    /// A commit that fails (here: an entry too big for an LMDB map that may not grow) fails the
    /// batches prepared on top of it too; the writer continues from the durable state, so later
    /// appends succeed, every acknowledged entry is in the log at its index, nothing else is, and
    /// the chain verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_commit_only_acknowledged_entries_are_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let options = LedgerOptions {
            map_size_mib: 1,
            max_map_size_mib: 1,
            ..LedgerOptions::default()
        };
        let ledger = Arc::new(Ledger::open(dir.path(), options, signer()).unwrap());
        let mut acknowledged = Vec::new();
        let (mut too_big, mut after_a_failure) = (0, 0);
        for round in 0..20 {
            let mut tasks = Vec::new();
            for n in 0..17 {
                let ledger = ledger.clone();
                let too_big = n == 0;
                tasks.push(tokio::spawn(async move {
                    let mut entry = Entry::new(Kind::Exchange);
                    entry.reason = Some("x".repeat(if too_big { 2 << 20 } else { 100 }));
                    (too_big, ledger.append(entry).await)
                }));
                if too_big {
                    // The others come while its batch commits, or just after it failed.
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
            for t in tasks {
                match t.await.unwrap() {
                    (true, result) => {
                        assert!(matches!(result, Err(LedgerError::Full)), "{result:?}");
                        too_big += 1;
                    }
                    (false, Ok(a)) => {
                        after_a_failure += usize::from(round > 0);
                        acknowledged.push((a.entry.index, a.leaf_hash));
                    }
                    (false, Err(e)) => assert!(matches!(e, LedgerError::Full), "{e}"),
                }
            }
        }
        assert_eq!(too_big, 20);
        assert!(
            after_a_failure > 0,
            "appends after a failed commit succeed ({after_a_failure})"
        );
        acknowledged.sort();
        let stored = ledger
            .read(|r| {
                let mut stored = Vec::new();
                r.for_each_entry(0, u64::MAX, |index, bytes| {
                    stored.push((index, merkle::leaf_hash(bytes)));
                    Ok(())
                })?;
                Ok(stored)
            })
            .unwrap();
        assert_eq!(
            stored, acknowledged,
            "the log holds exactly the acknowledged entries"
        );
        ledger
            .read(|r| Ok(verify_log(r, &signer().verifier(), |_| {})))
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_reopened_ledger_continues_the_chain_and_a_forged_checkpoint_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let ledger = Ledger::open(dir.path(), LedgerOptions::default(), signer()).unwrap();
            let a = ledger.append(Entry::new(Kind::PolicyChange)).await.unwrap();
            ledger.close();
            a
        };
        let ledger = Ledger::open(dir.path(), LedgerOptions::default(), signer()).unwrap();
        let second = ledger.append(Entry::new(Kind::Exchange)).await.unwrap();
        assert_eq!(second.entry.index, first.entry.index + 1);
        assert_eq!(second.entry.prev, hex::encode(first.leaf_hash));
        // A checkpoint signed by another key, slipped into the store, fails verification.
        let other =
            NoteSigner::new("test/log", ed25519_dalek::SigningKey::from_bytes(&[4; 32])).unwrap();
        let forged = checkpoint::sign_checkpoint(
            &Checkpoint {
                origin: "test/log".into(),
                size: 2,
                root: merkle::empty_root(),
                extensions: vec![],
            },
            &other,
        )
        .unwrap();
        ledger.close();
        drop(ledger);
        let store = Store::open(dir.path(), 64, 64).unwrap();
        store.overwrite_checkpoint(2, &forged).unwrap();
        let failure = store
            .read(|r| Ok(verify_log(r, &signer().verifier(), |_| {})))
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(failure, VerifyFailure::Checkpoint { size: 2, .. }),
            "{failure}"
        );
        // And the ledger refuses to open on a head that does not verify.
        assert!(Ledger::open(dir.path(), LedgerOptions::default(), signer()).is_err());
    }

    fn key(seed: u8) -> NoteSigner {
        NoteSigner::new(
            "test/log",
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        )
        .unwrap()
    }

    fn history(ledger: &Ledger) -> keys::KeyHistory {
        let rotations = ledger.read(|r| Ok(keys::rotations_in(r))).unwrap().unwrap();
        keys::KeyHistory::from_rotations(&rotations, ledger.verifier()).unwrap()
    }

    /// A key rotation while appends keep coming: the rotation entry's checkpoint is the old key's
    /// last, every later one is the new key's alone, no size is signed twice, the whole log
    /// verifies under its history and under no single key, and a ledger closed right after a
    /// rotation (before any checkpoint under the new key) reopens with the new key only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotated_log_verifies_each_checkpoint_under_its_key_and_reopens_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new, third) = (key(3), key(5), key(7));
        let ledger = Arc::new(Ledger::open(dir.path(), LedgerOptions::default(), old).unwrap());
        let appends = |ledger: &Arc<Ledger>| {
            (0..40)
                .map(|_| {
                    let ledger = ledger.clone();
                    tokio::spawn(async move { ledger.append(Entry::new(Kind::Exchange)).await })
                })
                .collect::<Vec<_>>()
        };
        let before = appends(&ledger);
        let rotation = ledger.rotate_key(key(5)).await.unwrap();
        let after = appends(&ledger);
        for t in before.into_iter().chain(after) {
            let a = t.await.unwrap().unwrap();
            // Every receipt's checkpoint is signed by the key valid for its size.
            let signer = if a.checkpoint_size <= rotation + 1 {
                key(3)
            } else {
                key(5)
            };
            checkpoint::open_checkpoint(&a.checkpoint, &signer.verifier()).unwrap();
        }
        assert_eq!(ledger.verifier(), new.verifier());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(VKEY_FILE))
                .unwrap()
                .trim(),
            new.verifier().to_vkey()
        );
        let checkpoints = ledger.read(|r| r.checkpoints()).unwrap();
        assert!(
            checkpoints.iter().any(|(size, _)| *size == rotation + 1),
            "the rotation entry ends its batch"
        );
        for (size, note) in &checkpoints {
            let (valid, other) = if *size <= rotation + 1 {
                (&key(3), &new)
            } else {
                (&new, &key(3))
            };
            assert!(
                checkpoint::open_checkpoint(note, &valid.verifier()).is_ok(),
                "size {size}"
            );
            assert!(
                checkpoint::open_checkpoint(note, &other.verifier()).is_err(),
                "size {size}"
            );
        }
        let keys = history(&ledger);
        assert_eq!(keys.retired()[0].until_size, rotation + 1);
        let verified = ledger
            .read(|r| Ok(verify::verify_log_history(r, &keys, |_| {})))
            .unwrap()
            .unwrap();
        assert_eq!(verified.entries, ledger.checkpoint().0);
        for single in [key(3), key(5)] {
            assert!(ledger
                .read(|r| Ok(verify_log(r, &single.verifier(), |_| {})))
                .unwrap()
                .is_err());
        }

        // The crash window: rotated, then stopped before any checkpoint under the new key.
        let second = ledger.rotate_key(key(7)).await.unwrap();
        ledger.close();
        drop(ledger);
        assert_eq!(second + 1, {
            let store = Store::open(dir.path(), 64, 64).unwrap();
            store.head().unwrap().frontier.size()
        });
        let refused = Ledger::open(dir.path(), LedgerOptions::default(), key(5));
        assert!(
            matches!(&refused, Err(LedgerError::Corrupt(m)) if m.contains("hands it over")),
            "the key rotated away from is refused"
        );
        let reopened = Ledger::open(dir.path(), LedgerOptions::default(), third).unwrap();
        let a = reopened.append(Entry::new(Kind::Exchange)).await.unwrap();
        checkpoint::open_checkpoint(&a.checkpoint, &key(7).verifier()).unwrap();
        let keys = history(&reopened);
        assert_eq!(keys.retired().len(), 2);
        reopened
            .read(|r| Ok(verify::verify_log_history(r, &keys, |_| {})))
            .unwrap()
            .unwrap();
    }

    /// Attack: someone able to append (or a directory entry claiming a rotation) puts a
    /// key-rotation entry into the log that the old key did not sign, handing the log to their own
    /// key. No history built from it is accepted, and verification under a history that claims it
    /// names that entry.
    #[tokio::test]
    async fn a_forged_key_rotation_does_not_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (old, attacker) = (key(3), key(9));
        let ledger = Ledger::open(dir.path(), LedgerOptions::default(), key(3)).unwrap();
        ledger.append(Entry::new(Kind::Exchange)).await.unwrap();
        let mut forged = keys::Rotation::sign(&attacker, &attacker.verifier()).unwrap();
        forged.old_vkey = old.verifier().to_vkey();
        let mut entry = Entry::new(Kind::KeyRotation);
        entry.detail = Some(serde_json::to_value(&forged).unwrap());
        let index = ledger.append(entry).await.unwrap().entry.index;
        ledger.append(Entry::new(Kind::Exchange)).await.unwrap();
        let rotations = ledger.read(|r| Ok(keys::rotations_in(r))).unwrap().unwrap();
        assert_eq!(rotations.len(), 1);
        assert!(keys::KeyHistory::from_rotations(&rotations, attacker.verifier()).is_err());
        let claimed = keys::KeyHistory::new(
            vec![keys::RetiredKey {
                verifier: old.verifier(),
                until_size: index + 1,
                revoked_from: None,
            }],
            attacker.verifier(),
        )
        .unwrap();
        let failure = ledger
            .read(|r| Ok(verify::verify_log_history(r, &claimed, |_| {})))
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&failure, VerifyFailure::Entry { index: i, problem } if *i == index && problem.contains("not signed by the key it replaces")),
            "{failure}"
        );
    }

    /// Checkpoints under a revoked key are counted, not trusted; the log still verifies because
    /// the new key's checkpoints cover every entry.
    #[tokio::test]
    async fn checkpoints_under_a_revoked_key_are_not_counted_as_signed() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), LedgerOptions::default(), key(3)).unwrap();
        for _ in 0..5 {
            ledger.append(Entry::new(Kind::Exchange)).await.unwrap();
        }
        let rotation = ledger.rotate_key(key(5)).await.unwrap();
        ledger.append(Entry::new(Kind::Exchange)).await.unwrap();
        let keys = keys::KeyHistory::new(
            vec![keys::RetiredKey {
                verifier: key(3).verifier(),
                until_size: rotation + 1,
                revoked_from: Some(3),
            }],
            key(5).verifier(),
        )
        .unwrap();
        let verified = ledger
            .read(|r| Ok(verify::verify_log_history(r, &keys, |_| {})))
            .unwrap()
            .unwrap();
        assert_eq!(
            verified.revoked,
            rotation + 1 - 2,
            "sizes 3..={} under the revoked key",
            rotation + 1
        );
    }

    /// A rotation whose batch fails to commit (here: with an entry too big for a map that may not
    /// grow) did not happen: its caller gets the error, the old key stays in force and signs the
    /// next checkpoints, and the log verifies under the history its durable rotations tell.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_whose_commit_fails_leaves_the_old_key_in_force() {
        let dir = tempfile::tempdir().unwrap();
        // Long gaps, so that the big entry and the rotation queued right behind it share a batch
        // even on a loaded machine.
        let options = LedgerOptions {
            map_size_mib: 1,
            max_map_size_mib: 1,
            batch_window: Duration::from_millis(500),
            batch_gap: Duration::from_millis(50),
            ..LedgerOptions::default()
        };
        let ledger = Arc::new(Ledger::open(dir.path(), options, key(3)).unwrap());
        let (mut failed, mut rotated) = (0, 0);
        for round in 0..12u8 {
            let before = ledger.verifier();
            let mut big = Entry::new(Kind::Exchange);
            big.reason = Some("x".repeat(2 << 20));
            // Polled in order: the big entry is queued first, the rotation right behind it.
            let (big, rotation) =
                tokio::join!(ledger.append(big), ledger.rotate_key(key(10 + round)));
            assert!(big.is_err(), "too big for the map");
            match &rotation {
                Ok(_) => rotated += 1,
                Err(e) => {
                    assert!(matches!(e, LedgerError::Full), "{e}");
                    failed += 1;
                }
            }
            let expected = if rotation.is_ok() {
                key(10 + round).verifier()
            } else {
                before
            };
            assert_eq!(ledger.verifier(), expected);
            let next = ledger.append(Entry::new(Kind::Exchange)).await.unwrap();
            checkpoint::open_checkpoint(&next.checkpoint, &expected).unwrap_or_else(|e| {
                panic!("round {round}: the next checkpoint is the key in force's: {e}")
            });
        }
        assert!(
            failed > 0,
            "some rotations shared the failed batch ({rotated} did not)"
        );
        let keys = history(&ledger);
        assert_eq!(keys.retired().len(), rotated);
        ledger
            .read(|r| Ok(verify::verify_log_history(r, &keys, |_| {})))
            .unwrap()
            .unwrap();
    }
}
