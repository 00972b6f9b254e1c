//! Backups of a ledger directory while its gateway serves, and their restore.
//!
//! [`backup`] reads the LMDB environment in ONE read transaction (a snapshot: the entries, tree,
//! checkpoints and witness state of one committed batch, whatever commits meanwhile) and writes it
//! into a fresh environment, compacted, with every other file the directory holds (the log's
//! `log.vkey`, the department's `pseudonym.key`, the rate-limit state) and a manifest
//! ([`MANIFEST`]) naming each file with its SHA-256. The backup is built beside its destination and
//! renamed into place once complete and durable, so a backup directory either is whole or does not
//! exist. Files are the owner's only (0600, the directory 0700): they hold the pseudonym key.
//!
//! The live environment is opened read-only, in the calling process. LMDB lets another process
//! read an environment a gateway writes; it does not let one process open the same environment
//! twice (its reader slots and locks are per process: `MDB_BAD_RSLOT`), so a gateway's own process
//! must not call this on its open ledger: run `causeway log backup`.
//!
//! [`restore`] checks a backup against its manifest and moves it into an empty ledger directory.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use lmdb::{Cursor, DatabaseFlags, Environment, EnvironmentFlags, Transaction, WriteFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest a backup directory holds.
pub const MANIFEST: &str = "causeway-backup.json";
/// The LMDB data file.
const DATA: &str = "data.mdb";
/// LMDB's lock file: the readers of one running environment, never copied.
const LOCK: &str = "lock.mdb";
/// Most named databases an environment is opened with.
const MAX_DBS: u32 = 64;
/// Records copied per write transaction of the copy (a bounded transaction whatever the size).
const RECORDS_PER_TXN: usize = 20_000;
/// The manifest's format.
const FORMAT: u32 = 1;

/// Why a backup or restore did not happen. Nothing is left behind either way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The directory holds no ledger.
    #[error("{0}: no ledger here (expected data.mdb); pass the gateway's [ledger] dir")]
    NoLedger(PathBuf),
    /// The backup's destination exists.
    #[error("{0} already exists; name a new backup (a backup is never written over another)")]
    Exists(PathBuf),
    /// The restore's destination holds files.
    #[error("{0} is not empty: restore only into an empty or new directory. Stop the gateway, move the ledger directory aside (e.g. mv {0} {0}.old), then restore")]
    NotEmpty(PathBuf),
    /// The backup is not one, or not whole.
    #[error("{path}: not a usable backup: {problem}")]
    NotABackup {
        /// The backup directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// LMDB refused.
    #[error("{path}: LMDB: {source}")]
    Lmdb {
        /// The environment's directory.
        path: PathBuf,
        /// LMDB's error.
        source: lmdb::Error,
    },
}

/// What a backup holds, as its manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format (1).
    pub format: u32,
    /// The log's origin (from `log.vkey`), if the ledger has one.
    pub origin: Option<String>,
    /// Entries in the copied log.
    pub entries: u64,
    /// Tree size of the newest checkpoint copied (the log signed everything up to here).
    pub tree_size: u64,
    /// The newest signed checkpoint copied.
    pub checkpoint: Option<String>,
    /// Every file of the backup but the manifest, with its SHA-256 (hex).
    pub files: Vec<BackedUpFile>,
    /// Files and directories of the ledger directory not copied (not regular files).
    pub skipped: Vec<String>,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedUpFile {
    /// Its name in the ledger directory.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of its contents, hex.
    pub sha256: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

fn lmdb_error(path: &Path) -> impl FnOnce(lmdb::Error) -> BackupError + '_ {
    move |source| BackupError::Lmdb {
        path: path.to_owned(),
        source,
    }
}

/// A sibling of `target` to build in: `.<name>.<what>-<pid>`, so the final rename stays on one
/// file system.
fn staging(target: &Path, what: &str) -> Result<PathBuf, BackupError> {
    let name = target
        .file_name()
        .ok_or_else(|| BackupError::NotABackup {
            path: target.to_owned(),
            problem: "names no file (give a directory name, not / or ..)".into(),
        })?
        .to_string_lossy();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(".{name}.{what}-{}", std::process::id())))
}

/// Removes a staging directory unless the work finished.
struct Staged(Option<PathBuf>);

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    DirBuilder::new()
        .mode(0o700)
        .recursive(false)
        .create(dir)
        .map_err(io(dir))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Copy `from` to a new file `to`, mode 0600, durably; its size and SHA-256.
fn copy_private(from: &Path, to: &Path) -> Result<(u64, String), BackupError> {
    let bytes = std::fs::read(from).map_err(io(from))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io(to))?;
    file.write_all(&bytes).map_err(io(to))?;
    file.sync_all().map_err(io(to))?;
    Ok((bytes.len() as u64, hex::encode(Sha256::digest(&bytes))))
}

fn sha256_file(path: &Path) -> Result<(u64, String), BackupError> {
    use std::io::Read as _;
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// The names of the named databases of `env` (the keys of its main database).
fn database_names(env: &Environment, dir: &Path) -> Result<Vec<String>, BackupError> {
    let main = env.open_db(None).map_err(lmdb_error(dir))?;
    let txn = env.begin_ro_txn().map_err(lmdb_error(dir))?;
    let mut names = Vec::new();
    {
        let mut cursor = txn.open_ro_cursor(main).map_err(lmdb_error(dir))?;
        for item in cursor.iter_start() {
            let (key, _) = item.map_err(lmdb_error(dir))?;
            names.push(String::from_utf8_lossy(key).into_owned());
        }
    }
    txn.commit().map_err(lmdb_error(dir))?;
    Ok(names)
}

/// Begin a read transaction, adopting a map another process grew meanwhile.
fn begin_ro<'e>(env: &'e Environment, dir: &Path) -> Result<lmdb::RoTransaction<'e>, BackupError> {
    loop {
        match env.begin_ro_txn() {
            Err(lmdb::Error::MapResized) => env.set_map_size(0).map_err(lmdb_error(dir))?,
            begun => return begun.map_err(lmdb_error(dir)),
        }
    }
}

/// What the snapshot held, besides the records.
struct Copied {
    entries: u64,
    tree_size: u64,
    checkpoint: Option<String>,
}

/// Copy every named database of the environment in `from` (opened read-only, live or not) into
/// a new environment in the empty directory `to`, from one read transaction.
fn copy_environment(from: &Path, to: &Path) -> Result<Copied, BackupError> {
    let source = Environment::new()
        .set_flags(EnvironmentFlags::READ_ONLY)
        .set_max_dbs(MAX_DBS)
        .open(from)
        .map_err(lmdb_error(from))?;
    let names = database_names(&source, from)?;
    let mut databases = Vec::new();
    for name in &names {
        let db = source.open_db(Some(name)).map_err(lmdb_error(from))?;
        let flags = source.get_db_flags(db).map_err(lmdb_error(from))?;
        databases.push((name.as_str(), db, flags));
    }
    let map_size = source.info().map_err(lmdb_error(from))?.map_size();
    let target = Environment::new()
        .set_max_dbs(MAX_DBS)
        .set_map_size(map_size)
        .open_with_permissions(to, 0o600)
        .map_err(lmdb_error(to))?;
    let mut targets = Vec::new();
    for (name, _, flags) in &databases {
        targets.push(
            target
                .create_db(Some(*name), *flags)
                .map_err(lmdb_error(to))?,
        );
    }
    // The snapshot: everything below reads this one transaction.
    let snapshot = begin_ro(&source, from)?;
    let mut copied = Copied {
        entries: 0,
        tree_size: 0,
        checkpoint: None,
    };
    for ((name, db, flags), into) in databases.iter().zip(&targets) {
        let append = if flags.contains(DatabaseFlags::DUP_SORT) {
            WriteFlags::APPEND_DUP
        } else {
            WriteFlags::APPEND
        };
        let mut cursor = snapshot.open_ro_cursor(*db).map_err(lmdb_error(from))?;
        let mut txn = target.begin_rw_txn().map_err(lmdb_error(to))?;
        let mut in_txn = 0;
        for item in cursor.iter_start() {
            let (key, value) = item.map_err(lmdb_error(from))?;
            txn.put(*into, &key, &value, append)
                .map_err(lmdb_error(to))?;
            match *name {
                "entries" => copied.entries += 1,
                "checkpoints" => {
                    if let Ok(size) = <[u8; 8]>::try_from(key) {
                        copied.tree_size = u64::from_be_bytes(size);
                    }
                    copied.checkpoint = Some(String::from_utf8_lossy(value).into_owned());
                }
                _ => {}
            }
            in_txn += 1;
            if in_txn == RECORDS_PER_TXN {
                txn.commit().map_err(lmdb_error(to))?;
                txn = target.begin_rw_txn().map_err(lmdb_error(to))?;
                in_txn = 0;
            }
        }
        txn.commit().map_err(lmdb_error(to))?;
    }
    drop(snapshot);
    target.sync(true).map_err(lmdb_error(to))?;
    Ok(copied)
}

/// Back up the ledger in `ledger` (its gateway may be running, in another process) into the new
/// directory `out`: a snapshot of the LMDB environment and every other regular file, with a
/// manifest. `out` must not exist; it appears whole or not at all.
pub fn backup(ledger: &Path, out: &Path) -> Result<Manifest, BackupError> {
    if !ledger.join(DATA).is_file() {
        return Err(BackupError::NoLedger(ledger.to_owned()));
    }
    if out.exists() {
        return Err(BackupError::Exists(out.to_owned()));
    }
    let staging_dir = staging(out, "partial")?;
    let _ = std::fs::remove_dir_all(&staging_dir);
    if let Some(parent) = staging_dir.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    make_private_dir(&staging_dir)?;
    let mut staged = Staged(Some(staging_dir.clone()));

    let copied = copy_environment(ledger, &staging_dir)?;
    // The copy's own lock file belongs to no running environment.
    let lock = staging_dir.join(LOCK);
    std::fs::remove_file(&lock).map_err(io(&lock))?;
    let data = staging_dir.join(DATA);
    let (bytes, sha256) = sha256_file(&data)?;
    let mut files = vec![BackedUpFile {
        name: DATA.into(),
        bytes,
        sha256,
    }];
    let mut skipped = Vec::new();
    let mut others: Vec<_> = std::fs::read_dir(ledger)
        .map_err(io(ledger))?
        .collect::<Result<_, _>>()
        .map_err(io(ledger))?;
    others.sort_by_key(|e| e.file_name());
    for entry in others {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == DATA || name == LOCK {
            continue;
        }
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        if !kind.is_file() {
            skipped.push(name);
            continue;
        }
        let (bytes, sha256) = copy_private(&entry.path(), &staging_dir.join(&name))?;
        files.push(BackedUpFile {
            name,
            bytes,
            sha256,
        });
    }
    let origin = std::fs::read_to_string(ledger.join(crate::VKEY_FILE))
        .ok()
        .and_then(|vkey| vkey.trim().split('+').next().map(str::to_owned));
    let manifest = Manifest {
        format: FORMAT,
        origin,
        entries: copied.entries,
        tree_size: copied.tree_size,
        checkpoint: copied.checkpoint,
        files,
        skipped,
    };
    let path = staging_dir.join(MANIFEST);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    file.write_all(&text)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io(&path))?;
    sync_dir(&staging_dir)?;
    if out.exists() {
        return Err(BackupError::Exists(out.to_owned()));
    }
    std::fs::rename(&staging_dir, out).map_err(io(out))?;
    staged.0 = None;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

/// Read and check a backup directory: its manifest, and every file it names, whole.
pub fn check(from: &Path) -> Result<Manifest, BackupError> {
    let not = |problem: String| BackupError::NotABackup {
        path: from.to_owned(),
        problem,
    };
    let path = from.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| {
        not(format!(
            "cannot read {MANIFEST} ({e}); back up with causeway log backup"
        ))
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| not(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(not(format!(
            "{MANIFEST} is format {}, this causeway reads format {FORMAT}",
            manifest.format
        )));
    }
    if !manifest.files.iter().any(|f| f.name == DATA) {
        return Err(not(format!("{MANIFEST} names no {DATA}")));
    }
    for file in &manifest.files {
        if file.name.contains('/') || file.name.starts_with('.') || file.name == MANIFEST {
            return Err(not(format!(
                "{MANIFEST} names {:?}, not a ledger file",
                file.name
            )));
        }
        let (bytes, sha256) = sha256_file(&from.join(&file.name))?;
        if (bytes, sha256.as_str()) != (file.bytes, file.sha256.as_str()) {
            return Err(not(format!(
                "{} is not the file the backup wrote (size or SHA-256 differs): it was changed or truncated",
                file.name
            )));
        }
    }
    Ok(manifest)
}

/// Restore the backup in `from` into `ledger`, which must not exist or be empty: the files the
/// manifest names, checked, then the environment opened to count its entries.
pub fn restore(from: &Path, ledger: &Path) -> Result<Manifest, BackupError> {
    let manifest = check(from)?;
    if ledger.exists() {
        let mut listing = std::fs::read_dir(ledger).map_err(io(ledger))?;
        if listing.next().is_some() {
            return Err(BackupError::NotEmpty(ledger.to_owned()));
        }
    }
    let staging_dir = staging(ledger, "restoring")?;
    let _ = std::fs::remove_dir_all(&staging_dir);
    if let Some(parent) = staging_dir.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    make_private_dir(&staging_dir)?;
    let mut staged = Staged(Some(staging_dir.clone()));
    for file in &manifest.files {
        let (bytes, sha256) = copy_private(&from.join(&file.name), &staging_dir.join(&file.name))?;
        if (bytes, sha256.as_str()) != (file.bytes, file.sha256.as_str()) {
            return Err(BackupError::NotABackup {
                path: from.to_owned(),
                problem: format!("{} changed while it was restored", file.name),
            });
        }
    }
    // The environment opens and holds what the manifest says.
    {
        let env = Environment::new()
            .set_max_dbs(MAX_DBS)
            .open_with_permissions(&staging_dir, 0o600)
            .map_err(lmdb_error(&staging_dir))?;
        let entries = env
            .open_db(Some("entries"))
            .and_then(|db| {
                let txn = env.begin_ro_txn()?;
                let n = txn.open_ro_cursor(db)?.iter_start().count() as u64;
                txn.commit()?;
                Ok(n)
            })
            .map_err(lmdb_error(&staging_dir))?;
        if entries != manifest.entries {
            return Err(BackupError::NotABackup {
                path: from.to_owned(),
                problem: format!(
                    "its data.mdb holds {entries} entries, the manifest says {}",
                    manifest.entries
                ),
            });
        }
    }
    let _ = std::fs::remove_file(staging_dir.join(LOCK));
    sync_dir(&staging_dir)?;
    // Over an empty directory, rename(2) replaces it; over nothing, it creates it.
    std::fs::rename(&staging_dir, ledger).map_err(io(ledger))?;
    staged.0 = None;
    if let Some(parent) = ledger.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;
    use crate::{entry, Ledger, LedgerOptions};

    fn signer() -> NoteSigner {
        NoteSigner::new(
            "test/backup",
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .unwrap()
    }

    async fn ledger_with(dir: &Path, n: usize) -> Ledger {
        let ledger = Ledger::open(dir, LedgerOptions::default(), signer()).unwrap();
        for _ in 0..n {
            ledger
                .append(entry::Entry::new(entry::Kind::PolicyChange))
                .await
                .unwrap();
        }
        ledger
    }

    #[tokio::test]
    async fn a_backup_restores_to_the_same_log_and_files() {
        let root = tempfile::tempdir().unwrap();
        let live = root.path().join("ledger");
        let ledger = ledger_with(&live, 5).await;
        std::fs::write(live.join("pseudonym.key"), b"secret").unwrap();
        let size = ledger.checkpoint().0;
        let note = ledger.checkpoint().1;
        drop(ledger);

        let out = root.path().join("backups").join("b1");
        let manifest = backup(&live, &out).unwrap();
        assert_eq!((manifest.entries, manifest.tree_size), (size, size));
        assert_eq!(manifest.checkpoint.as_deref(), Some(note.as_str()));
        assert_eq!(manifest.origin.as_deref(), Some("test/backup"));
        let names: Vec<_> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&"pseudonym.key") && names.contains(&crate::VKEY_FILE));
        use std::os::unix::fs::PermissionsExt;
        for name in names.iter().chain([&MANIFEST]) {
            let mode = std::fs::metadata(out.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(matches!(backup(&live, &out), Err(BackupError::Exists(_))));

        let restored = root.path().join("restored");
        std::fs::create_dir(&restored).unwrap();
        restore(&out, &restored).unwrap();
        let reopened = Ledger::open(&restored, LedgerOptions::default(), signer()).unwrap();
        assert_eq!(reopened.checkpoint(), (size, note.clone()));
        assert_eq!(
            std::fs::read(restored.join("pseudonym.key")).unwrap(),
            b"secret"
        );
        // The restored log goes on.
        reopened
            .append(entry::Entry::new(entry::Kind::PolicyChange))
            .await
            .unwrap();
        assert_eq!(reopened.checkpoint().0, size + 1);
        // Not over a ledger that holds anything.
        let error = restore(&out, &restored).unwrap_err();
        assert!(matches!(error, BackupError::NotEmpty(_)), "{error}");
        assert!(error
            .to_string()
            .contains("move the ledger directory aside"));
        // No staging directory is left behind.
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn a_changed_backup_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let live = root.path().join("ledger");
        drop(ledger_with(&live, 2).await);
        let out = root.path().join("b");
        backup(&live, &out).unwrap();
        std::fs::write(out.join(crate::VKEY_FILE), b"someone else+00+AA\n").unwrap();
        let error = restore(&out, &root.path().join("new")).unwrap_err();
        assert!(error.to_string().contains("log.vkey"), "{error}");
        assert!(!root.path().join("new").exists());
        assert!(matches!(
            backup(&root.path().join("nothing"), &root.path().join("c")),
            Err(BackupError::NoLedger(_))
        ));
    }
}
