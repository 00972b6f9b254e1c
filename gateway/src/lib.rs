//! Causeway: a gateway that lets government departments share data accountably.
//!
//! Each department runs a gateway beside its database. Gateways talk over mutual TLS, answer only
//! what the provider's policy files allow, and notarize every exchange, allowed or denied, into a
//! hash-chained Merkle-tree access log that both sides sign.
//!
//! # Layers
//!
//! Each module imports only modules below it; `tests/layers.rs` checks this on every test run.
//! From the bottom up:
//!
//! 1. Other crates: `causeway-ledger` (the access log), `causeway-policy` (policy files and
//!    decisions), `causeway-adapters` (database sources). None of them knows this crate.
//!    Then [`files`]: file errors with their positions, and SIGHUP (read the files again).
//! 2. [`identity`] (who is speaking: ids from certificates, keys, TLS material, the CRL in force),
//!    [`policy_reload`] (the policy set in force, reloaded and notarized), [`rate_limits`]
//!    (budgets of decisions per caller) and [`text`] (outside text made safe to show: control and
//!    bidi characters escaped, CSV cells neutralized).
//! 3. [`directory`]: the federation's membership and keys.
//! 4. [`config`]: what an operator writes for one gateway (`causeway.toml`).
//! 5. [`telemetry`] (logs, traces and metrics) and [`callers`] (who is asking at the client API:
//!    registered applications, officers' tokens).
//! 6. [`transport`]: bytes on the wire (HTTPS/2, QUIC, the loopback listeners) and the peer client.
//! 7. [`exchange`] (the provider pipeline and the consumer's stages) and [`log_api`] (the log and
//!    witness endpoints).
//! 8. [`admin`] (health, readiness, metrics) and [`oversight`] (replica, cross-check, reports,
//!    dashboard).
//! 9. [`gateway`]: the composition roots, one per role (a department gateway, an oversight node).
//! 10. [`layout`] (a federation laid out on disk, for the demo and the tests), [`cli`], and the
//!     fuzz targets' bodies.

#![warn(missing_docs)]

pub mod admin;
pub mod callers;
pub mod cli;
pub mod config;
pub mod directory;
pub mod exchange;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod identity;
pub mod layout;
pub mod log_api;
pub mod oversight;
pub mod policy_reload;
pub mod rate_limits;
pub mod telemetry;
pub mod text;
pub mod transport;
