//! Schema Registry serdes: [`Avro`] values in Confluent's wire format (magic byte 0, the
//! 4-byte big-endian schema id, the Avro binary datum), through the registry client and
//! the encoder/decoder of `strom_registry::serde`; [`JsonSchema`] values (the same framing
//! around a JSON document, the schema registered as type JSON).
//!
//! The registry client is async (HTTP) and a stream thread is synchronous, so
//! [`SchemaRegistry`] puts two caches in front of it and only goes to the network on a
//! miss: the schema id per (type, topic, key or value) for writing, and the parsed writer
//! schema per id for reading. In steady state serializing and deserializing is a mutex and
//! a hash lookup, no HTTP and no runtime. A miss (the first record of a topic, or a new
//! writer schema) hands the request to a small thread of its own that runs the client on a
//! tokio runtime, and the stream thread waits for the answer (bounded by
//! [`SchemaRegistry::timeout`]): a stream thread runs inside its own `block_on`, so it cannot
//! drive the client itself, and a dedicated thread keeps a slow registry from being polled
//! by the stream thread's runtime.
//!
//! Subjects follow the topic name strategy, `<topic>-key` / `<topic>-value`, for every topic
//! a record is written to or read from: input and output topics, and the internal
//! repartition topics (`<application.id>-<name>-repartition-value`), as Kafka Streams does.
//! State stores hold a value's plain Avro datum with the type's own schema (no framing),
//! so a store key is the same bytes whatever topic the key came from; their changelogs carry
//! those bytes too (Kafka Streams frames changelog records with `<changelog>-value`
//! subjects; here they are internal to the application and registered nowhere).

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;
use strom_registry::avro::ParsedAvro;
use strom_registry::serde::{self as reg, FetchedSchema, RegistryClient};

use crate::error::SerdeError;
use crate::serde::{Serde, SerdeContext};

type Job = Box<dyn FnOnce(Arc<RegistryClient>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Ids by type, then topic: `[key, value]`.
type IdCache = HashMap<TypeId, HashMap<String, [Option<i32>; 2]>>;

/// A Schema Registry client for stream threads: cached, synchronous on a miss.
pub struct SchemaRegistry {
    url: String,
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    ids: Mutex<IdCache>,
    schemas: Mutex<HashMap<i32, Arc<FetchedSchema>>>,
    /// Schema type (AVRO, JSON, PROTOBUF) per id, for readers that do not parse the schema.
    types: Mutex<HashMap<i32, String>>,
    /// `auto.register.schemas` (default true): register a type's schema under its subject;
    /// false looks the schema up and fails when the subject does not have it.
    auto_register: bool,
    timeout: Duration,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl SchemaRegistry {
    /// A client of the registry at `url` (`schema.registry.url`). Starts the thread that
    /// talks to it; the thread ends when the last handle is dropped.
    pub fn new(url: &str, auto_register: bool) -> Result<Arc<SchemaRegistry>, SerdeError> {
        let client = RegistryClient::new(url);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SerdeError::new(format!("schema registry runtime: {e}")))?;
        std::thread::Builder::new()
            .name("streams-registry".into())
            .spawn(move || {
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job(client.clone()));
                    }
                })
            })
            .map_err(|e| SerdeError::new(format!("schema registry thread: {e}")))?;
        Ok(Arc::new(SchemaRegistry {
            url: url.to_owned(),
            jobs: tx,
            ids: Mutex::default(),
            schemas: Mutex::default(),
            types: Mutex::default(),
            auto_register,
            timeout: Duration::from_secs(30),
        }))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long a stream thread waits for the registry on a cache miss.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `f` with the client on the registry thread and waits for its answer.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, SerdeError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<RegistryClient>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, reg::SerdeError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let _ = tx.send(f(client).await);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| SerdeError::new("schema registry thread is gone"))?;
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r.map_err(|e| SerdeError::new(e.to_string())),
            Err(_) => Err(SerdeError::new(format!(
                "schema registry {} did not answer within {:?}",
                self.url, self.timeout
            ))),
        }
    }

    /// The id of `schema` (of `schema_type`, the schema of Rust type `type_id`) under the
    /// subject of `ctx`.
    fn id_for(
        &self,
        type_id: TypeId,
        schema: &'static str,
        schema_type: &'static str,
        ctx: &SerdeContext<'_>,
    ) -> Result<i32, SerdeError> {
        let slot = usize::from(!ctx.is_key);
        if let Some(id) = lock(&self.ids)
            .get(&type_id)
            .and_then(|m| m.get(ctx.topic))
            .and_then(|ids| ids[slot])
        {
            return Ok(id);
        }
        let subject = format!("{}-{}", ctx.topic, if ctx.is_key { "key" } else { "value" });
        let register = self.auto_register;
        let id = self.call(move |c| async move {
            if register {
                c.register_typed(&subject, schema, schema_type, false).await
            } else {
                c.lookup_typed(&subject, schema, schema_type, false).await
            }
        })?;
        lock(&self.ids)
            .entry(type_id)
            .or_default()
            .entry(ctx.topic.to_owned())
            .or_default()[slot] = Some(id);
        Ok(id)
    }

    /// Writer schema `id`, parsed.
    fn schema(&self, id: i32) -> Result<Arc<FetchedSchema>, SerdeError> {
        if let Some(s) = lock(&self.schemas).get(&id) {
            return Ok(s.clone());
        }
        let s = self.call(move |c| async move { c.schema_by_id(id).await })?;
        lock(&self.schemas).insert(id, s.clone());
        Ok(s)
    }
}

impl SchemaRegistry {
    /// The type of schema `id` (AVRO, JSON, PROTOBUF).
    fn schema_type(&self, id: i32) -> Result<String, SerdeError> {
        if let Some(t) = lock(&self.types).get(&id) {
            return Ok(t.clone());
        }
        let (t, _) = self.call(move |c| async move { c.schema_text_by_id(id).await })?;
        lock(&self.types).insert(id, t.clone());
        Ok(t)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A type with an Avro schema: serde maps it to and from Avro values of that schema
/// (records to structs by field name, unions with null to `Option`).
pub trait AvroRecord: serde::Serialize + serde::de::DeserializeOwned + Clone + 'static {
    /// The schema as JSON text, as registered.
    const SCHEMA: &'static str;
}

/// A value written as Avro with `T`'s schema: Confluent-framed on topics (the schema
/// registered under the topic's subject), a plain Avro datum in state stores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Avro<T>(pub T);

/// `T::SCHEMA` parsed, once per type.
fn parsed<T: AvroRecord>() -> Result<Arc<ParsedAvro>, SerdeError> {
    static PARSED: OnceLock<Mutex<HashMap<TypeId, Arc<ParsedAvro>>>> = OnceLock::new();
    let cache = PARSED.get_or_init(Mutex::default);
    if let Some(p) = lock(cache).get(&TypeId::of::<T>()) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        strom_registry::avro::parse(T::SCHEMA, &[])
            .map_err(|e| SerdeError::new(format!("invalid Avro schema: {e}")))?,
    );
    lock(cache).insert(TypeId::of::<T>(), p.clone());
    Ok(p)
}

impl<T: AvroRecord> Avro<T> {
    /// Confluent framing with schema `id`.
    fn encode(&self, id: i32) -> Result<Vec<u8>, SerdeError> {
        let p = parsed::<T>()?;
        let value = apache_avro::to_value(&self.0)
            .map_err(|e| SerdeError::new(format!("cannot make an Avro value: {e}")))?;
        reg::encode(id, &p, value).map_err(|e| SerdeError::new(e.to_string()))
    }

    fn from_value(value: AvroValue) -> Result<Self, SerdeError> {
        apache_avro::from_value::<T>(&value)
            .map(Avro)
            .map_err(|e| SerdeError::new(format!("Avro value does not fit the type: {e}")))
    }
}

impl<T: AvroRecord> Serde for Avro<T> {
    /// The plain Avro datum (what state stores hold). A value that does not fit the schema
    /// (a type whose serde shape disagrees with `SCHEMA`) writes nothing, which reads back
    /// as an error naming the store; topics report it when the record is written.
    fn to_bytes(&self) -> Vec<u8> {
        match self.encode(0) {
            Ok(mut framed) => framed.split_off(5),
            Err(e) => {
                tracing::warn!("cannot encode an Avro value for a store: {e}");
                Vec::new()
            }
        }
    }

    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        let p = parsed::<T>()?;
        let mut payload = data;
        let v = reg::decode(&p, &mut payload).map_err(|e| SerdeError::new(e.to_string()))?;
        Self::from_value(v)
    }

    fn serialize_for(&self, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        let registry = ctx.registry()?;
        let id = registry.id_for(TypeId::of::<Self>(), T::SCHEMA, "AVRO", ctx)?;
        self.encode(id)
    }

    /// Reads with the record's writer schema (fetched by id once), resolved to `T`'s
    /// schema when they differ (Avro schema evolution: added fields take their defaults).
    fn deserialize_for(ctx: &SerdeContext<'_>, data: &[u8]) -> Result<Self, SerdeError> {
        let registry = ctx.registry()?;
        let (id, mut payload) =
            reg::split_frame(data).map_err(|e| SerdeError::new(e.to_string()))?;
        let writer = registry.schema(id)?;
        let value = reg::decode(&writer.parsed, &mut payload)
            .map_err(|e| SerdeError::new(e.to_string()))?;
        let reader = parsed::<T>()?;
        let value = if writer.parsed.schema == reader.schema {
            value
        } else {
            let schemata: Vec<&Schema> = reader.schemata.iter().collect();
            value
                .resolve_schemata(&reader.schema, schemata)
                .map_err(|e| SerdeError::new(format!("writer schema {id} does not resolve: {e}")))?
        };
        Self::from_value(value)
    }
}

/// A type with a JSON Schema (draft 7 or later, as the registry accepts), as serde writes it.
pub trait JsonSchemaRecord:
    serde::Serialize + serde::de::DeserializeOwned + Clone + 'static
{
    /// The schema as JSON text, as registered (schema type JSON).
    const SCHEMA: &'static str;
}

/// A value written as JSON with `T`'s JSON Schema registered: Confluent-framed on topics
/// (magic 0, the schema id, the JSON document, as Confluent's JSON Schema serializer
/// writes), plain JSON in state stores. Reading checks that the id names a JSON schema
/// (once per id) and parses the document; it is not validated against the schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct JsonSchema<T>(pub T);

impl<T: JsonSchemaRecord> Serde for JsonSchema<T> {
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_else(|_| b"null".to_vec())
    }

    fn from_bytes(data: &[u8]) -> Result<Self, SerdeError> {
        serde_json::from_slice(data)
            .map(JsonSchema)
            .map_err(|e| SerdeError::new(format!("invalid JSON: {e}")))
    }

    fn serialize_for(&self, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        let registry = ctx.registry()?;
        let id = registry.id_for(TypeId::of::<Self>(), T::SCHEMA, "JSON", ctx)?;
        let body = serde_json::to_vec(&self.0)
            .map_err(|e| SerdeError::new(format!("cannot write JSON: {e}")))?;
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(reg::MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn deserialize_for(ctx: &SerdeContext<'_>, data: &[u8]) -> Result<Self, SerdeError> {
        let registry = ctx.registry()?;
        let (id, payload) = reg::split_frame(data).map_err(|e| SerdeError::new(e.to_string()))?;
        let t = registry.schema_type(id)?;
        if t != "JSON" {
            return Err(SerdeError::new(format!(
                "schema {id} is {t}, not a JSON schema"
            )));
        }
        Self::from_bytes(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Reading {
        sensor: String,
        value: i64,
        unit: Option<String>,
    }

    impl AvroRecord for Reading {
        const SCHEMA: &'static str = r#"{"type":"record","name":"Reading","fields":[
            {"name":"sensor","type":"string"},{"name":"value","type":"long"},
            {"name":"unit","type":["null","string"],"default":null}]}"#;
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Mismatch {
        sensor: i32,
    }

    impl AvroRecord for Mismatch {
        const SCHEMA: &'static str =
            r#"{"type":"record","name":"M","fields":[{"name":"sensor","type":"string"}]}"#;
    }

    #[test]
    fn store_format_is_the_plain_datum_and_round_trips() {
        let r = Avro(Reading {
            sensor: "s1".into(),
            value: -7,
            unit: Some("C".into()),
        });
        let bytes = r.to_bytes();
        // "s1" (zigzag length 2 = 4), -7 (zigzag 13), union branch 1 (2), "C".
        assert_eq!(bytes, vec![4, b's', b'1', 13, 2, 2, b'C']);
        assert_eq!(Avro::<Reading>::from_bytes(&bytes), Ok(r));
        assert!(Avro::<Reading>::from_bytes(&[0xff]).is_err());
        // A type whose serde shape disagrees with its schema writes nothing readable.
        assert!(Avro(Mismatch { sensor: 1 }).to_bytes().is_empty());
    }

    #[test]
    fn topics_need_a_registry() {
        let sc = SerdeContext::new("readings", false);
        let r = Avro(Reading {
            sensor: "s".into(),
            value: 1,
            unit: None,
        });
        let e = r.serialize_for(&sc).unwrap_err();
        assert!(e.0.contains("schema.registry.url"), "{e}");
        assert!(Avro::<Reading>::deserialize_for(&sc, &[0, 0, 0, 0, 1]).is_err());
    }

    /// A registry that answers every registration with id 7 and schema 7 with `Reading`'s
    /// schema, counting the requests it gets.
    fn fake_registry() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body its Content-Length announces.
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let body = if line.starts_with("POST") {
                    r#"{"id":7}"#.to_owned()
                } else {
                    serde_json::json!({"schema": Reading::SCHEMA}).to_string()
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, count)
    }

    #[test]
    fn steady_state_asks_the_registry_once_per_subject_and_id() {
        let (url, count) = fake_registry();
        let registry = SchemaRegistry::new(&url, true).unwrap();
        let sc = SerdeContext {
            topic: "readings",
            is_key: false,
            registry: Some(&registry),
        };
        let mut framed = Vec::new();
        for i in 0..1000 {
            let r = Avro(Reading {
                sensor: format!("s{}", i % 3),
                value: i,
                unit: None,
            });
            let bytes = r.serialize_for(&sc).unwrap();
            assert_eq!(&bytes[..5], &[0, 0, 0, 0, 7]);
            assert_eq!(Avro::<Reading>::deserialize_for(&sc, &bytes), Ok(r));
            framed.push(bytes);
        }
        // One registration (readings-value) and one schema fetch (id 7), for 1000 records
        // each way.
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
        // The key subject is another registration.
        let key_ctx = SerdeContext { is_key: true, ..sc };
        Avro(Reading {
            sensor: "k".into(),
            value: 0,
            unit: None,
        })
        .serialize_for(&key_ctx)
        .unwrap();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Not Confluent-framed: refused without asking.
        assert!(Avro::<Reading>::deserialize_for(&sc, b"plain").is_err());
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
