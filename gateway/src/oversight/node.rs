//! A running oversight node: the pull loop, the dashboard on `[client] listen` (loopback HTTP),
//! and this node's own log on `[peer] https` (mTLS: checkpoints and proofs, so that anyone in the
//! federation can check the record of oversight queries).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Oversight;
use crate::config::GatewayConfig;
use crate::exchange::rescue::json_response;
use crate::ledger::Ledger;
use crate::log_api::LogApi;
use crate::transport::peer::PeerTransport;
use crate::transport::server::{serve, Call};
use crate::transport::HTTPS_ALPN;

/// What [`start`] hands the gateway: addresses, shared parts, and the tasks to stop.
pub struct Started {
    /// Where the dashboard listens.
    pub dashboard_addr: SocketAddr,
    /// Where this node's own log is served (mTLS).
    pub peer_addr: SocketAddr,
    /// The node.
    pub node: Arc<Oversight>,
    /// Its own ledger.
    pub ledger: Arc<Ledger>,
    /// How it reaches departments.
    pub peers: Arc<PeerTransport>,
    /// Turn true to stop.
    pub shutdown: watch::Sender<bool>,
    /// The serving and pulling tasks.
    pub tasks: JoinSet<()>,
}

/// Open the node `config` describes, bind its listeners, and start pulling.
pub async fn start(config: &GatewayConfig) -> Result<Started> {
    let (node, tls) = Oversight::open(config)?;
    let node = Arc::new(node);
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} ({what}); is another node running?"))
    };
    if !config.client.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.client.listen, "the oversight dashboard has no authentication of its own: bind it on loopback behind your auth proxy");
    }
    let dashboard_listener = bind(config.client.listen, "[client] listen: the dashboard").await?;
    let peer_listener = bind(config.peer.https, "[peer] https").await?;
    let (dashboard_addr, peer_addr) = (
        dashboard_listener.local_addr()?,
        peer_listener.local_addr()?,
    );
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let key = crate::identity::GatewayKey::load(&config.identity.signing_key)?;
    let log_api = Arc::new(LogApi::new(
        node.ledger().clone(),
        node.directory().clone(),
        node.id().clone(),
        key.witness_cosigner(),
    ));
    let peer_handler = move |call: Call| {
        let log_api = log_api.clone();
        async move {
            match log_api.route(&call).await {
                Some(response) => response,
                None => json_response(
                    404,
                    &json!({"error": {"code": "not-found", "message": "an oversight node serves only its own log on this port"}}),
                ),
            }
        }
    };
    tasks.spawn(serve(
        peer_listener,
        Some(tls.server_config(HTTPS_ALPN)?),
        crate::gateway::MAX_PEER_BODY,
        peer_handler,
        stop.clone(),
    ));
    let dashboard_node = node.clone();
    tasks.spawn(serve(
        dashboard_listener,
        None,
        super::dashboard::MAX_FORM_BYTES,
        move |call: Call| super::dashboard::handle(dashboard_node.clone(), call),
        stop.clone(),
    ));
    tasks.spawn(pull_loop(
        node.clone(),
        Duration::from_millis(node.settings().pull_interval_ms.max(100)),
        stop,
    ));
    tracing::info!(
        oversight = %node.id(),
        dashboard = %dashboard_addr,
        peer = %peer_addr,
        departments = node.directory().departments().count(),
        "oversight node started"
    );
    Ok(Started {
        dashboard_addr,
        peer_addr,
        ledger: node.ledger().clone(),
        peers: node.peers().clone(),
        node,
        shutdown,
        tasks,
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
