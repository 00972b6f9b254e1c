//! The department's own outbound rules: which of its applications may ask which provider for which
//! datasets and purposes ([`crate::callers::applications`]), and how much each application and
//! officer may ask per window ([`crate::rate_limits`]). A refusal by the rules is notarized in this
//! gateway's ledger, with its reason, before it is answered; the provider never hears of it. Past
//! an application's budget of refusals, further ones are only counted and notarized together
//! ([`crate::exchange::throttle`]).

use causeway_ledger::entry::{Entry, Kind, Side};

use super::check::Checked;
use super::{ConsumerContext, ConsumerError};
use crate::exchange::envelope;
use crate::transport::observe;

/// The reason code a refusal by the outbound rules is notarized with.
pub const OUTBOUND_REASON: &str = "outbound-rule";

/// Let `checked` through if the outbound rules allow it; else notarize the refusal.
pub async fn authorize(cx: &ConsumerContext, checked: Checked) -> Result<Checked, ConsumerError> {
    let app = cx
        .callers
        .applications()
        .get(&checked.caller.application)
        .expect("authenticate admits registered applications only");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let app_key = checked.caller.application.as_str();
    if !cx.rate_limits.applications.decision(app_key, now) {
        return Err(ConsumerError::RateLimited("application"));
    }
    if let Some(tag) = &checked.officer_tag {
        if !cx.rate_limits.officers.decision(tag, now) {
            return Err(ConsumerError::RateLimited("officer"));
        }
    }
    let request = &checked.request;
    if app.may_ask(&checked.provider.id, &request.dataset, &request.purpose) {
        return Ok(checked);
    }
    if !cx
        .rate_limits
        .applications
        .denial(app_key, OUTBOUND_REASON, now)
    {
        return Err(ConsumerError::TooManyRefusals);
    }
    let exchange = envelope::exchange_id();
    let mut entry = Entry::new(Kind::Refused);
    entry.side = Some(Side::Consumer);
    entry.id = Some(exchange.to_string());
    entry.consumer = Some(cx.me.to_string());
    entry.provider = Some(checked.provider.id.to_string());
    entry.dataset = Some(request.dataset.clone());
    entry.purpose = Some(request.purpose.clone());
    // A code and a short reference, or empty: `check` refused free text before this point.
    entry.legal_basis = Some(request.legal_basis.clone());
    entry.case = (!request.case.is_empty()).then(|| request.case.clone());
    entry.officer = checked.officer_tag.clone();
    entry.application = Some(checked.caller.application.to_string());
    entry.decision = Some("deny".into());
    entry.reason = Some(OUTBOUND_REASON.into());
    let appended = cx.ledger.append(entry).await?;
    // The access-log line of the client request says the rest (crate::transport::observe).
    observe::learn_peer(&checked.provider.id);
    observe::learn_exchange(&exchange, &request.dataset, &request.purpose);
    observe::learn_application(checked.caller.application.as_str());
    observe::learn_decision(false);
    observe::learn_log_index(appended.entry.index);
    Err(ConsumerError::Outbound {
        exchange,
        application: checked.caller.application,
        provider: checked.provider.id.clone(),
        dataset: request.dataset.clone(),
        purpose: request.purpose.clone(),
        log_index: appended.entry.index,
    })
}
