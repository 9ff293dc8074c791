//! [`AuthBody`]: what the tower adapter needs of a request body.

use std::convert::Infallible;

use bytes::Bytes;
use http_body::Body;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

use crate::error::{AuthError, BoxError};

/// What [`SinchAuth`](crate::SinchAuth) needs of a request body.
///
/// - [`from_bytes`](Self::from_bytes): the application scheme reads the body to
///   hash it, then passes the same bytes on (no second copy).
/// - [`try_clone`](Self::try_clone): the 401-`expired` resend needs the body
///   again. Bodies that cannot be cloned are resent only when empty.
///
/// Implemented for `Full<Bytes>` (hyper-util's usual client body; fully
/// replayable), `BoxBody<Bytes, E>` and `UnsyncBoxBody<Bytes, E>` (signable,
/// replayable when empty), and, with the `axum` feature, `axum::body::Body`.
/// Implement it for your own body type the same way.
pub trait AuthBody: Body + Sized {
    /// A body carrying exactly these bytes.
    fn from_bytes(bytes: Bytes) -> Self;

    /// A copy of this body for a resend, if it can be made without reading it.
    fn try_clone(&self) -> Option<Self>;
}

impl AuthBody for Full<Bytes> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
    }

    #[inline]
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<E: 'static> AuthBody for BoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed()
    }

    fn try_clone(&self) -> Option<Self> {
        (self.size_hint().exact() == Some(0)).then(|| Self::from_bytes(Bytes::new()))
    }
}

impl<E: 'static> AuthBody for UnsyncBoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync()
    }

    fn try_clone(&self) -> Option<Self> {
        (self.size_hint().exact() == Some(0)).then(|| Self::from_bytes(Bytes::new()))
    }
}

#[cfg(feature = "axum")]
impl AuthBody for axum::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        axum::body::Body::from(bytes)
    }

    fn try_clone(&self) -> Option<Self> {
        (self.size_hint().exact() == Some(0)).then(axum::body::Body::empty)
    }
}

/// Reads a body to sign it, within the limit.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, AuthError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(AuthError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(AuthError::BodyTooLarge { limit }),
        Err(error) => Err(AuthError::Body(error)),
    }
}
