//! Bytes on the wire: the HTTPS/2 peer port (mTLS), the QUIC peer port, the peer clients, and the
//! plain-HTTP loopback listeners (client API, admin). Transports authenticate the TLS session, bound
//! sizes and times, and hand a request to the service above them; they make no
//! decisions of their own. [`peer::PeerTransport`] lets the consumer side ask a department without
//! knowing which transport carries the request.
//!
//! Wire constants of both peer ports live here and in [`frame`]; docs/PROTOCOL.md specifies them.

pub mod app_client;
pub mod client;
pub mod coalesce;
pub mod fetch;
pub mod frame;
pub mod limits;
pub mod observe;
pub mod openapi;
pub mod peer;
pub mod quic;
pub mod server;

use bytes::Bytes;
use serde::Serialize;

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
/// HTTP header (and QUIC request-frame field) carrying an envelope's signature.
pub const SIGNATURE_HEADER: &str = "causeway-signature";
/// Largest envelope accepted, checked before parsing.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// What a transport sends back: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolResponse {
    /// HTTP status code (QUIC carries the same number in its response header).
    pub status: u16,
    /// JSON body.
    pub body: Bytes,
}

/// A JSON protocol response.
pub fn json_response(status: u16, body: &impl Serialize) -> ProtocolResponse {
    // Sized for an answer with a row and its receipt (~2-3 KB), so that it is written in place.
    let mut bytes = Vec::with_capacity(4096);
    serde_json::to_writer(&mut bytes, body).expect("answers are plain data and serialize");
    ProtocolResponse {
        status,
        body: Bytes::from(bytes),
    }
}

pub use crate::directory::Transport;
