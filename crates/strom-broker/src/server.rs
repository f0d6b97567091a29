//! The listener: binds, admits connections up to `max.connections` and
//! `max.connections.per.ip`, and stops when the shutdown future resolves (STYLE.md #10),
//! letting connections finish their request. Accept errors (EMFILE) back off, never spin.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection::{self, Transport};
use crate::limits::{ConnectionLimits, LogLimiter, Refused, RequestBudget};
use crate::security::ListenerSecurity;

/// A TLS handshake must finish within this, or the connection is closed.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// First pause after a failed accept; doubles on each further failure up to the maximum.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval for refused connections and accept errors.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

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

/// Serves Kafka clients on `listener` (the config's first broker listener) until `shutdown`
/// resolves, then closes every connection after its current request and closes the logs
/// with a clean marker.
pub async fn run(
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let name = broker
        .config()
        .client_listener()
        .map_or_else(|| "PLAINTEXT".to_owned(), |l| l.name.clone());
    run_listeners(broker, vec![(name, listener)], shutdown).await
}

/// A connection accepted on a listener, handed to the serving loop.
type Accepted = (TcpStream, SocketAddr, Arc<str>);

/// Serves Kafka clients on every named listener (`listeners` minus the controller ones),
/// until `shutdown` resolves; each connection knows its listener's name, which decides
/// the endpoints its Metadata answers carry.
pub async fn run_listeners(
    broker: Arc<Broker>,
    listeners: Vec<(String, TcpListener)>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let mut security = std::collections::HashMap::new();
    for (name, _) in &listeners {
        let s = ListenerSecurity::of(broker.config(), name).map_err(ServerError::Startup)?;
        security.insert(name.clone(), s);
    }
    let acceptor = Arc::new(Acceptor {
        security,
        handshake_log: LogLimiter::new(LOG_INTERVAL),
        limits: ConnectionLimits::new(
            broker.config().max_connections().max(0) as usize,
            broker.metrics().clone(),
        ),
        budget: RequestBudget::new(
            broker.config().queued_max_request_bytes(),
            broker.metrics().clone(),
        ),
        refused_log: LogLimiter::new(LOG_INTERVAL),
        error_log: LogLimiter::new(LOG_INTERVAL),
        creation_rate: broker
            .config()
            .value_and_source("max.connection.creation.rate")
            .0
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| *r > 0.0 && *r < f64::from(i32::MAX)),
        creation: Default::default(),
        listener_creation: listeners
            .iter()
            .filter_map(|(name, _)| {
                let key = format!(
                    "listener.name.{}.max.connection.creation.rate",
                    name.to_ascii_lowercase()
                );
                let rate = broker
                    .config()
                    .static_value(&key)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|r| *r > 0.0 && *r < f64::from(i32::MAX))?;
                Some((name.clone(), (rate, Default::default())))
            })
            .collect(),
        throttled_log: LogLimiter::new(LOG_INTERVAL),
        broker: broker.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let background = broker.clone().start_background_tasks(stop_rx.clone());
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel::<Accepted>(64);
    let mut accept_loops = JoinSet::new();
    for (name, listener) in listeners {
        let local: Option<SocketAddr> = listener.local_addr().ok();
        let protocol = acceptor.security[&name].protocol.clone();
        tracing::info!(?local, listener = %name, %protocol, "strom broker listening");
        if protocol == "PLAINTEXT" && local.is_some_and(|a| !a.ip().is_loopback()) {
            tracing::warn!(?local, listener = %name, "listener reachable beyond this machine without encryption or authentication (PLAINTEXT); set listener.security.protocol.map to SSL, SASL_SSL or SASL_PLAINTEXT for networks you do not trust");
        }
        accept_loops.spawn(accept_loop(
            listener,
            Arc::from(name),
            acceptor.clone(),
            accepted_tx.clone(),
        ));
    }
    drop(accepted_tx);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            Some((stream, peer, name)) = accepted_rx.recv() => {
                acceptor.admit(stream, peer, name, &mut connections, &stop_rx);
            }
        }
    }
    accept_loops.abort_all();
    tracing::info!("shutting down: finishing in-flight requests");
    // First move this broker's leaderships away (cluster mode), bounded: clients then get
    // NOT_LEADER_OR_FOLLOWER and move on instead of timing out.
    let b = broker.clone();
    let moved = tokio::task::spawn_blocking(move || b.controlled_shutdown());
    if tokio::time::timeout(Duration::from_secs(10), moved)
        .await
        .is_err()
    {
        tracing::warn!("controlled shutdown did not finish within 10 s");
    }
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

/// Accepts connections on one listener and hands them to the serving loop. Accept errors
/// (out of file descriptors and similar) leave the pending connection in the backlog and
/// back off instead of spinning on it.
async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    acceptor: Arc<Acceptor>,
    accepted: tokio::sync::mpsc::Sender<Accepted>,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                if accepted.send((stream, peer, name.clone())).await.is_err() {
                    return;
                }
                // Over max.connection.creation.rate (broker-wide, or this listener's
                // listener.name.<l>.max.connection.creation.rate): accept nothing more on
                // this listener for a while, as Kafka's acceptor does (the backlog holds the
                // new connections meanwhile).
                let mut wait = Duration::ZERO;
                if let Some(rate) = acceptor.creation_rate {
                    wait = acceptor.creation.record(1, rate);
                }
                if let Some((rate, sensor)) = acceptor.listener_creation.get(&*name) {
                    wait = wait.max(sensor.record(1, *rate));
                }
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            Err(e) => {
                acceptor.accept_failed(&e, backoff);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// What the accept loop needs to admit or refuse a connection.
struct Acceptor {
    broker: Arc<Broker>,
    /// Each listener's security, by name.
    security: std::collections::HashMap<String, ListenerSecurity>,
    handshake_log: LogLimiter,
    limits: Arc<ConnectionLimits>,
    budget: Arc<RequestBudget>,
    refused_log: LogLimiter,
    error_log: LogLimiter,
    /// `max.connection.creation.rate` (KIP-612), when set below Kafka's "unlimited".
    creation_rate: Option<f64>,
    creation: crate::client_quotas::RateSensor,
    /// Each listener's own `listener.name.<l>.max.connection.creation.rate`, where set.
    listener_creation: std::collections::HashMap<String, (f64, crate::client_quotas::RateSensor)>,
    throttled_log: LogLimiter,
}

impl Acceptor {
    /// Starts serving `stream` if the connection limits allow it; otherwise closes it now.
    fn admit(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        listener: Arc<str>,
        connections: &mut JoinSet<()>,
        stop: &watch::Receiver<bool>,
    ) {
        let metrics = self.broker.metrics();
        let per_ip = self.broker.config().max_connections_per_ip(peer.ip());
        let slot = match self.limits.admit(peer.ip(), per_ip.max(0) as usize) {
            Ok(slot) => slot,
            Err(reason) => {
                let config = match reason {
                    Refused::MaxConnections => {
                        metrics.connections_rejected_max_connections.inc();
                        "max.connections"
                    }
                    Refused::MaxConnectionsPerIp => {
                        metrics.connections_rejected_max_connections_per_ip.inc();
                        "max.connections.per.ip"
                    }
                };
                if let Some(suppressed) = self.refused_log.check() {
                    tracing::warn!(%peer, suppressed, "{config} reached; closing new connection");
                }
                drop(stream);
                return;
            }
        };
        // KIP-612: an IP over its connection_creation_rate quota has the new connection
        // closed after the throttle time (so reconnecting at once does not help).
        let image = self.broker.image();
        let wait = self
            .broker
            .client_quotas()
            .record_connection(image.client_quotas(), &peer.ip().to_string());
        if !wait.is_zero() {
            if let Some(suppressed) = self.throttled_log.check() {
                tracing::warn!(%peer, suppressed, wait_ms = wait.as_millis() as u64, "connection_creation_rate quota exceeded; closing the new connection after the throttle time");
            }
            // The connection keeps its slot meanwhile, so max.connections bounds these too.
            connections.spawn(async move {
                tokio::time::sleep(wait).await;
                drop(stream);
                drop(slot);
            });
            return;
        }
        metrics.connection_creation_total.inc();
        let broker = self.broker.clone();
        let budget = self.budget.clone();
        let stop = stop.clone();
        let tls = self.security.get(&*listener).and_then(|s| s.tls.clone());
        let sasl = self.security.get(&*listener).and_then(|s| s.sasl.clone());
        let this = Arc::clone(self);
        connections.spawn(async move {
            let mut transport = match tls {
                None => Transport::plain(stream),
                Some(tls) => match this.tls_handshake(stream, peer, &listener, &tls).await {
                    Some(t) => t,
                    None => return,
                },
            };
            transport.sasl = sasl;
            connection::serve(broker, transport, peer, listener, stop, budget).await;
            drop(slot);
        });
    }

    /// The TLS handshake of a new connection, and its principal from a client certificate.
    /// A failure (a plaintext client, an untrusted certificate, a timeout) closes only this
    /// connection, with a log line.
    async fn tls_handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        listener: &str,
        tls: &crate::security::tls::TlsListener,
    ) -> Option<Transport> {
        let _ = stream.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if let Some(suppressed) = self.handshake_log.check() {
                    tracing::warn!(%peer, listener, error = %e, suppressed, "TLS handshake failed; connection closed");
                }
                return None;
            }
            Err(_) => {
                if let Some(suppressed) = self.handshake_log.check() {
                    tracing::warn!(%peer, listener, suppressed, "TLS handshake not finished within 10 s; connection closed");
                }
                return None;
            }
        };
        let principal = match tls.principal_of(stream.get_ref().1) {
            Ok(principal) => principal,
            Err(dn) => {
                tracing::warn!(%peer, listener, subject = %dn, "no ssl.principal.mapping.rules rule matches the client certificate; connection closed");
                return None;
            }
        };
        tracing::debug!(%peer, listener, %principal, "TLS connection");
        Some(Transport::tls(stream, Arc::from(principal)))
    }

    fn accept_failed(&self, error: &std::io::Error, backoff: Duration) {
        self.broker.metrics().accept_errors_total.inc();
        if let Some(suppressed) = self.error_log.check() {
            tracing::warn!(%error, suppressed, backoff_ms = backoff.as_millis() as u64, "accept failed (out of file descriptors?); backing off");
        }
    }
}
