//! Bytes on the wire: the HTTPS/2 peer port (mTLS), the peer client, and the plain-HTTP loopback
//! listeners (client API, admin). Transports authenticate the TLS session, bound sizes and times,
//! and hand an [`crate::exchange::Inbound`] to the pipeline; they make no decisions of their own.

pub mod client;
pub mod server;

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
/// Largest response body a peer may send us.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
