//! Fuzz target: see `ndas::fuzzing::method_params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas::fuzzing::method_params(data));
