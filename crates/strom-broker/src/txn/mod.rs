//! The transaction coordinator (Kafka's classic protocol, KIP-98): transactional ids, producer
//! epochs and fencing, the transaction state machine over `__transaction_state`, and the
//! commit/abort markers, and transaction protocol v2 (KIP-890: an epoch bump per
//! transaction, partitions added by the leader that writes them, `implicit`).

pub(crate) mod broker_log;
pub mod coordinator;
pub(crate) mod implicit;
pub mod log;
pub mod records;
pub mod state;

pub use coordinator::TxnCoordinator;
pub use log::{TxnLog, TXN_STATE_TOPIC};
pub use state::{TxnConfig, TxnManager, TxnMetadata, TxnState};

use strom_protocol::ErrorCode;

/// PRODUCER_FENCED (KIP-588) as an older request version knows it: INVALID_PRODUCER_EPOCH.
pub(crate) fn fenced_for_version(error: ErrorCode, version: i16, fenced_since: i16) -> ErrorCode {
    if error == ErrorCode::ProducerFenced && version < fenced_since {
        ErrorCode::InvalidProducerEpoch
    } else {
        error
    }
}
