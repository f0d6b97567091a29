//! Producer settings with Kafka's names and the Java client's defaults (Kafka 4.x):
//! `acks=all`, `enable.idempotence=true`, `linger.ms=5`, `batch.size=16384`,
//! `buffer.memory=33554432`, `max.in.flight.requests.per.connection=5`.

use std::time::Duration;

use strom_protocol::compression::parse_codec;
use strom_protocol::record_batch::Compression;

use crate::config::{parse_bool, parse_ms, parse_num, ClientConfig};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub client: ClientConfig,
    /// 0, 1 or -1 (`all`).
    pub acks: i16,
    pub linger: Duration,
    pub batch_size: usize,
    pub compression: Compression,
    /// `None` = Kafka's default: on, unless acks is not `all` (then silently off).
    pub enable_idempotence: Option<bool>,
    pub buffer_memory: usize,
    pub max_block: Duration,
    pub delivery_timeout: Duration,
    pub max_in_flight: usize,
    pub max_request_size: usize,
    /// Produce request timeout sent to the broker (`request.timeout.ms`).
    pub request_timeout_ms: i32,
    /// `transactional.id`: makes the producer transactional (and idempotent).
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (Java's default 60 s): the coordinator aborts a transaction
    /// open longer than this.
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            acks: -1,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            compression: Compression::None,
            enable_idempotence: None,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_millis(60_000),
            delivery_timeout: Duration::from_millis(120_000),
            max_in_flight: 5,
            max_request_size: 1_048_576,
            request_timeout_ms: 30_000,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(60_000),
        }
    }
}

impl ProducerConfig {
    pub fn new(bootstrap: &str) -> Self {
        Self {
            client: ClientConfig::new(bootstrap),
            ..Self::default()
        }
    }

    /// Applies a Kafka-named setting (producer or client); unknown names are an error.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        if self.client.set(key, value)? {
            if key == "request.timeout.ms" {
                self.request_timeout_ms = parse_num(key, value)?;
            }
            return Ok(self);
        }
        match key {
            "acks" => {
                self.acks = match value.trim() {
                    "all" | "-1" => -1,
                    "0" => 0,
                    "1" => 1,
                    _ => return Err(Error::Config(format!("acks: '{value}' is not 0, 1 or all"))),
                }
            }
            "linger.ms" => self.linger = parse_ms(key, value)?,
            "batch.size" => self.batch_size = parse_num::<usize>(key, value)?.max(1),
            "compression.type" => {
                self.compression = parse_codec(value).ok_or_else(|| {
                    Error::Config(format!("compression.type: unknown codec '{value}'"))
                })?
            }
            "enable.idempotence" => self.enable_idempotence = Some(parse_bool(key, value)?),
            "buffer.memory" => self.buffer_memory = parse_num(key, value)?,
            "max.block.ms" => self.max_block = parse_ms(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = parse_ms(key, value)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = parse_num::<usize>(key, value)?.max(1)
            }
            "max.request.size" => self.max_request_size = parse_num(key, value)?,
            "transactional.id" => {
                self.transactional_id = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "transaction.timeout.ms" => self.transaction_timeout = parse_ms(key, value)?,
            _ => return Err(Error::Config(format!("unknown producer setting '{key}'"))),
        }
        Ok(self)
    }

    /// Whether the producer is idempotent, after Kafka's rules; errors on contradictions.
    pub(crate) fn idempotent(&self) -> Result<bool> {
        if self.transactional_id.is_some() {
            return match self.enable_idempotence {
                Some(false) => Err(Error::Config(
                    "transactional.id requires enable.idempotence=true".into(),
                )),
                _ if self.acks != -1 => {
                    Err(Error::Config("transactional.id requires acks=all".into()))
                }
                _ if self.max_in_flight > 5 => Err(Error::Config(
                    "transactional.id requires max.in.flight.requests.per.connection <= 5".into(),
                )),
                _ => Ok(true),
            };
        }
        match self.enable_idempotence {
            None => Ok(self.acks == -1 && self.max_in_flight <= 5),
            Some(false) => Ok(false),
            Some(true) if self.acks != -1 => Err(Error::Config(
                "enable.idempotence=true requires acks=all".into(),
            )),
            Some(true) if self.max_in_flight > 5 => Err(Error::Config(
                "enable.idempotence=true requires max.in.flight.requests.per.connection <= 5"
                    .into(),
            )),
            Some(true) => Ok(true),
        }
    }
}
