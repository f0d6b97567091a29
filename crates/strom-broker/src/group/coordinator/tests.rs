//! The async coordinator over an in-memory `__consumer_offsets`: barriers across tasks,
//! durability of commits and groups across a "restart", the timer task, and shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_storage::SystemClock;

use super::*;
use crate::group::log::MemoryLog;
use crate::group::state::Protocol;
use crate::group::subscription::encode_subscription;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 100,
        ..GroupConfig::default()
    }
}

fn coordinator() -> Arc<GroupCoordinator> {
    Arc::new(GroupCoordinator::new(config(), Arc::new(SystemClock)))
}

fn join_request(member_id: &str, session_timeout_ms: i32) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: encode_subscription(&["t"], b""),
        }],
        session_timeout_ms,
        rebalance_timeout_ms: 5_000,
        client_id: "c".into(),
        client_host: String::new(),
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

async fn join_new(c: &GroupCoordinator, log: &MemoryLog, session_timeout_ms: i32) -> JoinResult {
    let first = c.join(log, join_request("", session_timeout_ms)).await;
    assert_eq!(first.error, Some(ErrorCode::MemberIdRequired));
    c.join(log, join_request(&first.member_id, session_timeout_ms))
        .await
}

fn sync_request(
    member_id: &str,
    generation_id: i32,
    assignments: Vec<(String, Bytes)>,
) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

fn member_auth(member_id: &str, generation_id: i32) -> CommitAuth {
    CommitAuth {
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        version_9_or_later: false,
    }
}

fn commit_of(offset: i64) -> OffsetCommit {
    OffsetCommit {
        offset,
        leader_epoch: 0,
        metadata: Some("m".into()),
    }
}

#[tokio::test]
async fn two_members_meet_at_the_barriers_and_commits_survive_a_restart() {
    let log = Arc::new(MemoryLog::new(50));
    let c = coordinator();
    let first = join_new(&c, &log, 10_000).await;
    assert_eq!(first.generation_id, 1);
    // A second member starts a rebalance; its join waits for the leader to rejoin.
    let second = {
        let (c, log) = (c.clone(), log.clone());
        tokio::spawn(async move { join_new(&c, &log, 10_000).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!second.is_finished(), "the barrier waits for the leader");
    let leader = c.join(&*log, join_request(&first.member_id, 10_000)).await;
    let follower = second.await.expect("task");
    assert_eq!((leader.generation_id, follower.generation_id), (2, 2));
    assert_eq!(leader.members.len(), 2);
    let follower_sync = {
        let (c, log, id) = (c.clone(), log.clone(), follower.member_id.clone());
        tokio::spawn(async move { c.sync(&*log, sync_request(&id, 2, Vec::new())).await })
    };
    let assignments = vec![
        (leader.member_id.clone(), Bytes::from_static(b"L")),
        (follower.member_id.clone(), Bytes::from_static(b"F")),
    ];
    let leader_sync = c
        .sync(&*log, sync_request(&leader.member_id, 2, assignments))
        .await;
    assert_eq!(leader_sync.assignment, Bytes::from_static(b"L"));
    assert_eq!(
        follower_sync.await.expect("task").assignment,
        Bytes::from_static(b"F")
    );

    let tp = ("t".to_owned(), 3);
    let results = c
        .commit(
            &*log,
            "g",
            &member_auth(&leader.member_id, 2),
            -1,
            vec![(tp.clone(), commit_of(42))],
        )
        .expect("committed");
    assert_eq!(results, vec![(tp.clone(), None)]);
    // Everything went to the group's partition, Kafka's hash of "g".
    let partitions: Vec<i32> = log.batches.lock().keys().copied().collect();
    assert_eq!(partitions, vec![partition_for("g", 50)]);

    let restarted = coordinator();
    assert_eq!(restarted.load(&*log), Ok(1));
    let fetched = restarted
        .fetch(&*log, "g", Some(std::slice::from_ref(&tp)))
        .expect("fetch");
    let value = fetched[0].1.clone().expect("committed offset survives");
    assert_eq!(
        (value.offset, value.metadata.as_str(), value.leader_epoch),
        (42, "m", 0)
    );
    assert_eq!(restarted.describe("g").state, GroupState::Stable);
    assert_eq!(
        restarted.heartbeat(&*log, "g", &follower.member_id, None, 2),
        Ok(()),
        "members keep their generation across a restart"
    );
}

#[tokio::test]
async fn a_commit_that_cannot_be_written_is_not_visible() {
    let log = MemoryLog::new(3);
    let c = coordinator();
    log.fail_appends.store(true, Ordering::SeqCst);
    let simple = CommitAuth {
        generation_id: -1,
        ..member_auth("", -1)
    };
    let tp = ("t".to_owned(), 0);
    assert_eq!(
        c.commit(&log, "g", &simple, -1, vec![(tp.clone(), commit_of(1))]),
        Err(ErrorCode::KafkaStorageError)
    );
    assert_eq!(
        c.fetch(&log, "g", Some(std::slice::from_ref(&tp)))
            .expect("fetch")[0]
            .1,
        None
    );
    log.fail_appends.store(false, Ordering::SeqCst);
    let big = OffsetCommit {
        metadata: Some("x".repeat(OFFSET_METADATA_MAX_BYTES + 1)),
        ..commit_of(2)
    };
    let results = c
        .commit(
            &log,
            "g",
            &simple,
            -1,
            vec![(tp.clone(), big), (("t".to_owned(), 1), commit_of(3))],
        )
        .expect("group-level ok");
    assert_eq!(results[0].1, Some(ErrorCode::OffsetMetadataTooLarge));
    assert_eq!(results[1].1, None);
    // Deletions that cannot be written leave the group and its offsets in place.
    log.fail_appends.store(true, Ordering::SeqCst);
    let tp1 = ("t".to_owned(), 1);
    assert_eq!(
        c.delete_offsets(&log, "g", std::slice::from_ref(&tp1)),
        Err(ErrorCode::KafkaStorageError)
    );
    assert_eq!(c.delete_group(&log, "g"), Err(ErrorCode::KafkaStorageError));
    assert_eq!(c.describe("g").state, GroupState::Empty);
    let kept = c.fetch(&log, "g", None).expect("fetch");
    assert_eq!(kept.len(), 1);
    log.fail_appends.store(false, Ordering::SeqCst);
    assert_eq!(c.delete_group(&log, "g"), Ok(()));
    assert_eq!(c.describe("g").state, GroupState::Dead);
}

#[tokio::test]
async fn the_timer_task_evicts_silent_members_and_shutdown_releases_waiters() {
    let log = Arc::new(MemoryLog::new(1));
    let c = coordinator();
    let (stop_tx, stop_rx) = watch::channel(false);
    let timers = {
        let (c, log) = (c.clone(), log.clone());
        tokio::spawn(async move { c.run_timers(&*log, 60_000, stop_rx).await })
    };
    let first = join_new(&c, &log, 300).await;
    c.sync(&*log, sync_request(&first.member_id, 1, Vec::new()))
        .await;
    assert_eq!(c.describe("g").state, GroupState::Stable);
    // No heartbeats: the session runs out and the group empties.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(c.describe("g").state, GroupState::Empty);
    assert_eq!(
        c.heartbeat(&*log, "g", &first.member_id, None, 1),
        Err(ErrorCode::UnknownMemberId)
    );
    // A join waiting on a barrier is answered when the coordinator stops.
    let slow = GroupConfig {
        min_session_timeout_ms: 100,
        ..GroupConfig::default()
    };
    let c2 = Arc::new(GroupCoordinator::new(slow, Arc::new(SystemClock)));
    let (stop2_tx, stop2_rx) = watch::channel(false);
    let timers2 = {
        let (c2, log) = (c2.clone(), log.clone());
        tokio::spawn(async move { c2.run_timers(&*log, 60_000, stop2_rx).await })
    };
    let waiting = {
        let (c2, log) = (c2.clone(), log.clone());
        tokio::spawn(async move { join_new(&c2, &log, 1_000).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "the initial rebalance delay holds the join"
    );
    stop2_tx.send(true).expect("timer task listening");
    let r = waiting.await.expect("task");
    assert_eq!(r.error, Some(ErrorCode::NotCoordinator));
    stop_tx.send(true).expect("timer task listening");
    timers.await.expect("timer task ends");
    timers2.await.expect("timer task ends");
}

/// Cluster mode: a coordinator serves only the partitions it loaded; loading replays one
/// partition, unloading drops its groups and releases their waiting joins.
#[tokio::test]
async fn only_loaded_partitions_are_served_and_unloading_releases_waiters() {
    let log = Arc::new(MemoryLog::new(50));
    let p = crate::group::records::partition_for("g", 50);
    // A first coordinator (single-node mode) commits an offset and keeps a member.
    let old = coordinator();
    let first = join_new(&old, &log, 10_000).await;
    old.sync(&*log, sync_request(&first.member_id, 1, Vec::new()))
        .await;
    old.commit(
        &*log,
        "g",
        &member_auth(&first.member_id, 1),
        -1,
        vec![(("t".into(), 0), commit_of(7))],
    )
    .expect("commit");

    // A coordinator of a cluster serves nothing until it loads the partition.
    let c = coordinator();
    c.owned.serve_led_partitions_only();
    let fetch = |c: &GroupCoordinator| c.fetch(&*log, "g", None);
    assert_eq!(fetch(&c).unwrap_err(), ErrorCode::NotCoordinator);
    c.owned.begin_load(p, 3);
    assert_eq!(fetch(&c).unwrap_err(), ErrorCode::CoordinatorLoadInProgress);
    c.load_partition(&*log, p, 3);
    let offsets = fetch(&c).expect("served once loaded");
    assert_eq!(offsets[0].1.as_ref().map(|v| v.offset), Some(7));
    // Another partition's key is still someone else's.
    let other = (0..100)
        .map(|i| format!("other-{i}"))
        .find(|g| crate::group::records::partition_for(g, 50) != p)
        .unwrap();
    assert_eq!(
        c.fetch(&*log, &other, None).unwrap_err(),
        ErrorCode::NotCoordinator
    );

    // A join waiting at the barrier is answered NOT_COORDINATOR when the partition moves.
    let waiting = {
        let (c, log) = (c.clone(), log.clone());
        tokio::spawn(async move { join_new(&c, &log, 10_000).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "the loaded member has not rejoined");
    c.owned.unload(p);
    c.unload_partition(p, 50);
    assert_eq!(
        waiting.await.expect("task").error,
        Some(ErrorCode::NotCoordinator)
    );
    assert_eq!(fetch(&c).unwrap_err(), ErrorCode::NotCoordinator);
    assert!(c.list(&[], &[]).is_empty(), "the group was dropped");
}
