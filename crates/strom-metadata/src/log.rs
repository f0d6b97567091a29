//! The metadata log: an append-only local file of record batches in
//! `<dir>/__cluster_metadata-0/`, replayed on open. For a single node, a batch is committed once
//! its fsync returns; a Raft quorum will later replicate the same batches before committing them.
//! Each frame's payload is one batch in the binary format of [`crate::records::codec`]; a
//! payload that does not start with its magic byte is a JSON array of records, as written
//! before that format, and is still read.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::MetadataLogError;
use crate::records::{codec, MetadataRecord};

/// Directory name of the metadata log under a log dir, as in Kafka.
pub const METADATA_LOG_DIR_NAME: &str = "__cluster_metadata-0";
/// The single segment file of the metadata log.
pub const METADATA_LOG_FILE_NAME: &str = "00000000000000000000.log";
/// Upper bound on one frame's payload; a length above it is read as garbage, never allocated.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Frame header: u32 big-endian payload length, then u32 big-endian CRC32C of the payload.
const FRAME_HEADER_BYTES: usize = 8;

/// The append-only metadata log. Each frame holds one batch of records, so a
/// batch is committed or torn as a whole: a topic never appears without its partitions.
#[derive(Debug)]
pub struct MetadataLog {
    path: PathBuf,
    file: File,
    /// Byte length of the valid prefix; the next frame starts here.
    end_position: u64,
    /// Number of records in the log (the offset the next record would get).
    next_offset: u64,
    /// Set when an append failed part-way: the file's tail is unknown until reopened.
    failed: bool,
}

impl MetadataLog {
    /// Opens (creating if needed) the metadata log under `dir` (a log dir; the log lives in its
    /// `__cluster_metadata-0` subdirectory) and returns the committed records in order.
    /// A torn or corrupt tail is truncated, with a warning naming how many bytes were dropped.
    pub fn open(dir: &Path) -> Result<(MetadataLog, Vec<MetadataRecord>), MetadataLogError> {
        let log_dir = dir.join(METADATA_LOG_DIR_NAME);
        let dir_existed = log_dir.is_dir();
        std::fs::create_dir_all(&log_dir).map_err(|source| MetadataLogError::Io {
            op: "create directory",
            path: log_dir.clone(),
            source,
        })?;
        let path = log_dir.join(METADATA_LOG_FILE_NAME);
        let existed = path.exists();
        let io = |op: &'static str| {
            let path = path.clone();
            move |source| MetadataLogError::Io { op, path, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open"))?;
        if !existed {
            sync_dir(&log_dir)?;
        }
        if !dir_existed {
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io("read"))?;
        let (records, valid_len) = decode_frames(&path, &bytes)?;
        if (valid_len as usize) < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = valid_len,
                dropped_bytes = bytes.len() as u64 - valid_len,
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(valid_len).map_err(io("truncate"))?;
            file.sync_all().map_err(io("fsync"))?;
        }
        file.seek(SeekFrom::Start(valid_len)).map_err(io("seek"))?;
        let log = MetadataLog {
            path,
            file,
            end_position: valid_len,
            next_offset: records.len() as u64,
            failed: false,
        };
        Ok((log, records))
    }

    /// Appends one batch as a single frame and fsyncs it. When this returns `Ok`, the batch is
    /// committed (single node) and may be applied to the image. An empty batch writes nothing.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), MetadataLogError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.failed {
            return Err(MetadataLogError::Failed {
                path: self.path.clone(),
            });
        }
        let payload = codec::encode_batch(records);
        if payload.len() > MAX_BATCH_BYTES {
            return Err(MetadataLogError::BatchTooLarge {
                bytes: payload.len(),
                limit: MAX_BATCH_BYTES,
            });
        }
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        let result = self
            .file
            .write_all(&frame)
            .map_err(|source| self.io_error("write", source))
            .and_then(|()| {
                self.file
                    .sync_data()
                    .map_err(|source| self.io_error("fsync", source))
            });
        match result {
            Ok(()) => {
                self.end_position += frame.len() as u64;
                self.next_offset += records.len() as u64;
                Ok(())
            }
            Err(e) => {
                // The tail may hold part of the frame; reopening truncates it.
                self.failed = true;
                Err(e)
            }
        }
    }

    /// The offset the next appended record will get (= number of committed records).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, op: &'static str, source: std::io::Error) -> MetadataLogError {
        MetadataLogError::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }
}

/// Decodes frames from the start of `bytes`; returns the records of every valid frame and the
/// length of the valid prefix. Stops at the first short, oversized or checksum-failing frame.
fn decode_frames(
    path: &Path,
    bytes: &[u8],
) -> Result<(Vec<MetadataRecord>, u64), MetadataLogError> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= FRAME_HEADER_BYTES {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + FRAME_HEADER_BYTES;
        if len > MAX_BATCH_BYTES || bytes.len() - start < len {
            break;
        }
        let payload = &bytes[start..start + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let batch = codec::decode_stored_batch(payload).map_err(|reason| {
            MetadataLogError::UndecodableBatch {
                path: path.to_path_buf(),
                position: pos as u64,
                reason,
            }
        })?;
        records.extend(batch);
        pos = start + len;
    }
    Ok((records, pos as u64))
}

fn sync_dir(dir: &Path) -> Result<(), MetadataLogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| MetadataLogError::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
        }
    }

    #[test]
    fn reopen_returns_appended_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
        assert!(records.is_empty());
        let a = vec![topic("a"), topic("b")];
        let b = vec![topic("c")];
        log.append(&a).unwrap();
        log.append(&[]).unwrap();
        log.append(&b).unwrap();
        assert_eq!(log.next_offset(), 3);
        drop(log);
        let (log, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, [a, b].concat());
        assert_eq!(log.next_offset(), 3);
        assert!(log
            .path()
            .starts_with(dir.path().join(METADATA_LOG_DIR_NAME)));
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        let first = vec![topic("a")];
        log.append(&first).unwrap();
        log.append(&[topic("b"), topic("c")]).unwrap();
        let path = log.path().to_path_buf();
        drop(log);
        let full = std::fs::metadata(&path).unwrap().len();
        // Cut the second frame in half: a crash during its write.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(full - 5).unwrap();
        drop(file);
        let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, first);
        let after = vec![topic("d")];
        log.append(&after).unwrap();
        drop(log);
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, [first, after].concat());
    }

    #[test]
    fn corrupt_checksum_and_garbage_length_are_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        let first = vec![topic("a")];
        log.append(&first).unwrap();
        let valid = std::fs::metadata(log.path()).unwrap().len();
        log.append(&[topic("b")]).unwrap();
        let path = log.path().to_path_buf();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1]);
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, first);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), valid);
    }

    #[test]
    fn undecodable_batch_with_valid_checksum_is_an_error_not_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MetadataLog::open(dir.path()).unwrap();
        let path = log.path().to_path_buf();
        drop(log);
        let payload = br#"[{"type":"FromTheFuture"}]"#;
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        bytes.extend_from_slice(payload);
        std::fs::write(&path, &bytes).unwrap();
        let err = MetadataLog::open(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            MetadataLogError::UndecodableBatch { position: 0, .. }
        ));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    }

    /// One frame as the log has always framed it, around `payload`.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn appends_write_binary_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        let batch = vec![topic("a"), topic("b")];
        log.append(&batch).unwrap();
        let bytes = std::fs::read(log.path()).unwrap();
        assert_eq!(bytes, frame(&codec::encode_batch(&batch)));
        assert_eq!(bytes[FRAME_HEADER_BYTES], codec::BATCH_MAGIC);
    }

    #[test]
    fn a_log_of_json_frames_from_earlier_versions_reopens_and_takes_binary_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MetadataLog::open(dir.path()).unwrap();
        let path = log.path().to_path_buf();
        drop(log);
        // Two frames exactly as Strom wrote them before the binary format (JSON arrays).
        let mut bytes = frame(
            br#"[{"type":"Cluster","cluster_id":"AAAAAAAAAAAAAAAAAAAAAA"},{"type":"Topic","name":"t","topic_id":"00000000-0000-0000-0000-000000000007"}]"#,
        );
        bytes.extend(frame(
            br#"[{"type":"Partition","topic_id":"00000000-0000-0000-0000-000000000007","partition":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0},{"type":"Config","resource":{"Broker":1},"name":"n","value":null}]"#,
        ));
        std::fs::write(&path, &bytes).unwrap();
        let old = vec![
            MetadataRecord::Cluster {
                cluster_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: Uuid::from_u128(7),
            },
            MetadataRecord::Partition {
                topic_id: Uuid::from_u128(7),
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
            MetadataRecord::Config {
                resource: crate::records::ConfigResource::Broker(1),
                name: "n".into(),
                value: None,
            },
        ];
        let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, old);
        assert_eq!(log.next_offset(), 4);
        let new = vec![topic("u")];
        log.append(&new).unwrap();
        drop(log);
        let (log, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, [old, new].concat());
        assert_eq!(log.next_offset(), 5);
    }

    #[test]
    fn binary_batch_with_an_unknown_record_type_is_undecodable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&[topic("a")]).unwrap();
        let path = log.path().to_path_buf();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let position = bytes.len() as u64;
        // One record of type id 99, version 0, empty body.
        bytes.extend(frame(&[
            codec::BATCH_MAGIC,
            codec::BATCH_FORMAT_VERSION,
            1,
            99,
            0,
            0,
        ]));
        std::fs::write(&path, &bytes).unwrap();
        match MetadataLog::open(dir.path()).unwrap_err() {
            MetadataLogError::UndecodableBatch {
                position: at,
                reason,
                ..
            } => {
                assert_eq!(at, position);
                assert!(reason.contains("unknown record type id 99"), "{reason}");
            }
            other => panic!("unexpected error {other}"),
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    }
}
