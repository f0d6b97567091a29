//! The listener: binds, admits connections up to `max.connections`, and stops when the
//! shutdown future resolves (STYLE.md #10), letting connections finish their request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection;

/// Why the server could not start or run.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot bind listener {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Startup(String),
}

/// Serves Kafka clients on `listener` until `shutdown` resolves, then closes every
/// connection after its current request and closes the logs with a clean marker.
pub async fn run(
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?local, "strom broker listening");
    let limit = Arc::new(Semaphore::new(
        broker.config().max_connections().max(1) as usize
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let background = broker.clone().start_background_tasks(stop_rx.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "max.connections reached; refusing connection");
                        continue;
                    };
                    let broker = broker.clone();
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        connection::serve(broker, stream, peer, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections did not finish within 10 s; closing them");
        connections.abort_all();
    }
    background.abort();
    broker.shutdown();
    tracing::info!("shutdown complete");
    Ok(())
}
