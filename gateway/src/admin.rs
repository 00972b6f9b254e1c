//! The admin listener (loopback, plain HTTP): `GET /healthz` (the process answers), `GET /readyz`
//! (can this gateway do its job now, and if not, why) and `GET /metrics` (Prometheus text).
//!
//! Readiness checks, each reported under its own key with `"ready"` and a detail:
//! - `ledger`: the last group commit succeeded (a full map, a full disk or an I/O error fails it);
//! - `certificate`: the gateway's certificate in force is valid for at least
//!   [`CERT_MIN_REMAINING`] more, and the certificate and key files on disk are the pair in force
//!   (a refused renewal leaves the previous pair in force);
//! - `directory`: the federation directory lists this department, the one in force has not
//!   expired, and the last published version read was put in force (a refused one leaves the
//!   previous in force);
//! - `policies`: the policy files on disk load (a failed reload keeps the previous set in force,
//!   but the gateway is then not deciding with the files an administrator last wrote);
//! - `datasets`: every dataset's source answers ([`causeway_adapters::Catalog::check`]);
//! - `revocation`: the CRL file on disk was put in force (a refused one leaves the previous in
//!   force), and the CRL in force is not stale under `crl_stale = "fail-closed"` (when every peer
//!   is refused).
//!
//! Any failing check makes `/readyz` answer 503 with the same JSON body.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use causeway_adapters::Catalog;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::directory::LiveDirectory;
use crate::identity::revocation::Revocation;
use crate::identity::tls::OwnCertificate;
use crate::identity::DeptId;
use crate::log_api::LogApi;
use crate::policy_reload::{self, LivePolicies, ShadowPolicies};
use crate::telemetry::metrics::{Kind, Sample};
use crate::telemetry::Metrics;
use crate::transport::json_response;
use crate::transport::limits::{Connections, QuicLoad, Refusal};
use crate::transport::peer::PeerTransport;
use crate::transport::server::Call;
use crate::transport::ProtocolResponse;
use causeway_ledger::Ledger;

/// A certificate closer to expiry than this makes the gateway not ready: renew it first.
pub const CERT_MIN_REMAINING: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest wait for one dataset's source during a readiness check.
pub const DATASET_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Admin paths.
pub mod paths {
    /// Liveness.
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness, with detail.
    pub const READYZ: &str = "/readyz";
    /// Prometheus text.
    pub const METRICS: &str = "/metrics";
}

/// What the admin endpoints look at: the running gateway's parts.
pub struct AdminApi {
    /// This gateway's department.
    pub me: DeptId,
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The federation directory.
    pub directory: Arc<LiveDirectory>,
    /// What a department gateway decides with and serves (none on an oversight node).
    pub provider: Option<ProviderParts>,
    /// The gateway's certificate in force and its renewals.
    pub certificate: Arc<OwnCertificate>,
    /// The CRL in force and its reloads.
    pub revocation: Arc<Revocation>,
    /// The metrics served on `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// A department gateway's policies and datasets, for its readiness and metrics.
pub struct ProviderParts {
    /// The active policy set and its last reload.
    pub policies: Arc<LivePolicies>,
    /// The shadow set, if configured.
    pub shadow: Option<Arc<ShadowPolicies>>,
    /// The datasets served.
    pub catalog: Arc<Catalog>,
}

impl AdminApi {
    /// Report, on `/metrics`, the values other parts keep: ledger size and last commit,
    /// cosignatures and forks, transport use and fallbacks, policy reload failures and shadow
    /// differences, and the certificate in force (expiry, renewals). Times are Unix seconds.
    pub fn collect_metrics(&self, log_api: &Arc<LogApi>, peers: &Arc<PeerTransport>) {
        let m = &self.metrics;
        let ledger = self.ledger.clone();
        m.collect(
            "causeway_ledger_entries",
            "Entries in this gateway's ledger.",
            Kind::Gauge,
            &[],
            move || vec![(vec![], ledger.checkpoint().0 as f64)],
        );
        let metrics = Arc::downgrade(&self.metrics);
        m.collect(
            "causeway_ledger_last_commit_timestamp_seconds",
            "When the ledger last committed and signed a checkpoint (or the gateway started), in Unix seconds.",
            Kind::Gauge,
            &[],
            move || {
                metrics
                    .upgrade()
                    .map(|m| vec![(vec![], unix_seconds(m.last_commit()))])
                    .unwrap_or_default()
            },
        );
        let ledger = self.ledger.clone();
        m.collect(
            "causeway_ledger_uncosigned_entries",
            "Entries in the ledger that no witness-cosigned checkpoint covers yet.",
            Kind::Gauge,
            &[],
            move || {
                let size = ledger.checkpoint().0;
                let cosigned = ledger.cosigned_checkpoint().map_or(0, |(s, _)| s);
                vec![(vec![], size.saturating_sub(cosigned) as f64)]
            },
        );
        let ledger = self.ledger.clone();
        m.collect(
            "causeway_witness_cosignatures",
            "Witness cosignatures on this gateway's newest cosigned checkpoint.",
            Kind::Gauge,
            &[],
            move || {
                let count = ledger
                    .cosigned_checkpoint()
                    .map_or(0, |(_, note)| cosignatures(&note, ledger.origin()));
                vec![(vec![], count as f64)]
            },
        );
        let log_api = log_api.clone();
        m.collect(
            "causeway_witness_forks_total",
            "Forks this gateway, as a witness, caught: a log signing two trees of one size.",
            Kind::Counter,
            &[],
            move || vec![(vec![], log_api.forks.load(Ordering::Relaxed) as f64)],
        );
        let transport = peers.clone();
        m.collect(
            "causeway_peer_requests_total",
            "Requests this gateway sent to peers, by the transport that carried them.",
            Kind::Counter,
            &["transport"],
            move || {
                let (https, quic, _) = transport.stats().snapshot();
                vec![
                    (vec!["https".into()], https as f64),
                    (vec!["quic".into()], quic as f64),
                ]
            },
        );
        let transport = peers.clone();
        m.collect(
            "causeway_transport_fallbacks_total",
            "Requests QUIC could not carry and HTTPS did.",
            Kind::Counter,
            &[],
            move || vec![(vec![], transport.stats().snapshot().2 as f64)],
        );
        if let Some(provider) = &self.provider {
            let (active, shadow) = (provider.policies.clone(), provider.shadow.clone());
            m.collect(
                "causeway_policy_reload_failures_total",
                "Policy reloads that failed validation (the previous set stayed in force).",
                Kind::Counter,
                &["set"],
                move || {
                    let mut samples =
                        vec![(vec!["active".into()], active.reload_failures() as f64)];
                    if let Some(shadow) = &shadow {
                        samples.push((
                            vec!["shadow".into()],
                            shadow.live().reload_failures() as f64,
                        ));
                    }
                    samples
                },
            );
            let active = provider.policies.clone();
            m.collect(
                "causeway_policy_load_failed",
                "1 while the policy files on disk do not load (the previous set decides), else 0.",
                Kind::Gauge,
                &[],
                move || {
                    vec![(
                        vec![],
                        if active.last_error().is_some() {
                            1.0
                        } else {
                            0.0
                        },
                    )]
                },
            );
            let shadow = provider.shadow.clone();
            m.collect(
                "causeway_policy_shadow_differences_total",
                "Requests the shadow policy set decided differently from the active one.",
                Kind::Counter,
                &[],
                move || {
                    shadow
                        .as_ref()
                        .map(|s| vec![(vec![], s.differences() as f64)])
                        .unwrap_or_default()
                },
            );
        }
        let certificate = self.certificate.clone();
        m.collect(
            "causeway_certificate_expiry_timestamp_seconds",
            "When this gateway's certificate in force expires (its notAfter), in Unix seconds.",
            Kind::Gauge,
            &[],
            move || {
                let not_after = certificate.status().not_after;
                vec![(vec![], not_after.unix_timestamp() as f64)]
            },
        );
        let directory = self.directory.clone();
        m.collect(
            "causeway_directory_serial",
            "Serial of the federation directory in force; absent for an unsigned directory.",
            Kind::Gauge,
            &[],
            move || {
                directory
                    .status()
                    .serial
                    .map(|s| vec![(vec![], s as f64)])
                    .unwrap_or_default()
            },
        );
        let directory = self.directory.clone();
        m.collect(
            "causeway_directory_expiry_timestamp_seconds",
            "When the directory in force expires, in Unix seconds; absent for an unsigned directory.",
            Kind::Gauge,
            &[],
            move || {
                rfc3339_seconds(directory.status().expires.as_deref())
                    .map(|t| vec![(vec![], t)])
                    .unwrap_or_default()
            },
        );
        let directory = self.directory.clone();
        m.collect(
            "causeway_directory_refusals_total",
            "Published directories refused (bad signature, older serial, expired, malformed); the previous one stayed in force.",
            Kind::Counter,
            &[],
            move || vec![(vec![], directory.status().refusals as f64)],
        );
        let directory = self.directory.clone();
        m.collect(
            "causeway_directory_changes_total",
            "Directory versions put in force since start.",
            Kind::Counter,
            &[],
            move || vec![(vec![], directory.status().applied as f64)],
        );
        let certificate = self.certificate.clone();
        m.collect(
            "causeway_certificate_rotations_total",
            "Renewed certificate and key files put in force (applied) or refused (another identity or CA, expired, a key that does not match); a refused pair leaves the previous one in force.",
            Kind::Counter,
            &["result"],
            move || {
                let status = certificate.status();
                vec![
                    (vec!["applied".into()], status.rotations as f64),
                    (vec!["refused".into()], status.refusals as f64),
                ]
            },
        );
        let revocation = self.revocation.clone();
        m.collect(
            "causeway_crl_next_update_timestamp_seconds",
            "When the CRL in force goes stale (its nextUpdate), in Unix seconds; absent without a CRL.",
            Kind::Gauge,
            &[],
            move || {
                rfc3339_seconds(revocation.status().next_update.as_deref())
                    .map(|t| vec![(vec![], t)])
                    .unwrap_or_default()
            },
        );
        let revocation = self.revocation.clone();
        m.collect(
            "causeway_crl_refusals_total",
            "CRLs refused (not signed by the federation CA, rolled back, unreadable); the previous one stayed in force.",
            Kind::Counter,
            &[],
            move || vec![(vec![], revocation.status().refusals as f64)],
        );
        let revocation = self.revocation.clone();
        m.collect(
            "causeway_crl_connections_closed_total",
            "Open peer connections closed because their peer was refused: revoked by the CRL in force, or no longer in the federation directory.",
            Kind::Counter,
            &[],
            move || vec![(vec![], revocation.status().connections_closed as f64)],
        );
    }

    /// Report, on `/metrics`, what the listeners did about their connection limits: connections
    /// open, refused and closed for idleness per listener, and the QUIC port's handshakes in
    /// progress and Retries (docs/OPERATIONS.md, "Metrics").
    pub fn collect_connections(
        &self,
        listeners: Vec<Arc<Connections>>,
        quic: Option<Arc<QuicLoad>>,
    ) {
        let m = &self.metrics;
        let listeners = Arc::new(listeners);
        let (tcp, udp) = (listeners.clone(), quic.clone());
        m.collect(
            "causeway_connections_open",
            "Connections open now, by listener (client, peer, admin, quic).",
            Kind::Gauge,
            &["listener"],
            move || {
                let mut samples: Vec<Sample> = tcp
                    .iter()
                    .map(|c| (vec![c.name().into()], c.open() as f64))
                    .collect();
                samples.extend(udp.iter().map(|q| (vec!["quic".into()], q.open() as f64)));
                samples
            },
        );
        let (tcp, udp) = (listeners.clone(), quic.clone());
        m.collect(
            "causeway_connections_refused_total",
            "Connections closed as they arrived because the listener was at a limit, by listener and \
             limit (overall, per-address, handshakes).",
            Kind::Counter,
            &["listener", "limit"],
            move || {
                let mut samples = Vec::new();
                for c in tcp.iter() {
                    for refusal in [Refusal::Overall, Refusal::PerAddress] {
                        samples.push((
                            vec![c.name().into(), refusal.as_str().into()],
                            c.refused(refusal) as f64,
                        ));
                    }
                }
                for q in udp.iter() {
                    samples.push((
                        vec!["quic".into(), "overall".into()],
                        q.refused_overall() as f64,
                    ));
                    samples.push((
                        vec!["quic".into(), "handshakes".into()],
                        q.refused_handshakes() as f64,
                    ));
                }
                samples
            },
        );
        let (tcp, udp) = (listeners, quic.clone());
        m.collect(
            "causeway_connections_idle_closed_total",
            "Connections closed because no request (QUIC: no stream) was in flight for the idle \
             timeout, by listener.",
            Kind::Counter,
            &["listener"],
            move || {
                let mut samples: Vec<Sample> = tcp
                    .iter()
                    .map(|c| (vec![c.name().into()], c.idle_closed() as f64))
                    .collect();
                samples.extend(
                    udp.iter()
                        .map(|q| (vec!["quic".into()], q.idle_closed() as f64)),
                );
                samples
            },
        );
        let Some(quic) = quic else {
            return;
        };
        let load = quic.clone();
        m.collect(
            "causeway_quic_handshakes",
            "QUIC handshakes in progress now.",
            Kind::Gauge,
            &[],
            move || vec![(vec![], load.handshakes() as f64)],
        );
        m.collect(
            "causeway_quic_retries_total",
            "QUIC Retry packets sent: clients asked to prove their address while many handshakes \
             were in progress.",
            Kind::Counter,
            &[],
            move || vec![(vec![], quic.retries() as f64)],
        );
    }

    /// Answer an admin request.
    pub async fn route(&self, call: &Call) -> ProtocolResponse {
        match call.parts.uri.path() {
            paths::HEALTHZ => json_response(200, &json!({"status": "alive"})),
            paths::READYZ => {
                let (ready, body) = self.readiness().await;
                json_response(if ready { 200 } else { 503 }, &body)
            }
            crate::transport::openapi::PATH => {
                crate::transport::openapi::response(crate::transport::openapi::ADMIN)
            }
            paths::METRICS => ProtocolResponse {
                status: 200,
                body: self.metrics.render().into(),
            },
            path => json_response(
                404,
                &json!({"error": {"code": "not-found", "message": format!("no such endpoint: {}; try /healthz, /readyz or /metrics", path.chars().take(100).collect::<String>())}}),
            ),
        }
    }

    /// Run every readiness check: whether all pass, and the detail of each.
    pub async fn readiness(&self) -> (bool, Value) {
        let ledger = self.ledger_check();
        let certificate = self.certificate_check();
        let directory = self.directory_check();
        let revocation = self.revocation_check();
        let mut checks = json!({
            "ledger": ledger,
            "certificate": certificate,
            "directory": directory,
            "revocation": revocation,
        });
        if let Some(provider) = &self.provider {
            checks["policies"] = policies_check(provider);
            checks["datasets"] = datasets_check(provider).await;
        }
        let ready = checks
            .as_object()
            .is_some_and(|c| c.values().all(|check| check["ready"] == true));
        checks["ready"] = json!(ready);
        (ready, checks)
    }

    fn ledger_check(&self) -> Value {
        let error = self.ledger.last_commit_error();
        json!({
            "ready": error.is_none(),
            "size": self.ledger.checkpoint().0,
            "origin": self.ledger.origin(),
            "last_commit_error": error.map(|e| e.to_string()),
        })
    }

    fn certificate_check(&self) -> Value {
        let status = self.certificate.status();
        let mut check = certificate_check(status.not_after, OffsetDateTime::now_utc());
        check["ready"] = json!(check["ready"] == true && status.last_refusal.is_none());
        check["serial"] = json!(status.serial);
        check["rotations"] = json!(status.rotations);
        check["refusals"] = json!(status.refusals);
        check["last_refusal"] = json!(status.last_refusal);
        check
    }

    fn revocation_check(&self) -> Value {
        let status = self.revocation.status();
        let mut check = json!(status);
        check["ready"] = json!(status.ready());
        check
    }

    fn directory_check(&self) -> Value {
        let current = self.directory.current();
        let listed =
            current.department(&self.me).is_some() || current.oversight_node(&self.me).is_some();
        let status = self.directory.status();
        let mut check = json!(status);
        check["ready"] = json!(listed && status.ready());
        check["listed"] = json!(listed);
        check["federation"] = json!(current.federation);
        check["departments"] = json!(current.departments().count());
        check
    }
}

fn policies_check(provider: &ProviderParts) -> Value {
    let mut status = policy_reload::status(&provider.policies, provider.shadow.as_deref());
    status["ready"] = json!(provider.policies.last_error().is_none());
    status
}

async fn datasets_check(provider: &ProviderParts) -> Value {
    let mut checks = tokio::task::JoinSet::new();
    for dataset in provider.catalog.datasets() {
        let (catalog, name) = (provider.catalog.clone(), dataset.name.clone());
        checks.spawn(async move {
            let result = catalog.check(&name, DATASET_CHECK_TIMEOUT).await;
            (name, result.err().map(|e| e.code()))
        });
    }
    let mut detail = serde_json::Map::new();
    let mut ready = true;
    while let Some(joined) = checks.join_next().await {
        let (name, code) = match joined {
            Ok(result) => result,
            Err(_) => continue,
        };
        ready &= code.is_none();
        detail.insert(name, json!(code.unwrap_or("ok")));
    }
    json!({"ready": ready, "datasets": detail})
}

/// The `certificate` readiness check: ready while `not_after` is at least [`CERT_MIN_REMAINING`]
/// after `now`.
fn certificate_check(not_after: OffsetDateTime, now: OffsetDateTime) -> Value {
    let remaining = not_after - now;
    let min = time::Duration::try_from(CERT_MIN_REMAINING).unwrap_or(time::Duration::WEEK);
    let not_after = not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let problem = if remaining <= time::Duration::ZERO {
        Some("the certificate has expired; issue a new one (causeway certs issue)".to_owned())
    } else if remaining < min {
        Some(format!(
            "the certificate expires in {} h, less than the {} days required; renew it",
            remaining.whole_hours(),
            min.whole_days()
        ))
    } else {
        None
    };
    json!({
        "ready": problem.is_none(),
        "not_after": not_after,
        "expires_in_days": remaining.whole_days(),
        "problem": problem,
    })
}

/// `at` in Unix seconds (negative before 1970).
pub fn unix_seconds(at: std::time::SystemTime) -> f64 {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// An RFC 3339 time (as the status reports carry them) in Unix seconds.
fn rfc3339_seconds(at: Option<&str>) -> Option<f64> {
    let at = OffsetDateTime::parse(at?, &time::format_description::well_known::Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e9)
}

/// Witness cosignature lines on a signed note: signature lines (`— name sig`) by anyone but the
/// log itself (`origin`).
fn cosignatures(note: &str, origin: &str) -> usize {
    note.lines()
        .filter_map(|line| line.strip_prefix("\u{2014} "))
        .filter(|sig| sig.split(' ').next() != Some(origin))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds() {
        assert_eq!(rfc3339_seconds(Some("2023-11-14T22:13:20Z")), Some(1.7e9));
        assert_eq!(rfc3339_seconds(Some("not a time")), None);
        assert_eq!(rfc3339_seconds(None), None);
        let t = std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        assert_eq!(unix_seconds(t), 1_700_000_000.5);
    }

    #[test]
    fn cosignatures_exclude_the_log_itself() {
        let note = "demo/civil\n3\nAAAA\n\n\u{2014} demo/civil abc\n\u{2014} demo/tax def\n\u{2014} demo/welfare ghi\n";
        assert_eq!(cosignatures(note, "demo/civil"), 2);
        assert_eq!(
            cosignatures("x\n\n\u{2014} demo/civil abc\n", "demo/civil"),
            0
        );
    }

    #[test]
    fn a_certificate_near_expiry_is_not_ready() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let check = |days: i64| certificate_check(now + time::Duration::days(days), now);
        assert_eq!(check(30)["ready"], true, "{}", check(30));
        assert_eq!(check(8)["ready"], true);
        let soon = check(6);
        assert_eq!(soon["ready"], false);
        assert!(
            soon["problem"].as_str().unwrap().contains("renew"),
            "{soon}"
        );
        let expired = check(-1);
        assert_eq!(expired["ready"], false);
        assert!(
            expired["problem"].as_str().unwrap().contains("expired"),
            "{expired}"
        );
    }
}
