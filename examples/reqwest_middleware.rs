//! `cargo run --example reqwest_middleware --features reqwest-middleware`
//!
//! Offline (no `SINCH_*` variables): starts the loopback Sinch stand-in and
//! sends requests through a `reqwest_middleware` client carrying
//! `SinchAuthMiddleware`: an OAuth2 call, a service-plan call, an
//! application-signed POST, a `401 expired` answer survived by one refresh
//! and one resend, and the typed error for a body that cannot be signed.
//!
//! Online (`SINCH_KEY_ID`, `SINCH_APPLICATION_KEY` or `SINCH_SERVICE_PLAN_ID`
//! groups set, see the README): one read-only request per credential kind to
//! real Sinch, the scheme chosen by host. Only statuses are printed.

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use sinch_auth::integration::reqwest::{SinchAuthMiddleware, auth_error};
use sinch_auth::{EnvCredentials, Scheme, SinchAuthLayer, StaticCredentials};

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, demo_stand_in, read_only_urls};

const VERIFICATION: &str =
    r#"{"identity":{"type":"number","endpoint":"+46700000000"},"method":"sms"}"#;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    match EnvCredentials::from_env() {
        Ok(env) => online(env).await,
        Err(sinch_auth::ConfigError::NoCredentialsInEnv) => offline().await,
        Err(e) => Err(e.into()),
    }
}

fn client(middleware: SinchAuthMiddleware) -> Result<ClientWithMiddleware, BoxError> {
    // reqwest is built here with rustls but no crypto provider of its own:
    // it takes sinch-auth's TLS config, so no process-wide default is needed.
    let reqwest = reqwest::Client::builder()
        .tls_backend_preconfigured(sinch_auth::tls::client_config()?)
        .build()?;
    Ok(ClientBuilder::new(reqwest).with(middleware).build())
}

async fn offline() -> Result<(), BoxError> {
    println!("No SINCH_* variables set: talking to the loopback Sinch stand-in.\n");
    let (credentials, sinch) = demo_stand_in().await?;
    println!("stand-in listening on {}\n", sinch.url());
    let provider = StaticCredentials::new(credentials);
    // The stand-in is one loopback host, so each scheme gets its own layer
    // here; against Sinch, `SinchAuthLayer::by_host` picks per API.
    let with = |scheme: Scheme| -> Result<ClientWithMiddleware, BoxError> {
        let layer = SinchAuthLayer::builder(provider.clone())
            .scheme(scheme)
            .auth_host(&sinch.url())
            .build()?;
        client(SinchAuthMiddleware::new(&layer))
    };

    let oauth2 = with(Scheme::OAuth2)?;
    let numbers = format!("{}/v1/projects/demo-project/activeNumbers", sinch.url());
    let response = oauth2.get(&numbers).send().await?;
    report("OAuth2", "GET", &numbers, response).await?;

    let plan = with(Scheme::ServicePlanBearer)?;
    let batches = format!("{}/xms/v1/demo-plan/batches", sinch.url());
    let response = plan.get(&batches).send().await?;
    report("ServicePlanBearer", "GET", &batches, response).await?;

    let signed = with(Scheme::ApplicationSigned)?;
    let verifications = format!("{}/verification/v1/verifications", sinch.url());
    let response = signed
        .post(&verifications)
        .header("content-type", "application/json")
        .body(VERIFICATION)
        .send()
        .await?;
    report("ApplicationSigned", "POST", &verifications, response).await?;

    println!("The next answer is `401 expired`: the middleware refreshes and resends once.");
    sinch.answer_expired_next(1);
    let response = oauth2.get(&numbers).send().await?;
    report("OAuth2", "GET", &numbers, response).await?;
    println!(
        "token endpoint calls: {} (one at start, one after the 401)\n",
        sinch.token_requests()
    );

    println!("A streaming body cannot be signed; nothing is sent:");
    let stream = reqwest::Body::wrap(String::from(VERIFICATION));
    let error = signed
        .post(&verifications)
        .header("content-type", "application/json")
        .body(stream)
        .send()
        .await
        .expect_err("a stream cannot be signed");
    match auth_error(&error) {
        Some(auth) => println!("  AuthError: {auth}"),
        None => return Err(error.into()),
    }
    Ok(())
}

async fn report(
    scheme: &str,
    method: &str,
    url: &str,
    response: reqwest::Response,
) -> Result<(), BoxError> {
    let status = response.status();
    // The stand-in answers with what it accepted (key ids, never secrets).
    let answer = response.text().await?;
    println!("{scheme:<18} {method} {url}\n  answered: {status} {answer}\n");
    if !status.is_success() {
        return Err(format!("{scheme} was refused").into());
    }
    Ok(())
}

async fn online(env: EnvCredentials) -> Result<(), BoxError> {
    println!("SINCH_* variables found: talking to real Sinch (read-only requests).\n");
    let targets = read_only_urls(&env);
    let layer = SinchAuthLayer::by_host(env)?;
    let client = client(SinchAuthMiddleware::new(&layer))?;
    for url in targets {
        let response = client.get(&url).send().await?;
        println!("GET {url}\n  answered: {}\n", response.status());
    }
    Ok(())
}
