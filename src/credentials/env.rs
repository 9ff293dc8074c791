use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;

use super::{
    AccessKey, ApplicationCredentials, CredentialProvider, Credentials, CredentialsId, ServicePlan,
};
use crate::error::ConfigError;
use crate::host::{Region, Regions, VoiceRegion};

/// Credentials read from the `SINCH_*` environment variables of Sinch's samples.
///
/// | Variables | Credential |
/// |---|---|
/// | `SINCH_PROJECT_ID`, `SINCH_KEY_ID`, `SINCH_KEY_SECRET` | [`AccessKey`] |
/// | `SINCH_APPLICATION_KEY`, `SINCH_APPLICATION_SECRET` | [`ApplicationCredentials`] |
/// | `SINCH_SERVICE_PLAN_ID`, `SINCH_API_TOKEN` | [`ServicePlan`] |
/// | `SINCH_REGION` (optional) | [`Region`], the fallback of the next two |
/// | `SINCH_SMS_REGION`, `SINCH_CONVERSATION_REGION` (optional) | [`Regions`] |
/// | `SINCH_VOICE_REGION` (optional, default `global`) | [`VoiceRegion`] |
///
/// A group is read when any of its variables other than `SINCH_PROJECT_ID` is
/// set; then all of its variables are required. At least one group must be
/// present. Every problem is a [`ConfigError`] naming the variable, never its
/// value. The variables are read once, when the provider is built.
///
/// Tests can feed the variables without touching the process environment:
///
/// ```
/// use sinch_auth::{ConfigError, EnvCredentials};
///
/// let vars = [("SINCH_SERVICE_PLAN_ID", "plan"), ("SINCH_API_TOKEN", "token")];
/// let env = EnvCredentials::from_lookup(|name| {
///     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into())
/// })?;
/// assert_eq!(env.credentials().service_plan().unwrap().id(), "plan");
///
/// let err = EnvCredentials::from_lookup(|name| (name == "SINCH_KEY_ID").then(|| "k".into()));
/// assert_eq!(err.unwrap_err(), ConfigError::MissingEnvVar { name: "SINCH_PROJECT_ID" });
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone)]
pub struct EnvCredentials {
    credentials: Arc<Credentials>,
    region: Option<Region>,
    regions: Regions,
}

impl EnvCredentials {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the variables through `lookup` instead of the process environment.
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let regions = read_regions(&mut lookup)?;
        let mut read = |name: &'static str| read_var(&mut lookup, name);

        let project_id = read("SINCH_PROJECT_ID")?;
        let key_id = read("SINCH_KEY_ID")?;
        let key_secret = read("SINCH_KEY_SECRET")?;
        let app_key = read("SINCH_APPLICATION_KEY")?;
        let app_secret = read("SINCH_APPLICATION_SECRET")?;
        let plan_id = read("SINCH_SERVICE_PLAN_ID")?;
        let api_token = read("SINCH_API_TOKEN")?;
        let region = parse_region(read("SINCH_REGION")?, "SINCH_REGION")?;

        let mut builder = Credentials::builder();
        let mut any = false;
        if key_id.is_some() || key_secret.is_some() {
            let key = AccessKey::new(
                require("SINCH_PROJECT_ID", project_id)?,
                require("SINCH_KEY_ID", key_id)?,
                require("SINCH_KEY_SECRET", key_secret)?,
            )
            .map_err(to_env_error)?;
            builder = builder.access_key(key);
            any = true;
        }
        if app_key.is_some() || app_secret.is_some() {
            let app = ApplicationCredentials::new(
                require("SINCH_APPLICATION_KEY", app_key)?,
                require("SINCH_APPLICATION_SECRET", app_secret)?,
            )
            .map_err(to_env_error)?;
            builder = builder.application(app);
            any = true;
        }
        if plan_id.is_some() || api_token.is_some() {
            let plan = ServicePlan::new(
                require("SINCH_SERVICE_PLAN_ID", plan_id)?,
                require("SINCH_API_TOKEN", api_token)?,
            )
            .map_err(to_env_error)?;
            builder = builder.service_plan(plan);
            any = true;
        }
        if !any {
            return Err(ConfigError::NoCredentialsInEnv);
        }
        Ok(Self {
            credentials: Arc::new(builder.build()),
            region,
            regions,
        })
    }

    /// The credentials that were read, shared: the same answer as
    /// [`CredentialProvider::credentials`], without importing the trait.
    ///
    /// ```
    /// use sinch_auth::{EnvCredentials, RotatingCredentials, StaticCredentials};
    ///
    /// # let vars = [("SINCH_SERVICE_PLAN_ID", "plan"), ("SINCH_API_TOKEN", "token")];
    /// # let env = EnvCredentials::from_lookup(|name| {
    /// #     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into())
    /// # })?;
    /// // Any provider starts from it; a rotation can later replace it.
    /// let rotating = RotatingCredentials::new(env.credentials());
    /// let fixed = StaticCredentials::new(env.credentials());
    /// // Single credentials are cheap clones, for verifiers say.
    /// let plan = env.credentials().service_plan().cloned();
    /// # assert_eq!(plan.unwrap().id(), "plan");
    /// # let _ = (rotating, fixed);
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials.clone()
    }

    /// `SINCH_REGION`, if it was set.
    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// The region of each API: `SINCH_SMS_REGION`, `SINCH_CONVERSATION_REGION`
    /// (each falling back to `SINCH_REGION`) and `SINCH_VOICE_REGION`; see
    /// [`Regions::from_env`].
    ///
    /// ```
    /// use sinch_auth::EnvCredentials;
    ///
    /// let vars = [
    ///     ("SINCH_SERVICE_PLAN_ID", "plan"),
    ///     ("SINCH_API_TOKEN", "token"),
    ///     ("SINCH_SMS_REGION", "ca"),
    /// ];
    /// let env = EnvCredentials::from_lookup(|name| {
    ///     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into())
    /// })?;
    /// let url = env.regions().sms_url(&env.credentials());
    /// assert_eq!(url, Ok("https://ca.sms.api.sinch.com"));
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn regions(&self) -> Regions {
        self.regions
    }
}

/// One variable: absent, or a non-empty UTF-8 value.
fn read_var(
    lookup: &mut impl FnMut(&str) -> Option<OsString>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match lookup(name) {
        None => Ok(None),
        Some(value) => match value.into_string() {
            Ok(s) if s.is_empty() => Err(ConfigError::InvalidEnvVar {
                name,
                reason: "is empty",
            }),
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(ConfigError::InvalidEnvVar {
                name,
                reason: "is not valid UTF-8",
            }),
        },
    }
}

fn parse_region(value: Option<String>, name: &'static str) -> Result<Option<Region>, ConfigError> {
    value
        .map(|r| {
            r.parse::<Region>().map_err(|_| ConfigError::InvalidEnvVar {
                name,
                reason: "is not one of us, eu, au, br, ca",
            })
        })
        .transpose()
}

/// The per-API regions (see [`Regions::from_env`]). A region set for one API
/// by its own variable must be one that API serves; the shared
/// `SINCH_REGION` is checked when a URL is asked for, since one value may
/// suit SMS and not Conversation.
pub(crate) fn read_regions(
    mut lookup: impl FnMut(&str) -> Option<OsString>,
) -> Result<Regions, ConfigError> {
    let shared = parse_region(read_var(&mut lookup, "SINCH_REGION")?, "SINCH_REGION")?;
    let sms = parse_region(
        read_var(&mut lookup, "SINCH_SMS_REGION")?,
        "SINCH_SMS_REGION",
    )?;
    let conversation = parse_region(
        read_var(&mut lookup, "SINCH_CONVERSATION_REGION")?,
        "SINCH_CONVERSATION_REGION",
    )?;
    if let Some(region) = conversation {
        if region.conversation_url().is_none() {
            return Err(ConfigError::InvalidEnvVar {
                name: "SINCH_CONVERSATION_REGION",
                reason: "is a region Conversation is not served in (us, eu, br)",
            });
        }
    }
    let voice = read_var(&mut lookup, "SINCH_VOICE_REGION")?
        .map(|v| {
            v.parse::<VoiceRegion>()
                .map_err(|_| ConfigError::InvalidEnvVar {
                    name: "SINCH_VOICE_REGION",
                    reason: "is not one of global, euc1, use1, sae1, apse1, apse2",
                })
        })
        .transpose()?
        .unwrap_or_default();
    let mut regions = Regions::new().voice(voice);
    if let Some(region) = sms.or(shared) {
        regions = regions.sms(region);
    }
    if let Some(region) = conversation.or(shared) {
        regions = regions.conversation(region);
    }
    Ok(regions)
}

/// Every variable [`EnvCredentials`] reads; also the file names
/// [`FileCredentials`](super::FileCredentials) looks for in a directory.
pub(crate) const VARIABLES: &[&str] = &[
    "SINCH_PROJECT_ID",
    "SINCH_KEY_ID",
    "SINCH_KEY_SECRET",
    "SINCH_APPLICATION_KEY",
    "SINCH_APPLICATION_SECRET",
    "SINCH_SERVICE_PLAN_ID",
    "SINCH_API_TOKEN",
    "SINCH_REGION",
    "SINCH_SMS_REGION",
    "SINCH_CONVERSATION_REGION",
    "SINCH_VOICE_REGION",
];

fn require(name: &'static str, value: Option<String>) -> Result<String, ConfigError> {
    value.ok_or(ConfigError::MissingEnvVar { name })
}

/// Re-labels a credential error with the variable the field came from.
fn to_env_error(err: ConfigError) -> ConfigError {
    let (field, reason) = match &err {
        ConfigError::EmptyField { field } => (*field, "is empty"),
        ConfigError::InvalidSecretEncoding { field } => (
            *field,
            "is not valid base64 (standard alphabet, padding optional)",
        ),
        ConfigError::InvalidField { field, reason } => (*field, *reason),
        _ => return err,
    };
    let name = match field {
        "project id" => "SINCH_PROJECT_ID",
        "key id" => "SINCH_KEY_ID",
        "key secret" => "SINCH_KEY_SECRET",
        "application key" => "SINCH_APPLICATION_KEY",
        "application secret" => "SINCH_APPLICATION_SECRET",
        "service plan id" => "SINCH_SERVICE_PLAN_ID",
        "API token" => "SINCH_API_TOKEN",
        _ => return err,
    };
    ConfigError::InvalidEnvVar { name, reason }
}

impl CredentialProvider for EnvCredentials {
    fn credentials(&self) -> Arc<Credentials> {
        self.credentials.clone()
    }

    fn current_id(&self) -> CredentialsId {
        self.credentials.id()
    }
}

impl fmt::Debug for EnvCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvCredentials")
            .field("credentials", &self.credentials)
            .field("region", &self.region)
            .field("regions", &self.regions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl FnMut(&str) -> Option<OsString> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).map(OsString::from)
    }

    const FULL: &[(&str, &str)] = &[
        ("SINCH_PROJECT_ID", "proj-1"),
        ("SINCH_KEY_ID", "key-1"),
        ("SINCH_KEY_SECRET", "ENV-KEY-SECRET-q1"),
        ("SINCH_APPLICATION_KEY", "app-1"),
        ("SINCH_APPLICATION_SECRET", "RU5WLUFQUC1TRUNSRVQtcTI="),
        ("SINCH_SERVICE_PLAN_ID", "plan-1"),
        ("SINCH_API_TOKEN", "ENV-API-TOKEN-q3"),
        ("SINCH_REGION", "eu"),
    ];

    #[test]
    fn reads_every_group_and_the_region() {
        let env = EnvCredentials::from_lookup(lookup(FULL)).unwrap();
        let c = env.credentials();
        let key = c.access_key().unwrap();
        assert_eq!((key.project_id(), key.key_id()), ("proj-1", "key-1"));
        assert_eq!(key.key_secret().expose_secret(), "ENV-KEY-SECRET-q1");
        assert_eq!(c.application().unwrap().key(), "app-1");
        assert_eq!(
            c.application().unwrap().decoded_secret().expose_secret(),
            b"ENV-APP-SECRET-q2"
        );
        assert_eq!(c.service_plan().unwrap().id(), "plan-1");
        assert_eq!(env.region(), Some(Region::Eu));
        let debug = format!("{env:?}");
        assert!(!debug.contains("-q1") && !debug.contains("-q3") && !debug.contains("RU5W"));
    }

    #[test]
    fn each_missing_variable_is_named() {
        for missing in [
            "SINCH_PROJECT_ID",
            "SINCH_KEY_ID",
            "SINCH_KEY_SECRET",
            "SINCH_APPLICATION_KEY",
            "SINCH_APPLICATION_SECRET",
            "SINCH_SERVICE_PLAN_ID",
            "SINCH_API_TOKEN",
        ] {
            let vars: Vec<_> = FULL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = EnvCredentials::from_lookup(lookup(&vars)).unwrap_err();
            assert_eq!(err, ConfigError::MissingEnvVar { name: missing });
            assert!(err.to_string().contains(missing));
        }
    }

    #[test]
    fn each_malformed_variable_is_named_without_its_value() {
        let cases: &[(&str, &str)] = &[
            ("SINCH_APPLICATION_SECRET", "%%not-base64-VALUE%%"),
            ("SINCH_KEY_ID", "has:colon-VALUE"),
            ("SINCH_KEY_SECRET", "two words-VALUE"),
            ("SINCH_API_TOKEN", "line\nbreak-VALUE"),
            ("SINCH_REGION", "mars-VALUE"),
            ("SINCH_PROJECT_ID", ""),
        ];
        for (name, value) in cases {
            let vars: Vec<_> = FULL
                .iter()
                .map(|(k, v)| if k == name { (*k, *value) } else { (*k, *v) })
                .collect();
            let err = EnvCredentials::from_lookup(lookup(&vars)).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidEnvVar { name: n, .. } if n == *name),
                "{name}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(name));
            assert!(!message.contains("VALUE"), "{message}");
        }
    }

    #[test]
    fn non_utf8_values_are_rejected() {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let err = EnvCredentials::from_lookup(|name| {
                (name == "SINCH_API_TOKEN").then(|| OsString::from_vec(vec![0xff, 0xfe]))
            })
            .unwrap_err();
            assert_eq!(
                err,
                ConfigError::InvalidEnvVar {
                    name: "SINCH_API_TOKEN",
                    reason: "is not valid UTF-8"
                }
            );
        }
    }

    #[test]
    fn nothing_set_is_its_own_error_and_project_id_alone_is_not_a_group() {
        assert_eq!(
            EnvCredentials::from_lookup(lookup(&[])).unwrap_err(),
            ConfigError::NoCredentialsInEnv
        );
        assert_eq!(
            EnvCredentials::from_lookup(lookup(&[("SINCH_PROJECT_ID", "p")])).unwrap_err(),
            ConfigError::NoCredentialsInEnv
        );
        let only_plan = EnvCredentials::from_lookup(lookup(&[
            ("SINCH_SERVICE_PLAN_ID", "p"),
            ("SINCH_API_TOKEN", "t"),
        ]))
        .unwrap();
        assert!(only_plan.credentials().access_key().is_none());
        assert!(only_plan.region().is_none());
    }
}
