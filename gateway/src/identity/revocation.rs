//! Revocation in force: the federation's certificate revocation list (CRL), honoured on every
//! handshake of the peer ports and of outgoing peer connections, and replaced without a restart.
//!
//! [`Revocation`] holds the CRL in force and the rustls verifiers built from it. The TLS
//! configurations hold a [`LiveClientVerifier`] or [`LiveServerVerifier`], which take the current
//! verifier at each handshake, so a new CRL applies to the next handshake on every listener and
//! client without rebuilding them.
//!
//! [`Revocation::apply`] is the one way a CRL comes in force: the reload task
//! ([`Revocation::run`]) hands it what the `[identity] crl` file holds, and the signed federation
//! directory, once it carries the CRL, will hand it the same bytes. A CRL is put in force only if
//! it parses, is signed by a CA of the federation's trust bundle, and its CRL number is not lower
//! than the one in force (no rollback); otherwise the last good CRL stays in force, and the refusal
//! is logged and reported on `/readyz` and `/metrics`.
//!
//! Connections already open are closed by the transports: each peer connection holds a
//! [`PeerWatch`], which wakes when a CRL is applied (or the one in force goes stale under
//! [`StalePolicy::FailClosed`]) and refuses the connection's peer. It wakes too when the
//! federation's membership changes ([`Revocation::set_members`], from the signed directory): a
//! peer that was a member when its connection opened and is no longer one is refused like a
//! revoked one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::sync::watch;
use x509_parser::num_bigint::BigUint;
use x509_parser::prelude::FromDer;

use crate::files::{Reread, Rereads};

/// How often the CRL file is read again by default (`[identity] crl_reload_secs`).
pub const DEFAULT_RELOAD_SECS: u64 = 30;

/// What a gateway does while the CRL in force is past its `nextUpdate` (`[identity] crl_stale`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StalePolicy {
    /// Refuse every peer, in new handshakes and on open connections, until a fresh CRL is in
    /// force: a stale list cannot say who was revoked since.
    #[default]
    FailClosed,
    /// Keep accepting peers the stale list does not name, with a warning and a metric.
    Warn,
}

impl StalePolicy {
    /// The name as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            StalePolicy::FailClosed => "fail-closed",
            StalePolicy::Warn => "warn",
        }
    }
}

/// Why a CRL was not put in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// The file could not be read.
    #[error("{path}: cannot read the CRL: {problem}")]
    Unreadable {
        /// The file.
        path: String,
        /// The OS error.
        problem: String,
    },
    /// The bytes are not a CRL.
    #[error("{from}: not a valid X.509 CRL ({problem}); publish the crl.pem that `causeway certs revoke` or `causeway certs crl` wrote")]
    Malformed {
        /// Where it came from.
        from: String,
        /// What the parser said.
        problem: String,
    },
    /// No CRL at all, while one is in force (that would lift every revocation).
    #[error("{from}: holds no CRL, but one is in force; publish the CA's current crl.pem")]
    Empty {
        /// Where it came from.
        from: String,
    },
    /// Signed by no CA of the trust bundle.
    #[error("{from}: the CRL is issued by \"{issuer}\", which is not a CA of the federation's trust bundle; publish the CRL of the federation CA (`causeway certs crl --ca <the federation's CA directory>`)")]
    UnknownIssuer {
        /// Where it came from.
        from: String,
        /// The issuer it names.
        issuer: String,
    },
    /// Names a federation CA, but that CA's key did not sign it.
    #[error("{from}: the CRL names \"{issuer}\" as its issuer, but its signature does not verify with that CA's key (signed by another CA of the same name?); publish the CRL the federation CA signed")]
    BadSignature {
        /// Where it came from.
        from: String,
        /// The issuer it names.
        issuer: String,
    },
    /// No CRL number extension (RFC 5280 requires one; without it rollback cannot be told).
    #[error("{from}: the CRL has no CRL number; sign it with `causeway certs crl`")]
    NoNumber {
        /// Where it came from.
        from: String,
    },
    /// Older than the CRL in force.
    #[error("{from}: CRL number {offered} is lower than {in_force}, the one in force: an older list would lift later revocations; publish the CA's current crl.pem")]
    RolledBack {
        /// Where it came from.
        from: String,
        /// The number offered.
        offered: String,
        /// The number in force.
        in_force: String,
    },
    /// Same number as the CRL in force, different contents.
    #[error("{from}: CRL number {number} is the one in force, but the list differs; a changed list needs a higher number (`causeway certs revoke` and `causeway certs crl` count up)")]
    Conflicting {
        /// Where it came from.
        from: String,
        /// The number.
        number: String,
    },
    /// A CA's CRL in force is missing from the new set.
    #[error("{from}: no CRL of \"{issuer}\" any more, but one is in force; keep publishing every CA's CRL")]
    Dropped {
        /// Where it came from.
        from: String,
        /// The CA whose CRL is missing.
        issuer: String,
    },
    /// rustls refused the list.
    #[error("{from}: the CRL cannot be used: {problem}")]
    Unusable {
        /// Where it came from.
        from: String,
        /// rustls's reason.
        problem: String,
    },
}

/// One CA's CRL, checked: signed by that CA, numbered.
#[derive(Debug, Clone)]
pub struct Crl {
    der: CertificateRevocationListDer<'static>,
    /// The issuer's name, DER (as certificates name their issuer).
    issuer: Vec<u8>,
    issuer_text: String,
    number: BigUint,
    this_update: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
    /// Serial numbers revoked, big-endian without leading zeros.
    revoked: HashSet<Vec<u8>>,
}

impl Crl {
    /// Parse `der` and check that a CA in `issuers` signed it; `from` names it in errors.
    pub fn verify(
        der: CertificateRevocationListDer<'static>,
        issuers: &[CertificateDer<'static>],
        from: &str,
    ) -> Result<Crl, CrlError> {
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(der.as_ref())
                .map_err(|e| CrlError::Malformed {
                    from: from.to_owned(),
                    problem: e.to_string(),
                })?;
        let issuer_text = crl.issuer().to_string();
        let mut named = false;
        let mut signed = false;
        for ca in issuers {
            let Ok((_, ca)) = x509_parser::certificate::X509Certificate::from_der(ca.as_ref())
            else {
                continue;
            };
            if ca.subject().as_raw() == crl.issuer().as_raw() {
                named = true;
                if crl.verify_signature(ca.public_key()).is_ok() {
                    signed = true;
                    break;
                }
            }
        }
        if !named {
            return Err(CrlError::UnknownIssuer {
                from: from.to_owned(),
                issuer: issuer_text,
            });
        }
        if !signed {
            return Err(CrlError::BadSignature {
                from: from.to_owned(),
                issuer: issuer_text,
            });
        }
        let number = crl
            .crl_number()
            .cloned()
            .ok_or_else(|| CrlError::NoNumber {
                from: from.to_owned(),
            })?;
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| r.serial().to_bytes_be())
            .collect();
        Ok(Crl {
            issuer: crl.issuer().as_raw().to_vec(),
            issuer_text,
            number,
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            revoked,
            der,
        })
    }

    /// The CRL number.
    pub fn number(&self) -> &BigUint {
        &self.number
    }

    /// When it was issued.
    pub fn this_update(&self) -> OffsetDateTime {
        self.this_update
    }

    /// By when the CA promised the next one (past it, the list is stale).
    pub fn next_update(&self) -> Option<OffsetDateTime> {
        self.next_update
    }

    /// How many certificates it revokes.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    /// Whether it is past its `nextUpdate` at `now`.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        self.next_update.is_some_and(|next| next < now)
    }

    /// Whether it revokes the certificate with issuer name `issuer` (DER) and `serial`.
    fn revokes(&self, issuer: &[u8], serial: &[u8]) -> bool {
        self.issuer == issuer && self.revoked.contains(serial)
    }
}

/// The CRLs in force and the verifiers built from them.
struct InForce {
    crls: Arc<Vec<Crl>>,
    client: Arc<dyn ClientCertVerifier>,
    server: Arc<dyn ServerCertVerifier>,
    /// Whether the last look found a CRL past its `nextUpdate` (for logging the change once).
    stale: bool,
}

/// What [`Revocation::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The same CRLs as those in force: nothing changed.
    Unchanged,
    /// New CRLs are in force.
    Replaced {
        /// The highest CRL number now in force.
        number: String,
        /// Certificates revoked, over every CRL.
        revoked: usize,
    },
}

/// Where a gateway's CRL comes from and how it treats a stale one (`[identity] crl`,
/// `crl_reload_secs`, `crl_stale`).
#[derive(Debug, Clone)]
pub struct RevocationSettings {
    /// The CRL file (PEM, one CRL per CA of the bundle), if revocation is checked.
    pub crl: Option<PathBuf>,
    /// How often the file is read again.
    pub reload_every: Duration,
    /// What to do while a CRL in force is stale.
    pub stale: StalePolicy,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        RevocationSettings {
            crl: None,
            reload_every: Duration::from_secs(DEFAULT_RELOAD_SECS),
            stale: StalePolicy::default(),
        }
    }
}

/// A snapshot for `/readyz` and `/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RevocationStatus {
    /// The CRL file, if one is configured.
    pub crl: Option<String>,
    /// The highest CRL number in force.
    pub number: Option<String>,
    /// The earliest `nextUpdate` in force (RFC 3339).
    pub next_update: Option<String>,
    /// Seconds until then (negative: stale).
    #[serde(skip)]
    pub next_update_in_secs: Option<f64>,
    /// Certificates revoked.
    pub revoked: usize,
    /// Whether a CRL in force is past its `nextUpdate`.
    pub stale: bool,
    /// `fail-closed` or `warn`.
    pub stale_policy: &'static str,
    /// Why the last CRL offered was refused (the previous one stays in force), until one is
    /// accepted.
    pub last_refusal: Option<String>,
    /// CRLs refused since start.
    pub refusals: u64,
    /// Open peer connections closed because their peer was refused.
    pub connections_closed: u64,
}

impl RevocationStatus {
    /// Whether the gateway can vouch for its peers: no refused CRL pending, and not stale under
    /// `fail-closed`.
    pub fn ready(&self) -> bool {
        self.last_refusal.is_none() && !(self.stale && self.stale_policy == "fail-closed")
    }
}

/// The federation's revocation state for one gateway or oversight node.
pub struct Revocation {
    roots: Arc<RootCertStore>,
    /// The trust bundle's CA certificates, which may sign CRLs.
    issuers: Vec<CertificateDer<'static>>,
    settings: RevocationSettings,
    hints: Vec<DistinguishedName>,
    in_force: RwLock<InForce>,
    /// Held while a CRL is checked against the one in force and swapped in, so that two
    /// sources applying at once cannot slip an older list past the rollback check.
    applying: Mutex<()>,
    /// Counts applied changes (a new CRL, or one going stale); peer connections watch it.
    changes: watch::Sender<u64>,
    /// The file's bytes last read, to re-check only what changed.
    last_read: Mutex<Option<Vec<u8>>>,
    /// The federation's members as the directory in force lists them (`None`: not told).
    members: RwLock<Option<Arc<Members>>>,
    last_refusal: Mutex<Option<String>>,
    refusals: AtomicU64,
    connections_closed: AtomicU64,
}

impl std::fmt::Debug for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocation")
            .field("crl", &self.settings.crl)
            .field("stale", &self.settings.stale)
            .finish_non_exhaustive()
    }
}

impl Revocation {
    /// The revocation state for the trust bundle `issuers` (also in `roots`), with the CRL the
    /// settings name read now. A CRL that cannot be put in force stops the start (there is no
    /// last good one to keep); a stale one does not (under `fail-closed` peers are refused until
    /// a fresh one is published, which needs no restart).
    pub fn load(
        roots: Arc<RootCertStore>,
        issuers: Vec<CertificateDer<'static>>,
        settings: RevocationSettings,
    ) -> Result<Arc<Revocation>, CrlError> {
        let none = build_verifiers(&roots, &[], settings.stale, "the trust bundle")?;
        let hints = none.client.root_hint_subjects().to_vec();
        let revocation = Arc::new(Revocation {
            roots,
            issuers,
            hints,
            in_force: RwLock::new(InForce {
                crls: Arc::new(Vec::new()),
                client: none.client,
                server: none.server,
                stale: false,
            }),
            applying: Mutex::new(()),
            changes: watch::channel(0).0,
            last_read: Mutex::new(None),
            members: RwLock::new(None),
            last_refusal: Mutex::new(None),
            refusals: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            settings,
        });
        if revocation.settings.crl.is_some() {
            revocation.reload()?;
            revocation.look_for_staleness(OffsetDateTime::now_utc());
        }
        Ok(revocation)
    }

    /// The settings it was loaded with.
    pub fn settings(&self) -> &RevocationSettings {
        &self.settings
    }

    /// Put `crls` (one per CA of the bundle; `from` names their source in errors and logs) in
    /// force, if each is signed by a CA of the bundle and none rolls back the one in force for
    /// its CA. On any refusal nothing changes. The next handshake uses the new CRLs, and every
    /// [`PeerWatch`] looks again at its peer.
    pub fn apply(
        &self,
        crls: Vec<CertificateRevocationListDer<'static>>,
        from: &str,
    ) -> Result<Applied, CrlError> {
        let checked = crls
            .into_iter()
            .map(|der| Crl::verify(der, &self.issuers, from))
            .collect::<Result<Vec<_>, _>>()?;
        let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current_crls();
        if checked.is_empty() && !current.is_empty() {
            return Err(CrlError::Empty {
                from: from.to_owned(),
            });
        }
        for old in current.iter() {
            let Some(new) = checked.iter().find(|c| c.issuer == old.issuer) else {
                return Err(CrlError::Dropped {
                    from: from.to_owned(),
                    issuer: old.issuer_text.clone(),
                });
            };
            if new.number < old.number {
                return Err(CrlError::RolledBack {
                    from: from.to_owned(),
                    offered: new.number.to_string(),
                    in_force: old.number.to_string(),
                });
            }
            if new.number == old.number && new.der != old.der {
                return Err(CrlError::Conflicting {
                    from: from.to_owned(),
                    number: new.number.to_string(),
                });
            }
        }
        if checked.len() == current.len()
            && checked
                .iter()
                .all(|new| current.iter().any(|old| old.der == new.der))
        {
            return Ok(Applied::Unchanged);
        }
        let ders: Vec<_> = checked.iter().map(|c| c.der.clone()).collect();
        let Verifiers { client, server } =
            build_verifiers(&self.roots, &ders, self.settings.stale, from)?;
        let applied = Applied::Replaced {
            number: checked
                .iter()
                .map(|c| &c.number)
                .max()
                .map(ToString::to_string)
                .unwrap_or_default(),
            revoked: checked.iter().map(|c| c.revoked.len()).sum(),
        };
        {
            let mut in_force = self.in_force.write().unwrap_or_else(|p| p.into_inner());
            in_force.crls = Arc::new(checked);
            in_force.client = client;
            in_force.server = server;
            in_force.stale = false;
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(applied)
    }

    /// Read the configured CRL file and [`apply`](Self::apply) what it holds. Records a
    /// refusal for `/readyz` (cleared by the next CRL put in force or found unchanged).
    pub fn reload(&self) -> Result<Applied, CrlError> {
        let Some(path) = self.settings.crl.as_deref() else {
            return Ok(Applied::Unchanged);
        };
        *self.last_read.lock().unwrap_or_else(|p| p.into_inner()) = std::fs::read(path).ok();
        let result =
            read_crl_file(path).and_then(|crls| self.apply(crls, &path.display().to_string()));
        let mut last_refusal = self.last_refusal.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(_) => *last_refusal = None,
            Err(e) => {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                *last_refusal = Some(e.to_string());
            }
        }
        result
    }

    /// Whether the file holds other bytes than those last read.
    fn file_changed(&self, path: &Path) -> bool {
        let now = std::fs::read(path).ok();
        *self.last_read.lock().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Note a CRL in force going stale (or fresh again) at `now`: logged once per change, and
    /// under `fail-closed` every [`PeerWatch`] looks again (its peer is now refused).
    fn look_for_staleness(&self, now: OffsetDateTime) {
        let stale = self.current_crls().iter().any(|c| c.is_stale(now));
        let changed = {
            let mut in_force = self.in_force.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut in_force.stale, stale) != stale
        };
        if !changed {
            return;
        }
        let path = self.path_text();
        match (stale, self.settings.stale) {
            (true, StalePolicy::FailClosed) => {
                tracing::error!(crl = %path, "the CRL in force is past its nextUpdate: every peer is refused ([identity] crl_stale = \"fail-closed\") until the federation operator publishes a fresh one (`causeway certs crl`)");
                self.changes.send_modify(|n| *n += 1);
            }
            (true, StalePolicy::Warn) => {
                tracing::warn!(crl = %path, "the CRL in force is past its nextUpdate: peers are still accepted ([identity] crl_stale = \"warn\"); ask the federation operator for a fresh one (`causeway certs crl`)");
            }
            (false, _) => tracing::info!(crl = %path, "the CRL in force is fresh again"),
        }
    }

    fn path_text(&self) -> String {
        self.settings
            .crl
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    fn current_crls(&self) -> Arc<Vec<Crl>> {
        self.in_force
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .crls
            .clone()
    }

    /// The verifier of client certificates in force (for this handshake).
    fn client_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.in_force
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .client
            .clone()
    }

    /// The verifier of server certificates in force (for this handshake).
    fn server_verifier(&self) -> Arc<dyn ServerCertVerifier> {
        self.in_force
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .server
            .clone()
    }

    /// Why a peer presenting `leaf` must not be served now: its certificate is revoked, or a
    /// CRL in force is stale under `fail-closed`. `None`: it may be.
    pub fn refuses(&self, leaf: &CertificateDer<'_>) -> Option<&'static str> {
        self.refuses_at(leaf, OffsetDateTime::now_utc())
    }

    fn refuses_at(&self, leaf: &CertificateDer<'_>, now: OffsetDateTime) -> Option<&'static str> {
        let crls = self.current_crls();
        if crls.is_empty() {
            return None;
        }
        if self.settings.stale == StalePolicy::FailClosed && crls.iter().any(|c| c.is_stale(now)) {
            return Some("the CRL in force is stale");
        }
        let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref())
        else {
            return Some("its certificate does not parse");
        };
        let serial = cert.serial.to_bytes_be();
        crls.iter()
            .any(|c| c.revokes(cert.issuer().as_raw(), &serial))
            .then_some("its certificate is revoked")
    }

    /// A watch over the connection of the peer that presented `leaf`.
    pub fn watch_peer(self: &Arc<Self>, leaf: CertificateDer<'static>) -> PeerWatch {
        let mut changes = self.changes.subscribe();
        // Look once right away: a CRL applied between this peer's handshake and now counts.
        changes.mark_changed();
        PeerWatch {
            revocation: self.clone(),
            changes,
            member: self.is_member(&leaf) != Some(false),
            leaf,
        }
    }

    /// The federation's members now (the departments and oversight nodes of the directory in
    /// force): open connections of a peer that is no longer one are closed.
    pub fn set_members(&self, federation: &str, ids: HashSet<super::PeerIdentity>) {
        *self.members.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Members {
            federation: federation.to_owned(),
            ids,
        }));
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the peer presenting `leaf` is a member (`None`: no membership was set).
    fn is_member(&self, leaf: &CertificateDer<'_>) -> Option<bool> {
        let members = self
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(
            super::identity_from_cert(leaf.as_ref(), &members.federation)
                .is_ok_and(|id| members.ids.contains(&id)),
        )
    }

    /// Count an open connection closed because its peer was refused.
    pub fn count_closed_connection(&self) {
        self.connections_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// The state for `/readyz` and `/metrics`.
    pub fn status(&self) -> RevocationStatus {
        self.status_at(OffsetDateTime::now_utc())
    }

    fn status_at(&self, now: OffsetDateTime) -> RevocationStatus {
        let crls = self.current_crls();
        let next_update = crls.iter().filter_map(Crl::next_update).min();
        RevocationStatus {
            crl: self.settings.crl.as_ref().map(|p| p.display().to_string()),
            number: crls.iter().map(|c| &c.number).max().map(|n| n.to_string()),
            next_update: next_update.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            next_update_in_secs: next_update.map(|t| (t - now).as_seconds_f64()),
            revoked: crls.iter().map(Crl::revoked_count).sum(),
            stale: crls.iter().any(|c| c.is_stale(now)),
            stale_policy: self.settings.stale.as_str(),
            last_refusal: self
                .last_refusal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            refusals: self.refusals.load(Ordering::Relaxed),
            connections_closed: self.connections_closed.load(Ordering::Relaxed),
        }
    }

    /// Read the CRL file again every `crl_reload_secs` and on SIGHUP, put a changed valid one in
    /// force (logging a refused one and keeping the last good), and note a CRL going stale, until
    /// `stop` turns true. Does nothing without a configured CRL.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let Some(path) = self.settings.crl.clone() else {
            return;
        };
        let mut rereads = Rereads::new("CRL", self.settings.reload_every, stop);
        while let Some(why) = rereads.next().await {
            if why == Reread::Signal || self.file_changed(&path) {
                match self.reload() {
                    Ok(Applied::Unchanged) => {}
                    Ok(Applied::Replaced { number, revoked }) => tracing::info!(
                        crl = %path.display(), number = %number, revoked,
                        "CRL applied: the next handshakes use it, and open peer connections of revoked certificates are being closed"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "CRL refused; the previous CRL stays in force"
                    ),
                }
            }
            self.look_for_staleness(OffsetDateTime::now_utc());
        }
    }
}

/// Read the CRLs of the PEM file at `path`.
pub fn read_crl_file(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, CrlError> {
    let bytes = std::fs::read(path).map_err(|e| CrlError::Unreadable {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CrlError::Malformed {
            from: path.display().to_string(),
            problem: format!("{e:?}"),
        })?;
    if crls.is_empty() {
        return Err(CrlError::Malformed {
            from: path.display().to_string(),
            problem: "no \"-----BEGIN X509 CRL-----\" block".to_owned(),
        });
    }
    Ok(crls)
}

/// The rustls verifiers over `roots` and `crls`: unknown revocation status is refused (every
/// certificate of a CA with a CRL is checked against it), and under `fail-closed` so is a CRL past
/// its `nextUpdate`, at the moment of each handshake.
fn build_verifiers(
    roots: &Arc<RootCertStore>,
    crls: &[CertificateRevocationListDer<'static>],
    stale: StalePolicy,
    from: &str,
) -> Result<Verifiers, CrlError> {
    let unusable = |e: rustls::server::VerifierBuilderError| CrlError::Unusable {
        from: from.to_owned(),
        problem: e.to_string(),
    };
    let provider = super::tls::provider();
    let mut client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls(crls.iter().cloned());
    let mut server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
        .with_crls(crls.iter().cloned());
    if stale == StalePolicy::FailClosed {
        client = client.enforce_revocation_expiration();
        server = server.enforce_revocation_expiration();
    }
    Ok(Verifiers {
        client: client.build().map_err(unusable)?,
        server: server.build().map_err(unusable)?,
    })
}

/// The two verifiers built from one set of CRLs.
struct Verifiers {
    client: Arc<dyn ClientCertVerifier>,
    server: Arc<dyn ServerCertVerifier>,
}

/// The members of the federation, as identities proven by certificates.
#[derive(Debug)]
struct Members {
    federation: String,
    ids: HashSet<super::PeerIdentity>,
}

/// One open peer connection's watch: wakes when its peer is refused.
pub struct PeerWatch {
    revocation: Arc<Revocation>,
    changes: watch::Receiver<u64>,
    leaf: CertificateDer<'static>,
    /// Whether the peer was a member when the connection opened (a non-member's requests are
    /// answered 401/403 by the endpoints; only a member that is removed is cut off here).
    member: bool,
}

impl PeerWatch {
    /// Wait until the peer is refused (a CRL applied after its handshake revokes it, or the CRL
    /// goes stale under `fail-closed`); the reason. Never returns while it is not.
    pub async fn refused(&mut self) -> &'static str {
        loop {
            if self.changes.changed().await.is_err() {
                // The revocation state is gone (the node is stopping): nothing more to watch.
                std::future::pending::<()>().await;
            }
            if let Some(reason) = self.revocation.refuses(&self.leaf) {
                self.revocation.count_closed_connection();
                return reason;
            }
            if self.member && self.revocation.is_member(&self.leaf) == Some(false) {
                self.revocation.count_closed_connection();
                return "it is no longer a member of the federation directory";
            }
        }
    }
}

/// [`PeerWatch::refused`] for a connection that may have no watch (no CRL, or no TLS).
pub async fn refused(watch: &mut Option<PeerWatch>) -> &'static str {
    match watch {
        Some(watch) => watch.refused().await,
        None => std::future::pending().await,
    }
}

/// The client-certificate verifier of the peer ports: at each handshake, the one built from the
/// CRLs in force.
#[derive(Debug)]
pub struct LiveClientVerifier {
    revocation: Arc<Revocation>,
}

impl LiveClientVerifier {
    /// A verifier that follows `revocation`.
    pub fn new(revocation: Arc<Revocation>) -> Self {
        LiveClientVerifier { revocation }
    }
}

impl ClientCertVerifier for LiveClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The roots never change with the CRL, so neither do the hints.
        &self.revocation.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.revocation
            .client_verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.revocation
            .client_verifier()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.revocation
            .client_verifier()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.revocation.client_verifier().supported_verify_schemes()
    }
}

/// The server-certificate verifier of outgoing peer connections: at each handshake, the one built
/// from the CRLs in force.
#[derive(Debug)]
pub struct LiveServerVerifier {
    revocation: Arc<Revocation>,
}

impl LiveServerVerifier {
    /// A verifier that follows `revocation`.
    pub fn new(revocation: Arc<Revocation>) -> Self {
        LiveServerVerifier { revocation }
    }
}

impl ServerCertVerifier for LiveServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.revocation.server_verifier().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.revocation
            .server_verifier()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.revocation
            .server_verifier()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.revocation.server_verifier().supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::pki;
    use crate::identity::{DeptId, PeerIdentity};

    /// A federation CA in a temporary directory, with department `tax` issued.
    struct Ca {
        dir: tempfile::TempDir,
        tax: CertificateDer<'static>,
        civil: CertificateDer<'static>,
    }

    fn ca(federation: &str) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        pki::init_federation(federation, dir.path()).unwrap();
        let mut certs = Vec::new();
        for dept in ["tax", "civil"] {
            let who = PeerIdentity::Dept(DeptId::new(dept).unwrap());
            let issued = pki::issue(dir.path(), dir.path(), &who, &["localhost".into()]).unwrap();
            certs.push(CertificateDer::from_pem_file(&issued.cert).unwrap());
        }
        let civil = certs.pop().unwrap();
        let tax = certs.pop().unwrap();
        Ca { dir, tax, civil }
    }

    impl Ca {
        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn crl(&self) -> Vec<CertificateRevocationListDer<'static>> {
            read_crl_file(&self.path().join(pki::CRL)).unwrap()
        }

        fn revoke(&self, dept: &str) -> Vec<CertificateRevocationListDer<'static>> {
            pki::revoke(
                self.path(),
                &self.path().join(format!("{dept}.pem")),
                rcgen::RevocationReason::KeyCompromise,
                time::Duration::days(1),
            )
            .unwrap();
            self.crl()
        }

        /// The revocation state of a gateway trusting this CA, with no CRL yet.
        fn revocation(&self, stale: StalePolicy) -> Arc<Revocation> {
            let ca = CertificateDer::from_pem_file(self.path().join(pki::CA_CERT)).unwrap();
            let mut roots = RootCertStore::empty();
            roots.add(ca.clone()).unwrap();
            let settings = RevocationSettings {
                stale,
                ..RevocationSettings::default()
            };
            Revocation::load(Arc::new(roots), vec![ca], settings).unwrap()
        }
    }

    fn handshake(revocation: &Arc<Revocation>, leaf: &CertificateDer<'_>) -> Result<(), String> {
        handshake_at(revocation, leaf, OffsetDateTime::now_utc())
    }

    /// Both verifiers' verdict on `leaf` in a handshake at `now`.
    fn handshake_at(
        revocation: &Arc<Revocation>,
        leaf: &CertificateDer<'_>,
        now: OffsetDateTime,
    ) -> Result<(), String> {
        let now = UnixTime::since_unix_epoch(Duration::from_secs(now.unix_timestamp() as u64));
        LiveClientVerifier::new(revocation.clone())
            .verify_client_cert(leaf, &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())?;
        LiveServerVerifier::new(revocation.clone())
            .verify_server_cert(
                leaf,
                &[],
                &ServerName::try_from("localhost").unwrap(),
                &[],
                now,
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_new_crl_applies_to_the_next_handshake_of_the_same_verifiers() {
        let ca = ca("fed");
        let revocation = ca.revocation(StalePolicy::FailClosed);
        assert_eq!(handshake(&revocation, &ca.tax), Ok(()));
        assert_eq!(revocation.refuses(&ca.tax), None);

        let applied = revocation.apply(ca.revoke("tax"), "crl.pem").unwrap();
        assert_eq!(
            applied,
            Applied::Replaced {
                number: "1".into(),
                revoked: 1
            }
        );
        let refused = handshake(&revocation, &ca.tax).unwrap_err();
        assert!(refused.to_lowercase().contains("revoked"), "{refused}");
        assert_eq!(
            revocation.refuses(&ca.tax),
            Some("its certificate is revoked")
        );
        assert_eq!(handshake(&revocation, &ca.civil), Ok(()));
        assert_eq!(revocation.refuses(&ca.civil), None);
        assert_eq!(
            revocation.apply(ca.crl(), "crl.pem").unwrap(),
            Applied::Unchanged
        );
    }

    #[test]
    fn a_crl_of_another_ca_is_refused_and_the_last_good_one_stays() {
        let ca = ca("fed");
        let revocation = ca.revocation(StalePolicy::FailClosed);
        revocation.apply(ca.revoke("tax"), "crl.pem").unwrap();

        // The same federation name, hence the same issuer name: only the signature tells.
        let impostor = self::ca("fed");
        let e = revocation
            .apply(impostor.revoke("civil"), "crl.pem")
            .unwrap_err();
        assert!(matches!(e, CrlError::BadSignature { .. }), "{e}");
        assert!(e.to_string().starts_with("crl.pem: "), "{e}");
        let other = self::ca("other");
        let e = revocation
            .apply(other.revoke("civil"), "crl.pem")
            .unwrap_err();
        assert!(matches!(e, CrlError::UnknownIssuer { .. }), "{e}");
        assert!(
            e.to_string().contains("Causeway federation other CA"),
            "{e}"
        );

        assert!(revocation.refuses(&ca.tax).is_some());
        assert_eq!(handshake(&revocation, &ca.civil), Ok(()));
        assert_eq!(revocation.status().number.as_deref(), Some("1"));
    }

    #[test]
    fn an_older_or_conflicting_crl_or_none_at_all_is_refused() {
        let ca = ca("fed");
        // A copy of the CA that signs its own list: the same key, the same numbers.
        let twin = tempfile::tempdir().unwrap();
        for file in [pki::CA_CERT, pki::CA_KEY, "civil.pem"] {
            std::fs::copy(ca.path().join(file), twin.path().join(file)).unwrap();
        }
        let revocation = ca.revocation(StalePolicy::FailClosed);
        pki::refresh_crl(ca.path(), time::Duration::days(1)).unwrap();
        let first = ca.crl();
        let second = ca.revoke("tax");
        revocation.apply(second, "crl.pem").unwrap();
        let e = revocation.apply(first, "crl.pem").unwrap_err();
        assert!(matches!(e, CrlError::RolledBack { .. }), "{e}");
        assert!(
            e.to_string().contains("CRL number 1 is lower than 2"),
            "{e}"
        );
        assert!(revocation.refuses(&ca.tax).is_some());

        let e = revocation.apply(Vec::new(), "crl.pem").unwrap_err();
        assert!(matches!(e, CrlError::Empty { .. }), "{e}");

        // Numbers 1 and 2 again, signed by the CA's key, listing civil instead of tax.
        pki::refresh_crl(twin.path(), time::Duration::days(1)).unwrap();
        pki::revoke(
            twin.path(),
            &twin.path().join("civil.pem"),
            rcgen::RevocationReason::Superseded,
            time::Duration::days(1),
        )
        .unwrap();
        let e = revocation
            .apply(
                read_crl_file(&twin.path().join(pki::CRL)).unwrap(),
                "crl.pem",
            )
            .unwrap_err();
        assert!(matches!(e, CrlError::Conflicting { .. }), "{e}");
        assert!(revocation.refuses(&ca.tax).is_some());
        assert!(revocation.refuses(&ca.civil).is_none());
    }

    #[test]
    fn a_stale_crl_refuses_every_peer_when_failing_closed_and_only_warns_otherwise() {
        let ca = ca("fed");
        pki::refresh_crl(ca.path(), time::Duration::days(1)).unwrap();
        let crl = ca.crl();
        let closed = ca.revocation(StalePolicy::FailClosed);
        let warn = ca.revocation(StalePolicy::Warn);
        closed.apply(crl.clone(), "crl.pem").unwrap();
        warn.apply(crl, "crl.pem").unwrap();
        let now = OffsetDateTime::now_utc();
        assert!(!closed.status_at(now).stale && closed.status_at(now).ready());
        assert_eq!(handshake_at(&closed, &ca.civil, now), Ok(()));

        let later = now + time::Duration::days(2);
        assert!(closed.status_at(later).stale && !closed.status_at(later).ready());
        assert_eq!(
            closed.refuses_at(&ca.civil, later),
            Some("the CRL in force is stale")
        );
        let refused = handshake_at(&closed, &ca.civil, later).unwrap_err();
        assert!(refused.to_lowercase().contains("expired"), "{refused}");
        assert!(warn.status_at(later).stale && warn.status_at(later).ready());
        assert_eq!(warn.refuses_at(&ca.civil, later), None);
        assert_eq!(handshake_at(&warn, &ca.civil, later), Ok(()));
    }

    #[tokio::test]
    async fn a_peer_watch_wakes_when_its_peer_is_revoked_and_not_for_others() {
        let ca = ca("fed");
        let revocation = ca.revocation(StalePolicy::FailClosed);
        let mut tax = revocation.watch_peer(ca.tax.clone());
        let mut civil = revocation.watch_peer(ca.civil.clone());
        revocation.apply(ca.revoke("tax"), "crl.pem").unwrap();
        assert_eq!(tax.refused().await, "its certificate is revoked");
        let civil_woke = tokio::time::timeout(Duration::from_millis(200), civil.refused()).await;
        assert!(civil_woke.is_err(), "civil was not revoked");
        assert_eq!(revocation.status().connections_closed, 1);
    }
}
