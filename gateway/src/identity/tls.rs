//! rustls configurations for peer ports (mutual TLS against the federation's trust bundle) and for
//! the client API (mutual TLS against the department's own application CA).
//!
//! On peer ports both sides present certificates; servers require one (no anonymous peers),
//! clients verify the server's chain and name and then check that its identity URI is the
//! department they meant to reach.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::revocation::{LiveClientVerifier, LiveServerVerifier, Revocation, RevocationSettings};

/// The one crypto provider of the workspace (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A gateway's TLS identity, the federation's trust bundle and the revocation state in force.
#[derive(Debug)]
pub struct TlsMaterial {
    revocation: Arc<Revocation>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsMaterial {
    /// Load the CA bundle, optional CRL, certificate chain and private key from PEM files, with
    /// the default revocation settings (the CRL is read once here; [`Revocation::run`] reads it
    /// again).
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
        let revocation = Revocation::load(roots, issuers, revocation)?;
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("reading certificate {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing certificate {}", cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "{}: no certificate found",
            cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading private key {}", key.display()))?;
        Ok(TlsMaterial {
            revocation,
            chain,
            key,
        })
    }

    /// The revocation state the peer configurations follow: run it ([`Revocation::run`]) to
    /// reload the CRL, and watch open peer connections with it.
    pub fn revocation(&self) -> &Arc<Revocation> {
        &self.revocation
    }

    /// A 32-byte secret derived from our private key for `purpose`: stable across restarts, known
    /// to nobody without the key, and different for every purpose.
    pub fn derived_secret(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"causeway-derived-secret/v1\n");
        h.update(purpose.as_bytes());
        h.update(b"\n");
        h.update(self.key.secret_der());
        h.finalize().into()
    }

    /// Load the files of an `[identity]` section and check that the certificate proves `expected`
    /// in `federation`: a node never starts under someone else's identity.
    pub fn load_identity(
        files: &super::IdentityFiles,
        federation: &str,
        expected: &super::PeerIdentity,
    ) -> Result<Self> {
        let tls = TlsMaterial::load_with(&files.ca, files.revocation(), &files.cert, &files.key)?;
        match super::identity_from_cert(tls.leaf(), federation) {
            Ok(ref id) if id == expected => {
                let (from, until) = validity(tls.leaf())
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

    /// Our own leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// When our own certificate stops being valid.
    pub fn not_after(&self) -> Result<time::OffsetDateTime, String> {
        validity(self.leaf()).map(|(_, until)| until)
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
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .context("the certificate does not match its private key")?;
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
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .context("the certificate does not match its private key")?;
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
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .context("the certificate does not match its private key")?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // No session resumption: a resumed session skips the server-certificate check (and the
        // CRL in force with it); see `server_config_with`.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }
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
    use super::super::{pki, DeptId, IdentityFiles, PeerIdentity};
    use super::TlsMaterial;

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
