//! A loopback server that stands in for Sinch (feature `test-util`).
//!
//! One real hyper server on `127.0.0.1` plays both parts:
//!
//! - the OAuth2 token endpoint, `POST /oauth2/token`: checks the Basic
//!   credentials, the content type and the form body exactly as protocol notes §2 gives
//!   them, and issues HS256 JWTs with the lifetime you choose;
//! - the APIs, every other path: checks `Authorization` the way Sinch does
//!   (OAuth2 bearer, service-plan bearer, self-signed JWT, Basic, application
//!   signature) and answers `200` with a JSON description of what it accepted
//!   (or the answer you scripted for that path), or `401` (with
//!   `www-authenticate: Bearer error="invalid_token", error_description="Jwt
//!   expired …"` for expired tokens).
//!
//! Application signatures are checked by the stand-in's own plain
//! implementation of protocol notes §4 (HMAC-SHA256 and MD5 straight from the `hmac`,
//! `sha2` and `md-5` crates, its own base64 decoding of the secret), not by
//! the crate's signer, so a bug in the signer fails against it.
//!
//! It counts calls and injects faults: delays, the next N token requests
//! failing with a status (429 with or without `Retry-After`, 5xx, a body of
//! your choice), tokens expired early, API answers `401 expired`, connections
//! closed mid-response.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use sinch_auth::testkit::SinchStandIn;
//! use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
//! use tower::ServiceExt;
//!
//! let key = AccessKey::new("project", "key-id", "key-secret")?;
//! let sinch = SinchStandIn::builder().access_key(&key).start().await?;
//!
//! let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
//!     .scheme(Scheme::OAuth2)
//!     .auth_host(&sinch.url())
//!     .build()?;
//! let client = tower::ServiceBuilder::new().layer(layer).service(sinch.client());
//! let request = http::Request::get(format!("{}/v1/projects/project/activeNumbers", sinch.url()))
//!     .body(http_body_util::Full::new(bytes::Bytes::new()))?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(sinch.token_requests(), 1);
//! # Ok(()) }
//! ```
//!
//! # Scripted API answers
//!
//! To test your own handling of API answers (errors, throttling, pagination,
//! odd bodies), script them per path, optionally per method: a default with
//! [`SinchStandIn::answer`], one-shot answers served first and in order with
//! [`SinchStandIn::answer_once`] / [`SinchStandIn::answer_in_turn`]. A
//! scripted answer is only given to a request that authenticates; the rest
//! still get `401`, and injected faults (`answer_expired_next`, ...) come
//! first. Requests are counted and recorded as usual.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use http::{HeaderValue, Method, StatusCode};
//! use http_body_util::BodyExt;
//! use sinch_auth::testkit::{ApiAnswer, Route, SinchStandIn};
//! use sinch_auth::{Scheme, ServicePlan, SinchAuthLayer, StaticCredentials};
//! use tower::ServiceExt;
//!
//! let plan = ServicePlan::new("plan-id", "api-token")?;
//! let sinch = SinchStandIn::builder().service_plan(&plan).start().await?;
//! let batches = "/xms/v1/plan-id/batches";
//! // The first POST is throttled, every later one is accepted.
//! sinch.answer_once(
//!     Route::new(Method::POST, batches),
//!     ApiAnswer::new(StatusCode::TOO_MANY_REQUESTS)
//!         .header("retry-after", HeaderValue::from_static("1")),
//! );
//! sinch.answer(
//!     Route::new(Method::POST, batches),
//!     ApiAnswer::new(StatusCode::CREATED).json(&serde_json::json!({ "id": "batch-1" })),
//! );
//!
//! let layer = SinchAuthLayer::new(StaticCredentials::new(plan), Scheme::ServicePlanBearer)?;
//! let client = tower::ServiceBuilder::new().layer(layer).service(sinch.client());
//! let send = || {
//!     let request = http::Request::post(format!("{}{batches}", sinch.url()))
//!         .header("content-type", "application/json")
//!         .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
//!         .unwrap();
//!     client.clone().oneshot(request)
//! };
//! let throttled = send().await?;
//! assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(throttled.headers()["retry-after"], "1");
//! let created = send().await?;
//! assert_eq!(created.status(), StatusCode::CREATED);
//! let body = created.into_body().collect().await?.to_bytes();
//! assert_eq!(body, r#"{"id":"batch-1"}"#);
//! # Ok(()) }
//! ```
//!
//! # Time
//!
//! Everything time-based in the stand-in reads one [`Clock`]
//! ([`SinchStandInBuilder::clock`]): issued tokens' `iat`/`exp` and when they
//! stop being accepted, self-signed JWTs' `exp`, and (opt-in) the freshness of
//! `x-timestamp`. Under `tokio::time::pause()` give the stand-in and the layer
//! the same [`TokioClock`]: a one-hour token's
//! whole life then runs in milliseconds. Run the stand-in in the test's own
//! current-thread runtime (as `#[tokio::test(start_paused = true)]` does):
//! loopback I/O between tasks of one runtime is ready before tokio would
//! auto-advance the paused clock, so timers cannot fire while a request is
//! on the wire.
//!
//! # Swapping credential providers in a test
//!
//! Any type implementing [`CredentialProvider`](crate::CredentialProvider)
//! plugs into the layer; [`RotatingCredentials`](crate::RotatingCredentials)
//! is the ready-made one: keep a clone, call `rotate` mid-test, and tell the
//! stand-in to accept the new key with [`SinchStandIn::accept_access_key`].

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::clock::{Clock, TokioClock, saturating_add, unix_seconds};
use crate::{AccessKey, ApplicationCredentials, ServicePlan};

/// A plain-http hyper client for talking to the stand-in.
pub type StandInClient = Client<HttpConnector, Full<Bytes>>;

/// Configures a [`SinchStandIn`].
#[must_use]
#[derive(Default)]
pub struct SinchStandInBuilder {
    access_keys: Vec<(String, SecretString)>,
    service_plans: Vec<(String, SecretString)>,
    applications: Vec<(String, SecretString, Vec<u8>)>,
    token_lifetime: Option<Duration>,
    addr: Option<SocketAddr>,
    clock: Option<Arc<dyn Clock>>,
    timestamp_window: Option<Duration>,
    strict_expiry: bool,
}

impl fmt::Debug for SinchStandInBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchStandInBuilder")
            .field("access_keys", &self.access_keys.len())
            .field("service_plans", &self.service_plans.len())
            .field("applications", &self.applications.len())
            .finish()
    }
}

impl SinchStandInBuilder {
    /// Accepts this access key at the token endpoint.
    pub fn access_key(mut self, key: &AccessKey) -> Self {
        self.access_keys.push((
            key.key_id().to_owned(),
            SecretString::from(key.key_secret().expose_secret().to_owned()),
        ));
        self
    }

    /// Accepts this service plan's API token (Bearer, or Basic with the plan id).
    pub fn service_plan(mut self, plan: &ServicePlan) -> Self {
        self.service_plans.push((
            plan.id().to_owned(),
            SecretString::from(plan.api_token().expose_secret().to_owned()),
        ));
        self
    }

    /// Accepts requests signed with this application (and its self-signed JWTs
    /// and Basic `key:secret`).
    pub fn application(mut self, app: &ApplicationCredentials) -> Self {
        self.applications.push((
            app.key().to_owned(),
            SecretString::from(app.secret().expose_secret().to_owned()),
            // Decoded here, not by the crate: the stand-in checks the crate.
            decode_application_secret(app.secret().expose_secret()),
        ));
        self
    }

    /// The `expires_in` of issued tokens (default one hour; whole seconds, at least 1).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = Some(lifetime);
        self
    }

    /// Reads the time from this clock: the `iat`/`exp` of issued tokens, when
    /// they stop being accepted, the `exp` of self-signed JWTs and (with
    /// [`timestamp_window`](Self::timestamp_window)) the freshness of
    /// `x-timestamp`.
    ///
    /// Default: a [`TokioClock`] started at the system time when the
    /// stand-in starts, which reads the system time in a normal test and
    /// follows tokio's clock under `tokio::time::pause()`. Give the layer the
    /// same clock ([`SinchAuthBuilder::clock`](crate::SinchAuthBuilder::clock),
    /// e.g. `.clock(sinch.clock())`), so both sides agree on the time.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Refuses application-signed requests whose `x-timestamp` is further
    /// than `window` from the stand-in's clock, in either direction (off by
    /// default: Sinch does not document its window).
    pub fn timestamp_window(mut self, window: Duration) -> Self {
        self.timestamp_window = Some(window);
        self
    }

    /// Issues tokens as an issuer with whole-second clocks does, and refuses
    /// them from their `exp` on: `iat` is the time of issue rounded down,
    /// `exp = iat + expires_in`, so a token dies up to a second before
    /// `expires_in` after it was received says. For tests that a client does
    /// not overstate a token's life.
    ///
    /// By default a token is refused exactly `expires_in` after it was
    /// issued, and its `exp` is the first whole second at or after that.
    pub fn strict_expiry(mut self, strict: bool) -> Self {
        self.strict_expiry = strict;
        self
    }

    /// Listens on this address instead of a free port on `127.0.0.1` (to
    /// bring a stand-in back where a stopped one was).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Binds (by default `127.0.0.1` on a free port) and starts serving.
    pub async fn start(self) -> std::io::Result<SinchStandIn> {
        let listener = match self.addr {
            Some(addr) => TcpListener::bind(addr).await?,
            None => TcpListener::bind(("127.0.0.1", 0)).await?,
        };
        let addr = listener.local_addr()?;
        let mut server_key = [0u8; 32];
        server_key.iter_mut().for_each(|b| *b = fastrand::u8(..));
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(TokioClock::new(SystemTime::now())));
        let state = Arc::new(State {
            clock,
            timestamp_window: self.timestamp_window,
            strict_expiry: self.strict_expiry,
            scripts: Mutex::new(Vec::new()),
            access_keys: Mutex::new(self.access_keys),
            service_plans: Mutex::new(self.service_plans),
            applications: Mutex::new(self.applications),
            server_key,
            token_lifetime: Mutex::new(self.token_lifetime.unwrap_or(Duration::from_secs(3600))),
            issued: Mutex::new(HashMap::new()),
            next_jti: AtomicU64::new(1),
            token_requests: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            api_accepted: AtomicU64::new(0),
            api_rejected: AtomicU64::new(0),
            faults: Mutex::new(Faults::default()),
            recorded: Mutex::new(VecDeque::new()),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so stopping the stand-in drops them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        // Answers leave at once (no Nagle wait for an ACK), so
                        // nothing sits in a socket while a paused clock idles.
                        let _ = stream.set_nodelay(true);
                        let state = accept_state.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |request| {
                                let state = state.clone();
                                async move { Ok::<_, Infallible>(state.handle(request).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(SinchStandIn { addr, state, task })
    }
}

/// A canned failure for the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenFailure {
    /// The status to answer.
    pub status: StatusCode,
    /// A `Retry-After` value to send, verbatim.
    pub retry_after: Option<String>,
    /// The body to send.
    pub body: String,
    /// Drop the connection instead of answering.
    pub close: bool,
}

impl TokenFailure {
    /// An answer with this status and a Sinch-style JSON error body.
    pub fn status(status: StatusCode) -> Self {
        Self {
            status,
            retry_after: None,
            body: format!(
                r#"{{"error":"testkit_failure","error_description":"injected {}"}}"#,
                status.as_u16()
            ),
            close: false,
        }
    }

    /// 429, with `Retry-After` if given.
    pub fn too_many_requests(retry_after: Option<&str>) -> Self {
        Self {
            retry_after: retry_after.map(str::to_owned),
            ..Self::status(StatusCode::TOO_MANY_REQUESTS)
        }
    }

    /// A `200` whose body is `body` (for malformed answers).
    pub fn ok_with_body(body: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            retry_after: None,
            body: body.into(),
            close: false,
        }
    }

    /// The connection is closed without an answer.
    pub fn close_connection() -> Self {
        Self {
            close: true,
            ..Self::status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// Which API requests a scripted answer is for: a path (exact, without the
/// query), and optionally a method.
///
/// A `&str` or `String` converts into a route for every method; a
/// `(Method, path)` pair into one for that method only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    method: Option<Method>,
    path: String,
}

impl Route {
    /// Requests to `path` with any method.
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            method: None,
            path: path.into(),
        }
    }

    /// Requests to `path` with this method.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method: Some(method),
            path: path.into(),
        }
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.path == path && self.method.as_ref().is_none_or(|m| m == method)
    }
}

impl From<&str> for Route {
    fn from(path: &str) -> Self {
        Self::path(path)
    }
}

impl From<String> for Route {
    fn from(path: String) -> Self {
        Self::path(path)
    }
}

impl From<(Method, &str)> for Route {
    fn from((method, path): (Method, &str)) -> Self {
        Self::new(method, path)
    }
}

/// A scripted API answer: status, headers and body, sent as given.
///
/// ```
/// use http::{HeaderValue, StatusCode};
/// use sinch_auth::testkit::ApiAnswer;
///
/// let throttled = ApiAnswer::new(StatusCode::TOO_MANY_REQUESTS)
///     .header("retry-after", HeaderValue::from_static("2"))
///     .json(&serde_json::json!({ "error": { "code": 429, "status": "RESOURCE_EXHAUSTED" } }));
/// assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(throttled.headers()["content-type"], "application/json");
/// ```
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl ApiAnswer {
    /// An answer with this status, no headers and an empty body.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (repeat the name to send it more than once).
    pub fn header<K: http::header::IntoHeaderName>(mut self, name: K, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the body, as bytes.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = Bytes::from(value.to_string());
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &Bytes {
        &self.body
    }

    fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// The answers scripted for one route.
struct Script {
    route: Route,
    once: VecDeque<ApiAnswer>,
    default: Option<ApiAnswer>,
}

#[derive(Default)]
struct Faults {
    token_delay: Duration,
    token_failures: VecDeque<TokenFailure>,
    token_failure_always: Option<TokenFailure>,
    /// Every other token request fails this way; the flag says whether the next one does.
    token_failure_alternate: Option<(TokenFailure, bool)>,
    api_delay: Duration,
    api_expired_next: u64,
    api_expired_always: bool,
    api_close_next: u64,
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// Every header as received (`Authorization` marked sensitive, so `Debug` hides it).
    pub headers: HeaderMap,
    /// The body as received.
    pub body: Bytes,
    /// How the stand-in authenticated it (`None` if it did not).
    pub accepted_as: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct IssuedClaims {
    iss: String,
    sub: String,
    iat: u64,
    exp: u64,
    jti: u64,
}

struct Issued {
    expires_at: SystemTime,
    revoked: bool,
}

struct State {
    clock: Arc<dyn Clock>,
    timestamp_window: Option<Duration>,
    strict_expiry: bool,
    scripts: Mutex<Vec<Script>>,
    access_keys: Mutex<Vec<(String, SecretString)>>,
    service_plans: Mutex<Vec<(String, SecretString)>>,
    applications: Mutex<Vec<(String, SecretString, Vec<u8>)>>,
    server_key: [u8; 32],
    token_lifetime: Mutex<Duration>,
    issued: Mutex<HashMap<u64, Issued>>,
    next_jti: AtomicU64,
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    api_requests: AtomicU64,
    api_accepted: AtomicU64,
    api_rejected: AtomicU64,
    faults: Mutex<Faults>,
    recorded: Mutex<VecDeque<RecordedRequest>>,
}

const RECORD_LIMIT: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn unauthorized(www_authenticate: &'static str) -> Response<Full<Bytes>> {
    let mut response = json(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"unauthorized"}"#.to_owned(),
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(www_authenticate));
    response
}

const EXPIRED: &str = r#"Bearer error="invalid_token", error_description="Jwt expired""#;
const INVALID: &str = r#"Bearer error="invalid_token""#;

/// A stand-in answer that hyper turns into a dropped connection.
#[derive(Debug)]
struct Hangup;

impl fmt::Display for Hangup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed by the stand-in")
    }
}

impl std::error::Error for Hangup {}

type StandInBody = http_body_util::combinators::BoxBody<Bytes, Hangup>;

impl State {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<StandInBody> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if parts.uri.path() == "/oauth2/token" {
            return self.token(&parts, body).await;
        }
        self.api(parts, body).await
    }

    async fn token(&self, parts: &http::request::Parts, body: Bytes) -> Response<StandInBody> {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let (delay, failure) = {
            let mut faults = lock(&self.faults);
            let mut failure = faults
                .token_failures
                .pop_front()
                .or_else(|| faults.token_failure_always.clone());
            if failure.is_none() {
                if let Some((alternate, fail_next)) = &mut faults.token_failure_alternate {
                    if *fail_next {
                        failure = Some(alternate.clone());
                    }
                    *fail_next = !*fail_next;
                }
            }
            (faults.token_delay, failure)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(failure) = failure {
            if failure.close {
                return hangup();
            }
            let mut response = json(failure.status, failure.body);
            if let Some(retry_after) = failure
                .retry_after
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                response.headers_mut().insert(RETRY_AFTER, retry_after);
            }
            return boxed(response);
        }
        let form_ok = parts.method == Method::POST
            && parts
                .headers
                .get(CONTENT_TYPE)
                .is_some_and(|v| v == "application/x-www-form-urlencoded")
            && body.as_ref() == b"grant_type=client_credentials";
        if !form_ok {
            return boxed(json(
                StatusCode::BAD_REQUEST,
                r#"{"error":"invalid_request","error_description":"expected a client_credentials form POST"}"#.to_owned(),
            ));
        }
        let Some(key_id) = self.basic_access_key(&parts.headers) else {
            return boxed(json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
                    .to_owned(),
            ));
        };
        let lifetime = lock(&self.token_lifetime).as_secs().max(1);
        let jti = self.next_jti.fetch_add(1, Ordering::SeqCst);
        let issued_at = self.clock.now();
        let iat = unix_seconds(issued_at);
        let (exp, expires_at) = if self.strict_expiry {
            // As an issuer with whole-second `iat` does: dead from `exp` on.
            let exp = iat.saturating_add(lifetime);
            let dead = saturating_add(SystemTime::UNIX_EPOCH, Duration::from_secs(exp));
            (exp, dead)
        } else {
            // Dead exactly `lifetime` after issue; `exp` is the first whole
            // second at or after that, so the claim never says less than
            // what is enforced.
            let dead = saturating_add(issued_at, Duration::from_secs(lifetime));
            let exp = unix_seconds(saturating_add(dead, Duration::from_nanos(999_999_999)));
            (exp, dead)
        };
        let claims = IssuedClaims {
            iss: "sinch-auth-testkit".to_owned(),
            sub: key_id,
            iat,
            exp,
            jti,
        };
        let Ok(claims) = serde_json::to_vec(&claims) else {
            return boxed(json(StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned()));
        };
        let token =
            crate::scheme::hs256(br#"{"alg":"HS256","typ":"JWT"}"#, &claims, &self.server_key);
        lock(&self.issued).insert(
            jti,
            Issued {
                expires_at,
                revoked: false,
            },
        );
        self.tokens_issued.fetch_add(1, Ordering::SeqCst);
        boxed(json(
            StatusCode::OK,
            serde_json::json!({
                "access_token": token,
                "expires_in": lifetime,
                "scope": "",
                "token_type": "bearer",
            })
            .to_string(),
        ))
    }

    fn basic_access_key(&self, headers: &HeaderMap) -> Option<String> {
        let (user, password) = basic_pair(headers)?;
        lock(&self.access_keys)
            .iter()
            .find(|(id, secret)| *id == user && secret.expose_secret() == password)
            .map(|(id, _)| id.clone())
    }

    async fn api(&self, parts: http::request::Parts, body: Bytes) -> Response<StandInBody> {
        self.api_requests.fetch_add(1, Ordering::SeqCst);
        let (delay, forced_expired, close) = {
            let mut faults = lock(&self.faults);
            let forced = faults.api_expired_always || faults.api_expired_next > 0;
            faults.api_expired_next = faults.api_expired_next.saturating_sub(1);
            let close = faults.api_close_next > 0;
            faults.api_close_next = faults.api_close_next.saturating_sub(1);
            (faults.api_delay, forced, close)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let verdict = if forced_expired {
            Err(EXPIRED)
        } else {
            self.authenticate(&parts, &body)
        };
        self.record(&parts, &body, verdict.as_ref().ok().cloned());
        if close {
            return hangup_after_headers();
        }
        match verdict {
            Ok(principal) => {
                self.api_accepted.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = self.scripted(&parts.method, parts.uri.path()) {
                    return boxed(answer.response());
                }
                boxed(json(
                    StatusCode::OK,
                    serde_json::json!({
                        "accepted_as": principal,
                        "method": parts.method.as_str(),
                        "path": parts.uri.path(),
                        "body_bytes": body.len(),
                    })
                    .to_string(),
                ))
            }
            Err(www_authenticate) => {
                self.api_rejected.fetch_add(1, Ordering::SeqCst);
                boxed(unauthorized(www_authenticate))
            }
        }
    }

    /// The scripted answer for an authenticated request, if any: one-shot
    /// answers first, in order, then the default; a route naming the method
    /// before one for every method.
    fn scripted(&self, method: &Method, path: &str) -> Option<ApiAnswer> {
        let mut scripts = lock(&self.scripts);
        let mut candidates: Vec<usize> = (0..scripts.len())
            .filter(|&i| scripts[i].route.matches(method, path))
            .collect();
        // Method-specific routes first; otherwise keep registration order.
        candidates.sort_by_key(|&i| scripts[i].route.method.is_none());
        for &i in &candidates {
            if let Some(answer) = scripts[i].once.pop_front() {
                return Some(answer);
            }
        }
        candidates.iter().find_map(|&i| scripts[i].default.clone())
    }

    fn record(&self, parts: &http::request::Parts, body: &Bytes, accepted_as: Option<String>) {
        let mut headers = parts.headers.clone();
        // Recorded requests end up in assertion messages: keep credentials out of `Debug`.
        if let Some(value) = headers.get_mut(AUTHORIZATION) {
            value.set_sensitive(true);
        }
        let mut recorded = lock(&self.recorded);
        if recorded.len() == RECORD_LIMIT {
            recorded.pop_front();
        }
        recorded.push_back(RecordedRequest {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers,
            body: body.clone(),
            accepted_as,
        });
    }

    /// Authenticates an API request the way Sinch would; the error is the
    /// `www-authenticate` value to answer with.
    fn authenticate(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<String, &'static str> {
        let value = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(INVALID)?;
        let (scheme, rest) = value.split_once(' ').ok_or(INVALID)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.bearer(rest);
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = basic_pair(&parts.headers).ok_or(INVALID)?;
            if lock(&self.service_plans)
                .iter()
                .any(|(id, token)| *id == user && token.expose_secret() == password)
            {
                return Ok(format!("basic:service-plan:{user}"));
            }
            if lock(&self.applications)
                .iter()
                .any(|(key, secret, _)| *key == user && secret.expose_secret() == password)
            {
                return Ok(format!("basic:application:{user}"));
            }
            return Err(INVALID);
        }
        if scheme.eq_ignore_ascii_case("application") {
            let (key, signature) = rest.split_once(':').ok_or(INVALID)?;
            let timestamp = parts
                .headers
                .get("x-timestamp")
                .and_then(|v| v.to_str().ok())
                .ok_or(INVALID)?;
            let content_type = match parts.headers.get(CONTENT_TYPE) {
                Some(v) => v.to_str().map_err(|_| INVALID)?,
                None => "",
            };
            if let Some(window) = self.timestamp_window {
                if !fresh(timestamp, self.clock.now(), window) {
                    return Err(INVALID);
                }
            }
            let applications = lock(&self.applications);
            let (_, _, secret) = applications
                .iter()
                .find(|(k, _, _)| k == key)
                .ok_or(INVALID)?;
            let string_to_sign = string_to_sign(
                parts.method.as_str(),
                parts.uri.path(),
                content_type,
                body,
                timestamp,
            );
            return if application_signature_matches(secret, &string_to_sign, signature) {
                Ok(format!("application:{key}"))
            } else {
                Err(INVALID)
            };
        }
        Err(INVALID)
    }

    fn bearer(&self, token: &str) -> Result<String, &'static str> {
        if let Some((id, _)) = lock(&self.service_plans)
            .iter()
            .find(|(_, t)| t.expose_secret() == token)
        {
            return Ok(format!("bearer:service-plan:{id}"));
        }
        if let Some(claims) = hs256_claims::<IssuedClaims>(token, &self.server_key) {
            let issued = lock(&self.issued);
            let Some(issued) = issued.get(&claims.jti) else {
                return Err(INVALID);
            };
            if issued.revoked || self.clock.now() >= issued.expires_at {
                return Err(EXPIRED);
            }
            return Ok(format!("oauth2:{}", claims.sub));
        }
        #[derive(Deserialize)]
        struct SelfSigned {
            iss: String,
            exp: u64,
        }
        for (key, _, secret) in lock(&self.applications).iter() {
            if let Some(claims) = hs256_claims::<SelfSigned>(token, secret) {
                if claims.iss != *key {
                    return Err(INVALID);
                }
                if claims.exp <= unix_seconds(self.clock.now()) {
                    return Err(EXPIRED);
                }
                return Ok(format!("jwt:{key}"));
            }
        }
        Err(INVALID)
    }
}

/// The application secret as bytes: standard base64, padded or not (protocol notes §4).
///
/// The stand-in's own decoding, independent of the crate's, so a decoding bug
/// in the crate cannot be matched by the same bug here.
fn decode_application_secret(text: &str) -> Vec<u8> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text.trim()).unwrap_or_default()
}

/// Protocol notes §4's string to sign, built the plain way from the request as it
/// arrived: `METHOD \n Content-MD5 \n Content-Type \n x-timestamp:TS \n path`,
/// the path percent-decoded and without the query.
///
/// Written independently of `crate::scheme::application` (which streams the
/// same bytes into the MAC without allocating), so the stand-in checks the
/// crate's signer instead of agreeing with it by construction.
fn string_to_sign(
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    timestamp: &str,
) -> Vec<u8> {
    use md5::Digest as _;
    let content_md5 = if body.is_empty() {
        String::new()
    } else {
        STANDARD.encode(md5::Md5::digest(body))
    };
    let path = path.split('?').next().unwrap_or_default();
    let mut text = Vec::new();
    // The method as it arrived: a server verifies what it received.
    text.extend_from_slice(method.as_bytes());
    text.push(b'\n');
    text.extend_from_slice(content_md5.as_bytes());
    text.push(b'\n');
    text.extend_from_slice(content_type.as_bytes());
    text.push(b'\n');
    text.extend_from_slice(b"x-timestamp:");
    text.extend_from_slice(timestamp.as_bytes());
    text.push(b'\n');
    text.extend(percent_encoding::percent_decode_str(path));
    text
}

/// Whether `signature` (base64) is HMAC-SHA256 of `string_to_sign` under
/// `secret`, compared in constant time by the MAC itself.
fn application_signature_matches(secret: &[u8], string_to_sign: &[u8], signature: &str) -> bool {
    use hmac::Mac as _;
    let Ok(claimed) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(string_to_sign);
    mac.verify_slice(&claimed).is_ok()
}

/// Whether an `x-timestamp` lies within `window` of `now`.
fn fresh(timestamp: &str, now: SystemTime, window: Duration) -> bool {
    let Ok(at) = timestamp.parse::<jiff::Timestamp>() else {
        return false;
    };
    let Ok(at) = SystemTime::try_from(at) else {
        return false;
    };
    let skew = match now.duration_since(at) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    skew <= window
}

/// The claims of a compact JWT whose header says HS256 and whose signature
/// is HMAC-SHA256 under `key` (RFC 7515 §5.2), checked here on its own
/// rather than by the crate's signer.
fn hs256_claims<T: DeserializeOwned>(token: &str, key: &[u8]) -> Option<T> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};

    let (signed, signature) = token.rsplit_once('.')?;
    let (header, claims) = signed.split_once('.')?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg")? != "HS256" {
        return None;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    mac.update(signed.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

fn basic_pair(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn boxed(response: Response<Full<Bytes>>) -> Response<StandInBody> {
    response.map(|b| b.map_err(|never: Infallible| match never {}).boxed())
}

/// A body that breaks instead of yielding data: hyper drops the connection.
struct Broken;

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = Hangup;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Hangup>>> {
        std::task::Poll::Ready(Some(Err(Hangup)))
    }
}

/// No answer at all: the connection is dropped.
fn hangup() -> Response<StandInBody> {
    Response::new(Broken.boxed())
}

/// Headers go out (promising 1000 bytes), then the body breaks off.
fn hangup_after_headers() -> Response<StandInBody> {
    let mut response = Response::new(Broken.boxed());
    response.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from_static("1000"),
    );
    response
}

/// The running stand-in. Dropping it stops accepting connections.
pub struct SinchStandIn {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl fmt::Debug for SinchStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchStandIn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SinchStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SinchStandIn {
    /// Starts configuring a stand-in.
    pub fn builder() -> SinchStandInBuilder {
        SinchStandInBuilder::default()
    }

    /// `http://127.0.0.1:{port}`: use it as the auth host and as the API base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A plain-http hyper client (a fresh pool, `TCP_NODELAY` set).
    pub fn client(&self) -> StandInClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new()).build(connector)
    }

    /// Requests to the token endpoint so far (including failed ones).
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// API requests so far.
    pub fn api_requests(&self) -> u64 {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    /// API requests accepted so far.
    pub fn api_accepted(&self) -> u64 {
        self.state.api_accepted.load(Ordering::SeqCst)
    }

    /// API requests answered 401 so far.
    pub fn api_rejected(&self) -> u64 {
        self.state.api_rejected.load(Ordering::SeqCst)
    }

    /// The API requests received, oldest first (the last 10,000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.recorded).iter().cloned().collect()
    }

    /// The last API request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.state.recorded).back().cloned()
    }

    /// Forgets recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.state.recorded).clear();
    }

    /// Also accepts this access key from now on (for rotation tests).
    pub fn accept_access_key(&self, key: &AccessKey) {
        lock(&self.state.access_keys).push((
            key.key_id().to_owned(),
            SecretString::from(key.key_secret().expose_secret().to_owned()),
        ));
    }

    /// Stops accepting an access key (by key id).
    pub fn reject_access_key(&self, key_id: &str) {
        lock(&self.state.access_keys).retain(|(id, _)| id != key_id);
    }

    /// Sets the `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.token_lifetime) = lifetime;
    }

    /// Delays every token answer.
    pub fn delay_tokens(&self, delay: Duration) {
        lock(&self.state.faults).token_delay = delay;
    }

    /// Delays every API answer.
    pub fn delay_api(&self, delay: Duration) {
        lock(&self.state.faults).api_delay = delay;
    }

    /// The next `n` token requests fail this way.
    pub fn fail_next_token_requests(&self, n: usize, failure: TokenFailure) {
        let mut faults = lock(&self.state.faults);
        faults
            .token_failures
            .extend(std::iter::repeat_n(failure, n));
    }

    /// Every token request fails this way until [`heal_tokens`](Self::heal_tokens).
    pub fn fail_all_token_requests(&self, failure: TokenFailure) {
        lock(&self.state.faults).token_failure_always = Some(failure);
    }

    /// From now on token requests alternate: the next one succeeds, the one
    /// after fails this way, and so on, until [`heal_tokens`](Self::heal_tokens).
    pub fn alternate_token_failures(&self, failure: TokenFailure) {
        lock(&self.state.faults).token_failure_alternate = Some((failure, false));
    }

    /// Ends every token failure and delay.
    pub fn heal_tokens(&self) {
        let mut faults = lock(&self.state.faults);
        faults.token_failure_always = None;
        faults.token_failure_alternate = None;
        faults.token_failures.clear();
        faults.token_delay = Duration::ZERO;
    }

    /// Every token issued so far is expired from now on (answers `401 expired`).
    pub fn expire_tokens(&self) {
        lock(&self.state.issued)
            .values_mut()
            .for_each(|t| t.revoked = true);
    }

    /// The next `n` API requests are answered `401` with `expired`, whatever they carry.
    pub fn answer_expired_next(&self, n: u64) {
        lock(&self.state.faults).api_expired_next = n;
    }

    /// Every API request is answered `401 expired` while `on`.
    pub fn answer_expired_always(&self, on: bool) {
        lock(&self.state.faults).api_expired_always = on;
    }

    /// The next `n` API answers break off after the headers.
    pub fn close_next_api_responses(&self, n: u64) {
        lock(&self.state.faults).api_close_next = n;
    }

    /// Answers every authenticated request on `route` with `answer` (until
    /// replaced or [`clear_answers`](Self::clear_answers)), instead of the
    /// JSON description of what was accepted. See [scripted
    /// answers](self#scripted-api-answers).
    pub fn answer(&self, route: impl Into<Route>, answer: ApiAnswer) {
        self.script(route.into(), |script| script.default = Some(answer));
    }

    /// Answers the next authenticated request on `route` with `answer`, once;
    /// calls queue up, and are served in order before any default.
    pub fn answer_once(&self, route: impl Into<Route>, answer: ApiAnswer) {
        self.script(route.into(), |script| script.once.push_back(answer));
    }

    /// Answers the next authenticated requests on `route` with `answers`,
    /// one each, in order (the same as [`answer_once`](Self::answer_once)
    /// for each).
    pub fn answer_in_turn(
        &self,
        route: impl Into<Route>,
        answers: impl IntoIterator<Item = ApiAnswer>,
    ) {
        self.script(route.into(), |script| script.once.extend(answers));
    }

    /// Forgets every scripted answer: requests get the default JSON answer.
    pub fn clear_answers(&self) {
        lock(&self.state.scripts).clear();
    }

    /// The clock the stand-in reads (see [`SinchStandInBuilder::clock`]).
    /// Hand it to the layer so both read the same time.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.state.clock.clone()
    }

    fn script(&self, route: Route, edit: impl FnOnce(&mut Script)) {
        let mut scripts = lock(&self.state.scripts);
        let index = match scripts.iter().position(|s| s.route == route) {
            Some(i) => i,
            None => {
                scripts.push(Script {
                    route,
                    once: VecDeque::new(),
                    default: None,
                });
                scripts.len() - 1
            }
        };
        edit(&mut scripts[index]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (secret, method, content type, timestamp, path, body, signature).
    type Vector = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static [u8],
        &'static str,
    );

    /// Protocol notes §4's vectors, through the stand-in's own checker.
    const VECTORS: &[Vector] = &[
        (
            "bXkta2V5LXNlY3JldA==",
            "POST",
            "application/json; charset=UTF-8",
            "2023-11-22T09:10:11.999Z",
            "/path/pathParamValue",
            br#"{"identity":{"type":"number","endpoint":"+33444555666"},"method":"sms"}"#,
            "QP3OzQZVzRZAEev6DBLvJkgpiqyZPuXYsc7oyjUV0K8=",
        ),
        (
            "bXkta2V5LXNlY3JldA==",
            "GET",
            "application/json",
            "2023-11-22T09:10:11.999Z",
            "/path/pathParamValue",
            b"",
            "nsrLDvP6KVD/dAxb3IfAncdwjPFJVWSrseEFOcZge+A=",
        ),
        (
            "BeIukql3pTKJ8RGL5zo0DA==",
            "POST",
            "application/json",
            "2014-06-04T13:41:58Z",
            "/verification/v1/verifications",
            br#"{"identity": {"type": "number", "endpoint": "+46700000000"}, "method": "sms"}"#,
            "h6rXrFayOoggyHW4ymnLlfSDkZZPg6j98lHzvOXVjvw=",
        ),
        (
            "BeIukql3pTKJ8RGL5zo0DA==",
            "POST",
            "application/json",
            "2014-06-04T13:41:58Z",
            "/verification/v1/verifications",
            b"",
            "srx3SkKXw/ryFJLfwFFzZTigPxR/1+9Ae+eB3olDIjM=",
        ),
    ];

    #[test]
    fn the_stand_ins_own_checker_accepts_spec_vectors_s1_to_s3() {
        for &(secret, method, content_type, ts, path, body, signature) in VECTORS {
            let secret = decode_application_secret(secret);
            let text = string_to_sign(method, path, content_type, body, ts);
            assert!(
                application_signature_matches(&secret, &text, signature),
                "{method} {path} {}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn the_stand_ins_own_checker_refuses_each_vector_with_one_part_changed() {
        for &(secret, method, content_type, ts, path, body, signature) in VECTORS {
            let secret = decode_application_secret(secret);
            let refused = |text: Vec<u8>| !application_signature_matches(&secret, &text, signature);
            assert!(refused(string_to_sign("PUT", path, content_type, body, ts)));
            assert!(refused(string_to_sign(
                method,
                "/other",
                content_type,
                body,
                ts
            )));
            assert!(refused(string_to_sign(
                method,
                path,
                "text/plain",
                body,
                ts
            )));
            assert!(refused(string_to_sign(
                method,
                path,
                content_type,
                b"x",
                ts
            )));
            assert!(refused(string_to_sign(
                method,
                path,
                content_type,
                body,
                "2020-01-01T00:00:00Z"
            )));
        }
    }

    #[test]
    fn the_signed_path_is_percent_decoded_without_the_query() {
        let text = string_to_sign("GET", "/a%20b%2Fc", "", b"", "T");
        assert_eq!(text, b"GET\n\n\nx-timestamp:T\n/a b/c");
        let text = string_to_sign("GET", "/a?x=1", "", b"", "T");
        assert_eq!(text, b"GET\n\n\nx-timestamp:T\n/a");
        // Content-MD5 of S1's body, as protocol notes §4 gives it.
        let text = string_to_sign(
            "POST",
            "/p",
            "ct",
            br#"{"identity":{"type":"number","endpoint":"+33444555666"},"method":"sms"}"#,
            "T",
        );
        assert!(text.starts_with(b"POST\nRkD29EocJh6t7zr5QfKM4g==\nct\n"));
    }

    #[test]
    fn application_secrets_decode_with_or_without_padding() {
        assert_eq!(
            decode_application_secret("bXkta2V5LXNlY3JldA=="),
            b"my-key-secret"
        );
        assert_eq!(
            decode_application_secret("bXkta2V5LXNlY3JldA"),
            b"my-key-secret"
        );
    }

    #[test]
    fn a_signature_that_is_not_base64_is_refused_not_a_panic() {
        assert!(!application_signature_matches(b"k", b"text", "not base64!"));
        assert!(!application_signature_matches(b"k", b"text", ""));
    }

    #[test]
    fn freshness_is_symmetric_around_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let window = Duration::from_secs(60);
        assert!(fresh("2023-11-14T22:13:20Z", now, window));
        assert!(fresh("2023-11-14T22:14:20Z", now, window));
        assert!(fresh("2023-11-14T22:12:20.000Z", now, window));
        assert!(!fresh("2023-11-14T22:14:21Z", now, window));
        assert!(!fresh("2023-11-14T22:12:19Z", now, window));
        assert!(!fresh("yesterday", now, window));
    }
}
