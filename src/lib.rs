//! Authentication for Sinch's APIs as Tower middleware.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms, clippy::all)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod credentials;
pub mod error;
pub mod host;
pub mod scheme;
pub mod verify;

pub use credentials::{
    AccessKey, ApplicationCredentials, BasicCredentials, BearerToken, CredentialProvider,
    Credentials, CredentialsBuilder, CredentialsId, EnvCredentials, RotatingCredentials,
    ServicePlan, StaticCredentials,
};
pub use error::{AuthError, BoxError, ConfigError, CredentialKind, FetchError, ServiceError};
