//! The Redis store on a real 3-node Redis Cluster the test starts on
//! loopback (`redis-server --cluster-enabled yes` ×3, `redis-cli --cluster
//! create`): one credential's lock and record share one slot, the fleet
//! figures hold as on one node, and a slot moving to another node in the
//! middle of a fetch (clients get `MOVED`/`ASK`) costs at most one extra
//! fetch. On six nodes (a replica per primary, TLS everywhere), a failover
//! of the primary holding a credential's slot while fifty layers refresh
//! fails no request; the replay store works on a cluster as on one node.
#![cfg(feature = "redis")]

mod common;
#[path = "support/redis_fleet.rs"]
mod redis_fleet;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::StatusCode;
use redis_server::{ClusterShape, RedisCluster};
use secrecy::ExposeSecret;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::RefreshConfig;
use sinch_auth::token::{RedisTokenStore, StoreKey, Token, TokenFuture, TokenStore};
use sinch_auth::verify::{
    RedisReplayStore, Rejection, Verifier, WebhookVerifier, webhook_signature,
};
use tower::ServiceExt;

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

/// What happens to the primary holding the credential's slot.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Disruption {
    /// `CLUSTER FAILOVER` on its replica, as in a managed Redis' maintenance.
    Failover,
    /// Killed: its replica takes over once the cluster deems it failed.
    Kill,
}

/// Fifty layers on a six-node TLS cluster keep sending requests while the
/// primary holding their credential's slot is `disrupted` during a refresh
/// round. Returns (extra token fetches, failed requests, served requests).
async fn refresh_through(disruption: Disruption) -> Option<(u64, u32, u32)> {
    let shape = ClusterShape {
        replicas: 1,
        tls: true,
    };
    let mut cluster = RedisCluster::start_shaped(shape).await?;
    // 6 s tokens, no jitter: every layer refreshes about 3 s after the cold
    // start, within a few milliseconds of the others.
    let sinch = SinchStandIn::builder()
        .access_key(&redis_fleet::key())
        .token_lifetime(Duration::from_secs(6))
        .start()
        .await
        .unwrap();
    let (urls, ca) = (cluster.tls_urls(), cluster.ca_pem().to_owned());
    let store = || {
        RedisTokenStore::cluster(urls.iter().cloned())
            .ca_certificates_pem(ca.clone())
            .build()
            .unwrap()
    };
    let refresh = RefreshConfig::default().jitter_ratio(0.0);
    let fleet = redis_fleet::fleet(&sinch, &store, refresh);
    let started = tokio::time::Instant::now();
    redis_fleet::call_all(&sinch, &fleet).await;
    assert_eq!(sinch.token_requests(), 1);

    // The primary holding the credential's slot, and its replica.
    let mut token_key = None;
    for node in &cluster.nodes {
        let mut c = node.connection().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut c)
            .await
            .unwrap();
        token_key = token_key.or(keys.into_iter().next());
    }
    let token_key = token_key.expect("the fleet's token is in the cluster");
    let (primary, _) = cluster.owner_of(&token_key).await;
    let replica = cluster.replica_of(primary).await;

    // Every layer keeps sending requests, one every 20 ms.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicU32::new(0));
    let url = format!("{}/v1/projects/proj-r/activeNumbers", sinch.url());
    let mut load = tokio::task::JoinSet::new();
    for member in &fleet {
        let (member, url) = (member.clone(), url.clone());
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let response = member.clone().oneshot(common::get(&url)).await;
                match response {
                    Ok(r) if r.status() == StatusCode::OK => served.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    // The disruption, while the round's one fetch is on its way: the lock
    // is on the primary, the other layers are polling it.
    sinch.delay_tokens(Duration::from_millis(300));
    redis_fleet::until_token_requests(&sinch, 2, Duration::from_secs(5)).await;
    let round = started.elapsed();
    match disruption {
        Disruption::Failover => {
            cluster.fail_over_to(replica).await;
            assert_eq!(
                cluster.owner_of(&token_key).await.0,
                replica,
                "the slot failed over"
            );
        }
        Disruption::Kill => {
            cluster.nodes[primary].kill();
            cluster.until_primary(replica).await;
        }
    }
    let disrupted = started.elapsed();
    // Every layer's refresh is over 1.5 s after the round's first (or,
    // with the slot away, once their fetch of their own is back).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.unwrap();
    }
    let extra = sinch.token_requests() - 2;
    redis_fleet::measured(
        &format!(
            "TLS cluster with replicas: 50 caches refreshing through {disruption:?} of the \
             credential's primary (round from {round:?}, replica primary at {disrupted:?}), \
             extra fetches"
        ),
        extra,
    );
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("measured: TLS cluster {disruption:?}: {served} requests served, {failed} failed");
    assert!(served > 1000, "{served} requests served");
    Some((extra, failed, served))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_credentials_primary_while_fifty_layers_refresh_fails_no_request() {
    let run = tokio::time::timeout(
        Duration::from_secs(30),
        refresh_through(Disruption::Failover),
    );
    let Some((extra, failed, _)) = run.await.expect("the test ends within 30 s") else {
        return;
    };
    assert_eq!(failed, 0, "no request failed");
    assert!(extra <= 1, "{extra} extra fetches through the failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_while_fifty_layers_refresh_fails_no_request() {
    let run = tokio::time::timeout(Duration::from_secs(30), refresh_through(Disruption::Kill));
    let Some((extra, failed, _)) = run.await.expect("the test ends within 30 s") else {
        return;
    };
    assert_eq!(failed, 0, "no request failed");
    // The slot is away until the cluster deems its primary failed: each
    // layer may fetch its own meanwhile, once.
    assert!(extra <= redis_fleet::FLEET as u64, "{extra} extra fetches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_replay_is_refused_by_every_instance() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let secret = "cluster-webhook-secret";
    let fleet: Vec<WebhookVerifier> = (0..4)
        .map(|_| {
            WebhookVerifier::new(secret)
                .replay_store(RedisReplayStore::cluster(cluster.urls()).build().unwrap())
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    for i in 0..40 {
        let nonce = format!("n-cluster-{i}");
        let parts = http::Request::post("/sms")
            .header(
                "x-sinch-webhook-signature",
                webhook_signature(secret, b"{}", &nonce, &now),
            )
            .header("x-sinch-webhook-signature-nonce", &nonce)
            .header("x-sinch-webhook-signature-timestamp", &now)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(fleet[i % 4].verify_async(&parts, b"{}").await.is_ok());
        for instance in &fleet {
            assert_eq!(
                instance.verify_async(&parts, b"{}").await,
                Err(Rejection::Replayed { what: "nonce" })
            );
        }
    }
    // Spread over the nodes by their digests' slots.
    let mut per_node = Vec::new();
    for node in &cluster.nodes {
        let mut c = node.connection().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut c)
            .await
            .unwrap();
        per_node.push(keys.len());
    }
    assert_eq!(per_node.iter().sum::<usize>(), 40);
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
}
