//! The broker's metrics. Hot-path counts are plain atomics (one relaxed add each), per API
//! latency histograms are prometheus-client's; `prometheus.rs` publishes them all, with the
//! gauges computed at scrape time, in Prometheus' text format. Names in the doc comments
//! follow Kafka's MBeans (`kafka.server:type=socket-server-metrics` and friends).

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Prometheus labels: (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// A family of latency histograms, one per label set.
pub type LatencyFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Kafka's `BrokerTopicMetrics` of one topic.
#[derive(Debug, Default)]
pub struct TopicMetrics {
    /// `MessagesInPerSec`: records appended by produce requests (leader appends).
    pub messages_in: Counter,
    /// `BytesInPerSec`: record-batch bytes appended by produce requests.
    pub bytes_in: Counter,
    /// `BytesOutPerSec`: record bytes sent to consumers.
    pub bytes_out: Counter,
    /// `ReplicationBytesOutPerSec`: record bytes sent to follower replicas.
    pub replication_bytes_out: Counter,
    /// `TotalProduceRequestsPerSec` / `FailedProduceRequestsPerSec`: per partition of a
    /// request, as Kafka counts them.
    pub produce_requests: Counter,
    pub failed_produce_requests: Counter,
    /// `TotalFetchRequestsPerSec` / `FailedFetchRequestsPerSec` (consumer fetches).
    pub fetch_requests: Counter,
    pub failed_fetch_requests: Counter,
}

/// Request latency buckets, in seconds: 50 µs doubling to about 26 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Kafka's `RequestMetrics` of one API.
#[derive(Debug)]
pub struct ApiMetrics {
    /// `RequestsPerSec`.
    pub requests: Counter,
    /// `RequestsPerSec` by request version (Kafka labels it `version`), versions 0–31.
    pub by_version: [Counter; 32],
    /// Requests whose handling failed (the connection was closed: a malformed request).
    pub errors: Counter,
    /// `RequestQueueTimeMs`: from the frame's arrival to its handler starting.
    pub queue_time: Histogram,
    /// `LocalTimeMs`: handling, less the remote time.
    pub local_time: Histogram,
    /// `RemoteTimeMs`: waiting on others (acks=all on the ISR, a fetch's long poll).
    pub remote_time: Histogram,
    /// `TotalTimeMs`: from arrival to the response handed to the connection's writer.
    pub total_time: Histogram,
}

/// The request latency histograms of every API, as families labelled `request` (Kafka's API
/// name): what `/metrics` publishes. Each API keeps handles on its own histograms.
#[derive(Debug, Clone)]
pub struct LatencyFamilies {
    pub queue_time: LatencyFamily,
    pub local_time: LatencyFamily,
    pub remote_time: LatencyFamily,
    pub total_time: LatencyFamily,
}

impl Default for LatencyFamilies {
    fn default() -> Self {
        let family = || LatencyFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        LatencyFamilies {
            queue_time: family(),
            local_time: family(),
            remote_time: family(),
            total_time: family(),
        }
    }
}

/// Kafka's name of API `key` (`Produce`, `Fetch`, ...), or the key as a number.
pub fn api_name(key: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}").trim_end_matches("Key").to_owned(),
        Err(_) => key.to_string(),
    }
}

impl ApiMetrics {
    fn new(key: i16, families: &LatencyFamilies) -> ApiMetrics {
        let labels = vec![("request".to_owned(), api_name(key))];
        ApiMetrics {
            requests: Counter::default(),
            by_version: Default::default(),
            errors: Counter::default(),
            queue_time: families.queue_time.get_or_create_owned(&labels),
            local_time: families.local_time.get_or_create_owned(&labels),
            remote_time: families.remote_time.get_or_create_owned(&labels),
            total_time: families.total_time.get_or_create_owned(&labels),
        }
    }
}

/// API keys below this get request metrics (Kafka's keys run to about 90).
pub const API_KEYS: usize = 128;

tokio::task_local! {
    /// Remote time accumulated by the request being handled on this task.
    static REMOTE_NANOS: Cell<u64>;
}

/// Awaits `f`, counting the wait as the current request's remote time (Kafka's purgatory).
pub(crate) async fn remote<F: Future>(f: F) -> F::Output {
    let started = Instant::now();
    let out = f.await;
    let waited = started.elapsed().as_nanos() as u64;
    let _ = REMOTE_NANOS.try_with(|n| n.set(n.get() + waited));
    out
}

/// Runs a request's handler, returning its output and the remote time it accumulated.
pub(crate) async fn measure_remote<F: Future>(f: F) -> (F::Output, Duration) {
    REMOTE_NANOS
        .scope(Cell::new(0), async move {
            let out = f.await;
            let nanos = REMOTE_NANOS.with(Cell::get);
            (out, Duration::from_nanos(nanos))
        })
        .await
}

/// Metrics of one broker, reachable as `broker.metrics()`.
#[derive(Debug)]
pub struct BrokerMetrics {
    /// Per topic, created on first use; `prometheus.rs` publishes only existing topics.
    topics: RwLock<HashMap<String, Arc<TopicMetrics>>>,
    /// Per API key, created on first request.
    apis: Vec<OnceLock<ApiMetrics>>,
    pub latency: LatencyFamilies,
    /// `IsrShrinksPerSec` / `IsrExpandsPerSec`: ISR changes this broker (as leader) committed.
    pub isr_shrinks_total: Counter,
    pub isr_expands_total: Counter,
    /// `connection-count`: client connections open now.
    pub connection_count: Gauge,
    /// `connection-creation-total`: connections accepted and admitted.
    pub connection_creation_total: Counter,
    /// Connections closed at once because `max.connections` was reached (Kafka instead
    /// stops accepting; no Kafka metric of this name).
    pub connections_rejected_max_connections: Counter,
    /// Connections closed at once because `max.connections.per.ip` was reached for their IP
    /// (Kafka: `TooManyConnectionsException`).
    pub connections_rejected_max_connections_per_ip: Counter,
    /// `accept` failures (EMFILE/ENFILE and the like); the acceptor backs off after each.
    pub accept_errors_total: Counter,
    /// Connections closed by `connections.max.idle.ms` (Kafka's idle expiry,
    /// part of `connection-close-total`).
    pub idle_connections_closed_total: Counter,
    /// Times a connection stopped reading because `queued.max.request.bytes` was used up.
    pub request_budget_waits_total: Counter,
    /// `MemoryPoolUsed`: request bytes read (or reserved for reading) and not yet handled.
    pub request_bytes_in_flight: Gauge,
    /// Bytes of encoded responses held in memory waiting to be written, over all
    /// connections (fetched records sent from segment files are not held, not counted).
    pub response_bytes_queued: Gauge,
    /// Fetched record bytes sent from segment files with sendfile (plaintext listeners).
    pub zero_copy_bytes_total: Counter,
    /// Fetched record bytes read from segment files into a buffer to be written (TLS
    /// listeners, or a disk without file descriptors).
    pub copied_file_bytes_total: Counter,
    /// Produce appends refused with KAFKA_STORAGE_ERROR (a full disk, an I/O error, an offline
    /// log); Kafka counts them among `FailedProduceRequestsPerSec`.
    pub produce_storage_errors_total: Counter,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics {
            topics: RwLock::default(),
            apis: (0..API_KEYS).map(|_| OnceLock::new()).collect(),
            latency: LatencyFamilies::default(),
            isr_shrinks_total: Counter::default(),
            isr_expands_total: Counter::default(),
            connection_count: Gauge::default(),
            connection_creation_total: Counter::default(),
            connections_rejected_max_connections: Counter::default(),
            connections_rejected_max_connections_per_ip: Counter::default(),
            accept_errors_total: Counter::default(),
            idle_connections_closed_total: Counter::default(),
            request_budget_waits_total: Counter::default(),
            request_bytes_in_flight: Gauge::default(),
            response_bytes_queued: Gauge::default(),
            zero_copy_bytes_total: Counter::default(),
            copied_file_bytes_total: Counter::default(),
            produce_storage_errors_total: Counter::default(),
        }
    }
}

impl BrokerMetrics {
    /// The metrics of `topic` (created on first use).
    pub fn topic(&self, topic: &str) -> Arc<TopicMetrics> {
        if let Some(m) = self.topics.read().get(topic) {
            return Arc::clone(m);
        }
        Arc::clone(self.topics.write().entry(topic.to_owned()).or_default())
    }

    /// Every topic's metrics, by name.
    pub fn topics(&self) -> Vec<(String, Arc<TopicMetrics>)> {
        let mut out: Vec<_> = self
            .topics
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Forgets the metrics of topics that no longer exist (a topic deleted and created again
    /// starts from zero, as in Kafka).
    pub fn retain_topics(&self, exists: impl Fn(&str) -> bool) {
        self.topics.write().retain(|name, _| exists(name));
    }

    /// The metrics of API `key` (`None` for keys outside Kafka's range).
    pub fn api(&self, key: i16) -> Option<&ApiMetrics> {
        let slot = self.apis.get(usize::try_from(key).ok()?)?;
        Some(slot.get_or_init(|| ApiMetrics::new(key, &self.latency)))
    }

    /// The APIs that served at least one request, by key.
    pub fn apis(&self) -> impl Iterator<Item = (i16, &ApiMetrics)> {
        self.apis
            .iter()
            .enumerate()
            .filter_map(|(key, m)| Some((key as i16, m.get()?)))
    }

    /// Counts one request of `key` at `version` (which protocol version clients use).
    pub fn count_version(&self, key: i16, version: i16) {
        let counter = self
            .api(key)
            .and_then(|m| m.by_version.get(usize::try_from(version).ok()?));
        if let Some(c) = counter {
            c.inc();
        }
    }

    /// Records one request's timings (`failed`: its handling closed the connection).
    pub fn observe_request(
        &self,
        key: i16,
        queue: Duration,
        handling: Duration,
        remote: Duration,
        failed: bool,
    ) {
        let Some(m) = self.api(key) else { return };
        m.requests.inc();
        if failed {
            m.errors.inc();
        }
        let remote = remote.min(handling);
        m.queue_time.observe(queue.as_secs_f64());
        m.local_time.observe((handling - remote).as_secs_f64());
        m.remote_time.observe(remote.as_secs_f64());
        m.total_time.observe((queue + handling).as_secs_f64());
    }
}
