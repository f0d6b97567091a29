//! `/metrics` on the broker's HTTP listener: after a known workload driven by librdkafka, the
//! scraped values are exactly what was produced, consumed and committed, and the exposition
//! parses with the Prometheus project's own parser (prometheus_client, in Python); then a real
//! Prometheus server (Debian's `prometheus`) scrapes the broker.

mod common;

use common::http::http_get;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

/// One sample: metric name and labels.
type Key = (String, BTreeMap<String, String>);

/// Parses an exposition with prometheus_client's parser; every sample by (name, labels).
fn parse(text: &str) -> BTreeMap<Key, f64> {
    let script = format!(
        "{}/../../tests/python/parse_prometheus.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    samples
        .into_iter()
        .map(|(name, labels, value)| ((name, labels), value))
        .collect()
}

fn value(samples: &BTreeMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    *samples
        .get(&key)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

fn sum(samples: &BTreeMap<Key, f64>, name: &str, label: (&str, &str)) -> f64 {
    samples
        .iter()
        .filter(|((n, l), _)| n == name && l.get(label.0).map(String::as_str) == Some(label.1))
        .map(|(_, v)| v)
        .sum()
}

const TOPIC: &str = "metered";
const RECORDS: usize = 200;

#[test]
fn scraped_metrics_match_a_known_workload_exactly() {
    let http = common::free_port();
    let listener = format!("http://127.0.0.1:{http}");
    let server = common::Server::start(&[("http.listeners", &listener)]);
    let bootstrap = server.bootstrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(common::create_topic(&bootstrap, TOPIC, 2, &[]));

    // Produce RECORDS records, half to each partition, acks=all.
    let producer = common::producer(&bootstrap, &[("acks", "all")]);
    runtime.block_on(async {
        for i in 0..RECORDS {
            let value = format!("value-{i:05}");
            let record = FutureRecord::<(), _>::to(TOPIC)
                .payload(&value)
                .partition((i % 2) as i32);
            producer
                .send(record, Duration::from_secs(20))
                .await
                .expect("acknowledged");
        }
    });

    // Read everything once, then commit 30 of partition 0's and none of partition 1's
    // offsets for group `lagging`.
    let consumer = common::consumer(&bootstrap, &[("group.id", "lagging")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read < RECORDS {
        assert!(Instant::now() < deadline, "read {read} of {RECORDS}");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            m.expect("consume").payload().expect("a value");
            read += 1;
        }
    }
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(TOPIC, 0, Offset::Offset(30))
        .unwrap();
    commit
        .add_partition_offset(TOPIC, 1, Offset::Offset(0))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).expect("commit");
    // The consumer's last fetches may still be in flight: let them be answered.
    drop(consumer);
    std::thread::sleep(Duration::from_millis(500));

    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    let samples = parse(&text);
    let topic = [("topic", TOPIC)];

    assert_eq!(
        value(
            &samples,
            "kafka_server_brokertopicmetrics_messagesin_total",
            &topic
        ),
        RECORDS as f64
    );
    let log_bytes = sum(&samples, "kafka_log_log_size", ("topic", TOPIC));
    assert!(log_bytes > 0.0);
    assert_eq!(
        value(
            &samples,
            "kafka_server_brokertopicmetrics_bytesin_total",
            &topic
        ),
        log_bytes,
        "every byte appended is in the log"
    );
    assert_eq!(
        value(
            &samples,
            "kafka_server_brokertopicmetrics_bytesout_total",
            &topic
        ),
        log_bytes,
        "the consumer read every batch once"
    );
    assert_eq!(
        value(
            &samples,
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            &topic
        ),
        0.0
    );
    // librdkafka batches: between one partition append per partition and one per record.
    let appends = value(
        &samples,
        "kafka_server_brokertopicmetrics_totalproducerequests_total",
        &topic,
    );
    assert!((2.0..=RECORDS as f64).contains(&appends), "{appends}");
    for p in ["0", "1"] {
        let labels = [("topic", TOPIC), ("partition", p)];
        assert_eq!(
            value(&samples, "kafka_log_log_logendoffset", &labels),
            (RECORDS / 2) as f64
        );
        assert_eq!(
            value(&samples, "kafka_topic_partition_current_offset", &labels),
            (RECORDS / 2) as f64
        );
        assert_eq!(
            value(&samples, "kafka_log_log_logstartoffset", &labels),
            0.0
        );
        assert_eq!(
            value(&samples, "kafka_log_log_numlogsegments", &labels),
            1.0
        );
    }
    let lag = |p: &str| {
        value(
            &samples,
            "kafka_consumergroup_lag",
            &[
                ("consumergroup", "lagging"),
                ("topic", TOPIC),
                ("partition", p),
            ],
        )
    };
    assert_eq!(lag("0"), (RECORDS / 2 - 30) as f64);
    assert_eq!(lag("1"), (RECORDS / 2) as f64);
    assert_eq!(
        value(
            &samples,
            "kafka_consumergroup_current_offset",
            &[
                ("consumergroup", "lagging"),
                ("topic", TOPIC),
                ("partition", "0")
            ]
        ),
        30.0
    );

    // Requests: every Produce observed in the latency histograms.
    let produces = value(
        &samples,
        "kafka_network_requestmetrics_requests_total",
        &[("request", "Produce")],
    );
    assert!((1.0..=RECORDS as f64).contains(&produces), "{produces}");
    assert_eq!(
        value(
            &samples,
            "kafka_network_requestmetrics_totaltime_seconds_count",
            &[("request", "Produce")]
        ),
        produces
    );
    assert!(
        value(
            &samples,
            "kafka_network_requestmetrics_remotetime_seconds_count",
            &[("request", "Fetch")]
        ) > 0.0
    );
    // Single node: the active controller, nothing under-replicated or offline.
    assert_eq!(
        value(
            &samples,
            "kafka_controller_kafkacontroller_activecontrollercount",
            &[]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            &[]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "kafka_server_replicamanager_underreplicatedpartitions",
            &[]
        ),
        0.0
    );
    assert!(value(&samples, "kafka_server_replicamanager_leadercount", &[]) >= 2.0);
    // The records went one at a time: no append was written with another's.
    assert_eq!(
        value(&samples, "strom_log_coalesced_appends_total", &[]),
        0.0
    );
    assert!(
        value(
            &samples,
            "kafka_server_socketservermetrics_connection_creation_total",
            &[]
        ) >= 2.0
    );

    // Unknown paths are 404s.
    assert_eq!(http_get(http, "/nothing-here").0, 404);
}

/// A real Prometheus server scrapes the broker; its query API then holds the broker's values.
#[test]
fn a_real_prometheus_scrapes_the_broker() {
    let prometheus = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("prometheus is installed (.ci/run installs Debian's prometheus package)");
    let http = common::free_port();
    let listener = format!("http://127.0.0.1:{http}");
    let server = common::Server::start(&[("http.listeners", &listener)]);
    let bootstrap = server.bootstrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(common::create_topic(&bootstrap, "scraped", 1, &[]));
    let producer = common::producer(&bootstrap, &[]);
    runtime.block_on(async {
        for i in 0..7 {
            let value = format!("v{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to("scraped").payload(&value),
                    Duration::from_secs(20),
                )
                .await
                .expect("acknowledged");
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: strom\n    static_configs:\n      - targets: ['127.0.0.1:{http}']\n"
        ),
    )
    .unwrap();
    let web = common::free_port();
    let mut child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let query = "/api/v1/query?query=kafka_server_brokertopicmetrics_messagesin_total%7Btopic%3D%22scraped%22%7D";
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
        if TcpStream::connect(("127.0.0.1", web)).is_err() {
            continue;
        }
        let (status, body) = http_get(web, query);
        if status != 200 {
            continue;
        }
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(v) = json["data"]["result"][0]["value"][1].as_str() {
            break Some(v.to_owned());
        }
    };
    let (_, targets) = http_get(web, "/api/v1/targets");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        found.as_deref(),
        Some("7"),
        "Prometheus did not scrape the broker's value; targets: {targets}"
    );
}
