//! The internal compacted topics of the coordinators (`__consumer_offsets`,
//! `__transaction_state`) on this broker: created through the controller on first use,
//! appended to and replayed through the replica manager's partition logs.

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use strom_metadata::{ControllerError, CreateTopicRequest};
use strom_protocol::ErrorCode;

use crate::broker::Broker;
use crate::errors::log_error_code;

/// How much of a partition one replay read takes.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// How an internal topic is created.
pub(crate) struct InternalTopic<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication_factor: i16,
    pub segment_bytes: i32,
    /// Serializes the creation, so that no request sees the topic before its logs are open.
    pub creation: &'a Mutex<()>,
}

impl InternalTopic<'_> {
    /// The topic's partition count, creating the topic first if it does not exist.
    pub fn ensure(&self, broker: &Broker) -> Result<i32, ErrorCode> {
        // The image shows a new topic before its logs are open: wait out a creation.
        drop(self.creation.lock());
        match broker.image().topic(self.name) {
            Some(topic) => Ok(topic.partitions.len() as i32),
            None => self.create(broker),
        }
    }

    fn create(&self, broker: &Broker) -> Result<i32, ErrorCode> {
        let name = self.name;
        let _creating = self.creation.lock();
        // Created while this request waited: the creator has opened its logs.
        if let Some(topic) = broker.image().topic(name) {
            return Ok(topic.partitions.len() as i32);
        }
        let request = CreateTopicRequest {
            name: name.to_owned(),
            num_partitions: self.partitions,
            replication_factor: self.replication_factor,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_owned(), Some("compact".to_owned())),
                ("compression.type".to_owned(), Some("producer".to_owned())),
                (
                    "segment.bytes".to_owned(),
                    Some(self.segment_bytes.to_string()),
                ),
            ],
        };
        let result = broker
            .controller_op(strom_metadata::ControllerOp::CreateTopics {
                topics: vec![request],
                validate_only: false,
            })
            .into_create_topics(1);
        match result.into_iter().next() {
            Some(Ok(created)) => {
                tracing::info!(partitions = created.num_partitions, "created {name}");
                Ok(created.num_partitions)
            }
            // Another request created it first.
            Some(Err(ControllerError::TopicAlreadyExists { .. })) => broker
                .image()
                .topic(name)
                .map(|t| t.partitions.len() as i32)
                .ok_or(ErrorCode::CoordinatorNotAvailable),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot create {name}");
                Err(ErrorCode::CoordinatorNotAvailable)
            }
            None => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }
}

/// Appends one batch to a partition of `topic`; the error is the log's own code
/// (`NotLeaderOrFollower` when the partition is not hosted here).
pub(crate) fn append(
    broker: &Broker,
    topic: &str,
    partition: i32,
    batch: BytesMut,
) -> Result<(), ErrorCode> {
    let log = broker
        .replicas()
        .partition(topic, partition)
        .ok_or(ErrorCode::NotLeaderOrFollower)?;
    // Coordinator writes to a log that fsyncs on append (flush.messages) leave the runtime.
    let append = || log.log.append(batch).map_err(|e| log_error_code(&e));
    if log.log.config().flush_messages < crate::handlers::NEVER_FLUSH {
        crate::broker::off_runtime(append)?;
    } else {
        append()?;
    }
    log.notify_appended();
    Ok(())
}

/// The stored batches of every partition of `topic`, in offset order; nothing if no topic.
pub(crate) fn read_batches(
    broker: &Broker,
    topic_name: &str,
    visit: &mut dyn FnMut(i32, Bytes),
) -> Result<(), String> {
    let Some(topic) = broker.image().topic(topic_name).cloned() else {
        return Ok(());
    };
    for index in topic.partitions.keys() {
        let Some(partition) = broker.replicas().partition(topic_name, *index) else {
            continue;
        };
        let log = &partition.log;
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let read = log
                .read(offset, REPLAY_READ_BYTES, None)
                .map_err(|e| format!("{topic_name}-{index}: {e}"))?;
            let Some(slice) = read.slice else {
                break;
            };
            let bytes = slice
                .read_to_bytes()
                .map_err(|e| format!("{topic_name}-{index}: {e}"))?;
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

/// Visits each batch of a replay read of `topic`, decompressed. An unreadable batch ends the
/// read (what follows cannot be framed); one that does not decompress is skipped.
pub(crate) fn for_each_batch(
    topic: &str,
    batches: &[u8],
    mut visit: impl FnMut(&strom_protocol::RecordBatchHeader<'_>),
) {
    for batch in strom_protocol::BatchSplitter::new(batches, usize::MAX) {
        let Ok(batch) = batch else {
            tracing::warn!("unreadable batch in {topic}; skipping the rest");
            return;
        };
        let plain = match strom_protocol::compression::decompress_batch(batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot decompress a batch of {topic}");
                continue;
            }
        };
        if let Ok(header) = strom_protocol::RecordBatchHeader::parse(&plain) {
            visit(&header);
        }
    }
}

/// The offset after the last whole batch in `bytes`.
pub(crate) fn next_offset(bytes: &[u8]) -> Option<i64> {
    strom_protocol::BatchSplitter::new(bytes, usize::MAX)
        .map_while(Result::ok)
        .filter_map(|b| strom_protocol::RecordBatchHeader::parse(b).ok())
        .map(|h| h.last_offset() + 1)
        .last()
}
