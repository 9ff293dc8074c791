//! The token cache and its background refresher.
//!
//! One cache per token source. The current token sits in an `ArcSwapOption` as
//! a ready-made `Authorization` value: a request loads it without a lock,
//! clones the `HeaderValue` (a reference-count bump, no allocation) and goes.
//!
//! One task per cache owns every fetch, so fetches are single-flight by
//! construction. It sleeps until the next refresh, the current token's
//! expiry, a command (refresh now, credentials rotated) or the drop of the
//! last handle, whichever comes first. Requests never wait for it unless no
//! usable token exists (cold start, expiry, 401-`expired`, hard cut-over).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use http::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{FetchRequest, Token, TokenSource};
use crate::clock::{Clock, unix_seconds};
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
/// are spaced so that several happen before it expires.
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
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by).unwrap_or_else(|| at + FAR_FUTURE)
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

/// Which token a request carried, so a 401 can clear exactly that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenTicket {
    pub(crate) token_id: u64,
}

/// What a request finds in the cache.
pub(crate) enum Lookup {
    /// A usable token, and the credentials it came from.
    Ready(HeaderValue, TokenTicket, CredentialsId),
    /// Nothing usable: the request has to wait.
    Wait,
}

struct Cached {
    header: HeaderValue,
    id: u64,
    credentials: CredentialsId,
}

#[derive(Clone, Default)]
struct Status {
    version: u64,
    last_error: Option<(Arc<FetchError>, CredentialsId)>,
}

enum Command {
    /// A 401-`expired` cleared the token: fetch again (rate-limited).
    Refresh,
    /// The provider's credentials changed: fetch again now.
    Rotated,
}

struct Shared {
    current: ArcSwapOption<Cached>,
    status: watch::Sender<Status>,
    source: Arc<dyn TokenSource>,
    provider: Arc<dyn CredentialProvider>,
    clock: Arc<dyn Clock>,
    config: RefreshConfig,
    rotation_requested: AtomicU64,
    next_token_id: AtomicU64,
    /// The id of the token in `current` (0: none), for one-load checks.
    current_id: AtomicU64,
}

struct Handle {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    started: AtomicBool,
    pending: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
}

/// A token cache with its background refresher. Clones share both; the
/// refresher ends when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct TokenCache {
    inner: Arc<Handle>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &self.inner.shared.source.name())
            .field("has_token", &self.inner.shared.current.load().is_some())
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
        let (commands, receiver) = mpsc::unbounded_channel();
        let (status, _) = watch::channel(Status::default());
        Self {
            inner: Arc::new(Handle {
                shared: Arc::new(Shared {
                    current: ArcSwapOption::empty(),
                    status,
                    source,
                    provider,
                    clock,
                    config,
                    rotation_requested: AtomicU64::new(0),
                    next_token_id: AtomicU64::new(1),
                    current_id: AtomicU64::new(0),
                }),
                commands,
                started: AtomicBool::new(false),
                pending: Mutex::new(Some(receiver)),
            }),
        }
    }

    fn ensure_started(&self) -> Result<(), AuthError> {
        if self.inner.started.load(Ordering::Acquire) {
            return if self.inner.commands.is_closed() {
                Err(AuthError::RefresherStopped)
            } else {
                Ok(())
            };
        }
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(receiver) = pending.take() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                *pending = Some(receiver);
                return Err(AuthError::NoRuntime);
            };
            let shared = self.inner.shared.clone();
            runtime.spawn(run(shared, receiver));
            self.inner.started.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The request path: the current token if one is usable. No lock, no allocation.
    pub(crate) fn lookup(&self, credentials: CredentialsId) -> Result<Lookup, AuthError> {
        self.ensure_started()?;
        let shared = &self.inner.shared;
        let current = shared.current.load();
        if let Some(cached) = current.as_ref() {
            let ticket = TokenTicket {
                token_id: cached.id,
            };
            if cached.credentials != credentials {
                self.rotated(credentials);
                if shared.config.hard_cutover {
                    return Ok(Lookup::Wait);
                }
            }
            return Ok(Lookup::Ready(
                cached.header.clone(),
                ticket,
                cached.credentials,
            ));
        }
        Ok(Lookup::Wait)
    }

    fn rotated(&self, to: CredentialsId) {
        let shared = &self.inner.shared;
        if shared.rotation_requested.swap(to.raw(), Ordering::AcqRel) != to.raw() {
            let _ = self.inner.commands.send(Command::Rotated);
        }
    }

    /// Waits (bounded by the wait timeout) for a usable token; with
    /// `not_this`, for one other than the token a 401 was answered to.
    pub(crate) async fn wait(
        &self,
        not_this: Option<TokenTicket>,
    ) -> Result<(HeaderValue, TokenTicket), AuthError> {
        self.ensure_started()?;
        let shared = &self.inner.shared;
        tracing::debug!(
            target: "sinch_auth",
            source = shared.source.name(),
            after_401 = not_this.is_some(),
            "request waits for a token"
        );
        let started = Instant::now();
        let deadline = later(started, shared.config.wait_timeout);
        let mut status = shared.status.subscribe();
        loop {
            let wanted = shared.provider.current_id();
            let hard = shared.config.hard_cutover;
            if let Some(cached) = shared.current.load().as_ref() {
                let fresh = not_this.is_none_or(|t| t.token_id != cached.id);
                if fresh && (cached.credentials == wanted || !hard) {
                    if cached.credentials != wanted {
                        self.rotated(wanted);
                    }
                    let ticket = TokenTicket {
                        token_id: cached.id,
                    };
                    return Ok((cached.header.clone(), ticket));
                }
            }
            if cached_is_foreign(shared, wanted) {
                self.rotated(wanted);
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
            if self.inner.commands.is_closed() {
                return Err(AuthError::RefresherStopped);
            }
            match tokio::time::timeout_at(deadline, status.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(AuthError::RefresherStopped),
                Err(_) => {
                    return Err(AuthError::TokenUnavailable {
                        waited: started.elapsed(),
                        cause: last.last_error.map(|(e, _)| e),
                    });
                }
            }
        }
    }

    /// Whether the token a request used is still the one to use (and the
    /// refresher still runs). One atomic load each.
    pub(crate) fn is_current(&self, ticket: TokenTicket) -> bool {
        self.inner.shared.current_id.load(Ordering::Acquire) == ticket.token_id
            && !self.inner.commands.is_closed()
    }

    /// Clears the token a request used, if it is still the current one, and
    /// asks for a new one. Returns whether this call cleared it.
    pub(crate) fn invalidate(&self, ticket: TokenTicket) -> bool {
        let shared = &self.inner.shared;
        let current = shared.current.load();
        let Some(cached) = current.as_ref() else {
            return false;
        };
        if cached.id != ticket.token_id {
            return false;
        }
        let previous = shared.current.compare_and_swap(&*current, None);
        let cleared = previous.as_ref().is_some_and(|p| p.id == ticket.token_id);
        if cleared {
            tracing::info!(
                target: "sinch_auth",
                source = shared.source.name(),
                token_id = ticket.token_id,
                "token rejected as expired by the API; cleared, refetching"
            );
            let _ = self.inner.commands.send(Command::Refresh);
        }
        cleared
    }

    /// The source's name, for logs and metrics.
    pub(crate) fn source_name(&self) -> &'static str {
        self.inner.shared.source.name()
    }

    #[cfg(test)]
    fn current_id(&self) -> Option<u64> {
        self.inner.shared.current.load().as_ref().map(|c| c.id)
    }
}

fn cached_is_foreign(shared: &Shared, wanted: CredentialsId) -> bool {
    shared
        .current
        .load()
        .as_ref()
        .is_some_and(|c| c.credentials != wanted)
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

/// The refresher. Ends when every handle is gone (the command channel closes).
async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let name = shared.source.name();
    tracing::debug!(target: "sinch_auth", source = name, "token refresher started");
    let config = shared.config.clone();
    let mut changes = shared.provider.changes();
    if let Some(receiver) = &mut changes {
        receiver.mark_unchanged();
    }
    let mut next_fetch = Instant::now();
    let mut expiry: Option<(Instant, u64)> = None;
    let mut failures: u32 = 0;
    let mut last_success: Option<Instant> = None;
    // When the last token stops being used, and for which credentials: after
    // a rotation it says nothing about tokens for the new ones.
    let mut held_until: Option<(std::time::SystemTime, CredentialsId)> = None;

    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                None => break,
                Some(Command::Refresh) => {
                    let now = Instant::now();
                    let earliest = last_success.map_or(now, |t| later(t, config.min_forced_interval).max(now));
                    next_fetch = next_fetch.min(earliest);
                }
                Some(Command::Rotated) => next_fetch = Instant::now(),
            },
            () = credentials_changed(&mut changes) => {
                tracing::info!(target: "sinch_auth", source = name, "credentials rotated; refetching token");
                next_fetch = Instant::now();
            }
            () = sleep_until_opt(expiry.map(|(at, _)| at)) => {
                if let Some((_, id)) = expiry.take() {
                    expire(&shared, id);
                }
            }
            () = tokio::time::sleep_until(next_fetch) => {
                let credentials = shared.provider.credentials();
                let started = Instant::now();
                tracing::debug!(target: "sinch_auth", source = name, attempt = failures + 1, "fetching token");
                let attempt = observe::FetchAttempt::start(name, failures + 1);
                let must_outlive = held_until
                    .filter(|(_, id)| *id == credentials.id())
                    .map(|(until, _)| until.duration_since(shared.clock.now()).unwrap_or_default());
                let request = FetchRequest::new(credentials.clone(), must_outlive);
                let fetch = tokio::time::timeout(config.fetch_timeout, attempt.instrument(shared.source.fetch(request)));
                tokio::pin!(fetch);
                let outcome = loop {
                    tokio::select! {
                        biased;
                        command = commands.recv() => {
                            // A fetch is already under way: later commands fold into it.
                            if command.is_none() {
                                tracing::debug!(target: "sinch_auth", source = name, "token refresher stopped");
                                return;
                            }
                        }
                        () = sleep_until_opt(expiry.map(|(at, _)| at)) => {
                            if let Some((_, id)) = expiry.take() {
                                expire(&shared, id);
                            }
                        }
                        result = &mut fetch => break result.unwrap_or(Err(FetchError::Timeout(config.fetch_timeout))),
                    }
                };
                let now = Instant::now();
                let result = outcome.and_then(|token| publish(&shared, &token, credentials.id()));
                match result {
                    Ok((id, usable_for, refresh_after)) => {
                        failures = 0;
                        last_success = Some(now);
                        expiry = Some((later(now, usable_for), id));
                        let wall = shared.clock.now();
                        let until = wall.checked_add(usable_for).unwrap_or(wall + FAR_FUTURE);
                        held_until = Some((until, credentials.id()));
                        next_fetch = later(now, refresh_after);
                        attempt.succeeded(usable_for);
                        tracing::info!(
                            target: "sinch_auth",
                            source = name,
                            latency_ms = started.elapsed().as_millis() as u64,
                            usable_for_s = usable_for.as_secs(),
                            refresh_in_s = refresh_after.as_secs(),
                            "token obtained"
                        );
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        let retry_after = match &error {
                            FetchError::Endpoint { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        let mut delay = config.backoff(failures, retry_after, fastrand::f64());
                        // While the old token still works, retry well before it stops.
                        if let Some((until, _)) = expiry {
                            let half_left = until.saturating_duration_since(now) / 2;
                            if retry_after.is_none() && half_left > Duration::ZERO {
                                delay = delay.min(half_left.max(config.backoff_base / 10));
                            }
                        }
                        next_fetch = later(now, delay);
                        attempt.failed(&error, delay, expiry.map(|(at, _)| at));
                        tracing::warn!(
                            target: "sinch_auth",
                            source = name,
                            attempt = failures,
                            status = error.status().map(|s| s.as_u16()),
                            sinch_error = error.sinch_error(),
                            retry_in_ms = delay.as_millis() as u64,
                            still_serving_old_token = expiry.is_some(),
                            error = %error,
                            "token fetch failed"
                        );
                        shared.status.send_modify(|s| {
                            s.version += 1;
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

/// Stores a fresh token; returns its id, how long it is usable and when to refresh it.
fn publish(
    shared: &Shared,
    token: &Token,
    credentials: CredentialsId,
) -> Result<(u64, Duration, Duration), FetchError> {
    let value = token.value().expose_secret();
    let mut lifetime = token.expires_in();
    if let Some(exp) = jwt_expiry(value) {
        match exp.saturating_sub(unix_seconds(shared.clock.now())) {
            // The source vouches for `expires_in`, yet by our wall clock `exp`
            // has passed: our clock runs ahead of the issuer's (or just
            // jumped). Rejecting would fail every fetch until the clock is
            // fixed; trusting `expires_in` costs at most a 401 `expired`,
            // which refetches.
            0 => tracing::warn!(
                target: "sinch_auth",
                source = shared.source.name(),
                "token's exp is already past by the local clock; using expires_in (is the clock ahead?)"
            ),
            left => lifetime = lifetime.min(Duration::from_secs(left)),
        }
    }
    if lifetime.is_zero() {
        return Err(FetchError::MalformedResponse {
            reason: "token is already expired",
        });
    }
    let header = scheme::bearer(value).map_err(|_| FetchError::MalformedResponse {
        reason: "access_token contains characters not allowed in a header",
    })?;
    let (usable_for, refresh_after) = shared.config.schedule(lifetime, fastrand::f64());
    let id = shared.next_token_id.fetch_add(1, Ordering::Relaxed);
    shared.current.store(Some(Arc::new(Cached {
        header: scheme::warm(header),
        id,
        credentials,
    })));
    shared.current_id.store(id, Ordering::Release);
    shared.status.send_modify(|s| {
        s.version += 1;
        s.last_error = None;
    });
    Ok((id, usable_for, refresh_after))
}

/// The token's time is up and no refresh succeeded: stop serving it.
fn expire(shared: &Shared, id: u64) {
    let current = shared.current.load();
    if current.as_ref().is_some_and(|c| c.id == id) {
        shared.current.compare_and_swap(&*current, None);
        let _ = shared
            .current_id
            .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed);
        tracing::warn!(
            target: "sinch_auth",
            source = shared.source.name(),
            "token expired before a refresh succeeded; requests will wait"
        );
        shared.status.send_modify(|s| s.version += 1);
    }
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
        let (_, first) = cache.wait(None).await.unwrap();
        assert!(!cache.invalidate(TokenTicket { token_id: 999 }));
        assert_eq!(cache.current_id(), Some(first.token_id));
        assert!(cache.invalidate(first));
        let (header, second) = cache.wait(Some(first)).await.unwrap();
        assert_ne!(second, first);
        assert_eq!(header, "Bearer tok-1");
        // A late 401 for the first token must not wipe the second.
        assert!(!cache.invalidate(first));
        assert_eq!(cache.current_id(), Some(second.token_id));
        assert_eq!(counter.load(Ordering::SeqCst), 2);
    }
}
