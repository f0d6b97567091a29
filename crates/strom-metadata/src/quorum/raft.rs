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
use std::time::Duration;

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
        let network = Network {
            from: node_id,
            transport,
        };
        let raft = Raft::new(node_id, config, network, log, sm)
            .await
            .map_err(|e| QuorumStartError::Raft {
                reason: e.to_string(),
            })?;
        Ok(OpenraftQuorum { raft, applied })
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

    /// Applies `change` to the voter set if this node leads (see [`change_voters`]).
    pub async fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError> {
        change_voters(&self.raft, change).await
    }

    /// The applied offset and image as they change (a broker follows this).
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
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
        self.applied.borrow().clone()
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

/// The longest a voter change may wait (a new voter catching up, the joint configuration
/// committing). Below the transport's 30 s for forwarded requests, so a forwarded change
/// answers before its sender gives up.
const MAX_VOTER_CHANGE_WAIT: Duration = Duration::from_secs(25);

/// Runs `change` on `raft` if it leads the quorum: KIP-853's AddRaftVoter (learner, catch up,
/// then voter), RemoveRaftVoter and UpdateRaftVoter as openraft membership changes, one at a
/// time (openraft refuses a change while a joint configuration is pending).
pub(crate) async fn change_voters(
    raft: &Raft<MetadataRaftConfig>,
    change: VoterChange,
) -> Result<(), VoterChangeError> {
    use openraft::ChangeMembers;
    let (me, leader, membership) = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        (
            m.id,
            known_leader(&m),
            m.membership_config.membership().clone(),
        )
    };
    if leader != Some(me) {
        return Err(VoterChangeError::NotLeader { leader });
    }
    if membership.get_joint_config().len() > 1 {
        return Err(VoterChangeError::TimedOut {
            reason: "another voter change is still committing; retry".into(),
        });
    }
    let is_voter = |id: QuorumNodeId| membership.voter_ids().any(|v| v == id);
    match change {
        VoterChange::Add {
            node_id,
            directory_id,
            endpoint,
            timeout_ms,
        } => {
            if is_voter(node_id) {
                return Err(VoterChangeError::DuplicateVoter { node_id });
            }
            check_endpoint(&endpoint)?;
            let wait = Duration::from_millis(timeout_ms).min(MAX_VOTER_CHANGE_WAIT);
            let node = VoterEndpoint {
                addr: endpoint,
                directory_id,
            };
            let known = membership.get_node(&node_id);
            if known.is_some_and(|k| *k != node) {
                // A learner re-formatted or moved since it was first added.
                let set = ChangeMembers::SetNodes([(node_id, node.clone())].into());
                commit_within(raft.change_membership(set, true)).await?;
            }
            let added = commit_within(raft.add_learner(node_id, node, false)).await?;
            // openraft's own blocking add_learner gives up quietly after a short wait; a voter
            // that has not caught up must not be promoted (Kafka answers REQUEST_TIMED_OUT).
            let caught_up = raft
                .wait(Some(wait))
                .metrics(
                    |m| {
                        m.replication
                            .as_ref()
                            .and_then(|r| r.get(&node_id).copied().flatten())
                            .is_some_and(|matched| matched.index >= added)
                    },
                    "the new voter caught up",
                )
                .await;
            if caught_up.is_err() {
                return Err(VoterChangeError::TimedOut {
                    reason: format!(
                        "node {node_id} did not catch up within {wait:?} (is it running, formatted for this cluster, and reachable at its CONTROLLER listener?); it stays an observer"
                    ),
                });
            }
            let promote = ChangeMembers::AddVoterIds([node_id].into());
            commit_within(raft.change_membership(promote, true))
                .await
                .map(|_| ())
        }
        VoterChange::Remove {
            node_id,
            directory_id,
        } => {
            if !is_voter(node_id) {
                return Err(VoterChangeError::VoterNotFound {
                    node_id,
                    detail: String::new(),
                });
            }
            let stored = membership
                .get_node(&node_id)
                .and_then(|n| n.directory_id.clone());
            if let (Some(asked), Some(stored)) = (&directory_id, &stored) {
                if asked != stored {
                    return Err(VoterChangeError::VoterNotFound {
                        node_id,
                        detail: format!(
                            " with directory id {asked} (its directory id is {stored})"
                        ),
                    });
                }
            }
            if membership.voter_ids().count() == 1 {
                return Err(VoterChangeError::InvalidRequest {
                    reason: format!("node {node_id} is the only voter; add another first"),
                });
            }
            let remove = ChangeMembers::RemoveVoters([node_id].into());
            commit_within(raft.change_membership(remove, false))
                .await
                .map(|_| ())
        }
        VoterChange::Update {
            node_id,
            directory_id,
            endpoint,
        } => {
            if !is_voter(node_id) {
                return Err(VoterChangeError::VoterNotFound {
                    node_id,
                    detail: String::new(),
                });
            }
            check_endpoint(&endpoint)?;
            let stored = membership.get_node(&node_id).cloned().unwrap_or_default();
            if let (Some(asked), Some(have)) = (&directory_id, &stored.directory_id) {
                if asked != have {
                    return Err(VoterChangeError::VoterNotFound {
                        node_id,
                        detail: format!(" with directory id {asked} (its directory id is {have})"),
                    });
                }
            }
            let node = VoterEndpoint {
                addr: endpoint,
                directory_id: directory_id.or(stored.directory_id),
            };
            let set = ChangeMembers::SetNodes([(node_id, node)].into());
            commit_within(raft.change_membership(set, true))
                .await
                .map(|_| ())
        }
    }
}

/// A voter endpoint must be `host:port` with a numeric port.
fn check_endpoint(endpoint: &str) -> Result<(), VoterChangeError> {
    let ok = endpoint
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Ok(())
    } else {
        Err(VoterChangeError::InvalidRequest {
            reason: format!("endpoint '{endpoint}' is not host:port"),
        })
    }
}

type MembershipResult = Result<
    openraft::raft::ClientWriteResponse<MetadataRaftConfig>,
    RaftError<QuorumNodeId, ClientWriteError<QuorumNodeId, VoterEndpoint>>,
>;

/// Waits (bounded) for a membership change to commit; returns its log index.
async fn commit_within(
    change: impl std::future::Future<Output = MembershipResult>,
) -> Result<u64, VoterChangeError> {
    match tokio::time::timeout(MAX_VOTER_CHANGE_WAIT, change).await {
        Ok(r) => r.map(|r| r.log_id.index).map_err(membership_error),
        Err(_) => Err(VoterChangeError::TimedOut {
            reason: format!(
                "the new voter set did not commit within {MAX_VOTER_CHANGE_WAIT:?} (is a majority of it running?)"
            ),
        }),
    }
}

fn membership_error(
    e: RaftError<QuorumNodeId, ClientWriteError<QuorumNodeId, VoterEndpoint>>,
) -> VoterChangeError {
    use openraft::error::ChangeMembershipError;
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => VoterChangeError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(p),
        )) => VoterChangeError::TimedOut {
            reason: format!("another voter change is still committing ({p}); retry"),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            VoterChangeError::InvalidRequest {
                reason: e.to_string(),
            }
        }
        RaftError::Fatal(e) => {
            VoterChangeError::NotLeader { leader: None }.inspect_fatal(&e.to_string())
        }
    }
}

impl VoterChangeError {
    fn inspect_fatal(self, reason: &str) -> VoterChangeError {
        tracing::warn!(%reason, "voter change failed: the metadata quorum stopped");
        self
    }
}
