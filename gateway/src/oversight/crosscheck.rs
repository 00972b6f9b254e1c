//! The cross-check: every exchange is recorded by both departments, and their records agree.
//!
//! For each exchange id, the provider's log must hold one provider-side entry and the consumer's
//! log one consumer-side entry; both must name the same parties, dataset, purpose, legal basis,
//! digests, decision and policy; the consumer's `peer_receipt` must point at the provider's entry
//! (its index, and the leaf hash recomputed here from the replicated bytes); and the consumer must
//! have recorded it within `late_secs` of the provider. An entry whose other side is missing is a
//! finding only once the other department's log was pulled after the entry's time plus
//! `grace_secs`, so that an exchange in flight during a pull is not reported.

use std::collections::HashMap;

use serde::Serialize;

use super::replica::{entry_time_ms, LogState, Record, Replica, ReplicaError};
use crate::config::Directory;
use crate::identity::DeptId;
use crate::ledger::entry::{Entry, Kind, Side};

/// What kind of disagreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The provider recorded the exchange; the consumer's log does not have it.
    ProviderOnly,
    /// The consumer recorded the exchange; the provider's log does not have it.
    ConsumerOnly,
    /// Both recorded it, but fields differ.
    Mismatch,
    /// The consumer's `peer_receipt` does not point at the provider's entry.
    BadReceipt,
    /// The consumer recorded it long after the provider.
    Late,
    /// One side recorded the same exchange more than once.
    Duplicate,
    /// An entry sits in the log of a department that is not the side it claims to be.
    Misplaced,
}

impl FindingKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ProviderOnly => "provider-only",
            FindingKind::ConsumerOnly => "consumer-only",
            FindingKind::Mismatch => "mismatch",
            FindingKind::BadReceipt => "bad-receipt",
            FindingKind::Late => "late",
            FindingKind::Duplicate => "duplicate",
            FindingKind::Misplaced => "misplaced",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an entry lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryRef {
    /// The department whose log holds it.
    pub log: String,
    /// Its index.
    pub index: u64,
}

/// One disagreement between the two sides of an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// The exchange id.
    pub exchange: String,
    /// Asking department.
    pub consumer: Option<String>,
    /// Data-holding department.
    pub provider: Option<String>,
    /// Time of the earliest entry involved.
    pub time: String,
    /// What exactly disagrees.
    pub detail: String,
    /// The entries involved.
    pub entries: Vec<EntryRef>,
}

/// Cross-check parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossCheck {
    /// How long after an entry's time the other side's log must have been pulled before its
    /// absence counts, in seconds.
    pub grace_secs: u64,
    /// How much later than the provider the consumer may record an exchange, in seconds.
    pub late_secs: u64,
}

fn reference(r: &Record) -> EntryRef {
    EntryRef {
        log: r.log.clone(),
        index: r.index,
    }
}

/// Fields both sides must record identically.
fn disagreements(p: &Entry, c: &Entry) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, same: bool| {
        if !same {
            out.push(name);
        }
    };
    check("consumer", p.consumer == c.consumer);
    check("provider", p.provider == c.provider);
    check("dataset", p.dataset == c.dataset);
    check("purpose", p.purpose == c.purpose);
    check("legal_basis", p.legal_basis == c.legal_basis);
    check("case", p.case == c.case);
    check("officer", p.officer == c.officer);
    check("request_digest", p.request_digest == c.request_digest);
    check("decision", p.decision == c.decision);
    check("reason", p.reason == c.reason);
    check("policy", p.policy == c.policy);
    check("kind", p.kind == c.kind);
    // A release the consumer received is recorded with the payload's digest, fields and rows on
    // both sides; a refusal or failed fetch releases nothing the consumer could record.
    if c.response_digest.is_some() || p.outcome.as_deref() == Some("ok") {
        check("response_digest", p.response_digest == c.response_digest);
        check("fields", p.fields == c.fields);
        check("rows", p.rows == c.rows);
    }
    out
}

/// Run the cross-check over the whole replica. `states` says how far each log was pulled.
pub fn run(
    replica: &Replica,
    directory: &Directory,
    states: &[(String, LogState)],
    settings: CrossCheck,
) -> Result<Vec<Finding>, ReplicaError> {
    let pulled: HashMap<&str, u64> = states
        .iter()
        .map(|(d, s)| (d.as_str(), s.last_pull_started_ms.unwrap_or(0)))
        .collect();
    let surely_replicated = |dept: Option<&str>, entry: &Entry| {
        let pulled_at = dept.and_then(|d| pulled.get(d)).copied().unwrap_or(0);
        pulled_at > 0
            && pulled_at >= entry_time_ms(entry).saturating_add(settings.grace_secs * 1000)
    };
    let origin_of = |dept: &str| {
        DeptId::new(dept)
            .ok()
            .and_then(|id| directory.department(&id).map(|d| d.origin().to_owned()))
    };
    let mut findings = Vec::new();
    replica.for_each_exchange(|id, records| {
        let mut records: Vec<Record> = records
            .into_iter()
            .filter(|r| matches!(r.entry.kind, Kind::Exchange | Kind::Denied) && r.entry.side.is_some())
            .collect();
        records.sort_by_key(|r| entry_time_ms(&r.entry));
        let Some(first) = records.first() else {
            return;
        };
        let mut finding = |kind, detail: String, involved: &[&Record]| {
            findings.push(Finding {
                kind,
                exchange: id.to_owned(),
                consumer: first.entry.consumer.clone(),
                provider: first.entry.provider.clone(),
                time: first.entry.time.clone(),
                detail,
                entries: involved.iter().map(|r| reference(r)).collect(),
            })
        };
        let mut providers = Vec::new();
        let mut consumers = Vec::new();
        for r in &records {
            let (side, owner) = match r.entry.side {
                Some(Side::Provider) => ("provider", r.entry.provider.as_deref()),
                _ => ("consumer", r.entry.consumer.as_deref()),
            };
            if owner != Some(r.log.as_str()) {
                finding(
                    FindingKind::Misplaced,
                    format!("a {side}-side entry in the log of {}, which is not the {side} it names", r.log),
                    &[r],
                );
            } else if side == "provider" {
                providers.push(r);
            } else {
                consumers.push(r);
            }
        }
        for (side, list) in [("provider", &providers), ("consumer", &consumers)] {
            if list.len() > 1 {
                finding(
                    FindingKind::Duplicate,
                    format!("the {side} recorded this exchange {} times", list.len()),
                    list,
                );
            }
        }
        match (providers.first(), consumers.first()) {
            (None, None) => {}
            (Some(p), None) => {
                if surely_replicated(p.entry.consumer.as_deref(), &p.entry) {
                    finding(
                        FindingKind::ProviderOnly,
                        format!(
                            "{} recorded it ({}); {} has no record of it",
                            p.log,
                            p.entry.decision.as_deref().unwrap_or("?"),
                            p.entry.consumer.as_deref().unwrap_or("the consumer")
                        ),
                        &[p],
                    );
                }
            }
            (None, Some(c)) => {
                if surely_replicated(c.entry.provider.as_deref(), &c.entry) {
                    finding(
                        FindingKind::ConsumerOnly,
                        format!(
                            "{} recorded it; {} has no record of it",
                            c.log,
                            c.entry.provider.as_deref().unwrap_or("the provider")
                        ),
                        &[c],
                    );
                }
            }
            (Some(p), Some(c)) => {
                let fields = disagreements(&p.entry, &c.entry);
                if !fields.is_empty() {
                    finding(
                        FindingKind::Mismatch,
                        format!("the two records differ in {}", fields.join(", ")),
                        &[p, c],
                    );
                }
                let receipt_ok = c.entry.peer_receipt.as_ref().is_some_and(|r| {
                    Some(r.log.as_str()) == origin_of(&p.log).as_deref()
                        && r.index == p.index
                        && r.leaf_hash == p.leaf_hash
                        && r.checkpoint_size > p.index
                });
                if !receipt_ok {
                    let detail = match &c.entry.peer_receipt {
                        None => "the consumer's entry carries no receipt".to_owned(),
                        Some(r) => format!(
                            "the consumer's receipt names {} #{} (leaf {}), but the provider's entry is #{} (leaf {})",
                            r.log,
                            r.index,
                            short(&r.leaf_hash),
                            p.index,
                            short(&p.leaf_hash)
                        ),
                    };
                    finding(FindingKind::BadReceipt, detail, &[p, c]);
                }
                let (pt, ct) = (entry_time_ms(&p.entry), entry_time_ms(&c.entry));
                if ct > pt.saturating_add(settings.late_secs * 1000) {
                    finding(
                        FindingKind::Late,
                        format!(
                            "the consumer recorded it {} s after the provider",
                            (ct - pt) / 1000
                        ),
                        &[p, c],
                    );
                }
            }
        }
    })?;
    findings.sort_by(|a, b| a.time.cmp(&b.time).then(a.kind.cmp(&b.kind)));
    Ok(findings)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{PeerReceipt, GENESIS_PREV};
    use crate::oversight::replica::LogFollower;

    fn exchange(side: Side, id: &str) -> Entry {
        let mut e = Entry::new(Kind::Exchange);
        e.time = "2026-01-01T10:00:00Z".into();
        e.side = Some(side);
        e.id = Some(id.into());
        e.consumer = Some("tax".into());
        e.provider = Some("registry".into());
        e.dataset = Some("residents".into());
        e.purpose = Some("audit".into());
        e.request_digest = Some("aa".into());
        e.response_digest = Some("bb".into());
        e.decision = Some("allow".into());
        e.outcome = Some("ok".into());
        e
    }

    /// Commit `entries` as `dept`'s whole log; returns their leaf hashes.
    fn log(replica: &Replica, dept: &str, entries: Vec<Entry>) -> Vec<String> {
        let mut follower = LogFollower::default();
        let mut batch = Vec::new();
        let mut leaves = Vec::new();
        let mut prev = GENESIS_PREV.to_owned();
        for (i, mut e) in entries.into_iter().enumerate() {
            e.index = i as u64;
            e.prev = prev.clone();
            let bytes = e.to_bytes();
            prev = hex::encode(crate::ledger::merkle::leaf_hash(&bytes));
            leaves.push(prev.clone());
            let parsed = follower.follow(&bytes).unwrap();
            batch.push((bytes, parsed));
        }
        let mut state = LogState::default();
        state.advance(&follower);
        state.last_pull_started_ms = Some(u64::MAX / 2);
        replica
            .commit(&DeptId::new(dept).unwrap(), &batch, &state)
            .unwrap();
        leaves
    }

    fn directory() -> Directory {
        let mut text = "federation = \"demo\"\n".to_owned();
        for (i, id) in ["tax", "registry"].iter().enumerate() {
            let key = ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]);
            let vkey = crate::identity::GatewayKey::new(&format!("demo/{id}"), key)
                .unwrap()
                .vkey();
            text.push_str(&format!(
                "[[department]]\nid = \"{id}\"\nname = \"{id}\"\nvkey = \"{vkey}\"\n"
            ));
        }
        Directory::parse(&text).unwrap()
    }

    #[test]
    fn agreeing_sides_give_no_findings_and_each_disagreement_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(dir.path(), 64).unwrap();
        let mut changed = exchange(Side::Provider, "changed");
        changed.response_digest = Some("evil".into());
        let mut late = exchange(Side::Provider, "late");
        late.time = "2026-01-01T09:00:00Z".into();
        let leaves = log(
            &replica,
            "registry",
            vec![
                exchange(Side::Provider, "ok"),
                changed,
                exchange(Side::Provider, "provider-only"),
                late,
            ],
        );
        let receipt = |index: u64| PeerReceipt {
            log: "demo/registry".into(),
            index,
            leaf_hash: leaves[index as usize].clone(),
            checkpoint_size: index + 1,
        };
        let mut ok = exchange(Side::Consumer, "ok");
        ok.peer_receipt = Some(receipt(0));
        let mut changed = exchange(Side::Consumer, "changed");
        changed.peer_receipt = Some(receipt(1));
        let mut late = exchange(Side::Consumer, "late");
        late.peer_receipt = Some(receipt(3));
        let mut wrong_receipt = exchange(Side::Consumer, "consumer-only");
        wrong_receipt.peer_receipt = Some(receipt(0));
        log(&replica, "tax", vec![ok, changed, late, wrong_receipt]);
        let states = replica.states().unwrap();
        let findings = run(
            &replica,
            &directory(),
            &states,
            CrossCheck {
                grace_secs: 0,
                late_secs: 60,
            },
        )
        .unwrap();
        let mut got: Vec<(String, FindingKind)> = findings
            .iter()
            .map(|f| (f.exchange.clone(), f.kind))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("changed".to_owned(), FindingKind::Mismatch),
                ("consumer-only".to_owned(), FindingKind::ConsumerOnly),
                ("late".to_owned(), FindingKind::Late),
                ("provider-only".to_owned(), FindingKind::ProviderOnly),
            ]
        );
        let mismatch = findings
            .iter()
            .find(|f| f.kind == FindingKind::Mismatch)
            .unwrap();
        assert!(
            mismatch.detail.contains("response_digest"),
            "{}",
            mismatch.detail
        );
    }
}
