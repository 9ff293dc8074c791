//! Authentication for Sinch's APIs as Tower middleware.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms, clippy::all)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorizer;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod body;
mod builder;
pub mod clock;
pub mod credentials;
pub mod error;
pub mod host;
pub mod layer;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub mod reqwest;
mod routing;
pub mod scheme;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testkit;
pub mod token;
pub mod verify;

/// Internal parsers, exposed for the fuzz targets in `fuzz/` (built by
/// `cargo fuzz`, which sets `cfg(fuzzing)`) and the property tests that share
/// their invariants (which build with `test-util`). Not part of the API: no
/// stability promise, and absent from ordinary builds.
#[cfg(any(fuzzing, feature = "test-util"))]
#[doc(hidden)]
pub mod __fuzz {
    use std::time::SystemTime;

    use http::HeaderMap;

    /// Parses a token endpoint's success body (spec §2).
    pub fn parse_token(
        body: &[u8],
        now: SystemTime,
    ) -> Result<crate::token::Token, crate::FetchError> {
        crate::token::oauth2::parse_token(body, now)
    }

    /// Reads Sinch's `error` and `error_description` from an error body,
    /// with every `secrets` value redacted.
    pub fn parse_error_body(body: &[u8], secrets: &[&str]) -> (Option<String>, Option<String>) {
        crate::token::oauth2::parse_error_body(body, secrets)
    }

    /// `Retry-After` as seconds or an HTTP date.
    pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<std::time::Duration> {
        crate::token::oauth2::retry_after(headers, now)
    }

    /// The unverified `exp` claim of a JWT.
    pub fn jwt_expiry(token: &str) -> Option<u64> {
        crate::token::cache::jwt_expiry(token)
    }

    /// Whether a `www-authenticate` value says the token expired (the 401 rule).
    pub fn mentions_expired(headers: &HeaderMap) -> bool {
        crate::authorizer::mentions_expired(headers)
    }
}

pub use crate::body::AuthBody;
pub use crate::builder::SinchAuthBuilder;
pub use crate::routing::Scheme;
pub use credentials::{
    AccessKey, ApplicationCredentials, BasicCredentials, BearerToken, CredentialProvider,
    Credentials, CredentialsBuilder, CredentialsId, EnvCredentials, RotatingCredentials,
    ServicePlan, StaticCredentials,
};
pub use error::{AuthError, BoxError, ConfigError, CredentialKind, FetchError, ServiceError};
pub use layer::{SinchAuth, SinchAuthFuture, SinchAuthLayer};

// The README's examples compile as doc tests.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "reqwest-middleware",
    feature = "rustls"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
