//! Keep only what the grant releases, masked as it says. The last step before data may leave.

use std::task::{Context, Poll};

use tower::Service;

use super::{BoxFuture, ExchangeError, Fetched, Shaped};
use crate::identity::TagKey;

/// The innermost service: drops every field not granted and applies masks.
#[derive(Clone)]
pub struct Shape {
    tag_key: TagKey,
}

impl Shape {
    /// Keyed-hash masks use the federation tag key.
    pub fn new(tag_key: TagKey) -> Self {
        Shape { tag_key }
    }

    /// Shape fetched rows; pure, so it is tested without any I/O.
    pub fn shape(&self, fetched: Fetched) -> Result<Shaped, ExchangeError> {
        let decision = &fetched.authorized.decision;
        if !decision.row_filter.is_empty() {
            // Row filters must run in the adapter; until they do, refuse rather than over-release.
            return Err(ExchangeError::Fetch {
                error: causeway_adapters::FetchError::QueryFailed,
                decision: Box::new(decision.clone()),
            });
        }
        let columns: Vec<(String, usize, Option<causeway_policy::Mask>)> = decision
            .fields
            .iter()
            .filter_map(|release| {
                let at = fetched
                    .rows
                    .fields
                    .iter()
                    .position(|f| *f == release.name)?;
                Some((release.name.clone(), at, release.mask))
            })
            .collect();
        let rows = fetched
            .rows
            .rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|(_, at, mask)| {
                        let value = row.get(*at).cloned().unwrap_or(serde_json::Value::Null);
                        match mask {
                            Some(mask) => mask.apply(&value, self.tag_key.as_bytes()),
                            None => value,
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Shaped {
            fields: columns.into_iter().map(|(name, ..)| name).collect(),
            rows,
            authorized: fetched.authorized,
        })
    }
}

impl Service<Fetched> for Shape {
    type Response = Shaped;
    type Error = ExchangeError;
    type Future = BoxFuture<Result<Shaped, ExchangeError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, fetched: Fetched) -> Self::Future {
        let shaped = self.shape(fetched);
        Box::pin(async move { shaped })
    }
}
