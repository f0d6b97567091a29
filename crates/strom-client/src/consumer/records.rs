//! Turns a Fetch response's record set into consumer records: batches are split, control
//! batches and (under read_committed) aborted transactions skipped, compressed batches
//! decompressed; uncompressed keys and values are zero-copy slices of the response.

use std::collections::HashSet;

use bytes::Bytes;
use strom_protocol::compression::decompress_batch;
use strom_protocol::record_batch::control::{control_record_type, ControlRecordType};
use strom_protocol::record_batch::{BatchSplitter, Compression, RecordBatchHeader};

use crate::error::{Error, Result};
use crate::TopicPartition;

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The records of one partition from one fetch and where the next fetch starts.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) records: Vec<ConsumerRecord>,
    pub(crate) next_offset: i64,
}

/// Parses `data` for `tp`, dropping records before `fetch_offset`. `aborted` holds the
/// Fetch response's `(producer id, first offset)` of aborted transactions (read_committed
/// only). As Kafka's consumer: a producer's transaction counts as aborted from its first
/// offset until that producer's ABORT marker, so a later transaction of the same producer
/// (committed) is kept.
pub(crate) fn parse(
    tp: &TopicPartition,
    data: &Bytes,
    fetch_offset: i64,
    aborted: &[(i64, i64)],
) -> Result<Parsed> {
    let mut out = Parsed {
        records: Vec::new(),
        next_offset: fetch_offset,
    };
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    // Sorted by first offset, descending, so the next one to open is at the end.
    pending.sort_by_key(|a| std::cmp::Reverse(a.1));
    let mut open_aborted: HashSet<i64> = HashSet::new();
    for batch in BatchSplitter::new(data, usize::MAX) {
        // A batch cut off at the end of the response is normal; the next fetch gets it.
        let Ok(batch) = batch else { break };
        let header = RecordBatchHeader::parse(batch).map_err(|e| corrupt(tp, e))?;
        while pending
            .last()
            .is_some_and(|(_, first)| *first <= header.last_offset())
        {
            open_aborted.extend(pending.pop().map(|(pid, _)| pid));
        }
        if header.is_control() && control_record_type(&header) == Some(ControlRecordType::Abort) {
            open_aborted.remove(&header.producer_id());
        }
        if header.last_offset() < fetch_offset {
            continue;
        }
        let skip = header.is_control()
            || (header.is_transactional() && open_aborted.contains(&header.producer_id()));
        if !skip {
            if header.compute_crc() != header.crc() {
                return Err(corrupt(tp, "CRC mismatch"));
            }
            match header.compression().map_err(|e| corrupt(tp, e))? {
                Compression::None => push_records(tp, data, batch, fetch_offset, &mut out)?,
                _ => {
                    let plain = Bytes::from(decompress_batch(batch).map_err(|e| corrupt(tp, e))?);
                    push_records(tp, &plain, &plain, fetch_offset, &mut out)?;
                }
            }
        }
        out.next_offset = out.next_offset.max(header.last_offset() + 1);
    }
    Ok(out)
}

fn push_records(
    tp: &TopicPartition,
    owner: &Bytes,
    batch: &[u8],
    fetch_offset: i64,
    out: &mut Parsed,
) -> Result<()> {
    let header = RecordBatchHeader::parse(batch).map_err(|e| corrupt(tp, e))?;
    let log_append = matches!(
        header.timestamp_type(),
        strom_protocol::TimestampType::LogAppendTime
    );
    let slice = |s: &[u8]| {
        if s.is_empty() {
            Bytes::new()
        } else {
            owner.slice_ref(s)
        }
    };
    for r in header.records() {
        let r = r.map_err(|e| corrupt(tp, e))?;
        if r.offset < fetch_offset {
            continue;
        }
        let mut headers = Vec::new();
        for h in r.headers() {
            let h = h.map_err(|e| corrupt(tp, e))?;
            headers.push((
                String::from_utf8_lossy(h.key).into_owned(),
                h.value.map(slice),
            ));
        }
        out.records.push(ConsumerRecord {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: r.offset,
            timestamp: if log_append {
                header.max_timestamp()
            } else {
                r.timestamp
            },
            key: r.key.map(slice),
            value: r.value.map(slice),
            headers,
        });
    }
    Ok(())
}

fn corrupt(tp: &TopicPartition, e: impl std::fmt::Display) -> Error {
    Error::kafka(
        strom_protocol::ErrorCode::CorruptMessage,
        format!("fetched from {tp}: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::record_batch::builder::{BatchParams, BatchWriter};

    fn batch(base: i64, n: i64, codec: Compression) -> Vec<u8> {
        let mut w = BatchWriter::default();
        for i in 0..n {
            w.append(
                100 + i,
                Some(b"k"),
                Some(format!("v{}", base + i).as_bytes()),
                &[],
            );
        }
        let p = BatchParams {
            base_offset: base,
            compression: codec,
            ..BatchParams::default()
        };
        w.finish(&p).unwrap().to_vec()
    }

    #[test]
    fn skips_before_fetch_offset_and_stops_at_a_partial_batch() {
        let tp = TopicPartition::new("t", 0);
        let mut data = batch(0, 3, Compression::None);
        data.extend(batch(3, 3, Compression::Lz4));
        let partial = batch(6, 2, Compression::None);
        data.extend_from_slice(&partial[..partial.len() - 3]);
        let parsed = parse(&tp, &Bytes::from(data), 2, &[]).unwrap();
        let offsets: Vec<i64> = parsed.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![2, 3, 4, 5]);
        assert_eq!(parsed.next_offset, 6);
        assert_eq!(parsed.records[1].value.as_deref(), Some(&b"v3"[..]));
    }

    fn txn_batch(base: i64, n: i64, producer_id: i64) -> Vec<u8> {
        let mut w = BatchWriter::default();
        for i in 0..n {
            w.append(100, None, Some(format!("v{}", base + i).as_bytes()), &[]);
        }
        let p = BatchParams {
            base_offset: base,
            producer_id,
            producer_epoch: 0,
            transactional: true,
            ..BatchParams::default()
        };
        w.finish(&p).unwrap().to_vec()
    }

    fn marker(offset: i64, producer_id: i64, kind: ControlRecordType) -> Vec<u8> {
        use strom_protocol::record_batch::control::marker_batch;
        let mut m = marker_batch(producer_id, 0, kind, 0, 100).to_vec();
        m[..8].copy_from_slice(&offset.to_be_bytes());
        m
    }

    #[test]
    fn an_aborted_transaction_ends_at_its_marker() {
        let tp = TopicPartition::new("t", 0);
        let mut data = txn_batch(0, 2, 7); // aborted
        data.extend(txn_batch(2, 1, 8)); // another producer, committed
        data.extend(marker(3, 7, ControlRecordType::Abort));
        data.extend(txn_batch(4, 2, 7)); // the same producer's next transaction, committed
        data.extend(marker(6, 7, ControlRecordType::Commit));
        data.extend(marker(7, 8, ControlRecordType::Commit));
        let parsed = parse(&tp, &Bytes::from(data), 0, &[(7, 0)]).unwrap();
        let offsets: Vec<i64> = parsed.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![2, 4, 5]);
        assert_eq!(parsed.next_offset, 8);
    }
}
