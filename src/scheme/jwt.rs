use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::application::hmac_sha256;
use crate::ApplicationCredentials;

/// The claims of a self-signed JWT (protocol notes §3): `iss` is the application key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfSignedClaims {
    /// The application key.
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

/// Mints the self-signed JWT bearer of Sinch's authentication overview:
/// HS256 with key = base64-decode(application secret), `iss` = application
/// key, `iat` = `issued_at`, `exp` = `issued_at` + `lifetime` (whole seconds).
///
/// Pure: the time is passed in. The token machinery caches the result and
/// mints a new one ahead of expiry; nothing mints per request.
///
/// Any JWT library reads the result; here `jsonwebtoken` checks it:
///
/// ```
/// use std::time::Duration;
/// use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
/// use secrecy::ExposeSecret;
/// use sinch_auth::{scheme, ApplicationCredentials};
///
/// let app = ApplicationCredentials::new("my-app", "bXkta2V5LXNlY3JldA==")?;
/// let jwt = scheme::self_signed_jwt(&app, 1_700_000_000, Duration::from_secs(3600));
///
/// let mut validation = Validation::new(Algorithm::HS256);
/// validation.validate_exp = false;
/// let claims = decode::<scheme::SelfSignedClaims>(
///     jwt.expose_secret(),
///     &DecodingKey::from_secret(b"my-key-secret"),
///     &validation,
/// ).unwrap().claims;
/// assert_eq!((claims.iss.as_str(), claims.iat, claims.exp), ("my-app", 1_700_000_000, 1_700_003_600));
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
pub fn self_signed_jwt(
    app: &ApplicationCredentials,
    issued_at: u64,
    lifetime: Duration,
) -> SecretString {
    // `Value`'s Display writes a JSON string literal and cannot fail, so the
    // claims need no fallible serializer.
    let claims = format!(
        r#"{{"iss":{},"iat":{issued_at},"exp":{}}}"#,
        serde_json::Value::from(app.key()),
        issued_at.saturating_add(lifetime.as_secs()),
    );
    let token = hs256(
        br#"{"alg":"HS256","typ":"JWT"}"#,
        claims.as_bytes(),
        app.decoded_secret().expose_secret(),
    );
    SecretString::from(token)
}

/// A JWT in compact form (RFC 7515 §7.1) signed HS256 (RFC 7518 §3.2):
/// `base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256(key, the two parts))`,
/// no padding, with the header and claims bytes exactly as given.
///
/// Made here with the crate's own `hmac`/`sha2` rather than `jsonwebtoken`:
/// `jsonwebtoken::encode` signs through a process-wide crypto provider, which
/// panics when two of its backends are compiled in (features are additive
/// across a user's dependency graph), and its RustCrypto backend would pull
/// RSA and elliptic-curve crates the crate never uses.
pub(crate) fn hs256(header: &[u8], claims: &[u8], key: &[u8]) -> String {
    let mut jwt = String::with_capacity(
        base64::encoded_len(header.len(), false).unwrap_or(0)
            + base64::encoded_len(claims.len(), false).unwrap_or(0)
            + 2
            + 43, // 32 bytes of HMAC-SHA256 in base64url
    );
    URL_SAFE_NO_PAD.encode_string(header, &mut jwt);
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut jwt);
    let mut mac = hmac_sha256(key);
    mac.update(jwt.as_bytes());
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut jwt);
    jwt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_matches_rfc_7515_appendix_a1() {
        // RFC 7515 A.1: the header and claims bytes include CRLFs and spaces,
        // which a serializer would not reproduce: the bytes go in as given.
        let header = b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
        let claims =
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        assert_eq!(
            hs256(header, claims, &key),
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
             .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
             .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }

    #[test]
    fn self_signed_claims_escape_the_application_key() {
        let app = ApplicationCredentials::new("a\"b\\c", "c2VjcmV0").unwrap();
        let jwt = self_signed_jwt(&app, 10, Duration::from_secs(5));
        let claims = jwt.expose_secret().split('.').nth(1).unwrap().to_owned();
        let claims: SelfSignedClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(
            claims,
            SelfSignedClaims {
                iss: "a\"b\\c".to_owned(),
                iat: 10,
                exp: 15
            }
        );
    }
}
