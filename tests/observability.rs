//! Spans and metrics, captured from the real layer against the loopback
//! stand-in: one span per token fetch, wait and verification with the fields
//! operators filter on, the `metrics` feature's counters and histograms, and
//! never a secret in any of it.
//!
//! Spans are captured by a `tracing` layer installed for the test's thread
//! only; metrics by `metrics-util`'s `DebuggingRecorder` installed the same
//! way (`metrics::set_default_local_recorder`). The tests run on tokio's
//! current-thread runtime, so the background refresher is polled on the same
//! thread and reports to both.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{get, send};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use sinch_auth::testkit::{SinchStandIn, TokenFailure};
use sinch_auth::token::RefreshConfig;
use sinch_auth::verify::{VerifyLayer, WebhookVerifier, webhook_signature};
use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

const KEY_SECRET: &str = "OBS-key-secret-Z9q1";
const WEBHOOK_SECRET: &str = "OBS-webhook-secret-Z9q2";

fn key() -> AccessKey {
    AccessKey::new("proj-o", "key-o", KEY_SECRET).unwrap()
}

fn config() -> RefreshConfig {
    RefreshConfig::default()
        .fetch_timeout(Duration::from_millis(500))
        .wait_timeout(Duration::from_secs(2))
        .backoff_base(Duration::from_millis(20))
        .backoff_cap(Duration::from_millis(50))
        .min_forced_interval(Duration::ZERO)
}

fn layer(sinch: &SinchStandIn, refresh: RefreshConfig) -> SinchAuthLayer {
    SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(refresh)
        .build()
        .unwrap()
}

async fn stand_in() -> SinchStandIn {
    SinchStandIn::builder()
        .access_key(&key())
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await
        .unwrap()
}

// ---- capturing `tracing` layer ----

/// One span: its name and every field it was given, at creation or later.
#[derive(Debug, Clone)]
struct CapturedSpan {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

impl CapturedSpan {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Captured {
    spans: Arc<Mutex<Vec<CapturedSpan>>>,
    /// Every event's fields, for the secret search.
    events: Arc<Mutex<Vec<String>>>,
}

/// The index of a span in [`Captured::spans`], kept in the span's extensions.
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(CapturedSpan {
            name: attrs.metadata().name(),
            fields,
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Index(spans.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(Index(index)) = extensions.get::<Index>() else {
            return;
        };
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[*index].fields));
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(format!("{fields:?}"));
    }
}

impl Captured {
    /// Captures everything on this thread until the guard is dropped.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn named(&self, name: &str) -> Vec<CapturedSpan> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }

    /// Every field of every span and event, as text.
    fn text(&self) -> String {
        format!(
            "{:?}\n{:?}",
            self.spans.lock().unwrap(),
            self.events.lock().unwrap()
        )
    }

    /// No secret, and no credential that went on the wire, in any field.
    fn assert_no_secrets(&self, sinch: Option<&SinchStandIn>) {
        let mut secrets = vec![KEY_SECRET.to_owned(), WEBHOOK_SECRET.to_owned()];
        for request in sinch.map(SinchStandIn::requests).unwrap_or_default() {
            for value in request.headers.get_all(AUTHORIZATION) {
                let value = value.to_str().unwrap();
                secrets.push(value.to_owned());
                // The bare token, and any piece of a JWT, without the scheme.
                let token = value.split_once(' ').map_or(value, |(_, t)| t);
                secrets.extend(token.split('.').map(str::to_owned));
            }
        }
        let text = self.text();
        assert!(!text.is_empty());
        for secret in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(
                !text.contains(secret.as_str()),
                "a secret ({} chars) reached a span or event field",
                secret.len()
            );
        }
        assert!(!text.contains("Z9q"), "a secret's marker reached a field");
    }
}

fn number(span: &CapturedSpan, field: &str) -> u64 {
    span.field(field)
        .unwrap_or_else(|| panic!("span {} has no {field}: {:?}", span.name, span.fields))
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number: {:?}", span.fields))
}

// ---- metrics capture ----

#[cfg(feature = "metrics")]
mod recorded {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use metrics_util::{CompositeKey, MetricKind};

    pub(crate) struct Metrics {
        snapshotter: Snapshotter,
    }

    /// What was recorded since the last snapshot (taking one resets the recorder).
    pub(crate) struct Taken(Vec<(CompositeKey, DebugValue)>);

    /// A recorder for this thread only; the guard keeps it installed.
    pub(crate) fn install() -> (Metrics, metrics::LocalRecorderGuard<'static>) {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let guard = metrics::set_default_local_recorder(recorder);
        (
            Metrics {
                snapshotter: recorder.snapshotter(),
            },
            guard,
        )
    }

    impl Metrics {
        pub(crate) fn take(&self) -> Taken {
            Taken(
                self.snapshotter
                    .snapshot()
                    .into_vec()
                    .into_iter()
                    .map(|(key, _, _, value)| (key, value))
                    .collect(),
            )
        }
    }

    impl Taken {
        fn find(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Vec<&DebugValue> {
            self.0
                .iter()
                .filter(|(key, _)| key.kind() == kind && key.key().name() == name)
                .filter(|(key, _)| {
                    labels.iter().all(|(k, v)| {
                        key.key()
                            .labels()
                            .any(|label| label.key() == *k && label.value() == *v)
                    })
                })
                .map(|(_, value)| value)
                .collect()
        }

        /// The sum of the counters with this name and (at least) these labels.
        pub(crate) fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
            self.find(MetricKind::Counter, name, labels)
                .into_iter()
                .map(|value| match value {
                    DebugValue::Counter(n) => *n,
                    other => panic!("{name} is not a counter: {other:?}"),
                })
                .sum()
        }

        /// Every histogram sample with this name and (at least) these labels.
        pub(crate) fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
            self.find(MetricKind::Histogram, name, labels)
                .into_iter()
                .flat_map(|value| match value {
                    DebugValue::Histogram(samples) => {
                        samples.iter().map(|s| s.into_inner()).collect::<Vec<_>>()
                    }
                    other => panic!("{name} is not a histogram: {other:?}"),
                })
                .collect()
        }

        /// Every label value of every metric, for the secret search.
        pub(crate) fn text(&self) -> String {
            format!("{:?}", self.0)
        }
    }
}

// ---- token fetches ----

#[tokio::test]
async fn a_token_fetch_is_one_span_with_source_attempt_outcome_status_latency_and_remaining_life() {
    let captured = Captured::default();
    let _tracing = captured.install();
    #[cfg(feature = "metrics")]
    let (metrics, _recorder) = recorded::install();

    let sinch = stand_in().await;
    let client = ServiceBuilder::new()
        .layer(layer(&sinch, config()))
        .service(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    for _ in 0..5 {
        let (status, body) = send(&client, get(&url)).await;
        assert_eq!(status, 200, "{body}");
    }

    let fetches = captured.named("sinch_auth.token_fetch");
    assert_eq!(fetches.len(), 1, "one fetch for five requests: {fetches:?}");
    let fetch = &fetches[0];
    assert_eq!(fetch.field("source"), Some("oauth2"));
    assert_eq!(fetch.field("attempt"), Some("1"));
    assert_eq!(fetch.field("outcome"), Some("ok"));
    assert_eq!(fetch.field("status"), Some("200"));
    assert_eq!(fetch.field("error"), None);
    number(fetch, "latency_ms");
    // 3600 s minus the 5 s expiry skew, minus a second if the issuer's
    // clock ticked between issuing and our reading of `exp`.
    let life = number(fetch, "remaining_life_s");
    assert!((3594..=3595).contains(&life), "remaining life {life}");
    // Only the cold start waited: cached requests open no span at all.
    assert_eq!(captured.named("sinch_auth.token_wait").len(), 1);
    captured.assert_no_secrets(Some(&sinch));

    #[cfg(feature = "metrics")]
    {
        let metrics = metrics.take();
        let ok = [("source", "oauth2"), ("outcome", "ok")];
        assert_eq!(metrics.counter("sinch_auth_token_fetches_total", &ok), 1);
        assert_eq!(
            metrics.counter("sinch_auth_token_fetches_total", &[("outcome", "error")]),
            0
        );
        let durations = metrics.samples("sinch_auth_token_fetch_duration_seconds", &ok);
        assert_eq!(durations.len(), 1);
        assert!(durations[0] >= 0.0);
        assert_no_secret_in_metrics(&metrics.text());
    }
}

#[tokio::test]
async fn a_failed_fetch_records_its_status_and_error_and_counts_a_failure() {
    let captured = Captured::default();
    let _tracing = captured.install();
    #[cfg(feature = "metrics")]
    let (metrics, _recorder) = recorded::install();

    let sinch = stand_in().await;
    sinch.fail_next_token_requests(1, TokenFailure::status(StatusCode::SERVICE_UNAVAILABLE));
    let client = ServiceBuilder::new()
        .layer(layer(&sinch, config()))
        .service(sinch.client());
    let (status, body) = send(&client, get(format!("{}/v1/x", sinch.url()))).await;
    assert_eq!(status, 200, "the retry brought a token: {body}");

    let fetches = captured.named("sinch_auth.token_fetch");
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    let failed = &fetches[0];
    assert_eq!(failed.field("attempt"), Some("1"));
    assert_eq!(failed.field("outcome"), Some("error"));
    assert_eq!(failed.field("status"), Some("503"));
    assert_eq!(failed.field("error"), Some("endpoint"));
    number(failed, "retry_in_ms");
    number(failed, "latency_ms");
    assert_eq!(
        failed.field("remaining_life_s"),
        None,
        "no token was being served"
    );
    let retried = &fetches[1];
    assert_eq!(retried.field("attempt"), Some("2"));
    assert_eq!(retried.field("outcome"), Some("ok"));
    assert_eq!(retried.field("status"), Some("200"));
    captured.assert_no_secrets(Some(&sinch));

    #[cfg(feature = "metrics")]
    {
        let metrics = metrics.take();
        let failure = [
            ("source", "oauth2"),
            ("error", "endpoint"),
            ("status", "503"),
        ];
        assert_eq!(
            metrics.counter("sinch_auth_token_fetch_failures_total", &failure),
            1
        );
        assert_eq!(
            metrics.counter("sinch_auth_token_fetch_failures_total", &[]),
            1
        );
        for outcome in ["ok", "error"] {
            let labels = [("source", "oauth2"), ("outcome", outcome)];
            assert_eq!(
                metrics.counter("sinch_auth_token_fetches_total", &labels),
                1
            );
            assert_eq!(
                metrics
                    .samples("sinch_auth_token_fetch_duration_seconds", &labels)
                    .len(),
                1
            );
        }
        assert_no_secret_in_metrics(&metrics.text());
    }
}

#[tokio::test]
async fn a_failed_refresh_reports_how_long_the_served_token_still_lasts() {
    let captured = Captured::default();
    let _tracing = captured.install();

    let sinch = stand_in().await;
    // A 2 s token (1.8 s usable) is refreshed after 0.9 s; that refresh fails.
    sinch.set_token_lifetime(Duration::from_secs(2));
    let client = ServiceBuilder::new()
        .layer(layer(
            &sinch,
            config().backoff_base(Duration::from_secs(30)),
        ))
        .service(sinch.client());
    let (status, _) = send(&client, get(format!("{}/v1/x", sinch.url()))).await;
    assert_eq!(status, 200);
    sinch.fail_all_token_requests(TokenFailure::status(StatusCode::BAD_GATEWAY));
    // The refresh is due within a second; give up after ten. Spans are
    // captured when they open, so wait for the refresh's outcome (recorded
    // once the endpoint has answered), not just for its span.
    let refresh_done = || {
        captured
            .named("sinch_auth.token_fetch")
            .get(1)
            .is_some_and(|span| span.field("outcome").is_some())
    };
    for _ in 0..200 {
        if refresh_done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sinch.token_requests() >= 2, "the refresh was attempted");
    let fetches = captured.named("sinch_auth.token_fetch");
    let failed = fetches.get(1).expect("a span for the failed refresh");
    assert_eq!(failed.field("outcome"), Some("error"));
    assert_eq!(failed.field("status"), Some("502"));
    // Whole seconds left of the served token: less than its usable 1.8 s.
    assert!(number(failed, "remaining_life_s") <= 1, "{failed:?}");
    captured.assert_no_secrets(Some(&sinch));
}

// ---- waits and resends ----

#[tokio::test]
async fn a_request_waiting_for_a_token_records_the_wait_and_how_it_ended() {
    let captured = Captured::default();
    let _tracing = captured.install();
    #[cfg(feature = "metrics")]
    let (metrics, _recorder) = recorded::install();

    let sinch = stand_in().await;
    let client = ServiceBuilder::new()
        .layer(layer(&sinch, config()))
        .service(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    assert_eq!(send(&client, get(&url)).await.0, 200);

    // A second layer whose token endpoint keeps failing: its request waits in vain.
    let failing = stand_in().await;
    failing.fail_all_token_requests(TokenFailure::status(StatusCode::SERVICE_UNAVAILABLE));
    let starved = ServiceBuilder::new()
        .layer(layer(
            &failing,
            config().wait_timeout(Duration::from_millis(150)),
        ))
        .service(failing.client());
    let error = starved
        .oneshot(get(format!("{}/v1/x", failing.url())))
        .await
        .expect_err("no token, no request");
    assert!(error.to_string().contains("no valid token"), "{error}");

    let waits = captured.named("sinch_auth.token_wait");
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert_eq!(waits[0].field("source"), Some("oauth2"));
    assert_eq!(waits[0].field("after_401"), Some("false"));
    assert_eq!(waits[0].field("outcome"), Some("ok"));
    number(&waits[0], "waited_ms");
    assert_eq!(waits[1].field("outcome"), Some("token_unavailable"));
    assert!(number(&waits[1], "waited_ms") >= 150, "{:?}", waits[1]);
    captured.assert_no_secrets(Some(&sinch));

    #[cfg(feature = "metrics")]
    {
        let metrics = metrics.take();
        for outcome in ["ok", "token_unavailable"] {
            let labels = [("source", "oauth2"), ("outcome", outcome)];
            assert_eq!(metrics.counter("sinch_auth_token_waits_total", &labels), 1);
            let waited = metrics.samples("sinch_auth_token_wait_duration_seconds", &labels);
            assert_eq!(waited.len(), 1, "{outcome}");
        }
        let waited = metrics.samples(
            "sinch_auth_token_wait_duration_seconds",
            &[("outcome", "token_unavailable")],
        );
        assert!(waited[0] >= 0.15, "{waited:?}");
    }
}

#[tokio::test]
async fn a_401_expired_resend_is_counted_and_its_wait_is_marked_after_401() {
    let captured = Captured::default();
    let _tracing = captured.install();
    #[cfg(feature = "metrics")]
    let (metrics, _recorder) = recorded::install();

    let sinch = stand_in().await;
    let client = ServiceBuilder::new()
        .layer(layer(&sinch, config()))
        .service(sinch.client());
    let url = format!("{}/v1/x", sinch.url());
    assert_eq!(send(&client, get(&url)).await.0, 200);
    #[cfg(feature = "metrics")]
    assert_eq!(metrics.take().counter("sinch_auth_resends_total", &[]), 0);
    sinch.answer_expired_next(1);
    let (status, body) = send(&client, get(&url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sinch.api_requests(), 3, "one resend");

    let waits = captured.named("sinch_auth.token_wait");
    let after_401: Vec<_> = waits
        .iter()
        .filter(|w| w.field("after_401") == Some("true"))
        .collect();
    assert_eq!(after_401.len(), 1, "{waits:?}");
    assert_eq!(after_401[0].field("outcome"), Some("ok"));
    assert_eq!(captured.named("sinch_auth.token_fetch").len(), 2);
    captured.assert_no_secrets(Some(&sinch));

    #[cfg(feature = "metrics")]
    {
        let metrics = metrics.take();
        assert_eq!(
            metrics.counter("sinch_auth_resends_total", &[("source", "oauth2")]),
            1
        );
        assert_no_secret_in_metrics(&metrics.text());
    }
}

// ---- verification ----

fn unix_now() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

fn webhook(body: &'static str, signed_body: &'static str) -> Request<Full<Bytes>> {
    let timestamp = unix_now();
    let signature = webhook_signature(
        WEBHOOK_SECRET,
        signed_body.as_bytes(),
        "nonce-1",
        &timestamp,
    );
    Request::post("/conversation")
        .header("x-sinch-webhook-signature", signature)
        .header("x-sinch-webhook-signature-nonce", "nonce-1")
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn verified_and_rejected_webhooks_each_get_a_verify_span_and_a_count() {
    let captured = Captured::default();
    let _tracing = captured.install();
    #[cfg(feature = "metrics")]
    let (metrics, _recorder) = recorded::install();

    let service = VerifyLayer::new(WebhookVerifier::new(WEBHOOK_SECRET)).layer(tower::service_fn(
        |_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        },
    ));
    let verified = service
        .clone()
        .oneshot(webhook("{\"a\":1}", "{\"a\":1}"))
        .await
        .unwrap();
    assert_eq!(verified.status(), StatusCode::OK);
    let rejected = service
        .oneshot(webhook("{\"a\":2}", "{\"a\":1}"))
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);

    let spans = captured.named("sinch_auth.verify");
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(spans[0].field("verifier"), Some("webhook"));
    assert_eq!(spans[0].field("outcome"), Some("verified"));
    assert_eq!(spans[0].field("scheme"), Some("webhook"));
    assert_eq!(spans[0].field("reason"), None);
    assert_eq!(spans[1].field("verifier"), Some("webhook"));
    assert_eq!(spans[1].field("outcome"), Some("rejected"));
    assert_eq!(spans[1].field("reason"), Some("signature_mismatch"));
    captured.assert_no_secrets(None);

    #[cfg(feature = "metrics")]
    {
        let metrics = metrics.take();
        let verified = [
            ("verifier", "webhook"),
            ("outcome", "verified"),
            ("reason", "none"),
        ];
        let rejected = [
            ("verifier", "webhook"),
            ("outcome", "rejected"),
            ("reason", "signature_mismatch"),
        ];
        assert_eq!(
            metrics.counter("sinch_auth_verifications_total", &verified),
            1
        );
        assert_eq!(
            metrics.counter("sinch_auth_verifications_total", &rejected),
            1
        );
        assert_eq!(
            metrics
                .samples(
                    "sinch_auth_verification_duration_seconds",
                    &[("verifier", "webhook")]
                )
                .len(),
            2
        );
        assert_no_secret_in_metrics(&metrics.text());
    }
}

#[cfg(feature = "metrics")]
fn assert_no_secret_in_metrics(text: &str) {
    assert!(!text.is_empty());
    for secret in [KEY_SECRET, WEBHOOK_SECRET, "Z9q"] {
        assert!(!text.contains(secret), "a secret reached a metric label");
    }
}
