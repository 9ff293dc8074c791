//! The secret-leak audit: one sweep through the crate's scenarios — every
//! scheme, token refresh, token endpoint failures (including an endpoint that
//! quotes the credentials back), rotation, 401s, configuration errors and
//! verification rejects — with a `tracing` subscriber at TRACE capturing
//! everything (the `log` records of dependencies too), then a search for
//! every secret and every credential that went on the wire in:
//!
//! - the captured logs,
//! - `Debug` (plain and `{:#?}`) and `Display` of every public type and
//!   error met on the way,
//! - the panic message of `unwrap`/`expect` on every error (what a careless
//!   caller's crash report would hold).
//!
//! Secrets are distinctive (`LEAK-…-Q7v…`) so that a leak cannot hide in
//! common text; credentials derived from them (Basic encodings, OAuth2
//! access tokens, minted JWTs, signatures) are collected from what the
//! loopback stand-in received and searched for too.

mod common;

use common::LogBuffer;

use std::fmt::{Debug, Display};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::{Capture, get};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use secrecy::ExposeSecret;
use sinch_auth::clock::{Clock, ManualClock, SystemClock};
use sinch_auth::scheme::{application, rtc};
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::{
    FetchRequest, OAuth2Source, RefreshConfig, SelfSignedJwt, StoreKey, Token, TokenHttpClient,
    source_fn,
};
use sinch_auth::verify::{
    ApplicationVerifier, Freshness, NumbersVerifier, Verifier, VerifyLayer, WebhookVerifier,
    numbers_signature, webhook_signature,
};
use sinch_auth::{
    AccessKey, ApplicationCredentials, BasicCredentials, BearerToken, Credentials, EnvCredentials,
    RotatingCredentials, Scheme, ServicePlan, SinchAuthLayer, StaticCredentials,
};
use tower::{Layer, Service, ServiceExt};

const KEY_SECRET_1: &str = "LEAK-key-secret-Q7v1";
const KEY_SECRET_2: &str = "LEAK-key-secret-Q7v2";
const APP_SECRET_DECODED: &str = "LEAK-app-secret-Q7v3";
const API_TOKEN: &str = "LEAK-api-token-Q7v4";
const BEARER: &str = "LEAK-bearer-Q7v5";
const PASSWORD: &str = "LEAK-password-Q7v6";
const WEBHOOK_SECRET: &str = "LEAK-webhook-Q7v7";
const NUMBERS_SECRET: &str = "LEAK-numbers-Q7v8";
/// An access token the token endpoint sends that the crate must refuse (it
/// cannot go in a header), and must not quote while refusing it.
const BAD_ACCESS_TOKEN: &str = "LEAK-access token-Q7v9";
/// A password in a request URL's userinfo.
const URL_PASSWORD: &str = "LEAK-url-password-Q7vA";

/// Every raw secret has this in it: a leak of any of them, or of a piece of
/// one, shows up as this marker.
const MARKER: &str = "Q7v";

fn app_secret() -> String {
    STANDARD.encode(APP_SECRET_DECODED)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("this test binary installs the only global subscriber");
        buffer
    })
}

/// Everything searched for secrets besides the log, and the secrets derived
/// on the way.
#[derive(Default)]
struct Audit {
    texts: Vec<(String, String)>,
    derived: Vec<String>,
}

impl Audit {
    /// `Debug` of a value (plain and pretty).
    fn debug(&mut self, what: &str, value: &dyn Debug) {
        self.texts
            .push((format!("{what} Debug"), format!("{value:?}")));
        self.texts
            .push((format!("{what} Debug#"), format!("{value:#?}")));
    }

    /// `Debug`, `Display`, the source chain, and the panic message of
    /// unwrapping it.
    fn error<E: Debug + Display>(&mut self, what: &str, error: E) {
        self.debug(what, &error);
        self.texts
            .push((format!("{what} Display"), error.to_string()));
        self.texts
            .push((format!("{what} Display#"), format!("{error:#}")));
        self.panic_message(what, || {
            std::hint::black_box(Err::<(), E>(error)).expect("request failed");
        });
    }

    fn error_chain(&mut self, what: &str, error: &(dyn std::error::Error + 'static)) {
        let mut source = error.source();
        while let Some(cause) = source {
            self.texts
                .push((format!("{what} source Display"), cause.to_string()));
            self.texts
                .push((format!("{what} source Debug"), format!("{cause:?}")));
            source = cause.source();
        }
    }

    fn panic_message(&mut self, what: &str, f: impl FnOnce()) {
        let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("it panics");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        assert!(!message.is_empty(), "{what}: no panic message");
        self.texts.push((format!("{what} panic"), message));
    }

    /// Credentials the stand-in received: each one is a secret too.
    fn derived_from(&mut self, sinch: &SinchStandIn) {
        for request in sinch.requests() {
            let Some(value) = request.headers.get(AUTHORIZATION) else {
                continue;
            };
            let value = value.to_str().unwrap();
            let (scheme, credential) = value.split_once(' ').unwrap();
            let credential = if scheme.eq_ignore_ascii_case("application") {
                credential.rsplit(':').next().unwrap()
            } else {
                credential
            };
            if !self.derived.iter().any(|d| d == credential) {
                self.derived.push(credential.to_owned());
            }
        }
        self.debug("SinchStandIn", sinch);
        if let Some(last) = sinch.last_request() {
            self.debug("RecordedRequest", &last);
        }
    }
}

fn credentials(key_secret: &str) -> Credentials {
    Credentials::builder()
        .access_key(AccessKey::new("proj-a", "key-a", key_secret).unwrap())
        .application(ApplicationCredentials::new("app-a", app_secret()).unwrap())
        .service_plan(ServicePlan::new("plan-a", API_TOKEN).unwrap())
        .bearer(BearerToken::new(BEARER).unwrap())
        .basic(BasicCredentials::new("user-a", PASSWORD).unwrap())
        .build()
}

async fn stand_in() -> SinchStandIn {
    let creds = credentials(KEY_SECRET_1);
    SinchStandIn::builder()
        .access_key(creds.access_key().unwrap())
        .access_key(&AccessKey::new("proj-a", "key-b", KEY_SECRET_2).unwrap())
        .application(creds.application().unwrap())
        .service_plan(creds.service_plan().unwrap())
        .start()
        .await
        .unwrap()
}

fn quick() -> RefreshConfig {
    RefreshConfig::default()
        .fetch_timeout(Duration::from_millis(300))
        .wait_timeout(Duration::from_millis(400))
        .backoff_base(Duration::from_millis(20))
        .backoff_cap(Duration::from_millis(100))
        .min_forced_interval(Duration::ZERO)
}

const SCHEMES: [Scheme; 8] = [
    Scheme::OAuth2,
    Scheme::SelfSignedJwt,
    Scheme::ServicePlanBearer,
    Scheme::ServicePlanBasic,
    Scheme::ApplicationSigned,
    Scheme::ApplicationBasic,
    Scheme::Bearer,
    Scheme::Basic,
];

async fn every_scheme(audit: &mut Audit) {
    let sinch = stand_in().await;
    for scheme in SCHEMES {
        let builder = SinchAuthLayer::builder(StaticCredentials::new(credentials(KEY_SECRET_1)))
            .scheme(scheme)
            .auth_host(&sinch.url());
        audit.debug("SinchAuthBuilder", &builder);
        let layer = builder.build().unwrap();
        let client = layer.layer(sinch.client());
        for _ in 0..2 {
            let request = Request::post(format!("{}/v1/{scheme}", sinch.url()))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
                .unwrap();
            let mut service = client.clone();
            let future = service.ready().await.unwrap().call(request);
            audit.debug("ResponseFuture", &future);
            let response = future.await.unwrap();
            // Basic with a bearer token and a plain Basic user the stand-in
            // does not know are refused; what matters here is what was sent.
            if !matches!(scheme, Scheme::Bearer | Scheme::Basic) {
                assert_eq!(response.status(), 200, "{scheme}");
            }
        }
        audit.debug("SinchAuthLayer", &layer);
        audit.debug("SinchAuth", &client);
    }
    // The reqwest adapter, on the same core.
    #[cfg(feature = "reqwest-middleware")]
    {
        let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials(KEY_SECRET_1)))
            .scheme(Scheme::OAuth2)
            .auth_host(&sinch.url())
            .build()
            .unwrap();
        let middleware = sinch_auth::integration::reqwest::SinchAuthMiddleware::new(&layer);
        audit.debug("SinchAuthMiddleware", &middleware);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(middleware)
            .build();
        let response = client
            .get(format!("{}/v1/reqwest", sinch.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    audit.derived_from(&sinch);
}

async fn refresh_and_rotation(audit: &mut Audit) {
    let sinch = stand_in().await;
    sinch.set_token_lifetime(Duration::from_secs(1));
    let provider = RotatingCredentials::new(credentials(KEY_SECRET_1));
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()
        .unwrap();
    let client = layer.layer(sinch.client());
    let url = format!("{}/v1/refresh", sinch.url());
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1300) {
        client.clone().oneshot(get(&url)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sinch.tokens_issued() >= 2, "refreshed in the background");
    provider.rotate(
        Credentials::builder()
            .access_key(AccessKey::new("proj-a", "key-b", KEY_SECRET_2).unwrap())
            .build(),
    );
    audit.debug("RotatingCredentials", &provider);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = client.clone().oneshot(get(&url)).await.unwrap();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        if String::from_utf8_lossy(&body).contains("oauth2:key-b") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rotation never took");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 401 `expired` once (refetch and resend), then always (to the caller).
    sinch.answer_expired_next(1);
    let response = client.clone().oneshot(get(&url)).await.unwrap();
    assert_eq!(response.status(), 200);
    sinch.answer_expired_always(true);
    let response = client.clone().oneshot(get(&url)).await.unwrap();
    assert_eq!(response.status(), 401);
    sinch.answer_expired_always(false);
    audit.derived_from(&sinch);
}

async fn token_endpoint_failures(audit: &mut Audit) {
    let sinch = stand_in().await;
    let basic = sinch_auth::scheme::basic("key-a", KEY_SECRET_1);
    let encoded = basic
        .to_str()
        .unwrap()
        .trim_start_matches("Basic ")
        .to_owned();
    audit.derived.push(encoded.clone());
    audit.debug("basic HeaderValue", &basic);
    let echo = |status| TokenFailure {
        status,
        retry_after: None,
        body: format!(
            r#"{{"error":"invalid_client {KEY_SECRET_1}","error_description":"bad secret {KEY_SECRET_1} in Basic {encoded}"}}"#
        ),
        close: false,
    };
    let failures = [
        TokenFailure::status(StatusCode::INTERNAL_SERVER_ERROR),
        TokenFailure::too_many_requests(Some("1")),
        TokenFailure::close_connection(),
        echo(StatusCode::UNAUTHORIZED),
        echo(StatusCode::SERVICE_UNAVAILABLE),
        TokenFailure::ok_with_body(format!(
            r#"{{"access_token":"{BAD_ACCESS_TOKEN}","expires_in":3600}}"#
        )),
        TokenFailure::ok_with_body(format!(
            r#"{{"access_token":"{BAD_ACCESS_TOKEN}","expires_in":"soon {BAD_ACCESS_TOKEN}"}}"#
        )),
        TokenFailure::ok_with_body(format!("not json {BAD_ACCESS_TOKEN}")),
        TokenFailure::ok_with_body(format!(
            r#"{{"access_token":"{}","expires_in":3600}}"#,
            BAD_ACCESS_TOKEN.repeat(5000)
        )),
    ];
    for failure in failures {
        audit.debug("TokenFailure status", &failure.status);
        sinch.fail_all_token_requests(failure);
        let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials(KEY_SECRET_1)))
            .scheme(Scheme::OAuth2)
            .auth_host(&sinch.url())
            .refresh(quick())
            .build()
            .unwrap();
        let error = layer
            .layer(sinch.client())
            .oneshot(get(format!("{}/v1/x", sinch.url())))
            .await
            .unwrap_err();
        audit.error_chain("token failure", &error);
        audit.error("token failure", error);
        sinch.heal_tokens();
    }
    // What OAuth2 itself returns, without the layer in between.
    sinch.fail_next_token_requests(1, echo(StatusCode::UNAUTHORIZED));
    let source = OAuth2Source::new().auth_host(&sinch.url()).unwrap();
    audit.debug("OAuth2", &source);
    let request = FetchRequest::new(Arc::new(credentials(KEY_SECRET_1)), None);
    audit.debug("FetchRequest", &request);
    let error = sinch_auth::token::TokenSource::fetch(&source, request)
        .await
        .unwrap_err();
    let description = format!("{error}");
    assert!(description.contains("[REDACTED]"), "{description}");
    audit.error("FetchError", error);
    let token = sinch_auth::token::TokenSource::fetch(
        &source,
        FetchRequest::new(Arc::new(credentials(KEY_SECRET_1)), None),
    )
    .await
    .unwrap();
    audit.derived.push(token.value().expose_secret().to_owned());
    audit.debug("Token", &token);
    audit.panic_message("Token unwrap_err", || {
        std::hint::black_box(Ok::<Token, ()>(token)).unwrap_err();
    });
}

async fn verification_rejects(audit: &mut Audit) {
    let app = || ApplicationCredentials::new("app-a", app_secret()).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let timestamp = application::format_timestamp(now);
    let signed = application::sign(
        &app(),
        &http::Method::POST,
        "/voice",
        "application/json",
        b"{\"a\":1}",
        &timestamp,
    )
    .unwrap();
    audit.debug("SignedHeaders", &signed);
    // The signatures a verifier computes for tampered requests are secrets too.
    for body in [b"{\"a\":1}".as_slice(), b"{\"a\":2}"] {
        let sig = application::signature(
            app().decoded_secret().expose_secret(),
            "POST",
            "/voice",
            "application/json",
            body,
            &timestamp,
        );
        audit.derived.push(sig);
    }
    let basic = application::basic(&app());
    audit.derived.push(
        basic
            .to_str()
            .unwrap()
            .trim_start_matches("Basic ")
            .to_owned(),
    );
    let ts = "1700000000";
    let mut requests: Vec<(&str, Request<Full<Bytes>>)> = Vec::new();
    let voice = |body: &'static [u8], auth: http::HeaderValue| {
        Request::post("/voice")
            .header("content-type", "application/json")
            .header("x-timestamp", signed.timestamp.clone())
            .header("authorization", auth)
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    };
    requests.push((
        "application tampered",
        voice(b"{\"a\":2}", signed.authorization.clone()),
    ));
    requests.push((
        "application wrong basic",
        voice(b"", sinch_auth::scheme::basic("app-a", "d3Jvbmc=")),
    ));
    for (nonce, body) in [("n1", b"tampered".as_slice()), ("n2", b"original")] {
        audit
            .derived
            .push(webhook_signature(WEBHOOK_SECRET, body, nonce, ts));
    }
    let webhook = |nonce: &str, body: &'static [u8]| {
        Request::post("/conversation")
            .header(
                "x-sinch-webhook-signature",
                webhook_signature(WEBHOOK_SECRET, b"original", nonce, ts),
            )
            .header("x-sinch-webhook-signature-nonce", nonce)
            .header("x-sinch-webhook-signature-timestamp", ts)
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    };
    requests.push(("webhook tampered", webhook("n1", b"tampered")));
    requests.push(("webhook ok", webhook("n2", b"original")));
    requests.push(("webhook replayed", webhook("n2", b"original")));
    audit.derived.push(numbers_signature(NUMBERS_SECRET, b"{}"));
    requests.push((
        "numbers wrong",
        Request::post("/numbers")
            .header("x-sinch-signature", "0".repeat(40))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap(),
    ));

    let application_verifier = Arc::new(
        ApplicationVerifier::new(app())
            .allow_basic()
            .clock(ManualClock::new(now))
            .replay_protection(16),
    );
    let webhook_verifier = Arc::new(
        WebhookVerifier::new(WEBHOOK_SECRET)
            .clock(ManualClock::new(now))
            .freshness(Freshness::default())
            .replay_protection(16),
    );
    let numbers_verifier = Arc::new(NumbersVerifier::new(NUMBERS_SECRET));
    audit.debug("ApplicationVerifier", &application_verifier);
    audit.debug("WebhookVerifier", &webhook_verifier);
    audit.debug("NumbersVerifier", &numbers_verifier);
    let mut rejected = 0;
    for (what, request) in requests {
        let unauthorized = match what.split(' ').next().unwrap() {
            "application" => check(audit, what, &application_verifier, request).await,
            "webhook" => check(audit, what, &webhook_verifier, request).await,
            _ => check(audit, what, &numbers_verifier, request).await,
        };
        rejected += usize::from(unauthorized);
    }
    assert!(rejected >= 5, "{rejected}");
    // An empty verifier secret fails closed.
    let error = NumbersVerifier::new("")
        .verify(&Request::post("/").body(()).unwrap().into_parts().0, b"")
        .unwrap_err();
    audit.error("empty secret", error);
}

/// Verifies `request` directly (for the `Rejection` itself) and through a
/// `VerifyLayer` (for its log); returns whether the layer answered 401. The
/// same verifier both times, so its replay memory sees both.
async fn check<V: Verifier + Debug>(
    audit: &mut Audit,
    what: &str,
    verifier: &Arc<V>,
    request: Request<Full<Bytes>>,
) -> bool {
    let (parts, body) = request.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    match verifier.verify(&parts, &body) {
        Ok(verified) => audit.debug("Verified", &verified),
        Err(rejection) => audit.error(what, rejection),
    }
    let layer = VerifyLayer::new(verifier.clone());
    audit.debug("VerifyLayer", &layer);
    let ok = tower::service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let service = layer.layer(ok);
    audit.debug("Verify", &service);
    let response = service
        .oneshot(Request::from_parts(parts, Full::new(body)))
        .await
        .unwrap();
    response.status() == StatusCode::UNAUTHORIZED
}

fn configuration_errors(audit: &mut Audit) {
    let env = |name: &'static str, value: &'static str| {
        move |var: &str| -> Option<std::ffi::OsString> {
            let value = match var {
                v if v == name => value,
                "SINCH_PROJECT_ID" => "proj-a",
                "SINCH_KEY_ID" => "key-a",
                "SINCH_KEY_SECRET" => KEY_SECRET_1,
                "SINCH_APPLICATION_KEY" => "app-a",
                "SINCH_APPLICATION_SECRET" => "TEVBSy1hcHAtc2VjcmV0LVE3djM=",
                "SINCH_SERVICE_PLAN_ID" => "plan-a",
                "SINCH_API_TOKEN" => API_TOKEN,
                _ => return None,
            };
            Some(value.into())
        }
    };
    let good = EnvCredentials::from_lookup(env("SINCH_REGION", "eu")).unwrap();
    assert_eq!(
        good.credentials()
            .application()
            .unwrap()
            .decoded_secret()
            .expose_secret(),
        APP_SECRET_DECODED.as_bytes()
    );
    audit.debug("EnvCredentials", &good);
    audit.debug("Credentials", &*good.credentials());
    for (name, value) in [
        ("SINCH_KEY_SECRET", "LEAK-key secret-Q7vB"),
        ("SINCH_KEY_SECRET", "LEAK-key-secret\n-Q7vC"),
        ("SINCH_APPLICATION_SECRET", "LEAK-not-base64!-Q7vD"),
        ("SINCH_API_TOKEN", "LEAK-api token-Q7vE"),
        ("SINCH_KEY_ID", "LEAK:key-id-Q7vF"),
        ("SINCH_REGION", "LEAK-region-Q7vG"),
    ] {
        let error = EnvCredentials::from_lookup(env(name, value)).unwrap_err();
        audit.error(name, error);
    }
    for error in [
        AccessKey::new("p", "k", "LEAK key-secret-Q7vH").unwrap_err(),
        ApplicationCredentials::new("app", "LEAK-bad-base64-Q7vI").unwrap_err(),
        ApplicationCredentials::new("app", "").unwrap_err(),
        ServicePlan::new("plan", "LEAK api\ttoken-Q7vJ").unwrap_err(),
        BearerToken::new("LEAK bearer-Q7vK").unwrap_err(),
        BasicCredentials::new("user", "LEAK\u{7}password-Q7vL").unwrap_err(),
    ] {
        audit.error("credential", error);
    }
}

async fn other_public_types(audit: &mut Audit) {
    let creds = Arc::new(credentials(KEY_SECRET_1));
    let app = creds.application().unwrap();
    audit.debug("Credentials", &creds);
    audit.debug("AccessKey", &creds.access_key().unwrap());
    audit.debug("ApplicationCredentials", &app);
    audit.debug("ServicePlan", &creds.service_plan().unwrap());
    audit.debug("BearerToken", &creds.bearer().unwrap());
    audit.debug("BasicCredentials", &creds.basic().unwrap());
    audit.debug("StaticCredentials", &StaticCredentials::from(creds.clone()));
    audit.debug("SelfSignedJwt", &SelfSignedJwt::default());
    audit.debug("RefreshConfig", &RefreshConfig::default());
    audit.debug("TokenHttpClient", &TokenHttpClient::hyper());
    audit.debug(
        "StoreKey",
        &StoreKey::for_access_key(
            "https://auth.sinch.com/oauth2/token",
            creds.access_key().unwrap(),
        ),
    );
    let source = source_fn(|_| async { Ok(Token::new(BEARER, Duration::from_secs(60))) });
    audit.debug("SourceFn", &source);
    let jwt = sinch_auth::scheme::self_signed_jwt(app, 1_700_000_000, Duration::from_secs(3600));
    audit.derived.push(jwt.expose_secret().to_owned());
    audit.debug("self-signed JWT", &jwt);
    let builder = rtc::user_token(app, "alice", SystemClock.now()).ttl(Duration::from_secs(60));
    audit.debug("UserTokenBuilder", &builder);
    let user_token = builder.issue().unwrap();
    audit.derived.push(user_token.expose_secret().to_owned());
    audit.debug("RTC token", &user_token);
    audit.debug(
        "bearer HeaderValue",
        &sinch_auth::scheme::bearer(BEARER).unwrap(),
    );
    // A password in a URL's userinfo never reaches an error.
    let layer = SinchAuthLayer::builder(StaticCredentials::from(creds.clone()))
        .scheme(Scheme::Bearer)
        .reject_disallowed_hosts(true)
        .build()
        .unwrap();
    let capture = Capture::default();
    let error = layer
        .layer(capture.service())
        .oneshot(get(format!(
            "https://user:{URL_PASSWORD}@evil.example.com/x"
        )))
        .await
        .unwrap_err();
    audit.error("HostNotAllowed", error);
    // The rest of the public types, with secrets in reach where they can hold any.
    let builder = Credentials::builder()
        .access_key(AccessKey::new("proj-a", "key-a", KEY_SECRET_1).unwrap())
        .application(ApplicationCredentials::new("app-a", app_secret()).unwrap())
        .service_plan(ServicePlan::new("plan-a", API_TOKEN).unwrap())
        .bearer(BearerToken::new(BEARER).unwrap())
        .basic(BasicCredentials::new("user-a", PASSWORD).unwrap());
    audit.debug("CredentialsBuilder", &builder);
    let built = builder.build();
    audit.debug("CredentialsId", &built.id());
    let stand_in = SinchStandIn::builder()
        .access_key(built.access_key().unwrap())
        .application(built.application().unwrap())
        .service_plan(built.service_plan().unwrap());
    audit.debug("SinchStandInBuilder", &stand_in);
    audit.debug(
        "TokenFailure",
        &TokenFailure::status(StatusCode::BAD_GATEWAY),
    );
    for scheme in SCHEMES {
        audit.debug("Scheme", &scheme);
        audit
            .texts
            .push(("Scheme Display".into(), scheme.to_string()));
        audit.debug("CredentialKind", &scheme.needs());
    }
    audit.debug("Region", &sinch_auth::host::Region::Eu);
    audit.error(
        "UnknownRegion",
        "mars".parse::<sinch_auth::host::Region>().unwrap_err(),
    );
    audit.debug("VoiceRegion", &sinch_auth::host::VoiceRegion::Euc1);
    audit.debug(
        "SinchApi",
        &sinch_auth::host::SinchApi::from_host("numbers.api.sinch.com"),
    );
    audit.debug("HostPolicy", &sinch_auth::host::HostPolicy::default());
    audit.debug("ManualClock", &ManualClock::new(SystemTime::UNIX_EPOCH));
    audit.debug(
        "TokioClock",
        &sinch_auth::clock::TokioClock::new(SystemTime::UNIX_EPOCH),
    );
    audit.debug("SystemClock", &SystemClock);
    audit.debug("Freshness", &Freshness::default());
    let claims = jwt.expose_secret().split('.').nth(1).unwrap().to_owned();
    let claims: sinch_auth::scheme::SelfSignedClaims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    audit.debug("SelfSignedClaims", &claims);
    for error in [
        sinch_auth::AuthError::MissingCredential {
            scheme: "OAuth2",
            needs: sinch_auth::CredentialKind::AccessKey,
        },
        sinch_auth::AuthError::UnsignableBody,
        sinch_auth::AuthError::InvalidHeaderValue {
            what: "access token",
        },
        sinch_auth::AuthError::NoRuntime,
        sinch_auth::AuthError::RefresherStopped,
        sinch_auth::AuthError::BodyTooLarge { limit: 1 },
    ] {
        audit.error("AuthError", error);
    }
    // Scheme-level errors.
    audit.error(
        "InvalidHeaderValue",
        sinch_auth::scheme::bearer("LEAK bad-Q7vM").unwrap_err(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_debug_display_or_panic_messages() {
    let logs = logs();
    let mut audit = Audit::default();
    every_scheme(&mut audit).await;
    refresh_and_rotation(&mut audit).await;
    token_endpoint_failures(&mut audit).await;
    verification_rejects(&mut audit).await;
    configuration_errors(&mut audit);
    other_public_types(&mut audit).await;
    // Let background tasks (refreshers, connections) log their last words.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let log = logs.text();
    let decoded_hex = hex(APP_SECRET_DECODED.as_bytes());
    let raw = [
        KEY_SECRET_1,
        KEY_SECRET_2,
        APP_SECRET_DECODED,
        API_TOKEN,
        BEARER,
        PASSWORD,
        WEBHOOK_SECRET,
        NUMBERS_SECRET,
        BAD_ACCESS_TOKEN,
        URL_PASSWORD,
    ];
    let app_secret = app_secret();
    let mut secrets: Vec<&str> = raw.to_vec();
    secrets.extend([app_secret.as_str(), decoded_hex.as_str(), MARKER]);
    secrets.extend(audit.derived.iter().map(String::as_str));
    println!(
        "leak audit: {} secrets and derived credentials searched in {} log lines and {} Debug/Display/panic texts",
        secrets.len(),
        log.lines().count(),
        audit.texts.len()
    );
    let mut leaks = Vec::new();
    for secret in &secrets {
        if log.contains(secret) {
            leaks.push(format!("log holds {secret}"));
        }
        for (what, text) in &audit.texts {
            if text.contains(secret) {
                leaks.push(format!("{what} holds {secret}: {text}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );

    // Not vacuous: the scenarios happened and were logged.
    for expected in [
        "token obtained",
        "token fetch failed",
        "credentials rotated",
        "token rejected as expired by the API",
        "callback rejected, answering 401",
        "signature mismatch",
        "nonce replayed",
        "Basic credentials do not match",
        "invalid_client",
        "[REDACTED]",
    ] {
        assert!(log.contains(expected), "the log lacks {expected:?}:\n{log}");
    }
    assert!(audit.texts.len() > 200, "{}", audit.texts.len());
    // Access tokens, minted JWTs, Basic encodings, signatures.
    assert!(audit.derived.len() >= 15, "{:?}", audit.derived.len());
}
