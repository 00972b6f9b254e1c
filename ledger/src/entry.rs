//! One access-log entry: a UTF-8 JSON object, stored byte-for-byte as it was hashed.
//!
//! Field order is the struct's order, so the same entry always serializes to the same bytes.
//! Raw personal identifiers never appear here: officers and data subjects are keyed tags.

use serde::{Deserialize, Serialize};

/// Entry format version. Version 2: `response_digest` is a hiding commitment
/// ([`crate::commitment`]), and entries may name the consumer's `application` and be of kind
/// `refused`. Version 1 entries stay as they were written and verify as before.
pub const ENTRY_VERSION: u32 = 2;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An allowed exchange (its fetch may still have failed: see `outcome`).
    Exchange,
    /// A request the policy denied.
    Denied,
    /// A policy set took effect.
    PolicyChange,
    /// Requests refused without a decision of their own, so with no counterpart on the other side:
    /// at the consumer by its outbound rules, or by a rate limit at either side (then one entry
    /// per caller and window stands for them all, its `detail` giving the counts).
    Refused,
    /// An oversight query.
    OversightQuery,
    /// The log's signing key was handed over to a new one: `detail` is a
    /// [`crate::keys::Rotation`] signed by the old key, whose last checkpoint covers this entry.
    KeyRotation,
    /// A new version of the federation directory took effect at this gateway: its serial and
    /// hash, so that membership history is auditable.
    DirectoryChange,
    /// Evidence of two inconsistent checkpoints for one log.
    Fork,
    /// Oversight sealed a purpose (optionally for one consumer, `consumer`) until a date: its
    /// exchanges stay out of citizens' reports until then. `purpose`, `reason` (a code) and
    /// `detail.until` (`YYYY-MM-DD`) say what and until when.
    Seal,
    /// The oversight node's staff accounts changed (added, removed, disabled, enabled, roles,
    /// password): `detail.changes` says how, `detail.accounts` is the roster after it (names,
    /// roles, whether disabled, and a fingerprint of each password hash, never the hash).
    StaffChange,
}

impl Kind {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Exchange => "exchange",
            Kind::Denied => "denied",
            Kind::Refused => "refused",
            Kind::PolicyChange => "policy-change",
            Kind::OversightQuery => "oversight-query",
            Kind::KeyRotation => "key-rotation",
            Kind::DirectoryChange => "directory-change",
            Kind::Fork => "fork",
            Kind::Seal => "seal",
            Kind::StaffChange => "staff-change",
        }
    }
}

/// Which end of an exchange wrote the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// The department that held the data.
    Provider,
    /// The department that asked.
    Consumer,
}

/// The provider's receipt as the consumer records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerReceipt {
    /// The provider's log origin.
    pub log: String,
    /// Index of the provider's entry.
    pub index: u64,
    /// Its leaf hash (hex).
    pub leaf_hash: String,
    /// Size of the provider checkpoint that covered it.
    pub checkpoint_size: u64,
}

/// An access-log entry. `index`, `time` and `prev` are set by the ledger when it is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Format version.
    pub v: u32,
    /// Position in the log.
    pub index: u64,
    /// RFC 3339 UTC time of appending.
    pub time: String,
    /// What happened.
    pub kind: Kind,
    /// Provider or consumer side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Exchange id (the envelope's UUIDv7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Asking department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// Data-holding department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Dataset asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Stated purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Stated legal basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// Case reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// Keyed tag of the officer; absent when the application acted on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer: Option<String>,
    /// The consumer's application that asked (its id, as the consumer's gateway authenticated it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Keyed tags of the data subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// SHA-256 (hex) of the exact envelope bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
    /// SHA-256 (hex) of the released payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_digest: Option<String>,
    /// Fields released.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Rows released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// `allow` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Machine-readable reason code of the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule that decided, `file:line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `ok`, or the error code of a failed fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Content hash of the policy set in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Consumer side: the provider's receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_receipt: Option<PeerReceipt>,
    /// Kind-specific detail (for example a policy-change summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// Leaf hash (hex) of the previous entry; 64 zeros for the first.
    pub prev: String,
}

impl Entry {
    /// A blank entry of `kind`, for callers to fill in.
    pub fn new(kind: Kind) -> Self {
        Entry {
            v: ENTRY_VERSION,
            index: 0,
            time: String::new(),
            kind,
            side: None,
            id: None,
            consumer: None,
            provider: None,
            dataset: None,
            purpose: None,
            legal_basis: None,
            case: None,
            officer: None,
            application: None,
            subjects: Vec::new(),
            request_digest: None,
            response_digest: None,
            fields: Vec::new(),
            rows: None,
            decision: None,
            reason: None,
            rule: None,
            outcome: None,
            policy: None,
            peer_receipt: None,
            detail: None,
            prev: String::new(),
        }
    }

    /// The exact bytes that are stored and hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Sized for a typical entry (~900 bytes) so that writing it does not grow the buffer.
        let mut bytes = Vec::with_capacity(1024);
        serde_json::to_writer(&mut bytes, self)
            .expect("entries are plain data and always serialize");
        bytes
    }

    /// Parse stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// `prev` of the first entry.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_exactly() {
        let mut e = Entry::new(Kind::Exchange);
        e.id = Some("0190".into());
        e.subjects = vec!["ab".into()];
        e.prev = GENESIS_PREV.into();
        let bytes = e.to_bytes();
        let back = Entry::from_bytes(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.to_bytes(), bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\"v\":2,\"index\":0,"), "{text}");
        assert!(
            !text.contains("peer_receipt"),
            "absent fields are omitted: {text}"
        );
    }

    #[test]
    fn kinds_keep_their_wire_names() {
        // Adding a kind must not change how the others are written or read.
        for (kind, name) in [
            (Kind::Exchange, "exchange"),
            (Kind::OversightQuery, "oversight-query"),
            (Kind::Fork, "fork"),
            (Kind::Seal, "seal"),
            (Kind::StaffChange, "staff-change"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
            let back: Kind = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(back, kind);
        }
    }
}
