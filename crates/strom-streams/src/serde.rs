//! Serdes: how keys and values become bytes. A type that flows through a topology implements
//! [`Serde`] itself (strings, bytes, integers, JSON through [`Json`]), so the DSL needs no
//! serde arguments; formats of their own are a newtype with its own impl.
//!
//! Where a record meets a topic (sources, sinks, repartition topics) the serde also gets a
//! [`SerdeContext`]: the topic, whether the bytes are the key or the value, and the
//! application's Schema Registry client if one is configured, as Kafka's
//! `Serializer.serialize(topic, data)` gets the topic. [`Serde::serialize_for`] and
//! [`Serde::deserialize_for`] default to the context-free [`Serde::to_bytes`] and
//! [`Serde::from_bytes`], so a format that does not care about the topic implements only
//! those; registry formats ([`crate::Avro`]) override both. State stores use the
//! context-free pair: a store key must be the same bytes whatever topic it came from.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::SerdeError;
use crate::registry::SchemaRegistry;

/// Where bytes are going to or coming from.
#[derive(Debug, Clone, Copy)]
pub struct SerdeContext<'a> {
    pub topic: &'a str,
    /// The record key (subject `<topic>-key`) rather than the value (`<topic>-value`).
    pub is_key: bool,
    /// The application's registry (`schema.registry.url`), if set.
    pub registry: Option<&'a Arc<SchemaRegistry>>,
}

impl<'a> SerdeContext<'a> {
    /// A context without a registry.
    pub fn new(topic: &'a str, is_key: bool) -> SerdeContext<'a> {
        SerdeContext {
            topic,
            is_key,
            registry: None,
        }
    }

    /// The registry, or an error saying a registry format needs `schema.registry.url`.
    pub fn registry(&self) -> Result<&'a Arc<SchemaRegistry>, SerdeError> {
        self.registry.ok_or_else(|| {
            SerdeError::new(format!(
                "the {} of topic {} needs a schema registry: set schema.registry.url",
                if self.is_key { "key" } else { "value" },
                self.topic
            ))
        })
    }
}

/// Bytes in and out for a key or value type. Implementations never panic on bad input.
pub trait Serde: Clone + 'static {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError>;
    /// The bytes of a record written to `ctx.topic`; defaults to [`Serde::to_bytes`].
    fn serialize_for(&self, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        let _ = ctx;
        Ok(self.to_bytes())
    }
    /// Reads a record's key or value from `ctx.topic`; defaults to [`Serde::from_bytes`].
    fn deserialize_for(ctx: &SerdeContext<'_>, data: &[u8]) -> Result<Self, SerdeError> {
        let _ = ctx;
        Self::from_bytes(data)
    }
    /// The value a null (absent) key or value reads as; `None` makes a null unreadable, as
    /// most Kafka deserializers do. Strings and bytes read a null key as empty.
    fn from_null() -> Option<Self> {
        None
    }
}

impl Serde for String {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        String::from_utf8(data.to_vec()).map_err(|e| SerdeError::new(format!("not UTF-8: {e}")))
    }
    fn from_null() -> Option<Self> {
        Some(String::new())
    }
}

impl Serde for Vec<u8> {
    fn to_bytes(&self) -> Vec<u8> {
        self.clone()
    }
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        Ok(data.to_vec())
    }
    fn from_null() -> Option<Self> {
        Some(Vec::new())
    }
}

impl Serde for Bytes {
    fn to_bytes(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        Ok(Bytes::copy_from_slice(data))
    }
    fn from_null() -> Option<Self> {
        Some(Bytes::new())
    }
}

impl Serde for () {
    fn to_bytes(&self) -> Vec<u8> {
        Vec::new()
    }
    fn from_bytes(_: &[u8]) -> Result<Self, SerdeError> {
        Ok(())
    }
    fn from_null() -> Option<Self> {
        Some(())
    }
}

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        /// Big-endian fixed width, as Kafka's `LongSerde` / `IntegerSerde`.
        impl Serde for $t {
            fn to_bytes(&self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
            fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
                let arr = data.try_into().map_err(|_| {
                    SerdeError::new(format!(
                        "{} needs {} bytes, got {}",
                        stringify!($t),
                        std::mem::size_of::<$t>(),
                        data.len()
                    ))
                })?;
                Ok(<$t>::from_be_bytes(arr))
            }
        }
    )*};
}
big_endian!(i64, i32, u64, u32, f64);

/// A pair: the first part's length (4 bytes BE), its bytes, then the second part.
impl<A: Serde, B: Serde> Serde for (A, B) {
    fn to_bytes(&self) -> Vec<u8> {
        let a = self.0.to_bytes();
        let mut out = Vec::with_capacity(4 + a.len());
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(&a);
        out.extend_from_slice(&self.1.to_bytes());
        out
    }
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        if data.len() < 4 {
            return Err(SerdeError::new("pair shorter than 4 bytes"));
        }
        let n = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
        let rest = &data[4..];
        if rest.len() < n {
            return Err(SerdeError::new("pair's first part is cut off"));
        }
        Ok((A::from_bytes(&rest[..n])?, B::from_bytes(&rest[n..])?))
    }
}

/// An optional value: a 0 byte for none, a 1 byte and the value for some.
impl<T: Serde> Serde for Option<T> {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            None => vec![0],
            Some(v) => {
                let mut out = vec![1];
                out.extend(v.to_bytes());
                out
            }
        }
    }
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        match data.split_first() {
            Some((0, _)) => Ok(None),
            Some((1, rest)) => T::from_bytes(rest).map(Some),
            _ => Err(SerdeError::new("optional value without its 0/1 tag")),
        }
    }
}

/// A value stored as JSON (serde_json), like Kafka's JSON serdes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Json<T>(pub T);

impl<T> Serde for Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone + 'static,
{
    fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data types to a Vec does not fail; a map with non-string keys
        // would, and writes JSON null instead of panicking.
        serde_json::to_vec(&self.0).unwrap_or_else(|_| b"null".to_vec())
    }
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        serde_json::from_slice(data)
            .map(Json)
            .map_err(|e| SerdeError::new(format!("invalid JSON: {e}")))
    }
}

/// A key and the time window it was aggregated in; `end` is exclusive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K> {
    pub key: K,
    pub start: i64,
    pub end: i64,
}

/// Kafka's time-windowed key format: the key's bytes, then the window start (8 bytes BE),
/// then the end (8 bytes BE). (Kafka's TimeWindowedSerializer writes only the start and
/// needs the size to read; carrying the end keeps session windows readable too.)
impl<K: Serde> Serde for Windowed<K> {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.key.to_bytes();
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.end.to_be_bytes());
        out
    }
    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        if data.len() < 16 {
            return Err(SerdeError::new("windowed key shorter than 16 bytes"));
        }
        let (k, t) = data.split_at(data.len() - 16);
        let start = i64::from_be_bytes(t[..8].try_into().expect("8 bytes"));
        let end = i64::from_be_bytes(t[8..].try_into().expect("8 bytes"));
        Ok(Windowed {
            key: K::from_bytes(k)?,
            start,
            end,
        })
    }
    /// The key in its topic format (a registry key framed for `<topic>-key`), then the
    /// window.
    fn serialize_for(&self, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        let mut out = self.key.serialize_for(ctx)?;
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.end.to_be_bytes());
        Ok(out)
    }
    fn deserialize_for(ctx: &SerdeContext<'_>, data: &[u8]) -> Result<Self, SerdeError> {
        if data.len() < 16 {
            return Err(SerdeError::new("windowed key shorter than 16 bytes"));
        }
        let (k, t) = data.split_at(data.len() - 16);
        Ok(Windowed {
            key: K::deserialize_for(ctx, k)?,
            start: i64::from_be_bytes(t[..8].try_into().expect("8 bytes")),
            end: i64::from_be_bytes(t[8..].try_into().expect("8 bytes")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_input() {
        assert_eq!(i64::from_bytes(&42i64.to_bytes()), Ok(42));
        assert!(i64::from_bytes(b"abc").is_err());
        assert!(String::from_bytes(&[0xff, 0xfe]).is_err());
        let w = Windowed {
            key: "k".to_string(),
            start: 10,
            end: 20,
        };
        assert_eq!(Windowed::<String>::from_bytes(&w.to_bytes()), Ok(w));
        assert!(Windowed::<String>::from_bytes(b"short").is_err());
        let j = Json(vec![1, 2, 3]);
        assert_eq!(Json::<Vec<i32>>::from_bytes(&j.to_bytes()), Ok(j));
        assert!(Json::<Vec<i32>>::from_bytes(b"{oops").is_err());
    }
}
