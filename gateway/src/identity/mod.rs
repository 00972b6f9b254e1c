//! Who is speaking: department and oversight identities, read from certificates only.
//!
//! A peer's identity is the `causeway://<federation>/dept/<id>` (or `/oversight/<id>`) URI in the
//! subjectAltName of the certificate it presented in the TLS handshake. Nothing else (CN, headers,
//! envelope fields) is ever trusted for identity. This module also owns the key files a gateway
//! keeps on disk: the federation CA (in [`pki`]), TLS keys, the Ed25519 signing key, the tag key,
//! and the revocation list every handshake is checked against ([`revocation`]).

pub mod pki;
pub mod revocation;
pub mod tls;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::SigningKey;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use causeway_ledger::note::{NoteSigner, NoteVerifier};

/// URI scheme of identities in certificates.
pub const IDENTITY_SCHEME: &str = "causeway://";

/// `[identity]`: certificates and keys.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFiles {
    /// The federation's CA bundle (PEM).
    pub ca: PathBuf,
    /// An optional CRL (PEM, one per CA of the bundle), honoured on every handshake and read
    /// again every `crl_reload_secs` and on SIGHUP (docs/OPERATIONS.md, "Revoking a department").
    pub crl: Option<PathBuf>,
    /// How often the CRL file, and the `cert` and `key` files, are read again, in seconds.
    #[serde(default = "default_crl_reload_secs")]
    pub crl_reload_secs: u64,
    /// What to do while the CRL in force is past its `nextUpdate`: `"fail-closed"` (refuse every
    /// peer) or `"warn"`.
    #[serde(default)]
    pub crl_stale: revocation::StalePolicy,
    /// This gateway's certificate (PEM). A renewed one written here is put in force without a
    /// restart (docs/OPERATIONS.md, "Renewing a certificate").
    pub cert: PathBuf,
    /// This gateway's TLS private key (PEM), renewed with `cert`.
    pub key: PathBuf,
    /// This gateway's Ed25519 signing key (note secret key form).
    pub signing_key: PathBuf,
    /// This department's tag key (HMAC key for the subject and officer tags it writes). Required
    /// for a department gateway; on an oversight node, an optional legacy federation-wide key
    /// whose bare tags it still searches.
    #[serde(default)]
    pub tag_key: Option<PathBuf>,
    /// Oversight nodes only: the tag root every department's tag key is derived from. A
    /// department gateway refuses to start with one.
    #[serde(default)]
    pub tag_root: Option<PathBuf>,
    /// This gateway's witness key (C2SP cosignature/v1), independent of its log key: a leaked log
    /// key then cannot also forge this gateway's cosignatures. Configurations from before it
    /// existed omit it, and the witness key is derived from the signing key.
    #[serde(default)]
    pub witness_key: Option<PathBuf>,
    /// This department's own secret for `hash`-mask pseudonyms (default: `pseudonym.key` in the
    /// ledger directory, created 0600 on first start). Nobody else ever needs it.
    #[serde(default)]
    pub pseudonym_key: Option<PathBuf>,
}

fn default_crl_reload_secs() -> u64 {
    revocation::DEFAULT_RELOAD_SECS
}

impl IdentityFiles {
    /// The witness key this gateway cosigns its peers' checkpoints with: the file `witness_key`
    /// names (its key name must be the log's origin plus `/witness`), or one derived from `key`.
    pub fn witness_cosigner(
        &self,
        key: &GatewayKey,
    ) -> Result<causeway_ledger::note::Cosigner, IdentityError> {
        let Some(path) = &self.witness_key else {
            return Ok(key.derived_witness_cosigner());
        };
        let witness = GatewayKey::load(path)?;
        let name = format!("{}/witness", key.note.name());
        if witness.note.name() != name {
            return Err(IdentityError::KeyFile {
                path: path.display().to_string(),
                problem: format!(
                    "this witness key is named {:?}, but this gateway's must be {name:?}",
                    witness.note.name()
                ),
            });
        }
        Ok(witness.to_cosigner())
    }

    /// The revocation settings of this section.
    pub fn revocation(&self) -> revocation::RevocationSettings {
        revocation::RevocationSettings {
            crl: self.crl.clone(),
            reload_every: std::time::Duration::from_secs(self.crl_reload_secs.max(1)),
            stale: self.crl_stale,
        }
    }

    /// Where the pseudonym key is: as configured, or beside the ledger.
    pub fn pseudonym_key(&self, ledger_dir: &Path) -> PathBuf {
        self.pseudonym_key
            .clone()
            .unwrap_or_else(|| ledger_dir.join("pseudonym.key"))
    }
}

/// Read a 32-byte secret (64 hex characters) from `path`, or create it there (0600, random) if the
/// file does not exist yet.
pub fn load_or_create_secret(path: &Path) -> Result<[u8; 32], IdentityError> {
    let bad = |problem: String| IdentityError::KeyFile {
        path: path.display().to_string(),
        problem,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => key_bytes(text.trim()).map_err(bad),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::RngCore;
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create: {e}")))?;
            }
            write_secret(path, format!("{}\n", hex::encode(key)).as_bytes())
                .map_err(|e| bad(format!("cannot create: {e}")))?;
            Ok(key)
        }
        Err(e) => Err(bad(format!("cannot read: {e}"))),
    }
}

/// A department id: lowercase ASCII letters, digits and `-`, 1 to 63 characters.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct DeptId(String);

/// Whether `id` is 1 to 63 lowercase ASCII letters, digits and `-`, not starting with `-`: the form
/// of department, oversight node and application ids.
fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

impl DeptId {
    /// Validate and wrap a department id.
    pub fn new(id: &str) -> Result<Self, IdentityError> {
        if is_valid_id(id) {
            Ok(DeptId(id.to_owned()))
        } else {
            Err(IdentityError::BadId(id.chars().take(80).collect()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeptId {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeptId::new(&s)
    }
}

impl From<DeptId> for String {
    fn from(d: DeptId) -> String {
        d.0
    }
}

impl fmt::Display for DeptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client application registered with its department's gateway: the same form as a department
/// id. Its certificate, issued by the department's application CA, names it in a
/// `causeway://<federation>/dept/<dept>/app/<id>` subjectAltName URI.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

impl AppId {
    /// Validate and wrap an application id.
    pub fn new(id: &str) -> Result<Self, IdentityError> {
        if is_valid_id(id) {
            Ok(AppId(id.to_owned()))
        } else {
            Err(IdentityError::BadId(id.chars().take(80).collect()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SAN URI of this application of department `dept` in `federation`.
    pub fn uri(&self, federation: &str, dept: &DeptId) -> String {
        format!("{IDENTITY_SCHEME}{federation}/dept/{dept}/app/{}", self.0)
    }
}

impl TryFrom<String> for AppId {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AppId::new(&s)
    }
}

impl From<AppId> for String {
    fn from(a: AppId) -> String {
        a.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read the application an application certificate names, requiring it to be one of department
/// `dept` in `federation`. The certificate's chain was verified in the handshake against the
/// department's application CA; this only reads the name.
pub fn application_from_cert(
    der: &[u8],
    federation: &str,
    dept: &DeptId,
) -> Result<AppId, IdentityError> {
    let prefix = format!("{IDENTITY_SCHEME}{federation}/dept/{dept}/app/");
    let mut found = None;
    for uri in identity_uris(der, federation)? {
        let Some(app) = uri.strip_prefix(&prefix) else {
            continue;
        };
        if found.is_some() {
            return Err(IdentityError::AmbiguousIdentity);
        }
        found = Some(AppId::new(app)?);
    }
    found.ok_or_else(|| IdentityError::NoApplication {
        expected: format!("{prefix}<id>"),
    })
}

/// The identity a certificate proves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerIdentity {
    /// A department gateway.
    Dept(DeptId),
    /// An oversight node.
    Oversight(DeptId),
}

impl PeerIdentity {
    /// The SAN URI for this identity in `federation`.
    pub fn uri(&self, federation: &str) -> String {
        match self {
            PeerIdentity::Dept(id) => format!("{IDENTITY_SCHEME}{federation}/dept/{id}"),
            PeerIdentity::Oversight(id) => format!("{IDENTITY_SCHEME}{federation}/oversight/{id}"),
        }
    }
}

/// Why an identity or key could not be established.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// An id that is not lowercase letters, digits and dashes.
    #[error("invalid id {0:?}: use 1-63 lowercase letters, digits and '-'")]
    BadId(String),
    /// The certificate could not be parsed.
    #[error("the peer certificate is not valid X.509")]
    BadCertificate,
    /// No usable identity URI.
    #[error("the certificate carries no {IDENTITY_SCHEME}{0}/dept/<id> or /oversight/<id> URI in its subjectAltName")]
    NoIdentity(String),
    /// No application identity URI of this department.
    #[error("the client certificate names no application of this department: it needs a subjectAltName URI {expected} (issue it with `causeway certs issue-app`)")]
    NoApplication {
        /// The URI form expected.
        expected: String,
    },
    /// More than one identity URI.
    #[error(
        "the certificate carries more than one causeway identity URI; issue it with exactly one"
    )]
    AmbiguousIdentity,
    /// A key file that cannot be used.
    #[error("{path}: {problem}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Read the Causeway identity from a DER certificate, requiring it to belong to `federation`.
pub fn identity_from_cert(der: &[u8], federation: &str) -> Result<PeerIdentity, IdentityError> {
    let mut found = None;
    for uri in identity_uris(der, federation)? {
        let rest = &uri[IDENTITY_SCHEME.len()..];
        if found.is_some() {
            return Err(IdentityError::AmbiguousIdentity);
        }
        found = Some(parse_identity_path(rest, federation)?);
    }
    found.ok_or_else(|| IdentityError::NoIdentity(federation.to_owned()))
}

/// The `causeway://` URIs in a DER certificate's subjectAltName.
fn identity_uris(der: &[u8], federation: &str) -> Result<Vec<String>, IdentityError> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|_| IdentityError::BadCertificate)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| IdentityError::BadCertificate)?
        .ok_or_else(|| IdentityError::NoIdentity(federation.to_owned()))?;
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(IDENTITY_SCHEME) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect())
}

fn parse_identity_path(rest: &str, federation: &str) -> Result<PeerIdentity, IdentityError> {
    let mut parts = rest.split('/');
    let (Some(fed), Some(kind), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::NoIdentity(federation.to_owned()));
    };
    if fed != federation {
        return Err(IdentityError::NoIdentity(federation.to_owned()));
    }
    let id = DeptId::new(id)?;
    match kind {
        "dept" => Ok(PeerIdentity::Dept(id)),
        "oversight" => Ok(PeerIdentity::Oversight(id)),
        _ => Err(IdentityError::NoIdentity(federation.to_owned())),
    }
}

/// A gateway's Ed25519 key: signs checkpoints (as a note signer) and envelopes.
#[derive(Clone)]
pub struct GatewayKey {
    note: std::sync::Arc<NoteSigner>,
    key: SigningKey,
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GatewayKey({})", self.note.name())
    }
}

impl GatewayKey {
    /// A key whose note signer name (the log origin) is `origin`.
    pub fn new(origin: &str, key: SigningKey) -> Result<Self, IdentityError> {
        let note = NoteSigner::new(origin, key.clone()).map_err(|e| IdentityError::KeyFile {
            path: origin.to_owned(),
            problem: format!("bad key name: {e}"),
        })?;
        Ok(GatewayKey {
            note: std::sync::Arc::new(note),
            key,
        })
    }

    /// The checkpoint signer.
    pub fn note_signer(&self) -> &NoteSigner {
        &self.note
    }

    /// An owned checkpoint signer, for the ledger writer.
    pub fn to_note_signer(&self) -> NoteSigner {
        NoteSigner::new(self.note.name(), self.key.clone())
            .expect("the name was valid when this key was made")
    }

    /// The raw Ed25519 key, for envelope signatures.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// This key as a witness cosigner (C2SP cosignature/v1), for a witness key file.
    pub fn to_cosigner(&self) -> causeway_ledger::note::Cosigner {
        causeway_ledger::note::Cosigner::new(self.note.name(), self.key.clone())
            .expect("the name was valid when this key was made")
    }

    /// The witness key (C2SP cosignature/v1) of a configuration without a witness key file:
    /// derived from the signing key under a separate label, so it is never the same Ed25519 key,
    /// but it leaks with it. Its name is `<origin>/witness`.
    pub fn derived_witness_cosigner(&self) -> causeway_ledger::note::Cosigner {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"causeway-witness-key/v1\n");
        h.update(self.key.as_bytes());
        let seed: [u8; 32] = h.finalize().into();
        causeway_ledger::note::Cosigner::new(
            &format!("{}/witness", self.note.name()),
            SigningKey::from_bytes(&seed),
        )
        .expect("a valid origin plus /witness is a valid key name")
    }

    /// Its public half in vkey form, as listed in `federation.toml`.
    pub fn vkey(&self) -> String {
        self.note.verifier().to_vkey()
    }

    /// The key file's contents (Go note secret-key form, `PRIVATE+KEY+name+keyid+key`).
    pub fn to_file_contents(&self) -> String {
        format!("{}\n", self.note.to_skey())
    }

    /// Read a signing key file written by `causeway certs issue`.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let bad = |problem: String| IdentityError::KeyFile {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let note = NoteSigner::from_skey(text.trim())
            .map_err(|e| bad(format!("not a signing key: {e}")))?;
        // PRIVATE+KEY+name+keyid+key: names hold no '+', but base64 keys may.
        let raw = text
            .trim()
            .splitn(5, '+')
            .nth(4)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| bad("malformed key".into()))?;
        let seed: [u8; 32] = raw
            .get(1..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("the Ed25519 seed must be 32 bytes".into()))?;
        Ok(GatewayKey {
            note: std::sync::Arc::new(note),
            key: SigningKey::from_bytes(&seed),
        })
    }
}

/// Write `contents` to `path`, readable by the owner only (0600).
pub fn write_secret(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// Parse a note verifier key (vkey) from the federation directory.
pub fn parse_vkey(vkey: &str) -> Result<NoteVerifier, String> {
    vkey.parse::<NoteVerifier>().map_err(|e| e.to_string())
}

/// A department's tag key: HMAC-SHA256 key for the officer and data-subject tags this department
/// writes. Each department has its own (no department can compute another's tags); oversight nodes
/// derive every department's key from the [`TagRoot`] they hold. Keys are versioned so they can
/// rotate: a tag names the version of the key that made it (`2:` + hex). Version 0 is the single
/// federation-wide key of earlier releases, whose tags are bare hex.
#[derive(Clone)]
pub struct TagKey {
    version: u32,
    /// HMAC keyed once: its padded-key blocks are hashed here, not again for every tag.
    keyed: hmac::Hmac<sha2::Sha256>,
}

impl fmt::Debug for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagKey(version {}, ..)", self.version)
    }
}

/// Largest tag key version accepted (rotations are rare; this bounds what oversight derives).
pub const MAX_TAG_KEY_VERSION: u32 = 9999;

impl TagKey {
    fn new(version: u32, key: &[u8; 32]) -> Self {
        use hmac::Mac;
        let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        TagKey { version, keyed }
    }

    /// The key's version, named in every tag it makes (0: the legacy federation-wide key).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Read a department tag key file: `VERSION:` and 64 hex characters (bare hex: a legacy
    /// federation-wide key, version 0).
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let bad = |problem: String| IdentityError::KeyFile {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let text = text.trim();
        let (version, hex_key) = match text.split_once(':') {
            Some((v, k)) => (
                v.parse::<u32>()
                    .ok()
                    .filter(|v| (1..=MAX_TAG_KEY_VERSION).contains(v))
                    .ok_or_else(|| {
                        bad(format!(
                            "expected VERSION:KEY with a version from 1 to {MAX_TAG_KEY_VERSION}"
                        ))
                    })?,
                k,
            ),
            None => (0, text),
        };
        Ok(TagKey::new(version, &key_bytes(hex_key).map_err(bad)?))
    }

    /// The file form: `VERSION:` and the hex key.
    fn to_file_contents(&self, key: &[u8; 32]) -> String {
        format!("{}:{}\n", self.version, hex::encode(key))
    }

    /// The keyed tag of `value` in `domain` (e.g. "subject", "officer"): the key's version, `:`,
    /// and the hex HMAC-SHA256 of `domain \n value` (bare hex under the legacy key).
    pub fn tag(&self, domain: &str, value: &str) -> String {
        use hmac::Mac;
        let mut mac = self.keyed.clone();
        mac.update(domain.as_bytes());
        mac.update(b"\n");
        mac.update(value.as_bytes());
        let mut hex_digest = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut hex_digest)
            .expect("64 hex digits hold 32 bytes");
        let hex_digest = std::str::from_utf8(&hex_digest).expect("hex is ASCII");
        match self.version {
            0 => hex_digest.to_owned(),
            v => {
                use fmt::Write;
                let mut tag = String::with_capacity(70);
                write!(tag, "{v}:{hex_digest}").expect("writing to a String cannot fail");
                tag
            }
        }
    }
}

/// Whether `tag` has the form [`TagKey::tag`] writes: optionally `VERSION:`, then 64 lowercase hex.
pub fn is_tag(tag: &str) -> bool {
    let digest = match tag.split_once(':') {
        Some((v, d)) => {
            if v.is_empty() || v.len() > 4 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            d
        }
        None => tag,
    };
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn key_bytes(hex_key: &str) -> Result<[u8; 32], String> {
    let raw = hex::decode(hex_key).map_err(|_| "expected 64 hex characters".to_owned())?;
    raw.try_into()
        .map_err(|_| "expected a 32-byte key (64 hex characters)".to_owned())
}

/// The oversight nodes' tag root: the secret every department's [`TagKey`] is derived from, so
/// that an oversight node can compute any department's tags (the citizen's report, search by
/// national id) while no department can compute another's. Departments never hold it.
#[derive(Clone)]
pub struct TagRoot {
    key: [u8; 32],
}

impl fmt::Debug for TagRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagRoot(..)")
    }
}

impl TagRoot {
    /// A fresh random root.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        TagRoot { key }
    }

    /// Hex form, as stored in the root file.
    pub fn to_file_contents(&self) -> String {
        format!("{}\n", hex::encode(self.key))
    }

    /// Read a tag root file (64 hex characters).
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let text = std::fs::read_to_string(path).map_err(|e| IdentityError::KeyFile {
            path: path.display().to_string(),
            problem: format!("cannot read: {e}"),
        })?;
        let key = key_bytes(text.trim()).map_err(|problem| IdentityError::KeyFile {
            path: path.display().to_string(),
            problem,
        })?;
        Ok(TagRoot { key })
    }

    /// Department `dept`'s tag key of `version` (1 or more) in `federation`:
    /// HMAC-SHA256(root, "causeway tag key\n" federation "\n" dept "\n" version).
    pub fn department_key(&self, federation: &str, dept: &DeptId, version: u32) -> TagKey {
        TagKey::new(
            version,
            &self.department_key_bytes(federation, dept, version),
        )
    }

    fn department_key_bytes(&self, federation: &str, dept: &DeptId, version: u32) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(format!("causeway tag key\n{federation}\n{dept}\n{version}").as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The key file for department `dept`'s tag key of `version`, as `causeway certs tag-key`
    /// writes it for the department.
    pub fn department_key_file(&self, federation: &str, dept: &DeptId, version: u32) -> String {
        let key = self.department_key_bytes(federation, dept, version);
        TagKey::new(version, &key).to_file_contents(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dept_ids_are_validated() {
        assert!(DeptId::new("civil-registry").is_ok());
        assert!(DeptId::new("").is_err());
        assert!(DeptId::new("Civil").is_err());
        assert!(DeptId::new("a/b").is_err());
        assert!(DeptId::new("-x").is_err());
        assert!(DeptId::new(&"a".repeat(64)).is_err());
    }

    #[test]
    fn identity_paths() {
        assert_eq!(
            parse_identity_path("fed/dept/tax", "fed").unwrap(),
            PeerIdentity::Dept(DeptId::new("tax").unwrap())
        );
        assert!(parse_identity_path("other/dept/tax", "fed").is_err());
        assert!(parse_identity_path("fed/dept/tax/x", "fed").is_err());
        assert!(parse_identity_path("fed/admin/tax", "fed").is_err());
    }

    #[test]
    fn signing_key_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = GatewayKey::new("fed/tax", SigningKey::generate(&mut rand::rngs::OsRng)).unwrap();
        let path = dir.path().join("tax.signing.key");
        write_secret(&path, key.to_file_contents().as_bytes()).unwrap();
        let loaded = GatewayKey::load(&path).unwrap();
        assert_eq!(loaded.vkey(), key.vkey());
        assert_eq!(
            loaded.signing_key().to_bytes(),
            key.signing_key().to_bytes()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "PRIVATE+KEY+fed/tax+00000000+AQ==").unwrap();
        assert!(GatewayKey::load(&path).is_err());
    }

    const KNOWN_TAG: &str = "68b7b92f380fa37dfa71a11f0d0427b61105ccc53cb1da1077712b5c28912248";

    #[test]
    fn tags_are_keyed_and_domain_separated() {
        let a = TagKey::new(0, &[1; 32]);
        let b = TagKey::new(0, &[2; 32]);
        assert_eq!(a.tag("subject", "D000001"), a.tag("subject", "D000001"));
        // HMAC-SHA256(key, "subject\nD000001"), computed independently (Python's hmac module).
        assert_eq!(a.tag("subject", "D000001"), KNOWN_TAG);
        assert_ne!(a.tag("subject", "D000001"), b.tag("subject", "D000001"));
        assert_ne!(a.tag("subject", "D000001"), a.tag("officer", "D000001"));
        assert!(!a.tag("subject", "D000001").contains("D000001"));
        assert_eq!(
            TagKey::new(3, &[1; 32]).tag("subject", "D000001"),
            format!("3:{KNOWN_TAG}"),
            "a tag names its key's version"
        );
        assert!(is_tag(KNOWN_TAG) && is_tag(&format!("12:{KNOWN_TAG}")));
        assert!(!is_tag("D000042") && !is_tag(&format!(":{KNOWN_TAG}")));
        assert!(!is_tag(&format!("x:{KNOWN_TAG}")) && !is_tag(&KNOWN_TAG.to_uppercase()));
    }

    #[test]
    fn the_witness_key_is_independent_of_the_log_key() {
        let dir = tempfile::tempdir().unwrap();
        pki::init_federation("demo", dir.path()).unwrap();
        let issue = |id: &str| {
            let who = PeerIdentity::Dept(DeptId::new(id).unwrap());
            pki::issue(dir.path(), dir.path(), &who, &[]).unwrap()
        };
        let (tax, civil) = (issue("tax-office"), issue("civil-registry"));
        let mut files = IdentityFiles {
            ca: dir.path().join("ca.pem"),
            crl: None,
            crl_reload_secs: 30,
            crl_stale: Default::default(),
            cert: tax.cert.clone(),
            key: tax.key.clone(),
            signing_key: tax.signing_key.clone(),
            witness_key: Some(tax.witness_key.clone()),
            tag_key: None,
            tag_root: None,
            pseudonym_key: None,
        };
        let log_key = GatewayKey::load(&tax.signing_key).unwrap();
        let witness = files.witness_cosigner(&log_key).unwrap();
        assert_eq!(witness.verifier().to_vkey(), tax.witness_vkey);
        // Whoever holds the log key alone cannot make the witness key any more.
        assert_ne!(
            log_key.derived_witness_cosigner().verifier().to_vkey(),
            tax.witness_vkey
        );
        // Another log's witness key is refused.
        files.witness_key = Some(civil.witness_key.clone());
        let error = files.witness_cosigner(&log_key).unwrap_err();
        assert!(error.to_string().contains("must be"), "{error}");
        // Configurations from before witness key files keep the derived key.
        files.witness_key = None;
        assert_eq!(
            files
                .witness_cosigner(&log_key)
                .unwrap()
                .verifier()
                .to_vkey(),
            log_key.derived_witness_cosigner().verifier().to_vkey()
        );
    }

    #[test]
    fn department_keys_are_derived_from_the_root_and_differ_per_department_and_version() {
        let root = TagRoot { key: [7; 32] };
        let tax = DeptId::new("tax-office").unwrap();
        let civil = DeptId::new("civil-registry").unwrap();
        let t1 = root
            .department_key("demo", &tax, 1)
            .tag("subject", "D000001");
        assert_eq!(
            t1,
            root.department_key("demo", &tax, 1)
                .tag("subject", "D000001")
        );
        for other in [
            root.department_key("demo", &civil, 1),
            root.department_key("demo", &tax, 2),
            root.department_key("other", &tax, 1),
            TagRoot { key: [8; 32] }.department_key("demo", &tax, 1),
        ] {
            let t = other.tag("subject", "D000001");
            assert_ne!(t[t.find(':').unwrap()..], t1[t1.find(':').unwrap()..]);
        }
        // The file the department receives loads as the same key.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tax-office.tag.key");
        std::fs::write(&path, root.department_key_file("demo", &tax, 1)).unwrap();
        let loaded = TagKey::load(&path).unwrap();
        assert_eq!(loaded.version(), 1);
        assert_eq!(loaded.tag("subject", "D000001"), t1);
        std::fs::write(&path, format!("0:{}", "ab".repeat(32))).unwrap();
        assert!(
            TagKey::load(&path).is_err(),
            "version 0 is the legacy bare form"
        );
    }
}
