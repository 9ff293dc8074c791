//! Freshness of signed timestamps and replay memory, shared by the verifiers
//! whose requests carry a timestamp.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Rejection;
use crate::clock::{Clock, SystemClock, saturating_add, unix_seconds};

/// How many accepted requests a verifier remembers by default: 65,536.
///
/// An entry is a 32-byte digest and an expiry, about 100 bytes with the
/// maps' overhead, so a full memory is about 6 MiB; it fills only with
/// verified requests (a forgery never takes room), and an entry leaves once
/// its timestamp is stale. That covers about 218 callbacks a second
/// sustained over the default 5-minute window.
pub const DEFAULT_REPLAY_CAPACITY: usize = 65_536;

/// How far a signed timestamp may be from the verifier's clock.
///
/// The default accepts timestamps up to [`Freshness::DEFAULT_WINDOW`]
/// (5 minutes) in the past or the future: wide enough for clock skew and
/// Sinch's delivery delays, narrow enough that a captured request cannot be
/// replayed for long. Both edges are inclusive.
///
/// ```
/// use std::time::Duration;
/// use sinch_auth::verify::{Freshness, WebhookVerifier};
///
/// let verifier = WebhookVerifier::new("secret")
///     .freshness(Freshness::new(Duration::from_secs(120), Duration::from_secs(30)));
/// # let _ = verifier;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    window: Option<(Duration, Duration)>,
}

impl Freshness {
    /// The default window each way: 5 minutes.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

    /// Accepts timestamps at most `max_age` in the past and `max_ahead` in the future.
    pub const fn new(max_age: Duration, max_ahead: Duration) -> Self {
        Self {
            window: Some((max_age, max_ahead)),
        }
    }

    /// The same window each way.
    pub const fn symmetric(window: Duration) -> Self {
        Self::new(window, window)
    }

    /// No freshness check: any signed timestamp is accepted. Replay memory,
    /// if enabled, then forgets entries only when full.
    pub const fn disabled() -> Self {
        Self { window: None }
    }

    fn check(&self, timestamp: SystemTime, now: SystemTime) -> Result<(), Rejection> {
        let Some((max_age, max_ahead)) = self.window else {
            return Ok(());
        };
        match now.duration_since(timestamp) {
            Ok(age) if age > max_age => Err(Rejection::TooOld { age, max_age }),
            Ok(_) => Ok(()),
            Err(ahead) => {
                let ahead = ahead.duration();
                if ahead > max_ahead {
                    Err(Rejection::TooNew { ahead, max_ahead })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The window's `max_age`; `None` when freshness is disabled.
    fn max_age(&self) -> Option<Duration> {
        self.window.map(|(max_age, _)| max_age)
    }
}

/// Until when (Unix seconds, rounded up) a request signed at `timestamp`
/// is fresh under `max_age`.
fn fresh_until(timestamp: SystemTime, max_age: Duration) -> u64 {
    unix_seconds(timestamp)
        .saturating_add(max_age.as_secs())
        .saturating_add(1)
}

/// How long from `now` a request signed at `timestamp` stays fresh under
/// `max_age`, plus a second: the edge is inclusive, and `fresh_until` is
/// rounded up to whole seconds the same way. Saturates: a window may be as
/// wide as `Duration::MAX`.
fn remaining(timestamp: SystemTime, max_age: Duration, now: SystemTime) -> Duration {
    saturating_add(timestamp, max_age)
        .duration_since(now)
        .unwrap_or_default()
        .saturating_add(Duration::from_secs(1))
}

impl Default for Freshness {
    fn default() -> Self {
        Self::symmetric(Self::DEFAULT_WINDOW)
    }
}

/// One accepted request as a replay store sees it: a keyed digest of what
/// identifies it (the webhook nonce, or the application-scheme signature),
/// never the value itself, and how long it must be remembered.
///
/// Made by the verifiers once a request's signature and freshness are
/// checked, so only verified requests ever reach a [`ReplayStore`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReplayEntry {
    digest: [u8; 32],
    what: &'static str,
    timestamp: SystemTime,
    now: SystemTime,
    /// The verifier's `max_age`; `None` without a window.
    max_age: Option<Duration>,
}

/// HMAC-SHA256 of `what`, a zero byte and `value`, under a key derived
/// from `secret`: two verifiers with different secrets never make the same
/// digest, and a reader of a store learns nothing it could link to a request.
fn digest(secret: &[u8], what: &str, value: &[u8]) -> [u8; 32] {
    let key = Hmac::<Sha256>::new_from_slice(secret)
        .expect("HMAC takes keys of any length")
        .chain_update(b"sinch-auth replay digest key")
        .finalize()
        .into_bytes();
    Hmac::<Sha256>::new_from_slice(&key)
        .expect("HMAC takes keys of any length")
        .chain_update(what.as_bytes())
        .chain_update([0])
        .chain_update(value)
        .finalize()
        .into_bytes()
        .into()
}

impl ReplayEntry {
    fn new(
        secret: &[u8],
        what: &'static str,
        value: &[u8],
        freshness: Freshness,
        timestamp: SystemTime,
        now: SystemTime,
    ) -> Self {
        Self {
            digest: digest(secret, what, value),
            what,
            timestamp,
            now,
            max_age: freshness.max_age(),
        }
    }

    /// The key a store remembers: HMAC-SHA256 over the kind of value
    /// (`"nonce"` or `"signature"`), a zero byte and the value, under a key
    /// derived from the secret that verified the request. Verifiers with
    /// different secrets never share an entry.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// `"nonce"` (webhooks) or `"signature"` (application scheme), as in
    /// [`Rejection::Replayed`].
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// How long to remember the entry: until its timestamp is stale, plus a
    /// second. `None` when freshness is [disabled](Freshness::disabled).
    pub fn ttl(&self) -> Option<Duration> {
        self.max_age
            .map(|max_age| remaining(self.timestamp, max_age, self.now))
    }

    /// The same entry, remembered for as long as a verifier whose window is
    /// `max_age` could still accept its timestamp, when that is longer.
    #[cfg(feature = "redis")]
    pub(super) fn at_least(mut self, max_age: Duration) -> Self {
        self.max_age = self.max_age.map(|own| own.max(max_age));
        self
    }

    /// Unix seconds after which freshness rejects the request anyway; `u64::MAX` without a window.
    fn expires(&self) -> u64 {
        self.max_age
            .map_or(u64::MAX, |max_age| fresh_until(self.timestamp, max_age))
    }
}

impl fmt::Debug for ReplayEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest: String = self.digest[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        f.debug_struct("ReplayEntry")
            .field("what", &self.what)
            .field("digest", &format_args!("{digest}…"))
            .field("ttl", &self.ttl())
            .finish()
    }
}

/// The future of [`ReplayStore::record`].
pub type RecordFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send + 'a>>;

/// Where verifiers remember the requests they accepted, to refuse a replay.
///
/// [`ReplayMemory`] (the default, one per verifier) remembers in this
/// process; with the `redis` feature, `RedisReplayStore` remembers for a
/// whole fleet. A store is only asked about requests whose
/// signature and timestamp were already verified.
pub trait ReplayStore: Send + Sync + 'static {
    /// Remembers `entry` for its [`ttl`](ReplayEntry::ttl).
    ///
    /// # Errors
    ///
    /// [`Rejection::Replayed`] if it was already remembered (the request is a
    /// replay), or [`Rejection::ReplayStoreUnavailable`] if the store cannot
    /// tell and is configured to fail closed.
    fn record<'a>(&'a self, entry: &'a ReplayEntry) -> RecordFuture<'a>;
}

impl<S: ReplayStore + ?Sized> ReplayStore for Arc<S> {
    fn record<'a>(&'a self, entry: &'a ReplayEntry) -> RecordFuture<'a> {
        (**self).record(entry)
    }
}

/// The clock, freshness window and replay stores of a verifier.
#[derive(Clone)]
pub(super) struct Window {
    pub(super) clock: Arc<dyn Clock>,
    pub(super) freshness: Freshness,
    /// This process's memory, used by [`Verifier::verify`](super::Verifier::verify).
    pub(super) memory: Option<Arc<ReplayMemory>>,
    /// A shared store, used instead by `verify_async` (and so by `VerifyLayer`).
    pub(super) shared: Option<Arc<dyn ReplayStore>>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            freshness: Freshness::default(),
            memory: Some(Arc::new(ReplayMemory::new(DEFAULT_REPLAY_CAPACITY))),
            shared: None,
        }
    }
}

impl Window {
    /// Checks that `timestamp` is inside the freshness window now.
    pub(super) fn check_fresh(&self, timestamp: SystemTime) -> Result<(), Rejection> {
        self.freshness.check(timestamp, self.clock.now())
    }

    /// Checks freshness, and makes the entry a store remembers. Call only
    /// once the signature is valid, so forged requests never take room.
    /// `secret` is the one that verified the request: entries of
    /// verifiers with different secrets never meet.
    pub(super) fn entry(
        &self,
        secret: &[u8],
        timestamp: SystemTime,
        what: &'static str,
        value: &[u8],
    ) -> Result<Option<ReplayEntry>, Rejection> {
        let now = self.clock.now();
        self.freshness.check(timestamp, now)?;
        let remembered = self.memory.is_some() || self.shared.is_some();
        Ok(remembered
            .then(|| ReplayEntry::new(secret, what, value, self.freshness, timestamp, now)))
    }

    /// Remembers `entry` in this process's memory.
    pub(super) fn remember(&self, entry: Option<&ReplayEntry>) -> Result<(), Rejection> {
        match (entry, &self.memory) {
            (Some(entry), Some(memory)) => memory.remember(entry),
            _ => Ok(()),
        }
    }

    /// Remembers `entry` in the shared store when there is one, else in
    /// this process's memory.
    pub(super) async fn record(&self, entry: Option<&ReplayEntry>) -> Result<(), Rejection> {
        match (entry, &self.shared) {
            (Some(entry), Some(shared)) => shared.record(entry).await,
            _ => self.remember(entry),
        }
    }

    #[cfg(test)]
    fn admit(
        &self,
        timestamp: SystemTime,
        what: &'static str,
        value: &[u8],
    ) -> Result<(), Rejection> {
        let entry = self.entry(b"secret", timestamp, what, value)?;
        self.remember(entry.as_ref())
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("freshness", &self.freshness)
            .field("replay_capacity", &self.memory.as_ref().map(|r| r.capacity))
            .field("shared_replay_store", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// Replay memory in this process: at most `capacity` entries of 32 bytes (a
/// SHA-256 of the nonce or signature) plus an expiry.
///
/// Entries leave when their timestamp is no longer fresh (freshness rejects a
/// replay from then on) or, when full, soonest-expiring first. An evicted
/// entry could be replayed until its timestamp goes stale, so size the
/// capacity above the number of callbacks you expect within one window
/// (the default, [`DEFAULT_REPLAY_CAPACITY`], is 65,536).
pub struct ReplayMemory {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    expiry: HashMap<[u8; 32], u64>,
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

impl ReplayMemory {
    /// Memory for at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Remembers `entry`, synchronously.
    ///
    /// # Errors
    ///
    /// [`Rejection::Replayed`] if it is already remembered.
    pub fn remember(&self, entry: &ReplayEntry) -> Result<(), Rejection> {
        let (key, expires, now) = (entry.digest, entry.expires(), unix_seconds(entry.now));
        // A poisoned lock only means another verification panicked mid-update;
        // the maps stay consistent enough to keep rejecting replays.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&Reverse((at, oldest))) = seen.by_expiry.peek() {
            if at >= now {
                break;
            }
            seen.by_expiry.pop();
            seen.expiry.remove(&oldest);
        }
        if seen.expiry.contains_key(&key) {
            return Err(Rejection::Replayed { what: entry.what });
        }
        while seen.expiry.len() >= self.capacity {
            let Some(Reverse((_, evicted))) = seen.by_expiry.pop() else {
                break;
            };
            seen.expiry.remove(&evicted);
        }
        seen.expiry.insert(key, expires);
        seen.by_expiry.push(Reverse((expires, key)));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(seen.expiry.len(), seen.by_expiry.len());
        seen.expiry.len()
    }
}

impl ReplayStore for ReplayMemory {
    fn record<'a>(&'a self, entry: &'a ReplayEntry) -> RecordFuture<'a> {
        Box::pin(std::future::ready(self.remember(entry)))
    }
}

impl fmt::Debug for ReplayMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayMemory")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn e(what: &'static str, value: &[u8], expires: u64, now: u64) -> ReplayEntry {
        // Fresh until `expires`: signed a second before, with no max age.
        let freshness = Freshness::new(Duration::ZERO, Duration::ZERO);
        ReplayEntry::new(b"s", what, value, freshness, at(expires - 1), at(now))
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn window_edges_are_inclusive() {
        let f = Freshness::new(Duration::from_secs(300), Duration::from_secs(60));
        let now = at(10_000);
        assert!(f.check(at(10_000 - 300), now).is_ok());
        assert_eq!(
            f.check(at(10_000 - 301), now),
            Err(Rejection::TooOld {
                age: Duration::from_secs(301),
                max_age: Duration::from_secs(300)
            })
        );
        assert!(f.check(at(10_000 + 60), now).is_ok());
        assert_eq!(
            f.check(at(10_000 + 61), now),
            Err(Rejection::TooNew {
                ahead: Duration::from_secs(61),
                max_ahead: Duration::from_secs(60)
            })
        );
        let just_over = now - Duration::from_secs(300) - Duration::from_nanos(1);
        assert!(matches!(
            f.check(just_over, now),
            Err(Rejection::TooOld { .. })
        ));
    }

    #[test]
    fn disabled_freshness_accepts_any_time() {
        let f = Freshness::disabled();
        assert!(f.check(at(0), at(2_000_000_000)).is_ok());
        assert!(f.check(at(2_000_000_000), at(0)).is_ok());
    }

    #[test]
    fn replay_memory_rejects_a_value_seen_while_fresh() {
        let memory = ReplayMemory::new(10);
        assert!(memory.remember(&e("nonce", b"a", 100, 50)).is_ok());
        assert_eq!(
            memory.remember(&e("nonce", b"a", 100, 60)),
            Err(Rejection::Replayed { what: "nonce" })
        );
        // The same bytes as a different kind of value are another entry.
        assert!(memory.remember(&e("signature", b"a", 100, 60)).is_ok());
    }

    #[test]
    fn replay_memory_forgets_entries_once_stale() {
        let memory = ReplayMemory::new(10);
        memory.remember(&e("nonce", b"a", 100, 50)).unwrap();
        memory.remember(&e("nonce", b"b", 200, 50)).unwrap();
        // At 101, "a" is stale (freshness would reject it) and is dropped.
        memory.remember(&e("nonce", b"c", 300, 101)).unwrap();
        assert_eq!(memory.len(), 2);
        assert!(memory.remember(&e("nonce", b"a", 400, 101)).is_ok());
    }

    #[test]
    fn replay_memory_never_exceeds_its_capacity() {
        let memory = ReplayMemory::new(3);
        for i in 0u32..1000 {
            memory
                .remember(&e("nonce", &i.to_be_bytes(), 10_000 + u64::from(i), 0))
                .unwrap();
            assert!(memory.len() <= 3);
        }
        assert_eq!(memory.len(), 3);
        // The newest are kept; the soonest-expiring went first.
        assert!(
            memory
                .remember(&e("nonce", &999u32.to_be_bytes(), 20_000, 0))
                .is_err()
        );
        assert!(
            memory
                .remember(&e("nonce", &0u32.to_be_bytes(), 20_000, 0))
                .is_ok()
        );
    }

    #[test]
    fn zero_capacity_means_one() {
        let memory = ReplayMemory::new(0);
        memory.remember(&e("nonce", b"a", 100, 0)).unwrap();
        assert!(memory.remember(&e("nonce", b"a", 100, 0)).is_err());
    }

    #[test]
    fn window_checks_freshness_before_remembering() {
        let clock = ManualClock::new(at(1_000));
        let window = Window {
            clock: Arc::new(clock.clone()),
            freshness: Freshness::symmetric(Duration::from_secs(300)),
            memory: Some(Arc::new(ReplayMemory::new(10))),
            shared: None,
        };
        assert!(matches!(
            window.admit(at(600), "nonce", b"old"),
            Err(Rejection::TooOld { .. })
        ));
        assert!(window.admit(at(900), "nonce", b"old").is_ok());
        assert!(window.admit(at(900), "nonce", b"old").is_err());
        // Once stale, freshness rejects it and the memory no longer needs it.
        clock.advance(Duration::from_secs(202));
        assert!(matches!(
            window.admit(at(900), "nonce", b"old"),
            Err(Rejection::TooOld { .. })
        ));
    }
}
