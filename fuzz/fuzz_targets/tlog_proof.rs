//! Fuzz target: see causeway::fuzzing::tlog_proof for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway::fuzzing::tlog_proof(data));
