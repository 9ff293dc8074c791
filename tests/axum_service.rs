//! An axum service on 127.0.0.1 holding authenticated clients in its state:
//! its handlers call Sinch (the loopback stand-in), and the same router
//! verifies Sinch's callbacks, sent by a plain hyper-util client.
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sinch_auth::integration::axum::VerifiedCallback;
use sinch_auth::scheme::application::{format_timestamp, sign};
use sinch_auth::testkit::{SinchStandIn, StandInClient};
use sinch_auth::verify::{
    ApplicationVerifier, Verified, VerifyLayer, WebhookVerifier, webhook_signature,
};
use sinch_auth::{
    AccessKey, ApplicationCredentials, Scheme, SinchAuth, SinchAuthLayer, StaticCredentials,
};
use tower::{ServiceBuilder, ServiceExt as _};

const APP_KEY: &str = "app-ax";
const APP_SECRET: &str = "YXh1bS1zZXJ2aWNlLXNlY3JldA==";
const WEBHOOK_SECRET: &str = "WEBHOOK-SECRET-ax";

fn access_key() -> AccessKey {
    AccessKey::new("proj-ax", "key-ax", "KEY-SECRET-ax").unwrap()
}

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap()
}

type Seen = Arc<Mutex<Vec<(Verified, Bytes)>>>;

/// The service's state: cloned for every request, so everything in it is
/// cheap to clone and shares what matters (tokens, the refresher).
#[derive(Clone)]
struct App {
    /// OAuth2, for Numbers.
    numbers: SinchAuth<StandInClient>,
    /// Application-signed, for Voice.
    voice: SinchAuth<StandInClient>,
    sinch_url: String,
    seen: Seen,
}

type Answer = (StatusCode, String);

async fn relay(
    client: SinchAuth<StandInClient>,
    request: Request<Full<Bytes>>,
) -> Result<Answer, Answer> {
    let bad_gateway = |e: &dyn std::fmt::Display| (StatusCode::BAD_GATEWAY, e.to_string());
    let response = client.oneshot(request).await.map_err(|e| bad_gateway(&e))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| bad_gateway(&e))?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// An authenticated GET to Sinch from a handler.
async fn list_numbers(State(app): State<App>) -> Result<Answer, Answer> {
    let url = format!("{}/v1/projects/proj-ax/activeNumbers", app.sinch_url);
    let request = Request::get(url).body(Full::default()).unwrap();
    relay(app.numbers, request).await
}

/// An application-signed POST to Sinch carrying the body the handler received.
async fn place_callout(State(app): State<App>, body: Bytes) -> Result<Answer, Answer> {
    let url = format!("{}/calling/v1/callouts", app.sinch_url);
    let request = Request::post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .unwrap();
    relay(app.voice, request).await
}

async fn callback(
    State(app): State<App>,
    VerifiedCallback(verified): VerifiedCallback,
    body: Bytes,
) -> Bytes {
    app.seen.lock().unwrap().push((verified, body.clone()));
    body
}

struct Harness {
    addr: SocketAddr,
    sinch: SinchStandIn,
    seen: Seen,
    plain: Client<HttpConnector, Full<Bytes>>,
}

async fn start() -> Harness {
    let sinch = SinchStandIn::builder()
        .access_key(&access_key())
        .application(&app())
        .start()
        .await
        .unwrap();
    let client = |scheme: Scheme| {
        let credentials = sinch_auth::Credentials::builder()
            .access_key(access_key())
            .application(app())
            .build();
        let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials))
            .scheme(scheme)
            .auth_host(&sinch.url())
            .build()
            .unwrap();
        ServiceBuilder::new().layer(layer).service(sinch.client())
    };
    let seen = Seen::default();
    let state = App {
        numbers: client(Scheme::OAuth2),
        voice: client(Scheme::ApplicationSigned),
        sinch_url: sinch.url(),
        seen: seen.clone(),
    };
    let router = Router::new()
        .route("/numbers", get(list_numbers))
        .route("/callouts", post(place_callout))
        .route(
            "/sinch/voice",
            post(callback).layer(VerifyLayer::new(ApplicationVerifier::new(app()))),
        )
        .route(
            "/sinch/sms",
            post(callback).layer(VerifyLayer::new(WebhookVerifier::new(WEBHOOK_SECRET))),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Harness {
        addr,
        sinch,
        seen,
        plain: Client::builder(TokioExecutor::new()).build_http(),
    }
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request to the axum service with a plain client.
    async fn send(&self, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
        let response = self.plain.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let request = Request::get(self.url(path)).body(Full::default()).unwrap();
        let (status, body) = self.send(request).await;
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn seen(&self) -> Vec<(Verified, Bytes)> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn the_authenticated_client_is_fit_for_axum_state() {
    fn state<T: Clone + Send + Sync + 'static>() {}
    state::<SinchAuth<StandInClient>>();
    state::<App>();
}

#[tokio::test]
async fn handlers_call_sinch_authenticated_sharing_one_token() {
    let harness = start().await;
    // Five at once on a cold cache: one token fetch serves them all.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (plain, url) = (harness.plain.clone(), harness.url("/numbers"));
        burst.spawn(async move {
            let response = plain.get(url.parse().unwrap()).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        });
    }
    while let Some(answer) = burst.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("oauth2:key-ax"), "{body}");
    }
    for _ in 0..3 {
        let (status, body) = harness.get("/numbers").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("oauth2:key-ax"), "{body}");
    }
    assert_eq!(harness.sinch.api_accepted(), 8);
    assert_eq!(harness.sinch.token_requests(), 1);
}

#[tokio::test]
async fn a_401_expired_from_sinch_is_absorbed_by_one_refresh_and_resend() {
    let harness = start().await;
    assert_eq!(harness.get("/numbers").await.0, StatusCode::OK);
    harness.sinch.answer_expired_next(1);
    let (status, body) = harness.get("/numbers").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(harness.sinch.token_requests(), 2);
    assert_eq!(harness.sinch.api_rejected(), 1);
}

#[tokio::test]
async fn a_handler_forwards_its_request_body_to_sinch_signed() {
    let harness = start().await;
    let body = r#"{"method":"ttsCallout","ttsCallout":{"destination":{"type":"number","endpoint":"+46700000000"}}}"#;
    let request = Request::post(harness.url("/callouts"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let (status, answer) = harness.send(request).await;
    assert_eq!(status, StatusCode::OK, "{answer:?}");
    let received = harness.sinch.last_request().unwrap();
    assert_eq!(received.accepted_as.as_deref(), Some("application:app-ax"));
    assert_eq!(received.body, body);
    assert!(received.headers.contains_key("x-timestamp"));
    assert_eq!(harness.sinch.token_requests(), 0);
}

fn voice_callback(harness: &Harness, body: &'static str) -> Request<Full<Bytes>> {
    let timestamp = format_timestamp(SystemTime::now());
    let signed = sign(
        &app(),
        &Method::POST,
        "/sinch/voice",
        "application/json; charset=utf-8",
        body.as_bytes(),
        &timestamp,
    )
    .unwrap();
    Request::post(harness.url("/sinch/voice"))
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .header("x-timestamp", signed.timestamp)
        .header(AUTHORIZATION, signed.authorization)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn sms_webhook(harness: &Harness, body: &'static str, nonce: &str) -> Request<Full<Bytes>> {
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    Request::post(harness.url("/sinch/sms"))
        .header(CONTENT_TYPE, "application/json")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(WEBHOOK_SECRET, body.as_bytes(), nonce, &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn tamper(mut request: Request<Full<Bytes>>, body: &'static str) -> Request<Full<Bytes>> {
    *request.body_mut() = Full::new(Bytes::from_static(body.as_bytes()));
    request
}

const ICE: &str = "{\"event\":\"ice\",\"callid\":\"c-ax\"}\n";
const DELIVERY: &str = r#"{"type":"recipient_delivery_report_sms","status":"Delivered"}"#;

#[tokio::test]
async fn signed_callbacks_reach_their_handlers_with_the_exact_bytes() {
    let harness = start().await;
    assert_eq!(
        harness.send(voice_callback(&harness, ICE)).await,
        (StatusCode::OK, Bytes::from_static(ICE.as_bytes()))
    );
    assert_eq!(
        harness.send(sms_webhook(&harness, DELIVERY, "n-ax")).await,
        (StatusCode::OK, Bytes::from_static(DELIVERY.as_bytes()))
    );
    let seen = harness.seen();
    assert_eq!(seen.len(), 2);
    assert!(matches!(&seen[0].0, Verified::Application { key, .. } if key == APP_KEY));
    assert_eq!(seen[0].1, ICE);
    assert!(matches!(&seen[1].0, Verified::Webhook { nonce, .. } if nonce == "n-ax"));
    assert_eq!(seen[1].1, DELIVERY);
}

#[tokio::test]
async fn unsigned_and_tampered_callbacks_get_an_empty_401() {
    let harness = start().await;
    let unsigned = |path: &str| {
        Request::post(harness.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    for request in [
        unsigned("/sinch/voice"),
        unsigned("/sinch/sms"),
        // The trailing newline dropped: not the bytes that were signed.
        tamper(voice_callback(&harness, ICE), ICE.trim_end()),
        tamper(
            sms_webhook(&harness, DELIVERY, "n-1"),
            r#"{"type":"recipient_delivery_report_sms","status":"Failed"}"#,
        ),
        // Signed for the other route.
        {
            let mut request = voice_callback(&harness, ICE);
            *request.uri_mut() = harness.url("/sinch/sms").parse().unwrap();
            request
        },
    ] {
        let uri = request.uri().clone();
        assert_eq!(
            harness.send(request).await,
            (StatusCode::UNAUTHORIZED, Bytes::new()),
            "{uri}"
        );
    }
    assert!(harness.seen().is_empty());
    // The outbound side is untouched by rejected callbacks.
    assert_eq!(harness.sinch.api_requests(), 0);
}

#[tokio::test]
async fn what_the_crate_signs_going_out_its_verifier_accepts_coming_in() {
    let harness = start().await;
    // A Sinch-like sender: the application scheme through the tower layer,
    // to the axum service on loopback.
    let layer =
        SinchAuthLayer::new(StaticCredentials::new(app()), Scheme::ApplicationSigned).unwrap();
    let sender = ServiceBuilder::new()
        .layer(layer)
        .service(harness.plain.clone());
    let request = Request::post(harness.url("/sinch/voice"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(ICE.as_bytes())))
        .unwrap();
    let response = sender.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        harness
            .seen()
            .into_iter()
            .map(|(_, b)| b)
            .collect::<Vec<_>>(),
        [ICE]
    );
}
