//! The verification layer judges the head before it reads the body: a
//! request with missing or malformed signature headers, an unknown
//! application key or a stale timestamp is answered 401 before its body has
//! been sent, and the body is never read. A real axum server on 127.0.0.1,
//! a raw TCP client sending a slow chunked body.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use http::Request;
use http_body::Frame;
use sinch_auth::ApplicationCredentials;
use sinch_auth::clock::ManualClock;
use sinch_auth::scheme::application::{format_timestamp, sign};
use sinch_auth::verify::{
    ApplicationVerifier, NumbersVerifier, Verifier, VerifyLayer, WebhookVerifier,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NOW: u64 = 1_700_000_000;
const APP_KEY: &str = "headers-first-app";
const APP_SECRET: &str = "aGVhZGVycy1maXJzdA==";
/// 64 chunks of 15 KiB: 960 KiB, under the 1 MiB default limit.
const CHUNKS: usize = 64;
const CHUNK: usize = 15 * 1024;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

/// Counts the body bytes the server's services pull from the connection.
struct Counting {
    inner: Body,
    read: Arc<AtomicUsize>,
}

impl http_body::Body for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.read.fetch_add(data.len(), Ordering::SeqCst);
            }
        }
        polled
    }
}

async fn start() -> (SocketAddr, Arc<AtomicUsize>) {
    let clock = ManualClock::new(now());
    let app = ApplicationCredentials::new(APP_KEY, APP_SECRET).unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let router = Router::new()
        .route(
            "/sms",
            post(|| async { "handled" }).layer(VerifyLayer::new(
                WebhookVerifier::new("webhook-secret").clock(clock.clone()),
            )),
        )
        .route(
            "/numbers",
            post(|| async { "handled" })
                .layer(VerifyLayer::new(NumbersVerifier::new("numbers-secret"))),
        )
        .route(
            "/boxed",
            post(|| async { "handled" })
                .layer(VerifyLayer::new(Box::new(
                    WebhookVerifier::new("webhook-secret").clock(clock.clone()),
                ) as Box<dyn Verifier>)),
        )
        .route(
            "/voice",
            post(|| async { "handled" })
                .layer(VerifyLayer::new(ApplicationVerifier::new(app).clock(clock))),
        )
        .layer(tower::util::MapRequestLayer::new(
            move |request: Request<Body>| {
                let read = counter.clone();
                request.map(|inner| Body::new(Counting { inner, read }))
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, read)
}

type Headers = Vec<(&'static str, String)>;

struct Outcome {
    status: u16,
    /// How many chunks the client had sent when the status line arrived.
    chunks_sent_before_the_answer: usize,
}

/// Sends the head, then the body in slow chunks while waiting for the answer.
async fn send_slowly(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> Outcome {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes()).await.unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let sending = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
            chunk.extend(std::iter::repeat_n(b'x', CHUNK));
            chunk.extend(b"\r\n");
            for _ in 0..CHUNKS {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
            let _ = writer.write_all(b"0\r\n\r\n").await;
            // Dropping the writer would half-close the connection, which the
            // server takes as the client leaving: hold it until aborted.
            std::future::pending::<()>().await;
            drop(writer);
        })
    };
    let mut answer = Vec::new();
    let mut buf = [0; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let chunks_sent_before_the_answer = sent.load(Ordering::SeqCst);
    sending.abort();
    let status_line = String::from_utf8_lossy(&answer);
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    Outcome {
        status,
        chunks_sent_before_the_answer,
    }
}

fn signed_voice_headers(key: &str, signed_at: SystemTime) -> Vec<(&'static str, String)> {
    let app = ApplicationCredentials::new(key, APP_SECRET).unwrap();
    let signed = sign(
        &app,
        &http::Method::POST,
        "/voice",
        "application/json",
        b"{}",
        &format_timestamp(signed_at),
    )
    .unwrap();
    vec![
        ("x-timestamp", signed.timestamp.to_str().unwrap().to_owned()),
        (
            "authorization",
            signed.authorization.to_str().unwrap().to_owned(),
        ),
    ]
}

#[tokio::test]
async fn an_unsigned_slow_body_is_refused_before_it_is_sent_and_never_read() {
    let (addr, read) = start().await;
    let cases: Vec<(&str, &str, Headers)> = vec![
        ("no signature headers", "/sms", vec![]),
        (
            "a nonce that is not a token",
            "/sms",
            vec![
                ("x-sinch-webhook-signature", "c2ln".into()),
                ("x-sinch-webhook-signature-nonce", "a.b".into()),
                ("x-sinch-webhook-signature-timestamp", NOW.to_string()),
            ],
        ),
        (
            "a stale webhook timestamp",
            "/sms",
            vec![
                ("x-sinch-webhook-signature", "c2ln".into()),
                ("x-sinch-webhook-signature-nonce", "n-1".into()),
                (
                    "x-sinch-webhook-signature-timestamp",
                    (NOW - 3600).to_string(),
                ),
            ],
        ),
        ("a boxed verifier, no signature headers", "/boxed", vec![]),
        ("no x-sinch-signature", "/numbers", vec![]),
        ("no authorization", "/voice", vec![]),
        (
            "an unknown application key",
            "/voice",
            signed_voice_headers("someone-else", now()),
        ),
        (
            "a stale x-timestamp",
            "/voice",
            signed_voice_headers(APP_KEY, now() - Duration::from_secs(3600)),
        ),
    ];
    for (case, path, headers) in cases {
        let outcome = send_slowly(addr, path, &headers).await;
        assert_eq!(outcome.status, 401, "{case}");
        assert!(
            outcome.chunks_sent_before_the_answer < CHUNKS,
            "{case}: answered only after the whole body was sent"
        );
        assert_eq!(read.load(Ordering::SeqCst), 0, "{case}: the body was read");
    }
}

#[tokio::test]
async fn a_well_formed_head_still_gets_its_body_read_and_checked() {
    // The control: a head that passes the precheck is read to the end and
    // then fails on its signature (the body is not the one signed).
    let (addr, read) = start().await;
    let outcome = send_slowly(addr, "/voice", &signed_voice_headers(APP_KEY, now())).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.chunks_sent_before_the_answer, CHUNKS);
    assert_eq!(read.load(Ordering::SeqCst), CHUNKS * CHUNK);
}
