//! A running gateway: loads its files, opens its ledger, binds its listeners, serves until told
//! to stop, then drains in-flight exchanges and closes the ledger.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use causeway_adapters::Catalog;
use causeway_policy::PolicySet;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::{Directory, GatewayConfig};
use crate::exchange::consumer::{self, ConsumerContext};
use crate::exchange::rescue::json_response;
use crate::exchange::{provider_pipeline, Inbound, ProtocolResponse, ProviderContext};
use crate::identity::tls::TlsMaterial;
use crate::identity::{identity_from_cert, GatewayKey, PeerIdentity, TagKey};
use crate::ledger::entry::{Entry, Kind};
use crate::ledger::Ledger;
use crate::transport::server::{serve, Call};
use crate::transport::{client::PeerClient, paths, HTTPS_ALPN};

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
    ledger: Arc<Ledger>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Gateway {
    /// Load everything `config` names, open the ledger and start serving.
    pub async fn start(config: &GatewayConfig) -> Result<Gateway> {
        let me = config.department.clone();
        let directory = Arc::new(Directory::load(&config.directory)?);
        let listed = directory.department(&me).with_context(|| {
            format!(
                "{}: department {me} is not listed; add a [[department]] entry for it",
                config.directory.display()
            )
        })?;
        let key = GatewayKey::load(&config.identity.signing_key)?;
        if key.vkey() != listed.verifier.to_vkey() {
            bail!(
                "{}: the vkey listed for {me} does not match the signing key {}; list {}",
                config.directory.display(),
                config.identity.signing_key.display(),
                key.vkey()
            );
        }
        let tls = TlsMaterial::load(
            &config.identity.ca,
            config.identity.crl.as_deref(),
            &config.identity.cert,
            &config.identity.key,
        )?;
        match identity_from_cert(tls.leaf(), &directory.federation) {
            Ok(PeerIdentity::Dept(id)) if id == me => {}
            Ok(other) => bail!(
                "{}: this certificate is for {}, but the config says department {me}",
                config.identity.cert.display(),
                other.uri(&directory.federation)
            ),
            Err(e) => bail!("{}: {e}", config.identity.cert.display()),
        }
        let tag_key = TagKey::load(&config.identity.tag_key)?;
        let policies = load_policies(config.policies.as_deref())?;
        let catalog = match &config.datasets {
            Some(path) => Catalog::open(path).await.map_err(|e| anyhow::anyhow!("{e}"))?,
            None => bail!("the config names no `datasets` file; a department gateway needs one (it may list no datasets)"),
        };
        let ledger = Arc::new(
            Ledger::open(
                &config.ledger.dir,
                config.ledger.map_size_mib,
                key.to_note_signer(),
            )
            .with_context(|| format!("opening the ledger in {}", config.ledger.dir.display()))?,
        );
        notarize_policy_set(&ledger, &policies).await?;

        let provider = ProviderContext {
            me: me.clone(),
            directory: directory.clone(),
            ledger: ledger.clone(),
            policies: Arc::new(RwLock::new(Arc::new(policies))),
            catalog: Arc::new(catalog),
            tag_key: tag_key.clone(),
            max_skew_secs: config.peer.max_skew_secs,
            replay: Arc::default(),
        };
        let consumer = ConsumerContext {
            me,
            signer: Arc::new(key),
            directory: directory.clone(),
            peers: Arc::new(PeerClient::new(
                tls.client_config(HTTPS_ALPN)?,
                directory.federation.clone(),
            )),
            ledger: ledger.clone(),
            tag_key,
            timeout: Duration::from_millis(config.client.request_timeout_ms),
        };

        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} ({what}); is another gateway running?")
            })
        };
        let client_listener = bind(config.client.listen, "[client] listen").await?;
        let peer_listener = bind(config.peer.https, "[peer] https").await?;
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
        let peer_ledger = ledger.clone();
        let peer_handler = move |call: Call| {
            let pipeline = pipeline.clone();
            let ledger = peer_ledger.clone();
            async move { peer_api(call, pipeline, &ledger).await }
        };
        tasks.spawn(serve(
            peer_listener,
            Some(tls.server_config(HTTPS_ALPN)?),
            crate::exchange::envelope::MAX_ENVELOPE_BYTES,
            peer_handler,
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
            client_handler,
            stop.clone(),
        ));
        if let Some(listener) = admin_listener {
            let ledger = ledger.clone();
            let admin_handler = move |call: Call| {
                let ledger = ledger.clone();
                async move { admin_api(call, &ledger) }
            };
            tasks.spawn(serve(listener, None, 1024, admin_handler, stop.clone()));
        }
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
            ledger,
            shutdown,
            tasks,
        })
    }

    /// This gateway's ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Stop accepting, drain in-flight exchanges, commit and close the ledger.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        let ledger = self.ledger.clone();
        let _ = tokio::task::spawn_blocking(move || ledger.close()).await;
    }
}

fn load_policies(dir: Option<&Path>) -> Result<PolicySet> {
    match dir {
        Some(dir) => PolicySet::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}")),
        None => PolicySet::from_sources(&[]).map_err(|e| anyhow::anyhow!("{e}")),
    }
}

/// Record the policy set taking effect, unless the last one recorded is the same.
async fn notarize_policy_set(ledger: &Ledger, set: &PolicySet) -> Result<()> {
    let (size, _) = ledger.checkpoint();
    let last = ledger.read(|r| {
        let mut last = None;
        // Walk back to the most recent policy-change entry.
        for index in (0..size).rev() {
            if let Some(bytes) = r.entry(index)? {
                if let Ok(e) = Entry::from_bytes(bytes) {
                    if e.kind == Kind::PolicyChange {
                        last = e.policy;
                        break;
                    }
                }
            }
        }
        Ok(last)
    })?;
    if last.as_deref() == Some(set.hash()) {
        return Ok(());
    }
    let mut entry = Entry::new(Kind::PolicyChange);
    entry.policy = Some(set.hash().to_owned());
    entry.detail = Some(json!({ "previous": last }));
    ledger
        .append(entry)
        .await
        .context("recording the policy set in the ledger")?;
    Ok(())
}

async fn peer_api<P>(call: Call, pipeline: P, ledger: &Ledger) -> ProtocolResponse
where
    P: tower::Service<Inbound, Response = ProtocolResponse, Error = std::convert::Infallible>,
{
    let path = call.parts.uri.path();
    match (call.parts.method.as_str(), path) {
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
        ("GET", paths::CHECKPOINT) => ProtocolResponse {
            status: 200,
            body: bytes::Bytes::from(ledger.checkpoint().1.as_bytes().to_vec()),
        },
        _ => not_found(path),
    }
}

async fn client_api(call: Call, consumer: &ConsumerContext) -> ProtocolResponse {
    match (call.parts.method.as_str(), call.parts.uri.path()) {
        ("POST", paths::REQUESTS) => consumer::handle(consumer, &call.body).await,
        (_, path) => not_found(path),
    }
}

fn admin_api(call: Call, ledger: &Ledger) -> ProtocolResponse {
    match call.parts.uri.path() {
        "/healthz" => json_response(200, &json!({"status": "alive"})),
        "/readyz" => {
            let (size, _) = ledger.checkpoint();
            json_response(
                200,
                &json!({"ready": true, "ledger": {"size": size, "origin": ledger.origin()}}),
            )
        }
        path => not_found(path),
    }
}

fn not_found(path: &str) -> ProtocolResponse {
    json_response(
        404,
        &json!({"error": {"code": "not-found", "message": format!("no such endpoint: {}", path.chars().take(100).collect::<String>())}}),
    )
}
