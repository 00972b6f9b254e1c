//! What the rate limits refused, notarized once per caller and window ([`crate::rate_limits`]):
//! one `refused` entry with the counts by reason, instead of one entry per request, so that no
//! flood can fill a ledger's disk.

use std::sync::Arc;
use std::time::Duration;

use causeway_ledger::entry::{Entry, Kind, Side};
use causeway_ledger::Ledger;
use tokio::sync::watch;

use crate::rate_limits::{RateLimits, Summary};

/// The reason code of a summary entry.
pub const RATE_LIMITED: &str = "rate-limited";

/// Whose budgets a [`RateLimits`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A consumer department's, at the provider.
    Consumer,
    /// An application's, at its own gateway.
    Application,
    /// An officer's (by keyed tag), at their department's gateway.
    Officer,
}

/// The entry for `summary` of `caller`'s budget.
pub fn summary_entry(summary: &Summary, caller: Caller) -> Entry {
    let mut entry = Entry::new(Kind::Refused);
    let key = Some(summary.key.clone());
    match caller {
        Caller::Consumer => {
            entry.side = Some(Side::Provider);
            entry.consumer = key;
        }
        Caller::Application => {
            entry.side = Some(Side::Consumer);
            entry.application = key;
        }
        Caller::Officer => {
            entry.side = Some(Side::Consumer);
            entry.officer = key;
        }
    }
    entry.decision = Some("deny".into());
    entry.reason = Some(RATE_LIMITED.into());
    entry.detail = Some(serde_json::json!({
        "refused": summary.total(),
        "by_reason": summary.refused,
        "window_start": summary.window_start,
        "window_secs": summary.window_secs,
    }));
    entry
}

/// Every `every`, notarize the summaries of ended windows of each of `limits` into `ledger` and
/// save the counts; once more when told to stop.
pub async fn notarize_summaries(
    ledger: Arc<Ledger>,
    limits: Vec<(Arc<RateLimits>, Caller)>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for (limits, caller) in &limits {
            let summaries = limits.take_summaries(now);
            let mut failed = Vec::new();
            for summary in summaries {
                if let Err(e) = ledger.append(summary_entry(&summary, *caller)).await {
                    tracing::error!(error = %e, "cannot notarize a rate-limit summary; kept for the next round");
                    failed.push(summary);
                }
            }
            limits.restore(failed);
            if let Err(e) = limits.save() {
                tracing::warn!(error = %e, "cannot save the rate-limit counts");
            }
        }
        if stopping {
            return;
        }
    }
}
