//! C2SP signed notes (<https://c2sp.org/signed-note>): the envelope in which the log signs its
//! checkpoints and in which witnesses add their cosignatures.
//!
//! This module owns the note wire format (text, blank line, signature lines), verifier keys
//! ("vkeys") as the federation directory lists them, Ed25519 note signing, and the rule for opening a
//! note against a set of known keys: unknown signers are ignored, a known signer whose signature does
//! not verify rejects the whole note, and at least one known signature must verify. It also
//! understands timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature, `cosignature/v1`)
//! as a second key type, so one verification path serves logs and witnesses.
//!
//! Every limit is checked before work is done on outside input: a note is at most
//! [`MAX_NOTE_BYTES`] long and carries at most [`MAX_SIGNATURES`] signature lines.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// Largest note accepted or produced, in bytes (text and signatures together).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted in one note. C2SP signed-note: verifiers "MUST accept at least up to
/// 16 signatures".
pub const MAX_SIGNATURES: usize = 16;
/// Longest key name accepted, in bytes; generous for schema-less URLs, and it bounds hashing work.
pub const MAX_KEY_NAME_BYTES: usize = 256;
/// Prefix of a signature line: em dash U+2014 and a space (C2SP signed-note, "Format").
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
/// Signature type byte of Ed25519 note signatures (C2SP signed-note, "Signature types").
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 witness cosignatures (C2SP signed-note "Signature
/// types"; C2SP tlog-cosignature).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Header line of the message a `cosignature/v1` signs (C2SP tlog-cosignature, "Ed25519 signed
/// message"), without its newline.
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1";
/// Prefix of an encoded private key, as golang.org/x/mod/sumdb/note writes it:
/// `PRIVATE+KEY+<name>+<hex key id>+base64(type || 32-byte seed)`.
pub const SKEY_PREFIX: &str = "PRIVATE+KEY+";
/// Length of an Ed25519 signature.
const ED25519_SIG_BYTES: usize = 64;
/// Length of a cosignature/v1 signature: 8-byte big-endian timestamp, then the Ed25519 signature.
const COSIGNATURE_V1_BYTES: usize = 8 + ED25519_SIG_BYTES;

/// Errors from parsing, signing and opening notes and from parsing keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note (or the text to sign) is larger than [`MAX_NOTE_BYTES`].
    #[error("note is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A control character other than newline appears in the note.
    #[error("note contains the control character U+{code:04X}; only newline is allowed")]
    ControlCharacter {
        /// The offending code point.
        code: u32,
    },
    /// The note text is empty or does not end in a newline.
    #[error("note text must be non-empty and end with a newline")]
    TextNotNewlineTerminated,
    /// There is no blank line separating text from signatures.
    #[error("note has no blank line before its signature lines, so it is unsigned or truncated")]
    MissingSignatures,
    /// A line in the signature block is not `— <name> <base64>`.
    #[error("malformed signature line {line}: {reason}")]
    MalformedSignatureLine {
        /// 1-based number of the line within the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The note has more signature lines than [`MAX_SIGNATURES`].
    #[error("note has more than {max} signature lines")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A key name is empty, too long, or contains a space or '+'.
    #[error("key name {name:?} is invalid: names must be non-empty, at most 256 bytes, with no spaces, '+' or control characters")]
    InvalidKeyName {
        /// The rejected name.
        name: String,
    },
    /// A vkey or skey string is malformed.
    #[error("malformed key {what}: {reason}")]
    MalformedKey {
        /// Which kind of key ("verifier key" or "signing key").
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key names a signature type this module does not implement.
    #[error("key uses signature type 0x{0:02x}; only Ed25519 (0x01) and cosignature/v1 (0x04) are supported")]
    UnsupportedKeyType(u8),
    /// The key id written in a key does not match the id computed from its name and public key.
    #[error("key id {written:08x} does not match {computed:08x} computed from the key's name and public key")]
    KeyIdMismatch {
        /// The id in the encoded key.
        written: u32,
        /// The id computed from name, type and public key.
        computed: u32,
    },
    /// A signature from a known key (same name and key id) did not verify: the note was altered or
    /// forged, and is rejected as a whole.
    #[error("signature by known key {name} (id {key_id:08x}) does not verify: the note was altered or forged")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key id.
        key_id: u32,
    },
    /// No signature from any of the known keys is present.
    #[error("note is not signed by any known key")]
    NoKnownSignature,
    /// A cosignature's timestamp is larger than 2^63 - 1 (C2SP tlog-cosignature).
    #[error("cosignature timestamp {0} exceeds 2^63 - 1")]
    TimestampOutOfRange(u64),
    /// The operation needs a different key type (e.g. signing a plain note with a cosigner key).
    #[error("key {name} has type 0x{actual:02x}, but this operation needs type 0x{needed:02x}")]
    WrongKeyType {
        /// Key name.
        name: String,
        /// The key's type byte.
        actual: u8,
        /// The type byte needed.
        needed: u8,
    },
}

/// The kind of signatures a key makes; the byte value is the C2SP signature type identifier that
/// enters the key id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// Ed25519 over the note text (type 0x01): log checkpoint signatures.
    Ed25519,
    /// Timestamped Ed25519 witness cosignature over `cosignature/v1\ntime <t>\n` + text (type 0x04).
    CosignatureV1,
}

impl KeyType {
    /// The C2SP signature type identifier byte.
    pub fn type_byte(self) -> u8 {
        match self {
            KeyType::Ed25519 => SIG_TYPE_ED25519,
            KeyType::CosignatureV1 => SIG_TYPE_COSIGNATURE_V1,
        }
    }

    fn from_byte(b: u8) -> Result<Self, NoteError> {
        match b {
            SIG_TYPE_ED25519 => Ok(KeyType::Ed25519),
            SIG_TYPE_COSIGNATURE_V1 => Ok(KeyType::CosignatureV1),
            other => Err(NoteError::UnsupportedKeyType(other)),
        }
    }
}

/// Checks a key name against C2SP signed-note: non-empty, no Unicode spaces, no '+'; we also refuse
/// control characters (a note cannot carry them) and names over [`MAX_KEY_NAME_BYTES`].
pub fn validate_key_name(name: &str) -> Result<(), NoteError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_KEY_NAME_BYTES
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(NoteError::InvalidKeyName {
            name: name.chars().take(MAX_KEY_NAME_BYTES).collect(),
        })
    }
}

/// Key id: SHA-256(name || 0x0A || type || public key)[:4], big-endian (C2SP signed-note).
pub fn key_id(name: &str, key_type: KeyType, public_key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', key_type.type_byte()]);
    h.update(public_key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Checks size, control characters and the trailing newline of note text or a whole note.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge {
            len: text.len(),
            max: MAX_NOTE_BYTES,
        });
    }
    if let Some(c) = text.chars().find(|&c| c < ' ' && c != '\n') {
        return Err(NoteError::ControlCharacter { code: u32::from(c) });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotNewlineTerminated);
    }
    Ok(())
}

/// The message a cosignature/v1 signs: header line, time line, then the note text.
pub fn cosignature_v1_message(text: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{text}")
}

fn signature_line(name: &str, key_id: u32, sig: &[u8]) -> String {
    let mut raw = Vec::with_capacity(4 + sig.len());
    raw.extend_from_slice(&key_id.to_be_bytes());
    raw.extend_from_slice(sig);
    format!("{SIGNATURE_LINE_PREFIX}{name} {}\n", BASE64.encode(raw))
}

/// A log's note-signing key: a key name and an Ed25519 key (signature type 0x01).
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    // The private key never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` (which must be a valid key name, and for a log, its origin).
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        let key_id = key_id(name, KeyType::Ed25519, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a private key in golang.org/x/mod/sumdb/note form:
    /// `PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || 32-byte seed)`.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        const WHAT: &str = "signing key";
        let rest = skey
            .strip_prefix(SKEY_PREFIX)
            .ok_or(NoteError::MalformedKey {
                what: WHAT,
                reason: "does not start with PRIVATE+KEY+",
            })?;
        let (name, written, key) = split_key(rest, WHAT)?;
        let key_type = KeyType::from_byte(*key.first().ok_or(NoteError::MalformedKey {
            what: WHAT,
            reason: "key material is empty",
        })?)?;
        if key_type != KeyType::Ed25519 {
            return Err(NoteError::WrongKeyType {
                name: name.to_owned(),
                actual: key_type.type_byte(),
                needed: SIG_TYPE_ED25519,
            });
        }
        let seed: [u8; 32] = key[1..].try_into().map_err(|_| NoteError::MalformedKey {
            what: WHAT,
            reason: "Ed25519 seed must be 32 bytes",
        })?;
        let signer = Self::new(name, SigningKey::from_bytes(&seed))?;
        if signer.key_id != written {
            return Err(NoteError::KeyIdMismatch {
                written,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The private key in golang.org/x/mod/sumdb/note form (see [`NoteSigner::from_skey`]). Secret:
    /// write it only to files readable by the gateway.
    pub fn to_skey(&self) -> String {
        let mut raw = vec![SIG_TYPE_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{SKEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(raw)
        )
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id (SHA-256(name || 0x0A || 0x01 || public key)[:4]).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier, for the federation directory.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key_type: KeyType::Ed25519,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline, with no other control characters) and returns the
    /// signature line, `— <name> base64(key id || signature)\n`, to add to a note.
    pub fn sign_line(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        Ok(signature_line(&self.name, self.key_id, &sig.to_bytes()))
    }

    /// Signs `text` and returns the full note: text, blank line, this key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        let line = self.sign_line(text)?;
        Ok(format!("{text}\n{line}"))
    }
}

/// A witness's cosigning key (C2SP tlog-cosignature, `cosignature/v1`, signature type 0x04): signs
/// `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint text.
///
/// The signed message does not commit to the cosigner's name, so one Ed25519 key must never serve
/// two cosigner names, and a gateway's witness key should differ from its log key.
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for Cosigner {
    // The private key never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner named `name` (a valid key name, usually the witness's schema-less URL).
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        let key_id = key_id(name, KeyType::CosignatureV1, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id (SHA-256(name || 0x0A || 0x04 || public key)[:4]).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier (vkey type 0x04), for the federation directory.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key_type: KeyType::CosignatureV1,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns note `text` (a checkpoint body, newline-terminated) as of `timestamp` (POSIX
    /// seconds, at most 2^63 - 1) and returns the signature line
    /// `— <name> base64(key id || u64 timestamp || signature)\n`. The caller supplies the time, so
    /// this stays free of clocks.
    pub fn cosign_line(&self, text: &str, timestamp: u64) -> Result<String, NoteError> {
        check_text(text)?;
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::TimestampOutOfRange(timestamp));
        }
        let sig = self
            .key
            .sign(cosignature_v1_message(text, timestamp).as_bytes());
        let mut raw = Vec::with_capacity(COSIGNATURE_V1_BYTES);
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(signature_line(&self.name, self.key_id, &raw))
    }
}

/// Splits `<name>+<8 hex digits>+<base64>` into its parts.
fn split_key<'a>(s: &'a str, what: &'static str) -> Result<(&'a str, u32, Vec<u8>), NoteError> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey {
            what,
            reason: "expected <name>+<hex key id>+<base64 key>",
        });
    };
    validate_key_name(name)?;
    // Lowercase only, as every implementation prints it, so a key has one written form.
    if id_hex.len() != 8
        || !id_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(NoteError::MalformedKey {
            what,
            reason: "key id must be exactly 8 lowercase hex digits",
        });
    }
    let written = u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::MalformedKey {
        what,
        reason: "key id must be exactly 8 hex digits",
    })?;
    if key64.len() > 128 {
        return Err(NoteError::MalformedKey {
            what,
            reason: "key material is too long",
        });
    }
    let key = BASE64.decode(key64).map_err(|_| NoteError::MalformedKey {
        what,
        reason: "key material is not standard padded base64",
    })?;
    Ok((name, written, key))
}

/// A known public key that signatures are checked against: name, key id, type and Ed25519 key.
/// Written as a vkey, `name+hexkeyid+base64(type || public key)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key_type: KeyType,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `key` under `name` and `key_type`.
    pub fn new(name: &str, key_type: KeyType, key: VerifyingKey) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, key_type, &key),
            key_type,
            key,
        })
    }

    /// Parses a vkey, `name+hexkeyid+base64(type || pubkey)`, where keyid = SHA-256(name || 0x0A ||
    /// type || pubkey)[:4] big-endian; type 0x01 (Ed25519) or 0x04 (cosignature/v1).
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        const WHAT: &str = "verifier key";
        let (name, written, key) = split_key(vkey, WHAT)?;
        let (&type_byte, pk) = key.split_first().ok_or(NoteError::MalformedKey {
            what: WHAT,
            reason: "key material is empty",
        })?;
        let key_type = KeyType::from_byte(type_byte)?;
        let pk: [u8; 32] = pk.try_into().map_err(|_| NoteError::MalformedKey {
            what: WHAT,
            reason: "Ed25519 public key must be 32 bytes",
        })?;
        let key = VerifyingKey::from_bytes(&pk).map_err(|_| NoteError::MalformedKey {
            what: WHAT,
            reason: "not a valid Ed25519 public key",
        })?;
        let v = Self::new(name, key_type, key)?;
        if v.key_id != written {
            return Err(NoteError::KeyIdMismatch {
                written,
                computed: v.key_id,
            });
        }
        Ok(v)
    }

    /// The vkey form (see [`NoteVerifier::from_vkey`]).
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![self.key_type.type_byte()];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(raw))
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// What kind of signatures this key makes.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether a signature line names this key (same name and key id).
    pub fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }

    /// Verifies `sig` over note `text`. For cosignature/v1 keys returns the cosignature's timestamp.
    /// The signature must come from this key (see [`NoteVerifier::matches`]).
    pub fn verify(&self, text: &str, sig: &NoteSignature) -> Result<Option<u64>, NoteError> {
        let bad = || NoteError::BadSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        if !self.matches(sig) {
            return Err(bad());
        }
        match self.key_type {
            KeyType::Ed25519 => {
                let s = Signature::from_slice(&sig.signature).map_err(|_| bad())?;
                if !verify_strict(&self.key, text.as_bytes(), &s) {
                    return Err(bad());
                }
                Ok(None)
            }
            KeyType::CosignatureV1 => {
                if sig.signature.len() != COSIGNATURE_V1_BYTES {
                    return Err(bad());
                }
                let (ts, raw) = sig.signature.split_at(8);
                let mut ts_bytes = [0u8; 8];
                ts_bytes.copy_from_slice(ts);
                let timestamp = u64::from_be_bytes(ts_bytes);
                if timestamp > i64::MAX as u64 {
                    return Err(bad());
                }
                let s = Signature::from_slice(raw).map_err(|_| bad())?;
                let msg = cosignature_v1_message(text, timestamp);
                if !verify_strict(&self.key, msg.as_bytes(), &s) {
                    return Err(bad());
                }
                Ok(Some(timestamp))
            }
        }
    }
}

/// Ed25519 verification exactly as strict as `VerifyingKey::verify_strict`, without the square
/// root it spends on decompressing `R` (about a sixth of a verification).
///
/// `verify_strict` decompresses `R` only to refuse a small-order `R` (and a small-order key), then
/// accepts if `[s]B - [k]A` compresses to `R`'s bytes, which is also all that plain `verify` checks.
/// A compression is canonical and decompresses, so once those bytes match, `R` is that point, and
/// comparing `R`'s bytes with the canonical encodings of the eight small-order points refuses
/// exactly what `verify_strict` refuses. `strict_verification_agrees_with_dalek` checks this on
/// valid, tampered, small-order, torsioned, non-canonical and weak-key signatures.
pub fn verify_strict(key: &VerifyingKey, msg: &[u8], sig: &Signature) -> bool {
    static SMALL_ORDER: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    let small_order = SMALL_ORDER.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|point| point.compress().to_bytes())
    });
    !key.is_weak() && !small_order.contains(sig.r_bytes()) && key.verify(msg, sig).is_ok()
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_vkey(s)
    }
}

/// One signature line of a note: the key name, key id and signature bytes (for cosignature/v1, the
/// 8-byte timestamp followed by the Ed25519 signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id.
    pub key_id: u32,
    /// Signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, `— <name> base64(key id || signature)\n`.
    pub fn to_line(&self) -> String {
        signature_line(&self.name, self.key_id, &self.signature)
    }
}

/// A parsed but not yet verified note. Its text must be ignored until [`open_note`] has verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline (not the blank separator line).
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// The note in wire form: text, blank line, signature lines.
    pub fn to_wire(&self) -> String {
        let mut out = format!("{}\n", self.text);
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out
    }
}

fn parse_signature_line(line: &str, n: usize) -> Result<NoteSignature, NoteError> {
    let bad = |reason| NoteError::MalformedSignatureLine { line: n, reason };
    let rest = line
        .strip_prefix(SIGNATURE_LINE_PREFIX)
        .ok_or_else(|| bad("does not start with an em dash (U+2014) and a space"))?;
    let (name, sig64) = rest
        .split_once(' ')
        .ok_or_else(|| bad("expected a key name, a space and a base64 signature"))?;
    validate_key_name(name).map_err(|_| bad("key name is empty or contains spaces or '+'"))?;
    let raw = BASE64
        .decode(sig64)
        .map_err(|_| bad("signature is not standard padded base64"))?;
    if raw.len() < 5 {
        return Err(bad("signature is shorter than a key id and one byte"));
    }
    let key_id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id,
        signature: raw[4..].to_vec(),
    })
}

/// Parses a signed note without verifying it: text ending in newline, a blank line, then one or more
/// signature lines `— <name> <base64>`, each ending in newline.
pub fn parse_note(msg: &str) -> Result<Note, NoteError> {
    check_text(msg)?;
    // The text is separated from the signatures by the last empty line.
    let split = msg.rfind("\n\n").ok_or(NoteError::MissingSignatures)?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if sigs.is_empty() {
        return Err(NoteError::MissingSignatures);
    }
    let body = sigs
        .strip_suffix('\n')
        .ok_or(NoteError::TextNotNewlineTerminated)?;
    let mut signatures = Vec::new();
    for (i, line) in body.split('\n').enumerate() {
        if i >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        signatures.push(parse_signature_line(line, i + 1)?);
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

/// A signature on an opened note that verified against a known key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The key that made it.
    pub verifier: NoteVerifier,
    /// The cosignature timestamp (POSIX seconds) for cosignature/v1 keys; `None` for plain Ed25519.
    pub timestamp: Option<u64>,
}

/// Parses `msg` and verifies every signature from a key in `known` (matched by name and key id).
/// Signatures from other keys are ignored; a known key's signature that fails to verify rejects the
/// whole note; at least one known signature must verify. Returns every verified signature, in note
/// order.
pub fn open_note_signatures(
    msg: &str,
    known: &[NoteVerifier],
) -> Result<(Note, Vec<VerifiedSignature>), NoteError> {
    let note = parse_note(msg)?;
    let mut verified = Vec::new();
    for sig in &note.signatures {
        if let Some(v) = known.iter().find(|v| v.matches(sig)) {
            let timestamp = v.verify(&note.text, sig)?;
            verified.push(VerifiedSignature {
                verifier: v.clone(),
                timestamp,
            });
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok((note, verified))
}

/// Verify against known verifiers; Ok(list of verifiers that signed) if at least one known
/// verifier's signature verifies; unknown signers ignored; a signature line from a known name+keyid
/// that does NOT verify is an error. Each verifier is listed once even if it signed twice.
pub fn open_note(
    msg: &str,
    known: &[NoteVerifier],
) -> Result<(Note, Vec<NoteVerifier>), NoteError> {
    let (note, verified) = open_note_signatures(msg, known)?;
    let mut signers: Vec<NoteVerifier> = Vec::new();
    for v in verified {
        if !signers.contains(&v.verifier) {
            signers.push(v.verifier);
        }
    }
    Ok((note, signers))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                              then you don't know what your problem is.\n";
    const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
        then you don't know what your problem is.\n\
        \n\
        \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn go_sumdb_note_example_verifies_and_reproduces() {
        let v = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id(), 0xc74f20a3);
        let (note, signers) = open_note(PETER_NOTE, std::slice::from_ref(&v)).unwrap();
        assert_eq!(note.text, PETER_TEXT);
        assert_eq!(signers, vec![v.clone()]);
        assert_eq!(note.to_wire(), PETER_NOTE);

        let s = NoteSigner::from_skey(PETER_SKEY).unwrap();
        assert_eq!(s.verifier(), v);
        assert_eq!(s.to_skey(), PETER_SKEY);
        // Ed25519 is deterministic: the same key over the same text gives the same note.
        assert_eq!(s.sign(PETER_TEXT).unwrap(), PETER_NOTE);
    }

    #[test]
    fn vkey_round_trips_and_rejects_bad_forms() {
        let v: NoteVerifier = PETER_VKEY.parse().unwrap();
        assert_eq!(v.to_string(), PETER_VKEY);
        assert_eq!(NoteVerifier::from_vkey(&v.to_vkey()).unwrap(), v);
        let w = signer("example.com/w1", 9);
        let cos = NoteVerifier::new(
            "example.com/w1",
            KeyType::CosignatureV1,
            *w.verifier().public_key(),
        )
        .unwrap();
        assert_eq!(cos.to_vkey().parse::<NoteVerifier>().unwrap(), cos);
        assert_ne!(cos.key_id(), w.key_id(), "type byte enters the key id");

        for bad in [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(NoteVerifier::from_vkey(bad).is_err(), "{bad:?} accepted");
        }
        // Unknown type byte 0x02 (ECDSA) is refused as unsupported.
        let mut raw = vec![0x02];
        raw.extend_from_slice(v.public_key().as_bytes());
        let ecdsa = format!("PeterNeumann+c74f20a3+{}", BASE64.encode(raw));
        assert_eq!(
            NoteVerifier::from_vkey(&ecdsa),
            Err(NoteError::UnsupportedKeyType(0x02))
        );
    }

    #[test]
    fn open_ignores_unknown_keys_and_rejects_bad_known_signatures() {
        let log = signer("example.com/log", 1);
        let other = signer("example.com/other", 2);
        let text = "hello\n";
        let note = log.sign(text).unwrap();
        let both = format!("{note}{}", other.sign_line(text).unwrap());
        let (_, signers) = open_note(&both, &[log.verifier()]).unwrap();
        assert_eq!(signers, vec![log.verifier()]);
        let (_, signers) = open_note(&both, &[other.verifier(), log.verifier()]).unwrap();
        assert_eq!(signers, vec![log.verifier(), other.verifier()]);
        assert_eq!(
            open_note(&note, &[other.verifier()]),
            Err(NoteError::NoKnownSignature)
        );
        // Same name, other key id: ignored, not an error.
        let impostor = signer("example.com/log", 3);
        assert_eq!(
            open_note(&note, &[impostor.verifier()]),
            Err(NoteError::NoKnownSignature)
        );
        // Altered text under a known key: rejected as a whole even if another known key verifies.
        let forged = format!(
            "hellO\n\n{}{}",
            log.sign_line(text).unwrap(),
            other.sign_line("hellO\n").unwrap()
        );
        assert!(matches!(
            open_note(&forged, &[log.verifier(), other.verifier()]),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn parser_rejects_malformed_notes() {
        let log = signer("example.com/log", 1);
        let good = log.sign("a\n\nb\n").unwrap();
        let n = parse_note(&good).unwrap();
        assert_eq!(n.text, "a\n\nb\n", "text may contain blank lines");
        let line = log.sign_line("x\n").unwrap();
        let cases: Vec<(String, &str)> = vec![
            ("x\n".into(), "no signatures"),
            ("x\n\n".into(), "empty signature block"),
            (format!("x\n{line}"), "no blank line"),
            (format!("x\n\n{}", line.trim_end()), "no final newline"),
            (format!("x\n\n{line}\n"), "trailing blank line"),
            (format!("x\r\n\n{line}"), "control character"),
            (
                format!("x\n\n{}", line.replace('\u{2014}', "-")),
                "hyphen, not em dash",
            ),
            (
                format!("x\n\n{}", line.replace("\u{2014} ", "\u{2014}")),
                "no space",
            ),
            (
                "x\n\n\u{2014} name AAAA\n".to_string(),
                "signature too short",
            ),
            ("x\n\n\u{2014} name AAAAAAA=!\n".to_string(), "bad base64"),
            ("x\n\n\u{2014} na+me AAAAAAA=\n".to_string(), "plus in name"),
            ("x\n\n\u{2014}  AAAAAAA=\n".to_string(), "empty name"),
            (
                "x\n\n".to_string() + &line.repeat(MAX_SIGNATURES + 1),
                "too many",
            ),
            (
                format!("{}\n\n{line}", "y".repeat(MAX_NOTE_BYTES)),
                "too large",
            ),
        ];
        for (msg, why) in cases {
            assert!(parse_note(&msg).is_err(), "{why}: accepted {msg:?}");
        }
        let max = "x\n\n".to_string() + &line.repeat(MAX_SIGNATURES);
        assert_eq!(parse_note(&max).unwrap().signatures.len(), MAX_SIGNATURES);
    }

    #[test]
    fn cosignatures_sign_the_spec_message_and_verify() {
        let log = signer("example.com/log", 1);
        let text = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let key = SigningKey::from_bytes(&[4; 32]);
        let w = Cosigner::new("witness.example/w1", key.clone()).unwrap();
        let line = w.cosign_line(text, 1679315147).unwrap();
        let note = format!("{}{line}", log.sign(text).unwrap());
        let (_, sigs) = open_note_signatures(&note, &[log.verifier(), w.verifier()]).unwrap();
        assert_eq!(sigs.len(), 2);
        assert_eq!(sigs[0].timestamp, None);
        assert_eq!(sigs[1].verifier, w.verifier());
        assert_eq!(sigs[1].timestamp, Some(1679315147));

        // The line carries key id || big-endian timestamp || an Ed25519 signature over exactly the
        // message the spec shows; check it with dalek directly, not with our verify code.
        let parsed = parse_note(&note).unwrap().signatures[1].clone();
        assert_eq!(parsed.key_id, w.key_id());
        assert_eq!(parsed.signature[..8], 1679315147u64.to_be_bytes());
        let spec_msg = format!("cosignature/v1\ntime 1679315147\n{text}");
        let sig = Signature::from_slice(&parsed.signature[8..]).unwrap();
        key.verifying_key()
            .verify_strict(spec_msg.as_bytes(), &sig)
            .unwrap();

        // A changed timestamp breaks it; a cosigner key does not verify a plain log signature.
        let mut moved = parsed.clone();
        moved.signature[7] ^= 1;
        assert!(w.verifier().verify(text, &moved).is_err());
        let as_log =
            NoteVerifier::new("witness.example/w1", KeyType::Ed25519, key.verifying_key()).unwrap();
        assert_eq!(
            open_note(&note, &[as_log]).unwrap_err(),
            NoteError::NoKnownSignature
        );
        assert_eq!(
            w.cosign_line(text, 1 << 63),
            Err(NoteError::TimestampOutOfRange(1 << 63))
        );
    }

    #[test]
    fn signing_refuses_bad_text_and_names() {
        let log = signer("example.com/log", 1);
        assert!(log.sign("no newline").is_err());
        assert!(log.sign("tab\there\n").is_err());
        assert!(log.sign("").is_err());
        for name in ["", "a b", "a+b", "a\u{00a0}b", "a\nb"] {
            assert!(
                NoteSigner::new(name, SigningKey::from_bytes(&[1; 32])).is_err(),
                "{name:?}"
            );
        }
        assert!(!format!("{log:?}").contains(&BASE64.encode([1u8; 32])));
    }

    #[test]
    fn strict_verification_agrees_with_dalek() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
        use curve25519_dalek::edwards::CompressedEdwardsY;
        use curve25519_dalek::Scalar;
        use sha2::Sha512;

        let scalar = |tag: &str, i: usize| {
            Scalar::from_bytes_mod_order_wide(&Sha512::digest(format!("{tag}{i}")).into())
        };
        // The signature (R, s) a key with secret scalar `a` makes over `msg` with nonce point `r`,
        // whatever `r` is: s = nonce + H(R || A || msg) a.
        let sign_with = |a: Scalar, key: &[u8; 32], r: [u8; 32], nonce: Scalar, msg: &[u8]| {
            let k = Scalar::from_hash(
                Sha512::new()
                    .chain_update(r)
                    .chain_update(key)
                    .chain_update(msg),
            );
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(&r);
            bytes[32..].copy_from_slice((nonce + k * a).as_bytes());
            Signature::from_bytes(&bytes)
        };
        let mut cases: Vec<(VerifyingKey, Vec<u8>, Signature, &str)> = Vec::new();
        for i in 0..32 {
            let secret = SigningKey::from_bytes(&[i as u8; 32]);
            let key = secret.verifying_key();
            let a = secret.to_scalar();
            let msg = format!("message {i}").into_bytes();
            let good = secret.sign(&msg);
            cases.push((key, msg.clone(), good, "valid"));
            cases.push((key, b"another message".to_vec(), good, "another message"));
            let mut flipped = good.to_bytes();
            flipped[i % 64] ^= 1 << (i % 8);
            cases.push((
                key,
                msg.clone(),
                Signature::from_bytes(&flipped),
                "a bit flipped",
            ));
            for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
                // R with a small-order component (valid only for the identity component), signed with
                // the secret: only the signer can make these.
                let nonce = scalar("nonce", i * 8 + t);
                let r = (nonce * B + torsion).compress().to_bytes();
                let sig = sign_with(a, key.as_bytes(), r, nonce, &msg);
                cases.push((key, msg.clone(), sig, "torsioned R"));
                // R itself of small order, with s = 0 or s from the secret.
                let r = torsion.compress().to_bytes();
                let mut zero = [0u8; 64];
                zero[..32].copy_from_slice(&r);
                cases.push((
                    key,
                    msg.clone(),
                    Signature::from_bytes(&zero),
                    "small-order R, s = 0",
                ));
                let sig = sign_with(a, key.as_bytes(), r, Scalar::ZERO, &msg);
                cases.push((key, msg.clone(), sig, "small-order R, signed"));
                // A small-order key, under which plain verify accepts what anyone makes: R and s = 0
                // both small order, or R = [s]B + T where T = -[k]A happens to hold.
                let weak = VerifyingKey::from_bytes(&torsion.compress().to_bytes()).unwrap();
                for r in EIGHT_TORSION {
                    let mut sig = [0u8; 64];
                    sig[..32].copy_from_slice(r.compress().as_bytes());
                    cases.push((weak, msg.clone(), Signature::from_bytes(&sig), "weak key"));
                }
                for guess in EIGHT_TORSION {
                    let nonce = scalar("weak", i * 8 + t);
                    let r = (nonce * B + guess).compress().to_bytes();
                    let k = Scalar::from_hash(
                        Sha512::new()
                            .chain_update(r)
                            .chain_update(weak.as_bytes())
                            .chain_update(&msg),
                    );
                    if -(k * torsion) == guess {
                        let mut sig = [0u8; 64];
                        sig[..32].copy_from_slice(&r);
                        sig[32..].copy_from_slice(nonce.as_bytes());
                        cases.push((weak, msg.clone(), Signature::from_bytes(&sig), "weak key"));
                    }
                }
            }
        }
        // Non-canonical encodings of small-order points: y = 1 + p, and y = 1 with the sign bit set
        // (x = 0 has no negative).
        for r in [
            {
                let mut y = [0xffu8; 32];
                y[0] = 0xee;
                y[31] = 0x7f;
                y
            },
            {
                let mut y = [0u8; 32];
                y[0] = 1;
                y[31] = 0x80;
                y
            },
        ] {
            let secret = SigningKey::from_bytes(&[7; 32]);
            assert!(CompressedEdwardsY(r).decompress().is_some());
            let sig = sign_with(
                secret.to_scalar(),
                secret.verifying_key().as_bytes(),
                r,
                Scalar::ZERO,
                b"m",
            );
            cases.push((
                secret.verifying_key(),
                b"m".to_vec(),
                sig,
                "non-canonical small-order R",
            ));
        }

        let mut accepted = 0;
        for (key, msg, sig, what) in &cases {
            let dalek = key.verify_strict(msg, sig).is_ok();
            assert_eq!(verify_strict(key, msg, sig), dalek, "{what}: {sig:?}");
            accepted += usize::from(dalek);
        }
        // Each kind of case occurred, and only the valid signatures (and the torsioned R whose
        // component is the identity) were accepted.
        assert_eq!(accepted, 64, "of {} cases", cases.len());
        for what in ["weak key", "small-order R, signed"] {
            assert!(
                cases
                    .iter()
                    .any(|(key, msg, sig, w)| *w == what && key.verify(msg, sig).is_ok()),
                "no {what} case that plain verify accepts: the case tests nothing"
            );
        }
    }
}
