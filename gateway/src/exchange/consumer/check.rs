//! The first stage: the application's request is well formed and names a provider the directory
//! lists.

use super::{ClientRequest, ConsumerContext, ConsumerError};
use crate::directory::Department;
use crate::identity::DeptId;

/// After [`check`]: a well-formed request for a listed provider.
pub struct Checked<'a> {
    /// The application's request.
    pub request: ClientRequest,
    /// The provider, as the directory lists it.
    pub provider: &'a Department,
}

/// Parse and check the request body.
pub fn check<'a>(cx: &'a ConsumerContext, body: &[u8]) -> Result<Checked<'a>, ConsumerError> {
    let request: ClientRequest = serde_json::from_slice(body).map_err(|e| {
        ConsumerError::BadRequest(format!(
            "{e}; expected {{provider, dataset, params, purpose, legal_basis, case, officer}}"
        ))
    })?;
    let Ok(provider_id) = DeptId::new(&request.provider) else {
        return Err(ConsumerError::BadRequest(
            "provider is not a department id".into(),
        ));
    };
    let Some(provider) = cx.directory.department(&provider_id) else {
        return Err(ConsumerError::UnknownProvider(provider_id));
    };
    if request.officer.trim().is_empty() {
        return Err(ConsumerError::BadRequest(
            "officer must name who is asking".into(),
        ));
    }
    Ok(Checked { request, provider })
}
