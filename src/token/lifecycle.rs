//! The token lifecycle of one layer, wired from its settings: which caches
//! exist, and what feeds each one (the OAuth2 fetch or a custom source,
//! behind a store if one is set; the self-signed JWT minter).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{
    OAuth2Source, RefreshConfig, SelfSignedJwt, Stored, TokenCache, TokenHttpClient, TokenSlot,
    TokenSource, TokenStore,
};
use crate::CredentialProvider;
use crate::clock::Clock;
use crate::error::ConfigError;

/// What the builder collected about tokens: plain settings, nothing running.
#[derive(Clone)]
pub(crate) struct TokenSettings {
    /// The OAuth2 fetch as configured (token URL, client).
    pub(crate) oauth2: OAuth2Source,
    /// The OAuth2 fetch settings given explicitly (`auth_host`, `token_client`).
    pub(crate) oauth2_settings: Vec<&'static str>,
    pub(crate) source: Option<Arc<dyn TokenSource>>,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    pub(crate) jwt_lifetime: Duration,
    pub(crate) refresh: RefreshConfig,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            oauth2: OAuth2Source::new(),
            oauth2_settings: Vec::new(),
            source: None,
            store: None,
            jwt_lifetime: SelfSignedJwt::DEFAULT_LIFETIME,
            refresh: RefreshConfig::default(),
        }
    }
}

impl fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSettings")
            .field("oauth2", &self.oauth2)
            .field("custom_source", &self.source.as_ref().map(|s| s.name()))
            .field("store", &self.store.is_some())
            .field("jwt_lifetime", &self.jwt_lifetime)
            .field("refresh", &self.refresh)
            .finish()
    }
}

impl TokenSettings {
    /// Sets the OAuth2 token host.
    pub(crate) fn auth_host(&mut self, host: &str) -> Result<(), ConfigError> {
        self.oauth2 = self.oauth2.clone().auth_host(host)?;
        self.oauth2_settings.push("auth_host");
        Ok(())
    }

    /// Sets the OAuth2 fetch's HTTP client.
    pub(crate) fn client(&mut self, client: TokenHttpClient) {
        self.oauth2 = self.oauth2.clone().client(client);
        self.oauth2_settings.push("token_client");
    }
}

/// The token caches of one layer.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    oauth2: Option<TokenCache>,
    jwt: Option<TokenCache>,
}

impl Lifecycle {
    /// Wires the caches the layer's schemes need. A setting that would have
    /// no effect is an error, not silently dropped: `auth_host` and
    /// `token_client` configure the OAuth2 fetch, which a custom
    /// `token_source` replaces.
    pub(crate) fn wire(
        settings: TokenSettings,
        provider: &Arc<dyn CredentialProvider>,
        clock: &Arc<dyn Clock>,
        oauth2: bool,
        jwt: bool,
    ) -> Result<Self, ConfigError> {
        if let (Some(_), Some(&setting)) = (&settings.source, settings.oauth2_settings.first()) {
            return Err(ConfigError::InvalidSetting {
                setting,
                reason: "configures the OAuth2 fetch, which the custom token_source replaces",
            });
        }
        let cache = |source: Arc<dyn TokenSource>| {
            TokenCache::new(
                source,
                provider.clone(),
                clock.clone(),
                settings.refresh.clone(),
            )
        };
        let oauth2 = oauth2.then(|| {
            let source = settings
                .source
                .clone()
                .unwrap_or_else(|| Arc::new(settings.oauth2.clone().with_clock(clock.clone())));
            match &settings.store {
                Some(store) => cache(Arc::new(Stored::new(
                    store.clone(),
                    source,
                    clock.clone(),
                    settings.refresh.fetch_timeout_setting(),
                ))),
                None => cache(source),
            }
        });
        let jwt = jwt.then(|| {
            cache(Arc::new(
                SelfSignedJwt::new(settings.jwt_lifetime).with_clock(clock.clone()),
            ))
        });
        Ok(Self { oauth2, jwt })
    }

    /// The cache for a slot, if the layer has one.
    pub(crate) fn cache(&self, slot: TokenSlot) -> Option<&TokenCache> {
        match slot {
            TokenSlot::OAuth2 => self.oauth2.as_ref(),
            TokenSlot::Jwt => self.jwt.as_ref(),
        }
    }
}
