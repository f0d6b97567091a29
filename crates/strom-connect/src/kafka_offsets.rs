//! Source offsets in a compacted topic in Kafka Connect's own format (its
//! `KafkaOffsetBackingStore`, `offset.storage.topic`): key `["<connector>",{<partition>}]`,
//! value the offset object, both JSON without schemas; a null value removes the offset. The
//! same format means offsets written by Kafka Connect are read here and the other way round.
//! This is the store distributed mode will use; the codec is pure (no I/O).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition, LATEST,
};

use crate::connector::BoxFuture;
use crate::data::JsonMap;
use crate::error::{ConnectError, Result};
use crate::offsets::{apply_offset, connector_offsets, lock_entries, Entries, OffsetStore};

/// How long opening the store may take to read the topic to its end.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The record key of a connector's source partition.
pub fn encode_key(connector: &str, partition: &JsonMap) -> Vec<u8> {
    json!([connector, partition]).to_string().into_bytes()
}

/// A record of the offsets topic: (connector, partition, offset or `None` for a removal).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<(String, JsonMap, Option<JsonMap>)> {
    let bad = |what: &str| ConnectError::Data(format!("offsets topic record with {what}"));
    let k: J = serde_json::from_slice(key).map_err(|_| bad("a key that is not JSON"))?;
    let (connector, partition) = match k.as_array().map(Vec::as_slice) {
        Some([J::String(c), J::Object(p)]) => (c.clone(), p.clone()),
        _ => return Err(bad("a key that is not [connector, partition]")),
    };
    let offset = match value {
        None => None,
        Some(v) => match serde_json::from_slice::<J>(v) {
            Ok(J::Object(o)) => Some(o),
            Ok(J::Null) => None,
            _ => return Err(bad("a value that is not a JSON object")),
        },
    };
    Ok((connector, partition, offset))
}

/// Source offsets kept in a compacted topic, with an in-memory copy.
pub struct KafkaOffsetStore {
    topic: String,
    producer: Producer,
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for KafkaOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOffsetStore")
            .field("topic", &self.topic)
            .finish()
    }
}

impl KafkaOffsetStore {
    /// Opens the store: creates the topic if missing (compacted, `partitions`,
    /// `replication_factor`, as `offset.storage.partitions` / `.replication.factor`), then
    /// reads it to its end.
    pub async fn open(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<KafkaOffsetStore> {
        let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
        let exists = admin
            .describe_topics(&[topic.to_owned()])
            .await
            .is_ok_and(|t| t.first().is_some_and(|t| !t.partitions.is_empty()));
        if !exists {
            let mut nt = NewTopic::new(topic, partitions, replication_factor);
            nt.configs.push(("cleanup.policy".into(), "compact".into()));
            for (_, r) in admin.create_topics(&[nt], false).await? {
                match r {
                    Ok(()) => {}
                    Err(e) if e.to_string().contains("TOPIC_ALREADY_EXISTS") => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let entries = Self::load(bootstrap, topic, &admin).await?;
        Ok(KafkaOffsetStore {
            topic: topic.to_owned(),
            producer: Producer::new(ProducerConfig::new(bootstrap)).await?,
            entries: Mutex::new(entries),
        })
    }

    /// Reads every partition of the topic from the start to its current end.
    async fn load(bootstrap: &str, topic: &str, admin: &Admin) -> Result<Entries> {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        let n = loop {
            match admin.describe_topics(&[topic.to_owned()]).await {
                Ok(t)
                    if t.first()
                        .is_some_and(|t| t.partitions.iter().all(|p| p.leader >= 0)) =>
                {
                    break t[0].partitions.len() as i32
                }
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => {
                    return Err(ConnectError::Kafka(format!(
                        "offsets topic {topic} has no leaders"
                    )))
                }
            }
        };
        let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
        let specs: Vec<(TopicPartition, i64)> = tps.iter().map(|tp| (tp.clone(), LATEST)).collect();
        let ends = admin.client().list_offsets(&specs, 0).await?;
        let mut cc = ConsumerConfig::new(bootstrap);
        cc.set("auto.offset.reset", "earliest")?;
        cc.set("fetch.max.wait.ms", "100")?;
        let mut consumer = Consumer::new(cc).await?;
        consumer.assign(&tps);
        let mut entries = Entries::new();
        let behind = |c: &Consumer| {
            tps.iter().any(|tp| {
                let end = ends.get(tp).map(|e| e.0).unwrap_or(0);
                end > 0 && c.position(tp).unwrap_or(0) < end
            })
        };
        while behind(&consumer) {
            if Instant::now() > deadline {
                return Err(ConnectError::Kafka(format!(
                    "could not read offsets topic {topic} to its end within {LOAD_TIMEOUT:?}"
                )));
            }
            for r in consumer.poll(Duration::from_millis(200)).await? {
                let Some(key) = r.key.as_deref() else {
                    continue;
                };
                match decode(key, r.value.as_deref()) {
                    Ok((c, p, o)) => apply_offset(&mut entries, &c, p, o),
                    // Kafka Connect skips records it cannot read, too.
                    Err(e) => {
                        tracing::warn!("skipping {topic}-{} offset {}: {e}", r.partition, r.offset)
                    }
                }
            }
        }
        let _ = consumer.close().await;
        Ok(entries)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        lock_entries(&self.entries)
    }
}

impl OffsetStore for KafkaOffsetStore {
    fn list(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        connector_offsets(&self.lock(), connector)
    }

    fn put<'a>(
        &'a self,
        connector: &'a str,
        offsets: Vec<(JsonMap, Option<JsonMap>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut acks = Vec::with_capacity(offsets.len());
            for (p, o) in &offsets {
                let mut rec = ProducerRecord::new(self.topic.clone()).key(encode_key(connector, p));
                if let Some(o) = o {
                    rec = rec.value(J::Object(o.clone()).to_string().into_bytes());
                }
                acks.push(self.producer.send(rec).await?);
            }
            for a in acks {
                a.await?;
            }
            // Only offsets Kafka acknowledged are visible to readers.
            let mut entries = self.lock();
            for (p, o) in offsets {
                apply_offset(&mut entries, connector, p, o);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_connects_key_and_value_format() {
        let p = json!({"filename": "/data/in.txt"})
            .as_object()
            .cloned()
            .unwrap();
        let key = encode_key("file-source", &p);
        assert_eq!(key, br#"["file-source",{"filename":"/data/in.txt"}]"#);
        let (c, p2, o) = decode(&key, Some(br#"{"position":42}"#)).unwrap();
        assert_eq!(
            (c.as_str(), p2, o),
            (
                "file-source",
                p,
                Some(json!({"position": 42}).as_object().cloned().unwrap())
            )
        );
        assert_eq!(decode(&key, None).unwrap().2, None);
        assert!(decode(b"{}", None).is_err());
        assert!(decode(br#"["c",{}]"#, Some(b"7")).is_err());
    }
}
