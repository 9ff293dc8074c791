//! The wall clock, injected.
//!
//! Wall-clock time is read for JWT `iat`/`exp`, the `x-timestamp` of signed
//! requests, the freshness window of callbacks and `Retry-After` dates. It is
//! read through a [`Clock`] so tests can control it. Scheduling (refresh,
//! backoff, expiry) uses tokio's clock, which `tokio::time::pause()` controls.

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
        self.start + self.origin.elapsed()
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

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
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

/// Seconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
