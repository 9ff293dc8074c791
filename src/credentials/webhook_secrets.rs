use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::error::ConfigError;

/// The secrets that Sinch signs callbacks with, read from the environment
/// under the names of Sinch's Node SDK:
///
/// | Variable | Verifies |
/// |---|---|
/// | `SINCH_CONVERSATION_APP_SECRET` | Conversation webhooks (the secret set on the Conversation app's webhook) |
/// | `SINCH_SMS_APP_SECRET` | SMS callbacks (signed once Sinch enables signing for the account) |
/// | `SINCH_NUMBERS_CALLBACK_SECRET` | Numbers callbacks (the `hmacSecret` of the callback configuration) |
///
/// Voice and Verification callbacks are signed with the application secret,
/// `SINCH_APPLICATION_SECRET`, which [`EnvCredentials`](crate::EnvCredentials) reads.
///
/// Each variable is optional; a receiver asks for the one it needs. Values
/// are taken exactly as set (a webhook secret is not base64-decoded), so a
/// value with a control character (a newline picked up from a file, say) is
/// refused: it would never match Sinch's signature. Every problem is a
/// [`ConfigError`] naming the variable, never its value.
///
/// ```
/// use sinch_auth::{ConfigError, ExposeSecret, WebhookSecrets};
/// use sinch_auth::verify::WebhookVerifier;
///
/// let vars = [("SINCH_CONVERSATION_APP_SECRET", "conversation-secret")];
/// let secrets = WebhookSecrets::from_lookup(|name| {
///     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into())
/// })?;
/// let secret = secrets.require_conversation()?;
/// let verifier = WebhookVerifier::new(secret.expose_secret());
/// assert_eq!(
///     secrets.require_numbers().unwrap_err(),
///     ConfigError::MissingEnvVar { name: "SINCH_NUMBERS_CALLBACK_SECRET" },
/// );
/// # let _ = verifier;
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    conversation: Option<Arc<SecretString>>,
    sms: Option<Arc<SecretString>>,
    numbers: Option<Arc<SecretString>>,
}

const CONVERSATION: &str = "SINCH_CONVERSATION_APP_SECRET";
const SMS: &str = "SINCH_SMS_APP_SECRET";
const NUMBERS: &str = "SINCH_NUMBERS_CALLBACK_SECRET";

impl WebhookSecrets {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the variables through `lookup` instead of the process environment.
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let mut read = |name: &'static str| -> Result<Option<Arc<SecretString>>, ConfigError> {
            let Some(value) = lookup(name) else {
                return Ok(None);
            };
            let Ok(value) = value.into_string() else {
                return Err(ConfigError::InvalidEnvVar {
                    name,
                    reason: "is not valid UTF-8",
                });
            };
            let value = SecretString::from(value);
            let text = value.expose_secret();
            if text.is_empty() {
                return Err(ConfigError::InvalidEnvVar {
                    name,
                    reason: "is empty",
                });
            }
            if text.chars().any(char::is_control) {
                return Err(ConfigError::InvalidEnvVar {
                    name,
                    reason: "contains a control character (a trailing newline?)",
                });
            }
            Ok(Some(Arc::new(value)))
        };
        Ok(Self {
            conversation: read(CONVERSATION)?,
            sms: read(SMS)?,
            numbers: read(NUMBERS)?,
        })
    }

    /// `SINCH_CONVERSATION_APP_SECRET`, if set.
    pub fn conversation(&self) -> Option<&SecretString> {
        self.conversation.as_deref()
    }

    /// `SINCH_SMS_APP_SECRET`, if set.
    pub fn sms(&self) -> Option<&SecretString> {
        self.sms.as_deref()
    }

    /// `SINCH_NUMBERS_CALLBACK_SECRET`, if set.
    pub fn numbers(&self) -> Option<&SecretString> {
        self.numbers.as_deref()
    }

    /// `SINCH_CONVERSATION_APP_SECRET`, or [`ConfigError::MissingEnvVar`] naming it.
    pub fn require_conversation(&self) -> Result<&SecretString, ConfigError> {
        self.conversation()
            .ok_or(ConfigError::MissingEnvVar { name: CONVERSATION })
    }

    /// `SINCH_SMS_APP_SECRET`, or [`ConfigError::MissingEnvVar`] naming it.
    pub fn require_sms(&self) -> Result<&SecretString, ConfigError> {
        self.sms().ok_or(ConfigError::MissingEnvVar { name: SMS })
    }

    /// `SINCH_NUMBERS_CALLBACK_SECRET`, or [`ConfigError::MissingEnvVar`] naming it.
    pub fn require_numbers(&self) -> Result<&SecretString, ConfigError> {
        self.numbers()
            .ok_or(ConfigError::MissingEnvVar { name: NUMBERS })
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<Arc<SecretString>>| s.as_ref().map(|_| "[REDACTED]");
        f.debug_struct("WebhookSecrets")
            .field("conversation", &shown(&self.conversation))
            .field("sms", &shown(&self.sms))
            .field("numbers", &shown(&self.numbers))
            .finish()
    }
}
