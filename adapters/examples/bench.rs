//! Adapter overhead, measured against the raw driver on the same data:
//!
//! - added latency of `Catalog::fetch` over a direct driver call for a one-row lookup (median, p99);
//! - rows/s for a 10,000-row result with the row limit above it.
//!
//! ```text
//! cargo run --release -p causeway-adapters --example bench [-- ITERATIONS]
//! ```
//!
//! SQLite always runs; PostgreSQL (127.0.0.1:5432, user postgres, database test) and MariaDB/MySQL
//! (127.0.0.1:3306, root) run when reachable, each in a scratch schema/database dropped afterwards.
//! Numbers are printed, never asserted: this is not a test.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use causeway_adapters::{Catalog, Limits};
use serde_json::{json, Value};

const PEOPLE: usize = 10_000;
const LIMITS: Limits = Limits {
    max_rows: 20_000,
    timeout: Duration::from_secs(30),
};

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    println!(
        "causeway-adapters bench: {iterations} one-row lookups, 20 x {PEOPLE}-row scans per case\n"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>14} {:>14} {:>7}",
        "adapter",
        "raw p50 us",
        "adapter p50",
        "added p50",
        "added p99",
        "raw rows/s",
        "adapter rows/s",
        "ratio"
    );
    sqlite(iterations).await;
    match postgres(iterations).await {
        Ok(()) => {}
        Err(e) => println!("{:<10} skipped: {e}", "postgres"),
    }
    match mysql(iterations).await {
        Ok(()) => {}
        Err(e) => println!("{:<10} skipped: {e}", "mysql"),
    }
}

/// Latencies of `n` runs of `f`, sorted, after `n / 10` untimed warm-up runs.
async fn time<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    for i in 0..n / 10 {
        f(i).await;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        f(i).await;
        out.push(started.elapsed());
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(
    adapter: &str,
    raw: &[Duration],
    ours: &[Duration],
    raw_scan: &[Duration],
    our_scan: &[Duration],
) {
    let rate = |d: Duration| PEOPLE as f64 / d.as_secs_f64();
    let (raw_rate, our_rate) = (rate(pct(raw_scan, 0.5)), rate(pct(our_scan, 0.5)));
    println!(
        "{:<10} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>14.0} {:>14.0} {:>7.2}",
        adapter,
        us(pct(raw, 0.5)),
        us(pct(ours, 0.5)),
        us(pct(ours, 0.5)) - us(pct(raw, 0.5)),
        us(pct(ours, 0.99)) - us(pct(raw, 0.99)),
        raw_rate,
        our_rate,
        our_rate / raw_rate
    );
}

fn id(i: usize) -> String {
    format!("D{:06}", i % PEOPLE + 1)
}

fn lookup(i: usize) -> BTreeMap<String, Value> {
    [("national_id".to_owned(), json!(id(i)))].into()
}

fn scan() -> BTreeMap<String, Value> {
    [("min".to_owned(), json!(0))].into()
}

/// Two datasets over `people`: a one-row lookup and a full scan.
fn datasets(adapter_lines: &str, table: &str) -> String {
    format!(
        r#"
[[dataset]]
name = "lookup"
{adapter_lines}
query = "SELECT name, birth_date, address, household FROM {table} WHERE national_id = :national_id"
subject = "national_id"
max_rows = 20000
timeout_ms = 30000
[[dataset.param]]
name = "national_id"
type = "string"
pattern = "D[0-9]{{6}}"
{fields}
[[dataset]]
name = "scan"
{adapter_lines}
query = "SELECT name, birth_date, address, household FROM {table} WHERE id > :min"
subject = "min"
max_rows = 20000
timeout_ms = 30000
[[dataset.param]]
name = "min"
type = "integer"
{fields}
"#,
        fields = r#"
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
classification = "personal"
"#
    )
}

async fn open(dir: &tempfile::TempDir, text: &str) -> Catalog {
    let path = dir.path().join("datasets.toml");
    std::fs::write(&path, text).expect("write datasets file");
    Catalog::open(&path).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn sqlite(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("people.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("create");
    conn.execute_batch(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, national_id TEXT UNIQUE, name TEXT, birth_date TEXT, address TEXT, household TEXT);",
    )
    .expect("schema");
    {
        let mut insert = conn
            .prepare("INSERT INTO people VALUES (?1, ?2, ?3, '1980-01-01', ?4, ?5)")
            .expect("prepare");
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..PEOPLE {
            insert
                .execute(rusqlite::params![
                    i as i64 + 1,
                    id(i),
                    format!("Person {i}"),
                    format!("Street {i}"),
                    format!("H{}", i / 3)
                ])
                .expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    drop(conn);
    let catalog = open(
        &dir,
        &datasets(
            "adapter = \"sqlite\"\ndatabase = \"people.sqlite\"",
            "people",
        ),
    )
    .await;
    let raw =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let lookup_sql =
        "SELECT name, birth_date, address, household FROM people WHERE national_id = ?1";
    let scan_sql = "SELECT name, birth_date, address, household FROM people WHERE id > ?1";
    let raw_rows = |sql: &str, p: rusqlite::types::Value| -> usize {
        let mut stmt = raw.prepare_cached(sql).expect("prepare");
        let mut rows = stmt.query([p]).expect("query");
        let mut out = Vec::new();
        while let Some(r) = rows.next().expect("row") {
            let v: (String, String, String, String) = (
                r.get(0).expect("c"),
                r.get(1).expect("c"),
                r.get(2).expect("c"),
                r.get(3).expect("c"),
            );
            out.push(v);
        }
        out.len()
    };
    // The adapter's fair comparison includes the hop to the blocking pool the raw call does not make.
    let raw_lookup = time(n, |i| {
        let r = raw_rows(lookup_sql, rusqlite::types::Value::Text(id(i)));
        async move { assert_eq!(r, 1) }
    })
    .await;
    let ours = time(n, |i| {
        let catalog = &catalog;
        async move {
            assert_eq!(
                catalog
                    .fetch("lookup", &lookup(i), LIMITS)
                    .await
                    .expect("fetch")
                    .rows
                    .len(),
                1
            )
        }
    })
    .await;
    let raw_scan = time(20, |_| {
        let r = raw_rows(scan_sql, rusqlite::types::Value::Integer(0));
        async move { assert_eq!(r, PEOPLE) }
    })
    .await;
    let our_scan = time(20, |_| {
        let catalog = &catalog;
        async move {
            assert_eq!(
                catalog
                    .fetch("scan", &scan(), LIMITS)
                    .await
                    .expect("fetch")
                    .rows
                    .len(),
                PEOPLE
            )
        }
    })
    .await;
    report("sqlite", &raw_lookup, &ours, &raw_scan, &our_scan);
}

async fn postgres(n: usize) -> Result<(), String> {
    use tokio_postgres::NoTls;
    let (client, connection) =
        tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=test", NoTls)
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let schema = format!("causeway_bench_{}", std::process::id());
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.people (id int8 PRIMARY KEY, national_id text UNIQUE, name text, birth_date date, address text, household text);
             INSERT INTO {schema}.people SELECT g, 'D' || lpad(g::text, 6, '0'), 'Person ' || g, '1980-01-01', 'Street ' || g, 'H' || (g / 3)
               FROM generate_series(1, {PEOPLE}) g;
             ANALYZE {schema}.people;"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let catalog = open(
        &dir,
        &datasets("adapter = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\ndatabase = \"test\"", &format!("{schema}.people")),
    )
    .await;
    let lookup_stmt = client
        .prepare(&format!("SELECT name, birth_date, address, household FROM {schema}.people WHERE national_id = $1"))
        .await
        .map_err(|e| e.to_string())?;
    let scan_stmt = client
        .prepare(&format!(
            "SELECT name, birth_date, address, household FROM {schema}.people WHERE id > $1"
        ))
        .await
        .map_err(|e| e.to_string())?;
    // Raw: the typed rows a caller would decode (dates as text to keep the decoding comparable).
    let decode = |rows: Vec<tokio_postgres::Row>| -> usize {
        rows.iter()
            .map(|r| {
                let a: String = r.get(0);
                let c: String = r.get(2);
                let d: String = r.get(3);
                a.len() + c.len() + d.len()
            })
            .filter(|n| *n > 0)
            .count()
    };
    let raw_lookup = time(n, |i| {
        let (client, stmt) = (&client, &lookup_stmt);
        async move {
            let rows = client.query(stmt, &[&id(i)]).await.expect("query");
            assert_eq!(decode(rows), 1);
        }
    })
    .await;
    let ours = time(n, |i| {
        let catalog = &catalog;
        async move {
            assert_eq!(
                catalog
                    .fetch("lookup", &lookup(i), LIMITS)
                    .await
                    .expect("fetch")
                    .rows
                    .len(),
                1
            )
        }
    })
    .await;
    let raw_scan = time(20, |_| {
        let (client, stmt) = (&client, &scan_stmt);
        async move {
            let rows = client.query(stmt, &[&0_i64]).await.expect("query");
            assert_eq!(decode(rows), PEOPLE);
        }
    })
    .await;
    let our_scan = time(20, |_| {
        let catalog = &catalog;
        async move {
            assert_eq!(
                catalog
                    .fetch("scan", &scan(), LIMITS)
                    .await
                    .expect("fetch")
                    .rows
                    .len(),
                PEOPLE
            )
        }
    })
    .await;
    report("postgres", &raw_lookup, &ours, &raw_scan, &our_scan);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn mysql(n: usize) -> Result<(), String> {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .user(Some("root"))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| e.to_string())?;
    let db = format!("causeway_bench_{}", std::process::id());
    for sql in [
        format!("CREATE DATABASE {db} CHARACTER SET utf8mb4"),
        format!("CREATE TABLE {db}.people (id BIGINT PRIMARY KEY, national_id VARCHAR(10) UNIQUE, name TEXT, birth_date DATE, address TEXT, household TEXT)"),
        format!("CREATE TABLE {db}.digits (d INT)"),
        format!("INSERT INTO {db}.digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)"),
        format!(
            "INSERT INTO {db}.people SELECT n, CONCAT('D', LPAD(n, 6, '0')), CONCAT('Person ', n), '1980-01-01', CONCAT('Street ', n), CONCAT('H', n DIV 3)
             FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 1 AS n FROM {db}.digits a, {db}.digits b, {db}.digits c, {db}.digits e) t"
        ),
    ] {
        conn.query_drop(sql).await.map_err(|e| e.to_string())?;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let catalog = open(
        &dir,
        &datasets(
            &format!(
                "adapter = \"mysql\"\nhost = \"127.0.0.1\"\nuser = \"root\"\ndatabase = \"{db}\""
            ),
            "people",
        ),
    )
    .await;
    let lookup_stmt = conn
        .prep(format!(
            "SELECT name, birth_date, address, household FROM {db}.people WHERE national_id = ?"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let scan_stmt = conn
        .prep(format!(
            "SELECT name, birth_date, address, household FROM {db}.people WHERE id > ?"
        ))
        .await
        .map_err(|e| e.to_string())?;
    type Person = (String, mysql_async::Value, String, String);
    for i in 0..n / 10 {
        let _: Vec<Person> = conn
            .exec(&lookup_stmt, (id(i),))
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut raw_lookup = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let rows: Vec<Person> = conn
            .exec(&lookup_stmt, (id(i),))
            .await
            .map_err(|e| e.to_string())?;
        raw_lookup.push(started.elapsed());
        assert_eq!(rows.len(), 1);
    }
    raw_lookup.sort();
    let ours = time(n, |i| {
        let catalog = &catalog;
        async move {
            assert_eq!(
                catalog
                    .fetch("lookup", &lookup(i), LIMITS)
                    .await
                    .expect("fetch")
                    .rows
                    .len(),
                1
            )
        }
    })
    .await;
    let _: Vec<Person> = conn
        .exec(&scan_stmt, (0,))
        .await
        .map_err(|e| e.to_string())?;
    let mut raw_scan = Vec::with_capacity(20);
    for _ in 0..20 {
        let started = Instant::now();
        let rows: Vec<Person> = conn
            .exec(&scan_stmt, (0,))
            .await
            .map_err(|e| e.to_string())?;
        raw_scan.push(started.elapsed());
        assert_eq!(rows.len(), PEOPLE);
    }
    raw_scan.sort();
    let our_scan = time(20, |_| {
        let catalog = &catalog;
        async move {
            assert_eq!(
                catalog
                    .fetch("scan", &scan(), LIMITS)
                    .await
                    .expect("fetch")
                    .rows
                    .len(),
                PEOPLE
            )
        }
    })
    .await;
    report("mysql", &raw_lookup, &ours, &raw_scan, &our_scan);
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
