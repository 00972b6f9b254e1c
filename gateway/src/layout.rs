//! Lays a federation out on disk the way a real deployment would: a CA, per-department
//! certificates and signing keys, `federation.toml`, and per department a `causeway.toml`, its
//! datasets file, policy directory, ledger directory and demo database. Used by `causeway demo`
//! and by the end-to-end tests.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::callers::tokens::DemoIssuer;
use crate::directory::signed::publish_file;
use crate::directory::{source, Directory};
use crate::identity::{pki, AppId, DeptId, PeerIdentity};
use crate::oversight::staff::{Role, StaffFile};
use crate::transport::Transport;

/// The demo departments' datasets files, by department (their policy files are
/// `causeway_policy::samples`).
const DATASETS: &[(&str, &str)] = &[
    (
        "civil-registry",
        include_str!("../samples/civil-registry/datasets.toml"),
    ),
    (
        "social-welfare",
        include_str!("../samples/social-welfare/datasets.toml"),
    ),
    (
        "tax-office",
        include_str!("../samples/tax-office/datasets.toml"),
    ),
];

/// The demo federation's name.
pub const DEMO_FEDERATION: &str = "demo";
/// The demo departments: (id, display name).
pub const DEMO_DEPARTMENTS: &[(&str, &str)] = &[
    ("civil-registry", "Civil Registry"),
    ("tax-office", "Tax Office"),
    ("social-welfare", "Social Welfare Agency"),
];

/// One department's files and addresses.
#[derive(Debug, Clone)]
pub struct DeptLayout {
    /// Department id.
    pub id: DeptId,
    /// Its `causeway.toml`.
    pub config: PathBuf,
    /// Its client API address.
    pub client: SocketAddr,
    /// Its peer HTTPS address.
    pub peer: SocketAddr,
    /// Its peer QUIC address (UDP), if it serves QUIC.
    pub quic: Option<SocketAddr>,
    /// Its admin address.
    pub admin: SocketAddr,
    /// Its directory.
    pub dir: PathBuf,
}

/// A laid-out federation.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Root directory.
    pub dir: PathBuf,
    /// `federation.toml`.
    pub directory: PathBuf,
    /// Departments in order.
    pub departments: Vec<DeptLayout>,
}

impl Layout {
    /// The operator's source of the directory (`certs/federation.source.toml`), which
    /// [`Layout::publish_directory`] signs into `federation.toml`.
    pub fn directory_source(&self) -> PathBuf {
        self.dir.join("certs").join("federation.source.toml")
    }

    /// Sign the directory source with the operator's key into `federation.toml` (the next
    /// serial, valid a year, with the CA's CRL if there is one), as `causeway federation publish`
    /// does. Returns the serial.
    pub fn publish_directory(&self) -> Result<u64> {
        let crl = self.dir.join("certs").join(pki::CRL);
        publish_file(
            &self.directory_source(),
            &self.dir.join("certs").join(pki::DIRECTORY_KEY),
            crl.exists().then_some(crl.as_path()),
            &self.directory,
            time::Duration::days(365),
        )
    }

    /// Look a department up by id.
    pub fn dept(&self, id: &str) -> Option<&DeptLayout> {
        self.departments.iter().find(|d| d.id.as_str() == id)
    }
}

/// Ports handed out by this process, never handed out twice.
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A loopback port that is free for both TCP and UDP now. The gateway binds it moments later, so it
/// is drawn from 20000-32767, below Linux's ephemeral range (32768-60999): outgoing connections,
/// which take ephemeral ports, cannot grab it in between, and this process never hands it out twice.
fn free_loopback_port() -> Result<u16> {
    use rand::Rng;
    let mut handed_out = HANDED_OUT.lock().expect("port list lock poisoned");
    for _ in 0..1000 {
        let port = rand::thread_rng().gen_range(20_000..32_768);
        if handed_out.contains(&port) {
            continue;
        }
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            handed_out.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port found in 20000-32767")
}

/// A free loopback port for TCP and UDP listeners (see [`free_loopback_port`]).
pub fn free_port() -> Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_loopback_port()?)))
}

/// Create the federation in `dir` with `departments` (id, display name), preferring HTTPS between
/// gateways; see [`create_with`].
pub fn create(dir: &Path, federation: &str, departments: &[(&str, &str)]) -> Result<Layout> {
    create_with(dir, federation, departments, Transport::Https)
}

/// Create the federation in `dir` with `departments` (id, display name). Every gateway serves both
/// HTTPS and QUIC and lists both endpoints; `prefer` is the transport gateways use towards each
/// other (QUIC falls back to HTTPS). The sample files are copied in: the datasets file
/// (`gateway/samples/<id>/datasets.toml`) beside the config, the policy files
/// (`policies/samples/<id>/`) into policies/.
pub fn create_with(
    dir: &Path,
    federation: &str,
    departments: &[(&str, &str)],
    prefer: Transport,
) -> Result<Layout> {
    let certs = dir.join("certs");
    pki::init_federation(federation, &certs)?;
    let mut directory = source::new_source(federation)?;
    let mut layouts = Vec::new();
    for (id, name) in departments {
        let dept = DeptId::new(id)?;
        // Enrollment as a department and the operator do it: the department makes its keys and
        // a request; the operator signs the request.
        let who = PeerIdentity::Dept(dept.clone());
        let issued = pki::request(
            &certs.join(pki::CA_CERT),
            &certs,
            &who,
            &["localhost".into(), "127.0.0.1".into()],
        )?;
        pki::sign(&certs, &issued.csr, &who, &certs)?;
        let ports = DeptPorts::free()?;
        write!(
            directory,
            "\n[[department]]\nid = \"{id}\"\nname = \"{name}\"\nhttps = \"https://{}\"\nquic = \"quic://{}\"\nvkey = \"{}\"\nwitness = \"{}\"\n",
            ports.peer, ports.quic, issued.vkey, issued.witness_vkey
        )?;
        let others: Vec<&str> = departments
            .iter()
            .map(|(other, _)| *other)
            .filter(|other| other != id)
            .collect();
        layouts.push(department_files(
            dir, federation, &dept, name, &others, prefer, ports,
        )?);
    }
    // The demo's oversight node is a member from the start, so that departments answer it
    // (docs/OVERSIGHT.md); `create_oversight` lays it out.
    for (id, name) in DEMO_OVERSIGHT_NODES {
        write!(
            directory,
            "\n[[oversight]]\nid = \"{id}\"\nname = \"{name}\"\n"
        )?;
    }
    let layout = Layout {
        dir: dir.to_owned(),
        directory: dir.join("federation.toml"),
        departments: layouts,
    };
    std::fs::write(layout.directory_source(), directory)?;
    layout.publish_directory()?;
    Ok(layout)
}

/// The ports of one laid-out department.
#[derive(Debug, Clone, Copy)]
pub struct DeptPorts {
    /// Client API.
    pub client: SocketAddr,
    /// HTTPS peer port.
    pub peer: SocketAddr,
    /// QUIC peer port (UDP).
    pub quic: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
}

impl DeptPorts {
    /// Free loopback ports for each listener.
    pub fn free() -> Result<DeptPorts> {
        Ok(DeptPorts {
            client: free_port()?,
            peer: free_port()?,
            admin: free_port()?,
            quic: free_port()?, // free for UDP too
        })
    }
}

/// A department joining the laid-out federation after it started: write its gateway's files
/// (config, datasets, policies, applications, identity provider) and derive its tag key, as
/// [`create_with`] does for the first ones. Its keys and certificate come from enrollment
/// (`causeway certs request` in `certs/`, `causeway certs sign`), and the operator lists it
/// (`causeway federation add`, `publish`); this writes neither.
pub fn add_department(
    layout: &Layout,
    id: &str,
    name: &str,
    ports: DeptPorts,
) -> Result<DeptLayout> {
    let dept = DeptId::new(id)?;
    let federation = Directory::load(&layout.directory)?.federation;
    let others: Vec<&str> = layout.departments.iter().map(|d| d.id.as_str()).collect();
    department_files(
        &layout.dir,
        &federation,
        &dept,
        name,
        &others,
        Transport::Https,
        ports,
    )
}

/// Every file of department `dept`'s gateway except its keys and certificate.
fn department_files(
    dir: &Path,
    federation: &str,
    dept: &DeptId,
    name: &str,
    others: &[&str],
    prefer: Transport,
    ports: DeptPorts,
) -> Result<DeptLayout> {
    let certs = dir.join("certs");
    let id = dept.as_str();
    let DeptPorts {
        client,
        peer,
        quic,
        admin,
    } = ports;
    // The oversight body derives the department's tag key from the tag root it keeps.
    pki::tag_key(&certs.join(pki::TAG_ROOT), federation, dept, 1, &certs)?;
    let dept_dir = dir.join(id);
    let policies = dept_dir.join("policies");
    std::fs::create_dir_all(&policies)?;
    let samples = causeway_policy::samples::files(id);
    if samples.is_empty() {
        // A department without sample policies holds nothing for others yet.
        std::fs::write(
            policies.join("purposes.toml"),
            "# The purposes this department's grants may name (it grants nothing yet).\n\n[[purpose]]\nid = \"statistics\"\ndescription = \"Official statistics.\"\n",
        )?;
    }
    for (file, contents) in samples {
        std::fs::write(policies.join(file), contents)?;
    }
    let datasets = DATASETS.iter().find(|(dept, _)| *dept == id).map_or(
        "# No datasets: this department only asks.\n",
        |(_, text)| text,
    );
    std::fs::write(dept_dir.join("datasets.toml"), datasets)?;
    write_applications(&certs, dept, &dept_dir, others)?;
    DemoIssuer::create(
        &certs.join(format!("{id}-idp.key")),
        &certs.join(format!("{id}-idp.jwks.json")),
        DEMO_IDP_KID,
    )?;
    let config = dept_dir.join("causeway.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Gateway of {name}. Relative paths are relative to this file.
department = "{id}"
directory = "../federation.toml"
# The federation operator's key: the directory must be signed by it; it is read again every
# directory_reload_secs and on SIGHUP.
directory_key = "../certs/directory.vkey"
directory_reload_secs = 2
datasets = "datasets.toml"
policies = "policies"

[identity]
ca = "../certs/ca.pem"
cert = "../certs/{id}.pem"
key = "../certs/{id}.key"
signing_key = "../certs/{id}.signing.key"
witness_key = "../certs/{id}.witness.key"
tag_key = "../certs/{id}.tag.key"

[ledger]
dir = "ledger"

# The client API: mutual TLS with certificates from this department's application CA.
[client]
listen = "{client}"
app_ca = "../certs/{id}-apps-ca.pem"
applications = "applications.toml"

# The identity provider whose tokens prove which officer an application acts for (the demo's
# own issuer: `causeway tokens issue`).
[officers]
issuer = "{issuer}"
audience = "{audience}"
jwks = "../certs/{id}-idp.jwks.json"

[peer]
https = "{peer}"
quic = "{quic}"
prefer = "{prefer}"

[admin]
listen = "{admin}"
"#,
            issuer = demo_issuer(federation, id),
            audience = demo_audience(federation, id),
        ),
    )?;
    Ok(DeptLayout {
        id: dept.clone(),
        config,
        client,
        peer,
        quic: Some(quic),
        admin,
        dir: dept_dir,
    })
}

/// The demo application that acts for officers: it may ask every other department for anything
/// (each provider's policy still decides).
pub const DEMO_APP: &str = "case-desk";
/// The demo's batch job: it acts on its own and its outbound rules let it ask nothing, so every
/// request it makes is refused (and notarized) at its own gateway.
pub const DEMO_BATCH_APP: &str = "nightly-batch";
/// The key id of the demo identity providers' keys (`causeway tokens issue` signs under it).
pub const DEMO_IDP_KID: &str = "demo-idp-1";

/// The demo identity provider's issuer for department `id`.
pub fn demo_issuer(federation: &str, id: &str) -> String {
    format!("https://idp.{id}.{federation}.example")
}

/// The audience the demo identity provider of department `id` issues tokens for.
pub fn demo_audience(federation: &str, id: &str) -> String {
    format!("causeway:{federation}/{id}")
}

/// Issue the demo applications' certificates (creating the department's application CA) and write
/// `applications.toml` registering them with their outbound rules.
fn write_applications(certs: &Path, dept: &DeptId, dept_dir: &Path, others: &[&str]) -> Result<()> {
    for app in [DEMO_APP, DEMO_BATCH_APP] {
        pki::issue_app(certs, certs, dept, &AppId::new(app)?)?;
    }
    let mut text = format!(
        "# The applications registered with this gateway and what each may ask (docs/OPERATIONS.md).\n\n[[application]]\nid = \"{DEMO_APP}\"\nname = \"Case desk\"\nofficers = \"required\"\n"
    );
    for other in others {
        write!(
            text,
            "\n[[application.may_ask]]\nprovider = \"{other}\"\ndatasets = [\"*\"]\npurposes = [\"*\"]\n"
        )?;
    }
    write!(
        text,
        "\n[[application]]\nid = \"{DEMO_BATCH_APP}\"\nname = \"Nightly batch (may ask nothing yet)\"\nofficers = \"none\"\n"
    )?;
    std::fs::write(dept_dir.join("applications.toml"), text)?;
    Ok(())
}

/// How an application of a laid-out department reaches its gateway's client API.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// The federation CA bundle (to verify the gateway).
    pub ca: PathBuf,
    /// The application's certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

impl Layout {
    /// The demo credentials of application `app` of department `dept`.
    pub fn app_credentials(&self, dept: &str, app: &str) -> AppCredentials {
        let certs = self.dir.join("certs");
        AppCredentials {
            ca: certs.join(pki::CA_CERT),
            cert: certs.join(format!("{dept}-app-{app}.pem")),
            key: certs.join(format!("{dept}-app-{app}.key")),
        }
    }

    /// A client of department `dept`'s client API as application `app`: mutual TLS with the
    /// application's demo certificate, or plain HTTP where the config says `insecure_plaintext_as`.
    pub fn app_client(
        &self,
        dept: &str,
        app: &str,
    ) -> Result<crate::transport::app_client::AppClient> {
        use crate::transport::app_client::AppClient;
        let layout = self
            .dept(dept)
            .with_context(|| format!("no department {dept}"))?;
        let config = crate::config::GatewayConfig::load(&layout.config)?;
        if config.client.app_ca.is_none() {
            return Ok(AppClient::plaintext(layout.client));
        }
        let creds = self.app_credentials(dept, app);
        AppClient::mutual_tls(layout.client, &creds.ca, &creds.cert, &creds.key)
    }

    /// A token from department `dept`'s demo identity provider for `officer` with `roles`.
    pub fn officer_token(&self, dept: &str, officer: &str, roles: &[String]) -> Result<String> {
        let federation = crate::directory::Directory::load(&self.directory)?.federation;
        let issuer = DemoIssuer::load(
            &self.dir.join("certs").join(format!("{dept}-idp.key")),
            DEMO_IDP_KID,
        )?;
        issuer.issue(
            &demo_issuer(&federation, dept),
            &demo_audience(&federation, dept),
            officer,
            roles,
            3600,
        )
    }
}

/// Re-read an existing layout (for `causeway demo` on a directory that already holds one).
pub fn open(dir: &Path) -> Result<Layout> {
    let directory_path = dir.join("federation.toml");
    let directory = crate::directory::Directory::load(&directory_path)?;
    let mut departments = Vec::new();
    for dept in directory.departments() {
        let config_path = dir.join(dept.id.as_str()).join("causeway.toml");
        let config = crate::config::GatewayConfig::load(&config_path)?;
        departments.push(DeptLayout {
            id: dept.id.clone(),
            client: config.client.listen,
            peer: config.peer.https,
            quic: config.peer.quic,
            admin: config
                .admin
                .as_ref()
                .map_or(config.client.listen, |a| a.listen),
            config: config_path,
            dir: dir.join(dept.id.as_str()),
        });
    }
    Ok(Layout {
        dir: dir.to_owned(),
        directory: directory_path,
        departments,
    })
}

/// The demo's (first) oversight node id.
pub const DEMO_OVERSIGHT: &str = "audit-office";

/// The demo's oversight nodes: two centres, each replicating every department and the other's
/// log, and witnessing the other (docs/OVERSIGHT.md, "Several oversight centres").
pub const DEMO_OVERSIGHT_NODES: [(&str, &str); 2] = [
    (DEMO_OVERSIGHT, "Audit Office"),
    ("data-protection", "Data Protection Authority"),
];

/// The directory of oversight node `id` in a layout: `DIR/oversight` for the demo's first node,
/// `DIR/oversight-<id>` for any other.
pub fn oversight_dir(layout: &Layout, id: &str) -> PathBuf {
    if id == DEMO_OVERSIGHT {
        layout.dir.join("oversight")
    } else {
        layout.dir.join(format!("oversight-{id}"))
    }
}

/// An oversight node's files and addresses.
#[derive(Debug, Clone)]
pub struct OversightLayout {
    /// Its `causeway.toml`.
    pub config: PathBuf,
    /// Its dashboard (loopback HTTP).
    pub dashboard: SocketAddr,
    /// Where it serves its own log (mTLS).
    pub peer: SocketAddr,
    /// Its admin listener (`/healthz`, `/readyz`, `/metrics`; loopback HTTP), if it has one.
    pub admin: Option<SocketAddr>,
    /// Its directory (`DIR/oversight`).
    pub dir: PathBuf,
}

/// Issue an oversight certificate for `id` from the layout's CA and write its `causeway.toml` in
/// [`oversight_dir`] (dashboard and own-log ports on loopback, replica and ledger beside the
/// config), and list it in the directory with its log's key, endpoint and witness key.
pub fn create_oversight(layout: &Layout, id: &str) -> Result<OversightLayout> {
    let certs = layout.dir.join("certs");
    let oversight = DeptId::new(id)?;
    let issued = pki::issue(
        &certs,
        &certs,
        &PeerIdentity::Oversight(oversight.clone()),
        &["localhost".into(), "127.0.0.1".into()],
    )?;
    // A node the directory does not list is answered by no department: list it with its keys
    // (replacing a listing without them) and publish; gateways pick it up as they reload.
    let source_path = layout.directory_source();
    let mut text = std::fs::read_to_string(&source_path)?;
    let name = match Directory::parse(&text)?.oversight_node(&oversight) {
        Some(listed) => {
            let name = listed.name.clone();
            text = source::remove(&text, &oversight)?;
            name
        }
        None => id.to_owned(),
    };
    let (dashboard, peer, admin) = (free_port()?, free_port()?, free_port()?);
    let listing = source::Listing {
        id: oversight,
        name,
        https: Some(format!("https://{peer}")),
        quic: None,
        vkey: issued.vkey.clone(),
        witness: Some(issued.witness_vkey.clone()),
    };
    std::fs::write(
        &source_path,
        source::add(&text, source::Member::Oversight, &listing)?,
    )?;
    layout.publish_directory()?;
    let file = |p: &Path| {
        p.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let dir = oversight_dir(layout, id);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("causeway.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Oversight node {id}: pulls and verifies every department's log (docs/OVERSIGHT.md).
# Relative paths are relative to this file.
department = "{id}"
role = "oversight"
directory = "../federation.toml"
directory_key = "../certs/directory.vkey"
directory_reload_secs = 2

[identity]
ca = "../certs/ca.pem"
cert = "../certs/{cert}"
key = "../certs/{key}"
signing_key = "../certs/{signing}"
witness_key = "../certs/{witness}"
# Every department's tag key derives from this root: only oversight nodes hold it.
tag_root = "../certs/tag-root.key"

# This node's own ledger: every oversight query is notarized here.
[ledger]
dir = "ledger"

# The dashboard and query API: plain HTTP, loopback only; staff sign in (accounts in
# staff.toml: `causeway oversight staff add|disable|enable|passwd|list --config THIS_FILE`).
[client]
listen = "{dashboard}"

# This node's own log (checkpoints, proofs) over mTLS.
[peer]
https = "{peer}"

# Health, readiness and metrics (loopback HTTP), as on a department gateway.
[admin]
listen = "{admin}"

[oversight]
replica = "replica"
staff = "staff.toml"
pull_interval_ms = 2000
grace_secs = 30
late_secs = 60
"#,
            cert = file(&issued.cert),
            key = file(&issued.key),
            signing = file(&issued.signing_key),
            witness = file(&issued.witness_key),
        ),
    )?;
    Ok(OversightLayout {
        config,
        dashboard,
        peer,
        admin: Some(admin),
        dir,
    })
}

/// The file beside a demo oversight node's config that holds its staff accounts' passwords.
pub const DEMO_STAFF_PASSWORDS: &str = "staff-passwords.txt";

/// The demo's staff accounts: sign-in name and roles (docs/OVERSIGHT.md, "Staff and roles").
pub const DEMO_STAFF: &[(&str, &[Role])] = &[
    ("viewer", &[Role::Viewer]),
    ("investigator", &[Role::Investigator]),
    ("officer", &[Role::Investigator, Role::SubjectOfficer]),
    (
        "admin",
        &[
            Role::Viewer,
            Role::Investigator,
            Role::SubjectOfficer,
            Role::Administrator,
        ],
    ),
];

/// Write the staff file `config` names with these accounts (name, roles, password), replacing
/// any there was.
pub fn write_staff(config: &Path, accounts: &[(&str, &[Role], &str)]) -> Result<PathBuf> {
    let path = crate::config::GatewayConfig::load(config)?
        .oversight
        .unwrap_or_default()
        .staff;
    let mut file = StaffFile::default();
    for (name, roles, password) in accounts {
        file.add(name, roles, password)?;
    }
    file.save(&path)?;
    Ok(path)
}

/// Give the demo's oversight node the [`DEMO_STAFF`] accounts, each with a random password,
/// written to [`DEMO_STAFF_PASSWORDS`] beside its config (0600), whose path is returned.
pub fn create_demo_staff(oversight: &OversightLayout) -> Result<PathBuf> {
    use base64::Engine as _;
    use rand::RngCore as _;
    let passwords: Vec<String> = DEMO_STAFF
        .iter()
        .map(|_| {
            let mut bytes = [0u8; 15];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        })
        .collect();
    let accounts: Vec<(&str, &[Role], &str)> = DEMO_STAFF
        .iter()
        .zip(&passwords)
        .map(|((name, roles), password)| (*name, *roles, password.as_str()))
        .collect();
    write_staff(&oversight.config, &accounts)?;
    let mut text = String::from("# The demo's oversight staff accounts (name, roles, password). Sign in at the dashboard,\n# or give the name to `causeway audit ... --staff NAME` (CAUSEWAY_STAFF_PASSWORD or a prompt).\n");
    for (name, roles, password) in &accounts {
        let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(text, "{name:<14} {:<58} {password}", roles.join(","));
    }
    let path = oversight.dir.join(DEMO_STAFF_PASSWORDS);
    crate::identity::write_secret(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The (first) oversight node of an existing layout, if it has one.
pub fn open_oversight(layout: &Layout) -> Result<Option<OversightLayout>> {
    open_oversight_node(layout, DEMO_OVERSIGHT)
}

/// Oversight node `id` of an existing layout, if it has been laid out.
pub fn open_oversight_node(layout: &Layout, id: &str) -> Result<Option<OversightLayout>> {
    let dir = oversight_dir(layout, id);
    let config_path = dir.join("causeway.toml");
    if !config_path.exists() {
        return Ok(None);
    }
    let config = crate::config::GatewayConfig::load(&config_path)?;
    Ok(Some(OversightLayout {
        config: config_path,
        dashboard: config.client.listen,
        peer: config.peer.https,
        admin: config.admin.as_ref().map(|a| a.listen),
        dir,
    }))
}

/// Deterministic synthetic people: national ids D000001.. with names, birth dates, addresses.
pub fn generate_demo_data(layout: &Layout, people: u32) -> Result<()> {
    const FIRST: &[&str] = &[
        "Aino", "Mart", "Liis", "Jaan", "Kadri", "Peeter", "Mari", "Toomas", "Anu", "Rasmus",
        "Eva", "Karl",
    ];
    const LAST: &[&str] = &[
        "Tamm", "Saar", "Sepp", "Mägi", "Kask", "Kukk", "Rebane", "Ilves", "Pärn", "Koppel",
        "O'Brien", "Lepp",
    ];
    const STREETS: &[&str] = &["Pikk", "Lai", "Vene", "Aia", "Kooli", "Mere", "Jõe", "Turu"];
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let open = |dept: &str, file: &str| -> Result<Option<rusqlite::Connection>> {
        let Some(d) = layout.dept(dept) else {
            return Ok(None);
        };
        let path = d.dir.join(file);
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        let db = rusqlite::Connection::open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        // As docs/DATASETS.md recommends: the gateway's reads then cost fewer system calls and
        // never hold up a writer's commit.
        db.pragma_update(None, "journal_mode", "WAL")?;
        Ok(Some(db))
    };
    let mut registry = open("civil-registry", "civil-registry.sqlite")?;
    let mut tax = open("tax-office", "tax-office.sqlite")?;
    let mut welfare = open("social-welfare", "social-welfare.sqlite")?;
    if let Some(db) = registry.as_mut() {
        db.execute_batch("CREATE TABLE residents (national_id TEXT PRIMARY KEY, name TEXT, birth_date TEXT, address TEXT, household TEXT);")?;
    }
    if let Some(db) = tax.as_mut() {
        db.execute_batch("CREATE TABLE income (national_id TEXT, year INTEGER, gross_income INTEGER, tax_paid INTEGER); CREATE INDEX income_id ON income(national_id, year);")?;
    }
    if let Some(db) = welfare.as_mut() {
        db.execute_batch("CREATE TABLE benefits (national_id TEXT, benefit TEXT, amount INTEGER, since TEXT); CREATE INDEX benefits_id ON benefits(national_id);")?;
    }
    let mut txs = (
        registry.as_mut().map(|c| c.transaction()).transpose()?,
        tax.as_mut().map(|c| c.transaction()).transpose()?,
        welfare.as_mut().map(|c| c.transaction()).transpose()?,
    );
    for n in 1..=people {
        let id = format!("D{n:06}");
        let r = next();
        if let Some(tx) = txs.0.as_ref() {
            let name = format!(
                "{} {}",
                FIRST[(r % 12) as usize],
                LAST[((r >> 8) % 12) as usize]
            );
            let birth = format!(
                "{}-{:02}-{:02}",
                1930 + (r >> 16) % 90,
                1 + (r >> 24) % 12,
                1 + (r >> 32) % 28
            );
            let address = format!(
                "{} {} , Tallinn",
                STREETS[((r >> 40) % 8) as usize],
                1 + (r >> 44) % 120
            );
            let household = format!("H{:05}", 1 + n / 3);
            tx.execute(
                "INSERT INTO residents VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![id, name, birth, address.replace(" ,", ","), household],
            )?;
        }
        if let Some(tx) = txs.1.as_ref() {
            for year in [2023, 2024] {
                let gross = 12_000 + (next() % 80_000) as i64;
                tx.execute(
                    "INSERT INTO income VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![id, year, gross, gross / 5],
                )?;
            }
        }
        if let Some(tx) = txs.2.as_ref() {
            if r % 4 == 0 {
                let benefit =
                    ["child-allowance", "housing", "unemployment"][((r >> 50) % 3) as usize];
                let amount = 100 + (r >> 20) % 600;
                let since = format!("20{:02}-{:02}-01", 15 + (r >> 12) % 10, 1 + (r >> 6) % 12);
                tx.execute(
                    "INSERT INTO benefits VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![id, benefit, amount as i64, since],
                )?;
            }
        }
    }
    if let Some(tx) = txs.0.take() {
        tx.commit()?;
    }
    if let Some(tx) = txs.1.take() {
        tx.commit()?;
    }
    if let Some(tx) = txs.2.take() {
        tx.commit()?;
    }
    Ok(())
}

/// Make every gateway of `layout` prefer `transport` towards its peers, by rewriting the `prefer`
/// line of the `[peer]` section of each `causeway.toml`.
pub fn set_preferred_transport(layout: &Layout, transport: Transport) -> Result<()> {
    for dept in &layout.departments {
        if transport == Transport::Quic && dept.quic.is_none() {
            anyhow::bail!(
                "{}: [peer] has no `quic` address, so {} cannot serve QUIC; add one (and a quic:// endpoint in {})",
                dept.config.display(),
                dept.id,
                layout.directory.display()
            );
        }
        let text = std::fs::read_to_string(&dept.config)
            .with_context(|| format!("reading {}", dept.config.display()))?;
        let line = format!("prefer = \"{transport}\"");
        let mut out = Vec::new();
        let (mut section, mut done) = (String::new(), false);
        for l in text.lines() {
            let trimmed = l.trim();
            if trimmed.starts_with('[') {
                if section == "[peer]" && !done {
                    out.push(line.clone());
                    done = true;
                }
                section = trimmed.to_owned();
            }
            if section == "[peer]"
                && trimmed.starts_with("prefer")
                && trimmed[6..].trim_start().starts_with('=')
            {
                out.push(line.clone());
                done = true;
                continue;
            }
            out.push(l.to_owned());
        }
        if !done {
            anyhow::ensure!(
                section == "[peer]",
                "{}: no [peer] section",
                dept.config.display()
            );
            out.push(line);
        }
        std::fs::write(&dept.config, out.join("\n") + "\n")
            .with_context(|| format!("writing {}", dept.config.display()))?;
    }
    Ok(())
}

/// Move the civil registry's demo data into PostgreSQL (`pg_url`, e.g.
/// `postgres://postgres@127.0.0.1:5432/causeway_demo`), creating that database if it is missing
/// and replacing its `residents` table, and point the civil registry's datasets file at it.
pub async fn move_registry_to_postgres(layout: &Layout, pg_url: &str) -> Result<()> {
    use std::str::FromStr;
    let registry = layout
        .dept("civil-registry")
        .context("the layout has no civil-registry")?;
    let config = tokio_postgres::Config::from_str(pg_url)
        .with_context(|| format!("--pg-url {pg_url:?} is not a PostgreSQL URL"))?;
    let database = config
        .get_dbname()
        .context(
            "--pg-url must name a database, like postgres://postgres@127.0.0.1:5432/causeway_demo",
        )?
        .to_owned();
    DeptId::new(&database.replace('_', "-"))
        .context("the database name may hold only lowercase letters, digits and '_'")?;
    let (host, port, user) = match (config.get_hosts().first(), config.get_ports().first(), config.get_user()) {
        (Some(tokio_postgres::config::Host::Tcp(h)), port, Some(user)) => (h.clone(), port.copied().unwrap_or(5432), user.to_owned()),
        _ => anyhow::bail!("--pg-url must name a TCP host and a user, like postgres://postgres@127.0.0.1:5432/causeway_demo"),
    };
    let where_ = format!("PostgreSQL at {host}:{port} as {user}");
    let connect = |config: tokio_postgres::Config| {
        let where_ = where_.clone();
        async move {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .with_context(|| format!("cannot connect to {where_}"))?;
            tokio::spawn(connection);
            anyhow::Ok(client)
        }
    };
    let mut admin = config.clone();
    admin.dbname("postgres");
    let admin = connect(admin).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await?
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await?;
    }
    let client = connect(config.clone()).await?;
    client
        .batch_execute("DROP TABLE IF EXISTS residents; CREATE TABLE residents (national_id text PRIMARY KEY, name text, birth_date text, address text, household text)")
        .await?;
    let sqlite = rusqlite::Connection::open(registry.dir.join("civil-registry.sqlite"))?;
    let mut select = sqlite
        .prepare("SELECT national_id, name, birth_date, address, household FROM residents")?;
    let rows: Vec<[String; 5]> = select
        .query_map([], |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
        })?
        .collect::<Result<_, _>>()?;
    let insert = client.prepare("INSERT INTO residents SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])").await?;
    for chunk in rows.chunks(2000) {
        let column = |i: usize| chunk.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
        client
            .execute(
                &insert,
                &[&column(0), &column(1), &column(2), &column(3), &column(4)],
            )
            .await?;
    }
    let datasets = registry.dir.join("datasets.toml");
    let text = std::fs::read_to_string(&datasets)?;
    let text = text.replace(
        "adapter = \"sqlite\"\ndatabase = \"civil-registry.sqlite\"",
        &format!("adapter = \"postgres\"\nhost = \"{host}\"\nport = {port}\nuser = \"{user}\"\ndatabase = \"{database}\""),
    );
    anyhow::ensure!(
        text.contains("adapter = \"postgres\""),
        "{}: could not switch the residents dataset to PostgreSQL",
        datasets.display()
    );
    std::fs::write(&datasets, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_list_both_endpoints_and_switch_the_preferred_transport() {
        let dir = tempfile::tempdir().unwrap();
        let layout = create(dir.path(), "demo", &[("tax-office", "Tax")]).unwrap();
        let config = crate::config::GatewayConfig::load(&layout.departments[0].config).unwrap();
        assert_eq!(config.peer.prefer, Transport::Https);
        assert_eq!(config.peer.quic, layout.departments[0].quic);
        let directory = crate::directory::Directory::load(&layout.directory).unwrap();
        let tax = directory.departments().next().unwrap();
        assert!(tax.https.is_some() && tax.quic.is_some());

        set_preferred_transport(&layout, Transport::Quic).unwrap();
        let config = crate::config::GatewayConfig::load(&layout.departments[0].config).unwrap();
        assert_eq!(config.peer.prefer, Transport::Quic);
        set_preferred_transport(&layout, Transport::Https).unwrap();
        let text = std::fs::read_to_string(&layout.departments[0].config).unwrap();
        assert_eq!(text.matches("prefer = ").count(), 1, "{text}");
        assert!(text.contains("prefer = \"https\""), "{text}");
    }
}
