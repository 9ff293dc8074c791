//! Tokens that expire: where they come from and how they are kept fresh.
//!
//! A [`TokenSource`] obtains a token from credentials: [`OAuth2Source`] fetches one
//! from Sinch's token endpoint (protocol notes §2), [`SelfSignedJwt`] mints one locally
//! (protocol notes §3), and [`source_fn`] wraps any async function of yours.
//!
//! The layer keeps each source's current token in a cache read without locks
//! on the request path, refreshed by one background task per cache — see
//! [`RefreshConfig`] for the timing rules.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sinch_auth::token::{source_fn, Token};
//!
//! // A source that asks your own vault for a token.
//! let source = source_fn(|_request| async {
//!     Ok(Token::new("token-from-my-vault", Duration::from_secs(600)))
//! });
//! # let _ = source;
//! ```

pub(crate) mod cache;
mod http_client;
mod lifecycle;
pub(crate) mod oauth2;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub(crate) mod redis_connection;
mod store;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisTokenStore, RedisTokenStoreBuilder};
pub use cache::RefreshConfig;
pub(crate) use cache::{TokenCache, TokenSlot};
pub use http_client::{HyperClientBuilder, TokenHttpClient, TokenHttpResponse};
pub(crate) use lifecycle::{Lifecycle, TokenSettings};
pub use oauth2::OAuth2Source;
/// The built-in OAuth2 token source under its 0.1.0 name.
#[deprecated(since = "0.2.0", note = "renamed to `OAuth2Source`")]
pub type OAuth2 = OAuth2Source;
#[cfg(feature = "redis")]
pub(crate) use store::FETCH_CONTEXT;
pub(crate) use store::Stored;
pub use store::{RefusedToken, StoreKey, TokenStore};

use crate::clock::{Clock, SystemClock, unix_seconds};
use crate::error::{CredentialKind, FetchError};
use crate::{Credentials, CredentialsId, scheme};

/// A bearer token and how long it lives.
pub struct Token {
    value: SecretString,
    expires_in: Duration,
    scope: Option<String>,
}

impl Token {
    /// A token valid for `expires_in` from now.
    pub fn new(value: impl Into<String>, expires_in: Duration) -> Self {
        Self {
            value: SecretString::from(value.into()),
            expires_in,
            scope: None,
        }
    }

    /// Records the token's scope (informational).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The token.
    pub fn value(&self) -> &SecretString {
        &self.value
    }

    /// How long it lives, counted from when it was obtained.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The scope the issuer reported, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// How long the token lives from `now`, obtained at `now`: the one rule
    /// for a token's lifetime, applied once where a token enters the cache
    /// (and wherever else a lifetime is needed). A JWT's `exp` beats
    /// `expires_in` when it is sooner, counted to the sub-second against
    /// `now`; an `exp` already past by the local clock is ignored (our clock
    /// is ahead of the issuer's: trusting `expires_in` costs at most a 401
    /// `expired`, which refetches, where rejecting would fail every fetch).
    /// Zero means the token is dead on arrival.
    pub(crate) fn life_at(&self, now: SystemTime) -> Duration {
        match exp_left(self.value.expose_secret(), now) {
            Some(left) if !left.is_zero() => self.expires_in.min(left),
            Some(_) => {
                tracing::warn!(
                    target: "sinch_auth",
                    "token's exp is already past by the local clock; using expires_in (is the clock ahead?)"
                );
                self.expires_in
            }
            None => self.expires_in,
        }
    }
}

/// The time from `now` to a JWT's `exp` claim (zero if past), to the
/// sub-second: `exp` is a whole second, `now` is not; `None` for a token
/// that is not a JWT with an `exp`.
pub(crate) fn exp_left(token: &str, now: SystemTime) -> Option<Duration> {
    let exp = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(cache::jwt_expiry(token)?));
    // An `exp` beyond what the platform's time can hold is as good as never.
    Some(exp.map_or(Duration::MAX, |exp| {
        exp.duration_since(now).unwrap_or_default()
    }))
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// What the refresher asks a [`TokenSource`] for.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    credentials: Arc<Credentials>,
    must_outlive: Option<Duration>,
}

impl FetchRequest {
    /// A request for a token from `credentials`. See [`must_outlive`](Self::must_outlive).
    pub fn new(credentials: Arc<Credentials>, must_outlive: Option<Duration>) -> Self {
        Self {
            credentials,
            must_outlive,
        }
    }

    /// The credentials to use.
    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    /// A source that shares tokens between processes (a [`TokenStore`])
    /// must answer with a token whose remaining life from now is longer
    /// than this: the token the asking process holds lives that long (plus
    /// a margin, see [`RefreshConfig`]), so a process refreshing ahead never
    /// gets its own token back. `None` on a cold start and after the
    /// credentials changed: any live token will do.
    pub fn must_outlive(&self) -> Option<Duration> {
        self.must_outlive
    }
}

/// The future a [`TokenSource`] returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<Token, FetchError>> + Send + 'static>>;

/// Obtains tokens. Called only by the background refresher, one call at a time per cache.
pub trait TokenSource: Send + Sync + 'static {
    /// Obtains a token. The refresher applies the per-fetch timeout; sources need not.
    fn fetch(&self, request: FetchRequest) -> TokenFuture;

    /// A short name for logs, e.g. `"oauth2"`.
    fn name(&self) -> &'static str {
        "custom"
    }

    /// Where a [`TokenStore`] may share this source's tokens for
    /// `credentials` with other processes, or `None` (the default): the
    /// store is bypassed and every process fetches its own.
    ///
    /// Derive the key from a secret of the credentials
    /// ([`StoreKey::derive`]): whoever can compute it can read the shared
    /// token. [`OAuth2Source`] answers [`StoreKey::for_access_key`].
    fn share_key(&self, credentials: &Credentials) -> Option<StoreKey> {
        let _ = credentials;
        None
    }

    /// The API refused `token`, which this source returned, as expired (a
    /// 401 `expired`); the cache has already dropped it. A source that
    /// shares tokens between processes must never return it again (a
    /// [`TokenStore`] behind the layer is told through
    /// [`TokenStore::refused`]). Called on the request path: keep it cheap
    /// and never block. The default does nothing.
    fn refused(&self, token: &RefusedToken) {
        let _ = token;
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn fetch(&self, request: FetchRequest) -> TokenFuture {
        (**self).fetch(request)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn share_key(&self, credentials: &Credentials) -> Option<StoreKey> {
        (**self).share_key(credentials)
    }

    fn refused(&self, token: &RefusedToken) {
        (**self).refused(token);
    }
}

/// A [`TokenSource`] made from an async function. See the [module docs](self).
pub fn source_fn<F, Fut>(f: F) -> SourceFn<F>
where
    F: Fn(FetchRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, FetchError>> + Send + 'static,
{
    SourceFn(f)
}

/// See [`source_fn`].
#[derive(Clone)]
pub struct SourceFn<F>(F);

impl<F> fmt::Debug for SourceFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceFn")
    }
}

impl<F, Fut> TokenSource for SourceFn<F>
where
    F: Fn(FetchRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, FetchError>> + Send + 'static,
{
    fn fetch(&self, request: FetchRequest) -> TokenFuture {
        Box::pin((self.0)(request))
    }
}

/// Mints the self-signed JWT of protocol notes §3 from the application credentials.
///
/// Minting is local and cheap, but shares the machinery of fetched tokens: a
/// minted JWT is cached and replaced ahead of its expiry in the background,
/// never minted per request.
///
/// Its claims are whole seconds, so two JWTs minted from the same
/// credentials within one second are the same bytes. A minter never hands
/// out the JWT it minted last again (the one a 401 `expired` may just have
/// refused): asked again within that second of its clock, it waits for the
/// next one first.
#[derive(Clone)]
pub struct SelfSignedJwt {
    lifetime: Duration,
    clock: Arc<dyn Clock>,
    /// The credentials and `iat` of the JWT minted last (shared by clones).
    last: Arc<Mutex<Option<(CredentialsId, u64)>>>,
}

impl SelfSignedJwt {
    /// The lifetime Sinch's overview describes: one hour.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

    /// A minter for JWTs living `lifetime` (whole seconds, at least one).
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime: lifetime.max(Duration::from_secs(1)),
            clock: Arc::new(SystemClock),
            last: Arc::default(),
        }
    }

    /// Reads `iat` from this clock instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for SelfSignedJwt {
    fn default() -> Self {
        Self::new(Self::DEFAULT_LIFETIME)
    }
}

impl fmt::Debug for SelfSignedJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSignedJwt")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl SelfSignedJwt {
    /// Whether a JWT minted from `credentials` at `now` would be the one
    /// minted last.
    fn repeats(&self, credentials: CredentialsId, now: SystemTime) -> bool {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        last == Some((credentials, unix_seconds(now)))
    }
}

impl TokenSource for SelfSignedJwt {
    fn fetch(&self, request: FetchRequest) -> TokenFuture {
        let minter = self.clone();
        Box::pin(async move {
            let credentials = request.credentials();
            let app = credentials
                .application()
                .ok_or(FetchError::MissingCredential(CredentialKind::Application))?;
            let mut now = minter.clock.now();
            if minter.repeats(credentials.id(), now) {
                // Once: a clock that stands still gets the same JWT, which
                // the cache still counts as a new token.
                let into_second = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let rest =
                    Duration::from_secs(1).saturating_sub(Duration::from_nanos(into_second.into()));
                tokio::time::sleep(rest).await;
                now = minter.clock.now();
            }
            let iat = unix_seconds(now);
            *minter.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((credentials.id(), iat));
            Ok(Token {
                value: scheme::self_signed_jwt(app, iat, minter.lifetime),
                expires_in: Duration::from_secs(minter.lifetime.as_secs()),
                scope: None,
            })
        })
    }

    fn name(&self) -> &'static str {
        "self-signed-jwt"
    }
}
