//! Standalone mode (Kafka's `connect-standalone.sh WORKER.properties CONNECTOR.properties...`):
//! one worker, source offsets in `offset.storage.file.filename`, the connectors from the
//! given property files, and the REST API on `listeners`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{read_properties, Props};
use crate::error::{ConnectError, Result};
use crate::plugins::Plugins;
use crate::rest::{router, App, LevelHook, Loggers};
use crate::worker::{TargetState, Worker, WorkerConfig};

/// A running standalone worker (for embedding and tests): its REST address and worker.
#[derive(Debug)]
pub struct Standalone {
    pub addr: SocketAddr,
    pub worker: Arc<Worker>,
    server: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Standalone {
    /// Binds the REST listener, starts the worker and creates `connectors` (each a connector
    /// property file's contents, with its `name`).
    pub async fn start(
        worker_props: Props,
        connectors: Vec<Props>,
        level_hook: Option<LevelHook>,
    ) -> Result<Standalone> {
        Standalone::start_with_plugins(worker_props, connectors, Plugins::builtin(), level_hook)
            .await
    }

    /// As `start`, with connector plugins besides (or instead of) the built-ins.
    pub async fn start_with_plugins(
        worker_props: Props,
        connectors: Vec<Props>,
        plugins: Plugins,
        level_hook: Option<LevelHook>,
    ) -> Result<Standalone> {
        let config = WorkerConfig::from_props(worker_props)?;
        let listener = tokio::net::TcpListener::bind(config.listen_addr())
            .await
            .map_err(|e| {
                ConnectError::WorkerConfig(format!("cannot listen on {}: {e}", config.listener))
            })?;
        let addr = listener.local_addr()?;
        let worker_id = advertised(&config, addr);
        let worker = Worker::with_plugins(config, worker_id, plugins)?;
        for props in connectors {
            let name = props.get("name").cloned().ok_or_else(|| {
                ConnectError::WorkerConfig("Connector config must contain a 'name'".into())
            })?;
            if let Err(e) = worker
                .put_connector(&name, props, TargetState::Started, false)
                .await
            {
                worker.shutdown().await;
                return Err(e);
            }
        }
        let app = Arc::new(App {
            worker: worker.clone(),
            loggers: Loggers::new("INFO", level_hook),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router(app)).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("Connect REST server failed: {e}");
            }
        });
        tracing::info!("Strom Connect standalone worker listening on http://{addr}");
        Ok(Standalone {
            addr,
            worker,
            server,
            stop,
        })
    }

    /// Stops the REST server, then every connector (tasks commit their offsets).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.worker.shutdown().await;
    }
}

/// The worker id statuses report: `rest.advertised.host.name` / `rest.advertised.port` where
/// set (as Kafka's workers advertise themselves), else the bound address.
fn advertised(config: &WorkerConfig, bound: SocketAddr) -> String {
    let host = config
        .props
        .get("rest.advertised.host.name")
        .filter(|h| !h.trim().is_empty())
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| bound.ip().to_string());
    let port = config
        .props
        .get("rest.advertised.port")
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(bound.port());
    format!("{host}:{port}")
}

/// Runs a standalone worker from Kafka Connect's property files until `shutdown` completes.
pub async fn run(
    worker_props_path: &Path,
    connector_props_paths: &[PathBuf],
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let worker_props = read_properties(worker_props_path)?;
    let mut connectors = Vec::with_capacity(connector_props_paths.len());
    for p in connector_props_paths {
        connectors.push(read_properties(p)?);
    }
    let running = Standalone::start(worker_props, connectors, None).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}
