//! The verification layer in a real axum server on 127.0.0.1, called by a real
//! hyper client: signed, tampered, stale, replayed and oversized callbacks of
//! each kind.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::routing::post;
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sinch_auth::ApplicationCredentials;
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application::{format_timestamp, sign};
use sinch_auth::verify::{
    ApplicationVerifier, NumbersVerifier, SecretUsed, Verified, VerifyLayer, WebhookVerifier,
    numbers_signature, webhook_signature,
};

const NOW: u64 = 1_700_000_000;
const APP_KEY: &str = "axum-app";
const APP_SECRET: &str = "YXh1bS1hcHAtc2VjcmV0";
const WEBHOOK_SECRET: &str = "axum-webhook-secret";
const NUMBERS_SECRET: &str = "axum-numbers-secret";
const LIMIT: usize = 4096;

type Seen = Arc<Mutex<Vec<(Verified, Bytes)>>>;

async fn record(
    State(seen): State<Seen>,
    Extension(verified): Extension<Verified>,
    body: Bytes,
) -> Bytes {
    seen.lock().unwrap().push((verified, body.clone()));
    body
}

struct Server {
    addr: SocketAddr,
    seen: Seen,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap()
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

async fn start() -> Server {
    let clock = ManualClock::new(now());
    let seen = Seen::default();
    let router = Router::new()
        .route(
            "/sinch/voice",
            post(record).layer(
                VerifyLayer::new(
                    ApplicationVerifier::new(app())
                        .clock(clock.clone())
                        .replay_protection(1000),
                )
                .body_limit(LIMIT),
            ),
        )
        .route(
            "/sinch/conversation",
            post(record).layer(
                VerifyLayer::new(
                    WebhookVerifier::new(WEBHOOK_SECRET)
                        .clock(clock.clone())
                        .replay_protection(1000),
                )
                .body_limit(LIMIT),
            ),
        )
        .route(
            "/sinch/numbers",
            post(record)
                .layer(VerifyLayer::new(NumbersVerifier::new(NUMBERS_SECRET)).body_limit(LIMIT)),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = Client::builder(TokioExecutor::new()).build_http();
    Server { addr, seen, client }
}

impl Server {
    async fn send(&self, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
        let (mut parts, body) = request.into_parts();
        parts.uri = format!("http://{}{}", self.addr, parts.uri)
            .parse()
            .unwrap();
        let response = self
            .client
            .request(Request::from_parts(parts, body))
            .await
            .unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    fn seen(&self) -> Vec<(Verified, Bytes)> {
        self.seen.lock().unwrap().clone()
    }
}

fn voice(body: &'static [u8], signed_at: SystemTime) -> Request<Full<Bytes>> {
    let timestamp = format_timestamp(signed_at);
    let headers = sign(
        &app(),
        &http::Method::POST,
        "/sinch/voice",
        "application/json",
        body,
        &timestamp,
    )
    .unwrap();
    Request::post("/sinch/voice")
        .header("content-type", "application/json")
        .header("x-timestamp", headers.timestamp)
        .header("authorization", headers.authorization)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

fn conversation(body: &'static [u8], nonce: &str, signed_at: u64) -> Request<Full<Bytes>> {
    let timestamp = signed_at.to_string();
    Request::post("/sinch/conversation")
        .header("content-type", "application/json")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(WEBHOOK_SECRET, body, nonce, &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

fn numbers(body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::post("/sinch/numbers")
        .header("x-sinch-signature", numbers_signature(NUMBERS_SECRET, body))
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

fn tamper(mut request: Request<Full<Bytes>>, body: &'static [u8]) -> Request<Full<Bytes>> {
    *request.body_mut() = Full::new(Bytes::from_static(body));
    request
}

const VOICE_BODY: &[u8] = br#"{"event":"ice","callid":"c-1"}"#;
const CONVERSATION_BODY: &[u8] = b"{\"message\":{\"text\":\"hi\"}}\n";
const NUMBERS_BODY: &[u8] = br#"{"eventId":"e-1","status":"SUCCEEDED"}"#;

#[tokio::test]
async fn signed_voice_callback_reaches_the_handler_with_the_exact_bytes() {
    let server = start().await;
    let (status, echoed) = server.send(voice(VOICE_BODY, now())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echoed, VOICE_BODY);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, VOICE_BODY);
    assert_eq!(
        seen[0].0,
        Verified::Application {
            key: APP_KEY.into(),
            timestamp: now(),
            secret: SecretUsed::Current,
        }
    );
}

#[tokio::test]
async fn tampered_stale_and_replayed_voice_callbacks_get_an_empty_401() {
    let server = start().await;
    let signed = voice(VOICE_BODY, now());
    let replay = voice(VOICE_BODY, now());
    assert_eq!(server.send(signed).await.0, StatusCode::OK);
    for request in [
        tamper(
            voice(VOICE_BODY, now()),
            br#"{"event":"ice","callid":"c-2"}"#,
        ),
        voice(VOICE_BODY, now() - Duration::from_secs(301)),
        voice(VOICE_BODY, now() + Duration::from_secs(301)),
        replay,
    ] {
        assert_eq!(
            server.send(request).await,
            (StatusCode::UNAUTHORIZED, Bytes::new())
        );
    }
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn signed_conversation_webhook_reaches_the_handler_with_the_exact_bytes() {
    let server = start().await;
    let (status, echoed) = server
        .send(conversation(CONVERSATION_BODY, "n-1", NOW))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echoed, CONVERSATION_BODY);
    assert_eq!(
        server.seen(),
        vec![(
            Verified::Webhook {
                nonce: "n-1".into(),
                timestamp: now(),
                secret: SecretUsed::Current,
            },
            Bytes::from_static(CONVERSATION_BODY)
        )]
    );
}

#[tokio::test]
async fn tampered_stale_and_replayed_webhooks_get_an_empty_401() {
    let server = start().await;
    assert_eq!(
        server
            .send(conversation(CONVERSATION_BODY, "n-1", NOW))
            .await
            .0,
        StatusCode::OK
    );
    for request in [
        // The trailing newline removed.
        tamper(
            conversation(CONVERSATION_BODY, "n-2", NOW),
            b"{\"message\":{\"text\":\"hi\"}}",
        ),
        conversation(CONVERSATION_BODY, "n-3", NOW - 3600),
        conversation(CONVERSATION_BODY, "n-1", NOW),
    ] {
        assert_eq!(
            server.send(request).await,
            (StatusCode::UNAUTHORIZED, Bytes::new())
        );
    }
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn signed_numbers_callback_is_accepted_and_tampered_one_rejected() {
    let server = start().await;
    assert_eq!(
        server.send(numbers(NUMBERS_BODY)).await,
        (StatusCode::OK, Bytes::from_static(NUMBERS_BODY))
    );
    assert_eq!(
        server
            .send(tamper(
                numbers(NUMBERS_BODY),
                br#"{"eventId":"e-1","status":"FAILED"}"#
            ))
            .await,
        (StatusCode::UNAUTHORIZED, Bytes::new())
    );
    assert_eq!(
        server.seen(),
        vec![(
            Verified::Numbers {
                secret: SecretUsed::Current
            },
            Bytes::from_static(NUMBERS_BODY)
        )]
    );
}

#[tokio::test]
async fn unsigned_requests_get_an_empty_401_on_every_route() {
    let server = start().await;
    for path in ["/sinch/voice", "/sinch/conversation", "/sinch/numbers"] {
        let request = Request::post(path)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        assert_eq!(
            server.send(request).await,
            (StatusCode::UNAUTHORIZED, Bytes::new())
        );
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn body_declared_over_the_limit_gets_413() {
    let server = start().await;
    static BIG: [u8; LIMIT + 1] = [b'x'; LIMIT + 1];
    // Correctly signed, but too large: refused before verification.
    let (status, body) = server.send(numbers(&BIG)).await;
    assert_eq!(
        (status, body),
        (StatusCode::PAYLOAD_TOO_LARGE, Bytes::new())
    );
    static AT_LIMIT: [u8; LIMIT] = [b'x'; LIMIT];
    assert_eq!(server.send(numbers(&AT_LIMIT)).await.0, StatusCode::OK);
}

/// A body of unknown length, sent chunked, so only reading it reveals its size.
struct Chunked {
    chunks: Vec<Bytes>,
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.chunks.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(Frame::data(self.chunks.remove(0)))))
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[tokio::test]
async fn chunked_body_growing_over_the_limit_gets_413() {
    let server = start().await;
    let client: Client<HttpConnector, Chunked> = Client::builder(TokioExecutor::new()).build_http();
    let chunk = Bytes::from(vec![b'y'; 1024]);
    let request = Request::post(format!("http://{}/sinch/numbers", server.addr))
        .header("x-sinch-signature", "0".repeat(40))
        .body(Chunked {
            chunks: vec![chunk; 5],
        })
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn chunked_signed_body_within_the_limit_is_verified_whole() {
    let server = start().await;
    let client: Client<HttpConnector, Chunked> = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::post(format!("http://{}/sinch/numbers", server.addr))
        .header(
            "x-sinch-signature",
            numbers_signature(NUMBERS_SECRET, NUMBERS_BODY),
        )
        .body(Chunked {
            chunks: vec![
                Bytes::from_static(&NUMBERS_BODY[..10]),
                Bytes::from_static(&NUMBERS_BODY[10..]),
            ],
        })
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server.seen(),
        vec![(
            Verified::Numbers {
                secret: SecretUsed::Current
            },
            Bytes::from_static(NUMBERS_BODY)
        )]
    );
}
