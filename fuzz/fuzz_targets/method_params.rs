//! Fuzz target: see `ndas_tools::fuzzing::method_params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas_tools::fuzzing::method_params(data));
