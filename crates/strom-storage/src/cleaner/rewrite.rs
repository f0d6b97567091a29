//! Filtering one record batch for the cleaner, and re-encoding what is left. A rewritten batch
//! keeps its base offset, last offset delta, producer fields, leader epoch and codec, so every
//! kept record keeps its offset; only the dropped records leave gaps (Kafka does the same).

use std::borrow::Cow;

use bytes::BufMut;
use strom_protocol::compression::{compress, decompress_batch_bounded};
use strom_protocol::record_batch::{
    Compression, Record, RecordBatchHeader, TimestampType, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2,
};
use tracing::warn;

use super::offset_map::{AbortedSet, OffsetMap};

/// Attribute bit 6 (KIP-534, Kafka 3.1+): `baseTimestamp` holds the delete horizon.
const DELETE_HORIZON_BIT: i16 = 0x40;

/// The batch's records section uncompressed (borrowed when it already is). `None` if the
/// codec is unknown, the data does not decompress, or it would inflate past `max` bytes
/// (`LogConfig::max_decompressed_bytes`): such a batch is kept whole, never expanded.
pub(crate) fn plain_batch(bytes: &[u8], max: usize) -> Option<Cow<'_, [u8]>> {
    let header = RecordBatchHeader::parse(bytes).ok()?;
    match header.compression() {
        Ok(Compression::None) => Some(Cow::Borrowed(bytes)),
        Ok(_) => match decompress_batch_bounded(bytes, max) {
            Ok(plain) => Some(Cow::Owned(plain)),
            Err(e) => {
                warn!(base_offset = header.base_offset(), error = %e, "cleaner: batch does not decompress; kept whole");
                None
            }
        },
        Err(_) => None,
    }
}

/// What the cleaner decides for one batch.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Copy the stored bytes unchanged.
    Keep,
    /// Every record is obsolete: the batch goes.
    Drop { removed: u32 },
    /// Some records go, or a delete horizon must be stamped: these bytes replace the batch.
    Rewrite { bytes: Vec<u8>, removed: u32 },
}

/// Inputs of a cleaning decision that are the same for every batch of a pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilterContext<'a> {
    pub map: &'a OffsetMap,
    pub aborted: &'a AbortedSet,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// Batches whose last offset is at or above this are kept whole.
    pub keep_whole_from: i64,
    /// Batches that inflate past this are kept whole (see `plain_batch`).
    pub max_decompressed_bytes: usize,
}

/// The verdict for one stored batch, and the delete horizon of the tombstones it keeps.
pub(crate) fn filter_batch(bytes: &[u8], cx: &FilterContext<'_>) -> (Verdict, Option<i64>) {
    let Ok(header) = RecordBatchHeader::parse(bytes) else {
        return (Verdict::Keep, None);
    };
    // The log's last batch stays whole (see `Plan::keep_whole_from` in `cleaner.rs`).
    if header.last_offset() >= cx.keep_whole_from {
        return (Verdict::Keep, None);
    }
    // Transaction markers are kept (Kafka drops one once its transaction's data is gone and
    // its delete horizon passed; Strom keeps them: they are small and keep `.txnindex` valid).
    if header.is_control() {
        return (Verdict::Keep, None);
    }
    // Data of an aborted transaction is never read by read_committed consumers: it goes.
    // (The plan keeps open transactions, above the first unstable offset, out of reach.)
    if header.is_transactional()
        && cx
            .aborted
            .contains(header.producer_id(), header.base_offset())
    {
        let removed = header.records_count().max(0) as u32;
        return (Verdict::Drop { removed }, None);
    }
    let Some(plain) = plain_batch(bytes, cx.max_decompressed_bytes) else {
        return (Verdict::Keep, None);
    };
    let Ok(plain_header) = RecordBatchHeader::parse(&plain) else {
        return (Verdict::Keep, None);
    };
    let existing_horizon = header.has_delete_horizon().then(|| header.base_timestamp());
    let mut kept = Vec::new();
    let mut removed = 0u32;
    let mut tombstones = 0u32;
    for record in plain_header.records() {
        let Ok(record) = record else {
            return (Verdict::Keep, None);
        };
        let keep = match record.key {
            // A compacted log has no use for records without a key (Kafka drops them too).
            None => false,
            Some(key) => cx
                .map
                .latest(key)
                .is_none_or(|latest| latest <= record.offset),
        };
        let keep =
            keep && (record.value.is_some() || existing_horizon.is_none_or(|h| cx.now_ms < h));
        if keep {
            tombstones += u32::from(record.value.is_none());
            kept.push(record);
        } else {
            removed += 1;
        }
    }
    if kept.is_empty() {
        return (Verdict::Drop { removed }, None);
    }
    let horizon = match (tombstones > 0, existing_horizon) {
        (false, _) => None,
        (true, Some(h)) => Some(h),
        (true, None) => Some(cx.now_ms.saturating_add(cx.delete_retention_ms)),
    };
    if removed == 0 && horizon == existing_horizon {
        return (Verdict::Keep, horizon);
    }
    match encode(&header, &kept, horizon) {
        Some(bytes) => (Verdict::Rewrite { bytes, removed }, horizon),
        None => (Verdict::Keep, existing_horizon),
    }
}

/// Re-encodes `records` (a subset of `original`'s, in order) as a v2 batch with the original's
/// header fields. With a horizon, `baseTimestamp` is the horizon and attribute bit 6 is set.
fn encode(
    original: &RecordBatchHeader<'_>,
    records: &[Record<'_>],
    horizon: Option<i64>,
) -> Option<Vec<u8>> {
    let base_timestamp = horizon.unwrap_or_else(|| original.base_timestamp());
    let mut body = Vec::new();
    let mut rec = Vec::new();
    for r in records {
        rec.clear();
        rec.push(r.attributes as u8);
        put_varlong(&mut rec, r.timestamp.wrapping_sub(base_timestamp));
        put_varlong(&mut rec, i64::from(r.offset_delta));
        put_nullable(&mut rec, r.key);
        put_nullable(&mut rec, r.value);
        let headers: Vec<_> = r.headers().collect::<Result<_, _>>().ok()?;
        put_varlong(&mut rec, headers.len() as i64);
        for h in headers {
            put_nullable(&mut rec, Some(h.key));
            put_nullable(&mut rec, h.value);
        }
        put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let codec = original.compression().ok()?;
    let body = match codec {
        Compression::None => body,
        codec => compress(codec, &body).ok()?,
    };
    let max_timestamp = match original.timestamp_type() {
        TimestampType::LogAppendTime => original.max_timestamp(),
        TimestampType::CreateTime => records.iter().map(|r| r.timestamp).max()?,
    };
    let mut attributes = original.attributes();
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let total = HEADER_SIZE + body.len();
    let mut out = Vec::with_capacity(total);
    out.put_i64(original.base_offset());
    out.put_i32(i32::try_from(total - LOG_OVERHEAD).ok()?);
    out.put_i32(original.partition_leader_epoch());
    out.put_i8(MAGIC_V2);
    out.put_u32(0); // CRC, filled below
    out.put_i16(attributes);
    out.put_i32(original.last_offset_delta());
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(original.producer_id());
    out.put_i16(original.producer_epoch());
    out.put_i32(original.base_sequence());
    out.put_i32(records.len() as i32);
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Some(out)
}

/// Zigzag varlong (protocol guide, "Record").
fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
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

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::record_batch::builder::BatchBuilder;
    use strom_protocol::record_batch::{validate_batch, validate_records, Validation};

    fn map_of(entries: &[(&[u8], i64)]) -> OffsetMap {
        let mut m = OffsetMap::default();
        for (k, o) in entries {
            m.insert(k, *o);
        }
        m
    }

    static NO_ABORTS: std::sync::LazyLock<AbortedSet> =
        std::sync::LazyLock::new(AbortedSet::default);

    fn cx(map: &OffsetMap) -> FilterContext<'_> {
        FilterContext {
            map,
            aborted: &NO_ABORTS,
            now_ms: 1_000,
            delete_retention_ms: 500,
            keep_whole_from: i64::MAX,
            max_decompressed_bytes: usize::MAX,
        }
    }

    fn batch(codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(10);
        b.producer = Some((3, 1, 40));
        b.headers = vec![(b"h".to_vec(), Some(b"x".to_vec()))];
        b.push(Some(b"a"), Some(b"1"), 100)
            .push(Some(b"b"), Some(b"2"), 101)
            .push(Some(b"a"), None, 102)
            .push(None, Some(b"nokey"), 103);
        b.build_compressed(codec).unwrap().to_vec()
    }

    #[test]
    fn rewrite_keeps_offsets_fields_and_codec() {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let map = map_of(&[(b"a", 12), (b"b", 99)]);
            let original = batch(codec);
            let (verdict, horizon) = filter_batch(&original, &cx(&map));
            assert_eq!(horizon, Some(1_500), "the kept tombstone gets a horizon");
            let Verdict::Rewrite { bytes, removed } = verdict else {
                panic!("expected a rewrite, got {verdict:?}");
            };
            assert_eq!(removed, 3);
            let h = validate_batch(&bytes, Validation::Stored).unwrap();
            assert_eq!(h.compression().unwrap(), codec);
            assert_eq!((h.base_offset(), h.last_offset()), (10, 13));
            assert_eq!(
                (h.producer_id(), h.producer_epoch(), h.base_sequence()),
                (3, 1, 40)
            );
            assert!(h.has_delete_horizon());
            assert_eq!(h.base_timestamp(), 1_500);
            assert_eq!(h.max_timestamp(), 102);
            let plain = plain_batch(&bytes, usize::MAX).unwrap();
            let ph = RecordBatchHeader::parse(&plain).unwrap();
            validate_records(&ph, Validation::Stored).unwrap();
            let recs: Vec<_> = ph.records().map(|r| r.unwrap()).collect();
            assert_eq!(recs.len(), 1);
            assert_eq!((recs[0].offset, recs[0].timestamp), (12, 102));
            assert_eq!((recs[0].key, recs[0].value), (Some(&b"a"[..]), None));
            assert_eq!(recs[0].headers().count(), 1);
        }
    }

    #[test]
    fn expired_tombstones_go_and_untouched_batches_are_kept() {
        let map = map_of(&[(b"a", 12)]);
        let (first, _) = filter_batch(&batch(Compression::None), &cx(&map));
        let Verdict::Rewrite { bytes, .. } = first else {
            panic!("expected a rewrite");
        };
        // Before the horizon a second pass changes nothing.
        let (again, h) = filter_batch(&bytes, &cx(&map));
        assert!(matches!(again, Verdict::Keep), "{again:?}");
        assert_eq!(h, Some(1_500));
        // After it, the tombstone goes and the batch is dropped entirely (b is superseded).
        let later = FilterContext {
            now_ms: 1_500,
            ..cx(&map)
        };
        let map_b = map_of(&[(b"a", 12), (b"b", 50)]);
        let later_b = FilterContext {
            map: &map_b,
            ..later
        };
        assert!(matches!(
            filter_batch(&bytes, &later_b).0,
            Verdict::Drop { removed: 2 }
        ));
        let (v, h) = filter_batch(&bytes, &later);
        assert!(matches!(v, Verdict::Rewrite { removed: 1, .. }), "{v:?}");
        assert_eq!(h, None);
    }

    #[test]
    fn markers_are_kept_and_aborted_data_dropped() {
        let map = map_of(&[(b"a", 99)]);
        let mut b = BatchBuilder::new(0);
        b.attributes = 0x30;
        b.push(Some(b"a"), Some(b"1"), 1);
        let (v, h) = filter_batch(&b.build(), &cx(&map));
        assert!(matches!(v, Verdict::Keep) && h.is_none(), "a marker stays");
        let mut b = BatchBuilder::new(7);
        b.attributes = 0x10;
        b.producer = Some((4, 0, 0));
        b.push(Some(b"x"), Some(b"1"), 1)
            .push(Some(b"y"), Some(b"2"), 1);
        let committed = b.build();
        let (v, _) = filter_batch(&committed, &cx(&map));
        assert!(
            matches!(v, Verdict::Keep),
            "committed data is filtered like any data"
        );
        let aborted = AbortedSet::new([crate::txn_index::AbortedTxn {
            producer_id: 4,
            first_offset: 7,
            last_offset: 9,
            last_stable_offset: 7,
        }]);
        let cx = FilterContext {
            aborted: &aborted,
            ..cx(&map)
        };
        assert!(matches!(
            filter_batch(&committed, &cx).0,
            Verdict::Drop { removed: 2 }
        ));
    }
}
