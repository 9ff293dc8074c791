//! Reaching Redis: one node over TCP or TLS, or a Redis Cluster.
//!
//! TLS goes through rustls with the crate's explicit crypto provider (see
//! [`crate::tls`]), never rustls' process-wide default, which any other crate in the process can
//! install or change. Errors are summarised by kind and code only: a Redis
//! error reply can quote the command's arguments back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisError, RedisFuture, Value,
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, RootCertStore};

use crate::error::ConfigError;

mod cluster;

use cluster::{Cluster, Node};

/// The TLS settings for `rediss://`.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// Trust anchors (PEM) replacing the public web roots.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// A complete client configuration of the caller's own.
    pub(crate) config: Option<Arc<ClientConfig>>,
}

impl TlsOptions {
    fn is_set(&self) -> bool {
        self.ca_pem.is_some() || self.config.is_some()
    }

    /// The configuration to use: the caller's, or one with the crate's provider.
    fn client_config(&self) -> Result<Arc<ClientConfig>, ConfigError> {
        match (&self.config, &self.ca_pem) {
            (Some(config), _) => Ok(config.clone()),
            (None, ca) => Ok(Arc::new(client_config(ca.as_deref())?)),
        }
    }
}

/// Where the store connects.
pub(crate) enum Target {
    /// One node, over TCP or (with `tls`) TLS.
    Node {
        info: ConnectionInfo,
        tls: Option<TlsTarget>,
    },
    /// A Redis Cluster, reached through any of its seed nodes, over TCP or TLS.
    Cluster(Cluster),
}

pub(crate) struct TlsTarget {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsTarget {
    /// `None` when `host` is no TLS server name (a DNS name or an IP address).
    fn new(config: Arc<ClientConfig>, host: &str) -> Option<Self> {
        Some(Self {
            config,
            server_name: server_name(host)?,
        })
    }
}

fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).ok()
}

/// A live connection, cheap to clone.
#[derive(Clone)]
pub(crate) enum Connection {
    Node(MultiplexedConnection),
    Cluster(Cluster),
}

const URL_FORM: &str = "expected redis://[user:password@]host[:port][/db] or rediss://…";
const CLUSTER_URL_FORM: &str =
    "expected redis://[user:password@]host[:port] (or rediss://…) for every node";

/// A `redis://` or `rediss://` URL read: its connection info (with a
/// `redis://` address) and whether it asks for TLS.
fn parse_url(url: &str) -> Option<(ConnectionInfo, bool)> {
    let (plain, secure) = match url.strip_prefix("rediss://") {
        Some(rest) => (format!("redis://{rest}"), true),
        None if url.starts_with("redis://") => (url.to_owned(), false),
        None => return None,
    };
    let info = plain.as_str().into_connection_info().ok()?;
    Some((info, secure))
}

const NO_FRAGMENT: &str =
    "a rediss:// URL takes no #fragment: certificate verification cannot be turned off";

impl Target {
    /// A node at `url` (`redis://` or `rediss://`).
    pub(crate) fn node(url: &str, tls: &TlsOptions) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidUrl {
            field: "redis url",
            reason,
        };
        let (info, secure) = parse_url(url).ok_or(invalid(URL_FORM))?;
        if secure && url.contains('#') {
            return Err(invalid(NO_FRAGMENT));
        }
        if !secure {
            if tls.is_set() {
                return Err(ConfigError::InvalidSetting {
                    setting: "tls",
                    reason: "TLS settings need a rediss:// URL",
                });
            }
            return Ok(Self::Node { info, tls: None });
        }
        let ConnectionAddr::Tcp(host, _) = info.addr() else {
            return Err(invalid(URL_FORM));
        };
        let config = tls.client_config()?;
        let tls = TlsTarget::new(config, host)
            .ok_or(invalid("the host is not a valid TLS server name"))?;
        Ok(Self::Node {
            info,
            tls: Some(tls),
        })
    }

    /// A cluster known by some of its nodes: `redis://` URLs, or
    /// `rediss://` URLs for TLS to every node (the cluster's own port
    /// announcements then name its TLS ports).
    pub(crate) fn cluster(
        urls: &[String],
        timeout: Duration,
        tls: &TlsOptions,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidUrl {
            field: "redis cluster urls",
            reason,
        };
        if urls.is_empty() {
            return Err(invalid("at least one node URL is needed"));
        }
        let mut seeds = Vec::with_capacity(urls.len());
        let mut settings: Option<RedisConnectionInfo> = None;
        let mut secure = None;
        for url in urls {
            let (info, tls_url) = parse_url(url).ok_or(invalid(CLUSTER_URL_FORM))?;
            if tls_url && url.contains('#') {
                return Err(invalid(NO_FRAGMENT));
            }
            if *secure.get_or_insert(tls_url) != tls_url {
                return Err(invalid(
                    "either every node URL is rediss:// or none is: a cluster is reached one way",
                ));
            }
            let ConnectionAddr::Tcp(host, port) = info.addr() else {
                return Err(invalid(CLUSTER_URL_FORM));
            };
            if tls_url && server_name(host).is_none() {
                return Err(invalid("a node's host is not a valid TLS server name"));
            }
            seeds.push(Node {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port: *port,
            });
            // Every node is asked with the first URL's user and password.
            settings.get_or_insert_with(|| info.redis_settings().clone());
        }
        let tls = if secure == Some(true) {
            Some(tls.client_config()?)
        } else {
            if tls.is_set() {
                return Err(ConfigError::InvalidSetting {
                    setting: "tls",
                    reason: "TLS settings need rediss:// URLs",
                });
            }
            None
        };
        let settings = settings.unwrap_or_default();
        Ok(Self::Cluster(Cluster::new(seeds, settings, tls, timeout)))
    }

    /// Sets the time limit of each network step a cluster takes on its own
    /// (a node takes it with every [`connect`](Self::connect)). Call before use.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        if let Self::Cluster(cluster) = self {
            *cluster = cluster.with_timeout(timeout);
        }
    }

    /// A node through a client configured by the caller.
    pub(crate) fn client(client: &Client) -> Self {
        Self::Node {
            info: client.get_connection_info().clone(),
            tls: None,
        }
    }

    /// Connects, within `timeout` for each network step.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Connection, RedisError> {
        match self {
            Self::Node { info, tls: None } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let client = Client::open(info.clone())?;
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Connection::Node(connection))
            }
            Self::Node {
                info,
                tls: Some(tls),
            } => {
                let ConnectionAddr::Tcp(host, port) = info.addr() else {
                    return Err(RedisError::from((
                        ErrorKind::InvalidClientConfig,
                        "not a TCP address",
                    )));
                };
                let connection =
                    open_node(host, *port, Some(tls), info.redis_settings(), timeout).await?;
                Ok(Connection::Node(connection))
            }
            // The cluster has its timeout from `Target::cluster`.
            Self::Cluster(cluster) => {
                cluster.connect().await?;
                Ok(Connection::Cluster(cluster.clone()))
            }
        }
    }
}

/// One node's connection over TCP, or TLS with `tls`'s own configuration
/// (never rustls' process default), set up with `settings` (user,
/// password, database).
async fn open_node(
    host: &str,
    port: u16,
    tls: Option<&TlsTarget>,
    settings: &RedisConnectionInfo,
    timeout: Duration,
) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let (connection, driver) = match tls {
        Some(tls) => {
            let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                .connect(tls.server_name.clone(), tcp)
                .await?;
            let (connection, driver) =
                MultiplexedConnection::new_with_config(settings, stream, config).await?;
            (connection, tokio::spawn(driver))
        }
        None => {
            let (connection, driver) =
                MultiplexedConnection::new_with_config(settings, tcp, config).await?;
            (connection, tokio::spawn(driver))
        }
    };
    // The driver ends when the connection's last handle is dropped.
    drop(driver);
    Ok(connection)
}

impl fmt::Display for Target {
    /// The server(s), never a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node { info, tls } => {
                let scheme = if tls.is_some() { "rediss" } else { "redis" };
                match info.addr() {
                    ConnectionAddr::Tcp(host, port) => write!(f, "{scheme}://{host}:{port}"),
                    other => write!(f, "{other}"),
                }
            }
            Self::Cluster(cluster) => {
                f.write_str(if cluster.is_tls() {
                    "TLS cluster "
                } else {
                    "cluster "
                })?;
                for (i, node) in cluster.seeds().iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma}{}:{}", node.host, node.port)?;
                }
                Ok(())
            }
        }
    }
}

/// A rustls client configuration with the crate's provider
/// ([`crate::tls::provider`]: ring, or aws-lc-rs with `rustls-aws-lc`), never
/// the process default; trusting `ca_pem` alone when given, the
/// public web roots otherwise.
pub(crate) fn client_config(ca_pem: Option<&[u8]>) -> Result<ClientConfig, ConfigError> {
    let invalid = |reason| ConfigError::InvalidSetting {
        setting: "ca_certificates_pem",
        reason,
    };
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|_| invalid("not a PEM certificate list"))?;
                roots
                    .add(cert)
                    .map_err(|_| invalid("a certificate is not a usable trust anchor"))?;
            }
            if roots.is_empty() {
                return Err(invalid("no certificate in the PEM text"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|_| invalid("the TLS provider supports no safe protocol version"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// What a Redis error may say in a log: its kind, its reply code when that
/// is a plain word, and the I/O error kind. Never its text, which for a
/// reply error can repeat the command's arguments.
pub(crate) struct ErrorSummary(String);

impl ErrorSummary {
    pub(crate) fn of(error: &RedisError) -> Self {
        let mut text = error.category().to_owned();
        if text.is_empty() {
            text.push_str("server error");
        }
        if let Some(code) = error.code() {
            let plain = !code.is_empty()
                && code.len() <= 24
                && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            text.push_str(if plain {
                ", code "
            } else {
                ", code (not shown)"
            });
            if plain {
                text.push_str(code);
            }
        }
        if let Some(io) =
            std::error::Error::source(error).and_then(|e| e.downcast_ref::<std::io::Error>())
        {
            text.push_str(&format!(", {:?}", io.kind()));
        }
        Self(text)
    }
}

impl fmt::Display for ErrorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ErrorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_summary_never_carries_the_errors_text() {
        let echoed = RedisError::from((
            ErrorKind::Client,
            "reply quoting the command",
            "EVALSHA abc 2 k1 k2 secret-token-value".to_owned(),
        ));
        assert!(echoed.to_string().contains("secret-token-value"));
        let summary = ErrorSummary::of(&echoed).to_string();
        assert_eq!(summary, "client error");
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused: secret-token-value",
        ));
        let summary = ErrorSummary::of(&io).to_string();
        assert!(summary.starts_with("I/O error"), "{summary}");
        assert!(!summary.contains("secret-token-value"), "{summary}");
    }

    #[test]
    fn tls_settings_are_checked_by_name() {
        let setting = |r: Result<Target, ConfigError>| match r {
            Err(ConfigError::InvalidSetting { setting, .. }) => setting,
            Err(other) => panic!("expected InvalidSetting, got {other:?}"),
            Ok(_) => panic!("expected an error"),
        };
        let bad_ca = TlsOptions {
            ca_pem: Some(b"not pem".to_vec()),
            config: None,
        };
        assert_eq!(
            setting(Target::node("rediss://127.0.0.1:6380/", &bad_ca)),
            "ca_certificates_pem"
        );
        assert_eq!(
            setting(Target::node("redis://127.0.0.1:6380/", &bad_ca)),
            "tls"
        );
        assert!(matches!(
            Target::node("rediss://127.0.0.1:6380/#insecure", &TlsOptions::default()),
            Err(ConfigError::InvalidUrl { .. })
        ));
        let target =
            Target::node("rediss://u:pw-77@127.0.0.1:6380/", &TlsOptions::default()).unwrap();
        assert_eq!(target.to_string(), "rediss://127.0.0.1:6380");
    }
}
