//! Verifying what Sinch sends you: callbacks and webhooks (protocol notes §5).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use sinch_auth::verify::{VerifyLayer, WebhookVerifier};
//! use tower::ServiceExt as _;
//!
//! // The secret set on the Conversation app's webhook.
//! let verifier = WebhookVerifier::new("my-webhook-secret");
//! let app = Router::new()
//!     .route("/conversation", post(|body: String| async move { body }))
//!     .layer(VerifyLayer::new(verifier));
//!
//! // Unsigned requests never reach the handler, and learn nothing from the answer.
//! let response = app
//!     .oneshot(Request::post("/conversation").body(Body::from("{}"))?)
//!     .await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! | Sender | Verifier | Checked |
//! |---|---|---|
//! | Voice, Verification callbacks | [`ApplicationVerifier`] | `Authorization: Application {key}:{sig}` over method, content type, `x-timestamp`, path and body (protocol notes §4); optionally `Basic appKey:appSecret` |
//! | Conversation, SMS webhooks | [`WebhookVerifier`] | `x-sinch-webhook-signature` = HMAC-SHA256 over body, nonce and timestamp |
//! | Numbers callbacks | [`NumbersVerifier`] | `X-Sinch-Signature` = hex HMAC-SHA1 over the body |
//!
//! Each is a pure [`Verifier`] (headers and body bytes in, a [`Verified`] or
//! a [`Rejection`] out), usable with any server; [`VerifyLayer`] puts one in
//! front of a tower service such as an axum router.
//!
//! # What this adds to Sinch's SDKs
//!
//! - Signatures are compared in constant time.
//! - **Heads first**: [`VerifyLayer`] asks [`Verifier::precheck`] before it
//!   reads a body, so a request with missing or malformed signature headers,
//!   an unknown application key or a stale timestamp is refused without
//!   reading or hashing its body.
//! - **Freshness**: a signed timestamp (`x-timestamp`, or the webhook's Unix
//!   seconds) more than 5 minutes in the past or in the future is rejected.
//!   Change it with [`Freshness`]; the clock is injectable.
//! - **Unambiguous webhook nonces**: 1 to 128 ASCII letters, digits, `-` or
//!   `_` (Sinch sends 26-character ULIDs), so the unframed MAC input
//!   `body "." nonce "." timestamp` cannot be re-cut into another request.
//! - **Rotation**: each verifier can take its secrets from a provider
//!   ([`ApplicationVerifier::from_provider`], [`WebhookVerifier::from_source`],
//!   [`NumbersVerifier::from_source`]) and accepts the previous one for a
//!   grace period counted from the rotation itself ([`Rotation`]) on a
//!   monotonic clock, or a fixed list; [`Verified`] says which matched
//!   ([`SecretUsed`]).
//!
//! # Replay protection
//!
//! **On by default.** An accepted nonce (webhooks) or signature (application
//! scheme, which has no nonce) is remembered while its timestamp is fresh,
//! and a second request carrying it is rejected ([`Rejection::Replayed`]).
//!
//! - What is remembered is what the signature covers: the application scheme
//!   does not sign the query string (protocol notes §4), so a captured callback sent
//!   again with `?anything` is the same entry and is refused.
//! - Memory is bounded: [`DEFAULT_REPLAY_CAPACITY`] entries (65,536, about
//!   6 MiB when full), filled only by verified requests and emptied as their
//!   timestamps go stale. Past that, the soonest-expiring entry is evicted
//!   and could be replayed until it goes stale; size it with
//!   `replay_protection(capacity)` above your callbacks per window.
//! - The cost: Sinch retrying a callback with the very same timestamp and
//!   signature (after your handler failed) is refused like a replay. Opt out
//!   with `without_replay_protection()` only if you deduplicate yourself.
//! - **Fleets**: the memory is per process. Share a [`ReplayStore`] (with the
//!   `redis` feature, `RedisReplayStore`: `SET NX PX` on the entry's digest,
//!   the freshness window as TTL) with `replay_store(..)`, and every instance
//!   refuses a replay any of them accepted. [`Verifier::verify`] stays
//!   synchronous and uses the local memory; [`Verifier::verify_async`] (what
//!   [`VerifyLayer`] calls) records in the shared store. When the store is
//!   down, it either fails open to the local memory or fails closed
//!   ([`Rejection::ReplayStoreUnavailable`]), as configured.
//! - Numbers callbacks carry neither a timestamp nor a nonce, so nothing
//!   here can tell a replay from a retry, and there is no moment after which
//!   an entry could be forgotten: deduplicate on their `eventId`.
//!
//! A rejection tells the caller nothing (401, empty body) while
//! [`Rejection`]'s `Display` tells your log exactly why, never with a secret
//! or the expected signature.

mod application;
mod layer;
mod numbers;
#[cfg(feature = "redis")]
mod redis;
mod replay;
mod rotation;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::request::Parts;

pub use application::ApplicationVerifier;
pub use layer::{DEFAULT_BODY_LIMIT, ResponseFuture, Verify, VerifyLayer};
pub use numbers::{NumbersVerifier, numbers_signature};
pub use replay::{
    DEFAULT_REPLAY_CAPACITY, Freshness, RecordFuture, ReplayEntry, ReplayMemory, ReplayStore,
};
pub use rotation::{DEFAULT_GRACE_PERIOD, RotatingSecret, Rotation, SecretSource, SecretUsed};
pub use webhook::{WebhookVerifier, webhook_signature};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisReplayStore, RedisReplayStoreBuilder, WhenUnavailable};

/// The future of [`Verifier::verify_async`].
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<Verified, Rejection>> + Send + 'a>>;

/// Checks that a request comes from Sinch.
///
/// Implementations are pure apart from their (injected) clock and replay
/// memory: they read the request head and the exact body bytes, never the
/// network. A verifier is shared by every request a [`VerifyLayer`] serves.
///
/// [`VerifyLayer`] asks [`precheck`](Self::precheck) before it reads any
/// body, then [`verify_async`](Self::verify_async) with the body.
pub trait Verifier: Send + Sync + 'static {
    /// Checks what the request head alone can tell: the signature headers
    /// are present and well formed, the key is known, the signed timestamp
    /// is fresh. A request failing here is rejected without reading its
    /// body. The default accepts every head.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] saying what is wrong with the head.
    fn precheck(&self, request: &Parts) -> Result<(), Rejection> {
        let _ = request;
        Ok(())
    }

    /// Verifies one request: its head and its complete body, as received,
    /// remembering it in this process's replay memory.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] saying why the request is not authentic, for the log.
    fn verify(&self, request: &Parts, body: &[u8]) -> Result<Verified, Rejection>;

    /// Like [`verify`](Self::verify), but remembers the request in the
    /// verifier's shared [`ReplayStore`] when it has one (which may need the
    /// network). The signature check itself stays synchronous; only the
    /// record waits. The default calls `verify`.
    ///
    /// # Errors
    ///
    /// As `verify`; also [`Rejection::ReplayStoreUnavailable`] from a shared
    /// store configured to fail closed.
    fn verify_async<'a>(&'a self, request: &'a Parts, body: &'a [u8]) -> VerifyFuture<'a> {
        Box::pin(std::future::ready(self.verify(request, body)))
    }
}

impl<V: Verifier + ?Sized> Verifier for Arc<V> {
    fn precheck(&self, request: &Parts) -> Result<(), Rejection> {
        (**self).precheck(request)
    }

    fn verify(&self, request: &Parts, body: &[u8]) -> Result<Verified, Rejection> {
        (**self).verify(request, body)
    }

    fn verify_async<'a>(&'a self, request: &'a Parts, body: &'a [u8]) -> VerifyFuture<'a> {
        (**self).verify_async(request, body)
    }
}

impl<V: Verifier + ?Sized> Verifier for Box<V> {
    fn precheck(&self, request: &Parts) -> Result<(), Rejection> {
        (**self).precheck(request)
    }

    fn verify(&self, request: &Parts, body: &[u8]) -> Result<Verified, Rejection> {
        (**self).verify(request, body)
    }

    fn verify_async<'a>(&'a self, request: &'a Parts, body: &'a [u8]) -> VerifyFuture<'a> {
        (**self).verify_async(request, body)
    }
}

/// What was verified. [`VerifyLayer`] adds it to the request's extensions,
/// so a handler can read it (in axum, with `Extension<Verified>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verified {
    /// A Voice or Verification callback signed with the application scheme.
    Application {
        /// The application key the request was signed for.
        key: String,
        /// The signed `x-timestamp`.
        timestamp: SystemTime,
        /// Which of the verifier's application secrets matched.
        secret: SecretUsed,
    },
    /// A Verification callback carrying `Basic appKey:appSecret`.
    Basic {
        /// The application key.
        key: String,
        /// Which of the verifier's application secrets matched.
        secret: SecretUsed,
    },
    /// A Conversation or SMS webhook.
    Webhook {
        /// The signed nonce.
        nonce: String,
        /// The signed timestamp.
        timestamp: SystemTime,
        /// Which of the verifier's webhook secrets matched.
        secret: SecretUsed,
    },
    /// A Numbers callback.
    Numbers {
        /// Which of the verifier's callback secrets matched.
        secret: SecretUsed,
    },
}

/// Why a request was rejected. `Display` is meant for the server's log: it
/// names the problem and never holds a secret, the expected signature, or
/// values copied from the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A required header is absent.
    #[error("missing header {name}")]
    MissingHeader {
        /// The header's name.
        name: &'static str,
    },
    /// A header is present but cannot be understood.
    #[error("malformed header {name}: {reason}")]
    MalformedHeader {
        /// The header's name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `Authorization` scheme is not one this verifier accepts.
    #[error("authorization scheme not accepted here")]
    UnsupportedScheme,
    /// The signature algorithm named in a header is not supported.
    #[error("unsupported signature algorithm in {name}")]
    UnsupportedAlgorithm {
        /// The header's name.
        name: &'static str,
    },
    /// The request names an application key other than the configured one.
    #[error("unknown application key")]
    UnknownKey,
    /// The signature does not match the request.
    #[error("signature mismatch")]
    SignatureMismatch,
    /// Basic credentials do not match the application's key and secret.
    #[error("Basic credentials do not match")]
    CredentialsMismatch,
    /// The signed timestamp is older than the freshness window allows.
    #[error("timestamp outside the window: {} in the past, {} allowed", Seconds(*age), Seconds(*max_age))]
    TooOld {
        /// How far in the past the timestamp is.
        age: Duration,
        /// The most the window allows.
        max_age: Duration,
    },
    /// The signed timestamp is further in the future than the window allows.
    #[error("timestamp outside the window: {} in the future, {} allowed", Seconds(*ahead), Seconds(*max_ahead))]
    TooNew {
        /// How far in the future the timestamp is.
        ahead: Duration,
        /// The most the window allows.
        max_ahead: Duration,
    },
    /// The nonce or signature was already seen within the window.
    #[error("{what} replayed")]
    Replayed {
        /// `"nonce"` or `"signature"`.
        what: &'static str,
    },
    /// The verifier's secret is empty, so anyone could compute a valid
    /// signature: every request is rejected (check the configuration).
    #[error("the verifier's secret is empty; rejecting every request")]
    EmptySecret,
    /// The shared replay store could not be asked, and is configured to
    /// fail closed (see [replay protection](crate::verify#replay-protection)).
    #[error("replay store unavailable; failing closed")]
    ReplayStoreUnavailable,
}

/// A duration as seconds, with milliseconds when there are any: `300s`, `600.008s`.
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.subsec_millis() {
            0 => write!(f, "{}s", self.0.as_secs()),
            ms => write!(f, "{}.{ms:03}s", self.0.as_secs()),
        }
    }
}

/// The single value of a header, as visible ASCII.
fn header<'a>(request: &'a Parts, name: &'static str) -> Result<&'a str, Rejection> {
    optional_header(request, name)?.ok_or(Rejection::MissingHeader { name })
}

fn optional_header<'a>(
    request: &'a Parts,
    name: &'static str,
) -> Result<Option<&'a str>, Rejection> {
    let mut values = request.headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::MalformedHeader {
            name,
            reason: "appears more than once",
        });
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| Rejection::MalformedHeader {
            name,
            reason: "not visible ASCII",
        })
}
