//! `strom-streams`: stream processing in the model of Kafka Streams, as a Rust library on
//! `strom-client`. A [`StreamsBuilder`] describes a topology with the DSL (streams, tables,
//! grouping, aggregation, windows, suppression); [`KafkaStreams`] runs it: the application
//! id is a consumer group, each input partition is a task, state lives in stores backed by
//! compacted changelog topics, and `exactly_once_v2` commits each thread's output, state
//! changes and offsets in one transaction.

mod builder;
mod config;
mod context;
mod error;
mod fk_join;
mod global;
mod grouped;
mod grouped_table;
mod internal_topics;
mod join;
mod kstream;
mod ktable;
mod node;
mod processor;
mod query;
mod registry;
mod runtime;
mod serde;
mod session;
mod sliding;
mod source;
mod standby;
mod store;
mod stream_join;
mod task;
mod topology;
mod util;

pub use builder::{Materialized, StreamsBuilder};
pub use config::{ProcessingGuarantee, StreamsConfig};
pub use context::{Ctx, DeserializationHandler, Record, StoreHandle, TaskId};
pub use error::{Result, SerdeError, StreamsError};
pub use global::GlobalKTable;
pub use grouped::{KGroupedStream, TimeWindowedKStream, TimeWindows};
pub use grouped_table::KGroupedTable;
pub use kstream::{KStream, Partitioner};
pub use ktable::{Change, KTable};
pub use processor::{Processor, ProcessorContext, PunctuationType};
pub use query::ReadOnlyStore;
pub use registry::{Avro, AvroRecord, JsonSchema, JsonSchemaRecord, SchemaRegistry};
pub use runtime::{KafkaStreams, Metrics};
pub use serde::{Json, Serde, SerdeContext, Windowed};
pub use session::{SessionWindowedKStream, SessionWindows};
pub use sliding::{SlidingWindowedKStream, SlidingWindows};
pub use source::TimestampExtractor;
pub use store::{KvBackend, MemoryStore, PersistentStore, StoreKind};
pub use stream_join::JoinWindows;
pub use topology::{StoreDef, Subtopology, Topology};
