//! Freshness of signed timestamps and replay memory, shared by the verifiers
//! whose requests carry a timestamp.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::Rejection;
use crate::clock::{Clock, SystemClock, unix_seconds};

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

    /// Until when (Unix seconds, rounded up) a request signed at `timestamp`
    /// is fresh; `u64::MAX` when there is no window.
    fn fresh_until(&self, timestamp: SystemTime) -> u64 {
        match self.window {
            Some((max_age, _)) => unix_seconds(timestamp)
                .saturating_add(max_age.as_secs())
                .saturating_add(1),
            None => u64::MAX,
        }
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self::symmetric(Self::DEFAULT_WINDOW)
    }
}

/// The clock, freshness window and optional replay memory of a verifier.
#[derive(Clone)]
pub(super) struct Window {
    pub(super) clock: Arc<dyn Clock>,
    pub(super) freshness: Freshness,
    pub(super) replay: Option<Arc<ReplayMemory>>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            freshness: Freshness::default(),
            replay: None,
        }
    }
}

impl Window {
    /// Checks freshness, then (when enabled) that `replay_key` was not seen
    /// while fresh, remembering it. Call only once the signature is valid,
    /// so forged requests never take room in the memory.
    pub(super) fn admit(
        &self,
        timestamp: SystemTime,
        what: &'static str,
        replay_key: &[u8],
    ) -> Result<(), Rejection> {
        let now = self.clock.now();
        self.freshness.check(timestamp, now)?;
        if let Some(replay) = &self.replay {
            replay.remember(
                what,
                replay_key,
                self.freshness.fresh_until(timestamp),
                unix_seconds(now),
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("freshness", &self.freshness)
            .field("replay_capacity", &self.replay.as_ref().map(|r| r.capacity))
            .finish_non_exhaustive()
    }
}

/// What was seen recently, bounded to `capacity` entries of 32 bytes (a
/// SHA-256 of the nonce or signature) plus an expiry.
///
/// Entries leave when their timestamp is no longer fresh (freshness rejects a
/// replay from then on) or, when full, soonest-expiring first. An evicted
/// entry could be replayed until its timestamp goes stale, so size the
/// capacity above the number of callbacks you expect within one window.
pub(super) struct ReplayMemory {
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
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    fn remember(
        &self,
        what: &'static str,
        value: &[u8],
        expires: u64,
        now: u64,
    ) -> Result<(), Rejection> {
        let key: [u8; 32] = Sha256::new()
            .chain_update(what.as_bytes())
            .chain_update([0])
            .chain_update(value)
            .finalize()
            .into();
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
            return Err(Rejection::Replayed { what });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

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
        assert!(memory.remember("nonce", b"a", 100, 50).is_ok());
        assert_eq!(
            memory.remember("nonce", b"a", 100, 60),
            Err(Rejection::Replayed { what: "nonce" })
        );
        // The same bytes as a different kind of value are another entry.
        assert!(memory.remember("signature", b"a", 100, 60).is_ok());
    }

    #[test]
    fn replay_memory_forgets_entries_once_stale() {
        let memory = ReplayMemory::new(10);
        memory.remember("nonce", b"a", 100, 50).unwrap();
        memory.remember("nonce", b"b", 200, 50).unwrap();
        // At 101, "a" is stale (freshness would reject it) and is dropped.
        memory.remember("nonce", b"c", 300, 101).unwrap();
        assert_eq!(memory.len(), 2);
        assert!(memory.remember("nonce", b"a", 400, 101).is_ok());
    }

    #[test]
    fn replay_memory_never_exceeds_its_capacity() {
        let memory = ReplayMemory::new(3);
        for i in 0u32..1000 {
            memory
                .remember("nonce", &i.to_be_bytes(), 10_000 + u64::from(i), 0)
                .unwrap();
            assert!(memory.len() <= 3);
        }
        assert_eq!(memory.len(), 3);
        // The newest are kept; the soonest-expiring went first.
        assert!(
            memory
                .remember("nonce", &999u32.to_be_bytes(), 20_000, 0)
                .is_err()
        );
        assert!(
            memory
                .remember("nonce", &0u32.to_be_bytes(), 20_000, 0)
                .is_ok()
        );
    }

    #[test]
    fn zero_capacity_means_one() {
        let memory = ReplayMemory::new(0);
        memory.remember("nonce", b"a", 100, 0).unwrap();
        assert!(memory.remember("nonce", b"a", 100, 0).is_err());
    }

    #[test]
    fn window_checks_freshness_before_remembering() {
        let clock = ManualClock::new(at(1_000));
        let window = Window {
            clock: Arc::new(clock.clone()),
            freshness: Freshness::symmetric(Duration::from_secs(300)),
            replay: Some(Arc::new(ReplayMemory::new(10))),
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
