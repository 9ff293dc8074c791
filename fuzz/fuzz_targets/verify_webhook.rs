//! Conversation and SMS webhooks (WebhookVerifier), headers and body.
//! The invariants: [`sinch_auth_fuzz::webhook_verifier`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sinch_auth_fuzz::webhook_verifier(data));
