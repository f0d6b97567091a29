//! Avro through the Schema Registry against a real broker with the registry on: orders
//! written by the registry's Confluent serializer are re-keyed by customer (a repartition
//! topic with Avro keys and values), summed per customer in a store and written out as Avro;
//! the output, decoded with the registry (and by confluent-kafka's Python
//! AvroDeserializer), equals a reference. Records not in Confluent's format, or naming a
//! schema id the registry does not know, go to the deserialization handler.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strom_registry::http_client::{self, Method};
use strom_registry::serde::{
    AvroDeserializer, AvroSerializer, JsonSchemaDeserializer, RegistryClient, SerializerConfig,
};
use strom_streams::{Avro, AvroRecord, JsonSchema, JsonSchemaRecord, KafkaStreams, StreamsBuilder};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount: i64,
    note: Option<String>,
}

impl AvroRecord for Order {
    const SCHEMA: &'static str = r#"{"type":"record","name":"Order","namespace":"shop",
        "fields":[{"name":"id","type":"long"},{"name":"customer","type":"string"},
        {"name":"amount","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CustomerKey {
    customer: String,
}

impl AvroRecord for CustomerKey {
    const SCHEMA: &'static str = r#"{"type":"record","name":"CustomerKey","namespace":"shop",
        "fields":[{"name":"customer","type":"string"}]}"#;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Totals {
    customer: String,
    orders: i64,
    total: i64,
}

impl AvroRecord for Totals {
    const SCHEMA: &'static str = r#"{"type":"record","name":"Totals","namespace":"shop",
        "fields":[{"name":"customer","type":"string"},{"name":"orders","type":"long"},
        {"name":"total","type":"long"}]}"#;
}

impl JsonSchemaRecord for Totals {
    const SCHEMA: &'static str = r#"{"type":"object","properties":{
        "customer":{"type":"string"},"orders":{"type":"integer"},"total":{"type":"integer"}},
        "required":["customer","orders","total"]}"#;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Customer {
    name: String,
    tier: String,
}

impl AvroRecord for Customer {
    const SCHEMA: &'static str = r#"{"type":"record","name":"Customer","namespace":"shop",
        "fields":[{"name":"name","type":"string"},{"name":"tier","type":"string"}]}"#;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until the registry answers HTTP.
async fn wait_registry(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_client::request(url, Method::GET, "/subjects", None)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "registry at {url} never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subjects(url: &str) -> Vec<String> {
    let (status, body) = http_client::request(url, Method::GET, "/subjects", None)
        .await
        .unwrap();
    assert!(status.is_success(), "GET /subjects: {status}");
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn avro_orders_summed_per_customer_through_the_registry() {
    let rt = runtime();
    let url = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start_with(&[("schema.registry.listeners", &url)]);
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let (input, output, app_id) = ("avro-orders", "avro-totals", "avro-app");
    let (customers_topic, enriched, json_out) = ("avro-customers", "avro-enriched", "json-totals");
    let mut rng = rand::rng();
    let customers = ["ann", "bob", "cid", "dee", "eve", "fay", "gus"];
    let orders: Vec<Order> = (0..300)
        .map(|i| Order {
            id: i,
            customer: customers[rng.random_range(0..customers.len())].to_owned(),
            amount: rng.random_range(1..1000),
            // Every tenth order comes from an older writer without the note field.
            note: (i % 10 != 0 && rng.random_bool(0.3)).then(|| format!("n{i}")),
        })
        .collect();
    let mut want: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for o in &orders {
        let e = want.entry(o.customer.clone()).or_default();
        e.0 += 1;
        e.1 += o.amount;
    }
    let n = orders.len();

    rt.block_on(async {
        wait_registry(&url).await;
        create_topic(&b, input, 3).await;
        create_topic(&b, output, 2).await;
        create_topic(&b, customers_topic, 2).await;
        create_topic(&b, enriched, 1).await;
        create_topic(&b, json_out, 1).await;
        // The input, written by the registry's own Confluent serializer (subject
        // avro-orders-value), plus two records the handler must skip: one not framed at all,
        // one framed with a schema id the registry never issued.
        let client = RegistryClient::new(&url);
        let ser = AvroSerializer::new(
            client.clone(),
            Some(Order::SCHEMA),
            SerializerConfig::default(),
        )
        .unwrap();
        // An older version of the schema, without `note`: the streams reader resolves it to
        // its own schema (the note takes its default).
        let old_ser = AvroSerializer::new(
            client.clone(),
            Some(
                r#"{"type":"record","name":"Order","namespace":"shop","fields":[
                {"name":"id","type":"long"},{"name":"customer","type":"string"},
                {"name":"amount","type":"long"}]}"#,
            ),
            SerializerConfig::default(),
        )
        .unwrap();
        let mut recs: Vec<In> = Vec::new();
        for (i, o) in orders.iter().enumerate() {
            let v = if i % 10 == 0 {
                old_ser
                    .serialize_json(
                        input,
                        &json!({"id": o.id, "customer": o.customer, "amount": o.amount}),
                    )
                    .await
                    .unwrap()
            } else {
                ser.serialize_json(input, &serde_json::to_value(o).unwrap())
                    .await
                    .unwrap()
            };
            recs.push((
                Some(format!("o{i}").into_bytes()),
                Some(v),
                1_000 + i as i64,
                None,
            ));
            if i == 100 {
                recs.push(kv(
                    "bad-1",
                    "plain text, not Confluent Avro",
                    1_000 + i as i64,
                ));
            }
            if i == 200 {
                recs.push((
                    Some(b"bad-2".to_vec()),
                    Some(vec![0, 0x7f, 0, 0, 1, 2, 3]),
                    1_000 + i as i64,
                    None,
                ));
            }
        }
        produce(&b, input, &recs).await;
        // Customers, Avro keys and values, for a global table (its store holds them in the
        // store format, looked up by the order's customer).
        let key_ser = AvroSerializer::new(
            client.clone(),
            Some(CustomerKey::SCHEMA),
            SerializerConfig {
                is_key: true,
                ..SerializerConfig::default()
            },
        )
        .unwrap();
        let customer_ser = AvroSerializer::new(
            client.clone(),
            Some(Customer::SCHEMA),
            SerializerConfig::default(),
        )
        .unwrap();
        let mut customer_recs: Vec<In> = Vec::new();
        for (i, c) in customers.iter().enumerate() {
            let k = key_ser
                .serialize_json(customers_topic, &json!({"customer": c}))
                .await
                .unwrap();
            let v = customer_ser
                .serialize_json(
                    customers_topic,
                    &json!({"name": c, "tier": if i % 2 == 0 { "gold" } else { "silver" }}),
                )
                .await
                .unwrap();
            customer_recs.push((Some(k), Some(v), 1, None));
        }
        produce(&b, customers_topic, &customer_recs).await;

        let sb = StreamsBuilder::new();
        let customer_table = sb
            .global_table::<Avro<CustomerKey>, Avro<Customer>>(customers_topic, "customers")
            .unwrap();
        let orders_stream = sb.stream::<String, Avro<Order>>(input);
        orders_stream
            .join_global(
                &customer_table,
                |_, o| {
                    Avro(CustomerKey {
                        customer: o.0.customer.clone(),
                    })
                },
                |o, c| format!("{}:{}", o.0.id, c.0.tier),
            )
            .to(enriched);
        let totals = orders_stream
            .select_key(|_, o| {
                Avro(CustomerKey {
                    customer: o.0.customer.clone(),
                })
            })
            .group_by_key()
            .aggregate(
                || {
                    Avro(Totals {
                        customer: String::new(),
                        orders: 0,
                        total: 0,
                    })
                },
                |k: &Avro<CustomerKey>, o: Avro<Order>, acc: Avro<Totals>| {
                    Avro(Totals {
                        customer: k.0.customer.clone(),
                        orders: acc.0.orders + 1,
                        total: acc.0.total + o.0.amount,
                    })
                },
                "totals",
            )
            .unwrap()
            .to_stream();
        totals.to(output);
        // The same totals with a JSON Schema.
        totals.map_values(|_, t| JsonSchema(t.0)).to(json_out);
        let mut config = config(&b, app_id, state.path());
        config.set("schema.registry.url", &url).unwrap();
        config
            .set(
                "default.deserialization.exception.handler",
                "LogAndContinueExceptionHandler",
            )
            .unwrap();
        let mut app = KafkaStreams::new(sb.build().unwrap(), config);
        app.start().await.unwrap();

        let got = read_until(&b, output, false, Duration::from_secs(60), |r| r.len() >= n).await;
        assert_eq!(got.len(), n, "one update per order");
        let de = AvroDeserializer::new(client.clone());
        let mut latest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for r in &got {
            let key = de
                .deserialize_json(r.key.as_deref().unwrap())
                .await
                .unwrap();
            let value = de
                .deserialize_json(r.value.as_deref().unwrap())
                .await
                .unwrap();
            assert_eq!(key, json!({"customer": value["customer"]}), "{value}");
            latest.insert(
                value["customer"].as_str().unwrap().to_owned(),
                (
                    value["orders"].as_i64().unwrap(),
                    value["total"].as_i64().unwrap(),
                ),
            );
        }
        assert_eq!(latest, want);
        let got = read_until(&b, json_out, false, Duration::from_secs(30), |r| {
            r.len() >= n
        })
        .await;
        let json_de = JsonSchemaDeserializer::new(client.clone());
        let mut latest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for r in &got {
            let t: Totals = serde_json::from_value(
                json_de
                    .deserialize_json(r.value.as_deref().unwrap())
                    .await
                    .unwrap(),
            )
            .unwrap();
            latest.insert(t.customer, (t.orders, t.total));
        }
        assert_eq!(latest, want);
        let got = read_until(&b, enriched, false, Duration::from_secs(30), |r| {
            r.len() >= n
        })
        .await;
        let tiers: BTreeMap<String, String> = got
            .iter()
            .map(|r| {
                let (id, tier) = s(&r.value)
                    .split_once(':')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .unwrap();
                (id, tier)
            })
            .collect();
        let want_tiers: BTreeMap<String, String> = orders
            .iter()
            .map(|o| {
                let i = customers.iter().position(|c| *c == o.customer).unwrap();
                (
                    o.id.to_string(),
                    if i % 2 == 0 { "gold" } else { "silver" }.to_owned(),
                )
            })
            .collect();
        assert_eq!(tiers, want_tiers);
        assert_eq!(app.metrics().skipped.load(Ordering::Relaxed), 2);
        assert!(app.error().is_none(), "{:?}", app.error());

        // The topics the application wrote have <topic>-key / -value subjects: the output
        // and the internal repartition topic.
        let subjects = subjects(&url).await;
        let repartition = subjects
            .iter()
            .find(|s| s.starts_with(app_id) && s.ends_with("-repartition-key"))
            .unwrap_or_else(|| panic!("no repartition key subject in {subjects:?}"))
            .clone();
        let repartition_value = repartition.replace("-repartition-key", "-repartition-value");
        for s in [
            "avro-orders-value".to_owned(),
            format!("{output}-key"),
            format!("{output}-value"),
            format!("{json_out}-key"),
            format!("{json_out}-value"),
            repartition_value,
        ] {
            assert!(subjects.contains(&s), "{s} missing from {subjects:?}");
        }
        let (_, schema) = http_client::request(
            &url,
            Method::GET,
            &format!("/subjects/{output}-value/versions/latest"),
            None,
        )
        .await
        .unwrap();
        let schema: Value = serde_json::from_slice(&schema).unwrap();
        assert!(
            schema["schema"].as_str().unwrap().contains("Totals"),
            "{schema}"
        );
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });

    // confluent-kafka's Python AvroDeserializer reads the output the same way.
    let python = format!(
        "{}/../../tests/python/schema_registry_cli_interop.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new("python3")
        .args([&python, &b, &url, "read", output, &n.to_string()])
        .output()
        .expect("python3 runs (scripts/test installs confluent-kafka)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut latest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let t: Totals = serde_json::from_str(line).unwrap();
        latest.insert(t.customer, (t.orders, t.total));
    }
    assert_eq!(latest, want);
}

#[test]
fn avro_without_a_registry_stops_the_app_at_the_sink() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    rt.block_on(async {
        create_topic(&b, "plain-in", 1).await;
        create_topic(&b, "avro-out", 1).await;
        produce(&b, "plain-in", &[kv("k", "v", 5)]).await;
        let sb = StreamsBuilder::new();
        sb.stream::<String, String>("plain-in")
            .map_values(|_, v| Avro(CustomerKey { customer: v }))
            .to("avro-out");
        let mut app = KafkaStreams::new(sb.build().unwrap(), config(&b, "no-reg", state.path()));
        app.start().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while app.error().is_none() {
            assert!(Instant::now() < deadline, "the sink never failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let e = app.error().unwrap().to_string();
        assert!(
            e.contains("avro-out") && e.contains("schema.registry.url"),
            "{e}"
        );
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}
