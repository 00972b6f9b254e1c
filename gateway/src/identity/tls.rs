//! rustls configurations for peer ports (mutual TLS against the federation's trust bundle) and for
//! the client API (mutual TLS against the department's own application CA), and the gateway's own
//! certificate in force ([`OwnCertificate`]).
//!
//! On peer ports both sides present certificates; servers require one (no anonymous peers),
//! clients verify the server's chain and name and then check that its identity URI is the
//! department they meant to reach.
//!
//! Every configuration built here presents the certificate and key in force at the moment of
//! each handshake: [`OwnCertificate`] is their certificate resolver, as server and as client. A
//! renewed pair written over the `[identity] cert` and `key` files is checked and put in force by
//! [`OwnCertificate::run`] without rebuilding listeners or clients; connections already open keep
//! the pair they were made with.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use time::OffsetDateTime;
use tokio::sync::watch;
use x509_parser::extensions::GeneralName;

use super::revocation::{LiveClientVerifier, LiveServerVerifier, Revocation, RevocationSettings};
use super::PeerIdentity;
use crate::files::{Reread, Rereads};

/// The one crypto provider of the workspace (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A gateway's TLS identity, the federation's trust bundle and the revocation state in force.
#[derive(Debug)]
pub struct TlsMaterial {
    revocation: Arc<Revocation>,
    certificate: Arc<OwnCertificate>,
    /// The private key read at start. [`Self::derived_secret`] derives from it, and keeps doing
    /// so after the certificate and key are renewed: the derived secrets must stay stable for
    /// the life of the process (the QUIC stateless-reset key, for one, is given to quinn once).
    start_key: PrivateKeyDer<'static>,
}

impl TlsMaterial {
    /// Load the CA bundle, optional CRL, certificate chain and private key from PEM files, with
    /// the default revocation settings (the CRL is read once here; [`Revocation::run`] reads it
    /// again). Material loaded this way names no identity, so its certificate is never renewed
    /// in place (an application's or a test client's).
    pub fn load(ca: &Path, crl: Option<&Path>, cert: &Path, key: &Path) -> Result<Self> {
        let settings = RevocationSettings {
            crl: crl.map(Path::to_path_buf),
            ..RevocationSettings::default()
        };
        Self::load_with(ca, settings, cert, key)
    }

    /// [`TlsMaterial::load`] with the CRL and its reload and staleness settings in `revocation`.
    pub fn load_with(
        ca: &Path,
        revocation: RevocationSettings,
        cert: &Path,
        key: &Path,
    ) -> Result<Self> {
        let tls = Self::load_as(ca, revocation, cert, key, None)?;
        tls.check_keys_match()?;
        Ok(tls)
    }

    fn load_as(
        ca: &Path,
        revocation: RevocationSettings,
        cert: &Path,
        key: &Path,
        expected: Option<Expected>,
    ) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        let mut issuers = Vec::new();
        for der in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading CA bundle {}", ca.display()))?
        {
            let der = der.with_context(|| format!("parsing CA bundle {}", ca.display()))?;
            issuers.push(der.clone());
            roots
                .add(der)
                .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "{}: no certificates in the CA bundle",
            ca.display()
        );
        let roots = Arc::new(roots);
        let reload_every = revocation.reload_every;
        let revocation = Revocation::load(roots.clone(), issuers, revocation)?;
        let cert_bytes = std::fs::read(cert)
            .with_context(|| format!("reading certificate {}", cert.display()))?;
        let chain = CertificateDer::pem_slice_iter(&cert_bytes)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing certificate {}", cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "{}: no certificate found",
            cert.display()
        );
        let key_bytes =
            std::fs::read(key).with_context(|| format!("reading private key {}", key.display()))?;
        let start_key = PrivateKeyDer::from_pem_slice(&key_bytes)
            .with_context(|| format!("reading private key {}", key.display()))?;
        // Whether the key matches is checked by the callers, after what says more (whose
        // certificate this is).
        let signing_key = provider()
            .key_provider
            .load_private_key(start_key.clone_key())
            .with_context(|| format!("{}: not a usable private key", key.display()))?;
        let certified = CertifiedKey::new(chain, signing_key);
        let in_force = InForce::new(Arc::new(certified), stamp(&cert_bytes, &key_bytes))
            .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
        let certificate = OwnCertificate::new(
            cert.to_path_buf(),
            key.to_path_buf(),
            expected,
            roots,
            reload_every,
            in_force,
        )?;
        Ok(TlsMaterial {
            revocation,
            certificate: Arc::new(certificate),
            start_key,
        })
    }

    /// The revocation state the peer configurations follow: run it ([`Revocation::run`]) to
    /// reload the CRL, and watch open peer connections with it.
    pub fn revocation(&self) -> &Arc<Revocation> {
        &self.revocation
    }

    /// Our own certificate and key in force: run it ([`OwnCertificate::run`]) to put renewed
    /// files in force without a restart.
    pub fn certificate(&self) -> &Arc<OwnCertificate> {
        &self.certificate
    }

    /// A 32-byte secret derived from our private key for `purpose`: stable across restarts, known
    /// to nobody without the key, and different for every purpose. Always derived from the key
    /// read at start, even after a renewal put a new key in force: a secret must not change
    /// under the parts already holding it (a renewed key changes it at the next restart).
    pub fn derived_secret(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"causeway-derived-secret/v1\n");
        h.update(purpose.as_bytes());
        h.update(b"\n");
        h.update(self.start_key.secret_der());
        h.finalize().into()
    }

    /// Load the files of an `[identity]` section and check that the certificate proves `expected`
    /// in `federation`: a node never starts under someone else's identity. A renewal of these
    /// files must prove the same identity ([`OwnCertificate::reload`]).
    pub fn load_identity(
        files: &super::IdentityFiles,
        federation: &str,
        expected: &PeerIdentity,
    ) -> Result<Self> {
        let tls = TlsMaterial::load_as(
            &files.ca,
            files.revocation(),
            &files.cert,
            &files.key,
            Some(Expected {
                federation: federation.to_owned(),
                identity: expected.clone(),
            }),
        )?;
        match super::identity_from_cert(&tls.leaf(), federation) {
            Ok(ref id) if id == expected => {
                let (from, until) = validity(&tls.leaf())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", files.cert.display()))?;
                let now = time::OffsetDateTime::now_utc();
                anyhow::ensure!(
                    now <= until,
                    "{}: this certificate expired on {until}; a gateway does not start with an expired certificate: renew it (`causeway certs issue`) and start again",
                    files.cert.display()
                );
                anyhow::ensure!(
                    now >= from,
                    "{}: this certificate is not valid before {from}; is this machine's clock right?",
                    files.cert.display()
                );
                tls.check_keys_match()?;
                Ok(tls)
            }
            Ok(other) => anyhow::bail!(
                "{}: this certificate is for {}, but the config says {}; issue the right one with `causeway certs issue`",
                files.cert.display(),
                other.uri(federation),
                expected.uri(federation)
            ),
            Err(e) => anyhow::bail!("{}: {e}", files.cert.display()),
        }
    }

    /// Refuse a key that is not the certificate's (as rustls does, a key type that cannot tell
    /// its public key passes).
    fn check_keys_match(&self) -> Result<()> {
        let in_force = self.certificate.in_force.load();
        match in_force.certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(())
            }
            Err(_) => anyhow::bail!(
                "{}: the certificate does not match its private key {}",
                self.certificate.cert.display(),
                self.certificate.key.display()
            ),
        }
    }

    /// Our own leaf certificate in force.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.certificate.leaf()
    }

    /// When our own certificate in force stops being valid.
    pub fn not_after(&self) -> Result<time::OffsetDateTime, String> {
        Ok(self.certificate.status().not_after)
    }

    /// Server side of a peer port: TLS 1.3 only; a client certificate from the federation is
    /// required, and checked against the CRL in force at each handshake.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
        Ok(Arc::new(
            self.server_config_with(&[&rustls::version::TLS13], alpn)?,
        ))
    }

    /// Server side of the QUIC peer port: the same trust and client-certificate requirement as
    /// [`Self::server_config`], TLS 1.3 only (QUIC requires it), and no 0-RTT (early data could be
    /// replayed, and an exchange must never be).
    pub fn quic_server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
        let mut config = self.server_config_with(&[&rustls::version::TLS13], alpn)?;
        config.max_early_data_size = 0;
        config.send_half_rtt_data = false;
        Ok(Arc::new(config))
    }

    fn server_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Result<ServerConfig> {
        let verifier = Arc::new(LiveClientVerifier::new(self.revocation.clone()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.certificate.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // No session resumption: a resumed session skips the client-certificate check, so a
        // peer revoked after its first handshake could come back on its session. Peer
        // connections are long-lived and pooled, so every handshake may as well be full.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(config)
    }

    /// Server side of the client API: TLS 1.3 only, our own certificate, and client certificates
    /// verified against the department's application CA in `app_ca` (PEM), never the federation's.
    /// A client that presents no certificate still completes the handshake, so that the API can
    /// answer it `401 client-certificate-required`; one that presents a certificate this CA did not
    /// issue (another department's application, say) is refused in the handshake.
    pub fn client_api_config(&self, app_ca: &Path, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(app_ca)
            .with_context(|| format!("reading the application CA {}", app_ca.display()))?
        {
            let der =
                der.with_context(|| format!("parsing the application CA {}", app_ca.display()))?;
            roots
                .add(der)
                .with_context(|| format!("{}: not a usable CA certificate", app_ca.display()))?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "{}: no certificates in the application CA file",
            app_ca.display()
        );
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .context("building the application certificate verifier")?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.certificate.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// Client side towards peers: TLS 1.3 only; the server verified against the federation roots
    /// and the CRL in force at each handshake; our certificate presented.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
        Ok(Arc::new(
            self.client_config_with(&[&rustls::version::TLS13], alpn)?,
        ))
    }

    /// Client side of QUIC towards peers: as [`Self::client_config`], TLS 1.3 only, no 0-RTT.
    pub fn quic_client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
        let mut config = self.client_config_with(&[&rustls::version::TLS13], alpn)?;
        config.enable_early_data = false;
        Ok(Arc::new(config))
    }

    /// An application's side of the client API: TLS 1.3, the gateway verified against the CA
    /// bundle, our (application) certificate presented.
    pub fn application_client_config(&self) -> Result<Arc<ClientConfig>> {
        Ok(Arc::new(self.client_config_with(
            &[&rustls::version::TLS13],
            &[b"http/1.1"],
        )?))
    }

    fn client_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Result<ClientConfig> {
        let verifier = Arc::new(LiveServerVerifier::new(self.revocation.clone()));
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(self.certificate.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // No session resumption: a resumed session skips the server-certificate check (and the
        // CRL in force with it); see `server_config_with`.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }
}

/// The identity a node's certificate must prove, at start and in every renewal.
#[derive(Debug, Clone)]
struct Expected {
    federation: String,
    identity: PeerIdentity,
}

/// A certificate chain and key in force, with what `/readyz` and the logs say about it.
struct InForce {
    certified: Arc<CertifiedKey>,
    /// The leaf's serial number, hex.
    serial: String,
    not_after: OffsetDateTime,
    /// The DNS names and IP addresses the leaf is valid for.
    hosts: BTreeSet<String>,
    /// A digest of the certificate and key files' bytes it was read from.
    stamp: [u8; 32],
}

impl InForce {
    fn new(certified: Arc<CertifiedKey>, stamp: [u8; 32]) -> Result<InForce, String> {
        let leaf = certified.end_entity_cert().map_err(|e| e.to_string())?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("the certificate does not parse: {e}"))?;
        let serial = serial_hex(&parsed);
        let not_after = parsed.validity().not_after.to_datetime();
        let hosts = hosts(&parsed);
        Ok(InForce {
            certified,
            serial,
            not_after,
            hosts,
            stamp,
        })
    }
}

/// Why a renewed certificate and key were not put in force (the pair in force stays).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalError {
    /// A file could not be read.
    #[error("{path}: cannot read: {problem}")]
    Unreadable {
        /// The file.
        path: String,
        /// The OS error.
        problem: String,
    },
    /// The certificate file holds no usable certificate.
    #[error("{cert}: {problem}; write the PEM certificate `causeway certs sign` made")]
    BadCertificate {
        /// The certificate file.
        cert: String,
        /// What is wrong.
        problem: String,
    },
    /// The key file holds no usable private key (the parser's detail is left out: it is a
    /// secret's file).
    #[error("{key}: not a usable PEM private key; write the key `causeway certs request` made")]
    BadKey {
        /// The key file.
        key: String,
    },
    /// The certificate proves no identity of this federation.
    #[error("{cert}: {problem}")]
    NoIdentity {
        /// The certificate file.
        cert: String,
        /// Why.
        problem: String,
    },
    /// The certificate proves another identity than this node's.
    #[error("{cert}: this certificate is for {found}, but this node is {expected}; renew it for {expected} (`causeway certs request`, then `causeway certs sign`)")]
    OtherIdentity {
        /// The certificate file.
        cert: String,
        /// The identity URI it carries.
        found: String,
        /// This node's.
        expected: String,
    },
    /// The certificate has expired.
    #[error("{cert}: this certificate expired on {not_after}; install the renewed one")]
    Expired {
        /// The certificate file.
        cert: String,
        /// Its notAfter.
        not_after: OffsetDateTime,
    },
    /// The certificate is not valid yet.
    #[error("{cert}: this certificate is not valid before {not_before}; send SIGHUP once it is, or check this machine's clock")]
    NotYetValid {
        /// The certificate file.
        cert: String,
        /// Its notBefore.
        not_before: OffsetDateTime,
    },
    /// The certificate does not chain to the federation's CA bundle.
    #[error("{cert}: this certificate does not chain to the federation's CA bundle ({problem}); have the federation operator sign it (`causeway certs sign`)")]
    Untrusted {
        /// The certificate file.
        cert: String,
        /// The verifier's reason.
        problem: String,
    },
    /// The private key is not the certificate's.
    #[error("{key}: this private key does not match the public key of {cert}; install the key the certificate request was made with (or the certificate for this key)")]
    KeyMismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// The certificate leaves out host names the one in force carries.
    #[error("{cert}: this certificate leaves out {hosts}, which the certificate in force carries and peers may reach this node by; request it again with every --host")]
    DropsHosts {
        /// The certificate file.
        cert: String,
        /// The host names and addresses left out.
        hosts: String,
    },
}

/// What [`OwnCertificate::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// The files hold the pair in force (or this material is never renewed): nothing changed.
    Unchanged,
    /// A new pair is in force.
    Replaced {
        /// The new certificate's serial number, hex.
        serial: String,
        /// Its notAfter.
        not_after: OffsetDateTime,
    },
}

/// A snapshot for `/readyz` and `/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertificateStatus {
    /// The certificate file.
    pub cert: String,
    /// The serial number of the certificate in force, hex.
    pub serial: String,
    /// When the certificate in force expires.
    #[serde(skip)]
    pub not_after: OffsetDateTime,
    /// Renewed pairs put in force since start.
    pub rotations: u64,
    /// Renewed pairs refused since start.
    pub refusals: u64,
    /// Why the files on disk were last refused (the pair in force stayed), until a pair is put
    /// in force or the files hold the pair in force again.
    pub last_refusal: Option<String>,
}

/// The gateway's own certificate chain and private key in force: what every new handshake
/// presents, as server (peer ports, client API) and as client (to peers). The rustls
/// configurations hold it as their certificate resolver, which costs one atomic load per
/// handshake; [`OwnCertificate::reload`] swaps in a renewed pair whole, after checking it.
pub struct OwnCertificate {
    cert: PathBuf,
    key: PathBuf,
    /// The identity every renewal must prove; `None`: never renewed.
    expected: Option<Expected>,
    /// The federation's trust bundle (without CRLs), which a renewal must chain to.
    trust: Arc<dyn ClientCertVerifier>,
    reload_every: Duration,
    in_force: ArcSwap<InForce>,
    /// Held while files are checked and swapped in, so two reloads cannot interleave.
    reloading: Mutex<()>,
    /// A digest of the files' bytes last read (`None`: unreadable), to re-check only what changed.
    last_read: Mutex<Option<[u8; 32]>>,
    last_refusal: Mutex<Option<String>>,
    rotations: AtomicU64,
    refusals: AtomicU64,
}

impl std::fmt::Debug for OwnCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnCertificate")
            .field("cert", &self.cert)
            .field("serial", &self.in_force.load().serial)
            .finish_non_exhaustive()
    }
}

impl OwnCertificate {
    fn new(
        cert: PathBuf,
        key: PathBuf,
        expected: Option<Expected>,
        roots: Arc<RootCertStore>,
        reload_every: Duration,
        in_force: InForce,
    ) -> Result<OwnCertificate> {
        let trust = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .context("building the verifier of this node's own certificate")?;
        let stamp = in_force.stamp;
        Ok(OwnCertificate {
            cert,
            key,
            expected,
            trust,
            reload_every,
            in_force: ArcSwap::from_pointee(in_force),
            reloading: Mutex::new(()),
            last_read: Mutex::new(Some(stamp)),
            last_refusal: Mutex::new(None),
            rotations: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        })
    }

    /// The leaf certificate in force.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.in_force.load().certified.cert[0].clone()
    }

    /// The state for `/readyz` and `/metrics`.
    pub fn status(&self) -> CertificateStatus {
        let in_force = self.in_force.load();
        CertificateStatus {
            cert: self.cert.display().to_string(),
            serial: in_force.serial.clone(),
            not_after: in_force.not_after,
            rotations: self.rotations.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
            last_refusal: lock(&self.last_refusal).clone(),
        }
    }

    /// Read the certificate and key files and put them in force if they hold a new pair that
    /// proves this node's identity, chains to the federation's CA bundle, is valid now, and
    /// whose key is the certificate's (and which still names every host the pair in force
    /// does). Otherwise the pair in force stays, and the refusal is recorded for `/readyz`
    /// (cleared by the next pair put in force, or files found holding the pair in force). New
    /// handshakes present a new pair at once; open connections keep theirs.
    pub fn reload(&self) -> Result<Renewal, RenewalError> {
        self.reload_at(OffsetDateTime::now_utc())
    }

    fn reload_at(&self, now: OffsetDateTime) -> Result<Renewal, RenewalError> {
        let Some(expected) = &self.expected else {
            return Ok(Renewal::Unchanged);
        };
        let _reloading = lock(&self.reloading);
        let result = match self.read_files() {
            Ok((cert, key)) => {
                let stamp = stamp(&cert, &key);
                *lock(&self.last_read) = Some(stamp);
                self.renew(expected, &cert, &key, stamp, now)
            }
            Err(e) => {
                *lock(&self.last_read) = None;
                Err(e)
            }
        };
        let mut last_refusal = lock(&self.last_refusal);
        match &result {
            Ok(_) => *last_refusal = None,
            Err(e) => {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                *last_refusal = Some(e.to_string());
            }
        }
        result
    }

    /// Check the pair in `cert` and `key` (the files' bytes) and swap it in.
    fn renew(
        &self,
        expected: &Expected,
        cert: &[u8],
        key: &[u8],
        stamp: [u8; 32],
        now: OffsetDateTime,
    ) -> Result<Renewal, RenewalError> {
        let current = self.in_force.load_full();
        if stamp == current.stamp {
            return Ok(Renewal::Unchanged);
        }
        let cert_path = self.cert.display().to_string();
        let key_path = self.key.display().to_string();
        let bad_cert = |problem: String| RenewalError::BadCertificate {
            cert: cert_path.clone(),
            problem,
        };
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(format!("not a PEM certificate chain ({e})")))?;
        let Some(leaf) = chain.first() else {
            return Err(bad_cert("no certificate found".to_owned()));
        };
        let bad_key = || RenewalError::BadKey {
            key: key_path.clone(),
        };
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| bad_key())?;

        match super::identity_from_cert(leaf, &expected.federation) {
            Ok(found) if found == expected.identity => {}
            Ok(found) => {
                return Err(RenewalError::OtherIdentity {
                    cert: cert_path,
                    found: found.uri(&expected.federation),
                    expected: expected.identity.uri(&expected.federation),
                })
            }
            Err(e) => {
                return Err(RenewalError::NoIdentity {
                    cert: cert_path,
                    problem: e.to_string(),
                })
            }
        }
        let (not_before, not_after) = validity(leaf).map_err(bad_cert)?;
        if now > not_after {
            return Err(RenewalError::Expired {
                cert: cert_path,
                not_after,
            });
        }
        if now < not_before {
            return Err(RenewalError::NotYetValid {
                cert: cert_path,
                not_before,
            });
        }
        let at = UnixTime::since_unix_epoch(Duration::from_secs(
            now.unix_timestamp().max(0).unsigned_abs(),
        ));
        self.trust
            .verify_client_cert(leaf, &chain[1..], at)
            .map_err(|e| RenewalError::Untrusted {
                cert: cert_path.clone(),
                problem: e.to_string(),
            })?;
        let signing_key = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|_| bad_key())?;
        let certified = CertifiedKey::new(chain, signing_key);
        // Unknown consistency (a key type that cannot tell its public key) is refused too: a
        // renewal must be shown to match before it replaces a pair that works.
        certified
            .keys_match()
            .map_err(|_| RenewalError::KeyMismatch {
                cert: cert_path.clone(),
                key: key_path,
            })?;
        let next = InForce::new(Arc::new(certified), stamp).map_err(bad_cert)?;
        let dropped: Vec<&str> = current
            .hosts
            .difference(&next.hosts)
            .map(String::as_str)
            .collect();
        if !dropped.is_empty() {
            return Err(RenewalError::DropsHosts {
                cert: cert_path,
                hosts: dropped.join(", "),
            });
        }
        let renewal = Renewal::Replaced {
            serial: next.serial.clone(),
            not_after: next.not_after,
        };
        self.in_force.store(Arc::new(next));
        self.rotations.fetch_add(1, Ordering::Relaxed);
        Ok(renewal)
    }

    /// The certificate and key files' bytes.
    fn read_files(&self) -> Result<(Vec<u8>, Vec<u8>), RenewalError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| RenewalError::Unreadable {
                path: path.display().to_string(),
                problem: e.to_string(),
            })
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    /// Whether the files hold other bytes than those last read.
    fn files_changed(&self) -> bool {
        let now = self.read_files().ok().map(|(cert, key)| stamp(&cert, &key));
        *lock(&self.last_read) != now
    }

    /// Read the certificate and key files again every `[identity] crl_reload_secs` (when their
    /// bytes changed) and on SIGHUP, and [`reload`](Self::reload) them, logging what was put in
    /// force or why not, until `stop` turns true. Does nothing for material that names no
    /// identity ([`TlsMaterial::load`]).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        if self.expected.is_none() {
            return;
        }
        let mut rereads = Rereads::new("certificate", self.reload_every, stop);
        while let Some(why) = rereads.next().await {
            if why == Reread::Poll && !self.files_changed() {
                continue;
            }
            match self.reload() {
                Ok(Renewal::Unchanged) => {}
                Ok(Renewal::Replaced { serial, not_after }) => tracing::info!(
                    cert = %self.cert.display(), serial = %serial, not_after = %not_after,
                    "renewed certificate in force: new handshakes present it; open connections keep the previous one"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "renewed certificate refused; the certificate in force stays"
                ),
            }
        }
    }
}

impl ResolvesServerCert for OwnCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.in_force.load().certified.clone())
    }
}

impl ResolvesClientCert for OwnCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.in_force.load().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The serial number of a DER certificate, hex, as `/readyz` shows it (`certificate.serial`).
pub fn serial(cert: &CertificateDer<'_>) -> Result<String, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    Ok(serial_hex(&parsed))
}

/// A certificate's serial number: the integer's big-endian bytes in hex, as `openssl x509 -serial`
/// shows it (in lowercase).
fn serial_hex(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    hex::encode(cert.serial.to_bytes_be())
}

/// The DNS names and IP addresses in a certificate's subjectAltName.
fn hosts(cert: &x509_parser::certificate::X509Certificate<'_>) -> BTreeSet<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip)
                    .ok()
                    .map(|ip| std::net::IpAddr::from(ip).to_string()),
                16 => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|ip| std::net::IpAddr::from(ip).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A digest of a certificate file's and a key file's bytes: equal digests, equal files.
fn stamp(cert: &[u8], key: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A certificate's validity window: `notBefore` and `notAfter`.
fn validity(
    cert: &CertificateDer<'_>,
) -> Result<(time::OffsetDateTime, time::OffsetDateTime), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let validity = parsed.validity();
    Ok((
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use rustls::client::ResolvesClientCert;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};

    use super::super::{pki, DeptId, IdentityFiles, PeerIdentity};
    use super::{Renewal, RenewalError, TlsMaterial};

    fn dept(id: &str) -> PeerIdentity {
        PeerIdentity::Dept(DeptId::new(id).unwrap())
    }

    /// The `[identity]` files of department `id` whose CA and files are in `dir`.
    fn identity_files(dir: &Path, id: &str) -> IdentityFiles {
        IdentityFiles {
            ca: dir.join("ca.pem"),
            crl: None,
            crl_reload_secs: 30,
            crl_stale: Default::default(),
            cert: dir.join(format!("{id}.pem")),
            key: dir.join(format!("{id}.key")),
            signing_key: dir.join(format!("{id}.signing.key")),
            witness_key: None,
            tag_key: None,
            tag_root: None,
            pseudonym_key: None,
        }
    }

    /// A federation `demo` in a temporary directory, with `tax-office` and `civil-registry`
    /// issued for `localhost`, and the tax office's gateway material loaded.
    fn federation() -> (tempfile::TempDir, IdentityFiles, TlsMaterial) {
        let dir = tempfile::tempdir().unwrap();
        pki::init_federation("demo", dir.path()).unwrap();
        for id in ["tax-office", "civil-registry"] {
            pki::issue(dir.path(), dir.path(), &dept(id), &["localhost".into()]).unwrap();
        }
        let files = identity_files(dir.path(), "tax-office");
        let tls = TlsMaterial::load_identity(&files, "demo", &dept("tax-office")).unwrap();
        (dir, files, tls)
    }

    /// Write the certificate and key `issued` over the tax office's files; the new leaf.
    fn install(issued: &pki::Issued, files: &IdentityFiles) -> CertificateDer<'static> {
        std::fs::copy(&issued.cert, &files.cert).unwrap();
        std::fs::copy(&issued.key, &files.key).unwrap();
        CertificateDer::from_pem_file(&files.cert).unwrap()
    }

    /// A fresh certificate and key for `who` from the CA in `ca`, for `localhost`.
    fn renewal(ca: &Path, who: &str) -> (tempfile::TempDir, pki::Issued) {
        let out = tempfile::tempdir().unwrap();
        let issued = pki::issue(ca, out.path(), &dept(who), &["localhost".into()]).unwrap();
        (out, issued)
    }

    /// An in-memory TLS 1.3 handshake between `server` and `client` (for `localhost`): the
    /// certificates each side was shown (the server's, the client's).
    fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client, name).unwrap();
        let mut server = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..20 {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            let mut incoming = &flight[..];
            while !incoming.is_empty() {
                server.read_tls(&mut incoming).unwrap();
                server.process_new_packets().unwrap();
            }
            let mut flight = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut flight).unwrap();
            }
            let mut incoming = &flight[..];
            while !incoming.is_empty() {
                client.read_tls(&mut incoming).unwrap();
                client.process_new_packets().unwrap();
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        (
            client.peer_certificates().unwrap()[0].clone().into_owned(),
            server.peer_certificates().unwrap()[0].clone().into_owned(),
        )
    }

    #[test]
    fn a_renewed_pair_is_presented_by_configurations_built_before_it() {
        let (dir, files, tax) = federation();
        let civil = TlsMaterial::load_identity(
            &identity_files(dir.path(), "civil-registry"),
            "demo",
            &dept("civil-registry"),
        )
        .unwrap();
        let (tax_server, tax_client) = (
            tax.server_config(&[b"h2"]).unwrap(),
            tax.client_config(&[b"h2"]).unwrap(),
        );
        let (civil_server, civil_client) = (
            civil.server_config(&[b"h2"]).unwrap(),
            civil.client_config(&[b"h2"]).unwrap(),
        );
        let old = tax.leaf();
        let secret = tax.derived_secret("quic-stateless-reset");
        assert_eq!(handshake(tax_server.clone(), civil_client.clone()).0, old);

        let (_out, issued) = renewal(dir.path(), "tax-office");
        let new = install(&issued, &files);
        let renewal = tax.certificate().reload().unwrap();
        let Renewal::Replaced { serial, .. } = renewal else {
            panic!("not put in force: {renewal:?}");
        };
        assert_eq!(serial, super::serial(&new).unwrap());
        assert_ne!(serial, super::serial(&old).unwrap());
        assert_eq!(tax.leaf(), new);
        // As server and as client, with the configurations built before the renewal.
        assert_eq!(handshake(tax_server, civil_client).0, new);
        assert_eq!(handshake(civil_server, tax_client).1, new);
        let status = tax.certificate().status();
        assert_eq!((status.rotations, status.refusals), (1, 0));
        assert_eq!(status.serial, serial);
        assert_eq!(tax.certificate().reload().unwrap(), Renewal::Unchanged);
        // Derived secrets stay those of the key read at start.
        assert_eq!(tax.derived_secret("quic-stateless-reset"), secret);
    }

    #[test]
    fn a_renewal_that_does_not_prove_this_node_is_refused_and_the_pair_in_force_stays() {
        let (dir, files, tax) = federation();
        let old = tax.leaf();
        let certificate = tax.certificate();
        let now = time::OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        let refused = |what: &str| {
            let error = certificate.reload().unwrap_err();
            assert_eq!(tax.leaf(), old, "{what}: the pair in force changed");
            let status = certificate.status();
            assert_eq!(status.last_refusal, Some(error.to_string()), "{what}");
            assert_eq!(status.rotations, 0, "{what}");
            error
        };

        // A renewed certificate with the key in force (the key the request was made with lost).
        let (_a, issued) = renewal(dir.path(), "tax-office");
        std::fs::copy(&issued.cert, &files.cert).unwrap();
        let e = refused("mismatched key");
        assert!(matches!(e, RenewalError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("tax-office.key"), "{e}");

        // The same identity, from another CA of the same federation name.
        let other = tempfile::tempdir().unwrap();
        pki::init_federation("demo", other.path()).unwrap();
        let (_b, issued) = renewal(other.path(), "tax-office");
        install(&issued, &files);
        let e = refused("another CA");
        assert!(matches!(e, RenewalError::Untrusted { .. }), "{e}");

        // Another department's certificate and key, from the federation CA.
        let (_c, issued) = renewal(dir.path(), "civil-registry");
        install(&issued, &files);
        let e = refused("another identity");
        assert!(matches!(e, RenewalError::OtherIdentity { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("causeway://demo/dept/civil-registry"),
            "{e}"
        );

        // Expired, and not valid yet.
        let out = tempfile::tempdir().unwrap();
        let who = dept("tax-office");
        let hosts = ["localhost".to_owned()];
        let issued = pki::issue_for(
            dir.path(),
            out.path(),
            &who,
            &hosts,
            (now - 30 * day, now - day),
        )
        .unwrap();
        install(&issued, &files);
        let e = refused("expired");
        assert!(matches!(e, RenewalError::Expired { .. }), "{e}");
        let issued = pki::issue_for(
            dir.path(),
            out.path(),
            &who,
            &hosts,
            (now + day, now + 30 * day),
        )
        .unwrap();
        install(&issued, &files);
        let e = refused("not yet valid");
        assert!(matches!(e, RenewalError::NotYetValid { .. }), "{e}");

        // Without the host name peers reach this gateway by.
        let issued = pki::issue(dir.path(), out.path(), &who, &[]).unwrap();
        install(&issued, &files);
        let e = refused("hosts dropped");
        assert!(matches!(e, RenewalError::DropsHosts { .. }), "{e}");
        assert!(e.to_string().contains("localhost"), "{e}");

        // A key file that is not a key: refused without quoting it.
        let (_d, issued) = renewal(dir.path(), "tax-office");
        install(&issued, &files);
        std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n").unwrap();
        let e = refused("not a key");
        assert!(matches!(e, RenewalError::BadKey { .. }), "{e}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        assert_eq!(certificate.status().refusals, 7);

        // The good pair: in force, and the refusal cleared.
        install(&issued, &files);
        assert!(matches!(
            certificate.reload().unwrap(),
            Renewal::Replaced { .. }
        ));
        let status = certificate.status();
        assert_eq!(status.last_refusal, None);
        assert_eq!((status.rotations, status.refusals), (1, 7));
        // A resolver hands out the new pair.
        let resolved = ResolvesClientCert::resolve(&**certificate, &[], &[]).unwrap();
        assert_eq!(resolved.cert[0], tax.leaf());
        assert_ne!(tax.leaf(), old);
    }

    #[test]
    fn a_certificate_and_a_key_that_do_not_match_do_not_load() {
        let (dir, files, _) = federation();
        let civil = identity_files(dir.path(), "civil-registry");
        let e = TlsMaterial::load(&files.ca, None, &files.cert, &civil.key).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let mismatched = IdentityFiles {
            key: civil.key.clone(),
            ..files.clone()
        };
        let e = TlsMaterial::load_identity(&mismatched, "demo", &dept("tax-office")).unwrap_err();
        assert!(e.to_string().contains("civil-registry.key"), "{e}");
        // Someone else's certificate is named as such first, whatever the key.
        let theirs = IdentityFiles {
            cert: civil.cert.clone(),
            ..files
        };
        let e = TlsMaterial::load_identity(&theirs, "demo", &dept("tax-office")).unwrap_err();
        assert!(
            e.to_string()
                .contains("is for causeway://demo/dept/civil-registry"),
            "{e}"
        );
    }

    #[test]
    fn material_that_names_no_identity_is_never_renewed() {
        let (dir, files, _) = federation();
        let tls =
            TlsMaterial::load(&dir.path().join("ca.pem"), None, &files.cert, &files.key).unwrap();
        let old = tls.leaf();
        let (_out, issued) = renewal(dir.path(), "civil-registry");
        install(&issued, &files);
        assert_eq!(tls.certificate().reload().unwrap(), Renewal::Unchanged);
        assert_eq!(tls.leaf(), old);
    }

    #[test]
    fn a_gateway_does_not_start_with_an_expired_certificate() {
        let dir = tempfile::tempdir().unwrap();
        pki::init_federation("demo", dir.path()).unwrap();
        let who = PeerIdentity::Dept(DeptId::new("tax-office").unwrap());
        let files = |dir: &std::path::Path| IdentityFiles {
            ca: dir.join("ca.pem"),
            crl: None,
            crl_reload_secs: 30,
            crl_stale: Default::default(),
            cert: dir.join("tax-office.pem"),
            key: dir.join("tax-office.key"),
            signing_key: dir.join("tax-office.signing.key"),
            witness_key: None,
            tag_key: None,
            tag_root: None,
            pseudonym_key: None,
        };
        let now = time::OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        let hosts = ["localhost".to_owned()];
        pki::issue_for(
            dir.path(),
            dir.path(),
            &who,
            &hosts,
            (now - 30 * day, now - day),
        )
        .unwrap();
        let error = TlsMaterial::load_identity(&files(dir.path()), "demo", &who).unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
        pki::issue_for(
            dir.path(),
            dir.path(),
            &who,
            &hosts,
            (now + day, now + 30 * day),
        )
        .unwrap();
        let error = TlsMaterial::load_identity(&files(dir.path()), "demo", &who).unwrap_err();
        assert!(error.to_string().contains("not valid before"), "{error}");
        pki::issue(dir.path(), dir.path(), &who, &hosts).unwrap();
        assert!(TlsMaterial::load_identity(&files(dir.path()), "demo", &who).is_ok());
    }
}
