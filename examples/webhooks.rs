//! Verifying Sinch callbacks in an axum server, offline.
//!
//! Starts a server on 127.0.0.1 with one route per kind of callback, sends it
//! signed, tampered, stale and replayed requests, and prints each verdict.
//! The reasons for rejections appear in the log (stderr), never to the caller.
//!
//! `cargo run --example webhooks`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Extension;
use axum::routing::post;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sinch_auth::ApplicationCredentials;
use sinch_auth::scheme::application;
use sinch_auth::verify::{
    ApplicationVerifier, NumbersVerifier, Verified, VerifyLayer, WebhookVerifier,
    numbers_signature, webhook_signature,
};

// Demo values. In a real service they come from the Sinch dashboard, via the environment.
const APP_KEY: &str = "demo-app";
const APP_SECRET: &str = "ZGVtby1hcHAtc2VjcmV0";
const WEBHOOK_SECRET: &str = "demo-webhook-secret";
const NUMBERS_SECRET: &str = "demo-numbers-secret";

/// The handler sees exactly the bytes that were verified, and what was verified.
async fn handler(Extension(verified): Extension<Verified>, body: Bytes) -> String {
    let what = match verified {
        Verified::Application { key, .. } => format!("signed by application {key}"),
        Verified::Webhook { nonce, .. } => format!("webhook with nonce {nonce}"),
        Verified::Numbers { .. } => "Numbers callback".to_owned(),
        other => format!("{other:?}"),
    };
    format!("accepted {} bytes: {what}", body.len())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let app = || ApplicationCredentials::new(APP_KEY, APP_SECRET);

    let router = Router::new()
        .route(
            "/voice",
            post(handler).layer(VerifyLayer::new(
                ApplicationVerifier::new(app()?).replay_protection(10_000),
            )),
        )
        .route(
            "/conversation",
            post(handler).layer(VerifyLayer::new(
                WebhookVerifier::new(WEBHOOK_SECRET).replay_protection(10_000),
            )),
        )
        .route(
            "/numbers",
            post(handler).layer(VerifyLayer::new(NumbersVerifier::new(NUMBERS_SECRET))),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let now = SystemTime::now();
    let ten_minutes_ago = now - Duration::from_secs(600);

    // Voice: the application scheme, as Sinch signs callbacks.
    let voice =
        |body: &'static str, signed_at: SystemTime| -> Result<_, Box<dyn std::error::Error>> {
            let timestamp = application::format_timestamp(signed_at);
            let signed = application::sign(
                &app()?,
                &http::Method::POST,
                "/voice",
                "application/json",
                body.as_bytes(),
                &timestamp,
            )?;
            Ok(Request::post(format!("{base}/voice"))
                .header("content-type", "application/json")
                .header("x-timestamp", signed.timestamp)
                .header("authorization", signed.authorization))
        };
    // Conversation/SMS webhooks.
    let conversation = |body: &'static str, nonce: &str, signed_at: SystemTime| {
        let timestamp = signed_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        Request::post(format!("{base}/conversation"))
            .header(
                "x-sinch-webhook-signature",
                webhook_signature(WEBHOOK_SECRET, body.as_bytes(), nonce, &timestamp),
            )
            .header("x-sinch-webhook-signature-nonce", nonce)
            .header("x-sinch-webhook-signature-timestamp", timestamp)
            .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
    };
    // Numbers callbacks.
    let numbers = |body: &'static str| {
        Request::post(format!("{base}/numbers")).header(
            "x-sinch-signature",
            numbers_signature(NUMBERS_SECRET, body.as_bytes()),
        )
    };

    let ice = r#"{"event":"ice","callid":"c-1"}"#;
    let message = r#"{"message":{"text":"hello"}}"#;
    let event = r#"{"eventId":"e-1","status":"SUCCEEDED"}"#;
    let cases = [
        ("voice, signed", voice(ice, now)?, ice),
        (
            "voice, tampered",
            voice(ice, now)?,
            r#"{"event":"ice","callid":"c-2"}"#,
        ),
        ("voice, stale", voice(ice, ten_minutes_ago)?, ice),
        ("voice, replayed", voice(ice, now)?, ice),
        (
            "conversation, signed",
            conversation(message, "n-1", now),
            message,
        ),
        (
            "conversation, tampered",
            conversation(message, "n-2", now),
            r#"{"message":{"text":"bye"}}"#,
        ),
        (
            "conversation, stale",
            conversation(message, "n-3", ten_minutes_ago),
            message,
        ),
        (
            "conversation, replayed",
            conversation(message, "n-1", now),
            message,
        ),
        ("numbers, signed", numbers(event), event),
        (
            "numbers, tampered",
            numbers(event),
            r#"{"eventId":"e-1","status":"FAILED"}"#,
        ),
    ];

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for (label, request, body) in cases {
        let response = client
            .request(request.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status();
        let answer = http_body_util::BodyExt::collect(response.into_body())
            .await?
            .to_bytes();
        println!(
            "{label:<24} -> {status} {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}
