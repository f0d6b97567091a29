//! `__transaction_state` and transaction markers on this broker: the topic is created through
//! the controller on first use (compacted, `transaction.state.log.*` settings); markers are
//! appended straight to the partitions led here, and sent to the leaders of the others with
//! WriteTxnMarkers (cluster mode).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
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
        internal_topic::append(self, TXN_STATE_TOPIC, partition, batch)
            .map_err(coordinator_error)?;
        if self.config().is_quorum_over_network() {
            // A state change is applied (and Prepare* followed by markers) only once the ISR
            // has it: markers sent for a PrepareCommit lost with this leader would commit
            // data the next coordinator then aborts.
            wait_replicated(self, TXN_STATE_TOPIC, partition)?;
        }
        Ok(())
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
        let image = self.image();
        let cluster = self.config().is_quorum_over_network();
        let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, partition) in &c.partitions {
            let leader = image
                .topic(topic)
                .and_then(|t| t.partitions.get(partition))
                .map(|p| p.leader);
            match leader {
                Some(l) if cluster && l != self.node_id() => {
                    if l < 0 {
                        // No leader yet: the timer retries.
                        return Err(ErrorCode::NotLeaderOrFollower);
                    }
                    remote
                        .entry(l)
                        .or_default()
                        .push((topic.clone(), *partition));
                }
                // Local (or a deleted topic, which `append_marker` skips).
                _ => {
                    append_marker(
                        self,
                        topic,
                        *partition,
                        (c.producer_id, c.producer_epoch),
                        c.commit,
                        coordinator_epoch,
                    )?;
                    if cluster {
                        // Complete* is written only once the ISR has the marker: a marker
                        // lost with this leader would leave the transaction hanging.
                        wait_replicated(self, topic, *partition)?;
                    }
                }
            }
        }
        for (leader, partitions) in remote {
            send_markers(self, leader, c, coordinator_epoch, &partitions)?;
        }
        Ok(())
    }
}

/// Appends the commit/abort marker of `producer`'s transaction to a partition led here; on
/// `__consumer_offsets` it also settles the transaction's staged offsets. A partition of a
/// deleted topic is skipped (nothing is left to mark; Kafka skips it too).
pub(crate) fn append_marker(
    broker: &Broker,
    topic: &str,
    partition: i32,
    producer: (i64, i16),
    commit: bool,
    coordinator_epoch: i32,
) -> Result<(), ErrorCode> {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let now = strom_storage::Clock::now_ms(&strom_storage::SystemClock);
    let batch = marker_batch(producer.0, producer.1, kind, coordinator_epoch, now);
    match internal_topic::append(broker, topic, partition, batch) {
        Ok(()) => {}
        Err(ErrorCode::NotLeaderOrFollower) if broker.image().topic(topic).is_none() => {
            return Ok(())
        }
        Err(e) => return Err(e),
    }
    if topic == OFFSETS_TOPIC {
        broker.groups().complete_txn(producer.0, partition, commit);
    }
    Ok(())
}

/// Blocks until the ISR has what is in `topic`-`partition`'s log now (the marker just
/// appended). Markers are written from blocking contexts (`block_in_place`, the timer's).
fn wait_replicated(broker: &Broker, topic: &str, partition: i32) -> Result<(), ErrorCode> {
    if broker.image().topic(topic).is_none() {
        return Ok(());
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Ok(());
    };
    tokio::task::block_in_place(|| {
        runtime.block_on(internal_topic::wait_for_isr(broker, topic, partition))
    })
}

/// How long one WriteTxnMarkers round trip to a partition leader may take.
const MARKER_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// WriteTxnMarkers (v1) to broker `leader` for `partitions`; an error if the request failed
/// or any partition was refused (the coordinator retries the whole completion later; a
/// repeated marker for a finished transaction changes nothing).
fn send_markers(
    broker: &Broker,
    leader: i32,
    c: &Completion,
    coordinator_epoch: i32,
    partitions: &[(String, i32)],
) -> Result<(), ErrorCode> {
    let Some((host, port)) = broker.inter_broker_endpoint(leader) else {
        return Err(ErrorCode::NotLeaderOrFollower);
    };
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(c.producer_id);
    marker.producer_epoch = c.producer_epoch;
    marker.transaction_result = c.commit;
    marker.coordinator_epoch = coordinator_epoch;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in partitions {
        by_topic.entry(topic).or_default().push(*p);
    }
    marker.topics = by_topic
        .into_iter()
        .map(|(topic, indexes)| {
            let mut t = WritableTxnMarkerTopic::default();
            t.name = TopicName(StrBytes::from_string(topic.to_owned()));
            t.partition_indexes = indexes;
            t
        })
        .collect();
    let mut request = WriteTxnMarkersRequest::default();
    request.markers = vec![marker];
    let response: WriteTxnMarkersResponse = crate::inter_broker::call(
        broker.outbound(),
        &host,
        port,
        ApiKey::WriteTxnMarkers,
        1,
        broker.node_id(),
        &request,
        MARKER_REQUEST_TIMEOUT,
    )
    .map_err(|e| {
        tracing::warn!(leader, error = %e, "WriteTxnMarkers failed");
        ErrorCode::CoordinatorNotAvailable
    })?;
    for result in &response.markers {
        for topic in &result.topics {
            for p in &topic.partitions {
                if p.error_code != 0 {
                    let error = ErrorCode::try_from_code(p.error_code)
                        .unwrap_or(ErrorCode::UnknownServerError);
                    tracing::warn!(leader, topic = %topic.name.0, partition = p.partition_index, ?error, "marker refused");
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}
