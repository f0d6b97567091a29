//! The file connectors (Kafka's `FileStreamSource` and `FileStreamSink`): the source sends
//! each complete line of a file as a string record, with the byte position after it as the
//! source offset (`{"filename": ...}` → `{"position": ...}`); the sink appends each record's
//! value as a line. Unlike Kafka's, `file` is required (no stdin/stdout).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use serde_json::json;
use strom_client::TopicPartition;

use crate::config::{get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{
    BoxFuture, Connector, ConnectorType, SinkTask, SourceOffsets, SourceTask, Task,
};
use crate::data::{JsonMap, Record, Schema, SchemaType, SinkRecord, SourceRecord, Value};
use crate::error::{ConnectError, Result};

pub const FILE_SOURCE_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
pub const FILE_SINK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

/// How long the source waits when the file has no new complete line.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// The bytes read from the file per poll (besides `batch.size` lines).
const READ_BYTES: usize = 1 << 20;
/// The longest line the source takes; a longer one fails the task (a clear error rather
/// than an unbounded buffer).
const MAX_LINE_BYTES: usize = 64 << 20;

/// Kafka's FileStreamSourceConnector.
#[derive(Debug, Default)]
pub struct FileSourceConnector {
    props: Props,
}

impl Connector for FileSourceConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                "file",
                ConfigType::String,
                None,
                Importance::High,
                "Source filename.",
            )
            .define(
                "topic",
                ConfigType::List,
                None,
                Importance::High,
                "The topic to publish data to",
            )
            .define(
                "batch.size",
                ConfigType::Int,
                Some("2000"),
                Importance::Low,
                "The maximum number of records the source task can read from the file each time it is polled",
            )
            .at_least(1)
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        match props.get("topic") {
            Some(t) if t.contains(',') || t.trim().is_empty() => vec![(
                "topic".to_owned(),
                format!("Invalid value {t} for configuration topic: 'topic' configuration requires definition of a single topic"),
            )],
            _ => Vec::new(),
        }
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        // One file, one reader: the job does not split.
        vec![self.props.clone()]
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(FileSourceTask::default()))
    }
}

/// Reads complete lines from the position of the last committed offset.
#[derive(Debug, Default)]
pub struct FileSourceTask {
    filename: String,
    topic: String,
    batch_size: usize,
    /// Byte position of the next unread line.
    position: u64,
}

impl FileSourceTask {
    fn partition(&self) -> JsonMap {
        let mut m = JsonMap::new();
        m.insert("filename".into(), json!(self.filename));
        m
    }

    fn read_lines(&mut self) -> Result<Vec<SourceRecord>> {
        let mut f = match std::fs::File::open(&self.filename) {
            Ok(f) => f,
            // Kafka waits for the file to appear.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ConnectError::Io(format!("{}: {e}", self.filename))),
        };
        let len = f.metadata()?.len();
        if len < self.position {
            return Err(ConnectError::Task(format!(
                "{} is shorter ({len} bytes) than the committed position {}",
                self.filename, self.position
            )));
        }
        f.seek(SeekFrom::Start(self.position))?;
        let mut buf = Vec::new();
        Read::by_ref(&mut f)
            .take(READ_BYTES as u64)
            .read_to_end(&mut buf)?;
        // A line longer than one read: read on until its end (or the limit).
        let mut scanned = 0;
        while !buf[scanned..].contains(&b'\n') {
            if buf.len() >= MAX_LINE_BYTES {
                return Err(ConnectError::Task(format!(
                    "{}: the line at byte {} is longer than {MAX_LINE_BYTES} bytes",
                    self.filename, self.position
                )));
            }
            scanned = buf.len();
            Read::by_ref(&mut f)
                .take(READ_BYTES as u64)
                .read_to_end(&mut buf)?;
            if buf.len() == scanned {
                break; // the end of the file, inside a line: wait for the rest
            }
        }
        let mut out = Vec::new();
        let mut start = 0;
        while out.len() < self.batch_size {
            let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let mut line = &buf[start..start + nl];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            start += nl + 1;
            self.position += (nl + 1) as u64;
            let mut offset = JsonMap::new();
            offset.insert("position".into(), json!(self.position));
            out.push(SourceRecord {
                source_partition: self.partition(),
                source_offset: offset,
                record: Record::new(
                    &self.topic,
                    Some(Schema::new(SchemaType::String)),
                    Value::String(String::from_utf8_lossy(line).into_owned()),
                ),
            });
        }
        Ok(out)
    }
}

impl SourceTask for FileSourceTask {
    fn start(&mut self, props: &Props, offsets: &SourceOffsets) -> Result<()> {
        self.filename = props
            .get("file")
            .cloned()
            .ok_or_else(|| ConnectError::InvalidConfig("file is required".into()))?;
        self.topic = props
            .get("topic")
            .cloned()
            .ok_or_else(|| ConnectError::InvalidConfig("topic is required".into()))?;
        self.batch_size = get_parsed(props, "batch.size", 2000usize)?.max(1);
        self.position = match offsets.offset(&self.partition()) {
            None => 0,
            Some(o) => o.get("position").and_then(|p| p.as_u64()).ok_or_else(|| {
                ConnectError::Task(format!(
                    "Offset position is the incorrect type: {}",
                    serde_json::Value::Object(o.clone())
                ))
            })?,
        };
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            let batch = self.read_lines()?;
            if batch.is_empty() {
                tokio::time::sleep(IDLE_WAIT).await;
            }
            Ok(batch)
        })
    }
}

/// Kafka's FileStreamSinkConnector.
#[derive(Debug, Default)]
pub struct FileSinkConnector {
    props: Props,
}

impl Connector for FileSinkConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define(
            "file",
            ConfigType::String,
            None,
            Importance::High,
            "Destination filename.",
        )
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        // Every task appends to the same file, as Kafka's does.
        vec![self.props.clone(); max_tasks.max(1)]
    }

    fn create_task(&self) -> Task {
        Task::Sink(Box::new(FileSinkTask::default()))
    }
}

/// Appends each record value as a line; `flush` syncs the file. Each `put` is one append of
/// whole lines, so tasks sharing a file never split each other's lines.
#[derive(Debug, Default)]
pub struct FileSinkTask {
    file: Option<std::fs::File>,
}

impl SinkTask for FileSinkTask {
    fn start(&mut self, props: &Props) -> Result<()> {
        let path = props
            .get("file")
            .ok_or_else(|| ConnectError::InvalidConfig("file is required".into()))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                ConnectError::Task(format!(
                    "Couldn't find or create file '{path}' for FileStreamSinkTask: {e}"
                ))
            })?;
        self.file = Some(f);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let f = self
                .file
                .as_mut()
                .ok_or_else(|| ConnectError::Task("file sink task not started".into()))?;
            let mut lines = Vec::new();
            for r in records {
                lines.extend_from_slice(r.record.value.to_display().as_bytes());
                lines.push(b'\n');
            }
            f.write_all(&lines)?;
            Ok(())
        })
    }

    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if let Some(f) = self.file.as_ref() {
                // An fsync can take long: off the async threads.
                let f = f.try_clone()?;
                tokio::task::spawn_blocking(move || f.sync_data())
                    .await
                    .map_err(|e| ConnectError::Io(format!("file sink sync: {e}")))??;
            }
            Ok(())
        })
    }

    fn stop(&mut self) {
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn source_reads_complete_lines_from_the_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\nbb\r\nccc").unwrap();
        let mut props = Props::new();
        props.insert("file".into(), path.display().to_string());
        props.insert("topic".into(), "t".into());
        let mut task = FileSourceTask::default();
        task.start(&props, &SourceOffsets::default()).unwrap();
        let recs = task.poll().await.unwrap();
        let values: Vec<_> = recs.iter().map(|r| r.record.value.clone()).collect();
        assert_eq!(
            values,
            vec![Value::String("a".into()), Value::String("bb".into())]
        );
        assert_eq!(recs[1].source_offset["position"], json!(6));
        assert_eq!(
            recs[1].source_partition["filename"],
            json!(path.display().to_string())
        );
        // The partial last line waits for its newline.
        assert!(task.poll().await.unwrap().is_empty());
        let mut task = FileSourceTask::default();
        let offsets = SourceOffsets::new([(
            recs[0].source_partition.clone(),
            recs[0].source_offset.clone(),
        )]);
        std::fs::write(&path, "a\nbb\r\nccc\n").unwrap();
        task.start(&props, &offsets).unwrap();
        let recs = task.poll().await.unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].record.value, Value::String("ccc".into()));

        // A line longer than one read still comes whole.
        let long = "x".repeat(READ_BYTES * 2 + 10);
        std::fs::write(&path, format!("{long}\nshort\n")).unwrap();
        let mut task = FileSourceTask::default();
        task.start(&props, &SourceOffsets::default()).unwrap();
        let recs = task.poll().await.unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].record.value, Value::String(long));
        assert_eq!(
            recs[1].source_offset["position"],
            json!(READ_BYTES * 2 + 17)
        );
    }
}
