//! `cargo run --example quickstart`
//!
//! Offline (no `SINCH_*` variables): starts the loopback Sinch stand-in and
//! sends one request with each scheme through `SinchAuthLayer` over
//! hyper-util's client, printing what the stand-in received (secrets redacted).
//!
//! Online (`SINCH_KEY_ID`, `SINCH_APPLICATION_KEY` or `SINCH_SERVICE_PLAN_ID`
//! groups set, see the README): sends one read-only request per credential
//! kind to real Sinch, choosing the scheme by host.

use bytes::Bytes;
use http::Request;
use http::header::AUTHORIZATION;
use http_body_util::{BodyExt, Full};
use sinch_auth::{EnvCredentials, Scheme, SinchAuthLayer, StaticCredentials};
use tower::{ServiceBuilder, ServiceExt};

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, demo_stand_in, https_client, read_only_urls, redact};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    match EnvCredentials::from_env() {
        Ok(env) => online(env).await,
        Err(sinch_auth::ConfigError::NoCredentialsInEnv) => offline().await,
        Err(e) => Err(e.into()),
    }
}

async fn offline() -> Result<(), BoxError> {
    println!("No SINCH_* variables set: talking to the loopback Sinch stand-in.\n");
    let (credentials, sinch) = demo_stand_in().await?;
    let provider = StaticCredentials::new(credentials);
    println!("stand-in listening on {}\n", sinch.url());

    let schemes = [
        (
            Scheme::OAuth2,
            "GET",
            "/v1/projects/demo-project/activeNumbers",
        ),
        (
            Scheme::ServicePlanBearer,
            "GET",
            "/xms/v1/demo-plan/batches",
        ),
        (Scheme::ServicePlanBasic, "GET", "/xms/v1/demo-plan/batches"),
        (Scheme::SelfSignedJwt, "GET", "/v1/whoami"),
        (
            Scheme::ApplicationSigned,
            "POST",
            "/verification/v1/verifications",
        ),
        (
            Scheme::ApplicationBasic,
            "POST",
            "/verification/v1/verifications",
        ),
    ];
    for (scheme, method, path) in schemes {
        let layer = SinchAuthLayer::builder(provider.clone())
            .scheme(scheme)
            .auth_host(&sinch.url())
            .build()?;
        let client = ServiceBuilder::new().layer(layer).service(sinch.client());
        let body = if method == "POST" {
            Bytes::from_static(
                br#"{"identity":{"type":"number","endpoint":"+46700000000"},"method":"sms"}"#,
            )
        } else {
            Bytes::new()
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", sinch.url()))
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let response = client.oneshot(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        let received = sinch.last_request().expect("the stand-in saw the request");
        println!("{:<18} {method} {path}", scheme.name());
        println!(
            "  sent:     Authorization: {}",
            redact(&received.headers[AUTHORIZATION])
        );
        if let Some(ts) = received.headers.get("x-timestamp") {
            println!("            x-timestamp: {}", ts.to_str()?);
        }
        println!(
            "  answered: {status} {}\n",
            String::from_utf8_lossy(&answer)
        );
        if !status.is_success() {
            return Err(format!("{scheme} was refused").into());
        }
    }
    println!(
        "token endpoint calls: {} (one OAuth2 token, cached)",
        sinch.token_requests()
    );
    Ok(())
}

async fn online(env: EnvCredentials) -> Result<(), BoxError> {
    println!("SINCH_* variables found: talking to real Sinch (read-only requests).\n");
    let targets = read_only_urls(&env);
    let layer = SinchAuthLayer::by_host(env)?;
    let client = ServiceBuilder::new().layer(layer).service(https_client()?);
    for url in targets {
        let request = Request::get(&url).body(Full::new(Bytes::new()))?;
        let response = client.clone().oneshot(request).await?;
        println!("GET {url}\n  answered: {}\n", response.status());
    }
    Ok(())
}
