//! The oversight node's composition root: the pull loop, the dashboard on `[client] listen`
//! (loopback HTTP), and this node's own log on `[peer] https` (mTLS: checkpoints and proofs, so that
//! anyone in the federation can check the record of oversight queries).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::{bind, client_limits, not_found, peer_limits, Gateway, Running};
use crate::config::GatewayConfig;
use crate::identity::GatewayKey;
use crate::log_api::LogApi;
use crate::oversight::{dashboard, Oversight};
use crate::transport::limits::Connections;
use crate::transport::server::{serve, Call};
use crate::transport::HTTPS_ALPN;

/// Start the oversight node `config` describes: open it, bind its listeners, and start pulling.
pub async fn start(config: &GatewayConfig) -> Result<Gateway> {
    let (node, tls) = Oversight::open(config)?;
    let node = Arc::new(node);
    if !config.client.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.client.listen, "the oversight dashboard has no authentication of its own: bind it on loopback behind your auth proxy");
    }
    let dashboard_listener = bind(config.client.listen, "[client] listen: the dashboard").await?;
    let peer_listener = bind(config.peer.https, "[peer] https").await?;
    let dashboard_addr = dashboard_listener.local_addr()?;
    let peer_addr = peer_listener.local_addr()?;
    let mut running = Running::new();

    // The peer API: this node's own log, nothing else.
    let key = GatewayKey::load(&config.identity.signing_key)?;
    let log_api = Arc::new(LogApi::new(
        node.ledger().clone(),
        node.live_directory().clone(),
        node.id().clone(),
        config.identity.witness_cosigner(&key)?,
    ));
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
    running.spawn(serve(
        peer_listener,
        Some(tls.server_config(HTTPS_ALPN)?),
        Connections::closing_refused_peers("peer", peer_limits(config), tls.revocation().clone()),
        peer_handler,
        running.stop_signal(),
    ));

    // The dashboard.
    let dashboard_node = node.clone();
    running.spawn(serve(
        dashboard_listener,
        None,
        Connections::new(
            "dashboard",
            client_limits(config, dashboard::MAX_FORM_BYTES),
        ),
        move |call: Call| dashboard::handle(dashboard_node.clone(), call),
        running.stop_signal(),
    ));

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
        admin_addr: None,
        quic_addr: None,
        peers: node.peers().clone(),
        department: node.id().clone(),
        ledger: node.ledger().clone(),
        oversight: Some(node),
        running,
    })
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
