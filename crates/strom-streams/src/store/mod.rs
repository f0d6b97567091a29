//! State stores: a byte-level key-value backend (in memory or on disk with redb), shared
//! behind a mutex so interactive queries can read it from other threads. Changelogging is
//! done by the processors through [`crate::context::Ctx`], not here.

mod memory;
mod persistent;

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use memory::MemoryStore;
pub use persistent::PersistentStore;

use crate::error::Result;

/// A sorted map of bytes to bytes. `put(k, None)` deletes.
pub trait KvBackend: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()>;
    /// Entries with keys in `(from, to)`, in key order.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Writes buffered writes to the backend (on commit); `durable` also fsyncs (on a
    /// clean close, before the checkpoint is written).
    fn flush(&mut self, durable: bool) -> Result<()>;
    fn approximate_len(&self) -> u64;
}

/// Where a store keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    InMemory,
    Persistent,
}

/// One store of one task, shared with interactive queries.
pub type SharedStore = Arc<Mutex<Box<dyn KvBackend>>>;

pub(crate) fn open(kind: StoreKind, dir: &Path, name: &str) -> Result<SharedStore> {
    let backend: Box<dyn KvBackend> = match kind {
        StoreKind::InMemory => Box::new(MemoryStore::default()),
        StoreKind::Persistent => Box::new(PersistentStore::open(
            &dir.join(format!("{name}.redb")),
            name,
        )?),
    };
    Ok(Arc::new(Mutex::new(backend)))
}

pub(crate) fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Box<dyn KvBackend>> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}
