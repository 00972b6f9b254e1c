//! C2SP tlog-checkpoint (<https://c2sp.org/tlog-checkpoint>): the signed statement "the log with this
//! origin has this many entries and this Merkle root".
//!
//! This module owns the checkpoint body (origin line, decimal tree size, base64 root, optional
//! extension lines), signing it as a log, and opening a signed checkpoint against the log's key from
//! the federation directory. Everything that accepts a checkpoint from a peer goes through
//! [`open_checkpoint`], so a checkpoint is never used before its signature and origin are checked.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::merkle::Hash;
use super::note::{
    open_note_signatures, parse_note, KeyType, NoteError, NoteSigner, NoteVerifier,
    VerifiedSignature,
};

/// Most extension lines accepted after the root line. C2SP tlog-checkpoint does not recommend
/// extension lines at all; a few are allowed so that a future Causeway version can add one.
pub const MAX_EXTENSION_LINES: usize = 8;
/// Longest decimal tree size: u64::MAX has 20 digits.
const MAX_SIZE_DIGITS: usize = 20;

/// Errors from parsing, signing and opening checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed-note envelope is malformed or its signatures do not verify.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint text does not end in a newline or has fewer than three lines.
    #[error(
        "checkpoint text must be at least three newline-terminated lines (origin, size, root)"
    )]
    Truncated,
    /// The origin line is empty or contains spaces, '+' or control characters.
    #[error(
        "checkpoint origin {origin:?} is invalid: it must be non-empty, with no spaces or '+'"
    )]
    BadOrigin {
        /// The rejected origin (truncated to 256 bytes).
        origin: String,
    },
    /// The size line is not a decimal number without leading zeroes that fits 64 bits.
    #[error("checkpoint size {line:?} is not a decimal number without leading zeroes below 2^64")]
    BadSize {
        /// The rejected line (truncated to 32 bytes).
        line: String,
    },
    /// The root line is not standard base64 of exactly 32 bytes.
    #[error("checkpoint root hash is not standard padded base64 of exactly 32 bytes")]
    BadRoot,
    /// An extension line is empty (a blank line cannot appear inside a checkpoint).
    #[error("checkpoint extension line {index} is empty")]
    EmptyExtension {
        /// 0-based index among the extension lines.
        index: usize,
    },
    /// An extension line contains a newline or other control character.
    #[error("checkpoint extension line {index} contains a control character")]
    BadExtension {
        /// 0-based index among the extension lines.
        index: usize,
    },
    /// More extension lines than [`MAX_EXTENSION_LINES`].
    #[error("checkpoint has more than {max} extension lines")]
    TooManyExtensions {
        /// The limit.
        max: usize,
    },
    /// The checkpoint's origin is not the log key's name, so this key may not vouch for it.
    #[error("checkpoint origin {origin:?} does not match the log key name {key_name:?}")]
    OriginMismatch {
        /// Origin line of the checkpoint.
        origin: String,
        /// Name of the log key.
        key_name: String,
    },
    /// The note is signed, but not by the log whose key was given.
    #[error("checkpoint is not signed by the log key {key_name}")]
    NotSignedByLog {
        /// Name of the log key.
        key_name: String,
    },
    /// The key valid for the checkpoint's size is revoked there (or its size cannot be read).
    #[error("{0}")]
    KeyRefused(crate::keys::KeyRefusal),
}

/// A log checkpoint: the tree head the log commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin; in Causeway, also the name of the log's note key.
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 6962 root hash of the tree of `size` entries.
    pub root: Hash,
    /// Opaque extension lines, without their newlines. Usually empty.
    pub extensions: Vec<String>,
}

fn truncated(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// C2SP tlog-checkpoint requires a non-empty origin and recommends no spaces and no '+'. Causeway
/// enforces the recommendation because an origin must also be usable as the log's key name.
fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    let ok = !origin.is_empty()
        && !origin
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(CheckpointError::BadOrigin {
            origin: truncated(origin, 256),
        })
    }
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    let bad = || CheckpointError::BadSize {
        line: truncated(line, 32),
    };
    if line.is_empty()
        || line.len() > MAX_SIZE_DIGITS
        || !line.bytes().all(|b| b.is_ascii_digit())
        || (line.len() > 1 && line.starts_with('0'))
    {
        return Err(bad());
    }
    line.parse::<u64>().map_err(|_| bad())
}

impl Checkpoint {
    /// Checks the fields against the format rules (the same ones [`Checkpoint::parse`] applies).
    pub fn validate(&self) -> Result<(), CheckpointError> {
        check_origin(&self.origin)?;
        if self.extensions.len() > MAX_EXTENSION_LINES {
            return Err(CheckpointError::TooManyExtensions {
                max: MAX_EXTENSION_LINES,
            });
        }
        for (index, e) in self.extensions.iter().enumerate() {
            if e.is_empty() {
                return Err(CheckpointError::EmptyExtension { index });
            }
            if e.chars().any(char::is_control) {
                return Err(CheckpointError::BadExtension { index });
            }
        }
        Ok(())
    }

    /// The note text: `origin\nsize\nbase64(root)\n` followed by the extension lines.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Parses checkpoint note text (the text of an opened note, not the whole signed note).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > super::note::MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len: text.len(),
                max: super::note::MAX_NOTE_BYTES,
            }
            .into());
        }
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Truncated)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::Truncated);
        };
        check_origin(origin)?;
        let size = parse_size(size)?;
        if root.len() != 44 {
            return Err(CheckpointError::BadRoot);
        }
        let root: Hash = BASE64
            .decode(root)
            .map_err(|_| CheckpointError::BadRoot)?
            .try_into()
            .map_err(|_| CheckpointError::BadRoot)?;
        let mut extensions = Vec::new();
        for (index, line) in lines.enumerate() {
            if index >= MAX_EXTENSION_LINES {
                return Err(CheckpointError::TooManyExtensions {
                    max: MAX_EXTENSION_LINES,
                });
            }
            extensions.push(line.to_owned());
        }
        let cp = Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        };
        cp.validate()?;
        Ok(cp)
    }
}

/// Signs `cp` as the log and returns the signed note. The signer's key name must be the origin.
pub fn sign_checkpoint(cp: &Checkpoint, signer: &NoteSigner) -> Result<String, CheckpointError> {
    cp.validate()?;
    if cp.origin != signer.name() {
        return Err(CheckpointError::OriginMismatch {
            origin: cp.origin.clone(),
            key_name: signer.name().to_owned(),
        });
    }
    Ok(signer.sign(&cp.to_text())?)
}

/// Opens a signed checkpoint: the log's signature must verify, the origin must equal the log key's
/// name, and every signature from a key in `others` (typically witnesses) must verify too.
/// Returns the checkpoint and the verified signatures other than the log's.
pub fn open_checkpoint_with(
    note: &str,
    log: &NoteVerifier,
    others: &[NoteVerifier],
) -> Result<(Checkpoint, Vec<VerifiedSignature>), CheckpointError> {
    // A log signs with a plain Ed25519 note key; a cosigner key must not pass for the log.
    if log.key_type() != KeyType::Ed25519 {
        return Err(NoteError::WrongKeyType {
            name: log.name().to_owned(),
            actual: log.key_type().type_byte(),
            needed: KeyType::Ed25519.type_byte(),
        }
        .into());
    }
    let mut known = Vec::with_capacity(others.len() + 1);
    known.push(log.clone());
    known.extend(others.iter().filter(|o| *o != log).cloned());
    let (opened, verified) = open_note_signatures(note, &known)?;
    let (by_log, rest): (Vec<_>, Vec<_>) = verified.into_iter().partition(|v| v.verifier == *log);
    if by_log.is_empty() {
        return Err(CheckpointError::NotSignedByLog {
            key_name: log.name().to_owned(),
        });
    }
    let cp = Checkpoint::parse(&opened.text)?;
    if cp.origin != log.name() {
        return Err(CheckpointError::OriginMismatch {
            origin: cp.origin,
            key_name: log.name().to_owned(),
        });
    }
    Ok((cp, rest))
}

/// Opens many checkpoints of one log at once (a log's stored history): each note must be a
/// checkpoint of `log` carrying exactly one signature line by the log, and all those signatures
/// are verified as one Ed25519 batch, about twice as fast as one by one. Returns the checkpoints,
/// or `None` if anything is wrong; the caller then opens the notes one by one with
/// [`open_checkpoint`] to learn which one failed and why.
///
/// Batch verification uses the cofactored equation, which accepts some signatures with a
/// small-order component that [`open_checkpoint`]'s strict check refuses. The log's own key never
/// makes such a signature and a forger cannot make one that verifies, so for re-checking a log's
/// history the difference does not matter; checkpoints from peers always go through
/// [`open_checkpoint`].
pub fn open_checkpoint_batch(notes: &[&str], log: &NoteVerifier) -> Option<Vec<Checkpoint>> {
    if log.key_type() != KeyType::Ed25519 {
        return None;
    }
    let mut texts = Vec::with_capacity(notes.len());
    let mut signatures = Vec::with_capacity(notes.len());
    let mut checkpoints = Vec::with_capacity(notes.len());
    for note in notes {
        let note = parse_note(note).ok()?;
        let mut by_log = note.signatures.iter().filter(|s| log.matches(s));
        let (Some(signature), None) = (by_log.next(), by_log.next()) else {
            return None;
        };
        signatures.push(ed25519_dalek::Signature::from_slice(&signature.signature).ok()?);
        let cp = Checkpoint::parse(&note.text).ok()?;
        if cp.origin != log.name() {
            return None;
        }
        checkpoints.push(cp);
        texts.push(note.text);
    }
    let messages: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    let keys = vec![*log.public_key(); notes.len()];
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).ok()?;
    Some(checkpoints)
}

/// Opens a signed checkpoint: requires the log's signature and origin == log name. Signatures from
/// other keys are ignored.
pub fn open_checkpoint(note: &str, log: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
    open_checkpoint_with(note, log, &[]).map(|(cp, _)| cp)
}

/// A witness cosignature (C2SP tlog-cosignature, `cosignature/v1`) that verified on a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness key that made it.
    pub witness: NoteVerifier,
    /// When the witness cosigned, as POSIX seconds (the witness's claim; not checked against a clock).
    pub timestamp: u64,
}

/// Opens a signed checkpoint and verifies the cosignatures of known `witnesses` (keys of type
/// cosignature/v1). The log's signature is required; a known witness's cosignature that fails to
/// verify rejects the note; unknown signatures are ignored. Each witness is counted once (its first
/// cosignature), so the length of the list is the number of distinct known witnesses that cosigned.
pub fn verify_cosignatures(
    note: &str,
    log: &NoteVerifier,
    witnesses: &[NoteVerifier],
) -> Result<(Checkpoint, Vec<Cosignature>), CheckpointError> {
    let (cp, others) = open_checkpoint_with(note, log, witnesses)?;
    let mut cosignatures: Vec<Cosignature> = Vec::new();
    for v in others {
        if let Some(timestamp) = v.timestamp {
            if !cosignatures.iter().any(|c| c.witness == v.verifier) {
                cosignatures.push(Cosignature {
                    witness: v.verifier,
                    timestamp,
                });
            }
        }
    }
    Ok((cp, cosignatures))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    /// The example body of C2SP tlog-checkpoint.
    const SPEC_TEXT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn log(name: &str) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[7; 32])).unwrap()
    }

    #[test]
    fn spec_example_parses_and_prints_back() {
        let cp = Checkpoint::parse(SPEC_TEXT).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(
            hex::encode(cp.root),
            "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"
        );
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.to_text(), SPEC_TEXT);
        let with_ext = format!("{SPEC_TEXT}ext one\next two\n");
        let cp = Checkpoint::parse(&with_ext).unwrap();
        assert_eq!(cp.extensions, vec!["ext one", "ext two"]);
        assert_eq!(cp.to_text(), with_ext);
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let cases = [
            (format!("o\n1\n{root}"), "no final newline"),
            ("o\n1\n".to_string(), "no root"),
            (format!("\n1\n{root}\n"), "empty origin"),
            (format!("o x\n1\n{root}\n"), "space in origin"),
            (format!("o+x\n1\n{root}\n"), "plus in origin"),
            (format!("o\n01\n{root}\n"), "leading zero"),
            (format!("o\n00\n{root}\n"), "double zero"),
            (format!("o\n+1\n{root}\n"), "sign"),
            (format!("o\n-1\n{root}\n"), "negative"),
            (format!("o\n \n{root}\n"), "blank size"),
            (format!("o\n18446744073709551616\n{root}\n"), "2^64"),
            (format!("o\n1\n{}\n", &root[..43]), "short root"),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_string(),
                "unpadded",
            ),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_string(),
                "non-canonical",
            ),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".to_string(),
                "url alphabet",
            ),
            (format!("o\n1\n{root}\n\n"), "empty extension"),
            (
                format!("o\n1\n{root}\n{}", "e\n".repeat(MAX_EXTENSION_LINES + 1)),
                "many extensions",
            ),
        ];
        for (text, why) in cases {
            assert!(
                Checkpoint::parse(&text).is_err(),
                "{why}: accepted {text:?}"
            );
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
            0
        );
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size,
            u64::MAX
        );
    }

    #[test]
    fn sign_and_open_round_trip() {
        let signer = log("causeway.example/tax");
        let cp = Checkpoint {
            origin: "causeway.example/tax".into(),
            size: 42,
            root: [9; 32],
            extensions: vec![],
        };
        let note = sign_checkpoint(&cp, &signer).unwrap();
        assert_eq!(open_checkpoint(&note, &signer.verifier()).unwrap(), cp);

        // Another key with the same name does not vouch for it.
        let impostor =
            NoteSigner::new("causeway.example/tax", SigningKey::from_bytes(&[8; 32])).unwrap();
        assert!(open_checkpoint(&note, &impostor.verifier()).is_err());
        // A tampered size fails the signature.
        let tampered = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            open_checkpoint(&tampered, &signer.verifier()),
            Err(CheckpointError::Note(NoteError::BadSignature { .. }))
        ));
    }

    #[test]
    fn cosignatures_are_counted_per_known_witness() {
        use super::super::note::Cosigner;
        let signer = log("causeway.example/tax");
        let cp = Checkpoint {
            origin: "causeway.example/tax".into(),
            size: 7,
            root: [3; 32],
            extensions: vec![],
        };
        let note = sign_checkpoint(&cp, &signer).unwrap();
        let w1 =
            Cosigner::new("causeway.example/health", SigningKey::from_bytes(&[11; 32])).unwrap();
        let w2 =
            Cosigner::new("causeway.example/police", SigningKey::from_bytes(&[12; 32])).unwrap();
        let stranger =
            Cosigner::new("elsewhere.example", SigningKey::from_bytes(&[13; 32])).unwrap();
        let text = cp.to_text();
        let cosigned = format!(
            "{note}{}{}{}{}",
            w1.cosign_line(&text, 100).unwrap(),
            w1.cosign_line(&text, 101).unwrap(),
            stranger.cosign_line(&text, 102).unwrap(),
            w2.cosign_line(&text, 103).unwrap(),
        );
        let known = [w1.verifier(), w2.verifier()];
        let (got, cos) = verify_cosignatures(&cosigned, &signer.verifier(), &known).unwrap();
        assert_eq!(got, cp);
        let seen: Vec<(&str, u64)> = cos
            .iter()
            .map(|c| (c.witness.name(), c.timestamp))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("causeway.example/health", 100),
                ("causeway.example/police", 103)
            ]
        );
        // A cosignature over other text (here: another size) from a known witness rejects the note.
        let other = Checkpoint {
            size: 8,
            ..cp.clone()
        }
        .to_text();
        let bad = format!("{note}{}", w1.cosign_line(&other, 100).unwrap());
        assert!(verify_cosignatures(&bad, &signer.verifier(), &known).is_err());
        // A witness key cannot stand in for the log key, even over its own cosignature.
        assert!(matches!(
            open_checkpoint(&cosigned, &w1.verifier()),
            Err(CheckpointError::Note(NoteError::WrongKeyType { .. }))
        ));
        // Cosignatures alone never replace the log's signature.
        let only_witness = format!("{text}\n{}", w1.cosign_line(&text, 1).unwrap());
        assert!(matches!(
            verify_cosignatures(&only_witness, &signer.verifier(), &known),
            Err(CheckpointError::NotSignedByLog { .. })
        ));
    }

    #[test]
    fn origin_must_be_the_log_key_name() {
        let signer = log("causeway.example/tax");
        let cp = Checkpoint {
            origin: "causeway.example/health".into(),
            size: 1,
            root: [0; 32],
            extensions: vec![],
        };
        assert!(matches!(
            sign_checkpoint(&cp, &signer),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        // Even a validly signed note is refused if its origin names another log.
        let note = signer.sign(&cp.to_text()).unwrap();
        assert!(matches!(
            open_checkpoint(&note, &signer.verifier()),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        // Signed only by a witness, not by the log: refused.
        let witness = NoteSigner::new("w.example", SigningKey::from_bytes(&[5; 32])).unwrap();
        let good = Checkpoint {
            origin: "causeway.example/tax".into(),
            ..cp
        };
        let by_witness = witness.sign(&good.to_text()).unwrap();
        assert!(matches!(
            open_checkpoint_with(&by_witness, &signer.verifier(), &[witness.verifier()]),
            Err(CheckpointError::NotSignedByLog { .. })
        ));
    }
}
