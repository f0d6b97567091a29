//! The running console: `Console` (the cluster connection, the lag store, the poller and
//! notifier tasks), `router` (the HTTP routes to mount) and `run` (standalone serving).

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use strom_client::{Admin, ClientConfig, Producer, ProducerConfig};
use tokio::sync::{mpsc, watch, OnceCell};

use crate::config::{ConsoleConfig, NotifierConfig};
use crate::lag::{self, GroupReport, LagStore};
use crate::ui::history::{self, History};
use crate::{burrow, notify, rest, ui, util};

/// Status changes waiting for the notifiers, at most.
const NOTIFY_QUEUE: usize = 1024;

/// Why the console could not start or serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot reach the cluster at {bootstrap}: {reason}")]
    Connect { bootstrap: String, reason: String },
    #[error("bad listener '{listener}': {reason}")]
    Listener { listener: String, reason: String },
    #[error("HTTP server failed: {0}")]
    Serve(String),
    #[error("invalid console configuration: {0}")]
    Config(String),
}

/// The running services: the cluster connection, the lag monitor's store and its poller.
/// Dropping the last handle (or `stop`) ends the poller and the notifiers.
pub struct Console {
    config: ConsoleConfig,
    admin: Admin,
    producer: OnceCell<Producer>,
    lag: Arc<Mutex<LagStore>>,
    history: Arc<Mutex<History>>,
    decoders: Option<ui::decode::Decoders>,
    stop: watch::Sender<bool>,
    hostname: String,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("bootstrap", &self.config.bootstrap)
            .finish()
    }
}

impl Console {
    /// Connects to the cluster and starts the lag poller and the notifiers.
    pub async fn start(config: ConsoleConfig) -> Result<Arc<Console>, ConsoleError> {
        validate(&config)?;
        let admin = Admin::new(ClientConfig::new(&config.bootstrap))
            .await
            .map_err(|e| ConsoleError::Connect {
                bootstrap: config.bootstrap.clone(),
                reason: e.to_string(),
            })?;
        let rules = lag::Rules {
            intervals: config.lag.intervals.max(1),
            stop_after_ms: config.lag.stop_after_ms(),
        };
        let store = Arc::new(Mutex::new(LagStore::new(rules)));
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel(NOTIFY_QUEUE);
        tokio::spawn(notify::run(config.notifiers.clone(), rx));
        tokio::spawn(lag::poller::run(
            admin.clone(),
            config.cluster_name.clone(),
            store.clone(),
            config.lag.poll_interval,
            tx,
            stop_rx.clone(),
        ));
        let decoders = config
            .schema_registry_url
            .as_deref()
            .map(ui::decode::Decoders::new);
        let hist = Arc::new(Mutex::new(History::default()));
        tokio::spawn(history::run(
            admin.clone(),
            hist.clone(),
            config.history_interval,
            stop_rx,
        ));
        Ok(Arc::new(Console {
            hostname: hostname(),
            config,
            admin,
            producer: OnceCell::new(),
            lag: store,
            history: hist,
            decoders,
            stop,
        }))
    }

    pub fn config(&self) -> &ConsoleConfig {
        &self.config
    }

    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The lag monitor's store (read it for reports at a time of your choice).
    pub fn lag_store(&self) -> &Arc<Mutex<LagStore>> {
        &self.lag
    }

    /// The Schema Registry decoders of the message browser, when a registry is configured.
    pub(crate) fn decoders(&self) -> Option<&ui::decode::Decoders> {
        self.decoders.as_ref()
    }

    /// The console's chart history (the last hour of samples).
    pub fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A group's evaluation now (what `/v3/kafka/{cluster}/consumer/{group}/lag` reports);
    /// `None` for a group the monitor does not track.
    pub fn group_report(&self, group: &str) -> Option<GroupReport> {
        self.lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .report(group, util::now_ms())
    }

    /// The producer of the REST proxy, created on first use.
    pub(crate) async fn producer(&self) -> strom_client::Result<&Producer> {
        self.producer
            .get_or_try_init(|| async {
                let mut c = ProducerConfig::new(&self.config.bootstrap);
                c.set("linger.ms", "1")?;
                Producer::new(c).await
            })
            .await
    }

    pub(crate) fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Stops the lag poller (and with it the notifiers).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Settings that would fail later (a zero tick panics tokio's interval; a webhook URL that
/// cannot be posted to) are refused up front.
fn validate(config: &ConsoleConfig) -> Result<(), ConsoleError> {
    if config.lag.poll_interval.is_zero() {
        return Err(ConsoleError::Config(
            "the lag poll interval must be longer than zero".into(),
        ));
    }
    if config.history_interval.is_zero() {
        return Err(ConsoleError::Config(
            "the history interval must be longer than zero".into(),
        ));
    }
    if let Some(url) = &config.schema_registry_url {
        if !url.starts_with("http://") {
            return Err(ConsoleError::Config(format!(
                "schema.registry.url '{url}': only http:// is supported"
            )));
        }
    }
    for n in &config.notifiers {
        if let NotifierConfig::Webhook { url, .. } = n {
            notify::split_http_url(url)
                .map_err(|e| ConsoleError::Config(format!("webhook: {e}")))?;
        }
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The web console (`/`, `/ui/...`, `/api/console/...`), the Burrow API (`/v3/kafka`,
/// `/burrow/admin`) and the REST proxy (`/v3/clusters`), to
/// mount on an HTTP listener. It sets no fallback, so it merges with other routers (the
/// broker's `/metrics`); `run` adds one answering 404 in the REST proxy's error shape.
pub fn router(console: Arc<Console>) -> Router {
    burrow::routes()
        .merge(rest::routes())
        .merge(ui::routes())
        .layer(axum::middleware::from_fn(same_origin_writes))
        .layer(axum::extract::DefaultBodyLimit::max(rest::MAX_BODY_BYTES))
        .with_state(console)
}

/// Refuses a request that changes something (any method but GET, HEAD, OPTIONS) when a
/// browser sent it from another site: its `Origin` names another host than `Host`. A page
/// elsewhere could otherwise delete topics or reset offsets through a local console with a
/// form post (no CORS preflight for `text/plain` bodies). Clients that are not browsers send
/// no `Origin` and pass.
async fn same_origin_writes(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, Method};
    use axum::response::IntoResponse;
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("?");
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .unwrap_or("");
            if host.is_empty() || origin_host != host {
                return rest::RestError::CrossOrigin(origin.to_owned()).into_response();
            }
        }
    }
    next.run(req).await
}

/// Standalone use: starts the console, serves `router` on `config.listener` until
/// `shutdown` resolves, then stops the poller.
pub async fn run(
    config: ConsoleConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    let (addr, _, _) =
        notify::split_http_url(&config.listener).map_err(|reason| ConsoleError::Listener {
            listener: config.listener.clone(),
            reason,
        })?;
    let listener =
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| ConsoleError::Listener {
                listener: config.listener.clone(),
                reason: e.to_string(),
            })?;
    let console = Console::start(config).await?;
    tracing::info!(listener = %console.config.listener, "console serving");
    let app = router(console.clone())
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::method_not_allowed);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ConsoleError::Serve(e.to_string()));
    console.stop();
    served
}
