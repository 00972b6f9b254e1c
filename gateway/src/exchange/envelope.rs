//! The request envelope: what a consumer gateway signs and a provider gateway checks.
//!
//! Wire form (docs/PROTOCOL.md): the HTTP body (or QUIC frame body) is the envelope's JSON bytes,
//! sent exactly as signed; the signature travels beside it (`causeway-signature` header) as base64
//! of Ed25519 over [`SIGNATURE_CONTEXT`] || body. The context prefix keeps envelope signatures from
//! ever being valid as note (checkpoint) signatures made with the same key.

use std::collections::BTreeMap;

use base64::Engine;
use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::DeptId;
use crate::identity::GatewayKey;
use crate::ledger::note::{verify_strict, NoteVerifier};

/// Envelope format version.
pub const ENVELOPE_VERSION: u32 = 1;
/// Domain-separation prefix of envelope signatures.
pub const SIGNATURE_CONTEXT: &[u8] = b"causeway-envelope/v1\n";
/// HTTP header carrying the signature.
pub const SIGNATURE_HEADER: &str = "causeway-signature";
/// Largest envelope accepted, checked before parsing.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Most request parameters.
pub const MAX_PARAMS: usize = 32;
/// Longest text field (dataset, purpose, legal basis, case, officer tag, parameter names).
pub const MAX_FIELD_CHARS: usize = 256;

/// A signed request for one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Format version.
    pub v: u32,
    /// Exchange id (UUIDv7).
    pub id: uuid::Uuid,
    /// Asking department.
    pub consumer: DeptId,
    /// Data-holding department.
    pub provider: DeptId,
    /// Dataset name.
    pub dataset: String,
    /// Typed parameters of the dataset's query.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Purpose, from the federation's declared list.
    pub purpose: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Case reference (may be empty).
    #[serde(default)]
    pub case: String,
    /// Keyed tag of the officer who asked.
    pub officer: String,
    /// RFC 3339 UTC time of issue.
    pub issued_at: String,
    /// 16 random bytes, base64.
    pub nonce: String,
}

/// Why an envelope was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Bigger than [`MAX_ENVELOPE_BYTES`].
    #[error("the envelope is larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    /// Not valid envelope JSON.
    #[error("the envelope is not valid: {0}")]
    Malformed(String),
    /// The signature header is missing or not base64 of 64 bytes.
    #[error("the {SIGNATURE_HEADER} header is missing or malformed")]
    MissingSignature,
    /// The signature does not verify.
    #[error("the envelope signature does not verify against the directory key of {0}")]
    BadSignature(DeptId),
}

impl Envelope {
    /// The exact bytes to send and sign.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelopes are plain data and always serialize")
    }

    /// Sign `bytes` (the output of [`Envelope::to_bytes`]); returns the header value.
    pub fn sign(bytes: &[u8], signer: &GatewayKey) -> String {
        let mut msg = Vec::with_capacity(SIGNATURE_CONTEXT.len() + bytes.len());
        msg.extend_from_slice(SIGNATURE_CONTEXT);
        msg.extend_from_slice(bytes);
        let sig = signer.signing_key().sign(&msg);
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
    }

    /// Parse and bound-check envelope bytes, without verifying the signature.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge);
        }
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        env.check_bounds()?;
        Ok(env)
    }

    /// The exact bytes to send and sign, if they are within the bounds [`Envelope::parse`]
    /// enforces: a consumer refuses to sign what its provider would refuse to read.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.check_bounds()?;
        let bytes = self.to_bytes();
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge);
        }
        Ok(bytes)
    }

    fn check_bounds(&self) -> Result<(), EnvelopeError> {
        if self.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::Malformed(format!(
                "unsupported version {}",
                self.v
            )));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(EnvelopeError::Malformed(format!(
                "more than {MAX_PARAMS} parameters"
            )));
        }
        let texts = [
            &self.dataset,
            &self.purpose,
            &self.legal_basis,
            &self.case,
            &self.officer,
            &self.nonce,
            &self.issued_at,
        ];
        if texts.iter().any(|t| t.chars().count() > MAX_FIELD_CHARS)
            || self
                .params
                .keys()
                .any(|k| k.chars().count() > MAX_FIELD_CHARS)
        {
            return Err(EnvelopeError::Malformed(format!(
                "a field is longer than {MAX_FIELD_CHARS} characters"
            )));
        }
        Ok(())
    }

    /// Verify `signature` over `bytes` with the signer's directory key.
    pub fn verify_signature(
        bytes: &[u8],
        signature: Option<&str>,
        signer: &DeptId,
        key: &NoteVerifier,
    ) -> Result<(), EnvelopeError> {
        let raw = signature
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
            })
            .ok_or(EnvelopeError::MissingSignature)?;
        let sig = Signature::from_slice(&raw).map_err(|_| EnvelopeError::MissingSignature)?;
        let mut msg = Vec::with_capacity(SIGNATURE_CONTEXT.len() + bytes.len());
        msg.extend_from_slice(SIGNATURE_CONTEXT);
        msg.extend_from_slice(bytes);
        if verify_strict(key.public_key(), &msg, &sig) {
            Ok(())
        } else {
            Err(EnvelopeError::BadSignature(signer.clone()))
        }
    }

    /// Seconds since the Unix epoch at which it was issued.
    pub fn issued_at_unix(&self) -> Result<i64, EnvelopeError> {
        time::OffsetDateTime::parse(
            &self.issued_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t.unix_timestamp())
        .map_err(|_| EnvelopeError::Malformed("issued_at is not an RFC 3339 time".into()))
    }
}

/// SHA-256 hex of bytes: request and response digests.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The released payload's digest: over the canonical JSON `{"fields":[..],"rows":[..]}`.
pub fn payload_digest(fields: &[String], rows: &[Vec<serde_json::Value>]) -> String {
    #[derive(Serialize)]
    struct Payload<'a> {
        fields: &'a [String],
        rows: &'a [Vec<serde_json::Value>],
    }
    digest(&serde_json::to_vec(&Payload { fields, rows }).expect("JSON values always serialize"))
}

/// A fresh random nonce.
pub fn nonce() -> String {
    use rand::RngCore;
    let mut n = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut n);
    base64::engine::general_purpose::STANDARD.encode(n)
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of the current time cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            v: 1,
            id: uuid::Uuid::now_v7(),
            consumer: DeptId::new("social-welfare").unwrap(),
            provider: DeptId::new("civil-registry").unwrap(),
            dataset: "residents".into(),
            params: [("national_id".to_owned(), serde_json::json!("D000001"))].into(),
            purpose: "benefit-eligibility".into(),
            legal_basis: "act-12".into(),
            case: String::new(),
            officer: "ab".into(),
            issued_at: now_rfc3339(),
            nonce: nonce(),
        }
    }

    #[test]
    fn signature_covers_exact_bytes() {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let signer = GatewayKey::new("demo/social-welfare", key).unwrap();
        let env = sample();
        let bytes = env.to_bytes();
        let sig = Envelope::sign(&bytes, &signer);
        let verifier = signer.note_signer().verifier();
        Envelope::verify_signature(&bytes, Some(&sig), &env.consumer, &verifier).unwrap();
        let mut tampered = bytes.clone();
        let pos = tampered.iter().position(|b| *b == b'D').unwrap();
        tampered[pos] = b'E';
        assert!(
            Envelope::verify_signature(&tampered, Some(&sig), &env.consumer, &verifier).is_err()
        );
        assert!(Envelope::verify_signature(&bytes, None, &env.consumer, &verifier).is_err());
        assert!(
            Envelope::verify_signature(&bytes, Some("AAAA"), &env.consumer, &verifier).is_err()
        );
        assert_eq!(Envelope::parse(&bytes).unwrap(), env);
    }

    #[test]
    fn hostile_envelopes_are_refused() {
        assert!(matches!(
            Envelope::parse(&vec![b' '; MAX_ENVELOPE_BYTES + 1]),
            Err(EnvelopeError::TooLarge)
        ));
        assert!(Envelope::parse(b"{").is_err());
        assert!(Envelope::parse(b"[]").is_err());
        let mut v = serde_json::to_value(sample()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(
            Envelope::parse(&serde_json::to_vec(&v).unwrap()).is_err(),
            "unknown fields are refused"
        );
        let mut v = serde_json::to_value(sample()).unwrap();
        v["purpose"] = serde_json::json!("x".repeat(MAX_FIELD_CHARS + 1));
        assert!(Envelope::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        let mut v = serde_json::to_value(sample()).unwrap();
        v["consumer"] = serde_json::json!("../etc");
        assert!(Envelope::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        let deep = "[".repeat(10_000);
        assert!(Envelope::parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn a_consumer_encodes_exactly_what_a_provider_would_parse() {
        let env = sample();
        let bytes = env.encode().unwrap();
        assert_eq!(bytes, env.to_bytes());
        assert_eq!(Envelope::parse(&bytes).unwrap(), env);

        let mut long = sample();
        long.purpose = "x".repeat(MAX_FIELD_CHARS + 1);
        let mut many = sample();
        many.params = (0..=MAX_PARAMS)
            .map(|i| (format!("p{i}"), serde_json::json!(i)))
            .collect();
        let mut big = sample();
        big.params = (0..MAX_PARAMS)
            .map(|i| (format!("p{i}"), serde_json::json!("y".repeat(2_100))))
            .collect();
        let mut future = sample();
        future.v = ENVELOPE_VERSION + 1;
        for (what, env) in [
            ("long", long),
            ("many", many),
            ("big", big),
            ("future", future),
        ] {
            assert!(env.encode().is_err(), "{what}: encoded");
            assert!(Envelope::parse(&env.to_bytes()).is_err(), "{what}: parsed");
        }
    }
}
