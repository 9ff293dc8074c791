//! Verifiers rotate too: after a rotation, callbacks still signed with the
//! previous secret (Sinch's side not yet updated, retries in flight) are
//! accepted for the grace period and refused after it; `Verified` says which
//! secret matched. The grace period runs from the rotation itself (the
//! source records it), however late a verifier first looks, and on the
//! monotonic reading of the injected clock, so stepping the wall clock does
//! not reopen it. Also the fixed list for deployments that rotate by
//! redeploying.

use std::time::{Duration, SystemTime};

use http::request::Parts;
use std::sync::Arc;

use secrecy::SecretString;
use sinch_auth::clock::{Clock as _, ManualClock, TokioClock, monotonic_now};
use sinch_auth::scheme::application::{format_timestamp, sign};
use sinch_auth::verify::{
    ApplicationVerifier, NumbersVerifier, Rejection, RotatingSecret, Rotation, SecretSource,
    SecretUsed, Verified, Verifier, VerifyLayer, WebhookVerifier, numbers_signature,
    webhook_signature,
};
use sinch_auth::{AccessKey, ApplicationCredentials, Credentials, RotatingCredentials};

const START: u64 = 1_700_000_000;
const GRACE: Duration = Duration::from_secs(600);
const STEP: Duration = Duration::from_secs(30);
/// 40 callbacks 30 s apart: 20 minutes, twice the grace period.
const IN_FLIGHT: u32 = 40;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn webhook(secret: &str, nonce: &str, now: SystemTime) -> Parts {
    let timestamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    http::Request::post("/sms")
        .header(
            "x-sinch-webhook-signature",
            webhook_signature(secret, b"{}", nonce, &timestamp),
        )
        .header("x-sinch-webhook-signature-nonce", nonce)
        .header("x-sinch-webhook-signature-timestamp", timestamp)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn callback(app: &ApplicationCredentials, now: SystemTime) -> Parts {
    let signed = sign(
        app,
        &http::Method::POST,
        "/voice",
        "application/json",
        b"{}",
        &format_timestamp(now),
    )
    .unwrap();
    http::Request::post("/voice")
        .header("content-type", "application/json")
        .header("x-timestamp", signed.timestamp)
        .header("authorization", signed.authorization)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn numbers(secret: &str) -> Parts {
    http::Request::post("/numbers")
        .header("x-sinch-signature", numbers_signature(secret, b"{}"))
        .body(())
        .unwrap()
        .into_parts()
        .0
}

type Outcome = Result<Verified, Rejection>;

/// Delivers `IN_FLIGHT` old-signed callbacks, one every `STEP` after the
/// rotation, and splits the results at the end of the grace period.
fn deliver(
    clock: &ManualClock,
    mut verify_old: impl FnMut(u32, SystemTime) -> Outcome,
) -> (Vec<Outcome>, Vec<Outcome>) {
    let rotated_at = clock.now();
    let (mut inside, mut after) = (Vec::new(), Vec::new());
    for i in 0..IN_FLIGHT {
        clock.advance(STEP);
        let now = clock.now();
        let result = verify_old(i, now);
        if now.duration_since(rotated_at).unwrap() <= GRACE {
            inside.push(result);
        } else {
            after.push(result);
        }
    }
    (inside, after)
}

#[test]
fn webhooks_signed_with_the_old_secret_pass_inside_the_grace_period_only() {
    let clock = ManualClock::new(at(START));
    let secret = RotatingSecret::new("old-webhook-secret");
    let verifier = WebhookVerifier::from_source(secret.clone())
        .clock(clock.clone())
        .grace_period(GRACE);
    assert!(matches!(
        verifier.verify(&webhook("old-webhook-secret", "before", clock.now()), b"{}"),
        Ok(Verified::Webhook {
            secret: SecretUsed::Current,
            ..
        })
    ));

    secret.rotate("new-webhook-secret");
    assert!(matches!(
        verifier.verify(
            &webhook("new-webhook-secret", "first-new", clock.now()),
            b"{}"
        ),
        Ok(Verified::Webhook {
            secret: SecretUsed::Current,
            ..
        })
    ));
    let (inside, after) = deliver(&clock, |i, now| {
        verifier.verify(
            &webhook("old-webhook-secret", &format!("old-{i}"), now),
            b"{}",
        )
    });
    assert_eq!(inside.len(), 20);
    for result in &inside {
        assert!(
            matches!(
                result,
                Ok(Verified::Webhook {
                    secret: SecretUsed::Previous,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(after.len(), 20);
    assert!(
        after
            .iter()
            .all(|r| *r == Err(Rejection::SignatureMismatch)),
        "{after:?}"
    );
    // The new secret keeps working.
    assert!(
        verifier
            .verify(
                &webhook("new-webhook-secret", "late-new", clock.now()),
                b"{}"
            )
            .is_ok()
    );
}

#[test]
fn application_callbacks_follow_the_credential_provider_key_and_secret() {
    let clock = ManualClock::new(at(START));
    let old = || ApplicationCredentials::new("app-old", "b2xkLWFwcC1zZWNyZXQ=").unwrap();
    let new = || ApplicationCredentials::new("app-new", "bmV3LWFwcC1zZWNyZXQ=").unwrap();
    // The same provider the outbound layer uses, with an access key beside the application.
    let with = |app| {
        Credentials::builder()
            .access_key(AccessKey::new("project", "key-id", "key-secret").unwrap())
            .application(app)
            .build()
    };
    let provider = RotatingCredentials::new(with(old()));
    let verifier = ApplicationVerifier::from_provider(provider.clone())
        .unwrap()
        .clock(clock.clone())
        .grace_period(GRACE)
        .allow_basic();
    assert!(
        verifier
            .verify(&callback(&old(), clock.now()), b"{}")
            .is_ok()
    );

    provider.rotate(with(new()));
    assert!(matches!(
        verifier.verify(&callback(&new(), clock.now()), b"{}"),
        Ok(Verified::Application { ref key, secret: SecretUsed::Current, .. }) if key == "app-new"
    ));
    let (inside, after) = deliver(&clock, |_, now| {
        // The head alone must not condemn the old key inside the grace period.
        let parts = callback(&old(), now);
        verifier.precheck(&parts)?;
        verifier.verify(&parts, b"{}")
    });
    for result in &inside {
        assert!(
            matches!(result, Ok(Verified::Application { key, secret: SecretUsed::Previous, .. }) if key == "app-old"),
            "{result:?}"
        );
    }
    assert!(
        after.iter().all(|r| *r == Err(Rejection::UnknownKey)),
        "{after:?}"
    );
    // Basic follows the rotation as well.
    let basic = sinch_auth::scheme::application::basic(&old());
    let parts = http::Request::post("/verification")
        .header("authorization", basic)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(verifier.verify(&parts, b""), Err(Rejection::UnknownKey));
}

#[test]
fn a_rotation_that_keeps_the_application_is_not_a_rotation() {
    // Rotating the access key beside it must not start a grace period for
    // an application secret that did not change, nor drop the current one.
    let clock = ManualClock::new(at(START));
    let app = || ApplicationCredentials::new("app", "c2FtZS1zZWNyZXQ=").unwrap();
    let with = |key: &str| {
        Credentials::builder()
            .access_key(AccessKey::new("project", key, "key-secret").unwrap())
            .application(app())
            .build()
    };
    let provider = RotatingCredentials::new(with("key-1"));
    let verifier = ApplicationVerifier::from_provider(provider.clone())
        .unwrap()
        .clock(clock.clone());
    provider.rotate(with("key-2"));
    assert!(matches!(
        verifier.verify(&callback(&app(), clock.now()), b"{}"),
        Ok(Verified::Application {
            secret: SecretUsed::Current,
            ..
        })
    ));
    // A provider holding no application credentials is refused up front.
    let none = RotatingCredentials::new(AccessKey::new("p", "k", "s").unwrap());
    assert!(ApplicationVerifier::from_provider(none).is_err());
}

#[test]
fn numbers_callbacks_signed_with_the_old_secret_pass_inside_the_grace_period_only() {
    let clock = ManualClock::new(at(START));
    let secret = RotatingSecret::new("old-numbers-secret");
    let verifier = NumbersVerifier::from_source(secret.clone())
        .clock(clock.clone())
        .grace_period(GRACE);
    assert!(
        verifier
            .verify(&numbers("old-numbers-secret"), b"{}")
            .is_ok()
    );
    secret.rotate("new-numbers-secret");
    assert_eq!(
        verifier.verify(&numbers("new-numbers-secret"), b"{}"),
        Ok(Verified::Numbers {
            secret: SecretUsed::Current
        })
    );
    let (inside, after) = deliver(&clock, |_, _| {
        verifier.verify(&numbers("old-numbers-secret"), b"{}")
    });
    assert!(inside.iter().all(|r| *r
        == Ok(Verified::Numbers {
            secret: SecretUsed::Previous
        })));
    assert!(
        after
            .iter()
            .all(|r| *r == Err(Rejection::SignatureMismatch))
    );
}

#[test]
fn a_fixed_list_accepts_every_secret_and_says_which() {
    let verifier = WebhookVerifier::with_secrets(["new", "old"]).clock(ManualClock::new(at(START)));
    let cases = [("new", SecretUsed::Current), ("old", SecretUsed::Listed(1))];
    for (i, (secret, used)) in cases.into_iter().enumerate() {
        let parts = webhook(secret, &format!("n-{i}"), at(START));
        assert!(
            matches!(verifier.verify(&parts, b"{}"), Ok(Verified::Webhook { secret, .. }) if secret == used),
            "{secret}"
        );
    }
    assert_eq!(
        verifier.verify(&webhook("other", "n-x", at(START)), b"{}"),
        Err(Rejection::SignatureMismatch)
    );
    // Empty secrets are never used; none left means nothing is accepted.
    let empty = WebhookVerifier::with_secrets(["", ""]).clock(ManualClock::new(at(START)));
    assert_eq!(
        empty.verify(&webhook("", "n-e", at(START)), b"{}"),
        Err(Rejection::EmptySecret)
    );
    let numbers_list = NumbersVerifier::with_secrets(["n-new", "n-old"]);
    assert_eq!(
        numbers_list.verify(&numbers("n-old"), b"{}"),
        Ok(Verified::Numbers {
            secret: SecretUsed::Listed(1)
        })
    );
    let app_new = ApplicationCredentials::new("app", "bmV3").unwrap();
    let app_old = ApplicationCredentials::new("app", "b2xk").unwrap();
    let apps = ApplicationVerifier::new(app_new)
        .also_accept(ApplicationCredentials::new("app", "b2xk").unwrap())
        .clock(ManualClock::new(at(START)));
    assert!(matches!(
        apps.verify(&callback(&app_old, at(START)), b"{}"),
        Ok(Verified::Application {
            secret: SecretUsed::Listed(1),
            ..
        })
    ));
}

#[test]
fn secrets_never_appear_in_debug() {
    let secret = RotatingSecret::new("rotating-secret-value");
    let webhook = WebhookVerifier::from_source(secret.clone());
    secret.rotate("second-secret-value");
    let listed = NumbersVerifier::with_secrets(["listed-secret-value", "older-secret-value"]);
    let layer = VerifyLayer::new(WebhookVerifier::with_secrets(["layer-secret-value"]));
    let debug = format!("{secret:?} {webhook:?} {listed:#?} {layer:?}");
    for leaked in [
        "rotating-secret-value",
        "second-secret-value",
        "listed-secret-value",
        "older-secret-value",
        "layer-secret-value",
    ] {
        assert!(!debug.contains(leaked), "{debug}");
    }
}

#[test]
fn an_access_key_rotation_after_an_application_rotation_keeps_the_old_applications_grace() {
    // The application rotates, then (inside its grace period) only the
    // access key beside it does: the old application must still be
    // accepted until its own grace period ends, not lose it to the second,
    // application-neutral rotation.
    let clock = ManualClock::new(at(START));
    let old = || ApplicationCredentials::new("app-old", "b2xkLWFwcC1zZWNyZXQ=").unwrap();
    let new = || ApplicationCredentials::new("app-new", "bmV3LWFwcC1zZWNyZXQ=").unwrap();
    let with = |app, key: &str| {
        Credentials::builder()
            .access_key(AccessKey::new("project", key, "key-secret").unwrap())
            .application(app)
            .build()
    };
    let provider = RotatingCredentials::new(with(old(), "key-1"));
    let verifier = ApplicationVerifier::from_provider(provider.clone())
        .unwrap()
        .clock(clock.clone())
        .grace_period(GRACE);
    provider.rotate(with(new(), "key-1"));
    assert!(
        verifier
            .verify(&callback(&new(), clock.now()), b"{}")
            .is_ok()
    );
    provider.rotate(with(new(), "key-2"));
    let (inside, after) = deliver(&clock, |_, now| {
        verifier.verify(&callback(&old(), now), b"{}")
    });
    assert_eq!(inside.len(), 20);
    for result in &inside {
        assert!(
            matches!(result, Ok(Verified::Application { key, secret: SecretUsed::Previous, .. }) if key == "app-old"),
            "{result:?}"
        );
    }
    assert!(
        after.iter().all(|r| *r == Err(Rejection::UnknownKey)),
        "{after:?}"
    );
}

#[test]
fn a_new_secret_under_the_same_application_key_is_a_rotation() {
    let clock = ManualClock::new(at(START));
    let old = || ApplicationCredentials::new("app", "b2xkLWFwcC1zZWNyZXQ=").unwrap();
    let new = || ApplicationCredentials::new("app", "bmV3LWFwcC1zZWNyZXQ=").unwrap();
    let provider = RotatingCredentials::new(Credentials::from(old()));
    let verifier = ApplicationVerifier::from_provider(provider.clone())
        .unwrap()
        .clock(clock.clone())
        .grace_period(GRACE);
    provider.rotate(Credentials::from(new()));
    assert!(matches!(
        verifier.verify(&callback(&new(), clock.now()), b"{}"),
        Ok(Verified::Application {
            secret: SecretUsed::Current,
            ..
        })
    ));
    let (inside, after) = deliver(&clock, |_, now| {
        verifier.verify(&callback(&old(), now), b"{}")
    });
    assert_eq!(inside.len(), 20);
    assert!(
        inside.iter().all(|r| matches!(
            r,
            Ok(Verified::Application {
                secret: SecretUsed::Previous,
                ..
            })
        )),
        "{inside:?}"
    );
    assert!(
        after
            .iter()
            .all(|r| *r == Err(Rejection::SignatureMismatch)),
        "{after:?}"
    );
}

#[test]
fn a_source_handing_out_the_current_secret_again_keeps_the_previous_ones_grace() {
    // After a real rotation, a source that re-announces the current secret
    // (a new value, the same text: a secret manager's periodic re-read) is no
    // rotation: the previous secret keeps its grace period.
    let clock = ManualClock::new(at(START));
    let webhook_secret = RotatingSecret::new("old-webhook-secret");
    let numbers_secret = RotatingSecret::new("old-numbers-secret");
    let webhooks = WebhookVerifier::from_source(webhook_secret.clone())
        .clock(clock.clone())
        .grace_period(GRACE);
    let callbacks = NumbersVerifier::from_source(numbers_secret.clone())
        .clock(clock.clone())
        .grace_period(GRACE);
    webhook_secret.rotate("new-webhook-secret");
    numbers_secret.rotate("new-numbers-secret");
    assert!(
        webhooks
            .verify(&webhook("new-webhook-secret", "new", clock.now()), b"{}")
            .is_ok()
    );
    assert!(
        callbacks
            .verify(&numbers("new-numbers-secret"), b"{}")
            .is_ok()
    );
    clock.advance(STEP);
    webhook_secret.rotate("new-webhook-secret");
    numbers_secret.rotate("new-numbers-secret");
    assert!(matches!(
        webhooks.verify(&webhook("old-webhook-secret", "old", clock.now()), b"{}"),
        Ok(Verified::Webhook {
            secret: SecretUsed::Previous,
            ..
        })
    ));
    assert_eq!(
        callbacks.verify(&numbers("old-numbers-secret"), b"{}"),
        Ok(Verified::Numbers {
            secret: SecretUsed::Previous
        })
    );
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

fn is_previous(result: &Outcome) -> bool {
    matches!(
        result,
        Ok(Verified::Webhook {
            secret: SecretUsed::Previous,
            ..
        } | Verified::Numbers {
            secret: SecretUsed::Previous
        } | Verified::Application {
            secret: SecretUsed::Previous,
            ..
        })
    )
}

#[tokio::test(start_paused = true)]
async fn a_verifier_idle_for_hours_after_a_rotation_refuses_the_old_secret() {
    // The secret leaked and was rotated; the verifiers below see no
    // callback for hours. The grace period (the default, one hour) runs
    // from the rotation, not from the first callback after it.
    let clock = TokioClock::new(at(START));
    let webhook_secret = RotatingSecret::new("leaked-webhook-secret");
    let numbers_secret = RotatingSecret::new("leaked-numbers-secret");
    let old_app = || ApplicationCredentials::new("app", "bGVha2VkLWFwcC1zZWNyZXQ=").unwrap();
    let new_app = || ApplicationCredentials::new("app", "bmV3LWFwcC1zZWNyZXQ=").unwrap();
    let provider = RotatingCredentials::new(Credentials::from(old_app()));
    let webhooks = || WebhookVerifier::from_source(webhook_secret.clone()).clock(clock);
    let callbacks = || NumbersVerifier::from_source(numbers_secret.clone()).clock(clock);
    let apps = || {
        ApplicationVerifier::from_provider(provider.clone())
            .unwrap()
            .clock(clock)
    };
    let (soon, idle) = (
        (webhooks(), callbacks(), apps()),
        (webhooks(), callbacks(), apps()),
    );
    let old_callbacks = |verifiers: &(WebhookVerifier, NumbersVerifier, ApplicationVerifier),
                         nonce: &str| {
        [
            verifiers
                .0
                .verify(&webhook("leaked-webhook-secret", nonce, clock.now()), b"{}"),
            verifiers.1.verify(&numbers("leaked-numbers-secret"), b"{}"),
            verifiers
                .2
                .verify(&callback(&old_app(), clock.now()), b"{}"),
        ]
    };
    assert!(old_callbacks(&idle, "before").iter().all(Result::is_ok));
    assert!(old_callbacks(&soon, "before").iter().all(Result::is_ok));

    webhook_secret.rotate("new-webhook-secret");
    numbers_secret.rotate("new-numbers-secret");
    provider.rotate(Credentials::from(new_app()));

    // Inside the grace period: accepted as the previous secret.
    tokio::time::advance(30 * MINUTE).await;
    let results = old_callbacks(&soon, "at-30-min");
    assert!(results.iter().all(is_previous), "{results:?}");

    // The idle verifiers look for the first time 10 h after the rotation.
    tokio::time::advance(10 * HOUR - 30 * MINUTE).await;
    for (i, late) in [Duration::ZERO, 59 * MINUTE].into_iter().enumerate() {
        tokio::time::advance(late).await;
        let results = old_callbacks(&idle, &format!("late-{i}"));
        assert_eq!(
            results,
            [
                Err(Rejection::SignatureMismatch),
                Err(Rejection::SignatureMismatch),
                Err(Rejection::SignatureMismatch),
            ],
            "{late:?} after the first late look"
        );
    }
    // The new secrets work on every verifier.
    assert!(
        idle.0
            .verify(&webhook("new-webhook-secret", "new", clock.now()), b"{}")
            .is_ok()
    );
    assert!(idle.1.verify(&numbers("new-numbers-secret"), b"{}").is_ok());
    assert!(
        idle.2
            .verify(&callback(&new_app(), clock.now()), b"{}")
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotation_during_ongoing_verifications_keeps_its_grace_from_the_rotation() {
    // Callbacks keep arriving; the first one after the rotation comes 20
    // minutes after it. The grace (10 minutes) has ended by then.
    let clock = TokioClock::new(at(START));
    let secret = RotatingSecret::new("old-webhook-secret");
    let verifier = WebhookVerifier::from_source(secret.clone())
        .clock(clock)
        .grace_period(GRACE);
    for i in 0..5 {
        tokio::time::advance(MINUTE).await;
        let parts = webhook("old-webhook-secret", &format!("before-{i}"), clock.now());
        assert!(verifier.verify(&parts, b"{}").is_ok());
    }
    secret.rotate("new-webhook-secret");
    let rotated_at = monotonic_now();
    let mut outcomes = Vec::new();
    for (i, step) in [
        4 * MINUTE,
        5 * MINUTE,
        MINUTE,
        Duration::from_secs(1),
        MINUTE,
    ]
    .into_iter()
    .enumerate()
    {
        tokio::time::advance(step).await;
        let parts = webhook("old-webhook-secret", &format!("after-{i}"), clock.now());
        outcomes.push((monotonic_now() - rotated_at, verifier.verify(&parts, b"{}")));
    }
    for (since, outcome) in &outcomes {
        if *since <= GRACE {
            assert!(is_previous(outcome), "{since:?}: {outcome:?}");
        } else {
            assert_eq!(*outcome, Err(Rejection::SignatureMismatch), "{since:?}");
        }
    }
    assert_eq!(outcomes.iter().filter(|(s, _)| *s <= GRACE).count(), 3);

    // The same with the first look 20 minutes after the rotation.
    let late = WebhookVerifier::from_source(secret.clone())
        .clock(clock)
        .grace_period(GRACE);
    secret.rotate("newest-webhook-secret");
    tokio::time::advance(20 * MINUTE).await;
    assert_eq!(
        late.verify(
            &webhook("new-webhook-secret", "late-look", clock.now()),
            b"{}"
        ),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn stepping_the_wall_clock_back_after_the_grace_does_not_reopen_it() {
    let clock = ManualClock::new(at(START));
    let webhook_secret = RotatingSecret::new("old-webhook-secret");
    let numbers_secret = RotatingSecret::new("old-numbers-secret");
    let old_app = || ApplicationCredentials::new("app", "b2xkLWFwcC1zZWNyZXQ=").unwrap();
    let provider = RotatingCredentials::new(Credentials::from(old_app()));
    let webhooks = WebhookVerifier::from_source(webhook_secret.clone())
        .clock(clock.clone())
        .grace_period(GRACE);
    let callbacks = NumbersVerifier::from_source(numbers_secret.clone())
        .clock(clock.clone())
        .grace_period(GRACE);
    let apps = ApplicationVerifier::from_provider(provider.clone())
        .unwrap()
        .clock(clock.clone())
        .grace_period(GRACE);
    let old = |nonce: &str| {
        [
            webhooks.verify(&webhook("old-webhook-secret", nonce, clock.now()), b"{}"),
            callbacks.verify(&numbers("old-numbers-secret"), b"{}"),
            apps.verify(&callback(&old_app(), clock.now()), b"{}"),
        ]
    };
    webhook_secret.rotate("new-webhook-secret");
    numbers_secret.rotate("new-numbers-secret");
    provider.rotate(Credentials::from(
        ApplicationCredentials::new("app", "bmV3LWFwcC1zZWNyZXQ=").unwrap(),
    ));

    // Every verifier looks at once, so only the step back is left to
    // reopen the grace period.
    let _ = old("at-the-rotation");
    clock.advance(STEP);
    assert!(old("inside").iter().all(is_previous));
    clock.advance(GRACE);
    let refused = [
        Err(Rejection::SignatureMismatch),
        Err(Rejection::SignatureMismatch),
        Err(Rejection::SignatureMismatch),
    ];
    assert_eq!(old("after"), refused);
    // The wall clock stepped back 3 h (to before the rotation).
    clock.set(clock.now() - 3 * HOUR);
    assert_eq!(old("stepped-back"), refused);
}

#[test]
fn wall_clock_steps_inside_the_grace_neither_shorten_nor_extend_it() {
    let clock = ManualClock::new(at(START));
    let secret = RotatingSecret::new("old-webhook-secret");
    let verifier = WebhookVerifier::from_source(secret.clone())
        .clock(clock.clone())
        .grace_period(GRACE);
    secret.rotate("new-webhook-secret");
    let old =
        |nonce: &str| verifier.verify(&webhook("old-webhook-secret", nonce, clock.now()), b"{}");
    clock.advance(STEP);
    clock.set(clock.now() + 3 * HOUR);
    assert!(is_previous(&old("forward")));
    clock.set(clock.now() - 6 * HOUR);
    assert!(is_previous(&old("back")));
    clock.advance(GRACE);
    assert_eq!(old("after"), Err(Rejection::SignatureMismatch));
}

#[tokio::test(start_paused = true)]
async fn a_source_of_your_own_gives_the_rotation_time() {
    let clock = TokioClock::new(at(START));
    let old = Arc::new(SecretString::from("old-secret"));
    let new = Arc::new(SecretString::from("new-secret"));
    // A secret manager's view: it knows when it rotated.
    let rotated_at = monotonic_now();
    let source = Arc::new(std::sync::Mutex::new(None::<Rotation<SecretString>>));
    struct Switch(
        Arc<SecretString>,
        Arc<std::sync::Mutex<Option<Rotation<SecretString>>>>,
    );
    impl SecretSource for Switch {
        fn secret(&self) -> Arc<SecretString> {
            self.last_rotation()
                .map_or_else(|| Arc::clone(&self.0), |r| Arc::clone(r.current()))
        }
        fn last_rotation(&self) -> Option<Rotation<SecretString>> {
            self.1.lock().unwrap().clone()
        }
    }
    let verifier = WebhookVerifier::from_source(Switch(Arc::clone(&old), Arc::clone(&source)))
        .clock(clock)
        .grace_period(GRACE);
    assert!(
        verifier
            .verify(&webhook("old-secret", "first", clock.now()), b"{}")
            .is_ok()
    );
    tokio::time::advance(GRACE + STEP).await;
    // Announced late, but the manager says it rotated before the grace began.
    *source.lock().unwrap() = Some(Rotation::new(
        Arc::clone(&new),
        Arc::clone(&old),
        rotated_at,
    ));
    assert_eq!(
        verifier.verify(&webhook("old-secret", "late", clock.now()), b"{}"),
        Err(Rejection::SignatureMismatch)
    );
    assert!(
        verifier
            .verify(&webhook("new-secret", "new", clock.now()), b"{}")
            .is_ok()
    );
}

#[test]
fn a_provider_whose_rotation_record_lags_still_has_its_new_credentials_adopted() {
    // A provider of your own that publishes new credentials before its
    // rotation record: the verifier follows `credentials()`, not the record.
    struct Lagging {
        current: std::sync::Mutex<Arc<Credentials>>,
        record: Rotation<Credentials>,
    }
    impl sinch_auth::CredentialProvider for Lagging {
        fn credentials(&self) -> Arc<Credentials> {
            self.current.lock().unwrap().clone()
        }
        fn last_rotation(&self) -> Option<Rotation<Credentials>> {
            Some(self.record.clone())
        }
    }
    let clock = ManualClock::new(at(START));
    let app = |secret: &str| ApplicationCredentials::new("app", secret).unwrap();
    let first = Arc::new(Credentials::from(app("Zmlyc3Q=")));
    let provider = Arc::new(Lagging {
        current: std::sync::Mutex::new(Arc::clone(&first)),
        record: Rotation::new(
            Arc::clone(&first),
            Arc::new(Credentials::from(app("emVybw=="))),
            monotonic_now(),
        ),
    });
    let verifier = ApplicationVerifier::from_provider(Arc::clone(&provider))
        .unwrap()
        .clock(clock.clone());
    *provider.current.lock().unwrap() = Arc::new(Credentials::from(app("c2Vjb25k")));
    assert!(matches!(
        verifier.verify(&callback(&app("c2Vjb25k"), clock.now()), b"{}"),
        Ok(Verified::Application {
            secret: SecretUsed::Current,
            ..
        })
    ));
}

/// Mounted files rotate the application secret like a `RotatingCredentials`
/// does: the grace is counted from the reload that saw the new files, so an
/// application verifier idle for hours afterwards refuses the old secret.
#[tokio::test(start_paused = true)]
async fn an_application_verifier_fed_by_mounted_files_counts_the_grace_from_the_reload() {
    let dir = std::env::temp_dir().join(format!(
        "sinch-auth-rotation-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir(&dir).unwrap();
    let write = |secret: &str| {
        std::fs::write(dir.join("SINCH_APPLICATION_KEY"), "app\n").unwrap();
        std::fs::write(dir.join("SINCH_APPLICATION_SECRET"), format!("{secret}\n")).unwrap();
    };
    let (old_secret, new_secret) = ("bGVha2VkLWFwcC1zZWNyZXQ=", "bmV3LWFwcC1zZWNyZXQ=");
    write(old_secret);
    let files = sinch_auth::FileCredentials::dir(&dir)
        .poll_interval(Duration::from_secs(24 * 3600))
        .load()
        .await
        .unwrap();
    let clock = TokioClock::new(at(START));
    let old_app = ApplicationCredentials::new("app", old_secret).unwrap();
    let verifier = || {
        ApplicationVerifier::from_provider(files.clone())
            .unwrap()
            .clock(clock)
    };
    let (soon, idle) = (verifier(), verifier());
    assert!(idle.verify(&callback(&old_app, clock.now()), b"{}").is_ok());
    assert!(soon.verify(&callback(&old_app, clock.now()), b"{}").is_ok());

    write(new_secret);
    assert!(
        files.reload().await.unwrap(),
        "the new files were published"
    );
    tokio::time::advance(30 * 60 * Duration::from_secs(1)).await;
    let result = soon.verify(&callback(&old_app, clock.now()), b"{}");
    assert!(is_previous(&result), "{result:?}");

    tokio::time::advance(10 * 3600 * Duration::from_secs(1)).await;
    assert_eq!(
        idle.verify(&callback(&old_app, clock.now()), b"{}"),
        Err(Rejection::SignatureMismatch)
    );
    let new_app = ApplicationCredentials::new("app", new_secret).unwrap();
    assert!(idle.verify(&callback(&new_app, clock.now()), b"{}").is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
