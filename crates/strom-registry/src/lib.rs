//! `strom-registry`: a Schema Registry compatible with Confluent's REST API, whose state lives
//! in a compacted `_schemas` topic reached through `strom-client` (so it runs inside `strom
//! server` or beside any Kafka-compatible cluster).
//!
//! The schema handling that needs no Kafka (Avro, JSON Schema and Protobuf parsing and
//! compatibility, the HTTP client) and the serdes clients use with the registry live in
//! `strom-schema`; they are re-exported here under their old paths (`strom_registry::serde`,
//! `strom_registry::avro`, ...). Clients can also get the serdes from `strom-client` with its
//! `serdes` feature.

pub mod api;
pub mod election;
pub mod error;
pub mod model;
pub mod schemas;
pub mod service;
pub mod state;
pub mod store;

pub use strom_schema::{avro, http_client, json_schema, protobuf, serde};

use std::future::Future;
use std::sync::{Arc, RwLock};

pub use error::{RegistryError, Result};

/// How to run one registry instance.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Kafka bootstrap servers (`host:port[,host:port]`).
    pub bootstrap: String,
    /// Where the HTTP API listens: `http://host:port`.
    pub listener: String,
    /// The URL other instances forward writes to (default: the listener).
    pub advertised_url: Option<String>,
    /// The storage topic (Confluent's `kafkastore.topic`, default `_schemas`).
    pub topic: String,
    /// The group that elects the primary (Confluent's `schema.registry.group.id`).
    pub group_id: String,
}

impl RegistryConfig {
    pub fn new(bootstrap: &str, listener: &str) -> RegistryConfig {
        RegistryConfig {
            bootstrap: bootstrap.to_owned(),
            listener: listener.to_owned(),
            advertised_url: None,
            topic: "_schemas".into(),
            group_id: "schema-registry".into(),
        }
    }
}

/// Opens the store (reading `_schemas` to its end), joins the election, binds the listener and
/// serves until `shutdown` resolves.
pub async fn run(
    config: RegistryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (authority, _) =
        http_client::split_url(&config.listener).map_err(RegistryError::Storage)?;
    let listener = tokio::net::TcpListener::bind(&authority)
        .await
        .map_err(|e| RegistryError::Storage(format!("cannot listen on {authority}: {e}")))?;
    let advertised = config
        .advertised_url
        .clone()
        .unwrap_or_else(|| config.listener.trim_end_matches('/').to_owned());
    let state = Arc::new(RwLock::new(state::State::default()));
    let transactional_id = format!("{}-primary", config.group_id);
    let store = store::Store::open(
        &config.bootstrap,
        &config.topic,
        &transactional_id,
        state.clone(),
    )
    .await?;
    let election = election::Election::start(
        &config.bootstrap,
        &config.topic,
        &config.group_id,
        &advertised,
    )
    .await?;
    let app = Arc::new(api::App {
        registry: service::Registry::new(state, store),
        election,
    });
    tracing::info!(listener = %config.listener, topic = %config.topic, "schema registry serving");
    // Answers are small and sent whole: no Nagle delay on a keep-alive connection.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on a registry connection: {e}");
        }
    });
    axum::serve(listener, api::router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| RegistryError::Storage(format!("HTTP server failed: {e}")))
}
