//! Source nodes: turn a consumed record into a typed one (key and value deserialized, the
//! timestamp from the timestamp extractor), or hand an unreadable record to the
//! deserialization handler.

use std::sync::Arc;

use strom_client::ConsumerRecord;

use crate::context::{Ctx, DeserializationHandler, Record};
use crate::error::{Result, SerdeError, StreamsError};
use crate::node::Downstream;
use crate::serde::{Serde, SerdeContext};

/// A node that takes records straight from a topic.
pub(crate) trait RawSource {
    fn process(&self, ctx: &mut Ctx, rec: &ConsumerRecord) -> Result<()>;
}

/// Picks a record's event time (Kafka's `TimestampExtractor`); the default takes the
/// record's own timestamp.
pub type TimestampExtractor = Arc<dyn Fn(&ConsumerRecord) -> i64 + Send + Sync>;

pub(crate) enum SourceOut<K, V> {
    /// A stream: records with a null value are skipped (they carry nothing to transform).
    Stream(Downstream<K, V>),
    /// A table: a null value is a delete.
    Table(Downstream<K, Option<V>>),
}

pub(crate) struct SourceNode<K, V> {
    pub(crate) out: SourceOut<K, V>,
    pub(crate) extractor: Option<TimestampExtractor>,
}

fn read<T: Serde>(
    sc: &SerdeContext<'_>,
    data: Option<&[u8]>,
) -> std::result::Result<Option<T>, SerdeError> {
    match data {
        Some(d) => T::deserialize_for(sc, d).map(Some),
        None => Ok(T::from_null()),
    }
}

impl<K: Serde, V: Serde> SourceNode<K, V> {
    fn bad(
        &self,
        ctx: &mut Ctx,
        rec: &ConsumerRecord,
        part: &'static str,
        e: SerdeError,
    ) -> Result<()> {
        match ctx.on_bad_record {
            DeserializationHandler::LogAndContinue => {
                tracing::warn!(
                    topic = %rec.topic, partition = rec.partition, offset = rec.offset,
                    "skipping a record whose {part} cannot be deserialized: {e}"
                );
                ctx.skipped += 1;
                Ok(())
            }
            DeserializationHandler::LogAndFail => Err(StreamsError::Deserialization {
                topic: rec.topic.clone(),
                partition: rec.partition,
                offset: rec.offset,
                part,
                reason: e.0,
            }),
        }
    }
}

impl<K: Serde, V: Serde> RawSource for SourceNode<K, V> {
    fn process(&self, ctx: &mut Ctx, rec: &ConsumerRecord) -> Result<()> {
        let key = match read::<K>(&ctx.serde_context(&rec.topic, true), rec.key.as_deref()) {
            Ok(Some(k)) => k,
            Ok(None) => return self.bad(ctx, rec, "key", SerdeError::new("null key")),
            Err(e) => return self.bad(ctx, rec, "key", e),
        };
        let timestamp = match &self.extractor {
            Some(f) => f(rec),
            None => rec.timestamp,
        };
        if timestamp < 0 {
            // Kafka's extractors refuse negative timestamps: no event time, no place in time.
            tracing::warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset,
                "skipping a record with negative timestamp {timestamp}");
            ctx.skipped += 1;
            return Ok(());
        }
        ctx.timestamp = timestamp;
        ctx.stream_time = ctx.stream_time.max(timestamp);
        match &self.out {
            SourceOut::Stream(down) => {
                let Some(data) = rec.value.as_deref() else {
                    return Ok(());
                };
                match V::deserialize_for(&ctx.serde_context(&rec.topic, false), data) {
                    Ok(value) => down.forward(
                        ctx,
                        Record {
                            key,
                            value,
                            timestamp,
                        },
                    ),
                    Err(e) => self.bad(ctx, rec, "value", e),
                }
            }
            SourceOut::Table(down) => {
                let value = match rec.value.as_deref() {
                    None => None,
                    Some(d) => match V::deserialize_for(&ctx.serde_context(&rec.topic, false), d) {
                        Ok(v) => Some(v),
                        Err(e) => return self.bad(ctx, rec, "value", e),
                    },
                };
                down.forward(
                    ctx,
                    Record {
                        key,
                        value,
                        timestamp,
                    },
                )
            }
        }
    }
}
