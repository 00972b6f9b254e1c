//! `causeway audit`: the oversight node's work from the command line.
//!
//! Every command reads an oversight node's `causeway.toml`. While the node runs, queries go to its
//! query API on `[client] listen`, signed in as a staff member (`--staff NAME`, the password from
//! `CAUSEWAY_STAFF_PASSWORD` or a prompt), and the node notarizes them under that name. When it is
//! stopped, the command opens the replica and the oversight ledger itself and notarizes there as
//! `cli:<user>`: whoever can read the node's files is its administrator. A national id typed for
//! `audit subject` is turned into its keyed tag here and goes nowhere else; only this terminal
//! sees it.
//!
//! The logs hold other departments' text, so every table shows control and bidi characters as
//! escapes ([`crate::text::visible`]), JSON writes them as `\uXXXX`, and CSV cells a spreadsheet
//! would evaluate are neutralized.

use std::io::{BufRead, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Subcommand;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::output::{print_json, refused, usage, ExportArg, Output, OutputArg};
use crate::config::{GatewayConfig, Role};
use crate::oversight::bundle::CitizenBundle;
use crate::oversight::crosscheck::Finding;
use crate::oversight::dashboard::{encode_form, to_query};
use crate::oversight::gate::SESSION_COOKIE;
use crate::oversight::replica::{Query, Record};
use crate::oversight::report::SubjectReport;
use crate::oversight::seal::{format_date, parse_date, SealError};
use crate::oversight::{Asker, LogStatus, Oversight, SubjectTags};
use crate::text::visible;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Pull every department's log once and verify it (stop the node first; it pulls by itself).
    #[command(
        after_help = "Example:\n  causeway audit pull --config causeway-demo/oversight/causeway.toml"
    )]
    Pull {
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Check that both sides of every exchange recorded it alike; exits 1 if anything disagrees.
    #[command(
        after_help = "Examples:\n  causeway audit crosscheck --config causeway-demo/oversight/causeway.toml --staff alice\n  causeway audit crosscheck --config FILE --output json | jq '.[] | .kind'"
    )]
    Crosscheck {
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// Sign in to the running node as this staff member (password from
        /// CAUSEWAY_STAFF_PASSWORD, or asked for); not needed while the node is stopped.
        #[arg(long)]
        staff: Option<String>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// The citizen's report: every exchange that touched one person.
    #[command(
        after_help = "Examples:\n  causeway audit subject --id D000042 --config causeway-demo/oversight/causeway.toml --staff officer\n  causeway audit subject --config FILE --html report.html      # asks for the id on stdin\n\nThe id is shown only on this terminal: JSON and HTML name the person by keyed tag."
    )]
    Subject {
        /// The person's national id (omit it to type it on stdin, out of the shell history).
        #[arg(long)]
        id: Option<String>,
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// Sign in to the running node as this staff member (password from
        /// CAUSEWAY_STAFF_PASSWORD, or asked for); not needed while the node is stopped.
        #[arg(long)]
        staff: Option<String>,
        #[command(flatten)]
        output: OutputArg,
        /// Write a printable HTML page to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Write the report with every entry's evidence and the notarized query to this file
        /// (causeway-citizen-report/v1), for `causeway verify-report`.
        #[arg(long, conflicts_with = "html")]
        bundle: Option<PathBuf>,
    },
    /// Seal a purpose until a date: its exchanges stay out of citizens' reports until then
    /// (oversight still sees them). The seal is notarized in the oversight ledger.
    #[command(
        after_help = "Examples:\n  causeway audit seal --purpose fraud-investigation --until 2027-06-30 --reason CASE-2026-114 --config causeway-demo/oversight/causeway.toml --staff investigator\n  causeway audit seal --purpose benefit-eligibility --consumer social-welfare --until 2027-01-31 --reason DPA-88 --config FILE"
    )]
    Seal {
        /// The purpose to seal, as exchanges state it.
        #[arg(long)]
        purpose: String,
        /// Only this consumer department's exchanges for that purpose.
        #[arg(long)]
        consumer: Option<String>,
        /// Sealed until this date (YYYY-MM-DD, UTC): from it on, citizens see the exchanges. At
        /// most `[oversight] max_seal_days` (366) from today: seal again to keep it longer.
        #[arg(long)]
        until: String,
        /// Why: a reason code (case or decision number), not free text.
        #[arg(long)]
        reason: String,
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// Sign in to the running node as this staff member, an investigator or administrator
        /// (password from CAUSEWAY_STAFF_PASSWORD, or asked for).
        #[arg(long)]
        staff: Option<String>,
    },
    /// Search the replicated logs.
    #[command(
        after_help = "Examples:\n  CAUSEWAY_STAFF_PASSWORD=... causeway audit search --config FILE --staff alice --exchange 0190f0c4-...\n  causeway audit search --config FILE --consumer tax-office --provider civil-registry --from 2026-01-01 --output csv"
    )]
    Search {
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// Sign in to the running node as this staff member (password from
        /// CAUSEWAY_STAFF_PASSWORD, or asked for); not needed while the node is stopped.
        #[arg(long)]
        staff: Option<String>,
        /// Exchange id.
        #[arg(long)]
        exchange: Option<String>,
        /// A department on either side.
        #[arg(long)]
        department: Option<String>,
        /// The asking department.
        #[arg(long)]
        consumer: Option<String>,
        /// The data-holding department.
        #[arg(long)]
        provider: Option<String>,
        /// Dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Purpose.
        #[arg(long)]
        purpose: Option<String>,
        /// `allow` or `deny`.
        #[arg(long)]
        decision: Option<String>,
        /// From (2026-01-31, 2026-01-31T14:00 UTC, or RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// To (inclusive).
        #[arg(long)]
        to: Option<String>,
        /// Most entries (newest first).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        output: ExportArg,
    },
    /// Verification status of every department's log.
    #[command(
        after_help = "Examples:\n  causeway audit status --config causeway-demo/oversight/causeway.toml --staff viewer   # node running\n  causeway audit status --config causeway-demo/oversight/causeway.toml                  # node stopped"
    )]
    Status {
        /// The oversight node's causeway.toml.
        #[arg(long, env = super::output::CONFIG_ENV)]
        config: PathBuf,
        /// Sign in to the running node as this staff member (password from
        /// CAUSEWAY_STAFF_PASSWORD, or asked for); not needed while the node is stopped.
        #[arg(long)]
        staff: Option<String>,
        #[command(flatten)]
        output: OutputArg,
    },
}

/// Where queries go: the running node (signed in), or the files directly.
enum Target {
    Node(Remote),
    Local(Box<Oversight>),
}

/// The running node's query API, signed in.
struct Remote {
    addr: SocketAddr,
    /// `causeway_session=...`, as the node set it.
    cookie: String,
}

/// The environment variable `--staff` reads the password from (else it asks on the terminal).
pub(crate) const STAFF_PASSWORD_ENV: &str = "CAUSEWAY_STAFF_PASSWORD";

fn load(config: &Path) -> Result<GatewayConfig> {
    let config = GatewayConfig::load(config)?;
    if config.role != Role::Oversight {
        bail!("this is a department gateway's config; `causeway audit` needs an oversight node's (role = \"oversight\")");
    }
    Ok(config)
}

async fn node_running(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

async fn target(config: &GatewayConfig, staff: Option<&str>) -> Result<Target> {
    let addr = config.client.listen;
    if node_running(addr).await {
        let Some(name) = staff else {
            return Err(usage(format!("the oversight node is running (http://{addr}): sign in as a staff member with --staff NAME (password from {STAFF_PASSWORD_ENV} or asked for), or stop the node to query its files directly")));
        };
        let password = match std::env::var(STAFF_PASSWORD_ENV) {
            Ok(p) => p,
            Err(_) => rpassword::prompt_password(format!("Password for {name}: "))
                .context("reading the staff password from the terminal")?,
        };
        let cookie = sign_in(addr, name, &password).await?;
        return Ok(Target::Node(Remote { addr, cookie }));
    }
    let (node, _) = Oversight::open(config)?;
    Ok(Target::Local(Box::new(node)))
}

/// Send one request to the node; status, `Set-Cookie` values and body.
async fn exchange(
    addr: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> Result<(u16, Vec<String>, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the oversight node at {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let cookies = response
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, cookies, bytes))
}

/// Sign in through `POST /api/login`; the session cookie to send with every query.
async fn sign_in(addr: SocketAddr, name: &str, password: &str) -> Result<String> {
    let body = serde_json::to_vec(&serde_json::json!({"name": name, "password": password}))?;
    let request = http::Request::post("/api/login")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let (status, cookies, bytes) = exchange(addr, request).await?;
    if status != 200 {
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = format!(
            "the oversight node refused the sign-in of {name} ({status}): {}",
            value["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        );
        if (400..500).contains(&status) {
            return Err(refused(message));
        }
        bail!(message);
    }
    cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .map(str::to_owned)
        .context("the oversight node signed in but set no session cookie")
}

/// GET `path` from the running node's query API, signed in.
async fn api_get(remote: &Remote, path: &str) -> Result<Value> {
    let request = http::Request::get(path)
        .header(http::header::HOST, remote.addr.to_string())
        .header(http::header::COOKIE, &remote.cookie)
        .body(Full::new(Bytes::new()))?;
    let (status, _, bytes) = exchange(remote.addr, request).await?;
    let value: Value = serde_json::from_slice(&bytes).with_context(|| {
        format!("the oversight node answered {status} with something that is not JSON")
    })?;
    node_answer(status, value)
}

/// The node's JSON answer, or why not: 401 and 403 are refusals (exit code 4), another 4xx a
/// query the node found malformed (2), anything else an error (3).
fn node_answer(status: u16, value: Value) -> Result<Value> {
    if status == 200 {
        return Ok(value);
    }
    let message = format!(
        "the oversight node refused ({status}): {}",
        value["error"]["message"]
            .as_str()
            .unwrap_or("no reason given")
    );
    match status {
        401 | 403 => Err(refused(message)),
        400..=499 => Err(usage(message)),
        _ => bail!(message),
    }
}

/// POST `form` to `path` of the running node's query API, signed in, with the session's CSRF
/// token (read from the overview's forms, as a browser would).
async fn api_post_form(
    remote: &Remote,
    path: &str,
    mut form: Vec<(String, String)>,
) -> Result<Value> {
    let request = http::Request::get("/")
        .header(http::header::HOST, remote.addr.to_string())
        .header(http::header::COOKIE, &remote.cookie)
        .body(Full::new(Bytes::new()))?;
    let (_, _, page) = exchange(remote.addr, request).await?;
    let page = String::from_utf8_lossy(&page);
    const FIELD: &str = "name=\"csrf\" value=\"";
    let csrf = page
        .find(FIELD)
        .map(|at| &page[at + FIELD.len()..])
        .and_then(|rest| rest.split('"').next())
        .context("the oversight node's overview carries no CSRF token for this session")?;
    form.push(("csrf".to_owned(), csrf.to_owned()));
    let request = http::Request::post(path)
        .header(http::header::HOST, remote.addr.to_string())
        .header(http::header::COOKIE, &remote.cookie)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(encode_form(&form))))?;
    let (status, _, bytes) = exchange(remote.addr, request).await?;
    let value: Value = serde_json::from_slice(&bytes).with_context(|| {
        format!("the oversight node answered {status} with something that is not JSON")
    })?;
    node_answer(status, value)
}

fn close(target: Target) {
    if let Target::Local(node) = target {
        node.close();
    }
}

pub(crate) async fn run(command: AuditCommand) -> Result<ExitCode> {
    match command {
        AuditCommand::Pull { config, output } => pull(&load(&config)?, output.is_json()).await,
        AuditCommand::Crosscheck {
            config,
            staff,
            output,
        } => crosscheck(&load(&config)?, staff.as_deref(), output.is_json()).await,
        AuditCommand::Subject {
            id,
            config,
            staff,
            bundle: Some(out),
            ..
        } => subject_bundle(&load(&config)?, staff.as_deref(), id, &out).await,
        AuditCommand::Subject {
            id,
            config,
            staff,
            output,
            html,
            bundle: None,
        } => {
            subject(
                &load(&config)?,
                staff.as_deref(),
                id,
                output.is_json(),
                html,
            )
            .await
        }
        AuditCommand::Seal {
            purpose,
            consumer,
            until,
            reason,
            config,
            staff,
        } => {
            seal(
                &load(&config)?,
                staff.as_deref(),
                &purpose,
                consumer.as_deref(),
                &until,
                &reason,
            )
            .await
        }
        AuditCommand::Search {
            config,
            staff,
            exchange,
            department,
            consumer,
            provider,
            dataset,
            purpose,
            decision,
            from,
            to,
            limit,
            output,
        } => {
            let params: Vec<(String, String)> = [
                ("exchange", exchange),
                ("department", department),
                ("consumer", consumer),
                ("provider", provider),
                ("dataset", dataset),
                ("purpose", purpose),
                ("decision", decision),
                ("from", from),
                ("to", to),
                ("limit", limit.map(|l| l.to_string())),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
            search(&load(&config)?, staff.as_deref(), &params, output.output).await
        }
        AuditCommand::Status {
            config,
            staff,
            output,
        } => status(&load(&config)?, staff.as_deref(), output.is_json()).await,
    }
}

async fn pull(config: &GatewayConfig, json: bool) -> Result<ExitCode> {
    if node_running(config.client.listen).await {
        bail!(
            "the oversight node is running (its dashboard answers at http://{}) and pulls every {} ms by itself; stop it to pull from the command line",
            config.client.listen,
            config.oversight.clone().unwrap_or_default().pull_interval_ms
        );
    }
    let (node, _) = Oversight::open(config)?;
    let bars = indicatif::MultiProgress::new();
    if json {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>15} [{bar:40}] {pos}/{len} entries verified, {per_sec}, eta {eta}",
    )
    .expect("a valid progress template");
    let mut by_dept = std::collections::HashMap::new();
    for d in node.directory().logs().filter(|d| &d.id != node.id()) {
        let bar = bars.add(indicatif::ProgressBar::new(0));
        bar.set_style(style.clone());
        bar.set_prefix(d.id.to_string());
        by_dept.insert(d.id.to_string(), bar);
    }
    let by_dept = Arc::new(by_dept);
    let progress = {
        let by_dept = by_dept.clone();
        Arc::new(move |dept: &str, done: u64, total: u64| {
            if let Some(bar) = by_dept.get(dept) {
                bar.set_length(total);
                bar.set_position(done);
            }
        })
    };
    let started = Instant::now();
    let reports = node.pull_all(progress).await;
    let elapsed = started.elapsed();
    for bar in by_dept.values() {
        bar.finish_and_clear();
    }
    let mut ok = true;
    let mut pulled = 0;
    let mut out = Vec::new();
    for (dept, report) in &reports {
        match report {
            Ok(r) => {
                pulled += r.to - r.from;
                ok &= r.flag.is_none();
                out.push(serde_json::json!({"department": dept, "from": r.from, "to": r.to, "witnesses": r.witnesses, "flag": r.flag}));
                if !json {
                    match &r.flag {
                        None => println!(
                            "{dept:<15} ok       {:>9} entries verified ({} new), checkpoint cosigned by {} witness(es)",
                            r.to,
                            r.to - r.from,
                            r.witnesses
                        ),
                        Some(f) => println!(
                            "{dept:<15} FLAGGED  {}: {}",
                            visible(&f.reason),
                            visible(&f.message)
                        ),
                    }
                }
            }
            Err(e) => {
                ok = false;
                out.push(serde_json::json!({"department": dept, "error": e.to_string()}));
                if !json {
                    println!("{dept:<15} ERROR    {}", visible(&e.to_string()));
                }
            }
        }
    }
    let rate = pulled as f64 / elapsed.as_secs_f64().max(1e-9);
    if json {
        print_json(
            &serde_json::json!({"logs": out, "entries": pulled, "seconds": elapsed.as_secs_f64(), "entries_per_second": rate, "findings": node.findings().len()}),
        )?;
    } else {
        println!(
            "\n{pulled} new entries pulled and verified in {:.2} s ({rate:.0} entries/s)",
            elapsed.as_secs_f64()
        );
        let findings = node.findings();
        if !findings.is_empty() {
            println!(
                "cross-check: {} finding(s); run `causeway audit crosscheck`",
                findings.len()
            );
        }
    }
    node.close();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn crosscheck(config: &GatewayConfig, staff: Option<&str>, json: bool) -> Result<ExitCode> {
    let target = target(config, staff).await?;
    let findings: Vec<Value> = match &target {
        Target::Node(remote) => {
            let v = api_get(remote, "/api/crosscheck").await?;
            v["findings"].as_array().cloned().unwrap_or_default()
        }
        Target::Local(node) => node
            .crosscheck(&Asker::cli())
            .await?
            .iter()
            .map(|f: &Finding| serde_json::to_value(f).expect("findings serialize"))
            .collect(),
    };
    close(target);
    if json {
        print_json(&findings)?;
    } else if findings.is_empty() {
        println!("cross-check: both sides of every exchange agree");
    } else {
        println!(
            "{:<14} {:<38} {:<34} {:<20} detail",
            "kind", "exchange", "consumer -> provider", "time"
        );
        for f in &findings {
            let s = |k: &str| visible(f[k].as_str().unwrap_or("?")).into_owned();
            println!(
                "{:<14} {:<38} {:<34} {:<20} {}",
                s("kind"),
                s("exchange"),
                format!("{} -> {}", s("consumer"), s("provider")),
                s("time").get(..19).unwrap_or(""),
                s("detail")
            );
        }
        println!("\n{} finding(s)", findings.len());
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn subject(
    config: &GatewayConfig,
    staff: Option<&str>,
    id: Option<String>,
    json: bool,
    html: Option<PathBuf>,
) -> Result<ExitCode> {
    let id = national_id(id)?;
    let tag = SubjectTags::load(config)?.of(&config.live_directory()?.current(), &id);
    let target = target(config, staff).await?;
    let report: SubjectReport = match &target {
        Target::Node(remote) => {
            let v = api_get(
                remote,
                &format!(
                    "/api/subject?{}",
                    encode_form(&[("tag".into(), tag.clone())])
                ),
            )
            .await?;
            serde_json::from_value(v).context("the node's report is not in the documented form")?
        }
        Target::Local(node) => node.subject_report(&tag, &Asker::cli()).await?,
    };
    close(target);
    if let Some(path) = html {
        std::fs::write(&path, report.to_html())
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{} exchange(s); printable report written to {} (it names the person by tag only)",
            report.exchanges.len(),
            path.display()
        );
    } else if json {
        print_json(&report)?;
    } else {
        print!("{}", report.to_table(&id));
    }
    Ok(ExitCode::SUCCESS)
}

/// The national id from `--id` or stdin, trimmed.
fn national_id(id: Option<String>) -> Result<String> {
    let id = match id {
        Some(id) => id,
        None => {
            eprint!("National id: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the national id from stdin")?;
            line
        }
    };
    let id = id.trim().to_owned();
    if id.is_empty() {
        bail!("give the person's national id with --id, or type it on stdin");
    }
    Ok(id)
}

/// `audit subject --bundle`: the citizen's report with its evidence, as one verifiable file.
async fn subject_bundle(
    config: &GatewayConfig,
    staff: Option<&str>,
    id: Option<String>,
    out: &Path,
) -> Result<ExitCode> {
    let id = national_id(id)?;
    let tag = SubjectTags::load(config)?.of(&config.live_directory()?.current(), &id);
    let target = target(config, staff).await?;
    let bundle: CitizenBundle = match &target {
        Target::Node(remote) => {
            let v = api_get(
                remote,
                &format!("/api/bundle?{}", encode_form(&[("tag".into(), tag)])),
            )
            .await?;
            serde_json::from_value(v).context(
                "the node's bundle is not in the documented form (causeway-citizen-report/v1)",
            )?
        }
        Target::Local(node) => {
            let made = node.citizen_bundle(&tag, &Asker::cli()).await;
            node.close();
            made?
        }
    };
    let json = serde_json::to_vec_pretty(&bundle).context("encoding the bundle")?;
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{} exchange(s); report with evidence written to {} (it names the person by keyed tags only; check it with `causeway verify-report {} --directory federation.toml`)",
        bundle.exchanges.len(),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `audit seal`.
async fn seal(
    config: &GatewayConfig,
    staff: Option<&str>,
    purpose: &str,
    consumer: Option<&str>,
    until: &str,
    reason: &str,
) -> Result<ExitCode> {
    let until = parse_date(until)
        .ok_or_else(|| usage(format!("--until {until:?}: give a date as YYYY-MM-DD")))?;
    let index = match target(config, staff).await? {
        Target::Node(remote) => {
            let mut form = vec![
                ("purpose".to_owned(), purpose.to_owned()),
                ("until".to_owned(), format_date(until)),
                ("reason".to_owned(), reason.to_owned()),
            ];
            form.extend(consumer.map(|c| ("consumer".to_owned(), c.to_owned())));
            let v = api_post_form(&remote, "/api/seal", form).await?;
            v["index"]
                .as_u64()
                .context("the node recorded the seal but did not say where")?
        }
        Target::Local(node) => {
            let sealed = node
                .seal(&Asker::cli(), purpose, consumer, until, reason)
                .await;
            node.close();
            sealed.map_err(|e| match e {
                SealError::Invalid(why) => usage(why),
                other => other.into(),
            })?
        }
    };
    println!(
        "sealed {}{} until {} (reason {}): notarized as entry {index} of the oversight ledger",
        visible(purpose),
        consumer.map_or(String::new(), |c| format!(" for {}", visible(c))),
        format_date(until),
        visible(reason)
    );
    Ok(ExitCode::SUCCESS)
}

async fn search(
    config: &GatewayConfig,
    staff: Option<&str>,
    params: &[(String, String)],
    format: Output,
) -> Result<ExitCode> {
    let query: Query = to_query(params).map_err(|e| anyhow::anyhow!(e))?;
    let target = target(config, staff).await?;
    let (records, truncated): (Vec<Value>, bool) = match &target {
        Target::Node(remote) => {
            let v = api_get(remote, &format!("/api/search?{}", encode_form(params))).await?;
            (
                v["records"].as_array().cloned().unwrap_or_default(),
                v["truncated"].as_bool().unwrap_or(false),
            )
        }
        Target::Local(node) => {
            let result = node.search(&query, &Asker::cli(), "search").await?;
            (
                result
                    .records
                    .iter()
                    .map(|r: &Record| serde_json::to_value(r).expect("records serialize"))
                    .collect(),
                result.truncated,
            )
        }
    };
    close(target);
    match format {
        Output::Json => print_json(
            &serde_json::json!({"query": query, "truncated": truncated, "records": records}),
        )?,
        Output::Csv => {
            let records: Vec<Record> = records
                .iter()
                .filter_map(|r| serde_json::from_value(r.clone()).ok())
                .collect();
            print!("{}", crate::oversight::dashboard::to_csv(&records));
        }
        Output::Table => {
            println!(
                "{:<20} {:<20} {:<9} {:<38} {:<34} {:<12} {:<20} decision",
                "time",
                "log #index",
                "side",
                "exchange",
                "consumer -> provider",
                "dataset",
                "purpose"
            );
            for r in &records {
                let e = &r["entry"];
                let s = |k: &str| visible(e[k].as_str().unwrap_or("")).into_owned();
                println!(
                    "{:<20} {:<20} {:<9} {:<38} {:<34} {:<12} {:<20} {} {}",
                    s("time").get(..19).unwrap_or(""),
                    format!(
                        "{} #{}",
                        visible(r["log"].as_str().unwrap_or("")),
                        r["index"]
                    ),
                    s("side"),
                    s("id"),
                    format!("{} -> {}", s("consumer"), s("provider")),
                    s("dataset"),
                    s("purpose"),
                    s("decision"),
                    s("reason")
                );
            }
            println!(
                "\n{} entr{}{}",
                records.len(),
                if records.len() == 1 { "y" } else { "ies" },
                if truncated {
                    " (more matched; narrow the search or raise --limit)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(config: &GatewayConfig, staff: Option<&str>, json: bool) -> Result<ExitCode> {
    let target = target(config, staff).await?;
    let statuses: Vec<Value> = match &target {
        Target::Node(remote) => api_get(remote, "/api/status").await?["logs"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Target::Local(node) => node
            .statuses()
            .await?
            .iter()
            .map(|s: &LogStatus| serde_json::to_value(s).expect("statuses serialize"))
            .collect(),
    };
    close(target);
    let ok = statuses.iter().all(|s| s["state"]["flag"].is_null());
    if json {
        print_json(&statuses)?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    for s in &statuses {
        let st = &s["state"];
        let state = if !st["flag"].is_null() {
            format!(
                "FLAGGED {}: {}",
                st["flag"]["reason"].as_str().unwrap_or("?"),
                st["flag"]["message"].as_str().unwrap_or("")
            )
        } else if let Some(e) = st["last_error"].as_str() {
            format!("unreachable: {e}")
        } else if st["checkpoint"].is_null() {
            "not pulled yet".into()
        } else {
            "verified".into()
        };
        println!(
            "{:<15} {:>9} entries  checkpoint {:>9}  witnesses {}/{}  last pull {}  {}",
            visible(s["department"].as_str().unwrap_or("?")),
            st["size"],
            st["checkpoint"]["size"],
            st["witnesses"].as_array().map_or(0, |w| w.len()),
            s["known_witnesses"],
            visible(st["last_pull"].as_str().unwrap_or("never")),
            visible(&state),
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
