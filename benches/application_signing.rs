//! Application signing (protocol notes §4) against its floor: the MD5, HMAC-SHA256 and
//! base64 the scheme cannot avoid, over the same bytes, with no allocation.
//! Inbound likewise: verifying a signed callback against the same floor, and
//! a Conversation/SMS webhook against a bare HMAC-SHA256 of the same bytes.
//! `md5` alone gives the hash's throughput (it dominates large bodies).
//!
//! `cargo bench --bench application_signing`

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use secrecy::ExposeSecret;
use sha2::Sha256;
use sinch_auth::ApplicationCredentials;
use sinch_auth::scheme::application;
use sinch_auth::verify::{
    ApplicationVerifier, Freshness, Verifier, WebhookVerifier, webhook_signature,
};

const PATH: &str = "/calling/v1/callouts";
const CONTENT_TYPE: &str = "application/json; charset=UTF-8";
const TIMESTAMP: &str = "2023-11-22T09:10:11.999Z";

fn floor(secret: &[u8], string_to_sign_tail: &[u8], body: &[u8]) -> [u8; 44] {
    let mut md5 = [0u8; 24];
    let _ = STANDARD.encode_slice(Md5::digest(body), &mut md5);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
    mac.update(b"POST\n");
    mac.update(&md5);
    mac.update(string_to_sign_tail);
    let mut out = [0u8; 44];
    let _ = STANDARD.encode_slice(mac.finalize().into_bytes(), &mut out);
    out
}

fn bench(c: &mut Criterion) {
    let app = ApplicationCredentials::new("my-key-id", "bXkta2V5LXNlY3JldA==").unwrap();
    let tail = format!("\n{CONTENT_TYPE}\nx-timestamp:{TIMESTAMP}\n{PATH}");
    let mut group = c.benchmark_group("application_signing");
    for size in [0usize, 1 << 10, 64 << 10, 1 << 20] {
        let body = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("floor", size), &body, |b, body| {
            b.iter(|| {
                floor(
                    black_box(app.decoded_secret().expose_secret()),
                    black_box(tail.as_bytes()),
                    black_box(body),
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("md5", size), &body, |b, body| {
            b.iter(|| Md5::digest(black_box(body)))
        });
        let signed = application::sign(
            &app,
            &http::Method::POST,
            PATH,
            CONTENT_TYPE,
            &body,
            TIMESTAMP,
        )
        .unwrap();
        let (parts, ()) = http::Request::post(PATH)
            .header(http::header::AUTHORIZATION, signed.authorization)
            .header("x-timestamp", signed.timestamp)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(())
            .unwrap()
            .into_parts();
        let verifier = ApplicationVerifier::new(
            ApplicationCredentials::new("my-key-id", "bXkta2V5LXNlY3JldA==").unwrap(),
        )
        .freshness(Freshness::disabled())
        // The same callback is verified again and again: replay memory
        // (on by default) would refuse every run after the first.
        .without_replay_protection();
        group.bench_with_input(BenchmarkId::new("verify", size), &body, |b, body| {
            b.iter(|| verifier.verify(black_box(&parts), black_box(body)).unwrap())
        });
        let webhook = WebhookVerifier::new("webhook-secret")
            .freshness(Freshness::disabled())
            .without_replay_protection();
        let signature = webhook_signature("webhook-secret", &body, "nonce", "1700000000");
        let (webhook_parts, ()) = http::Request::post("/webhook")
            .header("x-sinch-webhook-signature", signature)
            .header("x-sinch-webhook-signature-nonce", "nonce")
            .header("x-sinch-webhook-signature-timestamp", "1700000000")
            .header("x-sinch-webhook-signature-algorithm", "HmacSHA256")
            .body(())
            .unwrap()
            .into_parts();
        group.bench_with_input(BenchmarkId::new("hmac_floor", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"webhook-secret").unwrap();
                mac.update(black_box(body));
                mac.update(b".nonce.1700000000");
                let mut out = [0u8; 44];
                let _ = STANDARD.encode_slice(mac.finalize().into_bytes(), &mut out);
                out
            })
        });
        group.bench_with_input(
            BenchmarkId::new("webhook_verify", size),
            &body,
            |b, body| {
                b.iter(|| {
                    webhook
                        .verify(black_box(&webhook_parts), black_box(body))
                        .unwrap()
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("sign", size), &body, |b, body| {
            b.iter(|| {
                application::sign(
                    black_box(&app),
                    black_box(&http::Method::POST),
                    black_box(PATH),
                    black_box(CONTENT_TYPE),
                    black_box(body),
                    black_box(TIMESTAMP),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
