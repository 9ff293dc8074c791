//! Application signing through `SinchAuthLayer`: the body is read once,
//! hashed, and the very same bytes go out; the stand-in (and our own
//! verifier) accept what arrives.

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proptest::prelude::*;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::verify::{ApplicationVerifier, Freshness, Verifier};
use sinch_auth::{
    ApplicationCredentials, AuthError, Scheme, ServiceError, SinchAuthLayer, StaticCredentials,
};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn app() -> ApplicationCredentials {
    ApplicationCredentials::new(
        "669E367E-6BBA-48AB-AF15-266871C28135",
        "BeIukql3pTKJ8RGL5zo0DA==",
    )
    .unwrap()
}

fn layer() -> SinchAuthLayer {
    SinchAuthLayer::new(StaticCredentials::new(app()), Scheme::ApplicationSigned).unwrap()
}

fn verifier() -> ApplicationVerifier {
    ApplicationVerifier::new(app()).freshness(Freshness::disabled())
}

/// Checks a request as the stand-in recorded it with our own verifier.
fn verify_recorded(recorded: &sinch_auth::testkit::RecordedRequest) {
    let mut builder = Request::builder()
        .method(recorded.method.clone())
        .uri(recorded.uri.clone());
    for (name, value) in &recorded.headers {
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    verifier()
        .verify(&parts, &recorded.body)
        .expect("what arrived verifies");
}

#[tokio::test]
async fn signed_requests_over_hyper_util_are_accepted_and_arrive_byte_identical() {
    let sinch = SinchStandIn::builder()
        .application(&app())
        .start()
        .await
        .unwrap();
    let client = ServiceBuilder::new().layer(layer()).service(sinch.client());
    let cases: &[(Method, &str, Option<&str>, &[u8])] = &[
        (
            Method::POST,
            "/verification/v1/verifications",
            Some("application/json"),
            br#"{"identity": {"type": "number", "endpoint": "+46700000000"}, "method": "sms"}"#,
        ),
        (Method::GET, "/calling/v1/configuration/numbers", None, b""),
        (
            Method::PUT,
            "/calling/v1/calls/id/a%20b%2Fc?x=1&y=%20",
            Some("application/json; charset=UTF-8"),
            b"{\"k\":\"v\"}\n",
        ),
        (
            Method::DELETE,
            "/calling/v1/conferences/c1",
            Some("text/plain"),
            b"\x00\xff binary \r\n",
        ),
    ];
    for (method, path, content_type, body) in cases {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", sinch.url()));
        if let Some(ct) = content_type {
            request = request.header(CONTENT_TYPE, *ct);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, 200, "{method} {path}: {answer:?}");
        let recorded = sinch.last_request().unwrap();
        assert_eq!(recorded.body.as_ref(), *body);
        let auth = recorded.headers[AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with("Application 669E367E-6BBA-48AB-AF15-266871C28135:"));
        let ts = recorded.headers["x-timestamp"].to_str().unwrap();
        assert_eq!(ts.len(), "2023-11-22T09:10:11.999Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        verify_recorded(&recorded);
    }
}

/// A body that arrives in several frames, as a stream would.
struct Chunks(Vec<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
        }
    }
}

#[tokio::test]
async fn boxed_and_chunked_bodies_are_signed_too() {
    let sinch = SinchStandIn::builder()
        .application(&app())
        .start()
        .await
        .unwrap();
    let hyper: Client<_, BoxBody<Bytes, Infallible>> =
        Client::builder(TokioExecutor::new()).build_http();
    let client = ServiceBuilder::new().layer(layer()).service(hyper);
    let chunks = vec![
        Bytes::from_static(b"{\"part\":"),
        Bytes::from_static(b"1,"),
        Bytes::from_static(b"\"rest\":true}"),
    ];
    let request = Request::post(format!("{}/calling/v1/callouts", sinch.url()))
        .header(CONTENT_TYPE, "application/json")
        .body(Chunks(chunks).boxed())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let recorded = sinch.last_request().unwrap();
    assert_eq!(recorded.body.as_ref(), b"{\"part\":1,\"rest\":true}");
    verify_recorded(&recorded);
}

#[tokio::test]
async fn bodies_over_the_limit_fail_typed_and_are_not_sent() {
    let sinch = SinchStandIn::builder()
        .application(&app())
        .start()
        .await
        .unwrap();
    let layer = SinchAuthLayer::builder(StaticCredentials::new(app()))
        .scheme(Scheme::ApplicationSigned)
        .max_body_bytes(1024)
        .build()
        .unwrap();
    let client = layer.layer(sinch.client());
    let at_limit = Request::post(format!("{}/calling/v1/x", sinch.url()))
        .body(Full::new(Bytes::from(vec![b'a'; 1024])))
        .unwrap();
    assert_eq!(
        client.clone().oneshot(at_limit).await.unwrap().status(),
        200
    );
    let over = Request::post(format!("{}/calling/v1/x", sinch.url()))
        .body(Full::new(Bytes::from(vec![b'a'; 1025])))
        .unwrap();
    let error = client.clone().oneshot(over).await.unwrap_err();
    assert!(
        matches!(
            error,
            ServiceError::Auth(AuthError::BodyTooLarge { limit: 1024 })
        ),
        "{error:?}"
    );
    // A stream without a size hint is cut off at the limit, too.
    let hyper: Client<_, BoxBody<Bytes, Infallible>> =
        Client::builder(TokioExecutor::new()).build_http();
    let streaming = Request::post(format!("{}/calling/v1/x", sinch.url()))
        .body(
            Chunks(vec![
                Bytes::from(vec![b'a'; 600]),
                Bytes::from(vec![b'b'; 600]),
            ])
            .boxed(),
        )
        .unwrap();
    let signing = SinchAuthLayer::builder(StaticCredentials::new(app()))
        .scheme(Scheme::ApplicationSigned)
        .max_body_bytes(1024)
        .build()
        .unwrap();
    let error = signing.layer(hyper).oneshot(streaming).await.unwrap_err();
    assert!(matches!(
        error,
        ServiceError::Auth(AuthError::BodyTooLarge { .. })
    ));
    assert_eq!(sinch.api_requests(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the method, path, content type and body, the bytes that reach
    /// the inner service are exactly the bytes that were hashed.
    #[test]
    fn what_arrives_is_what_was_signed(
        method in prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE]),
        segments in prop::collection::vec("[a-zA-Z0-9._~%-]{0,12}", 1..4),
        content_type in prop::option::of("[a-z]{1,10}/[a-z+.-]{1,12}(; charset=[A-Za-z0-9-]{1,8})?"),
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let path = format!("/{}", segments.join("/"));
        prop_assume!(format!("https://calling.api.sinch.com{path}").parse::<http::Uri>().is_ok());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let capture = common::Capture::default();
            let service = layer().layer(capture.service());
            let mut request = Request::builder()
                .method(method.clone())
                .uri(format!("https://calling.api.sinch.com{path}"));
            if let Some(ct) = &content_type {
                request = request.header(CONTENT_TYPE, ct.as_str());
            }
            let request = request.body(Full::new(Bytes::from(body.clone()))).unwrap();
            service.oneshot(request).await.unwrap();
            let seen = capture.last();
            prop_assert_eq!(seen.body.as_ref(), body.as_slice());
            let mut builder = Request::builder().method(method.clone()).uri(seen.uri.clone());
            for (name, value) in &seen.headers {
                builder = builder.header(name, value);
            }
            let (parts, ()) = builder.body(()).unwrap().into_parts();
            prop_assert!(verifier().verify(&parts, &seen.body).is_ok());
            Ok(())
        })?;
    }
}
