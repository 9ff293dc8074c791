//! Hosts: which may receive credentials, which Sinch API a host serves, and
//! the regional base URLs.
//!
//! ```
//! use sinch_auth::host::{Region, SinchApi, VoiceRegion};
//!
//! assert_eq!(Region::Us.sms_url(), "https://us.sms.api.sinch.com");
//! assert_eq!(Region::Eu.sms_project_url(), Some("https://zt.eu.sms.api.sinch.com"));
//! // SMS with project credentials (OAuth2) is served in the US and the EU only.
//! assert_eq!(Region::Au.sms_project_url(), None);
//! assert_eq!(Region::Br.conversation_url(), Some("https://br.conversation.api.sinch.com"));
//! assert_eq!(VoiceRegion::Euc1.url(), "https://calling-euc1.api.sinch.com");
//! assert_eq!(SinchApi::from_host("calling.api.sinch.com"), Some(SinchApi::Voice));
//! ```
//!
//! [`Regions`] holds one region per API, as Sinch's SDKs configure them
//! (`SINCH_SMS_REGION`, `SINCH_CONVERSATION_REGION`, `SINCH_VOICE_REGION`),
//! and answers each API's base URL or a [`RegionError`] saying why not.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// An SMS / Conversation region (protocol notes §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Region {
    /// United States.
    Us,
    /// Europe.
    Eu,
    /// Australia (SMS only).
    Au,
    /// Brazil.
    Br,
    /// Canada (SMS only).
    Ca,
}

impl Region {
    /// Every region, for iterating (for example, to allow or probe each one).
    pub const ALL: [Region; 5] = [Self::Us, Self::Eu, Self::Au, Self::Br, Self::Ca];

    /// The region's code as Sinch writes it in host names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
            Self::Au => "au",
            Self::Br => "br",
            Self::Ca => "ca",
        }
    }

    /// SMS with a service plan: `https://{region}.sms.api.sinch.com`.
    pub fn sms_url(self) -> &'static str {
        match self {
            Self::Us => "https://us.sms.api.sinch.com",
            Self::Eu => "https://eu.sms.api.sinch.com",
            Self::Au => "https://au.sms.api.sinch.com",
            Self::Br => "https://br.sms.api.sinch.com",
            Self::Ca => "https://ca.sms.api.sinch.com",
        }
    }

    /// SMS with project credentials (OAuth2): `https://zt.{us,eu}.sms.api.sinch.com`
    /// (`None` elsewhere: Sinch serves project credentials for SMS in the US
    /// and the EU only; other regions take a service plan, see [`sms_url`](Self::sms_url)).
    pub fn sms_project_url(self) -> Option<&'static str> {
        match self {
            Self::Us => Some("https://zt.us.sms.api.sinch.com"),
            Self::Eu => Some("https://zt.eu.sms.api.sinch.com"),
            Self::Au | Self::Br | Self::Ca => None,
        }
    }

    /// Conversation: `https://{us,eu,br}.conversation.api.sinch.com` (`None` elsewhere).
    pub fn conversation_url(self) -> Option<&'static str> {
        match self {
            Self::Us => Some("https://us.conversation.api.sinch.com"),
            Self::Eu => Some("https://eu.conversation.api.sinch.com"),
            Self::Br => Some("https://br.conversation.api.sinch.com"),
            Self::Au | Self::Ca => None,
        }
    }

    /// Conversation templates: `https://{us,eu,br}.template.api.sinch.com` (`None` elsewhere).
    pub fn template_url(self) -> Option<&'static str> {
        match self {
            Self::Us => Some("https://us.template.api.sinch.com"),
            Self::Eu => Some("https://eu.template.api.sinch.com"),
            Self::Br => Some("https://br.template.api.sinch.com"),
            Self::Au | Self::Ca => None,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value is not a region Sinch serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown Sinch region (expected us, eu, au, br or ca)")]
pub struct UnknownRegion;

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "us" => Ok(Self::Us),
            "eu" => Ok(Self::Eu),
            "au" => Ok(Self::Au),
            "br" => Ok(Self::Br),
            "ca" => Ok(Self::Ca),
            _ => Err(UnknownRegion),
        }
    }
}

/// A Voice (calling) region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VoiceRegion {
    /// The global endpoint, `calling.api.sinch.com`. The default.
    #[default]
    Global,
    /// Europe (central).
    Euc1,
    /// United States (east).
    Use1,
    /// South America (east).
    Sae1,
    /// Asia Pacific (south-east 1).
    Apse1,
    /// Asia Pacific (south-east 2).
    Apse2,
}

impl VoiceRegion {
    /// The region's code: `global`, or the suffix of its host (`euc1`, `use1`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Euc1 => "euc1",
            Self::Use1 => "use1",
            Self::Sae1 => "sae1",
            Self::Apse1 => "apse1",
            Self::Apse2 => "apse2",
        }
    }

    /// Every Voice region, the global endpoint first.
    pub const ALL: [VoiceRegion; 6] = [
        Self::Global,
        Self::Euc1,
        Self::Use1,
        Self::Sae1,
        Self::Apse1,
        Self::Apse2,
    ];

    /// The base URL.
    pub fn url(self) -> &'static str {
        match self {
            Self::Global => "https://calling.api.sinch.com",
            Self::Euc1 => "https://calling-euc1.api.sinch.com",
            Self::Use1 => "https://calling-use1.api.sinch.com",
            Self::Sae1 => "https://calling-sae1.api.sinch.com",
            Self::Apse1 => "https://calling-apse1.api.sinch.com",
            Self::Apse2 => "https://calling-apse2.api.sinch.com",
        }
    }
}

impl fmt::Display for VoiceRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value is not a Voice region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown Voice region (expected global, euc1, use1, sae1, apse1 or apse2, \
     or europe, north-america, south-america, south-east-asia1, south-east-asia2)"
)]
pub struct UnknownVoiceRegion;

impl FromStr for VoiceRegion {
    type Err = UnknownVoiceRegion;

    /// Takes the host codes the Node SDK uses (`euc1`, …; empty for global)
    /// and the names the Java SDK uses (`europe`, `north-america`, …).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "global" => Ok(Self::Global),
            "euc1" | "europe" => Ok(Self::Euc1),
            "use1" | "north-america" => Ok(Self::Use1),
            "sae1" | "south-america" => Ok(Self::Sae1),
            "apse1" | "south-east-asia1" => Ok(Self::Apse1),
            "apse2" | "south-east-asia2" => Ok(Self::Apse2),
            _ => Err(UnknownVoiceRegion),
        }
    }
}

/// The Sinch APIs whose base URL depends on a region, for [`RegionError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegionalApi {
    /// SMS with a service plan: every [`Region`].
    SmsServicePlan,
    /// SMS with project credentials (OAuth2): US and EU.
    SmsProject,
    /// Conversation and its Templates: US, EU and Brazil.
    Conversation,
}

impl RegionalApi {
    /// The regions this API is served in.
    pub fn served(self) -> &'static [Region] {
        match self {
            Self::SmsServicePlan => &Region::ALL,
            Self::SmsProject => &[Region::Us, Region::Eu],
            Self::Conversation => &[Region::Us, Region::Eu, Region::Br],
        }
    }

    /// The variable [`Regions::from_env`] reads this API's region from.
    pub fn variable(self) -> &'static str {
        match self {
            Self::SmsServicePlan | Self::SmsProject => "SINCH_SMS_REGION",
            Self::Conversation => "SINCH_CONVERSATION_REGION",
        }
    }
}

impl fmt::Display for RegionalApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SmsServicePlan => "SMS with a service plan",
            Self::SmsProject => "SMS with project credentials (OAuth2)",
            Self::Conversation => "Conversation",
        })
    }
}

/// Why [`Regions`] cannot give an API's base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// No region is configured for the API, and it has no default.
    #[error("no region configured for {api}: set {} (or SINCH_REGION)", api.variable())]
    NotSet {
        /// The API.
        api: RegionalApi,
    },
    /// The API is not served in the configured region.
    #[error("{api} is not served in region {region}")]
    NotServed {
        /// The API.
        api: RegionalApi,
        /// The region that was configured.
        region: Region,
    },
    /// SMS needs a service plan or a project access key, and the
    /// credentials hold neither.
    #[error("SMS needs a service plan or a project access key")]
    NoSmsCredentials,
}

/// The region of each Sinch API a deployment uses.
///
/// SMS and Conversation have no default (as in Sinch's Python and Java SDKs;
/// the Node SDK's `us` default is deprecated): a URL asked for without a
/// region is a [`RegionError::NotSet`] naming the variable to set. Voice
/// defaults to the global endpoint, as in every SDK. Fax, Numbers, Number
/// Lookup and Verification are global.
///
/// ```
/// use sinch_auth::host::{Region, RegionError, RegionalApi, Regions, VoiceRegion};
/// use sinch_auth::{AccessKey, Credentials};
///
/// let regions = Regions::new().sms(Region::Au).conversation(Region::Eu);
/// assert_eq!(regions.conversation_url(), Ok("https://eu.conversation.api.sinch.com"));
/// assert_eq!(regions.voice_url(), VoiceRegion::Global.url());
///
/// // Project credentials cannot use SMS in Australia: a service plan can.
/// let project = Credentials::from(AccessKey::new("p", "k", "s")?);
/// assert_eq!(
///     regions.sms_url(&project),
///     Err(RegionError::NotServed { api: RegionalApi::SmsProject, region: Region::Au }),
/// );
/// assert_eq!(regions.sms_service_plan_url(), Ok("https://au.sms.api.sinch.com"));
/// # Ok::<(), sinch_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regions {
    sms: Option<Region>,
    conversation: Option<Region>,
    voice: VoiceRegion,
}

impl Regions {
    /// No SMS or Conversation region; Voice global.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `SINCH_SMS_REGION`, `SINCH_CONVERSATION_REGION` and
    /// `SINCH_VOICE_REGION`, with `SINCH_REGION` as the fallback for SMS and
    /// Conversation. A malformed value is a [`ConfigError`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// As [`from_env`](Self::from_env), through `lookup` instead of the
    /// process environment.
    ///
    /// ```
    /// use sinch_auth::host::{Region, Regions, VoiceRegion};
    ///
    /// let vars = [("SINCH_REGION", "eu"), ("SINCH_VOICE_REGION", "euc1")];
    /// let regions = Regions::from_lookup(|name| {
    ///     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into())
    /// })?;
    /// assert_eq!(regions.sms_region(), Some(Region::Eu));
    /// assert_eq!(regions.conversation_region(), Some(Region::Eu));
    /// assert_eq!(regions.voice_region(), VoiceRegion::Euc1);
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn from_lookup(
        lookup: impl FnMut(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, ConfigError> {
        crate::credentials::read_regions(lookup)
    }

    /// Sets the SMS region.
    #[must_use]
    pub fn sms(mut self, region: Region) -> Self {
        self.sms = Some(region);
        self
    }

    /// Sets the Conversation (and Templates) region.
    #[must_use]
    pub fn conversation(mut self, region: Region) -> Self {
        self.conversation = Some(region);
        self
    }

    /// Sets the Voice region.
    #[must_use]
    pub fn voice(mut self, region: VoiceRegion) -> Self {
        self.voice = region;
        self
    }

    /// The SMS region, if one is configured.
    pub fn sms_region(&self) -> Option<Region> {
        self.sms
    }

    /// The Conversation region, if one is configured.
    pub fn conversation_region(&self) -> Option<Region> {
        self.conversation
    }

    /// The Voice region.
    pub fn voice_region(&self) -> VoiceRegion {
        self.voice
    }

    /// The SMS base URL for these credentials, as Sinch's SDKs choose it:
    /// a service plan's host when the credentials hold a service plan (it
    /// wins when both are present), else the project host for an access key.
    pub fn sms_url(&self, credentials: &crate::Credentials) -> Result<&'static str, RegionError> {
        if credentials.service_plan().is_some() {
            self.sms_service_plan_url()
        } else if credentials.access_key().is_some() {
            self.sms_project_url()
        } else {
            Err(RegionError::NoSmsCredentials)
        }
    }

    /// SMS with a service plan: `https://{region}.sms.api.sinch.com`.
    pub fn sms_service_plan_url(&self) -> Result<&'static str, RegionError> {
        let api = RegionalApi::SmsServicePlan;
        Ok(self.sms.ok_or(RegionError::NotSet { api })?.sms_url())
    }

    /// SMS with project credentials: `https://zt.{us,eu}.sms.api.sinch.com`.
    pub fn sms_project_url(&self) -> Result<&'static str, RegionError> {
        let api = RegionalApi::SmsProject;
        let region = self.sms.ok_or(RegionError::NotSet { api })?;
        region
            .sms_project_url()
            .ok_or(RegionError::NotServed { api, region })
    }

    /// Conversation: `https://{us,eu,br}.conversation.api.sinch.com`.
    pub fn conversation_url(&self) -> Result<&'static str, RegionError> {
        let api = RegionalApi::Conversation;
        let region = self.conversation.ok_or(RegionError::NotSet { api })?;
        region
            .conversation_url()
            .ok_or(RegionError::NotServed { api, region })
    }

    /// Conversation templates: `https://{us,eu,br}.template.api.sinch.com`.
    pub fn template_url(&self) -> Result<&'static str, RegionError> {
        let api = RegionalApi::Conversation;
        let region = self.conversation.ok_or(RegionError::NotSet { api })?;
        region
            .template_url()
            .ok_or(RegionError::NotServed { api, region })
    }

    /// Voice: the configured region's calling host (global by default).
    pub fn voice_url(&self) -> &'static str {
        self.voice.url()
    }

    /// Fax: `https://fax.api.sinch.com` (one global endpoint; Sinch's Node
    /// SDK ignores its old Fax region setting).
    pub fn fax_url(&self) -> &'static str {
        "https://fax.api.sinch.com"
    }
}

/// The Sinch API a host serves, as far as authentication is concerned (protocol notes §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SinchApi {
    /// `{region}.conversation.api.sinch.com`.
    Conversation,
    /// `{region}.template.api.sinch.com`.
    Templates,
    /// `{region}.sms.api.sinch.com`: service plan if configured, else OAuth2.
    Sms,
    /// `zt.{region}.sms.api.sinch.com`: project-scoped SMS, OAuth2.
    SmsProject,
    /// `numbers.api.sinch.com`.
    Numbers,
    /// `lookup.api.sinch.com`.
    NumberLookup,
    /// `fax.api.sinch.com`.
    Fax,
    /// `elastic-trunking.api.sinch.com`.
    ElasticTrunking,
    /// `calling.api.sinch.com`, `calling-{region}.api.sinch.com`, `callingapi.sinch.com`.
    Voice,
    /// `verification.api.sinch.com`.
    Verification,
    /// `auth.sinch.com`, the token endpoint: never given API credentials.
    Auth,
    /// Another `*.api.sinch.com` host: treated as an OAuth2 API.
    OtherApi,
}

impl SinchApi {
    /// Classifies a host name (case-insensitive, trailing dot ignored).
    /// `None` for hosts that are not Sinch API hosts.
    pub fn from_host(host: &str) -> Option<Self> {
        let host = normalize_host(host);
        let host = host.as_ref();
        if host == "auth.sinch.com" {
            return Some(Self::Auth);
        }
        if host == "callingapi.sinch.com" {
            return Some(Self::Voice);
        }
        let sub = host.strip_suffix(".api.sinch.com")?;
        let api = match sub {
            "numbers" => Self::Numbers,
            "lookup" => Self::NumberLookup,
            "fax" => Self::Fax,
            "elastic-trunking" => Self::ElasticTrunking,
            "verification" => Self::Verification,
            "calling" => Self::Voice,
            _ => {
                if let Some(region) = sub.strip_prefix("calling-") {
                    if matches!(region, "euc1" | "use1" | "sae1" | "apse1" | "apse2") {
                        return Some(Self::Voice);
                    }
                    return Some(Self::OtherApi);
                }
                match sub.split_once('.') {
                    Some((r, "conversation")) if is_region(r) => Self::Conversation,
                    Some((r, "template")) if is_region(r) => Self::Templates,
                    Some((r, "sms")) if is_region(r) => Self::Sms,
                    Some(("zt", rest)) => match rest.split_once('.') {
                        Some((r, "sms")) if is_region(r) => Self::SmsProject,
                        _ => Self::OtherApi,
                    },
                    _ => Self::OtherApi,
                }
            }
        };
        Some(api)
    }
}

fn is_region(s: &str) -> bool {
    s.parse::<Region>().is_ok()
}

fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// Which hosts may receive credentials.
///
/// Credentials go only to `https` URIs whose host is an allowed domain or a
/// subdomain of one (default: `sinch.com`), and to loopback hosts
/// (`127.0.0.0/8`, `::1`, `localhost`) over `http` or `https`, so tests and
/// local stand-ins work. Everything else is left untouched (or rejected, if
/// the layer is configured to).
#[derive(Debug, Clone)]
pub struct HostPolicy {
    domains: Vec<String>,
    loopback: bool,
}

impl Default for HostPolicy {
    fn default() -> Self {
        Self {
            domains: vec!["sinch.com".to_owned()],
            loopback: true,
        }
    }
}

impl HostPolicy {
    /// Also allows `domain` and its subdomains (over https).
    pub fn allow_domain(&mut self, domain: &str) -> Result<(), ConfigError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty()
            || domain.starts_with('.')
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(ConfigError::InvalidSetting {
                setting: "allowed domain",
                reason: "must be a host name such as example.com",
            });
        }
        if !self.domains.contains(&domain) {
            self.domains.push(domain);
        }
        Ok(())
    }

    /// Whether loopback hosts may receive credentials (default: yes).
    pub fn set_loopback(&mut self, allowed: bool) {
        self.loopback = allowed;
    }

    /// Whether a request to `scheme://host` may carry credentials.
    pub fn allows(&self, scheme: Option<&str>, host: &str) -> bool {
        let https = scheme.is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let http = scheme.is_some_and(|s| s.eq_ignore_ascii_case("http"));
        if self.loopback && (https || http) && is_loopback(host) {
            return true;
        }
        if !https {
            return false;
        }
        let host = normalize_host(host);
        self.domains.iter().any(|d| {
            host.as_ref() == d
                || (host.len() > d.len()
                    && host.ends_with(d.as_str())
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }
}

/// Whether the OAuth2 token endpoint `url` may receive the key id and key
/// secret: by the same [`HostPolicy`] as API requests (`https` to a Sinch
/// host or a domain [`allow_domain`](HostPolicy::allow_domain) added,
/// loopback over `http` or `https` unless turned off), and never with
/// userinfo (`user:password@`) in the authority, which would hide the real
/// host from a reader and ship a second credential.
///
/// ```
/// use sinch_auth::host::{HostPolicy, check_token_url};
///
/// let policy = HostPolicy::default();
/// assert!(check_token_url(&policy, &"https://auth.sinch.com/oauth2/token".parse()?).is_ok());
/// assert!(check_token_url(&policy, &"https://auth.sinch.com.evil.example/oauth2/token".parse()?).is_err());
/// # Ok::<(), http::uri::InvalidUri>(())
/// ```
///
/// # Errors
///
/// [`ConfigError::InvalidUrl`] for the field `auth host`, saying which rule
/// the URL breaks (never its userinfo).
pub fn check_token_url(policy: &HostPolicy, url: &http::Uri) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::InvalidUrl {
        field: "auth host",
        reason,
    };
    let authority = url.authority().ok_or(invalid("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("must not carry userinfo (user:password@)"));
    }
    if !policy.allows(url.scheme_str(), authority.host()) {
        return Err(invalid(
            "may not receive credentials: https to a Sinch host (or an allowed domain), or loopback",
        ));
    }
    Ok(())
}

/// `url` as text with any userinfo replaced by `[REDACTED]`, for `Debug`.
pub(crate) fn without_userinfo(url: &http::Uri) -> String {
    let text = url.to_string();
    match url.authority().map(|a| a.as_str()) {
        Some(authority) if authority.contains('@') => {
            let host = authority.rsplit_once('@').map_or("", |(_, host)| host);
            text.replacen(authority, &format!("[REDACTED]@{host}"), 1)
        }
        _ => text,
    }
}

/// `localhost`, `127.0.0.0/8` and `::1` (with or without brackets).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_host_in_the_spec_is_classified() {
        use SinchApi::*;
        let table = [
            ("us.conversation.api.sinch.com", Conversation),
            ("eu.conversation.api.sinch.com", Conversation),
            ("br.conversation.api.sinch.com", Conversation),
            ("eu.template.api.sinch.com", Templates),
            ("zt.us.sms.api.sinch.com", SmsProject),
            ("zt.ca.sms.api.sinch.com", SmsProject),
            ("us.sms.api.sinch.com", Sms),
            ("au.sms.api.sinch.com", Sms),
            ("numbers.api.sinch.com", Numbers),
            ("lookup.api.sinch.com", NumberLookup),
            ("fax.api.sinch.com", Fax),
            ("elastic-trunking.api.sinch.com", ElasticTrunking),
            ("calling.api.sinch.com", Voice),
            ("calling-euc1.api.sinch.com", Voice),
            ("calling-use1.api.sinch.com", Voice),
            ("calling-sae1.api.sinch.com", Voice),
            ("calling-apse1.api.sinch.com", Voice),
            ("calling-apse2.api.sinch.com", Voice),
            ("callingapi.sinch.com", Voice),
            ("verification.api.sinch.com", Verification),
            ("auth.sinch.com", Auth),
            ("VERIFICATION.API.SINCH.COM.", Verification),
            ("provisioning.api.sinch.com", OtherApi),
        ];
        for (host, api) in table {
            assert_eq!(SinchApi::from_host(host), Some(api), "{host}");
        }
        for host in [
            "sinch.com",
            "www.sinch.com",
            "api.sinch.com.evil.example",
            "numbers.api.sinch.co",
            "example.com",
            "127.0.0.1",
        ] {
            assert_eq!(SinchApi::from_host(host), None, "{host}");
        }
    }

    #[test]
    fn all_lists_every_region_once() {
        // The matches fail to compile when a variant is added and not listed.
        for (i, region) in Region::ALL.into_iter().enumerate() {
            let index = match region {
                Region::Us => 0,
                Region::Eu => 1,
                Region::Au => 2,
                Region::Br => 3,
                Region::Ca => 4,
            };
            assert_eq!(i, index);
            assert_eq!(region.as_str().parse::<Region>(), Ok(region));
        }
        for (i, region) in VoiceRegion::ALL.into_iter().enumerate() {
            let index = match region {
                VoiceRegion::Global => 0,
                VoiceRegion::Euc1 => 1,
                VoiceRegion::Use1 => 2,
                VoiceRegion::Sae1 => 3,
                VoiceRegion::Apse1 => 4,
                VoiceRegion::Apse2 => 5,
            };
            assert_eq!(i, index);
        }
    }

    #[test]
    fn policy_allows_sinch_https_and_loopback_only() {
        let p = HostPolicy::default();
        assert!(p.allows(Some("https"), "sinch.com"));
        assert!(p.allows(Some("https"), "us.sms.api.sinch.com"));
        assert!(p.allows(Some("HTTPS"), "US.SMS.API.SINCH.COM."));
        assert!(!p.allows(Some("http"), "us.sms.api.sinch.com"));
        assert!(!p.allows(Some("https"), "evilsinch.com"));
        assert!(!p.allows(Some("https"), "sinch.com.evil.example"));
        assert!(!p.allows(Some("https"), "example.com"));
        assert!(!p.allows(None, "sinch.com"));
        assert!(p.allows(Some("http"), "127.0.0.1"));
        assert!(p.allows(Some("http"), "127.8.9.10"));
        assert!(p.allows(Some("http"), "[::1]"));
        assert!(p.allows(Some("http"), "localhost"));
        assert!(!p.allows(Some("http"), "10.0.0.1"));
        assert!(!p.allows(Some("ftp"), "127.0.0.1"));
    }

    #[test]
    fn token_urls_follow_the_host_policy_and_carry_no_userinfo() {
        let url = |text: &str| text.parse::<http::Uri>().unwrap();
        let mut policy = HostPolicy::default();
        for ok in [
            "https://auth.sinch.com/oauth2/token",
            "https://AUTH.Sinch.COM/oauth2/token",
            "https://auth.sinch.com./oauth2/token",
            "http://127.0.0.1:8080/oauth2/token",
        ] {
            assert_eq!(check_token_url(&policy, &url(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "https://auth.sinch.com.evil.example/oauth2/token",
            "https://auth.sinch.com.evil.example./oauth2/token",
            "https://evilsinch.com/oauth2/token",
            "http://auth.sinch.com/oauth2/token",
            "https://auth.sinch.com@evil.example/oauth2/token",
            "https://user:pw@auth.sinch.com/oauth2/token",
            "/oauth2/token",
        ] {
            assert!(
                matches!(
                    check_token_url(&policy, &url(bad)),
                    Err(ConfigError::InvalidUrl {
                        field: "auth host",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        policy.allow_domain("proxy.example.com").unwrap();
        assert!(check_token_url(&policy, &url("https://auth.proxy.example.com/t")).is_ok());
        policy.set_loopback(false);
        assert!(check_token_url(&policy, &url("http://127.0.0.1:8080/t")).is_err());
    }

    #[test]
    fn userinfo_is_redacted_for_debug() {
        let url = "https://user:pw@auth.sinch.com/oauth2/token"
            .parse()
            .unwrap();
        assert_eq!(
            without_userinfo(&url),
            "https://[REDACTED]@auth.sinch.com/oauth2/token"
        );
        let plain = "https://auth.sinch.com/oauth2/token".parse().unwrap();
        assert_eq!(
            without_userinfo(&plain),
            "https://auth.sinch.com/oauth2/token"
        );
    }

    #[test]
    fn policy_can_be_widened_and_loopback_turned_off() {
        let mut p = HostPolicy::default();
        p.allow_domain("Proxy.Example.com.").unwrap();
        assert!(p.allows(Some("https"), "proxy.example.com"));
        assert!(p.allows(Some("https"), "eu.proxy.example.com"));
        assert!(!p.allows(Some("https"), "example.com"));
        p.set_loopback(false);
        assert!(!p.allows(Some("http"), "127.0.0.1"));
        assert!(p.allow_domain("").is_err());
        assert!(p.allow_domain("*.example.com").is_err());
    }
}
