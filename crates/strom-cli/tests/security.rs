//! Listener security with real clients: TLS and mutual TLS with librdkafka (OpenSSL) and
//! kafka-python (Python's ssl); a plaintext client on a TLS port and an untrusted client
//! certificate fail cleanly, with a log line, and other connections carry on.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;

/// A CA and the PEM files a test needs, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and localhost, a client certificate with
    /// subject `CN=alice,O=Strom Tests`, and a second CA's client certificate (untrusted).
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca_params, ca_key) = ca("Strom Test CA");
        std::fs::write(
            dir.path().join("ca.pem"),
            ca_params.self_signed(&ca_key).unwrap().pem(),
        )
        .unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut server =
            CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        server.distinguished_name = dn("strom-broker");
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        std::fs::write(
            dir.path().join("server.pem"),
            format!("{}{}", server_key.serialize_pem(), server_cert.pem()),
        )
        .unwrap();

        let (client_cert, client_key) = leaf("alice", &issuer);
        std::fs::write(dir.path().join("client.crt"), client_cert).unwrap();
        std::fs::write(dir.path().join("client.key"), client_key).unwrap();

        let (other, other_key) = ca("Someone Else's CA");
        std::fs::write(
            dir.path().join("other-ca.pem"),
            other.self_signed(&other_key).unwrap().pem(),
        )
        .unwrap();
        let other_issuer = Issuer::new(other, other_key);
        let (rogue_cert, rogue_key) = leaf("mallory", &other_issuer);
        std::fs::write(dir.path().join("rogue.crt"), rogue_cert).unwrap();
        std::fs::write(dir.path().join("rogue.key"), rogue_key).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Strom Tests");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params, KeyPair::generate().unwrap())
}

fn leaf(cn: &str, issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn(cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A broker whose only listener is SSL; (server, its bootstrap address).
fn tls_server(pki: &Pki, client_auth: &str) -> (common::Server, String) {
    let server = common::Server::start_with(
        &[
            ("ssl.keystore.location", &pki.s("server.pem")),
            ("ssl.truststore.location", &pki.s("ca.pem")),
            ("ssl.client.auth", client_auth),
        ],
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some("SSL"),
            ..Default::default()
        },
    );
    let bootstrap = server.bootstrap();
    (server, bootstrap)
}

fn ssl_config(bootstrap: &str, pki: &Pki, client: Option<&str>) -> ClientConfig {
    let mut c = common::client_config(bootstrap);
    c.set("security.protocol", "ssl")
        .set("ssl.ca.location", pki.s("ca.pem"))
        .set("message.timeout.ms", "10000");
    if let Some(name) = client {
        c.set("ssl.certificate.location", pki.s(&format!("{name}.crt")))
            .set("ssl.key.location", pki.s(&format!("{name}.key")));
    }
    c
}

/// Whether a producer with `config` fails to deliver one record (within a few seconds).
fn refused(mut config: ClientConfig) -> bool {
    let producer: FutureProducer = config.set("message.timeout.ms", "3000").create().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(producer.send(
            FutureRecord::<(), _>::to("refused").payload("x"),
            Duration::from_secs(5),
        ))
        .is_err()
}

fn produce_and_read(config: &ClientConfig, topic: &str, n: usize) {
    let producer: FutureProducer = config.create().expect("producer");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for i in 0..n {
            let v = format!("secret-{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic).payload(&v),
                    Duration::from_secs(10),
                )
                .await
                .expect("acknowledged over TLS");
        }
    });
    let mut c = config.clone();
    c.set("group.id", "tls-readers")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = c.create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {n}",
            got.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume over TLS");
            got.push(String::from_utf8(rdkafka::Message::payload(&m).unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(got[0], "secret-0");
    assert_eq!(got[n - 1], format!("secret-{}", n - 1));
}

#[test]
fn librdkafka_over_tls_and_a_plaintext_client_on_the_tls_port_fails_cleanly() {
    let pki = Pki::new();
    let (server, bootstrap) = tls_server(&pki, "none");
    let config = ssl_config(&bootstrap, &pki, None);
    produce_and_read(&config, "over-tls", 50);

    // A plaintext Kafka client on the TLS port: its connection fails, logged, and the TLS
    // clients carry on.
    assert!(
        refused(common::client_config(&bootstrap)),
        "a plaintext client must not get through"
    );
    wait_for_log(&server, "TLS handshake failed");
    // Malformed handshakes: garbage, an HTTP request, a TLS record header promising more than
    // it sends, a truncated ClientHello; each closes its own connection only.
    let garbage: [&[u8]; 4] = [
        &[0xff; 300],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
        &[
            0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c, 0x03, 0x03,
        ],
    ];
    for bytes in garbage {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&bootstrap).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink); // closed by the broker (an alert at most)
        assert!(sink.len() < 1024, "no answer beyond a TLS alert");
    }
    produce_and_read(&config, "over-tls-2", 5);
}

#[test]
fn mutual_tls_admits_trusted_client_certificates_and_refuses_others() {
    let pki = Pki::new();
    let (server, bootstrap) = tls_server(&pki, "required");
    // Trusted client certificate.
    let config = ssl_config(&bootstrap, &pki, Some("client"));
    produce_and_read(&config, "mtls", 20);

    // No certificate, and a certificate from another CA: refused at the handshake.
    for client in [None, Some("rogue")] {
        assert!(
            refused(ssl_config(&bootstrap, &pki, client)),
            "{client:?} must be refused"
        );
    }
    wait_for_log(&server, "TLS handshake failed");
    produce_and_read(&config, "mtls-2", 5);
}

#[test]
fn kafka_python_over_mutual_tls() {
    let pki = Pki::new();
    let (_server, bootstrap) = tls_server(&pki, "required");
    let script = format!(
        "{}/../../tests/python/kafka_python_tls.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&bootstrap)
        .arg(pki.path("ca.pem"))
        .arg(pki.path("client.crt"))
        .arg(pki.path("client.key"))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("kafka-python TLS OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_log(server: &common::Server, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "no '{text}' in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;

/// A broker whose only listener is `protocol` (SASL_PLAINTEXT or SASL_SSL) with SASL PLAIN.
fn sasl_server(pki: &Pki, protocol: &'static str) -> common::Server {
    let jaas_key = format!(
        "listener.name.{}.plain.sasl.jaas.config",
        protocol.to_ascii_lowercase()
    );
    let keystore = pki.s("server.pem");
    common::Server::start_with(
        &[
            ("sasl.enabled.mechanisms", "PLAIN"),
            (jaas_key.as_str(), JAAS),
            ("ssl.keystore.location", &keystore),
        ],
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some(protocol),
            ..Default::default()
        },
    )
}

fn sasl_config(
    bootstrap: &str,
    pki: &Pki,
    protocol: &str,
    user: &str,
    password: &str,
) -> ClientConfig {
    let mut c = common::client_config(bootstrap);
    c.set("security.protocol", protocol.to_ascii_lowercase())
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "10000");
    if protocol == "SASL_SSL" {
        c.set("ssl.ca.location", pki.s("ca.pem"));
    }
    c
}

#[test]
fn sasl_plain_over_plaintext_and_tls_with_librdkafka_and_a_wrong_password_fails_cleanly() {
    let pki = Pki::new();
    for protocol in ["SASL_PLAINTEXT", "SASL_SSL"] {
        let server = sasl_server(&pki, protocol);
        let bootstrap = server.bootstrap();
        let good = sasl_config(&bootstrap, &pki, protocol, "alice", "alice-secret");
        produce_and_read(&good, "sasl", 20);

        assert!(
            refused(sasl_config(&bootstrap, &pki, protocol, "alice", "wrong")),
            "{protocol}: a wrong password must not get through"
        );
        wait_for_log(&server, "SASL authentication failed");
        // A client that skips authentication: closed at its first request.
        if protocol == "SASL_PLAINTEXT" {
            assert!(
                refused(common::client_config(&bootstrap)),
                "an unauthenticated client must not get through"
            );
            wait_for_log(&server, "request before SASL authentication");
        }
        produce_and_read(&good, "sasl-2", 5);
    }
}

#[test]
fn kafka_python_sasl_plain() {
    let pki = Pki::new();
    let server = sasl_server(&pki, "SASL_PLAINTEXT");
    let script = format!(
        "{}/../../tests/python/kafka_python_sasl.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new("python3")
        .args([
            &script,
            &server.bootstrap(),
            "PLAIN",
            "admin",
            "admin-secret",
        ])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("kafka-python SASL OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets `user`'s SCRAM credential for `mechanism` (1 = SHA-256, 2 = SHA-512) with
/// AlterUserScramCredentials on the wire, computing the salted password as a client does.
fn set_scram(bootstrap: &str, user: &str, mechanism: i8, password: &str) -> (i16, Option<String>) {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    use kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    };
    use kafka_protocol::protocol::StrBytes;
    use strom_broker::security::scram::{salted_password, Mechanism};
    let m = Mechanism::by_id(mechanism).unwrap_or(strom_broker::security::scram::SHA_256);
    let salt = format!("salt-of-{user}").into_bytes();
    let mut upsertion = ScramCredentialUpsertion::default();
    upsertion.name = StrBytes::from_string(user.to_owned());
    upsertion.mechanism = mechanism;
    upsertion.iterations = 4096;
    upsertion.salted_password = salted_password(m, password, &salt, 4096).into();
    upsertion.salt = salt.into();
    let mut request = AlterUserScramCredentialsRequest::default();
    request.upsertions = vec![upsertion];
    let mut wire = common::wire::Wire::connect(bootstrap);
    let r: AlterUserScramCredentialsResponse =
        wire.call(ApiKey::AlterUserScramCredentials, 0, &request);
    assert_eq!(r.results.len(), 1);
    (
        r.results[0].error_code,
        r.results[0].error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn scram_users_set_on_the_wire_authenticate_librdkafka_and_kafka_python() {
    let pki = Pki::new();
    let sasl_ssl = common::free_port();
    let sasl_plain = common::free_port();
    let keystore = pki.s("server.pem");
    let server = common::Server::start_with(
        &[
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
            ),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512"),
            ("ssl.keystore.location", &keystore),
        ],
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            more_listeners: Some(format!(
                "SASL_SSL://127.0.0.1:{sasl_ssl},SASL_PLAINTEXT://127.0.0.1:{sasl_plain}"
            )),
            ..Default::default()
        },
    );
    // Credentials are managed on the (loopback) plaintext listener.
    assert_eq!(
        set_scram(&server.bootstrap(), "alice", 1, "alice-256"),
        (0, None)
    );
    assert_eq!(
        set_scram(&server.bootstrap(), "alice", 2, "alice-512"),
        (0, None)
    );
    let (code, message) = set_scram(&server.bootstrap(), "", 1, "x");
    assert_eq!(
        code,
        strom_protocol::ErrorCode::UnacceptableCredential.code(),
        "{message:?}"
    );
    let (code, _) = set_scram(&server.bootstrap(), "bob", 9, "x");
    assert_eq!(
        code,
        strom_protocol::ErrorCode::UnsupportedSaslMechanism.code()
    );

    // Describe: mechanisms and iterations, never keys; unknown users are RESOURCE_NOT_FOUND.
    {
        use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
        use kafka_protocol::messages::{
            ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
        };
        let mut request = DescribeUserScramCredentialsRequest::default();
        let name = |n: &str| {
            let mut u = UserName::default();
            u.name = kafka_protocol::protocol::StrBytes::from_string(n.into());
            u
        };
        request.users = Some(vec![name("alice"), name("nobody")]);
        let mut wire = common::wire::Wire::connect(&server.bootstrap());
        let r: DescribeUserScramCredentialsResponse =
            wire.call(ApiKey::DescribeUserScramCredentials, 0, &request);
        assert_eq!(r.results.len(), 2);
        let infos: Vec<(i8, i32)> = r.results[0]
            .credential_infos
            .iter()
            .map(|c| (c.mechanism, c.iterations))
            .collect();
        assert_eq!(infos, vec![(1, 4096), (2, 4096)]);
        assert_eq!(
            r.results[1].error_code,
            strom_protocol::ErrorCode::ResourceNotFound.code()
        );
    }

    // librdkafka: SCRAM-SHA-256 over TLS, SCRAM-SHA-512 in the clear.
    for (port, protocol, mechanism, password) in [
        (sasl_ssl, "sasl_ssl", "SCRAM-SHA-256", "alice-256"),
        (sasl_plain, "sasl_plaintext", "SCRAM-SHA-512", "alice-512"),
    ] {
        let bootstrap = format!("127.0.0.1:{port}");
        let mut c = common::client_config(&bootstrap);
        c.set("security.protocol", protocol)
            .set("sasl.mechanism", mechanism)
            .set("sasl.username", "alice")
            .set("sasl.password", password)
            .set("ssl.ca.location", pki.s("ca.pem"))
            .set("message.timeout.ms", "10000");
        produce_and_read(&c, &format!("scram-{}", mechanism.to_lowercase()), 10);

        let mut wrong = c.clone();
        wrong.set("sasl.password", "not-it");
        assert!(refused(wrong), "{mechanism}: a wrong password must fail");
    }
    wait_for_log(&server, "SASL authentication failed");

    // kafka-python with SCRAM-SHA-256.
    let script = format!(
        "{}/../../tests/python/kafka_python_sasl.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new("python3")
        .args([
            &script,
            &format!("127.0.0.1:{sasl_plain}"),
            "SCRAM-SHA-256",
            "alice",
            "alice-256",
        ])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("kafka-python SASL OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// KIP-368: with `connections.max.reauth.ms`, SaslAuthenticate tells the client how long its
/// session lasts; librdkafka re-authenticates on the same connection and keeps producing,
/// while a client that does not is disconnected at its next request after the session ends.
#[test]
fn sasl_sessions_end_and_clients_reauthenticate() {
    use kafka_protocol::messages::{
        ApiKey, MetadataRequest, SaslAuthenticateRequest, SaslAuthenticateResponse,
        SaslHandshakeRequest, SaslHandshakeResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    let server = common::Server::start_with(
        &[
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
            ("connections.max.reauth.ms", "1500"),
        ],
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some("SASL_PLAINTEXT"),
            ..Default::default()
        },
    );
    let bootstrap = server.bootstrap();

    // A bare client: authenticates, is told 1.5 s, does not re-authenticate.
    let mut wire = common::wire::Wire::connect(&bootstrap);
    let h: SaslHandshakeResponse = wire.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(h.error_code, 0);
    let a: SaslAuthenticateResponse = wire.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::from_static(b"\0alice\0alice-secret")),
    );
    assert_eq!(a.error_code, 0);
    assert!(
        (1..=1500).contains(&a.session_lifetime_ms),
        "session_lifetime_ms {}",
        a.session_lifetime_ms
    );
    std::thread::sleep(Duration::from_millis(1800));
    let frame = common::wire::request_frame(ApiKey::Metadata, 12, 99, &MetadataRequest::default());
    let closed = wire.send_raw_and_expect_close(&frame);
    assert!(closed, "the expired session's connection stayed open");
    wait_for_log(&server, "SASL session expired without re-authentication");

    // librdkafka re-authenticates on its own: records keep flowing for several sessions.
    let producer: FutureProducer = sasl_config(
        &bootstrap,
        &Pki::new(),
        "SASL_PLAINTEXT",
        "alice",
        "alice-secret",
    )
    .create()
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for i in 0..20 {
            producer
                .send(
                    FutureRecord::<(), _>::to("reauth").payload(&format!("r-{i}")),
                    Duration::from_secs(10),
                )
                .await
                .expect("acknowledged across re-authentications");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let expired_closes = server
        .log()
        .matches("SASL session expired without re-authentication")
        .count();
    assert_eq!(
        expired_closes,
        1,
        "librdkafka's connections were closed:\n{}",
        server.log()
    );
}

/// The `strom` CLI (strom-client) over TLS with a client properties file: mutual TLS with
/// Kafka's Java names (`ssl.truststore.location`, a PEM `ssl.keystore.location`) and
/// librdkafka's (`ssl.ca.location`, `ssl.certificate.location` + `ssl.key.location`); a
/// client without the CA, or with an untrusted certificate, fails with a clear message.
#[test]
fn the_cli_speaks_mutual_tls_with_a_command_config() {
    let pki = Pki::new();
    let (_server, bootstrap) = tls_server(&pki, "required");
    let alice_pem = pki.path("alice.pem");
    std::fs::write(
        &alice_pem,
        std::fs::read_to_string(pki.path("client.key")).unwrap()
            + &std::fs::read_to_string(pki.path("client.crt")).unwrap(),
    )
    .unwrap();
    let write = |name: &str, body: String| {
        let path = pki.path(name);
        std::fs::write(&path, body).unwrap();
        path.display().to_string()
    };
    let java = write(
        "java.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            pki.s("ca.pem"),
            alice_pem.display()
        ),
    );
    let librdkafka = write(
        "librdkafka.properties",
        format!(
            "security.protocol=ssl\nssl.ca.location={}\nssl.certificate.location={}\nssl.key.location={}\n",
            pki.s("ca.pem"),
            pki.s("client.crt"),
            pki.s("client.key")
        ),
    );
    let no_ca = write("no-ca.properties", "security.protocol=SSL\n".into());
    let rogue = write(
        "rogue.properties",
        format!(
            "security.protocol=SSL\nssl.ca.location={}\nssl.certificate.location={}\nssl.key.location={}\n",
            pki.s("ca.pem"),
            pki.s("rogue.crt"),
            pki.s("rogue.key")
        ),
    );
    let strom = |config: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-b", bootstrap.as_str(), "--command-config", config]);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(&all)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = strom(&java, &["topic", "create", "over-tls"]);
    assert!(ok, "{err}");
    let (ok, out, err) = strom(&librdkafka, &["topic", "list"]);
    assert!(ok && out.contains("over-tls"), "{out}{err}");
    let (ok, _, err) = strom(&no_ca, &["topic", "list"]);
    assert!(!ok && err.contains("ssl.truststore.location"), "{err}");
    let (ok, _, err) = strom(&rogue, &["topic", "list"]);
    assert!(!ok, "an untrusted client certificate got through: {err}");
}

/// A renewed key store file is served without a restart; a broken one is logged and the
/// previous key kept.
#[test]
fn a_changed_key_store_is_reloaded_without_a_restart() {
    let old = Pki::new();
    let new = Pki::new();
    let live = old.path("live.pem");
    std::fs::copy(old.path("server.pem"), &live).unwrap();
    let server = common::Server::start_with(
        &[("ssl.keystore.location", &live.display().to_string())],
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some("SSL"),
            ..Default::default()
        },
    );
    let b = server.bootstrap();
    produce_and_read(&ssl_config(&b, &old, None), "before", 2);
    assert!(
        refused(ssl_config(&b, &new, None)),
        "the new CA's client got in early"
    );

    std::fs::copy(new.path("server.pem"), &live).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The first handshake after the change notices it; librdkafka retries until it works.
    produce_and_read(&ssl_config(&b, &new, None), "after", 2);
    wait_for_log(&server, "TLS key store reloaded");
    assert!(
        refused(ssl_config(&b, &old, None)),
        "the old certificate is still served"
    );

    std::fs::write(&live, "not a key store").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    produce_and_read(&ssl_config(&b, &new, None), "still", 2);
    wait_for_log(&server, "TLS key store changed but cannot be loaded");
}

/// A changed trust store file is used without a restart: after it is replaced by another CA,
/// that CA's clients get in over mutual TLS and the old CA's are refused; a broken file is
/// logged and the previous roots kept.
#[test]
fn a_changed_trust_store_is_reloaded_without_a_restart() {
    let pki = Pki::new();
    let live = pki.path("live-trust.pem");
    std::fs::copy(pki.path("ca.pem"), &live).unwrap();
    let server = common::Server::start_with(
        &[
            ("ssl.keystore.location", &pki.s("server.pem")),
            ("ssl.truststore.location", &live.display().to_string()),
            ("ssl.client.auth", "required"),
        ],
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some("SSL"),
            ..Default::default()
        },
    );
    let b = server.bootstrap();
    produce_and_read(&ssl_config(&b, &pki, Some("client")), "trusted-before", 2);
    assert!(
        refused(ssl_config(&b, &pki, Some("rogue"))),
        "the other CA's client got in early"
    );

    std::fs::copy(pki.path("other-ca.pem"), &live).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    produce_and_read(&ssl_config(&b, &pki, Some("rogue")), "trusted-after", 2);
    wait_for_log(&server, "TLS trust store reloaded");
    assert!(
        refused(ssl_config(&b, &pki, Some("client"))),
        "a client of the removed CA still got in"
    );

    std::fs::write(&live, "not a trust store").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    produce_and_read(&ssl_config(&b, &pki, Some("rogue")), "trusted-still", 2);
    wait_for_log(&server, "TLS trust store changed but cannot be loaded");
}

/// PKCS#12 key and trust stores (`ssl.keystore.type=PKCS12`, as keytool and `openssl pkcs12`
/// make them) serve mutual TLS to librdkafka; a wrong store password stops `strom server`
/// with a message naming the setting.
#[test]
fn pkcs12_key_and_trust_stores_serve_mutual_tls() {
    let pki = Pki::new();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs (scripts/install-deps installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (server_pem, keystore, truststore) =
        (pki.s("server.pem"), pki.s("server.p12"), pki.s("trust.p12"));
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &server_pem,
        "-inkey",
        &server_pem,
        "-out",
        &keystore,
        "-passout",
        "pass:changeit",
        "-name",
        "strom",
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        &pki.s("ca.pem"),
        "-out",
        &truststore,
        "-passout",
        "pass:changeit",
    ]);
    let server = common::Server::start_with(
        &[
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", &keystore),
            ("ssl.keystore.password", "changeit"),
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.location", &truststore),
            ("ssl.truststore.password", "changeit"),
            ("ssl.client.auth", "required"),
        ],
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some("SSL"),
            ..Default::default()
        },
    );
    let b = server.bootstrap();
    produce_and_read(&ssl_config(&b, &pki, Some("client")), "p12", 3);
    assert!(
        refused(ssl_config(&b, &pki, Some("rogue"))),
        "an untrusted client got in"
    );

    let port = common::free_port();
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["server", "--set"])
        .arg(format!("listeners=SSL://127.0.0.1:{port}"))
        .arg("--set")
        .arg(format!("log.dirs={}", data.path().display()))
        .args([
            "--set",
            "http.listeners=",
            "--set",
            "ssl.keystore.type=PKCS12",
        ])
        .arg("--set")
        .arg(format!("ssl.keystore.location={keystore}"))
        .args(["--set", "ssl.keystore.password=wrong"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("strom kept running with a wrong key store password");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("ssl.keystore.location") && err.contains("PKCS#12"),
        "{err}"
    );
}

/// A SASL_SSL inter-broker listener: the brokers' replica fetchers and transaction markers
/// connect with TLS (checked against the brokers' CA, host name included) and SASL PLAIN
/// with the listener's JAAS username and password. Three in-sync replicas acknowledge an
/// acks=all load (min.insync.replicas=3: a follower that could not connect would stall it),
/// a transaction over partitions led by different brokers commits and reads back, and a
/// broker restarted with a wrong password cannot replicate, says why, and stays out of the
/// ISRs.
#[test]
fn brokers_replicate_and_send_transaction_markers_over_sasl_ssl() {
    use common::cluster::Cluster;
    use common::load::{create_topic_with, CLUSTER, WAIT};
    use rdkafka::producer::Producer;
    use rdkafka::Message;

    let pki = Pki::new();
    let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="inter-broker-secret" user_broker="inter-broker-secret";"#;
    let (keystore, truststore) = (pki.s("server.pem"), pki.s("ca.pem"));
    let mut settings: Vec<(&str, &str)> = CLUSTER.to_vec();
    settings.extend([
        (
            "listener.name.broker.ssl.keystore.location",
            keystore.as_str(),
        ),
        (
            "listener.name.broker.ssl.truststore.location",
            truststore.as_str(),
        ),
        ("listener.name.broker.sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.broker.plain.sasl.jaas.config", jaas),
        ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
    ]);
    let mut cluster = Cluster::start_with_inter_broker(3, "SASL_SSL", &settings);
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    let bootstrap = cluster.bootstrap();
    create_topic_with(&bootstrap, "secured", 3, &[("min.insync.replicas", "3")]);
    let full = |v: &common::cluster::View| {
        v.topics.get("secured").is_some_and(|t| {
            t.len() == 3
                && t.values()
                    .all(|(leader, _, isr)| *leader > 0 && isr.len() == 3)
        })
    };
    let (view, _) = cluster.wait_view(1, WAIT, "full ISRs", full);
    let leaders: std::collections::BTreeSet<i32> =
        view.topics["secured"].values().map(|p| p.0).collect();

    let producer = common::producer(&bootstrap, &[("acks", "all")]);
    for i in 0..300 {
        let value = format!("r-{i}");
        common::load::block(
            producer.send(
                FutureRecord::<(), _>::to("secured")
                    .payload(&value)
                    .partition(i % 3),
                Duration::from_secs(30),
            ),
        )
        .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
    }

    let txn = common::producer(
        &bootstrap,
        &[("transactional.id", "over-tls"), ("acks", "all")],
    );
    txn.init_transactions(Duration::from_secs(30)).unwrap();
    txn.begin_transaction().unwrap();
    for p in 0..3 {
        let value = format!("t-{p}");
        common::load::block(
            txn.send(
                FutureRecord::<(), _>::to("secured")
                    .payload(&value)
                    .partition(p),
                Duration::from_secs(30),
            ),
        )
        .unwrap_or_else(|(e, _)| panic!("transactional record {p}: {e}"));
    }
    txn.commit_transaction(Duration::from_secs(30)).unwrap();

    // read_committed (librdkafka's default) returns the transaction's records only once its
    // markers are in every partition.
    let consumer = common::consumer(&bootstrap, &[("isolation.level", "read_committed")]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("secured", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut read = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + WAIT;
    while read.len() < 303 && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            read.insert(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(read.len(), 303, "leaders {leaders:?}");
    assert!((0..3).all(|p| read.contains(&format!("t-{p}"))));

    // Node 3 with the wrong password: its fetches are refused, it says so, and it stays out
    // of every ISR.
    assert!(cluster.stop(3), "node 3 stops cleanly");
    let path = cluster.properties_path(3);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            r#"password="inter-broker-secret" user_broker"#,
            r#"password="wrong" user_broker"#,
        ),
    )
    .unwrap();
    cluster.restart(3);
    let (_, _) = cluster.wait_view(1, WAIT, "node 3 out of every ISR", |v| {
        v.topics.get("secured").is_some_and(|t| {
            t.values()
                .all(|(leader, _, isr)| *leader > 0 && *leader != 3 && !isr.contains(&3))
        })
    });
    let deadline = std::time::Instant::now() + WAIT;
    while !cluster
        .log(3)
        .contains("cannot connect to the leader to replicate")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "node 3 never logged its refused connections"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cluster.log(3).contains("SASL PLAIN as broker"));
    drop(producer);
}

/// Waits until `log()` contains `text`.
fn wait_for_text(what: &str, text: &str, log: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never logged {text:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produces `n` records with acks=all to each of `partitions` partitions of `topic`.
fn produce_all_acks(bootstrap: &str, topic: &str, partitions: i32, n: i32) {
    let producer = common::producer(bootstrap, &[("acks", "all")]);
    for i in 0..n {
        let value = format!("r-{i}");
        common::load::block(
            producer.send(
                FutureRecord::<(), _>::to(topic)
                    .payload(&value)
                    .partition(i % partitions),
                Duration::from_secs(30),
            ),
        )
        .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
    }
}

/// The CONTROLLER listener on SSL with mutual TLS: the three controllers' votes, appends,
/// forwarded operations and heartbeats run over TLS. A leader is elected, a topic created,
/// acks=all records acknowledged; a broker-only node joins over TLS; the active controller is
/// killed and the others elect a new one and keep serving. The killed node restarted with a certificate of another CA
/// cannot join the quorum, and both sides log why.
#[test]
fn the_quorum_runs_over_mutual_tls_and_refuses_an_untrusted_node() {
    use common::cluster::Cluster;
    use common::load::{create_topic_with, CLUSTER, WAIT};

    let pki = Pki::new();
    let (keystore, truststore) = (pki.s("server.pem"), pki.s("ca.pem"));
    let mut settings: Vec<(&str, &str)> = CLUSTER.to_vec();
    settings.extend([
        (
            "listener.security.protocol.map",
            "CONTROLLER:SSL,PLAINTEXT:PLAINTEXT",
        ),
        (
            "listener.name.controller.ssl.keystore.location",
            keystore.as_str(),
        ),
        (
            "listener.name.controller.ssl.truststore.location",
            truststore.as_str(),
        ),
        ("listener.name.controller.ssl.client.auth", "required"),
    ]);
    let mut cluster = Cluster::start(3, &settings);
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    assert!(cluster
        .log(1)
        .contains("the metadata quorum's connections are secured"));
    let leader = cluster.quorum_leader(1);
    assert!((1..=3).contains(&leader), "leader {leader}");
    create_topic_with(
        &cluster.bootstrap(),
        "quorum-tls",
        3,
        &[("min.insync.replicas", "2")],
    );
    cluster.wait_view(1, WAIT, "full ISRs", |v| {
        v.topics
            .get("quorum-tls")
            .is_some_and(|t| t.len() == 3 && t.values().all(|(l, _, isr)| *l > 0 && isr.len() == 3))
    });
    produce_all_acks(&cluster.bootstrap(), "quorum-tls", 3, 60);
    // A broker-only node dials the controllers with the map's protocol for CONTROLLER.
    let added = cluster.add_broker(&settings);
    cluster.wait_view(1, WAIT, "the broker-only node registered", |v| {
        v.brokers.contains(&added)
    });

    cluster.kill9(leader);
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = cluster.quorum_leader(survivor);
        if now > 0 && now != leader {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no new controller");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.wait_view(survivor, WAIT, "leaders away from the killed node", |v| {
        v.topics.get("quorum-tls").is_some_and(|t| {
            t.values()
                .all(|(l, _, isr)| *l > 0 && *l != leader && !isr.contains(&leader))
        })
    });
    produce_all_acks(&cluster.bootstrap(), "quorum-tls", 3, 60);
    let (ok, out) = cluster.cli(survivor, &["topic", "create", "after-failover"]);
    assert!(ok, "{out}");
    cluster.wait_view(survivor, WAIT, "a topic created after the failover", |v| {
        v.topics.contains_key("after-failover")
    });

    // The killed node comes back with a certificate of a CA the others do not trust.
    let rogue = pki.path("rogue.pem");
    std::fs::write(
        &rogue,
        format!(
            "{}{}",
            std::fs::read_to_string(pki.path("rogue.key")).unwrap(),
            std::fs::read_to_string(pki.path("rogue.crt")).unwrap()
        ),
    )
    .unwrap();
    let path = cluster.properties_path(leader);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(&keystore, &rogue.display().to_string())).unwrap();
    cluster.restart_no_wait(leader);
    wait_for_text(
        &format!("node {survivor}"),
        "quorum connection refused: SSL handshake failed",
        || cluster.log(survivor),
    );
    wait_for_text(
        &format!("node {leader}"),
        "quorum connection refused: SSL handshake failed",
        || cluster.log(leader),
    );
    assert!(
        !cluster.is_listening(leader),
        "the untrusted node registered:\n{}",
        cluster.log(leader)
    );
    produce_all_acks(&cluster.bootstrap(), "quorum-tls", 3, 30);
    let view = cluster.view(survivor);
    assert!(!view.brokers.contains(&leader), "{view:?}");
}

/// The CONTROLLER listener on SASL_SSL with PLAIN (`sasl.mechanism.controller.protocol`):
/// the quorum elects a leader, the brokers register and heartbeat through it, a topic is
/// created and acks=all records acknowledged. A node restarted with a wrong password is
/// refused by the controllers (both sides log why) and never registers.
#[test]
fn the_quorum_authenticates_with_sasl_plain_over_tls() {
    use common::cluster::Cluster;
    use common::load::{create_topic_with, CLUSTER, WAIT};

    let pki = Pki::new();
    let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="quorum-secret" user_controller="quorum-secret";"#;
    let (keystore, truststore) = (pki.s("server.pem"), pki.s("ca.pem"));
    let mut settings: Vec<(&str, &str)> = CLUSTER.to_vec();
    settings.extend([
        (
            "listener.security.protocol.map",
            "CONTROLLER:SASL_SSL,PLAINTEXT:PLAINTEXT",
        ),
        (
            "listener.name.controller.ssl.keystore.location",
            keystore.as_str(),
        ),
        (
            "listener.name.controller.ssl.truststore.location",
            truststore.as_str(),
        ),
        ("listener.name.controller.sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.controller.plain.sasl.jaas.config", jaas),
        ("sasl.mechanism.controller.protocol", "PLAIN"),
    ]);
    let mut cluster = Cluster::start(3, &settings);
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    assert!((1..=3).contains(&cluster.quorum_leader(2)));
    create_topic_with(&cluster.bootstrap(), "quorum-sasl", 3, &[]);
    cluster.wait_view(1, WAIT, "full ISRs", |v| {
        v.topics
            .get("quorum-sasl")
            .is_some_and(|t| t.len() == 3 && t.values().all(|(l, _, isr)| *l > 0 && isr.len() == 3))
    });
    produce_all_acks(&cluster.bootstrap(), "quorum-sasl", 3, 60);

    assert!(cluster.stop(3), "node 3 stops cleanly");
    let path = cluster.properties_path(3);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            r#"password="quorum-secret" user_controller"#,
            r#"password="wrong" user_controller"#,
        ),
    )
    .unwrap();
    cluster.restart_no_wait(3);
    wait_for_text("node 3", "Invalid username or password", || cluster.log(3));
    assert!(cluster
        .log(3)
        .contains("SASL PLAIN as controller on listener CONTROLLER"));
    let refused = "quorum connection refused: SASL_SSL handshake failed";
    wait_for_text("nodes 1 and 2", refused, || {
        cluster.log(1) + &cluster.log(2)
    });
    assert!(
        !cluster.is_listening(3),
        "node 3 registered:\n{}",
        cluster.log(3)
    );
    produce_all_acks(&cluster.bootstrap(), "quorum-sasl", 3, 30);
}
