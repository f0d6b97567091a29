//! The metadata quorum for synchronous callers (the controller, the broker's start-up): the
//! [`QuorumNode`] runs on a small tokio runtime of its own (threads named `strom-metadata`), as
//! Kafka runs its controller and Raft on their own threads, so a burst of client requests never
//! delays a heartbeat or an election, and a slow fsync of the metadata log never stalls a
//! network thread. Calls block the calling thread until the quorum answers; the broker makes
//! them off its async workers.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::node::{QuorumNode, QuorumNodeOptions};
use super::raft::QuorumStartError;
use super::raft::VoterEndpoint;
use super::state_machine::Applied;
use super::transport::TransportError;
use super::{
    LeaderAndEpoch, MetadataOffset, MetadataQuorum, QuorumError, QuorumNodeId, VoterChange,
    VoterChangeError,
};
use crate::broker_config::QuorumVoter;
use crate::controller::{ControllerAnswer, ControllerHandler, ControllerOp};
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// What a node of the cluster knows of the metadata quorum, for synchronous callers: a voter
/// ([`QuorumService`]) or a broker-only observer ([`super::observer::MetadataObserver`]).
pub trait MetadataNode: Send + Sync + std::fmt::Debug {
    /// This node's id.
    fn node_id(&self) -> QuorumNodeId;
    /// The leader (active controller) and epoch this node knows.
    fn leader(&self) -> LeaderAndEpoch;
    /// The latest committed image this node has, and its offset.
    fn image(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>);
    /// The latest committed image with its offset and the delta that led to it.
    fn applied(&self) -> Applied;
    /// The image as it changes.
    fn subscribe(&self) -> watch::Receiver<Applied>;
    /// Sends `op` to node `to`'s controller and blocks for its answer.
    fn forward(
        &self,
        to: QuorumNodeId,
        op: ControllerOp,
    ) -> Result<ControllerAnswer, TransportError>;
    /// Why this node's metadata stopped for good, if it did.
    fn fatal(&self) -> Option<String>;
    /// Whether this node is a voter (runs a controller).
    fn is_voter(&self) -> bool;
    /// Runs a voter change (AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter) on the quorum
    /// leader and blocks for its outcome.
    fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError>;
    /// Stops it.
    fn shutdown(&self);
}

impl MetadataNode for QuorumService {
    fn node_id(&self) -> QuorumNodeId {
        QuorumService::node_id(self)
    }
    fn leader(&self) -> LeaderAndEpoch {
        QuorumService::leader(self)
    }
    fn image(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>) {
        QuorumService::image(self)
    }
    fn applied(&self) -> Applied {
        self.node.quorum().applied()
    }
    fn subscribe(&self) -> watch::Receiver<Applied> {
        QuorumService::subscribe(self)
    }
    fn forward(
        &self,
        to: QuorumNodeId,
        op: ControllerOp,
    ) -> Result<ControllerAnswer, TransportError> {
        QuorumService::forward(self, to, op)
    }
    fn fatal(&self) -> Option<String> {
        QuorumService::fatal(self)
    }
    fn is_voter(&self) -> bool {
        true
    }
    fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError> {
        QuorumService::change_voters(self, change)
    }
    fn shutdown(&self) {
        QuorumService::shutdown(self);
    }
}

/// A running quorum node and the runtime it runs on.
pub struct QuorumService {
    node_id: QuorumNodeId,
    node: Arc<QuorumNode>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for QuorumService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumService")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.node.local_addr())
            .finish_non_exhaustive()
    }
}

/// Threads of the quorum's runtime: Raft, the CONTROLLER listener and snapshot builds are
/// light; two keep a heartbeat going while the other thread fsyncs.
const QUORUM_THREADS: usize = 2;

pub(crate) fn quorum_runtime() -> Result<tokio::runtime::Runtime, QuorumStartError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(QUORUM_THREADS)
        .thread_name("strom-metadata")
        .enable_all()
        .build()
        .map_err(|e| QuorumStartError::Raft {
            reason: format!("cannot start the metadata runtime: {e}"),
        })
}

/// Runs `work` on `runtime` and blocks the calling thread until it finishes. Works from any
/// thread, including a worker of another runtime (which it blocks, so callers there use
/// `block_in_place`).
pub(crate) fn run_on<R: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    work: impl Future<Output = R> + Send + 'static,
) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().ok()
}

impl QuorumService {
    /// A quorum of one in `dir` (single-node mode): no listener, leader at once.
    pub fn start_local(
        node_id: QuorumNodeId,
        dir: &Path,
        options: QuorumNodeOptions,
    ) -> Result<QuorumService, QuorumStartError> {
        let runtime = quorum_runtime()?;
        let dir = dir.to_path_buf();
        let node = run_on(runtime.handle(), async move {
            QuorumNode::start_local(node_id, &dir, options).await
        })
        .unwrap_or_else(|| {
            Err(QuorumStartError::Raft {
                reason: "the metadata runtime stopped during start-up".into(),
            })
        })?;
        Ok(QuorumService {
            node_id,
            node: Arc::new(node),
            runtime: Some(runtime),
        })
    }

    /// Node `node_id` of the quorum `voters`, serving the other voters on `listener` (the
    /// bound CONTROLLER listener).
    pub fn start_tcp(
        node_id: QuorumNodeId,
        voters: &[QuorumVoter],
        dir: &Path,
        listener: std::net::TcpListener,
        options: QuorumNodeOptions,
    ) -> Result<QuorumService, QuorumStartError> {
        let runtime = quorum_runtime()?;
        let dir = dir.to_path_buf();
        let voters = voters.to_vec();
        let node = run_on(runtime.handle(), async move {
            let storage = |source| QuorumStartError::Storage {
                dir: dir.clone(),
                source,
            };
            listener.set_nonblocking(true).map_err(storage)?;
            let listener = tokio::net::TcpListener::from_std(listener).map_err(storage)?;
            QuorumNode::start_tcp(node_id, &voters, &dir, listener, options).await
        })
        .unwrap_or_else(|| {
            Err(QuorumStartError::Raft {
                reason: "the metadata runtime stopped during start-up".into(),
            })
        })?;
        Ok(QuorumService {
            node_id,
            node: Arc::new(node),
            runtime: Some(runtime),
        })
    }

    /// Node `node_id` of a dynamic quorum (KIP-853) formed from `initial_voters` on first
    /// start, or waiting to be added when that is empty (see [`QuorumNode::start_dynamic`]).
    /// `me` is this node's endpoint and directory id now: when the voter set in the log says
    /// otherwise (its listener moved, or a quorum of one from single-node mode now has a
    /// CONTROLLER listener), the node updates its own entry, as a Kafka voter sends
    /// UpdateRaftVoter at start-up.
    pub fn start_dynamic(
        node_id: QuorumNodeId,
        me: Option<VoterEndpoint>,
        initial_voters: std::collections::BTreeMap<QuorumNodeId, VoterEndpoint>,
        dir: &Path,
        listener: std::net::TcpListener,
        options: QuorumNodeOptions,
    ) -> Result<QuorumService, QuorumStartError> {
        let runtime = quorum_runtime()?;
        let dir = dir.to_path_buf();
        let node = run_on(runtime.handle(), async move {
            let storage = |source| QuorumStartError::Storage {
                dir: dir.clone(),
                source,
            };
            listener.set_nonblocking(true).map_err(storage)?;
            let listener = tokio::net::TcpListener::from_std(listener).map_err(storage)?;
            QuorumNode::start_dynamic(node_id, initial_voters, &dir, listener, options).await
        })
        .unwrap_or_else(|| {
            Err(QuorumStartError::Raft {
                reason: "the metadata runtime stopped during start-up".into(),
            })
        })?;
        let node = Arc::new(node);
        if let Some(me) = me {
            runtime.spawn(keep_own_endpoint(Arc::downgrade(&node), node_id, me));
        }
        Ok(QuorumService {
            node_id,
            node,
            runtime: Some(runtime),
        })
    }

    /// Runs a voter change on the leader (here or forwarded) and blocks for its outcome.
    pub fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError> {
        let node = Arc::clone(&self.node);
        run_on(
            self.handle(),
            async move { node.change_voters(change).await },
        )
        .unwrap_or(Err(VoterChangeError::NotLeader { leader: None }))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the service")
            .handle()
    }

    /// This node's id in the quorum.
    pub fn node_id(&self) -> QuorumNodeId {
        self.node_id
    }

    /// The CONTROLLER listener's address (`None` for a quorum of one).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.node.local_addr()
    }

    /// Proposes `records` as one batch and blocks until it is committed and applied here.
    pub fn propose(&self, records: Vec<MetadataRecord>) -> Result<MetadataOffset, QuorumError> {
        let node = Arc::clone(&self.node);
        run_on(self.handle(), async move { node.propose(records).await }).unwrap_or_else(|| {
            Err(QuorumError::Stopped {
                reason: "the metadata runtime stopped".into(),
            })
        })
    }

    /// On the leader, blocks until everything committed before is applied here (see
    /// [`super::raft::OpenraftQuorum::catch_up_as_leader`]).
    pub fn catch_up_as_leader(&self) -> Result<(), QuorumError> {
        let node = Arc::clone(&self.node);
        run_on(self.handle(), async move {
            node.quorum().catch_up_as_leader().await
        })
        .unwrap_or_else(|| {
            Err(QuorumError::Stopped {
                reason: "the metadata runtime stopped".into(),
            })
        })
    }

    /// Blocks until this node knows a leader (or `timeout` passes); returns what it knows.
    pub fn wait_for_leader(&self, timeout: Duration) -> LeaderAndEpoch {
        let start = Instant::now();
        loop {
            let known = self.leader();
            if known.leader.is_some() || start.elapsed() >= timeout {
                return known;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn leader(&self) -> LeaderAndEpoch {
        self.node.leader()
    }

    /// Whether this node leads the quorum now (the active controller).
    pub fn is_leader(&self) -> bool {
        self.leader().leader == Some(self.node_id)
    }

    pub fn image(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>) {
        self.node.image()
    }

    /// The applied offset and image as they change.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.node.quorum().subscribe()
    }

    /// Plugs in the controller that serves operations other nodes forward here.
    pub fn set_controller(&self, handler: Arc<dyn ControllerHandler>) {
        self.node.set_controller(handler);
    }

    /// Sends `op` to node `to`'s controller and blocks for its answer.
    pub fn forward(
        &self,
        to: QuorumNodeId,
        op: ControllerOp,
    ) -> Result<ControllerAnswer, TransportError> {
        let node = Arc::clone(&self.node);
        run_on(self.handle(), async move { node.forward(to, op).await })
            .unwrap_or(Err(TransportError::Unreachable { target: to }))
    }

    /// The quorum's replication state if this node leads it.
    pub fn describe(&self) -> Option<super::QuorumDescription> {
        self.node.quorum().describe()
    }

    /// Why the Raft core stopped, if it did.
    pub fn fatal(&self) -> Option<String> {
        self.node.quorum().fatal()
    }

    /// Stops the node (listener, connections, Raft) and waits for it.
    pub fn shutdown(&self) {
        let node = Arc::clone(&self.node);
        let _ = run_on(self.handle(), async move { node.shutdown().await });
    }
}

/// How long a voter keeps trying to correct its own entry in the voter set (a quorum may take
/// a while to form at start-up).
const OWN_ENDPOINT_ATTEMPTS: u32 = 120;

/// Once this node is a voter, makes its entry in the log's voter set match `me` (UpdateRaftVoter
/// to the leader, here or forwarded). Gives up quietly if it never becomes a voter in time
/// (an added controller gets its entry from AddRaftVoter anyway).
async fn keep_own_endpoint(
    node: std::sync::Weak<QuorumNode>,
    node_id: QuorumNodeId,
    me: VoterEndpoint,
) {
    for _ in 0..OWN_ENDPOINT_ATTEMPTS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(node) = node.upgrade() else { return };
        let stored = {
            let metrics = node.quorum().raft().metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let is_voter = membership.voter_ids().any(|v| v == node_id);
            is_voter.then(|| membership.get_node(&node_id).cloned().unwrap_or_default())
        };
        let Some(stored) = stored else { continue };
        if stored.addr == me.addr
            && (me.directory_id.is_none() || stored.directory_id == me.directory_id)
        {
            return;
        }
        let update = VoterChange::Update {
            node_id,
            directory_id: me.directory_id.clone(),
            endpoint: me.addr.clone(),
        };
        match node.change_voters(update).await {
            Ok(()) => {
                tracing::info!(node_id, endpoint = %me, was = %stored, "updated this voter's endpoint in the voter set");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "updating this voter's endpoint; will retry"),
        }
    }
}

impl Drop for QuorumService {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so it is safe inside another runtime's worker.
            runtime.shutdown_background();
        }
    }
}
