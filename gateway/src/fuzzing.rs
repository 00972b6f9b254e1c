//! Bodies of the fuzz targets (fuzz/fuzz_targets/*.rs call these), kept in the library so that a
//! stable `cargo test` runs the very same checks over seeds and mutations (tests/fuzz_smoke.rs),
//! while `cargo +nightly fuzz run <target>` explores with libFuzzer (fuzz/run.sh).
//!
//! Each body feeds outside bytes to one parser and asserts what must hold for every input: no
//! panic, and whatever parses prints back to exactly the same bytes (one canonical form).

use crate::exchange::consumer::ProviderAnswer;
use crate::exchange::envelope::{Envelope, EnvelopeSignature, VerifiedBatches};
use crate::oversight::replica::LogFollower;
use causeway_ledger::checkpoint::Checkpoint;
use causeway_ledger::entry::Entry;
use causeway_ledger::note::{open_note, parse_note, NoteVerifier};
use causeway_ledger::receipt::Receipt;
use causeway_ledger::tlog_proof::{verify_tlog_proof, TlogProof};
use causeway_ledger::witness::AddCheckpointRequest;

/// A fixed, valid verifier key (the C2SP/Go note example's) for the bodies that verify.
pub const TEST_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fn test_verifier() -> NoteVerifier {
    TEST_VKEY.parse().expect("the fixed test key is valid")
}

/// C2SP signed notes and vkeys.
pub fn note(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(note) = parse_note(text) {
        assert_eq!(note.to_wire(), text, "a parsed note prints back");
        assert!(note.text.ends_with('\n'));
        assert!(!note.signatures.is_empty());
    }
    if let Ok(v) = text.parse::<NoteVerifier>() {
        assert_eq!(v.to_vkey(), text, "a parsed vkey prints back");
    }
    let _ = open_note(text, &[test_verifier()]);
}

/// C2SP tlog-checkpoint bodies and tlog-witness add-checkpoint requests.
pub fn checkpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(cp.to_text(), text, "a parsed checkpoint prints back");
        cp.validate().expect("a parsed checkpoint is valid");
    }
    if let Ok(req) = AddCheckpointRequest::parse(text) {
        assert_eq!(
            req.to_body(),
            text,
            "a parsed add-checkpoint body prints back"
        );
        assert!(req.proof.len() <= 63);
    }
}

/// C2SP tlog-proof@v1 evidence files.
pub fn tlog_proof(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = TlogProof::parse(text) {
        assert_eq!(p.to_text(), text, "a parsed tlog-proof prints back");
        assert!(p.proof.len() <= causeway_ledger::merkle::MAX_PROOF_HASHES);
        let _ = verify_tlog_proof(&p, &test_verifier(), &[]);
    }
}

/// Request envelopes and receipts: the JSON a peer sends us.
pub fn envelope(data: &[u8]) {
    if let Ok(env) = Envelope::parse(data) {
        let again = Envelope::parse(&env.to_bytes()).expect("a parsed envelope re-parses");
        assert_eq!(again, env);
    }
    // The first line as a signature header over the rest: every header that parses prints back,
    // and the batch cache never changes a verdict.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(n) => (&data[..n], &data[n + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    if let Ok(sig) = EnvelopeSignature::parse(&header) {
        assert_eq!(
            sig.to_header(),
            header.trim(),
            "a parsed signature prints back"
        );
    }
    let dept = crate::identity::DeptId::new("x").expect("valid id");
    let cache = VerifiedBatches::default();
    let plain = Envelope::verify_signature(body, Some(&header), &dept, &test_verifier(), None);
    let cached =
        Envelope::verify_signature(body, Some(&header), &dept, &test_verifier(), Some(&cache));
    assert_eq!(plain.is_ok(), cached.is_ok());
    if let Ok(receipt) = serde_json::from_slice::<Receipt>(data) {
        let _ = receipt.verify(&test_verifier());
    }
}

/// What peers send besides envelopes: ledger entries (inside receipts, and in the log API's
/// answers the oversight node pulls) and a provider's answer as the consumer reads it. Whatever
/// parses as an entry re-parses from its own bytes to the same entry, and a log follower takes or
/// refuses it without panicking.
pub fn peer_answer(data: &[u8]) {
    if let Ok(entry) = Entry::from_bytes(data) {
        let again = Entry::from_bytes(&entry.to_bytes()).expect("a parsed entry re-parses");
        assert_eq!(again, entry);
    }
    let _ = LogFollower::default().follow(data);
    if let Ok(answer) = ProviderAnswer::parse(data) {
        if let Some((_, Ok(receipt))) = answer.receipt() {
            let _ = receipt.verify(&test_verifier());
        }
    }
}

/// QUIC frames (docs/PROTOCOL.md, "QUIC peer port"): decoding never panics, never yields more
/// than the limits allow, agrees with the step functions the transport uses, and whatever decodes
/// re-encodes to a frame that decodes to the same header and body.
pub fn quic_frame(data: &[u8]) {
    crate::transport::frame::fuzz_decode(data);
}

/// Datasets files (`causeway-adapters`): parsing never panics and never connects; whatever parses
/// names each dataset once and keeps its subject among its parameters, and each string
/// parameter's normalization is idempotent (on the input itself as a value): a canonical value is
/// its own canonical form.
pub fn datasets(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(datasets) = causeway_adapters::parse_datasets(text) {
        let mut names = std::collections::HashSet::new();
        for d in &datasets {
            assert!(names.insert(d.name.clone()), "dataset {} twice", d.name);
            assert!(
                d.param(&d.subject_param).is_some(),
                "subject not a parameter"
            );
            for p in &d.params {
                if let causeway_adapters::ParamType::String { normalize, .. } = &p.ty {
                    let once = normalize.canonical(text);
                    assert_eq!(normalize.canonical(&once), once, "not idempotent");
                }
            }
        }
    }
}

/// Published federation directories: opening one never panics, whatever its bytes; one that opens
/// under the operator's key (the test key here) has a serial and an expiry, names every
/// department once with at least one instance, and no log origin twice; and a directory's text
/// parses the same with or without its signature lines.
pub fn directory(data: &[u8]) {
    use crate::directory::{signed, Directory};
    let now = time::OffsetDateTime::UNIX_EPOCH;
    if let Ok(published) = signed::open(data, &test_verifier(), now, "fuzz") {
        assert!(published.directory.serial.is_some() && published.directory.expires.is_some());
        let mut origins = std::collections::HashSet::new();
        for d in published.directory.departments() {
            assert!(
                !d.instances.is_empty(),
                "department {} has no instance",
                d.id
            );
            for i in &d.instances {
                assert!(origins.insert(i.verifier.name().to_owned()), "origin twice");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(d) = Directory::parse(text) {
            let unsigned =
                Directory::parse(signed::body(text)).expect("the body of a directory parses");
            assert_eq!(d.serial, unsigned.serial);
            assert_eq!(d.departments().count(), unsigned.departments().count());
        }
    }
}

/// The directory [`citizen_bundle`] verifies against: one department and one oversight node,
/// both with the key the smoke test's tlog-proof seed is signed with (`demo/civil-registry`,
/// secret key bytes all 1), so that seed gets as far as the entry checks.
fn bundle_directory() -> crate::directory::Directory {
    let key = causeway_ledger::note::NoteSigner::new(
        "demo/civil-registry",
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
    )
    .expect("a valid key name")
    .verifier()
    .to_vkey();
    crate::directory::Directory::parse(&format!(
        "federation = \"demo\"\n\n[[department]]\nid = \"civil-registry\"\nname = \"Civil Registry\"\nhttps = \"https://127.0.0.1:7443\"\nvkey = \"{key}\"\n\n[[oversight]]\nid = \"audit\"\nname = \"Audit\"\nvkey = \"{key}\"\n"
    ))
    .expect("the fixed directory parses")
}

/// Citizen's report bundles (causeway-citizen-report/v1), as `causeway verify-report` reads them:
/// parsing never panics and keeps to its limits, a parsed bundle prints back to one that parses
/// the same, and verifying it against a directory never panics.
pub fn citizen_bundle(data: &[u8]) {
    use crate::oversight::bundle::{parse_bundle, verify_bundle, MAX_EXCHANGES, MAX_TAGS};
    static DIRECTORY: std::sync::OnceLock<crate::directory::Directory> = std::sync::OnceLock::new();
    let directory = DIRECTORY.get_or_init(bundle_directory);
    if let Ok(bundle) = parse_bundle(data) {
        assert!(bundle.exchanges.len() <= MAX_EXCHANGES);
        assert!(!bundle.subject.tags.is_empty() && bundle.subject.tags.len() <= MAX_TAGS);
        let again = serde_json::to_vec(&bundle).expect("bundles serialize");
        assert_eq!(
            parse_bundle(&again).expect("a parsed bundle re-parses"),
            bundle
        );
        let _ = verify_bundle(&bundle, directory);
    }
}
