//! Verifier secrets that rotate: the current one, the previous one for a
//! grace period after a rotation, and fixed extras for deployments that
//! rotate by redeploying.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};

use crate::clock::monotonic_now;

/// How long a verifier keeps accepting the previous secret after a
/// rotation, unless told otherwise: one hour from the rotation, for
/// callbacks signed before it that are still in flight or being retried.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(3600);

/// Which of a verifier's secrets a request was signed with, as reported in
/// [`Verified`](super::Verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretUsed {
    /// The current secret: the provider's latest, or the first of a fixed list.
    Current,
    /// The secret that was current before the last rotation, accepted for
    /// the grace period after that rotation.
    Previous,
    /// Another secret of a fixed list, by its position (1 for the second).
    Listed(usize),
}

/// A source's last rotation: the value it made current, the one that
/// value replaced, and when, on the crate's monotonic clock
/// ([`monotonic_now`](crate::clock::monotonic_now)).
///
/// Verifiers count the replaced value's grace period from [`at`](Self::at),
/// not from when they first notice the rotation, so a verifier that was
/// idle across it does not extend the life of a secret replaced because it
/// leaked. [`RotatingSecret`] and [`RotatingCredentials`](crate::RotatingCredentials)
/// record one at every rotation; give one from your own
/// [`SecretSource::last_rotation`] or
/// [`CredentialProvider::last_rotation`](crate::CredentialProvider::last_rotation).
pub struct Rotation<T> {
    current: Arc<T>,
    replaced: Arc<T>,
    at: Instant,
}

impl<T> Rotation<T> {
    /// `current` replaced `replaced` at `at` (a reading of
    /// [`monotonic_now`](crate::clock::monotonic_now) taken when the rotation
    /// happened).
    pub fn new(current: Arc<T>, replaced: Arc<T>, at: Instant) -> Self {
        Self {
            current,
            replaced,
            at,
        }
    }

    /// The value made current.
    pub fn current(&self) -> &Arc<T> {
        &self.current
    }

    /// The value it replaced.
    pub fn replaced(&self) -> &Arc<T> {
        &self.replaced
    }

    /// When, on the crate's monotonic clock.
    pub fn at(&self) -> Instant {
        self.at
    }
}

impl<T> Clone for Rotation<T> {
    fn clone(&self) -> Self {
        Self {
            current: Arc::clone(&self.current),
            replaced: Arc::clone(&self.replaced),
            at: self.at,
        }
    }
}

impl<T> fmt::Debug for Rotation<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// Hands out the current webhook or Numbers callback secret, for verifiers
/// that follow a rotation ([`RotatingSecret`] is one).
///
/// Called on every verification, so it must be cheap and must not block:
/// return an `Arc` you already hold, the same one until the secret changes.
pub trait SecretSource: Send + Sync + 'static {
    /// The current secret.
    fn secret(&self) -> Arc<SecretString>;

    /// The last rotation, if the source records it: its
    /// [`current`](Rotation::current) must be what [`secret`](Self::secret)
    /// returns. Verifiers then count the previous secret's grace period from
    /// the rotation itself. The default, `None`, leaves them only the moment
    /// they first see the new secret to count from, which a verifier idle
    /// for hours after the rotation places hours late: implement it.
    fn last_rotation(&self) -> Option<Rotation<SecretString>> {
        None
    }
}

impl<S: SecretSource + ?Sized> SecretSource for Arc<S> {
    fn secret(&self) -> Arc<SecretString> {
        (**self).secret()
    }

    fn last_rotation(&self) -> Option<Rotation<SecretString>> {
        (**self).last_rotation()
    }
}

/// A webhook or Numbers callback secret that can be replaced while
/// verifiers use it; clones share the value.
///
/// Each [`rotate`](Self::rotate) is recorded with its instant on the
/// crate's monotonic clock, and verifiers accept the replaced secret for
/// their grace period counted from then.
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
pub struct RotatingSecret(Arc<ArcSwap<Slot>>);

/// The current secret and the rotation that made it current: one value, so
/// a reader never pairs a secret with another one's rotation.
struct Slot {
    current: Arc<SecretString>,
    rotation: Option<Rotation<SecretString>>,
}

impl RotatingSecret {
    /// Starts with `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(Slot {
            current: Arc::new(SecretString::from(secret.into())),
            rotation: None,
        })))
    }

    /// Makes `secret` the current one, from now: verifiers using this source
    /// see it at their next verification, and accept the one it replaces
    /// for their grace period counted from this call. Handing out the
    /// current secret again (a periodic re-read) changes nothing.
    pub fn rotate(&self, secret: impl Into<String>) {
        let secret = SecretString::from(secret.into());
        let at = monotonic_now();
        self.0.rcu(|slot| {
            if slot.current.expose_secret() == secret.expose_secret() {
                return Arc::clone(slot);
            }
            let current = Arc::new(secret.clone());
            Arc::new(Slot {
                current: Arc::clone(&current),
                rotation: Some(Rotation::new(current, Arc::clone(&slot.current), at)),
            })
        });
    }
}

impl SecretSource for RotatingSecret {
    fn secret(&self) -> Arc<SecretString> {
        Arc::clone(&self.0.load().current)
    }

    fn last_rotation(&self) -> Option<Rotation<SecretString>> {
        self.0.load().rotation.clone()
    }
}

impl fmt::Debug for RotatingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotatingSecret([REDACTED])")
    }
}

/// What a source says when its value is newer than the one held.
pub(super) struct Update<T> {
    pub(super) current: Arc<T>,
    pub(super) record: Record<T>,
}

/// What the source knows of the rotation that made [`Update::current`] current.
pub(super) enum Record<T> {
    /// It recorded the rotation.
    Rotation(Rotation<T>),
    /// It keeps no record: the rotation happened, at the latest, when a
    /// verification first sees it.
    None,
    /// Its record cannot place the replacement of the held value (it
    /// replaced a value this verifier ignored): no grace.
    Unplaceable,
}

/// Asks a source for a value newer than the one held; `None` when unchanged.
pub(super) type Fetch<T> = Box<dyn Fn(&Arc<T>) -> Option<Update<T>> + Send + Sync>;

/// The [`Fetch`] of a [`SecretSource`].
pub(super) fn fetch_secret(source: impl SecretSource) -> Fetch<SecretString> {
    Box::new(move |held: &Arc<SecretString>| {
        let update = match source.last_rotation() {
            Some(rotation) => Update {
                current: Arc::clone(rotation.current()),
                record: Record::Rotation(rotation),
            },
            None => Update {
                current: source.secret(),
                record: Record::None,
            },
        };
        (!Arc::ptr_eq(held, &update.current)).then_some(update)
    })
}

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
    /// The secret replaced by the last rotation, and when that rotation
    /// happened (monotonic).
    previous: Option<(Arc<T>, Instant)>,
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

    /// The secret the held one gives way to, and when its grace period
    /// started.
    fn previous_after(
        &self,
        held: Arc<T>,
        update: Update<T>,
        now: Instant,
    ) -> Option<(Arc<T>, Instant)> {
        let rotation = match update.record {
            Record::Rotation(rotation) => rotation,
            Record::None => return Some((held, now)),
            Record::Unplaceable => return None,
        };
        if (self.same)(rotation.replaced(), &held) {
            return Some((held, rotation.at()));
        }
        if (self.same)(rotation.replaced(), &update.current) {
            // The last rotation kept the secret (another part of the
            // credentials changed): when the held one was replaced is not
            // known, so it gets no grace.
            return None;
        }
        // Rotated more than once since this verifier last looked: the held
        // secret's grace is not known (it ended no later than the replaced
        // one's began); the replaced one's started at the rotation.
        Some((Arc::clone(rotation.replaced()), rotation.at()))
    }

    /// The secrets accepted at `now` (a monotonic reading), the current one
    /// first. Notices a rotation of the source; the replaced secret is
    /// accepted from the rotation until its grace period ends, never at a
    /// reading earlier than the rotation.
    pub(super) fn candidates(&self, now: Instant) -> Vec<(Arc<T>, SecretUsed)> {
        let mut candidates = Vec::with_capacity(2 + self.listed.len());
        {
            // A poisoned lock only means a panic elsewhere mid-update; the
            // ring holds whole values either way.
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(update) = self.fetch.as_ref().and_then(|fetch| fetch(&ring.current)) {
                if (self.same)(&ring.current, &update.current) {
                    ring.current = update.current;
                } else {
                    let held = std::mem::replace(&mut ring.current, Arc::clone(&update.current));
                    ring.previous = self.previous_after(held, update, now);
                }
            }
            candidates.push((Arc::clone(&ring.current), SecretUsed::Current));
            if let Some((previous, rotated_at)) = &ring.previous {
                // No addition, so any grace (`Duration::MAX` too) is safe;
                // a reading before the rotation is outside the grace period.
                let inside = now
                    .checked_duration_since(*rotated_at)
                    .is_some_and(|since| since <= self.grace);
                if inside {
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

    fn ring(source: &RotatingSecret, grace: Duration) -> Keyring<SecretString> {
        let mut ring = Keyring::rotating(source.secret(), fetch_secret(source.clone()), same);
        ring.set_grace(grace);
        ring
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    // Paused, so `monotonic_now` (and the rotation instants) stand still.
    #[tokio::test(start_paused = true)]
    async fn the_previous_secret_is_accepted_from_the_rotation_for_the_grace_period_only() {
        let source = RotatingSecret::new("a");
        let ring = ring(&source, secs(60));
        let t0 = monotonic_now();
        assert_eq!(
            names(&ring.candidates(t0)),
            [("a".into(), SecretUsed::Current)]
        );
        source.rotate("b");
        let expected = [
            ("b".to_owned(), SecretUsed::Current),
            ("a".to_owned(), SecretUsed::Previous),
        ];
        // First seen 40 s after the rotation: 20 s of grace are left.
        assert_eq!(names(&ring.candidates(t0 + secs(40))), expected);
        assert_eq!(names(&ring.candidates(t0 + secs(60))), expected);
        assert_eq!(
            names(&ring.candidates(t0 + secs(61))),
            [("b".into(), SecretUsed::Current)]
        );
        // Before the rotation is not inside the grace period.
        assert_eq!(
            names(&ring.candidates(t0 - secs(1))),
            [("b".into(), SecretUsed::Current)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_grace_period_of_duration_max_never_overflows() {
        let source = RotatingSecret::new("a");
        let ring = ring(&source, Duration::MAX);
        let t0 = monotonic_now();
        source.rotate("b");
        let far = crate::clock::ManualClock::new(std::time::SystemTime::UNIX_EPOCH);
        far.advance(Duration::MAX);
        use crate::clock::Clock as _;
        for now in [t0, t0 + secs(86_400 * 365 * 100), far.monotonic()] {
            assert_eq!(ring.candidates(now).len(), 2);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_verifier_idle_across_two_rotations_accepts_only_the_one_the_last_replaced() {
        let source = RotatingSecret::new("leaked");
        let ring = ring(&source, secs(3600));
        let t0 = monotonic_now();
        ring.candidates(t0);
        source.rotate("second");
        tokio::time::advance(secs(10 * 3600)).await;
        source.rotate("third");
        assert_eq!(
            names(&ring.candidates(t0 + secs(10 * 3600 + 60))),
            [
                ("third".into(), SecretUsed::Current),
                ("second".into(), SecretUsed::Previous)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_without_a_record_counts_from_the_first_verification_that_sees_it() {
        struct Bare(RotatingSecret);
        impl SecretSource for Bare {
            fn secret(&self) -> Arc<SecretString> {
                self.0.secret()
            }
        }
        let source = RotatingSecret::new("a");
        let mut ring = Keyring::rotating(source.secret(), fetch_secret(Bare(source.clone())), same);
        ring.set_grace(secs(60));
        let t0 = monotonic_now();
        source.rotate("b");
        assert_eq!(ring.candidates(t0 + secs(100)).len(), 2);
        assert_eq!(ring.candidates(t0 + secs(160)).len(), 2);
        assert_eq!(ring.candidates(t0 + secs(161)).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_arc_holding_the_same_secret_is_not_a_rotation() {
        let source = RotatingSecret::new("a");
        let ring = ring(&source, secs(60));
        let t0 = monotonic_now();
        ring.candidates(t0);
        source.rotate("a");
        assert!(source.last_rotation().is_none());
        assert_eq!(
            names(&ring.candidates(t0 + secs(1))),
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
            names(&ring.candidates(monotonic_now())),
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
        let rotation = SecretSource::last_rotation(&source).unwrap();
        assert_eq!(rotation.replaced().expose_secret(), "a");
        assert_eq!(rotation.current().expose_secret(), "b");
    }

    #[test]
    fn rotating_secret_debug_is_redacted() {
        let secret = RotatingSecret::new("s3cr3t");
        secret.rotate("n3w");
        assert_eq!(format!("{secret:?}"), "RotatingSecret([REDACTED])");
        let rotation = format!("{:?}", secret.last_rotation().unwrap());
        assert!(
            !rotation.contains("s3cr3t") && !rotation.contains("n3w"),
            "{rotation}"
        );
    }
}
