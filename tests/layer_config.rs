//! Layer settings that would have no effect are refused at build time,
//! with a typed error naming the setting.

use std::time::Duration;

use sinch_auth::token::{Token, TokenHttpClient, source_fn};
use sinch_auth::{AccessKey, ConfigError, Scheme, SinchAuthLayer, StaticCredentials};

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
