//! Heap allocations per request on the cached paths, counted by a real
//! counting allocator (dhat), against tower-http's static header in the same
//! process: the layer itself must add none.
//!
//! One test per binary: dhat allows one profiler per process.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use sinch_auth::token::{Token, source_fn};
use sinch_auth::{
    AccessKey, ApplicationCredentials, BasicCredentials, Credentials, RotatingCredentials, Scheme,
    ServicePlan, SinchAuthLayer, StaticCredentials,
};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: u64 = 1000;

fn request() -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static("https://numbers.api.sinch.com/v1/projects/p/x");
    request
}

type Answer = fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<()>, Infallible>>;

fn inner() -> tower::util::ServiceFn<Answer> {
    fn answer(r: Request<Full<Bytes>>) -> std::future::Ready<Result<Response<()>, Infallible>> {
        black_box(&r);
        std::future::ready(Ok(Response::new(())))
    }
    tower::service_fn(answer as Answer)
}

/// Allocations per request through a long-lived `service`, after a warm-up:
/// the fewest of five rounds. dhat counts every thread of the process, and
/// now and then something else (the test harness's own thread) allocates
/// during a round: the floor once read 2.004. A stray allocation lands in
/// one round; one the service makes per request lands in all of them.
fn per_request<S>(service: &mut S) -> f64
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut run = |n: u64| {
        for _ in 0..n {
            assert!(service.poll_ready(&mut cx).is_ready());
            let future = pin!(service.call(request()));
            match future.poll(&mut cx) {
                Poll::Ready(Ok(response)) => drop(black_box(response)),
                _ => panic!("the inner service answers at once"),
            }
        }
    };
    // Warm up past the point where a long-lived instance takes its own copy
    // of the header value (a one-time pair of allocations).
    run(200);
    (0..5)
        .map(|_| {
            let before = dhat::HeapStats::get().total_blocks;
            run(N);
            dhat::HeapStats::get().total_blocks - before
        })
        .min()
        .map_or(f64::NAN, |blocks| blocks as f64 / N as f64)
}

fn credentials() -> Credentials {
    Credentials::builder()
        .access_key(AccessKey::new("p", "key-id", "key-secret").unwrap())
        .application(ApplicationCredentials::new("app", "YXBwLXNlY3JldA==").unwrap())
        .service_plan(ServicePlan::new("plan", "api-token").unwrap())
        .basic(BasicCredentials::new("user", "password").unwrap())
        .build()
}

#[test]
fn the_cached_paths_allocate_nothing_beyond_setting_a_static_header() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let warm = |layer: &SinchAuthLayer| {
        runtime
            .block_on(layer.layer(inner()).oneshot(request()))
            .unwrap();
    };
    let oauth2 = |resend: bool| {
        SinchAuthLayer::builder(StaticCredentials::new(credentials()))
            .scheme(Scheme::OAuth2)
            .token_source(source_fn(|_| async {
                Ok(Token::new("cached-token", Duration::from_secs(3600)))
            }))
            .resend_on_expired(resend)
            .build()
            .unwrap()
    };

    let floor = per_request(&mut AddAuthorizationLayer::bearer("api-token").layer(inner()));
    let none = per_request(&mut inner());
    println!("no middleware: {none} allocations per request; tower-http static header: {floor}");

    let mut cases: Vec<(&str, SinchAuthLayer)> = vec![
        (
            "static bearer",
            SinchAuthLayer::new(
                StaticCredentials::new(credentials()),
                Scheme::ServicePlanBearer,
            )
            .unwrap(),
        ),
        (
            "basic",
            SinchAuthLayer::new(StaticCredentials::new(credentials()), Scheme::Basic).unwrap(),
        ),
        (
            "rotating provider",
            SinchAuthLayer::new(
                RotatingCredentials::new(credentials()),
                Scheme::ServicePlanBearer,
            )
            .unwrap(),
        ),
        ("oauth2 cached, resend off", oauth2(false)),
        (
            "self-signed jwt cached, resend off",
            SinchAuthLayer::builder(StaticCredentials::new(credentials()))
                .scheme(Scheme::SelfSignedJwt)
                .resend_on_expired(false)
                .build()
                .unwrap(),
        ),
    ];
    for (name, layer) in &mut cases {
        warm(layer);
        let ours = per_request(&mut layer.layer(inner()));
        println!("{name}: {ours} allocations per request");
        assert_eq!(ours, floor, "{name} allocates beyond the floor");
    }

    // With the 401-`expired` resend on (the default for token schemes), the
    // layer keeps a copy of the request head for the one resend: its headers
    // go in one flat list, so a request without headers of its own costs
    // nothing more, and one with headers one allocation.
    let layer = oauth2(true);
    warm(&layer);
    let ours = per_request(&mut layer.layer(inner()));
    println!("oauth2 cached, resend on: {ours} allocations per request");
    assert_eq!(ours, floor);
}
