//! The records of `__share_group_state`, Strom's own format (not Kafka's): a compacted
//! topic whose latest record per key is the truth. Two kinds of keys:
//!
//! - version 0, a share partition `(group, topic id, partition)`: its start and end
//!   offsets and its in-flight records as runs of `(first, last, state, delivery count)`
//!   (Acquired records are stored Available: a lock does not survive a restart);
//! - version 1, a group's configs (`share.auto.offset.reset`, ...), written by
//!   IncrementalAlterConfigs on GROUP resources.
//!
//! A null value deletes the key. All integers big-endian, strings i16-length-prefixed.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::partition::{InFlight, RecordState, SharePartition};

/// The internal topic's name (as Kafka's).
pub const STATE_TOPIC: &str = "__share_group_state";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    Partition(PartitionKey, Option<SharePartition>),
    GroupConfig(String, Option<BTreeMap<String, String>>),
}

pub fn encode(record: &StateRecord) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut key = Vec::new();
    match record {
        StateRecord::Partition(k, value) => {
            key.extend_from_slice(&0i16.to_be_bytes());
            put_str(&mut key, &k.group);
            key.extend_from_slice(k.topic_id.as_bytes());
            key.extend_from_slice(&k.partition.to_be_bytes());
            let value = value.as_ref().map(|sp| {
                let mut out = Vec::new();
                out.extend_from_slice(&0i16.to_be_bytes());
                out.extend_from_slice(&sp.start_offset.to_be_bytes());
                out.extend_from_slice(&sp.end_offset.to_be_bytes());
                let runs = runs_of(sp);
                out.extend_from_slice(&(runs.len() as i32).to_be_bytes());
                for (first, last, state, count) in runs {
                    out.extend_from_slice(&first.to_be_bytes());
                    out.extend_from_slice(&last.to_be_bytes());
                    out.push(state as u8);
                    out.extend_from_slice(&count.to_be_bytes());
                }
                out
            });
            (key, value)
        }
        StateRecord::GroupConfig(group, configs) => {
            key.extend_from_slice(&1i16.to_be_bytes());
            put_str(&mut key, group);
            let value = configs.as_ref().map(|configs| {
                let mut out = Vec::new();
                out.extend_from_slice(&0i16.to_be_bytes());
                out.extend_from_slice(&(configs.len() as i32).to_be_bytes());
                for (k, v) in configs {
                    put_str(&mut out, k);
                    put_str(&mut out, v);
                }
                out
            });
            (key, value)
        }
    }
}

/// Consecutive offsets of the same persisted state and delivery count.
fn runs_of(sp: &SharePartition) -> Vec<(i64, i64, i8, i16)> {
    let mut runs: Vec<(i64, i64, i8, i16)> = Vec::new();
    for (offset, record) in &sp.records {
        let state = record.state.code();
        match runs.last_mut() {
            Some(run)
                if run.1 + 1 == *offset && run.2 == state && run.3 == record.delivery_count =>
            {
                run.1 = *offset
            }
            _ => runs.push((*offset, *offset, state, record.delivery_count)),
        }
    }
    runs
}

pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<StateRecord, String> {
    let mut k = Reader(key.ok_or("record without a key")?);
    match k.i16()? {
        0 => {
            let group = k.string()?;
            let topic_id = Uuid::from_slice(k.take(16)?).map_err(|e| e.to_string())?;
            let partition = k.i32()?;
            let key = PartitionKey {
                group,
                topic_id,
                partition,
            };
            let Some(value) = value else {
                return Ok(StateRecord::Partition(key, None));
            };
            let mut v = Reader(value);
            if v.i16()? != 0 {
                return Err("unknown share partition value version".into());
            }
            let mut sp = SharePartition::starting_at(v.i64()?);
            sp.end_offset = v.i64()?;
            for _ in 0..v.i32()? {
                let (first, last) = (v.i64()?, v.i64()?);
                let state = RecordState::from_code(v.take(1)?[0] as i8).ok_or("unknown state")?;
                let delivery_count = v.i16()?;
                if last < first || last - first > 1 << 20 {
                    return Err(format!("bad run {first}..={last}"));
                }
                for offset in first..=last {
                    sp.records.insert(
                        offset,
                        InFlight {
                            state,
                            delivery_count,
                            owner: None,
                            deadline_ms: 0,
                        },
                    );
                }
            }
            Ok(StateRecord::Partition(key, Some(sp)))
        }
        1 => {
            let group = k.string()?;
            let Some(value) = value else {
                return Ok(StateRecord::GroupConfig(group, None));
            };
            let mut v = Reader(value);
            if v.i16()? != 0 {
                return Err("unknown group config value version".into());
            }
            let mut configs = BTreeMap::new();
            for _ in 0..v.i32()? {
                let name = v.string()?;
                configs.insert(name, v.string()?);
            }
            Ok(StateRecord::GroupConfig(group, Some(configs)))
        }
        other => Err(format!("unknown key version {other}")),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated record".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = usize::try_from(self.i16()?).map_err(|_| "negative length")?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::partition::{BatchBounds, Limits, ACK_ACCEPT, ACK_RELEASE};

    #[test]
    fn share_partition_state_round_trips_with_locks_dropped() {
        let limits = Limits {
            lock_duration_ms: 100,
            delivery_count_limit: 5,
        };
        let mut sp = SharePartition::starting_at(3);
        let batch = BatchBounds {
            base_offset: 0,
            last_offset: 9,
            control: false,
        };
        sp.acquire("m", &[batch], 10, 100, 0, &limits);
        sp.acknowledge("m", 4, 5, &[ACK_ACCEPT], &limits).unwrap();
        sp.acknowledge("m", 6, 6, &[ACK_RELEASE], &limits).unwrap();
        let key = PartitionKey {
            group: "g".into(),
            topic_id: Uuid::from_u128(7),
            partition: 2,
        };
        let (k, v) = encode(&StateRecord::Partition(key.clone(), Some(sp.clone())));
        let StateRecord::Partition(back_key, Some(back)) = decode(Some(&k), v.as_deref()).unwrap()
        else {
            panic!("not a partition record");
        };
        assert_eq!(back_key, key);
        assert_eq!((back.start_offset, back.end_offset), (3, 10));
        assert_eq!(back.records[&4].state, RecordState::Acknowledged);
        // Acquired before the restart: available again, its delivery counted.
        assert_eq!(back.records[&3].state, RecordState::Available);
        assert_eq!(back.records[&3].delivery_count, 1);
        assert_eq!(back.records.len(), 7);
        let (k, v) = encode(&StateRecord::Partition(key.clone(), None));
        assert_eq!(
            decode(Some(&k), v.as_deref()).unwrap(),
            StateRecord::Partition(key, None)
        );
        let configs: BTreeMap<_, _> =
            [("share.auto.offset.reset".to_owned(), "earliest".to_owned())]
                .into_iter()
                .collect();
        let record = StateRecord::GroupConfig("g".into(), Some(configs));
        let (k, v) = encode(&record);
        assert_eq!(decode(Some(&k), v.as_deref()).unwrap(), record);
        assert!(decode(Some(&k[..3]), None).is_err());
    }
}
