//! Layer settings that would have no effect are refused at build time,
//! with a typed error naming the setting.

mod common;

use std::time::Duration;

use common::{Capture, LogBuffer, get};
use http::header::AUTHORIZATION;
use sinch_auth::token::{Token, TokenHttpClient, source_fn};
use sinch_auth::{
    AccessKey, AuthError, ConfigError, Scheme, ServiceError, ServicePlan, SinchAuthLayer,
    StaticCredentials,
};
use tower::{Layer as _, ServiceExt as _};

fn builder() -> sinch_auth::SinchAuthBuilder {
    SinchAuthLayer::builder(StaticCredentials::new(
        AccessKey::new("proj", "key", "KEY-SECRET").unwrap(),
    ))
    .scheme(Scheme::OAuth2)
}

fn vault() -> impl sinch_auth::token::TokenSource {
    source_fn(|_| async { Ok(Token::new("from-my-vault", Duration::from_secs(600))) })
}

#[test]
fn auth_host_with_a_custom_token_source_is_an_error_naming_auth_host() {
    let error = builder()
        .auth_host("http://127.0.0.1:9")
        .token_source(vault())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::InvalidSetting {
                setting: "auth_host",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("auth_host"), "{error}");
    assert!(!error.to_string().contains("KEY-SECRET"));
}

#[test]
fn token_client_with_a_custom_token_source_is_an_error_naming_token_client() {
    let error = builder()
        .token_source(vault())
        .token_client(TokenHttpClient::hyper())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::InvalidSetting {
                setting: "token_client",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_custom_token_source_alone_or_the_oauth2_settings_alone_build() {
    builder().token_source(vault()).build().unwrap();
    builder()
        .auth_host("http://127.0.0.1:9")
        .token_client(TokenHttpClient::hyper())
        .build()
        .unwrap();
}

/// A request the layer sends without credentials is named once per host at
/// `warn`, with the rule that kept them back; `reject_disallowed_hosts(true)`
/// refuses the ones the host rules do not allow, typed.
#[tokio::test(flavor = "current_thread")]
async fn requests_sent_without_credentials_are_named_once_per_host_with_the_rule() {
    let (logs, _guard) = LogBuffer::capture();
    let plan = ServicePlan::new("plan-w", "PLAN-TOKEN-w1").unwrap();
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(plan.clone()))
        .build()
        .unwrap()
        .layer(capture.service());
    let destinations = [
        (
            "http://127.0.0.1:9/x",
            "127.0.0.1",
            "no scheme for this host",
        ),
        (
            "https://sinch.com.evil.example/x",
            "sinch.com.evil.example",
            "not a Sinch host",
        ),
        (
            "http://sms.api.sinch.com/x",
            "sms.api.sinch.com",
            "plain http carries credentials only to loopback",
        ),
    ];
    for _ in 0..3 {
        for (url, _, _) in destinations {
            service.clone().oneshot(get(url)).await.unwrap();
        }
    }
    assert_eq!(capture.all().len(), 9);
    assert!(
        capture
            .all()
            .iter()
            .all(|seen| !seen.headers.contains_key(AUTHORIZATION))
    );
    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), destinations.len(), "{text}");
    for (_, host, rule) in destinations {
        let named: Vec<_> = warnings
            .iter()
            .filter(|l| l.contains(&format!("host=\"{host}\"")))
            .collect();
        assert_eq!(named.len(), 1, "{host}: {text}");
        assert!(named[0].contains(rule), "{host}: {}", named[0]);
    }
    assert!(!text.contains("PLAN-TOKEN-w1"));

    // Strict: the host rules' refusals become typed errors, before the inner service.
    let strict = SinchAuthLayer::builder(StaticCredentials::new(plan))
        .reject_disallowed_hosts(true)
        .build()
        .unwrap()
        .layer(capture.service());
    let error = strict
        .oneshot(get("https://sinch.com.evil.example/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ServiceError::Auth(AuthError::HostNotAllowed { host }) if host == "sinch.com.evil.example"),
        "{error:?}"
    );
    assert_eq!(capture.all().len(), 9);
}

/// The 0.1.0 names still compile (deprecated) and do what the new ones do.
#[test]
#[allow(deprecated)]
fn the_deprecated_0_1_names_still_work() {
    use sinch_auth::credentials::Credentials;
    use sinch_auth::{CredentialProvider as _, RotatingCredentials};
    let first = AccessKey::new("proj", "key-1", "KEY-SECRET-1").unwrap();
    let second = AccessKey::new("proj", "key-2", "KEY-SECRET-2").unwrap();
    let provider = RotatingCredentials::new(Credentials::from(first.clone()));
    let before = provider.current_id();
    provider.rotate_shared(std::sync::Arc::new(Credentials::from(second)));
    assert_ne!(provider.current_id(), before);

    let key =
        sinch_auth::token::StoreKey::for_access_key("https://auth.sinch.com/oauth2/token", &first);
    assert_eq!(key.as_str(), key.name());

    let _source: sinch_auth::token::OAuth2 = sinch_auth::token::OAuth2Source::new();
    fn _named<S: tower::Service<http::Request<B>>, B>(_: sinch_auth::layer::ResponseFuture<S, B>) {}
}

/// Past the destinations the layer remembers (16), each new host is still
/// named once, up to 64 more; and a loopback host the policy turns off is
/// named under the loopback rule, over http and https alike.
#[tokio::test(flavor = "current_thread")]
async fn many_hosts_sent_without_credentials_are_each_named_once_within_a_bound() {
    let (logs, _guard) = LogBuffer::capture();
    let plan = ServicePlan::new("plan-m", "PLAN-TOKEN-m1").unwrap();
    let capture = Capture::default();
    let service = SinchAuthLayer::builder(StaticCredentials::new(plan))
        .allow_loopback(false)
        .build()
        .unwrap()
        .layer(capture.service());
    for url in ["http://127.0.0.1:9/x", "https://localhost:9/x"] {
        for _ in 0..2 {
            service.clone().oneshot(get(url)).await.unwrap();
        }
    }
    let hosts: Vec<String> = (0..120).map(|i| format!("h{i}.example")).collect();
    for round in 0..2 {
        for host in &hosts {
            let url = format!("https://{host}/x");
            service.clone().oneshot(get(url)).await.unwrap();
        }
        let warned = |host: &str| {
            logs.text()
                .lines()
                .filter(|l| l.contains(" WARN ") && l.contains(&format!("host=\"{host}\"")))
                .count()
        };
        if round == 1 {
            for host in ["127.0.0.1", "localhost"] {
                assert_eq!(warned(host), 1, "{host}: {}", logs.text());
            }
            let text = logs.text();
            let loopback: Vec<_> = text
                .lines()
                .filter(|l| l.contains(" WARN "))
                .take(2)
                .collect();
            assert!(
                loopback
                    .iter()
                    .all(|l| l.contains("loopback hosts are not allowed")),
                "{loopback:?}"
            );
            // 2 loopback destinations and 14 more fill the memo; 64 more are
            // named from the bounded set; the rest are not named at all.
            let named: Vec<usize> = hosts.iter().map(|h| warned(h)).collect();
            assert!(named.iter().all(|&n| n <= 1), "{named:?}");
            assert_eq!(named.iter().sum::<usize>(), 14 + 64, "{named:?}");
            assert!(named[..78].iter().all(|&n| n == 1), "{named:?}");
        }
    }
    assert_eq!(capture.all().len(), 4 + 240);
}
