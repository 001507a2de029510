//! Fuzz target: see `ndas::fuzzing::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ndas::fuzzing::template(data));
