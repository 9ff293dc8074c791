//! Spans and metrics for the moments operators watch: token fetches, requests
//! waiting for a token, 401-`expired` resends and callback verifications.
//!
//! Everything here happens off the request's cached path: a request that
//! finds a usable token touches none of it.
//!
//! Spans (target `sinch_auth`, level INFO) are always emitted through
//! `tracing`; a subscriber that does not want them pays one disabled check.
//! Metrics go through the `metrics` facade with the `metrics` feature, and
//! compile to nothing without it. Names and labels are listed in the README
//! ("Observability").
//!
//! Labels and fields never hold a value from a request, a response body or a
//! credential: sources and verifiers are named by their type, errors and
//! rejections by their variant (see [`Label`]), statuses by their number.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::instrument::{Instrument as _, Instrumented};
use tracing::{Span, info_span};

use crate::error::{AuthError, FetchError};
use crate::verify::{Rejection, Verified};

/// The fetch span's name (`tracing` wants the literal in the macro too).
const FETCH_SPAN: &str = "sinch_auth.token_fetch";

/// One fetch by the refresher, from the call to the source until its result
/// is known. Fields: `source`, `attempt` (1 for the first try, counting up
/// through consecutive failures), then `outcome` (`ok` or `error`),
/// `latency_ms`, `remaining_life_s` (how long the new token is used, or on
/// failure how long the token still served lasts), `status` (the token
/// endpoint's HTTP status, when there was one), `error` and `retry_in_ms`.
pub(crate) struct FetchAttempt {
    span: Span,
    source: &'static str,
    started: Instant,
}

impl FetchAttempt {
    pub(crate) fn start(source: &'static str, attempt: u32) -> Self {
        // A root span: a fetch serves every request, it belongs to none.
        let span = info_span!(
            target: "sinch_auth",
            parent: None,
            "sinch_auth.token_fetch",
            source,
            attempt,
            outcome = Empty,
            latency_ms = Empty,
            remaining_life_s = Empty,
            status = Empty,
            error = Empty,
            retry_in_ms = Empty,
        );
        Self {
            span,
            source,
            started: Instant::now(),
        }
    }

    /// Runs the source's future inside the fetch span, so what the source
    /// logs (and the status it sees, [`http_status`]) lands in it.
    pub(crate) fn instrument<F: Future>(&self, fetch: F) -> Instrumented<F> {
        fetch.instrument(self.span.clone())
    }

    /// The fetch brought a token that will be used for `usable_for`.
    pub(crate) fn succeeded(self, usable_for: Duration) {
        let latency = self.started.elapsed();
        self.span.record("outcome", "ok");
        self.span.record("latency_ms", millis(latency));
        self.span.record("remaining_life_s", usable_for.as_secs());
        emit::fetch(self.source, "ok", latency);
    }

    /// The fetch failed; the next try comes in `retry_in`. `serving_until`
    /// is when the token still in use (if any) stops being used.
    pub(crate) fn failed(
        self,
        error: &FetchError,
        retry_in: Duration,
        serving_until: Option<Instant>,
    ) {
        let latency = self.started.elapsed();
        let kind = Label::variant(error);
        let status = error.status().map(|s| s.as_u16());
        self.span.record("outcome", "error");
        self.span.record("latency_ms", millis(latency));
        self.span.record("error", kind.as_str());
        self.span.record("retry_in_ms", millis(retry_in));
        if let Some(status) = status {
            self.span.record("status", status);
        }
        if let Some(until) = serving_until {
            let left = until.saturating_duration_since(Instant::now());
            self.span.record("remaining_life_s", left.as_secs());
        }
        emit::fetch(self.source, "error", latency);
        emit::failure(self.source, kind.as_str(), status);
    }
}

/// Records a successful answer's HTTP status on the fetch span the caller
/// runs in (error statuses come with the [`FetchError`], see
/// [`FetchAttempt::failed`]). Only on that span: a source called from
/// elsewhere leaves the caller's own spans alone.
pub(crate) fn http_status(status: StatusCode) {
    let span = Span::current();
    if status.is_success() && span.metadata().is_some_and(|m| m.name() == FETCH_SPAN) {
        span.record("status", status.as_u16());
    }
}

/// Runs a request's wait for a token inside a span, and records how long it
/// waited and how it ended. Fields: `source`, `after_401` (the wait is for
/// a resend), `outcome` (`ok`, or the error's variant: `token_unavailable`,
/// `token_fetch`, …) and `waited_ms`.
pub(crate) async fn wait<T>(
    source: &'static str,
    after_401: bool,
    wait: impl Future<Output = Result<T, AuthError>>,
) -> Result<T, AuthError> {
    let span = info_span!(
        target: "sinch_auth",
        "sinch_auth.token_wait",
        source,
        after_401,
        outcome = Empty,
        waited_ms = Empty,
    );
    let started = Instant::now();
    let result = wait.instrument(span.clone()).await;
    let waited = started.elapsed();
    let outcome = match &result {
        Ok(_) => Label::new("ok"),
        Err(error) => Label::variant(error),
    };
    span.record("outcome", outcome.as_str());
    span.record("waited_ms", millis(waited));
    emit::wait(source, outcome.as_str(), waited);
    result
}

/// A request is sent again after a 401-`expired` answer, with a new token
/// from `source`.
pub(crate) fn resend(source: &'static str) {
    tracing::debug!(target: "sinch_auth", source, "resending once after 401 expired");
    emit::resend(source);
}

/// One verification of a callback, by the verifier of type `V`. Fields:
/// `verifier` (`webhook`, `application`, `numbers`, or your type's name),
/// then `outcome` (`verified` or `rejected`), `scheme` (what was verified:
/// `application`, `basic`, `webhook`, `numbers`) or `reason` (the
/// [`Rejection`]'s variant: `signature_mismatch`, `too_old`, `replayed`, …).
pub(crate) struct VerifyAttempt {
    span: Span,
    verifier: Label,
    started: Instant,
}

impl VerifyAttempt {
    pub(crate) fn start<V: ?Sized>() -> Self {
        let verifier = Label::verifier(std::any::type_name::<V>());
        let span = info_span!(
            target: "sinch_auth",
            "sinch_auth.verify",
            verifier = verifier.as_str(),
            outcome = Empty,
            scheme = Empty,
            reason = Empty,
        );
        Self {
            span,
            verifier,
            started: Instant::now(),
        }
    }

    /// The span, to run the verification in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    pub(crate) fn finish(self, result: &Result<Verified, Rejection>) {
        let elapsed = self.started.elapsed();
        match result {
            Ok(verified) => {
                self.span.record("outcome", "verified");
                self.span
                    .record("scheme", Label::variant(verified).as_str());
                emit::verification(self.verifier.as_str(), "verified", "none", elapsed);
            }
            Err(rejection) => {
                let reason = Label::variant(rejection);
                self.span.record("outcome", "rejected");
                self.span.record("reason", reason.as_str());
                emit::verification(self.verifier.as_str(), "rejected", reason.as_str(), elapsed);
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A short snake-case label, kept on the stack.
///
/// [`Label::variant`] reads an enum's variant name from its `Debug` and stops
/// at the first character that cannot be in a name, before any field is
/// formatted: labels follow the error enums as they grow, and can never
/// carry a field's value (where secrets and request data could be).
#[derive(Clone, Copy)]
pub(crate) struct Label {
    bytes: [u8; Self::CAPACITY],
    len: usize,
    full: bool,
}

impl Label {
    const CAPACITY: usize = 48;

    fn empty() -> Self {
        Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
            full: false,
        }
    }

    fn new(text: &str) -> Self {
        let mut label = Self::empty();
        let _ = label.write_str(text);
        label
    }

    /// `TokenUnavailable { .. }` → `token_unavailable`.
    pub(crate) fn variant(value: &dyn fmt::Debug) -> Self {
        let mut label = Self::empty();
        // Formatting is cut off with an error at the end of the name.
        let _ = write!(label, "{value:?}");
        label
    }

    /// A verifier's type name as a label: its last path segment (inside any
    /// wrapper such as `Arc<…>`), without a `Verifier` suffix:
    /// `sinch_auth::verify::webhook::WebhookVerifier` → `webhook`.
    fn verifier(type_name: &str) -> Self {
        let inner = type_name.trim_end_matches('>');
        let last = inner.rsplit([':', '<', ' ']).next().unwrap_or(inner);
        let name = last.strip_suffix("Verifier").filter(|n| !n.is_empty());
        Self::new(name.unwrap_or(last))
    }

    pub(crate) fn as_str(&self) -> &str {
        match std::str::from_utf8(&self.bytes[..self.len]) {
            Ok("") | Err(_) => "other",
            Ok(text) => text,
        }
    }

    fn push(&mut self, byte: u8) -> fmt::Result {
        if self.len == Self::CAPACITY {
            return Err(fmt::Error);
        }
        self.bytes[self.len] = byte;
        self.len += 1;
        Ok(())
    }
}

impl fmt::Write for Label {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if self.full || !(byte.is_ascii_alphanumeric() || byte == b'_') {
                self.full = true;
                return Err(fmt::Error);
            }
            if byte.is_ascii_uppercase() && self.len > 0 && self.bytes[self.len - 1] != b'_' {
                self.push(b'_')?;
            }
            self.push(byte.to_ascii_lowercase())?;
        }
        Ok(())
    }
}

/// Metric names, one place (the README's table lists them with their labels).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) mod names {
    pub(crate) const FETCHES: &str = "sinch_auth_token_fetches_total";
    pub(crate) const FETCH_FAILURES: &str = "sinch_auth_token_fetch_failures_total";
    pub(crate) const FETCH_DURATION: &str = "sinch_auth_token_fetch_duration_seconds";
    pub(crate) const WAITS: &str = "sinch_auth_token_waits_total";
    pub(crate) const WAIT_DURATION: &str = "sinch_auth_token_wait_duration_seconds";
    pub(crate) const RESENDS: &str = "sinch_auth_resends_total";
    pub(crate) const VERIFICATIONS: &str = "sinch_auth_verifications_total";
    pub(crate) const VERIFICATION_DURATION: &str = "sinch_auth_verification_duration_seconds";
}

#[cfg(feature = "metrics")]
mod emit {
    use std::time::Duration;

    use metrics::{counter, histogram};

    use super::names::*;

    pub(super) fn fetch(source: &'static str, outcome: &'static str, latency: Duration) {
        counter!(FETCHES, "source" => source, "outcome" => outcome).increment(1);
        histogram!(FETCH_DURATION, "source" => source, "outcome" => outcome).record(latency);
    }

    pub(super) fn failure(source: &'static str, error: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        counter!(FETCH_FAILURES, "source" => source, "error" => error.to_owned(), "status" => status)
            .increment(1);
    }

    pub(super) fn wait(source: &'static str, outcome: &str, waited: Duration) {
        let outcome = outcome.to_owned();
        counter!(WAITS, "source" => source, "outcome" => outcome.clone()).increment(1);
        histogram!(WAIT_DURATION, "source" => source, "outcome" => outcome).record(waited);
    }

    pub(super) fn resend(source: &'static str) {
        counter!(RESENDS, "source" => source).increment(1);
    }

    pub(super) fn verification(
        verifier: &str,
        outcome: &'static str,
        reason: &str,
        elapsed: Duration,
    ) {
        let verifier = verifier.to_owned();
        counter!(VERIFICATIONS, "verifier" => verifier.clone(), "outcome" => outcome, "reason" => reason.to_owned())
            .increment(1);
        histogram!(VERIFICATION_DURATION, "verifier" => verifier, "outcome" => outcome)
            .record(elapsed);
    }
}

#[cfg(not(feature = "metrics"))]
mod emit {
    use std::time::Duration;

    #[inline(always)]
    pub(super) fn fetch(_: &'static str, _: &'static str, _: Duration) {}
    #[inline(always)]
    pub(super) fn failure(_: &'static str, _: &str, _: Option<u16>) {}
    #[inline(always)]
    pub(super) fn wait(_: &'static str, _: &str, _: Duration) {}
    #[inline(always)]
    pub(super) fn resend(_: &'static str) {}
    #[inline(always)]
    pub(super) fn verification(_: &str, _: &'static str, _: &str, _: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_labels_are_snake_case_names_without_fields() {
        let error = FetchError::Endpoint {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: Some("secret-looking-value".into()),
            description: None,
            retry_after: None,
        };
        assert_eq!(Label::variant(&error).as_str(), "endpoint");
        assert_eq!(
            Label::variant(&FetchError::MalformedResponse { reason: "x" }).as_str(),
            "malformed_response"
        );
        assert_eq!(
            Label::variant(&Rejection::SignatureMismatch).as_str(),
            "signature_mismatch"
        );
        assert_eq!(
            Label::variant(&Rejection::Replayed { what: "nonce" }).as_str(),
            "replayed"
        );
        let long = "A".repeat(100);
        assert_eq!(Label::new(&long).as_str().len(), Label::CAPACITY);
        assert_eq!(Label::variant(&"quoted").as_str(), "other");
    }

    #[test]
    fn verifier_labels_name_the_innermost_type() {
        for (type_name, label) in [
            ("sinch_auth::verify::webhook::WebhookVerifier", "webhook"),
            (
                "alloc::sync::Arc<sinch_auth::verify::application::ApplicationVerifier>",
                "application",
            ),
            (
                "alloc::boxed::Box<dyn sinch_auth::verify::Verifier>",
                "verifier",
            ),
            ("my_app::HmacCheck", "hmac_check"),
        ] {
            assert_eq!(Label::verifier(type_name).as_str(), label, "{type_name}");
        }
    }
}
