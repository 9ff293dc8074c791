//! Credentials in Sinch's own terms, and the providers that hand them out.
//!
//! A Sinch user holds up to three kinds of credential (protocol notes §1), all from the
//! Sinch dashboard:
//!
//! | Type | Parts | Used for |
//! |---|---|---|
//! | [`AccessKey`] | project id, key id, key secret | OAuth2 bearer tokens (Conversation, SMS, Numbers, Fax …) |
//! | [`ApplicationCredentials`] | application key, application secret (base64) | signed requests (Voice, Verification), self-signed JWTs |
//! | [`ServicePlan`] | service plan id, API token | SMS bearer, Basic on legacy endpoints |
//!
//! plus a plain [`BearerToken`] and [`BasicCredentials`] for anything else.
//! [`Credentials`] bundles whichever of them a deployment has; a
//! [`CredentialProvider`] hands out the current bundle.
//!
//! ```
//! use sinch_auth::{AccessKey, ApplicationCredentials, Credentials};
//!
//! let credentials = Credentials::builder()
//!     .access_key(AccessKey::new("my-project", "my-key-id", "my-key-secret")?)
//!     .application(ApplicationCredentials::new("my-app-key", "bXkta2V5LXNlY3JldA==")?)
//!     .build();
//! assert_eq!(credentials.access_key().unwrap().project_id(), "my-project");
//! // Secrets never show in Debug output.
//! assert!(!format!("{credentials:?}").contains("my-key-secret"));
//! # Ok::<(), sinch_auth::ConfigError>(())
//! ```

mod env;
mod file;
mod polling;
mod provider;
mod reload;
mod webhook_secrets;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

pub use env::EnvCredentials;
pub(crate) use env::read_regions;
pub use file::{FileCredentials, FileCredentialsBuilder};
pub use polling::{PollingCredentials, PollingCredentialsBuilder};
pub use provider::{CredentialProvider, RotatingCredentials, StaticCredentials};
pub use reload::ReloadError;
pub use webhook_secrets::WebhookSecrets;

use crate::error::{ConfigError, CredentialKind};

/// Standard base64, padding optional (protocol notes §4, "Where we differ").
pub(crate) const LENIENT_BASE64: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            // Spec C2's secret "9876543210" has non-zero bits after its last byte;
            // Sinch's SDKs (and Sinch) accept it, so we do too.
            .with_decode_allow_trailing_bits(true),
    );

fn non_empty(value: &str, field: &'static str) -> Result<(), ConfigError> {
    if value.is_empty() {
        Err(ConfigError::EmptyField { field })
    } else {
        Ok(())
    }
}

/// Identifiers and secrets end up in header values: reject control characters
/// (CR/LF would split headers) and anything outside visible ASCII.
fn header_safe(value: &str, field: &'static str) -> Result<(), ConfigError> {
    non_empty(value, field)?;
    if value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        Ok(())
    } else {
        Err(ConfigError::InvalidField {
            field,
            reason: "contains whitespace, control or non-ASCII characters",
        })
    }
}

fn basic_user(value: &str, field: &'static str) -> Result<(), ConfigError> {
    header_safe(value, field)?;
    if value.contains(':') {
        // RFC 7617: the user-id of Basic credentials cannot contain a colon.
        Err(ConfigError::InvalidField {
            field,
            reason: "contains ':', which Basic authentication cannot carry in a user name",
        })
    } else {
        Ok(())
    }
}

/// A project access key: project id, key id and key secret. Exchanged for
/// OAuth2 bearer tokens at `auth.sinch.com` (protocol notes §2).
///
/// Cloning is cheap and copies no secret: clones share one allocation, and the
/// secret is zeroized when the last clone is dropped.
#[derive(Clone)]
pub struct AccessKey(Arc<AccessKeyParts>);

struct AccessKeyParts {
    project_id: String,
    key_id: String,
    key_secret: SecretString,
}

impl AccessKey {
    /// Builds an access key, checking that no part is empty or unusable in a header.
    ///
    /// ```
    /// let key = sinch_auth::AccessKey::new("project", "key-id", "key-secret")?;
    /// assert_eq!(key.key_id(), "key-id");
    /// assert!(sinch_auth::AccessKey::new("project", "", "s").is_err());
    /// # Ok::<(), sinch_auth::ConfigError>(())
    /// ```
    pub fn new(
        project_id: impl Into<String>,
        key_id: impl Into<String>,
        key_secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let project_id = project_id.into();
        let key_id = key_id.into();
        let key_secret = SecretString::from(key_secret.into());
        header_safe(&project_id, "project id")?;
        basic_user(&key_id, "key id")?;
        header_safe(key_secret.expose_secret(), "key secret")?;
        Ok(Self(Arc::new(AccessKeyParts {
            project_id,
            key_id,
            key_secret,
        })))
    }

    /// The project id (not secret).
    pub fn project_id(&self) -> &str {
        &self.0.project_id
    }

    /// The key id (not secret).
    pub fn key_id(&self) -> &str {
        &self.0.key_id
    }

    /// The key secret. Call [`expose_secret()`](crate::ExposeSecret::expose_secret)
    /// on it only where it is sent.
    pub fn key_secret(&self) -> &SecretString {
        &self.0.key_secret
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("project_id", &self.0.project_id)
            .field("key_id", &self.0.key_id)
            .field("key_secret", &"[REDACTED]")
            .finish()
    }
}

/// An application key and secret: signed requests for Voice and Verification
/// (protocol notes §4), self-signed JWTs (protocol notes §3) and in-app calling registration tokens.
///
/// The secret is base64 text as the dashboard shows it; it is decoded (standard
/// alphabet, padding optional) when the credentials are built, so a malformed
/// secret is a configuration error, not a request-time surprise.
///
/// Cloning is cheap and copies no secret: clones share one allocation, and
/// both forms of the secret are zeroized when the last clone is dropped. A
/// clone is what an [`ApplicationVerifier`](crate::verify::ApplicationVerifier)
/// takes when it checks callbacks with the credentials the layer signs with.
#[derive(Clone)]
pub struct ApplicationCredentials(Arc<ApplicationParts>);

struct ApplicationParts {
    key: String,
    secret: SecretString,
    decoded_secret: SecretSlice<u8>,
}

impl ApplicationCredentials {
    /// Builds application credentials, decoding the base64 secret.
    ///
    /// ```
    /// use sinch_auth::{ApplicationCredentials, ConfigError};
    ///
    /// let app = ApplicationCredentials::new("my-app", "bXkta2V5LXNlY3JldA==")?;
    /// assert_eq!(app.key(), "my-app");
    /// assert_eq!(
    ///     ApplicationCredentials::new("my-app", "not base64!").unwrap_err(),
    ///     ConfigError::InvalidSecretEncoding { field: "application secret" },
    /// );
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Result<Self, ConfigError> {
        let key = key.into();
        let secret = SecretString::from(secret.into());
        basic_user(&key, "application key")?;
        non_empty(secret.expose_secret(), "application secret")?;
        let decoded = LENIENT_BASE64
            .decode(secret.expose_secret().as_bytes())
            .map_err(|_| ConfigError::InvalidSecretEncoding {
                field: "application secret",
            })?;
        if decoded.is_empty() {
            return Err(ConfigError::EmptyField {
                field: "application secret",
            });
        }
        Ok(Self(Arc::new(ApplicationParts {
            key,
            secret,
            decoded_secret: SecretSlice::from(decoded),
        })))
    }

    /// The application key (not secret).
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The secret as given (base64 text), used by Verification's Basic alternative.
    pub fn secret(&self) -> &SecretString {
        &self.0.secret
    }

    /// The decoded secret bytes: the HMAC key for signing and JWTs.
    pub fn decoded_secret(&self) -> &SecretSlice<u8> {
        &self.0.decoded_secret
    }
}

impl fmt::Debug for ApplicationCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationCredentials")
            .field("key", &self.0.key)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// An SMS service plan: its id and API token.
///
/// Sent as `Authorization: Bearer {api_token}` (as Sinch's SDKs do), or as
/// `Basic base64(service_plan_id:api_token)` on legacy endpoints.
///
/// Cloning is cheap and copies no secret; the token is zeroized when the last
/// clone is dropped.
#[derive(Clone)]
pub struct ServicePlan(Arc<ServicePlanParts>);

struct ServicePlanParts {
    id: String,
    api_token: SecretString,
}

impl ServicePlan {
    /// Builds a service plan, checking that neither part is empty or unusable in a header.
    pub fn new(id: impl Into<String>, api_token: impl Into<String>) -> Result<Self, ConfigError> {
        let id = id.into();
        let api_token = SecretString::from(api_token.into());
        basic_user(&id, "service plan id")?;
        header_safe(api_token.expose_secret(), "API token")?;
        Ok(Self(Arc::new(ServicePlanParts { id, api_token })))
    }

    /// The service plan id (not secret).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The API token.
    pub fn api_token(&self) -> &SecretString {
        &self.0.api_token
    }
}

impl fmt::Debug for ServicePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServicePlan")
            .field("id", &self.0.id)
            .field("api_token", &"[REDACTED]")
            .finish()
    }
}

/// A plain bearer token, sent as `Authorization: Bearer {token}`.
///
/// Cloning is cheap and copies no secret; the token is zeroized when the last
/// clone is dropped.
#[derive(Clone)]
pub struct BearerToken(Arc<SecretString>);

impl BearerToken {
    /// Wraps a token, checking it can be sent in a header.
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = SecretString::from(token.into());
        header_safe(token.expose_secret(), "bearer token")?;
        Ok(Self(Arc::new(token)))
    }

    /// The token.
    pub fn token(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken([REDACTED])")
    }
}

/// A plain user name and password, sent as `Authorization: Basic base64(user:password)`.
///
/// Cloning is cheap and copies no secret; the password is zeroized when the
/// last clone is dropped.
#[derive(Clone)]
pub struct BasicCredentials(Arc<BasicParts>);

struct BasicParts {
    username: String,
    password: SecretString,
}

impl BasicCredentials {
    /// Builds Basic credentials. The user name cannot contain `:` (RFC 7617).
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let username = username.into();
        let password = SecretString::from(password.into());
        basic_user(&username, "user name")?;
        if password.expose_secret().chars().any(char::is_control) {
            return Err(ConfigError::InvalidField {
                field: "password",
                reason: "contains control characters",
            });
        }
        Ok(Self(Arc::new(BasicParts { username, password })))
    }

    /// The user name (not secret).
    pub fn username(&self) -> &str {
        &self.0.username
    }

    /// The password.
    pub fn password(&self) -> &SecretString {
        &self.0.password
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.0.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// Identifies one [`Credentials`] value; two bundles built separately never share one.
///
/// Caches key what they derive (headers, tokens) by it, which is how a rotation is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialsId(u64);

impl CredentialsId {
    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    pub(crate) fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The credentials of one deployment: whichever of the Sinch credential kinds it has.
///
/// Immutable once built; providers share it behind an `Arc`. Cloning is cheap
/// (one reference count per credential it holds, no secret copied) and a
/// clone keeps the [`id`](Self::id): it is the same bundle. See the
/// [module docs](self) for an example.
#[derive(Debug, Clone)]
pub struct Credentials {
    id: CredentialsId,
    access_key: Option<AccessKey>,
    application: Option<ApplicationCredentials>,
    service_plan: Option<ServicePlan>,
    bearer: Option<BearerToken>,
    basic: Option<BasicCredentials>,
}

impl Credentials {
    /// Starts an empty bundle.
    pub fn builder() -> CredentialsBuilder {
        CredentialsBuilder::default()
    }

    /// This bundle's identity.
    pub fn id(&self) -> CredentialsId {
        self.id
    }

    /// The project access key, if any.
    pub fn access_key(&self) -> Option<&AccessKey> {
        self.access_key.as_ref()
    }

    /// The application key and secret, if any.
    pub fn application(&self) -> Option<&ApplicationCredentials> {
        self.application.as_ref()
    }

    /// The SMS service plan, if any.
    pub fn service_plan(&self) -> Option<&ServicePlan> {
        self.service_plan.as_ref()
    }

    /// The plain bearer token, if any.
    pub fn bearer(&self) -> Option<&BearerToken> {
        self.bearer.as_ref()
    }

    /// The plain Basic credentials, if any.
    pub fn basic(&self) -> Option<&BasicCredentials> {
        self.basic.as_ref()
    }

    /// Whether the bundle holds a credential of this kind.
    pub fn has(&self, kind: CredentialKind) -> bool {
        match kind {
            CredentialKind::AccessKey => self.access_key.is_some(),
            CredentialKind::Application => self.application.is_some(),
            CredentialKind::ServicePlan => self.service_plan.is_some(),
            CredentialKind::Bearer => self.bearer.is_some(),
            CredentialKind::Basic => self.basic.is_some(),
        }
    }
}

impl Credentials {
    /// Whether both bundles hold the same credentials, secrets included
    /// (their ids aside). Reloading providers publish only on a change.
    pub(crate) fn same_content(&self, other: &Credentials) -> bool {
        fn same<T>(a: &Option<T>, b: &Option<T>, eq: impl Fn(&T, &T) -> bool) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        fn secret(a: &SecretString, b: &SecretString) -> bool {
            use subtle::ConstantTimeEq as _;
            a.expose_secret()
                .as_bytes()
                .ct_eq(b.expose_secret().as_bytes())
                .into()
        }
        same(&self.access_key, &other.access_key, |a, b| {
            a.project_id() == b.project_id()
                && a.key_id() == b.key_id()
                && secret(a.key_secret(), b.key_secret())
        }) && same(&self.application, &other.application, |a, b| {
            a.key() == b.key() && secret(a.secret(), b.secret())
        }) && same(&self.service_plan, &other.service_plan, |a, b| {
            a.id() == b.id() && secret(a.api_token(), b.api_token())
        }) && same(&self.bearer, &other.bearer, |a, b| {
            secret(a.token(), b.token())
        }) && same(&self.basic, &other.basic, |a, b| {
            a.username() == b.username() && secret(a.password(), b.password())
        })
    }
}

/// Builds a [`Credentials`] bundle.
#[derive(Debug, Default)]
#[must_use]
pub struct CredentialsBuilder {
    access_key: Option<AccessKey>,
    application: Option<ApplicationCredentials>,
    service_plan: Option<ServicePlan>,
    bearer: Option<BearerToken>,
    basic: Option<BasicCredentials>,
}

impl CredentialsBuilder {
    /// Adds a project access key.
    pub fn access_key(mut self, key: AccessKey) -> Self {
        self.access_key = Some(key);
        self
    }

    /// Adds application credentials.
    pub fn application(mut self, app: ApplicationCredentials) -> Self {
        self.application = Some(app);
        self
    }

    /// Adds an SMS service plan.
    pub fn service_plan(mut self, plan: ServicePlan) -> Self {
        self.service_plan = Some(plan);
        self
    }

    /// Adds a plain bearer token.
    pub fn bearer(mut self, token: BearerToken) -> Self {
        self.bearer = Some(token);
        self
    }

    /// Adds plain Basic credentials.
    pub fn basic(mut self, basic: BasicCredentials) -> Self {
        self.basic = Some(basic);
        self
    }

    /// Finishes the bundle, giving it a fresh [`CredentialsId`].
    pub fn build(self) -> Credentials {
        Credentials {
            id: CredentialsId::next(),
            access_key: self.access_key,
            application: self.application,
            service_plan: self.service_plan,
            bearer: self.bearer,
            basic: self.basic,
        }
    }
}

macro_rules! credentials_from {
    ($($ty:ty => $method:ident),* $(,)?) => {$(
        impl From<$ty> for Credentials {
            fn from(value: $ty) -> Self {
                Credentials::builder().$method(value).build()
            }
        }
    )*};
}

macro_rules! shared_credentials_from {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for Arc<Credentials> {
            fn from(value: $ty) -> Self {
                Arc::new(Credentials::from(value))
            }
        }
    )*};
}

// Providers take `impl Into<Arc<Credentials>>`: a bundle, a bundle that is
// already shared (another provider's snapshot), or any single credential.
shared_credentials_from!(
    AccessKey,
    ApplicationCredentials,
    ServicePlan,
    BearerToken,
    BasicCredentials,
);

credentials_from! {
    AccessKey => access_key,
    ApplicationCredentials => application,
    ServicePlan => service_plan,
    BearerToken => bearer,
    BasicCredentials => basic,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_secret_accepts_padded_and_unpadded_base64() {
        let padded = ApplicationCredentials::new("k", "bXkta2V5LXNlY3JldA==").unwrap();
        let unpadded = ApplicationCredentials::new("k", "bXkta2V5LXNlY3JldA").unwrap();
        assert_eq!(padded.decoded_secret().expose_secret(), b"my-key-secret");
        assert_eq!(unpadded.decoded_secret().expose_secret(), b"my-key-secret");
        // Spec C2: "9876543210" is unpadded base64 and must be accepted.
        assert!(ApplicationCredentials::new("789", "9876543210").is_ok());
    }

    #[test]
    fn application_secret_rejects_non_base64_naming_the_field_not_the_value() {
        for bad in [
            "not base64 QQQ!",
            "bXkta2V5LXNlY3JldA===",
            "-_-_XYZW",
            "QQQQQ",
        ] {
            let err = ApplicationCredentials::new("k", bad).unwrap_err();
            assert_eq!(
                err,
                ConfigError::InvalidSecretEncoding {
                    field: "application secret"
                },
                "{bad}"
            );
            assert!(!err.to_string().contains(bad));
        }
        assert_eq!(
            ApplicationCredentials::new("k", "").unwrap_err(),
            ConfigError::EmptyField {
                field: "application secret"
            }
        );
    }

    #[test]
    fn fields_that_would_break_headers_are_rejected() {
        assert!(matches!(
            AccessKey::new("p", "key:id", "s"),
            Err(ConfigError::InvalidField {
                field: "key id",
                ..
            })
        ));
        assert!(matches!(
            AccessKey::new("p", "k", "sec\r\nret"),
            Err(ConfigError::InvalidField {
                field: "key secret",
                ..
            })
        ));
        assert!(matches!(
            ServicePlan::new("plan", "tok en"),
            Err(ConfigError::InvalidField {
                field: "API token",
                ..
            })
        ));
        assert!(matches!(
            BearerToken::new(""),
            Err(ConfigError::EmptyField {
                field: "bearer token"
            })
        ));
        assert!(BasicCredentials::new("user", "pass word: ok").is_ok());
        assert!(BasicCredentials::new("us:er", "p").is_err());
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let creds = Credentials::builder()
            .access_key(AccessKey::new("proj", "kid", "KEY-SECRET-zz1").unwrap())
            .application(ApplicationCredentials::new("app", "QVBQLVNFQ1JFVC16ejI=").unwrap())
            .service_plan(ServicePlan::new("plan", "API-TOKEN-zz3").unwrap())
            .bearer(BearerToken::new("BEARER-zz4").unwrap())
            .basic(BasicCredentials::new("user", "PASSWORD-zz5").unwrap())
            .build();
        let debug = format!("{creds:?} {creds:#?}");
        for secret in [
            "KEY-SECRET-zz1",
            "QVBQLVNFQ1JFVC16ejI",
            "APP-SECRET-zz2",
            "API-TOKEN-zz3",
            "BEARER-zz4",
            "PASSWORD-zz5",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(debug.contains("kid") && debug.contains("plan") && debug.contains("user"));
    }

    /// Clones share the one allocation that holds the secret (no copy is
    /// made), and that allocation, whose `SecretBox`es zeroize on drop, is
    /// released exactly when the last clone goes: not before, not never.
    #[test]
    fn clones_share_secret_material_released_with_the_last_clone() {
        fn check<T: Clone, P>(value: T, inner: impl Fn(&T) -> &Arc<P>) {
            let clone = value.clone();
            assert!(Arc::ptr_eq(inner(&value), inner(&clone)));
            let weak = Arc::downgrade(inner(&value));
            drop(value);
            assert!(weak.upgrade().is_some(), "released while a clone lives");
            drop(clone);
            assert!(weak.upgrade().is_none(), "secret outlived its last clone");
        }
        check(AccessKey::new("p", "k", "s").unwrap(), |v| &v.0);
        check(ApplicationCredentials::new("a", "c2VjcmV0").unwrap(), |v| {
            &v.0
        });
        check(ServicePlan::new("plan", "tok").unwrap(), |v| &v.0);
        check(BearerToken::new("tok").unwrap(), |v| &v.0);
        check(BasicCredentials::new("u", "p").unwrap(), |v| &v.0);

        // A bundle's clone shares its credentials and keeps its identity.
        let bundle = Credentials::builder()
            .access_key(AccessKey::new("p", "k", "s").unwrap())
            .build();
        let weak = Arc::downgrade(&bundle.access_key.as_ref().unwrap().0);
        let copy = bundle.clone();
        assert_eq!(copy.id(), bundle.id());
        assert!(std::ptr::eq(
            copy.access_key().unwrap().key_secret(),
            bundle.access_key().unwrap().key_secret()
        ));
        drop(bundle);
        assert!(weak.upgrade().is_some());
        drop(copy);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn clones_stay_redacted() {
        let key = AccessKey::new("p", "k", "CLONED-SECRET-x1").unwrap();
        let app = ApplicationCredentials::new("a", "Q0xPTkVELUFQUC14Mg==").unwrap();
        let debug = format!("{:?} {:?}", key.clone(), app.clone());
        assert!(
            !debug.contains("CLONED") && !debug.contains("Q0xPTkVE"),
            "{debug}"
        );
    }

    #[test]
    fn every_bundle_gets_its_own_id() {
        let a = Credentials::from(BearerToken::new("t").unwrap());
        let b = Credentials::from(BearerToken::new("t").unwrap());
        assert_ne!(a.id(), b.id());
    }
}
