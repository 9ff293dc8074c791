//! The one thing every adapter asks: [`Authorizer::authorize`] puts
//! credentials on a request (routing, token waits, signing and the body
//! limit all happen behind it) and hands back a [`Grant`] for requests
//! that carried a cached token; [`rejected`] applies the 401-`expired` rule
//! (protocol notes §2) to the answer and says whether to send once more. Adapters move
//! requests and bodies around and nothing else.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use secrecy::ExposeSecret;

use crate::Scheme;
use crate::clock::Clock;
use crate::error::AuthError;
use crate::observe;
use crate::routing::{Router, Target};
use crate::token::cache::{Current, CurrentView, Shared};
use crate::token::{Lifecycle, TokenCache, TokenSlot};
use crate::{CredentialProvider, Credentials, CredentialsId, scheme};

/// The `x-timestamp` header of application-signed requests.
static X_TIMESTAMP: HeaderName = HeaderName::from_static("x-timestamp");

/// A boxed future, as the slow paths return them.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A request as an adapter holds it: what the authorizer reads and writes.
pub(crate) trait Outgoing: Sized + Send + 'static {
    /// What is kept of the request for the one resend after a 401-`expired`.
    type Copy: Send + 'static;

    /// Where it goes.
    fn target(&self) -> Target<'_>;
    /// The method, for signing.
    fn method(&self) -> &Method;
    /// The raw (percent-encoded) path, for signing.
    fn path(&self) -> &str;
    fn headers(&self) -> &HeaderMap;
    fn headers_mut(&mut self) -> &mut HeaderMap;
    /// A copy to send again, if the body can be replayed without reading it.
    /// Called once `Authorization` is set; the copy need not keep that
    /// header (the resend sets its own).
    fn try_copy(&self) -> Option<Self::Copy>;
    /// The request to send again, from its copy.
    fn restore(copy: Self::Copy) -> Self;
    /// The body's bytes (at most `limit`, else [`AuthError::BodyTooLarge`]),
    /// and the request with a body that still yields them.
    fn read_body(self, limit: usize) -> BoxFuture<Result<(Self, Bytes), AuthError>>;
}

/// What a request sent with a cached token keeps until its answer is in:
/// the token (an opaque ticket) and, if the request could be copied, the copy.
pub(crate) struct Grant<C> {
    token: Arc<Current>,
    copy: Option<C>,
}

/// A request went out with a cached token and resends are on: the adapter
/// turns this into a [`Grant`] once the request's headers are set, so the
/// copy is made where it is kept (not moved through [`Authorized`]).
pub(crate) struct Ticket(Arc<Current>);

impl Ticket {
    /// The grant for `request`, whose `Authorization` header is already set.
    #[inline(always)]
    pub(crate) fn grant<R: Outgoing>(self, request: &R) -> Grant<R::Copy> {
        self.grant_with(request.try_copy())
    }

    /// The grant holding `copy`, made by the adapter where it keeps it.
    #[inline(always)]
    pub(crate) fn grant_with<C>(self, copy: Option<C>) -> Grant<C> {
        Grant {
            copy,
            token: self.0,
        }
    }
}

impl<C> Grant<C> {
    /// Whether a resend is possible at all (the body was replayable).
    pub(crate) fn can_resend(&self) -> bool {
        self.copy.is_some()
    }
}

/// What [`Authorizer::authorize`] did with a request.
pub(crate) enum Authorized {
    /// Send it now: its headers are set (or it goes untouched). With a
    /// ticket, make its [`Grant`] and give the answer to [`rejected`].
    Ready(Option<Ticket>),
    /// It cannot be authenticated; do not send it.
    Failed(AuthError),
    /// A token wait or a body read comes first: [`Later::run`] with the request.
    Later(Later),
}

/// The slow half of authorizing a request, decided but not yet done. The
/// request stays with the adapter until then: on the cached paths it is
/// authorized in place, never moved.
pub(crate) struct Later {
    authorizer: Arc<Authorizer>,
    work: Work,
}

enum Work {
    /// No usable token: wait for one.
    Wait(TokenCache),
    /// Read the body, then sign (application scheme).
    Sign(Arc<Credentials>),
}

impl Later {
    /// Does the rest: the request with its headers set, and its grant.
    pub(crate) fn run<R: Outgoing>(self, mut request: R) -> Authorizing<R> {
        let Self { authorizer, work } = self;
        Box::pin(async move {
            match work {
                Work::Wait(cache) => {
                    let token = observe::wait(cache.source_name(), false, cache.wait(None)).await?;
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header.clone());
                    let grant = authorizer.ticket(&token).map(|t| t.grant(&request));
                    Ok((request, grant))
                }
                Work::Sign(credentials) => {
                    let (mut request, body) =
                        request.read_body(authorizer.options.max_body_bytes).await?;
                    authorizer.sign(&credentials, &mut request, &body)?;
                    Ok((request, None))
                }
            }
        })
    }
}

/// What [`Later::run`] returns: the request with its headers set and its grant.
pub(crate) type Authorizing<R> =
    BoxFuture<Result<(R, Option<Grant<<R as Outgoing>::Copy>>), AuthError>>;

/// The one resend the 401-`expired` rule asked for.
pub(crate) struct Retry<C> {
    cache: Arc<Shared>,
    refused: Arc<Current>,
    copy: C,
}

impl<C: Send + 'static> Retry<C> {
    /// The copy of the request, with a token other than the refused one.
    pub(crate) async fn request<R: Outgoing<Copy = C>>(self) -> Result<R, AuthError> {
        let source = self.cache.source_name();
        let token = observe::wait(source, true, self.cache.wait(Some(&self.refused))).await?;
        let mut request = R::restore(self.copy);
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.header.clone());
        observe::resend(source);
        Ok(request)
    }
}

/// The 401-`expired` rule (protocol notes §2): on a 401 whose `www-authenticate`
/// mentions `expired`, clear the token the request used if it is still
/// current, and resend once if the request could be copied.
/// The grant is left in place (the copy taken out when a resend is due):
/// an answer that is not a 401 costs one inlined comparison.
#[inline]
pub(crate) fn rejected<C>(
    grant: &mut Grant<C>,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Retry<C>> {
    if status != StatusCode::UNAUTHORIZED {
        return None;
    }
    refused(grant, headers)
}

/// [`rejected`] for a 401: off the path of every other answer.
#[cold]
#[inline(never)]
fn refused<C>(grant: &mut Grant<C>, headers: &HeaderMap) -> Option<Retry<C>> {
    if !mentions_expired(headers) {
        return None;
    }
    let cache = grant.token.cache()?;
    cache.invalidate(&grant.token);
    let Some(copy) = grant.copy.take() else {
        tracing::debug!(target: "sinch_auth", "401 expired, but the body cannot be replayed; answer passed on");
        return None;
    };
    Some(Retry {
        cache,
        refused: grant.token.clone(),
        copy,
    })
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

/// The settings of an [`Authorizer`] that are not routing or tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) overwrite: bool,
    pub(crate) resend_on_expired: bool,
    pub(crate) max_body_bytes: usize,
}

/// Puts credentials on requests. One per layer, shared by every adapter
/// made from it.
pub(crate) struct Authorizer {
    provider: Arc<dyn CredentialProvider>,
    router: Router,
    options: Options,
    clock: Arc<dyn Clock>,
    tokens: Lifecycle,
    derived: DerivedHeaders,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("router", &self.router)
            .field("options", &self.options)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// The last grant of one adapter instance (the tower service holds one per
/// clone), reused while the destination, the credentials and, for tokens,
/// the token are the same: two string compares and two atomic loads instead
/// of routing and a cache lookup.
#[derive(Clone, Default)]
pub(crate) struct Memo(Option<Remembered>);

#[derive(Clone)]
struct Remembered {
    destination: usize,
    credentials: CredentialsId,
    value: HeaderValue,
    token: Option<Watched>,
    /// Reuses so far; see [`PRIVATE_AFTER`].
    hits: u32,
}

/// The token a remembered header came from, watched in its cache.
#[derive(Clone)]
struct Watched {
    view: CurrentView,
    /// The address of the token the header came from. The view holds that
    /// token until it sees another, so no later token can have this address
    /// when they are compared.
    used: usize,
}

/// After this many reuses an adapter instance is long-lived, and takes its
/// own copy of the header value: cloning a shared value bumps one reference
/// count that every core then fights over; a private copy keeps each
/// instance's count on its own cache line. Short-lived instances (a clone
/// per request) never get there, so they never pay for the copy.
const PRIVATE_AFTER: u32 = 64;

fn address(token: &Option<Arc<Current>>) -> usize {
    token.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize)
}

impl Authorizer {
    pub(crate) fn new(
        provider: Arc<dyn CredentialProvider>,
        router: Router,
        options: Options,
        clock: Arc<dyn Clock>,
        tokens: Lifecycle,
    ) -> Self {
        Self {
            provider,
            router,
            options,
            clock,
            tokens,
            derived: Default::default(),
        }
    }

    /// Authenticates one request. Synchronous and, on the cached paths,
    /// free of locks and allocations; `memo` is the adapter instance's own.
    pub(crate) fn authorize<R: Outgoing>(
        self: &Arc<Self>,
        memo: &mut Memo,
        request: &mut R,
    ) -> Authorized {
        let headers = request.headers();
        // (`is_empty` first: a request with no headers skips hashing the name.)
        if !self.options.overwrite && !headers.is_empty() && headers.contains_key(AUTHORIZATION) {
            return Authorized::Ready(None);
        }
        if let Some((value, token)) = self.remembered(memo, request.target()) {
            request.headers_mut().insert(AUTHORIZATION, value);
            return Authorized::Ready(token.map(Ticket));
        }
        let provider = &*self.provider;
        let destination = match self.router.route(request.target(), || {
            provider.credentials().service_plan().is_some()
        }) {
            Ok(destination) => destination,
            Err(error) => return Authorized::Failed(error),
        };
        memo.0 = None;
        let Some(scheme) = destination.scheme else {
            return Authorized::Ready(None);
        };
        match self.header(scheme) {
            Err(error) => Authorized::Failed(error),
            Ok(Header::Derived(value, credentials)) => {
                if let Some(destination) = destination.memo {
                    memo.0 = Some(Remembered {
                        destination,
                        credentials,
                        value: value.clone(),
                        token: None,
                        hits: 0,
                    });
                }
                request.headers_mut().insert(AUTHORIZATION, value);
                Authorized::Ready(None)
            }
            Ok(Header::Token(cache, token)) => {
                let current = provider.current_id();
                if let (Some(destination), true) = (destination.memo, token.credentials == current)
                {
                    let view = cache.watch();
                    memo.0 = Some(Remembered {
                        destination,
                        credentials: current,
                        value: token.header.clone(),
                        token: Some(Watched {
                            used: address(&Some(token.clone())),
                            view,
                        }),
                        hits: 0,
                    });
                }
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, token.header.clone());
                Authorized::Ready(self.ticket(&token))
            }
            Ok(Header::Later(work)) => Authorized::Later(Later {
                authorizer: self.clone(),
                work,
            }),
        }
    }

    /// The remembered header, if it still applies, and (with resends on)
    /// the token it came from. Counts the hit.
    fn remembered(
        &self,
        memo: &mut Memo,
        target: Target<'_>,
    ) -> Option<(HeaderValue, Option<Arc<Current>>)> {
        let entry = memo.0.as_mut()?;
        if !self.router.same(entry.destination, target)
            || self.provider.current_id() != entry.credentials
        {
            return None;
        }
        let mut token = None;
        if let Some(watched) = &mut entry.token {
            // A refresher that stopped renews the token's identity, so this
            // one comparison also catches that (see `token::cache`).
            let current = watched.view.load();
            if address(current) != watched.used {
                return None;
            }
            if self.options.resend_on_expired {
                token = current.clone();
            }
        }
        entry.hits = entry.hits.saturating_add(1);
        if entry.hits == PRIVATE_AFTER {
            entry.value = scheme::private_copy(&entry.value);
        }
        Some((entry.value.clone(), token))
    }

    /// What the 401-`expired` rule needs of a request sent with `token`.
    fn ticket(&self, token: &Arc<Current>) -> Option<Ticket> {
        self.options
            .resend_on_expired
            .then(|| Ticket(token.clone()))
    }

    /// The header for a scheme, or what to do to get one.
    fn header(&self, scheme: Scheme) -> Result<Header, AuthError> {
        let provider = &*self.provider;
        match scheme {
            Scheme::OAuth2 | Scheme::SelfSignedJwt => {
                let slot = match scheme {
                    Scheme::OAuth2 => TokenSlot::OAuth2,
                    _ => TokenSlot::Jwt,
                };
                let cache = self.tokens.cache(slot).ok_or_else(|| missing(scheme))?;
                Ok(match cache.ready(provider.current_id())? {
                    Some(token) => Header::Token(cache.clone(), token),
                    None => Header::Later(Work::Wait(cache.clone())),
                })
            }
            Scheme::ApplicationSigned => {
                let credentials = provider.credentials();
                if credentials.application().is_none() {
                    return Err(missing(scheme));
                }
                Ok(Header::Later(Work::Sign(credentials)))
            }
            _ => {
                let slot = self
                    .derived
                    .get(scheme as usize)
                    .ok_or_else(|| missing(scheme))?;
                let (value, id) = slot.get(provider, |c| {
                    derive(scheme, c).ok_or_else(|| missing(scheme))
                })?;
                Ok(Header::Derived(value, id))
            }
        }
    }

    /// Signs a request with the application scheme (protocol notes §4): sets
    /// `x-timestamp` and `Authorization`.
    fn sign<R: Outgoing>(
        &self,
        credentials: &Credentials,
        request: &mut R,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let app = credentials
            .application()
            .ok_or_else(|| missing(Scheme::ApplicationSigned))?;
        let content_type = match request.headers().get(CONTENT_TYPE) {
            Some(value) => value.to_str().map_err(|_| AuthError::InvalidHeaderValue {
                what: "content-type",
            })?,
            None => "",
        };
        let timestamp = scheme::application::format_timestamp(self.clock.now());
        let signed = scheme::application::sign(
            app,
            request.method(),
            request.path(),
            content_type,
            body,
            &timestamp,
        )
        .map_err(|_| AuthError::InvalidHeaderValue {
            what: "x-timestamp",
        })?;
        let headers = request.headers_mut();
        headers.insert(X_TIMESTAMP.clone(), signed.timestamp);
        headers.insert(AUTHORIZATION, signed.authorization);
        Ok(())
    }
}

/// What a scheme gives for one request.
enum Header {
    /// A value derived from the credentials alone, and which credentials.
    Derived(HeaderValue, CredentialsId),
    /// The cache's current token.
    Token(TokenCache, Arc<Current>),
    /// A token wait or a body read comes first.
    Later(Work),
}

/// The value of a scheme that needs the credentials and nothing else.
fn derive(scheme: Scheme, c: &Credentials) -> Option<HeaderValue> {
    match scheme {
        Scheme::ServicePlanBearer => c
            .service_plan()
            .and_then(|p| scheme::bearer(p.api_token().expose_secret()).ok()),
        Scheme::ServicePlanBasic => c
            .service_plan()
            .map(|p| scheme::basic(p.id(), p.api_token().expose_secret())),
        Scheme::ApplicationBasic => c
            .application()
            .map(|a| scheme::basic(a.key(), a.secret().expose_secret())),
        Scheme::Bearer => c
            .bearer()
            .and_then(|b| scheme::bearer(b.token().expose_secret()).ok()),
        Scheme::Basic => c
            .basic()
            .map(|b| scheme::basic(b.username(), b.password().expose_secret())),
        _ => None,
    }
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

/// One [`DerivedHeader`] per scheme, indexed by the scheme (the token and
/// signing schemes leave theirs unused).
type DerivedHeaders = [DerivedHeader; 8];

fn missing(scheme: Scheme) -> AuthError {
    AuthError::MissingCredential {
        scheme: scheme.name(),
        needs: scheme.needs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
