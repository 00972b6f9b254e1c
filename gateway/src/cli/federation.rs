//! `causeway federation`: the federation operator edits the directory's source, then signs and
//! publishes it; gateways pick each published version up without a restart.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::directory::signed::publish_file;
use crate::directory::source::{self, Listing, Member};
use crate::identity::{pki, DeptId};

#[derive(Subcommand)]
pub(crate) enum FederationCommand {
    /// Start a directory source for a federation (no members yet).
    #[command(
        after_help = "Example:\n  causeway federation new --federation demo --directory certs/federation.source.toml"
    )]
    New {
        /// Federation name (as in `causeway certs init`).
        #[arg(long)]
        federation: String,
        /// The source file to create.
        #[arg(long)]
        directory: PathBuf,
    },
    /// List a department (or, with --oversight, an oversight node) in the directory source, with
    /// the public keys its `causeway certs request` printed (or wrote to <id>.pub.toml).
    #[command(after_help = "Examples:
  causeway federation add --directory certs/federation.source.toml --id tax-office --name \"Tax Office\" \\
      --https https://tax.gw.example:7443 --keys tax-office.pub.toml
  causeway federation add --directory certs/federation.source.toml --id audit-office --name \"Audit Office\" \\
      --oversight --https https://audit.example:7601 --keys oversight-audit-office.pub.toml

Then publish: causeway federation publish ...")]
    Add {
        /// The directory source.
        #[arg(long)]
        directory: PathBuf,
        /// Department (or oversight node) id.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// It is an oversight node, not a department.
        #[arg(long)]
        oversight: bool,
        /// Its HTTPS peer endpoint, https://host:port: a department's peer API, or the port where
        /// an oversight node serves its own log (`[peer] https`), which members pull and witness.
        #[arg(long)]
        https: Option<String>,
        /// Its QUIC peer endpoint, quic://host:port.
        #[arg(long)]
        quic: Option<String>,
        /// The public keys file `causeway certs request` wrote (<id>.pub.toml: vkey and witness).
        #[arg(long, conflicts_with_all = ["vkey", "witness"])]
        keys: Option<PathBuf>,
        /// Its note verifier key (instead of --keys).
        #[arg(long)]
        vkey: Option<String>,
        /// Its witness verifier key (instead of --keys).
        #[arg(long)]
        witness: Option<String>,
    },
    /// Take a department or oversight node out of the directory source. Once published, gateways
    /// refuse it and close its open connections within their reload interval; revoke its
    /// certificate too (`causeway certs revoke`).
    #[command(
        after_help = "Example:\n  causeway federation remove --directory certs/federation.source.toml --id tax-office"
    )]
    Remove {
        /// The directory source.
        #[arg(long)]
        directory: PathBuf,
        /// Department or oversight node id.
        #[arg(long)]
        id: String,
    },
    /// List a department's new log key: its current vkey becomes a retired key, valid for its
    /// checkpoints up to --until-size (the size its gateway logged when it rotated: the
    /// key-rotation entry's index + 1), so its history keeps verifying. With --revoked-from, the
    /// retired key leaked: its checkpoints from that size on are refused everywhere.
    #[command(
        after_help = "Example (the gateway logged `log key rotated ... until_size=1234`):
  causeway federation rotate-key --directory certs/federation.source.toml --id tax-office \
      --vkey $(cat tax-office/ledger/log.vkey) --until-size 1234

Then publish: causeway federation publish ..."
    )]
    RotateKey {
        /// The directory source.
        #[arg(long)]
        directory: PathBuf,
        /// Department id.
        #[arg(long)]
        id: String,
        /// Which of its instances (default: its only, or first, instance).
        #[arg(long)]
        instance: Option<String>,
        /// The new note verifier key (the gateway's `<ledger>/log.vkey` after the rotation).
        #[arg(long)]
        vkey: String,
        /// The largest checkpoint size the old key signed (key-rotation entry index + 1).
        #[arg(long)]
        until_size: u64,
        /// The old key leaked: refuse its checkpoints of this size and larger.
        #[arg(long)]
        revoked_from: Option<u64>,
    },
    /// Sign the directory source with the operator's key and publish it with the next serial, an
    /// expiry and the CA's CRL (crl.pem in --ca, if there is one). Gateways read it every
    /// directory_reload_secs and on SIGHUP, and put its CRL in force.
    #[command(
        after_help = "Example:\n  causeway federation publish --directory certs/federation.source.toml --ca certs/ --out federation.toml --valid-days 30"
    )]
    Publish {
        /// The directory source.
        #[arg(long)]
        directory: PathBuf,
        /// The operator's directory holding directory.key (from `causeway certs init`).
        #[arg(long)]
        ca: PathBuf,
        /// The published file gateways read (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Days until it expires; publish again before then.
        #[arg(long, default_value_t = 30)]
        valid_days: u32,
        /// Publish without the CA's CRL even if the CA directory holds one.
        #[arg(long)]
        no_crl: bool,
    },
}

/// The public keys file `causeway certs request` writes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeys {
    vkey: String,
    witness: Option<String>,
}

pub(crate) fn run(command: FederationCommand) -> Result<ExitCode> {
    match command {
        FederationCommand::New {
            federation,
            directory,
        } => {
            if directory.exists() {
                anyhow::bail!("{} already exists", directory.display());
            }
            std::fs::write(&directory, source::new_source(&federation)?)
                .with_context(|| format!("writing {}", directory.display()))?;
            eprintln!("directory source {}", directory.display());
        }
        FederationCommand::Add {
            directory,
            id,
            name,
            oversight,
            https,
            quic,
            keys,
            vkey,
            witness,
        } => {
            let (vkey, witness) = match (keys, vkey) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let keys: PublicKeys = toml::from_str(&text)
                        .map_err(|e| crate::files::toml_error(&path, &text, e))?;
                    (keys.vkey, keys.witness)
                }
                (None, Some(vkey)) => (vkey, witness),
                (None, None) => anyhow::bail!("give the member's public keys: --keys <id>.pub.toml, or --vkey (and --witness)"),
            };
            let kind = if oversight {
                Member::Oversight
            } else {
                Member::Department
            };
            let listing = Listing {
                id: DeptId::new(&id)?,
                name,
                https,
                quic,
                vkey,
                witness,
            };
            edit(&directory, |text| source::add(text, kind, &listing))?;
            eprintln!(
                "{id} listed in {}; publish to put it in force",
                directory.display()
            );
        }
        FederationCommand::Remove { directory, id } => {
            edit(&directory, |text| source::remove(text, &DeptId::new(&id)?))?;
            eprintln!("{id} removed from {}; publish to put it in force, and revoke its certificate (causeway certs revoke)", directory.display());
        }
        FederationCommand::RotateKey {
            directory,
            id,
            instance,
            vkey,
            until_size,
            revoked_from,
        } => {
            let rotation = source::KeyRotation {
                id: DeptId::new(&id)?,
                instance: instance.as_deref().map(DeptId::new).transpose()?,
                new_vkey: vkey,
                until_size,
                until_time: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .expect("the current time formats as RFC 3339"),
                revoked_from,
            };
            edit(&directory, |text| source::rotate_key(text, &rotation))?;
            eprintln!(
                "{id}: new log key listed in {}, the old one retired until size {until_size}; publish to put it in force",
                directory.display()
            );
        }
        FederationCommand::Publish {
            directory,
            ca,
            out,
            valid_days,
            no_crl,
        } => {
            let crl = ca.join(pki::CRL);
            let crl = (!no_crl && crl.exists()).then_some(crl.as_path());
            let serial = publish_file(
                &directory,
                &ca.join(pki::DIRECTORY_KEY),
                crl,
                &out,
                time::Duration::days(valid_days.into()),
            )?;
            println!("{serial}");
            eprintln!(
                "published serial {serial} to {} (valid {valid_days} days); gateways apply it within directory_reload_secs, or at once on SIGHUP",
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn edit(path: &std::path::Path, change: impl FnOnce(&str) -> Result<String>) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let edited = change(&text).with_context(|| format!("{}", path.display()))?;
    std::fs::write(path, edited).with_context(|| format!("writing {}", path.display()))
}
