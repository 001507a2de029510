//! Fuzz target: see `ndas::fuzzing::stratum_lines`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas::fuzzing::stratum_lines(data));
