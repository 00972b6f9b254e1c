//! Canonical parameters (issue #23, item 6), end to end against the real MariaDB on this machine
//! (127.0.0.1:3306, root, empty password): the civil registry serves a `people` dataset from a
//! table whose collation, like MariaDB's defaults, ignores case, accents and trailing spaces, and
//! a deny rule protects `alice`.
//!
//! The attack uses only what a consumer department holds: its own application and the variants
//! of a name that the provider's database reads as the same key. Without canonical parameters
//! (the old code, the parameter compared as sent), `alice`, `ALICE`, `Alice ` and `Álice` each
//! fetched the protected row and were tagged as four different subjects.

use causeway_tests::{ledger_entries, Federation};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde_json::{json, Value};

const HOST: &str = "127.0.0.1";

async fn root(db: Option<&str>) -> Conn {
    let opts = OptsBuilder::default()
        .ip_or_hostname(HOST)
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(db)
        .prefer_socket(false);
    Conn::new(opts).await.unwrap_or_else(|e| {
        panic!("MariaDB must run on {HOST}:3306 (start it: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd): {e}")
    })
}

/// A database of our own with MariaDB's case- and accent-insensitive, PAD SPACE collation,
/// dropped when the test ends, even on panic.
struct People {
    name: String,
}

impl People {
    async fn create() -> People {
        let name = format!(
            "causeway_canon_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let mut conn = root(None).await;
        conn.query_drop(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        ))
        .await
        .expect("create database");
        conn.query_drop(format!(
            "CREATE TABLE {name}.people (name VARCHAR(64) PRIMARY KEY, address TEXT)"
        ))
        .await
        .expect("create table");
        conn.query_drop(format!(
            "INSERT INTO {name}.people VALUES ('Alice', 'Safe House 1'), ('bob', 'Main St 2')"
        ))
        .await
        .expect("insert");
        // The premise: this database reads every variant as the protected key.
        for variant in ["alice", "ALICE", "Alice ", "Álice"] {
            let found: Option<String> = conn
                .exec_first(
                    format!("SELECT address FROM {name}.people WHERE name = ?"),
                    (variant,),
                )
                .await
                .expect("select");
            assert_eq!(
                found.as_deref(),
                Some("Safe House 1"),
                "the collation must conflate {variant:?} with Alice"
            );
        }
        People { name }
    }
}

impl Drop for People {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let mut conn = root(None).await;
                    let _ = conn
                        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                        .await;
                    let _ = conn.disconnect().await;
                });
            }
        })
        .join();
    }
}

/// The civil registry's `people` dataset: the name is the subject, brought to its canonical form
/// (NFC, trimmed, lowercased) and then held to ASCII letters, so that the accents the collation
/// ignores cannot reach the query either.
fn people_dataset(database: &str) -> String {
    format!(
        r#"
[[dataset]]
name = "people"
adapter = "mysql"
host = "{HOST}"
user = "root"
database = "{database}"
query = "SELECT address FROM people WHERE name = :name"
subject = "name"

[[dataset.param]]
name = "name"
type = "string"
normalize = ["nfc", "trim", "casefold"]
pattern = "[a-z]{{1,32}}"

[[dataset.field]]
name = "address"
type = "string"
classification = "personal"
"#
    )
}

fn people_policy(protected: &str) -> String {
    format!(
        r#"
[[grant]]
id = "welfare-people"
consumer = "social-welfare"
dataset = "people"
purposes = ["benefit-eligibility"]
fields = ["address"]

[[deny]]
id = "protected-person"
dataset = "people"
reason = "The record is protected"
params = {{ name = {{ one_of = ["{protected}"] }} }}
"#
    )
}

async fn ask(fed: &Federation, name: &str) -> (u16, Value) {
    fed.request(
        "social-welfare",
        "civil-registry",
        "people",
        json!({ "name": name }),
        "benefit-eligibility",
    )
    .await
    .expect("the client API answers")
}

#[tokio::test]
async fn no_spelling_of_a_protected_name_fetches_its_row_and_every_row_is_tagged_canonically() {
    let people = People::create().await;
    let mut fed = Federation::create().expect("layout");
    let registry = fed.dept_dir("civil-registry");
    let datasets = registry.join("datasets.toml");
    let mut text = std::fs::read_to_string(&datasets).expect("datasets file");
    text.push_str(&people_dataset(&people.name));
    std::fs::write(&datasets, text).expect("write datasets");

    // A deny rule written with the spelling of the row, not its canonical form, would protect
    // nobody: the gateway refuses to load it, and says what to write.
    let policy = registry.join("policies/people.toml");
    std::fs::write(&policy, people_policy("Alice")).expect("write policy");
    let refused = fed
        .start_dept("civil-registry")
        .await
        .expect_err("a non-canonical deny literal is a load error")
        .to_string();
    assert!(
        refused.contains("people.toml:")
            && refused.contains("\"Alice\" can never match (write \"alice\")"),
        "{refused}"
    );
    std::fs::write(&policy, people_policy("alice")).expect("write policy");
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.expect("starts");
    }

    let mut exchanges: Vec<(&str, String)> = Vec::new();
    for variant in [
        "alice",
        "ALICE",
        "Alice ",
        " aLiCe\u{a0}",
        "Álice",
        "A\u{301}lice",
    ] {
        let (status, answer) = ask(&fed, variant).await;
        assert!(
            answer.get("rows").is_none(),
            "{variant:?} fetched the protected row: {answer}"
        );
        assert!(
            matches!(status, 400 | 403),
            "{variant:?} is denied or refused: {status} {answer}"
        );
        let said = answer.to_string();
        assert!(
            !said.contains("Safe House") && !said.contains(variant.trim()),
            "the answer echoes neither the row nor the value: {said}"
        );
        exchanges.push((
            variant,
            answer["exchange"].as_str().expect("an id").to_owned(),
        ));
    }
    for variant in ["alice", "ALICE", "Alice "] {
        let (status, answer) = ask(&fed, variant).await;
        assert_eq!(status, 403, "{variant:?} canonicalizes to alice: {answer}");
        assert_eq!(answer["error"]["code"], "denied-by-rule", "{answer}");
    }

    let mut fetched: Vec<(&str, String)> = Vec::new();
    for variant in ["bob", "BOB ", "Bob"] {
        let (status, answer) = ask(&fed, variant).await;
        assert_eq!(status, 200, "{variant:?}: {answer}");
        assert_eq!(answer["rows"], json!([["Main St 2"]]), "{answer}");
        fetched.push((
            variant,
            answer["exchange"].as_str().expect("an id").to_owned(),
        ));
    }
    fed.stop().await;

    let entries = ledger_entries(&fed.ledger_dir("civil-registry")).expect("ledger");
    let subjects_of = |id: &str| -> Value {
        entries
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("exchange {id} is notarized"))["subjects"]
            .clone()
    };
    let bob = subjects_of(&fetched[0].1);
    assert_eq!(bob.as_array().map(Vec::len), Some(1), "{bob}");
    for (variant, id) in &fetched {
        assert_eq!(
            subjects_of(id),
            bob,
            "{variant:?} is tagged as the canonical bob"
        );
    }
    let alice = subjects_of(&exchanges[0].1);
    for (variant, id) in &exchanges[..4] {
        assert_eq!(
            subjects_of(id),
            alice,
            "the denied {variant:?} is in alice's report"
        );
    }
    assert_ne!(alice, bob);
}
