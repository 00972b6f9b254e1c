//! Hiding commitments to what an exchange released.
//!
//! An entry's `response_digest` (entry version 2) commits to the released payload with a salt only
//! the two parties hold: the envelope's random nonce, which travels in the signed envelope and is
//! stored in no ledger (the ledgers keep only the envelope's digest). Without the salt the
//! commitment cannot be checked against guesses, so nobody can recover a released row by trying
//! every id and income in a small space; with it, the consumer can open the commitment to anyone
//! and prove what it received ([`open`]).
//!
//! Version 1 entries hold a plain SHA-256 of the payload ([`legacy_digest`]); they stay as written.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Domain separation for version 2 commitments.
const DOMAIN: &[u8] = b"causeway/response-commitment/v2\n";

#[derive(Serialize)]
struct Payload<'a> {
    fields: &'a [String],
    rows: &'a [Vec<serde_json::Value>],
}

/// The commitment (SHA-256 hex) to `fields` and `rows` under `salt`: SHA-256 of the domain line,
/// the salt, a newline, and the canonical JSON `{"fields":[..],"rows":[..]}`.
pub fn response_commitment(
    salt: &str,
    fields: &[String],
    rows: &[Vec<serde_json::Value>],
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(salt.as_bytes());
    hasher.update(b"\n");
    serde_json::to_writer(&mut hasher, &Payload { fields, rows })
        .expect("JSON values always serialize");
    hex::encode(hasher.finalize())
}

/// A version 1 entry's `response_digest`: SHA-256 of the canonical JSON payload, unsalted.
pub fn legacy_digest(fields: &[String], rows: &[Vec<serde_json::Value>]) -> String {
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, &Payload { fields, rows })
        .expect("JSON values always serialize");
    hex::encode(hasher.finalize())
}

/// Whether `fields` and `rows` with `salt` open the commitment `digest` of an entry of version
/// `version` (for version 1 the salt is not used).
pub fn open(
    version: u32,
    digest: &str,
    salt: &str,
    fields: &[String],
    rows: &[Vec<serde_json::Value>],
) -> bool {
    let computed = match version {
        1 => legacy_digest(fields, rows),
        _ => response_commitment(salt, fields, rows),
    };
    computed == digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commitment_opens_only_with_its_salt_and_payload() {
        let fields = vec!["national_id".to_owned(), "income".to_owned()];
        let rows = vec![vec![serde_json::json!("D000042"), serde_json::json!(56408)]];
        let c = response_commitment("salt-1", &fields, &rows);
        assert!(open(2, &c, "salt-1", &fields, &rows));
        assert!(!open(2, &c, "salt-2", &fields, &rows), "another salt");
        let other = vec![vec![serde_json::json!("D000042"), serde_json::json!(56409)]];
        assert!(!open(2, &c, "salt-1", &fields, &other), "another payload");
        assert_ne!(
            c,
            legacy_digest(&fields, &rows),
            "a guess of the payload alone confirms nothing"
        );
        assert!(open(1, &legacy_digest(&fields, &rows), "", &fields, &rows));
    }
}
