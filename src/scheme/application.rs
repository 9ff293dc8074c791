//! Application-signed requests (spec §4). Filled in by the signing work.
