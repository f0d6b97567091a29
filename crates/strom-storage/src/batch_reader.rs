//! Walks the batches of a segment file with large positioned reads (recovery, index rebuild,
//! producer-state replay) or single-header preads (read path). Never trusts a length without
//! checking it against the bytes that remain.

use strom_protocol::record_batch::{RecordBatchHeader, HEADER_SIZE, LOG_OVERHEAD};

use crate::fs::FsFile;

const CHUNK: usize = 4 << 20;

/// Why a walk stopped before the end of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WalkStop {
    /// Fewer bytes than the header or `batchLength` promises.
    Truncated {
        position: u64,
        needed: u64,
        available: u64,
    },
    /// `batchLength` too small to be a v2 batch.
    BadLength {
        position: u64,
        batch_length: i32,
    },
    Io {
        position: u64,
        error: String,
    },
}

/// Reads the 61-byte header at `position` if a whole batch of that size fits before `end`.
pub(crate) fn header_at(file: &dyn FsFile, position: u64, end: u64) -> Option<[u8; HEADER_SIZE]> {
    if position + HEADER_SIZE as u64 > end {
        return None;
    }
    let mut h = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut h, position).ok()?;
    let total = RecordBatchHeader::parse(&h).ok()?.batch_length();
    if total < (HEADER_SIZE - LOG_OVERHEAD) as i32
        || position + LOG_OVERHEAD as u64 + total as u64 > end
    {
        return None;
    }
    Some(h)
}

/// Sequential batch reader over `[start, end)` of a file.
pub(crate) struct BatchReader<'f> {
    file: &'f dyn FsFile,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'f> BatchReader<'f> {
    pub fn new(file: &'f dyn FsFile, start: u64, end: u64) -> Self {
        Self {
            file,
            pos: start,
            end,
            buf: Vec::new(),
            buf_start: start,
        }
    }

    /// Position of the next batch.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Makes `[at, at + need)` available in `buf`.
    fn fill(&mut self, at: u64, need: usize) -> Result<(), WalkStop> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if at >= self.buf_start && at + need as u64 <= buf_end {
            return Ok(());
        }
        let want = need.max(CHUNK).min((self.end - at) as usize);
        self.buf.resize(want, 0);
        self.file
            .read_exact_at(&mut self.buf, at)
            .map_err(|e| WalkStop::Io {
                position: at,
                error: e.to_string(),
            })?;
        self.buf_start = at;
        Ok(())
    }

    /// The next batch as `(position, bytes)`; with `whole == false` only its header is
    /// guaranteed in `bytes`. `Ok(None)` at the exact end of the range.
    pub fn next_batch(&mut self, whole: bool) -> Result<Option<(u64, &[u8])>, WalkStop> {
        let at = self.pos;
        if at == self.end {
            return Ok(None);
        }
        let available = self.end - at;
        if available < HEADER_SIZE as u64 {
            return Err(WalkStop::Truncated {
                position: at,
                needed: HEADER_SIZE as u64,
                available,
            });
        }
        self.fill(at, HEADER_SIZE)?;
        let off = (at - self.buf_start) as usize;
        let batch_length = RecordBatchHeader::parse(&self.buf[off..])
            .map(|h| h.batch_length())
            .unwrap_or(0);
        if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(WalkStop::BadLength {
                position: at,
                batch_length,
            });
        }
        let total = LOG_OVERHEAD as u64 + batch_length as u64;
        if total > available {
            return Err(WalkStop::Truncated {
                position: at,
                needed: total,
                available,
            });
        }
        let len = if whole { total as usize } else { HEADER_SIZE };
        self.fill(at, len)?;
        self.pos = at + total;
        let off = (at - self.buf_start) as usize;
        Ok(Some((at, &self.buf[off..off + len])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Fs, OpenMode, SimFs};
    use std::path::Path;
    use strom_protocol::record_batch::builder::build_batch;

    #[test]
    fn walks_and_reports_torn_tail() {
        let fs = SimFs::new(0);
        fs.create_dir_all(Path::new("/d")).unwrap();
        let f = fs.open(Path::new("/d/f"), OpenMode::Create).unwrap();
        let f = &*f;
        let a = build_batch(0, &[(None, Some(b"aaaa"), 1)], None);
        let b = build_batch(1, &[(None, Some(&[7u8; 5000]), 2)], None);
        f.write_all_at(&a, 0).unwrap();
        f.write_all_at(&b, a.len() as u64).unwrap();
        f.write_all_at(&b[..30], (a.len() + b.len()) as u64)
            .unwrap();
        let end = (a.len() + b.len() + 30) as u64;
        let mut r = BatchReader::new(f, 0, end);
        let (p, bytes) = r.next_batch(true).unwrap().unwrap();
        assert_eq!((p, bytes), (0, &a[..]));
        let (p, bytes) = r.next_batch(false).unwrap().unwrap();
        assert_eq!((p, bytes.len()), (a.len() as u64, HEADER_SIZE));
        assert!(matches!(
            r.next_batch(true),
            Err(WalkStop::Truncated { .. })
        ));
        assert!(header_at(f, 0, end).is_some());
        assert!(header_at(f, (a.len() + b.len()) as u64, end).is_none());
    }
}
