//! `causeway oversight staff ...`: the oversight node's staff accounts (who may sign in to the
//! dashboard and the query API, in which roles). The file is `[oversight] staff` of the node's
//! config; the running node picks up every change at the account's next request.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::output::{print_json, OutputArg};
use crate::config::{GatewayConfig, Role as NodeRole};
use crate::oversight::staff::{Role, StaffFile, MIN_PASSWORD_CHARS};
use crate::text::visible;

#[derive(Subcommand)]
pub(crate) enum OversightCommand {
    /// Staff accounts of the dashboard and query API.
    #[command(subcommand)]
    Staff(StaffCommand),
}

#[derive(Subcommand)]
pub(crate) enum StaffCommand {
    /// Add an account (the password is asked for twice, or read from stdin).
    #[command(
        after_help = "Roles: viewer (aggregates), investigator (searches, exchanges, exports, cross-check),\nsubject-officer (anything by subject: national-id searches, citizen's reports), administrator (staff page).\n\nExamples:\n  causeway oversight staff add alice --role investigator --role subject-officer --config causeway-demo/oversight/causeway.toml\n  printf '%s\\n' \"$PASSWORD\" | causeway oversight staff add bob --role viewer --password-stdin --config FILE"
    )]
    Add {
        /// Sign-in name (recorded with every query this person makes).
        name: String,
        /// A role (repeat for several): viewer, investigator, subject-officer, administrator.
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// Read the password from the first line of stdin (for scripts) instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it cannot sign in, and its sessions end at their next request.
    #[command(
        after_help = "Example:\n  causeway oversight staff disable alice --config causeway-demo/oversight/causeway.toml"
    )]
    Disable {
        /// The account.
        name: String,
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
    },
    /// Enable a disabled account again.
    #[command(
        after_help = "Example:\n  causeway oversight staff enable alice --config causeway-demo/oversight/causeway.toml"
    )]
    Enable {
        /// The account.
        name: String,
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
    },
    /// Set an account's password (its open sessions end at their next request).
    #[command(
        after_help = "Examples:\n  causeway oversight staff passwd alice --config causeway-demo/oversight/causeway.toml\n  printf '%s\\n' \"$PASSWORD\" | causeway oversight staff passwd alice --password-stdin --config FILE"
    )]
    Passwd {
        /// The account.
        name: String,
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// Read the password from the first line of stdin instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the accounts: name, roles, disabled (never the password hashes).
    #[command(
        after_help = "Example:\n  causeway oversight staff list --config causeway-demo/oversight/causeway.toml"
    )]
    List {
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        #[command(flatten)]
        output: OutputArg,
    },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Role::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// The staff file an oversight config names.
pub fn staff_path(config: &Path) -> Result<PathBuf> {
    let config = GatewayConfig::load(config)?;
    if config.role != NodeRole::Oversight {
        bail!("this is a department gateway's config; staff accounts belong to an oversight node (role = \"oversight\")");
    }
    Ok(config.oversight.unwrap_or_default().staff)
}

pub(crate) fn run(command: OversightCommand) -> Result<ExitCode> {
    let OversightCommand::Staff(command) = command;
    match command {
        StaffCommand::Add {
            name,
            roles,
            config,
            password_stdin,
        } => {
            let path = staff_path(&config)?;
            let mut file = StaffFile::load_or_empty(&path)?;
            if file.get(&name).is_some() {
                bail!("the account {name:?} exists already; change its password with `causeway oversight staff passwd {name}`");
            }
            let password = new_password(&name, password_stdin)?;
            file.add(&name, &roles, &password)?;
            file.save(&path)?;
            println!(
                "added {name} ({}) to {}",
                roles_text(&roles),
                path.display()
            );
        }
        StaffCommand::Disable { name, config } => set_disabled(&config, &name, true)?,
        StaffCommand::Enable { name, config } => set_disabled(&config, &name, false)?,
        StaffCommand::Passwd {
            name,
            config,
            password_stdin,
        } => {
            let path = staff_path(&config)?;
            let mut file = StaffFile::load(&path)?;
            if file.get(&name).is_none() {
                bail!("there is no account {name:?} (see `causeway oversight staff list`)");
            }
            let password = new_password(&name, password_stdin)?;
            file.set_password(&name, &password)?;
            file.save(&path)?;
            println!("password of {name} changed; its open sessions end at their next request");
        }
        StaffCommand::List { config, output } => {
            let path = staff_path(&config)?;
            let file = StaffFile::load_or_empty(&path)?;
            if output.is_json() {
                // Names, roles and states only: never the password hashes.
                let accounts: Vec<serde_json::Value> = file
                    .staff
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "name": m.name,
                            "roles": m.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                            "disabled": m.disabled,
                        })
                    })
                    .collect();
                print_json(&serde_json::json!({"file": path, "staff": accounts}))?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<24} {:<48} state", "name", "roles");
            for m in &file.staff {
                println!(
                    "{:<24} {:<48} {}",
                    visible(&m.name),
                    roles_text(&m.roles),
                    if m.disabled { "disabled" } else { "active" }
                );
            }
            println!("\n{} account(s) in {}", file.staff.len(), path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn set_disabled(config: &Path, name: &str, disabled: bool) -> Result<()> {
    let path = staff_path(config)?;
    let mut file = StaffFile::load(&path)?;
    file.set_disabled(name, disabled)?;
    file.save(&path)?;
    if disabled {
        println!(
            "{name} disabled: it cannot sign in, and its open sessions end at their next request"
        );
    } else {
        println!("{name} enabled");
    }
    Ok(())
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The new password: the first line of stdin with `--password-stdin`, else asked twice on the
/// terminal.
fn new_password(name: &str, from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to ask for the password on: pass --password-stdin and write it to stdin");
        }
        let first = rpassword::prompt_password(format!(
            "New password for {name} (at least {MIN_PASSWORD_CHARS} characters): "
        ))
        .context("reading the password")?;
        let second = rpassword::prompt_password("Again: ").context("reading the password")?;
        if first != second {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters (a passphrase of a few words is best); nothing was changed");
    }
    Ok(password)
}
