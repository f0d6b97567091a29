//! Connector plugins from outside the crate, registered with the worker: listed and usable
//! over REST; a sink task's retriable failures make the runtime deliver the same records
//! again after a back-off, and none is lost or repeated; a connector that fails to start is
//! FAILED with its reason.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use serde_json::json;
use strom_client::{Producer, ProducerConfig, ProducerRecord, TopicPartition};
use strom_connect::config::{ConfigDef, Props};
use strom_connect::connector::{
    BoxFuture, Connector, ConnectorType, SinkTask, SourceOffsets, SourceTask, Task,
};
use strom_connect::data::{JsonMap, Record, SinkRecord, SourceRecord, Value};
use strom_connect::plugins::{ConnectorPlugin, Plugins};
use strom_connect::standalone::Standalone;
use strom_connect::{ConnectError, Result};

static DELIVERED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static FAILURES_LEFT: AtomicUsize = AtomicUsize::new(3);
static PUT_CALLS: AtomicUsize = AtomicUsize::new(0);

struct FlakySink;

impl Connector for FlakySink {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn version(&self) -> String {
        "9.9".into()
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
    }
    fn start(&mut self, _props: &Props) -> Result<()> {
        Ok(())
    }
    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![Props::new()]
    }
    fn create_task(&self) -> Task {
        Task::Sink(Box::new(FlakyTask))
    }
}

struct FlakyTask;

impl SinkTask for FlakyTask {
    fn start(&mut self, _props: &Props) -> Result<()> {
        Ok(())
    }
    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            PUT_CALLS.fetch_add(1, Ordering::SeqCst);
            if FAILURES_LEFT.load(Ordering::SeqCst) > 0 {
                FAILURES_LEFT.fetch_sub(1, Ordering::SeqCst);
                return Err(ConnectError::Retriable("the database is busy".into()));
            }
            let mut d = DELIVERED.lock().unwrap();
            d.extend(records.iter().map(|r| r.record.value.to_display()));
            Ok(())
        })
    }
    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

static POLLS: AtomicUsize = AtomicUsize::new(0);

/// A source whose first two polls fail with `Retriable`, then sends three records once.
struct HiccupSource;

impl Connector for HiccupSource {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
    }
    fn start(&mut self, _props: &Props) -> Result<()> {
        Ok(())
    }
    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![Props::new()]
    }
    fn create_task(&self) -> Task {
        Task::Source(Box::new(HiccupTask { sent: false }))
    }
}

struct HiccupTask {
    sent: bool,
}

impl SourceTask for HiccupTask {
    fn start(&mut self, _props: &Props, _offsets: &SourceOffsets) -> Result<()> {
        Ok(())
    }
    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            if POLLS.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(ConnectError::Retriable(
                    "upstream briefly unavailable".into(),
                ));
            }
            if self.sent {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Ok(Vec::new());
            }
            self.sent = true;
            Ok((0..3)
                .map(|i| SourceRecord {
                    source_partition: JsonMap::new(),
                    source_offset: JsonMap::new(),
                    record: Record::new("hiccup", None, Value::String(format!("h{i}"))),
                })
                .collect())
        })
    }
}

/// A connector whose `start` always fails.
struct BrokenSource;

impl Connector for BrokenSource {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
    }
    fn start(&mut self, _props: &Props) -> Result<()> {
        Err(ConnectError::Task("cannot reach the source system".into()))
    }
    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![Props::new()]
    }
    fn create_task(&self) -> Task {
        unreachable!("a connector that never starts makes no tasks")
    }
}

fn flaky_plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "com.example.FlakySink",
        aliases: &[],
        connector_type: ConnectorType::Sink,
        make: || Box::new(FlakySink),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_sink_with_retriable_failures_gets_every_record_once() {
    let mut plugins = Plugins::builtin();
    plugins.register(flaky_plugin()).unwrap();
    plugins
        .register(ConnectorPlugin {
            class: "com.example.HiccupSource",
            aliases: &[],
            connector_type: ConnectorType::Source,
            make: || Box::new(HiccupSource),
        })
        .unwrap();
    plugins
        .register(ConnectorPlugin {
            class: "com.example.BrokenSource",
            aliases: &[],
            connector_type: ConnectorType::Source,
            make: || Box::new(BrokenSource),
        })
        .unwrap();
    let dup = ConnectorPlugin {
        class: "org.example.Other",
        aliases: &["FileStreamSink"],
        ..flaky_plugin()
    };
    assert_eq!(
        plugins.register(dup).unwrap_err().to_string(),
        "Connector plugin name FileStreamSink is already used by org.apache.kafka.connect.file.FileStreamSinkConnector"
    );

    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "flaky", 1).await;
    create_topic(&b, "hiccup", 1).await;
    let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
    for i in 0..100 {
        let rec = ProducerRecord::new("flaky").value(format!("r{i:03}").into_bytes());
        p.send(rec).await.unwrap().await.unwrap();
    }
    p.close().await;

    let dir = tempfile::tempdir().unwrap();
    let worker: Props = [
        ("bootstrap.servers", b.clone()),
        ("listeners", "http://127.0.0.1:0".into()),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").display().to_string(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v): (&str, String)| (k.to_owned(), v))
    .collect();
    let w = Standalone::start_with_plugins(worker, Vec::new(), plugins, None)
        .await
        .unwrap();
    let r = http(w.addr, "GET", "/connector-plugins", None).await;
    assert!(r
        .json()
        .as_array()
        .unwrap()
        .contains(&json!({"class": "com.example.FlakySink", "type": "sink", "version": "9.9"})));
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "flaky", "config": {
        "connector.class": "FlakySink", "topics": "flaky", "errors.retry.delay.max.ms": "200"}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    wait_for(
        "100 records delivered",
        Duration::from_secs(30),
        async || (DELIVERED.lock().unwrap().len() >= 100).then_some(()),
    )
    .await;
    let want: Vec<String> = (0..100).map(|i| format!("r{i:03}")).collect();
    assert_eq!(*DELIVERED.lock().unwrap(), want);
    assert_eq!(FAILURES_LEFT.load(Ordering::SeqCst), 0);
    assert!(PUT_CALLS.load(Ordering::SeqCst) >= 4);
    let s = http(w.addr, "GET", "/connectors/flaky/tasks/0/status", None).await;
    assert_eq!(s.json()["state"], "RUNNING");

    // A source's retriable poll failures are polled again; its records arrive once.
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "hiccup", "config": {
        "connector.class": "HiccupSource"}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let recs = read_topic(&b, "hiccup", 1, 3, Duration::from_secs(20)).await;
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["h0", "h1", "h2"]);
    assert!(POLLS.load(Ordering::SeqCst) >= 3);
    let s = http(w.addr, "GET", "/connectors/hiccup/tasks/0/status", None).await;
    assert_eq!(s.json()["state"], "RUNNING");

    // A connector that fails to start is FAILED with the reason, has no tasks, and a
    // restart tries again (and fails again).
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "broken", "config": {
        "connector.class": "com.example.BrokenSource"}})),
    )
    .await;
    assert_eq!((r.status, r.json()["tasks"].clone()), (201, json!([])));
    let failed = json!({"name": "broken", "connector": {"state": "FAILED",
        "trace": "cannot reach the source system", "worker_id": w.addr.to_string()},
        "tasks": [], "type": "source"});
    let r = http(w.addr, "GET", "/connectors/broken/status", None).await;
    assert_eq!(r.json(), failed);
    let r = http(
        w.addr,
        "POST",
        "/connectors/broken/restart?onlyFailed=true",
        None,
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["connector"]["state"], "RESTARTING");
    let r = http(w.addr, "GET", "/connectors/broken/status", None).await;
    assert_eq!(r.json(), failed);
    w.stop().await;
}
