//! Who is asking at the client API: the department's registered application, proven by its client
//! certificate, and the officer it acts for, proven by a token from the department's identity
//! provider. Nothing a caller writes in a header or a JSON field is ever taken as its identity.
//!
//! - [`applications`]: the registered applications and their outbound rules.
//! - [`tokens`]: officers' bearer tokens, verified offline against the identity provider's keys.
//!
//! [`Callers::identify`] also enforces the API's hygiene: the `Host` must be one this gateway
//! answers to (a page on another origin, or a DNS-rebinding name, gets `421 unknown-host`) and the
//! body must be declared JSON (`415`), so a cross-site form post cannot reach it.

pub mod applications;
pub mod tokens;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls_pki_types::CertificateDer;

use crate::config::GatewayConfig;
use crate::identity::{application_from_cert, AppId, DeptId, IdentityError};
use applications::{Applications, Officers};
use tokens::{Officer, OfficerTokens, TokenError};

/// The characters refused in any text a caller sends; outputs escape the same ones.
pub use crate::text::is_forbidden_char;

/// An authenticated caller of the client API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The application, from its certificate (or the development setting).
    pub application: AppId,
    /// The officer it acts for, from a verified token; `None` for an application acting on its
    /// own.
    pub officer: Option<Arc<Officer>>,
}

/// Why a caller was not admitted. Each has a status and a stable code (docs/PROTOCOL.md).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallerError {
    /// The `Host` is not one this gateway answers to.
    #[error("this gateway does not answer to the host {0:?}; call it by one of the names in [client] hosts")]
    UnknownHost(String),
    /// The body is not declared JSON.
    #[error("send the request as `content-type: application/json`")]
    UnsupportedMediaType,
    /// No client certificate.
    #[error("the client API requires a client certificate issued to the application by this department (`causeway certs issue-app`)")]
    CertificateRequired,
    /// The certificate names no application of this department.
    #[error(transparent)]
    BadCertificate(IdentityError),
    /// The certificate names an application that is not registered.
    #[error("application {0} is not registered with this gateway (its applications file)")]
    UnknownApplication(AppId),
    /// The officer's token is missing or not accepted.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl CallerError {
    /// The HTTP status and the stable code.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            CallerError::UnknownHost(_) => (421, "unknown-host"),
            CallerError::UnsupportedMediaType => (415, "unsupported-media-type"),
            CallerError::CertificateRequired => (401, "client-certificate-required"),
            CallerError::BadCertificate(_) => (403, "not-an-application-certificate"),
            CallerError::UnknownApplication(_) => (403, "unknown-application"),
            CallerError::Token(e) => (e.status(), e.code()),
        }
    }
}

/// Everything the client API needs to know who is asking.
pub struct Callers {
    me: DeptId,
    federation: String,
    applications: Applications,
    officers: Option<OfficerTokens>,
    plaintext_as: Option<AppId>,
    hosts: Vec<String>,
}

impl Callers {
    /// Load the applications file and the identity provider's keys that `config` names, for the
    /// federation `federation`.
    pub fn load(config: &GatewayConfig, federation: &str) -> Result<Self> {
        let client = &config.client;
        let Some(path) = &client.applications else {
            bail!("[client] applications: name the file that registers this department's applications (docs/OPERATIONS.md, \"Registering applications\")");
        };
        let applications = Applications::load(path)?;
        let officers = config
            .officers
            .as_ref()
            .map(OfficerTokens::load)
            .transpose()
            .context("[officers]")?;
        if officers.is_none() {
            if let Some(app) = applications
                .iter()
                .find(|a| a.officers == Officers::Required)
            {
                bail!(
                    "{}: application {} acts for officers, but the config has no [officers] section naming the identity provider's keys",
                    path.display(),
                    app.id
                );
            }
        }
        if let Some(app) = &client.insecure_plaintext_as {
            if applications.get(app).is_none() {
                bail!(
                    "[client] insecure_plaintext_as: application {app} is not registered in {}",
                    path.display()
                );
            }
        }
        let mut hosts: Vec<String> = client
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if hosts.is_empty() {
            let port = client.listen.port();
            hosts.push(client.listen.to_string());
            if client.listen.ip().is_loopback() {
                hosts.extend([
                    format!("localhost:{port}"),
                    format!("127.0.0.1:{port}"),
                    format!("[::1]:{port}"),
                ]);
            }
        }
        Ok(Callers {
            me: config.department.clone(),
            federation: federation.to_owned(),
            applications,
            officers,
            plaintext_as: client.insecure_plaintext_as.clone(),
            hosts,
        })
    }

    /// The registered applications.
    pub fn applications(&self) -> &Applications {
        &self.applications
    }

    /// The officers' token verifier, if an identity provider is configured.
    pub fn officers(&self) -> Option<&OfficerTokens> {
        self.officers.as_ref()
    }

    /// Who sent this request: the host and content type first, then the application from its
    /// certificate, then the officer from the bearer token.
    pub fn identify(
        &self,
        parts: &http::request::Parts,
        peer_cert: Option<&CertificateDer<'_>>,
    ) -> Result<Caller, CallerError> {
        self.check_host(parts)?;
        let json = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(CallerError::UnsupportedMediaType);
        }
        let application = match (&self.plaintext_as, peer_cert) {
            (_, Some(cert)) => application_from_cert(cert, &self.federation, &self.me)
                .map_err(CallerError::BadCertificate)?,
            (Some(app), None) => app.clone(),
            (None, None) => return Err(CallerError::CertificateRequired),
        };
        let registered = self
            .applications
            .get(&application)
            .ok_or_else(|| CallerError::UnknownApplication(application.clone()))?;
        let bearer = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let officer = match (registered.officers, bearer, &self.officers) {
            (Officers::None, None, _) => None,
            (_, Some(token), Some(tokens)) => Some(tokens.verify(token)?),
            (Officers::None, Some(_), None) => None,
            (Officers::Required, _, _) => return Err(TokenError::Missing.into()),
        };
        Ok(Caller {
            application,
            officer,
        })
    }

    fn check_host(&self, parts: &http::request::Parts) -> Result<(), CallerError> {
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(CallerError::UnknownHost(host.chars().take(100).collect()))
        }
    }
}
