//! How many connections a listener holds open, and the guards that give a place back when a
//! connection ends, however it ends (closed by either side, timed out, its task aborted).
//!
//! A TCP listener ([`super::server::serve`]) admits a connection only while it holds fewer than
//! [`ListenerLimits::max_connections`] overall and fewer than
//! [`ListenerLimits::max_connections_per_address`] from the same IP address; anything more is
//! closed at once, before TLS. The QUIC peer port ([`super::quic`]) bounds its connections and
//! its handshakes in progress with [`QuicLoad`]. Both keep counts for `/metrics`
//! (docs/OPERATIONS.md, "Metrics") and docs/PROTOCOL.md ("Limits") says what a client sees.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::identity::revocation::Revocation;

/// What one TCP listener allows: `[client]`, `[peer]` and `[admin]` in `causeway.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Largest request body, in bytes (413 above).
    pub max_body: usize,
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_address: usize,
    /// A connection with no request in flight for this long is closed gracefully (HTTP/2 GOAWAY;
    /// HTTP/1.1 closed). Only requests count: PINGs and other frames do not keep it open.
    pub idle_timeout: Duration,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds [`ListenerLimits::max_connections`] already.
    Overall,
    /// The remote address holds [`ListenerLimits::max_connections_per_address`] already.
    PerAddress,
}

impl Refusal {
    /// The `reason` label of `causeway_connections_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Overall => "overall",
            Refusal::PerAddress => "per-address",
        }
    }
}

/// The connections one TCP listener holds open against its [`ListenerLimits`], and what it turned
/// away or closed for idleness. One lock per connection opened or closed; nothing per request.
#[derive(Debug)]
pub struct Connections {
    name: &'static str,
    limits: ListenerLimits,
    open: Mutex<Open>,
    refused_overall: AtomicU64,
    refused_per_address: AtomicU64,
    idle_closed: AtomicU64,
    /// On a peer listener: the revocation state whose refusals close open connections.
    revocation: Option<Arc<Revocation>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Connections {
    /// The connections of the listener called `name` (the `listener` label in metrics and logs).
    pub fn new(name: &'static str, limits: ListenerLimits) -> Arc<Connections> {
        Self::build(name, limits, None)
    }

    /// The connections of the peer listener called `name`: besides the limits, each one is
    /// closed as soon as `revocation` refuses its peer's certificate (a CRL revoking it is
    /// applied, or the CRL goes stale under `fail-closed`).
    pub fn closing_refused_peers(
        name: &'static str,
        limits: ListenerLimits,
        revocation: Arc<Revocation>,
    ) -> Arc<Connections> {
        Self::build(name, limits, Some(revocation))
    }

    fn build(
        name: &'static str,
        limits: ListenerLimits,
        revocation: Option<Arc<Revocation>>,
    ) -> Arc<Connections> {
        Arc::new(Connections {
            name,
            limits,
            open: Mutex::default(),
            refused_overall: AtomicU64::new(0),
            refused_per_address: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            revocation,
        })
    }

    /// The revocation state that closes this listener's connections, on a peer listener.
    pub fn revocation(&self) -> Option<&Arc<Revocation>> {
        self.revocation.as_ref()
    }

    /// The listener's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The listener's limits.
    pub fn limits(&self) -> &ListenerLimits {
        &self.limits
    }

    /// Take a place for a connection from `address`, or say why there is none (and count it).
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let refused = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let from_address = open.by_address.get(&address).copied().unwrap_or(0);
            if open.total >= self.limits.max_connections {
                Some(Refusal::Overall)
            } else if from_address >= self.limits.max_connections_per_address {
                Some(Refusal::PerAddress)
            } else {
                open.total += 1;
                open.by_address.insert(address, from_address + 1);
                None
            }
        };
        match refused {
            None => Ok(ConnectionPermit {
                connections: self.clone(),
                address,
            }),
            Some(refusal) => {
                let counter = match refusal {
                    Refusal::Overall => &self.refused_overall,
                    Refusal::PerAddress => &self.refused_per_address,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(refusal)
            }
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Connections refused for this reason since the listener started.
    pub fn refused(&self, reason: Refusal) -> u64 {
        match reason {
            Refusal::Overall => self.refused_overall.load(Ordering::Relaxed),
            Refusal::PerAddress => self.refused_per_address.load(Ordering::Relaxed),
        }
    }

    /// Connections closed because no request came for [`ListenerLimits::idle_timeout`].
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Ordering::Relaxed)
    }

    pub(crate) fn count_idle_close(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// One admitted connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct ConnectionPermit {
    connections: Arc<Connections>,
    address: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// The QUIC peer port's connections and handshakes in progress, and what it did about load: the
/// accept loop alone admits (so a check and the count it guards cannot race), and a [`Held`]
/// guard gives each place back.
#[derive(Debug, Default)]
pub struct QuicLoad {
    handshakes: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    retries: AtomicU64,
    refused_handshakes: AtomicU64,
    refused_overall: AtomicU64,
    idle_closed: AtomicU64,
}

impl QuicLoad {
    /// Handshakes in progress now.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Connections open now (handshaking or established).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Retry packets sent: clients asked to prove their address because many handshakes were in
    /// progress.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Connection attempts refused because `quic_max_handshakes` were in progress.
    pub fn refused_handshakes(&self) -> u64 {
        self.refused_handshakes.load(Ordering::Relaxed)
    }

    /// Connection attempts refused because `quic_max_connections` were open.
    pub fn refused_overall(&self) -> u64 {
        self.refused_overall.load(Ordering::Relaxed)
    }

    /// Connections closed because no stream came for the idle timeout.
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Ordering::Relaxed)
    }

    pub(crate) fn hold_handshake(&self) -> Held {
        Held::new(&self.handshakes)
    }

    pub(crate) fn hold_connection(&self) -> Held {
        Held::new(&self.open)
    }

    pub(crate) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_refused(&self, handshakes: bool) {
        let counter = if handshakes {
            &self.refused_handshakes
        } else {
            &self.refused_overall
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_idle_close(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// One unit of a shared count, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held(Arc<AtomicUsize>);

impl Held {
    fn new(count: &Arc<AtomicUsize>) -> Held {
        count.fetch_add(1, Ordering::Relaxed);
        Held(count.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(overall: usize, per_address: usize) -> ListenerLimits {
        ListenerLimits {
            max_body: 1024,
            max_connections: overall,
            max_connections_per_address: per_address,
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn admits_up_to_each_limit_and_gives_places_back_on_drop() {
        let connections = Connections::new("test", limits(3, 2));
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            "::1".parse().unwrap(),
        );
        let a1 = connections.admit(a).unwrap();
        let a2 = connections.admit(a).unwrap();
        assert_eq!(connections.admit(a).unwrap_err(), Refusal::PerAddress);
        let b1 = connections.admit(b).unwrap();
        assert_eq!(connections.admit(c).unwrap_err(), Refusal::Overall);
        assert_eq!(connections.admit(b).unwrap_err(), Refusal::Overall);
        assert_eq!(connections.open(), 3);
        assert_eq!(connections.refused(Refusal::PerAddress), 1);
        assert_eq!(connections.refused(Refusal::Overall), 2);

        drop(a1);
        assert_eq!(connections.open(), 2);
        let c1 = connections.admit(c).unwrap();
        assert_eq!(connections.admit(a).unwrap_err(), Refusal::Overall);
        drop((a2, b1, c1));
        assert_eq!(connections.open(), 0);
        assert!(connections.open.lock().unwrap().by_address.is_empty());
        let _again = connections.admit(a).unwrap();
        let _again2 = connections.admit(a).unwrap();
    }

    #[test]
    fn held_counts_are_given_back() {
        let load = QuicLoad::default();
        let h = load.hold_handshake();
        let c = load.hold_connection();
        assert_eq!((load.handshakes(), load.open()), (1, 1));
        drop(h);
        assert_eq!((load.handshakes(), load.open()), (0, 1));
        drop(c);
        assert_eq!(load.open(), 0);
    }
}
