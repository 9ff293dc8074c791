use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use super::reload::{CatchPanic, Panicked, Poller, Publisher, ReloadError};
use super::{CredentialProvider, Credentials, CredentialsId};
use crate::error::BoxError;
use crate::verify::Rotation;

type FetchFuture = Pin<Box<dyn Future<Output = Result<Arc<Credentials>, BoxError>> + Send>>;
type Fetch = Box<dyn Fn() -> FetchFuture + Send + Sync>;

/// Credentials fetched from a secret manager by your own async call, and
/// fetched again in the background: rotation in AWS Secrets Manager, Google
/// Secret Manager, Azure Key Vault or Vault reaches the process without a
/// restart.
///
/// The fetch runs every [`interval`](PollingCredentialsBuilder::interval)
/// (default 5 min), under a [`timeout`](PollingCredentialsBuilder::timeout)
/// (default 10 s, so a hanging call never stalls the poller). New content is
/// published at once (the next request uses it, derived tokens are
/// refetched); the same content again changes nothing. A failed or timed-out
/// fetch keeps the last good credentials and is kept in
/// [`last_error`](Self::last_error) (your fetch's error as it returned it, so
/// keep secrets out of it). A fetch that panics counts as failed too
/// ([`ReloadError::FetchPanicked`]) and the polling goes on. Only the first
/// fetch, in [`start`](PollingCredentialsBuilder::start), must succeed.
///
/// After a 401 that a rotation could explain, call
/// [`credentials_rejected`](CredentialProvider::credentials_rejected) (or
/// [`refresh_soon`](Self::refresh_soon)): the poller fetches again without
/// waiting for the interval, at most once per
/// [`cooldown`](PollingCredentialsBuilder::cooldown) however many requests
/// failed. [`refresh_now`](Self::refresh_now) fetches and waits for the answer.
///
/// # A worked example: AWS Secrets Manager
///
/// A secret holding JSON with the variable names of [`EnvCredentials`](crate::EnvCredentials),
/// for example `{"SINCH_PROJECT_ID": "…", "SINCH_KEY_ID": "…", "SINCH_KEY_SECRET": "…"}`,
/// read with `aws-sdk-secretsmanager` (your dependency, not this crate's):
///
/// ```ignore
/// use std::collections::HashMap;
/// use std::time::Duration;
/// use sinch_auth::{BoxError, EnvCredentials, PollingCredentials, SinchAuthLayer};
///
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let client = aws_sdk_secretsmanager::Client::new(&config);
/// let provider = PollingCredentials::builder(move || {
///     let client = client.clone();
///     async move {
///         let secret = client.get_secret_value().secret_id("prod/sinch").send().await?;
///         let fields: HashMap<String, String> =
///             serde_json::from_str(secret.secret_string().unwrap_or_default())?;
///         // The same checks and groups as the environment; errors name the field.
///         let env = EnvCredentials::from_lookup(|name| fields.get(name).map(Into::into))?;
///         Ok::<_, BoxError>(env.credentials())
///     }
/// })
/// .interval(Duration::from_secs(300))
/// .start()
/// .await?;
/// let layer = SinchAuthLayer::by_host(provider)?;
/// ```
///
/// The same shape works with any SDK: clone its client into the closure and
/// return the credentials (or anything [`RotatingCredentials::new`](crate::RotatingCredentials::new)
/// takes). Here with a closure standing in for the secret manager:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sinch_auth::ReloadError> {
/// use sinch_auth::{BoxError, CredentialProvider, PollingCredentials, ServicePlan};
///
/// let provider = PollingCredentials::builder(|| async {
///     Ok::<_, BoxError>(ServicePlan::new("plan", "token-from-the-vault")?)
/// })
/// .start()
/// .await?;
/// assert_eq!(provider.credentials().service_plan().unwrap().id(), "plan");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PollingCredentials {
    shared: Arc<Shared>,
    poller: Arc<Poller>,
}

struct Shared {
    fetch: Fetch,
    timeout: Duration,
    publisher: Publisher,
    // One fetch at a time: the poller's and `refresh_now`'s.
    in_flight: Mutex<()>,
}

/// Configures a [`PollingCredentials`]; [`start`](Self::start) fetches once
/// and starts the poller.
#[must_use]
pub struct PollingCredentialsBuilder {
    fetch: Fetch,
    interval: Duration,
    timeout: Duration,
    cooldown: Duration,
}

impl PollingCredentials {
    /// Polls `fetch`, your call to a secret manager.
    pub fn builder<F, Fut, C, E>(fetch: F) -> PollingCredentialsBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C, E>> + Send + 'static,
        C: Into<Arc<Credentials>>,
        E: Into<BoxError>,
    {
        let fetch: Fetch = Box::new(move || {
            let future = fetch();
            Box::pin(async move { future.await.map(Into::into).map_err(Into::into) })
        });
        PollingCredentialsBuilder {
            fetch,
            interval: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            cooldown: Duration::from_secs(10),
        }
    }

    /// Fetches now and waits for the answer: `Ok(true)` when new credentials
    /// were published, `Ok(false)` when the secret had not changed. On error
    /// the last good credentials stay in use.
    pub async fn refresh_now(&self) -> Result<bool, ReloadError> {
        self.shared.refresh().await
    }

    /// Asks the poller to fetch soon, without waiting (for a 401 that a
    /// rotation could explain). Coalesced and limited by the cooldown.
    pub fn refresh_soon(&self) {
        self.poller.wake();
    }

    /// Why the last fetch failed, until one succeeds again.
    pub fn last_error(&self) -> Option<Arc<ReloadError>> {
        self.shared.publisher.last_error()
    }
}

impl PollingCredentialsBuilder {
    /// How often to fetch (default 5 min).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long one fetch may take before it counts as failed (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The least time between two fetches asked for by
    /// [`refresh_soon`](PollingCredentials::refresh_soon) or
    /// [`credentials_rejected`](CredentialProvider::credentials_rejected)
    /// (default 10 s): a burst of 401s costs one fetch.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Fetches the credentials (an error if that first fetch fails or times
    /// out) and starts polling on the current tokio runtime.
    pub async fn start(self) -> Result<PollingCredentials, ReloadError> {
        let initial = fetch_once(&self.fetch, self.timeout).await?;
        let shared = Arc::new(Shared {
            fetch: self.fetch,
            timeout: self.timeout,
            publisher: Publisher::new(initial, "polling credentials"),
            in_flight: Mutex::new(()),
        });
        let task = shared.clone();
        let poller = Poller::spawn(self.interval, self.cooldown, move || {
            let task = task.clone();
            async move {
                // The outcome is recorded in `last_error`.
                let _ = task.refresh().await;
            }
        })?;
        Ok(PollingCredentials {
            shared,
            poller: Arc::new(poller),
        })
    }
}

/// One call of the user's fetch, under the timeout. A panic in it (in the
/// call or in the future) is [`ReloadError::FetchPanicked`], not the
/// caller's panic: the poller outlives a bad fetch.
async fn fetch_once(fetch: &Fetch, timeout: Duration) -> Result<Arc<Credentials>, ReloadError> {
    let future = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(fetch)) {
        Ok(future) => future,
        Err(payload) => {
            let Panicked = payload.into();
            return Err(ReloadError::FetchPanicked);
        }
    };
    match tokio::time::timeout(timeout, CatchPanic(future)).await {
        Ok(Ok(Ok(credentials))) => Ok(credentials),
        Ok(Ok(Err(error))) => Err(ReloadError::Fetch(Arc::from(error))),
        Ok(Err(Panicked)) => Err(ReloadError::FetchPanicked),
        Err(_) => Err(ReloadError::Timeout(timeout)),
    }
}

impl Shared {
    async fn refresh(&self) -> Result<bool, ReloadError> {
        let _one_at_a_time = self.in_flight.lock().await;
        match fetch_once(&self.fetch, self.timeout).await {
            Ok(credentials) => Ok(self.publisher.offer(credentials)),
            Err(error) => Err(self.publisher.fail(error)),
        }
    }
}

impl CredentialProvider for PollingCredentials {
    fn credentials(&self) -> Arc<Credentials> {
        self.shared.publisher.rotating().credentials()
    }

    fn current_id(&self) -> CredentialsId {
        self.shared.publisher.rotating().current_id()
    }

    fn changes(&self) -> Option<watch::Receiver<CredentialsId>> {
        self.shared.publisher.rotating().changes()
    }

    fn last_rotation(&self) -> Option<Rotation<Credentials>> {
        self.shared.publisher.rotating().last_rotation()
    }

    fn credentials_rejected(&self, id: CredentialsId) {
        // A 401 for credentials already replaced says nothing new.
        if id == self.current_id() {
            self.poller.wake();
        }
    }
}

impl fmt::Debug for PollingCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollingCredentials")
            .field("credentials", &self.credentials())
            .field("timeout", &self.shared.timeout)
            .field("last_error", &self.last_error())
            .finish()
    }
}

impl fmt::Debug for PollingCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollingCredentialsBuilder")
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
}
