//! Application-signed requests (spec §4). Placeholder until the signing branch lands.
#![allow(missing_docs, unreachable_pub)]

use std::time::SystemTime;

use http::{HeaderValue, Method};

use crate::ApplicationCredentials;

pub struct SignedHeaders {
    pub authorization: HeaderValue,
    pub timestamp: HeaderValue,
}

pub fn format_timestamp(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn sign(
    _app: &ApplicationCredentials,
    _method: &Method,
    _path: &str,
    _content_type: &str,
    _body: &[u8],
    timestamp: &str,
) -> Result<SignedHeaders, super::InvalidHeaderValue> {
    Ok(SignedHeaders {
        authorization: HeaderValue::from_static("Application placeholder"),
        timestamp: HeaderValue::from_str(timestamp).map_err(|_| super::InvalidHeaderValue)?,
    })
}

pub fn signature(
    _secret: &[u8],
    _method: &str,
    _path: &str,
    _content_type: &str,
    _body: &[u8],
    _timestamp: &str,
) -> String {
    String::new()
}
