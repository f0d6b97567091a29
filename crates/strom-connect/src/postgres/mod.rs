//! The PostgreSQL connectors: a source in query mode (Confluent's JDBC source connector,
//! `source`), a change data capture source through logical replication with pgoutput
//! (Debezium's PostgreSQL connector, `cdc`, decoding with `pgoutput`), and a sink (Confluent's
//! JDBC sink connector, `sink`). See docs/design/2026-12-04-connect.md.

pub mod catalog;
pub mod cdc;
pub mod conn;
pub mod pgoutput;
pub mod sink;
pub mod source;
pub mod types;
