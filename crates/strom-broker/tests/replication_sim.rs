//! A seeded, deterministic simulation of partition replication over the real code: three
//! replicas, each a real `Partition` over a real `PartitionLog`, a real `Controller` electing
//! leaders, fencing brokers and judging AlterPartition, and a simulated network between them
//! that delays and drops fetches, isolates nodes, and a scheduler that crashes and restarts
//! them (a process crash: what was written stays on disk) and moves a virtual clock.
//!
//! After every step it checks the invariants of issue 11:
//! - a leader's high watermark never goes back within its epoch;
//! - every ISR member's log equals the leader's below the high watermark;
//! - no acks=all write is ever lost: every acknowledged batch is in every ISR member's log,
//!   and in every eligible leader replica's (KIP-966), at its offset, byte for byte;
//! - the ELR and the ISR never overlap, and a partition with a leader has it in its ISR.
//!
//! Stops are crashes (an unclean shutdown: the restarted broker leaves every ELR) or, half the
//! time, controlled shutdowns (clean: it stays eligible). The topic has
//! `min.insync.replicas=2`, so a leader whose ISR is smaller holds its high watermark.
//!
//! Four brokers, the partition on three of them: now and then the controller reassigns it to
//! another three (in another order) or cancels the move in flight (KIP-455). A broker that
//! learns it is no longer a replica deletes its log, as a real one does; added back, it starts
//! empty. On top of the invariants above: the leader is always a replica, and after healing
//! every move has completed with its replicas all in sync.
//!
//! `REPLICATION_SIM_SEEDS` sets the number of seeds (default 1500); a failure prints its seed,
//! and `REPLICATION_SIM_SEED=<n>` replays that one (`REPLICATION_SIM_TRACE=1` prints the
//! partition's metadata after every step).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use strom_broker::partition::{Partition, Role};
use strom_metadata::{BrokerConfig, Controller, CreateTopicRequest};
use strom_protocol::record_batch::builder::build_batch;
use strom_protocol::record_batch::{BatchSplitter, RecordBatchHeader};
use strom_storage::{LogConfig, ManualClock, PartitionLog};
use uuid::Uuid;

const NODES: [i32; 4] = [1, 2, 3, 4];
/// The partition's replicas at creation; broker 4 joins through reassignments.
const INITIAL: [i32; 3] = [1, 2, 3];
const SESSION_TIMEOUT_MS: i64 = 3_000;
const LAG_MS: i64 = 2_000;
const MIN_ISR: usize = 2;

/// splitmix64: a tiny deterministic generator (no dependency, same stream on every machine).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A fetch in flight: sent by `follower` to `leader` in the follower's `epoch`.
struct InFlight {
    follower: i32,
    leader: i32,
    epoch: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
    /// Steps before it is delivered.
    delay: u32,
}

struct Node {
    dir: PathBuf,
    partition: Option<Arc<Partition>>,
    isolated: bool,
    /// One fetch at a time per follower, as on one connection.
    fetching: bool,
    /// The last stop was a controlled shutdown (the next start registers as clean).
    stopped_cleanly: bool,
    /// It knows itself a replica (a broker that learns it is not deletes its log).
    hosting: bool,
}

/// An AlterPartition in flight from a leader to the controller: while it travels the leader
/// keeps appending and acknowledging, and the change commits (or is refused) later.
struct IsrRequest {
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
    /// Steps before it is delivered.
    delay: u32,
}

/// An acks=all append waiting for the ISR.
struct Pending {
    leader: i32,
    epoch: i32,
    required: i64,
    base_offset: i64,
    bytes: Vec<u8>,
}

struct Sim {
    rng: Rng,
    now: i64,
    clock: Arc<ManualClock>,
    controller: Controller,
    topic_id: Uuid,
    nodes: HashMap<i32, Node>,
    network: Vec<InFlight>,
    isr_requests: Vec<IsrRequest>,
    pending: Vec<Pending>,
    /// Acknowledged batches: (base offset, bytes as stored, less the partition leader epoch
    /// and base offset fields which the leader sets).
    acked: Vec<(i64, Vec<u8>)>,
    /// (node, epoch) -> highest high watermark seen while it led in that epoch.
    hw_seen: HashMap<(i32, i32), i64>,
    next_value: u64,
    /// The (leader, ELR) the last check saw, and how many leaders came from an ELR.
    last_seen: (i32, Vec<i32>),
    elr_elections: usize,
    /// Reassignments started, and seen completed.
    moves_started: usize,
    moves_completed: usize,
    was_reassigning: bool,
    _tmp: tempfile::TempDir,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        // On tmpfs where there is one: the simulation fsyncs a lot and needs none of it.
        let shm = std::path::Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let meta = tmp.path().join("controller");
        let text = format!("log.dirs={}\nnode.id=1\n", meta.display());
        let config = BrokerConfig::parse(&text, &[]).unwrap().0;
        let mut controller = Controller::open(&meta, &config).unwrap();
        for id in NODES {
            controller
                .register_broker(id, "127.0.0.1", 9000 + id as u16, None)
                .unwrap();
        }
        let created = controller
            .create_topics(
                vec![CreateTopicRequest {
                    name: "t".into(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: vec![(0, INITIAL.to_vec())],
                    configs: vec![("min.insync.replicas".into(), Some(MIN_ISR.to_string()))],
                }],
                false,
            )
            .pop()
            .unwrap()
            .unwrap();
        let topic_id = created.topic_id;
        let clock = Arc::new(ManualClock::new(0));
        let mut nodes = HashMap::new();
        for id in NODES {
            let dir = tmp.path().join(format!("node-{id}"));
            nodes.insert(
                id,
                Node {
                    dir,
                    partition: None,
                    isolated: false,
                    fetching: false,
                    stopped_cleanly: false,
                    hosting: false,
                },
            );
        }
        let mut sim = Sim {
            rng: Rng(seed),
            now: 0,
            clock,
            controller,
            topic_id,
            nodes,
            network: Vec::new(),
            isr_requests: Vec::new(),
            pending: Vec::new(),
            acked: Vec::new(),
            hw_seen: HashMap::new(),
            next_value: 0,
            last_seen: (-1, Vec::new()),
            elr_elections: 0,
            moves_started: 0,
            moves_completed: 0,
            was_reassigning: false,
            _tmp: tmp,
        };
        for id in NODES {
            sim.start(id);
        }
        sim
    }

    fn role(&self) -> Role {
        let image = self.controller.image();
        Role::of(
            &image.topic_by_id(self.topic_id).unwrap().partitions[&0],
            MIN_ISR as i32,
        )
    }

    fn eligible_leader_replicas(&self) -> Vec<i32> {
        let image = self.controller.image();
        image.topic_by_id(self.topic_id).unwrap().partitions[&0]
            .eligible_leader_replicas
            .clone()
    }

    fn start(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        let log =
            PartitionLog::open(node.dir.clone(), LogConfig::default(), self.clock.clone()).unwrap();
        let partition = Arc::new(Partition::new("t".into(), self.topic_id, 0, log, id, 0));
        node.partition = Some(partition);
        node.fetching = false;
        node.hosting = false;
        let clean = std::mem::take(&mut node.stopped_cleanly);
        // A restarted broker registers a new incarnation (its leaderships move, it leaves the
        // ISRs, and every ELR unless it stopped cleanly) and reads the metadata.
        self.controller
            .register_broker_incarnation(id, "127.0.0.1", 9000 + id as u16, None, &[], clean)
            .unwrap();
        self.learn_metadata(id);
    }

    fn learn_metadata(&mut self, id: i32) {
        let role = self.role();
        let Some(p) = self.nodes[&id].partition.clone() else {
            return;
        };
        if !role.replicas.contains(&id) {
            // Reassigned away: the log is deleted (a broker not hosting has nothing).
            if self.nodes[&id].hosting || p.log.log_end_offset() > 0 {
                let dir = self.nodes[&id].dir.clone();
                p.log.delete().unwrap();
                let log =
                    PartitionLog::open(dir, LogConfig::default(), self.clock.clone()).unwrap();
                let fresh = Arc::new(Partition::new("t".into(), self.topic_id, 0, log, id, 0));
                let node = self.nodes.get_mut(&id).unwrap();
                node.partition = Some(fresh);
                node.hosting = false;
            }
            return;
        }
        self.nodes.get_mut(&id).unwrap().hosting = true;
        p.apply_role(role, self.now);
    }

    fn partition_image(&self) -> strom_metadata::PartitionImage {
        let image = self.controller.image();
        image.topic_by_id(self.topic_id).unwrap().partitions[&0].clone()
    }

    /// The controller moves the partition to three random brokers in random order, or
    /// cancels the move in flight.
    fn reassign(&mut self) {
        let current = self.partition_image();
        let target = if current.is_reassigning() && self.rng.chance(30) {
            None
        } else {
            let mut all = NODES.to_vec();
            for i in (1..all.len()).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                all.swap(i, j);
            }
            all.truncate(INITIAL.len());
            Some(all)
        };
        let moving = target.is_some();
        let results = self
            .controller
            .alter_partition_reassignments(vec![(("t".into(), 0), target)])
            .unwrap();
        if results[0].1.is_ok() && moving {
            self.moves_started += 1;
        }
    }

    fn alive(&self, id: i32) -> Option<Arc<Partition>> {
        self.nodes[&id].partition.clone()
    }

    fn reachable(&self, a: i32, b: i32) -> bool {
        !self.nodes[&a].isolated && !self.nodes[&b].isolated
    }

    fn step(&mut self) {
        self.now += self.rng.below(150) as i64;
        self.clock.set(self.now);
        match self.rng.below(100) {
            0..=19 => self.produce(),
            20..=49 => self.send_fetch(),
            50..=79 => self.deliver(),
            80..=87 => {
                let id = NODES[self.rng.below(NODES.len() as u64) as usize];
                if !self.nodes[&id].isolated && self.alive(id).is_some() {
                    self.learn_metadata(id);
                }
            }
            88..=90 => self.check_isr(),
            91..=93 => self.deliver_isr_request(),
            94..=95 => {
                let id = NODES[self.rng.below(NODES.len() as u64) as usize];
                if self.alive(id).is_some() && self.alive_count() > 1 {
                    // Half the stops are controlled shutdowns (reaching the controller unless
                    // isolated; its log is closed either way, so the stop is clean).
                    let clean = self.rng.chance(50);
                    if clean && !self.nodes[&id].isolated {
                        self.controller.controlled_shutdown(id).unwrap();
                    }
                    let node = self.nodes.get_mut(&id).unwrap();
                    node.partition = None;
                    node.stopped_cleanly = clean;
                } else if self.alive(id).is_none() {
                    self.start(id);
                }
            }
            96..=97 => {
                let id = NODES[self.rng.below(NODES.len() as u64) as usize];
                let node = self.nodes.get_mut(&id).unwrap();
                node.isolated = !node.isolated;
            }
            98 => self.reassign(),
            _ => {}
        }
        self.heartbeats();
        self.complete_acks();
    }

    fn alive_count(&self) -> usize {
        NODES.iter().filter(|id| self.alive(**id).is_some()).count()
    }

    /// Live, reachable brokers heartbeat; the controller fences the silent ones.
    fn heartbeats(&mut self) {
        for id in NODES {
            if self.alive(id).is_some() && !self.nodes[&id].isolated && self.rng.chance(60) {
                let _ = self.controller.broker_heartbeat(id, self.now);
            }
        }
        self.controller
            .fence_stale_brokers(self.now, SESSION_TIMEOUT_MS)
            .unwrap();
    }

    /// A client sends one batch with acks=all to whoever leads by the controller's metadata.
    fn produce(&mut self) {
        let leader = self.role().leader;
        if leader < 0 || self.nodes[&leader].isolated {
            return;
        }
        let Some(p) = self.alive(leader) else { return };
        let Some(epoch) = p.leader_epoch_if_leader() else {
            return;
        };
        if p.role().isr.len() < MIN_ISR {
            return; // NOT_ENOUGH_REPLICAS
        }
        let value = format!("v{}", self.next_value);
        self.next_value += 1;
        let records = [(None, Some(value.as_bytes()), self.now)];
        let batch = build_batch(0, &records, None);
        let info = p.log.append(batch).unwrap();
        let stored = read_batch(&p, info.base_offset);
        self.pending.push(Pending {
            leader,
            epoch,
            required: info.last_offset + 1,
            base_offset: info.base_offset,
            bytes: stored,
        });
    }

    fn complete_acks(&mut self) {
        let mut still = Vec::new();
        for w in std::mem::take(&mut self.pending) {
            let Some(p) = self.alive(w.leader) else {
                continue; // the connection died with the leader: not acknowledged
            };
            if p.leader_epoch_if_leader() != Some(w.epoch) {
                continue; // NOT_LEADER_OR_FOLLOWER
            }
            if p.high_watermark() >= w.required {
                if p.role().isr.len() >= MIN_ISR {
                    self.acked.push((w.base_offset, w.bytes));
                }
                continue;
            }
            still.push(w);
        }
        self.pending = still;
    }

    fn send_fetch(&mut self) {
        let id = NODES[self.rng.below(NODES.len() as u64) as usize];
        let Some(p) = self.alive(id) else { return };
        let role = p.role();
        if role.leader == id
            || role.leader < 0
            || self.nodes[&id].fetching
            || !self.nodes[&id].hosting
        {
            return;
        }
        self.nodes.get_mut(&id).unwrap().fetching = true;
        let delay = self.rng.below(4) as u32;
        self.network.push(InFlight {
            follower: id,
            leader: role.leader,
            epoch: role.leader_epoch,
            fetch_offset: p.log.log_end_offset(),
            last_fetched_epoch: p.log.latest_epoch(),
            delay,
        });
    }

    /// Delivers (or loses) one fetch and its answer.
    fn deliver(&mut self) {
        if self.network.is_empty() {
            return;
        }
        let i = self.rng.below(self.network.len() as u64) as usize;
        if self.network[i].delay > 0 {
            self.network[i].delay -= 1;
            return;
        }
        let f = self.network.swap_remove(i);
        if let Some(node) = self.nodes.get_mut(&f.follower) {
            node.fetching = false;
        }
        let (Some(follower), Some(leader)) = (self.alive(f.follower), self.alive(f.leader)) else {
            return;
        };
        if !self.reachable(f.follower, f.leader) || self.rng.chance(5) {
            return; // lost
        }
        let lose_answer = self.rng.chance(5);
        self.exchange(&f, &follower, &leader, 4096, lose_answer);
    }

    /// The leader serves `f`; unless the answer is lost, the follower applies it.
    fn exchange(
        &self,
        f: &InFlight,
        follower: &Partition,
        leader: &Partition,
        max_bytes: usize,
        lose_answer: bool,
    ) {
        let answer = leader.serve_follower_fetch(
            f.follower,
            f.epoch,
            f.fetch_offset,
            f.last_fetched_epoch,
            max_bytes,
            true,
            self.now,
        );
        if lose_answer {
            return;
        }
        match answer {
            Ok(a) => {
                let records = a.slice.map(|s| s.read_to_bytes().unwrap());
                let _ = follower.apply_fetched(
                    f.epoch,
                    a.diverging,
                    records.as_deref(),
                    a.high_watermark,
                    a.log_start_offset,
                );
            }
            Err(strom_protocol::ErrorCode::OffsetOutOfRange) => {
                let _ = follower.realign_out_of_range(
                    f.epoch,
                    leader.high_watermark(),
                    leader.log.log_start_offset(),
                );
            }
            Err(_) => {}
        }
    }

    /// The leader asks the controller to change its ISR, if it is due; the request travels.
    fn check_isr(&mut self) {
        for id in NODES {
            let Some(p) = self.alive(id) else { continue };
            if self.nodes[&id].isolated {
                continue;
            }
            if let Some((role, isr)) = p.isr_change_due(self.now, LAG_MS) {
                let delay = self.rng.below(4) as u32;
                self.isr_requests.push(IsrRequest {
                    leader: id,
                    leader_epoch: role.leader_epoch,
                    partition_epoch: role.partition_epoch,
                    isr,
                    delay,
                });
            }
        }
    }

    /// The controller judges one AlterPartition in flight (or it is lost); the leader hears
    /// the answer, or learns the outcome later from the metadata.
    fn deliver_isr_request(&mut self) {
        if self.isr_requests.is_empty() {
            return;
        }
        let i = self.rng.below(self.isr_requests.len() as u64) as usize;
        if self.isr_requests[i].delay > 0 {
            self.isr_requests[i].delay -= 1;
            return;
        }
        let r = self.isr_requests.swap_remove(i);
        if self.nodes[&r.leader].isolated || self.rng.chance(5) {
            return; // lost: the leader retries after a while
        }
        self.judge_isr_request(r);
    }

    fn judge_isr_request(&mut self, r: IsrRequest) {
        let result = self.controller.alter_partition(
            r.leader,
            self.topic_id,
            0,
            r.leader_epoch,
            r.partition_epoch,
            r.isr,
        );
        let Some(p) = self.alive(r.leader) else {
            return;
        };
        match result {
            Ok(_) => {
                if self.rng.chance(50) {
                    self.learn_metadata(r.leader);
                }
            }
            Err(_) => p.isr_change_failed(),
        }
    }

    /// Invariants after a step; `Err` says which broke.
    fn check(&mut self) -> Result<(), String> {
        let role = self.role();
        for id in NODES {
            let Some(p) = self.alive(id) else { continue };
            if let Some(epoch) = p.leader_epoch_if_leader() {
                let hw = p.high_watermark();
                let seen = self.hw_seen.entry((id, epoch)).or_insert(hw);
                if hw < *seen {
                    return Err(format!(
                        "node {id}'s high watermark went back from {seen} to {hw} in epoch {epoch}"
                    ));
                }
                *seen = hw;
            }
        }
        let elr = self.eligible_leader_replicas();
        if let Some(both) = elr.iter().find(|id| role.isr.contains(id)) {
            return Err(format!(
                "{both} is in both the ISR and the ELR: {role:?}, {elr:?}"
            ));
        }
        if role.leader >= 0 && !role.isr.contains(&role.leader) {
            return Err(format!("the leader is not in the ISR: {role:?}"));
        }
        if let Some(stray) = role.isr.iter().find(|r| !role.replicas.contains(r)) {
            return Err(format!("ISR member {stray} is not a replica: {role:?}"));
        }
        let p = self.partition_image();
        if std::env::var("REPLICATION_SIM_TRACE").is_ok() {
            eprintln!("{p:?}");
        }
        let target = p.target_replicas();
        if target.len() != INITIAL.len() || p.replicas.len() > NODES.len() {
            return Err(format!("a move changed the replication factor: {p:?}"));
        }
        if self.was_reassigning && !p.is_reassigning() {
            self.moves_completed += 1;
        }
        self.was_reassigning = p.is_reassigning();
        if role.leader >= 0
            && role.leader != self.last_seen.0
            && self.last_seen.1.contains(&role.leader)
        {
            self.elr_elections += 1;
        }
        self.last_seen = (role.leader, elr.clone());
        // Every acknowledged batch is on every ISR and ELR member (running or not: a crash
        // keeps what was written, so only running ones are read).
        for id in role.isr.iter().chain(&elr) {
            let Some(p) = self.alive(*id) else { continue };
            for (offset, bytes) in &self.acked {
                if *offset >= p.log.log_end_offset() {
                    return Err(format!(
                        "ISR/ELR member {id} lacks acknowledged offset {offset} (log end {})",
                        p.log.log_end_offset()
                    ));
                }
                let have = read_batch(&p, *offset);
                if !same_batch(&have, bytes) {
                    return Err(format!(
                        "ISR/ELR member {id} has another batch at acknowledged offset {offset}"
                    ));
                }
            }
        }
        // Below the leader's high watermark, every running ISR member equals the leader.
        if role.leader >= 0 {
            if let Some(leader) = self.alive(role.leader) {
                if leader.is_leader() {
                    let hw = leader.high_watermark();
                    for id in role.isr.iter().filter(|id| **id != role.leader) {
                        let Some(p) = self.alive(*id) else { continue };
                        let upto = hw.min(p.log.log_end_offset());
                        if log_bytes(&p, upto) != log_bytes(&leader, upto) {
                            return Err(format!(
                                "ISR member {id} differs from leader {} below {upto}",
                                role.leader
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Heals everything and lets replication settle: every replica restarts, reconnects and
    /// catches up, and the leader takes them all back into the ISR.
    fn heal(&mut self) {
        for id in NODES {
            self.nodes.get_mut(&id).unwrap().isolated = false;
            if self.alive(id).is_none() {
                self.start(id);
            }
        }
        for _ in 0..400 {
            self.now += 50;
            self.clock.set(self.now);
            for id in NODES {
                let _ = self.controller.broker_heartbeat(id, self.now);
                self.learn_metadata(id);
            }
            self.controller
                .fence_stale_brokers(self.now, SESSION_TIMEOUT_MS)
                .unwrap();
            self.network.clear();
            for id in NODES {
                self.nodes.get_mut(&id).unwrap().fetching = false;
            }
            for id in NODES {
                self.send_fetch_from(id);
            }
            while !self.network.is_empty() {
                self.network[0].delay = 0;
                let f = self.network.swap_remove(0);
                self.network.push(f);
                let before = self.network.len();
                self.deliver_reliably();
                assert!(self.network.len() < before);
            }
            self.check_isr();
            for r in std::mem::take(&mut self.isr_requests) {
                self.judge_isr_request(r);
            }
            for id in NODES {
                self.learn_metadata(id);
            }
            self.complete_acks();
        }
    }

    fn send_fetch_from(&mut self, id: i32) {
        let Some(p) = self.alive(id) else { return };
        let role = p.role();
        if role.leader == id || role.leader < 0 || !self.nodes[&id].hosting {
            return;
        }
        self.network.push(InFlight {
            follower: id,
            leader: role.leader,
            epoch: role.leader_epoch,
            fetch_offset: p.log.log_end_offset(),
            last_fetched_epoch: p.log.latest_epoch(),
            delay: 0,
        });
    }

    fn deliver_reliably(&mut self) {
        let f = self.network.pop().unwrap();
        let (Some(follower), Some(leader)) = (self.alive(f.follower), self.alive(f.leader)) else {
            return;
        };
        self.exchange(&f, &follower, &leader, 1 << 20, false);
    }
}

/// The stored batch at `offset` (the whole batch holding it).
fn read_batch(p: &Partition, offset: i64) -> Vec<u8> {
    let read = p.log.read(offset, 1, None).unwrap();
    let bytes = read.slice.unwrap().read_to_bytes().unwrap();
    let first = BatchSplitter::new(&bytes, usize::MAX)
        .next()
        .unwrap()
        .unwrap();
    first.to_vec()
}

/// Equal batches: the same bytes (a follower's copy is byte-identical to its leader's).
fn same_batch(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (
        RecordBatchHeader::parse(a).unwrap(),
        RecordBatchHeader::parse(b).unwrap(),
    );
    a == b && ha.base_offset() == hb.base_offset()
}

/// The log's bytes from its start up to `upto` (exclusive, whole batches).
fn log_bytes(p: &Partition, upto: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = p.log.log_start_offset();
    while at < upto {
        let read = p.log.read(at, 1 << 20, Some(upto)).unwrap();
        let Some(slice) = read.slice else { break };
        let bytes = slice.read_to_bytes().unwrap();
        let mut last = at;
        for b in BatchSplitter::new(&bytes, usize::MAX) {
            let h = RecordBatchHeader::parse(b.unwrap()).unwrap();
            last = h.last_offset();
        }
        out.extend_from_slice(&bytes);
        at = last + 1;
    }
    out
}

/// (acknowledged, sent, ELR elections, moves started, moves completed)
type Outcome = (usize, usize, usize, usize, usize);

fn run(seed: u64, steps: usize) -> Result<Outcome, String> {
    let mut sim = Sim::new(seed);
    for step in 0..steps {
        sim.step();
        sim.check()
            .map_err(|e| format!("seed {seed}, step {step}: {e}"))?;
    }
    sim.heal();
    sim.check()
        .map_err(|e| format!("seed {seed}, after healing: {e}"))?;
    let role = sim.role();
    if role.isr.len() != role.replicas.len() || sim.partition_image().is_reassigning() {
        let logs: Vec<_> = NODES
            .iter()
            .map(|id| {
                let p = sim.alive(*id).unwrap();
                (
                    *id,
                    p.log.log_end_offset(),
                    p.log.latest_epoch(),
                    p.high_watermark(),
                    p.role().leader_epoch,
                )
            })
            .collect();
        return Err(format!(
            "seed {seed}: the ISR did not heal: {role:?}, elr {:?}, logs (id, leo, epoch, hw, role epoch) {logs:?}",
            sim.eligible_leader_replicas()
        ));
    }
    Ok((
        sim.acked.len(),
        sim.next_value as usize,
        sim.elr_elections,
        sim.moves_started,
        sim.moves_completed,
    ))
}

#[test]
fn replication_keeps_every_acknowledged_write_under_crashes_losses_and_isolation() {
    if let Ok(seed) = std::env::var("REPLICATION_SIM_SEED") {
        let seed = seed.parse().expect("REPLICATION_SIM_SEED is a number");
        run(seed, 400).unwrap();
        return;
    }
    let seeds: u64 = std::env::var("REPLICATION_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let (mut acked, mut sent, mut elr_elections, mut started_moves, mut completed) =
        (0, 0, 0, 0, 0);
    let started = std::time::Instant::now();
    for seed in 0..seeds {
        let (a, s, e, m, c) = run(seed, 400).unwrap_or_else(|e| panic!("{e}"));
        acked += a;
        sent += s;
        elr_elections += e;
        started_moves += m;
        completed += c;
    }
    println!(
        "{seeds} seeds in {:?}: {acked} of {sent} batches acknowledged, none lost; {elr_elections} leaders elected from an ELR; {started_moves} reassignments started, {completed} completed",
        started.elapsed()
    );
    assert!(
        completed > 0,
        "no reassignment completed: the simulation does not exercise them"
    );
    assert!(
        acked > 0,
        "the simulation acknowledged nothing: it tests nothing"
    );
}
