//! Errors, one enum per boundary.
//!
//! - [`ConfigError`]: building credentials, providers and layers.
//! - [`FetchError`]: one attempt to obtain a token from a [`TokenSource`](crate::token::TokenSource).
//! - [`AuthError`]: authenticating one request.
//! - [`ServiceError`]: what [`SinchAuth`](crate::SinchAuth) returns, wrapping the inner
//!   service's error so it stays reachable.
//!
//! No error message ever contains a secret: variants carry names of fields and
//! variables, HTTP statuses and Sinch's error codes, never values.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// A boxed error, as tower uses them.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A problem found while building credentials, a provider or a layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required environment variable is not set.
    #[error("environment variable {name} is not set")]
    MissingEnvVar {
        /// The variable's name.
        name: &'static str,
    },
    /// An environment variable is set but its value cannot be used.
    #[error("environment variable {name} is malformed: {reason}")]
    InvalidEnvVar {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with it (never the value itself).
        reason: &'static str,
    },
    /// None of the `SINCH_*` credential variables is set.
    #[error(
        "no Sinch credentials in the environment: set SINCH_PROJECT_ID/SINCH_KEY_ID/SINCH_KEY_SECRET, \
         SINCH_APPLICATION_KEY/SINCH_APPLICATION_SECRET, or SINCH_SERVICE_PLAN_ID/SINCH_API_TOKEN"
    )]
    NoCredentialsInEnv,
    /// A credential field is empty.
    #[error("{field} is empty")]
    EmptyField {
        /// The field, in Sinch's terms (for example `"application secret"`).
        field: &'static str,
    },
    /// A secret that must be base64 text is not.
    #[error("{field} is not valid base64 (standard alphabet, padding optional)")]
    InvalidSecretEncoding {
        /// The field, in Sinch's terms.
        field: &'static str,
    },
    /// A credential field holds something that cannot be used.
    #[error("{field} is malformed: {reason}")]
    InvalidField {
        /// The field, in Sinch's terms.
        field: &'static str,
        /// What is wrong with it (never the value itself).
        reason: &'static str,
    },
    /// The chosen scheme needs a credential the provider does not hold.
    #[error("scheme {scheme} needs {needs}, which the credentials do not contain")]
    MissingCredential {
        /// The scheme that was configured.
        scheme: &'static str,
        /// The kind of credential it needs.
        needs: CredentialKind,
    },
    /// A URL given in the configuration cannot be used.
    #[error("{field} is not a usable URL: {reason}")]
    InvalidUrl {
        /// Which setting.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting is out of its allowed range.
    #[error("{setting} is out of range: {reason}")]
    InvalidSetting {
        /// Which setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The kinds of credential a Sinch user holds (protocol notes §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// Project access key: project id, key id, key secret.
    AccessKey,
    /// Application key and secret.
    Application,
    /// Service plan id and API token.
    ServicePlan,
    /// A plain bearer token.
    Bearer,
    /// A plain user name and password.
    Basic,
}

impl std::fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AccessKey => "a project access key",
            Self::Application => "application credentials",
            Self::ServicePlan => "a service plan",
            Self::Bearer => "a bearer token",
            Self::Basic => "basic credentials",
        })
    }
}

/// Why one attempt to obtain a token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The token endpoint answered with an error status.
    #[error("token endpoint answered {status}{}", describe_sinch_error(error.as_deref(), description.as_deref()))]
    Endpoint {
        /// The HTTP status.
        status: StatusCode,
        /// Sinch's `error` code, when the body carried one (for example `invalid_client`).
        error: Option<String>,
        /// Sinch's `error_description`, when the body carried one.
        description: Option<String>,
        /// The delay the server asked for in `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or the response could not be read.
    #[error("token request failed: {0}")]
    Transport(#[source] BoxError),
    /// No complete response within the per-fetch timeout.
    #[error("token request timed out after {0:?}")]
    Timeout(Duration),
    /// The response body was larger than the limit.
    #[error("token response is larger than {limit} bytes")]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The response body could not be understood.
    #[error("token response is malformed: {reason}")]
    MalformedResponse {
        /// What is wrong (never the body's content).
        reason: &'static str,
    },
    /// The credentials needed to fetch the token are missing.
    #[error("cannot fetch a token: the credentials do not contain {0}")]
    MissingCredential(CredentialKind),
    /// A user-supplied token source failed.
    #[error("token source failed: {0}")]
    Source(#[source] BoxError),
}

fn describe_sinch_error(error: Option<&str>, description: Option<&str>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!(" ({e}: {d})"),
        (Some(e), None) => format!(" ({e})"),
        (None, Some(d)) => format!(" ({d})"),
        (None, None) => String::new(),
    }
}

impl FetchError {
    /// Whether retrying later could help: transport failures, timeouts, 408, 429 and 5xx.
    ///
    /// Other failures (bad credentials, malformed answers) are reported to
    /// waiting requests at once; the background task still retries them, with backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Endpoint { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            Self::Transport(_) | Self::Timeout(_) | Self::Source(_) => true,
            Self::ResponseTooLarge { .. }
            | Self::MalformedResponse { .. }
            | Self::MissingCredential(_) => false,
        }
    }

    /// The HTTP status of the token endpoint's answer, if it answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Endpoint { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Sinch's `error` code, if the token endpoint sent one.
    pub fn sinch_error(&self) -> Option<&str> {
        match self {
            Self::Endpoint { error, .. } => error.as_deref(),
            _ => None,
        }
    }
}

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No valid token arrived before the wait deadline.
    #[error("no valid token within {waited:?}{}", match cause { Some(c) => format!("; last fetch: {c}"), None => String::new() })]
    TokenUnavailable {
        /// How long the request waited.
        waited: Duration,
        /// The last fetch failure, if one happened.
        #[source]
        cause: Option<Arc<FetchError>>,
    },
    /// Fetching a token failed in a way that waiting would not fix.
    #[error("token fetch failed: {0}")]
    TokenFetch(#[source] Arc<FetchError>),
    /// The current credentials lack what the scheme needs (for example after a rotation).
    #[error("scheme {scheme} needs {needs}, which the current credentials do not contain")]
    MissingCredential {
        /// The scheme in use.
        scheme: &'static str,
        /// The kind of credential it needs.
        needs: CredentialKind,
    },
    /// The request targets a host that is not allowed to receive credentials,
    /// and the layer was configured to reject such requests.
    #[error("refusing to send credentials to {host:?}: not an allowed https host")]
    HostNotAllowed {
        /// The request's host.
        host: String,
    },
    /// The request body is larger than the limit for signing.
    #[error("request body exceeds the {limit}-byte limit for signing")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request body could not be read.
    #[error("request body could not be read: {0}")]
    Body(#[source] BoxError),
    /// The body is a stream that cannot be read ahead of sending, so it cannot be signed.
    #[error("request body is a stream and cannot be signed; use a buffered body")]
    UnsignableBody,
    /// A token or credential contains bytes that are not allowed in an HTTP header.
    #[error("{what} contains characters not allowed in an HTTP header")]
    InvalidHeaderValue {
        /// Which value (never the value itself).
        what: &'static str,
    },
    /// The token machinery needs a tokio runtime and none is running.
    #[error(
        "sinch-auth needs a tokio runtime (with the time driver) for token refresh; none is running"
    )]
    NoRuntime,
    /// The background refresher is gone (its runtime shut down).
    #[error("the token refresher stopped (its runtime shut down)")]
    RefresherStopped,
}

/// The error of [`SinchAuth`](crate::SinchAuth): either authentication failed,
/// or the inner service failed (its error is kept, typed).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError<E> {
    /// The request could not be authenticated; it was not sent.
    #[error("sinch-auth: {0}")]
    Auth(#[source] AuthError),
    /// The inner service failed.
    #[error("inner service: {0}")]
    Inner(#[source] E),
}

impl<E> ServiceError<E> {
    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            Self::Auth(_) => None,
        }
    }

    /// The authentication error, if that is what this is.
    pub fn auth(&self) -> Option<&AuthError> {
        match self {
            Self::Auth(e) => Some(e),
            Self::Inner(_) => None,
        }
    }
}

impl<E> From<AuthError> for ServiceError<E> {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}
