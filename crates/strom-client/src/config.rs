//! Settings shared by every client, with Kafka's names (`bootstrap.servers`, `client.id`,
//! `request.timeout.ms`, `retry.backoff.ms`, ...). Producer and consumer settings extend it.

use std::time::Duration;

use crate::error::{Error, Result};

/// Connection-level settings. `set("request.timeout.ms", "30000")` accepts Kafka names.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub bootstrap_servers: Vec<String>,
    pub client_id: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// How long an operation keeps retrying retriable errors (`default.api.timeout.ms`).
    pub api_timeout: Duration,
    pub metadata_max_age: Duration,
    /// TLS and SASL (`security.protocol`, `ssl.*`, `sasl.*`).
    pub security: crate::security::SecurityConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: vec!["127.0.0.1:9092".into()],
            client_id: "strom-client".into(),
            request_timeout: Duration::from_millis(30_000),
            connect_timeout: Duration::from_millis(10_000),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1_000),
            api_timeout: Duration::from_millis(60_000),
            metadata_max_age: Duration::from_millis(300_000),
            security: Default::default(),
        }
    }
}

impl ClientConfig {
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap_servers: split_list(bootstrap),
            ..Self::default()
        }
    }

    /// Applies one Kafka-named setting; `Ok(false)` if the name is not a client setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        if self.security.set(key, value)? {
            return Ok(true);
        }
        match key {
            "bootstrap.servers" => self.bootstrap_servers = split_list(value),
            "client.id" => self.client_id = value.to_owned(),
            "request.timeout.ms" => self.request_timeout = parse_ms(key, value)?,
            "socket.connection.setup.timeout.ms" => self.connect_timeout = parse_ms(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(key, value)?,
            "default.api.timeout.ms" => self.api_timeout = parse_ms(key, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Exponential backoff for attempt `n` (0-based), capped at `retry.backoff.max.ms`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(10);
        (self.retry_backoff * factor).min(self.retry_backoff_max)
    }
}

pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn parse_ms(key: &str, value: &str) -> Result<Duration> {
    parse_num::<u64>(key, value).map(Duration::from_millis)
}

pub(crate) fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("{key}: '{value}' is not a valid number")))
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::Config(format!(
            "{key}: '{value}' is not true or false"
        ))),
    }
}
