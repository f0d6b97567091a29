//! Builds valid uncompressed v2 batches, the way a producer would. Used by tests, benchmarks
//! and anything that needs to write records (the broker's internal topics later on).

use bytes::{BufMut, BytesMut};

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
