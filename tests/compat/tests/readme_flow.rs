//! The README's flow (OAuth2, a self-signed JWT, application signing) in a
//! build where rustls has two crypto providers and no process default, and
//! jsonwebtoken has its aws-lc-rs backend: what a real application's
//! dependency graph looks like once it also uses hyper-rustls or reqwest
//! with their default features.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls::crypto::CryptoProvider;
use secrecy::ExposeSecret;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::TokenHttpClient;
use sinch_auth::{
    AccessKey, ApplicationCredentials, Credentials, Scheme, SinchAuthLayer, StaticCredentials,
};
use tokio::io::AsyncReadExt;
use tower::{ServiceBuilder, ServiceExt};

const APP_KEY: &str = "compat-app";
const APP_SECRET: &str = "Y29tcGF0LXNlY3JldA=="; // base64("compat-secret")

#[test]
fn this_build_is_the_one_that_used_to_panic() {
    // Both providers are compiled in, so rustls cannot choose one itself:
    // anything relying on the process default panics here.
    let _ring = rustls::crypto::ring::default_provider;
    let _aws_lc = rustls::crypto::aws_lc_rs::default_provider;
    assert!(CryptoProvider::get_default().is_none());
    let relying_on_the_default = std::panic::catch_unwind(rustls::ClientConfig::builder);
    assert!(relying_on_the_default.is_err());
}

#[tokio::test]
async fn the_readme_flow_runs_without_a_process_crypto_provider() {
    let access_key =
        || AccessKey::new("compat-project", "compat-key", "compat-key-secret").unwrap();
    let app = || ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&access_key())
        .application(&app())
        .start()
        .await
        .unwrap();
    let credentials = || {
        Credentials::builder()
            .access_key(access_key())
            .application(app())
            .build()
    };

    // The README's API client and the default token client both build
    // their TLS config here; neither may consult the process default.
    let _api_client = sinch_auth::tls::https_client::<Full<Bytes>>().unwrap();
    for (scheme, accepted_as) in [
        (Scheme::OAuth2, "oauth2:compat-key"),
        (Scheme::SelfSignedJwt, "jwt:compat-app"),
        (Scheme::ApplicationSigned, "application:compat-app"),
    ] {
        let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials()))
            .scheme(scheme)
            .auth_host(&sinch.url())
            // The default token client, minus proxy variables the CI
            // machine may happen to have: loopback must be reached directly.
            .token_client(TokenHttpClient::hyper_builder().direct().build().unwrap())
            .build()
            .unwrap();
        let client = ServiceBuilder::new().layer(layer).service(sinch.client());
        let request = http::Request::post(format!(
            "{}/v1/projects/compat-project/messages",
            sinch.url()
        ))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(br#"{"hello":"world"}"#)))
        .unwrap();
        let response = client.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "{scheme:?}");
        let seen = sinch.last_request().unwrap();
        assert_eq!(seen.accepted_as.as_deref(), Some(accepted_as), "{scheme:?}");

        if scheme == Scheme::SelfSignedJwt {
            // The application's own jsonwebtoken (aws-lc-rs) reads the
            // crate's JWT.
            let header = seen.headers[http::header::AUTHORIZATION].to_str().unwrap();
            let jwt = header.strip_prefix("Bearer ").unwrap();
            let claims = jsonwebtoken::decode::<serde_json::Value>(
                jwt,
                &DecodingKey::from_secret(b"compat-secret"),
                &Validation::new(Algorithm::HS256),
            )
            .unwrap()
            .claims;
            assert_eq!(claims["iss"], APP_KEY);
        }
    }
    assert_eq!(sinch.token_requests(), 1);

    // The pure schemes too.
    let app = app();
    let jwt = sinch_auth::scheme::self_signed_jwt(&app, 1_700_000_000, Duration::from_secs(60));
    assert_eq!(jwt.expose_secret().split('.').count(), 3);
    let token = sinch_auth::scheme::rtc::user_token(&app, "alice", std::time::SystemTime::now())
        .issue()
        .unwrap();
    assert_eq!(token.expose_secret().split('.').count(), 3);
    assert!(CryptoProvider::get_default().is_none());
}

#[tokio::test]
async fn the_https_client_handshakes_with_the_crates_provider() {
    // A loopback listener that takes the ClientHello and hangs up: the
    // client's key shares come from the provider, so this uses it for real.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut hello = vec![0u8; 1024];
        let n = socket.read(&mut hello).await.unwrap();
        hello.truncate(n);
        hello
    });

    let client = sinch_auth::tls::https_client::<Full<Bytes>>().unwrap();
    let request = http::Request::get(format!("https://localhost:{port}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(client.request(request).await.is_err());
    let hello = server.await.unwrap();
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    assert_eq!(hello.get(5), Some(&0x01), "a ClientHello");
    assert!(CryptoProvider::get_default().is_none());
}
