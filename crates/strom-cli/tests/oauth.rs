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

/// A JWKS endpoint for the tests: serves `body` over HTTP/1.1 and counts the GETs.
struct JwksEndpoint {
    url: String,
    body: std::sync::Arc<std::sync::Mutex<String>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksEndpoint {
    fn start(keys: &[serde_json::Value]) -> JwksEndpoint {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/realms/test/certs",
            listener.local_addr().unwrap()
        );
        let body = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if !request.starts_with(b"GET /realms/test/certs HTTP/1.1\r\n") {
                    let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    continue;
                }
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = b.lock().unwrap().clone();
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        let endpoint = JwksEndpoint { url, body, hits };
        endpoint.serve(keys);
        endpoint
    }

    fn serve(&self, keys: &[serde_json::Value]) {
        *self.body.lock().unwrap() = serde_json::json!({ "keys": keys }).to_string();
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The key set comes from an HTTP URL: fetched at start-up, fetched again early when a
/// token names a key the set lacks (a rotation at the identity provider), but not again for
/// every refused token; and, with a short `sasl.oauthbearer.jwks.endpoint.refresh.ms`,
/// fetched on that period.
#[test]
fn key_sets_are_fetched_from_a_url_and_follow_rotations() {
    let (jwk1, key1) = es256_key("k1");
    let (jwk2, key2) = es256_key("k2");
    let (jwk3, key3) = es256_key("k3");
    let endpoint = JwksEndpoint::start(std::slice::from_ref(&jwk1));
    let server = oauth_server(&[
        ("sasl.oauthbearer.jwks.endpoint.url", &endpoint.url),
        ("sasl.oauthbearer.expected.audience", "strom"),
    ]);
    let bootstrap = server.bootstrap();
    let later = now_s() + 600;
    assert_eq!(endpoint.hits(), 1, "fetched once at start-up");
    assert!(token_delivers(
        &bootstrap,
        signed(&key1, "k1", "alice", later)
    ));
    assert_eq!(endpoint.hits(), 1, "a known kid fetches nothing");

    // The identity provider rotates to k2: the first k2 token makes the broker fetch the
    // set again; librdkafka's retry gets in.
    endpoint.serve(std::slice::from_ref(&jwk2));
    assert!(token_delivers(
        &bootstrap,
        signed(&key2, "k2", "alice", later)
    ));
    assert_eq!(endpoint.hits(), 2);
    let log = server.log();
    assert!(log.contains("a token names a key the set lacks"), "{log}");
    assert!(log.contains("OAUTHBEARER key set refreshed"), "{log}");
    // k1 is gone: refused, each retry, without a fetch per refusal.
    assert!(!token_delivers(
        &bootstrap,
        signed(&key1, "k1", "alice", later)
    ));
    let refusals = server.log().matches("no key of the key set").count();
    assert!(refusals >= 3, "{refusals} refusals");
    assert!(endpoint.hits() <= 3, "{} fetches", endpoint.hits());
    drop(server);

    // A short refresh period picks a rotation up by itself.
    let periodic = oauth_server(&[
        ("sasl.oauthbearer.jwks.endpoint.url", &endpoint.url),
        ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "300"),
    ]);
    let before = endpoint.hits();
    endpoint.serve(&[jwk2, jwk3]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        endpoint.hits() >= before + 3,
        "{} fetches",
        endpoint.hits() - before
    );
    assert!(token_delivers(
        &periodic.bootstrap(),
        signed(&key3, "k3", "bob", later)
    ));
    assert!(!periodic.log().contains("a token names a key the set lacks"));
}

/// Runs the `strom` CLI with `--command-config config` against `bootstrap`; (success,
/// stdout, stderr).
fn cli(bootstrap: &str, config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .args(["-b", bootstrap, "--command-config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CLI authenticates with OAUTHBEARER from a Kafka client properties file: an unsecured
/// token from OAuthBearerLoginModule's options against a broker with the unsecured validator
/// (acting as its `sub`, checked through ACLs), and a signed token from a file against a
/// broker checking a key set; an expired token is refused with the broker's reason.
#[test]
fn the_cli_authenticates_with_oauthbearer() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let unsecured = |sub: &str| {
        write(
            &format!("{sub}.properties"),
            format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n\
                 sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredLoginCallbackHandler\n\
                 sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"{sub}\";\n"
            ),
        )
    };
    let server = oauth_server(&[
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:alice"),
    ]);
    let (ok, _, err) = cli(
        &server.bootstrap(),
        &unsecured("alice"),
        &["topic", "create", "by-alice"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        &server.bootstrap(),
        &unsecured("mallory"),
        &["topic", "create", "by-mallory"],
    );
    assert!(!ok, "mallory created a topic");
    assert!(err.to_ascii_lowercase().contains("authoriz"), "{err}");
    assert!(server.log().contains("Principal = User:mallory is Denied"));
    drop(server);

    let (jwk, key) = es256_key("k1");
    let jwks = write(
        "jwks.json",
        serde_json::json!({ "keys": [jwk] }).to_string(),
    );
    let server = oauth_server(&[(
        "sasl.oauthbearer.jwks.endpoint.url",
        &format!("file://{}", jwks.display()),
    )]);
    let token = write("token.jwt", signed(&key, "k1", "carol", now_s() + 600));
    let from_file = |name: &str| {
        write(
            name,
            format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n\
                 sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
                 sasl.oauthbearer.token.endpoint.url=file://{}\n\
                 sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;\n",
                token.display()
            ),
        )
    };
    let config = from_file("signed.properties");
    let (ok, out, err) = cli(
        &server.bootstrap(),
        &config,
        &["topic", "create", "by-carol"],
    );
    assert!(ok, "{out}{err}");
    std::fs::write(&token, signed(&key, "k1", "carol", now_s() - 3600)).unwrap();
    let (ok, _, err) = cli(&server.bootstrap(), &config, &["topic", "list"]);
    assert!(!ok, "an expired token got through");
    assert!(err.contains("ExpiredSignature"), "{err}");
}
