//! Authorization with real clients: the StandardAuthorizer's ACLs on a SASL_PLAINTEXT
//! listener, managed with kafka-python's admin client (CreateAcls, DescribeAcls, DeleteAcls as
//! `kafka-acls.sh` sends them) and checked with kafka-python and librdkafka: refused topics,
//! groups and cluster operations answer Kafka's errors, metadata hides what a user may not
//! describe, and every denial is in the audit log.

mod common;

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";"#;

/// A broker with the authorizer on, admin a super user, one SASL_PLAINTEXT listener.
fn secured_server(extra: &[(&str, &str)]) -> common::Server {
    let mut settings = vec![
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:admin"),
    ];
    settings.extend_from_slice(extra);
    common::Server::start_with(
        &settings,
        common::Options {
            capture_log: true,
            log_filter: Some("info".into()),
            protocol: Some("SASL_PLAINTEXT"),
            ..Default::default()
        },
    )
}

fn sasl(bootstrap: &str, user: &str) -> ClientConfig {
    let mut c = common::client_config(bootstrap);
    c.set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-secret"))
        .set("message.timeout.ms", "10000");
    c
}

fn python(script: &str, args: &[&str]) -> String {
    let path = format!("{}/../../tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn kafka_python_manages_acls_and_users_get_exactly_what_they_are_allowed() {
    let server = secured_server(&[]);
    let stdout = python("kafka_python_acls.py", &[&server.bootstrap()]);
    assert!(stdout.contains("kafka-python ACLs OK"), "{stdout}");
    let log = server.log();
    for denial in [
        // kafka-python asks for metadata first: payments is hidden from alice.
        "Principal = User:alice is Denied operation = DESCRIBE from host = 127.0.0.1 on resource = TOPIC:payments for request = Metadata",
        // After her WRITE ACL was deleted.
        "Principal = User:alice is Denied operation = WRITE from host = 127.0.0.1 on resource = TOPIC:orders for request = Produce (no ALLOW ACL matched)",
        "Principal = User:bob is Denied operation = DESCRIBE from host = 127.0.0.1 on resource = TOPIC:payments for request = Metadata (ACL (principal=User:bob, host=*, operation=ALL, permissionType=DENY) on TOPIC:LITERAL:payments)",
        "Principal = User:alice is Denied operation = ALTER from host = 127.0.0.1 on resource = CLUSTER:kafka-cluster for request = CreateAcls",
        "Principal = User:alice is Denied operation = DESCRIBE from host = 127.0.0.1 on resource = GROUP:other for request = FindCoordinator (no ACL found)",
    ] {
        assert!(log.contains(denial), "no audit line '{denial}' in:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_producers_are_refused_per_topic_and_idempotence_needs_a_write_grant() {
    let server = secured_server(&[]);
    let bootstrap = server.bootstrap();
    let out = python(
        "kafka_python_grant.py",
        &[
            &bootstrap,
            "User:alice",
            "WRITE",
            "granted",
            "granted,secret",
        ],
    );
    assert!(out.contains("granted"), "{out}");
    // bob may read (so describe) 'granted', and write nothing.
    let out = python(
        "kafka_python_grant.py",
        &[&bootstrap, "User:bob", "READ", "granted", "-"],
    );
    assert!(out.contains("granted"), "{out}");
    {
        let alice: FutureProducer = sasl(&bootstrap, "alice")
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        alice
            .send(
                FutureRecord::to("granted").payload("ok").key("k"),
                Duration::from_secs(10),
            )
            .await
            .expect("alice may write 'granted'");
        let refused = alice
            .send(
                FutureRecord::to("secret").payload("no").key("k"),
                Duration::from_secs(10),
            )
            .await
            .expect_err("alice may not write 'secret'");
        assert_eq!(
            refused.0,
            KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)
        );
        // bob has no WRITE anywhere: an idempotent producer cannot even get a producer id.
        let bob: FutureProducer = sasl(&bootstrap, "bob")
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        bob.send(
            FutureRecord::to("granted").payload("no").key("k"),
            Duration::from_secs(10),
        )
        .await
        .expect_err("bob may not produce");
        // librdkafka raises the refused InitProducerId as its fatal error (and purges the
        // queued record).
        let fatal = bob.client().fatal_error().expect("a fatal error");
        assert_eq!(
            fatal.0,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            "{fatal:?}"
        );
    }
    let log = server.log();
    assert!(
        log.contains("Principal = User:bob is Denied operation = IDEMPOTENT_WRITE"),
        "{log}"
    );
}
