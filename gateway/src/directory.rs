//! The federation directory (`federation.toml`): the federation's membership and keys. Every
//! department, its peer endpoints, its log key (which checks its envelopes, receipts and
//! checkpoints) and its witness key. A gateway's own settings are in [`crate::config`]; this is what
//! the whole federation shares.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use causeway_ledger::note::NoteVerifier;
use serde::Deserialize;

use crate::files::toml_error;
use crate::identity::{parse_vkey, DeptId, PeerIdentity};

/// A peer transport: how a department's endpoints are reached, and what `[peer] prefer` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// HTTP/2 over TLS over TCP (the default).
    #[default]
    Https,
    /// The framed protocol over QUIC.
    Quic,
}

impl Transport {
    /// Both transports.
    pub const ALL: [Transport; 2] = [Transport::Https, Transport::Quic];

    /// The name used in configs and URLs (`https`, `quic`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::Quic => "quic",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `federation.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    federation: String,
    #[serde(rename = "department", default)]
    departments: Vec<DepartmentEntry>,
    #[serde(rename = "oversight", default)]
    oversight: Vec<OversightEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OversightEntry {
    id: DeptId,
    name: String,
}

/// One oversight node as the directory lists it: the only certificates that may read full entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OversightNode {
    /// Its id (the certificate's `causeway://<federation>/oversight/<id>`).
    pub id: DeptId,
    /// Display name.
    pub name: String,
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
    oversight: BTreeMap<DeptId, OversightNode>,
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
        let mut oversight = BTreeMap::new();
        for entry in file.oversight {
            let node = OversightNode {
                id: entry.id.clone(),
                name: entry.name,
            };
            if oversight.insert(entry.id.clone(), node).is_some() {
                bail!("oversight node {} is listed twice", entry.id);
            }
        }
        Ok(Directory {
            federation: file.federation,
            departments,
            oversight,
        })
    }

    /// Look a department up.
    pub fn department(&self, id: &DeptId) -> Option<&Department> {
        self.departments.get(id)
    }

    /// Look an oversight node up.
    pub fn oversight_node(&self, id: &DeptId) -> Option<&OversightNode> {
        self.oversight.get(id)
    }

    /// Whether `peer` is a member: a department or an oversight node this directory lists.
    pub fn lists(&self, peer: &PeerIdentity) -> bool {
        match peer {
            PeerIdentity::Dept(id) => self.departments.contains_key(id),
            PeerIdentity::Oversight(id) => self.oversight.contains_key(id),
        }
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
