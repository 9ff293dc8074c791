//! Application-signed requests (protocol notes §4): the public signer against the published test vectors (docs/protocol.md).

use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;
use sinch_auth::ApplicationCredentials;
use sinch_auth::scheme::application::{content_md5, format_timestamp, sign, signature};

const S1_BODY: &[u8] =
    br#"{"identity":{"type":"number","endpoint":"+33444555666"},"method":"sms"}"#;
const S3_BODY: &[u8] =
    br#"{"identity": {"type": "number", "endpoint": "+46700000000"}, "method": "sms"}"#;
const S3_KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";

fn s1_app() -> ApplicationCredentials {
    ApplicationCredentials::new("my-key-id", "bXkta2V5LXNlY3JldA==").unwrap()
}

#[test]
fn s1_content_md5_and_authorization_header_match_the_spec() {
    assert_eq!(content_md5(S1_BODY), "RkD29EocJh6t7zr5QfKM4g==");
    let headers = sign(
        &s1_app(),
        &http::Method::POST,
        "/path/pathParamValue",
        "application/json; charset=UTF-8",
        S1_BODY,
        "2023-11-22T09:10:11.999Z",
    )
    .unwrap();
    assert_eq!(
        headers.authorization,
        "Application my-key-id:QP3OzQZVzRZAEev6DBLvJkgpiqyZPuXYsc7oyjUV0K8="
    );
    assert_eq!(headers.timestamp, "2023-11-22T09:10:11.999Z");
    assert!(headers.authorization.is_sensitive());
}

#[test]
fn s2_get_without_body_matches_the_spec() {
    let headers = sign(
        &s1_app(),
        &http::Method::GET,
        "/path/pathParamValue",
        "application/json",
        b"",
        "2023-11-22T09:10:11.999Z",
    )
    .unwrap();
    assert_eq!(
        headers.authorization,
        "Application my-key-id:nsrLDvP6KVD/dAxb3IfAncdwjPFJVWSrseEFOcZge+A="
    );
    assert_eq!(content_md5(b""), "");
}

#[test]
fn s3_with_and_without_body_match_the_spec() {
    let app = ApplicationCredentials::new(S3_KEY, "BeIukql3pTKJ8RGL5zo0DA==").unwrap();
    let sign_body = |body: &[u8]| {
        sign(
            &app,
            &http::Method::POST,
            "/verification/v1/verifications",
            "application/json",
            body,
            "2014-06-04T13:41:58Z",
        )
        .unwrap()
        .authorization
    };
    assert_eq!(
        sign_body(S3_BODY),
        format!("Application {S3_KEY}:h6rXrFayOoggyHW4ymnLlfSDkZZPg6j98lHzvOXVjvw=").as_str()
    );
    assert_eq!(
        sign_body(b""),
        format!("Application {S3_KEY}:srx3SkKXw/ryFJLfwFFzZTigPxR/1+9Ae+eB3olDIjM=").as_str()
    );
}

#[test]
fn timestamps_are_iso8601_utc_with_milliseconds() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_644_211_999);
    assert_eq!(format_timestamp(t), "2023-11-22T09:10:11.999Z");
    // Sub-millisecond parts are dropped towards the past, on both sides of
    // the epoch.
    let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_644_211_999_900);
    assert_eq!(format_timestamp(t), "2023-11-22T09:10:11.999Z");
    let before = |micros| SystemTime::UNIX_EPOCH - Duration::from_micros(micros);
    assert_eq!(format_timestamp(before(1_500)), "1969-12-31T23:59:59.998Z");
    assert_eq!(format_timestamp(before(2_000)), "1969-12-31T23:59:59.998Z");
    assert_eq!(format_timestamp(before(1)), "1969-12-31T23:59:59.999Z");
}

#[test]
fn the_signed_path_is_percent_decoded_and_has_no_query() {
    let app = s1_app();
    let secret = app.decoded_secret().expose_secret();
    let sig = |path: &str| signature(secret, "POST", path, "", b"", "2023-11-22T09:10:11.999Z");
    assert_eq!(sig("/calls/+4670%20000"), sig("/calls/+4670 000"));
    assert_eq!(sig("/calls/id?with=query"), sig("/calls/id"));
    assert_ne!(sig("/calls/id"), sig("/calls/id/"));
}

#[test]
fn the_method_is_signed_upper_case() {
    let app = s1_app();
    let lower = sign(
        &app,
        &http::Method::from_bytes(b"post").unwrap(),
        "/p",
        "",
        b"",
        "2023-11-22T09:10:11.999Z",
    )
    .unwrap();
    let upper = sign(
        &app,
        &http::Method::POST,
        "/p",
        "",
        b"",
        "2023-11-22T09:10:11.999Z",
    )
    .unwrap();
    assert_eq!(lower.authorization, upper.authorization);
}
