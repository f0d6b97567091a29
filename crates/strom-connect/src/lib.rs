//! `strom-connect`: a Kafka Connect-compatible runtime on `strom-client`: the connector API
//! (`connector`), built-in connectors (`file`, `mqtt`, `http_sink`), converters (Avro through
//! the Schema Registry in `avro_converter`), the Connect data model, single
//! message transforms and predicates, a standalone worker (`standalone::run`) and Kafka
//! Connect's REST API (`rest::router`), and distributed mode (`distributed::run`).

pub mod avro_converter;
pub mod config;
pub mod connector;
pub mod converter;
pub mod data;
pub mod distributed;
pub mod error;
pub mod file;
pub mod http_sink;
pub mod kafka_offsets;
pub mod mirror;
pub mod mqtt;
pub mod offsets;
pub mod plugins;
pub mod postgres;
pub mod rest;
pub mod runner;
pub mod standalone;
pub mod time;
pub mod tolerance;
pub mod topic_creation;
pub mod transforms;
pub mod verifiable;
pub mod worker;

pub use error::{ConnectError, Result};
