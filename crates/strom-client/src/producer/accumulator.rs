//! Per-partition batching: records are appended to the partition's open batch; a batch closes
//! when it reaches `batch.size`, when `linger.ms` has passed, or on flush. Closed batches wait
//! in sequence order (retries go back in front) until the sender drains them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_protocol::record_batch::builder::{BatchParams, BatchWriter};
use strom_protocol::record_batch::Compression;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::producer::RecordMetadata;
use crate::TopicPartition;

pub(crate) type Reply = oneshot::Sender<Result<RecordMetadata>>;

/// A batch on its way: the writer until it is built, then its bytes (kept for retries, so a
/// retry carries the same sequence numbers).
pub(crate) struct Batch {
    pub(crate) tp: TopicPartition,
    writer: BatchWriter,
    pub(crate) built: Option<Bytes>,
    pub(crate) replies: Vec<(Reply, i64)>,
    /// Buffer-memory permits to give back when the batch completes.
    pub(crate) permits: usize,
    pub(crate) base_sequence: Option<i32>,
    pub(crate) created: Instant,
    pub(crate) attempts: u32,
}

impl Batch {
    pub(crate) fn record_count(&self) -> usize {
        self.replies.len()
    }

    /// Fails every record of the batch with `err`.
    pub(crate) fn fail(self, err: Error) -> usize {
        for (reply, _) in self.replies {
            let _ = reply.send(Err(err.clone()));
        }
        self.permits
    }

    /// Completes every record: offsets from `base_offset` (or -1 when unknown).
    pub(crate) fn complete(self, base_offset: i64, log_append_time: i64) -> usize {
        for (i, (reply, ts)) in self.replies.into_iter().enumerate() {
            let _ = reply.send(Ok(RecordMetadata {
                topic: self.tp.topic.clone(),
                partition: self.tp.partition,
                offset: if base_offset < 0 {
                    -1
                } else {
                    base_offset + i as i64
                },
                timestamp: if log_append_time >= 0 {
                    log_append_time
                } else {
                    ts
                },
            }));
        }
        self.permits
    }
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<Batch>,
    ready: VecDeque<Batch>,
    in_flight: usize,
    next_sequence: i32,
    /// The sequence after the last acknowledged batch: an OUT_OF_ORDER_SEQUENCE_NUMBER for a
    /// batch starting here means the broker lost this producer's state (KIP-360), otherwise
    /// an earlier batch failed and this one is retried after it.
    acked_next: i32,
}

/// All partitions' queues. Guarded by one mutex in the producer.
#[derive(Default)]
pub(crate) struct Accumulator {
    queues: HashMap<TopicPartition, PartitionQueue>,
}

/// A record as appended: already partitioned, sizes known.
pub(crate) struct Append<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [(&'a [u8], Option<&'a [u8]>)],
    pub(crate) timestamp: i64,
    pub(crate) permits: usize,
}

impl Accumulator {
    /// Appends a record; returns true when a batch became ready (the sender should wake).
    pub(crate) fn append(
        &mut self,
        tp: &TopicPartition,
        rec: Append<'_>,
        batch_size: usize,
        reply: Reply,
    ) -> bool {
        if !self.queues.contains_key(tp) {
            self.queues.insert(tp.clone(), PartitionQueue::default());
        }
        let q = self.queues.get_mut(tp).expect("inserted above");
        let full = q.open.as_ref().is_some_and(|b| {
            b.writer.size_in_bytes() + rec.permits > batch_size && !b.writer.is_empty()
        });
        let mut woke = false;
        if full {
            q.ready.extend(q.open.take());
            woke = true;
        }
        let batch = q.open.get_or_insert_with(|| {
            woke = true;
            Batch {
                tp: tp.clone(),
                writer: BatchWriter::with_capacity(batch_size.min(1 << 20)),
                built: None,
                replies: Vec::new(),
                permits: 0,
                base_sequence: None,
                created: Instant::now(),
                attempts: 0,
            }
        });
        batch
            .writer
            .append(rec.timestamp, rec.key, rec.value, rec.headers);
        batch.replies.push((reply, rec.timestamp));
        batch.permits += rec.permits;
        if batch.writer.size_in_bytes() >= batch_size {
            q.ready.extend(q.open.take());
            woke = true;
        }
        woke
    }

    /// Closes open batches that lingered long enough (all of them when `force`); returns the
    /// earliest instant an open batch will be due.
    pub(crate) fn close_due(&mut self, linger: Duration, force: bool) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for q in self.queues.values_mut() {
            if let Some(b) = &q.open {
                let due = b.created + linger;
                if force || due <= now {
                    q.ready.extend(q.open.take());
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
        }
        next
    }

    /// Takes at most one ready batch per partition whose in-flight count allows it, builds it
    /// (assigning sequences when `producer` is set) and groups them by `leader`.
    pub(crate) fn drain(
        &mut self,
        leader: impl Fn(&TopicPartition) -> Option<i32>,
        max_in_flight: usize,
        params: BatchParams,
        idempotent: bool,
    ) -> Drained {
        let mut out: HashMap<i32, Vec<Batch>> = HashMap::new();
        let mut failed = Vec::new();
        let mut missing_leader = false;
        for (tp, q) in self.queues.iter_mut() {
            if q.ready.is_empty() || q.in_flight >= max_in_flight {
                continue;
            }
            // A retried batch goes out alone so sequences reach the log in order.
            if idempotent && q.in_flight > 0 && q.ready.front().is_some_and(|b| b.attempts > 0) {
                continue;
            }
            let Some(node) = leader(tp) else {
                missing_leader = true;
                continue;
            };
            let Some(mut batch) = q.ready.pop_front() else {
                continue;
            };
            if batch.built.is_none() {
                let mut p = params;
                if idempotent {
                    let seq = q.next_sequence;
                    q.next_sequence = seq.wrapping_add(batch.record_count() as i32) & i32::MAX;
                    p.base_sequence = seq;
                    batch.base_sequence = Some(seq);
                }
                match batch.writer.finish(&p) {
                    Ok(bytes) => {
                        batch.built = Some(bytes.freeze());
                        batch.writer = BatchWriter::default();
                    }
                    Err(e) => {
                        failed.push((batch, Error::InvalidArgument(e.to_string())));
                        continue;
                    }
                }
            }
            q.in_flight += 1;
            out.entry(node).or_default().push(batch);
        }
        (out, failed, missing_leader)
    }

    /// A batch's request finished (successfully or not).
    pub(crate) fn done(&mut self, tp: &TopicPartition) {
        if let Some(q) = self.queues.get_mut(tp) {
            q.in_flight = q.in_flight.saturating_sub(1);
        }
    }

    /// A batch was acknowledged: the partition's sequence moves past it.
    pub(crate) fn acked(&mut self, batch: &Batch) {
        if let (Some(q), Some(seq)) = (self.queues.get_mut(&batch.tp), batch.base_sequence) {
            q.acked_next = seq.wrapping_add(batch.record_count() as i32) & i32::MAX;
        }
    }

    /// Whether `batch` is the first unacknowledged one of its partition (see `acked_next`).
    pub(crate) fn is_first_unacked(&self, batch: &Batch) -> bool {
        self.queues
            .get(&batch.tp)
            .is_some_and(|q| batch.base_sequence == Some(q.acked_next))
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.queues.values().map(|q| q.in_flight).sum()
    }

    /// After a new producer id or epoch (KIP-360): sequences restart at 0 and batches built
    /// for a retry get the new identity and fresh sequences in their header. Only call with
    /// nothing in flight.
    pub(crate) fn reset_sequences(&mut self, params: &BatchParams) {
        for q in self.queues.values_mut() {
            assert_eq!(q.in_flight, 0, "sequences reset with requests in flight");
            q.next_sequence = 0;
            q.acked_next = 0;
            for b in q.ready.iter_mut() {
                let Some(bytes) = b.built.take() else {
                    continue;
                };
                let seq = q.next_sequence;
                q.next_sequence = seq.wrapping_add(b.record_count() as i32) & i32::MAX;
                b.base_sequence = Some(seq);
                b.built = Some(restamp(&bytes, params, seq));
            }
        }
    }

    /// Puts a batch back for another attempt, in sequence order ahead of newer batches.
    pub(crate) fn requeue(&mut self, mut batch: Batch) {
        batch.attempts += 1;
        let q = self.queues.entry(batch.tp.clone()).or_default();
        let pos = q
            .ready
            .iter()
            .position(|b| match (b.base_sequence, batch.base_sequence) {
                (Some(other), Some(mine)) => other > mine,
                (None, _) => true,
                (Some(_), None) => false,
            })
            .unwrap_or(q.ready.len());
        q.ready.insert(pos, batch);
    }

    /// Removes batches that waited longer than `delivery.timeout.ms`.
    pub(crate) fn expire(&mut self, timeout: Duration) -> Vec<Batch> {
        let mut out = Vec::new();
        for q in self.queues.values_mut() {
            while q
                .ready
                .front()
                .is_some_and(|b| b.created.elapsed() > timeout && b.built.is_none())
            {
                out.extend(q.ready.pop_front());
            }
        }
        out
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.queues
            .values()
            .all(|q| q.open.is_none() && q.ready.is_empty() && q.in_flight == 0)
    }

    /// Batches ready or open (for close without flush).
    pub(crate) fn take_all(&mut self) -> Vec<Batch> {
        let mut out = Vec::new();
        for q in self.queues.values_mut() {
            out.extend(q.ready.drain(..));
            out.extend(q.open.take());
        }
        out
    }
}

/// What one drain produced: batches by leader node, batches that could not be built, and
/// whether some partition had no known leader.
pub(crate) type Drained = (HashMap<i32, Vec<Batch>>, Vec<(Batch, Error)>, bool);

/// A built batch with a new producer id, epoch and base sequence (and so a new CRC32C over
/// attributes..end). Offsets in Kafka's v2 batch header: CRC 17, producer id 43, epoch 51,
/// base sequence 53.
fn restamp(bytes: &Bytes, params: &BatchParams, base_sequence: i32) -> Bytes {
    let mut out = bytes.to_vec();
    out[43..51].copy_from_slice(&params.producer_id.to_be_bytes());
    out[51..53].copy_from_slice(&params.producer_epoch.to_be_bytes());
    out[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// Header fields of every batch of one producer session.
pub(crate) fn batch_params(
    producer_id: i64,
    producer_epoch: i16,
    compression: Compression,
    transactional: bool,
) -> BatchParams {
    BatchParams {
        producer_id,
        producer_epoch,
        compression,
        transactional,
        ..BatchParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::record_batch::RecordBatchHeader;

    #[test]
    fn restamped_batches_carry_the_new_identity_and_a_valid_crc() {
        let mut w = BatchWriter::default();
        w.append(1, None, Some(b"v"), &[]);
        w.append(2, None, Some(b"w"), &[]);
        let mut old = batch_params(5, 0, Compression::None, true);
        old.base_sequence = 9;
        let bytes = w.finish(&old).unwrap().freeze();
        let fresh = batch_params(6, 1, Compression::None, true);
        let out = restamp(&bytes, &fresh, 3);
        let h = RecordBatchHeader::parse(&out).unwrap();
        assert_eq!(
            (h.producer_id(), h.producer_epoch(), h.base_sequence()),
            (6, 1, 3)
        );
        assert!(h.is_transactional());
        assert_eq!(h.compute_crc(), h.crc());
    }
}
