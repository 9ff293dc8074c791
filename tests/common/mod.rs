//! Fixtures shared by the integration tests.
//!
//! # Time in tests: tokio's paused clock and one injected clock
//!
//! Tests that depend on time (token lifetimes, refresh, backoff, timeouts)
//! run on tokio's paused clock (`#[tokio::test(start_paused = true)]`) and
//! take milliseconds of real time whatever the virtual time they cover. The
//! rules that keep them deterministic with real loopback sockets:
//!
//! - **One runtime.** The stand-in, the layer and the test run in the test's
//!   own current-thread runtime. A paused runtime auto-advances its clock
//!   only when no task can run and no I/O event is ready; loopback writes are
//!   delivered to the peer socket before the write returns, so while a
//!   request is on the wire some task is always ready and timers do not fire
//!   under it. A peer on another thread or in another process (a second
//!   runtime, `redis-server`) breaks this: keep those tests on the real clock.
//! - **One clock.** Give the stand-in and the layer the same
//!   [`paused_clock`] (a `TokioClock`), so JWT `iat`/`exp`, the stand-in's
//!   token expiry and the refresher's timers move together.
//! - **Durations, not deadlines, from `tokio::time::Instant`.** Measure with
//!   tokio's `Instant` (virtual time): it only moves when the runtime sleeps,
//!   so "the request took no time" is an exact statement, not a noisy one.
//! - **Waiting for I/O-driven effects uses real time.** Something that
//!   happens when sockets close (a task ending, a connection dropped) does
//!   not take virtual time; poll it with [`eventually`], whose deadline is in
//!   real time, instead of counting virtual sleeps.
//! - **Timeouts generous where they are not the point.** A fetch timeout
//!   that a test does not exercise stays far above the delays it injects.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use sinch_auth::clock::{Clock, TokioClock};
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::RefreshConfig;
use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
use tower::ServiceExt;

/// The wall-clock start of paused-clock tests: 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000;

/// [`START`] as a `SystemTime`.
pub fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START)
}

/// A wall clock reading [`START`] now and moving with tokio's (paused) clock.
pub fn paused_clock() -> TokioClock {
    TokioClock::new(start())
}

/// Unix seconds of a `SystemTime` after the epoch.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// A JWT-shaped token with these claims (JSON) and a dummy signature: the
/// crate only reads `exp` from tokens it is given.
pub fn unsigned_jwt(claims: &str) -> String {
    let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.as_bytes())
    )
}

/// A stand-in accepting `key`, issuing tokens of `lifetime`, reading `clock`.
pub async fn oauth2_stand_in(
    key: &AccessKey,
    lifetime: Duration,
    clock: impl Clock,
) -> SinchStandIn {
    SinchStandIn::builder()
        .access_key(key)
        .token_lifetime(lifetime)
        .clock(clock)
        .start()
        .await
        .unwrap()
}

/// An OAuth2 layer for `key` fetching from `auth_host`, reading `clock`
/// (for a stand-in, its own: `sinch.clock()`).
pub fn oauth2_layer(
    key: AccessKey,
    auth_host: &str,
    refresh: RefreshConfig,
    clock: impl Clock,
) -> SinchAuthLayer {
    SinchAuthLayer::builder(StaticCredentials::new(key))
        .scheme(Scheme::OAuth2)
        .auth_host(auth_host)
        .refresh(refresh)
        .clock(clock)
        .build()
        .unwrap()
}

/// Polls `done` until it holds, failing after `within` of *real* time. For
/// effects driven by I/O rather than timers (tasks ending when sockets
/// close), which take no virtual time under a paused clock; yields with a
/// short (virtual) sleep between polls so timers can run too.
pub async fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An empty request body.
pub fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

pub fn get(url: impl AsRef<str>) -> Request<Full<Bytes>> {
    Request::get(url.as_ref()).body(empty()).unwrap()
}

/// What a capturing inner service saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub uri: http::Uri,
}

/// A real tower service that answers 200 at once and keeps what it was sent:
/// for tests about what the layer does to a request, not about a network.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<Seen>>>);

/// The service side of [`Capture`].
#[derive(Clone)]
pub struct CaptureService(Arc<Mutex<Vec<Seen>>>);

impl tower::Service<Request<Full<Bytes>>> for CaptureService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let seen = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            seen.lock().unwrap().push(Seen {
                headers: parts.headers,
                body,
                uri: parts.uri,
            });
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
    }
}

impl Capture {
    pub fn service(&self) -> CaptureService {
        CaptureService(self.0.clone())
    }

    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request was captured")
    }
}

/// Reads a whole body as (lossy UTF-8) text.
pub async fn body_text<B>(body: B) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = body.collect().await.expect("a whole body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends one request through `service` and returns status and body text.
pub async fn send<S>(service: &S, request: Request<Full<Bytes>>) -> (http::StatusCode, String)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<hyper::body::Incoming>> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = service
        .clone()
        .oneshot(request)
        .await
        .expect("request failed");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Captures `tracing` output in memory, for checking what reached the logs.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Captures every log line of this thread (all levels, no colours) until
    /// the guard is dropped.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Any `Duration` for property tests over settings: the edges of the type,
/// small values (milliseconds, as tests can wait for), and huge ones.
pub fn any_duration() -> impl proptest::strategy::Strategy<Value = Duration> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_nanos(1)),
        (0u64..50).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_secs),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}
