//! The credential types as a user names them: cheap clones, the secret types
//! re-exported, and the environment's snapshot feeding any provider.
//!
//! Everything here goes through the crate's public paths only: no `secrecy`
//! import, no trait import where the first-hour flow should not need one.

use std::sync::Arc;

use sinch_auth::verify::ApplicationVerifier;
use sinch_auth::{
    ApplicationCredentials, Credentials, EnvCredentials, ExposeSecret, RotatingCredentials,
    SecretString, StaticCredentials,
};

fn env() -> EnvCredentials {
    EnvCredentials::from_lookup(|name| {
        let value = match name {
            "SINCH_PROJECT_ID" => "proj-t",
            "SINCH_KEY_ID" => "key-t",
            "SINCH_KEY_SECRET" => "TYPES-KEY-SECRET-t1",
            "SINCH_APPLICATION_KEY" => "app-t",
            "SINCH_APPLICATION_SECRET" => "VFlQRVMtQVBQLVNFQ1JFVC10Mg==",
            _ => return None,
        };
        Some(value.into())
    })
    .unwrap()
}

#[test]
fn environment_snapshot_feeds_rotating_and_static_providers_directly() {
    let env = env();
    // E0277 before: the inherent method returned `&Credentials`.
    let rotating = RotatingCredentials::new(env.credentials());
    let fixed = StaticCredentials::new(env.credentials());
    let snapshot: Arc<Credentials> = env.credentials();
    // One meaning: inherent and trait methods hand out the same shared bundle.
    assert!(Arc::ptr_eq(
        &snapshot,
        &sinch_auth::CredentialProvider::credentials(&env)
    ));
    assert_eq!(
        sinch_auth::CredentialProvider::current_id(&rotating),
        snapshot.id()
    );
    assert_eq!(
        sinch_auth::CredentialProvider::current_id(&fixed),
        snapshot.id()
    );
    rotating.rotate(env.credentials().access_key().unwrap().clone());
    assert_ne!(
        sinch_auth::CredentialProvider::current_id(&rotating),
        snapshot.id()
    );
}

#[test]
fn application_credentials_from_the_environment_build_a_verifier_without_secrecy() {
    let env = env();
    let app: ApplicationCredentials = env.credentials().application().unwrap().clone();
    let verifier = ApplicationVerifier::new(app.clone());
    assert_eq!(app.key(), "app-t");
    let secret: &SecretString = app.secret();
    assert_eq!(secret.expose_secret(), "VFlQRVMtQVBQLVNFQ1JFVC10Mg==");
    assert!(!format!("{verifier:?} {app:?}").contains("VFlQRVMt"));
}

#[test]
fn cloned_bundles_keep_their_identity_and_redaction() {
    let env = env();
    let bundle: Credentials = (*env.credentials()).clone();
    assert_eq!(bundle.id(), env.credentials().id());
    let debug = format!("{bundle:?} {:?}", bundle.access_key().cloned());
    assert!(!debug.contains("TYPES-KEY-SECRET"), "{debug}");
    assert!(debug.contains("key-t"));
}

/// The reloading providers' futures can be spawned: none holds anything
/// that is not `Send` across an await.
#[test]
fn loading_and_reloading_futures_are_send() {
    fn send<T: Send>(_: T) {}
    fn reload(provider: &sinch_auth::FileCredentials) {
        send(provider.reload());
    }
    let dir = std::env::temp_dir();
    send(sinch_auth::FileCredentials::dir(&dir).load());
    send(sinch_auth::FileCredentials::env_file(dir.join("sinch.env")).load());
    let polling = sinch_auth::PollingCredentials::builder(|| async {
        Ok::<_, sinch_auth::BoxError>(sinch_auth::ServicePlan::new("plan", "token")?)
    });
    send(polling.start());
    let _ = reload;
}
