//! Policies change under a running gateway: hot reload, its ledger record, rate limits under
//! concurrent load, and shadow mode. Real gateways, real TLS, real ledgers.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_tests::{ledger_entries, Federation};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const PROVIDER: &str = "civil-registry";
const CONSUMER: &str = "social-welfare";
/// Long enough for a 1 s poll and a reload on a loaded machine; reached only on failure.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// GET over plain HTTP/1.1; the parsed JSON body.
async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn readyz(fed: &Federation) -> Value {
    let admin = fed.gateway(PROVIDER).admin_addr.expect("admin listener");
    get_json(admin, "/readyz").await
}

/// Poll `probe` until it returns `Some`, failing after [`RELOAD_TIMEOUT`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {RELOAD_TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replace a file atomically, as an admin's deploy would (the poller never sees half a file).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    replace(path, &text.replacen(from, to, 1));
}

async fn ask_residents(fed: &Federation) -> (u16, Value) {
    fed.request(
        CONSUMER,
        PROVIDER,
        "residents",
        json!({"national_id": "D000042"}),
        "benefit-eligibility",
    )
    .await
    .expect("request")
}

fn policy_changes(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == "policy-change")
        .collect()
}

#[tokio::test]
async fn a_broken_file_leaves_the_old_set_and_a_good_change_is_notarized_once() {
    let mut fed = Federation::start().await.expect("federation starts");
    let policies = fed.dept_dir(PROVIDER).join("policies");

    let (status, answer) = ask_residents(&fed).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["fields"], json!(["name", "birth_date", "address"]));
    let ready = readyz(&fed).await;
    let original = ready["policies"]["hash"]
        .as_str()
        .expect("policy hash on /readyz")
        .to_owned();
    assert_eq!(ready["policies"]["last_error"], Value::Null, "{ready}");
    assert_eq!(ready["policies"]["reload_failures"], 0, "{ready}");

    // A broken file: the reload fails, the old set stays in force.
    replace(
        &policies.join("broken.toml"),
        "[[grant]]\nid = \"broken\"\nfeilds = [\"name\"]\n",
    );
    let error = eventually("the reload error on /readyz", || async {
        readyz(&fed).await["policies"]["last_error"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(
        error.contains("broken.toml:3:1: unknown field \"feilds\""),
        "{error}"
    );
    let ready = readyz(&fed).await;
    assert_eq!(ready["policies"]["hash"], original.as_str());
    assert!(
        ready["policies"]["reload_failures"].as_u64() >= Some(1),
        "{ready}"
    );
    // The old set still decides, but the files on disk do not load: not ready until fixed
    // (docs/OPERATIONS.md, "Readiness").
    assert_eq!(ready["ready"], false, "{ready}");
    let (status, answer) = ask_residents(&fed).await;
    assert_eq!(status, 200, "the old set still decides: {answer}");
    assert_eq!(answer["decision"]["policy"], original.as_str());
    assert_eq!(answer["fields"], json!(["name", "birth_date", "address"]));

    // A good change: the broken file goes, the grant stops releasing the address.
    std::fs::remove_file(policies.join("broken.toml")).expect("remove");
    edit(
        &policies.join("welfare-residents.toml"),
        "fields = [\"name\", \"birth_date\", \"address\"]",
        "fields = [\"name\", \"birth_date\"]",
    );
    let changed = eventually("the new policy set on /readyz", || async {
        let ready = readyz(&fed).await;
        let hash = ready["policies"]["hash"].as_str()?.to_owned();
        (hash != original && ready["policies"]["last_error"].is_null()).then_some(hash)
    })
    .await;
    let (status, answer) = ask_residents(&fed).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["fields"], json!(["name", "birth_date"]));
    assert_eq!(answer["decision"]["policy"], changed.as_str());

    fed.stop().await;
    let entries = ledger_entries(&fed.ledger_dir(PROVIDER)).expect("ledger reads");
    let changes = policy_changes(&entries);
    assert_eq!(
        changes.len(),
        2,
        "one at start, exactly one for the change: {changes:?}"
    );
    assert_eq!(changes[0]["policy"], original.as_str());
    let change = changes[1];
    assert_eq!(change["policy"], changed.as_str());
    assert_eq!(change["detail"]["previous"], original.as_str());
    assert_eq!(
        change["detail"]["changes"],
        json!({"added": [], "removed": [], "modified": ["welfare-residents.toml"]})
    );
    // The change is recorded before any request it decided.
    let change_at = change["index"].as_u64().expect("index");
    let decided_by_new: Vec<u64> = entries
        .iter()
        .filter(|e| e["kind"] == "exchange" && e["policy"] == changed.as_str())
        .map(|e| e["index"].as_u64().expect("index"))
        .collect();
    assert!(!decided_by_new.is_empty());
    assert!(decided_by_new.iter().all(|&i| i > change_at));
}

#[tokio::test]
async fn a_restart_with_changed_files_records_what_changed() {
    let mut fed = Federation::start().await.expect("federation starts");
    fed.stop_dept(PROVIDER).await;
    let policies = fed.dept_dir(PROVIDER).join("policies");
    std::fs::remove_file(policies.join("protected-persons.toml")).expect("remove");
    fed.start_dept(PROVIDER).await.expect("restarts");
    fed.stop().await;
    let entries = ledger_entries(&fed.ledger_dir(PROVIDER)).expect("ledger reads");
    let changes = policy_changes(&entries);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["detail"]["changes"]["removed"], json!([]));
    assert_eq!(
        changes[1]["detail"]["changes"],
        json!({"added": [], "removed": ["protected-persons.toml"], "modified": []})
    );
    assert_eq!(changes[1]["detail"]["trigger"], "start");
}

#[tokio::test]
async fn rate_limits_hold_under_concurrent_requests() {
    const LIMIT: usize = 5;
    const REQUESTS: usize = 24;
    let mut fed = Federation::create().expect("federation lays out");
    edit(
        &fed.dept_dir(PROVIDER)
            .join("policies/welfare-residents.toml"),
        "rate_limit = { per_minute = 600, per_day = 50000 }",
        &format!("rate_limit = {{ per_day = {LIMIT} }}"),
    );
    for dept in ["civil-registry", "tax-office", "social-welfare"] {
        fed.start_dept(dept).await.expect("starts");
    }
    let day = || time::OffsetDateTime::now_utc().date();
    let day_before = day();
    let client = fed.client(CONSUMER).unwrap();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let client = client.clone();
        requests.spawn(async move {
            let body = json!({
                "provider": PROVIDER, "dataset": "residents",
                "params": {"national_id": format!("D{:06}", 10 + i)},
                "purpose": "benefit-eligibility", "legal_basis": "test-act:s1",
                "case": "",
            });
            client.post_json(&body).await.expect("request")
        });
    }
    let mut allowed = 0;
    let mut limited = 0;
    while let Some(result) = requests.join_next().await {
        let (status, answer) = result.expect("task");
        match status {
            200 => allowed += 1,
            403 if answer["error"]["code"] == "rate-limited" => limited += 1,
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    if day() != day_before {
        // The UTC day turned during the test: two windows, each held to the limit.
        assert!(allowed <= 2 * LIMIT, "{allowed} allowed");
    } else {
        assert_eq!(allowed, LIMIT, "exactly the limit is allowed");
    }
    assert_eq!(allowed + limited, REQUESTS);

    fed.stop().await;
    let entries = ledger_entries(&fed.ledger_dir(PROVIDER)).expect("ledger reads");
    let notarized_limited = entries
        .iter()
        .filter(|e| e["kind"] == "denied" && e["reason"] == "rate-limited")
        .count();
    assert_eq!(notarized_limited, limited, "every refusal is notarized");
}

#[tokio::test]
async fn shadow_mode_counts_differences_and_only_the_active_set_decides() {
    let mut fed = Federation::create().expect("federation lays out");
    let dept = fed.dept_dir(PROVIDER);
    let candidate = dept.join("policies-next");
    std::fs::create_dir(&candidate).expect("mkdir");
    for entry in std::fs::read_dir(dept.join("policies")).expect("policies") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, candidate.join(path.file_name().expect("name"))).expect("copy");
    }
    // The candidate withdraws social welfare's access entirely.
    std::fs::remove_file(candidate.join("welfare-residents.toml")).expect("remove");
    edit(
        &dept.join("causeway.toml"),
        "policies = \"policies\"\n",
        "policies = \"policies\"\npolicies_shadow = \"policies-next\"\n",
    );
    for d in ["civil-registry", "tax-office", "social-welfare"] {
        fed.start_dept(d).await.expect("starts");
    }
    let ready = readyz(&fed).await;
    assert_eq!(ready["policies"]["shadow"]["differences"], 0, "{ready}");
    assert_ne!(
        ready["policies"]["shadow"]["hash"],
        ready["policies"]["hash"]
    );

    let (status, answer) = ask_residents(&fed).await;
    assert_eq!(status, 200, "the active set decides: {answer}");
    // The tax office is refused by both sets alike: no difference.
    let (status, _) = fed
        .request(
            "tax-office",
            PROVIDER,
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .expect("request");
    assert_eq!(status, 403);

    let ready = readyz(&fed).await;
    assert_eq!(ready["policies"]["shadow"]["differences"], 1, "{ready}");
    fed.stop().await;
}
