//! Ed25519 verification as the gateway does it ([`causeway_ledger::note::verify_strict`]) against
//! ed25519-dalek's `verify_strict`, which it must match exactly.
//!
//! ```text
//! cargo run --release -p causeway-ledger --example verify_bench [-- ROUNDS]
//! ```
//!
//! Each round verifies the same 2,000 envelope-sized signatures with both, alternating; prints the
//! median microseconds per signature of each and their ratio, and what signing one costs.

use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};

const SIGNATURES: usize = 2_000;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse().expect("ROUNDS is a number"))
        .unwrap_or(7);
    let key = SigningKey::from_bytes(&[3; 32]);
    let verifier = key.verifying_key();
    let messages: Vec<Vec<u8>> = (0..SIGNATURES)
        .map(|i| {
            format!(
                "causeway-envelope/v1\n{{\"v\":1,\"n\":{i},\"pad\":\"{}\"}}",
                "x".repeat(300)
            )
            .into_bytes()
        })
        .collect();
    let signatures: Vec<_> = messages.iter().map(|m| key.sign(m)).collect();
    let per_signature = |check: &dyn Fn(&[u8], &ed25519_dalek::Signature) -> bool| {
        let start = Instant::now();
        for (m, s) in messages.iter().zip(&signatures) {
            assert!(check(m, s), "a valid signature was refused");
        }
        start.elapsed().as_secs_f64() * 1e6 / SIGNATURES as f64
    };
    let (mut dalek, mut ours, mut signing) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for m in &messages {
            std::hint::black_box(key.sign(m));
        }
        signing.push(start.elapsed().as_secs_f64() * 1e6 / SIGNATURES as f64);
        dalek.push(per_signature(&|m, s| verifier.verify_strict(m, s).is_ok()));
        ours.push(per_signature(&|m, s| {
            causeway_ledger::note::verify_strict(&verifier, m, s)
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (dalek, ours, signing) = (median(&mut dalek), median(&mut ours), median(&mut signing));
    println!("Ed25519 verification, median of {rounds} rounds of {SIGNATURES} signatures:");
    println!("  ed25519-dalek verify_strict   {dalek:6.1} us");
    println!(
        "  note::verify_strict           {ours:6.1} us   ({:.2}x)",
        ours / dalek
    );
    println!("Ed25519 signing, same rounds:  {signing:6.1} us");
}
