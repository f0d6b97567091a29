//! The registry's error type, and the one place that maps each error to Confluent Schema
//! Registry's HTTP status and `error_code` (its REST API's documented codes).

use axum::http::StatusCode;

/// Everything a registry request can fail with. Each variant is a domain fact; `status_and_code`
/// gives its HTTP status and Confluent error code, and `Display` the message clients see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted { subject: String, version: i32 },
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: i32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotConfigured(String),
    /// The schema breaks the subject's compatibility level; one message per conflict.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    #[error("Invalid schema {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("Invalid mode. Valid values are READWRITE, READONLY, IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={subject},version={version}}}.")]
    ReferenceExists { subject: String, version: i32 },
    /// The request body is not the JSON the endpoint takes.
    #[error("{0}")]
    MalformedRequest(String),
    #[error("HTTP 404 Not Found")]
    NoSuchEndpoint,
    /// The `_schemas` topic cannot be written or read.
    #[error("Error in the backend data store: {0}")]
    Storage(String),
    #[error("Operation timed out: {0}")]
    Timeout(String),
    #[error("Error while forwarding the request to the primary: {0}")]
    Forward(String),
    #[error("Primary not known: {0}")]
    UnknownPrimary(String),
}

impl RegistryError {
    /// HTTP status and Confluent `error_code`. Exhaustive on purpose: a new variant needs a code.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
            SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
            VersionSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40406),
            VersionNotSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40407),
            SubjectCompatibilityNotConfigured(_) => (StatusCode::NOT_FOUND, 40408),
            SubjectModeNotConfigured(_) => (StatusCode::NOT_FOUND, 40409),
            Incompatible { .. } => (StatusCode::CONFLICT, 409),
            InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            InvalidCompatibilityLevel => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            InvalidMode => (StatusCode::UNPROCESSABLE_ENTITY, 42204),
            OperationNotPermitted(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42205),
            ReferenceExists { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
            MalformedRequest(_) => (StatusCode::BAD_REQUEST, 400),
            NoSuchEndpoint => (StatusCode::NOT_FOUND, 404),
            Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
            Timeout(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50002),
            Forward(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50003),
            UnknownPrimary(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50004),
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
