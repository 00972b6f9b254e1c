//! The OpenAPI 3.1 descriptions of the HTTP APIs a node serves to applications, operators and
//! staff: the client API, the admin endpoints and the oversight dashboard. They are the files in
//! `docs/openapi/`, compiled in, so that `GET /openapi.json` on each listener answers exactly the
//! file of the running version. The peer API between gateways is specified in docs/PROTOCOL.md
//! instead (docs/OPERATIONS.md, "API descriptions (OpenAPI)").

use bytes::Bytes;

use super::ProtocolResponse;

/// Where every listener serves its description.
pub const PATH: &str = "/openapi.json";

/// The client API of a department gateway (`[client] listen`).
pub const CLIENT: &[u8] = include_bytes!("../../../docs/openapi/client.json");

/// The admin endpoints of a gateway or an oversight node (`[admin] listen`).
pub const ADMIN: &[u8] = include_bytes!("../../../docs/openapi/admin.json");

/// The oversight node's dashboard and query API (its `[client] listen`).
pub const OVERSIGHT: &[u8] = include_bytes!("../../../docs/openapi/oversight.json");

/// `document` as the answer to `GET /openapi.json`: `200`, `content-type: application/json` (the
/// document is a JSON object, which is how [`ProtocolResponse`] picks its content type).
pub fn response(document: &'static [u8]) -> ProtocolResponse {
    debug_assert_eq!(document.first(), Some(&b'{'));
    ProtocolResponse {
        status: 200,
        body: Bytes::from_static(document),
    }
}
