//! Fuzz target: Stratum V2 frames as a client may send them, decrypted,
//! read into NDAS's messages by the wire module (`ndas::sv2::wire`). Any
//! payload is an answer (a message or an error), never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ndas::sv2::wire::decode_plain(data);
});
