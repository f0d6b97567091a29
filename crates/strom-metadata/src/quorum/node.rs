//! A controller's quorum node over TCP, started from Kafka's KRaft settings (`node.id`,
//! `controller.quorum.voters`, `metadata.log.dir`, the bound CONTROLLER listener). Not called by
//! the broker yet: `strom server` still runs the single-node controller.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::raft::{OpenraftQuorum, QuorumStartError, VoterEndpoint};
use super::tcp_transport::{serve_tcp, TcpTransport, TcpTransportConfig};
use super::transport::{
    ControllerSlot, QuorumReply, QuorumRpc, QuorumTransport, Receiver, TransportError,
};
use super::{
    LeaderAndEpoch, MetadataOffset, MetadataPublisher, MetadataQuorum, NoPublisher, QuorumError,
    QuorumNodeId, VoterChange, VoterChangeError,
};
use crate::broker_config::QuorumVoter;
use crate::controller::{ControllerAnswer, ControllerHandler, ControllerOp};
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// How a [`QuorumNode`] runs: Raft timing, transport limits, who hears the committed log.
#[derive(Clone)]
pub struct QuorumNodeOptions {
    pub raft: Config,
    pub transport: TcpTransportConfig,
    pub publisher: Arc<dyn MetadataPublisher>,
}

impl std::fmt::Debug for QuorumNodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumNodeOptions")
            .field("raft", &self.raft)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Default for QuorumNodeOptions {
    /// Timing close to KRaft's defaults. openraft 0.9 has a follower that heard a committed
    /// leader wait `leader_lease` (= `election_timeout_max`) plus a random election timeout
    /// before it campaigns, so with 500-1000 ms a stopped leader is replaced after 1.5-2 s, as
    /// with Kafka's `controller.quorum.fetch.timeout.ms=2000`. Heartbeats every 100 ms keep a
    /// live leader from looking dead on a busy machine.
    fn default() -> Self {
        QuorumNodeOptions {
            raft: Config {
                cluster_name: "strom-metadata".into(),
                heartbeat_interval: 100,
                election_timeout_min: 500,
                election_timeout_max: 1000,
                ..Config::default()
            },
            transport: TcpTransportConfig::default(),
            publisher: Arc::new(NoPublisher),
        }
    }
}

/// A running controller quorum node: its Raft replica and the server on its listener.
pub struct QuorumNode {
    quorum: OpenraftQuorum,
    /// The CONTROLLER listener's address; `None` for a quorum of one with no listener.
    local_addr: Option<SocketAddr>,
    stop_server: parking_lot::Mutex<Option<oneshot::Sender<()>>>,
    server: parking_lot::Mutex<Option<JoinHandle<()>>>,
    /// How this node reaches the other voters (Raft, and forwarded controller operations).
    transport: Arc<TcpTransport>,
    /// Where the local controller plugs in to serve forwarded operations.
    controller: ControllerSlot,
}

impl std::fmt::Debug for QuorumNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumNode")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// The voters of `controller.quorum.voters` as node id -> `host:port`.
pub(crate) fn voter_addrs(
    voters: &[QuorumVoter],
) -> Result<BTreeMap<QuorumNodeId, String>, QuorumStartError> {
    let mut addrs = BTreeMap::new();
    for v in voters {
        let id = QuorumNodeId::try_from(v.node_id).map_err(|_| QuorumStartError::Voters {
            reason: format!("voter id {} is negative", v.node_id),
        })?;
        // The parsed host of `[::1]:9093` is `::1`: brackets go back on to dial it.
        let addr = if v.host.contains(':') {
            format!("[{}]:{}", v.host, v.port)
        } else {
            format!("{}:{}", v.host, v.port)
        };
        if addrs.insert(id, addr).is_some() {
            return Err(QuorumStartError::Voters {
                reason: format!("voter {id} is listed twice"),
            });
        }
    }
    Ok(addrs)
}

impl QuorumNode {
    /// Starts node `node_id` of the static quorum `voters` (`controller.quorum.voters`): opens
    /// or creates its log in `data_dir`, serves the other voters on `listener` (the bound
    /// CONTROLLER listener) and forms the quorum on first start. Every voter may call this at
    /// every start; a node with existing state rejoins with it.
    pub async fn start_tcp(
        node_id: QuorumNodeId,
        voters: &[QuorumVoter],
        data_dir: &Path,
        listener: TcpListener,
        options: QuorumNodeOptions,
    ) -> Result<QuorumNode, QuorumStartError> {
        let addrs = voter_addrs(voters)?;
        if !addrs.contains_key(&node_id) {
            return Err(QuorumStartError::Voters {
                reason: format!("node {node_id} is not among the voters {addrs:?}"),
            });
        }
        let members = addrs
            .into_iter()
            .map(|(id, addr)| (id, VoterEndpoint::new(addr)))
            .collect();
        Self::start_listening(node_id, members, data_dir, listener, options, true).await
    }

    /// Starts node `node_id` of a dynamic quorum (KIP-853, `controller.quorum.bootstrap.servers`)
    /// from what `strom storage format` wrote: on first start it forms the quorum of
    /// `initial_voters` (`--standalone` or `--initial-controllers`); with no initial voters
    /// (`--no-initial-controllers`) it waits, serving its listener, until the leader adds it
    /// (AddRaftVoter). Afterwards the voter set lives in the log, not in any configuration.
    pub async fn start_dynamic(
        node_id: QuorumNodeId,
        initial_voters: BTreeMap<QuorumNodeId, VoterEndpoint>,
        data_dir: &Path,
        listener: TcpListener,
        options: QuorumNodeOptions,
    ) -> Result<QuorumNode, QuorumStartError> {
        if !initial_voters.is_empty() && !initial_voters.contains_key(&node_id) {
            return Err(QuorumStartError::Voters {
                reason: format!(
                    "node {node_id} is not among the initial controllers it was formatted with"
                ),
            });
        }
        Self::start_listening(node_id, initial_voters, data_dir, listener, options, false).await
    }

    /// Opens the replica, serves `listener`, and forms the quorum of `members` unless this
    /// node already has state (or `members` is empty: it waits to be added). With
    /// `static_voters`, the members' addresses are this node's to keep (see
    /// [`TcpTransport::with_pinned_peers`]).
    async fn start_listening(
        node_id: QuorumNodeId,
        members: BTreeMap<QuorumNodeId, VoterEndpoint>,
        data_dir: &Path,
        listener: TcpListener,
        options: QuorumNodeOptions,
        static_voters: bool,
    ) -> Result<QuorumNode, QuorumStartError> {
        let local_addr = listener
            .local_addr()
            .map_err(|source| QuorumStartError::Storage {
                dir: data_dir.to_path_buf(),
                source,
            })?;
        let raft_config = options
            .raft
            .validate()
            .map_err(|e| QuorumStartError::Raft {
                reason: e.to_string(),
            })?;
        let peers: BTreeMap<_, _> = members
            .iter()
            .filter(|(id, _)| **id != node_id)
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let mut transport = TcpTransport::new(peers, options.transport.clone());
        if static_voters {
            transport = transport.with_pinned_peers();
        }
        let transport = Arc::new(transport);
        let quorum = OpenraftQuorum::open(
            node_id,
            data_dir,
            Arc::new(raft_config),
            Arc::clone(&transport),
            options.publisher,
        )
        .await?;
        let controller = ControllerSlot::default();
        let (stop_server, stopped) = oneshot::channel::<()>();
        let receiver = Receiver {
            raft: quorum.raft().clone(),
            controller: Arc::clone(&controller),
            applied: Some(quorum.subscribe()),
            recent: Some(quorum.recent()),
        };
        let server = tokio::spawn(serve_tcp(
            listener,
            receiver,
            options.transport,
            async move {
                let _ = stopped.await;
            },
        ));
        let node = QuorumNode {
            quorum,
            local_addr: Some(local_addr),
            stop_server: parking_lot::Mutex::new(Some(stop_server)),
            server: parking_lot::Mutex::new(Some(server)),
            transport,
            controller,
        };
        if members.is_empty() {
            tracing::info!(
                node_id,
                "metadata quorum: no initial voters; waiting to be added (AddRaftVoter)"
            );
            return Ok(node);
        }
        if let Err(e) = node.quorum.bootstrap(members).await {
            node.shutdown().await;
            return Err(QuorumStartError::Raft {
                reason: e.to_string(),
            });
        }
        Ok(node)
    }

    /// A quorum of one with no listener (single-node mode: `strom server` with no
    /// `controller.quorum.voters`). It elects itself at once instead of waiting out an election
    /// timeout, so start-up is not slowed down.
    pub async fn start_local(
        node_id: QuorumNodeId,
        data_dir: &Path,
        options: QuorumNodeOptions,
    ) -> Result<QuorumNode, QuorumStartError> {
        let raft_config = options
            .raft
            .validate()
            .map_err(|e| QuorumStartError::Raft {
                reason: e.to_string(),
            })?;
        let transport = Arc::new(TcpTransport::new(BTreeMap::new(), options.transport));
        let quorum = OpenraftQuorum::open(
            node_id,
            data_dir,
            Arc::new(raft_config),
            Arc::clone(&transport),
            options.publisher,
        )
        .await?;
        let node = QuorumNode {
            quorum,
            local_addr: None,
            stop_server: parking_lot::Mutex::new(None),
            server: parking_lot::Mutex::new(None),
            transport,
            controller: ControllerSlot::default(),
        };
        let members = [(node_id, VoterEndpoint::default())].into_iter().collect();
        let started = async {
            node.quorum.bootstrap(members).await?;
            node.quorum.elect_now().await
        };
        if let Err(e) = started.await {
            node.shutdown().await;
            return Err(QuorumStartError::Raft {
                reason: e.to_string(),
            });
        }
        Ok(node)
    }

    /// The address the CONTROLLER listener is bound to (`None` without a listener).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Plugs in the controller that serves operations forwarded to this node. Once only.
    pub fn set_controller(&self, handler: Arc<dyn ControllerHandler>) {
        if self.controller.set(handler).is_err() {
            tracing::warn!("a controller handler was already set; keeping the first");
        }
    }

    /// Sends `op` to the controller of node `to` (the active controller) and returns its
    /// answer.
    pub async fn forward(
        &self,
        to: QuorumNodeId,
        op: ControllerOp,
    ) -> Result<ControllerAnswer, TransportError> {
        self.learn_members();
        match self
            .transport
            .send(self.node_id(), to, QuorumRpc::Controller(op))
            .await?
        {
            QuorumReply::Controller(result) => Ok(result),
            _ => Err(TransportError::Remote {
                target: to,
                reason: "reply of the wrong kind".into(),
            }),
        }
    }

    fn node_id(&self) -> QuorumNodeId {
        self.quorum.raft().metrics().borrow().id
    }

    /// Points the transport at every member's endpoint in the current membership, so a
    /// follower can reach a leader it never dialled (a dynamic quorum's members are known only
    /// from the log).
    fn learn_members(&self) {
        let metrics = self.quorum.raft().metrics();
        let m = metrics.borrow();
        for (id, node) in m.membership_config.membership().nodes() {
            if *id != m.id {
                self.transport.set_peer(*id, &node.addr);
            }
        }
    }

    /// Runs `change` on the quorum leader: here, or forwarded to it.
    pub async fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError> {
        let me = self.node_id();
        match self.quorum.leader().leader {
            Some(leader) if leader == me => self.quorum.change_voters(change).await,
            Some(leader) => {
                self.learn_members();
                let sent = self
                    .transport
                    .send(me, leader, QuorumRpc::ChangeVoters(change))
                    .await;
                voters_changed(leader, sent)
            }
            None => Err(VoterChangeError::NotLeader { leader: None }),
        }
    }

    /// The Raft replica (for metrics and tests).
    pub fn quorum(&self) -> &OpenraftQuorum {
        &self.quorum
    }

    /// Closes the listener and every connection, then stops the Raft node.
    pub async fn shutdown(&self) {
        /// The server stops at its next poll; this only bounds a wedged task.
        const SERVER_STOP_WAIT: Duration = Duration::from_secs(5);
        if let Some(stop) = self.stop_server.lock().take() {
            let _ = stop.send(());
        }
        let server = self.server.lock().take();
        if let Some(mut server) = server {
            if tokio::time::timeout(SERVER_STOP_WAIT, &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        self.quorum.shutdown().await;
    }
}

/// The outcome of a voter change sent to the leader `leader`.
pub(crate) fn voters_changed(
    leader: QuorumNodeId,
    sent: Result<QuorumReply, TransportError>,
) -> Result<(), VoterChangeError> {
    match sent {
        Ok(QuorumReply::VotersChanged(result)) => result,
        Ok(_) | Err(TransportError::Unreachable { .. }) | Err(TransportError::Remote { .. }) => {
            Err(VoterChangeError::NotLeader {
                leader: Some(leader),
            })
        }
        Err(TransportError::Timeout { after, .. }) => Err(VoterChangeError::TimedOut {
            reason: format!("the quorum leader {leader} did not answer within {after:?}"),
        }),
    }
}

impl Drop for QuorumNode {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().take() {
            server.abort();
        }
    }
}

impl MetadataQuorum for QuorumNode {
    async fn propose(&self, records: Vec<MetadataRecord>) -> Result<MetadataOffset, QuorumError> {
        self.quorum.propose(records).await
    }

    fn leader(&self) -> LeaderAndEpoch {
        self.quorum.leader()
    }

    fn image(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>) {
        self.quorum.image()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voter(node_id: i32, host: &str) -> QuorumVoter {
        QuorumVoter {
            node_id,
            host: host.into(),
            port: 9093,
        }
    }

    #[test]
    fn voters_become_dialable_addresses() {
        let addrs = voter_addrs(&[voter(1, "c1.example"), voter(2, "::1")]).unwrap();
        assert_eq!(addrs[&1], "c1.example:9093");
        assert_eq!(addrs[&2], "[::1]:9093");
    }

    #[test]
    fn negative_or_repeated_voter_ids_are_refused() {
        let err = voter_addrs(&[voter(-1, "h")]).unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        let err = voter_addrs(&[voter(1, "h"), voter(1, "h2")]).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
