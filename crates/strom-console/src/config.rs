//! The console's settings: where the cluster is, where to listen when run standalone, the lag
//! evaluator's window and thresholds, and the notifiers told about group status changes.

use std::time::Duration;

/// How to run the console services (lag monitor, Burrow API, REST proxy).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Kafka bootstrap servers (`host:port[,host:port]`).
    pub bootstrap: String,
    /// Where `run` listens: `http://host:port` (Strom's `http.listeners`, by default
    /// `http://127.0.0.1:8080`). Unused when the router is mounted on another listener.
    pub listener: String,
    /// The cluster's name in the Burrow API (`/v3/kafka/{cluster}`).
    pub cluster_name: String,
    pub lag: LagConfig,
    pub notifiers: Vec<NotifierConfig>,
}

impl ConsoleConfig {
    pub fn new(bootstrap: &str) -> ConsoleConfig {
        ConsoleConfig {
            bootstrap: bootstrap.to_owned(),
            listener: "http://127.0.0.1:8080".into(),
            cluster_name: "local".into(),
            lag: LagConfig::default(),
            notifiers: vec![NotifierConfig::Log],
        }
    }
}

/// The sliding window of the lag evaluator (Burrow's storage `intervals` and evaluator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagConfig {
    /// How often every group's committed offsets and its partitions' end offsets are read.
    /// Each read adds one entry to each partition's window.
    pub poll_interval: Duration,
    /// Entries kept per group partition (Burrow's `intervals`, default 10). A window with
    /// this many entries is complete; STALL and WARN are only judged on complete windows.
    pub intervals: usize,
    /// A partition of a group with no live members whose committed offset has not moved for
    /// longer than this, with lag, is STOP. `None`: `intervals` × `poll_interval`, the span
    /// of a full window (Burrow's "older than the window").
    pub stop_after: Option<Duration>,
}

impl Default for LagConfig {
    fn default() -> LagConfig {
        LagConfig {
            poll_interval: Duration::from_secs(30),
            intervals: 10,
            stop_after: None,
        }
    }
}

impl LagConfig {
    /// The STOP threshold in milliseconds.
    pub fn stop_after_ms(&self) -> i64 {
        let d = self.stop_after.unwrap_or_else(|| {
            self.poll_interval
                .saturating_mul(u32::try_from(self.intervals).unwrap_or(u32::MAX))
        });
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Where group status changes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierConfig {
    /// One log line (target `strom_console::notify`) per change.
    Log,
    /// An HTTP POST of `template` with its placeholders filled in (see `notify::render`).
    Webhook {
        /// `http://host[:port]/path` (plain HTTP).
        url: String,
        /// The body; `None` uses `notify::DEFAULT_TEMPLATE` (a JSON object).
        template: Option<String>,
        /// The `Content-Type` of the body.
        content_type: String,
    },
}
