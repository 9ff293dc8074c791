//! Rejections are logged with their reason and without any secret; Debug of
//! every public type holding a secret redacts it.

mod common;

use common::LogBuffer;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use secrecy::ExposeSecret;
use sinch_auth::ApplicationCredentials;
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application::{self, format_timestamp, sign};
use sinch_auth::scheme::rtc;
use sinch_auth::verify::{
    ApplicationVerifier, NumbersVerifier, Verifier, VerifyLayer, WebhookVerifier,
    numbers_signature, webhook_signature,
};
use tower::{Layer as _, ServiceExt as _};

const APP_KEY: &str = "leak-test-app";
// base64 of "decoded-app-secret"
const APP_SECRET: &str = "ZGVjb2RlZC1hcHAtc2VjcmV0";
const APP_SECRET_DECODED: &str = "decoded-app-secret";
const WEBHOOK_SECRET: &str = "webhook-secret-do-not-log";
const NUMBERS_SECRET: &str = "numbers-secret-do-not-log";
const NOW: u64 = 1_700_000_000;

const SECRETS: [&str; 4] = [
    APP_SECRET,
    APP_SECRET_DECODED,
    WEBHOOK_SECRET,
    NUMBERS_SECRET,
];

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap()
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

async fn status_of<V: Verifier>(verifier: V, request: Request<Full<Bytes>>) -> StatusCode {
    let service = VerifyLayer::new(verifier).layer(tower::service_fn(
        |_request: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
        },
    ));
    service.oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn rejections_are_logged_with_a_reason_and_without_secrets_or_expected_signatures() {
    let (logs, _guard) = LogBuffer::capture();
    let mut expected_signatures = Vec::new();

    // Application scheme: signed for one body, sent with another.
    let timestamp = format_timestamp(now());
    let signed = sign(
        &app(),
        &http::Method::POST,
        "/voice",
        "application/json",
        b"{\"a\":1}",
        &timestamp,
    )
    .unwrap();
    let real = sign(
        &app(),
        &http::Method::POST,
        "/voice",
        "application/json",
        b"{\"a\":2}",
        &timestamp,
    )
    .unwrap();
    expected_signatures.push(
        real.authorization
            .to_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned(),
    );
    let request = Request::post("/voice")
        .header("content-type", "application/json")
        .header("x-timestamp", signed.timestamp)
        .header("authorization", signed.authorization)
        .body(Full::new(Bytes::from_static(b"{\"a\":2}")))
        .unwrap();
    let verifier = ApplicationVerifier::new(app())
        .clock(ManualClock::new(now()))
        .allow_basic();
    assert_eq!(status_of(verifier, request).await, StatusCode::UNAUTHORIZED);

    // Basic with a wrong secret.
    let request = Request::post("/verification")
        .header("authorization", sinch_auth::scheme::basic(APP_KEY, "wrong"))
        .body(Full::default())
        .unwrap();
    let verifier = ApplicationVerifier::new(app()).allow_basic();
    assert_eq!(status_of(verifier, request).await, StatusCode::UNAUTHORIZED);

    // Webhook: tampered body.
    let ts = NOW.to_string();
    expected_signatures.push(webhook_signature(WEBHOOK_SECRET, b"tampered", "n", &ts));
    let request = Request::post("/conversation")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(WEBHOOK_SECRET, b"original", "n", &ts),
        )
        .header("x-sinch-webhook-signature-nonce", "n")
        .header("x-sinch-webhook-signature-timestamp", ts.as_str())
        .body(Full::new(Bytes::from_static(b"tampered")))
        .unwrap();
    let verifier = WebhookVerifier::new(WEBHOOK_SECRET).clock(ManualClock::new(now()));
    assert_eq!(status_of(verifier, request).await, StatusCode::UNAUTHORIZED);

    // Numbers: wrong signature.
    expected_signatures.push(numbers_signature(NUMBERS_SECRET, b"{}"));
    let request = Request::post("/numbers")
        .header("x-sinch-signature", "0".repeat(40))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        status_of(NumbersVerifier::new(NUMBERS_SECRET), request).await,
        StatusCode::UNAUTHORIZED
    );

    let text = logs.text();
    assert_eq!(text.matches("signature mismatch").count(), 3, "{text}");
    assert!(text.contains("Basic credentials do not match"), "{text}");
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log:\n{text}"
        );
    }
    for signature in expected_signatures {
        assert!(
            !text.contains(&signature),
            "expected signature {signature} leaked:\n{text}"
        );
    }
}

#[test]
fn debug_of_every_type_holding_a_secret_shows_none() {
    let clock = ManualClock::new(now());
    let application_verifier = ApplicationVerifier::new(app())
        .allow_basic()
        .clock(clock.clone())
        .replay_protection(10);
    let webhook_verifier = WebhookVerifier::new(WEBHOOK_SECRET).replay_protection(10);
    let numbers_verifier = NumbersVerifier::new(NUMBERS_SECRET);
    let app = app();
    let signed = sign(&app, &http::Method::POST, "/", "", b"", "t").unwrap();
    let basic_header = application::basic(&app);
    let token_builder = rtc::user_token(&app, "alice", now());
    let token = rtc::user_token(&app, "alice", now()).issue().unwrap();
    let layer = VerifyLayer::new(WebhookVerifier::new(WEBHOOK_SECRET));
    let service = VerifyLayer::new(NumbersVerifier::new(NUMBERS_SECRET)).layer(());

    let debug = [
        format!("{application_verifier:?} {application_verifier:#?}"),
        format!("{webhook_verifier:?} {webhook_verifier:#?}"),
        format!("{numbers_verifier:?}"),
        format!("{app:?}"),
        format!("{signed:?}"),
        format!("{basic_header:?}"),
        format!("{token_builder:?}"),
        format!("{token:?}"),
        format!("{layer:?}"),
        format!("{service:?}"),
    ];
    let basic_token = basic_header
        .to_str()
        .unwrap()
        .trim_start_matches("Basic ")
        .to_owned();
    let signature = signed
        .authorization
        .to_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let token_text = token.expose_secret().to_owned();
    for text in &debug {
        for secret in SECRETS.iter().copied().chain([
            basic_token.as_str(),
            signature.as_str(),
            token_text.as_str(),
        ]) {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
    // Not vacuous: the non-secret parts are there.
    assert!(debug[0].contains(APP_KEY));
    assert!(debug[6].contains("alice"));
}

#[tokio::test(start_paused = true)]
async fn the_layers_debug_says_whether_it_holds_a_token_never_the_token() {
    use sinch_auth::token::{Token, source_fn};
    use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
    const TOKEN: &str = "token-value-do-not-log";
    let layer = SinchAuthLayer::builder(StaticCredentials::new(
        AccessKey::new("proj", "key-id", "KEY-SECRET-debug").unwrap(),
    ))
    .scheme(Scheme::OAuth2)
    .token_source(source_fn(|_| async {
        Ok(Token::new(TOKEN, Duration::from_secs(3600)))
    }))
    .build()
    .unwrap();
    let before = format!("{layer:?}");
    assert!(before.contains("has_token: false"), "{before}");
    let service = layer
        .clone()
        .layer(tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let request = Request::get("https://numbers.api.sinch.com/v1/projects/proj/activeNumbers")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(
        service.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    for shown in [format!("{layer:?}"), format!("{layer:#?}")] {
        assert!(shown.contains("has_token: true"), "{shown}");
        assert!(
            !shown.contains(TOKEN) && !shown.contains("KEY-SECRET-debug"),
            "{shown}"
        );
    }
}
