//! Routing: which scheme a request gets, from its destination alone. Pure:
//! the host rules (allowlist, custom routes, Sinch's API hosts) applied to
//! `scheme://authority`, memoized per destination.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::Scheme;
use crate::error::AuthError;
use crate::host::{HostPolicy, SinchApi};

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
    /// Whether the warning for a request sent without credentials was given.
    warned: AtomicBool,
}

impl MemoEntry {
    fn is(&self, scheme: &str, authority: &str) -> bool {
        &*self.authority == authority && &*self.scheme == scheme
    }
}

/// Verdicts for the first destinations seen, so the request path compares
/// two short strings instead of parsing the authority and walking the rules.
/// Append-only slots: a reader does one atomic load per slot, never a lock;
/// a new host fills a slot once (destinations past the last slot are
/// judged afresh each time, which is correct, just slower).
struct HostMemo([OnceLock<MemoEntry>; HOST_MEMO_SIZE]);

const HOST_MEMO_SIZE: usize = 16;

impl fmt::Debug for HostMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filled = self.0.iter().filter(|slot| slot.get().is_some()).count();
        f.debug_struct("HostMemo").field("filled", &filled).finish()
    }
}

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
                    warned: AtomicBool::new(false),
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

    /// Whether this is the first warning for the destination in slot `index`.
    fn first_warning(&self, index: usize) -> bool {
        self.0[index]
            .get()
            .is_some_and(|e| !e.warned.swap(true, Ordering::Relaxed))
    }
}

/// Destinations past the memo that were warned about, so each is named once
/// (bounded: past [`WARNED_LIMIT`] the warning is no longer given).
#[derive(Debug, Default)]
struct Warned(Mutex<Vec<Box<str>>>);

const WARNED_LIMIT: usize = 64;

impl Warned {
    fn first(&self, destination: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= WARNED_LIMIT || seen.iter().any(|d| &**d == destination) {
            return false;
        }
        seen.push(destination.into());
        true
    }
}

/// Why a destination the host rules do not allow gets no credentials.
fn disallowed_rule(scheme: &str, host: &str) -> &'static str {
    let https = scheme.eq_ignore_ascii_case("https");
    let http = scheme.eq_ignore_ascii_case("http");
    if crate::host::is_loopback(host) && (https || http) {
        "loopback hosts are not allowed by this layer's host policy"
    } else if http {
        "plain http carries credentials only to loopback hosts"
    } else if !https {
        "only https URLs carry credentials"
    } else {
        "not a Sinch host (sinch.com or a subdomain) nor a domain added with allow_domain"
    }
}

/// Where a request may go and which scheme it gets there.
#[derive(Debug)]
pub(crate) struct Router {
    policy: HostPolicy,
    routing: Routing,
    routes: Vec<Route>,
    reject_disallowed: bool,
    memo: HostMemo,
    warned: Warned,
}

/// What the router says about one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Destination {
    /// The scheme to apply; `None`: send the request untouched.
    pub(crate) scheme: Option<Scheme>,
    /// The destination's memo slot, when it has one (see [`Router::same`]).
    pub(crate) memo: Option<usize>,
}

impl Router {
    pub(crate) fn new(
        policy: HostPolicy,
        routing: Routing,
        routes: Vec<Route>,
        reject_disallowed: bool,
    ) -> Self {
        Self {
            policy,
            routing,
            routes,
            reject_disallowed,
            memo: HostMemo::default(),
            warned: Warned::default(),
        }
    }

    /// The scheme for a request to `target`. `has_service_plan` is asked
    /// only when the answer depends on it (SMS by host).
    pub(crate) fn route(
        &self,
        target: Target<'_>,
        has_service_plan: impl FnOnce() -> bool,
    ) -> Result<Destination, AuthError> {
        let untouched = |memo| Destination { scheme: None, memo };
        let Some(authority) = target.authority else {
            tracing::debug!(target: "sinch_auth", "request URI has no host; sent without credentials");
            return Ok(untouched(None));
        };
        let url_scheme = target.scheme.unwrap_or("");
        let (memo, verdict) = match self.memo.get(url_scheme, authority) {
            Some((index, verdict)) => (Some(index), verdict),
            None => {
                let verdict = self.verdict(url_scheme, authority);
                (self.memo.remember(url_scheme, authority, verdict), verdict)
            }
        };
        if !verdict.allowed {
            let host = host_of(authority);
            if self.reject_disallowed {
                return Err(AuthError::HostNotAllowed { host });
            }
            let rule = disallowed_rule(url_scheme, &host);
            self.sent_untouched(memo, url_scheme, authority, rule);
            return Ok(untouched(None));
        }
        let scheme = match (verdict.route, self.routing) {
            (Some(route), _) => Some(route),
            (None, Routing::Fixed(scheme)) => Some(scheme),
            (None, Routing::ByHost) => verdict
                .api
                .and_then(|api| Scheme::for_api(api, has_service_plan)),
        };
        if scheme.is_none() {
            let rule = "no scheme for this host: not a Sinch API host, and no route names it";
            self.sent_untouched(memo, url_scheme, authority, rule);
        }
        Ok(Destination { scheme, memo })
    }

    /// Says, once per destination (at `warn`), that requests to it leave
    /// without credentials and which rule says so; at `debug` every time.
    fn sent_untouched(&self, memo: Option<usize>, scheme: &str, authority: &str, rule: &str) {
        let host = host_of(authority);
        let first = match memo {
            Some(index) => self.memo.first_warning(index),
            None => self.warned.first(&format!("{scheme}://{authority}")),
        };
        if first {
            tracing::warn!(
                target: "sinch_auth",
                host,
                rule,
                "requests to this host are sent without credentials (said once per host; \
                 reject_disallowed_hosts(true) refuses those the host rules do not allow)"
            );
        } else {
            tracing::debug!(target: "sinch_auth", host, rule, "request sent without credentials");
        }
    }

    /// Whether `target` is the destination remembered in slot `memo`: two
    /// string compares, the cached path's whole routing cost.
    pub(crate) fn same(&self, memo: usize, target: Target<'_>) -> bool {
        target.authority.is_some_and(|authority| {
            self.memo
                .matches(memo, target.scheme.unwrap_or(""), authority)
        })
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

/// The host part of an authority, for messages (userinfo and port dropped).
fn host_of(authority: &str) -> String {
    authority
        .parse::<http::uri::Authority>()
        .map(|a| a.host().to_owned())
        .unwrap_or_default()
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
}
