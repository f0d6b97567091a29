//! Where source offsets live: the `OffsetStore` trait, and the standalone worker's store,
//! kept in memory and saved to `offset.storage.file.filename` (Kafka's
//! `FileOffsetBackingStore`). The file is JSON, one entry per (connector, source partition):
//! `[{"connector", "partition", "offset"}]`, written to a temporary file and renamed so a
//! crash leaves either the old or the new offsets. (`kafka_offsets` keeps them in a topic.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Value as J};

use crate::connector::{partition_key, BoxFuture, SourceOffsets};
use crate::data::JsonMap;
use crate::error::{ConnectError, Result};

/// Source offsets by connector and source partition (Kafka's `OffsetBackingStore`).
pub trait OffsetStore: Send + Sync {
    /// (partition, offset) pairs of one connector.
    fn list(&self, connector: &str) -> Vec<(JsonMap, JsonMap)>;

    /// Sets offsets (`None` removes a partition's offset), durably when the future is done.
    fn put<'a>(
        &'a self,
        connector: &'a str,
        offsets: Vec<(JsonMap, Option<JsonMap>)>,
    ) -> BoxFuture<'a, Result<()>>;

    /// The offsets of one connector, as a reader for its tasks.
    fn reader(&self, connector: &str) -> SourceOffsets {
        SourceOffsets::new(self.list(connector))
    }

    /// Removes every offset of a connector.
    fn remove_connector<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let all = self
                .list(connector)
                .into_iter()
                .map(|(p, _)| (p, None))
                .collect();
            self.put(connector, all).await
        })
    }
}

/// What every offset store keeps in memory: (connector, partition key) → (partition, offset).
pub(crate) type Entries = BTreeMap<(String, String), (JsonMap, JsonMap)>;

/// Sets a partition's offset, or with `None` removes it.
pub(crate) fn apply_offset(
    entries: &mut Entries,
    connector: &str,
    partition: JsonMap,
    offset: Option<JsonMap>,
) {
    let key = (connector.to_owned(), partition_key(&partition));
    match offset {
        Some(o) => {
            entries.insert(key, (partition, o));
        }
        None => {
            entries.remove(&key);
        }
    }
}

/// A connector's (partition, offset) pairs.
pub(crate) fn connector_offsets(entries: &Entries, connector: &str) -> Vec<(JsonMap, JsonMap)> {
    entries
        .iter()
        .filter(|((c, _), _)| c == connector)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The entries, also after a panic elsewhere while they were locked (each change is whole).
pub(crate) fn lock_entries(entries: &Mutex<Entries>) -> std::sync::MutexGuard<'_, Entries> {
    entries.lock().unwrap_or_else(|p| p.into_inner())
}

/// The standalone worker's source offsets.
#[derive(Debug)]
pub struct FileOffsetStore {
    path: PathBuf,
    entries: Mutex<Entries>,
    /// Held while the file is written: tasks commit concurrently, and two writers sharing the
    /// temporary file made one's rename fail (and could save an older snapshot last).
    saving: Mutex<()>,
}

impl FileOffsetStore {
    /// Opens the store, reading the file if it exists.
    pub fn open(path: PathBuf) -> Result<FileOffsetStore> {
        let mut entries = Entries::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let doc: J = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectError::WorkerConfig(format!(
                        "offset file {} is not valid JSON: {e}",
                        path.display()
                    ))
                })?;
                for e in doc.as_array().into_iter().flatten() {
                    let (Some(c), Some(J::Object(p)), Some(J::Object(o))) =
                        (e["connector"].as_str(), e.get("partition"), e.get("offset"))
                    else {
                        return Err(ConnectError::WorkerConfig(format!(
                            "offset file {} has a malformed entry: {e}",
                            path.display()
                        )));
                    };
                    entries.insert((c.to_owned(), partition_key(p)), (p.clone(), o.clone()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConnectError::Io(format!("{}: {e}", path.display()))),
        }
        Ok(FileOffsetStore {
            path,
            entries: Mutex::new(entries),
            saving: Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        lock_entries(&self.entries)
    }

    fn list_entries(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        connector_offsets(&self.lock(), connector)
    }

    /// Sets offsets (`None` removes a partition's offset) and saves the file.
    pub fn put_now(&self, connector: &str, offsets: Vec<(JsonMap, Option<JsonMap>)>) -> Result<()> {
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = {
            let mut entries = self.lock();
            for (p, o) in offsets {
                apply_offset(&mut entries, connector, p, o);
            }
            entries.clone()
        };
        self.save(&snapshot)
    }

    /// Removes every offset of a connector and saves the file.
    pub fn remove_connector_now(&self, connector: &str) -> Result<()> {
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = {
            let mut entries = self.lock();
            entries.retain(|(c, _), _| c != connector);
            entries.clone()
        };
        self.save(&snapshot)
    }

    fn save(&self, entries: &Entries) -> Result<()> {
        let doc: Vec<J> = entries
            .iter()
            .map(|((c, _), (p, o))| json!({"connector": c, "partition": p, "offset": o}))
            .collect();
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = std::fs::File::create(&tmp)?;
            serde_json::to_writer(&f, &doc)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| ConnectError::Io(format!("{}: {e}", self.path.display())))
    }
}

impl OffsetStore for FileOffsetStore {
    fn list(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        self.list_entries(connector)
    }

    fn put<'a>(
        &'a self,
        connector: &'a str,
        offsets: Vec<(JsonMap, Option<JsonMap>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.put_now(connector, offsets) })
    }

    fn remove_connector<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.remove_connector_now(connector) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(j: J) -> JsonMap {
        j.as_object().cloned().unwrap()
    }

    #[test]
    fn offsets_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        let s = FileOffsetStore::open(path.clone()).unwrap();
        let p = map(json!({"filename": "/a"}));
        s.put_now("c1", vec![(p.clone(), Some(map(json!({"position": 10}))))])
            .unwrap();
        s.put_now("c2", vec![(p.clone(), Some(map(json!({"position": 3}))))])
            .unwrap();
        let s = FileOffsetStore::open(path.clone()).unwrap();
        assert_eq!(
            s.reader("c1").offset(&p),
            Some(&map(json!({"position": 10})))
        );
        s.put_now("c1", vec![(p.clone(), None)]).unwrap();
        s.remove_connector_now("c2").unwrap();
        let s = FileOffsetStore::open(path.clone()).unwrap();
        assert!(s.list("c1").is_empty() && s.list("c2").is_empty());
        std::fs::write(&path, "nope").unwrap();
        assert!(FileOffsetStore::open(path).is_err());
    }

    #[test]
    fn concurrent_commits_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        let s = std::sync::Arc::new(FileOffsetStore::open(path.clone()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let p = map(json!({"task": t}));
                        s.put_now("c", vec![(p, Some(map(json!({"offset": i}))))])
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = FileOffsetStore::open(path).unwrap();
        for t in 0..4 {
            assert_eq!(
                s.reader("c").offset(&map(json!({"task": t}))),
                Some(&map(json!({"offset": 49})))
            );
        }
    }
}
