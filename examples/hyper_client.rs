//! `cargo run --example hyper_client`
//!
//! The documented main path: `ServiceBuilder` + `SinchAuthLayer` over
//! hyper-util's client, with a rustls connector that speaks https (and plain
//! http, to which the layer gives credentials only on loopback).
//!
//! Offline (no `SINCH_*` variables): two loopback stand-ins play Sinch's
//! Numbers API (with the token endpoint) and Voice API. One client, cloned
//! into concurrent tasks, sends OAuth2 requests sharing one token, an
//! application-signed POST, and survives a `401 expired` answer.
//!
//! Online (`SINCH_KEY_ID`, `SINCH_APPLICATION_KEY` or `SINCH_SERVICE_PLAN_ID`
//! groups set, see the README): one read-only request per credential kind to
//! real Sinch, the scheme chosen by host. Only statuses are printed.

use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::{
    AccessKey, ApplicationCredentials, Credentials, EnvCredentials, Scheme, SinchAuth,
    SinchAuthLayer, StaticCredentials,
};
use tower::{ServiceBuilder, ServiceExt};

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, read_only_urls, redact};

/// The authenticated client: cheap to clone, every clone shares the tokens.
type SinchClient = SinchAuth<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>;

/// The same construction offline and online; only the layer differs.
fn client(layer: SinchAuthLayer) -> Result<SinchClient, BoxError> {
    Ok(ServiceBuilder::new()
        .layer(layer)
        .service(support::https_or_http_client()?))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    match EnvCredentials::from_env() {
        Ok(env) => online(env).await,
        Err(sinch_auth::ConfigError::NoCredentialsInEnv) => offline().await,
        Err(e) => Err(e.into()),
    }
}

async fn offline() -> Result<(), BoxError> {
    println!("No SINCH_* variables set: talking to loopback Sinch stand-ins.\n");
    let key = AccessKey::new("demo-project", "demo-key-id", "demo-key-secret")?;
    let app = ApplicationCredentials::new("demo-app-key", "ZGVtby1hcHAtc2VjcmV0")?;
    let numbers = SinchStandIn::builder().access_key(&key).start().await?;
    let voice = SinchStandIn::builder().application(&app).start().await?;
    let credentials = Credentials::builder()
        .access_key(key)
        .application(app)
        .build();

    // Against Sinch, `SinchAuthLayer::by_host` picks the scheme from Sinch's
    // host names; loopback stand-ins have none, so each is routed by hand.
    let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials))
        .auth_host(&numbers.url())
        .route(&numbers.addr().to_string(), Scheme::OAuth2)
        .route(&voice.addr().to_string(), Scheme::ApplicationSigned)
        .build()?;
    let client = client(layer)?;

    println!("8 concurrent GETs to Numbers, each task with its own clone of the client:");
    let url = format!("{}/v1/projects/demo-project/activeNumbers", numbers.url());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let request = Request::get(url).body(Full::default())?;
            Ok::<_, BoxError>(client.oneshot(request).await?.status())
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status??.as_u16());
    }
    println!("  answered: {statuses:?}");
    show_sent(&numbers)?;
    println!("  token endpoint calls: {}\n", numbers.token_requests());

    println!("An application-signed POST to Voice through the same client:");
    let request = Request::post(format!("{}/calling/v1/callouts", voice.url()))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"method":"ttsCallout","ttsCallout":{"destination":{"type":"number","endpoint":"+46700000000"},"text":"Hello"}}"#,
        )))?;
    let response = client.clone().oneshot(request).await?;
    println!("  answered: {}", answer(response).await?);
    show_sent(&voice)?;

    println!("\nNumbers answers the next request `401 expired`: one refresh, one resend.");
    numbers.answer_expired_next(1);
    let response = client
        .clone()
        .oneshot(Request::get(&url).body(Full::default())?)
        .await?;
    let status = response.status();
    println!("  answered: {}", answer(response).await?);
    println!(
        "  token endpoint calls: {} (one more after the 401)",
        numbers.token_requests()
    );
    if !status.is_success() || statuses.iter().any(|s| *s != 200) {
        return Err("a request was refused".into());
    }
    Ok(())
}

/// What the stand-in received last, secrets replaced by their length.
fn show_sent(sinch: &SinchStandIn) -> Result<(), BoxError> {
    let received = sinch.last_request().ok_or("the stand-in saw no request")?;
    println!(
        "  sent:     Authorization: {}",
        redact(&received.headers[AUTHORIZATION])
    );
    if let Some(timestamp) = received.headers.get("x-timestamp") {
        println!("            x-timestamp: {}", timestamp.to_str()?);
    }
    Ok(())
}

/// The status and the stand-in's account of what it accepted (key ids, no secrets).
async fn answer(response: http::Response<hyper::body::Incoming>) -> Result<String, BoxError> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(format!("{status} {}", String::from_utf8_lossy(&body)))
}

async fn online(env: EnvCredentials) -> Result<(), BoxError> {
    println!("SINCH_* variables found: talking to real Sinch (read-only requests).\n");
    let urls = read_only_urls(&env);
    let client = client(SinchAuthLayer::by_host(env)?)?;
    for url in urls {
        let request = Request::get(&url).body(Full::default())?;
        let response = client.clone().oneshot(request).await?;
        println!("GET {url}\n  answered: {}\n", response.status());
    }
    Ok(())
}
