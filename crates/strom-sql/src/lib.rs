//! Strom SQL: continuous SQL over Strom topics in ksqlDB's language, planned onto Strom
//! Streams, with ksqlDB's REST API (see docs/design/2026-12-05-sql.md).

pub mod ast;
pub mod avro;
pub mod engine;
pub mod expr;
pub mod format;
pub mod parser;
pub mod server;
pub mod shell;
pub mod time;
pub mod types;

/// An error for the client: a parse error (with `line L:C`), a statement that cannot run,
/// or a failure of the broker underneath.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Statement(String),
    #[error("{0}")]
    Server(String),
}

impl SqlError {
    pub fn parse(m: impl Into<String>) -> SqlError {
        SqlError::Parse(m.into())
    }
    pub fn stmt(m: impl Into<String>) -> SqlError {
        SqlError::Statement(m.into())
    }
    pub fn server(m: impl std::fmt::Display) -> SqlError {
        SqlError::Server(m.to_string())
    }
}

pub type Result<T> = std::result::Result<T, SqlError>;
