//! End-to-end exchanges between real gateways: mTLS, policy, SQLite, ledgers on both sides.
//!
//! Tests about the exchange itself run once per transport from one body: [`over_both_transports`]
//! turns `async fn name(transport)` into `name::https` and `name::quic`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use causeway::exchange::envelope::{self, Envelope};
use causeway::identity::DeptId;
use causeway::identity::GatewayKey;
use causeway::transport::peer::{PeerRequest, PeerTransport};
use causeway::transport::Transport;
use causeway_ledger::receipt::Receipt;
use causeway_tests::{ledger_entries, raw_peer_post, rewrite, verify_ledger, Federation};
use serde_json::{json, Value};

/// One test body, run over HTTPS and over QUIC: for each `name`, `async fn name(Transport)` must
/// exist; this makes the tests `name::https` and `name::quic`.
macro_rules! over_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn https() {
                super::$name(causeway::transport::Transport::Https).await
            }
            #[tokio::test]
            async fn quic() {
                super::$name(causeway::transport::Transport::Quic).await
            }
        }
    )*};
}

over_both_transports!(
    allowed_exchange_releases_exactly_the_granted_fields_and_both_sides_notarize_it,
    denials_get_403_a_reason_and_a_denied_entry_on_both_sides,
    the_peer_port_refuses_envelopes_signed_with_another_departments_key,
    the_peer_port_refuses_replayed_and_stale_envelopes,
    a_restarted_gateway_continues_the_same_chain,
    no_data_is_released_when_the_ledger_cannot_record,
    a_burst_of_requests_shares_envelope_signatures_and_every_exchange_is_notarized,
);

fn envelope(consumer: &str, provider: &str, purpose: &str) -> Envelope {
    Envelope {
        v: envelope::ENVELOPE_VERSION,
        id: uuid::Uuid::now_v7(),
        consumer: DeptId::new(consumer).unwrap(),
        provider: DeptId::new(provider).unwrap(),
        dataset: "residents".into(),
        params: BTreeMap::from([("national_id".to_owned(), json!("D000010"))]),
        purpose: purpose.into(),
        legal_basis: "test-act:s1".into(),
        case: String::new(),
        officer: "tag".into(),
        application: None,
        issued_at: envelope::now_rfc3339(),
        nonce: envelope::nonce(),
    }
}

/// Send envelope bytes with a signature by `key`, as the holder of `client`'s certificate, over
/// the federation's transport.
async fn send_signed(
    fed: &Federation,
    client: &PeerTransport,
    bytes: Vec<u8>,
    key: &GatewayKey,
) -> (u16, Value) {
    let signature = Envelope::sign(&bytes, key);
    let provider = fed
        .directory()
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap()
        .clone();
    let request = PeerRequest::exchange(signature, Bytes::from(bytes));
    let (status, body) = client
        .send(&provider, request, Duration::from_secs(5))
        .await
        .unwrap();
    causeway_tests::assert_transport(client.stats(), fed.transport);
    (status, serde_json::from_slice(&body).unwrap())
}

/// Requests that reach the consumer together are signed together (docs/PROTOCOL.md, "Signature"):
/// the provider checks each envelope's inclusion proof against the one signature, and every
/// exchange still succeeds and is notarized on both sides.
async fn a_burst_of_requests_shares_envelope_signatures_and_every_exchange_is_notarized(
    transport: Transport,
) {
    const BURST: usize = 48;
    let mut fed = Federation::start_with(transport).await.unwrap();
    let client = fed.client("social-welfare").unwrap();
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..BURST {
        let body = json!({"provider": "civil-registry", "dataset": "residents",
            "params": {"national_id": format!("D{:06}", 1 + n)}, "purpose": "benefit-eligibility",
            "legal_basis": "test-act:s1", "case": ""});
        let client = client.clone();
        requests.spawn(async move { client.post_json(&body).await.unwrap() });
    }
    let mut exchanges = Vec::new();
    while let Some(answer) = requests.join_next().await {
        let (status, answer) = answer.unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["rows"].as_array().unwrap().len(), 1, "{answer}");
        exchanges.push(answer["exchange"].as_str().unwrap().to_owned());
    }
    let admin = fed.gateway("social-welfare").admin_addr.unwrap();
    let (_, metrics) = causeway_tests::get_text(admin, "/metrics").await.unwrap();
    let read = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let envelopes = read("causeway_envelope_signing_batch_envelopes_sum");
    let signatures = read("causeway_envelope_signing_batch_envelopes_count");
    assert_eq!(envelopes, BURST as f64);
    assert!(
        signatures < envelopes,
        "{BURST} requests at once share signatures ({signatures} signatures)"
    );
    fed.assert_carried_by_transport("social-welfare");
    fed.stop().await;
    for dept in ["civil-registry", "social-welfare"] {
        verify_ledger(&fed.ledger_dir(dept), &fed.directory()).unwrap();
        let logged: Vec<Value> = ledger_entries(&fed.ledger_dir(dept))
            .unwrap()
            .into_iter()
            .filter(|e| e["kind"] == "exchange")
            .collect();
        for id in &exchanges {
            assert!(
                logged.iter().any(|e| e["id"] == id.as_str()),
                "{dept} notarized {id}"
            );
        }
    }
}

async fn allowed_exchange_releases_exactly_the_granted_fields_and_both_sides_notarize_it(
    transport: Transport,
) {
    let mut fed = Federation::start_with(transport).await.unwrap();
    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["fields"], json!(["name", "birth_date", "address"]));
    let rows = answer["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].as_array().unwrap().len(),
        3,
        "household is never released"
    );
    let exchange = answer["exchange"].as_str().unwrap().to_owned();

    // The tax office's grant releases fewer fields for the same record.
    let (status, tax) = fed
        .request(
            "tax-office",
            "civil-registry",
            "residents",
            json!({"national_id": "D000042"}),
            "tax-assessment",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{tax}");
    assert_eq!(tax["fields"], json!(["name", "address"]));
    fed.assert_carried_by_transport("social-welfare");
    fed.assert_carried_by_transport("tax-office");
    fed.stop().await;

    let directory = fed.directory();
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        verify_ledger(&fed.ledger_dir(dept), &directory).unwrap_or_else(|e| panic!("{dept}: {e}"));
    }
    let provider = ledger_entries(&fed.ledger_dir("civil-registry")).unwrap();
    let consumer = ledger_entries(&fed.ledger_dir("social-welfare")).unwrap();
    let p = provider
        .iter()
        .find(|e| e["id"] == exchange.as_str())
        .expect("provider entry");
    let c = consumer
        .iter()
        .find(|e| e["id"] == exchange.as_str())
        .expect("consumer entry");
    assert_eq!(p["side"], "provider");
    assert_eq!(c["side"], "consumer");
    for field in [
        "request_digest",
        "response_digest",
        "consumer",
        "provider",
        "dataset",
        "purpose",
        "fields",
        "rows",
        "subjects",
        "policy",
    ] {
        assert_eq!(p[field], c[field], "{field} differs between the two sides");
    }
    assert_eq!(c["peer_receipt"]["index"], p["index"]);
    assert_eq!(c["peer_receipt"]["log"], "demo/civil-registry");
    assert_eq!(answer["receipt"]["index"], p["index"]);
    assert_eq!(answer["consumer_log_index"], c["index"]);
    // The receipt passed on to the application is the provider's, and verifies offline against
    // the provider's directory key alone.
    let receipt: Receipt = serde_json::from_value(answer["receipt"].clone()).unwrap();
    let civil_registry = directory
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap();
    let verified = receipt.verify(&civil_registry.verifier).unwrap();
    assert_eq!(serde_json::to_value(&verified.entry).unwrap(), *p);
    let stored = serde_json::to_string(&provider).unwrap();
    assert!(
        !stored.contains("D000042"),
        "raw national ids never reach the ledger"
    );
    assert!(
        !stored.contains("officer-1"),
        "raw officer names never reach the ledger"
    );
}

async fn denials_get_403_a_reason_and_a_denied_entry_on_both_sides(transport: Transport) {
    let mut fed = Federation::start_with(transport).await.unwrap();
    let cases = [
        // (consumer, provider, dataset, purpose, expected reason)
        (
            "social-welfare",
            "civil-registry",
            "residents",
            "marketing",
            "unknown-purpose",
        ),
        (
            "tax-office",
            "civil-registry",
            "residents",
            "benefit-eligibility",
            "purpose-not-allowed",
        ),
        (
            "social-welfare",
            "civil-registry",
            "vehicles",
            "benefit-eligibility",
            "no-grant",
        ),
        (
            "civil-registry",
            "tax-office",
            "income",
            "tax-assessment",
            "no-grant",
        ),
    ];
    let mut ids = Vec::new();
    for (consumer, provider, dataset, purpose, reason) in cases {
        let (status, answer) = fed
            .request(
                consumer,
                provider,
                dataset,
                json!({"national_id": "D000001", "year": 2024}),
                purpose,
            )
            .await
            .unwrap();
        assert_eq!(
            status, 403,
            "{consumer}->{provider} {dataset} {purpose}: {answer}"
        );
        assert_eq!(answer["error"]["code"], reason, "{answer}");
        assert!(
            answer.get("rows").is_none(),
            "a denial releases nothing: {answer}"
        );
        assert!(
            answer["receipt"]["index"].is_u64(),
            "denials are notarized with a receipt: {answer}"
        );
        ids.push((
            consumer,
            provider,
            answer["exchange"].as_str().unwrap().to_owned(),
            reason,
        ));
    }
    for consumer in ["social-welfare", "tax-office", "civil-registry"] {
        fed.assert_carried_by_transport(consumer);
    }
    fed.stop().await;
    for (consumer, provider, id, reason) in ids {
        for dept in [consumer, provider] {
            let entries = ledger_entries(&fed.ledger_dir(dept)).unwrap();
            let e = entries
                .iter()
                .find(|e| e["id"] == id.as_str())
                .unwrap_or_else(|| panic!("{dept} has no entry for {id}"));
            assert_eq!(e["kind"], "denied");
            assert_eq!(e["decision"], "deny");
            assert_eq!(e["reason"], reason);
        }
    }
}

#[tokio::test]
async fn the_peer_port_refuses_clients_without_a_certificate() {
    let fed = Federation::start().await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(fed.root.path().join("certs/ca.pem")).unwrap();
    for cert in rustls_pemfile_certs(&ca) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let result = raw_peer_post(
        fed.gateway("civil-registry").peer_addr,
        Arc::new(config),
        Bytes::from_static(b"{}"),
    )
    .await;
    assert!(
        result.is_err(),
        "a client without a certificate must be refused, got {result:?}"
    );
}

/// A member's own certificate, offered over TLS 1.2: the peer port speaks TLS 1.3 only.
#[tokio::test]
async fn the_peer_port_speaks_tls_1_3_only() {
    use rustls_pki_types::pem::PemObject;
    let fed = Federation::start().await.unwrap();
    let certs = fed.root.path().join("certs");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&std::fs::read(certs.join("ca.pem")).unwrap()) {
        roots.add(cert).unwrap();
    }
    let offer = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(
            rustls_pemfile_certs(&std::fs::read(certs.join("tax-office.pem")).unwrap()),
            rustls_pki_types::PrivateKeyDer::from_pem_file(certs.join("tax-office.key")).unwrap(),
        )
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    };
    let addr = fed.gateway("civil-registry").peer_addr;
    let tls12 = raw_peer_post(
        addr,
        offer(&[&rustls::version::TLS12]),
        Bytes::from_static(b"{}"),
    )
    .await;
    assert!(tls12.is_err(), "TLS 1.2 must be refused, got {tls12:?}");
    // The same certificate over TLS 1.3 gets through the handshake (and an answer about the body).
    let tls13 = raw_peer_post(
        addr,
        offer(&[&rustls::version::TLS13]),
        Bytes::from_static(b"{}"),
    )
    .await;
    assert!(tls13.is_ok(), "{tls13:?}");
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

#[tokio::test]
async fn the_peer_port_refuses_a_certificate_from_another_ca() {
    let fed = Federation::start().await.unwrap();
    // Another federation with the same department names but its own CA.
    let other = Federation::create().unwrap();
    let client =
        causeway_tests::tls_client(&other.root.path().join("certs"), "social-welfare", "demo")
            .unwrap();
    let provider = fed
        .directory()
        .department(&DeptId::new("civil-registry").unwrap())
        .unwrap()
        .clone();
    let request = http::Request::post("https://civil-registry/causeway/v1/exchange")
        .body(Bytes::new())
        .unwrap();
    let result = client
        .send(&provider, request, Duration::from_secs(5))
        .await;
    assert!(
        result.is_err(),
        "a foreign CA's certificate must be refused, got {result:?}"
    );
}

async fn the_peer_port_refuses_envelopes_signed_with_another_departments_key(transport: Transport) {
    let fed = Federation::start_with(transport).await.unwrap();
    let client = fed.peer_transport_as("social-welfare").unwrap();
    let bytes = envelope("social-welfare", "civil-registry", "benefit-eligibility").to_bytes();
    // The certificate is social-welfare's, but the envelope is signed with the tax office's key.
    let (status, answer) =
        send_signed(&fed, &client, bytes.clone(), &fed.signing_key("tax-office")).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "bad-signature");
    // An envelope claiming to come from the tax office, signed by it, sent over social-welfare's certificate.
    let claimed = envelope("tax-office", "civil-registry", "tax-assessment").to_bytes();
    let (status, answer) =
        send_signed(&fed, &client, claimed, &fed.signing_key("tax-office")).await;
    assert_eq!(
        status, 401,
        "the key must be the certificate holder's: {answer}"
    );
    // And the genuine article passes.
    let (status, answer) =
        send_signed(&fed, &client, bytes, &fed.signing_key("social-welfare")).await;
    assert_eq!(status, 200, "{answer}");
}

async fn the_peer_port_refuses_replayed_and_stale_envelopes(transport: Transport) {
    let fed = Federation::start_with(transport).await.unwrap();
    let client = fed.peer_transport_as("social-welfare").unwrap();
    let key = fed.signing_key("social-welfare");
    let bytes = envelope("social-welfare", "civil-registry", "benefit-eligibility").to_bytes();
    let (status, first) = send_signed(&fed, &client, bytes.clone(), &key).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = send_signed(&fed, &client, bytes, &key).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "replayed-envelope");

    for skew in [-120i64, 120] {
        let mut stale = envelope("social-welfare", "civil-registry", "benefit-eligibility");
        stale.issued_at = (time::OffsetDateTime::now_utc() + time::Duration::seconds(skew))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let (status, answer) = send_signed(&fed, &client, stale.to_bytes(), &key).await;
        assert_eq!(status, 401, "skew {skew}: {answer}");
        assert_eq!(answer["error"]["code"], "stale-envelope");
    }
    let misaddressed = envelope("social-welfare", "tax-office", "benefit-eligibility").to_bytes();
    let (status, answer) = send_signed(&fed, &client, misaddressed, &key).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("misaddressed")),
        "{answer}"
    );
}

async fn a_restarted_gateway_continues_the_same_chain(transport: Transport) {
    let mut fed = Federation::start_with(transport).await.unwrap();
    let (status, _) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000003"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let before = fed.gateway("civil-registry").ledger().checkpoint().0;
    fed.stop_dept("civil-registry").await;
    fed.start_dept("civil-registry").await.unwrap();
    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000004"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["receipt"]["index"].as_u64().unwrap(),
        before,
        "the next entry follows the last one"
    );
    // The consumer's connection to the old process is gone; it reconnected, without falling back.
    fed.assert_carried_by_transport("social-welfare");
    fed.stop().await;
    let entries = ledger_entries(&fed.ledger_dir("civil-registry")).unwrap();
    assert_eq!(
        entries.len() as u64,
        before + 1,
        "no policy-change entry for an unchanged policy set"
    );
    verify_ledger(&fed.ledger_dir("civil-registry"), &fed.directory()).unwrap();
}

async fn no_data_is_released_when_the_ledger_cannot_record(transport: Transport) {
    let mut fed = Federation::create_with(transport).unwrap();
    let config = fed.layout.dept("civil-registry").unwrap().config.clone();
    rewrite(
        &config,
        "dir = \"ledger\"",
        "dir = \"ledger\"\nmap_size_mib = 1\nmax_map_size_mib = 1",
    );
    // A 1 MiB log that may not grow holds more exchanges than the demo grant's 600 a minute.
    rewrite(
        &fed.dept_dir("civil-registry")
            .join("policies/welfare-residents.toml"),
        "per_minute = 600,",
        "per_minute = 100000,",
    );
    for dept in ["civil-registry", "social-welfare", "tax-office"] {
        fed.start_dept(dept).await.unwrap();
    }
    let mut refused = None;
    for n in 1..=5000 {
        let (status, answer) = fed
            .request(
                "social-welfare",
                "civil-registry",
                "residents",
                json!({"national_id": format!("D{:06}", 1 + n % 150)}),
                "benefit-eligibility",
            )
            .await
            .unwrap();
        if status != 200 {
            refused = Some((status, answer));
            break;
        }
    }
    let (status, answer) = refused.expect("a 1 MiB ledger that may not grow fills up");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["provider_status"], 503, "{answer}");
    assert_eq!(answer["error"]["code"], "ledger-unavailable", "{answer}");
    assert!(
        answer.get("rows").is_none(),
        "no rows without a durable entry: {answer}"
    );
    // The gateway stays up and keeps refusing cleanly.
    let (status, _) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "D000001"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 503);
    fed.assert_carried_by_transport("social-welfare");
    fed.stop().await;
    verify_ledger(&fed.ledger_dir("civil-registry"), &fed.directory()).unwrap();
}

#[tokio::test]
async fn bad_config_and_policy_files_fail_at_start_naming_the_file_and_field() {
    let mut fed = Federation::create().unwrap();
    let dept = fed.layout.dept("civil-registry").unwrap().clone();
    let original = std::fs::read_to_string(&dept.config).unwrap();

    std::fs::write(
        &dept.config,
        original.replace("[ledger]", "[ledger]\nmap_sise_mib = 5"),
    )
    .unwrap();
    let e = fed
        .start_dept("civil-registry")
        .await
        .expect_err("unknown key refused")
        .to_string();
    assert!(
        e.contains("causeway.toml:") && e.contains("map_sise_mib"),
        "{e}"
    );

    std::fs::write(
        &dept.config,
        original.replace(
            "department = \"civil-registry\"",
            "department = \"Civil Registry\"",
        ),
    )
    .unwrap();
    let e = fed
        .start_dept("civil-registry")
        .await
        .expect_err("bad id refused")
        .to_string();
    assert!(
        e.contains("causeway.toml:") && e.contains("invalid id"),
        "{e}"
    );

    std::fs::write(
        &dept.config,
        original.replace(
            "cert = \"../certs/civil-registry.pem\"",
            "cert = \"../certs/tax-office.pem\"",
        ),
    )
    .unwrap();
    let e = format!(
        "{:#}",
        fed.start_dept("civil-registry")
            .await
            .expect_err("someone else's certificate refused")
    );
    assert!(
        e.contains("tax-office.pem") && e.contains("tax-office"),
        "{e}"
    );

    std::fs::write(&dept.config, &original).unwrap();
    let policy = dept.dir.join("policies/welfare-residents.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("fields =", "feilds =")).unwrap();
    let e = fed
        .start_dept("civil-registry")
        .await
        .expect_err("bad policy refused")
        .to_string();
    assert!(
        e.contains("welfare-residents.toml:") && e.contains("feilds"),
        "{e}"
    );
    assert!(e.contains("did you mean \"fields\""), "{e}");

    std::fs::write(&policy, text).unwrap();
    fed.start_dept("civil-registry")
        .await
        .expect("fixed files start");
    fed.stop().await;
}

#[tokio::test]
async fn a_failed_fetch_is_notarized_and_tells_the_peer_only_the_code() {
    let mut fed = Federation::start().await.unwrap();
    let (status, answer) = fed
        .request(
            "social-welfare",
            "civil-registry",
            "residents",
            json!({"national_id": "' OR 1=1 --"}),
            "benefit-eligibility",
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad-parameter", "{answer}");
    assert!(answer.get("rows").is_none());
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("SELECT") && !message.contains(".sqlite"),
        "no internals leak: {message}"
    );
    let id = answer["exchange"].as_str().unwrap().to_owned();
    fed.stop().await;
    for dept in ["civil-registry", "social-welfare"] {
        let entries = ledger_entries(&fed.ledger_dir(dept)).unwrap();
        let e = entries
            .iter()
            .find(|e| e["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{dept} notarized the failed fetch"));
        assert_eq!(
            (
                e["kind"].as_str(),
                e["decision"].as_str(),
                e["outcome"].as_str()
            ),
            (Some("exchange"), Some("allow"), Some("bad-parameter"))
        );
        assert!(
            e.get("rows").is_none() && e.get("response_digest").is_none(),
            "{e}"
        );
    }
}
