//! In-app calling user registration tokens (spec §3). Filled in by the signing work.
