//! `strom-console`: the operations HTTP services of Strom, built on `strom-client` only (so
//! they run inside `strom server` on its HTTP listener or beside any Kafka-compatible cluster):
//! - Burrow-style consumer-lag monitoring: a poller keeps a sliding window per group
//!   partition, evaluates Burrow's rules (`lag`), serves Burrow's HTTP API under `/v3/kafka`
//!   (`burrow`) and notifies status changes (`notify`: log, templated webhook);
//! - Confluent REST Proxy v3 under `/v3/clusters` (`rest`): cluster, broker, topic,
//!   partition, config and consumer-group reads, topic create/delete, and producing records.
//! - the web console (`ui`): a single page with no build step embedded in the binary,
//!   served at `/`, and its JSON endpoints under `/api/console`.

pub mod burrow;
pub mod config;
pub mod lag;
pub mod notify;
pub mod rest;
pub mod service;
pub mod ui;
mod util;

pub use config::{ConsoleConfig, LagConfig, NotifierConfig};
pub use lag::{GroupReport, GroupStatus, LagStore, PartitionStatus};
pub use service::{router, run, Console, ConsoleError};
