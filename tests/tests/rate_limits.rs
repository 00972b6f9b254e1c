//! Rate limits on every decision: no caller can fill a ledger's disk. A flood of denials costs the
//! provider its consumer's budget of notarized denials and one summary entry a window; the
//! department's own refusals are bounded the same way; the budgets survive a restart.

use std::time::{Duration, Instant};

use causeway::layout::DEMO_BATCH_APP;
use causeway_tests::{ledger_entries, rewrite, Federation, TEST_OFFICER_LIMITS};
use serde_json::{json, Value};

const CONSUMER: &str = "social-welfare";
const PROVIDER: &str = "civil-registry";

fn denied_request() -> Value {
    // Social welfare has no grant for this purpose at the civil registry: denied, and notarized.
    json!({"provider": PROVIDER, "dataset": "residents", "params": {"national_id": "D000010"},
        "purpose": "tax-assessment", "legal_basis": "test-act:s1", "case": ""})
}

fn append(path: &std::path::Path, text: &str) {
    let mut config = std::fs::read_to_string(path).unwrap();
    config.push_str(text);
    std::fs::write(path, config).unwrap();
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("")
}

/// Entries of `kind` added to `dept`'s ledger after index `from`, and the requests their summaries
/// stand for.
fn added(fed: &Federation, dept: &str, from: usize) -> (Vec<Value>, u64) {
    let entries: Vec<Value> = ledger_entries(&fed.ledger_dir(dept)).unwrap()[from..].to_vec();
    let summarized = entries
        .iter()
        .filter(|e| e["kind"] == "refused" && e["reason"] == "rate-limited")
        .map(|e| e["detail"]["refused"].as_u64().unwrap())
        .sum();
    (entries, summarized)
}

/// Wait until `dept`'s ledger has summarized `expected` requests (the summaries are written once a
/// window has ended).
async fn until_summarized(fed: &Federation, dept: &str, from: usize, expected: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (entries, summarized) = added(fed, dept, from);
        if summarized >= expected || Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_denials_costs_the_provider_its_budget_and_one_entry_per_window() {
    const FLOOD: u64 = 120;
    const WINDOW: u64 = 2;
    let mut fed = Federation::create().unwrap();
    append(
        &fed.layout.dept(PROVIDER).unwrap().config,
        &format!("\n[peer.rate_limits]\ndecisions = 100000\ndenials = 5\nwindow_secs = {WINDOW}\n"),
    );
    for dept in [PROVIDER, "tax-office", CONSUMER] {
        fed.start_dept(dept).await.unwrap();
    }
    let from = ledger_entries(&fed.ledger_dir(PROVIDER)).unwrap().len();
    let client = fed.client(CONSUMER).unwrap();
    let started = Instant::now();
    let (mut notarized, mut limited) = (0u64, 0u64);
    for wave in 0..FLOOD / 10 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let client = client.clone();
            set.spawn(async move { client.post_json(&denied_request()).await.unwrap() });
        }
        while let Some(done) = set.join_next().await {
            let (status, answer) = done.unwrap();
            match (status, code(&answer)) {
                (403, "purpose-not-allowed") => notarized += 1,
                (429, "too-many-denials") => limited += 1,
                other => panic!("wave {wave}: {other:?} {answer}"),
            }
        }
    }
    let windows = started.elapsed().as_secs() / WINDOW + 2;
    assert_eq!(notarized + limited, FLOOD);
    assert!(limited > 0, "the flood was never limited");
    let entries = until_summarized(&fed, PROVIDER, from, limited).await;
    let denied = entries.iter().filter(|e| e["kind"] == "denied").count() as u64;
    let summaries: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "refused").collect();
    let summarized: u64 = summaries
        .iter()
        .map(|e| e["detail"]["refused"].as_u64().unwrap())
        .sum();
    assert_eq!(denied, notarized, "every answered denial is notarized");
    assert_eq!(
        summarized, limited,
        "every limited request is counted in a summary"
    );
    assert!(
        denied <= 5 * windows && summaries.len() as u64 <= windows,
        "{denied} denials and {} summaries over {windows} windows",
        summaries.len()
    );
    for summary in &summaries {
        assert_eq!(summary["consumer"], CONSUMER, "{summary}");
        assert_eq!(summary["side"], "provider", "{summary}");
        assert!(
            summary["detail"]["by_reason"]["purpose-not-allowed"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_departments_own_refusals_and_officers_are_bounded_too() {
    let mut fed = Federation::create().unwrap();
    rewrite(
        &fed.layout.dept(CONSUMER).unwrap().config,
        TEST_OFFICER_LIMITS,
        "\n[client.rate_limits]\ndecisions = 100000\ndenials = 3\nwindow_secs = 2\n[client.officer_rate_limits]\ndecisions = 4\ndenials = 60\nwindow_secs = 600\n",
    );
    for dept in [PROVIDER, "tax-office", CONSUMER] {
        fed.start_dept(dept).await.unwrap();
    }
    let provider_before = ledger_entries(&fed.ledger_dir(PROVIDER)).unwrap().len();
    let from = ledger_entries(&fed.ledger_dir(CONSUMER)).unwrap().len();
    // The batch job's outbound rules allow nothing: 3 refusals notarized, the rest counted.
    let batch = fed.client_as(CONSUMER, DEMO_BATCH_APP, None).unwrap();
    let mut counted = 0;
    for _ in 0..30 {
        let (status, answer) = batch.post_json(&denied_request()).await.unwrap();
        match (status, code(&answer)) {
            (403, "outbound-denied") => {}
            (429, "too-many-refusals") => counted += 1,
            other => panic!("{other:?} {answer}"),
        }
    }
    assert!(counted >= 20, "{counted}");
    let entries = until_summarized(&fed, CONSUMER, from, counted).await;
    let summary = entries
        .iter()
        .find(|e| e["reason"] == "rate-limited")
        .unwrap();
    assert_eq!(summary["application"], DEMO_BATCH_APP, "{summary}");
    assert!(
        entries
            .iter()
            .filter(|e| e["reason"] == "outbound-rule")
            .count()
            <= 3 * 16,
        "refusals beyond the budget were notarized one by one"
    );
    // One officer may make four requests in this window; the fifth is refused without a decision.
    let desk = fed.client(CONSUMER).unwrap();
    let allowed = json!({"provider": PROVIDER, "dataset": "residents",
        "params": {"national_id": "D000011"}, "purpose": "benefit-eligibility",
        "legal_basis": "test-act:s1", "case": ""});
    for _ in 0..4 {
        let (status, answer) = desk.post_json(&allowed).await.unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = desk.post_json(&allowed).await.unwrap();
    assert_eq!((status, code(&answer)), (429, "rate-limited"), "{answer}");
    assert_eq!(
        ledger_entries(&fed.ledger_dir(PROVIDER)).unwrap().len(),
        provider_before + 4,
        "only the four allowed requests reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_hand_a_flooding_consumer_a_fresh_budget() {
    let mut fed = Federation::create().unwrap();
    append(
        &fed.layout.dept(PROVIDER).unwrap().config,
        "\n[peer.rate_limits]\ndecisions = 3\ndenials = 3\nwindow_secs = 3600\n",
    );
    for dept in [PROVIDER, "tax-office", CONSUMER] {
        fed.start_dept(dept).await.unwrap();
    }
    let client = fed.client(CONSUMER).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.post_json(&denied_request()).await.unwrap().0);
    }
    assert_eq!(statuses, [403, 403, 403, 429]);
    fed.stop_dept(PROVIDER).await;
    fed.start_dept(PROVIDER).await.unwrap();
    let (status, answer) = client.post_json(&denied_request()).await.unwrap();
    assert_eq!(
        (status, code(&answer)),
        (429, "too-many-requests"),
        "the used budget came back after the restart: {answer}"
    );
}
