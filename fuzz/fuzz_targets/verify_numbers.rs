//! Numbers callbacks (NumbersVerifier), header and body.
//! The invariants: [`sinch_auth_fuzz::numbers_verifier`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sinch_auth_fuzz::numbers_verifier(data));
