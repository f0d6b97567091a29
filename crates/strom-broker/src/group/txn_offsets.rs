//! Transactional offset commits (TxnOffsetCommit, KIP-98): offsets are written to
//! `__consumer_offsets` in transactional batches and staged per (producer, partition); the
//! commit marker makes them visible, the abort marker drops them. Replay follows the markers.

use std::collections::HashMap;

use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::control::{control_record_type, ControlRecordType};
use strom_protocol::ErrorCode;

use super::coordinator::{commit_values, GroupCoordinator, OffsetCommit};
use super::log::{OffsetsLog, OFFSETS_TOPIC};
use super::manager::{CommitAuth, TopicPartition};
use super::records::{decode, encode, partition_for, GroupRecord, OffsetCommitValue};

/// Offsets written by a transaction, waiting for its marker: (group, partition, value).
pub(crate) type StagedOffsets = Vec<(String, TopicPartition, OffsetCommitValue)>;

/// Staged offsets keyed by (producer id, `__consumer_offsets` partition).
#[derive(Debug, Default)]
pub struct PendingTxnOffsets {
    staged: HashMap<(i64, i32), StagedOffsets>,
}

impl GroupCoordinator {
    /// TxnOffsetCommit: validates the committer like OffsetCommit, writes the offsets in a
    /// transactional batch of (`producer_id`, `producer_epoch`), and stages them.
    pub fn txn_commit(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        auth: &CommitAuth,
        producer: (i64, i16),
        offsets: Vec<(TopicPartition, OffsetCommit)>,
    ) -> Result<Vec<(TopicPartition, Option<ErrorCode>)>, ErrorCode> {
        let partitions = log.offsets_partitions()?;
        let partition = partition_for(group_id, partitions);
        self.owned.status(partition)?;
        let now = self.clock_ms();
        let consumer = self.check_consumer_txn_commit(group_id, auth)?;
        let (results, accepted) = self.with_manager(|groups| {
            if !consumer {
                groups.validate_commit(group_id, auth, now)?;
            }
            let max_metadata = groups.config().offset_metadata_max_bytes;
            let (results, accepted) = commit_values(offsets, max_metadata, now, None);
            let accepted: StagedOffsets = accepted
                .into_iter()
                .map(|(tp, value)| (group_id.to_owned(), tp, value))
                .collect();
            Ok::<_, ErrorCode>((results, accepted))
        })?;
        if accepted.is_empty() {
            return Ok(results);
        }
        let mut builder = BatchBuilder::new(0);
        builder.producer = Some((producer.0, producer.1, -1));
        builder.attributes = 0x10;
        for (group, (topic, p), value) in &accepted {
            let (key, value) = encode(&GroupRecord::Offset {
                group_id: group.clone(),
                topic: topic.clone(),
                partition: *p,
                value: Some(value.clone()),
            });
            builder.push(Some(&key), value.as_deref(), now);
        }
        // An older epoch is refused by the log: a newer producer owns the transactional id.
        log.append_batch(partition, builder.build())?;
        self.pending_txn_offsets()
            .lock()
            .staged
            .entry((producer.0, partition))
            .or_default()
            .extend(accepted);
        Ok(results)
    }

    /// The marker of `producer_id`'s transaction reached `partition` of `__consumer_offsets`:
    /// its staged offsets become visible (commit) or are dropped (abort).
    pub fn complete_txn(&self, producer_id: i64, partition: i32, commit: bool) {
        let staged = self
            .pending_txn_offsets()
            .lock()
            .staged
            .remove(&(producer_id, partition));
        if let (Some(staged), true) = (staged, commit) {
            let now = self.clock_ms();
            self.with_manager(|groups| {
                for (group, tp, value) in staged {
                    groups.apply_commit(&group, vec![(tp, value)], now);
                }
            });
        }
    }

    /// Whether an open transaction has staged an offset of `group_id` for `partition`
    /// (OffsetFetch `require_stable`, KIP-447).
    pub fn has_pending_txn_offset(&self, group_id: &str, partition: &TopicPartition) -> bool {
        self.pending_txn_offsets()
            .lock()
            .staged
            .values()
            .any(|v| v.iter().any(|(g, tp, _)| g == group_id && tp == partition))
    }
}

/// Replays one read of a `__consumer_offsets` partition: plain records go to `visit`,
/// transactional ones are staged until their marker (commit: `visit`, abort: dropped).
pub(crate) fn replay_batches(
    pending: &mut PendingTxnOffsets,
    partition: i32,
    batches: &[u8],
    mut visit: impl FnMut(GroupRecord),
) {
    crate::internal_topic::for_each_batch(OFFSETS_TOPIC, batches, |header| {
        let key = (header.producer_id(), partition);
        if header.is_control() {
            let staged = pending.staged.remove(&key).unwrap_or_default();
            if control_record_type(header) == Some(ControlRecordType::Commit) {
                for (group_id, (topic, p), value) in staged {
                    visit(GroupRecord::Offset {
                        group_id,
                        topic,
                        partition: p,
                        value: Some(value),
                    });
                }
            }
            return;
        }
        for record in header.records() {
            let decoded = record
                .map_err(|e| e.to_string())
                .and_then(|r| decode(r.key, r.value).map_err(|e| e.to_string()));
            match decoded {
                Ok(GroupRecord::Offset {
                    group_id,
                    topic,
                    partition: p,
                    value: Some(value),
                }) if header.is_transactional() => {
                    pending
                        .staged
                        .entry(key)
                        .or_default()
                        .push((group_id, (topic, p), value));
                }
                Ok(r) => visit(r),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable record of {OFFSETS_TOPIC}")
                }
            }
        }
    });
}

impl PendingTxnOffsets {
    /// Drops what is staged on `partition` (given up to another coordinator).
    pub(crate) fn unload(&mut self, partition: i32) {
        self.staged.retain(|(_, p), _| *p != partition);
    }

    /// Adds what a replay left staged (transactions still open at start-up).
    pub(crate) fn absorb(&mut self, other: PendingTxnOffsets) {
        for (k, v) in other.staged {
            self.staged.entry(k).or_default().extend(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strom_protocol::record_batch::control::marker_batch;
    use strom_storage::SystemClock;

    use super::*;
    use crate::group::log::MemoryLog;
    use crate::group::GroupConfig;

    fn simple() -> CommitAuth {
        CommitAuth {
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            version_9_or_later: false,
        }
    }

    fn offset(o: i64) -> Vec<(TopicPartition, OffsetCommit)> {
        let commit = OffsetCommit {
            offset: o,
            leader_epoch: -1,
            metadata: None,
        };
        vec![(("t".to_owned(), 0), commit)]
    }

    fn committed(c: &GroupCoordinator, log: &MemoryLog) -> Option<i64> {
        let tp = ("t".to_owned(), 0);
        let got = c.fetch(log, "g", Some(std::slice::from_ref(&tp))).unwrap();
        got[0].1.as_ref().map(|v| v.offset)
    }

    fn marker(log: &MemoryLog, producer_id: i64, commit: bool) {
        let kind = if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        log.append_batch(0, marker_batch(producer_id, 0, kind, 0, 1))
            .unwrap();
    }

    #[test]
    fn staged_offsets_follow_the_marker_live_and_on_replay() {
        let log = MemoryLog::new(1);
        let c = GroupCoordinator::new(GroupConfig::default(), Arc::new(SystemClock));
        c.txn_commit(&log, "g", &simple(), (7, 0), offset(5))
            .unwrap();
        assert_eq!(committed(&c, &log), None);
        assert!(c.has_pending_txn_offset("g", &("t".to_owned(), 0)));
        marker(&log, 7, false);
        c.complete_txn(7, 0, false);
        assert_eq!(committed(&c, &log), None);
        c.txn_commit(&log, "g", &simple(), (7, 0), offset(6))
            .unwrap();
        marker(&log, 7, true);
        c.complete_txn(7, 0, true);
        assert_eq!(committed(&c, &log), Some(6));
        // Producer 8 leaves a transaction open: after a restart it is still staged.
        c.txn_commit(&log, "g", &simple(), (8, 0), offset(9))
            .unwrap();
        let restarted = GroupCoordinator::new(GroupConfig::default(), Arc::new(SystemClock));
        restarted.load(&log).unwrap();
        assert_eq!(committed(&restarted, &log), Some(6));
        assert!(restarted.has_pending_txn_offset("g", &("t".to_owned(), 0)));
        marker(&log, 8, true);
        restarted.complete_txn(8, 0, true);
        assert_eq!(committed(&restarted, &log), Some(9));
    }
}
