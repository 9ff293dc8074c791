//! A real `redis-server` on loopback for the Redis store's tests, started
//! and killed by the test itself: plain, with TLS (a CA and a server
//! certificate the test makes with `rcgen`), or three of them as a Redis
//! Cluster. Included with `#[path]` by the test files that need it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A `redis-server` child process on a free loopback port, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    /// With [`RedisServer::start_tls`]: the TLS port (the plain `port` stays
    /// open for the test's own inspection) and the CA to trust.
    pub tls: Option<TlsServer>,
}

/// The TLS side of a server started with [`RedisServer::start_tls`].
pub struct TlsServer {
    pub port: u16,
    /// The CA certificate that signed the server's, PEM.
    pub ca_pem: String,
    dir: PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory under the system's temp dir.
fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sinch-auth-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CA and a certificate it signed for 127.0.0.1 and `localhost`, as PEM
/// files in `dir`: (ca.pem, server.pem, server.key).
fn make_certificates(dir: &std::path::Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sinch-auth test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    ca.pem()
}

/// Whether `redis-server` can be run. Without it the Redis tests are skipped
/// with a loud message — unless `SINCH_AUTH_REQUIRE_REDIS` is set (`.ci/run`
/// sets it and installs the server), where they fail instead.
pub fn available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("SINCH_AUTH_REQUIRE_REDIS").is_none(),
            "redis-server is not on PATH and SINCH_AUTH_REQUIRE_REDIS is set: \
             install it with `apt-get install redis-server` (.ci/run does)"
        );
        eprintln!(
            "SKIPPED: redis-server is not on PATH, so the Redis store tests do not run \
             (install it with `apt-get install redis-server`; CI requires it)"
        );
    }
    found
}

impl RedisServer {
    /// A running server, or `None` (test skipped) when redis-server is absent.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Option<Self> {
        if !available() {
            return None;
        }
        Some(Self::start_on_free_port(extra).await)
    }

    /// A server that also speaks TLS, on `tls.port`, with a certificate for
    /// 127.0.0.1 signed by a CA made for this test (`tls.ca_pem`).
    pub async fn start_tls() -> Option<Self> {
        if !available() {
            return None;
        }
        let dir = scratch_dir("redis-tls");
        let ca_pem = make_certificates(&dir);
        let tls_port = free_port();
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let args = [
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            file("server.pem"),
            "--tls-key-file".to_owned(),
            file("server.key"),
            "--tls-ca-cert-file".to_owned(),
            file("ca.pem"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
            // 127.0.0.2 too: a loopback address the certificate does not name.
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "127.0.0.2".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = Self::start_on_free_port(&args).await;
        server.tls = Some(TlsServer {
            port: tls_port,
            ca_pem,
            dir,
        });
        Some(server)
    }

    /// The `rediss://` URL of a server started with [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        let tls = self.tls.as_ref().expect("started with start_tls");
        format!("rediss://127.0.0.1:{}/", tls.port)
    }

    async fn start_on_free_port(extra: &[&str]) -> Self {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..5 {
            let mut server = Self {
                child: None,
                port: free_port(),
                args: args.clone(),
                tls: None,
            };
            if server.spawn().await {
                return server;
            }
        }
        panic!("redis-server did not start on a free port after 5 tries");
    }

    /// Starts the server process on `self.port`; false if it exited (port taken).
    async fn spawn(&mut self) -> bool {
        let dir = std::env::temp_dir();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): these tests need it on PATH; \
                     install it with `apt-get install redis-server` (.ci/run does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().unwrap().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if self.answers_ping().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} never answered PING", self.port);
    }

    async fn answers_ping(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            // `-NOAUTH` also means it is up.
            Ok(Ok(n)) => n > 0,
            _ => false,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Brings a killed server back on the same port, empty.
    pub async fn restart(&mut self) {
        assert!(
            self.spawn().await,
            "redis-server could not come back on its port"
        );
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// What the "Redis down" scenario does to a server or a whole cluster.
pub trait Outage {
    /// Kills every process.
    fn kill_all(&mut self);
    /// Brings them back on their ports, empty (a cluster with its slots).
    fn restart_all(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>;
}

impl Outage for RedisServer {
    fn kill_all(&mut self) {
        self.kill();
    }

    fn restart_all(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(self.restart())
    }
}

impl Outage for RedisCluster {
    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    fn restart_all(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(async move {
            for node in &mut self.nodes {
                node.restart().await;
            }
            self.wait_until_ok().await;
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-server`s on loopback made into one Redis Cluster by `redis-cli
/// --cluster create`: three primaries, with or without a replica each, over
/// TCP or also TLS; killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: PathBuf,
    /// With TLS: the CA that signed every node's certificate, PEM.
    ca_pem: Option<String>,
}

/// The shape of a test cluster.
#[derive(Clone, Copy, Debug)]
pub struct ClusterShape {
    /// Replicas per primary (0 or 1).
    pub replicas: usize,
    /// Every node also listens with TLS (and the cluster bus and
    /// replication use it), with a certificate for 127.0.0.1.
    pub tls: bool,
}

impl RedisCluster {
    /// A running, healthy 3-node cluster, or `None` (test skipped) when
    /// redis-server is absent.
    pub async fn start() -> Option<Self> {
        Self::start_shaped(ClusterShape {
            replicas: 0,
            tls: false,
        })
        .await
    }

    /// A running, healthy cluster of three primaries with `shape.replicas`
    /// replicas each, or `None` (test skipped) when redis-server is absent.
    pub async fn start_shaped(shape: ClusterShape) -> Option<Self> {
        if !available() {
            return None;
        }
        let dir = scratch_dir("redis-cluster");
        let ca_pem = shape.tls.then(|| make_certificates(&dir));
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let mut nodes = Vec::new();
        while nodes.len() < 3 * (1 + shape.replicas) {
            // The cluster bus listens on port + 10000.
            let port = 10_000 + fastrand::u16(..20_000);
            let tls_port = 10_000 + fastrand::u16(..20_000);
            let taken = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_err();
            if taken(port + 10_000) || taken(port) || (shape.tls && taken(tls_port)) {
                continue;
            }
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut args: Vec<String> = vec![
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                node_dir.join("nodes.conf").to_string_lossy().into_owned(),
                "--cluster-node-timeout".into(),
                "2000".into(),
                "--cluster-port".into(),
                (port + 10_000).to_string(),
                "--dir".into(),
                node_dir.to_string_lossy().into_owned(),
            ];
            if shape.tls {
                args.extend(
                    [
                        "--tls-port",
                        &tls_port.to_string(),
                        "--tls-cert-file",
                        &file("server.pem"),
                        "--tls-key-file",
                        &file("server.key"),
                        "--tls-ca-cert-file",
                        &file("ca.pem"),
                        "--tls-auth-clients",
                        "no",
                        "--tls-cluster",
                        "yes",
                        "--tls-replication",
                        "yes",
                    ]
                    .map(String::from),
                );
            }
            let mut server = RedisServer {
                child: None,
                port,
                args,
                tls: None,
            };
            if server.spawn().await {
                server.tls = ca_pem.as_ref().map(|ca| TlsServer {
                    port: tls_port,
                    ca_pem: ca.clone(),
                    dir: node_dir,
                });
                nodes.push(server);
            }
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let status = create
            .args([
                "--cluster-replicas",
                &shape.replicas.to_string(),
                "--cluster-yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed with redis-server");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes, dir, ca_pem };
        cluster.wait_until_ok().await;
        if shape.replicas > 0 {
            cluster.wait_until_replicas_synced().await;
        }
        Some(cluster)
    }

    /// The CA of a TLS cluster, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca_pem.as_deref().expect("started with tls")
    }

    /// The nodes' `rediss://` URLs (a TLS cluster).
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("rediss://127.0.0.1:{}", n.tls.as_ref().unwrap().port))
            .collect()
    }

    /// The index of the node listening on `port` (plain or TLS).
    fn index_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port || n.tls.as_ref().is_some_and(|t| t.port == port))
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// Waits until every replica's link to its primary is up.
    async fn wait_until_replicas_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        'wait: loop {
            assert!(Instant::now() < deadline, "the replicas never synced");
            for node in &self.nodes {
                let mut c = node.connection().await;
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                if info.contains("role:slave") && !info.contains("master_link_status:up") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'wait;
                }
            }
            return;
        }
    }

    /// The replica of primary `i`, by index.
    pub async fn replica_of(&self, i: usize) -> usize {
        let id = self.node_id(i).await;
        let mut c = self.nodes[i].connection().await;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut c)
            .await
            .unwrap();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() > 3 && fields[2].contains("slave") && fields[3] == id {
                let address = fields[1].split('@').next().unwrap();
                let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
                return self.index_of_port(port);
            }
        }
        panic!("node {i} has no replica");
    }

    /// `CLUSTER FAILOVER` on replica `replica`: it takes its primary's
    /// slots over, the primary becoming its replica, as a managed Redis
    /// does in maintenance. Returns once both say so.
    pub async fn fail_over_to(&self, replica: usize) {
        let role = |i: usize| async move {
            let mut c = self.nodes[i].connection().await;
            let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut c).await.unwrap();
            role
        };
        let primary = match role(replica).await.get(2) {
            Some(Value::Int(port)) => self.index_of_port(u16::try_from(*port).unwrap()),
            other => panic!("node {replica} is no replica ({other:?})"),
        };
        let mut c = self.nodes[replica].connection().await;
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query_async(&mut c)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        for (node, now) in [(replica, &b"master"[..]), (primary, &b"slave"[..])] {
            while !matches!(role(node).await.first(), Some(Value::BulkString(r)) if r == now) {
                assert!(Instant::now() < deadline, "the failover never happened");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Waits until node `i` is a primary (after its primary was killed,
    /// once the cluster deems that one failed).
    pub async fn until_primary(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut c = self.nodes[i].connection().await;
        loop {
            let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut c).await.unwrap();
            if matches!(role.first(), Some(Value::BulkString(r)) if r == b"master") {
                return;
            }
            assert!(Instant::now() < deadline, "node {i} never became a primary");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The nodes' `redis://` URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub async fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        'wait: loop {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            for node in &self.nodes {
                let mut c = node.connection().await;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                if !info.contains("cluster_state:ok") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'wait;
                }
            }
            return;
        }
    }

    /// The node holding `key`'s slot, by index, and the slot.
    pub async fn owner_of(&self, key: &str) -> (usize, u16) {
        let mut c = self.nodes[0].connection().await;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        for i in 0..self.nodes.len() {
            if self.node_owns(i, slot).await {
                return (i, slot);
            }
        }
        panic!("no node owns slot {slot}");
    }

    async fn node_owns(&self, i: usize, slot: u16) -> bool {
        let mut c = self.nodes[i].connection().await;
        let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut c)
            .await
            .unwrap();
        slots.iter().any(|range| {
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(owner))) =
                (range.first(), range.get(1), range.get(2))
            else {
                return false;
            };
            let port_matches = matches!(owner.get(1), Some(Value::Int(p))
                if u16::try_from(*p).is_ok_and(|p| self.index_of_port(p) == i));
            (*start..=*end).contains(&i64::from(slot)) && port_matches
        })
    }

    /// The node id of node `i`.
    pub async fn node_id(&self, i: usize) -> String {
        let mut c = self.nodes[i].connection().await;
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut c)
            .await
            .unwrap()
    }

    /// Moves `slot` (with its keys) from node `from` to node `to`, the way
    /// `redis-cli --cluster reshard` does, so clients that knew the old
    /// owner get `MOVED`.
    pub async fn move_slot(&self, slot: u16, from: usize, to: usize) {
        let (from_id, to_id) = (self.node_id(from).await, self.node_id(to).await);
        let mut source = self.nodes[from].connection().await;
        let mut target = self.nodes[to].connection().await;
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&from_id)
            .query_async(&mut target)
            .await
            .unwrap();
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&to_id)
            .query_async(&mut source)
            .await
            .unwrap();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query_async(&mut source)
                .await
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let _: Value = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query_async(&mut source)
                .await
                .unwrap();
        }
        for node in &self.nodes {
            let mut c = node.connection().await;
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        self.wait_until_ok().await;
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
