//! `strom registry`: a standalone Schema Registry against any Kafka-compatible cluster, and
//! the embedded one `strom server` starts when `schema.registry.listeners` is set.

use anyhow::{Context, Result};
use strom_registry::RegistryConfig;
use tracing_subscriber::EnvFilter;

use crate::ServerArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct RegistryArgs {
    /// Kafka bootstrap servers of the cluster that stores the schemas.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Where the REST API listens (Confluent's `listeners`).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    listeners: String,
    /// The URL other instances forward writes to (default: the listener).
    #[arg(long)]
    advertised_url: Option<String>,
    /// The storage topic (Confluent's `kafkastore.topic`).
    #[arg(long, default_value = "_schemas")]
    topic: String,
    /// The group electing the primary (Confluent's `schema.registry.group.id`).
    #[arg(long, default_value = "schema-registry")]
    group_id: String,
}

pub(crate) fn run(args: RegistryArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STROM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = RegistryConfig::new(&args.bootstrap, first_listener(&args.listeners));
    config.advertised_url = args.advertised_url;
    config.topic = args.topic;
    config.group_id = args.group_id;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom-registry")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        strom_registry::run(config, crate::server::shutdown_signal())
            .await
            .context("schema registry failed")
    })
}

fn first_listener(listeners: &str) -> &str {
    listeners.split(',').next().unwrap_or(listeners).trim()
}

/// The embedded registry's settings, taken out of `strom server`'s overrides and properties
/// file (the broker does not know `schema.registry.*` keys): `None` when no listener is set.
pub(crate) fn embedded_config(args: &mut ServerArgs) -> Result<Option<(String, Option<String>)>> {
    let mut listener = None;
    let mut advertised = None;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines().map(str::trim) {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "schema.registry.listeners" => listener = Some(v.trim().to_owned()),
                    "schema.registry.advertised.url" => advertised = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
    }
    args.overrides.retain(|(k, v)| match k.as_str() {
        "schema.registry.listeners" => {
            listener = Some(v.clone());
            false
        }
        "schema.registry.advertised.url" => {
            advertised = Some(v.clone());
            false
        }
        _ => true,
    });
    Ok(listener
        .filter(|l| !l.is_empty())
        .map(|l| (first_listener(&l).to_owned(), advertised)))
}

/// Starts the embedded registry against this broker's listener, in the background; a
/// failure is logged, and the broker keeps serving.
pub(crate) fn spawn_embedded(settings: Option<(String, Option<String>)>, broker: &str) {
    let Some((listener, advertised)) = settings else {
        return;
    };
    let mut config = RegistryConfig::new(broker, &listener);
    config.advertised_url = advertised;
    tokio::spawn(async move {
        if let Err(e) = strom_registry::run(config, std::future::pending()).await {
            tracing::error!(error = %e, "embedded schema registry stopped");
        }
    });
}
