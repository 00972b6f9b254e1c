//! Fuzz target: see causeway::fuzzing::envelope for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway::fuzzing::envelope(data));
