//! The dashboard's gate: what every request passes before a page or an API answer is built.
//!
//! In order: the `Host` must be one the node answers to (`[oversight] hosts`; against DNS
//! rebinding), the route must exist, the caller must be signed in (anonymous pages are sent to
//! `/login`, anonymous API calls get `401`), the account must hold the route's role (`403`), and a
//! `POST` must come from this origin (`Origin`, `Sec-Fetch-Site`) and carry the session's CSRF
//! token. The sign-in routes (`/login`, `/api/login`, `/logout`) and the administrator's `/staff`
//! page are answered here. No header a client sends is ever taken as an identity: who asked is the
//! signed-in staff member ([`super::session`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, request::Parts, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::dashboard::parse_form;
use super::oidc::{Oidc, STATE_COOKIE};
use super::report::esc;
use super::session::{same_secret, Outcome, Sessions, SignedIn, ABSOLUTE_TIMEOUT};
use super::staff::{Role, Staff, MAX_PASSWORD_BYTES};
use super::{Asker, OversightSection};

/// The session cookie.
pub const SESSION_COOKIE: &str = "causeway_session";
/// The sign-in form's CSRF cookie (double submit: the form repeats it).
pub const LOGIN_CSRF_COOKIE: &str = "causeway_login_csrf";

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (`/healthz` and `/openapi.json`: they return no data).
    Open,
    /// Any signed-in staff member (the aggregates every role sees).
    SignedIn,
    /// A signed-in staff member with this role.
    Role(Role),
    /// A signed-in staff member with one of these roles (the first they have grants it).
    AnyRole(&'static [Role]),
    /// No such route.
    NotFound,
}

/// Who may ask `method path` with these query or form parameters: the route table of
/// docs/OVERSIGHT.md. A route the dashboard serves must be listed here, or it answers 404.
pub fn access(method: &Method, path: &str, params: &[(String, String)]) -> Access {
    let by_subject = params
        .iter()
        .any(|(k, v)| (k == "subject" || k == "subject_tag") && !v.trim().is_empty());
    let search = if by_subject {
        Access::Role(Role::SubjectOfficer)
    } else {
        Access::Role(Role::Investigator)
    };
    match (method, path) {
        (&Method::GET, "/healthz" | crate::transport::openapi::PATH) => Access::Open,
        (&Method::GET, "/" | "/api/status" | "/api/membership") => Access::SignedIn,
        // The findings the overview shows to every signed-in member, by window and page.
        (&Method::GET, "/findings") => Access::SignedIn,
        (&Method::POST, "/logout") => Access::SignedIn,
        (&Method::GET | &Method::POST, "/search") => search,
        (&Method::GET, "/export.csv" | "/export.json" | "/api/search") => search,
        (&Method::GET, "/report" | "/api/subject" | "/api/bundle") => {
            Access::Role(Role::SubjectOfficer)
        }
        (&Method::GET, "/api/crosscheck" | "/exchange" | "/evidence" | "/queries") => {
            Access::Role(Role::Investigator)
        }
        (&Method::GET, "/staff") => Access::Role(Role::Administrator),
        (&Method::POST, "/api/seal") => Access::AnyRole(&[Role::Investigator, Role::Administrator]),
        _ => Access::NotFound,
    }
}

/// A request the gate let through: who, and the role the route was granted under.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The signed-in staff member.
    pub staff: SignedIn,
    /// The role that grants the route (for the aggregates: the account's first role).
    pub role: Role,
}

impl Admitted {
    /// The asker the oversight ledger records for a query made through `via` (`dashboard` or
    /// `api`).
    pub fn asker(&self, via: &'static str) -> Asker {
        Asker::new(&self.staff.name, self.role.as_str(), via)
    }

    /// A hidden form field with the session's CSRF token, for every form that posts.
    pub fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            esc(&self.staff.csrf)
        )
    }

    /// "Signed in as NAME (roles) [Sign out]", for the page header.
    pub fn badge(&self) -> String {
        let roles: Vec<&str> = self.staff.roles.iter().map(|r| r.as_str()).collect();
        format!(
            "<form class=\"signout\" method=\"post\" action=\"/logout\">signed in as <b>{}</b> ({}) {}<button type=\"submit\">Sign out</button></form>",
            esc(&self.staff.name),
            esc(&roles.join(", ")),
            self.csrf_field()
        )
    }
}

/// The gate of one dashboard: the hosts it answers to and the sessions of its staff.
#[derive(Debug)]
pub struct Gate {
    hosts: Vec<String>,
    sessions: Sessions,
    /// Password checks under way, at most [`verifications_at_once`]: each Argon2id verification
    /// holds 19 MiB and a core for tens of milliseconds, so a flood of sign-in attempts waits its
    /// turn instead of taking the node's memory and CPU.
    verifications: Arc<tokio::sync::Semaphore>,
    /// Sign-in through the oversight body's identity provider, if `[oversight.oidc]` names one.
    oidc: Option<Oidc>,
}

impl Gate {
    /// The gate for a dashboard listening on `listen`, with the staff file and limits of
    /// `settings`. Without `[oversight] hosts`, it answers `ip:port` of `listen` and
    /// `localhost:port`.
    pub fn new(settings: &OversightSection, listen: SocketAddr) -> Gate {
        let hosts = if settings.hosts.is_empty() {
            vec![listen.to_string(), format!("localhost:{}", listen.port())]
        } else {
            settings.hosts.clone()
        };
        Gate {
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            sessions: Sessions::new(
                Staff::new(settings.staff.clone()),
                settings.lockout_failures,
                Duration::from_secs(settings.lockout_secs),
            ),
            verifications: Arc::new(tokio::sync::Semaphore::new(verifications_at_once())),
            oidc: None,
        }
    }

    /// Offer sign-in through the identity provider `oidc` too (`/login/oidc`).
    pub fn with_oidc(mut self, oidc: Oidc) -> Gate {
        self.oidc = Some(oidc);
        self
    }

    /// The sessions (and sign-in counts).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Let a request through, or answer it here (refusals, sign-in, sign-out, the staff page).
    pub async fn admit(
        self: &Arc<Self>,
        parts: &Parts,
        body: &Bytes,
    ) -> Result<Admitted, Response<Full<Bytes>>> {
        let path = parts.uri.path();
        let api = path.starts_with("/api/");
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !self.hosts.contains(&host) {
            return Err(refuse(
                api,
                421,
                "wrong-host",
                &format!(
                    "this oversight dashboard does not answer to the host {:?}; if it should, add it to [oversight] hosts in the node's causeway.toml (now: {})",
                    crate::text::visible(host.get(..100).unwrap_or(&host)),
                    self.hosts.join(", ")
                ),
            ));
        }
        let post = parts.method == Method::POST;
        if post {
            if let Err(why) = same_origin(parts, &host) {
                return Err(refuse(api, 403, "cross-site", why));
            }
        }
        match (&parts.method, path) {
            (&Method::GET, "/login") => return Err(self.login_page(parts, None)),
            (&Method::POST, "/login") => return Err(self.login_form(parts, body).await),
            (&Method::POST, "/api/login") => return Err(self.login_api(parts, body).await),
            (&Method::GET, "/login/oidc") => return Err(self.oidc_begin(parts)),
            (&Method::GET, "/login/oidc/callback") => return Err(self.oidc_callback(parts).await),
            _ => {}
        }
        let query = parts.uri.query().unwrap_or("");
        let form = if post {
            parse_form(&String::from_utf8_lossy(body))
        } else {
            parse_form(query)
        };
        let need = access(&parts.method, path, &form);
        if need == Access::Open {
            // The one open route says nothing about anyone; it has no staff member to name.
            return Ok(Admitted {
                staff: SignedIn {
                    name: "anonymous".into(),
                    roles: Vec::new(),
                    csrf: String::new(),
                },
                role: Role::Viewer,
            });
        }
        let token = cookie(parts, SESSION_COOKIE);
        let Some(staff) = token.as_deref().and_then(|t| self.sessions.resolve(t)) else {
            if api {
                return Err(refuse(
                    true,
                    401,
                    "sign-in",
                    "sign in first: POST /api/login with {\"name\", \"password\"} (or `causeway audit ... --staff NAME`)",
                ));
            }
            let next = match parts.uri.query() {
                _ if post => "/".to_owned(),
                Some(q) => format!("{path}?{q}"),
                None => path.to_owned(),
            };
            return Err(redirect(&format!(
                "/login?{}",
                super::dashboard::encode_form(&[("next".into(), next)])
            )));
        };
        let role = match need {
            Access::Open => unreachable!("answered above"),
            Access::NotFound => return Err(not_found(api)),
            Access::SignedIn => staff.roles.first().copied().unwrap_or(Role::Viewer),
            Access::Role(role) if staff.has(role) => role,
            Access::AnyRole(roles) if roles.iter().any(|r| staff.has(*r)) => roles
                .iter()
                .copied()
                .find(|r| staff.has(*r))
                .expect("checked just above"),
            Access::AnyRole(roles) => {
                let names: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
                return Err(refuse(
                    api,
                    403,
                    "forbidden",
                    &format!(
                        "this needs one of the roles {}, which {} does not have (an administrator grants roles with `causeway oversight staff`)",
                        names.join(", "),
                        staff.name
                    ),
                ));
            }
            Access::Role(role) => {
                return Err(refuse(
                    api,
                    403,
                    "forbidden",
                    &format!(
                        "this needs the {role} role, which {} does not have (an administrator grants roles with `causeway oversight staff`)",
                        staff.name
                    ),
                ))
            }
        };
        if post {
            let sent = form
                .iter()
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.as_str());
            if !sent.is_some_and(|s| same_secret(s, &staff.csrf)) {
                return Err(refuse(
                    api,
                    403,
                    "csrf",
                    "this form is stale or did not come from this dashboard (CSRF token missing or wrong): reload the page and try again",
                ));
            }
        }
        let admitted = Admitted { staff, role };
        match (&parts.method, path) {
            (&Method::POST, "/logout") => {
                if let Some(t) = &token {
                    self.sessions.sign_out(t);
                }
                let mut r = redirect("/login");
                set_cookie(
                    &mut r,
                    &format!(
                        "{SESSION_COOKIE}=; Max-Age=0; Secure; HttpOnly; SameSite=Strict; Path=/"
                    ),
                );
                Err(r)
            }
            (&Method::GET, "/staff") => Err(self.staff_page(&admitted)),
            _ => Ok(admitted),
        }
    }

    /// Send the browser to the identity provider, with the sign-in's state and secrets sealed in a
    /// cookie of its own.
    fn oidc_begin(&self, parts: &Parts) -> Response<Full<Bytes>> {
        let Some(oidc) = &self.oidc else {
            return not_found(false);
        };
        let params = parse_form(parts.uri.query().unwrap_or(""));
        let next = safe_next(
            params
                .iter()
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.as_str()),
        );
        let (location, sealed) = oidc.begin(&next);
        let mut r = redirect(&location);
        // Lax, not Strict: it must come back on the provider's redirect to the callback.
        set_cookie(
            &mut r,
            &format!(
                "{STATE_COOKIE}={sealed}; Secure; HttpOnly; SameSite=Lax; Path=/login/oidc; Max-Age=600"
            ),
        );
        r
    }

    /// The provider sent the browser back: redeem the code, verify the ID token, open a session.
    async fn oidc_callback(&self, parts: &Parts) -> Response<Full<Bytes>> {
        let Some(oidc) = &self.oidc else {
            return not_found(false);
        };
        let params = parse_form(parts.uri.query().unwrap_or(""));
        match oidc
            .finish(&params, cookie(parts, STATE_COOKIE).as_deref())
            .await
        {
            Ok((who, next)) => {
                let roles: Vec<Role> = who.roles.iter().filter_map(|r| r.parse().ok()).collect();
                let (token, _) = self.sessions.open_for_idp(&who.name, roles);
                // A page that moves on by itself: the session cookie is SameSite=Strict, so the
                // browser sends it on a navigation this site starts, not on the provider's redirect.
                let mut r = html(
                    200,
                    "Signed in",
                    &format!(
                        "<meta http-equiv=\"refresh\" content=\"0;url={next}\"><main class=\"login\"><p>Signed in as <b>{name}</b>. <a href=\"{next}\">Continue</a>.</p></main>",
                        next = esc(&next),
                        name = esc(&who.name)
                    ),
                );
                set_cookie(&mut r, &session_cookie(&token));
                set_cookie(
                    &mut r,
                    &format!("{STATE_COOKIE}=; Max-Age=0; Secure; HttpOnly; SameSite=Lax; Path=/login/oidc"),
                );
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "oversight sign-in through the identity provider refused");
                self.login_page(parts, Some(&e.to_string()))
            }
        }
    }

    fn login_page(&self, parts: &Parts, problem: Option<&str>) -> Response<Full<Bytes>> {
        let params = parse_form(parts.uri.query().unwrap_or(""));
        let next = safe_next(
            params
                .iter()
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.as_str()),
        );
        let csrf = cookie(parts, LOGIN_CSRF_COOKIE)
            .filter(|c| c.len() == 43)
            .unwrap_or_else(|| {
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
            });
        let body = format!(
            r#"<main class="login"><h1>Causeway oversight</h1><p>Sign in with your staff account. Every query you make is recorded in this node's signed log under your name.</p>{problem}<form method="post" action="/login"><label>Name<input name="name" autocomplete="username" required autofocus></label><label>Password<input name="password" type="password" autocomplete="current-password" required></label><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}"><button type="submit">Sign in</button></form>{idp}</main>"#,
            idp = if self.oidc.is_some() {
                format!(
                    "<p><a class=\"btn\" id=\"oidc\" href=\"/login/oidc?{}\">Sign in with your organisation's identity provider</a></p>",
                    esc(&super::dashboard::encode_form(&[("next".into(), next.clone())]))
                )
            } else {
                String::new()
            },
            problem = problem.map_or(String::new(), |p| format!(
                "<p class=\"bad\" id=\"problem\">{}</p>",
                esc(p)
            )),
            csrf = esc(&csrf),
            next = esc(&next),
        );
        let mut r = html(if problem.is_some() { 401 } else { 200 }, "Sign in", &body);
        set_cookie(
            &mut r,
            &format!("{LOGIN_CSRF_COOKIE}={csrf}; Secure; HttpOnly; SameSite=Strict; Path=/login"),
        );
        r
    }

    async fn login_form(self: &Arc<Self>, parts: &Parts, body: &Bytes) -> Response<Full<Bytes>> {
        let form = parse_form(&String::from_utf8_lossy(body));
        let field = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map_or("", |(_, v)| v.as_str())
                .to_owned()
        };
        let expected = cookie(parts, LOGIN_CSRF_COOKIE);
        if !expected.is_some_and(|c| !c.is_empty() && same_secret(&c, &field("csrf"))) {
            return refuse(
                false,
                403,
                "csrf",
                "the sign-in form is stale or did not come from this dashboard (CSRF token missing or wrong): open /login again",
            );
        }
        let next = safe_next(Some(&field("next")));
        match self.sign_in(field("name"), field("password")).await {
            Ok(token) => {
                let mut r = redirect(&next);
                set_cookie(&mut r, &session_cookie(&token));
                set_cookie(
                    &mut r,
                    &format!("{LOGIN_CSRF_COOKIE}=; Max-Age=0; Secure; HttpOnly; SameSite=Strict; Path=/login"),
                );
                r
            }
            Err(Outcome::Busy) => refuse(false, 503, "busy", SIGN_IN_BUSY),
            Err(_) => self.login_page(parts, Some(SIGN_IN_REFUSED)),
        }
    }

    async fn login_api(self: &Arc<Self>, parts: &Parts, body: &Bytes) -> Response<Full<Bytes>> {
        let json_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json_type {
            return refuse(
                true,
                415,
                "content-type",
                "send the sign-in as content-type: application/json",
            );
        }
        #[derive(serde::Deserialize)]
        struct Credentials {
            name: String,
            password: String,
        }
        let Ok(credentials) = serde_json::from_slice::<Credentials>(body) else {
            return refuse(
                true,
                400,
                "bad-request",
                "send {\"name\": \"...\", \"password\": \"...\"}",
            );
        };
        match self.sign_in(credentials.name, credentials.password).await {
            Ok(token) => {
                let mut r = json_response(200, &json!({"signed_in": true}));
                set_cookie(&mut r, &session_cookie(&token));
                r
            }
            Err(Outcome::Busy) => refuse(true, 503, "busy", SIGN_IN_BUSY),
            Err(_) => refuse(true, 401, "sign-in", SIGN_IN_REFUSED),
        }
    }

    /// Check a name and password off the async threads; the session token on success.
    async fn sign_in(self: &Arc<Self>, name: String, password: String) -> Result<String, Outcome> {
        if password.len() > MAX_PASSWORD_BYTES || name.len() > 256 {
            return Err(Outcome::WrongPassword);
        }
        let turn = tokio::time::timeout(SIGN_IN_WAIT, self.verifications.clone().acquire_owned());
        let Ok(Ok(permit)) = turn.await else {
            self.sessions.busy();
            return Err(Outcome::Busy);
        };
        let gate = self.clone();
        // The permit goes with the check: a caller that hangs up does not free its turn early.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            gate.sessions.sign_in(&name, &password)
        })
        .await
        .unwrap_or(Err(Outcome::WrongPassword))
        .map(|(token, _)| token)
    }

    fn staff_page(&self, admitted: &Admitted) -> Response<Full<Bytes>> {
        let staff = self.sessions.staff().current(true);
        let mut rows = String::new();
        for m in &staff.staff {
            let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
            rows.push_str(&format!(
                "<tr class=\"staff\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.name),
                esc(&roles.join(", ")),
                if m.disabled {
                    "<span class=\"bad\">disabled</span>"
                } else {
                    "active"
                }
            ));
        }
        let body = format!(
            "<main><p><a href=\"/\">&larr; dashboard</a></p>{badge}<h1>Staff accounts</h1><table><thead><tr><th>Name</th><th>Roles</th><th>State</th></tr></thead><tbody>{rows}</tbody></table><p class=\"muted\">Read from <code>{path}</code>. Accounts are managed on the node's machine: <code>causeway oversight staff add|disable|enable|passwd|list --config FILE</code>.</p></main>",
            badge = admitted.badge(),
            path = esc(&self.sessions.staff().path().display().to_string()),
        );
        html(200, "Staff", &body)
    }
}

/// The answer to a sign-in that waited too long for its password check.
const SIGN_IN_BUSY: &str =
    "Too many sign-ins are waiting for a password check: try again in a minute.";

/// How long a sign-in waits for its password check before it is answered 503.
const SIGN_IN_WAIT: Duration = Duration::from_secs(10);

/// Password checks at a time: one per core (at most 8).
fn verifications_at_once() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
}

/// The one answer to every failed sign-in: it never says whether the name exists, the password
/// was wrong, or the account is locked or disabled.
const SIGN_IN_REFUSED: &str = "Sign-in refused: the name or password is wrong, or the account is locked (after repeated failures, for a while) or disabled.";

fn session_cookie(token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        ABSOLUTE_TIMEOUT.as_secs()
    )
}

/// A `POST` must come from this dashboard: `Sec-Fetch-Site` (if sent) `same-origin` or `none`,
/// and `Origin` (if sent) this very origin.
fn same_origin(parts: &Parts, host: &str) -> Result<(), &'static str> {
    let site = parts
        .headers
        .get("sec-fetch-site")
        .map(|s| s.to_str().unwrap_or("cross-site"));
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return Err("refused: this request came from another site (Sec-Fetch-Site)");
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        // Our own pages send `referrer-policy: no-referrer`, under which a browser's same-origin
        // form post says `Origin: null` (Fetch, "serializing a request origin"); it is taken as
        // this origin only when the browser also says `Sec-Fetch-Site: same-origin`.
        let ours = origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || (origin == "null" && site == Some("same-origin"));
        if !ours {
            return Err("refused: this request came from another origin (Origin)");
        }
    }
    Ok(())
}

/// Only a same-origin path is followed after sign-in (never `//host`, a scheme, or a backslash).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control())
                && !n.starts_with("/login") =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(r: &mut Response<Full<Bytes>>, value: &str) {
    if let Ok(v) = value.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The headers every dashboard answer carries: no caching, no framing, no referrer, nothing
/// fetched from elsewhere.
pub(crate) fn secured(builder: http::response::Builder) -> http::response::Builder {
    builder
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        )
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
}

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    secured(Response::builder())
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("a response from a valid status and static headers always builds")
}

fn json_response(status: u16, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).expect("JSON values serialize"),
    )
}

const LOGIN_STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f4f6f9;color:#1b1f24} main{max-width:640px;margin:32px auto;background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:16px 24px} main.login{max-width:420px} h1{font-size:20px;color:#1d3557} form{display:flex;flex-direction:column;gap:10px} label{display:flex;flex-direction:column;font-size:12px;color:#444} input{padding:6px;border:1px solid #c8ced8;border-radius:4px;font:inherit} button{padding:7px 14px;background:#1d3557;color:#fff;border:0;border-radius:4px;font:inherit} .bad{color:#c62828;font-weight:600} .muted{color:#6a737d} table{border-collapse:collapse;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #eceff4;text-align:left} form.signout{display:block;text-align:right;color:#6a737d} form.signout button{margin-left:8px;padding:2px 8px}";

fn html(status: u16, title: &str, body: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} - Causeway oversight</title><style>{LOGIN_STYLE}</style></head><body>{body}</body></html>",
            esc(title)
        ),
    )
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut r = html(
        303,
        "Continue",
        &format!("<a href=\"{}\">continue</a>", esc(location)),
    );
    r.headers_mut().insert(
        header::LOCATION,
        location
            .parse()
            .unwrap_or_else(|_| http::HeaderValue::from_static("/")),
    );
    r
}

fn not_found(api: bool) -> Response<Full<Bytes>> {
    refuse(api, 404, "not-found", "no such page")
}

/// A refusal: JSON for the API, a short page otherwise. It never holds data.
fn refuse(api: bool, status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    if api {
        json_response(
            status,
            &json!({"error": {"code": code, "message": message}}),
        )
    } else {
        let title = match status {
            401 => "Sign in",
            403 => "Not allowed",
            404 => "Not found",
            421 => "Wrong host",
            503 => "Busy",
            _ => "Refused",
        };
        html(
            status,
            title,
            &format!(
                "<main><h1>{}</h1><p class=\"bad\">{}</p><p><a href=\"/\">Back to the dashboard</a></p></main>",
                esc(title),
                esc(message)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/search?exchange=x")), "/search?exchange=x");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/login?next=/",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_route_table_asks_for_the_right_role() {
        let none: Vec<(String, String)> = Vec::new();
        let by_tag = vec![("subject_tag".to_owned(), "ab".repeat(32))];
        let by_id = vec![("subject".to_owned(), "D000042".to_owned())];
        assert_eq!(access(&Method::GET, "/healthz", &none), Access::Open);
        assert_eq!(access(&Method::GET, "/openapi.json", &none), Access::Open);
        assert_eq!(
            access(&Method::POST, "/openapi.json", &none),
            Access::NotFound
        );
        assert_eq!(access(&Method::GET, "/", &none), Access::SignedIn);
        assert_eq!(access(&Method::GET, "/api/status", &none), Access::SignedIn);
        assert_eq!(
            access(&Method::GET, "/search", &none),
            Access::Role(Role::Investigator)
        );
        assert_eq!(
            access(&Method::GET, "/search", &by_tag),
            Access::Role(Role::SubjectOfficer)
        );
        assert_eq!(
            access(&Method::POST, "/search", &by_id),
            Access::Role(Role::SubjectOfficer)
        );
        assert_eq!(
            access(&Method::GET, "/export.csv", &by_tag),
            Access::Role(Role::SubjectOfficer)
        );
        assert_eq!(
            access(&Method::GET, "/report", &none),
            Access::Role(Role::SubjectOfficer)
        );
        assert_eq!(
            access(&Method::GET, "/staff", &none),
            Access::Role(Role::Administrator)
        );
        assert_eq!(access(&Method::DELETE, "/", &none), Access::NotFound);
        assert_eq!(access(&Method::GET, "/nothing", &none), Access::NotFound);
    }
}
