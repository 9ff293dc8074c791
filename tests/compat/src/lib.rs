//! Nothing to see: the test in `tests/readme_flow.rs` is the point. See
//! `Cargo.toml` for why this crate exists.
