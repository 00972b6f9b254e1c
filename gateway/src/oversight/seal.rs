//! Sealed purposes: exchanges kept out of citizens' reports until a date (an investigation).
//!
//! Oversight staff seal a purpose, optionally for one consumer department only, until a date. The
//! seal is a `seal` entry in the node's own ledger, so it is notarized like any query: who sealed
//! what, until when, and why (a reason code). While a seal is in force, citizens' reports and
//! bundles leave out the exchanges it covers, without saying that any were left out; oversight
//! views show them at once, marked "sealed until DATE". From that date on they appear in citizens'
//! reports like any other.
//!
//! No seal lasts longer than `[oversight] max_seal_days` from the day it was recorded: a longer one
//! is refused, and one found in a log (another centre's, written by whoever holds that node) is
//! honoured only that long. Keeping a purpose sealed longer takes a new seal, notarized again.
//!
//! Seals are read through [`Oversight::seals`] only: this node's ledger, and every other oversight
//! node's log this node replicates.

use serde::Serialize;
use serde_json::json;
use time::Date;

use super::{Asker, Oversight, OversightError};
use crate::identity::DeptId;
use causeway_ledger::entry::{Entry, Kind};

/// `until` dates are written like this (ISO 8601 calendar date).
const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// One seal, as recorded in an oversight log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seal {
    /// The sealed purpose.
    pub purpose: String,
    /// Only this consumer department's exchanges, if set.
    pub consumer: Option<String>,
    /// In force until this date (exclusive: from it on, the exchanges are shown): the date the
    /// seal names, or the day it was recorded plus the longest a seal lasts, whichever is first.
    #[serde(serialize_with = "serialize_date")]
    pub until: Date,
    /// Why (a reason code).
    pub reason: String,
    /// The oversight log that holds the seal entry.
    pub log: String,
    /// Its index there.
    pub index: u64,
}

fn serialize_date<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_date(*d))
}

/// A date as `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

/// Parse `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s.trim(), DATE).ok()
}

/// Today, UTC.
pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

/// The last day a seal recorded on `recorded` may be in force before, at most `max_days` later.
fn longest(recorded: Date, max_days: u32) -> Date {
    recorded
        .checked_add(time::Duration::days(i64::from(max_days)))
        .unwrap_or(Date::MAX)
}

impl Seal {
    /// Read a seal entry, honoured for at most `max_days` from the day it was recorded (`None`
    /// for any other entry, or one that does not parse).
    pub fn from_entry(log: &str, e: &Entry, max_days: u32) -> Option<Seal> {
        if e.kind != Kind::Seal {
            return None;
        }
        let detail = e.detail.as_ref()?;
        let recorded =
            time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
                .ok()?
                .date();
        let named = parse_date(detail["until"].as_str()?)?;
        Some(Seal {
            purpose: e.purpose.clone()?,
            consumer: e.consumer.clone(),
            until: named.min(longest(recorded, max_days)),
            reason: e.reason.clone().unwrap_or_default(),
            log: log.to_owned(),
            index: e.index,
        })
    }

    /// Whether the seal covers this entry's exchange.
    pub fn covers(&self, e: &Entry) -> bool {
        e.purpose.as_deref() == Some(self.purpose.as_str())
            && self
                .consumer
                .as_ref()
                .is_none_or(|c| e.consumer.as_deref() == Some(c.as_str()))
    }

    /// Whether it is in force on `day`.
    pub fn in_force(&self, day: Date) -> bool {
        day < self.until
    }
}

/// Why a seal was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// It could not be notarized.
    #[error(transparent)]
    Oversight(#[from] OversightError),
}

impl Oversight {
    /// Seal `purpose` (only `consumer`'s exchanges, if given) until `until`, for `reason_code`:
    /// appends a `seal` entry to this node's ledger and returns its index.
    pub async fn seal(
        &self,
        asker: &Asker,
        purpose: &str,
        consumer: Option<&str>,
        until: Date,
        reason_code: &str,
    ) -> Result<u64, SealError> {
        let invalid = |m: &str| Err(SealError::Invalid(m.to_owned()));
        let purpose = purpose.trim();
        if purpose.is_empty() || purpose.len() > 128 || purpose.chars().any(char::is_control) {
            return invalid(
                "the purpose must be 1 to 128 printable characters, as exchanges state it",
            );
        }
        if let Some(c) = consumer {
            if DeptId::new(c).is_err() {
                return invalid(
                    "--consumer must be a department id (lowercase letters, digits, '-')",
                );
            }
        }
        if until <= today() {
            return invalid("the seal's end date must be in the future (YYYY-MM-DD)");
        }
        let max_days = self.settings().max_seal_days;
        if until > longest(today(), max_days) {
            return Err(SealError::Invalid(format!(
                "a seal lasts at most {max_days} days ([oversight] max_seal_days), until {} at the latest: seal again before it ends to keep the purpose sealed (the new seal is notarized too)",
                format_date(longest(today(), max_days))
            )));
        }
        let reason_ok = !reason_code.is_empty()
            && reason_code.len() <= 64
            && reason_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !reason_ok {
            return invalid("the reason must be a code of 1 to 64 letters, digits, '-', '_' or '.' (a case or decision number, not free text)");
        }
        let mut entry = Entry::new(Kind::Seal);
        entry.purpose = Some(purpose.to_owned());
        entry.consumer = consumer.map(str::to_owned);
        entry.reason = Some(reason_code.to_owned());
        entry.detail = Some(json!({
            "until": format_date(until),
            "asked_by": asker.who,
            "role": asker.role,
            "via": asker.via,
        }));
        let appended = self
            .ledger
            .append(entry)
            .await
            .map_err(OversightError::from)?;
        Ok(appended.entry.index)
    }

    /// Every seal recorded: in this node's ledger, and in every other oversight node's log this
    /// node replicates. The one place seals are read. Each log is read once; later calls read
    /// only the entries appended since.
    pub async fn seals(&self) -> Result<Vec<Seal>, OversightError> {
        let me = self.me.to_string();
        let max_days = self.settings().max_seal_days;
        let size = self.ledger.checkpoint().0;
        let mut logs: Vec<String> = self
            .directory()
            .oversight_nodes()
            .filter(|n| n.id != self.me)
            .map(|n| n.id.to_string())
            .collect();
        logs.sort();
        let index = self.seal_index.clone();
        // Own ledger first (a blocking LMDB read, like the other ledger reads here).
        {
            let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
            let from = index.read.get(&me).copied().unwrap_or(0);
            if from < size {
                let mut found = Vec::new();
                self.ledger.read(|r| {
                    r.for_each_entry(from, size, |_, bytes| {
                        found.extend(seal_in(&me, bytes, max_days));
                        Ok(())
                    })
                })?;
                index.seals.extend(found);
                index.read.insert(me.clone(), size);
            }
        }
        let seals = super::pull::blocking(&self.replica, move |r| {
            let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
            for log in logs {
                let size = r.state(&log)?.size;
                let from = index.read.get(&log).copied().unwrap_or(0);
                for i in from..size {
                    if let Some(bytes) = r.entry_bytes(&log, i)? {
                        let found = seal_in(&log, &bytes, max_days);
                        index.seals.extend(found);
                    }
                }
                index.read.insert(log, size.max(from));
            }
            Ok(index.seals.clone())
        })
        .await?;
        Ok(seals)
    }

    /// The seals in force today.
    pub async fn seals_in_force(&self) -> Result<Vec<Seal>, OversightError> {
        let day = today();
        let mut seals = self.seals().await?;
        seals.retain(|s| s.in_force(day));
        Ok(seals)
    }

    /// Until when `entry`'s exchange is sealed (the latest seal in force that covers it), for
    /// oversight views.
    pub fn sealed_until(seals: &[Seal], entry: &Entry) -> Option<Date> {
        seals
            .iter()
            .filter(|s| s.covers(entry))
            .map(|s| s.until)
            .max()
    }
}

/// The seal in one entry's bytes, if it is one (most entries are queries: the kind is looked for
/// before the entry is parsed).
fn seal_in(log: &str, bytes: &[u8], max_days: u32) -> Option<Seal> {
    const NEEDLE: &[u8] = b"\"kind\":\"seal\"";
    if !bytes.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
        return None;
    }
    Seal::from_entry(log, &Entry::from_bytes(bytes).ok()?, max_days)
}

/// The seals read so far, and how far each log has been read.
#[derive(Debug, Default)]
pub(crate) struct SealIndex {
    read: std::collections::HashMap<String, u64>,
    seals: Vec<Seal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_covers_its_purpose_and_consumer_until_its_date() {
        let mut e = Entry::new(Kind::Seal);
        e.index = 4;
        e.purpose = Some("fraud".into());
        e.consumer = Some("tax-office".into());
        e.reason = Some("CASE-1".into());
        e.detail = Some(json!({"until": "2027-06-30"}));
        e.time = "2026-12-06T10:00:00Z".into();
        let seal = Seal::from_entry("audit", &e, 366).unwrap();
        assert_eq!(format_date(seal.until), "2027-06-30");
        let day = |s| parse_date(s).unwrap();
        assert!(seal.in_force(day("2027-06-29")));
        assert!(!seal.in_force(day("2027-06-30")), "shown from the date on");

        let mut x = Entry::new(Kind::Exchange);
        x.purpose = Some("fraud".into());
        x.consumer = Some("tax-office".into());
        assert!(seal.covers(&x));
        x.consumer = Some("social-welfare".into());
        assert!(!seal.covers(&x), "only the named consumer");
        let everyone = Seal {
            consumer: None,
            ..seal.clone()
        };
        assert!(everyone.covers(&x));
        x.purpose = Some("other".into());
        assert!(!everyone.covers(&x));
        assert_eq!(Oversight::sealed_until(&[seal, everyone], &x), None);

        let mut query = e.clone();
        query.kind = Kind::OversightQuery;
        assert!(Seal::from_entry("audit", &query, 366).is_none());
        assert!(parse_date("2027-6-30").is_none());
    }

    #[test]
    fn a_seal_is_honoured_at_most_max_days_from_when_it_was_recorded() {
        let mut e = Entry::new(Kind::Seal);
        e.purpose = Some("fraud".into());
        e.detail = Some(json!({"until": "2099-12-31"}));
        e.time = "2026-12-06T23:59:59.5Z".into();
        let seal = Seal::from_entry("audit", &e, 366).unwrap();
        assert_eq!(format_date(seal.until), "2027-12-07");
        assert_eq!(
            format_date(Seal::from_entry("audit", &e, 30).unwrap().until),
            "2027-01-05"
        );
        e.detail = Some(json!({"until": "2027-01-01"}));
        assert_eq!(
            format_date(Seal::from_entry("audit", &e, 366).unwrap().until),
            "2027-01-01",
            "a shorter seal keeps its own date"
        );
        e.time = "yesterday".into();
        assert!(
            Seal::from_entry("audit", &e, 366).is_none(),
            "a seal without a readable time hides nothing"
        );
    }
}
