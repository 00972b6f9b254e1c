//! The oversight dashboard and query API: server-rendered HTML with inline CSS and SVG (no
//! scripts, nothing fetched from elsewhere), and JSON endpoints that `causeway audit` uses while
//! the node runs.
//!
//! Every request first passes the [`gate`](super::gate): the `Host` must be allowed, the caller
//! signed in as a staff member holding the route's role, and a `POST` must come from this origin
//! with the session's CSRF token. Who asked, as recorded with every query in the oversight
//! ledger, is that staff member. Pages:
//!
//! | request | role | answer |
//! | --- | --- | --- |
//! | `GET /login`, `POST /login`, `POST /api/login`, `POST /logout` | - | sign-in and sign-out |
//! | `GET /healthz` | - | `{"status":"alive"}` (no data) |
//! | `GET /openapi.json` | - | this API's OpenAPI description (docs/openapi/oversight.json) |
//! | `GET /` | any | status per log, exchange matrix, allowed/denied chart, grouped repeated denials, newest findings, recent oversight queries, membership, search form (aggregates: not notarized); reloads itself every 30 s |
//! | `GET /api/status`, `/api/membership` | any | JSON aggregates (not notarized) |
//! | `GET /findings?from=&to=&page=` | any | cross-check findings in a window (notarized) |
//! | `POST /search` | investigator; subject officer with a national id or `subject_tag` | form fields (a national id in `subject` is turned into its tag here, notarized as `subject-tag`) -> `303` to `GET /search?...` |
//! | `GET /search?...` | investigator; subject officer with `subject_tag` | one page of matching entries (notarized) with window, "older"/"newer" cursors and CSV/JSON export links |
//! | `GET /export.csv?...`, `GET /export.json?...`, `GET /api/search?...` | as `/search` | the same search as a download or JSON (notarized) |
//! | `GET /exchange?id=` | investigator | both sides' entries with every field and how each is verified (notarized as `exchange`) |
//! | `GET /evidence?log=&index=` | investigator | one entry's tlog-proof file (notarized as `evidence`) |
//! | `GET /queries?...` | investigator | this node's oversight queries, by window and page (notarized) |
//! | `GET /api/crosscheck` | investigator | JSON (notarized) |
//! | `GET /report?subject_tag=`, `GET /api/subject?tag=` | subject officer | the citizen's report, printable or JSON (notarized) |
//! | `GET /staff` | administrator | the staff accounts (read-only) |
//! | `POST /api/seal` (form: `purpose`, `consumer`, `until`, `reason`, `csrf`) | investigator or administrator | records a seal in the oversight ledger |
//! | `GET /api/bundle?tag=` | subject officer | the citizen's report with evidence, `causeway-citizen-report/v1` (notarized) |
//!
//! A raw national id only ever arrives in a `POST` body, is turned into its tag at once, and is
//! never logged, stored or sent back; URLs carry only tags.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::evidence::EvidenceError;
use super::gate::{Admitted, Gate};
use super::investigation::{EvidenceFileError, QueryCursor};
use super::pages::{self, page, search_page, Overview};
use super::replica::{Query, Record, MAX_LIMIT};
use super::report::esc;
use super::seal::format_date;
use super::{Asker, Oversight, OversightError};
use crate::text::csv_cell;
use crate::transport::openapi;
use crate::transport::server::Call;
use causeway_ledger::entry::Side;

/// Largest form body.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    super::gate::secured(Response::builder())
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
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
/// bounds header, body and idle time and reads the body, at most [`MAX_FORM_BYTES`]), once the
/// gate let it through.
pub(crate) async fn handle(
    node: Arc<Oversight>,
    gate: Arc<Gate>,
    call: Call,
) -> Response<Full<Bytes>> {
    let node = &*node;
    let Call { parts, body, .. } = call;
    let who = match gate.admit(&parts, &body).await {
        Ok(admitted) => admitted,
        Err(answer) => return answer,
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let params = parse_form(&query);
    let path = parts.uri.path();
    let dashboard = who.asker("dashboard");
    let api = who.asker("api");
    let response = async { match (&parts.method, path) {
        (&Method::GET, "/") => home(node).await,
        (&Method::GET, "/healthz") => json_body(200, &json!({"status": "alive"})),
        (&Method::GET, openapi::PATH) => respond(200, "application/json", Bytes::from_static(openapi::OVERSIGHT)),
        (&Method::POST, "/search") => {
            let form = parse_form(&String::from_utf8_lossy(&body));
            match search_location(node, &form, &dashboard).await {
                Ok(location) => html_redirect(&location),
                Err(e) => failure(false, &e),
            }
        }
        (&Method::GET, "/search") => match to_query(&params) {
            Ok(mut q) => {
                q.limit = Some(q.limit.unwrap_or(PAGE_SIZE));
                match node.search(&q, &dashboard, "search").await {
                    Ok(result) => {
                        let seals = node.seals_in_force().await.unwrap_or_default();
                        html(200, search_page(node, &q, &params, &result, &seals))
                    }
                    Err(e) => failure(false, &e),
                }
            }
            Err(problem) => bad_request("Bad search", &problem),
        },
        (&Method::GET, "/exchange") => {
            let Some(id) = param(&params, "id") else {
                return bad_request(
                    "Bad exchange",
                    "name the exchange: /exchange?id=EXCHANGE_ID",
                );
            };
            match node.exchange(id, &dashboard).await {
                Ok(view) => html(200, pages::exchange_page(node, &view)),
                Err(e) => failure(false, &e),
            }
        }
        (&Method::GET, "/evidence") => evidence(node, &params, &dashboard).await,
        (&Method::GET, "/findings") => {
            let (from_ms, to_ms) = match window(&params) {
                Ok(w) => w,
                Err(problem) => return bad_request("Bad window", &problem),
            };
            let page = match page_number(&params) {
                Ok(p) => p,
                Err(problem) => return bad_request("Bad page", &problem),
            };
            match node.findings_between(from_ms, to_ms, &dashboard).await {
                Ok(findings) => html(
                    200,
                    pages::findings_page(node, &params, &findings, page, page_size(&params)),
                ),
                Err(e) => failure(false, &e),
            }
        }
        (&Method::GET, "/queries") => {
            let (from_ms, to_ms) = match window(&params) {
                Ok(w) => w,
                Err(problem) => return bad_request("Bad window", &problem),
            };
            let index = |name: &str| param(&params, name).map(str::parse::<u64>).transpose();
            let cursor = match (index("before"), index("after")) {
                (Ok(before), Ok(after)) => QueryCursor { before, after },
                _ => return bad_request("Bad page", "before and after must be ledger indexes"),
            };
            match node
                .queries_page(cursor, from_ms, to_ms, page_size(&params), &dashboard)
                .await
            {
                Ok(found) => html(200, pages::queries_page(node, &params, &found)),
                Err(e) => failure(false, &e),
            }
        }
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
        (&Method::POST, "/api/seal") => {
            let form = parse_form(&String::from_utf8_lossy(&body));
            let field = |k: &str| param(&form, k).map(str::trim).filter(|v| !v.is_empty());
            let Some(until) = field("until").and_then(super::seal::parse_date) else {
                return json_body(
                    400,
                    &json!({"error": {"code": "bad-query", "message": "until: give the seal's end date as YYYY-MM-DD"}}),
                );
            };
            let sealed = node
                .seal(
                    &api,
                    field("purpose").unwrap_or(""),
                    field("consumer"),
                    until,
                    field("reason").unwrap_or(""),
                )
                .await;
            match sealed {
                Ok(index) => json_body(200, &json!({"sealed": true, "index": index, "until": format_date(until)})),
                Err(super::seal::SealError::Invalid(m)) => json_body(
                    400,
                    &json!({"error": {"code": "bad-query", "message": m}}),
                ),
                Err(super::seal::SealError::Oversight(e)) => failure(true, &e),
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
    } }
    .await;
    signed_in_parts(response, &who).await
}

/// Fill in the parts of an HTML page that belong to the signed-in staff member: the header's
/// "signed in as ... [Sign out]" and the CSRF token of every form that posts (the pages mark
/// where, [`pages::SIGNED_IN`] and [`pages::CSRF`]).
async fn signed_in_parts(response: Response<Full<Bytes>>, who: &Admitted) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if !is_html {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let text = String::from_utf8_lossy(&collected.to_bytes())
        .replace(pages::SIGNED_IN, &who.badge())
        .replace(pages::CSRF, &who.csrf_field());
    Response::from_parts(parts, Full::new(Bytes::from(text)))
}

/// The overview: aggregate counts (not notarized: they name no person and no single exchange),
/// the latest denials and findings, and this node's own recent queries.
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
    let overview = Overview {
        statuses,
        pairs,
        minutes,
        denials,
        queries: node.recent_queries(15).unwrap_or_default(),
        findings: node.findings(),
        membership: node.membership_history(10).unwrap_or_default(),
    };
    html(200, pages::overview(node, &overview))
}

/// Rows on one page of a list unless `limit` says otherwise.
pub const PAGE_SIZE: usize = 50;
/// Most rows on one page of a list.
pub const MAX_PAGE_SIZE: usize = 1000;

fn bad_request(title: &str, problem: &str) -> Response<Full<Bytes>> {
    html(
        400,
        page(title, &format!("<p class=\"bad\">{}</p>", esc(problem))),
    )
}

/// `limit` as a page size (default [`PAGE_SIZE`]).
fn page_size(params: &[(String, String)]) -> usize {
    param(params, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE)
}

/// `page` (0 for the newest).
fn page_number(params: &[(String, String)]) -> Result<usize, String> {
    param(params, "page")
        .map(|p| p.parse().map_err(|_| "page must be a number".to_owned()))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The `from` and `to` parameters as Unix milliseconds.
fn window(params: &[(String, String)]) -> Result<(Option<u64>, Option<u64>), String> {
    Ok((
        param(params, "from")
            .map(|t| parse_time(t, false))
            .transpose()?,
        param(params, "to")
            .map(|t| parse_time(t, true))
            .transpose()?,
    ))
}

/// `GET /evidence?log=&index=`: one entry's tlog-proof file, notarized as `evidence`.
async fn evidence(
    node: &Oversight,
    params: &[(String, String)],
    asker: &Asker,
) -> Response<Full<Bytes>> {
    let log = param(params, "log").and_then(|l| crate::identity::DeptId::new(l).ok());
    let index = param(params, "index").and_then(|i| i.parse::<u64>().ok());
    let (Some(log), Some(index)) = (log, index) else {
        return bad_request(
            "Bad evidence request",
            "name the entry: /evidence?log=DEPARTMENT&index=N",
        );
    };
    match node.evidence_file(&log, index, asker).await {
        Ok(proof) => download(
            "text/plain; charset=utf-8",
            &format!(
                "{log}-{index}.{}",
                causeway_ledger::tlog_proof::FILE_EXTENSION
            ),
            proof.to_text().into_bytes(),
        ),
        Err(EvidenceFileError::Evidence(
            e @ (EvidenceError::UnknownLog { .. } | EvidenceError::NotReplicated { .. }),
        )) => html(
            404,
            page(
                "No evidence",
                &format!("<p class=\"bad\">{}</p>", esc(&e.to_string())),
            ),
        ),
        Err(EvidenceFileError::Evidence(e)) => {
            tracing::warn!(error = %e, "no evidence file");
            html(
                503,
                page(
                    "Unavailable",
                    &format!("<p class=\"bad\">{}</p>", esc(&e.to_string())),
                ),
            )
        }
        Err(EvidenceFileError::Query(e)) => failure(false, &e),
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

/// The GET URL of a search form: the national id in `subject`, if any, becomes `subject_tag`
/// (a query of its own, notarized before the tags are given out). The CSRF token stays behind.
async fn search_location(
    node: &Oversight,
    form: &[(String, String)],
    asker: &super::Asker,
) -> Result<String, OversightError> {
    let mut pairs: Vec<(String, String)> = form
        .iter()
        .filter(|(k, v)| k != "subject" && k != "csrf" && !v.trim().is_empty())
        .cloned()
        .collect();
    if let Some(id) = param(form, "subject") {
        pairs.retain(|(k, _)| k != "subject_tag");
        pairs.push((
            "subject_tag".into(),
            node.subject_tag_notarized(id, asker).await?,
        ));
    }
    Ok(format!("/search?{}", encode_form(&pairs)))
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

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
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
        reason: text("reason"),
        before: param(params, "before").map(str::parse).transpose()?,
        after: param(params, "after").map(str::parse).transpose()?,
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
