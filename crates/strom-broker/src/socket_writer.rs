//! The write half of a connection, and how one response goes out on it.
//!
//! On a plaintext TCP listener fetched records go from the segment file to the socket with
//! sendfile(2): the kernel moves page-cache pages to the socket, nothing is copied through
//! user space and no buffer is held per fetch. The in-memory pieces of the response (size
//! prefix, headers, partition fields, records length prefixes) go with one writev per run of
//! consecutive pieces; the whole response is sent under TCP_CORK so that those small pieces
//! share packets with the records instead of each leaving as a packet of its own (the socket
//! has TCP_NODELAY). TLS listeners (and a simulated disk, which has no file descriptor) keep
//! the buffered path: file ranges read `FILE_CHUNK_BYTES` at a time and written through the
//! stream.
//!
//! A segment file shrunk between the read and the send (truncation) makes sendfile stop
//! short: the response frame already promised its length, so the connection is closed rather
//! than a short frame finished with something else (the buffered path does the same: its
//! positioned read fails). Segments deleted by retention or replaced by compaction meanwhile
//! are no problem: the `FileSlice` holds the open file, whose data lives until it is closed.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use bytes::Bytes;
use strom_storage::FileSlice;
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::metrics::BrokerMetrics;
use crate::response::{Response, ResponsePart};

/// Piece of a segment file read at a time on the buffered path.
const FILE_CHUNK_BYTES: usize = 64 * 1024;
/// Most bytes asked of one sendfile call (Linux moves at most 0x7ffff000 per call anyway).
const MAX_SENDFILE_BYTES: usize = 1 << 30;
/// Most buffers handed to one writev.
const MAX_IOVECS: usize = 64;

/// `STROM_FETCH_ZERO_COPY=off` in the broker's environment sends plaintext responses the
/// buffered way too: a diagnostic switch, for measuring what sendfile changes with one binary.
fn zero_copy_disabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var("STROM_FETCH_ZERO_COPY").is_ok_and(|v| v == "off"))
}

/// Where a connection's responses are written.
pub(crate) enum ResponseWriter {
    /// Plaintext TCP: in-memory pieces by writev, file ranges by sendfile.
    Plain(OwnedWriteHalf),
    /// Through a stream that transforms the bytes (TLS): file ranges read into a buffer.
    Buffered(Box<dyn AsyncWrite + Send + Unpin>),
}

impl ResponseWriter {
    /// Writes one whole response frame.
    pub(crate) async fn write_response(
        &mut self,
        response: Response,
        metrics: &BrokerMetrics,
    ) -> io::Result<()> {
        match self {
            ResponseWriter::Plain(half) if zero_copy_disabled() => {
                write_buffered(half, response, metrics).await
            }
            ResponseWriter::Plain(half) => write_plain(half, response, metrics).await,
            ResponseWriter::Buffered(writer) => {
                write_buffered(writer.as_mut(), response, metrics).await
            }
        }
    }

    /// Closes the write direction after the last response.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ResponseWriter::Plain(half) => half.shutdown().await,
            ResponseWriter::Buffered(writer) => writer.shutdown().await,
        }
    }
}

/// The plaintext path: runs of in-memory pieces by writev, file ranges by sendfile, corked.
async fn write_plain(
    half: &mut OwnedWriteHalf,
    response: Response,
    metrics: &BrokerMetrics,
) -> io::Result<()> {
    let parts = response.into_parts();
    let has_file = parts.iter().any(|p| matches!(p, ResponsePart::File(_)));
    // Cork only responses with records: the pieces around each file range then leave with
    // it in full packets. Uncorking pushes what is queued at once (no 200 ms wait).
    let cork =
        |half: &OwnedWriteHalf, on: bool| socket2::SockRef::from(half.as_ref()).set_tcp_cork(on);
    if has_file {
        cork(half, true)?;
    }
    let mut run: Vec<Bytes> = Vec::new();
    for part in parts {
        match part {
            ResponsePart::Bytes(bytes) => {
                if !bytes.is_empty() {
                    run.push(bytes);
                }
            }
            ResponsePart::File(slice) => {
                write_all_vectored(half.as_ref(), &run).await?;
                run.clear();
                match slice.file() {
                    Some(file) => {
                        send_file(half.as_ref(), file, &slice).await?;
                        metrics.zero_copy_bytes_total.add(slice.len as u64);
                    }
                    None => {
                        copy_file(half, &slice).await?;
                        metrics.copied_file_bytes_total.add(slice.len as u64);
                    }
                }
            }
        }
    }
    write_all_vectored(half.as_ref(), &run).await?;
    if has_file {
        cork(half, false)?;
    }
    Ok(())
}

/// Writes every byte of `bufs`, in order, with as few writev calls as the socket allows.
async fn write_all_vectored(stream: &TcpStream, bufs: &[Bytes]) -> io::Result<()> {
    let mut first = 0; // first buffer not wholly written
    let mut skip = 0; // bytes of it already written
    while first < bufs.len() {
        let slices: Vec<IoSlice<'_>> = bufs[first..]
            .iter()
            .take(MAX_IOVECS)
            .enumerate()
            .map(|(i, b)| IoSlice::new(if i == 0 { &b[skip..] } else { &b[..] }))
            .collect();
        stream.writable().await?;
        let mut n = match stream.try_write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        while n > 0 {
            let left = bufs[first].len() - skip;
            if n >= left {
                n -= left;
                first += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Sends `slice` of `file` to the socket with sendfile, waiting for writability whenever
/// the socket buffer is full. The kernel advances `offset`; partial sends continue from it.
async fn send_file(stream: &TcpStream, file: &std::fs::File, slice: &FileSlice) -> io::Result<()> {
    let end = slice.position + slice.len as u64;
    let mut offset = i64::try_from(slice.position).map_err(io::Error::other)?;
    while (offset as u64) < end {
        let count = ((end - offset as u64) as usize).min(MAX_SENDFILE_BYTES);
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(stream.as_fd(), file.as_fd(), Some(&mut offset), count)
                .map_err(io::Error::from)
        });
        match sent {
            // End of file before the end of the range: the segment was truncated after the
            // read; the frame's length is already promised, so give up on the connection.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the fetched range (truncated meanwhile)",
                ))
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The buffered path: every piece through the stream, file ranges read in chunks.
async fn write_buffered(
    writer: &mut (dyn AsyncWrite + Send + Unpin),
    response: Response,
    metrics: &BrokerMetrics,
) -> io::Result<()> {
    for part in response.into_parts() {
        match part {
            ResponsePart::Bytes(bytes) => writer.write_all(&bytes).await?,
            ResponsePart::File(slice) => {
                copy_file(writer, &slice).await?;
                metrics.copied_file_bytes_total.add(slice.len as u64);
            }
        }
    }
    Ok(())
}

/// Copies a file range to `writer` through a `FILE_CHUNK_BYTES` buffer.
async fn copy_file<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    slice: &FileSlice,
) -> io::Result<()> {
    let mut chunk = vec![0; FILE_CHUNK_BYTES.min(slice.len)];
    let mut done = 0;
    while done < slice.len {
        let n = (slice.len - done).min(FILE_CHUNK_BYTES);
        // A positioned read of page-cached segment data: short enough to run on the async
        // worker. A range past the end of the file (truncated meanwhile) fails here.
        slice.read_exact_at(&mut chunk[..n], done as u64)?;
        writer.write_all(&chunk[..n]).await?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strom_protocol::record_batch::builder::build_batch;
    use strom_storage::{LogConfig, PartitionLog, SystemClock};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A log of `batches` batches of 100 records of 1 KiB, and a slice of all of it.
    fn log_with(dir: &std::path::Path, batches: usize) -> (PartitionLog, FileSlice) {
        let log = PartitionLog::open(dir.join("t-0"), LogConfig::default(), Arc::new(SystemClock))
            .unwrap();
        for b in 0..batches {
            let value = vec![b as u8; 1024];
            let recs: Vec<_> = (0..100).map(|i| (None, Some(&value[..]), i)).collect();
            log.append(build_batch(0, &recs, None)).unwrap();
        }
        let slice = log.read(0, usize::MAX >> 1, None).unwrap().slice.unwrap();
        (log, slice)
    }

    async fn pair() -> (OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_, write) = accepted.unwrap().0.into_split();
        (write, client.unwrap())
    }

    fn framed(slice: FileSlice) -> (Response, Vec<u8>) {
        let head = Bytes::from_static(b"head");
        let tail = Bytes::from_static(b"tail");
        let size = (head.len() + slice.len + tail.len()) as i32;
        let mut expected = size.to_be_bytes().to_vec();
        expected.extend_from_slice(&head);
        expected.extend_from_slice(&slice.read_to_bytes().unwrap());
        expected.extend_from_slice(&tail);
        let parts = vec![
            ResponsePart::Bytes(Bytes::copy_from_slice(&size.to_be_bytes())),
            ResponsePart::Bytes(head),
            ResponsePart::File(slice),
            ResponsePart::Bytes(tail),
        ];
        (Response::from_parts(parts), expected)
    }

    #[tokio::test]
    async fn sendfile_delivers_the_exact_frame_through_a_slow_reader() {
        let dir = tempfile::tempdir().unwrap();
        // ~10 MiB: many times the socket buffer, so sendfile stops short and waits often.
        let (_log, slice) = log_with(dir.path(), 100);
        let len = slice.len as u64;
        let (response, expected) = framed(slice);
        let (write, mut client) = pair().await;
        let metrics = BrokerMetrics::default();
        let mut writer = ResponseWriter::Plain(write);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0; 7919];
            loop {
                let n = client.read(&mut buf).await.unwrap();
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..n]);
                tokio::task::yield_now().await;
            }
        });
        writer.write_response(response, &metrics).await.unwrap();
        writer.shutdown().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes received are the frame");
        assert_eq!(metrics.zero_copy_bytes_total.get(), len);
        assert_eq!(metrics.copied_file_bytes_total.get(), 0);
    }

    #[tokio::test]
    async fn a_segment_truncated_after_the_read_fails_the_write_instead_of_a_short_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, slice) = log_with(dir.path(), 20);
        let full = slice.len;
        let (response, expected) = framed(slice);
        // Truncation (a follower's, or a crash recovery's) shrinks the segment file under
        // the open handle.
        let segment = std::fs::read_dir(dir.path().join("t-0"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(full as u64 / 2)
            .unwrap();
        let (write, mut client) = pair().await;
        let metrics = BrokerMetrics::default();
        let mut writer = ResponseWriter::Plain(write);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let err = writer.write_response(response, &metrics).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        drop(writer); // the connection closes
        let got = reader.await.unwrap();
        assert!(
            got.len() < expected.len(),
            "no complete frame: {}",
            got.len()
        );
        assert!(
            expected.starts_with(&got),
            "what was sent is the frame's start"
        );
        assert_eq!(metrics.zero_copy_bytes_total.get(), 0);
    }
}
