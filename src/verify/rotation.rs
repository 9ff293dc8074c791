//! Verifier secrets that rotate: the current one, the previous one for a
//! grace period after a rotation, and fixed extras for deployments that
//! rotate by redeploying.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use secrecy::SecretString;

/// How long a verifier keeps accepting the previous secret after it sees a
/// rotation, unless told otherwise: one hour, for callbacks signed before
/// the rotation that are still in flight or being retried.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(3600);

/// Which of a verifier's secrets a request was signed with, as reported in
/// [`Verified`](super::Verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretUsed {
    /// The current secret: the provider's latest, or the first of a fixed list.
    Current,
    /// The secret that was current before the last rotation, accepted for
    /// the grace period after the verifier first saw the new one.
    Previous,
    /// Another secret of a fixed list, by its position (1 for the second).
    Listed(usize),
}

/// Hands out the current webhook or Numbers callback secret, for verifiers
/// that follow a rotation ([`RotatingSecret`] is one).
///
/// Called on every verification, so it must be cheap and must not block:
/// return an `Arc` you already hold, the same one until the secret changes.
pub trait SecretSource: Send + Sync + 'static {
    /// The current secret.
    fn secret(&self) -> Arc<SecretString>;
}

impl<S: SecretSource + ?Sized> SecretSource for Arc<S> {
    fn secret(&self) -> Arc<SecretString> {
        (**self).secret()
    }
}

/// A webhook or Numbers callback secret that can be replaced while
/// verifiers use it; clones share the value.
///
/// ```
/// use sinch_auth::verify::{RotatingSecret, WebhookVerifier};
///
/// let secret = RotatingSecret::new("first-secret");
/// let verifier = WebhookVerifier::from_source(secret.clone());
/// // Later, when the secret manager hands out a new one:
/// secret.rotate("second-secret");
/// # let _ = verifier;
/// ```
#[derive(Clone)]
pub struct RotatingSecret(Arc<ArcSwap<SecretString>>);

impl RotatingSecret {
    /// Starts with `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(SecretString::from(
            secret.into(),
        ))))
    }

    /// Makes `secret` the current one. Verifiers using this source see it
    /// at their next verification, and from then accept the one it
    /// replaces for their grace period.
    pub fn rotate(&self, secret: impl Into<String>) {
        self.0.store(Arc::new(SecretString::from(secret.into())));
    }
}

impl SecretSource for RotatingSecret {
    fn secret(&self) -> Arc<SecretString> {
        self.0.load_full()
    }
}

impl fmt::Debug for RotatingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotatingSecret([REDACTED])")
    }
}

/// Asks a source for a value newer than the one held; `None` when unchanged.
type Fetch<T> = Box<dyn Fn(&Arc<T>) -> Option<Arc<T>> + Send + Sync>;

/// The secrets one verifier accepts.
pub(super) struct Keyring<T> {
    fetch: Option<Fetch<T>>,
    /// Whether two values are the same secret (a new `Arc` need not be a rotation).
    same: fn(&T, &T) -> bool,
    grace: Duration,
    listed: Vec<Arc<T>>,
    ring: Mutex<Ring<T>>,
}

struct Ring<T> {
    current: Arc<T>,
    /// The secret replaced by the last rotation, and when the verifier saw it happen.
    previous: Option<(Arc<T>, SystemTime)>,
}

impl<T> Keyring<T> {
    /// One fixed secret (more with [`add_listed`](Self::add_listed)).
    pub(super) fn fixed(current: T, same: fn(&T, &T) -> bool) -> Self {
        Self {
            fetch: None,
            same,
            grace: DEFAULT_GRACE_PERIOD,
            listed: Vec::new(),
            ring: Mutex::new(Ring {
                current: Arc::new(current),
                previous: None,
            }),
        }
    }

    /// Also accepts `secret`, reported as [`SecretUsed::Listed`].
    pub(super) fn add_listed(&mut self, secret: T) {
        self.listed.push(Arc::new(secret));
    }

    /// Secrets from a source, starting with `current`.
    pub(super) fn rotating(current: Arc<T>, fetch: Fetch<T>, same: fn(&T, &T) -> bool) -> Self {
        Self {
            fetch: Some(fetch),
            same,
            grace: DEFAULT_GRACE_PERIOD,
            listed: Vec::new(),
            ring: Mutex::new(Ring {
                current,
                previous: None,
            }),
        }
    }

    pub(super) fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    #[cfg(test)]
    fn rotates(&self) -> bool {
        self.fetch.is_some()
    }

    /// The secrets accepted at `now`, the current one first. Notices a
    /// rotation of the source, which starts the previous secret's grace period.
    pub(super) fn candidates(&self, now: SystemTime) -> Vec<(Arc<T>, SecretUsed)> {
        let mut candidates = Vec::with_capacity(2 + self.listed.len());
        {
            // A poisoned lock only means a panic elsewhere mid-update; the
            // ring holds whole values either way.
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(newer) = self.fetch.as_ref().and_then(|fetch| fetch(&ring.current)) {
                if (self.same)(&ring.current, &newer) {
                    ring.current = newer;
                } else {
                    let replaced = std::mem::replace(&mut ring.current, newer);
                    ring.previous = Some((replaced, now));
                }
            }
            candidates.push((Arc::clone(&ring.current), SecretUsed::Current));
            if let Some((previous, rotated_at)) = &ring.previous {
                // A clock that went back counts as inside the grace period.
                let since = now.duration_since(*rotated_at).unwrap_or_default();
                if since <= self.grace {
                    candidates.push((Arc::clone(previous), SecretUsed::Previous));
                }
            }
        }
        for (i, secret) in self.listed.iter().enumerate() {
            candidates.push((Arc::clone(secret), SecretUsed::Listed(i + 1)));
        }
        candidates
    }
}

impl<T> fmt::Debug for Keyring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("rotating", &self.fetch.is_some())
            .field("grace", &self.grace)
            .field("listed", &self.listed.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn same(a: &SecretString, b: &SecretString) -> bool {
        a.expose_secret() == b.expose_secret()
    }

    fn names(candidates: &[(Arc<SecretString>, SecretUsed)]) -> Vec<(String, SecretUsed)> {
        candidates
            .iter()
            .map(|(s, used)| (s.expose_secret().to_owned(), *used))
            .collect()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ring(source: &RotatingSecret, grace: u64) -> Keyring<SecretString> {
        let source = source.clone();
        let mut ring = Keyring::rotating(
            source.secret(),
            Box::new(move |held| {
                let now = source.secret();
                (!Arc::ptr_eq(held, &now)).then_some(now)
            }),
            same,
        );
        ring.set_grace(Duration::from_secs(grace));
        ring
    }

    #[test]
    fn the_previous_secret_is_accepted_for_the_grace_period_only() {
        let source = RotatingSecret::new("a");
        let ring = ring(&source, 60);
        assert_eq!(
            names(&ring.candidates(at(100))),
            [("a".into(), SecretUsed::Current)]
        );
        source.rotate("b");
        let expected = [
            ("b".to_owned(), SecretUsed::Current),
            ("a".to_owned(), SecretUsed::Previous),
        ];
        assert_eq!(names(&ring.candidates(at(200))), expected);
        assert_eq!(names(&ring.candidates(at(260))), expected);
        assert_eq!(
            names(&ring.candidates(at(261))),
            [("b".into(), SecretUsed::Current)]
        );
    }

    #[test]
    fn a_new_arc_holding_the_same_secret_is_not_a_rotation() {
        let source = RotatingSecret::new("a");
        let ring = ring(&source, 60);
        ring.candidates(at(0));
        source.rotate("a");
        assert_eq!(
            names(&ring.candidates(at(1))),
            [("a".into(), SecretUsed::Current)]
        );
    }

    #[test]
    fn a_fixed_list_offers_every_secret_the_first_as_current() {
        let mut ring = Keyring::fixed(SecretString::from("a"), same);
        ring.add_listed(SecretString::from("b"));
        ring.add_listed(SecretString::from("c"));
        assert!(!ring.rotates());
        assert_eq!(
            names(&ring.candidates(at(0))),
            [
                ("a".into(), SecretUsed::Current),
                ("b".into(), SecretUsed::Listed(1)),
                ("c".into(), SecretUsed::Listed(2)),
            ]
        );
    }

    #[test]
    fn a_shared_source_hands_out_what_it_wraps() {
        let source = Arc::new(RotatingSecret::new("a"));
        source.rotate("b");
        assert_eq!(SecretSource::secret(&source).expose_secret(), "b");
    }

    #[test]
    fn rotating_secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", RotatingSecret::new("s3cr3t")),
            "RotatingSecret([REDACTED])"
        );
    }
}
