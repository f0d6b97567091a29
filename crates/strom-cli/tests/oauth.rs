//! SASL OAUTHBEARER with librdkafka: unsecured development tokens (librdkafka's own
//! `sasl.oauthbearer.config=principal=...`), and signed JWTs checked against a JWKS file —
//! a token from the right key is admitted as its `sub`, an expired one or one signed by
//! another key is refused with a log line, and other connections carry on.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn oauth_server(settings: &[(&str, &str)]) -> common::Server {
    let mut all = vec![("sasl.enabled.mechanisms", "OAUTHBEARER")];
    all.extend_from_slice(settings);
    common::Server::start_with(
        &all,
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some("SASL_PLAINTEXT"),
            ..Default::default()
        },
    )
}

fn oauth_client(bootstrap: &str) -> ClientConfig {
    let mut c = common::client_config(bootstrap);
    c.set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("message.timeout.ms", "5000");
    c
}

/// Whether one record is acknowledged.
async fn delivers(producer: &FutureProducer<impl ClientContext + 'static>, topic: &str) -> bool {
    producer
        .send(
            FutureRecord::<(), _>::to(topic).payload("x"),
            Duration::from_secs(8),
        )
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn unsecured_tokens_authenticate_as_their_principal() {
    // alice is a super user; anyone else has no grant at all.
    let server = oauth_server(&[
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:alice"),
    ]);
    let bootstrap = server.bootstrap();
    let as_user = |principal: &str| -> FutureProducer {
        oauth_client(&bootstrap)
            .set("enable.sasl.oauthbearer.unsecure.jwt", "true")
            .set("sasl.oauthbearer.config", format!("principal={principal}"))
            .create()
            .unwrap()
    };
    assert!(delivers(&as_user("alice"), "oauth-unsecured").await);
    assert!(!delivers(&as_user("mallory"), "oauth-unsecured").await);
    let log = server.log();
    assert!(
        log.contains("Principal = User:mallory is Denied"),
        "mallory was not the principal:\n{log}"
    );
    assert!(log.contains("OAUTHBEARER uses the unsecured validator"));
}

/// Hands librdkafka a prepared token.
struct Token(String);

impl ClientContext for Token {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        Ok(OAuthToken {
            token: self.0.clone(),
            principal_name: "ignored-by-the-broker".into(),
            lifetime_ms: ((now_s() + 600) * 1000) as i64,
        })
    }
}

/// An ES256 key (rcgen's P-256) as a JWKS entry and a signing key.
fn es256_key(kid: &str) -> (serde_json::Value, jsonwebtoken::EncodingKey) {
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw(); // 0x04 || X || Y
    assert_eq!(raw.len(), 65);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..]),
    });
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    (jwk, signing)
}

fn signed(key: &jsonwebtoken::EncodingKey, kid: &str, sub: &str, exp: u64) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.into());
    let claims = serde_json::json!({
        "sub": sub, "exp": exp, "iat": now_s(), "iss": "https://idp.test", "aud": "strom",
    });
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

/// Whether a producer presenting `token` gets one record acknowledged.
fn token_delivers(bootstrap: &str, token: String) -> bool {
    let producer: FutureProducer<Token> = oauth_client(bootstrap)
        .create_with_context(Token(token))
        .unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(delivers(&producer, "oauth-signed"))
}

#[test]
fn signed_tokens_are_checked_against_the_key_set() {
    let dir = tempfile::tempdir().unwrap();
    let (jwk, key) = es256_key("k1");
    let (_, other_key) = es256_key("k1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let url = format!("file://{}", jwks.display());
    let server = oauth_server(&[
        ("sasl.oauthbearer.jwks.endpoint.url", &url),
        ("sasl.oauthbearer.expected.audience", "strom"),
        ("sasl.oauthbearer.expected.issuer", "https://idp.test"),
    ]);
    let bootstrap = server.bootstrap();
    let later = now_s() + 600;

    assert!(token_delivers(
        &bootstrap,
        signed(&key, "k1", "alice", later)
    ));
    assert!(!token_delivers(
        &bootstrap,
        signed(&key, "k1", "alice", now_s() - 3600)
    ));
    assert!(!token_delivers(
        &bootstrap,
        signed(&other_key, "k1", "alice", later)
    ));
    assert!(!token_delivers(
        &bootstrap,
        signed(&key, "unknown-kid", "alice", later)
    ));
    let log = server.log();
    for why in [
        "ExpiredSignature",
        "InvalidSignature",
        "no key of the key set",
    ] {
        assert!(log.contains(why), "no '{why}' in the log:\n{log}");
    }
    // The refusals closed only their own connections.
    assert!(token_delivers(
        &bootstrap,
        signed(&key, "k1", "alice", later)
    ));
}
