//! Conversation and SMS webhooks (protocol notes §5).

use std::time::{Duration, SystemTime};

use http::request::Parts;
use proptest::prelude::*;
use sinch_auth::clock::ManualClock;
use sinch_auth::verify::{
    Rejection, SecretUsed, Verified, Verifier, WebhookVerifier, webhook_signature,
};

const H1_BODY: &str = r#"{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},"message_metadata":""}"#;
const H2_BODY: &str = r#"{"at":"2025-01-13T09:22:40.914Z","batch_id":"01JHFFHQ0P99JPPNQPJDV7JTBP","client_reference":"a client reference","code":0,"operator_status_at":"2025-01-13T09:22:00Z","recipient":"33662162466","status":"Delivered","type":"recipient_delivery_report_sms"}"#;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn head(signature: &str, nonce: &str, timestamp: &str) -> Parts {
    http::Request::post("/webhooks/sinch")
        .header("x-sinch-webhook-signature", signature)
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

#[test]
fn h1_conversation_webhook_is_valid() {
    let verifier =
        WebhookVerifier::new("foo_secret1234").clock(ManualClock::new(at(1_634_579_353)));
    let parts = head(
        "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=",
        "01FJA8B4A7BM43YGWSG9GBV067",
        "1634579353",
    );
    assert_eq!(
        verifier.verify(&parts, H1_BODY.as_bytes()),
        Ok(Verified::Webhook {
            nonce: "01FJA8B4A7BM43YGWSG9GBV067".into(),
            timestamp: at(1_634_579_353),
            secret: SecretUsed::Current,
        })
    );
}

#[test]
fn h2_sms_webhook_is_valid() {
    let verifier =
        WebhookVerifier::new("SMSWebhooksSecret").clock(ManualClock::new(at(1_736_760_161)));
    let parts = head(
        "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0=",
        "01JHFFHWYY7HSS4FWTMDTQEK8V",
        "1736760161",
    );
    assert!(verifier.verify(&parts, H2_BODY.as_bytes()).is_ok());
    assert_eq!(
        webhook_signature(
            "SMSWebhooksSecret",
            H2_BODY.as_bytes(),
            "01JHFFHWYY7HSS4FWTMDTQEK8V",
            "1736760161"
        ),
        "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0="
    );
}

#[test]
fn a_trailing_newline_in_the_body_matters() {
    let verifier =
        WebhookVerifier::new("SMSWebhooksSecret").clock(ManualClock::new(at(1_736_760_161)));
    let parts = head(
        "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0=",
        "01JHFFHWYY7HSS4FWTMDTQEK8V",
        "1736760161",
    );
    let body = format!("{H2_BODY}\n");
    assert_eq!(
        verifier.verify(&parts, body.as_bytes()),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn a_signature_made_with_another_secret_is_rejected() {
    let verifier =
        WebhookVerifier::new("SMSWebhooksSecret").clock(ManualClock::new(at(1_736_760_161)));
    let signature = webhook_signature("smsWebhooksSecret", H2_BODY.as_bytes(), "n", "1736760161");
    assert_eq!(
        verifier.verify(&head(&signature, "n", "1736760161"), H2_BODY.as_bytes()),
        Err(Rejection::SignatureMismatch)
    );
}

#[derive(Debug, Clone)]
struct Signed {
    secret: String,
    body: Vec<u8>,
    nonce: String,
    timestamp: String,
    signature: String,
}

fn signed_strategy() -> impl Strategy<Value = Signed> {
    (
        "[ -~]{1,32}",
        prop::collection::vec(any::<u8>(), 0..300),
        "[A-Za-z0-9_-]{1,32}",
        1_000_000_000u64..4_000_000_000,
    )
        .prop_map(|(secret, body, nonce, seconds)| {
            let timestamp = seconds.to_string();
            let signature = webhook_signature(&secret, &body, &nonce, &timestamp);
            Signed {
                secret,
                body,
                nonce,
                timestamp,
                signature,
            }
        })
}

/// Verifies with a clock at the signed time; `None` if the mutated headers
/// cannot be carried in a request.
fn verify(s: &Signed, clock_at: &str) -> Option<Result<Verified, Rejection>> {
    let now = at(clock_at.parse().ok()?);
    let parts = http::Request::post("/w")
        .header("x-sinch-webhook-signature", s.signature.as_str())
        .header("x-sinch-webhook-signature-nonce", s.nonce.as_str())
        .header("x-sinch-webhook-signature-timestamp", s.timestamp.as_str())
        .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
        .body(())
        .ok()?
        .into_parts()
        .0;
    let verifier = WebhookVerifier::new(s.secret.as_str()).clock(ManualClock::new(now));
    Some(verifier.verify(&parts, &s.body))
}

fn replace_byte(text: &str, index: usize, with: u8) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    let slot = bytes.get_mut(index % text.len().max(1))?;
    if *slot == with {
        return None;
    }
    *slot = with;
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_webhooks_verify(s in signed_strategy()) {
        let result = verify(&s, &s.timestamp).unwrap();
        prop_assert_eq!(result, Ok(Verified::Webhook { nonce: s.nonce.clone(), timestamp: at(s.timestamp.parse().unwrap()), secret: SecretUsed::Current }));
    }

    #[test]
    fn any_single_byte_change_to_the_body_is_rejected(s in signed_strategy(), index in any::<usize>(), flip in 1u8..=255) {
        prop_assume!(!s.body.is_empty());
        let mut s = s;
        let i = index % s.body.len();
        s.body[i] ^= flip;
        prop_assert_eq!(verify(&s, &s.timestamp).unwrap(), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn a_single_byte_change_to_the_nonce_is_rejected(s in signed_strategy(), index in any::<usize>(), with in 0x21u8..0x7f) {
        let Some(nonce) = replace_byte(&s.nonce, index, with) else { return Ok(()) };
        let mut s = s;
        s.nonce = nonce;
        let result = verify(&s, &s.timestamp).unwrap();
        prop_assert!(
            matches!(
                result,
                Err(Rejection::SignatureMismatch | Rejection::MalformedHeader { name: "x-sinch-webhook-signature-nonce", .. })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_single_byte_change_to_the_timestamp_is_rejected(s in signed_strategy(), index in any::<usize>(), with in 0x21u8..0x7f) {
        let Some(timestamp) = replace_byte(&s.timestamp, index, with) else { return Ok(()) };
        let clock_at = s.timestamp.clone();
        let mut s = s;
        s.timestamp = timestamp;
        let result = verify(&s, &clock_at).unwrap();
        prop_assert!(
            matches!(
                result,
                // Freshness is checked on the head, before the signature.
                Err(Rejection::SignatureMismatch
                    | Rejection::MalformedHeader { name: "x-sinch-webhook-signature-timestamp", .. }
                    | Rejection::TooOld { .. }
                    | Rejection::TooNew { .. })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_single_byte_change_to_the_signature_is_rejected(s in signed_strategy(), index in any::<usize>(), with in 0x21u8..0x7f) {
        let Some(signature) = replace_byte(&s.signature, index, with) else { return Ok(()) };
        let mut s = s;
        s.signature = signature;
        prop_assert_eq!(verify(&s, &s.timestamp).unwrap(), Err(Rejection::SignatureMismatch));
    }
}

/// Every way to re-cut a genuine webhook: the body cut at a `.`, its tail
/// moved into the nonce. The MAC input `body "." nonce "." timestamp` is the
/// same bytes, so each keeps the genuine signature.
fn re_cuts(body: &str, nonce: &str) -> Vec<(String, String)> {
    body.match_indices('.')
        .map(|(i, _)| (body[..i].to_owned(), format!("{}.{nonce}", &body[i + 1..])))
        .collect()
}

/// Spec vectors H1 and H2: secret, nonce, timestamp, body, signature.
const VECTORS: [(&str, &str, &str, &str, &str); 2] = [
    (
        "foo_secret1234",
        "01FJA8B4A7BM43YGWSG9GBV067",
        "1634579353",
        H1_BODY,
        "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=",
    ),
    (
        "SMSWebhooksSecret",
        "01JHFFHWYY7HSS4FWTMDTQEK8V",
        "1736760161",
        H2_BODY,
        "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0=",
    ),
];

#[test]
fn webhook_re_cut_forgery_every_split_of_h1_and_h2_is_rejected() {
    let mut tried = 0;
    for (secret, nonce, timestamp, body, signature) in VECTORS {
        let verifier =
            WebhookVerifier::new(secret).clock(ManualClock::new(at(timestamp.parse().unwrap())));
        for (cut_body, cut_nonce) in re_cuts(body, nonce) {
            // The forgery is real: the genuine signature matches the re-cut message.
            assert_eq!(
                webhook_signature(secret, cut_body.as_bytes(), &cut_nonce, timestamp),
                signature
            );
            assert_eq!(
                verifier.verify(&head(signature, &cut_nonce, timestamp), cut_body.as_bytes()),
                Err(Rejection::MalformedHeader {
                    name: "x-sinch-webhook-signature-nonce",
                    reason: "must be 1 to 128 ASCII letters, digits, '-' or '_'",
                }),
                "{cut_nonce}"
            );
            tried += 1;
        }
        // The genuine webhook is still accepted.
        assert!(
            verifier
                .verify(&head(signature, nonce, timestamp), body.as_bytes())
                .is_ok()
        );
    }
    // H1 has three `.`, H2 one.
    assert_eq!(tried, 4);
}

#[test]
fn webhook_re_cut_forgeries_cannot_flush_the_replay_memory() {
    for (secret, nonce, timestamp, body, signature) in VECTORS {
        // Room for one nonce: any accepted re-cut would evict the genuine one.
        let verifier = WebhookVerifier::new(secret)
            .clock(ManualClock::new(at(timestamp.parse().unwrap())))
            .replay_protection(1);
        let genuine = head(signature, nonce, timestamp);
        assert!(verifier.verify(&genuine, body.as_bytes()).is_ok());
        for (cut_body, cut_nonce) in re_cuts(body, nonce) {
            let forged = head(signature, &cut_nonce, timestamp);
            assert!(verifier.verify(&forged, cut_body.as_bytes()).is_err());
        }
        assert_eq!(
            verifier.verify(&genuine, body.as_bytes()),
            Err(Rejection::Replayed { what: "nonce" })
        );
    }
}

#[test]
fn nonces_are_ulid_like_tokens_of_at_most_128_characters() {
    let verifier = WebhookVerifier::new("s").clock(ManualClock::new(at(1)));
    let signed = |nonce: &str| head(&webhook_signature("s", b"{}", nonce, "1"), nonce, "1");
    for good in ["01FJA8B4A7BM43YGWSG9GBV067", "a", "A-b_9", &"x".repeat(128)] {
        assert!(verifier.verify(&signed(good), b"{}").is_ok(), "{good}");
    }
    for bad in ["a.b", ".", "a b", "a+b", "a/b", "é", &"x".repeat(129)] {
        let Ok(value) = http::HeaderValue::from_str(bad) else {
            continue;
        };
        let mut parts = signed("placeholder");
        parts
            .headers
            .insert("x-sinch-webhook-signature-nonce", value);
        assert!(
            matches!(
                verifier.verify(&parts, b"{}"),
                Err(Rejection::MalformedHeader {
                    name: "x-sinch-webhook-signature-nonce",
                    ..
                })
            ),
            "{bad}"
        );
    }
}
