//! `BrokerConfig`: the broker's settings read from a Kafka-style `server.properties` plus
//! `--set key=value` overrides, with Kafka's names, defaults and precedence rules.
//! Unknown keys are warnings for the caller to log; invalid values are errors naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::broker_config_defs::{broker_config_def, is_dynamic_broker_config};
use crate::config_defs::{split_list, validate_value, ConfigSource};
use crate::properties::parse_properties;

mod endpoints;
mod network;

use endpoints::{parse_bootstrap_server, parse_listeners, parse_voter};
pub use endpoints::{
    validate_bootstrap_servers, validate_cluster_id, validate_listeners, validate_voters, Listener,
    QuorumVoter,
};
pub use network::validate_per_ip_overrides;

/// Why a broker configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BrokerConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}, line {line}: {reason}")]
    Syntax {
        origin: String,
        line: usize,
        reason: String,
    },
    #[error("invalid value '{value}' for config '{key}': {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("inconsistent configuration: {reason}")]
    Conflict { reason: String },
}

/// A role of this node (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    Broker,
    Controller,
}

/// The resolved broker configuration. Accessors return typed values of the Kafka keys they are
/// named after; the raw maps keep what was set so DescribeConfigs can report value and source.
/// Fields are private so the typed values cannot drift from what DescribeConfigs reports.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    node_id: i32,
    process_roles: Vec<ProcessRole>,
    listeners: Vec<Listener>,
    advertised_listeners: Vec<Listener>,
    log_dirs: Vec<PathBuf>,
    metadata_log_dir: PathBuf,
    cluster_id: Option<String>,
    broker_rack: Option<String>,
    num_partitions: i32,
    default_replication_factor: i32,
    auto_create_topics_enable: bool,
    delete_topic_enable: bool,
    message_max_bytes: i32,
    /// From log.retention.ms > .minutes > .hours; negative means unlimited (-1).
    log_retention_ms: i64,
    log_retention_bytes: i64,
    log_segment_bytes: i32,
    /// From log.roll.ms > log.roll.hours.
    log_roll_ms: i64,
    log_roll_jitter_ms: i64,
    log_retention_check_interval_ms: i64,
    log_flush_interval_messages: i64,
    /// `None`: unset (Kafka then never flushes on time).
    log_flush_interval_ms: Option<i64>,
    log_index_interval_bytes: i32,
    log_index_size_max_bytes: i32,
    log_cleanup_policy: Vec<String>,
    log_message_timestamp_type: String,
    log_cleaner_enable: bool,
    socket_request_max_bytes: i32,
    max_connections: i32,
    num_io_threads: i32,
    num_network_threads: i32,
    offsets_topic_num_partitions: i32,
    offsets_topic_replication_factor: i16,
    offsets_topic_segment_bytes: i32,
    offsets_retention_minutes: i32,
    transaction_state_log_num_partitions: i32,
    transaction_state_log_replication_factor: i16,
    transaction_max_timeout_ms: i32,
    transactional_id_expiration_ms: i32,
    producer_id_expiration_ms: i32,
    group_initial_rebalance_delay_ms: i32,
    group_min_session_timeout_ms: i32,
    group_max_session_timeout_ms: i32,
    group_max_size: i32,
    min_insync_replicas: i32,
    compression_type: String,
    unclean_leader_election_enable: bool,
    auto_leader_rebalance_enable: bool,
    leader_imbalance_check_interval_seconds: i64,
    leader_imbalance_per_broker_percentage: i32,
    replica_lag_time_max_ms: i64,
    replica_fetch_max_bytes: i32,
    replica_fetch_wait_max_ms: i32,
    leader_replication_throttled_rate: i64,
    follower_replication_throttled_rate: i64,
    balancer_enable: bool,
    balancer_check_interval_seconds: i64,
    balancer_max_concurrent_moves: i32,
    controller_quorum_voters: Vec<QuorumVoter>,
    /// `host:port` of controllers (KIP-853), dialable form (IPv6 in brackets).
    controller_quorum_bootstrap_servers: Vec<String>,
    controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name`, upper-cased; `None` = PLAINTEXT if there is such a
    /// listener, else the first broker listener.
    inter_broker_listener_name: Option<String>,
    broker_heartbeat_interval_ms: i32,
    broker_session_timeout_ms: i32,
    network: network::NetworkLimits,
    /// Each listener's security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    listener_protocols: BTreeMap<String, String>,
    /// Known keys set in the file or by overrides (STATIC_BROKER_CONFIG).
    static_values: BTreeMap<String, String>,
    /// Dynamic overrides from the metadata image (DYNAMIC_BROKER_CONFIG).
    dynamic_values: BTreeMap<String, String>,
}

/// Generates by-value accessors for the `Copy` fields.
macro_rules! copy_accessors {
    ($($field:ident: $ty:ty,)*) => {
        impl BrokerConfig {
            $(pub fn $field(&self) -> $ty { self.$field })*
        }
    };
}

copy_accessors! {
    node_id: i32,
    num_partitions: i32,
    default_replication_factor: i32,
    auto_create_topics_enable: bool,
    delete_topic_enable: bool,
    message_max_bytes: i32,
    log_retention_ms: i64,
    log_retention_bytes: i64,
    log_segment_bytes: i32,
    log_roll_ms: i64,
    log_roll_jitter_ms: i64,
    log_retention_check_interval_ms: i64,
    log_flush_interval_messages: i64,
    log_flush_interval_ms: Option<i64>,
    log_index_interval_bytes: i32,
    log_index_size_max_bytes: i32,
    log_cleaner_enable: bool,
    socket_request_max_bytes: i32,
    max_connections: i32,
    num_io_threads: i32,
    num_network_threads: i32,
    offsets_topic_num_partitions: i32,
    offsets_topic_replication_factor: i16,
    offsets_topic_segment_bytes: i32,
    offsets_retention_minutes: i32,
    transaction_state_log_num_partitions: i32,
    transaction_state_log_replication_factor: i16,
    transaction_max_timeout_ms: i32,
    transactional_id_expiration_ms: i32,
    producer_id_expiration_ms: i32,
    group_initial_rebalance_delay_ms: i32,
    group_min_session_timeout_ms: i32,
    group_max_session_timeout_ms: i32,
    group_max_size: i32,
    min_insync_replicas: i32,
    unclean_leader_election_enable: bool,
    auto_leader_rebalance_enable: bool,
    leader_imbalance_check_interval_seconds: i64,
    leader_imbalance_per_broker_percentage: i32,
    replica_lag_time_max_ms: i64,
    replica_fetch_max_bytes: i32,
    replica_fetch_wait_max_ms: i32,
    leader_replication_throttled_rate: i64,
    follower_replication_throttled_rate: i64,
    balancer_enable: bool,
    balancer_check_interval_seconds: i64,
    balancer_max_concurrent_moves: i32,
}

impl BrokerConfig {
    pub fn process_roles(&self) -> &[ProcessRole] {
        &self.process_roles
    }
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
    /// What Metadata responses carry; `listeners` unless `advertised.listeners` is set.
    pub fn advertised_listeners(&self) -> &[Listener] {
        &self.advertised_listeners
    }
    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.log_dirs
    }
    /// Parent directory of `__cluster_metadata-0` (`metadata.log.dir`, else the first log dir).
    pub fn metadata_log_dir(&self) -> &Path {
        &self.metadata_log_dir
    }
    /// The configured `cluster.id`, if any.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }
    pub fn broker_rack(&self) -> Option<&str> {
        self.broker_rack.as_deref()
    }
    pub fn log_cleanup_policy(&self) -> &[String] {
        &self.log_cleanup_policy
    }
    pub fn log_message_timestamp_type(&self) -> &str {
        &self.log_message_timestamp_type
    }
    pub fn compression_type(&self) -> &str {
        &self.compression_type
    }
    pub fn controller_quorum_voters(&self) -> &[QuorumVoter] {
        &self.controller_quorum_voters
    }
    /// `controller.quorum.bootstrap.servers` as dialable `host:port` strings.
    pub fn controller_quorum_bootstrap_servers(&self) -> &[String] {
        &self.controller_quorum_bootstrap_servers
    }
    pub fn controller_listener_names(&self) -> &[String] {
        &self.controller_listener_names
    }
    pub fn broker_heartbeat_interval_ms(&self) -> i32 {
        self.broker_heartbeat_interval_ms
    }
    pub fn broker_session_timeout_ms(&self) -> i32 {
        self.broker_session_timeout_ms
    }

    fn is_controller_listener(&self, l: &Listener) -> bool {
        self.controller_listener_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&l.name))
    }

    /// The listener clients connect to: the first one not named in
    /// `controller.listener.names`.
    pub fn client_listener(&self) -> Option<&Listener> {
        self.broker_listeners().next()
    }

    /// Every listener this node serves Kafka clients (and other brokers) on: all but the
    /// controller listeners, in the order written.
    pub fn broker_listeners(&self) -> impl Iterator<Item = &Listener> + '_ {
        self.listeners
            .iter()
            .filter(|l| !self.is_controller_listener(l))
    }

    /// What this broker registers for each of its [`BrokerConfig::broker_listeners`]: the
    /// entry of `advertised.listeners` with the same name, else the listener itself (Kafka
    /// takes unadvertised listeners from `listeners`).
    pub fn advertised_broker_listeners(&self) -> Vec<&Listener> {
        self.broker_listeners()
            .map(|l| {
                self.advertised_listeners
                    .iter()
                    .find(|a| a.name == l.name)
                    .unwrap_or(l)
            })
            .collect()
    }

    /// The advertised form of [`BrokerConfig::client_listener`].
    pub fn advertised_client_listener(&self) -> Option<&Listener> {
        self.advertised_broker_listeners().into_iter().next()
    }

    /// The listener other brokers reach this one on, and this one reaches them on
    /// (`inter.broker.listener.name`): replica fetching and transaction markers use the
    /// endpoint of this name in the other broker's registration. Unset, it is the listener
    /// named PLAINTEXT if there is one (Kafka's default `security.inter.broker.protocol`),
    /// else the first broker listener.
    pub fn inter_broker_listener(&self) -> Option<&Listener> {
        let mut broker = self.broker_listeners();
        match &self.inter_broker_listener_name {
            Some(name) => broker.find(|l| &l.name == name),
            None => {
                let first = self.client_listener();
                broker.find(|l| l.name == "PLAINTEXT").or(first)
            }
        }
    }

    /// The CONTROLLER listener (the first listener named in `controller.listener.names`).
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.is_controller_listener(l))
    }

    /// Whether this node is one of a Raft quorum of controllers over the network
    /// (`controller.quorum.voters` or `controller.quorum.bootstrap.servers` set), rather than
    /// the single-node quorum of one.
    pub fn is_quorum_over_network(&self) -> bool {
        !self.controller_quorum_voters.is_empty()
            || !self.controller_quorum_bootstrap_servers.is_empty()
    }

    /// The HTTP listener's address (`http.listeners`, the first of a list) and whether it was
    /// configured (`false`: the single-node default, which is skipped when its port is taken).
    /// `None` when off: set empty, or not set in a cluster.
    pub fn http_listener(&self) -> Option<(String, bool)> {
        match self.static_value("http.listeners") {
            Some(v) => {
                let first = v.split(',').next().unwrap_or("").trim();
                (!first.is_empty()).then(|| (first.to_owned(), true))
            }
            None if !self.is_quorum_over_network() => {
                Some(("http://127.0.0.1:8080".to_owned(), false))
            }
            None => None,
        }
    }

    /// The security protocol of listener `name`: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub fn security_protocol(&self, name: &str) -> &str {
        self.listener_protocols
            .get(name)
            .map_or("PLAINTEXT", String::as_str)
    }

    /// A setting of listener `listener` (Kafka's `listener.name.<name>.<key>`, lower-case
    /// name), else the broker-wide `key`, else its default.
    pub fn listener_setting(&self, listener: &str, key: &str) -> Option<&str> {
        let own = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        self.static_values
            .get(&own)
            .map(String::as_str)
            .or_else(|| self.static_value(key))
            .or_else(|| broker_config_def(key).and_then(|d| d.default))
    }

    /// Whether the quorum is dynamic (KIP-853): `controller.quorum.bootstrap.servers` without
    /// `controller.quorum.voters`. Its voters live in the metadata log, seeded by
    /// `strom storage format`.
    pub fn is_dynamic_quorum(&self) -> bool {
        self.controller_quorum_voters.is_empty()
            && !self.controller_quorum_bootstrap_servers.is_empty()
    }

    /// This config with `key` set statically to `value` (as if the file said so): how
    /// `cluster.id` from a formatted directory's meta.properties reaches the controller.
    pub fn with_static_value(
        &self,
        key: &str,
        value: &str,
    ) -> Result<BrokerConfig, BrokerConfigError> {
        let mut values = self.static_values.clone();
        values.insert(key.to_string(), value.to_string());
        Self::from_values(values, self.dynamic_values.clone())
    }

    pub fn has_role(&self, role: ProcessRole) -> bool {
        self.process_roles.is_empty() || self.process_roles.contains(&role)
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::from_values(BTreeMap::new(), BTreeMap::new())
            .expect("the built-in defaults are a valid configuration")
    }
}

/// Splits a `--set key=value` argument.
pub fn parse_override(arg: &str) -> Result<(String, String), BrokerConfigError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(BrokerConfigError::Syntax {
            origin: "command line".into(),
            line: 1,
            reason: format!("override '{arg}' is not of the form key=value"),
        }),
    }
}

impl BrokerConfig {
    /// Reads `path` (if any), then applies `overrides` (later wins). Returns the config and
    /// warnings (unknown keys) for the caller to log.
    pub fn load(
        path: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), BrokerConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| BrokerConfigError::Io {
                path: p.to_path_buf(),
                source,
            })?,
            None => String::new(),
        };
        let origin = path.map_or_else(|| "properties".into(), |p| p.display().to_string());
        Self::parse_with_origin(&text, &origin, overrides)
    }

    /// Like [`BrokerConfig::load`] from properties text.
    pub fn parse(
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), BrokerConfigError> {
        Self::parse_with_origin(text, "properties", overrides)
    }

    fn parse_with_origin(
        text: &str,
        origin: &str,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), BrokerConfigError> {
        let entries = parse_properties(text).map_err(|e| BrokerConfigError::Syntax {
            origin: origin.to_string(),
            line: e.line,
            reason: e.reason,
        })?;
        let mut warnings = Vec::new();
        let mut values = BTreeMap::new();
        let file = entries
            .into_iter()
            .map(|(line, k, v)| (format!("{origin}:{line}"), k, v));
        let cli = overrides
            .iter()
            .map(|(k, v)| ("--set".to_string(), k.clone(), v.clone()));
        for (place, key, value) in file.chain(cli) {
            if config_def_of(&key).is_some() {
                values.insert(key, value);
            } else {
                warnings.push(format!("{place}: unknown config '{key}' is ignored"));
            }
        }
        let config = Self::from_values(values, BTreeMap::new())?;
        warnings.extend(config.single_node_warnings());
        Ok((config, warnings))
    }

    /// Settings this build accepts but does not act on yet: each is reported, never silently
    /// ignored.
    fn single_node_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.is_quorum_over_network() {
            if let Some(l) = self.controller_listener() {
                out.push(format!(
                    "listener {}://{}:{} is not served: without controller.quorum.voters or controller.quorum.bootstrap.servers this node is a single-node cluster (a quorum of one needs no listener)",
                    l.name, l.host, l.port
                ));
            }
        }
        if !self.controller_quorum_voters.is_empty()
            && !self.controller_quorum_bootstrap_servers.is_empty()
        {
            out.push(
                "controller.quorum.bootstrap.servers is not used: controller.quorum.voters is set, so the quorum is static (remove controller.quorum.voters for a dynamic quorum, KIP-853)".into(),
            );
        }
        out
    }

    /// This config with dynamic broker overrides (from the metadata image) on top.
    pub fn with_dynamic_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, BrokerConfigError> {
        Self::from_values(self.static_values.clone(), overrides.clone())
    }

    /// Value of `key` as set statically (file or command line), if it was.
    pub fn static_value(&self, key: &str) -> Option<&str> {
        self.static_values.get(key).map(String::as_str)
    }

    /// Value of `key` set dynamically, if it was.
    pub fn dynamic_value(&self, key: &str) -> Option<&str> {
        self.dynamic_values.get(key).map(String::as_str)
    }

    /// The effective value of a known key and where it comes from (`None` value: no default).
    pub fn value_and_source(&self, key: &str) -> (Option<&str>, ConfigSource) {
        if let Some(v) = self.dynamic_value(key) {
            (Some(v), ConfigSource::DynamicBroker)
        } else if let Some(v) = self.static_value(key) {
            (Some(v), ConfigSource::StaticBroker)
        } else {
            (
                broker_config_def(key).and_then(|d| d.default),
                ConfigSource::Default,
            )
        }
    }

    /// Default values of every topic config as this broker config makes them.
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        crate::config_describe::topic_defaults(self)
    }

    /// The first data directory (`log.dirs[0]`, or `log.dir`).
    pub fn log_dir(&self) -> &Path {
        &self.log_dirs[0]
    }

    /// Whether broker config `key` may be changed by AlterConfigs at runtime.
    pub fn is_dynamic(key: &str) -> bool {
        is_dynamic_broker_config(key)
    }

    fn from_values(
        static_values: BTreeMap<String, String>,
        dynamic_values: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, BrokerConfigError> {
        for (key, value) in static_values.iter().chain(dynamic_values.iter()) {
            let def = config_def_of(key).ok_or_else(|| BrokerConfigError::InvalidValue {
                key: key.clone(),
                value: value.clone(),
                expected: "a known broker config name".into(),
            })?;
            validate_value(def, value).map_err(|expected| BrokerConfigError::InvalidValue {
                key: key.clone(),
                value: value.clone(),
                expected,
            })?;
        }
        let config = resolve(&Lookup {
            static_values: &static_values,
            dynamic_values: &dynamic_values,
        })?;
        Ok(BrokerConfig {
            static_values,
            dynamic_values,
            ..config
        })
    }
}

/// The definition governing `key`: its own, or for a per-listener key
/// (`listener.name.NAME.KEY`, and for SASL `listener.name.NAME.MECHANISM.KEY`, as Kafka
/// writes them) that of the key it overrides.
fn config_def_of(key: &str) -> Option<&'static crate::config_defs::ConfigDef> {
    if let Some(def) = broker_config_def(key) {
        return Some(def);
    }
    let rest = key.strip_prefix("listener.name.")?;
    let (_, setting) = rest.split_once('.')?;
    broker_config_def(setting).or_else(|| {
        let (_, setting) = setting.split_once('.')?;
        broker_config_def(setting).filter(|d| d.name.starts_with("sasl."))
    })
}

/// Reads typed values: dynamic override, else static value, else the catalogue default.
struct Lookup<'a> {
    static_values: &'a BTreeMap<String, String>,
    dynamic_values: &'a BTreeMap<String, String>,
}

impl Lookup<'_> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.dynamic_values
            .get(key)
            .or_else(|| self.static_values.get(key))
            .map(|v| v.trim())
            .or_else(|| broker_config_def(key).and_then(|d| d.default))
    }

    fn opt<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, BrokerConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| BrokerConfigError::InvalidValue {
                    key: key.to_string(),
                    value: v.to_string(),
                    expected: "a value of the config's type".into(),
                }),
        }
    }

    fn get<T: std::str::FromStr>(&self, key: &str) -> Result<T, BrokerConfigError> {
        self.opt(key)?.ok_or_else(|| BrokerConfigError::Conflict {
            reason: format!("config '{key}' has no value and no default"),
        })
    }

    fn bool(&self, key: &str) -> Result<bool, BrokerConfigError> {
        Ok(self
            .raw(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true")))
    }

    fn string(&self, key: &str) -> Option<String> {
        self.raw(key).filter(|v| !v.is_empty()).map(str::to_string)
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.raw(key)
            .map(|v| split_list(v).into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Kafka's `ms > minutes > hours` (or `ms > hours`) precedence, in milliseconds.
    fn millis(
        &self,
        ms: &str,
        minutes: Option<&str>,
        hours: &str,
    ) -> Result<i64, BrokerConfigError> {
        if let Some(v) = self.opt::<i64>(ms)? {
            return Ok(v);
        }
        if let Some(m) = minutes {
            if let Some(v) = self.opt::<i64>(m)? {
                return Ok(v.saturating_mul(60_000));
            }
        }
        Ok(self.get::<i64>(hours)?.saturating_mul(3_600_000))
    }
}

fn resolve(l: &Lookup<'_>) -> Result<BrokerConfig, BrokerConfigError> {
    let listeners = parse_listeners(l.raw("listeners").unwrap_or_default())
        .map_err(|e| invalid(l, "listeners", e))?;
    let advertised_listeners = match l.string("advertised.listeners") {
        Some(v) => parse_listeners(&v).map_err(|e| invalid(l, "advertised.listeners", e))?,
        None => listeners.clone(),
    };
    if let Some(a) = advertised_listeners
        .iter()
        .find(|a| !listeners.iter().any(|x| x.name == a.name))
    {
        return Err(BrokerConfigError::Conflict {
            reason: format!("advertised listener {} is not among listeners", a.name),
        });
    }
    let listener_protocols = security_protocols(l, &listeners)?;
    let controller_names = l.list("controller.listener.names");
    let inter_broker_listener_name = l
        .string("inter.broker.listener.name")
        .map(|v| v.trim().to_ascii_uppercase())
        .filter(|v| !v.is_empty());
    if let Some(name) = &inter_broker_listener_name {
        let is_broker_listener = listeners.iter().any(|x| &x.name == name)
            && !controller_names
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name));
        if !is_broker_listener {
            return Err(invalid(
                l,
                "inter.broker.listener.name",
                format!("{name} is not one of the non-controller listeners in listeners"),
            ));
        }
    }
    let node_id: i32 = l.get("node.id")?;
    let broker_id: i32 = l.get("broker.id")?;
    let node_id_set = l.static_values.contains_key("node.id");
    let node_id = match (broker_id, node_id_set) {
        (-1, _) => node_id,
        (b, false) => b,
        (b, true) if b == node_id => node_id,
        (b, true) => {
            return Err(BrokerConfigError::Conflict {
                reason: format!("broker.id {b} differs from node.id {node_id}"),
            })
        }
    };
    let log_dirs: Vec<PathBuf> = match l.string("log.dirs") {
        Some(v) => split_list(&v).into_iter().map(PathBuf::from).collect(),
        None => vec![PathBuf::from(l.raw("log.dir").unwrap_or("./strom-data"))],
    };
    if log_dirs.is_empty() {
        return Err(invalid(l, "log.dirs", "at least one directory".into()));
    }
    let metadata_log_dir = l
        .string("metadata.log.dir")
        .map_or_else(|| log_dirs[0].clone(), PathBuf::from);
    let roles = l.list("process.roles");
    let process_roles = roles
        .iter()
        .map(|r| {
            if r == "broker" {
                ProcessRole::Broker
            } else {
                ProcessRole::Controller
            }
        })
        .collect();
    let retention_ms = l.millis(
        "log.retention.ms",
        Some("log.retention.minutes"),
        "log.retention.hours",
    )?;
    let voters = l.list("controller.quorum.voters");
    Ok(BrokerConfig {
        node_id,
        process_roles,
        listeners,
        advertised_listeners,
        log_dirs,
        metadata_log_dir,
        cluster_id: l.string("cluster.id"),
        broker_rack: l.string("broker.rack"),
        num_partitions: l.get("num.partitions")?,
        default_replication_factor: l.get("default.replication.factor")?,
        auto_create_topics_enable: l.bool("auto.create.topics.enable")?,
        delete_topic_enable: l.bool("delete.topic.enable")?,
        message_max_bytes: l.get("message.max.bytes")?,
        log_retention_ms: if retention_ms < 0 { -1 } else { retention_ms },
        log_retention_bytes: l.get("log.retention.bytes")?,
        log_segment_bytes: l.get("log.segment.bytes")?,
        log_roll_ms: l.millis("log.roll.ms", None, "log.roll.hours")?,
        log_roll_jitter_ms: l.millis("log.roll.jitter.ms", None, "log.roll.jitter.hours")?,
        log_retention_check_interval_ms: l.get("log.retention.check.interval.ms")?,
        log_flush_interval_messages: l.get("log.flush.interval.messages")?,
        log_flush_interval_ms: l.opt("log.flush.interval.ms")?,
        log_index_interval_bytes: l.get("log.index.interval.bytes")?,
        log_index_size_max_bytes: l.get("log.index.size.max.bytes")?,
        log_cleanup_policy: l.list("log.cleanup.policy"),
        log_message_timestamp_type: l.get("log.message.timestamp.type")?,
        log_cleaner_enable: l.bool("log.cleaner.enable")?,
        socket_request_max_bytes: l.get("socket.request.max.bytes")?,
        max_connections: l.get("max.connections")?,
        num_io_threads: l.get("num.io.threads")?,
        num_network_threads: l.get("num.network.threads")?,
        offsets_topic_num_partitions: l.get("offsets.topic.num.partitions")?,
        offsets_topic_replication_factor: l.get("offsets.topic.replication.factor")?,
        offsets_topic_segment_bytes: l.get("offsets.topic.segment.bytes")?,
        offsets_retention_minutes: l.get("offsets.retention.minutes")?,
        transaction_state_log_num_partitions: l.get("transaction.state.log.num.partitions")?,
        transaction_state_log_replication_factor: l
            .get("transaction.state.log.replication.factor")?,
        transaction_max_timeout_ms: l.get("transaction.max.timeout.ms")?,
        transactional_id_expiration_ms: l.get("transactional.id.expiration.ms")?,
        producer_id_expiration_ms: l.get("producer.id.expiration.ms")?,
        group_initial_rebalance_delay_ms: l.get("group.initial.rebalance.delay.ms")?,
        group_min_session_timeout_ms: l.get("group.min.session.timeout.ms")?,
        group_max_session_timeout_ms: l.get("group.max.session.timeout.ms")?,
        group_max_size: l.get("group.max.size")?,
        min_insync_replicas: l.get("min.insync.replicas")?,
        compression_type: l.get("compression.type")?,
        unclean_leader_election_enable: l.bool("unclean.leader.election.enable")?,
        auto_leader_rebalance_enable: l.bool("auto.leader.rebalance.enable")?,
        leader_imbalance_check_interval_seconds: l
            .get("leader.imbalance.check.interval.seconds")?,
        leader_imbalance_per_broker_percentage: l.get("leader.imbalance.per.broker.percentage")?,
        replica_lag_time_max_ms: l.get("replica.lag.time.max.ms")?,
        replica_fetch_max_bytes: l.get("replica.fetch.max.bytes")?,
        replica_fetch_wait_max_ms: l.get("replica.fetch.wait.max.ms")?,
        leader_replication_throttled_rate: l.get("leader.replication.throttled.rate")?,
        follower_replication_throttled_rate: l.get("follower.replication.throttled.rate")?,
        balancer_enable: l.bool("balancer.enable")?,
        balancer_check_interval_seconds: l.get("balancer.check.interval.seconds")?,
        balancer_max_concurrent_moves: l.get("balancer.max.concurrent.moves")?,
        controller_quorum_voters: voters
            .iter()
            .map(|v| parse_voter(v))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(l, "controller.quorum.voters", e))?,
        controller_quorum_bootstrap_servers: l
            .list("controller.quorum.bootstrap.servers")
            .iter()
            .map(|v| parse_bootstrap_server(v))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(l, "controller.quorum.bootstrap.servers", e))?,
        controller_listener_names: l.list("controller.listener.names"),
        inter_broker_listener_name,
        broker_heartbeat_interval_ms: l.get("broker.heartbeat.interval.ms")?,
        broker_session_timeout_ms: l.get("broker.session.timeout.ms")?,
        network: network::resolve(l)?,
        listener_protocols,
        static_values: BTreeMap::new(),
        dynamic_values: BTreeMap::new(),
    })
}

/// Every listener must map to a security protocol (`listener.security.protocol.map`, as in
/// Kafka): PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. Returns the protocol of each listener.
fn security_protocols(
    l: &Lookup<'_>,
    listeners: &[Listener],
) -> Result<BTreeMap<String, String>, BrokerConfigError> {
    let map_value = l.raw("listener.security.protocol.map").unwrap_or_default();
    let mut map = BTreeMap::new();
    for entry in split_list(map_value) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            invalid(
                l,
                "listener.security.protocol.map",
                "NAME:PROTOCOL,...".into(),
            )
        })?;
        map.insert(
            name.trim().to_ascii_uppercase(),
            protocol.trim().to_ascii_uppercase(),
        );
    }
    let mut out = BTreeMap::new();
    for listener in listeners {
        let protocol = map
            .get(&listener.name)
            .ok_or_else(|| BrokerConfigError::Conflict {
                reason: format!(
                "no security protocol is defined for listener {} (listener.security.protocol.map)",
                listener.name
            ),
            })?;
        if !matches!(
            protocol.as_str(),
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
        ) {
            return Err(BrokerConfigError::Conflict {
                reason: format!(
                    "listener {} maps to unknown security protocol {protocol}",
                    listener.name
                ),
            });
        }
        out.insert(listener.name.clone(), protocol.clone());
    }
    // A broker-only node has no CONTROLLER listener of its own but dials the controllers'
    // with the protocol the map gives that name, as Kafka's brokers do.
    for (name, protocol) in map {
        if matches!(
            protocol.as_str(),
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
        ) {
            out.entry(name).or_insert(protocol);
        }
    }
    Ok(out)
}

fn invalid(l: &Lookup<'_>, key: &str, expected: String) -> BrokerConfigError {
    BrokerConfigError::InvalidValue {
        key: key.to_string(),
        value: l.raw(key).unwrap_or_default().to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests;
