//! The REST proxy's errors and the one place that maps them to an HTTP status and Confluent's
//! v3 body `{"error_code": ..., "message": ...}` (codes as Confluent's REST Proxy uses them:
//! 40403 for an unknown topic or partition, 40002 for a refused request, 5000x for Kafka).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use strom_client::{Error as ClientError, KafkaCode};

#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    #[error("HTTP 404 Not Found")]
    NoSuchEndpoint,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// A browser request from another site (its `Origin` is not this server).
    #[error("Cross-origin request refused: Origin {0} does not match this server")]
    CrossOrigin(String),
    #[error("Cluster {0} cannot be found.")]
    ClusterNotFound(String),
    #[error("This server does not host this topic-partition.")]
    TopicNotFound(String),
    #[error("This server does not host this topic-partition.")]
    PartitionNotFound { topic: String, partition: i32 },
    #[error("Broker {0} cannot be found.")]
    BrokerNotFound(i32),
    #[error("Replica {broker} of partition {partition} of topic {topic} cannot be found.")]
    ReplicaNotFound {
        topic: String,
        partition: i32,
        broker: i32,
    },
    #[error("Config {0} cannot be found.")]
    ConfigNotFound(String),
    #[error("Consumer group {0} cannot be found.")]
    GroupNotFound(String),
    #[error("Consumer {consumer} cannot be found in consumer group {group}.")]
    ConsumerNotFound { group: String, consumer: String },
    #[error("The request body is larger than {0} bytes; stream the records instead (Transfer-Encoding: chunked)")]
    PayloadTooLarge(usize),
    /// The body or a parameter is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// Kafka refused the request (topic exists, invalid partitions, ...).
    #[error("{0}")]
    KafkaRefused(String),
    /// A Kafka error that may pass if retried.
    #[error("{0}")]
    KafkaRetriable(String),
    #[error("{0}")]
    Kafka(String),
    /// A service the console reads for a page is not configured (its setting named).
    #[error("{0}")]
    NotConfigured(String),
    /// The Schema Registry or Connect answered with an error: its status, code and message.
    #[error("{2}")]
    Upstream(StatusCode, u32, String),
}

impl RestError {
    /// HTTP status and v3 `error_code`. Exhaustive: a new variant needs a code.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        use RestError::*;
        match self {
            NoSuchEndpoint => (StatusCode::NOT_FOUND, 404),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            CrossOrigin(_) => (StatusCode::FORBIDDEN, 403),
            ClusterNotFound(_) | BrokerNotFound(_) | ConfigNotFound(_) | ReplicaNotFound { .. } => {
                (StatusCode::NOT_FOUND, 404)
            }
            GroupNotFound(_) | ConsumerNotFound { .. } => (StatusCode::NOT_FOUND, 404),
            TopicNotFound(_) | PartitionNotFound { .. } => (StatusCode::NOT_FOUND, 40403),
            BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 413),
            KafkaRefused(_) => (StatusCode::BAD_REQUEST, 40002),
            KafkaRetriable(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50003),
            Kafka(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
            NotConfigured(_) => (StatusCode::NOT_FOUND, 404),
            Upstream(status, code, _) => (*status, *code),
        }
    }

    /// The v3 error body.
    pub fn body(&self) -> Value {
        json!({ "error_code": self.status_and_code().1, "message": self.to_string() })
    }

    /// A client error about `topic` (partition `partition` when given).
    pub fn from_client(e: ClientError, topic: Option<&str>, partition: Option<i32>) -> RestError {
        match e.code() {
            Some(KafkaCode::UnknownTopicOrPartition) => match (topic, partition) {
                (Some(t), Some(p)) => RestError::PartitionNotFound {
                    topic: t.to_owned(),
                    partition: p,
                },
                (t, _) => RestError::TopicNotFound(t.unwrap_or_default().to_owned()),
            },
            Some(
                KafkaCode::TopicAlreadyExists
                | KafkaCode::InvalidPartitions
                | KafkaCode::InvalidReplicationFactor
                | KafkaCode::InvalidReplicaAssignment
                | KafkaCode::InvalidTopicException
                | KafkaCode::InvalidConfig
                | KafkaCode::InvalidRequest
                | KafkaCode::PolicyViolation
                | KafkaCode::RecordListTooLarge
                | KafkaCode::MessageTooLarge
                | KafkaCode::InvalidRecord
                | KafkaCode::InvalidTimestamp
                | KafkaCode::CorruptMessage,
            ) => RestError::KafkaRefused(e.to_string()),
            _ if matches!(
                e,
                ClientError::RecordTooLarge { .. } | ClientError::InvalidArgument(_)
            ) =>
            {
                RestError::KafkaRefused(e.to_string())
            }
            _ if e.is_retriable() => RestError::KafkaRetriable(e.to_string()),
            _ => RestError::Kafka(e.to_string()),
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.status_and_code().0, Json(self.body())).into_response()
    }
}

pub type RestResult<T> = Result<T, RestError>;
