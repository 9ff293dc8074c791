use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::ApplicationCredentials;

/// The claims of a self-signed JWT (spec §3): `iss` is the application key.
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
    let claims = SelfSignedClaims {
        iss: app.key().to_owned(),
        iat: issued_at,
        exp: issued_at.saturating_add(lifetime.as_secs()),
    };
    let key = EncodingKey::from_secret(app.decoded_secret().expose_secret());
    // Serializing three plain fields and an HMAC cannot fail.
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .expect("HS256 encoding of plain claims");
    SecretString::from(token)
}
