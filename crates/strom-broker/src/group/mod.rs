//! The group coordinator for Kafka's classic consumer-group protocol: the group state machine,
//! committed offsets, and their records in `__consumer_offsets`. Assignors run in the clients.

pub mod manager;
pub mod records;
pub mod state;
mod subscription;

pub use manager::GroupManager;
pub use state::{GroupConfig, GroupState};
