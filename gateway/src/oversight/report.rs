//! The citizen's report: every exchange that touched one person, from the replicated logs.
//!
//! The person is found by the keyed tag of their national id (HMAC under the federation tag key),
//! computed by whoever holds the id; the report itself carries only the tag. The raw id is shown
//! only where the requester typed it: the table on their own terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::replica::{entry_time_ms, Query, Replica, ReplicaError, MAX_LIMIT};
use super::seal::Seal;
use crate::text::visible;
use causeway_ledger::entry::Side;

/// One exchange that touched the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectExchange {
    /// Exchange id.
    pub exchange: String,
    /// When (the provider's record if present, else the consumer's).
    pub time: String,
    /// The department that asked.
    pub consumer: String,
    /// The consumer's application that asked, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Keyed tag of the officer who asked; absent when the application acted on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer: Option<String>,
    /// The department that held the data.
    pub provider: String,
    /// Dataset.
    pub dataset: String,
    /// Stated purpose.
    pub purpose: String,
    /// Legal basis cited.
    pub legal_basis: String,
    /// Case reference, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// The decision's reason code.
    pub reason: String,
    /// Fields released (empty when denied).
    pub fields: Vec<String>,
    /// Content hash of the provider's policy set in force.
    pub policy: String,
    /// Which sides recorded it (`provider`, `consumer`).
    pub recorded_by: Vec<String>,
}

/// Every exchange that touched one subject, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectReport {
    /// The subject's keyed tag.
    pub subject_tag: String,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// The exchanges.
    pub exchanges: Vec<SubjectExchange>,
    /// The salt (hex) that opens the subject commitment notarized for this report
    /// (docs/OVERSIGHT.md, "Subjects in notarized queries").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_salt: Option<String>,
    /// Index of the `oversight-query` entry that notarized this report in the node's ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notarized: Option<u64>,
}

impl SubjectReport {
    /// Build the report for `subject_tag` from the replica, leaving out every exchange one of
    /// `seals` covers (pass the seals in force; the report does not say any were left out).
    pub fn build(
        replica: &Replica,
        subject_tag: &str,
        seals: &[Seal],
    ) -> Result<SubjectReport, ReplicaError> {
        let found = replica.search(&Query {
            subject_tag: Some(subject_tag.to_owned()),
            limit: Some(MAX_LIMIT),
            ..Query::default()
        })?;
        let mut by_exchange: BTreeMap<String, (u64, SubjectExchange, bool)> = BTreeMap::new();
        let sealed: BTreeSet<&str> = found
            .records
            .iter()
            .filter(|r| seals.iter().any(|s| s.covers(&r.entry)))
            .filter_map(|r| r.entry.id.as_deref())
            .collect();
        for r in &found.records {
            let e = &r.entry;
            let Some(id) = e.id.clone() else { continue };
            if sealed.contains(id.as_str()) {
                continue;
            }
            let side = match e.side {
                Some(Side::Provider) => "provider",
                Some(Side::Consumer) => "consumer",
                None => continue,
            };
            let from_provider = side == "provider";
            let row = SubjectExchange {
                exchange: id.clone(),
                time: e.time.clone(),
                consumer: e.consumer.clone().unwrap_or_default(),
                application: e.application.clone(),
                officer: e.officer.clone(),
                provider: e.provider.clone().unwrap_or_default(),
                dataset: e.dataset.clone().unwrap_or_default(),
                purpose: e.purpose.clone().unwrap_or_default(),
                legal_basis: e.legal_basis.clone().unwrap_or_default(),
                case: e.case.clone(),
                decision: e.decision.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                fields: e.fields.clone(),
                policy: e.policy.clone().unwrap_or_default(),
                recorded_by: vec![side.to_owned()],
            };
            let time = entry_time_ms(e);
            match by_exchange.get_mut(&id) {
                Some((t, existing, has_provider)) => {
                    if !existing.recorded_by.iter().any(|s| s == side) {
                        existing.recorded_by.push(side.to_owned());
                    }
                    // The provider's record is the authoritative one for what was released.
                    if from_provider && !*has_provider {
                        let recorded_by = std::mem::take(&mut existing.recorded_by);
                        // The consumer's gateway authenticated the application and officer.
                        let application = existing.application.take().or(row.application.clone());
                        let officer = existing.officer.take().or(row.officer.clone());
                        *existing = SubjectExchange {
                            recorded_by,
                            application,
                            officer,
                            ..row
                        };
                        *t = time;
                        *has_provider = true;
                    } else if !from_provider {
                        existing.application =
                            row.application.clone().or(existing.application.take());
                        existing.officer = row.officer.clone().or(existing.officer.take());
                    }
                }
                None => {
                    by_exchange.insert(id, (time, row, from_provider));
                }
            }
        }
        let mut exchanges: Vec<(u64, SubjectExchange)> = by_exchange
            .into_values()
            .map(|(t, mut x, _)| {
                x.recorded_by.sort();
                x.recorded_by.reverse();
                (t, x)
            })
            .collect();
        exchanges.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.exchange.cmp(&b.1.exchange)));
        Ok(SubjectReport {
            subject_tag: subject_tag.to_owned(),
            generated_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .expect("RFC 3339 formatting of the current time cannot fail"),
            exchanges: exchanges.into_iter().map(|(_, x)| x).collect(),
            subject_salt: None,
            notarized: None,
        })
    }

    /// A plain-text table. `who` names the subject as the requester typed it (their terminal only).
    /// Control and bidi characters in the departments' text are shown as escapes.
    pub fn to_table(&self, who: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Exchanges that touched {} (subject tags {}.., one per department key: {}): {}\n",
            visible(who),
            visible(short(&self.subject_tag)),
            self.subject_tag.split(',').count(),
            self.exchanges.len()
        );
        let _ = writeln!(
            out,
            "{:<20} {:<15} {:<15} {:<10} {:<20} {:<26} {:<6} {:<28} policy",
            "when", "asked by", "asked of", "dataset", "purpose", "legal basis", "result", "fields",
        );
        for x in &self.exchanges {
            let result = if x.decision == "allow" {
                "ALLOW".to_owned()
            } else {
                "DENY".to_owned()
            };
            let _ = writeln!(
                out,
                "{:<20} {:<15} {:<15} {:<10} {:<20} {:<26} {:<6} {:<28} {}",
                visible(x.time.get(..19).unwrap_or(&x.time)),
                visible(&x.consumer),
                visible(&x.provider),
                visible(&x.dataset),
                visible(&x.purpose),
                visible(&x.legal_basis),
                result,
                visible(&if x.fields.is_empty() {
                    format!("({})", x.reason)
                } else {
                    x.fields.join(",")
                }),
                visible(short(&x.policy))
            );
        }
        out
    }

    /// A printable, self-contained HTML page (inline CSS, no scripts). It names the subject by tag
    /// only, so the file can be stored or mailed without carrying the national id.
    pub fn to_html(&self) -> String {
        let mut rows = String::new();
        for x in &self.exchanges {
            let _ = write!(
                rows,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                if x.decision == "allow" { "allow" } else { "deny" },
                esc(&x.time),
                esc(&x.consumer),
                esc(x.application.as_deref().unwrap_or("")),
                esc(x.officer.as_deref().map_or("(application)", short)),
                esc(&x.provider),
                esc(&x.dataset),
                esc(&x.purpose),
                esc(&x.legal_basis),
                if x.decision == "allow" { "released".to_owned() } else { format!("refused ({})", esc(&x.reason)) },
                esc(&x.fields.join(", ")),
                esc(short(&x.policy)),
                esc(&x.exchange),
            );
        }
        if self.exchanges.is_empty() {
            rows.push_str(
                "<tr><td colspan=\"12\">No department asked for this person's records.</td></tr>",
            );
        }
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Who looked at my records</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1b1f24}}
h1{{font-size:22px;margin:0 0 .3em}} .meta{{color:#555;margin-bottom:1.5em}}
table{{border-collapse:collapse;width:100%}} th,td{{border:1px solid #ccd;padding:4px 6px;text-align:left;vertical-align:top}}
th{{background:#eef1f6}} tr.deny td{{background:#fff4f2}} code{{font-size:12px;word-break:break-all}}
@media print{{body{{margin:0}} .meta{{color:#000}}}}
</style></head><body>
<h1>Who looked at my records, and why</h1>
<p class="meta">Subject tags (one per department key) <code>{tag}</code> &middot; {count} exchange(s) &middot; generated {generated} from the verified logs of every department.<br>
Each row is one request one department made to another for this person's records, as both departments' signed access logs record it.</p>
<table><thead><tr><th>When</th><th>Asked by</th><th>Application</th><th>Official</th><th>Asked of</th><th>Dataset</th><th>Purpose</th><th>Legal basis</th><th>Result</th><th>Fields released</th><th>Policy</th><th>Exchange</th></tr></thead>
<tbody>{rows}</tbody></table>
</body></html>
"#,
            tag = esc(&self.subject_tag),
            count = self.exchanges.len(),
            generated = esc(&self.generated_at),
        )
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Escape text for HTML: markup as entities, control and bidi characters as visible escapes.
pub use crate::text::html as esc;
