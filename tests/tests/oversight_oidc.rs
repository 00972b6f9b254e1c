//! Staff sign-in through a real OpenID Connect provider (panva's oidc-provider under Node.js,
//! tests/idp/idp.mjs): authorization code with PKCE, state bound to the browser, nonce checked,
//! ID token verified against the provider's published keys. And the attacks: a callback carried
//! to another browser, a replayed callback, a person the provider grants no oversight role.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use causeway::oversight::dashboard::parse_form;
use causeway::oversight::oidc::{Oidc, OidcError, OidcSection};
use causeway_tests::repo;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;

/// The provider, running until dropped.
struct Provider {
    child: tokio::process::Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_provider(redirect: &str) -> Provider {
    let dir = repo().join("tests/idp");
    if !dir.join("node_modules/oidc-provider").exists() {
        // The provider's packages, pinned by tests/idp/package-lock.json, from the npm registry.
        let installed = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .await;
        assert!(
            installed.is_ok_and(|s| s.success()),
            "the sign-in test needs Node.js and npm (`apt-get install -y nodejs npm`) and the provider's packages: `npm ci --prefix tests/idp`"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("idp.mjs"))
        .env("PORT", port.to_string())
        .env("REDIRECT", redirect)
        .env("CLIENT_SECRET", "test-client-secret")
        .env("ROLES_alice", "investigator,unrelated-role")
        .env("ROLES_mallory", "some-other-app-admin")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (Debian's nodejs)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim() == "ready" {
                return;
            }
        }
        panic!("the provider exited before it was ready");
    })
    .await
    .expect("the provider starts within 30 s");
    // Keep reading what it prints: a closed pipe would end it at its next line.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Provider {
        child,
        issuer: format!("http://127.0.0.1:{port}"),
    }
}

/// A browser's worth of HTTP: cookies per host, redirects followed by the caller.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, Vec<(String, String)>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    async fn request(&mut self, method: &str, url: &str, form: Option<String>) -> Answer {
        let uri: http::Uri = url.parse().unwrap_or_else(|e| panic!("{url:?}: {e}"));
        let authority = uri.authority().unwrap().to_string();
        let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let cookie = self
            .cookies
            .get(&authority)
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let mut request = http::Request::builder()
            .method(method)
            .uri(uri.path_and_query().unwrap().as_str())
            .header("host", &authority)
            .header("cookie", cookie);
        if form.is_some() {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", format!("http://{authority}"));
        }
        let response = sender
            .send_request(
                request
                    .body(Full::new(Bytes::from(form.unwrap_or_default())))
                    .unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let jar = self.cookies.entry(authority.clone()).or_default();
            jar.retain(|(k, _)| k != name);
            if !value.is_empty() {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .map(|l| {
                if l.starts_with('/') {
                    format!("http://{authority}{l}")
                } else {
                    l
                }
            });
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Follow redirects from `url` until one leaves for `stop` (returned) or a page is shown.
    async fn follow(&mut self, mut url: String, stop: &str) -> Result<String, Answer> {
        for _ in 0..10 {
            if url.starts_with(stop) {
                return Ok(url);
            }
            let answer = self.request("GET", &url, None).await;
            match answer.location {
                Some(next) if (300..400).contains(&answer.status) => url = next,
                _ => return Err(answer),
            }
        }
        panic!("too many redirects");
    }

    /// Post the page's first form (its action, with `fields`) and follow on.
    async fn submit(
        &mut self,
        page: &Answer,
        base: &str,
        fields: &str,
        stop: &str,
    ) -> Result<String, Answer> {
        let action = page
            .body
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no form on the page: {}", page.body));
        let action = if action.starts_with('/') {
            format!("{base}{action}")
        } else {
            action.to_owned()
        };
        // The form's hidden fields (the provider's `prompt`), then ours.
        let mut form: Vec<String> = page
            .body
            .split("<input type=\"hidden\" ")
            .skip(1)
            .filter_map(|input| {
                let name = input.split("name=\"").nth(1)?.split('"').next()?;
                let value = input.split("value=\"").nth(1)?.split('"').next()?;
                Some(format!("{name}={value}"))
            })
            .collect();
        form.extend(
            fields
                .split('&')
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
        );
        let answer = self.request("POST", &action, Some(form.join("&"))).await;
        let next = answer
            .location
            .clone()
            .unwrap_or_else(|| panic!("the form post led nowhere: {}", answer.status));
        self.follow(next, stop).await
    }
}

/// Sign in at the provider as `who`, from the URL `begin` gave; the callback URL it sends back.
async fn sign_in_at_provider(
    browser: &mut Browser,
    start: String,
    issuer: &str,
    who: &str,
    redirect: &str,
) -> String {
    let login = browser
        .follow(start, redirect)
        .await
        .expect_err("the provider shows its login page");
    let consent = browser
        .submit(
            &login,
            issuer,
            &format!("login={who}&password=anything"),
            redirect,
        )
        .await;
    match consent {
        Ok(callback) => callback,
        Err(page) => browser
            .submit(&page, issuer, "", redirect)
            .await
            .unwrap_or_else(|p| {
                panic!(
                    "the provider did not send the browser back: {} {}",
                    p.status, p.body
                )
            }),
    }
}

fn callback_params(callback: &str) -> Vec<(String, String)> {
    parse_form(callback.split_once('?').unwrap().1)
}

#[tokio::test]
async fn staff_sign_in_through_a_real_identity_provider_with_pkce_state_and_nonce() {
    let redirect = "http://127.0.0.1:9/login/oidc/callback";
    let provider = start_provider(redirect).await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("idp-jwks.json");
    let mut browser = Browser::default();
    let keys = browser
        .request("GET", &format!("{}/jwks", provider.issuer), None)
        .await;
    std::fs::write(&jwks, keys.body).unwrap();
    let secret = dir.path().join("oidc-client.secret");
    causeway::identity::write_secret(&secret, b"test-client-secret\n").unwrap();
    let section = OidcSection {
        issuer: provider.issuer.clone(),
        authorization_endpoint: format!("{}/auth", provider.issuer),
        token_endpoint: format!("{}/token", provider.issuer),
        jwks,
        client_id: "causeway-oversight".into(),
        client_secret_file: Some(secret.clone()),
        redirect_uri: redirect.into(),
        ca: None,
        name_claim: "preferred_username".into(),
        roles_claim: "roles".into(),
        scopes: "openid profile".into(),
    };
    let oidc = Oidc::load(&section).unwrap();

    // Alice signs in: the node learns her name and her oversight roles, nothing else.
    let (start, state_cookie) = oidc.begin("/search");
    assert!(start.contains("code_challenge_method=S256") && start.contains("nonce="));
    let callback =
        sign_in_at_provider(&mut browser, start, &provider.issuer, "alice", redirect).await;
    let params = callback_params(&callback);
    let (who, next) = oidc.finish(&params, Some(&state_cookie)).await.unwrap();
    assert_eq!(who.name, "alice@127.0.0.1");
    assert_eq!(who.roles, vec!["investigator".to_owned()]);
    assert_eq!(next, "/search");

    // Replayed: the same callback again is refused (one use per sign-in).
    let replay = oidc.finish(&params, Some(&state_cookie)).await.unwrap_err();
    assert!(matches!(replay, OidcError::State), "{replay}");

    // Carried to another browser (login CSRF, or a stolen callback URL): refused.
    let (start, _) = oidc.begin("/");
    let callback = sign_in_at_provider(
        &mut Browser::default(),
        start,
        &provider.issuer,
        "alice",
        redirect,
    )
    .await;
    let stolen = oidc
        .finish(&callback_params(&callback), Some("another-browsers-state"))
        .await
        .unwrap_err();
    assert!(matches!(stolen, OidcError::State), "{stolen}");

    // A person the provider knows but grants no oversight role: refused, and told why.
    let (start, cookie) = oidc.begin("/");
    let callback = sign_in_at_provider(
        &mut Browser::default(),
        start,
        &provider.issuer,
        "mallory",
        redirect,
    )
    .await;
    let refused = oidc
        .finish(&callback_params(&callback), Some(&cookie))
        .await
        .unwrap_err();
    assert!(matches!(refused, OidcError::NoRole(_)), "{refused}");

    // The provider's keys are read again when the JWKS file changes, no restart: under another
    // key set its tokens are refused; a file that does not read leaves the last keys in force.
    let published = std::fs::read_to_string(&section.jwks).unwrap();
    let other = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"rotated","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    for (jwks, accepted) in [
        (other, false),
        (published.as_str(), true),
        ("not json", true),
    ] {
        std::fs::write(&section.jwks, jwks).unwrap();
        let (start, cookie) = oidc.begin("/");
        let callback = sign_in_at_provider(
            &mut Browser::default(),
            start,
            &provider.issuer,
            "alice",
            redirect,
        )
        .await;
        let signed_in = oidc
            .finish(&callback_params(&callback), Some(&cookie))
            .await;
        assert_eq!(signed_in.is_ok(), accepted, "under {jwks}: {signed_in:?}");
        if !accepted {
            assert!(
                matches!(signed_in, Err(OidcError::IdToken(_))),
                "{signed_in:?}"
            );
        }
    }
    std::fs::write(&section.jwks, &published).unwrap();

    // A forged callback with a made-up code gets nothing from the token endpoint.
    let (start, cookie) = oidc.begin("/");
    let state = callback_params(&start)
        .into_iter()
        .find(|(k, _)| k == "state")
        .unwrap();
    let forged = vec![state, ("code".to_owned(), "made-up".to_owned())];
    let e = oidc.finish(&forged, Some(&cookie)).await.unwrap_err();
    assert!(matches!(e, OidcError::TokenEndpoint(_)), "{e}");

    // A client secret others can read is refused at load.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = format!("{:#}", Oidc::load(&section).unwrap_err());
    assert!(e.contains("chmod 600"), "{e}");
    drop(provider);
}

/// `GET /login/oidc` `times` times on one keep-alive connection, as an anonymous attacker would.
async fn flood_sign_in_starts(dashboard: std::net::SocketAddr, times: usize) {
    let stream = tokio::net::TcpStream::connect(dashboard).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..times {
        let request = http::Request::get("/login/oidc")
            .header(http::header::HOST, dashboard.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 303);
        let _ = response.into_body().collect().await;
    }
}

#[tokio::test]
async fn the_dashboard_signs_staff_in_through_the_identity_provider() {
    use causeway_tests::{ledger_entries, start_oversight, Federation};
    let mut fed = Federation::start().await.unwrap();
    let layout = causeway::layout::create_oversight(&fed.layout, "audit-office").unwrap();
    let dashboard = format!("http://{}", layout.dashboard);
    let redirect = format!("{dashboard}/login/oidc/callback");
    let provider = start_provider(&redirect).await;
    let mut browser = Browser::default();
    let keys = browser
        .request("GET", &format!("{}/jwks", provider.issuer), None)
        .await;
    std::fs::write(layout.dir.join("idp-jwks.json"), keys.body).unwrap();
    causeway::identity::write_secret(
        &layout.dir.join("oidc-client.secret"),
        b"test-client-secret",
    )
    .unwrap();
    let mut config = std::fs::read_to_string(&layout.config).unwrap();
    config.push_str(&format!(
        "\n[oversight.oidc]\nissuer = \"{i}\"\nauthorization_endpoint = \"{i}/auth\"\ntoken_endpoint = \"{i}/token\"\njwks = \"idp-jwks.json\"\nclient_id = \"causeway-oversight\"\nclient_secret_file = \"oidc-client.secret\"\nredirect_uri = \"{redirect}\"\n",
        i = provider.issuer
    ));
    std::fs::write(&layout.config, config).unwrap();
    let (node, layout) = start_oversight(&fed).await.unwrap();

    // The sign-in page offers the provider; following it ends signed in, on the page asked for.
    let login = browser
        .request(
            "GET",
            &format!("{dashboard}/login?next=%2Fsearch%3Fprovider%3Dcivil-registry"),
            None,
        )
        .await;
    assert!(login.body.contains("/login/oidc?next="), "{}", login.body);
    let start = browser
        .request(
            "GET",
            &format!("{dashboard}/login/oidc?next=%2Fsearch%3Fprovider%3Dcivil-registry"),
            None,
        )
        .await;
    let callback = sign_in_at_provider(
        &mut browser,
        start.location.unwrap(),
        &provider.issuer,
        "alice",
        &redirect,
    )
    .await;

    // Meanwhile someone starts sign-ins in a loop, more than the node ever kept pending (10,000):
    // the node keeps nothing per started sign-in (it is sealed in each browser's cookie), so
    // alice's sign-in in progress is not pushed out.
    flood_sign_in_starts(layout.dashboard, 10_001).await;

    // The callback URL carried to another browser (no state cookie) signs nobody in.
    let stolen = Browser::default().request("GET", &callback, None).await;
    assert_eq!(stolen.status, 401, "{}", stolen.body);
    assert!(stolen.body.contains("another browser") && !stolen.body.contains("signed in as"));

    let back = browser.request("GET", &callback, None).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert!(
        back.body.contains("url=/search?provider=civil-registry"),
        "{}",
        back.body
    );
    let page = browser
        .request(
            "GET",
            &format!("{dashboard}/search?provider=civil-registry"),
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("signed in as <b>alice@127.0.0.1</b>"),
        "{}",
        page.body
    );
    // The search was notarized under the name the provider vouched for, with its role.
    let entries = ledger_entries(&layout.dir.join("ledger")).unwrap();
    assert!(
        entries.iter().any(|e| e["kind"] == "oversight-query"
            && e["detail"]["asked_by"] == "alice@127.0.0.1"
            && e["detail"]["role"] == "investigator"),
        "{entries:#?}"
    );
    // An investigator is still no subject officer.
    let report = browser
        .request(
            "GET",
            &format!("{dashboard}/report?subject_tag={}", "ab".repeat(32)),
            None,
        )
        .await;
    assert_eq!(report.status, 403, "{}", report.body);
    node.shutdown().await;
    fed.stop().await;
}
