//! A broker-only node's view of the metadata (`process.roles=broker`): an observer, as in
//! KRaft, that is not a voter. It long-polls the voters for the committed image
//! ([`QuorumRpc::FetchMetadata`]), learns the active controller from their answers, and
//! forwards controller operations to it, all over the voters' CONTROLLER listeners.
//!
//! It fetches the committed entries after its applied offset (as KRaft observers fetch the
//! metadata log) and replays them into its image, publishing the image with the delta they
//! made; a voter that no longer holds those entries answers with its whole image instead
//! (KRaft's snapshot fallback), which the observer publishes for a full resync.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::raft::QuorumStartError;
use super::service::{quorum_runtime, run_on, MetadataNode};
use super::state_machine::Applied;
use super::tcp_transport::{TcpTransport, TcpTransportConfig};
use super::transport::{MetadataUpdate, QuorumReply, QuorumRpc, QuorumTransport, TransportError};
use super::{LeaderAndEpoch, MetadataOffset, QuorumNodeId, VoterChange, VoterChangeError};
use crate::broker_config::QuorumVoter;
use crate::controller::{ControllerAnswer, ControllerOp};
use crate::delta::Touched;
use crate::image::MetadataImage;

/// How long a voter holds a fetch open when nothing new was committed.
const FETCH_WAIT_MS: u32 = 1000;

/// The observer: a fetch loop on a small runtime of its own, and what it learned.
pub struct MetadataObserver {
    node_id: QuorumNodeId,
    transport: Arc<TcpTransport>,
    applied: watch::Sender<Applied>,
    leader: Arc<Mutex<LeaderAndEpoch>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for MetadataObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataObserver")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Ids the observer gives the addresses of `controller.quorum.bootstrap.servers` until it
/// learns the voters' real ids: counted down from the top of the id space, which no
/// `node.id` (an i32) reaches.
const BOOTSTRAP_ID_BASE: QuorumNodeId = u64::MAX;

impl MetadataObserver {
    /// Starts following the quorum of `voters` as node `node_id`.
    pub fn start(
        node_id: QuorumNodeId,
        voters: &[QuorumVoter],
        transport: TcpTransportConfig,
    ) -> Result<MetadataObserver, QuorumStartError> {
        let addrs = super::node::voter_addrs(voters)?;
        if addrs.contains_key(&node_id) {
            return Err(QuorumStartError::Voters {
                reason: format!(
                    "node {node_id} is a voter but process.roles has no controller role"
                ),
            });
        }
        Self::start_with(node_id, addrs, transport)
    }

    /// Starts following a dynamic quorum (KIP-853) found through
    /// `controller.quorum.bootstrap.servers` (`host:port` of some controllers): any of them
    /// answers with the leader and every member's endpoint, which the observer then uses.
    pub fn start_bootstrap(
        node_id: QuorumNodeId,
        bootstrap_servers: &[String],
        transport: TcpTransportConfig,
    ) -> Result<MetadataObserver, QuorumStartError> {
        if bootstrap_servers.is_empty() {
            return Err(QuorumStartError::Voters {
                reason: "controller.quorum.bootstrap.servers is empty".into(),
            });
        }
        let addrs = bootstrap_servers
            .iter()
            .enumerate()
            .map(|(i, addr)| (BOOTSTRAP_ID_BASE - i as u64, addr.clone()))
            .collect();
        Self::start_with(node_id, addrs, transport)
    }

    fn start_with(
        node_id: QuorumNodeId,
        addrs: std::collections::BTreeMap<QuorumNodeId, String>,
        transport: TcpTransportConfig,
    ) -> Result<MetadataObserver, QuorumStartError> {
        let targets: Vec<QuorumNodeId> = addrs.keys().copied().collect();
        let transport = Arc::new(TcpTransport::new(addrs, transport));
        let (applied, _) = watch::channel(Applied::whole(None, Arc::new(MetadataImage::empty())));
        let leader = Arc::new(Mutex::new(LeaderAndEpoch {
            leader: None,
            epoch: 0,
        }));
        let runtime = quorum_runtime()?;
        runtime.spawn(fetch_loop(
            node_id,
            targets,
            Arc::clone(&transport),
            applied.clone(),
            Arc::clone(&leader),
        ));
        Ok(MetadataObserver {
            node_id,
            transport,
            applied,
            leader,
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the observer")
            .handle()
    }
}

/// Fetches from the leader when known, else from each known voter (and bootstrap server) in
/// turn; never gives up. Members' endpoints from the answers extend the list.
async fn fetch_loop(
    node_id: QuorumNodeId,
    initial: Vec<QuorumNodeId>,
    transport: Arc<TcpTransport>,
    applied: watch::Sender<Applied>,
    leader: Arc<Mutex<LeaderAndEpoch>>,
) {
    let mut targets = initial.clone();
    let mut next = 0;
    // Ask for the whole image (wire kind 5) next: after a failed entries fetch (a voter of an
    // earlier build closes the connection on kind 7), or after an answer that did not follow
    // on from this node's offset.
    let mut whole_next = false;
    // Whether the last answer that moved this node carried entries (for the log).
    let mut following_entries = false;
    loop {
        let known = leader.lock().leader;
        let target = match known {
            Some(l) => l,
            None => {
                next = (next + 1) % targets.len();
                targets[next]
            }
        };
        let after = applied.borrow().offset;
        let rpc = QuorumRpc::FetchMetadata {
            after,
            max_wait_ms: FETCH_WAIT_MS,
            entries: !whole_next,
        };
        let asked_whole = whole_next;
        match transport.send(node_id, target, rpc).await {
            Ok(QuorumReply::Metadata(update)) => {
                whole_next = false;
                if !update.members.is_empty() {
                    for (id, addr) in &update.members {
                        transport.set_peer(*id, addr);
                    }
                    targets = update.members.keys().copied().collect();
                    targets.extend(initial.iter().filter(|id| !update.members.contains_key(id)));
                }
                {
                    let mut l = leader.lock();
                    if update.epoch >= l.epoch {
                        *l = LeaderAndEpoch {
                            leader: update.leader,
                            epoch: update.epoch,
                        };
                    }
                }
                let current = applied.borrow().clone();
                match apply_update(&current, &update) {
                    Ok(Some(next)) => {
                        let as_entries = !update.entries.is_empty();
                        if as_entries != following_entries {
                            following_entries = as_entries;
                            if as_entries {
                                tracing::info!(target, offset = ?next.offset, "following committed metadata entries");
                            }
                        }
                        if !as_entries {
                            tracing::info!(target, offset = ?next.offset, asked_whole, "received the whole metadata image");
                        }
                        applied.send_replace(next);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(target, error = %e, "metadata entries do not follow this node's offset; fetching the image");
                        whole_next = true;
                    }
                }
                if update.leader.is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(_) | Err(_) => {
                // The target is down or no longer leads: forget it and try the others.
                whole_next = !asked_whole;
                leader.lock().leader = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What an observer's state becomes after a fetch answer: `Ok(Some)` when it moved (the
/// entries replayed, with their delta from the current offset; or a whole image, with no
/// delta), `Ok(None)` when the answer holds nothing newer, `Err` when its entries do not follow
/// on from the current offset (the observer then asks for the image).
pub fn apply_update(current: &Applied, update: &MetadataUpdate) -> Result<Option<Applied>, String> {
    if let Some(first) = update.entries.first() {
        let expected = current.offset.map_or(0, |o| o + 1);
        if first.offset != expected {
            return Err(format!(
                "entries start at offset {}, this node needs {expected}",
                first.offset
            ));
        }
        if update
            .entries
            .windows(2)
            .any(|w| w[0].offset + 1 != w[1].offset)
        {
            return Err("entries with a gap".into());
        }
        let last = update.entries.last().map(|e| e.offset);
        let mut touched = Touched::default();
        let records = update.entries.iter().flat_map(|e| e.records.iter());
        let image = current.image.apply_tracked(records, &mut touched);
        let delta = touched.finish(&current.image, &image);
        return Ok(Some(Applied {
            offset: last,
            image: Arc::new(image),
            delta: Some(Arc::new(delta)),
            base: current.offset,
        }));
    }
    match &update.image {
        Some(image) if update.offset.is_some() && update.offset > current.offset => {
            Ok(Some(Applied::whole(update.offset, Arc::clone(image))))
        }
        _ => Ok(None),
    }
}

impl MetadataNode for MetadataObserver {
    fn node_id(&self) -> QuorumNodeId {
        self.node_id
    }

    fn leader(&self) -> LeaderAndEpoch {
        *self.leader.lock()
    }

    fn image(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>) {
        self.applied.borrow().pair()
    }

    fn applied(&self) -> Applied {
        self.applied.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    fn forward(
        &self,
        to: QuorumNodeId,
        op: ControllerOp,
    ) -> Result<ControllerAnswer, TransportError> {
        let transport = Arc::clone(&self.transport);
        let from = self.node_id;
        run_on(self.handle(), async move {
            match transport.send(from, to, QuorumRpc::Controller(op)).await? {
                QuorumReply::Controller(answer) => Ok(answer),
                _ => Err(TransportError::Remote {
                    target: to,
                    reason: "reply of the wrong kind".into(),
                }),
            }
        })
        .unwrap_or(Err(TransportError::Unreachable { target: to }))
    }

    fn fatal(&self) -> Option<String> {
        None
    }

    fn is_voter(&self) -> bool {
        false
    }

    fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError> {
        let Some(to) = self.leader.lock().leader else {
            return Err(VoterChangeError::NotLeader { leader: None });
        };
        let transport = Arc::clone(&self.transport);
        let from = self.node_id;
        run_on(self.handle(), async move {
            let sent = transport
                .send(from, to, QuorumRpc::ChangeVoters(change))
                .await;
            super::node::voters_changed(to, sent)
        })
        .unwrap_or(Err(VoterChangeError::NotLeader { leader: Some(to) }))
    }

    fn shutdown(&self) {}
}

impl Drop for MetadataObserver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
