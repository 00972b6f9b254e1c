//! Rotating a department gateway's log signing key without a restart (docs/OPERATIONS.md,
//! "Rotating a signing key").
//!
//! The operator replaces the file `[identity] signing_key` names with a new key of the same name
//! (the log origin). The gateway reads the file again every `[identity] crl_reload_secs` (when its
//! bytes changed) and on SIGHUP, like its certificate, and when it holds another valid key, the
//! ledger appends a `key-rotation` entry signed by the key in force
//! ([`causeway_ledger::Ledger::rotate_key`]); from the next checkpoint on, the ledger signs with
//! the new key, and so do envelopes. Receipts carry the ledger's checkpoints, so they follow.
//! The gateway logs the size to give `causeway federation rotate-key --until-size`; peers check
//! the new key once the operator publishes the directory that lists it.
//!
//! A file watch rather than an admin endpoint: the key never travels over a socket, the
//! operator's step is the same as for a certificate, and a gateway restarted after the file
//! changed finds the rotation already in its ledger (or, if it was stopped before it saw the
//! file, refuses to open a ledger the new key never took over, saying so).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use causeway_ledger::Ledger;
use tokio::sync::watch;

use crate::exchange::signer::EnvelopeSigner;
use crate::identity::GatewayKey;

/// Watches the signing key file and hands the log over to a new key found there.
pub struct SigningKeyWatch {
    /// `[identity] signing_key`.
    pub path: PathBuf,
    /// How often the file is read again (`[identity] crl_reload_secs`).
    pub every: Duration,
    /// The ledger whose key rotates.
    pub ledger: Arc<Ledger>,
    /// The envelope signer, given the new key once the ledger has handed over.
    pub signer: Arc<EnvelopeSigner>,
    /// Whether the witness key is a file of its own: without one it derives from the signing key
    /// and would change with it, so rotation is refused.
    pub witness_key_file: bool,
}

/// What a look at the key file found.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyFile {
    /// The key in force.
    Unchanged,
    /// A new key, now in force: the old key's last checkpoint has this size.
    Rotated {
        /// Index of the `key-rotation` entry + 1.
        until_size: u64,
        /// The new key's vkey.
        vkey: String,
    },
}

impl SigningKeyWatch {
    /// Read the key file once and, if it holds another key for this log, rotate to it.
    pub async fn check(&self) -> Result<KeyFile, String> {
        let new = GatewayKey::load(&self.path).map_err(|e| e.to_string())?;
        let in_force = self.ledger.verifier();
        if new.vkey() == in_force.to_vkey() {
            return Ok(KeyFile::Unchanged);
        }
        if new.note_signer().name() != in_force.name() {
            return Err(format!(
                "{}: the key is named {:?}, but this gateway's log is {:?}; a new log key keeps the log's origin as its name",
                self.path.display(),
                new.note_signer().name(),
                in_force.name()
            ));
        }
        if !self.witness_key_file {
            return Err(format!(
                "{}: not rotating: [identity] witness_key is not set, so this gateway's witness key derives from its signing key and would change with it; give it a witness key file first (docs/OPERATIONS.md, \"Rotating a signing key\")",
                self.path.display()
            ));
        }
        let index = self
            .ledger
            .rotate_key(new.to_note_signer())
            .await
            .map_err(|e| format!("the ledger refused the rotation: {e}"))?;
        let vkey = new.vkey();
        self.signer.replace_key(Arc::new(new));
        Ok(KeyFile::Rotated {
            until_size: index + 1,
            vkey,
        })
    }

    /// Read the key file every `every` (when its bytes changed) and on SIGHUP, and rotate to a new
    /// key found there, until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let mut rereads = crate::files::Rereads::new("signing key", self.every, stop);
        let mut last_read = std::fs::read(&self.path).ok();
        while let Some(why) = rereads.next().await {
            let now = std::fs::read(&self.path).ok();
            if why == crate::files::Reread::Poll && now == last_read {
                continue;
            }
            last_read = now;
            match self.check().await {
                Ok(KeyFile::Unchanged) => {}
                Ok(KeyFile::Rotated { until_size, vkey }) => tracing::warn!(
                    key = %self.path.display(),
                    until_size,
                    vkey = %vkey,
                    "log key rotated: list it with `causeway federation rotate-key --vkey {vkey} --until-size {until_size}` and publish the directory; until peers have it, they refuse this gateway's envelopes and receipts"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "new signing key refused; the key in force stays")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::write_secret;
    use crate::telemetry::Metrics;
    use causeway_ledger::LedgerOptions;
    use ed25519_dalek::SigningKey;

    fn key(name: &str, seed: u8) -> GatewayKey {
        GatewayKey::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    /// Attack: whoever can write the key file (but holds no key of this log) drops in another
    /// log's key, or this gateway's without a witness key file of its own. Neither is taken; a
    /// new key of this log is, and the envelopes follow it.
    #[tokio::test]
    async fn only_a_new_key_of_this_log_is_rotated_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.signing.key");
        let old = key("demo/tax", 1);
        write_secret(&path, old.to_file_contents().as_bytes()).unwrap();
        let ledger = Arc::new(
            Ledger::open(
                &dir.path().join("ledger"),
                LedgerOptions::default(),
                old.to_note_signer(),
            )
            .unwrap(),
        );
        let signer = Arc::new(EnvelopeSigner::new(
            Arc::new(old.clone()),
            Arc::new(Metrics::new(None)),
        ));
        let mut watch = SigningKeyWatch {
            path: path.clone(),
            every: Duration::from_secs(1),
            ledger: ledger.clone(),
            signer: signer.clone(),
            witness_key_file: true,
        };
        assert_eq!(watch.check().await, Ok(KeyFile::Unchanged));

        write_secret(&path, key("demo/other", 2).to_file_contents().as_bytes()).unwrap();
        let refused = watch.check().await.unwrap_err();
        assert!(refused.contains("\"demo/other\""), "{refused}");

        let new = key("demo/tax", 3);
        write_secret(&path, new.to_file_contents().as_bytes()).unwrap();
        watch.witness_key_file = false;
        let refused = watch.check().await.unwrap_err();
        assert!(refused.contains("witness_key"), "{refused}");
        assert_eq!(ledger.verifier(), old.note_signer().verifier());

        watch.witness_key_file = true;
        let rotated = watch.check().await.unwrap();
        assert_eq!(
            rotated,
            KeyFile::Rotated {
                until_size: 1,
                vkey: new.vkey()
            }
        );
        assert_eq!(ledger.verifier(), new.note_signer().verifier());
        // Envelopes are signed with the new key from now on.
        let consumer = crate::identity::DeptId::new("tax").unwrap();
        let signature = signer
            .sign(&consumer, bytes::Bytes::from_static(b"{}"))
            .await
            .to_header();
        assert!(crate::exchange::envelope::Envelope::verify_signature(
            b"{}",
            Some(&signature),
            &consumer,
            &new.note_signer().verifier(),
            None
        )
        .is_ok());
        assert_eq!(watch.check().await, Ok(KeyFile::Unchanged));
    }
}
