//! `strom-schema`: the Schema Registry's schema side that needs no Kafka connection: Avro, JSON
//! Schema and Protobuf parsing and compatibility checks, a small HTTP client, and the serdes
//! in Confluent's wire format with a registry client that caches schemas and ids.
//!
//! The registry server (`strom-registry`) builds on it and re-exports its modules; clients get
//! the serdes through `strom-client`'s `serdes` feature (`strom_client::serde`).

pub mod avro;
pub mod http_client;
pub mod json_schema;
pub mod model;
pub mod protobuf;
pub mod serde;
