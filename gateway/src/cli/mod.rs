//! The `causeway` command line: one subcommand per job, each with `--help` and an example.

mod certs;
mod demo;
mod log;
mod request;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "causeway",
    version,
    about = "Accountable data exchange between government departments",
    after_help = "Start here:\n  causeway demo             a whole federation on this machine, with traffic\n  causeway serve --config causeway.toml"
)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole federation on this machine: CA, three departments, sample data, gateways, traffic.
    #[command(
        after_help = "Examples:\n  causeway demo                    # lays out ./causeway-demo and keeps serving until Ctrl-C\n  causeway demo --dir /tmp/fed --once"
    )]
    Demo(demo::DemoArgs),
    /// Run one gateway.
    #[command(
        after_help = "Example:\n  causeway serve --config causeway-demo/civil-registry/causeway.toml"
    )]
    Serve {
        /// The gateway config file (causeway.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Federation CA, department certificates and signing keys.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Ask a provider for data through the local gateway's client API.
    Request(request::RequestArgs),
    /// Inspect and verify a ledger (access log).
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Check policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Load and validate a policy directory; exits non-zero on the first error.
    #[command(
        after_help = "Example:\n  causeway policy check causeway-demo/civil-registry/policies"
    )]
    Check {
        /// The policy directory.
        dir: PathBuf,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,causeway=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve { config } => serve(config).await,
        Command::Certs(c) => certs::run(c),
        Command::Request(args) => request::run(args).await,
        Command::Log(c) => log::run(c),
        Command::Policy(PolicyCommand::Check { dir }) => {
            let set =
                causeway_policy::PolicySet::load_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}: ok (policy set {})", dir.display(), set.hash());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(config: PathBuf) -> Result<ExitCode> {
    let config = crate::config::GatewayConfig::load(&config)?;
    let gateway = crate::gateway::Gateway::start(&config).await?;
    eprintln!(
        "causeway: {} serving: client http://{}  peer https://{}",
        config.department, gateway.client_addr, gateway.peer_addr
    );
    wait_for_signal().await;
    eprintln!("causeway: shutting down (draining exchanges, committing the ledger)");
    gateway.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Wait for Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
