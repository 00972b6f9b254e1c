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

use super::{write_secret, AppId, DeptId, GatewayKey, PeerIdentity, TagRoot, IDENTITY_SCHEME};

/// File names inside a certificate directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The tag root every department's tag key is derived from: held by the oversight nodes only.
pub const TAG_ROOT: &str = "tag-root.key";

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
    Ok(())
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
    let ca = Ca::open(ca_dir)?;
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

/// The federation CA, opened to sign.
struct Ca {
    federation: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn open(ca_dir: &Path) -> Result<Ca> {
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
        // Re-creating the CA certificate from its own parameters and key yields the same issuer
        // name and key, so certificates signed here chain to the original ca.pem.
        let cert = CertificateParams::from_ca_cert_pem(&ca_pem)?.self_signed(&key)?;
        Ok(Ca {
            federation,
            cert,
            key,
        })
    }
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
    let ca = Ca::open(ca_dir)?;
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

fn validity(days: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(days),
    )
}
