//! The records of `__consumer_offsets` in Kafka's own layout (the group coordinator's
//! `OffsetCommitKey`/`Value` and `GroupMetadataKey`/`Value` schemas, non-flexible versions),
//! so Kafka's tools can read Strom's log. Pure encode/decode; every length is bounds-checked.

use bytes::Bytes;
use thiserror::Error;

/// Key version 0/1: an offset commit; key version 2: group metadata.
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Strom's own KIP-848 group snapshot (`consumer/snapshot.rs`), far above Kafka's record
/// types so that no Kafka tool mistakes it for one of its own.
const CONSUMER_GROUP_KEY_VERSION: i16 = 1000;
/// Value version with the leader epoch (KIP-320) and without an expire timestamp.
const OFFSET_VALUE_VERSION: i16 = 3;
/// The only value version with an explicit expire timestamp (OffsetCommit v2–4 retention).
const OFFSET_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// Group metadata with `current_state_timestamp` (v2+) and static member ids (v3+).
const GROUP_VALUE_VERSION: i16 = 3;

/// A committed offset as stored (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set only by OffsetCommit v2–4 with an explicit `retention_time_ms`.
    pub expire_timestamp_ms: Option<i64>,
}

/// One member as stored in a group's metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's generation as stored (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Empty for groups that only store offsets.
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadataValue>,
}

/// One record of `__consumer_offsets`; a `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group_id: String,
        topic: String,
        partition: i32,
        value: Option<OffsetCommitValue>,
    },
    Group {
        group_id: String,
        value: Option<GroupMetadataValue>,
    },
    /// A KIP-848 consumer group's snapshot, as opaque bytes (`consumer/snapshot.rs`).
    ConsumerGroup {
        group_id: String,
        value: Option<Vec<u8>>,
    },
}

impl GroupRecord {
    pub fn group_id(&self) -> &str {
        match self {
            GroupRecord::Offset { group_id, .. }
            | GroupRecord::Group { group_id, .. }
            | GroupRecord::ConsumerGroup { group_id, .. } => group_id,
        }
    }
}

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("record truncated: needed {needed} bytes at position {at}")]
    Truncated { at: usize, needed: usize },
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("a string is not valid UTF-8")]
    InvalidUtf8,
    #[error("negative length {length}")]
    NegativeLength { length: i32 },
    #[error("record has no key")]
    NoKey,
}

/// Kafka's `Utils.abs(groupId.hashCode()) % partitions`: the `__consumer_offsets` partition
/// (and so the coordinator) of a group. `hashCode` is Java's over UTF-16 code units.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "__consumer_offsets must have at least one partition"
    );
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // Utils.abs maps i32::MIN to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// Encodes a record as (key, value); the value is `None` for a tombstone.
pub fn encode(record: &GroupRecord) -> (Vec<u8>, Option<Vec<u8>>) {
    match record {
        GroupRecord::Offset {
            group_id,
            topic,
            partition,
            value,
        } => {
            let mut key = Vec::new();
            put_i16(&mut key, OFFSET_COMMIT_KEY_VERSION);
            put_str(&mut key, group_id);
            put_str(&mut key, topic);
            put_i32(&mut key, *partition);
            (key, value.as_ref().map(encode_offset_value))
        }
        GroupRecord::Group { group_id, value } => {
            let mut key = Vec::new();
            put_i16(&mut key, GROUP_METADATA_KEY_VERSION);
            put_str(&mut key, group_id);
            (key, value.as_ref().map(encode_group_value))
        }
        GroupRecord::ConsumerGroup { group_id, value } => {
            let mut key = Vec::new();
            put_i16(&mut key, CONSUMER_GROUP_KEY_VERSION);
            put_str(&mut key, group_id);
            (key, value.clone())
        }
    }
}

fn encode_offset_value(v: &OffsetCommitValue) -> Vec<u8> {
    let mut out = Vec::new();
    match v.expire_timestamp_ms {
        Some(expire) => {
            put_i16(&mut out, OFFSET_VALUE_VERSION_WITH_EXPIRY);
            put_i64(&mut out, v.offset);
            put_str(&mut out, &v.metadata);
            put_i64(&mut out, v.commit_timestamp_ms);
            put_i64(&mut out, expire);
        }
        None => {
            put_i16(&mut out, OFFSET_VALUE_VERSION);
            put_i64(&mut out, v.offset);
            put_i32(&mut out, v.leader_epoch);
            put_str(&mut out, &v.metadata);
            put_i64(&mut out, v.commit_timestamp_ms);
        }
    }
    out
}

fn encode_group_value(v: &GroupMetadataValue) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, GROUP_VALUE_VERSION);
    put_str(&mut out, &v.protocol_type);
    put_i32(&mut out, v.generation_id);
    put_nullable_str(&mut out, v.protocol_name.as_deref());
    put_nullable_str(&mut out, v.leader_id.as_deref());
    put_i64(&mut out, v.current_state_timestamp_ms);
    put_i32(&mut out, v.members.len() as i32);
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        put_i32(&mut out, m.rebalance_timeout_ms);
        put_i32(&mut out, m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// Decodes a stored record; `value` is `None` for a tombstone.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<GroupRecord, RecordError> {
    let mut k = Reader::new(key.ok_or(RecordError::NoKey)?);
    match k.i16()? {
        0 | 1 => {
            let group_id = k.string()?;
            let topic = k.string()?;
            let partition = k.i32()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(GroupRecord::Offset {
                group_id,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group_id = k.string()?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(GroupRecord::Group { group_id, value })
        }
        CONSUMER_GROUP_KEY_VERSION => {
            let group_id = k.string()?;
            let value = value.map(<[u8]>::to_vec);
            Ok(GroupRecord::ConsumerGroup { group_id, value })
        }
        version => Err(RecordError::UnknownVersion {
            what: "key",
            version,
        }),
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetCommitValue, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "offset commit value",
            version,
        });
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    let expire_timestamp_ms = if version == 1 { Some(r.i64()?) } else { None };
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "group metadata value",
            version,
        });
    }
    let protocol_type = r.string()?;
    let generation_id = r.i32()?;
    let protocol_name = r.nullable_string()?;
    let leader_id = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.length()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if version >= 1 {
            rebalance_timeout_ms
        } else {
            session_timeout_ms
        };
        let subscription = Bytes::copy_from_slice(r.bytes()?);
        let assignment = Bytes::copy_from_slice(r.bytes()?);
        members.push(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation_id,
        protocol_name,
        leader_id,
        current_state_timestamp_ms,
        members,
    })
}

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Strings longer than i16::MAX cannot be written in this schema; callers bound them first
/// (group ids, topics and metadata are limited well below that by the request validation).
fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    put_i16(out, bytes.len() as i16);
    out.extend_from_slice(bytes);
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => put_i16(out, -1),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, b.len() as i32);
    out.extend_from_slice(b);
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() - self.pos < n {
            return Err(RecordError::Truncated {
                at: self.pos,
                needed: n,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }

    fn length(&mut self) -> Result<usize, RecordError> {
        let length = self.i32()?;
        usize::try_from(length).map_err(|_| RecordError::NegativeLength { length })
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| RecordError::InvalidUtf8)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }

    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.length()?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_hash_code() {
        // "group".hashCode() == 98629247 in Java; 98629247 % 50 == 47.
        assert_eq!(partition_for("group", 50), 47);
        // "".hashCode() == 0.
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Negative hash: "my-group".hashCode() == -1906497762 → 1906497762 % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        // Non-BMP characters hash as two UTF-16 surrogates, like Java: 1871882 % 50 == 32.
        assert_eq!(partition_for("g\u{1F600}", 50), 32);
    }

    #[test]
    fn offset_record_round_trips_both_value_versions() {
        for expire in [None, Some(1_700_000_100_000)] {
            let record = GroupRecord::Offset {
                group_id: "g".into(),
                topic: "orders".into(),
                partition: 7,
                value: Some(OffsetCommitValue {
                    offset: 42,
                    leader_epoch: if expire.is_some() { -1 } else { 3 },
                    metadata: "meta".into(),
                    commit_timestamp_ms: 1_700_000_000_000,
                    expire_timestamp_ms: expire,
                }),
            };
            let (k, v) = encode(&record);
            assert_eq!(decode(Some(&k), v.as_deref()), Ok(record));
        }
    }

    #[test]
    fn group_record_round_trips_and_tombstones_decode() {
        let record = GroupRecord::Group {
            group_id: "g".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation_id: 5,
                protocol_name: Some("range".into()),
                leader_id: Some("m-1".into()),
                current_state_timestamp_ms: 99,
                members: vec![MemberMetadataValue {
                    member_id: "m-1".into(),
                    group_instance_id: Some("i-1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        };
        let (k, v) = encode(&record);
        assert_eq!(decode(Some(&k), v.as_deref()), Ok(record));
        let tomb = GroupRecord::Group {
            group_id: "g".into(),
            value: None,
        };
        let (k, v) = encode(&tomb);
        assert!(v.is_none());
        assert_eq!(decode(Some(&k), None), Ok(tomb));
    }

    #[test]
    fn truncated_and_unknown_records_are_errors_not_panics() {
        let (k, v) = encode(&GroupRecord::Offset {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetCommitValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
                expire_timestamp_ms: None,
            }),
        });
        let v = v.unwrap_or_default();
        for cut in 0..v.len() {
            assert!(decode(Some(&k), Some(&v[..cut])).is_err(), "cut at {cut}");
        }
        for cut in 0..k.len() {
            assert!(
                decode(Some(&k[..cut]), Some(&v)).is_err(),
                "key cut at {cut}"
            );
        }
        assert_eq!(
            decode(Some(&[0, 9]), None),
            Err(RecordError::UnknownVersion {
                what: "key",
                version: 9
            })
        );
        assert_eq!(decode(None, None), Err(RecordError::NoKey));
        // A member count far beyond the bytes present fails without allocating it.
        let mut bad = vec![
            0, 3, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        bad.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode(Some(&k), None).is_ok());
        let (gk, _) = encode(&GroupRecord::Group {
            group_id: "g".into(),
            value: None,
        });
        assert!(matches!(
            decode(Some(&gk), Some(&bad)),
            Err(RecordError::Truncated { .. })
        ));
    }
}
