//! `cargo run --example observability --features metrics`
//!
//! Offline, against the loopback Sinch stand-in: a token fetch that fails
//! once and is retried, a request that waits for it, a cached request, a
//! 401-`expired` resend, and a verified and a rejected webhook. The spans are
//! printed as they close (`tracing-subscriber`'s fmt layer), then a snapshot
//! of the metrics (`metrics-util`'s debugging recorder; in production you
//! would install an exporter such as Prometheus's instead).

use std::convert::Infallible;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::RefreshConfig;
use sinch_auth::verify::{VerifyLayer, WebhookVerifier, webhook_signature};
use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tracing_subscriber::fmt::format::FmtSpan;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const WEBHOOK_SECRET: &str = "demo-webhook-secret";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter("sinch_auth=info")
        .with_span_events(FmtSpan::CLOSE)
        .with_target(false)
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install()?;

    let key = AccessKey::new("demo-project", "demo-key", "demo-key-secret")?;
    let sinch = SinchStandIn::builder().access_key(&key).start().await?;
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(RefreshConfig::default().backoff_base(Duration::from_millis(20)))
        .build()?;
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let url = format!("{}/v1/projects/demo-project/activeNumbers", sinch.url());
    let get = || Request::get(&url).body(Full::new(Bytes::new()));

    println!("\n# A request on a cold start, while the token endpoint fails once");
    sinch.fail_next_token_requests(1, TokenFailure::status(StatusCode::SERVICE_UNAVAILABLE));
    println!("-> {}", client.clone().oneshot(get()?).await?.status());

    println!("\n# A request with the cached token: no span, no metric");
    println!("-> {}", client.clone().oneshot(get()?).await?.status());

    println!("\n# The API answers 401 expired once: one refetch, one resend");
    sinch.answer_expired_next(1);
    println!("-> {}", client.clone().oneshot(get()?).await?.status());

    println!("\n# A verified and a rejected webhook");
    let webhooks = VerifyLayer::new(WebhookVerifier::new(WEBHOOK_SECRET)).layer(tower::service_fn(
        |_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        },
    ));
    for body in [&b"{\"event\":1}"[..], b"{\"event\":2}"] {
        let timestamp = UNIX_EPOCH
            .elapsed()
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let signature = webhook_signature(WEBHOOK_SECRET, b"{\"event\":1}", "n-1", &timestamp);
        let request = Request::post("/conversation")
            .header("x-sinch-webhook-signature", signature)
            .header("x-sinch-webhook-signature-nonce", "n-1")
            .header("x-sinch-webhook-signature-timestamp", timestamp)
            .body(Full::new(Bytes::copy_from_slice(body)))?;
        println!("-> {}", webhooks.clone().oneshot(request).await?.status());
    }

    println!("\n# Metrics");
    let mut rows: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.to_string(),
                DebugValue::Histogram(samples) => {
                    let total: f64 = samples.iter().map(|s| s.into_inner()).sum();
                    format!("{} samples, {:.3} ms in all", samples.len(), total * 1e3)
                }
            };
            format!("{}{{{}}} {value}", key.key().name(), labels.join(","))
        })
        .collect();
    rows.sort();
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
