//! The [`reqwest_middleware`] adapter (feature `reqwest-middleware`):
//! [`SinchAuthMiddleware`] authenticates requests of a
//! [`ClientWithMiddleware`](::reqwest_middleware::ClientWithMiddleware) exactly
//! as [`SinchAuthLayer`] does for a tower stack, from the same core.
//!
//! Build a [`SinchAuthLayer`] as usual (it holds the credentials, the token
//! caches and the background refresher), then turn it into a middleware:
//!
//! ```no_run
//! use sinch_auth::integration::reqwest::SinchAuthMiddleware;
//! use sinch_auth::{EnvCredentials, SinchAuthLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Choose the scheme by host, as Sinch's SDKs do.
//! let layer = SinchAuthLayer::by_host(EnvCredentials::from_env()?)?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(SinchAuthMiddleware::new(&layer))
//!     .build();
//! let response = client
//!     .get("https://numbers.api.sinch.com/v1/projects/my-project/activeNumbers")
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The middleware and the layer it came from (and every clone of either)
//! share credentials, token caches and the refresher: one OAuth2 token
//! serves both.
//!
//! # What it does with each request
//!
//! - Requests the layer would leave alone (hosts outside the allowlist, an
//!   `Authorization` header already present) go on untouched.
//! - Token schemes get `Authorization` from the cache, waiting for the first
//!   token if need be. A `401` whose `www-authenticate` mentions `expired`
//!   clears that token and the request is sent once more with a new one,
//!   provided it could be copied beforehand ([`reqwest::Request::try_clone`]:
//!   any bytes body, not a stream); the second answer goes to the caller.
//! - The application scheme signs the method, the URL path (percent-decoded,
//!   no query), the request's own `Content-Type` header and the body. The
//!   body must be bytes (`.body(bytes)`, `.body(string)`, `.json(..)`,
//!   `.form(..)`): a streaming body fails with [`AuthError::UnsignableBody`],
//!   one over the [`max_body_bytes`](crate::SinchAuthBuilder::max_body_bytes)
//!   limit with [`AuthError::BodyTooLarge`]. Set `Content-Type` on the
//!   request, not as a client default header: client defaults are added
//!   after the middleware runs, so they would not be signed.
//!
//! # Errors
//!
//! A request that cannot be authenticated is not sent; the client returns
//! [`reqwest_middleware::Error::Middleware`], an `anyhow::Error` holding the
//! typed [`AuthError`]. Get it back with [`auth_error`] (or `downcast_ref`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # // This crate's own tests pick rustls' ring provider; your reqwest may not need it.
//! # let _ = rustls::crypto::ring::default_provider().install_default();
//! use sinch_auth::integration::reqwest::{SinchAuthMiddleware, auth_error};
//! use sinch_auth::{AuthError, BearerToken, Scheme, SinchAuthLayer, StaticCredentials};
//!
//! let layer = SinchAuthLayer::builder(StaticCredentials::new(BearerToken::new("token")?))
//!     .scheme(Scheme::Bearer)
//!     .reject_disallowed_hosts(true)
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(SinchAuthMiddleware::new(&layer))
//!     .build();
//!
//! // Plain http to a public host may not carry credentials: refused before sending.
//! let error = client.get("http://example.com/").send().await.unwrap_err();
//! assert!(matches!(auth_error(&error), Some(AuthError::HostNotAllowed { .. })));
//! # Ok(()) }
//! ```

use std::sync::Arc;

use ::reqwest::{Request, Response};
use bytes::Bytes;
use http::{Extensions, HeaderMap, Method};
use reqwest_middleware::{Middleware, Next};

use crate::SinchAuthLayer;
use crate::authorizer::{Authorized, Authorizer, BoxFuture, Memo, Outgoing, rejected};
use crate::error::AuthError;
use crate::routing::Target;

/// A [`reqwest_middleware::Middleware`] that authenticates requests to Sinch,
/// backed by the same core as the [`SinchAuthLayer`] it is made from.
///
/// Cheap to clone. See the [module docs](crate::integration::reqwest) for a complete
/// client, what happens to each request and how errors come back.
#[derive(Clone, Debug)]
pub struct SinchAuthMiddleware {
    authorizer: Arc<Authorizer>,
}

impl SinchAuthMiddleware {
    /// A middleware sharing `layer`'s credentials, settings, token caches
    /// and refresher.
    ///
    /// ```
    /// use sinch_auth::integration::reqwest::SinchAuthMiddleware;
    /// use sinch_auth::{Scheme, ServicePlan, SinchAuthLayer, StaticCredentials};
    ///
    /// let plan = StaticCredentials::new(ServicePlan::new("plan-id", "api-token")?);
    /// let layer = SinchAuthLayer::new(plan, Scheme::ServicePlanBearer)?;
    /// let middleware = SinchAuthMiddleware::new(&layer);
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn new(layer: &SinchAuthLayer) -> Self {
        Self {
            authorizer: layer.authorizer().clone(),
        }
    }
}

impl From<&SinchAuthLayer> for SinchAuthMiddleware {
    fn from(layer: &SinchAuthLayer) -> Self {
        Self::new(layer)
    }
}

impl From<SinchAuthLayer> for SinchAuthMiddleware {
    fn from(layer: SinchAuthLayer) -> Self {
        Self::new(&layer)
    }
}

/// The [`AuthError`] that stopped a request, if that is what `error` is.
///
/// [`SinchAuthMiddleware`] reports failures as
/// [`reqwest_middleware::Error::Middleware`] wrapping the typed error; this
/// is `match error { Error::Middleware(e) => e.downcast_ref::<AuthError>(), _ => None }`.
/// Errors of the client itself (connection refused, timeouts) give `None`.
///
/// ```
/// use sinch_auth::AuthError;
/// use sinch_auth::integration::reqwest::auth_error;
///
/// let error = reqwest_middleware::Error::middleware(AuthError::UnsignableBody);
/// assert!(matches!(auth_error(&error), Some(AuthError::UnsignableBody)));
/// ```
pub fn auth_error(error: &reqwest_middleware::Error) -> Option<&AuthError> {
    match error {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<AuthError>(),
        _ => None,
    }
}

impl Outgoing for Request {
    type Copy = Request;

    fn target(&self) -> Target<'_> {
        Target::from_url(self.url())
    }

    fn method(&self) -> &Method {
        Request::method(self)
    }

    fn path(&self) -> &str {
        self.url().path()
    }

    fn headers(&self) -> &HeaderMap {
        Request::headers(self)
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        Request::headers_mut(self)
    }

    fn try_copy(&self) -> Option<Self> {
        self.try_clone()
    }

    fn restore(copy: Self) -> Self {
        copy
    }

    /// The body must already be bytes: a stream cannot be signed.
    fn read_body(self, limit: usize) -> BoxFuture<Result<(Self, Bytes), AuthError>> {
        let body = match self.body() {
            None => Ok(Bytes::new()),
            Some(body) => match body.as_bytes() {
                Some(bytes) if bytes.len() > limit => Err(AuthError::BodyTooLarge { limit }),
                Some(bytes) => Ok(Bytes::copy_from_slice(bytes)),
                None => Err(AuthError::UnsignableBody),
            },
        };
        Box::pin(std::future::ready(body.map(|body| (self, body))))
    }
}

fn fail(error: AuthError) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(error)
}

#[async_trait::async_trait]
impl Middleware for SinchAuthMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let (request, grant) = match self
            .authorizer
            .authorize(&mut Memo::default(), &mut request)
        {
            Authorized::Ready(ticket) => {
                let grant = ticket.map(|t| t.grant(&request));
                (request, grant)
            }
            Authorized::Failed(error) => return Err(fail(error)),
            Authorized::Later(later) => later.run(request).await.map_err(fail)?,
        };
        let Some(mut grant) = grant else {
            return next.run(request, extensions).await;
        };
        let response = next.clone().run(request, &mut *extensions).await?;
        match rejected(&mut grant, response.status(), response.headers()) {
            Some(retry) => {
                let request: Request = retry.request().await.map_err(fail)?;
                next.run(request, extensions).await
            }
            None => Ok(response),
        }
    }
}
