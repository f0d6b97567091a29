//! A dedicated controller (`process.roles=controller`): a voter of the metadata quorum that
//! serves no clients. It runs the controller for operations the brokers forward, fences brokers
//! that stop heartbeating while it is the active controller, and serves the committed image to
//! broker-only nodes, all on its CONTROLLER listener.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strom_metadata::{BrokerConfig, Controller, ControllerAnswer, ControllerHandler, ControllerOp};

use crate::server::ServerError;

struct Handler {
    controller: Arc<Mutex<Controller>>,
}

impl ControllerHandler for Handler {
    fn handle(&self, op: ControllerOp) -> ControllerAnswer {
        let mut c = self.controller.lock();
        if let Err(e) = c.refresh() {
            return ControllerAnswer {
                result: op.failed(e),
                offset: None,
            };
        }
        let result = c.execute(op);
        ControllerAnswer {
            result,
            offset: c.quorum().image().0,
        }
    }
}

/// Runs a dedicated controller until `shutdown` resolves.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    if !config.is_quorum_over_network() {
        return Err(ServerError::Startup(
            "process.roles=controller needs controller.quorum.voters or controller.quorum.bootstrap.servers (a dedicated controller of a multi-node quorum)".into(),
        ));
    }
    let controller = tokio::task::block_in_place(|| crate::cluster::open_controller(&config))?;
    let quorum = Arc::clone(controller.quorum());
    let controller = Arc::new(Mutex::new(controller));
    quorum.set_controller(Arc::new(Handler {
        controller: Arc::clone(&controller),
    }));
    tracing::info!(node_id = config.node_id(), "dedicated controller running");
    let interval = Duration::from_millis((config.broker_heartbeat_interval_ms().max(2) / 2) as u64);
    let session_timeout_ms = i64::from(config.broker_session_timeout_ms());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(interval) => {}
        }
        if let Some(reason) = quorum.fatal() {
            tracing::error!(%reason, "the metadata quorum stopped on this node; exiting");
            std::process::exit(70);
        }
        let c = Arc::clone(&controller);
        let _ = tokio::task::spawn_blocking(move || {
            crate::cluster::fence_stale(&c, session_timeout_ms)
        })
        .await;
    }
    tracing::info!("dedicated controller stopping");
    let q = Arc::clone(&quorum);
    let _ = tokio::task::spawn_blocking(move || q.shutdown()).await;
    Ok(())
}
