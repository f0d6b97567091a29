//! A byte range of a segment file handed to the fetch path. It owns an `Arc<File>`, so the
//! bytes stay readable even if retention unlinks the segment meanwhile (fine on Unix).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// `len` bytes at `position` of a segment's `.log` file: whole batches only.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<File>,
    pub position: u64,
    pub len: usize,
}

impl FileSlice {
    pub(crate) fn new(file: Arc<File>, position: u64, len: usize) -> Self {
        Self {
            file,
            position,
            len,
        }
    }

    /// The segment file, for `sendfile`-style zero-copy transfer.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Copies the slice into memory with positioned reads (no shared file cursor).
    pub fn read_to_bytes(&self) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(self.len);
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf.freeze())
    }
}
