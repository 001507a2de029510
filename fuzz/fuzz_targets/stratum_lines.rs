//! Fuzz target: see `ndas_tools::fuzzing::stratum_lines`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas_tools::fuzzing::stratum_lines(data));
