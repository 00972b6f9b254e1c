//! The replica: every department's log as the oversight node verified it, in one LMDB environment,
//! with the indexes that searches, the cross-check and the dashboard need.
//!
//! Databases:
//! - `entries`: entry key (`dept || 0x00 || index` as u64 big-endian) -> the entry's exact bytes
//! - `index`: `tag || value || 0x00 || time (ms, u64 BE) || entry key` -> empty; one key per
//!   (index, entry), so a search is a range scan that comes out in time order
//! - `logs`: department id -> [`LogState`] (JSON): how far its log is replicated and verified
//! - `stats`: counters for the dashboard (exchanges per department pair, per minute)
//! - `tree`: `dept || 0x00 || level || index` (u64 BE) -> the hash of that perfect subtree of the
//!   department's Merkle tree, so that inclusion proofs come from here: asking a department for
//!   the proof of its entry N would tell it which entry (and so whose) oversight is looking at
//!
//! An entry, its index keys and tree nodes, the counters and the department's new state are
//! written in one transaction, so the replica never holds an entry that is not verified, nor an index without it.
//! What is verified is decided by [`LogFollower`] (pure: no disk, no network) and the puller.

use std::path::Path;

use lmdb::{Cursor, Database, DatabaseFlags, Transaction, WriteFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::DeptId;
use causeway_ledger::entry::{Entry, Side, GENESIS_PREV};
use causeway_ledger::env::{Env, MapError};
use causeway_ledger::merkle::{inclusion_proof, leaf_hash, Frontier, Hash, NodeSource};

/// Index tags (first byte of an `index` key).
mod tag {
    pub const TIME: u8 = b't';
    pub const EXCHANGE: u8 = b'x';
    pub const SUBJECT: u8 = b's';
    pub const PAIR: u8 = b'p';
    pub const DATASET: u8 = b'd';
    pub const PURPOSE: u8 = b'u';
    pub const DEPARTMENT: u8 = b'e';
    pub const DECISION: u8 = b'a';
}

/// LMDB cursor operations (lmdb.h `MDB_cursor_op`), which lmdb-rkv does not re-export.
const MDB_LAST: u32 = 6;
const MDB_NEXT: u32 = 8;
const MDB_PREV: u32 = 12;
const MDB_SET_RANGE: u32 = 17;

/// Longest indexed value kept as is; longer ones (and any holding NUL) are indexed by their hash.
const MAX_INDEXED_VALUE: usize = 200;

/// Why the replica could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The LMDB map is full and cannot grow.
    #[error("the replica's map is full and cannot grow (address space, or `ulimit -v`)")]
    Full,
    /// A storage error.
    #[error("the replica could not be read or written: {0}")]
    Storage(String),
    /// Stored data that does not make sense.
    #[error("the replica is corrupt: {0}")]
    Corrupt(String),
}

impl From<lmdb::Error> for ReplicaError {
    fn from(e: lmdb::Error) -> Self {
        match e {
            lmdb::Error::MapFull => ReplicaError::Full,
            other => ReplicaError::Storage(other.to_string()),
        }
    }
}

impl MapError for ReplicaError {
    fn is_full(&self) -> bool {
        matches!(self, ReplicaError::Full)
    }
}

/// A signed checkpoint the oversight node verified and holds for a department's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// The signed note as served (with any cosignature lines).
    pub note: String,
}

/// Why a department's log is flagged, with the evidence kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Machine-readable reason: `shrunk`, `fork`, `inconsistent`, `entries-mismatch`, `chain-break`.
    pub reason: String,
    /// What was found, in words.
    pub message: String,
    /// When (RFC 3339, this node's clock).
    pub detected_at: String,
    /// The checkpoint this node held before (signed by the department).
    pub held: Option<String>,
    /// The checkpoint the department served that contradicts it (signed by the department).
    pub served: Option<String>,
    /// Further evidence: offending entry bytes (base64) or proof hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// How far one department's log is replicated and verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Entries replicated (all verified, from index 0).
    pub size: u64,
    /// The replicated tree's right edge (hex of [`Frontier::to_bytes`]).
    pub frontier: String,
    /// Leaf hash (hex) of the last replicated entry.
    pub last_leaf: Option<String>,
    /// The newest checkpoint verified (its size may exceed `size` while a pull is under way).
    pub checkpoint: Option<HeldCheckpoint>,
    /// Known witnesses that cosigned `checkpoint`.
    pub witnesses: Vec<String>,
    /// When the last pull finished (RFC 3339), successful or not.
    pub last_pull: Option<String>,
    /// When the last successful pull began, in Unix milliseconds: every entry the department
    /// wrote before then is replicated.
    pub last_pull_started_ms: Option<u64>,
    /// The last pull's error (unreachable, refused...), if it failed without evidence of wrongdoing.
    pub last_error: Option<String>,
    /// Set when the department served a log inconsistent with what this node held.
    pub flag: Option<Flag>,
}

impl LogState {
    /// The replicated tree's right edge.
    pub fn frontier(&self) -> Result<Frontier, ReplicaError> {
        if self.frontier.is_empty() {
            return Ok(Frontier::default());
        }
        let bytes = hex::decode(&self.frontier)
            .map_err(|_| ReplicaError::Corrupt("a stored frontier is not hex".into()))?;
        Frontier::from_bytes(&bytes)
            .map_err(|e| ReplicaError::Corrupt(format!("a stored frontier: {e}")))
    }

    /// A follower that continues from this state.
    pub fn follower(&self) -> Result<LogFollower, ReplicaError> {
        let frontier = self.frontier()?;
        if frontier.size() != self.size {
            return Err(ReplicaError::Corrupt(format!(
                "stored frontier size {} differs from the replicated size {}",
                frontier.size(),
                self.size
            )));
        }
        let last_leaf = match &self.last_leaf {
            Some(h) => Some(decode_hash(h).ok_or_else(|| {
                ReplicaError::Corrupt("a stored leaf hash is not 32 bytes of hex".into())
            })?),
            None => None,
        };
        Ok(LogFollower {
            frontier,
            last_leaf,
        })
    }

    /// Record where `follower` got to.
    pub fn advance(&mut self, follower: &LogFollower) {
        self.size = follower.size();
        self.frontier = hex::encode(follower.frontier.to_bytes());
        self.last_leaf = follower.last_leaf.map(hex::encode);
    }
}

/// Hex -> 32-byte hash.
pub fn decode_hash(h: &str) -> Option<Hash> {
    hex::decode(h).ok()?.try_into().ok()
}

/// Why an entry does not continue a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: {problem}")]
pub struct ChainBreak {
    /// The entry's position in the log.
    pub index: u64,
    /// What is wrong.
    pub problem: String,
}

/// Follows one log entry by entry: re-hashes each entry (trusting no served hash), checks its
/// `index` and `prev`, and grows the Merkle tree so that its root can be compared with a signed
/// checkpoint.
#[derive(Debug, Clone, Default)]
pub struct LogFollower {
    frontier: Frontier,
    last_leaf: Option<Hash>,
}

impl LogFollower {
    /// Entries followed so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Root of the tree of the entries followed so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Take the next entry's exact bytes; returns it parsed.
    pub fn follow(&mut self, bytes: &[u8]) -> Result<Entry, ChainBreak> {
        let index = self.size();
        let brk = |problem: String| ChainBreak { index, problem };
        let entry = Entry::from_bytes(bytes).map_err(|e| brk(format!("not a valid entry: {e}")))?;
        if entry.index != index {
            return Err(brk(format!("says it is entry {}", entry.index)));
        }
        let expected_prev = self
            .last_leaf
            .map_or_else(|| GENESIS_PREV.to_owned(), hex::encode);
        if entry.prev != expected_prev {
            return Err(brk(format!(
                "prev is {} but the previous entry hashes to {expected_prev}",
                entry.prev
            )));
        }
        let leaf = leaf_hash(bytes);
        self.frontier.append(leaf);
        self.last_leaf = Some(leaf);
        Ok(entry)
    }
}

/// One replicated entry, as searches return it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The department whose log holds it.
    pub log: String,
    /// Its index in that log.
    pub index: u64,
    /// Its leaf hash (hex), recomputed from the bytes.
    pub leaf_hash: String,
    /// The entry.
    pub entry: Entry,
}

impl Record {
    /// Where this record sits in a search's order (the cursor of the page it ends).
    pub fn position(&self) -> Position {
        Position {
            time_ms: entry_time_ms(&self.entry),
            log: self.log.clone(),
            index: self.index,
        }
    }
}

/// A search over the replica. Empty fields do not filter. Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Exchange id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// A department on either side (or whose log holds the entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The asking department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// The data-holding department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// A data subject's keyed tags (never the raw identifier), comma-separated: a person has one
    /// under each department's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_tag: Option<String>,
    /// `allow` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Only entries written by this side (`provider` or `consumer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// From this time (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    /// Up to this time (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<u64>,
    /// The decision's reason code (not indexed: filters what an index walk finds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Most records to return (newest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only records strictly older than this one: the next page after a page whose last (oldest)
    /// row was here. Costs one seek.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Position>,
    /// Only records strictly newer than this one: the page before a page whose first (newest) row
    /// was here. The records still come newest first: the `limit` oldest of the newer ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Position>,
}

/// Where a record sits in a search's order (time, then log, then index): the cursor of a page.
/// Written `<time_ms>.<log>.<index>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The entry's time, Unix milliseconds (as indexed).
    pub time_ms: u64,
    /// The log that holds it.
    pub log: String,
    /// Its index in that log.
    pub index: u64,
}

impl Position {
    /// The index key of this position under `prefix`.
    fn key(&self, prefix: &[u8]) -> Vec<u8> {
        let mut k = prefix.to_vec();
        k.extend_from_slice(&self.time_ms.to_be_bytes());
        k.extend_from_slice(&entry_key(&self.log, self.index));
        k
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.time_ms, self.log, self.index)
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a page position like 1767261600000.civil-registry.12");
        let (time, rest) = s.split_once('.').ok_or_else(bad)?;
        let (log, index) = rest.rsplit_once('.').ok_or_else(bad)?;
        if log.is_empty() || log.contains('\0') {
            return Err(bad());
        }
        Ok(Position {
            time_ms: time.parse().map_err(|_| bad())?,
            log: log.to_owned(),
            index: index.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Default and largest number of records a search returns.
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest `limit` accepted.
pub const MAX_LIMIT: usize = 100_000;

impl Query {
    fn matches(&self, log: &str, e: &Entry) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| have.as_deref() == Some(w.as_str()))
        };
        eq(&self.exchange, &e.id)
            && eq(&self.consumer, &e.consumer)
            && eq(&self.provider, &e.provider)
            && eq(&self.dataset, &e.dataset)
            && eq(&self.purpose, &e.purpose)
            && eq(&self.decision, &e.decision)
            && eq(&self.reason, &e.reason)
            && self.side.is_none_or(|s| e.side == Some(s))
            && self.subject_tag.as_ref().is_none_or(|_| {
                self.subject_tags()
                    .any(|t| e.subjects.iter().any(|s| s == t))
            })
            && self.department.as_ref().is_none_or(|d| {
                log == d || e.consumer.as_deref() == Some(d) || e.provider.as_deref() == Some(d)
            })
    }

    /// The subject tags asked for (a person has one per department key).
    pub fn subject_tags(&self) -> impl Iterator<Item = &str> {
        self.subject_tag
            .as_deref()
            .into_iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
    }

    /// The index walks that answer this query: one per subject tag, else the most selective
    /// index.
    fn plans(&self) -> Vec<(u8, String)> {
        if self.exchange.is_none() && self.subject_tag.is_some() {
            return self
                .subject_tags()
                .map(|t| (tag::SUBJECT, t.to_owned()))
                .collect();
        }
        vec![self.plan()]
    }

    /// The most selective index for this query: (tag, value).
    fn plan(&self) -> (u8, String) {
        if let Some(x) = &self.exchange {
            return (tag::EXCHANGE, x.clone());
        }
        if let Some(s) = &self.subject_tag {
            return (tag::SUBJECT, s.clone());
        }
        if let (Some(c), Some(p)) = (&self.consumer, &self.provider) {
            return (tag::PAIR, pair(c, p));
        }
        if let Some(d) = &self.dataset {
            return (tag::DATASET, d.clone());
        }
        if let Some(u) = &self.purpose {
            return (tag::PURPOSE, u.clone());
        }
        if let Some(d) = self
            .department
            .as_ref()
            .or(self.consumer.as_ref())
            .or(self.provider.as_ref())
        {
            return (tag::DEPARTMENT, d.clone());
        }
        if let Some(d) = &self.decision {
            return (tag::DECISION, d.clone());
        }
        (tag::TIME, String::new())
    }

    /// The effective limit.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

fn pair(consumer: &str, provider: &str) -> String {
    format!("{consumer}>{provider}")
}

/// What a search found.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// Matching records, newest first.
    pub records: Vec<Record>,
    /// True when more records matched than `limit` in the direction walked: older ones, or with
    /// [`Query::after`], newer ones.
    pub truncated: bool,
}

impl SearchResult {
    /// Whether matching records older than this page exist (so an "older" link has a page).
    pub fn has_older(&self, query: &Query) -> bool {
        if query.after.is_some() {
            // The page this one came back from.
            true
        } else {
            self.truncated
        }
    }

    /// Whether matching records newer than this page exist.
    pub fn has_newer(&self, query: &Query) -> bool {
        if query.after.is_some() {
            self.truncated
        } else {
            query.before.is_some()
        }
    }
}

/// Exchanges per (consumer, provider), counted from provider-side entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PairCount {
    /// Asking department.
    pub consumer: String,
    /// Data-holding department.
    pub provider: String,
    /// Allowed.
    pub allowed: u64,
    /// Denied.
    pub denied: u64,
}

/// Allowed and denied exchanges in one minute (provider-side entries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// Unix minute.
    pub minute: u64,
    /// Allowed.
    pub allowed: u64,
    /// Denied.
    pub denied: u64,
}

/// The oversight node's replica of every department's log.
pub struct Replica {
    env: Env,
    entries: Database,
    index: Database,
    logs: Database,
    stats: Database,
    tree: Database,
}

/// `dept || 0x00 || level || index BE`: a node of `dept`'s Merkle tree.
fn node_key(dept: &str, level: u8, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(dept.len() + 10);
    k.extend_from_slice(dept.as_bytes());
    k.push(0);
    k.push(level);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// One department's stored tree, read in one transaction.
struct StoredTree<'t, T: Transaction> {
    txn: &'t T,
    db: Database,
    dept: &'t str,
}

impl<T: Transaction> NodeSource for StoredTree<'_, T> {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        let bytes = self
            .txn
            .get(self.db, &node_key(self.dept, level, index))
            .ok()?;
        bytes.try_into().ok()
    }
}

/// Store the nodes that appending `leaves` (leaf hashes, in order) to `frontier` completes.
fn put_nodes(
    txn: &mut lmdb::RwTransaction<'_>,
    db: Database,
    dept: &str,
    frontier: &mut Frontier,
    leaves: impl Iterator<Item = Hash>,
) -> Result<(), ReplicaError> {
    for leaf in leaves {
        for (level, index, hash) in frontier.append(leaf) {
            txn.put(
                db,
                &node_key(dept, level, index),
                &hash,
                WriteFlags::empty(),
            )?;
        }
    }
    Ok(())
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replica(..)")
    }
}

/// `dept || 0x00 || index BE`.
pub fn entry_key(dept: &str, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(dept.len() + 9);
    k.extend_from_slice(dept.as_bytes());
    k.push(0);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn split_entry_key(key: &[u8]) -> Option<(&str, u64)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let index = u64::from_be_bytes(key.get(nul + 1..)?.try_into().ok()?);
    Some((std::str::from_utf8(&key[..nul]).ok()?, index))
}

/// An indexed value as stored: itself, or `#` and its SHA-256 when long or holding NUL.
fn indexed(value: &str) -> String {
    if value.len() > MAX_INDEXED_VALUE || value.contains('\0') {
        format!("#{}", hex::encode(Sha256::digest(value.as_bytes())))
    } else {
        value.to_owned()
    }
}

fn index_prefix(tag: u8, value: &str) -> Vec<u8> {
    let value = indexed(value);
    let mut k = Vec::with_capacity(value.len() + 2);
    k.push(tag);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

/// Unix milliseconds of an entry's RFC 3339 time (0 if it has none that parses).
pub fn entry_time_ms(entry: &Entry) -> u64 {
    time::OffsetDateTime::parse(&entry.time, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
        .unwrap_or(0)
}

/// The index keys of one entry.
fn index_keys(log: &str, entry: &Entry, key: &[u8]) -> Vec<Vec<u8>> {
    let time = entry_time_ms(entry).to_be_bytes();
    let mut values: Vec<(u8, String)> = vec![(tag::TIME, String::new())];
    if let Some(x) = &entry.id {
        values.push((tag::EXCHANGE, x.clone()));
    }
    for s in &entry.subjects {
        values.push((tag::SUBJECT, s.clone()));
    }
    if let (Some(c), Some(p)) = (&entry.consumer, &entry.provider) {
        values.push((tag::PAIR, pair(c, p)));
    }
    if let Some(d) = &entry.dataset {
        values.push((tag::DATASET, d.clone()));
    }
    if let Some(u) = &entry.purpose {
        values.push((tag::PURPOSE, u.clone()));
    }
    if let Some(d) = &entry.decision {
        values.push((tag::DECISION, d.clone()));
    }
    let mut departments = vec![log];
    for d in [entry.consumer.as_deref(), entry.provider.as_deref()]
        .into_iter()
        .flatten()
    {
        if !departments.contains(&d) {
            departments.push(d);
        }
    }
    for d in departments {
        values.push((tag::DEPARTMENT, d.to_owned()));
    }
    values
        .into_iter()
        .map(|(t, v)| {
            let mut k = index_prefix(t, &v);
            k.extend_from_slice(&time);
            k.extend_from_slice(key);
            k
        })
        .collect()
}

fn bump(
    txn: &mut lmdb::RwTransaction<'_>,
    db: Database,
    key: &[u8],
    by: u64,
) -> Result<(), ReplicaError> {
    let now = match txn.get(db, &key) {
        Ok(v) => u64::from_be_bytes(
            v.try_into()
                .map_err(|_| ReplicaError::Corrupt("a stored counter is not 8 bytes".into()))?,
        ),
        Err(lmdb::Error::NotFound) => 0,
        Err(e) => return Err(e.into()),
    };
    txn.put(db, &key, &(now + by).to_be_bytes(), WriteFlags::empty())
        .map_err(ReplicaError::from)
}

impl Replica {
    /// Open (creating if needed) the replica in `dir`.
    pub fn open(dir: &Path, map_size_mib: u64) -> Result<Replica, ReplicaError> {
        let mut env = Env::open(dir, map_size_mib, causeway_ledger::DEFAULT_MAX_MAP_SIZE_MIB)
            .map_err(ReplicaError::Storage)?;
        let lmdb = env.lmdb();
        let db = |name| {
            lmdb.create_db(Some(name), DatabaseFlags::empty())
                .map_err(ReplicaError::from)
        };
        let (entries, index, logs, stats, tree) = (
            db("entries")?,
            db("index")?,
            db("logs")?,
            db("stats")?,
            db("tree")?,
        );
        let replica = Replica {
            env,
            entries,
            index,
            logs,
            stats,
            tree,
        };
        replica.build_missing_trees()?;
        Ok(replica)
    }

    /// A replica written before it kept the trees: build each log's from its entries, once.
    fn build_missing_trees(&self) -> Result<(), ReplicaError> {
        for (dept, state) in self.states()? {
            let Some(last) = state.size.checked_sub(1) else {
                continue;
            };
            if self
                .env
                .ro()?
                .get(self.tree, &node_key(&dept, 0, last))
                .is_ok()
            {
                continue;
            }
            self.env.write(|txn| {
                let mut frontier = Frontier::default();
                // Leaf hashes only (32 bytes an entry): the cursor cannot stay open while the
                // nodes are written in the same transaction.
                let mut leaves = Vec::new();
                {
                    let mut cursor = txn.open_ro_cursor(self.entries)?;
                    for item in cursor.iter_from(entry_key(&dept, 0)) {
                        let (key, bytes) = item?;
                        match split_entry_key(key) {
                            Some((d, _)) if d == dept && (leaves.len() as u64) < state.size => {
                                leaves.push(leaf_hash(bytes))
                            }
                            _ => break,
                        }
                    }
                }
                put_nodes(txn, self.tree, &dept, &mut frontier, leaves.into_iter())?;
                if frontier.size() != state.size || frontier.root() != state.frontier()?.root() {
                    return Err(ReplicaError::Corrupt(format!(
                        "{dept}'s replicated entries do not rebuild its stored tree"
                    )));
                }
                Ok(())
            })?;
            tracing::info!(department = %dept, entries = state.size, "replica: built the Merkle tree of a log replicated before trees were kept");
        }
        Ok(())
    }

    /// The inclusion proof of `dept`'s entry `index` in its tree of `size` entries, from the
    /// stored tree (no department is asked).
    pub fn inclusion_proof(
        &self,
        dept: &str,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, ReplicaError> {
        let txn = self.env.ro()?;
        let tree = StoredTree {
            txn: &*txn,
            db: self.tree,
            dept,
        };
        inclusion_proof(&tree, index, size)
            .map_err(|e| ReplicaError::Corrupt(format!("{dept}'s stored tree: {e}")))
    }

    /// The state of `dept`'s log (default: nothing replicated yet).
    pub fn state(&self, dept: &str) -> Result<LogState, ReplicaError> {
        let txn = self.env.ro()?;
        match txn.get(self.logs, &dept.as_bytes()) {
            Ok(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| ReplicaError::Corrupt(format!("state of {dept}: {e}"))),
            Err(lmdb::Error::NotFound) => Ok(LogState::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every department's state, by id.
    pub fn states(&self) -> Result<Vec<(String, LogState)>, ReplicaError> {
        let txn = self.env.ro()?;
        let mut cursor = txn.open_ro_cursor(self.logs)?;
        let mut out = Vec::new();
        for item in cursor.iter_start() {
            let (k, v) = item?;
            let dept = String::from_utf8_lossy(k).into_owned();
            let state = serde_json::from_slice(v)
                .map_err(|e| ReplicaError::Corrupt(format!("state of {dept}: {e}")))?;
            out.push((dept, state));
        }
        Ok(out)
    }

    /// Store `dept`'s state alone (a flag, an error, new cosignatures).
    pub fn put_state(&self, dept: &str, state: &LogState) -> Result<(), ReplicaError> {
        let json = serde_json::to_vec(state).expect("log state always serializes");
        self.env.write(|txn| {
            txn.put(self.logs, &dept.as_bytes(), &json, WriteFlags::empty())
                .map_err(ReplicaError::from)
        })
    }

    /// Store verified entries of `dept`'s log (`(bytes, parsed)`, in order, continuing the
    /// replicated log) together with its new `state`, in one transaction.
    pub fn commit(
        &self,
        dept: &DeptId,
        entries: &[(Vec<u8>, Entry)],
        state: &LogState,
    ) -> Result<(), ReplicaError> {
        let log = dept.as_str();
        self.env
            .write(|txn| self.put_entries(txn, log, entries, state))
    }

    fn put_entries(
        &self,
        txn: &mut lmdb::RwTransaction<'_>,
        log: &str,
        entries: &[(Vec<u8>, Entry)],
        state: &LogState,
    ) -> Result<(), ReplicaError> {
        let mut frontier = match txn.get(self.logs, &log.as_bytes()) {
            Ok(bytes) => serde_json::from_slice::<LogState>(bytes)
                .map_err(|e| ReplicaError::Corrupt(format!("state of {log}: {e}")))?
                .frontier()?,
            Err(lmdb::Error::NotFound) => Frontier::default(),
            Err(e) => return Err(e.into()),
        };
        put_nodes(
            txn,
            self.tree,
            log,
            &mut frontier,
            entries.iter().map(|(bytes, _)| leaf_hash(bytes)),
        )?;
        if frontier.size() != state.size {
            return Err(ReplicaError::Corrupt(format!(
                "{log}: {} entries do not continue the replicated {} to {}",
                entries.len(),
                frontier.size() - entries.len() as u64,
                state.size
            )));
        }
        for (bytes, entry) in entries {
            let key = entry_key(log, entry.index);
            txn.put(self.entries, &key, bytes, WriteFlags::empty())?;
            for k in index_keys(log, entry, &key) {
                txn.put(self.index, &k, &[], WriteFlags::empty())?;
            }
            if entry.side == Some(Side::Provider) {
                if let (Some(c), Some(p), Some(d)) =
                    (&entry.consumer, &entry.provider, &entry.decision)
                {
                    let decision = if d == "allow" { "allow" } else { "deny" };
                    bump(
                        txn,
                        self.stats,
                        format!("m\0{c}\0{p}\0{decision}").as_bytes(),
                        1,
                    )?;
                    let minute = entry_time_ms(entry) / 60_000;
                    let mut k = b"t\0".to_vec();
                    k.extend_from_slice(&minute.to_be_bytes());
                    k.push(if decision == "allow" { b'a' } else { b'd' });
                    bump(txn, self.stats, &k, 1)?;
                }
            }
        }
        let json = serde_json::to_vec(state).expect("log state always serializes");
        txn.put(self.logs, &log.as_bytes(), &json, WriteFlags::empty())
            .map_err(ReplicaError::from)
    }

    /// One entry's exact bytes.
    pub fn entry_bytes(&self, dept: &str, index: u64) -> Result<Option<Vec<u8>>, ReplicaError> {
        let txn = self.env.ro()?;
        match txn.get(self.entries, &entry_key(dept, index)) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn record(&self, txn: &lmdb::RoTransaction<'_>, key: &[u8]) -> Result<Record, ReplicaError> {
        let (log, index) = split_entry_key(key)
            .ok_or_else(|| ReplicaError::Corrupt("an index key names no entry".into()))?;
        let bytes = txn.get(self.entries, &key).map_err(|e| match e {
            lmdb::Error::NotFound => {
                ReplicaError::Corrupt(format!("the index names {log} #{index}, which is missing"))
            }
            other => other.into(),
        })?;
        let entry = Entry::from_bytes(bytes)
            .map_err(|e| ReplicaError::Corrupt(format!("{log} #{index}: {e}")))?;
        Ok(Record {
            log: log.to_owned(),
            index,
            leaf_hash: hex::encode(leaf_hash(bytes)),
            entry,
        })
    }

    /// Run `query`: newest first, at most its limit. A query for several subject tags (one
    /// person's tags under every department's key) walks each tag's index and merges.
    pub fn search(&self, query: &Query) -> Result<SearchResult, ReplicaError> {
        let limit = query.limit();
        let txn = self.env.ro()?;
        let mut found = Vec::new();
        let newer = query.after.is_some();
        for (t, value) in query.plans() {
            let prefix = index_prefix(t, &value);
            found.extend(if newer {
                self.scan_forward(&txn, &prefix, query, limit + 1)?
            } else {
                self.scan(&txn, &prefix, query, limit + 1)?
            });
        }
        found.sort_by(|(ta, a), (tb, b)| (tb, &b.log, b.index).cmp(&(ta, &a.log, a.index)));
        found.dedup_by(|(_, a), (_, b)| a.log == b.log && a.index == b.index);
        let truncated = found.len() > limit;
        if newer {
            // The `limit` oldest of the newer records: the page just above the cursor.
            found.drain(..found.len().saturating_sub(limit));
        } else {
            found.truncate(limit);
        }
        Ok(SearchResult {
            records: found.into_iter().map(|(_, r)| r).collect(),
            truncated,
        })
    }

    /// Up to `most` records under one index prefix that match `query`, newest first, with their
    /// times.
    fn scan(
        &self,
        txn: &lmdb::RoTransaction<'_>,
        prefix: &[u8],
        query: &Query,
        most: usize,
    ) -> Result<Vec<(u64, Record)>, ReplicaError> {
        let from = query.from_ms.unwrap_or(0);
        let to = query.to_ms.unwrap_or(u64::MAX);
        let cursor = txn.open_ro_cursor(self.index)?;
        let mut seek = prefix.to_vec();
        match to.checked_add(1) {
            Some(after) => seek.extend_from_slice(&after.to_be_bytes()),
            None => seek.extend_from_slice(&[0xff; 9]),
        }
        // A page cursor narrows the walk further: strictly before that record's own key.
        if let Some(before) = &query.before {
            seek = seek.min(before.key(prefix));
        }
        // Position on the last key before `seek`, then walk backwards: newest first.
        let mut current = match cursor.get(Some(&seek), None, MDB_SET_RANGE) {
            Ok(_) => cursor.get(None, None, MDB_PREV),
            Err(lmdb::Error::NotFound) => cursor.get(None, None, MDB_LAST),
            Err(e) => return Err(e.into()),
        };
        let mut records = Vec::new();
        loop {
            let key = match current {
                Ok((Some(k), _)) => k,
                Ok((None, _)) | Err(lmdb::Error::NotFound) => break,
                Err(e) => return Err(e.into()),
            };
            let Some(time) = index_time(key, prefix) else {
                break;
            };
            if time < from {
                break;
            }
            let record = self.record(txn, &key[prefix.len() + 8..])?;
            if query.matches(&record.log, &record.entry) {
                records.push((time, record));
                if records.len() == most {
                    break;
                }
            }
            current = cursor.get(None, None, MDB_PREV);
        }
        Ok(records)
    }

    /// Up to `most` records under one index prefix that match `query` and are newer than its
    /// `after` cursor, oldest first, with their times.
    fn scan_forward(
        &self,
        txn: &lmdb::RoTransaction<'_>,
        prefix: &[u8],
        query: &Query,
        most: usize,
    ) -> Result<Vec<(u64, Record)>, ReplicaError> {
        let to = query.to_ms.unwrap_or(u64::MAX);
        let cursor = txn.open_ro_cursor(self.index)?;
        let mut seek = prefix.to_vec();
        seek.extend_from_slice(&query.from_ms.unwrap_or(0).to_be_bytes());
        if let Some(after) = &query.after {
            // No key extends another (entry keys have a fixed-length tail), so this sorts just
            // after the cursor's own key and before every later one.
            let mut past = after.key(prefix);
            past.push(0);
            seek = seek.max(past);
        }
        let mut current = cursor.get(Some(&seek), None, MDB_SET_RANGE);
        let mut records = Vec::new();
        loop {
            let key = match current {
                Ok((Some(k), _)) => k,
                Ok((None, _)) | Err(lmdb::Error::NotFound) => break,
                Err(e) => return Err(e.into()),
            };
            let Some(time) = index_time(key, prefix) else {
                break;
            };
            if time > to {
                break;
            }
            let record = self.record(txn, &key[prefix.len() + 8..])?;
            if query.matches(&record.log, &record.entry) {
                records.push((time, record));
                if records.len() == most {
                    break;
                }
            }
            current = cursor.get(None, None, MDB_NEXT);
        }
        Ok(records)
    }

    /// Call `f` with every exchange id and the replicated entries that carry it, in id order.
    pub fn for_each_exchange(
        &self,
        mut f: impl FnMut(&str, Vec<Record>),
    ) -> Result<(), ReplicaError> {
        let txn = self.env.ro()?;
        let mut cursor = txn.open_ro_cursor(self.index)?;
        let mut current: Option<(Vec<u8>, Vec<Record>)> = None;
        for item in cursor.iter_from([tag::EXCHANGE]) {
            let (key, _) = item?;
            if key.first() != Some(&tag::EXCHANGE) {
                break;
            }
            let nul = key
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| ReplicaError::Corrupt("an index key has no separator".into()))?;
            let id = &key[1..nul];
            let record = self.record(&txn, key.get(nul + 9..).unwrap_or_default())?;
            match &mut current {
                Some((cur, records)) if cur.as_slice() == id => records.push(record),
                _ => {
                    if let Some((cur, records)) = current.take() {
                        f(&String::from_utf8_lossy(&cur), records);
                    }
                    current = Some((id.to_vec(), vec![record]));
                }
            }
        }
        if let Some((cur, records)) = current {
            f(&String::from_utf8_lossy(&cur), records);
        }
        Ok(())
    }

    /// Add to `ids` the exchange id (as [`Replica::for_each_exchange`] gives it) of every entry
    /// of `dept`'s log from index `from` up to `to` (exclusive) that carries one.
    pub fn exchange_ids(
        &self,
        dept: &str,
        from: u64,
        to: u64,
        ids: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), ReplicaError> {
        if from >= to {
            return Ok(());
        }
        let txn = self.env.ro()?;
        let mut cursor = txn.open_ro_cursor(self.entries)?;
        let end = entry_key(dept, to);
        for item in cursor.iter_from(entry_key(dept, from)) {
            let (key, bytes) = item?;
            if key >= end.as_slice() {
                break;
            }
            let entry = Entry::from_bytes(bytes)
                .map_err(|e| ReplicaError::Corrupt(format!("{dept} entry: {e}")))?;
            if let Some(id) = &entry.id {
                ids.insert(indexed(id));
            }
        }
        Ok(())
    }

    /// Every replicated entry carrying exchange id `id` (as [`Replica::for_each_exchange`] gives
    /// it), in the order that gives them.
    pub fn exchange_records(&self, id: &str) -> Result<Vec<Record>, ReplicaError> {
        let txn = self.env.ro()?;
        let mut cursor = txn.open_ro_cursor(self.index)?;
        let prefix = index_prefix(tag::EXCHANGE, id);
        let mut records = Vec::new();
        for item in cursor.iter_from(&prefix) {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            records.push(self.record(&txn, key.get(prefix.len() + 8..).unwrap_or_default())?);
        }
        Ok(records)
    }

    /// Exchanges per department pair.
    pub fn pair_counts(&self) -> Result<Vec<PairCount>, ReplicaError> {
        let mut out: Vec<PairCount> = Vec::new();
        self.scan_stats(b"m\0", |k, n| {
            let text = String::from_utf8_lossy(&k[2..]).into_owned();
            let mut parts = text.split('\0');
            let (Some(c), Some(p), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
                return;
            };
            let i = match out.iter().position(|x| x.consumer == c && x.provider == p) {
                Some(i) => i,
                None => {
                    out.push(PairCount {
                        consumer: c.to_owned(),
                        provider: p.to_owned(),
                        ..PairCount::default()
                    });
                    out.len() - 1
                }
            };
            if d == "allow" {
                out[i].allowed += n;
            } else {
                out[i].denied += n;
            }
        })?;
        Ok(out)
    }

    /// Allowed and denied exchanges per minute, oldest first.
    pub fn minute_counts(&self) -> Result<Vec<MinuteCount>, ReplicaError> {
        let mut out: Vec<MinuteCount> = Vec::new();
        self.scan_stats(b"t\0", |k, n| {
            if k.len() != 11 {
                return;
            }
            let minute = u64::from_be_bytes(k[2..10].try_into().expect("sliced 8 bytes"));
            if out.last().is_none_or(|m| m.minute != minute) {
                out.push(MinuteCount {
                    minute,
                    ..MinuteCount::default()
                });
            }
            let last = out.last_mut().expect("pushed above");
            if k[10] == b'a' {
                last.allowed += n;
            } else {
                last.denied += n;
            }
        })?;
        Ok(out)
    }

    fn scan_stats(&self, prefix: &[u8], mut f: impl FnMut(&[u8], u64)) -> Result<(), ReplicaError> {
        let txn = self.env.ro()?;
        let mut cursor = txn.open_ro_cursor(self.stats)?;
        for item in cursor.iter_from(prefix) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            let n =
                u64::from_be_bytes(v.try_into().map_err(|_| {
                    ReplicaError::Corrupt("a stored counter is not 8 bytes".into())
                })?);
            f(k, n);
        }
        Ok(())
    }
}

/// The time (ms) of an index key under `prefix` (`prefix time(8) entry-key`), or `None` for a key
/// past that prefix.
fn index_time(key: &[u8], prefix: &[u8]) -> Option<u64> {
    let time = key.strip_prefix(prefix)?.get(..8)?;
    Some(u64::from_be_bytes(time.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, prev: &str, id: &str, side: Side, minute: u32) -> Entry {
        let mut e = Entry::new(causeway_ledger::entry::Kind::Exchange);
        e.index = index;
        e.time = format!("2026-01-01T10:{minute:02}:00Z");
        e.side = Some(side);
        e.id = Some(id.into());
        e.consumer = Some("tax".into());
        e.provider = Some("registry".into());
        e.dataset = Some("residents".into());
        e.purpose = Some("audit".into());
        e.decision = Some("allow".into());
        e.subjects = vec![format!("tag-{id}")];
        e.prev = prev.into();
        e
    }

    fn fill(replica: &Replica, dept: &str, ids: &[&str]) {
        let mut follower = LogFollower::default();
        let mut batch = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let prev = follower
                .last_leaf
                .map_or_else(|| GENESIS_PREV.to_owned(), hex::encode);
            let bytes = entry(i as u64, &prev, id, Side::Provider, i as u32).to_bytes();
            let parsed = follower.follow(&bytes).unwrap();
            batch.push((bytes, parsed));
        }
        let mut state = LogState::default();
        state.advance(&follower);
        replica
            .commit(&DeptId::new(dept).unwrap(), &batch, &state)
            .unwrap();
    }

    /// A log whose entries have the given minutes (several entries may share one).
    fn fill_minutes(replica: &Replica, dept: &str, minutes: &[u32]) {
        let mut follower = LogFollower::default();
        let mut batch = Vec::new();
        for (i, minute) in minutes.iter().enumerate() {
            let prev = follower
                .last_leaf
                .map_or_else(|| GENESIS_PREV.to_owned(), hex::encode);
            let id = format!("{dept}-{i}");
            let mut e = entry(i as u64, &prev, &id, Side::Provider, *minute);
            e.subjects = vec!["tag-shared".into(), format!("tag-{i}")];
            let bytes = e.to_bytes();
            let parsed = follower.follow(&bytes).unwrap();
            batch.push((bytes, parsed));
        }
        let mut state = LogState::default();
        state.advance(&follower);
        replica
            .commit(&DeptId::new(dept).unwrap(), &batch, &state)
            .unwrap();
    }

    /// Every entry's proof at every size from the stored tree leads to the root of that many
    /// entries; a replica written before it kept trees (its `tree` emptied here) builds them once
    /// when it opens, and its proofs are the same.
    #[test]
    fn inclusion_proofs_come_from_the_stored_tree_and_an_older_replica_builds_it() {
        use causeway_ledger::merkle::{verify_inclusion, MemoryTree};
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..37).map(|i| format!("x{i}")).collect();
        let ids: Vec<&str> = names.iter().map(String::as_str).collect();
        let proofs = |replica: &Replica| {
            let mut all = Vec::new();
            let mut tree = MemoryTree::new();
            for size in 1..=ids.len() as u64 {
                let bytes = replica
                    .entry_bytes("civil-registry", size - 1)
                    .unwrap()
                    .unwrap();
                tree.append_entry(&bytes);
                for index in 0..size {
                    let leaf = leaf_hash(
                        &replica
                            .entry_bytes("civil-registry", index)
                            .unwrap()
                            .unwrap(),
                    );
                    let proof = replica
                        .inclusion_proof("civil-registry", index, size)
                        .unwrap();
                    verify_inclusion(&leaf, index, size, &proof, &tree.root())
                        .unwrap_or_else(|e| panic!("#{index} of {size}: {e}"));
                    all.push(proof);
                }
            }
            all
        };
        let replica = Replica::open(dir.path(), 64).unwrap();
        fill(&replica, "civil-registry", &ids);
        let made = proofs(&replica);
        assert!(
            replica.inclusion_proof("civil-registry", 0, 38).is_err(),
            "no 38th entry"
        );
        assert!(
            replica.inclusion_proof("tax-office", 0, 2).is_err(),
            "no such log"
        );

        replica
            .env
            .write(|txn| txn.clear_db(replica.tree).map_err(ReplicaError::from))
            .unwrap();
        assert!(replica.inclusion_proof("civil-registry", 3, 37).is_err());
        drop(replica);
        let reopened = Replica::open(dir.path(), 64).unwrap();
        assert_eq!(proofs(&reopened), made);
    }

    #[test]
    fn pages_neither_skip_nor_repeat_entries_with_equal_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(dir.path(), 64).unwrap();
        // Two logs, most entries in the same two minutes: ties on time across and within logs.
        fill_minutes(&replica, "registry", &[1, 1, 1, 2, 2, 2, 2, 3]);
        fill_minutes(&replica, "tax", &[1, 1, 2, 2, 2, 4]);
        let key = |r: &Record| (r.log.clone(), r.index);
        for base in [
            Query::default(),
            Query {
                decision: Some("allow".into()),
                ..Query::default()
            },
            // Two subject tags: two index walks merged.
            Query {
                subject_tag: Some("tag-shared,tag-3".into()),
                ..Query::default()
            },
        ] {
            let all: Vec<_> = replica
                .search(&base)
                .unwrap()
                .records
                .iter()
                .map(key)
                .collect();
            assert_eq!(all.len(), 14);
            for size in [1, 2, 3, 5] {
                // Older and older pages, each from the last row of the one before.
                let mut pages = Vec::new();
                let mut query = Query {
                    limit: Some(size),
                    ..base.clone()
                };
                loop {
                    let page = replica.search(&query).unwrap();
                    assert!(page.records.len() <= size);
                    assert!(pages.len() < all.len(), "older pages of {size} never end");
                    pages.push(page.records.clone());
                    if !page.has_older(&query) {
                        break;
                    }
                    query.before = Some(page.records.last().unwrap().position());
                    query.after = None;
                }
                let walked: Vec<_> = pages.iter().flatten().map(key).collect();
                assert_eq!(walked, all, "older pages of {size}: no skip, no repeat");
                // And back up: newer pages from the first row of each, the same pages in reverse.
                let mut back = vec![pages.last().unwrap().clone()];
                let mut query = Query {
                    limit: Some(size),
                    ..base.clone()
                };
                loop {
                    assert!(back.len() <= all.len(), "newer pages of {size} never end");
                    query.after = Some(back.last().unwrap()[0].position());
                    query.before = None;
                    let page = replica.search(&query).unwrap();
                    back.push(page.records.clone());
                    if !page.has_newer(&query) {
                        break;
                    }
                }
                back.reverse();
                let walked: Vec<_> = back.iter().flatten().map(key).collect();
                assert_eq!(walked, all, "newer pages of {size}: no skip, no repeat");
            }
        }
        // A cursor within a time window stays within it.
        let base = time::macros::datetime!(2026-01-01 10:00 UTC).unix_timestamp() as u64 * 1000;
        let first = replica
            .search(&Query {
                from_ms: Some(base + 2 * 60_000),
                to_ms: Some(base + 2 * 60_000),
                limit: Some(4),
                ..Query::default()
            })
            .unwrap();
        assert!(first.truncated);
        let rest = replica
            .search(&Query {
                from_ms: Some(base + 2 * 60_000),
                to_ms: Some(base + 2 * 60_000),
                before: Some(first.records[3].position()),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(first.records.len() + rest.records.len(), 7);
        assert!(rest
            .records
            .iter()
            .all(|r| r.entry.time == "2026-01-01T10:02:00Z"));
        // Positions round-trip through their text form (a log id may hold dots).
        let p = Position {
            time_ms: 17,
            log: "a.b".into(),
            index: 3,
        };
        assert_eq!(p.to_string().parse::<Position>().unwrap(), p);
        assert!("17.a".parse::<Position>().is_err() && "x.a.1".parse::<Position>().is_err());
    }

    #[test]
    fn follower_rejects_broken_chains_and_wrong_indexes() {
        let mut f = LogFollower::default();
        let first = entry(0, GENESIS_PREV, "a", Side::Provider, 0).to_bytes();
        f.follow(&first).unwrap();
        let wrong_prev = entry(1, GENESIS_PREV, "b", Side::Provider, 1).to_bytes();
        assert!(f.follow(&wrong_prev).unwrap_err().problem.contains("prev"));
        let good_prev = hex::encode(leaf_hash(&first));
        let wrong_index = entry(5, &good_prev, "b", Side::Provider, 1).to_bytes();
        assert!(f
            .follow(&wrong_index)
            .unwrap_err()
            .problem
            .contains("entry 5"));
        f.follow(&entry(1, &good_prev, "b", Side::Provider, 1).to_bytes())
            .unwrap();
        assert_eq!(f.size(), 2);
    }

    #[test]
    fn searches_use_indexes_newest_first_and_respect_windows_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(dir.path(), 64).unwrap();
        fill(&replica, "registry", &["a", "b", "c", "d"]);
        let all = replica.search(&Query::default()).unwrap();
        let ids: Vec<_> = all
            .records
            .iter()
            .map(|r| r.entry.id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["d", "c", "b", "a"]);
        let one = replica
            .search(&Query {
                subject_tag: Some("tag-b".into()),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(one.records.len(), 1);
        assert_eq!(one.records[0].index, 1);
        // A person's tags under several departments' keys: one search, merged, newest first.
        let several = |limit| {
            replica
                .search(&Query {
                    subject_tag: Some("tag-a,tag-zz,tag-c".into()),
                    limit: Some(limit),
                    ..Query::default()
                })
                .unwrap()
        };
        let both = several(10);
        let indexes: Vec<u64> = both.records.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [2, 0]);
        assert!(!both.truncated);
        let newest = several(1);
        assert_eq!(newest.records[0].index, 2);
        assert!(newest.truncated);
        let base = time::macros::datetime!(2026-01-01 10:00 UTC).unix_timestamp() as u64 * 1000;
        let window = replica
            .search(&Query {
                consumer: Some("tax".into()),
                provider: Some("registry".into()),
                from_ms: Some(base + 60_000),
                to_ms: Some(base + 2 * 60_000),
                ..Query::default()
            })
            .unwrap();
        let ids: Vec<_> = window
            .records
            .iter()
            .map(|r| r.entry.id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["c", "b"]);
        let limited = replica
            .search(&Query {
                limit: Some(3),
                ..Query::default()
            })
            .unwrap();
        assert!(limited.truncated && limited.records.len() == 3);
        let none = replica
            .search(&Query {
                exchange: Some("zzz".into()),
                ..Query::default()
            })
            .unwrap();
        assert!(none.records.is_empty());
        let pairs = replica.pair_counts().unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].allowed, 4);
        assert_eq!(replica.minute_counts().unwrap().len(), 4);
        let mut seen = Vec::new();
        replica
            .for_each_exchange(|id, records| seen.push((id.to_owned(), records.len())))
            .unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], ("a".to_owned(), 1));
    }
}
