//! Neither a token, nor the key secret, nor the Redis password reaches the
//! logs (captured at TRACE) when the Redis store falls back to a local fetch
//! or shares a token. Alone in its test binary: `tracing` caches per-callsite
//! interest process-wide, so tests running beside it without a subscriber
//! could hide events from this one.
#![cfg(feature = "redis")]

mod common;

use common::LogBuffer;
#[path = "support/redis_server.rs"]
mod redis_server;

use common::{get, send};
use http::StatusCode;
use http::header::AUTHORIZATION;
use redis_server::RedisServer;
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::{RedisTokenStore, RefreshConfig};
use sinch_auth::{AccessKey, Scheme, SinchAuthLayer, StaticCredentials};
use tower::Layer;

const SECRET: &str = "KEY-SECRET-redis-logs-4b1e";

fn key() -> AccessKey {
    AccessKey::new("proj-l", "key-l", SECRET).unwrap()
}

fn member(
    sinch: &SinchStandIn,
    store: RedisTokenStore,
) -> sinch_auth::SinchAuth<sinch_auth::testkit::StandInClient> {
    SinchAuthLayer::builder(StaticCredentials::new(key()))
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(RefreshConfig::default())
        .token_store(store)
        .build()
        .unwrap()
        .layer(sinch.client())
}

#[tokio::test]
async fn neither_token_nor_secret_nor_redis_password_reaches_the_logs() {
    let (logs, _guard) = LogBuffer::capture();
    let password = "redis-pa55-q9";

    // Redis unreachable: nothing listens on this port.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = RedisTokenStore::builder(&format!("redis://:{password}@127.0.0.1:{dead_port}/"))
        .build()
        .unwrap();
    assert!(!format!("{dead:?}").contains(password));
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    let member_a = member(&sinch, dead);
    let (status, _) = send(&member_a, get(format!("{}/v1/x", sinch.url()))).await;
    assert_eq!(status, StatusCode::OK, "the request works without Redis");
    let token_a = sinch.last_request().unwrap().headers[AUTHORIZATION]
        .to_str()
        .unwrap()
        .to_owned();

    // Redis up, behind a password: one member fetches, another takes it.
    let Some(redis) = RedisServer::start_with(&["--requirepass", password]).await else {
        return;
    };
    let url = format!("redis://:{password}@127.0.0.1:{}/", redis.port);
    let sinch_b = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let store = RedisTokenStore::new(&url).unwrap();
        assert!(!format!("{store:?}").contains(password));
        let member = member(&sinch_b, store);
        let (status, _) = send(&member, get(format!("{}/v1/x", sinch_b.url()))).await;
        assert_eq!(status, StatusCode::OK);
        seen.push(
            sinch_b.last_request().unwrap().headers[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        sinch_b.token_requests(),
        1,
        "the second member took the stored token"
    );
    assert_eq!(seen[0], seen[1]);

    let text = logs.text();
    assert!(
        text.contains("redis token store unavailable; fetching the token locally"),
        "{text}"
    );
    assert!(text.contains("token taken from redis"), "{text}");
    for token in [&token_a, &seen[0]] {
        let bare = token.strip_prefix("Bearer ").unwrap();
        assert!(!text.contains(bare), "a token was logged:\n{text}");
        // Not even its signature part.
        let signature = bare.rsplit('.').next().unwrap();
        assert!(
            !text.contains(signature),
            "a token's signature was logged:\n{text}"
        );
    }
    assert!(!text.contains(SECRET), "the key secret was logged:\n{text}");
    assert!(
        !text.contains(password),
        "the redis password was logged:\n{text}"
    );
}

/// A Redis stand-in on loopback that serves reads, transactions and the
/// lock like an empty Redis, and answers every script call with an error
/// reply repeating the whole command, as Redis's own replies can
/// ("unknown command …, with args beginning with: …").
async fn echoing_redis() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                let mut queued: Vec<&'static str> = Vec::new();
                let mut in_multi = false;
                loop {
                    // One RESP array of bulk strings.
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let Some(n) = line.trim_end().strip_prefix('*') else {
                        return;
                    };
                    let mut args = Vec::new();
                    for _ in 0..n.parse::<usize>().unwrap() {
                        let mut header = String::new();
                        read.read_line(&mut header).await.unwrap();
                        let len: usize = header.trim_end()[1..].parse().unwrap();
                        let mut arg = vec![0u8; len + 2];
                        read.read_exact(&mut arg).await.unwrap();
                        arg.truncate(len);
                        args.push(arg);
                    }
                    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
                    let plain = |reply: &'static str| reply;
                    let reply: String = match name.as_str() {
                        "MULTI" => {
                            in_multi = true;
                            plain("+OK\r\n").into()
                        }
                        "EXEC" => {
                            in_multi = false;
                            let mut out = format!("*{}\r\n", queued.len());
                            for reply in queued.drain(..) {
                                out.push_str(reply);
                            }
                            out
                        }
                        "GET" | "PTTL" | "DEL" if in_multi => {
                            queued.push(match name.as_str() {
                                "GET" => "$-1\r\n",
                                "PTTL" => ":-2\r\n",
                                _ => ":0\r\n",
                            });
                            "+QUEUED\r\n".into()
                        }
                        "CLIENT" | "SELECT" | "AUTH" | "SET" => "+OK\r\n".into(),
                        "PING" => "+PONG\r\n".into(),
                        "GET" => "$-1\r\n".into(),
                        "PTTL" => ":-2\r\n".into(),
                        "DEL" => ":0\r\n".into(),
                        _ => {
                            let echoed: Vec<String> = args
                                .iter()
                                .map(|a| {
                                    String::from_utf8_lossy(a)
                                        .chars()
                                        .filter(|c| !c.is_control())
                                        .collect()
                                })
                                .collect();
                            format!("-ERR ECHOED-BACK {}\r\n", echoed.join(" "))
                        }
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_redis_error_repeating_the_command_never_reaches_the_logs() {
    let (logs, _guard) = LogBuffer::capture();

    let port = echoing_redis().await;
    let sinch = SinchStandIn::builder()
        .access_key(&key())
        .start()
        .await
        .unwrap();
    let store = RedisTokenStore::new(&format!("redis://127.0.0.1:{port}/")).unwrap();
    let member = member(&sinch, store);
    let (status, _) = send(&member, get(format!("{}/v1/x", sinch.url()))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the request works without a usable Redis"
    );
    let token = sinch.last_request().unwrap().headers[AUTHORIZATION]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();

    let text = logs.text();
    assert!(
        text.contains("redis token store unavailable; fetching the token locally"),
        "the failure was logged:\n{text}"
    );
    // By kind and code only.
    assert!(text.contains("response error, code ERR"), "{text}");
    assert!(!text.contains(&token), "the token was logged:\n{text}");
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(signature),
        "a token's signature was logged:\n{text}"
    );
    assert!(!text.contains(SECRET), "the key secret was logged:\n{text}");
    assert!(
        !text.contains("ECHOED-BACK"),
        "the text of a Redis error reply was logged:\n{text}"
    );
}

#[tokio::test]
async fn an_oversized_record_is_named_by_its_kind_and_size_never_by_its_content() {
    let (logs, _guard) = LogBuffer::capture();
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let name =
        sinch_auth::token::StoreKey::for_access_key("http://127.0.0.1:1/oauth2/token", &key());
    let marker = "PLANTED-CONTENT-7d1c";
    let mut c = redis.connection().await;
    for kind in ["token", "failed"] {
        let _: () = redis::cmd("SET")
            .arg(format!("sinch-auth:{{{}}}:{kind}", name.name()))
            .arg(marker.repeat(4096))
            .arg("PX")
            .arg(30_000)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let store = RedisTokenStore::new(&redis.url()).unwrap();
    let fetch: sinch_auth::token::TokenFuture = Box::pin(async {
        Ok(sinch_auth::token::Token::new(
            "fetched-token-5e2a",
            std::time::Duration::from_secs(60),
        ))
    });
    use sinch_auth::token::TokenStore;
    let token = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.get_or_fetch(name, None, fetch),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(token.value()),
        "fetched-token-5e2a"
    );
    let text = logs.text();
    let warnings: Vec<_> = text
        .lines()
        .filter(|l| l.contains("it is too large to be ours"))
        .collect();
    assert_eq!(warnings.len(), 2, "{text}");
    for (warning, kind) in warnings.iter().zip(["token", "refusal"]) {
        assert!(warning.contains("WARN"), "{warning}");
        assert!(warning.contains(kind), "names the record: {warning}");
        assert!(
            warning.contains(&(marker.len() * 4096).to_string()),
            "gives its size: {warning}"
        );
    }
    assert!(!text.contains(marker), "the content was logged:\n{text}");
    assert!(!text.contains("fetched-token-5e2a"), "a token was logged");
}
