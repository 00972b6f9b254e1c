//! The `causeway` command line: one subcommand per job, each with `--help` and an example.

mod audit;
mod backup;
mod certs;
mod demo;
mod doctor;
mod federation;
mod generate;
mod log;
mod output;
mod oversight;
mod policy;
mod report;
mod request;
mod tokens;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "causeway",
    version,
    about = "Accountable data exchange between government departments",
    after_help = "Start here:\n  causeway demo             a whole federation on this machine, with traffic\n  causeway serve --config causeway.toml",
    mut_subcommands = output::with_exit_codes
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
        #[arg(long, env = output::CONFIG_ENV)]
        config: PathBuf,
    },
    /// Federation CA, department certificates and signing keys.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// The federation directory: list and remove members, sign and publish it.
    #[command(subcommand)]
    Federation(federation::FederationCommand),
    /// Ask a provider for data through the local gateway's client API.
    Request(request::RequestArgs),
    /// The demo's identity provider: officers' access tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Inspect and verify a ledger (access log).
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Check, test, explain and diff policy directories.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Oversight: pull and verify every log, cross-check both sides, the citizen's report, search.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Verify a citizen's report bundle offline: every entry, proof, signature and row.
    VerifyReport(report::VerifyReportArgs),
    /// The oversight node's staff accounts (dashboard and query API sign-in).
    #[command(subcommand)]
    Oversight(oversight::OversightCommand),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    Completions(generate::CompletionsArgs),
    /// Write the man pages (one per command and subcommand) into a directory.
    Man(generate::ManArgs),
    /// Check a gateway's or oversight node's setup: config, key files and their modes,
    /// certificate, directory, databases, ledger, clock; and say what to do about each problem.
    Doctor(doctor::DoctorArgs),
}

/// Run one command line in-process, `args` starting with the program name (tests use it to drive
/// `causeway audit ...`). It sets up no logging and builds its own runtime: call it from a thread
/// that is not inside one.
pub fn run_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(output::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(output::UNAVAILABLE);
        }
    };
    runtime
        .block_on(run(cli.command))
        .unwrap_or_else(|e| output::fail(&e))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let tracing = match init_tracing(cli.log_format, &cli.command) {
        Ok(tracing) => tracing,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let LogFormat::Json = cli.log_format {
        output::report_errors_as_json();
        // A panic's message is one more JSON line, not plain text in the stream.
        std::panic::set_hook(Box::new(|panic| {
            let location = panic.location().map(ToString::to_string);
            let payload = panic.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(not a string)");
            tracing::error!(panic = message, location, "panicked");
        }));
    }
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
    let code = runtime
        .block_on(run(cli.command))
        .unwrap_or_else(|e| output::fail(&e));
    tracing.shutdown();
    code
}

/// Logs for every command; span export (OTLP) for the commands that run gateways: `serve` from its
/// config's `[telemetry]` and the `OTEL_*` variables, `demo` from the variables alone.
fn init_tracing(format: LogFormat, command: &Command) -> Result<crate::telemetry::Tracing> {
    use crate::telemetry::{
        ExportPlan, TelemetrySection, Tracing, DEFAULT_LOG_FILTER, DEMO_LOG_FILTER,
    };
    let format = match format {
        LogFormat::Text => crate::telemetry::LogFormat::Text,
        LogFormat::Json => crate::telemetry::LogFormat::Json,
    };
    let (section, department) = match command {
        // Read before any subscriber exists, so its warnings are lost here; `serve` reads the
        // config again and reports them (and any error) then.
        Command::Serve { config } => match crate::config::GatewayConfig::load(config) {
            Ok(c) => (c.telemetry, Some(c.department.to_string())),
            Err(_) => (TelemetrySection::default(), None),
        },
        Command::Demo(_) => (TelemetrySection::default(), None),
        _ => {
            let off = ExportPlan::resolve(&TelemetrySection::default(), |_| None)?;
            return Ok(Tracing::install(format, &off, None, DEFAULT_LOG_FILTER)?);
        }
    };
    let plan = ExportPlan::from_env(&section).context("[telemetry]")?;
    let default_filter = match command {
        Command::Demo(_) => DEMO_LOG_FILTER,
        _ => DEFAULT_LOG_FILTER,
    };
    Ok(Tracing::install(
        format,
        &plan,
        department.as_deref(),
        default_filter,
    )?)
}

/// Run one command; its error, if any, becomes a report on stderr and the documented exit code
/// ([`output::fail`]) at the two callers.
async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve { config } => serve(config).await,
        Command::Certs(c) => certs::run(c),
        Command::Federation(c) => federation::run(c),
        Command::Request(args) => request::run(args).await,
        Command::Tokens(c) => tokens::run(c),
        Command::Log(log::LogCommand::Oversight(args)) => watch::run(args).await,
        Command::Log(c) => log::run(c),
        Command::Policy(c) => policy::run(c),
        Command::Audit(c) => audit::run(c).await,
        Command::VerifyReport(args) => report::run(args),
        Command::Oversight(c) => oversight::run(c),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
        Command::Doctor(args) => doctor::run(args).await,
    }
}

async fn serve(config: PathBuf) -> Result<ExitCode> {
    let config = crate::config::GatewayConfig::load(&config)?;
    let gateway = crate::gateway::Gateway::start(&config).await?;
    // Log lines, not prints: with `--log-format json` stderr carries JSON lines only.
    if gateway.oversight().is_some() {
        tracing::info!(
            node = %config.department, dashboard = %gateway.client_addr, peer = %gateway.peer_addr,
            "oversight node serving: staff sign in at the dashboard (accounts: `causeway oversight staff`)"
        );
    } else {
        tracing::info!(
            department = %config.department, client = %gateway.client_addr, peer = %gateway.peer_addr,
            "gateway serving"
        );
    }
    wait_for_signal().await;
    tracing::info!("shutting down: draining exchanges, committing the ledger");
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
