//! The Connect error type and the one place that maps each error to the HTTP status and
//! `error_code` of Kafka Connect's REST API (`{"error_code": 404, "message": ...}`).

/// Everything a Connect operation can fail with. Each variant is a domain fact; `status`
/// gives the HTTP status Kafka Connect answers with, and `Display` the message clients see.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    #[error("Connector {0} not found")]
    ConnectorNotFound(String),
    /// The status of a task that does not exist (or of a connector that does not).
    #[error("No status found for task {connector}-{task}")]
    TaskStatusNotFound { connector: String, task: i32 },
    /// A task to restart that does not exist.
    #[error("Unknown task: {connector}-{task}")]
    UnknownTask { connector: String, task: i32 },
    #[error("Connector {0} already exists")]
    ConnectorExists(String),
    /// A connector configuration failed validation (the message lists the fields).
    #[error("{0}")]
    InvalidConfig(String),
    /// A request body or parameter that is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// A `connector.class` no plugin answers to (Kafka answers 400).
    #[error("Failed to find any class that implements Connector and which name matches {0}")]
    PluginNotFound(String),
    /// `/connector-plugins/{name}/config` for a plugin that does not exist.
    #[error("Unknown plugin {0}.")]
    UnknownPlugin(String),
    /// A worker property file or a connector property file is missing or malformed.
    #[error("{0}")]
    WorkerConfig(String),
    /// The Kafka cluster refused or could not serve a request.
    #[error("Kafka error: {0}")]
    Kafka(String),
    /// A file or other local resource failed.
    #[error("I/O error: {0}")]
    Io(String),
    /// A record could not be converted, transformed or delivered.
    #[error("{0}")]
    Data(String),
    /// A connector or task failed at run time.
    #[error("{0}")]
    Task(String),
    /// A temporary failure: the runtime tries again (Kafka's `RetriableException`); a sink
    /// task's `put` returning it gets the same records again after a back-off.
    #[error("{0}")]
    Retriable(String),
    /// A sink task could not write these records, (topic, partition, offset) each, and wrote
    /// the others of the batch: the runtime's error policy takes each (Kafka's
    /// `ErrantRecordReporter`: the dead-letter queue with `errors.tolerance=all`).
    #[error("{message}")]
    Errant {
        records: Vec<(String, i32, i64)>,
        message: String,
    },
    #[error("HTTP 404 Not Found")]
    NoSuchEndpoint,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
}

pub type Result<T, E = ConnectError> = std::result::Result<T, E>;

impl ConnectError {
    /// The HTTP status of this error in Kafka Connect's REST API (also its `error_code`).
    pub fn status(&self) -> u16 {
        match self {
            ConnectError::ConnectorNotFound(_)
            | ConnectError::TaskStatusNotFound { .. }
            | ConnectError::UnknownTask { .. }
            | ConnectError::UnknownPlugin(_)
            | ConnectError::NoSuchEndpoint => 404,
            ConnectError::ConnectorExists(_) => 409,
            ConnectError::InvalidConfig(_)
            | ConnectError::BadRequest(_)
            | ConnectError::PluginNotFound(_)
            | ConnectError::WorkerConfig(_)
            | ConnectError::Data(_) => 400,
            ConnectError::MethodNotAllowed => 405,
            ConnectError::Kafka(_)
            | ConnectError::Io(_)
            | ConnectError::Task(_)
            | ConnectError::Errant { .. }
            | ConnectError::Retriable(_) => 500,
        }
    }
}

impl From<strom_client::Error> for ConnectError {
    fn from(e: strom_client::Error) -> Self {
        ConnectError::Kafka(e.to_string())
    }
}

impl From<std::io::Error> for ConnectError {
    fn from(e: std::io::Error) -> Self {
        ConnectError::Io(e.to_string())
    }
}
