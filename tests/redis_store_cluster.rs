//! The Redis store on a real 3-node Redis Cluster the test starts on
//! loopback (`redis-server --cluster-enabled yes` ×3, `redis-cli --cluster
//! create`): one credential's lock and record share one slot, the fleet
//! figures hold as on one node, and a slot moving to another node in the
//! middle of a fetch (clients get `MOVED`/`ASK`) costs at most one extra
//! fetch.
#![cfg(feature = "redis")]

mod common;
#[path = "support/redis_fleet.rs"]
mod redis_fleet;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_server::RedisCluster;
use secrecy::ExposeSecret;
use sinch_auth::token::{RedisTokenStore, StoreKey, Token, TokenFuture, TokenStore};

fn cluster_store(urls: &[String]) -> RedisTokenStore {
    RedisTokenStore::cluster(urls.iter().cloned())
        .op_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn store_key() -> StoreKey {
    StoreKey::for_access_key("http://127.0.0.1:1/oauth2/token", &redis_fleet::key())
}

fn names(prefix: &str) -> [String; 3] {
    let name = store_key().name().to_owned();
    ["token", "lock", "failed"].map(|kind| format!("{prefix}{{{name}}}:{kind}"))
}

/// A source counting its runs, each taking `delay`.
fn counting(delay: Duration) -> (Arc<AtomicU32>, impl Fn() -> TokenFuture) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let fetch = move || -> TokenFuture {
        let c = c.clone();
        Box::pin(async move {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(delay).await;
            Ok(Token::new(format!("tok-{n}"), Duration::from_secs(60)))
        })
    };
    (count, fetch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credentials_lock_and_record_share_one_slot() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let [token, lock, failed] = names("sinch-auth:");
    let (token_node, token_slot) = cluster.owner_of(&token).await;
    assert_eq!(cluster.owner_of(&lock).await, (token_node, token_slot));
    assert_eq!(cluster.owner_of(&failed).await, (token_node, token_slot));

    // The lock is taken on that node while the fetch runs, and the token
    // lands there.
    let store = cluster_store(&cluster.urls());
    let (count, fetch) = counting(Duration::from_millis(300));
    let fetching = tokio::spawn({
        let store = store.clone();
        let fetch = fetch();
        async move { store.get_or_fetch(store_key(), None, fetch).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut node = cluster.nodes[token_node].connection().await;
    let held: Option<String> = redis::cmd("GET")
        .arg(&lock)
        .query_async(&mut node)
        .await
        .unwrap();
    assert!(held.is_some(), "the lock is on the record's node");
    let got = fetching.await.unwrap().unwrap();
    assert_eq!(got.value().expose_secret(), "tok-1");
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&token)
        .query_async(&mut node)
        .await
        .unwrap();
    assert!(stored.is_some(), "the token is on the same node");
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // Another process, through another seed node, takes it.
    let urls = cluster.urls();
    let other = cluster_store(&urls[(token_node + 1) % 3..=(token_node + 1) % 3]);
    let taken = other
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    assert_eq!(taken.value().expose_secret(), "tok-1");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_fifty_caches_cold_starting_make_one_fetch() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let urls = cluster.urls();
    redis_fleet::cold_start("Cluster: ", &|| cluster_store(&urls)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_refresh_ahead_makes_one_fetch_for_the_fleet() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let urls = cluster.urls();
    redis_fleet::refresh_ahead("Cluster: ", &|| cluster_store(&urls)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_redis_down_serves_everyone_and_back_shares_again() {
    let Some(mut cluster) = RedisCluster::start().await else {
        return;
    };
    let urls = cluster.urls();
    redis_fleet::down_and_back("Cluster: ", &|| cluster_store(&urls), &mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moving_mid_fetch_costs_at_most_one_extra_fetch() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let urls = cluster.urls();
    // Fifty processes, connected (and knowing the slot map) before the move.
    let stores: Vec<_> = (0..redis_fleet::FLEET)
        .map(|_| cluster_store(&urls))
        .collect();
    let (count, fetch) = counting(Duration::from_millis(400));
    let warm = counting(Duration::ZERO);
    for store in &stores {
        // Connects; no token for this other credential.
        let _ = store
            .get_or_fetch(
                StoreKey::derive(b"warm-up secret", &["warm"]),
                None,
                (warm.1)(),
            )
            .await;
    }

    let [token, ..] = names("sinch-auth:");
    let (from, slot) = cluster.owner_of(&token).await;
    let to = (from + 1) % 3;
    let mut asks = tokio::task::JoinSet::new();
    for store in &stores {
        let store = store.clone();
        let fetch = fetch();
        asks.spawn(async move { store.get_or_fetch(store_key(), None, fetch).await });
    }
    // The slot moves, lock and all, while the first fetch runs.
    tokio::time::sleep(Duration::from_millis(150)).await;
    cluster.move_slot(slot, from, to).await;
    let mut tokens = std::collections::HashSet::new();
    while let Some(result) = asks.join_next().await {
        tokens.insert(result.unwrap().unwrap().value().expose_secret().to_owned());
    }
    assert_eq!(cluster.owner_of(&token).await.0, to, "the slot moved");
    let fetches = count.load(Ordering::SeqCst);
    redis_fleet::measured(
        "Cluster: 50 stores, cold start while the slot moves to another node",
        u64::from(fetches),
    );
    assert!(
        (1..=2).contains(&fetches),
        "{fetches} fetches: single flight lost beyond one extra fetch"
    );
    assert!(tokens.len() <= 2);

    // Afterwards the moved record serves everyone, through stale slot maps.
    let before = count.load(Ordering::SeqCst);
    for store in &stores {
        store
            .get_or_fetch(store_key(), None, fetch())
            .await
            .unwrap();
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        before,
        "served from the new node"
    );
}
