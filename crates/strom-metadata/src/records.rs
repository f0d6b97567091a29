//! The metadata records: every change to cluster state is one of these, appended to the metadata
//! log and replayed into the [`crate::image::MetadataImage`] (STYLE.md #7).
//! The metadata log stores them in the compact, versioned binary format of [`codec`] (one type
//! id and record version per record); logs written before it hold JSON batches, still read. The
//! serde derives remain for JSON elsewhere (the quorum's TCP codec, snapshots of the image).

pub mod codec;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::BrokerEndpoint;

/// The resource a [`MetadataRecord::Config`] applies to (Kafka's ConfigResource, TOPIC /
/// BROKER / GROUP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    /// A consumer group's own settings (KIP-848 group configs, Kafka 4.0+); the group need
    /// not exist.
    Group(String),
}

/// One change to the cluster state. Records are applied in log order, and only once committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// The cluster's id: 22-character base64url of a random UUID, written once at bootstrap.
    Cluster { cluster_id: String },
    /// A broker announced itself: `host:port` is its inter-broker endpoint, `listeners` every
    /// advertised broker listener by name (absent in records written before several
    /// listeners were served: then `host:port` is the only one), and its rack.
    RegisterBroker {
        broker_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listeners: Vec<BrokerEndpoint>,
    },
    /// The controller fenced a broker that missed heartbeats for `broker.session.timeout.ms`:
    /// it leads nothing and sits in no ISR (the same batch carries those partition changes).
    FenceBroker { broker_id: i32 },
    /// A fenced broker heartbeats again and may lead and be placed on again.
    UnfenceBroker { broker_id: i32 },
    /// A broker left the cluster (`strom cluster decommission`, UnregisterBroker): its
    /// registration is gone, and the running process does not register again on its own
    /// (only a new start of it does).
    UnregisterBroker { broker_id: i32 },
    /// A topic was created; its partitions follow as [`MetadataRecord::Partition`] records.
    Topic { name: String, topic_id: Uuid },
    /// A partition's full state (creation, or a later change of replicas, ISR or leader).
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        /// KIP-966 eligible leader replicas: replicas out of the ISR that still have every
        /// committed record (they left it while it was below `min.insync.replicas`, when the
        /// high watermark stands still). Absent in logs written before ELR: empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        eligible_leader_replicas: Vec<i32>,
        /// KIP-966 last known ELR; as Kafka 4.1 keeps it, the last leader of a partition whose
        /// ISR became empty (elected, as an unclean election, if no ISR or ELR member is left).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        last_known_elr: Vec<i32>,
        /// KIP-455 reassignment in flight: replicas being added (in `replicas`, not yet caught
        /// up) and being removed (in `replicas` until the reassignment completes). Both empty
        /// when no reassignment is in progress; absent in logs written before reassignment.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
    },
    /// A dynamic config override was set (`Some`) or removed (`None`, back to the default).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// A topic and its partitions and config overrides were deleted.
    RemoveTopic { topic_id: Uuid },
    /// A block of producer ids was handed to `broker_id` (KIP-730). As in Kafka's
    /// ProducerIdsRecord, `next_block_start` is the first id of the *next* block, so the block
    /// handed out is `next_block_start - block_size .. next_block_start`.
    ProducerIds {
        broker_id: i32,
        next_block_start: i64,
        block_size: i64,
    },
    /// A user's SCRAM credential for one mechanism (Kafka's UserScramCredentialRecord),
    /// set by AlterUserScramCredentials: the salt and iteration count the client derives its
    /// salted password with, and the keys the server checks proofs with (RFC 5802's
    /// StoredKey and ServerKey; the password itself is never stored).
    ScramCredential {
        user: String,
        /// 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512 (Kafka's ScramMechanism type ids).
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// A user's SCRAM credential for one mechanism was deleted.
    RemoveScramCredential { user: String, mechanism: i8 },
    /// An ACL was created (Kafka's AccessControlEntryRecord), under a controller-chosen id.
    Acl {
        id: Uuid,
        binding: crate::acl::AclBinding,
    },
    /// The ACL `id` was deleted (Kafka's RemoveAccessControlEntryRecord).
    RemoveAcl { id: Uuid },
    /// A client quota was set (`value_bits` holds the f64's bits) or removed (`None`), as
    /// Kafka's ClientQuotaRecord.
    ClientQuota {
        entity: crate::quota::QuotaEntity,
        key: String,
        value_bits: Option<u64>,
    },
}
