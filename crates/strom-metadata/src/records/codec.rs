//! The binary encoding of metadata record batches, as stored in the metadata log (the Raft log
//! of the quorum and the pre-quorum single-node log). Compact and versioned, after the way Kafka
//! stores its metadata records (an api key and a version per record, fields encoded compactly);
//! the layout is Strom's own.
//!
//! # Batch
//!
//! `magic 0xB1 | format version u8 (1) | record count uvarint | record*`, and nothing after
//! the last record. `0xB1` can never start a JSON document, so a reader tells a binary batch
//! from a JSON array (`[`, what Strom wrote before this format) by its first byte
//! ([`decode_stored_batch`]).
//!
//! # Record
//!
//! `type id uvarint | record version u8 | body length uvarint | body`. Type ids are stable and
//! never reused:
//!
//! | id | record             | version | body fields, in order                                  |
//! |----|--------------------|---------|--------------------------------------------------------|
//! | 1  | `Cluster`          | 0       | cluster_id str                                          |
//! | 2  | `RegisterBroker`   | 0       | broker_id i32, host str, port u16, rack opt str, listeners* (count uvarint, then name str, host str, port u16 each) |
//! | 3  | `FenceBroker`      | 0       | broker_id i32                                           |
//! | 4  | `UnfenceBroker`    | 0       | broker_id i32                                           |
//! | 5  | `Topic`            | 0       | name str, topic_id uuid                                 |
//! | 6  | `Partition`        | 0       | topic_id uuid, partition i32, replicas \[i32\], isr \[i32\], leader i32, leader_epoch i32, partition_epoch i32, eligible_leader_replicas* \[i32\], last_known_elr* \[i32\], adding_replicas* \[i32\], removing_replicas* \[i32\] |
//! | 7  | `Config`           | 0       | resource (tag u8: 0 = topic then name str, 1 = broker then id i32), name str, value opt str |
//! | 8  | `RemoveTopic`      | 0       | topic_id uuid                                           |
//! | 9  | `ProducerIds`      | 0       | broker_id i32, next_block_start i64, block_size i64     |
//! | 10 | `UnregisterBroker` | 0       | broker_id i32                                           |
//! | 11 | `ScramCredential`  | 0       | user str, mechanism i32, salt bytes, stored_key bytes, server_key bytes, iterations i32 |
//! | 12 | `RemoveScramCredential` | 0  | user str, mechanism i32                                 |
//! | 13 | `Acl`              | 0       | id uuid, resource_type i32, resource_name str, pattern_type i32, principal str, host str, operation i32, permission i32 (Kafka's codes) |
//! | 14 | `RemoveAcl`        | 0       | id uuid                                                 |
//! | 15 | `ClientQuota`      | 0       | entity (uvarint count, then per component: type str, name opt str), key str, value opt u64 (f64 bits) |
//!
//! Field encodings: `uvarint` is unsigned LEB128 (at most 10 bytes, no overlong forms);
//! `i32`/`i64` are zigzag then uvarint; `u16` is a uvarint below 65536; `str` is a uvarint
//! byte length then UTF-8; `bytes` is a uvarint length then the bytes; `opt` is a presence byte (0 or 1) then the value if 1; `[i32]` is a
//! uvarint count then that many `i32`; `uuid` is its 16 bytes.
//!
//! # Versioning
//!
//! A record's fields only ever grow at the end of its body: a new field gets a new record
//! version and is appended after the fields of the previous one. A decoder that knows record
//! version N therefore
//! - reads records of version <= N; fields marked `*` above (added to the JSON records after
//!   their first release) may be absent at the end of a body and then decode as empty, and so
//!   will every field appended later;
//! - reads a record of a newer version by decoding the fields it knows and skipping the rest of
//!   the body, which the body length makes possible (a writer moves to a newer record version
//!   only when every reader of the log understands it, as Kafka gates it by metadata.version);
//! - refuses bytes left in the body of a record of a version it knows (corruption), an unknown
//!   type id and a newer batch format version: those are errors, never panics.
//!
//! A change that is not an append (a removed or retyped field) needs a new type id or a new
//! batch format version. Decoding is safe on hostile input: every length is checked against the
//! bytes that remain before anything is allocated.

use std::fmt;

use uuid::Uuid;

use super::{ConfigResource, MetadataRecord};
use crate::image::BrokerEndpoint;

/// First byte of a binary batch; a JSON batch starts with `[`.
pub const BATCH_MAGIC: u8 = 0xB1;
/// The batch layout this code writes and the newest it reads.
pub const BATCH_FORMAT_VERSION: u8 = 1;

const TYPE_CLUSTER: u64 = 1;
const TYPE_REGISTER_BROKER: u64 = 2;
const TYPE_FENCE_BROKER: u64 = 3;
const TYPE_UNFENCE_BROKER: u64 = 4;
const TYPE_TOPIC: u64 = 5;
const TYPE_PARTITION: u64 = 6;
const TYPE_CONFIG: u64 = 7;
const TYPE_REMOVE_TOPIC: u64 = 8;
const TYPE_PRODUCER_IDS: u64 = 9;
const TYPE_UNREGISTER_BROKER: u64 = 10;
const TYPE_SCRAM_CREDENTIAL: u64 = 11;
const TYPE_REMOVE_SCRAM_CREDENTIAL: u64 = 12;
const TYPE_ACL: u64 = 13;
const TYPE_REMOVE_ACL: u64 = 14;
const TYPE_CLIENT_QUOTA: u64 = 15;

const CONFIG_RESOURCE_TOPIC: u8 = 0;
const CONFIG_RESOURCE_BROKER: u8 = 1;
const CONFIG_RESOURCE_GROUP: u8 = 2;

/// Smallest encoded record: type id, version and body length, one byte each.
const MIN_RECORD_BYTES: usize = 3;
/// Smallest encoded listener: two empty strings and a one-byte port.
const MIN_ENDPOINT_BYTES: usize = 3;

/// Why a batch could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDecodeError {
    /// Byte offset in the batch where decoding failed.
    pub position: usize,
    pub reason: String,
}

impl fmt::Display for RecordDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.position, self.reason)
    }
}

impl std::error::Error for RecordDecodeError {}

/// The type id and current record version of `record` (see the table in the module docs).
fn type_and_version(record: &MetadataRecord) -> (u64, u8) {
    let id = match record {
        MetadataRecord::Cluster { .. } => TYPE_CLUSTER,
        MetadataRecord::RegisterBroker { .. } => TYPE_REGISTER_BROKER,
        MetadataRecord::FenceBroker { .. } => TYPE_FENCE_BROKER,
        MetadataRecord::UnfenceBroker { .. } => TYPE_UNFENCE_BROKER,
        MetadataRecord::Topic { .. } => TYPE_TOPIC,
        MetadataRecord::Partition { .. } => TYPE_PARTITION,
        MetadataRecord::Config { .. } => TYPE_CONFIG,
        MetadataRecord::RemoveTopic { .. } => TYPE_REMOVE_TOPIC,
        MetadataRecord::ProducerIds { .. } => TYPE_PRODUCER_IDS,
        MetadataRecord::UnregisterBroker { .. } => TYPE_UNREGISTER_BROKER,
        MetadataRecord::ScramCredential { .. } => TYPE_SCRAM_CREDENTIAL,
        MetadataRecord::RemoveScramCredential { .. } => TYPE_REMOVE_SCRAM_CREDENTIAL,
        MetadataRecord::Acl { .. } => TYPE_ACL,
        MetadataRecord::RemoveAcl { .. } => TYPE_REMOVE_ACL,
        MetadataRecord::ClientQuota { .. } => TYPE_CLIENT_QUOTA,
    };
    (
        id,
        current_version(id).expect("every record type has a version"),
    )
}

/// The newest record version of type `id` this code knows; `None` for an unknown type.
fn current_version(id: u64) -> Option<u8> {
    match id {
        TYPE_CLUSTER..=TYPE_CLIENT_QUOTA => Some(0),
        _ => None,
    }
}

/// Encodes `records` as one binary batch.
pub fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + records.len() * 48);
    out.push(BATCH_MAGIC);
    out.push(BATCH_FORMAT_VERSION);
    put_uvarint(&mut out, records.len() as u64);
    let mut body = Vec::new();
    for record in records {
        let (id, version) = type_and_version(record);
        body.clear();
        encode_body(&mut body, record);
        put_uvarint(&mut out, id);
        out.push(version);
        put_uvarint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    out
}

fn encode_body(out: &mut Vec<u8>, record: &MetadataRecord) {
    match record {
        MetadataRecord::Cluster { cluster_id } => put_str(out, cluster_id),
        MetadataRecord::RegisterBroker {
            broker_id,
            host,
            port,
            rack,
            listeners,
        } => {
            put_i32(out, *broker_id);
            put_str(out, host);
            put_uvarint(out, u64::from(*port));
            put_opt_str(out, rack.as_deref());
            put_uvarint(out, listeners.len() as u64);
            for l in listeners {
                put_str(out, &l.name);
                put_str(out, &l.host);
                put_uvarint(out, u64::from(l.port));
            }
        }
        MetadataRecord::ScramCredential {
            user,
            mechanism,
            salt,
            stored_key,
            server_key,
            iterations,
        } => {
            put_str(out, user);
            put_i32(out, i32::from(*mechanism));
            put_bytes(out, salt);
            put_bytes(out, stored_key);
            put_bytes(out, server_key);
            put_i32(out, *iterations);
        }
        MetadataRecord::RemoveScramCredential { user, mechanism } => {
            put_str(out, user);
            put_i32(out, i32::from(*mechanism));
        }
        MetadataRecord::FenceBroker { broker_id }
        | MetadataRecord::UnfenceBroker { broker_id }
        | MetadataRecord::UnregisterBroker { broker_id } => put_i32(out, *broker_id),
        MetadataRecord::Topic { name, topic_id } => {
            put_str(out, name);
            out.extend_from_slice(topic_id.as_bytes());
        }
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
            eligible_leader_replicas,
            last_known_elr,
            adding_replicas,
            removing_replicas,
        } => {
            out.extend_from_slice(topic_id.as_bytes());
            put_i32(out, *partition);
            put_i32s(out, replicas);
            put_i32s(out, isr);
            put_i32(out, *leader);
            put_i32(out, *leader_epoch);
            put_i32(out, *partition_epoch);
            put_i32s(out, eligible_leader_replicas);
            put_i32s(out, last_known_elr);
            put_i32s(out, adding_replicas);
            put_i32s(out, removing_replicas);
        }
        MetadataRecord::Config {
            resource,
            name,
            value,
        } => {
            match resource {
                ConfigResource::Topic(topic) => {
                    out.push(CONFIG_RESOURCE_TOPIC);
                    put_str(out, topic);
                }
                ConfigResource::Broker(id) => {
                    out.push(CONFIG_RESOURCE_BROKER);
                    put_i32(out, *id);
                }
                ConfigResource::Group(group) => {
                    out.push(CONFIG_RESOURCE_GROUP);
                    put_str(out, group);
                }
            }
            put_str(out, name);
            put_opt_str(out, value.as_deref());
        }
        MetadataRecord::RemoveTopic { topic_id } => out.extend_from_slice(topic_id.as_bytes()),
        MetadataRecord::Acl { id, binding } => {
            out.extend_from_slice(id.as_bytes());
            put_i32(out, i32::from(binding.resource_type.code()));
            put_str(out, &binding.resource_name);
            put_i32(out, i32::from(binding.pattern_type.code()));
            put_str(out, &binding.principal);
            put_str(out, &binding.host);
            put_i32(out, i32::from(binding.operation.code()));
            put_i32(out, i32::from(binding.permission.code()));
        }
        MetadataRecord::RemoveAcl { id } => out.extend_from_slice(id.as_bytes()),
        MetadataRecord::ClientQuota {
            entity,
            key,
            value_bits,
        } => {
            put_uvarint(out, entity.0.len() as u64);
            for (entity_type, name) in &entity.0 {
                put_str(out, entity_type);
                put_opt_str(out, name.as_deref());
            }
            put_str(out, key);
            match value_bits {
                None => out.push(0),
                Some(bits) => {
                    out.push(1);
                    put_uvarint(out, *bits);
                }
            }
        }
        MetadataRecord::ProducerIds {
            broker_id,
            next_block_start,
            block_size,
        } => {
            put_i32(out, *broker_id);
            put_i64(out, *next_block_start);
            put_i64(out, *block_size);
        }
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    put_uvarint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_i32s(out: &mut Vec<u8>, values: &[i32]) {
    put_uvarint(out, values.len() as u64);
    for v in values {
        put_i32(out, *v);
    }
}

/// Decodes a stored batch: binary if it starts with [`BATCH_MAGIC`], else the JSON array of
/// records that Strom wrote before the binary format.
pub fn decode_stored_batch(bytes: &[u8]) -> Result<Vec<MetadataRecord>, String> {
    if bytes.first() == Some(&BATCH_MAGIC) {
        decode_batch(bytes).map_err(|e| format!("binary metadata batch: {e}"))
    } else {
        serde_json::from_slice(bytes).map_err(|e| format!("JSON metadata batch: {e}"))
    }
}

/// Decodes one binary batch (see the module docs); the whole of `bytes` must be the batch.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<MetadataRecord>, RecordDecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let magic = r.u8()?;
    if magic != BATCH_MAGIC {
        return Err(r.error_at(
            0,
            format!("magic byte {magic:#04x}, expected {BATCH_MAGIC:#04x}"),
        ));
    }
    let format = r.u8()?;
    if format == 0 || format > BATCH_FORMAT_VERSION {
        return Err(r.error_at(
            1,
            format!("batch format version {format}, this reader knows 1..={BATCH_FORMAT_VERSION}"),
        ));
    }
    let count = r.count(MIN_RECORD_BYTES)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        records.push(decode_record(&mut r)?);
    }
    if r.remaining() > 0 {
        return Err(r.error(format!(
            "{} bytes after the last of {count} records",
            r.remaining()
        )));
    }
    Ok(records)
}

fn decode_record(r: &mut Reader<'_>) -> Result<MetadataRecord, RecordDecodeError> {
    let start = r.pos;
    let id = r.uvarint()?;
    let Some(known) = current_version(id) else {
        return Err(r.error_at(start, format!("unknown record type id {id}")));
    };
    let version = r.u8()?;
    let len = r.uvarint()?;
    if len > r.remaining() as u64 {
        return Err(r.error(format!(
            "record body of {len} bytes, only {} left",
            r.remaining()
        )));
    }
    let body_start = r.pos;
    let body_end = body_start + len as usize;
    let mut b = Reader {
        bytes: &r.bytes[..body_end],
        pos: body_start,
    };
    let record = decode_body(&mut b, id)?;
    if b.remaining() > 0 && version <= known {
        return Err(b.error(format!(
            "{} bytes left in the body of a version {version} record of type {id}",
            b.remaining()
        )));
    }
    // A newer record version: its trailing fields are unknown here and skipped.
    r.pos = body_end;
    Ok(record)
}

fn decode_body(b: &mut Reader<'_>, id: u64) -> Result<MetadataRecord, RecordDecodeError> {
    Ok(match id {
        TYPE_CLUSTER => MetadataRecord::Cluster {
            cluster_id: b.string()?,
        },
        TYPE_REGISTER_BROKER => {
            let broker_id = b.i32()?;
            let host = b.string()?;
            let port = b.u16()?;
            let rack = b.opt_string()?;
            let listeners = if b.remaining() == 0 {
                Vec::new()
            } else {
                let n = b.count(MIN_ENDPOINT_BYTES)?;
                let mut listeners = Vec::with_capacity(n);
                for _ in 0..n {
                    listeners.push(BrokerEndpoint {
                        name: b.string()?,
                        host: b.string()?,
                        port: b.u16()?,
                    });
                }
                listeners
            };
            MetadataRecord::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
                listeners,
            }
        }
        TYPE_FENCE_BROKER => MetadataRecord::FenceBroker {
            broker_id: b.i32()?,
        },
        TYPE_UNFENCE_BROKER => MetadataRecord::UnfenceBroker {
            broker_id: b.i32()?,
        },
        TYPE_UNREGISTER_BROKER => MetadataRecord::UnregisterBroker {
            broker_id: b.i32()?,
        },
        TYPE_SCRAM_CREDENTIAL => MetadataRecord::ScramCredential {
            user: b.string()?,
            mechanism: b.mechanism()?,
            salt: b.bytes()?,
            stored_key: b.bytes()?,
            server_key: b.bytes()?,
            iterations: b.i32()?,
        },
        TYPE_ACL => MetadataRecord::Acl {
            id: b.uuid()?,
            binding: crate::acl::AclBinding {
                resource_type: b.acl_code("resource type", crate::acl::ResourceType::from_code)?,
                resource_name: b.string()?,
                pattern_type: b.acl_code("pattern type", crate::acl::PatternType::from_code)?,
                principal: b.string()?,
                host: b.string()?,
                operation: b.acl_code("operation", crate::acl::AclOperation::from_code)?,
                permission: b.acl_code("permission", crate::acl::AclPermission::from_code)?,
            },
        },
        TYPE_REMOVE_ACL => MetadataRecord::RemoveAcl { id: b.uuid()? },
        TYPE_CLIENT_QUOTA => {
            // A component is at least a type length and a presence byte.
            let n = b.count(2)?;
            let mut components = Vec::with_capacity(n);
            for _ in 0..n {
                components.push((b.string()?, b.opt_string()?));
            }
            MetadataRecord::ClientQuota {
                entity: crate::quota::QuotaEntity(components),
                key: b.string()?,
                value_bits: b.opt_uvarint()?,
            }
        }
        TYPE_REMOVE_SCRAM_CREDENTIAL => MetadataRecord::RemoveScramCredential {
            user: b.string()?,
            mechanism: b.mechanism()?,
        },
        TYPE_TOPIC => MetadataRecord::Topic {
            name: b.string()?,
            topic_id: b.uuid()?,
        },
        TYPE_PARTITION => MetadataRecord::Partition {
            topic_id: b.uuid()?,
            partition: b.i32()?,
            replicas: b.i32s()?,
            isr: b.i32s()?,
            leader: b.i32()?,
            leader_epoch: b.i32()?,
            partition_epoch: b.i32()?,
            eligible_leader_replicas: b.trailing_i32s()?,
            last_known_elr: b.trailing_i32s()?,
            adding_replicas: b.trailing_i32s()?,
            removing_replicas: b.trailing_i32s()?,
        },
        TYPE_CONFIG => {
            let tag_at = b.pos;
            let resource = match b.u8()? {
                CONFIG_RESOURCE_TOPIC => ConfigResource::Topic(b.string()?),
                CONFIG_RESOURCE_BROKER => ConfigResource::Broker(b.i32()?),
                CONFIG_RESOURCE_GROUP => ConfigResource::Group(b.string()?),
                other => {
                    return Err(b.error_at(tag_at, format!("unknown config resource tag {other}")))
                }
            };
            MetadataRecord::Config {
                resource,
                name: b.string()?,
                value: b.opt_string()?,
            }
        }
        TYPE_REMOVE_TOPIC => MetadataRecord::RemoveTopic {
            topic_id: b.uuid()?,
        },
        TYPE_PRODUCER_IDS => MetadataRecord::ProducerIds {
            broker_id: b.i32()?,
            next_block_start: b.i64()?,
            block_size: b.i64()?,
        },
        other => return Err(b.error(format!("unknown record type id {other}"))),
    })
}

/// A cursor over `bytes[pos..]`; every read checks what is left first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn error(&self, reason: String) -> RecordDecodeError {
        self.error_at(self.pos, reason)
    }

    fn error_at(&self, position: usize, reason: String) -> RecordDecodeError {
        RecordDecodeError { position, reason }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], RecordDecodeError> {
        if self.remaining() < n {
            return Err(self.error(format!(
                "truncated: {what} needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let bytes = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, RecordDecodeError> {
        Ok(self.take(1, "a byte")?[0])
    }

    fn uvarint(&mut self) -> Result<u64, RecordDecodeError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte holds only the top bit of a u64.
            if i == 9 && bits > 1 {
                return Err(self.error_at(start, "varint overflows 64 bits".into()));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(self.error_at(start, "overlong varint".into()));
                }
                return Ok(value);
            }
        }
        Err(self.error_at(start, "varint longer than 10 bytes".into()))
    }

    fn u32(&mut self, what: &str) -> Result<u32, RecordDecodeError> {
        let start = self.pos;
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| self.error_at(start, format!("{what} {v} out of range")))
    }

    fn i32(&mut self) -> Result<i32, RecordDecodeError> {
        let z = self.u32("zigzag i32")?;
        Ok(((z >> 1) as i32) ^ -((z & 1) as i32))
    }

    fn i64(&mut self) -> Result<i64, RecordDecodeError> {
        let z = self.uvarint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn u16(&mut self) -> Result<u16, RecordDecodeError> {
        let start = self.pos;
        let v = self.uvarint()?;
        u16::try_from(v).map_err(|_| self.error_at(start, format!("port {v} out of range")))
    }

    /// A collection length, refused if its elements (at least `min_bytes` each) cannot fit in
    /// what is left: a hostile count never becomes a large allocation.
    fn count(&mut self, min_bytes: usize) -> Result<usize, RecordDecodeError> {
        let start = self.pos;
        let n = self.uvarint()?;
        if n > (self.remaining() / min_bytes) as u64 {
            return Err(self.error_at(
                start,
                format!(
                    "truncated: {n} elements cannot fit in the {} bytes left",
                    self.remaining()
                ),
            ));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, RecordDecodeError> {
        let start = self.pos;
        let len = self.uvarint()?;
        if len > self.remaining() as u64 {
            return Err(self.error_at(
                start,
                format!("truncated: {len} bytes, {} left", self.remaining()),
            ));
        }
        Ok(self.take(len as usize, "bytes")?.to_vec())
    }

    /// One of Kafka's ACL enum codes (an i32 on the wire), known to `from_code`.
    fn acl_code<T>(
        &mut self,
        what: &str,
        from_code: fn(i8) -> Option<T>,
    ) -> Result<T, RecordDecodeError> {
        let start = self.pos;
        let v = self.i32()?;
        i8::try_from(v)
            .ok()
            .and_then(from_code)
            .ok_or_else(|| self.error_at(start, format!("unknown ACL {what} code {v}")))
    }

    /// A SCRAM mechanism id (an i32 on the wire, an i8 in the record).
    fn mechanism(&mut self) -> Result<i8, RecordDecodeError> {
        let start = self.pos;
        let v = self.i32()?;
        i8::try_from(v).map_err(|_| self.error_at(start, format!("mechanism {v} out of range")))
    }

    fn string(&mut self) -> Result<String, RecordDecodeError> {
        let start = self.pos;
        let len = self.uvarint()?;
        if len > self.remaining() as u64 {
            return Err(self.error_at(
                start,
                format!(
                    "truncated: string of {len} bytes, {} left",
                    self.remaining()
                ),
            ));
        }
        let bytes = self.take(len as usize, "a string")?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.error_at(start, format!("string is not UTF-8: {e}")))
    }

    fn opt_uvarint(&mut self) -> Result<Option<u64>, RecordDecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.uvarint()?)),
            other => Err(self.error_at(at, format!("presence byte {other}, expected 0 or 1"))),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, RecordDecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            other => Err(self.error_at(at, format!("presence byte {other}, expected 0 or 1"))),
        }
    }

    fn i32s(&mut self) -> Result<Vec<i32>, RecordDecodeError> {
        let n = self.count(1)?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(self.i32()?);
        }
        Ok(values)
    }

    /// A `[i32]` field added after a record's first release: absent (empty) at the body's end.
    fn trailing_i32s(&mut self) -> Result<Vec<i32>, RecordDecodeError> {
        if self.remaining() == 0 {
            Ok(Vec::new())
        } else {
            self.i32s()
        }
    }

    fn uuid(&mut self) -> Result<Uuid, RecordDecodeError> {
        let bytes: [u8; 16] = self
            .take(16, "a uuid")?
            .try_into()
            .expect("take returned 16 bytes");
        Ok(Uuid::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests;
