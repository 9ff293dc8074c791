//! `PollingCredentials`: a user-supplied fetch (standing in for a secret
//! manager's SDK call) that rotates, fails and hangs, on tokio's paused clock;
//! and a real OAuth2 round trip against the test kit after a rotation.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{get, send};
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::RefreshConfig;
use sinch_auth::{
    AccessKey, BoxError, CredentialProvider, PollingCredentials, ReloadError, Scheme,
    SinchAuthLayer,
};
use tokio::time::Instant;
use tower::ServiceBuilder;

/// What the stand-in secret manager answers next.
#[derive(Clone, Copy)]
enum Answer {
    Key(&'static str),
    Fail,
    Hang,
    /// Panics in the future the fetch returns.
    Panic,
    /// Panics in the call itself, before there is a future.
    PanicInCall,
}

#[derive(Clone)]
struct SecretManager {
    answer: Arc<Mutex<Answer>>,
    calls: Arc<AtomicUsize>,
}

impl SecretManager {
    fn new(answer: Answer) -> Self {
        Self {
            answer: Arc::new(Mutex::new(answer)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn builder(&self) -> sinch_auth::PollingCredentialsBuilder {
        let this = self.clone();
        PollingCredentials::builder(move || {
            let answer = *this.answer.lock().unwrap();
            this.calls.fetch_add(1, Ordering::SeqCst);
            if let Answer::PanicInCall = answer {
                panic!("PANIC-PAYLOAD-IN-CALL");
            }
            async move {
                match answer {
                    Answer::Key(id) => Ok(AccessKey::new("proj", id, format!("VAULT-{id}"))?),
                    Answer::Fail => Err(BoxError::from("secret manager said 503")),
                    Answer::Hang => std::future::pending().await,
                    Answer::Panic => panic!("PANIC-PAYLOAD-IN-FUTURE"),
                    Answer::PanicInCall => unreachable!(),
                }
            }
        })
    }
}

fn key_id(provider: &PollingCredentials) -> String {
    provider
        .credentials()
        .access_key()
        .unwrap()
        .key_id()
        .to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_rotated_secret_is_published_within_one_interval_and_an_unchanged_one_is_not() {
    let vault = SecretManager::new(Answer::Key("key-1"));
    let interval = Duration::from_secs(300);
    let provider = vault.builder().interval(interval).start().await.unwrap();
    assert_eq!(key_id(&provider), "key-1");
    let first = provider.current_id();
    let mut changes = provider.changes().unwrap();

    // Same secret at the next poll: same bundle, no token refetch triggered.
    tokio::time::sleep(interval + Duration::from_secs(1)).await;
    assert_eq!(vault.calls(), 2);
    assert_eq!(provider.current_id(), first);
    assert!(!changes.has_changed().unwrap());

    vault.set(Answer::Key("key-2"));
    let started = Instant::now();
    tokio::time::timeout(interval * 2, changes.changed())
        .await
        .expect("published within one interval")
        .unwrap();
    assert!(started.elapsed() <= interval, "{:?}", started.elapsed());
    assert_eq!(key_id(&provider), "key-2");
    assert_eq!(*changes.borrow_and_update(), provider.current_id());
}

#[tokio::test(start_paused = true)]
async fn a_failing_fetch_keeps_the_last_good_credentials_and_reports_why() {
    let vault = SecretManager::new(Answer::Key("key-1"));
    let interval = Duration::from_secs(60);
    let provider = vault.builder().interval(interval).start().await.unwrap();
    let good = provider.current_id();

    vault.set(Answer::Fail);
    tokio::time::sleep(interval * 3 + Duration::from_secs(1)).await;
    assert_eq!(vault.calls(), 4);
    assert_eq!(provider.current_id(), good);
    let error = provider.last_error().expect("the failure is observable");
    assert!(matches!(*error, ReloadError::Fetch(_)), "{error:?}");
    assert!(error.to_string().contains("503"), "{error}");

    let err = provider.refresh_now().await.unwrap_err();
    assert!(matches!(err, ReloadError::Fetch(_)));

    vault.set(Answer::Key("key-2"));
    assert!(provider.refresh_now().await.unwrap());
    assert_eq!(key_id(&provider), "key-2");
    assert!(provider.last_error().is_none());
    assert!(!provider.refresh_now().await.unwrap(), "unchanged");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_fetch_times_out_and_polling_goes_on() {
    let vault = SecretManager::new(Answer::Key("key-1"));
    let interval = Duration::from_secs(60);
    let timeout = Duration::from_secs(5);
    let provider = vault
        .builder()
        .interval(interval)
        .timeout(timeout)
        .start()
        .await
        .unwrap();
    let good = provider.current_id();

    vault.set(Answer::Hang);
    let started = Instant::now();
    let err = provider.refresh_now().await.unwrap_err();
    assert!(
        matches!(err, ReloadError::Timeout(t) if t == timeout),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), timeout);
    assert_eq!(provider.current_id(), good);
    assert!(matches!(
        provider.last_error().as_deref(),
        Some(ReloadError::Timeout(_))
    ));

    // The background fetch hangs too, gives up, and the next one succeeds.
    let mut changes = provider.changes().unwrap();
    tokio::time::sleep(interval + timeout).await;
    vault.set(Answer::Key("key-2"));
    tokio::time::timeout(interval * 2, changes.changed())
        .await
        .expect("the next fetch succeeded")
        .unwrap();
    assert_eq!(key_id(&provider), "key-2");
    assert!(provider.last_error().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_rejections_costs_one_early_fetch_per_cooldown() {
    let vault = SecretManager::new(Answer::Key("key-1"));
    let cooldown = Duration::from_secs(10);
    let provider = vault
        .builder()
        .interval(Duration::from_secs(3600))
        .cooldown(cooldown)
        .start()
        .await
        .unwrap();
    let stale = provider.current_id();
    vault.set(Answer::Key("key-2"));
    let mut changes = provider.changes().unwrap();
    let started = Instant::now();
    for _ in 0..100 {
        provider.credentials_rejected(stale);
    }
    tokio::time::timeout(cooldown * 2, changes.changed())
        .await
        .expect("one early fetch")
        .unwrap();
    // The first hint waits out the cooldown since the initial fetch.
    assert_eq!(started.elapsed(), cooldown);
    assert_eq!(vault.calls(), 2);
    assert_eq!(key_id(&provider), "key-2");

    // A late 401 for the credentials already replaced asks for nothing.
    provider.credentials_rejected(stale);
    tokio::time::sleep(cooldown * 3).await;
    assert_eq!(vault.calls(), 2);

    // For the current ones, one more fetch, however many hints.
    provider.refresh_soon();
    provider.refresh_soon();
    tokio::time::sleep(cooldown * 3).await;
    assert_eq!(vault.calls(), 3);
}

/// A fetch that panics is a failed fetch: recorded, logged once, and the
/// poller goes on polling and answering hints. The panic's message is kept
/// out of the error and the logs.
#[tokio::test(start_paused = true)]
async fn a_panicking_fetch_is_recorded_and_polling_goes_on() {
    let (logs, _guard) = common::LogBuffer::capture();
    let vault = SecretManager::new(Answer::Key("key-1"));
    let interval = Duration::from_millis(50);
    let provider = vault
        .builder()
        .interval(interval)
        .cooldown(interval)
        .start()
        .await
        .unwrap();
    let good = provider.current_id();

    for panic in [Answer::Panic, Answer::PanicInCall] {
        vault.set(panic);
        let before = vault.calls();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(
            vault.calls() >= before + 20,
            "{} fetches",
            vault.calls() - before
        );
        let error = provider.last_error().expect("the panic is recorded");
        assert!(matches!(*error, ReloadError::FetchPanicked), "{error:?}");
        assert_eq!(provider.current_id(), good);
        let err = provider.refresh_now().await.unwrap_err();
        assert!(matches!(err, ReloadError::FetchPanicked), "{err:?}");
    }
    let shown = format!(
        "{provider:?} {} {}",
        provider.last_error().unwrap(),
        logs.text()
    );
    assert!(!shown.contains("PANIC-PAYLOAD"), "{shown}");
    assert_eq!(
        logs.text().matches("reloading credentials failed").count(),
        1,
        "one warning while the panics last: {}",
        logs.text()
    );

    // A hint after the panics still wakes the poller.
    let provider = vault
        .builder()
        .interval(Duration::from_secs(3600))
        .cooldown(interval)
        .start()
        .await;
    assert!(matches!(provider, Err(ReloadError::FetchPanicked)));
    vault.set(Answer::Key("key-1"));
    let provider = vault
        .builder()
        .interval(Duration::from_secs(3600))
        .cooldown(interval)
        .start()
        .await
        .unwrap();
    vault.set(Answer::Panic);
    provider.refresh_soon();
    tokio::time::sleep(interval * 2).await;
    assert!(matches!(
        provider.last_error().as_deref(),
        Some(ReloadError::FetchPanicked)
    ));
    vault.set(Answer::Key("key-2"));
    let mut changes = provider.changes().unwrap();
    provider.refresh_soon();
    tokio::time::timeout(interval * 10, changes.changed())
        .await
        .expect("the hint was served after a panic")
        .unwrap();
    assert_eq!(key_id(&provider), "key-2");
    assert!(provider.last_error().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_fetch_that_panics_at_start_is_an_error_not_a_panic() {
    for panic in [Answer::Panic, Answer::PanicInCall] {
        let vault = SecretManager::new(panic);
        let err = vault.builder().start().await.unwrap_err();
        assert!(matches!(err, ReloadError::FetchPanicked), "{err:?}");
        assert_eq!(err.to_string(), "credentials fetch panicked");
    }
}

/// Settings at the edge of their type: deadlines saturate rather than
/// overflow an `Instant` (which would kill the poller), and a hint never
/// waits longer than the regular poll.
#[tokio::test(start_paused = true)]
async fn a_huge_interval_or_cooldown_does_not_stop_the_poller() {
    let vault = SecretManager::new(Answer::Key("key-1"));
    let cooldown = Duration::from_secs(1);
    let provider = vault
        .builder()
        .interval(Duration::MAX)
        .cooldown(cooldown)
        .timeout(Duration::MAX)
        .start()
        .await
        .unwrap();
    tokio::time::sleep(cooldown).await;
    vault.set(Answer::Key("key-2"));
    provider.refresh_soon();
    tokio::time::sleep(cooldown * 2).await;
    assert_eq!(vault.calls(), 2);
    assert_eq!(key_id(&provider), "key-2");

    let vault = SecretManager::new(Answer::Key("key-1"));
    let interval = Duration::from_secs(60);
    let provider = vault
        .builder()
        .interval(interval)
        .cooldown(Duration::MAX)
        .start()
        .await
        .unwrap();
    provider.refresh_soon();
    tokio::time::sleep(interval + Duration::from_secs(1)).await;
    assert_eq!(vault.calls(), 2, "the regular poll ran despite the hint");
    tokio::time::sleep(interval).await;
    assert_eq!(vault.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_first_fetch_must_succeed() {
    let vault = SecretManager::new(Answer::Fail);
    assert!(matches!(
        vault.builder().start().await.unwrap_err(),
        ReloadError::Fetch(_)
    ));
    vault.set(Answer::Hang);
    assert!(matches!(
        vault
            .builder()
            .timeout(Duration::from_secs(1))
            .start()
            .await
            .unwrap_err(),
        ReloadError::Timeout(_)
    ));
}

#[tokio::test]
async fn a_rotation_in_the_secret_manager_reaches_the_next_request() {
    let key1 = AccessKey::new("proj", "key-1", "VAULT-key-1").unwrap();
    let key2 = AccessKey::new("proj", "key-2", "VAULT-key-2").unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&key1)
        .access_key(&key2)
        .start()
        .await
        .unwrap();
    let vault = SecretManager::new(Answer::Key("key-1"));
    let provider = vault.builder().start().await.unwrap();
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(RefreshConfig::default().hard_cutover(true))
        .build()
        .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let url = format!("{}/v1/numbers", sinch.url());
    let (_, body) = send(&client, get(&url)).await;
    assert!(body.contains("oauth2:key-1"), "{body}");

    vault.set(Answer::Key("key-2"));
    assert!(provider.refresh_now().await.unwrap());
    let (_, body) = send(&client, get(&url)).await;
    assert!(body.contains("oauth2:key-2"), "{body}");
    assert_eq!(sinch.token_requests(), 2);
    assert!(!format!("{provider:?}").contains("VAULT-"));
}

#[tokio::test]
async fn a_key_refused_by_the_token_endpoint_makes_the_provider_look_again_at_once() {
    // The secret manager already holds key-2, but this process started
    // with key-1, which Sinch no longer accepts; the poll interval is long.
    let key2 = AccessKey::new("proj", "key-2", "VAULT-key-2").unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&key2)
        .start()
        .await
        .unwrap();
    let vault = SecretManager::new(Answer::Key("key-1"));
    let provider = vault
        .builder()
        .interval(Duration::from_secs(3600))
        .cooldown(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    vault.set(Answer::Key("key-2"));
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .build()
        .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let url = format!("{}/v1/numbers", sinch.url());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let answer = tower::ServiceExt::oneshot(client.clone(), get(&url)).await;
        if let Ok(response) = answer {
            if response.status().is_success() {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the provider never looked again after the endpoint refused key-1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(vault.calls(), 2, "one start, one look after the 401");
    assert_eq!(
        provider.credentials().access_key().unwrap().key_id(),
        "key-2"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Every `Duration` setting of the poller at any value: starting, a hint,
    /// polling for a while and a fetch asked for now never panic; what fails
    /// fails typed (a zero interval is a configuration error).
    #[test]
    fn polling_settings_at_any_value_never_panic(
        interval in common::any_duration(),
        timeout in common::any_duration(),
        cooldown in common::any_duration(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = runtime.block_on(async {
            let manager = SecretManager::new(Answer::Key("key-1"));
            let started = manager
                .builder()
                .interval(interval)
                .timeout(timeout)
                .cooldown(cooldown)
                .start()
                .await;
            let credentials = match started {
                Ok(credentials) => credentials,
                Err(ReloadError::Config(_)) => return Ok(()),
                Err(other) => return Err(format!("start: {other}")),
            };
            credentials.refresh_soon();
            tokio::time::sleep(Duration::from_millis(5)).await;
            manager.set(Answer::Key("key-2"));
            match credentials.refresh_now().await {
                Ok(_) | Err(ReloadError::Timeout(_)) => {}
                Err(other) => return Err(format!("refresh_now: {other}")),
            }
            Ok(())
        });
        proptest::prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}
