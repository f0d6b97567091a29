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

    /// Copies the slice into memory with positioned reads (no shared file cursor).
    pub fn read_to_bytes(&self) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(self.len);
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf.freeze())
    }
}
