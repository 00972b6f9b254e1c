//! The federation directory (`federation.toml`): the federation's membership and keys. Every
//! department, its peer endpoints, its log key (which checks its envelopes, receipts and
//! checkpoints) and its witness key. A gateway's own settings are in [`crate::config`]; this is what
//! the whole federation shares.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use causeway_ledger::keys::{KeyHistory, KeyRefusal, RetiredKey};
use causeway_ledger::note::NoteVerifier;
use rustls_pki_types::CertificateRevocationListDer;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use crate::files::toml_error;
use crate::identity::{parse_vkey, DeptId, PeerIdentity};

mod live;
pub mod signed;
pub mod source;

pub use live::{Applied, DirectorySource, DirectoryStatus, Fetch, LiveDirectory};

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

/// `federation.toml` as written. `serial` and `expires` are set by `causeway federation publish`
/// in the signed directory; the operator's source file leaves them out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    serial: Option<u64>,
    expires: Option<String>,
    crl: Option<String>,
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
    https: Option<String>,
    quic: Option<String>,
    vkey: Option<String>,
    witness: Option<String>,
    pulls: Option<Vec<DeptId>>,
    #[serde(rename = "retired_key", default)]
    retired_keys: Vec<RetiredKeyEntry>,
}

/// One oversight node as the directory lists it: the only certificates that may read full entries.
#[derive(Debug, Clone)]
pub struct OversightNode {
    /// Its id (the certificate's `causeway://<federation>/oversight/<id>`).
    pub id: DeptId,
    /// Display name.
    pub name: String,
    /// Its own log's key (oversight queries are notarized there), if listed.
    pub verifier: Option<NoteVerifier>,
    /// Its witness key, if listed.
    pub witness: Option<NoteVerifier>,
    /// The departments whose full entries it may pull; `None`: every department.
    pub pulls: Option<Vec<DeptId>>,
    /// Its own log (the record of oversight queries), when the directory lists its `vkey` and
    /// `https` endpoint: pulled, witnessed and verified like a department's.
    pub log: Option<Arc<Department>>,
}

impl OversightNode {
    /// Whether it may pull `dept`'s full entries.
    pub fn may_pull(&self, dept: &DeptId) -> bool {
        self.pulls.as_ref().is_none_or(|p| p.contains(dept))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentEntry {
    id: DeptId,
    name: String,
    https: Option<String>,
    quic: Option<String>,
    vkey: Option<String>,
    witness: Option<String>,
    #[serde(rename = "retired_key", default)]
    retired_keys: Vec<RetiredKeyEntry>,
    #[serde(rename = "instance", default)]
    instances: Vec<InstanceEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceEntry {
    id: DeptId,
    https: Option<String>,
    quic: Option<String>,
    vkey: String,
    witness: Option<String>,
    #[serde(rename = "retired_key", default)]
    retired_keys: Vec<RetiredKeyEntry>,
}

/// `[[department.retired_key]]` (or `[[department.instance.retired_key]]`): a log key the
/// instance signed with before its current `vkey`, oldest first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetiredKeyEntry {
    /// The retired key (same name, the log origin, as `vkey`).
    vkey: String,
    /// The largest checkpoint size it signed: its key-rotation entry's index + 1.
    until_size: u64,
    /// When it was retired (RFC 3339; informative).
    until_time: Option<String>,
    /// It leaked: checkpoints of this size or larger under it are refused.
    revoked_from: Option<u64>,
}

/// One gateway instance of a department: its endpoints, its log (origin and key) and its witness
/// key. A department lists one (the fields of its `[[department]]` entry) or several
/// (`[[department.instance]]`); exchanges go to the first.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Instance id (`main` for the single instance written inline).
    pub id: DeptId,
    /// Peer endpoint `host:port` for HTTPS/2, if it serves one.
    pub https: Option<String>,
    /// Peer endpoint `host:port` for QUIC (`quic://` in the file), if it serves one.
    pub quic: Option<String>,
    /// Its note verifier key: its log's origin and its current key (checks its envelopes and its
    /// newest checkpoints).
    pub verifier: NoteVerifier,
    /// Every log key it had, with the sizes each signed: checks its checkpoints of any size.
    pub keys: KeyHistory,
    /// Its witness key (cosignature/v1).
    pub witness: Option<NoteVerifier>,
}

impl Instance {
    /// The key valid for its checkpoints of `size`, unless that key is revoked there.
    pub fn key_for(&self, size: u64) -> Result<&NoteVerifier, KeyRefusal> {
        self.keys.key_for(size)
    }
}

/// One department as the directory describes it. Its endpoint and key fields are those of its
/// first instance.
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
    /// Its current note verifier key: checks envelopes, and receipts and checkpoints it signs now.
    pub verifier: NoteVerifier,
    /// Every log key it had (see [`Instance::keys`]): checks its checkpoints of any size.
    pub keys: KeyHistory,
    /// Its witness key (cosignature/v1): checks the cosignatures it puts on other logs' checkpoints.
    pub witness: Option<NoteVerifier>,
    /// Every instance, the first being the one above.
    pub instances: Vec<Instance>,
    /// Whether this is an oversight node's log rather than a department's (its certificate is
    /// `causeway://<federation>/oversight/<id>`).
    pub oversight: bool,
}

impl Department {
    /// The key valid for its (first instance's) checkpoints of `size`, unless revoked there.
    pub fn key_for(&self, size: u64) -> Result<&NoteVerifier, KeyRefusal> {
        self.keys.key_for(size)
    }

    /// The origin line of its log's checkpoints (its note key name).
    pub fn origin(&self) -> &str {
        self.verifier.name()
    }

    /// The identity its certificate must carry.
    pub fn identity(&self) -> PeerIdentity {
        if self.oversight {
            PeerIdentity::Oversight(self.id.clone())
        } else {
            PeerIdentity::Dept(self.id.clone())
        }
    }
}

/// The federation directory: every department, its endpoints and keys.
#[derive(Debug, Clone)]
pub struct Directory {
    /// The federation name (the host part of identity URIs).
    pub federation: String,
    /// The version number `causeway federation publish` gave it (`None`: an unsigned file).
    pub serial: Option<u64>,
    /// When it stops being valid (`None`: an unsigned file).
    pub expires: Option<OffsetDateTime>,
    /// The federation CA's CRLs (PEM) published with it, which every node puts in force.
    pub crl: Option<String>,
    departments: BTreeMap<DeptId, Arc<Department>>,
    oversight: BTreeMap<DeptId, OversightNode>,
}

impl Directory {
    /// Read and validate a directory file, signed or not, without checking a signature (for
    /// tools reading a file their user names; gateways check it: [`LiveDirectory`]).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the federation directory", path.display()))?;
        let text = signed::body(&text);
        Self::parse(text).map_err(|e| match e.downcast::<toml::de::Error>() {
            Ok(te) => toml_error(path, text, te),
            Err(e) => anyhow::anyhow!("{}: {e:#}", path.display()),
        })
    }

    /// Parse directory text.
    pub fn parse(text: &str) -> Result<Self> {
        let file: DirectoryFile = toml::from_str(text)?;
        DeptId::new(&file.federation).context("field `federation`")?;
        let expires = file
            .expires
            .as_deref()
            .map(|t| OffsetDateTime::parse(t, &Rfc3339))
            .transpose()
            .context("field `expires` must be an RFC 3339 time, like 2027-01-31T00:00:00Z")?;
        let mut departments = BTreeMap::new();
        let mut origins = std::collections::BTreeSet::new();
        for entry in file.departments {
            let id = entry.id.clone();
            let dept = department(entry).with_context(|| format!("department {id}"))?;
            for instance in &dept.instances {
                if !origins.insert(instance.verifier.name().to_owned()) {
                    bail!(
                        "department {id}: log origin {:?} is listed twice; every instance needs its own key",
                        instance.verifier.name()
                    );
                }
            }
            if departments.insert(id.clone(), Arc::new(dept)).is_some() {
                bail!("department {id} is listed twice");
            }
        }
        let mut oversight = BTreeMap::new();
        for entry in file.oversight {
            let key = |field: &str, vkey: &Option<String>| {
                vkey.as_deref().map(parse_vkey).transpose().map_err(|e| {
                    anyhow::anyhow!("oversight node {}: field `{field}`: {e}", entry.id)
                })
            };
            if departments.contains_key(&entry.id) {
                bail!(
                    "oversight node {} has the id of a department; every member needs its own id",
                    entry.id
                );
            }
            let log = match (&entry.vkey, &entry.https) {
                (Some(_), Some(_)) => {
                    let mut log = department(DepartmentEntry {
                        id: entry.id.clone(),
                        name: entry.name.clone(),
                        https: entry.https.clone(),
                        quic: entry.quic.clone(),
                        vkey: entry.vkey.clone(),
                        witness: entry.witness.clone(),
                        retired_keys: entry.retired_keys.clone(),
                        instances: Vec::new(),
                    })
                    .with_context(|| format!("oversight node {}", entry.id))?;
                    log.oversight = true;
                    if !origins.insert(log.origin().to_owned()) {
                        bail!(
                            "oversight node {}: log origin {:?} is listed twice; every log needs its own key",
                            entry.id,
                            log.origin()
                        );
                    }
                    Some(Arc::new(log))
                }
                _ if !entry.retired_keys.is_empty() || entry.quic.is_some() => bail!(
                    "oversight node {}: `retired_key` and `quic` describe its log, which needs `vkey` and `https` too",
                    entry.id
                ),
                _ => None,
            };
            let node = OversightNode {
                id: entry.id.clone(),
                verifier: key("vkey", &entry.vkey)?,
                witness: key("witness", &entry.witness)?,
                name: entry.name,
                pulls: entry.pulls,
                log,
            };
            if let Some(unknown) = node
                .pulls
                .iter()
                .flatten()
                .find(|d| !departments.contains_key(*d))
            {
                bail!(
                    "oversight node {}: field `pulls` names {unknown}, which is not a department of this directory",
                    entry.id
                );
            }
            if oversight.insert(entry.id.clone(), node).is_some() {
                bail!("oversight node {} is listed twice", entry.id);
            }
        }
        if let Some(pem) = &file.crl {
            crls(pem).context("field `crl`")?;
        }
        Ok(Directory {
            federation: file.federation,
            serial: file.serial,
            expires,
            crl: file.crl,
            departments,
            oversight,
        })
    }

    /// Look a department up.
    pub fn department(&self, id: &DeptId) -> Option<&Arc<Department>> {
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

    /// The CRLs it carries (none without a `crl` field).
    pub fn crls(&self) -> Vec<CertificateRevocationListDer<'static>> {
        self.crl
            .as_deref()
            .and_then(|pem| crls(pem).ok())
            .unwrap_or_default()
    }

    /// Every member's identity: the departments and the oversight nodes.
    pub fn members(&self) -> std::collections::HashSet<PeerIdentity> {
        self.departments
            .keys()
            .map(|id| PeerIdentity::Dept(id.clone()))
            .chain(
                self.oversight
                    .keys()
                    .map(|id| PeerIdentity::Oversight(id.clone())),
            )
            .collect()
    }

    /// Every witness key: each department's and each oversight node's.
    pub fn witnesses(&self) -> Vec<NoteVerifier> {
        self.departments
            .values()
            .flat_map(|d| &d.instances)
            .filter_map(|i| i.witness.clone())
            .chain(self.oversight.values().filter_map(|o| o.witness.clone()))
            .collect()
    }

    /// Every oversight node, by id.
    pub fn oversight_nodes(&self) -> impl Iterator<Item = &OversightNode> {
        self.oversight.values()
    }

    /// The log with this origin: a department's or an oversight node's.
    pub fn by_origin(&self, origin: &str) -> Option<&Arc<Department>> {
        self.logs().find(|d| d.origin() == origin)
    }

    /// Every log the directory lists: each department's, then each oversight node's that lists
    /// its key and endpoint. Oversight nodes pull and witness them all; departments witness them.
    pub fn logs(&self) -> impl Iterator<Item = &Arc<Department>> {
        self.departments
            .values()
            .chain(self.oversight.values().filter_map(|o| o.log.as_ref()))
    }

    /// The log of the member `id`: a department's, or an oversight node's.
    pub fn log(&self, id: &DeptId) -> Option<&Arc<Department>> {
        self.departments
            .get(id)
            .or_else(|| self.oversight.get(id).and_then(|o| o.log.as_ref()))
    }

    /// Every department, by id.
    pub fn departments(&self) -> impl Iterator<Item = &Arc<Department>> {
        self.departments.values()
    }
}

/// A department entry, checked: either its fields name one instance, or it lists instances.
fn department(entry: DepartmentEntry) -> Result<Department> {
    let inline = entry.https.is_some()
        || entry.quic.is_some()
        || entry.vkey.is_some()
        || entry.witness.is_some()
        || !entry.retired_keys.is_empty();
    let instances = match (inline, entry.instances.is_empty()) {
        (true, false) => bail!(
            "list its endpoints and keys either in the entry itself or in [[department.instance]] entries, not both"
        ),
        (false, true) => bail!("field `vkey` is missing (the key its log and envelopes are signed with)"),
        (true, true) => vec![InstanceEntry {
            id: DeptId::new("main").expect("a valid id"),
            https: entry.https,
            quic: entry.quic,
            vkey: entry.vkey.context("field `vkey` is missing (the key its log and envelopes are signed with)")?,
            witness: entry.witness,
            retired_keys: entry.retired_keys,
        }],
        (false, false) => entry.instances,
    };
    let mut checked: Vec<Instance> = Vec::with_capacity(instances.len());
    for i in instances {
        let field = |name: &str| {
            if inline {
                format!("field `{name}`")
            } else {
                format!("instance {}: field `{name}`", i.id)
            }
        };
        if checked.iter().any(|c| c.id == i.id) {
            bail!("instance {} is listed twice", i.id);
        }
        let key = |name: &str, vkey: &str| {
            parse_vkey(vkey).map_err(|e| anyhow::anyhow!("{}: {e}", field(name)))
        };
        let verifier = key("vkey", &i.vkey)?;
        let mut retired = Vec::with_capacity(i.retired_keys.len());
        for r in &i.retired_keys {
            if let Some(t) = &r.until_time {
                OffsetDateTime::parse(t, &Rfc3339).with_context(|| {
                    format!(
                        "{}: until_time must be an RFC 3339 time, like 2027-01-31T00:00:00Z",
                        field("retired_key")
                    )
                })?;
            }
            retired.push(RetiredKey {
                verifier: key("retired_key", &r.vkey)?,
                until_size: r.until_size,
                revoked_from: r.revoked_from,
            });
        }
        let keys = KeyHistory::new(retired, verifier.clone())
            .map_err(|e| anyhow::anyhow!("{}: {e}", field("retired_key")))?;
        checked.push(Instance {
            verifier,
            keys,
            witness: i
                .witness
                .as_deref()
                .map(|w| key("witness", w))
                .transpose()?,
            https: i
                .https
                .as_deref()
                .map(|u| parse_endpoint(u, "https"))
                .transpose()
                .with_context(|| field("https"))?,
            quic: i
                .quic
                .as_deref()
                .map(|u| parse_endpoint(u, "quic"))
                .transpose()
                .with_context(|| field("quic"))?,
            id: i.id,
        });
    }
    let first = checked[0].clone();
    Ok(Department {
        id: entry.id,
        name: entry.name,
        https: first.https,
        quic: first.quic,
        verifier: first.verifier,
        keys: first.keys,
        witness: first.witness,
        instances: checked,
        oversight: false,
    })
}

/// The CRLs of PEM text: at least one `X509 CRL` block, each well-formed (their signatures are
/// checked by the revocation state that puts them in force).
fn crls(pem: &str) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not PEM CRLs: {e:?}"))?;
    anyhow::ensure!(!crls.is_empty(), "no \"-----BEGIN X509 CRL-----\" block");
    for crl in &crls {
        x509_parser::revocation_list::CertificateRevocationList::from_der(crl.as_ref())
            .map_err(|e| anyhow::anyhow!("a CRL does not parse: {e}"))?;
    }
    Ok(crls)
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
    fn an_oversight_log_is_a_log_of_the_directory() {
        let vkey = |seed: u8, name: &str| {
            crate::identity::GatewayKey::new(
                name,
                ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
            )
            .unwrap()
            .vkey()
        };
        let dept = format!(
            "federation = \"demo\"\n[[department]]\nid = \"tax\"\nname = \"Tax\"\nhttps = \"https://127.0.0.1:1\"\nvkey = \"{}\"\n",
            vkey(1, "demo/tax")
        );
        let node = |id: &str, rest: &str| {
            format!("[[oversight]]\nid = \"{id}\"\nname = \"Audit\"\n{rest}")
        };
        let audit_vkey = vkey(2, "demo/oversight/audit");
        let listed = format!(
            "{dept}{}",
            node(
                "audit",
                &format!(
                    "https = \"https://127.0.0.1:2\"\nvkey = \"{audit_vkey}\"\nwitness = \"{}\"\n",
                    vkey(3, "demo/oversight/audit/witness")
                )
            )
        );
        let directory = Directory::parse(&listed).unwrap();
        let audit = DeptId::new("audit").unwrap();
        let log = directory.log(&audit).expect("its log is listed");
        assert!(log.oversight && log.identity() == PeerIdentity::Oversight(audit.clone()));
        assert_eq!(log.https.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(
            directory
                .by_origin("demo/oversight/audit")
                .map(|l| l.id.clone()),
            Some(audit.clone())
        );
        assert_eq!(directory.logs().count(), 2);
        assert_eq!(directory.witnesses().len(), 1, "its witness key counts");
        assert!(
            directory.department(&audit).is_none(),
            "it is no department"
        );

        // Without an endpoint or key it is a member whose log nobody can pull.
        let bare = Directory::parse(&format!("{dept}{}", node("audit", ""))).unwrap();
        assert!(bare.log(&audit).is_none() && bare.lists(&PeerIdentity::Oversight(audit.clone())));

        // Refused: an oversight node with a department's id, a log origin listed twice, and log
        // details without the log.
        for (bad, says) in [
            (node("tax", ""), "the id of a department"),
            (
                node(
                    "audit",
                    &format!(
                        "https = \"https://127.0.0.1:2\"\nvkey = \"{}\"\n",
                        vkey(2, "demo/tax")
                    ),
                ),
                "listed twice",
            ),
            (
                node("audit", "quic = \"quic://127.0.0.1:3\"\n"),
                "needs `vkey` and `https`",
            ),
        ] {
            let e = format!(
                "{:#}",
                Directory::parse(&format!("{dept}{bad}")).unwrap_err()
            );
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn bad_vkey_names_the_department_and_field() {
        let text = "federation = \"demo\"\n[[department]]\nid = \"tax\"\nname = \"Tax\"\nvkey = \"nope\"\n";
        let e = format!("{:#}", Directory::parse(text).unwrap_err());
        assert!(e.contains("department tax") && e.contains("vkey"), "{e}");
    }

    #[test]
    fn retired_keys_are_checked_and_pick_the_key_per_size() {
        let vkey = |seed: u8, name: &str| {
            crate::identity::GatewayKey::new(
                name,
                ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
            )
            .unwrap()
            .vkey()
        };
        let text = |retired: &str| {
            format!(
                "federation = \"demo\"\n[[department]]\nid = \"tax\"\nname = \"Tax\"\nvkey = \"{}\"\n{retired}",
                vkey(3, "demo/tax")
            )
        };
        let retired = |seed: u8, name: &str, rest: &str| {
            format!(
                "[[department.retired_key]]\nvkey = \"{}\"\n{rest}\n",
                vkey(seed, name)
            )
        };
        let good = text(&format!(
            "{}{}",
            retired(
                1,
                "demo/tax",
                "until_size = 10\nuntil_time = \"2026-01-01T00:00:00Z\""
            ),
            retired(2, "demo/tax", "until_size = 20\nrevoked_from = 15")
        ));
        let directory = Directory::parse(&good).unwrap();
        let tax = directory.department(&DeptId::new("tax").unwrap()).unwrap();
        assert_eq!(tax.key_for(10).unwrap().to_vkey(), vkey(1, "demo/tax"));
        assert_eq!(tax.key_for(11).unwrap().to_vkey(), vkey(2, "demo/tax"));
        assert!(tax.key_for(15).is_err());
        assert_eq!(tax.key_for(21).unwrap(), &tax.verifier);
        assert_eq!(tax.keys.keys().count(), 3);
        for (bad, says) in [
            (retired(1, "demo/other", "until_size = 10"), "demo/other"),
            (
                format!(
                    "{}{}",
                    retired(1, "demo/tax", "until_size = 10"),
                    retired(2, "demo/tax", "until_size = 10")
                ),
                "strictly increasing",
            ),
            (
                retired(1, "demo/tax", "until_size = 10\nrevoked_from = 11"),
                "revoked_from",
            ),
            (
                retired(1, "demo/tax", "until_size = 10\nuntil_time = \"yesterday\""),
                "until_time",
            ),
            (retired(3, "demo/tax", "until_size = 10"), "twice"),
            (retired(1, "demo/tax", "size = 10"), "unknown field"),
        ] {
            let e = format!("{:#}", Directory::parse(&text(&bad)).unwrap_err());
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
