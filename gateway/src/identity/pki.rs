//! The federation's certificate authority: `causeway certs init` and `causeway certs issue`.
//!
//! The CA certificate names its federation in a `causeway://<federation>` subjectAltName URI, so
//! that issuing needs no other input. Every private key is written 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use rcgen::{CertificateRevocationListParams, RevocationReason, RevokedCertParams, SerialNumber};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::num_bigint::BigUint;
use x509_parser::prelude::FromDer;

use super::revocation::Crl;
use super::{write_secret, AppId, DeptId, GatewayKey, PeerIdentity, TagRoot, IDENTITY_SCHEME};

/// File names inside a certificate directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The tag root every department's tag key is derived from: held by the oversight nodes only.
pub const TAG_ROOT: &str = "tag-root.key";
/// The federation operator's directory signing key (0600): signs the published directory.
pub const DIRECTORY_KEY: &str = "directory.key";
/// Its verifier key, which every gateway names in `directory_key`.
pub const DIRECTORY_VKEY: &str = "directory.vkey";
/// The CA's certificate revocation list (PEM), written by `causeway certs revoke` and
/// `causeway certs crl`, published to every gateway as its `[identity] crl`.
pub const CRL: &str = "crl.pem";
/// How long a CRL is valid by default: publish a fresh one (`causeway certs crl`) before then.
pub const CRL_VALIDITY_DAYS: i64 = 30;

/// Paths of what `issue` wrote.
#[derive(Debug, Clone)]
pub struct Issued {
    /// TLS certificate (PEM).
    pub cert: PathBuf,
    /// TLS private key (PEM, 0600).
    pub key: PathBuf,
    /// Ed25519 note signing key (0600).
    pub signing_key: PathBuf,
    /// Ed25519 witness key (0600), independent of the signing key.
    pub witness_key: PathBuf,
    /// The note verifier key to list in `federation.toml`.
    pub vkey: String,
    /// The log origin (note signer name).
    pub origin: String,
    /// The witness (cosigner) verifier key to list in `federation.toml`.
    pub witness_vkey: String,
}

/// Create a federation CA and the oversight nodes' tag root in `out`. Refuses to overwrite an
/// existing CA.
pub fn init_federation(federation: &str, out: &Path) -> Result<()> {
    super::DeptId::new(federation).context("federation name")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ca_key_path = out.join(CA_KEY);
    if ca_key_path.exists() {
        bail!(
            "{} already exists: this directory already holds a federation CA (remove it first to start over)",
            ca_key_path.display()
        );
    }
    new_ca(
        &format!("Causeway federation {federation} CA"),
        &format!("{IDENTITY_SCHEME}{federation}"),
        &out.join(CA_CERT),
        &ca_key_path,
    )?;
    write_secret(
        &out.join(TAG_ROOT),
        TagRoot::generate().to_file_contents().as_bytes(),
    )?;
    directory_key(federation, out)?;
    Ok(())
}

/// Create the federation operator's directory signing key in `out` (`directory.key`, 0600, and
/// `directory.vkey`), named `<federation>/directory`; an existing one is kept. Returns its vkey.
pub fn directory_key(federation: &str, out: &Path) -> Result<String> {
    let (key_path, vkey_path) = (out.join(DIRECTORY_KEY), out.join(DIRECTORY_VKEY));
    let key = if key_path.exists() {
        GatewayKey::load(&key_path)?
    } else {
        let key = GatewayKey::new(
            &format!("{federation}/directory"),
            SigningKey::generate(&mut rand::rngs::OsRng),
        )?;
        write_secret(&key_path, key.to_file_contents().as_bytes())?;
        key
    };
    std::fs::write(&vkey_path, format!("{}\n", key.vkey()))?;
    Ok(key.vkey())
}

/// Derive department `dept`'s tag key of `version` from the tag root at `root` and write it to
/// `<out>/<dept>.tag.key` (0600), for the department. Returns the path written.
pub fn tag_key(
    root: &Path,
    federation: &str,
    dept: &DeptId,
    version: u32,
    out: &Path,
) -> Result<PathBuf> {
    if !(1..=super::MAX_TAG_KEY_VERSION).contains(&version) {
        bail!(
            "the tag key version must be from 1 to {}",
            super::MAX_TAG_KEY_VERSION
        );
    }
    let root = TagRoot::load(root)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("{dept}.tag.key"));
    write_secret(
        &path,
        root.department_key_file(federation, dept, version)
            .as_bytes(),
    )?;
    Ok(path)
}

/// Read the federation name from a CA certificate written by [`init_federation`].
pub fn federation_of_ca(ca_pem: &str) -> Result<String> {
    let params =
        CertificateParams::from_ca_cert_pem(ca_pem).context("parsing the CA certificate")?;
    for san in &params.subject_alt_names {
        if let SanType::URI(uri) = san {
            if let Some(name) = uri.as_str().strip_prefix(IDENTITY_SCHEME) {
                return Ok(name.to_owned());
            }
        }
    }
    bail!("the CA certificate has no {IDENTITY_SCHEME}<federation> URI: was it made by `causeway certs init`?")
}

/// The federation CA of a certificate directory, ready to sign.
struct FederationCa {
    /// `ca.pem` as written by `causeway certs init`.
    der: CertificateDer<'static>,
    /// The CA re-created from its own parameters and key: the same issuer name and key, so what
    /// it signs chains to the original `ca.pem`.
    cert: rcgen::Certificate,
    key: KeyPair,
    federation: String,
}

impl FederationCa {
    fn open(ca_dir: &Path) -> Result<FederationCa> {
        let ca_pem_path = ca_dir.join(CA_CERT);
        let ca_pem = std::fs::read_to_string(&ca_pem_path).with_context(|| {
            format!(
                "reading {} (run `causeway certs init` first)",
                ca_pem_path.display()
            )
        })?;
        let ca_key_path = ca_dir.join(CA_KEY);
        let ca_key_pem = std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("reading {}", ca_key_path.display()))?;
        let federation = federation_of_ca(&ca_pem)?;
        let key = KeyPair::from_pem(&ca_key_pem)
            .with_context(|| format!("parsing {}", ca_key_path.display()))?;
        let cert = CertificateParams::from_ca_cert_pem(&ca_pem)?.self_signed(&key)?;
        let der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .with_context(|| format!("parsing {}", ca_pem_path.display()))?;
        Ok(FederationCa {
            der,
            cert,
            key,
            federation,
        })
    }
}

/// Issue a TLS certificate and an Ed25519 signing key for `who`, signed by the CA in `ca_dir`.
///
/// `hosts` are DNS names or IP addresses the gateway is reached at (SANs for server authentication).
pub fn issue(ca_dir: &Path, out: &Path, who: &PeerIdentity, hosts: &[String]) -> Result<Issued> {
    issue_for(ca_dir, out, who, hosts, validity(397))
}

/// [`issue`], valid from and until the given times.
pub(crate) fn issue_for(
    ca_dir: &Path,
    out: &Path,
    who: &PeerIdentity,
    hosts: &[String],
    window: (time::OffsetDateTime, time::OffsetDateTime),
) -> Result<Issued> {
    let ca = FederationCa::open(ca_dir)?;
    let (file_stem, origin) = names(&ca.federation, who);
    let params = leaf_params(&ca.federation, who, hosts, window)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.cert, &ca.key)?;

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let issued = Issued {
        cert: out.join(format!("{file_stem}.pem")),
        key: out.join(format!("{file_stem}.key")),
        signing_key: out.join(format!("{file_stem}.signing.key")),
        witness_key: out.join(format!("{file_stem}.witness.key")),
        vkey: String::new(),
        origin: origin.clone(),
        witness_vkey: String::new(),
    };
    std::fs::write(&issued.cert, cert.pem())?;
    write_secret(&issued.key, key.serialize_pem().as_bytes())?;
    let (vkey, witness_vkey) = new_note_keys(&origin, &issued.signing_key, &issued.witness_key)?;
    Ok(Issued {
        vkey,
        witness_vkey,
        ..issued
    })
}

/// A new log signing key and a new, independent witness key for `origin`, written 0600; their
/// verifier keys (for the directory).
fn new_note_keys(origin: &str, signing_key: &Path, witness_key: &Path) -> Result<(String, String)> {
    let log = GatewayKey::new(origin, SigningKey::generate(&mut rand::rngs::OsRng))?;
    write_secret(signing_key, log.to_file_contents().as_bytes())?;
    let witness = GatewayKey::new(
        &format!("{origin}/witness"),
        SigningKey::generate(&mut rand::rngs::OsRng),
    )?;
    write_secret(witness_key, witness.to_file_contents().as_bytes())?;
    Ok((log.vkey(), witness.to_cosigner().verifier().to_vkey()))
}

/// The file stem and the log origin of `who`.
fn names(federation: &str, who: &PeerIdentity) -> (String, String) {
    match who {
        PeerIdentity::Dept(id) => (id.to_string(), format!("{federation}/{id}")),
        PeerIdentity::Oversight(id) => (
            format!("oversight-{id}"),
            format!("{federation}/oversight/{id}"),
        ),
    }
}

/// What a gateway certificate for `who` holds: its identity URI and the host names it is reached
/// at, for server and client authentication, valid in `window`.
fn leaf_params(
    federation: &str,
    who: &PeerIdentity,
    hosts: &[String],
    (not_before, not_after): (time::OffsetDateTime, time::OffsetDateTime),
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names(federation, who).0);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(who.uri(federation).try_into()?)];
    for host in hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.clone()
                    .try_into()
                    .with_context(|| format!("host {host:?}"))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

/// What [`request`] wrote: the department keeps the keys; it sends the request and the verifier
/// keys to the federation operator.
#[derive(Debug, Clone)]
pub struct Requested {
    /// The certificate signing request (PEM), for `causeway certs sign`.
    pub csr: PathBuf,
    /// The TLS private key (PEM, 0600): stays here.
    pub key: PathBuf,
    /// The Ed25519 note signing key (0600): stays here.
    pub signing_key: PathBuf,
    /// The Ed25519 witness key (0600), independent of the signing key: stays here.
    pub witness_key: PathBuf,
    /// The note verifier key to list in the directory.
    pub vkey: String,
    /// The witness verifier key to list in the directory.
    pub witness_vkey: String,
    /// Both verifier keys as a file for the operator (`<stem>.pub.toml`, public), which
    /// `causeway federation add --keys` reads.
    pub public: PathBuf,
}

/// Enrollment, the department's half: create the TLS key and the note signing key in `out` (they
/// never leave it) and a certificate signing request for `who` and `hosts`. The federation is read
/// from the CA certificate `ca_pem` (the operator's public `ca.pem`).
pub fn request(
    ca_pem: &Path,
    out: &Path,
    who: &PeerIdentity,
    hosts: &[String],
) -> Result<Requested> {
    let federation = federation_of_ca(&std::fs::read_to_string(ca_pem).with_context(|| {
        format!(
            "reading the federation's CA certificate {}",
            ca_pem.display()
        )
    })?)?;
    let (file_stem, origin) = names(&federation, who);
    let params = leaf_params(&federation, who, hosts, validity(397))?;
    let key = KeyPair::generate()?;
    let csr = params
        .serialize_request(&key)
        .context("making the certificate signing request")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let requested = Requested {
        csr: out.join(format!("{file_stem}.csr.pem")),
        key: out.join(format!("{file_stem}.key")),
        signing_key: out.join(format!("{file_stem}.signing.key")),
        witness_key: out.join(format!("{file_stem}.witness.key")),
        vkey: String::new(),
        witness_vkey: String::new(),
        public: out.join(format!("{file_stem}.pub.toml")),
    };
    for path in [
        &requested.key,
        &requested.signing_key,
        &requested.witness_key,
    ] {
        if path.exists() {
            bail!(
                "{} already exists: keep it, or remove it first to make new keys",
                path.display()
            );
        }
    }
    std::fs::write(&requested.csr, csr.pem()?)?;
    write_secret(&requested.key, key.serialize_pem().as_bytes())?;
    let (vkey, witness_vkey) =
        new_note_keys(&origin, &requested.signing_key, &requested.witness_key)?;
    std::fs::write(
        &requested.public,
        format!("# The public keys of {origin}, for `causeway federation add --keys`.\nvkey = \"{vkey}\"\nwitness = \"{witness_vkey}\"\n"),
    )?;
    Ok(Requested {
        vkey,
        witness_vkey,
        ..requested
    })
}

/// Enrollment, the operator's half: issue the certificate a department's request asks for, if it
/// asks for exactly `who`'s identity (and host names): a request for another department's, or for
/// anything else, is refused. The certificate's contents come from here, not from the request:
/// only its public key and host names are taken. Writes `<out>/<stem>.pem`.
pub fn sign(ca_dir: &Path, csr: &Path, who: &PeerIdentity, out: &Path) -> Result<PathBuf> {
    let ca = FederationCa::open(ca_dir)?;
    let text = std::fs::read_to_string(csr)
        .with_context(|| format!("reading the certificate signing request {}", csr.display()))?;
    let request = rcgen::CertificateSigningRequestParams::from_pem(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a certificate signing request with a valid signature ({e})",
            csr.display()
        )
    })?;
    let wanted = who.uri(&ca.federation);
    let mut hosts = Vec::new();
    let mut asks_for_wanted = false;
    for san in &request.params.subject_alt_names {
        match san {
            SanType::URI(uri) if uri.as_str() == wanted => asks_for_wanted = true,
            SanType::URI(uri) => bail!(
                "{}: the request asks for {}, but it may only carry {wanted}: refused",
                csr.display(),
                uri.as_str()
            ),
            SanType::DnsName(name) => hosts.push(name.as_str().to_owned()),
            SanType::IpAddress(ip) => hosts.push(ip.to_string()),
            other => bail!(
                "{}: the request asks for a name of a kind a gateway certificate does not carry ({other:?}): refused",
                csr.display()
            ),
        }
    }
    if !asks_for_wanted {
        bail!(
            "{}: the request does not carry {wanted}; make it with `causeway certs request` for that identity",
            csr.display()
        );
    }
    let params = leaf_params(&ca.federation, who, &hosts, validity(397))?;
    let cert = rcgen::CertificateSigningRequestParams {
        params,
        public_key: request.public_key,
    }
    .signed_by(&ca.cert, &ca.key)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("{}.pem", names(&ca.federation, who).0));
    std::fs::write(&path, cert.pem())?;
    Ok(path)
}

/// The department's application CA in `dir`: `<dept>-apps-ca.pem` (what the client API trusts)
/// and its key `<dept>-apps-ca.key` (0600), which stays with the department.
pub fn app_ca_paths(dir: &Path, dept: &DeptId) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{dept}-apps-ca.pem")),
        dir.join(format!("{dept}-apps-ca.key")),
    )
}

/// Paths of what [`issue_app`] wrote.
#[derive(Debug, Clone)]
pub struct IssuedApp {
    /// The application's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, 0600).
    pub key: PathBuf,
    /// The department's application CA certificate, which the client API trusts.
    pub ca: PathBuf,
}

/// Issue a client certificate for application `app` of department `dept`, signed by the
/// department's application CA in `ca_dir` (created there first if it does not exist yet; its key
/// never leaves the department). The certificate's subjectAltName is the application's URI, and it
/// is for client authentication only. `federation` is read from the federation CA in `ca_dir`.
pub fn issue_app(ca_dir: &Path, out: &Path, dept: &DeptId, app: &AppId) -> Result<IssuedApp> {
    let federation_ca = ca_dir.join(CA_CERT);
    let federation =
        federation_of_ca(&std::fs::read_to_string(&federation_ca).with_context(|| {
            format!(
                "reading {} (run `causeway certs init` first)",
                federation_ca.display()
            )
        })?)?;
    let (ca_pem_path, ca_key_path) = app_ca_paths(ca_dir, dept);
    if !ca_key_path.exists() {
        new_ca(
            &format!("Causeway {federation}/{dept} application CA"),
            &format!("{IDENTITY_SCHEME}{federation}/dept/{dept}/apps"),
            &ca_pem_path,
            &ca_key_path,
        )?;
    }
    let ca_pem = std::fs::read_to_string(&ca_pem_path)
        .with_context(|| format!("reading {}", ca_pem_path.display()))?;
    let ca_key = KeyPair::from_pem(
        &std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("reading {}", ca_key_path.display()))?,
    )
    .with_context(|| format!("parsing {}", ca_key_path.display()))?;
    let ca_cert = CertificateParams::from_ca_cert_pem(&ca_pem)?.self_signed(&ca_key)?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{dept}/{app}"));
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(app.uri(&federation, dept).try_into()?)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (not_before, not_after) = validity(397);
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let issued = IssuedApp {
        cert: out.join(format!("{dept}-app-{app}.pem")),
        key: out.join(format!("{dept}-app-{app}.key")),
        ca: ca_pem_path,
    };
    std::fs::write(&issued.cert, cert.pem())?;
    write_secret(&issued.key, key.serialize_pem().as_bytes())?;
    Ok(issued)
}

/// A self-signed CA (ten years, may sign end-entity certificates only) named `common_name`, with
/// `uri` as its subjectAltName: its certificate to `cert`, its key to `key` (0600).
fn new_ca(common_name: &str, uri: &str, cert: &Path, key: &Path) -> Result<()> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    let (not_before, not_after) = validity(3650);
    params.not_before = not_before;
    params.not_after = not_after;
    let pair = KeyPair::generate()?;
    let signed = params.self_signed(&pair)?;
    write_secret(key, pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, signed.pem())?;
    Ok(())
}

/// What `causeway certs revoke` or `causeway certs crl` wrote.
#[derive(Debug, Clone)]
pub struct CrlWritten {
    /// The CRL file (`crl.pem` in the CA directory).
    pub path: PathBuf,
    /// Its CRL number (one more than the previous CRL's).
    pub number: String,
    /// Certificates it revokes.
    pub revoked: usize,
    /// When it goes stale: publish the next one before.
    pub next_update: time::OffsetDateTime,
}

/// Read a reason code as RFC 5280 (section 5.3.1) names it: `keyCompromise`, `cACompromise`,
/// `affiliationChanged`, `superseded`, `cessationOfOperation`, `privilegeWithdrawn` or
/// `unspecified` (any case).
pub fn revocation_reason(name: &str) -> Result<RevocationReason> {
    const REASONS: &[(&str, RevocationReason)] = &[
        ("unspecified", RevocationReason::Unspecified),
        ("keyCompromise", RevocationReason::KeyCompromise),
        ("cACompromise", RevocationReason::CaCompromise),
        ("affiliationChanged", RevocationReason::AffiliationChanged),
        ("superseded", RevocationReason::Superseded),
        (
            "cessationOfOperation",
            RevocationReason::CessationOfOperation,
        ),
        ("privilegeWithdrawn", RevocationReason::PrivilegeWithdrawn),
    ];
    REASONS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, r)| *r)
        .with_context(|| {
            format!(
                "unknown revocation reason {name:?}: use one of {}",
                REASONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn reason_from_code(code: u8) -> Option<RevocationReason> {
    Some(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => return None,
    })
}

/// Revoke the certificate in the PEM file `cert`, which the federation CA in `ca_dir` must have
/// issued: add its serial number to the CA's list and write `crl.pem` there, signed by the CA,
/// numbered one above the previous CRL, valid for `valid_for`. Revoking a certificate already on
/// the list keeps its first revocation time and re-signs. Returns what was written and the
/// identity the certificate carried.
pub fn revoke(
    ca_dir: &Path,
    cert: &Path,
    reason: RevocationReason,
    valid_for: time::Duration,
) -> Result<(CrlWritten, String)> {
    let ca = FederationCa::open(ca_dir)?;
    let der = CertificateDer::from_pem_file(cert)
        .with_context(|| format!("{}: not a PEM certificate", cert.display()))?;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
        .map_err(|e| anyhow::anyhow!("{}: not a valid X.509 certificate: {e}", cert.display()))?;
    let (_, ca_parsed) = x509_parser::certificate::X509Certificate::from_der(ca.der.as_ref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca_dir.join(CA_CERT).display()))?;
    if der == ca.der {
        bail!(
            "{}: this is the federation CA's own certificate; to retire the CA, replace the trust bundle instead",
            cert.display()
        );
    }
    let issued_here = parsed.issuer().as_raw() == ca_parsed.subject().as_raw()
        && parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .is_ok();
    if !issued_here {
        bail!(
            "{}: this certificate was not issued by the federation CA in {} (its issuer is \"{}\"); revoke it with the CA that issued it",
            cert.display(),
            ca_dir.display(),
            parsed.issuer()
        );
    }
    let who = super::identity_from_cert(der.as_ref(), &ca.federation)
        .map(|id| id.uri(&ca.federation))
        .unwrap_or_else(|_| parsed.subject().to_string());
    let serial = parsed.serial.to_bytes_be();
    let (mut entries, number) = read_crl(ca_dir, &ca)?;
    if !entries.iter().any(|e| e.serial_number.to_bytes() == serial) {
        entries.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: time::OffsetDateTime::now_utc(),
            reason_code: Some(reason),
            invalidity_date: None,
        });
    }
    let written = write_crl(ca_dir, &ca, entries, number + 1u32, valid_for)?;
    Ok((written, who))
}

/// Re-sign the CA's CRL in `ca_dir` with the same revoked certificates, one number higher and
/// valid for `valid_for` from now (the first one, empty, if there is none yet). Gateways refuse a
/// CRL past its `nextUpdate` (under `crl_stale = "fail-closed"`), so publish one before.
pub fn refresh_crl(ca_dir: &Path, valid_for: time::Duration) -> Result<CrlWritten> {
    let ca = FederationCa::open(ca_dir)?;
    let (entries, number) = read_crl(ca_dir, &ca)?;
    write_crl(ca_dir, &ca, entries, number + 1u32, valid_for)
}

/// The entries and number of the CA's current `crl.pem` (none and 0 if there is none), checked to
/// be signed by this CA.
fn read_crl(ca_dir: &Path, ca: &FederationCa) -> Result<(Vec<RevokedCertParams>, BigUint)> {
    let path = ca_dir.join(CRL);
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), BigUint::from(0u32)))
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let der = CertificateRevocationListDer::from_pem_slice(&pem)
        .with_context(|| format!("{}: not a PEM CRL", path.display()))?;
    let crl = Crl::verify(
        der.clone(),
        std::slice::from_ref(&ca.der),
        &path.display().to_string(),
    )?;
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(der.as_ref())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let entries = parsed
        .iter_revoked_certificates()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(&r.serial().to_bytes_be()),
            revocation_time: r.revocation_date.to_datetime(),
            reason_code: r
                .reason_code()
                .and_then(|(_, code)| reason_from_code(code.0)),
            invalidity_date: None,
        })
        .collect();
    Ok((entries, crl.number().clone()))
}

/// Sign and write `crl.pem` (atomically: a gateway reading it never sees half a file).
fn write_crl(
    ca_dir: &Path,
    ca: &FederationCa,
    entries: Vec<RevokedCertParams>,
    number: BigUint,
    valid_for: time::Duration,
) -> Result<CrlWritten> {
    if valid_for <= time::Duration::ZERO {
        bail!("a CRL must be valid for some time: give --next-update-days 1 or more");
    }
    let now = time::OffsetDateTime::now_utc();
    let revoked = entries.len();
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + valid_for,
        crl_number: SerialNumber::from_slice(&number.to_bytes_be()),
        issuing_distribution_point: None,
        revoked_certs: entries,
        key_identifier_method: ca.cert.params().key_identifier_method.clone(),
    };
    let crl = params
        .signed_by(&ca.cert, &ca.key)
        .context("signing the CRL")?;
    let path = ca_dir.join(CRL);
    let partial = ca_dir.join(format!("{CRL}.partial"));
    std::fs::write(&partial, crl.pem()?)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(CrlWritten {
        path,
        number: number.to_string(),
        revoked,
        next_update: now + valid_for,
    })
}

fn validity(days: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(days),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::revocation_list::CertificateRevocationList;

    fn dept(id: &str) -> PeerIdentity {
        PeerIdentity::Dept(DeptId::new(id).unwrap())
    }

    fn serial_of(pem: &Path) -> Vec<u8> {
        let der = CertificateDer::from_pem_file(pem).unwrap();
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref()).unwrap();
        cert.serial.to_bytes_be()
    }

    /// A CRL as a standard parser reads it back.
    struct ReadBack {
        number: BigUint,
        /// Serial numbers and reason codes, in order.
        entries: Vec<(Vec<u8>, Option<u8>)>,
        /// From thisUpdate to nextUpdate.
        validity: time::Duration,
    }

    /// The CRL in `dir`, with its signature checked against the CA certificate in `ca`.
    fn read_back(dir: &Path, ca: &Path) -> ReadBack {
        let der = CertificateRevocationListDer::from_pem_file(dir.join(CRL)).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(der.as_ref()).unwrap();
        let ca = CertificateDer::from_pem_file(ca.join(CA_CERT)).unwrap();
        let (_, ca) = x509_parser::certificate::X509Certificate::from_der(ca.as_ref()).unwrap();
        crl.verify_signature(ca.public_key())
            .expect("the CRL is signed by the CA's key");
        assert_eq!(crl.issuer().as_raw(), ca.subject().as_raw());
        assert_eq!(crl.version(), Some(x509_parser::x509::X509Version::V2));
        ReadBack {
            number: crl.crl_number().unwrap().clone(),
            entries: crl
                .iter_revoked_certificates()
                .map(|r| (r.serial().to_bytes_be(), r.reason_code().map(|(_, c)| c.0)))
                .collect(),
            validity: crl.next_update().unwrap().to_datetime() - crl.last_update().to_datetime(),
        }
    }

    #[test]
    fn revoking_writes_a_numbered_crl_signed_by_the_ca_and_revocations_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path();
        init_federation("fed", ca).unwrap();
        let tax = issue(ca, ca, &dept("tax"), &[]).unwrap();
        let civil = issue(ca, ca, &dept("civil"), &[]).unwrap();

        let (written, who) = revoke(
            ca,
            &tax.cert,
            revocation_reason("keyCompromise").unwrap(),
            time::Duration::days(30),
        )
        .unwrap();
        assert_eq!(who, "causeway://fed/dept/tax");
        assert_eq!((written.number.as_str(), written.revoked), ("1", 1));
        let crl = read_back(ca, ca);
        assert_eq!(crl.number, BigUint::from(1u32));
        assert_eq!(crl.entries, vec![(serial_of(&tax.cert), Some(1))]);
        assert_eq!(crl.validity, time::Duration::days(30));

        revoke(
            ca,
            &civil.cert,
            revocation_reason("superseded").unwrap(),
            time::Duration::days(7),
        )
        .unwrap();
        let crl = read_back(ca, ca);
        assert_eq!(crl.number, BigUint::from(2u32));
        assert_eq!(
            crl.entries,
            vec![
                (serial_of(&tax.cert), Some(1)),
                (serial_of(&civil.cert), Some(4))
            ]
        );
        assert_eq!(crl.validity, time::Duration::days(7));
        let entries = crl.entries;

        // Revoking again changes nothing but the number; re-signing keeps every entry.
        revoke(
            ca,
            &tax.cert,
            RevocationReason::Superseded,
            time::Duration::days(1),
        )
        .unwrap();
        let written = refresh_crl(ca, time::Duration::days(90)).unwrap();
        assert_eq!((written.number.as_str(), written.revoked), ("4", 2));
        let crl = read_back(ca, ca);
        assert_eq!(crl.number, BigUint::from(4u32));
        assert_eq!(crl.entries, entries);
        assert_eq!(crl.validity, time::Duration::days(90));
    }

    #[test]
    fn the_first_crl_is_empty_and_a_crl_needs_a_validity() {
        let dir = tempfile::tempdir().unwrap();
        init_federation("fed", dir.path()).unwrap();
        let written = refresh_crl(dir.path(), time::Duration::days(30)).unwrap();
        assert_eq!((written.number.as_str(), written.revoked), ("1", 0));
        let crl = read_back(dir.path(), dir.path());
        assert_eq!((crl.number, crl.entries), (BigUint::from(1u32), vec![]));
        let e = refresh_crl(dir.path(), time::Duration::ZERO).unwrap_err();
        assert!(
            e.to_string().contains("--next-update-days 1 or more"),
            "{e}"
        );
    }

    #[test]
    fn only_certificates_of_this_ca_are_revoked_here() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        init_federation("fed", ours.path()).unwrap();
        // Another CA of the same name: only the signature tells them apart.
        init_federation("fed", theirs.path()).unwrap();
        let stranger = issue(theirs.path(), theirs.path(), &dept("tax"), &[]).unwrap();
        let e = revoke(
            ours.path(),
            &stranger.cert,
            RevocationReason::KeyCompromise,
            time::Duration::days(1),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("was not issued by the federation CA in"), "{e}");
        assert!(e.contains("revoke it with the CA that issued it"), "{e}");
        let e = revoke(
            ours.path(),
            &ours.path().join(CA_CERT),
            RevocationReason::KeyCompromise,
            time::Duration::days(1),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the federation CA's own certificate"), "{e}");
        assert!(!ours.path().join(CRL).exists(), "nothing was written");

        // A crl.pem of another CA in the directory is not built upon.
        std::fs::copy(
            {
                refresh_crl(theirs.path(), time::Duration::days(1)).unwrap();
                theirs.path().join(CRL)
            },
            ours.path().join(CRL),
        )
        .unwrap();
        let e = refresh_crl(ours.path(), time::Duration::days(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("its signature does not verify"), "{e}");
    }

    #[test]
    fn reasons_are_read_by_their_rfc_names() {
        assert_eq!(
            revocation_reason("keyCompromise").unwrap(),
            RevocationReason::KeyCompromise
        );
        assert_eq!(
            revocation_reason("CESSATIONOFOPERATION").unwrap(),
            RevocationReason::CessationOfOperation
        );
        let e = revocation_reason("stolen").unwrap_err().to_string();
        assert!(e.contains("keyCompromise"), "{e}");
    }
}
