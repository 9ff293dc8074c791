//! Token endpoint bodies: parse_token, parse_error_body, jwt_expiry.
//! The invariants: [`sinch_auth_fuzz::token_response`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sinch_auth_fuzz::token_response(data));
