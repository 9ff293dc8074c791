//! One client for all Sinch APIs: `SinchAuthLayer::by_host` picks the scheme
//! from each request's host (protocol notes §1), over an in-memory inner service and an
//! in-process token source. Every host in the protocol notes gets the right header;
//! other hosts never get credentials.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Capture, Seen};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::Full;
use sinch_auth::host::{Region, VoiceRegion};
use sinch_auth::token::{Token, source_fn};
use sinch_auth::verify::{ApplicationVerifier, Verified, Verifier};
use sinch_auth::{
    AccessKey, ApplicationCredentials, AuthError, Credentials, Scheme, ServiceError, ServicePlan,
    SinchAuthLayer, StaticCredentials,
};
use tower::{Service, ServiceBuilder, ServiceExt};

const OAUTH_TOKEN: &str = "OAUTH-TOKEN-h1";
const API_TOKEN: &str = "API-TOKEN-h2";
const APP_KEY: &str = "app-h";
const APP_SECRET: &str = "aG9zdC1yb3V0aW5nLXNlY3JldA==";
const BODY: &str = r#"{"identity":{"type":"number","endpoint":"+46700000000"},"method":"sms"}"#;

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap()
}

fn credentials(with_service_plan: bool) -> Credentials {
    let builder = Credentials::builder()
        .access_key(AccessKey::new("proj-h", "key-h", "KEY-SECRET-h3").unwrap())
        .application(app());
    match with_service_plan {
        true => builder
            .service_plan(ServicePlan::new("plan-h", API_TOKEN).unwrap())
            .build(),
        false => builder.build(),
    }
}

/// What a request is expected to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    OAuth2,
    ServicePlan,
    Signed,
    Nothing,
}

/// A by-host client over a capturing service; OAuth2 tokens come from an
/// in-process source that counts its calls.
struct Client {
    service: sinch_auth::SinchAuth<common::CaptureService>,
    capture: Capture,
    fetches: Arc<AtomicUsize>,
}

fn client(with_service_plan: bool) -> Client {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials(with_service_plan)))
        .by_host()
        .token_source(source_fn(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok(Token::new(OAUTH_TOKEN, Duration::from_secs(3600))) }
        }))
        .build()
        .unwrap();
    let capture = Capture::default();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(capture.service());
    Client {
        service,
        capture,
        fetches,
    }
}

impl Client {
    /// Sends a signed-worthy POST (JSON body) to `url`; returns what the inner service saw.
    async fn post(&self, url: &str) -> Seen {
        let before = self.capture.all().len();
        let request = Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .unwrap();
        self.service.clone().oneshot(request).await.unwrap();
        let all = self.capture.all();
        assert_eq!(all.len(), before + 1, "{url} was not passed on");
        let seen = all[before].clone();
        assert_eq!(seen.body, BODY, "{url}: the body changed on the way");
        seen
    }
}

/// Checks one captured request against the expected header kind.
fn check(url: &str, seen: &Seen, expect: Expect) {
    let authorization = seen
        .headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let timestamp = seen.headers.get("x-timestamp");
    match expect {
        Expect::OAuth2 => {
            assert_eq!(
                authorization.as_deref(),
                Some(&*format!("Bearer {OAUTH_TOKEN}")),
                "{url}"
            );
            assert!(timestamp.is_none(), "{url}");
        }
        Expect::ServicePlan => {
            assert_eq!(
                authorization.as_deref(),
                Some(&*format!("Bearer {API_TOKEN}")),
                "{url}"
            );
            assert!(timestamp.is_none(), "{url}");
        }
        Expect::Signed => {
            let value = authorization.unwrap_or_else(|| panic!("{url}: not signed"));
            assert!(
                value.starts_with(&format!("Application {APP_KEY}:")),
                "{url}: {value}"
            );
            assert!(timestamp.is_some(), "{url}: no x-timestamp");
            // The server side of the crate accepts what the client side signed.
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(seen.uri.clone());
            *request.headers_mut().unwrap() = seen.headers.clone();
            let (parts, ()) = request.body(()).unwrap().into_parts();
            let verified = ApplicationVerifier::new(app())
                .verify(&parts, &seen.body)
                .unwrap_or_else(|r| panic!("{url}: {r}"));
            assert!(matches!(verified, Verified::Application { key, .. } if key == APP_KEY));
        }
        Expect::Nothing => {
            assert_eq!(authorization, None, "{url} got credentials");
            assert!(timestamp.is_none(), "{url} got an x-timestamp");
        }
    }
    if let Some(value) = seen.headers.get(AUTHORIZATION) {
        assert!(value.is_sensitive(), "{url}");
    }
}

/// Every host of protocol notes §1, with the scheme it takes when a service plan is configured.
fn spec_hosts() -> Vec<(String, Expect)> {
    use Expect::*;
    let mut table = Vec::new();
    for region in ["us", "eu", "br"] {
        table.push((format!("{region}.conversation.api.sinch.com"), OAuth2));
        table.push((format!("{region}.template.api.sinch.com"), OAuth2));
    }
    for region in ["us", "eu", "au", "br", "ca"] {
        table.push((format!("{region}.sms.api.sinch.com"), ServicePlan));
        table.push((format!("zt.{region}.sms.api.sinch.com"), OAuth2));
    }
    for host in [
        "numbers.api.sinch.com",
        "lookup.api.sinch.com",
        "fax.api.sinch.com",
        "elastic-trunking.api.sinch.com",
    ] {
        table.push((host.to_owned(), OAuth2));
    }
    for host in [
        "calling.api.sinch.com",
        "calling-euc1.api.sinch.com",
        "calling-use1.api.sinch.com",
        "calling-sae1.api.sinch.com",
        "calling-apse1.api.sinch.com",
        "calling-apse2.api.sinch.com",
        "callingapi.sinch.com",
        "verification.api.sinch.com",
    ] {
        table.push((host.to_owned(), Signed));
    }
    table
}

/// Sinch hosts that are not APIs: allowed to receive credentials by the host
/// policy, but no API scheme applies, so by-host mode sends nothing.
const SINCH_NON_API_HOSTS: [&str; 5] = [
    "https://auth.sinch.com/oauth2/token",
    "https://sinch.com/",
    "https://www.sinch.com/",
    "https://dashboard.sinch.com/",
    "https://developers.sinch.com/docs",
];

/// Destinations that must never receive credentials, whatever the scheme.
const FOREIGN: [&str; 12] = [
    "https://example.com/",
    "https://sinch.com.evil.example/",
    "https://numbers.api.sinch.com.evil.example/v1/projects/p/activeNumbers",
    "https://evilsinch.com/",
    "https://api.sinch.co/",
    "https://numbers.api.sinch.com@evil.example/",
    "https://10.0.0.1/",
    // Sinch hosts over plain http: credentials would travel in clear text.
    "http://numbers.api.sinch.com/v1/projects/p/activeNumbers",
    "http://us.sms.api.sinch.com/xms/v1/plan-h/batches",
    "http://calling.api.sinch.com/calling/v1/callouts",
    "http://verification.api.sinch.com/verification/v1/verifications",
    "ftp://numbers.api.sinch.com/",
];

#[tokio::test]
async fn every_spec_host_gets_its_scheme_from_one_client() {
    let client = client(true);
    // Twice each: the first request fills the host memo, the second reads it
    // (and hosts past the memo's capacity are judged afresh both times).
    for round in 0..2 {
        for (host, expect) in spec_hosts() {
            let url = format!("https://{host}/v1/some/path?page=2");
            let seen = client.post(&url).await;
            check(&format!("{url} (round {round})"), &seen, expect);
        }
    }
    // Every OAuth2 host shares one token.
    assert_eq!(client.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn sms_without_a_service_plan_gets_oauth2() {
    let client = client(false);
    for (host, expect) in spec_hosts() {
        let expect = match expect {
            Expect::ServicePlan => Expect::OAuth2,
            other => other,
        };
        let url = format!("https://{host}/xms/v1/proj-h/batches");
        check(&url, &client.post(&url).await, expect);
    }
}

#[tokio::test]
async fn host_names_match_whatever_their_case_trailing_dot_or_default_port() {
    let client = client(true);
    for (url, expect) in [
        ("https://NUMBERS.API.SINCH.COM/v1", Expect::OAuth2),
        ("https://numbers.api.sinch.com./v1", Expect::OAuth2),
        ("https://numbers.api.sinch.com:443/v1", Expect::OAuth2),
        (
            "https://Us.Sms.Api.Sinch.Com/xms/v1/plan-h",
            Expect::ServicePlan,
        ),
        (
            "https://CALLING-EUC1.api.sinch.com/calling/v1",
            Expect::Signed,
        ),
    ] {
        check(url, &client.post(url).await, expect);
    }
}

#[tokio::test]
async fn sinch_hosts_that_are_not_apis_get_nothing_by_host() {
    let client = client(true);
    for url in SINCH_NON_API_HOSTS {
        check(url, &client.post(url).await, Expect::Nothing);
    }
    assert_eq!(
        client.fetches.load(Ordering::SeqCst),
        0,
        "no token was needed"
    );
}

#[tokio::test]
async fn foreign_and_plain_http_hosts_never_get_credentials_by_host() {
    let client = client(true);
    for url in FOREIGN {
        check(url, &client.post(url).await, Expect::Nothing);
    }
    assert_eq!(client.fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn foreign_hosts_never_get_credentials_under_any_fixed_scheme() {
    for scheme in [
        Scheme::OAuth2,
        Scheme::ServicePlanBearer,
        Scheme::ServicePlanBasic,
        Scheme::ApplicationSigned,
        Scheme::ApplicationBasic,
        Scheme::SelfSignedJwt,
    ] {
        let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials(true)))
            .scheme(scheme)
            .token_source(source_fn(|_| async {
                Ok(Token::new(OAUTH_TOKEN, Duration::from_secs(3600)))
            }))
            .build()
            .unwrap();
        let capture = Capture::default();
        let service = ServiceBuilder::new()
            .layer(layer.clone())
            .service(capture.service());
        for url in FOREIGN
            .iter()
            .chain(&["https://auth.sinch.com.evil.example/"])
        {
            let request = Request::post(*url)
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            service.clone().oneshot(request).await.unwrap();
            check(url, &capture.last(), Expect::Nothing);
        }

        // Told to, the layer refuses to send them at all.
        let strict = SinchAuthLayer::builder(StaticCredentials::new(credentials(true)))
            .scheme(scheme)
            .reject_disallowed_hosts(true)
            .token_source(source_fn(|_| async {
                Ok(Token::new(OAUTH_TOKEN, Duration::from_secs(3600)))
            }))
            .build()
            .unwrap();
        let mut strict = ServiceBuilder::new()
            .layer(strict)
            .service(capture.service());
        let before = capture.all().len();
        for url in FOREIGN {
            let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
            let error = strict
                .ready()
                .await
                .unwrap()
                .call(request)
                .await
                .unwrap_err();
            assert!(
                matches!(error, ServiceError::Auth(AuthError::HostNotAllowed { .. })),
                "{scheme} {url}: {error}"
            );
        }
        assert_eq!(
            capture.all().len(),
            before,
            "{scheme}: a refused request went out"
        );
    }
}

#[tokio::test]
async fn region_helpers_produce_hosts_that_route_to_the_right_scheme() {
    let with_plan = client(true);
    let without_plan = client(false);
    for region in Region::ALL {
        let url = format!("{}/xms/v1/plan-h/batches", region.sms_url());
        check(&url, &with_plan.post(&url).await, Expect::ServicePlan);
        check(&url, &without_plan.post(&url).await, Expect::OAuth2);
        if let Some(base) = region.sms_project_url() {
            let url = format!("{base}/xms/v1/proj-h/batches");
            check(&url, &with_plan.post(&url).await, Expect::OAuth2);
        }
        for base in [region.conversation_url(), region.template_url()]
            .into_iter()
            .flatten()
        {
            let url = format!("{base}/v1/projects/proj-h/messages:send");
            check(&url, &with_plan.post(&url).await, Expect::OAuth2);
        }
    }
    for region in VoiceRegion::ALL {
        let url = format!("{}/calling/v1/callouts", region.url());
        check(&url, &with_plan.post(&url).await, Expect::Signed);
        check(&url, &without_plan.post(&url).await, Expect::Signed);
    }
    // Conversation and Templates are served in us, eu and br only.
    let served: Vec<Region> = Region::ALL
        .into_iter()
        .filter(|r| r.conversation_url().is_some() && r.template_url().is_some())
        .collect();
    assert_eq!(served, [Region::Us, Region::Eu, Region::Br]);
}

#[tokio::test]
async fn a_request_already_carrying_authorization_is_left_alone_on_every_host() {
    let client = client(true);
    for (host, _) in spec_hosts() {
        let url = format!("https://{host}/v1/x");
        let request = Request::get(&url)
            .header(AUTHORIZATION, "Bearer caller-chosen")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.service.clone().oneshot(request).await.unwrap();
        let seen = client.capture.last();
        assert_eq!(seen.headers[AUTHORIZATION], "Bearer caller-chosen", "{url}");
        assert!(seen.headers.get("x-timestamp").is_none(), "{url}");
    }
    assert_eq!(client.fetches.load(Ordering::SeqCst), 0);
}

#[test]
fn a_regional_api_host_in_an_unknown_region_is_not_that_api() {
    use sinch_auth::host::SinchApi;
    // Each API name under a region Sinch serves, then under one it does not.
    for (known, api, unknown) in [
        (
            "us.conversation.api.sinch.com",
            SinchApi::Conversation,
            "xx.conversation.api.sinch.com",
        ),
        (
            "eu.template.api.sinch.com",
            SinchApi::Templates,
            "xx.template.api.sinch.com",
        ),
        (
            "us.sms.api.sinch.com",
            SinchApi::Sms,
            "xx.sms.api.sinch.com",
        ),
        (
            "zt.eu.sms.api.sinch.com",
            SinchApi::SmsProject,
            "zt.xx.sms.api.sinch.com",
        ),
    ] {
        assert_eq!(SinchApi::from_host(known), Some(api), "{known}");
        assert_eq!(
            SinchApi::from_host(unknown),
            Some(SinchApi::OtherApi),
            "{unknown}"
        );
    }
}
