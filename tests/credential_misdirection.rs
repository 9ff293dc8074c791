//! Credentials go to Sinch (https, `sinch.com` and its subdomains) and to
//! loopback, nowhere else: look-alike hosts, userinfo tricks and arbitrary
//! host names never receive an `Authorization` header, through one layer
//! that has seen (and memoized verdicts for) many hosts.

mod common;

use common::{Capture, get};
use http::header::AUTHORIZATION;
use proptest::prelude::*;
use sinch_auth::{Scheme, ServicePlan, SinchAuthLayer, StaticCredentials};
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
