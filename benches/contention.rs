//! Throughput of one shared layer hammered by 1, 2 and 8 tasks on a
//! multi-thread runtime, with and without a credential rotation every 10 ms,
//! next to tower-http's static header in the same run.
//!
//! `cargo bench --bench contention` (each cell runs `SINCH_AUTH_BENCH_SECS`
//! seconds, default 2). Prints a table; the figures in the README come from it.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use sinch_auth::token::{Token, source_fn};
use sinch_auth::{
    AccessKey, Credentials, RotatingCredentials, Scheme, ServicePlan, SinchAuthLayer,
};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;

type Inner = tower::util::ServiceFn<
    fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<()>, Infallible>>,
>;

fn inner() -> Inner {
    fn answer(r: Request<Full<Bytes>>) -> std::future::Ready<Result<Response<()>, Infallible>> {
        black_box(&r);
        std::future::ready(Ok(Response::new(())))
    }
    tower::service_fn(answer as fn(_) -> _)
}

fn request() -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static("https://numbers.api.sinch.com/v1/projects/p/x");
    request
}

fn once<S: Service<Request<Full<Bytes>>>>(service: &mut S, cx: &mut Context<'_>)
where
    S::Error: std::fmt::Debug,
{
    assert!(service.poll_ready(cx).is_ready());
    match pin!(service.call(request())).poll(cx) {
        Poll::Ready(Ok(response)) => drop(black_box(response)),
        _ => panic!("the inner service answers at once"),
    }
}

fn credentials(n: u32) -> Credentials {
    Credentials::builder()
        .access_key(AccessKey::new("p", format!("key-{n}"), "key-secret").unwrap())
        .service_plan(ServicePlan::new("plan", format!("api-token-{n}")).unwrap())
        .build()
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Floor,
    StaticBearer,
    OAuth2,
    OAuth2Resend,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Floor => "tower-http static header",
            Self::StaticBearer => "service-plan bearer",
            Self::OAuth2 => "oauth2 cached (resend off)",
            Self::OAuth2Resend => "oauth2 cached (resend on)",
        }
    }
}

/// Total requests per second for `tasks` tasks over `secs`.
fn run(variant: Variant, tasks: usize, rotate: bool, secs: f64) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let provider = RotatingCredentials::new(credentials(0));
        let layer = match variant {
            Variant::Floor => None,
            Variant::StaticBearer => {
                Some(SinchAuthLayer::new(provider.clone(), Scheme::ServicePlanBearer).unwrap())
            }
            Variant::OAuth2 | Variant::OAuth2Resend => Some(
                SinchAuthLayer::builder(provider.clone())
                    .scheme(Scheme::OAuth2)
                    .token_source(source_fn(|request| async move {
                        let key = request
                            .credentials()
                            .access_key()
                            .unwrap()
                            .key_id()
                            .to_owned();
                        Ok(Token::new(
                            format!("token-for-{key}"),
                            Duration::from_secs(3600),
                        ))
                    }))
                    .resend_on_expired(variant == Variant::OAuth2Resend)
                    .build()
                    .unwrap(),
            ),
        };
        if let Some(layer) = &layer {
            layer.layer(inner()).oneshot(request()).await.unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let rotations = Arc::new(AtomicU64::new(0));
        let rotator = rotate.then(|| {
            let (stop, provider, rotations) = (stop.clone(), provider.clone(), rotations.clone());
            tokio::spawn(async move {
                let mut n = 1;
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    provider.rotate(credentials(n % 2));
                    rotations.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        });
        // One layer shared by every task, like ours: its header value (and
        // the reference count behind it) is shared too.
        let floor_layer = AddAuthorizationLayer::bearer("api-token-0");
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (stop, total, layer) = (stop.clone(), total.clone(), layer.clone());
            let mut floor = floor_layer.clone().layer(inner());
            handles.push(tokio::spawn(async move {
                let mut count = 0u64;
                let mut ours = layer.map(|l| l.layer(inner()));
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut cx = Context::from_waker(Waker::noop());
                        for _ in 0..256 {
                            match &mut ours {
                                Some(service) => once(service, &mut cx),
                                None => once(&mut floor, &mut cx),
                            }
                        }
                    }
                    count += 256;
                    tokio::task::yield_now().await;
                }
                total.fetch_add(count, Ordering::Relaxed);
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            handle.await.unwrap();
        }
        if let Some(rotator) = rotator {
            rotator.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        total.load(Ordering::Relaxed) as f64 / elapsed
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: run short.
    let secs: f64 = std::env::var("SINCH_AUTH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    println!(
        "{:<28} {:>5} {:>8} {:>14} {:>14} {:>10}",
        "variant", "tasks", "rotation", "total req/s", "per task", "vs 1 task"
    );
    for variant in [
        Variant::Floor,
        Variant::StaticBearer,
        Variant::OAuth2,
        Variant::OAuth2Resend,
    ] {
        for rotate in [false, true] {
            if rotate && variant == Variant::Floor {
                continue;
            }
            let mut single = None;
            for tasks in [1usize, 2, 8] {
                let rate = run(variant, tasks, rotate, secs);
                let base = *single.get_or_insert(rate);
                println!(
                    "{:<28} {:>5} {:>8} {:>14.0} {:>14.0} {:>9.2}x",
                    variant.name(),
                    tasks,
                    if rotate { "10 ms" } else { "off" },
                    rate,
                    rate / tasks as f64,
                    rate / base
                );
            }
        }
    }
}
