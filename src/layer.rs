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

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::{Clock, SystemClock};
use crate::core::{
    Core, LastPlan, Plan, Replay, Resend, Resendable, Route, Routing, Target, TokenSlot,
};
use crate::error::{AuthError, BoxError, ConfigError, ServiceError};
use crate::host::HostPolicy;
use crate::token::{
    OAuth2, RefreshConfig, SelfSignedJwt, Stored, TokenCache, TokenHttpClient, TokenSource,
    TokenStore,
};
use crate::{CredentialProvider, Scheme};

/// Adds Sinch authentication to every request of the service it wraps.
///
/// Cheap to clone: clones share credentials, caches and the background
/// refresher. See the [module docs](crate::layer) for a complete client and
/// [`SinchAuthBuilder`] for every option.
#[derive(Clone)]
pub struct SinchAuthLayer {
    core: Arc<Core>,
}

impl fmt::Debug for SinchAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchAuthLayer")
            .field("core", &self.core)
            .finish()
    }
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
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }
}

impl<S> Layer<S> for SinchAuthLayer {
    type Service = SinchAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SinchAuth {
            inner,
            core: self.core.clone(),
            last: LastPlan::default(),
        }
    }
}

/// Configures a [`SinchAuthLayer`].
///
/// ```
/// use std::time::Duration;
/// use sinch_auth::token::RefreshConfig;
/// use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
///
/// let key = AccessKey::new("project", "key-id", "key-secret")?;
/// let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
///     .scheme(Scheme::OAuth2)
///     .auth_host("http://127.0.0.1:8080")
///     .refresh(RefreshConfig::default().wait_timeout(Duration::from_secs(5)))
///     .allow_domain("sinch-proxy.example.com")
///     .build()?;
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[must_use]
pub struct SinchAuthBuilder {
    provider: Arc<dyn CredentialProvider>,
    routing: Routing,
    routes: Vec<Route>,
    policy: HostPolicy,
    reject_disallowed: bool,
    overwrite: bool,
    resend_on_expired: bool,
    max_body_bytes: usize,
    clock: Arc<dyn Clock>,
    oauth2: OAuth2,
    token_source: Option<Arc<dyn TokenSource>>,
    token_store: Option<Arc<dyn TokenStore>>,
    jwt_lifetime: Duration,
    refresh: RefreshConfig,
    error: Option<ConfigError>,
}

impl fmt::Debug for SinchAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchAuthBuilder")
            .field("routing", &self.routing)
            .field("routes", &self.routes)
            .field("policy", &self.policy)
            .field("oauth2", &self.oauth2)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl SinchAuthBuilder {
    fn new(provider: Arc<dyn CredentialProvider>) -> Self {
        Self {
            provider,
            routing: Routing::ByHost,
            routes: Vec::new(),
            policy: HostPolicy::default(),
            reject_disallowed: false,
            overwrite: false,
            resend_on_expired: true,
            max_body_bytes: 10 * 1024 * 1024,
            clock: Arc::new(SystemClock),
            oauth2: OAuth2::new(),
            token_source: None,
            token_store: None,
            jwt_lifetime: SelfSignedJwt::DEFAULT_LIFETIME,
            refresh: RefreshConfig::default(),
            error: None,
        }
    }

    fn fail(mut self, error: ConfigError) -> Self {
        self.error.get_or_insert(error);
        self
    }

    /// Applies one scheme to every allowed request.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.routing = Routing::Fixed(scheme);
        self
    }

    /// Chooses the scheme from the host (the default; see [`Scheme::for_host`]).
    pub fn by_host(mut self) -> Self {
        self.routing = Routing::ByHost;
        self
    }

    /// Requests to `authority` (`host` or `host:port`) use `scheme`, whatever
    /// the routing. Useful for proxies and local stand-ins.
    pub fn route(mut self, authority: &str, scheme: Scheme) -> Self {
        let parsed = authority.parse::<http::uri::Authority>();
        match parsed {
            Ok(a) if !authority.contains('@') => {
                self.routes.push(Route {
                    host: a.host().to_owned(),
                    port: a.port_u16(),
                    scheme,
                });
                self
            }
            _ => self.fail(ConfigError::InvalidSetting {
                setting: "route",
                reason: "must be host or host:port",
            }),
        }
    }

    /// Also sends credentials to `domain` and its subdomains, over https.
    pub fn allow_domain(mut self, domain: &str) -> Self {
        match self.policy.allow_domain(domain) {
            Ok(()) => self,
            Err(e) => self.fail(e),
        }
    }

    /// Whether loopback hosts (over http or https) get credentials (default: yes).
    pub fn allow_loopback(mut self, allowed: bool) -> Self {
        self.policy.set_loopback(allowed);
        self
    }

    /// Fails requests to hosts that may not receive credentials with
    /// [`AuthError::HostNotAllowed`] instead of sending them untouched (the default).
    pub fn reject_disallowed_hosts(mut self, reject: bool) -> Self {
        self.reject_disallowed = reject;
        self
    }

    /// Replaces an `Authorization` header the request already has (default:
    /// leave such requests alone).
    pub fn overwrite_authorization(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Whether a 401 with `www-authenticate` mentioning `expired` clears the
    /// token and resends the request once with a new one (default: yes; spec §2).
    /// The resend needs a copy of the request head and a replayable body (see
    /// [`AuthBody`]); turning it off saves that copy.
    pub fn resend_on_expired(mut self, resend: bool) -> Self {
        self.resend_on_expired = resend;
        self
    }

    /// The largest body the application scheme reads to sign (default 10 MiB).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Reads wall-clock time from `clock` (timestamps, JWT `iat`, `Retry-After` dates).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Fetches OAuth2 tokens from this host instead of `https://auth.sinch.com`
    /// (`https`, or `http` on loopback).
    pub fn auth_host(mut self, host: &str) -> Self {
        match self.oauth2.clone().auth_host(host) {
            Ok(o) => {
                self.oauth2 = o;
                self
            }
            Err(e) => self.fail(e),
        }
    }

    /// Sends token requests through your own HTTP client.
    pub fn token_client(mut self, client: TokenHttpClient) -> Self {
        self.oauth2 = self.oauth2.client(client);
        self
    }

    /// Replaces the OAuth2 fetch with your own source for [`Scheme::OAuth2`]
    /// (the scheme then needs no access key).
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.token_source = Some(Arc::new(source));
        self
    }

    /// Shares OAuth2 tokens with other processes through a store (for
    /// example Redis, feature `redis`); the in-process cache stays in front.
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.token_store = Some(Arc::new(store));
        self
    }

    /// Lifetime of self-signed JWTs (default one hour).
    pub fn jwt_lifetime(mut self, lifetime: Duration) -> Self {
        self.jwt_lifetime = lifetime;
        self
    }

    /// Refresh timing, waits and backoff.
    pub fn refresh(mut self, config: RefreshConfig) -> Self {
        self.refresh = config;
        self
    }

    /// Builds the layer. Fails if an option was invalid, or if a fixed scheme
    /// needs a credential the provider's current credentials lack.
    ///
    /// No runtime is needed here: the token refresher starts on the first
    /// request, on that request's tokio runtime.
    pub fn build(self) -> Result<SinchAuthLayer, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let credentials = self.provider.credentials();
        let custom_source = self.token_source.is_some();
        let mut schemes: Vec<Scheme> = self.routes.iter().map(|r| r.scheme).collect();
        if let Routing::Fixed(scheme) = self.routing {
            schemes.push(scheme);
        }
        for &scheme in &schemes {
            let exempt = scheme == Scheme::OAuth2 && custom_source;
            if !exempt && !credentials.has(scheme.needs()) {
                return Err(ConfigError::MissingCredential {
                    scheme: scheme.name(),
                    needs: scheme.needs(),
                });
            }
        }
        let by_host = self.routing == Routing::ByHost;
        // The built-in fetch sends the key secret to the token URL: the API
        // host rule applies to it too.
        if (by_host || schemes.contains(&Scheme::OAuth2)) && !custom_source {
            crate::host::check_token_url(&self.policy, self.oauth2.token_url())?;
        }
        let cache = |source: Arc<dyn TokenSource>| {
            TokenCache::new(
                source,
                self.provider.clone(),
                self.clock.clone(),
                self.refresh.clone(),
            )
        };
        let oauth2 = (by_host || schemes.contains(&Scheme::OAuth2)).then(|| {
            let source = self
                .token_source
                .clone()
                .unwrap_or_else(|| Arc::new(self.oauth2.clone().with_clock(self.clock.clone())));
            match &self.token_store {
                Some(store) => cache(Arc::new(Stored::new(store.clone(), source))),
                None => cache(source),
            }
        });
        let jwt = schemes.contains(&Scheme::SelfSignedJwt).then(|| {
            cache(Arc::new(
                SelfSignedJwt::new(self.jwt_lifetime).with_clock(self.clock.clone()),
            ))
        });
        Ok(SinchAuthLayer {
            core: Arc::new(Core::new(
                self.provider,
                self.policy,
                self.routing,
                self.routes,
                self.reject_disallowed,
                self.overwrite,
                self.resend_on_expired,
                self.max_body_bytes,
                self.clock,
                oauth2,
                jwt,
            )),
        })
    }
}

/// What [`SinchAuth`] needs of a request body.
///
/// - [`from_bytes`](Self::from_bytes): the application scheme reads the body to
///   hash it, then passes the same bytes on (no second copy).
/// - [`try_clone`](Self::try_clone): the 401-`expired` resend needs the body
///   again. Bodies that cannot be cloned are resent only when empty.
///
/// Implemented for `Full<Bytes>` (hyper-util's usual client body; fully
/// replayable), `BoxBody<Bytes, E>` and `UnsyncBoxBody<Bytes, E>` (signable,
/// replayable when empty), and, with the `axum` feature, `axum::body::Body`.
/// Implement it for your own body type the same way.
pub trait AuthBody: Body + Sized {
    /// A body carrying exactly these bytes.
    fn from_bytes(bytes: Bytes) -> Self;

    /// A copy of this body for a resend, if it can be made without reading it.
    fn try_clone(&self) -> Option<Self>;
}

impl AuthBody for Full<Bytes> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
    }

    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<E: 'static> AuthBody for BoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed()
    }

    fn try_clone(&self) -> Option<Self> {
        (self.size_hint().exact() == Some(0)).then(|| Self::from_bytes(Bytes::new()))
    }
}

impl<E: 'static> AuthBody for UnsyncBoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync()
    }

    fn try_clone(&self) -> Option<Self> {
        (self.size_hint().exact() == Some(0)).then(|| Self::from_bytes(Bytes::new()))
    }
}

#[cfg(feature = "axum")]
impl AuthBody for axum::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        axum::body::Body::from(bytes)
    }

    fn try_clone(&self) -> Option<Self> {
        (self.size_hint().exact() == Some(0)).then(axum::body::Body::empty)
    }
}

/// The service made by [`SinchAuthLayer`].
#[derive(Clone)]
pub struct SinchAuth<S> {
    inner: S,
    core: Arc<Core>,
    last: LastPlan,
}

impl<S: fmt::Debug> fmt::Debug for SinchAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchAuth")
            .field("inner", &self.inner)
            .field("core", &self.core)
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

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ServiceError::Inner)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let plan = self.core.plan_remembering(
            &mut self.last,
            Target::from_uri(request.uri()),
            request.headers(),
        );
        let state = match plan {
            Err(error) => State::Failed { error: Some(error) },
            Ok(Plan::Skip) => State::Direct {
                future: self.inner.call(request),
            },
            Ok(Plan::Header(value, ticket)) => {
                match self.core.authorize(&mut request, value, ticket) {
                    Some(replay) => {
                        // The resend goes through a clone; the ready instance sends first.
                        let service = replay.can_resend().then(|| self.inner.clone());
                        State::Checked {
                            future: self.inner.call(request),
                            retry: Some(Retry {
                                core: self.core.clone(),
                                replay,
                                service,
                            }),
                        }
                    }
                    None => State::Direct {
                        future: self.inner.call(request),
                    },
                }
            }
            Ok(Plan::Wait(slot)) => {
                let ready = take_ready(&mut self.inner);
                State::Slow {
                    future: Box::pin(wait_then_send(self.core.clone(), ready, request, slot)),
                }
            }
            Ok(Plan::Sign(credentials)) => {
                let ready = take_ready(&mut self.inner);
                let core = self.core.clone();
                State::Slow {
                    future: Box::pin(async move {
                        let (mut parts, body) = request.into_parts();
                        let bytes = read_body(body, core.max_body_bytes()).await?;
                        core.sign(
                            &credentials,
                            &parts.method,
                            parts.uri.path(),
                            &mut parts.headers,
                            &bytes,
                        )?;
                        let mut ready = ready;
                        ready
                            .call(Request::from_parts(parts, B::from_bytes(bytes)))
                            .await
                            .map_err(ServiceError::Inner)
                    }),
                }
            }
        };
        ResponseFuture { state }
    }
}

/// The instance `poll_ready` prepared is the one to call; leave a clone behind.
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// A copy of the request for a resend, when its body can be replayed.
/// What the tower adapter keeps of a request for the one resend: its head
/// with the headers in a flat list (one allocation at most, none for a
/// request without headers of its own) and a replayable body.
pub(crate) struct HeadCopy<B> {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    extensions: http::Extensions,
    body: B,
}

impl<B: AuthBody> Resendable for Request<B> {
    type Copy = HeadCopy<B>;

    fn headers_mut(&mut self) -> &mut http::HeaderMap {
        Request::headers_mut(self)
    }

    fn try_copy(&self) -> Option<HeadCopy<B>> {
        let body = self.body().try_clone()?;
        Some(HeadCopy {
            method: self.method().clone(),
            uri: self.uri().clone(),
            version: self.version(),
            headers: self
                .headers()
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
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
        headers.reserve(copy.headers.len() + 1);
        for (name, value) in copy.headers {
            headers.append(name, value);
        }
        request
    }
}

/// Reads a body to sign it, within the limit.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, AuthError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(AuthError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(AuthError::BodyTooLarge { limit }),
        Err(error) => Err(AuthError::Body(error)),
    }
}

async fn wait_then_send<S, B, ResBody>(
    core: Arc<Core>,
    mut ready: S,
    mut request: Request<B>,
    slot: TokenSlot,
) -> Result<Response<ResBody>, ServiceError<S::Error>>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: AuthBody,
{
    let replay = core.authorize_when_ready(&mut request, slot).await?;
    let service = replay
        .as_ref()
        .filter(|r| r.can_resend())
        .map(|_| ready.clone());
    let response = ready.call(request).await.map_err(ServiceError::Inner)?;
    let resend = replay.and_then(|r| core.resend_after(r, response.status(), response.headers()));
    match (resend, service) {
        (Some(resend), Some(service)) => send_again(core, service, resend).await,
        _ => Ok(response),
    }
}

/// The one resend after a 401-`expired`: the core puts a token other than the
/// refused one on the copy; whatever comes back goes to the caller.
async fn send_again<S, B, ResBody>(
    core: Arc<Core>,
    service: S,
    resend: Resend<Request<B>>,
) -> Result<Response<ResBody>, ServiceError<S::Error>>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: AuthBody,
{
    let request = core.reauthorize(resend).await?;
    tower::ServiceExt::oneshot(service, request)
        .await
        .map_err(ServiceError::Inner)
}

struct Retry<S, B> {
    core: Arc<Core>,
    replay: Replay<HeadCopy<B>>,
    // A clone of the inner service for the resend, when one is possible.
    service: Option<S>,
}

pin_project! {
    /// The response future of [`SinchAuth`].
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // The request went out as is, or with a header that cannot be retried.
        Direct { #[pin] future: S::Future },
        // A cached token went out; a 401-`expired` answer may trigger one resend.
        Checked { #[pin] future: S::Future, retry: Option<Retry<S, B>> },
        // Waiting for a token, reading a body to sign, or resending.
        Slow { future: BoxFuture<Result<S::Response, ServiceError<S::Error>>> },
        Failed { error: Option<AuthError> },
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: AuthBody + Send + 'static,
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
                StateProj::Checked { future, retry } => {
                    let response = ready!(future.poll(cx)).map_err(ServiceError::Inner)?;
                    let Some(retry) = retry.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    let resend = retry.core.resend_after(
                        retry.replay,
                        response.status(),
                        response.headers(),
                    );
                    let (Some(resend), Some(service)) = (resend, retry.service) else {
                        return Poll::Ready(Ok(response));
                    };
                    let future = Box::pin(send_again(retry.core, service, resend));
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
