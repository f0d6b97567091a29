//! A stream task: the nodes of one sub-topology built for one partition, its stores, the
//! records waiting per input partition, and the offsets it has processed. Records are
//! processed in timestamp order across the task's partitions (the smallest head first),
//! advancing stream time as Kafka's `PartitionGroup` does (without `max.task.idle.ms`).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use strom_client::{ConsumerRecord, TopicPartition};

use crate::context::{Ctx, DeserializationHandler, OutRecord, StoreHandle, TaskId};
use crate::error::{store_err, Result};
use crate::store;
use crate::topology::{build_task, store_handles, BuiltTask, Topology};

pub(crate) struct Task {
    pub(crate) ctx: Ctx,
    built: BuiltTask,
    pub(crate) stores: BTreeMap<String, StoreHandle>,
    queues: BTreeMap<TopicPartition, VecDeque<ConsumerRecord>>,
    /// Next offset to commit per input partition (last processed + 1).
    pub(crate) consumed: BTreeMap<TopicPartition, i64>,
    pub(crate) dir: PathBuf,
    pub(crate) processed: u64,
    /// Stream time at the last stream-time punctuation.
    punctuated_at: i64,
}

impl Task {
    /// Opens the task's stores in `dir` (restoring is the caller's job) and builds its nodes.
    pub(crate) fn open(
        topology: &Topology,
        app_id: &str,
        id: TaskId,
        dir: &Path,
        on_bad_record: DeserializationHandler,
        registry: Option<std::sync::Arc<crate::registry::SchemaRegistry>>,
    ) -> Result<Task> {
        std::fs::create_dir_all(dir).map_err(|e| store_err(&id.to_string(), e))?;
        let stores = store_handles(topology, app_id, id, &mut |def| {
            store::open(def.kind, dir, &def.name)
        })?;
        let built = build_task(topology, app_id, id, &stores)?;
        Ok(Task {
            ctx: Ctx::new(id, on_bad_record, registry),
            built,
            stores,
            queues: BTreeMap::new(),
            consumed: BTreeMap::new(),
            dir: dir.to_owned(),
            processed: 0,
            punctuated_at: -1,
        })
    }

    pub(crate) fn add(&mut self, rec: ConsumerRecord) {
        let tp = TopicPartition::new(rec.topic.clone(), rec.partition);
        self.queues.entry(tp).or_default().push_back(rec);
    }

    /// Drops buffered records of partitions (revoked, or re-read after a reset).
    pub(crate) fn clear_buffers(&mut self) {
        self.queues.clear();
    }

    /// Processes one record (the one with the smallest timestamp at the head of a queue);
    /// `false` when nothing is buffered.
    pub(crate) fn process_one(&mut self) -> Result<bool> {
        let Some(tp) = self
            .queues
            .iter()
            .filter_map(|(tp, q)| q.front().map(|r| (r.timestamp, tp)))
            .min()
            .map(|(_, tp)| tp.clone())
        else {
            return Ok(false);
        };
        let Some(rec) = self.queues.get_mut(&tp).and_then(VecDeque::pop_front) else {
            return Ok(false);
        };
        self.ctx.topic.clone_from(&rec.topic);
        self.ctx.partition = rec.partition;
        self.ctx.offset = rec.offset;
        self.ctx.headers.clone_from(&rec.headers);
        let before = self.ctx.stream_time;
        if let Some(source) = self.built.sources.get(&rec.topic).cloned() {
            source.process(&mut self.ctx, &rec)?;
        }
        self.consumed.insert(tp, rec.offset + 1);
        self.processed += 1;
        if self.ctx.stream_time > before && self.ctx.stream_time > self.punctuated_at {
            self.punctuated_at = self.ctx.stream_time;
            for p in self.built.punctuators.clone() {
                p.on_stream_time(&mut self.ctx)?;
            }
        }
        Ok(true)
    }

    pub(crate) fn punctuate_wall_clock(&mut self, now_ms: i64) -> Result<()> {
        for p in self.built.punctuators.clone() {
            p.on_wall_clock(&mut self.ctx, now_ms)?;
        }
        Ok(())
    }

    pub(crate) fn take_output(&mut self) -> Vec<OutRecord> {
        std::mem::take(&mut self.ctx.out)
    }

    pub(crate) fn stream_time(&self) -> i64 {
        self.ctx.stream_time
    }

    /// Resumes at the stream time a checkpoint kept: windows that closed before the restart
    /// stay closed (late records are dropped, suppressed results are not emitted twice).
    pub(crate) fn resume_stream_time(&mut self, t: i64) {
        self.ctx.stream_time = self.ctx.stream_time.max(t);
        self.punctuated_at = self.punctuated_at.max(t);
    }

    pub(crate) fn flush_stores(&self, durable: bool) -> Result<()> {
        for s in self.stores.values() {
            store::lock(&s.store).flush(durable)?;
        }
        Ok(())
    }
}

/// The line of a checkpoint that holds the task's stream time rather than a store's offset
/// (no store can be named so: a store name is part of its changelog topic's name, where `#`
/// is not a legal character).
pub(crate) const STREAM_TIME: &str = "#stream-time";

/// The checkpoint file of a task: `store changelog-offset` lines, and the task's stream time
/// (`#stream-time ms`), written on a clean close and removed when the task opens (so after
/// a crash the local state is rebuilt).
pub(crate) fn read_checkpoint(dir: &Path) -> BTreeMap<String, i64> {
    let Ok(text) = std::fs::read_to_string(dir.join(".checkpoint")) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|l| {
            let (s, o) = l.rsplit_once(' ')?;
            Some((s.to_owned(), o.parse().ok()?))
        })
        .collect()
}

pub(crate) fn write_checkpoint(dir: &Path, offsets: &BTreeMap<String, i64>) -> std::io::Result<()> {
    let text: String = offsets.iter().map(|(s, o)| format!("{s} {o}\n")).collect();
    let tmp = dir.join(".checkpoint.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(".checkpoint"))
}

pub(crate) fn remove_checkpoint(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(".checkpoint"));
}
