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
    /// How often the web console samples every partition's end offset and every group's
    /// lag for its charts (the last hour is kept in memory). Default 10 s.
    pub history_interval: Duration,
    /// The Schema Registry (`http://host:port`) the message browser decodes Confluent-framed
    /// values through (magic byte 0, schema id); `None`: such values are shown as base64.
    pub schema_registry_url: Option<String>,
    /// A Kafka Connect worker's REST API (`http://host:port`) for the connectors page; `None`:
    /// the page says none is configured.
    pub connect_url: Option<String>,
}

impl ConsoleConfig {
    pub fn new(bootstrap: &str) -> ConsoleConfig {
        ConsoleConfig {
            bootstrap: bootstrap.to_owned(),
            listener: "http://127.0.0.1:8080".into(),
            cluster_name: "local".into(),
            lag: LagConfig::default(),
            notifiers: vec![NotifierConfig::Log],
            history_interval: Duration::from_secs(10),
            schema_registry_url: None,
            connect_url: None,
        }
    }

    /// Sets one property (for `server.properties`-style configuration, without a prefix):
    /// `listener`, `cluster.name`, `lag.poll.interval.ms`, `lag.intervals`,
    /// `lag.stop.after.ms`, `history.interval.ms`, `schema.registry.url`, `connect.url`, `notify.log` (true/false), `notify.webhook.url`,
    /// `notify.webhook.template`, `notify.webhook.content.type`. The webhook keys configure
    /// one webhook (created by the first of them).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let ms = |v: &str| -> Result<Duration, String> {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{key}: '{v}' is not a number of milliseconds"))
        };
        match key {
            "listener" => self.listener = value.to_owned(),
            "cluster.name" if !value.is_empty() => self.cluster_name = value.to_owned(),
            "lag.poll.interval.ms" => {
                let d = ms(value)?;
                if d.is_zero() {
                    return Err(format!("{key}: must be more than 0"));
                }
                self.lag.poll_interval = d;
            }
            "lag.intervals" => {
                self.lag.intervals = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{key}: '{value}' is not a positive number"))?;
            }
            "lag.stop.after.ms" => self.lag.stop_after = Some(ms(value)?),
            "schema.registry.url" => {
                self.schema_registry_url = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "connect.url" => {
                if !value.is_empty() && !value.starts_with("http://") {
                    return Err(format!("{key}: '{value}' is not an http:// URL"));
                }
                self.connect_url =
                    Some(value.trim_end_matches('/').to_owned()).filter(|v| !v.is_empty())
            }
            "history.interval.ms" => {
                let d = ms(value)?;
                if d.is_zero() {
                    return Err(format!("{key}: must be more than 0"));
                }
                self.history_interval = d;
            }
            "notify.log" => {
                let on = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("{key}: '{value}' is not true or false")),
                };
                self.notifiers.retain(|n| *n != NotifierConfig::Log);
                if on {
                    self.notifiers.push(NotifierConfig::Log);
                }
            }
            "notify.webhook.url" | "notify.webhook.template" | "notify.webhook.content.type" => {
                if !self
                    .notifiers
                    .iter()
                    .any(|n| matches!(n, NotifierConfig::Webhook { .. }))
                {
                    self.notifiers.push(NotifierConfig::Webhook {
                        url: String::new(),
                        template: None,
                        content_type: "application/json".into(),
                    });
                }
                for n in &mut self.notifiers {
                    if let NotifierConfig::Webhook {
                        url,
                        template,
                        content_type,
                    } = n
                    {
                        match key {
                            "notify.webhook.url" => *url = value.to_owned(),
                            "notify.webhook.template" => *template = Some(value.to_owned()),
                            _ => *content_type = value.to_owned(),
                        }
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown console setting '{key}' (or an empty value)"
                ))
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_set_the_config() {
        let mut c = ConsoleConfig::new("b:9092");
        for (k, v) in [
            ("cluster.name", "prod"),
            ("lag.poll.interval.ms", "5000"),
            ("lag.intervals", "6"),
            ("notify.webhook.url", "http://alerts:9000/lag"),
            ("notify.webhook.template", "{group} is {status}"),
            ("notify.webhook.content.type", "text/plain"),
            ("notify.log", "false"),
        ] {
            c.set(k, v).unwrap();
        }
        assert_eq!(c.cluster_name, "prod");
        assert_eq!(c.lag.poll_interval, Duration::from_secs(5));
        assert_eq!(c.lag.stop_after_ms(), 30_000);
        c.set("lag.stop.after.ms", "1234").unwrap();
        c.set("history.interval.ms", "1000").unwrap();
        assert_eq!(c.history_interval, Duration::from_secs(1));
        assert_eq!(c.lag.stop_after_ms(), 1234);
        assert_eq!(
            c.notifiers,
            vec![NotifierConfig::Webhook {
                url: "http://alerts:9000/lag".into(),
                template: Some("{group} is {status}".into()),
                content_type: "text/plain".into(),
            }]
        );
        for (k, v) in [
            ("lag.poll.interval.ms", "0"),
            ("lag.poll.interval.ms", "soon"),
            ("lag.intervals", "0"),
            ("history.interval.ms", "0"),
            ("notify.log", "yes"),
            ("cluster.name", ""),
            ("no.such.key", "1"),
        ] {
            assert!(c.set(k, v).is_err(), "{k}={v}");
        }
    }
}
