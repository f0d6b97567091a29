//! The persistent store: one redb file per store and task. Writes go to an in-memory
//! write buffer and reach redb in one write transaction per commit (`flush`), without
//! fsync: the changelog, not the local file, is what survives a crash; the local file
//! saves the restore of everything up to the task's checkpoint.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::KvBackend;
use crate::error::{store_err, Result};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

pub struct PersistentStore {
    name: String,
    db: Database,
    /// Writes not yet in redb: `None` is a delete.
    dirty: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    len: u64,
}

impl PersistentStore {
    pub fn open(path: &Path, name: &str) -> Result<PersistentStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| store_err(name, e))?;
        }
        let db = Database::create(path).map_err(|e| store_err(name, e))?;
        let txn = db.begin_write().map_err(|e| store_err(name, e))?;
        let len = {
            let t = txn.open_table(TABLE).map_err(|e| store_err(name, e))?;
            t.len().map_err(|e| store_err(name, e))?
        };
        txn.commit().map_err(|e| store_err(name, e))?;
        Ok(PersistentStore {
            name: name.to_owned(),
            db,
            dirty: BTreeMap::new(),
            len,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> crate::StreamsError {
        store_err(&self.name, e)
    }
}

impl KvBackend for PersistentStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.dirty.get(key) {
            return Ok(v.clone());
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.err(e))?;
        let v = table.get(key).map_err(|e| self.err(e))?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.dirty.insert(key.to_vec(), value.map(<[u8]>::to_vec));
        if self.dirty.len() >= 10_000 {
            self.flush(false)?;
        }
        Ok(())
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
        {
            if a > b {
                return Ok(Vec::new());
            }
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.err(e))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for item in table.range::<&[u8]>((from, to)).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            merged.insert(k.value().to_vec(), v.value().to_vec());
        }
        for (k, v) in self.dirty.range::<[u8], _>((from, to)) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    fn flush(&mut self, durable: bool) -> Result<()> {
        if self.dirty.is_empty() && !durable {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability).map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.err(e))?;
            for (k, v) in std::mem::take(&mut self.dirty) {
                match v {
                    Some(v) => {
                        table
                            .insert(k.as_slice(), v.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    None => {
                        table.remove(k.as_slice()).map_err(|e| self.err(e))?;
                    }
                }
            }
            self.len = table.len().map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn approximate_len(&self) -> u64 {
        self.len + self.dirty.len() as u64
    }
}
