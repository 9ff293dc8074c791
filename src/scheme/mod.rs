//! Schemes: [`Scheme`] names each way of authenticating a request; the
//! functions here are pure and synchronous, from credentials (and, for
//! signing, the parts of a request) to header values. No I/O, no clock
//! reads: a time, where one is needed, is passed in.
//!
//! | Scheme | Function | Used by |
//! |---|---|---|
//! | Basic | [`basic`] | legacy endpoints (`servicePlanId:apiToken`), Verification (`appKey:appSecret`) |
//! | Bearer | [`bearer`] | SMS service plan API token, OAuth2 and self-signed JWTs |
//! | Self-signed JWT | [`self_signed_jwt`] | protocol notes §3 |
//! | Application signing | [`application`] | Voice, Verification (protocol notes §4) |
//! | RTC registration token | [`rtc`] | in-app calling (protocol notes §3) |
//!
//! Every header value made here is marked sensitive, so `hyper` and `h2` keep
//! it out of their HPACK tables and logs.

pub mod application;
mod jwt;
pub mod rtc;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, BytesMut};
use http::HeaderValue;

use crate::Credentials;
use crate::error::CredentialKind;
use crate::host::SinchApi;

pub(crate) use jwt::hs256;
pub use jwt::{SelfSignedClaims, self_signed_jwt};

/// How a request is authenticated (protocol notes §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer {token}` from the token source: OAuth2 client credentials with
    /// the project access key by default (Conversation, SMS with project
    /// credentials, Numbers, Fax, …), or your own [`TokenSource`](crate::token::TokenSource).
    OAuth2,
    /// `Bearer {jwt}` with the self-signed JWT of Sinch's overview, minted from
    /// the application credentials.
    SelfSignedJwt,
    /// `Bearer {apiToken}`: SMS with a service plan, as Sinch's SDKs send it.
    ServicePlanBearer,
    /// `Basic base64(servicePlanId:apiToken)`: legacy endpoints.
    ServicePlanBasic,
    /// `x-timestamp` and `Authorization: Application {key}:{signature}`: Voice and Verification.
    ApplicationSigned,
    /// `Basic base64(appKey:appSecret)`: Verification's alternative.
    ApplicationBasic,
    /// `Bearer {token}` with the plain [`BearerToken`](crate::BearerToken).
    Bearer,
    /// `Basic base64(user:password)` with the plain [`BasicCredentials`](crate::BasicCredentials).
    Basic,
}

impl Scheme {
    /// The scheme's name, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::OAuth2 => "OAuth2",
            Self::SelfSignedJwt => "SelfSignedJwt",
            Self::ServicePlanBearer => "ServicePlanBearer",
            Self::ServicePlanBasic => "ServicePlanBasic",
            Self::ApplicationSigned => "ApplicationSigned",
            Self::ApplicationBasic => "ApplicationBasic",
            Self::Bearer => "Bearer",
            Self::Basic => "Basic",
        }
    }

    /// The credential the scheme needs (`None` for OAuth2 with a custom source,
    /// decided by the builder).
    pub fn needs(self) -> CredentialKind {
        match self {
            Self::OAuth2 => CredentialKind::AccessKey,
            Self::SelfSignedJwt | Self::ApplicationSigned | Self::ApplicationBasic => {
                CredentialKind::Application
            }
            Self::ServicePlanBearer | Self::ServicePlanBasic => CredentialKind::ServicePlan,
            Self::Bearer => CredentialKind::Bearer,
            Self::Basic => CredentialKind::Basic,
        }
    }

    /// The scheme Sinch's SDKs use for a host, given the credentials at hand;
    /// `None` for hosts that get no credentials (non-Sinch hosts, `auth.sinch.com`).
    ///
    /// ```
    /// use sinch_auth::{Credentials, Scheme, ServicePlan};
    ///
    /// let plan = Credentials::from(ServicePlan::new("plan", "token")?);
    /// assert_eq!(Scheme::for_host("us.sms.api.sinch.com", &plan), Some(Scheme::ServicePlanBearer));
    /// assert_eq!(Scheme::for_host("calling.api.sinch.com", &plan), Some(Scheme::ApplicationSigned));
    /// assert_eq!(Scheme::for_host("numbers.api.sinch.com", &plan), Some(Scheme::OAuth2));
    /// assert_eq!(Scheme::for_host("example.com", &plan), None);
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn for_host(host: &str, credentials: &Credentials) -> Option<Self> {
        Self::for_api(SinchApi::from_host(host)?, || {
            credentials.service_plan().is_some()
        })
    }

    pub(crate) fn for_api(api: SinchApi, has_service_plan: impl FnOnce() -> bool) -> Option<Self> {
        Some(match api {
            SinchApi::Auth => return None,
            SinchApi::Voice | SinchApi::Verification => Self::ApplicationSigned,
            SinchApi::Sms if has_service_plan() => Self::ServicePlanBearer,
            _ => Self::OAuth2,
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value could not be put in a header: it holds characters HTTP forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value contains characters not allowed in an HTTP header")]
pub struct InvalidHeaderValue;

/// `Authorization: Basic base64(user ":" password)` (RFC 7617, UTF-8).
///
/// ```
/// // Protocol notes §2 vector.
/// let value = sinch_auth::scheme::basic("fooKey", "fooSecret");
/// assert_eq!(value, "Basic Zm9vS2V5OmZvb1NlY3JldA==");
/// assert!(value.is_sensitive());
/// ```
pub fn basic(user: &str, password: &str) -> HeaderValue {
    let raw_len = user.len() + 1 + password.len();
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(raw_len));
    raw.extend_from_slice(user.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(password.as_bytes());
    let mut out = BytesMut::with_capacity(6 + base64::encoded_len(raw_len, true).unwrap_or(0));
    out.put_slice(b"Basic ");
    let mut encoded = zeroize::Zeroizing::new(String::new());
    STANDARD.encode_string(&*raw, &mut encoded);
    out.put_slice(encoded.as_bytes());
    // base64 output is always a valid header value.
    sensitive(HeaderValue::from_maybe_shared(out.freeze()).expect("base64 is header-safe"))
}

/// `Authorization: Bearer {token}`.
///
/// ```
/// let value = sinch_auth::scheme::bearer("abc.def.ghi").unwrap();
/// assert_eq!(value, "Bearer abc.def.ghi");
/// assert!(sinch_auth::scheme::bearer("line\nbreak").is_err());
/// ```
pub fn bearer(token: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    prefixed("Bearer ", token)
}

/// `{prefix}{value}` as a sensitive header value, built once.
pub(crate) fn prefixed(prefix: &str, value: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    if value.is_empty() || !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(InvalidHeaderValue);
    }
    let mut out = BytesMut::with_capacity(prefix.len() + value.len());
    out.put_slice(prefix.as_bytes());
    out.put_slice(value.as_bytes());
    HeaderValue::from_maybe_shared(out.freeze())
        .map(sensitive)
        .map_err(|_| InvalidHeaderValue)
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// A copy of a header value in its own buffer (sensitivity kept), warmed.
pub(crate) fn private_copy(value: &HeaderValue) -> HeaderValue {
    let mut copy = HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(value.as_bytes()))
        .unwrap_or_else(|_| value.clone());
    copy.set_sensitive(value.is_sensitive());
    warm(copy)
}

/// Makes later clones of a header value allocation-free: a `Bytes` built from
/// a buffer moves to shared storage on its first clone, so do that clone now,
/// off the request path.
pub(crate) fn warm(value: HeaderValue) -> HeaderValue {
    drop(value.clone());
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessKey, ServicePlan};

    #[test]
    fn for_host_picks_the_scheme_sinchs_sdks_use_per_api() {
        let key = Credentials::from(AccessKey::new("p", "k", "s").unwrap());
        let plan = Credentials::from(ServicePlan::new("plan", "token").unwrap());
        let cases = [
            (
                "us.sms.api.sinch.com",
                &plan,
                Some(Scheme::ServicePlanBearer),
            ),
            ("us.sms.api.sinch.com", &key, Some(Scheme::OAuth2)),
            ("eu.conversation.api.sinch.com", &plan, Some(Scheme::OAuth2)),
            ("numbers.api.sinch.com", &key, Some(Scheme::OAuth2)),
            (
                "calling.api.sinch.com",
                &key,
                Some(Scheme::ApplicationSigned),
            ),
            (
                "callingapi.sinch.com",
                &plan,
                Some(Scheme::ApplicationSigned),
            ),
            (
                "verification.api.sinch.com",
                &key,
                Some(Scheme::ApplicationSigned),
            ),
            ("auth.sinch.com", &key, None),
            ("example.com", &plan, None),
        ];
        for (host, credentials, scheme) in cases {
            assert_eq!(Scheme::for_host(host, credentials), scheme, "{host}");
        }
    }

    #[test]
    fn a_scheme_displays_as_its_name() {
        assert_eq!(Scheme::OAuth2.to_string(), "OAuth2");
        assert_eq!(
            format!("{}", Scheme::ServicePlanBasic),
            Scheme::ServicePlanBasic.name()
        );
    }

    #[test]
    fn basic_matches_the_spec_vector() {
        assert_eq!(
            basic("fooKey", "fooSecret"),
            "Basic Zm9vS2V5OmZvb1NlY3JldA=="
        );
    }

    #[test]
    fn basic_encodes_utf8_passwords() {
        // base64("u:pässword") computed independently.
        assert_eq!(basic("u", "pässword"), "Basic dTpww6Rzc3dvcmQ=");
    }

    #[test]
    fn bearer_rejects_what_a_header_cannot_carry() {
        assert!(bearer("").is_err());
        assert!(bearer("a b").is_err());
        assert!(bearer("a\r\nx-injected: 1").is_err());
        assert!(bearer("tök").is_err());
        let ok = bearer("eyJ.x-y_z~+/=").unwrap();
        assert_eq!(ok, "Bearer eyJ.x-y_z~+/=");
        assert!(ok.is_sensitive());
    }
}
