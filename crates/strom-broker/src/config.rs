//! The broker's configuration: Kafka-style `server.properties` plus `--set` overrides.
//! The parsing lives in `strom_metadata::broker_config` (the controller validates against it).

pub use strom_metadata::broker_config::*;
