//! The oversight dashboard's pages: server-rendered HTML with inline CSS and SVG, no scripts and
//! nothing fetched from elsewhere. Every function here only renders what
//! [`super::dashboard`] read (and notarized); none reads the replica or the ledger itself, so a
//! page cannot show what was not notarized.
//!
//! Text from departments' logs is escaped with [`esc`], which also shows control and bidi
//! characters as escapes.

use std::fmt::Write as _;
use std::sync::Arc;

use super::crosscheck::Finding;
use super::dashboard::{encode_form, param};
use super::investigation::{ExchangeView, QueryPage, VerifiedRecord};
use super::replica::{entry_time_ms, MinuteCount, PairCount, Query, Record, SearchResult};
use super::report::esc;
use super::seal::format_date;
use super::seal::Seal;
use super::{LogStatus, Oversight};
use causeway_ledger::entry::{Entry, Side};

const STYLE: &str = r#"
*{box-sizing:border-box} body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24;background:#f4f6f9}
header{background:#1d3557;color:#fff;padding:14px 24px} header h1{margin:0;font-size:20px;overflow-wrap:anywhere} header p{margin:2px 0 0;opacity:.85}
header a{color:#fff} header form.signout{margin:4px 0 0;opacity:.9;overflow-wrap:anywhere} header form.signout button{margin-left:8px;padding:1px 8px;font:inherit}
main{padding:16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(min(520px,100%),1fr));gap:16px}
main>*{min-width:0}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:12px 16px;overflow-x:auto}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px;color:#1d3557;overflow-wrap:anywhere} h3{font-size:13px;margin:12px 0 6px;color:#1d3557}
table{border-collapse:collapse;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #eceff4;text-align:left;vertical-align:top;font-size:13px}
th{background:#f0f3f8;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:600} .bad{color:#c62828;font-weight:600} .warn{color:#b26a00;font-weight:600}
.muted{color:#6a737d} code{font-size:12px} dd code,p code,h2 code{overflow-wrap:anywhere} .ago{color:#6a737d;font-size:12px;white-space:nowrap}
td time{white-space:nowrap}
.matrix td.cell{text-align:center;min-width:110px} .matrix td.cell a{text-decoration:none;color:inherit;display:block}
.matrix .self{background:#f7f7f7;color:#bbb;text-align:center}
.al{color:#1a7f37;font-weight:600} .de{color:#c62828;font-weight:600}
form.search{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(200px,100%),1fr));gap:8px 12px}
form.search label{display:flex;flex-direction:column;font-size:12px;color:#444}
form.search input,form.search select{padding:5px 6px;border:1px solid #c8ced8;border-radius:4px;font:inherit;min-width:0}
form.search button{padding:7px 14px;background:#1d3557;color:#fff;border:0;border-radius:4px;font:inherit;cursor:pointer;align-self:end}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
a.btn{display:inline-block;padding:4px 10px;border:1px solid #1d3557;border-radius:4px;text-decoration:none;color:#1d3557;margin:0 6px 6px 0;background:#fff}
a.btn.primary{background:#1d3557;color:#fff}
nav.window,nav.pager{display:flex;flex-wrap:wrap;gap:4px 12px;align-items:center;margin:6px 0}
nav.pager a,nav.window a{white-space:nowrap}
nav.pager .off{color:#aab}
dl.fields{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 14px;margin:0}
dl.fields dt{color:#555;font-size:12px;padding-top:1px} dl.fields dd{margin:0;overflow-wrap:anywhere;min-width:0}
pre.detail{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font-size:12px}
@media (max-width:640px){
 header{padding:10px 12px} header h1{font-size:17px}
 main{padding:8px;gap:10px}
 section{padding:10px}
 dl.fields{grid-template-columns:minmax(0,1fr)} dl.fields dt{font-weight:600;margin-top:6px}
 table.records thead{display:none}
 table.records tr{display:block;border-bottom:2px solid #dde2ea;padding:4px 0}
 table.records td{display:block;position:relative;border:0;padding:2px 0 2px 8em;text-align:left;min-height:1.6em}
 table.records td::before{content:attr(data-label);position:absolute;left:0;width:7.5em;color:#555;font-size:12px}
 table.records td code{overflow-wrap:anywhere}
}
"#;

/// A page: the shared style, and nothing loaded from elsewhere.
pub(super) fn page(title: &str, body: &str) -> String {
    page_with(title, body, "")
}

/// [`page`] with more `<head>` elements (the overview's refresh).
fn page_with(title: &str, body: &str, head: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{head}<title>{t} - Causeway oversight</title><style>{STYLE}</style></head><body>{body}</body></html>",
        t = esc(title)
    )
}

/// Where a page shows who is signed in (filled in per request by the dashboard).
pub(super) const SIGNED_IN: &str = "<!--causeway:signed-in-->";
/// Where a form that posts carries the session's CSRF token (filled in per request).
pub(super) const CSRF: &str = "<!--causeway:csrf-->";

fn header_bar(node: &Oversight, subtitle: &str) -> String {
    format!(
        "<header><h1><a href=\"/\" style=\"text-decoration:none\">Causeway oversight</a> &middot; federation {}</h1><p>node {} &middot; {}</p>{SIGNED_IN}</header>",
        esc(&node.directory().federation),
        esc(node.id().as_str()),
        subtitle
    )
}

/// How often the overview reloads itself (a `<meta http-equiv="refresh">`: no script).
pub const REFRESH_SECS: u32 = 30;

const HUMAN_TIME: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
const FORM_TIME: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");

/// How long ago, in words: `just now`, `5 min ago`, `3 h ago`, `12 days ago`.
fn ago(elapsed: time::Duration) -> String {
    let secs = elapsed.whole_seconds();
    match secs {
        s if s < -60 => "in the future".to_owned(),
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 48 * 3600 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// An RFC 3339 time for people: `2026-12-06 14:03:12 UTC` and how long before `now`, with the
/// raw value in the title (anything that does not parse is shown as it is).
fn when_at(rfc3339: &str, now: time::OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "<time datetime=\"{raw}\" title=\"{raw}\">{human}</time> <span class=\"ago\">{ago}</span>",
                raw = esc(rfc3339),
                human = t.format(HUMAN_TIME).unwrap_or_default(),
                ago = ago(now - t),
            )
        }
        Err(_) => esc(rfc3339),
    }
}

fn when(rfc3339: &str) -> String {
    when_at(rfc3339, time::OffsetDateTime::now_utc())
}

/// The parameters of a list's URL, without `drop` and empty values.
fn keep(params: &[(String, String)], drop: &[&str]) -> Vec<(String, String)> {
    params
        .iter()
        .filter(|(k, v)| !v.trim().is_empty() && !drop.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn link(path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", encode_form(pairs))
    }
}

/// Parameters that point at one page of a list: a new window or page size starts again at the
/// newest page.
const PAGING: &[&str] = &["before", "after", "page"];

/// Quick time ranges (last hour, 24 h, 7 days, all time) for the list at `path`, and the page
/// size; `now` is the render time.
fn window_nav(path: &str, params: &[(String, String)], now: time::OffsetDateTime) -> String {
    let mut out = String::from("<nav class=\"window\" aria-label=\"time window\"><span class=\"muted\">Window (UTC):</span>");
    let base = keep(params, &[PAGING, &["from", "to"]].concat());
    for (id, label, span) in [
        ("last-hour", "last hour", Some(time::Duration::hours(1))),
        ("last-24h", "last 24 h", Some(time::Duration::hours(24))),
        ("last-7d", "last 7 days", Some(time::Duration::days(7))),
        ("all-time", "all time", None),
    ] {
        let mut pairs = base.clone();
        if let Some(span) = span {
            pairs.push((
                "from".into(),
                (now - span).format(FORM_TIME).unwrap_or_default(),
            ));
        }
        let _ = write!(
            out,
            "<a id=\"{id}\" href=\"{}\">{label}</a>",
            esc(&link(path, &pairs))
        );
    }
    out.push_str("<span class=\"muted\">Page size:</span>");
    let base = keep(params, &[PAGING, &["limit"]].concat());
    for size in [25, 50, 100, 200] {
        let mut pairs = base.clone();
        pairs.push(("limit".into(), size.to_string()));
        let _ = write!(out, "<a href=\"{}\">{size}</a>", esc(&link(path, &pairs)));
    }
    out.push_str("</nav>");
    out
}

/// A GET form for a list's time window.
fn window_form(path: &str, params: &[(String, String)]) -> String {
    let v = |k: &str| esc(param(params, k).unwrap_or(""));
    format!(
        "<form class=\"search\" method=\"get\" action=\"{path}\"><label>From (UTC)<input name=\"from\" type=\"datetime-local\" value=\"{from}\"></label><label>To (UTC)<input name=\"to\" type=\"datetime-local\" value=\"{to}\"></label><label>Page size<input name=\"limit\" type=\"number\" min=\"1\" max=\"1000\" value=\"{limit}\"></label><button type=\"submit\">Show</button></form>",
        from = v("from"),
        to = v("to"),
        limit = esc(param(params, "limit").unwrap_or("50")),
    )
}

/// "Newer" and "older" links (either may be absent) and a way back to the newest page.
fn pager(
    path: &str,
    newer: Option<Vec<(String, String)>>,
    older: Option<Vec<(String, String)>>,
    newest: Vec<(String, String)>,
    at_newest: bool,
) -> String {
    if newer.is_none() && older.is_none() && at_newest {
        // One page holds everything: nothing to page through.
        return String::new();
    }
    let mut out = String::from("<nav class=\"pager\" aria-label=\"pages\">");
    if !at_newest {
        let _ = write!(
            out,
            "<a id=\"newest\" href=\"{}\">&laquo; newest</a>",
            esc(&link(path, &newest))
        );
    }
    match newer {
        Some(p) => {
            let _ = write!(
                out,
                "<a id=\"newer\" rel=\"prev\" href=\"{}\">&lsaquo; newer</a>",
                esc(&link(path, &p))
            );
        }
        None => out.push_str("<span class=\"off\">&lsaquo; newer</span>"),
    }
    match older {
        Some(p) => {
            let _ = write!(
                out,
                "<a id=\"older\" rel=\"next\" href=\"{}\">older &rsaquo;</a>",
                esc(&link(path, &p))
            );
        }
        None => out.push_str("<span class=\"off\">older &rsaquo;</span>"),
    }
    out.push_str("</nav>");
    out
}

fn exchange_link(id: &str) -> String {
    format!(
        "<a class=\"exchange\" href=\"/exchange?{}\" title=\"{ide}\"><code>{ide}</code></a>",
        encode_form(&[("id".into(), id.to_owned())]),
        ide = esc(id),
    )
}

/// What the overview shows, read by [`super::dashboard`] before rendering.
pub(super) struct Overview {
    pub statuses: Vec<LogStatus>,
    pub pairs: Vec<PairCount>,
    pub minutes: Vec<MinuteCount>,
    pub denials: Vec<Record>,
    pub queries: Vec<Entry>,
    pub findings: Arc<Vec<Finding>>,
    pub membership: Vec<Entry>,
}

/// The overview page (`GET /`).
pub(super) fn overview(node: &Oversight, o: &Overview) -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut body = header_bar(
        node,
        &format!(
            "rendered {} &middot; <span id=\"refresh\">this page reloads itself every {REFRESH_SECS} s</span>",
            now.format(HUMAN_TIME).unwrap_or_default()
        ),
    );
    body.push_str("<main>");
    body.push_str(&status_section(&o.statuses));
    body.push_str(&matrix_section(node, &o.pairs));
    body.push_str(&chart_section(&o.minutes));
    body.push_str(&denials_section(&o.denials, now));
    body.push_str(&findings_section(&o.findings));
    body.push_str(&queries_section(&o.queries));
    body.push_str(&membership_section(&o.membership));
    body.push_str(&search_form(node, &[]));
    body.push_str("</main>");
    page_with(
        "Dashboard",
        &body,
        &format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">"),
    )
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

fn status_section(statuses: &[LogStatus]) -> String {
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
            pull = st.last_pull.as_deref().map_or("never".to_owned(), when),
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

fn side_name(side: Option<Side>) -> &'static str {
    match side {
        Some(Side::Provider) => "provider",
        Some(Side::Consumer) => "consumer",
        None => "",
    }
}

fn records_table(records: &[Record], seals: &[Seal], empty: &str) -> String {
    if records.is_empty() {
        return format!("<p class=\"muted\">{}</p>", esc(empty));
    }
    let now = time::OffsetDateTime::now_utc();
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
        let id = e.id.as_deref().unwrap_or("");
        let _ = write!(
            rows,
            "<tr class=\"record\" data-exchange=\"{ide}\" data-position=\"{pos}\"><td data-label=\"Time\">{time}</td><td data-label=\"Log\">{log} #{index}</td><td data-label=\"Kind\">{kind} {side}</td><td data-label=\"Exchange\">{x}</td><td data-label=\"Parties\">{c} &rarr; {p}</td><td data-label=\"Dataset\">{ds}</td><td data-label=\"Purpose\">{pu}{sealed}</td><td data-label=\"Decision\">{decision}</td><td data-label=\"Fields\">{fields}</td><td data-label=\"Rows\" class=\"num\">{rows_n}</td><td data-label=\"Subject tags\"><code>{subjects}</code></td></tr>",
            ide = esc(id),
            pos = esc(&r.position().to_string()),
            time = when_at(&e.time, now),
            log = esc(&r.log),
            index = r.index,
            kind = e.kind.as_str(),
            side = side_name(e.side),
            x = if id.is_empty() { String::new() } else { exchange_link(id) },
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
    format!("<table class=\"records\"><thead><tr><th>Time</th><th>Log</th><th>Kind</th><th>Exchange</th><th>Consumer &rarr; provider</th><th>Dataset</th><th>Purpose</th><th>Decision</th><th>Fields</th><th>Rows</th><th>Subject tags</th></tr></thead><tbody>{rows}</tbody></table>")
}

/// Denials that repeat: the same consumer asking the same provider for the same dataset and
/// purpose and refused for the same reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DenialGroup {
    pub consumer: String,
    pub provider: String,
    pub dataset: String,
    pub purpose: String,
    pub reason: String,
    pub count: usize,
    /// The earliest and latest entry's time (RFC 3339).
    pub first: String,
    pub last: String,
    /// The latest entry's exchange id.
    pub latest_exchange: String,
}

/// Group `denials` (newest first) by (consumer, provider, dataset, purpose, reason); the group
/// denied most recently first.
pub(super) fn group_denials(denials: &[Record]) -> Vec<DenialGroup> {
    let mut groups: Vec<DenialGroup> = Vec::new();
    for r in denials {
        let e = &r.entry;
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let key = (
            s(&e.consumer),
            s(&e.provider),
            s(&e.dataset),
            s(&e.purpose),
            s(&e.reason),
        );
        let ms = entry_time_ms(e);
        match groups.iter_mut().find(|g| {
            (&g.consumer, &g.provider, &g.dataset, &g.purpose, &g.reason)
                == (&key.0, &key.1, &key.2, &key.3, &key.4)
        }) {
            Some(g) => {
                g.count += 1;
                if ms < time_ms_of(&g.first) {
                    g.first = e.time.clone();
                }
                if ms > time_ms_of(&g.last) {
                    g.last = e.time.clone();
                    g.latest_exchange = s(&e.id);
                }
            }
            None => groups.push(DenialGroup {
                consumer: key.0,
                provider: key.1,
                dataset: key.2,
                purpose: key.3,
                reason: key.4,
                count: 1,
                first: e.time.clone(),
                last: e.time.clone(),
                latest_exchange: s(&e.id),
            }),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(time_ms_of(&g.last)));
    groups
}

fn time_ms_of(t: &str) -> u64 {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
        .unwrap_or(0)
}

/// How many of the latest denials the overview groups.
pub(super) const DENIALS_GROUPED: usize = 500;
/// How many groups the overview shows.
const DENIAL_GROUPS_SHOWN: usize = 12;

fn denials_section(denials: &[Record], now: time::OffsetDateTime) -> String {
    let groups = group_denials(denials);
    let mut rows = String::new();
    for g in groups.iter().take(DENIAL_GROUPS_SHOWN) {
        let mut filter = vec![
            ("consumer".to_owned(), g.consumer.clone()),
            ("provider".to_owned(), g.provider.clone()),
            ("dataset".to_owned(), g.dataset.clone()),
            ("purpose".to_owned(), g.purpose.clone()),
            ("decision".to_owned(), "deny".to_owned()),
            ("side".to_owned(), "provider".to_owned()),
            ("reason".to_owned(), g.reason.clone()),
        ];
        filter.retain(|(_, v)| !v.is_empty());
        let _ = write!(
            rows,
            "<tr class=\"denial-group\" data-count=\"{n}\"><td class=\"num\"><a class=\"group-search\" href=\"{href}\" title=\"list these denials\"><b>{n}&times;</b></a></td><td>{c} &rarr; {p}</td><td>{ds}</td><td>{pu}</td><td class=\"bad\">{reason}</td><td>{first}</td><td>{last}<br>{x}</td></tr>",
            n = g.count,
            href = esc(&link("/search", &filter)),
            c = esc(&g.consumer),
            p = esc(&g.provider),
            ds = esc(&g.dataset),
            pu = esc(&g.purpose),
            reason = esc(&g.reason),
            first = when_at(&g.first, now),
            last = when_at(&g.last, now),
            x = if g.latest_exchange.is_empty() { String::new() } else { exchange_link(&g.latest_exchange) },
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"muted\">No denials.</td></tr>");
    }
    let all = [
        ("decision".to_owned(), "deny".to_owned()),
        ("side".to_owned(), "provider".to_owned()),
    ];
    format!(
        "<section class=\"wide\" id=\"denials\"><h2>Repeated denials</h2><table><thead><tr><th>Count</th><th>Consumer &rarr; provider</th><th>Dataset</th><th>Purpose</th><th>Reason</th><th>First</th><th>Last (latest exchange)</th></tr></thead><tbody>{rows}</tbody></table><p class=\"muted\">The latest {DENIALS_GROUPED} denials (providers' records), grouped by consumer, provider, dataset, purpose and reason; {shown} of {total} groups shown, most recent first. A count lists its denials.</p>{nav}</section>",
        shown = groups.len().min(DENIAL_GROUPS_SHOWN),
        total = groups.len(),
        nav = window_nav("/search", &all, now).replace("Window (UTC):", "All denials (UTC):"),
    )
}

/// Findings shown on the overview (the rest on `/findings`).
const FINDINGS_SHOWN: usize = 20;

fn findings_rows(findings: &[Finding]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut rows = String::new();
    for f in findings {
        let _ = write!(
            rows,
            "<tr class=\"finding\" data-kind=\"{k}\"><td class=\"bad\">{k}</td><td>{x}</td><td>{c} &rarr; {p}</td><td>{t}</td><td>{d}</td></tr>",
            k = f.kind.as_str(),
            x = exchange_link(&f.exchange),
            c = esc(f.consumer.as_deref().unwrap_or("?")),
            p = esc(f.provider.as_deref().unwrap_or("?")),
            t = when_at(&f.time, now),
            d = esc(&f.detail),
        );
    }
    format!("<table><thead><tr><th>Kind</th><th>Exchange</th><th>Consumer &rarr; provider</th><th>Time</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table>")
}

fn findings_section(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "<section class=\"wide\" id=\"findings\"><h2>Cross-check findings</h2><p class=\"ok\">Both sides of every exchange agree.</p></section>".into();
    }
    let newest: Vec<Finding> = findings
        .iter()
        .rev()
        .take(FINDINGS_SHOWN)
        .cloned()
        .collect();
    format!(
        "<section class=\"wide\" id=\"findings\"><h2>Cross-check findings ({})</h2>{}<p class=\"muted\"><a id=\"all-findings\" href=\"/findings\">All findings, by time window</a> (newest {} shown here)</p></section>",
        findings.len(),
        findings_rows(&newest),
        newest.len(),
    )
}

fn query_rows(queries: &[Entry]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut rows = String::new();
    for q in queries {
        let d = q.detail.clone().unwrap_or_default();
        let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
        let _ = write!(
            rows,
            "<tr class=\"oversight-query\" data-index=\"{}\"><td class=\"num\">#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code>{}</td><td class=\"num\">{}</td></tr>",
            q.index,
            q.index,
            when_at(&q.time, now),
            esc(&s("asked_by")),
            esc(&s("via")),
            esc(&s("query")),
            esc(&d["filter"].to_string()),
            d["filter"]["exchange"].as_str().map(|x| format!("<br>{}", exchange_link(x))).unwrap_or_default(),
            q.rows.unwrap_or(0),
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"muted\">No queries.</td></tr>");
    }
    format!("<table><thead><tr><th>Entry</th><th>Time</th><th>Asked by</th><th>Via</th><th>Query</th><th>Filter</th><th>Results</th></tr></thead><tbody>{rows}</tbody></table>")
}

fn queries_section(queries: &[Entry]) -> String {
    format!("<section class=\"wide\" id=\"queries\"><h2>Who watches the watchers: recent oversight queries</h2>{}<p class=\"muted\">Every search, export, exchange page, evidence file, citizen's report and cross-check is notarized in this node's own signed log before it is answered; subjects appear only as keyed tags. <a id=\"all-queries\" href=\"/queries\">All oversight queries, by time window</a>.</p></section>", query_rows(queries))
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
<form class="search" method="post" action="/search">{CSRF}
<label>Exchange id<input name="exchange" value="{exchange}"></label>
<label>Department<select name="department">{options}</select></label>
<label>Consumer<input name="consumer" value="{consumer}"></label>
<label>Provider<input name="provider" value="{provider}"></label>
<label>Dataset<input name="dataset" value="{dataset}"></label>
<label>Purpose<input name="purpose" value="{purpose}"></label>
<label>Decision<select name="decision"><option value="">any</option><option value="allow"{da}>allow</option><option value="deny"{dd}>deny</option></select></label>
<label>Reason (of a denial)<input name="reason" value="{reason}"></label>
<label>From (UTC)<input name="from" type="datetime-local" value="{from}"></label>
<label>To (UTC)<input name="to" type="datetime-local" value="{to}"></label>
<label>Page size<input name="limit" type="number" min="1" max="1000" value="{limit}"></label>
<label>Subject national id (turned into its tag; never stored)<input name="subject" autocomplete="off"></label>
<input type="hidden" name="subject_tag" value="{tag}">
<button type="submit">Search</button>
</form></section>"#,
        exchange = v("exchange"),
        consumer = v("consumer"),
        provider = v("provider"),
        dataset = v("dataset"),
        purpose = v("purpose"),
        reason = v("reason"),
        limit = esc(param(params, "limit").unwrap_or("50")),
        from = v("from"),
        to = v("to"),
        tag = v("subject_tag"),
        da = decision("allow"),
        dd = decision("deny"),
    )
}

/// One page of a search (`GET /search`): newest first, with the time window, page size and
/// "newer"/"older" links whose cursors are the first and last rows shown.
pub(super) fn search_page(
    node: &Oversight,
    query: &Query,
    params: &[(String, String)],
    result: &SearchResult,
    seals: &[Seal],
) -> String {
    let now = time::OffsetDateTime::now_utc();
    let records = &result.records;
    let filters = keep(params, PAGING);
    // Exports take the whole search (up to their own limit), not this page.
    let export = encode_form(&keep(params, &[PAGING, &["limit"]].concat()));
    let filter = serde_json::to_string(query).unwrap_or_default();
    let cursor = |name: &str, r: &Record| {
        let mut pairs = filters.clone();
        pairs.push((name.to_owned(), r.position().to_string()));
        pairs
    };
    let newer = records
        .first()
        .filter(|_| result.has_newer(query))
        .map(|r| cursor("after", r));
    let older = records
        .last()
        .filter(|_| result.has_older(query))
        .map(|r| cursor("before", r));
    let at_newest = query.before.is_none() && query.after.is_none();
    let nav = pager("/search", newer, older, filters.clone(), at_newest);
    let mut body = header_bar(node, "search");
    body.push_str("<main>");
    let _ = write!(
        body,
        "<section class=\"wide\" id=\"results\"><h2>{n} matching entr{ies}{page}</h2>{window}<p><a class=\"btn\" id=\"export-csv\" href=\"/export.csv?{export}\">Export CSV</a><a class=\"btn\" id=\"export-json\" href=\"/export.json?{export}\">Export JSON</a>{report}</p>{nav}{table}{nav}<p class=\"muted\">filter <code>{f}</code> &middot; this search was notarized in the oversight ledger</p></section>",
        n = records.len(),
        ies = if records.len() == 1 { "y" } else { "ies" },
        page = if at_newest && !result.truncated {
            " (newest first)"
        } else {
            " on this page (newest first)"
        },
        window = window_nav("/search", params, now),
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

/// Every field of an entry, as a definition list.
fn entry_fields(e: &Entry) -> String {
    let mut out = String::from("<dl class=\"fields\">");
    let mut row = |name: &str, value: String| {
        let _ = write!(out, "<dt>{name}</dt><dd>{value}</dd>");
    };
    let text = |v: &Option<String>| match v {
        Some(v) => esc(v),
        None => "<span class=\"muted\">&ndash;</span>".to_owned(),
    };
    let code = |v: &Option<String>| match v {
        Some(v) => format!("<code>{}</code>", esc(v)),
        None => "<span class=\"muted\">&ndash;</span>".to_owned(),
    };
    row("Time", when(&e.time));
    row("Kind", esc(e.kind.as_str()));
    row("Side", esc(side_name(e.side)));
    row("Exchange", code(&e.id));
    row("Consumer", text(&e.consumer));
    row("Provider", text(&e.provider));
    row("Dataset", text(&e.dataset));
    row("Purpose", text(&e.purpose));
    row("Legal basis", text(&e.legal_basis));
    row("Case", text(&e.case));
    row("Officer tag", code(&e.officer));
    row("Application", text(&e.application));
    row(
        "Subject tags",
        if e.subjects.is_empty() {
            "<span class=\"muted\">&ndash;</span>".to_owned()
        } else {
            e.subjects
                .iter()
                .map(|t| {
                    format!(
                        "<code class=\"subject\" title=\"{full}\">{short}&hellip;</code>",
                        full = esc(t),
                        short = esc(t.get(..16).unwrap_or(t)),
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    row("Request digest", code(&e.request_digest));
    row("Response digest", code(&e.response_digest));
    row(
        "Fields",
        if e.fields.is_empty() {
            "<span class=\"muted\">&ndash;</span>".to_owned()
        } else {
            esc(&e.fields.join(", "))
        },
    );
    row(
        "Rows",
        e.rows
            .map_or("<span class=\"muted\">&ndash;</span>".to_owned(), |n| {
                n.to_string()
            }),
    );
    row(
        "Decision",
        match e.decision.as_deref() {
            Some("allow") => "<span class=\"ok\">allow</span>".to_owned(),
            Some(d) => format!("<span class=\"bad\">{}</span>", esc(d)),
            None => "<span class=\"muted\">&ndash;</span>".to_owned(),
        },
    );
    row("Reason", text(&e.reason));
    row("Rule", code(&e.rule));
    row("Outcome", text(&e.outcome));
    row("Policy hash", code(&e.policy));
    row(
        "Peer receipt",
        match &e.peer_receipt {
            Some(p) => format!(
                "{} #{} (leaf <code>{}</code>, in its checkpoint of size {})",
                esc(&p.log),
                p.index,
                esc(&p.leaf_hash),
                p.checkpoint_size
            ),
            None => "<span class=\"muted\">&ndash;</span>".to_owned(),
        },
    );
    row(
        "Detail",
        match &e.detail {
            Some(d) => format!(
                "<pre class=\"detail\">{}</pre>",
                esc(&serde_json::to_string_pretty(d).unwrap_or_default())
            ),
            None => "<span class=\"muted\">&ndash;</span>".to_owned(),
        },
    );
    row("Previous leaf", code(&Some(e.prev.clone())));
    out.push_str("</dl>");
    out
}

/// How an entry is verified: its place in its log, its leaf hash, the checkpoint that covers it
/// and who cosigned that checkpoint; and its evidence file.
fn verification(v: &VerifiedRecord) -> String {
    let r = &v.record;
    let (class, status) = match (&v.flag, &v.checkpoint) {
        (Some(flag), _) => (
            "bad",
            format!("its log is FLAGGED: {} ({})", esc(&flag.reason), esc(&flag.message)),
        ),
        (None, Some(_)) => (
            "ok",
            "verified: re-hashed here, chained to the entry before it and covered by a checkpoint the log signed".to_owned(),
        ),
        (None, None) => (
            "warn",
            "replicated and chained, but no verified checkpoint covers it yet".to_owned(),
        ),
    };
    let checkpoint = match &v.checkpoint {
        Some(c) => format!(
            "size {} &middot; root <code>{}</code>",
            c.size,
            esc(&c.root)
        ),
        None => "<span class=\"muted\">none yet</span>".to_owned(),
    };
    let witnesses = if v.witnesses.is_empty() {
        format!("0 of {} known witnesses", v.known_witnesses)
    } else {
        format!(
            "{} of {} known witnesses: {}",
            v.witnesses.len(),
            v.known_witnesses,
            esc(&v.witnesses.join(", "))
        )
    };
    format!(
        "<h3>Verification</h3><dl class=\"fields verification\"><dt>Status</dt><dd class=\"{class}\" data-verified=\"{verified}\">{status}</dd><dt>Log</dt><dd>{log}</dd><dt>Index</dt><dd>{index}</dd><dt>Leaf hash</dt><dd><code>{leaf}</code></dd><dt>Checkpoint</dt><dd>{checkpoint}</dd><dt>Cosigned by</dt><dd class=\"witnesses\" data-witnesses=\"{wn}\">{witnesses}</dd></dl><p><a class=\"btn primary evidence\" href=\"{href}\" download>Download evidence</a><span class=\"muted\">a tlog-proof file: verify it offline with <code>causeway log verify-proof FILE --directory federation.toml</code></span></p>",
        verified = class == "ok",
        log = esc(&r.log),
        index = r.index,
        leaf = esc(&r.leaf_hash),
        wn = v.witnesses.len(),
        href = esc(&link(
            "/evidence",
            &[
                ("log".to_owned(), r.log.clone()),
                ("index".to_owned(), r.index.to_string()),
            ]
        )),
    )
}

/// The exchange page (`GET /exchange?id=`): both sides' entries with every field, how each is
/// verified, a download of each one's evidence, and the cross-check's findings.
pub(super) fn exchange_page(node: &Oversight, view: &ExchangeView) -> String {
    let mut body = header_bar(node, "exchange");
    body.push_str("<main>");
    let first = view.entries.first().map(|v| &v.record.entry);
    let sides: Vec<&str> = view
        .entries
        .iter()
        .map(|v| side_name(v.record.entry.side))
        .collect();
    let crosscheck = if !view.findings.is_empty() {
        format!(
            "<p class=\"bad\" id=\"crosscheck\" data-findings=\"{}\">The cross-check found {} problem(s) with this exchange:</p>{}",
            view.findings.len(),
            view.findings.len(),
            findings_rows(&view.findings)
        )
    } else if sides.contains(&"provider") && sides.contains(&"consumer") {
        "<p class=\"ok\" id=\"crosscheck\" data-findings=\"0\">Both sides recorded this exchange and the cross-check found no disagreement.</p>".to_owned()
    } else if view.entries.is_empty() {
        "<p class=\"warn\" id=\"crosscheck\" data-findings=\"0\">No replicated log holds this exchange.</p>".to_owned()
    } else {
        "<p class=\"warn\" id=\"crosscheck\" data-findings=\"0\">Only one side is replicated so far; the cross-check reports a missing side once the other log has been pulled past the grace period.</p>".to_owned()
    };
    let _ = write!(
        body,
        "<section class=\"wide\" id=\"exchange\"><h2>Exchange <code>{id}</code></h2>{summary}{crosscheck}<p class=\"muted\">Notarized in the oversight ledger as an <code>exchange</code> query. <a href=\"/search?{search}\">This exchange in the search</a>.</p></section>",
        id = esc(&view.id),
        summary = match first {
            Some(e) => format!(
                "<p>{c} asked {p} for <b>{ds}</b> &middot; purpose {pu} &middot; {t}</p>",
                c = esc(e.consumer.as_deref().unwrap_or("?")),
                p = esc(e.provider.as_deref().unwrap_or("?")),
                ds = esc(e.dataset.as_deref().unwrap_or("?")),
                pu = esc(e.purpose.as_deref().unwrap_or("?")),
                t = when(&e.time),
            ),
            None => String::new(),
        },
        search = encode_form(&[("exchange".into(), view.id.clone())]),
    );
    for v in &view.entries {
        let r = &v.record;
        let side = side_name(r.entry.side);
        let _ = write!(
            body,
            "<section class=\"entry\" data-side=\"{side}\" data-log=\"{log}\" data-index=\"{index}\"><h2>{who}'s entry &middot; {log} log #{index}</h2>{fields}{verification}</section>",
            who = match side {
                "provider" => "Provider",
                "consumer" => "Consumer",
                _ => "An",
            },
            log = esc(&r.log),
            index = r.index,
            fields = entry_fields(&r.entry),
            verification = verification(v),
        );
    }
    body.push_str("</main>");
    page("Exchange", &body)
}

/// `GET /findings`: the cross-check's findings in a time window, newest first, a page at a time.
pub(super) fn findings_page(
    node: &Oversight,
    params: &[(String, String)],
    findings: &[Finding],
    page_no: usize,
    size: usize,
) -> String {
    let now = time::OffsetDateTime::now_utc();
    let start = page_no.saturating_mul(size).min(findings.len());
    let end = start.saturating_add(size).min(findings.len());
    let base = keep(params, PAGING);
    let at = |n: usize| {
        let mut pairs = base.clone();
        if n > 0 {
            pairs.push(("page".into(), n.to_string()));
        }
        pairs
    };
    let nav = pager(
        "/findings",
        (page_no > 0).then(|| at(page_no - 1)),
        (end < findings.len()).then(|| at(page_no + 1)),
        base.clone(),
        page_no == 0,
    );
    let mut body = header_bar(node, "findings");
    let _ = write!(
        body,
        "<main><section class=\"wide\" id=\"findings\"><h2>Cross-check findings: {shown} of {total} in this window (newest first)</h2>{window}{form}{nav}{table}{nav}<p class=\"muted\">Notarized in the oversight ledger as a <code>findings</code> query.</p></section></main>",
        shown = end - start,
        total = findings.len(),
        window = window_nav("/findings", params, now),
        form = window_form("/findings", params),
        table = if findings.is_empty() {
            "<p class=\"ok\">No findings in this window.</p>".to_owned()
        } else {
            findings_rows(&findings[start..end])
        },
    );
    page("Findings", &body)
}

/// `GET /queries`: this node's own oversight queries in a time window, newest first.
pub(super) fn queries_page(
    node: &Oversight,
    params: &[(String, String)],
    found: &QueryPage,
) -> String {
    let now = time::OffsetDateTime::now_utc();
    let base = keep(params, PAGING);
    let at = |name: &str, index: Option<u64>| {
        index.map(|i| {
            let mut pairs = base.clone();
            pairs.push((name.to_owned(), i.to_string()));
            pairs
        })
    };
    let at_newest = param(params, "before").is_none() && param(params, "after").is_none();
    let nav = pager(
        "/queries",
        at("after", found.newer),
        at("before", found.older),
        base.clone(),
        at_newest,
    );
    let mut body = header_bar(node, "oversight queries");
    let _ = write!(
        body,
        "<main><section class=\"wide\" id=\"queries\"><h2>Oversight queries: {n} on this page (newest first)</h2>{window}{form}{nav}{table}{nav}<p class=\"muted\">This node's own signed log; reading it is notarized too (as <code>oversight-queries</code>).</p></section></main>",
        n = found.queries.len(),
        window = window_nav("/queries", params, now),
        form = window_form("/queries", params),
        table = query_rows(&found.queries),
    );
    page("Oversight queries", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_ledger::entry::Kind;

    #[test]
    fn times_read_as_people_say_them_with_the_raw_value_kept() {
        let now = time::macros::datetime!(2026-12-06 14:08:13 UTC);
        let html = when_at("2026-12-06T14:03:12.250Z", now);
        assert!(html.contains(">2026-12-06 14:03:12 UTC</time>"), "{html}");
        assert!(
            html.contains("title=\"2026-12-06T14:03:12.250Z\""),
            "{html}"
        );
        assert!(html.contains("5 min ago"), "{html}");
        assert!(when_at("2026-12-06T12:08:00Z", now).contains("2 h ago"));
        assert!(when_at("2026-12-01T12:08:00Z", now).contains("5 days ago"));
        assert!(when_at("2026-12-06T14:08:00Z", now).contains("just now"));
        assert_eq!(when_at("not <a> time", now), "not &lt;a&gt; time");
    }

    fn denial(index: u64, time: &str, consumer: &str, reason: &str) -> Record {
        let mut e = Entry::new(Kind::Exchange);
        e.index = index;
        e.time = time.into();
        e.side = Some(Side::Provider);
        e.id = Some(format!("x-{index}"));
        e.consumer = Some(consumer.into());
        e.provider = Some("civil-registry".into());
        e.dataset = Some("residents".into());
        e.purpose = Some("benefit-eligibility".into());
        e.decision = Some("deny".into());
        e.reason = Some(reason.into());
        Record {
            log: "civil-registry".into(),
            index,
            leaf_hash: String::new(),
            entry: e,
        }
    }

    #[test]
    fn repeated_denials_are_grouped_with_count_first_and_last() {
        // Newest first, as a search returns them.
        let denials = [
            denial(5, "2026-01-01T10:05:00Z", "tax-office", "no-rule"),
            denial(4, "2026-01-01T10:04:00Z", "social-welfare", "no-rule"),
            denial(3, "2026-01-01T10:03:00Z", "tax-office", "no-rule"),
            denial(2, "2026-01-01T10:02:00Z", "tax-office", "rate-limited"),
            denial(1, "2026-01-01T10:01:00Z", "tax-office", "no-rule"),
        ];
        let groups = group_denials(&denials);
        assert_eq!(groups.len(), 3);
        let g = &groups[0];
        assert_eq!(
            (g.consumer.as_str(), g.reason.as_str(), g.count),
            ("tax-office", "no-rule", 3)
        );
        assert_eq!(
            (g.first.as_str(), g.last.as_str()),
            ("2026-01-01T10:01:00Z", "2026-01-01T10:05:00Z")
        );
        assert_eq!(g.latest_exchange, "x-5");
        assert_eq!(
            (groups[1].consumer.as_str(), groups[1].count),
            ("social-welfare", 1)
        );
        assert_eq!(
            (groups[2].reason.as_str(), groups[2].count),
            ("rate-limited", 1)
        );
    }
}
