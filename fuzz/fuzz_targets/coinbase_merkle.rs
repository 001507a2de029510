//! Fuzz target: see `ndas::fuzzing::coinbase_merkle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas::fuzzing::coinbase_merkle(data));
