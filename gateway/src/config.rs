//! Files an operator edits: the gateway config (`causeway.toml`) and the federation directory
//! (`federation.toml`). Both are strict: unknown keys are errors, and every error names the file
//! and the field. Relative paths resolve against the directory of the file that names them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::identity::{parse_vkey, DeptId};
use crate::ledger::note::NoteVerifier;

/// What this node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A department gateway (the default).
    #[default]
    Department,
    /// An oversight node.
    Oversight,
}

/// `causeway.toml`: one gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// This department's id; must match the identity URI in its certificate.
    pub department: DeptId,
    /// Department gateway or oversight node.
    #[serde(default)]
    pub role: Role,
    /// The federation directory file.
    pub directory: PathBuf,
    /// The datasets file (providers only).
    pub datasets: Option<PathBuf>,
    /// The policy directory (providers only).
    pub policies: Option<PathBuf>,
    /// A candidate policy directory decided beside `policies` for every request (shadow mode):
    /// only the active decision counts; differences are counted and logged.
    #[serde(default)]
    pub policies_shadow: Option<PathBuf>,
    /// Key and certificate files.
    pub identity: IdentityFiles,
    /// The ledger.
    pub ledger: LedgerSection,
    /// The local client API.
    pub client: ClientSection,
    /// The peer API.
    pub peer: PeerSection,
    /// Health and metrics.
    pub admin: Option<AdminSection>,
    /// `[telemetry]`: OTLP export of traces and metrics (docs/OPERATIONS.md).
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetrySection,
    /// Oversight nodes only: the replica and how often to pull (docs/OVERSIGHT.md).
    #[serde(default)]
    pub oversight: Option<crate::oversight::OversightSection>,
}

/// `[identity]`: certificates and keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFiles {
    /// The federation's CA bundle (PEM).
    pub ca: PathBuf,
    /// An optional CRL (PEM), honoured on every handshake.
    pub crl: Option<PathBuf>,
    /// This gateway's certificate (PEM).
    pub cert: PathBuf,
    /// This gateway's TLS private key (PEM).
    pub key: PathBuf,
    /// This gateway's Ed25519 signing key (note secret key form).
    pub signing_key: PathBuf,
    /// The federation tag key (HMAC key for subject and officer tags).
    pub tag_key: PathBuf,
}

/// `[ledger]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// The LMDB environment directory.
    pub dir: PathBuf,
    /// LMDB map size in MiB to start with (the file is sparse); it doubles whenever it is full.
    #[serde(default = "default_map_size_mib")]
    pub map_size_mib: u64,
    /// The most the map may grow to, in MiB: a ledger that fills it refuses to release data.
    #[serde(default = "default_max_map_size_mib")]
    pub max_map_size_mib: u64,
    /// The longest a commit batch stays open for more appends, in microseconds.
    #[serde(default = "default_batch_window_us")]
    pub batch_window_us: u64,
    /// A batch closes early once appends pause for this long, in microseconds.
    #[serde(default = "default_batch_gap_us")]
    pub batch_gap_us: u64,
    /// Most entries in one commit batch.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl LedgerSection {
    /// The ledger's options.
    pub fn options(&self) -> crate::ledger::LedgerOptions {
        crate::ledger::LedgerOptions {
            map_size_mib: self.map_size_mib,
            max_map_size_mib: self.max_map_size_mib,
            batch_window: std::time::Duration::from_micros(self.batch_window_us),
            batch_gap: std::time::Duration::from_micros(self.batch_gap_us),
            max_batch: self.max_batch.clamp(1, 65_536),
        }
    }
}

fn default_batch_window_us() -> u64 {
    2000
}

fn default_batch_gap_us() -> u64 {
    100
}

fn default_max_batch() -> usize {
    4096
}

fn default_map_size_mib() -> u64 {
    crate::ledger::DEFAULT_MAP_SIZE_MIB
}

fn default_max_map_size_mib() -> u64 {
    crate::ledger::DEFAULT_MAX_MAP_SIZE_MIB
}

/// `[client]`: the local application API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Loopback address for `POST /v1/requests`.
    pub listen: SocketAddr,
    /// How long the consumer waits for a provider, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

/// `[peer]`: the mTLS API other gateways call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    /// HTTPS/2 listen address.
    pub https: SocketAddr,
    /// QUIC listen address (UDP), if this gateway serves QUIC.
    pub quic: Option<SocketAddr>,
    /// Transport to use towards peers that list both (`https` or `quic`); QUIC falls back to HTTPS.
    #[serde(default)]
    pub prefer: crate::transport::Transport,
    /// Time allowed for a whole QUIC request frame to arrive, in milliseconds.
    #[serde(default = "default_quic_frame_timeout_ms")]
    pub quic_frame_timeout_ms: u64,
    /// Largest accepted clock skew of an envelope, in seconds.
    #[serde(default = "default_max_skew_secs")]
    pub max_skew_secs: u64,
}

fn default_quic_frame_timeout_ms() -> u64 {
    10_000
}

fn default_max_skew_secs() -> u64 {
    60
}

/// `[admin]`: health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Listen address for `/healthz` and `/readyz`.
    pub listen: SocketAddr,
}

impl GatewayConfig {
    /// Read, parse and validate a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the gateway config", path.display()))?;
        let mut config: GatewayConfig =
            toml::from_str(&text).map_err(|e| toml_error(path, &text, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.directory);
        config.datasets.as_mut().map(resolve);
        config.policies.as_mut().map(resolve);
        config.policies_shadow.as_mut().map(resolve);
        resolve(&mut config.identity.ca);
        config.identity.crl.as_mut().map(resolve);
        resolve(&mut config.identity.cert);
        resolve(&mut config.identity.key);
        resolve(&mut config.identity.signing_key);
        resolve(&mut config.identity.tag_key);
        resolve(&mut config.ledger.dir);
        config.telemetry.ca.as_mut().map(resolve);
        match (config.role, config.oversight.as_mut()) {
            (Role::Oversight, Some(section)) => resolve(&mut section.replica),
            (Role::Oversight, None) => {
                let mut section = crate::oversight::OversightSection::default();
                resolve(&mut section.replica);
                config.oversight = Some(section);
            }
            (Role::Department, Some(_)) => bail!(
                "{}: [oversight] is only for role = \"oversight\"; remove the section or set the role",
                path.display()
            ),
            (Role::Department, None) => {}
        }
        if !config.client.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %config.client.listen,
                "the client API is plain HTTP and should listen on loopback only"
            );
        }
        Ok(config)
    }
}

/// Turn a toml error into `file:line:col: message`.
pub fn toml_error(path: &Path, text: &str, e: toml::de::Error) -> anyhow::Error {
    let position = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before
                .rfind('\n')
                .map_or(before.len(), |nl| before.len() - nl - 1)
                + 1;
            format!(":{line}:{col}")
        })
        .unwrap_or_default();
    anyhow::anyhow!("{}{position}: {}", path.display(), e.message())
}

/// `federation.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    federation: String,
    #[serde(rename = "department", default)]
    departments: Vec<DepartmentEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentEntry {
    id: DeptId,
    name: String,
    https: Option<String>,
    quic: Option<String>,
    vkey: String,
    witness: Option<String>,
}

/// One department as the directory describes it.
#[derive(Debug, Clone)]
pub struct Department {
    /// Department id.
    pub id: DeptId,
    /// Display name.
    pub name: String,
    /// Peer endpoint `host:port` for HTTPS/2, if it serves one.
    pub https: Option<String>,
    /// Peer endpoint `host:port` for QUIC (`quic://` in the file), if it serves one.
    pub quic: Option<String>,
    /// Its note verifier key: checks envelopes, receipts and checkpoints it signs.
    pub verifier: NoteVerifier,
    /// Its witness key (cosignature/v1): checks the cosignatures it puts on other logs' checkpoints.
    pub witness: Option<NoteVerifier>,
}

impl Department {
    /// The origin line of its log's checkpoints (its note key name).
    pub fn origin(&self) -> &str {
        self.verifier.name()
    }
}

/// The federation directory: every department, its endpoints and keys.
#[derive(Debug, Clone)]
pub struct Directory {
    /// The federation name (the host part of identity URIs).
    pub federation: String,
    departments: BTreeMap<DeptId, Department>,
}

impl Directory {
    /// Read and validate `federation.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the federation directory", path.display()))?;
        Self::parse(&text).map_err(|e| match e.downcast::<toml::de::Error>() {
            Ok(te) => toml_error(path, &text, te),
            Err(e) => anyhow::anyhow!("{}: {e:#}", path.display()),
        })
    }

    /// Parse directory text.
    pub fn parse(text: &str) -> Result<Self> {
        let file: DirectoryFile = toml::from_str(text)?;
        DeptId::new(&file.federation).context("field `federation`")?;
        let mut departments = BTreeMap::new();
        for entry in file.departments {
            let verifier = parse_vkey(&entry.vkey)
                .map_err(|e| anyhow::anyhow!("department {}: field `vkey`: {e}", entry.id))?;
            if let Some(url) = &entry.https {
                parse_endpoint(url, "https")
                    .with_context(|| format!("department {}: field `https`", entry.id))?;
            }
            let witness = entry
                .witness
                .as_deref()
                .map(parse_vkey)
                .transpose()
                .map_err(|e| anyhow::anyhow!("department {}: field `witness`: {e}", entry.id))?;
            let quic = entry
                .quic
                .as_deref()
                .map(|url| parse_endpoint(url, "quic"))
                .transpose()
                .with_context(|| format!("department {}: field `quic`", entry.id))?;
            let id = entry.id.clone();
            let dept = Department {
                quic,
                witness,
                id: entry.id,
                name: entry.name,
                https: entry
                    .https
                    .map(|u| parse_endpoint(&u, "https").expect("validated above")),
                verifier,
            };
            if departments.insert(id.clone(), dept).is_some() {
                bail!("department {id} is listed twice");
            }
        }
        Ok(Directory {
            federation: file.federation,
            departments,
        })
    }

    /// Look a department up.
    pub fn department(&self, id: &DeptId) -> Option<&Department> {
        self.departments.get(id)
    }

    /// Every department's witness key.
    pub fn witnesses(&self) -> Vec<NoteVerifier> {
        self.departments
            .values()
            .filter_map(|d| d.witness.clone())
            .collect()
    }

    /// The department whose log has this origin.
    pub fn by_origin(&self, origin: &str) -> Option<&Department> {
        self.departments.values().find(|d| d.origin() == origin)
    }

    /// Every department, by id.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }
}

/// `https://host:port` -> `host:port`.
fn parse_endpoint(url: &str, scheme: &str) -> Result<String> {
    let rest = url
        .strip_prefix(&format!("{scheme}://"))
        .with_context(|| format!("{url:?} must start with {scheme}://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .with_context(|| format!("{url:?} must name a port, like {scheme}://127.0.0.1:7443"))?;
    anyhow::ensure!(
        !host.is_empty() && !rest.contains('/'),
        "{url:?} must be {scheme}://host:port"
    );
    port.parse::<u16>()
        .with_context(|| format!("{url:?}: bad port"))?;
    Ok(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_line_and_column() {
        let text = "department = \"tax\"\nbogus = 1\n";
        let e = toml::from_str::<GatewayConfig>(text).unwrap_err();
        let msg = toml_error(Path::new("causeway.toml"), text, e).to_string();
        assert!(msg.starts_with("causeway.toml:"), "{msg}");
        assert!(
            msg.contains("bogus") || msg.contains("unknown field"),
            "{msg}"
        );
    }

    #[test]
    fn endpoints_are_checked() {
        assert_eq!(
            parse_endpoint("https://127.0.0.1:7443", "https").unwrap(),
            "127.0.0.1:7443"
        );
        assert!(parse_endpoint("http://127.0.0.1:7443", "https").is_err());
        assert!(parse_endpoint("https://127.0.0.1", "https").is_err());
        assert!(parse_endpoint("https://h:99999", "https").is_err());
        assert!(parse_endpoint("https://h:1/x", "https").is_err());
        assert_eq!(
            parse_endpoint("quic://[::1]:7444", "quic").unwrap(),
            "[::1]:7444"
        );
        assert!(parse_endpoint("https://127.0.0.1:7444", "quic").is_err());
    }

    #[test]
    fn quic_endpoints_are_optional_and_checked() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let vkey = crate::identity::GatewayKey::new("demo/tax", key)
            .unwrap()
            .vkey();
        let text = format!("federation = \"demo\"\n[[department]]\nid = \"tax\"\nname = \"Tax\"\nhttps = \"https://127.0.0.1:1\"\nquic = \"quic://127.0.0.1:2\"\nvkey = \"{vkey}\"\n");
        let directory = Directory::parse(&text).unwrap();
        let tax = directory.department(&DeptId::new("tax").unwrap()).unwrap();
        assert_eq!(tax.quic.as_deref(), Some("127.0.0.1:2"));
        let without = text.replace("quic = \"quic://127.0.0.1:2\"\n", "");
        assert_eq!(
            Directory::parse(&without)
                .unwrap()
                .department(&tax.id)
                .unwrap()
                .quic,
            None
        );
        let e = format!(
            "{:#}",
            Directory::parse(&text.replace("quic://", "udp://")).unwrap_err()
        );
        assert!(e.contains("department tax") && e.contains("quic"), "{e}");
    }

    #[test]
    fn bad_vkey_names_the_department_and_field() {
        let text = "federation = \"demo\"\n[[department]]\nid = \"tax\"\nname = \"Tax\"\nvkey = \"nope\"\n";
        let e = Directory::parse(text).unwrap_err().to_string();
        assert!(e.contains("department tax") && e.contains("vkey"), "{e}");
    }
}
