//! Fleet-wide replay protection through a real `redis-server` on loopback:
//! several verifier instances (each with its own Redis connection, as
//! separate processes would have) share one `RedisReplayStore`, so a
//! captured callback accepted by one is refused by all; only verified
//! requests take room; entries live as long as the freshness window; Redis
//! down fails open to local memory or closed, as configured.
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::Full;
use redis::AsyncCommands;
use redis_server::RedisServer;
use sinch_auth::ApplicationCredentials;
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application::{format_timestamp, sign};
use sinch_auth::verify::{
    ApplicationVerifier, Freshness, RedisReplayStore, Rejection, Verifier, VerifyLayer,
    WebhookVerifier, WhenUnavailable, webhook_signature,
};
use tower::{Layer, ServiceExt};

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "fleet-webhook-secret";
const APP_SECRET: &str = "ZmxlZXQtYXBwLXNlY3JldA==";
const INSTANCES: usize = 4;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

fn webhook(nonce: &str, body: &[u8]) -> Parts {
    let timestamp = NOW.to_string();
    http::Request::post("/sms")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(SECRET, body, nonce, &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new("fleet-app", APP_SECRET).unwrap()
}

fn callback(path_and_query: &str, signed_at: SystemTime, body: &[u8]) -> Parts {
    let path = path_and_query.split('?').next().unwrap();
    let signed = sign(
        &app(),
        &http::Method::POST,
        path,
        "application/json",
        body,
        &format_timestamp(signed_at),
    )
    .unwrap();
    http::Request::post(path_and_query)
        .header("content-type", "application/json")
        .header("x-timestamp", signed.timestamp)
        .header("authorization", signed.authorization)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn store(server: &RedisServer) -> RedisReplayStore {
    RedisReplayStore::new(&server.url())
        .unwrap()
        .op_timeout(Duration::from_millis(300))
}

/// One instance of the receiver: its own store (own connection), its own clock.
fn webhook_instance(server: &RedisServer) -> WebhookVerifier {
    WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .replay_store(store(server))
}

async fn replay_keys(server: &RedisServer) -> Vec<String> {
    let mut connection = server.connection().await;
    connection.keys("sinch-auth:replay:*").await.unwrap()
}

#[tokio::test]
async fn a_replay_is_refused_by_every_instance_of_the_fleet() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let fleet: Vec<WebhookVerifier> = (0..INSTANCES).map(|_| webhook_instance(&server)).collect();
    let webhooks: Vec<(Parts, Vec<u8>)> = (0..100)
        .map(|i| {
            let body = format!("{{\"n\":{i}}}").into_bytes();
            (webhook(&format!("01FLEET{i:04}"), &body), body)
        })
        .collect();
    let mut first_accepted = 0;
    for (i, (parts, body)) in webhooks.iter().enumerate() {
        let verified = fleet[i % INSTANCES].verify_async(parts, body).await;
        first_accepted += usize::from(verified.is_ok());
    }
    assert_eq!(first_accepted, 100);
    // Every webhook sent again to every instance, the one that accepted it included.
    let (mut replays, mut accepted) = (0, 0);
    for (parts, body) in &webhooks {
        for instance in &fleet {
            let result = instance.verify_async(parts, body).await;
            replays += 1;
            match result {
                Ok(_) => accepted += 1,
                Err(rejection) => assert_eq!(rejection, Rejection::Replayed { what: "nonce" }),
            }
        }
    }
    println!(
        "fleet replay protection: {INSTANCES} instances, 100 webhooks accepted once, \
         {replays} replays, {accepted} accepted"
    );
    assert_eq!(accepted, 0);
    assert_eq!(replay_keys(&server).await.len(), 100);
}

#[tokio::test]
async fn query_variants_of_a_callback_are_one_request_fleet_wide() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let fleet: Vec<ApplicationVerifier> = (0..INSTANCES)
        .map(|_| {
            ApplicationVerifier::new(app())
                .clock(ManualClock::new(now()))
                .replay_store(store(&server))
        })
        .collect();
    assert!(
        fleet[0]
            .verify_async(&callback("/voice", now(), b"{}"), b"{}")
            .await
            .is_ok()
    );
    let mut accepted = 0;
    for (i, query) in ["", "?a", "?b=1", "?x=%2F&y"].iter().enumerate() {
        let replay = callback(&format!("/voice{query}"), now(), b"{}");
        accepted += usize::from(
            fleet[i % INSTANCES]
                .verify_async(&replay, b"{}")
                .await
                .is_ok(),
        );
    }
    assert_eq!(accepted, 0);
    assert_eq!(replay_keys(&server).await.len(), 1);
}

#[tokio::test]
async fn only_verified_requests_take_room_and_keys_are_digests() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let verifier = webhook_instance(&server);
    let nonce = "01NONCEVISIBLE";
    let genuine = webhook(nonce, b"{}");
    // Forgeries: wrong body, wrong signature, stale timestamp.
    assert!(verifier.verify_async(&genuine, b"[]").await.is_err());
    let mut bad_signature = genuine.clone();
    bad_signature
        .headers
        .insert("x-sinch-webhook-signature", "AAAA".parse().unwrap());
    assert!(verifier.verify_async(&bad_signature, b"{}").await.is_err());
    assert!(replay_keys(&server).await.is_empty());

    assert!(verifier.verify_async(&genuine, b"{}").await.is_ok());
    let keys = replay_keys(&server).await;
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    let digest = key.strip_prefix("sinch-auth:replay:").unwrap();
    assert_eq!(digest.len(), 64);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    let mut connection = server.connection().await;
    let value: String = connection.get(key).await.unwrap();
    let signature = genuine.headers["x-sinch-webhook-signature"]
        .to_str()
        .unwrap();
    for leaked in [nonce, signature, SECRET] {
        assert!(!key.contains(leaked) && !value.contains(leaked), "{leaked}");
    }
}

#[tokio::test]
async fn entries_live_as_long_as_the_freshness_window() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let verifier = webhook_instance(&server);
    // Signed 100 s ago: 200 s of the 300 s window left, plus the second of margin.
    let timestamp = (NOW - 100).to_string();
    let parts = http::Request::post("/sms")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(SECRET, b"{}", "n-ttl", &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", "n-ttl")
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert!(verifier.verify_async(&parts, b"{}").await.is_ok());
    let key = replay_keys(&server).await.remove(0);
    let mut connection = server.connection().await;
    let ttl_ms: i64 = connection.pttl(&key).await.unwrap();
    assert!((199_000..=201_000).contains(&ttl_ms), "{ttl_ms}");
}

#[tokio::test]
async fn without_a_freshness_window_entries_live_a_day() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .freshness(Freshness::disabled())
        .replay_store(store(&server));
    assert!(
        verifier
            .verify_async(&webhook("n-day", b"{}"), b"{}")
            .await
            .is_ok()
    );
    let key = replay_keys(&server).await.remove(0);
    let mut connection = server.connection().await;
    let ttl_ms: i64 = connection.pttl(&key).await.unwrap();
    let day = i64::try_from(RedisReplayStore::TTL_WITHOUT_WINDOW.as_millis()).unwrap();
    assert_eq!(day, 86_400_000);
    assert!((day - 5_000..=day).contains(&ttl_ms), "{ttl_ms}");
}

#[tokio::test]
async fn redis_down_fails_open_to_local_memory_or_closed_as_configured() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let open_a = webhook_instance(&server);
    let open_b = webhook_instance(&server);
    let closed = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .replay_store(store(&server).when_unavailable(WhenUnavailable::FailClosed));
    server.kill();

    let parts = webhook("n-down", b"{}");
    // Fail open: served, and still refused a second time by the same instance.
    assert!(open_a.verify_async(&parts, b"{}").await.is_ok());
    assert_eq!(
        open_a.verify_async(&parts, b"{}").await,
        Err(Rejection::Replayed { what: "nonce" })
    );
    // The documented cost: another instance cannot know.
    assert!(open_b.verify_async(&parts, b"{}").await.is_ok());
    // Fail closed: nothing gets through.
    assert_eq!(
        closed
            .verify_async(&webhook("n-closed", b"{}"), b"{}")
            .await,
        Err(Rejection::ReplayStoreUnavailable)
    );

    // Back: shared again, for every instance.
    server.restart().await;
    let after = webhook("n-after", b"{}");
    assert!(closed.verify_async(&after, b"{}").await.is_ok());
    assert!(open_a.verify_async(&after, b"{}").await.is_err());
    assert!(open_b.verify_async(&after, b"{}").await.is_err());
}

#[tokio::test]
async fn verify_layers_on_different_instances_share_the_store() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let handler = tower::service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
    });
    let layers: Vec<_> = (0..INSTANCES)
        .map(|_| VerifyLayer::new(Arc::new(webhook_instance(&server))))
        .collect();
    let parts = webhook("n-layer", b"{}");
    let mut statuses = Vec::new();
    for layer in &layers {
        let request = Request::from_parts(parts.clone(), Full::new(Bytes::from_static(b"{}")));
        let response = layer.layer(handler).oneshot(request).await.unwrap();
        statuses.push(response.status());
    }
    assert_eq!(statuses[0], StatusCode::OK);
    assert!(
        statuses[1..].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn without_the_shared_store_other_instances_accept_the_replay() {
    // The control, as before fleet-wide protection: per-process memory only.
    let fleet: Vec<WebhookVerifier> = (0..INSTANCES)
        .map(|_| WebhookVerifier::new(SECRET).clock(ManualClock::new(now())))
        .collect();
    let (mut replays, mut accepted) = (0, 0);
    for i in 0..100 {
        let body = format!("{{\"n\":{i}}}").into_bytes();
        let parts = webhook(&format!("01LOCAL{i:04}"), &body);
        assert!(
            fleet[i % INSTANCES]
                .verify_async(&parts, &body)
                .await
                .is_ok()
        );
        for instance in &fleet {
            replays += 1;
            accepted += usize::from(instance.verify_async(&parts, &body).await.is_ok());
        }
    }
    println!(
        "per-process replay memory only: {INSTANCES} instances, {replays} replays, {accepted} accepted"
    );
    assert_eq!(accepted, 300);
}

/// `n` webhooks with their bodies, nonces starting with `tag`.
fn webhooks(tag: &str, n: usize) -> Vec<(Parts, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let body = format!("{{\"{tag}\":{i}}}").into_bytes();
            (webhook(&format!("{tag}{i:04}"), &body), body)
        })
        .collect()
}

#[tokio::test]
async fn what_an_instance_accepted_while_redis_was_down_it_refuses_once_redis_is_back() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let instance = webhook_instance(&server);
    let sent = webhooks("01DOWN", 20);
    server.kill();
    for (parts, body) in &sent {
        assert!(
            instance.verify_async(parts, body).await.is_ok(),
            "fail open"
        );
    }
    server.restart().await;
    let mut accepted_again = 0;
    for (parts, body) in &sent {
        match instance.verify_async(parts, body).await {
            Ok(_) => accepted_again += 1,
            Err(rejection) => assert_eq!(rejection, Rejection::Replayed { what: "nonce" }),
        }
    }
    println!(
        "accepted while Redis was down, replayed to the same instance once it is back: {accepted_again} of 20 accepted"
    );
    assert_eq!(accepted_again, 0);
}

#[tokio::test]
async fn what_an_instance_accepted_through_redis_it_refuses_while_redis_is_down() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let instance = webhook_instance(&server);
    let sent = webhooks("01UP", 20);
    for (parts, body) in &sent {
        assert!(instance.verify_async(parts, body).await.is_ok());
    }
    server.kill();
    let mut accepted_again = 0;
    for (parts, body) in &sent {
        accepted_again += usize::from(instance.verify_async(parts, body).await.is_ok());
    }
    assert_eq!(accepted_again, 0);
}

#[tokio::test]
async fn with_redis_down_fail_open_lets_replays_through_other_instances_and_fail_closed_none() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let open: Vec<WebhookVerifier> = (0..INSTANCES).map(|_| webhook_instance(&server)).collect();
    let closed: Vec<WebhookVerifier> = (0..INSTANCES)
        .map(|_| {
            WebhookVerifier::new(SECRET)
                .clock(ManualClock::new(now()))
                .replay_store(store(&server).when_unavailable(WhenUnavailable::FailClosed))
        })
        .collect();
    server.kill();
    let sent = webhooks("01OPEN", 25);
    let (mut same, mut others, mut same_accepted, mut others_accepted) = (0, 0, 0, 0);
    for (i, (parts, body)) in sent.iter().enumerate() {
        let first = i % INSTANCES;
        assert!(open[first].verify_async(parts, body).await.is_ok());
        for (j, instance) in open.iter().enumerate() {
            let accepted = usize::from(instance.verify_async(parts, body).await.is_ok());
            if j == first {
                same += 1;
                same_accepted += accepted;
            } else {
                others += 1;
                others_accepted += accepted;
            }
        }
    }
    let (mut closed_sent, mut closed_accepted) = (0, 0);
    for (parts, body) in webhooks("01CLOSED", 25).iter() {
        for instance in &closed {
            closed_sent += 1;
            closed_accepted += usize::from(instance.verify_async(parts, body).await.is_ok());
        }
    }
    println!(
        "Redis down, {INSTANCES} instances, fail open: replays to another instance {others_accepted} of \
         {others} accepted, to the accepting instance {same_accepted} of {same}; fail closed: \
         {closed_accepted} of {closed_sent} callbacks accepted, genuine ones included"
    );
    assert_eq!((others_accepted, others), (75, 75));
    assert_eq!((same_accepted, same), (0, 25));
    assert_eq!(closed_accepted, 0);
}

fn webhook_signed_at(nonce: &str, signed_at: u64) -> Parts {
    let timestamp = signed_at.to_string();
    http::Request::post("/sms")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(SECRET, b"{}", nonce, &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

async fn pttl_of_only_key(server: &RedisServer) -> i64 {
    let keys = replay_keys(server).await;
    assert_eq!(keys.len(), 1);
    let mut connection = server.connection().await;
    let ttl: i64 = connection.pttl(&keys[0]).await.unwrap();
    let _: () = connection.del(&keys[0]).await.unwrap();
    ttl
}

#[tokio::test]
async fn an_entry_lives_as_long_as_any_instance_of_the_fleet_could_accept_its_timestamp() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    // One instance runs a narrow window, another the default 5 minutes.
    let narrow = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .freshness(Freshness::symmetric(Duration::from_secs(60)))
        .replay_store(store(&server));
    let wide_clock = ManualClock::new(now());
    let wide = WebhookVerifier::new(SECRET)
        .clock(wide_clock.clone())
        .replay_store(store(&server));
    let parts = webhook_signed_at("n-narrow", NOW);
    assert!(narrow.verify_async(&parts, b"{}").await.is_ok());
    // The wide instance accepts that timestamp for 300 s: the entry lives that long.
    let keys = replay_keys(&server).await;
    let mut connection = server.connection().await;
    let ttl: i64 = connection.pttl(&keys[0]).await.unwrap();
    assert!((299_000..=301_000).contains(&ttl), "{ttl} ms");
    wide_clock.advance(Duration::from_secs(200));
    assert_eq!(
        wide.verify_async(&parts, b"{}").await,
        Err(Rejection::Replayed { what: "nonce" })
    );
    let _ = pttl_of_only_key(&server).await;

    // A fleet declared wider, and an instance wider than the fleet.
    let declared = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .replay_store(store(&server).fleet_max_age(Duration::from_secs(900)));
    assert!(
        declared
            .verify_async(&webhook_signed_at("n-declared", NOW), b"{}")
            .await
            .is_ok()
    );
    let ttl = pttl_of_only_key(&server).await;
    assert!((899_000..=901_000).contains(&ttl), "{ttl} ms");
    let wider = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .freshness(Freshness::symmetric(Duration::from_secs(3_600)))
        .replay_store(store(&server));
    assert!(
        wider
            .verify_async(&webhook_signed_at("n-wider", NOW - 600), b"{}")
            .await
            .is_ok()
    );
    let ttl = pttl_of_only_key(&server).await;
    assert!((2_999_000..=3_001_000).contains(&ttl), "{ttl} ms");
}

#[tokio::test]
async fn an_entry_of_one_verifier_never_refuses_another_verifiers_request_in_redis() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let shared = Arc::new(store(&server));
    let sms = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .replay_store(shared.clone());
    let other = "other-app-webhook-secret";
    let conversation = WebhookVerifier::new(other)
        .clock(ManualClock::new(now()))
        .replay_store(shared);
    let for_sms = webhook("n-shared-nonce", b"{}");
    let mut for_conversation = for_sms.clone();
    for_conversation.headers.insert(
        "x-sinch-webhook-signature",
        webhook_signature(other, b"{}", "n-shared-nonce", &NOW.to_string())
            .parse()
            .unwrap(),
    );
    assert!(sms.verify_async(&for_sms, b"{}").await.is_ok());
    assert!(
        conversation
            .verify_async(&for_conversation, b"{}")
            .await
            .is_ok()
    );
    assert!(sms.verify_async(&for_sms, b"{}").await.is_err());
    assert!(
        conversation
            .verify_async(&for_conversation, b"{}")
            .await
            .is_err()
    );
    assert_eq!(replay_keys(&server).await.len(), 2);
}

#[tokio::test]
async fn the_widest_window_is_remembered_in_redis_without_panicking() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(now()))
        .freshness(Freshness::new(Duration::MAX, Duration::MAX))
        .replay_store(store(&server).when_unavailable(WhenUnavailable::FailClosed));
    let parts = webhook_signed_at("n-widest", 0);
    assert!(verifier.verify_async(&parts, b"{}").await.is_ok());
    assert_eq!(
        verifier.verify_async(&parts, b"{}").await,
        Err(Rejection::Replayed { what: "nonce" })
    );
    // Redis took it (fail closed would have refused otherwise), for decades.
    let ttl = pttl_of_only_key(&server).await;
    assert!(ttl > 30 * 365 * 86_400_000, "{ttl} ms");
}
