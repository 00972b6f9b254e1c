//! The Grafana dashboards in `packaging/grafana/` (docs/OPERATIONS.md, "Metrics and dashboards")
//! chart only what runs: a federation with an oversight node serves some traffic, each node's
//! `/metrics` is scraped, and every metric named by an `expr` of the gateway dashboard must be
//! one a department gateway exports, every one of the oversight dashboard one the oversight node
//! exports. Every `expr` is also valid PromQL, as `promtool check rules` reads it.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use causeway_tests::{
    exchange, get_text, promtool, repo, sign_in, start_oversight, Federation, STAFF_PASSWORD,
};
use serde_json::{json, Value};

fn dashboard(name: &str) -> Value {
    let path = repo().join("packaging/grafana").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `expr` of every panel (rows' panels included), and every variable's `label_values`
/// query.
fn exprs(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The metric selectors inside the variables' `label_values(SELECTOR, label)` queries.
fn variable_selectors(dashboard: &Value) -> Vec<String> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .expect("a variable's query");
            query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector.trim().to_owned())
                .unwrap_or_else(|| panic!("not label_values(selector, label): {query}"))
        })
        .collect()
}

/// Grafana's variables replaced by what Prometheus would get.
fn as_prometheus_sees_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__range", "6h")
        .replace("$__interval", "1m")
        .replace("${job}", ".*")
        .replace("$job", ".*")
        .replace("${instance}", ".*")
        .replace("$instance", ".*")
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
];

/// PromQL's aggregation operators, which may take their grouping before their argument.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names a PromQL expression reads: identifiers that are not functions or aggregations
/// (followed by `(`), keywords, label names inside `{...}` or in the parentheses of `by`,
/// `without`, `on`, `ignoring` and `group_*`, strings, durations in `[...]`, or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Set after a grouping keyword: its parenthesised list holds label names.
    let mut labels_follow = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            while i < chars.len() && chars[i] != close {
                if chars[i] == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                i += 1;
            }
            i += 1;
        } else if c == '(' && labels_follow {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            i += 1;
            labels_follow = false;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let lower = word.to_ascii_lowercase();
            // A function or aggregation: followed by `(`, or (an aggregation) by its grouping.
            let rest: String = chars[next..].iter().take(8).collect();
            let function = rest.starts_with('(')
                || (AGGREGATIONS.contains(&lower.as_str())
                    && (rest.starts_with("by") || rest.starts_with("without")));
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&lower.as_str())
            {
                labels_follow = true;
            } else if !function && !KEYWORDS.contains(&lower.as_str()) {
                names.insert(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number (with an exponent, or a duration suffix after `offset`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            if !c.is_whitespace() {
                labels_follow = false;
            }
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names("histogram_quantile(0.99, sum by (le, side) (rate(a_bucket{job=~\"x\", le!=\"1\"}[5m])))"),
        ["a_bucket"]
    );
    assert_eq!(
        names("sum without (instance) (b_total) / on(job) group_left(version) c_info offset 5m"),
        ["b_total", "c_info"]
    );
    assert_eq!(
        names("time() - d_timestamp_seconds > 1e3"),
        ["d_timestamp_seconds"]
    );
    assert_eq!(names("e{kind=\"by (x) f\"} and bool g"), ["e", "g"]);
}

/// Every metric family a node's `/metrics` declares (`# TYPE`) or has a sample of.
async fn exported(admin: SocketAddr) -> (BTreeSet<String>, BTreeSet<String>) {
    let (status, text) = get_text(admin, "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{text}");
    let mut families = BTreeSet::new();
    let mut histograms = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            families.insert(name.to_owned());
            if kind == "histogram" {
                histograms.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).expect("a sample line");
            families.insert(line[..end].to_owned());
        }
    }
    (families, histograms)
}

/// The metrics an expression names that the node does not export.
fn missing(
    names: &BTreeSet<String>,
    (families, histograms): &(BTreeSet<String>, BTreeSet<String>),
) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            let histogram_part = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .any(|base| histograms.contains(base));
            !families.contains(*name) && !histogram_part
        })
        .cloned()
        .collect()
}

/// `promtool check rules` on every expression, each as a recording rule.
fn check_promql(name: &str, exprs: &[String]) {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(&as_prometheus_sees_it(expr)).expect("a string");
        rules.push_str(&format!(
            "      - record: dashboard_expr_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, &rules).expect("write rules");
    let out = std::process::Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "{name}: promtool check rules failed:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_dashboard_expression_is_valid_promql() {
    for name in ["gateway.json", "oversight.json"] {
        let d = dashboard(name);
        assert_eq!(d["schemaVersion"], 39, "{name}");
        let exprs = exprs(&d);
        assert!(exprs.len() >= 10, "{name}: {} expressions", exprs.len());
        check_promql(name, &exprs);
        let variables = &d["templating"]["list"];
        assert!(
            variables
                .as_array()
                .expect("variables")
                .iter()
                .any(|v| v["type"] == "datasource"
                    && v["name"] == "datasource"
                    && v["query"] == "prometheus"),
            "{name}: a Prometheus data source variable"
        );
        fn datasources(panels: &Value, name: &str) {
            for panel in panels.as_array().into_iter().flatten() {
                if panel["type"] != "row" {
                    assert_eq!(
                        panel["datasource"]["uid"], "${datasource}",
                        "{name}: panel {}",
                        panel["title"]
                    );
                }
                datasources(&panel["panels"], name);
            }
        }
        datasources(&d["panels"], name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_chart_only_metrics_the_running_nodes_export() {
    let mut fed = Federation::start().await.expect("federation starts");
    assert_eq!(exchange(&fed, "tax-office", "civil-registry").await, 200);
    assert_eq!(
        exchange(&fed, "social-welfare", "civil-registry").await,
        200
    );
    let (status, denied) = fed
        .request(
            "tax-office",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .expect("request");
    assert_eq!(status, 403, "{denied}");
    let (oversight, layout) = start_oversight(&fed).await.expect("oversight node starts");
    sign_in(layout.dashboard, "viewer", STAFF_PASSWORD)
        .await
        .expect("sign-in");

    for (file, admins) in [
        (
            "gateway.json",
            ["civil-registry", "tax-office", "social-welfare"]
                .iter()
                .map(|d| fed.gateway(d).admin_addr.expect("admin listener"))
                .collect::<Vec<_>>(),
        ),
        (
            "oversight.json",
            vec![oversight
                .admin_addr
                .expect("the oversight node's admin listener")],
        ),
    ] {
        let d = dashboard(file);
        let mut named = BTreeSet::new();
        for expr in exprs(&d) {
            named.extend(metric_names(&expr));
        }
        for selector in variable_selectors(&d) {
            named.extend(metric_names(&selector));
        }
        assert!(
            named.contains("process_cpu_seconds_total"),
            "{file}: {named:?}"
        );
        for admin in admins {
            let exported = exported(admin).await;
            let missing = missing(&named, &exported);
            assert!(
                missing.is_empty(),
                "{file} charts metrics the node at {admin} does not export: {missing:?}"
            );
        }
    }
    oversight.shutdown().await;
    fed.stop().await;
}
