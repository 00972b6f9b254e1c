//! Rate limits: per consumer and dataset, per UTC minute and day, exact under concurrency.

mod common;

use std::sync::Arc;

use causeway_policy::{RateLimit, RateLimited, RateLimiter, RateWindow, ReasonCode};
use common::{req, set};

const T0: i64 = 1_748_736_000; // 2025-06-01T00:00:00Z, a minute and day boundary

#[test]
fn minute_and_day_windows() {
    let limiter = RateLimiter::new();
    let limit = RateLimit {
        per_minute: Some(2),
        per_day: Some(3),
    };
    assert_eq!(limiter.try_acquire("a", "ds", &limit, T0), Ok(()));
    assert_eq!(limiter.try_acquire("a", "ds", &limit, T0 + 59), Ok(()));
    let hit = limiter
        .try_acquire("a", "ds", &limit, T0 + 59)
        .expect_err("third in the minute");
    assert_eq!(
        hit,
        RateLimited {
            window: RateWindow::Minute,
            limit: 2
        }
    );
    // Other consumers and datasets have their own counters.
    assert_eq!(limiter.try_acquire("b", "ds", &limit, T0), Ok(()));
    assert_eq!(limiter.try_acquire("a", "other", &limit, T0), Ok(()));
    // Next minute: room again, until the day is used up. Refusals did not count.
    assert_eq!(limiter.try_acquire("a", "ds", &limit, T0 + 60), Ok(()));
    let hit = limiter
        .try_acquire("a", "ds", &limit, T0 + 120)
        .expect_err("fourth in the day");
    assert_eq!(hit.window, RateWindow::Day);
    // Next day.
    assert_eq!(limiter.try_acquire("a", "ds", &limit, T0 + 86_400), Ok(()));
    // A clock that steps back counts in the newer window.
    assert_eq!(
        limiter.try_acquire("a", "ds", &limit, T0 + 86_400 - 10),
        Ok(())
    );
    assert!(limiter
        .try_acquire("a", "ds", &limit, T0 + 86_400 - 20)
        .is_err());
}

#[test]
fn limits_hold_under_concurrent_requests() {
    let limiter = Arc::new(RateLimiter::new());
    let limit = RateLimit {
        per_minute: Some(50),
        per_day: None,
    };
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            std::thread::spawn(move || {
                (0..100)
                    .filter(|_| limiter.try_acquire("a", "ds", &limit, T0 + 5).is_ok())
                    .count()
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(admitted, 50);
}

#[test]
fn admit_turns_an_allow_into_a_rate_limited_denial() {
    let s = set(&[(
        "a.toml",
        "[[grant]]\nid = \"g\"\nconsumer = \"c\"\ndataset = \"d\"\npurposes = [\"statistics\"]\nfields = [\"x\"]\nrate_limit = { per_minute = 1 }\n",
    )]);
    let limiter = RateLimiter::new();
    let r = req("c", "d", "statistics").at(T0);
    let first = limiter.admit(&r.request(), r.decide(&s));
    assert!(first.allowed);
    let second = limiter.admit(&r.request(), r.decide(&s));
    assert!(!second.allowed);
    assert_eq!(second.reason.code, ReasonCode::RateLimited);
    assert_eq!(second.rule.as_ref().map(|r| r.id.as_str()), Some("g"));
    assert!(second.fields.is_empty());
    assert_eq!(second.policy_hash, s.hash());
    assert_eq!(
        second.reason.message,
        "rate limit of 1 requests per minute reached for \"c\" on \"d\" (grant \"g\")"
    );
    // Denials pass through untouched and are not counted.
    let other = req("c", "d", "tax-assessment").at(T0);
    let denied = other.decide(&s);
    assert_eq!(limiter.admit(&other.request(), denied.clone()), denied);
    let later = req("c", "d", "statistics").at(T0 + 60);
    assert!(limiter.admit(&later.request(), later.decide(&s)).allowed);
}
