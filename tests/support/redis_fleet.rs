//! Fifty independent layers (each its own cache, refresher, store and
//! connection) sharing one Redis and one token endpoint: the fleet
//! scenarios measured on a plain server, over TLS and on a cluster.
//! Included with `#[path]` next to `redis_server.rs` and `common`.
#![allow(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use http::StatusCode;
use http::header::AUTHORIZATION;
use sinch_auth::testkit::{SinchStandIn, StandInClient};
use sinch_auth::token::{RedisTokenStore, RefreshConfig};
use sinch_auth::{AccessKey, Scheme, SinchAuth, SinchAuthLayer, StaticCredentials};
use tokio::time::Instant;
use tower::Layer;

use super::common::{get, send};
use super::redis_server::Outage;

pub const FLEET: usize = 50;
pub const SECRET: &str = "KEY-SECRET-redis-7f3a";

pub fn key() -> AccessKey {
    AccessKey::new("proj-r", "key-r", SECRET).unwrap()
}

/// One process of the fleet: its own layer (cache and refresher) and its own
/// store (connection and lock owner id), sharing Redis and the token endpoint.
pub fn member(
    sinch: &SinchStandIn,
    store: RedisTokenStore,
    refresh: RefreshConfig,
) -> SinchAuth<StandInClient> {
    SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(refresh)
        .token_store(store)
        .build()
        .unwrap()
        .layer(sinch.client())
}

pub fn fleet(
    sinch: &SinchStandIn,
    store: &dyn Fn() -> RedisTokenStore,
    refresh: RefreshConfig,
) -> Vec<SinchAuth<StandInClient>> {
    (0..FLEET)
        .map(|_| member(sinch, store(), refresh.clone()))
        .collect()
}

/// Sends one API request through every member at once; every one must be
/// accepted by the stand-in. Returns the distinct tokens they carried.
pub async fn call_all(sinch: &SinchStandIn, fleet: &[SinchAuth<StandInClient>]) -> HashSet<String> {
    sinch.clear_requests();
    let url = format!("{}/v1/projects/proj-r/activeNumbers", sinch.url());
    let mut tasks = tokio::task::JoinSet::new();
    for member in fleet {
        let member = member.clone();
        let request = get(&url);
        tasks.spawn(async move { send(&member, request).await });
    }
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let seen: Vec<_> = sinch.requests();
    assert_eq!(seen.len(), fleet.len());
    seen.iter()
        .map(|r| r.headers[AUTHORIZATION].to_str().unwrap().to_owned())
        .collect()
}

/// Prints a figure for docs/redis.md (shown with `--nocapture`).
pub fn measured(what: &str, token_requests: u64) {
    eprintln!("measured: {what}: {token_requests} token requests");
}

/// Waits until the token endpoint has seen `n` requests (or panics).
pub async fn until_token_requests(sinch: &SinchStandIn, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while sinch.token_requests() < n {
        assert!(
            Instant::now() < deadline,
            "only {} token requests after {within:?}, expected {n}",
            sinch.token_requests()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fifty caches cold-starting together make one fetch.
pub async fn cold_start(label: &str, store: &dyn Fn() -> RedisTokenStore) {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    // A realistic fetch time, so every member asks while the first fetch runs.
    sinch.delay_tokens(Duration::from_millis(200));
    let fleet = fleet(&sinch, store, RefreshConfig::default());

    let tokens = call_all(&sinch, &fleet).await;

    measured(
        &format!("{label}50 caches, cold start"),
        sinch.token_requests(),
    );
    assert_eq!(sinch.token_requests(), 1);
    assert_eq!(sinch.tokens_issued(), 1);
    assert_eq!(tokens.len(), 1, "every member uses the one token");
    assert_eq!(sinch.api_accepted(), FLEET as u64);
}

/// The same fifty refreshing ahead of expiry make one fetch.
pub async fn refresh_ahead(label: &str, store: &dyn Fn() -> RedisTokenStore) {
    // 8 s tokens: the caches refresh 2.4–3.6 s after the cold start (half the
    // usable lifetime, less up to a quarter of it as jitter), and the next
    // round cannot start before 4.7 s.
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .token_lifetime(Duration::from_secs(8))
        .start()
        .await
        .unwrap();
    let fleet = fleet(&sinch, store, RefreshConfig::default());
    let started = Instant::now();
    let first = call_all(&sinch, &fleet).await;
    assert_eq!(sinch.token_requests(), 1);
    assert_eq!(first.len(), 1);

    tokio::time::sleep_until(started + Duration::from_millis(4150)).await;
    measured(
        &format!("{label}50 caches, refresh ahead of expiry"),
        sinch.token_requests() - 1,
    );
    assert_eq!(
        sinch.token_requests(),
        2,
        "one fetch for the whole fleet's refresh"
    );
    let second = call_all(&sinch, &fleet).await;
    assert_eq!(second.len(), 1, "every member took the refreshed token");
    assert!(first.is_disjoint(&second), "the members refreshed");
    assert_eq!(sinch.token_requests(), 2);
}

/// Redis dies: every member fetches its own and keeps serving; Redis comes
/// back (empty): the next refresh round is one fetch for the fleet again.
pub async fn down_and_back(
    label: &str,
    store: &dyn Fn() -> RedisTokenStore,
    redis: &mut dyn Outage,
) {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .token_lifetime(Duration::from_secs(6))
        .start()
        .await
        .unwrap();
    // No jitter: with 6 s tokens whose JWT `exp` is in whole seconds, the
    // jitter would blur the refresh rounds this test counts one by one.
    let refresh = RefreshConfig::default().jitter_ratio(0.0);
    let fleet = fleet(&sinch, store, refresh);
    call_all(&sinch, &fleet).await;
    assert_eq!(sinch.token_requests(), 1);

    // Redis dies; each member refreshes about 2.5 s after the cold start.
    redis.kill_all();
    until_token_requests(&sinch, 1 + FLEET as u64, Duration::from_secs(6)).await;
    // The last answers may still be on their way to their caches.
    tokio::time::sleep(Duration::from_millis(300)).await;
    measured(
        &format!("{label}50 caches, one refresh round with Redis down"),
        sinch.token_requests() - 1,
    );
    let during_outage = call_all(&sinch, &fleet).await;
    assert_eq!(
        during_outage.len(),
        FLEET,
        "each member fetched its own token and kept working"
    );
    assert_eq!(sinch.token_requests(), 1 + FLEET as u64);

    // Redis comes back (empty) before the next round, about 2.5 s later.
    redis.restart_all().await;
    let back = Instant::now();
    until_token_requests(&sinch, 2 + FLEET as u64, Duration::from_secs(5)).await;
    // Every member's next refresh falls within 0.5 s of the first one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        back.elapsed() < Duration::from_millis(4500),
        "the round ended in time"
    );
    measured(
        &format!("{label}50 caches, first refresh round after Redis is back"),
        sinch.token_requests() - 1 - FLEET as u64,
    );
    assert_eq!(
        sinch.token_requests(),
        2 + FLEET as u64,
        "one fetch for the fleet once Redis is back"
    );
    let after = call_all(&sinch, &fleet).await;
    assert_eq!(after.len(), 1, "every member took the shared token");
}
