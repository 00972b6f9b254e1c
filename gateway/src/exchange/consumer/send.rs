//! Send the sealed envelope to the provider and read its whole (bounded) answer.

use bytes::Bytes;

use super::seal::Sealed;
use super::{ConsumerContext, ConsumerError, ProviderAnswer};
use crate::transport::observe;
use crate::transport::peer::PeerRequest;

/// After [`send`]: the provider's status and body, as it sent them.
pub struct Sent {
    /// The provider's status.
    pub status: u16,
    /// The provider's body.
    pub body: Bytes,
}

/// Ask the provider, within the context's timeout.
pub async fn send(cx: &ConsumerContext, sealed: &Sealed) -> Result<Sent, ConsumerError> {
    let request = PeerRequest::exchange(sealed.signature.clone(), sealed.bytes.clone());
    let (status, body) =
        observe::send_to_peer(&cx.peers, &sealed.provider, request, cx.timeout).await?;
    Ok(Sent { status, body })
}

impl Sent {
    /// The provider's answer, parsed (its receipt borrowed from the body, byte for byte).
    pub fn answer(&self, sealed: &Sealed) -> Result<ProviderAnswer<'_>, ConsumerError> {
        ProviderAnswer::parse(&self.body).map_err(|_| ConsumerError::BadProviderAnswer {
            provider: sealed.provider.id.clone(),
            status: self.status,
        })
    }
}
