//! Source offsets of the standalone worker, kept in memory and saved to
//! `offset.storage.file.filename` (Kafka's `FileOffsetBackingStore`). The file is JSON, one
//! entry per (connector, source partition): `[{"connector", "partition", "offset"}]`, written
//! to a temporary file and renamed so a crash leaves either the old or the new offsets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Value as J};

use crate::connector::{partition_key, SourceOffsets};
use crate::data::JsonMap;
use crate::error::{ConnectError, Result};

/// (connector, partition key) → (partition, offset).
type Entries = BTreeMap<(String, String), (JsonMap, JsonMap)>;

/// The standalone worker's source offsets.
#[derive(Debug)]
pub struct FileOffsetStore {
    path: PathBuf,
    entries: Mutex<Entries>,
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
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The offsets of one connector, as a reader for its tasks.
    pub fn reader(&self, connector: &str) -> SourceOffsets {
        SourceOffsets::new(self.list(connector))
    }

    /// (partition, offset) pairs of one connector.
    pub fn list(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        self.lock()
            .iter()
            .filter(|((c, _), _)| c == connector)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Sets offsets (`None` removes a partition's offset) and saves the file.
    pub fn put(&self, connector: &str, offsets: Vec<(JsonMap, Option<JsonMap>)>) -> Result<()> {
        let snapshot = {
            let mut entries = self.lock();
            for (p, o) in offsets {
                let key = (connector.to_owned(), partition_key(&p));
                match o {
                    Some(o) => {
                        entries.insert(key, (p, o));
                    }
                    None => {
                        entries.remove(&key);
                    }
                }
            }
            entries.clone()
        };
        self.save(&snapshot)
    }

    /// Removes every offset of a connector and saves the file.
    pub fn remove_connector(&self, connector: &str) -> Result<()> {
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
        s.put("c1", vec![(p.clone(), Some(map(json!({"position": 10}))))])
            .unwrap();
        s.put("c2", vec![(p.clone(), Some(map(json!({"position": 3}))))])
            .unwrap();
        let s = FileOffsetStore::open(path.clone()).unwrap();
        assert_eq!(
            s.reader("c1").offset(&p),
            Some(&map(json!({"position": 10})))
        );
        s.put("c1", vec![(p.clone(), None)]).unwrap();
        s.remove_connector("c2").unwrap();
        let s = FileOffsetStore::open(path.clone()).unwrap();
        assert!(s.list("c1").is_empty() && s.list("c2").is_empty());
        std::fs::write(&path, "nope").unwrap();
        assert!(FileOffsetStore::open(path).is_err());
    }
}
