//! Refresh timing, backoff, `Retry-After` and expiry, on tokio's paused clock
//! with an in-process token source that records when each fetch happened, so
//! gaps are exact. (Against the loopback stand-in, the same paused clock
//! works too: see `tests/common` and `token_lifecycle.rs`.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Capture, get, paused_clock, unsigned_jwt};
use http::StatusCode;
use http::header::AUTHORIZATION;
use sinch_auth::token::{RefreshConfig, Token, source_fn};
use sinch_auth::{
    AccessKey, AuthError, FetchError, Scheme, ServiceError, SinchAuthLayer, StaticCredentials,
};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

type Script = Arc<Mutex<Vec<Result<Token, FetchError>>>>;

/// A token source that plays a script (then issues fresh one-hour tokens) and
/// records when each fetch happened.
struct Scripted {
    script: Script,
    fetched_at: Arc<Mutex<Vec<Instant>>>,
}

impl Scripted {
    fn new(script: Vec<Result<Token, FetchError>>) -> Self {
        let mut script = script;
        script.reverse();
        Self {
            script: Arc::new(Mutex::new(script)),
            fetched_at: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn layer(&self, config: RefreshConfig) -> SinchAuthLayer {
        let script = self.script.clone();
        let fetched_at = self.fetched_at.clone();
        let source = source_fn(move |_| {
            let mut times = fetched_at.lock().unwrap();
            times.push(Instant::now());
            let n = times.len();
            let next = script.lock().unwrap().pop();
            async move {
                next.unwrap_or_else(|| {
                    Ok(Token::new(format!("token-{n}"), Duration::from_secs(3600)))
                })
            }
        });
        SinchAuthLayer::builder(StaticCredentials::new(
            AccessKey::new("p", "k", "s").unwrap(),
        ))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .refresh(config)
        .clock(paused_clock())
        .build()
        .unwrap()
    }

    fn fetches(&self) -> usize {
        self.fetched_at.lock().unwrap().len()
    }

    fn gaps(&self) -> Vec<Duration> {
        let times = self.fetched_at.lock().unwrap();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

fn endpoint(status: u16, retry_after: Option<Duration>) -> Result<Token, FetchError> {
    Err(FetchError::Endpoint {
        status: StatusCode::from_u16(status).unwrap(),
        error: None,
        description: None,
        retry_after,
    })
}

const URL: &str = "https://numbers.api.sinch.com/v1/x";

#[tokio::test(start_paused = true)]
async fn a_one_hour_token_is_refreshed_between_53_and_54_minutes_in_the_background() {
    let source = Scripted::new(vec![]);
    let capture = Capture::default();
    let service = source
        .layer(RefreshConfig::default())
        .layer(capture.service());
    service.clone().oneshot(get(URL)).await.unwrap();
    assert_eq!(source.fetches(), 1);
    // Refresh falls in [3595 − 359.5 − 89.875, 3595 − 359.5] s = [3145.6, 3235.5] s.
    tokio::time::sleep(Duration::from_secs(3145)).await;
    assert_eq!(source.fetches(), 1, "refreshed too early");
    tokio::time::sleep(Duration::from_secs(91)).await;
    assert_eq!(source.fetches(), 2, "not refreshed ahead of expiry");
    // Nobody asked: it happened in the background, and requests now carry it.
    service.clone().oneshot(get(URL)).await.unwrap();
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer token-2");
}

#[tokio::test(start_paused = true)]
async fn the_jwt_exp_wins_over_a_longer_expires_in() {
    // exp ten minutes after the TokioClock's start; expires_in claims an hour.
    let jwt = unsigned_jwt(&format!(r#"{{"exp":{}}}"#, common::START + 600));
    let source = Scripted::new(vec![Ok(Token::new(jwt, Duration::from_secs(3600)))]);
    let capture = Capture::default();
    let service = source
        .layer(RefreshConfig::default())
        .layer(capture.service());
    service.clone().oneshot(get(URL)).await.unwrap();
    // Lifetime 600 s: usable 595 s, margin 60 s, jitter ≤ 15 s → refresh in [520, 535] s.
    tokio::time::sleep(Duration::from_secs(519)).await;
    assert_eq!(source.fetches(), 1);
    tokio::time::sleep(Duration::from_secs(17)).await;
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_cold_waiters_get_the_cause() {
    let source = Scripted::new(vec![endpoint(429, Some(Duration::from_secs(30)))]);
    let capture = Capture::default();
    let config = RefreshConfig::default().wait_timeout(Duration::from_secs(10));
    let service = source.layer(config).layer(capture.service());
    let started = Instant::now();
    let error = service.clone().oneshot(get(URL)).await.unwrap_err();
    let ServiceError::Auth(AuthError::TokenUnavailable { waited, cause }) = error else {
        panic!("{error:?}")
    };
    assert_eq!(waited, Duration::from_secs(10));
    assert_eq!(cause.unwrap().status(), Some(StatusCode::TOO_MANY_REQUESTS));
    // The next attempt comes exactly when the server said (t = 30 s).
    tokio::time::sleep(Duration::from_secs(15)).await;
    service.clone().oneshot(get(URL)).await.unwrap();
    assert_eq!(source.gaps(), vec![Duration::from_secs(30)]);
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_with_full_jitter_growing_by_four() {
    let source = Scripted::new(vec![
        endpoint(503, None),
        endpoint(503, None),
        endpoint(503, None),
        endpoint(503, None),
        endpoint(503, None),
    ]);
    let capture = Capture::default();
    let config = RefreshConfig::default().wait_timeout(Duration::from_secs(600));
    let service = source.layer(config).layer(capture.service());
    // A cold request waits through the transient failures and gets the token.
    service.clone().oneshot(get(URL)).await.unwrap();
    let gaps = source.gaps();
    assert_eq!(gaps.len(), 5);
    let caps = [1u64, 4, 16, 60, 60];
    for (gap, cap) in gaps.iter().zip(caps) {
        assert!(*gap >= Duration::from_millis(100), "{gaps:?}");
        assert!(*gap <= Duration::from_secs(cap), "{gaps:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn once_no_request_waits_any_more_retries_back_off_again() {
    // While a request waits, the endpoint is retried within a second; once
    // it has given up and nobody waits, the backoff (up to a minute) applies.
    let source = Scripted::new((0..5000).map(|_| endpoint(503, None)).collect());
    let capture = Capture::default();
    let config = RefreshConfig::default().wait_timeout(Duration::from_secs(2));
    let service = source.layer(config).layer(capture.service());
    let error = service.clone().oneshot(get(URL)).await.unwrap_err();
    assert!(
        matches!(
            error,
            ServiceError::Auth(AuthError::TokenUnavailable { .. })
        ),
        "{error:?}"
    );
    let while_waiting = source.fetches();
    assert!(
        while_waiting >= 2,
        "{while_waiting} attempts while a request waited"
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
    let unattended = source.fetches() - while_waiting;
    // Backoff capped at 60 s with full jitter: about 20 in ten minutes;
    // retrying as if a request still waited would be over a thousand.
    assert!(
        unattended < 100,
        "{unattended} attempts in ten minutes with no request waiting"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_refresh_keeps_serving_the_valid_token_then_fails_typed_after_expiry() {
    // First token lives 10 minutes; every refresh after it fails with 500.
    let mut script = vec![Ok(Token::new("only", Duration::from_secs(600)))];
    script.extend((0..1000).map(|_| endpoint(500, None)));
    let source = Scripted::new(script);
    let capture = Capture::default();
    let config = RefreshConfig::default().wait_timeout(Duration::from_secs(1));
    let service = source.layer(config).layer(capture.service());
    service.clone().oneshot(get(URL)).await.unwrap();

    // Every request while the token is usable (595 s) succeeds with it.
    let mut elapsed = Duration::ZERO;
    while elapsed < Duration::from_secs(590) {
        service.clone().oneshot(get(URL)).await.unwrap();
        assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer only");
        tokio::time::sleep(Duration::from_secs(5)).await;
        elapsed += Duration::from_secs(5);
    }
    let attempts_before_expiry = source.fetches() - 1;
    assert!(
        (3..=40).contains(&attempts_before_expiry),
        "{attempts_before_expiry} retries before expiry"
    );

    tokio::time::sleep(Duration::from_secs(10)).await;
    let error = service.clone().oneshot(get(URL)).await.unwrap_err();
    let ServiceError::Auth(AuthError::TokenUnavailable { cause, .. }) = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        cause.unwrap().status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_reported_at_once_not_after_the_deadline() {
    let source = Scripted::new(vec![Err(FetchError::Endpoint {
        status: StatusCode::UNAUTHORIZED,
        error: Some("invalid_client".into()),
        description: None,
        retry_after: None,
    })]);
    let capture = Capture::default();
    let service = source
        .layer(RefreshConfig::default())
        .layer(capture.service());
    let started = Instant::now();
    let error = service.clone().oneshot(get(URL)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    let ServiceError::Auth(AuthError::TokenFetch(cause)) = error else {
        panic!("{error:?}")
    };
    assert_eq!(cause.sinch_error(), Some("invalid_client"));
    // No negative caching: the refresher retries, and the next request gets a token.
    tokio::time::sleep(Duration::from_secs(2)).await;
    service.clone().oneshot(get(URL)).await.unwrap();
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer token-2");
}

#[tokio::test(start_paused = true)]
async fn a_clock_jump_past_expiry_makes_requests_wait_for_a_fresh_token() {
    let source = Scripted::new(vec![]);
    let capture = Capture::default();
    let service = source
        .layer(RefreshConfig::default())
        .layer(capture.service());
    service.clone().oneshot(get(URL)).await.unwrap();
    // Jump two hours at once: the refresh and the expiry fire together. The
    // refresher withdraws the token when its timer runs (expiry is timer-driven,
    // so the request path reads no clock); give it that turn.
    tokio::time::advance(Duration::from_secs(7200)).await;
    tokio::task::yield_now().await;
    service.clone().oneshot(get(URL)).await.unwrap();
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer token-2");
    assert_eq!(source.fetches(), 2);
}
