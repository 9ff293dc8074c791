//! Per-request overhead of the layer on its cached paths, against baselines
//! measured in the same run (the figures in the README are ratios of these).
//!
//! `cargo bench --bench overhead`
//!
//! The inner service answers at once; every iteration builds the same request
//! (static URI, empty body), polls `poll_ready`, calls, and polls the response
//! future once (it is always ready).

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use sinch_auth::token::{Token, source_fn};
use sinch_auth::{
    AccessKey, ApplicationCredentials, BasicCredentials, Credentials, RotatingCredentials, Scheme,
    ServicePlan, SinchAuthLayer, StaticCredentials,
};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;

static URI: &str = "https://numbers.api.sinch.com/v1/projects/p/activeNumbers";

fn request() -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static(URI);
    request
}

/// The same request with one header of its own (`content-type`), as most
/// API calls carry: the resend copy then copies a header list.
fn request_with_header() -> Request<Full<Bytes>> {
    let mut request = request();
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request
}

type Inner = tower::util::ServiceFn<
    fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<()>, Infallible>>,
>;

fn inner() -> Inner {
    fn answer(
        request: Request<Full<Bytes>>,
    ) -> std::future::Ready<Result<Response<()>, Infallible>> {
        black_box(&request);
        std::future::ready(Ok(Response::new(())))
    }
    tower::service_fn(answer as fn(_) -> _)
}

/// One request (made by `make`) through `service`, driven synchronously.
fn once<S>(service: &mut S, make: fn() -> Request<Full<Bytes>>, cx: &mut Context<'_>)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    assert!(service.poll_ready(cx).is_ready());
    let future = pin!(service.call(make()));
    match future.poll(cx) {
        Poll::Ready(Ok(response)) => {
            black_box(response);
        }
        _ => panic!("the inner service answers at once"),
    }
}

/// The obvious hand-written alternative: a lock, a `format!` and a parse per request.
#[derive(Clone)]
struct Handwritten<S> {
    inner: S,
    token: Arc<RwLock<String>>,
}

impl<S: Service<Request<Full<Bytes>>>> Service<Request<Full<Bytes>>> for Handwritten<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Full<Bytes>>) -> S::Future {
        let token = self.token.read().unwrap();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        request.headers_mut().insert(AUTHORIZATION, value);
        self.inner.call(request)
    }
}

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrZXktaWQiLCJleHAiOjE4OTM0NTYwMDB9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";

fn credentials() -> Credentials {
    Credentials::builder()
        .access_key(AccessKey::new("p", "key-id", "key-secret").unwrap())
        .application(ApplicationCredentials::new("app", "YXBwLXNlY3JldA==").unwrap())
        .service_plan(ServicePlan::new("plan", "0123456789abcdef0123456789abcdef").unwrap())
        .basic(BasicCredentials::new("user", "password").unwrap())
        .build()
}

fn oauth2_layer(resend: bool) -> SinchAuthLayer {
    SinchAuthLayer::builder(StaticCredentials::new(credentials()))
        .scheme(Scheme::OAuth2)
        .token_source(source_fn(|_| async {
            Ok(Token::new(TOKEN, Duration::from_secs(3600)))
        }))
        .resend_on_expired(resend)
        .build()
        .unwrap()
}

/// One way of sending the request, ready to run.
type Variant = (&'static str, Box<dyn FnMut(&mut Context<'_>)>);

fn service<S>(service: S) -> Box<dyn FnMut(&mut Context<'_>)>
where
    S: Service<Request<Full<Bytes>>> + 'static,
    S::Error: std::fmt::Debug,
{
    service_sending(service, request)
}

fn service_sending<S>(
    mut service: S,
    make: fn() -> Request<Full<Bytes>>,
) -> Box<dyn FnMut(&mut Context<'_>)>
where
    S: Service<Request<Full<Bytes>>> + 'static,
    S::Error: std::fmt::Debug,
{
    Box::new(move |cx| once(&mut service, make, cx))
}

/// The baselines and every cached path of ours, warmed up (tokens in cache).
fn variants(runtime: &tokio::runtime::Runtime) -> Vec<Variant> {
    let warm = |layer: SinchAuthLayer| {
        runtime
            .block_on(layer.layer(inner()).oneshot(request()))
            .unwrap();
        layer
    };
    let ours = |layer: SinchAuthLayer| service(warm(layer).layer(inner()));
    vec![
        ("A_no_middleware", service(inner())),
        (
            "B_tower_http_static_header",
            service(AddAuthorizationLayer::bearer(TOKEN).layer(inner())),
        ),
        (
            "C_rwlock_format_parse",
            service(Handwritten {
                inner: inner(),
                token: Arc::new(RwLock::new(TOKEN.to_owned())),
            }),
        ),
        (
            "ours_static_bearer",
            ours(
                SinchAuthLayer::new(
                    StaticCredentials::new(credentials()),
                    Scheme::ServicePlanBearer,
                )
                .unwrap(),
            ),
        ),
        ("ours_oauth2_cached", ours(oauth2_layer(true))),
        (
            "B_with_header",
            service_sending(
                AddAuthorizationLayer::bearer(TOKEN).layer(inner()),
                request_with_header,
            ),
        ),
        (
            "ours_oauth2_cached_with_header",
            service_sending(warm(oauth2_layer(true)).layer(inner()), request_with_header),
        ),
        (
            "ours_oauth2_cached_no_resend_with_header",
            service_sending(
                warm(oauth2_layer(false)).layer(inner()),
                request_with_header,
            ),
        ),
        ("ours_oauth2_cached_no_resend", ours(oauth2_layer(false))),
        (
            "ours_rotating_provider",
            ours(
                SinchAuthLayer::new(
                    RotatingCredentials::new(credentials()),
                    Scheme::ServicePlanBearer,
                )
                .unwrap(),
            ),
        ),
        (
            "ours_self_signed_jwt_cached",
            ours(
                SinchAuthLayer::builder(StaticCredentials::new(credentials()))
                    .scheme(Scheme::SelfSignedJwt)
                    .resend_on_expired(false)
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "ours_basic",
            ours(
                SinchAuthLayer::new(StaticCredentials::new(credentials()), Scheme::Basic).unwrap(),
            ),
        ),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn overhead(c: &mut Criterion) {
    let runtime = runtime();
    let _guard = runtime.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("overhead");
    group.measurement_time(Duration::from_secs(4));
    for (name, mut run) in variants(&runtime) {
        group.bench_function(name, |b| b.iter(|| run(&mut cx)));
    }
    group.finish();
}

/// Ratios to baseline B measured in interleaved rounds: every round times
/// each variant back to back, so drift of the machine (frequency, neighbours)
/// hits all of them alike; the median of the per-round ratios is reported.
fn interleaved_ratios() {
    let runtime = runtime();
    let _guard = runtime.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let mut variants = variants(&runtime);
    const ROUNDS: usize = 31;
    const ITERATIONS: u32 = 100_000;
    let mut times = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for _ in 0..ROUNDS {
        for (i, (_, run)) in variants.iter_mut().enumerate() {
            let started = std::time::Instant::now();
            for _ in 0..ITERATIONS {
                run(&mut cx);
            }
            times[i].push(started.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() / 4], v[3 * v.len() / 4])
    };
    let b = &times[1];
    println!("\ninterleaved rounds ({ROUNDS} x {ITERATIONS} requests per variant)");
    println!(
        "{:<32} {:>10} {:>22}",
        "variant", "ns/request", "ratio to B (p25-p75)"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let (ns, _, _) = median(times[i].clone());
        let ratios: Vec<f64> = times[i].iter().zip(b).map(|(t, b)| t / b).collect();
        let (r, lo, hi) = median(ratios);
        println!("{name:<32} {ns:>10.1} {r:>9.2} ({lo:.2}-{hi:.2})");
    }
}

fn main() {
    // For instruction counts under callgrind: run one variant N times.
    //   SINCH_AUTH_BENCH_ONLY=ours_static_bearer:100000 valgrind --tool=callgrind target/release/deps/overhead-…
    if let Ok(only) = std::env::var("SINCH_AUTH_BENCH_ONLY") {
        let (name, n) = only.split_once(':').unwrap_or((&only, "100000"));
        let n: u32 = n.parse().unwrap();
        let runtime = runtime();
        let _guard = runtime.enter();
        let mut cx = Context::from_waker(Waker::noop());
        // `all:<n>` runs every variant n times (CI's smoke run).
        let mut chosen: Vec<Variant> = variants(&runtime)
            .into_iter()
            .filter(|(v, _)| name == "all" || *v == name)
            .collect();
        assert!(!chosen.is_empty(), "no variant named {name}");
        for (_, run) in &mut chosen {
            for _ in 0..n {
                run(&mut cx);
            }
        }
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    overhead(&mut criterion);
    criterion.final_summary();
    interleaved_ratios();
}
