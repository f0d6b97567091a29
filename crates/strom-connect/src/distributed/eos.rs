//! Exactly-once source tasks (KIP-618, `transaction.boundary=poll`): each poll's records and
//! the source offsets they advance to are written in one transaction of the task's own
//! transactional producer (`<group.id>-<connector>-<task>`), the offsets to the offsets
//! topic. `init_transactions` at start fences a zombie instance of the same task (a worker
//! the group gave up on) and aborts its open transaction; the offsets are then read again
//! (read_committed) so the task resumes exactly after the last committed transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as J;
use strom_client::{Producer, ProducerConfig, ProducerRecord};

use super::store::TopicOffsets;
use crate::connector::{partition_key, SourceTask};
use crate::data::{JsonMap, SourceRecord};
use crate::error::{ConnectError, Result};
use crate::kafka_offsets::encode_key;
use crate::offsets::OffsetStore;
use crate::runner::{prepare_source_record, Pipeline, TaskContext, RETRY_BACKOFF_MIN};
use crate::topic_creation::TopicCreator;
use crate::worker::State;

/// Runs an exactly-once source task until its target state is Stopped.
pub async fn run_source_eos(
    mut ctx: TaskContext,
    mut task: Box<dyn SourceTask>,
    transactional_id: String,
    offsets: Arc<TopicOffsets>,
) {
    if let Err(e) = eos_loop(&mut ctx, task.as_mut(), &transactional_id, &offsets).await {
        ctx.fail(&e);
    }
    task.stop();
}

async fn eos_loop(
    ctx: &mut TaskContext,
    task: &mut dyn SourceTask,
    transactional_id: &str,
    offsets: &TopicOffsets,
) -> Result<()> {
    let pipeline = Pipeline::new(ctx).await?;
    let mut pc = ProducerConfig::new(&ctx.worker.bootstrap_servers);
    for (k, v) in crate::config::with_prefix(&ctx.worker.props, "producer.") {
        pc.set(&k, &v)?;
    }
    pc.set("enable.idempotence", "true")?;
    pc.set("acks", "all")?;
    pc.set("transactional.id", transactional_id)?;
    let producer = Producer::new(pc).await?;
    producer.init_transactions().await?;
    // Fenced: whatever the previous instance committed is in the topic now.
    offsets.tail.read_to_end().await?;
    let mut creator = TopicCreator::from_config(
        &ctx.worker.bootstrap_servers,
        &ctx.worker.props,
        &ctx.connector_config,
    )
    .await?;
    task.start(&ctx.task_config, &offsets.reader(&ctx.connector))?;
    ctx.set_state(State::Running, None);
    let mut poll_backoff = RETRY_BACKOFF_MIN;
    let result = async {
        while ctx.wait_while_paused().await {
            let polled = tokio::select! {
                r = task.poll() => r,
                changed = ctx.target.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => break,
                },
            };
            let batch = match polled {
                Ok(b) => {
                    poll_backoff = RETRY_BACKOFF_MIN;
                    b
                }
                Err(ConnectError::Retriable(why)) => {
                    tracing::warn!("source task poll failed ({why}); polling again");
                    tokio::time::sleep(poll_backoff).await;
                    poll_backoff = pipeline.backoff(poll_backoff);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if batch.is_empty() {
                continue;
            }
            producer.begin_transaction()?;
            let sent = send_in_transaction(
                ctx,
                &pipeline,
                &producer,
                creator.as_mut(),
                batch,
                &offsets.topic,
            )
            .await;
            let committed = match sent {
                Ok(()) => producer.commit_transaction().await.map_err(Into::into),
                Err(e) => Err(e),
            };
            if let Err(e) = committed {
                // Nothing of this poll becomes visible; the next instance starts before it.
                let _ = producer.abort_transaction().await;
                return Err(e);
            }
            task.commit()?;
        }
        Ok::<(), ConnectError>(())
    }
    .await;
    pipeline.errors.close().await;
    let closing = producer.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
    result
}

/// Transforms, converts and sends one poll's records and its last offset per source
/// partition, inside the open transaction.
async fn send_in_transaction(
    ctx: &TaskContext,
    p: &Pipeline,
    producer: &Producer,
    mut creator: Option<&mut TopicCreator>,
    batch: Vec<SourceRecord>,
    offsets_topic: &str,
) -> Result<()> {
    let mut last: BTreeMap<String, (JsonMap, JsonMap)> = BTreeMap::new();
    let mut acks = Vec::with_capacity(batch.len() + 1);
    for sr in batch {
        last.insert(
            partition_key(&sr.source_partition),
            (sr.source_partition, sr.source_offset),
        );
        if let Some(rec) = prepare_source_record(ctx, p, creator.as_deref_mut(), sr.record).await? {
            acks.push(producer.send(rec).await?);
        }
    }
    for (_, (part, off)) in last {
        let rec = ProducerRecord::new(offsets_topic.to_owned())
            .key(encode_key(&ctx.connector, &part))
            .value(J::Object(off).to_string().into_bytes());
        acks.push(producer.send(rec).await?);
    }
    for a in acks {
        a.await?;
    }
    Ok(())
}
