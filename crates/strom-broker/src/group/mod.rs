//! The group coordinator for Kafka's classic consumer-group protocol: the group state machine,
//! committed offsets, and their records in `__consumer_offsets`. Assignors run in the clients.

mod broker_log;
pub mod coordinator;
pub mod log;
pub mod manager;
pub mod records;
pub mod state;
mod subscription;
pub mod txn_offsets;

pub use coordinator::{GroupCoordinator, OffsetCommit};
pub use log::{OffsetsLog, OFFSETS_TOPIC};
pub use manager::{CommitAuth, GroupManager, TopicPartition};
pub use state::{
    GroupConfig, GroupState, JoinRequest, JoinResult, Protocol, SyncRequest, SyncResult,
};

/// The wire error code of an optional error (0 = none).
pub(crate) fn code(error: Option<strom_protocol::ErrorCode>) -> i16 {
    error.map_or(0, |e| e.code())
}
