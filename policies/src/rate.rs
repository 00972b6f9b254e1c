//! Rate limiting: the counters that live outside the immutable policy snapshot.
//!
//! A grant's `rate_limit` is carried in its [`Decision`]; the gateway passes every allowed decision
//! through one long-lived [`RateLimiter`], which counts requests per (consumer, dataset) in UTC
//! calendar minutes and days. Reloading the policy set does not reset the counters. The limiter has
//! no clock: the caller passes "now".

use std::collections::HashMap;
use std::sync::Mutex;

use crate::decision::{Decision, Disclosure, ReasonCode, Request};
use crate::rules::RateLimit;

/// Which window a limit was reached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RateWindow {
    /// A UTC calendar minute.
    Minute,
    /// A UTC calendar day.
    Day,
}

/// A request refused because a limit is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit of {limit} requests per {} reached", match window { RateWindow::Minute => "minute", RateWindow::Day => "day" })]
pub struct RateLimited {
    /// The window whose limit was reached.
    pub window: RateWindow,
    /// The limit in that window.
    pub limit: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    minute: i64,
    in_minute: u64,
    day: i64,
    in_day: u64,
}

const SHARDS: usize = 16;

/// Thread-safe request counters per (consumer, dataset). Share one instance (for example in an
/// `Arc`) across all requests and across policy reloads.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<(String, String), Counter>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new()
    }
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> RateLimiter {
        RateLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, consumer: &str, dataset: &str) -> &Mutex<HashMap<(String, String), Counter>> {
        use std::hash::{Hash, Hasher};
        let mut h = crate::set::FxHasher::default();
        consumer.hash(&mut h);
        dataset.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Count one request by `consumer` for `dataset` at `now_unix` against `limit`. Succeeds and
    /// counts it when both windows have room; otherwise counts nothing and says which limit was hit.
    pub fn try_acquire(
        &self,
        consumer: &str,
        dataset: &str,
        limit: &RateLimit,
        now_unix: i64,
    ) -> Result<(), RateLimited> {
        let minute = now_unix.div_euclid(60);
        let day = now_unix.div_euclid(86_400);
        // A poisoned lock only means another thread panicked mid-update of plain counters; the
        // counters are still meaningful, so keep going rather than fail every request.
        let mut map = self
            .shard(consumer, dataset)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let counter = match map.get_mut(&(consumer.to_owned(), dataset.to_owned())) {
            Some(c) => c,
            None => map
                .entry((consumer.to_owned(), dataset.to_owned()))
                .or_default(),
        };
        // Windows only move forward: a clock that steps back counts in the newer window.
        if minute > counter.minute {
            counter.minute = minute;
            counter.in_minute = 0;
        }
        if day > counter.day {
            counter.day = day;
            counter.in_day = 0;
        }
        if let Some(max) = limit.per_minute {
            if counter.in_minute >= max {
                return Err(RateLimited {
                    window: RateWindow::Minute,
                    limit: max,
                });
            }
        }
        if let Some(max) = limit.per_day {
            if counter.in_day >= max {
                return Err(RateLimited {
                    window: RateWindow::Day,
                    limit: max,
                });
            }
        }
        counter.in_minute += 1;
        counter.in_day += 1;
        Ok(())
    }

    /// Pass a decision through the limiter: a denial, or an allowed decision without a rate limit,
    /// is returned unchanged; an allowed decision is counted, or turned into a `rate-limited` denial
    /// (same rule, no fields) when its limit is used up.
    pub fn admit(&self, request: &Request<'_>, decision: Decision) -> Decision {
        let Some(limit) = decision.rate_limit.filter(|_| decision.allowed) else {
            return decision;
        };
        match self.try_acquire(request.consumer, request.dataset, &limit, request.at_unix) {
            Ok(()) => decision,
            Err(hit) => {
                let grant = decision
                    .rule
                    .as_ref()
                    .map_or(String::new(), |r| format!(" (grant \"{}\")", r.id));
                let window = match hit.window {
                    RateWindow::Minute => "minute",
                    RateWindow::Day => "day",
                };
                let told = Disclosure {
                    code: ReasonCode::RateLimited,
                    message: format!("the rate limit per {window} is reached{grant}"),
                    rule: decision.rule.clone(),
                };
                Decision::deny(
                    decision.rule.clone(),
                    ReasonCode::RateLimited,
                    format!(
                        "{hit} for \"{}\" on \"{}\"{grant}",
                        request.consumer, request.dataset
                    ),
                    told,
                    &decision.policy_hash,
                )
            }
        }
    }
}
