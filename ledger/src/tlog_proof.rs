//! C2SP tlog-proof@v1 evidence files (<https://c2sp.org/tlog-proof>): one log entry, its inclusion
//! proof and the (cosigned) checkpoint that covers it, verifiable offline with nothing but the
//! federation directory.
//!
//! This module owns the file format, building a file from the tree and a signed checkpoint, and the
//! offline verification chain: entry bytes -> leaf hash -> inclusion proof -> checkpoint root -> log
//! signature, plus the count of known witnesses that cosigned.
//!
//! Causeway always writes the `extra` line, with the entry's exact bytes. The spec makes `extra`
//! optional and unauthenticated ("Applications MUST NOT implicitly trust the extra data"); Causeway
//! does not trust it either: the entry counts only because its leaf hash is proven into a checkpoint
//! the log signed. A file without `extra` parses, but [`verify_tlog_proof`] then needs the leaf hash
//! from elsewhere ([`verify_tlog_proof_leaf`]).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::checkpoint::{verify_cosignatures, Checkpoint, CheckpointError, Cosignature};
use super::merkle::{
    inclusion_proof, leaf_hash, verify_inclusion, Hash, MerkleError, NodeSource, ProofError,
    MAX_PROOF_HASHES,
};
use super::note::{parse_note, NoteVerifier, MAX_NOTE_BYTES};

/// First line of a tlog-proof file (C2SP tlog-proof, "Format").
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Prefix of the optional extra-data line.
pub const EXTRA_PREFIX: &str = "extra ";
/// Prefix of the index line.
pub const INDEX_PREFIX: &str = "index ";
/// Recommended file extension (C2SP tlog-proof: "SHOULD be stored with file extension .tlog-proof").
pub const FILE_EXTENSION: &str = "tlog-proof";
/// Largest `extra` payload (the entry bytes) accepted, decoded.
pub const MAX_EXTRA_BYTES: usize = 64 * 1024;
/// Largest tlog-proof file accepted: header, extra, index and proof lines, and a note at its limit.
pub const MAX_TLOG_PROOF_BYTES: usize =
    MAX_NOTE_BYTES + MAX_EXTRA_BYTES.div_ceil(3) * 4 + (MAX_PROOF_HASHES + 8) * 64;

/// Errors from building, parsing and verifying tlog-proof files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// The file is larger than [`MAX_TLOG_PROOF_BYTES`].
    #[error("tlog-proof is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A line of the header section is missing or wrong.
    #[error("tlog-proof line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The extra data decodes to more than [`MAX_EXTRA_BYTES`].
    #[error("tlog-proof extra data exceeds {max} bytes")]
    ExtraTooLarge {
        /// The limit.
        max: usize,
    },
    /// More proof lines than any tree can need.
    #[error("tlog-proof has more than {max} inclusion proof hashes")]
    TooManyHashes {
        /// The limit.
        max: usize,
    },
    /// The embedded checkpoint does not open (signature, origin or format).
    #[error("tlog-proof checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The key valid for the checkpoint's size is revoked there.
    #[error("tlog-proof checkpoint: {0}")]
    KeyRefused(#[from] crate::keys::KeyRefusal),
    /// The file carries no `extra` line, so the entry cannot be re-hashed.
    #[error(
        "tlog-proof has no extra line, so it does not carry the entry; pass the leaf hash instead"
    )]
    NoEntry,
    /// The inclusion proof does not lead from the entry to the checkpoint's root.
    #[error("tlog-proof inclusion proof does not verify: {0}")]
    Proof(#[from] ProofError),
    /// Building: the tree store could not produce the proof.
    #[error("cannot build tlog-proof: {0}")]
    Tree(#[from] MerkleError),
    /// Building: the entry is not the one stored at `index`, or the checkpoint is not of this tree.
    #[error(
        "cannot build tlog-proof: the entry or checkpoint does not match the tree at index {index}"
    )]
    Mismatch {
        /// The index asked for.
        index: u64,
    },
}

/// A parsed tlog-proof@v1 file. Nothing in it is trusted until [`verify_tlog_proof`] succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque extra data; in Causeway, the entry's exact bytes.
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the entry in the log.
    pub index: u64,
    /// Inclusion proof, from the leaf's sibling up to the root's child (RFC 6962 section 2.1.1).
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim, with any cosignatures.
    pub checkpoint: String,
}

/// What an offline verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTlogProof {
    /// The checkpoint, signed by the log.
    pub checkpoint: Checkpoint,
    /// The entry's index.
    pub index: u64,
    /// The entry's leaf hash, proven into the checkpoint.
    pub leaf_hash: Hash,
    /// Cosignatures by distinct known witnesses.
    pub cosignatures: Vec<Cosignature>,
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl TlogProof {
    /// Builds the evidence for `entry` at `index` from the tree in `src` and a signed checkpoint of
    /// that tree. Refuses (rather than writing a file that cannot verify) if the entry is not the
    /// one stored at `index` or the checkpoint's root is not the tree's.
    pub fn build(
        src: &impl NodeSource,
        entry: &[u8],
        index: u64,
        checkpoint_note: &str,
    ) -> Result<Self, TlogProofError> {
        if entry.len() > MAX_EXTRA_BYTES {
            return Err(TlogProofError::ExtraTooLarge {
                max: MAX_EXTRA_BYTES,
            });
        }
        let note = parse_note(checkpoint_note).map_err(CheckpointError::from)?;
        let cp = Checkpoint::parse(&note.text)?;
        let proof = inclusion_proof(src, index, cp.size)?;
        verify_inclusion(&leaf_hash(entry), index, cp.size, &proof, &cp.root)
            .map_err(|_| TlogProofError::Mismatch { index })?;
        Ok(Self {
            extra: Some(entry.to_vec()),
            index,
            proof,
            checkpoint: checkpoint_note.to_owned(),
        })
    }

    /// The file text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(EXTRA_PREFIX);
            out.push_str(&BASE64.encode(extra));
            out.push('\n');
        }
        out.push_str(&format!("{INDEX_PREFIX}{}\n", self.index));
        for h in &self.proof {
            out.push_str(&BASE64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a tlog-proof file. The embedded checkpoint is checked only for note syntax here;
    /// [`verify_tlog_proof`] checks its signatures.
    pub fn parse(text: &str) -> Result<Self, TlogProofError> {
        if text.len() > MAX_TLOG_PROOF_BYTES {
            return Err(TlogProofError::TooLarge {
                len: text.len(),
                max: MAX_TLOG_PROOF_BYTES,
            });
        }
        let mut rest = text;
        let mut line_no = 0usize;
        let mut next_line = |what: &'static str| -> Result<(usize, &str), TlogProofError> {
            line_no += 1;
            let (line, after) = rest.split_once('\n').ok_or(TlogProofError::Malformed {
                line: line_no,
                reason: what,
            })?;
            rest = after;
            Ok((line_no, line))
        };
        let (n, header) = next_line("missing the c2sp.org/tlog-proof@v1 header line")?;
        if header != TLOG_PROOF_HEADER {
            return Err(TlogProofError::Malformed {
                line: n,
                reason: "first line is not c2sp.org/tlog-proof@v1",
            });
        }
        let (mut n, mut line) = next_line("missing the index line")?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix(EXTRA_PREFIX) {
            if b64.len() > MAX_EXTRA_BYTES.div_ceil(3) * 4 {
                return Err(TlogProofError::ExtraTooLarge {
                    max: MAX_EXTRA_BYTES,
                });
            }
            extra = Some(BASE64.decode(b64).map_err(|_| TlogProofError::Malformed {
                line: n,
                reason: "extra data is not standard padded base64",
            })?);
            (n, line) = next_line("missing the index line")?;
        }
        let index = line
            .strip_prefix(INDEX_PREFIX)
            .and_then(parse_decimal)
            .ok_or(TlogProofError::Malformed {
                line: n,
                reason: "expected \"index N\" with N decimal, without leading zeroes",
            })?;
        let mut proof = Vec::new();
        loop {
            let (n, line) = next_line("missing the blank line before the checkpoint")?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(TlogProofError::TooManyHashes {
                    max: MAX_PROOF_HASHES,
                });
            }
            let bad = TlogProofError::Malformed {
                line: n,
                reason: "proof line is not standard base64 of a 32-byte hash",
            };
            if line.len() != 44 {
                return Err(bad);
            }
            let hash: Hash = BASE64
                .decode(line)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(bad)?;
            proof.push(hash);
        }
        // The checkpoint is the rest of the file, verbatim; it must at least be a well-formed note.
        parse_note(rest).map_err(CheckpointError::from)?;
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint: rest.to_owned(),
        })
    }
}

/// Verifies a tlog-proof offline: re-hashes the entry carried in `extra`, checks the inclusion
/// proof against the checkpoint's root, checks the log's signature (origin must be the log key's
/// name) and every cosignature by a known witness. Returns what was proven, including how many known
/// witnesses cosigned; whether that number is enough is the caller's policy.
pub fn verify_tlog_proof(
    proof: &TlogProof,
    log: &NoteVerifier,
    witnesses: &[NoteVerifier],
) -> Result<VerifiedTlogProof, TlogProofError> {
    let entry = proof.extra.as_deref().ok_or(TlogProofError::NoEntry)?;
    verify_tlog_proof_leaf(proof, &leaf_hash(entry), log, witnesses)
}

/// [`verify_tlog_proof`] for a log whose key may have rotated: the checkpoint is checked under the
/// key `keys` names for its size (an evidence file made before a rotation keeps verifying), and
/// refused if that key is revoked at that size.
pub fn verify_tlog_proof_under(
    proof: &TlogProof,
    keys: &crate::keys::KeyHistory,
    witnesses: &[NoteVerifier],
) -> Result<VerifiedTlogProof, TlogProofError> {
    let log = keys.key_for_note(&proof.checkpoint)?;
    verify_tlog_proof(proof, log, witnesses)
}

/// Like [`verify_tlog_proof`], with the leaf hash supplied by the caller (for files without
/// `extra`, or when the entry is held separately).
pub fn verify_tlog_proof_leaf(
    proof: &TlogProof,
    leaf: &Hash,
    log: &NoteVerifier,
    witnesses: &[NoteVerifier],
) -> Result<VerifiedTlogProof, TlogProofError> {
    let (checkpoint, cosignatures) = verify_cosignatures(&proof.checkpoint, log, witnesses)?;
    verify_inclusion(
        leaf,
        proof.index,
        checkpoint.size,
        &proof.proof,
        &checkpoint.root,
    )?;
    Ok(VerifiedTlogProof {
        checkpoint,
        index: proof.index,
        leaf_hash: *leaf,
        cosignatures,
    })
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::sign_checkpoint;
    use super::super::merkle::MemoryTree;
    use super::super::note::{Cosigner, NoteSigner};
    use super::*;
    use ed25519_dalek::SigningKey;

    struct Fixture {
        tree: MemoryTree,
        entries: Vec<Vec<u8>>,
        log: NoteSigner,
        witnesses: Vec<Cosigner>,
        note: String,
    }

    fn fixture(size: u64) -> Fixture {
        let log =
            NoteSigner::new("causeway.example/tax", SigningKey::from_bytes(&[1; 32])).unwrap();
        let witnesses: Vec<Cosigner> = (0..3u8)
            .map(|i| {
                Cosigner::new(
                    &format!("causeway.example/w{i}"),
                    SigningKey::from_bytes(&[20 + i; 32]),
                )
                .unwrap()
            })
            .collect();
        let mut tree = MemoryTree::new();
        let mut entries = Vec::new();
        for i in 0..size {
            let e = format!("{{\"v\":1,\"index\":{i},\"kind\":\"exchange\"}}").into_bytes();
            tree.append_entry(&e);
            entries.push(e);
        }
        let cp = Checkpoint {
            origin: log.name().to_owned(),
            size,
            root: tree.root(),
            extensions: vec![],
        };
        let mut note = sign_checkpoint(&cp, &log).unwrap();
        for w in &witnesses[..2] {
            note.push_str(&w.cosign_line(&cp.to_text(), 1_700_000_000).unwrap());
        }
        Fixture {
            tree,
            entries,
            log,
            witnesses,
            note,
        }
    }

    #[test]
    fn build_print_parse_verify_round_trip() {
        let f = fixture(11);
        let known: Vec<NoteVerifier> = f.witnesses.iter().map(Cosigner::verifier).collect();
        for index in 0..11u64 {
            let entry = &f.entries[index as usize];
            let p = TlogProof::build(&f.tree, entry, index, &f.note).unwrap();
            let text = p.to_text();
            assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
            assert!(text.ends_with(&f.note));
            let parsed = TlogProof::parse(&text).unwrap();
            assert_eq!(parsed, p);
            let v = verify_tlog_proof(&parsed, &f.log.verifier(), &known).unwrap();
            assert_eq!(v.index, index);
            assert_eq!(v.leaf_hash, leaf_hash(entry));
            assert_eq!(v.checkpoint.size, 11);
            assert_eq!(
                v.cosignatures.len(),
                2,
                "two of the three known witnesses cosigned"
            );
        }
    }

    #[test]
    fn verification_catches_every_substitution() {
        let f = fixture(11);
        let p = TlogProof::build(&f.tree, &f.entries[5], 5, &f.note).unwrap();
        let log = f.log.verifier();
        // Another entry's bytes, another index, a tampered proof hash.
        let mut other = p.clone();
        other.extra = Some(f.entries[6].clone());
        assert!(verify_tlog_proof(&other, &log, &[]).is_err());
        let mut moved = p.clone();
        moved.index = 4;
        assert!(verify_tlog_proof(&moved, &log, &[]).is_err());
        let mut tampered = p.clone();
        tampered.proof[1][0] ^= 1;
        assert!(verify_tlog_proof(&tampered, &log, &[]).is_err());
        // Another log's key, and an unsigned extra line do not help.
        let stranger =
            NoteSigner::new("causeway.example/tax", SigningKey::from_bytes(&[2; 32])).unwrap();
        assert!(verify_tlog_proof(&p, &stranger.verifier(), &[]).is_err());
        let mut no_entry = p.clone();
        no_entry.extra = None;
        assert_eq!(
            verify_tlog_proof(&no_entry, &log, &[]),
            Err(TlogProofError::NoEntry)
        );
        verify_tlog_proof_leaf(&no_entry, &leaf_hash(&f.entries[5]), &log, &[]).unwrap();
        // Building refuses evidence that would not verify.
        assert!(matches!(
            TlogProof::build(&f.tree, &f.entries[6], 5, &f.note),
            Err(TlogProofError::Mismatch { index: 5 })
        ));
        assert!(TlogProof::build(&f.tree, &f.entries[5], 11, &f.note).is_err());
    }

    #[test]
    fn parser_follows_the_spec_layout_and_limits() {
        let f = fixture(3);
        let p = TlogProof::build(&f.tree, &f.entries[2], 2, &f.note).unwrap();
        let text = p.to_text();
        // Without extra, the index line comes second.
        let without = TlogProof {
            extra: None,
            ..p.clone()
        };
        assert_eq!(TlogProof::parse(&without.to_text()).unwrap(), without);
        // Size 1 trees have empty proofs: index line, then the blank line.
        let g = fixture(1);
        let single = TlogProof::build(&g.tree, &g.entries[0], 0, &g.note).unwrap();
        assert!(single.proof.is_empty());
        assert_eq!(TlogProof::parse(&single.to_text()).unwrap(), single);

        let cases = [
            (
                text.replacen("tlog-proof@v1", "tlog-proof@v2", 1),
                "wrong header",
            ),
            (text.replacen("index 2", "index 02", 1), "leading zero"),
            (text.replacen("index 2", "index -2", 1), "negative"),
            (text.replacen("index 2", "index  2", 1), "double space"),
            (text.replacen("index 2", "Index 2", 1), "capital"),
            (text.replacen("\nindex 2\n", "\n", 1), "no index"),
            (text.replacen("extra ", "extra !", 1), "bad base64"),
            (
                text.replacen("\n\n", "\n", 1),
                "no blank line before the checkpoint",
            ),
            (text.replacen("=\n", "\n", 1), "unpadded hash"),
            (text.replacen("\u{2014}", "-", 1), "checkpoint not a note"),
            (text[..text.len() - 1].to_string(), "truncated"),
            ("".to_string(), "empty"),
            ("c2sp.org/tlog-proof@v1".to_string(), "header only"),
        ];
        for (t, why) in cases {
            assert!(TlogProof::parse(&t).is_err(), "{why}: accepted {t:?}");
        }
        let hash_line = format!("{}\n", BASE64.encode([0u8; 32]));
        let many = format!(
            "{TLOG_PROOF_HEADER}\nindex 0\n{}\n{}",
            hash_line.repeat(MAX_PROOF_HASHES + 1),
            f.note
        );
        assert_eq!(
            TlogProof::parse(&many),
            Err(TlogProofError::TooManyHashes {
                max: MAX_PROOF_HASHES
            })
        );
        let huge = "x".repeat(MAX_TLOG_PROOF_BYTES + 1);
        assert!(matches!(
            TlogProof::parse(&huge),
            Err(TlogProofError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Any one-byte change to a valid file is either rejected or, if it only made a witness
        /// line unrecognizable, verifies with fewer cosignatures; it never proves anything new.
        #[test]
        fn every_mutation_is_caught(pos in 0usize..4096, byte in 0u8..128) {
            // Signing in debug builds is slow; build the file once for all cases.
            static FILE: std::sync::OnceLock<(String, NoteVerifier, Vec<NoteVerifier>)> =
                std::sync::OnceLock::new();
            let (text, log, known) = FILE.get_or_init(|| {
                let f = fixture(6);
                let known = f.witnesses.iter().map(Cosigner::verifier).collect();
                let text = TlogProof::build(&f.tree, &f.entries[3], 3, &f.note).unwrap().to_text();
                (text, f.log.verifier(), known)
            });
            let mut bytes = text.clone().into_bytes();
            let pos = pos % bytes.len();
            proptest::prop_assume!(bytes[pos] != byte && bytes[pos].is_ascii());
            bytes[pos] = byte;
            let mutated = String::from_utf8(bytes).unwrap();
            if let Ok(p) = TlogProof::parse(&mutated) {
                if let Ok(v) = verify_tlog_proof(&p, log, known) {
                    proptest::prop_assert!(v.cosignatures.len() < 2, "mutation at {} verified", pos);
                }
            }
        }

        /// Parsers return errors, never panic, on arbitrary text.
        #[test]
        fn parsers_never_panic(s in "(\\PC|\n|\u{2014} |index |extra |c2sp.org/tlog-proof@v1\n){0,64}") {
            let _ = TlogProof::parse(&s);
            let _ = parse_note(&s);
            let _ = Checkpoint::parse(&s);
        }
    }
}
