use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{FetchRequest, StoreKey, Token, TokenFuture, TokenHttpClient, TokenSource};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, CredentialKind, FetchError};
use crate::host::{HostPolicy, check_token_url};
use crate::{Credentials, scheme};

const TOKEN_PATH: &str = "/oauth2/token";
const FORM_BODY: &[u8] = b"grant_type=client_credentials";
const USER_AGENT_VALUE: &str = concat!("sinch-auth-rust/", env!("CARGO_PKG_VERSION"));

/// OAuth2 client credentials against Sinch's token endpoint (protocol notes §2):
///
/// ```text
/// POST {auth_host}/oauth2/token
/// Authorization: Basic base64(keyId ":" keySecret)
/// Content-Type: application/x-www-form-urlencoded
///
/// grant_type=client_credentials
/// ```
///
/// The answer's `access_token`, `expires_in`, `token_type` and `scope` are read;
/// an error answer's `error` and `error_description` become
/// [`FetchError::Endpoint`]. Bodies over [`max_response_bytes`](Self::max_response_bytes)
/// (64 KiB by default) are refused without being buffered.
///
/// The token URL follows the crate's one host rule,
/// [`check_token_url`](crate::host::check_token_url): `https` to a Sinch
/// host or to a domain you [allow](Self::allow_domain), or loopback, never
/// with userinfo. A URL breaking it is refused where it is named, by
/// [`auth_host`](Self::auth_host), so no `OAuth2Source` (inside a layer or
/// given to one as its [`token_source`](crate::SinchAuthBuilder::token_source))
/// ever sends the key secret elsewhere.
///
/// ```
/// use sinch_auth::token::OAuth2Source;
///
/// let source = OAuth2Source::new().auth_host("http://127.0.0.1:8080")?;
/// assert_eq!(source.token_url(), "http://127.0.0.1:8080/oauth2/token");
/// // Credentials never travel over plain http to a non-loopback host,
/// assert!(OAuth2Source::new().auth_host("http://auth.example.com").is_err());
/// // nor to a host that only looks like Sinch's,
/// assert!(OAuth2Source::new().auth_host("https://auth.sinch.com.evil.example").is_err());
/// // nor to another domain unless you allow it first.
/// let proxy = OAuth2Source::new()
///     .allow_domain("sinch-proxy.example.com")?
///     .auth_host("https://auth.sinch-proxy.example.com")?;
/// # let _ = proxy;
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OAuth2Source {
    token_url: Uri,
    /// Where the token URL may point (checked when it is set).
    policy: HostPolicy,
    client: Arc<OnceLock<TokenHttpClient>>,
    max_response_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl OAuth2Source {
    /// Sinch's token host.
    pub const DEFAULT_AUTH_HOST: &'static str = "https://auth.sinch.com";

    /// The default: `https://auth.sinch.com/oauth2/token` through [`TokenHttpClient::hyper`].
    pub fn new() -> Self {
        Self {
            token_url: Uri::from_static("https://auth.sinch.com/oauth2/token"),
            policy: HostPolicy::default(),
            client: Arc::new(OnceLock::new()),
            max_response_bytes: 64 * 1024,
            clock: Arc::new(SystemClock),
        }
    }

    /// Also lets the token URL point at `domain` and its subdomains, over
    /// https. Call it before [`auth_host`](Self::auth_host), which checks
    /// the host when it is given. (A layer's own fetch follows the layer's
    /// [`allow_domain`](crate::SinchAuthBuilder::allow_domain) instead.)
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] if `domain` is not a host name.
    pub fn allow_domain(mut self, domain: &str) -> Result<Self, ConfigError> {
        self.policy.allow_domain(domain)?;
        Ok(self)
    }

    /// The layer's host policy, for its own fetch.
    pub(crate) fn with_policy(mut self, policy: HostPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses another token host: `https` to a Sinch host or an
    /// [allowed domain](Self::allow_domain), or `http`/`https` on loopback
    /// ([`check_token_url`](crate::host::check_token_url)). The path
    /// `/oauth2/token` is appended.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for the field `auth host`, saying which
    /// rule the host breaks (never its userinfo).
    pub fn auth_host(mut self, host: &str) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidUrl {
            field: "auth host",
            reason,
        };
        let uri: Uri = host
            .trim_end_matches('/')
            .parse()
            .map_err(|_| invalid("cannot be parsed"))?;
        let scheme = uri.scheme_str().ok_or(invalid("has no scheme"))?;
        let authority = uri.authority().ok_or(invalid("has no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "must be scheme and host only; /oauth2/token is appended",
            ));
        }
        let token_url = format!("{scheme}://{authority}{TOKEN_PATH}")
            .parse()
            .map_err(|_| invalid("cannot be parsed"))?;
        check_token_url(&self.policy, &token_url)?;
        self.token_url = token_url;
        Ok(self)
    }

    /// Sends token requests through this client instead of the default one.
    #[must_use]
    pub fn client(mut self, client: TokenHttpClient) -> Self {
        self.client = Arc::new(OnceLock::from(client));
        self
    }

    /// Refuses token responses larger than this (default 64 KiB).
    #[must_use]
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Reads `Retry-After` dates and JWT `exp` against this clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The full token URL.
    pub fn token_url(&self) -> &Uri {
        &self.token_url
    }

    /// Builds the token request for an access key (the exact bytes protocol notes §2 gives).
    fn request(&self, credentials: &Credentials) -> Result<Request<Full<Bytes>>, FetchError> {
        let key = credentials
            .access_key()
            .ok_or(FetchError::MissingCredential(CredentialKind::AccessKey))?;
        let authorization = scheme::basic(key.key_id(), key.key_secret().expose_secret());
        let mut request = Request::new(Full::new(Bytes::from_static(FORM_BODY)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.token_url.clone();
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        Ok(request)
    }
}

impl Default for OAuth2Source {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OAuth2Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Source")
            .field(
                "token_url",
                &format_args!("{}", crate::host::without_userinfo(&self.token_url)),
            )
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl TokenSource for OAuth2Source {
    fn fetch(&self, request: FetchRequest) -> TokenFuture {
        let credentials = request.credentials().clone();
        let request = self.request(&credentials);
        let client = self.client.get_or_init(TokenHttpClient::hyper).clone();
        let limit = self.max_response_bytes;
        let clock = self.clock.clone();
        Box::pin(async move {
            let response = client.send(request?).await.map_err(FetchError::Transport)?;
            let (parts, body) = response.into_parts();
            crate::observe::http_status(parts.status);
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(FetchError::ResponseTooLarge { limit });
            }
            let body = read_limited(body, limit).await?;
            if !parts.status.is_success() {
                let (error, description) = match credentials.access_key() {
                    Some(key) => {
                        let secret = key.key_secret().expose_secret();
                        let basic = scheme::basic(key.key_id(), secret);
                        let encoded = basic.to_str().unwrap_or_default();
                        let encoded = encoded.strip_prefix("Basic ").unwrap_or_default();
                        parse_error_body(&body, &[secret, encoded])
                    }
                    None => parse_error_body(&body, &[]),
                };
                return Err(FetchError::Endpoint {
                    status: parts.status,
                    error,
                    description,
                    retry_after: retry_after(&parts.headers, clock.now()),
                });
            }
            parse_token(&body, clock.now())
        })
    }

    fn name(&self) -> &'static str {
        "oauth2"
    }

    fn share_key(&self, credentials: &Credentials) -> Option<StoreKey> {
        let key = credentials.access_key()?;
        Some(StoreKey::for_access_key(&self.token_url.to_string(), key))
    }
}

/// Reads a response body, giving up as soon as it passes `limit` bytes.
async fn read_limited(
    mut body: http_body_util::combinators::UnsyncBoxBody<Bytes, crate::BoxError>,
    limit: usize,
) -> Result<Bytes, FetchError> {
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(FetchError::Transport)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(FetchError::ResponseTooLarge { limit });
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Sinch's error fields, stripped of control characters, cleared of every
/// `secrets` value and shortened: they end up in logs and error messages, and
/// an endpoint (or a proxy in front of it) that quotes the request back would
/// otherwise put the key secret there.
pub(crate) fn parse_error_body(body: &[u8], secrets: &[&str]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let field = |name: &str| {
        map.get(name).and_then(Value::as_str).map(|s| {
            let mut text: String = s.chars().filter(|c| !c.is_control()).collect();
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                if text.contains(secret) {
                    text = text.replace(secret, "[REDACTED]");
                }
            }
            text.chars().take(200).collect::<String>()
        })
    };
    (field("error"), field("error_description"))
}

pub(crate) fn parse_token(body: &[u8], now: SystemTime) -> Result<Token, FetchError> {
    let malformed = |reason| FetchError::MalformedResponse { reason };
    // Parsed as a generic value so that no serde message (which can quote
    // input, i.e. the token) ever reaches an error.
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(malformed("body is not a JSON object"));
    };
    let access_token = match map.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        Some(Value::String(_)) => return Err(malformed("access_token is empty")),
        Some(_) => return Err(malformed("access_token is not a string")),
        None => return Err(malformed("access_token is missing")),
    };
    match map.get("token_type") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(malformed("token_type is not bearer")),
    }
    let expires_in = match map.get("expires_in") {
        Some(value) => parse_expires_in(value)?,
        None => {
            // Sinch always sends expires_in; fall back on the JWT's own exp.
            let left = super::exp_left(access_token, now)
                .ok_or(malformed("expires_in is missing and the token has no exp"))?;
            if left.is_zero() {
                return Err(malformed(
                    "expires_in is missing and the token's exp has passed",
                ));
            }
            left
        }
    };
    let mut token = Token::new(access_token, expires_in);
    if let Some(Value::String(scope)) = map.get("scope") {
        token = token.with_scope(scope.clone());
    }
    Ok(token)
}

fn parse_expires_in(value: &Value) -> Result<Duration, FetchError> {
    let malformed = |reason| FetchError::MalformedResponse { reason };
    let seconds = match value {
        Value::Number(n) => n.as_f64().ok_or(malformed("expires_in is not a number"))?,
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| malformed("expires_in is not a number"))?,
        _ => return Err(malformed("expires_in is not a number")),
    };
    if !seconds.is_finite() {
        return Err(malformed("expires_in is not a number"));
    }
    if seconds < 1.0 {
        return Err(malformed("expires_in is not positive"));
    }
    // Absurd values are clamped by the cache; keep the conversion total.
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn token_request_has_the_exact_shape_of_spec_section_2() {
        let creds = Credentials::from(crate::AccessKey::new("p", "fooKey", "fooSecret").unwrap());
        let request = OAuth2Source::new()
            .auth_host("https://auth.example.sinch.com")
            .unwrap()
            .request(&creds)
            .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "https://auth.example.sinch.com/oauth2/token");
        assert_eq!(
            request.headers()[AUTHORIZATION],
            "Basic Zm9vS2V5OmZvb1NlY3JldA=="
        );
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(
            request.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn parses_a_sinch_token_answer() {
        let body =
            br#"{"access_token":"abc.def.ghi","expires_in":3599,"scope":"","token_type":"bearer"}"#;
        let token = parse_token(body, now()).unwrap();
        assert_eq!(token.value().expose_secret(), "abc.def.ghi");
        assert_eq!(token.expires_in(), Duration::from_secs(3599));
        assert_eq!(token.scope(), Some(""));
    }

    #[test]
    fn malformed_answers_are_typed_and_never_quote_the_body() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json SECRETX", "body is not a JSON object"),
            (b"[1,2]", "body is not a JSON object"),
            (br#"{"expires_in":3600}"#, "access_token is missing"),
            (
                br#"{"access_token":7,"expires_in":3600}"#,
                "access_token is not a string",
            ),
            (
                br#"{"access_token":"","expires_in":3600}"#,
                "access_token is empty",
            ),
            (
                br#"{"access_token":"SECRETX","expires_in":0}"#,
                "expires_in is not positive",
            ),
            (
                br#"{"access_token":"SECRETX","expires_in":-5}"#,
                "expires_in is not positive",
            ),
            (
                br#"{"access_token":"SECRETX","expires_in":"soon SECRETX"}"#,
                "expires_in is not a number",
            ),
            (
                br#"{"access_token":"SECRETX","expires_in":3600,"token_type":"mac"}"#,
                "token_type is not bearer",
            ),
            (
                br#"{"access_token":"SECRETX"}"#,
                "expires_in is missing and the token has no exp",
            ),
        ];
        for (body, reason) in cases {
            let err = parse_token(body, now()).unwrap_err();
            assert!(
                matches!(&err, FetchError::MalformedResponse { reason: r } if r == reason),
                "{err:?}"
            );
            assert!(!err.to_string().contains("SECRETX"));
            assert!(!format!("{err:?}").contains("SECRETX"));
        }
    }

    #[test]
    fn absurd_expires_in_does_not_overflow() {
        let body = br#"{"access_token":"t","expires_in":1e300}"#;
        assert_eq!(
            parse_token(body, now()).unwrap().expires_in(),
            Duration::MAX
        );
        let body = br#"{"access_token":"t","expires_in":18446744073709551615}"#;
        assert!(parse_token(body, now()).unwrap().expires_in() > Duration::from_secs(1 << 60));
    }

    #[test]
    fn error_bodies_yield_sinch_codes() {
        let (e, d) = parse_error_body(
            br#"{"error":"invalid_client","error_description":"Client authentication failed","error_verbose":"x","error_hint":"y"}"#,
            &[],
        );
        assert_eq!(e.as_deref(), Some("invalid_client"));
        assert_eq!(d.as_deref(), Some("Client authentication failed"));
        assert_eq!(parse_error_body(b"<html>", &[]), (None, None));
    }

    #[test]
    fn error_bodies_quoting_a_secret_back_are_redacted_before_shortening() {
        let padding = "x".repeat(190);
        let body = format!(
            r#"{{"error":"bad S3CR\u0001ET","error_description":"{padding}S3CRET and Zm9v"}}"#
        );
        let (e, d) = parse_error_body(body.as_bytes(), &["S3CRET", "Zm9v", ""]);
        assert_eq!(e.as_deref(), Some("bad [REDACTED]"));
        let d = d.unwrap();
        assert!(!d.contains("S3C") && !d.contains("Zm9v"), "{d}");
        assert!(d.starts_with(&padding) && d.chars().count() == 200);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(120)));
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&headers, now()), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now()), None);
    }

    #[test]
    fn auth_host_must_be_https_or_loopback() {
        assert!(
            OAuth2Source::new()
                .auth_host("https://auth.sinch.com/")
                .is_ok()
        );
        assert!(
            OAuth2Source::new()
                .auth_host("http://localhost:9999")
                .is_ok()
        );
        assert!(OAuth2Source::new().auth_host("http://[::1]:9999").is_ok());
        for bad in [
            "http://auth.sinch.com",
            "auth.sinch.com",
            "https://auth.sinch.com/other",
            "https://auth.sinch.com?x=1",
            "::::",
        ] {
            assert!(
                matches!(
                    OAuth2Source::new().auth_host(bad),
                    Err(ConfigError::InvalidUrl {
                        field: "auth host",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
