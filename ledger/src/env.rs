//! An LMDB environment whose map grows while it is open.
//!
//! LMDB refuses a write once its map (the address space the data file may fill) is used up, and
//! allows a larger map only while the process has no transaction open. Every transaction here
//! therefore holds a shared lock for as long as it lives, and [`Env::grow`] holds it exclusively:
//! it waits for the open transactions to end, doubles the map, and lets the next ones begin. A
//! write that runs out of map ([`Env::write`]) grows it and runs again, up to a maximum, so
//! a ledger fills its disk instead of stopping at a number in its configuration (the disk-full
//! case refuses and recovers on its own, docs/LEDGER.md).
//!
//! No transaction may begin while the same thread holds one: with a grow waiting, the second
//! would wait for the first. Nothing here nests transactions.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use lmdb::{Environment, RoTransaction, RwTransaction, Transaction};

const MIB: usize = 1024 * 1024;

/// An open LMDB environment of up to 8 databases.
pub struct Env {
    env: Environment,
    /// Shared by every open transaction, exclusive while the map grows.
    open: RwLock<()>,
    /// The map never grows past this many bytes.
    max_map: usize,
    /// Where it is, for the log lines that say it grew or cannot.
    dir: PathBuf,
}

/// A transaction and the shared lock it holds (released after the transaction ends: fields drop
/// in order).
pub struct Txn<'e, T> {
    txn: T,
    _open: RwLockReadGuard<'e, ()>,
}

impl<T> Deref for Txn<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.txn
    }
}

impl<T> DerefMut for Txn<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.txn
    }
}

impl Txn<'_, RwTransaction<'_>> {
    /// Commit the write transaction.
    pub fn commit(self) -> lmdb::Result<()> {
        self.txn.commit()
    }
}

/// An error that can say the map ran out.
pub trait MapError: From<lmdb::Error> {
    /// LMDB's `MDB_MAP_FULL`.
    fn is_full(&self) -> bool;
}

impl MapError for lmdb::Error {
    fn is_full(&self) -> bool {
        matches!(self, lmdb::Error::MapFull)
    }
}

fn mib(n: u64) -> usize {
    usize::try_from(n.saturating_mul(MIB as u64)).unwrap_or(usize::MAX)
}

impl Env {
    /// Open (creating the directory if needed) the environment in `dir`, its files readable by
    /// the owner only, with a map of `map_size_mib` that may grow to `max_map_size_mib`. The map
    /// is sparse: address space, not disk or memory, until used. Errors name the directory.
    pub fn open(dir: &Path, map_size_mib: u64, max_map_size_mib: u64) -> Result<Env, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let env = Environment::new()
            .set_max_dbs(8)
            .set_map_size(mib(map_size_mib))
            .open_with_permissions(dir, 0o600)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Env {
            env,
            open: RwLock::new(()),
            max_map: mib(max_map_size_mib.max(map_size_mib)),
            dir: dir.to_owned(),
        })
    }

    /// The environment itself, for what needs no transaction and runs before any is open.
    pub fn lmdb(&mut self) -> &Environment {
        &self.env
    }

    /// Begin a read-only transaction.
    pub fn ro(&self) -> lmdb::Result<Txn<'_, RoTransaction<'_>>> {
        self.begin(Environment::begin_ro_txn)
    }

    /// Begin the write transaction (LMDB serializes writers).
    pub fn rw(&self) -> lmdb::Result<Txn<'_, RwTransaction<'_>>> {
        self.begin(Environment::begin_rw_txn)
    }

    /// The environment's info (its map size, its last page), read while the map cannot move.
    pub fn info(&self) -> lmdb::Result<lmdb::Info> {
        let _open = self.shared();
        self.env.info()
    }

    fn begin<'e, T>(
        &'e self,
        begin: impl Fn(&'e Environment) -> lmdb::Result<T>,
    ) -> lmdb::Result<Txn<'e, T>> {
        loop {
            let open = self.shared();
            match begin(&self.env) {
                // Another process grew the map past ours: adopt its size and begin again.
                Err(lmdb::Error::MapResized) => {
                    drop(open);
                    let _all = self.exclusive();
                    self.env.set_map_size(0)?;
                }
                begun => return begun.map(|txn| Txn { txn, _open: open }),
            }
        }
    }

    /// Double the map (at most to its maximum) once no transaction is open. False if it is at
    /// its maximum already or the system refused a larger map (address space, `ulimit -v`).
    pub fn grow(&self) -> bool {
        let _all = self.exclusive();
        let Ok(info) = self.env.info() else {
            return false;
        };
        let now = info.map_size();
        let next = now.saturating_mul(2).min(self.max_map);
        let dir = self.dir.display();
        if next <= now {
            tracing::error!(%dir, map_mib = now / MIB,
                "the LMDB map is at its maximum (max_map_size_mib): writes are refused");
            return false;
        }
        match self.env.set_map_size(next) {
            Ok(()) => {
                tracing::info!(%dir, from_mib = now / MIB, to_mib = next / MIB, "LMDB map grown");
                true
            }
            Err(e) => {
                tracing::error!(%dir, map_mib = now / MIB, to_mib = next / MIB, error = %e,
                    "the LMDB map cannot grow: writes are refused");
                false
            }
        }
    }

    /// Run `f` in a write transaction and commit it. If the map runs out on the way (nothing of
    /// that transaction is kept), grow the map and run `f` again in a fresh transaction.
    pub fn write<E: MapError>(
        &self,
        f: impl Fn(&mut RwTransaction<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            let attempt = self.rw().map_err(E::from).and_then(|mut txn| {
                f(&mut txn)?;
                txn.commit().map_err(E::from)
            });
            match attempt {
                Err(e) if e.is_full() && self.grow() => {}
                done => return done,
            }
        }
    }

    /// The environment's info while `_txn` keeps the map where it is.
    pub fn info_in<T>(&self, _txn: &Txn<'_, T>) -> lmdb::Result<lmdb::Info> {
        self.env.info()
    }

    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        // The lock guards no data, so a panic elsewhere while holding it leaves nothing broken.
        self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.open.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use lmdb::{Database, DatabaseFlags, Transaction, WriteFlags};

    use super::*;

    /// An environment in `dir` and its one database, `v`.
    fn open(dir: &Path, map_size_mib: u64, max_map_size_mib: u64) -> (Env, Database) {
        let mut env = Env::open(dir, map_size_mib, max_map_size_mib).unwrap();
        let db = env
            .lmdb()
            .create_db(Some("v"), DatabaseFlags::empty())
            .unwrap();
        (env, db)
    }

    /// Another process that opened the environment before it grew (as `causeway log verify` can
    /// on a live gateway) adopts the larger map when its next transaction finds the data past
    /// its own map (LMDB's `MDB_MAP_RESIZED`), and reads everything. The test runs itself again
    /// as that other process.
    #[test]
    fn another_process_adopts_a_grown_map() {
        const CHILD: &str = "CAUSEWAY_TEST_MAP_READER";
        let value = |n: u32| vec![n as u8; 64 * 1024];
        if let Ok(dir) = std::env::var(CHILD) {
            let dir = Path::new(&dir);
            let (env, db) = open(dir, 1, 1);
            std::fs::write(dir.join("reader-ready"), b"").unwrap();
            while !dir.join("grown").exists() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let txn = env.ro().expect("the reader adopts the grown map");
            for n in 0..64u32 {
                assert_eq!(txn.get(db, &n.to_be_bytes()).unwrap(), &value(n)[..]);
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (env, db) = open(dir.path(), 1, 64);
        let mut reader = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--quiet",
                "--exact",
                "env::tests::another_process_adopts_a_grown_map",
            ])
            .env(CHILD, dir.path())
            .spawn()
            .unwrap();
        while !dir.path().join("reader-ready").exists() {
            if let Some(status) = reader.try_wait().unwrap() {
                panic!("the reader process exited before it was ready ({status}): did the test's name change?");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for n in 0..64u32 {
            env.write(|txn| txn.put(db, &n.to_be_bytes(), &value(n), WriteFlags::APPEND))
                .unwrap();
        }
        assert!(env.info().unwrap().map_size() >= 4 * MIB);
        std::fs::write(dir.path().join("grown"), b"").unwrap();
        assert!(
            reader.wait().unwrap().success(),
            "the reader process failed"
        );
    }

    /// A 1 MiB map takes 8 MiB of values by growing while other threads read: every value
    /// written is there, every read sees a consistent prefix, and the maximum is respected.
    #[test]
    fn the_map_grows_under_readers_until_its_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let (env, db) = open(dir.path(), 1, 16);
        let env = Arc::new(env);
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (env, stop) = (env.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let txn = env.ro().unwrap();
                        // Keys 0..n are written in order, one per transaction: a snapshot holds
                        // a prefix of them, each whole.
                        let mut n = 0u32;
                        while let Ok(v) = txn.get(db, &n.to_be_bytes()) {
                            assert!(v.len() == 64 * 1024 && v.iter().all(|b| *b == n as u8));
                            n += 1;
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let value = |n: u32| vec![n as u8; 64 * 1024];
        let write =
            |n: u32| env.write(|txn| txn.put(db, &n.to_be_bytes(), &value(n), WriteFlags::APPEND));
        for n in 0..128 {
            write(n).unwrap();
        }
        assert_eq!(env.info().unwrap().map_size(), 16 * MIB);
        // 8 MiB of values in a 16 MiB maximum: the map stops there and says so.
        let refused = (128..512).find_map(|n| write(n).err());
        assert!(matches!(refused, Some(lmdb::Error::MapFull)), "{refused:?}");
        assert_eq!(env.info().unwrap().map_size(), 16 * MIB);
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        let txn = env.ro().unwrap();
        for n in 0..128u32 {
            assert_eq!(txn.get(db, &n.to_be_bytes()).unwrap(), &value(n)[..]);
        }
    }
}
