//! Builds valid v2 batches, the way a producer would: `BatchBuilder` for tests and internal
//! topics, `BatchWriter` for the client's hot path (records appended in place, then compressed
//! and stamped with producer id/epoch/sequence at send time).

use bytes::{BufMut, BytesMut};

use super::Compression;
use crate::compression::{attribute_bits, compress, CompressionError};

use super::records::put_varlong;
use super::{HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2, NO_PRODUCER_ID, NO_SEQUENCE};

/// `(key, value, timestamp_ms)` of one record to build.
pub type RecordSpec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);
type OwnedRecord = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// A batch under construction. Fields are public so tests can shape odd batches.
#[derive(Debug, Clone, Default)]
pub struct BatchBuilder {
    pub base_offset: i64,
    /// `(producer id, producer epoch, base sequence)`; `None` = not idempotent.
    pub producer: Option<(i64, i16, i32)>,
    pub partition_leader_epoch: i32,
    /// Extra attribute bits (transactional 0x10, control 0x20); compression stays 0.
    pub attributes: i16,
    /// Overrides the offset deltas 0..n-1 (to imitate a compacted batch).
    pub offset_deltas: Option<Vec<i32>>,
    /// Headers added to every record.
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    records: Vec<OwnedRecord>,
}

impl BatchBuilder {
    pub fn new(base_offset: i64) -> Self {
        Self {
            base_offset,
            ..Self::default()
        }
    }

    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp_ms: i64,
    ) -> &mut Self {
        self.records.push((
            key.map(<[u8]>::to_vec),
            value.map(<[u8]>::to_vec),
            timestamp_ms,
        ));
        self
    }

    /// Encodes the batch with a correct CRC32C. Panics if no record was pushed (a test bug).
    pub fn build(&self) -> BytesMut {
        assert!(
            !self.records.is_empty(),
            "a record batch needs at least one record"
        );
        let base_ts = self.records[0].2;
        let max_ts = self.records.iter().map(|r| r.2).max().unwrap_or(base_ts);
        let deltas: Vec<i32> = match &self.offset_deltas {
            Some(d) => d.clone(),
            None => (0..self.records.len() as i32).collect(),
        };
        let mut body = Vec::new();
        let mut rec = Vec::new();
        for ((key, value, ts), delta) in self.records.iter().zip(&deltas) {
            rec.clear();
            rec.push(0u8);
            put_varlong(&mut rec, ts - base_ts);
            put_varlong(&mut rec, i64::from(*delta));
            put_nullable(&mut rec, key.as_deref());
            put_nullable(&mut rec, value.as_deref());
            put_varlong(&mut rec, self.headers.len() as i64);
            for (k, v) in &self.headers {
                put_nullable(&mut rec, Some(k));
                put_nullable(&mut rec, v.as_deref());
            }
            put_varlong(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let (pid, epoch, seq) = self.producer.unwrap_or((NO_PRODUCER_ID, -1, NO_SEQUENCE));
        let total = HEADER_SIZE + body.len();
        let mut out = BytesMut::with_capacity(total);
        out.put_i64(self.base_offset);
        out.put_i32((total - LOG_OVERHEAD) as i32);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC, filled below
        out.put_i16(self.attributes & !0x07);
        out.put_i32(*deltas.last().unwrap_or(&0));
        out.put_i64(base_ts);
        out.put_i64(max_ts);
        out.put_i64(pid);
        out.put_i16(epoch);
        out.put_i32(seq);
        out.put_i32(self.records.len() as i32);
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// One valid uncompressed batch: `records` are `(key, value, timestamp_ms)`, `producer` is
/// `(producer id, epoch, base sequence)` for an idempotent batch.
pub fn build_batch(
    base_offset: i64,
    records: &[RecordSpec<'_>],
    producer: Option<(i64, i16, i32)>,
) -> BytesMut {
    let mut b = BatchBuilder::new(base_offset);
    b.producer = producer;
    for (k, v, ts) in records {
        b.push(*k, *v, *ts);
    }
    b.build()
}

/// Everything of a batch header a producer decides at send time (KIP-98 fields included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchParams {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    pub compression: Compression,
}

impl Default for BatchParams {
    fn default() -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            compression: Compression::None,
        }
    }
}

/// Appends records to an uncompressed records section one at a time, without per-record
/// allocation. Invariant: `count` records are encoded in `records`, offset deltas 0..count-1.
#[derive(Debug, Clone, Default)]
pub struct BatchWriter {
    records: Vec<u8>,
    scratch: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            records: Vec::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// Appends one record; returns the bytes it added to the batch.
    pub fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> usize {
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let rec = &mut self.scratch;
        rec.clear();
        rec.push(0u8);
        put_varlong(rec, timestamp_ms - self.base_timestamp);
        put_varlong(rec, i64::from(self.count));
        put_nullable(rec, key);
        put_nullable(rec, value);
        put_varlong(rec, headers.len() as i64);
        for (k, v) in headers {
            put_nullable(rec, Some(k));
            put_nullable(rec, *v);
        }
        let before = self.records.len();
        put_varlong(&mut self.records, rec.len() as i64);
        self.records.extend_from_slice(rec);
        self.count += 1;
        self.records.len() - before
    }

    pub fn record_count(&self) -> i32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if it were sent uncompressed now.
    pub fn size_in_bytes(&self) -> usize {
        HEADER_SIZE + self.records.len()
    }

    /// Encodes the batch: header from `params`, records compressed with `params.compression`,
    /// CRC32C over attributes..end. Panics if empty (a caller bug).
    pub fn finish(&self, params: &BatchParams) -> Result<BytesMut, CompressionError> {
        assert!(self.count > 0, "a record batch needs at least one record");
        let body = match params.compression {
            Compression::None => None,
            codec => Some(compress(codec, &self.records)?),
        };
        let body: &[u8] = body.as_deref().unwrap_or(&self.records);
        let mut attributes = attribute_bits(params.compression);
        if params.transactional {
            attributes |= 0x10;
        }
        let total = HEADER_SIZE + body.len();
        let mut out = BytesMut::with_capacity(total);
        out.put_i64(params.base_offset);
        out.put_i32((total - LOG_OVERHEAD) as i32);
        out.put_i32(params.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC, filled below
        out.put_i16(attributes);
        out.put_i32(self.count - 1);
        out.put_i64(self.base_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_i64(params.producer_id);
        out.put_i16(params.producer_epoch);
        out.put_i32(params.base_sequence);
        out.put_i32(self.count);
        out.extend_from_slice(body);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

impl BatchBuilder {
    /// As [`BatchBuilder::build`], with the records section compressed by `codec`.
    pub fn build_compressed(&self, codec: Compression) -> Result<BytesMut, CompressionError> {
        let plain = self.build();
        if codec == Compression::None {
            return Ok(plain);
        }
        let packed = compress(codec, &plain[HEADER_SIZE..])?;
        let mut out = BytesMut::with_capacity(HEADER_SIZE + packed.len());
        out.extend_from_slice(&plain[..HEADER_SIZE]);
        out.extend_from_slice(&packed);
        let len = (out.len() - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&len.to_be_bytes());
        let attributes = (i16::from_be_bytes([out[21], out[22]]) & !0x07) | attribute_bits(codec);
        out[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::decompress_batch;
    use crate::record_batch::{validate_batch, validate_records, RecordBatchHeader, Validation};

    #[test]
    fn writer_matches_builder_and_validates() {
        let mut w = BatchWriter::with_capacity(64);
        w.append(10, Some(b"k"), Some(b"v1"), &[]);
        w.append(12, None, Some(b"v2"), &[]);
        let params = BatchParams {
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 5,
            ..BatchParams::default()
        };
        let mut b = BatchBuilder::new(0);
        b.producer = Some((7, 1, 5));
        b.partition_leader_epoch = -1;
        b.push(Some(b"k"), Some(b"v1"), 10)
            .push(None, Some(b"v2"), 12);
        assert_eq!(w.finish(&params).unwrap(), b.build());
        assert_eq!(w.size_in_bytes(), b.build().len());
    }

    #[test]
    fn compressed_batches_validate_and_decompress() {
        let mut w = BatchWriter::default();
        for i in 0..100 {
            let v = format!("value-{i}");
            w.append(1000 + i, None, Some(v.as_bytes()), &[(b"h", Some(b"x"))]);
        }
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let params = BatchParams {
                compression: codec,
                transactional: true,
                ..BatchParams::default()
            };
            let batch = w.finish(&params).unwrap();
            let h = validate_batch(&batch, Validation::Produce).unwrap();
            assert_eq!(h.compression().unwrap(), codec);
            assert!(h.is_transactional());
            let plain = decompress_batch(&batch).unwrap();
            let h = RecordBatchHeader::parse(&plain).unwrap();
            validate_records(&h, Validation::Produce).unwrap();
            let last = h.records().last().unwrap().unwrap();
            assert_eq!(
                (last.offset, last.timestamp, last.value),
                (99, 1099, Some(&b"value-99"[..]))
            );
        }
    }

    #[test]
    fn builder_compresses_too() {
        let mut b = BatchBuilder::new(3);
        b.push(Some(b"a"), Some(b"b"), 1);
        let batch = b.build_compressed(Compression::Lz4).unwrap();
        let h = validate_batch(&batch, Validation::Produce).unwrap();
        assert_eq!(h.compression().unwrap(), Compression::Lz4);
        let (plain, expected) = (decompress_batch(&batch).unwrap(), b.build());
        // Identical except the CRC, which still covers the compressed bytes.
        assert_eq!(plain[..17], expected[..17]);
        assert_eq!(plain[21..], expected[21..]);
    }
}
