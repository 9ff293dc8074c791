//! Credentials go to Sinch (https, `sinch.com` and its subdomains) and to
//! loopback, nowhere else: look-alike hosts, userinfo tricks and arbitrary
//! host names never receive an `Authorization` header, through one layer
//! that has seen (and memoized verdicts for) many hosts.

mod common;

use std::time::Duration;

use common::{Capture, get};
use http::header::AUTHORIZATION;
use proptest::prelude::*;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::OAuth2Source;
use sinch_auth::{AccessKey, ConfigError, Scheme, ServicePlan, SinchAuthLayer, StaticCredentials};
use tower::{Layer, ServiceExt};

fn layer() -> SinchAuthLayer {
    let plan = ServicePlan::new("plan-m", "TOKEN-m1").unwrap();
    SinchAuthLayer::new(StaticCredentials::new(plan), Scheme::ServicePlanBearer).unwrap()
}

/// The rule, written independently of the crate: https to `sinch.com` or a
/// subdomain (ASCII case and one trailing dot ignored), or loopback over
/// http(s) (written exactly: `localhost.` gets nothing, which is the safe side).
fn may_receive_credentials(scheme: &str, host: &str) -> bool {
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let web = scheme == "https" || scheme == "http";
    (web && loopback)
        || (scheme == "https" && (host == "sinch.com" || host.ends_with(".sinch.com")))
}

async fn sends_credentials(layer: &SinchAuthLayer, capture: &Capture, url: &str) -> bool {
    layer
        .layer(capture.service())
        .oneshot(get(url))
        .await
        .unwrap();
    capture.last().headers.contains_key(AUTHORIZATION)
}

#[tokio::test]
async fn look_alike_hosts_and_userinfo_tricks_get_nothing() {
    let layer = layer();
    let capture = Capture::default();
    for url in [
        "https://sinch.com.evil.example/",
        "https://evil-sinch.com/",
        "https://sinchcom/",
        "https://sinch.co/",
        "https://api.sinch.com.evil.example/",
        "https://api.sinch.com@evil.example/",
        "https://api.sinch.com:443@evil.example/",
        "https://user:pw@evil.example/?host=api.sinch.com",
        "https://evil.example/https://api.sinch.com/",
        "https://evil.example#@api.sinch.com",
        "https://127.0.0.1.evil.example/",
        "https://localhost.evil.example/",
        "https://[::ffff:7f00:1]/",
        "https://0x7f.0.0.1/",
        "https://2130706433/",
        "https://api.sinch.com../",
        "http://api.sinch.com/",
        "ws://api.sinch.com/",
        "https://xn--sinch-9ua.com/",
        "https://10.0.0.1/",
        "//api.sinch.com/",
    ] {
        assert!(
            !sends_credentials(&layer, &capture, url).await,
            "credentials sent to {url}"
        );
    }
    for url in [
        "https://api.sinch.com/",
        "https://API.Sinch.COM./x",
        "https://user@api.sinch.com/",
        "https://us.sms.api.sinch.com:8443/",
        "http://127.0.0.1:1/",
        "http://localhost:1/",
    ] {
        assert!(
            sends_credentials(&layer, &capture, url).await,
            "no credentials for {url}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary host names, many of them near `sinch.com`, through one
    /// layer (so past its memo of the first hosts seen): credentials exactly
    /// where the rule allows.
    #[test]
    fn credentials_go_exactly_where_the_rule_allows(
        hosts in prop::collection::vec(
            (
                prop_oneof![Just("https"), Just("http"), Just("HTTPS")],
                "((api|us|eu|sms|sinch|com|evil|localhost|127|0|1|xn--s|-)[.-]?){1,5}(sinch\\.com|\\.sinch\\.com|\\.com|\\.example|\\.)?",
            ),
            1..40,
        )
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let layer = layer();
            let capture = Capture::default();
            for (scheme, host) in &hosts {
                let url = format!("{scheme}://{host}/x");
                if url.parse::<http::Uri>().is_err() {
                    continue;
                }
                let expected = may_receive_credentials(&scheme.to_ascii_lowercase(), host);
                prop_assert_eq!(sends_credentials(&layer, &capture, &url).await, expected, "{}", url);
            }
            Ok(())
        })?;
    }
}

/// A layer fetching OAuth2 tokens from `auth_host`, after `allow_domain`.
fn oauth2_build(auth_host: &str, allow: Option<&str>) -> Result<SinchAuthLayer, ConfigError> {
    let key = AccessKey::new("project-m", "key-id-m", "KEY-SECRET-m").unwrap();
    let mut builder = SinchAuthLayer::builder(StaticCredentials::new(key))
        .scheme(Scheme::OAuth2)
        .auth_host(auth_host);
    if let Some(domain) = allow {
        builder = builder.allow_domain(domain);
    }
    builder.build()
}

/// Token hosts that only look like Sinch's, hide another host or carry a
/// second credential, or are plain http off loopback.
const LOOK_ALIKE_TOKEN_HOSTS: [&str; 9] = [
    // suffix
    "https://auth.sinch.com.evil.example",
    "https://evilsinch.com",
    "https://sinch.com-evil.example",
    // trailing dot
    "https://auth.sinch.com.evil.example.",
    // case
    "https://AUTH.SINCH.COM.EVIL.EXAMPLE",
    // userinfo, hiding another host or carrying a second credential
    "https://auth.sinch.com@evil.example",
    "https://auth.sinch.com:443@evil.example",
    "https://user:hunter2@auth.sinch.com",
    // plain http off loopback
    "http://auth.sinch.com",
];

#[test]
fn token_host_look_alikes_fail_at_build_and_never_get_the_key_secret() {
    for host in LOOK_ALIKE_TOKEN_HOSTS {
        let error = oauth2_build(host, None).err();
        assert!(
            matches!(
                error,
                Some(ConfigError::InvalidUrl {
                    field: "auth host",
                    ..
                })
            ),
            "{host} built: {error:?}"
        );
        let text = format!("{error:?} {}", error.as_ref().unwrap());
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn token_hosts_sinch_loopback_and_allowed_domains_build() {
    for host in [
        "https://auth.sinch.com",
        "https://AUTH.Sinch.com",
        "https://auth.sinch.com.",
        "https://eu.auth.sinch.com",
        "http://127.0.0.1:9",
        "http://[::1]:9",
    ] {
        assert!(oauth2_build(host, None).is_ok(), "{host}");
    }
    // allow_domain widens the token host exactly as it widens API hosts,
    // whichever is called first.
    assert!(oauth2_build("https://auth.sinch-proxy.example", None).is_err());
    assert!(
        oauth2_build(
            "https://auth.sinch-proxy.example",
            Some("sinch-proxy.example")
        )
        .is_ok()
    );
    assert!(
        oauth2_build(
            "https://auth.sinch-proxy.example.evil.example",
            Some("sinch-proxy.example")
        )
        .is_err()
    );
}

#[test]
fn token_host_userinfo_never_appears_in_debug() {
    let key = AccessKey::new("project-m", "key-id-m", "KEY-SECRET-m").unwrap();
    let builder = SinchAuthLayer::builder(StaticCredentials::new(key))
        .scheme(Scheme::OAuth2)
        .auth_host("https://user:hunter2@auth.sinch.com");
    let debug = format!("{builder:?} {builder:#?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("user:"), "{debug}");
    assert!(debug.contains("auth.sinch.com"), "{debug}");
    // Refused outright, and the refusal does not quote it.
    let refused = OAuth2Source::new()
        .auth_host("https://user:hunter2@auth.sinch.com")
        .unwrap_err();
    assert!(!format!("{refused:?} {refused}").contains("hunter2"));
}

#[tokio::test]
async fn an_oauth2_source_refuses_look_alike_token_hosts_so_no_custom_source_can_carry_one() {
    let key = AccessKey::new("project-m", "key-id-m", "KEY-SECRET-m").unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&key)
        .start()
        .await
        .unwrap();
    for host in LOOK_ALIKE_TOKEN_HOSTS {
        // Refused where the URL is named: there is no source to hand to
        // `token_source`, so nothing can send the key secret there.
        let error = OAuth2Source::new().auth_host(host).err();
        assert!(
            matches!(
                error,
                Some(ConfigError::InvalidUrl {
                    field: "auth host",
                    ..
                })
            ),
            "{host}: {error:?}"
        );
        let text = format!("{error:?} {}", error.as_ref().unwrap());
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert_eq!(sinch.token_requests(), 0);
    // The same path with an allowed host is live: the custom source
    // fetches from it, once, with the key.
    let source = OAuth2Source::new().auth_host(&sinch.url()).unwrap();
    let layer = SinchAuthLayer::builder(StaticCredentials::new(key))
        .scheme(Scheme::OAuth2)
        .token_source(source)
        .build()
        .unwrap();
    let capture = Capture::default();
    tokio::time::timeout(
        Duration::from_secs(10),
        layer
            .layer(capture.service())
            .oneshot(get("https://us.sms.api.sinch.com/x")),
    )
    .await
    .expect("the request finishes")
    .unwrap();
    assert_eq!(sinch.token_requests(), 1);
    assert!(capture.last().headers.contains_key(AUTHORIZATION));
}

#[test]
fn a_standalone_oauth2_source_widens_only_through_its_own_allow_domain() {
    // The layer's allow_domain widens the layer's own fetch...
    assert!(
        oauth2_build(
            "https://auth.sinch-proxy.example",
            Some("sinch-proxy.example")
        )
        .is_ok()
    );
    // ...a source built apart names its extra domain itself, before the host.
    assert!(
        OAuth2Source::new()
            .auth_host("https://auth.sinch-proxy.example")
            .is_err()
    );
    let allowed = || {
        OAuth2Source::new()
            .allow_domain("sinch-proxy.example")
            .unwrap()
    };
    assert_eq!(
        allowed()
            .auth_host("https://auth.sinch-proxy.example")
            .unwrap()
            .token_url(),
        "https://auth.sinch-proxy.example/oauth2/token"
    );
    for bad in [
        "https://auth.sinch-proxy.example.evil.example",
        "https://evilsinch-proxy.example",
        "http://auth.sinch-proxy.example",
        "https://user:hunter2@auth.sinch-proxy.example",
        "https://auth.sinch-proxy.example@evil.example",
        "https://auth.sinch-proxy.example%2eevil.example",
        "https://auth.sinch-proxy.example/../evil",
        "",
        "https://",
    ] {
        assert!(
            matches!(
                allowed().auth_host(bad),
                Err(ConfigError::InvalidUrl {
                    field: "auth host",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        OAuth2Source::new().allow_domain("*.example"),
        Err(ConfigError::InvalidSetting { .. })
    ));
    // The layer's loopback switch reaches its own fetch as well.
    let key = AccessKey::new("project-m", "key-id-m", "KEY-SECRET-m").unwrap();
    let no_loopback = SinchAuthLayer::builder(StaticCredentials::new(key))
        .scheme(Scheme::OAuth2)
        .auth_host("http://127.0.0.1:9")
        .allow_loopback(false)
        .build();
    assert!(matches!(
        no_loopback,
        Err(ConfigError::InvalidUrl {
            field: "auth host",
            ..
        })
    ));
}
