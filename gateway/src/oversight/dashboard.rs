//! The oversight dashboard and query API: server-rendered HTML with inline CSS and SVG (no
//! scripts, nothing fetched from elsewhere), and JSON endpoints that `causeway audit` uses while
//! the node runs.
//!
//! It has no authentication of its own: it listens on loopback and must sit behind the
//! operator's authenticating proxy, which names the person in the `causeway-operator` header
//! (recorded with every query in the oversight ledger). Pages:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /` | status per department, exchange matrix, allowed/denied chart, recent denials, findings, recent oversight queries, search form |
//! | `POST /search` | form fields (a national id in `subject` is turned into its tag here) -> `303` to `GET /search?...` |
//! | `GET /search?...` | matching entries (notarized) with CSV/JSON export links |
//! | `GET /export.csv?...`, `GET /export.json?...` | the same search as a download (notarized) |
//! | `GET /report?subject_tag=` | the citizen's report as a printable page (notarized) |
//! | `GET /api/search?...`, `/api/subject?tag=`, `/api/crosscheck`, `/api/status` | JSON (notarized except status) |
//! | `GET /api/bundle?tag=` | the citizen's report with evidence, `causeway-citizen-report/v1` (notarized) |
//!
//! A raw national id only ever arrives in a `POST` body, is turned into its tag at once, and is
//! never logged, stored or sent back; URLs carry only tags.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::crosscheck::Finding;
use super::replica::{MinuteCount, PairCount, Query, Record, MAX_LIMIT};
use super::report::esc;
use super::seal::{format_date, Seal};
use super::{Asker, Oversight, OversightError};
use crate::text::csv_cell;
use crate::transport::server::Call;
use causeway_ledger::entry::{Entry, Side};

/// The header an authenticating proxy sets to name the operator.
pub const OPERATOR_HEADER: &str = "causeway-operator";
/// Largest form body.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(body.into()))
        .expect("a response from a valid status and static headers always builds")
}

fn html(status: u16, body: String) -> Response<Full<Bytes>> {
    respond(status, "text/html; charset=utf-8", body)
}

fn json_body(status: u16, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).expect("JSON values serialize"),
    )
}

fn download(content_type: &str, filename: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = respond(200, content_type, body);
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{filename}\"")
            .parse()
            .expect("a static file name is a valid header value"),
    );
    r
}

fn failure(api: bool, e: &OversightError) -> Response<Full<Bytes>> {
    tracing::error!(error = %e, "oversight query failed");
    if api {
        json_body(
            503,
            &json!({"error": {"code": "unavailable", "message": e.to_string()}}),
        )
    } else {
        html(
            503,
            page(
                "Unavailable",
                &format!("<p class=\"bad\">{}</p>", esc(&e.to_string())),
            ),
        )
    }
}

/// Answer one dashboard or API request (served by [`crate::transport::server::serve`], which
/// bounds header, body and idle time and reads the body, at most [`MAX_FORM_BYTES`]).
pub(crate) async fn handle(node: Arc<Oversight>, call: Call) -> Response<Full<Bytes>> {
    let node = &*node;
    let Call { parts, body, .. } = call;
    let operator = parts
        .headers
        .get(OPERATOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("local-operator")
        .to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let params = parse_form(&query);
    let path = parts.uri.path();
    let dashboard = Asker::new(&operator, "dashboard");
    let api = Asker::new(&operator, "api");
    match (&parts.method, path) {
        (&Method::GET, "/") => home(node).await,
        (&Method::GET, "/healthz") => json_body(200, &json!({"status": "alive"})),
        (&Method::POST, "/search") => {
            let form = parse_form(&String::from_utf8_lossy(&body));
            html_redirect(&search_location(node, &form))
        }
        (&Method::GET, "/search") => match to_query(&params) {
            Ok(q) => match node.search(&q, &dashboard, "search").await {
                Ok(result) => html(
                    200,
                    search_page(
                        node,
                        &q,
                        &params,
                        &result.records,
                        result.truncated,
                        &node.seals_in_force().await.unwrap_or_default(),
                    ),
                ),
                Err(e) => failure(false, &e),
            },
            Err(problem) => html(
                400,
                page(
                    "Bad search",
                    &format!("<p class=\"bad\">{}</p>", esc(&problem)),
                ),
            ),
        },
        (&Method::GET, "/export.csv" | "/export.json" | "/api/search") => {
            let q = match to_query(&params) {
                Ok(q) => q,
                Err(problem) => {
                    return json_body(
                        400,
                        &json!({"error": {"code": "bad-query", "message": problem}}),
                    )
                }
            };
            let (asker, what) = if path == "/api/search" {
                (&api, "search")
            } else {
                (&dashboard, "export")
            };
            match node.search(&q, asker, what).await {
                Ok(result) if path == "/export.csv" => download("text/csv; charset=utf-8", "causeway-search.csv", to_csv(&result.records).into_bytes()),
                Ok(result) if path == "/export.json" => download(
                    "application/json",
                    "causeway-search.json",
                    serde_json::to_vec_pretty(&json!({"query": q, "truncated": result.truncated, "records": result.records}))
                        .expect("records serialize"),
                ),
                Ok(result) => {
                    // Oversight sees sealed exchanges at once, marked with the seal's date.
                    let seals = node.seals_in_force().await.unwrap_or_default();
                    let sealed: serde_json::Map<String, serde_json::Value> = result
                        .records
                        .iter()
                        .filter_map(|r| Some((r.entry.id.clone()?, Oversight::sealed_until(&seals, &r.entry)?)))
                        .map(|(id, d)| (id, json!(format_date(d))))
                        .collect();
                    json_body(200, &json!({"query": q, "truncated": result.truncated, "records": result.records, "sealed_until": sealed}))
                }
                Err(e) => failure(true, &e),
            }
        }
        (&Method::GET, "/report" | "/api/subject") => {
            let Some(tag) = param(
                &params,
                if path == "/report" {
                    "subject_tag"
                } else {
                    "tag"
                },
            ) else {
                return json_body(
                    400,
                    &json!({"error": {"code": "bad-query", "message": "name the subject by its tag"}}),
                );
            };
            if !are_subject_tags(tag) {
                return json_body(
                    400,
                    &json!({"error": {"code": "bad-query", "message": SUBJECT_TAGS_EXPECTED}}),
                );
            }
            let asker = if path == "/report" { &dashboard } else { &api };
            match node.subject_report(tag, asker).await {
                Ok(report) if path == "/report" => html(200, report.to_html()),
                Ok(report) => json_body(
                    200,
                    &serde_json::to_value(&report).expect("reports serialize"),
                ),
                Err(e) => failure(path != "/report", &e),
            }
        }
        (&Method::GET, "/api/bundle") => {
            let Some(tag) = param(&params, "tag").filter(|t| are_subject_tags(t)) else {
                return json_body(
                    400,
                    &json!({"error": {"code": "bad-query", "message": SUBJECT_TAGS_EXPECTED}}),
                );
            };
            match node.citizen_bundle(tag, &api).await {
                Ok(bundle) => json_body(
                    200,
                    &serde_json::to_value(&bundle).expect("bundles serialize"),
                ),
                Err(super::bundle::BundleError::Oversight(e)) => failure(true, &e),
                Err(e) => json_body(
                    503,
                    &json!({"error": {"code": "evidence", "message": e.to_string()}}),
                ),
            }
        }
        (&Method::GET, "/api/crosscheck") => match node.crosscheck(&api).await {
            Ok(findings) => json_body(200, &json!({"findings": findings})),
            Err(e) => failure(true, &e),
        },
        (&Method::GET, "/api/membership") => match node.membership_history(1000) {
            Ok(history) => json_body(200, &json!({"versions": history})),
            Err(e) => json_body(
                503,
                &json!({"error": {"code": "ledger", "message": e.to_string()}}),
            ),
        },
        (&Method::GET, "/api/status") => match node.statuses().await {
            Ok(statuses) => json_body(200, &json!({"logs": statuses})),
            Err(e) => failure(true, &OversightError::Replica(e)),
        },
        _ => html(
            404,
            page(
                "Not found",
                "<p>No such page. <a href=\"/\">Back to the dashboard</a>.</p>",
            ),
        ),
    }
}

fn html_redirect(location: &str) -> Response<Full<Bytes>> {
    let mut r = html(303, format!("<a href=\"{}\">continue</a>", esc(location)));
    r.headers_mut().insert(
        header::LOCATION,
        location
            .parse()
            .unwrap_or_else(|_| http::HeaderValue::from_static("/search")),
    );
    r
}

/// Most subject tags in one query: a person has one per department key version.
const MAX_SUBJECT_TAGS: usize = 1024;

const SUBJECT_TAGS_EXPECTED: &str = "subject_tag must be keyed tags (64 hex characters, optionally after a key version and ':'), comma-separated (search by national id through the form)";

/// Whether `tags` is a comma-separated list of keyed tags (never a raw identifier, which would
/// otherwise be notarized with the query).
fn are_subject_tags(tags: &str) -> bool {
    let mut n = 0;
    tags.split(',').all(|t| {
        n += 1;
        n <= MAX_SUBJECT_TAGS && crate::identity::is_tag(t)
    })
}

/// The GET URL of a search form: the national id in `subject`, if any, becomes `subject_tag`.
fn search_location(node: &Oversight, form: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = form
        .iter()
        .filter(|(k, v)| k != "subject" && !v.trim().is_empty())
        .cloned()
        .collect();
    if let Some(id) = param(form, "subject") {
        pairs.retain(|(k, _)| k != "subject_tag");
        pairs.push(("subject_tag".into(), node.subject_tag(id)));
    }
    format!("/search?{}", encode_form(&pairs))
}

/// Decode `a=1&b=x+y%21`.
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    // `+` is a space in forms; an escaped plus (`%2B`) stays a plus.
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// What a form value keeps unescaped: ASCII letters, digits and `-_.~` (RFC 3986 unreserved).
const FORM_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encode pairs as `application/x-www-form-urlencoded`.
pub fn encode_form(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, FORM_VALUE).to_string();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `2026-01-01`, `2026-01-01T10:00` (a form's datetime-local, taken as UTC) or RFC 3339, as Unix
/// milliseconds; a bare date as the end of that day when `end`.
pub fn parse_time(text: &str, end: bool) -> Result<u64, String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let parsed = if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        t
    } else if text.len() == 10 {
        let date = time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| format!("{text:?} is not a date like 2026-01-31"))?;
        let t = date.midnight().assume_utc();
        if end {
            t + time::Duration::days(1) - time::Duration::milliseconds(1)
        } else {
            t
        }
    } else {
        let fmt = if text.len() == 16 {
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]")
        } else {
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")
        };
        time::PrimitiveDateTime::parse(text, fmt)
            .map_err(|_| format!("{text:?} is not a time like 2026-01-31T14:00 or RFC 3339"))?
            .assume_utc()
    };
    Ok((parsed.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
}

/// Build a [`Query`] from URL parameters.
pub fn to_query(params: &[(String, String)]) -> Result<Query, String> {
    let text = |name: &str| param(params, name).map(str::to_owned);
    let side = match param(params, "side") {
        None => None,
        Some("provider") => Some(Side::Provider),
        Some("consumer") => Some(Side::Consumer),
        Some(other) => return Err(format!("side must be provider or consumer, not {other:?}")),
    };
    let decision = text("decision");
    if let Some(d) = &decision {
        if d != "allow" && d != "deny" {
            return Err("decision must be allow or deny".into());
        }
    }
    let subject_tag = text("subject_tag");
    if let Some(t) = &subject_tag {
        if !are_subject_tags(t) {
            return Err(SUBJECT_TAGS_EXPECTED.into());
        }
    }
    let limit = match param(params, "limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| "limit must be a number".to_owned())?
                .clamp(1, MAX_LIMIT),
        ),
        None => None,
    };
    Ok(Query {
        exchange: text("exchange"),
        department: text("department"),
        consumer: text("consumer"),
        provider: text("provider"),
        dataset: text("dataset"),
        purpose: text("purpose"),
        subject_tag,
        decision,
        side,
        from_ms: param(params, "from")
            .map(|t| parse_time(t, false))
            .transpose()?,
        to_ms: param(params, "to")
            .map(|t| parse_time(t, true))
            .transpose()?,
        limit,
    })
}

/// Records as CSV (RFC 4180), one line per entry. Every text cell goes through
/// [`csv_cell`]: the logs hold other departments' text, and a cell a spreadsheet would evaluate
/// as a formula is neutralized. `index` and `rows` are numbers and written as such.
pub fn to_csv(records: &[Record]) -> String {
    let mut out = String::from("log,index,leaf_hash,time,kind,side,exchange,consumer,provider,dataset,purpose,legal_basis,decision,reason,rule,outcome,fields,rows,policy,subjects,request_digest,response_digest\r\n");
    for r in records {
        let e = &r.entry;
        let o = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or(""));
        let side = match e.side {
            Some(Side::Provider) => "provider",
            Some(Side::Consumer) => "consumer",
            None => "",
        };
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_cell(&r.log),
            r.index,
            csv_cell(&r.leaf_hash),
            csv_cell(&e.time),
            csv_cell(e.kind.as_str()),
            csv_cell(side),
            o(&e.id),
            o(&e.consumer),
            o(&e.provider),
            o(&e.dataset),
            o(&e.purpose),
            o(&e.legal_basis),
            o(&e.decision),
            o(&e.reason),
            o(&e.rule),
            o(&e.outcome),
            csv_cell(&e.fields.join(";")),
            e.rows.map(|n| n.to_string()).unwrap_or_default(),
            o(&e.policy),
            csv_cell(&e.subjects.join(";")),
            o(&e.request_digest),
            o(&e.response_digest),
        );
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box} body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24;background:#f4f6f9}
header{background:#1d3557;color:#fff;padding:14px 24px} header h1{margin:0;font-size:20px} header p{margin:2px 0 0;opacity:.8}
header a{color:#fff}
main{padding:16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:12px 16px;overflow-x:auto}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px;color:#1d3557}
table{border-collapse:collapse;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #eceff4;text-align:left;vertical-align:top;font-size:13px}
th{background:#f0f3f8;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:600} .bad{color:#c62828;font-weight:600} .warn{color:#b26a00;font-weight:600}
.muted{color:#6a737d} code{font-size:12px}
.matrix td.cell{text-align:center;min-width:110px} .matrix td.cell a{text-decoration:none;color:inherit;display:block}
.matrix .self{background:#f7f7f7;color:#bbb;text-align:center}
.al{color:#1a7f37;font-weight:600} .de{color:#c62828;font-weight:600}
form.search{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:8px 12px}
form.search label{display:flex;flex-direction:column;font-size:12px;color:#444}
form.search input,form.search select{padding:5px 6px;border:1px solid #c8ced8;border-radius:4px;font:inherit}
form.search button{padding:7px 14px;background:#1d3557;color:#fff;border:0;border-radius:4px;font:inherit;cursor:pointer;align-self:end}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
a.btn{display:inline-block;padding:4px 10px;border:1px solid #1d3557;border-radius:4px;text-decoration:none;color:#1d3557;margin-right:6px}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - Causeway oversight</title><style>{STYLE}</style></head><body>{body}</body></html>",
        t = esc(title)
    )
}

fn header_bar(node: &Oversight, subtitle: &str) -> String {
    format!(
        "<header><h1><a href=\"/\" style=\"text-decoration:none\">Causeway oversight</a> &middot; federation {}</h1><p>node {} &middot; {}</p></header>",
        esc(&node.directory().federation),
        esc(node.id().as_str()),
        subtitle
    )
}

async fn home(node: &Oversight) -> Response<Full<Bytes>> {
    let replica = node.replica().clone();
    let overview = super::pull::blocking(&replica, |r| {
        let pairs = r.pair_counts()?;
        let minutes = r.minute_counts()?;
        let denials = r.search(&Query {
            decision: Some("deny".into()),
            side: Some(Side::Provider),
            limit: Some(12),
            ..Query::default()
        })?;
        Ok((pairs, minutes, denials.records))
    })
    .await;
    let statuses = node.statuses().await;
    let (Ok((pairs, minutes, denials)), Ok(statuses)) = (overview, statuses) else {
        return html(
            503,
            page(
                "Unavailable",
                "<p class=\"bad\">The replica cannot be read right now.</p>",
            ),
        );
    };
    let queries = node.recent_queries(15).unwrap_or_default();
    let findings = node.findings();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut body = header_bar(node, &format!("rendered {}", esc(&now)));
    body.push_str("<main>");
    body.push_str(&status_section(&statuses));
    body.push_str(&matrix_section(node, &pairs));
    body.push_str(&chart_section(&minutes));
    body.push_str(&denials_section(&denials));
    body.push_str(&findings_section(&findings));
    body.push_str(&queries_section(&queries));
    body.push_str(&membership_section(
        &node.membership_history(10).unwrap_or_default(),
    ));
    body.push_str(&search_form(node, &[]));
    body.push_str("</main>");
    html(200, page("Dashboard", &body))
}

/// The directory versions this node applied: who was a member from when.
fn membership_section(history: &[Entry]) -> String {
    let mut rows = String::new();
    for e in history {
        let d = e.detail.as_ref();
        let list = |key: &str| {
            d.and_then(|d| d.get(key))
                .and_then(|v| v.as_array())
                .map(|ids| {
                    ids.iter()
                        .filter_map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let _ = write!(
            rows,
            "<tr><td>{time}</td><td class=\"num\">{serial}</td><td>{depts}</td><td>{nodes}</td><td><code>{hash}</code></td></tr>",
            time = esc(&e.time),
            serial = d.and_then(|d| d.get("serial")).and_then(|s| s.as_u64()).unwrap_or(0),
            depts = esc(&list("departments")),
            nodes = esc(&list("oversight")),
            hash = esc(d.and_then(|d| d.get("hash")).and_then(|h| h.as_str()).and_then(|h| h.get(..16)).unwrap_or("")),
        );
    }
    format!("<section class=\"wide\" id=\"membership\"><h2>Membership history</h2><table><thead><tr><th>Applied</th><th>Directory serial</th><th>Departments</th><th>Oversight nodes</th><th>Hash</th></tr></thead><tbody>{rows}</tbody></table><p class=\"muted\">Each signed directory version this node put in force, as notarized in its own log (newest first); every gateway records the same in its log.</p></section>")
}

fn status_section(statuses: &[super::LogStatus]) -> String {
    let mut rows = String::new();
    for s in statuses {
        let st = &s.state;
        let (class, text) = match (&st.flag, &st.last_error, st.checkpoint.is_some()) {
            (Some(flag), _, _) => (
                "bad",
                format!("FLAGGED: {} ({})", flag.reason, flag.message),
            ),
            (None, Some(e), _) => ("warn", format!("unreachable: {e}")),
            (None, None, true) => ("ok", "verified".to_owned()),
            (None, None, false) => ("muted", "not pulled yet".to_owned()),
        };
        let cp = st.checkpoint.as_ref();
        let _ = write!(
            rows,
            "<tr data-department=\"{id}\" data-status=\"{class}\"><td><b>{id}</b><br><span class=\"muted\">{name}</span></td><td class=\"num\">{size}</td><td class=\"num\">{cps}</td><td><code>{root}</code></td><td class=\"num\">{w} of {kw}</td><td>{pull}</td><td class=\"{class}\">{text}</td></tr>",
            id = esc(&s.department),
            name = esc(&s.name),
            size = st.size,
            cps = cp.map_or("-".to_owned(), |c| c.size.to_string()),
            root = esc(cp.map_or("", |c| c.root.get(..16).unwrap_or(""))),
            w = st.witnesses.len(),
            kw = s.known_witnesses,
            pull = esc(st.last_pull.as_deref().unwrap_or("never")),
            text = esc(&text),
        );
    }
    format!("<section class=\"wide\" id=\"status\"><h2>Verification status per department</h2><table><thead><tr><th>Department</th><th>Entries replicated</th><th>Checkpoint size</th><th>Root</th><th>Witnesses</th><th>Last pull</th><th>Status</th></tr></thead><tbody>{rows}</tbody></table><p class=\"muted\">Every entry is re-hashed here; each checkpoint's signature, its witnesses' cosignatures and its consistency with the previous one are verified before anything is stored.</p></section>")
}

fn matrix_section(node: &Oversight, pairs: &[PairCount]) -> String {
    let depts: Vec<String> = node
        .directory()
        .departments()
        .map(|d| d.id.to_string())
        .collect();
    let mut head = String::from("<th>consumer \\ provider</th>");
    for p in &depts {
        let _ = write!(head, "<th>{}</th>", esc(p));
    }
    let max = pairs
        .iter()
        .map(|p| p.allowed + p.denied)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut rows = String::new();
    for c in &depts {
        let _ = write!(rows, "<tr><th>{}</th>", esc(c));
        for p in &depts {
            if c == p {
                rows.push_str("<td class=\"self\">&mdash;</td>");
                continue;
            }
            let count = pairs
                .iter()
                .find(|x| &x.consumer == c && &x.provider == p)
                .cloned()
                .unwrap_or_default();
            let total = count.allowed + count.denied;
            let alpha = if total == 0 {
                0.0
            } else {
                0.08 + 0.5 * total as f64 / max as f64
            };
            let link = encode_form(&[
                ("consumer".into(), c.clone()),
                ("provider".into(), p.clone()),
            ]);
            let _ = write!(
                rows,
                "<td class=\"cell\" style=\"background:rgba(29,53,87,{alpha:.2})\" data-consumer=\"{ce}\" data-provider=\"{pe}\" data-allowed=\"{a}\" data-denied=\"{d}\"><a href=\"/search?{link}\" title=\"{ce} asked {pe}\"><span class=\"al\">{a}</span> allowed &middot; <span class=\"de\">{d}</span> denied</a></td>",
                ce = esc(c),
                pe = esc(p),
                a = count.allowed,
                d = count.denied,
            );
        }
        rows.push_str("</tr>");
    }
    format!("<section id=\"matrix\"><h2>Exchanges per department pair</h2><table class=\"matrix\"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table><p class=\"muted\">Counted from the providers' records. Click a cell to list its exchanges.</p></section>")
}

/// Allowed and denied exchanges over time as stacked bars, at most 48 buckets.
fn chart_section(minutes: &[MinuteCount]) -> String {
    let (w, h, pad) = (680.0_f64, 170.0_f64, 28.0_f64);
    let mut svg = format!("<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"allowed and denied exchanges over time\">");
    let (Some(first), Some(last)) = (minutes.first(), minutes.last()) else {
        svg.push_str(
            "<text x=\"20\" y=\"80\" fill=\"#6a737d\">No exchanges replicated yet.</text></svg>",
        );
        return format!(
            "<section id=\"timeline\"><h2>Allowed and denied over time</h2>{svg}</section>"
        );
    };
    let span = last.minute - first.minute + 1;
    let width = span.div_ceil(48).max(1);
    let buckets = span.div_ceil(width) as usize;
    let mut counts = vec![(0u64, 0u64); buckets];
    for m in minutes {
        let i = ((m.minute - first.minute) / width) as usize;
        counts[i].0 += m.allowed;
        counts[i].1 += m.denied;
    }
    let max = counts.iter().map(|(a, d)| a + d).max().unwrap_or(1).max(1) as f64;
    let bar_w = (w - 2.0 * pad) / buckets as f64;
    let plot_h = h - 2.0 * pad;
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#999\"/>",
        y = h - pad,
        x2 = w - pad
    );
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#555\">{}</text>",
        2, pad, max as u64
    );
    for (i, (a, d)) in counts.iter().enumerate() {
        let x = pad + i as f64 * bar_w + bar_w * 0.1;
        let bw = (bar_w * 0.8).clamp(1.0, 40.0);
        let x = x + (bar_w * 0.8 - bw) / 2.0;
        let ah = plot_h * *a as f64 / max;
        let dh = plot_h * *d as f64 / max;
        let base = h - pad;
        let start = minute_label(first.minute + i as u64 * width);
        let _ = write!(
            svg,
            "<g><title>{start} UTC: {a} allowed, {d} denied</title><rect class=\"allowed\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{ah:.1}\" fill=\"#2e7d32\"/><rect class=\"denied\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{dh:.1}\" fill=\"#c62828\"/></g>",
            base - ah,
            base - ah - dh,
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{pad}\" y=\"{}\" font-size=\"10\" fill=\"#555\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#555\" text-anchor=\"end\">{}</text></svg>",
        h - 8.0,
        minute_label(first.minute),
        w - pad,
        h - 8.0,
        minute_label(last.minute)
    );
    let total_a: u64 = counts.iter().map(|c| c.0).sum();
    let total_d: u64 = counts.iter().map(|c| c.1).sum();
    format!("<section id=\"timeline\"><h2>Allowed and denied over time</h2>{svg}<p class=\"legend muted\"><span style=\"background:#2e7d32\"></span>allowed ({total_a})<span style=\"background:#c62828\"></span>denied ({total_d}) &middot; {width} minute(s) per bar, UTC</p></section>")
}

fn minute_label(minute: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(minute as i64 * 60)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn records_table(records: &[Record], seals: &[Seal], empty: &str) -> String {
    if records.is_empty() {
        return format!("<p class=\"muted\">{}</p>", esc(empty));
    }
    let mut rows = String::new();
    for r in records {
        let e = &r.entry;
        let decision = match e.decision.as_deref() {
            Some("allow") => "<span class=\"ok\">allow</span>".to_owned(),
            Some(d) => format!(
                "<span class=\"bad\">{}</span> {}",
                esc(d),
                esc(e.reason.as_deref().unwrap_or(""))
            ),
            None => "-".into(),
        };
        let side = match e.side {
            Some(Side::Provider) => "provider",
            Some(Side::Consumer) => "consumer",
            None => "",
        };
        let id = e.id.as_deref().unwrap_or("");
        let _ = write!(
            rows,
            "<tr class=\"record\" data-exchange=\"{ide}\"><td title=\"{time}\">{short_t}</td><td>{log} #{index}</td><td>{kind} {side}</td><td><a href=\"/search?{link}\"><code>{ide}</code></a></td><td>{c} &rarr; {p}</td><td>{ds}</td><td>{pu}{sealed}</td><td>{decision}</td><td>{fields}</td><td class=\"num\">{rows_n}</td><td><code>{subjects}</code></td></tr>",
            ide = esc(id),
            time = esc(&e.time),
            short_t = esc(&short_time(&e.time)),
            log = esc(&r.log),
            index = r.index,
            kind = e.kind.as_str(),
            link = encode_form(&[("exchange".into(), id.to_owned())]),
            c = esc(e.consumer.as_deref().unwrap_or("")),
            p = esc(e.provider.as_deref().unwrap_or("")),
            ds = esc(e.dataset.as_deref().unwrap_or("")),
            pu = esc(e.purpose.as_deref().unwrap_or("")),
            sealed = Oversight::sealed_until(seals, e).map_or(String::new(), |d| format!(
                " <span class=\"bad sealed\">sealed until {}</span>",
                format_date(d)
            )),
            fields = esc(&e.fields.join(", ")),
            rows_n = e.rows.map(|n| n.to_string()).unwrap_or_default(),
            subjects = esc(&e.subjects.iter().map(|s| s.get(..12).unwrap_or(s)).collect::<Vec<_>>().join(" ")),
        );
    }
    format!("<table class=\"records\"><thead><tr><th>Time (UTC)</th><th>Log</th><th>Kind</th><th>Exchange</th><th>Consumer &rarr; provider</th><th>Dataset</th><th>Purpose</th><th>Decision</th><th>Fields</th><th>Rows</th><th>Subject tags</th></tr></thead><tbody>{rows}</tbody></table>")
}

fn denials_section(denials: &[Record]) -> String {
    let mut rows = String::new();
    for r in denials {
        let e = &r.entry;
        let id = e.id.as_deref().unwrap_or("");
        let _ = write!(
            rows,
            "<tr class=\"denial\"><td title=\"{tf}\">{t}</td><td>{c} &rarr; {p}</td><td>{ds}</td><td>{pu}</td><td class=\"bad\">{reason}</td><td><a href=\"/search?{link}\" title=\"{ide}\"><code>{short}</code></a></td></tr>",
            tf = esc(&e.time),
            t = esc(&short_time(&e.time)),
            c = esc(e.consumer.as_deref().unwrap_or("")),
            p = esc(e.provider.as_deref().unwrap_or("")),
            ds = esc(e.dataset.as_deref().unwrap_or("")),
            pu = esc(e.purpose.as_deref().unwrap_or("")),
            reason = esc(e.reason.as_deref().unwrap_or("")),
            link = encode_form(&[("exchange".into(), id.to_owned())]),
            ide = esc(id),
            short = esc(id.get(id.len().saturating_sub(12)..).unwrap_or(id)),
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"6\" class=\"muted\">No denials.</td></tr>");
    }
    format!("<section id=\"denials\"><h2>Recent denials</h2><table><thead><tr><th>Time (UTC)</th><th>Consumer &rarr; provider</th><th>Dataset</th><th>Purpose</th><th>Reason</th><th>Exchange</th></tr></thead><tbody>{rows}</tbody></table><p class=\"muted\"><a href=\"/search?decision=deny&amp;side=provider\">All denials</a></p></section>")
}

/// `2026-01-31T14:00:00.123Z` -> `2026-01-31 14:00:00`.
fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

fn findings_section(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "<section id=\"findings\"><h2>Cross-check findings</h2><p class=\"ok\">Both sides of every exchange agree.</p></section>".into();
    }
    let mut rows = String::new();
    for f in findings.iter().take(200) {
        let _ = write!(
            rows,
            "<tr class=\"finding\" data-kind=\"{k}\"><td class=\"bad\">{k}</td><td><a href=\"/search?{link}\"><code>{x}</code></a></td><td>{c} &rarr; {p}</td><td>{t}</td><td>{d}</td></tr>",
            k = f.kind,
            link = encode_form(&[("exchange".into(), f.exchange.clone())]),
            x = esc(&f.exchange),
            c = esc(f.consumer.as_deref().unwrap_or("?")),
            p = esc(f.provider.as_deref().unwrap_or("?")),
            t = esc(&f.time),
            d = esc(&f.detail),
        );
    }
    format!("<section id=\"findings\"><h2>Cross-check findings ({})</h2><table><thead><tr><th>Kind</th><th>Exchange</th><th>Consumer &rarr; provider</th><th>Time</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table></section>", findings.len())
}

fn queries_section(queries: &[causeway_ledger::entry::Entry]) -> String {
    let mut rows = String::new();
    for q in queries {
        let d = q.detail.clone().unwrap_or_default();
        let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
        let _ = write!(
            rows,
            "<tr class=\"oversight-query\"><td class=\"num\">#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
            q.index,
            esc(&q.time),
            esc(&s("asked_by")),
            esc(&s("via")),
            esc(&s("query")),
            esc(&d["filter"].to_string()),
            q.rows.unwrap_or(0),
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"muted\">No queries yet.</td></tr>");
    }
    format!("<section class=\"wide\" id=\"queries\"><h2>Who watches the watchers: recent oversight queries</h2><table><thead><tr><th>Entry</th><th>Time</th><th>Asked by</th><th>Via</th><th>Query</th><th>Filter</th><th>Results</th></tr></thead><tbody>{rows}</tbody></table><p class=\"muted\">Every search, export, citizen's report and cross-check is notarized in this node's own signed log before it is answered; subjects appear only as keyed tags.</p></section>")
}

fn search_form(node: &Oversight, params: &[(String, String)]) -> String {
    let v = |k: &str| esc(param(params, k).unwrap_or(""));
    let mut options = String::from("<option value=\"\">any</option>");
    for d in node.directory().departments() {
        let selected = if param(params, "department") == Some(d.id.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            options,
            "<option value=\"{id}\"{selected}>{id}</option>",
            id = esc(d.id.as_str())
        );
    }
    let decision = |d: &str| {
        if param(params, "decision") == Some(d) {
            " selected"
        } else {
            ""
        }
    };
    format!(
        r#"<section class="wide" id="search"><h2>Search the replicated logs</h2>
<form class="search" method="post" action="/search">
<label>Exchange id<input name="exchange" value="{exchange}"></label>
<label>Department<select name="department">{options}</select></label>
<label>Consumer<input name="consumer" value="{consumer}"></label>
<label>Provider<input name="provider" value="{provider}"></label>
<label>Dataset<input name="dataset" value="{dataset}"></label>
<label>Purpose<input name="purpose" value="{purpose}"></label>
<label>Decision<select name="decision"><option value="">any</option><option value="allow"{da}>allow</option><option value="deny"{dd}>deny</option></select></label>
<label>From (UTC)<input name="from" type="datetime-local" value="{from}"></label>
<label>To (UTC)<input name="to" type="datetime-local" value="{to}"></label>
<label>Subject national id (turned into its tag; never stored)<input name="subject" autocomplete="off"></label>
<input type="hidden" name="subject_tag" value="{tag}">
<button type="submit">Search</button>
</form></section>"#,
        exchange = v("exchange"),
        consumer = v("consumer"),
        provider = v("provider"),
        dataset = v("dataset"),
        purpose = v("purpose"),
        from = v("from"),
        to = v("to"),
        tag = v("subject_tag"),
        da = decision("allow"),
        dd = decision("deny"),
    )
}

fn search_page(
    node: &Oversight,
    query: &Query,
    params: &[(String, String)],
    records: &[Record],
    truncated: bool,
    seals: &[Seal],
) -> String {
    let keep: Vec<(String, String)> = params
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .cloned()
        .collect();
    let qs = encode_form(&keep);
    let filter = serde_json::to_string(query).unwrap_or_default();
    let mut body = header_bar(node, "search");
    body.push_str("<main>");
    let _ = write!(
        body,
        "<section class=\"wide\" id=\"results\"><h2>{n} matching entr{ies}{more}</h2><p><a class=\"btn\" id=\"export-csv\" href=\"/export.csv?{qs}\">Export CSV</a><a class=\"btn\" id=\"export-json\" href=\"/export.json?{qs}\">Export JSON</a>{report}<span class=\"muted\">filter <code>{f}</code> &middot; this search was notarized in the oversight ledger</span></p>{table}</section>",
        n = records.len(),
        ies = if records.len() == 1 { "y" } else { "ies" },
        more = if truncated { " (more matched: narrow the search or raise limit)" } else { "" },
        report = match &query.subject_tag {
            Some(t) => format!("<a class=\"btn\" href=\"/report?{}\">Printable citizen's report</a>", encode_form(&[("subject_tag".into(), t.clone())])),
            None => String::new(),
        },
        f = esc(&filter),
        table = records_table(records, seals, "Nothing matched."),
    );
    body.push_str(&search_form(node, params));
    body.push_str("</main>");
    page("Search", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_ledger::entry::{Entry, Kind};

    #[test]
    fn csv_cells_from_other_departments_are_neutralized() {
        let mut entry = Entry::new(Kind::Exchange);
        entry.index = 7;
        entry.time = "2026-01-31T14:00:00Z".into();
        entry.side = Some(Side::Provider);
        entry.id = Some("x-1".into());
        entry.consumer = Some("@SUM(1)".into());
        entry.provider = Some("civil-registry".into());
        entry.dataset = Some("-2+3".into());
        entry.purpose = Some(r#"=HYPERLINK("http://x","y")"#.into());
        entry.legal_basis = Some("+cmd".into());
        entry.decision = Some("allow".into());
        entry.reason = Some("\t=1".into());
        entry.rule = Some("\r=1".into());
        entry.outcome = Some("\u{1b}[2J\u{1b}]0;title\u{7}".into());
        entry.fields = vec!["name".into(), "\u{202E}fdp.exe".into()];
        entry.rows = Some(3);
        let record = Record {
            log: "civil-registry".into(),
            index: 7,
            leaf_hash: "ab".repeat(32),
            entry,
        };
        let csv = to_csv(&[record]);
        let rows: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            rows.len(),
            3,
            "header, one row, and the final line break: {csv:?}"
        );
        let expected = format!(
            "civil-registry,7,{},2026-01-31T14:00:00Z,exchange,provider,x-1,'@SUM(1),civil-registry,'-2+3,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'+cmd,allow,'\t=1,\"'\r=1\",{},name;{},3,,,,",
            "ab".repeat(32),
            r"\u{1b}[2J\u{1b}]0;title\u{7}",
            r"\u{202e}fdp.exe",
        );
        assert_eq!(rows[1], expected);
        assert!(
            !csv.contains(['\u{1b}', '\u{7}', '\u{202E}']),
            "no raw escape, bell or bidi override: {csv:?}"
        );
    }

    #[test]
    fn forms_round_trip_and_times_parse() {
        let pairs = vec![("a b".to_owned(), "x&y=z/ü".to_owned())];
        assert_eq!(parse_form(&encode_form(&pairs)), pairs);
        assert_eq!(
            parse_form("q=a+b%21&bad=%zz&trail=%4"),
            vec![
                ("q".to_owned(), "a b!".to_owned()),
                ("bad".to_owned(), "%zz".to_owned()),
                ("trail".to_owned(), "%4".to_owned()),
            ]
        );
        let day = parse_time("2026-01-02", false).unwrap();
        assert_eq!(
            parse_time("2026-01-02", true).unwrap(),
            day + 86_400_000 - 1
        );
        assert_eq!(parse_time("2026-01-02T00:01", false).unwrap(), day + 60_000);
        assert_eq!(parse_time("2026-01-02T00:00:00Z", false).unwrap(), day);
        assert!(parse_time("yesterday", false).is_err());
        let tag = "ab".repeat(32);
        assert!(are_subject_tags(&tag) && are_subject_tags(&format!("1:{tag},2:{tag},{tag}")));
        assert!(!are_subject_tags(&format!("1:{tag},D000042")) && !are_subject_tags(""));
        assert!(!are_subject_tags(
            &vec![tag.as_str(); MAX_SUBJECT_TAGS + 1].join(",")
        ));
        assert!(
            to_query(&[("subject_tag".into(), "D000042".into())]).is_err(),
            "raw ids are refused as tags"
        );
    }
}
