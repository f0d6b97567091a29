//! The catalogue of broker configs Strom reads from `server.properties`, with Kafka's names,
//! types and defaults (Strom's single-node defaults where noted). Keys outside it are warned.

use crate::config_defs::{
    ConfigDef, ConfigType, Validator, CLEANUP_POLICIES, COMPRESSION_TYPES, TIMESTAMP_TYPES,
};

const fn b(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    documentation: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        config_type,
        default,
        validator,
        documentation,
        synonyms: &[],
    }
}

use ConfigType as T;
use Validator as V;
const LONG_MAX: &str = "9223372036854775807";
const INT_MAX: &str = "2147483647";

/// Every broker config Strom knows, sorted by name.
#[rustfmt::skip]
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    b("advertised.listeners", T::String, None, V::Custom(crate::broker_config::validate_listeners), "Listeners published to clients; defaults to listeners."),
    b("allow.everyone.if.no.acl.found", T::Boolean, Some("false"), V::Any, "With an authorizer: allow a request on a resource no ACL covers (Kafka's default, false, denies it)."),
    b("authorizer.class.name", T::String, Some(""), V::OneOf(&["", "org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer", "strom"]), "The authorizer: empty for none (every request allowed, Kafka's default), or StandardAuthorizer's class name to check ACLs (stored in the metadata log) on every request."),
    b("auto.create.topics.enable", T::Boolean, Some("true"), V::Any, "Create a topic when a client asks for metadata of an unknown one."),
    b("auto.leader.rebalance.enable", T::Boolean, Some("true"), V::Any, "Move leadership back to preferred replicas periodically."),
    b("balancer.check.interval.seconds", T::Long, Some("60"), V::AtLeast(1), "How often the active controller's balancer (balancer.enable) checks replica and leader balance."),
    b("balancer.enable", T::Boolean, Some("false"), V::Any, "Continuous balancing: the active controller moves replicas (by reassignment) so every broker holds its fair share of replicas and preferred leaderships, rack-aware; a new broker fills up without a plan."),
    b("balancer.max.concurrent.moves", T::Int, Some("4"), V::AtLeast(1), "Most partition reassignments the balancer keeps in flight at once."),
    b("broker.heartbeat.interval.ms", T::Int, Some("2000"), V::AtLeast(1), "How often a broker heartbeats to the active controller."),
    b("broker.id", T::Int, Some("-1"), V::AtLeast(-1), "Legacy alias of node.id."),
    b("broker.rack", T::String, None, V::Any, "Rack of this broker."),
    b("broker.session.timeout.ms", T::Int, Some("9000"), V::AtLeast(1), "A broker not heard from for this long is fenced."),
    b("cluster.id", T::String, None, V::Custom(crate::broker_config::validate_cluster_id), "Expected cluster id (22-character base64url); Strom generates one when unset."),
    b("compression.gzip.level", T::Int, Some("-1"), V::Between(-1, 9), "Default gzip level for topics."),
    b("compression.lz4.level", T::Int, Some("9"), V::Between(1, 17), "Default lz4 level for topics."),
    b("compression.type", T::String, Some("producer"), V::OneOf(COMPRESSION_TYPES), "Default compression.type for topics."),
    b("compression.zstd.level", T::Int, Some("3"), V::Between(-131072, 22), "Default zstd level for topics."),
    b("connections.max.idle.ms", T::Long, Some("600000"), V::Any, "Close a client connection after this long without a request (<= 0: never)."),
    b("connections.max.reauth.ms", T::Long, Some("0"), V::AtLeast(0), "SASL sessions last this long; clients re-authenticate on the same connection before it ends (KIP-368), else it is closed. 0: no re-authentication."),
    b("controller.listener.names", T::String, None, V::Any, "Listener names used by the controller."),
    b("controller.quorum.bootstrap.servers", T::List, Some(""), V::Custom(crate::broker_config::validate_bootstrap_servers), "Dynamic quorum (KIP-853): host:port of controllers to find the quorum through."),
    b("controller.quorum.voters", T::List, Some(""), V::Custom(crate::broker_config::validate_voters), "Static quorum: id@host:port,..."),
    b("default.replication.factor", T::Int, Some("1"), V::AtLeast(1), "Replication factor of topics created with -1."),
    b("delete.topic.enable", T::Boolean, Some("true"), V::Any, "Allow DeleteTopics."),
    b("fetch.max.bytes", T::Int, Some("57671680"), V::AtLeast(1024), "Most record bytes in one Fetch response (KIP-74: the first batch is returned even if larger)."),
    b("follower.replication.throttled.rate", T::Long, Some(LONG_MAX), V::AtLeast(1), "Bytes per second a follower may fetch for the replicas its topics list in follower.replication.throttled.replicas (a reassignment's --throttle)."),
    b("group.consumer.assignors", T::List, Some("uniform,range"), V::Any, "Server-side assignors of consumer groups (KIP-848); the first is the default."),
    b("group.consumer.heartbeat.interval.ms", T::Int, Some("5000"), V::AtLeast(1), "Heartbeat interval given to consumer-group members (KIP-848)."),
    b("group.consumer.max.size", T::Int, Some(INT_MAX), V::AtLeast(1), "Largest number of members of a consumer group (KIP-848)."),
    b("group.consumer.session.timeout.ms", T::Int, Some("45000"), V::AtLeast(1), "Session timeout of consumer-group members (KIP-848)."),
    b("group.initial.rebalance.delay.ms", T::Int, Some("3000"), V::AtLeast(0), "Delay of the first rebalance of an empty group."),
    b("group.max.session.timeout.ms", T::Int, Some("1800000"), V::AtLeast(0), "Largest session timeout a consumer may ask for."),
    b("group.max.size", T::Int, Some(INT_MAX), V::AtLeast(1), "Largest number of members of a group."),
    b("group.min.session.timeout.ms", T::Int, Some("6000"), V::AtLeast(0), "Smallest session timeout a consumer may ask for."),
    b("http.listeners", T::String, None, V::Any, "Where the HTTP listener serves /metrics (and the console and HTTP APIs): http://host:port; empty turns it off. Default: http://127.0.0.1:8080 on a single node, off in a cluster."),
    b("inter.broker.listener.name", T::String, None, V::Any, "Listener brokers use to talk to each other."),
    b("leader.imbalance.check.interval.seconds", T::Long, Some("300"), V::AtLeast(1), "How often the active controller checks leader balance (auto.leader.rebalance.enable)."),
    b("leader.imbalance.per.broker.percentage", T::Int, Some("10"), V::Between(0, 100), "A broker leading fewer of its preferred partitions than this share allows triggers preferred elections."),
    b("leader.replication.throttled.rate", T::Long, Some(LONG_MAX), V::AtLeast(1), "Bytes per second a leader may send to followers for the replicas its topics list in leader.replication.throttled.replicas (a reassignment's --throttle)."),
    b("listener.security.protocol.map", T::String, Some("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"), V::Any, "Listener name to security protocol."),
    b("listeners", T::String, Some("PLAINTEXT://127.0.0.1:9092"), V::Custom(crate::broker_config::validate_listeners), "NAME://host:port the broker binds; empty host = all interfaces."),
    b("log.cleaner.backoff.ms", T::Long, Some("15000"), V::AtLeast(0), "Sleep between cleaner rounds when no log needs cleaning."),
    b("log.cleaner.dedupe.buffer.size", T::Long, Some("134217728"), V::AtLeast(0), "Memory for the cleaner's key map."),
    b("log.cleaner.delete.retention.ms", T::Long, Some("86400000"), V::AtLeast(0), "Default delete.retention.ms."),
    b("log.cleaner.enable", T::Boolean, Some("true"), V::Any, "Run the log cleaner (compaction)."),
    b("log.cleaner.max.compaction.lag.ms", T::Long, Some(LONG_MAX), V::AtLeast(1), "Default max.compaction.lag.ms."),
    b("log.cleaner.min.cleanable.ratio", T::Double, Some("0.5"), V::BetweenF(0.0, 1.0), "Default min.cleanable.dirty.ratio."),
    b("log.cleaner.min.compaction.lag.ms", T::Long, Some("0"), V::AtLeast(0), "Default min.compaction.lag.ms."),
    b("log.cleaner.threads", T::Int, Some("1"), V::AtLeast(0), "Number of cleaner threads."),
    b("log.cleanup.policy", T::List, Some("delete"), V::ListOf(CLEANUP_POLICIES), "Default cleanup.policy."),
    b("log.dir", T::String, Some("./strom-data"), V::Any, "Data directory, used when log.dirs is unset."),
    b("log.dirs", T::String, None, V::Any, "Comma-separated data directories."),
    b("log.flush.interval.messages", T::Long, Some(LONG_MAX), V::AtLeast(1), "Default flush.messages."),
    b("log.flush.interval.ms", T::Long, None, V::AtLeast(0), "Default flush.ms."),
    b("log.index.interval.bytes", T::Int, Some("4096"), V::AtLeast(0), "Default index.interval.bytes."),
    b("log.index.size.max.bytes", T::Int, Some("10485760"), V::AtLeast(4), "Default segment.index.bytes."),
    b("log.local.retention.bytes", T::Long, Some("-2"), V::AtLeast(-2), "Default local.retention.bytes."),
    b("log.local.retention.ms", T::Long, Some("-2"), V::AtLeast(-2), "Default local.retention.ms."),
    b("log.message.timestamp.after.max.ms", T::Long, Some("3600000"), V::AtLeast(0), "Default message.timestamp.after.max.ms."),
    b("log.message.timestamp.before.max.ms", T::Long, Some(LONG_MAX), V::AtLeast(0), "Default message.timestamp.before.max.ms."),
    b("log.message.timestamp.type", T::String, Some("CreateTime"), V::OneOf(TIMESTAMP_TYPES), "Default message.timestamp.type."),
    b("log.preallocate", T::Boolean, Some("false"), V::Any, "Default preallocate."),
    b("log.retention.bytes", T::Long, Some("-1"), V::Any, "Default retention.bytes."),
    b("log.retention.check.interval.ms", T::Long, Some("300000"), V::AtLeast(1), "How often retention is checked."),
    b("log.retention.hours", T::Int, Some("168"), V::Any, "Default retention in hours (lowest precedence)."),
    b("log.retention.minutes", T::Int, None, V::Any, "Default retention in minutes (over hours)."),
    b("log.retention.ms", T::Long, None, V::Any, "Default retention.ms (over minutes and hours)."),
    b("log.roll.hours", T::Int, Some("168"), V::AtLeast(1), "Default segment.ms in hours."),
    b("log.roll.jitter.hours", T::Int, Some("0"), V::AtLeast(0), "Default segment.jitter.ms in hours."),
    b("log.roll.jitter.ms", T::Long, None, V::AtLeast(0), "Default segment.jitter.ms (over hours)."),
    b("log.roll.ms", T::Long, None, V::AtLeast(1), "Default segment.ms (over log.roll.hours)."),
    b("log.segment.bytes", T::Int, Some("1073741824"), V::AtLeast(1024 * 1024), "Default segment.bytes."),
    b("log.segment.delete.delay.ms", T::Long, Some("60000"), V::AtLeast(0), "Default file.delete.delay.ms."),
    b("max.broker.partitions", T::Int, Some("100000"), V::AtLeast(1), "Most partition replicas one broker may host (KIP-578); CreateTopics and CreatePartitions beyond it get INVALID_PARTITIONS."),
    b("max.connections", T::Int, Some("10000"), V::AtLeast(0), "Most client connections at once (Kafka: unbounded; Strom: 10000, each holds a file descriptor)."),
    b("max.connections.per.ip", T::Int, Some("1000"), V::AtLeast(0), "Most client connections at once from one IP address (Kafka: unbounded)."),
    b("max.connections.per.ip.overrides", T::String, Some(""), V::Custom(crate::broker_config::validate_per_ip_overrides), "Per-IP exceptions to max.connections.per.ip: ip:count,ip:count."),
    b("message.max.bytes", T::Int, Some("1048588"), V::AtLeast(0), "Default max.message.bytes."),
    b("metadata.log.dir", T::String, None, V::Any, "Directory of the metadata log; defaults to the first log dir."),
    b("min.insync.replicas", T::Int, Some("1"), V::AtLeast(1), "Default min.insync.replicas."),
    b("node.id", T::Int, Some("1"), V::AtLeast(0), "This node's id (Strom defaults to 1)."),
    b("num.io.threads", T::Int, Some("8"), V::AtLeast(1), "Request handler threads (informational)."),
    b("num.network.threads", T::Int, Some("3"), V::AtLeast(1), "Network threads (informational)."),
    b("num.partitions", T::Int, Some("1"), V::AtLeast(1), "Partitions of topics created with -1."),
    b("num.recovery.threads.per.data.dir", T::Int, Some("2"), V::AtLeast(1), "Threads recovering logs at startup."),
    b("offsets.retention.check.interval.ms", T::Long, Some("600000"), V::AtLeast(1), "How often stale offsets are removed."),
    b("offsets.retention.minutes", T::Int, Some("10080"), V::AtLeast(1), "How long committed offsets of empty groups are kept."),
    b("offsets.topic.num.partitions", T::Int, Some("50"), V::AtLeast(1), "Partitions of __consumer_offsets."),
    b("offsets.topic.replication.factor", T::Short, Some("1"), V::AtLeast(1), "Replication factor of __consumer_offsets (Kafka: 3; Strom: 1 for single node)."),
    b("offsets.topic.segment.bytes", T::Int, Some("104857600"), V::AtLeast(1), "segment.bytes of __consumer_offsets."),
    b("process.roles", T::List, Some("broker,controller"), V::ListOf(&["broker", "controller"]), "Roles of this node."),
    b("producer.id.expiration.ms", T::Int, Some("86400000"), V::AtLeast(1), "Idle time after which a producer id's state expires."),
    b("queued.max.request.bytes", T::Long, Some("268435456"), V::AtLeast(-1), "Request bytes read but not yet handled, over all connections (-1: unbounded; Kafka: -1, Strom: 256 MiB)."),
    b("replica.alter.log.dirs.io.max.bytes.per.second", T::Long, Some(LONG_MAX), V::AtLeast(1), "Kafka's throttle on moving replicas between a broker's log dirs (AlterReplicaLogDirs). Strom does not move replicas between log dirs, so nothing is throttled by it; accepted so kafka-reassign-partitions.sh can set and clear it."),
    b("replica.fetch.max.bytes", T::Int, Some("1048576"), V::AtLeast(0), "Bytes a follower fetches per partition."),
    b("replica.fetch.wait.max.ms", T::Int, Some("500"), V::AtLeast(0), "Longest wait of a follower fetch."),
    b("replica.lag.time.max.ms", T::Long, Some("30000"), V::AtLeast(0), "Lag after which a follower leaves the ISR."),
    b("replica.selector.class", T::String, None, V::Any, "KIP-392 replica selector for consumers; RackAwareReplicaSelector sends a consumer with client.rack to an in-sync replica in its rack."),
    b("sasl.enabled.mechanisms", T::List, Some("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"), V::Any, "SASL mechanisms offered on SASL listeners (Kafka's default is GSSAPI, which Strom does not serve)."),
    b("sasl.jaas.config", T::String, None, V::Any, "JAAS login config; for PLAIN, the users as user_NAME=\"PASSWORD\" entries of PlainLoginModule (per listener and mechanism: listener.name.NAME.plain.sasl.jaas.config)."),
    b("sasl.oauthbearer.clock.skew.seconds", T::Long, Some("30"), V::AtLeast(0), "OAUTHBEARER: tolerated clock difference for exp and nbf."),
    b("sasl.oauthbearer.expected.audience", T::List, None, V::Any, "OAUTHBEARER with a JWKS: audiences one of which the token's aud must name."),
    b("sasl.oauthbearer.expected.issuer", T::String, None, V::Any, "OAUTHBEARER with a JWKS: the iss the token must have."),
    b("sasl.oauthbearer.jwks.endpoint.url", T::String, None, V::Any, "OAUTHBEARER: the JSON Web Key Set that signs tokens, as a file (file:///path); unset, tokens are checked by the unsecured validator (development only), as in Kafka."),
    b("sasl.oauthbearer.scope.claim.name", T::String, Some("scope"), V::Any, "OAUTHBEARER: the claim holding the token's scopes."),
    b("sasl.oauthbearer.sub.claim.name", T::String, Some("sub"), V::Any, "OAUTHBEARER with a JWKS: the claim naming the principal."),
    b("socket.receive.buffer.bytes", T::Int, Some("102400"), V::AtLeast(-1), "SO_RCVBUF (-1 = OS default)."),
    b("socket.request.max.bytes", T::Int, Some("104857600"), V::AtLeast(1), "Largest request size accepted."),
    b("socket.send.buffer.bytes", T::Int, Some("102400"), V::AtLeast(-1), "SO_SNDBUF (-1 = OS default)."),
    b("ssl.cipher.suites", T::List, None, V::Any, "TLS cipher suites (rustls names); empty: rustls' safe defaults."),
    b("ssl.client.auth", T::String, Some("none"), V::OneOf(&["none", "requested", "required"]), "Client certificates on SSL listeners: none, requested, or required (mutual TLS)."),
    b("ssl.enabled.protocols", T::List, Some("TLSv1.2,TLSv1.3"), V::Any, "TLS versions served."),
    b("ssl.key.password", T::String, None, V::Any, "Password of an encrypted private key (not served: use an unencrypted PEM key)."),
    b("ssl.keystore.certificate.chain", T::String, None, V::Any, "The certificate chain as inline PEM (ssl.keystore.type=PEM)."),
    b("ssl.keystore.key", T::String, None, V::Any, "The private key as inline PEM (ssl.keystore.type=PEM)."),
    b("ssl.keystore.location", T::String, None, V::Any, "A PEM file with the private key and the certificate chain."),
    b("ssl.keystore.password", T::String, None, V::Any, "Key store password (PKCS12 key stores, as keytool makes them)."),
    b("ssl.keystore.type", T::String, Some("PEM"), V::OneOf(&["PEM", "PKCS12"]), "Key store format: PEM, or PKCS12 with ssl.keystore.password."),
    b("ssl.principal.mapping.rules", T::String, Some("DEFAULT"), V::Any, "Rules mapping a client certificate's distinguished name to a principal name (Kafka's RULE:pattern/replacement/[LU], DEFAULT: the whole name)."),
    b("ssl.truststore.certificates", T::String, None, V::Any, "Trusted CA certificates as inline PEM."),
    b("ssl.truststore.location", T::String, None, V::Any, "A PEM file of trusted CA certificates (for client certificates)."),
    b("ssl.truststore.password", T::String, None, V::Any, "Trust store password (PKCS12 trust stores; not needed for PEM)."),
    b("ssl.truststore.type", T::String, Some("PEM"), V::OneOf(&["PEM", "PKCS12"]), "Trust store format: PEM, or PKCS12 with ssl.truststore.password."),
    b("strom.authorizer.audit.allowed", T::Boolean, Some("false"), V::Any, "Log allowed authorization decisions too (denied ones are always logged, on the strom::audit target)."),
    b("super.users", T::String, Some(""), V::Any, "Principals allowed everything by the authorizer, separated by ';' (User:admin;User:broker)."),
    b("transaction.abort.timed.out.transaction.cleanup.interval.ms", T::Int, Some("10000"), V::AtLeast(1), "How often the coordinator aborts timed-out transactions."),
    b("transaction.max.timeout.ms", T::Int, Some("900000"), V::AtLeast(1), "Largest transaction timeout a producer may ask for."),
    b("transaction.state.log.min.isr", T::Int, Some("1"), V::AtLeast(1), "min.insync.replicas of __transaction_state (Kafka: 2)."),
    b("transaction.state.log.num.partitions", T::Int, Some("50"), V::AtLeast(1), "Partitions of __transaction_state."),
    b("transaction.state.log.replication.factor", T::Short, Some("1"), V::AtLeast(1), "Replication factor of __transaction_state (Kafka: 3; Strom: 1)."),
    b("transaction.state.log.segment.bytes", T::Int, Some("104857600"), V::AtLeast(1), "segment.bytes of __transaction_state."),
    b("transactional.id.expiration.ms", T::Int, Some("604800000"), V::AtLeast(1), "Idle time after which a transactional id expires."),
    b("unclean.leader.election.enable", T::Boolean, Some("false"), V::Any, "Default unclean.leader.election.enable."),
];

/// Broker configs that are not topic-config synonyms but may still be altered at runtime.
pub const EXTRA_DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    "max.connections",
    "num.io.threads",
    "num.network.threads",
    "log.cleaner.threads",
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "balancer.enable",
    "balancer.check.interval.seconds",
    "balancer.max.concurrent.moves",
];

/// The definition of broker config `name`.
pub fn broker_config_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// Whether broker config `name` may be altered at runtime (Kafka's dynamic broker configs):
/// the defaults of topic configs, and a few capacity knobs.
pub fn is_dynamic_broker_config(name: &str) -> bool {
    EXTRA_DYNAMIC_BROKER_CONFIGS.contains(&name)
        || crate::config_defs::TOPIC_CONFIGS
            .iter()
            .any(|t| t.synonyms.iter().any(|s| s.name == name))
}
