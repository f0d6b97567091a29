//! Property: whatever sequence of operations the controller accepted or refused, reopening the
//! log and replaying it gives exactly the image the controller held.

use proptest::prelude::*;

use super::*;

const NAMES: [&str; 4] = ["a.b", "a_b", "orders", "__consumer_offsets"];
const KEYS: [(&str, &[&str]); 3] = [
    ("retention.ms", &["-1", "1000", "soon"]),
    ("cleanup.policy", &["compact", "delete", "compact,delete"]),
    ("segment.bytes", &["1048576", "12"]),
];

#[derive(Debug, Clone)]
enum Op {
    Register(i32),
    Create {
        name: usize,
        partitions: i32,
        rf: i16,
    },
    Delete(usize),
    AddPartitions {
        name: usize,
        total: i32,
    },
    Alter {
        name: usize,
        key: usize,
        value: usize,
        op: i8,
    },
    Replace {
        name: usize,
        key: usize,
        value: usize,
    },
    ProducerIds(i32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..4i32).prop_map(Op::Register),
        (0..4usize, -1..4i32, -1..3i16).prop_map(|(name, partitions, rf)| Op::Create {
            name,
            partitions,
            rf
        }),
        (0..4usize).prop_map(Op::Delete),
        (0..4usize, 0..6i32).prop_map(|(name, total)| Op::AddPartitions { name, total }),
        (0..4usize, 0..3usize, 0..3usize, 0..4i8).prop_map(|(name, key, value, op)| Op::Alter {
            name,
            key,
            value,
            op
        }),
        (0..4usize, 0..3usize, 0..3usize).prop_map(|(name, key, value)| Op::Replace {
            name,
            key,
            value
        }),
        (1..4i32).prop_map(Op::ProducerIds),
    ]
}

fn run(c: &mut Controller, op: Op) {
    let value = |key: usize, v: usize| KEYS[key].1[v % KEYS[key].1.len()].to_string();
    // Refusals are part of the property: they must leave no trace in the log.
    let _ = match op {
        Op::Register(id) => c.register_broker(id, "localhost", 9000 + id as u16, None),
        Op::Create {
            name,
            partitions,
            rf,
        } => {
            let mut r = req(NAMES[name], partitions, rf);
            r.configs = vec![set("retention.ms", "1000")];
            c.create_topics(vec![r], false).pop().unwrap().map(|_| ())
        }
        Op::Delete(name) => c
            .delete_topics(vec![NAMES[name].into()])
            .pop()
            .unwrap()
            .map(|_| ()),
        Op::AddPartitions { name, total } => c.create_partitions(NAMES[name], total, vec![], false),
        Op::Alter {
            name,
            key,
            value: v,
            op,
        } => {
            let op = AlterConfigOp::try_from(op).unwrap();
            let ops = vec![(KEYS[key].0.to_string(), op, Some(value(key, v)))];
            c.incremental_alter_configs(topic_res(NAMES[name]), ops, false)
        }
        Op::Replace {
            name,
            key,
            value: v,
        } => {
            let configs = vec![(KEYS[key].0.to_string(), Some(value(key, v)))];
            c.alter_configs(topic_res(NAMES[name]), configs, false)
        }
        Op::ProducerIds(id) => c.allocate_producer_id_block(id).map(|_| ()),
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reopened_log_replays_to_the_same_image(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(dir.path(), "", &[1]);
        for op in ops {
            run(&mut c, op);
        }
        let image = c.image();
        drop(c);
        let reopened = open(dir.path(), "", &[]);
        prop_assert_eq!(&*reopened.image(), &*image);
    }
}
