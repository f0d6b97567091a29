//! The broker's network and storage-fault metrics: plain atomic counters and gauges, read with `get()`.
//! Names in the doc comments follow Kafka's (`kafka.server:type=socket-server-metrics` and
//! friends) so a later Prometheus exporter can publish them; this module does not export.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
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

/// Network-path metrics of one broker, reachable as `broker.metrics()`.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
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
    /// Produce appends refused with KAFKA_STORAGE_ERROR (a full disk, an I/O error, an offline
    /// log); Kafka counts them among `FailedProduceRequestsPerSec`.
    pub produce_storage_errors_total: Counter,
}
