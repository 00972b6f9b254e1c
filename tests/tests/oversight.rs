//! The oversight node against real gateways: pulls over mTLS, cross-checks both sides of every
//! exchange, flags a rewritten log with evidence, answers the citizen's report without ever
//! storing the raw national id, and serves a dashboard that a real headless Chromium renders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use causeway::gateway::Gateway;
use causeway::identity::{DeptId, PeerIdentity};
use causeway::layout;
use causeway::oversight::crosscheck::{Finding, FindingKind};
use causeway::oversight::pull::PullReport;
use causeway::oversight::{Asker, Oversight};
use causeway_ledger::checkpoint::open_checkpoint;
use causeway_ledger::entry::{Entry, Kind};
use causeway_ledger::{Ledger, LedgerOptions};
use causeway_tests::{
    causeway_cli, exchange_id, ledger_entries, pull_verified, rebuild_ledger, sign_in,
    start_oversight, tls_client, Federation, STAFF_PASSWORD,
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

fn node(gateway: &Gateway) -> &Arc<Oversight> {
    gateway.oversight().expect("an oversight node")
}

fn has(findings: &[Finding], kind: FindingKind, exchange: &str) -> bool {
    findings
        .iter()
        .any(|f| f.kind == kind && f.exchange == exchange)
}

#[tokio::test]
async fn crosscheck_finds_a_deleted_entry_a_changed_digest_and_a_consumer_only_exchange() {
    let mut fed = Federation::start().await.unwrap();
    let untouched = exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": "D000001"}),
        "benefit-eligibility",
    )
    .await;
    let changed = exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000002"}),
        "tax-assessment",
    )
    .await;
    let deleted = exchange_id(
        &fed,
        "social-welfare",
        "tax-office",
        "income",
        json!({"national_id": "D000003", "year": 2024}),
        "benefit-eligibility",
    )
    .await;
    let template = exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000004"}),
        "tax-assessment",
    )
    .await;
    fed.stop().await;

    // (a) The consumer's record of `deleted` disappears: social-welfare's log is rebuilt without it.
    rebuild_ledger(
        &fed.ledger_dir("social-welfare"),
        &fed.signing_key("social-welfare"),
        |e| e.id.as_deref() != Some(deleted.as_str()),
    )
    .await
    .unwrap();
    // (b) The provider's record of `changed` gets another response digest.
    rebuild_ledger(
        &fed.ledger_dir("civil-registry"),
        &fed.signing_key("civil-registry"),
        |e| {
            if e.id.as_deref() == Some(changed.as_str()) {
                e.response_digest = Some("0".repeat(64));
            }
            true
        },
    )
    .await
    .unwrap();
    // (c) The consumer records an exchange the provider never saw.
    let fabricated = uuid::Uuid::now_v7().to_string();
    {
        let dir = fed.ledger_dir("tax-office");
        let entries = ledger_entries(&dir).unwrap();
        let mut entry: Entry = serde_json::from_value(
            entries
                .into_iter()
                .find(|e| e["id"] == json!(template) && e["side"] == "consumer")
                .expect("the consumer recorded the template exchange"),
        )
        .unwrap();
        entry.id = Some(fabricated.clone());
        entry.time = String::new();
        let ledger = Ledger::open(
            &dir,
            LedgerOptions::default(),
            fed.signing_key("tax-office").to_note_signer(),
        )
        .unwrap();
        ledger.append(entry).await.unwrap();
        ledger.close();
    }
    for dept in ["civil-registry", "tax-office", "social-welfare"] {
        fed.start_dept(dept).await.unwrap();
    }

    let (oversight, layout) = start_oversight(&fed).await.unwrap();
    for (dept, report) in pull_verified(&oversight).await {
        assert!(
            report.flag.is_none(),
            "{dept} was flagged: {:?}",
            report.flag
        );
        assert!(report.to > 0, "{dept}: nothing pulled");
    }
    let findings = node(&oversight)
        .crosscheck(&Asker::new("test", "administrator", "cli"))
        .await
        .unwrap();
    assert!(
        has(&findings, FindingKind::ProviderOnly, &deleted),
        "(a) deleted consumer entry: {findings:#?}"
    );
    let mismatch = findings
        .iter()
        .find(|f| f.kind == FindingKind::Mismatch && f.exchange == changed)
        .unwrap_or_else(|| panic!("(b) changed digest: {findings:#?}"));
    assert!(
        mismatch.detail.contains("response_digest"),
        "{}",
        mismatch.detail
    );
    assert!(
        has(&findings, FindingKind::BadReceipt, &changed),
        "the consumer's receipt no longer matches: {findings:#?}"
    );
    assert!(
        has(&findings, FindingKind::ConsumerOnly, &fabricated),
        "(c) consumer-only: {findings:#?}"
    );
    assert!(
        findings.iter().all(|f| f.exchange != untouched),
        "the untouched exchange has no finding: {findings:#?}"
    );

    // The dashboard lists them, each linked to its exchange page, which shows the finding beside
    // the side that is there.
    let addr = oversight.client_addr;
    let (status, page) = http_get(addr, "/findings").await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page.matches("class=\"finding\"").count(),
        findings.len(),
        "{page}"
    );
    for f in findings.iter() {
        assert!(
            page.contains(&format!("href=\"/exchange?id={}\"", f.exchange)),
            "{page}"
        );
    }
    let (status, page) = http_get(addr, &format!("/exchange?id={deleted}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("data-findings=\"1\"") && page.contains("provider-only"),
        "{page}"
    );
    assert_eq!(
        page.matches("<section class=\"entry\" data-side=\"provider\"")
            .count(),
        1
    );
    assert_eq!(page.matches("data-side=\"consumer\"").count(), 0, "{page}");

    // The command line says the same, with a failing exit status, through the running node.
    let config = layout.config.display().to_string();
    let code = causeway_cli(vec![
        "audit".into(),
        "crosscheck".into(),
        "--config".into(),
        config.clone(),
        "--staff".into(),
        "investigator".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(
        code,
        ExitCode::FAILURE,
        "findings make `audit crosscheck` fail"
    );
    let queries = node(&oversight).recent_queries(10).unwrap();
    assert!(
        queries.iter().any(
            |q| q.detail.as_ref().is_some_and(|d| d["query"] == "crosscheck"
                && d["via"] == "api"
                && d["asked_by"] == "investigator"
                && d["role"] == "investigator")
        ),
        "the CLI's cross-check was notarized as asked by the staff member it signed in as: {queries:#?}"
    );
    oversight.shutdown().await;
    fed.stop().await;
}

#[tokio::test]
async fn a_clean_federation_has_no_findings_and_audit_crosscheck_succeeds() {
    let mut fed = Federation::start().await.unwrap();
    exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": "D000001"}),
        "benefit-eligibility",
    )
    .await;
    exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": "D000001"}),
        "marketing",
    )
    .await;
    let (oversight, layout) = start_oversight(&fed).await.unwrap();
    pull_verified(&oversight).await;
    oversight.shutdown().await;
    // With the node stopped the command line opens the replica and the oversight ledger itself.
    let code = causeway_cli(vec![
        "audit".into(),
        "crosscheck".into(),
        "--config".into(),
        layout.config.display().to_string(),
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let entries = ledger_entries(&layout.dir.join("ledger")).unwrap();
    assert!(
        entries.iter().any(|e| e["kind"] == "oversight-query"
            && e["detail"]["query"] == "crosscheck"
            && e["detail"]["via"] == "cli"),
        "the offline cross-check was notarized: {entries:#?}"
    );
    fed.stop().await;
}

#[tokio::test]
async fn a_log_rewritten_after_the_oversight_pull_is_flagged_with_both_checkpoints() {
    let mut fed = Federation::start().await.unwrap();
    let first = exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000010"}),
        "tax-assessment",
    )
    .await;
    exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": "D000011"}),
        "benefit-eligibility",
    )
    .await;
    let (oversight, _layout) = start_oversight(&fed).await.unwrap();
    for (dept, report) in pull_verified(&oversight).await {
        assert!(report.flag.is_none(), "{dept}: {:?}", report.flag);
    }

    fed.stop_dept("civil-registry").await;
    rebuild_ledger(
        &fed.ledger_dir("civil-registry"),
        &fed.signing_key("civil-registry"),
        |e| {
            if e.id.as_deref() == Some(first.as_str()) {
                e.purpose = Some("something-else".into());
            }
            true
        },
    )
    .await
    .unwrap();
    fed.start_dept("civil-registry").await.unwrap();

    let reports = pull_verified(&oversight).await;
    let (_, registry) = reports.iter().find(|(d, _)| d == "civil-registry").unwrap();
    let flag = registry.flag.clone().expect("the rewritten log is flagged");
    assert!(registry.newly_flagged);
    assert!(
        ["fork", "inconsistent", "shrunk"].contains(&flag.reason.as_str()),
        "{flag:?}"
    );
    let directory = fed.directory();
    let key = &directory
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap()
        .verifier;
    let held = open_checkpoint(flag.held.as_deref().expect("held checkpoint kept"), key).unwrap();
    let served =
        open_checkpoint(flag.served.as_deref().expect("served checkpoint kept"), key).unwrap();
    assert!(
        held.root != served.root,
        "two signed, contradicting checkpoints are the evidence"
    );
    for (dept, report) in &reports {
        if dept != "civil-registry" {
            assert!(report.flag.is_none(), "{dept} is not flagged");
        }
    }
    // The evidence also lands in the oversight node's own signed ledger, and the flag stays.
    let size = node(&oversight).ledger().checkpoint().0;
    let mut fork = None;
    node(&oversight)
        .ledger()
        .read(|r| {
            r.for_each_entry(0, size, |_, bytes| {
                let e = Entry::from_bytes(bytes).unwrap();
                if e.kind == Kind::Fork {
                    fork = Some(e);
                }
                Ok(())
            })
        })
        .unwrap();
    let fork = fork.expect("a fork entry with the evidence");
    assert_eq!(fork.provider.as_deref(), Some("civil-registry"));
    assert_eq!(fork.detail.as_ref().unwrap()["served"], json!(flag.served));
    let again = pull_verified(&oversight).await;
    let (_, registry) = again.iter().find(|(d, _)| d == "civil-registry").unwrap();
    assert!(registry.flag.is_some() && !registry.newly_flagged);
    let status = http_get(oversight.client_addr, "/").await.unwrap().1;
    assert!(
        status.contains("data-department=\"civil-registry\" data-status=\"bad\""),
        "the dashboard shows the flag"
    );
    oversight.shutdown().await;
    fed.stop().await;
}

/// Every file under `dir`, as bytes.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_subject_report_lists_exactly_that_persons_exchanges_and_the_raw_id_is_never_stored() {
    const PERSON: &str = "D000042";
    let mut fed = Federation::start().await.unwrap();
    let mut expected = vec![
        exchange_id(
            &fed,
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": PERSON}),
            "benefit-eligibility",
        )
        .await,
        exchange_id(
            &fed,
            "tax-office",
            "civil-registry",
            "residents",
            json!({"national_id": PERSON}),
            "tax-assessment",
        )
        .await,
        exchange_id(
            &fed,
            "social-welfare",
            "tax-office",
            "income",
            json!({"national_id": PERSON, "year": 2024}),
            "benefit-eligibility",
        )
        .await,
        exchange_id(
            &fed,
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": PERSON}),
            "marketing",
        )
        .await,
    ];
    exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": "D000043"}),
        "benefit-eligibility",
    )
    .await;
    exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000044"}),
        "tax-assessment",
    )
    .await;
    let (oversight, layout) = start_oversight(&fed).await.unwrap();
    pull_verified(&oversight).await;

    let tag = node(&oversight).subject_tag(PERSON);
    let report = node(&oversight)
        .subject_report(&tag, &Asker::new("test", "administrator", "cli"))
        .await
        .unwrap();
    let mut got: Vec<String> = report
        .exchanges
        .iter()
        .map(|x| x.exchange.clone())
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(
        got, expected,
        "exactly the exchanges that touched the person"
    );
    let denied = report
        .exchanges
        .iter()
        .find(|x| x.purpose == "marketing")
        .unwrap();
    assert_eq!(denied.decision, "deny");
    assert!(denied.fields.is_empty());
    let allowed = report
        .exchanges
        .iter()
        .find(|x| x.dataset == "income")
        .unwrap();
    assert_eq!(
        (allowed.consumer.as_str(), allowed.provider.as_str()),
        ("social-welfare", "tax-office")
    );
    assert!(
        !allowed.fields.is_empty() && !allowed.policy.is_empty() && !allowed.legal_basis.is_empty()
    );
    assert_eq!(allowed.recorded_by, ["provider", "consumer"]);

    // The dashboard takes the id in a POST body and answers with a URL that carries only the tag.
    let (status, location, _) = http_post_form(
        oversight.client_addr,
        "/search",
        &format!("subject={PERSON}"),
    )
    .await
    .unwrap();
    assert_eq!(status, 303);
    // The person's tags (one per department key), form-encoded.
    let encoded = tag.replace(':', "%3A").replace(',', "%2C");
    assert!(
        location.contains(&encoded) && !location.contains(PERSON),
        "{location}"
    );
    // A raw id where a tag belongs is refused, never notarized with the query.
    for path in [
        format!("/api/subject?tag={PERSON}"),
        format!("/report?subject_tag={PERSON}"),
    ] {
        let (status, _) = http_get(oversight.client_addr, &path).await.unwrap();
        assert_eq!(status, 400, "{path}");
    }
    let (status, page) = http_get(oversight.client_addr, &location).await.unwrap();
    assert_eq!(status, 200);
    for id in &expected {
        assert!(
            page.contains(id.as_str()),
            "the search by subject lists {id}"
        );
    }
    assert!(!page.contains(PERSON), "the page never echoes the id");

    // The command line: the HTML report names the person by tag only.
    let html = fed.root.path().join("report.html");
    let code = causeway_cli(vec![
        "audit".into(),
        "subject".into(),
        "--id".into(),
        PERSON.into(),
        "--config".into(),
        layout.config.display().to_string(),
        "--staff".into(),
        "officer".into(),
        "--html".into(),
        html.display().to_string(),
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let printable = std::fs::read_to_string(&html).unwrap();
    assert!(printable.contains(&tag) && !printable.contains(PERSON));
    for id in &expected {
        assert!(printable.contains(id.as_str()));
    }
    oversight.shutdown().await;

    // Nothing the oversight node wrote holds the id, while its tags are there (the replicated
    // entries carry them; notarized queries only a commitment), so the search below is able to
    // find what it looks for.
    let files = all_bytes(&layout.dir);
    assert!(
        files
            .iter()
            .any(|(_, b)| tag.split(',').any(|t| contains(b, t.as_bytes()))),
        "the person's tags are in the replica"
    );
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, PERSON.as_bytes()),
            "{} holds the raw national id",
            path.display()
        );
    }
    let ledger = ledger_entries(&layout.dir.join("ledger")).unwrap();
    let queries: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["kind"] == "oversight-query")
        .collect();
    // The subject is notarized as a hiding commitment, which the report's salt opens.
    let salt: [u8; 32] = hex::decode(report.subject_salt.as_deref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let commitment = causeway::oversight::bundle::subject_commitment(&salt, &tag);
    assert!(queries
        .iter()
        .any(|q| q["detail"]["query"] == "subject-report"
            && q["detail"]["filter"]["subject"] == json!(commitment)
            && q["rows"] == 4));
    assert!(queries.iter().any(|q| q["detail"]["query"] == "search"
        && q["detail"]["via"] == "dashboard"
        && q["detail"]["filter"]["subject"]
            .as_str()
            .is_some_and(|c| c.starts_with("c1:"))));
    assert!(
        queries
            .iter()
            .all(|q| tag.split(',').all(|t| !q.to_string().contains(t))),
        "no notarized query names the subject's tags"
    );
    fed.stop().await;
}

#[tokio::test]
async fn only_oversight_certificates_read_full_entries() {
    let mut fed = Federation::start().await.unwrap();
    exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000007"}),
        "tax-assessment",
    )
    .await;
    let directory = fed.directory();
    let registry = directory
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap()
        .clone();
    let get = || {
        http::Request::get("https://civil-registry/causeway/v1/log/entries?start=0&end=10")
            .body(Bytes::new())
            .unwrap()
    };
    let peer = fed.peer_client_as("tax-office").unwrap();
    let (status, body) = peer
        .send(&registry, get(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("oversight-only"));
    // Checkpoints and proofs stay open to peers.
    let checkpoint = http::Request::get("https://civil-registry/causeway/v1/log/checkpoint")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        peer.send(&registry, checkpoint, Duration::from_secs(5))
            .await
            .unwrap()
            .0,
        200
    );

    // Certificates from the federation's CA that the directory does not list are answered
    // nothing: an oversight node no configuration names, a department that is not a member.
    let certs = fed.root.path().join("certs");
    for (who, files) in [
        (
            PeerIdentity::Oversight(DeptId::new("rogue-office").unwrap()),
            "oversight-rogue-office",
        ),
        (
            PeerIdentity::Dept(DeptId::new("intruder").unwrap()),
            "intruder",
        ),
    ] {
        causeway::identity::pki::issue(&certs, &certs, &who, &["localhost".into()]).unwrap();
        let stranger = tls_client(&certs, files, "demo").unwrap();
        for request in [
            get(),
            http::Request::get("https://civil-registry/causeway/v1/log/checkpoint")
                .body(Bytes::new())
                .unwrap(),
            http::Request::post("https://civil-registry/causeway/v1/witness/add-checkpoint")
                .body(Bytes::from_static(b"old 0\n\n"))
                .unwrap(),
        ] {
            let (status, body) = stranger
                .send(&registry, request, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(status, 403, "{files}: {}", String::from_utf8_lossy(&body));
            assert!(String::from_utf8_lossy(&body).contains("not-a-member"));
        }
    }

    layout::create_oversight(&fed.layout, "audit-office").unwrap();
    let overseer = tls_client(
        &fed.root.path().join("certs"),
        "oversight-audit-office",
        "demo",
    )
    .unwrap();
    let (status, body) = overseer
        .send(&registry, get(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        answer["entries"].as_array().is_some_and(|e| e.len() >= 2),
        "{answer}"
    );
    fed.stop().await;
}

#[tokio::test]
async fn the_pull_verifies_what_it_stores_and_continues_incrementally() {
    let mut fed = Federation::start().await.unwrap();
    exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000005"}),
        "tax-assessment",
    )
    .await;
    let (oversight, _layout) = start_oversight(&fed).await.unwrap();
    let first: Vec<(String, PullReport)> = pull_verified(&oversight).await;
    let size_of = |reports: &[(String, PullReport)], d: &str| {
        reports.iter().find(|(x, _)| x == d).unwrap().1.clone()
    };
    let before = size_of(&first, "civil-registry");
    assert_eq!(
        before.to,
        fed.gateway("civil-registry").ledger().checkpoint().0
    );
    exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000006"}),
        "tax-assessment",
    )
    .await;
    let second = pull_verified(&oversight).await;
    let after = size_of(&second, "civil-registry");
    assert_eq!(
        after.from, before.to,
        "the second pull continues where the first stopped"
    );
    assert_eq!(
        after.to,
        fed.gateway("civil-registry").ledger().checkpoint().0
    );
    // The replica holds the provider's exact bytes.
    let replica = node(&oversight).replica();
    let dir = fed.ledger_dir("civil-registry");
    let entry = fed
        .gateway("civil-registry")
        .ledger()
        .read(|r| Ok(r.entry(1)?.map(<[u8]>::to_vec)))
        .unwrap()
        .unwrap();
    assert_eq!(
        replica.entry_bytes("civil-registry", 1).unwrap().unwrap(),
        entry,
        "{}",
        dir.display()
    );
    let statuses = node(&oversight).statuses().await.unwrap();
    assert!(statuses
        .iter()
        .all(|s| s.state.flag.is_none() && s.state.checkpoint.is_some()));
    oversight.shutdown().await;
    fed.stop().await;
}

// ---- The dashboard in a real headless Chromium, driven through WebDriver ----

/// One request to the dashboard at `addr`, signed in as `admin` (every role): the session
/// cookie is added, and the CSRF token of that session to a form body.
async fn http_request(
    addr: std::net::SocketAddr,
    mut request: http::Request<Full<Bytes>>,
) -> Result<(u16, http::HeaderMap, Bytes)> {
    let (cookie, _) = admin_session(addr).await?;
    request
        .headers_mut()
        .insert(http::header::COOKIE, cookie.parse()?);
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    Ok((
        parts.status.as_u16(),
        parts.headers,
        body.collect().await?.to_bytes(),
    ))
}

/// The `admin` session (cookie, CSRF token) of the dashboard at `addr`, signed in once.
async fn admin_session(addr: std::net::SocketAddr) -> Result<(String, String)> {
    static SESSIONS: std::sync::Mutex<Vec<(std::net::SocketAddr, String, String)>> =
        std::sync::Mutex::new(Vec::new());
    if let Some((_, c, t)) = SESSIONS.lock().unwrap().iter().find(|(a, ..)| *a == addr) {
        return Ok((c.clone(), t.clone()));
    }
    let cookie = sign_in(addr, "admin", STAFF_PASSWORD).await?;
    let csrf = causeway_tests::staff_csrf(addr, &cookie).await?;
    SESSIONS
        .lock()
        .unwrap()
        .push((addr, cookie.clone(), csrf.clone()));
    Ok((cookie, csrf))
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let (status, _, body) = http_request(addr, request).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn http_post_form(
    addr: std::net::SocketAddr,
    path: &str,
    form: &str,
) -> Result<(u16, String, String)> {
    let (_, csrf) = admin_session(addr).await?;
    let request = http::Request::post(path)
        .header(http::header::HOST, addr.to_string())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(format!("{form}&csrf={csrf}"))))?;
    let (status, headers, body) = http_request(addr, request).await?;
    let location = headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((
        status,
        location,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// Debian's chromium and chromedriver, or a failure that says how to get them.
fn chromium_and_driver() -> (PathBuf, PathBuf) {
    const INSTALL: &str = "run `apt-get update && apt-get install -y chromium chromium-driver` (Debian's packages; .ci/run installs them)";
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("the dashboard test needs a real Chromium: {INSTALL}"));
    let driver = PathBuf::from("/usr/bin/chromedriver");
    assert!(
        driver.exists(),
        "the dashboard test drives Chromium through WebDriver and needs chromedriver: {INSTALL}"
    );
    (chromium, driver)
}

/// Every browser step waits at most this long.
const BROWSER_STEP: Duration = Duration::from_secs(60);

/// `step`, failing the test with `what` if it takes longer than [`BROWSER_STEP`] or fails.
async fn within<T, E: std::fmt::Debug>(
    what: &str,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(BROWSER_STEP, step).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e:?}"),
        Err(_) => panic!("{what}: no answer within {BROWSER_STEP:?}"),
    }
}

/// A chromedriver on a free loopback port and a headless Chromium session through it, with
/// downloads going to `downloads`. The driver is killed when the returned child is dropped.
async fn browser(downloads: &Path, profile: &Path) -> (tokio::process::Child, fantoccini::Client) {
    let (chromium, driver) = chromium_and_driver();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let driver_addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    causeway_tests::eventually("chromedriver answers", BROWSER_STEP, || async {
        matches!(
            causeway_tests::get_text(driver_addr, "/status").await,
            Ok((200, _))
        )
    })
    .await;
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--hide-scrollbars", "--window-size=1440,900",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        }),
    );
    let client = within(
        "a WebDriver session with headless Chromium",
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{driver_addr}")),
    )
    .await;
    (child, client)
}

/// Where the test's screenshots go: `target/screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// At 1440x900 and at 390x844: the page does not overflow sideways, and a screenshot of it is
/// saved as `NAME-WIDTH.png`. Leaves the window at 1440x900.
async fn check_widths(client: &fantoccini::Client, name: &str) {
    for (width, height) in [(390, 844), (1440, 900)] {
        within("resizing the window", client.set_window_size(width, height)).await;
        let sizes = within(
            "measuring the page",
            client.execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            ),
        )
        .await;
        let (scroll, inner) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
        assert!(
            inner <= u64::from(width),
            "{name}: the window is {inner} px wide, not at most {width}"
        );
        assert!(
            scroll <= inner,
            "{name} at {width} px: the page is {scroll} px wide in a {inner} px window (horizontal overflow)"
        );
        // The top of the page, and its end when it is taller than the window.
        for (part, script) in [
            ("", "window.scrollTo(0, 0); return 0;"),
            (
                "-end",
                "window.scrollTo(0, document.documentElement.scrollHeight); return window.scrollY;",
            ),
        ] {
            let scrolled = within("scrolling", client.execute(script, vec![])).await;
            if !part.is_empty() && scrolled.as_f64() == Some(0.0) {
                continue;
            }
            let png = within("a screenshot", client.screenshot()).await;
            assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG screenshot");
            let path = screenshot_dir().join(format!("{name}-{width}{part}.png"));
            std::fs::write(&path, png).unwrap();
            println!("screenshot: {}", path.display());
        }
    }
}

async fn css_all(client: &fantoccini::Client, css: &str) -> Vec<fantoccini::elements::Element> {
    within(css, client.find_all(fantoccini::Locator::Css(css))).await
}

async fn css(client: &fantoccini::Client, css: &str) -> fantoccini::elements::Element {
    within(css, client.find(fantoccini::Locator::Css(css))).await
}

async fn attr(element: &fantoccini::elements::Element, name: &str) -> String {
    within(name, element.attr(name))
        .await
        .unwrap_or_else(|| panic!("no {name} attribute"))
}

/// The search rows' positions on the page shown.
async fn positions(client: &fantoccini::Client) -> Vec<String> {
    let mut out = Vec::new();
    for row in css_all(client, "tr.record").await {
        out.push(attr(&row, "data-position").await);
    }
    out
}

async fn page_source(client: &fantoccini::Client) -> String {
    within("the page source", client.source()).await
}

#[tokio::test]
async fn the_investigation_tool_works_in_chromium_at_1440_and_390_px() {
    chromium_and_driver();
    let mut fed = Federation::start().await.unwrap();
    // Seven exchanges social-welfare -> civil-registry (fourteen entries, both sides), one denial
    // tax-office -> civil-registry, a few more.
    let mut welfare_registry = Vec::new();
    for n in 0..7 {
        welfare_registry.push(
            exchange_id(
                &fed,
                "social-welfare",
                "civil-registry",
                "residents",
                json!({"national_id": format!("D00004{n}")}),
                "benefit-eligibility",
            )
            .await,
        );
    }
    exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000042"}),
        "tax-assessment",
    )
    .await;
    exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": "D000042"}),
        "benefit-eligibility",
    )
    .await;
    exchange_id(
        &fed,
        "social-welfare",
        "tax-office",
        "income",
        json!({"national_id": "D000042", "year": 2024}),
        "benefit-eligibility",
    )
    .await;
    let (oversight, _layout) = start_oversight(&fed).await.unwrap();
    pull_verified(&oversight).await;
    let base = format!("http://{}", oversight.client_addr);
    let downloads = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = browser(downloads.path(), profile.path()).await;

    // The dashboard sends an anonymous browser to its sign-in form; an investigator signs in.
    within("opening the overview", client.goto(&format!("{base}/"))).await;
    let url = within("the sign-in address", client.current_url()).await;
    assert_eq!(
        url.path(),
        "/login",
        "an anonymous browser is asked to sign in"
    );
    within(
        "typing the name",
        css(&client, "input[name=\"name\"]")
            .await
            .send_keys("investigator"),
    )
    .await;
    within(
        "typing the password",
        css(&client, "input[name=\"password\"]")
            .await
            .send_keys(STAFF_PASSWORD),
    )
    .await;
    css(&client, "form[action=\"/login\"] button[type=\"submit\"]")
        .await
        .click()
        .await
        .unwrap();
    let url = within("the address after sign-in", client.current_url()).await;
    assert_eq!(
        url.path(),
        "/",
        "signed in, back at the overview: {}",
        page_source(&client).await
    );

    // The overview: the matrix per pair (from the providers' records), the chart, the grouped
    // denials, the verified logs; it reloads itself without a script.
    let dom = page_source(&client).await;
    for (consumer, provider, allowed, denied) in [
        ("social-welfare", "civil-registry", 7, 0),
        ("tax-office", "civil-registry", 1, 1),
        ("social-welfare", "tax-office", 1, 0),
        ("civil-registry", "tax-office", 0, 0),
    ] {
        let cell = format!("data-consumer=\"{consumer}\" data-provider=\"{provider}\" data-allowed=\"{allowed}\" data-denied=\"{denied}\"");
        assert!(dom.contains(&cell), "matrix cell {cell} in {dom}");
    }
    assert!(dom.contains("<svg id=\"chart\""), "the chart is there");
    assert!(dom.contains("Both sides of every exchange agree"));
    assert_eq!(
        dom.matches("data-status=\"ok\"").count(),
        3,
        "three verified logs"
    );
    assert!(
        dom.contains("<meta http-equiv=\"refresh\" content=\"30\">"),
        "{dom}"
    );
    assert!(dom.contains("reloads itself every 30 s"));
    assert_eq!(css_all(&client, "script").await.len(), 0, "no scripts");
    let groups = css_all(&client, "tr.denial-group").await;
    assert_eq!(groups.len(), 1, "one group of denials");
    assert_eq!(attr(&groups[0], "data-count").await, "1");
    check_widths(&client, "overview").await;

    // A matrix cell leads to its search; pages of three go back in time and forward again,
    // neither skipping nor repeating an entry.
    css(
        &client,
        "td.cell[data-consumer=\"social-welfare\"][data-provider=\"civil-registry\"] a",
    )
    .await
    .click()
    .await
    .unwrap();
    let url = within("the search's address", client.current_url()).await;
    assert_eq!(url.path(), "/search");
    assert!(page_source(&client).await.contains("14 matching entries"));
    within(
        "a page size of three",
        client.goto(&format!("{url}&limit=3")),
    )
    .await;
    let first = positions(&client).await;
    assert_eq!(first.len(), 3);
    assert_eq!(css_all(&client, "#newer").await.len(), 0, "the newest page");
    let mut pages = vec![first.clone()];
    while !css_all(&client, "#older").await.is_empty() {
        assert!(pages.len() < 10, "pages end");
        css(&client, "#older").await.click().await.unwrap();
        pages.push(positions(&client).await);
    }
    let mut seen: Vec<&String> = pages.iter().flatten().collect();
    assert_eq!(seen.len(), 14, "every entry once: {pages:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 14, "no entry twice: {pages:?}");
    check_widths(&client, "search-page").await;
    while !css_all(&client, "#newer").await.is_empty() {
        css(&client, "#newer").await.click().await.unwrap();
    }
    assert_eq!(positions(&client).await, first, "back at the newest page");

    // An exchange page: both sides with every field, each verified and covered by a cosigned
    // checkpoint, and no finding.
    let id = &welfare_registry[6];
    css(
        &client,
        &format!("tr.record[data-exchange=\"{id}\"] a.exchange"),
    )
    .await
    .click()
    .await
    .unwrap();
    let url = within("the exchange page's address", client.current_url()).await;
    assert_eq!(url.path(), "/exchange");
    let entries = css_all(&client, "section.entry").await;
    let mut sides = Vec::new();
    for e in &entries {
        sides.push(attr(e, "data-side").await);
    }
    sides.sort();
    assert_eq!(sides, ["consumer", "provider"]);
    assert_eq!(css_all(&client, "[data-verified=\"true\"]").await.len(), 2);
    for w in css_all(&client, "dd.witnesses").await {
        attr(&w, "data-witnesses").await.parse::<u64>().unwrap();
        let text = within("witnesses", w.text()).await;
        assert!(text.contains(" known witnesses"), "{text}");
    }
    assert_eq!(
        attr(&css(&client, "#crosscheck").await, "data-findings").await,
        "0"
    );
    let dom = page_source(&client).await;
    for label in [
        "Time",
        "Kind",
        "Side",
        "Consumer",
        "Provider",
        "Dataset",
        "Purpose",
        "Legal basis",
        "Case",
        "Officer tag",
        "Application",
        "Subject tags",
        "Request digest",
        "Response digest",
        "Fields",
        "Rows",
        "Decision",
        "Reason",
        "Rule",
        "Outcome",
        "Policy hash",
        "Peer receipt",
        "Detail",
        "Leaf hash",
        "Checkpoint",
        "Cosigned by",
    ] {
        assert_eq!(
            dom.matches(&format!("<dt>{label}</dt>")).count(),
            2,
            "{label} on both sides: {dom}"
        );
    }
    assert!(
        dom.contains(" UTC</time> <span class=\"ago\">"),
        "human times: {dom}"
    );
    check_widths(&client, "exchange").await;

    // The provider's evidence downloads and verifies offline against the directory.
    let provider = css(&client, "section.entry[data-side=\"provider\"]").await;
    let (log, index) = (
        attr(&provider, "data-log").await,
        attr(&provider, "data-index").await,
    );
    css(&client, "section.entry[data-side=\"provider\"] a.evidence")
        .await
        .click()
        .await
        .unwrap();
    let file = downloads.path().join(format!("{log}-{index}.tlog-proof"));
    causeway_tests::eventually("the evidence file downloads", BROWSER_STEP, || async {
        // An answer that is not a download replaces the page: fail with what it says.
        let url = within("the address", client.current_url()).await;
        assert_eq!(url.path(), "/exchange", "{}", page_source(&client).await);
        file.exists()
    })
    .await;
    let directory = fed.layout.directory.display().to_string();
    assert_eq!(
        causeway_cli(vec![
            "log".into(),
            "verify-proof".into(),
            file.display().to_string(),
            "--directory".into(),
            directory,
        ])
        .await,
        ExitCode::SUCCESS,
        "the downloaded evidence verifies"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let proof = causeway_ledger::tlog_proof::TlogProof::parse(&text).unwrap();
    let entry = Entry::from_bytes(proof.extra.as_deref().unwrap()).unwrap();
    assert_eq!(entry.id.as_deref(), Some(id.as_str()));

    // The lists behind the overview, with their windows and pages.
    for (name, path) in [("findings", "/findings"), ("queries", "/queries")] {
        within(name, client.goto(&format!("{base}{path}"))).await;
        css(&client, "#last-24h").await.click().await.unwrap();
        let url = within("the window's address", client.current_url()).await;
        assert!(url.query().unwrap_or("").contains("from="), "{url}");
        check_widths(&client, name).await;
    }
    let dom = page_source(&client).await;
    assert!(
        dom.matches("class=\"oversight-query\"").count() >= 5,
        "the queries list shows this test's reads: {dom}"
    );
    // Two queries a page: older, then newer again (the views notarized meanwhile stay above).
    within(
        "queries, two a page",
        client.goto(&format!("{base}/queries?limit=2")),
    )
    .await;
    let indexes = |client: &fantoccini::Client| {
        let client = client.clone();
        async move {
            let mut out = Vec::new();
            for row in css_all(&client, "tr.oversight-query").await {
                out.push(attr(&row, "data-index").await.parse::<u64>().unwrap());
            }
            out
        }
    };
    let newest = indexes(&client).await;
    assert_eq!(newest.len(), 2);
    css(&client, "#older").await.click().await.unwrap();
    let older = indexes(&client).await;
    assert!(
        older.len() == 2 && older[0] < newest[1],
        "{older:?} below {newest:?}"
    );
    css(&client, "#newer").await.click().await.unwrap();
    assert_eq!(indexes(&client).await, newest);

    // The exports download the same search as CSV and JSON.
    let (status, headers, csv) = http_request(
        oversight.client_addr,
        http::Request::get(format!("/export.csv?exchange={id}"))
            .header(http::header::HOST, base.trim_start_matches("http://"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(headers[http::header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let csv = String::from_utf8_lossy(&csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("log,index,leaf_hash,time,kind,side,exchange"));
    assert_eq!(lines.len(), 3, "{csv}");
    let (status, json_export) = http_get(
        oversight.client_addr,
        &format!("/export.json?exchange={id}"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let export: Value = serde_json::from_str(&json_export).unwrap();
    assert_eq!(export["records"].as_array().unwrap().len(), 2);

    // Every read was notarized before it was answered.
    let queries = node(&oversight).recent_queries(100).unwrap();
    let kinds: Vec<String> = queries
        .iter()
        .map(|q| {
            q.detail.as_ref().unwrap()["query"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for kind in [
        "search",
        "exchange",
        "evidence",
        "findings",
        "oversight-queries",
        "export",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    for q in &queries {
        let d = q.detail.as_ref().unwrap();
        if ["exchange", "findings", "oversight-queries", "evidence"]
            .contains(&d["query"].as_str().unwrap())
        {
            assert_eq!(
                d["asked_by"], "investigator",
                "the browser's reads are notarized as the investigator who signed in: {d}"
            );
        }
    }
    let evidence = queries
        .iter()
        .find(|q| q.detail.as_ref().unwrap()["query"] == "evidence")
        .unwrap();
    assert_eq!(
        evidence.detail.as_ref().unwrap()["filter"],
        json!({"log": log, "index": index.parse::<u64>().unwrap()})
    );
    within("closing the browser", client.close()).await;
    oversight.shutdown().await;
    fed.stop().await;
}

// ---- Text from other departments, shown to overseers ----

/// Cells of an RFC 4180 document (quoted cells may hold `,`, `"` and line breaks).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn hostile_text_in_a_replicated_log_is_neutralized_in_exports_and_escaped_on_pages() {
    const PERSON: &str = "D000077";
    let mut fed = Federation::start().await.unwrap();
    let id = exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": PERSON}),
        "benefit-eligibility",
    )
    .await;
    // The provider writes hostile text into its own log, signs it, and serves it to oversight.
    fed.stop_dept("civil-registry").await;
    rebuild_ledger(
        &fed.ledger_dir("civil-registry"),
        &fed.signing_key("civil-registry"),
        |e| {
            if e.id.as_deref() == Some(id.as_str()) {
                e.dataset = Some("-2+3".into());
                e.purpose = Some(r#"=HYPERLINK("http://x","y")"#.into());
                e.legal_basis = Some("+cmd".into());
                e.case = Some("@SUM(1)".into());
                e.reason = Some("@SUM(1)".into());
                e.rule = Some("\t=1".into());
                e.outcome = Some("\r=1".into());
                e.fields = vec![
                    "\u{1b}[2J".into(),
                    "\u{1b}]0;title\u{7}".into(),
                    "\u{202E}gnp.exe".into(),
                ];
            }
            true
        },
    )
    .await
    .unwrap();
    fed.start_dept("civil-registry").await.unwrap();
    let (oversight, _layout) = start_oversight(&fed).await.unwrap();
    for (dept, report) in pull_verified(&oversight).await {
        assert!(report.flag.is_none(), "{dept}: {:?}", report.flag);
    }
    let addr = oversight.client_addr;
    let raw = ['\u{1b}', '\u{7}', '\u{202E}'];

    // The CSV export: every text cell that a spreadsheet would evaluate starts with a quote.
    let (status, csv) = http_get(addr, &format!("/export.csv?exchange={id}&side=provider"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{csv}");
    let rows = csv_rows(&csv);
    assert_eq!(
        rows.len(),
        2,
        "the header and the provider's entry: {csv:?}"
    );
    let column = |name: &str| {
        let at = rows[0].iter().position(|h| h == name).unwrap();
        rows[1][at].as_str()
    };
    assert_eq!(column("dataset"), "'-2+3");
    assert_eq!(column("purpose"), r#"'=HYPERLINK("http://x","y")"#);
    assert_eq!(column("legal_basis"), "'+cmd");
    assert_eq!(column("reason"), "'@SUM(1)");
    assert_eq!(column("rule"), "'\t=1");
    assert_eq!(column("outcome"), "'\r=1");
    assert_eq!(
        column("fields"),
        r"\u{1b}[2J;\u{1b}]0;title\u{7};\u{202e}gnp.exe"
    );
    for cell in rows.iter().flatten() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "a cell a spreadsheet would evaluate: {cell:?} in {csv:?}"
        );
    }
    assert!(!csv.contains(raw), "{csv:?}");

    // The pages, the search and the printable citizen's report, show the characters as
    // escapes, never raw.
    let tag = node(&oversight).subject_tag(PERSON);
    for path in [
        format!("/search?exchange={id}"),
        format!("/exchange?id={id}"),
        format!("/report?subject_tag={tag}"),
    ] {
        let (status, page) = http_get(addr, &path).await.unwrap();
        assert_eq!(status, 200, "{path}: {page}");
        assert!(!page.contains(raw), "{path}: {page:?}");
        assert!(
            page.contains(r"\u{1b}[2J, \u{1b}]0;title\u{7}, \u{202e}gnp.exe"),
            "{path}: {page}"
        );
    }

    // An exchange id or log name from a URL is escaped, or refused before it reaches a header.
    let (status, page) = http_get(addr, "/exchange?id=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        !page.contains("<script>") && page.contains("&lt;script&gt;"),
        "{page}"
    );
    let (status, headers, _) = http_request(
        addr,
        http::Request::get("/evidence?log=a%22%0D%0Ax-injected:%201&index=0")
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(
        headers.get(http::header::CONTENT_DISPOSITION).is_none()
            && headers.get("x-injected").is_none()
    );

    // The citizen's report as text on the requester's terminal.
    let report = node(&oversight)
        .subject_report(&tag, &Asker::cli())
        .await
        .unwrap();
    let table = report.to_table(PERSON);
    assert!(!table.contains(raw), "{table:?}");
    assert!(
        table.contains(r"\u{1b}[2J,\u{1b}]0;title\u{7},\u{202e}gnp.exe"),
        "{table}"
    );
    oversight.shutdown().await;
    fed.stop().await;
}
