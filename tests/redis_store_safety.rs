//! A shared Redis must not hand out tokens: against a real `redis-server`
//! on loopback, a process with the owner's project id and key id but a
//! made-up secret gets nothing and harms nobody, an authentication failure
//! is never shared, no token is in Redis in plaintext, and every bad record
//! (unreadable, empty token, a token no header can carry, no expiry, a
//! refusal that would block for ever, a forged refusal) is replaced by a
//! fetch from the endpoint instead of stalling the fleet.
#![cfg(feature = "redis")]

mod common;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use common::get;
use http::StatusCode;
use http::header::AUTHORIZATION;
use redis_server::RedisServer;
use secrecy::ExposeSecret;
use sinch_auth::clock::ManualClock;
use sinch_auth::testkit::{SinchStandIn, StandInClient, TokenFailure};
use sinch_auth::token::{
    RedisTokenStore, RefreshConfig, RefusedToken, StoreKey, Token, TokenFuture, TokenStore,
};
use sinch_auth::{AccessKey, FetchError, Scheme, SinchAuth, SinchAuthLayer, StaticCredentials};
use tower::{Layer, ServiceExt};

const SECRET: &str = "KEY-SECRET-owner-5d21";
const PROJECT: &str = "proj-s";
const KEY_ID: &str = "key-s";

fn owner_key() -> AccessKey {
    AccessKey::new(PROJECT, KEY_ID, SECRET).unwrap()
}

fn member(sinch: &SinchStandIn, redis: &RedisServer, key: AccessKey) -> SinchAuth<StandInClient> {
    SinchAuthLayer::builder(StaticCredentials::new(key))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(
            RefreshConfig::default()
                .backoff_base(Duration::from_millis(50))
                .backoff_cap(Duration::from_millis(200)),
        )
        .token_store(RedisTokenStore::new(&redis.url()).unwrap())
        .build()
        .unwrap()
        .layer(sinch.client())
}

/// One API request: the status, or that the layer failed it (no token).
async fn try_send(member: &SinchAuth<StandInClient>, sinch: &SinchStandIn) -> Option<StatusCode> {
    let request = get(format!(
        "{}/v1/projects/{PROJECT}/activeNumbers",
        sinch.url()
    ));
    let call = member.clone().oneshot(request);
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(Ok(response)) => Some(response.status()),
        Ok(Err(_)) => None,
        Err(_) => panic!("the request hung"),
    }
}

/// Every key and every string value in Redis.
async fn dump(redis: &RedisServer) -> Vec<(String, Vec<u8>)> {
    let mut c = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        out.push((key, value.unwrap_or_default()));
    }
    out
}

fn bearer_of_last_request(sinch: &SinchStandIn) -> String {
    let header = sinch.last_request().unwrap().headers[AUTHORIZATION]
        .to_str()
        .unwrap()
        .to_owned();
    header.strip_prefix("Bearer ").unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gets_nothing_and_harms_nobody() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&owner_key())
        .start()
        .await
        .unwrap();
    let owner = member(&sinch, &redis, owner_key());
    assert_eq!(try_send(&owner, &sinch).await, Some(StatusCode::OK));
    let owners_token = bearer_of_last_request(&sinch);
    assert_eq!(sinch.token_requests(), 1);

    // Another process knows the project id and the key id (both appear in
    // logs and API paths), shares the Redis and its prefix, and makes up
    // the secret.
    let impostor_key = AccessKey::new(PROJECT, KEY_ID, "a-made-up-secret").unwrap();
    let impostor = member(&sinch, &redis, impostor_key);
    sinch.clear_requests();
    let mut owner_statuses = Vec::new();
    for _ in 0..10 {
        let (theirs, ours) = tokio::join!(try_send(&impostor, &sinch), async {
            // The owner's process restarting: a cold cache that asks Redis.
            let fresh_owner = member(&sinch, &redis, owner_key());
            try_send(&fresh_owner, &sinch).await
        });
        assert_ne!(
            theirs,
            Some(StatusCode::OK),
            "the impostor's request went through"
        );
        owner_statuses.push(ours);
    }
    assert!(
        owner_statuses.iter().all(|s| *s == Some(StatusCode::OK)),
        "owner requests failed while the impostor ran: {owner_statuses:?}"
    );
    let requests = sinch.requests();
    assert!(
        requests
            .iter()
            .filter_map(|r| r.headers.get(AUTHORIZATION))
            .all(|h| h.to_str().unwrap() == format!("Bearer {owners_token}")),
        "only the owner's token reached the API"
    );
    assert_eq!(
        requests.len(),
        10,
        "no impostor request reached the API, every owner request did"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.accepted_as.as_deref() == Some(&format!("oauth2:{KEY_ID}")[..]))
    );
    // The impostor did ask the endpoint (and was refused); the owner's
    // restarts all took the shared token.
    let owner_fetches = 1;
    assert!(sinch.token_requests() > owner_fetches);
    assert_eq!(
        sinch.tokens_issued(),
        1,
        "only the owner was ever issued a token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_failure_is_not_shared_with_the_fleet() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&owner_key())
        .start()
        .await
        .unwrap();
    // The endpoint refuses one process's credentials (a revoked key being
    // replaced, a proxy misfiring): that says nothing about the others.
    sinch.fail_next_token_requests(1, TokenFailure::status(StatusCode::UNAUTHORIZED));
    let first = member(&sinch, &redis, owner_key());
    // Whether the first process recovers after its backoff in time does not
    // matter here; the next process must not inherit its refusal.
    let _ = try_send(&first, &sinch).await;
    let second = member(&sinch, &redis, owner_key());
    assert_eq!(
        try_send(&second, &sinch).await,
        Some(StatusCode::OK),
        "the 401 was shared through Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_never_in_redis_in_plaintext() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&owner_key())
        .start()
        .await
        .unwrap();
    let owner = member(&sinch, &redis, owner_key());
    assert_eq!(try_send(&owner, &sinch).await, Some(StatusCode::OK));
    let token = bearer_of_last_request(&sinch);
    // A second process takes it from Redis: what is stored is usable…
    let other = member(&sinch, &redis, owner_key());
    assert_eq!(try_send(&other, &sinch).await, Some(StatusCode::OK));
    assert_eq!(bearer_of_last_request(&sinch), token);
    assert_eq!(sinch.token_requests(), 1);

    // …yet neither the token, nor any part of it, nor the secret, nor the
    // identity is in Redis as text.
    let stored = dump(&redis).await;
    assert!(!stored.is_empty());
    let signature = token.rsplit('.').next().unwrap();
    for (key, value) in &stored {
        for needle in [&token[..], signature, SECRET, KEY_ID, PROJECT] {
            assert!(!key.contains(needle), "{key} contains {needle}");
            assert!(
                !value.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{key}'s value contains {needle}"
            );
        }
        assert!(
            !value
                .windows(16)
                .any(|w| token.as_bytes().windows(16).any(|t| t == w)),
            "{key}'s value shares 16 bytes with the token"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_no_header_can_carry_does_not_stall_the_fleet() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&owner_key())
        .start()
        .await
        .unwrap();
    // One answer carries a token a header cannot carry.
    sinch.fail_next_token_requests(
        1,
        TokenFailure::ok_with_body(
            r#"{"access_token":"bad\r\ntoken","token_type":"bearer","expires_in":600}"#,
        ),
    );
    let first = member(&sinch, &redis, owner_key());
    let _ = try_send(&first, &sinch).await;
    // Another process starting now must not be handed that token.
    let second = member(&sinch, &redis, owner_key());
    assert_eq!(try_send(&second, &sinch).await, Some(StatusCode::OK));
    let issued = sinch.tokens_issued();
    assert!(issued >= 1);
    for (_, value) in dump(&redis).await {
        assert!(!value.windows(9).any(|w| w == b"bad\r\ntoke"));
    }
}

// ---- Records planted in Redis directly -------------------------------------

fn store_key() -> StoreKey {
    StoreKey::for_access_key("http://127.0.0.1:1/oauth2/token", &owner_key())
}

fn redis_key(kind: &str) -> String {
    format!("sinch-auth:{{{}}}:{kind}", store_key().name())
}

/// Seals a record the way docs/redis.md describes the format: version 3,
/// a 24-byte nonce, XChaCha20-Poly1305 under the store key's record key
/// with the Redis key as associated data.
fn seal(with: &StoreKey, redis_key: &str, plaintext: &str) -> Vec<u8> {
    seal_as(3, with, redis_key, plaintext)
}

fn seal_as(version: u8, with: &StoreKey, redis_key: &str, plaintext: &str) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(with.record_key().into());
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut nonce).unwrap();
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: redis_key.as_bytes(),
            },
        )
        .unwrap();
    let mut out = vec![version];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
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

fn value(token: &Token) -> String {
    token.value().expose_secret().to_owned()
}

/// Plants `record` (with `px`, or no expiry) at `kind`'s key, then checks
/// that a process asking gets a fetched token and that the fetched token
/// replaced the record for the next process.
async fn planted_record_is_replaced(kind: &str, record: Vec<u8>, px: Option<u64>) {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut c = redis.connection().await;
    let mut set = redis::cmd("SET");
    set.arg(redis_key(kind)).arg(record);
    if let Some(px) = px {
        set.arg("PX").arg(px);
    }
    let _: () = set.query_async(&mut c).await.unwrap();

    let (count, fetch) = counting();
    let store = RedisTokenStore::new(&redis.url()).unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        store.get_or_fetch(store_key(), None, fetch()),
    )
    .await
    .expect("the store did not stall");
    assert_eq!(
        got.map(|t| value(&t)).ok().as_deref(),
        Some("tok-1"),
        "{kind}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);

    let next = RedisTokenStore::new(&redis.url()).unwrap();
    let taken = next.get_or_fetch(store_key(), None, fetch()).await.unwrap();
    assert_eq!(
        value(&taken),
        "tok-1",
        "the fetched token replaced the bad record"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let failed: Option<Vec<u8>> = redis::cmd("GET")
        .arg(redis_key("failed"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(failed, None, "no refusal record is left");
}

/// The wall clock now, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A token record issued now, living a minute.
fn token_json(token: &str) -> String {
    let expires_at_ms = now_ms() + 60_000;
    format!(r#"{{"token":"{token}","lifetime_ms":60000,"expires_at_ms":{expires_at_ms}}}"#)
}

/// A refusal made now, holding the fleet off for half a minute.
fn refusal_json(status: u16) -> String {
    let at_ms = now_ms();
    format!(r#"{{"status":{status},"at_ms":{at_ms},"hold_ms":30000}}"#)
}

#[tokio::test]
async fn an_unreadable_token_record_is_replaced() {
    planted_record_is_replaced("token", b"not a sealed record".to_vec(), Some(60_000)).await;
}

#[tokio::test]
async fn a_token_record_sealed_with_another_key_is_replaced() {
    let other = StoreKey::for_access_key(
        "http://127.0.0.1:1/oauth2/token",
        &AccessKey::new(PROJECT, KEY_ID, "another-secret").unwrap(),
    );
    let record = seal(&other, &redis_key("token"), &token_json("planted"));
    planted_record_is_replaced("token", record, Some(60_000)).await;
}

#[tokio::test]
async fn an_empty_token_record_is_replaced() {
    let record = seal(&store_key(), &redis_key("token"), &token_json(""));
    planted_record_is_replaced("token", record, Some(60_000)).await;
}

#[tokio::test]
async fn a_token_no_header_can_carry_is_replaced() {
    let record = seal(
        &store_key(),
        &redis_key("token"),
        &token_json("bad\\r\\ntoken"),
    );
    planted_record_is_replaced("token", record, Some(60_000)).await;
}

#[tokio::test]
async fn a_token_record_without_an_expiry_is_replaced() {
    let record = seal(&store_key(), &redis_key("token"), &token_json("no-expiry"));
    planted_record_is_replaced("token", record, None).await;
}

#[tokio::test]
async fn a_refusal_without_an_expiry_does_not_block() {
    let record = seal(&store_key(), &redis_key("failed"), &refusal_json(429));
    planted_record_is_replaced("failed", record, None).await;
}

#[tokio::test]
async fn a_refusal_longer_than_a_minute_does_not_block() {
    let record = seal(&store_key(), &redis_key("failed"), &refusal_json(503));
    planted_record_is_replaced("failed", record, Some(3_600_000)).await;
}

#[tokio::test]
async fn a_forged_refusal_does_not_block() {
    let other = StoreKey::for_access_key(
        "http://127.0.0.1:1/oauth2/token",
        &AccessKey::new(PROJECT, KEY_ID, "another-secret").unwrap(),
    );
    let record = seal(&other, &redis_key("failed"), &refusal_json(429));
    planted_record_is_replaced("failed", record, Some(30_000)).await;
}

#[tokio::test]
async fn a_stored_authentication_failure_does_not_block() {
    let record = seal(&store_key(), &redis_key("failed"), &refusal_json(401));
    planted_record_is_replaced("failed", record, Some(30_000)).await;
}

#[tokio::test]
async fn a_refused_authentication_is_not_written_to_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let store = RedisTokenStore::new(&redis.url()).unwrap();
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
    ] {
        let refused: TokenFuture = Box::pin(async move {
            Err(FetchError::Endpoint {
                status,
                error: Some("invalid_client".into()),
                description: None,
                retry_after: None,
            })
        });
        let error = store
            .get_or_fetch(store_key(), None, refused)
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(status));
    }
    assert!(dump(&redis).await.is_empty(), "nothing was shared");
    // A 429 is.
    let limited: TokenFuture = Box::pin(async {
        Err(FetchError::Endpoint {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: None,
            description: None,
            retry_after: None,
        })
    });
    let _ = store.get_or_fetch(store_key(), None, limited).await;
    let keys: Vec<_> = dump(&redis).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![redis_key("failed")]);
    let mut c = redis.connection().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(redis_key("failed"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        (1..=1000).contains(&ttl),
        "held for the first backoff step: {ttl} ms"
    );
}

// ---- Hostile records: replays, oversized values, tokens the API refused ----

/// A process of the fleet on an injected wall clock (shared with the
/// stand-in, so both agree when a token expires).
fn member_on(
    sinch: &SinchStandIn,
    store: RedisTokenStore,
    clock: &ManualClock,
) -> SinchAuth<StandInClient> {
    SinchAuthLayer::builder(StaticCredentials::new(owner_key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .clock(clock.clone())
        .refresh(
            RefreshConfig::default()
                .backoff_base(Duration::from_millis(50))
                .backoff_cap(Duration::from_millis(200)),
        )
        .token_store(store)
        .build()
        .unwrap()
        .layer(sinch.client())
}

async fn get_raw(redis: &RedisServer, key: &str) -> Option<Vec<u8>> {
    let mut c = redis.connection().await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

async fn plant(redis: &RedisServer, key: &str, value: &[u8], px: u64) {
    let mut c = redis.connection().await;
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(px)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// One request, given at most `limit` (a bug fails it rather than hangs it).
async fn send_within(
    limit: Duration,
    member: &SinchAuth<StandInClient>,
    sinch: &SinchStandIn,
) -> Option<StatusCode> {
    tokio::time::timeout(limit, try_send(member, sinch))
        .await
        .unwrap_or(None)
}

/// The Redis key of `kind` for a layer's credentials (its name depends on
/// the stand-in's token URL): the one key of that kind in Redis, once a
/// layer has written one.
async fn layer_key(redis: &RedisServer, kind: &str) -> String {
    let mut c = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("sinch-auth:*:{kind}"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.into_iter().next().unwrap()
}

const THIRTY_DAYS_MS: u64 = 30 * 24 * 3600 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_token_record_with_a_long_ttl_is_not_taken_after_its_expiry() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let clock = ManualClock::new(std::time::SystemTime::now());
    let sinch = SinchStandIn::builder()
        .access_key(&owner_key())
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let first = member_on(&sinch, RedisTokenStore::new(&redis.url()).unwrap(), &clock);
    assert_eq!(try_send(&first, &sinch).await, Some(StatusCode::OK));
    assert_eq!(sinch.token_requests(), 1);
    let token_key = layer_key(&redis, "token").await;
    let copied = get_raw(&redis, &token_key).await.unwrap();

    // Two hours later the token is long expired; a hostile Redis writer
    // puts the copy back with a 30-day TTL.
    clock.advance(Duration::from_secs(2 * 3600));
    plant(&redis, &token_key, &copied, THIRTY_DAYS_MS).await;

    let cold = member_on(&sinch, RedisTokenStore::new(&redis.url()).unwrap(), &clock);
    assert_eq!(
        send_within(Duration::from_secs(10), &cold, &sinch).await,
        Some(StatusCode::OK),
        "the replayed, expired token stopped the process"
    );
    assert_eq!(sinch.token_requests(), 2, "the endpoint was asked again");
    assert_eq!(sinch.api_rejected(), 0, "the expired token was never sent");
    assert_ne!(
        get_raw(&redis, &token_key).await.as_deref(),
        Some(&copied[..]),
        "the replayed record was replaced"
    );
}

#[tokio::test]
async fn a_token_record_never_has_more_life_left_than_it_was_issued_with() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    // A genuine record (sealed with the key) of a one-minute token, under
    // a 30-day TTL.
    let record = seal(&store_key(), &redis_key("token"), &token_json("one-minute"));
    plant(&redis, &redis_key("token"), &record, THIRTY_DAYS_MS).await;
    let (count, fetch) = counting();
    let store = RedisTokenStore::new(&redis.url()).unwrap();
    let token = tokio::time::timeout(
        Duration::from_secs(5),
        store.get_or_fetch(store_key(), None, fetch()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(value(&token), "one-minute");
    assert!(
        token.expires_in() <= Duration::from_secs(60),
        "taken with {:?} left",
        token.expires_in()
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn records_stamped_far_ahead_of_the_clock_or_in_the_old_format_are_not_taken() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let ahead = format!(
        r#"{{"token":"from-the-future","lifetime_ms":60000,"expires_at_ms":{}}}"#,
        now_ms() + 3_600_000
    );
    let old = r#"{"token":"old-format","lifetime_ms":60000}"#;
    for (version, json) in [(3, &ahead[..]), (2, old)] {
        let record = seal_as(version, &store_key(), &redis_key("token"), json);
        plant(&redis, &redis_key("token"), &record, 60_000).await;
        let (count, fetch) = counting();
        let store = RedisTokenStore::new(&redis.url()).unwrap();
        let token = tokio::time::timeout(
            Duration::from_secs(5),
            store.get_or_fetch(store_key(), None, fetch()),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(value(&token), "tok-1", "{json}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_refusal_expires_by_its_own_time() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let clock = ManualClock::new(std::time::SystemTime::now());
    let sinch = SinchStandIn::builder()
        .access_key(&owner_key())
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    // One process is refused with a 503; the refusal is shared for a second.
    sinch.fail_next_token_requests(1, TokenFailure::status(StatusCode::SERVICE_UNAVAILABLE));
    let first = member_on(&sinch, RedisTokenStore::new(&redis.url()).unwrap(), &clock);
    let request = {
        let (first, sinch) = (first.clone(), sinch.url());
        tokio::spawn(async move {
            let call = first.oneshot(get(format!("{sinch}/v1/projects/{PROJECT}/activeNumbers")));
            tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .map(|r| r.map(|r| r.status()).ok())
        })
    };
    // A hostile writer copies it while it is there…
    let (failed_key, copied) = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut c = redis.connection().await;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("sinch-auth:*:failed")
                .query_async(&mut c)
                .await
                .unwrap();
            if let Some(key) = keys.first() {
                if let Some(raw) = get_raw(&redis, key).await {
                    return (key.clone(), raw);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the refusal was shared");
    assert_eq!(
        request.await.unwrap().unwrap(),
        Some(StatusCode::OK),
        "the process recovered after the hold"
    );
    let asked = sinch.token_requests();

    // …and plants it again two minutes later, with 59 s to live.
    clock.advance(Duration::from_secs(120));
    plant(&redis, &failed_key, &copied, 59_000).await;
    let cold = member_on(&sinch, RedisTokenStore::new(&redis.url()).unwrap(), &clock);
    // Make the shared token unusable for it, so it must ask.
    let mut c = redis.connection().await;
    let _: () = redis::cmd("DEL")
        .arg(failed_key.replace(":failed", ":token"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        send_within(Duration::from_secs(5), &cold, &sinch).await,
        Some(StatusCode::OK),
        "the replayed refusal held the process off"
    );
    assert_eq!(sinch.token_requests(), asked + 1, "the endpoint was asked");
    assert_eq!(get_raw(&redis, &failed_key).await, None);
}

/// Redis's own count of bytes it received and sent.
async fn net_bytes(redis: &RedisServer) -> (u64, u64) {
    let mut c = redis.connection().await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut c)
        .await
        .unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (
        field("total_net_input_bytes"),
        field("total_net_output_bytes"),
    )
}

#[tokio::test]
async fn an_oversized_record_is_never_read_whole_nor_sent_back() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    const HUGE: usize = 8 * 1024 * 1024;
    // Starts with a real record's first bytes, so only its size gives it away.
    let mut huge = seal(&store_key(), &redis_key("token"), &token_json("x"));
    huge.resize(HUGE, b'x');
    plant(&redis, &redis_key("token"), &huge, 60_000).await;
    plant(&redis, &redis_key("failed"), &vec![b'y'; HUGE], 30_000).await;
    let (count, fetch) = counting();
    let store = RedisTokenStore::new(&redis.url()).unwrap();
    let (in_before, out_before) = net_bytes(&redis).await;
    let token = tokio::time::timeout(
        Duration::from_secs(5),
        store.get_or_fetch(store_key(), None, fetch()),
    )
    .await
    .unwrap()
    .unwrap();
    let (in_after, out_after) = net_bytes(&redis).await;
    assert_eq!(value(&token), "tok-1");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let (sent_to_redis, read_from_redis) = (in_after - in_before, out_after - out_before);
    assert!(
        read_from_redis < 64 * 1024,
        "read {read_from_redis} bytes from Redis"
    );
    assert!(
        sent_to_redis < 64 * 1024,
        "sent {sent_to_redis} bytes to Redis"
    );
    // Both were replaced or removed.
    let stored = get_raw(&redis, &redis_key("token")).await.unwrap();
    assert!(stored.len() < 1024, "the fetched token replaced it");
    assert_eq!(get_raw(&redis, &redis_key("failed")).await, None);
    // A refusal too large to read is deleted even when no fetch follows.
    plant(&redis, &redis_key("failed"), &vec![b'y'; HUGE], 30_000).await;
    let again = store
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    assert_eq!(value(&again), "tok-1");
    assert_eq!(get_raw(&redis, &redis_key("failed")).await, None);
}

/// A process of the fleet with a store of its own choosing.
fn member_with(sinch: &SinchStandIn, store: RedisTokenStore) -> SinchAuth<StandInClient> {
    SinchAuthLayer::builder(StaticCredentials::new(owner_key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(
            RefreshConfig::default()
                .backoff_base(Duration::from_millis(50))
                .backoff_cap(Duration::from_millis(200)),
        )
        .token_store(store)
        .build()
        .unwrap()
        .layer(sinch.client())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_with_a_401_is_never_taken_from_the_store_again() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let sinch = SinchStandIn::builder()
        .access_key(&owner_key())
        .start()
        .await
        .unwrap();
    let seeder = member(&sinch, &redis, owner_key());
    assert_eq!(try_send(&seeder, &sinch).await, Some(StatusCode::OK));
    let refused_token = bearer_of_last_request(&sinch);
    let token_key = layer_key(&redis, "token").await;
    let copied = get_raw(&redis, &token_key).await.unwrap();

    // The API stops accepting it (revoked) while its record says it lives.
    sinch.expire_tokens();
    let shared = RedisTokenStore::new(&redis.url()).unwrap();
    let first = member_with(&sinch, shared.clone());
    assert_eq!(
        send_within(Duration::from_secs(10), &first, &sinch).await,
        Some(StatusCode::OK),
        "recovered from the 401 with a new token"
    );
    assert_ne!(bearer_of_last_request(&sinch), refused_token);

    // A hostile writer puts the refused token's record back, with less
    // time to live than its token really has (50 of its 60 minutes);
    // another layer on the same store, cold, must not take it.
    plant(&redis, &token_key, &copied, 50 * 60 * 1000).await;
    sinch.clear_requests();
    let second = member_with(&sinch, shared.clone());
    assert_eq!(
        send_within(Duration::from_secs(10), &second, &sinch).await,
        Some(StatusCode::OK)
    );
    let carried: Vec<_> = sinch
        .requests()
        .iter()
        .filter_map(|r| r.headers.get(AUTHORIZATION).cloned())
        .collect();
    assert!(
        !carried
            .iter()
            .any(|h| h.to_str().unwrap() == format!("Bearer {refused_token}")),
        "the refused token was sent again"
    );
    assert_ne!(
        get_raw(&redis, &token_key).await.as_deref(),
        Some(&copied[..]),
        "the refused token's record is gone from Redis"
    );
}

#[tokio::test]
async fn a_refused_tokens_record_is_deleted_only_while_it_is_still_there() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let record = seal(&store_key(), &redis_key("token"), &token_json("revoked"));
    plant(&redis, &redis_key("token"), &record, 60_000).await;
    let store = RedisTokenStore::new(&redis.url()).unwrap();
    store.refused(&RefusedToken::of("revoked"));
    // The endpoint is down: the fleet gets a refusal, and the refused
    // token is not handed out in its place.
    let refused: TokenFuture = Box::pin(async {
        Err(FetchError::Endpoint {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: None,
            description: None,
            retry_after: None,
        })
    });
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        store.get_or_fetch(store_key(), None, refused),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        get_raw(&redis, &redis_key("token")).await,
        None,
        "the refused token's record was deleted"
    );
    // A different record under the same key is left alone.
    let other = seal(&store_key(), &redis_key("token"), &token_json("fresh"));
    plant(&redis, &redis_key("token"), &other, 60_000).await;
    let mut c = redis.connection().await;
    let _: () = redis::cmd("DEL")
        .arg(redis_key("failed"))
        .query_async(&mut c)
        .await
        .unwrap();
    let (count, fetch) = counting();
    let fresh = store
        .get_or_fetch(store_key(), None, fetch())
        .await
        .unwrap();
    assert_eq!(value(&fresh), "fresh");
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert_eq!(get_raw(&redis, &redis_key("token")).await, Some(other));
}

#[tokio::test]
async fn a_refusal_claiming_a_hold_over_a_minute_does_not_block() {
    let record = seal(
        &store_key(),
        &redis_key("failed"),
        &format!(r#"{{"status":429,"at_ms":{},"hold_ms":3600000}}"#, now_ms()),
    );
    planted_record_is_replaced("failed", record, Some(30_000)).await;
}

#[tokio::test]
async fn a_value_of_another_type_at_the_token_key_does_not_stall_the_fleet() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut c = redis.connection().await;
    let _: () = redis::cmd("HSET")
        .arg(redis_key("token"))
        .arg("field")
        .arg("value")
        .query_async(&mut c)
        .await
        .unwrap();
    let (count, fetch) = counting();
    let store = RedisTokenStore::new(&redis.url()).unwrap();
    let token = tokio::time::timeout(
        Duration::from_secs(5),
        store.get_or_fetch(store_key(), None, fetch()),
    )
    .await
    .expect("the store did not stall")
    .unwrap();
    assert_eq!(value(&token), "tok-1");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
