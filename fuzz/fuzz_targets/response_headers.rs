//! www-authenticate (the 401-expired rule) and Retry-After.
//! The invariants: [`sinch_auth_fuzz::response_headers`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sinch_auth_fuzz::response_headers(data));
