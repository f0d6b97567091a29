//! The share-group assignment, in the spirit of Kafka's SimpleAssignor: partitions are
//! shared, not owned. For each topic, with its subscribers in member-id order: when there
//! are at least as many partitions as subscribers, the partitions are dealt round-robin (each
//! to one member); when there are more subscribers, every subscriber gets one partition,
//! dealt round-robin, so each partition is read by several members and none is left out.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::TopicPartitions;

/// Member id → its partitions, from member id → subscribed topic names and a lookup of a
/// topic's id and partitions (`None`: no such topic, skipped).
pub fn assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    topic: impl Fn(&str) -> Option<(Uuid, Vec<i32>)>,
) -> BTreeMap<String, TopicPartitions> {
    let mut subscribers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for t in topics {
            subscribers
                .entry(t.as_str())
                .or_default()
                .push(member.as_str());
        }
    }
    let mut out: BTreeMap<String, TopicPartitions> = subscriptions
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for (name, members) in subscribers {
        let Some((topic_id, mut partitions)) = topic(name) else {
            continue;
        };
        if partitions.is_empty() {
            continue;
        }
        partitions.sort_unstable();
        let mut give = |member: &str, partition: i32| {
            let list = out
                .get_mut(member)
                .expect("every subscriber has an entry")
                .entry(topic_id)
                .or_default();
            list.push(partition);
            list.sort_unstable();
        };
        if partitions.len() >= members.len() {
            for (i, p) in partitions.iter().enumerate() {
                give(members[i % members.len()], *p);
            }
        } else {
            for (i, m) in members.iter().enumerate() {
                give(m, partitions[i % partitions.len()]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn topics(name: &str) -> Option<(Uuid, Vec<i32>)> {
        match name {
            "a" => Some((Uuid::from_u128(1), vec![0, 1, 2])),
            "b" => Some((Uuid::from_u128(2), vec![0])),
            _ => None,
        }
    }

    #[test]
    fn partitions_are_dealt_and_shared_when_members_outnumber_them() {
        let out = assign(&subs(&[("m1", &["a", "b"]), ("m2", &["a", "b"])]), topics);
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(out["m1"][&a], vec![0, 2]);
        assert_eq!(out["m2"][&a], vec![1]);
        // One partition, two members: both read it.
        assert_eq!(out["m1"][&b], vec![0]);
        assert_eq!(out["m2"][&b], vec![0]);
        // Unknown topics are skipped; a member of only those gets nothing.
        let out = assign(&subs(&[("m1", &["zzz"])]), topics);
        assert!(out["m1"].is_empty());
        // Four members on three partitions: every partition read, every member busy.
        let four = subs(&[("1", &["a"]), ("2", &["a"]), ("3", &["a"]), ("4", &["a"])]);
        let out = assign(&four, topics);
        let got: Vec<i32> = out.values().map(|t| t[&a][0]).collect();
        assert_eq!(got, vec![0, 1, 2, 0]);
    }
}
