//! The wall clock and the monotonic clock, injected.
//!
//! Wall-clock time is read for JWT `iat`/`exp`, the `x-timestamp` of signed
//! requests, the freshness window of callbacks and `Retry-After` dates. It is
//! read through a [`Clock`] so tests can control it. Scheduling (refresh,
//! backoff, expiry) uses tokio's clock, which `tokio::time::pause()` controls.
//!
//! Security windows that are not about a signed timestamp (the grace period
//! of a verifier's previous secret after a rotation) are measured on the
//! monotonic reading, [`Clock::monotonic`]: stepping the wall clock back
//! must not reopen them. Its default, [`monotonic_now`], is tokio's clock, so
//! `tokio::time::pause()` controls it too.
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
use std::time::{Duration, Instant, SystemTime};

/// A source of wall-clock time, and of monotonic time for security windows.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// A monotonic reading: never goes back, whatever happens to the wall
    /// clock. Readings are compared with rotation instants that sources such
    /// as [`RotatingSecret`](crate::verify::RotatingSecret) record with
    /// [`monotonic_now`], which is also the default: override it only to
    /// control time in a test ([`ManualClock`] does).
    fn monotonic(&self) -> Instant {
        monotonic_now()
    }
}

/// The crate's monotonic clock: tokio's (so `tokio::time::pause()` and
/// `advance` move it in tests; outside a runtime, or without tokio's
/// `test-util`, it is [`Instant::now`]). Sources record their rotations on
/// it; verifiers measure grace periods against [`Clock::monotonic`].
pub fn monotonic_now() -> Instant {
    tokio::time::Instant::now().into_std()
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
/// [`advance`](Self::advance) is time passing: it moves the wall clock and
/// the [monotonic](Clock::monotonic) reading alike. [`set`](Self::set) is
/// the wall clock being stepped (by an operator, or NTP): the monotonic
/// reading stays where it is. That reading starts at [`monotonic_now`] when
/// the clock is made and moves only with `advance`; a source records its
/// rotations on `monotonic_now`, so for a rotation at a chosen moment use
/// tokio's paused clock and [`TokioClock`] instead.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sinch_auth::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
/// let start = clock.monotonic();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
/// clock.set(SystemTime::UNIX_EPOCH); // stepped back
/// assert_eq!(clock.monotonic() - start, Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<Manual>>);

struct Manual {
    wall: SystemTime,
    monotonic: Instant,
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(Manual {
            wall: now,
            monotonic: monotonic_now(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Manual> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Steps the wall clock to `now`, forward or back; the monotonic reading
    /// does not move.
    pub fn set(&self, now: SystemTime) {
        self.lock().wall = now;
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
        let mut clock = self.lock();
        clock.wall = saturating_add(clock.wall, by);
        clock.monotonic = saturate(clock.monotonic, by, Instant::checked_add);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().wall
    }

    fn monotonic(&self) -> Instant {
        self.lock().monotonic
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

    fn monotonic(&self) -> Instant {
        (**self).monotonic()
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
    saturate(t, by, SystemTime::checked_add)
}

/// `t + by` through `checked_add`, or the latest representable value.
fn saturate<T: Copy>(t: T, by: Duration, checked_add: fn(&T, Duration) -> Option<T>) -> T {
    if let Some(sum) = checked_add(&t, by) {
        return sum;
    }
    // The representable range differs per platform: search for the largest
    // step that still fits (at most ~100 halvings, and only on overflow).
    let (mut fits, mut overflows) = (Duration::ZERO, by);
    while overflows - fits > Duration::from_nanos(1) {
        let mid = fits + (overflows - fits) / 2;
        if checked_add(&t, mid).is_some() {
            fits = mid;
        } else {
            overflows = mid;
        }
    }
    checked_add(&t, fits).unwrap_or(t)
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
        let monotonic = clock.monotonic();
        assert!(monotonic.checked_add(Duration::from_nanos(1)).is_none());
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.monotonic(), monotonic);
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
    async fn the_monotonic_reading_follows_paused_tokio_time_and_ignores_wall_steps() {
        let clock = TokioClock::new(SystemTime::UNIX_EPOCH);
        let start = clock.monotonic();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.monotonic() - start, Duration::from_secs(90));
        assert_eq!(SystemClock.monotonic() - start, Duration::from_secs(90));
        let manual = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let before = manual.monotonic();
        manual.set(SystemTime::UNIX_EPOCH);
        assert_eq!(manual.monotonic(), before);
        manual.advance(Duration::from_secs(7));
        assert_eq!(
            Arc::new(manual).monotonic() - before,
            Duration::from_secs(7)
        );
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
