//! Conversation and SMS webhooks (protocol notes §5).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::replay::{ReplayEntry, ReplayMemory, ReplayStore, Window};
use super::rotation::{Keyring, SecretSource, SecretUsed, fetch_secret};
use super::{Freshness, Rejection, Verified, Verifier, VerifyFuture, header, optional_header};
use crate::clock::Clock;
use crate::scheme::application::hmac_sha256;

const SIGNATURE: &str = "x-sinch-webhook-signature";
const NONCE: &str = "x-sinch-webhook-signature-nonce";
const TIMESTAMP: &str = "x-sinch-webhook-signature-timestamp";
const ALGORITHM: &str = "x-sinch-webhook-signature-algorithm";

/// The signature Sinch puts in `x-sinch-webhook-signature`:
/// `base64(HMAC-SHA256(key = UTF-8 secret, msg = body "." nonce "." timestamp))`.
///
/// The secret is used as text, not base64-decoded. Useful to test your own
/// handlers; [`WebhookVerifier`] checks it.
///
/// ```
/// use sinch_auth::verify::webhook_signature;
///
/// // Protocol notes §5, vector H2.
/// let body = br#"{"at":"2025-01-13T09:22:40.914Z","batch_id":"01JHFFHQ0P99JPPNQPJDV7JTBP","client_reference":"a client reference","code":0,"operator_status_at":"2025-01-13T09:22:00Z","recipient":"33662162466","status":"Delivered","type":"recipient_delivery_report_sms"}"#;
/// assert_eq!(
///     webhook_signature("SMSWebhooksSecret", body, "01JHFFHWYY7HSS4FWTMDTQEK8V", "1736760161"),
///     "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0=",
/// );
/// ```
pub fn webhook_signature(secret: &str, body: &[u8], nonce: &str, timestamp: &str) -> String {
    let (buf, len) = compute(secret.as_bytes(), body, nonce, timestamp);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

fn compute(secret: &[u8], body: &[u8], nonce: &str, timestamp: &str) -> ([u8; 44], usize) {
    let mut mac = hmac_sha256(secret);
    mac.update(body);
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    let mut buf = [0; 44];
    let len = STANDARD
        .encode_slice(mac.finalize().into_bytes(), &mut buf)
        .unwrap_or(0);
    (buf, len)
}

/// Verifies Conversation and SMS webhooks signed with a webhook secret.
///
/// Reads `x-sinch-webhook-signature`, `-nonce` and `-timestamp` (Unix
/// seconds), all required, and `-algorithm`, which must be `HmacSHA256` when
/// present. The signature is recomputed over the raw body exactly as received
/// (see [`webhook_signature`]) and compared in constant time; the timestamp
/// must be fresh and the nonce new (replay memory is on by default).
///
/// # The nonce
///
/// Sinch's nonces are 26-character ULIDs. The signed message is
/// `body "." nonce "." timestamp` with no framing, so a nonce containing `.`
/// would let anyone move the tail of a genuine body into the nonce and keep
/// the signature valid. A nonce must therefore be **1 to 128 characters,
/// ASCII letters, digits, `-` or `_`** ([`Rejection::MalformedHeader`]
/// otherwise); with the digits-only timestamp, the message splits one way only.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sinch_auth::clock::ManualClock;
/// use sinch_auth::verify::{Rejection, Verifier, WebhookVerifier, webhook_signature};
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_736_760_161);
/// let verifier = WebhookVerifier::new("SMSWebhooksSecret").clock(ManualClock::new(now));
///
/// let body = br#"{"status":"Delivered"}"#;
/// let signature = webhook_signature("SMSWebhooksSecret", body, "n-1", "1736760161");
/// let (parts, ()) = http::Request::post("/sms")
///     .header("x-sinch-webhook-signature", signature)
///     .header("x-sinch-webhook-signature-nonce", "n-1")
///     .header("x-sinch-webhook-signature-timestamp", "1736760161")
///     .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
///     .body(())?
///     .into_parts();
///
/// assert!(verifier.verify(&parts, body).is_ok());
/// assert_eq!(verifier.verify(&parts, body), Err(Rejection::Replayed { what: "nonce" }));
/// # Ok::<(), http::Error>(())
/// ```
#[must_use]
pub struct WebhookVerifier {
    secrets: Keyring<SecretString>,
    window: Window,
}

/// The longest nonce accepted.
const MAX_NONCE_LEN: usize = 128;

/// What the head of a webhook says, checked before any body is read.
struct Head<'a> {
    signature: &'a str,
    nonce: &'a str,
    timestamp_text: &'a str,
    timestamp: SystemTime,
}

impl WebhookVerifier {
    /// Verifies webhooks signed with `secret` (as set on the Conversation app
    /// or SMS webhook), with the default [`Freshness`], the system clock, and
    /// replay memory for [`DEFAULT_REPLAY_CAPACITY`](super::DEFAULT_REPLAY_CAPACITY)
    /// nonces. An empty `secret` rejects every request ([`Rejection::EmptySecret`]).
    pub fn new(secret: impl Into<String>) -> Self {
        Self::with_secrets([secret])
    }

    /// Accepts webhooks signed with any of `secrets`, for deployments that
    /// rotate by redeploying: list the new secret first and the old one
    /// after it until no callback signed with it can arrive. [`Verified`]
    /// says which matched ([`SecretUsed::Current`] for the first,
    /// [`SecretUsed::Listed`] for the others). Empty secrets are never
    /// used; with none left, every request is rejected ([`Rejection::EmptySecret`]).
    pub fn with_secrets<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut secrets = secrets.into_iter().map(|s| SecretString::from(s.into()));
        // No secret at all: one empty one, which rejects everything.
        let mut ring = Keyring::fixed(secrets.next().unwrap_or_default(), same_secret);
        for older in secrets {
            ring.add_listed(older);
        }
        Self {
            secrets: ring,
            window: Window::default(),
        }
    }

    /// Takes the secret from `source` (for example a [`RotatingSecret`](super::RotatingSecret)
    /// fed by your secret manager) at every verification. After a rotation,
    /// the secret it replaces is still accepted for the
    /// [grace period](Self::grace_period), counted from the rotation
    /// ([`SecretSource::last_rotation`]) on the monotonic reading of this
    /// verifier's [clock](Self::clock), so stepping the wall clock does not
    /// move it.
    pub fn from_source(source: impl SecretSource) -> Self {
        let current = source.secret();
        Self {
            secrets: Keyring::rotating(current, fetch_secret(source), same_secret),
            window: Window::default(),
        }
    }

    /// How long the previous secret is accepted after a rotation of the
    /// [source](Self::from_source) (default [`DEFAULT_GRACE_PERIOD`](super::DEFAULT_GRACE_PERIOD), one hour).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.secrets.set_grace(grace);
        self
    }

    /// Sets the freshness window of the signed timestamp.
    pub fn freshness(mut self, freshness: Freshness) -> Self {
        self.window.freshness = freshness;
        self
    }

    /// Sets the clock freshness is checked against (wall time) and the grace
    /// period is counted on ([monotonic](Clock::monotonic) time).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.window.clock = Arc::new(clock);
        self
    }

    /// Rejects a nonce already accepted while its timestamp is fresh,
    /// remembering at most `capacity` of them (at least one) in this process.
    /// On by default with [`DEFAULT_REPLAY_CAPACITY`](super::DEFAULT_REPLAY_CAPACITY).
    pub fn replay_protection(mut self, capacity: usize) -> Self {
        self.window.memory = Some(Arc::new(ReplayMemory::new(capacity)));
        self
    }

    /// Remembers accepted nonces in `store` as well, for
    /// [`verify_async`](Verifier::verify_async) and so for
    /// [`VerifyLayer`](super::VerifyLayer): share one store (for example a
    /// `RedisReplayStore`, feature `redis`) between the instances of a fleet
    /// so that a replay is refused by all of them.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.window.shared = Some(Arc::new(store));
        self
    }

    /// Turns replay memory off: a webhook is then accepted as often as it
    /// arrives while its timestamp is fresh. Only for receivers that
    /// deduplicate on the nonce themselves.
    pub fn without_replay_protection(mut self) -> Self {
        self.window.memory = None;
        self.window.shared = None;
        self
    }

    fn head<'a>(&self, request: &'a Parts) -> Result<Head<'a>, Rejection> {
        let signature = header(request, SIGNATURE)?;
        let nonce = header(request, NONCE)?;
        let timestamp_text = header(request, TIMESTAMP)?;
        if let Some(algorithm) = optional_header(request, ALGORITHM)? {
            if !algorithm.eq_ignore_ascii_case("HmacSHA256") {
                return Err(Rejection::UnsupportedAlgorithm { name: ALGORITHM });
            }
        }
        check_nonce(nonce)?;
        let timestamp = parse_unix_seconds(timestamp_text)?;
        self.window.check_fresh(timestamp)?;
        Ok(Head {
            signature,
            nonce,
            timestamp_text,
            timestamp,
        })
    }

    /// The secrets accepted now, empty ones left out.
    fn secrets(&self) -> Result<Vec<(Arc<SecretString>, SecretUsed)>, Rejection> {
        let mut secrets = self.secrets.candidates(self.window.clock.monotonic());
        // An empty secret would accept an HMAC anyone can compute.
        secrets.retain(|(secret, _)| !secret.expose_secret().is_empty());
        if secrets.is_empty() {
            return Err(Rejection::EmptySecret);
        }
        Ok(secrets)
    }

    fn check(
        &self,
        request: &Parts,
        body: &[u8],
    ) -> Result<(Verified, Option<ReplayEntry>), Rejection> {
        let secrets = self.secrets()?;
        let head = self.head(request)?;
        let matched = secrets.iter().find_map(|(secret, used)| {
            let (expected, len) = compute(
                secret.expose_secret().as_bytes(),
                body,
                head.nonce,
                head.timestamp_text,
            );
            bool::from(expected[..len].ct_eq(head.signature.as_bytes())).then_some((secret, *used))
        });
        let Some((key, secret)) = matched else {
            return Err(Rejection::SignatureMismatch);
        };
        let entry = self.window.entry(
            key.expose_secret().as_bytes(),
            head.timestamp,
            "nonce",
            head.nonce.as_bytes(),
        )?;
        let verified = Verified::Webhook {
            nonce: head.nonce.to_owned(),
            timestamp: head.timestamp,
            secret,
        };
        Ok((verified, entry))
    }
}

fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

/// See "The nonce" on [`WebhookVerifier`].
fn check_nonce(nonce: &str) -> Result<(), Rejection> {
    if nonce.is_empty() {
        return Err(Rejection::MalformedHeader {
            name: NONCE,
            reason: "empty",
        });
    }
    if nonce.len() > MAX_NONCE_LEN
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Rejection::MalformedHeader {
            name: NONCE,
            reason: "must be 1 to 128 ASCII letters, digits, '-' or '_'",
        });
    }
    Ok(())
}

impl Verifier for WebhookVerifier {
    fn precheck(&self, request: &Parts) -> Result<(), Rejection> {
        self.secrets()?;
        self.head(request).map(drop)
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

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("secrets", &self.secrets)
            .field("window", &self.window)
            .finish()
    }
}

fn parse_unix_seconds(text: &str) -> Result<SystemTime, Rejection> {
    let malformed = Rejection::MalformedHeader {
        name: TIMESTAMP,
        reason: "not Unix seconds",
    };
    // Digits only: `u64::from_str` would also take a leading '+'.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    let seconds: u64 = text.parse().map_err(|_| malformed.clone())?;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .ok_or(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const H1_BODY: &str = r#"{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},"message_metadata":""}"#;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn request(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::post("/webhook");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn signed(signature: &str, nonce: &str, timestamp: &str) -> Parts {
        request(&[
            (SIGNATURE, signature),
            (NONCE, nonce),
            (TIMESTAMP, timestamp),
            (ALGORITHM, "HmacSHA256"),
        ])
    }

    #[test]
    fn the_secret_is_not_base64_decoded() {
        // "Zm9v" is base64 for "foo": a verifier that decoded it would accept this.
        let body = b"{}";
        let signature = webhook_signature("foo", body, "n", "1");
        let verifier = WebhookVerifier::new("Zm9v").freshness(Freshness::disabled());
        assert_eq!(
            verifier.verify(&signed(&signature, "n", "1"), body),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn algorithm_header_is_optional_but_must_be_hmac_sha256() {
        let verifier =
            WebhookVerifier::new("foo_secret1234").clock(ManualClock::new(at(1_634_579_353)));
        let headers = [
            (SIGNATURE, "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE="),
            (NONCE, "01FJA8B4A7BM43YGWSG9GBV067"),
            (TIMESTAMP, "1634579353"),
        ];
        assert!(
            verifier
                .verify(&request(&headers), H1_BODY.as_bytes())
                .is_ok()
        );
        let mut with_sha1 = headers.to_vec();
        with_sha1.push((ALGORITHM, "HmacSHA1"));
        assert_eq!(
            verifier.verify(&request(&with_sha1), H1_BODY.as_bytes()),
            Err(Rejection::UnsupportedAlgorithm { name: ALGORITHM })
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let verifier = WebhookVerifier::new("s").freshness(Freshness::disabled());
        let ts_malformed = Rejection::MalformedHeader {
            name: TIMESTAMP,
            reason: "not Unix seconds",
        };
        let cases: Vec<(Vec<(&str, &str)>, Rejection)> = vec![
            (vec![], Rejection::MissingHeader { name: SIGNATURE }),
            (
                vec![(SIGNATURE, "x")],
                Rejection::MissingHeader { name: NONCE },
            ),
            (
                vec![(SIGNATURE, "x"), (NONCE, "n")],
                Rejection::MissingHeader { name: TIMESTAMP },
            ),
            (
                vec![(SIGNATURE, "x"), (NONCE, ""), (TIMESTAMP, "1")],
                Rejection::MalformedHeader {
                    name: NONCE,
                    reason: "empty",
                },
            ),
        ];
        let mut cases = cases;
        for bad in [
            "",
            "+1",
            "-1",
            "1.5",
            "1e9",
            " 1",
            "99999999999999999999999",
        ] {
            cases.push((
                vec![(SIGNATURE, "x"), (NONCE, "n"), (TIMESTAMP, bad)],
                ts_malformed.clone(),
            ));
        }
        for (headers, expected) in cases {
            assert_eq!(
                verifier.verify(&request(&headers), b""),
                Err(expected),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn an_empty_secret_rejects_everything_even_a_matching_signature() {
        let verifier = WebhookVerifier::new("").freshness(Freshness::disabled());
        let signature = webhook_signature("", b"{}", "n", "1");
        assert_eq!(
            verifier.verify(&signed(&signature, "n", "1"), b"{}"),
            Err(Rejection::EmptySecret)
        );
    }

    #[test]
    fn debug_redacts_the_secret() {
        let verifier = WebhookVerifier::new("SMSWebhooksSecret").replay_protection(8);
        let shown = format!("{verifier:?}");
        assert!(!shown.contains("SMSWebhooksSecret"), "{shown}");
        // What it does show: its rotation, freshness and replay settings.
        assert!(shown.starts_with("WebhookVerifier"), "{shown}");
        assert!(shown.contains("rotating: false"), "{shown}");
        assert!(shown.contains("replay_capacity: Some(8)"), "{shown}");
    }
}
