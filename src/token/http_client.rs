use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::error::BoxError;

/// The response type token fetches read.
pub type TokenHttpResponse = Response<UnsyncBoxBody<Bytes, BoxError>>;

/// The HTTP client token fetches go through: any tower `Service` for
/// `http::Request<Full<Bytes>>`, so you can reuse your own client (with its
/// proxy, TLS and pool settings).
///
/// The default, [`TokenHttpClient::hyper`], is hyper-util's client over rustls
/// (feature `rustls`, on by default) with the webpki root certificates; it also
/// speaks plain http, which the crate allows only to loopback hosts.
///
/// ```
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use sinch_auth::token::TokenHttpClient;
///
/// // Your own hyper client (plain http here; add TLS for real use).
/// let client = Client::builder(TokioExecutor::new())
///     .build_http::<Full<bytes::Bytes>>();
/// let for_tokens = TokenHttpClient::new(client);
/// # let _ = for_tokens;
/// ```
#[derive(Clone)]
pub struct TokenHttpClient(BoxCloneSyncService<Request<Full<Bytes>>, TokenHttpResponse, BoxError>);

impl TokenHttpClient {
    /// Wraps any HTTP service.
    pub fn new<S, B>(service: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = service
            .map_response(|response: Response<B>| {
                response.map(|body| body.map_err(Into::into).boxed_unsync())
            })
            .map_err(Into::into);
        Self(BoxCloneSyncService::new(service))
    }

    /// hyper-util's pooled client: https through rustls (ring, webpki roots)
    /// with the `rustls` feature, and plain http.
    pub fn hyper() -> Self {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::{TokioExecutor, TokioTimer};

        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new());
        #[cfg(feature = "rustls")]
        {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
                .map(|b| b.https_or_http().enable_http1().build());
            match connector {
                Ok(connector) => return Self::new(builder.build::<_, Full<Bytes>>(connector)),
                Err(error) => {
                    tracing::warn!(target: "sinch_auth", %error, "rustls setup failed; token fetches limited to plain http");
                }
            }
        }
        Self::new(builder.build_http::<Full<Bytes>>())
    }

    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<TokenHttpResponse, BoxError> {
        self.0.clone().oneshot(request).await
    }
}

impl Default for TokenHttpClient {
    fn default() -> Self {
        Self::hyper()
    }
}

impl fmt::Debug for TokenHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHttpClient")
    }
}

impl Service<Request<Full<Bytes>>> for TokenHttpClient {
    type Response = TokenHttpResponse;
    type Error = BoxError;
    type Future =
        <BoxCloneSyncService<Request<Full<Bytes>>, TokenHttpResponse, BoxError> as Service<
            Request<Full<Bytes>>,
        >>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        self.0.call(request)
    }
}
