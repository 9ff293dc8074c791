//! The tower middleware: [`SinchAuthLayer`] and the [`SinchAuth`] service it makes.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use sinch_auth::{EnvCredentials, Scheme, SinchAuthLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let layer = SinchAuthLayer::new(EnvCredentials::from_env()?, Scheme::OAuth2)?;
//! let https = hyper_rustls::HttpsConnectorBuilder::new()
//!     .with_webpki_roots().https_only().enable_http1().build();
//! let client = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https));
//!
//! let request = http::Request::get("https://numbers.api.sinch.com/v1/projects/my-project/activeNumbers")
//!     .body(Full::new(Bytes::new()))?;
//! let response = client.oneshot(request).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::authorizer::{
    Authorized, Authorizer, Authorizing, BoxFuture, Grant, Memo, Outgoing, Retry, rejected,
};
pub use crate::body::AuthBody;
use crate::body::read_body;
pub use crate::builder::SinchAuthBuilder;
use crate::error::{AuthError, BoxError, ConfigError, ServiceError};
use crate::routing::Target;
use crate::{CredentialProvider, Scheme};

/// Adds Sinch authentication to every request of the service it wraps.
///
/// Cheap to clone: clones share credentials, caches and the background
/// refresher. See the [module docs](crate::layer) for a complete client and
/// [`SinchAuthBuilder`] for every option.
#[derive(Clone, Debug)]
pub struct SinchAuthLayer {
    authorizer: Arc<Authorizer>,
}

impl SinchAuthLayer {
    /// A layer applying `scheme` to every allowed request, with default settings.
    ///
    /// ```
    /// use sinch_auth::{Scheme, ServicePlan, SinchAuthLayer, StaticCredentials};
    ///
    /// let credentials = StaticCredentials::new(ServicePlan::new("plan-id", "api-token")?);
    /// let layer = SinchAuthLayer::new(credentials, Scheme::ServicePlanBearer)?;
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn new(provider: impl CredentialProvider, scheme: Scheme) -> Result<Self, ConfigError> {
        Self::builder(provider).scheme(scheme).build()
    }

    /// A layer choosing the scheme from each request's host, the way Sinch's
    /// SDKs do per API (see [`Scheme::for_host`]); other hosts are untouched.
    pub fn by_host(provider: impl CredentialProvider) -> Result<Self, ConfigError> {
        Self::builder(provider).build()
    }

    /// Starts a builder. Without [`scheme`](SinchAuthBuilder::scheme), the
    /// scheme is chosen by host.
    pub fn builder(provider: impl CredentialProvider) -> SinchAuthBuilder {
        SinchAuthBuilder::new(Arc::new(provider))
    }
}

impl SinchAuthLayer {
    pub(crate) fn from_authorizer(authorizer: Authorizer) -> Self {
        Self {
            authorizer: Arc::new(authorizer),
        }
    }

    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    pub(crate) fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }
}

impl<S> Layer<S> for SinchAuthLayer {
    type Service = SinchAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SinchAuth {
            inner,
            authorizer: self.authorizer.clone(),
            memo: Memo::default(),
        }
    }
}

/// The service made by [`SinchAuthLayer`].
#[derive(Clone)]
pub struct SinchAuth<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
    memo: Memo,
}

impl<S: fmt::Debug> fmt::Debug for SinchAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchAuth")
            .field("inner", &self.inner)
            .field("authorizer", &self.authorizer)
            .finish()
    }
}

impl<S> SinchAuth<S> {
    /// Wraps `inner` with the settings of `layer`.
    pub fn new(inner: S, layer: &SinchAuthLayer) -> Self {
        layer.layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for SinchAuth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: AuthBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = ServiceError<S::Error>;
    type Future = SinchAuthFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ServiceError::Inner)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The state is large (the resend copy lives inline): each arm
        // builds its future where it is returned from.
        match self.authorizer.authorize(&mut self.memo, &mut request) {
            Authorized::Ready(None) => SinchAuthFuture {
                state: State::Direct {
                    future: self.inner.call(request),
                },
            },
            Authorized::Ready(Some(ticket)) => {
                // The copy for the resend is made here, after `Authorization`
                // is set (and without it). The future is built first and the
                // inner call written into it, which saves a move of the copy
                // (38 instructions per request, BENCHMARKS.md).
                let copy = request.try_copy();
                let service = copy.is_some().then(|| self.inner.clone());
                let mut out = SinchAuthFuture {
                    state: State::Checked {
                        grant: ticket.grant_with(copy),
                        service,
                        future: None,
                    },
                };
                if let State::Checked { future, .. } = &mut out.state {
                    *future = Some(self.inner.call(request));
                }
                out
            }
            Authorized::Failed(error) => SinchAuthFuture {
                state: State::Failed { error: Some(error) },
            },
            Authorized::Later(later) => {
                // The instance `poll_ready` prepared is the one to call; leave a clone behind.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                SinchAuthFuture {
                    state: State::Slow {
                        future: Box::pin(send_authorized(later.run(request), ready)),
                    },
                }
            }
        }
    }
}

/// Sends a request once the authorizer is done with it, and resends it once
/// if the 401-`expired` rule says so.
async fn send_authorized<S, B, ResBody>(
    authorizing: Authorizing<Request<B>>,
    mut ready: S,
) -> Result<Response<ResBody>, ServiceError<S::Error>>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: AuthBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (request, grant) = authorizing.await?;
    let service = grant
        .as_ref()
        .filter(|g| g.can_resend())
        .map(|_| ready.clone());
    let response = ready.call(request).await.map_err(ServiceError::Inner)?;
    let retry = grant.and_then(|mut g| rejected(&mut g, response.status(), response.headers()));
    match (retry, service) {
        (Some(retry), Some(service)) => send_again(retry, service).await,
        _ => Ok(response),
    }
}

/// The one resend after a 401-`expired`; whatever comes back goes to the caller.
async fn send_again<S, B, ResBody>(
    retry: Retry<HeadCopy<B>>,
    service: S,
) -> Result<Response<ResBody>, ServiceError<S::Error>>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: AuthBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let request: Request<B> = retry.request().await?;
    tower::ServiceExt::oneshot(service, request)
        .await
        .map_err(ServiceError::Inner)
}

/// What the tower adapter keeps of a request for the one resend: its head
/// with the headers in a flat list (one allocation at most, none for a
/// request without headers of its own) and a replayable body.
pub(crate) struct HeadCopy<B> {
    method: Method,
    uri: http::Uri,
    version: http::Version,
    headers: Option<Vec<(http::HeaderName, http::HeaderValue)>>,
    extensions: http::Extensions,
    body: B,
}

impl<B> Outgoing for Request<B>
where
    B: AuthBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Copy = HeadCopy<B>;

    fn target(&self) -> Target<'_> {
        Target::from_uri(self.uri())
    }

    fn method(&self) -> &Method {
        Request::method(self)
    }

    fn path(&self) -> &str {
        self.uri().path()
    }

    fn headers(&self) -> &HeaderMap {
        Request::headers(self)
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        Request::headers_mut(self)
    }

    // Inlined so the copy is written where `call` keeps it (one move fewer:
    // ~30 instructions per request, see BENCHMARKS.md).
    #[inline(always)]
    fn try_copy(&self) -> Option<HeadCopy<B>> {
        let body = self.body().try_clone()?;
        Some(HeadCopy {
            method: self.method().clone(),
            uri: self.uri().clone(),
            version: self.version(),
            // `Authorization` is set by now and the resend sets its own:
            // a request with no other header copies no list at all.
            headers: (self.headers().len() > 1).then(|| {
                self.headers()
                    .iter()
                    .filter(|(name, _)| *name != AUTHORIZATION)
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect()
            }),
            extensions: self.extensions().clone(),
            body,
        })
    }

    fn restore(copy: HeadCopy<B>) -> Self {
        let mut request = Request::new(copy.body);
        *request.method_mut() = copy.method;
        *request.uri_mut() = copy.uri;
        *request.version_mut() = copy.version;
        *request.extensions_mut() = copy.extensions;
        let headers = request.headers_mut();
        if let Some(list) = copy.headers {
            headers.reserve(list.len() + 1);
            for (name, value) in list {
                headers.append(name, value);
            }
        }
        request
    }

    fn read_body(self, limit: usize) -> BoxFuture<Result<(Self, Bytes), AuthError>> {
        let (parts, body) = self.into_parts();
        Box::pin(async move {
            let bytes = read_body(body, limit).await?;
            Ok((
                Request::from_parts(parts, B::from_bytes(bytes.clone())),
                bytes,
            ))
        })
    }
}

pin_project! {
    /// The response future of [`SinchAuth`].
    pub struct SinchAuthFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

/// The response future of [`SinchAuth`] under its 0.1.0 name
/// (`sinch_auth::layer::ResponseFuture`; the crate root no longer names it,
/// so `use sinch_auth::*` and `use sinch_auth::verify::*` do not collide).
#[deprecated(since = "0.2.0", note = "renamed to `SinchAuthFuture`")]
pub type ResponseFuture<S, B> = SinchAuthFuture<S, B>;

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // The request went out as is, or with a header that cannot be retried.
        Direct { #[pin] future: S::Future },
        // A cached token went out; a 401-`expired` answer may trigger one resend
        // (through the service clone, when the request could be copied).
        Checked { #[pin] future: Option<S::Future>, grant: Grant<HeadCopy<B>>, service: Option<S> },
        // Waiting for a token, reading a body to sign, or resending.
        Slow { future: BoxFuture<Result<S::Response, ServiceError<S::Error>>> },
        Failed { error: Option<AuthError> },
    }
}

impl<S, B> fmt::Debug for SinchAuthFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SinchAuthFuture")
    }
}

impl<S, B, ResBody> Future for SinchAuthFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: AuthBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Output = Result<Response<ResBody>, ServiceError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Direct { future } => {
                    return future.poll(cx).map_err(ServiceError::Inner);
                }
                StateProj::Checked {
                    future,
                    grant,
                    service,
                } => {
                    // `call` sets the future before returning this one.
                    let Some(future) = future.as_pin_mut() else {
                        return Poll::Ready(Err(ServiceError::Auth(AuthError::RefresherStopped)));
                    };
                    let response = ready!(future.poll(cx)).map_err(ServiceError::Inner)?;
                    let Some(retry) = rejected(grant, response.status(), response.headers()) else {
                        return Poll::Ready(Ok(response));
                    };
                    let Some(service) = service.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    let future = Box::pin(send_again(retry, service));
                    this.state.set(State::Slow { future });
                }
                StateProj::Slow { future } => return future.as_mut().poll(cx),
                StateProj::Failed { error } => {
                    let error = error.take().unwrap_or(AuthError::RefresherStopped);
                    return Poll::Ready(Err(ServiceError::Auth(error)));
                }
            }
        }
    }
}
