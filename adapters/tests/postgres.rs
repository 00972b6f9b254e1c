//! The postgres adapter against the PostgreSQL server on this machine (127.0.0.1:5432, trust auth,
//! database `test`). Each test creates its own uniquely named schema and drops it afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use causeway_adapters::{Catalog, FetchError, Limits};
use serde_json::json;
use tokio_postgres::{Client, NoTls};

mod support;
use support::{params, resident, GENEROUS};

const HOST: &str = "127.0.0.1";
const USER: &str = "postgres";
const DB: &str = "test";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A schema of our own, dropped (with everything in it) when the test ends, even on panic.
struct Schema {
    name: String,
    admin: Client,
    dir: tempfile::TempDir,
}

async fn admin() -> Client {
    let (client, connection) = tokio_postgres::connect(&format!("host={HOST} user={USER} dbname={DB}"), NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL must run on {HOST}:5432 (start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): {e}")
        });
    tokio::spawn(connection);
    client
}

impl Schema {
    async fn new(setup: &str) -> Schema {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let name = format!(
            "causeway_pg_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let admin = admin().await;
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA {name}; SET search_path TO {name}; {setup}"
            ))
            .await
            .expect("schema setup");
        Schema {
            name,
            admin,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A datasets file for one postgres dataset; `QUERY` may use `S.` for this schema.
    fn datasets(&self, body: &str) -> PathBuf {
        let text = body.replace("S.", &format!("{}.", self.name)).replace(
            "adapter = \"postgres\"",
            &format!(
                "adapter = \"postgres\"\nhost = \"{HOST}\"\nuser = \"{USER}\"\ndatabase = \"{DB}\""
            ),
        );
        let path = self.dir.path().join("datasets.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    async fn catalog(&self, body: &str) -> Catalog {
        match Catalog::open(&self.datasets(body)).await {
            Ok(c) => c,
            Err(e) => panic!("catalog should open: {e}"),
        }
    }

    async fn count(&self, table: &str) -> i64 {
        self.admin
            .query_one(&format!("SELECT count(*) FROM {}.{table}", self.name), &[])
            .await
            .expect("count")
            .get(0)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the cleanup on a thread with its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let admin = admin().await;
                    let _ = admin
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                });
            }
        });
        let _ = done.join();
    }
}

const SETUP: &str = "
CREATE TABLE residents (national_id text PRIMARY KEY, name text, birth_date date, address varchar(200),
  household char(3), children int4, income numeric(12,2), verified bool, registered timestamptz, ref uuid);
INSERT INTO residents VALUES
 ('D000001', 'O''Brien \"Bob\"; DROP TABLE x --', '1980-02-29', NULL, 'H1', 2, 1234.50, true, '2020-05-01 12:30:00+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
 ('D000002', 'Zoë Ångström 李小龍 🚀', '2001-12-31', 'Rue de l''Église 5', 'H1', NULL, NULL, false, NULL, NULL),
 ('D000003', 'Plain Person', '1999-01-01', 'Main St 1', 'H2', 0, -0.01, true, '1999-12-31 23:59:59.5+00', NULL),
 (''' OR 1=1 --', 'Literal Quote', '1970-01-01', 'Nowhere', 'H3', 0, 0, false, NULL, NULL);
CREATE SEQUENCE counter;
";

const RESIDENTS: &str = r#"
[[dataset]]
name = "residents"
adapter = "postgres"
query = "SELECT name, birth_date, address, household, children, income, verified, registered, ref FROM S.residents WHERE national_id = :national_id"
subject = "national_id"
max_rows = 100
timeout_ms = 5000

[[dataset.param]]
name = "national_id"
type = "string"

[[dataset.field]]
name = "name"
type = "string"
classification = "personal"
[[dataset.field]]
name = "birth_date"
type = "date"
classification = "personal"
[[dataset.field]]
name = "address"
type = "string"
classification = "personal"
[[dataset.field]]
name = "household"
type = "string"
classification = "internal"
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
name = "registered"
type = "datetime"
classification = "internal"
[[dataset.field]]
name = "ref"
type = "string"
classification = "internal"
"#;

#[tokio::test]
async fn typed_values_round_trip_with_quotes_unicode_and_nulls() {
    let s = Schema::new(SETUP).await;
    let catalog = s.catalog(RESIDENTS).await;
    let rows = resident(&catalog, "D000001").await;
    assert_eq!(
        rows.fields,
        vec![
            "name",
            "birth_date",
            "address",
            "household",
            "children",
            "income",
            "verified",
            "registered",
            "ref"
        ]
    );
    assert_eq!(
        rows.rows,
        vec![vec![
            json!("O'Brien \"Bob\"; DROP TABLE x --"),
            json!("1980-02-29"),
            json!(null),
            json!("H1 "),
            json!(2),
            json!(1234.5),
            json!(true),
            json!("2020-05-01T12:30:00Z"),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ]]
    );
    let rows = resident(&catalog, "D000002").await;
    assert_eq!(rows.rows[0][0], json!("Zoë Ångström 李小龍 🚀"));
    assert_eq!(rows.rows[0][2], json!("Rue de l'Église 5"));
    assert_eq!(
        &rows.rows[0][4..],
        &[
            json!(null),
            json!(null),
            json!(false),
            json!(null),
            json!(null)
        ]
    );
    let rows = resident(&catalog, "D000003").await;
    assert_eq!(rows.rows[0][5], json!(-0.01));
    assert_eq!(rows.rows[0][7], json!("1999-12-31T23:59:59.500000Z"));
}

#[tokio::test]
async fn integer_date_and_enum_parameters_bind_to_their_column_types() {
    let s = Schema::new(SETUP).await;
    let catalog = s
        .catalog(
            r#"
[[dataset]]
name = "households"
adapter = "postgres"
query = """
SELECT national_id, children FROM S.residents
WHERE household = :household AND birth_date >= :born_after AND children >= :min_children
  AND (:max_children::int8 IS NULL OR children <= :max_children)
ORDER BY national_id"""
subject = "household"
[[dataset.param]]
name = "household"
type = "enum"
values = ["H1 ", "H2 "]
[[dataset.param]]
name = "born_after"
type = "date"
[[dataset.param]]
name = "min_children"
type = "integer"
[[dataset.param]]
name = "max_children"
type = "integer"
optional = true
[[dataset.field]]
name = "national_id"
type = "string"
classification = "personal"
[[dataset.field]]
name = "children"
type = "integer"
classification = "personal"
"#,
        )
        .await;
    let rows = catalog
        .fetch(
            "households",
            &params(&[
                ("household", json!("H1 ")),
                ("born_after", json!("1980-02-29")),
                ("min_children", json!(0)),
            ]),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert_eq!(rows.rows, vec![vec![json!("D000001"), json!(2)]]);
    let rows = catalog
        .fetch(
            "households",
            &params(&[
                ("household", json!("H1 ")),
                ("born_after", json!("1900-01-01")),
                ("min_children", json!(0)),
                ("max_children", json!(1)),
            ]),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert!(rows.rows.is_empty(), "{rows:?}");
    // An int4 column compared with a value beyond int4 fails cleanly, not with a panic.
    let err = catalog
        .fetch(
            "households",
            &params(&[
                ("household", json!("H2 ")),
                ("born_after", json!("1900-01-01")),
                ("min_children", json!(i64::MAX)),
            ]),
            GENEROUS,
        )
        .await
        .expect_err("out of int4 range");
    assert_eq!(err.code(), "query-failed");
}

#[tokio::test]
async fn injection_strings_are_only_ever_literals() {
    let s = Schema::new(SETUP).await;
    let catalog = s.catalog(RESIDENTS).await;
    let rows = catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!("' OR 1=1 --"))]),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert_eq!(rows.rows.len(), 1);
    assert_eq!(rows.rows[0][0], json!("Literal Quote"));
    for attack in [
        "D000001; DROP TABLE residents",
        "D000001'; DROP TABLE residents; --",
        "x' UNION SELECT name FROM residents --",
        "D000001\u{2019} OR \u{2018}1\u{2019}=\u{2018}1",
        "D\u{FF10}\u{FF10}\u{FF10}\u{FF10}\u{FF10}1",
        "\u{0414}000001",
        "$1",
        "D000001\\",
    ] {
        let rows = catalog
            .fetch(
                "residents",
                &params(&[("national_id", json!(attack))]),
                GENEROUS,
            )
            .await
            .expect("fetch");
        assert!(rows.rows.is_empty(), "{attack:?} matched {rows:?}");
    }
    assert_eq!(s.count("residents").await, 4, "the table is intact");
}

fn series(schema: &Schema, timeout_ms: u64, pool_size: usize) -> String {
    format!(
        r#"
[[dataset]]
name = "series"
adapter = "postgres"
query = "SELECT generate_series(1, :n::int8) AS x /* {marker} series */"
subject = "n"
max_rows = 1000
timeout_ms = {timeout_ms}
pool_size = {pool_size}
[[dataset.param]]
name = "n"
type = "integer"
[[dataset.field]]
name = "x"
type = "integer"
classification = "public"

[[dataset]]
name = "sleep"
adapter = "postgres"
query = "SELECT 1 AS x FROM pg_sleep(:seconds::int4) /* {marker} sleep */"
subject = "seconds"
timeout_ms = {timeout_ms}
pool_size = {pool_size}
[[dataset.param]]
name = "seconds"
type = "integer"
[[dataset.field]]
name = "x"
type = "integer"
classification = "public"
"#,
        marker = schema.name
    )
}

/// Backends currently running one of this schema's marked queries.
async fn active(schema: &Schema, what: &str) -> Vec<i32> {
    schema
        .admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
            &[&format!("%{} {what} */%", schema.name)],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The cancel goes out after the error is returned; wait (bounded) until the server has stopped.
async fn wait_until_idle(schema: &Schema, what: &str) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while !active(schema, what).await.is_empty() {
        assert!(
            Instant::now() < give_up,
            "the server still runs the {what} query: it was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn row_limit_stops_a_huge_result_and_the_connection_stays_usable() {
    let s = Schema::new("").await;
    let catalog = s.catalog(&series(&s, 20_000, 1)).await;
    let ok = catalog
        .fetch("series", &params(&[("n", json!(1000))]), GENEROUS)
        .await
        .expect("exactly the limit");
    assert_eq!(ok.rows.len(), 1000);
    let started = Instant::now();
    let err = catalog
        .fetch(
            "series",
            &params(&[("n", json!(100_000_000_000_i64))]),
            GENEROUS,
        )
        .await
        .expect_err("too many rows");
    assert_eq!(err, FetchError::TooManyRows { limit: 1000 });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    wait_until_idle(&s, "series").await;
    // pool_size = 1: this runs on the same connection, which must be back in sync.
    let ok = catalog
        .fetch("series", &params(&[("n", json!(3))]), GENEROUS)
        .await
        .expect("connection usable after the limit");
    assert_eq!(
        ok.rows,
        vec![vec![json!(1)], vec![json!(2)], vec![json!(3)]]
    );
}

#[tokio::test]
async fn deadline_cancels_pg_sleep_and_the_connection_stays_usable() {
    let s = Schema::new("").await;
    let catalog = s.catalog(&series(&s, 10_000, 1)).await;
    let started = Instant::now();
    let err = catalog
        .fetch(
            "sleep",
            &params(&[("seconds", json!(60))]),
            Limits {
                max_rows: 10,
                timeout: Duration::from_millis(300),
            },
        )
        .await
        .expect_err("deadline");
    let elapsed = started.elapsed();
    assert_eq!(
        err,
        FetchError::Timeout {
            after: Duration::from_millis(300)
        }
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    wait_until_idle(&s, "sleep").await;
    let ok = catalog
        .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
        .await
        .expect("usable afterwards");
    assert_eq!(ok.rows, vec![vec![json!(1)]]);
    assert!(catalog.check("sleep", Duration::from_secs(5)).await.is_ok());
}

#[tokio::test]
async fn a_terminated_backend_is_a_clean_error_and_the_next_request_succeeds() {
    let s = Schema::new("").await;
    let catalog = std::sync::Arc::new(s.catalog(&series(&s, 30_000, 2)).await);
    let running = {
        let catalog = std::sync::Arc::clone(&catalog);
        tokio::spawn(async move {
            catalog
                .fetch("sleep", &params(&[("seconds", json!(25))]), GENEROUS)
                .await
        })
    };
    // Wait until the query is running on the server (readiness, bounded), then kill its backend.
    let wait_until = Instant::now() + Duration::from_secs(10);
    let pids = loop {
        let pids = active(&s, "sleep").await;
        if !pids.is_empty() || Instant::now() > wait_until {
            break pids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        pids.len(),
        1,
        "the sleeping query shows up in pg_stat_activity"
    );
    s.admin
        .execute("SELECT pg_terminate_backend($1)", &[&pids[0]])
        .await
        .expect("terminate");
    let err = running.await.expect("task").expect_err("connection lost");
    assert_eq!(err, FetchError::Unavailable);
    assert_eq!(
        err.to_string(),
        "the data source is unavailable (try again later)"
    );
    for _ in 0..3 {
        let ok = catalog
            .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
            .await
            .expect("the next requests succeed on fresh connections");
        assert_eq!(ok.rows, vec![vec![json!(1)]]);
    }
}

#[tokio::test]
async fn sessions_are_read_only() {
    let s = Schema::new(SETUP).await;
    let catalog = s
        .catalog(
            r#"
[[dataset]]
name = "bump"
adapter = "postgres"
query = "SELECT nextval('S.counter') AS v WHERE :k::int8 > 0"
subject = "k"
[[dataset.param]]
name = "k"
type = "integer"
[[dataset.field]]
name = "v"
type = "integer"
classification = "public"
"#,
        )
        .await;
    let err = catalog
        .fetch("bump", &params(&[("k", json!(1))]), GENEROUS)
        .await
        .expect_err("writes are refused");
    assert_eq!(err.code(), "query-failed");
    let last: i64 = s
        .admin
        .query_one(&format!("SELECT last_value FROM {}.counter", s.name), &[])
        .await
        .expect("sequence")
        .get(0);
    let called: bool = s
        .admin
        .query_one(&format!("SELECT is_called FROM {}.counter", s.name), &[])
        .await
        .expect("sequence")
        .get(0);
    assert_eq!((last, called), (1, false), "nextval never ran");
}

#[tokio::test]
async fn definitions_are_checked_against_the_server_at_open() {
    let s = Schema::new(SETUP).await;
    let file = s.dir.path().join("datasets.toml");
    let file = file.display().to_string();
    let cases = [
        (RESIDENTS.replace("name = \"ref\"", "name = \"reff\""), format!("{file}:50:8: field \"reff\" is not a column of the query")),
        (
            RESIDENTS.replace("name = \"children\"\ntype = \"integer\"", "name = \"children\"\ntype = \"date\""),
            format!("{file}:34:8: field \"children\" is declared date but the query yields PostgreSQL type int4"),
        ),
        (
            RESIDENTS.replace("national_id = :national_id", "children = :national_id"),
            format!("{file}:8:9: parameter \"national_id\" is declared string but PostgreSQL expects int4 there (cast the placeholder"),
        ),
        (RESIDENTS.replace("FROM S.residents", "FROM S.resident"), format!("{file}:8:9: PostgreSQL cannot prepare the query: relation")),
    ];
    for (text, want) in cases {
        let e = Catalog::open(&s.datasets(&text))
            .await
            .expect_err("bad definition")
            .to_string();
        assert!(e.starts_with(&want), "got:  {e}\nwant: {want}...");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_not_ready_and_fetches_are_unavailable() {
    let s = Schema::new("").await;
    let text = RESIDENTS.replace("adapter = \"postgres\"", "adapter = \"postgres\"\nport = 1");
    let catalog = s.catalog(&text.replace("host = \"127.0.0.1\"\n", "")).await;
    assert_eq!(
        catalog.check("residents", Duration::from_secs(5)).await,
        Err(FetchError::Unavailable)
    );
    let err = catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!("D000001"))]),
            GENEROUS,
        )
        .await
        .expect_err("unreachable");
    assert_eq!(err, FetchError::Unavailable);
    assert!(!err.to_string().contains("127.0.0.1"));
}

#[tokio::test]
async fn secrets_come_from_the_environment_or_a_file() {
    let s = Schema::new(SETUP).await;
    let var = format!("CAUSEWAY_TEST_PG_PASSWORD_{}", s.name.to_uppercase());
    let text = RESIDENTS.replace(
        "adapter = \"postgres\"",
        &format!("adapter = \"postgres\"\npassword_env = \"{var}\""),
    );
    let e = Catalog::open(&s.datasets(&text))
        .await
        .expect_err("unset variable")
        .to_string();
    assert!(
        e.contains(&format!(":8:16: environment variable {var} is not set")),
        "{e}"
    );

    std::fs::write(
        s.dir.path().join("pg.password"),
        "not-needed-with-trust-auth\n",
    )
    .expect("write");
    let text = RESIDENTS.replace(
        "adapter = \"postgres\"",
        "adapter = \"postgres\"\npassword_file = \"pg.password\"",
    );
    let catalog = s.catalog(&text).await;
    let rows = catalog
        .fetch(
            "residents",
            &params(&[("national_id", json!("D000003"))]),
            GENEROUS,
        )
        .await
        .expect("fetch with a password file");
    assert_eq!(rows.rows.len(), 1);
    let text = RESIDENTS.replace(
        "adapter = \"postgres\"",
        "adapter = \"postgres\"\npassword_file = \"missing.password\"",
    );
    let e = Catalog::open(&s.datasets(&text))
        .await
        .expect_err("missing file")
        .to_string();
    assert!(e.contains(":8:17: cannot read secret file"), "{e}");
}

#[tokio::test]
async fn pooled_connections_terminated_while_idle_are_replaced_transparently() {
    let s = Schema::new("").await;
    let catalog = s.catalog(&series(&s, 10_000, 2)).await;
    let ok = catalog
        .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
        .await
        .expect("first fetch");
    assert_eq!(ok.rows, vec![vec![json!(1)]]);
    let killed: Vec<bool> = s
        .admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'causeway' AND query LIKE $1",
            &[&format!("%{} sleep */%", s.name)],
        )
        .await
        .expect("terminate")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !killed.is_empty() && killed.iter().all(|k| *k),
        "{killed:?}"
    );
    // Connections idle for more than a second are pinged before use (not a synchronization sleep:
    // this is the idle age the adapter checks).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let ok = catalog
            .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
            .await
            .expect("dead pooled connections are replaced");
        assert_eq!(ok.rows, vec![vec![json!(1)]]);
    }
}
