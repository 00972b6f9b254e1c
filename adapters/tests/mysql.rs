//! The mysql adapter against the MariaDB (MySQL-compatible) server on this machine
//! (127.0.0.1:3306, root, empty password). Each test creates its own uniquely named database and
//! drops it afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use causeway_adapters::{Catalog, FetchError, Limits};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde_json::json;

mod support;
use support::{params, resident, GENEROUS};

const HOST: &str = "127.0.0.1";
const USER: &str = "root";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

async fn admin(db: Option<&str>) -> Conn {
    let opts = OptsBuilder::default()
        .ip_or_hostname(HOST)
        .tcp_port(3306)
        .user(Some(USER))
        .db_name(db)
        .prefer_socket(false);
    Conn::new(opts).await.unwrap_or_else(|e| {
        panic!("MariaDB must run on {HOST}:3306 (start it: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd): {e}")
    })
}

/// A database of our own, dropped when the test ends, even on panic.
struct Database {
    name: String,
    admin: Conn,
    dir: tempfile::TempDir,
}

impl Database {
    async fn new(setup: &str) -> Database {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let name = format!(
            "causeway_my_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let mut root = admin(None).await;
        root.query_drop(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .expect("create database");
        drop(root);
        let mut admin = admin(Some(&name)).await;
        for statement in setup.split(";\n").filter(|s| !s.trim().is_empty()) {
            admin
                .query_drop(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        Database {
            name,
            admin,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn datasets(&self, body: &str) -> PathBuf {
        let text = body.replace(
            "adapter = \"mysql\"",
            &format!(
                "adapter = \"mysql\"\nhost = \"{HOST}\"\nuser = \"{USER}\"\ndatabase = \"{}\"",
                self.name
            ),
        );
        let path = self.dir.path().join("datasets.toml");
        std::fs::write(&path, text.replace("MARKER", &self.name)).expect("write");
        path
    }

    async fn catalog(&self, body: &str) -> Catalog {
        match Catalog::open(&self.datasets(body)).await {
            Ok(c) => c,
            Err(e) => panic!("catalog should open: {e}"),
        }
    }

    async fn count(&mut self, table: &str) -> i64 {
        self.admin
            .query_first::<i64, _>(format!("SELECT count(*) FROM {table}"))
            .await
            .expect("count")
            .expect("a row")
    }

    /// Ids of connections running one of this database's marked queries.
    async fn active(&mut self, what: &str) -> Vec<u64> {
        self.admin
            .exec::<u64, _, _>(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
                (format!("%{} {what} */%", self.name),),
            )
            .await
            .expect("processlist")
    }

    /// The kill goes out after the error is returned; wait (bounded) until the server has stopped.
    async fn wait_until_idle(&mut self, what: &str) {
        let give_up = Instant::now() + Duration::from_secs(5);
        while !self.active(what).await.is_empty() {
            assert!(
                Instant::now() < give_up,
                "the server still runs the {what} query: it was not killed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let mut root = admin(None).await;
                    let _ = root
                        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                        .await;
                    let _ = root.disconnect().await;
                });
            }
        });
        let _ = done.join();
    }
}

const SETUP: &str = "
CREATE TABLE residents (national_id VARCHAR(40) PRIMARY KEY, name TEXT, birth_date DATE, address VARCHAR(200),
  household CHAR(3), children INT, income DECIMAL(12,2), verified BOOL, registered TIMESTAMP(6) NULL, updated DATETIME NULL);
INSERT INTO residents VALUES
 ('D000001', 'O''Brien \"Bob\"; DROP TABLE x --', '1980-02-29', NULL, 'H1', 2, 1234.50, true, '2020-05-01 12:30:00', '2021-01-02 03:04:05'),
 ('D000002', 'Zoë Ångström 李小龍 🚀', '2001-12-31', 'Rue de l\\'Église 5', 'H1', NULL, NULL, false, NULL, NULL),
 ('D000003', 'Plain Person', '1999-01-01', 'Main St 1', 'H2', 0, -0.01, true, '1999-12-31 23:59:59.5', NULL),
 ('\\' OR 1=1 --', 'Literal Quote', '1970-01-01', 'Nowhere', 'H3', 0, 0, false, NULL, NULL);
CREATE TABLE digits (d INT);
INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);
CREATE TABLE audit (n INT);
CREATE FUNCTION note() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO audit VALUES (1); RETURN 1; END
";

const RESIDENTS: &str = r#"
[[dataset]]
name = "residents"
adapter = "mysql"
query = "SELECT name, birth_date, address, household, children, income, verified, registered, updated FROM residents WHERE national_id = :national_id"
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
name = "updated"
type = "datetime"
classification = "internal"
"#;

#[tokio::test]
async fn typed_values_round_trip_with_quotes_unicode_and_nulls() {
    let db = Database::new(SETUP).await;
    let catalog = db.catalog(RESIDENTS).await;
    let rows = resident(&catalog, "D000001").await;
    assert_eq!(
        rows.rows,
        vec![vec![
            json!("O'Brien \"Bob\"; DROP TABLE x --"),
            json!("1980-02-29"),
            json!(null),
            json!("H1"),
            json!(2),
            json!(1234.5),
            json!(true),
            json!("2020-05-01T12:30:00Z"),
            json!("2021-01-02T03:04:05"),
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
async fn integer_date_and_enum_parameters_bind() {
    let db = Database::new(SETUP).await;
    let catalog = db
        .catalog(
            r#"
[[dataset]]
name = "households"
adapter = "mysql"
query = """
SELECT national_id, children FROM residents
WHERE household = :household AND birth_date >= :born_after AND children >= :min_children
  AND (:max_children IS NULL OR children <= :max_children)
ORDER BY national_id"""
subject = "household"
[[dataset.param]]
name = "household"
type = "enum"
values = ["H1", "H2"]
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
                ("household", json!("H1")),
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
                ("household", json!("H1")),
                ("born_after", json!("1900-01-01")),
                ("min_children", json!(0)),
                ("max_children", json!(1)),
            ]),
            GENEROUS,
        )
        .await
        .expect("fetch");
    assert!(rows.rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn injection_strings_are_only_ever_literals() {
    let mut db = Database::new(SETUP).await;
    let catalog = db.catalog(RESIDENTS).await;
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
        "D000001\\' OR 1=1 -- ",
        "x' UNION SELECT name FROM residents #",
        "D000001\u{2019} OR \u{2018}1\u{2019}=\u{2018}1",
        "D\u{FF10}\u{FF10}\u{FF10}\u{FF10}\u{FF10}1",
        "\u{0414}000001",
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
    assert_eq!(db.count("residents").await, 4, "the table is intact");
}

const SLOW: &str = r#"
[[dataset]]
name = "many"
adapter = "mysql"
query = "SELECT 1 AS x FROM digits a, digits b, digits c, digits d, digits e, digits f, digits g, digits h, digits i WHERE :n > 0 /* MARKER many */"
subject = "n"
max_rows = 1000
timeout_ms = 20000
pool_size = 1
[[dataset.param]]
name = "n"
type = "integer"
[[dataset.field]]
name = "x"
type = "integer"
classification = "public"

[[dataset]]
name = "sleep"
adapter = "mysql"
query = "SELECT SLEEP(:seconds) AS x /* MARKER sleep */"
subject = "seconds"
timeout_ms = 30000
pool_size = 1
[[dataset.param]]
name = "seconds"
type = "integer"
[[dataset.field]]
name = "x"
type = "integer"
classification = "public"
"#;

#[tokio::test]
async fn row_limit_stops_a_huge_result_and_the_connection_stays_usable() {
    let mut db = Database::new(SETUP).await;
    let catalog = db.catalog(SLOW).await;
    let started = Instant::now();
    let err = catalog
        .fetch("many", &params(&[("n", json!(1))]), GENEROUS)
        .await
        .expect_err("a billion rows");
    assert_eq!(err, FetchError::TooManyRows { limit: 1000 });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    db.wait_until_idle("many").await;
    let err = catalog
        .fetch(
            "many",
            &params(&[("n", json!(1))]),
            Limits {
                max_rows: 5,
                timeout: Duration::from_secs(10),
            },
        )
        .await
        .expect_err("same connection, usable again");
    assert_eq!(err, FetchError::TooManyRows { limit: 5 });
    db.wait_until_idle("many").await;
    let ok = catalog
        .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
        .await
        .expect("usable");
    assert_eq!(ok.rows, vec![vec![json!(0)]]);
}

#[tokio::test]
async fn deadline_kills_sleep_and_the_connection_stays_usable() {
    let mut db = Database::new(SETUP).await;
    let catalog = db.catalog(SLOW).await;
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
    db.wait_until_idle("sleep").await;
    let ok = catalog
        .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
        .await
        .expect("usable afterwards (pool_size = 1: the same connection)");
    assert_eq!(ok.rows, vec![vec![json!(0)]]);
    assert!(catalog.check("sleep", Duration::from_secs(5)).await.is_ok());
}

#[tokio::test]
async fn a_killed_connection_is_a_clean_error_and_the_next_request_succeeds() {
    let mut db = Database::new(SETUP).await;
    let catalog = std::sync::Arc::new(db.catalog(SLOW).await);
    let running = {
        let catalog = std::sync::Arc::clone(&catalog);
        tokio::spawn(async move {
            catalog
                .fetch("sleep", &params(&[("seconds", json!(25))]), GENEROUS)
                .await
        })
    };
    let wait_until = Instant::now() + Duration::from_secs(10);
    let ids = loop {
        let ids = db.active("sleep").await;
        if !ids.is_empty() || Instant::now() > wait_until {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        ids.len(),
        1,
        "the sleeping query shows up in the processlist"
    );
    db.admin
        .query_drop(format!("KILL CONNECTION {}", ids[0]))
        .await
        .expect("kill");
    let err = running.await.expect("task").expect_err("connection lost");
    assert_eq!(err, FetchError::Unavailable);
    for _ in 0..3 {
        let ok = catalog
            .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
            .await
            .expect("the next requests succeed on a fresh connection");
        assert_eq!(ok.rows, vec![vec![json!(0)]]);
    }
}

#[tokio::test]
async fn sessions_are_read_only() {
    let mut db = Database::new(SETUP).await;
    // MariaDB refuses the statement as soon as it is prepared in the read-only session.
    let e = Catalog::open(&db.datasets(
        r#"
[[dataset]]
name = "note"
adapter = "mysql"
query = "SELECT note() AS v FROM digits WHERE d = :d"
subject = "d"
[[dataset.param]]
name = "d"
type = "integer"
[[dataset.field]]
name = "v"
type = "integer"
classification = "public"
"#,
    ))
    .await
    .expect_err("a query that writes is refused")
    .to_string();
    assert!(e.contains(":8:9: the server cannot prepare the query: Cannot execute statement in a READ ONLY transaction"), "{e}");
    assert_eq!(db.count("audit").await, 0, "nothing was written");
}

#[tokio::test]
async fn definitions_are_checked_against_the_server_at_open() {
    let db = Database::new(SETUP).await;
    let file = db.dir.path().join("datasets.toml").display().to_string();
    let cases = [
        (RESIDENTS.replace("name = \"updated\"", "name = \"updatd\""), format!("{file}:50:8: field \"updatd\" is not a column of the query")),
        (
            RESIDENTS.replace("name = \"children\"\ntype = \"integer\"", "name = \"children\"\ntype = \"date\""),
            format!("{file}:34:8: field \"children\" is declared date but the query yields MySQL type MYSQL_TYPE_LONG"),
        ),
        (RESIDENTS.replace("FROM residents", "FROM resident"), format!("{file}:8:9: the server cannot prepare the query:")),
    ];
    for (text, want) in cases {
        let e = Catalog::open(&db.datasets(&text))
            .await
            .expect_err("bad definition")
            .to_string();
        assert!(e.starts_with(&want), "got:  {e}\nwant: {want}...");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_not_ready_and_fetches_are_unavailable() {
    let db = Database::new("").await;
    let text = RESIDENTS.replace("adapter = \"mysql\"", "adapter = \"mysql\"\nport = 1");
    let catalog = db.catalog(&text).await;
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
}

#[tokio::test]
async fn a_pooled_connection_killed_while_idle_is_replaced_transparently() {
    let mut db = Database::new(SETUP).await;
    let catalog = db.catalog(SLOW).await;
    let ok = catalog
        .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
        .await
        .expect("first fetch");
    assert_eq!(ok.rows, vec![vec![json!(0)]]);
    // The pool now holds one idle connection to our database (plus the one `many` opened at start).
    let idle: Vec<u64> = db
        .admin
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
            (db.name.clone(),),
        )
        .await
        .expect("processlist");
    assert!(!idle.is_empty(), "pooled connections are visible");
    for id in idle {
        db.admin
            .query_drop(format!("KILL CONNECTION {id}"))
            .await
            .expect("kill");
    }
    // Connections idle for more than a second are pinged before use (not a synchronization sleep:
    // this is the idle age the adapter checks).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ok = catalog
        .fetch("sleep", &params(&[("seconds", json!(0))]), GENEROUS)
        .await
        .expect("a dead idle connection is replaced before use");
    assert_eq!(ok.rows, vec![vec![json!(0)]]);
}
