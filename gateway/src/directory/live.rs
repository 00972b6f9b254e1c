//! The directory in force at one gateway or oversight node, and how it changes without a restart.
//!
//! [`LiveDirectory`] holds the directory behind an atomic swap. With the federation operator's key
//! configured (`directory_key`), the published file is read again every `directory_reload_secs`
//! and on SIGHUP; a new version is put in force only if its signature verifies, it has not expired
//! and its serial is above the one in force, and only after a `directory-change` entry recording
//! its serial and hash is durable in the ledger. A bad version is refused with a message naming
//! what is wrong, counted, and shown in `/readyz`; the last good one stays in force. Subscribers
//! ([`LiveDirectory::subscribe`]) hear of each change: peer connections of removed members close.
//!
//! Without the key the file is read once, as written (a development setting: nothing proves who
//! wrote it, and a change needs a restart).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use causeway_ledger::entry::{Entry, Kind};
use causeway_ledger::note::NoteVerifier;
use causeway_ledger::Ledger;
use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::signed::{self, DirectoryError, Published};
use super::Directory;
use crate::identity::revocation::Revocation;

/// Where a signed directory comes from and who must have signed it.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    /// The published file.
    pub path: PathBuf,
    /// The federation operator's key.
    pub operator: NoteVerifier,
    /// How often the file is read again.
    pub reload_every: Duration,
}

/// Fetches the published directory from where the operator serves it (an HTTPS URL): its bytes, or
/// why not. Given by the node's composition root, which holds the TLS client.
pub type Fetch = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send>>
        + Send
        + Sync,
>;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The file holds the directory in force.
    Unchanged,
    /// A newer directory is in force.
    Replaced {
        /// Its serial.
        serial: u64,
    },
}

/// The version in force: its serial, expiry and hash (none for an unsigned file).
#[derive(Debug, Clone, Default)]
struct Version {
    serial: Option<u64>,
    expires: Option<OffsetDateTime>,
    hash: Option<String>,
}

/// The directory in force, swapped whole when a newer signed version is published.
pub struct LiveDirectory {
    federation: String,
    current: ArcSwap<Directory>,
    source: Option<DirectorySource>,
    version: Mutex<Version>,
    /// Held while a version is checked, notarized and swapped in, so that two reloads at once
    /// cannot slip an older version past the rollback check.
    applying: tokio::sync::Mutex<()>,
    last_refusal: Mutex<Option<String>>,
    /// The hash of the bytes last refused: the same bytes are not checked, counted and logged
    /// again at every reload.
    last_refused: Mutex<Option<String>>,
    refusals: AtomicU64,
    applied: AtomicU64,
    changes: watch::Sender<u64>,
    /// Told the members of each version put in force, so that it closes the open connections
    /// of removed ones.
    revocation: std::sync::OnceLock<Arc<Revocation>>,
    /// Where newer versions are fetched from (its URL, for messages), if not only from the file.
    fetch: std::sync::OnceLock<(String, Fetch)>,
}

impl std::fmt::Debug for LiveDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDirectory")
            .field("federation", &self.federation)
            .field("source", &self.source.as_ref().map(|s| &s.path))
            .finish_non_exhaustive()
    }
}

/// The directory's state for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryStatus {
    /// Whether the directory in force was signed by the federation operator.
    pub signed: bool,
    /// The file it is read from, when it is reloaded.
    pub source: Option<String>,
    /// Its serial.
    pub serial: Option<u64>,
    /// SHA-256 of its file.
    pub hash: Option<String>,
    /// When it expires (RFC 3339).
    pub expires: Option<String>,
    /// Seconds until it expires (negative: expired).
    pub expires_in_secs: Option<f64>,
    /// Versions put in force since start.
    pub applied: u64,
    /// Versions refused since start.
    pub refusals: u64,
    /// Why the last refused version was refused (cleared when a good one is applied).
    pub last_refusal: Option<String>,
}

impl DirectoryStatus {
    /// Ready: no refused version pending and the one in force has not expired.
    pub fn ready(&self) -> bool {
        self.last_refusal.is_none() && self.expires_in_secs.is_none_or(|s| s > 0.0)
    }
}

impl LiveDirectory {
    /// A directory that never changes (an unsigned file, or a test's).
    pub fn fixed(directory: Directory) -> Arc<Self> {
        Arc::new(Self::new(directory, None, Version::default()))
    }

    fn new(directory: Directory, source: Option<DirectorySource>, version: Version) -> Self {
        LiveDirectory {
            federation: directory.federation.clone(),
            current: ArcSwap::from_pointee(directory),
            source,
            version: Mutex::new(version),
            applying: tokio::sync::Mutex::new(()),
            last_refusal: Mutex::new(None),
            last_refused: Mutex::new(None),
            refusals: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            changes: watch::channel(0).0,
            revocation: std::sync::OnceLock::new(),
            fetch: std::sync::OnceLock::new(),
        }
    }

    /// Read the directory at `path`: with `source`, the signed file it names, checked (there is no
    /// last good version to keep, so a bad one stops the start); without, the file as written.
    pub fn load(
        path: &std::path::Path,
        source: Option<DirectorySource>,
    ) -> anyhow::Result<Arc<Self>> {
        let Some(source) = source else {
            return Ok(Self::fixed(Directory::load(path)?));
        };
        let bytes = read(&source)?;
        let published = signed::open(
            &bytes,
            &source.operator,
            OffsetDateTime::now_utc(),
            &source.path.display().to_string(),
        )?;
        let version = Version {
            serial: Some(published.serial),
            expires: Some(published.expires),
            hash: Some(published.hash),
        };
        Ok(Arc::new(Self::new(
            published.directory,
            Some(source),
            version,
        )))
    }

    /// The directory in force now (an atomic load: cheap enough for every request).
    pub fn current(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// The federation's name (it never changes).
    pub fn federation(&self) -> &str {
        &self.federation
    }

    /// Tell `revocation` the members of the directory in force now and of every later version:
    /// open peer connections of a member that a new version removes are closed.
    pub fn enforce_membership(&self, revocation: Arc<Revocation>) {
        let current = self.current();
        revocation.set_members(&self.federation, current.members());
        apply_crls(&revocation, current.crls(), current.serial.unwrap_or(0));
        let _ = self.revocation.set(revocation);
    }

    /// Fetch newer versions with `fetch` (from `url`) instead of reading the file; each version put
    /// in force is then also written to the file (atomically), for the next start and for tools.
    pub fn fetch_from(&self, url: String, fetch: Fetch) {
        let _ = self.fetch.set((url, fetch));
    }

    /// A receiver that wakes at every version put in force.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The state for `/readyz` and `/metrics`.
    pub fn status(&self) -> DirectoryStatus {
        let version = self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        DirectoryStatus {
            signed: self.source.is_some(),
            source: match self.fetch.get() {
                Some((url, _)) => Some(url.clone()),
                None => self.source.as_ref().map(|s| s.path.display().to_string()),
            },
            serial: version.serial,
            hash: version.hash,
            expires: version.expires.and_then(|t| t.format(&Rfc3339).ok()),
            expires_in_secs: version
                .expires
                .map(|t| (t - OffsetDateTime::now_utc()).as_seconds_f64()),
            applied: self.applied.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
            last_refusal: self
                .last_refusal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// At start: refuse a directory older than the last one this ledger recorded (a rollback
    /// across a restart), and record the version taking effect unless it is the one recorded last.
    pub async fn notarize_at_start(&self, ledger: &Ledger) -> anyhow::Result<()> {
        let version = self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (Some(serial), Some(hash)) = (version.serial, version.hash) else {
            return Ok(());
        };
        let last = ledger
            .last_of_kind(Kind::DirectoryChange)
            .context("reading the last directory-change entry")?;
        let recorded = last.as_ref().and_then(recorded_version);
        if let Some((last_serial, last_hash)) = &recorded {
            let from = self
                .source
                .as_ref()
                .map(|s| s.path.display().to_string())
                .unwrap_or_default();
            if serial < *last_serial {
                return Err(DirectoryError::Rollback {
                    from,
                    serial,
                    in_force: *last_serial,
                }
                .into());
            }
            if serial == *last_serial && hash != *last_hash {
                return Err(DirectoryError::Conflict { from, serial }.into());
            }
            if serial == *last_serial {
                return Ok(());
            }
        }
        notarize(ledger, &self.current(), serial, &hash, recorded, "start").await
    }

    /// Read the source again now; put a newer valid version in force after notarizing it.
    /// `Err`: refused (counted and kept for `/readyz`); the version in force stays.
    pub async fn reload(&self, ledger: &Ledger, trigger: &str) -> Result<Applied, DirectoryError> {
        let Some(source) = &self.source else {
            return Ok(Applied::Unchanged);
        };
        let _applying = self.applying.lock().await;
        let mut seen = None;
        let outcome = async {
            let (bytes, fetched) = match self.fetch.get() {
                Some((url, fetch)) => (
                    fetch()
                        .await
                        .map_err(|problem| DirectoryError::Unreadable {
                            from: url.clone(),
                            problem,
                        })?,
                    true,
                ),
                None => (read(source)?, false),
            };
            let in_force = self
                .version
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let hash = signed::hash(&bytes);
            let refused_before = self
                .last_refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
                == Some(hash.as_str());
            if in_force.hash.as_deref() == Some(hash.as_str()) || refused_before {
                return Ok(None);
            }
            seen = Some(hash);
            let from = match self.fetch.get() {
                Some((url, _)) => url.clone(),
                None => source.path.display().to_string(),
            };
            let published =
                signed::open(&bytes, &source.operator, OffsetDateTime::now_utc(), &from)?;
            let in_force_serial = in_force.serial.unwrap_or(0);
            if published.serial < in_force_serial {
                return Err(DirectoryError::Rollback {
                    from,
                    serial: published.serial,
                    in_force: in_force_serial,
                });
            }
            if published.serial == in_force_serial {
                return Err(DirectoryError::Conflict {
                    from,
                    serial: published.serial,
                });
            }
            if published.directory.federation != self.federation {
                return Err(DirectoryError::OtherFederation {
                    from,
                    found: published.directory.federation,
                    expected: self.federation.clone(),
                });
            }
            Ok(Some((published, in_force, fetched.then_some(bytes))))
        }
        .await;
        match outcome {
            Ok(None) => Ok(Applied::Unchanged),
            Ok(Some((published, in_force, fetched))) => {
                let previous = in_force.serial.zip(in_force.hash);
                let serial = published.serial;
                if let Err(e) = notarize(
                    ledger,
                    &published.directory,
                    serial,
                    &published.hash,
                    previous,
                    trigger,
                )
                .await
                {
                    // Not durable, so not in force: the next reload tries again.
                    tracing::error!(error = %format!("{e:#}"), serial, "the new directory could not be notarized; the previous one stays in force");
                    return Ok(Applied::Unchanged);
                }
                self.put_in_force(published);
                if let Some(bytes) = fetched {
                    if let Err(e) = write_atomically(&source.path, &bytes) {
                        tracing::warn!(directory = %source.path.display(), error = %e, "the fetched directory is in force but could not be kept on disk; the next start reads the older copy");
                    }
                }
                Ok(Applied::Replaced { serial })
            }
            Err(e) => {
                *self.last_refused.lock().unwrap_or_else(|p| p.into_inner()) = seen;
                self.refusals.fetch_add(1, Ordering::Relaxed);
                *self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn put_in_force(&self, published: Published) {
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Version {
            serial: Some(published.serial),
            expires: Some(published.expires),
            hash: Some(published.hash),
        };
        let (members, crls) = (published.directory.members(), published.directory.crls());
        let serial = published.serial;
        self.current.store(Arc::new(published.directory));
        if let Some(revocation) = self.revocation.get() {
            revocation.set_members(&self.federation, members);
            apply_crls(revocation, crls, serial);
        }
        *self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.applied.fetch_add(1, Ordering::Relaxed);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Read the source every `reload_every` and on SIGHUP, putting newer versions in force, until
    /// `stop` turns true. Does nothing for a fixed directory.
    pub async fn run(self: Arc<Self>, ledger: Arc<Ledger>, stop: watch::Receiver<bool>) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let mut rereads = crate::files::Rereads::new("directory", source.reload_every, stop);
        let mut warned_expired = false;
        while let Some(why) = rereads.next().await {
            let trigger = match why {
                crate::files::Reread::Poll => "reload",
                crate::files::Reread::Signal => "sighup",
            };
            match self.reload(&ledger, trigger).await {
                Ok(Applied::Unchanged) => {}
                Ok(Applied::Replaced { serial }) => tracing::info!(
                    directory = %source.path.display(), serial,
                    "directory applied: new members are answered, removed ones refused and their open connections closed"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "directory refused; the previous one stays in force")
                }
            }
            let expired = self.status().expires_in_secs.is_some_and(|s| s <= 0.0);
            if expired && !warned_expired {
                tracing::error!(directory = %source.path.display(), "the directory in force has expired; the operator must publish a fresh one (`causeway federation publish`)");
            }
            warned_expired = expired;
        }
    }
}

/// Put the CRLs a directory carries in force (the revocation state checks the CA's signature and
/// refuses an older list, keeping the one in force).
fn apply_crls(
    revocation: &Revocation,
    crls: Vec<rustls_pki_types::CertificateRevocationListDer<'static>>,
    serial: u64,
) {
    if crls.is_empty() {
        return;
    }
    let from = format!("the CRL of directory serial {serial}");
    match revocation.apply(crls, &from) {
        Ok(crate::identity::revocation::Applied::Replaced { number, revoked }) => {
            tracing::info!(serial, number = %number, revoked, "CRL from the directory applied")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the directory's CRL was refused; the CRL in force stays")
        }
    }
}

/// Replace `path` with `bytes`: written beside it, then renamed over it.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("fetched");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn read(source: &DirectorySource) -> Result<Vec<u8>, DirectoryError> {
    use std::io::Read;
    let from = source.path.display().to_string();
    let file = std::fs::File::open(&source.path).map_err(|e| DirectoryError::Unreadable {
        from: from.clone(),
        problem: e.to_string(),
    })?;
    let mut bytes = Vec::new();
    // One byte over the limit is enough to refuse it.
    file.take(signed::MAX_DIRECTORY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DirectoryError::Unreadable {
            from,
            problem: e.to_string(),
        })?;
    Ok(bytes)
}

/// The serial and hash a `directory-change` entry recorded.
fn recorded_version(entry: &Entry) -> Option<(u64, String)> {
    let detail = entry.detail.as_ref()?;
    Some((
        detail.get("serial")?.as_u64()?,
        detail.get("hash")?.as_str()?.to_owned(),
    ))
}

/// Append one `directory-change` entry: the new version's serial, hash and expiry, the previous
/// version, what triggered it, and the membership it lists (ids only), so that the log alone
/// tells who was a member when.
async fn notarize(
    ledger: &Ledger,
    directory: &Directory,
    serial: u64,
    hash: &str,
    previous: Option<(u64, String)>,
    trigger: &str,
) -> anyhow::Result<()> {
    let mut entry = Entry::new(Kind::DirectoryChange);
    entry.detail = Some(json!({
        "serial": serial,
        "hash": hash,
        "expires": directory.expires.and_then(|t| t.format(&Rfc3339).ok()),
        "previous": previous.map(|(serial, hash)| json!({"serial": serial, "hash": hash})),
        "trigger": trigger,
        "departments": directory.departments().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        "oversight": directory.oversight_nodes().map(|o| o.id.as_str()).collect::<Vec<_>>(),
    }));
    ledger
        .append(entry)
        .await
        .context("appending the directory-change entry")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use causeway_ledger::note::NoteSigner;
    use causeway_ledger::LedgerOptions;
    use ed25519_dalek::SigningKey;

    use super::*;

    const SOURCE: &str =
        "federation = \"demo\"\n\n[[oversight]]\nid = \"audit\"\nname = \"Audit\"\n";

    fn operator() -> NoteSigner {
        NoteSigner::new("demo/directory", SigningKey::from_bytes(&[5; 32])).unwrap()
    }

    fn publish(serial: u64, extra: &str) -> String {
        signed::publish(
            &format!("{SOURCE}{extra}"),
            &operator(),
            serial,
            OffsetDateTime::now_utc() + time::Duration::days(1),
            None,
        )
        .unwrap()
    }

    fn ledger(dir: &std::path::Path) -> Ledger {
        let signer = NoteSigner::new("demo/node", SigningKey::from_bytes(&[6; 32])).unwrap();
        Ledger::open(&dir.join("ledger"), LedgerOptions::default(), signer).unwrap()
    }

    fn source(dir: &std::path::Path) -> DirectorySource {
        DirectorySource {
            path: dir.join("federation.toml"),
            operator: operator().verifier(),
            reload_every: Duration::from_secs(1),
        }
    }

    fn changes(ledger: &Ledger) -> Vec<u64> {
        let size = ledger.checkpoint().0;
        let mut serials = Vec::new();
        ledger
            .read(|r| {
                r.for_each_entry(0, size, |_, bytes| {
                    let e = Entry::from_bytes(bytes).unwrap();
                    if e.kind == Kind::DirectoryChange {
                        serials.push(recorded_version(&e).unwrap().0);
                    }
                    Ok(())
                })
            })
            .unwrap();
        serials
    }

    #[tokio::test]
    async fn newer_versions_are_notarized_then_applied_and_rollbacks_refused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("federation.toml");
        let (v1, v2) = (
            publish(1, ""),
            publish(2, "\n[[oversight]]\nid = \"dpa\"\nname = \"DPA\"\n"),
        );
        std::fs::write(&file, &v1).unwrap();
        let ledger = ledger(dir.path());
        let live = LiveDirectory::load(&file, Some(source(dir.path()))).unwrap();
        live.notarize_at_start(&ledger).await.unwrap();
        live.notarize_at_start(&ledger).await.unwrap(); // the same version is recorded once
        let wake = live.subscribe();

        std::fs::write(&file, &v2).unwrap();
        assert_eq!(
            live.reload(&ledger, "reload").await.unwrap(),
            Applied::Replaced { serial: 2 }
        );
        assert!(wake.has_changed().unwrap());
        assert!(live
            .current()
            .oversight_node(&crate::identity::DeptId::new("dpa").unwrap())
            .is_some());
        assert_eq!(changes(&ledger), vec![1, 2]);

        // The older, validly signed version is refused, once, and the newer one stays.
        std::fs::write(&file, &v1).unwrap();
        let e = live.reload(&ledger, "reload").await.unwrap_err();
        assert!(
            matches!(
                e,
                DirectoryError::Rollback {
                    serial: 1,
                    in_force: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            live.reload(&ledger, "reload").await.unwrap(),
            Applied::Unchanged
        );
        let status = live.status();
        assert_eq!(
            (status.serial, status.refusals, status.ready()),
            (Some(2), 1, false)
        );
        // The same serial with other contents is refused too.
        std::fs::write(&file, publish(2, "# changed\n")).unwrap();
        assert!(matches!(
            live.reload(&ledger, "reload").await,
            Err(DirectoryError::Conflict { .. })
        ));
        assert_eq!(
            changes(&ledger),
            vec![1, 2],
            "refused versions leave no entry"
        );

        // After a restart the ledger remembers serial 2: the older file cannot come back.
        drop(live);
        std::fs::write(&file, &v1).unwrap();
        let live = LiveDirectory::load(&file, Some(source(dir.path()))).unwrap();
        let e = live.notarize_at_start(&ledger).await.unwrap_err();
        assert!(
            format!("{e:#}").contains("older than the one in force"),
            "{e:#}"
        );
    }
}
