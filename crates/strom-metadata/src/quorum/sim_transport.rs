//! An in-memory [`QuorumTransport`] for tests and the deterministic simulation: every message is
//! delayed, dropped, duplicated or cut off by a partition as a seeded generator decides, with
//! delays on tokio's clock (paused in a simulation). No sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use openraft::Raft;

use std::sync::Arc;

use super::raft::{MetadataRaftConfig, OpenraftQuorum};
use super::recent::RecentEntries;
use super::runtime::SplitMix64;
use super::state_machine::Applied;
use super::transport::{
    serve, ControllerSlot, QuorumReply, QuorumRpc, QuorumTransport, Receiver, TransportError,
};
use super::QuorumNodeId;

/// How unreliable the simulated network is. Probabilities are per mille, per message leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkFaults {
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    /// Each leg (request, reply) takes 0..=max_delay_ms.
    pub max_delay_ms: u64,
}

impl NetworkFaults {
    /// A network that delivers everything after 1 ms.
    pub const RELIABLE: NetworkFaults = NetworkFaults {
        drop_per_mille: 0,
        duplicate_per_mille: 0,
        max_delay_ms: 1,
    };
}

/// What a node serves: its Raft node and, for observers' fetches, what it applied.
type Served = (
    Raft<MetadataRaftConfig>,
    Option<tokio::sync::watch::Receiver<Applied>>,
    Option<Arc<RecentEntries>>,
);

struct SimNet {
    nodes: BTreeMap<QuorumNodeId, Served>,
    /// Directed links that deliver nothing (a partition).
    cut: BTreeSet<(QuorumNodeId, QuorumNodeId)>,
    faults: NetworkFaults,
    rng: SplitMix64,
}

/// The simulated network shared by all nodes of one simulation.
pub struct SimTransport {
    net: Mutex<SimNet>,
}

impl std::fmt::Debug for SimTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTransport").finish_non_exhaustive()
    }
}

impl SimTransport {
    pub fn new(seed: u64) -> SimTransport {
        SimTransport {
            net: Mutex::new(SimNet {
                nodes: BTreeMap::new(),
                cut: BTreeSet::new(),
                faults: NetworkFaults::RELIABLE,
                rng: SplitMix64(seed),
            }),
        }
    }

    fn net(&self) -> std::sync::MutexGuard<'_, SimNet> {
        self.net.lock().expect("sim network mutex poisoned")
    }

    /// Makes `node` reachable (started or restarted).
    pub fn register(&self, node: QuorumNodeId, raft: Raft<MetadataRaftConfig>) {
        self.net().nodes.insert(node, (raft, None, None));
    }

    /// Makes `node` reachable, also serving observers' metadata fetches from what it applied.
    pub fn register_serving(&self, node: QuorumNodeId, quorum: &OpenraftQuorum) {
        let served = (
            quorum.raft().clone(),
            Some(quorum.subscribe()),
            Some(quorum.recent()),
        );
        self.net().nodes.insert(node, served);
    }

    /// Makes `node` unreachable (crashed).
    pub fn unregister(&self, node: QuorumNodeId) {
        self.net().nodes.remove(&node);
    }

    pub fn set_faults(&self, faults: NetworkFaults) {
        self.net().faults = faults;
    }

    /// Cuts every link between `side` and the other nodes of `all`, both ways.
    pub fn partition(&self, side: &BTreeSet<QuorumNodeId>, all: &BTreeSet<QuorumNodeId>) {
        let mut net = self.net();
        for a in side {
            for b in all.difference(side) {
                net.cut.insert((*a, *b));
                net.cut.insert((*b, *a));
            }
        }
    }

    /// Cuts the links from `side` to the other nodes of `all` only: `side` still hears them
    /// (an asymmetric partition, such as a half-broken NIC or firewall rule).
    pub fn partition_one_way(&self, side: &BTreeSet<QuorumNodeId>, all: &BTreeSet<QuorumNodeId>) {
        let mut net = self.net();
        for a in side {
            for b in all.difference(side) {
                net.cut.insert((*a, *b));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.net().cut.clear();
    }

    /// Decides one leg: `None` if lost, else its delay and whether it is duplicated.
    fn leg(&self, from: QuorumNodeId, to: QuorumNodeId) -> Option<(Duration, bool)> {
        let mut net = self.net();
        let f = net.faults;
        let roll = net.rng.next_u64() % 1000;
        let delay = Duration::from_millis(net.rng.next_u64() % (f.max_delay_ms + 1));
        let dup = net.rng.next_u64() % 1000 < f.duplicate_per_mille;
        if net.cut.contains(&(from, to)) || roll < f.drop_per_mille {
            return None;
        }
        Some((delay, dup))
    }
}

impl QuorumTransport for SimTransport {
    async fn send(
        &self,
        from: QuorumNodeId,
        to: QuorumNodeId,
        rpc: QuorumRpc,
    ) -> Result<QuorumReply, TransportError> {
        let unreachable = TransportError::Unreachable { target: to };
        let Some((delay, duplicate)) = self.leg(from, to) else {
            // A lost message: the sender learns nothing until it gives up.
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Err(unreachable);
        };
        tokio::time::sleep(delay).await;
        let Some((raft, applied, recent)) = self.net().nodes.get(&to).cloned() else {
            return Err(unreachable);
        };
        // The simulation has no controllers: forwarded operations are answered NOT_CONTROLLER.
        let receiver = Receiver {
            raft,
            controller: ControllerSlot::default(),
            applied,
            recent,
        };
        if duplicate {
            // The receiver sees the message twice; the sender gets the second answer.
            let _ = serve(&receiver, rpc.clone()).await;
        }
        let reply = serve(&receiver, rpc)
            .await
            .map_err(|reason| TransportError::Remote { target: to, reason })?;
        let Some((delay, _)) = self.leg(to, from) else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Err(unreachable);
        };
        tokio::time::sleep(delay).await;
        Ok(reply)
    }
}
