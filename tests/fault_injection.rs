//! Faults beyond the token endpoint's matrix (which `token_lifecycle.rs`
//! covers): API connections that break mid-answer or never answer, slow API
//! answers, a token endpoint that alternates success and failure, and jumps
//! of the clock past expiry. For each: a request fails only when it must,
//! with a typed error that says whose fault it was; nothing panics; the
//! next request recovers by itself.
//!
//! Time-dependent tests run on tokio's paused clock with the stand-in in the
//! same runtime and on the same clock as the layer (see `tests/common`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Capture, START, get, oauth2_stand_in, paused_clock, start, unix, unsigned_jwt};
use http::StatusCode;
use http::header::AUTHORIZATION;
use sinch_auth::clock::ManualClock;
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::{RefreshConfig, Token, source_fn};
use sinch_auth::{
    AccessKey, ApplicationCredentials, AuthError, FetchError, Scheme, ServiceError, SinchAuthLayer,
    StaticCredentials,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn key() -> AccessKey {
    AccessKey::new("proj-f", "key-f", "KEY-SECRET-f1").unwrap()
}

/// An OAuth2 layer fetching from `sinch`, on the stand-in's clock.
fn oauth2_layer(sinch: &SinchStandIn, refresh: RefreshConfig) -> SinchAuthLayer {
    common::oauth2_layer(key(), &sinch.url(), refresh, sinch.clock())
}

/// A token source counting its fetches, for tests that must not touch a socket.
fn counting_source(
    fetches: Arc<AtomicU64>,
) -> impl sinch_auth::token::TokenSource + Clone + 'static {
    source_fn(move |_| {
        let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(Token::new(format!("token-{n}"), Duration::from_secs(3600))) }
    })
}

#[tokio::test]
async fn an_api_connection_dropped_mid_answer_fails_that_request_alone_and_spares_the_token() {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    let client = oauth2_layer(&sinch, RefreshConfig::default()).layer(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    let response = client.clone().oneshot(get(&url)).await.unwrap();
    assert_eq!(response.status(), 200);

    sinch.close_next_api_responses(1);
    // The stand-in answers, then its body breaks off and the connection
    // drops (hyper holds the head back for the first body bytes, so nothing
    // arrives): the client's own error, typed, and never an auth error.
    let error = client.clone().oneshot(get(&url)).await.unwrap_err();
    let ServiceError::Inner(error) = error else {
        panic!("a broken API connection is not an auth failure: {error}")
    };
    let cause = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<hyper::Error>())
        .expect("hyper's error underneath");
    assert!(cause.is_incomplete_message(), "{cause:?}");

    // The next request goes through with the same token: nothing was invalidated.
    let response = client.clone().oneshot(get(&url)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sinch.token_requests(), 1);
    assert_eq!(sinch.api_requests(), 3);
}

/// A loopback API that reads each request and then closes the connection
/// without a byte of answer; returns its address and how many it took.
async fn mute_api() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                // Half an answer, then nothing.
                let _ = stream.write_all(b"HTTP/1.1 200 O").await;
                drop(stream);
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn an_api_that_hangs_up_before_answering_is_the_inner_services_error() {
    let (addr, accepted) = mute_api().await;
    let fetches = Arc::new(AtomicU64::new(0));
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(counting_source(fetches.clone()))
        .build()
        .unwrap();
    let hyper_client: sinch_auth::testkit::StandInClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let client = layer.layer(hyper_client);
    for _ in 0..3 {
        let error = client
            .clone()
            .oneshot(get(format!("http://{addr}/v1/x")))
            .await
            .unwrap_err();
        let ServiceError::Inner(inner) = error else {
            panic!("expected the client's error, got {error:?}")
        };
        // hyper-util's typed error, with hyper's cause underneath.
        let cause = std::error::Error::source(&inner).expect("a cause");
        assert!(cause.downcast_ref::<hyper::Error>().is_some(), "{cause:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    // The token was never blamed: one fetch, still cached, and it works elsewhere.
    let capture = Capture::default();
    layer
        .layer(capture.service())
        .oneshot(get("https://numbers.api.sinch.com/v1/x"))
        .await
        .unwrap();
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer token-1");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn slow_api_answers_all_succeed_while_one_second_tokens_turn_over_underneath() {
    let sinch = oauth2_stand_in(&key(), Duration::from_secs(1), paused_clock()).await;
    // The stand-in checks the token after the delay, so a request sent near
    // the end of a token's life arrives with an expired one: the 401
    // `expired` resend must cover that.
    sinch.delay_api(Duration::from_millis(200));
    let client = oauth2_layer(&sinch, RefreshConfig::default()).layer(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let client = client.clone();
        let url = url.clone();
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            while started.elapsed() < Duration::from_millis(2500) {
                let t = tokio::time::Instant::now();
                let response = client.clone().oneshot(get(&url)).await.unwrap();
                assert!(t.elapsed() >= Duration::from_millis(200));
                statuses.push(response.status());
            }
            statuses
        });
    }
    let mut sent = 0;
    while let Some(statuses) = tasks.join_next().await {
        for status in statuses.unwrap() {
            assert_eq!(status, StatusCode::OK);
            sent += 1;
        }
    }
    assert!(sent >= 16 * 8, "{sent}");
    assert!(sinch.tokens_issued() >= 3, "{}", sinch.tokens_issued());
}

#[tokio::test(start_paused = true)]
async fn a_client_timeout_around_the_layer_fails_slow_requests_typed_and_leaves_the_cache_alone() {
    let sinch = oauth2_stand_in(&key(), Duration::from_secs(3600), paused_clock()).await;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_millis(100))
        .layer(oauth2_layer(&sinch, RefreshConfig::default()))
        .service(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    assert_eq!(
        client.clone().oneshot(get(&url)).await.unwrap().status(),
        200
    );
    sinch.delay_api(Duration::from_millis(400));
    let error = client.clone().oneshot(get(&url)).await.unwrap_err();
    assert!(
        error.is::<tower::timeout::error::Elapsed>(),
        "expected the timeout's own error, got {error}"
    );
    sinch.delay_api(Duration::ZERO);
    assert_eq!(
        client.clone().oneshot(get(&url)).await.unwrap().status(),
        200
    );
    assert_eq!(sinch.token_requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_endpoint_alternating_success_and_failure_fails_no_request() {
    for failure in [
        TokenFailure::status(StatusCode::INTERNAL_SERVER_ERROR),
        TokenFailure::too_many_requests(None),
        TokenFailure::close_connection(),
    ] {
        let sinch = oauth2_stand_in(&key(), Duration::from_secs(1), paused_clock()).await;
        sinch.alternate_token_failures(failure.clone());
        let client = oauth2_layer(&sinch, RefreshConfig::default()).layer(sinch.client());
        let url = format!("{}/v1/x", sinch.url());
        let started = tokio::time::Instant::now();
        let mut sent = 0u32;
        // Two token lifetimes and more: each refresh fails once and is retried
        // (within half the time left) before the token stops being usable.
        while started.elapsed() < Duration::from_millis(2200) {
            let response = client
                .clone()
                .oneshot(get(&url))
                .await
                .unwrap_or_else(|e| panic!("{failure:?}: request failed: {e}"));
            assert_eq!(response.status(), 200, "{failure:?}");
            sent += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (requests, issued) = (sinch.token_requests(), sinch.tokens_issued());
        assert!(sent > 100, "{sent}");
        assert!(issued >= 3, "{failure:?}: {issued} issued");
        // Odd attempts succeed, even ones fail: as many failures as successes, give or take one.
        assert!(
            requests >= 2 * issued - 1 && requests <= 2 * issued,
            "{failure:?}: {requests} requests for {issued} tokens"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn repeated_jumps_past_expiry_cost_one_fetch_each_and_no_failed_request() {
    let fetches = Arc::new(AtomicU64::new(0));
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(counting_source(fetches.clone()))
        .clock(paused_clock())
        .build()
        .unwrap()
        .layer(capture.service());
    service
        .clone()
        .oneshot(get("https://numbers.api.sinch.com/v1/x"))
        .await
        .unwrap();
    for jump in 1..=20u64 {
        tokio::time::advance(Duration::from_secs(2 * 3600)).await;
        tokio::task::yield_now().await;
        service
            .clone()
            .oneshot(get("https://numbers.api.sinch.com/v1/x"))
            .await
            .unwrap_or_else(|e| panic!("jump {jump}: {e}"));
        assert_eq!(
            capture.last().headers[AUTHORIZATION],
            format!("Bearer token-{}", jump + 1).as_str()
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 21);
}

#[tokio::test(start_paused = true)]
async fn a_jump_past_expiry_while_the_endpoint_fails_is_typed_then_recovers_on_its_own() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fetches = Arc::new(AtomicU64::new(0));
    let (fail, count) = (failing.clone(), fetches.clone());
    let source = source_fn(move |_| {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        let result = if fail.load(Ordering::SeqCst) {
            Err(FetchError::Endpoint {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: None,
                description: None,
                retry_after: None,
            })
        } else {
            Ok(Token::new(format!("token-{n}"), Duration::from_secs(3600)))
        };
        async move { result }
    });
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .clock(paused_clock())
        .refresh(RefreshConfig::default().wait_timeout(Duration::from_secs(5)))
        .build()
        .unwrap()
        .layer(capture.service());
    let url = "https://numbers.api.sinch.com/v1/x";
    service.clone().oneshot(get(url)).await.unwrap();

    failing.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(3 * 3600)).await;
    tokio::task::yield_now().await;
    // No usable token and the endpoint is down: the request must fail, and says why.
    let error = service.clone().oneshot(get(url)).await.unwrap_err();
    let ServiceError::Auth(AuthError::TokenUnavailable { cause, .. }) = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        cause.unwrap().status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );

    // The endpoint heals; the refresher's backoff (at most 60 s) brings a
    // token without anyone asking twice.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(61)).await;
    let before = fetches.load(Ordering::SeqCst);
    service.clone().oneshot(get(url)).await.unwrap();
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        before,
        "the token was already there"
    );
}

/// A JWT-shaped token (unsigned; the crate only reads `exp`).
fn jwt(iat: u64, exp: u64) -> String {
    unsigned_jwt(&format!(r#"{{"iat":{iat},"exp":{exp}}}"#))
}

#[tokio::test(start_paused = true)]
async fn a_local_clock_two_hours_ahead_of_the_issuer_still_uses_fresh_tokens() {
    // Regression: the JWT `exp` cross-check read our wall clock, so a clock
    // ahead by more than a token's lifetime rejected every token as "already
    // expired" — and as a permanent failure, so every request failed.
    let issuer = paused_clock();
    let fetches = Arc::new(AtomicU64::new(0));
    let count = fetches.clone();
    let source = source_fn(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        let iat = unix(sinch_auth::clock::Clock::now(&issuer));
        async move { Ok(Token::new(jwt(iat, iat + 3600), Duration::from_secs(3600))) }
    });
    let local = ManualClock::new(start() + Duration::from_secs(2 * 3600));
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .clock(local.clone())
        .build()
        .unwrap()
        .layer(capture.service());
    let url = "https://numbers.api.sinch.com/v1/x";
    for _ in 0..3 {
        service.clone().oneshot(get(url)).await.unwrap();
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // An hour on (tokio time), the token is refreshed ahead of expires_in as usual.
    tokio::time::advance(Duration::from_secs(3300)).await;
    tokio::task::yield_now().await;
    service.clone().oneshot(get(url)).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn self_signed_jwts_are_reminted_with_the_new_time_after_a_jump() {
    let app = ApplicationCredentials::new("app-f", "YXBwLXNlY3JldC1m").unwrap();
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(app))
        .scheme(Scheme::SelfSignedJwt)
        .clock(paused_clock())
        .build()
        .unwrap()
        .layer(capture.service());
    let url = "https://numbers.api.sinch.com/v1/x";
    let iat = |capture: &Capture| -> u64 {
        let header = capture.last().headers[AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        let claims = header.split('.').nth(1).unwrap().to_owned();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        claims["iat"].as_u64().unwrap()
    };
    service.clone().oneshot(get(url)).await.unwrap();
    assert_eq!(iat(&capture), START);
    tokio::time::advance(Duration::from_secs(5 * 3600)).await;
    tokio::task::yield_now().await;
    service.clone().oneshot(get(url)).await.unwrap();
    assert_eq!(iat(&capture), START + 5 * 3600);
}
