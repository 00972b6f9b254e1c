//! Rate limits on decisions, so that no caller can flood a ledger.
//!
//! Every decision, allowed or denied, counts against its caller's budget for the current window
//! (per consumer department at the provider; per application and per officer at the consumer).
//! Past the budget, requests are answered `429` without a decision. Denials have a smaller budget
//! of their own: within it, each is notarized as usual; past it, they are answered `429` and only
//! counted. Whatever was refused that way is notarized once per caller and window, as one entry
//! with the counts ([`Summary`]), so a flood of identical denials costs the ledger one entry a
//! window instead of one each.
//!
//! The counts are saved to a file beside the ledger and read back at start, so a restart does not
//! hand a flooding caller a fresh budget.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How much one caller may ask per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Decisions, allowed or denied, per window.
    pub decisions: u64,
    /// Denials notarized one by one per window; further ones are only counted.
    pub denials: u64,
    /// The window, in seconds.
    pub window_secs: u64,
}

/// Requests a caller's budget refused in one window, notarized as one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The caller (a department id, an application id or an officer's keyed tag).
    pub key: String,
    /// Start of the window, Unix seconds.
    pub window_start: i64,
    /// Its length in seconds.
    pub window_secs: u64,
    /// Refusals by reason (`too-many-decisions`, or the denial's reason code).
    pub refused: BTreeMap<String, u64>,
}

impl Summary {
    /// How many requests it stands for.
    pub fn total(&self) -> u64 {
        self.refused.values().sum()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    start: i64,
    decisions: u64,
    denials: u64,
    refused: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    windows: HashMap<String, Window>,
    closed: Vec<Summary>,
}

/// Budgets for one kind of caller, and what each caller used.
#[derive(Debug)]
pub struct RateLimits {
    budget: Budget,
    state: Mutex<State>,
    file: Option<PathBuf>,
}

/// The reason a request over its decision budget is counted under.
pub const TOO_MANY_DECISIONS: &str = "too-many-decisions";

impl RateLimits {
    /// Limits with `budget`, kept in memory only.
    pub fn new(budget: Budget) -> Self {
        RateLimits {
            budget: Budget {
                window_secs: budget.window_secs.max(1),
                ..budget
            },
            state: Mutex::default(),
            file: None,
        }
    }

    /// Limits with `budget` whose counts live in `file`: read now if it exists (a file that does not
    /// parse is set aside with a warning: the budgets start over, nothing else is lost).
    pub fn open(budget: Budget, file: &Path) -> Self {
        let mut limits = RateLimits::new(budget);
        if let Ok(bytes) = std::fs::read(file) {
            match serde_json::from_slice::<State>(&bytes) {
                Ok(state) => limits.state = Mutex::new(state),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "the saved rate-limit counts do not parse; starting from zero");
                }
            }
        }
        limits.file = Some(file.to_owned());
        limits
    }

    /// Count a decision for `key` at `now` (Unix seconds): false if its budget is used up, in which
    /// case the request is counted for the window's summary and must be refused without a decision.
    pub fn decision(&self, key: &str, now: i64) -> bool {
        let budget = self.budget;
        self.with_window(key, now, |window| {
            if window.decisions < budget.decisions {
                window.decisions += 1;
                true
            } else {
                *window
                    .refused
                    .entry(TOO_MANY_DECISIONS.to_owned())
                    .or_default() += 1;
                false
            }
        })
    }

    /// Whether a denial of `key` for `reason` may be notarized on its own; if not, it is counted
    /// for the window's summary.
    pub fn denial(&self, key: &str, reason: &str, now: i64) -> bool {
        let budget = self.budget;
        self.with_window(key, now, |window| {
            if window.denials < budget.denials {
                window.denials += 1;
                true
            } else {
                *window.refused.entry(reason.to_owned()).or_default() += 1;
                false
            }
        })
    }

    /// The summaries of windows that have ended with refusals, each handed out once.
    pub fn take_summaries(&self, now: i64) -> Vec<Summary> {
        let window_secs = self.budget.window_secs;
        let mut state = self.lock();
        let State { windows, closed } = &mut *state;
        for (key, window) in windows.iter_mut() {
            if window.start + window_secs as i64 <= now && !window.refused.is_empty() {
                closed.push(Summary {
                    key: key.clone(),
                    window_start: window.start,
                    window_secs,
                    refused: std::mem::take(&mut window.refused),
                });
            }
        }
        windows.retain(|_, w| w.start + window_secs as i64 > now || !w.refused.is_empty());
        std::mem::take(closed)
    }

    /// Put summaries back (they could not be notarized): they are handed out again next time.
    pub fn restore(&self, summaries: Vec<Summary>) {
        self.lock().closed.extend(summaries);
    }

    /// Write the counts to the file, if there is one (atomically: a crash leaves the old file).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&*self.lock()).map_err(std::io::Error::other)?;
        let partial = file.with_extension("partial");
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, file)
    }

    fn with_window<R>(&self, key: &str, now: i64, f: impl FnOnce(&mut Window) -> R) -> R {
        let window_secs = self.budget.window_secs as i64;
        let start = now - now.rem_euclid(window_secs);
        let mut state = self.lock();
        let State { windows, closed } = &mut *state;
        let window = match windows.get_mut(key) {
            Some(window) => window,
            None => windows.entry(key.to_owned()).or_default(),
        };
        if window.start != start {
            let ended = std::mem::replace(
                window,
                Window {
                    start,
                    ..Window::default()
                },
            );
            if !ended.refused.is_empty() {
                closed.push(Summary {
                    key: key.to_owned(),
                    window_start: ended.start,
                    window_secs: window_secs as u64,
                    refused: ended.refused,
                });
            }
        }
        f(window)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Budget = Budget {
        decisions: 5,
        denials: 2,
        window_secs: 60,
    };

    #[test]
    fn a_flood_costs_its_budget_and_one_summary_per_window() {
        let limits = RateLimits::new(BUDGET);
        let t = 6_000;
        let decided: Vec<bool> = (0..8).map(|_| limits.decision("tax-office", t)).collect();
        assert_eq!(decided.iter().filter(|d| **d).count(), 5);
        assert!(
            limits.decision("social-welfare", t),
            "budgets are per caller"
        );
        let notarized: Vec<bool> = (0..5)
            .map(|_| limits.denial("tax-office", "no-grant", t + 1))
            .collect();
        assert_eq!(notarized, [true, true, false, false, false]);
        assert!(
            limits.take_summaries(t + 59).is_empty(),
            "the window is still open"
        );
        let summaries = limits.take_summaries(t + 60);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].key, "tax-office");
        assert_eq!(summaries[0].refused[TOO_MANY_DECISIONS], 3);
        assert_eq!(summaries[0].refused["no-grant"], 3);
        assert_eq!(summaries[0].total(), 6);
        assert!(limits.take_summaries(t + 61).is_empty(), "handed out once");
        assert!(
            limits.decision("tax-office", t + 60),
            "a new window, a new budget"
        );
    }

    #[test]
    fn a_window_that_rolls_over_keeps_its_summary() {
        let limits = RateLimits::new(BUDGET);
        for _ in 0..6 {
            limits.decision("x", 60);
        }
        assert!(limits.decision("x", 120));
        let summaries = limits.take_summaries(121);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].window_start, 60);
    }

    #[test]
    fn the_counts_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rate-limits.json");
        let limits = RateLimits::open(BUDGET, &file);
        for _ in 0..5 {
            assert!(limits.decision("x", 600));
        }
        limits.save().unwrap();
        drop(limits);
        let again = RateLimits::open(BUDGET, &file);
        assert!(!again.decision("x", 601), "the used budget came back");
        std::fs::write(&file, b"not json").unwrap();
        let fresh = RateLimits::open(BUDGET, &file);
        assert!(fresh.decision("x", 601), "an unreadable file starts over");
    }
}
