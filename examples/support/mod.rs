//! What the examples share (included with `#[path]`; not an example itself).
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sinch_auth::EnvCredentials;
use sinch_auth::host::{Region, VoiceRegion};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Shows the scheme word and the length of what follows, never the secret.
pub fn redact(value: &http::HeaderValue) -> String {
    let text = value.to_str().unwrap_or("");
    match text.split_once(' ') {
        Some((scheme, rest)) => format!("{scheme} [{} bytes redacted]", rest.len()),
        None => "[redacted]".to_owned(),
    }
}

/// One read-only request per credential the environment holds: Numbers for an
/// access key, SMS batches for a service plan, Voice numbers for an application.
pub fn read_only_urls(env: &EnvCredentials) -> Vec<String> {
    let credentials = env.credentials();
    let mut urls = Vec::new();
    if let Some(key) = credentials.access_key() {
        urls.push(format!(
            "https://numbers.api.sinch.com/v1/projects/{}/activeNumbers?pageSize=1",
            key.project_id()
        ));
    }
    if let Some(plan) = credentials.service_plan() {
        let sms = env.region().unwrap_or(Region::Us).sms_url();
        urls.push(format!("{sms}/xms/v1/{}/batches?page_size=1", plan.id()));
    }
    if credentials.application().is_some() {
        let voice = VoiceRegion::Global.url();
        urls.push(format!("{voice}/calling/v1/configuration/numbers"));
    }
    urls
}

/// hyper-util's client over rustls, https only: how the examples reach real
/// Sinch. `sinch_auth::tls` builds it with the crate's own crypto provider,
/// never the process default.
pub fn https_client() -> Result<sinch_auth::tls::HttpsClient, BoxError> {
    Ok(sinch_auth::tls::https_client()?)
}

/// The same TLS config, but plain http too (to which the layer gives
/// credentials only on loopback): one client for the stand-ins and for Sinch.
pub fn https_or_http_client() -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, BoxError>
{
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(sinch_auth::tls::client_config()?)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Demo credentials of every kind, and a loopback Sinch stand-in that accepts them.
pub async fn demo_stand_in()
-> Result<(sinch_auth::Credentials, sinch_auth::testkit::SinchStandIn), BoxError> {
    use sinch_auth::{AccessKey, ApplicationCredentials, Credentials, ServicePlan};
    let access_key = AccessKey::new("demo-project", "demo-key-id", "demo-key-secret")?;
    let application = ApplicationCredentials::new("demo-app-key", "ZGVtby1hcHAtc2VjcmV0")?;
    let service_plan = ServicePlan::new("demo-plan", "demo-api-token")?;
    let sinch = sinch_auth::testkit::SinchStandIn::builder()
        .access_key(&access_key)
        .application(&application)
        .service_plan(&service_plan)
        .start()
        .await?;
    let credentials = Credentials::builder()
        .access_key(access_key)
        .application(application)
        .service_plan(service_plan)
        .build();
    Ok((credentials, sinch))
}
