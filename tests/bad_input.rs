//! Bad input never panics: tokens a header cannot carry, bodies that are not
//! UTF-8, absurd `expires_in` values and settings, empty secrets, and huge
//! bodies for signing and verification. Each gets a typed error that names
//! the problem (never the value), or is handled within a stated limit.

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{Capture, get};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application;
use sinch_auth::token::{RefreshConfig, Token, TokenHttpClient, source_fn};
use sinch_auth::verify::{
    ApplicationVerifier, DEFAULT_BODY_LIMIT, Freshness, NumbersVerifier, Rejection, Verifier,
    VerifyLayer, WebhookVerifier, numbers_signature, webhook_signature,
};
use sinch_auth::{
    AccessKey, ApplicationCredentials, AuthError, BasicCredentials, BearerToken, ConfigError,
    EnvCredentials, FetchError, Scheme, ServiceError, ServicePlan, SinchAuthLayer,
    StaticCredentials,
};
use tower::{Layer, ServiceExt};

const URL: &str = "https://numbers.api.sinch.com/v1/x";

fn key() -> AccessKey {
    AccessKey::new("proj-b", "key-b", "KEY-SECRET-b1").unwrap()
}

/// A token "endpoint" in process: answers every fetch with this status,
/// headers and body bytes (any bytes, UTF-8 or not).
fn token_client(
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> TokenHttpClient {
    TokenHttpClient::new(tower::service_fn(move |_request: Request<Full<Bytes>>| {
        let mut response = Response::new(Full::new(Bytes::from(body.clone())));
        *response.status_mut() = status;
        for (name, value) in &headers {
            response
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).unwrap());
        }
        async move { Ok::<_, Infallible>(response) }
    }))
}

fn quick() -> RefreshConfig {
    RefreshConfig::default()
        .wait_timeout(Duration::from_millis(300))
        .backoff_base(Duration::from_millis(20))
        .backoff_cap(Duration::from_millis(50))
}

/// Sends one request through an OAuth2 layer whose token endpoint is `client`.
async fn through_oauth2(
    client: TokenHttpClient,
    refresh: RefreshConfig,
) -> (Result<(), ServiceError<Infallible>>, Capture) {
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_client(client)
        .refresh(refresh)
        .build()
        .unwrap()
        .layer(capture.service());
    let result = service.oneshot(get(URL)).await.map(|_| ());
    (result, capture)
}

fn fetch_error(result: Result<(), ServiceError<Infallible>>) -> Arc<FetchError> {
    match result {
        Err(ServiceError::Auth(AuthError::TokenFetch(cause))) => cause,
        Err(ServiceError::Auth(AuthError::TokenUnavailable {
            cause: Some(cause), ..
        })) => cause,
        other => panic!(
            "expected a fetch failure, got {:?}",
            other.map_err(|e| e.to_string())
        ),
    }
}

#[tokio::test]
async fn tokens_a_header_cannot_carry_are_refused_typed_and_never_quoted() {
    for token in [
        "tok en",
        "tok\r\nx-injected: 1",
        "tok\nen",
        "tök",
        "tok\u{0}en",
        "\t",
        " ",
        "tok\u{7f}",
        "🦀",
    ] {
        let body = serde_json::json!({"access_token": token, "expires_in": 3600}).to_string();
        let (result, capture) = through_oauth2(
            token_client(StatusCode::OK, vec![], body.into_bytes()),
            quick(),
        )
        .await;
        let cause = fetch_error(result);
        assert!(
            matches!(*cause, FetchError::MalformedResponse { reason } if reason.contains("not allowed in a header")),
            "{token:?}: {cause:?}"
        );
        assert!(capture.all().is_empty(), "{token:?} was sent");
    }
}

#[tokio::test]
async fn non_utf8_token_answers_are_malformed_or_endpoint_errors_never_panics() {
    let garbage = vec![0xff, 0xfe, 0x00, 0x80, b'{', 0xc3, 0x28];
    let mut invalid_in_string = br#"{"access_token":""#.to_vec();
    invalid_in_string.extend([0xff, 0xfe]);
    invalid_in_string.extend(br#"","expires_in":3600}"#);
    for body in [garbage.clone(), invalid_in_string] {
        let (result, _) = through_oauth2(token_client(StatusCode::OK, vec![], body), quick()).await;
        let cause = fetch_error(result);
        assert!(
            matches!(
                *cause,
                FetchError::MalformedResponse {
                    reason: "body is not a JSON object"
                }
            ),
            "{cause:?}"
        );
    }
    // An error status with a non-UTF-8 body: the status survives, no fields.
    let (result, _) = through_oauth2(
        token_client(StatusCode::BAD_GATEWAY, vec![], garbage),
        quick(),
    )
    .await;
    let cause = fetch_error(result);
    assert!(
        matches!(
            &*cause,
            FetchError::Endpoint { status, error: None, description: None, .. } if *status == StatusCode::BAD_GATEWAY
        ),
        "{cause:?}"
    );
}

#[tokio::test]
async fn absurd_expires_in_values_are_refused_or_clamped() {
    let refused: &[(&str, &str)] = &[
        (r#""NaN""#, "expires_in is not a number"),
        (r#""inf""#, "expires_in is not a number"),
        (r#""1e309""#, "expires_in is not a number"),
        (r#""""#, "expires_in is not a number"),
        ("null", "expires_in is not a number"),
        ("[3600]", "expires_in is not a number"),
        (r#"{"s":3600}"#, "expires_in is not a number"),
        ("true", "expires_in is not a number"),
        ("0.5", "expires_in is not positive"),
        ("1e-300", "expires_in is not positive"),
        ("-0.0", "expires_in is not positive"),
        ("-1e300", "expires_in is not positive"),
    ];
    for (expires_in, reason) in refused {
        let body = format!(r#"{{"access_token":"t","expires_in":{expires_in}}}"#);
        let (result, _) = through_oauth2(
            token_client(StatusCode::OK, vec![], body.into_bytes()),
            quick(),
        )
        .await;
        let cause = fetch_error(result);
        assert!(
            matches!(*cause, FetchError::MalformedResponse { reason: r } if r == *reason),
            "{expires_in}: {cause:?}"
        );
    }
    // Huge but finite: believed only up to max_lifetime (24 h by default).
    for expires_in in [
        "1e300",
        "18446744073709551615",
        "1e19",
        r#""99999999999999999999""#,
    ] {
        let body = format!(r#"{{"access_token":"t","expires_in":{expires_in}}}"#);
        let (result, capture) = through_oauth2(
            token_client(StatusCode::OK, vec![], body.into_bytes()),
            quick(),
        )
        .await;
        result.unwrap_or_else(|e| panic!("{expires_in}: {e}"));
        assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer t");
    }
}

#[tokio::test]
async fn absurd_jwt_exp_claims_do_not_panic() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for exp in [
        "1e300",
        "-1",
        "18446744073709551616",
        "\"tomorrow\"",
        "null",
        "1.5",
        "0",
    ] {
        let jwt = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"none"}"#),
            b64(&format!(r#"{{"exp":{exp}}}"#))
        );
        let body = format!(r#"{{"access_token":"{jwt}","expires_in":60}}"#);
        let (result, capture) = through_oauth2(
            token_client(StatusCode::OK, vec![], body.into_bytes()),
            quick(),
        )
        .await;
        // Either the token is used (for at most its expires_in) or refused typed.
        match result {
            Ok(()) => assert!(
                capture.last().headers[AUTHORIZATION]
                    .to_str()
                    .unwrap()
                    .ends_with(".c2ln")
            ),
            Err(e) => panic!("exp {exp}: {e}"),
        }
    }
}

/// Settings at the edges of their types: a waiting request, a fetched token,
/// a failing fetch and a `Retry-After` far in the future must not overflow
/// an `Instant` (which panics) in the request future or the refresher.
#[tokio::test]
async fn absurd_refresh_settings_do_not_panic() {
    let huge = RefreshConfig::default()
        .wait_timeout(Duration::MAX)
        .fetch_timeout(Duration::MAX)
        .max_lifetime(Duration::MAX)
        .min_margin(Duration::MAX)
        .expiry_skew(Duration::MAX)
        .backoff_base(Duration::MAX)
        .backoff_cap(Duration::MAX)
        .retry_after_cap(Duration::MAX)
        .min_forced_interval(Duration::MAX);
    let nan = RefreshConfig::default()
        .margin_ratio(f64::NAN)
        .jitter_ratio(f64::NAN);
    let infinite = RefreshConfig::default()
        .margin_ratio(f64::INFINITY)
        .jitter_ratio(f64::NEG_INFINITY);
    for (name, config) in [("huge", huge), ("nan", nan), ("infinite", infinite)] {
        let body = br#"{"access_token":"t","expires_in":1e300}"#.to_vec();
        let (result, capture) =
            through_oauth2(token_client(StatusCode::OK, vec![], body), config.clone()).await;
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer t", "{name}");

        // A failing endpoint with a Retry-After of half a trillion years,
        // then a request that gives up after a short wait.
        let failing = token_client(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "18446744073709551615".to_owned())],
            b"{}".to_vec(),
        );
        let (result, _) =
            through_oauth2(failing, config.wait_timeout(Duration::from_millis(200))).await;
        assert_eq!(
            fetch_error(result).status(),
            Some(StatusCode::TOO_MANY_REQUESTS),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_401_expired_with_an_endless_min_forced_interval_does_not_panic() {
    let fetches = Arc::new(AtomicU64::new(0));
    let count = fetches.clone();
    let source = source_fn(move |_| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Token::new(format!("t{n}"), Duration::from_secs(3600))) }
    });
    let answers = tower::service_fn(|_request: Request<Full<Bytes>>| async {
        let mut response = Response::new(Full::<Bytes>::default());
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer error=\"invalid_token\", error_description=\"Jwt expired\"",
            ),
        );
        Ok::<_, Infallible>(response)
    });
    let service = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .refresh(
            RefreshConfig::default()
                .min_forced_interval(Duration::MAX)
                .wait_timeout(Duration::from_millis(200)),
        )
        .build()
        .unwrap()
        .layer(answers);
    // The answer is 401 `expired`: the token is cleared and the resend waits
    // for a refetch held back "forever", so it fails typed; nothing panics.
    let error = service.clone().oneshot(get(URL)).await.unwrap_err();
    assert!(
        matches!(
            error,
            ServiceError::Auth(AuthError::TokenUnavailable { .. })
        ),
        "{error:?}"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[test]
fn empty_secrets_are_configuration_errors_naming_the_field() {
    assert_eq!(
        AccessKey::new("p", "k", "").unwrap_err(),
        ConfigError::EmptyField {
            field: "key secret"
        }
    );
    for secret in ["", "=", "===="] {
        let error = ApplicationCredentials::new("app", secret).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::EmptyField {
                    field: "application secret"
                } | ConfigError::InvalidSecretEncoding {
                    field: "application secret"
                }
            ),
            "{secret:?}: {error:?}"
        );
    }
    assert_eq!(
        ServicePlan::new("plan", "").unwrap_err(),
        ConfigError::EmptyField { field: "API token" }
    );
    assert_eq!(
        BearerToken::new("").unwrap_err(),
        ConfigError::EmptyField {
            field: "bearer token"
        }
    );
    // RFC 7617 allows an empty password; it is the user name that may not be empty.
    assert!(BasicCredentials::new("user", "").is_ok());
    assert!(BasicCredentials::new("", "pw").is_err());
    for var in [
        "SINCH_KEY_SECRET",
        "SINCH_APPLICATION_SECRET",
        "SINCH_API_TOKEN",
    ] {
        let error = EnvCredentials::from_lookup(|name| {
            let value = match name {
                n if n == var => "",
                "SINCH_PROJECT_ID" => "p",
                "SINCH_KEY_ID" => "k",
                "SINCH_KEY_SECRET" => "s",
                "SINCH_APPLICATION_KEY" => "a",
                "SINCH_APPLICATION_SECRET" => "c2VjcmV0",
                "SINCH_SERVICE_PLAN_ID" => "plan",
                "SINCH_API_TOKEN" => "token",
                _ => return None,
            };
            Some(value.into())
        })
        .unwrap_err();
        assert_eq!(
            error,
            ConfigError::InvalidEnvVar {
                name: var,
                reason: "is empty"
            }
        );
    }
}

#[test]
fn verifiers_with_an_empty_secret_fail_closed() {
    // With an empty key anyone can compute the HMAC: such a verifier must
    // accept nothing, however well "signed".
    let body = b"{}";
    let (parts, ()) = Request::post("/numbers")
        .header("x-sinch-signature", numbers_signature("", body))
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        NumbersVerifier::new("").verify(&parts, body),
        Err(Rejection::EmptySecret)
    );
    let (parts, ()) = Request::post("/webhook")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature("", body, "n", "1"),
        )
        .header("x-sinch-webhook-signature-nonce", "n")
        .header("x-sinch-webhook-signature-timestamp", "1")
        .body(())
        .unwrap()
        .into_parts();
    let verifier = WebhookVerifier::new("").freshness(Freshness::disabled());
    assert_eq!(verifier.verify(&parts, body), Err(Rejection::EmptySecret));
    assert!(Rejection::EmptySecret.to_string().contains("empty"));
}

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new("app-b", "YXBwLXNlY3JldC1i").unwrap()
}

const TS: &str = "2024-01-01T00:00:00.000Z";

fn ts() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
}

#[test]
fn non_utf8_bodies_sign_and_verify_and_non_ascii_headers_are_malformed() {
    let body: Vec<u8> = (0..=255u8).rev().collect();
    let signed = application::sign(
        &app(),
        &http::Method::POST,
        "/calls",
        "application/octet-stream",
        &body,
        TS,
    )
    .unwrap();
    let (parts, ()) = Request::post("/calls")
        .header(CONTENT_TYPE, "application/octet-stream")
        .header("x-timestamp", signed.timestamp)
        .header(AUTHORIZATION, signed.authorization)
        .body(())
        .unwrap()
        .into_parts();
    let verifier = ApplicationVerifier::new(app()).clock(ManualClock::new(ts()));
    assert!(verifier.verify(&parts, &body).is_ok());

    let webhook = WebhookVerifier::new("w").freshness(Freshness::disabled());
    let numbers = NumbersVerifier::new("n");
    let (parts, ()) = Request::post("/h")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature("w", &body, "n", "1"),
        )
        .header("x-sinch-webhook-signature-nonce", "n")
        .header("x-sinch-webhook-signature-timestamp", "1")
        .header("x-sinch-signature", numbers_signature("n", &body))
        .body(())
        .unwrap()
        .into_parts();
    assert!(webhook.verify(&parts, &body).is_ok());
    assert!(numbers.verify(&parts, &body).is_ok());

    // obs-text (bytes ≥ 0x80) is legal in an http header value, not in these.
    for name in [
        "x-sinch-webhook-signature",
        "x-sinch-webhook-signature-nonce",
        "x-sinch-webhook-signature-timestamp",
        "x-sinch-signature",
    ] {
        let mut parts = parts.clone();
        parts
            .headers
            .insert(name, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        let verifier: &dyn Verifier = if name == "x-sinch-signature" {
            &numbers
        } else {
            &webhook
        };
        assert!(
            matches!(
                verifier.verify(&parts, &body),
                Err(Rejection::MalformedHeader {
                    reason: "not visible ASCII",
                    ..
                })
            ),
            "{name}"
        );
    }
    let mut parts = parts;
    parts.headers.insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Application app-b:\xc3\xa9").unwrap(),
    );
    parts
        .headers
        .insert("x-timestamp", HeaderValue::from_static(TS));
    assert!(matches!(
        verifier.verify(&parts, &body),
        Err(Rejection::MalformedHeader { .. })
    ));
    parts.headers.insert(
        "x-timestamp",
        HeaderValue::from_bytes(b"2024-01-01T00:00:00\xff").unwrap(),
    );
    parts.headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Application app-b:x"),
    );
    assert!(matches!(
        verifier.verify(&parts, &body),
        Err(Rejection::MalformedHeader { .. })
    ));
}

#[test]
fn huge_bodies_sign_and_verify_in_the_pure_functions() {
    // The schemes have no limit of their own (the adapters do): 32 MiB of
    // body, signed and verified.
    let body = vec![0xa5u8; 32 * 1024 * 1024];
    let signed = application::sign(&app(), &http::Method::PUT, "/big", "", &body, TS).unwrap();
    let (parts, ()) = Request::put("/big")
        .header("x-timestamp", signed.timestamp)
        .header(AUTHORIZATION, signed.authorization)
        .body(())
        .unwrap()
        .into_parts();
    let verifier = ApplicationVerifier::new(app()).clock(ManualClock::new(ts()));
    assert!(verifier.verify(&parts, &body).is_ok());
    let mut tampered = body;
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(
        verifier.verify(&parts, &tampered),
        Err(Rejection::SignatureMismatch)
    );
}

/// A body that claims a size and yields chunks forever, recording whether
/// anyone read it.
struct Endless {
    claimed: Option<u64>,
    polled: Arc<AtomicBool>,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polled.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &[b'x'; 64 * 1024],
        )))))
    }

    fn size_hint(&self) -> SizeHint {
        match self.claimed {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[tokio::test]
async fn signing_refuses_bodies_over_the_limit_with_a_clear_error_and_never_buffers_them_whole() {
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(app()))
        .scheme(Scheme::ApplicationSigned)
        .build()
        .unwrap()
        .layer(capture.service());
    let limit = 10 * 1024 * 1024;
    let over = Request::post("https://calling.api.sinch.com/calling/v1/callouts")
        .body(Full::new(Bytes::from(vec![b'a'; limit + 1])))
        .unwrap();
    let error = service.clone().oneshot(over).await.unwrap_err();
    let ServiceError::Auth(error @ AuthError::BodyTooLarge { limit: 10_485_760 }) = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        error.to_string(),
        "request body exceeds the 10485760-byte limit for signing"
    );
    assert!(capture.all().is_empty());

    // A body declaring 1 TiB is refused before a byte is read; an endless
    // stream without a declared size is cut off at the limit.
    let hyper_like = SinchAuthLayer::builder(StaticCredentials::new(app()))
        .scheme(Scheme::ApplicationSigned)
        .max_body_bytes(1024 * 1024)
        .build()
        .unwrap();
    for claimed in [Some(1u64 << 40), None] {
        let polled = Arc::new(AtomicBool::new(false));
        let body = Endless {
            claimed,
            polled: polled.clone(),
        }
        .boxed_unsync();
        let inner = tower::service_fn(
            |_: Request<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>>| async {
                Ok::<_, Infallible>(Response::new(()))
            },
        );
        let request = Request::post("https://calling.api.sinch.com/calling/v1/callouts")
            .body(body)
            .unwrap();
        let error = hyper_like.layer(inner).oneshot(request).await.unwrap_err();
        assert!(
            matches!(
                error,
                ServiceError::Auth(AuthError::BodyTooLarge { limit: 1_048_576 })
            ),
            "{claimed:?}: {error:?}"
        );
        assert_eq!(
            polled.load(Ordering::SeqCst),
            claimed.is_none(),
            "{claimed:?}"
        );
    }
}

#[tokio::test]
async fn verification_refuses_bodies_over_the_limit_with_413_without_reading_them_whole() {
    let reached = Arc::new(AtomicU64::new(0));
    let count = reached.clone();
    let inner = tower::service_fn(move |_request: Request<Full<Bytes>>| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
    });
    let service = VerifyLayer::new(NumbersVerifier::new("n")).layer(inner);
    let at_limit = vec![b'x'; DEFAULT_BODY_LIMIT];
    let request = Request::post("/numbers")
        .header("x-sinch-signature", numbers_signature("n", &at_limit))
        .body(Full::new(Bytes::from(at_limit)))
        .unwrap();
    assert_eq!(
        service.clone().oneshot(request).await.unwrap().status(),
        200
    );
    let over = vec![b'x'; DEFAULT_BODY_LIMIT + 1];
    let request = Request::post("/numbers")
        .header("x-sinch-signature", numbers_signature("n", &over))
        .body(Full::new(Bytes::from(over)))
        .unwrap();
    assert_eq!(
        service.clone().oneshot(request).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let request = Request::post("/numbers")
        .header(CONTENT_LENGTH, "10000000000000")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        service.clone().oneshot(request).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    // An endless stream is cut off at the limit.
    let polled = Arc::new(AtomicBool::new(false));
    let endless = VerifyLayer::new(NumbersVerifier::new("n")).layer(tower::service_fn(
        |_request: Request<axum::body::Body>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        },
    ));
    // A signature header, so the head passes and the body is read (unsigned
    // requests are refused before any body is read).
    let request = Request::post("/numbers")
        .header("x-sinch-signature", "0".repeat(40))
        .body(axum::body::Body::new(Endless {
            claimed: None,
            polled: polled.clone(),
        }))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), endless.oneshot(request))
        .await
        .expect("the read stops at the limit")
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(polled.load(Ordering::SeqCst));
}

#[tokio::test]
async fn token_answers_of_unbounded_size_are_cut_off_at_the_limit() {
    let polled = Arc::new(AtomicBool::new(false));
    let flag = polled.clone();
    let endless = TokenHttpClient::new(tower::service_fn(move |_request: Request<Full<Bytes>>| {
        let body = Endless {
            claimed: None,
            polled: flag.clone(),
        };
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }));
    let (result, _) = through_oauth2(endless, quick()).await;
    let cause = fetch_error(result);
    assert!(
        matches!(*cause, FetchError::ResponseTooLarge { limit: 65_536 }),
        "{cause:?}"
    );
    assert!(polled.load(Ordering::SeqCst));

    // A declared Content-Length over the limit is refused before reading.
    let declared = token_client(
        StatusCode::OK,
        vec![("content-length", "99999999999".to_owned())],
        b"{}".to_vec(),
    );
    let (result, _) = through_oauth2(declared, quick()).await;
    assert!(matches!(
        *fetch_error(result),
        FetchError::ResponseTooLarge { .. }
    ));
}

#[test]
fn basic_credentials_of_any_length_encode_without_panicking() {
    // RFC 7617 allows an empty user id or password; the header is still
    // `Basic base64(user ":" password)`.
    for (user, password, expected) in [
        ("", "secret", "Basic OnNlY3JldA=="),
        ("user", "", "Basic dXNlcjo="),
        ("", "", "Basic Og=="),
        (
            "k",
            "a-much-longer-password",
            "Basic azphLW11Y2gtbG9uZ2VyLXBhc3N3b3Jk",
        ),
    ] {
        let value = sinch_auth::scheme::basic(user, password);
        assert_eq!(value, expected, "{user:?} {password:?}");
        assert!(value.is_sensitive());
    }
}

/// Any size: 0, 1, `usize::MAX`, and everything between.
fn any_size() -> impl proptest::strategy::Strategy<Value = usize> {
    use proptest::prelude::*;
    prop_oneof![
        Just(0),
        Just(1),
        Just(usize::MAX),
        0usize..100_000,
        any::<usize>()
    ]
}

/// Any wall-clock reading a clock can be set to: the epoch, now, far ahead.
fn any_time() -> impl proptest::strategy::Strategy<Value = SystemTime> {
    use proptest::prelude::*;
    prop_oneof![
        Just(SystemTime::UNIX_EPOCH),
        Just(ts()),
        (0u64..(1u64 << 40)).prop_map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Every public setting that takes a `Duration` or a size, at any value,
    /// with input at any time: the verifiers' freshness windows, grace periods
    /// and replay capacities, the test clock, registration-token lifetimes.
    /// Nothing panics; a genuine request is accepted or refused typed, and a
    /// replay of an accepted one is refused.
    #[test]
    fn duration_and_size_settings_at_any_value_never_panic_the_verifiers(
        max_age in common::any_duration(),
        max_ahead in common::any_duration(),
        grace in common::any_duration(),
        capacity in any_size(),
        now in any_time(),
        skew in common::any_duration(),
        signed_ahead in proptest::prelude::any::<bool>(),
        advance in common::any_duration(),
    ) {
        let clock = ManualClock::new(now);
        let signed_at = if signed_ahead {
            sinch_auth::clock::saturating_add(now, skew)
        } else {
            now.checked_sub(skew).unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let seconds = signed_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let body = b"{\"event\":\"x\"}";
        let (parts, ()) = Request::post("/webhook")
            .header("x-sinch-webhook-signature", webhook_signature("w", body, "nonce1", &seconds))
            .header("x-sinch-webhook-signature-nonce", "nonce1")
            .header("x-sinch-webhook-signature-timestamp", seconds.as_str())
            .body(())
            .unwrap()
            .into_parts();
        let webhook = WebhookVerifier::new("w")
            .freshness(Freshness::new(max_age, max_ahead))
            .grace_period(grace)
            .replay_protection(capacity)
            .clock(clock.clone());
        if webhook.verify(&parts, body).is_ok() {
            let replayed = matches!(webhook.verify(&parts, body), Err(Rejection::Replayed { .. }));
            proptest::prop_assert!(replayed, "a replay of an accepted webhook is refused");
        }

        let stamp = application::format_timestamp(signed_at);
        if let Ok(signed) =
            application::sign(&app(), &http::Method::POST, "/calls", "application/json", body, &stamp)
        {
            let (parts, ()) = Request::post("/calls")
                .header(CONTENT_TYPE, "application/json")
                .header("x-timestamp", signed.timestamp)
                .header(AUTHORIZATION, signed.authorization)
                .body(())
                .unwrap()
                .into_parts();
            let verifier = ApplicationVerifier::new(app())
                .freshness(Freshness::new(max_age, max_ahead))
                .grace_period(grace)
                .replay_protection(capacity)
                .clock(clock.clone());
            if verifier.verify(&parts, body).is_ok() {
                proptest::prop_assert!(verifier.verify(&parts, body).is_err());
            }
        }
        let numbers = NumbersVerifier::new("n").grace_period(grace).clock(clock.clone());
        let (parts, ()) = Request::post("/numbers")
            .header("x-sinch-signature", numbers_signature("n", body))
            .body(())
            .unwrap()
            .into_parts();
        proptest::prop_assert!(numbers.verify(&parts, body).is_ok());

        // The test clock and the registration token's lifetime.
        clock.advance(advance);
        clock.advance(Duration::MAX);
        let _ = sinch_auth::scheme::rtc::user_token(&app(), "user", sinch_auth::clock::Clock::now(&clock))
            .ttl(advance)
            .issue();
    }
}
