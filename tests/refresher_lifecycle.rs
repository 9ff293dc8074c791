//! The refresher's lifecycle from outside: it outlives the runtime that
//! started it, recovers promptly after an outage, survives a far-future wall
//! clock, counts a token's life to the sub-second, and a token refused as
//! expired is never sent again by any clone of the service.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::get;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use sinch_auth::clock::{Clock, ManualClock, TokioClock};
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::{RefreshConfig, Token, TokenSource, source_fn};
use sinch_auth::{AccessKey, FetchError, Scheme, SinchAuthLayer, StaticCredentials};
use tower::{Layer, Service, ServiceExt};

fn key() -> AccessKey {
    key_of("key-r")
}

fn key_of(id: &str) -> AccessKey {
    AccessKey::new("proj-r", id, "KEY-SECRET-r1").unwrap()
}

/// A source handing out `tok-0`, `tok-1`, … each living `life`, and how
/// many it has handed out.
fn numbered_tokens(life: Duration) -> (Arc<AtomicU32>, impl TokenSource) {
    let fetches = Arc::new(AtomicU32::new(0));
    let source = source_fn({
        let fetches = fetches.clone();
        move |_| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Token::new(format!("tok-{n}"), life)) }
        }
    });
    (fetches, source)
}

fn oauth2_layer(sinch: &SinchStandIn, refresh: RefreshConfig) -> SinchAuthLayer {
    SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(refresh)
        .build()
        .unwrap()
}

fn numbers(sinch: &SinchStandIn) -> Request<Full<Bytes>> {
    get(format!("{}/v1/projects/proj-r/activeNumbers", sinch.url()))
}

/// "Sinch" on a runtime of its own, kept running for the whole test, so the
/// runtimes the client uses can come and go.
fn sinch_on_its_own_runtime() -> (tokio::runtime::Runtime, SinchStandIn) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sinch = runtime
        .block_on(SinchStandIn::builder().access_key(&key()).start())
        .unwrap();
    (runtime, sinch)
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One request the way a sync wrapper sends it: on `runtime`, with a
/// fresh client (a pooled connection dies with the runtime that made it).
fn call_on(
    runtime: &tokio::runtime::Runtime,
    layer: &SinchAuthLayer,
    sinch: &SinchStandIn,
) -> StatusCode {
    runtime.block_on(async {
        let service = layer.layer(sinch.client());
        match service.oneshot(numbers(sinch)).await {
            Ok(response) => response.status(),
            Err(error) => panic!("request failed: {error}"),
        }
    })
}

/// A sync wrapper building a runtime per call (`Runtime::new()` and drop).
fn call_on_a_new_runtime(layer: &SinchAuthLayer, sinch: &SinchStandIn) -> StatusCode {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    call_on(&runtime, layer, sinch)
}

#[test]
fn a_cached_token_outlives_the_runtime_that_fetched_it_and_the_refresher_comes_back() {
    let (_sinch_runtime, sinch) = sinch_on_its_own_runtime();
    let layer = oauth2_layer(
        &sinch,
        RefreshConfig::default().wait_timeout(Duration::from_secs(5)),
    );
    assert_eq!(call_on_a_new_runtime(&layer, &sinch), StatusCode::OK);
    // The first runtime is gone: the valid cached token is still served.
    assert_eq!(call_on_a_new_runtime(&layer, &sinch), StatusCode::OK);
    assert_eq!(sinch.token_requests(), 1);
    // A refresh is needed (the API refuses the token as expired): a refresher
    // on the live runtime fetches the next one and the resend succeeds.
    sinch.expire_tokens();
    assert_eq!(call_on_a_new_runtime(&layer, &sinch), StatusCode::OK);
    assert_eq!(sinch.token_requests(), 2);
    assert_eq!(call_on_a_new_runtime(&layer, &sinch), StatusCode::OK);
    assert_eq!(sinch.token_requests(), 2);
}

#[test]
fn a_refresher_left_on_an_idle_runtime_is_taken_over_by_a_live_one() {
    let (_sinch_runtime, sinch) = sinch_on_its_own_runtime();
    // Every default: the default token client, whose keep-alive connection
    // to the token endpoint was opened on the runtime that goes idle.
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()
        .unwrap();
    // The first request's runtime stays alive but is never driven again.
    let idle = current_thread_runtime();
    assert_eq!(call_on(&idle, &layer, &sinch), StatusCode::OK);
    let live = current_thread_runtime();
    assert_eq!(call_on(&live, &layer, &sinch), StatusCode::OK);
    assert_eq!(sinch.token_requests(), 1);
    sinch.expire_tokens();
    let started = std::time::Instant::now();
    let status = live.block_on(async {
        let service = layer.layer(sinch.client());
        tokio::time::timeout(Duration::from_secs(30), service.oneshot(numbers(&sinch))).await
    });
    let took = started.elapsed();
    assert_eq!(
        status.expect("no answer in 30 s").unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(sinch.token_requests(), 2);
    // The take-over (a quarter second) and the forced-refetch interval
    // (1 s): nothing near the 10 s fetch timeout.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    drop(idle);
}

/// Sends requests one after another until one succeeds; returns when (on
/// tokio's clock) the first success came back.
async fn first_success<S>(service: S, url: String) -> tokio::time::Instant
where
    S: Service<Request<Full<Bytes>>, Response = Response<hyper::body::Incoming>> + Clone,
    S::Error: std::fmt::Debug,
{
    loop {
        let request = get(format!("{url}/v1/projects/proj-r/activeNumbers"));
        if let Ok(response) = service.clone().oneshot(request).await {
            if response.status() == StatusCode::OK {
                return tokio::time::Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_outlasting_the_token_requests_succeed_within_two_seconds_of_recovery() {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .token_lifetime(Duration::from_secs(120))
        .start()
        .await
        .unwrap();
    let layer = oauth2_layer(&sinch, RefreshConfig::default());
    let service = layer.layer(sinch.client());
    let first = service.clone().oneshot(numbers(&sinch)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    for _round in 0..3 {
        // An outage long past the token's expiry: the refresher's backoff is at its cap.
        sinch.fail_all_token_requests(TokenFailure::status(StatusCode::SERVICE_UNAVAILABLE));
        tokio::time::sleep(Duration::from_secs(600)).await;
        // Requests arrive and wait while the endpoint is still down ...
        let waiting = tokio::spawn(first_success(service.clone(), sinch.url()));
        let before = sinch.token_requests();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let during = sinch.token_requests() - before;
        // ... retried often, but within the gateway's 30-burst / 10 per s bucket.
        assert!(during <= 30 + 10 * 5, "{during} token requests in 5 s");
        let recovered = tokio::time::Instant::now();
        sinch.heal_tokens();
        let succeeded = waiting.await.unwrap();
        let lag = succeeded - recovered;
        assert!(
            lag <= Duration::from_secs(2),
            "first success {lag:?} after recovery"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_refused_as_expired_is_not_sent_again_by_the_service_or_its_clones() {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    let layer = oauth2_layer(&sinch, RefreshConfig::default());
    let mut first = layer.layer(sinch.client());
    for _ in 0..2 {
        let response = first
            .ready()
            .await
            .unwrap()
            .call(numbers(&sinch))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // A clone made while the token was good, and a slow next token.
    let mut clone = first.clone();
    sinch.expire_tokens();
    sinch.delay_tokens(Duration::from_secs(3));
    let refused = tokio::spawn({
        let request = numbers(&sinch);
        let mut first = first.clone();
        async move { first.ready().await.unwrap().call(request).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sinch.api_rejected(), 1);
    // Before the next token is in, neither the service nor its clone sends
    // the refused token again: they wait for the new one.
    let (a, b) = tokio::join!(
        async { first.ready().await.unwrap().call(numbers(&sinch)).await },
        async { clone.ready().await.unwrap().call(numbers(&sinch)).await },
    );
    assert_eq!(a.unwrap().status(), StatusCode::OK);
    assert_eq!(b.unwrap().status(), StatusCode::OK);
    assert_eq!(refused.await.unwrap().status(), StatusCode::OK);
    assert_eq!(sinch.api_rejected(), 1, "the refused token went out again");
    assert_eq!(sinch.token_requests(), 2);
}

/// An unsigned JWT whose `exp` is `exp` (the layer never checks signatures).
fn jwt_expiring_at(exp: u64, n: u32) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp},"n":{n}}}"#));
    format!("{header}.{payload}.c2ln")
}

fn exp_of(header: &str) -> u64 {
    let jwt = header.strip_prefix("Bearer ").unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    json["exp"].as_u64().unwrap()
}

/// A service that answers 200 and records each request's `Authorization`
/// with the wall-clock time it arrived.
#[derive(Clone)]
struct Recorder<C> {
    clock: C,
    seen: Arc<Mutex<Vec<(String, SystemTime)>>>,
}

impl<C> Recorder<C> {
    fn new(clock: C) -> Self {
        Self {
            clock,
            seen: Arc::default(),
        }
    }

    /// The `Authorization` headers received so far, in order.
    fn headers(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|(header, _)| header.clone()).collect()
    }
}

impl<C: Clock + Clone> Service<Request<Full<Bytes>>> for Recorder<C> {
    type Response = Response<()>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<()>, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let header = request.headers()[AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        self.seen.lock().unwrap().push((header, self.clock.now()));
        std::future::ready(Ok(Response::new(())))
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_is_never_sent_after_its_exp_counted_to_the_sub_second() {
    // The wall clock is 0.9 s into a second; the token's exp is 1.1 s away.
    let start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
    let clock = TokioClock::new(start);
    let fetches = Arc::new(AtomicU32::new(0));
    let source = source_fn({
        let fetches = fetches.clone();
        move |_| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok(Token::new(
                        jwt_expiring_at(1_700_000_002, n),
                        Duration::from_secs(3600),
                    ))
                } else {
                    Err(FetchError::Timeout(Duration::from_secs(1)))
                }
            }
        }
    });
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .clock(clock)
        .refresh(RefreshConfig::default().wait_timeout(Duration::from_millis(200)))
        .build()
        .unwrap();
    let recorder = Recorder::new(clock);
    let service = layer.layer(recorder.clone());
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    for _ in 0..30 {
        let _ = service.clone().oneshot(get(url)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = recorder.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for (header, at) in &seen {
        let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(exp_of(header));
        assert!(*at < exp, "sent at {at:?}, token expired at {exp:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_far_future_wall_clock_does_not_stop_the_refresher() {
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 - 60);
    let clock = ManualClock::new(far);
    let (_, source) = numbered_tokens(Duration::from_secs(3600));
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .clock(clock.clone())
        .build()
        .unwrap();
    let recorder = Recorder::new(clock);
    let service = layer.layer(recorder.clone());
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    for _ in 0..3 {
        service.clone().oneshot(get(url)).await.unwrap();
        // Well past the token's refresh point.
        tokio::time::sleep(Duration::from_secs(3500)).await;
    }
    let headers = recorder.headers();
    assert_eq!(headers, ["Bearer tok-0", "Bearer tok-1", "Bearer tok-2"]);
}

#[test]
fn a_long_lived_service_does_not_send_a_token_that_died_while_no_refresher_ran() {
    let (_, source) = numbered_tokens(Duration::from_millis(200));
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let recorder = Recorder::new(sinch_auth::clock::SystemClock);
    // One service for the whole test: it remembers the header it sent last.
    let mut service = layer.layer(recorder.clone());
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    let mut send = |runtime: &tokio::runtime::Runtime| {
        runtime.block_on(async {
            service.ready().await.unwrap().call(get(url)).await.unwrap();
        });
    };
    let first = current_thread_runtime();
    send(&first);
    send(&first);
    drop(first);
    // The token dies while no runtime (so no refresher) exists.
    std::thread::sleep(Duration::from_millis(300));
    send(&current_thread_runtime());
    let headers = recorder.headers();
    assert_eq!(headers, ["Bearer tok-0", "Bearer tok-0", "Bearer tok-1"]);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_ahead_asks_for_a_token_that_outlives_the_one_held() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let source = source_fn({
        let asked = asked.clone();
        move |request: sinch_auth::token::FetchRequest| {
            asked
                .lock()
                .unwrap()
                .push((tokio::time::Instant::now(), request.must_outlive()));
            async { Ok(Token::new("tok", Duration::from_secs(3600))) }
        }
    });
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let recorder = Recorder::new(sinch_auth::clock::SystemClock);
    let service = layer.layer(recorder);
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    service.clone().oneshot(get(url)).await.unwrap();
    // Past the refresh point (at most 3595 − 359.5 s after the fetch).
    tokio::time::sleep(Duration::from_secs(3300)).await;
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0].1, None, "a cold start takes any live token");
    let held_left = Duration::from_secs(3600) - (asked[1].0 - asked[0].0);
    let must_outlive = asked[1].1.expect("a refresh names what it must outlive");
    // Longer than the held token's whole remaining life, by the documented
    // margin: 5 % of its lifetime (180 s here).
    assert_eq!(must_outlive, held_left + Duration::from_secs(180));
}

/// An API that answers 200, except to headers it has been told to refuse:
/// those get a 401 whose `www-authenticate` says `expired`. The first
/// refusal is held at a barrier (twice: "arrived", then "answer now"), so the
/// test can act while that request is in flight.
#[derive(Clone, Default)]
struct RefusingApi {
    seen: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<Vec<String>>>,
    hold_first: Arc<Mutex<Option<Arc<std::sync::Barrier>>>>,
}

impl Service<Request<Full<Bytes>>> for RefusingApi {
    type Response = Response<()>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<()>, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let header = request.headers()[AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        self.seen.lock().unwrap().push(header.clone());
        if !self.refused.lock().unwrap().contains(&header) {
            return std::future::ready(Ok(Response::new(())));
        }
        let hold = self.hold_first.lock().unwrap().take();
        if let Some(barrier) = hold {
            barrier.wait();
            barrier.wait();
        }
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(
                r#"Bearer error="invalid_token", error_description="expired""#,
            ),
        );
        std::future::ready(Ok(response))
    }
}

#[test]
fn a_token_refused_as_expired_while_its_refresher_died_is_replaced_not_sent_again() {
    // The refresher that fetched the token dies with its runtime while a
    // request carrying that token is in flight on another runtime (the
    // cache then holds the same token under a new identity). The 401 that
    // request gets must still clear the token, and its resend carry a new one.
    let (fetches, source) = numbered_tokens(Duration::from_secs(3600));
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .refresh(RefreshConfig::default().wait_timeout(Duration::from_secs(5)))
        .build()
        .unwrap();
    let api = RefusingApi::default();
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    let first = current_thread_runtime();
    let status = first
        .block_on(layer.layer(api.clone()).oneshot(get(url)))
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);

    api.refused.lock().unwrap().push("Bearer tok-0".into());
    let barrier = Arc::new(std::sync::Barrier::new(2));
    *api.hold_first.lock().unwrap() = Some(barrier.clone());
    let in_flight = std::thread::spawn({
        let service = layer.layer(api.clone());
        move || {
            current_thread_runtime()
                .block_on(service.oneshot(get(url)))
                .unwrap()
                .status()
        }
    });
    barrier.wait(); // the request with tok-0 has reached the API
    drop(first); // and the refresher that fetched tok-0 is gone
    barrier.wait(); // now the API refuses it as expired

    assert_eq!(in_flight.join().unwrap(), StatusCode::OK);
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(seen, ["Bearer tok-0", "Bearer tok-0", "Bearer tok-1"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_fractional_exp_claim_limits_the_token_like_a_whole_one() {
    // `exp` is a NumericDate, which JSON may write with a fraction: this one
    // ends the token 100.5 s from now, long before its hour of `expires_in`.
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clock = TokioClock::new(start);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000100.5}"#);
    let short = format!("{header}.{payload}.c2ln");
    let fetches = Arc::new(AtomicU32::new(0));
    let source = source_fn({
        let fetches = fetches.clone();
        move |_| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            let value = if n == 0 {
                short.clone()
            } else {
                format!("tok-{n}")
            };
            async move { Ok(Token::new(value, Duration::from_secs(3600))) }
        }
    });
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .clock(clock)
        .build()
        .unwrap();
    let recorder = Recorder::new(clock);
    let service = layer.layer(recorder.clone());
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    service.clone().oneshot(get(url)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(200)).await;
    service.clone().oneshot(get(url)).await.unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    assert!(seen[0].0.ends_with(".c2ln"), "{seen:?}");
    assert_eq!(seen[1].0, "Bearer tok-1");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refresher_restarted_after_a_rotation_fetches_for_the_new_credentials_at_once() {
    // A sync wrapper (a runtime per call) rotates the key: the refresher that
    // was asked to refetch dies with its runtime before the fetch completes,
    // and the next one must still fetch for the new key at once instead of
    // serving the old key's token until its refresh point.
    let provider = sinch_auth::RotatingCredentials::new(key_of("key-1"));
    let fetches = Arc::new(AtomicU32::new(0));
    // While set, a fetch takes an hour: it outlives its runtime.
    let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let source = source_fn({
        let fetches = fetches.clone();
        let stall = stall.clone();
        move |request: sinch_auth::token::FetchRequest| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            let id = request
                .credentials()
                .access_key()
                .unwrap()
                .key_id()
                .to_owned();
            let stalled = stall.load(Ordering::SeqCst);
            async move {
                if stalled {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok(Token::new(
                    format!("tok-{id}-{n}"),
                    Duration::from_secs(3600),
                ))
            }
        }
    });
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let recorder = Recorder::new(sinch_auth::clock::SystemClock);
    let url = "https://numbers.api.sinch.com/v1/projects/proj-r/activeNumbers";
    let send = |runtime: &tokio::runtime::Runtime| {
        runtime
            .block_on(layer.layer(recorder.clone()).oneshot(get(url)))
            .unwrap();
    };
    send(&current_thread_runtime());
    provider.rotate(key_of("key-2"));
    stall.store(true, Ordering::SeqCst);
    {
        // This runtime runs the refresher it starts (the fetch begins), then goes.
        let second = current_thread_runtime();
        send(&second);
        second.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
    }
    stall.store(false, Ordering::SeqCst);
    let last = paused_runtime();
    send(&last);
    last.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
    send(&last);
    let headers = recorder.headers();
    assert_eq!(
        headers.first().map(String::as_str),
        Some("Bearer tok-key-1-0")
    );
    assert!(
        headers.last().unwrap().starts_with("Bearer tok-key-2-"),
        "{headers:?}"
    );
}

#[test]
fn a_refresher_spawned_on_a_runtime_dropped_before_it_ran_is_replaced() {
    // A sync wrapper whose call never yields (the token is cached, the inner
    // service answers at once) starts a refresher it never runs. The next
    // runtime must still get a working refresher: here, one that fetches for
    // the rotated key at once.
    let provider = sinch_auth::RotatingCredentials::new(key_of("key-1"));
    let source = source_fn(|request: sinch_auth::token::FetchRequest| {
        let id = request
            .credentials()
            .access_key()
            .unwrap()
            .key_id()
            .to_owned();
        async move { Ok(Token::new(format!("tok-{id}"), Duration::from_secs(3600))) }
    });
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let recorder = Recorder::new(sinch_auth::clock::SystemClock);
    let url = "https://numbers.api.sinch.com/v1/projects/proj-r/activeNumbers";
    let send = |runtime: &tokio::runtime::Runtime| {
        runtime
            .block_on(layer.layer(recorder.clone()).oneshot(get(url)))
            .unwrap();
    };
    send(&current_thread_runtime());
    // Starts a refresher (the first one died with its runtime) and never runs it.
    send(&current_thread_runtime());
    provider.rotate(key_of("key-2"));
    let last = paused_runtime();
    send(&last);
    last.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
    send(&last);
    let headers = recorder.headers();
    assert_eq!(
        headers.last().map(String::as_str),
        Some("Bearer tok-key-2"),
        "{headers:?}"
    );
}

fn application() -> sinch_auth::ApplicationCredentials {
    sinch_auth::ApplicationCredentials::new("app-r", "YXBwLXNlY3JldC1y").unwrap()
}

/// A wall clock at a whole second that follows tokio's clock on whichever
/// runtime reads it (made outside any runtime).
fn whole_second_clock() -> TokioClock {
    TokioClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

#[test]
fn a_self_signed_jwt_refused_as_expired_after_a_take_over_is_replaced_by_another_jwt_at_once() {
    // The refresher that minted the JWT sits on a runtime nobody drives; a
    // request on another runtime gets `401 expired` for it, waits, and the
    // refresher it starts in its place must neither refetch at once (within
    // the forced-refetch interval) nor hand back the same bytes.
    let clock = whole_second_clock();
    let layer = SinchAuthLayer::builder(StaticCredentials::new(application()))
        .scheme(Scheme::SelfSignedJwt)
        .clock(clock)
        .build()
        .unwrap();
    let api = RefusingApi::default();
    let url = "https://calling.api.sinch.com/calling/v1/callouts";
    let idle = current_thread_runtime();
    let first = idle.block_on(layer.layer(api.clone()).oneshot(get(url)));
    assert_eq!(first.unwrap().status(), StatusCode::OK);
    let minted = api.seen.lock().unwrap()[0].clone();
    api.refused.lock().unwrap().push(minted.clone());

    let live = paused_runtime();
    let (status, took) = live.block_on(async {
        let started = tokio::time::Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            layer.layer(api.clone()).oneshot(get(url)),
        )
        .await
        .expect("no answer within 10 s");
        (answer.unwrap().status(), started.elapsed())
    });
    assert_eq!(status, StatusCode::OK);
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[1], minted);
    assert_ne!(seen[2], minted, "the resend carried the refused JWT");
    // A quarter second to notice the idle refresher, the rest of the 1 s
    // forced-refetch interval: nothing near the 20 s wait timeout.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    drop(idle);
}

#[tokio::test(start_paused = true)]
async fn a_self_signed_jwt_refetched_within_its_second_is_a_new_jwt() {
    // No forced-refetch interval: the refetch after `401 expired` comes in
    // the very second the refused JWT was minted, whose bytes depend only
    // on that second. The minter waits for the next one.
    let layer = SinchAuthLayer::builder(StaticCredentials::new(application()))
        .scheme(Scheme::SelfSignedJwt)
        .clock(TokioClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ))
        .refresh(RefreshConfig::default().min_forced_interval(Duration::ZERO))
        .build()
        .unwrap();
    let api = RefusingApi::default();
    let url = "https://calling.api.sinch.com/calling/v1/callouts";
    let service = layer.layer(api.clone());
    let cold = tokio::time::Instant::now();
    service.clone().oneshot(get(url)).await.unwrap();
    assert_eq!(
        cold.elapsed(),
        Duration::ZERO,
        "the first JWT is minted at once"
    );
    let minted = api.seen.lock().unwrap()[0].clone();
    api.refused.lock().unwrap().push(minted.clone());

    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), service.oneshot(get(url)))
        .await
        .expect("no answer within 10 s");
    assert_eq!(answer.unwrap().status(), StatusCode::OK);
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_ne!(seen[2], minted, "the resend carried the refused JWT");
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(1), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_refetch_that_returns_the_refused_token_again_is_sent_not_waited_for() {
    // A token endpoint may answer with the token it issued before. After a
    // `401 expired`, that answer is the new token: the waiting request
    // resends with it (and its second 401 goes to the caller) at once
    // instead of waiting out the wait timeout for other bytes.
    let fetches = Arc::new(AtomicU32::new(0));
    let source = source_fn({
        let fetches = fetches.clone();
        move |_| {
            fetches.fetch_add(1, Ordering::SeqCst);
            async { Ok(Token::new("same-token", Duration::from_secs(3600))) }
        }
    });
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let api = RefusingApi::default();
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    let service = layer.layer(api.clone());
    service.clone().oneshot(get(url)).await.unwrap();
    api.refused.lock().unwrap().push("Bearer same-token".into());

    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), service.oneshot(get(url)))
        .await
        .expect("no answer within 10 s");
    assert_eq!(answer.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(api.seen.lock().unwrap().len(), 3);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_refresher_taking_over_keeps_the_forced_refetch_interval_of_the_one_it_replaces() {
    // The refresher that fetched the token sits on a runtime nobody drives
    // when the token is refused as expired; the one that takes over must
    // not refetch sooner than 1 s (`min_forced_interval`) after that fetch.
    let fetched_at = Arc::new(Mutex::new(Vec::new()));
    let source = source_fn({
        let fetched_at = fetched_at.clone();
        move |_| {
            let mut fetched_at = fetched_at.lock().unwrap();
            fetched_at.push(tokio::time::Instant::now());
            let n = fetched_at.len();
            async move { Ok(Token::new(format!("tok-{n}"), Duration::from_secs(3600))) }
        }
    });
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let api = RefusingApi::default();
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    let idle = current_thread_runtime();
    let first = idle.block_on(layer.layer(api.clone()).oneshot(get(url)));
    assert_eq!(first.unwrap().status(), StatusCode::OK);
    api.refused.lock().unwrap().push("Bearer tok-1".into());

    let live = paused_runtime();
    let answer = live.block_on(async {
        let request = layer.layer(api.clone()).oneshot(get(url));
        tokio::time::timeout(Duration::from_secs(10), request).await
    });
    assert_eq!(answer.unwrap().unwrap().status(), StatusCode::OK);
    let fetched_at = fetched_at.lock().unwrap().clone();
    assert_eq!(fetched_at.len(), 2);
    let gap = fetched_at[1] - fetched_at[0];
    assert!(
        gap >= Duration::from_secs(1),
        "refetched {gap:?} after the last fetch"
    );
    drop(idle);
}

#[test]
fn a_refresher_taking_over_keeps_the_retry_after_of_the_one_it_replaces() {
    // The endpoint said "retry after 30 s" to the refresher on a runtime that
    // then goes idle; the one that takes over must not ask sooner.
    let fetched_at = Arc::new(Mutex::new(Vec::new()));
    let source = source_fn({
        let fetched_at = fetched_at.clone();
        move |_| {
            let mut fetched_at = fetched_at.lock().unwrap();
            fetched_at.push(tokio::time::Instant::now());
            let first = fetched_at.len() == 1;
            async move {
                if first {
                    Err(FetchError::Endpoint {
                        status: StatusCode::TOO_MANY_REQUESTS,
                        error: None,
                        description: None,
                        retry_after: Some(Duration::from_secs(30)),
                    })
                } else {
                    Ok(Token::new("tok", Duration::from_secs(3600)))
                }
            }
        }
    });
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .refresh(RefreshConfig::default().wait_timeout(Duration::from_secs(60)))
        .build()
        .unwrap();
    let api = RefusingApi::default();
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    let idle = current_thread_runtime();
    idle.block_on(async {
        let request = layer.layer(api.clone()).oneshot(get(url));
        let gave_up = tokio::time::timeout(Duration::from_millis(100), request).await;
        assert!(gave_up.is_err(), "no token was to be had");
    });

    let live = paused_runtime();
    let answer = live.block_on(async {
        let request = layer.layer(api.clone()).oneshot(get(url));
        tokio::time::timeout(Duration::from_secs(60), request).await
    });
    assert_eq!(answer.unwrap().unwrap().status(), StatusCode::OK);
    let fetched_at = fetched_at.lock().unwrap().clone();
    assert_eq!(fetched_at.len(), 2);
    let gap = fetched_at[1] - fetched_at[0];
    assert!(
        gap >= Duration::from_secs(30),
        "asked again {gap:?} after a Retry-After of 30 s"
    );
    drop(idle);
}

#[test]
fn a_refresher_restarted_with_a_valid_token_waits_for_its_refresh_point() {
    let (fetches, source) = numbered_tokens(Duration::from_secs(3600));
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let recorder = Recorder::new(sinch_auth::clock::SystemClock);
    let url = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";
    let first = current_thread_runtime();
    first
        .block_on(layer.layer(recorder.clone()).oneshot(get(url)))
        .unwrap();
    drop(first);
    // The next runtime starts a refresher that finds the token valid.
    let next = paused_runtime();
    next.block_on(async {
        layer
            .layer(recorder.clone())
            .oneshot(get(url))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(recorder.headers(), ["Bearer tok-0", "Bearer tok-0"]);
}
