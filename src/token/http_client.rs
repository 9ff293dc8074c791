use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::{Builder as ClientBuilder, Client};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::error::{BoxError, ConfigError};

/// The response type token fetches read.
pub type TokenHttpResponse = Response<UnsyncBoxBody<Bytes, BoxError>>;

/// The HTTP client token fetches go through: any tower `Service` for
/// `http::Request<Full<Bytes>>`, so you can reuse your own client (with its
/// proxy, TLS and pool settings).
///
/// The default, [`TokenHttpClient::hyper`], is hyper-util's client over rustls
/// (feature `rustls`, on by default) with the webpki root certificates, going
/// through the proxy the environment names for `https` destinations; it also
/// speaks plain http, to loopback hosts only and always directly.
/// [`TokenHttpClient::hyper_builder`] takes your own `rustls::ClientConfig`
/// or proxy settings, and `TokenHttpClient::from_reqwest` (feature
/// `reqwest`) your reqwest client.
///
/// # Runtimes
///
/// The token refresher runs on the tokio runtime of the request that started
/// it, and moves to another runtime when that one shuts down or sits idle
/// (see [`RefreshConfig`](crate::token::RefreshConfig)). A pooled keep-alive
/// connection is a task on the runtime that opened it, and only that runtime
/// drives it. The default client keeps one pool per runtime, so a fetch never
/// goes through a connection an idle runtime holds. A client of your own
/// ([`TokenHttpClient::new`], `from_reqwest`) keeps whatever pool it has: if
/// your program leaves runtimes idle while the layer lives on, a fetch made
/// from another runtime through a connection the idle one opened waits until
/// [`fetch_timeout`](crate::token::RefreshConfig::fetch_timeout). Give such a
/// client no idle pool (`pool_max_idle_per_host(0)`) or use the default.
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

    /// hyper-util's pooled client, as [`TokenHttpClient::hyper_builder`]
    /// makes it by default: https through rustls with this crate's explicit
    /// crypto provider and the webpki roots (features `rustls-ring`, on by
    /// default, or `rustls-aws-lc`; see `sinch_auth::tls`), plain http to
    /// loopback only, and the proxy named by `HTTPS_PROXY`/`ALL_PROXY`/
    /// `NO_PROXY`, read now from the process environment (see
    /// [`HyperClientBuilder`]). One pool per tokio runtime (see
    /// [Runtimes](TokenHttpClient#runtimes)).
    ///
    /// Never panics: when a proxy variable is malformed, every fetch made
    /// through this client fails with that [`ConfigError`] (naming the
    /// variable, never its value); [`HyperClientBuilder::build`] returns it
    /// instead.
    pub fn hyper() -> Self {
        match Self::hyper_builder().build() {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(target: "sinch_auth", %error, "token client misconfigured; token fetches will fail");
                Self::failing(error)
            }
        }
    }

    /// Configures hyper-util's client for token fetches: TLS config and proxy.
    pub fn hyper_builder() -> HyperClientBuilder {
        HyperClientBuilder {
            #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
            tls: None,
            proxy: ProxyChoice::Environment,
        }
    }

    /// Token fetches through your reqwest client, with its proxy, TLS, DNS
    /// and pool settings (feature `reqwest`).
    ///
    /// ```no_run
    /// use sinch_auth::token::TokenHttpClient;
    /// use sinch_auth::{EnvCredentials, Scheme, SinchAuthLayer};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let reqwest = reqwest::Client::new();
    /// let layer = SinchAuthLayer::builder(EnvCredentials::from_env()?)
    ///     .scheme(Scheme::OAuth2)
    ///     .token_client(TokenHttpClient::from_reqwest(reqwest))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "reqwest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn from_reqwest(client: reqwest::Client) -> Self {
        Self::new(tower::service_fn(move |request: Request<Full<Bytes>>| {
            let client = client.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.map_err(BoxError::from)?.to_bytes();
                let request = reqwest::Request::try_from(Request::from_parts(parts, body))?;
                let response = client.execute(request).await?;
                Ok::<_, BoxError>(Response::<reqwest::Body>::from(response))
            }
        }))
    }

    /// A client whose every request fails with `error`.
    fn failing(error: ConfigError) -> Self {
        Self::new(tower::service_fn(move |_: Request<Full<Bytes>>| {
            let error = error.clone();
            async move { Err::<Response<Full<Bytes>>, _>(error) }
        }))
    }

    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<TokenHttpResponse, BoxError> {
        self.0.clone().oneshot(request).await
    }
}

/// Builds the hyper-util [`TokenHttpClient`]. Made by
/// [`TokenHttpClient::hyper_builder`].
///
/// # Proxies
///
/// Read once, when the client is built, the way curl and reqwest read them:
///
/// | Variable (upper case first, then lower case) | Used for |
/// |---|---|
/// | `HTTPS_PROXY`, `https_proxy` | `https` token URLs |
/// | `HTTP_PROXY`, `http_proxy` | nothing: checked like the others, but plain `http` never goes through a proxy (`HTTP_PROXY` is not even read when `REQUEST_METHOD` is set, as under CGI) |
/// | `ALL_PROXY`, `all_proxy` | `https` token URLs, when the variables above are unset |
/// | `NO_PROXY`, `no_proxy` | comma-separated hosts, domains (`.example.com` or `example.com`, subdomains included), IPs, CIDR ranges, or `*`, reached directly |
///
/// A proxy is an `http://[user:password@]host:port` URL (the scheme may be
/// left out); the connection to an `https` destination is a `CONNECT`
/// tunnel through it, so TLS runs end to end: the proxy sees the host and
/// port in the `CONNECT` line, then only TLS. `https://` and SOCKS proxy
/// URLs are refused with a [`ConfigError`].
///
/// Credentials never cross a proxy in clear. Loopback destinations
/// (`localhost`, `127.0.0.0/8`, `::1`) are always reached directly, whatever
/// the variables say: through a proxy, "loopback" would be the proxy's host,
/// not this one. A plain `http` URL to any other host is refused with
/// [`ConfigError::InvalidUrl`] before anything is sent, proxy or not (the
/// crate's token URLs are `https` or loopback anyway).
///
/// ```
/// use std::ffi::OsString;
/// use sinch_auth::token::TokenHttpClient;
///
/// let client = TokenHttpClient::hyper_builder()
///     .proxy_from_lookup(|name| match name {
///         "HTTPS_PROXY" => Some(OsString::from("http://proxy.internal:3128")),
///         "NO_PROXY" => Some(OsString::from("localhost,127.0.0.1")),
///         _ => None,
///     })
///     .build()?;
/// # let _ = client;
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[must_use]
pub struct HyperClientBuilder {
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    tls: Option<rustls::ClientConfig>,
    proxy: ProxyChoice,
}

enum ProxyChoice {
    Environment,
    Read(Result<Option<Arc<Matcher>>, ConfigError>),
}

impl HyperClientBuilder {
    /// TLS through this rustls config instead of [`crate::tls::client_config`]
    /// (your roots, client certificate or provider). Its ALPN list is
    /// replaced by HTTP/1.1, which is what the client speaks.
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc")))
    )]
    pub fn tls_config(mut self, mut config: rustls::ClientConfig) -> Self {
        config.alpn_protocols.clear();
        self.tls = Some(config);
        self
    }

    /// Reads the proxy variables through `lookup` instead of the process
    /// environment (the default), once, now.
    pub fn proxy_from_lookup(mut self, lookup: impl FnMut(&str) -> Option<OsString>) -> Self {
        self.proxy = ProxyChoice::Read(proxies(lookup));
        self
    }

    /// No proxy, whatever the environment says.
    pub fn direct(mut self) -> Self {
        self.proxy = ProxyChoice::Read(Ok(None));
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidEnvVar`] naming a proxy variable that is not
    /// UTF-8, not a URL, or not an `http://` proxy.
    pub fn build(self) -> Result<TokenHttpClient, ConfigError> {
        use hyper_util::rt::{TokioExecutor, TokioTimer};

        let proxies = match self.proxy {
            ProxyChoice::Environment => proxies(|name| std::env::var_os(name))?,
            ProxyChoice::Read(read) => read?,
        };
        let mut http = HttpConnector::new();
        // The TLS layer above hands it https URIs; without one, an https URI
        // must fail rather than go out in clear.
        http.enforce_http(!cfg!(any(
            feature = "rustls-ring",
            feature = "rustls-aws-lc"
        )));
        let connector = ProxyConnector { http, proxies };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new());
        #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
        {
            let config = match self.tls {
                Some(config) => config,
                None => crate::tls::client_config().map_err(|_| ConfigError::InvalidSetting {
                    setting: "TLS",
                    reason: "the crypto provider supports no safe protocol version",
                })?,
            };
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http()
                .enable_http1()
                .wrap_connector(connector);
            Ok(TokenHttpClient::new(PerRuntime::new(builder, https)))
        }
        #[cfg(not(any(feature = "rustls-ring", feature = "rustls-aws-lc")))]
        Ok(TokenHttpClient::new(PerRuntime::new(builder, connector)))
    }
}

impl fmt::Debug for HyperClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperClientBuilder").finish_non_exhaustive()
    }
}

/// The proxy rules the variables describe; `None` when no proxy is named.
fn proxies(
    mut lookup: impl FnMut(&str) -> Option<OsString>,
) -> Result<Option<Arc<Matcher>>, ConfigError> {
    // httpoxy: under CGI, `HTTP_PROXY` is the client's `Proxy:` header.
    let cgi = lookup("REQUEST_METHOD").is_some();
    let mut read = |names: &[&'static str]| -> Result<Option<String>, ConfigError> {
        for &name in names {
            let Some(value) = lookup(name) else { continue };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::InvalidEnvVar {
                    name,
                    reason: "not valid UTF-8",
                })?;
            if value.trim().is_empty() {
                continue;
            }
            if !names[0].starts_with("NO") {
                check_proxy_url(name, &value)?;
            }
            return Ok(Some(value));
        }
        Ok(None)
    };
    let https = read(&["HTTPS_PROXY", "https_proxy"])?;
    let http = if cgi {
        read(&["http_proxy"])?
    } else {
        read(&["HTTP_PROXY", "http_proxy"])?
    };
    let all = read(&["ALL_PROXY", "all_proxy"])?;
    let no = read(&["NO_PROXY", "no_proxy"])?;
    // curl's `NO_PROXY=*` exempts every host; hyper-util's matcher applies
    // `*` to names only, not to IP addresses such as 127.0.0.1.
    let everything_exempt = no
        .as_deref()
        .is_some_and(|no| no.split(',').any(|entry| entry.trim() == "*"));
    if everything_exempt || (https.is_none() && http.is_none() && all.is_none()) {
        return Ok(None);
    }
    let mut builder = Matcher::builder();
    if let Some(all) = all {
        builder = builder.all(all);
    }
    if let Some(https) = https {
        builder = builder.https(https);
    }
    if let Some(http) = http {
        builder = builder.http(http);
    }
    if let Some(no) = no {
        builder = builder.no(no);
    }
    Ok(Some(Arc::new(builder.build())))
}

fn check_proxy_url(name: &'static str, value: &str) -> Result<(), ConfigError> {
    let probe = Matcher::builder().all(value).build();
    match probe.intercept(&Uri::from_static("https://probe.invalid/")) {
        None => Err(ConfigError::InvalidEnvVar {
            name,
            reason: "not a proxy URL (expected http://host:port)",
        }),
        Some(proxy) if proxy.uri().scheme_str() != Some("http") => {
            Err(ConfigError::InvalidEnvVar {
                name,
                reason: "only http:// proxies are supported (not https:// or SOCKS)",
            })
        }
        Some(_) => Ok(()),
    }
}

/// Connects directly, or through a `CONNECT` tunnel when the proxy rules
/// intercept the destination. Loopback and plain-http destinations are never
/// tunnelled (see [`HyperClientBuilder`]'s proxy rules).
#[derive(Clone)]
struct ProxyConnector {
    http: HttpConnector,
    proxies: Option<Arc<Matcher>>,
}

impl ProxyConnector {
    /// The proxy `destination` is reached through, if any.
    fn proxy_for(&self, destination: &Uri) -> Option<Intercept> {
        if never_proxied(destination) {
            return None;
        }
        self.proxies.as_deref()?.intercept(destination)
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        match self.proxy_for(&destination) {
            Some(proxy) => {
                tracing::debug!(target: "sinch_auth", proxy = %proxy.uri(), "token fetch through a CONNECT tunnel");
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.http.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { tunnel.oneshot(destination).await.map_err(Into::into) })
            }
            None => {
                let connecting = self.http.call(destination);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
        }
    }
}

/// Whether a destination must be reached directly: loopback (through a
/// proxy it would be the proxy's own host), and plain http (it carries the
/// token request's credentials in clear).
fn never_proxied(destination: &Uri) -> bool {
    !destination
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
        || destination.host().is_none_or(crate::host::is_loopback)
}

/// Plain http goes to loopback only: refused before anything is sent.
fn check_destination(destination: &Uri) -> Result<(), ConfigError> {
    let https = destination
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    if https || destination.host().is_some_and(crate::host::is_loopback) {
        Ok(())
    } else {
        Err(ConfigError::InvalidUrl {
            field: "token URL",
            reason: "plain http is sent only to loopback hosts, never through a proxy",
        })
    }
}

/// hyper-util's client, one per tokio runtime. A pooled connection is a
/// task on the runtime that opened it; a request from another runtime that
/// took it from a shared pool would wait for a runtime that may never run
/// again. So each runtime gets its own client and pool, forgotten when that
/// runtime shuts down.
struct PerRuntime<C> {
    inner: Arc<Pools<C>>,
}

impl<C> Clone for PerRuntime<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// A runtime's client and the serial number of its entry.
type Entry<C> = (u64, Client<C, Full<Bytes>>);

struct Pools<C> {
    builder: ClientBuilder,
    connector: C,
    /// The client of each runtime, with the serial number of its entry.
    clients: Mutex<HashMap<tokio::runtime::Id, Entry<C>>>,
    serial: AtomicU64,
    /// Dropped with the last clone of the client: ends the tasks that
    /// forget each runtime's entry.
    alive: tokio::sync::watch::Sender<()>,
}

impl<C: Connect + Clone + Send + Sync + 'static> PerRuntime<C> {
    fn new(builder: ClientBuilder, connector: C) -> Self {
        Self {
            inner: Arc::new(Pools {
                builder,
                connector,
                clients: Mutex::new(HashMap::new()),
                serial: AtomicU64::new(0),
                alive: tokio::sync::watch::channel(()).0,
            }),
        }
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> Pools<C> {
    /// The client of the runtime this runs on, made on first use.
    fn client(self: &Arc<Self>) -> Result<Client<C, Full<Bytes>>, BoxError> {
        let runtime = tokio::runtime::Handle::try_current()?;
        let id = runtime.id();
        let made = {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, client)) = clients.get(&id) {
                return Ok(client.clone());
            }
            let serial = self.serial.fetch_add(1, Ordering::Relaxed);
            let client = self.builder.build(self.connector.clone());
            clients.insert(id, (serial, client.clone()));
            (serial, client)
        };
        // A task is dropped when its runtime shuts down: its guard then
        // forgets that runtime's client. It also ends with the last clone of
        // this client. Spawned unlocked: on a runtime already shutting down
        // the guard drops at once, and takes the lock.
        let forget = Forget {
            pools: Arc::downgrade(self),
            id,
            serial: made.0,
        };
        let mut alive = self.alive.subscribe();
        runtime.spawn(async move {
            let _forget = forget;
            let _ = alive.changed().await;
        });
        Ok(made.1)
    }
}

/// Removes a runtime's client when dropped (see [`Pools::client`]).
struct Forget<C> {
    pools: Weak<Pools<C>>,
    id: tokio::runtime::Id,
    serial: u64,
}

impl<C> Drop for Forget<C> {
    fn drop(&mut self) {
        if let Some(pools) = self.pools.upgrade() {
            let mut clients = pools.clients.lock().unwrap_or_else(|e| e.into_inner());
            if clients
                .get(&self.id)
                .is_some_and(|(s, _)| *s == self.serial)
            {
                clients.remove(&self.id);
            }
        }
    }
}

type Fetching = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

impl<C: Connect + Clone + Send + Sync + 'static> Service<Request<Full<Bytes>>> for PerRuntime<C> {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Fetching;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let pools = self.inner.clone();
        // The client is chosen where the request is polled: that runtime
        // runs any connection it opens.
        Box::pin(async move {
            check_destination(request.uri())?;
            let client = pools.client()?;
            Ok(client.request(request).await?)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(vars: &[(&str, &str)]) -> ProxyConnector {
        let proxies = proxies(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
        .unwrap();
        ProxyConnector {
            http: HttpConnector::new(),
            proxies,
        }
    }

    fn proxied(connector: &ProxyConnector, url: &str) -> bool {
        connector.proxy_for(&url.parse().unwrap()).is_some()
    }

    #[test]
    fn loopback_and_plain_http_destinations_are_never_proxied() {
        let every = connector(&[
            ("HTTPS_PROXY", "http://127.0.0.1:3128"),
            ("HTTP_PROXY", "http://127.0.0.1:3128"),
            ("ALL_PROXY", "http://127.0.0.1:3128"),
        ]);
        for url in [
            "http://127.0.0.1:8080/oauth2/token",
            "http://127.9.9.9/oauth2/token",
            "http://localhost:8080/oauth2/token",
            "http://LocalHost/oauth2/token",
            "http://[::1]:8080/oauth2/token",
            "https://127.0.0.1/oauth2/token",
            "https://localhost/oauth2/token",
            "https://[::1]/oauth2/token",
            "http://auth.example.com/oauth2/token",
            "HTTP://auth.example.com/oauth2/token",
        ] {
            assert!(!proxied(&every, url), "{url}");
        }
        assert!(proxied(&every, "https://auth.sinch.com/oauth2/token"));
        assert!(proxied(&every, "HTTPS://auth.sinch.com/oauth2/token"));
    }

    #[test]
    fn no_proxy_exempts_the_https_hosts_it_names() {
        let proxy = ("HTTPS_PROXY", "http://127.0.0.1:3128");
        for no in ["auth.sinch.com", ".sinch.com", "sinch.com", "*", "x.org, *"] {
            let connector = connector(&[proxy, ("NO_PROXY", no)]);
            assert!(!proxied(&connector, "https://auth.sinch.com/"), "{no}");
        }
        let connector = connector(&[proxy, ("no_proxy", "example.com,10.0.0.0/8")]);
        assert!(proxied(&connector, "https://auth.sinch.com/"));
        let only_all = self::connector(&[("all_proxy", "http://127.0.0.1:3128")]);
        assert!(proxied(&only_all, "https://auth.sinch.com/"));
    }

    fn pools() -> Arc<Pools<HttpConnector>> {
        let builder = Client::builder(hyper_util::rt::TokioExecutor::new());
        PerRuntime::new(builder, HttpConnector::new()).inner
    }

    fn runtimes_held(pools: &Pools<HttpConnector>) -> usize {
        pools.clients.lock().unwrap().len()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn each_runtime_has_its_own_pool_forgotten_when_it_shuts_down() {
        let pools = pools();
        let (a, b) = (runtime(), runtime());
        let in_a = a.block_on(async { pools.client().unwrap() });
        let again_in_a = a.block_on(async { pools.client().unwrap() });
        let in_b = b.block_on(async { pools.client().unwrap() });
        assert_eq!(runtimes_held(&pools), 2);
        drop((in_a, again_in_a, in_b));
        drop(a);
        assert_eq!(runtimes_held(&pools), 1);
        drop(b);
        assert_eq!(runtimes_held(&pools), 0);
        // A runtime per call, as a sync wrapper has it: nothing piles up.
        for _ in 0..20 {
            runtime().block_on(async { pools.client().unwrap() });
        }
        assert_eq!(runtimes_held(&pools), 0);
    }

    #[test]
    fn the_task_that_forgets_a_runtime_ends_with_the_client() {
        let runtime = runtime();
        let pools = pools();
        runtime.block_on(async { pools.client().unwrap() });
        assert_eq!(runtime.metrics().num_alive_tasks(), 1);
        drop(pools);
        runtime.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(runtime.metrics().num_alive_tasks(), 0);
    }

    #[test]
    fn outside_a_runtime_a_fetch_fails_instead_of_panicking() {
        assert!(pools().client().is_err());
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        for url in [
            "http://auth.example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
        ] {
            let error = check_destination(&url.parse().unwrap()).unwrap_err();
            assert!(
                matches!(
                    error,
                    ConfigError::InvalidUrl {
                        field: "token URL",
                        ..
                    }
                ),
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1/",
            "http://localhost/",
            "http://[::1]/",
            "https://auth.sinch.com/",
        ] {
            assert!(check_destination(&url.parse().unwrap()).is_ok(), "{url}");
        }
    }
}
