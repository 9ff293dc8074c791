//! Adapters for the frameworks users already run, each behind its feature:
//! [`reqwest`] (feature `reqwest-middleware`) and [`axum`] (feature `axum`).
//!
//! They live here, one level down, so that `use sinch_auth::*` never
//! shadows the `reqwest` or `axum` crates; their main types are also
//! re-exported at the crate root ([`SinchAuthMiddleware`](crate::SinchAuthMiddleware),
//! [`VerifiedCallback`](crate::VerifiedCallback)).

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub mod reqwest;
