//! Authentication for Sinch's APIs as Tower middleware.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms, clippy::all)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod clock;
mod core;
pub mod credentials;
pub mod error;
pub mod host;
pub mod layer;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub mod reqwest;
pub mod scheme;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testkit;
pub mod token;
pub mod verify;

pub use crate::core::Scheme;
pub use credentials::{
    AccessKey, ApplicationCredentials, BasicCredentials, BearerToken, CredentialProvider,
    Credentials, CredentialsBuilder, CredentialsId, EnvCredentials, RotatingCredentials,
    ServicePlan, StaticCredentials,
};
pub use error::{AuthError, BoxError, ConfigError, CredentialKind, FetchError, ServiceError};
pub use layer::{AuthBody, ResponseFuture, SinchAuth, SinchAuthBuilder, SinchAuthLayer};

// The README's examples compile as doc tests.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "reqwest-middleware",
    feature = "rustls"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
