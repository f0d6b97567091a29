//! Avro through the Schema Registry: orders (key: order id as a string, value: Avro
//! `shop.Order` in Confluent's wire format, as confluent-kafka's AvroSerializer writes it)
//! from `orders-avro` are re-keyed by customer and summed into `customer-totals`, with an
//! Avro `shop.CustomerKey` key and an Avro `shop.Totals` value. The schemas are registered
//! under `customer-totals-key` / `-value` and the repartition topic's subjects on first use.
//!
//! `cargo run --example avro_orders -- 127.0.0.1:9092 http://127.0.0.1:8081`
//! (a broker started with `strom server --set schema.registry.listeners=http://127.0.0.1:8081`).

use serde::{Deserialize, Serialize};
use strom_streams::{Avro, AvroRecord, KafkaStreams, StreamsBuilder, StreamsConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CustomerKey {
    customer: String,
}

impl AvroRecord for CustomerKey {
    const SCHEMA: &'static str = r#"{"type":"record","name":"CustomerKey","namespace":"shop",
        "fields":[{"name":"customer","type":"string"}]}"#;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let registry = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8081".into());
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, Avro<Order>>("orders-avro")
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
            |k, o, acc| {
                Avro(Totals {
                    customer: k.0.customer.clone(),
                    orders: acc.0.orders + 1,
                    total: acc.0.total + o.0.amount,
                })
            },
            "customer-totals-store",
        )?
        .to_stream()
        .to("customer-totals");
    let mut config = StreamsConfig::new("avro-orders", &bootstrap);
    config.set("schema.registry.url", &registry)?;
    // Records that are not Confluent-framed Avro are logged and skipped.
    config.set(
        "default.deserialization.exception.handler",
        "LogAndContinueExceptionHandler",
    )?;
    let mut app = KafkaStreams::new(builder.build()?, config);
    app.start().await?;
    tokio::signal::ctrl_c().await?;
    tokio::task::spawn_blocking(move || app.close()).await?;
    Ok(())
}
