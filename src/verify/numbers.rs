//! Numbers callbacks (protocol notes §5).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::rotation::{Keyring, SecretSource, SecretUsed, fetch_secret};
use super::{Rejection, Verified, Verifier, header};
use crate::clock::{Clock, SystemClock};

const SIGNATURE: &str = "x-sinch-signature";

/// The signature Sinch puts in `X-Sinch-Signature` on Numbers callbacks:
/// lower-case hex of `HMAC-SHA1(key = UTF-8 callback secret, msg = body)`.
///
/// ```
/// use sinch_auth::verify::numbers_signature;
///
/// // Protocol notes §5, vector N2.
/// let body = br#"{"eventId":"01hpa0mww4m79q8j2dwn3ggbgz","timestamp":"2024-02-10T17:22:09.412722588","projectId":"37b62a7b-0177-abcd-efgh-e10f848de123","resourceId":"+17818510001","resourceType":"ACTIVE_NUMBER","eventType":"DEPROVISIONING_FROM_VOICE_PLATFORM","status":"SUCCEEDED","failureCode":null}"#;
/// assert_eq!(numbers_signature("my-callback-secret", body), "b93021e0182c2772dbcdf4e8983ae8f409e78c3b");
/// ```
pub fn numbers_signature(secret: &str, body: &[u8]) -> String {
    String::from_utf8_lossy(&compute(secret.as_bytes(), body)).into_owned()
}

fn compute(secret: &[u8], body: &[u8]) -> [u8; 40] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0; 40];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(mac.finalize().into_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    hex
}

/// Verifies Numbers callbacks: `X-Sinch-Signature` must be the lower-case hex
/// HMAC-SHA1 of the raw body under the callback secret (see
/// [`numbers_signature`]), compared in constant time.
///
/// Numbers callbacks carry no timestamp and no nonce, so there is no
/// freshness window and no replay memory here: a captured callback stays
/// valid. Replay memory cannot fix that: without a signed time there is no
/// moment after which an entry may be forgotten, so the memory would either
/// grow without bound or forget entries that then replay again, and a
/// genuine retry by Sinch (the same body, so the same signature) would be
/// refused like a replay. Deduplicate on the body's `eventId`, which is
/// yours to keep as long as your records need.
///
/// ```
/// use sinch_auth::verify::{NumbersVerifier, SecretUsed, Verified, Verifier, numbers_signature};
///
/// let verifier = NumbersVerifier::new("my-callback-secret");
/// let body = br#"{"eventId":"01hpa0mww4m79q8j2dwn3ggbgz"}"#;
/// let (parts, ()) = http::Request::post("/numbers")
///     .header("X-Sinch-Signature", numbers_signature("my-callback-secret", body))
///     .body(())?
///     .into_parts();
/// assert_eq!(verifier.verify(&parts, body), Ok(Verified::Numbers { secret: SecretUsed::Current }));
/// # Ok::<(), http::Error>(())
/// ```
#[must_use]
pub struct NumbersVerifier {
    secrets: Keyring<SecretString>,
    /// Only for the grace period after a rotation: Numbers callbacks carry no timestamp.
    clock: Arc<dyn Clock>,
}

impl NumbersVerifier {
    /// Verifies callbacks signed with the Numbers callback `secret`. An empty
    /// `secret` rejects every request ([`Rejection::EmptySecret`]).
    pub fn new(secret: impl Into<String>) -> Self {
        Self::with_secrets([secret])
    }

    /// Accepts callbacks signed with any of `secrets` (the new one first),
    /// for deployments that rotate by redeploying; see
    /// [`WebhookVerifier::with_secrets`](super::WebhookVerifier::with_secrets).
    pub fn with_secrets<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut secrets = secrets.into_iter().map(|s| SecretString::from(s.into()));
        // No secret at all: one empty one, which rejects everything.
        let mut ring = Keyring::fixed(secrets.next().unwrap_or_default(), same_secret);
        for older in secrets {
            ring.add_listed(older);
        }
        Self {
            secrets: ring,
            clock: Arc::new(SystemClock),
        }
    }

    /// Takes the secret from `source` at every verification, accepting the
    /// one it replaced for the [grace period](Self::grace_period) after a
    /// rotation; see [`WebhookVerifier::from_source`](super::WebhookVerifier::from_source).
    pub fn from_source(source: impl SecretSource) -> Self {
        let current = source.secret();
        Self {
            secrets: Keyring::rotating(current, fetch_secret(source), same_secret),
            clock: Arc::new(SystemClock),
        }
    }

    /// How long the previous secret is accepted after a rotation (default
    /// [`DEFAULT_GRACE_PERIOD`](super::DEFAULT_GRACE_PERIOD)).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.secrets.set_grace(grace);
        self
    }

    /// Sets the clock the grace period is counted on (its
    /// [monotonic](Clock::monotonic) reading).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn secrets(&self) -> Result<Vec<(Arc<SecretString>, SecretUsed)>, Rejection> {
        let mut secrets = self.secrets.candidates(self.clock.monotonic());
        secrets.retain(|(secret, _)| !secret.expose_secret().is_empty());
        if secrets.is_empty() {
            return Err(Rejection::EmptySecret);
        }
        Ok(secrets)
    }
}

fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

impl Verifier for NumbersVerifier {
    fn precheck(&self, request: &Parts) -> Result<(), Rejection> {
        self.secrets()?;
        header(request, SIGNATURE).map(drop)
    }

    fn verify(&self, request: &Parts, body: &[u8]) -> Result<Verified, Rejection> {
        let secrets = self.secrets()?;
        let signature = header(request, SIGNATURE)?;
        secrets
            .iter()
            .find_map(|(secret, used)| {
                let expected = compute(secret.expose_secret().as_bytes(), body);
                bool::from(expected.ct_eq(signature.as_bytes())).then_some(*used)
            })
            .map(|secret| Verified::Numbers { secret })
            .ok_or(Rejection::SignatureMismatch)
    }
}

impl fmt::Debug for NumbersVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NumbersVerifier")
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1_BODY: &str = r#"{"eventId":"01j3fycq0fyqq3gkgxb0g5ekbz","timestamp":"2024-07-23T14:02:14.415637289","projectId":"b8bae3c6-e7df-422b-9401-8ae3ee3e0aff","resourceId":"+12053017799","resourceType":"ACTIVE_NUMBER","eventType":"PROVISIONING_TO_VOICE_PLATFORM","status":"SUCCEEDED","failureCode":null}"#;
    const N2_BODY: &str = r#"{"eventId":"01hpa0mww4m79q8j2dwn3ggbgz","timestamp":"2024-02-10T17:22:09.412722588","projectId":"37b62a7b-0177-abcd-efgh-e10f848de123","resourceId":"+17818510001","resourceType":"ACTIVE_NUMBER","eventType":"DEPROVISIONING_FROM_VOICE_PLATFORM","status":"SUCCEEDED","failureCode":null}"#;

    fn request(signature: Option<&str>) -> Parts {
        let mut builder = http::Request::post("/numbers");
        if let Some(signature) = signature {
            builder = builder.header("X-Sinch-Signature", signature);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn n1_and_n2_match_the_spec() {
        for (secret, body, signature) in [
            (
                "secret value",
                N1_BODY,
                "e289b8fac44491417aeceee28d2715840b5f1aca",
            ),
            (
                "my-callback-secret",
                N2_BODY,
                "b93021e0182c2772dbcdf4e8983ae8f409e78c3b",
            ),
        ] {
            assert_eq!(numbers_signature(secret, body.as_bytes()), signature);
            let verifier = NumbersVerifier::new(secret);
            assert_eq!(
                verifier.verify(&request(Some(signature)), body.as_bytes()),
                Ok(Verified::Numbers {
                    secret: SecretUsed::Current
                })
            );
        }
    }

    #[test]
    fn wrong_missing_or_upper_case_signatures_are_rejected() {
        let verifier = NumbersVerifier::new("secret value");
        let body = N1_BODY.as_bytes();
        assert_eq!(
            verifier.verify(&request(None), body),
            Err(Rejection::MissingHeader { name: SIGNATURE })
        );
        for bad in [
            "E289B8FAC44491417AECEEE28D2715840B5F1ACA",
            "e289b8fac44491417aeceee28d2715840b5f1ac",
            "",
            "e289b8fac44491417aeceee28d2715840b5f1aca0",
        ] {
            assert_eq!(
                verifier.verify(&request(Some(bad)), body),
                Err(Rejection::SignatureMismatch),
                "{bad}"
            );
        }
        assert_eq!(
            verifier.verify(
                &request(Some("e289b8fac44491417aeceee28d2715840b5f1aca")),
                b"{}"
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn an_empty_secret_rejects_everything_even_a_matching_signature() {
        let signature = numbers_signature("", b"{}");
        assert_eq!(
            NumbersVerifier::new("").verify(&request(Some(&signature)), b"{}"),
            Err(Rejection::EmptySecret)
        );
    }

    #[test]
    fn debug_redacts_the_secret() {
        let shown = format!(
            "{:?}",
            NumbersVerifier::with_secrets(["secret value", "older"])
        );
        assert!(
            !shown.contains("secret value") && !shown.contains("older"),
            "{shown}"
        );
        // What it does show: the kind of verifier and how its secrets rotate.
        assert!(shown.starts_with("NumbersVerifier"), "{shown}");
        assert!(
            shown.contains("rotating: false") && shown.contains("listed: 1"),
            "{shown}"
        );
    }
}
