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
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
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

/// One request through `service`, driven synchronously.
fn once<S>(service: &mut S, cx: &mut Context<'_>)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    assert!(service.poll_ready(cx).is_ready());
    let future = pin!(service.call(request()));
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

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let warm = |layer: &SinchAuthLayer| {
        runtime
            .block_on(layer.layer(inner()).oneshot(request()))
            .unwrap();
    };

    let mut group = c.benchmark_group("overhead");
    group.measurement_time(Duration::from_secs(4));

    let mut a = inner();
    group.bench_function("A_no_middleware", |b| b.iter(|| once(&mut a, &mut cx)));

    let mut b_floor = AddAuthorizationLayer::bearer(TOKEN).layer(inner());
    group.bench_function("B_tower_http_static_header", |b| {
        b.iter(|| once(&mut b_floor, &mut cx))
    });

    let mut c_hand = Handwritten {
        inner: inner(),
        token: Arc::new(RwLock::new(TOKEN.to_owned())),
    };
    group.bench_function("C_rwlock_format_parse", |b| {
        b.iter(|| once(&mut c_hand, &mut cx))
    });

    let layer = SinchAuthLayer::new(
        StaticCredentials::new(credentials()),
        Scheme::ServicePlanBearer,
    )
    .unwrap();
    warm(&layer);
    let mut ours = layer.layer(inner());
    group.bench_function("ours_static_bearer", |b| {
        b.iter(|| once(&mut ours, &mut cx))
    });

    let layer = oauth2_layer(true);
    warm(&layer);
    let mut ours = layer.layer(inner());
    group.bench_function("ours_oauth2_cached", |b| {
        b.iter(|| once(&mut ours, &mut cx))
    });

    let layer = oauth2_layer(false);
    warm(&layer);
    let mut ours = layer.layer(inner());
    group.bench_function("ours_oauth2_cached_no_resend", |b| {
        b.iter(|| once(&mut ours, &mut cx))
    });

    let rotating = RotatingCredentials::new(credentials());
    let layer = SinchAuthLayer::new(rotating, Scheme::ServicePlanBearer).unwrap();
    warm(&layer);
    let mut ours = layer.layer(inner());
    group.bench_function("ours_rotating_provider", |b| {
        b.iter(|| once(&mut ours, &mut cx))
    });

    let layer = SinchAuthLayer::builder(StaticCredentials::new(credentials()))
        .scheme(Scheme::SelfSignedJwt)
        .resend_on_expired(false)
        .build()
        .unwrap();
    warm(&layer);
    let mut ours = layer.layer(inner());
    group.bench_function("ours_self_signed_jwt_cached", |b| {
        b.iter(|| once(&mut ours, &mut cx))
    });

    let layer = SinchAuthLayer::new(StaticCredentials::new(credentials()), Scheme::Basic).unwrap();
    warm(&layer);
    let mut ours = layer.layer(inner());
    group.bench_function("ours_basic", |b| b.iter(|| once(&mut ours, &mut cx)));

    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
