//! A store beneath the in-process cache, shared by many processes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hkdf::Hkdf;
use http::HeaderValue;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::cache::later;
use super::{FetchRequest, TokenFuture, TokenSource};
use crate::AccessKey;
use crate::clock::Clock;

/// Shares tokens between processes, so a fleet fetches one token instead of
/// one per process (Sinch's token endpoint is rate-limited, protocol notes §2).
///
/// The in-process cache stays in front: a store is asked only when the cache
/// would fetch (cold start, refresh ahead of expiry, 401-`expired`, rotation),
/// never on the request path, and only for a source that names a
/// [`share_key`](TokenSource::share_key) for the credentials (the built-in
/// [`OAuth2Source`](super::OAuth2Source) does; a source without one bypasses the
/// store).
///
/// An implementation returns a token for `key` whose remaining life, counted
/// from when it answers, is longer than `must_outlive` (`None` on a cold
/// start or after a rotation: any live token will do). The token the asking
/// process holds itself lives a little longer than `must_outlive` (the
/// cache's expiry skew), so demand a clear margin beyond it, or a process
/// refreshing ahead gets back the very token it is replacing. If the store
/// has none, it lets exactly one process of the fleet run `fetch` and hands
/// the result to the others. If the store itself fails, it should run
/// `fetch` locally rather than fail.
///
/// Tokens in a store are as sensitive as the credentials they come from:
/// keep them sealed with [`StoreKey::record_key`] under
/// [`StoreKey::name`], which only a holder of the secret can compute.
pub trait TokenStore: Send + Sync + 'static {
    /// A token for `key` that outlives `must_outlive`, from the store or from `fetch`.
    fn get_or_fetch(
        &self,
        key: StoreKey,
        must_outlive: Option<Duration>,
        fetch: TokenFuture,
    ) -> TokenFuture;

    /// The API refused `token`, which this store handed out or stored, as
    /// expired (a 401 `expired`). A store should never hand that token out
    /// again, whatever its record says about its remaining life. Called on
    /// the request path: keep it cheap and never block. The default does
    /// nothing.
    fn refused(&self, token: &RefusedToken) {
        let _ = token;
    }
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn get_or_fetch(
        &self,
        key: StoreKey,
        must_outlive: Option<Duration>,
        fetch: TokenFuture,
    ) -> TokenFuture {
        (**self).get_or_fetch(key, must_outlive, fetch)
    }

    fn refused(&self, token: &RefusedToken) {
        (**self).refused(token);
    }
}

/// A token the API refused as expired (401 `expired`), known by a SHA-256
/// digest of its value: enough to recognise the token, never to use it.
/// Its `Debug` shows nothing of the digest.
///
/// ```
/// use sinch_auth::token::RefusedToken;
///
/// let refused = RefusedToken::of("eyJ.old.token");
/// assert!(refused.is("eyJ.old.token"));
/// assert!(!refused.is("eyJ.new.token"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RefusedToken {
    digest: [u8; 32],
}

impl RefusedToken {
    /// The refused token with this value.
    pub fn of(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// The token a `Bearer` header carries.
    pub(crate) fn of_header(header: &HeaderValue) -> Self {
        let bytes = header.as_bytes();
        let token = bytes.strip_prefix(b"Bearer ").unwrap_or(bytes);
        Self {
            digest: Sha256::digest(token).into(),
        }
    }

    /// Whether `token` is the refused token.
    pub fn is(&self, token: &str) -> bool {
        Self::of(token) == *self
    }
}

impl fmt::Debug for RefusedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefusedToken(..)")
    }
}

/// What a fetch through [`Stored`] runs under: the layer's wall clock and
/// the deadline the refresher gives the whole fetch. Read by the crate's
/// own stores (a task-local, so the public [`TokenStore`] trait stays as
/// it is); a store used outside a layer sees none.
#[derive(Clone)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct FetchContext {
    pub(crate) clock: Arc<dyn Clock>,
    /// The refresher abandons the fetch at this instant.
    pub(crate) deadline: Instant,
}

tokio::task_local! {
    pub(crate) static FETCH_CONTEXT: FetchContext;
}

/// Where a store keeps one credential's token, and the key that seals it,
/// both derived from the credential's secret (HKDF-SHA256): a process that
/// knows the project id and key id but not the secret can neither find the
/// record nor read or forge it.
///
/// Its `Debug` shows the first characters of the name only, never the
/// record key.
///
/// ```
/// use sinch_auth::AccessKey;
/// use sinch_auth::token::StoreKey;
///
/// let url = "https://auth.sinch.com/oauth2/token";
/// let owner = AccessKey::new("project", "key-id", "key-secret")?;
/// let guess = AccessKey::new("project", "key-id", "made-up")?;
/// assert_ne!(
///     StoreKey::for_access_key(url, &owner),
///     StoreKey::for_access_key(url, &guess)
/// );
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct StoreKey {
    name: String,
    record_key: Zeroizing<[u8; 32]>,
}

/// Separates our derivations from any other use of the same secret.
const DERIVATION_SALT: &[u8] = b"sinch-auth token store v2";

impl StoreKey {
    /// The key's name (the 0.1.0 name of [`name`](Self::name)).
    #[deprecated(since = "0.2.0", note = "renamed to `name`")]
    pub fn as_str(&self) -> &str {
        self.name()
    }

    /// The key for tokens of an access key at a token URL.
    pub fn for_access_key(token_url: &str, key: &AccessKey) -> Self {
        Self::derive(
            key.key_secret().expose_secret().as_bytes(),
            &["oauth2", token_url, key.project_id(), key.key_id()],
        )
    }

    /// A key derived from `secret` (material only the credential's holder
    /// has, with at least 128 bits of entropy) and the parts naming what
    /// the token is for (issuer, account, …). For a custom
    /// [`TokenSource::share_key`].
    pub fn derive(secret: &[u8], identity: &[&str]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(DERIVATION_SALT), secret);
        // Each part is length-framed: ("ab", "c") is not ("a", "bc").
        let mut info = Vec::new();
        for part in identity {
            info.extend_from_slice(&(part.len() as u64).to_be_bytes());
            info.extend_from_slice(part.as_bytes());
        }
        let expand = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            let mut labelled = Zeroizing::new(label.to_vec());
            labelled.extend_from_slice(&info);
            // 32 bytes is far below HKDF-SHA256's limit of 8160.
            if hkdf.expand(&labelled, out.as_mut()).is_err() {
                unreachable!("32 bytes is a valid HKDF-SHA256 output length");
            }
            out
        };
        let name_bytes = expand(b"name\0");
        let mut name = String::with_capacity(64);
        for byte in name_bytes.iter() {
            name.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            name.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
        }
        Self {
            name,
            record_key: expand(b"record\0"),
        }
    }

    /// Where the record lives: 64 hex digits, safe to show (it reveals
    /// nothing about the secret or the identity).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 256-bit key a store seals the record with (an AEAD key). As
    /// secret as the credential's own secret: never store or log it.
    pub fn record_key(&self) -> &[u8; 32] {
        &self.record_key
    }
}

impl PartialEq for StoreKey {
    fn eq(&self, other: &Self) -> bool {
        // The name is derived with the record key from the same input.
        self.name == other.name
    }
}

impl Eq for StoreKey {}

impl std::hash::Hash for StoreKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({}…)", &self.name[..12])
    }
}

/// A token source that goes through a store first, for the credentials its
/// source names a share key for; the others go straight to the source.
pub(crate) struct Stored {
    store: Arc<dyn TokenStore>,
    inner: Arc<dyn TokenSource>,
    clock: Arc<dyn Clock>,
    /// The refresher's limit on one fetch, which starts when `fetch` is called.
    fetch_timeout: Duration,
}

impl Stored {
    pub(crate) fn new(
        store: Arc<dyn TokenStore>,
        inner: Arc<dyn TokenSource>,
        clock: Arc<dyn Clock>,
        fetch_timeout: Duration,
    ) -> Self {
        Self {
            store,
            inner,
            clock,
            fetch_timeout,
        }
    }
}

impl TokenSource for Stored {
    fn fetch(&self, request: FetchRequest) -> TokenFuture {
        match self.inner.share_key(request.credentials()) {
            Some(key) => {
                // The refresher's timeout starts right after this returns:
                // this deadline is never later than the real one.
                let context = FetchContext {
                    clock: self.clock.clone(),
                    deadline: later(Instant::now(), self.fetch_timeout),
                };
                let must_outlive = request.must_outlive();
                let fetch = self
                    .store
                    .get_or_fetch(key, must_outlive, self.inner.fetch(request));
                Box::pin(FETCH_CONTEXT.scope(context, fetch))
            }
            None => self.inner.fetch(request),
        }
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn refused(&self, token: &RefusedToken) {
        self.store.refused(token);
        self.inner.refused(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://auth.sinch.com/oauth2/token";

    fn key(project: &str, id: &str, secret: &str) -> StoreKey {
        StoreKey::for_access_key(URL, &AccessKey::new(project, id, secret).unwrap())
    }

    #[test]
    fn store_keys_depend_on_the_secret_and_every_identity_part() {
        let a = key("p", "k", "secret-1");
        assert_eq!(a, key("p", "k", "secret-1"));
        assert_eq!(a.record_key(), key("p", "k", "secret-1").record_key());
        for other in [
            key("p", "k", "secret-2"),
            key("p", "k2", "secret-1"),
            key("p2", "k", "secret-1"),
            StoreKey::for_access_key(
                "http://127.0.0.1:1/oauth2/token",
                &AccessKey::new("p", "k", "secret-1").unwrap(),
            ),
        ] {
            assert_ne!(a, other);
            assert_ne!(a.record_key(), other.record_key());
        }
        assert_eq!(a.name().len(), 64);
        assert!(a.name().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a.name().as_bytes(), &a.record_key()[..]);
        // Part boundaries matter: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            StoreKey::derive(b"s", &["ab", "c"]),
            StoreKey::derive(b"s", &["a", "bc"])
        );
    }

    #[test]
    fn equal_keys_hash_alike_and_different_keys_apart() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let a = key("p", "k", "secret-1");
        assert_eq!(
            hasher.hash_one(&a),
            hasher.hash_one(key("p", "k", "secret-1"))
        );
        assert_ne!(
            hasher.hash_one(&a),
            hasher.hash_one(key("p", "k", "secret-2"))
        );
    }

    struct NoStore;

    impl TokenStore for NoStore {
        fn get_or_fetch(
            &self,
            _key: StoreKey,
            _must_outlive: Option<Duration>,
            fetch: TokenFuture,
        ) -> TokenFuture {
            fetch
        }
    }

    #[test]
    fn a_stored_source_logs_under_its_sources_name() {
        let stored = Stored::new(
            Arc::new(NoStore),
            Arc::new(crate::token::OAuth2Source::default()),
            Arc::new(crate::clock::SystemClock),
            Duration::from_secs(10),
        );
        assert_eq!(stored.name(), "oauth2");
    }

    #[test]
    fn debug_shows_a_name_prefix_and_never_the_record_key() {
        let k = key("proj-x", "key-x", "secret-x");
        let shown = format!("{k:?}");
        assert_eq!(shown, format!("StoreKey({}…)", &k.name()[..12]));
        let hex: String = k.record_key().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex[..8]));
        assert!(!shown.contains("proj-x") && !shown.contains("key-x"));
    }
}
