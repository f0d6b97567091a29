//! `/metrics`: the broker's metrics in Prometheus' text exposition format.
//!
//! Names follow the JMX exporter's rendering of Kafka's MBeans (lower-cased
//! `kafka_<domain>_<type>_<name>`, e.g. `kafka_server_brokertopicmetrics_messagesin_total`)
//! so dashboards written for Kafka adapt by little more than a job name, and, for offsets and
//! consumer lag, kafka_exporter's (`kafka_consumergroup_lag`, `kafka_topic_partition_current_offset`).
//! Latencies are histograms in seconds (Prometheus' convention) rather than the JMX
//! exporter's precomputed percentiles.
//!
//! In a cluster every broker publishes what it knows first-hand: topic and request metrics of
//! its own traffic, log metrics of the replicas it hosts, offsets of the partitions it leads,
//! controller metrics where it is the active controller, and the lag of the groups it
//! coordinates on partitions it hosts. Summing over brokers counts each thing once.

use std::collections::HashMap;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::broker::Broker;
use crate::metrics::Labels;

type CounterFamily = Family<Labels, Counter>;
type GaugeFamily = Family<Labels, Gauge>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// Builds the families of one scrape and registers them.
struct Scrape {
    registry: Registry,
}

impl Scrape {
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.registry.register(name, help, counter(value));
    }

    fn gauge(&mut self, name: &str, help: &str, value: i64) {
        self.registry.register(name, help, gauge(value));
    }

    fn counters(&mut self, name: &str, help: &str, rows: Vec<(Labels, u64)>) {
        let family = CounterFamily::default();
        for (l, v) in rows {
            family.get_or_create(&l).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    fn gauges(&mut self, name: &str, help: &str, rows: Vec<(Labels, i64)>) {
        let family = GaugeFamily::default();
        for (l, v) in rows {
            family.get_or_create(&l).set(v);
        }
        self.registry.register(name, help, family);
    }
}

impl Broker {
    /// The metrics, in Prometheus' text format (`/metrics`).
    pub fn render_metrics(&self) -> String {
        let image = self.image();
        let m = self.metrics();
        m.retain_topics(|t| image.topic(t).is_some());
        let mut s = Scrape {
            registry: Registry::default(),
        };
        let me = self.node_id();

        // BrokerTopicMetrics, per topic.
        let topics = m.topics();
        let per_topic = |f: &dyn Fn(&crate::metrics::TopicMetrics) -> u64| {
            topics
                .iter()
                .map(|(name, t)| (labels(&[("topic", name)]), f(t)))
                .collect::<Vec<_>>()
        };
        s.counters(
            "kafka_server_brokertopicmetrics_messagesin",
            "Records appended by produce requests (MessagesInPerSec).",
            per_topic(&|t| t.messages_in.get()),
        );
        s.counters(
            "kafka_server_brokertopicmetrics_bytesin",
            "Record-batch bytes appended by produce requests (BytesInPerSec).",
            per_topic(&|t| t.bytes_in.get()),
        );
        s.counters(
            "kafka_server_brokertopicmetrics_bytesout",
            "Record bytes sent to consumers (BytesOutPerSec).",
            per_topic(&|t| t.bytes_out.get()),
        );
        s.counters(
            "kafka_server_brokertopicmetrics_replicationbytesout",
            "Record bytes sent to follower replicas (ReplicationBytesOutPerSec).",
            per_topic(&|t| t.replication_bytes_out.get()),
        );
        s.counters(
            "kafka_server_brokertopicmetrics_totalproducerequests",
            "Partition appends requested by produce requests (TotalProduceRequestsPerSec).",
            per_topic(&|t| t.produce_requests.get()),
        );
        s.counters(
            "kafka_server_brokertopicmetrics_failedproducerequests",
            "Partition appends that failed (FailedProduceRequestsPerSec).",
            per_topic(&|t| t.failed_produce_requests.get()),
        );
        s.counters(
            "kafka_server_brokertopicmetrics_totalfetchrequests",
            "Partition reads requested by consumer fetches (TotalFetchRequestsPerSec).",
            per_topic(&|t| t.fetch_requests.get()),
        );
        s.counters(
            "kafka_server_brokertopicmetrics_failedfetchrequests",
            "Partition reads that failed (FailedFetchRequestsPerSec).",
            per_topic(&|t| t.failed_fetch_requests.get()),
        );

        // RequestMetrics, per API.
        let apis: Vec<_> = m.apis().collect();
        let per_api = |f: &dyn Fn(&crate::metrics::ApiMetrics) -> u64| {
            apis.iter()
                .map(|(key, a)| {
                    let name = crate::metrics::api_name(*key);
                    (labels(&[("request", &name)]), f(a))
                })
                .collect::<Vec<_>>()
        };
        s.counters(
            "kafka_network_requestmetrics_requests",
            "Requests handled, per API (RequestsPerSec).",
            per_api(&|a| a.requests.get()),
        );
        let by_version = apis
            .iter()
            .flat_map(|(key, a)| {
                let name = crate::metrics::api_name(*key);
                a.by_version
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.get() > 0)
                    .map(move |(v, c)| {
                        (
                            labels(&[("request", &name), ("version", &v.to_string())]),
                            c.get(),
                        )
                    })
            })
            .collect::<Vec<_>>();
        s.counters(
            "kafka_network_requestmetrics_requests_by_version",
            "Requests handled, per API and request version (RequestsPerSec's version tag)",
            by_version,
        );
        s.counters(
            "kafka_network_requestmetrics_errors",
            "Requests whose handling failed and closed the connection, per API.",
            per_api(&|a| a.errors.get()),
        );
        let latency = &m.latency;
        s.registry.register(
            "kafka_network_requestmetrics_requestqueuetime_seconds",
            "From a request's arrival to its handling (RequestQueueTimeMs).",
            latency.queue_time.clone(),
        );
        s.registry.register(
            "kafka_network_requestmetrics_localtime_seconds",
            "Handling, less the remote time (LocalTimeMs).",
            latency.local_time.clone(),
        );
        s.registry.register(
            "kafka_network_requestmetrics_remotetime_seconds",
            "Waiting on others: acks=all on the ISR, a fetch's long poll (RemoteTimeMs).",
            latency.remote_time.clone(),
        );
        s.registry.register(
            "kafka_network_requestmetrics_totaltime_seconds",
            "From a request's arrival to its response (TotalTimeMs).",
            latency.total_time.clone(),
        );

        // Socket server.
        s.gauge(
            "kafka_server_socketservermetrics_connection_count",
            "Client connections open now.",
            m.connection_count.get(),
        );
        s.counter(
            "kafka_server_socketservermetrics_connection_creation",
            "Connections accepted.",
            m.connection_creation_total.get(),
        );
        s.counter(
            "kafka_server_socketservermetrics_connections_rejected",
            "Connections closed at once for max.connections or max.connections.per.ip.",
            m.connections_rejected_max_connections.get()
                + m.connections_rejected_max_connections_per_ip.get(),
        );
        s.gauge(
            "kafka_network_requestchannel_requestbytesinflight",
            "Request bytes read and not yet handled (queued.max.request.bytes budget in use).",
            m.request_bytes_in_flight.get(),
        );
        s.counter(
            "strom_network_fetch_zero_copy_bytes",
            "Fetched record bytes sent from segment files with sendfile (plaintext listeners).",
            m.zero_copy_bytes_total.get(),
        );
        s.counter(
            "strom_network_fetch_copied_bytes",
            "Fetched record bytes read into a buffer to be written (TLS listeners).",
            m.copied_file_bytes_total.get(),
        );

        s.counter(
            "strom_log_coalesced_appends",
            "Appends written with another append's write: concurrent appends to one partition \
             written by one system call.",
            strom_storage::coalesced_appends_total(),
        );

        // Replica manager: the partitions hosted here.
        let mut min_isr: HashMap<&str, i64> = HashMap::new();
        let (mut hosted, mut leading, mut under_replicated, mut under_min_isr) = (0, 0, 0, 0);
        let mut log_rows: [Vec<(Labels, i64)>; 4] = Default::default();
        let mut offsets = Vec::new();
        let mut oldest = Vec::new();
        let mut high_watermarks: HashMap<(String, i32), i64> = HashMap::new();
        for partition in self.replicas().all() {
            let Some(topic) = image.topic(&partition.topic) else {
                continue;
            };
            let Some(p) = topic.partitions.get(&partition.index) else {
                continue;
            };
            hosted += 1;
            let index = partition.index.to_string();
            let l = labels(&[("topic", &partition.topic), ("partition", &index)]);
            let log = &partition.log;
            log_rows[0].push((l.clone(), log.size_bytes() as i64));
            log_rows[1].push((l.clone(), log.segment_count() as i64));
            log_rows[2].push((l.clone(), log.log_start_offset()));
            log_rows[3].push((l.clone(), log.log_end_offset()));
            let hw = partition.high_watermark();
            high_watermarks.insert((partition.topic.clone(), partition.index), hw);
            if p.leader == me && partition.is_leader() {
                leading += 1;
                if p.isr.len() < p.replicas.len() {
                    under_replicated += 1;
                }
                let min = *min_isr
                    .entry(topic.name.as_str())
                    .or_insert_with(|| self.min_insync_replicas(&image, &topic.name));
                if (p.isr.len() as i64) < min {
                    under_min_isr += 1;
                }
                offsets.push((l.clone(), hw));
                oldest.push((l, log.log_start_offset()));
            }
        }
        s.gauge(
            "kafka_server_replicamanager_partitioncount",
            "Partition replicas hosted here.",
            hosted,
        );
        s.gauge(
            "kafka_server_replicamanager_leadercount",
            "Partitions led here.",
            leading,
        );
        s.gauge(
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions led here whose ISR is smaller than their replica set.",
            under_replicated,
        );
        s.gauge(
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions led here whose ISR is smaller than min.insync.replicas.",
            under_min_isr,
        );
        s.counter(
            "kafka_server_replicamanager_isrshrinks",
            "ISR shrinks committed by this broker as leader (IsrShrinksPerSec).",
            m.isr_shrinks_total.get(),
        );
        s.counter(
            "kafka_server_replicamanager_isrexpands",
            "ISR expansions committed by this broker as leader (IsrExpandsPerSec).",
            m.isr_expands_total.get(),
        );
        let [size, segments, start, end] = log_rows;
        s.gauges(
            "kafka_log_log_size",
            "Bytes of a hosted partition's log.",
            size,
        );
        s.gauges(
            "kafka_log_log_numlogsegments",
            "Segments of a hosted partition's log.",
            segments,
        );
        s.gauges(
            "kafka_log_log_logstartoffset",
            "First offset of a hosted partition's log.",
            start,
        );
        s.gauges(
            "kafka_log_log_logendoffset",
            "Log end offset of a hosted partition.",
            end,
        );
        s.gauges(
            "kafka_topic_partition_current_offset",
            "High watermark of a partition led here (kafka_exporter's name).",
            offsets,
        );
        s.gauges(
            "kafka_topic_partition_oldest_offset",
            "Log start offset of a partition led here (kafka_exporter's name).",
            oldest,
        );

        // Controller: published by the active controller only, as Kafka does.
        let active = self.active_controller() == Some(me);
        let (mut offline, mut partitions) = (0, 0);
        if active {
            for t in image.topics() {
                for p in t.partitions.values() {
                    partitions += 1;
                    if p.leader < 0 {
                        offline += 1;
                    }
                }
            }
        }
        s.gauge(
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller.",
            i64::from(active),
        );
        s.gauge(
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (active controller only).",
            offline,
        );
        s.gauge(
            "kafka_controller_kafkacontroller_globalpartitioncount",
            "Partitions in the cluster (active controller only).",
            partitions,
        );
        s.gauge(
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster (active controller only).",
            if active {
                image.topics().count() as i64
            } else {
                0
            },
        );

        // Coordinators.
        let mut groups: HashMap<(&str, &str), i64> = HashMap::new();
        let classic = self.groups().list(&[], &[]);
        for g in &classic {
            *groups.entry(("classic", g.state.name())).or_default() += 1;
        }
        let consumer = self.groups().list_consumer();
        for (_, state) in &consumer {
            *groups.entry(("consumer", state)).or_default() += 1;
        }
        let mut group_rows: Vec<_> = groups
            .into_iter()
            .map(|((kind, state), n)| (labels(&[("type", kind), ("state", state)]), n))
            .collect();
        group_rows.sort();
        s.gauges(
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Groups coordinated here, by type and state.",
            group_rows,
        );
        let mut txns: HashMap<String, i64> = HashMap::new();
        for t in self.txns().list() {
            *txns.entry(format!("{:?}", t.state)).or_default() += 1;
        }
        let mut txn_rows: Vec<_> = txns
            .into_iter()
            .map(|(state, n)| (labels(&[("state", &state)]), n))
            .collect();
        txn_rows.sort();
        s.gauges(
            "kafka_coordinator_transaction_transactionmetadata_count",
            "Transactional ids coordinated here, by state.",
            txn_rows,
        );

        // Consumer lag (kafka_exporter's names): committed offsets of the groups coordinated
        // here, against the high watermark of partitions hosted here.
        let mut current = Vec::new();
        let mut lag = Vec::new();
        for (group, topic, partition, offset) in self.groups().committed_offsets() {
            let Some(hw) = high_watermarks.get(&(topic.clone(), partition)) else {
                continue;
            };
            let index = partition.to_string();
            let l = labels(&[
                ("consumergroup", &group),
                ("topic", &topic),
                ("partition", &index),
            ]);
            current.push((l.clone(), offset));
            // A committed offset of -1 (none) lags by everything readable.
            let from = if offset < 0 { 0 } else { offset };
            lag.push((l, (hw - from).max(0)));
        }
        s.gauges(
            "kafka_consumergroup_current_offset",
            "Committed offset of a group on a partition.",
            current,
        );
        s.gauges(
            "kafka_consumergroup_lag",
            "High watermark minus the committed offset of a group on a partition.",
            lag,
        );

        let mut out = String::new();
        if let Err(e) = encode(&mut out, &s.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
