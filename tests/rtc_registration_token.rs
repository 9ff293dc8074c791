//! In-app calling user registration tokens (protocol notes §3).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use sinch_auth::ApplicationCredentials;
use sinch_auth::clock::{Clock, ManualClock};
use sinch_auth::scheme::rtc;

const APP_KEY: &str = "a32e5a8d-f7d8-411c-9645-9038e8dd051d";
const SECRET: &str = "ax8hTTQJF0OPXL32r1LHMA==";
const NONCE: &str = "6b438bda-2d5c-4e8c-92b0-39f20a94b34e";
const SPEC_JWT: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhrZGZ2MS0yMDE4MDEwMiJ9.eyJleHAiOjE1MTQ4NjI4NDUsImlhdCI6MTUxNDg2MjI0NSwiaXNzIjoiLy9ydGMuc2luY2guY29tL2FwcGxpY2F0aW9ucy9hMzJlNWE4ZC1mN2Q4LTQxMWMtOTY0NS05MDM4ZThkZDA1MWQiLCJub25jZSI6IjZiNDM4YmRhLTJkNWMtNGU4Yy05MmIwLTM5ZjIwYTk0YjM0ZSIsInN1YiI6Ii8vcnRjLnNpbmNoLmNvbS9hcHBsaWNhdGlvbnMvYTMyZTVhOGQtZjdkOC00MTFjLTk2NDUtOTAzOGU4ZGQwNTFkL3VzZXJzL2ZvbyJ9.10N-QAvRK0-dacox5X5YusK7C0AWb-kZLiNNTKLQw8I";
const SPEC_SIGNING_KEY: &str = "AZj5EsS8S7wb06xr5jERqPHsraQt3w/+Ih5EfrhisBQ=";

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new(APP_KEY, SECRET).unwrap()
}

fn iat() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_514_862_245)
}

#[test]
fn token_matches_the_spec_byte_for_byte() {
    let app = app();
    let token = rtc::user_token(&app, "foo", iat())
        .ttl(Duration::from_secs(600))
        .nonce(NONCE)
        .issue()
        .unwrap();
    assert_eq!(token.expose_secret(), SPEC_JWT);
}

#[test]
fn token_verifies_under_the_spec_signing_key() {
    // An independent HS256 implementation, keyed with the published derived key.
    let app = app();
    let token = rtc::user_token(&app, "bob", iat()).issue().unwrap();
    let key = STANDARD.decode(SPEC_SIGNING_KEY).unwrap();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        token.expose_secret(),
        &DecodingKey::from_secret(&key),
        &validation,
    )
    .unwrap();
    assert_eq!(decoded.header.kid.as_deref(), Some("hkdfv1-20180102"));
    assert_eq!(
        decoded.claims["sub"],
        format!("//rtc.sinch.com/applications/{APP_KEY}/users/bob")
    );
    assert_eq!(decoded.claims["exp"], 1_514_862_245 + 600);
}

#[test]
fn instance_expiry_variant_matches_the_spec_signature() {
    let app = app();
    let token = rtc::user_token(&app, "foo", iat())
        .ttl(Duration::from_secs(600))
        .nonce(NONCE)
        .instance_expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_530_414_245))
        .issue()
        .unwrap();
    let signature = token.expose_secret().rsplit('.').next().unwrap();
    assert_eq!(signature, "Z1KlXha3ubMWjMI2z949NkUHmekpe31z0fNx-XiMDuo");
}

#[test]
fn header_is_exactly_alg_and_kid_from_the_utc_date_of_a_clock() {
    let app = app();
    // 2018-01-02T23:30:00Z: still the 2nd in UTC, whatever the local zone.
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_514_935_800));
    let token = rtc::user_token(&app, "foo", clock.now()).issue().unwrap();
    let header = token.expose_secret().split('.').next().unwrap().to_owned();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(header).unwrap(),
        br#"{"alg":"HS256","kid":"hkdfv1-20180102"}"#
    );
}
