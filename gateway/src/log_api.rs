//! The log half of the peer API: checkpoints, proofs, entries, and the witness endpoint; and the
//! task that collects peers' cosignatures on this gateway's own checkpoints.
//!
//! Only members are answered: departments see checkpoints and proofs, and a department's full
//! entries go only to the oversight nodes the directory lists (an oversight node's own log, the
//! record of oversight queries, goes to every member). Every member witnesses every other log the
//! directory lists, departments' and oversight nodes' alike (C2SP tlog-witness `add-checkpoint`):
//! it cosigns a checkpoint only if it is consistent with the last one it cosigned for that log,
//! and a log caught signing two different trees of one size is reported as a fork, with both
//! checkpoints kept as evidence in this gateway's own ledger.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use tokio::sync::watch;

use crate::directory::LiveDirectory;
use crate::identity::{identity_from_cert, DeptId, PeerIdentity};
use crate::transport::client::PeerClient;
use crate::transport::json_response;
use crate::transport::server::Call;
use crate::transport::ProtocolResponse;
use causeway_ledger::entry::{Entry, Kind};
use causeway_ledger::merkle::{consistency_proof, inclusion_proof, NodeSource};
use causeway_ledger::note::Cosigner;
use causeway_ledger::witness::{self, AddCheckpointRequest, WitnessError};
use causeway_ledger::{Ledger, LedgerError};

/// Paths of the log endpoints (docs/PROTOCOL.md).
pub mod paths {
    /// Latest signed (and, when witnesses caught up, cosigned) checkpoint.
    pub const CHECKPOINT: &str = "/causeway/v1/log/checkpoint";
    /// Inclusion proof: `?index=&size=`.
    pub const INCLUSION: &str = "/causeway/v1/log/proof/inclusion";
    /// Consistency proof: `?old=&new=`.
    pub const CONSISTENCY: &str = "/causeway/v1/log/proof/consistency";
    /// Entries: `?start=&end=` (oversight only).
    pub const ENTRIES: &str = "/causeway/v1/log/entries";
    /// C2SP tlog-witness add-checkpoint.
    pub const ADD_CHECKPOINT: &str = "/causeway/v1/witness/add-checkpoint";
}

/// Most entries one `entries` call returns.
pub const MAX_ENTRIES_PER_CALL: u64 = 1000;
/// How often the collector asks peers to cosign new checkpoints.
pub const COSIGN_INTERVAL: Duration = Duration::from_secs(1);

/// The log endpoints of one gateway.
pub struct LogApi {
    ledger: Arc<Ledger>,
    directory: Arc<LiveDirectory>,
    me: DeptId,
    cosigner: Cosigner,
    /// One add-checkpoint at a time: the state check and update must not interleave (tlog-witness).
    witness_lock: tokio::sync::Mutex<()>,
    /// Forks detected so far.
    pub forks: AtomicU64,
    /// Serve full entries to every member, not only to the oversight nodes whose `pulls` name
    /// this log: an oversight node's log, which departments and other oversight nodes verify.
    entries_for_members: bool,
}

fn text(status: u16, body: String) -> ProtocolResponse {
    ProtocolResponse {
        status,
        body: Bytes::from(body),
    }
}

fn problem(status: u16, code: &str, message: impl Into<String>) -> ProtocolResponse {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message.into()}}),
    )
}

fn ledger_problem(e: &LedgerError) -> ProtocolResponse {
    tracing::error!(error = %e, "log endpoint failed");
    problem(
        503,
        "ledger-unavailable",
        "the ledger cannot be read right now",
    )
}

/// Parse `a=1&b=2` into the named u64 values.
fn query_u64<const N: usize>(
    query: Option<&str>,
    names: [&str; N],
) -> Result<[u64; N], ProtocolResponse> {
    let mut out = [None; N];
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(i) = names.iter().position(|n| *n == k) {
            out[i] =
                Some(v.parse::<u64>().map_err(|_| {
                    problem(400, "bad-query", format!("{k} must be a decimal number"))
                })?);
        }
    }
    let mut values = [0; N];
    for (i, v) in out.into_iter().enumerate() {
        values[i] = v.ok_or_else(|| {
            problem(
                400,
                "bad-query",
                format!("missing query parameter {}", names[i]),
            )
        })?;
    }
    Ok(values)
}

impl LogApi {
    /// Serve `ledger`'s log and witness peers' logs with `cosigner`.
    pub fn new(
        ledger: Arc<Ledger>,
        directory: Arc<LiveDirectory>,
        me: DeptId,
        cosigner: Cosigner,
    ) -> Self {
        LogApi {
            ledger,
            directory,
            me,
            cosigner,
            witness_lock: tokio::sync::Mutex::new(()),
            forks: AtomicU64::new(0),
            entries_for_members: false,
        }
    }

    /// Serve full entries to every member the directory lists (an oversight node's own log: the
    /// record of oversight queries is for everyone in the federation to check).
    pub fn entries_for_members(mut self) -> Self {
        self.entries_for_members = true;
        self
    }

    /// Answer a log request, or `None` if the call is not for a log endpoint. Only members are
    /// answered: a department or an oversight node the directory lists, from its certificate (a
    /// certificate from the federation's CA that the directory does not list gets 403).
    pub async fn route(&self, call: &Call) -> Option<ProtocolResponse> {
        let query = call.parts.uri.query();
        let (method, path) = (call.parts.method.as_str(), call.parts.uri.path());
        let known = matches!(
            (method, path),
            (
                "GET",
                paths::CHECKPOINT | paths::INCLUSION | paths::CONSISTENCY | paths::ENTRIES
            ) | ("POST", paths::ADD_CHECKPOINT)
        );
        if !known {
            return None;
        }
        let reader = match self.member(call.peer_cert.as_ref()) {
            Ok(reader) => reader,
            Err(refused) => return Some(refused),
        };
        Some(match path {
            paths::CHECKPOINT => text(200, self.ledger.served_checkpoint().1.as_str().to_owned()),
            paths::INCLUSION => self.inclusion(query),
            paths::CONSISTENCY => self.consistency(query),
            paths::ENTRIES => self.entries(query, &reader),
            _ => self.add_checkpoint(&call.body).await,
        })
    }

    /// Who is asking, if the directory lists them.
    fn member(
        &self,
        peer_cert: Option<&CertificateDer<'_>>,
    ) -> Result<PeerIdentity, ProtocolResponse> {
        let directory = self.directory.current();
        peer_cert
            .and_then(|c| identity_from_cert(c, &directory.federation).ok())
            .filter(|peer| directory.lists(peer))
            .ok_or_else(|| {
                problem(
                    403,
                    "not-a-member",
                    "the log and witness endpoints answer the departments and oversight nodes the federation directory lists",
                )
            })
    }

    fn inclusion(&self, query: Option<&str>) -> ProtocolResponse {
        let [index, size] = match query_u64(query, ["index", "size"]) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let current = self.ledger.checkpoint().0;
        if index >= size || size > current {
            return problem(400, "bad-query", format!("need index < size <= {current}"));
        }
        let result = self.ledger.read(|r| {
            let proof =
                inclusion_proof(r, index, size).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            Ok((r.node(0, index), proof))
        });
        match result {
            Ok((Some(leaf), proof)) => json_response(
                200,
                &json!({"index": index, "size": size, "leaf_hash": hex::encode(leaf), "proof": proof.iter().map(hex::encode).collect::<Vec<_>>()}),
            ),
            Ok((None, _)) => {
                ledger_problem(&LedgerError::Corrupt(format!("leaf {index} is missing")))
            }
            Err(e) => ledger_problem(&e),
        }
    }

    fn consistency(&self, query: Option<&str>) -> ProtocolResponse {
        let [old, new] = match query_u64(query, ["old", "new"]) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let current = self.ledger.checkpoint().0;
        if old > new || new > current {
            return problem(400, "bad-query", format!("need old <= new <= {current}"));
        }
        match self.ledger.read(|r| {
            consistency_proof(r, old, new).map_err(|e| LedgerError::Corrupt(e.to_string()))
        }) {
            Ok(proof) => json_response(
                200,
                &json!({"old": old, "new": new, "proof": proof.iter().map(hex::encode).collect::<Vec<_>>()}),
            ),
            Err(e) => ledger_problem(&e),
        }
    }

    fn entries(&self, query: Option<&str>, reader: &PeerIdentity) -> ProtocolResponse {
        if self.entries_for_members {
            return self.entries_from(query);
        }
        let PeerIdentity::Oversight(node) = reader else {
            return problem(403, "oversight-only", "full entries are served to the oversight nodes the directory lists; departments may fetch checkpoints and proofs");
        };
        if !self
            .directory
            .current()
            .oversight_node(node)
            .is_some_and(|n| n.may_pull(&self.me))
        {
            return problem(
                403,
                "not-yours-to-pull",
                format!(
                    "the directory's `pulls` for oversight node {node} does not name {}",
                    self.me
                ),
            );
        }
        self.entries_from(query)
    }

    fn entries_from(&self, query: Option<&str>) -> ProtocolResponse {
        let [start, end] = match query_u64(query, ["start", "end"]) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let end = end
            .min(start.saturating_add(MAX_ENTRIES_PER_CALL))
            .min(self.ledger.checkpoint().0);
        let mut entries = Vec::new();
        let result = self.ledger.read(|r| {
            r.for_each_entry(start, end, |_, bytes| {
                entries.push(base64::engine::general_purpose::STANDARD.encode(bytes));
                Ok(())
            })
        });
        match result {
            Ok(()) => json_response(200, &json!({"start": start, "entries": entries})),
            Err(e) => ledger_problem(&e),
        }
    }

    async fn add_checkpoint(&self, body: &[u8]) -> ProtocolResponse {
        let Ok(body) = std::str::from_utf8(body) else {
            return problem(400, "bad-request", "the body is not UTF-8");
        };
        let request = match AddCheckpointRequest::parse(body) {
            Ok(r) => r,
            Err(e) => return problem(e.http_status(), "bad-request", e.to_string()),
        };
        let Some(origin) = witness::checkpoint_origin(&request.checkpoint) else {
            return problem(400, "bad-request", "the checkpoint has no origin line");
        };
        let directory = self.directory.current();
        let Some(log) = directory.by_origin(&origin).filter(|d| d.id != self.me) else {
            return problem(
                404,
                "unknown-log",
                format!("this witness does not know the log {origin:?}"),
            );
        };
        // The key valid for the checkpoint's size, from the directory's key history: a key
        // revoked there is refused (403) even though its signature is genuine.
        let log_keys = log.keys.clone();
        let _one_at_a_time = self.witness_lock.lock().await;
        let state = match self.ledger.witness_state(&origin) {
            Ok(s) => s,
            Err(e) => return ledger_problem(&e),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        match witness::add_checkpoint_under(
            state.as_ref(),
            request.old_size,
            &request.proof,
            &request.checkpoint,
            &log_keys,
            &self.cosigner,
            now,
        ) {
            Ok((new_state, line)) => {
                // The state is durable before the cosignature leaves (tlog-witness).
                let ledger = self.ledger.clone();
                let origin_owned = origin.clone();
                let stored = tokio::task::spawn_blocking(move || {
                    ledger.put_witness_state(&origin_owned, &new_state)
                })
                .await;
                match stored {
                    Ok(Ok(())) => text(200, line),
                    Ok(Err(e)) => ledger_problem(&e),
                    Err(_) => problem(
                        503,
                        "ledger-unavailable",
                        "the witness state could not be stored",
                    ),
                }
            }
            Err(WitnessError::Fork(evidence)) => {
                self.forks.fetch_add(1, Ordering::Relaxed);
                tracing::error!(log = %origin, "FORK: the log signed two different trees of the same size; evidence recorded");
                let mut entry = Entry::new(Kind::Fork);
                entry.provider = Some(log.id.to_string());
                entry.reason = Some("two checkpoints of one size with different roots".into());
                entry.detail = Some(
                    json!({"log": origin, "known": evidence.known, "presented": evidence.presented}),
                );
                if let Err(e) = self.ledger.append(entry).await {
                    tracing::error!(error = %e, "could not record the fork evidence");
                }
                problem(409, "fork", format!("the log {origin} signed a different tree of a size this witness already cosigned"))
            }
            Err(e) => {
                let status = e.http_status();
                match e.conflict_body() {
                    Some(body) => text(status, body),
                    None => problem(status, "refused", e.to_string()),
                }
            }
        }
    }
}

/// Ask every peer (over HTTPS) to cosign this gateway's newest checkpoint, at most once per [`COSIGN_INTERVAL`],
/// while there are new entries; store the cosigned checkpoint so it is the one served.
pub async fn collect_cosignatures(
    ledger: Arc<Ledger>,
    directory: Arc<LiveDirectory>,
    me: DeptId,
    peers: Arc<PeerClient>,
    mut stop: watch::Receiver<bool>,
) {
    // The size each witness last cosigned for us, as far as we know (it tells us on 409).
    let mut known: HashMap<DeptId, u64> = HashMap::new();
    let mut tick = tokio::time::interval(COSIGN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (size, note) = ledger.checkpoint();
        if size == 0 || ledger.cosigned_checkpoint().is_some_and(|(s, _)| s == size) {
            continue;
        }
        let mut lines = String::new();
        let current = directory.current();
        for dept in current.logs().filter(|d| d.id != me && d.https.is_some()) {
            for _attempt in 0..2 {
                let old = known
                    .get(&dept.id)
                    .copied()
                    .filter(|old| *old <= size)
                    .unwrap_or(0);
                let proof = match ledger.read(|r| {
                    consistency_proof(r, old, size).map_err(|e| LedgerError::Corrupt(e.to_string()))
                }) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot build a consistency proof for witnesses");
                        break;
                    }
                };
                let body = AddCheckpointRequest {
                    old_size: old,
                    proof,
                    checkpoint: note.as_str().to_owned(),
                }
                .to_body();
                let request =
                    http::Request::post(format!("https://{}{}", dept.id, paths::ADD_CHECKPOINT))
                        .body(Bytes::from(body))
                        .expect("a request from static parts always builds");
                match peers.send(dept, request, Duration::from_secs(5)).await {
                    Ok((200, line)) => {
                        known.insert(dept.id.clone(), size);
                        lines.push_str(&String::from_utf8_lossy(&line));
                        break;
                    }
                    Ok((409, answer)) => match std::str::from_utf8(&answer)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                    {
                        Some(their_size) => {
                            known.insert(dept.id.clone(), their_size);
                        }
                        None => {
                            tracing::error!(witness = %dept.id, answer = %String::from_utf8_lossy(&answer), "witness refused our checkpoint");
                            break;
                        }
                    },
                    Ok((status, answer)) => {
                        tracing::warn!(witness = %dept.id, status, answer = %String::from_utf8_lossy(&answer), "witness did not cosign");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(witness = %dept.id, error = %e, "witness unreachable");
                        break;
                    }
                }
            }
        }
        if !lines.is_empty() {
            let ledger = ledger.clone();
            let cosigned = format!("{note}{lines}");
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = ledger.set_cosigned(size, cosigned) {
                    tracing::warn!(error = %e, "cannot store the cosigned checkpoint");
                }
            })
            .await;
        }
    }
}
