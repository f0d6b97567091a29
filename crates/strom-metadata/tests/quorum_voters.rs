//! Voter changes (KIP-853's AddRaftVoter / RemoveRaftVoter / UpdateRaftVoter as openraft
//! membership changes) on a simulated network with paused time: a standalone quorum grows to
//! three, every refusal is a typed error, a controller that never catches up stays an observer,
//! and the leader itself can be removed while the others keep committing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use strom_metadata::quorum::raft::{OpenraftQuorum, VoterEndpoint};
use strom_metadata::quorum::runtime::seed_thread_rng;
use strom_metadata::quorum::sim_transport::SimTransport;
use strom_metadata::quorum::{MetadataQuorum, NoPublisher, VoterChange, VoterChangeError};
use strom_metadata::MetadataRecord;

fn broker(id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id: id,
        host: format!("host-{id}"),
        port: 9092,
        rack: None,
        listeners: vec![],
    }
}

fn add(id: u64, timeout_ms: u64) -> VoterChange {
    VoterChange::Add {
        node_id: id,
        directory_id: Some(format!("dir-{id}")),
        endpoint: format!("node-{id}:9093"),
        timeout_ms,
    }
}

fn remove(id: u64, directory_id: Option<&str>) -> VoterChange {
    VoterChange::Remove {
        node_id: id,
        directory_id: directory_id.map(str::to_string),
    }
}

async fn wait_leader(nodes: &BTreeMap<u64, Arc<OpenraftQuorum>>, among: &[u64]) -> u64 {
    for _ in 0..200 {
        for id in among {
            if nodes[id].leader().leader == Some(*id) {
                return *id;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("none of {among:?} leads within 10 s");
}

fn voters(q: &OpenraftQuorum) -> Vec<u64> {
    let d = q.describe().expect("asked on the leader");
    d.voters.iter().map(|v| v.node_id).collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_standalone_quorum_grows_refuses_bad_changes_and_survives_removing_its_leader() {
    seed_thread_rng(7);
    let root = tempfile::tempdir().unwrap();
    let config = Arc::new(Config::default().validate().unwrap());
    let transport = Arc::new(SimTransport::new(7));
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let q = OpenraftQuorum::open(
            id,
            &root.path().join(format!("node-{id}")),
            Arc::clone(&config),
            Arc::clone(&transport),
            Arc::new(NoPublisher),
        )
        .await
        .unwrap();
        transport.register(id, q.raft().clone());
        nodes.insert(id, Arc::new(q));
    }
    // `--standalone` on node 1; nodes 2 and 3 (`--no-initial-controllers`) wait.
    let me = VoterEndpoint {
        addr: "node-1:9093".into(),
        directory_id: Some("dir-1".into()),
    };
    nodes[&1].bootstrap([(1, me)].into()).await.unwrap();
    nodes[&1].elect_now().await.unwrap();
    assert_eq!(wait_leader(&nodes, &[1]).await, 1);
    nodes[&1].propose(vec![broker(1)]).await.unwrap();

    nodes[&1].change_voters(add(2, 5_000)).await.unwrap();
    nodes[&1].change_voters(add(3, 5_000)).await.unwrap();
    assert_eq!(voters(&nodes[&1]), [1, 2, 3]);
    let d = nodes[&1].describe().unwrap();
    assert_eq!(d.voters[1].directory_id.as_deref(), Some("dir-2"));
    assert_eq!(d.voters[2].endpoint, "node-3:9093");

    // Refusals, each a typed error and nothing changed.
    assert_eq!(
        nodes[&1].change_voters(add(2, 5_000)).await,
        Err(VoterChangeError::DuplicateVoter { node_id: 2 })
    );
    assert_eq!(
        nodes[&2].change_voters(add(4, 5_000)).await,
        Err(VoterChangeError::NotLeader { leader: Some(1) })
    );
    let bad_endpoint = VoterChange::Add {
        node_id: 4,
        directory_id: None,
        endpoint: "no-port".into(),
        timeout_ms: 1_000,
    };
    assert!(matches!(
        nodes[&1].change_voters(bad_endpoint).await,
        Err(VoterChangeError::InvalidRequest { .. })
    ));
    assert!(matches!(
        nodes[&1].change_voters(remove(9, None)).await,
        Err(VoterChangeError::VoterNotFound { node_id: 9, .. })
    ));
    let wrong_dir = nodes[&1].change_voters(remove(2, Some("dir-x"))).await;
    assert!(
        matches!(&wrong_dir, Err(VoterChangeError::VoterNotFound { node_id: 2, detail }) if detail.contains("dir-2")),
        "{wrong_dir:?}"
    );
    // A controller that is not running never catches up: the add times out and it stays an
    // observer, not a voter.
    let timed_out = nodes[&1].change_voters(add(5, 1_000)).await;
    assert!(
        matches!(timed_out, Err(VoterChangeError::TimedOut { .. })),
        "{timed_out:?}"
    );
    let d = nodes[&1].describe().unwrap();
    assert_eq!(voters(&nodes[&1]), [1, 2, 3]);
    assert_eq!(
        d.observers.iter().map(|o| o.node_id).collect::<Vec<_>>(),
        [5]
    );
    // UpdateRaftVoter: a voter's endpoint changes in the log.
    let update = VoterChange::Update {
        node_id: 3,
        directory_id: Some("dir-3".into()),
        endpoint: "node-3b:9093".into(),
    };
    nodes[&1].change_voters(update).await.unwrap();
    assert_eq!(
        nodes[&1].describe().unwrap().voters[2].endpoint,
        "node-3b:9093"
    );

    // The leader removes itself: it steps down once the new set commits, and 2 and 3 go on.
    nodes[&1]
        .change_voters(remove(1, Some("dir-1")))
        .await
        .unwrap();
    let leader = wait_leader(&nodes, &[2, 3]).await;
    assert_eq!(voters(&nodes[&leader]), [2, 3]);
    let offset = nodes[&leader].propose(vec![broker(2)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = if leader == 2 { 3 } else { 2 };
    assert_eq!(nodes[&other].image().0, Some(offset));
    assert!(nodes[&other].image().1.broker(2).is_some());
    assert_eq!(
        nodes[&1].leader().leader,
        None,
        "a removed leader names nobody"
    );

    // Down to one voter, which cannot be removed.
    nodes[&leader]
        .change_voters(remove(other, None))
        .await
        .unwrap();
    assert_eq!(voters(&nodes[&leader]), [leader]);
    assert!(matches!(
        nodes[&leader].change_voters(remove(leader, None)).await,
        Err(VoterChangeError::InvalidRequest { .. })
    ));
    nodes[&leader].propose(vec![broker(3)]).await.unwrap();
    for q in nodes.values() {
        q.shutdown().await;
    }
}
