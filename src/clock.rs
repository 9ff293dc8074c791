//! The wall clock, injected.
//!
//! Wall-clock time is read for JWT `iat`/`exp`, the `x-timestamp` of signed
//! requests, the freshness window of callbacks and `Retry-After` dates. It is
//! read through a [`Clock`] so tests can control it. Scheduling (refresh,
//! backoff, expiry) uses tokio's clock, which `tokio::time::pause()` controls.
//!
//! # One clock for a whole test
//!
//! Under `tokio::time::pause()` the two clocks drift apart unless the wall
//! clock follows tokio's: give the same [`TokioClock`] to the layer
//! ([`SinchAuthBuilder::clock`](crate::SinchAuthBuilder::clock)) and, in
//! tests, to the stand-in (`SinchStandIn::builder().clock(..)`, feature
//! `test-util`). Then a token's `exp`, the signed timestamps and the refresh
//! timers all move together when the test advances time, and a one-hour
//! token's whole life runs in milliseconds.
//!
//! Arithmetic on these clocks saturates: a clock set or advanced far into the
//! future reads the latest time the platform can represent instead of
//! panicking.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock that moves with tokio's clock: `start` plus the tokio time
/// elapsed since it was made. Under `tokio::time::pause()` it stands still
/// until the test advances time, so JWT `exp`, timestamps and refresh timers
/// stay consistent with each other.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::{Duration, SystemTime};
/// use sinch_auth::clock::{Clock, TokioClock};
///
/// let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let clock = TokioClock::new(start);
/// tokio::time::advance(Duration::from_secs(90)).await;
/// assert_eq!(clock.now(), start + Duration::from_secs(90));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: SystemTime,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start` now.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        saturating_add(self.start, self.origin.elapsed())
    }
}

/// A clock that only moves when told to. Handy for verifier tests.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sinch_auth::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the time forward, stopping at the latest time the platform can
    /// represent (never panics).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use sinch_auth::clock::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
    /// clock.advance(Duration::MAX);
    /// let latest = clock.now();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(clock.now(), latest);
    /// ```
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now = saturating_add(*now, by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

/// `t + by`, or the latest time the platform can represent when that
/// overflows (`SystemTime + Duration` panics instead).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sinch_auth::clock::saturating_add;
///
/// let t = SystemTime::UNIX_EPOCH;
/// assert_eq!(saturating_add(t, Duration::from_secs(5)), t + Duration::from_secs(5));
/// let latest = saturating_add(t, Duration::MAX);
/// assert_eq!(saturating_add(latest, Duration::from_secs(1)), latest);
/// ```
pub fn saturating_add(t: SystemTime, by: Duration) -> SystemTime {
    if let Some(sum) = t.checked_add(by) {
        return sum;
    }
    // The representable range differs per platform: search for the largest
    // step that still fits (at most ~100 halvings, and only on overflow).
    let (mut fits, mut overflows) = (Duration::ZERO, by);
    while overflows - fits > Duration::from_nanos(1) {
        let mid = fits + (overflows - fits) / 2;
        if t.checked_add(mid).is_some() {
            fits = mid;
        } else {
            overflows = mid;
        }
    }
    t + fits
}

/// Seconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advanced_far_into_the_future_saturates_instead_of_panicking() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        clock.advance(Duration::from_secs(u64::MAX));
        let latest = clock.now();
        assert!(latest > SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40));
        // Nothing representable lies beyond it.
        assert!(latest.checked_add(Duration::from_nanos(1)).is_none());
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), latest);
        // Still a usable clock: it can be set back.
        clock.set(SystemTime::UNIX_EPOCH);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn saturating_add_is_plain_addition_when_it_fits() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_234);
        let by = Duration::new(86_400 * 365 * 30, 999_999_999);
        assert_eq!(saturating_add(t, by), t + by);
        assert_eq!(saturating_add(t, Duration::ZERO), t);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_started_at_the_latest_time_saturates_as_tokio_time_passes() {
        let latest = saturating_add(SystemTime::UNIX_EPOCH, Duration::MAX);
        let clock = TokioClock::new(latest);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), latest);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_tokio_time() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = TokioClock::new(start);
        assert_eq!(clock.now(), start);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
    }
}
