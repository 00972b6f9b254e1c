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
    /// Pairwise pseudonym: lowercase hex HMAC-SHA256, under the provider's [`PseudonymKey`], of the
    /// consumer, the field and the value (a string's UTF-8 bytes, any other value's compact JSON).
    /// Stable for one consumer (it can join its own records), different for every consumer (they
    /// cannot link theirs), irreversible without the provider's key. Not anonymization: the
    /// provider can recompute it, and the other released fields may identify the person.
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

/// The provider's secret for [`Mask::Hash`] pseudonyms. Only the provider holds it: neither the
/// consumers nor the oversight nodes can compute or reverse a pseudonym.
#[derive(Clone)]
pub struct PseudonymKey {
    /// HMAC keyed once.
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// A key from its secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        PseudonymKey {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(secret)
                .expect("HMAC accepts keys of any length"),
        }
    }

    /// The pseudonyms this key makes for `consumer`'s `field`.
    pub fn scope<'a>(&'a self, consumer: &'a str, field: &'a str) -> Pseudonyms<'a> {
        Pseudonyms {
            key: self,
            consumer,
            field,
        }
    }
}

/// The scope of a `hash` mask: one provider key, one consumer, one field.
#[derive(Debug, Clone, Copy)]
pub struct Pseudonyms<'a> {
    key: &'a PseudonymKey,
    consumer: &'a str,
    field: &'a str,
}

impl Pseudonyms<'_> {
    /// HMAC-SHA256(key, "causeway pseudonym\n" consumer "\n" field "\n" value), lowercase hex.
    /// Consumer and field names hold no newline, so the input is unambiguous.
    pub fn of(&self, value: &[u8]) -> String {
        let mut mac = self.key.keyed.clone();
        mac.update(b"causeway pseudonym\n");
        mac.update(self.consumer.as_bytes());
        mac.update(b"\n");
        mac.update(self.field.as_bytes());
        mac.update(b"\n");
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }
}

impl Mask {
    /// Apply the mask to one value. `pseudonyms` is used by [`Mask::Hash`] only; `null` stays
    /// `null`.
    pub fn apply(&self, value: &Value, pseudonyms: Pseudonyms<'_>) -> Value {
        if value.is_null() {
            return Value::Null;
        }
        match self {
            Mask::Redact => Value::Null,
            Mask::Hash => Value::String(match value {
                Value::String(s) => pseudonyms.of(s.as_bytes()),
                other => pseudonyms.of(other.to_string().as_bytes()),
            }),
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

    static KEY: std::sync::LazyLock<PseudonymKey> =
        std::sync::LazyLock::new(|| PseudonymKey::new(b"provider-key"));

    fn scope() -> Pseudonyms<'static> {
        KEY.scope("tax-office", "field")
    }

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
        assert_eq!(Mask::Redact.apply(&json!("secret"), scope()), Value::Null);
        assert_eq!(Mask::Redact.apply(&json!(42), scope()), Value::Null);
    }

    #[test]
    fn hash_is_a_pairwise_pseudonym() {
        let key = PseudonymKey::new(b"provider secret");
        let tax = key.scope("tax-office", "national_id");
        // HMAC-SHA256(b"provider secret", b"causeway pseudonym\ntax-office\nnational_id\nD000001"),
        // computed independently (Python's hmac module).
        assert_eq!(
            Mask::Hash.apply(&json!("D000001"), tax),
            json!("9703b7b8957485d9d090e944fa5f6d6b35bab86bdc68cfa00f9f40d1f62e776f")
        );
        let a = Mask::Hash.apply(&json!("D000001"), tax);
        assert_eq!(
            a,
            Mask::Hash.apply(&json!("D000001"), tax),
            "stable for one consumer"
        );
        for other in [
            key.scope("social-welfare", "national_id"),
            key.scope("tax-office", "household"),
            PseudonymKey::new(b"other provider").scope("tax-office", "national_id"),
        ] {
            assert_ne!(a, Mask::Hash.apply(&json!("D000001"), other));
        }
        assert_ne!(a, json!("D000001"));
        assert_eq!(Mask::Hash.apply(&Value::Null, tax), Value::Null);
        // Numbers hash their JSON text: 7 and "7" give the same pseudonym.
        assert_eq!(
            Mask::Hash.apply(&json!(7), tax),
            Mask::Hash.apply(&json!("7"), tax)
        );
    }

    #[test]
    fn last_keeps_tail_and_length() {
        assert_eq!(
            Mask::Last(4).apply(&json!("D0001234"), scope()),
            json!("****1234")
        );
        assert_eq!(Mask::Last(4).apply(&json!("abc"), scope()), json!("abc"));
        assert_eq!(Mask::Last(2).apply(&json!("ÅÄÖü"), scope()), json!("**Öü"));
        assert_eq!(
            Mask::Last(2).apply(&json!(123456), scope()),
            json!("****56")
        );
        assert_eq!(Mask::Last(2).apply(&json!(["a"]), scope()), Value::Null);
    }

    #[test]
    fn year_fails_closed() {
        assert_eq!(Mask::Year.apply(&json!("1985-03-14"), scope()), json!(1985));
        assert_eq!(
            Mask::Year.apply(&json!("2001-02-03T04:05:06Z"), scope()),
            json!(2001)
        );
        assert_eq!(Mask::Year.apply(&json!("1999"), scope()), json!(1999));
        assert_eq!(Mask::Year.apply(&json!("19850314"), scope()), Value::Null);
        assert_eq!(
            Mask::Year.apply(&json!("Main Street 1"), scope()),
            Value::Null
        );
        assert_eq!(Mask::Year.apply(&json!(1985), scope()), Value::Null);
    }

    #[test]
    fn round_to_step() {
        assert_eq!(
            Mask::Round(1000).apply(&json!(48_499), scope()),
            json!(48_000)
        );
        assert_eq!(
            Mask::Round(1000).apply(&json!(48_500), scope()),
            json!(49_000)
        );
        assert_eq!(
            Mask::Round(1000).apply(&json!(-1_500), scope()),
            json!(-2_000)
        );
        assert_eq!(Mask::Round(100).apply(&json!(1234.5), scope()), json!(1200));
        assert_eq!(Mask::Round(10).apply(&json!("1234"), scope()), json!(1230));
        assert_eq!(
            Mask::Round(10).apply(&json!(u64::MAX), scope()),
            Value::Null
        );
        assert_eq!(Mask::Round(10).apply(&json!("n/a"), scope()), Value::Null);
        assert_eq!(Mask::Round(10).apply(&json!(true), scope()), Value::Null);
    }
}
