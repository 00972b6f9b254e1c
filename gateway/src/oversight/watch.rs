//! Watching the watchers from outside: a department (or another oversight node) pulls every
//! oversight node's own log over mTLS and verifies it exactly as an oversight node verifies a
//! department's (checkpoint signature and cosignatures, consistency with what it held, every entry
//! re-hashed, the chain and the root), checks it against what this member itself cosigned as a
//! witness, and lists the oversight queries whose results touched this department.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::pull::LogPuller;
use super::replica::{Query, Replica, MAX_LIMIT};
use crate::config::{GatewayConfig, Role};
use crate::identity::tls::TlsMaterial;
use crate::identity::PeerIdentity;
use crate::transport::peer::PeerTransport;
use causeway_ledger::entry::Kind;
use causeway_ledger::store::Store;

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Only this oversight node's log.
    pub node: Option<String>,
    /// Where the verified copies are kept between runs (default: `oversight-logs` beside the
    /// ledger directory). Keeping it is what lets a later run notice a rewritten or truncated log.
    pub replica: Option<PathBuf>,
    /// Every oversight query, not only those whose results touched this department.
    pub all: bool,
}

/// Pull and verify every oversight node's log as the member `config` describes. Returns whether
/// every log verified and none serves less than this member cosigned, and a JSON report: per node
/// its status (`verified`, `flagged`, `withheld`, `unreachable`, `unlisted`), the problem and
/// evidence if any, and the oversight queries that touched this department.
pub async fn watch_oversight_logs(
    config: &GatewayConfig,
    options: &WatchOptions,
) -> Result<(bool, Value)> {
    let me = match config.role {
        Role::Oversight => PeerIdentity::Oversight(config.department.clone()),
        _ => PeerIdentity::Dept(config.department.clone()),
    };
    let directory = config.live_directory()?.current();
    let tls = TlsMaterial::load_identity(&config.identity, &directory.federation, &me)?;
    let peers = PeerTransport::connect(&tls, &directory.federation, config.peer.prefer)?;
    let replica_dir = options.replica.clone().unwrap_or_else(|| {
        config.ledger.dir.parent().map_or_else(
            || PathBuf::from("oversight-logs"),
            |p| p.join("oversight-logs"),
        )
    });
    let replica = Arc::new(
        Replica::open(&replica_dir, 1024)
            .with_context(|| format!("opening {}", replica_dir.display()))?,
    );
    // What this member cosigned as a witness: a log now serving less has withheld entries.
    let own = Store::open(
        &config.ledger.dir,
        causeway_ledger::DEFAULT_MAP_SIZE_MIB,
        causeway_ledger::DEFAULT_MAX_MAP_SIZE_MIB,
    )
    .with_context(|| format!("opening the ledger in {}", config.ledger.dir.display()))?;
    let witnesses = directory.witnesses();
    let logs: Vec<_> = directory
        .oversight_nodes()
        .filter(|n| options.node.as_deref().is_none_or(|id| n.id.as_str() == id))
        .filter(|n| n.id != config.department)
        .collect();
    if logs.is_empty() {
        anyhow::bail!(
            "the directory lists no oversight node{} other than this one",
            options
                .node
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        );
    }
    let mut ok = true;
    let mut nodes = Vec::new();
    for node in logs {
        let Some(log) = &node.log else {
            ok = false;
            nodes.push(json!({"node": node.id, "status": "unlisted", "problem": "the directory lists no vkey and https endpoint for this node's log, so nobody can verify it"}));
            continue;
        };
        let puller = LogPuller {
            peers: &peers,
            dept: log,
            witnesses: &witnesses,
            replica: replica.clone(),
        };
        let mut status = match puller.pull(&|_, _| {}).await {
            Ok(report) => match &report.flag {
                Some(flag) => {
                    ok = false;
                    json!({"node": node.id, "status": "flagged", "reason": flag.reason, "problem": flag.message, "held": flag.held, "served": flag.served})
                }
                None => {
                    json!({"node": node.id, "status": "verified", "size": report.to, "witnesses": report.witnesses})
                }
            },
            Err(e) => {
                ok = false;
                json!({"node": node.id, "status": "unreachable", "problem": e.to_string()})
            }
        };
        let held = replica.state(node.id.as_str())?;
        let served = held.checkpoint.as_ref().map_or(0, |c| c.size);
        if let Some(cosigned) = own.witness_state(log.origin())? {
            status["cosigned_by_me"] = json!(cosigned.size);
            if held.checkpoint.is_some() && cosigned.size > served {
                ok = false;
                status["status"] = json!("withheld");
                status["problem"] = json!(format!(
                    "{} serves a tree of {served} entries, but this member cosigned {} of them: entries were withheld or the log was truncated (this member's cosigned checkpoint is the evidence)",
                    node.id, cosigned.size
                ));
                status["evidence"] = json!(cosigned.note);
            }
        }
        let found = replica.search(&Query {
            department: Some(node.id.to_string()),
            limit: Some(MAX_LIMIT),
            ..Query::default()
        })?;
        let mine = config.department.as_str();
        let queries: Vec<Value> = found
            .records
            .iter()
            .filter(|r| r.log == node.id.as_str() && r.entry.kind == Kind::OversightQuery)
            .filter(|r| {
                options.all
                    || r.entry
                        .detail
                        .as_ref()
                        .and_then(|d| d.get("departments"))
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|d| d.as_str() == Some(mine)))
            })
            .map(|r| {
                let d = r.entry.detail.clone().unwrap_or_default();
                json!({
                    "index": r.index,
                    "time": r.entry.time,
                    "asked_by": d["asked_by"],
                    "role": d["role"],
                    "via": d["via"],
                    "query": d["query"],
                    "filter": d["filter"],
                    "results": d["results"],
                    "departments": d["departments"],
                })
            })
            .collect();
        status["queries"] = json!(queries);
        nodes.push(status);
    }
    Ok((
        ok,
        json!({"member": config.department, "oversight_logs": nodes}),
    ))
}
