//! SINCH_* environment values and base64 application secrets.
//! The invariants: [`sinch_auth_fuzz::credentials`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sinch_auth_fuzz::credentials(data));
