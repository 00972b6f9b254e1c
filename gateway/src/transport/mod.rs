//! Bytes on the wire: the HTTPS/2 peer port (mTLS), the QUIC peer port, the peer clients, and the
//! plain-HTTP loopback listeners (client API, admin). Transports authenticate the TLS session, bound
//! sizes and times, and hand an [`crate::exchange::Inbound`] to the pipeline; they make no
//! decisions of their own. [`peer::PeerTransport`] lets the consumer side ask a department without
//! knowing which transport carries the request.
//!
//! Wire constants of both peer ports live here and in [`frame`]; docs/PROTOCOL.md specifies them.

pub mod client;
pub mod coalesce;
pub mod frame;
pub mod peer;
pub mod quic;
pub mod server;

use serde::Deserialize;

/// Paths of the peer API (docs/PROTOCOL.md).
pub mod paths {
    /// Exchange endpoint.
    pub const EXCHANGE: &str = "/causeway/v1/exchange";
    /// Latest signed checkpoint.
    pub const CHECKPOINT: &str = "/causeway/v1/log/checkpoint";
    /// Client API: ask a provider for data.
    pub const REQUESTS: &str = "/v1/requests";
}

/// ALPN protocols of the HTTPS peer port.
pub const HTTPS_ALPN: &[&[u8]] = &[b"h2"];
/// ALPN protocol of the QUIC peer port (docs/PROTOCOL.md, "QUIC peer port").
pub const QUIC_ALPN: &[&[u8]] = &[b"causeway/1"];
/// Largest response body a peer may send us.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A peer transport, as `[peer] prefer` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// HTTP/2 over TLS over TCP (the default).
    #[default]
    Https,
    /// The framed protocol over QUIC.
    Quic,
}

impl Transport {
    /// Both transports.
    pub const ALL: [Transport; 2] = [Transport::Https, Transport::Quic];

    /// The name used in configs and URLs (`https`, `quic`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::Quic => "quic",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
