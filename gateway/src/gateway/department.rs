//! The department gateway's composition root: load its files, open its ledger, bind its listeners,
//! and serve until told to stop; [`super::Gateway::shutdown`] drains in-flight exchanges and closes
//! the ledger.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use causeway_adapters::Catalog;
use causeway_ledger::entry::Kind;
use causeway_ledger::keys::Rotation;
use causeway_ledger::note::{Cosigner, NoteVerifier};
use causeway_ledger::Ledger;
use causeway_policy::{PseudonymKey, RateLimiter};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tower::ServiceExt;

use super::key_rotation::SigningKeyWatch;
use super::{
    admin_limits, bind, client_limits, not_found, peer_limits, Gateway, Running, MAX_CLIENT_BODY,
    MAX_PEER_BODY,
};
use crate::admin::{AdminApi, ProviderParts};
use crate::callers::Callers;
use crate::config::GatewayConfig;
use crate::directory::LiveDirectory;
use crate::exchange::consumer::{self, CallerLimits, ConsumerContext};
use crate::exchange::signer::EnvelopeSigner;
use crate::exchange::throttle;
use crate::exchange::verify::ReplayCache;
use crate::exchange::{provider_pipeline, Inbound, ProtocolResponse, ProviderContext};
use crate::identity::tls::TlsMaterial;
use crate::identity::{load_or_create_secret, GatewayKey, PeerIdentity, TagKey};
use crate::log_api::{self, LogApi};
use crate::policy_reload::{self, dataset_schemas, LivePolicies, PolicyWatch, ShadowPolicies};
use crate::rate_limits::RateLimits;
use crate::telemetry::{ExportPlan, Metrics};
use crate::transport::frame::{FrameLimits, DEFAULT_MAX_HEADER_BYTES};
use crate::transport::limits::Connections;
use crate::transport::observe;
use crate::transport::peer::PeerTransport;
use crate::transport::quic::{QuicServer, QuicSettings};
use crate::transport::server::{serve, Call};
use crate::transport::{openapi, paths, Transport, HTTPS_ALPN, QUIC_ALPN, SIGNATURE_HEADER};

/// ALPN protocols of the client API (HTTP/2 and HTTP/1.1 over mutual TLS).
const CLIENT_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Start the department gateway `config` describes.
pub async fn start(config: &GatewayConfig) -> Result<Gateway> {
    let me = config.department.clone();
    let identity = Identity::load(config)?;
    let catalog = match &config.datasets {
        Some(path) => Catalog::open(path).await.map_err(|e| anyhow::anyhow!("{e}"))?,
        None => bail!("the config names no `datasets` file; a department gateway needs one (it may list no datasets)"),
    };
    let (policies, shadow) = load_policies(config, &catalog)?;
    let ledger = Arc::new(
        Ledger::open(
            &config.ledger.dir,
            config.ledger.options(),
            identity.key.to_note_signer(),
        )
        .map_err(|e| match identity.key_is_listed() {
            true => anyhow::Error::from(e),
            false => identity.not_listed(config),
        })
        .and_then(|ledger| {
            identity.check_listed_key(config, &ledger)?;
            Ok(ledger)
        })
        .with_context(|| format!("opening the ledger in {}", config.ledger.dir.display()))?,
    );
    policy_reload::notarize_at_start(&ledger, &policies.current())
        .await
        .context("recording the policy set in the ledger")?;
    identity
        .directory
        .notarize_at_start(&ledger)
        .await
        .context("recording the federation directory in the ledger")?;
    let (metrics, meter_provider) = telemetry(config)?;
    ledger.observe_commits(metrics.clone());

    let provider_limits = Arc::new(RateLimits::open(
        config.peer.rate_limits,
        &config.ledger.dir.join("rate-limits.peer.json"),
    ));
    let caller_limits = CallerLimits {
        applications: Arc::new(RateLimits::open(
            config.client.rate_limits,
            &config.ledger.dir.join("rate-limits.applications.json"),
        )),
        officers: Arc::new(RateLimits::open(
            config.client.officer_rate_limits,
            &config.ledger.dir.join("rate-limits.officers.json"),
        )),
    };
    let replay = Arc::new(ReplayCache::default());
    let remembered = replay
        .remember_notarized(
            &ledger,
            time::OffsetDateTime::now_utc().unix_timestamp(),
            config.peer.max_skew_secs as i64,
        )
        .context("reading the ledger's recent exchanges for replay protection")?;
    tracing::debug!(
        remembered,
        "exchange ids remembered from the ledger against replays"
    );
    let provider = ProviderContext {
        me: me.clone(),
        directory: identity.directory.clone(),
        ledger: ledger.clone(),
        policies: policies.slot(),
        limiter: Arc::new(RateLimiter::new()),
        shadow: shadow.clone(),
        catalog: Arc::new(catalog),
        tag_key: identity.tag_key.clone(),
        pseudonyms: identity.pseudonyms.clone(),
        max_skew_secs: config.peer.max_skew_secs,
        replay,
        rate_limits: provider_limits.clone(),
        batches: Arc::default(),
        metrics: metrics.clone(),
    };
    let peers = Arc::new(PeerTransport::connect(
        &identity.tls,
        identity.directory.federation(),
        config.peer.prefer,
    )?);
    let callers = Arc::new(
        Callers::load(config, identity.directory.federation())
            .context("the client API's callers")?,
    );
    let envelope_signer = Arc::new(EnvelopeSigner::new(identity.key.clone(), metrics.clone()));
    let consumer = Arc::new(ConsumerContext {
        me: me.clone(),
        signer: envelope_signer.clone(),
        directory: identity.directory.clone(),
        peers: peers.clone(),
        ledger: ledger.clone(),
        tag_key: identity.tag_key.clone(),
        timeout: Duration::from_millis(config.client.request_timeout_ms),
        checkpoints: Arc::default(),
        callers,
        rate_limits: caller_limits.clone(),
    });

    let client_listener = bind(config.client.listen, "[client] listen").await?;
    let peer_listener = bind(config.peer.https, "[peer] https").await?;
    let quic_server = match config.peer.quic {
        Some(addr) => Some(bind_quic(addr, config, &identity.tls)?),
        None => None,
    };
    let admin_listener = match &config.admin {
        Some(admin) => Some(bind(admin.listen, "[admin] listen").await?),
        None => None,
    };
    let client_addr = client_listener.local_addr()?;
    let peer_addr = peer_listener.local_addr()?;
    let quic_addr = quic_server.as_ref().map(|q| q.local_addr()).transpose()?;
    let admin_addr = admin_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let client_connections = Connections::new("client", client_limits(config, MAX_CLIENT_BODY));
    let peer_connections = Connections::closing_refused_peers(
        "peer",
        peer_limits(config),
        identity.tls.revocation().clone(),
    );
    let admin_connections = config
        .admin
        .as_ref()
        .map(|admin| Connections::new("admin", admin_limits(admin)));
    let quic_load = quic_server.as_ref().map(QuicServer::load);
    let mut running = Running::new();

    // The peer API: exchanges through the provider pipeline, and the log and witness endpoints.
    let pipeline = provider_pipeline(&provider);
    let log_api = Arc::new(LogApi::new(
        ledger.clone(),
        identity.directory.clone(),
        me.clone(),
        identity.witness,
    ));
    let peer_handler = {
        let log_api = log_api.clone();
        move |call: Call| {
            let pipeline = pipeline.clone();
            let log_api = log_api.clone();
            async move { peer_api(call, pipeline, &log_api).await }
        }
    };
    if let Some(quic_server) = quic_server {
        // The same handler as the HTTPS port: one dispatch for both transports.
        let handler = observe::peer_requests(peer_handler.clone(), Transport::Quic, me.clone());
        running.spawn(quic_server.serve(handler, running.stop_signal()));
    }
    running.spawn(serve(
        peer_listener,
        Some(identity.tls.server_config(HTTPS_ALPN)?),
        peer_connections.clone(),
        observe::peer_requests(peer_handler, Transport::Https, me.clone()),
        running.stop_signal(),
    ));
    running.spawn(log_api::collect_cosignatures(
        ledger.clone(),
        identity.directory.clone(),
        me.clone(),
        peers.https_client(),
        running.stop_signal(),
    ));

    // The client API: the applications of this department.
    let client_handler = move |call: Call| {
        let consumer = consumer.clone();
        async move { client_api(call, &consumer).await }
    };
    let client_tls = match &config.client.app_ca {
        Some(app_ca) => Some(identity.tls.client_api_config(app_ca, CLIENT_ALPN)?),
        None => {
            tracing::warn!(
                listen = %client_addr,
                application = ?config.client.insecure_plaintext_as,
                "DEVELOPMENT SETTING: the client API is plain HTTP without client certificates, and every request is taken as the application insecure_plaintext_as names; never use this in production"
            );
            None
        }
    };
    running.spawn(serve(
        client_listener,
        client_tls,
        client_connections.clone(),
        observe::client_requests(client_handler, metrics.clone(), me.clone()),
        running.stop_signal(),
    ));

    // The admin endpoints: health, readiness, metrics, policy status. Its metrics are collected
    // even without a listener: OTLP exports them too.
    let admin = Arc::new(AdminApi {
        me: me.clone(),
        ledger: ledger.clone(),
        directory: identity.directory.clone(),
        provider: Some(ProviderParts {
            policies: policies.clone(),
            shadow: shadow.clone(),
            catalog: provider.catalog.clone(),
        }),
        certificate: identity.tls.certificate().clone(),
        revocation: identity.tls.revocation().clone(),
        metrics: metrics.clone(),
    });
    admin.collect_metrics(&log_api, &peers);
    let mut listeners = vec![client_connections, peer_connections];
    listeners.extend(admin_connections.clone());
    admin.collect_connections(listeners, quic_load);
    if let (Some(listener), Some(connections)) = (admin_listener, admin_connections) {
        let admin_handler = move |call: Call| {
            let admin = admin.clone();
            async move { admin.route(&call).await }
        };
        running.spawn(serve(
            listener,
            None,
            connections,
            admin_handler,
            running.stop_signal(),
        ));
    }
    if let Some(provider) = meter_provider {
        // Export the last values when the gateway stops (the export blocks: not on a worker).
        let mut stop = running.stop_signal();
        running.spawn(async move {
            let _ = stop.changed().await;
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        });
    }
    // What the rate limits refused, notarized once per caller and window.
    let every =
        |budget: &crate::rate_limits::Budget| Duration::from_secs(budget.window_secs.clamp(1, 10));
    running.spawn(throttle::notarize_summaries(
        ledger.clone(),
        vec![
            (provider_limits, throttle::Caller::Consumer),
            (caller_limits.applications, throttle::Caller::Application),
            (caller_limits.officers, throttle::Caller::Officer),
        ],
        every(&config.peer.rate_limits)
            .min(every(&config.client.rate_limits))
            .min(every(&config.client.officer_rate_limits)),
        running.stop_signal(),
    ));
    running.spawn(PolicyWatch::new(policies, shadow, ledger.clone()).run(running.stop_signal()));
    // The CRL, read again every crl_reload_secs and on SIGHUP: new handshakes follow it at once,
    // and open peer connections it refuses are closed.
    running.spawn(identity.tls.revocation().clone().run(running.stop_signal()));
    // The signed directory, read again every directory_reload_secs and on SIGHUP: a newer
    // version is notarized, then put in force.
    identity
        .directory
        .enforce_membership(identity.tls.revocation().clone());
    super::follow_directory_url(config, &identity.directory, &identity.tls)?;
    running.spawn(
        identity
            .directory
            .clone()
            .run(ledger.clone(), running.stop_signal()),
    );
    // The certificate and key files, read again at the same pace and on SIGHUP: a renewed pair
    // that passes the checks is presented from the next handshake on.
    let certificate = identity.tls.certificate().clone();
    running.spawn(certificate.run(running.stop_signal()));
    // The signing key file, read again at the same pace and on SIGHUP: a new key there takes the
    // log over with a key-rotation entry signed by the key in force.
    running.spawn(
        SigningKeyWatch {
            path: config.identity.signing_key.clone(),
            every: Duration::from_secs(config.identity.crl_reload_secs.max(1)),
            ledger: ledger.clone(),
            signer: envelope_signer,
            witness_key_file: config.identity.witness_key.is_some(),
        }
        .run(running.stop_signal()),
    );
    tracing::info!(
        department = %me,
        client = %client_addr,
        peer = %peer_addr,
        log_size = ledger.checkpoint().0,
        "gateway started"
    );
    Ok(Gateway {
        client_addr,
        peer_addr,
        admin_addr,
        quic_addr,
        peers,
        department: me,
        ledger,
        directory: identity.directory.clone(),
        oversight: None,
        running,
    })
}

/// Who this gateway is: the directory that lists it, its signing key (which must be the one the
/// directory lists), its TLS identity, its tag key and its pseudonym key.
struct Identity {
    directory: Arc<LiveDirectory>,
    key: Arc<GatewayKey>,
    /// The log key the directory lists for this department (the signing key, or the key it
    /// rotated from while the directory that lists the new one is not yet published).
    listed_key: NoteVerifier,
    tls: TlsMaterial,
    tag_key: TagKey,
    pseudonyms: PseudonymKey,
    witness: Cosigner,
}

impl Identity {
    fn load(config: &GatewayConfig) -> Result<Self> {
        let me = &config.department;
        let directory = config.live_directory()?;
        let current = directory.current();
        let listed = current.department(me).with_context(|| {
            format!(
                "{}: department {me} is not listed; add a [[department]] entry for it",
                config.directory.display()
            )
        })?;
        let key = Arc::new(GatewayKey::load(&config.identity.signing_key)?);
        let listed_key = listed.verifier.clone();
        let tls = TlsMaterial::load_identity(
            &config.identity,
            directory.federation(),
            &PeerIdentity::Dept(me.clone()),
        )?;
        let witness = config.identity.witness_cosigner(&key)?;
        if let Some(listed) = &listed.witness {
            if listed.to_vkey() != witness.verifier().to_vkey() {
                bail!(
                    "{}: the witness key listed for {me} does not match this gateway's witness key; list {}",
                    config.directory.display(),
                    witness.verifier().to_vkey()
                );
            }
        }
        if let Some(root) = &config.identity.tag_root {
            bail!(
                "[identity] tag_root = {:?}: a department gateway must not hold the tag root (with it, \
                 anyone on this host could compute every department's tags); remove it and keep it \
                 on the oversight nodes only",
                root.display()
            );
        }
        let tag_key = config.identity.tag_key.as_deref().with_context(|| {
            format!(
                "[identity] tag_key is missing: a department gateway needs its own tag key; the \
                 oversight body derives it with `causeway certs tag-key --dept {me} ...` \
                 (docs/OPERATIONS.md, \"Tag keys\")"
            )
        })?;
        let tag_key = TagKey::load(tag_key)?;
        let pseudonyms = PseudonymKey::new(&load_or_create_secret(
            &config.identity.pseudonym_key(&config.ledger.dir),
        )?);
        Ok(Identity {
            directory,
            key,
            listed_key,
            tls,
            tag_key,
            pseudonyms,
            witness,
        })
    }
}

impl Identity {
    /// The signing key must be the one the directory lists, or the one the ledger's last key
    /// rotation handed the log over to from the listed key (the gateway restarted before the
    /// operator published the directory that lists the new key).
    fn check_listed_key(&self, config: &GatewayConfig, ledger: &Ledger) -> Result<()> {
        if self.key_is_listed() {
            return Ok(());
        }
        let handed_over = ledger
            .last_of_kind(Kind::KeyRotation)?
            .and_then(|entry| Rotation::from_entry(&entry))
            .and_then(|r| r.ok())
            .and_then(|r| r.verify().ok())
            .is_some_and(|(old, new)| old == self.listed_key && new.to_vkey() == self.key.vkey());
        if handed_over {
            tracing::warn!(
                listed = %self.listed_key,
                key = %self.key.vkey(),
                "the directory still lists this gateway's previous log key: publish the one it rotated to (causeway federation rotate-key); until then peers refuse its envelopes and receipts"
            );
            return Ok(());
        }
        Err(self.not_listed(config))
    }

    fn key_is_listed(&self) -> bool {
        self.key.vkey() == self.listed_key.to_vkey()
    }

    fn not_listed(&self, config: &GatewayConfig) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: the vkey listed for {} does not match the signing key {}; list {}",
            config.directory.display(),
            config.department,
            config.identity.signing_key.display(),
            self.key.vkey()
        )
    }
}

/// The policy set in force, and the shadow candidate set if one is configured, both checked
/// against the datasets they decide about (their literals must be canonical).
fn load_policies(
    config: &GatewayConfig,
    catalog: &Catalog,
) -> Result<(Arc<LivePolicies>, Option<Arc<ShadowPolicies>>)> {
    let datasets = Arc::new(
        dataset_schemas(catalog.datasets())
            .map_err(|e| anyhow::anyhow!("{}: {e}", catalog.path().display()))?,
    );
    let policies = Arc::new(
        LivePolicies::load(config.policies.as_deref(), Some(datasets.clone()))
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let shadow = match &config.policies_shadow {
        Some(dir) => Some(Arc::new(
            ShadowPolicies::load(dir, Some(datasets)).map_err(|e| {
                anyhow::anyhow!("{e}\n(policies_shadow: the candidate set must load too)")
            })?,
        )),
        None => None,
    };
    Ok((policies, shadow))
}

/// The gateway's metrics, exported over OTLP too when `[telemetry]` or the environment names a
/// collector.
fn telemetry(config: &GatewayConfig) -> Result<(Arc<Metrics>, Option<SdkMeterProvider>)> {
    let meter_provider = ExportPlan::from_env(&config.telemetry)
        .and_then(|plan| plan.meter_provider(Some(config.department.as_str())))
        .context("[telemetry]")?;
    let metrics = Arc::new(Metrics::new(
        meter_provider.as_ref().map(|p| p.meter("causeway")),
    ));
    Ok((metrics, meter_provider))
}

/// Bind the QUIC peer port.
fn bind_quic(
    addr: std::net::SocketAddr,
    config: &GatewayConfig,
    tls: &TlsMaterial,
) -> Result<QuicServer> {
    QuicServer::bind(
        addr,
        tls.quic_server_config(QUIC_ALPN)?,
        tls.derived_secret("quic-stateless-reset"),
        QuicSettings {
            frame_timeout: Duration::from_millis(config.peer.quic_frame_timeout_ms),
            limits: FrameLimits {
                max_header: DEFAULT_MAX_HEADER_BYTES,
                max_body: MAX_PEER_BODY,
            },
            idle_timeout: Duration::from_secs(config.peer.quic_idle_timeout_secs),
            max_connections: config.peer.quic_max_connections,
            max_handshakes: config.peer.quic_max_handshakes,
            handshakes_before_retry: config.peer.quic_handshakes_before_retry,
            revocation: Some(tls.revocation().clone()),
            ..QuicSettings::default()
        },
    )
    .context("[peer] quic: is another gateway running?")
}

/// The peer API: the log and witness endpoints, else an exchange through the provider pipeline.
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
                .get(SIGNATURE_HEADER)
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
        _ => no_such_endpoint(path),
    }
}

/// The client API: `POST /v1/requests`, and its description at `GET /openapi.json`.
async fn client_api(call: Call, consumer: &ConsumerContext) -> ProtocolResponse {
    match (call.parts.method.as_str(), call.parts.uri.path()) {
        ("POST", paths::REQUESTS) => consumer::handle(consumer, &call).await,
        // The public description: no caller check beyond the TLS handshake.
        ("GET", openapi::PATH) => openapi::response(openapi::CLIENT),
        (_, path) => no_such_endpoint(path),
    }
}

fn no_such_endpoint(path: &str) -> ProtocolResponse {
    not_found(format!(
        "no such endpoint: {}",
        path.chars().take(100).collect::<String>()
    ))
}
