//! The privacy attack suite: acting as one department with everything it legitimately holds (its
//! configuration and keys, its own ledger, the answers its applications received, and whatever the
//! peer log endpoints give it of the others), try to reverse, over the demo's whole id space
//! (`D000000` to `D999999`), other departments' subject and officer tags, the `hash`-masked values
//! it received, and the digests of every entry it holds. Goal: nothing recovered.
//!
//! The same enumeration recovers the department's own tags: the positive control that shows the
//! attack works wherever the keys it holds would let it (and that it recovered all 104 of the civil
//! registry's tags when every department held the same tag key).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway::identity::DeptId;
use causeway::layout;
use causeway_tests::{ledger_entries, Federation};
use ring::{digest, hmac};
use serde_json::{json, Value};

const ATTACKER: &str = "civil-registry";
const ID_SPACE: u32 = 1_000_000;

fn national_id(n: u32) -> String {
    format!("D{n:06}")
}

/// A tag's digest without its key version (`2:ab..` -> `ab..`).
fn digest_of(tag: &str) -> &str {
    tag.split_once(':').map_or(tag, |(_, d)| d)
}

/// What the attacker tries to reverse, by the first 8 bytes of each digest.
#[derive(Default)]
struct Targets {
    by_prefix: HashMap<u64, Vec<[u8; 32]>>,
}

impl Targets {
    fn add(&mut self, hex_digest: &str) {
        let Ok(bytes) = hex::decode(hex_digest) else {
            return;
        };
        let Ok(digest) = <[u8; 32]>::try_from(bytes) else {
            return;
        };
        let same = self.by_prefix.entry(prefix(&digest)).or_default();
        if !same.contains(&digest) {
            same.push(digest);
        }
    }

    fn hit(&self, digest: &[u8]) -> Option<[u8; 32]> {
        self.by_prefix
            .get(&prefix(digest))?
            .iter()
            .find(|t| t.as_slice() == digest)
            .copied()
    }

    fn len(&self) -> usize {
        self.by_prefix.values().map(Vec::len).sum()
    }
}

fn prefix(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("a digest has 8 bytes"))
}

/// The keyed and unkeyed guesses an attacker makes for one id: every form a tag, a pseudonym or a
/// digest of it could take under a key the attacker holds. (ring's HMAC and SHA-256: optimized
/// code even in a debug build, so the whole space takes seconds.)
struct Guesses {
    /// Keys the attacker holds.
    keys: Vec<hmac::Key>,
    /// Message forms: what comes before and after the guessed id.
    keyed_forms: Vec<(String, String)>,
    unkeyed_forms: Vec<(String, String)>,
}

impl Guesses {
    /// One pass over the whole id space (both cores): every target recovered, with its id.
    fn enumerate(&self, targets: &Targets) -> HashMap<[u8; 32], String> {
        let halves = [0..ID_SPACE / 2, ID_SPACE / 2..ID_SPACE];
        std::thread::scope(|s| {
            let workers: Vec<_> = halves
                .into_iter()
                .map(|range| {
                    s.spawn(move || {
                        let mut found = HashMap::new();
                        for n in range {
                            let id = national_id(n);
                            self.guess(&id, |digest| {
                                if let Some(t) = targets.hit(digest) {
                                    found.insert(t, id.clone());
                                }
                            });
                        }
                        found
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("an enumeration thread panicked"))
                .collect()
        })
    }

    fn guess(&self, id: &str, mut check: impl FnMut(&[u8])) {
        let message = |(before, after): &(String, String)| {
            [before.as_bytes(), id.as_bytes(), after.as_bytes()].concat()
        };
        for form in &self.keyed_forms {
            let message = message(form);
            for key in &self.keys {
                check(hmac::sign(key, &message).as_ref());
            }
        }
        for form in &self.unkeyed_forms {
            check(digest::digest(&digest::SHA256, &message(form)).as_ref());
        }
    }

    fn count(&self) -> usize {
        self.keys.len() * self.keyed_forms.len() + self.unkeyed_forms.len()
    }
}

/// The secrets in the files the attacker's configuration names (its tag key, its pseudonym key,
/// its signing key's seed), as HMAC keys.
fn secrets_held(dept_dir: &Path) -> Vec<hmac::Key> {
    let config = std::fs::read_to_string(dept_dir.join("causeway.toml")).unwrap();
    assert!(
        !config.contains("tag_root") && !config.contains("tag-root"),
        "a department's configuration names the tag root"
    );
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap().trim().to_owned();
    let tag_key = read(dept_dir.join(format!("../certs/{ATTACKER}.tag.key")));
    let pseudonym_key = read(dept_dir.join("ledger/pseudonym.key"));
    let signing_key = read(dept_dir.join(format!("../certs/{ATTACKER}.signing.key")));
    let seed = {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            // PRIVATE+KEY+<name>+<key hash>+<base64, which may hold '+'>
            .decode(signing_key.splitn(5, '+').nth(4).unwrap())
            .unwrap();
        raw[1..].to_vec()
    };
    [
        hex::decode(digest_of(&tag_key)).unwrap(),
        hex::decode(&pseudonym_key).unwrap(),
        seed,
    ]
    .iter()
    .map(|secret| hmac::Key::new(hmac::HMAC_SHA256, secret))
    .collect()
}

/// The civil registry, with everything it holds, tries to reverse what it holds of the others:
/// 0 recovered of 10^6 ids per department; its own tags all come back (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curious_department_recovers_nothing_it_was_not_given() {
    let mut fed = Federation::create().unwrap();
    // Pseudonymous income for statistics, to both other departments: `hash` masks the id.
    std::fs::write(
        fed.dept_dir("tax-office")
            .join("policies/statistics-income.toml"),
        r#"[agreement]
title = "Pseudonymous income for statistics"
reference = "DSA-TX-STAT-01"
provider = "tax-office"
contact = "dpo@tax-office.example"

[[grant]]
id = "registry-statistics"
consumer = "civil-registry"
dataset = "income"
purposes = ["statistics"]
legal_bases = ["statistics-act-5"]
fields = ["national_id", "year", "gross_income"]
masks = { national_id = "hash" }
max_rows = 50

[[grant]]
id = "welfare-statistics"
consumer = "social-welfare"
dataset = "income"
purposes = ["statistics"]
legal_bases = ["statistics-act-5"]
fields = ["national_id", "year", "gross_income"]
masks = { national_id = "hash" }
max_rows = 50
"#,
    )
    .unwrap();
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.unwrap();
    }
    // Officers named by national ids: the worst case for officer tags.
    let ask = |consumer: &str,
               officer: &str,
               provider: &str,
               dataset: &str,
               params: Value,
               purpose: &str| {
        let client = fed
            .client_as(consumer, layout::DEMO_APP, Some(officer))
            .unwrap();
        let body = json!({
            "provider": provider, "dataset": dataset, "params": params, "purpose": purpose,
            "legal_basis": "statistics-act-5", "case": "",
        });
        async move { client.post_json(&body).await.unwrap() }
    };
    let people: Vec<String> = (1..=6).map(national_id).collect();
    let mut received = Vec::new();
    for person in &people {
        // The registry answers the others about its residents: its own subject tags, and the
        // others' officer tags in its ledger.
        let (s, a) = ask(
            "social-welfare",
            "D000901",
            ATTACKER,
            "residents",
            json!({"national_id": person}),
            "benefit-eligibility",
        )
        .await;
        assert_eq!(s, 200, "{a}");
        let (s, a) = ask(
            "tax-office",
            "D000902",
            ATTACKER,
            "residents",
            json!({"national_id": person}),
            "tax-assessment",
        )
        .await;
        assert_eq!(s, 200, "{a}");
        // The others answer each other: nothing of it reaches the registry.
        let (s, a) = ask(
            "social-welfare",
            "D000901",
            "tax-office",
            "income",
            json!({"national_id": person, "year": 2024}),
            "benefit-eligibility",
        )
        .await;
        assert_eq!(s, 200, "{a}");
        // The registry asks the tax office: the tax office's subject tags in the registry's
        // ledger, and pseudonymous ids in the answer.
        let (s, a) = ask(
            ATTACKER,
            "D000903",
            "tax-office",
            "income",
            json!({"national_id": person, "year": 2024}),
            "statistics",
        )
        .await;
        assert_eq!(s, 200, "{a}");
        received.push(a);
    }

    // Pairwise pseudonyms: stable for one consumer, different for every other one.
    let pseudonym = |answer: &Value| answer["rows"][0][0].as_str().unwrap().to_owned();
    let (_, again) = ask(
        ATTACKER,
        "D000903",
        "tax-office",
        "income",
        json!({"national_id": people[0], "year": 2024}),
        "statistics",
    )
    .await;
    assert_eq!(
        pseudonym(&again),
        pseudonym(&received[0]),
        "stable for one consumer"
    );
    let (s, welfare) = ask(
        "social-welfare",
        "D000901",
        "tax-office",
        "income",
        json!({"national_id": people[0], "year": 2024}),
        "statistics",
    )
    .await;
    assert_eq!(s, 200, "{welfare}");
    assert_ne!(
        pseudonym(&welfare),
        pseudonym(&received[0]),
        "consumers cannot link theirs"
    );

    // What the peer log endpoints give a department of another's log: no entries.
    let directory = fed.directory();
    let peer = fed.peer_client_as(ATTACKER).unwrap();
    for other in ["tax-office", "social-welfare"] {
        let listed = directory
            .department(&DeptId::new(other).unwrap())
            .unwrap()
            .clone();
        let get = http::Request::get(format!(
            "https://{other}/causeway/v1/log/entries?start=0&end=100"
        ))
        .body(Bytes::new())
        .unwrap();
        let (status, _) = peer
            .send(&listed, get, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status, 403, "{other} hands its entries to a department");
    }

    let ledger = ledger_entries(&fed.ledger_dir(ATTACKER)).unwrap();
    let dept_dir = fed.dept_dir(ATTACKER);
    fed.stop().await;

    // What it would be entitled to reverse (its own tags), and what it must not.
    let (mut own, mut others) = (Targets::default(), Targets::default());
    let mut own_expected = HashSet::new();
    for e in &ledger {
        let provider_is_me = e["provider"] == ATTACKER;
        let consumer_is_me = e["consumer"] == ATTACKER;
        for s in e["subjects"].as_array().into_iter().flatten() {
            let tag = digest_of(s.as_str().unwrap());
            if provider_is_me {
                own.add(tag);
                own_expected.insert(tag.to_owned());
            } else {
                others.add(tag);
            }
        }
        if let Some(officer) = e["officer"].as_str() {
            if consumer_is_me {
                own.add(digest_of(officer));
            } else {
                others.add(digest_of(officer));
            }
        }
        for digest in ["request_digest", "response_digest"] {
            if let Some(d) = e[digest].as_str() {
                others.add(d);
            }
        }
    }
    for answer in &received {
        others.add(&pseudonym(answer));
    }
    assert!(
        others.len() >= 30 && !own_expected.is_empty(),
        "too little to attack: {}",
        others.len()
    );

    let guesses = Guesses {
        keys: secrets_held(&dept_dir),
        keyed_forms: [
            ("subject\n".to_owned(), ""),
            ("officer\n".to_owned(), ""),
            (String::new(), ""),
            (format!("causeway pseudonym\n{ATTACKER}\nnational_id\n"), ""),
        ]
        .map(|(before, after)| (before, after.to_owned()))
        .to_vec(),
        unkeyed_forms: vec![
            (String::new(), String::new()),
            (r#"{"national_id":""#.to_owned(), r#""}"#.to_owned()),
        ],
    };
    let started = Instant::now();
    let mut all = Targets::default();
    for t in own
        .by_prefix
        .values()
        .chain(others.by_prefix.values())
        .flatten()
    {
        all.add(&hex::encode(t));
    }
    let recovered = guesses.enumerate(&all);
    let took = started.elapsed();
    let of_others: Vec<&String> = recovered
        .iter()
        .filter(|(t, _)| others.hit(t.as_slice()).is_some())
        .map(|(_, id)| id)
        .collect();
    let of_own = recovered
        .keys()
        .filter(|t| own.hit(t.as_slice()).is_some())
        .count();
    eprintln!(
        "privacy attack: {} ids x {} guesses in {took:.1?}; recovered {} of {} targets held of the others, {of_own} of {} of its own",
        ID_SPACE,
        guesses.count(),
        of_others.len(),
        others.len(),
        own.len(),
    );
    assert!(
        of_others.is_empty(),
        "recovered ids of the others: {of_others:?}"
    );
    // The control: the same enumeration reverses every subject tag this department wrote itself.
    let own_recovered: HashSet<String> = recovered
        .iter()
        .filter(|(t, _)| own_expected.contains(&hex::encode(t)))
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        own_recovered,
        people.iter().cloned().collect::<HashSet<_>>(),
        "the attack must work where the keys allow it"
    );
}

/// A department gateway refuses to start with the tag root in its configuration: with it, anyone
/// on the host could compute every department's tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_gateway_refuses_the_tag_root() {
    let mut fed = Federation::create().unwrap();
    let config = fed.dept_dir(ATTACKER).join("causeway.toml");
    causeway_tests::rewrite(
        &config,
        "[identity]\n",
        "[identity]\ntag_root = \"../certs/tag-root.key\"\n",
    );
    let error = fed.start_dept(ATTACKER).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("must not hold the tag root"),
        "{error:#}"
    );
}
