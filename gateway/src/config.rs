//! What an operator writes for one gateway or oversight node: `causeway.toml`. It is strict:
//! unknown keys are errors, and every error names the file and the field. Relative paths resolve
//! against the directory of the file that names them.
//!
//! The sections are plain data. The federation's membership and keys are not here but in the
//! [`crate::directory`] this file points to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use causeway_ledger::LedgerOptions;
use serde::Deserialize;

use crate::directory::{DirectorySource, LiveDirectory, Transport};
use crate::files::toml_error;
pub use crate::identity::IdentityFiles;
use crate::identity::{AppId, DeptId};
use crate::rate_limits::Budget;

/// What this node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A department gateway (the default).
    #[default]
    Department,
    /// An oversight node.
    Oversight,
}

/// `causeway.toml`: one gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// This department's id; must match the identity URI in its certificate.
    pub department: DeptId,
    /// Department gateway or oversight node.
    #[serde(default)]
    pub role: Role,
    /// The federation directory file: the signed one `causeway federation publish` writes.
    pub directory: PathBuf,
    /// The federation operator's directory key (`directory.vkey` from `causeway certs init`).
    /// With it the directory must be signed by that key, and it is read again every
    /// `directory_reload_secs` and on SIGHUP; without it the file is read once, unsigned (a
    /// development setting).
    #[serde(default)]
    pub directory_key: Option<PathBuf>,
    /// Where the operator serves the signed directory (`https://...`, with a certificate of the
    /// federation CA): newer versions are fetched from there, checked, and kept in `directory`
    /// (which holds the first copy, installed with this config).
    #[serde(default)]
    pub directory_url: Option<String>,
    /// How often the signed directory is read again (seconds).
    #[serde(default = "default_directory_reload_secs")]
    pub directory_reload_secs: u64,
    /// The datasets file (providers only).
    pub datasets: Option<PathBuf>,
    /// The policy directory (providers only).
    pub policies: Option<PathBuf>,
    /// A candidate policy directory decided beside `policies` for every request (shadow mode):
    /// only the active decision counts; differences are counted and logged.
    #[serde(default)]
    pub policies_shadow: Option<PathBuf>,
    /// Key and certificate files.
    pub identity: IdentityFiles,
    /// The ledger.
    pub ledger: LedgerSection,
    /// The local client API.
    pub client: ClientSection,
    /// The peer API.
    pub peer: PeerSection,
    /// Health and metrics.
    pub admin: Option<AdminSection>,
    /// `[telemetry]`: OTLP export of traces and metrics (docs/OPERATIONS.md).
    #[serde(default)]
    pub telemetry: TelemetrySection,
    /// Oversight nodes only: the replica and how often to pull (docs/OVERSIGHT.md).
    #[serde(default)]
    pub oversight: Option<OversightSection>,
    /// The identity provider whose tokens name officers.
    #[serde(default)]
    pub officers: Option<OfficersSection>,
}

/// `[ledger]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// The LMDB environment directory.
    pub dir: PathBuf,
    /// LMDB map size in MiB to start with (the file is sparse); it doubles whenever it is full.
    #[serde(default = "default_map_size_mib")]
    pub map_size_mib: u64,
    /// The most the map may grow to, in MiB: a ledger that fills it refuses to release data.
    #[serde(default = "default_max_map_size_mib")]
    pub max_map_size_mib: u64,
    /// The longest a commit batch stays open for more appends, in microseconds.
    #[serde(default = "default_batch_window_us")]
    pub batch_window_us: u64,
    /// A batch closes early once appends pause for this long, in microseconds.
    #[serde(default = "default_batch_gap_us")]
    pub batch_gap_us: u64,
    /// Most entries in one commit batch.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl LedgerSection {
    /// The ledger's options.
    pub fn options(&self) -> LedgerOptions {
        LedgerOptions {
            map_size_mib: self.map_size_mib,
            max_map_size_mib: self.max_map_size_mib,
            batch_window: std::time::Duration::from_micros(self.batch_window_us),
            batch_gap: std::time::Duration::from_micros(self.batch_gap_us),
            max_batch: self.max_batch.clamp(1, 65_536),
        }
    }
}

fn default_directory_reload_secs() -> u64 {
    30
}

fn default_batch_window_us() -> u64 {
    2000
}

fn default_batch_gap_us() -> u64 {
    100
}

fn default_max_batch() -> usize {
    4096
}

fn default_map_size_mib() -> u64 {
    causeway_ledger::DEFAULT_MAP_SIZE_MIB
}

fn default_max_map_size_mib() -> u64 {
    causeway_ledger::DEFAULT_MAX_MAP_SIZE_MIB
}

/// `[client]`: the local application API (an oversight node's dashboard uses only `listen`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Address for `POST /v1/requests`.
    pub listen: SocketAddr,
    /// How long the consumer waits for a provider, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The department's application CA (PEM): the client API speaks mutual TLS (1.3) and admits
    /// only certificates this CA issued (`causeway certs issue-app`).
    #[serde(default)]
    pub app_ca: Option<PathBuf>,
    /// The registered applications and their outbound rules (`applications.toml`).
    #[serde(default)]
    pub applications: Option<PathBuf>,
    /// Development only: serve plain HTTP on loopback instead of mutual TLS, and take every
    /// request as coming from this registered application. Logged loudly at start.
    #[serde(default)]
    pub insecure_plaintext_as: Option<AppId>,
    /// The `Host` values (`name:port`) the API answers to; by default the listen address and, on
    /// loopback, `localhost:PORT`, `127.0.0.1:PORT` and `[::1]:PORT`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `[client.rate_limits]`: each application's budget of requests and notarized refusals.
    #[serde(default = "default_caller_budget")]
    pub rate_limits: Budget,
    /// `[client.officer_rate_limits]`: each officer's budget of requests.
    #[serde(default = "default_officer_budget")]
    pub officer_rate_limits: Budget,
    /// Connections open at once; more are closed as soon as they connect.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are closed as soon as they connect.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// A connection with no request in flight for this many seconds is closed gracefully.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

/// `[officers]`: the department's identity provider, whose access tokens prove which officer an
/// application acts for (docs/OPERATIONS.md, "Connecting an identity provider").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficersSection {
    /// The `iss` the tokens must carry.
    pub issuer: String,
    /// The `aud` the tokens must carry (this gateway).
    pub audience: String,
    /// The identity provider's published keys (a JWKS file, RFC 7517).
    pub jwks: PathBuf,
    /// The claim that holds the officer id.
    #[serde(default = "default_officer_claim")]
    pub claim: String,
    /// The claim that holds the officer's roles (an array, or a space-separated string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Largest accepted clock skew for `exp` and `nbf`, in seconds.
    #[serde(default = "default_token_skew_secs")]
    pub max_skew_secs: u64,
    /// Roles required per purpose: `purpose = "role"`.
    #[serde(default)]
    pub purpose_roles: std::collections::BTreeMap<String, String>,
}

fn default_officer_claim() -> String {
    "sub".into()
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_token_skew_secs() -> u64 {
    60
}

/// A consumer department's budget at a provider, and an application's at its own gateway.
fn default_caller_budget() -> Budget {
    Budget {
        decisions: 60_000,
        denials: 60,
        window_secs: 60,
    }
}

fn default_officer_budget() -> Budget {
    Budget {
        decisions: 600,
        denials: 60,
        window_secs: 60,
    }
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

fn default_max_connections() -> usize {
    4096
}

fn default_max_connections_per_address() -> usize {
    256
}

fn default_idle_timeout_secs() -> u64 {
    60
}

/// `[peer]`: the mTLS API other gateways call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    /// HTTPS/2 listen address.
    pub https: SocketAddr,
    /// QUIC listen address (UDP), if this gateway serves QUIC.
    pub quic: Option<SocketAddr>,
    /// Transport to use towards peers that list both (`https` or `quic`); QUIC falls back to HTTPS.
    #[serde(default)]
    pub prefer: Transport,
    /// `[peer.rate_limits]`: each consumer department's budget of decisions and notarized denials
    /// (docs/OPERATIONS.md, "Rate limits").
    #[serde(default = "default_caller_budget")]
    pub rate_limits: Budget,
    /// Time allowed for a whole QUIC request frame to arrive, in milliseconds.
    #[serde(default = "default_quic_frame_timeout_ms")]
    pub quic_frame_timeout_ms: u64,
    /// Largest accepted clock skew of an envelope, in seconds.
    #[serde(default = "default_max_skew_secs")]
    pub max_skew_secs: u64,
    /// HTTPS connections open at once; more are closed as soon as they connect, before TLS.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// HTTPS connections open at once from one IP address; more are closed as soon as they
    /// connect, before TLS.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// An HTTPS connection with no request in flight for this many seconds is closed gracefully.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// QUIC connections open at once, handshaking or established; more are refused.
    #[serde(default = "default_max_connections")]
    pub quic_max_connections: usize,
    /// QUIC handshakes in progress at once; more connection attempts are refused.
    #[serde(default = "default_quic_max_handshakes")]
    pub quic_max_handshakes: usize,
    /// Once this many QUIC handshakes are in progress, a new client must first prove its address
    /// with a Retry round trip (0: always).
    #[serde(default = "default_quic_handshakes_before_retry")]
    pub quic_handshakes_before_retry: usize,
    /// A QUIC connection with no stream in flight for this many seconds is closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub quic_idle_timeout_secs: u64,
}

fn default_quic_max_handshakes() -> usize {
    64
}

fn default_quic_handshakes_before_retry() -> usize {
    16
}

fn default_quic_frame_timeout_ms() -> u64 {
    10_000
}

fn default_max_skew_secs() -> u64 {
    60
}

/// `[admin]`: health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Listen address for `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// Connections open at once; more are closed as soon as they connect.
    #[serde(default = "default_admin_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are closed as soon as they connect.
    #[serde(default = "default_admin_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// A connection with no request in flight for this many seconds is closed gracefully.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

fn default_admin_max_connections() -> usize {
    64
}

fn default_admin_max_connections_per_address() -> usize {
    16
}

/// `[telemetry]`: where to send traces and metrics. Every field is optional; unset fields fall back
/// to the standard OpenTelemetry environment variables, and with no endpoint anywhere nothing is
/// exported (logs and `/metrics` work regardless).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; `/v1/traces` and
    /// `/v1/metrics` are appended. Else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (base).
    pub endpoint: Option<String>,
    /// `http/protobuf` (the only one built in). Else `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0; a request that arrives with a sampled
    /// `traceparent` is always recorded (parent-based). Else `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG`; by default every trace.
    pub sampling: Option<f64>,
    /// The `service.name` resource attribute. Else `OTEL_SERVICE_NAME`, else `causeway`.
    pub service_name: Option<String>,
    /// PEM bundle of the CA that signed an `https://` collector's certificate.
    pub ca: Option<PathBuf>,
    /// Seconds between metric exports over OTLP (default 60). Else `OTEL_METRIC_EXPORT_INTERVAL`
    /// (milliseconds).
    pub metrics_interval_secs: Option<u64>,
}

/// `[oversight]` in an oversight node's `causeway.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OversightSection {
    /// The replica's LMDB directory.
    #[serde(default = "default_replica")]
    pub replica: PathBuf,
    /// LMDB map size of the replica in MiB to start with (the file is sparse); it doubles whenever
    /// it is full.
    #[serde(default = "default_replica_map_size_mib")]
    pub map_size_mib: u64,
    /// How often to pull every department's log, in milliseconds.
    #[serde(default = "default_pull_interval_ms")]
    pub pull_interval_ms: u64,
    /// A missing side of an exchange counts once the other department's log was pulled this
    /// many seconds after the exchange.
    #[serde(default = "default_grace_secs")]
    pub grace_secs: u64,
    /// The consumer recording an exchange more than this many seconds after the provider is a
    /// `late` finding.
    #[serde(default = "default_late_secs")]
    pub late_secs: u64,
    /// Department tag keys are searched in every version from 1 to this one (raise it after a
    /// department's tag key rotates: docs/OPERATIONS.md, "Tag keys").
    #[serde(default = "default_tag_key_versions")]
    pub tag_key_versions: u32,
    /// The staff accounts that may sign in to the dashboard and API (`causeway oversight staff`
    /// manages the file; docs/OVERSIGHT.md, "Staff and roles").
    #[serde(default = "default_staff")]
    pub staff: PathBuf,
    /// Wrong passwords in a row that lock an account (unknown names count the same way).
    #[serde(default = "default_lockout_failures")]
    pub lockout_failures: u32,
    /// How long a locked account stays locked, in seconds (even the right password is refused).
    #[serde(default = "default_lockout_secs")]
    pub lockout_secs: u64,
    /// The longest a seal keeps exchanges out of citizens' reports, in days from the day it was
    /// recorded: a longer seal is refused here, and one in another centre's log is honoured only
    /// this long. Longer needs a new seal, notarized again.
    #[serde(default = "default_max_seal_days")]
    pub max_seal_days: u32,
    /// The `Host` values the dashboard answers (`ip:port` or `name:port`); empty means the listen
    /// address's `ip:port` and `localhost:port`. Anything else is refused (DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Staff sign-in through the oversight body's own identity provider (OpenID Connect), beside
    /// or instead of local staff accounts.
    #[serde(default)]
    pub oidc: Option<OidcSection>,
}

/// `[oversight.oidc]`: the identity provider staff sign in with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The provider's issuer (`iss` of its ID tokens).
    pub issuer: String,
    /// Its authorization endpoint (where browsers are sent).
    pub authorization_endpoint: String,
    /// Its token endpoint (asked by this node directly).
    pub token_endpoint: String,
    /// Its published signing keys (a JWKS file, RFC 7517).
    pub jwks: PathBuf,
    /// This node's client id at the provider.
    pub client_id: String,
    /// A file holding this node's client secret (0600), for a confidential client; without it
    /// the node is a public client and PKCE alone protects the code.
    pub client_secret_file: Option<PathBuf>,
    /// Where the provider sends the browser back: this dashboard's `/login/oidc/callback`, as the
    /// browser reaches it.
    pub redirect_uri: String,
    /// The CA bundle (PEM) of the provider's TLS certificate. `http://` endpoints are accepted
    /// only on loopback (a provider on the same machine).
    pub ca: Option<PathBuf>,
    /// The claim naming the staff member.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// The claim listing their roles (an array, or a space-separated string); values that are
    /// oversight roles (`viewer`, `investigator`, `subject-officer`, `administrator`) count.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Scopes asked for.
    #[serde(default = "default_scopes")]
    pub scopes: String,
}

fn default_name_claim() -> String {
    "preferred_username".into()
}
fn default_scopes() -> String {
    "openid profile".into()
}

fn default_staff() -> PathBuf {
    PathBuf::from("staff.toml")
}
fn default_lockout_failures() -> u32 {
    5
}
fn default_lockout_secs() -> u64 {
    15 * 60
}

fn default_max_seal_days() -> u32 {
    366
}

fn default_tag_key_versions() -> u32 {
    1
}
fn default_replica() -> PathBuf {
    PathBuf::from("replica")
}
fn default_replica_map_size_mib() -> u64 {
    64 * 1024
}
fn default_pull_interval_ms() -> u64 {
    5_000
}
fn default_grace_secs() -> u64 {
    30
}
fn default_late_secs() -> u64 {
    60
}

impl Default for OversightSection {
    fn default() -> Self {
        OversightSection {
            replica: default_replica(),
            map_size_mib: default_replica_map_size_mib(),
            pull_interval_ms: default_pull_interval_ms(),
            grace_secs: default_grace_secs(),
            late_secs: default_late_secs(),
            tag_key_versions: default_tag_key_versions(),
            oidc: None,
            staff: default_staff(),
            lockout_failures: default_lockout_failures(),
            lockout_secs: default_lockout_secs(),
            max_seal_days: default_max_seal_days(),
            hosts: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// Where the signed directory comes from and the operator key that must have signed it;
    /// `None` without `directory_key` (an unsigned directory, read once).
    pub fn directory_source(&self) -> Result<Option<DirectorySource>> {
        let Some(key) = &self.directory_key else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(key).with_context(|| {
            format!(
                "directory_key = {:?}: cannot read the federation operator's key",
                key.display()
            )
        })?;
        let operator = crate::identity::parse_vkey(text.trim()).map_err(|e| {
            anyhow::anyhow!("directory_key = {:?}: not a verifier key ({e}); use the directory.vkey that `causeway certs init` wrote", key.display())
        })?;
        Ok(Some(DirectorySource {
            path: self.directory.clone(),
            operator,
            reload_every: std::time::Duration::from_secs(self.directory_reload_secs.max(1)),
        }))
    }

    /// The directory this config names, checked and ready to follow changes (see
    /// [`LiveDirectory`]).
    pub fn live_directory(&self) -> Result<std::sync::Arc<LiveDirectory>> {
        let source = self.directory_source()?;
        if source.is_none() {
            tracing::warn!(
                directory = %self.directory.display(),
                "DEVELOPMENT SETTING: no directory_key, so the directory is taken unsigned and read once; set directory_key to the federation operator's directory.vkey"
            );
        }
        LiveDirectory::load(&self.directory, source)
    }

    /// Read, parse and validate a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the gateway config", path.display()))?;
        let mut config: GatewayConfig =
            toml::from_str(&text).map_err(|e| toml_error(path, &text, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.directory);
        config.directory_key.as_mut().map(resolve);
        config.datasets.as_mut().map(resolve);
        config.policies.as_mut().map(resolve);
        config.policies_shadow.as_mut().map(resolve);
        resolve(&mut config.identity.ca);
        config.identity.crl.as_mut().map(resolve);
        resolve(&mut config.identity.cert);
        resolve(&mut config.identity.key);
        resolve(&mut config.identity.signing_key);
        config.identity.tag_key.as_mut().map(resolve);
        config.identity.tag_root.as_mut().map(resolve);
        config.identity.pseudonym_key.as_mut().map(resolve);
        config.identity.witness_key.as_mut().map(resolve);
        resolve(&mut config.ledger.dir);
        config.telemetry.ca.as_mut().map(resolve);
        config.client.app_ca.as_mut().map(resolve);
        config.client.applications.as_mut().map(resolve);
        if let Some(officers) = config.officers.as_mut() {
            resolve(&mut officers.jwks);
        }
        match (config.role, config.oversight.as_mut()) {
            (Role::Oversight, Some(section)) => {
                resolve(&mut section.replica);
                if let Some(oidc) = section.oidc.as_mut() {
                    resolve(&mut oidc.jwks);
                    oidc.client_secret_file.as_mut().map(resolve);
                    oidc.ca.as_mut().map(resolve);
                }
                resolve(&mut section.staff);
            }
            (Role::Oversight, None) => {
                let mut section = OversightSection::default();
                resolve(&mut section.replica);
                resolve(&mut section.staff);
                config.oversight = Some(section);
            }
            (Role::Department, Some(_)) => bail!(
                "{}: [oversight] is only for role = \"oversight\"; remove the section or set the role",
                path.display()
            ),
            (Role::Department, None) => {}
        }
        config.check_limits(path)?;
        let client = &config.client;
        match (config.role, &client.app_ca, &client.insecure_plaintext_as) {
            (Role::Oversight, ..) => {
                if client.app_ca.is_some() || client.applications.is_some() || client.insecure_plaintext_as.is_some() || config.officers.is_some() {
                    bail!("{}: an oversight node's [client] is its dashboard: app_ca, applications, insecure_plaintext_as and [officers] are for department gateways", path.display());
                }
            }
            (Role::Department, Some(_), Some(_)) => bail!(
                "{}: [client] names both app_ca (mutual TLS) and insecure_plaintext_as (plain HTTP): choose one",
                path.display()
            ),
            (Role::Department, None, None) => bail!(
                "{}: [client] app_ca is missing: the client API requires mutual TLS with certificates from the department's application CA (`causeway certs issue-app`); for development only, set insecure_plaintext_as = \"<application id>\" instead",
                path.display()
            ),
            (Role::Department, None, Some(_)) if !client.listen.ip().is_loopback() => bail!(
                "{}: [client] insecure_plaintext_as serves plain HTTP, so listen must be a loopback address, not {}",
                path.display(),
                client.listen
            ),
            (Role::Department, ..) => {}
        }
        Ok(config)
    }

    /// Connection limits of 0 would refuse everything, and an idle timeout of 0 would close every
    /// connection at once: both are mistakes, reported with the field.
    fn check_limits(&self, path: &Path) -> Result<()> {
        let mut positive = vec![
            (
                "[client] max_connections",
                self.client.max_connections as u64,
            ),
            (
                "[client] max_connections_per_address",
                self.client.max_connections_per_address as u64,
            ),
            ("[client] idle_timeout_secs", self.client.idle_timeout_secs),
            ("[peer] max_connections", self.peer.max_connections as u64),
            (
                "[peer] max_connections_per_address",
                self.peer.max_connections_per_address as u64,
            ),
            ("[peer] idle_timeout_secs", self.peer.idle_timeout_secs),
            (
                "[peer] quic_max_connections",
                self.peer.quic_max_connections as u64,
            ),
            (
                "[peer] quic_max_handshakes",
                self.peer.quic_max_handshakes as u64,
            ),
            (
                "[peer] quic_idle_timeout_secs",
                self.peer.quic_idle_timeout_secs,
            ),
        ];
        if let Some(admin) = &self.admin {
            positive.extend([
                ("[admin] max_connections", admin.max_connections as u64),
                (
                    "[admin] max_connections_per_address",
                    admin.max_connections_per_address as u64,
                ),
                ("[admin] idle_timeout_secs", admin.idle_timeout_secs),
            ]);
        }
        for (field, value) in positive {
            if value == 0 {
                bail!("{}: {field} must be at least 1", path.display());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_line_and_column() {
        let text = "department = \"tax\"\nbogus = 1\n";
        let e = toml::from_str::<GatewayConfig>(text).unwrap_err();
        let msg = toml_error(Path::new("causeway.toml"), text, e).to_string();
        assert!(msg.starts_with("causeway.toml:"), "{msg}");
        assert!(
            msg.contains("bogus") || msg.contains("unknown field"),
            "{msg}"
        );
    }

    const MINIMAL: &str = r#"department = "tax"
directory = "federation.toml"
[identity]
ca = "ca.pem"
cert = "tax.pem"
key = "tax.key"
signing_key = "tax.signing.key"
tag_key = "tax.tag.key"
[ledger]
dir = "ledger"
[client]
listen = "127.0.0.1:7001"
app_ca = "apps-ca.pem"
applications = "applications.toml"
[peer]
https = "127.0.0.1:7002"
[admin]
listen = "127.0.0.1:7003"
"#;

    #[test]
    fn connection_limits_have_defaults_and_zero_is_refused_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("causeway.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let config = GatewayConfig::load(&path).unwrap();
        let (client, peer) = (&config.client, &config.peer);
        assert_eq!(
            (client.max_connections, client.max_connections_per_address),
            (4096, 256)
        );
        assert_eq!(
            (peer.max_connections, peer.max_connections_per_address),
            (4096, 256)
        );
        assert_eq!((client.idle_timeout_secs, peer.idle_timeout_secs), (60, 60));
        assert_eq!(
            (
                peer.quic_max_connections,
                peer.quic_max_handshakes,
                peer.quic_handshakes_before_retry,
                peer.quic_idle_timeout_secs
            ),
            (4096, 64, 16, 60)
        );
        let admin = config.admin.as_ref().unwrap();
        assert_eq!(
            (
                admin.max_connections,
                admin.max_connections_per_address,
                admin.idle_timeout_secs
            ),
            (64, 16, 60)
        );

        let zero = MINIMAL.replace("[admin]\n", "[admin]\nmax_connections_per_address = 0\n");
        std::fs::write(&path, zero).unwrap();
        let e = GatewayConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("[admin] max_connections_per_address must be at least 1"),
            "{e}"
        );
    }
}
