//! `causeway doctor`: check a gateway's or oversight node's setup the way an operator would by
//! hand, and say what to do about each problem.
//!
//! Every check reads what the node itself would read (its config, key files, certificate, the
//! signed directory, its datasets, its ledger) with the same code, and asks each peer for its
//! clock over the peer listener with the node's own certificate. Nothing is written: the ledger is
//! opened read-only in effect (LMDB allows a second process beside the running node), and a
//! database gets a trivial query. Checks that need something an earlier check found broken are
//! left out, so the first failure is the one to fix first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use time::OffsetDateTime;

use super::output::{print_json, OutputArg, CONFIG_ENV};
use crate::config::{GatewayConfig, Role};
use crate::directory::{signed, Directory};
use crate::identity::tls::{provider, TlsMaterial};
use crate::identity::{GatewayKey, PeerIdentity, TagKey};
use crate::text::visible;
use causeway_ledger::entry::Kind;

/// Days before a certificate's expiry from which `doctor` warns.
const CERT_WARN_DAYS: i64 = 30;
/// Days before the directory's expiry from which `doctor` warns.
const DIRECTORY_WARN_DAYS: i64 = 7;
/// Clock difference to a peer from which `doctor` warns (an HTTP date has whole seconds).
const SKEW_WARN_SECS: i64 = 5;

/// `causeway doctor`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  causeway doctor --config causeway-demo/civil-registry/causeway.toml
  causeway doctor --config causeway-demo/oversight/causeway.toml
  CAUSEWAY_CONFIG=/etc/causeway/causeway.toml causeway doctor --output json | jq '.checks[] | select(.status != \"ok\")'

Checks, each ok, warn or fail with what to do: the config parses; key files exist with mode 0600;
the certificate's expiry (warn under 30 days), its chain to the federation CA, its identity and key,
the CRL (fresh, and not revoking it); the signing key against the directory; the tag key; the directory's signature, expiry and serial (not older than
the ledger recorded); each dataset's database answers a trivial query; the ledger's chain, Merkle
root and checkpoint signatures; each peer's clock (its HTTP Date, over the peer listener with this
node's certificate; an unreachable peer is a warning). Exits 0 when nothing failed, 1 otherwise.")]
pub(crate) struct DoctorArgs {
    /// The gateway's or oversight node's causeway.toml.
    #[arg(long, env = CONFIG_ENV)]
    config: PathBuf,
    /// How long to wait for each database and each peer, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    #[command(flatten)]
    output: OutputArg,
}

/// A check's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check: what was looked at, what was found, and what to do about it.
#[derive(Debug, Serialize)]
struct Check {
    check: String,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

/// The checks made so far.
#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn ok(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.push(check.into(), Status::Ok, detail.into(), None);
    }

    fn warn(
        &mut self,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(check.into(), Status::Warn, detail.into(), Some(fix.into()));
    }

    fn fail(
        &mut self,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(check.into(), Status::Fail, detail.into(), Some(fix.into()));
    }

    fn push(&mut self, check: String, status: Status, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            check,
            status,
            detail,
            fix,
        });
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

pub(crate) async fn run(args: DoctorArgs) -> Result<ExitCode> {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let mut report = Report::default();
    diagnose(&args.config, timeout, &mut report).await;
    let (failed, warned) = (report.count(Status::Fail), report.count(Status::Warn));
    if args.output.is_json() {
        print_json(&serde_json::json!({
            "config": args.config,
            "ok": failed == 0,
            "failed": failed,
            "warnings": warned,
            "checks": report.checks,
        }))?;
    } else {
        for c in &report.checks {
            let status = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("{status}  {:<26} {}", c.check, visible(&c.detail));
            if let Some(fix) = &c.fix {
                println!("      {:<26} -> {}", "", visible(fix));
            }
        }
        println!(
            "\n{}: {} check(s), {failed} failed, {warned} warning(s)",
            args.config.display(),
            report.checks.len()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Run every check that can run, in the order a node starts.
async fn diagnose(path: &Path, timeout: Duration, report: &mut Report) {
    let config = match GatewayConfig::load(path) {
        Ok(config) => config,
        Err(e) => {
            report.fail(
                "config",
                format!("{e:#}"),
                "fix the file where the message points (docs/OPERATIONS.md lists every key), then run doctor again",
            );
            return;
        }
    };
    let me = match config.role {
        Role::Oversight => PeerIdentity::Oversight(config.department.clone()),
        _ => PeerIdentity::Dept(config.department.clone()),
    };
    report.ok(
        "config",
        format!(
            "{}: {} {}",
            path.display(),
            if matches!(me, PeerIdentity::Oversight(_)) {
                "oversight node"
            } else {
                "department gateway"
            },
            config.department
        ),
    );
    key_files(&config, report);
    let directory = directory(&config, &me, report);
    let tls = certificate(&config, directory.as_ref(), &me, report);
    if let Some(tls) = &tls {
        revocation(&config, tls, report);
    }
    if let Some(directory) = &directory {
        signing_key(&config, directory, report);
    }
    tag_key(&config, report);
    datasets(&config, timeout, report).await;
    ledger(&config, directory.as_ref(), report);
    if let (Some(directory), Some(tls)) = (&directory, &tls) {
        clocks(&config, directory, tls, timeout, report).await;
    }
}

/// Each file the node reads: present, and the secret ones readable by their owner only.
fn key_files(config: &GatewayConfig, report: &mut Report) {
    let id = &config.identity;
    let mut files: Vec<(&str, &Path, bool)> = vec![
        ("CA bundle", &id.ca, false),
        ("certificate", &id.cert, false),
        ("TLS key", &id.key, true),
        ("signing key", &id.signing_key, true),
    ];
    let optional = [
        ("tag key", id.tag_key.as_deref(), true),
        ("tag root", id.tag_root.as_deref(), true),
        ("witness key", id.witness_key.as_deref(), true),
        ("CRL", id.crl.as_deref(), false),
        ("directory key", config.directory_key.as_deref(), false),
        ("datasets file", config.datasets.as_deref(), false),
        ("application CA", config.client.app_ca.as_deref(), false),
        (
            "applications file",
            config.client.applications.as_deref(),
            false,
        ),
    ];
    files.extend(
        optional
            .into_iter()
            .filter_map(|(what, path, secret)| path.map(|p| (what, p, secret))),
    );
    let pseudonym = id.pseudonym_key(&config.ledger.dir);
    if let Some(o) = &config.oversight {
        files.push(("staff file", &o.staff, true));
        if let Some(secret) = o
            .oidc
            .as_ref()
            .and_then(|o| o.client_secret_file.as_deref())
        {
            files.push(("OIDC client secret", secret, true));
        }
    }
    if pseudonym.exists() || id.pseudonym_key.is_some() {
        files.push(("pseudonym key", &pseudonym, true));
    }
    for (what, path, secret) in files {
        let check = format!("file: {what}");
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                report.fail(
                    check,
                    format!("{}: {e}", path.display()),
                    format!("put the {what} there, or correct its path in the config"),
                );
                continue;
            }
        };
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                report.fail(
                    check,
                    format!(
                        "{}: mode {mode:04o}: others on this host can read a secret",
                        path.display()
                    ),
                    format!(
                        "chmod 600 {} (owned by the account the node runs as); if anyone else may have read it, replace the key",
                        path.display()
                    ),
                );
                continue;
            }
            report.ok(check, format!("{} (mode {mode:04o})", path.display()));
            continue;
        }
        let _ = (secret, metadata);
        report.ok(check, path.display().to_string());
    }
}

/// The directory: signed by the operator, not expired, not older than what the ledger recorded,
/// and listing this node.
fn directory(config: &GatewayConfig, me: &PeerIdentity, report: &mut Report) -> Option<Directory> {
    let path = &config.directory;
    let source = match config.directory_source() {
        Ok(source) => source,
        Err(e) => {
            report.fail(
                "directory signature",
                format!("{e:#}"),
                "set directory_key to the federation operator's directory.vkey (from `causeway certs init`)",
            );
            return None;
        }
    };
    let directory = match source {
        None => match Directory::load(path) {
            Ok(d) => {
                report.warn(
                    "directory signature",
                    format!("{}: unsigned, read as written (no directory_key in the config)", path.display()),
                    "a development setting: set directory_key to the federation operator's directory.vkey, and use the directory `causeway federation publish` signs",
                );
                d
            }
            Err(e) => {
                report.fail(
                    "directory",
                    format!("{e:#}"),
                    "get the federation's current federation.toml from its operator",
                );
                return None;
            }
        },
        Some(source) => {
            let bytes = match std::fs::read(&source.path) {
                Ok(b) => b,
                Err(e) => {
                    report.fail(
                        "directory",
                        format!("{}: {e}", source.path.display()),
                        "get the federation's current federation.toml from its operator",
                    );
                    return None;
                }
            };
            let now = OffsetDateTime::now_utc();
            let from = source.path.display().to_string();
            match signed::open(&bytes, &source.operator, now, &from) {
                Ok(published) => {
                    report.ok(
                        "directory signature",
                        format!(
                            "{from}: serial {}, signed by the federation operator's key {}",
                            published.serial,
                            source.operator.name()
                        ),
                    );
                    let days = (published.expires - now).whole_days();
                    let expires = published
                        .expires
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    if days < DIRECTORY_WARN_DAYS {
                        report.warn(
                            "directory expiry",
                            format!("serial {} expires {expires} ({days} day(s) left)", published.serial),
                            "ask the federation operator to publish a fresh directory (`causeway federation publish`) before then: nodes refuse an expired one",
                        );
                    } else {
                        report.ok(
                            "directory expiry",
                            format!(
                                "serial {} expires {expires} ({days} days left)",
                                published.serial
                            ),
                        );
                    }
                    recorded_serial(config, published.serial, report);
                    published.directory
                }
                Err(e) => {
                    let fix = match &e {
                        signed::DirectoryError::Expired { .. } => "ask the federation operator for a fresh directory (`causeway federation publish`) and put it in place; the node applies it without a restart",
                        signed::DirectoryError::BadSignature { .. } => "the file was changed after it was signed, or directory_key is not the operator's key: get the published federation.toml again from the operator",
                        _ => "get the published federation.toml again from the federation operator",
                    };
                    report.fail("directory signature", e.to_string(), fix);
                    return None;
                }
            }
        }
    };
    if directory.lists(me) {
        report.ok(
            "directory listing",
            format!("lists {}", me.uri(&directory.federation)),
        );
    } else {
        report.fail(
            "directory listing",
            format!(
                "{} does not list {}",
                path.display(),
                me.uri(&directory.federation)
            ),
            "ask the federation operator to add this node (`causeway federation add`) and publish",
        );
    }
    Some(directory)
}

/// The directory's serial against the last one the ledger recorded: a node refuses to start with
/// an older directory (a rollback).
fn recorded_serial(config: &GatewayConfig, serial: u64, report: &mut Report) {
    let dir = &config.ledger.dir;
    if !dir.join("data.mdb").exists() {
        return;
    }
    let last = super::log::open_store(dir).and_then(|store| {
        let size = store.head()?.frontier.size();
        let last = store.read(|r| causeway_ledger::last_of_kind(r, size, Kind::DirectoryChange))?;
        Ok(last.and_then(|entry| entry.detail?.get("serial")?.as_u64()))
    });
    match last {
        Ok(Some(recorded)) if recorded > serial => report.fail(
            "directory serial",
            format!("serial {serial} is older than serial {recorded}, which the ledger recorded in force: a rolled-back directory"),
            "put the newest published federation.toml in place (the node refuses to start with an older one)",
        ),
        Ok(Some(recorded)) => report.ok(
            "directory serial",
            format!("serial {serial}; the ledger last recorded serial {recorded}"),
        ),
        Ok(None) => report.ok(
            "directory serial",
            format!("serial {serial}; the ledger has recorded no directory yet"),
        ),
        // The ledger check reports a ledger that does not open.
        Err(_) => {}
    }
}

/// The certificate: its expiry, its chain to the federation CA, the identity it proves and its
/// key. The node's TLS material, for asking peers, when all of that holds.
fn certificate(
    config: &GatewayConfig,
    directory: Option<&Directory>,
    me: &PeerIdentity,
    report: &mut Report,
) -> Option<TlsMaterial> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, UnixTime};
    let id = &config.identity;
    let chain: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(&id.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
    {
        Ok(chain) if !chain.is_empty() => chain,
        Ok(_) | Err(_) => {
            report.fail(
                "certificate",
                format!("{}: no PEM certificate in it", id.cert.display()),
                "issue the certificate again (`causeway certs request` and the operator's `causeway certs sign`)",
            );
            return None;
        }
    };
    let leaf = &chain[0];
    let (not_before, not_after) = match x509_parser::parse_x509_certificate(leaf.as_ref()) {
        Ok((_, parsed)) => (
            parsed.validity().not_before.to_datetime(),
            parsed.validity().not_after.to_datetime(),
        ),
        Err(e) => {
            report.fail(
                "certificate",
                format!("{}: does not parse: {e}", id.cert.display()),
                "issue the certificate again (`causeway certs request` and the operator's `causeway certs sign`)",
            );
            return None;
        }
    };
    let now = OffsetDateTime::now_utc();
    let days = (not_after - now).whole_days();
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let mut usable = true;
    if now > not_after {
        usable = false;
        report.fail(
            "certificate expiry",
            format!("{}: expired {}", id.cert.display(), rfc3339(not_after)),
            "renew it now (docs/OPERATIONS.md, \"Renewing a certificate\"): peers refuse an expired certificate",
        );
    } else if now < not_before {
        usable = false;
        report.fail(
            "certificate expiry",
            format!(
                "{}: not valid before {}",
                id.cert.display(),
                rfc3339(not_before)
            ),
            "check this machine's clock, or wait until then",
        );
    } else if days < CERT_WARN_DAYS {
        report.warn(
            "certificate expiry",
            format!("{}: expires {} ({days} day(s) left)", id.cert.display(), rfc3339(not_after)),
            "renew it before then (docs/OPERATIONS.md, \"Renewing a certificate\"); the node puts a renewed one in force without a restart",
        );
    } else {
        report.ok(
            "certificate expiry",
            format!(
                "{}: expires {} ({days} days left)",
                id.cert.display(),
                rfc3339(not_after)
            ),
        );
    }
    match federation_ca_verifies(&id.ca, leaf, &chain[1..], UnixTime::now()) {
        Ok(()) => report.ok(
            "certificate chain",
            format!("issued by the federation CA in {}", id.ca.display()),
        ),
        Err(e) => {
            usable = false;
            report.fail(
                "certificate chain",
                format!("{}: {e}", id.cert.display()),
                format!(
                    "the certificate must be issued by the federation CA in {}: have the operator sign this node's request (`causeway certs sign`)",
                    id.ca.display()
                ),
            );
        }
    }
    let (Some(directory), true) = (directory, usable) else {
        return None;
    };
    match TlsMaterial::load_identity(id, &directory.federation, me) {
        Ok(tls) => {
            report.ok(
                "certificate identity",
                format!(
                    "proves {}; the TLS key {} is its key",
                    me.uri(&directory.federation),
                    id.key.display()
                ),
            );
            Some(tls)
        }
        Err(e) => {
            report.fail(
                "certificate identity",
                format!("{e:#}"),
                "use the certificate and key issued for this node's id, as a pair",
            );
            None
        }
    }
}

/// The CRL of `[identity] crl`, as the node put it in force: accepted, not stale, and not
/// revoking this node's own certificate.
fn revocation(config: &GatewayConfig, tls: &TlsMaterial, report: &mut Report) {
    let Some(path) = &config.identity.crl else {
        return;
    };
    let revocation = tls.revocation();
    if revocation.refuses(&tls.leaf()) == Some("its certificate is revoked") {
        report.fail(
            "certificate revocation",
            format!(
                "{}: the CRL {} revokes this node's own certificate",
                config.identity.cert.display(),
                path.display()
            ),
            "peers refuse it: get a new certificate issued (`causeway certs request`, the operator's `causeway certs sign`)",
        );
        return;
    }
    let status = revocation.status();
    let next = status.next_update.as_deref().unwrap_or("?");
    if let Some(refusal) = &status.last_refusal {
        report.fail(
            "certificate revocation",
            format!("{}: refused: {refusal}", path.display()),
            "put the federation operator's current CRL there (`causeway certs crl` writes it)",
        );
    } else if status.stale {
        let closed = status.stale_policy == "fail-closed";
        let detail = format!(
            "{}: past its next update {next} ({})",
            path.display(),
            status.stale_policy
        );
        let fix = "put a fresh CRL there (the operator runs `causeway certs crl`)";
        if closed {
            report.fail(
                "certificate revocation",
                format!("{detail}: every peer is refused"),
                fix,
            );
        } else {
            report.warn("certificate revocation", detail, fix);
        }
    } else {
        report.ok(
            "certificate revocation",
            format!(
                "{}: number {}, {} revoked, next update {next}; this node's certificate is not revoked",
                path.display(),
                status.number.as_deref().unwrap_or("?"),
                status.revoked
            ),
        );
    }
}

/// Whether `leaf` chains to a root of the CA bundle at `ca`, as peers check it.
fn federation_ca_verifies(
    ca: &Path,
    leaf: &rustls_pki_types::CertificateDer<'static>,
    intermediates: &[rustls_pki_types::CertificateDer<'static>],
    now: rustls_pki_types::UnixTime,
) -> Result<()> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading the CA bundle {}", ca.display()))?
    {
        roots
            .add(der.with_context(|| format!("parsing the CA bundle {}", ca.display()))?)
            .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .context("building a verifier for the CA bundle")?;
    verifier
        .verify_client_cert(leaf, intermediates, now)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("not trusted under the CA bundle: {e}"))
}

/// The signing key: it loads, and it is the key the directory lists for this node's log.
fn signing_key(config: &GatewayConfig, directory: &Directory, report: &mut Report) {
    let path = &config.identity.signing_key;
    let key = match GatewayKey::load(path) {
        Ok(key) => key,
        Err(e) => {
            report.fail(
                "signing key",
                e.to_string(),
                "restore the signing key from this node's backup; without it the node cannot sign its log",
            );
            return;
        }
    };
    let vkey = key.vkey();
    let Some(listed) = directory.log(&config.department) else {
        return;
    };
    if listed
        .instances
        .iter()
        .any(|i| i.verifier.to_vkey() == vkey)
    {
        report.ok(
            "signing key",
            format!(
                "{}: the key the directory lists for {}",
                path.display(),
                key_name(&vkey)
            ),
        );
    } else {
        report.fail(
            "signing key",
            format!(
                "{}: its key {vkey} is not the one the directory lists ({})",
                path.display(),
                listed.verifier.to_vkey()
            ),
            "use the signing key whose public key the directory lists, or have the operator list this one (`causeway federation rotate-key`) and publish",
        );
    }
}

/// The tag key, if the config names one: it reads as a tag key (`VERSION:hex`).
fn tag_key(config: &GatewayConfig, report: &mut Report) {
    let Some(path) = config.identity.tag_key.as_deref() else {
        return;
    };
    if !path.exists() {
        return; // the file check reported it
    }
    match TagKey::load(path) {
        Ok(key) => report.ok(
            "tag key",
            format!("{}: version {}", path.display(), key.version()),
        ),
        Err(e) => report.fail(
            "tag key",
            e.to_string(),
            "install the tag key the oversight body derived for this department (`causeway certs tag-key`)",
        ),
    }
}

/// The key name of a vkey (`name+hash+key`).
fn key_name(vkey: &str) -> &str {
    vkey.split('+').next().unwrap_or(vkey)
}

/// Each dataset's database: the datasets file opens, and each source answers a trivial query.
async fn datasets(config: &GatewayConfig, timeout: Duration, report: &mut Report) {
    let Some(path) = &config.datasets else {
        return;
    };
    let catalog = match tokio::time::timeout(
        timeout.saturating_mul(4),
        causeway_adapters::Catalog::open(path),
    )
    .await
    {
        Ok(Ok(catalog)) => catalog,
        Ok(Err(e)) => {
            report.fail(
                "datasets",
                e.to_string(),
                "fix the datasets file where the message points, or start the database it names",
            );
            return;
        }
        Err(_) => {
            report.fail(
                "datasets",
                format!("{}: the datasets did not open within {} ms", path.display(), timeout.saturating_mul(4).as_millis()),
                "check that every database the datasets file names is running and reachable from this host",
            );
            return;
        }
    };
    let names: Vec<(String, &'static str)> = catalog
        .datasets()
        .map(|d| (d.name.clone(), d.adapter.as_str()))
        .collect();
    for (name, adapter) in names {
        let check = format!("database: {name}");
        match catalog.check(&name, timeout).await {
            Ok(()) => report.ok(check, format!("{adapter}: connected and answered a trivial query")),
            Err(e) => report.fail(
                check,
                format!("{adapter}: {e}"),
                format!(
                    "start the {adapter} database of dataset {name}, or correct its connection settings in {}; the warning on stderr gives the driver's reason",
                    path.display()
                ),
            ),
        }
    }
}

/// The ledger: every entry re-hashed along the chain, the Merkle root and every checkpoint's
/// signature, against the keys the directory lists for this node's log.
fn ledger(config: &GatewayConfig, directory: Option<&Directory>, report: &mut Report) {
    let dir = &config.ledger.dir;
    if !dir.join("data.mdb").exists() {
        report.warn(
            "ledger",
            format!("{}: no ledger yet", dir.display()),
            "the node creates it at its first start; if it ran before, [ledger] dir points at the wrong directory, or the ledger was lost: restore it from a backup",
        );
        return;
    }
    let verified = super::log::open_store(dir).and_then(|store| {
        let keys =
            super::log::log_keys(&store, dir, directory.map(|_| config.directory.as_path()))?;
        let result = store.read(|r| {
            Ok(causeway_ledger::verify::verify_log_history(
                r,
                &keys.0,
                |_| {},
            ))
        })?;
        Ok(result)
    });
    match verified {
        Ok(Ok(v)) => report.ok(
            "ledger",
            format!(
                "{}: {} entries, {} checkpoints: the chain, the Merkle root {} and every checkpoint signature verify",
                dir.display(),
                v.entries,
                v.checkpoints,
                v.root
            ),
        ),
        Ok(Err(failure)) => report.fail(
            "ledger",
            format!("{}: FAILED at {failure}", dir.display()),
            "stop the node and keep this ledger as evidence; restore the last good backup (docs/OPERATIONS.md) and tell the oversight body",
        ),
        Err(e) => report.fail(
            "ledger",
            format!("{e:#}"),
            "check [ledger] dir and that this account may read it",
        ),
    }
}

/// Each peer's clock against ours: the `Date` of its answer over the peer listener, asked with
/// this node's own certificate. A peer that cannot be reached is a warning: it may be down, and
/// the node works without it.
async fn clocks(
    config: &GatewayConfig,
    directory: &Directory,
    tls: &TlsMaterial,
    timeout: Duration,
    report: &mut Report,
) {
    let client = match tls.client_config(crate::transport::HTTPS_ALPN) {
        Ok(client) => client,
        Err(e) => {
            report.warn(
                "clock",
                format!("cannot build this node's TLS client: {e:#}"),
                "fix the certificate problems above, then run doctor again",
            );
            return;
        }
    };
    let max_skew = i64::try_from(config.peer.max_skew_secs).unwrap_or(i64::MAX);
    for peer in directory.logs().filter(|d| d.id != config.department) {
        let check = format!("clock: {}", peer.id);
        let Some(endpoint) = peer.https.as_deref() else {
            continue;
        };
        let asked = OffsetDateTime::now_utc();
        let answer = tokio::time::timeout(timeout, peer_date(client.clone(), endpoint)).await;
        let answered = OffsetDateTime::now_utc();
        let theirs = match answer {
            Ok(Ok(date)) => date,
            Ok(Err(e)) => {
                report.warn(
                    check,
                    format!("{endpoint}: {e}"),
                    format!(
                        "if {} should be up, check its gateway and the network path to {endpoint}",
                        peer.id
                    ),
                );
                continue;
            }
            Err(_) => {
                report.warn(
                    check,
                    format!("{endpoint}: no answer within {} ms", timeout.as_millis()),
                    format!(
                        "if {} should be up, check its gateway and the network path to {endpoint}",
                        peer.id
                    ),
                );
                continue;
            }
        };
        // Whole seconds on their side: compare with the middle of the round trip, rounded down.
        let ours = asked + (answered - asked) / 2_i32;
        let skew = (theirs.unix_timestamp() - ours.unix_timestamp()).abs();
        let detail = format!(
            "{endpoint}: its clock is {skew} s {} ours",
            if theirs.unix_timestamp() >= ours.unix_timestamp() {
                "ahead of"
            } else {
                "behind"
            }
        );
        if skew > max_skew {
            report.fail(
                check,
                detail,
                format!("more than [peer] max_skew_secs ({max_skew} s): envelopes between the two are refused as stale; synchronize both clocks (NTP)"),
            );
        } else if skew > SKEW_WARN_SECS {
            report.warn(check, detail, "synchronize both clocks (NTP) before the difference grows past [peer] max_skew_secs");
        } else {
            report.ok(check, detail);
        }
    }
}

/// The `Date` of a peer's answer to `GET /causeway/v1/log/checkpoint` over HTTP/2 with mutual TLS.
async fn peer_date(
    client: Arc<rustls::ClientConfig>,
    endpoint: &str,
) -> Result<OffsetDateTime, String> {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("not a host name: {e}"))?;
    let tcp = tokio::net::TcpStream::connect(endpoint)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(client)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (sender, connection) = h2::client::handshake(stream)
        .await
        .map_err(|e| format!("HTTP/2: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut sender = sender.ready().await.map_err(|e| format!("HTTP/2: {e}"))?;
    let request = http::Request::get(format!(
        "https://{endpoint}{}",
        crate::transport::paths::CHECKPOINT
    ))
    .body(())
    .map_err(|e| e.to_string())?;
    let (response, _) = sender
        .send_request(request, true)
        .map_err(|e| format!("HTTP/2: {e}"))?;
    let response = response.await.map_err(|e| format!("HTTP/2: {e}"))?;
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .ok_or_else(|| format!("answered {} without a Date header", response.status()))?;
    parse_http_date(date)
        .ok_or_else(|| format!("answered with a Date that does not parse: {date:?}"))
}

/// An HTTP date (RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(date: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(date, &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_as_utc() {
        let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(date.unix_timestamp(), 784_111_777);
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(parse_http_date("").is_none());
    }
}
