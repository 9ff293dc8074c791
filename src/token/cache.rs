//! The token cache and its background refresher.
//!
//! One cache per token source. The current token sits in one `ArcSwapOption`
//! as a ready-made `Authorization` value with its normalised lifetime: a
//! request loads it without a lock, clones the `HeaderValue` (a
//! reference-count bump, no allocation) and goes. "Is the token I used still
//! the current one" is pointer identity with it; there is no second copy.
//!
//! One task per cache owns every fetch, so fetches are single-flight by
//! construction. It sleeps until the next refresh, the current token's
//! expiry, a command (refresh now, credentials rotated, a request waits) or
//! the drop of the last handle, whichever comes first. Requests never wait
//! for it unless no usable token exists (cold start, expiry, 401-`expired`,
//! hard cut-over).
//!
//! The task lives on the runtime of the request that started it. If that
//! runtime shuts down, the next request starts another on its own runtime
//! (the token is the state, so nothing is lost); if that runtime sits idle, a
//! waiting request notices the refresher no longer answers and starts one on
//! its runtime in its place. What a refresher knows beyond the token (its
//! last success, failures in a row, the endpoint's `Retry-After`) lives in
//! the cache too, so the one that takes over keeps the same pace: it never
//! refetches sooner than the one it replaces would have.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use http::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{FetchRequest, RefusedToken, Token, TokenSource};
use crate::clock::Clock;
use crate::error::{AuthError, FetchError};
use crate::observe;
use crate::{CredentialProvider, CredentialsId, scheme};

/// When tokens are refreshed, how long requests wait, and how failures back off.
///
/// Defaults:
///
/// | Setting | Default | Meaning |
/// |---|---|---|
/// | [`fetch_timeout`](Self::fetch_timeout) | 10 s | one fetch attempt, end to end |
/// | [`wait_timeout`](Self::wait_timeout) | 20 s | longest a request waits when no usable token exists |
/// | [`min_margin`](Self::min_margin) / [`margin_ratio`](Self::margin_ratio) | 60 s / 10 % | refresh starts `max(60 s, 10 % of lifetime)` before expiry (at most half the lifetime) … |
/// | [`jitter_ratio`](Self::jitter_ratio) | 25 % | … plus a random extra up to 25 % of that margin, so a fleet spreads out |
/// | [`expiry_skew`](Self::expiry_skew) | 5 s | a token stops being used this long before its stated expiry (at most 10 % of its lifetime) |
/// | [`backoff_base`](Self::backoff_base) / [`backoff_cap`](Self::backoff_cap) | 1 s / 60 s | after the n-th failure in a row, retry after a uniform random delay in `[0, min(cap, base·4ⁿ⁻¹))` (at least base/10), or after `Retry-After` |
/// | [`retry_after_cap`](Self::retry_after_cap) | 5 min | longest `Retry-After` honoured |
/// | [`max_lifetime`](Self::max_lifetime) | 24 h | longer `expires_in` values are clamped |
/// | [`min_forced_interval`](Self::min_forced_interval) | 1 s | a 401-`expired` refetch comes at least this long after the last success |
/// | [`hard_cutover`](Self::hard_cutover) | off | on rotation, requests wait for a token from the new credentials instead of using the old one meanwhile |
///
/// While a token is still usable, a failing refresh never displaces it; retries
/// are spaced so that several happen before it expires. Once none is usable
/// and requests wait, the endpoint is retried after a uniform random delay
/// below 1 s, so the first request after it recovers goes through within
/// about a second. Every attempt stays within the auth gateway's bucket (30
/// at once, 10 per second). A token shared through a
/// [`TokenStore`](crate::token::TokenStore) must outlive the one the asking
/// process holds by 5 % of its lifetime, at least 1 s
/// ([`FetchRequest::must_outlive`](crate::token::FetchRequest::must_outlive)).
#[derive(Debug, Clone)]
#[must_use]
pub struct RefreshConfig {
    fetch_timeout: Duration,
    wait_timeout: Duration,
    min_margin: Duration,
    margin_ratio: f64,
    jitter_ratio: f64,
    expiry_skew: Duration,
    backoff_base: Duration,
    backoff_cap: Duration,
    retry_after_cap: Duration,
    max_lifetime: Duration,
    min_forced_interval: Duration,
    hard_cutover: bool,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            fetch_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(20),
            min_margin: Duration::from_secs(60),
            margin_ratio: 0.10,
            jitter_ratio: 0.25,
            expiry_skew: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            retry_after_cap: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(24 * 3600),
            min_forced_interval: Duration::from_secs(1),
            hard_cutover: false,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta] $name:ident: $ty:ty),* $(,)?) => {$(
        #[$doc]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    )*};
}

impl RefreshConfig {
    /// The limit on one fetch attempt (for a store bounding its waits by it).
    pub(crate) fn fetch_timeout_setting(&self) -> Duration {
        self.fetch_timeout
    }

    setter! {
        /// Limit on one fetch attempt.
        fetch_timeout: Duration,
        /// Longest a request waits for a token when none is usable.
        wait_timeout: Duration,
        /// Smallest refresh margin before expiry.
        min_margin: Duration,
        /// Refresh margin as a fraction of the lifetime (0.0–0.5).
        margin_ratio: f64,
        /// Extra random margin as a fraction of the margin (0.0–1.0).
        jitter_ratio: f64,
        /// How long before its stated expiry a token stops being used.
        expiry_skew: Duration,
        /// First backoff step after a failed fetch.
        backoff_base: Duration,
        /// Largest backoff step.
        backoff_cap: Duration,
        /// Largest `Retry-After` honoured.
        retry_after_cap: Duration,
        /// Longest lifetime believed.
        max_lifetime: Duration,
        /// Minimum time between a success and a forced (401-`expired`) refetch.
        min_forced_interval: Duration,
        /// Wait for tokens of rotated credentials instead of using the old token meanwhile.
        hard_cutover: bool,
    }

    /// When a token obtained now with this lifetime stops being used, and when
    /// its refresh starts: `(usable_for, refresh_after)`.
    fn schedule(&self, lifetime: Duration, jitter: f64) -> (Duration, Duration) {
        let lifetime = lifetime.min(self.max_lifetime);
        let usable = lifetime - self.expiry_skew.min(lifetime / 10);
        let margin = self
            .min_margin
            .max(scale(usable, ratio(self.margin_ratio, 0.5)))
            .min(usable / 2);
        let extra = scale(margin, ratio(self.jitter_ratio, 1.0) * ratio(jitter, 1.0));
        let refresh = usable.saturating_sub(margin).saturating_sub(extra);
        (usable, refresh)
    }

    /// The delay before retry number `failures` (1-based).
    fn backoff(&self, failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.retry_after_cap);
        }
        let step = self
            .backoff_base
            .saturating_mul(4u32.saturating_pow(failures.saturating_sub(1).min(15)))
            .min(self.backoff_cap);
        scale(step, ratio(jitter, 1.0)).max(self.backoff_base / 10)
    }
}

/// Settings may be at the edges of their types (a `Duration::MAX` wait, a
/// NaN ratio): time arithmetic saturates instead of panicking. This is how
/// far "never" is, as tokio's own timers have it.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + by`, saturating at [`FAR_FUTURE`] (adding to an `Instant` panics on overflow).
pub(crate) fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

/// A ratio setting in `[0, max]`; NaN counts as 0.
fn ratio(value: f64, max: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, max)
    }
}

/// `d · factor` for a factor in `[0, 1]`, never above `d` (`mul_f64` panics
/// when rounding carries `Duration::MAX` past itself).
fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor)
        .unwrap_or(d)
        .min(d)
}

/// The `exp` claim of a JWT, read without verifying it (the issuer's signature
/// is none of our business; we only want to know when it stops working).
pub(crate) fn jwt_expiry(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    const URL_SAFE_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let payload = zeroize::Zeroizing::new(URL_SAFE_LENIENT.decode(payload).ok()?);
    let value: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    let exp = value.get("exp")?;
    exp.as_u64().or_else(|| {
        exp.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// Which of the layer's token caches a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSlot {
    /// [`Scheme::OAuth2`](crate::Scheme::OAuth2): the OAuth2 fetch or a custom source.
    OAuth2,
    /// [`Scheme::SelfSignedJwt`](crate::Scheme::SelfSignedJwt).
    Jwt,
}

/// The token requests use, as a ready-made `Authorization` value, with its
/// lifetime normalised once, when it entered: when it must be refreshed and
/// when it is dead. Requests hold an `Arc` of it as their ticket: "still
/// the current token" is pointer identity with what the cache holds.
pub(crate) struct Current {
    pub(crate) header: HeaderValue,
    pub(crate) credentials: CredentialsId,
    /// Which fetch of its cache it came from: the token's identity, kept
    /// when it is [`renewed`](Self::renewed).
    fetch: u64,
    obtained: Instant,
    refresh_at: Instant,
    /// It stops being used here (its stated expiry less the skew).
    dead_at: Instant,
    /// Its stated expiry.
    expires_at: Instant,
    lifetime: Duration,
    /// The cache it came from, for the 401-`expired` rule.
    cache: Weak<Shared>,
}

impl Current {
    /// The same token, in a new allocation (so a new identity).
    fn renewed(&self) -> Self {
        Self {
            header: self.header.clone(),
            credentials: self.credentials,
            fetch: self.fetch,
            obtained: self.obtained,
            refresh_at: self.refresh_at,
            dead_at: self.dead_at,
            expires_at: self.expires_at,
            lifetime: self.lifetime,
            cache: self.cache.clone(),
        }
    }

    /// Whether two entries are the same token: the same fetch of the same
    /// cache (one may be the other renewed: see [`Running`]). Not the same
    /// bytes: a source may hand out a token equal to one refused, and a
    /// request waiting for "another token" must not wait for ever then.
    fn is(&self, other: &Self) -> bool {
        self.fetch == other.fetch && Weak::ptr_eq(&self.cache, &other.cache)
    }

    /// The cache this token came from, if it still exists.
    pub(crate) fn cache(&self) -> Option<Arc<Shared>> {
        self.cache.upgrade()
    }

    /// What a store must beat to be taken instead of fetching: the time
    /// this token has left to its stated expiry, plus [`outlive_margin`].
    fn must_outlive(&self, now: Instant) -> Duration {
        self.expires_at
            .saturating_duration_since(now)
            .saturating_add(outlive_margin(self.lifetime))
    }
}

/// The one margin by which a token shared between processes must outlive
/// the one the asking process holds: 5 % of that token's lifetime, at least
/// one second. Stores count remaining life from their own records (a TTL,
/// a clock a few milliseconds off), so "longer than mine" alone could hand
/// a process refreshing ahead its own token back; this much longer cannot.
fn outlive_margin(lifetime: Duration) -> Duration {
    (lifetime / 20).max(Duration::from_secs(1))
}

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Current")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// While requests wait for a token, the endpoint is retried after a
/// uniformly random delay below this (full jitter), so the first request
/// after it recovers goes through within about this long.
const WAITING_RETRY: Duration = Duration::from_secs(1);

/// A waiting request pings the refresher this often; a refresher that
/// answered none of the last ping sits on a runtime nobody drives, and a
/// refresher on the waiter's runtime takes over.
const STALL_CHECK: Duration = Duration::from_millis(250);

/// Fetch attempts of one cache stay within the auth gateway's bucket:
/// bursts of 30, 10 per second.
const BUCKET_BURST: f64 = 30.0;
const BUCKET_RATE: f64 = 10.0;

/// A token bucket for fetch attempts, kept across refresher restarts.
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    /// Takes one attempt; returns how long to hold off first (zero if one is left).
    fn take(&mut self, now: Instant) -> Duration {
        let elapsed = self
            .at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        self.tokens = (self.tokens + elapsed.as_secs_f64() * BUCKET_RATE).min(BUCKET_BURST);
        self.at = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / BUCKET_RATE)
        }
    }
}

/// What a refresher knows besides the token, kept in the cache so that a
/// refresher taking over (see [`Shared::start`]) picks it up.
#[derive(Default)]
struct Pace {
    /// The token last obtained, even if it was cleared since (a 401
    /// `expired`, its expiry): when it came, and what a refetch must outlive.
    last: Option<Arc<Current>>,
    /// Failed fetches in a row.
    failures: u32,
    /// No attempt before this: the endpoint's `Retry-After`.
    not_before: Option<Instant>,
}

impl Pace {
    /// The earliest a fetch that no refresh-ahead schedules may start: never
    /// before the endpoint's `Retry-After`, nor within the forced-refetch
    /// interval after the last success.
    fn earliest(&self, now: Instant, config: &RefreshConfig) -> Instant {
        let forced = self
            .last
            .as_ref()
            .map_or(now, |t| later(t.obtained, config.min_forced_interval));
        now.max(forced).max(self.not_before.unwrap_or(now))
    }
}

#[derive(Clone, Default)]
struct Status {
    last_error: Option<(Arc<FetchError>, CredentialsId)>,
}

enum Command {
    /// A 401-`expired` cleared the token: fetch again (rate-limited).
    Refresh,
    /// The provider's credentials changed: fetch again now.
    Rotated,
    /// A request waits for a token (or checks that the refresher is alive).
    Wake,
}

/// What the cache handles and the refresher share.
pub(crate) struct Shared {
    /// The single source of truth for the token.
    current: Arc<ArcSwapOption<Current>>,
    status: watch::Sender<Status>,
    source: Arc<dyn TokenSource>,
    provider: Arc<dyn CredentialProvider>,
    clock: Arc<dyn Clock>,
    config: RefreshConfig,
    rotation_requested: AtomicU64,
    /// Requests waiting for a token.
    waiting: AtomicUsize,
    /// Commands the refresher handled: its pulse.
    beats: AtomicU64,
    /// Fetches published, for each token's identity.
    fetches: AtomicU64,
    /// Shared by every refresher this cache has had.
    pace: Mutex<Pace>,
    /// A refresher task exists on a runtime that has not shut down.
    alive: AtomicBool,
    /// The refresher that counts; older ones stop when they see it changed.
    generation: AtomicU64,
    /// The channel to the refresher that counts; `None` once the last
    /// handle is gone (and nothing may start a refresher any more).
    driver: Mutex<Driver>,
    bucket: Mutex<Bucket>,
}

struct Driver {
    commands: Option<mpsc::UnboundedSender<Command>>,
    closed: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A token cache with its background refresher. Clones share both; the
/// refresher ends when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct TokenCache {
    handle: Arc<Handle>,
}

struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        let mut driver = lock(&self.0.driver);
        driver.closed = true;
        driver.commands = None;
    }
}

impl std::ops::Deref for TokenCache {
    type Target = Arc<Shared>;

    fn deref(&self) -> &Arc<Shared> {
        &self.handle.0
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &self.source.name())
            .field("has_token", &self.current.load().is_some())
            .finish()
    }
}

impl TokenCache {
    /// A cache for `source`. Nothing runs until the first request (the
    /// refresher is spawned then, on that request's tokio runtime).
    pub(crate) fn new(
        source: Arc<dyn TokenSource>,
        provider: Arc<dyn CredentialProvider>,
        clock: Arc<dyn Clock>,
        config: RefreshConfig,
    ) -> Self {
        let (status, _) = watch::channel(Status::default());
        Self {
            handle: Arc::new(Handle(Arc::new(Shared {
                current: Arc::new(ArcSwapOption::empty()),
                status,
                source,
                provider,
                clock,
                config,
                rotation_requested: AtomicU64::new(0),
                waiting: AtomicUsize::new(0),
                beats: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                pace: Mutex::new(Pace::default()),
                alive: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                driver: Mutex::new(Driver {
                    commands: None,
                    closed: false,
                }),
                bucket: Mutex::new(Bucket {
                    tokens: BUCKET_BURST,
                    at: None,
                }),
            }))),
        }
    }
}

impl Shared {
    /// A per-instance view of the current token, revalidated by one atomic load.
    pub(crate) fn watch(&self) -> CurrentView {
        arc_swap::cache::Cache::new(self.current.clone())
    }

    fn is_running(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Makes sure a refresher runs; starts one on this runtime if the last
    /// one's runtime shut down (or none ever started).
    pub(crate) fn ensure_running(self: &Arc<Self>) -> Result<(), AuthError> {
        if self.is_running() {
            return Ok(());
        }
        self.start(false)
    }

    /// Starts a refresher on the current runtime: when none runs, or with
    /// `take_over`, in place of one that stopped answering.
    fn start(self: &Arc<Self>, take_over: bool) -> Result<(), AuthError> {
        let mut driver = lock(&self.driver);
        if driver.closed {
            return Err(AuthError::RefresherStopped);
        }
        if self.alive.load(Ordering::Acquire) && !take_over {
            return Ok(());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(AuthError::NoRuntime);
        };
        // A token whose time ran out while no refresher watched is not served.
        self.expire_if_dead();
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let (commands, receiver) = mpsc::unbounded_channel();
        driver.commands = Some(commands);
        self.alive.store(true, Ordering::Release);
        if take_over {
            tracing::warn!(
                target: "sinch_auth",
                source = self.source.name(),
                "token refresher does not answer (its runtime is idle); a new one takes over on this runtime"
            );
        }
        // The guard is made here and moved into the task, so that a task
        // dropped unpolled (its runtime gone before it ran) still marks the
        // refresher gone. Unlocked first: that drop takes the lock.
        let running = Running {
            shared: self.clone(),
            generation,
        };
        drop(driver);
        runtime.spawn(run(running, receiver));
        Ok(())
    }

    fn send(&self, command: Command) {
        if let Some(commands) = &lock(&self.driver).commands {
            let _ = commands.send(command);
        }
    }

    /// The current token for a request from `credentials`, if one is
    /// usable: `(header, token)`. No lock, no allocation.
    pub(crate) fn ready(
        self: &Arc<Self>,
        credentials: CredentialsId,
    ) -> Result<Option<Arc<Current>>, AuthError> {
        self.ensure_running()?;
        let current = self.current.load_full();
        if let Some(token) = &current {
            if token.credentials != credentials {
                self.rotated(credentials);
                if self.config.hard_cutover {
                    return Ok(None);
                }
            }
        }
        Ok(current)
    }

    pub(crate) fn rotated(&self, to: CredentialsId) {
        if self.rotation_requested.swap(to.raw(), Ordering::AcqRel) != to.raw() {
            self.send(Command::Rotated);
        }
    }

    /// The source's name, for logs and metrics.
    pub(crate) fn source_name(&self) -> &'static str {
        self.source.name()
    }

    /// Waits (bounded by the wait timeout) for a usable token; with
    /// `not_this`, for one other than the token a 401 was answered to.
    pub(crate) async fn wait(
        self: &Arc<Self>,
        not_this: Option<&Arc<Current>>,
    ) -> Result<Arc<Current>, AuthError> {
        self.ensure_running()?;
        tracing::debug!(
            target: "sinch_auth",
            source = self.source.name(),
            after_401 = not_this.is_some(),
            "request waits for a token"
        );
        let _waiting = Waiting::new(&self.waiting);
        let started = Instant::now();
        let deadline = later(started, self.config.wait_timeout);
        let mut status = self.status.subscribe();
        // The pulse is read before the ping: a refresher that answers at once
        // moves it past what was read, and counts as alive.
        let mut pulse = self.ping();
        let mut check = later(started, STALL_CHECK);
        loop {
            let wanted = self.provider.current_id();
            let hard = self.config.hard_cutover;
            if let Some(token) = self.current.load_full() {
                let fresh = not_this.is_none_or(|t| !t.is(&token));
                if fresh && (token.credentials == wanted || !hard) && token.dead_at > Instant::now()
                {
                    if token.credentials != wanted {
                        self.rotated(wanted);
                    }
                    return Ok(token);
                }
                if token.credentials != wanted {
                    self.rotated(wanted);
                }
            }
            let last = status.borrow_and_update().clone();
            if let Some((error, for_credentials)) = &last.last_error {
                // A permanent failure (bad credentials, nonsense answers) for these
                // very credentials: report it now rather than at the deadline. The
                // refresher keeps retrying with backoff, and a rotation starts afresh.
                if *for_credentials == wanted && !error.is_transient() {
                    return Err(AuthError::TokenFetch(error.clone()));
                }
            }
            self.ensure_running()?;
            match tokio::time::timeout_at(deadline.min(check), status.changed()).await {
                Ok(_) => {}
                Err(_) if Instant::now() >= deadline => {
                    return Err(AuthError::TokenUnavailable {
                        waited: started.elapsed(),
                        cause: last.last_error.map(|(e, _)| e),
                    });
                }
                Err(_) => {
                    if !self.answered_since(pulse) {
                        self.start(true)?;
                    }
                    pulse = self.ping();
                    check = later(Instant::now(), STALL_CHECK);
                }
            }
        }
    }

    /// Asks the refresher to show it is alive; returns its pulse as it was
    /// before the ask, for [`answered_since`](Self::answered_since).
    fn ping(&self) -> u64 {
        let pulse = self.beats.load(Ordering::Acquire);
        self.send(Command::Wake);
        pulse
    }

    /// Whether the refresher handled a command since `pulse` was read.
    fn answered_since(&self, pulse: u64) -> bool {
        self.beats.load(Ordering::Acquire) != pulse
    }

    /// Clears the token a request used, if it is still the current one, and
    /// asks for a new one. Returns whether this call cleared it.
    pub(crate) fn invalidate(&self, token: &Arc<Current>) -> bool {
        let current = self.current.load_full();
        let Some(held) = current.as_ref().filter(|held| held.is(token)) else {
            return false;
        };
        let previous = self.current.compare_and_swap(held, None);
        let cleared = previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, held));
        if cleared {
            tracing::info!(
                target: "sinch_auth",
                source = self.source.name(),
                "token rejected as expired by the API; cleared, refetching"
            );
            self.source.refused(&RefusedToken::of_header(&held.header));
            self.status.send_modify(|_| {}); // wakes the waiters: they look again
            self.send(Command::Refresh);
        }
        cleared
    }

    /// Stops serving the current token if its time is up.
    fn expire_if_dead(&self) {
        let current = self.current.load_full();
        if let Some(token) = current.as_ref().filter(|t| t.dead_at <= Instant::now()) {
            let previous = self.current.compare_and_swap(token, None);
            if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, token)) {
                tracing::warn!(
                    target: "sinch_auth",
                    source = self.source.name(),
                    "token expired before a refresh succeeded; requests will wait"
                );
                self.status.send_modify(|_| {}); // wakes the waiters: they look again
            }
        }
    }

    /// Stores a fresh token, its lifetime normalised once, here.
    fn publish(
        self: &Arc<Self>,
        token: &Token,
        credentials: CredentialsId,
        now: Instant,
    ) -> Result<Arc<Current>, FetchError> {
        let value = token.value().expose_secret();
        let lifetime = token
            .life_at(self.clock.now())
            .min(self.config.max_lifetime);
        if lifetime.is_zero() {
            return Err(FetchError::MalformedResponse {
                reason: "token is already expired",
            });
        }
        let header = scheme::bearer(value).map_err(|_| FetchError::MalformedResponse {
            reason: "access_token contains characters not allowed in a header",
        })?;
        let (usable_for, refresh_after) = self.config.schedule(lifetime, fastrand::f64());
        let current = Arc::new(Current {
            header: scheme::warm(header),
            credentials,
            fetch: self.fetches.fetch_add(1, Ordering::AcqRel),
            obtained: now,
            refresh_at: later(now, refresh_after),
            dead_at: later(now, usable_for),
            expires_at: later(now, lifetime),
            lifetime,
            cache: Arc::downgrade(self),
        });
        {
            let mut pace = lock(&self.pace);
            pace.last = Some(current.clone());
            pace.failures = 0;
            pace.not_before = None;
        }
        self.current.store(Some(current.clone()));
        self.status.send_modify(|s| {
            s.last_error = None;
        });
        Ok(current)
    }
}

/// A per-instance view of a cache's current token (see [`Shared::watch`]).
pub(crate) type CurrentView =
    arc_swap::cache::Cache<Arc<ArcSwapOption<Current>>, Option<Arc<Current>>>;

/// Counts a request as waiting while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Marks the refresher gone when its task ends, or is dropped with its
/// runtime (polled or not: it is an argument of the task, not a local).
struct Running {
    shared: Arc<Shared>,
    generation: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _driver = lock(&self.shared.driver);
        if self.shared.generation.load(Ordering::Acquire) == self.generation {
            self.shared.alive.store(false, Ordering::Release);
            // The same token under a new identity: every per-instance view
            // sees a change and takes the slow path, which starts a new
            // refresher (and expires the token if its time ran out meanwhile).
            // So the cached path needs no check of its own that one runs.
            let current = self.shared.current.load_full();
            if let Some(token) = current.as_ref() {
                let renewed = Arc::new(token.renewed());
                self.shared.current.compare_and_swap(token, Some(renewed));
            }
        }
    }
}

/// Waits for a change of credentials, or forever if the provider cannot announce them.
async fn credentials_changed(changes: &mut Option<watch::Receiver<CredentialsId>>) {
    match changes {
        Some(receiver) => {
            if receiver.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When the current token dies, if there is one.
fn dead_at(shared: &Shared) -> Option<Instant> {
    shared.current.load().as_ref().map(|t| t.dead_at)
}

/// The refresher. Ends when every handle is gone (the command channel
/// closes), when a newer refresher took over, or with its runtime.
async fn run(running: Running, mut commands: mpsc::UnboundedReceiver<Command>) {
    let shared = running.shared.clone();
    let generation = running.generation;
    let name = shared.source.name();
    tracing::debug!(target: "sinch_auth", source = name, "token refresher started");
    let config = shared.config.clone();
    let mut changes = shared.provider.changes();
    if let Some(receiver) = &mut changes {
        receiver.mark_unchanged();
    }
    let superseded = || shared.generation.load(Ordering::Acquire) != generation;
    // Picks up where an earlier refresher left off: the token and the pace
    // are the state. A token cleared by a 401 `expired` that the last
    // refresher never got to refetch is refetched no sooner than it would have.
    let mut next_fetch = match shared.current.load_full() {
        Some(token) if token.credentials == shared.provider.current_id() => token.refresh_at,
        Some(_) => Instant::now(),
        None => lock(&shared.pace).earliest(Instant::now(), &config),
    };

    loop {
        if superseded() {
            break;
        }
        tokio::select! {
            biased;
            command = commands.recv() => {
                shared.beats.fetch_add(1, Ordering::AcqRel);
                let now = Instant::now();
                match command {
                    None => break,
                    Some(Command::Refresh) => {
                        next_fetch = next_fetch.min(lock(&shared.pace).earliest(now, &config));
                    }
                    Some(Command::Rotated) => next_fetch = now,
                    Some(Command::Wake) => {
                        if shared.current.load().is_none() {
                            // Sooner, but never before the endpoint's `Retry-After`
                            // nor within the forced-refetch interval of a 401.
                            let soon = later(now, waiting_delay(&config))
                                .max(lock(&shared.pace).earliest(now, &config));
                            next_fetch = next_fetch.min(soon);
                        }
                    }
                }
            }
            () = credentials_changed(&mut changes) => {
                tracing::info!(target: "sinch_auth", source = name, "credentials rotated; refetching token");
                next_fetch = Instant::now();
            }
            () = sleep_until_opt(dead_at(&shared)) => shared.expire_if_dead(),
            () = tokio::time::sleep_until(next_fetch) => {
                let hold = lock(&shared.bucket).take(Instant::now());
                if !hold.is_zero() {
                    next_fetch = later(Instant::now(), hold);
                    continue;
                }
                let credentials = shared.provider.credentials();
                let started = Instant::now();
                let (number, must_outlive) = {
                    let pace = lock(&shared.pace);
                    let must_outlive = pace
                        .last
                        .as_ref()
                        .filter(|t| t.credentials == credentials.id())
                        .map(|t| t.must_outlive(started));
                    (pace.failures.saturating_add(1), must_outlive)
                };
                tracing::debug!(target: "sinch_auth", source = name, attempt = number, "fetching token");
                let attempt = observe::FetchAttempt::start(name, number);
                let request = FetchRequest::new(credentials.clone(), must_outlive);
                let fetch = tokio::time::timeout(config.fetch_timeout, attempt.instrument(shared.source.fetch(request)));
                tokio::pin!(fetch);
                let outcome = loop {
                    tokio::select! {
                        biased;
                        command = commands.recv() => {
                            // A fetch is already under way: later commands fold into it.
                            shared.beats.fetch_add(1, Ordering::AcqRel);
                            if command.is_none() || superseded() {
                                tracing::debug!(target: "sinch_auth", source = name, "token refresher stopped");
                                return;
                            }
                        }
                        () = sleep_until_opt(dead_at(&shared)) => shared.expire_if_dead(),
                        result = &mut fetch => break result.unwrap_or(Err(FetchError::Timeout(config.fetch_timeout))),
                    }
                };
                let now = Instant::now();
                match outcome.and_then(|token| shared.publish(&token, credentials.id(), now)) {
                    Ok(token) => {
                        next_fetch = token.refresh_at;
                        attempt.succeeded(token.dead_at.saturating_duration_since(now));
                        tracing::info!(
                            target: "sinch_auth",
                            source = name,
                            latency_ms = started.elapsed().as_millis() as u64,
                            usable_for_s = token.dead_at.saturating_duration_since(now).as_secs(),
                            refresh_in_s = token.refresh_at.saturating_duration_since(now).as_secs(),
                            "token obtained"
                        );
                    }
                    Err(error) => {
                        let failures = {
                            let mut pace = lock(&shared.pace);
                            pace.failures = pace.failures.saturating_add(1);
                            pace.failures
                        };
                        let retry_after = match &error {
                            FetchError::Endpoint { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        let mut delay = config.backoff(failures, retry_after, fastrand::f64());
                        if retry_after.is_none() {
                            if let Some(left) = dead_at(&shared).map(|at| at.saturating_duration_since(now)) {
                                // While the old token still works, retry well before it stops.
                                if !left.is_zero() {
                                    delay = delay.min((left / 2).max(config.backoff_base / 10));
                                }
                            } else if shared.waiting.load(Ordering::Acquire) > 0 {
                                // Requests are waiting: retry often, so the first one after
                                // the endpoint recovers gets through.
                                delay = delay.min(waiting_delay(&config));
                            }
                        }
                        next_fetch = later(now, delay);
                        lock(&shared.pace).not_before = retry_after.map(|_| next_fetch);
                        attempt.failed(&error, delay, dead_at(&shared));
                        if matches!(error.status(), Some(s) if s == http::StatusCode::UNAUTHORIZED) {
                            // The endpoint refused the key itself: a rotation the
                            // provider has not seen yet could explain it.
                            shared.provider.credentials_rejected(credentials.id());
                        }
                        tracing::warn!(
                            target: "sinch_auth",
                            source = name,
                            attempt = failures,
                            status = error.status().map(|s| s.as_u16()),
                            sinch_error = error.sinch_error(),
                            retry_in_ms = delay.as_millis() as u64,
                            still_serving_old_token = shared.current.load().is_some(),
                            error = %error,
                            "token fetch failed"
                        );
                        shared.status.send_modify(|s| {
                                            s.last_error = Some((Arc::new(error), credentials.id()));
                        });
                    }
                }
                if shared.provider.current_id() != credentials.id() {
                    next_fetch = Instant::now();
                }
            }
        }
    }
    tracing::debug!(target: "sinch_auth", source = name, "token refresher stopped");
}

/// The delay before the next attempt while requests wait: full jitter
/// below [`WAITING_RETRY`], at least a tenth of the backoff base.
fn waiting_delay(config: &RefreshConfig) -> Duration {
    scale(WAITING_RETRY, fastrand::f64()).max(config.backoff_base.min(WAITING_RETRY) / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_refreshes_ahead_with_margin_and_jitter() {
        let c = RefreshConfig::default();
        let hour = Duration::from_secs(3600);
        // No jitter: usable 3595 s, margin 359.5 s.
        let (usable, refresh) = c.schedule(hour, 0.0);
        assert_eq!(usable, Duration::from_secs(3595));
        assert_eq!(refresh, Duration::from_millis(3_235_500));
        // Full jitter takes another quarter of the margin off.
        let (_, refresh_j) = c.schedule(hour, 1.0);
        assert_eq!(refresh_j, Duration::from_millis(3_235_500 - 89_875));
        // Short lifetimes: the 60 s floor gives way to half the lifetime.
        let (usable, refresh) = c.schedule(Duration::from_secs(1), 0.0);
        assert_eq!(usable, Duration::from_millis(900));
        assert_eq!(refresh, Duration::from_millis(450));
        // Ten minutes: margin is the 60 s floor.
        let (_, refresh) = c.schedule(Duration::from_secs(600), 0.0);
        assert_eq!(refresh, Duration::from_secs(600 - 5 - 60));
        // Absurd lifetimes are clamped.
        let (usable, _) = c.schedule(Duration::MAX, 0.5);
        assert!(usable <= Duration::from_secs(24 * 3600));
    }

    #[test]
    fn backoff_grows_by_four_with_full_jitter_and_honours_retry_after() {
        let c = RefreshConfig::default();
        assert_eq!(c.backoff(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(c.backoff(2, None, 1.0), Duration::from_secs(4));
        assert_eq!(c.backoff(3, None, 1.0), Duration::from_secs(16));
        assert_eq!(c.backoff(4, None, 1.0), Duration::from_secs(60));
        assert_eq!(c.backoff(40, None, 1.0), Duration::from_secs(60));
        assert_eq!(c.backoff(3, None, 0.5), Duration::from_secs(8));
        assert_eq!(c.backoff(3, None, 0.0), Duration::from_millis(100));
        assert_eq!(
            c.backoff(1, Some(Duration::from_secs(7)), 0.9),
            Duration::from_secs(7)
        );
        assert_eq!(
            c.backoff(1, Some(Duration::from_secs(7200)), 0.9),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn jwt_expiry_reads_exp_and_ignores_junk() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDM2MDB9.sig";
        assert_eq!(jwt_expiry(jwt), Some(1_700_003_600));
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.b.c"), None);
        assert_eq!(jwt_expiry("a.e30.c"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_clears_only_the_token_it_names() {
        let provider: Arc<dyn CredentialProvider> = Arc::new(crate::StaticCredentials::new(
            crate::BearerToken::new("x").unwrap(),
        ));
        let counter = Arc::new(AtomicU64::new(0));
        let c2 = counter.clone();
        let source = super::super::source_fn(move |_| {
            let n = c2.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Token::new(format!("tok-{n}"), Duration::from_secs(3600))) }
        });
        let cache = TokenCache::new(
            Arc::new(source),
            provider.clone(),
            Arc::new(crate::clock::SystemClock),
            RefreshConfig::default(),
        );
        let first = cache.handle.0.wait(None).await.unwrap();
        assert!(cache.invalidate(&first));
        assert!(cache.current.load().is_none());
        let second = cache.handle.0.wait(Some(&first)).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.header, "Bearer tok-1");
        // A late 401 for the first token must not wipe the second.
        assert!(!cache.invalidate(&first));
        assert!(
            cache
                .current
                .load()
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &second))
        );
        assert_eq!(counter.load(Ordering::SeqCst), 2);
    }

    fn slow_cache(fetch_takes: Duration) -> (TokenCache, Arc<AtomicU64>) {
        let provider: Arc<dyn CredentialProvider> = Arc::new(crate::StaticCredentials::new(
            crate::BearerToken::new("x").unwrap(),
        ));
        let fetches = Arc::new(AtomicU64::new(0));
        let counter = fetches.clone();
        let source = super::super::source_fn(move |_| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(fetch_takes).await;
                Ok(Token::new(format!("tok-{n}"), Duration::from_secs(3600)))
            }
        });
        let cache = TokenCache::new(
            Arc::new(source),
            provider,
            Arc::new(crate::clock::SystemClock),
            RefreshConfig::default(),
        );
        (cache, fetches)
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_counts_as_answered_whenever_the_refresher_handles_it() {
        let (cache, _) = slow_cache(Duration::ZERO);
        // No refresher yet: nobody answers.
        let pulse = cache.ping();
        assert!(!cache.answered_since(pulse));
        // The pulse is the one from before the ask: an answer that comes at
        // once, before the asker reads anything, still moves it.
        let pulse = cache.ping();
        cache.beats.fetch_add(1, Ordering::AcqRel);
        assert!(cache.answered_since(pulse));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresher_in_a_slow_fetch_answers_and_is_not_replaced() {
        let (cache, fetches) = slow_cache(Duration::from_secs(5));
        let token = tokio::time::timeout(Duration::from_secs(10), cache.handle.0.wait(None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.header, "Bearer tok-0");
        // Twenty stall checks came and went during the fetch: one refresher.
        assert_eq!(cache.generation.load(Ordering::SeqCst), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_fetch_bucket_allows_bursts_of_30_then_10_per_second() {
        let mut bucket = Bucket {
            tokens: BUCKET_BURST,
            at: None,
        };
        let now = Instant::now();
        for _ in 0..30 {
            assert_eq!(bucket.take(now), Duration::ZERO);
        }
        // The 31st waits for the next token to drip in: 1/10 s.
        assert_eq!(bucket.take(now), Duration::from_millis(100));
        let later = now + Duration::from_secs(1);
        let allowed = (0..20).filter(|_| bucket.take(later).is_zero()).count();
        assert_eq!(allowed, 9);
    }
}
