//! `causeway certs`: the federation CA and department credentials.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::identity::{pki, AppId, DeptId, PeerIdentity};

#[derive(Subcommand)]
pub(crate) enum CertsCommand {
    /// Create a federation CA (ca.pem, ca.key) and the tag root (tag-root.key), which only the
    /// oversight nodes keep.
    #[command(after_help = "Example:\n  causeway certs init --federation demo --out certs/")]
    Init {
        /// Federation name (lowercase letters, digits, '-').
        #[arg(long)]
        federation: String,
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a department (or oversight) TLS certificate and Ed25519 signing key.
    #[command(
        after_help = "Example:\n  causeway certs issue --dept tax-office --out certs/\n  causeway certs issue --oversight audit-office --out certs/ --host oversight.example"
    )]
    Issue {
        /// Department id.
        #[arg(long, conflicts_with = "oversight")]
        dept: Option<String>,
        /// Oversight node id.
        #[arg(long)]
        oversight: Option<String>,
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// Directory holding ca.pem and ca.key (default: --out).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Host names or IP addresses the gateway is reached at (repeatable).
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
    },
    /// Enrollment, on the department's machine: create this department's TLS key and note signing
    /// key (they never leave --out) and a certificate signing request for the federation operator.
    #[command(
        after_help = "Example:\n  causeway certs request --dept tax-office --ca ca.pem --out certs/ --host tax.gw.example\n\nSend certs/tax-office.csr.pem and certs/tax-office.pub.toml to the federation operator, who runs\n`causeway certs sign` and `causeway federation add --keys tax-office.pub.toml`. Keep the .key files."
    )]
    Request {
        /// Department id.
        #[arg(long, conflicts_with = "oversight")]
        dept: Option<String>,
        /// Oversight node id.
        #[arg(long)]
        oversight: Option<String>,
        /// The federation's CA certificate (ca.pem, public).
        #[arg(long)]
        ca: PathBuf,
        /// Directory to write the keys and the request into.
        #[arg(long)]
        out: PathBuf,
        /// Host names or IP addresses the gateway is reached at (repeatable).
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
    },
    /// Enrollment, on the operator's machine: issue the certificate a department's signing request
    /// asks for. The request must carry exactly that department's (or oversight node's) identity;
    /// a request for any other is refused. Only its public key and host names are used.
    #[command(
        after_help = "Example:\n  causeway certs sign --ca certs/ --csr tax-office.csr.pem --dept tax-office --out certs/"
    )]
    Sign {
        /// Department id the certificate is for.
        #[arg(long, conflicts_with = "oversight")]
        dept: Option<String>,
        /// Oversight node id the certificate is for.
        #[arg(long)]
        oversight: Option<String>,
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca: PathBuf,
        /// The department's certificate signing request (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// Directory to write the certificate into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a client certificate for one of a department's applications, from the department's
    /// application CA (created beside the federation CA on first use; its key stays with the
    /// department). Register the application in the gateway's applications file.
    #[command(
        after_help = "Example:\n  causeway certs issue-app --dept social-welfare --app benefits-portal --ca certs/ --out certs/\n\nThe gateway trusts the CA in [client] app_ca = \"certs/<dept>-apps-ca.pem\". To rotate an\napplication's certificate, issue a new one and swap the files; the old one stays valid until it\nexpires (397 days) unless the CA is replaced."
    )]
    IssueApp {
        /// Department id.
        #[arg(long)]
        dept: String,
        /// Application id (lowercase letters, digits, '-').
        #[arg(long)]
        app: String,
        /// Directory to write the certificate and key into.
        #[arg(long)]
        out: PathBuf,
        /// Directory holding ca.pem (the federation's) and the department's application CA
        /// (default: --out).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Derive a department's tag key from the tag root (run where the root is kept, by the
    /// oversight body) and write it for the department as <dept>.tag.key (0600). A new --version
    /// rotates the key: the department's new tags name it, and oversight nodes search every
    /// version up to [oversight] tag_key_versions.
    #[command(after_help = "Example:
  causeway certs tag-key --root certs/tag-root.key --ca certs/ --dept tax-office --out certs/
  causeway certs tag-key --root certs/tag-root.key --ca certs/ --dept tax-office --version 2 --out certs/")]
    TagKey {
        /// The tag root (written by `causeway certs init`).
        #[arg(long)]
        root: PathBuf,
        /// Directory holding the federation's ca.pem (names the federation).
        #[arg(long)]
        ca: PathBuf,
        /// Department id.
        #[arg(long)]
        dept: String,
        /// Key version (1 for a new department; the next number to rotate).
        #[arg(long, default_value_t = 1)]
        version: u32,
        /// Directory to write <dept>.tag.key into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a certificate the federation CA issued: add its serial number to the CA's
    /// revocation list and write crl.pem (a signed X.509 CRL, numbered one above the last) in the
    /// CA directory. Publish it as every gateway's [identity] crl: gateways read it again every
    /// crl_reload_secs (and on SIGHUP), refuse the certificate in new handshakes and close the
    /// connections it has open.
    #[command(after_help = "Example:
  causeway certs revoke --ca certs/ --cert certs/tax-office.pem --reason keyCompromise
  cp certs/crl.pem /etc/causeway/crl.pem   # on every gateway: the file [identity] crl names

Reasons (RFC 5280): unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
cessationOfOperation, privilegeWithdrawn.")]
    Revoke {
        /// Directory holding ca.pem and ca.key (and crl.pem, rewritten).
        #[arg(long)]
        ca: PathBuf,
        /// The certificate to revoke (PEM), e.g. certs/<dept>.pem.
        #[arg(long)]
        cert: PathBuf,
        /// Why (RFC 5280 reason code name).
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Days until the CRL goes stale: publish a fresh one (causeway certs crl) before.
        #[arg(long, default_value_t = pki::CRL_VALIDITY_DAYS)]
        next_update_days: i64,
    },
    /// Re-sign the CA's CRL (crl.pem in the CA directory) with the same revoked certificates, one
    /// number higher, valid for --next-update-days more (the first, empty CRL if there is none).
    /// Run it and publish the result before the CRL in force goes stale.
    #[command(after_help = "Example:
  causeway certs crl --ca certs/
  causeway certs crl --ca certs/ --next-update-days 7")]
    Crl {
        /// Directory holding ca.pem and ca.key (and crl.pem, rewritten).
        #[arg(long)]
        ca: PathBuf,
        /// Days until the CRL goes stale.
        #[arg(long, default_value_t = pki::CRL_VALIDITY_DAYS)]
        next_update_days: i64,
    },
}

fn print_crl(written: &pki::CrlWritten) {
    println!(
        "CRL          {} (number {}, {} revoked)",
        written.path.display(),
        written.number,
        written.revoked
    );
    println!(
        "next update  {} (publish a fresh one before: causeway certs crl)",
        written
            .next_update
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    println!("\npublish it as every gateway's [identity] crl; gateways apply it within crl_reload_secs, or at once on SIGHUP");
}

pub(crate) fn run(command: CertsCommand) -> Result<ExitCode> {
    match command {
        CertsCommand::Init { federation, out } => {
            pki::init_federation(&federation, &out)?;
            println!(
                "federation {federation}: CA in {}",
                out.join(pki::CA_CERT).display()
            );
            println!(
                "next: causeway certs issue --dept <id> --out {}",
                out.display()
            );
        }
        CertsCommand::Issue {
            dept,
            oversight,
            out,
            ca,
            hosts,
        } => {
            let who = who(dept, oversight)?;
            let issued = pki::issue(ca.as_deref().unwrap_or(&out), &out, &who, &hosts)?;
            println!("certificate  {}", issued.cert.display());
            println!("key          {} (0600)", issued.key.display());
            println!("signing key  {} (0600)", issued.signing_key.display());
            println!(
                "\nadd to federation.toml:\n  vkey = \"{}\"\n  witness = \"{}\"",
                issued.vkey, issued.witness_vkey
            );
        }
        CertsCommand::TagKey {
            root,
            ca,
            dept,
            version,
            out,
        } => {
            let ca_pem = ca.join(pki::CA_CERT);
            let federation = pki::federation_of_ca(
                &std::fs::read_to_string(&ca_pem)
                    .with_context(|| format!("reading {}", ca_pem.display()))?,
            )?;
            let path = pki::tag_key(&root, &federation, &DeptId::new(&dept)?, version, &out)?;
            println!("tag key {} (version {version}, 0600)", path.display());
            println!(
                "\nthe department names it in [identity] tag_key; it must not receive {}",
                root.display()
            );
        }
        CertsCommand::Request {
            dept,
            oversight,
            ca,
            out,
            hosts,
        } => {
            let requested = pki::request(&ca, &out, &who(dept, oversight)?, &hosts)?;
            println!("request      {}", requested.csr.display());
            println!(
                "key          {} (0600, stays here)",
                requested.key.display()
            );
            println!(
                "signing key  {} (0600, stays here)",
                requested.signing_key.display()
            );
            println!("public keys  {}", requested.public.display());
            println!(
                "\nsend the request and the public keys file to the federation operator (causeway federation add --keys):\n  vkey = \"{}\"\n  witness = \"{}\"",
                requested.vkey, requested.witness_vkey
            );
        }
        CertsCommand::Sign {
            dept,
            oversight,
            ca,
            csr,
            out,
        } => {
            let cert = pki::sign(&ca, &csr, &who(dept, oversight)?, &out)?;
            println!("certificate  {}", cert.display());
        }
        CertsCommand::Revoke {
            ca,
            cert,
            reason,
            next_update_days,
        } => {
            let reason = pki::revocation_reason(&reason)?;
            let (written, who) =
                pki::revoke(&ca, &cert, reason, time::Duration::days(next_update_days))?;
            println!("revoked      {who} ({})", cert.display());
            print_crl(&written);
        }
        CertsCommand::Crl {
            ca,
            next_update_days,
        } => {
            let written = pki::refresh_crl(&ca, time::Duration::days(next_update_days))?;
            print_crl(&written);
        }
        CertsCommand::IssueApp { dept, app, out, ca } => {
            let dept = DeptId::new(&dept)?;
            let app = AppId::new(&app)?;
            let issued = pki::issue_app(ca.as_deref().unwrap_or(&out), &out, &dept, &app)?;
            println!("certificate     {}", issued.cert.display());
            println!("key             {} (0600)", issued.key.display());
            println!("application CA  {}", issued.ca.display());
            println!(
                "\nthe gateway trusts it with [client] app_ca = \"{}\"; register {app} in its applications file",
                issued.ca.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The identity `--dept` or `--oversight` names (exactly one).
fn who(dept: Option<String>, oversight: Option<String>) -> Result<PeerIdentity> {
    Ok(match (dept, oversight) {
        (Some(d), None) => PeerIdentity::Dept(DeptId::new(&d)?),
        (None, Some(o)) => PeerIdentity::Oversight(DeptId::new(&o)?),
        _ => bail!("name exactly one of --dept ID or --oversight ID"),
    })
}
