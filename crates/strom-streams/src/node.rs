//! The runtime shape of a topology inside one task: typed processor nodes linked to their
//! children. Nodes are built per task from the topology's factories and are not shared
//! between threads.

use std::any::Any;
use std::rc::Rc;

use crate::context::{Ctx, Record};
use crate::error::{Result, StreamsError};

/// A processor node that takes records of key `K` and value `V`.
pub(crate) trait Node<K, V> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()>;
}

pub(crate) type NodeRef<K, V> = Rc<dyn Node<K, V>>;

/// A node built by a factory, before its parent takes it as a typed child.
pub(crate) type AnyNode = Box<dyn Any>;

/// The children of a node. Each child gets the record; all but the last get a clone.
pub(crate) struct Downstream<K, V> {
    children: Vec<NodeRef<K, V>>,
}

impl<K: Clone + 'static, V: Clone + 'static> Downstream<K, V> {
    /// Takes the typed children out of the built nodes. A child of another type is a bug of
    /// the DSL (it links nodes by the types of the streams it returns).
    pub(crate) fn from_built(kids: &[&AnyNode]) -> Result<Self> {
        let children = kids
            .iter()
            .map(|a| {
                a.downcast_ref::<NodeRef<K, V>>().cloned().ok_or_else(|| {
                    StreamsError::Topology(format!(
                        "a child node does not take ({}, {})",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Downstream { children })
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let Some((last, rest)) = self.children.split_last() else {
            return Ok(());
        };
        for c in rest {
            c.process(ctx, rec.clone())?;
        }
        last.process(ctx, rec)
    }
}

pub(crate) fn erase<K: 'static, V: 'static>(node: NodeRef<K, V>) -> AnyNode {
    Box::new(node)
}
