//! Freshness windows on signed timestamps and replay memory, with an injected clock.

use std::time::{Duration, SystemTime};

use http::request::Parts;
use sinch_auth::ApplicationCredentials;
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application::{format_timestamp, sign};
use sinch_auth::verify::{
    ApplicationVerifier, Freshness, RecordFuture, Rejection, ReplayEntry, ReplayMemory,
    ReplayStore, Verifier, WebhookVerifier, webhook_signature,
};

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "webhook-secret";

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn webhook(nonce: &str, timestamp: u64, body: &[u8]) -> Parts {
    let timestamp = timestamp.to_string();
    http::Request::post("/w")
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
    ApplicationCredentials::new("app", "YXBwLXNlY3JldA==").unwrap()
}

fn callback(signed_at: SystemTime, body: &[u8]) -> Parts {
    let timestamp = format_timestamp(signed_at);
    let headers = sign(
        &app(),
        &http::Method::POST,
        "/voice",
        "application/json",
        body,
        &timestamp,
    )
    .unwrap();
    http::Request::post("/voice")
        .header("content-type", "application/json")
        .header("x-timestamp", headers.timestamp)
        .header("authorization", headers.authorization)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

#[test]
fn default_window_is_five_minutes_each_way() {
    assert_eq!(
        Freshness::default(),
        Freshness::symmetric(Duration::from_secs(300))
    );
    let verifier = WebhookVerifier::new(SECRET).clock(ManualClock::new(at(NOW)));
    for (signed_at, ok) in [
        (NOW - 300, true),
        (NOW - 301, false),
        (NOW + 300, true),
        (NOW + 301, false),
        (NOW, true),
    ] {
        let nonce = format!("n-{signed_at}");
        let result = verifier.verify(&webhook(&nonce, signed_at, b"{}"), b"{}");
        assert_eq!(result.is_ok(), ok, "{signed_at}: {result:?}");
    }
}

#[test]
fn stale_webhook_is_rejected_saying_by_how_much() {
    let verifier = WebhookVerifier::new(SECRET).clock(ManualClock::new(at(NOW)));
    let result = verifier.verify(&webhook("n", NOW - 3600, b"{}"), b"{}");
    assert_eq!(
        result,
        Err(Rejection::TooOld {
            age: Duration::from_secs(3600),
            max_age: Duration::from_secs(300)
        })
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "timestamp outside the window: 3600s in the past, 300s allowed"
    );
}

#[test]
fn future_webhook_is_rejected() {
    let verifier = WebhookVerifier::new(SECRET).clock(ManualClock::new(at(NOW)));
    assert_eq!(
        verifier.verify(&webhook("n", NOW + 900, b"{}"), b"{}"),
        Err(Rejection::TooNew {
            ahead: Duration::from_secs(900),
            max_ahead: Duration::from_secs(300)
        })
    );
}

#[test]
fn a_webhook_goes_stale_as_the_clock_moves() {
    let clock = ManualClock::new(at(NOW));
    // Replay memory off: this is about freshness alone.
    let verifier = WebhookVerifier::new(SECRET)
        .clock(clock.clone())
        .without_replay_protection();
    let parts = webhook("n", NOW, b"{}");
    assert!(verifier.verify(&parts, b"{}").is_ok());
    clock.advance(Duration::from_secs(300));
    assert!(verifier.verify(&parts, b"{}").is_ok());
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        verifier.verify(&parts, b"{}"),
        Err(Rejection::TooOld { .. })
    ));
}

#[test]
fn custom_and_asymmetric_windows_apply() {
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .freshness(Freshness::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
        ));
    assert!(verifier.verify(&webhook("n-1", NOW - 60, b""), b"").is_ok());
    assert!(
        verifier
            .verify(&webhook("n-2", NOW - 61, b""), b"")
            .is_err()
    );
    assert!(verifier.verify(&webhook("n-3", NOW + 5, b""), b"").is_ok());
    assert!(verifier.verify(&webhook("n-4", NOW + 6, b""), b"").is_err());
    let unbounded = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .freshness(Freshness::disabled());
    assert!(unbounded.verify(&webhook("n", 1, b""), b"").is_ok());
}

#[test]
fn stale_and_future_application_callbacks_are_rejected_at_the_edges() {
    let verifier = ApplicationVerifier::new(app()).clock(ManualClock::new(at(NOW)));
    let window = Duration::from_secs(300);
    let edge = Duration::from_millis(1);
    assert!(
        verifier
            .verify(&callback(at(NOW) - window, b"{}"), b"{}")
            .is_ok()
    );
    assert!(
        verifier
            .verify(&callback(at(NOW) + window, b"{}"), b"{}")
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&callback(at(NOW) - window - edge, b"{}"), b"{}"),
        Err(Rejection::TooOld {
            age: window + edge,
            max_age: window
        })
    );
    assert_eq!(
        verifier.verify(&callback(at(NOW) + window + edge, b"{}"), b"{}"),
        Err(Rejection::TooNew {
            ahead: window + edge,
            max_ahead: window
        })
    );
}

#[test]
fn replayed_webhook_nonce_is_rejected() {
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .replay_protection(100);
    assert!(verifier.verify(&webhook("n-1", NOW, b"{}"), b"{}").is_ok());
    assert_eq!(
        verifier.verify(&webhook("n-1", NOW, b"{}"), b"{}"),
        Err(Rejection::Replayed { what: "nonce" })
    );
    // The same nonce re-signed over another body is still a replayed nonce.
    assert_eq!(
        verifier.verify(&webhook("n-1", NOW, b"[]"), b"[]"),
        Err(Rejection::Replayed { what: "nonce" })
    );
    assert!(verifier.verify(&webhook("n-2", NOW, b"{}"), b"{}").is_ok());
}

#[test]
fn replayed_application_signature_is_rejected() {
    let verifier = ApplicationVerifier::new(app())
        .clock(ManualClock::new(at(NOW)))
        .replay_protection(100);
    let parts = callback(at(NOW), b"{}");
    assert!(verifier.verify(&parts, b"{}").is_ok());
    assert_eq!(
        verifier.verify(&parts, b"{}"),
        Err(Rejection::Replayed { what: "signature" })
    );
    // A new signature (another timestamp) is a new request.
    assert!(
        verifier
            .verify(&callback(at(NOW) + Duration::from_millis(1), b"{}"), b"{}")
            .is_ok()
    );
}

#[test]
fn forged_requests_do_not_enter_the_replay_memory() {
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .replay_protection(1);
    let good = webhook("n-1", NOW, b"{}");
    // A forgery reusing the nonce fails on its signature and must not evict or poison anything.
    let forged = webhook("n-1", NOW, b"{}");
    assert_eq!(
        verifier.verify(&forged, b"tampered"),
        Err(Rejection::SignatureMismatch)
    );
    assert!(verifier.verify(&good, b"{}").is_ok());
    assert_eq!(
        verifier.verify(&good, b"{}"),
        Err(Rejection::Replayed { what: "nonce" })
    );
}

#[test]
fn without_replay_protection_a_repeat_within_the_window_is_accepted() {
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .without_replay_protection();
    let parts = webhook("n-1", NOW, b"{}");
    assert!(verifier.verify(&parts, b"{}").is_ok());
    assert!(verifier.verify(&parts, b"{}").is_ok());
}

#[test]
fn replay_memory_is_bounded_forgetting_the_soonest_to_expire() {
    // Room for two nonces. The third evicts the one whose timestamp goes stale first.
    let verifier = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .replay_protection(2);
    let oldest = webhook("oldest", NOW - 100, b"");
    let newer = webhook("newer", NOW - 10, b"");
    let newest = webhook("newest", NOW, b"");
    for parts in [&oldest, &newer, &newest] {
        assert!(verifier.verify(parts, b"").is_ok());
    }
    // "newer" and "newest" are remembered...
    assert!(verifier.verify(&newer, b"").is_err());
    assert!(verifier.verify(&newest, b"").is_err());
    // ...while "oldest" was forgotten to stay within bounds. The freshness
    // window still limits how long such a replay can work.
    assert!(verifier.verify(&oldest, b"").is_ok());
}

#[test]
fn nonces_are_forgotten_once_stale_and_then_rejected_by_freshness() {
    let clock = ManualClock::new(at(NOW));
    let verifier = WebhookVerifier::new(SECRET)
        .clock(clock.clone())
        .replay_protection(10);
    let parts = webhook("n-1", NOW, b"");
    assert!(verifier.verify(&parts, b"").is_ok());
    clock.advance(Duration::from_secs(400));
    assert!(matches!(
        verifier.verify(&parts, b""),
        Err(Rejection::TooOld { .. })
    ));
}

#[test]
fn a_captured_callback_replayed_with_another_query_string_is_refused_by_default() {
    // No replay setting: the default remembers accepted signatures.
    let verifier = ApplicationVerifier::new(app()).clock(ManualClock::new(at(NOW)));
    let captured = callback(at(NOW), b"{}");
    assert!(verifier.verify(&captured, b"{}").is_ok());
    // The query is not signed (protocol notes §4): each variant carries the same valid
    // signature, and counts as the same request.
    for query in ["?anything", "?a=1&b=2", "?", "?x=%2F"] {
        let mut replay = captured.clone();
        replay.uri = format!("/voice{query}").parse().unwrap();
        assert_eq!(
            verifier.verify(&replay, b"{}"),
            Err(Rejection::Replayed { what: "signature" }),
            "{query}"
        );
    }
}

#[test]
fn query_variants_of_one_signature_take_one_place_in_the_replay_memory() {
    // Room for two: if each variant took a place, the first callback would be
    // evicted by the variants of the second and become replayable.
    let verifier = ApplicationVerifier::new(app())
        .clock(ManualClock::new(at(NOW)))
        .replay_protection(2);
    let first = callback(at(NOW), b"{}");
    let second = callback(at(NOW) + Duration::from_millis(1), b"{}");
    assert!(verifier.verify(&first, b"{}").is_ok());
    assert!(verifier.verify(&second, b"{}").is_ok());
    for query in ["?1", "?2", "?3"] {
        let mut variant = second.clone();
        variant.uri = format!("/voice{query}").parse().unwrap();
        assert!(verifier.verify(&variant, b"{}").is_err());
    }
    assert_eq!(
        verifier.verify(&first, b"{}"),
        Err(Rejection::Replayed { what: "signature" })
    );
}

#[test]
fn a_replayed_webhook_is_refused_by_default() {
    let verifier = WebhookVerifier::new(SECRET).clock(ManualClock::new(at(NOW)));
    let parts = webhook("n-1", NOW, b"{}");
    assert!(verifier.verify(&parts, b"{}").is_ok());
    assert_eq!(
        verifier.verify(&parts, b"{}"),
        Err(Rejection::Replayed { what: "nonce" })
    );
}

/// A custom shared store that keeps every entry it is asked to record.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<ReplayEntry>>);

impl ReplayStore for Recording {
    fn record<'a>(&'a self, entry: &'a ReplayEntry) -> RecordFuture<'a> {
        self.0.lock().unwrap().push(*entry);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn a_custom_store_sees_a_digest_and_the_rest_of_the_window_never_the_value() {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    let store = std::sync::Arc::new(Recording::default());
    let webhooks = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .replay_store(store.clone());
    let callbacks = ApplicationVerifier::new(app())
        .clock(ManualClock::new(at(NOW)))
        .replay_store(store.clone());
    // Signed 100 s ago: 200 s of the default 300 s window left.
    let nonce = "n-custom-store";
    assert!(
        webhooks
            .verify_async(&webhook(nonce, NOW - 100, b"{}"), b"{}")
            .await
            .is_ok()
    );
    let signed = callback(at(NOW - 40), b"{}");
    assert!(callbacks.verify_async(&signed, b"{}").await.is_ok());
    let signature = signed.headers["authorization"]
        .to_str()
        .unwrap()
        .split_once(':')
        .unwrap()
        .1
        .to_owned();

    let entries = store.0.lock().unwrap().clone();
    assert_eq!(entries.len(), 2);
    let app_secret = b"app-secret".as_slice();
    for (entry, secret, what, value, left) in [
        (&entries[0], SECRET.as_bytes(), "nonce", nonce, 200),
        (
            &entries[1],
            app_secret,
            "signature",
            signature.as_str(),
            260,
        ),
    ] {
        // Keyed by the secret that verified the request (docs on `digest`).
        let hmac = |key: &[u8], parts: &[&[u8]]| -> [u8; 32] {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().into()
        };
        let key = hmac(secret, &[b"sinch-auth replay digest key"]);
        let expected = hmac(&key, &[what.as_bytes(), &[0], value.as_bytes()]);
        assert_eq!(entry.digest(), &expected);
        assert_eq!(entry.what(), what);
        // The rest of the window, plus the second of margin.
        assert_eq!(entry.ttl(), Some(Duration::from_secs(left + 1)));
        let shown = format!("{entry:?}");
        let prefix: String = expected[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert!(shown.contains(&prefix), "{shown}");
        assert!(shown.contains(&format!("what: {what:?}")), "{shown}");
        assert!(shown.contains(&format!("{:?}", entry.ttl())), "{shown}");
        assert!(!shown.contains(value), "{shown}");
    }
}

#[test]
fn a_replay_memory_holds_at_least_one_entry_and_says_how_many() {
    for (asked, held) in [(8, 8), (1, 1), (0, 1)] {
        let memory = ReplayMemory::new(asked);
        assert_eq!(memory.capacity(), held);
        assert_eq!(
            format!("{memory:?}"),
            format!("ReplayMemory {{ capacity: {held}, .. }}")
        );
    }
}

#[tokio::test]
async fn a_validly_signed_webhook_is_verified_under_the_widest_window_without_panicking() {
    let widest = Freshness::new(Duration::MAX, Duration::MAX);
    let store = std::sync::Arc::new(Recording::default());
    let shared = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .freshness(widest)
        .replay_store(store.clone());
    let local = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .freshness(widest);
    for timestamp in [0, NOW, u64::from(u32::MAX) * 4] {
        let parts = webhook(&format!("n-wide-{timestamp}"), timestamp, b"{}");
        assert!(shared.verify_async(&parts, b"{}").await.is_ok());
        assert!(local.verify(&parts, b"{}").is_ok());
        assert_eq!(
            local.verify(&parts, b"{}"),
            Err(Rejection::Replayed { what: "nonce" })
        );
    }
    let entries = store.0.lock().unwrap().clone();
    assert_eq!(entries.len(), 3);
    for entry in &entries {
        // Remembered for as long as time can be told.
        assert!(entry.ttl().unwrap() > Duration::from_secs(100 * 365 * 86_400));
    }
    let callbacks = ApplicationVerifier::new(app())
        .clock(ManualClock::new(at(NOW)))
        .freshness(widest);
    let signed = callback(at(NOW - 40), b"{}");
    assert!(callbacks.verify(&signed, b"{}").is_ok());
    assert!(callbacks.verify(&signed, b"{}").is_err());
}

#[tokio::test]
async fn an_entry_of_one_verifier_never_refuses_another_verifiers_genuine_request() {
    // Two verifiers (two Sinch apps, two secrets) sharing one store.
    let shared = std::sync::Arc::new(ReplayMemory::new(64));
    let sms = WebhookVerifier::new(SECRET)
        .clock(ManualClock::new(at(NOW)))
        .replay_store(shared.clone());
    let other_secret = "another-webhook-secret";
    let conversation = WebhookVerifier::new(other_secret)
        .clock(ManualClock::new(at(NOW)))
        .replay_store(shared.clone());
    let nonce = "n-same-nonce";
    let for_sms = webhook(nonce, NOW, b"{}");
    let mut for_conversation = for_sms.clone();
    for_conversation.headers.insert(
        "x-sinch-webhook-signature",
        webhook_signature(other_secret, b"{}", nonce, &NOW.to_string())
            .parse()
            .unwrap(),
    );
    assert!(sms.verify_async(&for_sms, b"{}").await.is_ok());
    assert!(
        conversation
            .verify_async(&for_conversation, b"{}")
            .await
            .is_ok(),
        "a genuine request refused because another verifier saw its nonce"
    );
    // Each still refuses its own replay.
    for (verifier, parts) in [(&sms, &for_sms), (&conversation, &for_conversation)] {
        assert_eq!(
            verifier.verify_async(parts, b"{}").await,
            Err(Rejection::Replayed { what: "nonce" })
        );
    }
    // The application scheme: two apps, one timestamp, one body.
    let other_app = ApplicationCredentials::new("app", "b3RoZXItc2VjcmV0").unwrap();
    let first = ApplicationVerifier::new(app())
        .clock(ManualClock::new(at(NOW)))
        .replay_store(shared.clone());
    let second = ApplicationVerifier::new(other_app)
        .clock(ManualClock::new(at(NOW)))
        .replay_store(shared);
    let signed = callback(at(NOW), b"{}");
    assert!(first.verify_async(&signed, b"{}").await.is_ok());
    // The other app's verifier cannot verify the first app's signature at all.
    assert_eq!(
        second.verify_async(&signed, b"{}").await,
        Err(Rejection::SignatureMismatch)
    );
}
