//! What the database adapters' tests share: limits that never get in the way, parameters from
//! pairs, and the `residents` lookup every one of them defines.

use std::collections::BTreeMap;
use std::time::Duration;

use causeway_adapters::{Catalog, Limits, Rows};
use serde_json::{json, Value};

/// Limits no test query comes near.
pub const GENEROUS: Limits = Limits {
    max_rows: 1_000_000,
    timeout: Duration::from_secs(30),
};

/// Query parameters from `(name, value)` pairs.
pub fn params(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The `residents` dataset's rows for `national_id`.
pub async fn resident(catalog: &Catalog, national_id: &str) -> Rows {
    catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!(national_id))]),
            GENEROUS,
        )
        .await
        .expect("fetch")
}
