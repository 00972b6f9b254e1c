//! The oversight node's composition root: the pull loop, the dashboard on `[client] listen`
//! (loopback HTTP), and this node's own log on `[peer] https` (mTLS: checkpoints, proofs and
//! entries to every member, so that anyone in the federation can check the record of oversight
//! queries), witnessed by the other members.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::{admin_limits, bind, client_limits, not_found, peer_limits, Gateway, Running};
use crate::admin::AdminApi;
use crate::config::GatewayConfig;
use crate::identity::GatewayKey;
use crate::log_api::LogApi;
use crate::oversight::gate::Gate;
use crate::oversight::{dashboard, Oversight};
use crate::telemetry::metrics::Kind;
use crate::telemetry::Metrics;
use crate::transport::limits::Connections;
use crate::transport::server::{serve, Call};
use crate::transport::HTTPS_ALPN;

/// Start the oversight node `config` describes: open it, bind its listeners, and start pulling.
pub async fn start(config: &GatewayConfig) -> Result<Gateway> {
    let (node, tls) = Oversight::open(config)?;
    let node = Arc::new(node);
    // As on a department: the directory version taking effect is notarized, and one older than
    // the last this ledger recorded (a rollback across a restart) is refused.
    node.live_directory()
        .notarize_at_start(node.ledger())
        .await
        .context("recording the federation directory in the oversight node's ledger")?;
    if !config.client.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.client.listen, "the oversight dashboard speaks plain HTTP: bind it on loopback and put a TLS-terminating proxy in front for remote staff");
    }
    let dashboard_listener = bind(config.client.listen, "[client] listen: the dashboard").await?;
    let admin_listener = match &config.admin {
        Some(admin) => Some(bind(admin.listen, "[admin] listen").await?),
        None => None,
    };
    let admin_addr = admin_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let peer_listener = bind(config.peer.https, "[peer] https").await?;
    let dashboard_addr = dashboard_listener.local_addr()?;
    let peer_addr = peer_listener.local_addr()?;
    let mut running = Running::new();

    // The peer API: this node's own log, nothing else.
    let key = GatewayKey::load(&config.identity.signing_key)?;
    let log_api = Arc::new(
        LogApi::new(
            node.ledger().clone(),
            node.live_directory().clone(),
            node.id().clone(),
            config.identity.witness_cosigner(&key)?,
        )
        .entries_for_members(),
    );
    let log_api_metrics = log_api.clone();
    let peer_handler = move |call: Call| {
        let log_api = log_api.clone();
        async move {
            match log_api.route(&call).await {
                Some(response) => response,
                None => {
                    not_found("an oversight node serves only its own log on this port".to_owned())
                }
            }
        }
    };
    let peer_connections =
        Connections::closing_refused_peers("peer", peer_limits(config), tls.revocation().clone());
    running.spawn(serve(
        peer_listener,
        Some(tls.server_config(HTTPS_ALPN)?),
        peer_connections.clone(),
        peer_handler,
        running.stop_signal(),
    ));

    // The dashboard, behind its gate (Host allow-list, staff sign-in, roles, CSRF).
    let mut gate = Gate::new(node.settings(), dashboard_addr);
    if let Some(oidc) = &node.settings().oidc {
        gate = gate.with_oidc(crate::oversight::oidc::Oidc::load(oidc)?);
    }
    let gate = Arc::new(gate);
    running.spawn(record_staff_changes(
        node.clone(),
        gate.clone(),
        running.stop_signal(),
    ));
    let dashboard_node = node.clone();
    let dashboard_gate = gate.clone();
    running.spawn(serve(
        dashboard_listener,
        None,
        Connections::new(
            "dashboard",
            client_limits(config, dashboard::MAX_FORM_BYTES),
        ),
        move |call: Call| dashboard::handle(dashboard_node.clone(), dashboard_gate.clone(), call),
        running.stop_signal(),
    ));

    // The admin endpoints, as on a department gateway, with the pulls' state in the metrics.
    let metrics = Arc::new(Metrics::new(None));
    node.ledger().observe_commits(metrics.clone());
    let admin = Arc::new(AdminApi {
        me: node.id().clone(),
        ledger: node.ledger().clone(),
        directory: node.live_directory().clone(),
        provider: None,
        certificate: tls.certificate().clone(),
        revocation: tls.revocation().clone(),
        metrics: metrics.clone(),
    });
    admin.collect_metrics(&log_api_metrics, node.peers());
    collect_pull_metrics(&metrics, &node);
    collect_staff_metrics(&metrics, &node, &gate);
    if let (Some(listener), Some(section)) = (admin_listener, &config.admin) {
        let connections = Connections::new("admin", admin_limits(section));
        admin.collect_connections(vec![peer_connections, connections.clone()], None);
        running.spawn(serve(
            listener,
            None,
            connections,
            move |call: Call| {
                let admin = admin.clone();
                async move { admin.route(&call).await }
            },
            running.stop_signal(),
        ));
    }

    // The CRL, and the certificate and key files, read again every crl_reload_secs and on
    // SIGHUP (as on a department gateway).
    running.spawn(tls.revocation().clone().run(running.stop_signal()));
    running.spawn(tls.certificate().clone().run(running.stop_signal()));

    // The signed directory, read again every directory_reload_secs and on SIGHUP: new departments
    // are pulled from the next round on.
    node.live_directory()
        .enforce_membership(tls.revocation().clone());
    super::follow_directory_url(config, node.live_directory(), &tls)?;
    running.spawn(
        node.live_directory()
            .clone()
            .run(node.ledger().clone(), running.stop_signal()),
    );

    // This node's checkpoints go to every other member to witness, like a department's: a
    // rewritten or truncated record of oversight queries is then caught by departments and by
    // the other oversight centres.
    running.spawn(crate::log_api::collect_cosignatures(
        node.ledger().clone(),
        node.live_directory().clone(),
        node.id().clone(),
        node.peers().https_client(),
        running.stop_signal(),
    ));

    // The pull loop.
    running.spawn(pull_loop(
        node.clone(),
        Duration::from_millis(node.settings().pull_interval_ms.max(100)),
        running.stop_signal(),
    ));
    tracing::info!(
        oversight = %node.id(),
        dashboard = %dashboard_addr,
        peer = %peer_addr,
        departments = node.directory().departments().count(),
        "oversight node started"
    );
    Ok(Gateway {
        client_addr: dashboard_addr,
        peer_addr,
        admin_addr,
        quic_addr: None,
        peers: node.peers().clone(),
        department: node.id().clone(),
        ledger: node.ledger().clone(),
        directory: node.live_directory().clone(),
        oversight: Some(node),
        running,
    })
}

/// Notarize every change to the staff accounts (who may read what, with which role) in this
/// node's own ledger, where the other centres and the departments see it: the staff file is
/// looked at every second; each change it shows becomes one `staff-change` entry with the roster
/// after it. At start the roster is compared with the last one recorded, so changes made while
/// the node was stopped are recorded too.
async fn record_staff_changes(
    node: Arc<Oversight>,
    gate: Arc<Gate>,
    mut stop: watch::Receiver<bool>,
) {
    use crate::oversight::staff::{roster, roster_changes, RosterEntry};
    use causeway_ledger::entry::{Entry, Kind as EntryKind};
    let ledger = node.ledger().clone();
    let mut recorded: Vec<RosterEntry> =
        tokio::task::spawn_blocking(move || ledger.last_of_kind(EntryKind::StaffChange))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .and_then(|e| e.detail)
            .and_then(|d| serde_json::from_value(d["accounts"].clone()).ok())
            .unwrap_or_default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = roster(&gate.sessions().staff().current(false));
        let changes = roster_changes(&recorded, &now);
        if changes.is_empty() {
            continue;
        }
        let mut entry = Entry::new(EntryKind::StaffChange);
        entry.detail = Some(serde_json::json!({"changes": changes, "accounts": now}));
        match node.ledger().append(entry).await {
            Ok(_) => recorded = now,
            Err(e) => {
                tracing::error!(error = %e, "a staff account change could not be notarized; will retry")
            }
        }
    }
}

/// Pull every department's log every `interval` until told to stop.
async fn pull_loop(node: Arc<Oversight>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let round = node.pull_all(Arc::new(|_: &str, _, _| {}));
        tokio::select! {
            _ = round => {}
            _ = stop.changed() => return,
        }
    }
}

/// Per department, on `/metrics`: entries replicated and verified, when the last successful pull
/// began (Unix seconds; the lag is `time() - x` in PromQL), whether the last pull failed and whether the log is flagged; and the
/// cross-check's findings by kind.
fn collect_pull_metrics(metrics: &Metrics, node: &Arc<Oversight>) {
    type Value = fn(&crate::oversight::replica::LogState) -> Option<f64>;
    let each = |value: Value| {
        let node = node.clone();
        move || {
            node.replica()
                .states()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(dept, state)| Some((vec![dept], value(&state)?)))
                .collect()
        }
    };
    metrics.collect(
        "causeway_oversight_replicated_entries",
        "Entries of each department's log replicated and verified here.",
        Kind::Gauge,
        &["department"],
        each(|s| Some(s.size as f64)),
    );
    metrics.collect(
        "causeway_oversight_last_pull_timestamp_seconds",
        "When the last successful pull of each department's log began, in Unix seconds; absent until one succeeds.",
        Kind::Gauge,
        &["department"],
        each(|s| s.last_pull_started_ms.map(|at| at as f64 / 1000.0)),
    );
    metrics.collect(
        "causeway_oversight_pull_failing",
        "1 while the last pull of a department's log failed (unreachable, refused), else 0.",
        Kind::Gauge,
        &["department"],
        each(|s| Some(f64::from(u8::from(s.last_error.is_some())))),
    );
    metrics.collect(
        "causeway_oversight_log_flagged",
        "1 once a department served a log inconsistent with what this node held (evidence kept), else 0.",
        Kind::Gauge,
        &["department"],
        each(|s| Some(f64::from(u8::from(s.flag.is_some())))),
    );
    let findings = node.clone();
    metrics.collect(
        "causeway_oversight_findings",
        "Cross-check findings of the last run, by kind.",
        Kind::Gauge,
        &["kind"],
        move || {
            let mut by_kind = std::collections::BTreeMap::<String, f64>::new();
            for f in findings.findings().iter() {
                *by_kind.entry(format!("{:?}", f.kind)).or_default() += 1.0;
            }
            by_kind.into_iter().map(|(k, n)| (vec![k], n)).collect()
        },
    );
}

/// Notarized queries by the role they were allowed under and by kind, and sign-ins by outcome.
fn collect_staff_metrics(metrics: &Metrics, node: &Arc<Oversight>, gate: &Arc<Gate>) {
    let queries = node.clone();
    metrics.collect(
        "causeway_oversight_queries_total",
        "Oversight queries notarized and answered, by the asker's role and the kind of query.",
        Kind::Counter,
        &["role", "query"],
        move || {
            queries
                .query_counts()
                .into_iter()
                .map(|((role, query), n)| (vec![role, query], n as f64))
                .collect()
        },
    );
    let sign_ins = gate.clone();
    metrics.collect(
        "causeway_oversight_sign_ins_total",
        "Staff sign-ins to the dashboard and API, by outcome (success, wrong-password, locked, disabled).",
        Kind::Counter,
        &["outcome"],
        move || {
            sign_ins
                .sessions()
                .outcomes()
                .into_iter()
                .map(|(outcome, n)| (vec![outcome.as_str().to_owned()], n as f64))
                .collect()
        },
    );
}
