//! A real `redis-server` on loopback for the Redis store's tests, started
//! and killed by the test itself. Included with `#[path]` by the test files
//! that need it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A `redis-server` child process on a free loopback port, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
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

    async fn start_on_free_port(extra: &[&str]) -> Self {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut server = Self {
                child: None,
                port,
                args: args.clone(),
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
