//! The signed directory: `federation.toml` as the federation operator publishes it, a C2SP signed
//! note whose text is the directory with its `serial` and `expires` set, signed by the operator's
//! key (`<federation>/directory`, made by `causeway certs init`).
//!
//! ```text
//! serial = 7
//! expires = "2027-01-05T00:00:00Z"
//! federation = "demo"
//!
//! [[department]]
//! ...
//!
//! — demo/directory Az3b...
//! ```
//!
//! A gateway puts a published directory in force only if the operator's signature verifies, it
//! has not expired, and its serial is above the one in force (no rollback). The signed bytes are
//! what a gateway hashes and notarizes, so any two parties holding the same file agree on its hash.

use causeway_ledger::note::{self, NoteSigner, NoteVerifier, MAX_NOTE_BYTES};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Directory;

/// The largest signed directory read (the signed-note limit): room for a few hundred departments.
pub const MAX_DIRECTORY_BYTES: usize = MAX_NOTE_BYTES;

/// Why a published directory was not put in force. Each says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// It could not be read.
    #[error("{from}: cannot read the directory: {problem}")]
    Unreadable {
        /// Where it was read from.
        from: String,
        /// What went wrong.
        problem: String,
    },
    /// It is not a signed note, or its text is not a valid directory.
    #[error("{from}: malformed directory: {problem}")]
    Malformed {
        /// Where it was read from.
        from: String,
        /// What is wrong.
        problem: String,
    },
    /// No signature of the federation operator's key verifies.
    #[error("{from}: the directory is not signed by the federation operator's key {key} ({problem}); publish it with `causeway federation publish`, and check `directory_key` in this gateway's config")]
    BadSignature {
        /// Where it was read from.
        from: String,
        /// The operator key's name.
        key: String,
        /// What the signature check said.
        problem: String,
    },
    /// It has no serial or expiry (an unpublished source file).
    #[error("{from}: the directory has no `{field}`: it is the operator's source file, not a published directory; run `causeway federation publish`")]
    Unpublished {
        /// Where it was read from.
        from: String,
        /// The missing field.
        field: &'static str,
    },
    /// Its expiry has passed.
    #[error("{from}: the directory (serial {serial}) expired at {expires}; the operator must publish a fresh one (`causeway federation publish`)")]
    Expired {
        /// Where it was read from.
        from: String,
        /// Its serial.
        serial: u64,
        /// When it expired.
        expires: String,
    },
    /// Its serial is below the one in force: an old directory replayed.
    #[error("{from}: the directory's serial {serial} is older than the one in force ({in_force}); a directory is never rolled back, publish a newer one")]
    Rollback {
        /// Where it was read from.
        from: String,
        /// Its serial.
        serial: u64,
        /// The serial in force.
        in_force: u64,
    },
    /// The same serial with different contents: the operator signed two directories under one
    /// serial (or its key is misused).
    #[error("{from}: the directory's serial {serial} is the one in force but its contents differ; every published change needs a new serial")]
    Conflict {
        /// Where it was read from.
        from: String,
        /// Its serial.
        serial: u64,
    },
    /// It is for another federation.
    #[error(
        "{from}: the directory is for federation {found:?}, this node belongs to {expected:?}"
    )]
    OtherFederation {
        /// Where it was read from.
        from: String,
        /// The federation it names.
        found: String,
        /// This node's federation.
        expected: String,
    },
}

/// A directory whose signature, serial and expiry were checked.
#[derive(Debug, Clone)]
pub struct Published {
    /// The directory.
    pub directory: Directory,
    /// Its serial.
    pub serial: u64,
    /// When it expires.
    pub expires: OffsetDateTime,
    /// SHA-256 (hex) of the published file's exact bytes.
    pub hash: String,
}

/// The directory text of a published file (without its signature lines); any other text as is.
pub fn body(text: &str) -> &str {
    match text.rfind("\n\n") {
        Some(split) if text[split + 2..].starts_with(note::SIGNATURE_LINE_PREFIX) => {
            &text[..split + 1]
        }
        _ => text,
    }
}

/// SHA-256 (hex) of published bytes.
pub fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check a published directory read from `from` against the operator's key, at `now`: signature,
/// presence of serial and expiry, expiry. (Rollback is the caller's check: it knows what is in
/// force.)
pub fn open(
    bytes: &[u8],
    operator: &NoteVerifier,
    now: OffsetDateTime,
    from: &str,
) -> Result<Published, DirectoryError> {
    let malformed = |problem: String| DirectoryError::Malformed {
        from: from.to_owned(),
        problem,
    };
    if bytes.len() > MAX_DIRECTORY_BYTES {
        return Err(malformed(format!(
            "{} bytes, more than the {MAX_DIRECTORY_BYTES} a directory may have",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
    let parsed =
        note::parse_note(text).map_err(|e| malformed(format!("not a signed note: {e}")))?;
    note::open_note_signatures(text, std::slice::from_ref(operator)).map_err(|e| {
        DirectoryError::BadSignature {
            from: from.to_owned(),
            key: operator.name().to_owned(),
            problem: e.to_string(),
        }
    })?;
    let directory = Directory::parse(&parsed.text).map_err(|e| malformed(format!("{e:#}")))?;
    let unpublished = |field| DirectoryError::Unpublished {
        from: from.to_owned(),
        field,
    };
    let serial = directory.serial.ok_or_else(|| unpublished("serial"))?;
    let expires = directory.expires.ok_or_else(|| unpublished("expires"))?;
    if expires <= now {
        return Err(DirectoryError::Expired {
            from: from.to_owned(),
            serial,
            expires: expires.format(&Rfc3339).unwrap_or_default(),
        });
    }
    Ok(Published {
        directory,
        serial,
        expires,
        hash: hash(bytes),
    })
}

/// Publish the operator's `source` directory: check it, set `serial` and `expires`, add the
/// federation CA's `crl` (PEM) if given, and sign it with `operator`. The source must not set
/// `serial`, `expires` or `crl` itself.
pub fn publish(
    source: &str,
    operator: &NoteSigner,
    serial: u64,
    expires: OffsetDateTime,
    crl: Option<&str>,
) -> anyhow::Result<String> {
    let source = body(source);
    let checked = Directory::parse(source)?;
    anyhow::ensure!(
        checked.serial.is_none() && checked.expires.is_none() && checked.crl.is_none(),
        "the source directory sets `serial`, `expires` or `crl`: remove them, `causeway federation publish` sets them"
    );
    let expires = expires.replace_nanosecond(0)?.format(&Rfc3339)?;
    let crl = match crl {
        Some(pem) => format!("crl = '''\n{}\n'''\n", pem.trim()),
        None => String::new(),
    };
    let text = format!(
        "# Published by `causeway federation publish`; edit the source and publish again.\nserial = {serial}\nexpires = \"{expires}\"\n{crl}{}\n",
        source.trim_end()
    );
    Directory::parse(&text).map_err(|e| anyhow::anyhow!("the CRL cannot be published: {e:#}"))?;
    // Tabs and other control characters cannot be signed: say where they are.
    if let Some((n, _)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.chars().any(|c| c.is_control()))
    {
        anyhow::bail!(
            "line {} of the source holds a tab or another control character, which a signed directory cannot carry; use spaces",
            n.saturating_sub(2)
        );
    }
    let signature = operator.sign_line(&text)?;
    Ok(format!("{text}\n{signature}"))
}

/// Publish the source file `source` signed with the operator's key file `key`, valid for `valid`,
/// with the CRL file `crl` if given, to `out`: the serial is one above the one `out` holds now (1
/// for a first publication). The file is replaced atomically (written beside it, then renamed), so
/// a gateway never reads half of it. Returns the serial.
pub fn publish_file(
    source: &std::path::Path,
    key: &std::path::Path,
    crl: Option<&std::path::Path>,
    out: &std::path::Path,
    valid: time::Duration,
) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("{}: cannot read the source directory", source.display()))?;
    let operator = crate::identity::GatewayKey::load(key)?;
    let previous = match std::fs::read_to_string(out) {
        Ok(published) => Directory::parse(body(&published))
            .with_context(|| format!("{}: the directory published there does not parse; move it away to start the serials again", out.display()))?
            .serial
            .unwrap_or(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let serial = previous + 1;
    let crl = crl
        .map(|p| {
            std::fs::read_to_string(p).with_context(|| format!("reading the CRL {}", p.display()))
        })
        .transpose()?;
    let published = publish(
        &text,
        operator.note_signer(),
        serial,
        OffsetDateTime::now_utc() + valid,
        crl.as_deref(),
    )
    .with_context(|| format!("{}", source.display()))?;
    let tmp = out.with_extension("publishing");
    std::fs::write(&tmp, published).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(serial)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    const SOURCE: &str =
        "federation = \"demo\"\n\n[[oversight]]\nid = \"audit\"\nname = \"Audit\"\n";

    fn operator(seed: u8) -> NoteSigner {
        NoteSigner::new("demo/directory", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn published(serial: u64) -> String {
        publish(
            SOURCE,
            &operator(1),
            serial,
            now() + time::Duration::days(1),
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_published_directory_opens_under_the_operator_key() {
        let text = published(3);
        let p = open(text.as_bytes(), &operator(1).verifier(), now(), "f").unwrap();
        assert_eq!(p.serial, 3);
        assert_eq!(p.directory.federation, "demo");
        assert_eq!(p.hash, hash(text.as_bytes()));
        // Tools read the same file without the key.
        assert_eq!(Directory::parse(body(&text)).unwrap().serial, Some(3));
    }

    #[test]
    fn hostile_directories_are_refused_naming_what_is_wrong() {
        let key = operator(1).verifier();
        let good = published(3);
        let err = |bytes: &[u8]| open(bytes, &key, now(), "f").unwrap_err().to_string();
        // Another key signed it.
        let other = publish(
            SOURCE,
            &operator(2),
            3,
            now() + time::Duration::days(1),
            None,
        )
        .unwrap();
        assert!(err(other.as_bytes()).contains("not signed by the federation operator"));
        // One byte of the text changed after signing.
        let tampered = good.replace("name = \"Audit\"", "name = \"Audi7\"");
        assert!(err(tampered.as_bytes()).contains("not signed by the federation operator"));
        // Expired.
        let old = publish(
            SOURCE,
            &operator(1),
            3,
            now() - time::Duration::seconds(1),
            None,
        )
        .unwrap();
        assert!(err(old.as_bytes()).contains("expired"));
        // Unsigned, malformed, oversized, not UTF-8.
        assert!(err(SOURCE.as_bytes()).contains("malformed"));
        assert!(err(b"\xff\xfe").contains("not UTF-8"));
        assert!(err(&vec![b'a'; MAX_DIRECTORY_BYTES + 1]).contains("more than"));
        let garbage = operator(1).sign("federation = [1\n").unwrap();
        assert!(err(garbage.as_bytes()).contains("malformed"));
        // Signed, but never published (no serial).
        let raw = operator(1).sign(SOURCE).unwrap();
        assert!(err(raw.as_bytes()).contains("no `serial`"));
    }

    #[test]
    fn the_source_may_not_set_what_publish_sets() {
        let with_serial = format!("serial = 9\n{SOURCE}");
        assert!(publish(&with_serial, &operator(1), 1, now(), None).is_err());
        let with_tab = SOURCE.replace("name = ", "name =\t");
        let e = publish(&with_tab, &operator(1), 1, now(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tab"), "{e}");
        // Publishing a published file republishes its body.
        let again = publish(
            &published(3),
            &operator(1),
            4,
            now() + time::Duration::days(1),
            None,
        )
        .unwrap_err();
        assert!(again.to_string().contains("sets `serial`"), "{again}");
        // A CRL that is not one is never published.
        let crl = publish(
            SOURCE,
            &operator(1),
            1,
            now(),
            Some("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
        );
        assert!(crl.unwrap_err().to_string().contains("CRL"));
        assert!(publish(SOURCE, &operator(1), 1, now(), Some("not a crl")).is_err());
    }
}
