//! The oversight body's staff accounts: who may sign in to the dashboard and the query API, and
//! in which roles (docs/OVERSIGHT.md, "Staff and roles").
//!
//! The accounts live in one TOML file (`[oversight] staff`, default `staff.toml` beside the
//! config), readable by the node's user only, written whole and atomically by
//! `causeway oversight staff ...`:
//!
//! ```toml
//! [[staff]]
//! name = "alice"
//! roles = ["investigator", "subject-officer"]
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! disabled = false
//! ```
//!
//! Passwords are Argon2id PHC strings with the `argon2` crate's default (OWASP) parameters. The
//! running node reads the file again when its modification time or length changed ([`Staff`]), so
//! a disabled account or a changed password takes effect at that account's next request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use serde::{Deserialize, Serialize};

/// Shortest password `causeway oversight staff add|passwd` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Longest password checked (Argon2 takes any length; this bounds the work a request causes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a staff member may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Aggregates: the overview, log status, membership history, cross-check findings.
    Viewer,
    /// Search entries (without a subject), exchange pages, exports, the cross-check.
    Investigator,
    /// Anything by subject: the national-id search, `subject_tag` searches, citizen's reports.
    SubjectOfficer,
    /// The staff page (accounts are managed on the command line).
    Administrator,
}

impl Role {
    /// Every role, in order of the rights they add.
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Investigator,
        Role::SubjectOfficer,
        Role::Administrator,
    ];

    /// The name used in the staff file, the ledger and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Investigator => "investigator",
            Role::SubjectOfficer => "subject-officer",
            Role::Administrator => "administrator",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: one of viewer, investigator, subject-officer, administrator")
            })
    }
}

/// One account of the staff file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffMember {
    /// Sign-in name (recorded as `asked_by` with every query).
    pub name: String,
    /// What the account may see.
    pub roles: Vec<Role>,
    /// Argon2id PHC string of the password.
    pub password: String,
    /// A disabled account cannot sign in, and its sessions end at their next request.
    #[serde(default)]
    pub disabled: bool,
}

/// The staff file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffFile {
    /// The accounts.
    #[serde(default)]
    pub staff: Vec<StaffMember>,
}

impl StaffFile {
    /// Read and check the staff file at `path`.
    pub fn load(path: &Path) -> Result<StaffFile> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "{}: cannot read the staff accounts (create one with `causeway oversight staff add NAME --role viewer --config FILE`)",
                path.display()
            )
        })?;
        let file: StaffFile =
            toml::from_str(&text).map_err(|e| crate::files::toml_error(path, &text, e))?;
        for (i, m) in file.staff.iter().enumerate() {
            check_name(&m.name)
                .with_context(|| format!("{}: [[staff]] #{}", path.display(), i + 1))?;
            if file.staff[..i].iter().any(|o| o.name == m.name) {
                bail!(
                    "{}: the account {:?} is listed twice",
                    path.display(),
                    m.name
                );
            }
            PasswordHash::new(&m.password).map_err(|e| {
                anyhow::anyhow!(
                    "{}: the password of {:?} is not a PHC string ({e}); set it with `causeway oversight staff passwd {}`",
                    path.display(),
                    m.name,
                    m.name
                )
            })?;
        }
        Ok(file)
    }

    /// The staff file at `path`, or an empty one if there is none yet.
    pub fn load_or_empty(path: &Path) -> Result<StaffFile> {
        if path.exists() {
            StaffFile::load(path)
        } else {
            Ok(StaffFile::default())
        }
    }

    /// Write the file whole, readable by the owner only (0600), replacing the old one atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# Oversight staff accounts: managed with `causeway oversight staff add|disable|enable|passwd|list`.\n# Passwords are Argon2id hashes. Keep this file readable by the node's user only.\n\n{}",
            toml::to_string(self).context("serializing the staff file")?
        );
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "staff.toml".into());
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        crate::identity::write_secret(&temp, text.as_bytes())
            .with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, path).with_context(|| {
            let _ = std::fs::remove_file(&temp);
            format!("replacing {}", path.display())
        })?;
        Ok(())
    }

    /// The account named `name`.
    pub fn get(&self, name: &str) -> Option<&StaffMember> {
        self.staff.iter().find(|m| m.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut StaffMember> {
        self.staff
            .iter_mut()
            .find(|m| m.name == name)
            .with_context(|| {
                format!("there is no account {name:?} (see `causeway oversight staff list`)")
            })
    }

    /// Add an account.
    pub fn add(&mut self, name: &str, roles: &[Role], password: &str) -> Result<()> {
        check_name(name)?;
        if self.get(name).is_some() {
            bail!("the account {name:?} exists already; change its password with `causeway oversight staff passwd {name}`");
        }
        if roles.is_empty() {
            bail!("give the account at least one --role (viewer, investigator, subject-officer, administrator)");
        }
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        self.staff.push(StaffMember {
            name: name.to_owned(),
            roles,
            password: hash_password(password)?,
            disabled: false,
        });
        Ok(())
    }

    /// Disable or enable an account.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<()> {
        self.get_mut(name)?.disabled = disabled;
        Ok(())
    }

    /// Set an account's password (its sessions end at their next request).
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<()> {
        let hash = hash_password(password)?;
        self.get_mut(name)?.password = hash;
        Ok(())
    }
}

/// Names are what the ledger records: 1 to 64 of `a-z A-Z 0-9 . _ - @`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        bail!("{name:?} is not a staff name: use 1 to 64 letters, digits and . _ - @");
    }
    Ok(())
}

/// Hash `password` as an Argon2id PHC string (default OWASP parameters, a random salt). Refuses a
/// password shorter than [`MIN_PASSWORD_CHARS`].
pub fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters (a passphrase of a few words is best)");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        bail!("the password is too long: at most {MAX_PASSWORD_BYTES} bytes");
    }
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// One account as the oversight ledger records it: never the password hash, only a fingerprint
/// that changes when the password does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// Sign-in name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// Whether it is disabled.
    pub disabled: bool,
    /// The first 16 hex digits of SHA-256 over the password's PHC string (which holds a random
    /// salt, so this says nothing about the password).
    pub credential: String,
}

/// The roster of `file`, by name.
pub fn roster(file: &StaffFile) -> Vec<RosterEntry> {
    use sha2::Digest as _;
    let mut roster: Vec<RosterEntry> = file
        .staff
        .iter()
        .map(|m| RosterEntry {
            name: m.name.clone(),
            roles: m.roles.clone(),
            disabled: m.disabled,
            credential: hex::encode(sha2::Sha256::digest(m.password.as_bytes()))[..16].to_owned(),
        })
        .collect();
    roster.sort_by(|a, b| a.name.cmp(&b.name));
    roster
}

/// What changed from roster `old` to roster `new`, one JSON object per change: `added` (with
/// roles), `removed`, `disabled`, `enabled`, `roles` (the new ones), `password`.
pub fn roster_changes(old: &[RosterEntry], new: &[RosterEntry]) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut changes = Vec::new();
    for n in new {
        match old.iter().find(|o| o.name == n.name) {
            None => changes.push(json!({"name": n.name, "change": "added", "roles": n.roles, "disabled": n.disabled})),
            Some(o) => {
                if o.disabled != n.disabled {
                    let change = if n.disabled { "disabled" } else { "enabled" };
                    changes.push(json!({"name": n.name, "change": change}));
                }
                if o.roles != n.roles {
                    changes.push(json!({"name": n.name, "change": "roles", "roles": n.roles}));
                }
                if o.credential != n.credential {
                    changes.push(json!({"name": n.name, "change": "password"}));
                }
            }
        }
    }
    for o in old.iter().filter(|o| !new.iter().any(|n| n.name == o.name)) {
        changes.push(json!({"name": o.name, "change": "removed"}));
    }
    changes
}

/// The staff file as the running node sees it: read again when its modification time or length
/// changed, looked at no more than once a second.
#[derive(Debug)]
pub struct Staff {
    path: PathBuf,
    state: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    checked: Option<Instant>,
    stamp: Option<(SystemTime, u64)>,
    accounts: Arc<StaffFile>,
}

impl Staff {
    /// The staff file at `path` (read at first use; a missing file means no accounts).
    pub fn new(path: PathBuf) -> Staff {
        Staff {
            path,
            state: Mutex::new(Seen {
                checked: None,
                stamp: None,
                accounts: Arc::default(),
            }),
        }
    }

    /// Where the accounts are read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The accounts, read again if the file changed (checked at most once a second unless
    /// `now` is true, as on a sign-in).
    pub fn current(&self, now: bool) -> Arc<StaffFile> {
        let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = now
            || seen
                .checked
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        if !due {
            return seen.accounts.clone();
        }
        seen.checked = Some(Instant::now());
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp != seen.stamp {
            seen.stamp = stamp;
            seen.accounts = match stamp {
                None => {
                    tracing::warn!(staff = %self.path.display(), "no staff file: nobody can sign in to the oversight dashboard (add an account with `causeway oversight staff add`)");
                    Arc::default()
                }
                Some(_) => match StaffFile::load(&self.path) {
                    Ok(file) => {
                        tracing::info!(staff = %self.path.display(), accounts = file.staff.len(), "staff accounts read");
                        Arc::new(file)
                    }
                    Err(e) => {
                        // Keep no accounts rather than stale ones: a broken file must not keep a
                        // disabled account working.
                        tracing::error!(error = %format!("{e:#}"), "the staff file is unreadable: nobody can sign in until it is fixed");
                        Arc::default()
                    }
                },
            };
        }
        seen.accounts.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_round_trip_through_a_private_file_and_passwords_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("staff.toml");
        let mut file = StaffFile::default();
        assert!(
            file.add("alice", &[Role::Viewer], "short").is_err(),
            "too short"
        );
        file.add(
            "alice",
            &[Role::SubjectOfficer, Role::Investigator, Role::Investigator],
            "correct horse battery",
        )
        .unwrap();
        assert!(file
            .add("alice", &[Role::Viewer], "another long one")
            .is_err());
        assert!(file.add("bob", &[], "another long one").is_err(), "no role");
        assert!(file
            .add("bad name", &[Role::Viewer], "another long one")
            .is_err());
        file.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$") && !text.contains("correct horse"));
        let mut read = StaffFile::load(&path).unwrap();
        assert_eq!(read, file);
        let alice = read.get("alice").unwrap().clone();
        assert_eq!(alice.roles, vec![Role::Investigator, Role::SubjectOfficer]);
        assert!(verify_password(&alice.password, "correct horse battery"));
        assert!(!verify_password(&alice.password, "correct horse batterz"));
        read.set_password("alice", "a different passphrase")
            .unwrap();
        read.set_disabled("alice", true).unwrap();
        assert!(read.set_disabled("nobody", true).is_err());
        read.save(&path).unwrap();
        let again = StaffFile::load(&path).unwrap();
        let alice = again.get("alice").unwrap();
        assert!(alice.disabled && verify_password(&alice.password, "a different passphrase"));
        std::fs::write(
            &path,
            "[[staff]]\nname = \"x\"\nroles = [\"boss\"]\npassword = \"p\"\n",
        )
        .unwrap();
        assert!(StaffFile::load(&path).is_err(), "unknown role refused");
    }
}
