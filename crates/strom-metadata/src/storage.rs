//! Formatted storage, as `kafka-storage.sh format` leaves it (KIP-853 for the voter set):
//! `meta.properties` (node.id, cluster.id, directory.id, version) in every log directory and,
//! on a controller of a dynamic quorum, the initial voter set in the metadata log directory.
//! [`format`] writes them (`strom storage format`); [`read_formatted`] checks them at start-up.
//! A static quorum (`controller.quorum.voters`) and single-node mode need no format step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use uuid::Uuid;

use crate::broker_config::{validate_cluster_id, BrokerConfig, Listener, ProcessRole};
use crate::log::METADATA_LOG_DIR_NAME;
use crate::quorum::raft::VoterEndpoint;
use crate::quorum::QuorumNodeId;

/// The file naming a formatted directory's node, cluster and directory ids.
pub const META_PROPERTIES: &str = "meta.properties";

/// The initial voter set of a dynamic quorum, in `metadata.log.dir/__cluster_metadata-0/`
/// (Kafka keeps it in the log's bootstrap checkpoint as a VotersRecord). Read on first start
/// only: afterwards the voters live in the replicated log.
pub const BOOTSTRAP_VOTERS: &str = "bootstrap-voters.json";

/// The `version` of meta.properties Kafka's KRaft mode writes.
const META_PROPERTIES_VERSION: &str = "1";

/// Why storage could not be formatted or is not usable as formatted.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid cluster id '{cluster_id}': {expected}")]
    InvalidClusterId {
        cluster_id: String,
        expected: String,
    },
    #[error("invalid --initial-controllers entry '{entry}': {reason}")]
    InvalidInitialControllers { entry: String, reason: String },
    /// The flags do not fit this node's configuration.
    #[error("{reason}")]
    Usage { reason: String },
    #[error("{dir} is already formatted ({META_PROPERTIES} exists); pass --ignore-formatted to leave formatted directories as they are")]
    AlreadyFormatted { dir: PathBuf },
    #[error("{dir} is not formatted (no {META_PROPERTIES}): a node with controller.quorum.bootstrap.servers (a dynamic quorum, KIP-853) starts only from formatted storage. Run `strom storage format --config FILE --cluster-id ID` first (controllers add --standalone, --initial-controllers ID@HOST:PORT:DIRID,... or --no-initial-controllers; `strom storage random-uuid` makes an id)")]
    NotFormatted { dir: PathBuf },
    #[error("{file}: {reason}")]
    Corrupt { file: PathBuf, reason: String },
    #[error("{file} says {key}={stored} but the configuration says {configured}")]
    Mismatch {
        file: PathBuf,
        key: &'static str,
        stored: String,
        configured: String,
    },
}

/// What a formatted directory's meta.properties holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub node_id: i32,
    pub cluster_id: String,
    /// This directory's id (a Kafka Uuid string), distinct per directory.
    pub directory_id: String,
}

/// One voter of `--initial-controllers` (`id@host:port:directory-id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapVoter {
    pub node_id: i32,
    /// `host:port` of its CONTROLLER listener (IPv6 in brackets).
    pub endpoint: String,
    pub directory_id: String,
}

/// How a controller of a dynamic quorum joins it (kafka-storage format's three flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialControllers {
    /// `--standalone`: this controller is the only voter; others are added later.
    Standalone,
    /// `--initial-controllers`: the first voter set, this node among them.
    Voters(Vec<BootstrapVoter>),
    /// `--no-initial-controllers`: join as an observer and wait to be added (AddRaftVoter).
    None,
}

/// What `strom storage format` was asked to do.
#[derive(Debug, Clone)]
pub struct FormatRequest {
    pub cluster_id: String,
    /// Only for controllers of a dynamic quorum, and required there.
    pub initial_controllers: Option<InitialControllers>,
    /// Skip directories that are already formatted instead of failing.
    pub ignore_formatted: bool,
}

/// The bootstrap voter file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct BootstrapVotersFile {
    voters: Vec<BootstrapVoter>,
}

/// What start-up learns from formatted storage.
#[derive(Debug, Clone)]
pub struct Formatted {
    /// The metadata log directory's meta.properties.
    pub meta: MetaProperties,
    /// A controller's initial voter set (empty: it waits to be added); `None` on a broker.
    pub initial_voters: Option<BTreeMap<QuorumNodeId, VoterEndpoint>>,
}

/// Parses `--initial-controllers`: `id@host:port:directory-id,...` (IPv6 host in brackets).
pub fn parse_initial_controllers(value: &str) -> Result<Vec<BootstrapVoter>, StorageError> {
    let bad = |entry: &str, reason: String| StorageError::InvalidInitialControllers {
        entry: entry.to_string(),
        reason,
    };
    let mut voters: Vec<BootstrapVoter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, rest) = entry
            .split_once('@')
            .ok_or_else(|| bad(entry, "expected ID@HOST:PORT:DIRECTORY_ID".into()))?;
        let node_id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad(entry, format!("'{id}' is not a node id")))?;
        let (endpoint, directory_id) = rest.rsplit_once(':').ok_or_else(|| {
            bad(
                entry,
                "no directory id (expected ID@HOST:PORT:DIRECTORY_ID)".into(),
            )
        })?;
        validate_cluster_id(directory_id)
            .map_err(|_| bad(entry, format!("'{directory_id}' is not a directory id (a 22-character base64url Uuid, as `strom storage random-uuid` prints)")))?;
        let listener = Listener::parse(&format!("VOTER://{endpoint}"))
            .map_err(|_| bad(entry, format!("'{endpoint}' is not HOST:PORT")))?;
        if listener.host.is_empty() || listener.port == 0 {
            return Err(bad(
                entry,
                "a voter needs a host and a non-zero port".into(),
            ));
        }
        if voters.iter().any(|v| v.node_id == node_id) {
            return Err(bad(entry, format!("node {node_id} is listed twice")));
        }
        if voters.iter().any(|v| v.directory_id == directory_id) {
            return Err(bad(
                entry,
                format!("directory id {directory_id} is listed twice"),
            ));
        }
        voters.push(BootstrapVoter {
            node_id,
            endpoint: dial_form(&listener.host, listener.port),
            directory_id: directory_id.to_string(),
        });
    }
    if voters.is_empty() {
        return Err(bad(value, "no controllers listed".into()));
    }
    Ok(voters)
}

fn dial_form(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Every directory this node formats: `log.dirs` and `metadata.log.dir`, each once.
fn all_dirs(config: &BrokerConfig) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = config.log_dirs().to_vec();
    if !dirs.iter().any(|d| d == config.metadata_log_dir()) {
        dirs.push(config.metadata_log_dir().to_path_buf());
    }
    dirs
}

/// Whether this node is a controller of a dynamic quorum (it needs an initial voter set).
fn is_dynamic_controller(config: &BrokerConfig) -> bool {
    config.is_dynamic_quorum() && config.has_role(ProcessRole::Controller)
}

/// The endpoint other controllers reach this one at: the advertised CONTROLLER listener,
/// else the CONTROLLER listener.
pub fn controller_endpoint(config: &BrokerConfig) -> Result<String, StorageError> {
    let listener = config.controller_listener().ok_or_else(|| StorageError::Usage {
        reason: "no CONTROLLER listener: name one in controller.listener.names and listeners (e.g. listeners=CONTROLLER://host:9093, controller.listener.names=CONTROLLER)".into(),
    })?;
    let advertised = config
        .advertised_listeners()
        .iter()
        .find(|l| l.name == listener.name)
        .unwrap_or(listener);
    if advertised.host.is_empty() || advertised.port == 0 {
        return Err(StorageError::Usage {
            reason: format!(
                "the {} listener has no host or port other controllers can dial; give it one in listeners or advertised.listeners",
                listener.name
            ),
        });
    }
    Ok(dial_form(&advertised.host, advertised.port))
}

/// Checks the request against the configuration; returns the bootstrap voter set to write
/// (`None` on a node that writes none) and the metadata directory's id.
fn plan(
    config: &BrokerConfig,
    request: &FormatRequest,
) -> Result<(Option<Vec<BootstrapVoter>>, String), StorageError> {
    validate_cluster_id(&request.cluster_id).map_err(|expected| {
        StorageError::InvalidClusterId {
            cluster_id: request.cluster_id.clone(),
            expected,
        }
    })?;
    if let Some(configured) = config.cluster_id() {
        if configured != request.cluster_id {
            return Err(StorageError::Usage {
                reason: format!(
                    "--cluster-id {} differs from cluster.id={configured} in the configuration",
                    request.cluster_id
                ),
            });
        }
    }
    let node_id = config.node_id();
    if node_id < 0 {
        return Err(StorageError::Usage {
            reason: format!("node.id {node_id} is negative; set node.id"),
        });
    }
    let random_dir_id = crate::controller::random_cluster_id;
    match (&request.initial_controllers, is_dynamic_controller(config)) {
        (None, true) => Err(StorageError::Usage {
            reason: "this node is a controller of a dynamic quorum (controller.quorum.bootstrap.servers): pass one of --standalone, --initial-controllers ID@HOST:PORT:DIRID,... or --no-initial-controllers".into(),
        }),
        (None, false) => Ok((None, random_dir_id())),
        (Some(_), false) => Err(StorageError::Usage {
            reason: if config.has_role(ProcessRole::Controller) && config.is_quorum_over_network() {
                "--standalone, --initial-controllers and --no-initial-controllers are for dynamic quorums (controller.quorum.bootstrap.servers); this configuration sets controller.quorum.voters, a static quorum".into()
            } else if config.is_dynamic_quorum() {
                "--standalone, --initial-controllers and --no-initial-controllers are for controllers; this node's process.roles has no controller".into()
            } else {
                "--standalone, --initial-controllers and --no-initial-controllers need controller.quorum.bootstrap.servers in the configuration (a dynamic quorum)".into()
            },
        }),
        (Some(InitialControllers::None), true) => Ok((Some(Vec::new()), random_dir_id())),
        (Some(InitialControllers::Standalone), true) => {
            let directory_id = random_dir_id();
            let me = BootstrapVoter {
                node_id,
                endpoint: controller_endpoint(config)?,
                directory_id: directory_id.clone(),
            };
            Ok((Some(vec![me]), directory_id))
        }
        (Some(InitialControllers::Voters(voters)), true) => {
            let me = voters.iter().find(|v| v.node_id == node_id).ok_or_else(|| {
                StorageError::Usage {
                    reason: format!(
                        "--initial-controllers does not name this node (node.id={node_id}); a node formatted with an initial voter set must be one of them (use --no-initial-controllers to join later)"
                    ),
                }
            })?;
            Ok((Some(voters.clone()), me.directory_id.clone()))
        }
    }
}

/// Formats this node's directories (`strom storage format`). Checks everything before
/// writing anything; returns the directories it formatted.
pub fn format(
    config: &BrokerConfig,
    request: &FormatRequest,
) -> Result<Vec<PathBuf>, StorageError> {
    let (voters, metadata_dir_id) = plan(config, request)?;
    let mut todo = Vec::new();
    for dir in all_dirs(config) {
        if dir.join(META_PROPERTIES).exists() {
            if request.ignore_formatted {
                continue;
            }
            return Err(StorageError::AlreadyFormatted { dir });
        }
        todo.push(dir);
    }
    for dir in &todo {
        let directory_id = if dir == config.metadata_log_dir() {
            metadata_dir_id.clone()
        } else {
            crate::controller::random_cluster_id()
        };
        let meta = MetaProperties {
            node_id: config.node_id(),
            cluster_id: request.cluster_id.clone(),
            directory_id,
        };
        write_meta_properties(dir, &meta)?;
        if dir == config.metadata_log_dir() {
            if let Some(voters) = &voters {
                write_bootstrap_voters(dir, voters)?;
            }
        }
    }
    Ok(todo)
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        dir: dir.to_path_buf(),
        source,
    }
}

fn write_meta_properties(dir: &Path, meta: &MetaProperties) -> Result<(), StorageError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let text = format!(
        "#\n#Written by strom storage format\ncluster.id={}\ndirectory.id={}\nnode.id={}\nversion={META_PROPERTIES_VERSION}\n",
        meta.cluster_id, meta.directory_id, meta.node_id
    );
    crate::quorum::log_store::replace_file(dir, META_PROPERTIES, text.as_bytes()).map_err(io(dir))
}

fn write_bootstrap_voters(dir: &Path, voters: &[BootstrapVoter]) -> Result<(), StorageError> {
    let quorum_dir = dir.join(METADATA_LOG_DIR_NAME);
    std::fs::create_dir_all(&quorum_dir).map_err(io(&quorum_dir))?;
    let body = serde_json::to_vec_pretty(&BootstrapVotersFile {
        voters: voters.to_vec(),
    })
    .expect("voters serialize");
    crate::quorum::log_store::replace_file(&quorum_dir, BOOTSTRAP_VOTERS, &body)
        .map_err(io(&quorum_dir))
}

/// Reads `dir`'s meta.properties (`Ok(None)` if the directory is not formatted).
pub fn read_meta_properties(dir: &Path) -> Result<Option<MetaProperties>, StorageError> {
    let file = dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StorageError::Io {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: String| StorageError::Corrupt {
        file: file.clone(),
        reason,
    };
    let entries = crate::properties::parse_properties(&text)
        .map_err(|e| corrupt(format!("line {}: {}", e.line, e.reason)))?;
    let values: BTreeMap<String, String> = entries.into_iter().map(|(_, k, v)| (k, v)).collect();
    let get = |key: &str| {
        values
            .get(key)
            .cloned()
            .ok_or_else(|| corrupt(format!("no {key}")))
    };
    let node_id = get("node.id")?
        .parse()
        .map_err(|_| corrupt("node.id is not a number".into()))?;
    Ok(Some(MetaProperties {
        node_id,
        cluster_id: get("cluster.id")?,
        directory_id: get("directory.id")?,
    }))
}

/// Checks that every directory of this node is formatted for it and one cluster, and reads a
/// controller's initial voter set (`strom server` with a dynamic quorum).
pub fn read_formatted(config: &BrokerConfig) -> Result<Formatted, StorageError> {
    let mut metadata_meta = None;
    let mut cluster: Option<(PathBuf, String)> = None;
    for dir in all_dirs(config) {
        let meta =
            read_meta_properties(&dir)?.ok_or(StorageError::NotFormatted { dir: dir.clone() })?;
        let file = dir.join(META_PROPERTIES);
        if meta.node_id != config.node_id() {
            return Err(StorageError::Mismatch {
                file,
                key: "node.id",
                stored: meta.node_id.to_string(),
                configured: config.node_id().to_string(),
            });
        }
        if let Some(configured) = config.cluster_id().filter(|c| *c != meta.cluster_id) {
            return Err(StorageError::Mismatch {
                file,
                key: "cluster.id",
                stored: meta.cluster_id,
                configured: configured.to_string(),
            });
        }
        match &cluster {
            Some((first, id)) if *id != meta.cluster_id => {
                return Err(StorageError::Mismatch {
                    file,
                    key: "cluster.id",
                    stored: meta.cluster_id,
                    configured: format!("{id} (in {})", first.display()),
                })
            }
            Some(_) => {}
            None => cluster = Some((file.clone(), meta.cluster_id.clone())),
        }
        if dir == config.metadata_log_dir() {
            metadata_meta = Some(meta);
        }
    }
    let meta = metadata_meta.expect("the metadata log dir is among all_dirs");
    let initial_voters = if is_dynamic_controller(config) {
        Some(read_bootstrap_voters(config.metadata_log_dir())?)
    } else {
        None
    };
    Ok(Formatted {
        meta,
        initial_voters,
    })
}

fn read_bootstrap_voters(
    dir: &Path,
) -> Result<BTreeMap<QuorumNodeId, VoterEndpoint>, StorageError> {
    let file = dir.join(METADATA_LOG_DIR_NAME).join(BOOTSTRAP_VOTERS);
    let body = match std::fs::read(&file) {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::Corrupt {
                file,
                reason: "missing: this controller's metadata.log.dir was formatted without a voter set; format it again with --standalone, --initial-controllers or --no-initial-controllers".into(),
            })
        }
        Err(source) => {
            return Err(StorageError::Io {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    let parsed: BootstrapVotersFile =
        serde_json::from_slice(&body).map_err(|e| StorageError::Corrupt {
            file: file.clone(),
            reason: e.to_string(),
        })?;
    parsed
        .voters
        .into_iter()
        .map(|v| {
            let id = QuorumNodeId::try_from(v.node_id).map_err(|_| StorageError::Corrupt {
                file: file.clone(),
                reason: format!("negative voter id {}", v.node_id),
            })?;
            let node = VoterEndpoint {
                addr: v.endpoint,
                directory_id: Some(v.directory_id),
            };
            Ok((id, node))
        })
        .collect()
}

/// A Kafka Uuid (cluster, topic and directory ids) as Kafka prints it: 22 characters of
/// base64url without padding.
pub fn uuid_to_kafka_string(uuid: &uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut out = String::with_capacity(22);
    for byte in uuid.as_bytes() {
        bits = (bits << 8) | u32::from(*byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            out.push(ALPHABET[((bits >> held) & 63) as usize] as char);
        }
    }
    if held > 0 {
        out.push(ALPHABET[((bits << (6 - held)) & 63) as usize] as char);
    }
    out
}

/// Parses a Kafka Uuid string (22 characters of base64url); `None` if it is not one.
pub fn uuid_from_kafka_string(s: &str) -> Option<uuid::Uuid> {
    if s.len() != 22 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut bytes = Vec::with_capacity(17);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        held += 6;
        if held >= 8 {
            held -= 8;
            bytes.push((bits >> held) as u8);
        }
    }
    // 22 characters carry 132 bits; the last 4 are ignored, as Java's decoder does (Kafka's
    // documented example cluster id has them set).
    uuid::Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests;
