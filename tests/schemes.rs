//! Each scheme, end to end through `SinchAuthLayer` over hyper-util's client,
//! against the loopback Sinch stand-in.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Capture, get, send};
use http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sinch_auth::scheme::SelfSignedClaims;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::{
    AccessKey, ApplicationCredentials, AuthError, BasicCredentials, BearerToken, ConfigError,
    CredentialKind, Credentials, Scheme, ServiceError, ServicePlan, SinchAuthLayer,
    StaticCredentials,
};
use tower::{ServiceBuilder, ServiceExt};

fn credentials() -> Credentials {
    Credentials::builder()
        .access_key(AccessKey::new("proj-1", "key-1", "KEY-SECRET-s1").unwrap())
        .application(ApplicationCredentials::new("app-1", "YXBwLXNlY3JldC1ieXRlcw==").unwrap())
        .service_plan(ServicePlan::new("plan-1", "API-TOKEN-s2").unwrap())
        .bearer(BearerToken::new("PLAIN-BEARER-s3").unwrap())
        .basic(BasicCredentials::new("user-1", "PASSWORD-s4").unwrap())
        .build()
}

async fn stand_in(creds: &Credentials) -> SinchStandIn {
    SinchStandIn::builder()
        .access_key(creds.access_key().unwrap())
        .application(creds.application().unwrap())
        .service_plan(creds.service_plan().unwrap())
        .start()
        .await
        .unwrap()
}

fn layer(creds: Credentials, scheme: Scheme, sinch: &SinchStandIn) -> SinchAuthLayer {
    SinchAuthLayer::builder(StaticCredentials::new(creds))
        .scheme(scheme)
        .auth_host(&sinch.url())
        .build()
        .unwrap()
}

fn authorization(sinch: &SinchStandIn) -> String {
    sinch.last_request().unwrap().headers[AUTHORIZATION]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn service_plan_bearer_sends_the_api_token_as_sinch_sdks_do() {
    let creds = credentials();
    let sinch = stand_in(&creds).await;
    let client = ServiceBuilder::new()
        .layer(layer(creds, Scheme::ServicePlanBearer, &sinch))
        .service(sinch.client());
    let (status, body) = send(
        &client,
        get(format!("{}/xms/v1/plan-1/batches", sinch.url())),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(authorization(&sinch), "Bearer API-TOKEN-s2");
    assert!(body.contains("bearer:service-plan:plan-1"));
    assert_eq!(sinch.token_requests(), 0);
}

#[tokio::test]
async fn service_plan_basic_is_base64_of_plan_id_and_token() {
    let creds = credentials();
    let sinch = stand_in(&creds).await;
    let client = ServiceBuilder::new()
        .layer(layer(creds, Scheme::ServicePlanBasic, &sinch))
        .service(sinch.client());
    let (status, body) = send(&client, get(format!("{}/v1/legacy", sinch.url()))).await;
    assert_eq!(status, 200, "{body}");
    let expected = base64::engine::general_purpose::STANDARD.encode("plan-1:API-TOKEN-s2");
    assert_eq!(authorization(&sinch), format!("Basic {expected}"));
    assert!(body.contains("basic:service-plan:plan-1"));
}

#[tokio::test]
async fn application_basic_is_key_and_secret_text() {
    let creds = credentials();
    let sinch = stand_in(&creds).await;
    let client = ServiceBuilder::new()
        .layer(layer(creds, Scheme::ApplicationBasic, &sinch))
        .service(sinch.client());
    let (status, body) = send(&client, get(format!("{}/verification/v1/x", sinch.url()))).await;
    assert_eq!(status, 200, "{body}");
    let expected =
        base64::engine::general_purpose::STANDARD.encode("app-1:YXBwLXNlY3JldC1ieXRlcw==");
    assert_eq!(authorization(&sinch), format!("Basic {expected}"));
}

#[tokio::test]
async fn plain_bearer_and_basic_carry_exactly_the_configured_values() {
    let capture = Capture::default();
    for (scheme, expected) in [
        (Scheme::Bearer, "Bearer PLAIN-BEARER-s3".to_owned()),
        (
            Scheme::Basic,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("user-1:PASSWORD-s4")
            ),
        ),
    ] {
        let layer = SinchAuthLayer::new(StaticCredentials::new(credentials()), scheme).unwrap();
        let service = ServiceBuilder::new()
            .layer(layer)
            .service(capture.service());
        service
            .oneshot(get("https://api.sinch.com/anything"))
            .await
            .unwrap();
        let seen = capture.last();
        assert_eq!(seen.headers[AUTHORIZATION], expected.as_str());
        assert!(seen.headers[AUTHORIZATION].is_sensitive(), "{scheme}");
    }
}

#[tokio::test]
async fn self_signed_jwt_is_hs256_with_the_decoded_secret_and_is_reused() {
    let creds = credentials();
    let sinch = stand_in(&creds).await;
    let client = ServiceBuilder::new()
        .layer(layer(creds, Scheme::SelfSignedJwt, &sinch))
        .service(sinch.client());
    let (status, body) = send(&client, get(format!("{}/v1/a", sinch.url()))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("jwt:app-1"));
    let first = authorization(&sinch);
    let jwt = first.strip_prefix("Bearer ").unwrap();

    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<SelfSignedClaims>(
        jwt,
        &DecodingKey::from_secret(b"app-secret-bytes"),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims.iss, "app-1");
    assert_eq!(claims.exp - claims.iat, 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(claims.iat.abs_diff(now) <= 5);

    // Not re-minted per request.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..5 {
        send(&client, get(format!("{}/v1/a", sinch.url()))).await;
        assert_eq!(authorization(&sinch), first);
    }
}

#[tokio::test]
async fn oauth2_fetches_one_token_for_many_requests() {
    let creds = credentials();
    let sinch = stand_in(&creds).await;
    let client = ServiceBuilder::new()
        .layer(layer(creds, Scheme::OAuth2, &sinch))
        .service(sinch.client());
    for _ in 0..20 {
        let (status, body) = send(
            &client,
            get(format!("{}/v1/projects/proj-1/x", sinch.url())),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("oauth2:key-1"));
    }
    assert_eq!(sinch.token_requests(), 1);
}

#[tokio::test]
async fn requests_to_hosts_outside_the_allowlist_pass_untouched() {
    let capture = Capture::default();
    let layer = SinchAuthLayer::new(StaticCredentials::new(credentials()), Scheme::Bearer).unwrap();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(capture.service());
    for url in [
        "http://us.sms.api.sinch.com/xms",     // sinch, but not https
        "https://evilsinch.com/",              // suffix without a dot
        "https://sinch.com.attacker.example/", // sinch.com as a prefix
        "https://example.com/",
        "http://10.0.0.1/",
        "/relative/only",
    ] {
        service.clone().oneshot(get(url)).await.unwrap();
        assert!(
            !capture.last().headers.contains_key(AUTHORIZATION),
            "credentials leaked to {url}"
        );
    }
    for url in [
        "https://sinch.com/",
        "https://us.sms.api.sinch.com/xms",
        "https://US.SMS.API.SINCH.COM./xms",
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://[::1]:9/",
    ] {
        service.clone().oneshot(get(url)).await.unwrap();
        assert_eq!(
            capture.last().headers[AUTHORIZATION],
            "Bearer PLAIN-BEARER-s3",
            "{url}"
        );
    }
}

#[tokio::test]
async fn allowlist_can_be_widened_loopback_turned_off_and_misses_rejected() {
    let capture = Capture::default();
    let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials()))
        .scheme(Scheme::Bearer)
        .allow_domain("proxy.example.com")
        .allow_loopback(false)
        .reject_disallowed_hosts(true)
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(capture.service());
    service
        .clone()
        .oneshot(get("https://eu.proxy.example.com/x"))
        .await
        .unwrap();
    assert!(capture.last().headers.contains_key(AUTHORIZATION));
    let before = capture.all().len();
    for url in ["http://127.0.0.1:9/", "https://example.com/"] {
        let error = service.clone().oneshot(get(url)).await.unwrap_err();
        assert!(
            matches!(error, ServiceError::Auth(AuthError::HostNotAllowed { .. })),
            "{error:?}"
        );
    }
    assert_eq!(
        capture.all().len(),
        before,
        "rejected requests must not be sent"
    );
}

#[tokio::test]
async fn an_existing_authorization_header_is_kept_unless_overwrite_is_asked() {
    let capture = Capture::default();
    let mut request = get("https://api.sinch.com/x");
    request
        .headers_mut()
        .insert(AUTHORIZATION, "Bearer callers-own".parse().unwrap());
    let keep = SinchAuthLayer::new(StaticCredentials::new(credentials()), Scheme::Bearer).unwrap();
    ServiceBuilder::new()
        .layer(keep)
        .service(capture.service())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer callers-own");

    let mut request = get("https://api.sinch.com/x");
    request
        .headers_mut()
        .insert(AUTHORIZATION, "Bearer callers-own".parse().unwrap());
    let overwrite = SinchAuthLayer::builder(StaticCredentials::new(credentials()))
        .scheme(Scheme::Bearer)
        .overwrite_authorization(true)
        .build()
        .unwrap();
    ServiceBuilder::new()
        .layer(overwrite)
        .service(capture.service())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(
        capture.last().headers[AUTHORIZATION],
        "Bearer PLAIN-BEARER-s3"
    );
    assert_eq!(
        capture.last().headers.get_all(AUTHORIZATION).iter().count(),
        1
    );
}

#[test]
fn a_fixed_scheme_needs_its_credential_at_build_time() {
    let only_plan = StaticCredentials::new(ServicePlan::new("p", "t").unwrap());
    let err = SinchAuthLayer::new(only_plan.clone(), Scheme::OAuth2).unwrap_err();
    assert_eq!(
        err,
        ConfigError::MissingCredential {
            scheme: "OAuth2",
            needs: CredentialKind::AccessKey
        }
    );
    assert!(SinchAuthLayer::new(only_plan.clone(), Scheme::ApplicationSigned).is_err());
    assert!(SinchAuthLayer::new(only_plan.clone(), Scheme::ServicePlanBearer).is_ok());
    // A custom token source needs no access key.
    let custom = SinchAuthLayer::builder(only_plan)
        .scheme(Scheme::OAuth2)
        .token_source(sinch_auth::token::source_fn(|_| async {
            Ok(sinch_auth::token::Token::new("t", Duration::from_secs(60)))
        }))
        .build();
    assert!(custom.is_ok());
}

#[test]
fn bad_options_are_reported_by_build() {
    let creds = StaticCredentials::new(ServicePlan::new("p", "t").unwrap());
    let build = |b: sinch_auth::SinchAuthBuilder| b.build().unwrap_err();
    assert!(matches!(
        build(SinchAuthLayer::builder(creds.clone()).auth_host("http://auth.example.com")),
        ConfigError::InvalidUrl { .. }
    ));
    assert!(matches!(
        build(SinchAuthLayer::builder(creds.clone()).allow_domain("*.example.com")),
        ConfigError::InvalidSetting { .. }
    ));
    assert!(matches!(
        build(SinchAuthLayer::builder(creds).route("user@host:1", Scheme::Bearer)),
        ConfigError::InvalidSetting { .. }
    ));
}

#[tokio::test]
async fn the_inner_service_error_stays_reachable_and_typed() {
    #[derive(Debug, PartialEq)]
    struct Boom(u32);
    impl std::fmt::Display for Boom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "boom {}", self.0)
        }
    }
    impl std::error::Error for Boom {}

    let layer = SinchAuthLayer::new(StaticCredentials::new(credentials()), Scheme::Bearer).unwrap();
    let failing = tower::service_fn(
        |_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
            Err::<http::Response<()>, _>(Boom(7))
        },
    );
    let error = ServiceBuilder::new()
        .layer(layer)
        .service(failing)
        .oneshot(get("https://api.sinch.com/x"))
        .await
        .unwrap_err();
    assert!(matches!(&error, ServiceError::Inner(Boom(7))));
    let source = std::error::Error::source(&error).unwrap();
    assert_eq!(source.to_string(), "boom 7");
    assert_eq!(error.into_inner(), Some(Boom(7)));
}

#[tokio::test]
async fn stacks_with_other_tower_layers() {
    let creds = credentials();
    let sinch = stand_in(&creds).await;
    let client = ServiceBuilder::new()
        .concurrency_limit(8)
        .layer(layer(creds, Scheme::ServicePlanBearer, &sinch))
        .map_request(|mut r: http::Request<_>| {
            r.headers_mut()
                .insert("x-stacked", http::HeaderValue::from_static("yes"));
            r
        })
        .service(sinch.client());
    let response = client
        .oneshot(get(format!("{}/x", sinch.url())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sinch.last_request().unwrap().headers["x-stacked"], "yes");
}
