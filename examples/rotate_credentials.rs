//! `cargo run --example rotate_credentials`
//!
//! Rotating credentials while requests keep flowing, with
//! `RotatingCredentials`: the next request after `rotate` uses the new
//! credentials, and an OAuth2 token obtained with the old key is replaced by
//! one fetched with the new key at once, in the background.
//!
//! Offline (no `SINCH_*` variables): the loopback stand-in accepts an old and
//! a new access key (and an old and a new service plan). Four tasks send
//! requests while the key is rotated and the old key then revoked; the
//! stand-in's answers show which credentials each request carried.
//!
//! Online (`SINCH_*` set, see the README): one read-only request, a rotation
//! to the credentials re-read from the environment (as a reload from a
//! secret store would), and the same request again; only statuses are printed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use sinch_auth::testkit::{SinchStandIn, StandInClient};
use sinch_auth::{
    AccessKey, EnvCredentials, RotatingCredentials, Scheme, ServicePlan, SinchAuth, SinchAuthLayer,
};
use tower::{ServiceBuilder, ServiceExt};

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, https_client, read_only_urls};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    match EnvCredentials::from_env() {
        Ok(env) => online(env).await,
        Err(sinch_auth::ConfigError::NoCredentialsInEnv) => offline().await,
        Err(e) => Err(e.into()),
    }
}

/// Sends a GET and returns the status and whom the stand-in took it for.
async fn accepted_as(
    client: SinchAuth<StandInClient>,
    url: String,
) -> Result<(u16, String), BoxError> {
    let response = client
        .oneshot(Request::get(url).body(Full::default())?)
        .await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let principal = answer["accepted_as"]
        .as_str()
        .unwrap_or("refused")
        .to_owned();
    Ok((status, principal))
}

async fn offline() -> Result<(), BoxError> {
    println!("No SINCH_* variables set: talking to the loopback Sinch stand-in.\n");
    let old_key = AccessKey::new("demo-project", "key-old", "demo-old-secret")?;
    let new_key = AccessKey::new("demo-project", "key-new", "demo-new-secret")?;
    let old_plan = ServicePlan::new("plan-old", "demo-old-api-token")?;
    let new_plan = ServicePlan::new("plan-new", "demo-new-api-token")?;
    // Step 0 of any rotation: the new credential is valid at Sinch first.
    let sinch = SinchStandIn::builder()
        .access_key(&old_key)
        .access_key(&new_key)
        .service_plan(&old_plan)
        .service_plan(&new_plan)
        .start()
        .await?;

    println!("OAuth2: four tasks send requests while the access key rotates.");
    let provider = RotatingCredentials::new(old_key);
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()?;
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let url = format!("{}/v1/projects/demo-project/activeNumbers", sinch.url());

    let rotated = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, url, rotated) = (client.clone(), url.clone(), rotated.clone());
        tasks.spawn(async move {
            // (before rotation, after rotation) principal -> count
            let mut seen = [BTreeMap::new(), BTreeMap::new()];
            for _ in 0..100 {
                let after = rotated.load(Ordering::SeqCst);
                let (status, principal) = accepted_as(client.clone(), url.clone()).await?;
                *seen[usize::from(after)]
                    .entry(format!("{status} {principal}"))
                    .or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, BoxError>(seen)
        });
    }
    while sinch.api_requests() < 100 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    provider.rotate(new_key);
    rotated.store(true, Ordering::SeqCst);
    println!(
        "  rotated to key-new after {} requests",
        sinch.api_requests()
    );
    while sinch.tokens_issued() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The new token is in use: the old key can be revoked. Tokens already
    // issued with it stay valid until they expire.
    sinch.reject_access_key("key-old");
    println!(
        "  token fetched with key-new after {} requests; key-old revoked at the stand-in",
        sinch.api_requests()
    );

    let mut totals = [BTreeMap::new(), BTreeMap::new()];
    while let Some(seen) = tasks.join_next().await {
        for (total, seen) in totals.iter_mut().zip(seen??) {
            for (answer, n) in seen {
                *total.entry(answer).or_insert(0) += n;
            }
        }
    }
    let mut refused = 0;
    for (when, total) in ["started before rotate()", "started after rotate()"]
        .iter()
        .zip(&totals)
    {
        println!("  requests {when}:");
        for (answer, n) in total {
            println!("    {n:>4} answered {answer}");
            refused += if answer.starts_with("200") { 0 } else { *n };
        }
    }
    println!(
        "  token endpoint calls: {} (one per key)",
        sinch.token_requests()
    );
    println!(
        "  (requests started while the new token was being fetched still carry the old\n   \
         one, valid until it expires; `RefreshConfig::hard_cutover(true)` makes them wait)\n"
    );

    println!("Service plan: the header changes on the very next request, no fetch.");
    let provider = RotatingCredentials::new(old_plan);
    let layer = SinchAuthLayer::new(provider.clone(), Scheme::ServicePlanBearer)?;
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let url = format!("{}/xms/v1/batches", sinch.url());
    let (status, before) = accepted_as(client.clone(), url.clone()).await?;
    println!("  before rotate(): {status} {before}");
    provider.rotate(new_plan);
    let (status, after) = accepted_as(client, url).await?;
    println!("  after rotate():  {status} {after}");

    if refused > 0 || !after.ends_with("plan-new") || sinch.token_requests() != 2 {
        return Err("the rotation did not go as expected".into());
    }
    Ok(())
}

async fn online(env: EnvCredentials) -> Result<(), BoxError> {
    println!("SINCH_* variables found: talking to real Sinch (read-only requests).\n");
    let url = read_only_urls(&env)
        .into_iter()
        .next()
        .ok_or("no credential to call Sinch with")?;
    // The environment's snapshot, shared.
    let provider = RotatingCredentials::new(env.credentials());
    let client = ServiceBuilder::new()
        .layer(SinchAuthLayer::by_host(provider.clone())?)
        .service(https_client()?);

    let get = || Request::get(&url).body(Full::<Bytes>::default());
    let response = client.clone().oneshot(get()?).await?;
    println!("GET {url}\n  before rotation: {}", response.status());
    // A reload, as a secret store's change notification would trigger; any
    // OAuth2 token is refetched with what was read.
    provider.rotate(EnvCredentials::from_env()?.credentials());
    let response = client.oneshot(get()?).await?;
    println!("  after rotation:  {}", response.status());
    Ok(())
}
