//! [`MetadataQuorum`] on openraft.
//!
//! Why openraft `=0.9.25`: 0.9 is its stable line (0.10 is still alpha, with changing traits);
//! it lets us own the log storage, state machine, network and even the async runtime, which is
//! what a seeded simulation needs. Features: `single-term-leader` (standard Raft: one leader
//! per term; openraft's default lets several candidates lead the same term, which breaks
//! KRaft's rule that a leader epoch names one leader), `storage-v2` (the split log /
//! state-machine traits), `generic-snapshot-data` (a snapshot is our own bytes, sent whole, no
//! chunking protocol), `serde` (membership is stored as JSON in the log). Pinned exactly: 0.9
//! point releases have changed trait details.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, Raft};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::QuorumLogStore;
use super::runtime::StromRuntime;
use super::state_machine::{Applied, ImageStateMachine};
use super::transport::{Network, QuorumTransport};
use super::{
    LeaderAndEpoch, MetadataOffset, MetadataPublisher, MetadataQuorum, QuorumError, QuorumNodeId,
    VoterChange, VoterChangeError,
};
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// The application data of one Raft entry: a batch of records, applied atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch(pub Vec<MetadataRecord>);

impl std::fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetadataBatch({} records)", self.0.len())
    }
}

/// A voter's (or observer's) entry in the quorum's membership, stored in the log with every
/// membership change (KIP-853's VotersRecord: id, directory id, endpoint). JSON-compatible with
/// openraft's `BasicNode` (`{"addr": ...}`), which logs written before dynamic quorums hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterEndpoint {
    /// `host:port` of the node's CONTROLLER listener (empty for a quorum of one).
    pub addr: String,
    /// The node's metadata log directory id (`directory.id` of its meta.properties), when its
    /// directory was formatted for a dynamic quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<String>,
}

impl VoterEndpoint {
    /// An endpoint with no directory id (static `controller.quorum.voters`).
    pub fn new(addr: impl Into<String>) -> VoterEndpoint {
        VoterEndpoint {
            addr: addr.into(),
            directory_id: None,
        }
    }
}

impl std::fmt::Display for VoterEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.directory_id {
            Some(dir) => write!(f, "{} ({dir})", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

openraft::declare_raft_types!(
    /// openraft's types for the metadata quorum.
    pub MetadataRaftConfig:
        D = MetadataBatch,
        R = (),
        NodeId = QuorumNodeId,
        Node = VoterEndpoint,
        Entry = openraft::Entry<MetadataRaftConfig>,
        SnapshotData = Vec<u8>,
        Responder = openraft::impls::OneshotResponder<MetadataRaftConfig>,
        AsyncRuntime = StromRuntime,
);

/// Why a quorum node could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumStartError {
    #[error("metadata quorum storage in {dir}: {source}")]
    Storage {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata quorum could not start: {reason}")]
    Raft { reason: String },
    /// `controller.quorum.voters` does not describe a quorum this node can join.
    #[error("controller.quorum.voters: {reason}")]
    Voters { reason: String },
}

/// A controller's replica of the metadata quorum, on openraft.
pub struct OpenraftQuorum {
    raft: Raft<MetadataRaftConfig>,
    applied: watch::Receiver<Applied>,
    recent: Arc<super::recent::RecentEntries>,
}

impl std::fmt::Debug for OpenraftQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenraftQuorum").finish_non_exhaustive()
    }
}

impl OpenraftQuorum {
    /// Opens node `node_id`'s log, vote and snapshot in `dir` and starts its Raft node, which
    /// talks to the others over `transport`. `publisher` sees every entry this node applies.
    pub async fn open<T: QuorumTransport>(
        node_id: QuorumNodeId,
        dir: &Path,
        config: Arc<Config>,
        transport: Arc<T>,
        publisher: Arc<dyn MetadataPublisher>,
    ) -> Result<OpenraftQuorum, QuorumStartError> {
        let storage = |source| QuorumStartError::Storage {
            dir: dir.to_path_buf(),
            source,
        };
        let log = QuorumLogStore::open(dir).map_err(storage)?;
        let (sm, applied) = ImageStateMachine::open(dir, publisher).map_err(storage)?;
        let recent = sm.recent();
        let network = Network {
            from: node_id,
            transport,
        };
        let raft = Raft::new(node_id, config, network, log, sm)
            .await
            .map_err(|e| QuorumStartError::Raft {
                reason: e.to_string(),
            })?;
        Ok(OpenraftQuorum {
            raft,
            applied,
            recent,
        })
    }

    /// Forms the quorum of `voters` the first time; a node that already has a log or vote
    /// ignores it (so every voter may call it at every start).
    pub async fn bootstrap(
        &self,
        voters: BTreeMap<QuorumNodeId, VoterEndpoint>,
    ) -> Result<(), QuorumError> {
        // openraft logs an error for initializing twice; a restart is not one.
        if self.raft.is_initialized().await.unwrap_or(false) {
            return Ok(());
        }
        match self.raft.initialize(voters).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(QuorumError::Stopped {
                reason: e.to_string(),
            }),
        }
    }

    /// Starts an election now rather than after an election timeout (a quorum of one at start).
    pub async fn elect_now(&self) -> Result<(), QuorumError> {
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| QuorumError::Stopped {
                reason: e.to_string(),
            })
    }

    /// Waits until this node, as leader, has confirmed its leadership with a quorum and applied
    /// everything committed before: an image read afterwards is not stale (openraft's
    /// `ensure_linearizable`). Fails with `NotLeader` on a follower.
    pub async fn catch_up_as_leader(&self) -> Result<(), QuorumError> {
        use openraft::error::CheckIsLeaderError;
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(QuorumError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(QuorumError::LeadershipLost { leader: None })
                    .inspect_err(|_| tracing::debug!(error = %e, "leadership not confirmed"))
            }
            Err(RaftError::Fatal(e)) => Err(QuorumError::Stopped {
                reason: e.to_string(),
            }),
        }
    }

    /// The quorum's replication state, on the leader (`None` elsewhere).
    pub fn describe(&self) -> Option<super::QuorumDescription> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let replication = m.replication.as_ref()?;
        if known_leader(&m) != Some(m.id) {
            return None;
        }
        let membership = m.membership_config.membership();
        let state = |id: QuorumNodeId| {
            let log_end_offset = if id == m.id {
                m.last_log_index.map(|i| i + 1)
            } else {
                replication.get(&id).copied().flatten().map(|l| l.index + 1)
            };
            let node = membership.get_node(&id);
            super::VoterState {
                node_id: id,
                log_end_offset,
                directory_id: node.and_then(|n| n.directory_id.clone()),
                endpoint: node.map(|n| n.addr.clone()).unwrap_or_default(),
            }
        };
        let mut voters: Vec<super::VoterState> = membership.voter_ids().map(state).collect();
        voters.sort_by_key(|v| v.node_id);
        let mut observers: Vec<super::VoterState> = membership.learner_ids().map(state).collect();
        observers.sort_by_key(|v| v.node_id);
        Some(super::QuorumDescription {
            leader: m.id,
            epoch: m.current_term,
            high_watermark: m.last_applied.map_or(0, |l| l.index + 1),
            voters,
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            observers,
        })
    }

    /// Applies `change` to the voter set if this node leads (see
    /// [`super::voters::change_voters`]).
    pub async fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError> {
        super::voters::change_voters(&self.raft, change).await
    }

    /// The applied offset and image as they change (a broker follows this).
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// The latest applied offset, image and delta.
    pub fn applied(&self) -> Applied {
        self.applied.borrow().clone()
    }

    /// The recent committed entries observers fetch ([`super::transport::serve`]).
    pub fn recent(&self) -> Arc<super::recent::RecentEntries> {
        Arc::clone(&self.recent)
    }

    /// Why the Raft core stopped, if it did (a storage failure): the node is then dead and
    /// must not pretend otherwise.
    pub fn fatal(&self) -> Option<String> {
        match &self.raft.metrics().borrow().running_state {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The openraft node, for a transport's receiving end ([`super::transport::serve`]).
    pub fn raft(&self) -> &Raft<MetadataRaftConfig> {
        &self.raft
    }

    /// Stops the Raft node; storage is closed when the last handle drops.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum shut down with an error");
        }
    }
}

impl MetadataQuorum for OpenraftQuorum {
    async fn propose(&self, records: Vec<MetadataRecord>) -> Result<MetadataOffset, QuorumError> {
        // openraft answers ForwardToLeader both when it refuses a write up front and when a new
        // leader truncated the pending entry here (which another replica may still commit), so
        // a refusal we can promise is final is decided here, before anything is appended.
        let leader = self.leader().leader;
        if leader != Some(self.raft.metrics().borrow().id) {
            return Err(QuorumError::NotLeader { leader });
        }
        match self.raft.client_write(MetadataBatch(records)).await {
            Ok(response) => Ok(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(QuorumError::LeadershipLost {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                unreachable!("a metadata batch is not a membership change: {e}")
            }
            Err(RaftError::Fatal(e)) => Err(QuorumError::Stopped {
                reason: e.to_string(),
            }),
        }
    }

    fn leader(&self) -> LeaderAndEpoch {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        LeaderAndEpoch {
            leader: known_leader(&m),
            epoch: m.current_term,
        }
    }

    fn image(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>) {
        self.applied.borrow().pair()
    }
}

/// The leader `m` reports, except that a node only names itself while it really leads:
/// openraft keeps reporting a leader removed from the voters (it steps down) as the leader of
/// its term, since nobody contacts it any more; observers asking it would follow it forever.
pub(crate) fn known_leader(
    m: &openraft::RaftMetrics<QuorumNodeId, VoterEndpoint>,
) -> Option<QuorumNodeId> {
    match m.current_leader {
        Some(l) if l == m.id && m.state != openraft::ServerState::Leader => None,
        other => other,
    }
}
