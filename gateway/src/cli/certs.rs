//! `causeway certs`: the federation CA and department credentials.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::identity::{pki, DeptId, PeerIdentity};

#[derive(Subcommand)]
pub(crate) enum CertsCommand {
    /// Create a federation CA (ca.pem, ca.key) and the federation tag key.
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
            let who = match (dept, oversight) {
                (Some(d), None) => PeerIdentity::Dept(DeptId::new(&d)?),
                (None, Some(o)) => PeerIdentity::Oversight(DeptId::new(&o)?),
                _ => bail!("name exactly one of --dept ID or --oversight ID"),
            };
            let issued = pki::issue(ca.as_deref().unwrap_or(&out), &out, &who, &hosts)?;
            println!("certificate  {}", issued.cert.display());
            println!("key          {} (0600)", issued.key.display());
            println!("signing key  {} (0600)", issued.signing_key.display());
            println!(
                "\nadd to federation.toml:\n  vkey = \"{}\"\n  witness = \"{}\"",
                issued.vkey, issued.witness_vkey
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
