//! Logs operators can use (docs/OPERATIONS.md, "Logs"): one access-log line per exchange on each
//! side, at the default level; `--log-format json` writes JSON lines only; no colour codes unless
//! stderr is a terminal.
//!
//! Three real `causeway --log-format json serve` processes, their stderr in files (not a
//! terminal, and no `NO_COLOR`), real exchanges through their client APIs: allowed, denied by the
//! provider's policy, refused for want of any grant, and one with a forged token. Every line the
//! gateways wrote parses as JSON; each exchange has exactly one access line per side that it
//! reached, naming it with ids and codes only; and a gateway started with text logs writes no
//! escape codes either.

#![cfg(unix)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use causeway::layout::{self, DEMO_APP, DEMO_DEPARTMENTS};
use serde_json::{json, Value};
use support::{wait_ready, CaseDesk, Served};

/// The officer the applications act for ([`CaseDesk`]); an id no log line may carry.
const OFFICER: &str = "officer-1";
/// Start `causeway --log-format FORMAT serve`, its stdout and stderr into `log` (a file: not a
/// terminal), at the defaults an operator gets (info; colour left to the terminal test).
fn serve_logged(config: &Path, log: &Path, format: &str) -> Served {
    let file = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["--log-format", format, "serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::from(file.try_clone().expect("log file")))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("the causeway binary starts");
    Served(child)
}

/// Ask `provider` through `desk`; the status and the answer as JSON.
async fn ask(
    desk: &CaseDesk,
    provider: &str,
    dataset: &str,
    params: Value,
    purpose: &str,
) -> (u16, Value) {
    let body = json!({"provider": provider, "dataset": dataset, "params": params,
        "purpose": purpose, "legal_basis": "test-act:s1", "case": "C-1"});
    let (status, answer) = desk.post(&body).await.expect("the client API answers");
    (
        status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

/// The access lines among `lines` for exchange `id` on `side`.
fn access<'a>(lines: &'a [Value], id: &str, side: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["target"] == "causeway::access")
        .filter(|l| l["fields"]["exchange"] == id && l["fields"]["side"] == side)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_has_one_access_line_per_side_in_json_only_logs_without_colour() {
    let root = tempfile::tempdir().expect("tempdir");
    let layout = layout::create(root.path(), "demo", DEMO_DEPARTMENTS).expect("layout");
    layout::generate_demo_data(&layout, 50).expect("demo data");
    let log = |dept: &str| root.path().join(format!("{dept}.log"));
    let mut served = Vec::new();
    for dept in &layout.departments {
        served.push(serve_logged(&dept.config, &log(dept.id.as_str()), "json"));
    }
    for dept in &layout.departments {
        wait_ready(dept.admin).await;
    }

    let welfare = CaseDesk::of(&layout, "social-welfare");
    let registry = CaseDesk::of(&layout, "civil-registry");
    let allowed = ask(
        &welfare,
        "civil-registry",
        "residents",
        json!({"national_id": "D000042"}),
        "benefit-eligibility",
    )
    .await;
    let denied = ask(
        &welfare,
        "civil-registry",
        "residents",
        json!({"national_id": "D000043"}),
        "marketing",
    )
    .await;
    let no_grant = ask(
        &registry,
        "social-welfare",
        "benefits",
        json!({"national_id": "D000044"}),
        "statistics",
    )
    .await;
    let unauthenticated = ask(
        &welfare.with_forged_token(),
        "civil-registry",
        "residents",
        json!({"national_id": "D000045"}),
        "benefit-eligibility",
    )
    .await;
    for gateway in served {
        gateway.stop().await;
    }
    assert_eq!(allowed.0, 200, "{}", allowed.1);
    assert_eq!(denied.0, 403, "{}", denied.1);
    assert_eq!(no_grant.0, 403, "{}", no_grant.1);
    assert_eq!(unauthenticated.0, 401, "{}", unauthenticated.1);

    let mut lines = Vec::new();
    for dept in &layout.departments {
        let text = std::fs::read_to_string(log(dept.id.as_str())).expect("log");
        assert!(!text.contains('\u{1b}'), "escape codes in a file:\n{text}");
        for line in text.lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}) in {}.log: {line}", dept.id));
            lines.push(parsed);
        }
        assert!(
            text.contains("gateway serving") && text.contains("shutting down"),
            "start and stop are log lines too:\n{text}"
        );
    }
    for personal in ["D000042", "D000043", "D000044", "D000045", OFFICER] {
        assert!(
            !lines.iter().any(|l| l.to_string().contains(personal)),
            "{personal} is in the logs"
        );
    }

    // Allowed: both sides, with the decision, status and each side's ledger index.
    let id = allowed.1["exchange"].as_str().expect("an exchange id");
    let consumer = access(&lines, id, "consumer");
    let provider = access(&lines, id, "provider");
    assert_eq!(
        (consumer.len(), provider.len()),
        (1, 1),
        "{consumer:?} {provider:?}"
    );
    for (line, index) in [
        (consumer[0], &allowed.1["consumer_log_index"]),
        (provider[0], &allowed.1["receipt"]["index"]),
    ] {
        let fields = &line["fields"];
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(fields["consumer"], "social-welfare", "{line}");
        assert_eq!(fields["provider"], "civil-registry", "{line}");
        assert_eq!(fields["dataset"], "residents", "{line}");
        assert_eq!(fields["purpose"], "benefit-eligibility", "{line}");
        assert_eq!(fields["application"], DEMO_APP, "{line}");
        assert_eq!(fields["decision"], "allow", "{line}");
        assert_eq!(fields["reason"], "ok", "{line}");
        assert_eq!(fields["status"], 200, "{line}");
        assert!(fields["duration_ms"].as_f64().is_some(), "{line}");
        assert!(index.as_u64().is_some(), "{}", allowed.1);
        assert_eq!(&fields["log_index"], index, "{line}");
        // Ids, names and codes only.
        let mut keys: Vec<&str> = fields
            .as_object()
            .expect("fields")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "application",
                "consumer",
                "dataset",
                "decision",
                "duration_ms",
                "exchange",
                "log_index",
                "message",
                "provider",
                "purpose",
                "reason",
                "side",
                "status"
            ],
            "{line}"
        );
    }

    // Denied by the provider's policy: a deny with its reason on both sides.
    let id = denied.1["exchange"].as_str().expect("an exchange id");
    for side in ["consumer", "provider"] {
        let found = access(&lines, id, side);
        assert_eq!(found.len(), 1, "{side}: {found:?}");
        let fields = &found[0]["fields"];
        assert_eq!(fields["decision"], "deny", "{fields}");
        assert_eq!(fields["status"], 403, "{fields}");
        assert_eq!(fields["reason"], denied.1["error"]["code"], "{fields}");
        assert!(
            fields["log_index"].as_u64().is_some(),
            "notarized: {fields}"
        );
    }
    let id = no_grant.1["exchange"].as_str().expect("an exchange id");
    assert_eq!(
        access(&lines, id, "consumer")[0]["fields"]["decision"],
        "deny"
    );
    assert_eq!(
        access(&lines, id, "provider")[0]["fields"]["decision"],
        "deny"
    );

    // Refused at the consumer's door: one line, no exchange, no decision, no provider contacted.
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "causeway::access" && l["fields"]["status"] == 401)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let fields = &refused[0]["fields"];
    assert_eq!(fields["side"], "consumer", "{fields}");
    assert_eq!(fields["decision"], "none", "{fields}");
    assert_eq!(fields["consumer"], "social-welfare", "{fields}");
    assert!(fields.get("exchange").is_none(), "{fields}");
    // Exactly the lines above: one per side of each exchange, plus the refusal.
    let total = lines
        .iter()
        .filter(|l| l["target"] == "causeway::access")
        .count();
    assert_eq!(total, 7);

    // Text logs into a file: no escape codes either.
    let registry = layout.dept("civil-registry").expect("department");
    let text_log = root.path().join("text.log");
    let served = serve_logged(&registry.config, &text_log, "text");
    wait_ready(registry.admin).await;
    served.stop().await;
    let text = std::fs::read_to_string(&text_log).expect("log");
    assert!(text.contains("gateway serving"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a file:\n{text}");

    // A gateway that cannot start says why in a JSON line too.
    let failed = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(root.path().join("no-such.toml"))
        .output()
        .expect("the causeway binary runs");
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("no-such.toml"))),
        "{stderr}"
    );
}
