//! Produce request bodies (v3–v12, Kafka protocol guide "Produce API") decoded without
//! copying the records: each partition's records come out as a `BytesMut` view of the
//! request frame, so the broker can assign offsets (and stamp leader epochs and
//! LogAppendTime) in place and write the batches to the log from the frame's own buffer.
//!
//! `kafka_protocol`'s decoder yields the records as shared `Bytes`, which cannot be written
//! to. This decoder accepts and refuses exactly what that one does for these versions (the
//! tests check it against it, byte for byte and for every truncation); unknown tagged fields
//! are skipped instead of kept, and array lengths are not trusted for allocation.

use bytes::{Buf, BytesMut};
use thiserror::Error;

/// The oldest and newest Produce versions this decoder reads (Kafka 4 serves v3 up; v13
/// names topics by id).
pub const MIN_VERSION: i16 = 3;
pub const MAX_VERSION: i16 = 12;
/// First flexible version (compact strings and arrays, tagged fields).
const FLEXIBLE_SINCE: i16 = 9;

/// A decoded Produce request: what `kafka_protocol::messages::ProduceRequest` holds, with
/// the records left writable.
#[derive(Debug, Default)]
pub struct ProduceFrame {
    pub transactional_id: Option<String>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topic_data: Vec<TopicFrame>,
}

#[derive(Debug, Default)]
pub struct TopicFrame {
    pub name: String,
    pub partition_data: Vec<PartitionFrame>,
}

#[derive(Debug, Default)]
pub struct PartitionFrame {
    pub index: i32,
    /// The partition's record batches: a disjoint view of the request frame's buffer.
    pub records: Option<BytesMut>,
}

/// Why a Produce body could not be decoded (the connection is closed, as for any
/// malformed request).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProduceDecodeError {
    #[error("produce v{0} is not decoded here")]
    UnsupportedVersion(i16),
    #[error("not enough bytes")]
    Truncated,
    #[error("{what} length is negative ({len})")]
    NegativeLength { what: &'static str, len: i64 },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// More elements than bytes left: the request cannot hold them (refused before anything
    /// is allocated for them).
    #[error("array of {len} elements in {remaining} bytes")]
    ArrayTooLong { len: usize, remaining: usize },
}

type Result<T> = std::result::Result<T, ProduceDecodeError>;

/// Decodes a Produce request body of `version` (the frame after its request header).
pub fn decode_produce_request(mut body: BytesMut, version: i16) -> Result<ProduceFrame> {
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(ProduceDecodeError::UnsupportedVersion(version));
    }
    let flexible = version >= FLEXIBLE_SINCE;
    let buf = &mut body;
    let transactional_id = nullable_string(buf, flexible)?;
    let acks = get_i16(buf)?;
    let timeout_ms = get_i32(buf)?;
    let topics = array_len(buf, flexible)?;
    let mut topic_data = Vec::with_capacity(topics);
    for _ in 0..topics {
        let name = nullable_string(buf, flexible)?.ok_or(ProduceDecodeError::NegativeLength {
            what: "String",
            len: -1,
        })?;
        let partitions = array_len(buf, flexible)?;
        let mut partition_data = Vec::with_capacity(partitions);
        for _ in 0..partitions {
            let index = get_i32(buf)?;
            let records = nullable_bytes(buf, flexible)?;
            if flexible {
                skip_tagged_fields(buf)?;
            }
            partition_data.push(PartitionFrame { index, records });
        }
        if flexible {
            skip_tagged_fields(buf)?;
        }
        topic_data.push(TopicFrame {
            name,
            partition_data,
        });
    }
    if flexible {
        skip_tagged_fields(buf)?;
    }
    Ok(ProduceFrame {
        transactional_id,
        acks,
        timeout_ms,
        topic_data,
    })
}

fn get_u8(buf: &mut BytesMut) -> Result<u8> {
    if buf.remaining() < 1 {
        return Err(ProduceDecodeError::Truncated);
    }
    Ok(buf.get_u8())
}

fn get_i16(buf: &mut BytesMut) -> Result<i16> {
    if buf.remaining() < 2 {
        return Err(ProduceDecodeError::Truncated);
    }
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut BytesMut) -> Result<i32> {
    if buf.remaining() < 4 {
        return Err(ProduceDecodeError::Truncated);
    }
    Ok(buf.get_i32())
}

/// An unsigned varint as `kafka_protocol` reads it: at most five bytes, high bits past 32
/// dropped.
fn unsigned_varint(buf: &mut BytesMut) -> Result<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = u32::from(get_u8(buf)?);
        value |= (b & 0x7f) << (i * 7);
        if b < 0x80 {
            break;
        }
    }
    Ok(value)
}

/// `len` bytes split off the front, as a writable view.
fn take(buf: &mut BytesMut, len: usize) -> Result<BytesMut> {
    if buf.remaining() < len {
        return Err(ProduceDecodeError::Truncated);
    }
    Ok(buf.split_to(len))
}

/// A nullable length: compact (varint, 0 is null) in flexible versions, else an INT16
/// (strings) or INT32 (bytes) with -1 for null.
fn nullable_len(buf: &mut BytesMut, flexible: bool, what: &'static str) -> Result<Option<usize>> {
    if flexible {
        return Ok(match unsigned_varint(buf)? {
            0 => None,
            n => Some((n - 1) as usize),
        });
    }
    let len = match what {
        STRING => i64::from(get_i16(buf)?),
        _ => i64::from(get_i32(buf)?),
    };
    match len {
        -1 => Ok(None),
        n if n >= 0 => Ok(Some(n as usize)),
        n => Err(ProduceDecodeError::NegativeLength { what, len: n }),
    }
}

const STRING: &str = "String";
const DATA: &str = "Data";

fn nullable_string(buf: &mut BytesMut, flexible: bool) -> Result<Option<String>> {
    let Some(len) = nullable_len(buf, flexible, STRING)? else {
        return Ok(None);
    };
    let raw = take(buf, len)?;
    std::str::from_utf8(&raw)
        .map(|s| Some(s.to_owned()))
        .map_err(|_| ProduceDecodeError::InvalidUtf8)
}

fn nullable_bytes(buf: &mut BytesMut, flexible: bool) -> Result<Option<BytesMut>> {
    match nullable_len(buf, flexible, DATA)? {
        Some(len) => take(buf, len).map(Some),
        None => Ok(None),
    }
}

/// A non-nullable array's element count, at most the bytes left (every element of these
/// arrays takes at least one byte).
fn array_len(buf: &mut BytesMut, flexible: bool) -> Result<usize> {
    let len = if flexible {
        match unsigned_varint(buf)? {
            0 => {
                return Err(ProduceDecodeError::NegativeLength {
                    what: "CompactArray",
                    len: -1,
                })
            }
            n => (n - 1) as usize,
        }
    } else {
        match get_i32(buf)? {
            n if n >= 0 => n as usize,
            n => {
                return Err(ProduceDecodeError::NegativeLength {
                    what: "Array",
                    len: i64::from(n),
                })
            }
        }
    };
    if len > buf.remaining() {
        return Err(ProduceDecodeError::ArrayTooLong {
            len,
            remaining: buf.remaining(),
        });
    }
    Ok(len)
}

fn skip_tagged_fields(buf: &mut BytesMut) -> Result<()> {
    let count = unsigned_varint(buf)?;
    for _ in 0..count {
        unsigned_varint(buf)?;
        let size = unsigned_varint(buf)? as usize;
        if buf.remaining() < size {
            return Err(ProduceDecodeError::Truncated);
        }
        buf.advance(size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use proptest::prelude::*;

    /// Partitions of a topic in a test request: (index, records).
    type Partitions = Vec<(i32, Option<Vec<u8>>)>;

    fn request(txn: Option<&str>, topics: &[(&str, Partitions)], tagged: bool) -> ProduceRequest {
        let mut r = ProduceRequest::default();
        r.transactional_id = txn.map(|t| TransactionalId(StrBytes::from_string(t.to_owned())));
        r.acks = -1;
        r.timeout_ms = 30_000;
        r.topic_data = topics
            .iter()
            .map(|(name, parts)| {
                let mut t = TopicProduceData::default();
                t.name = TopicName(StrBytes::from_string((*name).to_owned()));
                t.partition_data = parts
                    .iter()
                    .map(|(index, records)| {
                        let mut p = PartitionProduceData::default();
                        p.index = *index;
                        p.records = records.clone().map(Bytes::from);
                        if tagged {
                            p.unknown_tagged_fields
                                .insert(7, Bytes::from_static(b"tag"));
                        }
                        p
                    })
                    .collect();
                t
            })
            .collect();
        if tagged {
            r.unknown_tagged_fields.insert(3, Bytes::from_static(b"xy"));
        }
        r
    }

    fn encode(r: &ProduceRequest, version: i16) -> Vec<u8> {
        let mut out = BytesMut::new();
        r.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    /// Both decoders on the same bytes: both refuse, or both accept with the same fields.
    /// An array longer than the bytes left cannot decode, and `kafka_protocol` would first
    /// reserve memory for all its elements: it is not asked then.
    fn same_outcome(bytes: &[u8], version: i16) {
        let ours = decode_produce_request(BytesMut::from(bytes), version);
        if let Err(ProduceDecodeError::ArrayTooLong { .. }) = ours {
            return;
        }
        let theirs = ProduceRequest::decode(&mut Bytes::copy_from_slice(bytes), version);
        match (theirs, ours) {
            (Err(_), Err(_)) => {}
            (Ok(t), Ok(o)) => {
                assert_eq!(
                    t.transactional_id.as_ref().map(|s| s.0.as_str()),
                    o.transactional_id.as_deref()
                );
                assert_eq!((t.acks, t.timeout_ms), (o.acks, o.timeout_ms));
                assert_eq!(t.topic_data.len(), o.topic_data.len());
                for (tt, ot) in t.topic_data.iter().zip(&o.topic_data) {
                    assert_eq!(tt.name.0.as_str(), ot.name);
                    assert_eq!(tt.partition_data.len(), ot.partition_data.len());
                    for (tp, op) in tt.partition_data.iter().zip(&ot.partition_data) {
                        assert_eq!(tp.index, op.index);
                        assert_eq!(tp.records.as_deref(), op.records.as_deref());
                    }
                }
            }
            (t, o) => panic!(
                "v{version}: kafka_protocol {:?}, ours {:?} on {bytes:?}",
                t.map(|_| ()),
                o.map(|_| ())
            ),
        }
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes_in_every_version() {
        let topics = [
            ("orders", vec![(0, Some(vec![1u8; 70])), (3, None)]),
            ("", vec![]),
            ("t", vec![(-1, Some(vec![]))]),
        ];
        for version in MIN_VERSION..=MAX_VERSION {
            for txn in [None, Some("txn-1")] {
                let tagged = version >= FLEXIBLE_SINCE;
                let r = request(txn, &topics, tagged);
                let bytes = encode(&r, version);
                let decoded = decode_produce_request(BytesMut::from(&bytes[..]), version).unwrap();
                assert_eq!(decoded.transactional_id.as_deref(), txn);
                assert_eq!((decoded.acks, decoded.timeout_ms), (-1, 30_000));
                assert_eq!(decoded.topic_data.len(), 3);
                assert_eq!(decoded.topic_data[0].name, "orders");
                let p = &decoded.topic_data[0].partition_data;
                assert_eq!((p[0].index, p[1].index), (0, 3));
                assert_eq!(p[0].records.as_deref(), Some(&[1u8; 70][..]));
                assert!(p[1].records.is_none());
                assert_eq!(
                    decoded.topic_data[2].partition_data[0].records.as_deref(),
                    Some(&[][..])
                );
                // Every truncation is refused by both, or accepted by both alike.
                for len in 0..bytes.len() {
                    same_outcome(&bytes[..len], version);
                }
            }
        }
    }

    #[test]
    fn records_are_writable_views_of_the_frame() {
        let r = request(None, &[("t", vec![(0, Some(vec![5u8; 16]))])], false);
        let mut frame = BytesMut::from(&encode(&r, 8)[..]);
        let start = frame.as_ptr() as usize;
        let body = frame.split();
        let mut decoded = decode_produce_request(body, 8).unwrap();
        let records = decoded.topic_data[0].partition_data[0]
            .records
            .as_mut()
            .unwrap();
        let offset = records.as_ptr() as usize - start;
        records[0] = 9;
        assert_eq!(records.len(), 16);
        assert!(
            offset > 0,
            "the records are not a copy: they lie inside the frame"
        );
    }

    #[test]
    fn refuses_bad_lengths_like_kafka_protocol() {
        for version in [3, 8, 9, 12] {
            // Negative or null topic array, negative name, invalid UTF-8.
            let r = request(Some("x"), &[("ab", vec![(1, Some(vec![1, 2]))])], false);
            let good = encode(&r, version);
            for i in 0..good.len() {
                for b in [0x00, 0xff, 0x80, 0x7f, 0xc3] {
                    let mut bad = good.clone();
                    bad[i] = b;
                    same_outcome(&bad, version);
                }
            }
        }
        assert_eq!(
            decode_produce_request(BytesMut::new(), 13).unwrap_err(),
            ProduceDecodeError::UnsupportedVersion(13)
        );
    }

    proptest! {
        #[test]
        fn agrees_with_kafka_protocol_on_mutated_requests(
            version in MIN_VERSION..=MAX_VERSION,
            records in proptest::collection::vec(any::<u8>(), 0..40),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let r = request(
                Some("tx"),
                &[("topic", vec![(0, Some(records)), (1, None)]), ("u", vec![(2, Some(vec![]))])],
                version >= FLEXIBLE_SINCE,
            );
            let mut bytes = encode(&r, version);
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            let cut = cut % (bytes.len() + 1);
            same_outcome(&bytes[..cut], version);
        }
    }
}
