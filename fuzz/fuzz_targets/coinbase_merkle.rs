//! Fuzz target: see `ndas_tools::fuzzing::coinbase_merkle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas_tools::fuzzing::coinbase_merkle(data));
