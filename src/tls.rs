//! TLS with an explicit crypto provider: what the default token client
//! uses, and a ready https client for your own API calls.
//!
//! rustls picks a *process-wide* crypto provider when a config is built
//! with `ClientConfig::builder()`, and panics ("Could not automatically
//! determine the process-level CryptoProvider") when two providers are
//! compiled in and none was installed — which happens as soon as one crate
//! of the program turns on ring and another aws-lc-rs (hyper-rustls' and
//! reqwest's default features do). Nothing here consults that default: every
//! config is built with [`provider`], chosen by this crate's features:
//!
//! | Feature | Provider |
//! |---|---|
//! | `rustls-ring` (in the default `rustls`) | ring |
//! | `rustls-aws-lc` | aws-lc-rs |
//! | both | aws-lc-rs: `rustls-ring` comes with the defaults, so `rustls-aws-lc` is the one asked for |
//!
//! Server certificates are checked against the Mozilla roots of
//! `webpki-roots`, compiled in, so a program behaves the same on every host.
//! For other roots or a client certificate, build your own
//! `rustls::ClientConfig` and pass it to
//! [`HyperClientBuilder::tls_config`](crate::token::HyperClientBuilder::tls_config)
//! for token fetches.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use sinch_auth::{EnvCredentials, SinchAuthLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = ServiceBuilder::new()
//!     .layer(SinchAuthLayer::by_host(EnvCredentials::from_env()?)?)
//!     .service(sinch_auth::tls::https_client()?);
//! let request = http::Request::get("https://numbers.api.sinch.com/v1/projects/my-project/activeNumbers")
//!     .body(Full::new(Bytes::new()))?;
//! let response = client.oneshot(request).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};

/// hyper-util's pooled client over [`https_connector`], as [`https_client`] makes it.
pub type HttpsClient<B = Full<Bytes>> = Client<HttpsConnector<HttpConnector>, B>;

/// The crypto provider this crate uses, chosen by its features (see the
/// [module docs](self)); never the process default.
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "rustls-aws-lc")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "rustls-aws-lc"))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// A rustls client config with [`provider`], its safe default protocol
/// versions (TLS 1.3 and 1.2) and the webpki roots; no ALPN, no client
/// certificate.
///
/// # Errors
///
/// Only if the provider supports none of those protocol versions, which
/// neither built-in provider does.
pub fn client_config() -> Result<ClientConfig, rustls::Error> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A connector for hyper-util's `Client`: https only (a plain `http` URI is
/// an error, so credentials never travel in clear), HTTP/1.1, with
/// [`client_config`].
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
///
/// let https = sinch_auth::tls::https_connector()?;
/// let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);
/// # let _ = client;
/// # Ok::<(), rustls::Error>(())
/// ```
///
/// # Errors
///
/// As [`client_config`].
pub fn https_connector() -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config()?)
        .https_only()
        .enable_http1()
        .build())
}

/// hyper-util's pooled client (tokio executor and timer) over
/// [`https_connector`]: the client to put under
/// [`SinchAuthLayer`](crate::SinchAuthLayer) for Sinch's APIs. See the
/// [module docs](self) for an example.
///
/// # Errors
///
/// As [`client_config`].
pub fn https_client<B>() -> Result<HttpsClient<B>, rustls::Error>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new());
    Ok(builder.build(https_connector()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_follows_the_features_not_the_process_default() {
        // Neither feature installs a process default, and none is needed.
        assert!(CryptoProvider::get_default().is_none());
        let config = client_config().unwrap();
        #[cfg(feature = "rustls-aws-lc")]
        let expected = rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(not(feature = "rustls-aws-lc"))]
        let expected = rustls::crypto::ring::default_provider();
        let suites = |p: &CryptoProvider| {
            p.cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect::<Vec<_>>()
        };
        assert_eq!(suites(config.crypto_provider()), suites(&expected));
        let groups = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        assert_eq!(groups(config.crypto_provider()), groups(&expected));
        assert!(CryptoProvider::get_default().is_none());
    }

    #[test]
    fn the_connector_refuses_plain_http() {
        use tower::ServiceExt as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = runtime
            .block_on(
                https_connector()
                    .unwrap()
                    .oneshot(http::Uri::from_static("http://127.0.0.1:9/")),
            )
            .err()
            .unwrap();
        assert_eq!(error.to_string(), "unsupported scheme http");
    }
}
