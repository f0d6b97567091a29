//! Burrow's job: every consumer group's partitions evaluated over a sliding window of polls
//! (`rules`), the windows kept per group partition (`store`), and the task that polls the
//! cluster and tells the notifiers about group status changes (`poller`).

pub mod poller;
pub mod rules;
pub mod store;

pub use rules::{Entry, GroupStatus, PartitionStatus, Rules, Window};
pub use store::{GroupReport, GroupSnapshot, LagStore, PartitionReport, PartitionSnapshot};
