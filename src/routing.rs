//! Routing: which scheme a request gets, from its destination alone. Pure:
//! the host rules (allowlist, custom routes, Sinch's API hosts) applied to
//! `scheme://authority`, memoized per destination.

use std::fmt;
use std::sync::OnceLock;

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

/// Where a request may go and which scheme it gets there.
#[derive(Debug)]
pub(crate) struct Router {
    policy: HostPolicy,
    routing: Routing,
    routes: Vec<Route>,
    reject_disallowed: bool,
    memo: HostMemo,
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
            tracing::debug!(target: "sinch_auth", host = host_of(authority), "no scheme for this host; sent untouched");
        }
        Ok(Destination { scheme, memo })
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
