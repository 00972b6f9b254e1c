//! Observability of the pipeline: one [`ObserveLayer`] above each stage opens that stage's span and
//! records the stage's metrics from its typed result. It never changes a request or a result.
//!
//! Stages nest as the layers do (`authenticate` contains `verify_envelope`, which contains
//! `notarize`, and so on), so a trace shows each layer's own time and where an exchange stopped.
//! Span fields are ids, names and codes only (no parameters, officers or subjects).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use causeway_policy::Decision;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::{
    Authenticated, Authorized, BoxFuture, Canonicalized, ExchangeError, Fetched, Inbound,
    Notarized, Outcome, Shaped,
};
use crate::telemetry::Metrics;
use crate::transport::observe;

/// What one pipeline stage shows: its span, and the metrics of its result.
pub trait Stage: Clone + Send + Sync + 'static {
    /// What enters the stage.
    type Request: Send + 'static;
    /// What the stage (with everything below it) returns.
    type Response: Send + 'static;
    /// What `finished` needs to know of the request, which moves on down the pipeline.
    type Summary: Send + 'static;
    /// The stage's span, and the summary.
    fn enter(&self, request: &Self::Request) -> (Span, Self::Summary);
    /// Record the result on `span` and in `metrics`.
    fn finished(
        &self,
        metrics: &Metrics,
        span: &Span,
        summary: Self::Summary,
        result: &Result<Self::Response, ExchangeError>,
        elapsed: Duration,
    );
}

/// Adds [`Observe`] for one stage.
#[derive(Clone)]
pub struct ObserveLayer<St> {
    stage: St,
    metrics: Arc<Metrics>,
}

impl<St> ObserveLayer<St> {
    /// Observe `stage`, recording into `metrics`.
    pub fn new(stage: St, metrics: &Arc<Metrics>) -> Self {
        ObserveLayer {
            stage,
            metrics: metrics.clone(),
        }
    }
}

impl<S, St: Clone> Layer<S> for ObserveLayer<St> {
    type Service = Observe<S, St>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            stage: self.stage.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Runs the inner service in the stage's span and records its result.
#[derive(Clone)]
pub struct Observe<S, St> {
    inner: S,
    stage: St,
    metrics: Arc<Metrics>,
}

impl<S, St> Service<St::Request> for Observe<S, St>
where
    St: Stage,
    S: Service<St::Request, Response = St::Response, Error = ExchangeError> + Send + 'static,
    S::Future: Send,
{
    type Response = St::Response;
    type Error = ExchangeError;
    type Future = BoxFuture<Result<St::Response, ExchangeError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Calls the stage here rather than on a clone inside the future: otherwise every request
    /// would clone all the services below each of the six stages.
    fn call(&mut self, request: St::Request) -> Self::Future {
        let (span, summary) = self.stage.enter(&request);
        let started = Instant::now();
        let inner = span.in_scope(|| self.inner.call(request));
        let stage = self.stage.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = inner.instrument(span.clone()).await;
            stage.finished(&metrics, &span, summary, &result, started.elapsed());
            result
        })
    }
}

fn outcome_code(result: &Result<Notarized, ExchangeError>) -> &'static str {
    match result {
        Ok(notarized) => match &notarized.outcome {
            Outcome::Released(_) => "ok",
            Outcome::Denied(decision) => decision.reason.code.as_str(),
            Outcome::Failed(error) => error.code(),
        },
        Err(e) => super::rescue::error_code(e).1,
    }
}

/// Above [`super::authenticate`]: the whole provider exchange; counts it by peer and outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuthenticateStage;

impl Stage for AuthenticateStage {
    type Request = Inbound;
    type Response = Notarized;
    type Summary = ();

    fn enter(&self, _: &Inbound) -> (Span, ()) {
        (tracing::info_span!("authenticate", outcome = Empty), ())
    }

    fn finished(
        &self,
        metrics: &Metrics,
        span: &Span,
        _: (),
        result: &Result<Notarized, ExchangeError>,
        elapsed: Duration,
    ) {
        let outcome = outcome_code(result);
        span.record("outcome", outcome);
        observe::learn_outcome(outcome);
        let peer = observe::current_peer();
        let peer = peer.as_ref().map_or("unknown", |p| p.as_str());
        metrics.exchanges.inc(&["provider", peer, outcome]);
        metrics
            .exchange_seconds
            .observe(&["provider", peer], elapsed.as_secs_f64());
    }
}

/// Above [`super::verify`]: the authenticated peer is known from here on.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyStage;

impl Stage for VerifyStage {
    type Request = Authenticated;
    type Response = Notarized;
    type Summary = ();

    fn enter(&self, request: &Authenticated) -> (Span, ()) {
        observe::learn_peer(&request.peer);
        (
            tracing::info_span!("verify_envelope", peer = %request.peer),
            (),
        )
    }

    fn finished(
        &self,
        _: &Metrics,
        _: &Span,
        _: (),
        _: &Result<Notarized, ExchangeError>,
        _: Duration,
    ) {
    }
}

/// Above [`super::notarize`]: the verified exchange's id, dataset and purpose are known.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotarizeStage;

impl Stage for NotarizeStage {
    type Request = Canonicalized;
    type Response = Notarized;
    type Summary = ();

    fn enter(&self, request: &Canonicalized) -> (Span, ()) {
        let envelope = &request.verified.envelope;
        observe::learn_exchange(&envelope.id, &envelope.dataset, &envelope.purpose);
        if let Some(application) = &envelope.application {
            observe::learn_application(application.as_str());
        }
        (
            tracing::info_span!(
                "notarize",
                exchange = %envelope.id,
                dataset = envelope.dataset.as_str(),
                log_index = Empty,
            ),
            (),
        )
    }

    fn finished(
        &self,
        _: &Metrics,
        span: &Span,
        _: (),
        result: &Result<Notarized, ExchangeError>,
        _: Duration,
    ) {
        if let Ok(notarized) = result {
            span.record("log_index", notarized.receipt.index);
            observe::learn_log_index(notarized.receipt.index);
        }
    }
}

/// Above [`super::authorize`]: counts policy decisions by reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuthorizeStage;

impl Stage for AuthorizeStage {
    type Request = Canonicalized;
    type Response = Shaped;
    type Summary = ();

    fn enter(&self, _: &Canonicalized) -> (Span, ()) {
        (
            tracing::info_span!("authorize", decision = Empty, reason = Empty),
            (),
        )
    }

    fn finished(
        &self,
        metrics: &Metrics,
        span: &Span,
        _: (),
        result: &Result<Shaped, ExchangeError>,
        _: Duration,
    ) {
        let decision: &Decision = match result {
            Ok(shaped) => &shaped.authorized.decision,
            Err(ExchangeError::Denied(decision)) => decision,
            Err(ExchangeError::Fetch { decision, .. }) => decision,
            Err(_) => return,
        };
        let allowed = if decision.allowed { "allow" } else { "deny" };
        let reason = decision.reason.code.as_str();
        span.record("decision", allowed);
        span.record("reason", reason);
        observe::learn_decision(decision.allowed);
        metrics.decisions.inc(&[allowed, reason]);
    }
}

/// Above [`super::fetch`]: times the dataset query (with shaping) and counts adapter errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchStage;

impl Stage for FetchStage {
    type Request = Authorized;
    type Response = Shaped;
    /// The dataset name.
    type Summary = String;

    fn enter(&self, request: &Authorized) -> (Span, String) {
        let dataset = request.verified.envelope.dataset.clone();
        (
            tracing::info_span!("fetch", dataset = dataset.as_str(), code = Empty),
            dataset,
        )
    }

    fn finished(
        &self,
        metrics: &Metrics,
        span: &Span,
        dataset: String,
        result: &Result<Shaped, ExchangeError>,
        elapsed: Duration,
    ) {
        metrics
            .fetch_seconds
            .observe(&[&dataset], elapsed.as_secs_f64());
        if let Err(ExchangeError::Fetch { error, .. }) = result {
            span.record("code", error.code());
            metrics.fetch_errors.inc(&[&dataset, error.code()]);
        }
    }
}

/// Above [`super::shape`]: how many rows leave.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShapeStage;

impl Stage for ShapeStage {
    type Request = Fetched;
    type Response = Shaped;
    type Summary = ();

    fn enter(&self, request: &Fetched) -> (Span, ()) {
        (
            tracing::info_span!("shape", fetched = request.rows.rows.len(), released = Empty),
            (),
        )
    }

    fn finished(
        &self,
        _: &Metrics,
        span: &Span,
        _: (),
        result: &Result<Shaped, ExchangeError>,
        _: Duration,
    ) {
        if let Ok(shaped) = result {
            span.record("released", shaped.rows.len());
        }
    }
}
