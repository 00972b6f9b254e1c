//! Seal the request: an envelope naming this department, the provider and the tagged officer,
//! encoded to its exact bytes and signed (envelopes ready together share one signature).

use std::sync::Arc;

use bytes::Bytes;

use super::check::Checked;
use super::{ConsumerContext, ConsumerError};
use crate::directory::Department;
use crate::exchange::envelope::{self, digest, Envelope};
use crate::transport::observe;

/// After [`seal`]: the signed envelope, ready to send.
pub struct Sealed {
    /// The envelope.
    pub envelope: Envelope,
    /// The provider it is addressed to.
    pub provider: Arc<Department>,
    /// Its exact bytes.
    pub bytes: Bytes,
    /// SHA-256 hex of those bytes.
    pub request_digest: String,
    /// The signature, as the signature header carries it.
    pub signature: String,
}

/// Build, encode and sign the envelope for `checked`.
pub async fn seal(cx: &ConsumerContext, checked: Checked) -> Result<Sealed, ConsumerError> {
    let Checked {
        caller,
        officer_tag,
        request,
        provider,
    } = checked;
    let envelope = Envelope {
        v: envelope::ENVELOPE_VERSION,
        id: envelope::exchange_id(),
        consumer: cx.me.clone(),
        provider: provider.id.clone(),
        dataset: request.dataset,
        params: request.params,
        purpose: request.purpose,
        legal_basis: request.legal_basis,
        case: request.case,
        officer: officer_tag.unwrap_or_default(),
        application: Some(caller.application),
        issued_at: envelope::now_rfc3339(),
        nonce: envelope::nonce(),
    };
    observe::learn_peer(&provider.id);
    observe::learn_exchange(&envelope.id, &envelope.dataset, &envelope.purpose);
    if let Some(application) = &envelope.application {
        observe::learn_application(application.as_str());
    }
    let bytes = envelope
        .encode()
        .map_err(|e| ConsumerError::BadRequest(e.to_string()))?;
    let request_digest = digest(&bytes);
    let bytes = Bytes::from(bytes);
    let signature = cx.signer.sign(&provider.id, bytes.clone()).await;
    Ok(Sealed {
        envelope,
        provider,
        bytes,
        request_digest,
        signature: signature.to_header(),
    })
}
