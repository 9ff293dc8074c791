//! Fleet-wide replay protection: a [`ReplayStore`] in Redis.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::redis::{Client, Value};

use super::replay::{RecordFuture, ReplayEntry, ReplayMemory, ReplayStore};
use super::{DEFAULT_REPLAY_CAPACITY, Freshness, Rejection};
use crate::error::ConfigError;
use crate::token::redis_connection::{Connection, ErrorSummary, Target, TlsOptions};

/// What a [`RedisReplayStore`] does when Redis cannot be asked (down,
/// unreachable, slower than the [op timeout](RedisReplayStore::op_timeout)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Rely on this instance's own memory meanwhile (the default): callbacks
    /// keep being served, and a replay is still refused by the instance that
    /// accepted the original, but every other instance may accept it while
    /// Redis is away (within the freshness window).
    #[default]
    FailOpen,
    /// Reject every callback with [`Rejection::ReplayStoreUnavailable`]
    /// (`401` from [`VerifyLayer`](super::VerifyLayer)) until Redis answers
    /// again: no replay gets through, and no callback either.
    FailClosed,
}

/// Remembers accepted callbacks in Redis, so that a replay is refused by
/// every instance of a fleet behind a load balancer, not only by the one
/// that saw the original (feature `redis`).
///
/// Each accepted request is one `SET {prefix}replay:{digest} 1 NX PX {ttl}`:
/// the key is the hex [digest](ReplayEntry::digest) of the nonce or
/// signature, keyed by the secret that verified it (never the value itself,
/// never a secret); the TTL the rest of the freshness window plus a second
/// (a day when freshness is disabled), for the widest window of the fleet
/// ([`fleet_max_age`](Self::fleet_max_age)). `NX` makes the first instance
/// to record a request the only one to accept it. The verifiers ask only
/// once the signature and timestamp are verified, so forgeries never take
/// room in Redis.
///
/// What this instance accepted it also remembers in its own memory, and
/// refuses again whichever of Redis or that memory answers: a callback
/// accepted while Redis was away is refused once Redis is back, and one
/// accepted through Redis is refused while Redis is away.
///
/// When Redis cannot be asked, [`WhenUnavailable`] decides: rely on the
/// local memory (the default) or fail closed.
///
/// It reaches Redis the way [`RedisTokenStore`](crate::token::RedisTokenStore)
/// does: one node over TCP or TLS (`rediss://`, through rustls with the
/// crate's own crypto provider, never the process default), or a Redis
/// Cluster ([`cluster`](Self::cluster)), over TCP or TLS.
///
/// Share one store between the verifiers of a process through an `Arc`:
///
/// ```no_run
/// use std::sync::Arc;
/// use sinch_auth::verify::{RedisReplayStore, VerifyLayer, WebhookVerifier, WhenUnavailable};
///
/// let store = Arc::new(
///     RedisReplayStore::new("redis://127.0.0.1:6379/0")?
///         .when_unavailable(WhenUnavailable::FailClosed),
/// );
/// let sms = VerifyLayer::new(WebhookVerifier::new("sms-secret").replay_store(store.clone()));
/// let conversation = VerifyLayer::new(WebhookVerifier::new("conv-secret").replay_store(store));
/// # let _ = (sms, conversation);
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[must_use]
pub struct RedisReplayStore {
    target: Target,
    /// `None` until the first use and after any failure: the next use connects again.
    connection: Mutex<Option<Connection>>,
    prefix: String,
    op_timeout: Duration,
    fleet_max_age: Duration,
    when_unavailable: WhenUnavailable,
    /// What this instance accepted, whichever store answered.
    accepted: ReplayMemory,
}

/// Where a [`RedisReplayStoreBuilder`] connects.
enum Endpoint {
    Url(String),
    Cluster(Vec<String>),
}

/// Configures how a [`RedisReplayStore`] reaches Redis: a `rediss://` URL's
/// trust anchors or TLS configuration, or a cluster's nodes. The other
/// settings are the store's own ([`RedisReplayStore::key_prefix`] and so on).
///
/// ```
/// use sinch_auth::verify::RedisReplayStore;
///
/// let store = RedisReplayStore::cluster(["rediss://10.0.0.1:7000", "rediss://10.0.0.2:7000"])
///     .build()?;
/// # let _ = store;
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[must_use]
pub struct RedisReplayStoreBuilder {
    endpoint: Endpoint,
    tls: TlsOptions,
}

impl fmt::Debug for RedisReplayStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStoreBuilder")
            .field("cluster", &matches!(self.endpoint, Endpoint::Cluster(_)))
            .field("custom_ca", &self.tls.ca_pem.is_some())
            .field("custom_tls_config", &self.tls.config.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisReplayStoreBuilder {
    /// For `rediss://`: trust these CA certificates (PEM) instead of the
    /// public web roots. The server's certificate is verified either way,
    /// host name included.
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

    /// Builds the store (it does not connect yet).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] naming the field (`redis url` or `redis
    /// cluster urls`, never a password) for an unusable URL;
    /// [`ConfigError::InvalidSetting`] for an unusable certificate or TLS
    /// settings without `rediss://`.
    pub fn build(self) -> Result<RedisReplayStore, ConfigError> {
        let op_timeout = RedisReplayStore::DEFAULT_OP_TIMEOUT;
        let target = match &self.endpoint {
            Endpoint::Url(url) => Target::node(url, &self.tls)?,
            Endpoint::Cluster(urls) => Target::cluster(urls, op_timeout, &self.tls)?,
        };
        Ok(RedisReplayStore::with_target(target))
    }
}

impl RedisReplayStore {
    /// Key prefix unless told otherwise, shared with the token store.
    pub const DEFAULT_KEY_PREFIX: &'static str = "sinch-auth:";

    /// How long an entry is kept when the verifier's freshness is disabled.
    pub const TTL_WITHOUT_WINDOW: Duration = Duration::from_secs(24 * 3600);

    /// The default [`op_timeout`](Self::op_timeout): 500 ms.
    pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(500);

    /// The longest TTL asked of Redis (about 31 years): `PX` takes no more
    /// than what still fits in Redis' clock, and a window may be as wide as
    /// `Duration::MAX`.
    const MAX_TTL: Duration = Duration::from_secs(1_000_000_000);

    /// A store at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS trusting the public web roots). Does not
    /// connect yet.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] naming the field `redis url` (never its
    /// password) when the URL cannot be used.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Self::builder(url).build()
    }

    /// Starts a builder for a store at `url`, for TLS settings of your own.
    pub fn builder(url: &str) -> RedisReplayStoreBuilder {
        RedisReplayStoreBuilder {
            endpoint: Endpoint::Url(url.to_owned()),
            tls: TlsOptions::default(),
        }
    }

    /// Starts a builder for a store on a Redis Cluster, given the URLs of
    /// some of its nodes: all `redis://[user:password@]host:port`, or all
    /// `rediss://…` for TLS to every node.
    pub fn cluster<I, S>(nodes: I) -> RedisReplayStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisReplayStoreBuilder {
            endpoint: Endpoint::Cluster(nodes.into_iter().map(Into::into).collect()),
            tls: TlsOptions::default(),
        }
    }

    /// A store using a client you configured yourself (plain TCP; for TLS
    /// use a `rediss://` URL).
    pub fn with_client(client: Client) -> Self {
        Self::with_target(Target::client(&client))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            connection: Mutex::new(None),
            prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            op_timeout: Self::DEFAULT_OP_TIMEOUT,
            fleet_max_age: Freshness::DEFAULT_WINDOW,
            when_unavailable: WhenUnavailable::default(),
            accepted: ReplayMemory::new(DEFAULT_REPLAY_CAPACITY),
        }
    }

    /// Prefixes every key with `prefix` (default `sinch-auth:`); keys are
    /// `{prefix}replay:{digest}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Limits connecting and each command (default 500 ms); past it, Redis
    /// counts as unavailable for that request.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self.target.set_timeout(timeout);
        self
    }

    /// The widest freshness `max_age` of any verifier, on any instance,
    /// that shares this store (default [`Freshness::DEFAULT_WINDOW`], 5
    /// minutes), plus the clock skew between instances beyond a second.
    ///
    /// Every entry lives until its timestamp is stale for that window too,
    /// so an instance with a wider window than the one that recorded a
    /// request still refuses its replay. A verifier's own wider window
    /// counts for its own entries anyway.
    pub fn fleet_max_age(mut self, max_age: Duration) -> Self {
        self.fleet_max_age = max_age;
        self
    }

    /// What to do when Redis cannot be asked (default [`WhenUnavailable::FailOpen`]).
    pub fn when_unavailable(mut self, choice: WhenUnavailable) -> Self {
        self.when_unavailable = choice;
        self
    }

    /// Size of the memory of what this instance accepted (default
    /// [`DEFAULT_REPLAY_CAPACITY`]), consulted whether or not Redis answers.
    pub fn fallback_capacity(mut self, capacity: usize) -> Self {
        self.accepted = ReplayMemory::new(capacity);
        self
    }

    fn key(&self, entry: &ReplayEntry) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 7 + 64);
        key.push_str(&self.prefix);
        key.push_str("replay:");
        for byte in entry.digest() {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        key
    }

    async fn connection(&self) -> Result<Connection, Unavailable> {
        if let Some(connection) = guard(&self.connection).clone() {
            return Ok(connection);
        }
        let connect = self.target.connect(self.op_timeout);
        let connection = tokio::time::timeout(self.op_timeout, connect)
            .await
            .map_err(|_| Unavailable::Timeout)?
            .map_err(|e| Unavailable::Redis(ErrorSummary::of(&e)))?;
        *guard(&self.connection) = Some(connection.clone());
        Ok(connection)
    }

    /// `SET key 1 NX PX ttl`: `true` if this call set it.
    async fn set_nx(&self, entry: &ReplayEntry) -> Result<bool, Unavailable> {
        let result = async {
            let mut connection = self.connection().await?;
            let ttl = entry
                .ttl()
                .unwrap_or(Self::TTL_WITHOUT_WINDOW)
                .min(Self::MAX_TTL);
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut command = ::redis::cmd("SET");
            command
                .arg(self.key(entry))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms);
            let sent = command.query_async::<Value>(&mut connection);
            match tokio::time::timeout(self.op_timeout, sent).await {
                Ok(Ok(Value::Nil)) => Ok(false),
                Ok(Ok(_)) => Ok(true),
                Ok(Err(e)) => Err(Unavailable::Redis(ErrorSummary::of(&e))),
                Err(_) => Err(Unavailable::Timeout),
            }
        }
        .await;
        if result.is_err() {
            *guard(&self.connection) = None;
        }
        result
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why Redis could not be asked. Only a summary of a Redis error is kept:
/// its text can echo a command's arguments.
enum Unavailable {
    Timeout,
    Redis(ErrorSummary),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Redis(summary) => write!(f, "redis error of kind {summary}"),
        }
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReplayStore for RedisReplayStore {
    fn record<'a>(&'a self, entry: &'a ReplayEntry) -> RecordFuture<'a> {
        Box::pin(async move {
            let entry = entry.at_least(self.fleet_max_age);
            match self.set_nx(&entry).await {
                // Redis had not seen it; this instance may have, while
                // Redis was away (or lost it): either refuses it.
                Ok(true) => self.accepted.remember(&entry),
                Ok(false) => Err(Rejection::Replayed { what: entry.what() }),
                Err(why) => {
                    let fail_open = self.when_unavailable == WhenUnavailable::FailOpen;
                    tracing::warn!(
                        reason = %why,
                        fail_open,
                        "replay store unavailable; {}",
                        if fail_open {
                            "remembering in this process only"
                        } else {
                            "rejecting the callback"
                        }
                    );
                    if fail_open {
                        self.accepted.remember(&entry)
                    } else {
                        Err(Rejection::ReplayStoreUnavailable)
                    }
                }
            }
        })
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("server", &format_args!("{}", self.target))
            .field("key_prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("fleet_max_age", &self.fleet_max_age)
            .field("when_unavailable", &self.when_unavailable)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builders_debug_shows_its_settings_never_the_password_or_the_ca() {
        let builder = RedisReplayStore::cluster(["rediss://app:pa55-r1@127.0.0.1:7000"])
            .ca_certificates_pem(b"-----BEGIN CERTIFICATE-----\nCA-BYTES-r2\n".to_vec());
        let shown = format!("{builder:?}");
        assert!(shown.starts_with("RedisReplayStoreBuilder"), "{shown}");
        assert!(shown.contains("cluster: true"), "{shown}");
        assert!(shown.contains("custom_ca: true"), "{shown}");
        assert!(shown.contains("custom_tls_config: false"), "{shown}");
        assert!(
            !shown.contains("pa55-r1") && !shown.contains("CA-BYTES-r2"),
            "{shown}"
        );
        let single = format!("{:?}", RedisReplayStore::builder("redis://127.0.0.1:6379/"));
        assert!(single.contains("cluster: false"), "{single}");
    }
}
