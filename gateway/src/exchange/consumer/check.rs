//! The application's request is well formed, holds no control or bidirectional-control characters,
//! cites a case reference and a legal-basis code rather than free text, names a provider the
//! directory lists, and its officer has the role its purpose requires.
//!
//! The case and the legal basis are copied into this gateway's ledger, the provider's and every
//! oversight replica, for ever; a sentence there ("Applicant D000042 ..., HIV+ status review")
//! could never be erased. So they are checked here, before the outbound rules can notarize a
//! refusal and before anything is signed or sent, against the federation's default forms
//! ([`causeway_policy::references`]). The provider checks the case again against the pattern it
//! declares for the purpose, which may be narrower.

use std::sync::Arc;

use super::{ClientRequest, ConsumerContext, ConsumerError};
use crate::callers::{is_forbidden_char, Caller};
use crate::directory::Department;
use crate::identity::DeptId;

/// After [`check`]: a well-formed request for a listed provider, from an authenticated caller.
pub struct Checked {
    /// Who asks.
    pub caller: Caller,
    /// The officer's keyed tag, if the caller acts for one: all that leaves this gateway of them.
    pub officer_tag: Option<String>,
    /// The application's request.
    pub request: ClientRequest,
    /// The provider, as the directory lists it.
    pub provider: Arc<Department>,
}

/// Parse and check the request body.
pub fn check(cx: &ConsumerContext, caller: Caller, body: &[u8]) -> Result<Checked, ConsumerError> {
    let request: ClientRequest = serde_json::from_slice(body).map_err(|e| {
        ConsumerError::BadRequest(format!(
            "{e}; expected {{provider, dataset, params, purpose, legal_basis, case}}"
        ))
    })?;
    if request.officer.is_some() {
        return Err(ConsumerError::BadRequest(
            "`officer` is not accepted in the body: the officer is proven by the identity provider's token in `Authorization: Bearer`".into(),
        ));
    }
    let texts = [
        ("provider", request.provider.as_str()),
        ("dataset", &request.dataset),
        ("purpose", &request.purpose),
        ("legal_basis", &request.legal_basis),
        ("case", &request.case),
    ];
    if let Some((field, _)) = texts
        .iter()
        .find(|(_, text)| text.chars().any(is_forbidden_char))
    {
        return Err(ConsumerError::ControlCharacters((*field).to_owned()));
    }
    if let Some(name) = request.params.iter().find_map(|(name, value)| {
        let forbidden = name.chars().any(is_forbidden_char)
            || value
                .as_str()
                .is_some_and(|v| v.chars().any(is_forbidden_char));
        forbidden.then(|| {
            format!(
                "params.{}",
                name.chars()
                    .filter(|c| !is_forbidden_char(*c))
                    .take(64)
                    .collect::<String>()
            )
        })
    }) {
        return Err(ConsumerError::ControlCharacters(name));
    }
    causeway_policy::references::check(&request.case, &request.legal_basis, None)?;
    let Ok(provider_id) = DeptId::new(&request.provider) else {
        return Err(ConsumerError::BadRequest(
            "provider is not a department id".into(),
        ));
    };
    let Some(provider) = cx.directory.current().department(&provider_id).cloned() else {
        return Err(ConsumerError::UnknownProvider(provider_id));
    };
    if let (Some(officer), Some(tokens)) = (&caller.officer, cx.callers.officers()) {
        tokens
            .check_role(officer, &request.purpose)
            .map_err(crate::callers::CallerError::from)?;
    }
    let officer_tag = caller
        .officer
        .as_ref()
        .map(|o| cx.tag_key.tag("officer", &o.id));
    Ok(Checked {
        caller,
        officer_tag,
        request,
        provider,
    })
}
