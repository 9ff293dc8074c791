//! Credential rotation through `RotatingCredentials`, seen by every clone of
//! the service on the very next request, never mixing old and new.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{get, send};
use http::header::AUTHORIZATION;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::RefreshConfig;
use sinch_auth::{AccessKey, RotatingCredentials, Scheme, ServicePlan, SinchAuthLayer};
use tower::{ServiceBuilder, ServiceExt as _};

fn basic(id: &str, token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{token}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_requests_across_a_rotation_never_mix_and_switch_at_once() {
    let old = ServicePlan::new("plan-old", "TOKEN-OLD-r1").unwrap();
    let new = ServicePlan::new("plan-new", "TOKEN-NEW-r2").unwrap();
    let sinch = SinchStandIn::builder()
        .service_plan(&old)
        .service_plan(&new)
        .start()
        .await
        .unwrap();
    let provider = RotatingCredentials::new(old);
    let layer = SinchAuthLayer::new(provider.clone(), Scheme::ServicePlanBasic).unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let rotated = Arc::new(AtomicBool::new(false));
    let old_header = basic("plan-old", "TOKEN-OLD-r1");
    let new_header = basic("plan-new", "TOKEN-NEW-r2");

    let mut tasks = Vec::new();
    for task in 0..4 {
        // Each task gets its own clone of the service.
        let client = client.clone();
        let rotated = rotated.clone();
        let url = format!("{}/xms/v1/batches/{task}", sinch.url());
        tasks.push(tokio::spawn(async move {
            let mut after_rotation = Vec::new();
            for i in 0..250 {
                let was_rotated = rotated.load(Ordering::SeqCst);
                let mut request = get(&url);
                request
                    .headers_mut()
                    .insert("x-seq", format!("{task}-{i}").parse().unwrap());
                let (status, body) = send(&client, request).await;
                assert_eq!(status, 200, "{body}");
                if was_rotated {
                    after_rotation.push(format!("{task}-{i}"));
                }
            }
            after_rotation
        }));
    }
    while sinch.api_requests() < 500 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    provider.rotate(new);
    rotated.store(true, Ordering::SeqCst);

    let mut must_be_new = std::collections::HashSet::new();
    for task in tasks {
        must_be_new.extend(task.await.unwrap());
    }
    let requests = sinch.requests();
    assert_eq!(requests.len(), 1000);
    let (mut olds, mut news) = (0, 0);
    for request in &requests {
        let header = request.headers[AUTHORIZATION].to_str().unwrap();
        let seq = request.headers["x-seq"].to_str().unwrap();
        if header == old_header {
            olds += 1;
            assert!(
                !must_be_new.contains(seq),
                "request {seq} started after rotate() returned but carried the old credentials"
            );
        } else {
            assert_eq!(header, new_header, "a request carried mixed credentials");
            news += 1;
        }
    }
    assert!(olds >= 500 && news > 0, "old {olds}, new {news}");
    assert!(!must_be_new.is_empty());
}

async fn oauth2_rotation(hard_cutover: bool) {
    let key1 = AccessKey::new("proj", "key-1", "SECRET-ONE-r3").unwrap();
    let key2 = AccessKey::new("proj", "key-2", "SECRET-TWO-r4").unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&key1)
        .access_key(&key2)
        .start()
        .await
        .unwrap();
    let provider = RotatingCredentials::new(key1);
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(RefreshConfig::default().hard_cutover(hard_cutover))
        .build()
        .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let url = format!("{}/v1/numbers", sinch.url());
    let (_, body) = send(&client, get(&url)).await;
    assert!(body.contains("oauth2:key-1"), "{body}");
    assert_eq!(sinch.token_requests(), 1);

    sinch.delay_tokens(Duration::from_millis(400));
    provider.rotate(key2);
    let started = Instant::now();
    let (_, body) = send(&client, get(&url)).await;
    let took = started.elapsed();
    if hard_cutover {
        assert!(body.contains("oauth2:key-2"), "{body}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
    } else {
        // The old token keeps flowing while the new one is fetched.
        assert!(body.contains("oauth2:key-1"), "{body}");
        assert!(took < Duration::from_millis(200), "{took:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (_, body) = send(&client, get(&url)).await;
            if body.contains("oauth2:key-2") {
                break;
            }
            assert!(Instant::now() < deadline, "new token never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(sinch.token_requests(), 2);
}

#[tokio::test]
async fn oauth2_rotation_refetches_at_once_and_keeps_the_old_token_flowing_meanwhile() {
    oauth2_rotation(false).await;
}

#[tokio::test]
async fn oauth2_hard_cutover_makes_requests_wait_for_the_new_token() {
    oauth2_rotation(true).await;
}

#[tokio::test]
async fn a_rotation_is_noticed_by_the_refresher_without_any_request() {
    let key1 = AccessKey::new("proj", "key-1", "SECRET-ONE-r5").unwrap();
    let key2 = AccessKey::new("proj", "key-2", "SECRET-TWO-r6").unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&key1)
        .access_key(&key2)
        .start()
        .await
        .unwrap();
    let provider = RotatingCredentials::new(key1);
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()
        .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    send(&client, get(format!("{}/v1/x", sinch.url()))).await;
    provider.rotate(key2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sinch.tokens_issued() < 2 {
        assert!(Instant::now() < deadline, "no refetch after rotation");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, body) = send(&client, get(format!("{}/v1/x", sinch.url()))).await;
    assert!(body.contains("oauth2:key-2"), "{body}");
}

/// A provider that cannot push changes (no `changes()`), like the trait's
/// own example: a rotation is seen only when a request asks for credentials.
#[derive(Clone)]
struct Unannounced(Arc<std::sync::Mutex<Arc<sinch_auth::Credentials>>>);

impl sinch_auth::CredentialProvider for Unannounced {
    fn credentials(&self) -> Arc<sinch_auth::Credentials> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_rotation_the_provider_cannot_announce_is_refetched_on_the_next_request() {
    use sinch_auth::token::{FetchRequest, Token, source_fn};
    let key = |id: &str| {
        Arc::new(sinch_auth::Credentials::from(
            AccessKey::new("proj", id, "KEY-SECRET-unannounced").unwrap(),
        ))
    };
    let provider = Unannounced(Arc::new(std::sync::Mutex::new(key("key-1"))));
    let fetched = Arc::new(std::sync::Mutex::new(Vec::new()));
    let source = source_fn({
        let fetched = fetched.clone();
        move |request: FetchRequest| {
            let id = request
                .credentials()
                .access_key()
                .unwrap()
                .key_id()
                .to_owned();
            fetched.lock().unwrap().push(id.clone());
            async move { Ok(Token::new(format!("tok-{id}"), Duration::from_secs(3600))) }
        }
    });
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let capture = common::Capture::default();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(capture.service());
    let url = "https://numbers.api.sinch.com/v1/projects/proj/activeNumbers";
    assert_eq!(
        service.clone().oneshot(get(url)).await.unwrap().status(),
        http::StatusCode::OK
    );
    *provider.0.lock().unwrap() = key("key-2");
    // This request sees the change (and may still carry the old token) ...
    assert_eq!(
        service.clone().oneshot(get(url)).await.unwrap().status(),
        http::StatusCode::OK
    );
    // ... and asks for a token of the new key at once, not at the old
    // token's refresh point an hour away.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        service.clone().oneshot(get(url)).await.unwrap().status(),
        http::StatusCode::OK
    );
    assert_eq!(*fetched.lock().unwrap(), ["key-1", "key-2"]);
    assert_eq!(capture.last().headers[AUTHORIZATION], "Bearer tok-key-2");
}
