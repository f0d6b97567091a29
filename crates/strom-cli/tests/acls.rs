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

/// Runs the `strom` CLI; (success, stdout, stderr).
fn strom(args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strom runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_authenticates_with_plain_and_scram_and_manages_users_and_acls() {
    let server = secured_server(&[(
        "sasl.enabled.mechanisms",
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    )]);
    let b = server.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let props = |name: &str, mechanism: &str, user: &str, password: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "# as Kafka's tools take it\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n\
                 sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";\n"
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let admin = props("admin.properties", "PLAIN", "admin", "admin-secret");
    let carol = props("carol.properties", "SCRAM-SHA-512", "carol", "carol-pw");
    let carol_wrong = props("carol-wrong.properties", "SCRAM-SHA-512", "carol", "nope");
    let run = |config: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-b", b.as_str(), "--command-config", config]);
        strom(&all, "")
    };
    let ok = |config: &str, args: &[&str]| {
        let (success, out, err) = run(config, args);
        assert!(success, "strom {args:?} failed: {err}");
        out
    };

    ok(
        &admin,
        &[
            "user",
            "set",
            "carol",
            "--password",
            "carol-pw",
            "--mechanism",
            "SCRAM-SHA-512",
        ],
    );
    let users = ok(&admin, &["user", "list", "--output", "json"]);
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    assert_eq!(
        users,
        serde_json::json!([{"user": "carol", "mechanism": "SCRAM-SHA-512", "iterations": 8192}])
    );
    ok(&admin, &["topic", "create", "t1"]);
    ok(&admin, &["topic", "create", "t2"]);
    ok(
        &admin,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:carol",
            "--operation",
            "Write",
            "--operation",
            "describe",
            "--topic",
            "t1",
        ],
    );
    let listed = ok(&admin, &["acl", "list", "--output", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["principal"] == "User:carol" && a["name"] == "t1"));

    // carol over SCRAM-SHA-512 (strom-client's SCRAM): writes t1, sees only t1.
    let (success, _, err) = strom(
        &["produce", "t1", "-b", &b, "--command-config", &carol],
        "hello\nworld\n",
    );
    assert!(success, "carol could not produce: {err}");
    let topics = ok(&carol, &["topic", "list", "--output", "json"]);
    assert!(topics.contains("t1") && !topics.contains("t2"), "{topics}");
    let (success, _, err) = run(&carol_wrong, &["topic", "list"]);
    assert!(
        !success && err.contains("SASL authentication failed"),
        "{err}"
    );

    let removed = ok(
        &admin,
        &[
            "acl",
            "remove",
            "--topic",
            "t1",
            "--principal",
            "User:carol",
            "--output",
            "json",
        ],
    );
    let removed: serde_json::Value = serde_json::from_str(&removed).unwrap();
    assert_eq!(removed.as_array().unwrap().len(), 2, "{removed}");
    let (success, _, _) = strom(
        &[
            "produce",
            "t1",
            "-b",
            &b,
            "--command-config",
            &carol,
            "-X",
            "delivery.timeout.ms=3000",
        ],
        "late\n",
    );
    assert!(!success, "carol produced after her ACLs were removed");
    // A refused change: carol may not add ACLs.
    let (success, _, err) = run(
        &carol,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:carol",
            "--operation",
            "All",
            "--cluster",
        ],
    );
    assert!(
        !success && err.contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{err}"
    );
}
