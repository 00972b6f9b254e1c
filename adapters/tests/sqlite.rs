//! The sqlite adapter and the catalog against real SQLite files in temporary directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use causeway_adapters::{Catalog, FetchError, Limits};
use rusqlite::Connection;
use serde_json::{json, Value};

mod support;
use support::{params, resident, GENEROUS};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A directory with `civil.sqlite` holding a few awkward residents.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("civil.sqlite")).expect("create db");
        conn.execute_batch(
            "CREATE TABLE residents (national_id TEXT PRIMARY KEY, name TEXT, birth_date TEXT, address TEXT, household TEXT, children INTEGER, income REAL, verified INTEGER);
             INSERT INTO residents VALUES ('D000001', 'O''Brien \"Bob\"; DROP TABLE x --', '1980-02-29', NULL, 'H1', 2, 1234.5, 1);
             INSERT INTO residents VALUES ('D000002', 'Zoë Ångström 李小龍 🚀', '2001-12-31', 'Rue de l''Église 5', 'H1', NULL, NULL, 0);
             INSERT INTO residents VALUES ('D000003', 'Plain Person', '1999-01-01', 'Main St 1', 'H2', 0, 0, 1);
             INSERT INTO residents VALUES (''' OR 1=1 --', 'Literal Quote', '1970-01-01', 'Nowhere', 'H3', 0, 0, 0);",
        )
        .expect("fill db");
        Fixture { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, datasets: &str) -> PathBuf {
        let p = self.dir.path().join("datasets.toml");
        std::fs::write(&p, datasets).expect("write datasets file");
        p
    }

    async fn catalog(&self, datasets: &str) -> Catalog {
        let p = self.write(datasets);
        match Catalog::open(&p).await {
            Ok(c) => c,
            Err(e) => panic!("catalog should open: {e}"),
        }
    }

    async fn open_err(&self, datasets: &str) -> String {
        let p = self.write(datasets);
        match Catalog::open(&p).await {
            Ok(_) => panic!("expected an error for:\n{datasets}"),
            Err(e) => e.to_string(),
        }
    }

    fn count(&self, table: &str) -> i64 {
        let conn = Connection::open(self.dir.path().join("civil.sqlite")).expect("open");
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }
}

const RESIDENTS: &str = r#"
[[dataset]]
name = "residents"
adapter = "sqlite"
database = "civil.sqlite"
query = "SELECT name, birth_date, address, household FROM residents WHERE national_id = :national_id"
subject = "national_id"
max_rows = 100
timeout_ms = 2000

[[dataset.param]]
name = "national_id"
type = "string"

[[dataset.field]]
name = "address"
type = "string"
classification = "personal"

[[dataset.field]]
name = "name"
type = "string"
classification = "personal"

[[dataset.field]]
name = "birth_date"
type = "date"
classification = "personal"

[[dataset.field]]
name = "household"
type = "string"
classification = "internal"
"#;

const TYPED: &str = r#"
[[dataset]]
name = "typed"
adapter = "sqlite"
database = "civil.sqlite"
query = """
SELECT national_id, children, income, verified, birth_date
FROM residents
WHERE household = :household AND birth_date >= :born_after AND (:min_children IS NULL OR children >= :min_children)
ORDER BY national_id"""
subject = "household"

[[dataset.param]]
name = "household"
type = "enum"
values = ["H1", "H2", "H3"]

[[dataset.param]]
name = "born_after"
type = "date"

[[dataset.param]]
name = "min_children"
type = "integer"
min = 0
max = 20
optional = true

[[dataset.field]]
name = "national_id"
type = "string"
classification = "personal"

[[dataset.field]]
name = "children"
type = "integer"
classification = "personal"

[[dataset.field]]
name = "income"
type = "float"
classification = "sensitive"

[[dataset.field]]
name = "verified"
type = "boolean"
classification = "internal"

[[dataset.field]]
name = "birth_date"
type = "date"
classification = "personal"
"#;

#[tokio::test]
async fn text_with_quotes_unicode_and_nulls_round_trips_in_declared_order() {
    let fx = Fixture::new();
    let catalog = fx.catalog(RESIDENTS).await;
    let d = catalog.dataset("residents").expect("declared");
    assert_eq!(d.subject_param, "national_id");
    assert_eq!(catalog.datasets().count(), 1);

    let rows = catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!("D000001"))]),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert_eq!(
        rows.fields,
        vec!["address", "name", "birth_date", "household"]
    );
    assert_eq!(
        rows.rows,
        vec![vec![
            json!(null),
            json!("O'Brien \"Bob\"; DROP TABLE x --"),
            json!("1980-02-29"),
            json!("H1")
        ]]
    );

    let rows = catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!("D000002"))]),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert_eq!(rows.rows[0][1], json!("Zoë Ångström 李小龍 🚀"));
    assert_eq!(rows.rows[0][0], json!("Rue de l'Église 5"));
}

#[tokio::test]
async fn integers_dates_enums_floats_booleans_and_optional_nulls() {
    let fx = Fixture::new();
    let catalog = fx.catalog(TYPED).await;
    let rows = catalog
        .fetch(
            "typed",
            &params(&[
                ("household", json!("H1")),
                ("born_after", json!("1900-01-01")),
            ]),
            GENEROUS,
        )
        .await
        .expect("fetch with the optional parameter missing");
    assert_eq!(
        rows.rows,
        vec![
            vec![
                json!("D000001"),
                json!(2),
                json!(1234.5),
                json!(true),
                json!("1980-02-29")
            ],
            vec![
                json!("D000002"),
                json!(null),
                json!(null),
                json!(false),
                json!("2001-12-31")
            ],
        ]
    );
    let rows = catalog
        .fetch(
            "typed",
            &params(&[
                ("household", json!("H1")),
                ("born_after", json!("1980-02-29")),
                ("min_children", json!(1)),
            ]),
            GENEROUS,
        )
        .await
        .expect("fetch with an integer");
    assert_eq!(rows.rows.len(), 1, "{rows:?}");
    assert_eq!(rows.rows[0][0], json!("D000001"));
    let rows = catalog
        .fetch(
            "typed",
            &params(&[
                ("household", json!("H1")),
                ("born_after", json!("1980-03-01")),
                ("min_children", json!(null)),
            ]),
            GENEROUS,
        )
        .await
        .expect("explicit null for an optional parameter");
    assert_eq!(rows.rows.len(), 1);
    assert_eq!(rows.rows[0][0], json!("D000002"));
}

#[tokio::test]
async fn injection_strings_are_only_ever_literals() {
    let fx = Fixture::new();
    let catalog = fx.catalog(RESIDENTS).await;
    let rows = catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!("' OR 1=1 --"))]),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert_eq!(
        rows.rows.len(),
        1,
        "only the row whose id is that literal: {rows:?}"
    );
    assert_eq!(rows.rows[0][1], json!("Literal Quote"));
    for attack in [
        "D000001; DROP TABLE residents",
        "D000001' ; DROP TABLE residents; --",
        "x' UNION SELECT name, birth_date, address, household FROM residents --",
        "D000001\u{2019} OR \u{2018}1\u{2019}=\u{2018}1",
        "D\u{FF10}\u{FF10}\u{FF10}\u{FF10}\u{FF10}1",
        "\u{0414}000001",
    ] {
        let rows = resident(&catalog, attack).await;
        assert!(rows.rows.is_empty(), "{attack:?} matched {rows:?}");
    }
    assert_eq!(fx.count("residents"), 4, "the table is intact");
}

#[tokio::test]
async fn bad_parameters_name_the_parameter() {
    let fx = Fixture::new();
    let residents = RESIDENTS.replacen(
        "name = \"national_id\"\ntype = \"string\"\n",
        "name = \"national_id\"\ntype = \"string\"\npattern = \"D[0-9]{6}\"\n",
        1,
    );
    let catalog = fx.catalog(&format!("{residents}\n{TYPED}")).await;
    /// (dataset, parameters, the parameter named in the error, text the problem contains)
    type Case<'a> = (&'a str, Vec<(&'a str, Value)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "residents",
            vec![],
            "national_id",
            "is required but missing",
        ),
        (
            "residents",
            vec![("national_id", json!(null))],
            "national_id",
            "is required but null",
        ),
        (
            "residents",
            vec![("national_id", json!(1))],
            "national_id",
            "must be a string, not an integer",
        ),
        (
            "residents",
            vec![("national_id", json!("D00001"))],
            "national_id",
            "does not match the pattern D[0-9]{6}",
        ),
        (
            "residents",
            vec![("national_id", json!("xD000001"))],
            "national_id",
            "does not match the pattern",
        ),
        (
            "residents",
            vec![("national_id", json!("D000001")), ("sql", json!("1"))],
            "sql",
            "has no such parameter",
        ),
        (
            "residents",
            vec![("national_id", json!("D".repeat(257)))],
            "national_id",
            "is 257 characters long (at most 256)",
        ),
        (
            "residents",
            vec![("national_id", json!("D000001\n"))],
            "national_id",
            "control characters",
        ),
        (
            "typed",
            vec![
                ("household", json!("H9")),
                ("born_after", json!("2000-01-01")),
            ],
            "household",
            "must be one of: H1, H2, H3",
        ),
        (
            "typed",
            vec![
                ("household", json!("H1")),
                ("born_after", json!("2023-02-29")),
            ],
            "born_after",
            "calendar date",
        ),
        (
            "typed",
            vec![
                ("household", json!("H1")),
                ("born_after", json!("2000-01-01")),
                ("min_children", json!(21)),
            ],
            "min_children",
            "21 is out of range (must be between 0 and 20)",
        ),
        (
            "typed",
            vec![
                ("household", json!("H1")),
                ("born_after", json!("2000-01-01")),
                ("min_children", json!("3")),
            ],
            "min_children",
            "must be an integer between 0 and 20, not a string",
        ),
        (
            "typed",
            vec![
                ("household", json!("H1")),
                ("born_after", json!("2000-01-01")),
                ("min_children", json!(1.5)),
            ],
            "min_children",
            "not a number with a fraction",
        ),
    ];
    for (dataset, ps, name, needle) in cases {
        let err = catalog
            .fetch(dataset, &params(&ps), GENEROUS)
            .await
            .expect_err("bad parameter");
        assert_eq!(err.code(), "bad-parameter");
        match &err {
            FetchError::BadParameter { name: n, problem } => {
                assert_eq!(n, name, "{err}");
                assert!(problem.contains(needle), "{err} should contain {needle:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let err = catalog
        .fetch("nope", &BTreeMap::new(), GENEROUS)
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), "unknown-dataset");
    assert_eq!(err.to_string(), "unknown dataset \"nope\"");
}

const SERIES: &str = r#"
[[dataset]]
name = "series"
adapter = "sqlite"
database = "civil.sqlite"
query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :upto) SELECT x FROM c"
subject = "upto"
max_rows = 1000
timeout_ms = 10000

[[dataset.param]]
name = "upto"
type = "integer"

[[dataset.field]]
name = "x"
type = "integer"
classification = "public"

[[dataset]]
name = "counting"
adapter = "sqlite"
database = "civil.sqlite"
query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :upto) SELECT count(*) AS n FROM c"
subject = "upto"
timeout_ms = 20000

[[dataset.param]]
name = "upto"
type = "integer"

[[dataset.field]]
name = "n"
type = "integer"
classification = "public"

[[dataset]]
name = "forever"
adapter = "sqlite"
database = "civil.sqlite"
query = "WITH RECURSIVE c(x) AS (SELECT :start UNION ALL SELECT x + 1 FROM c) SELECT max(x) AS m FROM c"
subject = "start"
timeout_ms = 300
pool_size = 1

[[dataset.param]]
name = "start"
type = "integer"

[[dataset.field]]
name = "m"
type = "integer"
classification = "public"
"#;

#[tokio::test]
async fn row_limit_is_an_error_counted_while_reading() {
    let fx = Fixture::new();
    let catalog = fx.catalog(SERIES).await;
    let exactly = catalog
        .fetch("series", &params(&[("upto", json!(1000))]), GENEROUS)
        .await
        .expect("exactly max_rows is fine");
    assert_eq!(exactly.rows.len(), 1000);
    assert_eq!(exactly.rows[999], vec![json!(1000)]);

    // A query that would yield ten billion rows stops at row 1001.
    let started = Instant::now();
    let err = catalog
        .fetch(
            "series",
            &params(&[("upto", json!(10_000_000_000_i64))]),
            GENEROUS,
        )
        .await
        .expect_err("too many");
    assert_eq!(err, FetchError::TooManyRows { limit: 1000 });
    assert_eq!(err.code(), "too-many-rows");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // The caller's limit applies when it is stricter than the dataset's.
    let err = catalog
        .fetch(
            "series",
            &params(&[("upto", json!(11))]),
            Limits {
                max_rows: 10,
                timeout: Duration::from_secs(5),
            },
        )
        .await
        .expect_err("caller's limit");
    assert_eq!(err, FetchError::TooManyRows { limit: 10 });
}

#[tokio::test]
async fn deadline_interrupts_a_query_that_would_run_for_minutes_and_the_pool_recovers() {
    let fx = Fixture::new();
    let catalog = fx.catalog(SERIES).await;
    let started = Instant::now();
    let err = catalog
        .fetch("forever", &params(&[("start", json!(1))]), GENEROUS)
        .await
        .expect_err("deadline");
    let elapsed = started.elapsed();
    assert_eq!(err.code(), "timeout");
    assert_eq!(
        err,
        FetchError::Timeout {
            after: Duration::from_millis(300)
        }
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );

    // "forever" has pool_size = 1: the checks below need the very connection that was interrupted.
    let rows = catalog
        .fetch("series", &params(&[("upto", json!(3))]), GENEROUS)
        .await
        .expect("other dataset still works");
    assert_eq!(rows.rows.len(), 3);
    let err = catalog
        .fetch(
            "forever",
            &params(&[("start", json!(1))]),
            Limits {
                max_rows: 10,
                timeout: Duration::from_millis(100),
            },
        )
        .await
        .expect_err("caller's stricter deadline");
    assert_eq!(
        err,
        FetchError::Timeout {
            after: Duration::from_millis(100)
        }
    );
    assert!(
        catalog
            .check("forever", Duration::from_secs(5))
            .await
            .is_ok(),
        "connection usable after interrupt"
    );
}

/// Quick lookups run on the async worker itself; one slower than the inline budget must move to the
/// blocking pool and still answer, without holding up the other tasks of a single-threaded runtime.
#[tokio::test]
async fn a_query_slower_than_the_inline_budget_moves_to_the_blocking_pool() {
    let fx = Fixture::new();
    let catalog = fx.catalog(SERIES).await;
    let ticking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ticker = tokio::spawn({
        let ticking = ticking.clone();
        async move {
            let mut longest = Duration::ZERO;
            let mut ticks = 0u32;
            let mut last = Instant::now();
            while ticking.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                longest = longest.max(last.elapsed());
                last = Instant::now();
                ticks += 1;
            }
            (ticks, longest)
        }
    });
    tokio::task::yield_now().await;
    let started = Instant::now();
    let rows = catalog
        .fetch("counting", &params(&[("upto", json!(2_000_000))]), GENEROUS)
        .await
        .expect("a slow query still answers");
    let took = started.elapsed();
    ticking.store(false, std::sync::atomic::Ordering::Relaxed);
    let (ticks, longest) = ticker.await.unwrap();
    assert_eq!(rows.rows, vec![vec![json!(2_000_000)]]);
    assert!(
        took > Duration::from_millis(20),
        "the query is meant to be slow: {took:?}"
    );
    // Had the query run inline, the only worker would have been blocked for all of `took`.
    assert!(
        ticks > 5,
        "the runtime kept running other tasks: {ticks} ticks in {took:?}"
    );
    assert!(longest < took / 2, "longest stall {longest:?} of {took:?}");

    // A quick lookup on the same dataset afterwards still answers (the connection went back).
    let rows = catalog
        .fetch("counting", &params(&[("upto", json!(3))]), GENEROUS)
        .await
        .expect("quick");
    assert_eq!(rows.rows, vec![vec![json!(3)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_share_a_small_pool() {
    let fx = Fixture::new();
    let catalog = std::sync::Arc::new(
        fx.catalog(&RESIDENTS.replace("max_rows = 100", "max_rows = 100\npool_size = 2"))
            .await,
    );
    let ids = ["D000001", "D000002", "D000003", "D999999"];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let id = ids[i % ids.len()];
        let catalog = std::sync::Arc::clone(&catalog);
        tasks.spawn(async move {
            let rows = catalog
                .fetch(
                    "residents",
                    &params(&[("national_id", json!(id))]),
                    GENEROUS,
                )
                .await
                .expect("fetch");
            (id, rows.rows.len())
        });
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (id, n) = joined.expect("task");
        assert_eq!(n, usize::from(id != "D999999"), "{id}");
        done += 1;
    }
    assert_eq!(done, 40);
}

#[tokio::test]
async fn values_that_do_not_fit_the_declared_type_and_runtime_errors_are_query_failed() {
    let fx = Fixture::new();
    let catalog = fx
        .catalog(&RESIDENTS.replace(
            "name = \"household\"\ntype = \"string\"",
            "name = \"household\"\ntype = \"integer\"",
        ))
        .await;
    let err = catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!("D000001"))]),
            GENEROUS,
        )
        .await
        .expect_err("text in an integer field");
    assert_eq!(err, FetchError::QueryFailed);

    let fx = Fixture::new();
    let catalog = fx
        .catalog(
            r#"
[[dataset]]
name = "overflow"
adapter = "sqlite"
database = "civil.sqlite"
query = "SELECT abs(:n) AS v"
subject = "n"
[[dataset.param]]
name = "n"
type = "integer"
[[dataset.field]]
name = "v"
type = "integer"
classification = "public"
"#,
        )
        .await;
    let err = catalog
        .fetch("overflow", &params(&[("n", json!(i64::MIN))]), GENEROUS)
        .await
        .expect_err("integer overflow at run time");
    assert_eq!(err.code(), "query-failed");
    let shown = err.to_string();
    assert!(
        !shown.contains("abs")
            && !shown.contains("overflow")
            && !shown.contains(fx.path().to_str().unwrap_or("/")),
        "{shown}"
    );
    assert_eq!(
        catalog
            .fetch("overflow", &params(&[("n", json!(-5))]), GENEROUS)
            .await
            .expect("fine")
            .rows,
        vec![vec![json!(5)]]
    );
}

#[tokio::test]
async fn bad_datasets_files_say_file_line_column_and_what_to_do() {
    let fx = Fixture::new();
    let file = fx.path().join("datasets.toml");
    let file = file.display();
    let cases: Vec<(String, String)> = vec![
        (
            RESIDENTS.replace("civil.sqlite", "missing.sqlite"),
            format!("{file}:5:12: database file "),
        ),
        (
            RESIDENTS.replace("name = \"household\"", "name = \"houshold\""),
            format!("{file}:31:8: field \"houshold\" is not a column of the query (its columns: name, birth_date, address, household;"),
        ),
        (
            RESIDENTS.replace("SELECT name,", "SELEC name,"),
            format!("{file}:6:9: query does not compile:"),
        ),
        (
            RESIDENTS.replace(":national_id\"", ":national_id; DELETE FROM residents\""),
            format!("{file}:6:9: query must be exactly one statement"),
        ),
        (
            RESIDENTS.replace("SELECT name, birth_date, address, household FROM residents WHERE", "SELECT name, birth_date, address, household, national_id FROM residents WHERE"),
            format!("{file}:6:9: the query yields column \"national_id\" but no field declares it"),
        ),
        (
            RESIDENTS.replace("max_rows = 100", "max_row = 100"),
            format!("{file}:8:1: unknown field \"max_row\" (did you mean \"max_rows\"?)"),
        ),
        (
            RESIDENTS.replace("type = \"date\"", "type = \"datum\""),
            format!("{file}:27:8: unknown value \"datum\" (did you mean \"date\"?)"),
        ),
        ("[[dataset]\n".to_owned(), format!("{file}:1:")),
    ];
    for (text, want) in cases {
        let e = fx.open_err(&text).await;
        assert!(e.starts_with(&want), "got:  {e}\nwant: {want}...");
        assert!(e.ends_with(')'), "says what to do: {e}");
    }
    // A statement that writes is refused even though the connection is read-only anyway.
    let e = fx
        .open_err(&RESIDENTS.replace(
            "SELECT name, birth_date, address, household FROM residents WHERE national_id = :national_id",
            "UPDATE residents SET name = 'x' WHERE national_id = :national_id RETURNING name, birth_date, address, household",
        ))
        .await;
    assert!(e.contains(":6:9: query would modify the database"), "{e}");
    assert_eq!(fx.count("residents"), 4);
    let missing = Catalog::open(&fx.path().join("nope.toml"))
        .await
        .expect_err("missing file");
    assert!(
        missing
            .to_string()
            .contains("cannot read the datasets file"),
        "{missing}"
    );
}

/// The demo's sample files open against databases built from the CREATE TABLE in their comments.
#[tokio::test]
async fn sample_datasets_files_open_and_fetch() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/samples");
    for (dept, dataset, db, insert, ps, want) in [
        (
            "civil-registry",
            "residents",
            "civil-registry.sqlite",
            "INSERT INTO residents VALUES ('D000042', 'Ada', '1990-05-17', 'Elm 3', 'H42')",
            vec![("national_id", json!("D000042"))],
            vec![
                json!("Ada"),
                json!("1990-05-17"),
                json!("Elm 3"),
                json!("H42"),
            ],
        ),
        (
            "tax-office",
            "income",
            "tax-office.sqlite",
            "INSERT INTO income VALUES ('D000042', 2023, 50000, 12000)",
            vec![("national_id", json!("D000042")), ("year", json!(2023))],
            vec![json!("D000042"), json!(2023), json!(50000), json!(12000)],
        ),
        (
            "social-welfare",
            "benefits",
            "social-welfare.sqlite",
            "INSERT INTO benefits VALUES ('D000042', 'housing', 300, '2022-01-01')",
            vec![("national_id", json!("D000042"))],
            vec![json!("housing"), json!(300), json!("2022-01-01")],
        ),
    ] {
        let text = std::fs::read_to_string(samples.join(dept).join("datasets.toml"))
            .expect("sample exists");
        let create: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# CREATE TABLE"))
            .map(|rest| format!("CREATE TABLE{rest}"))
            .collect();
        assert!(!create.is_empty(), "{dept} documents its CREATE TABLE");
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join(db)).expect("create");
        conn.execute_batch(&format!("{create}; {insert};"))
            .expect("schema from the comment");
        drop(conn);
        let file = dir.path().join("datasets.toml");
        std::fs::write(&file, &text).expect("copy sample");
        let catalog = match Catalog::open(&file).await {
            Ok(c) => c,
            Err(e) => panic!("{dept}: {e}"),
        };
        let rows = catalog
            .fetch(dataset, &params(&ps), GENEROUS)
            .await
            .expect("fetch");
        assert_eq!(rows.rows, vec![want], "{dept}");
        assert_eq!(
            catalog.dataset(dataset).expect("dataset").subject_param,
            "national_id"
        );
    }
}

#[tokio::test]
async fn a_wal_database_is_read_while_its_own_writer_holds_a_transaction_and_sees_each_commit() {
    let fx = Fixture::new();
    let db = fx.path().join("civil.sqlite");
    let writer = Connection::open(&db).expect("open writer");
    let mode: String = writer
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("switch to WAL");
    assert_eq!(mode, "wal");
    let catalog = fx.catalog(RESIDENTS).await;
    let fetch = |id: &'static str| {
        let catalog = &catalog;
        async move {
            let started = Instant::now();
            let rows = resident(catalog, id).await;
            (rows.rows.len(), started.elapsed())
        }
    };

    // The department's application is in the middle of writing: the gateway still reads at once,
    // and sees what was committed before, not the write in progress.
    writer.execute_batch("BEGIN IMMEDIATE; INSERT INTO residents VALUES ('D000004', 'New Person', '2020-02-02', 'Pikk 4', 'H4', 0, 0, 1);")
        .expect("write without committing");
    let (found, took) = fetch("D000001").await;
    assert_eq!(found, 1);
    assert!(
        took < GENEROUS.timeout / 2,
        "a read waited {took:?} on the writer's transaction"
    );
    assert_eq!(fetch("D000004").await.0, 0, "an uncommitted row was read");

    writer.execute_batch("COMMIT").expect("commit");
    assert_eq!(fetch("D000004").await.0, 1, "the committed row is not seen");
    assert_eq!(fx.count("residents"), 5);
}
