//! Voter changes (KIP-853's AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter) as openraft
//! membership changes, run on the quorum leader. An added controller first joins as a learner
//! (KRaft's observer) and is promoted only once it has caught up; one change at a time.

use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, Membership, Raft};

use super::raft::{known_leader, MetadataRaftConfig, VoterEndpoint};
use super::{QuorumNodeId, VoterChange, VoterChangeError};

/// The longest one step of a voter change may wait (a new voter catching up, a joint
/// configuration committing). Below the transport's 30 s for forwarded requests, so a
/// forwarded change usually answers before its sender gives up.
const MAX_VOTER_CHANGE_WAIT: Duration = Duration::from_secs(25);

type C = MetadataRaftConfig;
type Members = Membership<QuorumNodeId, VoterEndpoint>;

/// Runs `change` on `raft` if it leads the quorum.
pub(crate) async fn change_voters(
    raft: &Raft<C>,
    change: VoterChange,
) -> Result<(), VoterChangeError> {
    let (me, leader, membership) = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership().clone();
        (m.id, known_leader(&m), membership)
    };
    if leader != Some(me) {
        return Err(VoterChangeError::NotLeader { leader });
    }
    if membership.get_joint_config().len() > 1 {
        return Err(VoterChangeError::TimedOut {
            reason: "another voter change is still committing; retry".into(),
        });
    }
    match change {
        VoterChange::Add {
            node_id,
            directory_id,
            endpoint,
            timeout_ms,
        } => {
            let node = VoterEndpoint {
                addr: endpoint,
                directory_id,
            };
            let wait = Duration::from_millis(timeout_ms).min(MAX_VOTER_CHANGE_WAIT);
            add_voter(raft, &membership, node_id, node, wait).await
        }
        VoterChange::Remove {
            node_id,
            directory_id,
        } => {
            existing_voter(&membership, node_id, directory_id.as_deref())?;
            if membership.voter_ids().count() == 1 {
                return Err(VoterChangeError::InvalidRequest {
                    reason: format!("node {node_id} is the only voter; add another first"),
                });
            }
            let remove = ChangeMembers::RemoveVoters([node_id].into());
            commit_within(raft.change_membership(remove, false)).await?;
            Ok(())
        }
        VoterChange::Update {
            node_id,
            directory_id,
            endpoint,
        } => {
            let stored = existing_voter(&membership, node_id, directory_id.as_deref())?;
            check_endpoint(&endpoint)?;
            let node = VoterEndpoint {
                addr: endpoint,
                directory_id: directory_id.or(stored.directory_id),
            };
            let set = ChangeMembers::SetNodes([(node_id, node)].into());
            commit_within(raft.change_membership(set, true)).await?;
            Ok(())
        }
    }
}

/// AddRaftVoter: learner, caught up within `wait`, then voter (joint consensus).
async fn add_voter(
    raft: &Raft<C>,
    membership: &Members,
    node_id: QuorumNodeId,
    node: VoterEndpoint,
    wait: Duration,
) -> Result<(), VoterChangeError> {
    if membership.voter_ids().any(|v| v == node_id) {
        return Err(VoterChangeError::DuplicateVoter { node_id });
    }
    check_endpoint(&node.addr)?;
    if membership.get_node(&node_id).is_some_and(|k| *k != node) {
        // A learner re-formatted or moved since it was first added.
        let set = ChangeMembers::SetNodes([(node_id, node.clone())].into());
        commit_within(raft.change_membership(set, true)).await?;
    }
    let added = commit_within(raft.add_learner(node_id, node, false)).await?;
    // openraft's own blocking add_learner gives up quietly after a short wait; a voter that
    // has not caught up must not be promoted (Kafka answers REQUEST_TIMED_OUT).
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
    commit_within(raft.change_membership(promote, true)).await?;
    Ok(())
}

/// The voter `node_id`, checked against `directory_id` when given (a voter re-formatted since
/// is another voter).
fn existing_voter(
    membership: &Members,
    node_id: QuorumNodeId,
    directory_id: Option<&str>,
) -> Result<VoterEndpoint, VoterChangeError> {
    let not_found = |detail: String| VoterChangeError::VoterNotFound { node_id, detail };
    if !membership.voter_ids().any(|v| v == node_id) {
        return Err(not_found(String::new()));
    }
    let stored = membership.get_node(&node_id).cloned().unwrap_or_default();
    if let (Some(asked), Some(have)) = (directory_id, &stored.directory_id) {
        if asked != have {
            return Err(not_found(format!(
                " with directory id {asked} (its directory id is {have})"
            )));
        }
    }
    Ok(stored)
}

/// A voter endpoint must be `host:port` with a non-zero numeric port.
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
    openraft::raft::ClientWriteResponse<C>,
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
            tracing::warn!(error = %e, "voter change failed: the metadata quorum stopped");
            VoterChangeError::NotLeader { leader: None }
        }
    }
}
