//! Authentication for [Sinch](https://sinch.com)'s APIs as Tower middleware,
//! and verification of what Sinch sends back.
//!
//! Put [`SinchAuthLayer`] in front of any Tower HTTP client (hyper-util's, or
//! reqwest through [`reqwest_middleware`]) and each
//! request to a Sinch API leaves with the `Authorization` that API takes:
//! OAuth2 bearer tokens refreshed in the background, service-plan tokens,
//! application-signed requests, self-signed JWTs. On the server side,
//! [`verify`] checks the signatures on Sinch's callbacks and webhooks.
//!
//! # Add it
//!
//! ```toml
//! [dependencies]
//! sinch-auth = "0.1"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tower = { version = "0.5", features = ["util"] }
//! hyper-util = { version = "0.1", features = ["client-legacy", "http1", "tokio"] }
//! # and, per integration: features = ["reqwest-middleware"] or ["axum"]
//! ```
//!
//! Credentials come from the `SINCH_*` variables Sinch's SDKs use
//! ([`EnvCredentials`], [`Regions`](host::Regions), [`WebhookSecrets`]), from
//! mounted files ([`FileCredentials`]), from a secret manager
//! ([`PollingCredentials`]) or from code ([`Credentials::builder`]).
//!
//! The examples below run offline against the [`testkit`]'s loopback
//! stand-in for Sinch (feature `test-util`). In production, use
//! [`SinchAuthLayer::by_host`], the default token host and an HTTPS client
//! (the repository's `examples/` show each one).
//!
//! # A Tower client (hyper-util)
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use sinch_auth::testkit::SinchStandIn;
//! use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let key = AccessKey::new("my-project", "key-id", "key-secret")?;
//! let sinch = SinchStandIn::builder().access_key(&key).start().await?;
//!
//! // Against real Sinch hosts, `SinchAuthLayer::by_host(provider)` picks the
//! // scheme each API takes; the stand-in's loopback host needs one named.
//! let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
//!     .scheme(Scheme::OAuth2)
//!     .auth_host(&sinch.url())
//!     .build()?;
//! let client = ServiceBuilder::new().layer(layer).service(sinch.client());
//!
//! let url = format!("{}/v1/projects/my-project/activeNumbers", sinch.url());
//! let request = http::Request::get(url).body(Full::new(Bytes::new()))?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(sinch.token_requests(), 1); // later requests reuse the token
//! # Ok(()) }
//! ```
//!
//! # reqwest (feature `reqwest-middleware`)
//!
//! ```
//! # #[cfg(feature = "reqwest-middleware")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let _ = rustls::crypto::ring::default_provider().install_default();
//! use sinch_auth::integration::reqwest::SinchAuthMiddleware;
//! use sinch_auth::testkit::SinchStandIn;
//! use sinch_auth::{Scheme, ServicePlan, SinchAuthLayer, StaticCredentials};
//!
//! let plan = ServicePlan::new("my-plan", "api-token")?;
//! let sinch = SinchStandIn::builder().service_plan(&plan).start().await?;
//! let layer = SinchAuthLayer::builder(StaticCredentials::new(plan))
//!     .scheme(Scheme::ServicePlanBearer)
//!     .build()?;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(SinchAuthMiddleware::from(&layer))
//!     .build();
//! let url = format!("{}/xms/v1/my-plan/batches", sinch.url());
//! let response = client.get(url).send().await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! # #[cfg(not(feature = "reqwest-middleware"))]
//! # fn main() {}
//! ```
//!
//! # Verifying Sinch's webhooks in axum (feature `axum`)
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use axum::{Router, body::Body, routing::post};
//! use http::StatusCode;
//! use sinch_auth::integration::axum::VerifiedCallback;
//! use sinch_auth::verify::{VerifyLayer, WebhookVerifier, webhook_signature};
//! use tower::ServiceExt;
//!
//! async fn delivery_report(VerifiedCallback(_verified): VerifiedCallback) -> StatusCode {
//!     StatusCode::OK // only requests Sinch signed get here
//! }
//!
//! let router = Router::new().route(
//!     "/sinch/sms",
//!     post(delivery_report).layer(VerifyLayer::new(WebhookVerifier::new("webhook-secret"))),
//! );
//!
//! // What Sinch sends: the body signed with nonce and timestamp.
//! let body = r#"{"type":"recipient_delivery_report_sms"}"#;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
//! let timestamp = now.as_secs().to_string();
//! let signature = webhook_signature("webhook-secret", body.as_bytes(), "nonce-1", &timestamp);
//! let signed = http::Request::post("/sinch/sms")
//!     .header("x-sinch-webhook-signature", signature)
//!     .header("x-sinch-webhook-signature-nonce", "nonce-1")
//!     .header("x-sinch-webhook-signature-timestamp", &timestamp)
//!     .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
//!     .body(Body::from(body))?;
//! assert_eq!(router.clone().oneshot(signed).await?.status(), StatusCode::OK);
//!
//! let forged = http::Request::post("/sinch/sms").body(Body::from(body))?;
//! assert_eq!(router.oneshot(forged).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```
//!
//! # Features
//!
//! | Feature | Default | What it adds |
//! |---|---|---|
//! | `rustls` | yes | the built-in token-fetch client speaks TLS through rustls |
//! | `reqwest-middleware` | | [`reqwest`]: the [`reqwest_middleware`] adapter |
//! | `axum` | | [`axum`]: the `VerifiedCallback` extractor for verified callbacks |
//! | `redis` | | [`RedisTokenStore`](token::RedisTokenStore): tokens shared by a fleet through Redis |
//! | `test-util` | | [`testkit`]: a loopback stand-in for Sinch for your tests |
//!
//! # Where next
//!
//! - [`layer`]: schemes per host, the builder's options, 401 handling.
//! - [`credentials`]: the credential kinds and their providers, rotation
//!   without a restart.
//! - [`verify`]: every callback verifier, freshness and replay protection.
//! - [`host`]: which hosts receive credentials, per-API regions.
//! - `docs/protocol.md` in the repository: what goes on the wire, with
//!   Sinch's documentation and the SDK sources for each fact. The
//!   "protocol notes §N" references throughout these docs point to its
//!   sections.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms, clippy::all)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// `rediss://` goes through rustls with the provider a feature chose; the
// `redis` feature brings none of its own, so that it never adds a second one.
#[cfg(all(
    feature = "redis",
    not(any(feature = "rustls-ring", feature = "rustls-aws-lc"))
))]
compile_error!(
    "the `redis` feature needs a crypto provider for rustls: turn on `rustls-ring` \
     (in the default features) or `rustls-aws-lc`"
);

mod authorizer;
mod body;
mod builder;
pub mod clock;
pub mod credentials;
pub mod error;
pub mod host;
#[cfg(any(feature = "axum", feature = "reqwest-middleware"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "axum", feature = "reqwest-middleware")))
)]
pub mod integration;
pub mod layer;
mod observe;
mod routing;
pub mod scheme;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testkit;
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc")))
)]
pub mod tls;
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

    /// Parses a token endpoint's success body (protocol notes §2).
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
pub use crate::scheme::Scheme;
pub use credentials::{
    AccessKey, ApplicationCredentials, BasicCredentials, BearerToken, CredentialProvider,
    Credentials, CredentialsBuilder, CredentialsId, EnvCredentials, FileCredentials,
    FileCredentialsBuilder, PollingCredentials, PollingCredentialsBuilder, ReloadError,
    RotatingCredentials, ServicePlan, StaticCredentials, WebhookSecrets,
};
pub use error::{AuthError, BoxError, ConfigError, CredentialKind, FetchError, ServiceError};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use integration::axum::VerifiedCallback;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use integration::reqwest::SinchAuthMiddleware;
pub use layer::{SinchAuth, SinchAuthFuture, SinchAuthLayer};
/// The secret wrappers the credential accessors return, so callers need no
/// direct dependency on `secrecy` to read or build them.
pub use secrecy::{ExposeSecret, SecretSlice, SecretString};

// The README's examples compile as doc tests.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "reqwest-middleware",
    feature = "rustls"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
