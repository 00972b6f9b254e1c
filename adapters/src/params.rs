//! Checking a request's JSON parameters against a dataset's declared parameters, and the typed
//! values that adapters bind: string values in their canonical form (`normalize`), which is what
//! the pattern is matched against.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::datasets::{Dataset, ParamDef, ParamType};
use crate::error::FetchError;

/// One validated parameter value, ready to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamValue {
    /// SQL `NULL` (only for optional parameters that were missing or `null`).
    Null,
    /// A string value in its canonical form, or an enum value.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A calendar date, `YYYY-MM-DD` (validated).
    Date(String),
}

impl ParamValue {
    /// The value as text (for URL templates); `None` for `Null`.
    pub fn as_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            ParamValue::Null => None,
            ParamValue::Text(s) | ParamValue::Date(s) => Some(s.as_str().into()),
            ParamValue::Integer(i) => Some(i.to_string().into()),
        }
    }
}

/// Every declared parameter of one dataset, validated and typed. Built only by [`bind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundParams {
    values: BTreeMap<String, ParamValue>,
}

impl BoundParams {
    /// The value of a declared parameter.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name)
    }

    /// All values by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Check `params` against `dataset`'s declarations: every name known, every required one present,
/// each of the right type and within its constraints. String values are bound in their canonical
/// form ([`ParamDef::bind`]).
pub fn bind(
    dataset: &Dataset,
    params: &BTreeMap<String, Value>,
) -> Result<BoundParams, FetchError> {
    for name in params.keys() {
        if dataset.param(name).is_none() {
            let declared: Vec<&str> = dataset.params.iter().map(|p| p.name.as_str()).collect();
            return Err(FetchError::bad_parameter(
                name,
                format!(
                    "dataset \"{}\" has no such parameter (its parameters: {})",
                    dataset.name,
                    declared.join(", ")
                ),
            ));
        }
    }
    let mut values = BTreeMap::new();
    for def in &dataset.params {
        let value = match params.get(&def.name) {
            None | Some(Value::Null) if def.optional => ParamValue::Null,
            None => {
                return Err(FetchError::bad_parameter(
                    &def.name,
                    "is required but missing",
                ))
            }
            Some(Value::Null) => {
                return Err(FetchError::bad_parameter(&def.name, "is required but null"))
            }
            Some(v) => def.bind(v)?,
        };
        values.insert(def.name.clone(), value);
    }
    Ok(BoundParams { values })
}

impl ParamDef {
    /// Check one present, non-null value against this declaration and type it. A string is
    /// brought to its canonical form (`normalize`), and that form must match the pattern; its
    /// length and characters are checked as sent, before any work is done on it. The error names
    /// the parameter and the rule it breaks, never the value.
    pub fn bind(&self, value: &Value) -> Result<ParamValue, FetchError> {
        check(self, value)
    }
}

fn check(def: &ParamDef, value: &Value) -> Result<ParamValue, FetchError> {
    let bad = |problem: String| FetchError::bad_parameter(&def.name, problem);
    match &def.ty {
        ParamType::String {
            max_length,
            pattern,
            normalize,
        } => {
            let Value::String(s) = value else {
                return Err(bad(format!("must be a string, not {}", json_kind(value))));
            };
            let chars = s.chars().count();
            if chars > *max_length {
                return Err(bad(format!(
                    "is {chars} characters long (at most {max_length})"
                )));
            }
            if s.chars().any(char::is_control) {
                return Err(bad("contains control characters".into()));
            }
            let canonical = normalize.canonical(s);
            if let Some(p) = pattern {
                if !p.is_match(&canonical) {
                    return Err(bad(if normalize.is_none() {
                        format!("does not match the pattern {}", p.as_str())
                    } else {
                        format!(
                            "does not match the pattern {} once normalized ({normalize})",
                            p.as_str()
                        )
                    }));
                }
            }
            Ok(ParamValue::Text(canonical.into_owned()))
        }
        ParamType::Integer { min, max } => {
            let Some(i) = value.as_i64() else {
                return Err(bad(format!(
                    "must be an integer{}, not {}",
                    range_text(*min, *max),
                    json_kind(value)
                )));
            };
            if min.is_some_and(|m| i < m) || max.is_some_and(|m| i > m) {
                return Err(bad(format!(
                    "{i} is out of range (must be{})",
                    range_text(*min, *max)
                )));
            }
            Ok(ParamValue::Integer(i))
        }
        ParamType::Date => match value {
            Value::String(s) if is_date(s) => Ok(ParamValue::Date(s.clone())),
            Value::String(_) => Err(bad("must be a calendar date written YYYY-MM-DD".into())),
            other => Err(bad(format!(
                "must be a date string YYYY-MM-DD, not {}",
                json_kind(other)
            ))),
        },
        ParamType::Enum { values } => match value {
            Value::String(s) if values.contains(s) => Ok(ParamValue::Text(s.clone())),
            _ => Err(bad(format!("must be one of: {}", values.join(", ")))),
        },
    }
}

fn range_text(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!(" between {lo} and {hi}"),
        (Some(lo), None) => format!(" of at least {lo}"),
        (None, Some(hi)) => format!(" of at most {hi}"),
        (None, None) => String::new(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer out of range",
        Value::Number(_) => "a number with a fraction",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `YYYY-MM-DD` naming a real day of the proleptic Gregorian calendar (years 0001..9999).
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && d >= 1 && d <= days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_real_calendar_days() {
        for ok in ["2024-02-29", "2000-02-29", "1999-12-31", "0001-01-01"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "2024-01-32",
            "２０２４-01-01",
            "2024/01/01",
            "0000-01-01",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
