//! A byte range of a segment file handed to the fetch path. It owns the open file, so the
//! bytes stay readable even if retention unlinks the segment meanwhile (fine on Unix).

use std::fs::File;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::fs::FsFile;

/// `len` bytes at `position` of a segment's `.log` file: whole batches only.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<dyn FsFile>,
    pub position: u64,
    pub len: usize,
}

impl FileSlice {
    pub(crate) fn new(file: Arc<dyn FsFile>, position: u64, len: usize) -> Self {
        Self {
            file,
            position,
            len,
        }
    }

    /// The segment file, for `sendfile`-style zero-copy transfer (`None` on a simulated disk).
    pub fn file(&self) -> Option<&File> {
        self.file.as_std()
    }

    /// Reads `buf.len()` bytes starting `from` bytes into the slice (a positioned read, so a
    /// caller can stream a large slice in pieces).
    pub fn read_exact_at(&self, buf: &mut [u8], from: u64) -> std::io::Result<()> {
        if from + buf.len() as u64 > self.len as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "read past the end of the file slice",
            ));
        }
        self.file.read_exact_at(buf, self.position + from)
    }

    /// The offset after the slice's last batch (its last offset + 1), from the batch headers
    /// alone: one small positioned read per batch, the records are not read. `None` for an
    /// empty slice. read_committed fetches use it to bound the aborted transactions they
    /// list while the records themselves go to the socket from the file.
    pub fn next_offset(&self) -> std::io::Result<Option<i64>> {
        // baseOffset (8) and batchLength (4), then epoch (4), magic (1), crc (4),
        // attributes (2) and lastOffsetDelta (4).
        const HEADER: usize = 27;
        const LENGTH_FIELDS: u64 = 12;
        let mut header = [0u8; HEADER];
        let mut pos = 0u64;
        let mut next = None;
        while pos + HEADER as u64 <= self.len as u64 {
            self.read_exact_at(&mut header, pos)?;
            let base = i64::from_be_bytes(header[0..8].try_into().expect("8 bytes"));
            let length = i32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
            let delta = i32::from_be_bytes(header[23..27].try_into().expect("4 bytes"));
            if length <= 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "batch length not positive in a fetched range",
                ));
            }
            next = Some(base + i64::from(delta) + 1);
            pos += LENGTH_FIELDS + length as u64;
        }
        Ok(next)
    }

    /// Copies the slice into memory with positioned reads (no shared file cursor).
    pub fn read_to_bytes(&self) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(self.len);
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf.freeze())
    }
}
