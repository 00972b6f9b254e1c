//! No free text in immutable entries (#23, item 4): a request's `case` and `legal_basis` are copied
//! into both ledgers and every oversight replica, for ever, so a case is a short reference and a
//! legal basis a code (docs/POLICY.md, "Case references and legal-basis codes"). Each attack uses
//! only what its attacker holds: an application's certificate and token at its own gateway, or a
//! department's own certificate and signing key at the provider's peer port.
//!
//! On the old code an application's "Applicant D000042 ..., HIV+ status review" went into the
//! consumer's entry, the provider's entry, and the receipt; now it is refused with 400 before
//! anything is notarized, and neither the value nor the id is in any ledger file.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use causeway::exchange::envelope::{self, Envelope};
use causeway::identity::DeptId;
use causeway::layout::DEMO_BATCH_APP;
use causeway::transport::peer::PeerRequest;
use causeway_tests::{ledger_entries, Federation};
use serde_json::{json, Value};

const CONSUMER: &str = "social-welfare";
const PROVIDER: &str = "civil-registry";

/// What an application wrote into `case` on the old code.
const DIAGNOSIS: &str = "Applicant D000042 ..., HIV+ status review";
/// Words of it that must appear in no ledger file and no answer.
const TELLTALES: [&str; 3] = ["HIV", "Applicant", "status review"];

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("")
}

fn ledger_size(fed: &Federation, dept: &str) -> u64 {
    fed.gateway(dept).ledger().checkpoint().0
}

/// Every file of a ledger directory, as bytes, holds none of `words`.
fn assert_no_trace(dir: &Path, words: &[&str]) {
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for word in words {
            assert!(
                !bytes.windows(word.len()).any(|w| w == word.as_bytes()),
                "{} holds {word:?}",
                path.display()
            );
        }
    }
}

fn body(purpose: &str, legal_basis: &str, case: &str) -> Value {
    json!({
        "provider": PROVIDER, "dataset": "residents", "params": {"national_id": "D000042"},
        "purpose": purpose, "legal_basis": legal_basis, "case": case,
    })
}

/// An application sends free text as the case or the legal basis, through its own gateway: 400,
/// with a code and the pattern to follow, never the value; nothing reaches the provider and
/// nothing is notarized on either side, not even by the outbound rules that refuse the
/// department's batch application everything. A case and a legal basis of the right form still go
/// through, and are recorded on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_is_refused_at_the_consumers_gateway_and_never_notarized() {
    let mut fed = Federation::start().await.unwrap();
    let desk = fed.client(CONSUMER).unwrap();
    let batch = fed.client_as(CONSUMER, DEMO_BATCH_APP, None).unwrap();
    let (consumer_before, provider_before) =
        (ledger_size(&fed, CONSUMER), ledger_size(&fed, PROVIDER));

    let long = "R".repeat(65);
    let attempts = [
        (
            &desk,
            body("benefit-eligibility", "social-welfare-act:s12", DIAGNOSIS),
            "case-not-a-reference",
        ),
        (
            &desk,
            body("benefit-eligibility", "social-welfare-act:s12", &long),
            "case-not-a-reference",
        ),
        (
            &desk,
            body(
                "benefit-eligibility",
                "Social Welfare Act s.12: HIV+ status review of D000042",
                "",
            ),
            "legal-basis-not-a-code",
        ),
        // The outbound rules refuse this application everything and notarize each refusal: the
        // text must not reach that entry either.
        (
            &batch,
            body("benefit-eligibility", "social-welfare-act:s12", DIAGNOSIS),
            "case-not-a-reference",
        ),
    ];
    for (client, request, expected) in attempts {
        let (status, answer) = client.post_json(&request).await.unwrap();
        assert_eq!((status, code(&answer)), (400, expected), "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("^[A-Za-z0-9._:/-]{"), "{message}");
        let text = answer.to_string();
        for word in TELLTALES.iter().chain(&["D000042"]) {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }
    assert_eq!(
        ledger_size(&fed, PROVIDER),
        provider_before,
        "something reached the provider"
    );
    assert_eq!(
        ledger_size(&fed, CONSUMER),
        consumer_before,
        "a refusal was notarized"
    );

    let (status, answer) = desk
        .post_json(&body(
            "benefit-eligibility",
            "social-welfare-act:s12",
            "SW-2025/0001:a_b.c",
        ))
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let exchange = answer["exchange"].as_str().unwrap().to_owned();

    fed.stop().await;
    for dept in [CONSUMER, PROVIDER] {
        let entry = ledger_entries(&fed.ledger_dir(dept))
            .unwrap()
            .into_iter()
            .find(|e| e["id"] == exchange.as_str())
            .unwrap_or_else(|| panic!("{dept} notarized the exchange"));
        assert_eq!(entry["case"], "SW-2025/0001:a_b.c", "{entry}");
        assert_eq!(entry["legal_basis"], "social-welfare-act:s12", "{entry}");
        assert_no_trace(&fed.ledger_dir(dept), &TELLTALES);
    }
}

/// A department that does not check (its own certificate and signing key, an envelope of its own
/// making) sends free text straight to the provider's peer port: 400, no entry in the provider's
/// ledger. The provider's purposes.toml declares a narrower pattern for fraud investigations
/// (`^[A-Z]{2}-FRAUD-[0-9]{4}-[0-9]{3,6}$`): a case of the default form but not that one is
/// refused the same way, one of that form is decided (the tax office's fraud pilot has expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_refuses_signed_envelopes_that_carry_free_text_and_notarizes_nothing() {
    const ATTACKER: &str = "tax-office";
    let mut fed = Federation::start().await.unwrap();
    let peers = fed.peer_transport_as(ATTACKER).unwrap();
    let key = fed.signing_key(ATTACKER);
    let provider = fed
        .directory()
        .department(&DeptId::new(PROVIDER).unwrap())
        .unwrap()
        .clone();
    let send = |purpose: &str, legal_basis: &str, case: &str| {
        let envelope = Envelope {
            v: envelope::ENVELOPE_VERSION,
            id: uuid::Uuid::now_v7(),
            consumer: DeptId::new(ATTACKER).unwrap(),
            provider: DeptId::new(PROVIDER).unwrap(),
            dataset: "residents".into(),
            params: [("national_id".to_owned(), json!("D000042"))].into(),
            purpose: purpose.into(),
            legal_basis: legal_basis.into(),
            case: case.into(),
            officer: "tag".into(),
            application: None,
            issued_at: envelope::now_rfc3339(),
            nonce: envelope::nonce(),
        };
        let bytes = Bytes::from(envelope.to_bytes());
        let request = PeerRequest::exchange(Envelope::sign(&bytes, &key), bytes);
        let (peers, provider) = (&peers, &provider);
        async move {
            let (status, answer) = peers
                .send(provider, request, Duration::from_secs(5))
                .await
                .unwrap();
            (status, serde_json::from_slice::<Value>(&answer).unwrap())
        }
    };

    let before = ledger_size(&fed, PROVIDER);
    let attempts = [
        (
            "tax-assessment",
            "taxation-act:s5",
            DIAGNOSIS,
            "case-not-a-reference",
        ),
        (
            "tax-assessment",
            "Taxation Act s.5, re: Applicant D000042, HIV+ status review",
            "",
            "legal-basis-not-a-code",
        ),
        (
            "fraud-investigation",
            "tax-fraud-act:s9",
            "TX-2024-17",
            "case-not-a-reference",
        ),
    ];
    for (purpose, legal_basis, case, expected) in attempts {
        let (status, answer) = send(purpose, legal_basis, case).await;
        assert_eq!((status, code(&answer)), (400, expected), "{answer}");
        assert!(answer.get("receipt").is_none(), "notarized: {answer}");
        let text = answer.to_string();
        for word in TELLTALES.iter().chain(&["D000042", "TX-2024-17"]) {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }
    let fraud = &send("fraud-investigation", "tax-fraud-act:s9", "TX-2024-17")
        .await
        .1;
    assert!(
        fraud["error"]["message"]
            .as_str()
            .unwrap()
            .contains("^[A-Z]{2}-FRAUD-[0-9]{4}-[0-9]{3,6}$"),
        "the purpose's own pattern is named: {fraud}"
    );
    assert_eq!(
        ledger_size(&fed, PROVIDER),
        before,
        "a refusal was notarized"
    );

    let (status, answer) = send(
        "fraud-investigation",
        "tax-fraud-act:s9",
        "TX-FRAUD-2024-017",
    )
    .await;
    assert_eq!((status, code(&answer)), (403, "expired"), "{answer}");
    assert_eq!(ledger_size(&fed, PROVIDER), before + 1);

    fed.stop().await;
    assert_no_trace(&fed.ledger_dir(PROVIDER), &TELLTALES);
}

/// A case of the default form that the provider's pattern for the purpose refuses, asked through
/// the consumer's own gateway: the provider's 400 is passed on with `provider_status`, and neither
/// side notarizes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_the_providers_purpose_pattern_refuses_is_passed_on_and_never_notarized() {
    let fed = Federation::start().await.unwrap();
    let (consumer_before, provider_before) =
        (ledger_size(&fed, "tax-office"), ledger_size(&fed, PROVIDER));
    let (status, answer) = fed
        .client("tax-office")
        .unwrap()
        .post_json(&body(
            "fraud-investigation",
            "tax-fraud-act:s9",
            "TX-2024-17",
        ))
        .await
        .unwrap();
    assert_eq!(
        (status, code(&answer)),
        (400, "case-not-a-reference"),
        "{answer}"
    );
    assert_eq!(answer["provider_status"], 400, "{answer}");
    assert_eq!(ledger_size(&fed, PROVIDER), provider_before);
    assert_eq!(ledger_size(&fed, "tax-office"), consumer_before);
}
