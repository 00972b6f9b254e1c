//! A running gateway: loads its files, opens its ledger, binds its listeners, serves until told
//! to stop, then drains in-flight exchanges and closes the ledger.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use causeway_adapters::Catalog;
use causeway_policy::RateLimiter;
use opentelemetry::metrics::MeterProvider as _;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::admin::AdminApi;
use crate::config::{Directory, GatewayConfig};
use crate::exchange::consumer::{self, ConsumerContext};
use crate::exchange::rescue::json_response;
use crate::exchange::signer::EnvelopeSigner;
use crate::exchange::{provider_pipeline, Inbound, ProtocolResponse, ProviderContext};
use crate::identity::tls::TlsMaterial;
use crate::identity::{DeptId, GatewayKey, PeerIdentity, TagKey};
use crate::ledger::Ledger;
use crate::log_api::{self, LogApi};
use crate::policy_reload::{self, LivePolicies, PolicyWatch, ShadowPolicies};
use crate::telemetry::{observe, ExportPlan, Metrics};
use crate::transport::peer::{PeerTransport, TransportStats};
use crate::transport::quic::{QuicClient, QuicServer, QuicSettings};
use crate::transport::server::{serve, Call};
use crate::transport::{client::PeerClient, paths, Transport, HTTPS_ALPN, QUIC_ALPN};

/// Largest peer request body: an envelope or a witness add-checkpoint request.
pub const MAX_PEER_BODY: usize = crate::ledger::witness::MAX_ADD_CHECKPOINT_BYTES;

/// Largest client API request body.
pub const MAX_CLIENT_BODY: usize = 64 * 1024;

/// A started gateway.
pub struct Gateway {
    /// Where the client API listens.
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
    oversight: Option<Arc<crate::oversight::Oversight>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Gateway {
    /// Load everything `config` names, open the ledger and start serving. With
    /// `role = "oversight"` this starts an oversight node instead (no datasets or policies; the
    /// client address is its dashboard): see [`crate::oversight`].
    pub async fn start(config: &GatewayConfig) -> Result<Gateway> {
        if config.role == crate::config::Role::Oversight {
            let started = crate::oversight::node::start(config).await?;
            return Ok(Gateway {
                client_addr: started.dashboard_addr,
                peer_addr: started.peer_addr,
                admin_addr: None,
                quic_addr: None,
                peers: started.peers,
                department: started.node.id().clone(),
                ledger: started.ledger,
                oversight: Some(started.node),
                shutdown: started.shutdown,
                tasks: started.tasks,
            });
        }
        let me = config.department.clone();
        let directory = Arc::new(Directory::load(&config.directory)?);
        let listed = directory.department(&me).with_context(|| {
            format!(
                "{}: department {me} is not listed; add a [[department]] entry for it",
                config.directory.display()
            )
        })?;
        let key = Arc::new(GatewayKey::load(&config.identity.signing_key)?);
        if key.vkey() != listed.verifier.to_vkey() {
            bail!(
                "{}: the vkey listed for {me} does not match the signing key {}; list {}",
                config.directory.display(),
                config.identity.signing_key.display(),
                key.vkey()
            );
        }
        let tls = TlsMaterial::load_identity(
            &config.identity,
            &directory.federation,
            &PeerIdentity::Dept(me.clone()),
        )?;
        let tag_key = TagKey::load(&config.identity.tag_key)?;
        let policies = Arc::new(
            LivePolicies::load(config.policies.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let shadow = match &config.policies_shadow {
            Some(dir) => Some(Arc::new(ShadowPolicies::load(dir).map_err(|e| {
                anyhow::anyhow!("{e}\n(policies_shadow: the candidate set must load too)")
            })?)),
            None => None,
        };
        let catalog = match &config.datasets {
            Some(path) => Catalog::open(path).await.map_err(|e| anyhow::anyhow!("{e}"))?,
            None => bail!("the config names no `datasets` file; a department gateway needs one (it may list no datasets)"),
        };
        let ledger = Arc::new(
            Ledger::open(
                &config.ledger.dir,
                config.ledger.options(),
                key.to_note_signer(),
            )
            .with_context(|| format!("opening the ledger in {}", config.ledger.dir.display()))?,
        );
        policy_reload::notarize_at_start(&ledger, &policies.current())
            .await
            .context("recording the policy set in the ledger")?;
        let cert_not_after = crate::admin::not_after(tls.leaf())
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.identity.cert.display()))?;
        let meter_provider = ExportPlan::from_env(&config.telemetry)
            .and_then(|plan| plan.meter_provider(Some(me.as_str())))
            .context("[telemetry]")?;
        let metrics = Arc::new(Metrics::new(
            meter_provider.as_ref().map(|p| p.meter("causeway")),
        ));
        ledger.observe_commits(metrics.clone());

        let provider = ProviderContext {
            me: me.clone(),
            directory: directory.clone(),
            ledger: ledger.clone(),
            policies: policies.slot(),
            limiter: Arc::new(RateLimiter::new()),
            shadow: shadow.clone(),
            catalog: Arc::new(catalog),
            tag_key: tag_key.clone(),
            max_skew_secs: config.peer.max_skew_secs,
            replay: Arc::default(),
            batches: Arc::default(),
            metrics: metrics.clone(),
        };
        let peers = Arc::new(PeerTransport::new(
            PeerClient::new(tls.client_config(HTTPS_ALPN)?, directory.federation.clone()),
            match config.peer.prefer {
                Transport::Quic => Some(QuicClient::new(
                    tls.quic_client_config(QUIC_ALPN)?,
                    directory.federation.clone(),
                )?),
                Transport::Https => None,
            },
            config.peer.prefer,
        ));
        let consumer = ConsumerContext {
            me,
            signer: Arc::new(EnvelopeSigner::new(key.clone(), metrics.clone())),
            directory: directory.clone(),
            peers: peers.clone(),
            ledger: ledger.clone(),
            tag_key,
            timeout: Duration::from_millis(config.client.request_timeout_ms),
            checkpoints: Arc::default(),
        };

        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} ({what}); is another gateway running?")
            })
        };
        let client_listener = bind(config.client.listen, "[client] listen").await?;
        let peer_listener = bind(config.peer.https, "[peer] https").await?;
        let quic_server = match config.peer.quic {
            Some(addr) => Some(
                QuicServer::bind(
                    addr,
                    tls.quic_server_config(QUIC_ALPN)?,
                    tls.derived_secret("quic-stateless-reset"),
                    QuicSettings {
                        frame_timeout: Duration::from_millis(config.peer.quic_frame_timeout_ms),
                        limits: crate::transport::frame::FrameLimits {
                            max_header: crate::transport::frame::DEFAULT_MAX_HEADER_BYTES,
                            max_body: MAX_PEER_BODY,
                        },
                        ..QuicSettings::default()
                    },
                )
                .context("[peer] quic: is another gateway running?")?,
            ),
            None => None,
        };
        let quic_addr = quic_server.as_ref().map(|q| q.local_addr()).transpose()?;
        let admin_listener = match &config.admin {
            Some(admin) => Some(bind(admin.listen, "[admin] listen").await?),
            None => None,
        };
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let gateway_addrs = (
            client_listener.local_addr()?,
            peer_listener.local_addr()?,
            admin_listener
                .as_ref()
                .map(|l| l.local_addr())
                .transpose()?,
        );

        let pipeline = provider_pipeline(&provider);
        let log_api = Arc::new(LogApi::new(
            ledger.clone(),
            directory.clone(),
            provider.me.clone(),
            key.witness_cosigner(),
        ));
        let admin = Arc::new(AdminApi {
            me: provider.me.clone(),
            ledger: ledger.clone(),
            directory: directory.clone(),
            policies: policies.clone(),
            shadow: shadow.clone(),
            catalog: provider.catalog.clone(),
            cert_not_after,
            metrics: metrics.clone(),
        });
        admin.collect_metrics(&log_api, &peers);
        let peer_handler = move |call: Call| {
            let pipeline = pipeline.clone();
            let log_api = log_api.clone();
            async move { peer_api(call, pipeline, &log_api).await }
        };
        if let Some(quic_server) = quic_server {
            // The same handler as the HTTPS port: one dispatch for both transports.
            let handler = observe::peer_requests(peer_handler.clone(), Transport::Quic);
            tasks.spawn(quic_server.serve(handler, stop.clone()));
        }
        tasks.spawn(serve(
            peer_listener,
            Some(tls.server_config(HTTPS_ALPN)?),
            MAX_PEER_BODY,
            observe::peer_requests(peer_handler, Transport::Https),
            stop.clone(),
        ));
        tasks.spawn(log_api::collect_cosignatures(
            ledger.clone(),
            directory.clone(),
            provider.me.clone(),
            consumer.peers.https_client(),
            stop.clone(),
        ));
        let consumer = Arc::new(consumer);
        let client_handler = move |call: Call| {
            let consumer = consumer.clone();
            async move { client_api(call, &consumer).await }
        };
        tasks.spawn(serve(
            client_listener,
            None,
            MAX_CLIENT_BODY,
            observe::client_requests(client_handler, metrics.clone()),
            stop.clone(),
        ));
        if let Some(listener) = admin_listener {
            let admin_handler = move |call: Call| {
                let admin = admin.clone();
                async move { admin.route(&call).await }
            };
            tasks.spawn(serve(listener, None, 1024, admin_handler, stop.clone()));
        }
        if let Some(provider) = meter_provider {
            // Export the last values when the gateway stops (the export blocks: not on a worker).
            let mut stop = stop.clone();
            tasks.spawn(async move {
                let _ = stop.changed().await;
                let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            });
        }
        tasks.spawn(PolicyWatch::new(policies, shadow, ledger.clone()).run(stop.clone()));
        tracing::info!(
            department = %provider.me,
            client = %gateway_addrs.0,
            peer = %gateway_addrs.1,
            log_size = ledger.checkpoint().0,
            "gateway started"
        );
        Ok(Gateway {
            client_addr: gateway_addrs.0,
            peer_addr: gateway_addrs.1,
            admin_addr: gateway_addrs.2,
            quic_addr,
            peers,
            department: provider.me.clone(),
            ledger,
            oversight: None,
            shutdown,
            tasks,
        })
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

    /// Stop accepting, drain in-flight exchanges, commit and close the ledger.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.peers.close();
        let ledger = self.ledger.clone();
        let _ = tokio::task::spawn_blocking(move || ledger.close()).await;
    }
}

async fn peer_api<P>(call: Call, pipeline: P, log_api: &LogApi) -> ProtocolResponse
where
    P: tower::Service<Inbound, Response = ProtocolResponse, Error = std::convert::Infallible>,
{
    if let Some(response) = log_api.route(&call).await {
        return response;
    }
    let (method, path) = (call.parts.method.as_str(), call.parts.uri.path());
    match (method, path) {
        ("POST", paths::EXCHANGE) => {
            let signature = call
                .parts
                .headers
                .get(crate::exchange::envelope::SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let inbound = Inbound {
                peer_cert: call.peer_cert,
                signature,
                body: call.body,
            };
            match pipeline.oneshot(inbound).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
        _ => not_found(path),
    }
}

async fn client_api(call: Call, consumer: &ConsumerContext) -> ProtocolResponse {
    match (call.parts.method.as_str(), call.parts.uri.path()) {
        ("POST", paths::REQUESTS) => consumer::handle(consumer, &call.body).await,
        (_, path) => not_found(path),
    }
}

fn not_found(path: &str) -> ProtocolResponse {
    json_response(
        404,
        &json!({"error": {"code": "not-found", "message": format!("no such endpoint: {}", path.chars().take(100).collect::<String>())}}),
    )
}
