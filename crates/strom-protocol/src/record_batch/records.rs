//! Records inside an uncompressed v2 batch: zigzag varint framing (protocol guide "Record"),
//! parsed lazily and without allocation. Every length is checked against the remaining bytes.

use super::{BatchError, InvalidRecordReason};

/// One record of a batch; offsets and timestamps are already made absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// `baseOffset + offsetDelta`.
    pub offset: i64,
    /// `baseTimestamp + timestampDelta` (the producer's timestamp).
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    header_count: i32,
    headers: &'a [u8],
}

/// A record header: key (never null) and optional value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Option<i64> {
        // Fast path: most fields of a record (attributes aside) fit one byte (deltas under
        // 64, a null key, no headers). Produce validation reads every field of every record.
        if let Some((&b, rest)) = self.buf.split_first() {
            if b & 0x80 == 0 {
                self.buf = rest;
                return Some(i64::from(b >> 1) ^ -i64::from(b & 1));
            }
        }
        let mut raw: u64 = 0;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        let v = self.varlong()?;
        i32::try_from(v).ok()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len < 0 {
            return Some(None);
        }
        self.take(len as usize).map(Some)
    }

    fn i8(&mut self) -> Option<i8> {
        self.take(1).map(|b| b[0] as i8)
    }

    /// Skips a nullable byte string (length -1 is null).
    fn skip_nullable(&mut self) -> Option<()> {
        let len = self.varint()?;
        if len >= 0 {
            self.take(len as usize)?;
        }
        Some(())
    }
}

/// Iterates the records of an uncompressed batch. Ends after `recordsCount` records or at the
/// first malformed one (which is yielded as an error).
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    remaining: i32,
    index: u32,
    base_offset: i64,
    base_timestamp: i64,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub(crate) fn new(buf: &'a [u8], count: i32, base_offset: i64, base_timestamp: i64) -> Self {
        Self {
            buf,
            remaining: count.max(0),
            index: 0,
            base_offset,
            base_timestamp,
            failed: false,
        }
    }

    /// Bytes not consumed by the records read so far.
    pub fn remainder(&self) -> &'a [u8] {
        self.buf
    }

    /// The offset delta of the next record, checking its framing exactly as `next` does (every
    /// length within the record, a non-null key per header, the headers ending the record)
    /// without building it: what produce validation needs of each record. An error ends the
    /// iteration, as in `next`.
    pub fn next_offset_delta(&mut self) -> Option<Result<i32, BatchError>> {
        self.step(Self::skim_one)
    }

    /// Reads the next record with `read` (`None`: malformed), counting it; the first
    /// malformed record is an error naming its index and ends the iteration.
    fn step<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Result<T, BatchError>> {
        if self.failed || self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let index = self.index;
        self.index += 1;
        match read(self) {
            Some(item) => Some(Ok(item)),
            None => {
                self.failed = true;
                Some(Err(BatchError::InvalidRecord {
                    reason: InvalidRecordReason::MalformedRecords {
                        record_index: index,
                    },
                }))
            }
        }
    }

    fn skim_one(&mut self) -> Option<i32> {
        let mut outer = Cursor { buf: self.buf };
        let len = outer.varint()?;
        let mut c = Cursor {
            buf: outer.take(usize::try_from(len).ok()?)?,
        };
        c.i8()?;
        c.varlong()?;
        let offset_delta = c.varint()?;
        c.skip_nullable()?;
        c.skip_nullable()?;
        let header_count = c.varint()?;
        if header_count < 0 {
            return None;
        }
        for _ in 0..header_count {
            let key_len = usize::try_from(c.varint()?).ok()?;
            c.take(key_len)?;
            c.skip_nullable()?;
        }
        if !c.buf.is_empty() {
            return None;
        }
        self.buf = outer.buf;
        Some(offset_delta)
    }

    fn parse_one(&mut self) -> Option<Record<'a>> {
        let mut outer = Cursor { buf: self.buf };
        let len = outer.varint()?;
        let body = outer.take(usize::try_from(len).ok()?)?;
        let mut c = Cursor { buf: body };
        let attributes = c.i8()?;
        let timestamp_delta = c.varlong()?;
        let offset_delta = c.varint()?;
        let key = c.nullable_bytes()?;
        let value = c.nullable_bytes()?;
        let header_count = c.varint()?;
        if header_count < 0 {
            return None;
        }
        let headers = c.buf;
        // Headers must fill the rest of the record exactly.
        let mut check = HeaderIter {
            cursor: Cursor { buf: headers },
            remaining: header_count,
        };
        for h in check.by_ref() {
            h.ok()?;
        }
        if !check.cursor.buf.is_empty() {
            return None;
        }
        self.buf = outer.buf;
        Some(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            offset: self.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp: self.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            header_count,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(Self::parse_one)
    }
}

impl<'a> Record<'a> {
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            cursor: Cursor { buf: self.headers },
            remaining: self.header_count,
        }
    }
}

/// Iterates a record's headers.
pub struct HeaderIter<'a> {
    cursor: Cursor<'a>,
    remaining: i32,
}

impl std::fmt::Debug for HeaderIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderIter")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<RecordHeader<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        let parsed = (|| {
            let key = self.cursor.nullable_bytes()??;
            let value = self.cursor.nullable_bytes()?;
            Some(RecordHeader { key, value })
        })();
        match parsed {
            Some(h) => Some(Ok(h)),
            None => {
                self.remaining = 0;
                Some(Err(BatchError::InvalidRecord {
                    reason: InvalidRecordReason::MalformedRecords { record_index: 0 },
                }))
            }
        }
    }
}

/// Appends a zigzag varlong (used by the builder).
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

#[cfg(test)]
mod tests {
    use super::super::builder::BatchBuilder;
    use super::super::RecordBatchHeader;
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ]
        .into_iter()
        // Every one-byte encoding (-64..=63, the fast path) and its neighbours.
        .chain(-200..=200)
        {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            let mut c = Cursor { buf: &out };
            assert_eq!(c.varlong(), Some(v));
            assert!(c.buf.is_empty());
        }
        assert_eq!(Cursor { buf: &[0x80; 11] }.varlong(), None);
    }

    #[test]
    fn records_and_headers_parse() {
        let mut b = BatchBuilder::new(100);
        b.push(Some(b"key"), None, 50).push(None, Some(b"val"), 70);
        b.headers = vec![(b"h".to_vec(), Some(b"hv".to_vec()))];
        let buf = b.build();
        let h = RecordBatchHeader::parse(&buf).unwrap();
        let recs: Vec<_> = h.records().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].offset, recs[0].timestamp), (100, 50));
        assert_eq!((recs[1].offset, recs[1].timestamp), (101, 70));
        assert_eq!(recs[0].key, Some(&b"key"[..]));
        assert_eq!(recs[0].value, None);
        let hs: Vec<_> = recs[1].headers().map(|h| h.unwrap()).collect();
        assert_eq!(
            hs,
            vec![RecordHeader {
                key: b"h",
                value: Some(b"hv")
            }]
        );
    }

    /// Record areas: three records with two headers (one with a null value), one byte
    /// replaced, or cut short.
    fn mutated_records(pos: usize, byte: u8, cut: usize) -> (Vec<u8>, i32) {
        let mut b = BatchBuilder::new(0);
        b.push(Some(b"key"), None, 50)
            .push(None, Some(b"value"), 70)
            .push(Some(b""), Some(b"v"), 90);
        b.headers = vec![(b"h".to_vec(), Some(b"hv".to_vec())), (b"n".to_vec(), None)];
        let buf = b.build();
        let h = RecordBatchHeader::parse(&buf).unwrap();
        let mut area = h.records().remainder().to_vec();
        let pos = pos % area.len();
        area[pos] = byte;
        area.truncate(area.len() - cut % 4);
        (area, h.records_count())
    }

    proptest::proptest! {
        /// Produce validation's skim (`next_offset_delta`) accepts and refuses exactly the
        /// records the full parse does, at the same record, leaving the same remainder.
        #[test]
        fn skimming_agrees_with_parsing(
            pos in 0usize..200,
            byte in proptest::num::u8::ANY,
            cut in 0usize..4,
            count in 0i32..5,
        ) {
            let (area, built) = mutated_records(pos, byte, cut);
            for count in [built, count] {
                let mut parsed = RecordIter::new(&area, count, 0, 0);
                let mut skimmed = RecordIter::new(&area, count, 0, 0);
                let a: Vec<_> = parsed.by_ref().map(|r| r.map(|r| r.offset_delta)).collect();
                let b: Vec<_> = std::iter::from_fn(|| skimmed.next_offset_delta()).collect();
                proptest::prop_assert_eq!(a, b);
                proptest::prop_assert_eq!(parsed.remainder(), skimmed.remainder());
            }
        }
    }

    #[test]
    fn truncated_record_is_an_error() {
        let mut b = BatchBuilder::new(0);
        b.push(None, Some(b"value"), 1);
        let buf = b.build();
        let cut = &buf[..buf.len() - 2];
        let h = RecordBatchHeader::parse(cut).unwrap();
        let first = h.records().next().unwrap();
        assert!(first.is_err());
    }
}
