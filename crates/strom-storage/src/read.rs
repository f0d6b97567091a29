//! Read path: fetch by offset (whole batches as a `FileSlice`), ListOffsets by timestamp and
//! MAX_TIMESTAMP. The lock is held only to pick the segment; header walks and data reads use
//! pread on the segment's `Arc<File>` afterwards.

use std::sync::Arc;

use strom_protocol::record_batch::{Compression, RecordBatchHeader, TimestampType, NO_TIMESTAMP};

use crate::batch_reader::header_at;
use crate::error::LogError;
use crate::file_slice::FileSlice;
use crate::log::PartitionLog;
use crate::segment::{RecordBatchOwned, Segment};

/// Answer to a fetch: the bytes (if any) and the log bounds at the time of the read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub slice: Option<FileSlice>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A (timestamp, offset) pair for ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

impl PartitionLog {
    /// Whole batches starting at the batch containing `fetch_offset`, up to `max_bytes` (at least
    /// the first batch), none with base offset >= `max_offset`. `fetch_offset == LEO` gives no slice.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
    ) -> Result<ReadResult, LogError> {
        let (segment, size, log_start_offset, log_end_offset) = {
            let inner = self.inner.lock();
            inner.check_open()?;
            let (start, end) = (inner.log_start_offset, inner.log_end_offset());
            if fetch_offset < start || fetch_offset > end {
                return Err(LogError::OffsetOutOfRange {
                    requested: fetch_offset,
                    log_start: start,
                    log_end: end,
                });
            }
            let floor = inner
                .segments
                .range(..=fetch_offset)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b);
            let segment = inner
                .segments
                .range(floor..)
                .map(|(_, s)| s)
                .find(|s| s.meta().next_offset > fetch_offset)
                .cloned();
            match segment {
                Some(s) => {
                    let size = s.size();
                    (s, size, start, end)
                }
                None => {
                    return Ok(ReadResult {
                        slice: None,
                        log_start_offset: start,
                        log_end_offset: end,
                    })
                }
            }
        };
        let slice = slice_from(
            &segment,
            size,
            fetch_offset,
            max_bytes,
            max_offset.unwrap_or(i64::MAX),
        );
        Ok(ReadResult {
            slice,
            log_start_offset,
            log_end_offset,
        })
    }

    /// First offset whose record timestamp is >= `timestamp_ms` (compressed batches: the batch's
    /// base offset and max timestamp). `None` if every record is older.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        let (segments, log_start) = self.snapshot_segments()?;
        for segment in segments {
            let meta = segment.meta();
            if meta.max_timestamp < timestamp_ms {
                continue;
            }
            let size = segment.size();
            let mut pos = segment
                .time_index
                .floor(timestamp_ms.saturating_sub(1), |e| e.timestamp)
                .and_then(|e| {
                    segment.find_batch(segment.base_offset + i64::from(e.relative_offset), size)
                })
                .map_or(0, |(p, _)| p);
            while let Some(h) = header_at(&segment.log, pos, size) {
                let h = RecordBatchOwned(h);
                let view = h.view();
                if view.max_timestamp() >= timestamp_ms && view.last_offset() >= log_start {
                    if let Some(found) =
                        search_batch(&segment, pos, &h, log_start, |ts| ts >= timestamp_ms)
                    {
                        return Ok(Some(found));
                    }
                }
                pos += view.total_size() as u64;
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the first record carrying the largest timestamp in the log.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>, LogError> {
        let (segments, log_start) = self.snapshot_segments()?;
        let mut best: Option<(Arc<Segment>, i64, i64)> = None;
        for segment in segments {
            let meta = segment.meta();
            if meta.max_timestamp != NO_TIMESTAMP
                && best.as_ref().is_none_or(|b| meta.max_timestamp > b.1)
            {
                best = Some((
                    Arc::clone(&segment),
                    meta.max_timestamp,
                    meta.offset_of_max_timestamp,
                ));
            }
        }
        let Some((segment, max_ts, offset)) = best else {
            return Ok(None);
        };
        let size = segment.size();
        let found = segment
            .find_batch(offset, size)
            .and_then(|(pos, h)| search_batch(&segment, pos, &h, log_start, |ts| ts == max_ts));
        Ok(found.or(Some(TimestampOffset {
            timestamp: max_ts,
            offset: offset.max(log_start),
        })))
    }

    fn snapshot_segments(&self) -> Result<(Vec<Arc<Segment>>, i64), LogError> {
        let inner = self.inner.lock();
        inner.check_open()?;
        Ok((
            inner.segments.values().cloned().collect(),
            inner.log_start_offset,
        ))
    }
}

/// The first record in the batch at `pos` matching `wanted` with offset >= `log_start`.
/// Compressed and LogAppendTime batches answer with their max timestamp and base offset.
fn search_batch(
    segment: &Segment,
    pos: u64,
    h: &RecordBatchOwned,
    log_start: i64,
    wanted: impl Fn(i64) -> bool,
) -> Option<TimestampOffset> {
    let view = h.view();
    let batch_level = TimestampOffset {
        timestamp: view.max_timestamp(),
        offset: view.base_offset().max(log_start),
    };
    if view.timestamp_type() == TimestampType::LogAppendTime
        || view.compression() != Ok(Compression::None)
    {
        return wanted(view.max_timestamp()).then_some(batch_level);
    }
    let bytes = segment.read_batch(pos, h)?;
    let batch = RecordBatchHeader::parse(&bytes).ok()?;
    batch
        .records()
        .map_while(Result::ok)
        .find(|r| r.offset >= log_start && wanted(r.timestamp))
        .map(|r| TimestampOffset {
            timestamp: r.timestamp,
            offset: r.offset,
        })
}

/// Computes the slice for a read inside one segment.
fn slice_from(
    segment: &Arc<Segment>,
    size: u64,
    fetch_offset: i64,
    max_bytes: usize,
    max_offset: i64,
) -> Option<FileSlice> {
    let (pos, h) = segment.find_batch(fetch_offset, size)?;
    if h.view().base_offset() >= max_offset {
        return None;
    }
    let first_end = pos + h.view().total_size() as u64;
    let mut limit = pos
        .saturating_add(max_bytes as u64)
        .max(first_end)
        .min(size);
    if max_offset != i64::MAX {
        if let Some((p, hm)) = segment.find_batch(max_offset, size) {
            let cut = if hm.view().base_offset() >= max_offset {
                p
            } else {
                p + hm.view().total_size() as u64
            };
            limit = limit.min(cut.max(first_end));
        }
    }
    let end = segment.boundary_before(first_end, limit, max_offset);
    Some(FileSlice::new(
        segment.open_log()?,
        pos,
        (end - pos) as usize,
    ))
}
