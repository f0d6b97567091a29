//! strom-client's generic group membership (what distributed Connect workers use) against a
//! real broker: a protocol type of the caller's, the leader's assignment bytes reaching each
//! member, a rebalance seen through the heartbeat when a member joins, leaves, or goes
//! silent past its session timeout, and a member of another protocol type refused.

mod common;

use std::time::Duration;

use bytes::Bytes;
use strom_client::{ClientConfig, GroupMember, GroupMemberConfig, Joined};

fn config(group: &str, protocol_type: &str) -> GroupMemberConfig {
    let mut c = GroupMemberConfig::new(group, protocol_type);
    c.session_timeout = Duration::from_millis(1500);
    c.heartbeat_interval = Duration::from_millis(200);
    c.rebalance_timeout = Duration::from_secs(5);
    c
}

/// Joins with `metadata`; as leader, gives every member `<its metadata>-><member id>`.
async fn round(m: &mut GroupMember, metadata: &str) -> (Joined, Bytes) {
    loop {
        let joined = m
            .join(&[("v0".to_owned(), Bytes::from(metadata.to_owned()))])
            .await
            .unwrap();
        let assignments = if joined.is_leader() {
            joined
                .members
                .iter()
                .map(|x| {
                    let text = format!("{}->{}", String::from_utf8_lossy(&x.metadata), x.member_id);
                    (x.member_id.clone(), Bytes::from(text))
                })
                .collect()
        } else {
            Vec::new()
        };
        if let Some(a) = m.sync(&joined, assignments).await.unwrap() {
            return (joined, a);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_sync_heartbeat_and_leave_with_their_own_protocol() {
    let broker = common::dist::fast_groups_broker();
    let b = broker.bootstrap();
    let connect = |c| GroupMember::connect(ClientConfig::new(&b), c);
    let mut a = connect(config("g", "connect")).await.unwrap();
    let (ja, bytes) = round(&mut a, "a").await;
    assert!(ja.is_leader());
    assert_eq!(ja.protocol.as_deref(), Some("v0"));
    assert_eq!(bytes, format!("a->{}", ja.member_id));
    assert!(!a.rebalance_needed());

    // A second member: the first learns of the rebalance through its heartbeat.
    let mut m2 = connect(config("g", "connect")).await.unwrap();
    let second = tokio::spawn(async move {
        let r = round(&mut m2, "b").await;
        (m2, r)
    });
    tokio::time::timeout(Duration::from_secs(5), a.rebalance_notified())
        .await
        .expect("the heartbeat reports the rebalance");
    let (ja2, bytes_a) = round(&mut a, "a").await;
    let (mut m2, (jb, bytes_b)) = second.await.unwrap();
    assert_eq!(ja2.generation_id, jb.generation_id);
    assert!(ja2.generation_id > ja.generation_id);
    assert_eq!(bytes_a, format!("a->{}", ja2.member_id));
    assert_eq!(bytes_b, format!("b->{}", jb.member_id));
    let leaders = [ja2.is_leader(), jb.is_leader()];
    assert_eq!(leaders.iter().filter(|l| **l).count(), 1);
    let leader = if ja2.is_leader() { &ja2 } else { &jb };
    assert_eq!(leader.members.len(), 2);

    // A member of another protocol type is refused.
    let mut other = connect(config("g", "consumer")).await.unwrap();
    let e = other
        .join(&[("range".to_owned(), Bytes::from_static(b"x"))])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("INCONSISTENT_GROUP_PROTOCOL"), "{e}");

    // Leaving: the other member rebalances at once and is alone in the next generation.
    m2.leave().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), a.rebalance_notified())
        .await
        .expect("a leave starts a rebalance");
    let (ja3, _) = round(&mut a, "a").await;
    assert!(ja3.is_leader());
    assert_eq!(ja3.members.len(), 1);

    // A member that goes silent is removed after its session timeout.
    let mut m3 = connect(config("g", "connect")).await.unwrap();
    let third = tokio::spawn(async move {
        let r = round(&mut m3, "c").await;
        (m3, r)
    });
    a.rebalance_notified().await;
    let _ = round(&mut a, "a").await;
    let (m3, _) = third.await.unwrap();
    drop(m3); // stops its heartbeat without leaving
    let silent = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), a.rebalance_notified())
        .await
        .expect("the silent member's session expires");
    assert!(
        silent.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        silent.elapsed()
    );
    let (ja4, _) = round(&mut a, "a").await;
    assert_eq!(ja4.members.len(), 1);
    a.leave().await.unwrap();
}
