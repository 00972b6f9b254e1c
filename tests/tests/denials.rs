//! Attack tests: what a curious department learns from a denial (docs/POLICY.md, "What the consumer
//! is told"). Each uses only what that department holds: its application's answers from its own
//! gateway, the provider's receipts in them, and its own ledger.
//!
//! The civil registry's demo policies protect `D009999` with a deny rule
//! (`protected-persons.toml`); the social welfare department has a grant for residents for
//! benefit eligibility, the tax office for tax assessment and (expired) fraud investigation.

use base64::Engine;
use causeway_tests::{ledger_entries, rewrite, Federation};
use serde_json::{json, Value};

/// The id the demo's deny rule protects, and one it does not.
const PROTECTED: &str = "D009999";
const UNPROTECTED: &str = "D000042";

/// Fields of an answer or a ledger entry that differ from one request to the next whatever was
/// decided: ids, times, positions in a log (the provider's too), the request's digest. The
/// receipt's entry is compared on its own.
const PER_REQUEST: [&str; 9] = [
    "exchange",
    "receipt",
    "consumer_log_index",
    "id",
    "index",
    "time",
    "prev",
    "request_digest",
    "peer_receipt",
];

/// `value` without its per-request fields (and without `subjects`: the keyed tag of the id asked
/// for, which differs for any two ids), serialized, so that two of them compare byte for byte.
fn without_per_request_fields(value: &Value) -> String {
    let mut value = value.clone();
    let object = value.as_object_mut().expect("a JSON object");
    for field in PER_REQUEST.iter().chain(&["subjects"]) {
        object.remove(*field);
    }
    serde_json::to_string(&value).expect("serializes")
}

/// The provider's ledger entry that the receipt in `answer` carries.
fn receipt_entry(answer: &Value) -> Value {
    let entry = answer["receipt"]["entry"]
        .as_str()
        .unwrap_or_else(|| panic!("a notarized answer carries its entry: {answer}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(entry)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("the entry is JSON")
}

/// What the consumer holds after one request: the answer, the provider's entry that its receipt
/// carries, and the exchange id (to find its own ledger entry).
struct Seen {
    answer: Value,
    receipt_entry: Value,
    exchange: String,
}

async fn ask(fed: &Federation, consumer: &str, purpose: &str, national_id: &str) -> Seen {
    let (status, answer) = fed
        .request(
            consumer,
            "civil-registry",
            "residents",
            json!({ "national_id": national_id }),
            purpose,
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{consumer} {purpose} {national_id}: {answer}");
    Seen {
        receipt_entry: receipt_entry(&answer),
        exchange: answer["exchange"]
            .as_str()
            .expect("an exchange id")
            .to_owned(),
        answer,
    }
}

/// A department without a grant for residents for this purpose asks about a protected person and
/// about anyone else: its answers, the receipts in them and its own ledger entries are the same
/// apart from ids, times and log positions. On the old code the first said `denied-by-rule` and
/// "The record is protected", in the answer, in the receipt's entry and in its own ledger.
///
/// A department that a grant would have allowed is still told the deny rule and its reason, in the
/// answer and in the receipt's entry: the rule works, and says so to those it concerns.
#[tokio::test]
async fn only_a_consumer_with_a_grant_learns_that_a_deny_rule_protects_a_person() {
    let mut fed = Federation::start().await.unwrap();
    // (consumer, purpose, what the grants alone say)
    let cases = [
        ("tax-office", "benefit-eligibility", "purpose-not-allowed"),
        ("social-welfare", "statistics", "purpose-not-allowed"),
        // The tax office's fraud pilot grant exists but has expired.
        ("tax-office", "fraud-investigation", "expired"),
    ];
    let mut pairs = Vec::new();
    for (consumer, purpose, reason) in cases {
        let protected = ask(&fed, consumer, purpose, PROTECTED).await;
        let other = ask(&fed, consumer, purpose, UNPROTECTED).await;
        assert_eq!(
            protected.answer["error"]["code"], reason,
            "{}",
            protected.answer
        );
        assert_eq!(
            without_per_request_fields(&protected.answer),
            without_per_request_fields(&other.answer),
            "{consumer} {purpose}: the answers differ"
        );
        assert_eq!(
            without_per_request_fields(&protected.receipt_entry),
            without_per_request_fields(&other.receipt_entry),
            "{consumer} {purpose}: the receipts' entries differ"
        );
        let text = protected.answer.to_string() + &protected.receipt_entry.to_string();
        assert!(
            !text.contains("protected") && !text.contains("denied-by-rule"),
            "{text}"
        );
        pairs.push((consumer, protected.exchange, other.exchange));
    }

    let denied = ask(&fed, "social-welfare", "benefit-eligibility", PROTECTED).await;
    let answer = &denied.answer;
    assert_eq!(answer["error"]["code"], "denied-by-rule", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("The record is protected") && message.contains("protected-persons"),
        "{answer}"
    );
    assert_eq!(answer["decision"]["reason"], "denied-by-rule", "{answer}");
    assert_eq!(
        answer["decision"]["rule"], "protected-persons.toml:10",
        "{answer}"
    );
    assert_eq!(denied.receipt_entry["reason"], "denied-by-rule");
    assert_eq!(denied.receipt_entry["rule"], "protected-persons.toml:10");
    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({ "national_id": UNPROTECTED }),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "anyone else's record is released: {answer}");

    fed.stop().await;
    for (consumer, protected, other) in pairs {
        let own = ledger_entries(&fed.ledger_dir(consumer)).unwrap();
        let entry = |id: &str| {
            own.iter()
                .find(|e| e["id"] == id)
                .unwrap_or_else(|| panic!("{consumer} notarized {id}"))
                .clone()
        };
        assert_eq!(
            without_per_request_fields(&entry(&protected)),
            without_per_request_fields(&entry(&other)),
            "{consumer}'s own ledger tells the two apart"
        );
    }
}

/// A grant's constraint on a parameter and its list of legal bases: the denial names the parameter
/// or the condition, never the value asked for nor the values the grant accepts, anywhere in the
/// answer (its receipt's entry included). On the old code the message read `parameter
/// "national_id" = "D000042" must be one of ["D000099", "D000100"]` and `legal basis "Test Act
/// s.1" is not accepted by grant ... (accepted: fraud-act:s3)`.
#[tokio::test]
async fn denial_messages_name_the_condition_but_never_a_value() {
    let mut fed = Federation::create().unwrap();
    let policies = fed.dept_dir("civil-registry").join("policies");
    rewrite(
        &policies.join("welfare-residents.toml"),
        "max_rows = 10",
        "params = { national_id = { one_of = [\"D000099\", \"D000100\"] } }\nmax_rows = 10",
    );
    std::fs::write(
        policies.join("welfare-fraud.toml"),
        "[[grant]]\nid = \"welfare-fraud\"\nconsumer = \"social-welfare\"\ndataset = \"residents\"\n\
         purposes = [\"fraud-investigation\"]\nlegal_bases = [\"fraud-act:s3\"]\nfields = [\"name\"]\n",
    )
    .unwrap();
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.unwrap();
    }

    let param = ask(&fed, "social-welfare", "benefit-eligibility", UNPROTECTED).await;
    assert_eq!(param.answer["error"]["code"], "param-constraint");
    let message = param.answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"national_id\""), "{message}");
    let whole = param.answer.to_string() + &param.receipt_entry.to_string();
    for value in [UNPROTECTED, "D000099", "D000100"] {
        assert!(!whole.contains(value), "{value} in {whole}");
    }

    // The request's legal basis is its own, and the entry records it; the messages do not.
    let basis = ask(&fed, "social-welfare", "fraud-investigation", UNPROTECTED).await;
    assert_eq!(basis.answer["error"]["code"], "legal-basis-not-allowed");
    let messages = [
        &basis.answer["error"]["message"],
        &basis.answer["decision"]["message"],
    ];
    for message in messages {
        let message = message.as_str().unwrap();
        assert!(message.contains("legal basis"), "{message}");
        for value in ["test-act:s1", "fraud-act:s3", UNPROTECTED] {
            assert!(!message.contains(value), "{value} in {message}");
        }
    }
    let whole = basis.answer.to_string() + &basis.receipt_entry.to_string();
    assert!(!whole.contains("fraud-act:s3"), "{whole}");
    fed.stop().await;
}
