//! `cargo run --example axum_service --features axum`
//!
//! An axum service that keeps an authenticated Sinch client in its state and,
//! on the same router, verifies the callbacks Sinch sends it.
//!
//! Offline (no `SINCH_*` variables): starts the loopback Sinch stand-in and
//! the service on 127.0.0.1, calls the service's own endpoints (a handler
//! that calls Sinch; signed, unsigned and tampered callbacks), then shuts
//! the service down.
//!
//! Online (`SINCH_*` set, see the README): the handler calls real Sinch
//! (one read-only request); only statuses are printed. The callbacks still
//! come from this program, signed with demo secrets: it plays Sinch's side.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sinch_auth::integration::axum::VerifiedCallback;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::verify::{
    ApplicationVerifier, Verified, VerifyLayer, WebhookVerifier, webhook_signature,
};
use sinch_auth::{
    AccessKey, ApplicationCredentials, EnvCredentials, Scheme, SinchAuth, SinchAuthLayer,
    StaticCredentials,
};
use tower::{ServiceBuilder, ServiceExt as _};

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, read_only_urls};

// Demo callback secrets. In a real service: the Voice app's key and secret,
// and the secret set on the SMS/Conversation webhook, from the environment.
const APP_KEY: &str = "demo-app-key";
const APP_SECRET: &str = "ZGVtby1hcHAtc2VjcmV0";
const WEBHOOK_SECRET: &str = "demo-webhook-secret";

/// The state every handler gets a clone of. The client is `Clone + Send +
/// Sync`; its clones share credentials, the token cache and the refresher.
#[derive(Clone)]
struct App {
    sinch: SinchAuth<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
    /// What `GET /sinch-status` asks Sinch for.
    outbound_url: String,
}

/// Calls Sinch, authenticated, and reports the answer.
async fn sinch_status(State(app): State<App>) -> (StatusCode, String) {
    let Ok(request) = Request::get(&app.outbound_url).body(Full::default()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    match app.sinch.oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            let body = response.into_body().collect().await;
            let body = body.map(|b| b.to_bytes()).unwrap_or_default();
            (
                StatusCode::OK,
                format!("Sinch answered {status}: {} bytes", body.len()),
            )
        }
        // The error names what failed (never a secret).
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

/// Only verified callbacks get here, with the exact bytes that were signed.
async fn callback(VerifiedCallback(verified): VerifiedCallback, body: Bytes) -> String {
    let from = match verified {
        Verified::Application { key, .. } => format!("Voice, application {key}"),
        Verified::Webhook { nonce, .. } => format!("SMS webhook, nonce {nonce}"),
        other => format!("{other:?}"),
    };
    format!("{} bytes from {from}", body.len())
}

fn router(state: App) -> Result<Router, BoxError> {
    let voice = ApplicationVerifier::new(ApplicationCredentials::new(APP_KEY, APP_SECRET)?)
        .replay_protection(10_000);
    let sms = WebhookVerifier::new(WEBHOOK_SECRET).replay_protection(10_000);
    Ok(Router::new()
        .route("/sinch-status", get(sinch_status))
        .route(
            "/sinch/voice",
            post(callback).layer(VerifyLayer::new(voice)),
        )
        .route("/sinch/sms", post(callback).layer(VerifyLayer::new(sms)))
        .with_state(state))
}

/// The state: the documented hyper stack (https, or http to loopback).
fn app(layer: SinchAuthLayer, outbound_url: String) -> Result<App, BoxError> {
    let sinch = ServiceBuilder::new()
        .layer(layer)
        .service(support::https_or_http_client()?);
    Ok(App {
        sinch,
        outbound_url,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    // Kept alive for the whole run when offline.
    let mut stand_in = None;
    let state = match EnvCredentials::from_env() {
        Ok(env) => {
            println!("SINCH_* variables found: the handler calls real Sinch.\n");
            let url = read_only_urls(&env)
                .into_iter()
                .next()
                .ok_or("no credential to call Sinch with")?;
            app(SinchAuthLayer::by_host(env)?, url)?
        }
        Err(sinch_auth::ConfigError::NoCredentialsInEnv) => {
            println!("No SINCH_* variables set: the handler calls the loopback stand-in.\n");
            let key = AccessKey::new("demo-project", "demo-key-id", "demo-key-secret")?;
            let sinch = SinchStandIn::builder().access_key(&key).start().await?;
            // By-host routing knows Sinch's host names; the stand-in's
            // loopback address is routed to OAuth2 by hand.
            let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
                .auth_host(&sinch.url())
                .route(&sinch.addr().to_string(), Scheme::OAuth2)
                .build()?;
            let url = format!("{}/v1/projects/demo-project/activeNumbers", sinch.url());
            stand_in = Some(sinch);
            app(layer, url)?
        }
        Err(e) => return Err(e.into()),
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, router(state)?)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    println!("service listening on {base}\n");

    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let send = |request: Request<Full<Bytes>>| {
        let plain = plain.clone();
        async move {
            let response = plain.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, String::from_utf8_lossy(&body).into_owned()))
        }
    };

    let mut failures = 0;
    let mut expect = |label: &str, (status, body): (StatusCode, String), wanted: StatusCode| {
        println!("{label:<34} -> {status} {body}");
        if status != wanted {
            failures += 1;
        }
    };

    for i in 1..=3 {
        let request = Request::get(format!("{base}/sinch-status")).body(Full::default())?;
        expect(
            &format!("GET /sinch-status ({i})"),
            send(request).await?,
            StatusCode::OK,
        );
    }
    if let Some(sinch) = &stand_in {
        println!(
            "  (the stand-in accepted {} calls; token endpoint calls: {})",
            sinch.api_accepted(),
            sinch.token_requests()
        );
    }
    println!();

    let ice = "{\"event\":\"ice\",\"callid\":\"c-1\"}";
    let delivery = r#"{"type":"recipient_delivery_report_sms","status":"Delivered"}"#;
    let signed_voice = |body: &'static str| voice_callback(&base, body);
    let signed_sms = |body: &'static str, nonce: &str| sms_callback(&base, body, nonce);
    let cases = [
        (
            "voice callback, signed",
            signed_voice(ice)?,
            ice,
            StatusCode::OK,
        ),
        (
            "voice callback, tampered",
            signed_voice(ice)?,
            r#"{"event":"ice","callid":"c-2"}"#,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "voice callback, unsigned",
            Request::post(format!("{base}/sinch/voice")).header(CONTENT_TYPE, "application/json"),
            ice,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "sms webhook, signed",
            signed_sms(delivery, "n-1"),
            delivery,
            StatusCode::OK,
        ),
        (
            "sms webhook, tampered",
            signed_sms(delivery, "n-2"),
            r#"{"type":"recipient_delivery_report_sms","status":"Failed"}"#,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "sms webhook, replayed",
            signed_sms(delivery, "n-1"),
            delivery,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (label, request, body, wanted) in cases {
        let request = request.body(Full::new(Bytes::from_static(body.as_bytes())))?;
        expect(label, send(request).await?, wanted);
    }
    println!("(why each callback was refused is in the log on stderr, not in the answer)");

    let _ = stop.send(());
    server.await??;
    println!("\nservice stopped");
    if failures > 0 {
        return Err(format!("{failures} answers were not as expected").into());
    }
    Ok(())
}

/// A Voice callback, signed as Sinch signs them (protocol notes §4).
fn voice_callback(base: &str, body: &'static str) -> Result<http::request::Builder, BoxError> {
    let app = ApplicationCredentials::new(APP_KEY, APP_SECRET)?;
    let timestamp = sinch_auth::scheme::application::format_timestamp(SystemTime::now());
    let signed = sinch_auth::scheme::application::sign(
        &app,
        &http::Method::POST,
        "/sinch/voice",
        "application/json",
        body.as_bytes(),
        &timestamp,
    )?;
    Ok(Request::post(format!("{base}/sinch/voice"))
        .header(CONTENT_TYPE, "application/json")
        .header("x-timestamp", signed.timestamp)
        .header("authorization", signed.authorization))
}

/// An SMS delivery report webhook, signed as Sinch signs them.
fn sms_callback(base: &str, body: &'static str, nonce: &str) -> http::request::Builder {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    Request::post(format!("{base}/sinch/sms"))
        .header(CONTENT_TYPE, "application/json")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(WEBHOOK_SECRET, body.as_bytes(), nonce, &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
}
