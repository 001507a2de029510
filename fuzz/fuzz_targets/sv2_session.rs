//! Fuzz target: see `ndas_tools::fuzzing::sv2_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas_tools::fuzzing::sv2_session(data));
