//! The fuzz target bodies (causeway::fuzzing) on seeds and their mutations, on stable Rust, so a
//! broken invariant shows up in `cargo test` and not only under `cargo +nightly fuzz`.

use causeway::exchange::envelope::{Envelope, EnvelopeSignature};
use causeway::fuzzing;
use causeway_ledger::checkpoint::{sign_checkpoint, Checkpoint};
use causeway_ledger::merkle::MemoryTree;
use causeway_ledger::note::{Cosigner, NoteSigner};
use causeway_ledger::tlog_proof::TlogProof;
use causeway_ledger::witness::AddCheckpointRequest;
use ed25519_dalek::SigningKey;

const DATASETS: &[u8] = br#"[[dataset]]
name = "residents"
adapter = "sqlite"
database = "civil.sqlite"
query = "SELECT name FROM residents WHERE national_id = :national_id"
subject = "national_id"

[[dataset.param]]
name = "national_id"
type = "string"
pattern = "D[0-9]{6}"

[[dataset.field]]
name = "name"
type = "string"
classification = "personal"
"#;

fn seeds() -> Vec<Vec<u8>> {
    let log = NoteSigner::new("demo/civil-registry", SigningKey::from_bytes(&[1; 32])).unwrap();
    let witness =
        Cosigner::new("demo/tax-office/witness", SigningKey::from_bytes(&[2; 32])).unwrap();
    let mut tree = MemoryTree::new();
    for i in 0..5u8 {
        tree.append_entry(&[i]);
    }
    let cp = Checkpoint {
        origin: log.name().into(),
        size: 5,
        root: tree.root(),
        extensions: vec![],
    };
    let mut note = sign_checkpoint(&cp, &log).unwrap();
    note.push_str(&witness.cosign_line(&cp.to_text(), 7).unwrap());
    let proof = TlogProof::build(&tree, &[3], 3, &note).unwrap().to_text();
    let request = AddCheckpointRequest {
        old_size: 0,
        proof: vec![],
        checkpoint: note.clone(),
    }
    .to_body();
    let envelope = br#"{"v":1,"id":"0193a3c2-7f00-7000-8000-000000000001","consumer":"social-welfare","provider":"civil-registry","dataset":"residents","params":{"national_id":"D000001","year":2024},"purpose":"benefit-eligibility","legal_basis":"x","case":"","officer":"ab","issued_at":"2026-11-22T15:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}"#;
    let receipt = br#"{"log":"PeterNeumann","index":0,"leaf_hash":"00","entry":"e30=","checkpoint":"x\n","inclusion_proof":[]}"#;
    // A provider's first entry (a log follower takes it) and a provider's answer around the
    // receipt above.
    let entry = br#"{"v":1,"index":0,"time":"2026-12-05T12:13:56.34047844Z","kind":"exchange","side":"provider","id":"01a24620-10f4-78e4-a065-51130e22c88a","consumer":"tax-office","provider":"civil-registry","dataset":"residents","purpose":"tax-assessment","legal_basis":"Taxation Act s.5","officer":"84366ee3708005e068e972402856fc959bc87fe8445568492208c2512df1e637","subjects":["6cfd37e3c08616e7b9c8f072d26546698bc89f2acc4abf2dbce9d1dc79a0899a"],"request_digest":"a08aae1a6e7aa695bd71c8571a128f1f9882f5cdbd18cca923b413adb05afd3b","response_digest":"5975b935f77442a3f64029e329d87e4be8f61ff1cb333d63bfd63f75d7a20f14","fields":["name","address"],"rows":1,"decision":"allow","reason":"granted","rule":"tax-residents.toml:9","outcome":"ok","policy":"6c0e467203c2f24024e7f1552d4621ad1b045ba9d0f3adb93040bcfd178fffae","prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#;
    let answer = [
        &br#"{"exchange":"0193a3c2-7f00-7000-8000-000000000001","fields":["name"],"rows":[["Kadri Tamm"]],"receipt":"#[..],
        receipt,
        b"}",
    ]
    .concat();
    assert!(
        causeway::oversight::replica::LogFollower::default()
            .follow(entry)
            .is_ok(),
        "the entry seed is a valid first entry, so mutations start from one"
    );
    // Signature headers over the envelope, by the key the fuzz bodies verify with (the C2SP note
    // example's PeterNeumann key), alone and as the second of a batch of three: "header\nbody".
    let signed = {
        use base64::Engine;
        let private = base64::engine::general_purpose::STANDARD
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        let key = SigningKey::from_bytes(&private[1..].try_into().unwrap());
        let single = EnvelopeSignature::sign_batch(&[&envelope[..]], &key);
        let batch = EnvelopeSignature::sign_batch(&[&b"{}"[..], &envelope[..], b"[]"], &key);
        [&single[0], &batch[1]].map(|sig| {
            let mut input = format!("{}\n", sig.to_header()).into_bytes();
            input.extend_from_slice(envelope);
            let who = causeway::identity::DeptId::new("x").unwrap();
            let key = fuzzing::TEST_VKEY.parse().unwrap();
            Envelope::verify_signature(envelope, Some(&sig.to_header()), &who, &key, None)
                .expect("the seed's signature verifies, so mutations start from a valid one");
            input
        })
    };
    // A directory published under the key the directory body opens with (the same test key).
    let directory = {
        use base64::Engine;
        let private = base64::engine::general_purpose::STANDARD
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        let operator = NoteSigner::new(
            "PeterNeumann",
            SigningKey::from_bytes(&private[1..].try_into().unwrap()),
        )
        .unwrap();
        let source = format!(
            "federation = \"demo\"\n\n[[department]]\nid = \"civil-registry\"\nname = \"Civil Registry\"\nhttps = \"https://127.0.0.1:7443\"\nvkey = \"{}\"\nwitness = \"{}\"\n\n[[oversight]]\nid = \"audit\"\nname = \"Audit\"\npulls = [\"civil-registry\"]\n",
            log.verifier().to_vkey(),
            witness.verifier().to_vkey()
        );
        let expires = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let published =
            causeway::directory::signed::publish(&source, &operator, 7, expires, None).unwrap();
        causeway::directory::signed::open(
            published.as_bytes(),
            &fuzzing::TEST_VKEY.parse().unwrap(),
            time::OffsetDateTime::UNIX_EPOCH,
            "seed",
        )
        .expect("the seed directory opens, so mutations start from a valid one");
        published
    };
    // A citizen's bundle whose evidence is the tlog-proof above (it verifies up to the entry).
    let bundle = serde_json::json!({
        "format": "causeway-citizen-report/v1",
        "federation": "demo",
        "generated_at": "2026-12-06T12:00:00Z",
        "node": "audit",
        "subject": {"tags": ["1:".to_owned() + &"ab".repeat(32)], "salt": "00".repeat(32)},
        "exchanges": [{
            "row": {"time": "2026-12-06T11:00:00Z", "action": "data released", "receiver": "tax-office",
                "request_id": "0193a3c2-7f00-7000-8000-000000000001", "purpose": "tax-assessment",
                "legal_basis": "x", "provider": "civil-registry", "dataset": "residents",
                "fields": ["name"], "decision": "allow", "reason": "granted", "recorded_by": ["provider"]},
            "records": [{"side": "provider", "log": "civil-registry", "evidence": proof}]
        }],
        "query": {"evidence": proof}
    })
    .to_string();
    causeway::oversight::bundle::parse_bundle(bundle.as_bytes())
        .expect("the bundle seed parses, so mutations start from a valid one");
    [
        cp.to_text(),
        note,
        proof.clone(),
        bundle,
        directory,
        request,
        log.verifier().to_vkey(),
        witness.verifier().to_vkey(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .chain([
        envelope.to_vec(),
        receipt.to_vec(),
        DATASETS.to_vec(),
        entry.to_vec(),
        answer,
    ])
    .chain(signed)
    .collect()
}

#[test]
fn fuzz_bodies_hold_on_seeds_and_their_mutations() {
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut runs = 0;
    for seed in seeds() {
        let mut inputs = vec![seed.clone()];
        for pos in 0..seed.len() {
            for b in [b'\n', b'0', b'A', b'+', b' ', b'"', b'{', 0xff] {
                let mut m = seed.clone();
                m[pos] = b;
                inputs.push(m);
            }
            inputs.push(seed[..pos].to_vec());
        }
        for _ in 0..2000 {
            let mut m = seed.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % m.len().max(1);
                match next() % 3 {
                    0 if !m.is_empty() => m[at] = next() as u8,
                    1 => m.insert(at.min(m.len()), next() as u8),
                    _ if !m.is_empty() => {
                        m.remove(at);
                    }
                    _ => {}
                }
            }
            inputs.push(m);
        }
        for input in &inputs {
            fuzzing::note(input);
            fuzzing::checkpoint(input);
            fuzzing::tlog_proof(input);
            fuzzing::envelope(input);
            fuzzing::datasets(input);
            fuzzing::directory(input);
            fuzzing::peer_answer(input);
            fuzzing::citizen_bundle(input);
            runs += 1;
        }
    }
    assert!(runs > 10_000, "the smoke run covered {runs} inputs");
}
