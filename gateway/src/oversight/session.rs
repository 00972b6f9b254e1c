//! Staff sign-in and sessions, without HTTP: check a name and password against the staff file,
//! lock an account after repeated failures, and keep the sessions that sign-ins open.
//!
//! A session is 32 random bytes the browser keeps in a cookie; the node keeps only their SHA-256
//! (a memory dump reveals no usable token), with the account's password hash as of the sign-in, a
//! CSRF token, and when it started and was last used. A session ends after 30 idle minutes, 12
//! hours in all, at sign-out, or at its next request once the account is disabled, removed or
//! given a new password. Sessions live in memory: a restart signs everyone out.
//!
//! Lockout: `[oversight] lockout_failures` wrong passwords in a row lock a name for
//! `lockout_secs`; meanwhile even the right password is refused. Unknown names are checked against
//! a dummy hash (the same work as a real one) and count the same way, so the answer tells nobody
//! which names exist.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use super::staff::{hash_password, verify_password, Role, Staff};

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after its sign-in, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Most names whose failures are remembered (older ones are forgotten first).
const MAX_TRACKED_NAMES: usize = 10_000;
/// Most open sessions (the oldest is ended first).
const MAX_SESSIONS: usize = 10_000;

/// How a sign-in ended (the `outcome` label of `causeway_oversight_sign_ins_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Signed in.
    Success,
    /// Unknown name or wrong password.
    WrongPassword,
    /// Too many failures: locked for a while.
    Locked,
    /// The right password of a disabled account.
    Disabled,
    /// Not checked: too many sign-ins were waiting for their turn.
    Busy,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::WrongPassword => "wrong-password",
            Outcome::Locked => "locked",
            Outcome::Disabled => "disabled",
            Outcome::Busy => "busy",
        }
    }
}

/// A signed-in staff member, as a request sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The account name.
    pub name: String,
    /// Its roles, as the staff file says now.
    pub roles: Vec<Role>,
    /// The session's CSRF token (every form this session posts carries it).
    pub csrf: String,
}

impl SignedIn {
    /// Whether the account has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

struct Session {
    name: String,
    /// The account's password hash at sign-in: a new password ends the session.
    password: String,
    /// For a staff member the identity provider vouched for (no account in the staff file): the
    /// roles it granted at sign-in.
    idp_roles: Option<Vec<Role>>,
    csrf: String,
    started: Instant,
    last_used: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Option<Instant>,
}

/// The node's sign-ins and sessions.
pub struct Sessions {
    staff: Staff,
    lockout_failures: u32,
    lockout: Duration,
    /// Checked for unknown names, so that they cost what a known one does.
    dummy_hash: String,
    open: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<String, Failures>>,
    outcomes: Mutex<BTreeMap<Outcome, u64>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("staff", &self.staff.path())
            .finish_non_exhaustive()
    }
}

/// A fresh random token: 32 bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compare two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (digest(a), digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Sessions {
    /// Sessions over the accounts of `staff`; `lockout_failures` wrong passwords lock a name for
    /// `lockout`.
    pub fn new(staff: Staff, lockout_failures: u32, lockout: Duration) -> Sessions {
        Sessions {
            staff,
            lockout_failures: lockout_failures.max(1),
            lockout,
            dummy_hash: hash_password(&random_token())
                .expect("a random 43-character token is a valid password"),
            open: Mutex::default(),
            failures: Mutex::default(),
            outcomes: Mutex::default(),
        }
    }

    /// The staff accounts.
    pub fn staff(&self) -> &Staff {
        &self.staff
    }

    /// Sign-ins so far, by outcome.
    pub fn outcomes(&self) -> Vec<(Outcome, u64)> {
        let counts = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        [
            Outcome::Success,
            Outcome::WrongPassword,
            Outcome::Locked,
            Outcome::Disabled,
            Outcome::Busy,
        ]
        .into_iter()
        .map(|o| (o, counts.get(&o).copied().unwrap_or(0)))
        .collect()
    }

    /// Check `name` and `password` (an Argon2 verification: call it off the async threads). On
    /// success, the new session's token (for the cookie) and who signed in. Never logs the
    /// password.
    pub fn sign_in(&self, name: &str, password: &str) -> Result<(String, SignedIn), Outcome> {
        let outcome = self.check(name, password);
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(match &outcome {
                Ok(_) => Outcome::Success,
                Err(o) => *o,
            })
            .or_default() += 1;
        // Only account names are logged: what someone typed as a name may be a password or a
        // national id typed into the wrong field.
        let known = self.staff.current(false).get(name).is_some();
        let shown = if known { name } else { "(not an account)" };
        match &outcome {
            Ok(_) => tracing::info!(staff = %shown, "oversight sign-in"),
            Err(o) => {
                tracing::warn!(staff = %shown, outcome = o.as_str(), "oversight sign-in refused")
            }
        }
        outcome
    }

    fn check(&self, name: &str, password: &str) -> Result<(String, SignedIn), Outcome> {
        let now = Instant::now();
        let key: String = name.chars().take(64).collect();
        if self.locked(&key, now) {
            return Err(Outcome::Locked);
        }
        let staff = self.staff.current(true);
        let account = staff.get(name);
        let hash = account.map_or(self.dummy_hash.as_str(), |a| a.password.as_str());
        let right = verify_password(hash, password) && account.is_some();
        let Some(account) = account.filter(|_| right) else {
            self.failed(key, now);
            return Err(Outcome::WrongPassword);
        };
        if account.disabled {
            return Err(Outcome::Disabled);
        }
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let token = random_token();
        let csrf = random_token();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        Self::make_room(&mut open, now);
        open.insert(
            digest(&token),
            Session {
                name: account.name.clone(),
                password: account.password.clone(),
                idp_roles: None,
                csrf: csrf.clone(),
                started: now,
                last_used: now,
            },
        );
        Ok((
            token,
            SignedIn {
                name: account.name.clone(),
                roles: account.roles.clone(),
                csrf,
            },
        ))
    }

    fn locked(&self, key: &str, now: Instant) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get_mut(key) {
            Some(f) => match f.locked_until {
                Some(until) if until > now => true,
                Some(_) => {
                    *f = Failures::default();
                    false
                }
                None => false,
            },
            None => false,
        }
    }

    fn failed(&self, key: String, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED_NAMES && !failures.contains_key(&key) {
            failures.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
            if failures.len() >= MAX_TRACKED_NAMES {
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
                {
                    failures.remove(&oldest);
                }
            }
        }
        let f = failures.entry(key).or_default();
        f.count += 1;
        f.last = Some(now);
        if f.count >= self.lockout_failures {
            f.count = 0;
            f.locked_until = Some(now + self.lockout);
        }
    }

    /// Drop ended sessions, and the least recently used one if as many as [`MAX_SESSIONS`] stay.
    fn make_room(open: &mut HashMap<[u8; 32], Session>, now: Instant) {
        open.retain(|_, s| Self::alive(s, now));
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
            {
                open.remove(&oldest);
            }
        }
    }

    fn alive(s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_used) < IDLE_TIMEOUT
            && now.duration_since(s.started) < ABSOLUTE_TIMEOUT
    }

    /// The staff member whose session `token` names, if it is still good: not idle or too old,
    /// the account still there, enabled and with the password it signed in with. A session that
    /// is no longer good is ended.
    pub fn resolve(&self, token: &str) -> Option<SignedIn> {
        let now = Instant::now();
        let key = digest(token);
        let staff = self.staff.current(false);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let session = open.get_mut(&key)?;
        if let Some(roles) = &session.idp_roles {
            if !Self::alive(session, now) {
                open.remove(&key);
                return None;
            }
            session.last_used = now;
            return Some(SignedIn {
                name: session.name.clone(),
                roles: roles.clone(),
                csrf: session.csrf.clone(),
            });
        }
        let account = staff
            .get(&session.name)
            .filter(|a| !a.disabled && a.password == session.password && Self::alive(session, now));
        let Some(account) = account else {
            open.remove(&key);
            return None;
        };
        session.last_used = now;
        Some(SignedIn {
            name: account.name.clone(),
            roles: account.roles.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Count a sign-in that was not checked because too many were waiting ([`Outcome::Busy`]).
    pub fn busy(&self) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(Outcome::Busy)
            .or_default() += 1;
        // Counted, not logged at warn: a flood would otherwise flood the log too.
        tracing::debug!(
            "oversight sign-in refused: too many sign-ins waiting for a password check"
        );
    }

    /// Open a session for `name`, whom the oversight body's identity provider vouched for with
    /// `roles` (`oidc`): the session's token (for the cookie) and who signed in.
    pub fn open_for_idp(&self, name: &str, roles: Vec<Role>) -> (String, SignedIn) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(Outcome::Success)
            .or_default() += 1;
        tracing::info!(staff = %name, "oversight sign-in through the identity provider");
        let now = Instant::now();
        let (token, csrf) = (random_token(), random_token());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        Self::make_room(&mut open, now);
        open.insert(
            digest(&token),
            Session {
                name: name.to_owned(),
                password: String::new(),
                idp_roles: Some(roles.clone()),
                csrf: csrf.clone(),
                started: now,
                last_used: now,
            },
        );
        (
            token,
            SignedIn {
                name: name.to_owned(),
                roles,
                csrf,
            },
        )
    }

    /// End the session `token` names.
    pub fn sign_out(&self, token: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oversight::staff::StaffFile;

    #[test]
    fn wrong_passwords_lock_a_name_and_a_disabled_account_loses_its_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("staff.toml");
        let mut file = StaffFile::default();
        file.add("alice", &[Role::Viewer], "correct horse battery")
            .unwrap();
        file.save(&path).unwrap();
        let sessions = Sessions::new(Staff::new(path.clone()), 3, Duration::from_secs(3600));
        let (token, who) = sessions.sign_in("alice", "correct horse battery").unwrap();
        assert_eq!(who.name, "alice");
        assert_eq!(sessions.resolve(&token).unwrap().csrf, who.csrf);
        assert!(sessions.resolve("not a token").is_none());
        for _ in 0..3 {
            assert_eq!(
                sessions.sign_in("alice", "wrong").unwrap_err(),
                Outcome::WrongPassword
            );
        }
        assert_eq!(
            sessions
                .sign_in("alice", "correct horse battery")
                .unwrap_err(),
            Outcome::Locked,
            "locked: even the right password is refused"
        );
        for _ in 0..3 {
            assert_eq!(
                sessions
                    .sign_in("mallory", "guess guess guess")
                    .unwrap_err(),
                Outcome::WrongPassword
            );
        }
        assert_eq!(
            sessions
                .sign_in("mallory", "guess guess guess")
                .unwrap_err(),
            Outcome::Locked,
            "unknown names count the same way"
        );
        // The session opened before the lockout is still good; disabling the account ends it.
        assert!(sessions.resolve(&token).is_some());
        file.set_disabled("alice", true).unwrap();
        file.save(&path).unwrap();
        let staff_now = sessions.staff().current(true);
        assert!(staff_now.get("alice").unwrap().disabled);
        assert!(sessions.resolve(&token).is_none());
        sessions.sign_out(&token);
        assert!(same_secret("a", "a") && !same_secret("a", "b"));
    }
}
