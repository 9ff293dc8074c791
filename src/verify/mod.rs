//! Verifying what Sinch sends: callbacks and webhooks (spec §5). Filled in by the signing work.
