//! Kafka record batch v2 (magic 2, KIP-98) as zero-copy views over bytes: header accessors,
//! validation (sizes, magic, CRC32C), splitting a buffer of concatenated batches, and the few
//! in-place rewrites a broker does (base offset, leader epoch, LogAppendTime). No I/O.

pub mod builder;
pub mod control;
pub mod records;

use thiserror::Error;

pub use records::{Record, RecordHeader, RecordIter};

// Field offsets of the v2 batch header (protocol guide, "Record Batch").
const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Size of the v2 batch header, up to and including `recordsCount`.
pub const HEADER_SIZE: usize = 61;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The only message format Strom stores.
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a batch sent without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `baseSequence` of a batch sent without idempotence.
pub const NO_SEQUENCE: i32 = -1;
/// Timestamp of a record that has none.
pub const NO_TIMESTAMP: i64 = -1;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// `message.timestamp.type`: who set the batch timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// The producer's timestamps are kept.
    #[default]
    CreateTime,
    /// The broker overwrites `maxTimestamp` with its clock on append.
    LogAppendTime,
}

/// Compression codec from attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Why bytes are not a well-formed batch (Kafka CORRUPT_MESSAGE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Fewer bytes than a length field or header promises.
    Truncated { needed: usize, available: usize },
    /// `batchLength` too small to hold a v2 header.
    BatchLengthTooSmall { batch_length: i32 },
    /// Bytes left after the batch `validate_batch` was given.
    TrailingBytes { extra: usize },
    /// Stored CRC differs from CRC32C of attributes..end.
    CrcMismatch { stored: u32, computed: u32 },
}

/// Why a well-framed batch breaks the record rules (Kafka INVALID_RECORD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRecordReason {
    /// An append carried no batch at all.
    NoBatches,
    /// `recordsCount` is zero or negative.
    NoRecords { records_count: i32 },
    /// `lastOffsetDelta` is negative.
    NegativeOffsetDelta { last_offset_delta: i32 },
    /// More records than offsets the batch spans.
    CountExceedsOffsetSpan {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// A freshly produced batch must span exactly `recordsCount` offsets.
    CountMismatch {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// The records section does not parse as `recordsCount` varint-framed records.
    MalformedRecords { record_index: u32 },
    /// Record offset deltas are not in order (or not 0..n-1 for a fresh batch).
    OffsetDeltaOutOfOrder {
        record_index: u32,
        offset_delta: i32,
    },
    /// The records section decompresses to more than `max` bytes (a decompression bomb, or
    /// a batch far larger than `max.message.bytes` allows once inflated).
    DecompressedTooLarge { max: usize },
}

/// Every way a batch can be refused. The broker maps each variant to a Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("corrupt record batch: {reason:?}")]
    CorruptMessage { reason: Corruption },
    #[error("invalid record: {reason:?}")]
    InvalidRecord { reason: InvalidRecordReason },
    #[error("unsupported record batch magic {magic}")]
    UnsupportedMagic { magic: i8 },
    #[error("unsupported compression codec {codec}")]
    UnsupportedCompression { codec: u8 },
    #[error("record batch of {size} bytes exceeds the limit of {max}")]
    BatchTooLarge { size: usize, max: usize },
}

fn corrupt(reason: Corruption) -> BatchError {
    BatchError::CorruptMessage { reason }
}

fn invalid(reason: InvalidRecordReason) -> BatchError {
    BatchError::InvalidRecord { reason }
}

/// How strictly `validate_batch` checks offsets against the record count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// A batch fresh from a producer: `recordsCount == lastOffsetDelta + 1`.
    Produce,
    /// A stored batch, possibly compacted: `recordsCount <= lastOffsetDelta + 1`.
    Stored,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Read-only view of a v2 batch header. Invariant: `buf.len() >= HEADER_SIZE`; `buf` may be
/// only the header or the whole batch (`records()` needs the whole batch).
#[derive(Debug, Clone, Copy)]
pub struct RecordBatchHeader<'a> {
    buf: &'a [u8],
}

impl<'a> RecordBatchHeader<'a> {
    /// Wraps the first `HEADER_SIZE` bytes; checks the length only, nothing else.
    pub fn parse(buf: &'a [u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(corrupt(Corruption::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            }));
        }
        Ok(Self { buf })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.buf, BASE_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(self.buf, BATCH_LENGTH)
    }
    /// Bytes of the whole batch on disk/wire: `LOG_OVERHEAD + batchLength` (0 if negative).
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length()).unwrap_or(0)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.buf, PARTITION_LEADER_EPOCH)
    }
    pub fn magic(&self) -> i8 {
        self.buf[MAGIC] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.buf, CRC) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.buf, ATTRIBUTES)
    }
    /// Codec from attribute bits 0-2; `Err` for codes 5-7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes() & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnsupportedCompression { codec: codec as u8 }),
        }
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & DELETE_HORIZON_BIT != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.buf, LAST_OFFSET_DELTA)
    }
    /// `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.buf, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.buf, MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.buf, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.buf, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.buf, BASE_SEQUENCE)
    }
    /// Sequence of the last record; sequences wrap from `i32::MAX` to 0 (KIP-98).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence() == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = i64::from(self.base_sequence()) + i64::from(self.last_offset_delta());
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.buf, RECORDS_COUNT)
    }
    /// CRC32C over attributes..end of the bytes this view holds.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.buf[ATTRIBUTES..])
    }
    /// Records of an uncompressed batch (the view must hold the whole batch).
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter::new(
            &self.buf[HEADER_SIZE..],
            self.records_count(),
            self.base_offset(),
            self.base_timestamp(),
        )
    }
}

/// Validates exactly one batch occupying all of `buf`: sizes, magic, CRC32C, counts.
/// Does not parse records (see `validate_records`).
pub fn validate_batch(buf: &[u8], mode: Validation) -> Result<RecordBatchHeader<'_>, BatchError> {
    if buf.len() > MAGIC {
        let magic = buf[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
    }
    let header = RecordBatchHeader::parse(buf)?;
    let batch_length = header.batch_length();
    if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(corrupt(Corruption::BatchLengthTooSmall { batch_length }));
    }
    let total = header.total_size();
    if buf.len() < total {
        return Err(corrupt(Corruption::Truncated {
            needed: total,
            available: buf.len(),
        }));
    }
    if buf.len() > total {
        return Err(corrupt(Corruption::TrailingBytes {
            extra: buf.len() - total,
        }));
    }
    let (stored, computed) = (header.crc(), header.compute_crc());
    if stored != computed {
        return Err(corrupt(Corruption::CrcMismatch { stored, computed }));
    }
    header.compression()?;
    let (records_count, last_offset_delta) = (header.records_count(), header.last_offset_delta());
    if records_count <= 0 {
        return Err(invalid(InvalidRecordReason::NoRecords { records_count }));
    }
    if last_offset_delta < 0 {
        return Err(invalid(InvalidRecordReason::NegativeOffsetDelta {
            last_offset_delta,
        }));
    }
    let span = i64::from(last_offset_delta) + 1;
    match mode {
        Validation::Produce if i64::from(records_count) != span => {
            Err(invalid(InvalidRecordReason::CountMismatch {
                records_count,
                last_offset_delta,
            }))
        }
        Validation::Stored if i64::from(records_count) > span => {
            Err(invalid(InvalidRecordReason::CountExceedsOffsetSpan {
                records_count,
                last_offset_delta,
            }))
        }
        _ => Ok(header),
    }
}

/// Parses every record of an uncompressed, already `validate_batch`ed batch and checks the
/// framing and offset deltas (0..n-1 for `Produce`, increasing and within the span for `Stored`).
/// Compressed batches are not inspected (no decompression on the produce path).
pub fn validate_records(
    header: &RecordBatchHeader<'_>,
    mode: Validation,
) -> Result<(), BatchError> {
    if header.compression()? != Compression::None {
        return Ok(());
    }
    let mut records = header.records();
    let mut previous: i32 = -1;
    let mut index: u32 = 0;
    while let Some(delta) = records.next_offset_delta() {
        let delta = delta?;
        let in_order = match mode {
            Validation::Produce => i64::from(delta) == i64::from(index),
            Validation::Stored => delta > previous && delta <= header.last_offset_delta(),
        };
        if !in_order {
            return Err(invalid(InvalidRecordReason::OffsetDeltaOutOfOrder {
                record_index: index,
                offset_delta: delta,
            }));
        }
        previous = delta;
        index += 1;
    }
    if !records.remainder().is_empty() {
        return Err(invalid(InvalidRecordReason::MalformedRecords {
            record_index: index,
        }));
    }
    Ok(())
}

/// Splits a buffer of concatenated batches. Each length is checked against the remaining
/// bytes and `max_batch_size` before use; after the first error the iterator ends.
#[derive(Debug, Clone)]
pub struct BatchSplitter<'a> {
    buf: &'a [u8],
    pos: usize,
    max_batch_size: usize,
    failed: bool,
}

impl<'a> BatchSplitter<'a> {
    pub fn new(buf: &'a [u8], max_batch_size: usize) -> Self {
        Self {
            buf,
            pos: 0,
            max_batch_size,
            failed: false,
        }
    }

    /// Offset in the buffer where the next batch starts (= bytes consumed so far).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn next_batch(&mut self) -> Result<&'a [u8], BatchError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(corrupt(Corruption::Truncated {
                needed: LOG_OVERHEAD,
                available: rest.len(),
            }));
        }
        let batch_length = be_i32(rest, BATCH_LENGTH);
        if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            if rest.len() > MAGIC && rest[MAGIC] as i8 != MAGIC_V2 {
                return Err(BatchError::UnsupportedMagic {
                    magic: rest[MAGIC] as i8,
                });
            }
            return Err(corrupt(Corruption::BatchLengthTooSmall { batch_length }));
        }
        let size = LOG_OVERHEAD + batch_length as usize;
        if size > self.max_batch_size {
            return Err(BatchError::BatchTooLarge {
                size,
                max: self.max_batch_size,
            });
        }
        if size > rest.len() {
            return Err(corrupt(Corruption::Truncated {
                needed: size,
                available: rest.len(),
            }));
        }
        self.pos += size;
        Ok(&rest[..size])
    }
}

impl<'a> Iterator for BatchSplitter<'a> {
    type Item = Result<&'a [u8], BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let item = self.next_batch();
        self.failed = item.is_err();
        Some(item)
    }
}

fn check_header_len(buf: &[u8]) -> Result<(), BatchError> {
    RecordBatchHeader::parse(buf).map(|_| ())
}

/// Rewrites `baseOffset` (not covered by the CRC).
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    check_header_len(buf)?;
    buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Rewrites `partitionLeaderEpoch` (not covered by the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    check_header_len(buf)?;
    buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Marks the batch LogAppendTime with `maxTimestamp = timestamp_ms` and recomputes the CRC.
/// `buf` must be exactly the whole batch.
pub fn set_log_append_time(buf: &mut [u8], timestamp_ms: i64) -> Result<(), BatchError> {
    check_header_len(buf)?;
    let attributes = be_i16(buf, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c(&buf[ATTRIBUTES..]);
    buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Runs every parser in this module over `bytes`; used by the fuzz target and by the
/// "arbitrary bytes never panic" property test. Never panics.
pub fn fuzz_one(bytes: &[u8]) {
    for batch in BatchSplitter::new(bytes, 1 << 20) {
        let Ok(batch) = batch else { break };
        for mode in [Validation::Produce, Validation::Stored] {
            if let Ok(header) = validate_batch(batch, mode) {
                let _ = validate_records(&header, mode);
            }
        }
        if let Ok(header) = RecordBatchHeader::parse(batch) {
            for record in header.records().take(10_000) {
                let Ok(record) = record else { break };
                for h in record.headers().take(10_000) {
                    if h.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
