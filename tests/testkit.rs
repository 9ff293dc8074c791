//! The test kit itself: the stand-in judges application signatures with its
//! own implementation of protocol notes §4 (the known vectors S1–S3 go through it over
//! HTTP), reads one injected clock for everything time-based, and answers
//! API requests as scripted per path and method.

mod common;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use common::{body_text, empty};
use hmac::Mac as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use sinch_auth::clock::ManualClock;
use sinch_auth::testkit::{ApiAnswer, Route, SinchStandIn, StandInClient};
use sinch_auth::{
    AccessKey, ApplicationCredentials, Scheme, ServicePlan, SinchAuthLayer, StaticCredentials,
};
use tower::{ServiceBuilder, ServiceExt};

/// Sends `request` to the stand-in as is, without the layer.
async fn raw(
    client: &StandInClient,
    request: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, String) {
    let response = client.request(request).await.expect("the stand-in answers");
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body_text(body).await)
}

/// One of protocol notes §4's vectors, as a request to the stand-in.
struct Vector {
    key: &'static str,
    secret: &'static str,
    method: Method,
    content_type: &'static str,
    timestamp: &'static str,
    path: &'static str,
    body: &'static [u8],
    signature: &'static str,
}

const S1_BODY: &[u8] =
    br#"{"identity":{"type":"number","endpoint":"+33444555666"},"method":"sms"}"#;
const S3_BODY: &[u8] =
    br#"{"identity": {"type": "number", "endpoint": "+46700000000"}, "method": "sms"}"#;

fn vectors() -> Vec<Vector> {
    let s1 = Vector {
        key: "my-key-id",
        secret: "bXkta2V5LXNlY3JldA==",
        method: Method::POST,
        content_type: "application/json; charset=UTF-8",
        timestamp: "2023-11-22T09:10:11.999Z",
        path: "/path/pathParamValue",
        body: S1_BODY,
        signature: "QP3OzQZVzRZAEev6DBLvJkgpiqyZPuXYsc7oyjUV0K8=",
    };
    let s2 = Vector {
        method: Method::GET,
        content_type: "application/json",
        body: b"",
        signature: "nsrLDvP6KVD/dAxb3IfAncdwjPFJVWSrseEFOcZge+A=",
        ..s1
    };
    let s3 = Vector {
        key: "669E367E-6BBA-48AB-AF15-266871C28135",
        secret: "BeIukql3pTKJ8RGL5zo0DA==",
        method: Method::POST,
        content_type: "application/json",
        timestamp: "2014-06-04T13:41:58Z",
        path: "/verification/v1/verifications",
        body: S3_BODY,
        signature: "h6rXrFayOoggyHW4ymnLlfSDkZZPg6j98lHzvOXVjvw=",
    };
    let s3_empty = Vector {
        method: Method::POST,
        body: b"",
        signature: "srx3SkKXw/ryFJLfwFFzZTigPxR/1+9Ae+eB3olDIjM=",
        ..s3
    };
    vec![s1, s2, s3, s3_empty]
}

impl Vector {
    fn app(&self) -> ApplicationCredentials {
        ApplicationCredentials::new(self.key, self.secret).unwrap()
    }

    fn request(&self, base: &str, path: &str, signature: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(self.method.clone())
            .uri(format!("{base}{path}"))
            .header(CONTENT_TYPE, self.content_type)
            .header("x-timestamp", self.timestamp)
            .header(
                AUTHORIZATION,
                format!("Application {}:{signature}", self.key),
            )
            .body(Full::new(Bytes::from_static(self.body)))
            .unwrap()
    }
}

async fn stand_in_for_vectors() -> SinchStandIn {
    let mut builder = SinchStandIn::builder();
    for vector in vectors() {
        builder = builder.application(&vector.app());
    }
    builder.start().await.unwrap()
}

#[tokio::test]
async fn the_stand_in_accepts_spec_vectors_s1_to_s3_sent_verbatim() {
    let sinch = stand_in_for_vectors().await;
    let client = sinch.client();
    for vector in vectors() {
        let request = vector.request(&sinch.url(), vector.path, vector.signature);
        let (status, _, body) = raw(&client, request).await;
        assert_eq!(status, 200, "{} {}: {body}", vector.method, vector.path);
        assert_eq!(
            sinch.last_request().unwrap().accepted_as.as_deref(),
            Some(format!("application:{}", vector.key).as_str())
        );
        // The query is not signed (protocol notes §4, our rule).
        let with_query = format!("{}?page=2&x=%20", vector.path);
        let (status, _, _) = raw(
            &client,
            vector.request(&sinch.url(), &with_query, vector.signature),
        )
        .await;
        assert_eq!(status, 200, "{} {with_query}", vector.method);
    }
}

#[tokio::test]
async fn the_stand_in_refuses_spec_vectors_with_any_signed_part_changed() {
    let sinch = stand_in_for_vectors().await;
    let client = sinch.client();
    for vector in vectors() {
        let url = sinch.url();
        let mut tampered = vec![
            (
                "another path",
                vector.request(&url, "/path/other", vector.signature),
            ),
            (
                "another signature",
                vector.request(
                    &url,
                    vector.path,
                    "QP3OzQZVzRZAEev6DBLvJkgpiqyZPuXYsc7oyjUV0K9=",
                ),
            ),
        ];
        let mut other_method = vector.request(&url, vector.path, vector.signature);
        *other_method.method_mut() = Method::PUT;
        tampered.push(("another method", other_method));
        let mut other_type = vector.request(&url, vector.path, vector.signature);
        other_type
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        tampered.push(("another content type", other_type));
        let mut other_time = vector.request(&url, vector.path, vector.signature);
        other_time.headers_mut().insert(
            "x-timestamp",
            HeaderValue::from_static("2019-11-03T10:59:41Z"),
        );
        tampered.push(("another timestamp", other_time));
        let mut other_body = vector.request(&url, vector.path, vector.signature);
        *other_body.body_mut() = Full::new(Bytes::from_static(b"{}"));
        tampered.push(("another body", other_body));
        for (what, request) in tampered {
            let (status, headers, _) = raw(&client, request).await;
            assert_eq!(
                status, 401,
                "{} {}: {what} was accepted",
                vector.method, vector.path
            );
            assert!(headers.contains_key(WWW_AUTHENTICATE));
        }
    }
    assert_eq!(sinch.api_accepted(), 0);
}

/// `base64(HMAC-SHA256(secret, text))`, written out in the test.
fn hmac_b64(secret: &[u8], text: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(text.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_stand_in_signs_the_decoded_path_so_a_signer_that_signs_it_encoded_fails() {
    // What a signer with the path bug would send: the escapes signed as written.
    let app = ApplicationCredentials::new("app-k", "YXBwLXNlY3JldA==").unwrap();
    let sinch = SinchStandIn::builder()
        .application(&app)
        .start()
        .await
        .unwrap();
    let ts = "2024-01-01T00:00:00.000Z";
    let send = |signed_path: &'static str| {
        let signature = hmac_b64(
            b"app-secret",
            &format!("GET\n\n\nx-timestamp:{ts}\n{signed_path}"),
        );
        Request::get(format!("{}/calling/v1/a%20b", sinch.url()))
            .header("x-timestamp", ts)
            .header(AUTHORIZATION, format!("Application app-k:{signature}"))
            .body(empty())
            .unwrap()
    };
    let client = sinch.client();
    assert_eq!(raw(&client, send("/calling/v1/a b")).await.0, 200);
    assert_eq!(raw(&client, send("/calling/v1/a%20b")).await.0, 401);
}

#[tokio::test]
async fn requests_the_layer_signs_are_accepted_by_the_independent_checker() {
    let vector = &vectors()[2];
    let sinch = stand_in_for_vectors().await;
    let layer = SinchAuthLayer::new(
        StaticCredentials::new(vector.app()),
        Scheme::ApplicationSigned,
    )
    .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    for path in [
        "/verification/v1/verifications",
        "/calling/v1/calls/id/a%20b%2Fc?x=1",
    ] {
        let request = Request::post(format!("{}{path}", sinch.url()))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(S3_BODY)))
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

// ---- time -------------------------------------------------------------

fn key() -> AccessKey {
    AccessKey::new("proj-k", "key-k", "KEY-SECRET-k").unwrap()
}

const START: u64 = 1_700_000_000;

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START)
}

/// Fetches a token from the stand-in by hand.
async fn fetch_token(sinch: &SinchStandIn) -> String {
    let basic = STANDARD.encode("key-k:KEY-SECRET-k");
    let request = Request::post(format!("{}/oauth2/token", sinch.url()))
        .header(AUTHORIZATION, format!("Basic {basic}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))
        .unwrap();
    let (status, _, body) = raw(&sinch.client(), request).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn api_with(sinch: &SinchStandIn, authorization: &str) -> (StatusCode, http::HeaderMap) {
    let request = Request::get(format!("{}/v1/x", sinch.url()))
        .header(AUTHORIZATION, authorization)
        .body(empty())
        .unwrap();
    let (status, headers, _) = raw(&sinch.client(), request).await;
    (status, headers)
}

#[tokio::test]
async fn issued_tokens_take_iat_exp_and_expiry_from_the_injected_clock() {
    let clock = ManualClock::new(start());
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .token_lifetime(Duration::from_secs(600))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let token = fetch_token(&sinch).await;
    let claims = claims(&token);
    assert_eq!(claims["iat"], START);
    assert_eq!(claims["exp"], START + 600);

    let bearer = format!("Bearer {token}");
    clock.advance(Duration::from_millis(599_999));
    assert_eq!(api_with(&sinch, &bearer).await.0, 200);
    clock.advance(Duration::from_millis(1));
    let (status, headers) = api_with(&sinch, &bearer).await;
    assert_eq!(status, 401);
    assert!(
        headers[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn strict_expiry_refuses_tokens_from_their_exp_second_not_a_lifetime_after_issue() {
    for strict in [false, true] {
        // Issued three quarters into a second: `exp` rounds that down.
        let issued_at = start() + Duration::from_millis(750);
        let clock = ManualClock::new(issued_at);
        let sinch = SinchStandIn::builder()
            .access_key(&key())
            .token_lifetime(Duration::from_secs(600))
            .clock(clock.clone())
            .strict_expiry(strict)
            .start()
            .await
            .unwrap();
        let token = fetch_token(&sinch).await;
        assert_eq!(claims(&token)["iat"], START);
        // Strict: `iat + expires_in`. Default: the second at or after the
        // moment the token is refused.
        let exp = if strict { START + 600 } else { START + 601 };
        assert_eq!(claims(&token)["exp"], exp, "strict: {strict}");
        let bearer = format!("Bearer {token}");
        clock.set(start() + Duration::from_millis(599_999));
        assert_eq!(api_with(&sinch, &bearer).await.0, 200, "strict: {strict}");
        clock.set(start() + Duration::from_secs(600));
        let expected = if strict { 401 } else { 200 };
        assert_eq!(
            api_with(&sinch, &bearer).await.0,
            expected,
            "strict: {strict}"
        );
        clock.set(issued_at + Duration::from_secs(600));
        assert_eq!(api_with(&sinch, &bearer).await.0, 401, "strict: {strict}");
    }
}

/// An HS256 JWT, written out in the test.
fn self_signed(key: &str, secret: &[u8], iat: u64, exp: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{key}","iat":{iat},"exp":{exp}}}"#));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{claims}.{signature}")
}

#[tokio::test]
async fn self_signed_jwts_expire_by_the_injected_clock() {
    let app = ApplicationCredentials::new("app-k", "YXBwLXNlY3JldA==").unwrap();
    let clock = ManualClock::new(start());
    let sinch = SinchStandIn::builder()
        .application(&app)
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let jwt = format!(
        "Bearer {}",
        self_signed("app-k", b"app-secret", START, START + 60)
    );
    assert_eq!(api_with(&sinch, &jwt).await.0, 200);
    assert_eq!(
        sinch.last_request().unwrap().accepted_as.as_deref(),
        Some("jwt:app-k")
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(api_with(&sinch, &jwt).await.0, 401);
    // Signed with another key: refused whatever the time.
    clock.set(start());
    let forged = format!(
        "Bearer {}",
        self_signed("app-k", b"not-the-secret", START, START + 60)
    );
    assert_eq!(api_with(&sinch, &forged).await.0, 401);
}

#[tokio::test]
async fn the_timestamp_window_refuses_stale_and_future_signed_requests_by_the_injected_clock() {
    let vector = &vectors()[0];
    // S1 was signed at 2023-11-22T09:10:11.999Z.
    let signed_at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_644_211_999);
    let clock = ManualClock::new(signed_at);
    let sinch = SinchStandIn::builder()
        .application(&vector.app())
        .clock(clock.clone())
        .timestamp_window(Duration::from_secs(300))
        .start()
        .await
        .unwrap();
    let client = sinch.client();
    let send = || vector.request(&sinch.url(), vector.path, vector.signature);
    assert_eq!(raw(&client, send()).await.0, 200);
    clock.advance(Duration::from_secs(300));
    assert_eq!(
        raw(&client, send()).await.0,
        200,
        "at the edge of the window"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(raw(&client, send()).await.0, 401, "stale");
    clock.set(signed_at - Duration::from_secs(301));
    assert_eq!(raw(&client, send()).await.0, 401, "from the future");
    // Without a window, the stand-in does not judge the time.
    let lenient = SinchStandIn::builder()
        .application(&vector.app())
        .start()
        .await
        .unwrap();
    let request = vector.request(&lenient.url(), vector.path, vector.signature);
    assert_eq!(raw(&lenient.client(), request).await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn the_default_clock_follows_paused_tokio_time() {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", fetch_token(&sinch).await);
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert_eq!(api_with(&sinch, &bearer).await.0, 200);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(api_with(&sinch, &bearer).await.0, 401);
}

// ---- scripted answers --------------------------------------------------

fn plan() -> ServicePlan {
    ServicePlan::new("plan-k", "PLAN-TOKEN-k").unwrap()
}

async fn scripted_stand_in() -> SinchStandIn {
    SinchStandIn::builder()
        .service_plan(&plan())
        .start()
        .await
        .unwrap()
}

async fn call(
    sinch: &SinchStandIn,
    method: Method,
    path: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", sinch.url()))
        .header(AUTHORIZATION, "Bearer PLAN-TOKEN-k")
        .body(empty())
        .unwrap();
    raw(&sinch.client(), request).await
}

#[tokio::test]
async fn a_scripted_answer_is_sent_with_its_status_headers_and_body() {
    let sinch = scripted_stand_in().await;
    sinch.answer(
        "/xms/v1/plan-k/batches/b1",
        ApiAnswer::new(StatusCode::NOT_FOUND)
            .header("x-request-id", HeaderValue::from_static("r-1"))
            .header("set-cookie", HeaderValue::from_static("a=1"))
            .header("set-cookie", HeaderValue::from_static("b=2"))
            .body("no such batch"),
    );
    for _ in 0..2 {
        let (status, headers, body) =
            call(&sinch, Method::GET, "/xms/v1/plan-k/batches/b1?x=1").await;
        assert_eq!(status, 404);
        assert_eq!(headers["x-request-id"], "r-1");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(body, "no such batch");
    }
    // Other paths keep the default answer; everything is counted and recorded.
    let (status, _, body) = call(&sinch, Method::GET, "/xms/v1/plan-k/batches/b2").await;
    assert_eq!(status, 200);
    assert!(body.contains("bearer:service-plan:plan-k"), "{body}");
    assert_eq!(sinch.api_accepted(), 3);
    assert_eq!(sinch.requests().len(), 3);
}

#[tokio::test]
async fn one_shot_answers_are_served_in_order_before_the_default() {
    let sinch = scripted_stand_in().await;
    let path = "/v1/numbers";
    sinch.answer(
        path,
        ApiAnswer::new(StatusCode::OK).json(&serde_json::json!({"page": "last"})),
    );
    sinch.answer_in_turn(
        path,
        [
            ApiAnswer::new(StatusCode::SERVICE_UNAVAILABLE),
            ApiAnswer::new(StatusCode::TOO_MANY_REQUESTS)
                .header("retry-after", HeaderValue::from_static("3")),
        ],
    );
    sinch.answer_once(path, ApiAnswer::new(StatusCode::ACCEPTED).body("third"));
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (status, headers, body) = call(&sinch, Method::GET, path).await;
        seen.push((
            status.as_u16(),
            headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            body,
        ));
    }
    assert_eq!(
        seen,
        [
            (503, None, String::new()),
            (429, Some("3".to_owned()), String::new()),
            (202, None, "third".to_owned()),
            (200, None, r#"{"page":"last"}"#.to_owned()),
            (200, None, r#"{"page":"last"}"#.to_owned()),
        ]
    );
    let (_, headers, _) = call(&sinch, Method::GET, path).await;
    assert_eq!(headers[CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn a_route_for_one_method_wins_over_one_for_every_method() {
    let sinch = scripted_stand_in().await;
    let path = "/v1/things";
    sinch.answer(path, ApiAnswer::new(StatusCode::OK).body("any"));
    sinch.answer(
        Route::new(Method::POST, path),
        ApiAnswer::new(StatusCode::CREATED).body("post"),
    );
    sinch.answer(
        (Method::DELETE, path),
        ApiAnswer::new(StatusCode::NO_CONTENT),
    );
    assert_eq!(call(&sinch, Method::GET, path).await.2, "any");
    let (status, _, body) = call(&sinch, Method::POST, path).await;
    assert_eq!((status, body.as_str()), (StatusCode::CREATED, "post"));
    assert_eq!(call(&sinch, Method::DELETE, path).await.0, 204);
    // A one-shot for every method comes before a method's default.
    sinch.answer_once(path, ApiAnswer::new(StatusCode::IM_A_TEAPOT));
    assert_eq!(call(&sinch, Method::POST, path).await.0, 418);
    assert_eq!(call(&sinch, Method::POST, path).await.0, 201);
    // A later default for a route replaces the earlier one.
    sinch.answer(path, ApiAnswer::new(StatusCode::OK).body("any, again"));
    assert_eq!(call(&sinch, Method::GET, path).await.2, "any, again");
    sinch.clear_answers();
    let (status, _, body) = call(&sinch, Method::POST, path).await;
    assert_eq!(status, 200);
    assert!(body.contains("accepted_as"), "{body}");
}

#[tokio::test]
async fn scripted_answers_go_only_to_requests_that_authenticate() {
    let sinch = scripted_stand_in().await;
    let path = "/v1/secret-report";
    sinch.answer_once(path, ApiAnswer::new(StatusCode::OK).body("report"));
    let request = Request::get(format!("{}{path}", sinch.url()))
        .header(AUTHORIZATION, "Bearer wrong-token")
        .body(empty())
        .unwrap();
    let (status, _, body) = raw(&sinch.client(), request).await;
    assert_eq!(status, 401);
    assert_ne!(body, "report");
    // The refused request did not use up the one-shot answer.
    assert_eq!(call(&sinch, Method::GET, path).await.2, "report");
    assert_eq!(sinch.api_rejected(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_layer_passes_scripted_answers_through_and_resends_once_on_expired() {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    let path = "/v1/projects/proj-k/activeNumbers";
    sinch.answer_once(
        path,
        ApiAnswer::new(StatusCode::BAD_REQUEST).json(&serde_json::json!({"error": "bad"})),
    );
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()
        .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    // The first attempt is refused as expired; the resend gets the scripted answer.
    sinch.answer_expired_next(1);
    let (status, body) = common::send(&client, common::get(format!("{}{path}", sinch.url()))).await;
    assert_eq!(status, 400);
    assert_eq!(body, r#"{"error":"bad"}"#);
    assert_eq!(sinch.api_requests(), 2);
    let (status, _) = common::send(&client, common::get(format!("{}{path}", sinch.url()))).await;
    assert_eq!(status, 200);
}
