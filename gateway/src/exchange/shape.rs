//! Keep only what the grant releases, masked as it says. The last step before data may leave.
//!
//! In order: rows that fail the grant's row filter are dropped (every predicate must hold), then
//! every field not granted is dropped and masks are applied. Row filters are typed predicates
//! (column, operator, literal) evaluated here against the rows' typed JSON values, never SQL text.

use std::cmp::Ordering;
use std::task::{Context, Poll};

use causeway_policy::{PseudonymKey, RowOp, RowPredicate};
use serde_json::Value;
use tower::Service;

use super::{BoxFuture, ExchangeError, Fetched, Shaped};

/// The innermost service: drops rows outside the row filter, drops every field not granted and
/// applies masks.
#[derive(Clone)]
pub struct Shape {
    pseudonyms: PseudonymKey,
}

impl Shape {
    /// `hash` masks make pairwise pseudonyms under this provider's own key.
    pub fn new(pseudonyms: PseudonymKey) -> Self {
        Shape { pseudonyms }
    }

    /// Shape fetched rows; pure, so it is tested without any I/O.
    ///
    /// A row filter naming a column the rows do not have fails closed (nothing is released, the
    /// exchange is recorded as `query-failed`): the policy and the dataset disagree, and guessing
    /// could release rows the agreement excludes.
    pub fn shape(&self, fetched: Fetched) -> Result<Shaped, ExchangeError> {
        let decision = &fetched.authorized.decision;
        let mut filter = Vec::with_capacity(decision.row_filter.len());
        for predicate in &decision.row_filter {
            match fetched
                .rows
                .fields
                .iter()
                .position(|f| *f == predicate.column)
            {
                Some(at) => filter.push((at, predicate)),
                None => {
                    tracing::warn!(
                        column = %predicate.column,
                        dataset = %fetched.authorized.verified.envelope.dataset,
                        rule = ?decision.rule.as_ref().map(|r| format!("{}:{}", r.file, r.line)),
                        "row filter names a column the dataset does not return; releasing nothing"
                    );
                    return Err(ExchangeError::Fetch {
                        error: causeway_adapters::FetchError::QueryFailed,
                        decision: Box::new(decision.clone()),
                    });
                }
            }
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
        let consumer = fetched.authorized.verified.envelope.consumer.as_str();
        let rows = fetched
            .rows
            .rows
            .iter()
            .filter(|row| {
                filter
                    .iter()
                    .all(|(at, predicate)| holds(predicate, row.get(*at).unwrap_or(&Value::Null)))
            })
            .map(|row| {
                columns
                    .iter()
                    .map(|(field, at, mask)| {
                        let value = row.get(*at).cloned().unwrap_or(Value::Null);
                        match mask {
                            Some(mask) => {
                                mask.apply(&value, self.pseudonyms.scope(consumer, field))
                            }
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

/// Whether `value` satisfies `predicate`. Values compare only with literals of the same JSON type
/// (numbers with numbers, text with text, booleans with booleans); `null` and any other pairing
/// are unknown, and an unknown comparison never holds, for `!=` and `not-in` too (as in SQL), so
/// a row the filter cannot judge is dropped rather than released. Dates and times are text: ISO
/// 8601 values in one format compare in time order.
fn holds(predicate: &RowPredicate, value: &Value) -> bool {
    let cmp = |literal: &Value| compare(value, literal);
    match predicate.op {
        RowOp::Eq => cmp(&predicate.value) == Some(Ordering::Equal),
        RowOp::Ne => matches!(cmp(&predicate.value), Some(o) if o != Ordering::Equal),
        RowOp::Lt => cmp(&predicate.value) == Some(Ordering::Less),
        RowOp::Le => matches!(
            cmp(&predicate.value),
            Some(Ordering::Less | Ordering::Equal)
        ),
        RowOp::Gt => cmp(&predicate.value) == Some(Ordering::Greater),
        RowOp::Ge => matches!(
            cmp(&predicate.value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        RowOp::In => match &predicate.value {
            Value::Array(items) => items.iter().any(|l| cmp(l) == Some(Ordering::Equal)),
            _ => false,
        },
        RowOp::NotIn => match &predicate.value {
            Value::Array(items) => items
                .iter()
                .all(|l| matches!(cmp(l), Some(o) if o != Ordering::Equal)),
            _ => false,
        },
        // An operator this gateway does not know yet: fail closed.
        _ => false,
    }
}

/// Order of two JSON values of the same type; `None` when they are not comparable.
fn compare(value: &Value, literal: &Value) -> Option<Ordering> {
    match (value, literal) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use causeway_policy::{Decision, FieldRelease, Mask, Reason, ReasonCode};
    use serde_json::json;

    use super::*;
    use crate::exchange::envelope::{self, Envelope};
    use crate::exchange::{Authorized, Verified};
    use crate::identity::DeptId;

    fn predicate(column: &str, op: RowOp, value: Value) -> RowPredicate {
        RowPredicate {
            column: column.to_owned(),
            op,
            value,
        }
    }

    fn fetched(row_filter: Vec<RowPredicate>, rows: Vec<Vec<Value>>) -> Fetched {
        let envelope = Envelope {
            v: envelope::ENVELOPE_VERSION,
            id: uuid::Uuid::now_v7(),
            consumer: DeptId::new("statistics-office").expect("valid id"),
            provider: DeptId::new("civil-registry").expect("valid id"),
            dataset: "residents".into(),
            params: BTreeMap::new(),
            purpose: "statistics".into(),
            legal_basis: String::new(),
            case: String::new(),
            officer: "tag".into(),
            application: None,
            issued_at: envelope::now_rfc3339(),
            nonce: envelope::nonce(),
        };
        let decision = Decision {
            allowed: true,
            rule: None,
            reason: Reason {
                code: ReasonCode::Granted,
                message: "granted".into(),
            },
            disclosure: None,
            fields: vec![
                FieldRelease {
                    name: "name".into(),
                    mask: None,
                },
                FieldRelease {
                    name: "birth_date".into(),
                    mask: Some(Mask::Year),
                },
            ],
            max_rows: None,
            row_filter,
            rate_limit: None,
            policy_hash: "h".into(),
        };
        Fetched {
            authorized: Authorized {
                verified: Verified {
                    envelope,
                    request_digest: "d".into(),
                },
                params: crate::exchange::canonicalize::CanonicalParams::unread(),
                decision,
            },
            rows: causeway_adapters::Rows {
                fields: vec![
                    "name".into(),
                    "birth_date".into(),
                    "municipality".into(),
                    "children".into(),
                    "active".into(),
                ],
                rows,
            },
        }
    }

    fn people() -> Vec<Vec<Value>> {
        vec![
            vec![
                json!("Ada"),
                json!("1990-05-01"),
                json!("North"),
                json!(2),
                json!(true),
            ],
            vec![
                json!("Bo"),
                json!("2001-11-30"),
                json!("South"),
                json!(0),
                json!(false),
            ],
            vec![
                json!("Cy"),
                json!("1975-01-15"),
                json!("East"),
                json!(5),
                json!(true),
            ],
            vec![
                json!("Di"),
                json!(null),
                json!(null),
                json!(null),
                json!(null),
            ],
        ]
    }

    /// Names of the released rows.
    fn released(filter: Vec<RowPredicate>) -> Vec<String> {
        let shaped = Shape::new(PseudonymKey::new(b"provider secret"))
            .shape(fetched(filter, people()))
            .expect("shapes");
        shaped
            .rows
            .iter()
            .map(|r| r[0].as_str().expect("name is text").to_owned())
            .collect()
    }

    #[test]
    fn no_filter_releases_every_row_with_only_granted_fields_masked() {
        let shaped = Shape::new(PseudonymKey::new(b"provider secret"))
            .shape(fetched(Vec::new(), people()))
            .expect("shapes");
        assert_eq!(shaped.fields, ["name", "birth_date"]);
        assert_eq!(shaped.rows.len(), 4);
        assert_eq!(shaped.rows[0], vec![json!("Ada"), json!(1990)]);
    }

    #[test]
    fn each_operator_keeps_exactly_the_matching_rows() {
        use RowOp::*;
        let cases: Vec<(RowPredicate, &[&str])> = vec![
            (predicate("municipality", Eq, json!("North")), &["Ada"]),
            (predicate("municipality", Ne, json!("North")), &["Bo", "Cy"]),
            (predicate("children", Lt, json!(2)), &["Bo"]),
            (predicate("children", Le, json!(2)), &["Ada", "Bo"]),
            (predicate("children", Gt, json!(2)), &["Cy"]),
            (predicate("children", Ge, json!(2.0)), &["Ada", "Cy"]),
            (
                predicate("birth_date", Ge, json!("1990-01-01")),
                &["Ada", "Bo"],
            ),
            (predicate("active", Eq, json!(true)), &["Ada", "Cy"]),
            (
                predicate("municipality", In, json!(["North", "East"])),
                &["Ada", "Cy"],
            ),
            (
                predicate("municipality", NotIn, json!(["North", "East"])),
                &["Bo"],
            ),
        ];
        for (p, want) in cases {
            let why = format!("{} {} {}", p.column, p.op.as_str(), p.value);
            assert_eq!(released(vec![p]), want, "{why}");
        }
    }

    #[test]
    fn every_predicate_must_hold() {
        let both = vec![
            predicate("active", RowOp::Eq, json!(true)),
            predicate("children", RowOp::Gt, json!(3)),
        ];
        assert_eq!(released(both), ["Cy"]);
    }

    #[test]
    fn null_and_mismatched_types_never_match_so_the_row_is_dropped() {
        // "Di" has nulls: dropped even by != and not-in.
        assert!(!released(vec![predicate("children", RowOp::Ne, json!(99))]).contains(&"Di".into()));
        // A text literal against an integer column matches nothing, even with !=.
        assert!(released(vec![predicate("children", RowOp::Ne, json!("2"))]).is_empty());
        assert!(released(vec![predicate("municipality", RowOp::NotIn, json!([1, 2]))]).is_empty());
    }

    #[test]
    fn a_filter_on_a_column_the_rows_lack_fails_closed() {
        let result = Shape::new(PseudonymKey::new(b"provider secret")).shape(fetched(
            vec![predicate("household", RowOp::Eq, json!("H1"))],
            people(),
        ));
        match result {
            Err(ExchangeError::Fetch { error, decision }) => {
                assert_eq!(error.code(), "query-failed");
                assert!(decision.allowed);
            }
            other => panic!("expected a failed fetch, got {other:?}"),
        }
    }
}
