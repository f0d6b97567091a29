//! `__transaction_state` and transaction markers on this broker: the topic is created through
//! the controller on first use (compacted, `transaction.state.log.*` settings); markers are
//! appended straight to the partition logs hosted here (no WriteTxnMarkers on a single node).

use bytes::{Bytes, BytesMut};
use strom_protocol::record_batch::control::{marker_batch, ControlRecordType};
use strom_protocol::ErrorCode;

use super::log::{TxnLog, TXN_STATE_TOPIC};
use super::state::Completion;
use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::internal_topic::{self, InternalTopic};

/// What a transactional client understands when `__transaction_state` cannot be written.
fn coordinator_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::UnknownTopicOrPartition => ErrorCode::CoordinatorNotAvailable,
        _ => ErrorCode::UnknownServerError,
    }
}

impl Broker {
    fn txn_state_topic(&self) -> InternalTopic<'_> {
        let config = self.config();
        let segment_bytes = config
            .value_and_source("transaction.state.log.segment.bytes")
            .0
            .and_then(|v| v.parse().ok())
            .unwrap_or(104_857_600);
        InternalTopic {
            name: TXN_STATE_TOPIC,
            partitions: config.transaction_state_log_num_partitions(),
            replication_factor: config.transaction_state_log_replication_factor(),
            segment_bytes,
            creation: &self.txns().topic_creation,
        }
    }
}

impl Broker {
    /// Waits until the ISR has what this request wrote to `transactional_id`'s partition
    /// (cluster mode; see `internal_topic::wait_for_isr`).
    pub(crate) async fn txn_write_replicated(
        &self,
        transactional_id: &str,
    ) -> Result<(), ErrorCode> {
        let partition = super::records::partition_for(transactional_id, self.txn_partitions()?);
        internal_topic::wait_for_isr(self, TXN_STATE_TOPIC, partition).await
    }
}

impl TxnLog for Broker {
    fn txn_partitions(&self) -> Result<i32, ErrorCode> {
        self.txn_state_topic().ensure(self)
    }

    fn append_txn_batch(&self, partition: i32, batch: BytesMut) -> Result<(), ErrorCode> {
        internal_topic::append(self, TXN_STATE_TOPIC, partition, batch).map_err(coordinator_error)
    }

    fn read_txn_batches(&self, visit: &mut dyn FnMut(i32, Bytes)) -> Result<(), String> {
        internal_topic::read_batches(self, TXN_STATE_TOPIC, None, visit)
    }

    fn read_txn_partition_batches(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(Bytes),
    ) -> Result<(), String> {
        internal_topic::read_batches(self, TXN_STATE_TOPIC, Some(partition), &mut |_, b| visit(b))
    }

    fn write_markers(&self, c: &Completion, coordinator_epoch: i32) -> Result<(), ErrorCode> {
        let kind = if c.commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        let now = strom_storage::Clock::now_ms(&strom_storage::SystemClock);
        for (topic, partition) in &c.partitions {
            let batch = marker_batch(
                c.producer_id,
                c.producer_epoch,
                kind,
                coordinator_epoch,
                now,
            );
            match internal_topic::append(self, topic, *partition, batch) {
                Ok(()) => {}
                // The topic was deleted meanwhile: nothing is left to mark (Kafka skips it too).
                Err(ErrorCode::NotLeaderOrFollower) if self.image().topic(topic).is_none() => {}
                Err(e) => return Err(e),
            }
            if topic == OFFSETS_TOPIC {
                self.groups()
                    .complete_txn(c.producer_id, *partition, c.commit);
            }
        }
        Ok(())
    }
}
