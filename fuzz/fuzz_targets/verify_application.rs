//! Voice and Verification callbacks (ApplicationVerifier), headers and body.
//! The invariants: [`sinch_auth_fuzz::application_verifier`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sinch_auth_fuzz::application_verifier(data));
