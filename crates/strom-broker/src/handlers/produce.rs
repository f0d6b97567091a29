//! Produce (key 0): advertised v0–12 but served v3–12 (KAFKA-18659: librdkafka disables
//! compressed produce if the minimum is not 0). Only the partition leader appends; batches are
//! appended as they arrived (the log checks sequences, the transaction coordinator vets
//! transactional ones); acks=0: no response; acks=1: answered after the leader's append;
//! acks=all: answered once the ISR has the records (`wait_for_isr`). In durable mode
//! (`flush.before.ack.enable`) acks=1 and acks=all first wait for the log dir's group-commit
//! fsync of the append (`wait_for_fsync`); acks=0 appends are submitted to it too.
//! Produce never creates topics; internal topics and control batches are refused, as in Kafka.
//! v12 is transaction protocol v2 (KIP-890): the leader adds a transactional request's
//! partitions to the transaction before appending (`add_to_transaction`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::RequestContext;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::header::encode_response;
use strom_protocol::produce_request::{decode_produce_request, ProduceFrame};
use strom_protocol::ErrorCode;

use super::{AclOperation, ApiSpec, HandlerError, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::errors::{log_error_code, log_record_errors};
use crate::partition::Partition;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::Produce, 0, 12);
/// Produce v0–2 were removed in Kafka 4 (KIP-896) and are not served.
const MIN_SERVED_VERSION: i16 = 3;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    // Off the connection's path (which hands `start` the frame itself): the records are
    // copied unless this is the only reference to them.
    match start(broker, header, BytesMut::from(body)).await? {
        super::Handled::Ready(response) => Ok(response),
        super::Handled::Waiting(wait) => {
            let answer = wait.await;
            if answer.close_after {
                header
                    .close_after
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            answer.result
        }
    }
}

/// Appends the request's records (in the caller's order: the connection calls this for one
/// request at a time) and returns either the answer, or the wait for it when it needs a
/// group-commit fsync or the ISR: the connection goes on with its next requests meanwhile
/// and writes the answers in request order (see `connection.rs`). `body` is the request
/// frame's own buffer: each partition's records are validated, given their offsets and
/// written to the log in place (no copy), and nothing of the frame is kept once the appends
/// are done, so the connection reuses its read buffer.
pub(crate) async fn start(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: BytesMut,
) -> Result<super::Handled, HandlerError> {
    if header.api_version < MIN_SERVED_VERSION {
        return Err(HandlerError::UnsupportedVersion {
            api: SPEC.key,
            version: header.api_version,
            min: MIN_SERVED_VERSION,
            max: SPEC.max_version,
        });
    }
    let request =
        decode_produce_request(body, header.api_version).map_err(|e| HandlerError::Malformed {
            api: SPEC.key,
            version: header.api_version,
            reason: e.to_string(),
        })?;
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    // Produce never creates topics (as in Kafka): only Metadata with allow_auto_topic_creation
    // does. An unknown topic gets UNKNOWN_TOPIC_OR_PARTITION below.
    // Appends to the page cache take microseconds: do them on this task. Only when a log may
    // fsync on append (flush.messages set) is the thread handed to blocking work.
    let mut denied = denials(broker, header, &request);
    denied.extend(add_to_transaction(broker, header.api_version, &request, &denied).await);
    let request_bytes: u64 = request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len() as u64))
        .sum();
    let throttle_ms = header.charge_quota(
        broker,
        crate::client_quotas::QuotaKind::Produce,
        request_bytes,
    );
    let (responses, pending, durable) = if may_fsync(broker, &request) {
        crate::broker::off_runtime(|| append_all(broker, request, header.api_version, &denied))
    } else {
        append_all(broker, request, header.api_version, &denied)
    };
    // Durable mode: every append of the request joins the next group commit of its log dir.
    let durable: Vec<_> = durable
        .into_iter()
        .map(|d| (broker.replicas().group_commit().submit(&d.partition_ref), d))
        .collect();
    if acks == 0 {
        return Ok(super::Handled::Ready(None));
    }
    let wait = AckWait {
        broker: broker.clone(),
        version: header.api_version,
        correlation_id: header.correlation_id,
        listener: header.listener.clone(),
        throttle_ms,
        deadline: tokio::time::Instant::now() + timeout,
        responses,
        durable,
        pending,
    };
    if wait.durable.is_empty() && wait.pending.is_empty() {
        // Nothing to wait for: `answer` completes without suspending.
        let answer = wait.answer().await;
        if answer.close_after {
            header
                .close_after
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        return answer.result.map(super::Handled::Ready);
    }
    Ok(super::Handled::Waiting(Box::pin(wait.answer())))
}

/// A produce request's appends, done; what its answer still waits for.
struct AckWait {
    broker: Arc<Broker>,
    version: i16,
    correlation_id: i32,
    listener: Arc<str>,
    throttle_ms: i32,
    deadline: tokio::time::Instant,
    responses: Vec<TopicProduceResponse>,
    /// Durable mode: each append's group-commit round.
    durable: Vec<(crate::group_commit::Ticket, DurableAck)>,
    /// acks=all: each append's ISR wait.
    pending: Vec<PendingAck>,
}

impl AckWait {
    /// Waits for the fsyncs, then the ISR, and encodes the answer.
    async fn answer(self) -> super::Answer {
        let AckWait {
            broker,
            version,
            correlation_id,
            listener,
            throttle_ms,
            deadline,
            mut responses,
            durable,
            pending,
        } = self;
        for (ticket, wait) in &durable {
            if let Err((code, message)) =
                crate::metrics::remote(wait_for_fsync(ticket, wait, deadline)).await
            {
                let r = &mut responses[wait.topic].partition_responses[wait.partition];
                r.error_code = code.code();
                r.base_offset = -1;
                if version >= 8 {
                    r.error_message = message.map(StrBytes::from_string);
                }
            }
        }
        // acks=all: each append waits until the ISR has it (the high watermark passes it).
        let mut leaders = BTreeSet::new();
        for wait in pending {
            let r = &mut responses[wait.topic].partition_responses[wait.partition];
            if r.error_code != 0 {
                continue; // durable mode: the fsync failed or timed out
            }
            if let Err((code, message)) =
                crate::metrics::remote(wait_for_isr(&broker, &wait, deadline)).await
            {
                r.error_code = code.code();
                r.base_offset = -1;
                if version >= 8 {
                    r.error_message = message.map(StrBytes::from_string);
                }
                if code == ErrorCode::NotLeaderOrFollower {
                    set_current_leader(
                        &broker,
                        &wait.partition_ref.topic,
                        r,
                        &mut leaders,
                        version,
                    );
                }
            }
        }
        for topic in responses.iter_mut() {
            for r in &mut topic.partition_responses {
                if r.error_code == ErrorCode::NotLeaderOrFollower.code()
                    && r.current_leader.leader_id.0 < 0
                {
                    set_current_leader(&broker, topic.name.0.as_str(), r, &mut leaders, version);
                }
            }
        }
        // This broker's metadata is stale while the controller is out of reach: a client sent
        // away from here must not come back for metadata (librdkafka asks a broker it is
        // connected to, and this may be the only one).
        let refused = responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|r| r.error_code == ErrorCode::NotLeaderOrFollower.code());
        let close_after = refused && broker.controller_contact_lost();
        let mut response = ProduceResponse::default();
        response.responses = responses;
        response.throttle_time_ms = throttle_ms;
        if version >= 10 {
            response.node_endpoints = node_endpoints(&broker, &leaders, &listener);
        }
        let result = encode_response(SPEC.key, version, correlation_id, &response)
            .map(|frame| Some(frame.into()))
            .map_err(HandlerError::from);
        super::Answer {
            result,
            close_after,
        }
    }
}

/// An append that answers once the ISR has it (acks=all).
struct PendingAck {
    topic: usize,
    partition: usize,
    partition_ref: Arc<Partition>,
    /// The high watermark that covers the append (its last offset + 1).
    required: i64,
    leader_epoch: i32,
    min_isr: i64,
}

/// An append in durable mode: answered once its log dir's group commit fsynced it.
struct DurableAck {
    topic: usize,
    partition: usize,
    partition_ref: Arc<Partition>,
    /// The flushed offset that covers the append (its last offset + 1).
    required: i64,
}

/// Durable mode's wait: the group-commit round that started after the append finished;
/// REQUEST_TIMED_OUT at the request's timeout; KAFKA_STORAGE_ERROR if the fsync failed (the
/// log is offline), NOT_LEADER_OR_FOLLOWER if the log was truncated under a new leader.
async fn wait_for_fsync(
    ticket: &crate::group_commit::Ticket,
    wait: &DurableAck,
    deadline: tokio::time::Instant,
) -> Result<(), PartitionError> {
    if !ticket.wait(deadline).await {
        return Err((
            ErrorCode::RequestTimedOut,
            Some("the group commit did not fsync the records in time".into()),
        ));
    }
    let p = &wait.partition_ref;
    if p.log.flushed_offset() >= wait.required {
        Ok(())
    } else if p.log.is_offline() {
        Err((
            ErrorCode::KafkaStorageError,
            Some("the fsync of the log failed: the records may not be durable".into()),
        ))
    } else {
        // Only a truncation lowers the flushed offset below an append: leadership moved.
        Err((
            ErrorCode::NotLeaderOrFollower,
            Some("leadership moved before the records were fsynced".into()),
        ))
    }
}

/// Kafka's produce purgatory for one partition: woken by every high-watermark or role change,
/// done when the high watermark passes the append; NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR
/// shrank below `min.insync.replicas` meanwhile; NOT_LEADER_OR_FOLLOWER if leadership moved
/// (the client retries, and an idempotent producer's retry is deduplicated); REQUEST_TIMED_OUT
/// at the request's timeout.
async fn wait_for_isr(
    broker: &Broker,
    wait: &PendingAck,
    deadline: tokio::time::Instant,
) -> Result<(), PartitionError> {
    let p = &wait.partition_ref;
    // Besides changes, the wait looks at the clock: an ISR member falling behind while the
    // controller is out of reach ends it (see `cut_off_leader`).
    const RECHECK: Duration = Duration::from_millis(250);
    loop {
        let mut changes = p.subscribe();
        if p.leader_epoch_if_leader() != Some(wait.leader_epoch) {
            return Err((
                ErrorCode::NotLeaderOrFollower,
                Some("leadership moved before the ISR had the records".into()),
            ));
        }
        if p.high_watermark() >= wait.required {
            let isr = p.role().isr.len() as i64;
            if isr < wait.min_isr {
                return Err((
                    ErrorCode::NotEnoughReplicasAfterAppend,
                    Some(format!(
                        "written, but the ISR has {isr} replicas, min.insync.replicas is {}",
                        wait.min_isr
                    )),
                ));
            }
            return Ok(());
        }
        if let Some(refusal) = cut_off_leader(broker, p) {
            return Err(refusal);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err((
                ErrorCode::RequestTimedOut,
                Some("the ISR did not acknowledge the records in time".into()),
            ));
        }
        let _ = tokio::time::timeout_at(deadline.min(now + RECHECK), changes.changed()).await;
    }
}

/// A leader cut off from both the controller and an ISR member: the ISR cannot shrink, so
/// acks=all writes could only time out, and the controller has most likely elected another
/// leader already (it fences a broker after `broker.session.timeout.ms` without
/// heartbeats). Kafka lets such writes wait for the request timeout; answering
/// NOT_LEADER_OR_FOLLOWER at once sends clients to refresh metadata and find the new leader.
/// An idempotent producer's retry of a written batch is deduplicated where it lands.
fn cut_off_leader(broker: &Broker, p: &Partition) -> Option<PartitionError> {
    let lag_ms = broker.config().replica_lag_time_max_ms();
    (broker.controller_contact_lost() && p.isr_stalled(crate::partition::now_ms(), lag_ms)).then(
        || {
            (
                ErrorCode::NotLeaderOrFollower,
                Some(
                    "this leader has lost contact with the controller and with an in-sync \
                     replica: another leader may have been elected"
                        .into(),
                ),
            )
        },
    )
}

/// KIP-951: a NOT_LEADER_OR_FOLLOWER answer names the current leader (Produce v10+).
fn set_current_leader(
    broker: &Broker,
    topic: &str,
    r: &mut PartitionProduceResponse,
    leaders: &mut BTreeSet<i32>,
    version: i16,
) {
    if version < 10 {
        return;
    }
    let image = broker.image();
    if let Some(p) = image.topic(topic).and_then(|t| t.partitions.get(&r.index)) {
        r.current_leader.leader_id = BrokerId(p.leader);
        r.current_leader.leader_epoch = p.leader_epoch;
        if p.leader >= 0 {
            leaders.insert(p.leader);
        }
    }
}

fn node_endpoints(broker: &Broker, leaders: &BTreeSet<i32>, listener: &str) -> Vec<NodeEndpoint> {
    let image = broker.image();
    leaders
        .iter()
        .filter_map(|id| image.broker(*id))
        .filter_map(|b| Some((b, b.endpoint(listener)?)))
        .map(|(b, (host, port))| {
            let mut e = NodeEndpoint::default();
            e.node_id = BrokerId(b.broker_id);
            e.host = StrBytes::from_string(host.to_owned());
            e.port = i32::from(port);
            e.rack = b.rack.clone().map(StrBytes::from_string);
            e
        })
        .collect()
}

fn may_fsync(broker: &Broker, request: &ProduceFrame) -> bool {
    request.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            broker
                .replicas()
                .partition(&t.name, p.index)
                .is_some_and(|partition| partition.log.config().flush_messages < super::NEVER_FLUSH)
        })
    })
}

/// Produce v12+ (transaction protocol v2): the partitions of a transactional request that
/// exist here and are not refused join the producer's transaction at its coordinator before
/// the append (KIP-890 part 2). Older versions in a cluster: a partition where the producer
/// has no transaction open at this epoch is verified to be in its ongoing transaction at
/// the coordinator (KIP-890 part 1; single node the coordinator's own check in
/// `verify_transactional` does it). When that fails every topic of the request is refused
/// with the error (one step for the request); the returned refusals say so.
async fn add_to_transaction(
    broker: &Arc<Broker>,
    version: i16,
    request: &ProduceFrame,
    denied: &[(String, ErrorCode)],
) -> Vec<(String, ErrorCode)> {
    const IMPLICIT_ADD_SINCE: i16 = 12;
    let Some(transactional_id) = request.transactional_id.as_ref() else {
        return Vec::new();
    };
    let verify_only = version < IMPLICIT_ADD_SINCE;
    if verify_only && !broker.config().is_quorum_over_network() {
        return Vec::new();
    }
    let mut by_producer: std::collections::BTreeMap<(i64, i16), Vec<(String, i32)>> =
        Default::default();
    for topic in &request.topic_data {
        let name = topic.name.as_str();
        if denied.iter().any(|(t, _)| t == name) {
            continue;
        }
        for p in &topic.partition_data {
            let first = p.records.as_ref().and_then(|r| {
                strom_protocol::BatchSplitter::new(r, usize::MAX)
                    .next()
                    .and_then(|b| b.and_then(strom_protocol::RecordBatchHeader::parse).ok())
                    .filter(|h| h.is_transactional())
                    .map(|h| (h.producer_id(), h.producer_epoch()))
            });
            let partition = broker.replicas().partition(name, p.index);
            // A transaction already open here at this epoch was verified by its first batch.
            let open_here = |producer: (i64, i16)| {
                partition.as_ref().is_some_and(|part| {
                    part.log.active_producers().iter().any(|a| {
                        a.producer_id == producer.0
                            && a.producer_epoch == producer.1
                            && a.current_txn_start_offset >= 0
                    })
                })
            };
            let needed = first.filter(|producer| !(verify_only && open_here(*producer)));
            if let (Some(producer), true) = (needed, partition.is_some()) {
                by_producer
                    .entry(producer)
                    .or_default()
                    .push((name.to_owned(), p.index));
            }
        }
    }
    for (producer, partitions) in by_producer {
        let added = crate::txn::implicit::add_to_txn(
            broker,
            transactional_id.as_str(),
            producer,
            partitions,
            verify_only,
        )
        .await;
        if let Err(e) = added {
            let code = crate::txn::implicit::produce_error(e);
            return request
                .topic_data
                .iter()
                .map(|t| (t.name.clone(), code))
                .collect();
        }
    }
    Vec::new()
}

/// What the authorizer refuses: WRITE on the transactional id (every partition fails with
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and WRITE on each topic (its partitions fail with
/// TOPIC_AUTHORIZATION_FAILED), as Kafka checks a produce request. Empty without an authorizer.
fn denials(
    broker: &Broker,
    header: &RequestContext,
    request: &ProduceFrame,
) -> Vec<(String, ErrorCode)> {
    if broker.authorizer().is_none() {
        return Vec::new();
    }
    let txn_denied = request.transactional_id.as_ref().is_some_and(|id| {
        !header.authorized(
            broker,
            AclOperation::Write,
            ResourceType::TransactionalId,
            id.as_str(),
        )
    });
    request
        .topic_data
        .iter()
        .filter_map(|t| {
            let name = t.name.as_str();
            if txn_denied {
                Some((
                    name.to_owned(),
                    ErrorCode::TransactionalIdAuthorizationFailed,
                ))
            } else if !header.authorized(broker, AclOperation::Write, ResourceType::Topic, name) {
                Some((name.to_owned(), ErrorCode::TopicAuthorizationFailed))
            } else {
                None
            }
        })
        .collect()
}

fn append_all(
    broker: &Broker,
    request: ProduceFrame,
    version: i16,
    denied: &[(String, ErrorCode)],
) -> (Vec<TopicProduceResponse>, Vec<PendingAck>, Vec<DurableAck>) {
    let acks = request.acks;
    let image = broker.image();
    let mut pending = Vec::new();
    let mut durable = Vec::new();
    let responses = request
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(t, topic)| {
            let mut out = TopicProduceResponse::default();
            let name = topic.name;
            let refusal = denied
                .iter()
                .find(|(t, _)| *t == name)
                .map(|(_, code)| *code);
            // Only existing topics get metrics: a request naming made-up topics must not
            // grow the broker's memory.
            let metrics = image
                .topic(&name)
                .is_some()
                .then(|| broker.metrics().topic(&name));
            out.partition_responses = topic
                .partition_data
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut r = PartitionProduceResponse::default();
                    r.index = p.index;
                    r.base_offset = -1;
                    r.log_append_time_ms = -1;
                    r.log_start_offset = -1;
                    let bytes = p.records.as_ref().map_or(0, |r| r.len() as u64);
                    let outcome = match refusal {
                        Some(code) => Err(AppendError::from((code, None))),
                        None => append_one(broker, &image, &name, p.index, acks, p.records),
                    };
                    if let Some(m) = &metrics {
                        m.produce_requests.inc();
                        match &outcome {
                            Ok((info, ..)) if !info.duplicate => {
                                m.messages_in
                                    .add((info.last_offset - info.base_offset + 1) as u64);
                                m.bytes_in.add(bytes);
                            }
                            Ok(_) => {}
                            Err(_) => m.failed_produce_requests.inc(),
                        }
                    }
                    match outcome {
                        Ok((info, partition, leader_epoch, min_isr)) => {
                            if partition.log.config().flush_before_ack {
                                durable.push(DurableAck {
                                    topic: t,
                                    partition: i,
                                    partition_ref: partition.clone(),
                                    required: info.last_offset + 1,
                                });
                            }
                            if let Some(min_isr) = min_isr {
                                pending.push(PendingAck {
                                    topic: t,
                                    partition: i,
                                    partition_ref: partition,
                                    required: info.last_offset + 1,
                                    leader_epoch,
                                    min_isr,
                                });
                            }
                            r.base_offset = info.base_offset;
                            r.log_append_time_ms = info.log_append_time;
                            if version >= 5 {
                                r.log_start_offset = info.log_start_offset;
                            }
                        }
                        Err(e) => {
                            r.error_code = e.code.code();
                            if version >= 8 {
                                r.error_message = e.message.map(StrBytes::from_string);
                                r.record_errors = e.record_errors;
                            }
                        }
                    }
                    r
                })
                .collect();
            out.name = TopicName(StrBytes::from_string(name));
            out
        })
        .collect();
    (responses, pending, durable)
}

type PartitionError = (ErrorCode, Option<String>);

/// A refused append: the partition's error, and the records at fault when only some were
/// (KIP-467 `record_errors`, Produce v8+; the client fails those records with the error and
/// the rest of the batch with INVALID_DIFFERENT_RECORD).
struct AppendError {
    code: ErrorCode,
    message: Option<String>,
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl From<PartitionError> for AppendError {
    fn from((code, message): PartitionError) -> Self {
        AppendError {
            code,
            message,
            record_errors: Vec::new(),
        }
    }
}

/// The answer to a log's refusal of an append, naming each record at fault.
fn append_error(topic: &str, index: i32, e: &strom_storage::LogError) -> AppendError {
    let record_errors = log_record_errors(e).map_or_else(Vec::new, |(records, reason)| {
        records
            .iter()
            .map(|&i| {
                let mut r = BatchIndexAndErrorMessage::default();
                r.batch_index = i as i32;
                r.batch_index_error_message = Some(StrBytes::from_string(format!(
                    "{reason} in topic partition {topic}-{index}."
                )));
                r
            })
            .collect()
    });
    AppendError {
        code: log_error_code(e),
        message: Some(e.to_string()),
        record_errors,
    }
}

/// Appends failing on a full or failing disk are logged at most once a second.
static STORAGE_ERROR_LOG: std::sync::LazyLock<crate::limits::LogLimiter> =
    std::sync::LazyLock::new(|| crate::limits::LogLimiter::new(std::time::Duration::from_secs(1)));

/// Appends one partition's records: what the log answered, the partition, the leader epoch
/// it was written in, and (acks=all) the `min.insync.replicas` the acknowledgement waits for.
fn append_one(
    broker: &Broker,
    image: &strom_metadata::MetadataImage,
    topic: &str,
    index: i32,
    acks: i16,
    records: Option<BytesMut>,
) -> Result<(strom_storage::AppendInfo, Arc<Partition>, i32, Option<i64>), AppendError> {
    if !matches!(acks, -1..=1) {
        return Err((ErrorCode::InvalidRequiredAcks, None).into());
    }
    if strom_metadata::is_internal(topic) {
        return Err((
            ErrorCode::InvalidTopicException,
            Some(format!("Cannot append to internal topic {topic}")),
        )
            .into());
    }
    let Some(partition) = broker.replicas().partition(topic, index) else {
        return Err((ErrorCode::UnknownTopicOrPartition, None).into());
    };
    let Some(leader_epoch) = partition.leader_epoch_if_leader() else {
        return Err((ErrorCode::NotLeaderOrFollower, None).into());
    };
    let mut min_isr = None;
    if acks == -1 {
        if let Some(refusal) = cut_off_leader(broker, &partition) {
            return Err(refusal.into());
        }
        let required = broker.min_insync_replicas(image, topic);
        min_isr = Some(required);
        let isr = image
            .topic(topic)
            .and_then(|t| t.partitions.get(&index))
            .map_or(0, |p| p.isr.len());
        if (isr as i64) < required {
            return Err((
                ErrorCode::NotEnoughReplicas,
                Some(format!(
                    "ISR has {isr} replicas, min.insync.replicas is {required}"
                )),
            )
                .into());
        }
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err((ErrorCode::InvalidRecord, Some("no record batch".to_owned())).into());
    };
    check_client_batches(broker, topic, index, &records)?;
    let info = partition.log.append(records).map_err(|e| {
        let refused = append_error(topic, index, &e);
        if refused.code == ErrorCode::KafkaStorageError {
            broker.metrics().produce_storage_errors_total.inc();
            if let Some(suppressed) = STORAGE_ERROR_LOG.check() {
                tracing::warn!(topic, partition = index, error = %e, suppressed, "append failed");
            }
        }
        refused
    })?;
    if !info.duplicate {
        partition.notify_appended();
    }
    Ok((info, partition, leader_epoch, min_isr))
}

/// What a client may send, beyond what the log checks of every append (framing, CRC, sizes,
/// sequences): no control batches (only the coordinator writes markers); a producer id with a
/// real sequence; exactly one batch per partition from an idempotent or transactional producer
/// (its sequence bookkeeping is per batch); and every transactional batch from the current
/// epoch of its producer, for a partition added to its ongoing transaction.
fn check_client_batches(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: &[u8],
) -> Result<(), PartitionError> {
    let invalid = |reason: String| (ErrorCode::InvalidRecord, Some(reason));
    let mut batches = 0usize;
    let mut idempotent = false;
    for batch in strom_protocol::BatchSplitter::new(records, usize::MAX) {
        // A batch that does not frame is refused by the log with the precise reason.
        let Ok(header) = batch.and_then(strom_protocol::RecordBatchHeader::parse) else {
            return Ok(());
        };
        batches += 1;
        if header.is_control() {
            return Err(invalid(
                "clients may not write control records (transaction markers)".to_owned(),
            ));
        }
        if header.producer_id() >= 0 {
            idempotent = true;
            if header.base_sequence() < 0 {
                return Err(invalid(format!(
                    "invalid sequence number {} in a batch of producer {}",
                    header.base_sequence(),
                    header.producer_id()
                )));
            }
        }
        if header.is_transactional() {
            verify_transactional(broker, topic, index, &header)?;
        }
    }
    if idempotent && batches > 1 {
        return Err(invalid(format!(
            "an idempotent or transactional producer must send exactly one batch per \
             partition, got {batches}"
        )));
    }
    Ok(())
}

/// A transactional batch is accepted only from the current epoch of its producer and for a
/// partition added to its ongoing transaction (Kafka: INVALID_PRODUCER_EPOCH / INVALID_TXN_STATE).
fn verify_transactional(
    broker: &Broker,
    topic: &str,
    index: i32,
    header: &strom_protocol::RecordBatchHeader<'_>,
) -> Result<(), PartitionError> {
    let partition = (topic.to_owned(), index);
    broker
        .txns()
        .verify_partition(header.producer_id(), header.producer_epoch(), &partition)
        .map_err(|e| {
            let code = match e {
                ErrorCode::InvalidProducerEpoch => ErrorCode::InvalidProducerEpoch,
                _ => ErrorCode::InvalidTxnState,
            };
            let reason = format!(
                "transactional batch of producer {} refused: {e:?}",
                header.producer_id()
            );
            (code, Some(reason))
        })
}
