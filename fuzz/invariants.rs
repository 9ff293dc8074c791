//! The invariants the fuzz targets check, one function per target. Each takes
//! the fuzzer's raw bytes and panics when an invariant breaks; "did not
//! crash" alone is never the whole check.
//!
//! This file is the `sinch_auth_fuzz` library of the fuzz crate, and
//! `tests/fuzz_invariants.rs` includes it as a module so that `cargo test`
//! (stable, no fuzzer) checks the very same invariants with proptest.

use std::ffi::OsString;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, Request};
use secrecy::ExposeSecret;
use serde_json::Value;
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application;
use sinch_auth::verify::{
    ApplicationVerifier, Freshness, NumbersVerifier, Rejection, Verified, Verifier,
    WebhookVerifier, numbers_signature, webhook_signature,
};
use sinch_auth::{ApplicationCredentials, ConfigError, EnvCredentials, FetchError};

/// The verifiers' clock: 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

/// Reads structured values off the fuzzer's bytes; past the end, everything is zero/empty.
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// A length byte, then up to `max` bytes.
    pub fn take(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.byte()).min(max).min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken
    }

    /// Everything left.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Whether `text` holds `secret` anywhere other than inside `[REDACTED]`
/// placeholders, whole or cut short at the end of a shortened field (a
/// secret that is itself a piece of the placeholder, or overlaps it, would
/// match the placeholder, which reveals nothing).
fn reveals(text: &str, secret: &str) -> bool {
    const PLACEHOLDER: &str = "[REDACTED]";
    if secret.is_empty() || secret.chars().any(char::is_control) {
        return false;
    }
    let mut masked = text.replace(PLACEHOLDER, "\u{1}");
    if let Some(cut) = (1..PLACEHOLDER.len())
        .rev()
        .find(|&n| masked.ends_with(&PLACEHOLDER[..n]))
    {
        masked.truncate(masked.len() - cut);
        masked.push('\u{1}');
    }
    masked.contains(secret)
}

/// How `secret` would look inside `Debug` output: escaped as `Debug` escapes
/// strings (so a quote that `Debug` itself adds after a public value does not
/// count).
fn escaped(secret: &str) -> String {
    let quoted = format!("{secret:?}");
    quoted[1..quoted.len() - 1].to_owned()
}

/// Whether `secret` shows in `Debug` output.
fn debug_shows(debug: &str, secret: &str) -> bool {
    debug.contains(&escaped(secret))
}

/// Whether `secret` shows in any way `value` can be printed.
fn shows(value: &(impl std::fmt::Debug + std::fmt::Display), secret: &str) -> bool {
    value.to_string().contains(secret) || debug_shows(&format!("{value:?}\n{value:#?}"), secret)
}

// ---------------------------------------------------------------- token_response

/// Token endpoint bodies (protocol notes §2). The first byte picks how many of the
/// following bytes are a "secret" the error fields must not repeat; the rest
/// is the body.
///
/// - `parse_token` never panics; a token it accepts is exactly the body's
///   `access_token` (non-empty), lives at least a second, with `expires_in`
///   read as the body gives it; its `Debug` hides the value.
/// - A body it refuses gives `MalformedResponse`, whose text holds none of
///   the body (only the fixed reason).
/// - `parse_error_body` fields are at most 200 characters, free of control
///   characters, and never reveal the secret.
/// - `jwt_expiry` never panics, and reads back the `exp` of a JWT made from
///   the same bytes.
pub fn token_response(data: &[u8]) {
    let mut input = Input::new(data);
    let secret = String::from_utf8_lossy(input.take(24)).into_owned();
    let body = input.rest();
    let now = now();

    let json = serde_json::from_slice::<Value>(body).ok();
    let access_token = json
        .as_ref()
        .and_then(|v| v.get("access_token"))
        .and_then(Value::as_str);
    match sinch_auth::__fuzz::parse_token(body, now) {
        Ok(token) => {
            let value = token.value().expose_secret();
            assert_eq!(
                Some(value),
                access_token,
                "the token is the body's access_token"
            );
            assert!(!value.is_empty());
            assert!(token.expires_in() >= Duration::from_secs(1));
            if let Some(seconds) = json
                .as_ref()
                .and_then(|v| v.get("expires_in"))
                .and_then(Value::as_f64)
            {
                let expected = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX);
                assert_eq!(token.expires_in(), expected);
            }
            // Debug hides the value: compare with the Debug of the same token
            // holding another value, so a value that is also the scope (or a
            // piece of the fixed text) does not count.
            let mut other = sinch_auth::token::Token::new("\u{1}", token.expires_in());
            if let Some(scope) = token.scope() {
                other = other.with_scope(scope);
            }
            let reference = format!("{other:?}");
            if !reference.contains(&escaped(value)) {
                assert!(
                    !debug_shows(&format!("{token:?}"), value),
                    "Debug shows the token"
                );
            }
        }
        Err(error) => {
            assert!(
                matches!(error, FetchError::MalformedResponse { .. }),
                "parse_token failed with {error:?}"
            );
            if let Some(token) = access_token.filter(|t| !could_be_fixed_text(t)) {
                assert!(!shows(&error, token), "{error:?} quotes the token");
            }
        }
    }

    let (error, description) = sinch_auth::__fuzz::parse_error_body(body, &[&secret]);
    for field in [error, description].into_iter().flatten() {
        assert!(field.chars().count() <= 200);
        assert!(!field.chars().any(char::is_control));
        assert!(!reveals(&field, &secret), "{field:?} reveals {secret:?}");
    }

    let _ = sinch_auth::__fuzz::jwt_expiry(&String::from_utf8_lossy(body));
    let exp = u64::from_le_bytes(
        body.iter()
            .chain([0u8; 8].iter())
            .take(8)
            .copied()
            .collect::<Vec<_>>()
            .try_into()
            .unwrap_or_default(),
    );
    let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let jwt = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"HS256"}"#),
        b64(format!(r#"{{"exp":{exp}}}"#).as_bytes()),
        b64(body)
    );
    assert_eq!(sinch_auth::__fuzz::jwt_expiry(&jwt), Some(exp));
}

// ---------------------------------------------------------------- response_headers

/// Response headers the token machinery reads: `www-authenticate` (the
/// 401-`expired` rule) and `Retry-After`. Values are the input split at NUL.
///
/// - `mentions_expired` is true exactly when some value holds `expired`,
///   in any ASCII case, and never panics on any bytes a header can hold.
/// - `retry_after` never panics; a value of plain digits gives exactly that
///   many seconds; an HTTP date gives its distance from now (or zero).
pub fn response_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    let mut expected = false;
    for piece in data.split(|&b| b == 0).take(8) {
        let Ok(value) = HeaderValue::from_bytes(piece) else {
            continue;
        };
        expected |= value
            .as_bytes()
            .to_ascii_lowercase()
            .windows(7)
            .any(|w| w == b"expired");
        headers.append(http::header::WWW_AUTHENTICATE, value);
    }
    assert_eq!(sinch_auth::__fuzz::mentions_expired(&headers), expected);

    let now = now();
    let Ok(value) = HeaderValue::from_bytes(data.split(|&b| b == 0).next().unwrap_or_default())
    else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::RETRY_AFTER, value.clone());
    let got = sinch_auth::__fuzz::retry_after(&headers, now);
    let text = value.to_str().map(str::trim).unwrap_or("");
    if let Ok(seconds) = text.parse::<u64>() {
        assert_eq!(got, Some(Duration::from_secs(seconds)));
    } else if let Ok(at) = httpdate::parse_http_date(text) {
        assert_eq!(got, Some(at.duration_since(now).unwrap_or(Duration::ZERO)));
    } else {
        assert_eq!(got, None, "{text:?}");
    }
}

// ---------------------------------------------------------------- credentials

const VARS: [&str; 8] = [
    "SINCH_PROJECT_ID",
    "SINCH_KEY_ID",
    "SINCH_KEY_SECRET",
    "SINCH_APPLICATION_KEY",
    "SINCH_APPLICATION_SECRET",
    "SINCH_SERVICE_PLAN_ID",
    "SINCH_API_TOKEN",
    "SINCH_REGION",
];

/// Whether `value` could be a piece of the fixed text of an error message
/// or a `Debug` output: it has only their characters. A value holding any
/// other character (`#`, `+`, `=`, `!`, …) can only appear there if it leaked.
fn could_be_fixed_text(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _/,:()'-.{}[]\"\n".contains(c))
}

/// Standard base64, padding optional, trailing bits allowed (protocol notes §4, and C2).
fn lenient_base64(text: &str) -> Option<Vec<u8>> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    ENGINE.decode(text).ok()
}

/// Credential parsing: `SINCH_*` values (any bytes, set or not) through
/// `EnvCredentials::from_lookup`, and an application key and base64 secret
/// through `ApplicationCredentials::new`.
///
/// - Never panics.
/// - Accepted values come back exactly: ids and secrets as given, the
///   application secret decoded as standard base64 (padding optional).
/// - A refusal names a `SINCH_*` variable (or a field), and its text and
///   `Debug` never hold a secret value; `Debug` of accepted credentials
///   holds none either.
pub fn credentials(data: &[u8]) {
    let mut input = Input::new(data);
    let mut values: Vec<Option<Vec<u8>>> = Vec::new();
    for _ in VARS {
        let set = input.byte() % 4 != 0;
        let value = input.take(48).to_vec();
        values.push(set.then_some(value));
    }
    let lookup = |name: &str| -> Option<OsString> {
        let i = VARS.iter().position(|v| *v == name)?;
        values[i].clone().map(os_string)
    };
    let text = |i: usize| values[i].as_deref().map(String::from_utf8_lossy);
    let secrets: Vec<String> = [2usize, 4, 6]
        .iter()
        .filter_map(|&i| text(i).map(|t| t.into_owned()))
        .filter(|s| s.len() >= 4 && !could_be_fixed_text(s))
        .collect();
    match EnvCredentials::from_lookup(lookup) {
        Ok(env) => {
            let c = env.credentials();
            let utf8 = |i: usize| {
                values[i]
                    .as_deref()
                    .map(|v| std::str::from_utf8(v).unwrap())
            };
            if let Some(key) = c.access_key() {
                assert_eq!(Some(key.project_id()), utf8(0));
                assert_eq!(Some(key.key_id()), utf8(1));
                assert_eq!(Some(key.key_secret().expose_secret()), utf8(2));
            }
            if let Some(app) = c.application() {
                assert_eq!(Some(app.key()), utf8(3));
                let secret = utf8(4).unwrap();
                assert_eq!(app.secret().expose_secret(), secret);
                assert_eq!(
                    Some(app.decoded_secret().expose_secret().to_vec()),
                    lenient_base64(secret)
                );
            }
            if let Some(plan) = c.service_plan() {
                assert_eq!(Some(plan.id()), utf8(5));
                assert_eq!(Some(plan.api_token().expose_secret()), utf8(6));
            }
            let debug = format!("{env:?} {env:#?}");
            for secret in &secrets {
                // The same value may also be an id, which Debug shows.
                let also_public = [0usize, 1, 3, 5]
                    .iter()
                    .any(|&i| text(i).is_some_and(|t| escaped(&t).contains(&escaped(secret))));
                if !also_public {
                    assert!(!debug_shows(&debug, secret), "Debug shows {secret:?}");
                }
            }
        }
        Err(error) => {
            let named = match &error {
                ConfigError::MissingEnvVar { name } | ConfigError::InvalidEnvVar { name, .. } => {
                    VARS.contains(name)
                }
                ConfigError::NoCredentialsInEnv => true,
                _ => false,
            };
            assert!(named, "{error:?} names no variable");
            for secret in &secrets {
                assert!(!shows(&error, secret), "{error:?} holds {secret:?}");
            }
        }
    }

    // The application secret on its own.
    let key = String::from_utf8_lossy(input.take(16)).into_owned();
    let secret = String::from_utf8_lossy(input.rest()).into_owned();
    let key_ok = !key.is_empty() && key.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b':');
    let decoded = lenient_base64(&secret).filter(|d| !d.is_empty());
    match ApplicationCredentials::new(key.clone(), secret.clone()) {
        Ok(app) => {
            assert!(key_ok);
            assert_eq!(Some(app.decoded_secret().expose_secret().to_vec()), decoded);
            if !could_be_fixed_text(&secret) && !key.contains(&secret) {
                assert!(!debug_shows(&format!("{app:?} {app:#?}"), &secret));
            }
        }
        Err(error) => {
            assert!(
                !key_ok || decoded.is_none(),
                "{error:?} for a good key and secret"
            );
            if !could_be_fixed_text(&secret) {
                assert!(!shows(&error, &secret));
            }
        }
    }
}

#[cfg(unix)]
fn os_string(bytes: Vec<u8>) -> OsString {
    std::os::unix::ffi::OsStringExt::from_vec(bytes)
}

#[cfg(not(unix))]
fn os_string(bytes: Vec<u8>) -> OsString {
    String::from_utf8_lossy(&bytes).into_owned().into()
}

// ---------------------------------------------------------------- verifiers

const APP_KEY: &str = "fuzz-app";
/// base64 of "fuzz-application-secret".
const APP_SECRET: &str = "ZnV6ei1hcHBsaWNhdGlvbi1zZWNyZXQ=";
const WEBHOOK_SECRET: &str = "fuzz-webhook-secret";
const NUMBERS_SECRET: &str = "fuzz-numbers-secret";

const METHODS: [&str; 6] = ["POST", "GET", "PUT", "PATCH", "DELETE", "post"];

/// A request head from fuzz bytes: method, path and query, and the headers
/// whose values could be built (any bytes a header may hold).
fn head(method: &str, path: &[u8], headers: &[(&str, &[u8])]) -> Option<http::request::Parts> {
    let mut target = String::from("/");
    target.push_str(&String::from_utf8_lossy(path));
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).ok()?)
        .uri(target.parse::<http::Uri>().ok()?);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            builder = builder.header(*name, value);
        }
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

/// A timestamp near the clock's (or not): `mode` picks an offset in seconds
/// from −1000 to +1000, or the raw bytes.
fn timestamp(mode: u8, offset: u8, raw: &[u8], format: impl Fn(SystemTime) -> String) -> Vec<u8> {
    let seconds = u64::from(offset) * 4;
    match mode % 3 {
        0 => format(now() - Duration::from_secs(seconds)).into_bytes(),
        1 => format(now() + Duration::from_secs(seconds)).into_bytes(),
        _ => raw.to_vec(),
    }
}

/// Checks what every verifier promises about one answer: an acceptance
/// means the expected signature was presented; a rejection prints no secret
/// and not the expected signature.
fn check_rejection(rejection: &Rejection, secrets: &[&str], expected: &str) {
    for secret in secrets {
        assert!(!shows(rejection, secret), "{rejection:?} holds a secret");
    }
    assert!(
        expected.is_empty() || !shows(rejection, expected),
        "{rejection:?} holds the expected signature"
    );
}

/// Voice/Verification callbacks (`ApplicationVerifier`, protocol notes §4–5), Basic allowed.
///
/// - Any request: never panics; accepted only with exactly the signature
///   protocol notes §4 gives for it (or exactly the Basic credentials); a rejection
///   prints no secret and not the expected signature.
/// - Round trip: the same method, path, content type and body, signed now
///   with the application, is accepted; with one body byte changed, refused.
pub fn application_verifier(data: &[u8]) {
    let mut input = Input::new(data);
    let method = METHODS[usize::from(input.byte()) % METHODS.len()];
    let path = input.take(48);
    let content_type = input.take(40);
    let (mode, offset) = (input.byte(), input.byte());
    let raw_timestamp = input.take(40);
    let signed_mode = input.byte();
    let raw_authorization = input.take(100);
    let body = input.rest();

    let app = ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap();
    let decoded = app.decoded_secret().expose_secret().to_vec();
    let verifier =
        ApplicationVerifier::new(ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap())
            .allow_basic()
            .clock(ManualClock::new(now()))
            // The round trip may re-sign the very request already accepted.
            .without_replay_protection();
    let ts = timestamp(mode, offset, raw_timestamp, application::format_timestamp);
    let Some(probe) = head(
        method,
        path,
        &[("content-type", content_type), ("x-timestamp", &ts)],
    ) else {
        return;
    };
    let text_of = |name: &str| {
        let value = probe.headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or("").to_owned()
    };
    let (ct_text, ts_text) = (text_of("content-type"), text_of("x-timestamp"));
    let expected =
        application::signature(&decoded, method, probe.uri.path(), &ct_text, body, &ts_text);
    let basic = application::basic(&app).to_str().unwrap().to_owned();
    let authorization = match signed_mode % 4 {
        0 => format!("Application {APP_KEY}:{expected}").into_bytes(),
        1 => basic.clone().into_bytes(),
        _ => raw_authorization.to_vec(),
    };
    let Some(parts) = head(
        method,
        path,
        &[
            ("content-type", content_type),
            ("x-timestamp", &ts),
            ("authorization", &authorization),
        ],
    ) else {
        return;
    };
    let secrets = [
        APP_SECRET,
        "fuzz-application-secret",
        basic.trim_start_matches("Basic "),
    ];
    match verifier.verify(&parts, body) {
        Ok(Verified::Application { key, .. }) => {
            assert_eq!(key, APP_KEY);
            let presented = parts.headers["authorization"].to_str().unwrap();
            let signature = presented.rsplit(':').next().unwrap();
            // The method is signed as received; protocol notes §4's function upper-cases it.
            if method == method.to_ascii_uppercase() {
                assert_eq!(
                    signature, expected,
                    "accepted a signature that is not protocol notes §4's"
                );
            }
        }
        Ok(Verified::Basic { key, .. }) => {
            assert_eq!(key, APP_KEY);
            let presented = parts.headers["authorization"].to_str().unwrap();
            let (scheme, token) = presented.split_once(' ').unwrap();
            assert!(scheme.eq_ignore_ascii_case("basic"));
            assert_eq!(
                token.trim_start_matches(' '),
                basic.trim_start_matches("Basic ")
            );
        }
        Ok(other) => panic!("{other:?}"),
        Err(rejection) => check_rejection(&rejection, &secrets, &expected),
    }

    // Round trip, at the verifier's own time.
    let now_ts = application::format_timestamp(now());
    let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return;
    };
    let signed =
        application::sign(&app, &method, probe.uri.path(), &ct_text, body, &now_ts).unwrap();
    let mut parts = probe;
    parts.method = method;
    if ct_text.is_empty() {
        // A content type that is not visible ASCII is refused as malformed: send none.
        parts.headers.remove("content-type");
    }
    parts.headers.insert("x-timestamp", signed.timestamp);
    parts.headers.insert("authorization", signed.authorization);
    assert!(
        verifier.verify(&parts, body).is_ok(),
        "a request signed as protocol notes §4 says was refused"
    );
    let mut tampered = body.to_vec();
    match tampered.first_mut() {
        Some(b) => *b ^= 0x01,
        None => tampered.push(b'x'),
    }
    assert_eq!(
        verifier.verify(&parts, &tampered),
        Err(Rejection::SignatureMismatch)
    );
}

/// Conversation/SMS webhooks (`WebhookVerifier`), with replay memory.
///
/// - Any request: never panics; accepted only with the signature
///   `base64(HMAC-SHA256(secret, body.nonce.timestamp))`, a non-empty nonce
///   and a fresh timestamp; the same request a second time is a replay; a
///   rejection prints no secret and not the expected signature.
/// - Round trip: signing the body with a fresh nonce and timestamp is
///   accepted; one body byte changed is refused.
pub fn webhook_verifier(data: &[u8]) {
    let mut input = Input::new(data);
    let nonce = input.take(32);
    let (mode, offset) = (input.byte(), input.byte());
    let raw_timestamp = input.take(24);
    let signed_mode = input.byte();
    let raw_signature = input.take(60);
    let algorithm = match input.byte() % 3 {
        0 => None,
        1 => Some(b"HmacSHA256".to_vec()),
        _ => Some(input.take(16).to_vec()),
    };
    let body = input.rest();
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    };
    let ts = timestamp(mode, offset, raw_timestamp, unix);
    let verifier = WebhookVerifier::new(WEBHOOK_SECRET)
        .clock(ManualClock::new(now()))
        .replay_protection(8);
    let expected = webhook_signature(
        WEBHOOK_SECRET,
        body,
        &String::from_utf8_lossy(nonce),
        &String::from_utf8_lossy(&ts),
    );
    let signature = if signed_mode % 2 == 0 {
        expected.clone().into_bytes()
    } else {
        raw_signature.to_vec()
    };
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("x-sinch-webhook-signature", &signature),
        ("x-sinch-webhook-signature-nonce", nonce),
        ("x-sinch-webhook-signature-timestamp", &ts),
    ];
    if let Some(algorithm) = &algorithm {
        headers.push(("x-sinch-webhook-signature-algorithm", algorithm));
    }
    let Some(parts) = head("POST", b"webhook", &headers) else {
        return;
    };
    match verifier.verify(&parts, body) {
        Ok(verified) => {
            let Verified::Webhook {
                nonce: accepted,
                timestamp,
                ..
            } = verified
            else {
                panic!("{verified:?}")
            };
            assert!(!accepted.is_empty());
            assert_eq!(accepted.as_bytes(), nonce);
            assert_eq!(signature, expected.as_bytes(), "accepted a wrong signature");
            let age = now()
                .duration_since(timestamp)
                .unwrap_or_else(|e| e.duration());
            assert!(age <= Freshness::DEFAULT_WINDOW);
            assert_eq!(
                verifier.verify(&parts, body),
                Err(Rejection::Replayed { what: "nonce" })
            );
        }
        Err(rejection) => check_rejection(&rejection, &[WEBHOOK_SECRET], &expected),
    }

    // Round trip with a nonce and timestamp Sinch could send.
    let nonce = format!(
        "n{}",
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let ts = NOW.to_string();
    let signature = webhook_signature(WEBHOOK_SECRET, body, &nonce, &ts);
    let parts = head(
        "POST",
        b"webhook",
        &[
            ("x-sinch-webhook-signature", signature.as_bytes()),
            ("x-sinch-webhook-signature-nonce", nonce.as_bytes()),
            ("x-sinch-webhook-signature-timestamp", ts.as_bytes()),
        ],
    )
    .unwrap();
    let fresh = WebhookVerifier::new(WEBHOOK_SECRET).clock(ManualClock::new(now()));
    assert!(
        fresh.verify(&parts, body).is_ok(),
        "a correctly signed webhook was refused"
    );
    let mut tampered = body.to_vec();
    tampered.push(b'\n');
    assert_eq!(
        fresh.verify(&parts, &tampered),
        Err(Rejection::SignatureMismatch)
    );
}

/// Numbers callbacks (`NumbersVerifier`).
///
/// - Any request: never panics; accepted only with exactly the lower-case
///   hex HMAC-SHA1 of the body; a rejection prints no secret and not the
///   expected signature.
/// - Round trip: the body signed with the secret is accepted; one byte
///   changed is refused.
pub fn numbers_verifier(data: &[u8]) {
    let mut input = Input::new(data);
    let signed_mode = input.byte();
    let raw_signature = input.take(48);
    let body = input.rest();
    let verifier = NumbersVerifier::new(NUMBERS_SECRET);
    let expected = numbers_signature(NUMBERS_SECRET, body);
    let signature = match signed_mode % 3 {
        0 => expected.clone().into_bytes(),
        1 => expected.to_ascii_uppercase().into_bytes(),
        _ => raw_signature.to_vec(),
    };
    if let Some(parts) = head("POST", b"numbers", &[("x-sinch-signature", &signature)]) {
        match verifier.verify(&parts, body) {
            Ok(verified) => {
                assert!(matches!(verified, Verified::Numbers { .. }));
                assert_eq!(signature, expected.as_bytes(), "accepted a wrong signature");
            }
            Err(rejection) => check_rejection(&rejection, &[NUMBERS_SECRET], &expected),
        }
    }
    let parts = head(
        "POST",
        b"numbers",
        &[("x-sinch-signature", expected.as_bytes())],
    )
    .unwrap();
    assert!(matches!(
        verifier.verify(&parts, body),
        Ok(Verified::Numbers { .. })
    ));
    let mut tampered = body.to_vec();
    match tampered.last_mut() {
        Some(b) => *b = b.wrapping_add(1),
        None => tampered.push(0),
    }
    assert_eq!(
        verifier.verify(&parts, &tampered),
        Err(Rejection::SignatureMismatch)
    );
}
