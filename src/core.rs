//! The core every adapter asks for headers: which scheme applies to a
//! request, the derived-header and token caches, signing, and the
//! 401-`expired` rule. Adapters (the tower layer, the reqwest middleware) only
//! move requests and bodies around.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::error::{AuthError, CredentialKind};
use crate::host::{HostPolicy, SinchApi};
use crate::observe;
use crate::scheme;
use crate::token::{Lookup, TokenCache, TokenTicket};
use crate::{CredentialProvider, Credentials, CredentialsId};

/// The `x-timestamp` header of application-signed requests.
pub(crate) static X_TIMESTAMP: HeaderName = HeaderName::from_static("x-timestamp");

/// How a request is authenticated (spec §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer {token}` from the token source: OAuth2 client credentials with
    /// the project access key by default (Conversation, SMS with project
    /// credentials, Numbers, Fax, …), or your own [`TokenSource`](crate::token::TokenSource).
    OAuth2,
    /// `Bearer {jwt}` with the self-signed JWT of Sinch's overview, minted from
    /// the application credentials.
    SelfSignedJwt,
    /// `Bearer {apiToken}`: SMS with a service plan, as Sinch's SDKs send it.
    ServicePlanBearer,
    /// `Basic base64(servicePlanId:apiToken)`: legacy endpoints.
    ServicePlanBasic,
    /// `x-timestamp` and `Authorization: Application {key}:{signature}`: Voice and Verification.
    ApplicationSigned,
    /// `Basic base64(appKey:appSecret)`: Verification's alternative.
    ApplicationBasic,
    /// `Bearer {token}` with the plain [`BearerToken`](crate::BearerToken).
    Bearer,
    /// `Basic base64(user:password)` with the plain [`BasicCredentials`](crate::BasicCredentials).
    Basic,
}

impl Scheme {
    /// The scheme's name, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::OAuth2 => "OAuth2",
            Self::SelfSignedJwt => "SelfSignedJwt",
            Self::ServicePlanBearer => "ServicePlanBearer",
            Self::ServicePlanBasic => "ServicePlanBasic",
            Self::ApplicationSigned => "ApplicationSigned",
            Self::ApplicationBasic => "ApplicationBasic",
            Self::Bearer => "Bearer",
            Self::Basic => "Basic",
        }
    }

    /// The credential the scheme needs (`None` for OAuth2 with a custom source,
    /// decided by the builder).
    pub fn needs(self) -> CredentialKind {
        match self {
            Self::OAuth2 => CredentialKind::AccessKey,
            Self::SelfSignedJwt | Self::ApplicationSigned | Self::ApplicationBasic => {
                CredentialKind::Application
            }
            Self::ServicePlanBearer | Self::ServicePlanBasic => CredentialKind::ServicePlan,
            Self::Bearer => CredentialKind::Bearer,
            Self::Basic => CredentialKind::Basic,
        }
    }

    /// The scheme Sinch's SDKs use for a host, given the credentials at hand;
    /// `None` for hosts that get no credentials (non-Sinch hosts, `auth.sinch.com`).
    ///
    /// ```
    /// use sinch_auth::{Credentials, Scheme, ServicePlan};
    ///
    /// let plan = Credentials::from(ServicePlan::new("plan", "token")?);
    /// assert_eq!(Scheme::for_host("us.sms.api.sinch.com", &plan), Some(Scheme::ServicePlanBearer));
    /// assert_eq!(Scheme::for_host("calling.api.sinch.com", &plan), Some(Scheme::ApplicationSigned));
    /// assert_eq!(Scheme::for_host("numbers.api.sinch.com", &plan), Some(Scheme::OAuth2));
    /// assert_eq!(Scheme::for_host("example.com", &plan), None);
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn for_host(host: &str, credentials: &Credentials) -> Option<Self> {
        Self::for_api(SinchApi::from_host(host)?, || {
            credentials.service_plan().is_some()
        })
    }

    fn for_api(api: SinchApi, has_service_plan: impl FnOnce() -> bool) -> Option<Self> {
        Some(match api {
            SinchApi::Auth => return None,
            SinchApi::Voice | SinchApi::Verification => Self::ApplicationSigned,
            SinchApi::Sms if has_service_plan() => Self::ServicePlanBearer,
            _ => Self::OAuth2,
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the scheme for a request is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    Fixed(Scheme),
    ByHost,
}

/// A custom route: requests to this host (and port, if given) use this scheme.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) scheme: Scheme,
}

/// The parts of a request URL the core looks at: the scheme and the
/// authority, as written (nothing is parsed on the cached path).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) scheme: Option<&'a str>,
    pub(crate) authority: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub(crate) fn from_uri(uri: &'a http::Uri) -> Self {
        Self {
            scheme: uri.scheme_str(),
            authority: uri.authority().map(http::uri::Authority::as_str),
        }
    }

    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn from_url(url: &'a reqwest::Url) -> Self {
        let authority = url.authority();
        Self {
            scheme: Some(url.scheme()),
            authority: (!authority.is_empty()).then_some(authority),
        }
    }
}

/// What the host rules say about one `scheme://authority`.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    /// May this destination receive credentials at all?
    allowed: bool,
    /// The scheme of a matching custom route.
    route: Option<Scheme>,
    /// The Sinch API this host serves, if it is one.
    api: Option<SinchApi>,
}

struct MemoEntry {
    scheme: Box<str>,
    authority: Box<str>,
    verdict: Verdict,
}

impl MemoEntry {
    fn is(&self, scheme: &str, authority: &str) -> bool {
        &*self.authority == authority && &*self.scheme == scheme
    }
}

/// The last header plan of one adapter instance (the tower service holds
/// one per clone). It stays valid while the destination matches, the
/// credentials are the same and, for tokens, the token is still current:
/// three comparisons and one atomic load instead of a full plan.
#[derive(Clone, Default)]
pub(crate) struct LastPlan(Option<LastEntry>);

#[derive(Clone)]
struct LastEntry {
    memo: usize,
    credentials: CredentialsId,
    value: HeaderValue,
    token: Option<(TokenSlot, TokenTicket)>,
    /// Reuses so far; see [`PRIVATE_AFTER`].
    hits: u32,
}

/// After this many reuses an adapter instance is long-lived, and takes its
/// own copy of the header value: cloning a shared value bumps one reference
/// count that every core then fights over; a private copy keeps each
/// instance's count on its own cache line. Short-lived instances (a clone
/// per request) never get there, so they never pay for the copy.
const PRIVATE_AFTER: u32 = 64;

/// Verdicts for the first destinations seen, so the request path compares
/// two short strings instead of parsing the authority and walking the rules.
/// Append-only slots: a reader does one atomic load per slot, never a lock;
/// a new host fills a slot once (destinations past the last slot are
/// judged afresh each time, which is correct, just slower).
struct HostMemo([OnceLock<MemoEntry>; HOST_MEMO_SIZE]);

const HOST_MEMO_SIZE: usize = 16;

impl Default for HostMemo {
    fn default() -> Self {
        Self(std::array::from_fn(|_| OnceLock::new()))
    }
}

impl HostMemo {
    fn get(&self, scheme: &str, authority: &str) -> Option<(usize, Verdict)> {
        for (index, slot) in self.0.iter().enumerate() {
            let entry = slot.get()?;
            if entry.is(scheme, authority) {
                return Some((index, entry.verdict));
            }
        }
        None
    }

    /// Stores a verdict; returns its slot, or `None` when every slot is taken.
    fn remember(&self, scheme: &str, authority: &str, verdict: Verdict) -> Option<usize> {
        for (index, slot) in self.0.iter().enumerate() {
            let mut filled = false;
            let entry = slot.get_or_init(|| {
                filled = true;
                MemoEntry {
                    scheme: scheme.into(),
                    authority: authority.into(),
                    verdict,
                }
            });
            if filled || entry.is(scheme, authority) {
                return Some(index);
            }
        }
        None
    }

    fn matches(&self, index: usize, scheme: &str, authority: &str) -> bool {
        self.0[index].get().is_some_and(|e| e.is(scheme, authority))
    }
}

/// The port a request goes to: the explicit one, or the scheme's default.
/// (`reqwest` drops a port that is the scheme's default — `https://h:443/`
/// has none — while `http::Uri` keeps it: both adapters must route alike.)
fn effective_port(scheme: Option<&str>, port: Option<u16>) -> Option<u16> {
    port.or_else(|| match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
    })
}

/// Which token cache a ticket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSlot {
    OAuth2,
    Jwt,
}

/// What the adapter must do for one request.
pub(crate) enum Plan {
    /// Send it untouched.
    Skip,
    /// Set `Authorization` to this value. With a ticket, a 401-`expired`
    /// answer may be retried once.
    Header(HeaderValue, Option<(TokenSlot, TokenTicket)>),
    /// No usable token yet: wait for one, then set it.
    Wait(TokenSlot),
    /// Read the body, then sign (application scheme).
    Sign(Arc<Credentials>),
}

/// A request an adapter can put `Authorization` on and copy for the one
/// resend after a 401-`expired` answer (spec §2).
pub(crate) trait Resendable: Sized {
    /// What is kept of the request until its answer is in.
    type Copy;

    fn headers_mut(&mut self) -> &mut HeaderMap;

    /// A copy to send again, if the body can be replayed without reading it.
    /// Taken before `Authorization` is set: the resend gets a new one anyway.
    fn try_copy(&self) -> Option<Self::Copy>;

    /// The request to send again, from its copy.
    fn restore(copy: Self::Copy) -> Self;
}

/// What a request sent with a cached token keeps for the 401-`expired` rule:
/// the token it used and, if the request could be copied, the copy.
pub(crate) struct Replay<C> {
    used: (TokenSlot, TokenTicket),
    copy: Option<C>,
}

impl<C> Replay<C> {
    /// Whether a resend is possible at all (the body was replayable).
    pub(crate) fn can_resend(&self) -> bool {
        self.copy.is_some()
    }
}

/// A resend the 401-`expired` rule asked for: the copy, still carrying the
/// refused token until [`Core::reauthorize`] replaces it.
pub(crate) struct Resend<R> {
    used: (TokenSlot, TokenTicket),
    request: R,
}

/// A header derived from credentials alone (Basic, static Bearer), rebuilt
/// only when the credentials change.
#[derive(Default)]
struct DerivedHeader(ArcSwapOption<(CredentialsId, HeaderValue)>);

impl DerivedHeader {
    fn get(
        &self,
        provider: &dyn CredentialProvider,
        derive: impl FnOnce(&Credentials) -> Result<HeaderValue, AuthError>,
    ) -> Result<(HeaderValue, CredentialsId), AuthError> {
        let id = provider.current_id();
        if let Some(entry) = self.0.load().as_ref() {
            if entry.0 == id {
                return Ok((entry.1.clone(), id));
            }
        }
        let credentials = provider.credentials();
        let value = scheme::warm(derive(&credentials)?);
        self.0
            .store(Some(Arc::new((credentials.id(), value.clone()))));
        Ok((value, credentials.id()))
    }
}

#[derive(Default)]
struct DerivedHeaders {
    service_plan_bearer: DerivedHeader,
    service_plan_basic: DerivedHeader,
    application_basic: DerivedHeader,
    bearer: DerivedHeader,
    basic: DerivedHeader,
}

/// Everything a layer needs, shared by all its clones.
pub(crate) struct Core {
    pub(crate) provider: Arc<dyn CredentialProvider>,
    pub(crate) policy: HostPolicy,
    pub(crate) routing: Routing,
    pub(crate) routes: Vec<Route>,
    pub(crate) reject_disallowed: bool,
    pub(crate) overwrite: bool,
    pub(crate) resend_on_expired: bool,
    pub(crate) max_body_bytes: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) oauth2: Option<TokenCache>,
    pub(crate) jwt: Option<TokenCache>,
    derived: DerivedHeaders,
    memo: HostMemo,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("routing", &self.routing)
            .field("routes", &self.routes)
            .field("policy", &self.policy)
            .field("reject_disallowed", &self.reject_disallowed)
            .field("overwrite", &self.overwrite)
            .field("resend_on_expired", &self.resend_on_expired)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("oauth2", &self.oauth2)
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

fn missing(scheme: Scheme) -> AuthError {
    AuthError::MissingCredential {
        scheme: scheme.name(),
        needs: scheme.needs(),
    }
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        provider: Arc<dyn CredentialProvider>,
        policy: HostPolicy,
        routing: Routing,
        routes: Vec<Route>,
        reject_disallowed: bool,
        overwrite: bool,
        resend_on_expired: bool,
        max_body_bytes: usize,
        clock: Arc<dyn Clock>,
        oauth2: Option<TokenCache>,
        jwt: Option<TokenCache>,
    ) -> Self {
        Self {
            provider,
            policy,
            routing,
            routes,
            reject_disallowed,
            overwrite,
            resend_on_expired,
            max_body_bytes,
            clock,
            oauth2,
            jwt,
            derived: DerivedHeaders::default(),
            memo: HostMemo::default(),
        }
    }

    /// Decides what to do with a request. Synchronous and, on the cached
    /// paths, free of locks and allocations.
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    pub(crate) fn plan(&self, target: Target<'_>, headers: &HeaderMap) -> Result<Plan, AuthError> {
        self.plan_inner(target, headers).map(|(plan, _)| plan)
    }

    /// As [`plan`](Self::plan), reusing the adapter instance's last header
    /// plan when nothing it depends on changed.
    pub(crate) fn plan_remembering(
        &self,
        last: &mut LastPlan,
        target: Target<'_>,
        headers: &HeaderMap,
    ) -> Result<Plan, AuthError> {
        if !self.overwrite && headers.contains_key(AUTHORIZATION) {
            return Ok(Plan::Skip);
        }
        if let (Some(entry), Some(authority)) = (&mut last.0, target.authority) {
            if self
                .memo
                .matches(entry.memo, target.scheme.unwrap_or(""), authority)
                && self.provider.current_id() == entry.credentials
                && entry
                    .token
                    .is_none_or(|(slot, ticket)| self.token_is_current(slot, ticket))
            {
                entry.hits = entry.hits.saturating_add(1);
                if entry.hits == PRIVATE_AFTER {
                    entry.value = scheme::private_copy(&entry.value);
                }
                return Ok(Plan::Header(entry.value.clone(), entry.token));
            }
        }
        let (plan, reusable) = self.plan_inner(target, headers)?;
        last.0 = match (&plan, reusable) {
            (Plan::Header(value, token), Some((memo, credentials))) => Some(LastEntry {
                memo,
                credentials,
                value: value.clone(),
                token: *token,
                hits: 0,
            }),
            _ => None,
        };
        Ok(plan)
    }

    fn token_is_current(&self, slot: TokenSlot, ticket: TokenTicket) -> bool {
        self.cache(slot).is_ok_and(|cache| cache.is_current(ticket))
    }

    /// The plan, and for a header plan that may be reused: its memo slot
    /// and the credentials it was derived from.
    fn plan_inner(
        &self,
        target: Target<'_>,
        headers: &HeaderMap,
    ) -> Result<(Plan, Option<(usize, CredentialsId)>), AuthError> {
        if !self.overwrite && headers.contains_key(AUTHORIZATION) {
            return Ok((Plan::Skip, None));
        }
        let Some(authority) = target.authority else {
            tracing::debug!(target: "sinch_auth", "request URI has no host; sent without credentials");
            return Ok((Plan::Skip, None));
        };
        let scheme = target.scheme.unwrap_or("");
        let (memo, verdict) = match self.memo.get(scheme, authority) {
            Some((index, verdict)) => (Some(index), verdict),
            None => {
                let verdict = self.verdict(scheme, authority);
                (self.memo.remember(scheme, authority, verdict), verdict)
            }
        };
        if !verdict.allowed {
            let host = host_of(authority);
            if self.reject_disallowed {
                return Err(AuthError::HostNotAllowed { host });
            }
            tracing::debug!(target: "sinch_auth", host, "host not allowed to receive credentials; sent untouched");
            return Ok((Plan::Skip, None));
        }
        let scheme = match (verdict.route, self.routing) {
            (Some(route), _) => Some(route),
            (None, Routing::Fixed(scheme)) => Some(scheme),
            (None, Routing::ByHost) => verdict.api.and_then(|api| {
                Scheme::for_api(api, || self.provider.credentials().service_plan().is_some())
            }),
        };
        match scheme {
            Some(scheme) => {
                let (plan, credentials) = self.plan_scheme(scheme)?;
                Ok((plan, memo.zip(credentials)))
            }
            None => {
                tracing::debug!(target: "sinch_auth", host = host_of(authority), "no scheme for this host; sent untouched");
                Ok((Plan::Skip, None))
            }
        }
    }

    /// Applies the host rules to a destination (the slow path, memoized).
    fn verdict(&self, scheme: &str, authority: &str) -> Verdict {
        let parsed = authority.parse::<http::uri::Authority>().ok();
        let host = parsed.as_ref().map_or("", |a| a.host());
        let scheme = (!scheme.is_empty()).then_some(scheme);
        let port = effective_port(scheme, parsed.as_ref().and_then(|a| a.port_u16()));
        let route = self
            .routes
            .iter()
            .find(|r| r.host.eq_ignore_ascii_case(host) && (r.port.is_none() || r.port == port))
            .map(|r| r.scheme);
        Verdict {
            allowed: parsed.is_some() && self.policy.allows(scheme, host),
            route,
            api: SinchApi::from_host(host),
        }
    }

    /// The plan for a scheme, and for header plans the id of the credentials
    /// the header came from (when it is the current one).
    fn plan_scheme(&self, scheme: Scheme) -> Result<(Plan, Option<CredentialsId>), AuthError> {
        let provider = &*self.provider;
        let header = |slot: &DerivedHeader, derive: fn(&Credentials) -> Option<HeaderValue>| {
            slot.get(provider, |c| derive(c).ok_or_else(|| missing(scheme)))
                .map(|(value, id)| (Plan::Header(value, None), Some(id)))
        };
        match scheme {
            Scheme::OAuth2 | Scheme::SelfSignedJwt => {
                let (slot, cache) = match scheme {
                    Scheme::OAuth2 => (TokenSlot::OAuth2, self.oauth2.as_ref()),
                    _ => (TokenSlot::Jwt, self.jwt.as_ref()),
                };
                let cache = cache.ok_or_else(|| missing(scheme))?;
                let current = provider.current_id();
                Ok(match cache.lookup(current)? {
                    Lookup::Ready(value, ticket, from) => (
                        Plan::Header(value, Some((slot, ticket))),
                        (from == current).then_some(from),
                    ),
                    Lookup::Wait => (Plan::Wait(slot), None),
                })
            }
            Scheme::ServicePlanBearer => header(&self.derived.service_plan_bearer, |c| {
                c.service_plan()
                    .and_then(|p| scheme::bearer(p.api_token().expose_secret()).ok())
            }),
            Scheme::ServicePlanBasic => header(&self.derived.service_plan_basic, |c| {
                c.service_plan()
                    .map(|p| scheme::basic(p.id(), p.api_token().expose_secret()))
            }),
            Scheme::ApplicationBasic => header(&self.derived.application_basic, |c| {
                c.application()
                    .map(|a| scheme::basic(a.key(), a.secret().expose_secret()))
            }),
            Scheme::Bearer => header(&self.derived.bearer, |c| {
                c.bearer()
                    .and_then(|b| scheme::bearer(b.token().expose_secret()).ok())
            }),
            Scheme::Basic => header(&self.derived.basic, |c| {
                c.basic()
                    .map(|b| scheme::basic(b.username(), b.password().expose_secret()))
            }),
            Scheme::ApplicationSigned => {
                let credentials = provider.credentials();
                if credentials.application().is_none() {
                    return Err(missing(scheme));
                }
                Ok((Plan::Sign(credentials), None))
            }
        }
    }

    fn cache(&self, slot: TokenSlot) -> Result<&TokenCache, AuthError> {
        let (cache, scheme) = match slot {
            TokenSlot::OAuth2 => (self.oauth2.as_ref(), Scheme::OAuth2),
            TokenSlot::Jwt => (self.jwt.as_ref(), Scheme::SelfSignedJwt),
        };
        cache.ok_or_else(|| missing(scheme))
    }

    /// Waits for a usable token (other than `not_this`, after a 401).
    pub(crate) async fn wait_token(
        &self,
        slot: TokenSlot,
        not_this: Option<TokenTicket>,
    ) -> Result<(HeaderValue, TokenTicket), AuthError> {
        let cache = self.cache(slot)?;
        observe::wait(
            cache.source_name(),
            not_this.is_some(),
            cache.wait(not_this),
        )
        .await
    }

    /// Puts a ready header on the request (a [`Plan::Header`]). With a ticket,
    /// and resends on, returns what the 401-`expired` rule needs once the
    /// answer is in: give it to [`resend_after`](Self::resend_after).
    pub(crate) fn authorize<R: Resendable>(
        &self,
        request: &mut R,
        value: HeaderValue,
        ticket: Option<(TokenSlot, TokenTicket)>,
    ) -> Option<Replay<R::Copy>> {
        let replay = ticket
            .filter(|_| self.resend_on_expired)
            .map(|used| Replay {
                used,
                copy: request.try_copy(),
            });
        request.headers_mut().insert(AUTHORIZATION, value);
        replay
    }

    /// Waits for a token (a [`Plan::Wait`]), then as [`authorize`](Self::authorize).
    pub(crate) async fn authorize_when_ready<R: Resendable>(
        &self,
        request: &mut R,
        slot: TokenSlot,
    ) -> Result<Option<Replay<R::Copy>>, AuthError> {
        let (value, ticket) = self.wait_token(slot, None).await?;
        Ok(self.authorize(request, value, Some((slot, ticket))))
    }

    /// Applies the 401-`expired` rule to the answer of a request sent with a
    /// cached token: clears that token if it is still current and, when the
    /// request could be copied, returns the one resend to make (after
    /// [`reauthorize`](Self::reauthorize)).
    pub(crate) fn resend_after<R: Resendable>(
        &self,
        replay: Replay<R::Copy>,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Resend<R>> {
        if !self.should_resend(status, headers, replay.used) {
            return None;
        }
        let Some(copy) = replay.copy else {
            tracing::debug!(target: "sinch_auth", "401 expired, but the body cannot be replayed; answer passed on");
            return None;
        };
        Some(Resend {
            used: replay.used,
            request: R::restore(copy),
        })
    }

    /// Puts a token other than the refused one on the resend.
    pub(crate) async fn reauthorize<R: Resendable>(
        &self,
        resend: Resend<R>,
    ) -> Result<R, AuthError> {
        let (slot, refused) = resend.used;
        let (value, _) = self.wait_token(slot, Some(refused)).await?;
        let mut request = resend.request;
        request.headers_mut().insert(AUTHORIZATION, value);
        observe::resend(self.cache(slot)?.source_name());
        Ok(request)
    }

    /// Signs a request with the application scheme (spec §4): sets `x-timestamp`
    /// and `Authorization`. `path` is the raw (percent-encoded) URI path.
    /// Bodies over [`max_body_bytes`](Self::max_body_bytes) are refused.
    pub(crate) fn sign(
        &self,
        credentials: &Credentials,
        method: &Method,
        path: &str,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), AuthError> {
        if body.len() > self.max_body_bytes {
            return Err(AuthError::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        let app = credentials
            .application()
            .ok_or_else(|| missing(Scheme::ApplicationSigned))?;
        let content_type = match headers.get(CONTENT_TYPE) {
            Some(value) => value.to_str().map_err(|_| AuthError::InvalidHeaderValue {
                what: "content-type",
            })?,
            None => "",
        };
        let timestamp = scheme::application::format_timestamp(self.clock.now());
        let signed = scheme::application::sign(app, method, path, content_type, body, &timestamp)
            .map_err(|_| AuthError::InvalidHeaderValue {
            what: "x-timestamp",
        })?;
        headers.insert(X_TIMESTAMP.clone(), signed.timestamp);
        headers.insert(AUTHORIZATION, signed.authorization);
        Ok(())
    }

    /// The 401-`expired` rule (spec §2): on a 401 whose `www-authenticate`
    /// mentions `expired`, clear the token the request used if it is still
    /// current, and say whether to resend (once).
    fn should_resend(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        used: (TokenSlot, TokenTicket),
    ) -> bool {
        if !self.resend_on_expired
            || status != StatusCode::UNAUTHORIZED
            || !mentions_expired(headers)
        {
            return false;
        }
        if let Ok(cache) = self.cache(used.0) {
            cache.invalidate(used.1);
            true
        } else {
            false
        }
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// The host part of an authority, for messages (userinfo and port dropped).
fn host_of(authority: &str) -> String {
    authority
        .parse::<http::uri::Authority>()
        .map(|a| a.host().to_owned())
        .unwrap_or_default()
}

/// Whether any `www-authenticate` value contains `expired` (ASCII case-insensitive).
pub(crate) fn mentions_expired(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
        value
            .as_bytes()
            .windows(7)
            .any(|w| w.eq_ignore_ascii_case(b"expired"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_port_written_or_not_is_the_same_port() {
        assert_eq!(effective_port(Some("https"), None), Some(443));
        assert_eq!(effective_port(Some("https"), Some(443)), Some(443));
        assert_eq!(effective_port(Some("HTTP"), None), Some(80));
        assert_eq!(effective_port(Some("http"), Some(8080)), Some(8080));
        assert_eq!(effective_port(None, None), None);
        #[cfg(feature = "reqwest-middleware")]
        for url in ["https://h/", "https://h:443/"] {
            let url = reqwest::Url::parse(url).unwrap();
            assert_eq!(Target::from_url(&url).authority, Some("h"));
        }
    }

    #[test]
    fn expired_is_found_in_any_www_authenticate_value() {
        let mut h = HeaderMap::new();
        assert!(!mentions_expired(&h));
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"x\""),
        );
        assert!(!mentions_expired(&h));
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer error=\"invalid_token\", error_description=\"Jwt EXPIRED at 2024-07-08T22:12:28Z\"",
            ),
        );
        assert!(mentions_expired(&h));
    }
}
