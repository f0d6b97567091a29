//! Deterministic simulation of the metadata quorum (issue 10): 3 and 5 openraft nodes in one
//! process, on a current-thread tokio runtime with paused time, over the simulated transport.
//! A seeded generator drives proposals, message drops/delays/duplicates, partitions and node
//! crash/restart (a restart reopens the node's on-disk log, vote and snapshot). After every
//! step the invariants are checked; at the end the network heals and a proposal must commit.
//!
//! `QUORUM_SIM_SEEDS=N` runs N seeds per cluster size; `QUORUM_SIM_SEED=s` runs only seed s.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use openraft::{Config, ServerState, SnapshotPolicy};
use strom_metadata::quorum::observer::apply_update;
use strom_metadata::quorum::raft::{OpenraftQuorum, VoterEndpoint};
use strom_metadata::quorum::runtime::{seed_thread_rng, SplitMix64};
use strom_metadata::quorum::sim_transport::{NetworkFaults, SimTransport};
use strom_metadata::quorum::state_machine::Applied;
use strom_metadata::quorum::transport::{QuorumReply, QuorumRpc, QuorumTransport};
use strom_metadata::quorum::{
    CommittedBatch, LeaderEpoch, MetadataOffset, MetadataPublisher, MetadataQuorum, QuorumError,
};
use strom_metadata::{ConfigResource, MetadataImage, MetadataRecord};

const DEFAULT_SEEDS: u64 = 1000;
const STEPS: usize = 300;

thread_local! {
    /// The first panic on this thread: an openraft task (its own assertions) or ours. The
    /// runtime is current-thread, so every task of a simulation panics on the test's thread.
    static PANICKED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records panics so a panic inside a Raft task fails the seed at once, not as lost liveness.
fn install_panic_recorder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = format!("{info}");
            PANICKED.with(|p| {
                p.borrow_mut().get_or_insert(msg);
            });
            default(info);
        }));
    });
}

/// Everything the nodes reported, and the invariant violations found in it.
#[derive(Default)]
struct Checker {
    /// term -> the node seen leading it.
    leaders: BTreeMap<u64, u64>,
    /// offset -> (epoch, records) as first applied by any node.
    committed: BTreeMap<MetadataOffset, (LeaderEpoch, Vec<MetadataRecord>)>,
    /// offset -> image after it, as first applied by any node.
    images: BTreeMap<MetadataOffset, Arc<MetadataImage>>,
    /// offset -> records acknowledged to a proposer.
    acked: BTreeMap<MetadataOffset, Vec<MetadataRecord>>,
    /// Names of proposals answered NotLeader: they must never commit.
    rejected: BTreeSet<String>,
    violations: Vec<String>,
    /// FNV-1a over the event sequence: equal digests for equal runs.
    digest: u64,
    stats: Stats,
}

/// What a run exercised, to tell a weak simulation from a strong one.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    acked: usize,
    rejected: usize,
    snapshots_loaded: usize,
    crashes: usize,
    max_term: u64,
    committed: u64,
    /// Observer fetches answered with entries, and with the whole image (the fallback).
    observer_entries: usize,
    observer_images: usize,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.acked += o.acked;
        self.rejected += o.rejected;
        self.snapshots_loaded += o.snapshots_loaded;
        self.crashes += o.crashes;
        self.max_term = self.max_term.max(o.max_term);
        self.committed += o.committed;
        self.observer_entries += o.observer_entries;
        self.observer_images += o.observer_images;
    }
}

impl Checker {
    fn mix(&mut self, values: &[u64]) {
        for v in values {
            for b in v.to_le_bytes() {
                self.digest = (self.digest ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }

    fn image_at(&mut self, node: u64, offset: MetadataOffset, image: &Arc<MetadataImage>) {
        match self.images.get(&offset) {
            Some(seen) if **seen != **image => self.violations.push(format!(
                "node {node}: image at offset {offset} differs from another node's"
            )),
            Some(_) => {}
            None => {
                self.images.insert(offset, Arc::clone(image));
            }
        }
    }

    fn acknowledge(&mut self, offset: MetadataOffset, records: Vec<MetadataRecord>) {
        self.mix(&[3, offset]);
        match self.committed.get(&offset) {
            Some((_, applied)) if *applied == records => {}
            other => {
                let other = other.map(|(e, r)| (*e, r.len()));
                self.violations.push(format!(
                    "proposal acknowledged at offset {offset}, but that offset holds {other:?}"
                ))
            }
        }
        if self.acked.insert(offset, records).is_some() {
            self.violations
                .push(format!("two proposals acknowledged at offset {offset}"));
        }
    }
}

/// One incarnation of a node's publisher: checks its own order and feeds the checker.
struct SimPublisher {
    node: u64,
    last: Mutex<Option<MetadataOffset>>,
    checker: Arc<Mutex<Checker>>,
}

impl SimPublisher {
    fn advance(&self, c: &mut Checker, offset: MetadataOffset) {
        let mut last = self.last.lock().unwrap();
        if last.is_some_and(|l| l >= offset) {
            c.violations.push(format!(
                "node {}: offset {offset} published after {last:?}",
                self.node
            ));
        }
        *last = Some(offset);
    }
}

impl MetadataPublisher for SimPublisher {
    fn on_batch(&self, batch: CommittedBatch<'_>) {
        let mut c = self.checker.lock().unwrap();
        self.advance(&mut c, batch.offset);
        c.mix(&[1, self.node, batch.offset, batch.epoch]);
        match c.committed.get(&batch.offset) {
            Some((epoch, records))
                if (*epoch, records.as_slice()) != (batch.epoch, batch.records) =>
            {
                let msg = format!(
                    "node {}: committed entry at offset {} is (epoch {}, {} records), another node applied (epoch {epoch}, {} records)",
                    self.node, batch.offset, batch.epoch, batch.records.len(), records.len()
                );
                c.violations.push(msg);
            }
            Some(_) => {}
            None => {
                c.committed
                    .insert(batch.offset, (batch.epoch, batch.records.to_vec()));
            }
        }
        if let Some(acked) = c.acked.get(&batch.offset) {
            if acked.as_slice() != batch.records {
                let msg = format!(
                    "node {}: applied something else at acknowledged offset {}",
                    self.node, batch.offset
                );
                c.violations.push(msg);
            }
        }
        c.image_at(self.node, batch.offset, batch.image);
    }

    fn on_snapshot(&self, offset: MetadataOffset, epoch: LeaderEpoch, image: &Arc<MetadataImage>) {
        let mut c = self.checker.lock().unwrap();
        self.advance(&mut c, offset);
        c.mix(&[2, self.node, offset, epoch]);
        c.stats.snapshots_loaded += 1;
        c.image_at(self.node, offset, image);
    }
}

struct Sim {
    seed: u64,
    rng: SplitMix64,
    ids: BTreeSet<u64>,
    dirs: BTreeMap<u64, PathBuf>,
    nodes: BTreeMap<u64, Option<Arc<OpenraftQuorum>>>,
    transport: Arc<SimTransport>,
    config: Arc<Config>,
    checker: Arc<Mutex<Checker>>,
    next_proposal: u64,
    /// What the observer (a broker-only node fetching from the voters) applied.
    observed: Arc<Mutex<Applied>>,
    observer: Option<tokio::task::JoinHandle<()>>,
}

/// The observer's node id (not a voter).
const OBSERVER: u64 = 100;

/// A broker-only node: fetches the committed entries after its offset from a random voter (the
/// image when the voter no longer holds them, or every seventh fetch as an observer of an
/// earlier build would), replays them with [`apply_update`], and reports each image to the
/// checker, so its images must equal the voters' at equal offsets.
async fn observe(
    ids: Vec<u64>,
    seed: u64,
    transport: Arc<SimTransport>,
    observed: Arc<Mutex<Applied>>,
    checker: Arc<Mutex<Checker>>,
) {
    let mut rng = SplitMix64(seed ^ 0x0B5E);
    let mut whole_next = false;
    loop {
        let target = ids[(rng.next_u64() % ids.len() as u64) as usize];
        let after = observed.lock().unwrap().offset;
        let rpc = QuorumRpc::FetchMetadata {
            after,
            max_wait_ms: 50,
            entries: !whole_next && !rng.next_u64().is_multiple_of(7),
        };
        whole_next = false;
        match transport.send(OBSERVER, target, rpc).await {
            Ok(QuorumReply::Metadata(update)) => {
                let current = observed.lock().unwrap().clone();
                match apply_update(&current, &update) {
                    Ok(Some(next)) => {
                        let mut c = checker.lock().unwrap();
                        if !update.entries.is_empty() {
                            c.stats.observer_entries += 1;
                        } else {
                            c.stats.observer_images += 1;
                        }
                        if next.offset <= current.offset {
                            c.violations.push(format!(
                                "observer went from {:?} to {:?}",
                                current.offset, next.offset
                            ));
                        }
                        if let Some(o) = next.offset {
                            c.image_at(OBSERVER, o, &next.image);
                        }
                        drop(c);
                        *observed.lock().unwrap() = next;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        checker
                            .lock()
                            .unwrap()
                            .violations
                            .push(format!("observer got entries that do not follow: {e}"));
                        whole_next = true;
                    }
                }
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl Sim {
    async fn start(seed: u64, n: u64, root: &Path) -> Sim {
        // openraft 0.9 draws a node's election timeout once, at start, and checks it on a tick
        // of 1.5 heartbeats: the range must span many ticks or nodes that drew the same tick
        // split every vote forever (5 nodes, seed 929, with 50 ms heartbeats and 150..300 ms).
        let config = Config {
            heartbeat_interval: 25,
            election_timeout_min: 200,
            election_timeout_max: 500,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(8),
            max_in_snapshot_log_to_keep: 2,
            purge_batch_size: 1,
            ..Config::default()
        };
        let mut sim = Sim {
            seed,
            rng: SplitMix64(seed ^ 0x5EED),
            ids: (1..=n).collect(),
            dirs: (1..=n)
                .map(|i| (i, root.join(format!("node-{i}"))))
                .collect(),
            nodes: BTreeMap::new(),
            transport: Arc::new(SimTransport::new(seed)),
            config: Arc::new(config.validate().expect("valid raft config")),
            checker: Arc::default(),
            next_proposal: 0,
            observed: Arc::new(Mutex::new(Applied::whole(
                None,
                Arc::new(MetadataImage::empty()),
            ))),
            observer: None,
        };
        for id in 1..=n {
            sim.stagger().await;
            sim.restart(id).await;
        }
        let voters: BTreeMap<u64, VoterEndpoint> = (1..=n)
            .map(|i| (i, VoterEndpoint::new(format!("node-{i}"))))
            .collect();
        sim.node(1).unwrap().bootstrap(voters).await.unwrap();
        sim.observer = Some(tokio::spawn(observe(
            (1..=n).collect(),
            seed,
            Arc::clone(&sim.transport),
            Arc::clone(&sim.observed),
            Arc::clone(&sim.checker),
        )));
        sim
    }

    /// Real processes never start in the same microsecond: wait 0..10 ms between starts.
    async fn stagger(&mut self) {
        let us = self.rng.next_u64() % 10_000;
        tokio::time::sleep(Duration::from_micros(us)).await;
    }

    fn node(&self, id: u64) -> Option<Arc<OpenraftQuorum>> {
        self.nodes.get(&id).cloned().flatten()
    }

    fn pick(&mut self, from: &[u64]) -> Option<u64> {
        (!from.is_empty()).then(|| from[(self.rng.next_u64() % from.len() as u64) as usize])
    }

    fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, q)| q.is_some())
            .map(|(i, _)| *i)
            .collect()
    }

    fn down(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, q)| q.is_none())
            .map(|(i, _)| *i)
            .collect()
    }

    async fn restart(&mut self, id: u64) {
        let publisher = Arc::new(SimPublisher {
            node: id,
            last: Mutex::new(None),
            checker: Arc::clone(&self.checker),
        });
        let q = OpenraftQuorum::open(
            id,
            &self.dirs[&id],
            Arc::clone(&self.config),
            Arc::clone(&self.transport),
            publisher,
        )
        .await
        .unwrap_or_else(|e| panic!("seed {}: node {id} failed to open: {e}", self.seed));
        self.transport.register_serving(id, &q);
        self.nodes.insert(id, Some(Arc::new(q)));
    }

    async fn crash(&mut self, id: u64) {
        if let Some(q) = self.nodes.insert(id, None).flatten() {
            self.checker.lock().unwrap().stats.crashes += 1;
            self.transport.unregister(id);
            q.shutdown().await;
        }
    }

    fn leaders(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (id, q) in &self.nodes {
            let Some(q) = q else { continue };
            let m = q.raft().metrics().borrow().clone();
            if m.state == ServerState::Leader {
                out.push((*id, m.current_term));
            }
        }
        out
    }

    fn check_leaders(&self) {
        let leaders = self.leaders();
        let mut c = self.checker.lock().unwrap();
        for (id, term) in leaders {
            c.mix(&[4, id, term]);
            c.stats.max_term = c.stats.max_term.max(term);
            let seen = *c.leaders.entry(term).or_insert(id);
            if seen != id {
                c.violations
                    .push(format!("term {term} has two leaders: {seen} and {id}"));
            }
        }
    }

    fn propose(&mut self, on: u64) {
        let Some(q) = self.node(on) else { return };
        self.next_proposal += 1;
        let id = self.next_proposal;
        let records = vec![
            MetadataRecord::Config {
                resource: ConfigResource::Broker((id % 3) as i32),
                name: format!("p{id}"),
                value: Some(format!("v{id}")),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Broker(7),
                name: "last".into(),
                value: Some(format!("v{id}")),
            },
        ];
        let checker = Arc::clone(&self.checker);
        tokio::spawn(async move {
            match q.propose(records.clone()).await {
                Ok(offset) => checker.lock().unwrap().acknowledge(offset, records),
                Err(QuorumError::NotLeader { .. }) => {
                    checker.lock().unwrap().rejected.insert(format!("p{id}"));
                }
                Err(QuorumError::LeadershipLost { .. } | QuorumError::Stopped { .. }) => {}
            }
        });
    }

    async fn step(&mut self) {
        let roll = self.rng.next_u64() % 100;
        let live = self.live();
        match roll {
            0..=34 => {
                // Mostly to the leader some node knows of, else to anyone.
                let known = live
                    .first()
                    .and_then(|i| self.node(*i))
                    .and_then(|q| q.leader().leader);
                let target = match known {
                    Some(l) if !self.rng.next_u64().is_multiple_of(4) => Some(l),
                    _ => self.pick(&live),
                };
                if let Some(t) = target {
                    self.propose(t);
                }
            }
            35..=69 => {
                let ms = 1 + self.rng.next_u64() % 400;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            70..=76 => {
                if let Some(id) = self.pick(&live) {
                    self.crash(id).await;
                }
            }
            77..=84 => {
                let down = self.down();
                if let Some(id) = self.pick(&down) {
                    self.restart(id).await;
                }
            }
            85..=90 => {
                let side: BTreeSet<u64> = self
                    .ids
                    .iter()
                    .copied()
                    .filter(|_| self.rng.next_u64().is_multiple_of(2))
                    .collect();
                self.transport.heal();
                if self.rng.next_u64().is_multiple_of(3) {
                    self.transport.partition_one_way(&side, &self.ids);
                } else {
                    self.transport.partition(&side, &self.ids);
                }
            }
            91..=95 => self.transport.heal(),
            _ => {
                let faults = NetworkFaults {
                    drop_per_mille: self.rng.next_u64() % 250,
                    duplicate_per_mille: self.rng.next_u64() % 100,
                    max_delay_ms: self.rng.next_u64() % 60,
                };
                self.transport.set_faults(faults);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.check_leaders();
    }

    /// Heals everything, then requires a leader and a new commit that every node applies.
    async fn finish(&mut self) {
        self.transport.heal();
        self.transport.set_faults(NetworkFaults::RELIABLE);
        for id in self.down() {
            self.stagger().await;
            self.restart(id).await;
        }
        let mut committed = None;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.check_leaders();
            self.assert_no_violations();
            let Some((leader, _)) = self.leaders().first().copied() else {
                continue;
            };
            let q = self.node(leader).unwrap();
            self.next_proposal += 1;
            let records = vec![MetadataRecord::Config {
                resource: ConfigResource::Broker(9),
                name: "final".into(),
                value: Some(format!("v{}", self.next_proposal)),
            }];
            let result =
                tokio::time::timeout(Duration::from_secs(5), q.propose(records.clone())).await;
            if let Ok(Ok(offset)) = result {
                self.checker.lock().unwrap().acknowledge(offset, records);
                committed = Some(offset);
                break;
            }
        }
        let Some(offset) = committed else {
            self.fail(&format!(
                "liveness: no proposal committed within 30 s after healing; {}",
                self.describe()
            ));
        };
        for _ in 0..300 {
            let behind = self
                .nodes
                .values()
                .flatten()
                .any(|q| q.image().0.is_none_or(|o| o < offset));
            if !behind {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The observer catches up and holds the voters' image at the same offset.
        let (node_offset, node_image) = self.node(1).unwrap().image();
        for _ in 0..300 {
            if self.observed.lock().unwrap().offset >= node_offset {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let observed = self.observed.lock().unwrap().clone();
        if observed.offset < node_offset
            || (observed.offset == node_offset && *observed.image != *node_image)
        {
            self.fail(&format!(
                "observer at {:?} with {} records applied; node 1 at {node_offset:?} with {}",
                observed.offset,
                observed.image.records_applied(),
                node_image.records_applied()
            ));
        }
        let c = self.checker.lock().unwrap();
        let (_, image) = self.node(1).unwrap().image();
        for (id, q) in self.nodes.iter() {
            let (applied, node_image) = q.as_ref().unwrap().image();
            if applied.is_none_or(|o| o < offset) {
                drop(c);
                self.fail(&format!(
                    "liveness: node {id} applied only {applied:?} of {offset} after healing"
                ));
            }
            if applied == self.node(1).unwrap().image().0 && node_image != image {
                drop(c);
                self.fail(&format!(
                    "node {id}: final image differs from node 1's at the same offset"
                ));
            }
        }
        // A proposal answered NotLeader never commits.
        for name in &c.rejected {
            let b = name[1..].parse::<i32>().unwrap() % 3;
            if image.broker_config_overrides(b).contains_key(name) {
                let name = name.clone();
                drop(c);
                self.fail(&format!(
                    "proposal {name} was answered NotLeader but committed"
                ));
            }
        }
        // Every acknowledged proposal is in the final image: nothing committed was lost.
        for records in c.acked.values() {
            for r in records {
                if let MetadataRecord::Config {
                    resource: ConfigResource::Broker(b),
                    name,
                    value,
                } = r
                {
                    if name.starts_with('p')
                        && image.broker_config_overrides(*b).get(name) != value.as_ref()
                    {
                        let name = name.clone();
                        drop(c);
                        self.fail(&format!(
                            "acknowledged proposal {name} is missing from the final image"
                        ));
                    }
                }
            }
        }
    }

    /// Each live node's Raft state, for failure messages.
    fn describe(&self) -> String {
        let mut out = Vec::new();
        for (id, q) in self.nodes.iter() {
            let Some(q) = q else { continue };
            let m = q.raft().metrics().borrow().clone();
            out.push(format!(
                "node {id}: {:?} term {} vote {} leader {:?} last log {:?} applied {:?} purged {:?}",
                m.state,
                m.current_term,
                m.vote,
                m.current_leader,
                m.last_log_index,
                m.last_applied.map(|l| l.index),
                m.purged.map(|l| l.index)
            ));
        }
        out.join("; ")
    }

    fn fail(&self, msg: &str) -> ! {
        match PANICKED.with(|p| p.borrow().clone()) {
            Some(p) => panic!(
                "quorum simulation seed {} failed: a task panicked: {p} (and then: {msg})",
                self.seed
            ),
            None => panic!("quorum simulation seed {} failed: {msg}", self.seed),
        }
    }

    fn assert_no_violations(&self) {
        if PANICKED.with(|p| p.borrow().is_some()) {
            self.fail("checked after a step");
        }
        let c = self.checker.lock().unwrap();
        if let Some(v) = c.violations.first() {
            let v = v.clone();
            drop(c);
            self.fail(&v);
        }
    }

    async fn stop(&mut self) {
        if let Some(observer) = self.observer.take() {
            observer.abort();
        }
        for id in self.live() {
            self.crash(id).await;
        }
    }
}

/// Runs one seed; returns the digest of its event sequence and what it exercised.
fn run_seed(seed: u64, n: u64) -> (u64, Stats) {
    let root = scratch_dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    seed_thread_rng(seed);
    install_panic_recorder();
    PANICKED.with(|p| p.borrow_mut().take());
    rt.block_on(async {
        let mut sim = Sim::start(seed, n, root.path()).await;
        for _ in 0..STEPS {
            sim.step().await;
            sim.assert_no_violations();
        }
        sim.finish().await;
        sim.assert_no_violations();
        sim.stop().await;
        let mut c = sim.checker.lock().unwrap();
        c.stats.acked = c.acked.len();
        c.stats.rejected = c.rejected.len();
        c.stats.committed = c.committed.keys().next_back().copied().unwrap_or(0);
        (c.digest, c.stats)
    })
}

/// Scratch space in memory when the machine has it: the simulation fsyncs a lot.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("QUORUM_SIM_SEED") {
        return vec![s.parse().expect("QUORUM_SIM_SEED is a u64")];
    }
    let n = std::env::var("QUORUM_SIM_SEEDS")
        .map(|s| s.parse().expect("QUORUM_SIM_SEEDS is a count"))
        .unwrap_or(DEFAULT_SEEDS);
    (0..n).collect()
}

fn run(n: u64) {
    let started = Instant::now();
    let seeds = seeds();
    let mut total = Stats::default();
    for &seed in &seeds {
        let result = std::panic::catch_unwind(|| run_seed(seed, n));
        match result {
            Ok((digest, stats)) => {
                total += stats;
                println!("{n} nodes, seed {seed}: digest {digest:016x}, {stats:?}");
            }
            Err(e) => {
                eprintln!("quorum simulation: {n} nodes, seed {seed} failed (rerun with QUORUM_SIM_SEED={seed})");
                std::panic::resume_unwind(e);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} nodes: {} seeds in {secs:.1} s ({:.2} seeds/s), totals {total:?}",
        seeds.len(),
        seeds.len() as f64 / secs
    );
}

#[test]
fn quorum_sim_3_nodes() {
    run(3);
}

#[test]
fn quorum_sim_5_nodes() {
    run(5);
}
