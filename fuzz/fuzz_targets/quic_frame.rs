//! Fuzz target: see causeway::fuzzing::quic_frame for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway::fuzzing::quic_frame(data));
