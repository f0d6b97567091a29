//! The [`MetadataQuorum`] contract on a reliable simulated network: the leader commits, a
//! follower answers NotLeader naming the leader, every replica applies the same image, and a
//! restarted node comes back with its committed state from disk (snapshot + log).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};
use strom_metadata::quorum::raft::{OpenraftQuorum, VoterEndpoint};
use strom_metadata::quorum::runtime::seed_thread_rng;
use strom_metadata::quorum::sim_transport::SimTransport;
use strom_metadata::quorum::{
    CommittedBatch, LeaderEpoch, MetadataOffset, MetadataPublisher, MetadataQuorum, QuorumError,
};
use strom_metadata::{MetadataImage, MetadataRecord};

/// Remembers what a node's publisher was handed.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<(MetadataOffset, usize)>>,
    snapshots: Mutex<Vec<MetadataOffset>>,
}

impl MetadataPublisher for Recorder {
    fn on_batch(&self, batch: CommittedBatch<'_>) {
        let entry = (batch.offset, batch.records.len());
        self.batches.lock().unwrap().push(entry);
    }

    fn on_snapshot(&self, offset: MetadataOffset, _: LeaderEpoch, _: &Arc<MetadataImage>) {
        self.snapshots.lock().unwrap().push(offset);
    }
}

fn broker(id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id: id,
        host: format!("host-{id}"),
        port: 9092,
        rack: None,
        listeners: vec![],
    }
}

async fn open(
    id: u64,
    root: &std::path::Path,
    config: &Arc<Config>,
    transport: &Arc<SimTransport>,
    publisher: Arc<Recorder>,
) -> Arc<OpenraftQuorum> {
    let q = OpenraftQuorum::open(
        id,
        &root.join(format!("node-{id}")),
        Arc::clone(config),
        Arc::clone(transport),
        publisher,
    )
    .await
    .unwrap();
    transport.register(id, q.raft().clone());
    Arc::new(q)
}

async fn leader_of(nodes: &BTreeMap<u64, Arc<OpenraftQuorum>>) -> u64 {
    for _ in 0..100 {
        let leaders: Vec<u64> = nodes.values().filter_map(|q| q.leader().leader).collect();
        if leaders.len() == nodes.len() && leaders.iter().all(|l| *l == leaders[0]) {
            return leaders[0];
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader agreed on within 10 s");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn leader_commits_followers_redirect_and_restart_keeps_state() {
    seed_thread_rng(1);
    let root = tempfile::tempdir().unwrap();
    let config = Config {
        snapshot_policy: SnapshotPolicy::LogsSinceLast(3),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Config::default()
    };
    let config = Arc::new(config.validate().unwrap());
    let transport = Arc::new(SimTransport::new(1));
    let mut nodes = BTreeMap::new();
    let mut recorders = BTreeMap::new();
    for id in 1..=3 {
        let recorder = Arc::new(Recorder::default());
        let q = open(id, root.path(), &config, &transport, Arc::clone(&recorder)).await;
        nodes.insert(id, q);
        recorders.insert(id, recorder);
    }
    let voters: BTreeMap<u64, VoterEndpoint> = (1..=3)
        .map(|i| (i, VoterEndpoint::new(format!("node-{i}"))))
        .collect();
    nodes[&1].bootstrap(voters.clone()).await.unwrap();
    // Bootstrapping again (every voter does at every start) is harmless.
    nodes[&2].bootstrap(voters).await.unwrap();

    let leader = leader_of(&nodes).await;
    let follower = *nodes.keys().find(|id| **id != leader).unwrap();
    let mut last = 0;
    for id in 0..5 {
        let offset = nodes[&leader].propose(vec![broker(id)]).await.unwrap();
        assert!(offset > last, "offsets grow: {offset} after {last}");
        last = offset;
    }
    assert_eq!(
        nodes[&follower].propose(vec![broker(99)]).await,
        Err(QuorumError::NotLeader {
            leader: Some(leader)
        })
    );
    assert!(nodes[&leader].leader().epoch >= 1);

    // Every replica applies up to the last offset, with the same image.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (offset, image) = nodes[&leader].image();
    assert_eq!(offset, Some(last));
    assert_eq!(image.brokers().count(), 5);
    assert!(
        image.broker(99).is_none(),
        "a NotLeader proposal never commits"
    );
    for q in nodes.values() {
        assert_eq!(q.image(), (Some(last), Arc::clone(&image)));
    }
    let leader_batches = recorders[&leader].batches.lock().unwrap().clone();
    let with_records: Vec<usize> = leader_batches
        .iter()
        .map(|(_, n)| *n)
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(with_records, [1, 1, 1, 1, 1]);
    assert!(leader_batches.windows(2).all(|w| w[0].0 < w[1].0));

    // A restarted follower reloads its snapshot (the log behind it was purged) and its tail.
    transport.unregister(follower);
    nodes[&follower].shutdown().await;
    let recorder = Arc::new(Recorder::default());
    let q = open(
        follower,
        root.path(),
        &config,
        &transport,
        Arc::clone(&recorder),
    )
    .await;
    nodes.insert(follower, q);
    let snapshots = recorder.snapshots.lock().unwrap().clone();
    assert_eq!(
        snapshots.len(),
        1,
        "restart starts from the persisted snapshot"
    );
    let offset = nodes[&leader].propose(vec![broker(6)]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (applied, image) = nodes[&follower].image();
    assert_eq!(applied, Some(offset));
    assert_eq!(image, nodes[&leader].image().1);
    assert_eq!(image.brokers().count(), 6);

    for q in nodes.values() {
        q.shutdown().await;
    }
}
