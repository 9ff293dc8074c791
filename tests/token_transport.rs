//! Token fetches through the HTTP stack users run: the default client's
//! proxy support (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`,
//! read through an explicit lookup, never the test process's environment;
//! loopback and plain http never through a proxy), and a reqwest client as
//! the token client.
//!
//! The proxy is a real one on loopback, started by each test: it answers
//! `CONNECT` by opening a tunnel (to loopback targets only) and forwards
//! absolute-form requests, recording what it was asked.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::TokenHttpClient;
use sinch_auth::{AccessKey, ConfigError, Scheme, SinchAuthLayer, StaticCredentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{ServiceBuilder, ServiceExt};

mod common;

/// Every test of this binary listens to its thread's logs, even those that
/// assert nothing about them. tracing caches, per call site and for the
/// whole process, whether any subscriber listens. A test thread without
/// one that reaches a call site first, while another test installs its
/// subscriber, can store "nobody listens" after that test's rebuild of the
/// cache, and the other test's logs then miss the line (this binary failed
/// 9 runs in 150 that way). With a subscriber on every thread, no thread
/// ever stores that.
fn listening() -> tracing::subscriber::DefaultGuard {
    common::LogBuffer::capture().1
}

/// What the proxy was asked, per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    proxy_authorization: Option<String>,
    /// For a tunnel to a host the proxy does not reach: the first bytes the
    /// client sent through it.
    tunnelled_prefix: Vec<u8>,
}

struct Proxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted, whatever came through them.
    connections: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let record = Arc::clone(&seen);
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(client, Arc::clone(&record)));
            }
        });
        Self {
            addr,
            seen,
            connections,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut client: TcpStream, record: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = client.read(&mut chunk).await.unwrap_or(0);
        if n == 0 || buf.len() > 16 * 1024 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let proxy_authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_owned());
    let mut seen = Seen {
        method: method.clone(),
        target: target.clone(),
        proxy_authorization,
        tunnelled_prefix: Vec::new(),
    };

    let authority = if method == "CONNECT" {
        target.clone()
    } else {
        // Absolute form: http://host:port/path
        let rest = target.strip_prefix("http://").unwrap_or("");
        rest.split('/').next().unwrap_or("").to_owned()
    };
    // Only loopback targets are ever dialled.
    let upstream = match authority.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => TcpStream::connect(addr).await.ok(),
        _ => None,
    };
    match (method.as_str(), upstream) {
        ("CONNECT", Some(mut upstream)) => {
            record.lock().unwrap().push(seen);
            let _ = client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await;
            let _ = upstream.write_all(&buf[head_end..]).await;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        ("CONNECT", None) => {
            // Open the tunnel, then keep what the client sends first.
            let _ = client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await;
            let mut prefix = buf[head_end..].to_vec();
            let mut chunk = [0u8; 2048];
            if let Ok(n) = client.read(&mut chunk).await {
                prefix.extend_from_slice(&chunk[..n]);
            }
            seen.tunnelled_prefix = prefix;
            record.lock().unwrap().push(seen);
        }
        (_, Some(mut upstream)) => {
            record.lock().unwrap().push(seen);
            let _ = upstream.write_all(&buf).await;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        (_, None) => {
            record.lock().unwrap().push(seen);
            let _ = client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    }
}

/// An environment of exactly these variables.
fn env(vars: &[(&str, &str)]) -> impl FnMut(&str) -> Option<OsString> + use<> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| OsString::from(v))
    }
}

fn key() -> AccessKey {
    AccessKey::new("project-1", "key-1", "key-secret-1").unwrap()
}

/// One API request through the layer (the API client itself goes direct);
/// the layer's only token fetch goes through `token_client`.
async fn fetch_through(token_client: TokenHttpClient, sinch: &SinchStandIn) -> u16 {
    fetch_from(&sinch.url(), token_client, sinch).await
}

/// [`fetch_through`] with the token host spelt `auth_host`.
async fn fetch_from(auth_host: &str, token_client: TokenHttpClient, sinch: &SinchStandIn) -> u16 {
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(auth_host)
        .token_client(token_client)
        .build()
        .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let request = http::Request::get(format!(
        "{}/v1/projects/project-1/activeNumbers",
        sinch.url()
    ))
    .body(Full::new(Bytes::new()))
    .unwrap();
    client.oneshot(request).await.unwrap().status().as_u16()
}

async fn stand_in() -> SinchStandIn {
    SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap()
}

fn hyper_client(vars: &[(&str, &str)]) -> TokenHttpClient {
    TokenHttpClient::hyper_builder()
        .proxy_from_lookup(env(vars))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_loopback_token_url_never_goes_through_a_proxy() {
    let _listening = listening();
    // Through a proxy, "loopback" would be the proxy's host, and the token
    // request's `Authorization: Basic` would cross it in clear.
    for (bind, host) in [
        ("127.0.0.1:0", "127.0.0.1"),
        ("127.0.0.1:0", "localhost"),
        ("[::1]:0", "[::1]"),
    ] {
        let sinch = SinchStandIn::builder()
            .access_key(&key())
            .bind(bind.parse().unwrap())
            .start()
            .await
            .unwrap();
        let proxy = Proxy::start().await;
        let client = hyper_client(&[
            ("HTTP_PROXY", &proxy.url()),
            ("HTTPS_PROXY", &proxy.url()),
            ("ALL_PROXY", &proxy.url()),
            ("NO_PROXY", "example.com"),
        ]);
        let auth_host = format!("http://{host}:{}", sinch.addr().port());
        assert_eq!(fetch_from(&auth_host, client, &sinch).await, 200, "{host}");
        assert_eq!(sinch.token_requests(), 1, "{host}");
        assert_eq!(proxy.connections(), 0, "{host}: {:?}", proxy.seen());
    }
}

#[tokio::test]
async fn a_plain_http_token_url_off_loopback_is_refused_before_anything_is_sent() {
    let _listening = listening();
    let proxy = Proxy::start().await;
    let through_proxy = hyper_client(&[("HTTP_PROXY", &proxy.url()), ("ALL_PROXY", &proxy.url())]);
    let direct = TokenHttpClient::hyper_builder().direct().build().unwrap();
    for client in [through_proxy, direct] {
        // base64("key-1:key-secret-1")
        let request = http::Request::post("http://token.example.invalid/oauth2/token")
            .header(
                http::header::AUTHORIZATION,
                "Basic a2V5LTE6a2V5LXNlY3JldC0x",
            )
            .body(Full::new(Bytes::from_static(
                b"grant_type=client_credentials",
            )))
            .unwrap();
        let error = client.oneshot(request).await.unwrap_err();
        assert!(
            matches!(
                error.downcast_ref::<ConfigError>(),
                Some(ConfigError::InvalidUrl {
                    field: "token URL",
                    ..
                })
            ),
            "{error:?}"
        );
        let text = format!("{error} {error:?}");
        assert!(!text.contains("a2V5LTE6"), "{text}");
        assert!(!text.contains("key-secret-1"), "{text}");
    }
    assert_eq!(proxy.connections(), 0, "{:?}", proxy.seen());
}

#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
#[tokio::test]
async fn every_proxy_variable_for_https_is_read() {
    let _listening = listening();
    for name in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        let proxy = Proxy::start().await;
        let client = hyper_client(&[(name, &proxy.url())]);
        // The proxy opens the tunnel and never dials the host.
        let request = http::Request::post("https://token.example.invalid/oauth2/token")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert!(client.oneshot(request).await.is_err(), "{name}");
        let seen = proxy.seen();
        assert_eq!(seen.len(), 1, "{name}: {seen:?}");
        assert_eq!(seen[0].method, "CONNECT", "{name}");
        assert_eq!(seen[0].target, "token.example.invalid:443", "{name}");
    }
}

#[test]
fn under_cgi_upper_case_http_proxy_is_not_read() {
    let _listening = listening();
    // httpoxy: a CGI program's HTTP_PROXY comes from the client's `Proxy:`
    // header. A malformed one is an error only when it is read.
    let malformed = ("HTTP_PROXY", "ftp://user:hunter2@127.0.0.1:21");
    let error = TokenHttpClient::hyper_builder()
        .proxy_from_lookup(env(&[malformed]))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::InvalidEnvVar {
                name: "HTTP_PROXY",
                ..
            }
        ),
        "{error:?}"
    );
    let under_cgi = TokenHttpClient::hyper_builder()
        .proxy_from_lookup(env(&[("REQUEST_METHOD", "POST"), malformed]))
        .build();
    assert!(under_cgi.is_ok());
}

#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
#[tokio::test]
async fn https_token_urls_tunnel_through_https_proxy_with_tls_end_to_end() {
    // (Every other test of this binary listens too: see `listening`.)
    let (logs, _guard) = common::LogBuffer::capture();

    let proxy = Proxy::start().await;
    let with_credentials = format!("http://proxy-user:p%40ss@{}", proxy.addr);
    let client = hyper_client(&[("HTTPS_PROXY", &with_credentials)]);
    // The proxy never dials this host: it opens the tunnel and keeps what
    // the client sends into it, which must be a TLS ClientHello for that host.
    let request = http::Request::post("https://token.example.invalid/oauth2/token")
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))
        .unwrap();
    let error = client.oneshot(request).await.unwrap_err();

    // The proxy's password is in no log line and no error.
    let logs = logs.text();
    assert!(logs.contains("CONNECT tunnel"), "{logs}");
    let error = format!("{error} {error:?}");
    for secret in ["p%40ss", "p@ss", "cHJveHktdXNlcjpwQHNz"] {
        assert!(!logs.contains(secret), "{logs}");
        assert!(!error.contains(secret), "{error}");
    }

    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, "token.example.invalid:443");
    // base64("proxy-user:p@ss"): the URL's userinfo, percent-decoded.
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic cHJveHktdXNlcjpwQHNz")
    );
    let hello = &seen[0].tunnelled_prefix;
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    assert!(
        hello.windows(21).any(|w| w == b"token.example.invalid"),
        "the ClientHello names the destination (SNI), not the proxy"
    );
}

#[tokio::test]
async fn https_token_urls_without_a_proxy_connect_directly() {
    let _listening = listening();
    // A loopback listener that keeps the first bytes of each connection.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut hello = vec![0u8; 1024];
        let n = socket.read(&mut hello).await.unwrap();
        hello.truncate(n);
        hello
    });
    let client = TokenHttpClient::hyper_builder().direct().build().unwrap();
    let request = http::Request::post(format!("https://localhost:{port}/oauth2/token"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(client.oneshot(request).await.is_err());

    if cfg!(any(feature = "rustls-ring", feature = "rustls-aws-lc")) {
        // TLS straight to the destination: a ClientHello arrives.
        let hello = first_bytes.await.unwrap();
        assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    } else {
        // No TLS compiled in: an https URL fails before any connection,
        // never in clear.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!first_bytes.is_finished());
        first_bytes.abort();
    }
}

#[test]
fn malformed_proxy_variables_are_errors_naming_the_variable_never_the_value() {
    let _listening = listening();
    for (name, value) in [
        ("HTTPS_PROXY", "socks5://user:hunter2@127.0.0.1:1080"),
        ("https_proxy", "https://user:hunter2@127.0.0.1:3128"),
        ("HTTP_PROXY", "http://user:hunter2@[::1"),
        ("ALL_PROXY", "ftp://user:hunter2@127.0.0.1:21"),
    ] {
        let error = TokenHttpClient::hyper_builder()
            .proxy_from_lookup(env(&[(name, value)]))
            .build()
            .unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidEnvVar { name: n, .. } if n == name),
            "{name}: {error:?}"
        );
        let text = format!("{error} {error:?}");
        assert!(text.contains(name), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt as _;
        let error = TokenHttpClient::hyper_builder()
            .proxy_from_lookup(|name| {
                (name == "NO_PROXY").then(|| OsString::from_vec(vec![0xff, b'x']))
            })
            .build()
            .unwrap_err();
        assert_eq!(
            error,
            ConfigError::InvalidEnvVar {
                name: "NO_PROXY",
                reason: "not valid UTF-8"
            }
        );
    }
}

#[tokio::test]
async fn direct_ignores_the_proxy_variables() {
    let _listening = listening();
    let (sinch, proxy) = (stand_in().await, Proxy::start().await);
    let client = TokenHttpClient::hyper_builder()
        .proxy_from_lookup(env(&[
            ("HTTP_PROXY", &proxy.url()),
            ("HTTPS_PROXY", "socks5://127.0.0.1:1080"),
        ]))
        .direct()
        .build()
        .unwrap();
    assert_eq!(fetch_through(client, &sinch).await, 200);
    assert_eq!(proxy.connections(), 0);
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn a_reqwest_client_carries_the_token_fetches() {
    let _listening = listening();
    let (sinch, proxy) = (stand_in().await, Proxy::start().await);
    // The proxy set on this reqwest client is how the test sees that the
    // fetch went through it. TLS from this crate: no process-wide provider.
    let reqwest = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.url()).unwrap())
        .tls_backend_preconfigured(sinch_auth::tls::client_config().unwrap())
        .build()
        .unwrap();

    assert_eq!(
        fetch_through(TokenHttpClient::from_reqwest(reqwest), &sinch).await,
        200
    );
    assert_eq!(sinch.token_requests(), 1);
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].target,
        format!("http://{}/oauth2/token", sinch.addr())
    );
}
