//! The citizen's report as one file anyone can verify: format `causeway-citizen-report/v1`.
//!
//! A bundle carries, for one person, every exchange that touched them as the rows a citizen reads
//! (aligned with Estonia's Data Tracker: time, action, receiver, request id, official), each side's
//! log entry with its evidence (a C2SP tlog-proof: entry bytes, inclusion proof, cosigned
//! checkpoint), and the `oversight-query` entry that notarized the report in the producing node's
//! own log, with its evidence too. The subject appears in that query entry only as a hiding
//! commitment ([`subject_commitment`]); the bundle carries the opening (salt and tags).
//!
//! This module owns the format, the derivation of a row from its entries ([`CitizenRow::derive`],
//! used both to write and to check), and the offline verification ([`verify_bundle`]): nothing here
//! needs a running node, only the bundle and the federation directory. docs/CITIZEN-REPORT.md
//! describes the same checks for an independent implementation. Building a bundle from a node is at
//! the end ([`Oversight::citizen_bundle`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::replica::{entry_time_ms, Query, MAX_LIMIT};
use super::{Asker, Oversight, OversightError};
use crate::directory::Directory;
use causeway_ledger::entry::{Entry, Kind, Side};
use causeway_ledger::note::NoteVerifier;
use causeway_ledger::tlog_proof::{
    verify_tlog_proof, verify_tlog_proof_under, TlogProof, VerifiedTlogProof,
};

/// The `format` field of every bundle.
pub const FORMAT: &str = "causeway-citizen-report/v1";
/// Prefix of a subject commitment (version 1 of the construction).
pub const COMMITMENT_PREFIX: &str = "c1:";
/// Domain separator of a subject commitment.
pub const COMMITMENT_DOMAIN: &[u8] = b"causeway oversight subject\n";
/// Largest bundle file read.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
/// Most exchanges in one bundle.
pub const MAX_EXCHANGES: usize = 20_000;
/// Most subject tags in one bundle (a person has one per department key version).
pub const MAX_TAGS: usize = 1024;
/// The `query` field of the notarized entry that produces a citizen's report.
pub const SUBJECT_REPORT_QUERY: &str = "subject-report";

/// The hiding commitment to a subject that a notarized query stores instead of the tags:
/// `"c1:" + hex(SHA-256("causeway oversight subject\n" || salt || "\n" || tags))`, `tags` being
/// the comma-separated keyed tags. Without the 32-byte random salt, a department that can compute
/// a person's tag cannot tell whether this query was about them.
pub fn subject_commitment(salt: &[u8; 32], tags: &str) -> String {
    let mut h = Sha256::new();
    h.update(COMMITMENT_DOMAIN);
    h.update(salt);
    h.update(b"\n");
    h.update(tags.as_bytes());
    format!("{COMMITMENT_PREFIX}{}", hex::encode(h.finalize()))
}

/// A fresh random salt for [`subject_commitment`].
pub fn fresh_salt() -> [u8; 32] {
    use rand::RngCore;
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    salt
}

/// One citizen's report, with the evidence for every line of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitizenBundle {
    /// Always [`FORMAT`].
    pub format: String,
    /// The federation whose directory verifies it.
    pub federation: String,
    /// When the report was made (RFC 3339 UTC, the producing node's clock).
    pub generated_at: String,
    /// The oversight node that produced it (its id in the directory's `[[oversight]]`).
    pub node: String,
    /// The subject: keyed tags and the salt that opens the commitment in the query entry.
    pub subject: SubjectOpening,
    /// The exchanges, oldest first.
    pub exchanges: Vec<BundleExchange>,
    /// The notarized `oversight-query` entry that produced this report, with its evidence.
    pub query: QueryEvidence,
}

/// The subject of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectOpening {
    /// The person's keyed tags, one per department key (64 hex, optionally after `version:`).
    pub tags: Vec<String>,
    /// The commitment's 32-byte salt, hex.
    pub salt: String,
}

impl SubjectOpening {
    /// The tags as the commitment hashes them: joined with `,`.
    pub fn joined(&self) -> String {
        self.tags.join(",")
    }
}

/// One exchange: the row a citizen reads and the entries it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleExchange {
    /// What the entries say, as a citizen reads it.
    pub row: CitizenRow,
    /// Each side's entry with its evidence (provider first).
    pub records: Vec<BundleRecord>,
}

/// One side's entry of an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    /// `provider` or `consumer`.
    pub side: String,
    /// The department whose log holds the entry.
    pub log: String,
    /// A C2SP tlog-proof@v1 file: the entry's exact bytes (`extra`), index, inclusion proof and
    /// the (cosigned) checkpoint.
    pub evidence: String,
}

/// The notarized query entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryEvidence {
    /// A C2SP tlog-proof@v1 file of the `oversight-query` entry in the node's own log.
    pub evidence: String,
}

/// One exchange as a citizen reads it (the Data Tracker's columns first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitizenRow {
    /// When (RFC 3339 UTC, as the deciding entry records it).
    pub time: String,
    /// `data released`, `release failed` or `request refused`.
    pub action: String,
    /// The department that asked (the receiver of the data).
    pub receiver: String,
    /// The receiver's application that asked, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The request id (the exchange id).
    pub request_id: String,
    /// The official: keyed tag of the officer, absent when an application acted on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub official: Option<String>,
    /// Stated purpose.
    pub purpose: String,
    /// Legal basis cited.
    pub legal_basis: String,
    /// Case reference, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// The department that held the data.
    pub provider: String,
    /// Dataset.
    pub dataset: String,
    /// Fields released (empty when refused).
    pub fields: Vec<String>,
    /// `allow` or `deny` (empty for a request refused without a decision).
    pub decision: String,
    /// The decision's reason code.
    pub reason: String,
    /// Which sides recorded it, provider first.
    pub recorded_by: Vec<String>,
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Provider => "provider",
        Side::Consumer => "consumer",
    }
}

impl CitizenRow {
    /// The row that one exchange's entries (at most one per side) say. The provider's entry
    /// decides (it made the decision and released the data); without one, the consumer's. The
    /// application and official come from the consumer's entry when there is one (its gateway
    /// authenticated them), else from the provider's.
    pub fn derive(entries: &[&Entry]) -> Option<CitizenRow> {
        let by = |side| entries.iter().find(|e| e.side == Some(side)).copied();
        let (provider, consumer) = (by(Side::Provider), by(Side::Consumer));
        let main = provider.or(consumer)?;
        let who = consumer.unwrap_or(main);
        let decision = main.decision.clone().unwrap_or_default();
        let action = match (decision.as_str(), main.outcome.as_deref()) {
            ("allow", None | Some("ok")) => "data released",
            ("allow", Some(_)) => "release failed",
            _ => "request refused",
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Some(CitizenRow {
            time: main.time.clone(),
            action: action.to_owned(),
            receiver: text(&main.consumer),
            application: who.application.clone().or_else(|| main.application.clone()),
            request_id: text(&main.id),
            official: who.officer.clone().or_else(|| main.officer.clone()),
            purpose: text(&main.purpose),
            legal_basis: text(&main.legal_basis),
            case: main.case.clone(),
            provider: text(&main.provider),
            dataset: text(&main.dataset),
            fields: main.fields.clone(),
            decision,
            reason: text(&main.reason),
            recorded_by: [provider, consumer]
                .iter()
                .zip(["provider", "consumer"])
                .filter(|(e, _)| e.is_some())
                .map(|(_, s)| s.to_owned())
                .collect(),
        })
    }

    /// The name of the first field where `self` and `other` differ.
    fn first_difference(&self, other: &CitizenRow) -> Option<&'static str> {
        let a = serde_json::to_value(self).expect("rows serialize");
        let b = serde_json::to_value(other).expect("rows serialize");
        const FIELDS: [&str; 15] = [
            "time",
            "action",
            "receiver",
            "application",
            "request_id",
            "official",
            "purpose",
            "legal_basis",
            "case",
            "provider",
            "dataset",
            "fields",
            "decision",
            "reason",
            "recorded_by",
        ];
        FIELDS.into_iter().find(|f| a.get(f) != b.get(f))
    }
}

/// Why a bundle did not verify: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {problem}")]
pub struct BundleFailure {
    /// Which part of the bundle (`query entry`, `exchange 3 (0190...) provider record`...).
    pub place: String,
    /// What was wrong.
    pub problem: String,
}

fn fail<T>(place: impl Into<String>, problem: impl Into<String>) -> Result<T, BundleFailure> {
    Err(BundleFailure {
        place: place.into(),
        problem: problem.into(),
    })
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// Exchanges.
    pub exchanges: usize,
    /// Entries proven (both sides of every exchange).
    pub entries: usize,
    /// The department logs they come from.
    pub logs: BTreeSet<String>,
    /// The fewest known witnesses that cosigned any department checkpoint.
    pub min_witnesses: usize,
    /// The oversight node that notarized the report, and the query entry's index in its log.
    pub node: String,
    /// Index of the query entry.
    pub query_index: u64,
    /// When the query was notarized.
    pub query_time: String,
}

/// Parse a bundle file: size-limited, strict (unknown fields refused).
pub fn parse_bundle(bytes: &[u8]) -> Result<CitizenBundle, BundleFailure> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return fail(
            "bundle",
            format!(
                "{} bytes is more than the {MAX_BUNDLE_BYTES} a bundle may have",
                bytes.len()
            ),
        );
    }
    let bundle: CitizenBundle = serde_json::from_slice(bytes).or_else(|e| {
        fail(
            "bundle",
            format!("not a {FORMAT} file (JSON as docs/CITIZEN-REPORT.md describes): {e}"),
        )
    })?;
    if bundle.format != FORMAT {
        return fail(
            "format",
            format!("is {:?}; this verifier reads {FORMAT}", bundle.format),
        );
    }
    if bundle.exchanges.len() > MAX_EXCHANGES {
        return fail("exchanges", format!("more than {MAX_EXCHANGES} exchanges"));
    }
    if bundle.subject.tags.is_empty() || bundle.subject.tags.len() > MAX_TAGS {
        return fail(
            "subject tags",
            format!("a bundle names 1 to {MAX_TAGS} subject tags"),
        );
    }
    Ok(bundle)
}

/// Parse an evidence file and name the log origin its checkpoint claims (nothing verified yet).
fn open_evidence(place: &str, text: &str) -> Result<(TlogProof, String), BundleFailure> {
    let proof = TlogProof::parse(text).or_else(|e| fail(place, format!("evidence: {e}")))?;
    let origin =
        causeway_ledger::witness::checkpoint_origin(&proof.checkpoint).ok_or_else(|| {
            BundleFailure {
                place: place.to_owned(),
                problem: "evidence: the checkpoint names no log origin".into(),
            }
        })?;
    Ok((proof, origin))
}

/// The verified evidence's entry (its bytes are what the proof proved).
fn proven_entry(
    place: &str,
    proof: &TlogProof,
    verified: Result<VerifiedTlogProof, causeway_ledger::tlog_proof::TlogProofError>,
) -> Result<(VerifiedTlogProof, Entry), BundleFailure> {
    let verified = verified.or_else(|e| fail(place, format!("evidence does not verify: {e}")))?;
    let bytes = proof.extra.as_deref().unwrap_or_default();
    let entry = Entry::from_bytes(bytes)
        .or_else(|e| fail(place, format!("the proven entry is not a log entry: {e}")))?;
    if entry.index != proof.index {
        return fail(
            place,
            format!(
                "the entry says index {} but the evidence proves index {}",
                entry.index, proof.index
            ),
        );
    }
    Ok((verified, entry))
}

/// Verify a bundle offline against the federation `directory`: every evidence (log signature
/// under the key the directory lists for that origin and size, inclusion proof, witness
/// cosignatures counted), every row against its entries, every entry naming one of the subject's
/// tags, and the query entry (an `oversight-query` for exactly these tags, by the node whose key
/// signed it, counting exactly these exchanges). Stops at the first failure.
pub fn verify_bundle(
    bundle: &CitizenBundle,
    directory: &Directory,
) -> Result<VerifiedBundle, BundleFailure> {
    if bundle.format != FORMAT {
        return fail("format", format!("is {:?}, not {FORMAT}", bundle.format));
    }
    if bundle.federation != directory.federation {
        return fail(
            "federation",
            format!(
                "the bundle is of federation {:?}, the directory of {:?}: verify it with its own federation's directory",
                bundle.federation, directory.federation
            ),
        );
    }
    // The subject: well-formed tags, and the commitment they open.
    let tags: BTreeSet<&str> = bundle.subject.tags.iter().map(String::as_str).collect();
    if let Some(bad) = bundle
        .subject
        .tags
        .iter()
        .find(|t| !crate::identity::is_tag(t))
    {
        return fail(
            "subject tags",
            format!(
                "{:?} is not a keyed tag",
                bad.chars().take(80).collect::<String>()
            ),
        );
    }
    let salt: [u8; 32] = hex::decode(&bundle.subject.salt)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| BundleFailure {
            place: "subject salt".into(),
            problem: "not 32 bytes of hex".into(),
        })?;
    let commitment = subject_commitment(&salt, &bundle.subject.joined());
    let witnesses = directory.witnesses();

    // The notarized query, in the producing node's own log.
    let place = "query entry";
    let node = crate::identity::DeptId::new(&bundle.node)
        .ok()
        .and_then(|id| directory.oversight_node(&id))
        .ok_or_else(|| BundleFailure {
            place: place.into(),
            problem: format!(
                "the directory lists no oversight node {:?}",
                bundle.node.chars().take(80).collect::<String>()
            ),
        })?;
    let key: &NoteVerifier = node.verifier.as_ref().ok_or_else(|| BundleFailure {
        place: place.into(),
        problem: format!(
            "the directory lists no log key (vkey) for oversight node {}",
            node.id
        ),
    })?;
    let (proof, origin) = open_evidence(place, &bundle.query.evidence)?;
    // Under the key valid for the checkpoint's size when the directory lists the node's log with
    // its key history, else under its one key.
    let verified = match &node.log {
        Some(log) => verify_tlog_proof_under(&proof, &log.keys, &witnesses),
        None => verify_tlog_proof(&proof, key, &witnesses),
    };
    if origin != key.name() {
        return fail(
            place,
            format!(
                "its checkpoint is of log {origin:?}, not of oversight node {}'s log {:?}",
                node.id,
                key.name()
            ),
        );
    }
    let (_, query) = proven_entry(place, &proof, verified)?;
    if query.kind != Kind::OversightQuery {
        return fail(
            place,
            format!("is a {} entry, not an oversight-query", query.kind.as_str()),
        );
    }
    let detail = query.detail.clone().unwrap_or_default();
    if detail["query"] != SUBJECT_REPORT_QUERY {
        return fail(
            place,
            format!(
                "notarizes a {} query, not a {SUBJECT_REPORT_QUERY}",
                detail["query"]
            ),
        );
    }
    if detail["filter"]["subject"] != commitment.as_str() {
        return fail(
            place,
            "its subject commitment does not open to this bundle's subject tags and salt",
        );
    }
    if detail["results"] != bundle.exchanges.len() {
        return fail(
            place,
            format!(
                "notarizes {} result(s), the bundle carries {} exchange(s)",
                detail["results"],
                bundle.exchanges.len()
            ),
        );
    }

    // Every exchange: each side's entry proven into its log, naming the subject, saying the row.
    let mut seen = BTreeSet::new();
    let mut logs = BTreeSet::new();
    let mut entries = 0;
    let mut min_witnesses = usize::MAX;
    for (i, x) in bundle.exchanges.iter().enumerate() {
        let at = format!(
            "exchange {} ({})",
            i + 1,
            x.row.request_id.chars().take(40).collect::<String>()
        );
        if !seen.insert(x.row.request_id.as_str()) {
            return fail(at, "the same request id appears twice");
        }
        if x.records.is_empty() || x.records.len() > 2 {
            return fail(at, "an exchange has one or two records (one per side)");
        }
        let mut said = Vec::new();
        for r in &x.records {
            let place = format!(
                "{at} {} record ({})",
                r.side.chars().take(10).collect::<String>(),
                r.log.chars().take(40).collect::<String>()
            );
            let (proof, origin) = open_evidence(&place, &r.evidence)?;
            let dept = directory
                .by_origin(&origin)
                .filter(|d| directory.department(&d.id).is_some())
                .ok_or_else(|| BundleFailure {
                    place: place.clone(),
                    problem: format!(
                        "the directory lists no department with log origin {origin:?}"
                    ),
                })?;
            if dept.id.as_str() != r.log {
                return fail(&place, format!("the evidence is from {}'s log", dept.id));
            }
            let (v, entry) = proven_entry(
                &place,
                &proof,
                verify_tlog_proof_under(&proof, &dept.keys, &witnesses),
            )?;
            min_witnesses = min_witnesses.min(v.cosignatures.len());
            let side = entry.side.map(side_name);
            if side != Some(r.side.as_str()) {
                return fail(
                    &place,
                    format!("the entry is written by the {} side", side.unwrap_or("no")),
                );
            }
            let writer = match entry.side {
                Some(Side::Provider) => entry.provider.as_deref(),
                _ => entry.consumer.as_deref(),
            };
            if writer != Some(dept.id.as_str()) {
                return fail(
                    &place,
                    "the entry names another department on the side of the log that holds it",
                );
            }
            if entry.id.as_deref() != Some(x.row.request_id.as_str()) {
                return fail(&place, "the entry is of another request id");
            }
            if !entry.subjects.iter().any(|s| tags.contains(s.as_str())) {
                return fail(&place, "the entry names none of the bundle's subject tags");
            }
            if said.iter().any(|e: &Entry| e.side == entry.side) {
                return fail(&place, "two records of the same side");
            }
            logs.insert(dept.id.to_string());
            said.push(entry);
            entries += 1;
        }
        let refs: Vec<&Entry> = said.iter().collect();
        let derived = CitizenRow::derive(&refs).ok_or_else(|| BundleFailure {
            place: at.clone(),
            problem: "no entry of a side".into(),
        })?;
        if let Some(field) = derived.first_difference(&x.row) {
            return fail(
                format!("{at} row field {field}"),
                "differs from what the entries say",
            );
        }
    }
    Ok(VerifiedBundle {
        exchanges: bundle.exchanges.len(),
        entries,
        logs,
        min_witnesses: if min_witnesses == usize::MAX {
            0
        } else {
            min_witnesses
        },
        node: node.id.to_string(),
        query_index: query.index,
        query_time: query.time,
    })
}

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The report could not be made or notarized.
    #[error(transparent)]
    Oversight(#[from] OversightError),
    /// The evidence for one entry could not be produced.
    #[error(transparent)]
    Evidence(#[from] super::evidence::EvidenceError),
    /// The notarized query's evidence could not be produced.
    #[error("the notarized query's evidence could not be built: {0}")]
    QueryEvidence(String),
}

/// The subject tags as one canonical comma-separated string: non-empty, in the order given.
pub fn canonical_tags(tags: &str) -> String {
    tags.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

impl Oversight {
    /// The citizen's report for `subject_tags` (comma-separated keyed tags) as a bundle: every
    /// exchange that touched them (except those under a seal in force), each side's evidence,
    /// and the notarized query that produced it, whose subject is a commitment this bundle opens.
    pub async fn citizen_bundle(
        &self,
        subject_tags: &str,
        asker: &Asker,
    ) -> Result<CitizenBundle, BundleError> {
        let tags = canonical_tags(subject_tags);
        let seals = self.seals_in_force().await?;
        let query = Query {
            subject_tag: Some(tags.clone()),
            limit: Some(MAX_LIMIT),
            ..Query::default()
        };
        let found = super::pull::blocking(&self.replica, move |r| r.search(&query))
            .await
            .map_err(OversightError::from)?;
        // Group by exchange: (time, id) -> records.
        let mut by_exchange: std::collections::BTreeMap<String, Vec<super::replica::Record>> =
            Default::default();
        for r in found.records {
            if r.entry.side.is_none() {
                continue;
            }
            if let Some(id) = r.entry.id.clone() {
                by_exchange.entry(id).or_default().push(r);
            }
        }
        let mut rows = Vec::new();
        for (_, mut records) in by_exchange {
            if records
                .iter()
                .any(|r| sealed_by(&seals, &r.entry).is_some())
            {
                continue;
            }
            records.sort_by_key(|r| r.entry.side != Some(Side::Provider));
            records.dedup_by(|a, b| a.entry.side == b.entry.side);
            let entries: Vec<&Entry> = records.iter().map(|r| &r.entry).collect();
            let Some(row) = CitizenRow::derive(&entries) else {
                continue;
            };
            let main = entries[0];
            rows.push((entry_time_ms(main), row, records));
        }
        rows.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.request_id.cmp(&b.1.request_id))
        });

        let salt = fresh_salt();
        let touched =
            super::touched(rows.iter().flat_map(|(_, row, _)| {
                [Some(row.receiver.as_str()), Some(row.provider.as_str())]
            }));
        let appended = self
            .notarize_full(
                asker,
                SUBJECT_REPORT_QUERY,
                serde_json::json!({"subject": subject_commitment(&salt, &tags)}),
                rows.len(),
                touched,
            )
            .await?;
        let query = TlogProof {
            extra: Some(appended.bytes.clone()),
            index: appended.entry.index,
            proof: appended.inclusion_proof.clone(),
            checkpoint: appended.checkpoint.to_string(),
        };
        let mut exchanges = Vec::new();
        for (_, row, records) in rows {
            let mut out = Vec::new();
            for r in records {
                let evidence = self.evidence(&r.log, r.index).await?;
                out.push(BundleRecord {
                    side: r.entry.side.map(side_name).unwrap_or_default().to_owned(),
                    log: r.log,
                    evidence: evidence.to_text(),
                });
            }
            exchanges.push(BundleExchange { row, records: out });
        }
        let generated_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 formatting of the current time cannot fail");
        Ok(CitizenBundle {
            format: FORMAT.to_owned(),
            federation: self.directory().federation.clone(),
            generated_at,
            node: self.id().to_string(),
            subject: SubjectOpening {
                tags: tags.split(',').map(str::to_owned).collect(),
                salt: hex::encode(salt),
            },
            exchanges,
            query: QueryEvidence {
                evidence: query.to_text(),
            },
        })
    }
}

/// The seal among `seals` that covers `entry`, if any.
pub fn sealed_by<'a>(
    seals: &'a [super::seal::Seal],
    entry: &Entry,
) -> Option<&'a super::seal::Seal> {
    seals.iter().find(|s| s.covers(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_commitment_is_the_documented_hash() {
        // Known answer, computed independently (Python hashlib) from docs/CITIZEN-REPORT.md.
        let tags = format!("1:{},1:{}", "a".repeat(64), "b".repeat(64));
        assert_eq!(
            subject_commitment(&[7; 32], &tags),
            "c1:fd7290664ab1506846d585f9005d492a44e50c14570dce4ef9b8b0bcfa5a519d"
        );
        assert_ne!(
            subject_commitment(&[8; 32], &tags),
            subject_commitment(&[7; 32], &tags),
            "another salt, another commitment"
        );
        assert_eq!(canonical_tags(" a,,b ,"), "a,b");
    }

    fn entry(side: Side, decision: &str, outcome: Option<&str>) -> Entry {
        let mut e = Entry::new(Kind::Exchange);
        e.side = Some(side);
        e.id = Some("x1".into());
        e.time = format!("2026-12-06T10:00:0{}Z", side as u8);
        e.consumer = Some("tax-office".into());
        e.provider = Some("civil-registry".into());
        e.purpose = Some("tax-assessment".into());
        e.decision = Some(decision.into());
        e.outcome = outcome.map(str::to_owned);
        e
    }

    #[test]
    fn a_row_says_what_the_provider_decided_and_who_the_consumer_authenticated() {
        let mut provider = entry(Side::Provider, "allow", Some("ok"));
        provider.fields = vec!["name".into()];
        provider.application = Some("provider-says".into());
        let mut consumer = entry(Side::Consumer, "allow", None);
        consumer.application = Some("tax-portal".into());
        consumer.officer = Some("ab".repeat(32));
        let row = CitizenRow::derive(&[&consumer, &provider]).unwrap();
        assert_eq!(row.action, "data released");
        assert_eq!(row.time, provider.time);
        assert_eq!(row.fields, ["name"]);
        assert_eq!(row.application.as_deref(), Some("tax-portal"));
        assert_eq!(row.official, consumer.officer);
        assert_eq!(row.recorded_by, ["provider", "consumer"]);
        assert_eq!(row.receiver, "tax-office");

        let failed = entry(Side::Provider, "allow", Some("adapter-error"));
        assert_eq!(
            CitizenRow::derive(&[&failed]).unwrap().action,
            "release failed"
        );
        let denied = entry(Side::Consumer, "deny", None);
        let row = CitizenRow::derive(&[&denied]).unwrap();
        assert_eq!(
            (row.action.as_str(), row.recorded_by.as_slice()),
            ("request refused", &["consumer".to_owned()][..])
        );
        assert!(CitizenRow::derive(&[]).is_none());

        let mut other = row.clone();
        other.reason = "changed".into();
        assert_eq!(row.first_difference(&other), Some("reason"));
        assert_eq!(row.first_difference(&row), None);
    }

    #[test]
    fn bundles_over_the_limits_are_refused_before_parsing() {
        let huge = vec![b' '; MAX_BUNDLE_BYTES + 1];
        assert_eq!(parse_bundle(&huge).unwrap_err().place, "bundle");
        let unknown = br#"{"format":"causeway-citizen-report/v1","extra":1}"#;
        assert!(parse_bundle(unknown).is_err());
        let v2 = serde_json::json!({
            "format": "causeway-citizen-report/v2", "federation": "demo", "generated_at": "",
            "node": "audit", "subject": {"tags": ["a"], "salt": ""}, "exchanges": [],
            "query": {"evidence": ""}
        });
        assert_eq!(
            parse_bundle(v2.to_string().as_bytes()).unwrap_err().place,
            "format"
        );
    }
}
