//! The Avro converter through a real Schema Registry (the one `strom server` embeds): a
//! source's Struct records go through `AvroConverter` into a Strom topic in Confluent's wire
//! format, their subjects are registered (TopicNameStrategy), and a sink reading them
//! through `AvroConverter` gets equal schemas and values. With `auto.register.schemas=false`
//! and no schema registered, the source task fails.

mod common;
#[path = "common/registry.rs"]
mod registry;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use registry::BrokerWithRegistry;
use serde_json::{json, Value as J};
use strom_client::TopicPartition;
use strom_connect::config::{ConfigDef, Props};
use strom_connect::connector::{
    BoxFuture, Connector, ConnectorType, SinkTask, SourceOffsets, SourceTask, Task,
};
use strom_connect::data::{
    JsonMap, Record, Schema, SchemaType, SinkRecord, SourceRecord, Struct, Value, DATE, DECIMAL,
    TIMESTAMP,
};
use strom_connect::plugins::{ConnectorPlugin, Plugins};
use strom_connect::standalone::Standalone;
use strom_connect::Result;

const N: usize = 40;

fn address_schema() -> Schema {
    Schema::structure(vec![])
        .named("com.example.Address")
        .with_field("city", Schema::new(SchemaType::String))
        .with_field("zip", Schema::new(SchemaType::Int32).optional())
        .optional()
}

fn order_schema() -> Schema {
    let mut amount = Schema::new(SchemaType::Bytes).named(DECIMAL);
    amount.parameters.insert("scale".into(), "2".into());
    Schema::structure(vec![])
        .named("com.example.Order")
        .with_field("id", Schema::new(SchemaType::Int64))
        .with_field("customer", Schema::new(SchemaType::String))
        .with_field("email", Schema::new(SchemaType::String).optional())
        .with_field("qty", Schema::new(SchemaType::Int16))
        .with_field("ratio", Schema::new(SchemaType::Float32))
        .with_field("paid", Schema::new(SchemaType::Boolean))
        .with_field("amount", amount)
        .with_field("day", Schema::new(SchemaType::Int32).named(DATE))
        .with_field("at", Schema::new(SchemaType::Int64).named(TIMESTAMP))
        .with_field("tags", Schema::array(Schema::new(SchemaType::String)))
        .with_field(
            "attrs",
            Schema::map(
                Schema::new(SchemaType::String),
                Schema::new(SchemaType::Int32),
            ),
        )
        .with_field("address", address_schema())
}

fn order(i: usize) -> Value {
    let mut s = Struct::new(order_schema());
    s.put("id", Value::Int64(i as i64)).unwrap();
    s.put("customer", Value::String(format!("customer {i}")))
        .unwrap();
    let email = if i.is_multiple_of(3) {
        Value::Null
    } else {
        Value::String(format!("c{i}@example.com"))
    };
    s.put("email", email).unwrap();
    s.put("qty", Value::Int16(i as i16 - 20)).unwrap();
    s.put("ratio", Value::Float32(i as f32 / 4.0)).unwrap();
    s.put("paid", Value::Boolean(i.is_multiple_of(2))).unwrap();
    // 12345 * i - 1000 cents, as big-endian two's complement.
    let cents = 12_345i64 * i as i64 - 1000;
    let bytes = cents.to_be_bytes();
    let skip = bytes
        .windows(2)
        .take_while(|w| (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xff && w[1] & 0x80 != 0))
        .count();
    s.put("amount", Value::Bytes(bytes[skip..].to_vec()))
        .unwrap();
    s.put("day", Value::Int32(20_000 + i as i32)).unwrap();
    s.put("at", Value::Int64(1_733_000_000_000 + i as i64))
        .unwrap();
    s.put(
        "tags",
        Value::Array((0..i % 3).map(|t| Value::String(format!("t{t}"))).collect()),
    )
    .unwrap();
    s.put(
        "attrs",
        Value::Map(vec![
            (Value::String("a".into()), Value::Int32(i as i32)),
            (Value::String("b".into()), Value::Int32(-(i as i32))),
        ]),
    )
    .unwrap();
    let address = if i.is_multiple_of(4) {
        Value::Null
    } else {
        let mut a = Struct::new(address_schema());
        a.put("city", Value::String(format!("city {i}"))).unwrap();
        a.put(
            "zip",
            if i.is_multiple_of(2) {
                Value::Int32(1000 + i as i32)
            } else {
                Value::Null
            },
        )
        .unwrap();
        Value::Struct(a)
    };
    s.put("address", address).unwrap();
    Value::Struct(s)
}

#[derive(Default)]
struct OrderSource {
    props: Props,
}

impl Connector for OrderSource {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
    }
    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }
    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone()]
    }
    fn create_task(&self) -> Task {
        Task::Source(Box::new(OrderTask {
            topic: String::new(),
            sent: false,
        }))
    }
}

struct OrderTask {
    topic: String,
    sent: bool,
}

impl SourceTask for OrderTask {
    fn start(&mut self, props: &Props, _offsets: &SourceOffsets) -> Result<()> {
        self.topic = props.get("topic").cloned().unwrap_or_default();
        Ok(())
    }
    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            if self.sent {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Ok(Vec::new());
            }
            self.sent = true;
            Ok((0..N)
                .map(|i| {
                    let mut record = Record::new(&self.topic, Some(order_schema()), order(i));
                    record.key_schema = Some(Schema::new(SchemaType::String));
                    record.key = Value::String(format!("order-{i}"));
                    SourceRecord {
                        source_partition: JsonMap::new(),
                        source_offset: JsonMap::new(),
                        record,
                    }
                })
                .collect())
        })
    }
}

static RECEIVED: Mutex<Vec<Record>> = Mutex::new(Vec::new());

struct Collect;

impl Connector for Collect {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
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
        Task::Sink(Box::new(CollectTask))
    }
}

struct CollectTask;

impl SinkTask for CollectTask {
    fn start(&mut self, _props: &Props) -> Result<()> {
        Ok(())
    }
    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            RECEIVED
                .lock()
                .unwrap()
                .extend(records.into_iter().map(|r| r.record));
            Ok(())
        })
    }
    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn struct_records_round_trip_through_the_registry() {
    let mut plugins = Plugins::builtin();
    for p in [
        ConnectorPlugin {
            class: "com.example.OrderSource",
            aliases: &[],
            connector_type: ConnectorType::Source,
            make: || Box::new(OrderSource::default()),
        },
        ConnectorPlugin {
            class: "com.example.Collect",
            aliases: &[],
            connector_type: ConnectorType::Sink,
            make: || Box::new(Collect),
        },
    ] {
        plugins.register(p).unwrap();
    }
    let broker = BrokerWithRegistry::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "orders", 1).await;
    create_topic(&b, "unregistered", 1).await;
    let url = broker.registry_url();
    let dir = tempfile::tempdir().unwrap();
    let worker: Props = [
        ("bootstrap.servers", b.clone()),
        ("listeners", "http://127.0.0.1:0".into()),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").display().to_string(),
        ),
        ("offset.flush.interval.ms", "100".into()),
        (
            "key.converter",
            "io.confluent.connect.avro.AvroConverter".into(),
        ),
        ("key.converter.schema.registry.url", url.clone()),
        (
            "value.converter",
            "io.strom.connect.avro.AvroConverter".into(),
        ),
        ("value.converter.schema.registry.url", url.clone()),
    ]
    .into_iter()
    .map(|(k, v): (&str, String)| (k.to_owned(), v))
    .collect();
    let w = Standalone::start_with_plugins(worker, Vec::new(), plugins, None)
        .await
        .unwrap();
    for (name, config) in [
        (
            "orders-src",
            json!({"connector.class": "OrderSource", "topic": "orders"}),
        ),
        (
            "orders-sink",
            json!({"connector.class": "Collect", "topics": "orders"}),
        ),
        (
            "strict-src",
            json!({"connector.class": "OrderSource", "topic": "unregistered",
                   "value.converter": "AvroConverter",
                   "value.converter.schema.registry.url": url,
                   "value.converter.auto.register.schemas": "false"}),
        ),
    ] {
        let r = http(
            w.addr,
            "POST",
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }

    let got = wait_for("the sink's records", Duration::from_secs(30), async || {
        let r = RECEIVED.lock().unwrap();
        (r.len() >= N).then(|| r.clone())
    })
    .await;
    assert_eq!(got.len(), N);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.value_schema.as_ref(), Some(&order_schema()), "record {i}");
        assert_eq!(r.value, order(i), "record {i}");
        assert_eq!(r.key, Value::String(format!("order-{i}")));
        assert_eq!(r.key_schema, Some(Schema::new(SchemaType::String)));
    }

    // The registry has both subjects (TopicNameStrategy) and the record schema; the strict
    // source registered its key schema (the worker's key converter auto-registers) but not
    // its value schema.
    let subjects = http(broker.registry, "GET", "/subjects", None).await.json();
    let mut subjects: Vec<String> = serde_json::from_value(subjects).unwrap();
    subjects.sort();
    assert_eq!(
        subjects,
        vec!["orders-key", "orders-value", "unregistered-key"]
    );
    let latest = http(
        broker.registry,
        "GET",
        "/subjects/orders-value/versions/latest",
        None,
    )
    .await
    .json();
    let schema: J = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["type"], "record");
    assert_eq!(schema["name"], "com.example.Order");
    assert_eq!(
        schema["fields"][2],
        json!({"name": "email", "type": ["null", "string"], "default": null})
    );
    let key_latest = http(
        broker.registry,
        "GET",
        "/subjects/orders-key/versions/latest",
        None,
    )
    .await
    .json();
    assert_eq!(key_latest["schema"], "\"string\"");

    // Confluent's wire format: magic 0, then the registry's id.
    let raw = read_topic(&b, "orders", 1, N, Duration::from_secs(10)).await;
    assert_eq!(raw.len(), N);
    let id = latest["id"].as_i64().unwrap() as i32;
    let mut frame = vec![0u8];
    frame.extend_from_slice(&id.to_be_bytes());
    assert!(raw
        .iter()
        .all(|r| r.value.as_ref().unwrap().starts_with(&frame)));
    let key_id = key_latest["id"].as_i64().unwrap() as i32;
    let mut key_frame = vec![0u8];
    key_frame.extend_from_slice(&key_id.to_be_bytes());
    assert_eq!(
        raw[0].key.as_deref().unwrap(),
        [&key_frame[..], &[14], b"order-0"].concat()
    );

    // use.latest.version: the records are written with the subject's latest schema (here
    // one with an extra optional field), not with their own.
    let mut newer = schema.clone();
    newer["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "extra", "type": ["null", "string"], "default": null}));
    create_topic(&b, "latest", 1).await;
    let r = http(
        broker.registry,
        "POST",
        "/subjects/latest-value/versions",
        Some(&json!({"schema": newer.to_string()})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let newer_id = r.json()["id"].as_i64().unwrap() as i32;
    assert_ne!(newer_id, id);
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "latest-src", "config": {
            "connector.class": "OrderSource", "topic": "latest",
            "value.converter": "AvroConverter",
            "value.converter.schema.registry.url": url,
            "value.converter.use.latest.version": "true",
            "value.converter.auto.register.schemas": "false"}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let raw = read_topic(&b, "latest", 1, N, Duration::from_secs(20)).await;
    assert_eq!(raw.len(), N);
    let mut frame = vec![0u8];
    frame.extend_from_slice(&newer_id.to_be_bytes());
    assert!(raw
        .iter()
        .all(|r| r.value.as_ref().unwrap().starts_with(&frame)));

    // auto.register.schemas=false with nothing registered under unregistered-value.
    let failed = wait_for(
        "the strict source to fail",
        Duration::from_secs(20),
        async || {
            let s = http(w.addr, "GET", "/connectors/strict-src/status", None)
                .await
                .json();
            (s["tasks"][0]["state"] == "FAILED").then_some(s)
        },
    )
    .await;
    let trace = failed["tasks"][0]["trace"].as_str().unwrap();
    assert!(
        trace.contains("stage VALUE_CONVERTER") && trace.contains("40401"),
        "{trace}"
    );
}
