//! Tests of one group's internals that the manager-level tests cannot reach directly.

use bytes::Bytes;

use super::*;

fn member(id: &str, protocols: &[&str]) -> Member {
    Member {
        member_id: id.to_owned(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 1000,
        session_timeout_ms: 1000,
        protocols: protocols
            .iter()
            .map(|p| Protocol {
                name: (*p).to_owned(),
                metadata: Bytes::new(),
            })
            .collect(),
        assignment: Bytes::new(),
        awaiting_join: None,
        awaiting_sync: None,
        heartbeat_deadline_ms: 0,
    }
}

#[test]
fn protocol_is_chosen_by_member_votes_among_common_ones() {
    let mut g = Group::new("g", 0);
    for (id, protocols) in [
        ("a", &["range", "roundrobin", "sticky"][..]),
        ("b", &["roundrobin", "range"][..]),
        ("c", &["roundrobin", "range", "sticky"][..]),
    ] {
        g.members.insert(id.to_owned(), member(id, protocols));
    }
    // "sticky" is not common; two of three prefer roundrobin.
    assert_eq!(
        g.candidate_protocols(None),
        vec!["range".to_owned(), "roundrobin".to_owned()]
    );
    assert_eq!(g.select_protocol(), "roundrobin");
    // A tie goes to the first member's preference.
    g.members.shift_remove("c");
    assert_eq!(g.select_protocol(), "range");
}

#[test]
fn protocol_support_excludes_the_joining_member_itself() {
    let mut g = Group::new("g", 0);
    g.protocol_type = Some("consumer".into());
    g.members.insert("a".into(), member("a", &["range"]));
    let sticky = [Protocol {
        name: "sticky".into(),
        metadata: Bytes::new(),
    }];
    // The only member may switch assignors; a second one must share one.
    assert!(g.supports_protocols("a", "consumer", &sticky));
    assert!(!g.supports_protocols("b", "consumer", &sticky));
    assert!(!g.supports_protocols("b", "connect", &[]));
    let empty_group = Group::new("h", 0);
    assert!(!empty_group.supports_protocols("", "", &sticky));
    assert!(!empty_group.supports_protocols("", "consumer", &[]));
    assert!(empty_group.supports_protocols("", "consumer", &sticky));
}

#[test]
#[should_panic(expected = "illegal transition")]
fn illegal_transitions_are_bugs() {
    let mut g = Group::new("g", 0);
    g.transition(GroupState::Stable, 1);
}

#[test]
fn state_names_parse_case_insensitively() {
    for s in [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ] {
        assert_eq!(GroupState::parse(&s.name().to_lowercase()), Some(s));
    }
    assert_eq!(GroupState::parse("Rebalancing"), None);
}
