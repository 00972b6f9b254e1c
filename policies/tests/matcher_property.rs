//! Property test: the indexed matcher decides exactly as the reference evaluation that scans every
//! rule, over random policy sets (written as TOML and compiled) and random requests.

use std::collections::BTreeMap;
use std::fmt::Write;

use causeway_policy::{PolicySet, ReasonCode, Request};
use proptest::prelude::*;
use serde_json::{json, Value};

const DEPTS: [&str; 5] = ["d0", "d1", "d2", "d3", "outsider"];
const DATASETS: [&str; 4] = ["ds0", "ds1", "ds2", "unknown-ds"];
const PURPOSES: [&str; 5] = ["p0", "p1", "p2", "p3", "undeclared"];
const BASES: [&str; 3] = ["law-a", "law-b", ""];
const TIMES: [i64; 3] = [100, 200, 300];
/// Rules list the first three; requests also come from `app-z`, which no rule names, or from none.
const APPS: [&str; 4] = ["app-a", "app-b", "app-c", "app-z"];

#[derive(Debug, Clone)]
enum Constraint {
    YearExact,
    YearOneOf,
    YearRange,
    IdPattern,
}

impl Constraint {
    fn toml(&self) -> &'static str {
        match self {
            Constraint::YearExact => "params = { year = { exact = 2020 } }",
            Constraint::YearOneOf => "params = { year = { one_of = [2019, \"2020\"] } }",
            Constraint::YearRange => "params = { year = { range = [2018, 2021] } }",
            Constraint::IdPattern => "params = { id = { pattern = \"D1*\" } }",
        }
    }
}

fn constraint() -> impl Strategy<Value = Option<Constraint>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Constraint::YearExact)),
        1 => Just(Some(Constraint::YearOneOf)),
        1 => Just(Some(Constraint::YearRange)),
        1 => Just(Some(Constraint::IdPattern)),
    ]
}

fn window() -> impl Strategy<Value = (Option<usize>, Option<usize>)> {
    (
        proptest::option::weighted(0.3, 0..3usize),
        proptest::option::weighted(0.3, 0..3usize),
    )
        .prop_map(|(f, u)| match (f, u) {
            (Some(f), Some(u)) if u <= f => (Some(f), None),
            other => other,
        })
}

#[derive(Debug, Clone)]
struct GrantSpec {
    consumer: usize, // 0..4 a department, 4 the group
    dataset: usize,
    purposes: Vec<usize>,
    applications: Option<Vec<usize>>,
    bases: Option<Vec<usize>>,
    require_case: bool,
    window: (Option<usize>, Option<usize>),
    constraint: Option<Constraint>,
    fields: usize,
}

#[derive(Debug, Clone)]
struct DenySpec {
    consumer: Option<usize>,
    dataset: Option<usize>,
    purposes: Option<Vec<usize>>,
    applications: Option<Vec<usize>>,
    window: (Option<usize>, Option<usize>),
    constraint: Option<Constraint>,
}

fn purpose_set() -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence((0..4).collect::<Vec<_>>(), 1..=3)
}

fn application_set() -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence(vec![0usize, 1, 2], 1..=2)
}

fn grant() -> impl Strategy<Value = GrantSpec> {
    (
        0..5usize,
        0..3usize,
        purpose_set(),
        proptest::option::weighted(0.4, application_set()),
        proptest::option::weighted(0.3, proptest::sample::subsequence(vec![0usize, 1], 1..=2)),
        proptest::bool::weighted(0.3),
        window(),
        constraint(),
        1..4usize,
    )
        .prop_map(
            |(
                consumer,
                dataset,
                purposes,
                applications,
                bases,
                require_case,
                window,
                constraint,
                fields,
            )| {
                GrantSpec {
                    consumer,
                    dataset,
                    purposes,
                    applications,
                    bases,
                    require_case,
                    window,
                    constraint,
                    fields,
                }
            },
        )
}

fn deny() -> impl Strategy<Value = DenySpec> {
    (
        proptest::option::weighted(0.6, 0..5usize),
        proptest::option::weighted(0.6, 0..3usize),
        proptest::option::weighted(0.5, purpose_set()),
        proptest::option::weighted(0.3, application_set()),
        window(),
        constraint(),
    )
        .prop_map(
            |(consumer, dataset, purposes, applications, window, constraint)| DenySpec {
                consumer,
                dataset,
                purposes,
                applications,
                window,
                constraint,
            },
        )
}

fn consumer_name(i: usize) -> String {
    if i == 4 {
        "group:g".to_string()
    } else {
        DEPTS[i].to_string()
    }
}

fn list(items: &[usize], names: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|&i| format!("\"{}\"", names[i])).collect();
    format!("[{}]", quoted.join(", "))
}

fn window_toml(out: &mut String, (from, until): (Option<usize>, Option<usize>)) {
    if let Some(f) = from {
        writeln!(out, "valid_from = \"{}\"", rfc3339(TIMES[f])).expect("write");
    }
    if let Some(u) = until {
        writeln!(out, "valid_until = \"{}\"", rfc3339(TIMES[u])).expect("write");
    }
}

fn rfc3339(t: i64) -> String {
    format!("1970-01-01T00:{:02}:{:02}Z", t / 60, t % 60)
}

/// Render the specs into policy files: the grants and denies spread over two files.
fn render(grants: &[GrantSpec], denies: &[DenySpec]) -> Vec<(String, String)> {
    let purposes: String = PURPOSES[..4]
        .iter()
        .map(|p| format!("[[purpose]]\nid = \"{p}\"\ndescription = \"x\"\n\n"))
        .collect();
    let groups = "[[group]]\nid = \"g\"\nmembers = [\"d0\", \"d1\"]\n".to_string();
    let mut files = vec![
        ("purposes.toml".to_string(), purposes),
        ("groups.toml".to_string(), groups),
    ];
    let mut a = String::new();
    let mut b = String::new();
    for (i, g) in grants.iter().enumerate() {
        let out = if i % 2 == 0 { &mut a } else { &mut b };
        writeln!(
            out,
            "[[grant]]\nid = \"g{i}\"\nconsumer = \"{}\"\ndataset = \"{}\"",
            consumer_name(g.consumer),
            DATASETS[g.dataset]
        )
        .expect("write");
        writeln!(out, "purposes = {}", list(&g.purposes, &PURPOSES)).expect("write");
        let fields: Vec<String> = (0..g.fields).map(|f| format!("\"f{i}_{f}\"")).collect();
        writeln!(out, "fields = [{}]", fields.join(", ")).expect("write");
        if let Some(apps) = &g.applications {
            writeln!(out, "applications = {}", list(apps, &APPS)).expect("write");
        }
        if let Some(bases) = &g.bases {
            writeln!(out, "legal_bases = {}", list(bases, &BASES)).expect("write");
        }
        if g.require_case {
            writeln!(out, "require_case = true").expect("write");
        }
        if let Some(c) = &g.constraint {
            writeln!(out, "{}", c.toml()).expect("write");
        }
        window_toml(out, g.window);
        out.push('\n');
    }
    for (i, d) in denies.iter().enumerate() {
        let out = if i % 2 == 0 { &mut b } else { &mut a };
        writeln!(out, "[[deny]]\nid = \"x{i}\"").expect("write");
        if let Some(c) = d.consumer {
            writeln!(out, "consumer = \"{}\"", consumer_name(c)).expect("write");
        }
        if let Some(ds) = d.dataset {
            writeln!(out, "dataset = \"{}\"", DATASETS[ds]).expect("write");
        }
        if let Some(p) = &d.purposes {
            writeln!(out, "purposes = {}", list(p, &PURPOSES)).expect("write");
        }
        if let Some(apps) = &d.applications {
            writeln!(out, "applications = {}", list(apps, &APPS)).expect("write");
        }
        if let Some(c) = &d.constraint {
            writeln!(out, "{}", c.toml()).expect("write");
        }
        window_toml(out, d.window);
        out.push('\n');
    }
    files.push(("a.toml".to_string(), a));
    files.push(("b.toml".to_string(), b));
    files
}

#[derive(Debug, Clone)]
struct RequestSpec {
    consumer: usize,
    dataset: usize,
    purpose: usize,
    basis: usize,
    case: bool,
    application: Option<usize>,
    year: Option<Value>,
    id: Option<Value>,
    at: i64,
}

fn request() -> impl Strategy<Value = RequestSpec> {
    (
        0..5usize,
        0..4usize,
        0..5usize,
        0..3usize,
        any::<bool>(),
        proptest::option::weighted(0.7, 0..4usize),
        proptest::option::of(prop_oneof![
            (2017i64..2023).prop_map(Value::from),
            Just(json!("2020")),
            Just(json!("twenty"))
        ]),
        proptest::option::of(prop_oneof![
            Just(json!("D123")),
            Just(json!("E2")),
            Just(json!(17))
        ]),
        prop_oneof![
            Just(50i64),
            Just(100),
            Just(150),
            Just(200),
            Just(299),
            Just(300),
            Just(350)
        ],
    )
        .prop_map(
            |(consumer, dataset, purpose, basis, case, application, year, id, at)| RequestSpec {
                consumer,
                dataset,
                purpose,
                basis,
                case,
                application,
                year,
                id,
                at,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_scan(
        grants in proptest::collection::vec(grant(), 0..14),
        denies in proptest::collection::vec(deny(), 0..4),
        requests in proptest::collection::vec(request(), 1..24),
    ) {
        let files = render(&grants, &denies);
        let set = match PolicySet::from_sources(&files) {
            Ok(s) => s,
            Err(e) => return Err(TestCaseError::fail(format!("generated policy must load: {e}\n{files:#?}"))),
        };
        for r in &requests {
            let mut params = BTreeMap::new();
            if let Some(y) = &r.year { params.insert("year".to_string(), y.clone()); }
            if let Some(i) = &r.id { params.insert("id".to_string(), i.clone()); }
            let request = Request {
                consumer: DEPTS[r.consumer],
                dataset: DATASETS[r.dataset],
                purpose: PURPOSES[r.purpose],
                legal_basis: BASES[r.basis],
                case: if r.case { "C-1" } else { "" },
                application: r.application.map(|a| APPS[a]),
                params: &params,
                at_unix: r.at,
            };
            let fast = set.decide(&request);
            let slow = set.decide_by_scan(&request);
            prop_assert_eq!(&fast, &slow, "request {:?}", r);

            // Independent sanity checks on what an allow means.
            if fast.allowed {
                let rule = fast.rule.as_ref().expect("an allow names its grant");
                let g = set.grants().iter().find(|g| g.rule == *rule).expect("the rule is a grant");
                prop_assert!(g.covers_consumer(request.consumer) && g.dataset == request.dataset && g.allows_purpose(request.purpose));
                prop_assert!(g.window.contains(request.at_unix));
                prop_assert!(g.allows_application(request.application));
                prop_assert!(!set.denies().iter().any(|d| d.matches(&request)));
                prop_assert_eq!(&fast.fields, &g.fields);
            } else {
                prop_assert!(fast.fields.is_empty());
                if fast.rule.is_none() {
                    prop_assert!(matches!(fast.reason.code, ReasonCode::UnknownPurpose | ReasonCode::NoGrant));
                }
                // The application is checked first: `application-not-allowed` means that no grant
                // for (consumer, dataset, purpose) admits it, and any other grant condition named
                // belongs to a grant that does.
                let candidates: Vec<_> = set.grants().iter().filter(|g| {
                    g.covers_consumer(request.consumer) && g.dataset == request.dataset && g.allows_purpose(request.purpose)
                }).collect();
                let named = fast.rule.as_ref().and_then(|rule| set.grants().iter().find(|g| g.rule == *rule));
                match fast.reason.code {
                    ReasonCode::ApplicationNotAllowed => {
                        prop_assert!(!candidates.is_empty());
                        prop_assert!(candidates.iter().all(|g| !g.allows_application(request.application)));
                    }
                    ReasonCode::NotYetValid | ReasonCode::Expired | ReasonCode::LegalBasisNotAllowed
                    | ReasonCode::CaseRequired | ReasonCode::ParamConstraint => {
                        let g = named.expect("a grant condition names its grant");
                        prop_assert!(g.allows_application(request.application));
                    }
                    ReasonCode::DeniedByRule => {
                        let rule = fast.rule.as_ref().expect("a deny rule is named");
                        let d = set.denies().iter().find(|d| d.rule == *rule).expect("the rule is a deny rule");
                        prop_assert!(d.covers_application(request.application));
                    }
                    _ => {}
                }
            }
        }
    }

    /// What a consumer is told does not depend on the deny rules unless a grant would allow its
    /// request: then it is told the first deny rule that matches; otherwise exactly what the same
    /// grants without any deny rule tell it.
    #[test]
    fn deny_rules_are_told_only_where_a_grant_allows(
        grants in proptest::collection::vec(grant(), 0..14),
        denies in proptest::collection::vec(deny(), 1..4),
        requests in proptest::collection::vec(request(), 1..24),
    ) {
        let load = |files: Vec<(String, String)>| PolicySet::from_sources(&files)
            .map_err(|e| TestCaseError::fail(format!("generated policy must load: {e}\n{files:#?}")));
        let set = load(render(&grants, &denies))?;
        // Deny rules are written after the grants in each file: the grants keep their lines.
        let grants_only = load(render(&grants, &[]))?;
        for r in &requests {
            let mut params = BTreeMap::new();
            if let Some(y) = &r.year { params.insert("year".to_string(), y.clone()); }
            if let Some(i) = &r.id { params.insert("id".to_string(), i.clone()); }
            let request = Request {
                consumer: DEPTS[r.consumer],
                dataset: DATASETS[r.dataset],
                purpose: PURPOSES[r.purpose],
                legal_basis: BASES[r.basis],
                case: if r.case { "C-1" } else { "" },
                application: r.application.map(|a| APPS[a]),
                params: &params,
                at_unix: r.at,
            };
            let decided = set.decide(&request);
            let by_grants = grants_only.decide(&request);
            let deny = set.denies().iter().find(|d| d.matches(&request));
            let told = decided.told();
            match (by_grants.allowed, deny) {
                (true, Some(deny)) => {
                    prop_assert!(!decided.allowed);
                    prop_assert_eq!(told.code, ReasonCode::DeniedByRule);
                    prop_assert_eq!(told.rule, Some(&deny.rule));
                    prop_assert_eq!(told.message, deny.message.as_str());
                }
                (true, None) => prop_assert!(decided.allowed),
                (false, _) => {
                    prop_assert!(!decided.allowed);
                    prop_assert_eq!(told, by_grants.told(), "request {:?}", r);
                }
            }
            // The full explanation names the deny rule (an undeclared purpose is refused first).
            if deny.is_some() && set.is_declared_purpose(request.purpose) {
                prop_assert_eq!(decided.reason.code, ReasonCode::DeniedByRule);
                prop_assert_eq!(decided.rule.as_ref(), deny.map(|d| &d.rule));
            }
        }
    }
}
