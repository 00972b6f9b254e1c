//! Reading the files an operator writes: every TOML error names the file, line and column, and
//! SIGHUP ([`Hangup`]) says to read them again.

use std::path::Path;

/// Turn a toml error into `file:line:col: message`.
pub fn toml_error(path: &Path, text: &str, e: toml::de::Error) -> anyhow::Error {
    let position = e
        .span()
        .map(|span| {
            let (line, col) = line_and_column(text, span.start);
            format!(":{line}:{col}")
        })
        .unwrap_or_default();
    anyhow::anyhow!("{}{position}: {}", path.display(), e.message())
}

/// `file:line:col` of byte `offset` in `text`, for errors found after parsing (a duplicate id, say).
pub fn position(path: &Path, text: &str, offset: usize) -> String {
    let (line, col) = line_and_column(text, offset);
    format!("{}:{line}:{col}", path.display())
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// SIGHUP, the signal that tells a node to read its files again (policies, the CRL). Each reader
/// listens on a stream of its own; where the signal cannot be listened for, it never arrives and
/// the files are still polled.
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Listen for SIGHUP on behalf of `reader` (named in the warning if that is impossible).
    pub fn listen(reader: &str) -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| {
                    tracing::warn!(error = %e, reader, "cannot listen for SIGHUP; the files are still polled")
                })
                .ok();
            Hangup { signal }
        }
        #[cfg(not(unix))]
        {
            let _ = reader;
            Hangup {}
        }
    }

    /// The next SIGHUP (never, if it cannot arrive).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// Why a reader looks at its files again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reread {
    /// Its poll interval came round (look only if the files changed).
    Poll,
    /// SIGHUP: look now.
    Signal,
}

/// When a file reader (policies, CRL, certificate, signing key, directory) looks again: every
/// `every`, and at once on SIGHUP, until the node stops.
pub struct Rereads {
    hangup: Hangup,
    tick: tokio::time::Interval,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Rereads {
    /// Rereads for `reader` (named in a warning if SIGHUP cannot be listened for), at least every
    /// 100 ms, until `stop` turns true.
    pub fn new(
        reader: &str,
        every: std::time::Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Rereads {
        let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Rereads {
            hangup: Hangup::listen(reader),
            tick,
            stop,
        }
    }

    /// The next time to look, or `None` once the node stops.
    pub async fn next(&mut self) -> Option<Reread> {
        loop {
            let why = tokio::select! {
                _ = self.stop.changed() => {
                    if *self.stop.borrow() { return None; }
                    continue;
                }
                _ = self.tick.tick() => Reread::Poll,
                _ = self.hangup.recv() => Reread::Signal,
            };
            if *self.stop.borrow() {
                return None;
            }
            return Some(why);
        }
    }
}
