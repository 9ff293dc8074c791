//! Per-API regions from configuration, with the SDKs' defaults and a typed
//! error for a region an API is not served in; webhook secrets from the
//! environment under the SDKs' names.

use std::ffi::OsString;

use sinch_auth::host::{Region, RegionError, RegionalApi, Regions, VoiceRegion};
use sinch_auth::{
    AccessKey, ConfigError, Credentials, EnvCredentials, ExposeSecret, ServicePlan, WebhookSecrets,
};

fn vars(pairs: &[(&'static str, &'static str)]) -> impl FnMut(&str) -> Option<OsString> + use<> {
    let pairs = pairs.to_vec();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.into())
    }
}

fn project() -> Credentials {
    Credentials::from(AccessKey::new("proj", "key", "secret").unwrap())
}

fn plan() -> Credentials {
    Credentials::from(ServicePlan::new("plan", "token").unwrap())
}

#[test]
fn each_api_reads_its_own_variable_before_the_shared_one() {
    let regions = Regions::from_lookup(vars(&[
        ("SINCH_REGION", "us"),
        ("SINCH_SMS_REGION", "EU"),
        ("SINCH_CONVERSATION_REGION", "br"),
        ("SINCH_VOICE_REGION", "apse2"),
    ]))
    .unwrap();
    assert_eq!(
        regions.sms_project_url(),
        Ok("https://zt.eu.sms.api.sinch.com")
    );
    assert_eq!(
        regions.sms_service_plan_url(),
        Ok("https://eu.sms.api.sinch.com")
    );
    assert_eq!(
        regions.conversation_url(),
        Ok("https://br.conversation.api.sinch.com")
    );
    assert_eq!(
        regions.template_url(),
        Ok("https://br.template.api.sinch.com")
    );
    assert_eq!(regions.voice_url(), "https://calling-apse2.api.sinch.com");

    let shared = Regions::from_lookup(vars(&[("SINCH_REGION", "eu")])).unwrap();
    assert_eq!(shared.sms_region(), Some(Region::Eu));
    assert_eq!(shared.conversation_region(), Some(Region::Eu));
}

#[test]
fn without_configuration_voice_is_global_and_sms_and_conversation_name_the_variable_to_set() {
    let regions = Regions::from_lookup(vars(&[])).unwrap();
    assert_eq!(regions.voice_url(), "https://calling.api.sinch.com");
    assert_eq!(regions.fax_url(), "https://fax.api.sinch.com");
    let err = regions.sms_url(&project()).unwrap_err();
    assert_eq!(
        err,
        RegionError::NotSet {
            api: RegionalApi::SmsProject
        }
    );
    assert!(err.to_string().contains("SINCH_SMS_REGION"), "{err}");
    let err = regions.conversation_url().unwrap_err();
    assert!(
        err.to_string().contains("SINCH_CONVERSATION_REGION"),
        "{err}"
    );
}

#[test]
fn project_credentials_are_refused_sms_outside_the_us_and_eu_and_a_service_plan_is_not() {
    for region in [Region::Au, Region::Br, Region::Ca] {
        let regions = Regions::new().sms(region);
        assert_eq!(
            regions.sms_url(&project()),
            Err(RegionError::NotServed {
                api: RegionalApi::SmsProject,
                region
            })
        );
        assert_eq!(region.sms_project_url(), None);
        assert_eq!(
            regions.sms_url(&plan()),
            Ok(region.sms_url()),
            "service plans are served in {region}"
        );
    }
    for region in [Region::Us, Region::Eu] {
        let url = Regions::new().sms(region).sms_url(&project()).unwrap();
        assert_eq!(url, format!("https://zt.{region}.sms.api.sinch.com"));
    }
    assert_eq!(
        RegionalApi::SmsProject.served(),
        &[Region::Us, Region::Eu][..]
    );
}

#[test]
fn with_both_a_service_plan_and_a_project_key_sms_uses_the_service_plan_host() {
    let both = Credentials::builder()
        .access_key(AccessKey::new("proj", "key", "secret").unwrap())
        .service_plan(ServicePlan::new("plan", "token").unwrap())
        .build();
    let regions = Regions::new().sms(Region::Us);
    assert_eq!(regions.sms_url(&both), Ok("https://us.sms.api.sinch.com"));
    let neither = Credentials::builder().build();
    assert_eq!(
        regions.sms_url(&neither),
        Err(RegionError::NoSmsCredentials)
    );
}

#[test]
fn conversation_outside_us_eu_br_is_a_config_error_naming_its_variable_or_a_url_error_via_the_shared_one()
 {
    let err = Regions::from_lookup(vars(&[("SINCH_CONVERSATION_REGION", "au")])).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::InvalidEnvVar {
                name: "SINCH_CONVERSATION_REGION",
                ..
            }
        ),
        "{err:?}"
    );
    // SINCH_REGION=au suits SMS with a service plan; Conversation says why not.
    let regions = Regions::from_lookup(vars(&[("SINCH_REGION", "au")])).unwrap();
    assert_eq!(regions.sms_url(&plan()), Ok("https://au.sms.api.sinch.com"));
    assert_eq!(
        regions.conversation_url(),
        Err(RegionError::NotServed {
            api: RegionalApi::Conversation,
            region: Region::Au
        })
    );
}

#[test]
fn voice_regions_take_the_node_codes_and_the_java_names_and_bad_values_name_the_variable() {
    for (value, region) in [
        ("global", VoiceRegion::Global),
        ("euc1", VoiceRegion::Euc1),
        ("europe", VoiceRegion::Euc1),
        ("use1", VoiceRegion::Use1),
        ("north-america", VoiceRegion::Use1),
        ("sae1", VoiceRegion::Sae1),
        ("south-america", VoiceRegion::Sae1),
        ("apse1", VoiceRegion::Apse1),
        ("south-east-asia1", VoiceRegion::Apse1),
        ("APSE2", VoiceRegion::Apse2),
        ("south-east-asia2", VoiceRegion::Apse2),
    ] {
        assert_eq!(value.parse::<VoiceRegion>(), Ok(region), "{value}");
    }
    for region in VoiceRegion::ALL {
        assert_eq!(region.as_str().parse::<VoiceRegion>(), Ok(region));
    }
    for (name, value) in [
        ("SINCH_VOICE_REGION", "mars"),
        ("SINCH_SMS_REGION", "zz"),
        ("SINCH_REGION", "moon"),
        ("SINCH_SMS_REGION", ""),
    ] {
        let err = Regions::from_lookup(vars(&[(name, value)])).unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidEnvVar { name: n, .. } if n == name),
            "{name}={value}: {err:?}"
        );
    }
}

#[test]
fn environment_credentials_carry_their_regions() {
    let env = EnvCredentials::from_lookup(vars(&[
        ("SINCH_PROJECT_ID", "proj"),
        ("SINCH_KEY_ID", "key"),
        ("SINCH_KEY_SECRET", "secret"),
        ("SINCH_SMS_REGION", "eu"),
        ("SINCH_VOICE_REGION", "euc1"),
    ]))
    .unwrap();
    let regions = env.regions();
    assert_eq!(
        regions.sms_url(&env.credentials()),
        Ok("https://zt.eu.sms.api.sinch.com")
    );
    assert_eq!(regions.voice_url(), "https://calling-euc1.api.sinch.com");
    let err = EnvCredentials::from_lookup(vars(&[
        ("SINCH_SERVICE_PLAN_ID", "plan"),
        ("SINCH_API_TOKEN", "token"),
        ("SINCH_VOICE_REGION", "nowhere"),
    ]))
    .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::InvalidEnvVar {
            name: "SINCH_VOICE_REGION",
            ..
        }
    ));
}

#[test]
fn webhook_secrets_are_read_under_the_sdk_names_and_kept_out_of_debug() {
    let secrets = WebhookSecrets::from_lookup(vars(&[
        ("SINCH_CONVERSATION_APP_SECRET", "CONV-HOOK-SECRET-w1"),
        ("SINCH_SMS_APP_SECRET", "SMS-HOOK-SECRET-w2"),
        ("SINCH_NUMBERS_CALLBACK_SECRET", "NUMBERS-HOOK-SECRET-w3"),
    ]))
    .unwrap();
    assert_eq!(
        secrets.require_conversation().unwrap().expose_secret(),
        "CONV-HOOK-SECRET-w1"
    );
    assert_eq!(
        secrets.require_sms().unwrap().expose_secret(),
        "SMS-HOOK-SECRET-w2"
    );
    assert_eq!(
        secrets.numbers().unwrap().expose_secret(),
        "NUMBERS-HOOK-SECRET-w3"
    );
    let debug = format!("{secrets:?} {:?}", secrets.clone());
    assert!(!debug.contains("HOOK-SECRET"), "{debug}");

    let none = WebhookSecrets::from_lookup(vars(&[])).unwrap();
    assert!(none.sms().is_none());
    for (err, name) in [
        (
            none.require_conversation().unwrap_err(),
            "SINCH_CONVERSATION_APP_SECRET",
        ),
        (none.require_sms().unwrap_err(), "SINCH_SMS_APP_SECRET"),
        (
            none.require_numbers().unwrap_err(),
            "SINCH_NUMBERS_CALLBACK_SECRET",
        ),
    ] {
        assert_eq!(err, ConfigError::MissingEnvVar { name });
    }
}

#[test]
fn a_malformed_webhook_secret_is_refused_naming_the_variable_not_the_value() {
    for (name, value) in [
        ("SINCH_SMS_APP_SECRET", "LEAKED-secret\n"),
        ("SINCH_CONVERSATION_APP_SECRET", ""),
        ("SINCH_NUMBERS_CALLBACK_SECRET", "LEAKED\u{7}bell"),
    ] {
        let err = WebhookSecrets::from_lookup(vars(&[(name, value)])).unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidEnvVar { name: n, .. } if n == name),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(name) && !message.contains("LEAKED"),
            "{message}"
        );
    }
}

#[test]
fn regions_and_their_errors_display_in_sinch_s_terms() {
    assert_eq!(VoiceRegion::Euc1.to_string(), "euc1");
    assert_eq!(VoiceRegion::Global.to_string(), "global");
    assert_eq!(Region::Br.to_string(), "br");
    let not_served = RegionError::NotServed {
        api: RegionalApi::SmsProject,
        region: Region::Ca,
    };
    assert_eq!(
        not_served.to_string(),
        "SMS with project credentials (OAuth2) is not served in region ca"
    );
    let not_set = RegionError::NotSet {
        api: RegionalApi::Conversation,
    };
    assert_eq!(
        not_set.to_string(),
        "no region configured for Conversation: set SINCH_CONVERSATION_REGION (or SINCH_REGION)"
    );
    assert_eq!(
        RegionalApi::SmsServicePlan.to_string(),
        "SMS with a service plan"
    );
    let regions = Regions::new().voice(VoiceRegion::Sae1);
    assert_eq!(regions.voice_region(), VoiceRegion::Sae1);
}

/// `from_env` reads the real process environment. The variables are set on
/// a child process (this test binary, running only the test below), since
/// changing this process's environment is not safe while other tests run.
#[test]
fn from_env_reads_the_process_environment() {
    const CHILD: &str = "SINCH_AUTH_REGIONS_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let regions = Regions::from_env().unwrap();
        assert_eq!(regions.voice_region(), VoiceRegion::Apse1);
        assert_eq!(regions.sms_region(), Some(Region::Ca));
        assert!(WebhookSecrets::from_env().unwrap().sms().is_some());
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SINCH_") {
            child.env_remove(name);
        }
    }
    let status = child
        .args([
            "--exact",
            "from_env_reads_the_process_environment",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("SINCH_VOICE_REGION", "apse1")
        .env("SINCH_SMS_REGION", "ca")
        .env("SINCH_SMS_APP_SECRET", "child-secret")
        .status()
        .unwrap();
    assert!(status.success(), "the child's checks failed");
}
