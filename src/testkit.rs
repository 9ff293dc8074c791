//! A loopback server that stands in for Sinch (feature `test-util`).
//!
//! One real hyper server on `127.0.0.1` plays both parts:
//!
//! - the OAuth2 token endpoint, `POST /oauth2/token`: checks the Basic
//!   credentials, the content type and the form body exactly as spec §2 gives
//!   them, and issues HS256 JWTs with the lifetime you choose;
//! - the APIs, every other path: checks `Authorization` the way Sinch does
//!   (OAuth2 bearer, service-plan bearer, self-signed JWT, Basic, application
//!   signature) and answers `200` with a JSON description of what it accepted,
//!   or `401` (with `www-authenticate: Bearer error="invalid_token",
//!   error_description="Jwt expired …"` for expired tokens).
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
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::unix_seconds;
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
            app.decoded_secret().expose_secret().to_vec(),
        ));
        self
    }

    /// The `expires_in` of issued tokens (default one hour; whole seconds, at least 1).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = Some(lifetime);
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
        let state = Arc::new(State {
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
    expires_at: Instant,
    revoked: bool,
}

struct State {
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
        let now = SystemTime::now();
        let iat = unix_seconds(now);
        // `exp` is a whole second: the first one at or after the moment this
        // stand-in stops accepting the token, so the claim never says less
        // than what is enforced.
        let exp =
            unix_seconds(now + Duration::from_secs(lifetime) + Duration::from_nanos(999_999_999));
        let claims = IssuedClaims {
            iss: "sinch-auth-testkit".to_owned(),
            sub: key_id,
            iat,
            exp,
            jti,
        };
        let Ok(token) = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.server_key),
        ) else {
            return boxed(json(StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned()));
        };
        lock(&self.issued).insert(
            jti,
            Issued {
                expires_at: Instant::now() + Duration::from_secs(lifetime),
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
            let applications = lock(&self.applications);
            let (_, _, secret) = applications
                .iter()
                .find(|(k, _, _)| k == key)
                .ok_or(INVALID)?;
            let expected = crate::scheme::application::signature(
                secret,
                parts.method.as_str(),
                parts.uri.path(),
                content_type,
                body,
                timestamp,
            );
            let equal: bool =
                subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()).into();
            return if equal {
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
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        if let Ok(data) = jsonwebtoken::decode::<IssuedClaims>(
            token,
            &DecodingKey::from_secret(&self.server_key),
            &validation,
        ) {
            let issued = lock(&self.issued);
            let Some(issued) = issued.get(&data.claims.jti) else {
                return Err(INVALID);
            };
            if issued.revoked || Instant::now() >= issued.expires_at {
                return Err(EXPIRED);
            }
            return Ok(format!("oauth2:{}", data.claims.sub));
        }
        #[derive(Deserialize)]
        struct SelfSigned {
            iss: String,
            exp: u64,
        }
        for (key, _, secret) in lock(&self.applications).iter() {
            if let Ok(data) = jsonwebtoken::decode::<SelfSigned>(
                token,
                &DecodingKey::from_secret(secret),
                &validation,
            ) {
                if data.claims.iss != *key {
                    return Err(INVALID);
                }
                if data.claims.exp <= unix_seconds(SystemTime::now()) {
                    return Err(EXPIRED);
                }
                return Ok(format!("jwt:{key}"));
            }
        }
        Err(INVALID)
    }
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

    /// A plain-http hyper client (a fresh pool).
    pub fn client(&self) -> StandInClient {
        Client::builder(TokioExecutor::new()).build_http()
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
}
