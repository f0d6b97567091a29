//! Followers replicate by fetching from their leaders with Kafka's own Fetch request (replica
//! id in ReplicaState, KIP-903), one fetcher task per leader broker for all the partitions
//! this broker follows there. Each response's batches are appended as the leader wrote them;
//! a diverging epoch in the response (KIP-320/KIP-595 style truncation) cuts the local tail
//! where it differs from the leader's log, and the leader's high watermark is taken, capped
//! by the local log end. The fetch offset of the next request tells the leader how far this
//! replica has come, which is what moves the high watermark and the ISR.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::security::outbound::BrokerStream;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use parking_lot::Mutex;
use strom_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::broker::Broker;
use crate::inter_broker;
use crate::partition::Partition;

/// The Fetch version followers send (topic ids, diverging epochs, ReplicaState).
const REPLICA_FETCH_VERSION: i16 = 15;
/// Pause after a failed connection or request before trying again.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Connecting, the TLS handshake and SASL, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed connections to a leader (down, or refusing this broker's credentials) are logged
/// at most once every ten seconds.
static CONNECT_ERROR_LOG: std::sync::LazyLock<crate::limits::LogLimiter> =
    std::sync::LazyLock::new(|| crate::limits::LogLimiter::new(Duration::from_secs(10)));
/// Largest response frame a follower accepts.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The fetcher tasks of this broker, one per leader it follows partitions on.
#[derive(Default)]
pub struct ReplicaFetchers {
    fetchers: Mutex<HashMap<i32, Fetcher>>,
    /// Woken when roles change, so the manager re-plans at once.
    pub(crate) replan: Notify,
}

struct Fetcher {
    partitions: Arc<Mutex<Vec<Arc<Partition>>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReplicaFetchers {
    /// Runs until the broker is gone: every role change (and every second, as a safety net)
    /// moves each followed partition to the fetcher of its current leader.
    pub async fn run(broker: Weak<Broker>) {
        loop {
            let Some(b) = broker.upgrade() else { return };
            {
                let notified = b.fetchers().replan.notified();
                b.fetchers().plan(&b, &broker);
                let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            }
            drop(b);
        }
    }

    fn plan(&self, broker: &Broker, weak: &Weak<Broker>) {
        let mut by_leader: HashMap<i32, Vec<Arc<Partition>>> = HashMap::new();
        for p in broker.replicas().all() {
            let role = p.role();
            if role.leader >= 0 && role.leader != broker.node_id() {
                by_leader.entry(role.leader).or_default().push(p);
            }
        }
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|leader, _| by_leader.contains_key(leader));
        for (leader, partitions) in by_leader {
            let fetcher = fetchers.entry(leader).or_insert_with(|| {
                let set = Arc::new(Mutex::new(Vec::new()));
                let wake = Arc::new(Notify::new());
                let task =
                    tokio::spawn(fetch_loop(weak.clone(), leader, set.clone(), wake.clone()));
                Fetcher {
                    partitions: set,
                    wake,
                    task,
                }
            });
            let mut current = fetcher.partitions.lock();
            let same = current.len() == partitions.len()
                && current
                    .iter()
                    .zip(&partitions)
                    .all(|(a, b)| Arc::ptr_eq(a, b));
            if !same {
                *current = partitions;
                fetcher.wake.notify_one();
            }
        }
    }
}

/// Fetches from `leader` for the partitions in `set` until the task is aborted.
async fn fetch_loop(
    broker: Weak<Broker>,
    leader: i32,
    set: Arc<Mutex<Vec<Arc<Partition>>>>,
    wake: Arc<Notify>,
) {
    let mut conn: Option<BrokerStream> = None;
    let mut correlation_id = 0i32;
    loop {
        let partitions: Vec<Arc<Partition>> = set.lock().clone();
        if partitions.is_empty() {
            wake.notified().await;
            continue;
        }
        let Some(b) = broker.upgrade() else { return };
        let (node_id, wait_ms, max_bytes) = (
            b.node_id(),
            b.config().replica_fetch_wait_max_ms(),
            b.config().replica_fetch_max_bytes(),
        );
        // Partitions listed in `follower.replication.throttled.replicas` for this broker are
        // fetched only while the follower throttle has room, and for no more than it has.
        let image = b.image();
        let throttled: Vec<bool> = partitions
            .iter()
            .map(|p| {
                crate::throttle::is_throttled(
                    &image,
                    &p.topic,
                    p.index,
                    node_id,
                    "follower.replication.throttled.replicas",
                )
            })
            .collect();
        drop(image);
        let (mut partitions, mut throttled) = (partitions, throttled);
        let mut throttled_max = usize::MAX;
        let mut throttle_rate = crate::throttle::UNLIMITED;
        if throttled.iter().any(|t| *t) {
            let (throttle, rate) = b.follower_throttle();
            throttle_rate = rate;
            throttled_max = throttle.available(rate);
            if throttled_max == 0 {
                let keep: Vec<bool> = throttled.iter().map(|t| !t).collect();
                partitions = partitions
                    .into_iter()
                    .zip(&keep)
                    .filter_map(|(p, k)| k.then_some(p))
                    .collect();
                throttled = vec![false; partitions.len()];
                if partitions.is_empty() {
                    let wait = throttle.wait(rate).max(Duration::from_millis(10));
                    drop(b);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wake.notified() => {}
                    }
                    continue;
                }
            }
        }
        let endpoint = b.inter_broker_endpoint(leader);
        let Some((host, port)) = endpoint else {
            drop(b);
            tokio::time::sleep(RETRY_BACKOFF).await;
            continue;
        };
        if conn.is_none() {
            // TLS and SASL as the inter-broker listener has them.
            match b
                .outbound()
                .connect(&host, port, node_id, CONNECT_TIMEOUT)
                .await
            {
                Ok(s) => conn = Some(s),
                Err(e) => {
                    if let Some(suppressed) = CONNECT_ERROR_LOG.check() {
                        tracing::warn!(leader, %host, port, error = %e, suppressed, "cannot connect to the leader to replicate");
                    }
                    drop(b);
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        drop(b);
        // Each partition's leader epoch as the request states it: the answer applies only if
        // it is still the epoch when the answer arrives.
        let epochs: Vec<i32> = partitions.iter().map(|p| p.role().leader_epoch).collect();
        let mut request = fetch_request(node_id, &partitions, &epochs, wait_ms, max_bytes);
        if throttled_max != usize::MAX {
            let cap = i32::try_from(throttled_max).unwrap_or(i32::MAX);
            for t in &mut request.topics {
                for fp in &mut t.partitions {
                    let listed = partitions
                        .iter()
                        .zip(&throttled)
                        .any(|(p, th)| *th && p.topic_id == t.topic_id && p.index == fp.partition);
                    if listed {
                        fp.partition_max_bytes = fp.partition_max_bytes.min(cap);
                    }
                }
            }
        }
        correlation_id = correlation_id.wrapping_add(1);
        let timeout = Duration::from_millis(wait_ms.max(0) as u64) + Duration::from_secs(10);
        let stream = conn.as_mut().expect("connected above");
        let response = tokio::time::timeout(
            timeout,
            roundtrip(stream, correlation_id, node_id, &request),
        )
        .await;
        match response {
            Ok(Ok(response)) => {
                if throttle_rate != crate::throttle::UNLIMITED {
                    let moved = throttled_bytes(&partitions, &throttled, &response);
                    if let Some(b) = broker.upgrade() {
                        b.follower_throttle().0.record(throttle_rate, moved);
                    }
                }
                let applied = tokio::task::spawn_blocking({
                    let partitions = partitions.clone();
                    let broker = broker.clone();
                    move || {
                        let applied = apply_response(&partitions, &epochs, response);
                        if let Some(b) = broker.upgrade() {
                            fsync_durable(&b, &partitions);
                        }
                        applied
                    }
                })
                .await
                .unwrap_or(true);
                if applied {
                    continue;
                }
                // Errors the next metadata should resolve: do not spin on them.
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_BACKOFF) => {}
                    _ = wake.notified() => {}
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
                conn = None;
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            Err(_) => {
                tracing::debug!(leader, "replica fetch timed out; reconnecting");
                conn = None;
            }
        }
    }
}

/// Record bytes a response carries for the throttled partitions.
fn throttled_bytes(
    partitions: &[Arc<Partition>],
    throttled: &[bool],
    response: &FetchResponse,
) -> usize {
    let mut moved = 0;
    for topic in &response.responses {
        for data in &topic.partitions {
            let listed = partitions.iter().zip(throttled).any(|(p, th)| {
                *th && p.topic_id == topic.topic_id && p.index == data.partition_index
            });
            if listed {
                moved += data.records.as_ref().map_or(0, |r| r.len());
            }
        }
    }
    moved
}

fn fetch_request(
    node_id: i32,
    partitions: &[Arc<Partition>],
    epochs: &[i32],
    wait_ms: i32,
    max_bytes: i32,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, epoch) in partitions.iter().zip(epochs) {
        let mut fp = FetchPartition::default();
        fp.partition = p.index;
        fp.current_leader_epoch = *epoch;
        fp.fetch_offset = p.log.log_end_offset();
        fp.last_fetched_epoch = p.log.latest_epoch();
        fp.log_start_offset = p.log.log_start_offset();
        fp.partition_max_bytes = max_bytes;
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(fp),
            None => {
                let mut t = FetchTopic::default();
                t.topic_id = p.topic_id;
                t.partitions.push(fp);
                topics.push(t);
            }
        }
    }
    let mut state = ReplicaState::default();
    state.replica_id = BrokerId(node_id);
    state.replica_epoch = -1;
    let mut request = FetchRequest::default();
    request.replica_state = state;
    request.max_wait_ms = wait_ms;
    request.min_bytes = 1;
    request.max_bytes = i32::MAX;
    request.isolation_level = 0;
    request.session_id = 0;
    request.session_epoch = -1;
    request.topics = topics;
    request
}

/// Durable mode (`flush.before.ack.enable`): what this follower appended is fsynced (one
/// group commit per log dir) before it fetches again, so the offset its next fetch reports,
/// which the leader counts as its acknowledgement for acks=all, is on its disk.
fn fsync_durable(broker: &Broker, partitions: &[Arc<Partition>]) {
    let tickets: Vec<_> = partitions
        .iter()
        .filter(|p| p.log.config().flush_before_ack)
        .filter(|p| p.log.flushed_offset() < p.log.log_end_offset())
        .map(|p| broker.replicas().group_commit().submit(p))
        .collect();
    for ticket in &tickets {
        ticket.wait_blocking();
    }
}

/// Applies one fetch response. Returns false when some partition got an error the fetcher
/// should back off on (not leader, fenced epoch: the metadata will tell who leads now).
fn apply_response(partitions: &[Arc<Partition>], epochs: &[i32], response: FetchResponse) -> bool {
    if response.error_code != 0 {
        tracing::debug!(
            error = response.error_code,
            "replica fetch refused as a whole"
        );
        return false;
    }
    let mut ok = true;
    for topic in response.responses {
        for data in topic.partitions {
            let Some((p, epoch)) = partitions
                .iter()
                .zip(epochs)
                .find(|(p, _)| p.topic_id == topic.topic_id && p.index == data.partition_index)
            else {
                continue;
            };
            if let Err(reason) = apply_partition(p, *epoch, data) {
                ok = false;
                tracing::debug!(topic = %p.topic, partition = p.index, reason, "replica fetch: partition not advanced");
            }
        }
    }
    ok
}

fn apply_partition(
    p: &Partition,
    fetched_in_epoch: i32,
    data: kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<(), String> {
    match ErrorCode::try_from_code(data.error_code) {
        None => {}
        Some(ErrorCode::OffsetOutOfRange) => {
            p.realign_out_of_range(fetched_in_epoch, data.high_watermark, data.log_start_offset)?;
            return Err("offset out of range; realigned with the leader".into());
        }
        Some(code) => return Err(format!("{code:?}")),
    }
    let diverging = (data.diverging_epoch.epoch >= 0 && data.diverging_epoch.end_offset >= 0)
        .then_some((data.diverging_epoch.epoch, data.diverging_epoch.end_offset));
    p.apply_fetched(
        fetched_in_epoch,
        diverging,
        data.records.as_deref(),
        data.high_watermark,
        data.log_start_offset,
    )
}

/// One request and its response on a dedicated connection (a fetcher has one in flight).
async fn roundtrip(
    stream: &mut BrokerStream,
    correlation_id: i32,
    node_id: i32,
    request: &FetchRequest,
) -> std::io::Result<FetchResponse> {
    let version = REPLICA_FETCH_VERSION;
    let client_id = format!("strom-replica-{node_id}");
    let frame =
        inter_broker::encode_request(ApiKey::Fetch, version, correlation_id, &client_id, request)?;
    stream.write_all(&frame).await?;
    let len = inter_broker::response_len(stream.read_i32().await?, MAX_RESPONSE_BYTES)?;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    inter_broker::decode_response(Bytes::from(buf), version, correlation_id)
}
