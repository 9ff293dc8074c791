//! A Redis Cluster client over the crate's own node connections.
//!
//! The `redis` crate's cluster client makes its TLS streams itself, with a
//! rustls configuration built on the process-wide default crypto provider.
//! This one opens every node connection through [`super::open_node`] (TLS
//! with the store's own configuration), and does what the store's commands
//! need of a cluster client:
//!
//! 1. Sends each command to the primary owning its key's slot, from a slot
//!    map read with `CLUSTER SLOTS`.
//! 2. Follows `MOVED` (and reads the slot map again) and `ASK` (once, with
//!    `ASKING`), and retries `TRYAGAIN`, `CLUSTERDOWN` and a lost node
//!    connection a bounded number of times: a failover or a resharding is
//!    waited out within the caller's time limit, never forever.
//! 3. Sends a command without a key (`SCRIPT LOAD`) to every primary.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{Cmd, ErrorKind, Pipeline, RedisConnectionInfo, RedisError, RedisResult, Value};
use redis::{ServerErrorKind, cmd};

use super::{TlsTarget, open_node};

/// How many times one command is sent before its last error is returned.
const ATTEMPTS: u32 = 6;

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16_384;

/// A node's address as the cluster names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A cluster client; clones share the slot map and the node connections.
#[derive(Clone)]
pub(crate) struct Cluster {
    shared: Arc<Shared>,
}

struct Shared {
    seeds: Vec<Node>,
    settings: RedisConnectionInfo,
    /// The store's own rustls configuration for `rediss://`.
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    state: Mutex<State>,
    /// One slot-map reading at a time; the others wait for its result.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// `(first slot, last slot, primary)`, sorted by first slot.
    slots: Vec<(u16, u16, Node)>,
    /// Bumped by every reading of the slot map.
    generation: u64,
    nodes: HashMap<Node, MultiplexedConnection>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    pub(crate) fn new(
        seeds: Vec<Node>,
        settings: RedisConnectionInfo,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                seeds,
                settings,
                tls,
                timeout,
                state: Mutex::new(State::default()),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A cluster client like this one with another time limit, knowing
    /// nothing yet.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Self {
        let shared = &self.shared;
        Self::new(
            shared.seeds.clone(),
            shared.settings.clone(),
            shared.tls.clone(),
            timeout,
        )
    }

    pub(crate) fn seeds(&self) -> &[Node] {
        &self.shared.seeds
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Reads the slot map unless one is known: fails when no node answers.
    pub(crate) async fn connect(&self) -> RedisResult<()> {
        let generation = {
            let state = guard(&self.shared.state);
            if !state.slots.is_empty() {
                return Ok(());
            }
            state.generation
        };
        self.shared.refresh(generation).await
    }
}

impl Shared {
    fn generation(&self) -> u64 {
        guard(&self.state).generation
    }

    /// The connection to `node`, opened if there is none.
    async fn node(&self, node: &Node) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = guard(&self.state).nodes.get(node).cloned() {
            return Ok(connection);
        }
        let tls = match &self.tls {
            Some(config) => Some(TlsTarget::new(config.clone(), &node.host).ok_or_else(|| {
                RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "a cluster node's host is not a valid TLS server name",
                ))
            })?),
            None => None,
        };
        let connection = tokio::time::timeout(
            self.timeout,
            open_node(
                &node.host,
                node.port,
                tls.as_ref(),
                &self.settings,
                self.timeout,
            ),
        )
        .await
        .map_err(|_| timed_out())??;
        Ok(guard(&self.state)
            .nodes
            .entry(node.clone())
            .or_insert(connection)
            .clone())
    }

    fn forget(&self, node: &Node) {
        guard(&self.state).nodes.remove(node);
    }

    /// Reads the slot map again, unless someone did since `seen`.
    async fn refresh(&self, seen: u64) -> RedisResult<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        let mut candidates: Vec<Node> = {
            let state = guard(&self.state);
            if state.generation != seen {
                return Ok(());
            }
            state
                .slots
                .iter()
                .map(|(_, _, node)| node.clone())
                .collect()
        };
        for seed in &self.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let mut unique = Vec::with_capacity(candidates.len());
        for node in candidates {
            if !unique.contains(&node) {
                unique.push(node);
            }
        }
        let candidates = unique;
        let mut last = None;
        for node in candidates {
            match self.read_slots(&node).await {
                Ok(slots) => {
                    let mut state = guard(&self.state);
                    state
                        .nodes
                        .retain(|n, _| slots.iter().any(|(_, _, s)| s == n));
                    state.slots = slots;
                    state.generation += 1;
                    return Ok(());
                }
                Err(e) => {
                    self.forget(&node);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| RedisError::from((ErrorKind::Io, "no cluster node"))))
    }

    async fn read_slots(&self, node: &Node) -> RedisResult<Vec<(u16, u16, Node)>> {
        let mut connection = self.node(node).await?;
        let reply = tokio::time::timeout(
            self.timeout,
            cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(&mut connection),
        )
        .await
        .map_err(|_| timed_out())??;
        parse_slots(reply, node).ok_or_else(|| {
            RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "the slot map does not cover every slot",
            ))
        })
    }

    fn owner(&self, slot: u16) -> Option<Node> {
        let state = guard(&self.state);
        let i = state.slots.partition_point(|(first, _, _)| *first <= slot);
        let (_, last, node) = state.slots.get(i.checked_sub(1)?)?;
        (slot <= *last).then(|| node.clone())
    }

    fn primaries(&self) -> Vec<Node> {
        let state = guard(&self.state);
        let mut nodes: Vec<Node> = state.slots.iter().map(|(_, _, n)| n.clone()).collect();
        nodes.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
        nodes.dedup();
        nodes
    }

    async fn send(&self, command: &Cmd) -> RedisResult<Value> {
        let Some(slot) = key_of(command).map(slot_of) else {
            return self.to_every_primary(command).await;
        };
        let mut redirect: Option<(Node, bool)> = None;
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 && redirect.is_none() {
                // A failover or an election takes a moment; so does a
                // node coming back.
                tokio::time::sleep(Duration::from_millis(10 << attempt.min(5))).await;
            }
            let generation = self.generation();
            let (node, asking) = match redirect.take() {
                Some(target) => target,
                None => match self.owner(slot) {
                    Some(node) => (node, false),
                    None => {
                        if let Err(e) = self.refresh(generation).await {
                            last = Some(e);
                        }
                        continue;
                    }
                },
            };
            let result = match self.node(&node).await {
                Ok(mut connection) if asking => asking_then(&mut connection, command).await,
                Ok(mut connection) => connection
                    .req_packed_command(command)
                    .await
                    .and_then(Value::extract_error),
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            match error.kind() {
                ErrorKind::Server(ServerErrorKind::Moved) => {
                    redirect = redirected(&error).map(|node| (node, false));
                    // Best effort: the redirect alone serves this command.
                    let _ = self.refresh(generation).await;
                }
                ErrorKind::Server(ServerErrorKind::Ask) if !asking => {
                    redirect = redirected(&error).map(|node| (node, true));
                }
                ErrorKind::Server(ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown) => {}
                ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => {
                    self.forget(&node);
                    let _ = self.refresh(generation).await;
                }
                // A replica promoted by a failover already, or one left behind.
                ErrorKind::Server(ServerErrorKind::ReadOnly) => {
                    let _ = self.refresh(generation).await;
                }
                _ => return Err(error),
            }
            last = Some(error);
        }
        Err(last.unwrap_or_else(timed_out))
    }

    /// A command about no key (`SCRIPT LOAD`): to every primary, first reply back.
    async fn to_every_primary(&self, command: &Cmd) -> RedisResult<Value> {
        if self.primaries().is_empty() {
            self.refresh(self.generation()).await?;
        }
        let mut first = None;
        for node in self.primaries() {
            let result = match self.node(&node).await {
                Ok(mut connection) => connection
                    .req_packed_command(command)
                    .await
                    .and_then(Value::extract_error),
                Err(e) => Err(e),
            };
            if result.is_err() {
                self.forget(&node);
            }
            first.get_or_insert(result);
        }
        first.unwrap_or_else(|| Err(timed_out()))
    }

    /// A pipeline goes where its first keyed command goes; the store's
    /// pipelines keep to one hash tag.
    async fn send_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let slot = pipeline.cmd_iter().find_map(key_of).map(slot_of);
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(10 << attempt.min(5))).await;
            }
            let generation = self.generation();
            let node = match slot {
                Some(slot) => self.owner(slot),
                None => self.primaries().into_iter().next(),
            };
            let Some(node) = node else {
                if let Err(e) = self.refresh(generation).await {
                    last = Some(e);
                }
                continue;
            };
            let result = match self.node(&node).await {
                Ok(mut connection) => {
                    connection
                        .req_packed_commands(pipeline, offset, count)
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(values) => return Ok(values),
                Err(e) if e.is_io_error() || e.is_cluster_error() => {
                    self.forget(&node);
                    let _ = self.refresh(generation).await;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(timed_out))
    }
}

async fn asking_then(connection: &mut MultiplexedConnection, command: &Cmd) -> RedisResult<Value> {
    let mut pipeline = Pipeline::new();
    pipeline.cmd("ASKING").add_command(command.clone());
    let mut replies = connection.req_packed_commands(&pipeline, 0, 2).await?;
    replies
        .pop()
        .ok_or_else(|| RedisError::from((ErrorKind::Parse, "no reply after ASKING")))?
        .extract_error()
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

fn redirected(error: &RedisError) -> Option<Node> {
    let (address, _slot) = error.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(Node {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

/// The key a command is about, for the commands the stores send: the
/// first argument, or for `EVAL`/`EVALSHA` the first of its keys.
fn key_of(command: &Cmd) -> Option<&[u8]> {
    let mut args = command.args_iter().map(|arg| match arg {
        ::redis::Arg::Simple(bytes) => bytes,
        _ => &[][..],
    });
    let name = args.next()?;
    if name.eq_ignore_ascii_case(b"SCRIPT") || name.eq_ignore_ascii_case(b"PING") {
        return None;
    }
    if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVALSHA") {
        let _script = args.next()?;
        let keys = args.next()?;
        if keys == b"0" {
            return None;
        }
        return args.next();
    }
    args.next()
}

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag, or of the
/// whole key when it has none, modulo 16,384.
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// `CLUSTER SLOTS` as `(first, last, primary)` sorted by first slot;
/// `None` unless the ranges cover every slot once. A primary without a
/// host (`""` or `?`) is the node that answered.
fn parse_slots(reply: Value, asked: &Node) -> Option<Vec<(u16, u16, Node)>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut slots = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(range) = range else {
            return None;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
            (range.first(), range.get(1), range.get(2))
        else {
            return None;
        };
        let host = match primary.first() {
            Some(Value::BulkString(host)) => String::from_utf8(host.clone()).ok()?,
            Some(Value::SimpleString(host)) => host.clone(),
            _ => return None,
        };
        let host = if host.is_empty() || host == "?" {
            asked.host.clone()
        } else {
            host
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            return None;
        };
        slots.push((
            u16::try_from(*first).ok()?,
            u16::try_from(*last).ok()?,
            Node {
                host,
                port: u16::try_from(*port).ok()?,
            },
        ));
    }
    slots.sort_by_key(|(first, _, _)| *first);
    let mut next = 0u32;
    for (first, last, _) in &slots {
        if u32::from(*first) != next || last < first {
            return None;
        }
        next = u32::from(*last) + 1;
    }
    (next == u32::from(SLOTS)).then_some(slots)
}

impl ConnectionLike for Cluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> ::redis::RedisFuture<'a, Value> {
        Box::pin(async move { self.shared.send(cmd).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> ::redis::RedisFuture<'a, Vec<Value>> {
        Box::pin(async move { self.shared.send_pipeline(cmd, offset, count).await })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_specification() {
        // The examples of the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot_of(b"foo"), 12_182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b"foo{bar}{zap}"), slot_of(b"bar"));
    }

    #[test]
    fn commands_are_routed_by_their_key() {
        let mut get = cmd("GET");
        get.arg("k1");
        assert_eq!(key_of(&get), Some(&b"k1"[..]));
        let mut eval = cmd("EVALSHA");
        eval.arg("abc").arg(2).arg("k2").arg("k3").arg("v");
        assert_eq!(key_of(&eval), Some(&b"k2"[..]));
        let mut load = cmd("SCRIPT");
        load.arg("LOAD").arg("return 1");
        assert_eq!(key_of(&load), None);
    }

    #[test]
    fn a_slot_map_must_cover_every_slot() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
            ])
        };
        let range = |a, b, port| Value::Array(vec![Value::Int(a), Value::Int(b), node(port)]);
        let asked = Node {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let whole = Value::Array(vec![range(8192, 16383, 7001), range(0, 8191, 7000)]);
        let slots = parse_slots(whole, &asked).unwrap();
        assert_eq!(slots[0].0, 0);
        assert_eq!(slots[1].2.port, 7001);
        let gap = Value::Array(vec![range(0, 8190, 7000), range(8192, 16383, 7001)]);
        assert!(parse_slots(gap, &asked).is_none());
        let short = Value::Array(vec![range(0, 8191, 7000)]);
        assert!(parse_slots(short, &asked).is_none());
    }
}
