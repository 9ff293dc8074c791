//! When Redis refuses the replay store's command, the warn line names the
//! kind of error only: Redis's reply quotes the command and its arguments
//! (the replay key among them), and none of it reaches the log. A real
//! `redis-server` on loopback with `SET` renamed away, logs captured at
//! TRACE. Alone in its test binary: `tracing` caches per-callsite interest
//! process-wide, so tests running beside it without a subscriber could hide
//! events from this one.
#![cfg(feature = "redis")]

mod common;

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, SystemTime};

use common::LogBuffer;
use redis_server::RedisServer;
use sinch_auth::clock::ManualClock;
use sinch_auth::verify::{
    RedisReplayStore, Rejection, Verifier, WebhookVerifier, WhenUnavailable, webhook_signature,
};

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "replay-logs-webhook-secret";

#[tokio::test]
async fn a_redis_error_reply_quoting_the_command_never_reaches_the_log() {
    let (logs, _guard) = LogBuffer::capture();

    // Every SET now fails with "ERR unknown command 'SET', with args
    // beginning with: 'sinch-auth:replay:…' '1' 'NX' 'PX' …".
    let Some(redis) = RedisServer::start_with(&["--rename-command", "SET", ""]).await else {
        return;
    };
    let store = RedisReplayStore::new(&redis.url())
        .unwrap()
        .when_unavailable(WhenUnavailable::FailClosed);
    let shown = format!("{store:?}");
    assert!(
        shown.contains("RedisReplayStore") && shown.contains("127.0.0.1"),
        "{shown}"
    );
    assert!(shown.contains(r#"key_prefix: "sinch-auth:""#), "{shown}");
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        ))
        .replay_store(store);
    let timestamp = NOW.to_string();
    let (parts, ()) = http::Request::post("/sms")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(SECRET, b"{}", "n-logs", &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", "n-logs")
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        verifier.verify_async(&parts, b"{}").await,
        Err(Rejection::ReplayStoreUnavailable)
    );

    let text = logs.text();
    let warn = text
        .lines()
        .find(|line| line.contains("replay store unavailable"))
        .unwrap_or_else(|| panic!("no warn line: {text}"));
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains("redis error of kind"), "{warn}");
    for echoed in ["unknown command", "with args", "replay:", "'NX'", "n-logs"] {
        assert!(!text.contains(echoed), "{echoed:?} reached the log: {text}");
    }
}
