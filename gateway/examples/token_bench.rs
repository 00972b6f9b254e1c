//! What an officer's token costs the client API: verifying a fresh token (EdDSA signature and
//! claims) against verifying one the gateway has seen (a hash-table lookup), medians of
//! several rounds.
//!
//! cargo run --release -p causeway --example token_bench [-- ROUNDS]

use std::time::Instant;

use causeway::callers::tokens::{DemoIssuer, OfficerTokens};
use causeway::config::OfficersSection;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let (key, jwks) = (dir.path().join("idp.key"), dir.path().join("idp.jwks.json"));
    DemoIssuer::create(&key, &jwks, "k1")?;
    let issuer = DemoIssuer::load(&key, "k1")?;
    let section = OfficersSection {
        issuer: "https://idp.example".into(),
        audience: "causeway:bench".into(),
        jwks,
        claim: "sub".into(),
        roles_claim: "roles".into(),
        max_skew_secs: 60,
        purpose_roles: Default::default(),
    };
    const N: usize = 2_000;
    let tokens: Vec<String> = (0..N)
        .map(|i| {
            issuer.issue(
                &section.issuer,
                &section.audience,
                &format!("officer-{i}"),
                &[],
                600,
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let (mut fresh, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let verifier = OfficerTokens::load(&section)?;
        let started = Instant::now();
        for token in &tokens {
            verifier.verify(token).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        fresh.push(started.elapsed().as_secs_f64() * 1e6 / N as f64);
        let started = Instant::now();
        for token in &tokens {
            verifier.verify(token).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        cached.push(started.elapsed().as_secs_f64() * 1e6 / N as f64);
    }
    println!(
        "token_bench: {N} EdDSA tokens, median of {rounds} rounds\n  first sight (signature + claims): {:.1} us/token\n  cached (hash-table lookup):       {:.2} us/token",
        median(fresh),
        median(cached)
    );
    Ok(())
}
