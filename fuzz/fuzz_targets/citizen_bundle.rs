//! Fuzz target: see causeway::fuzzing::citizen_bundle for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway::fuzzing::citizen_bundle(data));
