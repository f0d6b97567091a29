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
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName,
};
use strom_metadata::MetadataImage;
use strom_protocol::ErrorCode;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType, READ_COMMITTED};
use crate::broker::Broker;
use crate::errors::log_error_code;
use crate::partition::Partition;
use crate::response::Response;
use strom_protocol::header::encode_response;
use strom_storage::FileSlice;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::Fetch, 4, 16);
/// Upper bound on how long one fetch may wait, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);
/// The session epoch that means "no session / close the session".
const FINAL_EPOCH: i32 = -1;
/// Fetch v12 is the first flexible version (records are COMPACT_RECORDS).
const FIRST_FLEXIBLE_VERSION: i16 = 12;
/// Record bytes of one response whatever fetch.max.bytes says, so the frame fits its i32
/// size with the KIP-74 first batch on top.
const MAX_RESPONSE_RECORD_BYTES: usize = 1 << 30;

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
    let denied = denied_topics(broker, header, &request, version);
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + max_wait;
    let waiter = Arc::new(Notify::new());
    loop {
        let image = broker.image();
        register_waiter(broker, &image, &request, version, &waiter);
        let read = read_all(broker, &image, &request, version, &denied);
        let done = read.bytes >= request.min_bytes.max(0) as usize
            || read.has_error
            || Instant::now() >= deadline;
        if done {
            record_metrics(broker, &image, &request, version, &read);
            if replica_id(&request, version).is_none() {
                response.throttle_time_ms = header.charge_quota(
                    broker,
                    crate::client_quotas::QuotaKind::Fetch,
                    read.bytes as u64,
                );
            }
            response.responses = read.topics;
            if version >= 16 {
                response.node_endpoints = node_endpoints(&image, &read.leaders, &header.listener);
            }
            return respond_with_files(header, response, read.files);
        }
        if crate::metrics::remote(tokio::time::timeout_at(deadline, waiter.notified()))
            .await
            .is_err()
        {
            // Deadline passed: answer with whatever is there now.
            continue;
        }
    }
}

/// The topics the authorizer refuses this fetch: a follower needs CLUSTER_ACTION on the
/// cluster (else every topic is refused), a consumer READ on each topic, as Kafka checks.
/// Their partitions are answered TOPIC_AUTHORIZATION_FAILED. Empty without an authorizer.
fn denied_topics(
    broker: &Broker,
    header: &RequestContext,
    request: &FetchRequest,
    version: i16,
) -> std::collections::HashSet<String> {
    if broker.authorizer().is_none() {
        return Default::default();
    }
    let image = broker.image();
    let names = request
        .topics
        .iter()
        .filter_map(|t| topic_name(&image, &t.topic, t.topic_id, version));
    if replica_id(request, version).is_some() {
        if header.authorized_cluster(broker, AclOperation::ClusterAction) {
            return Default::default();
        }
        return names.map(str::to_owned).collect();
    }
    names
        .filter(|n| !header.authorized(broker, AclOperation::Read, ResourceType::Topic, n))
        .map(str::to_owned)
        .collect()
}

/// Counts the answered fetch in the topics' metrics: record bytes out (to consumers, or to
/// followers as replication), and consumer fetches per partition, failed or not.
fn record_metrics(
    broker: &Broker,
    image: &MetadataImage,
    request: &FetchRequest,
    version: i16,
    read: &FetchRead,
) {
    let follower = replica_id(request, version).is_some();
    for (t, (topic, out)) in request.topics.iter().zip(&read.topics).enumerate() {
        let Some(name) = topic_name(image, &topic.topic, topic.topic_id, version) else {
            continue;
        };
        if image.topic(name).is_none() {
            continue; // no metrics for made-up names
        }
        let m = broker.metrics().topic(name);
        let in_memory: usize = out
            .partitions
            .iter()
            .map(|d| d.records.as_ref().map_or(0, Bytes::len))
            .sum();
        let from_files: usize = read
            .files
            .iter()
            .filter(|((ft, _), _)| *ft == t)
            .map(|(_, f)| f.len)
            .sum();
        let bytes = (in_memory + from_files) as u64;
        if follower {
            m.replication_bytes_out.add(bytes);
        } else {
            m.bytes_out.add(bytes);
            m.fetch_requests.add(out.partitions.len() as u64);
            let failed = out.partitions.iter().filter(|d| d.error_code != 0).count();
            m.failed_fetch_requests.add(failed as u64);
        }
    }
}

/// Encodes the response with the records of `files` spliced in from their segment files,
/// so they are not copied into the response buffer (see `Response::splice_records`).
fn respond_with_files(
    header: &RequestContext,
    mut response: FetchResponse,
    files: FileRecords,
) -> HandlerResult {
    if files.is_empty() {
        return respond(&SPEC, header, &response);
    }
    let encode =
        |r: &FetchResponse| encode_response(SPEC.key, header.api_version, header.correlation_id, r);
    let with_empty = encode(&response)?;
    for ((t, p), _) in &files {
        response.responses[*t].partitions[*p].records = None;
    }
    let with_null = encode(&response)?;
    let flexible = header.api_version >= FIRST_FLEXIBLE_VERSION;
    let files = files.into_iter().map(|(_, f)| f).collect();
    Ok(Some(Response::splice_records(
        with_empty, &with_null, flexible, files,
    )))
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

/// Records sent from segment files: (topic index, partition index) in the response, and
/// the file range holding that partition's records.
type FileRecords = Vec<((usize, usize), FileSlice)>;

/// One read of every requested partition.
struct FetchRead {
    /// Partitions whose records come from `files` hold empty records here.
    topics: Vec<FetchableTopicResponse>,
    files: FileRecords,
    /// Record bytes in the response.
    bytes: usize,
    /// Some partition has an error, which answers the fetch at once, as in Kafka.
    has_error: bool,
    /// Leaders named in NOT_LEADER_OR_FOLLOWER answers (KIP-951 node endpoints).
    leaders: std::collections::BTreeSet<i32>,
}

/// Reads every requested partition once.
fn read_all(
    broker: &Broker,
    image: &MetadataImage,
    request: &FetchRequest,
    version: i16,
    denied: &std::collections::HashSet<String>,
) -> FetchRead {
    // KIP-74: the response holds at most min(request max_bytes, fetch.max.bytes) of records,
    // except that the first batch of the first non-empty partition is always returned.
    let budget = request
        .max_bytes
        .min(broker.config().fetch_max_bytes())
        .max(0) as usize;
    let budget = budget.min(MAX_RESPONSE_RECORD_BYTES);
    let mut total = 0usize;
    let mut has_error = false;
    let mut files = Vec::new();
    let mut leaders = std::collections::BTreeSet::new();
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(t, topic)| {
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
                .enumerate()
                .map(|(i, p)| {
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
                    if denied.contains(name) {
                        data.error_code = ErrorCode::TopicAuthorizationFailed.code();
                        has_error = true;
                        return data;
                    }
                    let limit =
                        (p.partition_max_bytes.max(0) as usize).min(budget.saturating_sub(total));
                    let kind = match replica_id(request, version) {
                        Some(replica) => FetchKind::Replica(replica),
                        None => FetchKind::Consumer {
                            read_committed: request.isolation_level == READ_COMMITTED,
                            // KIP-392: from v11 consumers may read from followers, and say
                            // where they are.
                            from_follower: version >= 11,
                            rack: (version >= 11 && !request.rack_id.is_empty())
                                .then(|| request.rack_id.as_str()),
                        },
                    };
                    match read_partition(broker, image, name, p, limit, total == 0, kind) {
                        Ok(read) => {
                            if let Some((epoch, end_offset)) = read.diverging {
                                data.diverging_epoch.epoch = epoch;
                                data.diverging_epoch.end_offset = end_offset;
                                // The follower truncates before it fetches again: answer now.
                                has_error = true;
                            }
                            if let Some(replica) = read.preferred_read_replica {
                                data.preferred_read_replica = BrokerId(replica);
                            }
                            data.high_watermark = read.hw;
                            data.last_stable_offset = read.lso;
                            data.log_start_offset = read.log_start;
                            data.aborted_transactions = read.aborted;
                            data.records = Some(match read.records {
                                Records::Memory(bytes) => {
                                    total += bytes.len();
                                    bytes
                                }
                                Records::File(slice) => {
                                    total += slice.len;
                                    files.push(((t, i), slice));
                                    Bytes::new()
                                }
                            });
                        }
                        Err((code, hw, log_start)) => {
                            has_error = true;
                            data.error_code = code.code();
                            if code == ErrorCode::NotLeaderOrFollower && version >= 12 {
                                // KIP-951: where the leader is, so the client need not ask.
                                if let Some(pi) = image
                                    .topic(name)
                                    .and_then(|t| t.partitions.get(&p.partition))
                                {
                                    data.current_leader.leader_id = BrokerId(pi.leader);
                                    data.current_leader.leader_epoch = pi.leader_epoch;
                                    leaders.insert(pi.leader);
                                }
                            }
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
    FetchRead {
        topics,
        files,
        bytes: total,
        has_error,
        leaders,
    }
}

/// The replica id of a follower's fetch (ReplicaState from v15, replica_id before), or
/// `None` for a consumer.
fn replica_id(request: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(id)
}

/// Who fetches: a consumer (up to the high watermark, or the LSO for read_committed) or a
/// follower replica (up to the log end; its fetch offset is its progress).
#[derive(Debug, Clone, Copy)]
enum FetchKind<'a> {
    Consumer {
        read_committed: bool,
        /// The client may be served by a follower (Fetch v11+, KIP-392).
        from_follower: bool,
        /// The client's `client.rack`, for a rack-aware replica selector.
        rack: Option<&'a str>,
    },
    Replica(i32),
}

type ReadError = (ErrorCode, i64, i64);

/// A partition's records: in memory, or a range of a segment file sent as stored.
enum Records {
    Memory(Bytes),
    File(FileSlice),
}

/// One partition's answer.
struct PartitionRead {
    records: Records,
    hw: i64,
    lso: i64,
    log_start: i64,
    /// read_committed: the aborted transactions overlapping `records`.
    aborted: Option<Vec<AbortedTransaction>>,
    /// A follower's log diverges: (epoch, end offset) it must truncate to.
    diverging: Option<(i32, i64)>,
    /// KIP-392: the replica the consumer should fetch from instead.
    preferred_read_replica: Option<i32>,
}

/// KIP-392's rack-aware selector (`replica.selector.class` naming
/// `RackAwareReplicaSelector`): a consumer that names its rack reads from an in-sync replica
/// in that rack, if the leader is not in it. Otherwise (and by default) from the leader.
fn preferred_read_replica(
    broker: &Broker,
    image: &MetadataImage,
    partition: &Partition,
    rack: Option<&str>,
) -> Option<i32> {
    let rack = rack?;
    let selector = broker.config().static_value("replica.selector.class")?;
    if !selector.ends_with("RackAwareReplicaSelector") {
        return None;
    }
    let in_rack = |id: i32| {
        image
            .broker(id)
            .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
    };
    if in_rack(broker.node_id()) {
        return None;
    }
    let role = partition.role();
    role.isr
        .iter()
        .copied()
        .find(|id| *id != broker.node_id() && in_rack(*id))
}

fn read_partition(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    limit: usize,
    first: bool,
    kind: FetchKind<'_>,
) -> Result<PartitionRead, ReadError> {
    let Some(partition) = broker.replicas().partition(topic, p.partition) else {
        return Err((ErrorCode::UnknownTopicOrPartition, -1, -1));
    };
    let hw = partition.high_watermark();
    let lso = partition.last_stable_offset();
    let log_start = partition.log.log_start_offset();
    let leads = partition.is_leader();
    let follower_may_serve = matches!(
        kind,
        FetchKind::Consumer {
            from_follower: true,
            ..
        }
    ) && partition.role().leader >= 0;
    if !leads && !follower_may_serve {
        return Err((ErrorCode::NotLeaderOrFollower, hw, log_start));
    }
    if let Err(code) = partition.check_leader_epoch(image, p.current_leader_epoch) {
        return Err((code, hw, log_start));
    }
    let log_end = partition.log.log_end_offset();
    // Between the high watermark and the log end there is data not committed yet: an empty
    // answer, not an error (a consumer that read up to an old leader's high watermark may be
    // ahead of a new leader's for a moment).
    if p.fetch_offset < log_start || p.fetch_offset > log_end {
        return Err((ErrorCode::OffsetOutOfRange, hw, log_start));
    }
    let read_committed = match kind {
        FetchKind::Consumer {
            read_committed,
            rack,
            ..
        } => {
            if leads {
                if let Some(replica) = preferred_read_replica(broker, image, &partition, rack) {
                    return Ok(PartitionRead {
                        records: Records::Memory(Bytes::new()),
                        hw,
                        lso,
                        log_start,
                        aborted: read_committed.then(Vec::new),
                        diverging: None,
                        preferred_read_replica: Some(replica),
                    });
                }
            }
            read_committed
        }
        FetchKind::Replica(replica) => {
            return read_for_follower(broker, image, &partition, p, limit, first, replica, hw)
        }
    };
    let empty = |log_start| PartitionRead {
        records: Records::Memory(Bytes::new()),
        hw,
        lso,
        log_start,
        aborted: read_committed.then(Vec::new),
        diverging: None,
        preferred_read_replica: None,
    };
    if limit == 0 && !first {
        return Ok(empty(log_start));
    }
    let max_offset = if read_committed { lso } else { hw };
    let read = partition
        .log
        .read(p.fetch_offset, limit, Some(max_offset))
        .map_err(|e| (log_error_code(&e), hw, log_start))?;
    let slice = match read.slice {
        // The log always returns a first whole batch; past the response's first non-empty
        // partition one that does not fit the budget is left for the next fetch (KIP-74).
        Some(slice) if !first && slice.len > limit => return Ok(empty(read.log_start_offset)),
        Some(slice) => slice,
        None => return Ok(empty(read.log_start_offset)),
    };
    if !read_committed {
        return Ok(PartitionRead {
            records: Records::File(slice),
            hw,
            lso,
            log_start: read.log_start_offset,
            aborted: None,
            diverging: None,
            preferred_read_replica: None,
        });
    }
    // read_committed: the aborted transactions overlapping the batches, bounded by the last
    // batch's offset (read from the batch headers; the records stay in the file).
    let upper = slice
        .next_offset()
        .map_err(|_| (ErrorCode::KafkaStorageError, hw, log_start))?
        .unwrap_or(p.fetch_offset);
    let aborted = partition
        .log
        .aborted_transactions(p.fetch_offset, upper)
        .into_iter()
        .map(|t| {
            let mut a = AbortedTransaction::default();
            a.producer_id = ProducerId(t.producer_id);
            a.first_offset = t.first_offset;
            a
        })
        .collect();
    Ok(PartitionRead {
        records: Records::File(slice),
        hw,
        lso,
        log_start: read.log_start_offset,
        aborted: Some(aborted),
        diverging: None,
        preferred_read_replica: None,
    })
}

/// A follower's fetch, answered by the partition (`Partition::serve_follower_fetch`). A
/// replica of this leader listed in `leader.replication.throttled.replicas` gets records only
/// while the leader throttle allows (the fetch still counts as progress, so an idle throttled
/// follower stays in sync).
#[allow(clippy::too_many_arguments)]
fn read_for_follower(
    broker: &Broker,
    image: &MetadataImage,
    partition: &Partition,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    mut limit: usize,
    mut first: bool,
    replica: i32,
    hw: i64,
) -> Result<PartitionRead, ReadError> {
    let log_start = partition.log.log_start_offset();
    let throttle = crate::throttle::is_throttled(
        image,
        &partition.topic,
        partition.index,
        broker.node_id(),
        "leader.replication.throttled.replicas",
    )
    .then(|| broker.leader_throttle());
    if let Some((throttle, rate)) = throttle {
        let available = throttle.available(rate);
        if available == 0 {
            limit = 0;
            first = false;
        } else {
            limit = limit.min(available);
        }
    }
    let answer = partition
        .serve_follower_fetch(
            replica,
            p.current_leader_epoch,
            p.fetch_offset,
            p.last_fetched_epoch,
            limit,
            first,
            crate::partition::now_ms(),
        )
        .map_err(|code| (code, hw, log_start))?;
    if let (Some((throttle, rate)), Some(slice)) = (throttle, &answer.slice) {
        throttle.record(rate, slice.len);
    }
    if answer.joins_isr {
        broker.isr_check_due();
    }
    Ok(PartitionRead {
        records: match answer.slice {
            Some(slice) => Records::File(slice),
            None => Records::Memory(Bytes::new()),
        },
        hw: answer.high_watermark,
        lso: answer.high_watermark,
        log_start: answer.log_start_offset,
        aborted: None,
        diverging: answer.diverging,
        preferred_read_replica: None,
    })
}

/// KIP-951: the endpoints of the leaders a response names.
fn node_endpoints(
    image: &MetadataImage,
    leaders: &std::collections::BTreeSet<i32>,
    listener: &str,
) -> Vec<kafka_protocol::messages::fetch_response::NodeEndpoint> {
    leaders
        .iter()
        .filter_map(|id| image.broker(*id))
        .filter_map(|b| Some((b, b.endpoint(listener)?)))
        .map(|(b, (host, port))| {
            let mut e = kafka_protocol::messages::fetch_response::NodeEndpoint::default();
            e.node_id = BrokerId(b.broker_id);
            e.host = kafka_protocol::protocol::StrBytes::from_string(host.to_owned());
            e.port = i32::from(port);
            e.rack = b
                .rack
                .clone()
                .map(kafka_protocol::protocol::StrBytes::from_string);
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use strom_protocol::header::RequestHeader;
    use strom_protocol::record_batch::builder::BatchBuilder;
    use strom_storage::{LogConfig, PartitionLog, SystemClock};

    fn batch(records: usize) -> BytesMut {
        let mut b = BatchBuilder::new(0);
        for i in 0..records {
            b.push(
                None,
                Some(format!("value-{i}").as_bytes()),
                1_700_000_000_000,
            );
        }
        b.build()
    }

    /// A response with file records at (0,0), (0,2) and (1,1), in-memory records at (1,0)
    /// and an error partition (no records) at (0,1).
    fn response_and_files(log: &PartitionLog) -> (FetchResponse, FileRecords) {
        let slice = |offset| log.read(offset, 1 << 20, None).unwrap().slice.unwrap();
        let files = vec![((0, 0), slice(0)), ((0, 2), slice(3)), ((1, 1), slice(5))];
        let mut response = FetchResponse::default();
        for t in 0..2 {
            let mut topic = FetchableTopicResponse::default();
            topic.topic = TopicName(format!("topic-{t}").into());
            topic.topic_id = uuid::Uuid::from_u128(t as u128 + 1);
            for p in 0..3 {
                let mut data = PartitionData::default();
                data.partition_index = p;
                data.high_watermark = 9;
                data.records = Some(Bytes::new());
                topic.partitions.push(data);
            }
            response.responses.push(topic);
        }
        response.responses[0].partitions[1].records = None;
        response.responses[0].partitions[1].error_code = 1;
        response.responses[1].partitions[0].records = Some(Bytes::from_static(b"in memory"));
        (response, files)
    }

    #[test]
    fn spliced_file_records_encode_exactly_as_in_memory_records_for_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn strom_storage::Clock> = Arc::new(SystemClock);
        let log = PartitionLog::open(dir.path().join("t-0"), LogConfig::default(), clock).unwrap();
        log.append(batch(3)).unwrap();
        log.append(batch(2)).unwrap();
        log.append(batch(200)).unwrap(); // > 127 bytes: a two-byte varint length
        for version in SPEC.min_version..=SPEC.max_version {
            let header = RequestContext {
                header: RequestHeader {
                    api_key: SPEC.key as i16,
                    api_version: version,
                    correlation_id: 42,
                    client_id: None,
                },
                peer: "127.0.0.1:1".parse().unwrap(),
                listener: "PLAINTEXT".into(),
                principal: crate::security::ANONYMOUS.into(),
                sasl: None,
                throttle_ms: Default::default(),
                close_after: Default::default(),
            };
            let (response, files) = response_and_files(&log);
            let mut in_memory = response.clone();
            for ((t, p), f) in &files {
                in_memory.responses[*t].partitions[*p].records = Some(f.read_to_bytes().unwrap());
            }
            let expected = encode_response(SPEC.key, version, 42, &in_memory).unwrap();
            let spliced = respond_with_files(&header, response, files)
                .unwrap()
                .unwrap();
            assert_eq!(spliced.to_vec(), expected.to_vec(), "Fetch v{version}");
            assert!(
                spliced.buffered_len() < expected.len(),
                "records not buffered"
            );
        }
    }
}
