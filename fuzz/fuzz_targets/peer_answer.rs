//! Fuzz target: see causeway::fuzzing::peer_answer for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway::fuzzing::peer_answer(data));
