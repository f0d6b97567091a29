//! The client's error type: Kafka error codes by their protocol names
//! (`UNKNOWN_TOPIC_OR_PARTITION`), transport failures, timeouts and misuse. One line each.

use strom_protocol::ErrorCode;

/// A Kafka error code as the protocol defines it (see `kafka_error_name`).
pub type KafkaCode = ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client. Cloneable so one failed request can fail all
/// the records or callers waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The broker answered with a Kafka error code.
    #[error("{}: {context}", kafka_error_name(*.code))]
    Kafka { code: KafkaCode, context: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} lost: {reason}")]
    Disconnected { addr: String, reason: String },
    #[error("timed out after {ms} ms: {what}")]
    Timeout { what: String, ms: u64 },
    #[error("UNSUPPORTED_VERSION: the broker supports no {api} version this client speaks")]
    UnsupportedVersion { api: String },
    #[error("malformed {api} response: {reason}")]
    Protocol { api: String, reason: String },
    #[error("RECORD_TOO_LARGE: record of {size} bytes exceeds {limit} ({setting})")]
    RecordTooLarge {
        size: usize,
        limit: usize,
        setting: &'static str,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0} is closed")]
    Closed(&'static str),
    /// Another producer with the same `transactional.id` (a newer epoch) took over; this
    /// producer can only be closed (Java's `ProducerFencedException`).
    #[error("PRODUCER_FENCED: {0}")]
    ProducerFenced(String),
    /// A transactional call out of order (e.g. send before `begin_transaction`).
    #[error("illegal transaction state: {0}")]
    TransactionState(String),
    /// A record of the ongoing transaction failed: only `abort_transaction` is possible.
    #[error("transaction must be aborted: {0}")]
    TransactionAborted(String),
}

impl Error {
    pub fn kafka(code: KafkaCode, context: impl Into<String>) -> Self {
        Error::Kafka {
            code,
            context: context.into(),
        }
    }

    /// `Ok(())` for code 0, else the Kafka error.
    pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<()> {
        match ErrorCode::try_from_code(code) {
            None => Ok(()),
            Some(code) => Err(Error::kafka(code, context())),
        }
    }

    /// Kafka's retriable codes plus transport failures and timeouts.
    pub fn is_retriable(&self) -> bool {
        match self {
            // Java treats CONCURRENT_TRANSACTIONS as retriable too (the coordinator is
            // still completing the previous transaction).
            Error::Kafka { code, .. } => {
                code.is_retriable() || *code == ErrorCode::ConcurrentTransactions
            }
            Error::Connect { .. } | Error::Disconnected { .. } | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The Kafka error code, if this is one.
    pub fn code(&self) -> Option<KafkaCode> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether cached metadata (leaders, coordinators) should be refreshed after this error.
    pub fn invalidates_metadata(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::LeaderNotAvailable
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::NotCoordinator
                    | ErrorCode::CoordinatorNotAvailable
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::UnknownLeaderEpoch
            )
        ) || matches!(self, Error::Connect { .. } | Error::Disconnected { .. })
    }
}

/// The protocol name of a Kafka error (`UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`).
pub fn kafka_error_name(code: KafkaCode) -> String {
    if let ErrorCode::Unknown(n) = code {
        return format!("UNKNOWN_ERROR_CODE_{n}");
    }
    let camel = code.to_string();
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_protocol_guide() {
        assert_eq!(
            kafka_error_name(ErrorCode::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            kafka_error_name(ErrorCode::TopicAlreadyExists),
            "TOPIC_ALREADY_EXISTS"
        );
        let e = Error::kafka(ErrorCode::NotLeaderOrFollower, "t-0");
        assert_eq!(e.to_string(), "NOT_LEADER_OR_FOLLOWER: t-0");
        assert!(e.is_retriable() && e.invalidates_metadata());
        assert!(Error::check(0, String::new).is_ok());
        assert!(!Error::check(36, || "x".into()).unwrap_err().is_retriable());
    }
}
