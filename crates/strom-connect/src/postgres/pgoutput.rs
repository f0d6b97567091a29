//! A decoder of the pgoutput logical replication messages (protocol version 1), written from
//! PostgreSQL's "Logical Replication Message Formats" chapter: Begin, Commit, Origin,
//! Relation, Type, Insert, Update, Delete, Truncate and Message. Malformed input is an error,
//! never a panic.

use std::fmt;

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A column value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// An unchanged TOASTed value: not sent.
    Unchanged,
    /// The value in text form.
    Text(String),
    /// The value in binary form (only with the `binary` option).
    Binary(Vec<u8>),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: u64,
        /// Microseconds since 2000-01-01.
        timestamp: i64,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: u64,
        end_lsn: u64,
        timestamp: i64,
    },
    Origin {
        lsn: u64,
        name: String,
    },
    Relation {
        oid: u32,
        namespace: String,
        name: String,
        replica_identity: u8,
        columns: Vec<RelationColumn>,
    },
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<TupleValue>,
    },
    Update {
        relation: u32,
        /// The old key ('K') or the old row ('O'), when the server sends it.
        old: Option<(u8, Vec<TupleValue>)>,
        new: Vec<TupleValue>,
    },
    Delete {
        relation: u32,
        /// 'K' (key columns only) or 'O' (the whole old row).
        kind: u8,
        old: Vec<TupleValue>,
    },
    Truncate {
        options: u8,
        relations: Vec<u32>,
    },
    LogicalMessage {
        flags: u8,
        lsn: u64,
        prefix: String,
        content: Vec<u8>,
    },
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pgoutput: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

type R<T> = Result<T, DecodeError>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "message ends at byte {} but {n} more bytes were expected at {}",
                    self.buf.len(),
                    self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> R<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> R<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self) -> R<u32> {
        Ok(self.i32()? as u32)
    }

    fn i64(&mut self) -> R<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn u64(&mut self) -> R<u64> {
        Ok(self.i64()? as u64)
    }

    /// A NUL-terminated string.
    fn string(&mut self) -> R<String> {
        let rest = &self.buf[self.pos..];
        let nul = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| DecodeError("unterminated string".into()))?;
        let s = std::str::from_utf8(&rest[..nul])
            .map_err(|_| DecodeError("string is not UTF-8".into()))?
            .to_owned();
        self.pos += nul + 1;
        Ok(s)
    }

    fn len(&mut self) -> R<usize> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| DecodeError(format!("negative length {n}")))
    }

    fn tuple(&mut self) -> R<Vec<TupleValue>> {
        let n = self.i16()?;
        let n =
            usize::try_from(n).map_err(|_| DecodeError(format!("negative column count {n}")))?;
        let mut out = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::Unchanged,
                b't' => {
                    let len = self.len()?;
                    let b = self.take(len)?;
                    TupleValue::Text(
                        std::str::from_utf8(b)
                            .map_err(|_| DecodeError("text value is not UTF-8".into()))?
                            .to_owned(),
                    )
                }
                b'b' => {
                    let len = self.len()?;
                    TupleValue::Binary(self.take(len)?.to_vec())
                }
                k => return Err(DecodeError(format!("unknown tuple value kind {k:#04x}"))),
            });
        }
        Ok(out)
    }

    fn finished(&self) -> R<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError(format!(
                "{} bytes left after the message",
                self.buf.len() - self.pos
            )))
        }
    }
}

/// Decodes one pgoutput message.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let m = match r.u8()? {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            timestamp: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => Message::Commit {
            flags: r.u8()?,
            commit_lsn: r.u64()?,
            end_lsn: r.u64()?,
            timestamp: r.i64()?,
        },
        b'O' => Message::Origin {
            lsn: r.u64()?,
            name: r.string()?,
        },
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let n = usize::try_from(n)
                .map_err(|_| DecodeError(format!("negative column count {n}")))?;
            let mut columns = Vec::with_capacity(n.min(buf.len()));
            for _ in 0..n {
                columns.push(RelationColumn {
                    key: r.u8()? & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            }
        }
        b'Y' => Message::Type {
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'N' => Message::Insert {
                    relation,
                    new: r.tuple()?,
                },
                k => {
                    return Err(DecodeError(format!(
                        "insert: unexpected tuple tag {k:#04x}"
                    )))
                }
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut tag = r.u8()?;
            if tag == b'K' || tag == b'O' {
                old = Some((tag, r.tuple()?));
                tag = r.u8()?;
            }
            if tag != b'N' {
                return Err(DecodeError(format!(
                    "update: unexpected tuple tag {tag:#04x}"
                )));
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(DecodeError(format!(
                    "delete: unexpected tuple tag {kind:#04x}"
                )));
            }
            Message::Delete {
                relation,
                kind,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.i32()?;
            let n = usize::try_from(n)
                .map_err(|_| DecodeError(format!("negative relation count {n}")))?;
            let options = r.u8()?;
            let mut relations = Vec::with_capacity(n.min(buf.len()));
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { options, relations }
        }
        b'M' => {
            let flags = r.u8()?;
            let lsn = r.u64()?;
            let prefix = r.string()?;
            let len = r.len()?;
            Message::LogicalMessage {
                flags,
                lsn,
                prefix,
                content: r.take(len)?.to_vec(),
            }
        }
        t => return Err(DecodeError(format!("unknown message type {t:#04x}"))),
    };
    r.finished()?;
    Ok(m)
}

impl Message {
    /// The message type byte it was sent with.
    pub fn tag(&self) -> u8 {
        match self {
            Message::Begin { .. } => b'B',
            Message::Commit { .. } => b'C',
            Message::Origin { .. } => b'O',
            Message::Relation { .. } => b'R',
            Message::Type { .. } => b'Y',
            Message::Insert { .. } => b'I',
            Message::Update { .. } => b'U',
            Message::Delete { .. } => b'D',
            Message::Truncate { .. } => b'T',
            Message::LogicalMessage { .. } => b'M',
        }
    }
}

/// An LSN as PostgreSQL writes it (`16/B374D848`).
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// An LSN from PostgreSQL's text form.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }

    #[test]
    fn decodes_documented_messages() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16384u32.to_be_bytes());
        s(&mut rel, "public");
        s(&mut rel, "t");
        rel.push(b'd');
        rel.extend_from_slice(&2i16.to_be_bytes());
        rel.push(1);
        s(&mut rel, "id");
        rel.extend_from_slice(&23u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        rel.push(0);
        s(&mut rel, "name");
        rel.extend_from_slice(&25u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            decode(&rel).unwrap(),
            Message::Relation {
                oid: 16384,
                namespace: "public".into(),
                name: "t".into(),
                replica_identity: b'd',
                columns: vec![
                    RelationColumn {
                        key: true,
                        name: "id".into(),
                        type_oid: 23,
                        type_modifier: -1
                    },
                    RelationColumn {
                        key: false,
                        name: "name".into(),
                        type_oid: 25,
                        type_modifier: -1
                    },
                ],
            }
        );
        let mut upd = vec![b'U'];
        upd.extend_from_slice(&16384u32.to_be_bytes());
        upd.push(b'K');
        upd.extend_from_slice(&2i16.to_be_bytes());
        upd.extend_from_slice(b"t\0\0\0\x011n");
        upd.push(b'N');
        upd.extend_from_slice(&2i16.to_be_bytes());
        upd.extend_from_slice(b"t\0\0\0\x012u");
        assert_eq!(
            decode(&upd).unwrap(),
            Message::Update {
                relation: 16384,
                old: Some((b'K', vec![TupleValue::Text("1".into()), TupleValue::Null])),
                new: vec![TupleValue::Text("2".into()), TupleValue::Unchanged],
            }
        );
        let mut commit = vec![b'C', 0];
        commit.extend_from_slice(&1u64.to_be_bytes());
        commit.extend_from_slice(&2u64.to_be_bytes());
        commit.extend_from_slice(&3i64.to_be_bytes());
        assert_eq!(
            decode(&commit).unwrap(),
            Message::Commit {
                flags: 0,
                commit_lsn: 1,
                end_lsn: 2,
                timestamp: 3
            }
        );
        assert!(decode(&commit[..commit.len() - 1]).is_err());
        let mut longer = commit.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&[]).is_err());
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            // Decoded or refused, never a panic; what decodes is of the type its first byte says.
            if let Ok(m) = decode(&bytes) {
                prop_assert_eq!(m.tag(), bytes[0]);
            }
        }

        #[test]
        fn arbitrary_bodies_of_each_type_never_panic(
            tag in proptest::sample::select(b"BCORYIUDTM".to_vec()),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut m = vec![tag];
            m.extend(body);
            match decode(&m) {
                Ok(msg) => prop_assert_eq!(msg.tag(), tag),
                Err(e) => prop_assert!(e.to_string().starts_with("pgoutput: ")),
            }
        }
    }
}
