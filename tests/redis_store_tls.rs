//! The Redis store over TLS (`rediss://`) against a real `redis-server`
//! started with `--tls-port` and a certificate the test makes: the
//! server's certificate is verified (an unknown CA, or a certificate for
//! another name, gets no token shared and every request still served), a
//! custom CA is trusted, and the fleet figures hold as on plain TCP; the
//! same over TLS to a Redis Cluster (`--tls-cluster yes`, as ElastiCache
//! with in-transit encryption and Memorystore run), for the token store and
//! the replay store alike.
#![cfg(feature = "redis")]

mod common;
#[path = "support/redis_fleet.rs"]
mod redis_fleet;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_server::{ClusterShape, RedisCluster, RedisServer};
use secrecy::ExposeSecret;
use sinch_auth::ConfigError;
use sinch_auth::token::{RedisTokenStore, StoreKey, Token, TokenFuture, TokenStore};
use sinch_auth::verify::{
    RedisReplayStore, Rejection, Verifier, WebhookVerifier, webhook_signature,
};

fn tls_store(redis: &RedisServer) -> RedisTokenStore {
    let ca = redis.tls.as_ref().unwrap().ca_pem.clone();
    RedisTokenStore::builder(&redis.tls_url())
        .ca_certificates_pem(ca)
        .op_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn store_key() -> StoreKey {
    StoreKey::for_access_key("http://127.0.0.1:1/oauth2/token", &redis_fleet::key())
}

fn counting() -> (Arc<AtomicU32>, impl Fn() -> TokenFuture) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let fetch = move || -> TokenFuture {
        let c = c.clone();
        Box::pin(async move {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Token::new(format!("tok-{n}"), Duration::from_secs(60)))
        })
    };
    (count, fetch)
}

async fn keys_in(redis: &RedisServer) -> Vec<String> {
    let mut c = redis.connection().await;
    redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_are_shared_over_tls_with_a_custom_ca() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    let (count, fetch) = counting();
    let first = tls_store(&redis)
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    let second = tls_store(&redis)
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    assert_eq!(first.value().expose_secret(), "tok-1");
    assert_eq!(second.value().expose_secret(), "tok-1", "shared over TLS");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(
        keys_in(&redis).await.len(),
        1,
        "written through the TLS port"
    );
}

/// A store that must refuse the server: it falls back to fetching locally,
/// shares nothing, and the fetch still succeeds.
async fn refused_server_shares_nothing(redis: &RedisServer, store: RedisTokenStore) {
    let (count, fetch) = counting();
    for _ in 0..2 {
        let token = store
            .get_or_fetch(store_key(), None, fetch())
            .await
            .unwrap();
        assert!(token.value().expose_secret().starts_with("tok-"));
    }
    assert_eq!(count.load(Ordering::SeqCst), 2, "each fetch was local");
    assert!(
        keys_in(redis).await.is_empty(),
        "nothing reached the server"
    );
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_is_not_used() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    // The public web roots do not include the test's CA.
    let store = RedisTokenStore::new(&redis.tls_url()).unwrap();
    refused_server_shares_nothing(&redis, store).await;

    // Another CA, however valid, is not the server's.
    let Some(other) = RedisServer::start_tls().await else {
        return;
    };
    let store = RedisTokenStore::builder(&redis.tls_url())
        .ca_certificates_pem(other.tls.as_ref().unwrap().ca_pem.clone())
        .build()
        .unwrap();
    refused_server_shares_nothing(&redis, store).await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    // The certificate names 127.0.0.1 and localhost; 127.0.0.2 reaches the
    // same server (all of 127/8 is loopback) under a name it does not carry.
    let tls = redis.tls.as_ref().unwrap();
    tokio::net::TcpStream::connect(("127.0.0.2", tls.port))
        .await
        .expect("the server listens on 127.0.0.2 as well");
    // Under a name it carries, the same CA is accepted…
    let (count, fetch) = counting();
    let by_name = || {
        RedisTokenStore::builder(&format!("rediss://localhost:{}/", tls.port))
            .ca_certificates_pem(tls.ca_pem.clone())
            .build()
            .unwrap()
    };
    by_name()
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    by_name()
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "shared under the name localhost"
    );
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();
    // …under one it does not, it is not.
    let store = RedisTokenStore::builder(&format!("rediss://127.0.0.2:{}/", tls.port))
        .ca_certificates_pem(tls.ca_pem.clone())
        .build()
        .unwrap();
    refused_server_shares_nothing(&redis, store).await;
}

#[test]
fn verification_cannot_be_turned_off_and_bad_cas_are_named() {
    let error = RedisTokenStore::new("rediss://127.0.0.1:6380/#insecure").unwrap_err();
    assert!(matches!(
        error,
        ConfigError::InvalidUrl {
            field: "redis url",
            ..
        }
    ));
    let error = RedisTokenStore::builder("rediss://127.0.0.1:6380/")
        .ca_certificates_pem("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        .build()
        .unwrap_err();
    assert!(matches!(
        error,
        ConfigError::InvalidSetting {
            setting: "ca_certificates_pem",
            ..
        }
    ));
    let error = RedisTokenStore::builder("redis://127.0.0.1:6379/")
        .ca_certificates_pem("")
        .build()
        .unwrap_err();
    assert!(matches!(
        error,
        ConfigError::InvalidSetting { setting: "tls", .. }
    ));
}

#[test]
fn tls_does_not_depend_on_the_process_wide_crypto_provider() {
    // No provider is installed in this process (the test binary never
    // installs one); building and (below) connecting must not need one.
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let Some(redis) = RedisServer::start_tls().await else {
            return;
        };
        let (count, fetch) = counting();
        for _ in 0..2 {
            tls_store(&redis)
                .get_or_fetch(store_key(), None, fetch())
                .await
                .unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 1, "shared over TLS");
    });
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_fifty_caches_cold_starting_make_one_fetch() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    redis_fleet::cold_start("TLS: ", &|| tls_store(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_refresh_ahead_makes_one_fetch_for_the_fleet() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    redis_fleet::refresh_ahead("TLS: ", &|| tls_store(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_redis_down_serves_everyone_and_back_shares_again() {
    let Some(mut redis) = RedisServer::start_tls().await else {
        return;
    };
    let (url, ca) = (redis.tls_url(), redis.tls.as_ref().unwrap().ca_pem.clone());
    let make = || {
        RedisTokenStore::builder(&url)
            .ca_certificates_pem(ca.clone())
            .op_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    redis_fleet::down_and_back("TLS: ", &make, &mut redis).await;
}

const TLS_CLUSTER: ClusterShape = ClusterShape {
    replicas: 0,
    tls: true,
};

fn tls_cluster_store(cluster: &RedisCluster) -> RedisTokenStore {
    RedisTokenStore::cluster(cluster.tls_urls())
        .ca_certificates_pem(cluster.ca_pem())
        .op_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_tls_cluster_fifty_caches_cold_starting_make_one_fetch() {
    let Some(cluster) = RedisCluster::start_shaped(TLS_CLUSTER).await else {
        return;
    };
    redis_fleet::cold_start("TLS cluster: ", &|| tls_cluster_store(&cluster)).await;
    // The record is on the cluster.
    let mut found = 0;
    for node in &cluster.nodes {
        found += keys_in(node).await.len();
    }
    assert!(found >= 1, "the fleet's token is in the cluster");
}

#[test]
fn a_tls_cluster_needs_no_process_wide_crypto_provider_and_checks_certificates() {
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let Some(cluster) = RedisCluster::start_shaped(TLS_CLUSTER).await else {
            return;
        };
        let (count, fetch) = counting();
        for _ in 0..2 {
            tls_cluster_store(&cluster)
                .get_or_fetch(store_key(), None, fetch())
                .await
                .unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 1, "shared over TLS");

        // A CA of its own (the nodes' certificates are not signed by it):
        // nothing is shared, every fetch still served.
        let other = RedisServer::start_tls().await.unwrap();
        let untrusting = || {
            RedisTokenStore::cluster(cluster.tls_urls())
                .ca_certificates_pem(other.tls.as_ref().unwrap().ca_pem.clone())
                .op_timeout(Duration::from_millis(500))
                .build()
                .unwrap()
        };
        let (count, fetch) = counting();
        let key = StoreKey::derive(b"another credential", &["tls-cluster"]);
        for _ in 0..2 {
            untrusting()
                .get_or_fetch(key.clone(), None, fetch())
                .await
                .unwrap();
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "an untrusted cluster is not used"
        );
    });
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
}

#[test]
fn cluster_urls_are_all_tls_or_none_and_tls_settings_need_them() {
    let mixed = RedisTokenStore::cluster(["rediss://127.0.0.1:7000", "redis://127.0.0.1:7001"])
        .build()
        .unwrap_err();
    assert!(matches!(
        mixed,
        ConfigError::InvalidUrl {
            field: "redis cluster urls",
            ..
        }
    ));
    let insecure = RedisTokenStore::cluster(["rediss://127.0.0.1:7000/#insecure"])
        .build()
        .unwrap_err();
    assert!(matches!(insecure, ConfigError::InvalidUrl { .. }));
    let plain_with_ca = RedisTokenStore::cluster(["redis://127.0.0.1:7000"])
        .ca_certificates_pem("")
        .build()
        .unwrap_err();
    assert!(matches!(
        plain_with_ca,
        ConfigError::InvalidSetting { setting: "tls", .. }
    ));
    let replay_mixed = RedisReplayStore::cluster(["rediss://127.0.0.1:7000", "redis://h:1"])
        .build()
        .unwrap_err();
    assert!(matches!(replay_mixed, ConfigError::InvalidUrl { .. }));
    let store = RedisReplayStore::cluster(["rediss://u:pw-secret@127.0.0.1:7000"])
        .build()
        .unwrap();
    let shown = format!("{store:?}");
    assert!(
        shown.contains("127.0.0.1:7000") && !shown.contains("pw-secret"),
        "{shown}"
    );
}

const WEBHOOK_SECRET: &str = "tls-webhook-secret";

fn webhook(nonce: &str) -> http::request::Parts {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    http::Request::post("/sms")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(WEBHOOK_SECRET, b"{}", nonce, &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// Four instances, each with its own store: one accepts, all refuse the replay.
async fn replays_are_refused_fleet_wide(make: &dyn Fn() -> RedisReplayStore) {
    let fleet: Vec<WebhookVerifier> = (0..4)
        .map(|_| WebhookVerifier::new(WEBHOOK_SECRET).replay_store(make()))
        .collect();
    for i in 0..20 {
        let parts = webhook(&format!("n-tls-{i}"));
        assert!(fleet[i % 4].verify_async(&parts, b"{}").await.is_ok());
        for instance in &fleet {
            assert_eq!(
                instance.verify_async(&parts, b"{}").await,
                Err(Rejection::Replayed { what: "nonce" })
            );
        }
    }
}

#[tokio::test]
async fn the_replay_store_speaks_tls_to_a_node_and_to_a_cluster() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    let ca = redis.tls.as_ref().unwrap().ca_pem.clone();
    let url = redis.tls_url();
    replays_are_refused_fleet_wide(&|| {
        RedisReplayStore::builder(&url)
            .ca_certificates_pem(ca.clone())
            .build()
            .unwrap()
            .when_unavailable(sinch_auth::verify::WhenUnavailable::FailClosed)
    })
    .await;
    assert_eq!(keys_in(&redis).await.len(), 20);

    let cluster = RedisCluster::start_shaped(TLS_CLUSTER).await.unwrap();
    replays_are_refused_fleet_wide(&|| {
        RedisReplayStore::cluster(cluster.tls_urls())
            .ca_certificates_pem(cluster.ca_pem())
            .build()
            .unwrap()
            .when_unavailable(sinch_auth::verify::WhenUnavailable::FailClosed)
    })
    .await;
    let mut keys = 0;
    for node in &cluster.nodes {
        keys += keys_in(node).await.len();
    }
    assert_eq!(keys, 20, "every entry is in the cluster");
}
