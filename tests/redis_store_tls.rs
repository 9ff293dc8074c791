//! The Redis store over TLS (`rediss://`) against a real `redis-server`
//! started with `--tls-port` and a certificate the test makes: the
//! server's certificate is verified (an unknown CA, or a certificate for
//! another name, gets no token shared and every request still served), a
//! custom CA is trusted, and the fleet figures hold as on plain TCP.
#![cfg(feature = "redis")]

mod common;
#[path = "support/redis_fleet.rs"]
mod redis_fleet;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_server::RedisServer;
use secrecy::ExposeSecret;
use sinch_auth::ConfigError;
use sinch_auth::token::{RedisTokenStore, StoreKey, Token, TokenFuture, TokenStore};

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
