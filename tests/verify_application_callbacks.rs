//! Voice and Verification callbacks: the application scheme verified with the
//! same code that signs (protocol notes §4, §5).

use std::time::{Duration, SystemTime};

use http::request::Parts;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use sinch_auth::ApplicationCredentials;
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application::{format_timestamp, sign};
use sinch_auth::verify::{
    ApplicationVerifier, Freshness, Rejection, SecretUsed, Verified, Verifier,
};

const C1_KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
const C1_SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";
const C1_BODY: &str = r#"{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257","timestamp":"2014-09-24T10:59:41Z","version":1}"#;
const C1_AUTH: &str =
    "application 669E367E-6BBA-48AB-AF15-266871C28135:Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=";
const C1_TS: &str = "2014-09-24T10:59:41Z";
const C2_BODY: &str = r#"{"id":"018c25e1-7163-5677-b8fb-467d7b1cffa5","event":"VerificationResultEvent","method":"sms","identity":{"verified":false,"type":"number","endpoint":"+33628254417"},"status":"FAIL","reason":"Expired"}"#;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn c1_verifier() -> ApplicationVerifier {
    let app = ApplicationCredentials::new(C1_KEY, C1_SECRET).unwrap();
    ApplicationVerifier::new(app).clock(ManualClock::new(at(1_411_556_381)))
}

fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn c1(method: &str, path: &str, timestamp: &str, content_type: &str) -> Parts {
    head(
        method,
        path,
        &[
            ("content-type", content_type),
            ("x-timestamp", timestamp),
            ("authorization", C1_AUTH),
        ],
    )
}

#[test]
fn c1_is_valid() {
    let parts = c1("POST", "/sinch/callback/ace", C1_TS, "application/json");
    let verified = c1_verifier().verify(&parts, C1_BODY.as_bytes()).unwrap();
    assert_eq!(
        verified,
        Verified::Application {
            key: C1_KEY.into(),
            timestamp: at(1_411_556_381),
            secret: SecretUsed::Current,
        }
    );
}

#[test]
fn c1_on_another_path_is_invalid() {
    let parts = c1("POST", "/not/that/path", C1_TS, "application/json");
    assert_eq!(
        c1_verifier().verify(&parts, C1_BODY.as_bytes()),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn c1_with_another_method_is_invalid() {
    let parts = c1("GET", "/sinch/callback/ace", C1_TS, "application/json");
    assert_eq!(
        c1_verifier().verify(&parts, C1_BODY.as_bytes()),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn c1_with_another_timestamp_is_invalid() {
    // Freshness off: the signature alone must reject it.
    let verifier = c1_verifier().freshness(Freshness::disabled());
    let parts = c1(
        "POST",
        "/sinch/callback/ace",
        "2019-11-03T10:59:41Z",
        "application/json",
    );
    assert_eq!(
        verifier.verify(&parts, C1_BODY.as_bytes()),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn c1_with_another_content_type_is_invalid() {
    let parts = c1("POST", "/sinch/callback/ace", C1_TS, "text/html");
    assert_eq!(
        c1_verifier().verify(&parts, C1_BODY.as_bytes()),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn c2_with_unpadded_secret_and_seven_digit_fraction_is_valid() {
    let app = ApplicationCredentials::new("789", "9876543210").unwrap();
    let verifier = ApplicationVerifier::new(app).clock(ManualClock::new(at(1_701_442_880)));
    let parts = head(
        "POST",
        "/VerificationRequestEvent",
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("x-timestamp", "2023-12-01T15:01:20.0406449Z"),
            (
                "authorization",
                "application 789:xfKhO0XvlRNJraahUBEJzzi1f3Fn3pYO41/ZzwOHPaQ=",
            ),
        ],
    );
    assert!(matches!(
        verifier.verify(&parts, C2_BODY.as_bytes()),
        Ok(Verified::Application { key, .. }) if key == "789"
    ));
}

#[test]
fn basic_app_key_and_secret_verify_only_when_allowed() {
    let app = || ApplicationCredentials::new(C1_KEY, C1_SECRET).unwrap();
    let basic = sinch_auth::scheme::application::basic(&app());
    let parts = head(
        "POST",
        "/verification",
        &[("authorization", basic.to_str().unwrap())],
    );
    assert_eq!(
        ApplicationVerifier::new(app()).verify(&parts, b"{}"),
        Err(Rejection::UnsupportedScheme)
    );
    assert_eq!(
        ApplicationVerifier::new(app())
            .allow_basic()
            .verify(&parts, b"{}"),
        Ok(Verified::Basic {
            key: C1_KEY.into(),
            secret: SecretUsed::Current
        })
    );
}

#[test]
fn garbage_headers_are_rejected_without_panicking() {
    let verifier = c1_verifier().allow_basic();
    for auth in [
        "application",
        "application ",
        "application :",
        "application 669E367E-6BBA-48AB-AF15-266871C28135:",
        "application  669E367E-6BBA-48AB-AF15-266871C28135:x",
        "basic",
        "basic =",
        "Basic ====",
        "Digest x",
        "   ",
        ":",
    ] {
        for ts in [
            C1_TS,
            "",
            "2014-13-45T99:99:99Z",
            "+999999-01-01T00:00:00Z",
            "1411556381",
        ] {
            let parts = head(
                "POST",
                "/sinch/callback/ace",
                &[("authorization", auth), ("x-timestamp", ts)],
            );
            assert!(
                verifier.verify(&parts, C1_BODY.as_bytes()).is_err(),
                "{auth:?} {ts:?}"
            );
        }
    }
}

// Property tests: sign with the outbound signer, verify with the verifier.

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec("([A-Za-z0-9._~+-]|%[0-9A-Fa-f]{2}){0,10}", 1..4)
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn time_strategy() -> impl Strategy<Value = SystemTime> {
    // 2001..2100, millisecond resolution.
    (978_307_200_000u64..4_102_444_800_000)
        .prop_map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

#[derive(Debug, Clone)]
struct Signed {
    method: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
    timestamp: String,
    authorization: String,
    now: SystemTime,
}

fn signed_strategy() -> impl Strategy<Value = Signed> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE"]),
        path_strategy(),
        "[ -~]{0,40}",
        prop::collection::vec(any::<u8>(), 0..300),
        time_strategy(),
    )
        .prop_map(|(method, path, content_type, body, now)| {
            let app = app();
            let timestamp = format_timestamp(now);
            let headers = sign(
                &app,
                &http::Method::from_bytes(method.as_bytes()).unwrap(),
                &path,
                &content_type,
                &body,
                &timestamp,
            )
            .unwrap();
            Signed {
                method: method.to_owned(),
                path,
                content_type,
                body,
                timestamp,
                authorization: headers.authorization.to_str().unwrap().to_owned(),
                now,
            }
        })
}

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new("prop-app", "cHJvcGVydHktdGVzdC1zZWNyZXQ=").unwrap()
}

/// Verifies `s` with a clock at its signing time; `None` when the mutated
/// parts cannot even form an HTTP request (not a verification question).
fn verify(s: &Signed) -> Option<Result<Verified, Rejection>> {
    let method = http::Method::from_bytes(s.method.as_bytes()).ok()?;
    let mut builder = http::Request::builder().method(method).uri(s.path.as_str());
    if !s.content_type.is_empty() {
        builder = builder.header("content-type", s.content_type.as_str());
    }
    let parts = builder
        .header("x-timestamp", s.timestamp.as_str())
        .header("authorization", s.authorization.as_str())
        .body(())
        .ok()?
        .into_parts()
        .0;
    let verifier = ApplicationVerifier::new(app()).clock(ManualClock::new(s.now));
    Some(verifier.verify(&parts, &s.body))
}

fn replace_byte(text: &str, index: usize, with: u8) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    let slot = bytes.get_mut(index % text.len().max(1))?;
    if *slot == with {
        return None;
    }
    *slot = with;
    String::from_utf8(bytes).ok()
}

fn decoded(path: &str) -> Vec<u8> {
    percent_decode_str(path).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_requests_verify(s in signed_strategy()) {
        let verified = verify(&s).unwrap();
        prop_assert!(matches!(verified, Ok(Verified::Application { ref key, .. }) if key == "prop-app"), "{verified:?}");
    }

    #[test]
    fn any_single_byte_change_to_the_body_is_rejected(s in signed_strategy(), index in any::<usize>(), flip in 1u8..=255) {
        prop_assume!(!s.body.is_empty());
        let mut s = s;
        let i = index % s.body.len();
        s.body[i] ^= flip;
        prop_assert_eq!(verify(&s).unwrap(), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn appending_a_byte_to_the_body_is_rejected(s in signed_strategy(), byte in any::<u8>()) {
        let mut s = s;
        s.body.push(byte);
        prop_assert_eq!(verify(&s).unwrap(), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn a_single_byte_change_to_the_path_is_rejected_unless_it_decodes_the_same(
        s in signed_strategy(),
        index in 1usize..1000,
        with in prop::sample::select(b"abcXYZ019._~+-/%".to_vec()),
    ) {
        let Some(path) = replace_byte(&s.path, index.max(1) % s.path.len().max(2), with) else { return Ok(()) };
        prop_assume!(path.starts_with('/'));
        let same = decoded(&path) == decoded(&s.path);
        let mut s = s;
        s.path = path;
        let Some(result) = verify(&s) else { return Ok(()) };
        if same {
            prop_assert!(result.is_ok(), "{result:?}");
        } else {
            prop_assert_eq!(result, Err(Rejection::SignatureMismatch));
        }
    }

    #[test]
    fn a_single_byte_change_to_the_method_is_rejected(
        s in signed_strategy(),
        index in any::<usize>(),
        with in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".to_vec()),
    ) {
        let Some(method) = replace_byte(&s.method, index, with) else { return Ok(()) };
        let mut s = s;
        s.method = method;
        prop_assert_eq!(verify(&s).unwrap(), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn a_single_byte_change_to_the_content_type_is_rejected(
        s in signed_strategy(),
        index in any::<usize>(),
        with in 0x21u8..0x7f,
    ) {
        prop_assume!(!s.content_type.is_empty());
        let Some(content_type) = replace_byte(&s.content_type, index, with) else { return Ok(()) };
        let mut s = s;
        s.content_type = content_type;
        let Some(result) = verify(&s) else { return Ok(()) };
        prop_assert_eq!(result, Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn a_single_byte_change_to_the_timestamp_is_rejected(
        s in signed_strategy(),
        index in any::<usize>(),
        with in 0x21u8..0x7f,
    ) {
        let Some(timestamp) = replace_byte(&s.timestamp, index, with) else { return Ok(()) };
        let mut s = s;
        s.timestamp = timestamp;
        let result = verify(&s).unwrap();
        prop_assert!(
            matches!(
                result,
                // Freshness is checked on the head, before the signature.
                Err(Rejection::SignatureMismatch
                    | Rejection::MalformedHeader { name: "x-timestamp", .. }
                    | Rejection::TooOld { .. }
                    | Rejection::TooNew { .. })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_single_byte_change_to_the_signature_is_rejected(
        s in signed_strategy(),
        index in 0usize..44,
        with in 0x21u8..0x7f,
    ) {
        let at = "Application prop-app:".len() + index;
        let Some(authorization) = replace_byte(&s.authorization, at, with) else { return Ok(()) };
        let mut s = s;
        s.authorization = authorization;
        prop_assert_eq!(verify(&s).unwrap(), Err(Rejection::SignatureMismatch));
    }
}
