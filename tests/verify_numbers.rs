//! Numbers callbacks (protocol notes §5).

use proptest::prelude::*;
use sinch_auth::verify::{
    NumbersVerifier, Rejection, SecretUsed, Verified, Verifier, numbers_signature,
};

const N1_BODY: &str = r#"{"eventId":"01j3fycq0fyqq3gkgxb0g5ekbz","timestamp":"2024-07-23T14:02:14.415637289","projectId":"b8bae3c6-e7df-422b-9401-8ae3ee3e0aff","resourceId":"+12053017799","resourceType":"ACTIVE_NUMBER","eventType":"PROVISIONING_TO_VOICE_PLATFORM","status":"SUCCEEDED","failureCode":null}"#;
const N2_BODY: &str = r#"{"eventId":"01hpa0mww4m79q8j2dwn3ggbgz","timestamp":"2024-02-10T17:22:09.412722588","projectId":"37b62a7b-0177-abcd-efgh-e10f848de123","resourceId":"+17818510001","resourceType":"ACTIVE_NUMBER","eventType":"DEPROVISIONING_FROM_VOICE_PLATFORM","status":"SUCCEEDED","failureCode":null}"#;

fn verify(secret: &str, signature: &str, body: &[u8]) -> Option<Result<Verified, Rejection>> {
    let parts = http::Request::post("/numbers/callback")
        .header("X-Sinch-Signature", signature)
        .body(())
        .ok()?
        .into_parts()
        .0;
    Some(NumbersVerifier::new(secret).verify(&parts, body))
}

#[test]
fn n1_is_valid() {
    assert_eq!(
        numbers_signature("secret value", N1_BODY.as_bytes()),
        "e289b8fac44491417aeceee28d2715840b5f1aca"
    );
    assert_eq!(
        verify(
            "secret value",
            "e289b8fac44491417aeceee28d2715840b5f1aca",
            N1_BODY.as_bytes()
        ),
        Some(Ok(Verified::Numbers {
            secret: SecretUsed::Current
        }))
    );
}

#[test]
fn n2_is_valid() {
    assert_eq!(
        verify(
            "my-callback-secret",
            "b93021e0182c2772dbcdf4e8983ae8f409e78c3b",
            N2_BODY.as_bytes()
        ),
        Some(Ok(Verified::Numbers {
            secret: SecretUsed::Current
        }))
    );
}

#[test]
fn n1_signature_does_not_verify_n2() {
    assert_eq!(
        verify(
            "secret value",
            "e289b8fac44491417aeceee28d2715840b5f1aca",
            N2_BODY.as_bytes()
        ),
        Some(Err(Rejection::SignatureMismatch))
    );
}

#[test]
fn a_missing_signature_is_named() {
    let parts = http::Request::post("/numbers/callback")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(
        NumbersVerifier::new("s").verify(&parts, b"{}"),
        Err(Rejection::MissingHeader {
            name: "x-sinch-signature"
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_callbacks_verify(secret in "[ -~]{1,32}", body in prop::collection::vec(any::<u8>(), 0..300)) {
        let signature = numbers_signature(&secret, &body);
        prop_assert_eq!(verify(&secret, &signature, &body).unwrap(), Ok(Verified::Numbers { secret: SecretUsed::Current }));
    }

    #[test]
    fn any_single_byte_change_to_the_body_is_rejected(
        secret in "[ -~]{1,32}",
        body in prop::collection::vec(any::<u8>(), 1..300),
        index in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let signature = numbers_signature(&secret, &body);
        let mut body = body;
        let i = index % body.len();
        body[i] ^= flip;
        prop_assert_eq!(verify(&secret, &signature, &body).unwrap(), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn any_single_byte_change_to_the_signature_is_rejected(
        secret in "[ -~]{1,32}",
        body in prop::collection::vec(any::<u8>(), 0..300),
        index in 0usize..40,
        with in 0x21u8..0x7f,
    ) {
        let signature = numbers_signature(&secret, &body);
        let mut bytes = signature.clone().into_bytes();
        prop_assume!(bytes[index] != with);
        bytes[index] = with;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(verify(&secret, &changed, &body).unwrap(), Err(Rejection::SignatureMismatch));
    }
}
