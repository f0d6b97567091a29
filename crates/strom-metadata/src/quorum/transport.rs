//! How quorum nodes reach each other: [`QuorumTransport`] is ours (an in-memory simulation, or
//! TCP in [`super::tcp_transport`]); [`serve`] is the receiving side any transport calls; the adapter below
//! makes a transport openraft's network.

use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{RPCTypes, Raft, Snapshot, SnapshotMeta, Vote};

use super::raft::{MetadataRaftConfig, VoterEndpoint};
use super::QuorumNodeId;
use crate::controller::{ControllerAnswer, ControllerHandler, ControllerOp};
use crate::error::ControllerError;

type C = MetadataRaftConfig;

/// A Raft message between quorum nodes.
#[derive(Debug, Clone)]
pub enum QuorumRpc {
    AppendEntries(AppendEntriesRequest<C>),
    Vote(VoteRequest<QuorumNodeId>),
    /// A whole snapshot (the bytes of a snapshot file) for a node behind the purged log.
    Snapshot {
        vote: Vote<QuorumNodeId>,
        meta: SnapshotMeta<QuorumNodeId, VoterEndpoint>,
        data: Vec<u8>,
    },
    /// A controller operation forwarded to the active controller (not a Raft message: it
    /// travels over the same CONTROLLER listener).
    Controller(ControllerOp),
    /// A broker-only node (an observer) asks any voter for what was committed after `after`,
    /// waiting up to `max_wait_ms` for something. With `entries` (wire kind 7) the voter
    /// answers with the committed entries after `after` when it still holds them, else with
    /// its image (KRaft's snapshot fallback); without (kind 5, observers of earlier builds)
    /// always with the whole image.
    FetchMetadata {
        after: Option<u64>,
        max_wait_ms: u32,
        entries: bool,
    },
    /// A voter change (AddRaftVoter / RemoveRaftVoter / UpdateRaftVoter) forwarded to the
    /// quorum leader.
    ChangeVoters(super::VoterChange),
}

/// The answer to a [`QuorumRpc`] of the same kind.
#[derive(Debug)]
pub enum QuorumReply {
    AppendEntries(AppendEntriesResponse<QuorumNodeId>),
    Vote(VoteResponse<QuorumNodeId>),
    Snapshot(SnapshotResponse<QuorumNodeId>),
    Controller(ControllerAnswer),
    Metadata(MetadataUpdate),
    VotersChanged(Result<(), super::VoterChangeError>),
}

/// A voter's answer to [`QuorumRpc::FetchMetadata`]: who leads, and what was committed after
/// the observer's offset: the entries (`entries`, contiguous from the observer's offset + 1 to
/// `offset`), or the whole image at `offset` (`image`); neither when nothing newer was
/// committed within the wait.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MetadataUpdate {
    pub leader: Option<QuorumNodeId>,
    pub epoch: u64,
    pub offset: Option<u64>,
    pub image: Option<Arc<crate::image::MetadataImage>>,
    /// Committed entries after the observer's offset (fetches with `entries` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<super::recent::CommittedEntry>,
    /// Every member of the quorum (voters and learners) with its CONTROLLER endpoint, so an
    /// observer that found the quorum through `controller.quorum.bootstrap.servers` can reach
    /// the leader by id.
    #[serde(default)]
    pub members: std::collections::BTreeMap<QuorumNodeId, String>,
}

/// What the receiving end of a transport serves: the local Raft node, the controller plugged
/// in for forwarded operations, and the applied image for observers.
#[derive(Clone)]
pub struct Receiver {
    pub raft: Raft<C>,
    pub controller: ControllerSlot,
    pub applied: Option<tokio::sync::watch::Receiver<super::state_machine::Applied>>,
    /// The recent committed entries observers fetch (`None`: always the image).
    pub recent: Option<Arc<super::recent::RecentEntries>>,
}

/// Where a node's controller is plugged in once it exists (it is created after the quorum
/// node starts); until then forwarded operations are answered NOT_CONTROLLER.
pub type ControllerSlot = Arc<std::sync::OnceLock<Arc<dyn ControllerHandler>>>;

/// Why a message got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Not delivered, or delivered with the answer lost: the sender cannot tell which.
    #[error("node {target} is unreachable")]
    Unreachable { target: QuorumNodeId },
    /// Sent, but no answer came within `after`: the receiver may or may not have acted on it.
    #[error("node {target} did not answer within {after:?}")]
    Timeout {
        target: QuorumNodeId,
        after: Duration,
    },
    /// The receiver's Raft refused the message (it is shutting down).
    #[error("node {target} failed the request: {reason}")]
    Remote {
        target: QuorumNodeId,
        reason: String,
    },
}

/// Carries [`QuorumRpc`]s from one node to another and brings back the reply.
pub trait QuorumTransport: Send + Sync + 'static {
    fn send(
        &self,
        from: QuorumNodeId,
        to: QuorumNodeId,
        rpc: QuorumRpc,
    ) -> impl Future<Output = Result<QuorumReply, TransportError>> + Send;

    /// Node `to` is reached at `addr` (its endpoint in the quorum's membership). Transports
    /// with a fixed address book ignore it.
    fn learn_addr(&self, _to: QuorumNodeId, _addr: &str) {}
}

/// Delivers `rpc` to the local Raft node `raft`, or a controller operation to the controller
/// in `controller` (the receiving end of any transport).
pub async fn serve(receiver: &Receiver, rpc: QuorumRpc) -> Result<QuorumReply, String> {
    let raft = &receiver.raft;
    let controller = &receiver.controller;
    match rpc {
        QuorumRpc::FetchMetadata {
            after,
            max_wait_ms,
            entries,
        } => {
            let Some(mut applied) = receiver.applied.clone() else {
                return Err("this node serves no metadata".into());
            };
            let newer = |a: &super::state_machine::Applied| a.offset.is_some() && a.offset > after;
            let wait = std::time::Duration::from_millis(u64::from(max_wait_ms.min(30_000)));
            let _ = tokio::time::timeout(wait, applied.wait_for(newer)).await;
            let (mut offset, image) = applied.borrow().pair();
            let mut image = (offset.is_some() && offset > after).then_some(image);
            let mut sent = Vec::new();
            if let (true, Some(upto), Some(recent)) =
                (entries && image.is_some(), offset, receiver.recent.as_ref())
            {
                let tail = recent.after(after, upto, super::recent::MAX_RECORDS_PER_FETCH);
                if let Some(last) = tail.as_ref().and_then(|t| t.last()) {
                    offset = Some(last.offset);
                    image = None;
                    sent = tail.unwrap_or_default();
                }
            }
            let known = raft.metrics().borrow().clone();
            let members = known
                .membership_config
                .membership()
                .nodes()
                .filter(|(_, n)| !n.addr.is_empty())
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect();
            Ok(QuorumReply::Metadata(MetadataUpdate {
                leader: super::raft::known_leader(&known),
                epoch: known.current_term,
                offset,
                image,
                entries: sent,
                members,
            }))
        }
        QuorumRpc::ChangeVoters(change) => Ok(QuorumReply::VotersChanged(
            super::voters::change_voters(raft, change).await,
        )),
        QuorumRpc::Controller(op) => {
            let Some(handler) = controller.get().cloned() else {
                let not_ready = ControllerError::NotController { leader: None };
                return Ok(QuorumReply::Controller(ControllerAnswer {
                    result: op.failed(not_ready),
                    offset: None,
                }));
            };
            // It blocks until the quorum commits: off the runtime's workers.
            tokio::task::spawn_blocking(move || handler.handle(op))
                .await
                .map(QuorumReply::Controller)
                .map_err(|e| format!("controller operation failed: {e}"))
        }
        QuorumRpc::AppendEntries(req) => raft
            .append_entries(req)
            .await
            .map(QuorumReply::AppendEntries)
            .map_err(|e| e.to_string()),
        QuorumRpc::Vote(req) => raft
            .vote(req)
            .await
            .map(QuorumReply::Vote)
            .map_err(|e| e.to_string()),
        QuorumRpc::Snapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta,
                snapshot: Box::new(data),
            };
            raft.install_full_snapshot(vote, snapshot)
                .await
                .map(QuorumReply::Snapshot)
                .map_err(|e| e.to_string())
        }
    }
}

/// openraft's network factory over a [`QuorumTransport`].
pub struct Network<T> {
    pub(crate) from: QuorumNodeId,
    pub(crate) transport: Arc<T>,
}

/// One node's connection to `target`.
pub struct Connection<T> {
    from: QuorumNodeId,
    target: QuorumNodeId,
    transport: Arc<T>,
}

impl<T: QuorumTransport> RaftNetworkFactory<C> for Network<T> {
    type Network = Connection<T>;

    async fn new_client(&mut self, target: QuorumNodeId, node: &VoterEndpoint) -> Connection<T> {
        self.transport.learn_addr(target, &node.addr);
        Connection {
            from: self.from,
            target,
            transport: Arc::clone(&self.transport),
        }
    }
}

impl<T: QuorumTransport> Connection<T> {
    async fn call(&self, rpc: QuorumRpc) -> Result<QuorumReply, TransportError> {
        self.transport.send(self.from, self.target, rpc).await
    }
}

fn rpc_error<E: std::error::Error>(
    e: TransportError,
    from: QuorumNodeId,
    action: RPCTypes,
) -> RPCError<QuorumNodeId, VoterEndpoint, RaftError<QuorumNodeId, E>> {
    match e {
        TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        TransportError::Timeout { target, after } => RPCError::Timeout(Timeout {
            action,
            id: from,
            target,
            timeout: after,
        }),
        TransportError::Remote { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

fn wrong_reply(target: QuorumNodeId) -> TransportError {
    TransportError::Remote {
        target,
        reason: "reply of the wrong kind".into(),
    }
}

impl<T: QuorumTransport> RaftNetwork<C> for Connection<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<QuorumNodeId>,
        RPCError<QuorumNodeId, VoterEndpoint, RaftError<QuorumNodeId>>,
    > {
        match self.call(QuorumRpc::AppendEntries(rpc)).await {
            Ok(QuorumReply::AppendEntries(r)) => Ok(r),
            Ok(_) => Err(wrong_reply(self.target)),
            Err(e) => Err(e),
        }
        .map_err(|e| rpc_error(e, self.from, RPCTypes::AppendEntries))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<QuorumNodeId>,
        _option: RPCOption,
    ) -> Result<
        VoteResponse<QuorumNodeId>,
        RPCError<QuorumNodeId, VoterEndpoint, RaftError<QuorumNodeId>>,
    > {
        match self.call(QuorumRpc::Vote(rpc)).await {
            Ok(QuorumReply::Vote(r)) => Ok(r),
            Ok(_) => Err(wrong_reply(self.target)),
            Err(e) => Err(e),
        }
        .map_err(|e| rpc_error(e, self.from, RPCTypes::Vote))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<QuorumNodeId>,
        snapshot: Snapshot<C>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<QuorumNodeId>, StreamingError<C, Fatal<QuorumNodeId>>> {
        let rpc = QuorumRpc::Snapshot {
            vote,
            meta: snapshot.meta,
            data: *snapshot.snapshot,
        };
        let err = match self.call(rpc).await {
            Ok(QuorumReply::Snapshot(r)) => return Ok(r),
            Ok(_) => wrong_reply(self.target),
            Err(e) => e,
        };
        Err(match err {
            TransportError::Unreachable { .. } => {
                StreamingError::Unreachable(Unreachable::new(&err))
            }
            TransportError::Timeout { target, after } => StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: self.from,
                target,
                timeout: after,
            }),
            TransportError::Remote { .. } => StreamingError::Network(NetworkError::new(&err)),
        })
    }
}
