//! The Strom broker: the listener and its connections, one handler module per Kafka API,
//! the replica manager that hosts partition logs, and the broker's view of metadata.
//! It knows the network and the coordinators; bytes on disk belong to `strom-storage`.

pub mod broker;
pub mod client_quotas;
mod cluster;
pub mod config;
mod connection;
pub mod controller_node;
pub mod errors;
mod frame_pool;
pub mod group;
pub mod group_commit;
mod handlers;
mod inter_broker;
mod internal_topic;
mod limits;
mod log_cleaner;
pub mod metrics;
pub mod partition;
mod prometheus;
pub mod replica_fetcher;
pub mod replica_manager;
mod response;
pub mod security;
pub mod server;
pub mod share;
mod socket_writer;
pub mod throttle;
pub mod txn;

pub use broker::Broker;
pub use cluster::apply_formatted_storage;
pub use handlers::{supported_apis, ApiSpec};
pub use metrics::BrokerMetrics;
pub use server::{run, run_listeners, ServerError};
