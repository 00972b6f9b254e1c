//! Officers, from bearer tokens their department's identity provider signed (OIDC/JWT access
//! tokens), verified offline against the provider's published keys (a JWKS file).
//!
//! A token is accepted only if its signature verifies under a key of the JWKS with that key's own
//! algorithm (RS256, ES256 or EdDSA: never `none`, never an HMAC, so a public key can never be used
//! as a shared secret), it names the configured issuer and audience, and its `exp` (and `nbf`, if
//! present) hold within the configured clock skew. The officer id is the configured claim.
//!
//! A verified token is cached until it expires (in a hash table keyed by the token itself: a hit is
//! the very same token, byte for byte), so an officer's requests pay for one signature check, not
//! one each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::config::OfficersSection;

/// Longest bearer token accepted, checked before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest officer id accepted.
pub const MAX_OFFICER_ID: usize = 256;
/// Most verified tokens kept at once.
const MAX_CACHED: usize = 10_000;

/// Why a token was not accepted. Each has a stable code (docs/PROTOCOL.md, "Client API").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("this application acts for officers: send the officer's access token as `Authorization: Bearer <token>`")]
    Missing,
    /// Not a JWT, or too large, or its claims are not what a JWT's are.
    #[error("the bearer token is malformed: {0}")]
    Malformed(String),
    /// `none`, an HMAC, or an algorithm the key was not published for.
    #[error("the token's algorithm {0:?} is refused: only RS256, ES256 and EdDSA under the identity provider's published keys")]
    AlgorithmRefused(String),
    /// No key of the JWKS matches the token's `kid`.
    #[error("the token was signed with a key the identity provider does not publish (kid {0:?})")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Past its `exp`.
    #[error("the token has expired: get a new one from the identity provider")]
    Expired,
    /// Before its `nbf`.
    #[error("the token is not valid yet (nbf); check the clocks")]
    NotYetValid,
    /// Another issuer.
    #[error("the token was issued by another identity provider than this gateway trusts")]
    WrongIssuer,
    /// Another audience.
    #[error("the token is for another audience than this gateway")]
    WrongAudience,
    /// The officer claim is missing or unusable.
    #[error("the token carries no usable officer id in its {0:?} claim")]
    NoOfficer(String),
    /// The officer lacks the role the purpose requires.
    #[error(
        "purpose {purpose:?} requires the role {role:?}, which the officer's token does not carry"
    )]
    RoleMissing {
        /// The purpose asked for.
        purpose: String,
        /// The role it requires.
        role: String,
    },
}

impl TokenError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "officer-token-required",
            TokenError::Malformed(_) => "token-malformed",
            TokenError::AlgorithmRefused(_) => "token-algorithm-refused",
            TokenError::UnknownKey(_) => "token-unknown-key",
            TokenError::BadSignature => "token-bad-signature",
            TokenError::Expired => "token-expired",
            TokenError::NotYetValid => "token-not-yet-valid",
            TokenError::WrongIssuer => "token-wrong-issuer",
            TokenError::WrongAudience => "token-wrong-audience",
            TokenError::NoOfficer(_) => "token-no-officer",
            TokenError::RoleMissing { .. } => "officer-role-missing",
        }
    }

    /// The HTTP status: 401 for a token that proves nothing, 403 for a proven officer without
    /// the role.
    pub fn status(&self) -> u16 {
        match self {
            TokenError::RoleMissing { .. } => 403,
            _ => 401,
        }
    }
}

/// An officer a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    /// The officer id (the configured claim). Tagged before it leaves the gateway.
    pub id: String,
    /// The roles the token carries.
    pub roles: BTreeSet<String>,
    /// The token's `exp`, Unix seconds.
    expires_at: u64,
}

/// One published verification key.
struct TokenKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies officers' tokens for one gateway.
pub struct OfficerTokens {
    issuer: String,
    audience: String,
    claim: String,
    roles_claim: String,
    skew_secs: u64,
    purpose_roles: BTreeMap<String, String>,
    keys: Vec<TokenKey>,
    verified: Mutex<HashMap<Box<str>, Arc<Officer>>>,
}

impl OfficerTokens {
    /// Load the identity provider's keys that `[officers]` names.
    pub fn load(section: &OfficersSection) -> Result<Self> {
        let text = std::fs::read_to_string(&section.jwks)
            .with_context(|| format!("{}: cannot read the JWKS", section.jwks.display()))?;
        let keys = parse_jwks(&text).with_context(|| format!("{}", section.jwks.display()))?;
        Ok(OfficerTokens {
            issuer: section.issuer.clone(),
            audience: section.audience.clone(),
            claim: section.claim.clone(),
            roles_claim: section.roles_claim.clone(),
            skew_secs: section.max_skew_secs,
            purpose_roles: section.purpose_roles.clone(),
            keys,
            verified: Mutex::default(),
        })
    }

    /// The officer `token` names, if it is genuine and valid now.
    pub fn verify(&self, token: &str) -> Result<Arc<Officer>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(officer) = self.lock().get(token) {
            if now < officer.expires_at.saturating_add(self.skew_secs) {
                return Ok(officer.clone());
            }
        }
        let officer = Arc::new(self.verify_uncached(token, now)?);
        let mut verified = self.lock();
        if verified.len() >= MAX_CACHED {
            verified.retain(|_, o| now < o.expires_at.saturating_add(self.skew_secs));
            if verified.len() >= MAX_CACHED {
                verified.clear();
            }
        }
        verified.insert(token.into(), officer.clone());
        Ok(officer)
    }

    /// The role `purpose` requires of an officer, if any.
    pub fn required_role(&self, purpose: &str) -> Option<&str> {
        self.purpose_roles.get(purpose).map(String::as_str)
    }

    /// Whether `officer` may ask for `purpose`.
    pub fn check_role(&self, officer: &Officer, purpose: &str) -> Result<(), TokenError> {
        match self.required_role(purpose) {
            Some(role) if !officer.roles.contains(role) => Err(TokenError::RoleMissing {
                purpose: purpose.to_owned(),
                role: role.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<Officer, TokenError> {
        let (alg, kid) = header_of(token)?;
        let key = self
            .keys
            .iter()
            .find(|k| match (&kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (None, _) => k.algorithm == alg,
                (Some(_), None) => false,
            })
            .ok_or_else(|| TokenError::UnknownKey(kid.clone().unwrap_or_default()))?;
        if key.algorithm != alg {
            return Err(TokenError::AlgorithmRefused(format!("{alg:?}")));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.skew_secs;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key.key,
            &validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidAlgorithm => TokenError::AlgorithmRefused(format!("{alg:?}")),
                ErrorKind::MissingRequiredClaim(claim) => {
                    TokenError::Malformed(format!("no {claim:?} claim"))
                }
                _ => TokenError::Malformed("not a well-formed JWT".into()),
            }
        })?;
        let claims = data.claims;
        let id = claims
            .get(&self.claim)
            .and_then(|v| v.as_str())
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= MAX_OFFICER_ID
                    && !id.chars().any(crate::callers::is_forbidden_char)
            })
            .ok_or_else(|| TokenError::NoOfficer(self.claim.clone()))?;
        let roles = match claims.get(&self.roles_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(spaced)) => {
                spaced.split_whitespace().map(str::to_owned).collect()
            }
            _ => BTreeSet::new(),
        };
        let expires_at = claims
            .get("exp")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| TokenError::Malformed("exp is not a number".into()))?;
        debug_assert!(now < expires_at.saturating_add(self.skew_secs));
        Ok(Officer {
            id: id.to_owned(),
            roles,
            expires_at,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Officer>>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The algorithm and key id a token's header names, refusing `none` and HMAC outright.
fn header_of(token: &str) -> Result<(Algorithm, Option<String>), TokenError> {
    #[derive(serde::Deserialize)]
    struct RawHeader {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }
    let encoded = token
        .split('.')
        .next()
        .filter(|_| token.split('.').count() == 3)
        .ok_or_else(|| TokenError::Malformed("not three dot-separated parts".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed("the header is not base64url".into()))?;
    let header: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("the header is not a JWT header".into()))?;
    let alg = match header.alg.as_str() {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            return Err(TokenError::AlgorithmRefused(
                other.chars().take(16).collect(),
            ))
        }
    };
    Ok((alg, header.kid))
}

/// The signing keys of a JWKS, each with the one algorithm it may verify.
fn parse_jwks(text: &str) -> Result<Vec<TokenKey>> {
    let set: JwkSet = serde_json::from_str(text).context("not a JWKS (RFC 7517 key set)")?;
    let mut keys = Vec::new();
    for (n, jwk) in set.keys.iter().enumerate() {
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        let algorithm = key_algorithm(jwk).with_context(|| format!("key {n}"))?;
        let key = DecodingKey::from_jwk(jwk).with_context(|| format!("key {n}: unusable"))?;
        keys.push(TokenKey {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    if keys.is_empty() {
        bail!("no signing keys");
    }
    Ok(keys)
}

/// The algorithm a published key verifies: its `alg` if given (and one we accept), else the one
/// its type implies. Symmetric keys are refused: a JWKS is public.
fn key_algorithm(jwk: &Jwk) -> Result<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => {
            bail!("a symmetric (oct) key: identity providers publish public keys only")
        }
        _ => bail!("unsupported key type or curve (use RSA, EC P-256 or Ed25519)"),
    };
    match jwk.common.key_algorithm {
        None => Ok(implied),
        Some(KeyAlgorithm::RS256) if implied == Algorithm::RS256 => Ok(implied),
        Some(KeyAlgorithm::ES256) if implied == Algorithm::ES256 => Ok(implied),
        Some(KeyAlgorithm::EdDSA) if implied == Algorithm::EdDSA => Ok(implied),
        Some(other) => bail!("alg {other:?} is not accepted for this key (RS256, ES256, EdDSA)"),
    }
}

/// A small local identity provider for the demo and the tests: an Ed25519 key (PKCS#8 DER, 0600)
/// and the JWKS that publishes it.
pub struct DemoIssuer {
    kid: String,
    key: EncodingKey,
}

impl DemoIssuer {
    /// Create a key in `key_path` and its JWKS in `jwks_path`.
    pub fn create(key_path: &Path, jwks_path: &Path, kid: &str) -> Result<()> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        crate::identity::write_secret(key_path, &pair.serialize_der())
            .with_context(|| format!("writing {}", key_path.display()))?;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        let jwks = serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"
        }]});
        std::fs::write(jwks_path, serde_json::to_vec_pretty(&jwks)?)
            .with_context(|| format!("writing {}", jwks_path.display()))?;
        Ok(())
    }

    /// Load the key `create` wrote; `kid` must be the one its JWKS names.
    pub fn load(key_path: &Path, kid: &str) -> Result<Self> {
        let der = std::fs::read(key_path)
            .with_context(|| format!("{}: cannot read the issuer key", key_path.display()))?;
        Ok(DemoIssuer {
            kid: kid.to_owned(),
            key: EncodingKey::from_ed_der(&der),
        })
    }

    /// A token with exactly these `claims` (JSON object), signed under the demo key: for tests
    /// that need a token an identity provider would not issue (expired, another audience, ...).
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).context("signing the token")
    }

    /// A token for `officer` with `roles`, valid for `ttl_secs` from now.
    pub fn issue(
        &self,
        issuer: &str,
        audience: &str,
        officer: &str,
        roles: &[String],
        ttl_secs: u64,
    ) -> Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({
            "iss": issuer, "aud": audience, "sub": officer, "roles": roles,
            "iat": now, "nbf": now, "exp": now + ttl_secs,
        });
        self.sign(&claims)
    }
}
