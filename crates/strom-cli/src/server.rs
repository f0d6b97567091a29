//! `strom server`: loads the configuration, opens the broker, binds the listener and serves
//! until SIGINT or SIGTERM, then shuts down cleanly (logs closed with a clean marker).

use anyhow::{Context, Result};
use strom_broker::config::BrokerConfig;
use strom_broker::Broker;
use tracing_subscriber::EnvFilter;

use crate::ServerArgs;

pub(crate) fn run(mut args: ServerArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STROM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let registry = crate::registry::embedded_config(&mut args)?;
    let mut console = crate::http::console_settings(&mut args)?;
    // The console decodes and lists schemas through the embedded registry, unless told
    // otherwise.
    if let Some((listener, _)) = &registry {
        if !console.iter().any(|(k, _)| k == "schema.registry.url") {
            console.push(("schema.registry.url".into(), listener.clone()));
        }
    }
    let (config, warnings) = BrokerConfig::load(args.config.as_deref(), &args.overrides)
        .context("invalid configuration")?;
    // A dynamic quorum starts only from formatted storage, as Kafka; it carries cluster.id.
    let config = strom_broker::apply_formatted_storage(config)?;
    // schema.registry.* keys are the embedded registry's (read above), not unknown.
    for warning in warnings
        .into_iter()
        .filter(|w| !w.contains("'schema.registry."))
    {
        tracing::warn!("{warning}");
    }
    // Every segment keeps its files open: raise the soft limit on open files to the hard one,
    // as Kafka's operators are told to, so thousands of partitions fit.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open files limit");
            warn_if_fds_short(&config, limit);
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, registry, console))
}

/// File descriptors kept for log segments, indexes and the metadata log when judging
/// whether `max.connections` fits the open-files limit.
const FDS_FOR_LOGS: u64 = 1024;

/// Warns when `max.connections` could exhaust the open-files limit: accept would then fail
/// with EMFILE (handled, but clients see refused connections instead of a clear limit).
fn warn_if_fds_short(config: &BrokerConfig, limit: u64) {
    let max_connections = config.max_connections().max(0) as u64;
    if max_connections.saturating_add(FDS_FOR_LOGS) > limit {
        tracing::warn!(
            max_connections,
            open_files_limit = limit,
            "max.connections plus {FDS_FOR_LOGS} descriptors for logs exceeds the open files limit (RLIMIT_NOFILE); raise it (ulimit -n) or lower max.connections"
        );
    }
}

async fn serve(
    config: BrokerConfig,
    registry: Option<(String, Option<String>)>,
    console: Vec<(String, String)>,
) -> Result<()> {
    use strom_broker::config::ProcessRole;
    if !config.has_role(ProcessRole::Broker) {
        strom_broker::controller_node::run(config, shutdown_signal()).await?;
        return Ok(());
    }
    let wanted: Vec<(String, String)> = config
        .broker_listeners()
        .map(|l| (l.name.clone(), l.bind_address()))
        .collect();
    let Some((_, client_bind)) = wanted.first().cloned() else {
        anyhow::bail!("no client listener configured (listeners=PLAINTEXT://host:port)");
    };
    // Open (and recover) the logs before accepting clients, so the first answer is a real one.
    let broker = tokio::task::block_in_place(|| Broker::open(config))?;
    let mut listeners = Vec::with_capacity(wanted.len());
    for (name, bind) in wanted {
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| format!("cannot listen on {bind} (listener {name})"))?;
        listeners.push((name, listener));
    }
    crate::registry::spawn_embedded(registry, &client_bind);
    crate::http::spawn(&broker, &client_bind, console).await?;
    strom_broker::run_listeners(broker, listeners, shutdown_signal()).await?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received");
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
