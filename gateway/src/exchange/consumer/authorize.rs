//! The department's own outbound rules: which of its applications may ask which provider for which
//! datasets and purposes ([`crate::callers::applications`]). A refusal is notarized in this
//! gateway's ledger, with its reason, before it is answered; the provider never hears of it.

use causeway_ledger::entry::{Entry, Kind, Side};

use super::check::Checked;
use super::{ConsumerContext, ConsumerError};
use crate::exchange::envelope;

/// The reason code a refusal by the outbound rules is notarized with.
pub const OUTBOUND_REASON: &str = "outbound-rule";

/// Let `checked` through if the outbound rules allow it; else notarize the refusal.
pub async fn authorize<'a>(
    cx: &ConsumerContext,
    checked: Checked<'a>,
) -> Result<Checked<'a>, ConsumerError> {
    let app = cx
        .callers
        .applications()
        .get(&checked.caller.application)
        .expect("authenticate admits registered applications only");
    let request = &checked.request;
    if app.may_ask(&checked.provider.id, &request.dataset, &request.purpose) {
        return Ok(checked);
    }
    let exchange = envelope::exchange_id();
    let mut entry = Entry::new(Kind::Refused);
    entry.side = Some(Side::Consumer);
    entry.id = Some(exchange.to_string());
    entry.consumer = Some(cx.me.to_string());
    entry.provider = Some(checked.provider.id.to_string());
    entry.dataset = Some(request.dataset.clone());
    entry.purpose = Some(request.purpose.clone());
    entry.legal_basis = Some(request.legal_basis.clone());
    entry.case = (!request.case.is_empty()).then(|| request.case.clone());
    entry.officer = checked
        .caller
        .officer
        .as_ref()
        .map(|o| cx.tag_key.tag("officer", &o.id));
    entry.application = Some(checked.caller.application.to_string());
    entry.decision = Some("deny".into());
    entry.reason = Some(OUTBOUND_REASON.into());
    let appended = cx.ledger.append(entry).await?;
    tracing::info!(application = %checked.caller.application, provider = %checked.provider.id, dataset = %request.dataset, purpose = %request.purpose, log_index = appended.entry.index, "refused by the outbound rules; notarized");
    Err(ConsumerError::Outbound {
        exchange,
        application: checked.caller.application,
        provider: checked.provider.id.clone(),
        dataset: request.dataset.clone(),
        purpose: request.purpose.clone(),
        log_index: appended.entry.index,
    })
}
