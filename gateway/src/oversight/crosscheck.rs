//! The cross-check: every exchange is recorded by both departments, and their records agree.
//!
//! For each exchange id, the provider's log must hold one provider-side entry and the consumer's
//! log one consumer-side entry; both must name the same parties, dataset, purpose, legal basis,
//! digests, decision and policy; the consumer's `peer_receipt` must point at the provider's entry
//! (its index, and the leaf hash recomputed here from the replicated bytes); and the consumer must
//! have recorded it within `late_secs` of the provider. An entry whose other side is missing is a
//! finding only once the other department's log was pulled after the entry's time plus
//! `grace_secs`, so that an exchange in flight during a pull is not reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::replica::{entry_time_ms, LogState, Record, Replica, ReplicaError};
use crate::directory::Directory;
use crate::identity::DeptId;
use causeway_ledger::entry::{Entry, Kind, Side};

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

/// What the cross-check needs besides the entries: how far each log was pulled, and the
/// directory's log origins.
struct Context<'a> {
    pulled: HashMap<&'a str, u64>,
    directory: &'a Directory,
    settings: CrossCheck,
}

impl<'a> Context<'a> {
    fn new(
        directory: &'a Directory,
        states: &'a [(String, LogState)],
        settings: CrossCheck,
    ) -> Self {
        let pulled = states
            .iter()
            .map(|(d, s)| (d.as_str(), s.last_pull_started_ms.unwrap_or(0)))
            .collect();
        Context {
            pulled,
            directory,
            settings,
        }
    }

    /// Whether `dept`'s log was pulled at or after `from_ms` (Unix ms), so that an entry it wrote
    /// before then would be in the replica by now.
    fn pulled_since(&self, dept: &str, from_ms: u64) -> bool {
        let pulled_at = self.pulled.get(dept).copied().unwrap_or(0);
        pulled_at > 0 && pulled_at >= from_ms
    }

    /// The pull start time from which a missing other side of `entry` is a finding.
    fn absence_counts_from(&self, entry: &Entry) -> u64 {
        entry_time_ms(entry).saturating_add(self.settings.grace_secs * 1000)
    }

    fn origin_of(&self, dept: &str) -> Option<String> {
        DeptId::new(dept).ok().and_then(|id| {
            self.directory
                .department(&id)
                .map(|d| d.origin().to_owned())
        })
    }
}

/// The findings about one exchange, and what they wait for if one side is missing but the
/// department that should hold it was not yet pulled late enough to say so: that department and
/// the pull start time (Unix ms) from which the absence counts.
struct Verdict {
    findings: Vec<Finding>,
    pending: Option<(String, u64)>,
}

/// Check one exchange: `id` as the replica indexes it, `records` every replicated entry carrying it.
fn check(cx: &Context<'_>, id: &str, records: Vec<Record>) -> Verdict {
    let mut verdict = Verdict {
        findings: Vec::new(),
        pending: None,
    };
    let mut records: Vec<Record> = records
        .into_iter()
        .filter(|r| matches!(r.entry.kind, Kind::Exchange | Kind::Denied) && r.entry.side.is_some())
        .collect();
    records.sort_by_key(|r| entry_time_ms(&r.entry));
    let Some(first) = records.first() else {
        return verdict;
    };
    let mut finding = |kind, detail: String, involved: &[&Record]| {
        verdict.findings.push(Finding {
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
                format!(
                    "a {side}-side entry in the log of {}, which is not the {side} it names",
                    r.log
                ),
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
        (Some(only), None) | (None, Some(only)) => {
            let (kind, other, decision) = if only.entry.side == Some(Side::Provider) {
                let decision = only.entry.decision.as_deref().unwrap_or("?");
                let decision = format!(" ({decision})");
                (FindingKind::ProviderOnly, &only.entry.consumer, decision)
            } else {
                (
                    FindingKind::ConsumerOnly,
                    &only.entry.provider,
                    String::new(),
                )
            };
            let from = cx.absence_counts_from(&only.entry);
            match other.as_deref() {
                // A department named nowhere is never pulled: no finding, nothing to wait for.
                None => {}
                Some(other) if !cx.pulled_since(other, from) => {
                    verdict.pending = Some((other.to_owned(), from));
                }
                Some(other) => finding(
                    kind,
                    format!(
                        "{} recorded it{decision}; {other} has no record of it",
                        only.log
                    ),
                    &[only],
                ),
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
                Some(r.log.as_str()) == cx.origin_of(&p.log).as_deref()
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
            if ct > pt.saturating_add(cx.settings.late_secs * 1000) {
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
    verdict
}

/// Findings in the order they are shown: oldest first, then by kind (ties keep exchange id order).
fn in_order(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| a.time.cmp(&b.time).then(a.kind.cmp(&b.kind)));
    findings
}

/// Run the cross-check over the whole replica. `states` says how far each log was pulled.
pub fn run(
    replica: &Replica,
    directory: &Directory,
    states: &[(String, LogState)],
    settings: CrossCheck,
) -> Result<Vec<Finding>, ReplicaError> {
    Incremental::default().refresh(replica, directory, states, settings)
}

/// The cross-check kept up to date as logs grow, for a node that runs it after every pull.
///
/// A full [`run`] reads and decodes every replicated entry, so on a node that pulls every few
/// seconds its cost grew with the logs, not with the traffic. This keeps the findings per exchange
/// and, for each log, how far it was checked. A refresh checks again only the exchanges that new
/// entries name, and pending ones (one side missing within the grace period, the only verdict that
/// changes with time alone) once the other department's log was pulled late enough to decide. Its
/// result is the same as a full [`run`] over the same replica and states
/// (`an_incremental_cross_check_finds_what_a_full_one_finds`).
#[derive(Debug, Default)]
pub struct Incremental {
    /// Entries already looked at, per log; `None` before the first refresh, which is a full pass
    /// (as is any refresh after one that failed, or that finds a log shorter than it was: the
    /// replica only ever appends, so that would mean it was replaced).
    checked: Option<HashMap<String, u64>>,
    /// Findings per exchange id (as the replica indexes it), only where there are any.
    findings: BTreeMap<String, Vec<Finding>>,
    /// Exchanges whose verdict may change with time alone: the department whose pull decides
    /// it, and from which pull start time (Unix ms).
    pending: BTreeMap<String, (String, u64)>,
}

impl Incremental {
    fn keep(&mut self, id: String, verdict: Verdict) {
        match verdict.pending {
            Some(waits) => self.pending.insert(id.clone(), waits),
            None => self.pending.remove(&id),
        };
        if verdict.findings.is_empty() {
            self.findings.remove(&id);
        } else {
            self.findings.insert(id, verdict.findings);
        }
    }

    /// Bring the findings up to date with the replica and `states` (read before the entries, as
    /// the puller commits an entry and its log's state together), and return them all.
    pub fn refresh(
        &mut self,
        replica: &Replica,
        directory: &Directory,
        states: &[(String, LogState)],
        settings: CrossCheck,
    ) -> Result<Vec<Finding>, ReplicaError> {
        let cx = Context::new(directory, states, settings);
        let grown = |checked: &HashMap<String, u64>| {
            states
                .iter()
                .all(|(d, s)| checked.get(d).is_none_or(|c| *c <= s.size))
        };
        match self.checked.take() {
            Some(checked) if grown(&checked) => {
                let mut dirty: BTreeSet<String> = self
                    .pending
                    .iter()
                    .filter(|(_, (dept, from))| cx.pulled_since(dept, *from))
                    .map(|(id, _)| id.clone())
                    .collect();
                for (dept, state) in states {
                    let from = checked.get(dept).copied().unwrap_or(0);
                    replica.exchange_ids(dept, from, state.size, &mut dirty)?;
                }
                for id in dirty {
                    let verdict = check(&cx, &id, replica.exchange_records(&id)?);
                    self.keep(id, verdict);
                }
            }
            _ => {
                *self = Incremental::default();
                replica.for_each_exchange(|id, records| {
                    let verdict = check(&cx, id, records);
                    self.keep(id.to_owned(), verdict)
                })?;
            }
        }
        self.checked = Some(states.iter().map(|(d, s)| (d.clone(), s.size)).collect());
        Ok(in_order(
            self.findings.values().flatten().cloned().collect(),
        ))
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oversight::replica::LogFollower;
    use causeway_ledger::entry::{PeerReceipt, GENESIS_PREV};

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
            prev = hex::encode(causeway_ledger::merkle::leaf_hash(&bytes));
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

    /// Append `entries` to `dept`'s replicated log, as a pull that began at `pulled_ms` would.
    fn pull(replica: &Replica, dept: &str, entries: Vec<Entry>, pulled_ms: u64) {
        let mut state = replica.state(dept).unwrap();
        let mut follower = state.follower().unwrap();
        let mut prev = state.last_leaf.clone().unwrap_or(GENESIS_PREV.to_owned());
        let mut batch = Vec::new();
        for mut e in entries {
            e.index = follower.size();
            e.prev = prev;
            let bytes = e.to_bytes();
            prev = hex::encode(causeway_ledger::merkle::leaf_hash(&bytes));
            let parsed = follower.follow(&bytes).unwrap();
            batch.push((bytes, parsed));
        }
        state.advance(&follower);
        state.last_pull_started_ms = Some(pulled_ms);
        replica
            .commit(&DeptId::new(dept).unwrap(), &batch, &state)
            .unwrap();
    }

    /// One generated entry: which log, which side, which exchange, when, and how it may differ.
    fn generated(
        (provider_log, provider_side, id, secs, denied, odd_dataset, receipt): (
            bool,
            bool,
            u8,
            u64,
            bool,
            bool,
            Option<u64>,
        ),
    ) -> (&'static str, Entry) {
        let mut e = exchange(
            if provider_side {
                Side::Provider
            } else {
                Side::Consumer
            },
            &format!("x{id}"),
        );
        e.time = format!("2026-01-01T10:{:02}:{:02}Z", secs / 60, secs % 60);
        if denied {
            e.kind = Kind::Denied;
        }
        if odd_dataset {
            e.dataset = Some("other".into());
        }
        e.peer_receipt = receipt.map(|index| PeerReceipt {
            log: "demo/registry".into(),
            index,
            leaf_hash: "00".repeat(32),
            checkpoint_size: index + 1,
        });
        (if provider_log { "registry" } else { "tax" }, e)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Pull after pull, with entries that agree, differ, duplicate, sit in the wrong log, or
        /// lack their other side within and past the grace period, the incremental cross-check
        /// finds exactly what a full one over the same replica finds.
        #[test]
        fn an_incremental_cross_check_finds_what_a_full_one_finds(
            pulls in proptest::collection::vec(
                (
                    proptest::bool::ANY,
                    0u64..40,
                    proptest::collection::vec(
                        (
                            proptest::bool::ANY,
                            proptest::bool::ANY,
                            0u8..6,
                            0u64..600,
                            proptest::bool::weighted(0.1),
                            proptest::bool::weighted(0.1),
                            proptest::option::of(0u64..4),
                        ),
                        0..4,
                    ),
                ),
                1..12,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let replica = Replica::open(dir.path(), 64).unwrap();
            let directory = directory();
            let settings = CrossCheck { grace_secs: 30, late_secs: 60 };
            let base_ms = 1_767_261_600_000; // 2026-01-01T10:00:00Z
            let mut incremental = Incremental::default();
            let mut clock = [0u64; 2];
            for (tax_pull, advance, entries) in pulls {
                let (dept, slot) = if tax_pull { ("tax", 0) } else { ("registry", 1) };
                clock[slot] += advance * 20;
                let entries = entries
                    .into_iter()
                    .map(generated)
                    .filter(|(log, _)| *log == dept)
                    .map(|(_, e)| e)
                    .collect();
                pull(&replica, dept, entries, base_ms + clock[slot] * 1000);
                let states = replica.states().unwrap();
                let full = run(&replica, &directory, &states, settings).unwrap();
                let kept = incremental.refresh(&replica, &directory, &states, settings).unwrap();
                proptest::prop_assert_eq!(kept, full);
            }
        }
    }
}
