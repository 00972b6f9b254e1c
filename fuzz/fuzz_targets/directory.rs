//! Fuzz target: see causeway::fuzzing::directory for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway::fuzzing::directory(data));
