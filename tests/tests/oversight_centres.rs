//! Two oversight centres watch each other, and departments watch both: each centre replicates
//! every department and the other's log and witnesses it; departments witness the centres' logs
//! and can pull and verify them, and list the oversight queries that touched their exchanges. A
//! centre that rewrites one byte of its record of queries, or drops its tail, is caught by the
//! other centre and by departments.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use causeway::config::GatewayConfig;
use causeway::gateway::Gateway;
use causeway::identity::{DeptId, GatewayKey};
use causeway::layout::OversightLayout;
use causeway::oversight::replica::Query;
use causeway::oversight::watch::{watch_oversight_logs, WatchOptions};
use causeway::oversight::{Asker, Oversight};
use causeway_ledger::entry::{Entry, Kind};
use causeway_tests::{
    causeway_cli, eventually, exchange, rebuild_ledger, start_oversight_node, Federation,
};
use serde_json::Value;

fn node(gateway: &Gateway) -> &Arc<Oversight> {
    gateway.oversight().expect("an oversight node")
}

/// Rebuild an oversight node's ledger (the node stopped) with its own signing key: what an
/// operator holding the node's key could do to rewrite the record of their queries.
async fn rebuild_oversight_ledger(layout: &OversightLayout, edit: impl Fn(&mut Entry) -> bool) {
    let config = GatewayConfig::load(&layout.config).unwrap();
    let key = GatewayKey::load(&config.identity.signing_key).unwrap();
    rebuild_ledger(&config.ledger.dir, &key, edit)
        .await
        .unwrap();
}

async fn watch(fed: &Federation, dept: &str) -> (bool, Value) {
    let config = GatewayConfig::load(&fed.layout.dept(dept).unwrap().config).unwrap();
    watch_oversight_logs(&config, &WatchOptions::default())
        .await
        .unwrap()
}

fn status_of<'a>(report: &'a Value, node: &str) -> &'a Value {
    report["oversight_logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("{node} is not in {report:#}"))
}

async fn pull_state(gateway: &Gateway, log: &str) -> causeway::oversight::LogStatus {
    node(gateway).pull_all(Arc::new(|_: &str, _, _| {})).await;
    node(gateway)
        .statuses()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.department == log)
        .unwrap_or_else(|| panic!("{log} is not among the logs the node pulls"))
}

#[tokio::test]
async fn two_centres_watch_each_other_and_departments_watch_both() {
    let mut fed = Federation::start().await.unwrap();
    assert_eq!(
        exchange(&fed, "social-welfare", "civil-registry").await,
        200
    );
    assert_eq!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    let (a, a_layout) = start_oversight_node(&fed, "audit-office").await.unwrap();
    let (b, _) = start_oversight_node(&fed, "data-protection").await.unwrap();
    let within = Duration::from_secs(20);
    eventually(
        "the audit office follows the directory that lists the second centre's log",
        within,
        || async {
            node(&a)
                .directory()
                .log(&DeptId::new("data-protection").unwrap())
                .is_some()
        },
    )
    .await;

    // A query at the audit office, notarized in its log before it is answered.
    let asker = Asker::new("alice", "investigator", "api");
    let found = node(&a)
        .search(
            &Query {
                provider: Some("civil-registry".into()),
                ..Query::default()
            },
            &asker,
            "search",
        )
        .await
        .unwrap();
    assert!(!found.records.is_empty());
    let a_size = node(&a).ledger().checkpoint().0;

    // The other centre replicates and verifies it, every department too.
    let held = pull_state(&b, "audit-office").await;
    assert!(held.state.flag.is_none(), "{:?}", held.state.flag);
    assert_eq!(
        held.state.size, a_size,
        "the data protection authority holds the whole log"
    );
    let back = pull_state(&a, "data-protection").await;
    assert!(back.state.flag.is_none() && back.state.checkpoint.is_some());

    // Witnessed: departments and the other centre cosign the audit office's checkpoints.
    let directory_now = node(&a).directory();
    let cosigner = |id: &str| {
        let origin = directory_now
            .log(&DeptId::new(id).unwrap())
            .unwrap()
            .origin()
            .to_owned();
        format!("\u{2014} {origin}/witness ")
    };
    let (from_b, from_registry) = (cosigner("data-protection"), cosigner("civil-registry"));
    eventually(
        "departments and the other centre cosign the audit office's log",
        within,
        || async {
            node(&a)
                .ledger()
                .cosigned_checkpoint()
                .is_some_and(|(size, note)| {
                    size == a_size && note.contains(&from_b) && note.contains(&from_registry)
                })
        },
    )
    .await;

    // `log verify --directory` checks the oversight log against the key the directory lists.
    let directory = fed.layout.directory.display().to_string();
    let a_ledger = a_layout.dir.join("ledger").display().to_string();

    // A department lists the oversight queries that touched its exchanges.
    let (ok, report) = watch(&fed, "civil-registry").await;
    assert!(ok, "{report:#}");
    let audit = status_of(&report, "audit-office");
    assert_eq!(audit["status"], "verified", "{report:#}");
    let queries = audit["queries"].as_array().unwrap();
    assert!(
        queries
            .iter()
            .any(|q| q["asked_by"] == "alice" && q["query"] == "search"),
        "the civil registry sees the query about its exchanges: {report:#}"
    );
    let (_, report) = watch(&fed, "social-welfare").await;
    assert!(status_of(&report, "audit-office")["queries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["asked_by"] == "alice"));

    // Attack 1: the audit office's operator, who holds its key, rewrites one byte of the record
    // of their own query and re-signs the log.
    a.shutdown().await;
    assert_eq!(
        causeway_cli(&[
            "log",
            "verify",
            "--ledger",
            &a_ledger,
            "--directory",
            &directory
        ])
        .await,
        ExitCode::SUCCESS,
        "the untouched oversight log verifies against the directory"
    );
    rebuild_oversight_ledger(&a_layout, |e| {
        if e.kind == Kind::OversightQuery {
            if let Some(d) = e.detail.as_mut() {
                d["asked_by"] = "alicf".into();
            }
        }
        true
    })
    .await;
    let (a, _) = start_oversight_node(&fed, "audit-office").await.unwrap();
    let flagged = pull_state(&b, "audit-office").await;
    let flag = flagged
        .state
        .flag
        .expect("the other centre flags the rewritten log");
    assert!(
        ["fork", "inconsistent", "entries-mismatch"].contains(&flag.reason.as_str()),
        "{flag:?}"
    );
    let (ok, report) = watch(&fed, "civil-registry").await;
    assert!(!ok, "the department's check fails: {report:#}");
    assert_eq!(status_of(&report, "audit-office")["status"], "flagged");
    // The departments that had cosigned the old tree record the fork as witnesses.
    eventually(
        "a department witness records the rewritten oversight log as a fork",
        within,
        || async {
            ["civil-registry", "tax-office", "social-welfare"]
                .iter()
                .any(|d| {
                    // Through the gateway's own handle (a second LMDB environment on the same
                    // files in this process would clash with the gateway's readers).
                    fed.gateway(d)
                        .ledger()
                        .last_of_kind(Kind::Fork)
                        .ok()
                        .flatten()
                        .is_some_and(|e| e.provider.as_deref() == Some("audit-office"))
                })
        },
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
    fed.stop().await;
}

#[tokio::test]
async fn a_truncated_oversight_log_is_caught_by_the_other_centre_and_by_departments() {
    let mut fed = Federation::start().await.unwrap();
    assert_eq!(
        exchange(&fed, "social-welfare", "civil-registry").await,
        200
    );
    let (a, a_layout) = start_oversight_node(&fed, "audit-office").await.unwrap();
    let (b, _) = start_oversight_node(&fed, "data-protection").await.unwrap();
    let asker = Asker::new("bob", "investigator", "api");
    for _ in 0..3 {
        node(&a)
            .search(&Query::default(), &asker, "search")
            .await
            .unwrap();
    }
    let a_size = node(&a).ledger().checkpoint().0;
    assert_eq!(pull_state(&b, "audit-office").await.state.size, a_size);
    let (ok, report) = watch(&fed, "civil-registry").await;
    assert!(ok, "{report:#}");

    // Attack 2: the audit office drops the tail of its log (its last two queries).
    a.shutdown().await;
    let cut = a_size - 2;
    rebuild_oversight_ledger(&a_layout, |e| e.index < cut).await;
    let (a, _) = start_oversight_node(&fed, "audit-office").await.unwrap();
    let flagged = pull_state(&b, "audit-office").await;
    let flag = flagged
        .state
        .flag
        .expect("the other centre flags the shrunk log");
    assert_eq!(flag.reason, "shrunk", "{flag:?}");
    let (ok, report) = watch(&fed, "civil-registry").await;
    assert!(!ok, "{report:#}");
    let status = &status_of(&report, "audit-office")["status"];
    assert!(status == "flagged" || status == "withheld", "{report:#}");
    a.shutdown().await;
    b.shutdown().await;
    fed.stop().await;
}

#[tokio::test]
async fn staff_changes_are_notarized_and_the_other_centre_sees_them() {
    use causeway::oversight::staff::{Role, StaffFile};
    let mut fed = Federation::start().await.unwrap();
    let (a, a_layout) = start_oversight_node(&fed, "audit-office").await.unwrap();
    let (b, _) = start_oversight_node(&fed, "data-protection").await.unwrap();
    let within = Duration::from_secs(20);
    // Read through the node's own ledger handle: opening its LMDB environment a second time in
    // this process would clash with the node's readers.
    let entries = |gateway: &Gateway| {
        let ledger = node(gateway).ledger();
        let size = ledger.checkpoint().0;
        let mut all = Vec::new();
        ledger
            .read(|r| {
                r.for_each_entry(0, size, |_, bytes| {
                    all.push(serde_json::from_slice::<Value>(bytes).unwrap());
                    Ok(())
                })
            })
            .unwrap();
        all
    };
    let changes = |gateway: &Gateway| {
        entries(gateway)
            .into_iter()
            .filter(|e| e["kind"] == "staff-change")
            .flat_map(|e| {
                e["detail"]["changes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|c| {
                format!(
                    "{} {}",
                    c["name"].as_str().unwrap_or(""),
                    c["change"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<String>>()
    };
    // The accounts the node started with are recorded once.
    eventually("the starting accounts are notarized", within, || async {
        changes(&a).contains(&"admin added".to_owned())
    })
    .await;

    // An administrator disables one account, resets another's password and adds a third, with
    // the command line's library, while the node runs.
    let staff_file = GatewayConfig::load(&a_layout.config)
        .unwrap()
        .oversight
        .unwrap()
        .staff;
    let mut file = StaffFile::load(&staff_file).unwrap();
    file.set_disabled("viewer", true).unwrap();
    file.set_password("investigator", "another long passphrase")
        .unwrap();
    file.add("maria", &[Role::SubjectOfficer], "maria's long passphrase")
        .unwrap();
    file.save(&staff_file).unwrap();
    eventually("each change is notarized", within, || async {
        let seen = changes(&a);
        ["viewer disabled", "investigator password", "maria added"]
            .iter()
            .all(|c| seen.contains(&(*c).to_owned()))
    })
    .await;
    // Never a password hash.
    let recorded: String = entries(&a).iter().map(Value::to_string).collect();
    assert!(
        !recorded.contains("$argon2"),
        "no password hash is notarized"
    );

    // The other centre replicates the record of who may read what.
    eventually(
        "the data protection authority holds the staff changes",
        within,
        || async {
            node(&b).pull_all(Arc::new(|_: &str, _, _| {})).await;
            node(&b)
                .replica()
                .search(&Query {
                    department: Some("audit-office".into()),
                    ..Query::default()
                })
                .unwrap()
                .records
                .iter()
                .any(|r| {
                    r.log == "audit-office"
                        && r.entry.kind == Kind::StaffChange
                        && r.entry
                            .detail
                            .as_ref()
                            .is_some_and(|d| d.to_string().contains("maria"))
                })
        },
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
    fed.stop().await;
}

/// The directory serials an oversight node's ledger recorded as `directory-change` entries,
/// oldest first, and what triggered each.
fn directory_changes(gateway: &Gateway) -> Vec<(u64, String)> {
    let mut changes: Vec<(u64, String)> = node(gateway)
        .membership_history(100)
        .unwrap()
        .iter()
        .map(|e| {
            let d = e.detail.as_ref().unwrap();
            (
                d["serial"].as_u64().unwrap(),
                d["trigger"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    changes.reverse();
    changes
}

/// An oversight node's membership history starts with the directory it starts under, and whoever
/// holds the node's host cannot roll the directory back across a restart (to list a removed
/// department or a replaced oversight key again): the node refuses to start, as a department does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversight_node_records_the_directory_it_starts_under_and_refuses_a_rollback() {
    let mut fed = Federation::start().await.unwrap();
    let (a, _) = start_oversight_node(&fed, "audit-office").await.unwrap();
    // Laying the node out listed it in a newly published directory.
    let first = node(&a).directory().serial.expect("a signed directory");
    assert_eq!(
        directory_changes(&a),
        vec![(first, "start".to_owned())],
        "the version in force at start is notarized"
    );
    a.shutdown().await;

    let older = std::fs::read(&fed.layout.directory).unwrap();
    let second = fed.layout.publish_directory().unwrap();
    assert!(second > first);
    let (a, _) = start_oversight_node(&fed, "audit-office").await.unwrap();
    assert_eq!(
        directory_changes(&a),
        vec![(first, "start".to_owned()), (second, "start".to_owned())],
        "a newer version at a restart is notarized once"
    );
    a.shutdown().await;

    // The older file put back while the node was stopped.
    std::fs::write(&fed.layout.directory, &older).unwrap();
    let refused = match start_oversight_node(&fed, "audit-office").await {
        Ok(_) => panic!("an oversight node started under a rolled-back directory"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        refused.contains(&format!(
            "serial {first} is older than the one in force ({second})"
        )),
        "{refused}"
    );
    fed.stop().await;
}

/// A seal keeps exchanges out of citizens' reports, at every centre that reads it: so no staff
/// member may bury a purpose for ever. A seal lasts at most `[oversight] max_seal_days` (366 by
/// default) from the day it was recorded (longer needs a new seal, notarized again); a longer one
/// is refused, and one written straight into a centre's log by whoever holds that node (its own
/// key, its own ledger) is honoured by the other centre only that long.
#[tokio::test]
async fn no_seal_lasts_longer_than_the_longest_a_centre_honours() {
    use causeway::oversight::seal::{format_date, today};
    let mut fed = Federation::start().await.unwrap();
    let (a, _) = start_oversight_node(&fed, "audit-office").await.unwrap();
    let (b, _) = start_oversight_node(&fed, "data-protection").await.unwrap();
    let asker = Asker::new("mallory", "investigator", "api");
    let max = time::Duration::days(366);

    let refused = node(&a)
        .seal(
            &asker,
            "benefit-eligibility",
            None,
            today() + max + time::Duration::days(1),
            "CASE-1",
        )
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("max_seal_days")),
        "a seal past the longest allowed was recorded: {refused:?}"
    );
    node(&a)
        .seal(&asker, "tax-assessment", None, today() + max, "CASE-2")
        .await
        .expect("a seal of the longest allowed");

    // Whoever holds the audit office's host appends a seal until 2099 with its own ledger.
    let mut forged = Entry::new(Kind::Seal);
    forged.purpose = Some("benefit-eligibility".into());
    forged.reason = Some("CASE-3".into());
    forged.detail = Some(
        serde_json::json!({"until": "2099-12-31", "asked_by": "mallory", "role": "investigator", "via": "api"}),
    );
    node(&a).ledger().append(forged).await.unwrap();
    pull_state(&b, "audit-office").await;
    let seals = node(&b).seals().await.unwrap();
    let honoured = |purpose: &str| {
        seals
            .iter()
            .find(|s| s.purpose == purpose)
            .map(|s| format_date(s.until))
            .unwrap_or_else(|| panic!("no {purpose} seal in {seals:?}"))
    };
    assert_eq!(honoured("tax-assessment"), format_date(today() + max));
    assert_eq!(
        honoured("benefit-eligibility"),
        format_date(today() + max),
        "the forged seal is honoured only as long as any seal"
    );
    a.shutdown().await;
    b.shutdown().await;
    fed.stop().await;
}
