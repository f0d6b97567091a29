//! `__consumer_offsets` on this broker: created through the controller on first use
//! (compacted, with the `offsets.topic.*` settings), appended to and replayed through the
//! replica manager's partition logs.

use bytes::{Bytes, BytesMut};
use strom_metadata::{ControllerError, CreateTopicRequest};
use strom_protocol::ErrorCode;

use super::log::{OffsetsLog, OFFSETS_TOPIC};
use crate::broker::Broker;
use crate::errors::log_error_code;

/// How much of a partition one replay read takes.
const REPLAY_READ_BYTES: usize = 1 << 20;

impl Broker {
    fn create_offsets_topic(&self) -> Result<i32, ErrorCode> {
        let _creating = self.groups().topic_creation.lock();
        // Created while this request waited: the creator has opened its logs.
        if let Some(topic) = self.image().topic(OFFSETS_TOPIC) {
            return Ok(topic.partitions.len() as i32);
        }
        let config = self.config();
        let request = CreateTopicRequest {
            name: OFFSETS_TOPIC.to_owned(),
            num_partitions: config.offsets_topic_num_partitions(),
            replication_factor: config.offsets_topic_replication_factor(),
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_owned(), Some("compact".to_owned())),
                ("compression.type".to_owned(), Some("producer".to_owned())),
                (
                    "segment.bytes".to_owned(),
                    Some(config.offsets_topic_segment_bytes().to_string()),
                ),
            ],
        };
        let result = self.with_controller(|c| c.create_topics(vec![request], false));
        match result.into_iter().next() {
            Some(Ok(created)) => {
                tracing::info!(
                    partitions = created.num_partitions,
                    "created {OFFSETS_TOPIC}"
                );
                Ok(created.num_partitions)
            }
            // Another request created it first.
            Some(Err(ControllerError::TopicAlreadyExists { .. })) => self
                .image()
                .topic(OFFSETS_TOPIC)
                .map(|t| t.partitions.len() as i32)
                .ok_or(ErrorCode::CoordinatorNotAvailable),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
                Err(ErrorCode::CoordinatorNotAvailable)
            }
            None => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }
}

/// Kafka's translation of a failed append to what a group client understands.
fn coordinator_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            ErrorCode::InvalidCommitOffsetSize
        }
        ErrorCode::UnknownTopicOrPartition => ErrorCode::CoordinatorNotAvailable,
        _ => ErrorCode::UnknownServerError,
    }
}

impl OffsetsLog for Broker {
    fn offsets_partitions(&self) -> Result<i32, ErrorCode> {
        // The image shows a new topic before its logs are open: wait out a creation.
        drop(self.groups().topic_creation.lock());
        match self.image().topic(OFFSETS_TOPIC) {
            Some(topic) => Ok(topic.partitions.len() as i32),
            None => self.create_offsets_topic(),
        }
    }

    fn append_batch(&self, partition: i32, batch: BytesMut) -> Result<(), ErrorCode> {
        let log = self
            .replicas()
            .partition(OFFSETS_TOPIC, partition)
            .ok_or(ErrorCode::NotCoordinator)?;
        log.log
            .append(batch)
            .map_err(|e| coordinator_error(log_error_code(&e)))?;
        log.notify_appended();
        Ok(())
    }

    fn read_batches(&self, visit: &mut dyn FnMut(i32, Bytes)) -> Result<(), String> {
        let Some(topic) = self.image().topic(OFFSETS_TOPIC).cloned() else {
            return Ok(());
        };
        for index in topic.partitions.keys() {
            let Some(partition) = self.replicas().partition(OFFSETS_TOPIC, *index) else {
                continue;
            };
            let log = &partition.log;
            let mut offset = log.log_start_offset();
            let end = log.log_end_offset();
            while offset < end {
                let read = log
                    .read(offset, REPLAY_READ_BYTES, None)
                    .map_err(|e| format!("{OFFSETS_TOPIC}-{index}: {e}"))?;
                let Some(slice) = read.slice else {
                    break;
                };
                let bytes = slice
                    .read_to_bytes()
                    .map_err(|e| format!("{OFFSETS_TOPIC}-{index}: {e}"))?;
                let next = next_offset(&bytes).filter(|n| *n > offset);
                visit(*index, bytes);
                match next {
                    Some(n) => offset = n,
                    None => break,
                }
            }
        }
        Ok(())
    }
}

/// The offset after the last whole batch in `bytes`.
fn next_offset(bytes: &[u8]) -> Option<i64> {
    strom_protocol::BatchSplitter::new(bytes, usize::MAX)
        .map_while(Result::ok)
        .filter_map(|b| strom_protocol::RecordBatchHeader::parse(b).ok())
        .map(|h| h.last_offset() + 1)
        .last()
}
