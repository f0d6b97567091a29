//! `__consumer_offsets` on this broker: created through the controller on first use
//! (compacted, with the `offsets.topic.*` settings), appended to and replayed through the
//! replica manager's partition logs (the shared code is in `internal_topic.rs`).

use bytes::{Bytes, BytesMut};
use strom_protocol::ErrorCode;

use super::log::{OffsetsLog, OFFSETS_TOPIC};
use crate::broker::Broker;
use crate::internal_topic::{self, InternalTopic};

impl Broker {
    fn offsets_topic(&self) -> InternalTopic<'_> {
        let config = self.config();
        InternalTopic {
            name: OFFSETS_TOPIC,
            partitions: config.offsets_topic_num_partitions(),
            replication_factor: config.offsets_topic_replication_factor(),
            segment_bytes: config.offsets_topic_segment_bytes(),
            creation: &self.groups().topic_creation,
        }
    }
}

/// Kafka's translation of a failed append to what a group client understands.
pub(crate) fn coordinator_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            ErrorCode::InvalidCommitOffsetSize
        }
        ErrorCode::UnknownTopicOrPartition => ErrorCode::CoordinatorNotAvailable,
        // Only transactional offset commits carry a producer epoch (TxnOffsetCommit).
        ErrorCode::InvalidProducerEpoch => ErrorCode::InvalidProducerEpoch,
        _ => ErrorCode::UnknownServerError,
    }
}

impl Broker {
    /// Waits until the ISR has what this request wrote to `group_id`'s partition (cluster
    /// mode; see `internal_topic::wait_for_isr`).
    pub(crate) async fn group_write_replicated(&self, group_id: &str) -> Result<(), ErrorCode> {
        let partition = super::records::partition_for(group_id, self.offsets_partitions()?);
        internal_topic::wait_for_isr(self, OFFSETS_TOPIC, partition).await
    }
}

impl OffsetsLog for Broker {
    fn offsets_partitions(&self) -> Result<i32, ErrorCode> {
        self.offsets_topic().ensure(self)
    }

    fn append_batch(&self, partition: i32, batch: BytesMut) -> Result<(), ErrorCode> {
        internal_topic::append(self, OFFSETS_TOPIC, partition, batch).map_err(coordinator_error)
    }

    fn read_batches(&self, visit: &mut dyn FnMut(i32, Bytes)) -> Result<(), String> {
        internal_topic::read_batches(self, OFFSETS_TOPIC, None, visit)
    }

    fn read_partition_batches(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(Bytes),
    ) -> Result<(), String> {
        internal_topic::read_batches(self, OFFSETS_TOPIC, Some(partition), &mut |_, b| visit(b))
    }
}
