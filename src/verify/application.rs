//! Voice and Verification callbacks: the application scheme (protocol notes §4, §5).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::replay::{ReplayEntry, ReplayMemory, ReplayStore, Window};
use super::rotation::{Keyring, Record, SecretUsed, Update};
use super::{Freshness, Rejection, Verified, Verifier, VerifyFuture, header, optional_header};
use crate::clock::Clock;
use crate::error::{ConfigError, CredentialKind};
use crate::scheme::application::Signature;
use crate::{ApplicationCredentials, CredentialProvider, Credentials};

const AUTHORIZATION: &str = "authorization";
const TIMESTAMP: &str = "x-timestamp";
const CONTENT_TYPE: &str = "content-type";

/// Verifies Voice and Verification callbacks.
///
/// Sinch signs them as `authorization: application {appKey}:{signature}` with
/// the scheme of protocol notes §4 over the method, the `content-type`, the
/// `x-timestamp`, the path and the raw body. This verifier recomputes the
/// signature with the same code that signs outgoing requests (so the same
/// [path rule](crate::scheme::application#the-path-that-is-signed) applies: the
/// percent-decoded path of the request URI, without the query) and compares
/// in constant time. The scheme word is case-insensitive; the key must be
/// the configured application's.
///
/// The method is signed as received, not upper-cased: Sinch sends upper-case
/// methods, and a request whose method differs in case is not the one signed.
///
/// The method and path are those of the request as your service sees it:
/// behind a proxy that rewrites paths, or inside a nested router that strips
/// a prefix, the path differs from the one Sinch signed, and verification
/// fails. Apply the layer where the full callback path is visible.
///
/// Verification can instead send `Basic base64(appKey:appSecret)`; accept it
/// with [`allow_basic`](Self::allow_basic).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sinch_auth::ApplicationCredentials;
/// use sinch_auth::clock::ManualClock;
/// use sinch_auth::verify::{ApplicationVerifier, Verified, Verifier};
///
/// let app = ApplicationCredentials::new("669E367E-6BBA-48AB-AF15-266871C28135", "BeIukql3pTKJ8RGL5zo0DA==")?;
/// // Protocol notes §5, vector C1, verified on the day it was sent.
/// let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_411_556_381);
/// let verifier = ApplicationVerifier::new(app).clock(ManualClock::new(signed_at));
///
/// let body = r#"{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257","timestamp":"2014-09-24T10:59:41Z","version":1}"#;
/// let request = http::Request::post("/sinch/callback/ace")
///     .header("content-type", "application/json")
///     .header("x-timestamp", "2014-09-24T10:59:41Z")
///     .header("authorization", "application 669E367E-6BBA-48AB-AF15-266871C28135:Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=")
///     .body(())?;
/// let (parts, ()) = request.into_parts();
/// let verified = verifier.verify(&parts, body.as_bytes()).unwrap();
/// assert!(matches!(verified, Verified::Application { key, .. } if key == "669E367E-6BBA-48AB-AF15-266871C28135"));
///
/// // Another body, same headers: rejected.
/// assert!(verifier.verify(&parts, b"{}").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct ApplicationVerifier {
    /// Each entry holds application credentials.
    keys: Keyring<Credentials>,
    allow_basic: bool,
    window: Window,
}

impl ApplicationVerifier {
    /// Verifies callbacks signed for `app`, with the default [`Freshness`],
    /// the system clock, replay memory for
    /// [`DEFAULT_REPLAY_CAPACITY`](super::DEFAULT_REPLAY_CAPACITY) signatures,
    /// and Basic not accepted.
    pub fn new(app: ApplicationCredentials) -> Self {
        Self {
            keys: Keyring::fixed(Credentials::from(app), same_application),
            allow_basic: false,
            window: Window::default(),
        }
    }

    /// Takes the application credentials from `provider` (the same
    /// [`CredentialProvider`] the outbound layer uses, such as
    /// [`RotatingCredentials`](crate::RotatingCredentials)) at every
    /// verification. After a rotation of the application key or secret, the
    /// replaced credentials are still accepted for the
    /// [grace period](Self::grace_period), counted from the rotation
    /// ([`CredentialProvider::last_rotation`]) on the monotonic reading of
    /// this verifier's [clock](Self::clock). A change that leaves no
    /// application credentials is ignored.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingCredential`] if the provider's current
    /// credentials hold no application key and secret.
    pub fn from_provider(provider: impl CredentialProvider) -> Result<Self, ConfigError> {
        let current = provider.credentials();
        if current.application().is_none() {
            return Err(ConfigError::MissingCredential {
                scheme: "application callback verification",
                needs: CredentialKind::Application,
            });
        }
        let fetch = Box::new(move |held: &Arc<Credentials>| {
            if provider.current_id() == held.id() {
                return None;
            }
            let update = match provider.last_rotation() {
                Some(rotation) if rotation.current().id() != held.id() => Update {
                    current: Arc::clone(rotation.current()),
                    // Credentials without an application never enter the
                    // keyring, so one that replaced them cannot place when
                    // the held application was replaced.
                    record: match rotation.replaced().application() {
                        Some(_) => Record::Rotation(rotation),
                        None => Record::Unplaceable,
                    },
                },
                _ => Update {
                    current: provider.credentials(),
                    record: Record::None,
                },
            };
            update.current.application().is_some().then_some(update)
        });
        Ok(Self {
            keys: Keyring::rotating(current, fetch, same_application),
            allow_basic: false,
            window: Window::default(),
        })
    }

    /// Also accepts callbacks signed with `older` (reported as
    /// [`SecretUsed::Listed`]), for deployments that rotate by redeploying:
    /// keep the old application here until no callback signed with it can arrive.
    pub fn also_accept(mut self, older: ApplicationCredentials) -> Self {
        self.keys.add_listed(Credentials::from(older));
        self
    }

    /// How long the previous credentials are accepted after a rotation of
    /// the [provider](Self::from_provider) (default
    /// [`DEFAULT_GRACE_PERIOD`](super::DEFAULT_GRACE_PERIOD), one hour).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.keys.set_grace(grace);
        self
    }

    /// Also accepts `authorization: Basic base64(appKey:appSecret)` (the
    /// secret as the dashboard shows it), which Verification sends when its
    /// callbacks are set to Basic authentication. Basic carries no timestamp:
    /// neither freshness nor replay protection applies to it.
    pub fn allow_basic(mut self) -> Self {
        self.allow_basic = true;
        self
    }

    /// Sets the freshness window of `x-timestamp`.
    pub fn freshness(mut self, freshness: Freshness) -> Self {
        self.window.freshness = freshness;
        self
    }

    /// Sets the clock freshness (wall time) and the grace period
    /// ([monotonic](Clock::monotonic) time) are checked against.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.window.clock = Arc::new(clock);
        self
    }

    /// Rejects a signature already accepted while its `x-timestamp` is
    /// fresh, remembering at most `capacity` of them (at least one) in this
    /// process. The application scheme has no nonce, so the signature stands
    /// in for one. On by default with
    /// [`DEFAULT_REPLAY_CAPACITY`](super::DEFAULT_REPLAY_CAPACITY).
    ///
    /// The signature does not cover the query string (protocol notes §4), so the
    /// signature, not the URI, is what is remembered: a captured callback
    /// sent again with `?anything` appended is the same entry, and refused.
    pub fn replay_protection(mut self, capacity: usize) -> Self {
        self.window.memory = Some(Arc::new(ReplayMemory::new(capacity)));
        self
    }

    /// Remembers accepted signatures in `store` as well, for
    /// [`verify_async`](Verifier::verify_async) and so for
    /// [`VerifyLayer`](super::VerifyLayer): share one store (for example a
    /// `RedisReplayStore`, feature `redis`) between the instances of a fleet
    /// so that a replay is refused by all of them.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.window.shared = Some(Arc::new(store));
        self
    }

    /// Turns replay memory off. A captured callback is then accepted again,
    /// with any query string, until its `x-timestamp` is stale (5 minutes
    /// by default). Only for receivers that deduplicate callbacks themselves
    /// (for example on Voice's `callid` and event).
    pub fn without_replay_protection(mut self) -> Self {
        self.window.memory = None;
        self.window.shared = None;
        self
    }

    /// The applications accepted now, the current one first.
    fn applications(&self) -> Vec<(Arc<Credentials>, SecretUsed)> {
        self.keys.candidates(self.window.clock.monotonic())
    }

    /// The head of an application-signed request: key, timestamp, signature.
    fn signed_head<'a>(
        &self,
        request: &'a Parts,
        credentials: &'a str,
        apps: &[(Arc<Credentials>, SecretUsed)],
    ) -> Result<SignedHead<'a>, Rejection> {
        let (key, signature) = credentials.trim_start_matches(' ').split_once(':').ok_or(
            Rejection::MalformedHeader {
                name: AUTHORIZATION,
                reason: "expected application {key}:{signature}",
            },
        )?;
        if !apps.iter().any(|(c, _)| app_of(c).key() == key) {
            return Err(Rejection::UnknownKey);
        }
        let timestamp_text = header(request, TIMESTAMP)?;
        let timestamp = parse_iso8601(timestamp_text)?;
        let content_type = optional_header(request, CONTENT_TYPE)?.unwrap_or("");
        self.window.check_fresh(timestamp)?;
        Ok(SignedHead {
            key,
            signature,
            timestamp_text,
            timestamp,
            content_type,
        })
    }

    fn verify_signed(
        &self,
        request: &Parts,
        body: &[u8],
        credentials: &str,
        apps: &[(Arc<Credentials>, SecretUsed)],
    ) -> Result<(Verified, Option<ReplayEntry>), Rejection> {
        let head = self.signed_head(request, credentials, apps)?;
        let matched = apps
            .iter()
            .filter(|(c, _)| app_of(c).key() == head.key)
            .find_map(|(c, used)| {
                let expected = Signature::compute(
                    app_of(c).decoded_secret().expose_secret(),
                    request.method.as_str().as_bytes(),
                    request.uri.path(),
                    head.content_type.as_bytes(),
                    body,
                    head.timestamp_text.as_bytes(),
                );
                bool::from(expected.as_bytes().ct_eq(head.signature.as_bytes()))
                    .then_some((c, *used))
            });
        let Some((credentials, secret)) = matched else {
            return Err(Rejection::SignatureMismatch);
        };
        let entry = self.window.entry(
            app_of(credentials).decoded_secret().expose_secret(),
            head.timestamp,
            "signature",
            head.signature.as_bytes(),
        )?;
        let verified = Verified::Application {
            key: head.key.to_owned(),
            timestamp: head.timestamp,
            secret,
        };
        Ok((verified, entry))
    }

    /// Which scheme the request uses, and its credentials.
    fn scheme<'a>(&self, request: &'a Parts) -> Result<Scheme<'a>, Rejection> {
        let authorization = header(request, AUTHORIZATION)?;
        let (scheme, credentials) = authorization.split_once(' ').unwrap_or((authorization, ""));
        if scheme.eq_ignore_ascii_case("application") {
            Ok(Scheme::Signed(credentials))
        } else if scheme.eq_ignore_ascii_case("basic") && self.allow_basic {
            Ok(Scheme::Basic(credentials))
        } else {
            Err(Rejection::UnsupportedScheme)
        }
    }

    fn check(
        &self,
        request: &Parts,
        body: &[u8],
    ) -> Result<(Verified, Option<ReplayEntry>), Rejection> {
        let scheme = self.scheme(request)?;
        let apps = self.applications();
        match scheme {
            Scheme::Signed(credentials) => self.verify_signed(request, body, credentials, &apps),
            Scheme::Basic(credentials) => Ok((verify_basic(credentials, &apps)?, None)),
        }
    }
}

/// The application credentials of a keyring entry (every entry has them).
fn app_of(credentials: &Credentials) -> &ApplicationCredentials {
    credentials
        .application()
        .expect("the keyring holds only credentials with an application")
}

fn same_application(a: &Credentials, b: &Credentials) -> bool {
    match (a.application(), b.application()) {
        (Some(a), Some(b)) => {
            a.key() == b.key()
                && a.decoded_secret().expose_secret() == b.decoded_secret().expose_secret()
        }
        _ => false,
    }
}

fn verify_basic(
    credentials: &str,
    apps: &[(Arc<Credentials>, SecretUsed)],
) -> Result<Verified, Rejection> {
    let token = credentials.trim_start_matches(' ');
    for (c, used) in apps {
        let app = app_of(c);
        let expected = crate::scheme::application::basic(app);
        let expected = expected.as_bytes();
        let expected = expected.strip_prefix(b"Basic ").unwrap_or(expected);
        if bool::from(expected.ct_eq(token.as_bytes())) {
            return Ok(Verified::Basic {
                key: app.key().to_owned(),
                secret: *used,
            });
        }
    }
    // Only to tell the log which part is wrong; the decoded bytes are dropped here.
    let decoded = zeroize::Zeroizing::new(STANDARD.decode(token).map_err(|_| {
        Rejection::MalformedHeader {
            name: AUTHORIZATION,
            reason: "Basic credentials are not base64",
        }
    })?);
    match decoded.iter().position(|&b| b == b':') {
        Some(colon)
            if !apps
                .iter()
                .any(|(c, _)| decoded[..colon] == *app_of(c).key().as_bytes()) =>
        {
            Err(Rejection::UnknownKey)
        }
        Some(_) => Err(Rejection::CredentialsMismatch),
        None => Err(Rejection::MalformedHeader {
            name: AUTHORIZATION,
            reason: "Basic credentials lack a ':'",
        }),
    }
}

enum Scheme<'a> {
    Signed(&'a str),
    Basic(&'a str),
}

struct SignedHead<'a> {
    key: &'a str,
    signature: &'a str,
    timestamp_text: &'a str,
    timestamp: SystemTime,
    content_type: &'a str,
}

impl Verifier for ApplicationVerifier {
    fn precheck(&self, request: &Parts) -> Result<(), Rejection> {
        let scheme = self.scheme(request)?;
        let apps = self.applications();
        match scheme {
            Scheme::Signed(credentials) => self.signed_head(request, credentials, &apps).map(drop),
            // Basic needs no body: check it all here.
            Scheme::Basic(credentials) => verify_basic(credentials, &apps).map(drop),
        }
    }

    fn verify(&self, request: &Parts, body: &[u8]) -> Result<Verified, Rejection> {
        let (verified, entry) = self.check(request, body)?;
        self.window.remember(entry.as_ref())?;
        Ok(verified)
    }

    fn verify_async<'a>(&'a self, request: &'a Parts, body: &'a [u8]) -> VerifyFuture<'a> {
        Box::pin(async move {
            let (verified, entry) = self.check(request, body)?;
            self.window.record(entry.as_ref()).await?;
            Ok(verified)
        })
    }
}

impl fmt::Debug for ApplicationVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let apps = self.applications();
        let keys: Vec<&str> = apps.iter().map(|(c, _)| app_of(c).key()).collect();
        f.debug_struct("ApplicationVerifier")
            .field("keys", &keys)
            .field("rotation", &self.keys)
            .field("allow_basic", &self.allow_basic)
            .field("window", &self.window)
            .finish()
    }
}

/// `x-timestamp`: ISO-8601 with an offset, any number of fractional digits
/// (Sinch's Verification sends seven, as in `2023-12-01T15:01:20.0406449Z`).
fn parse_iso8601(text: &str) -> Result<SystemTime, Rejection> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or(Rejection::MalformedHeader {
            name: TIMESTAMP,
            reason: "not an ISO-8601 timestamp with an offset",
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    const C1_KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
    const C1_BODY: &str = r#"{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257","timestamp":"2014-09-24T10:59:41Z","version":1}"#;
    const C1_AUTH: &str = "application 669E367E-6BBA-48AB-AF15-266871C28135:Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=";

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn c1_verifier() -> ApplicationVerifier {
        let app = ApplicationCredentials::new(C1_KEY, "BeIukql3pTKJ8RGL5zo0DA==").unwrap();
        // 2014-09-24T10:59:41Z
        ApplicationVerifier::new(app).clock(ManualClock::new(at(1_411_556_381)))
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const C1_TS: &str = "2014-09-24T10:59:41Z";

    #[test]
    fn scheme_word_is_case_insensitive() {
        for scheme in ["Application", "APPLICATION", "aPpLiCaTiOn"] {
            let auth = C1_AUTH.replacen("application", scheme, 1);
            let parts = request(
                "POST",
                "/sinch/callback/ace",
                &[
                    ("content-type", "application/json"),
                    ("x-timestamp", C1_TS),
                    ("authorization", &auth),
                ],
            );
            assert!(
                c1_verifier().verify(&parts, C1_BODY.as_bytes()).is_ok(),
                "{scheme}"
            );
        }
    }

    #[test]
    fn another_key_is_unknown() {
        let auth = C1_AUTH.replace("669E367E", "669E367F");
        let parts = request(
            "POST",
            "/sinch/callback/ace",
            &[("x-timestamp", C1_TS), ("authorization", &auth)],
        );
        assert_eq!(
            c1_verifier().verify(&parts, C1_BODY.as_bytes()),
            Err(Rejection::UnknownKey)
        );
    }

    #[test]
    fn malformed_headers_are_rejected_by_name() {
        let verifier = c1_verifier();
        let cases: Vec<(Vec<(&str, &str)>, Rejection)> = vec![
            (
                vec![],
                Rejection::MissingHeader {
                    name: "authorization",
                },
            ),
            (
                vec![("authorization", C1_AUTH)],
                Rejection::MissingHeader {
                    name: "x-timestamp",
                },
            ),
            (
                vec![("authorization", "application"), ("x-timestamp", C1_TS)],
                Rejection::MalformedHeader {
                    name: "authorization",
                    reason: "expected application {key}:{signature}",
                },
            ),
            (
                vec![("authorization", "Bearer abc")],
                Rejection::UnsupportedScheme,
            ),
            (
                vec![("authorization", "Basic YTpi")],
                Rejection::UnsupportedScheme,
            ),
            (vec![("authorization", "")], Rejection::UnsupportedScheme),
            (
                vec![("authorization", C1_AUTH), ("x-timestamp", "yesterday")],
                Rejection::MalformedHeader {
                    name: "x-timestamp",
                    reason: "not an ISO-8601 timestamp with an offset",
                },
            ),
            (
                vec![
                    ("authorization", C1_AUTH),
                    ("x-timestamp", "2014-09-24T10:59:41"),
                ],
                Rejection::MalformedHeader {
                    name: "x-timestamp",
                    reason: "not an ISO-8601 timestamp with an offset",
                },
            ),
            (
                vec![
                    ("authorization", C1_AUTH),
                    ("authorization", C1_AUTH),
                    ("x-timestamp", C1_TS),
                ],
                Rejection::MalformedHeader {
                    name: "authorization",
                    reason: "appears more than once",
                },
            ),
        ];
        for (headers, expected) in cases {
            let parts = request("POST", "/sinch/callback/ace", &headers);
            assert_eq!(verifier.verify(&parts, b""), Err(expected), "{headers:?}");
        }
        let mut parts = request("POST", "/", &[("x-timestamp", C1_TS)]);
        parts.headers.insert(
            "authorization",
            http::HeaderValue::from_bytes(b"application \xff:x").unwrap(),
        );
        assert_eq!(
            verifier.verify(&parts, b""),
            Err(Rejection::MalformedHeader {
                name: "authorization",
                reason: "not visible ASCII"
            })
        );
    }

    #[test]
    fn basic_is_rejected_unless_allowed_and_then_checked() {
        let app = ApplicationCredentials::new("my-app", "bXkta2V5LXNlY3JldA==").unwrap();
        let header = crate::scheme::application::basic(&app);
        let header = header.to_str().unwrap().to_owned();
        let parts = request("POST", "/", &[("authorization", &header)]);
        let verifier = ApplicationVerifier::new(
            ApplicationCredentials::new("my-app", "bXkta2V5LXNlY3JldA==").unwrap(),
        );
        assert_eq!(
            verifier.verify(&parts, b""),
            Err(Rejection::UnsupportedScheme)
        );

        let verifier = verifier.allow_basic();
        assert_eq!(
            verifier.verify(&parts, b""),
            Ok(Verified::Basic {
                key: "my-app".into(),
                secret: SecretUsed::Current,
            })
        );
        let lower = header.replacen("Basic", "basic", 1);
        let parts = request("POST", "/", &[("authorization", &lower)]);
        assert!(verifier.verify(&parts, b"").is_ok());

        let wrong_secret = crate::scheme::basic("my-app", "bXkta2V5LXNlY3JldB==");
        let wrong_key = crate::scheme::basic("other-app", "bXkta2V5LXNlY3JldA==");
        for (value, expected) in [
            (
                wrong_secret.to_str().unwrap(),
                Rejection::CredentialsMismatch,
            ),
            (wrong_key.to_str().unwrap(), Rejection::UnknownKey),
            (
                "Basic !!!",
                Rejection::MalformedHeader {
                    name: "authorization",
                    reason: "Basic credentials are not base64",
                },
            ),
            (
                "Basic bm9jb2xvbg==",
                Rejection::MalformedHeader {
                    name: "authorization",
                    reason: "Basic credentials lack a ':'",
                },
            ),
        ] {
            let parts = request("POST", "/", &[("authorization", value)]);
            assert_eq!(verifier.verify(&parts, b""), Err(expected), "{value}");
        }
    }

    #[test]
    fn debug_redacts_the_secrets() {
        let app = ApplicationCredentials::new("my-app", "bXkta2V5LXNlY3JldA==").unwrap();
        let verifier = ApplicationVerifier::new(app)
            .allow_basic()
            .replay_protection(8);
        let debug = format!("{verifier:?} {verifier:#?}");
        assert!(!debug.contains("bXkta2V5LXNlY3JldA"), "{debug}");
        assert!(
            !debug.contains("bXktYXBwOmJYa3RhMlY1TFhObFkzSmxkQT09"),
            "{debug}"
        );
        assert!(debug.contains("my-app"));
    }
}
