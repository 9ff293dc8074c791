//! Soak: concurrent requests through `SinchAuthLayer` against the loopback
//! stand-in while credentials rotate every 100 ms, tokens live one second,
//! and the token endpoint fails at random (500, 503, 429, dropped
//! connections). Every request has a valid path (both access keys stay
//! accepted, every injected failure is transient and followed by a
//! success), so none may fail. Afterwards every task the run started must be
//! gone, and the resident set must not have grown after warm-up.
//!
//! `SINCH_AUTH_SOAK_SECS` sets the duration (default 8 s, what CI runs);
//! `cargo test --test soak -- --nocapture` prints the figures.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::RefreshConfig;
use sinch_auth::{
    AccessKey, ApplicationCredentials, Credentials, RotatingCredentials, Scheme, SinchAuthLayer,
    StaticCredentials,
};
use tower::{Layer, ServiceExt};

fn access_key(n: u8) -> AccessKey {
    AccessKey::new("proj-soak", format!("key-{n}"), format!("SOAK-SECRET-{n}")).unwrap()
}

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new("app-soak", "c29hay1hcHAtc2VjcmV0").unwrap()
}

/// The resident set size, in bytes (Linux; `None` elsewhere).
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, outcome: Result<StatusCode, String>) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let failure = match outcome {
            Ok(status) if status.is_success() => return,
            Ok(status) => format!("answered {status}"),
            Err(error) => error,
        };
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 20 {
            failures.push(failure);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_rotation_short_tokens_and_random_endpoint_failures_lose_no_request() {
    let seconds: u64 = std::env::var("SINCH_AUTH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
        .max(2);
    let duration = Duration::from_secs(seconds);
    let warm_up = duration / 4;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline_tasks = metrics.num_alive_tasks();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let injected = Arc::new(AtomicU64::new(0));
    let rotations = Arc::new(AtomicU64::new(0));
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let (tokens_issued, token_requests);
    let started = Instant::now();
    {
        let sinch = Arc::new(
            SinchStandIn::builder()
                .access_key(&access_key(1))
                .access_key(&access_key(2))
                .application(&app())
                .token_lifetime(Duration::from_secs(1))
                .start()
                .await
                .unwrap(),
        );
        // The soak runs on the real clock (it measures memory over real
        // seconds); the layers still read the stand-in's clock, so both
        // sides agree on every token's `exp` and every signed timestamp.
        let provider = RotatingCredentials::new(access_key(1));
        let oauth2 = SinchAuthLayer::builder(provider.clone())
            .scheme(Scheme::OAuth2)
            .auth_host(&sinch.url())
            .refresh(RefreshConfig::default().wait_timeout(Duration::from_secs(10)))
            .clock(sinch.clock())
            .build()
            .unwrap()
            .layer(sinch.client());
        let signed = SinchAuthLayer::builder(StaticCredentials::new(app()))
            .scheme(Scheme::ApplicationSigned)
            .clock(sinch.clock())
            .build()
            .unwrap()
            .layer(sinch.client());

        let mut tasks = tokio::task::JoinSet::new();
        // Rotation every 100 ms between the two keys the stand-in accepts;
        // each rotation is a new credentials bundle, so the token is refetched.
        {
            let (stop, rotations) = (stop.clone(), rotations.clone());
            tasks.spawn(async move {
                let mut n = 1u8;
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    n = 3 - n;
                    provider.rotate(Credentials::from(access_key(n)));
                    rotations.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Random token endpoint failures: at most one queued at a time, so
        // a failure is always followed by a fetch that can succeed.
        {
            let (stop, injected, sinch) = (stop.clone(), injected.clone(), sinch.clone());
            tasks.spawn(async move {
                let mut armed_at: Option<u64> = None;
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let requests = sinch.token_requests();
                    if armed_at.is_some_and(|at| requests <= at) || fastrand::f64() > 0.2 {
                        continue;
                    }
                    let failure = match fastrand::u8(..4) {
                        0 => TokenFailure::status(StatusCode::INTERNAL_SERVER_ERROR),
                        1 => TokenFailure::status(StatusCode::SERVICE_UNAVAILABLE),
                        2 => TokenFailure::too_many_requests(None),
                        _ => TokenFailure::close_connection(),
                    };
                    sinch.fail_next_token_requests(1, failure);
                    armed_at = Some(requests);
                    injected.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Six OAuth2 senders, one signing sender.
        for worker in 0..7u32 {
            let (stop, tally) = (stop.clone(), tally.clone());
            let (oauth2, signed) = (oauth2.clone(), signed.clone());
            let base = sinch.url();
            tasks.spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let outcome = if worker == 6 {
                        let request = Request::post(format!("{base}/calling/v1/callouts"))
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(format!("{{\"n\":{i}}}"))))
                            .unwrap();
                        send(signed.clone(), request).await
                    } else {
                        let request =
                            Request::get(format!("{base}/v1/projects/proj-soak/{worker}/{i}"))
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                        send(oauth2.clone(), request).await
                    };
                    tally.record(outcome);
                }
            });
        }

        // Sample the resident set; keep the stand-in's request log from
        // growing (it is the stand-in's memory, not the crate's).
        while started.elapsed() < duration {
            tokio::time::sleep(Duration::from_millis(250)).await;
            sinch.clear_requests();
            if let Some(rss) = rss() {
                samples.push((started.elapsed(), rss));
            }
        }
        stop.store(true, Ordering::Relaxed);
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
        tokens_issued = sinch.tokens_issued();
        token_requests = sinch.token_requests();
        drop((oauth2, signed));
        // Dropping the stand-in stops its server and its connections.
        drop(sinch);
    }

    // Every task the run started ends: refreshers, connections, the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.num_alive_tasks() > baseline_tasks {
        assert!(
            Instant::now() < deadline,
            "{} tasks alive after the run, {baseline_tasks} before",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let sent = tally.sent.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let after_warm_up: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= warm_up)
        .map(|(_, rss)| *rss)
        .collect();
    let (first, peak) = (
        after_warm_up.first().copied().unwrap_or(0),
        after_warm_up.iter().copied().max().unwrap_or(0),
    );
    let last = after_warm_up.last().copied().unwrap_or(0);
    println!(
        "soak: {seconds} s, {sent} requests ({:.0}/s), {failed} failed; {rotations} rotations; \
         token endpoint: {token_requests} requests, {tokens_issued} tokens issued, {injected} failures injected; \
         RSS after warm-up: {:.1} MiB → {:.1} MiB (peak {:.1} MiB); tasks back to {baseline_tasks}",
        sent as f64 / started.elapsed().as_secs_f64(),
        mib(first),
        mib(last),
        mib(peak),
        rotations = rotations.load(Ordering::Relaxed),
        injected = injected.load(Ordering::Relaxed),
    );
    assert_eq!(
        failed,
        0,
        "{failed} of {sent} requests failed: {:#?}",
        tally.failures.lock().unwrap()
    );
    assert!(sent >= seconds * 100, "only {sent} requests in {seconds} s");
    assert!(
        tokens_issued >= seconds * 3,
        "{tokens_issued} tokens in {seconds} s: rotation did not refetch"
    );
    assert!(
        injected.load(Ordering::Relaxed) >= seconds,
        "too few failures injected"
    );
    // Flat memory: after warm-up the resident set stays within 16 MiB of
    // where it was (a leak of even 200 bytes a request shows over a minute).
    if !after_warm_up.is_empty() {
        let growth = peak.saturating_sub(first);
        assert!(
            growth <= 16 * 1024 * 1024,
            "RSS grew {:.1} MiB after warm-up ({:.1} → peak {:.1} MiB)",
            mib(growth),
            mib(first),
            mib(peak)
        );
    }
}

async fn send<S>(service: S, request: Request<Full<Bytes>>) -> Result<StatusCode, String>
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>>,
    S::Error: std::fmt::Display,
{
    let response = service.oneshot(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    // Read the answer through: a broken body is a failed request too.
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(status)
}
