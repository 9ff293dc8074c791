//! Fleet-wide token sharing through Redis (feature `redis`); see [`RedisTokenStore`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ::redis::{Client, RedisResult, Script, Value};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::cache::later;
use super::redis_connection::{Connection, ErrorSummary, Target, TlsOptions};
use super::{FETCH_CONTEXT, RefusedToken, StoreKey, Token, TokenFuture, TokenStore};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, FetchError};
use crate::scheme;

/// A stored token is taken only if it outlives the asker's token by at least
/// this share of its lifetime. The asker's own token outlives `must_outlive`
/// by the cache's expiry skew, at most 10 % of a lifetime, so 15 % never
/// hands a process back the token it is replacing.
const MIN_EXTENSION: f64 = 0.15;

/// The longest the fleet holds off after the token endpoint refused a fetch;
/// a refusal record living longer than this (or forever) is not ours.
const MAX_FAILURE_HOLD: Duration = Duration::from_secs(60);

/// How long the fleet holds off after a refusal without `Retry-After`: the
/// first backoff step of protocol notes §2.
const DEFAULT_FAILURE_HOLD: Duration = Duration::from_secs(1);

/// How many failed commands in a row a process overlooks, while Redis can
/// be reached, before fetching locally.
const MAX_GLITCHES: u32 = 3;

/// The first byte of every sealed record: its format. Version 3 records
/// carry their own wall-clock times; records of another version are
/// ignored (neither trusted nor deleted).
const RECORD_VERSION: u8 = 3;

/// The largest record read. Ours are a few hundred bytes; anything longer
/// is not read at all (its length is asked first) and is deleted unread.
const MAX_RECORD_BYTES: u64 = 8 * 1024;

/// A record is known by its first bytes (the version and the random nonce)
/// and its length: enough to delete it only if it is still there, without
/// sending it back to Redis.
const RECORD_ID_BYTES: usize = 25;

/// How far the fleet's wall clocks may disagree. A record stamped later
/// than this ahead of the reader's clock is ignored; within it, a reader
/// whose clock is behind the writer's counts a record alive up to this
/// much longer than it is.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10);

/// How many tokens refused by the API a store remembers, never to hand
/// them out again (the oldest is forgotten first).
const REFUSED_REMEMBERED: usize = 64;

/// Reads the token and the refusal record: for each, its length, its value
/// (only its first bytes if it is longer than `ARGV[1]`) and its remaining
/// life.
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cap = tonumber(ARGV[1])
local out = {}
for _, key in ipairs(KEYS) do
  local size = redis.call('STRLEN', key)
  local value
  if size > cap then
    value = redis.call('GETRANGE', key, 0, tonumber(ARGV[2]) - 1)
  else
    value = redis.call('GET', key)
  end
  out[#out + 1] = {size, value, redis.call('PTTL', key)}
end
return out
",
    )
});

/// Stores the token, unless (without `force`) a longer-lived one is there;
/// clears the refusal record.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ttl = redis.call('PTTL', KEYS[1])
if ARGV[3] ~= '1' and ttl > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
",
    )
});

/// Deletes the lock only if it still holds this process's owner id.
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('STRLEN', KEYS[1]) == #ARGV[1] and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Deletes a record only if it is still the one read: same length
/// (`ARGV[2]`), same first bytes (`ARGV[1]`, its version and nonce).
static DELETE_RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('STRLEN', KEYS[1]) == tonumber(ARGV[2])
   and redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Shares OAuth2 tokens between the processes of a fleet through Redis, so
/// the fleet fetches one token where each process would fetch its own
/// (feature `redis`).
///
/// Plug it in with [`SinchAuthBuilder::token_store`](crate::SinchAuthBuilder::token_store).
/// Cheap to clone; clones share the connection.
///
/// ```
/// use std::time::Duration;
/// use sinch_auth::token::RedisTokenStore;
/// use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
///
/// // Nothing connects yet: the store connects on the first token fetch.
/// let store = RedisTokenStore::builder("redis://127.0.0.1:6379/")
///     .key_prefix("billing-service:sinch-auth:")
///     .max_wait(Duration::from_secs(5))
///     .build()?;
///
/// let key = AccessKey::new("project", "key-id", "key-secret")?;
/// let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
///     .scheme(Scheme::OAuth2)
///     .token_store(store)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
///
/// Managed Redis: `rediss://` verifies the server's certificate against the
/// public web roots, or against your own CA
/// ([`ca_certificates_pem`](RedisTokenStoreBuilder::ca_certificates_pem));
/// a Redis Cluster is reached through [`cluster`](Self::cluster).
///
/// # What it does
///
/// Each process keeps its own in-process cache and background refresher; the
/// store is asked only when that refresher would fetch (cold start, refresh
/// ahead of expiry, 401-`expired`, rotation), never on the request path.
/// For one credential ([`StoreKey`], derived from its secret) Redis holds,
/// all three in one hash slot (`{name}` is a Cluster hash tag):
///
/// - `{prefix}{name}:token`: the token, sealed (XChaCha20-Poly1305 with the
///   store key's record key, bound to the key's name), stamped with its
///   issued lifetime and its expiry by the writer's wall clock, and set
///   with a `PX` expiry equal to its remaining lifetime. A reader counts
///   the least of the key's `PTTL`, the issued lifetime and the time to
///   the sealed expiry by its own wall clock (the layer's
///   [`clock`](crate::SinchAuthBuilder::clock)): Redis can shorten a
///   record's life, never lengthen it.
/// - `{prefix}{name}:lock`: the single-flight lock, `SET NX PX` with a random
///   owner id; released by a compare-and-delete script, so a process never
///   removes a lock that expired and was taken by another.
/// - `{prefix}{name}:failed`: for a short while after the token endpoint
///   answered 429 or 5xx, the refusal (sealed too, with the time it was
///   made and its hold, at most a minute), so the rest of the fleet backs
///   off with the process that saw it. An authentication failure
///   (400/401/403) is never shared: it says something about that process's
///   credentials, not about the endpoint.
///
/// A process asking for a token takes the stored one if it outlives the
/// token the process already holds (`must_outlive`) by at least 15 % of its
/// lifetime: a process refreshing ahead of expiry never gets its own
/// soon-to-expire token back. Otherwise it takes the lock and fetches, or
/// waits while another process does, polling every
/// [`poll_interval`](RedisTokenStoreBuilder::poll_interval) for at most
/// [`max_wait`](RedisTokenStoreBuilder::max_wait), and never past three
/// quarters of the layer's
/// [`fetch_timeout`](crate::token::RefreshConfig::fetch_timeout); after
/// that it fetches locally.
///
/// Every record is checked when read. Its length is read first: one longer
/// than 8 KiB is never read (ours are a few hundred bytes). One that is
/// too long, does not open with the key, holds a token no header can
/// carry, has no expiry, is past its own sealed expiry, holds a token the
/// API refused (see below), or (a refusal) would hold the fleet off longer
/// than a minute, is deleted if it is still the same record (compared by
/// its length and first 25 bytes inside a script, never sent back), and
/// the token endpoint asked instead. A record in another format version
/// (an older release's) is ignored, not trusted; the next fetch replaces
/// it.
///
/// When the API refuses a token as expired (401), the layer tells the
/// store ([`TokenStore::refused`]); the store remembers it (a digest, the
/// last 64) and never hands it out again, whatever its record says.
///
/// If Redis cannot be reached, times out or errs, the process logs a warning
/// (the error's kind, never its text) and fetches locally: the store never
/// fails a fetch that the token endpoint would have answered. The connection
/// is made again on the next fetch, so sharing resumes when Redis is back.
///
/// # Security
///
/// Without the key secret, a reader of Redis (a backup, a replica,
/// `MONITOR`) sees sealed bytes under names it cannot link to a project or
/// key, and a writer can delete records (the fleet then fetches) but cannot
/// forge a token or a refusal, nor make an old one live longer than its
/// sealed times allow. Still, give the store its own Redis user, limited
/// to the prefix and to the commands it uses:
///
/// ```text
/// ACL SETUSER sinch-auth on >password resetkeys ~billing-service:sinch-auth:* resetchannels
///     -@all +get +set +pttl +del +strlen +getrange +evalsha +script|load
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone)]
pub struct RedisTokenStore {
    inner: Arc<Inner>,
}

impl RedisTokenStore {
    /// A store at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS) with the default settings. Does not connect yet.
    ///
    /// ```
    /// use sinch_auth::token::RedisTokenStore;
    ///
    /// let store = RedisTokenStore::new("redis://127.0.0.1:6379/0")?;
    /// assert!(RedisTokenStore::new("not a url").is_err());
    /// # let _ = store;
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Self::builder(url).build()
    }

    /// Starts a builder for a store at `url`.
    pub fn builder(url: &str) -> RedisTokenStoreBuilder {
        RedisTokenStoreBuilder::new(Endpoint::Url(url.to_owned()))
    }

    /// Starts a builder for a store on a Redis Cluster, given the URLs
    /// (`redis://[user:password@]host:port`) of some of its nodes.
    ///
    /// ```
    /// use sinch_auth::token::RedisTokenStore;
    ///
    /// let store = RedisTokenStore::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()?;
    /// # let _ = store;
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn cluster<I, S>(nodes: I) -> RedisTokenStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisTokenStoreBuilder::new(Endpoint::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }

    /// Starts a builder for a store using a client you configured yourself
    /// (plain TCP; for TLS use a `rediss://` URL with [`builder`](Self::builder)).
    ///
    /// ```
    /// use sinch_auth::token::RedisTokenStore;
    ///
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let store = RedisTokenStore::with_client(client).build()?;
    /// # let _ = store;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_client(client: Client) -> RedisTokenStoreBuilder {
        RedisTokenStoreBuilder::new(Endpoint::Client(client))
    }

    /// The prefix of every key this store writes.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisTokenStore")
            .field("server", &format_args!("{}", inner.target))
            .field("key_prefix", &inner.prefix)
            .field("lock_ttl", &inner.lock_ttl)
            .field("max_wait", &inner.max_wait)
            .field("poll_interval", &inner.poll_interval)
            .field("op_timeout", &inner.op_timeout)
            .finish_non_exhaustive()
    }
}

impl TokenStore for RedisTokenStore {
    fn get_or_fetch(
        &self,
        key: StoreKey,
        must_outlive: Option<Duration>,
        fetch: TokenFuture,
    ) -> TokenFuture {
        let inner = self.inner.clone();
        Box::pin(async move { inner.get_or_fetch(key, must_outlive, fetch).await })
    }

    /// Remembers the token (a digest of it, the last 64 refused), never to
    /// take it from Redis again; the record holding it is deleted when next
    /// read, if it is still the same record.
    fn refused(&self, token: &RefusedToken) {
        self.inner.remember_refused(token);
    }
}

enum Endpoint {
    Url(String),
    Cluster(Vec<String>),
    Client(Client),
}

/// Configures a [`RedisTokenStore`].
///
/// | Setting | Default | Meaning |
/// |---|---|---|
/// | [`key_prefix`](Self::key_prefix) | `sinch-auth:` | prefix of every key written |
/// | [`lock_ttl`](Self::lock_ttl) | 5 s | the lock expires after this, should its holder die mid-fetch |
/// | [`max_wait`](Self::max_wait) | 7 s | longest a process waits for another's fetch before fetching itself |
/// | [`poll_interval`](Self::poll_interval) | 50 ms | how often a waiting process looks (±25 % jitter) |
/// | [`op_timeout`](Self::op_timeout) | 500 ms | limit on connecting and on each Redis command |
/// | [`ca_certificates_pem`](Self::ca_certificates_pem) | public web roots | whom to trust for `rediss://` |
/// | [`tls_config`](Self::tls_config) | rustls with the crate's provider (ring, or aws-lc-rs with `rustls-aws-lc`) | your own TLS client configuration |
///
/// `max_wait` is longer than `lock_ttl` so that, when a holder dies, one
/// waiter takes the expired lock over instead of the whole fleet fetching at
/// once. The layer's
/// [`fetch_timeout`](crate::token::RefreshConfig::fetch_timeout) (10 s)
/// bounds the whole exchange with the store: whatever `max_wait` says, the
/// wait ends when a quarter of that time is left, so the process still
/// fetches its own token in time.
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[must_use]
pub struct RedisTokenStoreBuilder {
    endpoint: Endpoint,
    tls: TlsOptions,
    prefix: String,
    lock_ttl: Duration,
    max_wait: Duration,
    poll_interval: Duration,
    op_timeout: Duration,
}

impl fmt::Debug for RedisTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStoreBuilder")
            .field("key_prefix", &self.prefix)
            .field("lock_ttl", &self.lock_ttl)
            .field("max_wait", &self.max_wait)
            .field("poll_interval", &self.poll_interval)
            .field("op_timeout", &self.op_timeout)
            .field("custom_ca", &self.tls.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisTokenStoreBuilder {
    /// The default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "sinch-auth:";

    fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            tls: TlsOptions::default(),
            prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            lock_ttl: Duration::from_secs(5),
            max_wait: Duration::from_secs(7),
            poll_interval: Duration::from_millis(50),
            op_timeout: Duration::from_millis(500),
        }
    }

    /// Prefix of every key the store writes (default `sinch-auth:`), to keep
    /// apart applications sharing a Redis and to scope an ACL.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the fetch lock lives if its holder never releases it
    /// (1 ms to 10 min; default 5 s).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Longest a process waits for another process's fetch before fetching
    /// itself (at most 10 min; zero fetches at once; default 7 s). Inside a
    /// layer the wait also ends when a quarter of the layer's
    /// [`fetch_timeout`](crate::token::RefreshConfig::fetch_timeout) is
    /// left, so a longer `max_wait` never makes the fetch time out.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// How often a waiting process looks for the token (1 ms to 10 s; default 50 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Limit on connecting and on each command (1 ms to 1 min; default 500 ms).
    /// Past it, Redis counts as unavailable and the token is fetched locally.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// For `rediss://`: trust these CA certificates (PEM) instead of the
    /// public web roots, as a private deployment needs. The server's
    /// certificate is verified either way, host name included.
    pub fn ca_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca_pem = Some(pem.into());
        self
    }

    /// For `rediss://`: your own rustls client configuration (client
    /// certificates, another crypto provider), used as given.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self
    }

    /// Builds the store. Fails on an unusable URL, certificate or an
    /// out-of-range setting.
    pub fn build(self) -> Result<RedisTokenStore, ConfigError> {
        let range = |setting, value: Duration, min, max, reason| {
            if value < min || value > max {
                Err(ConfigError::InvalidSetting { setting, reason })
            } else {
                Ok(())
            }
        };
        let ms = Duration::from_millis(1);
        range(
            "lock_ttl",
            self.lock_ttl,
            ms,
            Duration::from_secs(600),
            "must be between 1 ms and 10 min",
        )?;
        range(
            "max_wait",
            self.max_wait,
            Duration::ZERO,
            Duration::from_secs(600),
            "must be at most 10 min",
        )?;
        range(
            "poll_interval",
            self.poll_interval,
            ms,
            Duration::from_secs(10),
            "must be between 1 ms and 10 s",
        )?;
        range(
            "op_timeout",
            self.op_timeout,
            ms,
            Duration::from_secs(60),
            "must be between 1 ms and 1 min",
        )?;
        let target = match &self.endpoint {
            Endpoint::Url(url) => Target::node(url, &self.tls)?,
            Endpoint::Cluster(urls) => Target::cluster(urls, self.op_timeout, &self.tls)?,
            Endpoint::Client(client) => Target::client(client),
        };
        Ok(RedisTokenStore {
            inner: Arc::new(Inner {
                target,
                connection: Mutex::new(None),
                prefix: self.prefix,
                lock_ttl: self.lock_ttl,
                max_wait: self.max_wait,
                poll_interval: self.poll_interval,
                op_timeout: self.op_timeout,
                refused: Mutex::new(VecDeque::new()),
            }),
        })
    }
}

/// Why Redis could not be used; logged, never returned to the cache. It
/// carries no text from Redis (see [`ErrorSummary`]).
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("redis {op} timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("redis {op} failed ({summary})")]
    Redis {
        op: &'static str,
        summary: ErrorSummary,
    },
}

impl StoreError {
    /// Redis could not be reached at all (as opposed to failing a command).
    fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { op: "connect", .. } | Self::Redis { op: "connect", .. }
        )
    }
}

struct Inner {
    target: Target,
    /// `None` until the first use and after any failure: the next use connects again.
    connection: Mutex<Option<Connection>>,
    prefix: String,
    lock_ttl: Duration,
    max_wait: Duration,
    poll_interval: Duration,
    op_timeout: Duration,
    /// Tokens the API refused (401 `expired`): never handed out again.
    refused: Mutex<VecDeque<RefusedToken>>,
}

struct Keys {
    token: String,
    lock: String,
    failed: String,
}

/// A token as sealed in Redis (format 3). Its remaining life is the least
/// of the key's `PTTL`, its issued lifetime and the time to `expires_at_ms`.
#[derive(Serialize, Deserialize)]
struct Record {
    token: String,
    /// The lifetime it was issued with: the most life it can have left,
    /// and the base of the 15 % rule.
    lifetime_ms: u64,
    /// When it expires, in milliseconds since the Unix epoch by the
    /// writer's wall clock.
    expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// A refusal from the token endpoint, shared with the fleet for a moment
/// (format 3): it holds the fleet off from `at_ms` for `hold_ms`, whatever
/// the key's `PTTL` says.
#[derive(Serialize, Deserialize)]
struct Refusal {
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Whether the endpoint sent `Retry-After`.
    #[serde(default)]
    retry_after: bool,
    /// When the endpoint refused, in milliseconds since the Unix epoch by
    /// the writer's wall clock.
    at_ms: u64,
    /// How long the fleet holds off from `at_ms` (at most a minute).
    hold_ms: u64,
}

/// What Redis holds for a key right now.
struct Snapshot {
    /// The token, if one is there, good, and outlives what the asker holds.
    token: Option<Token>,
    /// A refusal, with the hold it has left.
    refusal: Option<(Refusal, Duration)>,
}

/// One record as read: its length, its value (or, if too long to read,
/// its first bytes) and its `PTTL`.
type RawRecord = (u64, Option<Vec<u8>>, i64);

/// The limits one `get_or_fetch` runs under. Inside a layer, the refresher
/// abandons the fetch at a deadline `D`, `T` after it started (its
/// `fetch_timeout`): waiting ends by `D - T/4`, so a local fetch always
/// has a quarter of the time; a command started before that ends by
/// `D - T/8`; sharing the result and unlocking end by `D - T/32`.
struct Call {
    /// The layer's wall clock (the system clock outside a layer).
    clock: Arc<dyn Clock>,
    /// Waiting for another process's fetch ends here (`max_wait`, or
    /// earlier to leave the fetch its time).
    wait_until: Instant,
    /// Redis commands before the fetch end here.
    redis_until: Option<Instant>,
    /// Redis commands after the fetch (sharing its result, unlocking) end
    /// here, before the refresher abandons the fetch.
    after_until: Option<Instant>,
}

impl Call {
    fn new(max_wait: Duration) -> Self {
        let now = Instant::now();
        let context = FETCH_CONTEXT.try_with(Clone::clone).ok();
        let clock = context.as_ref().map_or_else(
            || Arc::new(SystemClock) as Arc<dyn Clock>,
            |c| c.clock.clone(),
        );
        let waited = later(now, max_wait);
        let Some(deadline) = context.map(|c| c.deadline) else {
            return Self {
                clock,
                wait_until: waited,
                redis_until: None,
                after_until: None,
            };
        };
        let left = deadline.saturating_duration_since(now);
        Self {
            clock,
            wait_until: waited.min(deadline - left / 4),
            redis_until: Some(deadline - left / 8),
            after_until: Some(deadline - left / 32),
        }
    }

    /// The wall clock now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64 {
        unix_millis(self.clock.now())
    }
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, millis)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Only refusals about the endpoint itself are the fleet's business.
fn shareable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Seals `plaintext` under the store key, bound to the Redis key it goes to.
fn seal(key: &StoreKey, redis_key: &str, plaintext: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut nonce).ok()?;
    let cipher = XChaCha20Poly1305::new(key.record_key().into());
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: redis_key.as_bytes(),
            },
        )
        .ok()?;
    let mut out = Vec::with_capacity(1 + nonce.len() + sealed.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Some(out)
}

/// What opening a sealed record found.
enum Opened {
    Plain(Zeroizing<Vec<u8>>),
    /// Another format version (an older or newer release of this store).
    OtherVersion,
    /// Not a record sealed with this key for this Redis key.
    Forged,
}

/// Opens what [`seal`] made for this key and Redis key.
fn open(key: &StoreKey, redis_key: &str, sealed: &[u8]) -> Opened {
    let Some((&version, rest)) = sealed.split_first() else {
        return Opened::Forged;
    };
    if version != RECORD_VERSION {
        return Opened::OtherVersion;
    }
    let Some((nonce, body)) = rest.split_first_chunk::<24>() else {
        return Opened::Forged;
    };
    let cipher = XChaCha20Poly1305::new(key.record_key().into());
    cipher
        .decrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: body,
                aad: redis_key.as_bytes(),
            },
        )
        .map_or(Opened::Forged, |plain| Opened::Plain(Zeroizing::new(plain)))
}

/// A stored record's verdict.
enum Checked<T> {
    Absent,
    Good(T),
    /// Not usable, but possibly another release's or clock's: leave it.
    Ignored(&'static str),
    /// Not usable by anyone (forged, oversized, past its own expiry, refused
    /// by the API): delete it, if it is still there.
    Bad(&'static str),
}

/// The wall-clock life left of something that started at `start_ms` and
/// lasts `length_ms`, read at `now_ms`; `None` if it starts further ahead
/// of the reader's clock than the fleet's clocks may disagree.
fn life_left(start_ms: u64, length_ms: u64, now_ms: u64) -> Option<Duration> {
    if start_ms > now_ms.saturating_add(millis(MAX_CLOCK_SKEW)) {
        return None;
    }
    let end_ms = start_ms.saturating_add(length_ms);
    Some(Duration::from_millis(
        end_ms.saturating_sub(now_ms).min(length_ms),
    ))
}

impl Inner {
    fn keys(&self, key: &StoreKey) -> Keys {
        let p = &self.prefix;
        let name = key.name();
        Keys {
            token: format!("{p}{{{name}}}:token"),
            lock: format!("{p}{{{name}}}:lock"),
            failed: format!("{p}{{{name}}}:failed"),
        }
    }

    /// The limit on the next command: `op_timeout`, cut to what is left
    /// until `until`.
    fn limit(&self, until: Option<Instant>) -> Duration {
        until.map_or(self.op_timeout, |until| {
            until
                .saturating_duration_since(Instant::now())
                .min(self.op_timeout)
        })
    }

    async fn connection(&self, limit: Duration) -> Result<Connection, StoreError> {
        if let Some(connection) = guard(&self.connection).clone() {
            return Ok(connection);
        }
        if limit.is_zero() {
            return Err(StoreError::Timeout {
                op: "connect",
                after: limit,
            });
        }
        let connection = tokio::time::timeout(limit, self.target.connect(limit))
            .await
            .map_err(|_| StoreError::Timeout {
                op: "connect",
                after: limit,
            })?
            .map_err(|source| StoreError::Redis {
                op: "connect",
                summary: ErrorSummary::of(&source),
            })?;
        *guard(&self.connection) = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command within the op timeout, and before `until`; any
    /// failure drops the connection.
    async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        until: Option<Instant>,
        command: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = async {
            let connection = self.connection(self.limit(until)).await?;
            let limit = self.limit(until);
            if limit.is_zero() {
                return Err(StoreError::Timeout { op, after: limit });
            }
            match tokio::time::timeout(limit, command(connection)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(source)) => Err(StoreError::Redis {
                    op,
                    summary: ErrorSummary::of(&source),
                }),
                Err(_) => Err(StoreError::Timeout { op, after: limit }),
            }
        }
        .await;
        if result.is_err() {
            *guard(&self.connection) = None;
        }
        result
    }

    fn was_refused(&self, token: &str) -> bool {
        guard(&self.refused).iter().any(|r| r.is(token))
    }

    fn remember_refused(&self, token: &RefusedToken) {
        let mut refused = guard(&self.refused);
        if refused.contains(token) {
            return;
        }
        if refused.len() >= REFUSED_REMEMBERED {
            refused.pop_front();
        }
        refused.push_back(token.clone());
    }

    fn check_token(
        &self,
        key: &StoreKey,
        keys: &Keys,
        raw: &[u8],
        ttl_ms: i64,
        now_ms: u64,
    ) -> Checked<(Record, Duration)> {
        // We always set an expiry; a record without one is not ours.
        let Ok(ttl) = u64::try_from(ttl_ms) else {
            return Checked::Bad("it has no expiry");
        };
        let plain = match open(key, &keys.token, raw) {
            Opened::Plain(plain) => plain,
            Opened::OtherVersion => return Checked::Ignored("it is in another format version"),
            Opened::Forged => return Checked::Bad("it does not open with this key"),
        };
        let Ok(record) = serde_json::from_slice::<Record>(&plain) else {
            return Checked::Bad("it is not a token record");
        };
        if record.token.is_empty() || scheme::bearer(&record.token).is_err() {
            return Checked::Bad("its token cannot be sent in a header");
        }
        if record.lifetime_ms == 0 {
            return Checked::Bad("its lifetime is zero");
        }
        if self.was_refused(&record.token) {
            return Checked::Bad("the API refused its token as expired");
        }
        let issued_ms = record.expires_at_ms.saturating_sub(record.lifetime_ms);
        let Some(left) = life_left(issued_ms, record.lifetime_ms, now_ms) else {
            return Checked::Ignored("it was issued ahead of this process's clock");
        };
        if left.is_zero() {
            return Checked::Bad("its token has expired");
        }
        // Redis's clock may shorten a record's life, never lengthen it.
        Checked::Good((record, left.min(Duration::from_millis(ttl))))
    }

    fn check_refusal(
        key: &StoreKey,
        keys: &Keys,
        raw: &[u8],
        ttl_ms: i64,
        now_ms: u64,
    ) -> Checked<(Refusal, Duration)> {
        let ttl = match u64::try_from(ttl_ms) {
            Ok(ms) if Duration::from_millis(ms) <= MAX_FAILURE_HOLD => Duration::from_millis(ms),
            _ => return Checked::Bad("it would hold the fleet off too long"),
        };
        let plain = match open(key, &keys.failed, raw) {
            Opened::Plain(plain) => plain,
            Opened::OtherVersion => return Checked::Ignored("it is in another format version"),
            Opened::Forged => return Checked::Bad("it does not open with this key"),
        };
        let refusal = match serde_json::from_slice::<Refusal>(&plain) {
            Ok(refusal) if StatusCode::from_u16(refusal.status).is_ok_and(shareable) => refusal,
            _ => return Checked::Bad("it is not a shareable refusal"),
        };
        if Duration::from_millis(refusal.hold_ms) > MAX_FAILURE_HOLD {
            return Checked::Bad("it would hold the fleet off too long");
        }
        let Some(left) = life_left(refusal.at_ms, refusal.hold_ms, now_ms) else {
            return Checked::Ignored("it was made ahead of this process's clock");
        };
        if left.is_zero() {
            return Checked::Bad("its hold is over");
        }
        Checked::Good((refusal, left.min(ttl)))
    }

    async fn read(
        &self,
        keys: &Keys,
        store_key: &StoreKey,
        must_outlive: Option<Duration>,
        call: &Call,
    ) -> Result<Snapshot, StoreError> {
        let mut invocation = READ.prepare_invoke();
        invocation
            .key(&keys.token)
            .key(&keys.failed)
            .arg(MAX_RECORD_BYTES)
            .arg(RECORD_ID_BYTES);
        let ((token_size, raw, ttl_ms), (refusal_size, raw_refusal, refusal_ttl_ms)): (
            RawRecord,
            RawRecord,
        ) = self
            .run("read", call.redis_until, |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let now_ms = call.now_ms();
        let token = match &raw {
            _ if token_size > MAX_RECORD_BYTES => Checked::Bad("it is too large to be ours"),
            None => Checked::Absent,
            Some(raw) => self.check_token(store_key, keys, raw, ttl_ms, now_ms),
        };
        let token = match token {
            Checked::Good((record, remaining)) => {
                let lifetime = Duration::from_millis(record.lifetime_ms);
                let needed = must_outlive
                    .unwrap_or_default()
                    .saturating_add(lifetime.mul_f64(MIN_EXTENSION));
                (remaining >= needed).then(|| {
                    let token = Token::new(record.token, remaining);
                    match record.scope {
                        Some(scope) => token.with_scope(scope),
                        None => token,
                    }
                })
            }
            Checked::Bad(why) => {
                let record = (token_size, raw, ttl_ms);
                self.discard(store_key, "token", &keys.token, &record, why, call)
                    .await;
                None
            }
            Checked::Ignored(why) => {
                tracing::debug!(target: "sinch_auth", store_key = ?store_key, record = "token", why, "ignoring the token record in redis");
                None
            }
            Checked::Absent => None,
        };
        let refusal = match &raw_refusal {
            _ if refusal_size > MAX_RECORD_BYTES => Checked::Bad("it is too large to be ours"),
            None => Checked::Absent,
            Some(raw) => Self::check_refusal(store_key, keys, raw, refusal_ttl_ms, now_ms),
        };
        let refusal = match refusal {
            Checked::Good(refusal) => Some(refusal),
            Checked::Bad(why) => {
                let record = (refusal_size, raw_refusal, refusal_ttl_ms);
                self.discard(store_key, "refusal", &keys.failed, &record, why, call)
                    .await;
                None
            }
            Checked::Ignored(why) => {
                tracing::debug!(target: "sinch_auth", store_key = ?store_key, record = "refusal", why, "ignoring the refusal record in redis");
                None
            }
            Checked::Absent => None,
        };
        Ok(Snapshot { token, refusal })
    }

    /// Deletes a bad record, unless it was replaced meanwhile. It is named
    /// by its length and first bytes, never sent back whole.
    async fn discard(
        &self,
        store_key: &StoreKey,
        record: &'static str,
        redis_key: &str,
        (size, raw, _): &RawRecord,
        why: &'static str,
        call: &Call,
    ) {
        tracing::warn!(
            target: "sinch_auth",
            store_key = ?store_key,
            record,
            bytes = size,
            why,
            "redis holds a record this store cannot use; deleting it and asking the token endpoint"
        );
        let Some(raw) = raw else { return };
        let id = &raw[..raw.len().min(RECORD_ID_BYTES)];
        let mut invocation = DELETE_RECORD.prepare_invoke();
        invocation.key(redis_key).arg(id).arg(*size);
        if let Err(error) = self
            .run("delete bad record", call.redis_until, |mut c| async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await
        {
            tracing::debug!(target: "sinch_auth", error = %error, "could not delete the bad record; a fetch will overwrite it");
        }
    }

    async fn try_lock(
        self: &Arc<Self>,
        keys: &Keys,
        call: &Call,
    ) -> Result<Option<Lock>, StoreError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(&keys.lock)
            .arg(&owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.lock_ttl));
        let reply: Value = self
            .run("lock", call.redis_until, |mut c| async move {
                cmd.query_async(&mut c).await
            })
            .await?;
        Ok((!matches!(reply, Value::Nil)).then(|| Lock {
            inner: self.clone(),
            key: keys.lock.clone(),
            owner,
            held: true,
        }))
    }

    /// Stores a token, sealed, living as long as the source says (the
    /// token arrives with its lifetime already settled), stamped with its
    /// expiry by the wall clock. The lock holder forces: it found what is
    /// there not good enough. Others keep a longer-lived token that is
    /// already there.
    async fn save(
        &self,
        key: &StoreKey,
        keys: &Keys,
        token: &Token,
        force: bool,
        call: &Call,
    ) -> Result<(), StoreError> {
        let lifetime_ms = millis(token.expires_in());
        let value = token.value().expose_secret();
        // What the cache would refuse, the fleet must not be handed.
        if lifetime_ms == 0 || value.is_empty() || scheme::bearer(value).is_err() {
            return Ok(());
        }
        let record = Record {
            token: value.to_owned(),
            lifetime_ms,
            expires_at_ms: call.now_ms().saturating_add(lifetime_ms),
            scope: token.scope().map(str::to_owned),
        };
        let json = serde_json::to_vec(&record).map(Zeroizing::new);
        drop(Zeroizing::new(record.token));
        let Some(sealed) = json.ok().and_then(|json| seal(key, &keys.token, &json)) else {
            return Ok(());
        };
        if sealed.len() as u64 > MAX_RECORD_BYTES {
            tracing::warn!(
                target: "sinch_auth",
                store_key = ?key,
                bytes = sealed.len(),
                limit = MAX_RECORD_BYTES,
                "token too large to share through redis; other processes will fetch their own"
            );
            return Ok(());
        }
        let mut invocation = SAVE.prepare_invoke();
        invocation
            .key(&keys.token)
            .key(&keys.failed)
            .arg(sealed)
            .arg(lifetime_ms)
            .arg(if force { "1" } else { "0" });
        self.run("save", call.after_until, |mut c| async move {
            invocation.invoke_async::<i64>(&mut c).await
        })
        .await
        .map(drop)
    }

    /// Tells the fleet the endpoint refused (429, 5xx), so it backs off together.
    async fn share_refusal(
        &self,
        key: &StoreKey,
        keys: &Keys,
        error: &FetchError,
        call: &Call,
    ) -> Result<(), StoreError> {
        let FetchError::Endpoint {
            status,
            error,
            retry_after,
            ..
        } = error
        else {
            return Ok(());
        };
        if !shareable(*status) {
            return Ok(());
        }
        let hold = retry_after
            .unwrap_or(DEFAULT_FAILURE_HOLD)
            .min(MAX_FAILURE_HOLD);
        if hold.is_zero() {
            return Ok(());
        }
        let refusal = Refusal {
            status: status.as_u16(),
            error: error.clone(),
            retry_after: retry_after.is_some(),
            at_ms: call.now_ms(),
            hold_ms: millis(hold),
        };
        let Some(sealed) = serde_json::to_vec(&refusal)
            .ok()
            .and_then(|json| seal(key, &keys.failed, &json))
            .filter(|sealed| sealed.len() as u64 <= MAX_RECORD_BYTES)
        else {
            return Ok(());
        };
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(&keys.failed)
            .arg(sealed)
            .arg("PX")
            .arg(millis(hold));
        self.run("share failure", call.after_until, |mut c| async move {
            cmd.query_async::<Value>(&mut c).await
        })
        .await
        .map(drop)
    }

    async fn release(&self, key: &str, owner: &str, until: Option<Instant>) {
        let mut invocation = UNLOCK.prepare_invoke();
        invocation.key(key).arg(owner);
        if let Err(error) = self
            .run("unlock", until, |mut c| async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await
        {
            tracing::debug!(target: "sinch_auth", error = %error, "could not release the redis fetch lock; it will expire");
        }
    }

    async fn get_or_fetch(
        self: Arc<Self>,
        key: StoreKey,
        must_outlive: Option<Duration>,
        fetch: TokenFuture,
    ) -> Result<Token, FetchError> {
        let keys = self.keys(&key);
        // The wait ends by `max_wait`, and early enough that the fetch
        // still has a quarter of the refresher's time for itself.
        let call = Call::new(self.max_wait);
        // Redis unreachable: fetch locally at once. Redis reached, then
        // failing a command (a slot moving in a Cluster, a failover, a node
        // still starting): look again a few times before giving up on the
        // fleet's fetch.
        let mut glitches = 0;
        loop {
            let step = match self.read(&keys, &key, must_outlive, &call).await {
                Ok(snapshot) => {
                    if let Some(token) = snapshot.token {
                        tracing::debug!(target: "sinch_auth", store_key = ?key, "token taken from redis");
                        return Ok(token);
                    }
                    if let Some((refusal, hold)) = snapshot.refusal {
                        tracing::debug!(
                            target: "sinch_auth",
                            store_key = ?key,
                            status = refusal.status,
                            "another process was just refused by the token endpoint; backing off with it"
                        );
                        return Err(refusal.into_error(hold));
                    }
                    self.try_lock(&keys, &call).await
                }
                Err(error) => Err(error),
            };
            match step {
                Ok(Some(lock)) => {
                    return self
                        .fetch_for_fleet(&key, &keys, lock, must_outlive, fetch, &call)
                        .await;
                }
                Ok(None) => glitches = 0,
                Err(error) => {
                    glitches += 1;
                    if error.is_unreachable()
                        || glitches > MAX_GLITCHES
                        || Instant::now() >= call.wait_until
                    {
                        return fetch_locally(&key, &error, fetch).await;
                    }
                    tracing::debug!(target: "sinch_auth", store_key = ?key, error = %error, "redis failed a command while this process waited; looking again");
                }
            }
            let now = Instant::now();
            if now >= call.wait_until {
                tracing::warn!(
                    target: "sinch_auth",
                    store_key = ?key,
                    max_wait_ms = millis(self.max_wait),
                    "another process has held the redis fetch lock too long; fetching the token locally"
                );
                let result = fetch.await;
                if let Ok(token) = &result {
                    if let Err(error) = self.save(&key, &keys, token, false, &call).await {
                        tracing::debug!(target: "sinch_auth", error = %error, "could not store the token in redis");
                    }
                }
                return result;
            }
            let pause = self.poll_interval.mul_f64(0.75 + fastrand::f64() / 2.0);
            tokio::time::sleep(pause.min(call.wait_until - now)).await;
        }
    }

    async fn fetch_for_fleet(
        &self,
        key: &StoreKey,
        keys: &Keys,
        lock: Lock,
        must_outlive: Option<Duration>,
        fetch: TokenFuture,
        call: &Call,
    ) -> Result<Token, FetchError> {
        // Another process may have finished a fetch between our read and our lock.
        match self.read(keys, key, must_outlive, call).await {
            Ok(Snapshot {
                token: Some(token), ..
            }) => {
                lock.release(call.after_until).await;
                return Ok(token);
            }
            Ok(Snapshot {
                refusal: Some((refusal, hold)),
                ..
            }) => {
                lock.release(call.after_until).await;
                return Err(refusal.into_error(hold));
            }
            Ok(_) => {}
            Err(error) => return fetch_locally(key, &error, fetch).await,
        }
        tracing::debug!(target: "sinch_auth", store_key = ?key, "fetching the token for the fleet");
        let result = fetch.await;
        let shared = match &result {
            Ok(token) => self.save(key, keys, token, true, call).await,
            Err(error) => self.share_refusal(key, keys, error, call).await,
        };
        if let Err(error) = shared {
            tracing::warn!(
                target: "sinch_auth",
                store_key = ?key,
                error = %error,
                "could not share the fetch result through redis; other processes will fetch their own"
            );
        }
        lock.release(call.after_until).await;
        result
    }
}

impl Refusal {
    fn into_error(self, hold: Duration) -> FetchError {
        FetchError::Endpoint {
            status: StatusCode::from_u16(self.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            error: self.error,
            description: Some("shared through redis from another process's fetch".to_owned()),
            retry_after: self.retry_after.then_some(hold),
        }
    }
}

async fn fetch_locally(
    key: &StoreKey,
    error: &StoreError,
    fetch: TokenFuture,
) -> Result<Token, FetchError> {
    tracing::warn!(
        target: "sinch_auth",
        store_key = ?key,
        error = %error,
        "redis token store unavailable; fetching the token locally"
    );
    fetch.await
}

/// The fetch lock. Released explicitly; if the fetch is abandoned (the
/// refresher's timeout, shutdown) or no time is left to release it, it is
/// released in the background.
struct Lock {
    inner: Arc<Inner>,
    key: String,
    owner: String,
    held: bool,
}

impl Lock {
    async fn release(mut self, until: Option<Instant>) {
        if until.is_some_and(|until| until <= Instant::now()) {
            return; // dropped: released in the background
        }
        self.held = false;
        self.inner.release(&self.key, &self.owner, until).await;
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            let key = std::mem::take(&mut self.key);
            let owner = std::mem::take(&mut self.owner);
            runtime.spawn(async move { inner.release(&key, &owner, None).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccessKey;

    fn store_key(secret: &str) -> StoreKey {
        StoreKey::for_access_key(
            "http://127.0.0.1:1/oauth2/token",
            &AccessKey::new("p", "k", secret).unwrap(),
        )
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let setting = |b: RedisTokenStoreBuilder| match b.build() {
            Err(ConfigError::InvalidSetting { setting, .. }) => setting,
            other => panic!("expected InvalidSetting, got {other:?}"),
        };
        let b = || RedisTokenStore::builder("redis://127.0.0.1:1/");
        assert_eq!(setting(b().lock_ttl(Duration::ZERO)), "lock_ttl");
        assert_eq!(setting(b().lock_ttl(Duration::from_secs(3600))), "lock_ttl");
        assert_eq!(setting(b().poll_interval(Duration::ZERO)), "poll_interval");
        assert_eq!(setting(b().op_timeout(Duration::ZERO)), "op_timeout");
        assert_eq!(setting(b().max_wait(Duration::from_secs(601))), "max_wait");
        assert!(b().max_wait(Duration::ZERO).build().is_ok());
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "",
            "http://127.0.0.1/",
            "redis://:sekrit@[::1/",
            "rediss://:sekrit@[::1/",
        ] {
            let error = RedisTokenStore::new(url).unwrap_err();
            assert!(matches!(error, ConfigError::InvalidUrl { .. }), "{url}");
            assert!(!error.to_string().contains("sekrit"));
        }
        // A cluster's node URLs are all TLS or none; all TLS builds.
        let error = RedisTokenStore::cluster(["rediss://127.0.0.1:7000", "redis://127.0.0.1:7001"])
            .build()
            .unwrap_err();
        assert!(matches!(
            error,
            ConfigError::InvalidUrl {
                field: "redis cluster urls",
                ..
            }
        ));
        assert!(
            RedisTokenStore::cluster(["rediss://127.0.0.1:7000"])
                .build()
                .is_ok()
        );
    }

    #[test]
    fn debug_shows_the_server_but_not_the_password() {
        for url in [
            "redis://app:pa55word-x@127.0.0.1:6390/2",
            "rediss://app:pa55word-x@127.0.0.1:6390/2",
        ] {
            let store = RedisTokenStore::builder(url)
                .key_prefix("svc:")
                .build()
                .unwrap();
            let shown = format!("{store:?}");
            assert!(shown.contains("127.0.0.1:6390"), "{shown}");
            assert!(shown.contains("svc:"), "{shown}");
            assert!(!shown.contains("pa55word-x"), "{shown}");
            assert_eq!(store.key_prefix(), "svc:");
        }
    }

    #[test]
    fn keys_share_one_hash_tag_and_carry_the_prefix() {
        let store = RedisTokenStore::builder("redis://127.0.0.1/")
            .key_prefix("p:")
            .build()
            .unwrap();
        let key = store_key("s");
        let keys = store.inner.keys(&key);
        let name = key.name();
        assert_eq!(keys.token, format!("p:{{{name}}}:token"));
        assert_eq!(keys.lock, format!("p:{{{name}}}:lock"));
        assert_eq!(keys.failed, format!("p:{{{name}}}:failed"));
    }

    fn opened(opened: Opened) -> Option<Vec<u8>> {
        match opened {
            Opened::Plain(plain) => Some(plain.to_vec()),
            Opened::OtherVersion | Opened::Forged => None,
        }
    }

    #[test]
    fn a_record_opens_only_with_its_key_under_its_redis_key() {
        let (key, other) = (store_key("secret-1"), store_key("secret-2"));
        let sealed = seal(&key, "k:token", b"payload").unwrap();
        assert_eq!(sealed[0], 3, "format 3");
        assert_eq!(
            opened(open(&key, "k:token", &sealed)).as_deref(),
            Some(&b"payload"[..])
        );
        assert!(opened(open(&other, "k:token", &sealed)).is_none());
        assert!(
            opened(open(&key, "k:failed", &sealed)).is_none(),
            "bound to its Redis key"
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(open(&key, "k:token", &flipped), Opened::Forged));
        assert!(matches!(open(&key, "k:token", b""), Opened::Forged));
        assert!(matches!(open(&key, "k:token", &[3u8; 20]), Opened::Forged));
        let mut older = sealed.clone();
        older[0] = 2;
        assert!(matches!(
            open(&key, "k:token", &older),
            Opened::OtherVersion
        ));
        assert!(!sealed.windows(7).any(|w| w == b"payload"));
    }

    #[test]
    fn life_left_never_exceeds_the_length_nor_trusts_the_far_future() {
        let skew = millis(MAX_CLOCK_SKEW);
        let now = 1_000_000_000;
        assert_eq!(life_left(now, 60_000, now), Some(Duration::from_secs(60)));
        assert_eq!(
            life_left(now - 20_000, 60_000, now),
            Some(Duration::from_secs(40))
        );
        assert_eq!(life_left(now - 60_000, 60_000, now), Some(Duration::ZERO));
        assert_eq!(life_left(0, 60_000, now), Some(Duration::ZERO));
        // A writer's clock a little ahead: never more than the length.
        assert_eq!(
            life_left(now + skew, 60_000, now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(life_left(now + skew + 1, 60_000, now), None);
        assert_eq!(
            life_left(u64::MAX, u64::MAX, u64::MAX),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn refused_tokens_are_remembered_up_to_a_bound_oldest_forgotten_first() {
        let store = RedisTokenStore::new("redis://127.0.0.1:1/").unwrap();
        let inner = &store.inner;
        for n in 0..REFUSED_REMEMBERED {
            store.refused(&RefusedToken::of(&format!("tok-{n}")));
        }
        store.refused(&RefusedToken::of("tok-0")); // already known: no room taken
        assert!((0..REFUSED_REMEMBERED).all(|n| inner.was_refused(&format!("tok-{n}"))));
        assert!(!inner.was_refused("tok-never"));
        store.refused(&RefusedToken::of("tok-new"));
        assert!(inner.was_refused("tok-new"));
        assert!(!inner.was_refused("tok-0"), "the oldest is forgotten");
        assert!(inner.was_refused("tok-1"));
        assert_eq!(guard(&inner.refused).len(), REFUSED_REMEMBERED);
    }

    #[test]
    fn only_endpoint_refusals_are_shareable() {
        for status in [429, 500, 502, 503] {
            assert!(shareable(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [400, 401, 403, 404] {
            assert!(
                !shareable(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }
}
