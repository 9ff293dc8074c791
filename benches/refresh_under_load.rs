//! Refresh under load, with a bounded run that prints its figures.
//!
//! `cargo bench --bench refresh_under_load`
//!
//! 1. A background refresh while 10,000 requests arrive: the loopback token
//!    endpoint answers after 500 ms; the requests start spread over the
//!    window in which the refresh begins and ends. Reported: token fetches
//!    (target 1), requests that waited for a token (target 0), and the
//!    latency the layer added (the inner service answers at once).
//! 2. A cold start: 10,000 requests at once on an empty cache, token endpoint
//!    answering after 500 ms. Reported: fetches (target 1) and latencies.
//!
//! "Waited" is counted from the crate's own `request waits for a token`
//! debug event, so it counts every request that took the slow path.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
use tower::{Layer, ServiceExt};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

const REQUESTS: usize = 10_000;

/// Counts the crate's "request waits for a token" events.
struct CountWaits(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountWaits {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(bool);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}") == "request waits for a token"
                {
                    self.0 = true;
                }
            }
        }
        if event.metadata().target() == "sinch_auth" {
            let mut message = Message(false);
            event.record(&mut message);
            if message.0 {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn inner() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    tower::service_fn(|_: Request<Full<Bytes>>| std::future::ready(Ok(Response::new(()))))
}

fn request() -> Request<Full<Bytes>> {
    Request::get("https://numbers.api.sinch.com/v1/projects/p/activeNumbers")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn key() -> AccessKey {
    AccessKey::new("project", "key-id", "key-secret").unwrap()
}

fn report(name: &str, mut latencies: Vec<Duration>, fetches: u64, waited: u64) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!("{name}");
    println!("  requests:        {}", latencies.len());
    println!("  token fetches:   {fetches}");
    println!("  requests waited: {waited}");
    println!(
        "  layer latency:   p50 {:?}  p99 {:?}  max {:?}",
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );
}

async fn spanning_a_refresh(waits: &AtomicU64) {
    // Two-second tokens: usable 1.8 s, refresh starts 0.675–0.9 s in.
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .token_lifetime(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()
        .unwrap();
    layer.layer(inner()).oneshot(request()).await.unwrap();
    let warmed = tokio::time::Instant::now();
    sinch.delay_tokens(Duration::from_millis(500));
    let fetches_before = sinch.token_requests();
    let waits_before = waits.load(Ordering::Relaxed);

    // Start times spread over 0.6 s – 1.5 s: before, during and after the refresh.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let service = layer.layer(inner());
        let start = warmed + Duration::from_millis(600) + Duration::from_micros(90 * i as u64);
        tasks.spawn(async move {
            tokio::time::sleep_until(start).await;
            let t = Instant::now();
            service.oneshot(request()).await.unwrap();
            t.elapsed()
        });
    }
    let mut latencies = Vec::with_capacity(REQUESTS);
    while let Some(latency) = tasks.join_next().await {
        latencies.push(latency.unwrap());
    }
    report(
        "10,000 requests spanning a background refresh (token endpoint: 500 ms)",
        latencies,
        sinch.token_requests() - fetches_before,
        waits.load(Ordering::Relaxed) - waits_before,
    );
}

async fn cold_start(waits: &AtomicU64) {
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    sinch.delay_tokens(Duration::from_millis(500));
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()
        .unwrap();
    let waits_before = waits.load(Ordering::Relaxed);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        let service = layer.layer(inner());
        tasks.spawn(async move {
            let t = Instant::now();
            service.oneshot(request()).await.unwrap();
            t.elapsed()
        });
    }
    let mut latencies = Vec::with_capacity(REQUESTS);
    while let Some(latency) = tasks.join_next().await {
        latencies.push(latency.unwrap());
    }
    report(
        "10,000 concurrent requests on a cold cache (token endpoint: 500 ms)",
        latencies,
        sinch.token_requests(),
        waits.load(Ordering::Relaxed) - waits_before,
    );
}

fn main() {
    let waits = Arc::new(AtomicU64::new(0));
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with(CountWaits(waits.clone()));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        spanning_a_refresh(&waits).await;
        cold_start(&waits).await;
    });
}
