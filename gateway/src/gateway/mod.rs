//! The composition roots: one per role, each wiring the lower layers into a running node.
//!
//! - [`department`]: a department gateway. It loads its identity, policies and datasets, opens its
//!   ledger, and serves the client API, the peer API (HTTPS/2 and QUIC) and the admin endpoints.
//! - [`oversight`]: an oversight node. It pulls every department's log into its replica, serves
//!   the dashboard, and serves its own log to the federation.
//!
//! Both hand back a [`Gateway`]: the addresses it listens on and the one way to stop it. What the
//! two roles share (binding listeners, the tasks and the signal that stops them) lives here.

pub mod department;
pub mod key_rotation;
pub mod oversight;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{AdminSection, GatewayConfig, Role};
use crate::identity::DeptId;
use crate::transport::limits::ListenerLimits;
use crate::transport::peer::{PeerTransport, TransportStats};
use crate::transport::{json_response, ProtocolResponse};
use causeway_ledger::Ledger;

/// Largest peer request body: an envelope or a witness add-checkpoint request.
pub const MAX_PEER_BODY: usize = causeway_ledger::witness::MAX_ADD_CHECKPOINT_BYTES;

/// Largest client API request body.
pub const MAX_CLIENT_BODY: usize = 64 * 1024;

/// Largest admin request body.
pub const MAX_ADMIN_BODY: usize = 1024;

/// A started node: a department gateway or an oversight node.
pub struct Gateway {
    /// Where the client API (an oversight node's dashboard) listens.
    pub client_addr: SocketAddr,
    /// Where the HTTPS peer API listens.
    pub peer_addr: SocketAddr,
    /// Where the admin endpoints listen.
    pub admin_addr: Option<SocketAddr>,
    /// Where the QUIC peer API listens, if it does.
    pub quic_addr: Option<SocketAddr>,
    peers: Arc<PeerTransport>,
    department: DeptId,
    ledger: Arc<Ledger>,
    directory: Arc<crate::directory::LiveDirectory>,
    oversight: Option<Arc<crate::oversight::Oversight>>,
    running: Running,
}

impl Gateway {
    /// Load everything `config` names, open the ledger and start serving, as the role it names:
    /// a department gateway ([`department::start`]) or an oversight node ([`oversight::start`]).
    pub async fn start(config: &GatewayConfig) -> Result<Gateway> {
        match config.role {
            Role::Department => department::start(config).await,
            Role::Oversight => oversight::start(config).await,
        }
    }

    /// The oversight node, if this is one.
    pub fn oversight(&self) -> Option<&Arc<crate::oversight::Oversight>> {
        self.oversight.as_ref()
    }

    /// This gateway's department.
    pub fn department(&self) -> &DeptId {
        &self.department
    }

    /// Requests this gateway sent per peer transport, and QUIC-to-HTTPS fallbacks.
    pub fn transport_stats(&self) -> &TransportStats {
        self.peers.stats()
    }

    /// This gateway's ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Read the federation directory's source now, as SIGHUP does: a newer published version is
    /// notarized and in force when this returns.
    pub async fn reload_directory(
        &self,
    ) -> Result<crate::directory::Applied, crate::directory::signed::DirectoryError> {
        self.directory.reload(&self.ledger, "reload").await
    }

    /// Stop accepting, drain in-flight exchanges, commit and close the ledger.
    pub async fn shutdown(self) {
        self.running.stop().await;
        self.peers.close();
        let ledger = self.ledger.clone();
        let _ = tokio::task::spawn_blocking(move || ledger.close()).await;
    }
}

/// The serving tasks of a node and the signal that stops them.
struct Running {
    shutdown: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    fn new() -> Self {
        let (shutdown, stop) = watch::channel(false);
        Running {
            shutdown,
            stop,
            tasks: JoinSet::new(),
        }
    }

    /// A receiver that turns true when the node stops.
    fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Run `task` until the node stops (the task watches [`Running::stop_signal`]).
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Tell every task to stop and wait until they have.
    async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Bind a TCP listener for the config field `what`, with an error that says what to check.
async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what}); is another node running?"))
}

/// The limits of the `[client]` listener: a department's client API, an oversight node's dashboard.
fn client_limits(config: &GatewayConfig, max_body: usize) -> ListenerLimits {
    ListenerLimits {
        max_body,
        max_connections: config.client.max_connections,
        max_connections_per_address: config.client.max_connections_per_address,
        idle_timeout: Duration::from_secs(config.client.idle_timeout_secs),
    }
}

/// The limits of the `[peer] https` listener.
fn peer_limits(config: &GatewayConfig) -> ListenerLimits {
    ListenerLimits {
        max_body: MAX_PEER_BODY,
        max_connections: config.peer.max_connections,
        max_connections_per_address: config.peer.max_connections_per_address,
        idle_timeout: Duration::from_secs(config.peer.idle_timeout_secs),
    }
}

/// The limits of the `[admin]` listener.
fn admin_limits(admin: &AdminSection) -> ListenerLimits {
    ListenerLimits {
        max_body: MAX_ADMIN_BODY,
        max_connections: admin.max_connections,
        max_connections_per_address: admin.max_connections_per_address,
        idle_timeout: Duration::from_secs(admin.idle_timeout_secs),
    }
}

/// The answer to a path no API here serves.
fn not_found(message: String) -> ProtocolResponse {
    json_response(
        404,
        &json!({"error": {"code": "not-found", "message": message}}),
    )
}

/// With `directory_url`, fetch newer directories from there: over mutual TLS with this node's
/// certificate, the server verified against the federation CA and the CRL in force.
fn follow_directory_url(
    config: &GatewayConfig,
    directory: &crate::directory::LiveDirectory,
    tls: &crate::identity::tls::TlsMaterial,
) -> Result<()> {
    let Some(url) = &config.directory_url else {
        return Ok(());
    };
    anyhow::ensure!(
        config.directory_key.is_some(),
        "directory_url = {url:?} needs directory_key: a fetched directory is only used if the federation operator signed it"
    );
    let fetcher = crate::transport::fetch::Fetcher::new(
        url,
        tls.application_client_config()?,
        crate::directory::signed::MAX_DIRECTORY_BYTES + 1,
    )
    .context("directory_url")?;
    directory.fetch_from(
        fetcher.url(),
        Arc::new(move || {
            let fetcher = fetcher.clone();
            Box::pin(async move { fetcher.fetch().await })
        }),
    );
    Ok(())
}
