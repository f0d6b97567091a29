//! The Streams error type: what stops a stream thread (client, store and topology failures)
//! and what a deserialization handler gets for a record it cannot read.

/// Everything that can stop a Streams application or one of its threads.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamsError {
    #[error("client: {0}")]
    Client(#[from] strom_client::Error),
    #[error("state store '{store}': {reason}")]
    Store { store: String, reason: String },
    #[error("invalid topology: {0}")]
    Topology(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record could not be read and the deserialization handler said to fail.
    #[error("cannot deserialize the {part} of {topic}-{partition}@{offset}: {reason}")]
    Deserialization {
        topic: String,
        partition: i32,
        offset: i64,
        part: &'static str,
        reason: String,
    },
    /// A record could not be written: its serde failed (a registry serde without a registry,
    /// a registry that refused the schema, a value that does not fit it).
    #[error("cannot serialize the {part} of a record to {topic}: {reason}")]
    Serialization {
        topic: String,
        part: &'static str,
        reason: String,
    },
    #[error("task {task} was fenced or lost: {reason}")]
    TaskMigrated { task: String, reason: String },
    #[error("the application is not running")]
    NotRunning,
}

pub type Result<T, E = StreamsError> = std::result::Result<T, E>;

/// Why bytes could not be turned into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

impl SerdeError {
    pub fn new(reason: impl std::fmt::Display) -> Self {
        SerdeError(reason.to_string())
    }
}

pub(crate) fn store_err(store: &str, e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Store {
        store: store.to_owned(),
        reason: e.to_string(),
    }
}
