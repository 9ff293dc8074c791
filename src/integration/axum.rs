//! axum (feature `axum`): one router that calls Sinch and receives Sinch's
//! callbacks.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use axum::Router;
//! use axum::body::{Body, Bytes};
//! use axum::extract::State;
//! use axum::routing::{get, post};
//! use http::StatusCode;
//! use http_body_util::{BodyExt as _, Full};
//! use hyper_rustls::HttpsConnector;
//! use hyper_util::client::legacy::{Client, connect::HttpConnector};
//! use hyper_util::rt::TokioExecutor;
//! use sinch_auth::integration::axum::VerifiedCallback;
//! use sinch_auth::verify::{Verified, VerifyLayer, WebhookVerifier};
//! use sinch_auth::{AccessKey, SinchAuth, SinchAuthLayer, StaticCredentials};
//! use tower::{ServiceBuilder, ServiceExt as _};
//!
//! /// Each handler gets a clone: clones share credentials, tokens and the refresher.
//! #[derive(Clone)]
//! struct App {
//!     sinch: SinchAuth<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
//! }
//!
//! /// Outbound: an authenticated call to Sinch from a handler.
//! async fn numbers(State(app): State<App>) -> Result<Bytes, StatusCode> {
//!     let url = "https://numbers.api.sinch.com/v1/projects/my-project/activeNumbers";
//!     let request = http::Request::get(url).body(Full::default()).unwrap();
//!     let response = app.sinch.oneshot(request).await.map_err(|_| StatusCode::BAD_GATEWAY)?;
//!     let body = response.into_body().collect().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
//!     Ok(body.to_bytes())
//! }
//!
//! /// Inbound: only verified webhooks get here, with the exact bytes that were signed.
//! async fn sms_webhook(VerifiedCallback(verified): VerifiedCallback, body: Bytes) -> StatusCode {
//!     if let Verified::Webhook { nonce, .. } = verified {
//!         println!("{} bytes, nonce {nonce}", body.len());
//!     }
//!     StatusCode::OK
//! }
//!
//! let key = AccessKey::new("my-project", "key-id", "key-secret")?;
//! let https = hyper_rustls::HttpsConnectorBuilder::new()
//!     .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
//!     .https_only()
//!     .enable_http1()
//!     .build();
//! let sinch = ServiceBuilder::new()
//!     .layer(SinchAuthLayer::by_host(StaticCredentials::new(key))?)
//!     .service(Client::builder(TokioExecutor::new()).build(https));
//!
//! let router = Router::new()
//!     .route("/numbers", get(numbers))
//!     .route(
//!         "/sinch/sms",
//!         post(sms_webhook).layer(VerifyLayer::new(WebhookVerifier::new("webhook-secret"))),
//!     )
//!     .with_state(App { sinch });
//!
//! // Serve it with `axum::serve(listener, router)`. An unsigned callback:
//! let unsigned = http::Request::post("/sinch/sms").body(Body::from("{}"))?;
//! let response = router.oneshot(unsigned).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! - **Outbound**: the client is the documented hyper stack,
//!   [`SinchAuthLayer`](crate::SinchAuthLayer) over hyper-util's client. It
//!   is `Clone + Send + Sync`, which is all axum asks of state, and
//!   [`State`](::axum::extract::State) hands each handler its own clone, ready
//!   for `oneshot`. Nothing axum-specific is needed for it. Request bodies:
//!   `Full<Bytes>` can be resent after a `401 expired`; a client built for
//!   axum's `Body` forwards incoming bodies as they are, signed if need be,
//!   but resends them only when empty (see [`AuthBody`](crate::AuthBody)).
//! - **Inbound**: a [`VerifyLayer`] on each callback route, and
//!   [`VerifiedCallback`] (or `Extension<Verified>`) in its handler. Layer the
//!   route (`post(handler).layer(…)`) or a nested router, so only callback
//!   paths read and verify bodies.
//!
//! `examples/axum_service.rs` runs the whole thing on loopback.

use std::fmt;
use std::ops::Deref;

use ::axum::extract::FromRequestParts;
use ::axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::verify::Verified;
#[cfg(doc)]
use crate::verify::VerifyLayer;

/// What the [`VerifyLayer`] in front of the handler verified, as an axum
/// extractor. See the [module docs](self) for a router.
///
/// Like `Extension<Verified>`, except when the handler is reached without a
/// `VerifyLayer` in front (a route wired up wrong): then the request is
/// refused with an empty `500` and the mistake is logged at `error` level,
/// instead of axum's `500` whose body names the missing type.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use axum::{Router, body::Body, routing::post};
/// use http::StatusCode;
/// use sinch_auth::integration::axum::VerifiedCallback;
/// use sinch_auth::verify::{NumbersVerifier, Verified, VerifyLayer, numbers_signature};
/// use tower::ServiceExt as _;
///
/// async fn numbers_event(VerifiedCallback(verified): VerifiedCallback, body: String) -> String {
///     assert!(matches!(verified, Verified::Numbers { .. }));
///     body
/// }
///
/// let router = Router::new().route(
///     "/sinch/numbers",
///     post(numbers_event).layer(VerifyLayer::new(NumbersVerifier::new("callback-secret"))),
/// );
/// let body = r#"{"eventId":"e-1"}"#;
/// let request = http::Request::post("/sinch/numbers")
///     .header("x-sinch-signature", numbers_signature("callback-secret", body.as_bytes()))
///     .body(Body::from(body))?;
/// assert_eq!(router.oneshot(request).await?.status(), StatusCode::OK);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCallback(pub Verified);

impl Deref for VerifiedCallback {
    type Target = Verified;

    fn deref(&self) -> &Verified {
        &self.0
    }
}

impl From<VerifiedCallback> for Verified {
    fn from(callback: VerifiedCallback) -> Self {
        callback.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedCallback {
    type Rejection = NotVerified;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, NotVerified> {
        match parts.extensions.get::<Verified>() {
            Some(verified) => Ok(Self(verified.clone())),
            None => {
                tracing::error!(
                    target: "sinch_auth",
                    method = %parts.method,
                    path = parts.uri.path(),
                    "VerifiedCallback on a route without a VerifyLayer in front; answering 500"
                );
                Err(NotVerified)
            }
        }
    }
}

/// The rejection of [`VerifiedCallback`]: the request did not pass through a
/// [`VerifyLayer`]. Answers an empty `500 Internal Server Error`, since the
/// server, not the caller, is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotVerified;

impl fmt::Display for NotVerified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request did not pass through a VerifyLayer")
    }
}

impl std::error::Error for NotVerified {}

impl IntoResponse for NotVerified {
    fn into_response(self) -> Response {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

#[cfg(test)]
mod tests {
    use ::axum::Router;
    use ::axum::body::Body;
    use ::axum::routing::post;
    use http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;
    use crate::verify::{NumbersVerifier, SecretUsed, VerifyLayer, numbers_signature};

    async fn handler(VerifiedCallback(verified): VerifiedCallback, body: String) -> String {
        format!("{verified:?} {body}")
    }

    fn signed(body: &'static str) -> Request<Body> {
        Request::post("/")
            .header("x-sinch-signature", numbers_signature("s", body.as_bytes()))
            .body(Body::from(body))
            .unwrap()
    }

    async fn answer(router: Router, request: Request<Body>) -> (StatusCode, String) {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn extracts_what_the_layer_verified() {
        let router = Router::new().route(
            "/",
            post(handler).layer(VerifyLayer::new(NumbersVerifier::new("s"))),
        );
        assert_eq!(
            answer(router, signed("{}")).await,
            (StatusCode::OK, "Numbers { secret: Current } {}".to_owned())
        );
    }

    #[tokio::test]
    async fn a_route_without_the_layer_answers_an_empty_500() {
        let router = Router::new().route("/", post(handler));
        assert_eq!(
            answer(router, signed("{}")).await,
            (StatusCode::INTERNAL_SERVER_ERROR, String::new())
        );
    }

    #[test]
    fn derefs_and_converts_to_verified() {
        let numbers = Verified::Numbers {
            secret: SecretUsed::Current,
        };
        let callback = VerifiedCallback(numbers.clone());
        assert_eq!(*callback, numbers);
        assert_eq!(Verified::from(callback), numbers);
    }
}
