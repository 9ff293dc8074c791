//! [`SinchAuthBuilder`]: every option of a layer, collected as plain
//! settings; [`build`](SinchAuthBuilder::build) checks them and wires the
//! authorizer (routing here, tokens in [`token`](crate::token)).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::authorizer::{Authorizer, Options};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::host::HostPolicy;
use crate::routing::{Route, Router, Routing};
use crate::token::{
    Lifecycle, RefreshConfig, TokenHttpClient, TokenSettings, TokenSource, TokenStore,
};
use crate::{CredentialProvider, Scheme, SinchAuthLayer};

/// Configures a [`SinchAuthLayer`].
///
/// ```
/// use std::time::Duration;
/// use sinch_auth::token::RefreshConfig;
/// use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
///
/// let key = AccessKey::new("project", "key-id", "key-secret")?;
/// let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
///     .scheme(Scheme::OAuth2)
///     .auth_host("http://127.0.0.1:8080")
///     .refresh(RefreshConfig::default().wait_timeout(Duration::from_secs(5)))
///     .allow_domain("sinch-proxy.example.com")
///     .build()?;
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[must_use]
pub struct SinchAuthBuilder {
    provider: Arc<dyn CredentialProvider>,
    routing: Routing,
    routes: Vec<Route>,
    policy: HostPolicy,
    reject_disallowed: bool,
    options: Options,
    clock: Arc<dyn Clock>,
    tokens: TokenSettings,
    /// Checked at `build`, against the policy every `allow_domain` made.
    auth_host: Option<String>,
    error: Option<ConfigError>,
}

impl fmt::Debug for SinchAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchAuthBuilder")
            .field("routing", &self.routing)
            .field("routes", &self.routes)
            .field("policy", &self.policy)
            .field("options", &self.options)
            .field("tokens", &self.tokens)
            .field(
                "auth_host",
                &self.auth_host.as_ref().map(|host| match host.parse() {
                    Ok(url) => crate::host::without_userinfo(&url),
                    Err(_) => "[unparsable]".to_owned(),
                }),
            )
            .finish_non_exhaustive()
    }
}

impl SinchAuthBuilder {
    pub(crate) fn new(provider: Arc<dyn CredentialProvider>) -> Self {
        Self {
            provider,
            routing: Routing::ByHost,
            routes: Vec::new(),
            policy: HostPolicy::default(),
            reject_disallowed: false,
            options: Options {
                overwrite: false,
                resend_on_expired: true,
                max_body_bytes: 10 * 1024 * 1024,
            },
            clock: Arc::new(SystemClock),
            tokens: TokenSettings::default(),
            auth_host: None,
            error: None,
        }
    }

    fn fail(mut self, error: ConfigError) -> Self {
        self.error.get_or_insert(error);
        self
    }

    /// Applies one scheme to every allowed request.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.routing = Routing::Fixed(scheme);
        self
    }

    /// Chooses the scheme from the host (the default; see [`Scheme::for_host`]).
    pub fn by_host(mut self) -> Self {
        self.routing = Routing::ByHost;
        self
    }

    /// Requests to `authority` (`host` or `host:port`) use `scheme`, whatever
    /// the routing. Useful for proxies and local stand-ins.
    pub fn route(mut self, authority: &str, scheme: Scheme) -> Self {
        let parsed = authority.parse::<http::uri::Authority>();
        match parsed {
            Ok(a) if !authority.contains('@') => {
                self.routes.push(Route {
                    host: a.host().to_owned(),
                    port: a.port_u16(),
                    scheme,
                });
                self
            }
            _ => self.fail(ConfigError::InvalidSetting {
                setting: "route",
                reason: "must be host or host:port",
            }),
        }
    }

    /// Also sends credentials to `domain` and its subdomains, over https.
    pub fn allow_domain(mut self, domain: &str) -> Self {
        match self.policy.allow_domain(domain) {
            Ok(()) => self,
            Err(e) => self.fail(e),
        }
    }

    /// Whether loopback hosts (over http or https) get credentials (default: yes).
    pub fn allow_loopback(mut self, allowed: bool) -> Self {
        self.policy.set_loopback(allowed);
        self
    }

    /// Fails requests to hosts that may not receive credentials with
    /// [`AuthError::HostNotAllowed`](crate::AuthError::HostNotAllowed) instead of sending them untouched (the default).
    pub fn reject_disallowed_hosts(mut self, reject: bool) -> Self {
        self.reject_disallowed = reject;
        self
    }

    /// Replaces an `Authorization` header the request already has (default:
    /// leave such requests alone).
    pub fn overwrite_authorization(mut self, overwrite: bool) -> Self {
        self.options.overwrite = overwrite;
        self
    }

    /// Whether a 401 with `www-authenticate` mentioning `expired` clears the
    /// token and resends the request once with a new one (default: yes; protocol notes §2).
    /// The resend needs a copy of the request head and a replayable body (see
    /// [`AuthBody`](crate::AuthBody)); turning it off saves that copy.
    pub fn resend_on_expired(mut self, resend: bool) -> Self {
        self.options.resend_on_expired = resend;
        self
    }

    /// The largest body the application scheme reads to sign (default 10 MiB).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.options.max_body_bytes = limit;
        self
    }

    /// Reads wall-clock time from `clock` (timestamps, JWT `iat`, `Retry-After` dates).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Fetches OAuth2 tokens from this host instead of `https://auth.sinch.com`.
    /// The host follows the same rule as API hosts
    /// ([`check_token_url`](crate::host::check_token_url): `https` to a Sinch
    /// host or an [allowed domain](Self::allow_domain), whichever is called
    /// first, or loopback), checked by [`build`](Self::build). Configures the
    /// built-in OAuth2 fetch: with a [`token_source`](Self::token_source) as
    /// well, `build` fails.
    pub fn auth_host(mut self, host: &str) -> Self {
        self.auth_host = Some(host.to_owned());
        self
    }

    /// Sends token requests through your own HTTP client. Configures the
    /// built-in OAuth2 fetch: with a [`token_source`](Self::token_source) as
    /// well, [`build`](Self::build) fails.
    pub fn token_client(mut self, client: TokenHttpClient) -> Self {
        self.tokens.client(client);
        self
    }

    /// Replaces the OAuth2 fetch with your own source for [`Scheme::OAuth2`]
    /// (the scheme then needs no access key). An [`OAuth2Source`](crate::token::OAuth2Source)
    /// given here has checked its token URL itself, against its own
    /// [`allow_domain`](crate::token::OAuth2Source::allow_domain), not this
    /// builder's.
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.tokens.source = Some(Arc::new(source));
        self
    }

    /// Shares OAuth2 tokens with other processes through a store (for
    /// example Redis, feature `redis`); the in-process cache stays in front.
    /// A custom [`token_source`](Self::token_source) takes part only if it
    /// names a [`share_key`](TokenSource::share_key).
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.tokens.store = Some(Arc::new(store));
        self
    }

    /// Lifetime of self-signed JWTs (default one hour).
    pub fn jwt_lifetime(mut self, lifetime: Duration) -> Self {
        self.tokens.jwt_lifetime = lifetime;
        self
    }

    /// Refresh timing, waits and backoff.
    pub fn refresh(mut self, config: RefreshConfig) -> Self {
        self.tokens.refresh = config;
        self
    }

    /// Builds the layer. Fails if an option was invalid, if a fixed scheme
    /// needs a credential the provider's current credentials lack, or if a
    /// setting would have no effect (`auth_host` or `token_client` with a
    /// custom `token_source`).
    ///
    /// No runtime is needed here: the token refresher starts on the first
    /// request, on that request's tokio runtime.
    pub fn build(mut self) -> Result<SinchAuthLayer, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        // The token URL is checked where it is named, by the OAuth2 fetch,
        // against this layer's policy.
        self.tokens.oauth2 = self.tokens.oauth2.with_policy(self.policy.clone());
        if let Some(host) = &self.auth_host {
            self.tokens.auth_host(host)?;
        }
        // Credentials the fixed schemes need.
        let credentials = self.provider.credentials();
        let custom_source = self.tokens.source.is_some();
        let mut schemes: Vec<Scheme> = self.routes.iter().map(|r| r.scheme).collect();
        if let Routing::Fixed(scheme) = self.routing {
            schemes.push(scheme);
        }
        for &scheme in &schemes {
            let exempt = scheme == Scheme::OAuth2 && custom_source;
            if !exempt && !credentials.has(scheme.needs()) {
                return Err(ConfigError::MissingCredential {
                    scheme: scheme.name(),
                    needs: scheme.needs(),
                });
            }
        }
        let by_host = self.routing == Routing::ByHost;
        let tokens = Lifecycle::wire(
            self.tokens,
            &self.provider,
            &self.clock,
            by_host || schemes.contains(&Scheme::OAuth2),
            schemes.contains(&Scheme::SelfSignedJwt),
        )?;
        let router = Router::new(
            self.policy,
            self.routing,
            self.routes,
            self.reject_disallowed,
        );
        Ok(SinchAuthLayer::from_authorizer(Authorizer::new(
            self.provider,
            router,
            self.options,
            self.clock,
            tokens,
        )))
    }
}
