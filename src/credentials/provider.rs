use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;

use super::{Credentials, CredentialsId};
use crate::clock::monotonic_now;
use crate::verify::Rotation;

/// Hands out the current [`Credentials`].
///
/// Called on the request path, so it must be cheap, synchronous and must not
/// block: return an `Arc` you already hold. [`current_id`](Self::current_id)
/// is how the layer notices a change: it is compared with the id of the
/// credentials a cached header or token was derived from.
///
/// # Implementing your own
///
/// A test can swap in any type; this one hands out whatever the test last put in:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use sinch_auth::{BearerToken, CredentialProvider, Credentials};
///
/// #[derive(Clone)]
/// struct TestProvider(Arc<Mutex<Arc<Credentials>>>);
///
/// impl CredentialProvider for TestProvider {
///     fn credentials(&self) -> Arc<Credentials> {
///         self.0.lock().unwrap().clone()
///     }
/// }
///
/// let first = Arc::new(Credentials::from(BearerToken::new("first")?));
/// let provider = TestProvider(Arc::new(Mutex::new(first.clone())));
/// assert_eq!(provider.current_id(), first.id());
///
/// let second = Arc::new(Credentials::from(BearerToken::new("second")?));
/// *provider.0.lock().unwrap() = second.clone();
/// assert_eq!(provider.current_id(), second.id());
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
///
/// (A `Mutex` is fine in a test; in production prefer [`RotatingCredentials`],
/// which never locks.)
pub trait CredentialProvider: Send + Sync + 'static {
    /// The current credentials.
    fn credentials(&self) -> Arc<Credentials>;

    /// The id of the current credentials. Override it when you can answer
    /// without cloning an `Arc` (it is read on every request).
    fn current_id(&self) -> CredentialsId {
        self.credentials().id()
    }

    /// A channel that announces each change, if the provider can push them.
    ///
    /// The token refresher listens to it so that a rotation triggers a refetch
    /// even before the next request. Providers that return `None` are still
    /// noticed, on the first request after the change.
    fn changes(&self) -> Option<watch::Receiver<CredentialsId>> {
        None
    }

    /// Tells the provider that Sinch refused the credentials `id`: a 401
    /// that a rotation elsewhere could explain (the secret was replaced in
    /// the secret manager or the mounted files before this process saw it).
    ///
    /// Providers that reload from somewhere ([`FileCredentials`](crate::FileCredentials),
    /// [`PollingCredentials`](crate::PollingCredentials)) reload soon, at most
    /// once per cooldown however many requests report it; the default does
    /// nothing. Call it from your own 401 handling; it never blocks.
    fn credentials_rejected(&self, id: CredentialsId) {
        let _ = id;
    }

    /// The last rotation, if the provider records it: its
    /// [`current`](Rotation::current) must be what [`credentials`](Self::credentials)
    /// returns. An [`ApplicationVerifier`](crate::verify::ApplicationVerifier)
    /// then counts the replaced application's grace period from the
    /// rotation itself; with the default, `None`, it can only count from
    /// the first verification that sees the change, which an idle verifier
    /// places late.
    fn last_rotation(&self) -> Option<Rotation<Credentials>> {
        None
    }
}

impl<P: CredentialProvider + ?Sized> CredentialProvider for Arc<P> {
    fn credentials(&self) -> Arc<Credentials> {
        (**self).credentials()
    }

    fn current_id(&self) -> CredentialsId {
        (**self).current_id()
    }

    fn changes(&self) -> Option<watch::Receiver<CredentialsId>> {
        (**self).changes()
    }

    fn credentials_rejected(&self, id: CredentialsId) {
        (**self).credentials_rejected(id)
    }

    fn last_rotation(&self) -> Option<Rotation<Credentials>> {
        (**self).last_rotation()
    }
}

/// Credentials fixed for the life of the process.
///
/// ```
/// use sinch_auth::{ServicePlan, StaticCredentials};
///
/// let provider = StaticCredentials::new(ServicePlan::new("plan-id", "api-token")?);
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct StaticCredentials(Arc<Credentials>);

impl StaticCredentials {
    /// Wraps credentials: a bundle, a bundle that is already shared (an
    /// `Arc<Credentials>`, such as another provider's snapshot), or any single
    /// credential.
    pub fn new(credentials: impl Into<Arc<Credentials>>) -> Self {
        Self(credentials.into())
    }
}

impl From<Arc<Credentials>> for StaticCredentials {
    fn from(credentials: Arc<Credentials>) -> Self {
        Self(credentials)
    }
}

impl CredentialProvider for StaticCredentials {
    fn credentials(&self) -> Arc<Credentials> {
        self.0.clone()
    }

    fn current_id(&self) -> CredentialsId {
        self.0.id()
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticCredentials").field(&self.0).finish()
    }
}

/// Credentials that can be replaced at run time, without a lock on the request path.
///
/// Clones share the same slot: [`rotate`](Self::rotate) on any clone is seen by
/// the very next request through every service built with any clone. Tokens
/// derived from the old credentials are refetched at once.
///
/// ```
/// use sinch_auth::{CredentialProvider, RotatingCredentials, ServicePlan};
///
/// let provider = RotatingCredentials::new(ServicePlan::new("plan", "old-token")?);
/// let handle = provider.clone(); // keep one to rotate with
/// let before = provider.current_id();
/// handle.rotate(ServicePlan::new("plan", "new-token")?);
/// assert_ne!(provider.current_id(), before);
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RotatingCredentials {
    inner: Arc<RotatingInner>,
}

struct RotatingInner {
    current: ArcSwap<Credentials>,
    // The id of `current`, readable with one atomic load on every request.
    // Written after `current`, so a reader that sees the new id finds the new
    // credentials; one that still sees the old id is served as before the rotation.
    id: AtomicU64,
    changes: watch::Sender<CredentialsId>,
    /// The last rotation, with the monotonic instant it happened: written
    /// before `current`, so it is never older than what a reader that
    /// sees the new id gets.
    last_rotation: ArcSwapOption<Rotation<Credentials>>,
}

impl RotatingCredentials {
    /// Replaces the credentials with a bundle you already share (the 0.1.0
    /// name of [`rotate`](Self::rotate), which takes an `Arc` as well).
    #[deprecated(
        since = "0.2.0",
        note = "use `rotate`, which takes an `Arc<Credentials>` too"
    )]
    pub fn rotate_shared(&self, new: Arc<Credentials>) {
        self.rotate(new);
    }

    /// Starts with these credentials: a bundle, a bundle that is already
    /// shared (such as [`EnvCredentials::credentials`](crate::EnvCredentials::credentials)),
    /// or any single credential.
    ///
    /// ```
    /// use sinch_auth::{EnvCredentials, RotatingCredentials};
    ///
    /// # let read_env = || EnvCredentials::from_lookup(|name| match name {
    /// #     "SINCH_SERVICE_PLAN_ID" => Some("plan".into()),
    /// #     "SINCH_API_TOKEN" => Some("token".into()),
    /// #     _ => None,
    /// # });
    /// let provider = RotatingCredentials::new(read_env()?.credentials());
    /// // Later, when the deployment says the variables changed:
    /// provider.rotate(read_env()?.credentials());
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn new(initial: impl Into<Arc<Credentials>>) -> Self {
        Self::from(initial.into())
    }

    /// Replaces the credentials (anything [`new`](Self::new) takes). Returns
    /// once every later request will use them.
    pub fn rotate(&self, new: impl Into<Arc<Credentials>>) {
        self.publish(new.into());
    }

    pub(crate) fn publish(&self, new: Arc<Credentials>) {
        let id = new.id();
        let replaced = self.inner.current.load_full();
        self.inner.last_rotation.store(Some(Arc::new(Rotation::new(
            Arc::clone(&new),
            replaced,
            monotonic_now(),
        ))));
        self.inner.current.store(new);
        self.inner.id.store(id.raw(), Ordering::Release);
        self.inner.changes.send_replace(id);
        tracing::info!(target: "sinch_auth", credentials_id = id.0, "credentials rotated");
    }
}

impl From<Arc<Credentials>> for RotatingCredentials {
    /// Starts with a bundle that is already shared.
    fn from(initial: Arc<Credentials>) -> Self {
        let (changes, _) = watch::channel(initial.id());
        Self {
            inner: Arc::new(RotatingInner {
                id: AtomicU64::new(initial.id().raw()),
                current: ArcSwap::new(initial),
                changes,
                last_rotation: ArcSwapOption::empty(),
            }),
        }
    }
}

impl CredentialProvider for RotatingCredentials {
    fn credentials(&self) -> Arc<Credentials> {
        self.inner.current.load_full()
    }

    fn current_id(&self) -> CredentialsId {
        CredentialsId::from_raw(self.inner.id.load(Ordering::Acquire))
    }

    fn changes(&self) -> Option<watch::Receiver<CredentialsId>> {
        Some(self.inner.changes.subscribe())
    }

    fn last_rotation(&self) -> Option<Rotation<Credentials>> {
        self.inner.last_rotation.load_full().map(|r| (*r).clone())
    }
}

impl fmt::Debug for RotatingCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RotatingCredentials")
            .field(&*self.inner.current.load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BearerToken, CredentialProvider};

    #[test]
    fn rotation_is_seen_by_every_clone() {
        let a = RotatingCredentials::new(BearerToken::new("one").unwrap());
        let b = a.clone();
        let mut changes = b.changes().unwrap();
        a.rotate(BearerToken::new("two").unwrap());
        assert_eq!(b.current_id(), a.current_id());
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), a.current_id());
    }

    #[test]
    fn debug_does_not_show_secrets() {
        let a = RotatingCredentials::new(BearerToken::new("SECRET-ROT-1").unwrap());
        let s = StaticCredentials::new(BearerToken::new("SECRET-STATIC-1").unwrap());
        let debug = format!("{a:?} {s:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
    }
}
