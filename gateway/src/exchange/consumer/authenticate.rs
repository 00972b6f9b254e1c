//! The first stage: who is asking. The registered application from its client certificate, the
//! officer from a verified bearer token, and the API's hygiene (host, content type); see
//! [`crate::callers`].

use super::{ConsumerContext, ConsumerError};
use crate::callers::Caller;
use crate::transport::server::Call;

/// The authenticated caller of `call`.
pub fn authenticate(cx: &ConsumerContext, call: &Call) -> Result<Caller, ConsumerError> {
    Ok(cx.callers.identify(&call.parts, call.peer_cert.as_ref())?)
}
