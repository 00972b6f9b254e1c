//! A provider process killed with SIGKILL and restarted: its consumers still hold QUIC connections
//! to the dead process. The restarted provider answers their next packet with a stateless reset
//! (its reset key is derived from its TLS key, so it is the same after a restart), and the
//! consumer reconnects at once over QUIC instead of waiting for the idle timeout.

use std::time::{Duration, Instant};

use causeway::config::GatewayConfig;
use causeway::gateway::Gateway;
use causeway::layout::{self, DEMO_DEPARTMENTS};
use causeway::transport::Transport;
use serde_json::json;

mod support;
use support::{raise_officer_budget, serve, wait_ready, CaseDesk};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reconnects_over_quic_at_once_after_the_provider_is_killed_and_restarted() {
    let root = tempfile::tempdir().unwrap();
    let layout =
        layout::create_with(root.path(), "demo", DEMO_DEPARTMENTS, Transport::Quic).unwrap();
    layout::generate_demo_data(&layout, 200).unwrap();
    raise_officer_budget(&layout);
    let registry = layout.dept("civil-registry").unwrap().clone();
    let mut provider = serve(&registry.config);
    wait_ready(registry.admin).await;
    let consumer = Gateway::start(
        &GatewayConfig::load(&layout.dept("social-welfare").unwrap().config).unwrap(),
    )
    .await
    .unwrap();
    let ask = |n: u32| {
        let body = json!({
            "provider": "civil-registry", "dataset": "residents",
            "params": {"national_id": format!("D{n:06}")}, "purpose": "benefit-eligibility",
            "legal_basis": "test-act:s1", "case": ""
        });
        let desk = CaseDesk::of(&layout, "social-welfare");
        async move { desk.post(&body).await.unwrap() }
    };
    let (status, answer) = ask(1).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));

    provider.kill().unwrap();
    provider.wait().unwrap();
    let mut provider = serve(&registry.config);
    wait_ready(registry.admin).await;

    let started = Instant::now();
    let (status, answer) = ask(2).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    // Without a valid stateless reset the consumer would wait out its 10 s request timeout.
    assert!(
        took < Duration::from_secs(5),
        "the second exchange took {took:?}"
    );
    // Witness cosignature requests share the transport, so count at least the two exchanges; a
    // cosignature attempt may have hit the provider while it was down (a fallback that found
    // nothing on HTTPS either), but nothing was carried over HTTPS.
    let (https, quic, _fallbacks) = consumer.transport_stats().snapshot();
    assert_eq!(https, 0, "nothing went over HTTPS");
    assert!(quic >= 2, "both exchanges over QUIC (quic = {quic})");

    consumer.shutdown().await;
    provider.kill().unwrap();
    provider.wait().unwrap();
}
