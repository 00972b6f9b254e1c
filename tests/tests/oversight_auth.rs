//! Staff sign-in on the oversight dashboard and API, as an attacker would try it: anonymous
//! requests to every route, a spoofed operator header, cross-site form posts, a foreign `Host`,
//! password guessing, a viewer reaching for investigator and subject routes, and a session that
//! outlives its account being disabled. Real oversight node, real HTTP, real staff file.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use causeway::gateway::Gateway;
use causeway::oversight::staff::StaffFile;
use causeway_tests::{
    causeway_cli, get_text, ledger_entries, sign_in, staff_csrf, start_oversight, Federation,
    STAFF_PASSWORD,
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// One raw request: method, path, extra headers (a `Host` naming `addr` unless one is given),
/// body. Status, headers, body text.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, http::HeaderMap, String)> {
    let mut request = http::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request = request.header(http::header::HOST, addr.to_string());
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Full::new(Bytes::from(body.to_owned())))?;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("content-type", "application/json");

/// A federation with two exchanges (one about D000042) and its oversight node, pulled.
async fn federation() -> (
    Federation,
    Gateway,
    causeway::layout::OversightLayout,
    String,
) {
    let fed = Federation::start().await.unwrap();
    let (status, body) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let id = body["exchange"].as_str().unwrap().to_owned();
    let (oversight, layout) = start_oversight(&fed).await.unwrap();
    oversight
        .oversight()
        .unwrap()
        .pull_all(std::sync::Arc::new(|_: &str, _, _| {}))
        .await;
    (fed, oversight, layout, id)
}

fn queries(layout: &causeway::layout::OversightLayout) -> Vec<Value> {
    ledger_entries(&layout.dir.join("ledger"))
        .unwrap()
        .into_iter()
        .filter(|e| e["kind"] == "oversight-query")
        .collect()
}

#[tokio::test]
async fn anonymous_requests_to_every_route_get_a_sign_in_and_never_data() {
    let (mut fed, oversight, layout, exchange) = federation().await;
    let addr = oversight.client_addr;
    let tag = "ab".repeat(32);
    let html_routes = [
        "/".to_owned(),
        format!("/search?exchange={exchange}"),
        format!("/search?subject_tag={tag}"),
        format!("/export.csv?exchange={exchange}"),
        format!("/export.json?exchange={exchange}"),
        format!("/report?subject_tag={tag}"),
        format!("/exchange?id={exchange}"),
        "/evidence?log=civil-registry&index=1".to_owned(),
        "/findings".to_owned(),
        "/queries".to_owned(),
        "/staff".to_owned(),
        "/no-such-page".to_owned(),
    ];
    let api_routes = [
        format!("/api/search?exchange={exchange}"),
        format!("/api/subject?tag={tag}"),
        format!("/api/bundle?tag={tag}"),
        "/api/crosscheck".to_owned(),
        "/api/status".to_owned(),
        "/api/membership".to_owned(),
    ];
    let spoofed = [("causeway-operator", "Chief Justice Alice")];
    for headers in [&[][..], &spoofed[..]] {
        for path in &html_routes {
            let (status, h, body) = call(addr, "GET", path, headers, "").await.unwrap();
            assert_eq!(status, 303, "{path}: {body}");
            let location = h[http::header::LOCATION].to_str().unwrap();
            assert!(
                location.starts_with("/login?next=%2F"),
                "{path} -> {location}"
            );
            // (The link to sign in repeats the path asked for, and nothing else.)
            for secret in ["civil-registry", "social-welfare", exchange.as_str()] {
                assert!(
                    path.contains(secret) || !body.contains(secret),
                    "{path} leaks {secret}: {body}"
                );
            }
        }
        for path in &api_routes {
            let (status, _, body) = call(addr, "GET", path, headers, "").await.unwrap();
            assert_eq!(status, 401, "{path}: {body}");
            let error: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["error"]["code"], "sign-in", "{path}: {body}");
            for secret in ["civil-registry", "social-welfare", exchange.as_str()] {
                assert!(!body.contains(secret), "{path} leaks {secret}: {body}");
            }
        }
        for path in ["/search", "/logout"] {
            let (status, h, body) = call(
                addr,
                "POST",
                path,
                &[headers, &[FORM]].concat(),
                "exchange=x&subject=D000042",
            )
            .await
            .unwrap();
            assert_eq!(status, 303, "POST {path}: {body}");
            assert_eq!(h[http::header::LOCATION], "/login?next=%2F");
        }
    }
    // Health says nothing about anyone, and stays open for probes.
    let (status, _, body) = call(addr, "GET", "/healthz", &[], "").await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"alive"}"#));
    assert!(
        queries(&layout).is_empty(),
        "nothing was answered, so nothing was notarized"
    );

    // Signed in, the spoofed header changes nothing: the ledger names the staff member.
    let cookie = sign_in(addr, "investigator", STAFF_PASSWORD).await.unwrap();
    let (status, _, body) = call(
        addr,
        "GET",
        &format!("/api/search?exchange={exchange}"),
        &[("cookie", &cookie), spoofed[0]],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&exchange));
    oversight.shutdown().await;
    let notarized = queries(&layout);
    assert_eq!(notarized.len(), 1, "{notarized:#?}");
    let detail = &notarized[0]["detail"];
    assert_eq!(detail["asked_by"], "investigator", "{detail}");
    assert_eq!(detail["role"], "investigator", "{detail}");
    assert_eq!(detail["via"], "api", "{detail}");
    assert!(!notarized[0].to_string().contains("Chief Justice"));
    fed.stop().await;
}

#[tokio::test]
async fn cross_site_form_posts_and_a_foreign_host_are_refused() {
    let (mut fed, oversight, layout, exchange) = federation().await;
    let addr = oversight.client_addr;
    let cookie = sign_in(addr, "admin", STAFF_PASSWORD).await.unwrap();
    let csrf = staff_csrf(addr, &cookie).await.unwrap();
    assert_eq!(csrf.len(), 43, "a 32-byte token: {csrf}");
    let form = |token: &str| format!("exchange={exchange}&csrf={token}");
    let origin = format!("http://{addr}");
    let refused = [
        (
            vec![("cookie", cookie.as_str()), FORM],
            format!("exchange={exchange}"),
        ),
        (vec![("cookie", cookie.as_str()), FORM], form("forged")),
        (
            vec![
                ("cookie", cookie.as_str()),
                FORM,
                ("origin", "https://evil.example"),
            ],
            form(&csrf),
        ),
        (
            vec![("cookie", cookie.as_str()), FORM, ("origin", "null")],
            form(&csrf),
        ),
        (
            vec![
                ("cookie", cookie.as_str()),
                FORM,
                ("sec-fetch-site", "cross-site"),
            ],
            form(&csrf),
        ),
        // A sandboxed frame elsewhere posts with `Origin: null`; its browser says cross-site.
        (
            vec![
                ("cookie", cookie.as_str()),
                FORM,
                ("origin", "null"),
                ("sec-fetch-site", "cross-site"),
            ],
            form(&csrf),
        ),
    ];
    for (headers, body) in &refused {
        let (status, _, answer) = call(addr, "POST", "/search", headers, body).await.unwrap();
        assert_eq!(status, 403, "{headers:?} {body}: {answer}");
        assert!(
            !answer.contains(&exchange) || answer.contains("CSRF") || answer.contains("origin")
        );
    }
    // The same form from the dashboard itself goes through: with its own origin, or, as a
    // browser sends it under the pages' `referrer-policy: no-referrer`, `Origin: null` with
    // `Sec-Fetch-Site: same-origin`.
    let (status, h, _) = call(
        addr,
        "POST",
        "/search",
        &[
            ("cookie", &cookie),
            FORM,
            ("origin", &origin),
            ("sec-fetch-site", "same-origin"),
        ],
        &form(&csrf),
    )
    .await
    .unwrap();
    assert_eq!(status, 303);
    // So does what Chromium really sends for it: our pages' Referrer-Policy (no-referrer) makes a
    // same-origin form post carry `Origin: null` (found by the WebDriver test's sign-in).
    let (status, _, answer) = call(
        addr,
        "POST",
        "/search",
        &[
            ("cookie", &cookie),
            FORM,
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
        ],
        &form(&csrf),
    )
    .await
    .unwrap();
    assert_eq!(status, 303, "{answer}");
    let location = h[http::header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("/search?") && !location.contains("csrf"),
        "{location}"
    );
    // Signing out needs the token too; without it the session lives on.
    let (status, ..) = call(addr, "POST", "/logout", &[("cookie", &cookie), FORM], "")
        .await
        .unwrap();
    assert_eq!(status, 403);

    // The sign-in form: its CSRF token is a double-submit cookie; a post from elsewhere, or
    // without the cookie, is refused before the password is even looked at.
    let (status, h, page) = call(addr, "GET", "/login?next=/api/status", &[], "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let login_cookie = h
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("causeway_login_csrf="))
        .unwrap();
    let token = login_cookie["causeway_login_csrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(page.contains(&format!("name=\"csrf\" value=\"{token}\"")));
    let credentials = format!(
        "name=viewer&password={}&next=%2Fapi%2Fstatus",
        STAFF_PASSWORD.replace(' ', "+")
    );
    let with_cookie = format!("causeway_login_csrf={token}");
    for (headers, body) in [
        (vec![FORM], format!("{credentials}&csrf={token}")),
        (
            vec![FORM, ("cookie", with_cookie.as_str())],
            credentials.clone(),
        ),
        (
            vec![
                FORM,
                ("cookie", with_cookie.as_str()),
                ("origin", "https://evil.example"),
            ],
            format!("{credentials}&csrf={token}"),
        ),
    ] {
        let (status, h, _) = call(addr, "POST", "/login", &headers, &body).await.unwrap();
        assert_eq!(status, 403, "{headers:?}");
        assert!(h.get(http::header::SET_COOKIE).is_none());
    }
    let (status, h, _) = call(
        addr,
        "POST",
        "/login",
        &[FORM, ("cookie", &with_cookie)],
        &format!("{credentials}&csrf={token}"),
    )
    .await
    .unwrap();
    assert_eq!(status, 303);
    assert_eq!(h[http::header::LOCATION], "/api/status");
    let session = h
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("causeway_session="))
        .unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    // An open redirect after sign-in is not followed.
    let (status, h, _) = call(
        addr,
        "POST",
        "/login",
        &[FORM, ("cookie", &with_cookie)],
        &format!(
            "name=viewer&password={}&next=%2F%2Fevil.example%2F&csrf={token}",
            STAFF_PASSWORD.replace(' ', "+")
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, h[http::header::LOCATION].to_str().unwrap()),
        (303, "/")
    );

    // The JSON sign-in wants JSON (a form post cannot forge one) and no foreign origin.
    let credentials = json!({"name": "viewer", "password": STAFF_PASSWORD}).to_string();
    for (headers, status_expected) in [
        (vec![("content-type", "text/plain")], 415),
        (vec![FORM], 415),
        (vec![JSON, ("origin", "https://evil.example")], 403),
    ] {
        let (status, h, _) = call(addr, "POST", "/api/login", &headers, &credentials)
            .await
            .unwrap();
        assert_eq!(status, status_expected, "{headers:?}");
        assert!(h.get(http::header::SET_COOKIE).is_none());
    }

    // A foreign Host (DNS rebinding) is refused with the setting to change; localhost:port is
    // the default's other name.
    let (status, _, body) = call(
        addr,
        "GET",
        "/api/status",
        &[("host", "evil.example"), ("cookie", &cookie)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 421, "{body}");
    assert!(
        body.contains("[oversight] hosts") && !body.contains("civil-registry"),
        "{body}"
    );
    let (status, _, body) = call(
        addr,
        "GET",
        "/",
        &[
            ("host", &format!("rebound.example:{}", addr.port())),
            ("cookie", &cookie),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 421, "{body}");
    let (status, h, body) = call(
        addr,
        "GET",
        "/api/status",
        &[
            ("host", &format!("localhost:{}", addr.port())),
            ("cookie", &cookie),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // Every answer forbids framing and referrers.
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    oversight.shutdown().await;
    assert!(
        queries(&layout)
            .iter()
            .all(|q| q["detail"]["asked_by"] == "admin"),
        "only the admin's own search was notarized"
    );
    fed.stop().await;
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_and_roles_limit_what_each_sees() {
    let (mut fed, oversight, layout, exchange) = federation().await;
    let addr = oversight.client_addr;
    let admin_port = layout.admin.unwrap();

    // Five wrong passwords lock the account; then the right one is refused too, and an unknown
    // name gets the very same answer.
    let attempt = |name: &'static str, password: &'static str| async move {
        let body = json!({"name": name, "password": password}).to_string();
        call(addr, "POST", "/api/login", &[JSON], &body)
            .await
            .unwrap()
    };
    let (_, _, refused) = attempt("investigator", "not the password").await;
    for _ in 0..4 {
        let (status, h, body) = attempt("investigator", "not the password").await;
        assert_eq!((status, body.as_str()), (401, refused.as_str()));
        assert!(h.get(http::header::SET_COOKIE).is_none());
    }
    let (status, _, body) = attempt("investigator", STAFF_PASSWORD).await;
    assert_eq!((status, body.as_str()), (401, refused.as_str()), "locked");
    let (status, _, body) = attempt("nobody-here", "not the password").await;
    assert_eq!(
        (status, body.as_str()),
        (401, refused.as_str()),
        "same answer"
    );
    assert!(!refused.contains("not the password"));
    let metrics = get_text(admin_port, "/metrics").await.unwrap().1;
    assert!(
        metrics.contains("causeway_oversight_sign_ins_total{outcome=\"locked\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("causeway_oversight_sign_ins_total{outcome=\"wrong-password\"} 6"));

    // A viewer sees the aggregates, and nothing by exchange or by subject.
    let tag = "ab".repeat(32);
    let viewer = sign_in(addr, "viewer", STAFF_PASSWORD).await.unwrap();
    for path in ["/", "/api/status", "/api/membership", "/findings"] {
        let (status, _, body) = call(addr, "GET", path, &[("cookie", &viewer)], "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, _, overview) = call(addr, "GET", "/", &[("cookie", &viewer)], "")
        .await
        .unwrap();
    assert!(overview.contains("signed in as <b>viewer</b>"));
    let investigator_routes = [
        format!("/search?exchange={exchange}"),
        format!("/export.csv?exchange={exchange}"),
        format!("/export.json?exchange={exchange}"),
        format!("/api/search?exchange={exchange}"),
        "/api/crosscheck".to_owned(),
        format!("/exchange?id={exchange}"),
        "/evidence?log=civil-registry&index=1".to_owned(),
        "/queries".to_owned(),
    ];
    let subject_routes = [
        format!("/search?subject_tag={tag}"),
        format!("/report?subject_tag={tag}"),
        format!("/api/subject?tag={tag}"),
        format!("/api/search?subject_tag={tag}"),
        format!("/api/bundle?tag={tag}"),
    ];
    for path in investigator_routes
        .iter()
        .chain(&subject_routes)
        .chain([&"/staff".to_owned()])
    {
        let (status, _, body) = call(addr, "GET", path, &[("cookie", &viewer)], "")
            .await
            .unwrap();
        assert_eq!(status, 403, "viewer {path}: {body}");
        assert!(!body.contains(&exchange), "{path}: {body}");
    }
    let viewer_csrf = staff_csrf(addr, &viewer).await.unwrap();
    let (status, h, _) = call(
        addr,
        "POST",
        "/search",
        &[("cookie", &viewer), FORM],
        &format!("subject=D000042&csrf={viewer_csrf}"),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "the viewer cannot turn an id into tags");
    assert!(h.get(http::header::LOCATION).is_none());

    // An investigator searches by exchange but not by subject; a subject officer does both.
    let officer = sign_in(addr, "officer", STAFF_PASSWORD).await.unwrap();
    // (Which entry an evidence file exists for is the ui's test; here only the role matters.)
    for path in investigator_routes
        .iter()
        .filter(|p| !p.starts_with("/evidence"))
    {
        let (status, _, body) = call(addr, "GET", path, &[("cookie", &officer)], "")
            .await
            .unwrap();
        assert_eq!(status, 200, "officer {path}: {body}");
    }
    let officer_csrf = staff_csrf(addr, &officer).await.unwrap();
    let (status, h, _) = call(
        addr,
        "POST",
        "/search",
        &[("cookie", &officer), FORM],
        &format!("subject=D000042&csrf={officer_csrf}"),
    )
    .await
    .unwrap();
    assert_eq!(status, 303);
    let location = h[http::header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.contains("subject_tag=") && !location.contains("D000042"));
    let (status, _, page) = call(addr, "GET", &location, &[("cookie", &officer)], "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains(&exchange),
        "the officer finds the person's exchange"
    );
    let admin = sign_in(addr, "admin", STAFF_PASSWORD).await.unwrap();
    let (status, _, staff) = call(addr, "GET", "/staff", &[("cookie", &admin)], "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(staff.contains("investigator") && staff.contains("officer"));
    assert!(!staff.contains("$argon2"), "never a hash: {staff}");
    let metrics = get_text(admin_port, "/metrics").await.unwrap().1;
    assert!(
        metrics.contains(
            "causeway_oversight_queries_total{role=\"subject-officer\",query=\"subject-tag\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("causeway_oversight_queries_total{role=\"investigator\",query=\"export\"} 2"));

    // The national id typed into the form was notarized as a tag computation, before the tags
    // were given out, with the tags and never the id.
    oversight.shutdown().await;
    let notarized = queries(&layout);
    let tagging = notarized
        .iter()
        .find(|q| q["detail"]["query"] == "subject-tag")
        .expect("the tag computation is notarized");
    assert_eq!(tagging["detail"]["asked_by"], "officer");
    assert_eq!(tagging["detail"]["role"], "subject-officer");
    assert!(!notarized.iter().any(|q| q.to_string().contains("D000042")));
    assert!(
        notarized
            .iter()
            .filter(|q| q["detail"]["asked_by"] == "viewer")
            .all(|q| q["detail"]["query"] == "findings" && q["detail"]["role"] == "viewer"),
        "the viewer was answered only the findings it may see: {notarized:#?}"
    );
    fed.stop().await;
}

#[tokio::test]
async fn a_disabled_account_or_a_new_password_ends_open_sessions() {
    let (mut fed, oversight, layout, exchange) = federation().await;
    let addr = oversight.client_addr;
    let path = format!("/api/search?exchange={exchange}");
    let investigator = sign_in(addr, "investigator", STAFF_PASSWORD).await.unwrap();
    let officer = sign_in(addr, "officer", STAFF_PASSWORD).await.unwrap();
    for cookie in [&investigator, &officer] {
        let (status, ..) = call(addr, "GET", &path, &[("cookie", cookie)], "")
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let staff_file = layout.dir.join("staff.toml");
    let config = layout.config.display().to_string();
    let cli = |args: Vec<&str>| {
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        tokio::spawn(causeway_cli(args))
    };
    // `causeway audit` reaches the running node only signed in.
    let anonymous = cli(vec!["audit", "status", "--config", &config])
        .await
        .unwrap();
    assert_eq!(
        anonymous,
        std::process::ExitCode::from(2),
        "a running node needs --staff: a usage error"
    );
    let signed_in = cli(vec![
        "audit", "status", "--config", &config, "--staff", "viewer",
    ])
    .await
    .unwrap();
    assert_eq!(signed_in, std::process::ExitCode::SUCCESS);
    let code = cli(vec![
        "oversight",
        "staff",
        "disable",
        "investigator",
        "--config",
        &config,
    ])
    .await
    .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(
        StaffFile::load(&staff_file)
            .unwrap()
            .get("investigator")
            .unwrap()
            .disabled
    );
    let mut file = StaffFile::load(&staff_file).unwrap();
    file.set_password("officer", "a brand new passphrase")
        .unwrap();
    file.save(&staff_file).unwrap();
    // The node looks at the file at most once a second: both sessions end within a few.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut ended = true;
        for cookie in [&investigator, &officer] {
            let (status, ..) = call(addr, "GET", &path, &[("cookie", cookie)], "")
                .await
                .unwrap();
            ended &= status == 401;
        }
        if ended {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sessions outlived the change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The disabled account cannot sign in again; the new password works, the old one not.
    assert!(sign_in(addr, "investigator", STAFF_PASSWORD).await.is_err());
    assert!(sign_in(addr, "officer", STAFF_PASSWORD).await.is_err());
    let again = sign_in(addr, "officer", "a brand new passphrase")
        .await
        .unwrap();
    let (status, ..) = call(addr, "GET", &path, &[("cookie", &again)], "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    // Signing out ends the session.
    let csrf = staff_csrf(addr, &again).await.unwrap();
    let (status, h, _) = call(
        addr,
        "POST",
        "/logout",
        &[("cookie", &again), FORM],
        &format!("csrf={csrf}"),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, h[http::header::LOCATION].to_str().unwrap()),
        (303, "/login")
    );
    let (status, ..) = call(addr, "GET", &path, &[("cookie", &again)], "")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let metrics = get_text(layout.admin.unwrap(), "/metrics").await.unwrap().1;
    assert!(
        metrics.contains("causeway_oversight_sign_ins_total{outcome=\"disabled\"} 1"),
        "{metrics}"
    );
    oversight.shutdown().await;
    fed.stop().await;
}

/// Every read a staff member can make, through every route that answers data: each appends one
/// `oversight-query` entry naming them before it answers, and once the oversight ledger can take
/// no entry (closed here; a full disk or a failed write alike) each answers 503 and none of the
/// data. Checked against the running node's own ledger handle.
#[tokio::test]
async fn every_read_is_notarized_before_it_is_answered_and_none_is_answered_unnotarized() {
    let (mut fed, oversight, _layout, exchange) = federation().await;
    let addr = oversight.client_addr;
    let node = oversight.oversight().unwrap().clone();
    let cookie = sign_in(addr, "admin", STAFF_PASSWORD).await.unwrap();
    let csrf = staff_csrf(addr, &cookie).await.unwrap();
    let newest = || {
        let queries = node.recent_queries(1000).unwrap();
        (
            queries.len(),
            queries.first().and_then(|q| q.detail.clone()),
        )
    };

    // The national id typed into the search form: its tags come back only once notarized.
    let (before, _) = newest();
    let form = format!("subject=D000042&csrf={csrf}");
    let (status, headers, _) = call(addr, "POST", "/search", &[("cookie", &cookie), FORM], &form)
        .await
        .unwrap();
    assert_eq!(status, 303);
    let (after, detail) = newest();
    assert_eq!(after, before + 1);
    assert_eq!(detail.unwrap()["query"], "subject-tag");
    let location = headers[http::header::LOCATION].to_str().unwrap().to_owned();
    let tag = location
        .split_once("subject_tag=")
        .map(|(_, t)| {
            t.split('&')
                .next()
                .unwrap()
                .replace("%3A", ":")
                .replace("%2C", ",")
        })
        .expect("the tags in the redirect");
    let (_, _, found) = call(
        addr,
        "GET",
        &format!("/api/search?exchange={exchange}"),
        &[("cookie", &cookie)],
        "",
    )
    .await
    .unwrap();
    let found: Value = serde_json::from_str(&found).unwrap();
    let record = &found["records"][0];
    let evidence = format!(
        "/evidence?log={}&index={}",
        record["log"].as_str().unwrap(),
        record["index"]
    );

    let reads: Vec<(String, &str)> = vec![
        ("/search?dataset=residents".into(), "search"),
        ("/api/search?dataset=residents".into(), "search"),
        ("/export.csv?dataset=residents".into(), "export"),
        ("/export.json?dataset=residents".into(), "export"),
        (format!("/search?subject_tag={tag}"), "search"),
        (format!("/exchange?id={exchange}"), "exchange"),
        (evidence, "evidence"),
        ("/findings".into(), "findings"),
        ("/queries".into(), "oversight-queries"),
        ("/api/crosscheck".into(), "crosscheck"),
        (format!("/report?subject_tag={tag}"), "subject-report"),
        (format!("/api/subject?tag={tag}"), "subject-report"),
        (format!("/api/bundle?tag={tag}"), "subject-report"),
    ];
    for (path, query) in &reads {
        let (before, _) = newest();
        let (status, _, body) = call(addr, "GET", path, &[("cookie", &cookie)], "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let (after, detail) = newest();
        assert_eq!(after, before + 1, "{path} notarized exactly one query");
        let detail = detail.unwrap();
        assert_eq!(detail["query"], *query, "{path}: {detail}");
        assert_eq!(detail["asked_by"], "admin", "{path}: {detail}");
    }

    // The ledger takes no more entries: nothing is answered.
    node.ledger().close();
    let (status, _, body) = call(addr, "POST", "/search", &[("cookie", &cookie), FORM], &form)
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains(&tag), "{body}");
    for (path, _) in &reads {
        let (status, headers, body) = call(addr, "GET", path, &[("cookie", &cookie)], "")
            .await
            .unwrap();
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            !body.contains(&exchange)
                && !body.contains("asked_by")
                && !body.contains("\"records\""),
            "{path} answered data it could not notarize: {body}"
        );
        assert!(
            headers.get(http::header::CONTENT_DISPOSITION).is_none(),
            "{path}"
        );
    }
    oversight.shutdown().await;
    fed.stop().await;
}
