//! Field masks: how a released value is transformed before it leaves the provider.
//!
//! Masks fail closed: a value that a mask cannot handle (a `year` mask over something that is not a
//! date, a `round` mask over text that is not a number, any mask over an array or object) becomes
//! JSON `null` rather than leaking unmasked.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// A transformation applied to one released field. Written in policy files and serialized in
/// decisions as `redact`, `hash`, `last:N`, `year` or `round:STEP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum Mask {
    /// Release the field name with a `null` value.
    Redact,
    /// Keyed hash: lowercase hex HMAC-SHA256 of the value under the gateway's hash key (a string's
    /// UTF-8 bytes, any other value's compact JSON). Lets a consumer join records without seeing ids.
    Hash,
    /// Keep the last N characters, replace each earlier character with `*` (length is preserved).
    Last(usize),
    /// Keep only the year of a date or timestamp (`1985-03-14` becomes the number `1985`).
    Year,
    /// Round a number to the nearest multiple of STEP (a positive integer); halves round away from zero.
    Round(u64),
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mask::Redact => f.write_str("redact"),
            Mask::Hash => f.write_str("hash"),
            Mask::Last(n) => write!(f, "last:{n}"),
            Mask::Year => f.write_str("year"),
            Mask::Round(step) => write!(f, "round:{step}"),
        }
    }
}

/// The mask names accepted in policy files, for suggestions.
pub(crate) const MASK_NAMES: [&str; 5] = ["redact", "hash", "last", "year", "round"];

impl FromStr for Mask {
    type Err = String;

    fn from_str(s: &str) -> Result<Mask, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s.trim(), None),
        };
        let positive = |what: &str| -> Result<u64, String> {
            let a =
                arg.ok_or_else(|| format!("mask \"{name}\" needs {what}, as in \"{name}:4\""))?;
            match a.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "mask \"{name}\" needs {what} (a positive integer), not \"{a}\""
                )),
            }
        };
        let no_arg = |m: Mask| match arg {
            None => Ok(m),
            Some(_) => Err(format!("mask \"{name}\" takes no argument")),
        };
        match name {
            "redact" => no_arg(Mask::Redact),
            "hash" => no_arg(Mask::Hash),
            "year" => no_arg(Mask::Year),
            "last" => positive("a character count").and_then(|n| {
                usize::try_from(n)
                    .map_err(|e| e.to_string())
                    .map(Mask::Last)
            }),
            "round" => positive("a step").map(Mask::Round),
            other => {
                let hint = crate::suggest::did_you_mean(other, MASK_NAMES);
                if hint.is_empty() {
                    Err(format!(
                        "unknown mask \"{other}\" (masks: redact, hash, last:N, year, round:STEP)"
                    ))
                } else {
                    Err(format!("unknown mask \"{other}\"{hint}"))
                }
            }
        }
    }
}

impl TryFrom<String> for Mask {
    type Error = String;
    fn try_from(s: String) -> Result<Mask, String> {
        s.parse()
    }
}

impl From<Mask> for String {
    fn from(m: Mask) -> String {
        m.to_string()
    }
}

impl Mask {
    /// Apply the mask to one value. `hash_key` is used by [`Mask::Hash`] only; `null` stays `null`.
    pub fn apply(&self, value: &Value, hash_key: &[u8]) -> Value {
        if value.is_null() {
            return Value::Null;
        }
        match self {
            Mask::Redact => Value::Null,
            Mask::Hash => {
                let bytes = match value {
                    Value::String(s) => s.as_bytes().to_vec(),
                    other => other.to_string().into_bytes(),
                };
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hash_key)
                    .expect("HMAC accepts keys of any length");
                mac.update(&bytes);
                Value::String(hex::encode(mac.finalize().into_bytes()))
            }
            Mask::Last(n) => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Value::Null,
                };
                let len = text.chars().count();
                let hide = len.saturating_sub(*n);
                let masked: String = text
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if i < hide { '*' } else { c })
                    .collect();
                Value::String(masked)
            }
            Mask::Year => match value {
                Value::String(s) => year_of(s).map_or(Value::Null, Value::from),
                _ => Value::Null,
            },
            Mask::Round(step) => round_value(value, *step),
        }
    }
}

/// The year of `YYYY`, `YYYY-MM-DD` or an RFC 3339 timestamp (optionally signed for years < 0 is
/// not supported: such values fail closed).
fn year_of(s: &str) -> Option<i64> {
    let s = s.trim();
    let digits = s.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.as_bytes().get(4) {
        None | Some(b'-') => digits.parse().ok(),
        Some(_) => None,
    }
}

fn round_value(value: &Value, step: u64) -> Value {
    let step_i = i128::from(step);
    let round_int = |v: i128| -> Value {
        let half = step_i / 2;
        let r = if v >= 0 {
            (v + half) / step_i * step_i
        } else {
            -((-v + half) / step_i * step_i)
        };
        match i64::try_from(r) {
            Ok(i) => Value::from(i),
            Err(_) => Value::Null,
        }
    };
    let round_float = |v: f64| -> Value {
        if !v.is_finite() {
            return Value::Null;
        }
        let step_f = step as f64;
        let r = (v / step_f).round() * step_f;
        if r.abs() < 9.0e15 {
            Value::from(r as i64)
        } else {
            serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
        }
    };
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                round_int(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                round_int(i128::from(u))
            } else {
                n.as_f64().map_or(Value::Null, round_float)
            }
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                round_int(i128::from(i))
            } else if let Ok(f) = s.parse::<f64>() {
                round_float(f)
            } else {
                Value::Null
            }
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"federation-key";

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["redact", "hash", "last:4", "year", "round:1000"] {
            let m: Mask = s.parse().expect("valid mask");
            assert_eq!(m.to_string(), s);
        }
        assert_eq!("last: 4".parse::<Mask>(), Ok(Mask::Last(4)));
        assert!("last"
            .parse::<Mask>()
            .unwrap_err()
            .contains("needs a character count"));
        assert!("last:0".parse::<Mask>().is_err());
        assert!("round:-5".parse::<Mask>().is_err());
        assert!("year:2"
            .parse::<Mask>()
            .unwrap_err()
            .contains("takes no argument"));
        let e = "reduct".parse::<Mask>().unwrap_err();
        assert!(e.contains("did you mean \"redact\""), "{e}");
        assert_eq!(
            serde_json::to_value(Mask::Round(100)).ok(),
            Some(json!("round:100"))
        );
        assert_eq!(
            serde_json::from_value::<Mask>(json!("last:2")).ok(),
            Some(Mask::Last(2))
        );
    }

    #[test]
    fn redact() {
        assert_eq!(Mask::Redact.apply(&json!("secret"), KEY), Value::Null);
        assert_eq!(Mask::Redact.apply(&json!(42), KEY), Value::Null);
    }

    #[test]
    fn hash_is_keyed_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let v = Mask::Hash.apply(&json!("what do ya want for nothing?"), b"Jefe");
        assert_eq!(
            v,
            json!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        let a = Mask::Hash.apply(&json!("D000001"), KEY);
        let b = Mask::Hash.apply(&json!("D000001"), b"other-key");
        assert_ne!(a, b);
        assert_ne!(a, json!("D000001"));
        assert_eq!(Mask::Hash.apply(&Value::Null, KEY), Value::Null);
        // Numbers hash their JSON text: 7 and "7" give the same tag.
        assert_eq!(
            Mask::Hash.apply(&json!(7), KEY),
            Mask::Hash.apply(&json!("7"), KEY)
        );
    }

    #[test]
    fn last_keeps_tail_and_length() {
        assert_eq!(
            Mask::Last(4).apply(&json!("D0001234"), KEY),
            json!("****1234")
        );
        assert_eq!(Mask::Last(4).apply(&json!("abc"), KEY), json!("abc"));
        assert_eq!(Mask::Last(2).apply(&json!("ÅÄÖü"), KEY), json!("**Öü"));
        assert_eq!(Mask::Last(2).apply(&json!(123456), KEY), json!("****56"));
        assert_eq!(Mask::Last(2).apply(&json!(["a"]), KEY), Value::Null);
    }

    #[test]
    fn year_fails_closed() {
        assert_eq!(Mask::Year.apply(&json!("1985-03-14"), KEY), json!(1985));
        assert_eq!(
            Mask::Year.apply(&json!("2001-02-03T04:05:06Z"), KEY),
            json!(2001)
        );
        assert_eq!(Mask::Year.apply(&json!("1999"), KEY), json!(1999));
        assert_eq!(Mask::Year.apply(&json!("19850314"), KEY), Value::Null);
        assert_eq!(Mask::Year.apply(&json!("Main Street 1"), KEY), Value::Null);
        assert_eq!(Mask::Year.apply(&json!(1985), KEY), Value::Null);
    }

    #[test]
    fn round_to_step() {
        assert_eq!(Mask::Round(1000).apply(&json!(48_499), KEY), json!(48_000));
        assert_eq!(Mask::Round(1000).apply(&json!(48_500), KEY), json!(49_000));
        assert_eq!(Mask::Round(1000).apply(&json!(-1_500), KEY), json!(-2_000));
        assert_eq!(Mask::Round(100).apply(&json!(1234.5), KEY), json!(1200));
        assert_eq!(Mask::Round(10).apply(&json!("1234"), KEY), json!(1230));
        assert_eq!(Mask::Round(10).apply(&json!(u64::MAX), KEY), Value::Null);
        assert_eq!(Mask::Round(10).apply(&json!("n/a"), KEY), Value::Null);
        assert_eq!(Mask::Round(10).apply(&json!(true), KEY), Value::Null);
    }
}
