//! Strom's Kafka wire layer: framing, request/response headers, record-batch views.
//! Pure functions over bytes: no sockets, no tokio (STYLE.md #2). Message bodies use the
//! `kafka-protocol` crate's codecs; the record-batch hot path stays raw bytes.

pub mod frame;
pub mod header;
pub mod produce_request;

pub use kafka_protocol;
pub use kafka_protocol::error::ResponseError as ErrorCode;

pub mod record_batch;
pub mod sasl_client;
pub use record_batch::{BatchError, BatchSplitter, RecordBatchHeader, TimestampType};
pub mod compression;
