//! The `_schemas` topic as the registry's log: one compacted partition, written by the
//! primary and tailed (read_committed) by every instance, which applies each record to its
//! [`State`]. A write completes once this instance has read it back, so a request that wrote
//! sees its own write.
//!
//! The primary writes through a transactional producer whose `transactional.id` is the same
//! for every instance of the registry group: a new primary's InitProducerId fences the old
//! one, so a primary that lost its role but does not know it yet (a zombie) cannot append
//! another id behind the new primary's back; its open transaction is aborted, and readers
//! never see it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition, LATEST,
};
use tokio::sync::watch;

use crate::error::{RegistryError, Result};
use crate::model::StoreRecord;
use crate::state::State;

/// How long one poll of the tail waits: short, because a write waits for the tail to pass
/// its record (under read_committed a poll can end empty when only the commit marker came).
const TAIL_POLL: Duration = Duration::from_millis(20);

/// How long a write or a read-to-end waits for this instance to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Store {
    topic: String,
    /// The topic id seen at start: a deleted (or deleted and re-created) topic is refused
    /// for writes, so nothing registered is lost or renumbered behind the registry's back.
    topic_id: String,
    admin: Admin,
    bootstrap: String,
    transactional_id: String,
    /// The primary's transactional producer, made on its first write; dropped when fenced.
    writer: tokio::sync::Mutex<Option<Producer>>,
    /// The next offset the reader will apply (all offsets below it are in the state).
    applied: watch::Receiver<i64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn storage(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

impl Store {
    /// Creates the topic if it is missing (compacted, one partition, replication up to 3),
    /// starts tailing it into `state` and returns once everything already in it is applied.
    pub async fn open(
        bootstrap: &str,
        topic: &str,
        transactional_id: &str,
        state: Arc<RwLock<State>>,
    ) -> Result<Store> {
        let admin = Admin::new(ClientConfig::new(bootstrap))
            .await
            .map_err(|e| storage(format!("cannot reach the cluster at {bootstrap}: {e}")))?;
        ensure_topic(&admin, topic).await?;
        let topic_id = current_topic_id(&admin, topic).await?;
        let mut cc = ConsumerConfig::new(bootstrap);
        cc.set("auto.offset.reset", "earliest").map_err(storage)?;
        cc.set("fetch.max.wait.ms", "100").map_err(storage)?;
        cc.set("isolation.level", "read_committed")
            .map_err(storage)?;
        cc.set("client.id", "schema-registry-reader")
            .map_err(storage)?;
        let mut consumer = Consumer::new(cc).await.map_err(storage)?;
        consumer.assign(&[TopicPartition::new(topic, 0)]);
        let (tx, applied) = watch::channel(0);
        let reader = tokio::spawn(tail(consumer, state, tx));
        let store = Store {
            topic: topic.to_owned(),
            topic_id,
            admin,
            bootstrap: bootstrap.to_owned(),
            transactional_id: transactional_id.to_owned(),
            writer: tokio::sync::Mutex::new(None),
            applied,
            reader,
        };
        store.read_to_end().await?;
        Ok(store)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits until every record now in the topic is applied (what a new primary does before
    /// it hands out ids).
    pub async fn read_to_end(&self) -> Result<()> {
        let now = current_topic_id(&self.admin, &self.topic).await?;
        if now != self.topic_id {
            return Err(storage(format!(
                "the storage topic {} was deleted and re-created (topic id {} is now {now}); writes are refused so that no schema is lost or renumbered: restore the topic or restart the registry on a cluster that has it",
                self.topic, self.topic_id
            )));
        }
        let tp = TopicPartition::new(&self.topic, 0);
        // The last stable offset: a zombie's open transaction holds it back until the
        // coordinator aborts it, and nothing past it is readable anyway.
        let ends = self
            .admin
            .client()
            .list_offsets(&[(tp.clone(), LATEST)], 1)
            .await
            .map_err(|e| storage(format!("cannot read the end of {}: {e}", self.topic)))?;
        let end = ends.get(&tp).map(|(o, _)| *o).unwrap_or(0);
        self.wait_applied(end).await
    }

    async fn wait_applied(&self, offset: i64) -> Result<()> {
        let mut rx = self.applied.clone();
        tokio::time::timeout(CATCH_UP_TIMEOUT, rx.wait_for(|a| *a >= offset))
            .await
            .map_err(|_| {
                RegistryError::Timeout(format!(
                    "the registry did not read {} up to offset {offset} within {} s",
                    self.topic,
                    CATCH_UP_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|_| storage("the _schemas reader stopped"))?;
        Ok(())
    }

    /// Appends `record` in a transaction of its own and waits until this instance has
    /// applied it.
    pub async fn append(&self, record: StoreRecord) -> Result<()> {
        let (key, value) = record.encode();
        let mut rec = ProducerRecord::new(&self.topic).partition(0).key(key);
        rec.value = value.map(Into::into);
        let mut writer = self.writer.lock().await;
        if writer.is_none() {
            *writer = Some(self.new_writer().await?);
        }
        let Some(producer) = writer.as_ref() else {
            unreachable!("the writer was just set");
        };
        match write_one(producer, rec).await {
            Ok(offset) => {
                drop(writer);
                self.wait_applied(offset + 1).await
            }
            Err(e) => {
                // Fenced (another instance is primary now) or broken: start over next time.
                if let Some(p) = writer.take() {
                    let _ = p.abort_transaction().await;
                    p.close().await;
                }
                Err(storage(format!("cannot write to {}: {e}", self.topic)))
            }
        }
    }

    async fn new_writer(&self) -> Result<Producer> {
        let mut pc = ProducerConfig::new(&self.bootstrap);
        for (k, v) in [
            ("acks", "all"),
            ("linger.ms", "0"),
            ("client.id", "schema-registry"),
            ("transactional.id", self.transactional_id.as_str()),
        ] {
            pc.set(k, v).map_err(storage)?;
        }
        let producer = Producer::new(pc).await.map_err(storage)?;
        producer
            .init_transactions()
            .await
            .map_err(|e| storage(format!("cannot become the writer of {}: {e}", self.topic)))?;
        Ok(producer)
    }
}

/// One record in one transaction; its offset once committed.
async fn write_one(producer: &Producer, rec: ProducerRecord) -> strom_client::Result<i64> {
    producer.begin_transaction()?;
    let delivery = producer.send(rec).await?;
    producer.commit_transaction().await?;
    Ok(delivery.await?.offset)
}

/// The id of the storage topic now; an error naming the topic when it is gone.
async fn current_topic_id(admin: &Admin, topic: &str) -> Result<String> {
    let topics = admin
        .describe_topics(&[topic.to_owned()])
        .await
        .map_err(|e| {
            storage(format!(
                "the storage topic {topic} cannot be described (was it deleted?): {e}"
            ))
        })?;
    topics
        .into_iter()
        .find(|t| t.error.is_none() && !t.partitions.is_empty())
        .map(|t| t.topic_id)
        .ok_or_else(|| storage(format!("the storage topic {topic} is missing")))
}

async fn ensure_topic(admin: &Admin, topic: &str) -> Result<()> {
    match admin.describe_topics(&[topic.to_owned()]).await {
        Ok(existing)
            if existing
                .iter()
                .any(|t| t.error.is_none() && !t.partitions.is_empty()) =>
        {
            return Ok(())
        }
        Ok(_) => {}
        Err(e) if e.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION") => {}
        Err(e) => return Err(storage(format!("cannot describe {topic}: {e}"))),
    }
    let brokers = admin
        .describe_cluster()
        .await
        .map_err(storage)?
        .brokers
        .len();
    let replication = brokers.clamp(1, 3) as i16;
    let mut new = NewTopic::new(topic, 1, replication);
    new.configs
        .push(("cleanup.policy".into(), "compact".into()));
    let results = admin.create_topics(&[new], false).await.map_err(storage)?;
    for (name, r) in results {
        if let Err(e) = r {
            // Another instance may have created it first.
            if !e.to_string().contains("TOPIC_ALREADY_EXISTS") {
                return Err(storage(format!("cannot create {name}: {e}")));
            }
        }
    }
    Ok(())
}

/// Applies every record of the topic, in order, for the life of the store.
async fn tail(mut consumer: Consumer, state: Arc<RwLock<State>>, applied: watch::Sender<i64>) {
    let tp = consumer.assignment().into_iter().next();
    loop {
        match consumer.poll(TAIL_POLL).await {
            Ok(records) => {
                if !records.is_empty() {
                    let mut st = state.write().unwrap_or_else(|p| p.into_inner());
                    for r in records {
                        let Some(key) = r.key.as_deref() else {
                            tracing::warn!(
                                offset = r.offset,
                                "_schemas record without key skipped"
                            );
                            continue;
                        };
                        match StoreRecord::decode(key, r.value.as_deref()) {
                            Ok(rec) => st.apply(rec),
                            Err(e) => tracing::warn!(offset = r.offset, "{e}; skipped"),
                        }
                    }
                }
                // The position, not the last record's offset + 1: compaction leaves gaps.
                if let Some(pos) = tp.as_ref().and_then(|tp| consumer.position(tp)) {
                    if pos > *applied.borrow() {
                        applied.send_replace(pos);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading _schemas failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
