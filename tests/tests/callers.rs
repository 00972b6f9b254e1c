//! Accountable callers: the client API admits only registered applications (mutual TLS with a
//! certificate from the department's application CA) acting for officers proven by a token from
//! the department's identity provider, asks only what the department's outbound rules allow, and
//! refuses hostile input with a specific code. Every attack here is made with what an attacker on
//! the department's host would hold: a socket, the published JWKS, another department's
//! application certificate, a captured envelope.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use causeway::callers::tokens::DemoIssuer;
use causeway::identity::{pki, AppId, DeptId};
use causeway::layout::{DEMO_APP, DEMO_BATCH_APP, DEMO_IDP_KID};
use causeway::transport::app_client::{bearer, AppClient};
use causeway_tests::{ledger_entries, rewrite, ClientApi, Federation};
use hmac::Mac;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const CONSUMER: &str = "social-welfare";
const PROVIDER: &str = "civil-registry";

fn body() -> Value {
    json!({"provider": PROVIDER, "dataset": "residents", "params": {"national_id": "D000010"},
        "purpose": "benefit-eligibility", "legal_basis": "test-act:s1", "case": ""})
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("")
}

/// Entries in `dept`'s ledger right now.
fn ledger_size(fed: &Federation, dept: &str) -> u64 {
    fed.gateway(dept).ledger().checkpoint().0
}

/// The consumer's case-desk application with this `authorization` header value (or none).
fn desk_with(fed: &Federation, authorization: Option<String>) -> ClientApi {
    ClientApi {
        authorization,
        ..fed.client_as(CONSUMER, DEMO_APP, None).unwrap()
    }
}

/// The consumer's demo identity provider, as the tests (never an attacker) hold it.
fn issuer(fed: &Federation) -> DemoIssuer {
    DemoIssuer::load(
        &fed.root.path().join(format!("certs/{CONSUMER}-idp.key")),
        DEMO_IDP_KID,
    )
    .unwrap()
}

fn claims() -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": causeway::layout::demo_issuer("demo", CONSUMER),
        "aud": causeway::layout::demo_audience("demo", CONSUMER),
        "sub": "officer-1", "iat": now, "nbf": now, "exp": now + 600,
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// POST over TLS to `addr` without any client certificate.
async fn post_without_certificate(fed: &Federation, addr: std::net::SocketAddr) -> (u16, Value) {
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(fed.root.path().join("certs/ca.pem"))
            .unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::IpAddress(addr.ip().into()),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = http::Request::post("/v1/requests")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body()).unwrap())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_registered_applications_with_their_own_certificates_get_in() {
    let fed = Federation::start().await.unwrap();
    let addr = fed.gateway(CONSUMER).client_addr;
    let provider_before = ledger_size(&fed, PROVIDER);
    let consumer_before = ledger_size(&fed, CONSUMER);

    // No client certificate: a specific 401, nothing notarized, nothing sent.
    let (status, answer) = post_without_certificate(&fed, addr).await;
    assert_eq!(
        (status, code(&answer)),
        (401, "client-certificate-required"),
        "{answer}"
    );

    // Another department's application certificate: refused in the handshake.
    let foreign = fed.layout.app_credentials("tax-office", DEMO_APP);
    let intruder = AppClient::mutual_tls(addr, &foreign.ca, &foreign.cert, &foreign.key).unwrap();
    let token = fed
        .layout
        .officer_token("tax-office", "officer-1", &[])
        .unwrap();
    let refused = intruder
        .post(
            "/v1/requests",
            &[("authorization", &bearer(&token))],
            serde_json::to_vec(&body()).unwrap(),
        )
        .await;
    assert!(
        refused.is_err(),
        "a foreign application certificate was admitted: {refused:?}"
    );

    // A certificate from this department's application CA for an application nobody registered.
    let certs = fed.root.path().join("certs");
    let rogue = pki::issue_app(
        &certs,
        &certs,
        &DeptId::new(CONSUMER).unwrap(),
        &AppId::new("rogue-app").unwrap(),
    )
    .unwrap();
    let rogue = ClientApi {
        app: AppClient::mutual_tls(addr, &certs.join("ca.pem"), &rogue.cert, &rogue.key).unwrap(),
        authorization: fed.client(CONSUMER).unwrap().authorization,
    };
    let (status, answer) = rogue.post_json(&body()).await.unwrap();
    assert_eq!(
        (status, code(&answer)),
        (403, "unknown-application"),
        "{answer}"
    );

    // The peer port's own certificate (a department's, not an application's) is not one either.
    let dept_as_app = AppClient::mutual_tls(
        addr,
        &certs.join("ca.pem"),
        &certs.join(format!("{CONSUMER}.pem")),
        &certs.join(format!("{CONSUMER}.key")),
    )
    .unwrap();
    assert!(dept_as_app
        .post("/v1/requests", &[], serde_json::to_vec(&body()).unwrap())
        .await
        .is_err());

    assert_eq!(
        ledger_size(&fed, PROVIDER),
        provider_before,
        "something reached the provider"
    );
    assert_eq!(
        ledger_size(&fed, CONSUMER),
        consumer_before,
        "unauthenticated calls were notarized"
    );
}

/// The peer port still requires a certificate from the federation's CA: an application's
/// certificate, issued by its department's application CA, opens no door there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_certificate_is_refused_on_the_peer_port() {
    let fed = Federation::start().await.unwrap();
    let app = fed.layout.app_credentials(CONSUMER, DEMO_APP);
    let tls = causeway::identity::tls::TlsMaterial::load(&app.ca, None, &app.cert, &app.key)
        .unwrap()
        .client_config(causeway::transport::HTTPS_ALPN)
        .unwrap();
    let before = ledger_size(&fed, PROVIDER);
    let answered = causeway_tests::raw_peer_post(
        fed.gateway(PROVIDER).peer_addr,
        tls,
        Bytes::from_static(b"{}"),
    )
    .await;
    assert!(
        answered.is_err(),
        "the peer port answered an application: {answered:?}"
    );
    assert_eq!(ledger_size(&fed, PROVIDER), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officers_come_from_genuine_tokens_and_nothing_else() {
    let fed = Federation::start().await.unwrap();
    let provider_before = ledger_size(&fed, PROVIDER);
    let consumer_before = ledger_size(&fed, CONSUMER);
    let idp = issuer(&fed);
    let signed = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims();
        edit(&mut c);
        bearer(&idp.sign(&c).unwrap())
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let genuine = idp.sign(&claims()).unwrap();
    let parts: Vec<&str> = genuine.split('.').collect();
    // A signature with one byte changed.
    let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap();
    sig[10] ^= 1;
    let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    // The same claims with another officer, keeping the genuine signature.
    let mut forged_claims = claims();
    forged_claims["sub"] = json!("Minister of Justice");
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&forged_claims).unwrap()),
        parts[2]
    );
    // alg none.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(&serde_json::to_vec(&claims()).unwrap())
    );
    // HS256 with the identity provider's published public key as the HMAC secret.
    let jwks: Value = serde_json::from_slice(
        &std::fs::read(
            fed.root
                .path()
                .join(format!("certs/{CONSUMER}-idp.jwks.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let hs_message = format!(
        "{}.{}",
        b64(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{DEMO_IDP_KID}"}}"#).as_bytes()),
        b64(&serde_json::to_vec(&claims()).unwrap())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&public).unwrap();
    mac.update(hs_message.as_bytes());
    let hmac_token = format!("{hs_message}.{}", b64(&mac.finalize().into_bytes()));

    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no token", None, 401, "officer-token-required"),
        (
            "expired",
            Some(signed(&|c| {
                c["exp"] = json!(now - 3600);
                c["nbf"] = json!(now - 7200);
            })),
            401,
            "token-expired",
        ),
        (
            "not yet valid",
            Some(signed(&|c| c["nbf"] = json!(now + 3600))),
            401,
            "token-not-yet-valid",
        ),
        (
            "wrong issuer",
            Some(signed(&|c| {
                c["iss"] = json!("https://idp.tax-office.demo.example")
            })),
            401,
            "token-wrong-issuer",
        ),
        (
            "wrong audience",
            Some(signed(&|c| c["aud"] = json!("causeway:demo/tax-office"))),
            401,
            "token-wrong-audience",
        ),
        (
            "exp as a string (CVE-2026-25537)",
            Some(signed(&|c| c["exp"] = json!("99999999999"))),
            401,
            "token-malformed",
        ),
        (
            "tampered signature",
            Some(bearer(&tampered)),
            401,
            "token-bad-signature",
        ),
        (
            "claims swapped under a genuine signature",
            Some(bearer(&swapped)),
            401,
            "token-bad-signature",
        ),
        (
            "alg none",
            Some(bearer(&none)),
            401,
            "token-algorithm-refused",
        ),
        (
            "HS256 keyed with the public key",
            Some(bearer(&hmac_token)),
            401,
            "token-algorithm-refused",
        ),
        (
            "garbage",
            Some("Bearer not.a.jwt".into()),
            401,
            "token-malformed",
        ),
        (
            "a token of another department's identity provider",
            Some(bearer(
                &fed.layout
                    .officer_token("tax-office", "officer-1", &[])
                    .unwrap(),
            )),
            401,
            "token-bad-signature",
        ),
    ];
    for (name, authorization, status, expected) in cases {
        let (got, answer) = desk_with(&fed, authorization)
            .post_json(&body())
            .await
            .unwrap();
        assert_eq!((got, code(&answer)), (status, expected), "{name}: {answer}");
    }
    // An officer named in the body is refused, whatever the token says.
    let mut named = body();
    named["officer"] = json!("Minister of Justice");
    let (status, answer) = fed
        .client(CONSUMER)
        .unwrap()
        .post_json(&named)
        .await
        .unwrap();
    assert_eq!((status, code(&answer)), (400, "bad-request"), "{answer}");

    assert_eq!(
        ledger_size(&fed, PROVIDER),
        provider_before,
        "something reached the provider"
    );
    assert_eq!(
        ledger_size(&fed, CONSUMER),
        consumer_before,
        "a refused caller was notarized"
    );

    // The genuine token works, and both entries carry the application and the officer's tag
    // (never the officer's id).
    let (status, answer) = desk_with(&fed, Some(bearer(&genuine)))
        .post_json(&body())
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let exchange = answer["exchange"].as_str().unwrap().to_owned();
    let mut tags = Vec::new();
    for dept in [CONSUMER, PROVIDER] {
        let entry = ledger_entries(&fed.ledger_dir(dept))
            .unwrap()
            .into_iter()
            .find(|e| e["id"] == exchange.as_str())
            .unwrap_or_else(|| panic!("{dept} notarized the exchange"));
        assert_eq!(entry["application"], DEMO_APP, "{dept}: {entry}");
        let tag = entry["officer"].as_str().unwrap().to_owned();
        assert!(
            !tag.contains("officer-1") && causeway::identity::is_tag(&tag),
            "{dept}: {entry}"
        );
        tags.push(tag);
    }
    assert_eq!(tags[0], tags[1], "both sides record the same officer tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purpose_can_require_a_role_of_the_officer() {
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept(CONSUMER).unwrap().config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[officers.purpose_roles]\nbenefit-eligibility = \"caseworker\"\n"),
    )
    .unwrap();
    for dept in ["civil-registry", "tax-office", CONSUMER] {
        fed.start_dept(dept).await.unwrap();
    }
    let provider_before = ledger_size(&fed, PROVIDER);
    let (status, answer) = fed
        .client(CONSUMER)
        .unwrap()
        .post_json(&body())
        .await
        .unwrap();
    assert_eq!(
        (status, code(&answer)),
        (403, "officer-role-missing"),
        "{answer}"
    );
    assert_eq!(ledger_size(&fed, PROVIDER), provider_before);
    let token = fed
        .layout
        .officer_token(CONSUMER, "officer-2", &["caseworker".into()])
        .unwrap();
    let (status, answer) = desk_with(&fed, Some(bearer(&token)))
        .post_json(&body())
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_departments_outbound_rules_refuse_and_notarize_before_anything_leaves() {
    let fed = Federation::start().await.unwrap();
    let provider_before = ledger_size(&fed, PROVIDER);
    let consumer_before = ledger_size(&fed, CONSUMER);
    // The batch job acts on its own, and its rules let it ask nothing.
    let batch = fed.client_as(CONSUMER, DEMO_BATCH_APP, None).unwrap();
    let (status, answer) = batch.post_json(&body()).await.unwrap();
    assert_eq!(
        (status, code(&answer)),
        (403, "outbound-denied"),
        "{answer}"
    );
    assert_eq!(
        ledger_size(&fed, PROVIDER),
        provider_before,
        "the provider heard of it"
    );
    let index = answer["consumer_log_index"].as_u64().unwrap();
    assert_eq!(
        index, consumer_before,
        "the refusal is the consumer's next entry"
    );
    let entries = ledger_entries(&fed.ledger_dir(CONSUMER)).unwrap();
    let entry = &entries[index as usize];
    assert_eq!(entry["kind"], "refused", "{entry}");
    assert_eq!(entry["side"], "consumer", "{entry}");
    assert_eq!(entry["application"], DEMO_BATCH_APP, "{entry}");
    assert_eq!(entry["reason"], "outbound-rule", "{entry}");
    assert_eq!(entry["provider"], PROVIDER, "{entry}");
    assert!(entry.get("officer").is_none(), "acting on its own: {entry}");
    assert_eq!(entry["id"], answer["exchange"], "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_specific_refusals_and_reach_nobody() {
    let fed = Federation::start().await.unwrap();
    let provider_before = ledger_size(&fed, PROVIDER);
    let consumer_before = ledger_size(&fed, CONSUMER);
    let desk = fed.client(CONSUMER).unwrap();
    let json_body = serde_json::to_vec(&body()).unwrap();

    // A cross-site form post: text/plain, from a page whose origin named another host.
    let (status, answer) = desk
        .post_with(
            json_body.clone(),
            &[("content-type", "text/plain"), ("host", "attacker.example")],
        )
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!((status, code(&answer)), (421, "unknown-host"), "{answer}");
    // The right host, the wrong content type.
    let (status, answer) = desk
        .post_with(json_body.clone(), &[("content-type", "text/plain")])
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        (status, code(&answer)),
        (415, "unsupported-media-type"),
        "{answer}"
    );
    // A DNS-rebinding name with JSON.
    let (status, answer) = desk
        .post_with(json_body, &[("host", "rebind.attacker.example:80")])
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!((status, code(&answer)), (421, "unknown-host"), "{answer}");

    // Control and bidirectional-control characters in any text field.
    for (field, value) in [
        ("purpose", json!("benefit-eligibility\u{1b}[2J")),
        ("legal_basis", json!("Act\r\nX-Injected: 1")),
        ("case", json!("case-1\u{202E}txt.exe")),
    ] {
        let mut hostile = body();
        hostile[field] = value;
        let (status, answer) = desk.post_json(&hostile).await.unwrap();
        assert_eq!(
            (status, code(&answer)),
            (400, "control-characters"),
            "{field}: {answer}"
        );
    }
    let mut hostile = body();
    hostile["params"]["national_id"] = json!("D000010\u{0}");
    let (status, answer) = desk.post_json(&hostile).await.unwrap();
    assert_eq!(
        (status, code(&answer)),
        (400, "control-characters"),
        "{answer}"
    );

    assert_eq!(
        ledger_size(&fed, PROVIDER),
        provider_before,
        "something reached the provider"
    );
    assert_eq!(
        ledger_size(&fed, CONSUMER),
        consumer_before,
        "a refused request was notarized"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_replayed_after_the_provider_restarts_is_refused() {
    let mut fed = Federation::start().await.unwrap();
    let peers = fed.peer_transport_as(CONSUMER).unwrap();
    let key = fed.signing_key(CONSUMER);
    let envelope = causeway::exchange::envelope::Envelope {
        v: causeway::exchange::envelope::ENVELOPE_VERSION,
        id: uuid::Uuid::now_v7(),
        consumer: DeptId::new(CONSUMER).unwrap(),
        provider: DeptId::new(PROVIDER).unwrap(),
        dataset: "residents".into(),
        params: [("national_id".to_owned(), json!("D000010"))].into(),
        purpose: "benefit-eligibility".into(),
        legal_basis: "test-act:s1".into(),
        case: String::new(),
        officer: "tag".into(),
        application: Some(AppId::new(DEMO_APP).unwrap()),
        issued_at: causeway::exchange::envelope::now_rfc3339(),
        nonce: causeway::exchange::envelope::nonce(),
    };
    let bytes = Bytes::from(envelope.to_bytes());
    let signature = causeway::exchange::envelope::Envelope::sign(&bytes, &key);
    let directory = fed.directory();
    let provider = directory
        .department(&DeptId::new(PROVIDER).unwrap())
        .unwrap()
        .clone();
    let send = |bytes: Bytes| {
        let request = causeway::transport::peer::PeerRequest::exchange(signature.clone(), bytes);
        peers.send(&provider, request, std::time::Duration::from_secs(5))
    };
    let (status, _) = send(bytes.clone()).await.unwrap();
    assert_eq!(status, 200);
    let (status, answer) = send(bytes.clone()).await.unwrap();
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&answer));

    fed.stop_dept(PROVIDER).await;
    fed.start_dept(PROVIDER).await.unwrap();
    let before = ledger_size(&fed, PROVIDER);
    let (status, answer) = send(bytes).await.unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        (status, code(&answer)),
        (409, "replayed-envelope"),
        "{answer}"
    );
    assert_eq!(
        ledger_size(&fed, PROVIDER),
        before,
        "the replay was notarized as new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plaintext_development_listener_is_explicit_and_loopback_only() {
    let mut fed = Federation::create().unwrap();
    let config = fed.layout.dept(CONSUMER).unwrap().config.clone();
    let app_ca = format!("app_ca = \"../certs/{CONSUMER}-apps-ca.pem\"\n");
    rewrite(
        &config,
        &app_ca,
        &format!("insecure_plaintext_as = \"{DEMO_APP}\"\n"),
    );
    for dept in ["civil-registry", "tax-office", CONSUMER] {
        fed.start_dept(dept).await.unwrap();
    }
    let plain = ClientApi {
        app: AppClient::plaintext(fed.gateway(CONSUMER).client_addr),
        authorization: fed.client(CONSUMER).unwrap().authorization,
    };
    let (status, answer) = plain.post_json(&body()).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = ClientApi {
        authorization: None,
        ..plain
    }
    .post_json(&body())
    .await
    .unwrap();
    assert_eq!(
        (status, code(&answer)),
        (401, "officer-token-required"),
        "{answer}"
    );

    // Not on a non-loopback address, and not without saying which application it stands for.
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = fed.layout.dept(CONSUMER).unwrap().client.to_string();
    std::fs::write(&config, text.replace(&listen, "0.0.0.0:0")).unwrap();
    let e = causeway::config::GatewayConfig::load(&config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("loopback"), "{e}");
    std::fs::write(
        &config,
        text.replace(&format!("insecure_plaintext_as = \"{DEMO_APP}\"\n"), ""),
    )
    .unwrap();
    let e = causeway::config::GatewayConfig::load(&config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("app_ca is missing"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_grant_can_name_the_consumer_applications_it_allows() {
    let mut fed = Federation::create().unwrap();
    let grant = fed
        .dept_dir(PROVIDER)
        .join("policies/welfare-residents.toml");
    rewrite(
        &grant,
        "purposes = [\"benefit-eligibility\"]\n",
        "purposes = [\"benefit-eligibility\"]\napplications = [\"benefits-portal\"]\n",
    );
    for dept in [PROVIDER, "tax-office", CONSUMER] {
        fed.start_dept(dept).await.unwrap();
    }
    // The consumer's case-desk is not the application the grant names: denied and notarized, the
    // provider's entry naming the application that asked.
    let (status, answer) = fed
        .client(CONSUMER)
        .unwrap()
        .post_json(&body())
        .await
        .unwrap();
    assert_eq!(
        (status, code(&answer)),
        (403, "application-not-allowed"),
        "{answer}"
    );
    let entry = ledger_entries(&fed.ledger_dir(PROVIDER))
        .unwrap()
        .into_iter()
        .find(|e| e["id"] == answer["exchange"])
        .unwrap();
    assert_eq!(entry["application"], DEMO_APP, "{entry}");
    assert_eq!(entry["reason"], "application-not-allowed", "{entry}");

    // Name it, and the same request is allowed.
    fed.stop_dept(PROVIDER).await;
    rewrite(
        &grant,
        "applications = [\"benefits-portal\"]",
        "applications = [\"case-desk\"]",
    );
    fed.start_dept(PROVIDER).await.unwrap();
    let (status, answer) = fed
        .client(CONSUMER)
        .unwrap()
        .post_json(&body())
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
}
