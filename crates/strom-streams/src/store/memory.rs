//! The in-memory store: a BTreeMap, rebuilt from the changelog after every restart.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::KvBackend;
use crate::error::Result;

#[derive(Debug, Default)]
pub struct MemoryStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl KvBackend for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.get(key).cloned())
    }
    fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => {
                self.map.insert(key.to_vec(), v.to_vec());
            }
            None => {
                self.map.remove(key);
            }
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
        Ok(self
            .map
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn flush(&mut self, _durable: bool) -> Result<()> {
        Ok(())
    }
    fn approximate_len(&self) -> u64 {
        self.map.len() as u64
    }
}
