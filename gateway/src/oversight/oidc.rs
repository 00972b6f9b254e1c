//! Staff sign-in through the oversight body's own identity provider: OpenID Connect, authorization
//! code flow with PKCE (RFC 7636, S256), `state` bound to the browser by a cookie, and a `nonce`
//! in the ID token.
//!
//! The ID token is verified offline against the provider's published keys (a JWKS file, as for
//! officers' tokens: [`crate::callers::tokens`]): signature under a published key with that key's
//! algorithm, issuer, audience (our client id), expiry, and the nonce of this sign-in. The staff
//! member's name is the configured claim; their roles are the values of the roles claim that are
//! oversight roles. Nothing a browser sends is taken as an identity: only the ID token the provider
//! hands us on the back channel, in exchange for a one-time code and the PKCE verifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rand::RngCore;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::callers::tokens::OfficerTokens;
use crate::config::OfficersSection;
pub use crate::config::OidcSection;

/// How long a started sign-in may take at the identity provider.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// Most finished sign-ins remembered (for [`PENDING_FOR`]) so that each is used once. Past it,
/// a replayed callback still fails at the provider, whose codes are good once.
const MAX_SPENT: usize = 100_000;
/// Longest `next` path carried through a sign-in (a longer one returns to `/`).
const MAX_NEXT: usize = 1024;
/// Largest token endpoint answer read.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// How long the token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The oversight roles a provider's roles claim may grant.
pub const STAFF_ROLES: [&str; 4] = ["viewer", "investigator", "subject-officer", "administrator"];
/// The cookie binding a sign-in's `state` to the browser that started it. `SameSite=Lax`: it must
/// come back on the provider's top-level redirect to the callback, which `Strict` would drop.
pub const STATE_COOKIE: &str = "causeway_oidc_state";

/// Why a sign-in through the identity provider failed. Messages name no secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The callback's state is unknown, expired, or not this browser's.
    #[error("this sign-in is unknown, expired or was started in another browser: sign in again")]
    State,
    /// The provider reported an error instead of a code.
    #[error("the identity provider refused the sign-in ({0})")]
    Refused(String),
    /// The token endpoint could not be asked or answered badly.
    #[error("the identity provider's token endpoint failed: {0}")]
    TokenEndpoint(String),
    /// The ID token did not verify.
    #[error("the identity provider's ID token was refused: {0}")]
    IdToken(String),
    /// The provider grants this person no oversight role.
    #[error("the identity provider grants {0} no oversight role (viewer, investigator, subject-officer, administrator)")]
    NoRole(String),
}

/// A staff member the identity provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// Their name (the configured claim), qualified by the provider's host: `alice@idp.example`.
    pub name: String,
    /// Their oversight roles.
    pub roles: Vec<String>,
}

/// A started sign-in, kept by the browser that started it in the [`STATE_COOKIE`], sealed
/// (ChaCha20-Poly1305 under a key of this process): the node keeps nothing per started sign-in,
/// so starting sign-ins in a loop cannot push anyone else's out.
#[derive(serde::Serialize, Deserialize)]
struct Pending {
    state: String,
    verifier: String,
    nonce: String,
    next: String,
    /// When it started, Unix seconds.
    started: u64,
}

/// The oversight node's OpenID Connect client.
pub struct Oidc {
    section: OidcSection,
    secret: Option<String>,
    /// The ID-token verifier from the provider's JWKS file, and the file's modification time and
    /// length when it was read: a replaced file (the provider rotated its keys) is read again at
    /// the next sign-in, no restart needed.
    tokens: Mutex<(Option<Stamp>, Arc<OfficerTokens>)>,
    tls: Option<tokio_rustls::TlsConnector>,
    issuer_host: String,
    /// Seals the [`Pending`] cookies; a restart makes sign-ins under way start again.
    sealing: ring::aead::LessSafeKey,
    /// States of finished sign-ins, and when they were used: each is good once.
    spent: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.section.issuer)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `uri` may be used: `https://`, or `http://` on a loopback host.
fn usable(uri: &http::Uri) -> bool {
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => uri.host().is_some_and(|h| {
            h == "localhost"
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

impl Oidc {
    /// Load what `[oversight.oidc]` names: the JWKS, the client secret, the CA.
    pub fn load(section: &OidcSection) -> Result<Oidc> {
        for (field, value) in [
            ("authorization_endpoint", &section.authorization_endpoint),
            ("token_endpoint", &section.token_endpoint),
            ("redirect_uri", &section.redirect_uri),
        ] {
            let uri: http::Uri = value
                .parse()
                .with_context(|| format!("[oversight.oidc] {field}: {value:?} is not a URL"))?;
            anyhow::ensure!(
                usable(&uri),
                "[oversight.oidc] {field} must be an https:// URL (http:// only on loopback), not {value:?}"
            );
        }
        let tokens = OfficerTokens::load(&id_tokens(section)).context("[oversight.oidc] jwks")?;
        let tokens = Mutex::new((stamp(&section.jwks), Arc::new(tokens)));
        let secret = section
            .client_secret_file
            .as_deref()
            .map(|path| {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .permissions()
                        .mode();
                    anyhow::ensure!(
                        mode & 0o077 == 0,
                        "{}: the client secret is readable by others (mode {:o}): chmod 600 it",
                        path.display(),
                        mode & 0o777
                    );
                }
                Ok::<_, anyhow::Error>(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .trim()
                        .to_owned(),
                )
            })
            .transpose()?;
        let tls = match &section.ca {
            None => None,
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for der in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("[oversight.oidc] ca: reading {}", ca.display()))?
                {
                    roots
                        .add(der.with_context(|| format!("{}: not PEM", ca.display()))?)
                        .with_context(|| {
                            format!("{}: not a usable CA certificate", ca.display())
                        })?;
                }
                let mut config =
                    rustls::ClientConfig::builder_with_provider(crate::identity::tls::provider())
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
        };
        let issuer_host = section
            .issuer
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_else(|| section.issuer.clone());
        Ok(Oidc {
            section: section.clone(),
            secret,
            tokens,
            tls,
            issuer_host,
            sealing: {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                ring::aead::LessSafeKey::new(
                    ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &key)
                        .expect("a 32-byte key"),
                )
            },
            spent: Mutex::default(),
        })
    }

    /// Start a sign-in that returns to `next`: the provider URL to send the browser to, and the
    /// value of the [`STATE_COOKIE`] to set with it (the sign-in's secrets, sealed).
    pub fn begin(&self, next: &str) -> (String, String) {
        let (state, verifier, nonce) = (random_token(), random_token(), random_token());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let next = if next.len() > MAX_NEXT { "/" } else { next };
        let cookie = self.seal(&Pending {
            state: state.clone(),
            verifier,
            nonce: nonce.clone(),
            next: next.to_owned(),
            started: unix_now(),
        });
        let query = super::dashboard::encode_form(&[
            ("response_type".into(), "code".into()),
            ("client_id".into(), self.section.client_id.clone()),
            ("redirect_uri".into(), self.section.redirect_uri.clone()),
            ("scope".into(), self.section.scopes.clone()),
            ("state".into(), state.clone()),
            ("nonce".into(), nonce),
            ("code_challenge".into(), challenge),
            ("code_challenge_method".into(), "S256".into()),
        ]);
        let separator = if self.section.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        (
            format!("{}{separator}{query}", self.section.authorization_endpoint),
            cookie,
        )
    }

    /// `pending` as a cookie value: base64url of a random nonce and the sealed JSON.
    fn seal(&self, pending: &Pending) -> String {
        let mut nonce = [0u8; ring::aead::NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = serde_json::to_vec(pending).expect("a pending sign-in serializes");
        self.sealing
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(STATE_COOKIE),
                &mut sealed,
            )
            .expect("sealing a short cookie does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// The sign-in a cookie value holds, if this process sealed it and it has not expired.
    fn open(&self, cookie: &str) -> Option<Pending> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .ok()?;
        if bytes.len() < ring::aead::NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(ring::aead::NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let plain = self
            .sealing
            .open_in_place(
                ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?,
                ring::aead::Aad::from(STATE_COOKIE),
                &mut sealed,
            )
            .ok()?;
        let pending: Pending = serde_json::from_slice(plain).ok()?;
        (unix_now().saturating_sub(pending.started) < PENDING_FOR.as_secs()).then_some(pending)
    }

    /// Finish a sign-in from the callback's parameters and the browser's state cookie: the staff
    /// member and where to send them.
    pub async fn finish(
        &self,
        params: &[(String, String)],
        state_cookie: Option<&str>,
    ) -> Result<(OidcIdentity, String), OidcError> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let state = get("state").ok_or(OidcError::State)?;
        // Only the browser that started the sign-in may finish it (so a callback URL carried
        // elsewhere neither signs anyone in nor spends the sign-in)...
        let pending = state_cookie
            .and_then(|c| self.open(c))
            .filter(|p| super::session::same_secret(&p.state, state))
            .ok_or(OidcError::State)?;
        // ... and only once: spent whatever happens next.
        {
            let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
            spent.retain(|_, at| at.elapsed() < PENDING_FOR);
            if spent.contains_key(state) {
                return Err(OidcError::State);
            }
            if spent.len() < MAX_SPENT {
                spent.insert(state.to_owned(), Instant::now());
            }
        }
        if let Some(error) = get("error") {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(OidcError::Refused(error));
        }
        let code = get("code").ok_or_else(|| OidcError::Refused("no code".into()))?;
        let id_token = self.redeem(code, &pending.verifier).await?;
        let officer = self
            .keys()
            .verify(&id_token)
            .map_err(|e| OidcError::IdToken(e.to_string()))?;
        // The signature verified: the payload is the provider's word. Its nonce must be ours.
        let nonce = id_token
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
            .and_then(|claims| {
                claims
                    .get("nonce")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned)
            });
        if nonce.as_deref() != Some(pending.nonce.as_str()) {
            return Err(OidcError::IdToken(
                "its nonce is not this sign-in's (a replayed token)".into(),
            ));
        }
        let name = format!("{}@{}", officer.id, self.issuer_host);
        let roles: Vec<String> = officer
            .roles
            .iter()
            .filter(|r| STAFF_ROLES.contains(&r.as_str()))
            .cloned()
            .collect();
        if roles.is_empty() {
            return Err(OidcError::NoRole(name));
        }
        Ok((OidcIdentity { name, roles }, pending.next))
    }

    /// The verifier of ID tokens, read again first if the JWKS file changed. A file that no longer
    /// reads leaves the keys read last in force (and says so in the log).
    fn keys(&self) -> Arc<OfficerTokens> {
        let mut held = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamp(&self.section.jwks);
        if now != held.0 {
            match OfficerTokens::load(&id_tokens(&self.section)) {
                Ok(tokens) => {
                    tracing::info!(jwks = %self.section.jwks.display(), "the identity provider's keys were read again");
                    *held = (now, Arc::new(tokens));
                }
                Err(e) => {
                    tracing::error!(jwks = %self.section.jwks.display(), error = %format!("{e:#}"), "the identity provider's keys do not read; the previous ones stay in force");
                    held.0 = now;
                }
            }
        }
        held.1.clone()
    }

    /// Exchange the code (with the PKCE verifier) for the ID token, at the token endpoint.
    async fn redeem(&self, code: &str, verifier: &str) -> Result<String, OidcError> {
        let mut form = vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".into(), code.to_owned()),
            ("redirect_uri".into(), self.section.redirect_uri.clone()),
            ("client_id".into(), self.section.client_id.clone()),
            ("code_verifier".into(), verifier.to_owned()),
        ];
        if let Some(secret) = &self.secret {
            form.push(("client_secret".into(), secret.clone()));
        }
        let body = super::dashboard::encode_form(&form);
        let answer = tokio::time::timeout(TOKEN_TIMEOUT, self.post(body))
            .await
            .map_err(|_| OidcError::TokenEndpoint(format!("no answer within {TOKEN_TIMEOUT:?}")))?
            .map_err(OidcError::TokenEndpoint)?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
            error: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&answer)
            .map_err(|_| OidcError::TokenEndpoint("the answer is not JSON".into()))?;
        match (answer.id_token, answer.error) {
            (Some(token), _) => Ok(token),
            (None, Some(error)) => Err(OidcError::TokenEndpoint(
                error.chars().take(64).collect::<String>(),
            )),
            (None, None) => Err(OidcError::TokenEndpoint("no id_token in the answer".into())),
        }
    }

    /// POST a form to the token endpoint; the answer's body on 200.
    async fn post(&self, form: String) -> Result<Bytes, String> {
        let uri: http::Uri = self
            .section
            .token_endpoint
            .parse()
            .map_err(|e| format!("{e}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or("no host")?.to_owned();
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(
                http::header::HOST,
                uri.authority().map_or(host.clone(), |a| a.to_string()),
            )
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        let response = if https {
            let tls = self
                .tls
                .as_ref()
                .ok_or("an https:// token endpoint needs [oversight.oidc] ca")?;
            let name = ServerName::try_from(bare).map_err(|e| e.to_string())?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            send(stream, request).await?
        } else {
            send(tcp, request).await?
        };
        Ok(response)
    }
}

/// How ID tokens are checked: as officers' tokens are, with our client id as the audience.
fn id_tokens(section: &OidcSection) -> OfficersSection {
    OfficersSection {
        issuer: section.issuer.clone(),
        audience: section.client_id.clone(),
        jwks: section.jwks.clone(),
        claim: section.name_claim.clone(),
        roles_claim: section.roles_claim.clone(),
        max_skew_secs: 60,
        purpose_roles: Default::default(),
    }
}

/// A file's modification time and length: when either changes, it is read again.
type Stamp = (std::time::SystemTime, u64);

/// A file's [`Stamp`], if it can be looked at.
fn stamp(path: &std::path::Path) -> Option<Stamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len()))
}

async fn send<IO>(io: IO, request: http::Request<Full<Bytes>>) -> Result<Bytes, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_TOKEN_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    if status.is_success() {
        Ok(body)
    } else {
        // Its error code, never its whole body (it could echo what we sent).
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_default();
        Err(format!(
            "answered {status} {}",
            code.chars().take(64).collect::<String>()
        ))
    }
}
