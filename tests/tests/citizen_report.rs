//! The citizen's report anyone can verify (#25, item 5), against real gateways and a real
//! oversight node: a bundle written by `causeway audit subject --bundle` (node running and
//! stopped) verifies with `causeway verify-report` and the directory alone; one changed byte
//! anywhere that matters fails, naming what; another federation's directory fails; the notarized
//! query hides the subject behind a commitment the bundle opens; a sealed purpose stays out of the
//! citizen's report until its date while oversight sees it at once.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use causeway::directory::Directory;
use causeway::gateway::Gateway;
use causeway::oversight::bundle::{parse_bundle, subject_commitment, verify_bundle, CitizenBundle};
use causeway::oversight::evidence::EvidenceError;
use causeway::oversight::replica::Query;
use causeway::oversight::report::SubjectReport;
use causeway::oversight::seal::{format_date, today};
use causeway::oversight::{Asker, Oversight};
use causeway_tests::{
    causeway_cli, exchange_id, ledger_entries, pull_verified, rebuild_ledger, sign_in, staff_get,
    start_oversight, Federation, STAFF_PASSWORD,
};
use serde_json::{json, Value};

const PERSON: &str = "D000042";

fn node(gateway: &Gateway) -> &Arc<Oversight> {
    gateway.oversight().expect("an oversight node")
}

/// `causeway verify-report FILE --directory DIR`.
async fn verify_report(file: &Path, directory: &Path) -> ExitCode {
    causeway_cli(&[
        "verify-report",
        &file.display().to_string(),
        "--directory",
        &directory.display().to_string(),
    ])
    .await
}

/// The verifier's verdict on `bundle` (the same module the command runs), as text.
fn verdict(bundle: &CitizenBundle, directory: &Path) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(bundle).unwrap();
    let directory = Directory::load(directory).unwrap();
    parse_bundle(&bytes)
        .and_then(|b| verify_bundle(&b, &directory))
        .map(|_| ())
        .map_err(|f| f.to_string())
}

/// `text` with the first ASCII letter or digit from byte `at` on changed to another one (base64
/// also holds `+` and `/`, which are skipped so that the change stays within the alphabet).
fn one_byte_changed(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let at = (at..bytes.len())
        .find(|&i| bytes[i].is_ascii_alphanumeric())
        .unwrap_or_else(|| panic!("no letter or digit from position {at} of {text:?}"));
    bytes[at] = match bytes[at] {
        b'A' => b'B',
        b'0' => b'1',
        b'a' => b'b',
        _ if bytes[at].is_ascii_digit() => b'0',
        _ => b'a',
    };
    String::from_utf8(bytes).unwrap()
}

/// Byte position of the middle of the line of `evidence` that starts with `prefix`, after it.
fn inside_line(evidence: &str, prefix: &str) -> usize {
    let start = evidence
        .find(&format!("\n{prefix}"))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {evidence}"))
        + 1
        + prefix.len();
    let len = evidence[start..].find('\n').unwrap();
    start + len / 2
}

#[tokio::test]
async fn a_citizen_bundle_verifies_offline_and_one_changed_byte_fails_naming_what() {
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
            "civil-registry",
            "residents",
            json!({"national_id": PERSON}),
            "marketing",
        )
        .await,
    ];
    let someone_else = exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": "D000043"}),
        "benefit-eligibility",
    )
    .await;
    let (oversight, layout) = start_oversight(&fed).await.unwrap();
    pull_verified(&oversight).await;
    let directory = fed.layout.directory.clone();
    let dir = fed.root.path().to_owned();
    let tag = node(&oversight).subject_tag(PERSON);

    // One replicated entry's evidence verifies with the existing command.
    let first = node(&oversight)
        .replica()
        .search(&Query {
            exchange: Some(expected[0].clone()),
            ..Query::default()
        })
        .unwrap()
        .records
        .into_iter()
        .find(|r| r.log == "civil-registry")
        .expect("the provider's entry is replicated");
    let proof = node(&oversight)
        .evidence("civil-registry", first.index)
        .await
        .unwrap();
    let file = dir.join("entry.tlog-proof");
    std::fs::write(&file, proof.to_text()).unwrap();
    let code = causeway_cli(&[
        "log",
        "verify-proof",
        &file.display().to_string(),
        "--directory",
        &directory.display().to_string(),
    ])
    .await;
    assert_eq!(
        code,
        ExitCode::SUCCESS,
        "the evidence passes log verify-proof"
    );
    assert!(matches!(
        node(&oversight).evidence("civil-registry", 1_000_000).await,
        Err(EvidenceError::NotReplicated { .. })
    ));
    assert!(matches!(
        node(&oversight).evidence("no-such-log", 0).await,
        Err(EvidenceError::UnknownLog { .. })
    ));

    // Written through the running node's API, verified with the real command.
    let out = dir.join("my-report.json");
    let code = causeway_cli(&[
        "audit",
        "subject",
        "--id",
        PERSON,
        "--config",
        &layout.config.display().to_string(),
        "--bundle",
        &out.display().to_string(),
        "--staff",
        "officer",
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains(PERSON),
        "the bundle names the person by tag only"
    );
    let started = std::time::Instant::now();
    assert_eq!(verify_report(&out, &directory).await, ExitCode::SUCCESS);
    let bundle: CitizenBundle = serde_json::from_str(&text).unwrap();
    // Measured, never asserted: the size of a bundle and the time to check it (debug build).
    eprintln!(
        "bundle: {} bytes for {} exchange(s); verify-report took {:?}",
        text.len(),
        bundle.exchanges.len(),
        started.elapsed()
    );
    assert_eq!(bundle.format, "causeway-citizen-report/v1");
    assert_eq!(bundle.subject.joined(), tag);
    let mut got: Vec<String> = bundle
        .exchanges
        .iter()
        .map(|x| x.row.request_id.clone())
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(
        got, expected,
        "exactly the exchanges that touched the person"
    );
    for x in &bundle.exchanges {
        assert_eq!(x.row.recorded_by, ["provider", "consumer"]);
        assert_eq!(x.records.len(), 2, "both sides' evidence");
        assert!(
            x.row.application.is_some() && x.row.official.is_some(),
            "{:?}",
            x.row
        );
    }
    let refused = bundle
        .exchanges
        .iter()
        .find(|x| x.row.purpose == "marketing")
        .unwrap();
    assert_eq!(refused.row.action, "request refused");
    assert!(refused.row.fields.is_empty());
    let released = bundle
        .exchanges
        .iter()
        .find(|x| x.row.purpose == "tax-assessment")
        .unwrap();
    assert_eq!(released.row.action, "data released");
    assert_eq!(released.row.receiver, "tax-office");
    assert_eq!(verdict(&bundle, &directory), Ok(()));

    // One changed byte, in each part that carries meaning, fails and names what.
    let evidence = &bundle.exchanges[0].records[0].evidence;
    let origin = evidence
        .split("\n\n")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    let mut cases: Vec<(&str, CitizenBundle, &str)> = Vec::new();
    let mut b = bundle.clone();
    b.exchanges[0].records[0].evidence =
        one_byte_changed(evidence, inside_line(evidence, "extra "));
    cases.push(("inside an entry", b, "exchange 1"));
    let mut b = bundle.clone();
    let index_line = format!(
        "index {}\n",
        evidence
            .split("index ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
    );
    let proof_at = evidence.find(&index_line).unwrap() + index_line.len() + 20;
    b.exchanges[0].records[0].evidence = one_byte_changed(evidence, proof_at);
    cases.push(("a proof hash", b, "inclusion proof"));
    let mut b = bundle.clone();
    let signature = inside_line(evidence, &format!("\u{2014} {origin} "));
    b.exchanges[0].records[0].evidence = one_byte_changed(evidence, signature);
    cases.push(("the checkpoint signature", b, "checkpoint"));
    let mut b = bundle.clone();
    b.exchanges[1].row.purpose = one_byte_changed(&b.exchanges[1].row.purpose, 1);
    cases.push(("a row field", b, "exchange 2 (")); // and "row field purpose", below
    let mut b = bundle.clone();
    let query = &bundle.query.evidence;
    b.query.evidence = one_byte_changed(query, inside_line(query, "extra "));
    cases.push(("the query entry", b, "query entry"));
    let mut b = bundle.clone();
    b.subject.salt = one_byte_changed(&b.subject.salt, 3);
    cases.push(("the subject's salt", b, "commitment"));
    let mut b = bundle.clone();
    b.federation = one_byte_changed(&b.federation, 3);
    cases.push(("the federation's name", b, "federation"));
    // Whole parts moved rather than bytes changed: an exchange dropped, another person's
    // exchange (with its genuine evidence) added, two exchanges' records swapped.
    let mut b = bundle.clone();
    b.exchanges.pop();
    cases.push((
        "a dropped exchange",
        b,
        "notarizes 3 result(s), the bundle carries 2",
    ));
    let mut b = bundle.clone();
    let theirs = node(&oversight)
        .replica()
        .search(&Query {
            exchange: Some(someone_else.clone()),
            ..Query::default()
        })
        .unwrap()
        .records
        .into_iter()
        .find(|r| r.log == "civil-registry")
        .unwrap();
    let mut padded = b.exchanges[0].clone();
    padded.row.request_id = someone_else.clone();
    padded.records = vec![causeway::oversight::bundle::BundleRecord {
        side: "provider".into(),
        log: "civil-registry".into(),
        evidence: node(&oversight)
            .evidence("civil-registry", theirs.index)
            .await
            .unwrap()
            .to_text(),
    }];
    b.exchanges[0] = padded;
    cases.push((
        "another person's exchange",
        b,
        "names none of the bundle's subject tags",
    ));
    let mut b = bundle.clone();
    let first = b.exchanges[0].records.clone();
    b.exchanges[0].records = b.exchanges[1].records.clone();
    b.exchanges[1].records = first;
    cases.push(("swapped records", b, "the entry is of another request id"));
    for (what, changed, named) in &cases {
        let file = dir.join("changed.json");
        std::fs::write(&file, serde_json::to_vec_pretty(changed).unwrap()).unwrap();
        assert_eq!(
            verify_report(&file, &directory).await,
            ExitCode::FAILURE,
            "a changed byte in {what} fails"
        );
        let failure = verdict(changed, &directory).unwrap_err();
        eprintln!("{what}: {failure}");
        assert!(failure.contains(named), "{what}: {failure}");
        if *what == "a row field" {
            assert!(failure.contains("row field purpose"), "{failure}");
        }
        if *what == "inside an entry" || *what == "a proof hash" {
            assert!(failure.contains("provider record"), "{what}: {failure}");
        }
    }
    // The same bytes, and the tampered raw file: a byte inside the entry of the file on disk.
    let at = text
        .find("\"evidence\": \"c2sp.org/tlog-proof@v1\\nextra ")
        .unwrap()
        + 80;
    let raw = dir.join("raw.json");
    std::fs::write(&raw, one_byte_changed(&text, at)).unwrap();
    assert_eq!(verify_report(&raw, &directory).await, ExitCode::FAILURE);

    // Another federation's directory (same name, other keys) does not vouch for it.
    let other = Federation::create().unwrap();
    causeway::layout::create_oversight(&other.layout, "audit-office").unwrap();
    assert_eq!(
        verify_report(&out, &other.layout.directory).await,
        ExitCode::FAILURE
    );
    let failure = verdict(&bundle, &other.layout.directory).unwrap_err();
    assert!(failure.contains("query entry"), "{failure}");

    // With the node stopped, the command opens the replica and ledger itself.
    oversight.shutdown().await;
    let stopped = dir.join("stopped.json");
    let code = causeway_cli(&[
        "audit",
        "subject",
        "--id",
        PERSON,
        "--config",
        &layout.config.display().to_string(),
        "--bundle",
        &stopped.display().to_string(),
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(verify_report(&stopped, &directory).await, ExitCode::SUCCESS);
    let again: CitizenBundle = serde_json::from_slice(&std::fs::read(&stopped).unwrap()).unwrap();
    assert_eq!(again.exchanges.len(), bundle.exchanges.len());
    assert_ne!(
        again.subject.salt, bundle.subject.salt,
        "a fresh salt per query"
    );

    // The oversight ledger holds commitments, never the subject's tags; the bundle opens its own.
    let ledger = ledger_entries(&layout.dir.join("ledger")).unwrap();
    let queries: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["kind"] == "oversight-query")
        .collect();
    assert!(queries.len() >= 2);
    for entry in &ledger {
        let bytes = entry.to_string();
        for t in tag.split(',') {
            assert!(
                !bytes.contains(t),
                "the oversight ledger names a subject tag: {bytes}"
            );
        }
    }
    let salt: [u8; 32] = hex::decode(&bundle.subject.salt)
        .unwrap()
        .try_into()
        .unwrap();
    let commitment = subject_commitment(&salt, &tag);
    assert!(queries
        .iter()
        .any(|q| q["detail"]["filter"]["subject"] == json!(commitment)
            && q["detail"]["query"] == "subject-report"));
    fed.stop().await;
}

#[tokio::test]
async fn a_sealed_purpose_is_hidden_from_the_citizen_until_its_date_and_shown_to_oversight_at_once()
{
    let mut fed = Federation::start().await.unwrap();
    let shown = exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": PERSON}),
        "benefit-eligibility",
    )
    .await;
    let sealed = exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": PERSON}),
        "tax-assessment",
    )
    .await;
    let (oversight, layout) = start_oversight(&fed).await.unwrap();
    oversight.shutdown().await;
    let config = layout.config.display().to_string();
    let until = today() + time::Duration::days(200);
    let until_text = format_date(until);
    let seal = |purpose: &'static str, consumer: Option<&'static str>, until: String| {
        let config = config.clone();
        async move {
            let mut args = vec![
                "audit",
                "seal",
                "--purpose",
                purpose,
                "--until",
                &until,
                "--reason",
                "CASE-2026-114",
                "--config",
                &config,
            ];
            if let Some(c) = consumer {
                args.extend(["--consumer", c]);
            }
            causeway_cli(&args).await
        }
    };
    // The node stopped: the command records the seal itself.
    assert_eq!(
        seal("tax-assessment", None, until_text.clone()).await,
        ExitCode::SUCCESS
    );
    // A seal for another consumer does not hide this person's benefit-eligibility exchange.
    assert_eq!(
        seal(
            "benefit-eligibility",
            Some("tax-office"),
            until_text.clone()
        )
        .await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        seal("benefit-eligibility", None, "2020-01-01".into()).await,
        ExitCode::from(2),
        "a seal must end in the future: a usage error"
    );

    let (oversight, _) = start_oversight(&fed).await.unwrap();
    pull_verified(&oversight).await;
    let n = node(&oversight);
    // While the node runs, seals go through its API, signed in as an investigator or
    // administrator; a viewer is refused.
    let running_seal = |staff: &'static str| {
        let (config, until) = (config.clone(), until_text.clone());
        async move {
            causeway_cli(&[
                "audit",
                "seal",
                "--purpose",
                "marketing",
                "--until",
                &until,
                "--reason",
                "DPA-7",
                "--config",
                &config,
                "--staff",
                staff,
            ])
            .await
        }
    };
    assert_eq!(
        running_seal("viewer").await,
        ExitCode::from(4),
        "the node refuses a viewer's seal"
    );
    assert_eq!(running_seal("investigator").await, ExitCode::SUCCESS);
    let tag = n.subject_tag(PERSON);
    let asker = Asker::new("test", "subject-officer", "cli");

    // The citizen sees only the exchange under no seal, and nothing says one was left out.
    let report = n.subject_report(&tag, &asker).await.unwrap();
    let ids: Vec<&str> = report
        .exchanges
        .iter()
        .map(|x| x.exchange.as_str())
        .collect();
    assert_eq!(ids, [shown.as_str()]);
    let bundle = n.citizen_bundle(&tag, &asker).await.unwrap();
    let ids: Vec<&str> = bundle
        .exchanges
        .iter()
        .map(|x| x.row.request_id.as_str())
        .collect();
    assert_eq!(ids, [shown.as_str()]);
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(!text.contains(&sealed) && !text.contains("tax-assessment") && !text.contains("seal"));
    assert_eq!(verdict(&bundle, &fed.layout.directory), Ok(()));

    // Oversight sees it at once, marked sealed until the date.
    let found = n
        .search(
            &Query {
                subject_tag: Some(tag.clone()),
                ..Query::default()
            },
            &asker,
            "search",
        )
        .await
        .unwrap();
    let seals = n.seals_in_force().await.unwrap();
    let record = found
        .records
        .iter()
        .find(|r| r.entry.id.as_deref() == Some(sealed.as_str()))
        .expect("oversight search shows the sealed exchange");
    assert_eq!(Oversight::sealed_until(&seals, &record.entry), Some(until));
    let open = found
        .records
        .iter()
        .find(|r| r.entry.id.as_deref() == Some(shown.as_str()))
        .unwrap();
    assert_eq!(Oversight::sealed_until(&seals, &open.entry), None);

    // The dashboard's search marks it on the row, the JSON API names its date.
    let qs = format!(
        "subject_tag={}",
        tag.replace(':', "%3A").replace(',', "%2C")
    );
    let cookie = sign_in(oversight.client_addr, "officer", STAFF_PASSWORD)
        .await
        .unwrap();
    let (status, page) = staff_get(oversight.client_addr, &cookie, &format!("/search?{qs}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(page.contains(&sealed) && page.contains(&format!("sealed until {until_text}")));
    let (status, body) = staff_get(oversight.client_addr, &cookie, &format!("/api/search?{qs}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!(
            "\"sealed_until\":{{\"{sealed}\":\"{until_text}\"}}"
        )),
        "{body}"
    );

    // From the date on, the citizen sees it.
    let mut later = n.seals().await.unwrap();
    later.retain(|s| s.in_force(until));
    let after = SubjectReport::build(n.replica(), &tag, &later).unwrap();
    assert!(after.exchanges.iter().any(|x| x.exchange == sealed));

    // The seal itself is notarized in the oversight ledger.
    oversight.shutdown().await;
    let ledger = ledger_entries(&layout.dir.join("ledger")).unwrap();
    let seal_entries: Vec<&Value> = ledger.iter().filter(|e| e["kind"] == "seal").collect();
    assert_eq!(
        seal_entries.len(),
        3,
        "three seals recorded, the refused ones not"
    );
    assert!(seal_entries.iter().any(|e| e["purpose"] == "marketing"
        && e["detail"]["asked_by"] == "investigator"
        && e["detail"]["role"] == "investigator"
        && e["detail"]["via"] == "api"));
    assert!(seal_entries.iter().any(|e| e["purpose"] == "tax-assessment"
        && e["detail"]["until"] == json!(until_text)
        && e["reason"] == "CASE-2026-114"
        && e["detail"]["asked_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("cli:"))));
    fed.stop().await;
}

/// A citizen's bundle, or an investigator's evidence file, is proven from the replica alone: no
/// department is asked for anything while it is made. Asking the log's owner for an inclusion
/// proof of entry N would tell a curious department which of its entries oversight is looking at,
/// and the department can compute who is in each of its own entries (its tag key): whom a subject
/// officer looked up, or which exchange an investigation is about. And a department that rewrote
/// its log after the pull cannot change a bundle: it proves the entries as pulled, under the
/// checkpoint they signed and witnesses cosigned.
#[tokio::test]
async fn a_bundle_asks_no_department_and_a_log_rewritten_after_the_pull_cannot_change_it() {
    let mut fed = Federation::start().await.unwrap();
    let rewritten = exchange_id(
        &fed,
        "tax-office",
        "civil-registry",
        "residents",
        json!({"national_id": PERSON}),
        "tax-assessment",
    )
    .await;
    // Entries after it, so that a rewrite (through each entry's `prev`) changes the whole tree.
    exchange_id(
        &fed,
        "social-welfare",
        "civil-registry",
        "residents",
        json!({"national_id": "D000043"}),
        "benefit-eligibility",
    )
    .await;
    let (oversight, _) = start_oversight(&fed).await.unwrap();
    pull_verified(&oversight).await;

    // Every department stops answering (nobody can be asked, nobody can watch what is asked),
    // and the registry rewrites the entry with its own key meanwhile.
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.stop_dept(dept).await;
    }
    let key = fed.signing_key("civil-registry");
    rebuild_ledger(&fed.ledger_dir("civil-registry"), &key, |e| {
        if e.id.as_deref() == Some(rewritten.as_str()) {
            e.purpose = Some("something-else".into());
        }
        true
    })
    .await
    .unwrap();
    fed.start_dept("civil-registry").await.unwrap();

    let index = node(&oversight)
        .replica()
        .search(&Query {
            exchange: Some(rewritten.clone()),
            ..Query::default()
        })
        .unwrap()
        .records
        .into_iter()
        .find(|r| r.log == "civil-registry")
        .unwrap()
        .index;
    let evidence = node(&oversight)
        .evidence("civil-registry", index)
        .await
        .expect("evidence from the replica alone");
    assert!(String::from_utf8_lossy(evidence.extra.as_deref().unwrap()).contains("tax-assessment"));
    let tag = node(&oversight).subject_tag(PERSON);
    let bundle = node(&oversight)
        .citizen_bundle(&tag, &Asker::new("test", "subject-officer", "cli"))
        .await
        .expect("a bundle with every department stopped");
    let row = bundle
        .exchanges
        .iter()
        .find(|x| x.row.request_id == rewritten)
        .expect("the exchange is in the bundle");
    assert_eq!(row.row.purpose, "tax-assessment", "the entry as pulled");
    assert_eq!(
        verdict(&bundle, &fed.layout.directory),
        Ok(()),
        "it verifies offline"
    );
    oversight.shutdown().await;
    fed.stop().await;
}
