//! BrokerConfig tests: defaults, file + overrides, warnings, precedence and error messages.

use super::*;

fn parse(text: &str) -> BrokerConfig {
    BrokerConfig::parse(text, &[]).unwrap().0
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn defaults_without_a_file() {
    let c = BrokerConfig::default();
    assert_eq!(c.node_id, 1);
    assert_eq!(
        c.listeners,
        vec![Listener::parse("PLAINTEXT://127.0.0.1:9092").unwrap()]
    );
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.log_dirs, vec![PathBuf::from("./strom-data")]);
    assert_eq!(c.metadata_log_dir, PathBuf::from("./strom-data"));
    assert_eq!(
        c.process_roles,
        vec![ProcessRole::Broker, ProcessRole::Controller]
    );
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.log_retention_ms, 168 * 3_600_000);
    assert_eq!(c.log_retention_bytes, -1);
    assert_eq!(c.log_segment_bytes, 1 << 30);
    assert_eq!(c.log_roll_ms, 168 * 3_600_000);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(c.log_flush_interval_messages, i64::MAX);
    assert_eq!(c.log_flush_interval_ms, None);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.max_connections, 10_000);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.transaction_state_log_num_partitions, 50);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_min_session_timeout_ms, 6000);
    assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
    assert_eq!(c.offsets_retention_minutes, 10080);
    assert_eq!(c.transaction_max_timeout_ms, 900_000);
    assert_eq!(c.min_insync_replicas, 1);
    assert_eq!(c.compression_type, "producer");
    assert_eq!(c.log_cleanup_policy, vec!["delete".to_string()]);
    assert_eq!(c.cluster_id, None);
}

#[test]
fn file_then_overrides_with_warnings_for_unknown_keys() {
    let text = "\
# Kafka-style file
node.id=3
process.roles=broker,controller
listeners=PLAINTEXT://:9092,CONTROLLER://[::1]:9093
advertised.listeners=PLAINTEXT://broker.example:9092
controller.listener.names=CONTROLLER
controller.quorum.voters=3@localhost:9093
log.dirs=/data/a, /data/b
num.partitions : 4
some.plugin.setting=x
";
    let overrides = [kv("num.partitions", "6"), kv("another.unknown", "1")];
    let (c, warnings) = BrokerConfig::parse(text, &overrides).unwrap();
    assert_eq!(c.node_id, 3);
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.listeners[0].bind_address(), "0.0.0.0:9092");
    assert_eq!(c.listeners[1].host, "::1");
    assert_eq!(c.listeners[1].bind_address(), "[::1]:9093");
    assert_eq!(c.advertised_listeners[0].host, "broker.example");
    assert_eq!(
        c.log_dirs,
        vec![PathBuf::from("/data/a"), PathBuf::from("/data/b")]
    );
    assert_eq!(c.metadata_log_dir, PathBuf::from("/data/a"));
    assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
    assert_eq!(c.controller_quorum_voters[0].node_id, 3);
    assert_eq!(c.static_value("num.partitions"), Some("6"));
    assert_eq!(c.static_value("log.segment.bytes"), None);
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("some.plugin.setting") && warnings[0].contains(":10"));
    assert!(warnings[1].contains("--set") && warnings[1].contains("another.unknown"));
    // The quorum settings and several log dirs are served: nothing more to warn about.
    assert_eq!(c.client_listener().unwrap().bind_address(), "0.0.0.0:9092");
    assert_eq!(
        c.controller_listener().unwrap().bind_address(),
        "[::1]:9093"
    );
    assert!(c.is_quorum_over_network());
}

#[test]
fn listeners_map_to_security_protocols_and_internal_ones_stay_plaintext() {
    for (text, name, protocol) in [
        ("listeners=SSL://:9093", "SSL", "SSL"),
        (
            "listeners=SASL_PLAINTEXT://:9093",
            "SASL_PLAINTEXT",
            "SASL_PLAINTEXT",
        ),
        (
            "listeners=PLAINTEXT://:9092,SASL_SSL://:9093",
            "SASL_SSL",
            "SASL_SSL",
        ),
        (
            "listeners=CLIENT://:9092\nlistener.security.protocol.map=CLIENT:SSL",
            "CLIENT",
            "SSL",
        ),
    ] {
        let (c, warnings) = BrokerConfig::parse(text, &[]).unwrap();
        assert_eq!(c.security_protocol(name), protocol, "{text}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    let e = BrokerConfig::parse(
        "listeners=X://:9092\nlistener.security.protocol.map=X:TLS",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown security protocol TLS"), "{e}");
    // In a cluster, the inter-broker and controller listeners may be secured; a broker-only
    // node learns the controllers' protocol from the map.
    BrokerConfig::parse(
        "node.id=1\ncontroller.quorum.voters=1@h:9093\nlisteners=SSL://:9092,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER",
        &[],
    )
    .unwrap();
    let (c, _) = BrokerConfig::parse(
        "node.id=1\ncontroller.quorum.voters=1@h:9093\nlisteners=SSL://:9092,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER\nlistener.security.protocol.map=SSL:SSL,CONTROLLER:SASL_SSL",
        &[],
    )
    .unwrap();
    assert_eq!(c.security_protocol("CONTROLLER"), "SASL_SSL");
    let (c, _) = BrokerConfig::parse(
        "node.id=4\nprocess.roles=broker\ncontroller.quorum.voters=1@h:9093\nlisteners=PLAINTEXT://:9092\ncontroller.listener.names=CONTROLLER\nlistener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        &[],
    )
    .unwrap();
    assert_eq!(c.security_protocol("CONTROLLER"), "SSL");
    // Per-listener settings override broker-wide ones; unknown per-listener keys warn.
    let (c, warnings) = BrokerConfig::parse(
        "listeners=A://:1,B://:2\nlistener.security.protocol.map=A:SSL,B:SASL_PLAINTEXT\nssl.client.auth=requested\nlistener.name.a.ssl.client.auth=required\nlistener.name.b.plain.sasl.jaas.config=x\nlistener.name.a.nonsense=1",
        &[],
    )
    .unwrap();
    assert_eq!(c.listener_setting("A", "ssl.client.auth"), Some("required"));
    assert_eq!(
        c.listener_setting("B", "ssl.client.auth"),
        Some("requested")
    );
    assert_eq!(c.listener_setting("B", "plain.sasl.jaas.config"), Some("x"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("listener.name.a.nonsense"));
    let e = BrokerConfig::parse("listeners=CLIENT://:9092", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no security protocol is defined for listener CLIENT"),
        "{e}"
    );
    let (c, warnings) = BrokerConfig::parse(
        "listeners=CLIENT://:9092\nlistener.security.protocol.map=CLIENT:PLAINTEXT",
        &[],
    )
    .unwrap();
    assert_eq!(c.listeners[0].name, "CLIENT");
    assert!(warnings.is_empty(), "{warnings:?}");
    let (_, warnings) = BrokerConfig::parse(
        "node.id=1\ncontroller.quorum.voters=1@h:9093,2@h2:9093,3@h3:9093\nprocess.roles=broker",
        &[],
    )
    .unwrap();
    // Accepted here; `strom server` refuses dedicated roles at start-up with a clear message
    // (tests/cluster.rs).
    assert!(warnings.is_empty(), "{warnings:?}");
    // Without voters or bootstrap servers, a CONTROLLER listener is not served (a quorum of
    // one needs none).
    let (_, warnings) = BrokerConfig::parse(
        "listeners=PLAINTEXT://:9092,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER",
        &[],
    )
    .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("CONTROLLER") && warnings[0].contains("single-node"));
}

#[test]
fn bootstrap_servers_make_a_dynamic_quorum() {
    let (c, warnings) = BrokerConfig::parse(
        "process.roles=controller\nnode.id=1\nlisteners=CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER\ncontroller.quorum.bootstrap.servers=c1:9093, [::1]:9094",
        &[],
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(c.is_quorum_over_network() && c.is_dynamic_quorum());
    assert_eq!(
        c.controller_quorum_bootstrap_servers(),
        ["c1:9093", "[::1]:9094"]
    );
    // Static voters take precedence, with a warning naming both keys.
    let (c, warnings) = BrokerConfig::parse(
        "controller.quorum.voters=1@c1:9093\ncontroller.quorum.bootstrap.servers=c1:9093",
        &[],
    )
    .unwrap();
    assert!(c.is_quorum_over_network() && !c.is_dynamic_quorum());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("controller.quorum.voters is set"),
        "{warnings:?}"
    );
    // cluster.id from meta.properties is applied as a static value.
    let c = c
        .with_static_value("cluster.id", "MkU3OEVBNTcwNTJENDM2Qk")
        .unwrap();
    assert_eq!(c.cluster_id(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
    assert!(c.with_static_value("cluster.id", "short").is_err());
}

#[test]
fn bad_bootstrap_servers_are_clear_errors() {
    for (value, expected) in [
        ("1@c1:9093", "without an id"),
        ("c1", "host:port"),
        (":9093", "needs a host"),
        ("c1:0", "non-zero port"),
        ("c1:99999", "host:port"),
    ] {
        let err = BrokerConfig::parse(&format!("controller.quorum.bootstrap.servers={value}"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("controller.quorum.bootstrap.servers") && err.contains(expected),
            "{value}: {err}"
        );
    }
}

#[test]
fn retention_precedence_ms_over_minutes_over_hours() {
    assert_eq!(parse("log.retention.hours=1").log_retention_ms, 3_600_000);
    let c = parse("log.retention.hours=1\nlog.retention.minutes=2");
    assert_eq!(c.log_retention_ms, 120_000);
    let c = parse("log.retention.hours=1\nlog.retention.minutes=2\nlog.retention.ms=5");
    assert_eq!(c.log_retention_ms, 5);
    assert_eq!(c.topic_defaults()["retention.ms"], "5");
    assert_eq!(parse("log.retention.ms=-5").log_retention_ms, -1);
    assert_eq!(parse("log.roll.hours=2").log_roll_ms, 7_200_000);
    assert_eq!(parse("log.roll.hours=2\nlog.roll.ms=9").log_roll_ms, 9);
}

#[test]
fn invalid_values_name_key_value_and_expectation() {
    let cases = [
        ("num.partitions=zero", "num.partitions"),
        ("num.partitions=0", "num.partitions"),
        ("auto.create.topics.enable=yes", "auto.create.topics.enable"),
        ("listeners=localhost:9092", "listeners"),
        ("listeners=PLAINTEXT://:99999", "listeners"),
        ("listeners=A://:1,A://:2", "listeners"),
        ("compression.type=brotli", "compression.type"),
        ("log.cleanup.policy=keep", "log.cleanup.policy"),
        ("process.roles=worker", "process.roles"),
        ("cluster.id=short", "cluster.id"),
        (
            "controller.quorum.voters=localhost:9093",
            "controller.quorum.voters",
        ),
        ("log.segment.bytes=1000", "log.segment.bytes"),
    ];
    for (text, key) in cases {
        match BrokerConfig::parse(text, &[]) {
            Err(e @ BrokerConfigError::InvalidValue { .. }) => {
                let msg = e.to_string();
                let value = text.split_once('=').unwrap().1;
                assert!(msg.contains(key) && msg.contains(value), "{text}: {msg}");
            }
            other => panic!("{text}: expected InvalidValue, got {other:?}"),
        }
    }
    let err = BrokerConfig::parse(
        "listeners=PLAINTEXT://:1\nadvertised.listeners=SSL://h:2",
        &[],
    );
    assert!(matches!(err, Err(BrokerConfigError::Conflict { .. })));
    let err = BrokerConfig::parse("node.id=1\nbroker.id=2", &[]);
    assert!(matches!(err, Err(BrokerConfigError::Conflict { .. })));
    assert_eq!(parse("broker.id=7").node_id, 7);
    let err = BrokerConfig::parse("a=\\uZZZZ", &[]).unwrap_err();
    assert!(matches!(err, BrokerConfigError::Syntax { line: 1, .. }));
}

#[test]
fn overrides_and_files_from_disk() {
    assert_eq!(parse_override("a.b = c=d").unwrap(), kv("a.b", "c=d"));
    assert!(parse_override("novalue").is_err());
    assert!(parse_override("=x").is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    std::fs::write(&path, "num.partitions=2\n").unwrap();
    let (c, _) = BrokerConfig::load(Some(&path), &[kv("node.id", "9")]).unwrap();
    assert_eq!((c.num_partitions, c.node_id), (2, 9));
    let missing = BrokerConfig::load(Some(&dir.path().join("nope")), &[]);
    assert!(matches!(missing, Err(BrokerConfigError::Io { .. })));
}

#[test]
fn listener_forms() {
    let l = Listener::parse("plaintext://:0").unwrap();
    assert_eq!(
        (l.name.as_str(), l.host.as_str(), l.port),
        ("PLAINTEXT", "", 0)
    );
    assert_eq!(
        Listener::parse("SSL://10.0.0.1:9093")
            .unwrap()
            .bind_address(),
        "10.0.0.1:9093"
    );
    assert!(Listener::parse("SSL://[::1:9093").is_err());
    assert!(Listener::parse("://h:1").is_err());
}

#[test]
fn dynamic_overrides_are_validated() {
    let base = BrokerConfig::default();
    let bad = BTreeMap::from([kv("log.retention.ms", "soon")]);
    assert!(base.with_dynamic_overrides(&bad).is_err());
    let good = BTreeMap::from([kv("log.retention.ms", "10")]);
    assert_eq!(
        base.with_dynamic_overrides(&good).unwrap().log_retention_ms,
        10
    );
    assert!(BrokerConfig::is_dynamic("log.retention.ms"));
    assert!(!BrokerConfig::is_dynamic("listeners"));
}

#[test]
fn several_broker_listeners_and_the_inter_broker_one() {
    let base = "listeners=EXTERNAL://0.0.0.0:9092,INTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093\n\
                listener.security.protocol.map=EXTERNAL:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                controller.listener.names=CONTROLLER\n\
                advertised.listeners=EXTERNAL://broker1.example.com:9092\n";
    let c = parse(&format!("{base}inter.broker.listener.name=internal\n"));
    let names: Vec<&str> = c.broker_listeners().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["EXTERNAL", "INTERNAL"]);
    // Advertised where advertised.listeners names the listener, else the listener itself.
    let advertised: Vec<String> = c
        .advertised_broker_listeners()
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
        .collect();
    assert_eq!(
        advertised,
        [
            "EXTERNAL://broker1.example.com:9092",
            "INTERNAL://127.0.0.1:9094"
        ]
    );
    assert_eq!(c.inter_broker_listener().unwrap().name, "INTERNAL");
    // Unset: the first broker listener when none is called PLAINTEXT.
    assert_eq!(
        parse(base).inter_broker_listener().unwrap().name,
        "EXTERNAL"
    );
    // Unset with a PLAINTEXT listener: PLAINTEXT, Kafka's default.
    let c = parse(
        "listeners=SASL://:9092,PLAINTEXT://:9094\n\
         listener.security.protocol.map=SASL:PLAINTEXT,PLAINTEXT:PLAINTEXT\n",
    );
    assert_eq!(c.inter_broker_listener().unwrap().name, "PLAINTEXT");
}

#[test]
fn inter_broker_listener_must_be_a_broker_listener() {
    let base = "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
                controller.listener.names=CONTROLLER\n";
    for bad in ["CONTROLLER", "REPLICATION"] {
        let err = BrokerConfig::parse(&format!("{base}inter.broker.listener.name={bad}\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("inter.broker.listener.name") && err.contains(bad),
            "{bad}: {err}"
        );
    }
}
