//! OAuth2 tokens against a real loopback token endpoint: the wire format,
//! single flight, refresh that never blocks, the fault matrix, 401 handling,
//! and the refresher's lifetime.
//!
//! Tests that depend on time run on tokio's paused clock, with the stand-in,
//! the layer and the test in one runtime and reading one clock (see
//! `tests/common` for why that is deterministic with real sockets): token
//! lifetimes of seconds take milliseconds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Capture, eventually, get, oauth2_stand_in, paused_clock, send};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::RefreshConfig;
use sinch_auth::{AccessKey, AuthError, Scheme, ServiceError, SinchAuthLayer, StaticCredentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

fn key() -> AccessKey {
    AccessKey::new("proj-t", "key-t", "KEY-SECRET-t1").unwrap()
}

/// A stand-in for [`key`] issuing `lifetime` tokens, on a clock that starts
/// at `common::START` and follows tokio's (paused) clock.
async fn stand_in(lifetime: Duration) -> SinchStandIn {
    oauth2_stand_in(&key(), lifetime, paused_clock()).await
}

/// An OAuth2 layer fetching from `sinch`, on the stand-in's clock.
fn layer(sinch: &SinchStandIn, refresh: RefreshConfig) -> SinchAuthLayer {
    common::oauth2_layer(key(), &sinch.url(), refresh, sinch.clock())
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn the_token_request_is_byte_for_byte_what_spec_section_2_gives() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the head, then exactly content-length bytes of body.
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            received.extend_from_slice(&buf[..n]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if received.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let body = br#"{"access_token":"tok","expires_in":3600,"scope":"","token_type":"bearer"}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        received
    });

    let creds = StaticCredentials::new(AccessKey::new("p", "fooKey", "fooSecret").unwrap());
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(creds)
        .scheme(Scheme::OAuth2)
        .auth_host(&format!("http://{addr}"))
        .build()
        .unwrap()
        .layer(capture.service());
    service
        .oneshot(get("https://numbers.api.sinch.com/v1/x"))
        .await
        .unwrap();
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer tok");

    let received = server.await.unwrap();
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(lines.next(), Some("POST /oauth2/token HTTP/1.1"));
    let mut headers: Vec<String> = lines.map(str::to_owned).collect();
    headers.sort();
    let mut expected = vec![
        "authorization: Basic Zm9vS2V5OmZvb1NlY3JldA==".to_owned(),
        "content-type: application/x-www-form-urlencoded".to_owned(),
        "content-length: 29".to_owned(),
        format!("host: {addr}"),
        format!("user-agent: sinch-auth-rust/{}", env!("CARGO_PKG_VERSION")),
    ];
    expected.sort();
    assert_eq!(headers, expected);
    assert_eq!(body, "grant_type=client_credentials");
}

// On the real clock and two worker threads on purpose: this is about
// parallel contention on the single flight, which a paused (current-thread)
// runtime cannot produce. The 200 ms token delay is its only wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_on_a_cold_cache_make_exactly_one_fetch() {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    sinch.delay_tokens(Duration::from_millis(200));
    let capture = Capture::default();
    let service = layer(&sinch, RefreshConfig::default()).layer(capture.service());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10_000 {
        let service = service.clone();
        tasks.spawn(async move {
            service
                .oneshot(get("https://numbers.api.sinch.com/v1/x"))
                .await
                .map(|_| ())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(sinch.token_requests(), 1);
    let seen = capture.all();
    assert_eq!(seen.len(), 10_000);
    let first = &seen[0].headers[AUTHORIZATION];
    assert!(seen.iter().all(|s| s.headers[AUTHORIZATION] == first));
}

#[tokio::test(start_paused = true)]
async fn refresh_does_not_block_requests_holding_a_valid_token() {
    // 2 s tokens: usable for 1.8 s, refreshed from 0.675 s to 0.9 s in.
    let sinch = stand_in(Duration::from_secs(2)).await;
    let capture = Capture::default();
    let service = layer(&sinch, RefreshConfig::default()).layer(capture.service());
    let url = "https://numbers.api.sinch.com/v1/x";
    service.clone().oneshot(get(url)).await.unwrap();
    let first = capture.last().headers[AUTHORIZATION].clone();
    sinch.delay_tokens(Duration::from_millis(500));

    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut count = 0u32;
    while started.elapsed() < Duration::from_millis(1600) {
        let t = Instant::now();
        service.clone().oneshot(get(url)).await.unwrap();
        slowest = slowest.max(t.elapsed());
        count += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seen = capture.all();
    let last = &seen.last().unwrap().headers[AUTHORIZATION];
    assert_ne!(
        last, &first,
        "the refresh did not land within the token's life"
    );
    assert_eq!(
        sinch.token_requests(),
        2,
        "one fetch at start, exactly one refresh"
    );
    // The refresh took 500 ms; no request came near that. (Virtual time:
    // a request that waited for the refresh would show all 500 ms of it.)
    assert!(
        slowest < Duration::from_millis(100),
        "slowest of {count} requests took {slowest:?}"
    );
}

fn fault_config() -> RefreshConfig {
    RefreshConfig::default()
        .fetch_timeout(Duration::from_millis(300))
        .wait_timeout(Duration::from_millis(600))
        .backoff_base(Duration::from_millis(50))
        .backoff_cap(Duration::from_millis(200))
        .min_forced_interval(Duration::ZERO)
}

enum Fault {
    Respond(TokenFailure),
    Hang,
    Refused,
}

/// Warm a 1 s token, break the token endpoint, and check: no failed request
/// while the token is usable, a typed error once it is not, recovery on heal.
///
/// Runs on the paused clock: call it from a `start_paused` test.
async fn survives(fault: Fault, check: impl Fn(&AuthError)) {
    let clock = paused_clock();
    let sinch = oauth2_stand_in(&key(), Duration::from_secs(1), clock).await;
    let capture = Capture::default();
    let service = layer(&sinch, fault_config()).layer(capture.service());
    let url = "https://numbers.api.sinch.com/v1/x";
    service.clone().oneshot(get(url)).await.unwrap();
    let warmed = Instant::now();
    let addr = sinch.addr();
    let running = match fault {
        Fault::Respond(failure) => {
            sinch.fail_all_token_requests(failure);
            Some(sinch)
        }
        Fault::Hang => {
            sinch.delay_tokens(Duration::from_secs(30));
            Some(sinch)
        }
        Fault::Refused => {
            drop(sinch);
            None
        }
    };

    // Usable for 0.9 s: every request in the first 0.8 s succeeds.
    let mut served = 0;
    while warmed.elapsed() < Duration::from_millis(800) {
        service
            .clone()
            .oneshot(get(url))
            .await
            .expect("a request failed while a valid token existed");
        served += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served > 20);

    tokio::time::sleep_until(warmed + Duration::from_millis(1000)).await;
    let error = service.clone().oneshot(get(url)).await.unwrap_err();
    let ServiceError::Auth(error) = error;
    assert!(
        matches!(
            error,
            AuthError::TokenFetch(_) | AuthError::TokenUnavailable { .. }
        ),
        "{error:?}"
    );
    check(&error);
    assert!(!error.to_string().contains("KEY-SECRET-t1"));

    // Heal: requests recover by themselves.
    let sinch = match running {
        Some(sinch) => {
            sinch.heal_tokens();
            sinch
        }
        None => SinchStandIn::builder()
            .access_key(&key())
            .token_lifetime(Duration::from_secs(1))
            .clock(clock)
            .bind(addr)
            .start()
            .await
            .unwrap_or_else(|e| panic!("rebinding {addr}: {e}")),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if service.clone().oneshot(get(url)).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(sinch);
}

fn cause_status(error: &AuthError) -> Option<u16> {
    match error {
        AuthError::TokenFetch(e) => e.status().map(|s| s.as_u16()),
        AuthError::TokenUnavailable { cause, .. } => {
            cause.as_ref().and_then(|e| e.status()).map(|s| s.as_u16())
        }
        _ => None,
    }
}

fn cause_text(error: &AuthError) -> String {
    match error {
        AuthError::TokenFetch(e) => e.to_string(),
        AuthError::TokenUnavailable { cause, .. } => {
            cause.as_ref().map(|e| e.to_string()).unwrap_or_default()
        }
        _ => String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_500_is_survived() {
    survives(
        Fault::Respond(TokenFailure::status(StatusCode::INTERNAL_SERVER_ERROR)),
        |e| {
            assert_eq!(cause_status(e), Some(500));
            assert!(cause_text(e).contains("testkit_failure"), "{e}");
        },
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_503_is_survived() {
    survives(
        Fault::Respond(TokenFailure::status(StatusCode::SERVICE_UNAVAILABLE)),
        |e| assert_eq!(cause_status(e), Some(503)),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_429_without_retry_after_is_survived() {
    survives(Fault::Respond(TokenFailure::too_many_requests(None)), |e| {
        assert_eq!(cause_status(e), Some(429))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_429_with_retry_after_is_survived() {
    survives(
        Fault::Respond(TokenFailure::too_many_requests(Some("1"))),
        |e| assert_eq!(cause_status(e), Some(429)),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_hanging_past_the_timeout_is_survived() {
    survives(Fault::Hang, |e| {
        assert!(
            cause_text(e).contains("timed out") || matches!(e, AuthError::TokenUnavailable { .. }),
            "{e}"
        )
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_refusing_connections_is_survived() {
    survives(Fault::Refused, |e| {
        assert!(cause_text(e).contains("token request failed"), "{e}")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_closing_the_connection_is_survived() {
    survives(Fault::Respond(TokenFailure::close_connection()), |e| {
        assert!(cause_text(e).contains("token request failed"), "{e}")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn malformed_token_answers_are_survived() {
    for (body, reason) in [
        ("{not json", "not a JSON object"),
        (
            r#"{"expires_in":3600,"token_type":"bearer"}"#,
            "access_token is missing",
        ),
        (
            r#"{"access_token":"a","expires_in":0}"#,
            "expires_in is not positive",
        ),
        (
            r#"{"access_token":"a","expires_in":-3600}"#,
            "expires_in is not positive",
        ),
        (
            r#"{"access_token":"bad token\u0001","expires_in":3600}"#,
            "not allowed in a header",
        ),
    ] {
        survives(Fault::Respond(TokenFailure::ok_with_body(body)), |e| {
            assert!(cause_text(e).contains(reason), "{body}: {e}");
            // Malformed answers are not transient: reported at once.
            assert!(matches!(e, AuthError::TokenFetch(_)), "{e:?}");
        })
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn oversized_token_answers_are_refused_not_buffered() {
    let huge = format!(
        r#"{{"access_token":"{}","expires_in":3600}}"#,
        "a".repeat(100_000)
    );
    survives(Fault::Respond(TokenFailure::ok_with_body(huge)), |e| {
        assert!(cause_text(e).contains("larger than 65536 bytes"), "{e}")
    })
    .await;
}

#[tokio::test]
async fn a_huge_expires_in_is_clamped_not_trusted() {
    let sinch = stand_in(HOUR).await;
    sinch.fail_next_token_requests(
        1,
        TokenFailure::ok_with_body(
            r#"{"access_token":"opaque","expires_in":1e300,"token_type":"Bearer"}"#,
        ),
    );
    let capture = Capture::default();
    let service = layer(&sinch, fault_config()).layer(capture.service());
    service
        .oneshot(get("https://numbers.api.sinch.com/v1/x"))
        .await
        .unwrap();
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer opaque");
}

#[tokio::test(start_paused = true)]
async fn a_401_expired_once_refreshes_once_and_resends_once() {
    let sinch = stand_in(HOUR).await;
    let client = ServiceBuilder::new()
        .layer(layer(&sinch, fault_config()))
        .service(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    send(&client, get(&url)).await;
    sinch.answer_expired_next(1);
    let (status, body) = send(&client, get(&url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sinch.api_requests(), 3);
    assert_eq!(sinch.token_requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_resend_keeps_the_requests_own_headers_and_body_with_one_fresh_authorization() {
    let sinch = stand_in(HOUR).await;
    let client = ServiceBuilder::new()
        .layer(layer(&sinch, fault_config()))
        .service(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    send(&client, get(&url)).await;
    let first = sinch.last_request().unwrap().headers[AUTHORIZATION].clone();
    sinch.answer_expired_next(1);
    // A header set by the caller and one the caller repeated: the resend
    // keeps both, next to the layer's one `Authorization`.
    let request = Request::post(&url)
        .header("x-trace", "t-1")
        .header("accept", "text/plain")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let (status, body) = send(&client, request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sinch.api_requests(), 3);
    let resent = sinch.last_request().unwrap();
    assert_eq!(resent.headers["x-trace"], "t-1");
    let accept: Vec<_> = resent.headers.get_all("accept").iter().collect();
    assert_eq!(accept, ["text/plain", "application/json"]);
    let authorization: Vec<_> = resent.headers.get_all(AUTHORIZATION).iter().collect();
    assert_eq!(authorization.len(), 1, "one Authorization on the resend");
    assert_ne!(authorization[0], first, "the refused token is not reused");
    assert_eq!(resent.body, Bytes::from_static(b"payload"));
}

#[tokio::test(start_paused = true)]
async fn a_server_that_always_says_expired_gets_one_resend_per_request_and_bounded_fetches() {
    let sinch = stand_in(HOUR).await;
    let config = fault_config().min_forced_interval(Duration::from_millis(100));
    let client = ServiceBuilder::new()
        .layer(layer(&sinch, config))
        .service(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    send(&client, get(&url)).await;
    sinch.answer_expired_always(true);
    let started = Instant::now();
    for _ in 0..10 {
        let (status, _) = send(&client, get(&url)).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        sinch.api_requests(),
        1 + 10 * 2,
        "exactly one resend per request"
    );
    let fetches = sinch.token_requests();
    let bound = 1 + 1 + (started.elapsed().as_millis() / 100) as u64;
    assert!(
        fetches <= bound.min(11),
        "{fetches} fetches (bound {bound})"
    );
}

/// Inner service that answers 401 with a given `www-authenticate` and counts calls.
fn answering_401(
    status: StatusCode,
    www: &'static str,
    calls: Arc<AtomicU32>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_request: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, www.parse().unwrap());
            Ok(response)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn no_resend_on_407_or_on_401_without_expired() {
    let sinch = stand_in(HOUR).await;
    let layer = layer(&sinch, fault_config());
    for (status, www) in [
        (
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "Bearer error=\"expired\"",
        ),
        (StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\""),
        (StatusCode::FORBIDDEN, "Bearer error=\"expired\""),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let service = layer.layer(answering_401(status, www, calls.clone()));
        let response = service
            .oneshot(get("https://numbers.api.sinch.com/v1/x"))
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{status}");
    }
    assert_eq!(sinch.token_requests(), 1, "no refetch for those answers");
}

#[tokio::test(start_paused = true)]
async fn a_late_401_carrying_an_old_token_does_not_wipe_a_newer_one() {
    let sinch = stand_in(HOUR).await;
    let layer = layer(&sinch, fault_config());
    let client = layer.layer(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    send(&client, get(&url)).await;
    assert_eq!(sinch.token_requests(), 1);

    // A: goes out with token 1, and its 401 comes back late.
    let slow_calls = Arc::new(AtomicU32::new(0));
    let calls = slow_calls.clone();
    let slow = tower::service_fn(move |_request: Request<Full<Bytes>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut response = Response::new(Full::new(Bytes::new()));
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    "Bearer error=\"invalid_token\", error_description=\"Jwt expired\""
                        .parse()
                        .unwrap(),
                );
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let a = tokio::spawn(
        layer
            .layer(slow)
            .oneshot(get("https://numbers.api.sinch.com/v1/a")),
    );

    // B: meanwhile token 1 really expires; B's 401 replaces it with token 2.
    tokio::time::sleep(Duration::from_millis(50)).await;
    sinch.expire_tokens();
    let (status, _) = send(&client, get(&url)).await;
    assert_eq!(status, 200);
    assert_eq!(sinch.token_requests(), 2);

    // A's late 401 names token 1: token 2 stays, A resends with it.
    let response = a.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(slow_calls.load(Ordering::SeqCst), 2);
    let (status, _) = send(&client, get(&url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        sinch.token_requests(),
        2,
        "the late 401 must not clear token 2"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_service_ends_the_refresher() {
    let sinch = stand_in(HOUR).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let capture = Capture::default();
    let layer = layer(&sinch, RefreshConfig::default());
    let service = layer.layer(capture.service());
    let clone = service.clone();
    service
        .oneshot(get("https://numbers.api.sinch.com/v1/x"))
        .await
        .unwrap();
    // The refresher runs (plus the stand-in's connection).
    assert!(metrics.num_alive_tasks() > baseline);
    drop(layer);
    drop(clone);
    // The token client's pooled connection to the stand-in closes with it
    // (socket I/O, not a timer: the deadline is in real time).
    eventually("refresher still alive", Duration::from_secs(5), || {
        metrics.num_alive_tasks() <= baseline
    })
    .await;
}

#[test]
fn a_layer_built_before_the_runtime_starts_works_once_it_does() {
    let capture = Capture::default();
    let source = sinch_auth::token::source_fn(|_| async {
        Ok(sinch_auth::token::Token::new(
            "lazy",
            Duration::from_secs(600),
        ))
    });
    let service = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap()
        .layer(capture.service());

    // Without a runtime, a token scheme cannot work: a typed error, no panic.
    let mut polled = service.clone();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(polled.poll_ready(&mut cx).is_ready());
    let mut future = Box::pin(polled.call(get("https://numbers.api.sinch.com/v1/x")));
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(ServiceError::Auth(AuthError::NoRuntime))) => {}
        other => panic!("expected NoRuntime, got {:?}", other.map(|r| r.map(|_| ()))),
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        service
            .oneshot(get("https://numbers.api.sinch.com/v1/x"))
            .await
            .unwrap();
    });
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer lazy");
}
