//! In-app calling user registration tokens (protocol notes §3).
//!
//! A backend issues one to a mobile or web client so it can register a user
//! with Sinch's in-app calling. The token is a JWT signed with a key derived
//! from the application secret and the UTC date it was issued:
//!
//! ```text
//! signing_key = HMAC-SHA256(key = base64-decode(appSecret), msg = "YYYYMMDD")
//! header      = {"alg":"HS256","kid":"hkdfv1-YYYYMMDD"}
//! claims      = exp, iat, iss, nonce, [sinch:rtc:instance:exp], sub   (sorted, compact)
//! ```
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use secrecy::ExposeSecret;
//! use sinch_auth::ApplicationCredentials;
//! use sinch_auth::clock::{Clock, SystemClock};
//! use sinch_auth::scheme::rtc;
//!
//! let app = ApplicationCredentials::new("a32e5a8d-f7d8-411c-9645-9038e8dd051d", "ax8hTTQJF0OPXL32r1LHMA==")?;
//!
//! // Usually: issued now, a random nonce, the default lifetime.
//! let token = rtc::user_token(&app, "alice", SystemClock.now()).issue()?;
//! assert_eq!(token.expose_secret().split('.').count(), 3);
//!
//! // Everything fixed: protocol notes §3's vector.
//! let iat = SystemTime::UNIX_EPOCH + Duration::from_secs(1_514_862_245);
//! let token = rtc::user_token(&app, "foo", iat)
//!     .ttl(Duration::from_secs(600))
//!     .nonce("6b438bda-2d5c-4e8c-92b0-39f20a94b34e")
//!     .issue()?;
//! assert!(token.expose_secret().ends_with(".10N-QAvRK0-dacox5X5YusK7C0AWb-kZLiNNTKLQw8I"));
//! # Ok::<(), sinch_auth::ConfigError>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use zeroize::Zeroizing;

use super::application::hmac_sha256;
use crate::ApplicationCredentials;
use crate::error::ConfigError;

/// How long a registration token is valid unless [`UserTokenBuilder::ttl`] says otherwise: 10 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// Starts a registration token for `user_id`, issued at `issued_at` (pass
/// `clock.now()` of a [`Clock`](crate::clock::Clock); the scheme never reads
/// the clock itself). See the [module docs](self) for an example.
pub fn user_token(
    app: &ApplicationCredentials,
    user_id: impl Into<String>,
    issued_at: SystemTime,
) -> UserTokenBuilder<'_> {
    UserTokenBuilder {
        app,
        user_id: user_id.into(),
        issued_at,
        ttl: DEFAULT_TTL,
        instance_expires_at: None,
        nonce: None,
    }
}

/// Builds a user registration token. Made by [`user_token`].
#[must_use]
pub struct UserTokenBuilder<'a> {
    app: &'a ApplicationCredentials,
    user_id: String,
    issued_at: SystemTime,
    ttl: Duration,
    instance_expires_at: Option<SystemTime>,
    nonce: Option<String>,
}

impl UserTokenBuilder<'_> {
    /// How long the token is valid (`exp` = `iat` + `ttl`, whole seconds).
    /// Defaults to [`DEFAULT_TTL`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// When the client instance registered with this token expires
    /// (`sinch:rtc:instance:exp`, whole seconds). Absent unless set.
    pub fn instance_expires_at(mut self, at: SystemTime) -> Self {
        self.instance_expires_at = Some(at);
        self
    }

    /// A fixed nonce. Without it, each token gets a random UUID v4.
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Signs the token.
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptyField`] for an empty user id or nonce;
    /// [`ConfigError::InvalidSetting`] when a time is before 1970 or after
    /// the year 9999.
    pub fn issue(self) -> Result<SecretString, ConfigError> {
        if self.user_id.is_empty() {
            return Err(ConfigError::EmptyField { field: "user id" });
        }
        let nonce = match self.nonce {
            Some(nonce) if nonce.is_empty() => {
                return Err(ConfigError::EmptyField { field: "nonce" });
            }
            Some(nonce) => nonce,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let iat = unix_seconds(self.issued_at, "issued at")?;
        let instance_exp = self
            .instance_expires_at
            .map(|at| unix_seconds(at, "instance expiry"))
            .transpose()?;
        let date = jiff::Timestamp::from_second(iat)
            .map_err(|_| out_of_range("issued at"))?
            .strftime("%Y%m%d")
            .to_string();

        let iss = format!("//rtc.sinch.com/applications/{}", self.app.key());
        let sub = format!("{iss}/users/{}", self.user_id);
        let claims = Claims {
            exp: iat.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX)),
            iat,
            iss: &iss,
            nonce: &nonce,
            instance_exp,
            sub: &sub,
        };
        let claims = serde_json::to_vec(&claims).map_err(|_| ConfigError::InvalidField {
            field: "user id",
            reason: "cannot be serialized to JSON",
        })?;
        let header = format!(r#"{{"alg":"HS256","kid":"hkdfv1-{date}"}}"#);

        let key = signing_key(self.app.decoded_secret().expose_secret(), &date);
        let jwt = super::hs256(header.as_bytes(), &claims, &*key);
        Ok(SecretString::from(jwt))
    }
}

impl fmt::Debug for UserTokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTokenBuilder")
            .field("app", self.app)
            .field("user_id", &self.user_id)
            .field("issued_at", &self.issued_at)
            .field("ttl", &self.ttl)
            .field("instance_expires_at", &self.instance_expires_at)
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// The claims, in sorted key order: serde_json writes struct fields in
/// declaration order, and Sinch's reference tokens have sorted keys.
#[derive(Serialize)]
struct Claims<'a> {
    exp: i64,
    iat: i64,
    iss: &'a str,
    nonce: &'a str,
    #[serde(
        rename = "sinch:rtc:instance:exp",
        skip_serializing_if = "Option::is_none"
    )]
    instance_exp: Option<i64>,
    sub: &'a str,
}

/// HMAC-SHA256(key = decoded secret, msg = "YYYYMMDD"): the per-day key
/// named by `kid` `hkdfv1-YYYYMMDD`.
fn signing_key(secret: &[u8], date: &str) -> Zeroizing<[u8; 32]> {
    let mut mac = hmac_sha256(secret);
    mac.update(date.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn unix_seconds(t: SystemTime, setting: &'static str) -> Result<i64, ConfigError> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| out_of_range(setting))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| out_of_range(setting))?;
    // The date in `kid` must be representable.
    jiff::Timestamp::from_second(secs).map_err(|_| out_of_range(setting))?;
    Ok(secs)
}

fn out_of_range(setting: &'static str) -> ConfigError {
    ConfigError::InvalidSetting {
        setting,
        reason: "must be between 1970 and the year 9999",
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    const APP_KEY: &str = "a32e5a8d-f7d8-411c-9645-9038e8dd051d";
    const NONCE: &str = "6b438bda-2d5c-4e8c-92b0-39f20a94b34e";
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhrZGZ2MS0yMDE4MDEwMiJ9.eyJleHAiOjE1MTQ4NjI4NDUsImlhdCI6MTUxNDg2MjI0NSwiaXNzIjoiLy9ydGMuc2luY2guY29tL2FwcGxpY2F0aW9ucy9hMzJlNWE4ZC1mN2Q4LTQxMWMtOTY0NS05MDM4ZThkZDA1MWQiLCJub25jZSI6IjZiNDM4YmRhLTJkNWMtNGU4Yy05MmIwLTM5ZjIwYTk0YjM0ZSIsInN1YiI6Ii8vcnRjLnNpbmNoLmNvbS9hcHBsaWNhdGlvbnMvYTMyZTVhOGQtZjdkOC00MTFjLTk2NDUtOTAzOGU4ZGQwNTFkL3VzZXJzL2ZvbyJ9.10N-QAvRK0-dacox5X5YusK7C0AWb-kZLiNNTKLQw8I";

    fn app() -> ApplicationCredentials {
        ApplicationCredentials::new(APP_KEY, "ax8hTTQJF0OPXL32r1LHMA==").unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn vector(app: &ApplicationCredentials) -> UserTokenBuilder<'_> {
        user_token(app, "foo", at(1_514_862_245))
            .ttl(Duration::from_secs(600))
            .nonce(NONCE)
    }

    #[test]
    fn signing_key_matches_the_spec() {
        let key = signing_key(app().decoded_secret().expose_secret(), "20180102");
        assert_eq!(
            STANDARD.encode(*key),
            "AZj5EsS8S7wb06xr5jERqPHsraQt3w/+Ih5EfrhisBQ="
        );
    }

    #[test]
    fn token_matches_the_spec_byte_for_byte() {
        let app = app();
        assert_eq!(vector(&app).issue().unwrap().expose_secret(), JWT);
    }

    #[test]
    fn instance_expiry_variant_matches_the_spec_signature() {
        let app = app();
        let token = vector(&app)
            .instance_expires_at(at(1_530_414_245))
            .issue()
            .unwrap();
        let parts: Vec<&str> = token.expose_secret().split('.').collect();
        assert_eq!(parts[2], "Z1KlXha3ubMWjMI2z949NkUHmekpe31z0fNx-XiMDuo");
        let claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        assert!(
            String::from_utf8(claims)
                .unwrap()
                .contains(r#""nonce":"6b438bda-2d5c-4e8c-92b0-39f20a94b34e","sinch:rtc:instance:exp":1530414245,"sub":"#)
        );
    }

    #[test]
    fn kid_uses_the_utc_date_of_iat() {
        let app = app();
        // 2018-01-02T23:59:59Z and 2018-01-03T00:00:00Z fall on different UTC days.
        for (secs, kid) in [
            (1_514_937_599, "hkdfv1-20180102"),
            (1_514_937_600, "hkdfv1-20180103"),
        ] {
            let token = user_token(&app, "foo", at(secs)).issue().unwrap();
            let header = token.expose_secret().split('.').next().unwrap().to_owned();
            let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
            assert_eq!(header, format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#));
        }
    }

    #[test]
    fn nonces_are_random_uuids_by_default() {
        let app = app();
        let claims = |token: SecretString| {
            let payload = token.expose_secret().split('.').nth(1).unwrap().to_owned();
            serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
        };
        let a = claims(user_token(&app, "u", at(1_700_000_000)).issue().unwrap());
        let b = claims(user_token(&app, "u", at(1_700_000_000)).issue().unwrap());
        assert_ne!(a["nonce"], b["nonce"]);
        let nonce = uuid::Uuid::parse_str(a["nonce"].as_str().unwrap()).unwrap();
        assert_eq!(nonce.get_version_num(), 4);
        assert_eq!(a["exp"], 1_700_000_600);
        assert!(a.get("sinch:rtc:instance:exp").is_none());
    }

    #[test]
    fn user_ids_are_escaped_as_json() {
        let app = app();
        let token = user_token(&app, "a\"b\\c", at(1_700_000_000))
            .issue()
            .unwrap();
        let payload = token.expose_secret().split('.').nth(1).unwrap().to_owned();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(claims["sub"].as_str().unwrap().ends_with("/users/a\"b\\c"));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let app = app();
        assert_eq!(
            user_token(&app, "", at(1)).issue().unwrap_err(),
            ConfigError::EmptyField { field: "user id" }
        );
        assert_eq!(
            user_token(&app, "u", at(1)).nonce("").issue().unwrap_err(),
            ConfigError::EmptyField { field: "nonce" }
        );
        let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(
            user_token(&app, "u", before_1970).issue(),
            Err(ConfigError::InvalidSetting {
                setting: "issued at",
                ..
            })
        ));
        assert!(matches!(
            user_token(&app, "u", at(1 << 40)).issue(),
            Err(ConfigError::InvalidSetting {
                setting: "issued at",
                ..
            })
        ));
        assert!(matches!(
            user_token(&app, "u", at(1))
                .instance_expires_at(before_1970)
                .issue(),
            Err(ConfigError::InvalidSetting {
                setting: "instance expiry",
                ..
            })
        ));
        // A huge lifetime saturates instead of overflowing.
        assert!(
            user_token(&app, "u", at(1))
                .ttl(Duration::MAX)
                .issue()
                .is_ok()
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let app = app();
        let debug = format!("{:?}", vector(&app));
        assert!(!debug.contains("ax8hTTQJF0OPXL32r1LHMA"));
        assert!(debug.contains("foo"));
    }
}
