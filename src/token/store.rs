//! A store beneath the in-process cache, shared by many processes.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{FetchRequest, TokenFuture, TokenSource};

/// Shares tokens between processes, so a fleet fetches one token instead of
/// one per process (Sinch's token endpoint is rate-limited, spec §2).
///
/// The in-process cache stays in front: a store is asked only when the cache
/// would fetch (cold start, refresh ahead of expiry, 401-`expired`, rotation),
/// never on the request path.
///
/// An implementation returns a token for `key` that stays usable past
/// `held_until` (the token the asking process holds stops being used then;
/// `None` on a cold start or after a rotation). That token itself lives a
/// little longer than `held_until` (the cache's expiry skew, at most 10 % of
/// its lifetime), so demand a clear margin beyond it, or a process refreshing
/// ahead gets back the very token it is replacing. If the store has none, it
/// lets exactly one process of the fleet run `fetch` and hands the result to
/// the others. If the store itself fails, it should run `fetch` locally
/// rather than fail.
/// Tokens in a store are as sensitive as the credentials they come from.
pub trait TokenStore: Send + Sync + 'static {
    /// A token for `key` usable past `held_until`, from the store or from `fetch`.
    fn get_or_fetch(
        &self,
        key: StoreKey,
        held_until: Option<SystemTime>,
        fetch: TokenFuture,
    ) -> TokenFuture;
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn get_or_fetch(
        &self,
        key: StoreKey,
        held_until: Option<SystemTime>,
        fetch: TokenFuture,
    ) -> TokenFuture {
        (**self).get_or_fetch(key, held_until, fetch)
    }
}

/// Names one credential identity in a store: a SHA-256 of the token URL,
/// project id and key id. Never derived from a secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey(String);

impl StoreKey {
    /// The key for an access key at a token URL.
    pub fn for_access_key(token_url: &str, project_id: &str, key_id: &str) -> Self {
        let mut hash = Sha256::new();
        for part in ["sinch-auth/v1", token_url, project_id, key_id] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        Self(hex)
    }

    /// The key as text (64 hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", &self.0[..12.min(self.0.len())])
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A token source that goes through a store first, under the key the
/// source names ([`TokenSource::store_key`]); a source that names none is
/// asked directly.
pub(crate) struct Stored {
    store: Arc<dyn TokenStore>,
    inner: Arc<dyn TokenSource>,
}

impl Stored {
    pub(crate) fn new(store: Arc<dyn TokenStore>, inner: Arc<dyn TokenSource>) -> Self {
        Self { store, inner }
    }
}

impl TokenSource for Stored {
    fn fetch(&self, request: FetchRequest) -> TokenFuture {
        let Some(key) = self.inner.store_key(&request) else {
            return self.inner.fetch(request);
        };
        // The store's interface still speaks in wall-clock instants; its
        // owner moves it to `must_outlive` (a duration, no clock needed).
        const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
        let held_until = request.must_outlive().map(|d| {
            let now = SystemTime::now();
            now.checked_add(d.min(CENTURY)).unwrap_or(now)
        });
        self.store
            .get_or_fetch(key, held_until, self.inner.fetch(request))
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn store_key(&self, request: &FetchRequest) -> Option<StoreKey> {
        self.inner.store_key(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_name_the_identity_not_the_secret() {
        let a = StoreKey::for_access_key("https://auth.sinch.com/oauth2/token", "p", "k");
        let b = StoreKey::for_access_key("https://auth.sinch.com/oauth2/token", "p", "k2");
        let c = StoreKey::for_access_key("http://127.0.0.1:1/oauth2/token", "p", "k");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        // Part boundaries matter: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            StoreKey::for_access_key("u", "ab", "c"),
            StoreKey::for_access_key("u", "a", "bc")
        );
    }
}
