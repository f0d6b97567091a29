//! The group coordinator: Kafka's classic consumer-group protocol (assignors run in the
//! clients), KIP-848 consumer groups (`consumer/`, assignment on the broker), committed
//! offsets, and their records in `__consumer_offsets`.

mod broker_log;
pub mod consumer;
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
