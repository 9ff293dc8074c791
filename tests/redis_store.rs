//! Fleet-wide token sharing through a real `redis-server` on loopback: one
//! fetch for fifty cold caches, one fetch for the fleet's refresh ahead of
//! expiry, local fetches while Redis is down and sharing again once it is
//! back, the lock's expiry and ownership, shared refusals and the key layout.
//! (No token or secret in the logs: `redis_store_logs.rs`.)
//!
//! Each test starts its own `redis-server` (see [`RedisServer`]); CI installs
//! the package (`.ci/run`).
#![cfg(feature = "redis")]

mod common;
#[path = "support/redis_fleet.rs"]
mod redis_fleet;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{get, send};
use http::StatusCode;
use http::header::AUTHORIZATION;
use redis_fleet::{FLEET, SECRET, call_all, fleet, key, measured, member, until_token_requests};
use redis_server::RedisServer;
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::{RedisTokenStore, RefreshConfig, StoreKey, Token, TokenStore};
use sinch_auth::{
    AccessKey, FetchError, RotatingCredentials, Scheme, SinchAuthLayer, StaticCredentials,
};
use tokio::time::Instant;
use tower::Layer;

fn store(redis: &RedisServer) -> RedisTokenStore {
    RedisTokenStore::builder(&redis.url())
        .op_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_caches_cold_starting_together_make_exactly_one_fetch() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    redis_fleet::cold_start("", &|| store(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_fifty_caches_make_fifty_fetches() {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    sinch.delay_tokens(Duration::from_millis(200));
    let fleet: Vec<_> = (0..FLEET)
        .map(|_| {
            SinchAuthLayer::builder(StaticCredentials::new(key()))
                .scheme(Scheme::OAuth2)
                .auth_host(&sinch.url())
                .build()
                .unwrap()
                .layer(sinch.client())
        })
        .collect();

    let tokens = call_all(&sinch, &fleet).await;

    measured(
        "50 caches without a store, cold start",
        sinch.token_requests(),
    );
    assert_eq!(sinch.token_requests(), FLEET as u64);
    assert_eq!(tokens.len(), FLEET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_of_expiry_makes_one_fetch_for_the_fleet() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    redis_fleet::refresh_ahead("", &|| store(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_members_fetch_locally_and_share_again_once_it_is_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let url = redis.url();
    let make = || {
        RedisTokenStore::builder(&url)
            .op_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    redis_fleet::down_and_back("", &make, &mut redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_shared_so_the_fleet_backs_off_together() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    sinch.delay_tokens(Duration::from_millis(50));
    // The endpoint answers 429 (no Retry-After) until healed.
    sinch.fail_all_token_requests(TokenFailure::too_many_requests(None));
    let refresh = RefreshConfig::default()
        .backoff_base(Duration::from_millis(100))
        .backoff_cap(Duration::from_millis(400));
    let fleet = fleet(&sinch, &|| store(&redis), refresh);

    let while_refused = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let refused = sinch.token_requests();
        sinch.heal_tokens();
        refused
    };
    let (tokens, refused) = tokio::join!(call_all(&sinch, &fleet), while_refused);
    measured("50 caches, cold start during 1.5 s of 429s", refused);

    // Each refusal holds the fleet off for a second: one at the start, one
    // when the hold ends. Without sharing, the fifty members' retries would
    // take turns at the lock every ~50 ms.
    assert!(
        (1..=2).contains(&refused),
        "{refused} token requests in 1.5 s of 429s"
    );
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        sinch.token_requests(),
        refused + 1,
        "once healed, one fetch for the fleet"
    );
}

/// A source counting its fetches, issuing `tok-1`, `tok-2`, … for `lifetime`.
fn counting(lifetime: Duration) -> (Arc<AtomicU32>, impl Fn() -> sinch_auth::token::TokenFuture) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let fetch = move || -> sinch_auth::token::TokenFuture {
        let c = c.clone();
        Box::pin(async move {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Token::new(format!("tok-{n}"), lifetime))
        })
    };
    (count, fetch)
}

fn store_key() -> StoreKey {
    StoreKey::for_access_key("http://127.0.0.1:1/oauth2/token", &key())
}

fn value(token: &Token) -> String {
    use secrecy::ExposeSecret;
    token.value().expose_secret().to_owned()
}

#[tokio::test]
async fn a_process_refreshing_ahead_never_gets_its_own_token_back() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let lifetime = Duration::from_secs(2);
    let (count, fetch) = counting(lifetime);
    let (a, b) = (store(&redis), store(&redis));

    let first = a.get_or_fetch(store_key(), None, fetch()).await.unwrap();
    assert_eq!(value(&first), "tok-1");
    let shared = b.get_or_fetch(store_key(), None, fetch()).await.unwrap();
    assert_eq!(
        value(&shared),
        "tok-1",
        "a cold start takes the stored token"
    );
    assert!(shared.expires_in() <= lifetime);
    assert!(shared.expires_in() > lifetime - Duration::from_millis(300));
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // Both hold tok-1 until 1.8 s after it was obtained (its lifetime less
    // the cache's skew) and refresh it halfway, as the cache does: they must
    // be given one that outlives the 0.9 s they still hold tok-1 for. tok-1
    // is what A is replacing, so A must fetch…
    tokio::time::sleep(lifetime.mul_f64(0.45)).await;
    let must_outlive = Some(lifetime.mul_f64(0.45));
    let renewed = a
        .get_or_fetch(store_key(), must_outlive, fetch())
        .await
        .unwrap();
    assert_eq!(value(&renewed), "tok-2");
    // …and B, refreshing the same token a moment later, takes A's new one.
    let taken = b
        .get_or_fetch(store_key(), must_outlive, fetch())
        .await
        .unwrap();
    assert_eq!(value(&taken), "tok-2");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// What one fetch does while another process holds the fleet's lock.
struct UnderForeignLock {
    token: Token,
    fetches: u32,
    waited: Duration,
    lock_after: Option<String>,
    store: RedisTokenStore,
    fetch: Box<dyn Fn() -> sinch_auth::token::TokenFuture>,
}

/// Another process (`owner`) holds the lock for `lock_ms`; a store with
/// `max_wait` asks for a token.
async fn fetch_under_foreign_lock(
    redis: &RedisServer,
    owner: &str,
    lock_ms: u64,
    max_wait: Duration,
) -> UnderForeignLock {
    let mut c = redis.connection().await;
    let lock_key = format!("sinch-auth:{{{}}}:lock", store_key().name());
    let _: () = redis::cmd("SET")
        .arg(&lock_key)
        .arg(owner)
        .arg("PX")
        .arg(lock_ms)
        .query_async(&mut c)
        .await
        .unwrap();
    let (count, fetch) = counting(Duration::from_secs(60));
    let store = RedisTokenStore::builder(&redis.url())
        .max_wait(max_wait)
        .build()
        .unwrap();
    let started = Instant::now();
    let token = store
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    let waited = started.elapsed();
    let lock_after: Option<String> = redis::cmd("GET")
        .arg(&lock_key)
        .query_async(&mut c)
        .await
        .unwrap();
    UnderForeignLock {
        token,
        fetches: count.load(Ordering::SeqCst),
        waited,
        lock_after,
        store,
        fetch: Box::new(fetch),
    }
}

#[tokio::test]
async fn a_dead_holders_lock_expires_and_one_waiter_takes_over() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let run =
        fetch_under_foreign_lock(&redis, "a-process-that-died", 400, Duration::from_secs(3)).await;
    assert_eq!(value(&run.token), "tok-1");
    assert_eq!(run.fetches, 1);
    assert!(
        run.waited >= Duration::from_millis(350),
        "waited {:?} for the lock to expire",
        run.waited
    );
    assert!(
        run.waited < Duration::from_secs(2),
        "took the lock over in {:?}, not at max_wait",
        run.waited
    );
    assert_eq!(run.lock_after, None, "the new holder released its lock");
}

#[tokio::test]
async fn a_waiter_fetches_locally_after_max_wait_and_leaves_anothers_lock_alone() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let run =
        fetch_under_foreign_lock(&redis, "a-slow-process", 10_000, Duration::from_millis(300))
            .await;
    assert_eq!(value(&run.token), "tok-1");
    assert_eq!(run.fetches, 1);
    assert!(
        run.waited >= Duration::from_millis(300),
        "gave up after {:?}",
        run.waited
    );
    assert!(run.waited < Duration::from_secs(2));
    assert_eq!(run.lock_after.as_deref(), Some("a-slow-process"));
    // The local fetch is still shared with whoever comes next.
    let next = run
        .store
        .get_or_fetch(store_key(), None, (run.fetch)())
        .await
        .unwrap();
    assert_eq!(value(&next), "tok-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_carry_the_prefix_and_the_identity_hash_never_the_secret() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    let store = RedisTokenStore::builder(&redis.url())
        .key_prefix("billing:sinch:")
        .build()
        .unwrap();
    let member = member(&sinch, store, RefreshConfig::default());
    let (status, _) = send(&member, get(format!("{}/v1/x", sinch.url()))).await;
    assert_eq!(status, StatusCode::OK);

    let mut c = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    let identity = StoreKey::for_access_key(&format!("{}/oauth2/token", sinch.url()), &key());
    assert_eq!(
        keys,
        vec![format!("billing:sinch:{{{}}}:token", identity.name())]
    );
    assert!(!keys[0].contains(SECRET) && !keys[0].contains("key-r") && !keys[0].contains("proj-r"));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        (3_500_000..=3_600_000).contains(&ttl),
        "stored with its expiry: {ttl} ms"
    );
}

#[tokio::test]
async fn a_refused_fetch_reaches_the_waiters_as_the_endpoints_error() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let store = store(&redis);
    let refused: sinch_auth::token::TokenFuture = Box::pin(async {
        Err(FetchError::Endpoint {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: Some("rate_limited".into()),
            description: None,
            retry_after: Some(Duration::from_secs(2)),
        })
    });
    let error = store
        .get_or_fetch(store_key(), None, refused)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));

    // Another process asking now backs off with it instead of fetching.
    let (count, fetch) = counting(Duration::from_secs(60));
    let error = store
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(error.sinch_error(), Some("rate_limited"));
    assert!(error.is_transient());
    match error {
        // What is left of the fleet's hold, read from Redis's clock.
        FetchError::Endpoint { retry_after, .. } => assert!(
            retry_after.is_some_and(|r| r <= Duration::from_secs(2) && r > Duration::from_secs(1)),
            "{retry_after:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_acl_in_the_docs_is_all_the_store_needs() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut admin = redis.connection().await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("sinch-auth")
        .arg("on")
        .arg(">acl-pw-1")
        .arg("resetkeys")
        .arg("~billing:sinch:*")
        .arg("resetchannels")
        .arg("-@all")
        .arg(
            "+get +set +pttl +del +strlen +getrange +evalsha +script|load"
                .split(' ')
                .collect::<Vec<_>>(),
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://sinch-auth:acl-pw-1@127.0.0.1:{}/", redis.port);
    let (count, fetch) = counting(Duration::from_secs(60));
    let stores: Vec<_> = (0..2)
        .map(|_| {
            RedisTokenStore::builder(&url)
                .key_prefix("billing:sinch:")
                .build()
                .unwrap()
        })
        .collect();

    let first = stores[0]
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    // Junk too large to read at the refusal key: the second store looks at
    // its first bytes only and deletes it, with the same user.
    let failed = format!("billing:sinch:{{{}}}:failed", store_key().name());
    let _: () = redis::cmd("SET")
        .arg(&failed)
        .arg(vec![b'x'; 64 * 1024])
        .arg("PX")
        .arg(30_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let second = stores[1]
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();

    assert_eq!(value(&first), "tok-1");
    assert_eq!(
        value(&second),
        "tok-1",
        "shared through Redis, not fetched again"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let junk: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&failed)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(junk, None, "the junk was deleted");
    // The same user may not touch keys outside the prefix.
    let mut limited = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let denied: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("elsewhere")
        .query_async(&mut limited)
        .await;
    assert!(denied.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_makes_one_fetch_for_the_fleet() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let new_key = || AccessKey::new("proj-r", "key-r2", "KEY-SECRET-redis-r2").unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .access_key(&new_key())
        .start()
        .await
        .unwrap();
    let providers: Vec<_> = (0..FLEET)
        .map(|_| RotatingCredentials::new(key()))
        .collect();
    let fleet: Vec<_> = providers
        .iter()
        .map(|provider| {
            SinchAuthLayer::builder(provider.clone())
                .scheme(Scheme::OAuth2)
                .auth_host(&sinch.url())
                .token_store(store(&redis))
                .build()
                .unwrap()
                .layer(sinch.client())
        })
        .collect();
    call_all(&sinch, &fleet).await;
    assert_eq!(sinch.token_requests(), 1);

    // Every member's refresher refetches at once for the new key. The tokens
    // they hold for the old key, however fresh, say nothing about the new one.
    for provider in &providers {
        provider.rotate(new_key());
    }
    until_token_requests(&sinch, 2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tokens = call_all(&sinch, &fleet).await;

    measured(
        "50 caches, rotation to a new key",
        sinch.token_requests() - 1,
    );
    assert_eq!(tokens.len(), 1);
    assert!(
        sinch
            .requests()
            .iter()
            .all(|r| r.accepted_as.as_deref() == Some("oauth2:key-r2"))
    );
    assert_eq!(
        sinch.token_requests(),
        2,
        "one fetch for the new key, for the whole fleet"
    );
}

/// A custom source counting its fetches, shared under `key` (if any).
struct VaultSource {
    fetches: Arc<AtomicU32>,
    key: Option<StoreKey>,
}

impl sinch_auth::token::TokenSource for VaultSource {
    fn fetch(&self, _request: sinch_auth::token::FetchRequest) -> sinch_auth::token::TokenFuture {
        // Counted when run: a store may drop the future unpolled.
        let fetches = self.fetches.clone();
        Box::pin(async move {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Token::new(format!("vault-{n}"), Duration::from_secs(600)))
        })
    }

    fn share_key(&self, _credentials: &sinch_auth::Credentials) -> Option<StoreKey> {
        self.key.clone()
    }
}

/// Two processes using a custom source, with no access key at all.
async fn two_processes_with_a_custom_source(
    redis: &RedisServer,
    key: Option<StoreKey>,
) -> (u32, Vec<String>) {
    let fetches = Arc::new(AtomicU32::new(0));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let capture = common::Capture::default();
        let layer = SinchAuthLayer::builder(StaticCredentials::new(
            sinch_auth::ServicePlan::new("plan-1", "plan-token-1").unwrap(),
        ))
        .scheme(Scheme::OAuth2)
        .token_source(VaultSource {
            fetches: fetches.clone(),
            key: key.clone(),
        })
        .token_store(store(redis))
        .build()
        .unwrap()
        .layer(capture.service());
        let response = tower::ServiceExt::oneshot(layer, get("http://127.0.0.1:1/v1/x"))
            .await
            .expect("the custom source's token was used");
        assert_eq!(response.status(), StatusCode::OK);
        seen.push(
            capture.last().headers[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    (fetches.load(Ordering::SeqCst), seen)
}

#[tokio::test]
async fn a_custom_source_without_a_share_key_bypasses_the_store() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (fetches, seen) = two_processes_with_a_custom_source(&redis, None).await;
    assert_eq!(seen, ["Bearer vault-1", "Bearer vault-2"]);
    assert_eq!(fetches, 2, "each process fetched its own");
    let mut c = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.is_empty(), "nothing was shared: {keys:?}");
}

#[tokio::test]
async fn a_custom_source_with_its_own_share_key_is_shared() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let key = StoreKey::derive(
        b"the vault's own secret, 32 bytes+",
        &["my-vault", "account-7"],
    );
    let (fetches, seen) = two_processes_with_a_custom_source(&redis, Some(key)).await;
    assert_eq!(seen, ["Bearer vault-1", "Bearer vault-1"]);
    assert_eq!(fetches, 1, "the second process took the shared token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_with_max_wait_beyond_the_fetch_timeout_still_fetches_locally() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    // Both settings are accepted; the wait must end while the fetch still
    // has time to ask the endpoint itself.
    let refresh = RefreshConfig::default()
        .fetch_timeout(Duration::from_secs(1))
        .backoff_base(Duration::from_millis(50))
        .backoff_cap(Duration::from_millis(200));
    let store = RedisTokenStore::builder(&redis.url())
        .max_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let process = member(&sinch, store, refresh);
    // Another process holds the layer's fetch lock for a minute.
    let name = StoreKey::for_access_key(&format!("{}/oauth2/token", sinch.url()), &key());
    let lock_key = format!("sinch-auth:{{{}}}:lock", name.name());
    let mut c = redis.connection().await;
    let _: () = redis::cmd("SET")
        .arg(&lock_key)
        .arg("a-stuck-process")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let request = get(format!("{}/v1/projects/proj-r/activeNumbers", sinch.url()));
    let (status, _) = tokio::time::timeout(Duration::from_secs(10), send(&process, request))
        .await
        .expect("the request was answered");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sinch.token_requests(), 1, "the endpoint was asked once");
    let lock: Option<String> = redis::cmd("GET")
        .arg(&lock_key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(lock.as_deref(), Some("a-stuck-process"), "left alone");
}
