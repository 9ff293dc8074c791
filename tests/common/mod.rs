//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

/// An empty request body.
pub fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

pub fn get(url: impl AsRef<str>) -> Request<Full<Bytes>> {
    Request::get(url.as_ref()).body(empty()).unwrap()
}

/// What a capturing inner service saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub uri: http::Uri,
}

/// A real tower service that answers 200 at once and keeps what it was sent:
/// for tests about what the layer does to a request, not about a network.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<Seen>>>);

/// The service side of [`Capture`].
#[derive(Clone)]
pub struct CaptureService(Arc<Mutex<Vec<Seen>>>);

impl tower::Service<Request<Full<Bytes>>> for CaptureService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let seen = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            seen.lock().unwrap().push(Seen {
                headers: parts.headers,
                body,
                uri: parts.uri,
            });
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
    }
}

impl Capture {
    pub fn service(&self) -> CaptureService {
        CaptureService(self.0.clone())
    }

    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request was captured")
    }
}

/// Reads a whole body as (lossy UTF-8) text.
pub async fn body_text<B>(body: B) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = body.collect().await.expect("a whole body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends one request through `service` and returns status and body text.
pub async fn send<S>(service: &S, request: Request<Full<Bytes>>) -> (http::StatusCode, String)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<hyper::body::Incoming>> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = service
        .clone()
        .oneshot(request)
        .await
        .expect("request failed");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Captures `tracing` output in memory, for checking what reached the logs.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
