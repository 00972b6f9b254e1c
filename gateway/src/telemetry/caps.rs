//! Caps on what libraries may log, whatever `RUST_LOG` asks for (docs/OPERATIONS.md, "Logs").
//!
//! Causeway's own crates log no parameters, rows, officers or tokens, at any level. The libraries
//! under them do, below warnings:
//!
//! - `tokio_postgres` logs every statement's parameters at `debug` (`executing statement s0 with
//!   parameters: [PgParam(Text("D000042"))]`), its query text too, and at `info` the server's
//!   NOTICE messages, which a database function may fill with values;
//! - `mysql_async`, built with its `tracing` feature (not ours today, but any crate in the tree may
//!   turn it on), records every parameter and the SQL text on its spans at `debug`;
//! - `h2` prints a peer's `te` header value at `trace` and GOAWAY debug data at `debug`;
//!   `quinn_proto` prints control frames (CONNECTION_CLOSE reasons among them) at `trace`;
//!   `rustls` prints whole handshake messages (server names, certificates, tickets) at `trace`.
//!
//! So every target outside Causeway's own crates is capped at [`LIBRARY_CAP`]: the drivers above,
//! and any library added later, private by construction rather than by review. The caps are a
//! filter of their own beside `RUST_LOG`'s, so no directive lifts them, not even one more specific
//! than a cap (`RUST_LOG=tokio_postgres::query=trace`); only [`UNSAFE_DEBUG_LOGS`] does, and only
//! for log lines. Spans and events exported over OTLP are Causeway's own at `info` and above,
//! whatever the switch says ([`exported`]).
//!
//! The filters are built once, when the subscriber is installed. With the default `RUST_LOG` the
//! most verbose level anything may log stays `info`, so a driver's `log_enabled!(Debug)` still
//! answers no before any filter runs; below that, a capped line is dropped before it is formatted.

use tracing::Level;
use tracing_subscriber::filter::combinator::And;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets};

/// The environment variable that lifts the caps on library log lines: `1` (or `true`) to debug a
/// driver or protocol library, knowing its lines may then carry personal data. Logged as a
/// warning at start.
pub const UNSAFE_DEBUG_LOGS: &str = "CAUSEWAY_UNSAFE_DEBUG_LOGS";

/// The target prefix of Causeway's own crates (`causeway`, `causeway_adapters`, `causeway_ledger`,
/// `causeway_policy`): a `tracing` target matches every target it is a prefix of.
pub const OWN_TARGETS: &str = "causeway";

/// The most any other target may log while the caps hold.
pub const LIBRARY_CAP: LevelFilter = LevelFilter::WARN;

/// What the warning at start says when [`UNSAFE_DEBUG_LOGS`] is set.
pub const UNSAFE_WARNING: &str = "CAUSEWAY_UNSAFE_DEBUG_LOGS is set: library log lines are not capped, so these logs may contain personal data (query parameters, rows, headers); treat them as personal data and unset the variable when the debugging is done";

/// Whether library log lines are capped, as [`UNSAFE_DEBUG_LOGS`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LibraryLogs {
    /// Capped at [`LIBRARY_CAP`]; the default.
    #[default]
    Capped,
    /// As `RUST_LOG` says: the switch is on, and log lines may carry personal data.
    Uncapped,
}

impl LibraryLogs {
    /// Read the switch as `env` reads it (`std::env::var` in production; a map in tests): `1` or
    /// `true` lifts the caps; anything else, or nothing, keeps them.
    pub fn resolve(env: impl Fn(&str) -> Option<String>) -> LibraryLogs {
        match env(UNSAFE_DEBUG_LOGS) {
            Some(v) if v.trim() == "1" || v.trim().eq_ignore_ascii_case("true") => {
                LibraryLogs::Uncapped
            }
            _ => LibraryLogs::Capped,
        }
    }

    /// [`LibraryLogs::resolve`] against the process environment.
    pub fn from_env() -> LibraryLogs {
        Self::resolve(|name| std::env::var(name).ok())
    }

    /// The filter log lines pass: `rust_log`, and the caps unless they are lifted.
    pub fn filter<S>(self, rust_log: EnvFilter) -> And<EnvFilter, Targets, S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let ceiling = match self {
            LibraryLogs::Capped => Targets::new()
                .with_default(LIBRARY_CAP)
                .with_target(OWN_TARGETS, LevelFilter::TRACE),
            LibraryLogs::Uncapped => Targets::new().with_default(LevelFilter::TRACE),
        };
        rust_log.and(ceiling)
    }
}

/// The spans and events exported over OTLP: Causeway's own at `info` and above, no library's at
/// any level, whatever `RUST_LOG` and [`UNSAFE_DEBUG_LOGS`] say.
pub fn exported() -> Targets {
    Targets::new().with_target(OWN_TARGETS, Level::INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a subscriber filtered by `rust_log` and `logs` prints of one line per target and level.
    fn printed(rust_log: &str, logs: LibraryLogs) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(logs.filter(EnvFilter::new(rust_log))),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tokio_postgres::query", "parameters: D000042");
            tracing::info!(target: "tokio_postgres::connection", "NOTICE: D000043");
            tracing::trace!(target: "h2::frame::headers", "te: D000044");
            tracing::warn!(target: "rustls::conn", "sending fatal alert");
            tracing::trace!(target: "causeway::exchange", "own trace");
            tracing::debug!(target: "causeway_adapters", "own debug");
        });
        let printed = lines.0.lock().unwrap().clone();
        String::from_utf8(printed).unwrap()
    }

    #[test]
    fn libraries_log_warnings_at_most_whatever_rust_log_says() {
        for rust_log in [
            "trace",
            "tokio_postgres::query=trace,tokio_postgres=trace,h2=trace,trace",
        ] {
            let out = printed(rust_log, LibraryLogs::Capped);
            for hidden in ["D000042", "D000043", "D000044"] {
                assert!(!out.contains(hidden), "{rust_log}: {out}");
            }
            for shown in ["sending fatal alert", "own trace", "own debug"] {
                assert!(out.contains(shown), "{rust_log}: {out}");
            }
        }
        // The caps never widen what RUST_LOG asks for.
        let out = printed("warn", LibraryLogs::Capped);
        assert!(
            out.contains("fatal alert") && !out.contains("own debug"),
            "{out}"
        );
    }

    #[test]
    fn the_switch_lifts_the_caps() {
        let out = printed("trace", LibraryLogs::Uncapped);
        for shown in ["D000042", "D000043", "D000044", "own trace"] {
            assert!(out.contains(shown), "{out}");
        }
        // RUST_LOG still decides.
        assert!(!printed("warn", LibraryLogs::Uncapped).contains("D0000"));
    }

    #[test]
    fn the_switch_is_on_only_when_asked_for() {
        let with = |value: &'static str| LibraryLogs::resolve(move |_| Some(value.to_owned()));
        assert_eq!(LibraryLogs::resolve(|_| None), LibraryLogs::Capped);
        for on in ["1", "true", "TRUE", " 1 "] {
            assert_eq!(with(on), LibraryLogs::Uncapped, "{on:?}");
        }
        for off in ["", "0", "false", "no", "yes please"] {
            assert_eq!(with(off), LibraryLogs::Capped, "{off:?}");
        }
    }

    #[test]
    fn no_library_target_is_exported_at_any_level() {
        let exported = exported();
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            for library in [
                "tokio_postgres::query",
                "mysql_async",
                "h2",
                "rustls",
                "quinn_proto",
                "hyper",
            ] {
                assert!(!exported.would_enable(library, &level), "{library} {level}");
            }
        }
        for own in [
            "causeway::exchange",
            "causeway_adapters",
            "causeway_ledger::env",
        ] {
            assert!(exported.would_enable(own, &Level::INFO), "{own}");
            assert!(!exported.would_enable(own, &Level::DEBUG), "{own}");
        }
    }
}
