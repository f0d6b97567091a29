//! Fetch (key 1), v4–16: whole batches up to the high watermark (read_committed: up to the
//! LSO, with the aborted transactions of the range), bounded by the byte limits (KIP-74,
//! with the broker's `fetch.max.bytes` over the request's `max_bytes`),
//! long-polling on append notifications; sessionless (session id 0, KIP-227).

use std::sync::Arc;
use std::time::Duration;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProducerId, TopicName};
use strom_metadata::MetadataImage;
use strom_protocol::ErrorCode;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{decode, respond, ApiSpec, HandlerResult, READ_COMMITTED};
use crate::broker::Broker;
use crate::errors::log_error_code;
use crate::internal_topic::next_offset;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::Fetch, 4, 16);
/// Upper bound on how long one fetch may wait, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);
/// The session epoch that means "no session / close the session".
const FINAL_EPOCH: i32 = -1;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: FetchRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let mut response = FetchResponse::default();
    if request.session_id != 0 && request.session_epoch != FINAL_EPOCH {
        // We never hand out sessions, so any session the client names is unknown to us.
        response.error_code = ErrorCode::FetchSessionIdNotFound.code();
        return respond(&SPEC, header, &response);
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + max_wait;
    let waiter = Arc::new(Notify::new());
    loop {
        let image = broker.image();
        register_waiter(broker, &image, &request, version, &waiter);
        let (topics, bytes, has_error) = read_all(broker, &image, &request, version);
        let done =
            bytes >= request.min_bytes.max(0) as usize || has_error || Instant::now() >= deadline;
        if done {
            response.responses = topics;
            return respond(&SPEC, header, &response);
        }
        if tokio::time::timeout_at(deadline, waiter.notified())
            .await
            .is_err()
        {
            // Deadline passed: answer with whatever is there now.
            continue;
        }
    }
}

fn topic_name<'a>(
    image: &'a MetadataImage,
    name: &'a TopicName,
    id: uuid::Uuid,
    version: i16,
) -> Option<&'a str> {
    if version >= 13 {
        image.topic_by_id(id).map(|t| t.name.as_str())
    } else {
        Some(name.0.as_str())
    }
}

fn register_waiter(
    broker: &Broker,
    image: &MetadataImage,
    request: &FetchRequest,
    version: i16,
    waiter: &Arc<Notify>,
) {
    for topic in &request.topics {
        let Some(name) = topic_name(image, &topic.topic, topic.topic_id, version) else {
            continue;
        };
        for p in &topic.partitions {
            if let Some(partition) = broker.replicas().partition(name, p.partition) {
                partition.register_waiter(waiter);
            }
        }
    }
}

/// Reads every requested partition once; returns the topics, the bytes read, and whether
/// any partition has an error (which answers the fetch at once, as in Kafka).
fn read_all(
    broker: &Broker,
    image: &MetadataImage,
    request: &FetchRequest,
    version: i16,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    // KIP-74: the response holds at most min(request max_bytes, fetch.max.bytes) of records,
    // except that the first batch of the first non-empty partition is always returned.
    let budget = request
        .max_bytes
        .min(broker.config().fetch_max_bytes())
        .max(0) as usize;
    let mut total = 0usize;
    let mut has_error = false;
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut out = FetchableTopicResponse::default();
            if version >= 13 {
                out.topic_id = topic.topic_id;
            } else {
                out.topic = topic.topic.clone();
            }
            let name = topic_name(image, &topic.topic, topic.topic_id, version);
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut data = PartitionData::default();
                    data.partition_index = p.partition;
                    data.high_watermark = -1;
                    data.last_stable_offset = -1;
                    data.log_start_offset = -1;
                    let Some(name) = name else {
                        data.error_code = ErrorCode::UnknownTopicId.code();
                        has_error = true;
                        return data;
                    };
                    let limit =
                        (p.partition_max_bytes.max(0) as usize).min(budget.saturating_sub(total));
                    let committed = request.isolation_level == READ_COMMITTED;
                    match read_partition(broker, image, name, p, limit, total == 0, committed) {
                        Ok(read) => {
                            total += read.records.len();
                            data.high_watermark = read.hw;
                            data.last_stable_offset = read.lso;
                            data.log_start_offset = read.log_start;
                            data.aborted_transactions = read.aborted;
                            data.records = Some(read.records);
                        }
                        Err((code, hw, log_start)) => {
                            has_error = true;
                            data.error_code = code.code();
                            data.high_watermark = hw;
                            data.last_stable_offset = hw;
                            data.log_start_offset = log_start;
                        }
                    }
                    data
                })
                .collect();
            out
        })
        .collect();
    (topics, total, has_error)
}

type ReadError = (ErrorCode, i64, i64);

/// One partition's answer.
struct PartitionRead {
    records: Bytes,
    hw: i64,
    lso: i64,
    log_start: i64,
    /// read_committed: the aborted transactions overlapping `records`.
    aborted: Option<Vec<AbortedTransaction>>,
}

fn read_partition(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    limit: usize,
    first: bool,
    read_committed: bool,
) -> Result<PartitionRead, ReadError> {
    let Some(partition) = broker.replicas().partition(topic, p.partition) else {
        return Err((ErrorCode::UnknownTopicOrPartition, -1, -1));
    };
    let hw = partition.high_watermark();
    let lso = partition.last_stable_offset();
    let log_start = partition.log.log_start_offset();
    if let Err(code) = partition.check_leader_epoch(image, p.current_leader_epoch) {
        return Err((code, hw, log_start));
    }
    if p.fetch_offset < log_start || p.fetch_offset > hw {
        return Err((ErrorCode::OffsetOutOfRange, hw, log_start));
    }
    let empty = |log_start| PartitionRead {
        records: Bytes::new(),
        hw,
        lso,
        log_start,
        aborted: read_committed.then(Vec::new),
    };
    if limit == 0 && !first {
        return Ok(empty(log_start));
    }
    let max_offset = if read_committed { lso } else { hw };
    let read = partition
        .log
        .read(p.fetch_offset, limit, Some(max_offset))
        .map_err(|e| (log_error_code(&e), hw, log_start))?;
    let records = match read.slice {
        // The log always returns a first whole batch; past the response's first non-empty
        // partition one that does not fit the budget is left for the next fetch (KIP-74).
        Some(slice) if !first && slice.len > limit => return Ok(empty(read.log_start_offset)),
        Some(slice) => slice
            .read_to_bytes()
            .map_err(|_| (ErrorCode::KafkaStorageError, hw, log_start))?,
        None => return Ok(empty(read.log_start_offset)),
    };
    let aborted = read_committed.then(|| {
        let upper = next_offset(&records).unwrap_or(p.fetch_offset);
        partition
            .log
            .aborted_transactions(p.fetch_offset, upper)
            .into_iter()
            .map(|t| {
                let mut a = AbortedTransaction::default();
                a.producer_id = ProducerId(t.producer_id);
                a.first_offset = t.first_offset;
                a
            })
            .collect()
    });
    Ok(PartitionRead {
        records,
        hw,
        lso,
        log_start: read.log_start_offset,
        aborted,
    })
}
