//! Application-signed requests (protocol notes §4): Voice, and Verification.
//!
//! ```text
//! ContentMD5   = base64(MD5(body))              ; "" when the body is empty
//! StringToSign = METHOD "\n" ContentMD5 "\n" ContentType "\n" "x-timestamp:" TS "\n" Path
//! Signature    = base64(HMAC-SHA256(key = base64-decode(appSecret), msg = StringToSign))
//! ```
//!
//! Sent as `x-timestamp: TS` and `Authorization: Application {appKey}:{Signature}`.
//! The same code computes the signatures Sinch puts on Voice and Verification
//! callbacks, which [`crate::verify::ApplicationVerifier`] checks.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sinch_auth::ApplicationCredentials;
//! use sinch_auth::scheme::application;
//!
//! let app = ApplicationCredentials::new("my-key-id", "bXkta2V5LXNlY3JldA==")?;
//! let body = br#"{"identity":{"type":"number","endpoint":"+33444555666"},"method":"sms"}"#;
//! // The time is passed in: schemes never read the clock.
//! let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_644_211_999);
//! let timestamp = application::format_timestamp(now);
//! assert_eq!(timestamp, "2023-11-22T09:10:11.999Z");
//!
//! let headers = application::sign(
//!     &app,
//!     &http::Method::POST,
//!     "/path/pathParamValue",
//!     "application/json; charset=UTF-8",
//!     body,
//!     &timestamp,
//! )?;
//! // Protocol notes §4, vector S1.
//! assert_eq!(
//!     headers.authorization,
//!     "Application my-key-id:QP3OzQZVzRZAEev6DBLvJkgpiqyZPuXYsc7oyjUV0K8=",
//! );
//! assert_eq!(headers.timestamp, "2023-11-22T09:10:11.999Z");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The path that is signed
//!
//! Sinch's SDKs disagree here: Java signs the percent-decoded path without the
//! query (Sinch validates decoded values), Node signs the path as written
//! without the query, and .NET signs the path *with* the query. This crate
//! follows Java (protocol notes §4, "Where we differ"): everything from the first `?` is
//! dropped, then `%XX` escapes are decoded to bytes. Malformed escapes (`%zz`,
//! a trailing `%`) are signed as written. For paths without escapes and
//! without a query, all four SDKs agree.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, BytesMut};
use hmac::{Hmac, Mac};
use http::HeaderValue;
use md5::{Digest, Md5};
use secrecy::ExposeSecret;
use sha2::Sha256;

use super::{InvalidHeaderValue, sensitive, warm};
use crate::ApplicationCredentials;

/// The headers of an application-signed request.
///
/// Both are ready to insert; `authorization` is marked sensitive.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    /// `Application {appKey}:{signature}`, for the `Authorization` header.
    pub authorization: HeaderValue,
    /// The signed timestamp, for the `x-timestamp` header.
    pub timestamp: HeaderValue,
}

/// `base64(MD5(body))`, or `""` for an empty body.
///
/// ```
/// use sinch_auth::scheme::application::content_md5;
///
/// assert_eq!(
///     content_md5(br#"{"identity":{"type":"number","endpoint":"+33444555666"},"method":"sms"}"#),
///     "RkD29EocJh6t7zr5QfKM4g==",
/// );
/// assert_eq!(content_md5(b""), "");
/// ```
pub fn content_md5(body: &[u8]) -> String {
    let md5 = Md5Base64::of(body);
    // base64 is ASCII.
    String::from_utf8_lossy(md5.as_bytes()).into_owned()
}

/// Formats a time as Sinch's `x-timestamp` wants it: ISO-8601 in UTC, with
/// milliseconds (truncated) and `Z`, e.g. `2023-11-22T09:10:11.999Z`.
///
/// Times beyond the years ±9999 are clamped to that range.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sinch_auth::scheme::application::format_timestamp;
///
/// let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_644_211_999);
/// assert_eq!(format_timestamp(t), "2023-11-22T09:10:11.999Z");
/// assert_eq!(format_timestamp(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
/// ```
pub fn format_timestamp(t: SystemTime) -> String {
    let millis = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        // Round towards the past, as truncation does after the epoch.
        Err(before) => {
            let d = before.duration();
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let partial = i64::from(d.subsec_nanos() % 1_000_000 != 0);
            ms.saturating_add(partial).saturating_neg()
        }
    };
    // jiff's range, in whole seconds.
    let min = jiff::Timestamp::MIN.as_second().saturating_mul(1000);
    let max = jiff::Timestamp::MAX.as_second().saturating_mul(1000);
    let ts = jiff::Timestamp::from_millisecond(millis.clamp(min, max))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{ts:.3}")
}

/// The signature of a request: `base64(HMAC-SHA256(secret, StringToSign))`.
///
/// `secret` is the *decoded* application secret
/// ([`ApplicationCredentials::decoded_secret`]). `method` is upper-cased;
/// `path` follows [the path rule](self#the-path-that-is-signed);
/// `content_type` is the `Content-Type` header exactly as sent (`""` when
/// there is none); `timestamp` is the `x-timestamp` value exactly as sent.
///
/// ```
/// use secrecy::ExposeSecret;
/// use sinch_auth::ApplicationCredentials;
/// use sinch_auth::scheme::application::signature;
///
/// let app = ApplicationCredentials::new("669E367E-6BBA-48AB-AF15-266871C28135", "BeIukql3pTKJ8RGL5zo0DA==")?;
/// // Protocol notes §4, vector S3 with an empty body.
/// let sig = signature(
///     app.decoded_secret().expose_secret(),
///     "post",
///     "/verification/v1/verifications",
///     "application/json",
///     b"",
///     "2014-06-04T13:41:58Z",
/// );
/// assert_eq!(sig, "srx3SkKXw/ryFJLfwFFzZTigPxR/1+9Ae+eB3olDIjM=");
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
pub fn signature(
    secret: &[u8],
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    let sig = with_upper_case(method, |method| {
        Signature::compute(
            secret,
            method,
            path,
            content_type.as_bytes(),
            body,
            timestamp.as_bytes(),
        )
    });
    String::from_utf8_lossy(sig.as_bytes()).into_owned()
}

/// Signs a request with application credentials: the `Authorization` and
/// `x-timestamp` header values. See the [module docs](self) for an example.
///
/// Arguments are as for [`signature`]; `timestamp` is usually
/// [`format_timestamp`] of the current time.
///
/// # Errors
///
/// [`InvalidHeaderValue`] when `timestamp` holds characters a header cannot carry.
pub fn sign(
    app: &ApplicationCredentials,
    method: &http::Method,
    path: &str,
    content_type: &str,
    body: &[u8],
    timestamp: &str,
) -> Result<SignedHeaders, InvalidHeaderValue> {
    let timestamp_header = HeaderValue::from_str(timestamp).map_err(|_| InvalidHeaderValue)?;
    let sig = with_upper_case(method.as_str(), |method| {
        Signature::compute(
            app.decoded_secret().expose_secret(),
            method,
            path,
            content_type.as_bytes(),
            body,
            timestamp.as_bytes(),
        )
    });
    const SCHEME: &[u8] = b"Application ";
    let key = app.key().as_bytes();
    let mut out = BytesMut::with_capacity(SCHEME.len() + key.len() + 1 + sig.as_bytes().len());
    out.put_slice(SCHEME);
    out.put_slice(key);
    out.put_u8(b':');
    out.put_slice(sig.as_bytes());
    // The key is checked header-safe when the credentials are built; base64 is.
    let authorization =
        HeaderValue::from_maybe_shared(out.freeze()).map_err(|_| InvalidHeaderValue)?;
    Ok(SignedHeaders {
        authorization: sensitive(authorization),
        timestamp: timestamp_header,
    })
}

/// Verification's alternative to signing: `Basic base64(appKey ":" appSecret)`,
/// with the secret as the dashboard shows it (base64 text, not decoded).
///
/// Build it once and clone it per request: clones are cheap.
///
/// ```
/// use sinch_auth::ApplicationCredentials;
/// use sinch_auth::scheme::application;
///
/// let app = ApplicationCredentials::new("my-app", "bXkta2V5LXNlY3JldA==")?;
/// // base64("my-app:bXkta2V5LXNlY3JldA==")
/// assert_eq!(application::basic(&app), "Basic bXktYXBwOmJYa3RhMlY1TFhObFkzSmxkQT09");
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
pub fn basic(app: &ApplicationCredentials) -> HeaderValue {
    warm(super::basic(app.key(), app.secret().expose_secret()))
}

/// A base64-encoded HMAC-SHA256 (always 44 bytes), on the stack.
pub(crate) struct Signature {
    buf: [u8; 44],
    len: usize,
}

impl Signature {
    /// The signature of protocol notes §4 over the parts of a request, used in both
    /// directions: `sign` for what we send, the verifier for what Sinch sends.
    ///
    /// `method` is signed as given (the signer upper-cases it; the verifier
    /// signs what arrived, so a changed method never verifies). The body is
    /// hashed in place and the string-to-sign is fed to the MAC piece by
    /// piece, so nothing is copied or allocated.
    pub(crate) fn compute(
        secret: &[u8],
        method: &[u8],
        path: &str,
        content_type: &[u8],
        body: &[u8],
        timestamp: &[u8],
    ) -> Self {
        let md5 = Md5Base64::of(body);
        let mut mac = hmac_sha256(secret);
        mac.update(method);
        mac.update(b"\n");
        mac.update(md5.as_bytes());
        mac.update(b"\n");
        mac.update(content_type);
        mac.update(b"\nx-timestamp:");
        mac.update(timestamp);
        mac.update(b"\n");
        update_with_path(&mut mac, path);
        let mut buf = [0; 44];
        let len = STANDARD
            .encode_slice(mac.finalize().into_bytes(), &mut buf)
            .unwrap_or(0);
        Self { buf, len }
    }

    /// The base64 text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `base64(MD5(body))`, empty for an empty body, on the stack.
struct Md5Base64 {
    buf: [u8; 24],
    len: usize,
}

impl Md5Base64 {
    fn of(body: &[u8]) -> Self {
        let mut buf = [0; 24];
        let len = if body.is_empty() {
            0
        } else {
            STANDARD
                .encode_slice(Md5::digest(body), &mut buf)
                .unwrap_or(0)
        };
        Self { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Feeds the signed form of `path` (no query, percent-decoded) to `mac`
/// without allocating.
fn update_with_path(mac: &mut Hmac<Sha256>, path: &str) {
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    if !path.contains('%') {
        mac.update(path.as_bytes());
        return;
    }
    let mut chunk = [0u8; 64];
    let mut len = 0;
    for byte in percent_encoding::percent_decode_str(path) {
        chunk[len] = byte;
        len += 1;
        if len == chunk.len() {
            mac.update(&chunk);
            len = 0;
        }
    }
    mac.update(&chunk[..len]);
}

/// Runs `f` on the ASCII upper-case form of `s`, copying only when `s` has
/// lower-case letters (standard methods do not).
fn with_upper_case<R>(s: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        return f(s.as_bytes());
    }
    let mut stack = [0u8; 32];
    if let Some(buf) = stack.get_mut(..s.len()) {
        buf.copy_from_slice(s.as_bytes());
        buf.make_ascii_uppercase();
        f(buf)
    } else {
        f(&s.to_ascii_uppercase().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn s1_app() -> ApplicationCredentials {
        ApplicationCredentials::new("my-key-id", "bXkta2V5LXNlY3JldA==").unwrap()
    }

    #[test]
    fn timestamps_far_away_are_clamped_not_panicking() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40);
        assert_eq!(format_timestamp(far), "9999-12-30T22:00:00.000Z");
        let long_ago = SystemTime::UNIX_EPOCH - Duration::from_secs(1 << 40);
        assert!(format_timestamp(long_ago).starts_with("-009999-"));
    }

    #[test]
    fn sign_rejects_a_timestamp_a_header_cannot_carry() {
        let err = sign(&s1_app(), &http::Method::GET, "/", "", b"", "t\r\nx: y");
        assert_eq!(err.unwrap_err(), InvalidHeaderValue);
    }

    #[test]
    fn basic_uses_the_secret_as_written() {
        let app = s1_app();
        assert_eq!(
            basic(&app),
            crate::scheme::basic("my-key-id", "bXkta2V5LXNlY3JldA==")
        );
        assert!(basic(&app).is_sensitive());
    }
}
