//! Enrichment join: orders (key: customer id, JSON value) from `orders` joined with the
//! `customers` table (key: customer id, JSON value) into `enriched-orders`; orders of
//! unknown customers keep a null customer (left join). Runs exactly-once.

use serde::{Deserialize, Serialize};
use strom_streams::{Json, KafkaStreams, StreamsBuilder, StreamsConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    amount_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Customer {
    name: String,
    country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnrichedOrder {
    order: Order,
    customer: Option<Customer>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    let customers = builder.table::<String, Json<Customer>>("customers", "customers-store")?;
    builder
        .stream::<String, Json<Order>>("orders")
        .left_join(&customers, |order, customer| {
            Json(EnrichedOrder {
                order: order.0.clone(),
                customer: customer.map(|c| c.0.clone()),
            })
        })?
        .to("enriched-orders");
    let mut config = StreamsConfig::new("order-enrichment", &bootstrap);
    config.set("processing.guarantee", "exactly_once_v2")?;
    let mut app = KafkaStreams::new(builder.build()?, config);
    app.start().await?;
    tokio::signal::ctrl_c().await?;
    tokio::task::spawn_blocking(move || app.close()).await?;
    Ok(())
}
