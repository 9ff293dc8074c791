//! The reqwest middleware side by side with the tower layer, against the
//! loopback Sinch stand-in: every scenario runs through both adapters and
//! must put the same headers on the wire and get the same answers.
//!
//! Tests whose name starts with `needs_signing_merge_` assert that the
//! stand-in *accepts* application signatures; they fail until the real
//! `scheme::application::sign` lands (this branch has a placeholder). Every
//! other test, including the header comparison for the application scheme,
//! passes either way.
#![cfg(feature = "reqwest-middleware")]

mod common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use sinch_auth::clock::ManualClock;
use sinch_auth::integration::reqwest::{SinchAuthMiddleware, auth_error};
use sinch_auth::testkit::{RecordedRequest, SinchStandIn, StandInClient};
use sinch_auth::token::RefreshConfig;
use sinch_auth::{
    AccessKey, ApplicationCredentials, AuthError, BasicCredentials, BearerToken, ConfigError,
    Credentials, RotatingCredentials, Scheme, ServiceError, ServicePlan, SinchAuth,
    SinchAuthBuilder, SinchAuthLayer, StaticCredentials,
};
use tower::ServiceExt;

const JSON: &str = r#"{"identity":{"type":"number","endpoint":"+46700000000"},"method":"sms"}"#;

/// Every secret below, to check none leaks into errors or `Debug`.
const SECRETS: [&str; 3] = ["KEY-SECRET-m1", "YXBwLXNlY3JldC1ieXRlcw==", "API-TOKEN-m2"];

fn credentials() -> Credentials {
    Credentials::builder()
        .access_key(AccessKey::new("proj-1", "key-1", "KEY-SECRET-m1").unwrap())
        .application(ApplicationCredentials::new("app-1", "YXBwLXNlY3JldC1ieXRlcw==").unwrap())
        .service_plan(ServicePlan::new("plan-1", "API-TOKEN-m2").unwrap())
        // The stand-in accepts the plan's token as a bearer and as Basic
        // `plan:token`, so the plain schemes get a 200 too.
        .bearer(BearerToken::new("API-TOKEN-m2").unwrap())
        .basic(BasicCredentials::new("plan-1", "API-TOKEN-m2").unwrap())
        .build()
}

async fn stand_in() -> SinchStandIn {
    let creds = credentials();
    SinchStandIn::builder()
        .access_key(creds.access_key().unwrap())
        .application(creds.application().unwrap())
        .service_plan(creds.service_plan().unwrap())
        .start()
        .await
        .unwrap()
}

/// A clock both adapters share, so timestamps and self-signed JWTs match to the byte.
fn frozen_clock() -> ManualClock {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_millis(now.as_millis() as u64))
}

fn builder(scheme: Scheme, sinch: &SinchStandIn) -> SinchAuthBuilder {
    SinchAuthLayer::builder(StaticCredentials::new(credentials()))
        .scheme(scheme)
        .auth_host(&sinch.url())
}

fn fault_config() -> RefreshConfig {
    RefreshConfig::default()
        .fetch_timeout(Duration::from_millis(500))
        .wait_timeout(Duration::from_secs(2))
        .min_forced_interval(Duration::ZERO)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    Tower,
    Reqwest,
}

const ADAPTERS: [Adapter; 2] = [Adapter::Tower, Adapter::Reqwest];

/// A client through one adapter or the other.
#[derive(Clone)]
enum Client {
    Tower(Box<SinchAuth<StandInClient>>),
    Reqwest(reqwest_middleware::ClientWithMiddleware),
}

fn reqwest_client(middleware: SinchAuthMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    // This crate's dev build of reqwest uses rustls without a built-in
    // crypto provider; plain-http tests never use it, but building needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

fn client(adapter: Adapter, layer: &SinchAuthLayer, sinch: &SinchStandIn) -> Client {
    match adapter {
        Adapter::Tower => Client::Tower(Box::new(SinchAuth::new(sinch.client(), layer))),
        Adapter::Reqwest => Client::Reqwest(reqwest_client(SinchAuthMiddleware::from(layer))),
    }
}

/// What came of one request.
#[derive(Debug)]
enum Outcome {
    Answered(StatusCode, String),
    /// Authentication failed; the request was not sent.
    Refused(AuthError),
    /// The transport failed (shown in panics through `Debug`).
    Failed(#[allow(dead_code)] String),
}

impl Outcome {
    #[track_caller]
    fn answered(self) -> (StatusCode, String) {
        match self {
            Outcome::Answered(status, body) => (status, body),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[track_caller]
    fn refused(self) -> AuthError {
        match self {
            Outcome::Refused(error) => error,
            other => panic!("expected an authentication error, got {other:?}"),
        }
    }
}

/// A request body: a content type and bytes, or bytes the reqwest side sends as a stream.
#[derive(Clone)]
enum Payload {
    None,
    Json(&'static str),
    JsonStream(&'static str),
}

impl Client {
    async fn send(&self, method: Method, url: &str, payload: Payload) -> Outcome {
        self.send_with(method, url, payload, HeaderMap::new()).await
    }

    async fn send_with(
        &self,
        method: Method,
        url: &str,
        payload: Payload,
        headers: HeaderMap,
    ) -> Outcome {
        match self {
            Client::Tower(service) => {
                let mut request = Request::builder().method(method).uri(url);
                let body = match payload {
                    Payload::None => Bytes::new(),
                    Payload::Json(json) | Payload::JsonStream(json) => {
                        request = request.header(CONTENT_TYPE, "application/json");
                        Bytes::from_static(json.as_bytes())
                    }
                };
                let mut request = request.body(Full::new(body)).unwrap();
                request.headers_mut().extend(headers);
                match (**service).clone().oneshot(request).await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.into_body().collect().await.unwrap().to_bytes();
                        Outcome::Answered(status, String::from_utf8_lossy(&body).into_owned())
                    }
                    Err(ServiceError::Auth(error)) => Outcome::Refused(error),
                    Err(ServiceError::Inner(error)) => Outcome::Failed(error.to_string()),
                }
            }
            Client::Reqwest(client) => {
                let mut request = client.request(method, url).headers(headers);
                match payload {
                    Payload::None => {}
                    Payload::Json(json) => {
                        request = request.header(CONTENT_TYPE, "application/json").body(json);
                    }
                    Payload::JsonStream(json) => {
                        let stream =
                            reqwest::Body::wrap(Full::new(Bytes::from_static(json.as_bytes())));
                        request = request
                            .header(CONTENT_TYPE, "application/json")
                            .body(stream);
                    }
                }
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap();
                        Outcome::Answered(status, body)
                    }
                    Err(reqwest_middleware::Error::Middleware(error)) => {
                        match error.downcast::<AuthError>() {
                            Ok(error) => Outcome::Refused(error),
                            Err(other) => Outcome::Failed(other.to_string()),
                        }
                    }
                    Err(other) => Outcome::Failed(other.to_string()),
                }
            }
        }
    }
}

struct Scenario {
    scheme: Scheme,
    method: Method,
    path: &'static str,
    payload: Payload,
}

fn scenarios() -> Vec<Scenario> {
    let s = |scheme, method, path, payload| Scenario {
        scheme,
        method,
        path,
        payload,
    };
    vec![
        s(
            Scheme::ServicePlanBearer,
            Method::GET,
            "/xms/v1/plan-1/batches",
            Payload::None,
        ),
        s(
            Scheme::ServicePlanBasic,
            Method::GET,
            "/xms/v1/plan-1/batches?page_size=1",
            Payload::None,
        ),
        s(
            Scheme::ApplicationBasic,
            Method::GET,
            "/verification/v1/verifications/id/42",
            Payload::None,
        ),
        s(
            Scheme::SelfSignedJwt,
            Method::GET,
            "/v1/whoami",
            Payload::None,
        ),
        s(
            Scheme::OAuth2,
            Method::GET,
            "/v1/projects/proj-1/activeNumbers?pageSize=1",
            Payload::None,
        ),
        s(
            Scheme::ApplicationSigned,
            Method::POST,
            "/verification/v1/verifications",
            Payload::Json(JSON),
        ),
        // The signed path is the raw one, percent-decoded by the core; the query is not signed.
        s(
            Scheme::ApplicationSigned,
            Method::GET,
            "/verification/v1/verifications/number/%2B46700000000?method=sms",
            Payload::None,
        ),
        s(
            Scheme::Bearer,
            Method::POST,
            "/xms/v1/plan-1/batches",
            Payload::Json(JSON),
        ),
        s(Scheme::Basic, Method::GET, "/v1/legacy", Payload::None),
    ]
}

fn header(request: &RecordedRequest, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_scheme_puts_the_same_headers_on_the_wire_through_both_adapters() {
    let sinch = stand_in().await;
    for scenario in scenarios() {
        let what = format!("{} {} {}", scenario.scheme, scenario.method, scenario.path);
        let clock = frozen_clock();
        let mut seen = Vec::new();
        for adapter in ADAPTERS {
            // A layer of its own per adapter: equal headers come from equal
            // inputs, not from a shared cache.
            let layer = builder(scenario.scheme, &sinch)
                .clock(clock.clone())
                .build()
                .unwrap();
            let client = client(adapter, &layer, &sinch);
            let url = format!("{}{}", sinch.url(), scenario.path);
            let (status, body) = client
                .send(scenario.method.clone(), &url, scenario.payload.clone())
                .await
                .answered();
            let recorded = sinch.last_request().unwrap();
            if scenario.scheme != Scheme::ApplicationSigned {
                assert_eq!(status, 200, "{what} via {adapter:?}: {body}");
            }
            seen.push((status, recorded));
        }
        let (tower, reqwest) = (&seen[0], &seen[1]);
        assert_eq!(tower.0, reqwest.0, "{what}: status");
        assert_eq!(tower.1.method, reqwest.1.method, "{what}");
        assert_eq!(tower.1.uri, reqwest.1.uri, "{what}: request target");
        assert_eq!(tower.1.body, reqwest.1.body, "{what}: body");
        assert_eq!(tower.1.accepted_as, reqwest.1.accepted_as, "{what}");
        for name in ["content-type", "x-timestamp"] {
            assert_eq!(
                header(&tower.1, name),
                header(&reqwest.1, name),
                "{what}: {name}"
            );
        }
        let (a, b) = (
            header(&tower.1, "authorization").expect("tower sent credentials"),
            header(&reqwest.1, "authorization").expect("reqwest sent credentials"),
        );
        if scenario.scheme == Scheme::OAuth2 {
            // Two layers, two tokens from the stand-in (each has its own id);
            // both are bearer tokens it issued to the same key.
            assert!(
                a.starts_with("Bearer ") && b.starts_with("Bearer "),
                "{what}"
            );
            assert_eq!(tower.1.accepted_as.as_deref(), Some("oauth2:key-1"));
        } else {
            assert_eq!(a, b, "{what}: authorization");
        }
        if scenario.scheme == Scheme::ApplicationSigned {
            assert!(a.starts_with("Application "), "{what}");
            assert!(header(&tower.1, "x-timestamp").is_some(), "{what}");
        }
    }
}

/// Needs the real `scheme::application::sign` (the signing branch): the
/// stand-in verifies signatures with `scheme::application::signature`.
#[tokio::test]
async fn needs_signing_merge_application_signed_requests_are_accepted_through_both_adapters() {
    let sinch = stand_in().await;
    for adapter in ADAPTERS {
        let layer = builder(Scheme::ApplicationSigned, &sinch).build().unwrap();
        let client = client(adapter, &layer, &sinch);
        for (method, path, payload) in [
            (
                Method::POST,
                "/verification/v1/verifications",
                Payload::Json(JSON),
            ),
            (
                Method::GET,
                "/verification/v1/verifications/number/%2B46700000000?method=sms",
                Payload::None,
            ),
            (Method::DELETE, "/calling/v1/calls/id/a%20b", Payload::None),
        ] {
            let url = format!("{}{path}", sinch.url());
            let (status, body) = client.send(method.clone(), &url, payload).await.answered();
            assert_eq!(status, 200, "{adapter:?} {method} {path}: {body}");
            assert!(body.contains("application:app-1"), "{body}");
        }
    }
}

#[tokio::test]
async fn the_middleware_shares_the_layers_token_cache() {
    let sinch = stand_in().await;
    let layer = builder(Scheme::OAuth2, &sinch).build().unwrap();
    let url = format!("{}/v1/projects/proj-1/x", sinch.url());
    let mut headers = Vec::new();
    for adapter in [Adapter::Tower, Adapter::Reqwest, Adapter::Tower] {
        let (status, body) = client(adapter, &layer, &sinch)
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        assert_eq!(status, 200, "{body}");
        headers.push(header(&sinch.last_request().unwrap(), "authorization").unwrap());
    }
    assert!(
        headers.windows(2).all(|w| w[0] == w[1]),
        "one token for all"
    );
    assert_eq!(sinch.token_requests(), 1);
}

#[tokio::test]
async fn a_rotation_is_seen_on_the_next_request_through_both_adapters() {
    for adapter in ADAPTERS {
        // Service plan: derived headers follow the provider at once.
        let old = ServicePlan::new("plan-old", "TOKEN-OLD-m3").unwrap();
        let new = ServicePlan::new("plan-new", "TOKEN-NEW-m4").unwrap();
        let key1 = AccessKey::new("proj", "key-1", "SECRET-ONE-m5").unwrap();
        let key2 = AccessKey::new("proj", "key-2", "SECRET-TWO-m6").unwrap();
        let sinch = SinchStandIn::builder()
            .service_plan(&old)
            .service_plan(&new)
            .access_key(&key1)
            .access_key(&key2)
            .start()
            .await
            .unwrap();
        let url = format!("{}/xms/v1/batches", sinch.url());

        let plans = RotatingCredentials::new(old);
        let layer = SinchAuthLayer::new(plans.clone(), Scheme::ServicePlanBasic).unwrap();
        let plan_client = client(adapter, &layer, &sinch);
        let (_, body) = plan_client
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        assert!(body.contains("basic:service-plan:plan-old"), "{body}");
        plans.rotate(new);
        let (_, body) = plan_client
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        assert!(
            body.contains("basic:service-plan:plan-new"),
            "{adapter:?}: {body}"
        );

        // OAuth2 with a hard cut-over: the next request waits for a token
        // fetched with the new key.
        let keys = RotatingCredentials::new(key1);
        let layer = SinchAuthLayer::builder(keys.clone())
            .scheme(Scheme::OAuth2)
            .auth_host(&sinch.url())
            .refresh(RefreshConfig::default().hard_cutover(true))
            .build()
            .unwrap();
        let token_client = client(adapter, &layer, &sinch);
        let (_, body) = token_client
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        assert!(body.contains("oauth2:key-1"), "{body}");
        keys.rotate(key2);
        let (status, body) = token_client
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("oauth2:key-2"), "{adapter:?}: {body}");
        assert_eq!(sinch.token_requests(), 2, "{adapter:?}");
    }
}

#[tokio::test]
async fn a_401_expired_once_refreshes_once_and_resends_once_through_both_adapters() {
    for adapter in ADAPTERS {
        for payload in [Payload::None, Payload::Json(JSON)] {
            let sinch = stand_in().await;
            let layer = builder(Scheme::OAuth2, &sinch)
                .refresh(fault_config())
                .build()
                .unwrap();
            let client = client(adapter, &layer, &sinch);
            let url = format!("{}/v1/projects/proj-1/x", sinch.url());
            client
                .send(Method::POST, &url, payload.clone())
                .await
                .answered();
            let first = header(&sinch.last_request().unwrap(), "authorization");

            sinch.answer_expired_next(1);
            let (status, body) = client
                .send(Method::POST, &url, payload.clone())
                .await
                .answered();
            assert_eq!(status, 200, "{adapter:?}: {body}");
            assert_eq!(sinch.api_requests(), 3, "{adapter:?}: one resend");
            assert_eq!(sinch.token_requests(), 2, "{adapter:?}: one refresh");
            let requests = sinch.requests();
            let (refused, resent) = (&requests[1], &requests[2]);
            assert_eq!(header(refused, "authorization"), first);
            assert_ne!(
                header(resent, "authorization"),
                first,
                "the resend carries the new token"
            );
            assert_eq!(
                refused.body, resent.body,
                "the resend carries the same body"
            );
            assert_eq!(
                header(resent, "content-type"),
                header(refused, "content-type")
            );
        }
    }
}

#[tokio::test]
async fn a_server_that_always_says_expired_gets_exactly_one_resend_per_request() {
    for adapter in ADAPTERS {
        let sinch = stand_in().await;
        let layer = builder(Scheme::OAuth2, &sinch)
            .refresh(fault_config())
            .build()
            .unwrap();
        let client = client(adapter, &layer, &sinch);
        let url = format!("{}/v1/projects/proj-1/x", sinch.url());
        client
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        sinch.answer_expired_always(true);
        for _ in 0..5 {
            let (status, _) = client
                .send(Method::GET, &url, Payload::None)
                .await
                .answered();
            assert_eq!(
                status, 401,
                "{adapter:?}: the second 401 goes to the caller"
            );
        }
        assert_eq!(sinch.api_requests(), 1 + 5 * 2, "{adapter:?}");
    }
}

#[tokio::test]
async fn no_resend_when_resends_are_turned_off() {
    for adapter in ADAPTERS {
        let sinch = stand_in().await;
        let layer = builder(Scheme::OAuth2, &sinch)
            .resend_on_expired(false)
            .build()
            .unwrap();
        let client = client(adapter, &layer, &sinch);
        let url = format!("{}/v1/x", sinch.url());
        sinch.answer_expired_next(1);
        let (status, _) = client
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        assert_eq!(status, 401, "{adapter:?}");
        assert_eq!(sinch.api_requests(), 1, "{adapter:?}");
    }
}

#[tokio::test]
async fn a_streaming_body_cannot_be_signed_and_is_not_sent() {
    let sinch = stand_in().await;
    let layer = builder(Scheme::ApplicationSigned, &sinch).build().unwrap();
    let client = client(Adapter::Reqwest, &layer, &sinch);
    let url = format!("{}/verification/v1/verifications", sinch.url());
    let error = client
        .send(Method::POST, &url, Payload::JsonStream(JSON))
        .await
        .refused();
    assert!(matches!(error, AuthError::UnsignableBody), "{error:?}");
    assert!(error.to_string().contains("stream"), "{error}");
    assert_eq!(sinch.api_requests(), 0);

    // The same through the public helper, on the middleware's own error type.
    let reqwest = reqwest_client(SinchAuthMiddleware::new(&layer));
    let error = reqwest
        .post(&url)
        .body(reqwest::Body::wrap(Full::new(Bytes::from_static(b"{}"))))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_middleware());
    assert!(matches!(
        auth_error(&error),
        Some(AuthError::UnsignableBody)
    ));
    let shown = format!("{error} {error:?}");
    for secret in SECRETS {
        assert!(!shown.contains(secret), "secret in {shown}");
    }
}

#[tokio::test]
async fn a_streaming_body_under_a_token_scheme_is_sent_but_not_resent() {
    let sinch = stand_in().await;
    let layer = builder(Scheme::OAuth2, &sinch)
        .refresh(fault_config())
        .build()
        .unwrap();
    let client = client(Adapter::Reqwest, &layer, &sinch);
    let url = format!("{}/v1/x", sinch.url());
    let (status, body) = client
        .send(Method::POST, &url, Payload::JsonStream(JSON))
        .await
        .answered();
    assert_eq!(status, 200, "{body}");
    assert_eq!(sinch.last_request().unwrap().body, JSON.as_bytes());

    // A stream cannot be copied before sending: the 401 goes to the caller,
    // and the refused token is still cleared for the next request.
    sinch.answer_expired_next(1);
    let (status, _) = client
        .send(Method::POST, &url, Payload::JsonStream(JSON))
        .await
        .answered();
    assert_eq!(status, 401);
    assert_eq!(sinch.api_requests(), 2);
    let (status, _) = client
        .send(Method::POST, &url, Payload::Json(JSON))
        .await
        .answered();
    assert_eq!(status, 200);
    assert_eq!(sinch.token_requests(), 2);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_a_typed_error_through_both_adapters() {
    let sinch = stand_in().await;
    for adapter in ADAPTERS {
        let layer = builder(Scheme::ApplicationSigned, &sinch)
            .max_body_bytes(16)
            .build()
            .unwrap();
        let client = client(adapter, &layer, &sinch);
        let url = format!("{}/verification/v1/verifications", sinch.url());
        let error = client
            .send(Method::POST, &url, Payload::Json(JSON))
            .await
            .refused();
        assert!(
            matches!(error, AuthError::BodyTooLarge { limit: 16 }),
            "{adapter:?}: {error:?}"
        );
    }
    assert_eq!(sinch.api_requests(), 0, "nothing was sent");
}

#[tokio::test]
async fn hosts_outside_the_allowlist_are_untouched_or_refused_through_both_adapters() {
    let sinch = stand_in().await;
    let url = format!("{}/xms/v1/plan-1/batches", sinch.url());
    for adapter in ADAPTERS {
        // Loopback turned off: the stand-in is just another host, and so a
        // token host there is refused by the same rule, typed.
        let error = builder(Scheme::ServicePlanBearer, &sinch)
            .allow_loopback(false)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::InvalidUrl {
                    field: "auth host",
                    ..
                }
            ),
            "{error:?}"
        );
        let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials()))
            .scheme(Scheme::ServicePlanBearer)
            .allow_loopback(false)
            .build()
            .unwrap();
        let (status, _) = client(adapter, &layer, &sinch)
            .send(Method::GET, &url, Payload::None)
            .await
            .answered();
        assert_eq!(status, 401, "{adapter:?}");
        let recorded = sinch.last_request().unwrap();
        assert!(
            !recorded.headers.contains_key(AUTHORIZATION),
            "{adapter:?}: credentials leaked"
        );
        assert!(!recorded.headers.contains_key("x-timestamp"));

        let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials()))
            .scheme(Scheme::ServicePlanBearer)
            .allow_loopback(false)
            .reject_disallowed_hosts(true)
            .build()
            .unwrap();
        let before = sinch.api_requests();
        let error = client(adapter, &layer, &sinch)
            .send(Method::GET, &url, Payload::None)
            .await
            .refused();
        assert!(
            matches!(error, AuthError::HostNotAllowed { ref host } if host == "127.0.0.1"),
            "{adapter:?}: {error:?}"
        );
        assert_eq!(
            sinch.api_requests(),
            before,
            "refused requests are not sent"
        );
    }
}

#[tokio::test]
async fn an_authorization_header_already_there_is_kept_through_both_adapters() {
    let sinch = stand_in().await;
    let url = format!("{}/xms/v1/plan-1/batches", sinch.url());
    let mut own = HeaderMap::new();
    own.insert(AUTHORIZATION, "Bearer API-TOKEN-m2".parse().unwrap());
    own.insert("x-trace", "1".parse().unwrap());
    for adapter in ADAPTERS {
        let layer = builder(Scheme::ServicePlanBasic, &sinch).build().unwrap();
        let (status, body) = client(adapter, &layer, &sinch)
            .send_with(Method::GET, &url, Payload::None, own.clone())
            .await
            .answered();
        assert_eq!(status, 200, "{body}");
        let recorded = sinch.last_request().unwrap();
        assert_eq!(recorded.headers[AUTHORIZATION], "Bearer API-TOKEN-m2");
        assert_eq!(recorded.headers["x-trace"], "1");
    }
}

#[test]
fn debug_output_carries_no_secret() {
    let layer = SinchAuthLayer::by_host(StaticCredentials::new(credentials())).unwrap();
    let middleware = SinchAuthMiddleware::from(layer);
    let shown = format!("{middleware:?}");
    assert!(shown.starts_with("SinchAuthMiddleware"), "{shown}");
    for secret in SECRETS {
        assert!(!shown.contains(secret), "secret in {shown}");
    }
}
