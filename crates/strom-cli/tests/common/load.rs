//! Shared pieces of the multi-process replication tests: a three-broker cluster's settings,
//! topic creation, partition reads up to the high watermark, and an idempotent acks=all
//! producer load that records what was sent, what was acknowledged and when, for the
//! checker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::checker::History;
use super::cluster::Cluster;

pub const CLUSTER: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "3000"),
    ("replica.lag.time.max.ms", "2000"),
    ("replica.fetch.wait.max.ms", "200"),
];
pub const WAIT: Duration = Duration::from_secs(60);

pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn create_topic(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    create_topic_with(bootstrap, name, 1, configs)
}

pub fn create_topic_with(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = super::admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in block(admin.create_topics([&topic], &opts)).expect("create_topics") {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// (leader, isr) of partition 0 of `topic` as node `via` sees it.
pub fn partition_state(cluster: &Cluster, via: i32, topic: &str) -> (i32, Vec<i32>) {
    let view = cluster.view(via);
    let (leader, _, isr) = view
        .topics
        .get(topic)
        .and_then(|t| t.get(&0))
        .cloned()
        .unwrap_or((-1, vec![], vec![]));
    (leader, isr)
}

pub fn wait_partition(
    cluster: &Cluster,
    via: i32,
    topic: &str,
    what: &str,
    ok: impl Fn(i32, &[i32]) -> bool,
) -> Duration {
    let (_, took) = cluster.wait_view(via, WAIT, what, |v| {
        v.topics
            .get(topic)
            .and_then(|t| t.get(&0))
            .is_some_and(|(leader, _, isr)| ok(*leader, isr))
    });
    took
}

/// Every value of partition 0, read from the beginning up to the high watermark.
pub fn read_all(bootstrap: &str, topic: &str) -> Vec<String> {
    read_partition(bootstrap, topic, 0)
}

/// Every value of `partition`, read from the beginning up to the high watermark.
pub fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<String> {
    let consumer = super::consumer(bootstrap, &[]);
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(20))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut next = 0;
    while next < high {
        assert!(
            Instant::now() < deadline,
            "partition {partition}: read {next} of {high} offsets"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            next = m.offset() + 1;
            out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    out
}

/// An idempotent acks=all producer sending `v-000000`, `v-000001`, ... with a few in flight,
/// round-robin over `partitions` partitions (value `i` to partition `i % partitions`), until
/// `stop`; records per partition what it sent and what was acknowledged, when, and every
/// delivery error that reached the application.
pub struct Load {
    pub histories: Arc<Vec<Mutex<History>>>,
    pub acked: Arc<AtomicUsize>,
    pub ack_times: Arc<Mutex<Vec<Instant>>>,
    /// (acknowledged at, send-to-acknowledgement latency) of every acknowledged record.
    pub latencies: Arc<Mutex<Vec<(Instant, Duration)>>>,
    pub errors: Arc<Mutex<Vec<String>>>,
    pub stop: Arc<AtomicBool>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(bootstrap: String, topic: &'static str) -> Load {
        Self::start_partitions(bootstrap, topic, 1)
    }

    pub fn start_partitions(bootstrap: String, topic: &'static str, partitions: i32) -> Load {
        let histories: Arc<Vec<Mutex<History>>> = Arc::new(
            (0..partitions)
                .map(|_| Mutex::new(History::default()))
                .collect(),
        );
        let acked = Arc::new(AtomicUsize::new(0));
        let ack_times = Arc::new(Mutex::new(Vec::new()));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let lat = latencies.clone();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, a, t, e, s) = (
            histories.clone(),
            acked.clone(),
            ack_times.clone(),
            errors.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let producer = super::producer(
                &bootstrap,
                &[
                    ("enable.idempotence", "true"),
                    ("acks", "all"),
                    ("message.timeout.ms", "60000"),
                    ("retry.backoff.ms", "50"),
                    ("metadata.max.age.ms", "1000"),
                ],
            );
            block(async {
                let mut i = 0u64;
                let mut in_flight = tokio::task::JoinSet::new();
                let done =
                    |partition: i32, value: String, r: Result<(), String>, sent: Instant| match r {
                        Ok(()) => {
                            h[partition as usize].lock().unwrap().acked.insert(value);
                            a.fetch_add(1, Ordering::Relaxed);
                            let now = Instant::now();
                            t.lock().unwrap().push(now);
                            lat.lock().unwrap().push((now, now - sent));
                        }
                        Err(err) => e.lock().unwrap().push(format!("{value}: {err}")),
                    };
                while !s.load(Ordering::Relaxed) {
                    while in_flight.len() < 8 {
                        let value = format!("v-{i:06}");
                        let partition = (i % partitions as u64) as i32;
                        i += 1;
                        h[partition as usize]
                            .lock()
                            .unwrap()
                            .sent
                            .push(value.clone());
                        let producer = producer.clone();
                        in_flight.spawn(async move {
                            let sent = Instant::now();
                            let record = FutureRecord::<(), _>::to(topic)
                                .payload(&value)
                                .partition(partition);
                            let r = producer.send(record, Duration::from_secs(60)).await;
                            (
                                partition,
                                value,
                                r.map(|_| ()).map_err(|(e, _)| e.to_string()),
                                sent,
                            )
                        });
                    }
                    if let Some(Ok((partition, value, r, sent))) = in_flight.join_next().await {
                        done(partition, value, r, sent);
                    }
                }
                while let Some(Ok((partition, value, r, sent))) = in_flight.join_next().await {
                    done(partition, value, r, sent);
                }
            });
        });
        Load {
            histories,
            acked,
            ack_times,
            latencies,
            errors,
            stop,
            thread: Some(thread),
        }
    }

    pub fn wait_acked(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.acked.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "only {} acknowledged",
                self.acked.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the producer; partition 0's history.
    pub fn finish(self) -> History {
        let (mut histories, _) = self.finish_all();
        histories.swap_remove(0)
    }

    /// Stops the producer; every partition's history and the delivery errors seen.
    pub fn finish_all(mut self) -> (Vec<History>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("producer thread");
        let histories = self
            .histories
            .iter()
            .map(|h| std::mem::take(&mut *h.lock().unwrap()))
            .collect();
        let errors = std::mem::take(&mut *self.errors.lock().unwrap());
        (histories, errors)
    }

    /// The longest gap between consecutive acknowledgements in `[from, to]`, counting the
    /// gap from `from` to the first one and from the last one to `to`.
    pub fn longest_stall_between(&self, from: Instant, to: Instant) -> Duration {
        let times = self.ack_times.lock().unwrap();
        let mut prev = from;
        let mut worst = Duration::ZERO;
        for t in times.iter().filter(|t| **t >= from && **t <= to) {
            worst = worst.max(*t - prev);
            prev = *t;
        }
        worst.max(to.saturating_duration_since(prev))
    }

    /// The p50 and p99 send-to-acknowledgement latency of records acknowledged in
    /// `[from, to]`, and how many there were.
    pub fn latency_between(&self, from: Instant, to: Instant) -> (Duration, Duration, usize) {
        let mut l: Vec<Duration> = self
            .latencies
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, d)| *d)
            .collect();
        l.sort();
        if l.is_empty() {
            return (Duration::ZERO, Duration::ZERO, 0);
        }
        let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.99), l.len())
    }

    /// The longest gap between consecutive acknowledgements after `from`.
    pub fn longest_stall_after(&self, from: Instant) -> Duration {
        let times = self.ack_times.lock().unwrap();
        let mut prev = from;
        let mut worst = Duration::ZERO;
        for t in times.iter().filter(|t| **t >= from) {
            worst = worst.max(*t - prev);
            prev = *t;
        }
        worst
    }
}
