//! Fleet-wide replay protection: a [`ReplayStore`] in Redis.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Value};

use super::replay::{RecordFuture, ReplayEntry, ReplayMemory, ReplayStore};
use super::{DEFAULT_REPLAY_CAPACITY, Rejection};
use crate::error::ConfigError;

/// What a [`RedisReplayStore`] does when Redis cannot be asked (down,
/// unreachable, slower than the [op timeout](RedisReplayStore::op_timeout)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Remember in this process's memory meanwhile (the default): callbacks
    /// keep being served, and a replay is still refused by the instance that
    /// accepted the original, but another instance may accept it while Redis
    /// is away (within the freshness window).
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
/// the key is the hex SHA-256 [digest](ReplayEntry::digest) of the nonce or
/// signature (never the value itself, never a secret), the TTL the rest of
/// the request's freshness window plus a second (a day when freshness is
/// disabled). `NX` makes the first instance to record a request the only one
/// to accept it. The verifiers ask only once the signature and timestamp
/// are verified, so forgeries never take room in Redis.
///
/// When Redis cannot be asked, [`WhenUnavailable`] decides: fall back to a
/// local [`ReplayMemory`] (the default) or fail closed.
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
    client: Client,
    /// `None` until the first use and after any failure: the next use connects again.
    connection: Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    op_timeout: Duration,
    when_unavailable: WhenUnavailable,
    fallback: ReplayMemory,
}

impl RedisReplayStore {
    /// Key prefix unless told otherwise, shared with the token store.
    pub const DEFAULT_KEY_PREFIX: &'static str = "sinch-auth:";

    /// How long an entry is kept when the verifier's freshness is disabled.
    pub const TTL_WITHOUT_WINDOW: Duration = Duration::from_secs(24 * 3600);

    /// A store at `url` (`redis://[user:password@]host[:port][/db]`). Does
    /// not connect yet.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] naming the field `redis url` (never its
    /// password) when the URL cannot be used.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let client = Client::open(url).map_err(|_| ConfigError::InvalidUrl {
            field: "redis url",
            reason: "expected redis://[user:password@]host[:port][/db]",
        })?;
        Ok(Self::with_client(client))
    }

    /// A store using a client you configured yourself.
    pub fn with_client(client: Client) -> Self {
        Self {
            client,
            connection: Mutex::new(None),
            prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            op_timeout: Duration::from_millis(500),
            when_unavailable: WhenUnavailable::default(),
            fallback: ReplayMemory::new(DEFAULT_REPLAY_CAPACITY),
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
        self
    }

    /// What to do when Redis cannot be asked (default [`WhenUnavailable::FailOpen`]).
    pub fn when_unavailable(mut self, choice: WhenUnavailable) -> Self {
        self.when_unavailable = choice;
        self
    }

    /// Size of the local memory used while Redis is unavailable with
    /// [`WhenUnavailable::FailOpen`] (default [`DEFAULT_REPLAY_CAPACITY`]).
    pub fn fallback_capacity(mut self, capacity: usize) -> Self {
        self.fallback = ReplayMemory::new(capacity);
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

    async fn connection(&self) -> Result<MultiplexedConnection, Unavailable> {
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
            .map_err(|_| Unavailable::Timeout)?
            .map_err(|e| Unavailable::Redis(e.kind()))?;
        *guard(&self.connection) = Some(connection.clone());
        Ok(connection)
    }

    /// `SET key 1 NX PX ttl`: `true` if this call set it.
    async fn set_nx(&self, entry: &ReplayEntry) -> Result<bool, Unavailable> {
        let mut connection = self.connection().await?;
        let ttl = entry.ttl().unwrap_or(Self::TTL_WITHOUT_WINDOW);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut command = ::redis::cmd("SET");
        command
            .arg(self.key(entry))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        let sent = command.query_async::<Value>(&mut connection);
        let result = match tokio::time::timeout(self.op_timeout, sent).await {
            Ok(Ok(Value::Nil)) => Ok(false),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(Unavailable::Redis(e.kind())),
            Err(_) => Err(Unavailable::Timeout),
        };
        if result.is_err() {
            *guard(&self.connection) = None;
        }
        result
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why Redis could not be asked. Only the kind of a Redis error is kept:
/// its text can echo a command's arguments.
enum Unavailable {
    Timeout,
    Redis(::redis::ErrorKind),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Redis(kind) => write!(f, "redis error of kind {kind:?}"),
        }
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReplayStore for RedisReplayStore {
    fn record<'a>(&'a self, entry: &'a ReplayEntry) -> RecordFuture<'a> {
        Box::pin(async move {
            match self.set_nx(entry).await {
                Ok(true) => Ok(()),
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
                        self.fallback.remember(entry)
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
            .field(
                "server",
                &format_args!("{}", self.client.get_connection_info().addr()),
            )
            .field("key_prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("when_unavailable", &self.when_unavailable)
            .finish_non_exhaustive()
    }
}
