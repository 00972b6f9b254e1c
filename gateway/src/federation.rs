//! Lays a federation out on disk the way a real deployment would: a CA, per-department
//! certificates and signing keys, `federation.toml`, and per department a `causeway.toml`, its
//! datasets file, policy directory, ledger directory and demo database. Used by `causeway demo`
//! and by the end-to-end tests.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::identity::{pki, DeptId, PeerIdentity};

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

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
    /// Look a department up by id.
    pub fn dept(&self, id: &str) -> Option<&DeptLayout> {
        self.departments.iter().find(|d| d.id.as_str() == id)
    }
}

/// A free loopback port (bound and released; the gateway binds it again moments later).
pub fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// Create the federation in `dir` with `departments` (id, display name). Sample files under
/// policies/samples/<id>/ are copied in (datasets.toml beside the config, the rest into policies/).
pub fn create(dir: &Path, federation: &str, departments: &[(&str, &str)]) -> Result<Layout> {
    let certs = dir.join("certs");
    pki::init_federation(federation, &certs)?;
    let mut directory = format!("# The federation directory: every department, its endpoints and its note verifier key.\nfederation = \"{federation}\"\n");
    let mut layouts = Vec::new();
    for (id, name) in departments {
        let dept = DeptId::new(id)?;
        let issued = pki::issue(
            &certs,
            &certs,
            &PeerIdentity::Dept(dept.clone()),
            &["localhost".into(), "127.0.0.1".into()],
        )?;
        let (client, peer, admin) = (free_port()?, free_port()?, free_port()?);
        write!(
            directory,
            "\n[[department]]\nid = \"{id}\"\nname = \"{name}\"\nhttps = \"https://{peer}\"\nvkey = \"{}\"\n",
            issued.vkey
        )?;
        let dept_dir = dir.join(id);
        let policies = dept_dir.join("policies");
        std::fs::create_dir_all(&policies)?;
        let mut has_datasets = false;
        for (path, contents) in SAMPLES {
            let Some(file) = path.strip_prefix(&format!("{id}/")) else {
                continue;
            };
            if file == "datasets.toml" {
                has_datasets = true;
                std::fs::write(dept_dir.join(file), contents)?;
            } else {
                std::fs::write(policies.join(file), contents)?;
            }
        }
        if !has_datasets {
            std::fs::write(
                dept_dir.join("datasets.toml"),
                "# No datasets: this department only asks.\n",
            )?;
        }
        let config = dept_dir.join("causeway.toml");
        std::fs::write(
            &config,
            format!(
                r#"# Gateway of {name}. Relative paths are relative to this file.
department = "{id}"
directory = "../federation.toml"
datasets = "datasets.toml"
policies = "policies"

[identity]
ca = "../certs/ca.pem"
cert = "../certs/{id}.pem"
key = "../certs/{id}.key"
signing_key = "../certs/{id}.signing.key"
tag_key = "../certs/federation.tag.key"

[ledger]
dir = "ledger"

[client]
listen = "{client}"

[peer]
https = "{peer}"

[admin]
listen = "{admin}"
"#
            ),
        )?;
        layouts.push(DeptLayout {
            id: dept,
            config,
            client,
            peer,
            admin,
            dir: dept_dir,
        });
    }
    let directory_path = dir.join("federation.toml");
    std::fs::write(&directory_path, directory)?;
    Ok(Layout {
        dir: dir.to_owned(),
        directory: directory_path,
        departments: layouts,
    })
}

/// Re-read an existing layout (for `causeway demo` on a directory that already holds one).
pub fn open(dir: &Path) -> Result<Layout> {
    let directory_path = dir.join("federation.toml");
    let directory = crate::config::Directory::load(&directory_path)?;
    let mut departments = Vec::new();
    for dept in directory.departments() {
        let config_path = dir.join(dept.id.as_str()).join("causeway.toml");
        let config = crate::config::GatewayConfig::load(&config_path)?;
        departments.push(DeptLayout {
            id: dept.id.clone(),
            client: config.client.listen,
            peer: config.peer.https,
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
        Ok(Some(
            rusqlite::Connection::open(&path)
                .with_context(|| format!("creating {}", path.display()))?,
        ))
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
