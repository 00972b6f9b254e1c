//! Causeway: a gateway that lets government departments share data accountably.
//!
//! Each department runs a gateway beside its database. Gateways talk over mutual TLS, answer only
//! what the provider's policy files allow, and notarize every exchange, allowed or denied, into a
//! hash-chained Merkle-tree access log that both sides sign.
//!
//! This crate owns the gateway: configuration ([`config`]), identity and TLS ([`identity`]), the
//! transports ([`transport`]), the exchange pipeline ([`exchange`]), the access log ([`ledger`]),
//! the oversight node's replica, cross-check and dashboard ([`oversight`]), the running node
//! ([`gateway`]) and the command line ([`cli`]). Policy evaluation lives in
//! `causeway-policy` and database access in `causeway-adapters`; neither knows about this crate.

#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod exchange;
pub mod federation;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod identity;
pub mod ledger;
pub mod log_api;
pub mod oversight;
pub mod policy_reload;
pub mod telemetry;
pub mod transport;
