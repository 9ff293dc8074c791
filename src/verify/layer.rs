//! The tower layer that puts a [`Verifier`] in front of a service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::CONTENT_LENGTH};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Verifier;
use crate::BoxError;

/// The largest body [`VerifyLayer`] reads unless told otherwise: 1 MiB.
/// Sinch's callbacks are a few kilobytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Verifies that requests come from Sinch before they reach the inner service.
///
/// For each request the layer first asks [`Verifier::precheck`] about the
/// head: missing or malformed signature headers, an unknown application key,
/// or a timestamp outside the freshness window get `401` at once, and the
/// body is never read. Otherwise it reads the whole body (up to a
/// [limit](Self::body_limit)), asks [`Verifier::verify_async`] (which also
/// records the request in a shared replay store, if the verifier has one),
/// and then:
///
/// - **verified**: calls the inner service with a request whose body holds
///   exactly the bytes that were verified, and with the
///   [`Verified`](super::Verified) in its extensions;
/// - **not verified**: answers `401 Unauthorized` with an empty body, and logs
///   the [`Rejection`](super::Rejection) with `tracing` at `warn` level;
/// - **body over the limit** (by `Content-Length` up front, or while reading):
///   `413 Payload Too Large`, empty body, logged at `info`;
/// - **body unreadable**: `400 Bad Request`, empty body, logged at `info`.
///
/// The request body type `B` must be buildable from [`Bytes`]
/// (`B: http_body::Body + From<Bytes>`): axum's `Body` and
/// `http_body_util::Full<Bytes>` are. The response body type must implement
/// `Default` (an empty body), as axum's `Body` and `Full` do.
///
/// See the [module docs](super) for an example with axum.
#[must_use]
pub struct VerifyLayer<V> {
    verifier: Arc<V>,
    body_limit: usize,
}

impl<V: Verifier> VerifyLayer<V> {
    /// A layer verifying with `verifier`, reading bodies up to [`DEFAULT_BODY_LIMIT`].
    pub fn new(verifier: V) -> Self {
        Self {
            verifier: Arc::new(verifier),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Sets the largest body, in bytes, that is read and verified; larger
    /// requests get `413 Payload Too Large`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

impl<V> Clone for VerifyLayer<V> {
    fn clone(&self) -> Self {
        Self {
            verifier: Arc::clone(&self.verifier),
            body_limit: self.body_limit,
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for VerifyLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyLayer")
            .field("verifier", &self.verifier)
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl<S, V> Layer<S> for VerifyLayer<V> {
    type Service = Verify<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        Verify {
            inner,
            verifier: Arc::clone(&self.verifier),
            body_limit: self.body_limit,
        }
    }
}

/// The service made by [`VerifyLayer`].
pub struct Verify<S, V> {
    inner: S,
    verifier: Arc<V>,
    body_limit: usize,
}

impl<S: Clone, V> Clone for Verify<S, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            verifier: Arc::clone(&self.verifier),
            body_limit: self.body_limit,
        }
    }
}

impl<S: fmt::Debug, V: fmt::Debug> fmt::Debug for Verify<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verify")
            .field("inner", &self.inner)
            .field("verifier", &self.verifier)
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl<S, V, B, ResB> Service<Request<B>> for Verify<S, V>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    V: Verifier,
    B: Body + From<Bytes>,
    B::Error: Into<BoxError>,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, V, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let limit = u64::try_from(self.body_limit).unwrap_or(u64::MAX);
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) || body.size_hint().lower() > limit {
            tracing::info!(
                method = %parts.method,
                path = parts.uri.path(),
                limit = self.body_limit,
                "callback body over the limit, answering 413"
            );
            return ResponseFuture {
                state: State::Rejected {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                },
                verifier: Arc::clone(&self.verifier),
            };
        }
        // The head alone can condemn most forgeries: answer them before
        // reading (or hashing) a byte of the body, which is dropped unread.
        if let Err(rejection) = self.verifier.precheck(&parts) {
            crate::observe::VerifyAttempt::start::<V>().finish(&Err(rejection.clone()));
            tracing::warn!(
                method = %parts.method,
                path = parts.uri.path(),
                %rejection,
                "callback rejected, answering 401"
            );
            return ResponseFuture {
                state: State::Rejected {
                    status: StatusCode::UNAUTHORIZED,
                },
                verifier: Arc::clone(&self.verifier),
            };
        }
        // `poll_ready` readied `self.inner`: use that one, keep the clone.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Collecting {
                body: Limited::new(body, self.body_limit).collect(),
                head: Some((parts, service)),
            },
            verifier: Arc::clone(&self.verifier),
        }
    }
}

pin_project! {
    /// The response future of [`Verify`].
    pub struct ResponseFuture<S, V, B>
    where
        S: Service<Request<B>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, B>,
        verifier: Arc<V>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        Collecting {
            #[pin]
            body: Collect<Limited<B>>,
            head: Option<(http::request::Parts, S)>,
        },
        Verifying {
            future: Pin<Box<dyn Future<Output = Verification> + Send>>,
            service: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            status: StatusCode,
        },
    }
}

impl<S, V, B, ResB> Future for ResponseFuture<S, V, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    V: Verifier,
    B: Body + From<Bytes>,
    B::Error: Into<BoxError>,
    ResB: Default,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Rejected { status } => return Poll::Ready(Ok(empty(*status))),
                StateProj::Collecting { body, head } => {
                    let collected = ready!(body.poll(cx));
                    let Some((parts, service)) = head.take() else {
                        // Only reachable if polled again after a panic in `call`.
                        return Poll::Ready(Ok(empty(StatusCode::INTERNAL_SERVER_ERROR)));
                    };
                    let method = &parts.method;
                    let path = parts.uri.path();
                    match collected {
                        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                            tracing::info!(
                                %method,
                                path,
                                "callback body over the limit, answering 413"
                            );
                            State::Rejected {
                                status: StatusCode::PAYLOAD_TOO_LARGE,
                            }
                        }
                        Err(error) => {
                            tracing::info!(
                                %method,
                                path,
                                %error,
                                "callback body could not be read, answering 400"
                            );
                            State::Rejected {
                                status: StatusCode::BAD_REQUEST,
                            }
                        }
                        Ok(collected) => {
                            let bytes = collected.to_bytes();
                            let verifier = Arc::clone(this.verifier);
                            State::Verifying {
                                future: Box::pin(async move {
                                    let attempt = crate::observe::VerifyAttempt::start::<V>();
                                    let result = tracing::Instrument::instrument(
                                        verifier.verify_async(&parts, &bytes),
                                        attempt.span().clone(),
                                    )
                                    .await;
                                    attempt.finish(&result);
                                    (parts, bytes, result)
                                }),
                                service: Some(service),
                            }
                        }
                    }
                }
                StateProj::Verifying { future, service } => {
                    let (mut parts, bytes, result) = ready!(future.as_mut().poll(cx));
                    let Some(mut service) = service.take() else {
                        return Poll::Ready(Ok(empty(StatusCode::INTERNAL_SERVER_ERROR)));
                    };
                    let method = &parts.method;
                    let path = parts.uri.path();
                    match result {
                        Ok(verified) => {
                            tracing::debug!(%method, path, "callback verified");
                            parts.extensions.insert(verified);
                            let request = Request::from_parts(parts, B::from(bytes));
                            State::Calling {
                                future: service.call(request),
                            }
                        }
                        Err(rejection) => {
                            tracing::warn!(
                                %method,
                                path,
                                %rejection,
                                "callback rejected, answering 401"
                            );
                            State::Rejected {
                                status: StatusCode::UNAUTHORIZED,
                            }
                        }
                    }
                }
            };
            this.state.set(next);
        }
    }
}

/// The head, the body and what the verifier made of them.
type Verification = (
    http::request::Parts,
    Bytes,
    Result<super::Verified, super::Rejection>,
);

fn empty<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;
    use tower::ServiceExt as _;

    use super::*;
    use crate::verify::{NumbersVerifier, Verified, numbers_signature};

    async fn echo(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let verified = request.extensions().get::<Verified>().cloned();
        assert!(matches!(verified, Some(Verified::Numbers { .. })));
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Ok(Response::new(Full::new(body)))
    }

    fn service() -> impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future: Send,
    > + Clone {
        VerifyLayer::new(NumbersVerifier::new("s"))
            .body_limit(16)
            .layer(tower::service_fn(echo))
    }

    fn signed(body: &'static [u8]) -> Request<Full<Bytes>> {
        Request::post("/n")
            .header("x-sinch-signature", numbers_signature("s", body))
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    }

    async fn read(response: Response<Full<Bytes>>) -> (StatusCode, Bytes) {
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn verified_requests_reach_the_service_with_their_bytes() {
        let response = service().oneshot(signed(b"{\"a\":1}")).await.unwrap();
        assert_eq!(
            read(response).await,
            (StatusCode::OK, Bytes::from_static(b"{\"a\":1}"))
        );
    }

    #[tokio::test]
    async fn rejected_requests_get_an_empty_401() {
        let mut request = signed(b"{}");
        *request.body_mut() = Full::new(Bytes::from_static(b"{ }"));
        let response = service().oneshot(request).await.unwrap();
        assert_eq!(
            read(response).await,
            (StatusCode::UNAUTHORIZED, Bytes::new())
        );
    }

    #[tokio::test]
    async fn the_inner_service_is_readied_and_the_ready_instance_serves() {
        // `ConcurrencyLimit` panics when called without a permit from its own
        // `poll_ready`, and a clone holds no permit.
        let limited = tower::limit::ConcurrencyLimitLayer::new(1).layer(tower::service_fn(echo));
        let mut service = VerifyLayer::new(NumbersVerifier::new("s")).layer(limited);
        for body in [b"{\"a\":1}", b"{\"a\":2}"] {
            let ready = service.ready().await.unwrap();
            let response = ready.call(signed(body)).await.unwrap();
            assert_eq!(
                read(response).await,
                (StatusCode::OK, Bytes::from_static(body))
            );
        }
    }

    #[tokio::test]
    async fn not_ready_while_the_inner_service_is_not() {
        let limited = tower::limit::ConcurrencyLimitLayer::new(1).layer(tower::service_fn(echo));
        let mut service = VerifyLayer::new(NumbersVerifier::new("s")).layer(limited);
        let held = service.ready().await.unwrap().call(signed(b"{}"));
        // The one permit is taken by `held` until it completes.
        let mut other = service.clone();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(other.poll_ready(&mut cx).is_pending());
        assert_eq!(held.await.unwrap().status(), StatusCode::OK);
        assert!(other.poll_ready(&mut cx).is_ready());
    }

    #[test]
    fn debug_shows_the_limit_and_the_verifier_never_its_secret() {
        let layer = VerifyLayer::new(NumbersVerifier::new("numbers-secret")).body_limit(16);
        for shown in [format!("{layer:?}"), format!("{:?}", layer.layer("inner"))] {
            assert!(shown.contains("body_limit: 16"), "{shown}");
            assert!(shown.contains("NumbersVerifier"), "{shown}");
            assert!(!shown.contains("numbers-secret"), "{shown}");
        }
        assert!(format!("{:?}", layer.layer("inner")).contains("inner: \"inner\""));
    }

    /// A body whose connection breaks before it ends.
    struct BrokenOff;

    impl Body for BrokenOff {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(Some(Err(std::io::ErrorKind::ConnectionReset.into())))
        }
    }

    #[tokio::test]
    async fn a_body_that_cannot_be_read_gets_an_empty_400_not_413() {
        let service = VerifyLayer::new(NumbersVerifier::new("s")).layer(tower::service_fn(
            |_: Request<axum::body::Body>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            },
        ));
        let request = Request::post("/n")
            .header("x-sinch-signature", numbers_signature("s", b"{}"))
            .body(axum::body::Body::new(BrokenOff))
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(
            read(response).await,
            (StatusCode::BAD_REQUEST, Bytes::new())
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_get_413() {
        let at_limit = service().oneshot(signed(&[b'x'; 16])).await.unwrap();
        assert_eq!(at_limit.status(), StatusCode::OK);
        let over = service().oneshot(signed(&[b'x'; 17])).await.unwrap();
        assert_eq!(
            read(over).await,
            (StatusCode::PAYLOAD_TOO_LARGE, Bytes::new())
        );
        let mut declared = signed(b"{}");
        declared
            .headers_mut()
            .insert(CONTENT_LENGTH, http::HeaderValue::from_static("1000"));
        let response = service().oneshot(declared).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
