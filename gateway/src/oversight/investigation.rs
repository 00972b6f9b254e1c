//! Reads an investigator makes beyond a search: one exchange with both sides' entries and how
//! each is verified, and the lists behind the overview (findings, this node's own queries), each
//! notarized in the oversight ledger before it is answered.

use serde::Serialize;
use serde_json::json;

use super::crosscheck::Finding;
use super::pull::blocking;
use super::replica::{entry_time_ms, Flag, HeldCheckpoint, Record};
use super::{touched, Asker, Oversight, OversightError, Touched};
use causeway_ledger::entry::{Entry, Kind};

/// Most entries one exchange page lists (an exchange has two; more means duplicates).
pub const MAX_EXCHANGE_ENTRIES: usize = 64;
/// Most ledger entries one page of oversight queries reads back.
pub const MAX_QUERY_SCAN: u64 = 20_000;

/// One replicated entry and what vouches for it.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedRecord {
    /// The entry, its log, index and recomputed leaf hash.
    pub record: Record,
    /// The newest checkpoint of its log that this node verified, when it covers the entry.
    pub checkpoint: Option<HeldCheckpoint>,
    /// Known witnesses that cosigned that checkpoint.
    pub witnesses: Vec<String>,
    /// Witnesses the directory lists for that log (other than the department itself).
    pub known_witnesses: usize,
    /// Set when the log that holds the entry is flagged.
    pub flag: Option<Flag>,
}

/// Everything the oversight node holds about one exchange.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeView {
    /// The exchange id.
    pub id: String,
    /// Every replicated entry that carries the id (both sides, any log), oldest first.
    pub entries: Vec<VerifiedRecord>,
    /// The cross-check's findings about this exchange.
    pub findings: Vec<Finding>,
}

/// One page of the newest-first list of this node's own oversight queries.
#[derive(Debug, Clone)]
pub struct QueryPage {
    /// The `oversight-query` entries, newest first.
    pub queries: Vec<Entry>,
    /// The `before` cursor of the next older page, if there is one.
    pub older: Option<u64>,
    /// The `after` cursor of the next newer page, if there is one.
    pub newer: Option<u64>,
}

/// Which page of this node's oversight queries: below ledger index `before`, or above `after`
/// (the newest page when neither).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCursor {
    /// Only entries with a smaller ledger index.
    pub before: Option<u64>,
    /// Only entries with a larger ledger index (the page just above it).
    pub after: Option<u64>,
}

impl Oversight {
    /// Both sides of exchange `id` with the verification status of each, and its findings
    /// (notarized as `exchange`).
    pub async fn exchange(&self, id: &str, asker: &Asker) -> Result<ExchangeView, OversightError> {
        let wanted = id.to_owned();
        let (records, states) = blocking(&self.replica, move |r| {
            let mut records = r.exchange_records(&wanted)?;
            // The index holds hashes of over-long ids: keep the entries that carry this one.
            records.retain(|x| x.entry.id.as_deref() == Some(wanted.as_str()));
            records.truncate(MAX_EXCHANGE_ENTRIES);
            Ok((records, r.states()?))
        })
        .await?;
        let statuses = self.statuses().await?;
        let mut entries: Vec<VerifiedRecord> = records
            .into_iter()
            .map(|record| {
                let state = states
                    .iter()
                    .find(|(log, _)| *log == record.log)
                    .map(|(_, s)| s);
                let checkpoint = state
                    .and_then(|s| s.checkpoint.clone())
                    .filter(|c| c.size > record.index);
                VerifiedRecord {
                    witnesses: match (&checkpoint, state) {
                        (Some(_), Some(s)) => s.witnesses.clone(),
                        _ => Vec::new(),
                    },
                    known_witnesses: statuses
                        .iter()
                        .find(|s| s.department == record.log)
                        .map_or(0, |s| s.known_witnesses),
                    flag: state.and_then(|s| s.flag.clone()),
                    checkpoint,
                    record,
                }
            })
            .collect();
        entries.sort_by_key(|v| (entry_time_ms(&v.record.entry), v.record.log.clone()));
        let findings: Vec<Finding> = self
            .findings()
            .iter()
            .filter(|f| f.exchange == id)
            .cloned()
            .collect();
        let parties = touched(entries.iter().flat_map(|v| {
            [
                Some(v.record.log.as_str()),
                v.record.entry.consumer.as_deref(),
                v.record.entry.provider.as_deref(),
            ]
        }));
        self.notarize(
            asker,
            "exchange",
            json!({"exchange": id}),
            entries.len(),
            parties,
        )
        .await?;
        Ok(ExchangeView {
            id: id.to_owned(),
            entries,
            findings,
        })
    }

    /// The cross-check findings between `from_ms` and `to_ms` (inclusive), newest first
    /// (notarized as `findings`).
    pub async fn findings_between(
        &self,
        from_ms: Option<u64>,
        to_ms: Option<u64>,
        asker: &Asker,
    ) -> Result<Vec<Finding>, OversightError> {
        let (from, to) = (from_ms.unwrap_or(0), to_ms.unwrap_or(u64::MAX));
        let mut findings: Vec<Finding> = self
            .findings()
            .iter()
            .filter(|f| {
                let t = time_ms(&f.time);
                from <= t && t <= to
            })
            .cloned()
            .collect();
        findings.reverse();
        self.notarize(
            asker,
            "findings",
            json!({"from_ms": from_ms, "to_ms": to_ms}),
            findings.len(),
            touched(
                findings
                    .iter()
                    .flat_map(|f| [f.consumer.as_deref(), f.provider.as_deref()]),
            ),
        )
        .await?;
        Ok(findings)
    }

    /// Up to `limit` of this node's own `oversight-query` entries on the page `cursor` names and
    /// within the time window, newest first; reads at most [`MAX_QUERY_SCAN`] entries (notarized
    /// as `oversight-queries`).
    pub async fn queries_page(
        &self,
        cursor: QueryCursor,
        from_ms: Option<u64>,
        to_ms: Option<u64>,
        limit: usize,
        asker: &Asker,
    ) -> Result<QueryPage, OversightError> {
        let page = match cursor.after {
            Some(after) => self.queries_above(after, from_ms, to_ms, limit)?,
            None => self.queries_below(cursor.before, from_ms, to_ms, limit)?,
        };
        self.notarize(
            asker,
            "oversight-queries",
            json!({"before": cursor.before, "after": cursor.after, "from_ms": from_ms, "to_ms": to_ms}),
            page.queries.len(),
            Touched::new(),
        )
        .await?;
        Ok(page)
    }

    /// The `limit` oldest oversight queries above ledger index `after`, newest first.
    fn queries_above(
        &self,
        after: u64,
        from_ms: Option<u64>,
        to_ms: Option<u64>,
        limit: usize,
    ) -> Result<QueryPage, OversightError> {
        let (from, to) = (from_ms.unwrap_or(0), to_ms.unwrap_or(u64::MAX));
        let size = self.ledger.checkpoint().0;
        let ceiling = after
            .saturating_add(1)
            .saturating_add(MAX_QUERY_SCAN)
            .min(size);
        let mut lower = after.saturating_add(1);
        let mut queries: Vec<Entry> = Vec::new();
        'pages: while lower < ceiling {
            let upper = lower.saturating_add(512).min(ceiling);
            let mut chunk = Vec::new();
            self.ledger.read(|r| {
                r.for_each_entry(lower, upper, |_, bytes| {
                    if let Ok(e) = Entry::from_bytes(bytes) {
                        chunk.push(e);
                    }
                    Ok(())
                })
            })?;
            for e in chunk {
                let t = time_ms(&e.time);
                if t > to {
                    break 'pages;
                }
                if e.kind == Kind::OversightQuery && t >= from {
                    queries.push(e);
                    if queries.len() > limit {
                        break 'pages;
                    }
                }
            }
            lower = upper;
        }
        let more = queries.len() > limit || (lower >= ceiling && ceiling < size);
        queries.truncate(limit);
        queries.reverse();
        Ok(QueryPage {
            newer: if more {
                queries.first().map(|q| q.index)
            } else {
                None
            },
            older: queries.last().map(|q| q.index),
            queries,
        })
    }

    /// Up to `limit` oversight queries below ledger index `before`, newest first.
    fn queries_below(
        &self,
        before: Option<u64>,
        from_ms: Option<u64>,
        to_ms: Option<u64>,
        limit: usize,
    ) -> Result<QueryPage, OversightError> {
        let (from, to) = (from_ms.unwrap_or(0), to_ms.unwrap_or(u64::MAX));
        let size = self.ledger.checkpoint().0;
        let end = before.unwrap_or(size).min(size);
        let floor = end.saturating_sub(MAX_QUERY_SCAN);
        let mut queries = Vec::new();
        let mut upper = end;
        let mut older = None;
        'pages: while upper > floor {
            let lower = upper.saturating_sub(512).max(floor);
            let mut chunk = Vec::new();
            self.ledger.read(|r| {
                r.for_each_entry(lower, upper, |_, bytes| {
                    if let Ok(e) = Entry::from_bytes(bytes) {
                        chunk.push(e);
                    }
                    Ok(())
                })
            })?;
            for e in chunk.into_iter().rev() {
                let t = time_ms(&e.time);
                if t < from {
                    break 'pages;
                }
                if e.kind != Kind::OversightQuery || t > to {
                    continue;
                }
                if queries.len() == limit {
                    // One more matches: the next page starts below the last one shown.
                    older = queries.last().map(|q: &Entry| q.index);
                    break 'pages;
                }
                queries.push(e);
            }
            upper = lower;
            if upper == floor && floor > 0 {
                // The read-back bound, not the start of the ledger: the next page goes on there.
                older = Some(floor);
            }
        }
        let newer = before.and(queries.first().map(|q: &Entry| q.index));
        Ok(QueryPage {
            queries,
            older,
            newer,
        })
    }
}

/// Unix milliseconds of an RFC 3339 time (0 if it does not parse).
fn time_ms(text: &str) -> u64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
        .unwrap_or(0)
}

/// Why an evidence file was not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceFileError {
    /// The evidence could not be made (unknown log, entry not replicated, owner unreachable...).
    #[error(transparent)]
    Evidence(#[from] super::evidence::EvidenceError),
    /// It could not be notarized, so it is not answered.
    #[error(transparent)]
    Query(#[from] OversightError),
}

impl Oversight {
    /// The tlog-proof file of entry `index` of `log`'s replicated log (notarized as `evidence`,
    /// after it was made and before it is answered).
    pub async fn evidence_file(
        &self,
        log: &crate::identity::DeptId,
        index: u64,
        asker: &Asker,
    ) -> Result<causeway_ledger::tlog_proof::TlogProof, EvidenceFileError> {
        let proof = self.evidence(log.as_str(), index).await?;
        let entry = proof
            .extra
            .as_deref()
            .and_then(|b| Entry::from_bytes(b).ok());
        let parties = touched(
            [Some(log.as_str())].into_iter().chain(
                entry
                    .iter()
                    .flat_map(|e| [e.consumer.as_deref(), e.provider.as_deref()]),
            ),
        );
        self.notarize(
            asker,
            "evidence",
            json!({"log": log.as_str(), "index": index}),
            1,
            parties,
        )
        .await?;
        Ok(proof)
    }
}
