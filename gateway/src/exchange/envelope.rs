//! The request envelope: what a consumer gateway signs and a provider gateway checks.
//!
//! Wire form (docs/PROTOCOL.md): the HTTP body (or QUIC frame body) is the envelope's JSON bytes,
//! sent exactly as signed; the signature travels beside it (`causeway-signature` header) as base64.
//! It is either Ed25519 over [`SIGNATURE_CONTEXT`] || body, or, for envelopes a gateway signed
//! together, one Ed25519 signature over the root of a Merkle tree of their leaf hashes plus this
//! envelope's inclusion proof ([`EnvelopeSignature::Batch`]). The context prefixes keep envelope
//! signatures from ever being valid as note (checkpoint) signatures made with the same key.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::recent::Recent;
use crate::identity::{AppId, DeptId, GatewayKey};
use causeway_ledger::merkle::{self, Hash, MemoryTree};
use causeway_ledger::note::{verify_strict, NoteVerifier};

/// Envelope format version.
pub const ENVELOPE_VERSION: u32 = 1;
/// Domain-separation prefix of envelope signatures.
pub const SIGNATURE_CONTEXT: &[u8] = b"causeway-envelope/v1\n";
/// Domain-separation prefix of the statement a batch signature signs: this prefix, the batch size
/// (8 bytes, big-endian) and the root (32 bytes). Its NUL bytes keep it from ever being note text.
pub const BATCH_SIGNATURE_CONTEXT: &[u8] = b"causeway-envelope-batch/v1\n";
/// Most envelopes one batch signature covers (so a proof has at most 8 hashes).
pub const MAX_SIGNING_BATCH: usize = 256;
/// First byte of a batch signature's binary form.
const BATCH_FORMAT: u8 = 0x01;
/// Longest signature header accepted, checked before decoding: base64 of a batch signature with
/// the longest proof a [`MAX_SIGNING_BATCH`] tree has.
const MAX_SIGNATURE_HEADER: usize = (5 + 64 + 32 * 8_usize).div_ceil(3) * 4;
pub use crate::transport::{MAX_ENVELOPE_BYTES, SIGNATURE_HEADER};
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
    /// Keyed tag of the officer who asked; empty when the application acted on its own.
    pub officer: String,
    /// The consumer's application that asked, as the consumer's gateway authenticated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<AppId>,
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
    /// The signature header is missing, or neither base64 of 64 bytes nor a well-formed batch
    /// signature.
    #[error("the {SIGNATURE_HEADER} header is missing or malformed")]
    MissingSignature,
    /// The signature does not verify.
    #[error("the envelope signature does not verify against the directory key of {0}")]
    BadSignature(DeptId),
}

impl Envelope {
    /// The exact bytes to send and sign.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(512);
        serde_json::to_writer(&mut bytes, self)
            .expect("envelopes are plain data and always serialize");
        bytes
    }

    /// Sign `bytes` (the output of [`Envelope::to_bytes`]) on its own; returns the header value.
    pub fn sign(bytes: &[u8], signer: &GatewayKey) -> String {
        EnvelopeSignature::sign_batch(&[bytes], signer.signing_key())[0].to_header()
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

    /// Verify `signature` over `bytes` with the signer's directory key. A batch signature whose
    /// statement already verified under this key (in `batches`) is not verified again.
    pub fn verify_signature(
        bytes: &[u8],
        signature: Option<&str>,
        signer: &DeptId,
        key: &NoteVerifier,
        batches: Option<&VerifiedBatches>,
    ) -> Result<(), EnvelopeError> {
        let signature =
            EnvelopeSignature::parse(signature.ok_or(EnvelopeError::MissingSignature)?)?;
        let key = key.public_key();
        let verified = match &signature {
            EnvelopeSignature::Single(sig) => verify_strict(key, &single_message(bytes), sig),
            EnvelopeSignature::Batch(batch) => {
                let statement = batch.statement(bytes)?;
                match batches {
                    Some(cache) => cache.verify(key, statement, &batch.signature),
                    None => verify_strict(key, &statement, &batch.signature),
                }
            }
        };
        if verified {
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

/// What a single envelope signature signs: [`SIGNATURE_CONTEXT`] || body.
fn single_message(bytes: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNATURE_CONTEXT.len() + bytes.len());
    msg.extend_from_slice(SIGNATURE_CONTEXT);
    msg.extend_from_slice(bytes);
    msg
}

/// An envelope's leaf in a signing batch: SHA-256(0x00 || [`SIGNATURE_CONTEXT`] || body), an RFC
/// 9162 leaf hash of the same bytes a single signature signs.
pub fn envelope_leaf(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([merkle::LEAF_HASH_PREFIX]);
    h.update(SIGNATURE_CONTEXT);
    h.update(bytes);
    h.finalize().into()
}

/// The signature that travels beside an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeSignature {
    /// Ed25519 over [`SIGNATURE_CONTEXT`] || body: base64 of the 64 bytes.
    Single(Signature),
    /// One of several envelopes signed together.
    Batch(BatchSignature),
}

/// Ed25519 over the root of a Merkle tree (RFC 9162 hashing) of [`envelope_leaf`]s, with the
/// inclusion proof of this envelope's leaf. Binary form, sent as base64: 0x01, size and index (2
/// bytes each, big-endian), the 64-byte signature, then the proof's hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSignature {
    /// Envelopes in the batch, 2 to [`MAX_SIGNING_BATCH`].
    pub size: u16,
    /// This envelope's place in it.
    pub index: u16,
    /// Ed25519 over the batch statement.
    pub signature: Signature,
    /// The inclusion proof of this envelope's leaf.
    pub proof: Vec<Hash>,
}

impl EnvelopeSignature {
    /// Parse a signature header value, within [`MAX_SIGNATURE_HEADER`] before decoding.
    pub fn parse(header: &str) -> Result<Self, EnvelopeError> {
        let header = header.trim();
        if header.len() > MAX_SIGNATURE_HEADER {
            return Err(EnvelopeError::MissingSignature);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(header)
            .map_err(|_| EnvelopeError::MissingSignature)?;
        if raw.len() == 64 {
            let sig = Signature::from_slice(&raw).map_err(|_| EnvelopeError::MissingSignature)?;
            return Ok(EnvelopeSignature::Single(sig));
        }
        let (head, rest) = raw
            .split_at_checked(5)
            .ok_or(EnvelopeError::MissingSignature)?;
        let (sig, proof) = rest
            .split_at_checked(64)
            .ok_or(EnvelopeError::MissingSignature)?;
        let size = u16::from_be_bytes([head[1], head[2]]);
        let index = u16::from_be_bytes([head[3], head[4]]);
        if head[0] != BATCH_FORMAT
            || !(2..=MAX_SIGNING_BATCH).contains(&usize::from(size))
            || index >= size
            || proof.len() % 32 != 0
        {
            return Err(EnvelopeError::MissingSignature);
        }
        Ok(EnvelopeSignature::Batch(BatchSignature {
            size,
            index,
            signature: Signature::from_slice(sig).map_err(|_| EnvelopeError::MissingSignature)?,
            proof: proof
                .chunks_exact(32)
                .map(|c| c.try_into().expect("chunks of 32"))
                .collect(),
        }))
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        let b64 = &base64::engine::general_purpose::STANDARD;
        match self {
            EnvelopeSignature::Single(sig) => b64.encode(sig.to_bytes()),
            EnvelopeSignature::Batch(batch) => {
                let mut raw = Vec::with_capacity(5 + 64 + 32 * batch.proof.len());
                raw.push(BATCH_FORMAT);
                raw.extend_from_slice(&batch.size.to_be_bytes());
                raw.extend_from_slice(&batch.index.to_be_bytes());
                raw.extend_from_slice(&batch.signature.to_bytes());
                batch.proof.iter().for_each(|h| raw.extend_from_slice(h));
                b64.encode(raw)
            }
        }
    }

    /// Sign envelopes together: one Ed25519 signature for all of them, returned in their order.
    /// A lone envelope gets a [`EnvelopeSignature::Single`] signature, exactly as
    /// [`Envelope::sign`] makes. At most [`MAX_SIGNING_BATCH`] envelopes.
    pub fn sign_batch<B: AsRef<[u8]>>(envelopes: &[B], key: &SigningKey) -> Vec<Self> {
        assert!(
            envelopes.len() <= MAX_SIGNING_BATCH,
            "callers split batches at MAX_SIGNING_BATCH"
        );
        if let [one] = envelopes {
            return vec![EnvelopeSignature::Single(
                key.sign(&single_message(one.as_ref())),
            )];
        }
        let mut tree = MemoryTree::new();
        for bytes in envelopes {
            tree.append(envelope_leaf(bytes.as_ref()));
        }
        let size = u16::try_from(envelopes.len()).expect("at most MAX_SIGNING_BATCH");
        let signature = key.sign(&batch_statement(size, &tree.root()));
        (0..size)
            .map(|index| {
                let proof = merkle::inclusion_proof(&tree, u64::from(index), u64::from(size))
                    .expect("every node of an in-memory tree is held");
                EnvelopeSignature::Batch(BatchSignature {
                    size,
                    index,
                    signature,
                    proof,
                })
            })
            .collect()
    }
}

impl BatchSignature {
    /// The statement this signature must cover if it signs `bytes`: over the root that this
    /// envelope's leaf and proof lead to. A proof of the wrong length is refused.
    fn statement(&self, bytes: &[u8]) -> Result<BatchStatement, EnvelopeError> {
        let root = merkle::root_from_inclusion(
            &envelope_leaf(bytes),
            u64::from(self.index),
            u64::from(self.size),
            &self.proof,
        )
        .map_err(|_| EnvelopeError::MissingSignature)?;
        Ok(batch_statement(self.size, &root))
    }
}

/// [`BATCH_SIGNATURE_CONTEXT`] || size (u64, big-endian) || root.
type BatchStatement = [u8; BATCH_SIGNATURE_CONTEXT.len() + 8 + 32];

fn batch_statement(size: u16, root: &Hash) -> BatchStatement {
    let mut statement = [0u8; BATCH_SIGNATURE_CONTEXT.len() + 8 + 32];
    let (context, rest) = statement.split_at_mut(BATCH_SIGNATURE_CONTEXT.len());
    context.copy_from_slice(BATCH_SIGNATURE_CONTEXT);
    rest[..8].copy_from_slice(&u64::from(size).to_be_bytes());
    rest[8..].copy_from_slice(root);
    statement
}

/// Batch statements that were verified recently, so that the envelopes of one batch cost one
/// Ed25519 verification between them. Keyed by the exact key, statement and signature bytes, so
/// a hit means this very check already ran; concurrent checks of one statement wait for the first.
pub struct VerifiedBatches(Recent<BatchCheck, Arc<OnceLock<bool>>>);

impl Default for VerifiedBatches {
    fn default() -> Self {
        VerifiedBatches(Recent::new(VERIFIED_BATCHES))
    }
}

/// Statements kept: a few batches in flight per consumer department.
const VERIFIED_BATCHES: usize = 64;

/// Compared field by field in this order: signatures differ in their first bytes, keys rarely.
#[derive(PartialEq, Eq)]
struct BatchCheck {
    signature: [u8; 64],
    statement: BatchStatement,
    key: [u8; 32],
}

impl VerifiedBatches {
    fn verify(&self, key: &VerifyingKey, statement: BatchStatement, sig: &Signature) -> bool {
        let check = BatchCheck {
            signature: sig.to_bytes(),
            statement,
            key: key.to_bytes(),
        };
        // Outside the memo's lock: a concurrent check of the same statement waits on its cell.
        let outcome = self.0.get_or_insert_with(check, Arc::default);
        *outcome.get_or_init(|| verify_strict(key, &statement, sig))
    }
}

/// SHA-256 hex of bytes: request and response digests.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The commitment to the released payload that both entries record: salted with this envelope's
/// nonce, which only the two parties hold ([`causeway_ledger::commitment`]).
pub fn payload_digest(
    envelope: &Envelope,
    fields: &[String],
    rows: &[Vec<serde_json::Value>],
) -> String {
    causeway_ledger::commitment::response_commitment(&envelope.nonce, fields, rows)
}

/// A fresh random nonce, from the thread's CSPRNG (ChaCha, seeded and reseeded from the operating
/// system) rather than a system call per envelope.
pub fn nonce() -> String {
    use rand::RngCore;
    let mut n = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut n);
    base64::engine::general_purpose::STANDARD.encode(n)
}

/// A fresh exchange id: a UUIDv7 (millisecond timestamp, 74 random bits from the thread's CSPRNG).
pub fn exchange_id() -> uuid::Uuid {
    use rand::RngCore;
    let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(millis).unwrap_or(0), &random)
        .into_uuid()
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
            application: None,
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
        Envelope::verify_signature(&bytes, Some(&sig), &env.consumer, &verifier, None).unwrap();
        let mut tampered = bytes.clone();
        let pos = tampered.iter().position(|b| *b == b'D').unwrap();
        tampered[pos] = b'E';
        assert!(
            Envelope::verify_signature(&tampered, Some(&sig), &env.consumer, &verifier, None)
                .is_err()
        );
        assert!(Envelope::verify_signature(&bytes, None, &env.consumer, &verifier, None).is_err());
        assert!(
            Envelope::verify_signature(&bytes, Some("AAAA"), &env.consumer, &verifier, None)
                .is_err()
        );
        assert_eq!(Envelope::parse(&bytes).unwrap(), env);
    }

    #[test]
    fn batch_signatures_verify_only_their_own_envelope_and_refuse_tampering() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let signer = GatewayKey::new("demo/social-welfare", key.clone()).unwrap();
        let verifier = signer.note_signer().verifier();
        let other = GatewayKey::new(
            "demo/social-welfare",
            ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
        )
        .unwrap()
        .note_signer()
        .verifier();
        let who = DeptId::new("social-welfare").unwrap();
        let bodies: Vec<Vec<u8>> = (0..7).map(|_| sample().to_bytes()).collect();
        let signatures = EnvelopeSignature::sign_batch(&bodies, &key);
        let cache = VerifiedBatches::default();
        let check = |body: &[u8], sig: &str, key: &NoteVerifier, cached: bool| {
            Envelope::verify_signature(body, Some(sig), &who, key, cached.then_some(&cache)).is_ok()
        };
        for cached in [false, true] {
            for (i, (body, sig)) in bodies.iter().zip(&signatures).enumerate() {
                let header = sig.to_header();
                assert_eq!(EnvelopeSignature::parse(&header).unwrap(), *sig);
                assert!(check(body, &header, &verifier, cached), "envelope {i}");
                assert!(
                    !check(&bodies[(i + 1) % 7], &header, &verifier, cached),
                    "another body"
                );
                assert!(!check(body, &header, &other, cached), "another key");
                let EnvelopeSignature::Batch(batch) = sig else {
                    panic!("{sig:?}")
                };
                let tampered = |f: &dyn Fn(&mut BatchSignature)| {
                    let mut b = batch.clone();
                    f(&mut b);
                    EnvelopeSignature::Batch(b).to_header()
                };
                let bad = [
                    tampered(&|b| b.proof[0][0] ^= 1),
                    tampered(&|b| b.index = (b.index + 1) % b.size),
                    tampered(&|b| b.size = 8),
                    tampered(&|b| {
                        b.proof.pop();
                    }),
                    tampered(&|b| b.proof.push([0; 32])),
                    tampered(&|b| {
                        let mut raw = b.signature.to_bytes();
                        raw[40] ^= 1;
                        b.signature = Signature::from_bytes(&raw);
                    }),
                ];
                for header in &bad {
                    assert!(!check(body, header, &verifier, cached), "{header}");
                }
            }
        }
        // Malformed headers: a lone batch, index past the size, an unknown format, a ragged proof,
        // oversized before decoding.
        let EnvelopeSignature::Batch(batch) = &signatures[0] else {
            unreachable!()
        };
        let b64 = |raw: &[u8]| base64::engine::general_purpose::STANDARD.encode(raw);
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(signatures[0].to_header())
            .unwrap();
        for (what, edit) in [
            (
                "size 1",
                &(|r: &mut Vec<u8>| r[1..3].copy_from_slice(&1u16.to_be_bytes()))
                    as &dyn Fn(&mut Vec<u8>),
            ),
            ("index = size", &|r: &mut Vec<u8>| {
                r[3..5].copy_from_slice(&7u16.to_be_bytes())
            }),
            ("format 2", &|r: &mut Vec<u8>| r[0] = 2),
            ("ragged proof", &|r: &mut Vec<u8>| r.push(0)),
            ("size 257", &|r: &mut Vec<u8>| {
                r[1..3].copy_from_slice(&257u16.to_be_bytes())
            }),
        ] {
            let mut r = raw.clone();
            edit(&mut r);
            assert!(EnvelopeSignature::parse(&b64(&r)).is_err(), "{what}");
        }
        raw.extend(std::iter::repeat_n(0, 32 * 9));
        assert!(EnvelopeSignature::parse(&b64(&raw)).is_err(), "too long");
        assert_eq!(batch.size, 7);
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
    fn exchange_ids_are_v7_now_and_distinct() {
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        let ids: std::collections::HashSet<uuid::Uuid> =
            (0..10_000).map(|_| exchange_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.get_version_num(), 7);
            let (secs, _) = id.get_timestamp().unwrap().to_unix();
            assert!((before..=before + 5).contains(&(secs as i64)), "{id}");
        }
        assert_ne!(nonce(), nonce());
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
