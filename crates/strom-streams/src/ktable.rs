//! `KTable`: a changelog stream (each update carries the new and the old value of its key)
//! over a store; `toStream`, `filter`, `mapValues`, and suppression of windowed tables.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::builder::Materialized;
use crate::context::{Ctx, Record, StoreHandle};
use crate::error::{store_err, Result};
use crate::kstream::KStream;
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::{Serde, Windowed};
use crate::topology::{Punctuate, StoreDef};

/// An update of a table row: the new value (`None`: deleted) and the one it replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

impl<V: Serde> Serde for Change<V> {
    fn to_bytes(&self) -> Vec<u8> {
        (self.new.clone(), self.old.clone()).to_bytes()
    }
    fn from_bytes(data: &[u8]) -> Result<Self, crate::SerdeError> {
        let (new, old) = <(Option<V>, Option<V>)>::from_bytes(data)?;
        Ok(Change { new, old })
    }
}

/// A table with key `K` and value `V`.
pub struct KTable<K, V> {
    pub(crate) updates: KStream<K, Change<V>>,
    /// The store holding the table, when it is materialized (queryable).
    pub(crate) store: Option<String>,
    /// For windowed tables: the window's grace, for `suppress_until_window_closes`.
    pub(crate) grace_ms: Option<i64>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            updates: self.updates.clone(),
            store: self.store.clone(),
            grace_ms: self.grace_ms,
        }
    }
}

pub(crate) fn decode<T: Serde>(store: &str, bytes: Option<Vec<u8>>) -> Result<Option<T>> {
    bytes
        .map(|b| T::from_bytes(&b).map_err(|e| store_err(store, e)))
        .transpose()
}

/// Materializes table updates (`None` = delete) into a store and passes on the changes.
struct TableSourceNode<K, V> {
    store: StoreHandle,
    down: Downstream<K, Change<V>>,
}

impl<K: Serde, V: Serde> Node<K, Option<V>> for TableSourceNode<K, V> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, Option<V>>) -> Result<()> {
        let kb = rec.key.to_bytes();
        let old: Option<V> = decode(&self.store.name, self.store.get(&kb)?)?;
        if old.is_none() && rec.value.is_none() {
            return Ok(());
        }
        let vb = rec.value.as_ref().map(Serde::to_bytes);
        self.store.put(ctx, &kb, vb.as_deref())?;
        self.down.forward(
            ctx,
            Record {
                key: rec.key,
                value: Change {
                    new: rec.value,
                    old,
                },
                timestamp: rec.timestamp,
            },
        )
    }
}

impl<K: Serde, V: Serde> KTable<K, V> {
    pub(crate) fn from_updates(
        source: &KStream<K, Option<V>>,
        m: Materialized,
    ) -> Result<KTable<K, V>> {
        source.g.borrow_mut().add_store(StoreDef {
            name: m.name.clone(),
            kind: m.kind,
            logged: m.logged,
            retention_ms: None,
        })?;
        let name = m.name.clone();
        let updates = source.add_node::<K, Change<V>>(
            "KTABLE-SOURCE",
            vec![m.name.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<K, Option<V>> = Rc::new(TableSourceNode {
                    store: ctx.store(&name)?,
                    down: Downstream::from_built(kids)?,
                });
                Ok(erase(node))
            },
        );
        Ok(KTable {
            updates,
            store: Some(m.name),
            grace_ms: None,
        })
    }

    /// The name of the store that holds this table (for interactive queries).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The stream of this table's updates: the new value of each changed key (deletes are
    /// not passed on: a `KStream` has no null values; see `to_change_stream`).
    pub fn to_stream(&self) -> KStream<K, V> {
        self.updates.flat_map_values(|_, c: Change<V>| c.new)
    }

    /// Every update with its old and new value, deletes included.
    pub fn to_change_stream(&self) -> KStream<K, Change<V>> {
        self.updates.clone()
    }

    /// Rows for which `pred` holds; a row that stops matching is deleted downstream.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let pred = Arc::new(pred);
        let updates = self.updates.map_values(move |k, c: Change<V>| Change {
            new: c.new.filter(|v| pred(k, v)),
            old: c.old.filter(|v| pred(k, v)),
        });
        let updates = updates.filter(|_, c| c.new.is_some() || c.old.is_some());
        KTable {
            updates,
            store: None,
            grace_ms: self.grace_ms,
        }
    }

    /// A new value per row.
    pub fn map_values<V2: Serde>(
        &self,
        f: impl Fn(&K, &V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let updates = self.updates.map_values(move |k, c: Change<V>| Change {
            new: c.new.as_ref().map(|v| f(k, v)),
            old: c.old.as_ref().map(|v| f(k, v)),
        });
        KTable {
            updates,
            store: None,
            grace_ms: self.grace_ms,
        }
    }
}

impl<K: Serde, V: Serde> KTable<Windowed<K>, V> {
    /// Holds back a windowed table's updates until each window closes (its end plus the
    /// grace period is behind stream time), then emits one final result per window
    /// (Kafka's `suppress(Suppressed.untilWindowCloses(unbounded()))`). The buffer is a
    /// store with a changelog, so a restart neither loses nor repeats results.
    pub fn suppress_until_window_closes(
        &self,
        buffer_store: &str,
    ) -> Result<KTable<Windowed<K>, V>> {
        let grace = self.grace_ms.unwrap_or(0);
        self.updates.g.borrow_mut().add_store(StoreDef {
            name: buffer_store.to_owned(),
            kind: crate::store::StoreKind::InMemory,
            logged: true,
            retention_ms: None,
        })?;
        let name = buffer_store.to_owned();
        let updates = self.updates.add_node::<Windowed<K>, Change<V>>(
            "KTABLE-SUPPRESS",
            vec![name.clone()],
            false,
            move |ctx, kids| {
                let node = Rc::new(SuppressNode {
                    store: ctx.store(&name)?,
                    grace,
                    down: Downstream::from_built(kids)?,
                    _t: PhantomData,
                });
                ctx.punctuators.push(node.clone());
                let node: NodeRef<Windowed<K>, Change<V>> = node;
                Ok(erase(node))
            },
        );
        Ok(KTable {
            updates,
            store: None,
            grace_ms: None,
        })
    }
}

/// Buffer key: window end (sign-flipped, big-endian, so keys sort by end), then the
/// windowed key. Buffer value: the record's timestamp (8 bytes BE), then the value.
struct SuppressNode<K, V> {
    store: StoreHandle,
    grace: i64,
    down: Downstream<Windowed<K>, Change<V>>,
    _t: PhantomData<fn(K, V)>,
}

pub(crate) fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

impl<K: Serde, V: Serde> SuppressNode<K, V> {
    fn emit_closed(&self, ctx: &mut Ctx) -> Result<()> {
        let limit = ctx.stream_time.saturating_sub(self.grace);
        // Windows whose end is at most stream time minus grace are closed.
        let upper = time_key(limit.saturating_add(1));
        let closed = self.store.range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(&upper),
        )?;
        for (k, v) in closed {
            self.store.put(ctx, &k, None)?;
            let key =
                Windowed::<K>::from_bytes(&k[8..]).map_err(|e| store_err(&self.store.name, e))?;
            if v.len() < 8 {
                return Err(store_err(
                    &self.store.name,
                    "buffered value shorter than 8 bytes",
                ));
            }
            let ts = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            let value = V::from_bytes(&v[8..]).map_err(|e| store_err(&self.store.name, e))?;
            self.down.forward(
                ctx,
                Record {
                    key,
                    value: Change {
                        new: Some(value),
                        old: None,
                    },
                    timestamp: ts,
                },
            )?;
        }
        Ok(())
    }
}

impl<K: Serde, V: Serde> Node<Windowed<K>, Change<V>> for SuppressNode<K, V> {
    fn process(&self, ctx: &mut Ctx, rec: Record<Windowed<K>, Change<V>>) -> Result<()> {
        let mut k = time_key(rec.key.end).to_vec();
        k.extend(rec.key.to_bytes());
        match &rec.value.new {
            Some(v) => {
                let mut b = rec.timestamp.to_be_bytes().to_vec();
                b.extend(v.to_bytes());
                self.store.put(ctx, &k, Some(&b))?;
            }
            None => self.store.put(ctx, &k, None)?,
        }
        self.emit_closed(ctx)
    }
}

impl<K: Serde, V: Serde> Punctuate for SuppressNode<K, V> {
    fn on_stream_time(&self, ctx: &mut Ctx) -> Result<()> {
        self.emit_closed(ctx)
    }
}
