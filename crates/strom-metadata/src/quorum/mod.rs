//! The metadata quorum: the controllers replicate the metadata log with Raft. [`MetadataQuorum`]
//! is the only face the controller sees; [`raft`] implements it on openraft with our own log
//! storage, state machine and transport (simulated, or TCP with [`node::QuorumNode`] as the
//! entry point). Not wired into the broker yet (single-node controller).
//!
//! Offsets here are Raft log indexes: one index per *batch* of records (an entry), not per
//! record. The leader's own blank and membership entries take indexes too and carry no records.

pub mod log_store;
pub mod node;
pub mod observer;
pub mod raft;
pub mod recent;
pub mod runtime;
pub mod service;
pub mod sim_transport;
pub mod state_machine;
pub mod tcp_codec;
pub mod tcp_transport;
pub mod transport;
pub mod voters;

use std::future::Future;
use std::sync::Arc;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// A controller node's id (`node.id` of a node whose `process.roles` contains `controller`).
pub type QuorumNodeId = u64;

/// A position in the metadata log: the Raft index of an entry (one committed batch).
pub type MetadataOffset = u64;

/// The Raft term in which an entry was appended (Kafka's KRaft leader epoch).
pub type LeaderEpoch = u64;

/// Who leads the quorum, as this node currently knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderAndEpoch {
    /// The leader of `epoch`, if this node knows one.
    pub leader: Option<QuorumNodeId>,
    /// The highest term this node has seen.
    pub epoch: LeaderEpoch,
}

/// The quorum as its leader sees it (DescribeQuorum): offsets are Raft indexes, exclusive
/// ends as Kafka reports them (a log end offset is the next index to write).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumDescription {
    pub leader: QuorumNodeId,
    pub epoch: LeaderEpoch,
    /// One past the last committed (applied on the leader) entry.
    pub high_watermark: u64,
    pub voters: Vec<VoterState>,
    /// Milliseconds since a majority last acknowledged the leader.
    pub millis_since_quorum_ack: Option<u64>,
    /// Members that replicate the log without voting (openraft learners: KRaft's observers
    /// that joined the membership, e.g. a controller being added).
    #[serde(default)]
    pub observers: Vec<VoterState>,
}

/// One voter's replication state as the leader knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VoterState {
    pub node_id: QuorumNodeId,
    /// One past the last entry the leader knows this voter holds (`None`: nothing yet).
    pub log_end_offset: Option<u64>,
    /// The voter's metadata directory id (dynamic quorums, KIP-853).
    #[serde(default)]
    pub directory_id: Option<String>,
    /// `host:port` of its CONTROLLER listener as the membership records it (empty for a
    /// quorum of one).
    #[serde(default)]
    pub endpoint: String,
}

/// A change of the voter set, as KIP-853's AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter
/// ask for it. Runs on the quorum leader as openraft membership changes (an added voter first
/// joins as a learner, KRaft's observer, and is promoted once it has caught up).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VoterChange {
    Add {
        node_id: QuorumNodeId,
        directory_id: Option<String>,
        /// `host:port` of the new voter's CONTROLLER listener.
        endpoint: String,
        /// How long the new voter may take to catch up before the request fails.
        timeout_ms: u64,
    },
    Remove {
        node_id: QuorumNodeId,
        /// When set, it must match the voter's (a voter re-formatted since is another voter).
        directory_id: Option<String>,
    },
    Update {
        node_id: QuorumNodeId,
        directory_id: Option<String>,
        endpoint: String,
    },
}

/// Why a [`VoterChange`] was refused or did not finish. Mapped to Kafka error codes in the
/// broker's error table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum VoterChangeError {
    /// No leader is known, or it could not be reached (retriable).
    #[error("no reachable metadata quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<QuorumNodeId> },
    #[error("node {node_id} is already a voter")]
    DuplicateVoter { node_id: QuorumNodeId },
    #[error("node {node_id} is not a voter{detail}")]
    VoterNotFound {
        node_id: QuorumNodeId,
        detail: String,
    },
    #[error("invalid voter change: {reason}")]
    InvalidRequest { reason: String },
    /// The request names another cluster.
    #[error("cluster id {requested} is not this cluster's ({actual})")]
    InconsistentClusterId { requested: String, actual: String },
    /// Voters are fixed by `controller.quorum.voters` (Kafka's kraft.version 0), or this is
    /// single-node mode.
    #[error("the controller quorum is static ({reason}); voters change only in a dynamic quorum (controller.quorum.bootstrap.servers, formatted with strom storage format)")]
    StaticQuorum { reason: String },
    /// Another membership change is still committing, or the new voter did not catch up in
    /// time; nothing or only the learner step happened (retriable).
    #[error("voter change did not complete: {reason}")]
    TimedOut { reason: String },
}

/// One committed entry as it is applied, handed to a [`MetadataPublisher`] in log order.
#[derive(Debug, Clone)]
pub struct CommittedBatch<'a> {
    pub offset: MetadataOffset,
    pub epoch: LeaderEpoch,
    /// The records of the entry; empty for the leader's blank and membership entries.
    pub records: &'a [MetadataRecord],
    /// The image after applying `records`.
    pub image: &'a Arc<MetadataImage>,
}

/// Receives the committed log as the local replica applies it, so a broker can apply deltas.
///
/// Invariants the quorum guarantees to a publisher:
/// - calls are sequential, and offsets strictly increase across all calls;
/// - `on_batch` is only called for committed entries, each at most once per process lifetime;
/// - `on_snapshot` replaces the state wholesale (a lagging node caught up from a snapshot, or a
///   restart reloaded one): entries up to its offset are never handed over one by one.
pub trait MetadataPublisher: Send + Sync + 'static {
    fn on_batch(&self, batch: CommittedBatch<'_>);
    fn on_snapshot(&self, offset: MetadataOffset, epoch: LeaderEpoch, image: &Arc<MetadataImage>);
}

/// A publisher that ignores everything (a node that only reads [`MetadataQuorum::image`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPublisher;

impl MetadataPublisher for NoPublisher {
    fn on_batch(&self, _batch: CommittedBatch<'_>) {}
    fn on_snapshot(&self, _: MetadataOffset, _: LeaderEpoch, _: &Arc<MetadataImage>) {}
}

/// Why `propose` did not return an offset. Values, not panics: the controller maps them to
/// Kafka's NOT_CONTROLLER and retriable errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// This node is not the leader, so the batch was never appended and never commits.
    /// `leader` is the leader it knows of (forward there).
    #[error("not the metadata quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<QuorumNodeId> },
    /// The batch was appended while this node led, then leadership moved and this node dropped
    /// it. Another replica may still hold it and commit it: the outcome is unknown, so the
    /// caller must re-read the image before it retries (the simulation found such a batch
    /// committing: 3 nodes, seed 411).
    #[error("metadata quorum leadership moved while the batch was pending (leader: {leader:?})")]
    LeadershipLost { leader: Option<QuorumNodeId> },
    /// The quorum on this node stopped (shutdown or a storage failure). A batch in flight may
    /// still commit: the caller must re-read the image before it retries.
    #[error("metadata quorum stopped: {reason}")]
    Stopped { reason: String },
}

/// The metadata quorum as the controller uses it.
///
/// Invariants:
/// - `propose` returns `Ok(offset)` only once the batch is committed by a majority and applied
///   locally; the batch is then at `offset` on every replica forever.
/// - A batch is applied atomically: all its records or none.
/// - At most one leader per epoch; only the leader accepts proposals.
/// - `image()` only reflects committed entries, and never goes back in offset.
pub trait MetadataQuorum: Send + Sync {
    /// Proposes `records` as one batch; resolves with its offset once it is committed.
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> impl Future<Output = Result<MetadataOffset, QuorumError>> + Send;

    /// The leader and epoch this node currently knows.
    fn leader(&self) -> LeaderAndEpoch;

    /// The locally applied image and the offset it reflects (`None` before any entry).
    fn image(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>);
}
