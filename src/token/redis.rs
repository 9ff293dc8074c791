//! Fleet-wide token sharing through Redis (feature `redis`); see [`RedisTokenStore`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, RedisResult, Script, Value};
use http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::cache::jwt_expiry;
use super::{StoreKey, Token, TokenFuture, TokenStore};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, FetchError};

/// A stored token is taken only if it outlives the asker's token by at least
/// this share of its lifetime. The asker's own token outlives `held_until`
/// by the cache's expiry skew, at most 10 % of a lifetime, so 15 % never
/// hands a process back the token it is replacing.
const MIN_EXTENSION: f64 = 0.15;

/// The longest the fleet holds off after the token endpoint refused a fetch.
const MAX_FAILURE_HOLD: Duration = Duration::from_secs(60);

/// How long the fleet holds off after a refusal without `Retry-After`: the
/// first backoff step of spec §2.
const DEFAULT_FAILURE_HOLD: Duration = Duration::from_secs(1);

/// Stores the token, unless (without `force`) a longer-lived one is there;
/// clears the failure record.
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

/// Deletes the lock only if this process still owns it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
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
/// # What it does
///
/// Each process keeps its own in-process cache and background refresher; the
/// store is asked only when that refresher would fetch (cold start, refresh
/// ahead of expiry, 401-`expired`, rotation), never on the request path.
/// For one credential identity ([`StoreKey`]: a SHA-256 of token URL,
/// project id and key id, never the secret) Redis holds:
///
/// - `{prefix}token:{key}`: the token with its original lifetime, set with a
///   `PX` expiry equal to its remaining lifetime. Remaining lifetimes are read
///   with `PTTL`, from Redis's clock, so the fleet's clocks need not agree.
/// - `{prefix}lock:{key}`: the single-flight lock, `SET NX PX` with a random
///   owner id; released by a compare-and-delete script, so a process never
///   removes a lock that expired and was taken by another.
/// - `{prefix}failed:{key}`: for a short while after the token endpoint
///   refused a fetch (429 most likely), its status and `Retry-After`, so the
///   rest of the fleet backs off with the process that saw it instead of
///   asking again at once (spec §2's rate limit).
///
/// A process asking for a token takes the stored one if it outlives the
/// token the process already holds (`held_until`) by at least 15 % of its
/// lifetime: a process refreshing ahead of expiry never gets its own
/// soon-to-expire token back. Otherwise it takes the lock and fetches, or
/// waits while another process does, polling every
/// [`poll_interval`](RedisTokenStoreBuilder::poll_interval) for at most
/// [`max_wait`](RedisTokenStoreBuilder::max_wait); after that it fetches
/// locally.
///
/// If Redis cannot be reached, times out or errs, the process logs a warning
/// and fetches locally: the store never fails a fetch that the token endpoint
/// would have answered. The connection is made again on the next fetch, so
/// sharing resumes when Redis is back.
///
/// # Security
///
/// A token in Redis is as good as the access key it came from, for its
/// lifetime: anyone who can read the keys under the prefix can call Sinch's
/// APIs as you. Give the store its own Redis user, limited to the prefix and
/// to the commands it uses:
///
/// ```text
/// ACL SETUSER sinch-auth on >password resetkeys ~billing-service:sinch-auth:* resetchannels
///     -@all +get +set +pttl +del +multi +exec +evalsha +script|load
/// ```
///
/// Keep Redis on a private network, and `MONITOR` and `SLOWLOG` away from
/// other users (they show command arguments). The store never logs a token,
/// and its `Debug` shows neither tokens nor the Redis password.
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone)]
pub struct RedisTokenStore {
    inner: Arc<Inner>,
}

impl RedisTokenStore {
    /// A store at `url` (`redis://[user:password@]host[:port][/db]`) with
    /// the default settings. Does not connect yet.
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
        let client = Client::open(url).map_err(|_| ConfigError::InvalidUrl {
            field: "redis url",
            reason: if url.starts_with("rediss://") {
                "rediss:// needs the redis crate's TLS support, which this build does not enable"
            } else {
                "expected redis://[user:password@]host[:port][/db]"
            },
        });
        RedisTokenStoreBuilder::new(client)
    }

    /// Starts a builder for a store using a client you configured yourself.
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
        RedisTokenStoreBuilder::new(Ok(client))
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
            .field(
                "server",
                &format_args!("{}", inner.client.get_connection_info().addr()),
            )
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
        held_until: Option<SystemTime>,
        fetch: TokenFuture,
    ) -> TokenFuture {
        let inner = self.inner.clone();
        Box::pin(async move { inner.get_or_fetch(key, held_until, fetch).await })
    }
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
///
/// `max_wait` is longer than `lock_ttl` so that, when a holder dies, one
/// waiter takes the expired lock over instead of the whole fleet fetching at
/// once; both are below the layer's
/// [`fetch_timeout`](crate::token::RefreshConfig::fetch_timeout) (10 s),
/// which bounds the whole exchange with the store.
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[must_use]
pub struct RedisTokenStoreBuilder {
    client: Result<Client, ConfigError>,
    prefix: String,
    lock_ttl: Duration,
    max_wait: Duration,
    poll_interval: Duration,
    op_timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for RedisTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStoreBuilder")
            .field("key_prefix", &self.prefix)
            .field("lock_ttl", &self.lock_ttl)
            .field("max_wait", &self.max_wait)
            .field("poll_interval", &self.poll_interval)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTokenStoreBuilder {
    /// The default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "sinch-auth:";

    fn new(client: Result<Client, ConfigError>) -> Self {
        Self {
            client,
            prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            lock_ttl: Duration::from_secs(5),
            max_wait: Duration::from_secs(7),
            poll_interval: Duration::from_millis(50),
            op_timeout: Duration::from_millis(500),
            clock: Arc::new(SystemClock),
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
    /// itself (at most 10 min; zero fetches at once; default 7 s).
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

    /// The wall clock `held_until` is read against. Use the clock given to
    /// the layer ([`SinchAuthBuilder::clock`](crate::SinchAuthBuilder::clock));
    /// default the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store. Fails on an unusable URL or an out-of-range setting.
    pub fn build(self) -> Result<RedisTokenStore, ConfigError> {
        let client = self.client?;
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
        Ok(RedisTokenStore {
            inner: Arc::new(Inner {
                client,
                connection: Mutex::new(None),
                prefix: self.prefix,
                lock_ttl: self.lock_ttl,
                max_wait: self.max_wait,
                poll_interval: self.poll_interval,
                op_timeout: self.op_timeout,
                clock: self.clock,
            }),
        })
    }
}

/// Why Redis could not be used; logged, never returned to the cache.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("redis {op} timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("redis {op} failed: {source}")]
    Redis {
        op: &'static str,
        #[source]
        source: ::redis::RedisError,
    },
}

struct Inner {
    client: Client,
    /// `None` until the first use and after any failure: the next use connects again.
    connection: Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    lock_ttl: Duration,
    max_wait: Duration,
    poll_interval: Duration,
    op_timeout: Duration,
    clock: Arc<dyn Clock>,
}

struct Keys {
    token: String,
    lock: String,
    failed: String,
}

/// A token as stored. Only this crate reads it back.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    token: Cow<'a, str>,
    lifetime_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// A refusal from the token endpoint, shared with the fleet for a moment.
#[derive(Serialize, Deserialize)]
struct Refusal {
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// What Redis holds for a key right now.
struct Snapshot {
    /// The token, if one is there and outlives what the asker holds.
    token: Option<Token>,
    refusal: Option<Refusal>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn keys(&self, key: &StoreKey) -> Keys {
        let p = &self.prefix;
        Keys {
            token: format!("{p}token:{key}"),
            lock: format!("{p}lock:{key}"),
            failed: format!("{p}failed:{key}"),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(connection) = guard(&self.connection).clone() {
            return Ok(connection);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.op_timeout))
            .set_response_timeout(Some(self.op_timeout));
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let connection = tokio::time::timeout(self.op_timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout {
                op: "connect",
                after: self.op_timeout,
            })?
            .map_err(|source| StoreError::Redis {
                op: "connect",
                source,
            })?;
        *guard(&self.connection) = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command within the op timeout; any failure drops the connection.
    async fn run<T, F, Fut>(&self, op: &'static str, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = async {
            let connection = self.connection().await?;
            match tokio::time::timeout(self.op_timeout, command(connection)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(source)) => Err(StoreError::Redis { op, source }),
                Err(_) => Err(StoreError::Timeout {
                    op,
                    after: self.op_timeout,
                }),
            }
        }
        .await;
        if result.is_err() {
            *guard(&self.connection) = None;
        }
        result
    }

    /// What time the asker's token has left past now, on the asker's clock.
    fn needed(&self, held_until: Option<SystemTime>) -> Duration {
        held_until
            .and_then(|until| until.duration_since(self.clock.now()).ok())
            .unwrap_or_default()
    }

    async fn read(
        &self,
        keys: &Keys,
        store_key: &StoreKey,
        held_until: Option<SystemTime>,
    ) -> Result<Snapshot, StoreError> {
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("GET")
            .arg(&keys.token)
            .cmd("PTTL")
            .arg(&keys.token)
            .cmd("GET")
            .arg(&keys.failed);
        let (raw, ttl_ms, refusal): (Option<Vec<u8>>, i64, Option<Vec<u8>>) = self
            .run(
                "read",
                |mut c| async move { pipe.query_async(&mut c).await },
            )
            .await?;
        let raw = raw.map(Zeroizing::new);
        let needed = self.needed(held_until);
        let token = match (&raw, u64::try_from(ttl_ms)) {
            (Some(raw), Ok(ttl_ms)) => match serde_json::from_slice::<Record<'_>>(raw) {
                Ok(record) if record.lifetime_ms > 0 => {
                    let remaining = Duration::from_millis(ttl_ms);
                    let lifetime = Duration::from_millis(record.lifetime_ms);
                    (remaining >= needed + lifetime.mul_f64(MIN_EXTENSION)).then(|| {
                        let token = Token::new(record.token.into_owned(), remaining);
                        match record.scope {
                            Some(scope) => token.with_scope(scope),
                            None => token,
                        }
                    })
                }
                _ => {
                    tracing::warn!(
                        target: "sinch_auth",
                        store_key = ?store_key,
                        "redis holds an unreadable token record; ignoring it"
                    );
                    None
                }
            },
            _ => None,
        };
        let refusal = refusal.and_then(|raw| serde_json::from_slice(&raw).ok());
        Ok(Snapshot { token, refusal })
    }

    async fn try_lock(self: &Arc<Self>, keys: &Keys) -> Result<Option<Lock>, StoreError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(&keys.lock)
            .arg(&owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.lock_ttl));
        let reply: Value = self
            .run("lock", |mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        Ok((!matches!(reply, Value::Nil)).then(|| Lock {
            inner: self.clone(),
            key: keys.lock.clone(),
            owner,
            held: true,
        }))
    }

    /// Stores a token. The lock holder forces: it found what is there not
    /// good enough. Others keep a longer-lived token that is already there.
    async fn save(&self, keys: &Keys, token: &Token, force: bool) -> Result<(), StoreError> {
        let value = token.value().expose_secret();
        let mut lifetime = token.expires_in();
        // The cache believes a JWT's `exp` over `expires_in`; so must the
        // fleet, or a process would take back the token it is replacing.
        if let Some(exp) = jwt_expiry(value) {
            let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
            lifetime = lifetime.min(exp.duration_since(self.clock.now()).unwrap_or_default());
        }
        let lifetime_ms = millis(lifetime);
        if lifetime_ms == 0 {
            return Ok(());
        }
        let record = Record {
            token: Cow::Borrowed(value),
            lifetime_ms,
            scope: token.scope().map(str::to_owned),
        };
        let Ok(json) = serde_json::to_string(&record).map(Zeroizing::new) else {
            return Ok(());
        };
        let mut invocation = SAVE.prepare_invoke();
        invocation
            .key(&keys.token)
            .key(&keys.failed)
            .arg(json.as_str())
            .arg(lifetime_ms)
            .arg(if force { "1" } else { "0" });
        self.run("save", |mut c| async move {
            invocation.invoke_async::<i64>(&mut c).await
        })
        .await
        .map(drop)
    }

    /// Tells the fleet the endpoint refused, so it backs off together.
    async fn share_refusal(&self, keys: &Keys, error: &FetchError) -> Result<(), StoreError> {
        let FetchError::Endpoint {
            status,
            error,
            retry_after,
            ..
        } = error
        else {
            return Ok(());
        };
        let hold = retry_after
            .unwrap_or(DEFAULT_FAILURE_HOLD)
            .min(MAX_FAILURE_HOLD);
        if hold.is_zero() {
            return Ok(());
        }
        let refusal = Refusal {
            status: status.as_u16(),
            error: error.clone(),
            retry_after_ms: retry_after.map(millis),
        };
        let Ok(json) = serde_json::to_string(&refusal) else {
            return Ok(());
        };
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(&keys.failed).arg(json).arg("PX").arg(millis(hold));
        self.run("share failure", |mut c| async move {
            cmd.query_async::<Value>(&mut c).await
        })
        .await
        .map(drop)
    }

    async fn release(&self, key: &str, owner: &str) {
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(key).arg(owner);
        if let Err(error) = self
            .run("unlock", |mut c| async move {
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
        held_until: Option<SystemTime>,
        fetch: TokenFuture,
    ) -> Result<Token, FetchError> {
        let keys = self.keys(&key);
        let deadline = Instant::now() + self.max_wait;
        loop {
            let snapshot = match self.read(&keys, &key, held_until).await {
                Ok(snapshot) => snapshot,
                Err(error) => return fetch_locally(&key, &error, fetch).await,
            };
            if let Some(token) = snapshot.token {
                tracing::debug!(target: "sinch_auth", store_key = ?key, "token taken from redis");
                return Ok(token);
            }
            if let Some(refusal) = snapshot.refusal {
                tracing::debug!(
                    target: "sinch_auth",
                    store_key = ?key,
                    status = refusal.status,
                    "another process was just refused by the token endpoint; backing off with it"
                );
                return Err(refusal.into_error());
            }
            match self.try_lock(&keys).await {
                Ok(Some(lock)) => {
                    return self
                        .fetch_for_fleet(&key, &keys, lock, held_until, fetch)
                        .await;
                }
                Ok(None) => {}
                Err(error) => return fetch_locally(&key, &error, fetch).await,
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    target: "sinch_auth",
                    store_key = ?key,
                    waited_ms = millis(self.max_wait),
                    "another process has held the redis fetch lock too long; fetching the token locally"
                );
                let result = fetch.await;
                if let Ok(token) = &result {
                    if let Err(error) = self.save(&keys, token, false).await {
                        tracing::debug!(target: "sinch_auth", error = %error, "could not store the token in redis");
                    }
                }
                return result;
            }
            let pause = self.poll_interval.mul_f64(0.75 + fastrand::f64() / 2.0);
            tokio::time::sleep(pause.min(deadline - now)).await;
        }
    }

    async fn fetch_for_fleet(
        &self,
        key: &StoreKey,
        keys: &Keys,
        lock: Lock,
        held_until: Option<SystemTime>,
        fetch: TokenFuture,
    ) -> Result<Token, FetchError> {
        // Another process may have finished a fetch between our read and our lock.
        match self.read(keys, key, held_until).await {
            Ok(Snapshot {
                token: Some(token), ..
            }) => {
                lock.release().await;
                return Ok(token);
            }
            Ok(Snapshot {
                refusal: Some(refusal),
                ..
            }) => {
                lock.release().await;
                return Err(refusal.into_error());
            }
            Ok(_) => {}
            Err(error) => return fetch_locally(key, &error, fetch).await,
        }
        tracing::debug!(target: "sinch_auth", store_key = ?key, "fetching the token for the fleet");
        let result = fetch.await;
        let shared = match &result {
            Ok(token) => self.save(keys, token, true).await,
            Err(error) => self.share_refusal(keys, error).await,
        };
        if let Err(error) = shared {
            tracing::warn!(
                target: "sinch_auth",
                store_key = ?key,
                error = %error,
                "could not share the fetch result through redis; other processes will fetch their own"
            );
        }
        lock.release().await;
        result
    }
}

impl Refusal {
    fn into_error(self) -> FetchError {
        FetchError::Endpoint {
            status: StatusCode::from_u16(self.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            error: self.error,
            description: Some("shared through redis from another process's fetch".to_owned()),
            retry_after: self.retry_after_ms.map(Duration::from_millis),
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
/// refresher's timeout, shutdown) it is released in the background.
struct Lock {
    inner: Arc<Inner>,
    key: String,
    owner: String,
    held: bool,
}

impl Lock {
    async fn release(mut self) {
        self.held = false;
        self.inner.release(&self.key, &self.owner).await;
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
            runtime.spawn(async move { inner.release(&key, &owner).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for url in ["", "http://127.0.0.1/", "redis://:sekrit@[::1/"] {
            let error = RedisTokenStore::new(url).unwrap_err();
            assert!(matches!(error, ConfigError::InvalidUrl { .. }), "{url}");
            assert!(!error.to_string().contains("sekrit"));
        }
    }

    #[test]
    fn debug_shows_the_server_but_not_the_password() {
        let store = RedisTokenStore::builder("redis://app:pa55word-x@127.0.0.1:6390/2")
            .key_prefix("svc:")
            .build()
            .unwrap();
        let shown = format!("{store:?}");
        assert!(shown.contains("127.0.0.1:6390"), "{shown}");
        assert!(shown.contains("svc:"), "{shown}");
        assert!(!shown.contains("pa55word-x"), "{shown}");
        assert_eq!(store.key_prefix(), "svc:");
    }

    #[test]
    fn records_round_trip_and_keys_carry_the_prefix() {
        let token = Token::new("t\"o\\k", Duration::from_secs(60)).with_scope("s");
        let record = Record {
            token: Cow::Borrowed(token.value().expose_secret()),
            lifetime_ms: 60_000,
            scope: Some("s".into()),
        };
        let json = serde_json::to_string(&record).unwrap();
        let back: Record<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.token, "t\"o\\k");
        assert_eq!(back.lifetime_ms, 60_000);

        let store = RedisTokenStore::builder("redis://127.0.0.1/")
            .key_prefix("p:")
            .build()
            .unwrap();
        let key = StoreKey::for_access_key("u", "p", "k");
        let keys = store.inner.keys(&key);
        assert_eq!(keys.token, format!("p:token:{key}"));
        assert_eq!(keys.lock, format!("p:lock:{key}"));
        assert_eq!(keys.failed, format!("p:failed:{key}"));
    }
}
