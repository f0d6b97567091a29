//! Consumer settings with Kafka's names and the Java client's defaults (`auto.offset.reset=
//! latest`, `enable.auto.commit=true`, `partition.assignment.strategy=range,cooperative-sticky`).

use std::time::Duration;

use crate::config::{parse_bool, parse_ms, parse_num, split_list, ClientConfig};
use crate::error::{Error, Result};

/// Where to start when a partition has no committed offset (or it is out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE / NO_OFFSET instead.
    None,
}

/// A partition assignment strategy this consumer can run as group leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Range,
    CooperativeSticky,
}

impl Assignor {
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name.trim() {
            "range" | "org.apache.kafka.clients.consumer.RangeAssignor" => Some(Assignor::Range),
            "cooperative-sticky"
            | "org.apache.kafka.clients.consumer.CooperativeStickyAssignor" => {
                Some(Assignor::CooperativeSticky)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub client: ClientConfig,
    pub group_id: Option<String>,
    pub group_instance_id: Option<String>,
    pub auto_offset_reset: OffsetReset,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    /// 0 = read_uncommitted, 1 = read_committed.
    pub isolation_level: i8,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub fetch_max_wait: Duration,
    pub max_partition_fetch_bytes: i32,
    pub max_poll_records: usize,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    pub assignors: Vec<Assignor>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            group_id: None,
            group_instance_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            isolation_level: 0,
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1_048_576,
            max_poll_records: 500,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
        }
    }
}

impl ConsumerConfig {
    pub fn new(bootstrap: &str) -> Self {
        Self {
            client: ClientConfig::new(bootstrap),
            ..Self::default()
        }
    }

    /// Applies a Kafka-named setting (consumer or client); unknown names are an error.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        if self.client.set(key, value)? {
            return Ok(self);
        }
        match key {
            "group.id" => self.group_id = Some(value.to_owned()).filter(|g| !g.is_empty()),
            "group.instance.id" => self.group_instance_id = Some(value.to_owned()),
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim() {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => return Err(Error::Config(format!("auto.offset.reset: '{value}'"))),
                }
            }
            "enable.auto.commit" => self.enable_auto_commit = parse_bool(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = parse_ms(key, value)?,
            "isolation.level" => {
                self.isolation_level = match value.trim() {
                    "read_uncommitted" => 0,
                    "read_committed" => 1,
                    _ => return Err(Error::Config(format!("isolation.level: '{value}'"))),
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_num(key, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_num(key, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = parse_ms(key, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = parse_num(key, value)?,
            "max.poll.records" => self.max_poll_records = parse_num::<usize>(key, value)?.max(1),
            "session.timeout.ms" => self.session_timeout = parse_ms(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = parse_ms(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = parse_ms(key, value)?,
            "partition.assignment.strategy" => {
                self.assignors = split_list(value)
                    .iter()
                    .map(|n| {
                        Assignor::from_name(n)
                            .ok_or_else(|| Error::Config(format!("unknown assignor '{n}'")))
                    })
                    .collect::<Result<_>>()?;
                if self.assignors.is_empty() {
                    return Err(Error::Config(
                        "partition.assignment.strategy is empty".into(),
                    ));
                }
            }
            _ => return Err(Error::Config(format!("unknown consumer setting '{key}'"))),
        }
        Ok(self)
    }
}
