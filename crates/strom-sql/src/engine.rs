//! The engine: the catalog of streams and tables, statement execution, planning queries
//! onto Strom Streams topologies, the command topic that makes persistent queries survive a
//! restart, push queries, pull queries and PRINT.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use strom_streams::{
    Json, KafkaStreams, Materialized, Processor, ProcessorContext, Record, SessionWindows,
    StreamsBuilder, StreamsConfig, TimeWindows, Topology, Windowed,
};
use tokio::sync::{mpsc, Mutex};

use crate::ast::*;
use crate::avro::AvroSchema;
use crate::expr::{AggCall, AggContext, AggKind, CExpr, Compiler, Scope};
use crate::format::{self, Format};
use crate::parser::{self, column_name};
use crate::types::{SqlType, Value};
use crate::{Result, SqlError};

/// ksqlDB's default grace period of windows that do not set one.
const DEFAULT_GRACE_MS: i64 = 24 * 3_600_000;
/// COLLECT_LIST / COLLECT_SET keep at most this many values, as ksqlDB's default limit.
const COLLECT_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub bootstrap: String,
    pub service_id: String,
    pub state_dir: PathBuf,
    /// `ksql.streams.*` settings (prefix removed), passed to each query's Strom Streams.
    pub streams: Vec<(String, String)>,
    /// `ksql.schema.registry.url`: where AVRO sources find and register their schemas.
    pub schema_registry_url: Option<String>,
    /// `ksql.query.push.buffer.rows` (Strom's): rows a push query buffers for a slow client
    /// before dropping it.
    pub push_buffer_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
    pub key: bool,
}

/// A stream or table of the catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub topic: String,
    pub key_format: Format,
    pub value_format: Format,
    /// Key columns first.
    pub columns: Vec<Column>,
    pub window: Option<WindowKind>,
    pub statement: String,
    pub partitions: i32,
    /// `WITH (TIMESTAMP='col', TIMESTAMP_FORMAT='pattern')`: event time from a column.
    #[serde(default)]
    pub timestamp: Option<(String, Option<String>)>,
    /// AVRO keys/values: the registry and the schema id records are written with.
    #[serde(default)]
    pub key_avro: Option<AvroSchema>,
    #[serde(default)]
    pub value_avro: Option<AvroSchema>,
}

fn pairs(cols: &[Column], key: bool) -> Vec<(&str, &SqlType)> {
    cols.iter()
        .filter(|c| c.key == key)
        .map(|c| (c.name.as_str(), &c.ty))
        .collect()
}

/// Pseudo columns every row of a source has, after its own columns.
const PSEUDO: &[&str] = &["ROWTIME", "ROWPARTITION", "ROWOFFSET"];

impl Source {
    pub fn key_cols(&self) -> Vec<(&str, &SqlType)> {
        pairs(&self.columns, true)
    }
    pub fn value_cols(&self) -> Vec<(&str, &SqlType)> {
        pairs(&self.columns, false)
    }

    /// The columns a query over this source sees: its columns, then ROWTIME,
    /// ROWPARTITION, ROWOFFSET, then WINDOWSTART/WINDOWEND (windowed sources), then ROWKEY
    /// (the key as a string) for sources without key columns.
    pub fn scope(&self, qualifier: &str, out: &mut Scope) {
        for c in &self.columns {
            out.push(Some(qualifier), &c.name, c.ty.clone());
        }
        out.push(Some(qualifier), "ROWTIME", SqlType::BigInt);
        out.push(Some(qualifier), "ROWPARTITION", SqlType::Int);
        out.push(Some(qualifier), "ROWOFFSET", SqlType::BigInt);
        if self.window.is_some() {
            out.push(Some(qualifier), "WINDOWSTART", SqlType::BigInt);
            out.push(Some(qualifier), "WINDOWEND", SqlType::BigInt);
        }
        if self.key_cols().is_empty() {
            out.push(Some(qualifier), "ROWKEY", SqlType::String);
        }
    }

    /// Decodes a record into a row laid out as [`Source::scope`]; `Ok(None)` for a
    /// record without a value (a table's delete), with the key row still returned.
    pub fn decode(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        ts: i64,
        partition: i32,
        offset: i64,
    ) -> std::result::Result<(Vec<Value>, Option<Vec<Value>>), String> {
        let kc = self.key_cols();
        let mut window = None;
        let mut key = key;
        if let (Some(w), Some(k)) = (&self.window, key) {
            let (k, s, e) = format::split_window(w, k).ok_or("windowed key too short")?;
            key = Some(k);
            window = Some((s, e));
        }
        let keys = match key {
            Some(k) if !kc.is_empty() => {
                format::decode(self.key_format, k, &kc, true, self.key_avro.as_ref())?
            }
            _ => vec![Value::Null; kc.len()],
        };
        let Some(value) = value else {
            return Ok((keys, None));
        };
        let vals = format::decode(
            self.value_format,
            value,
            &self.value_cols(),
            false,
            self.value_avro.as_ref(),
        )?;
        let mut row = Vec::with_capacity(self.columns.len() + 6);
        let (mut ki, mut vi) = (keys.iter(), vals.into_iter());
        for c in &self.columns {
            row.push(if c.key {
                ki.next().cloned().unwrap_or(Value::Null)
            } else {
                vi.next().unwrap_or(Value::Null)
            });
        }
        row.push(Value::BigInt(ts));
        row.push(Value::Int(partition));
        row.push(Value::BigInt(offset));
        if let Some((s, e)) = window {
            row.push(Value::BigInt(s));
            row.push(Value::BigInt(e));
        }
        if kc.is_empty() {
            row.push(match key {
                Some(k) => Value::String(String::from_utf8_lossy(k).into_owned()),
                None => Value::Null,
            });
        }
        Ok((keys, Some(row)))
    }

    /// Encodes an output row (all columns, keys first) into key and value bytes.
    pub fn encode(&self, row: &[Value], window: Option<(i64, i64)>) -> (Option<Vec<u8>>, Vec<u8>) {
        let kc = self.key_cols();
        let vc = self.value_cols();
        let mut keys = Vec::new();
        let mut vals = Vec::new();
        for (c, v) in self.columns.iter().zip(row) {
            if c.key {
                keys.push(v.clone());
            } else {
                vals.push(v.clone());
            }
        }
        let mut key = if kc.is_empty() {
            None
        } else {
            format::encode(self.key_format, &keys, &kc, true, self.key_avro.as_ref())
        };
        if let (Some(w), Some((s, e))) = (&self.window, window) {
            let mut k = key.unwrap_or_default();
            k.extend(format::window_suffix(w, s, e));
            key = Some(k);
        }
        let value = format::encode(
            self.value_format,
            &vals,
            &vc,
            false,
            self.value_avro.as_ref(),
        )
        .unwrap_or_default();
        (key, value)
    }

    fn key_bytes(&self, keys: &[Value]) -> Option<Vec<u8>> {
        let kc = self.key_cols();
        if kc.is_empty() {
            None
        } else {
            format::encode(self.key_format, keys, &kc, true, self.key_avro.as_ref())
        }
    }
}

/// The running state of one aggregate call.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum AggState {
    Count(i64),
    Sum(Value),
    Avg(f64, i64),
    Pick(Value),
    List(Vec<Value>),
}

fn agg_init(c: &AggCall) -> AggState {
    match c.kind {
        AggKind::Count | AggKind::CountStar => AggState::Count(0),
        AggKind::Sum => AggState::Sum(match &c.arg_ty {
            SqlType::Int => Value::Int(0),
            SqlType::BigInt => Value::BigInt(0),
            SqlType::Decimal(_, s) => Value::Decimal(0, *s),
            _ => Value::Double(0.0),
        }),
        AggKind::Avg => AggState::Avg(0.0, 0),
        AggKind::CollectList | AggKind::CollectSet => AggState::List(Vec::new()),
        _ => AggState::Pick(Value::Null),
    }
}

fn agg_add(c: &AggCall, st: &mut AggState, v: Value) {
    use std::cmp::Ordering::*;
    match (c.kind, st) {
        (AggKind::CountStar, AggState::Count(n)) => *n += 1,
        (_, _) if v.is_null() => {}
        (AggKind::Count, AggState::Count(n)) => *n += 1,
        (AggKind::Sum, AggState::Sum(s)) => {
            *s = crate::expr::cast(add(s, &v), &c.out_ty);
        }
        (AggKind::Avg, AggState::Avg(s, n)) => {
            *s += v.as_f64().unwrap_or(0.0);
            *n += 1;
        }
        (AggKind::Min, AggState::Pick(p)) if p.is_null() || v.compare(p) == Some(Less) => *p = v,
        (AggKind::Max, AggState::Pick(p)) if p.is_null() || v.compare(p) == Some(Greater) => *p = v,
        (AggKind::LatestByOffset, AggState::Pick(p)) => *p = v,
        (AggKind::EarliestByOffset, AggState::Pick(p)) if p.is_null() => *p = v,
        (AggKind::CollectList, AggState::List(l)) if l.len() < COLLECT_LIMIT => l.push(v),
        (AggKind::CollectSet, AggState::List(l)) if l.len() < COLLECT_LIMIT && !l.contains(&v) => {
            l.push(v)
        }
        _ => {}
    }
}

fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.checked_add(*y).map(Value::Int).unwrap_or(Value::Null),
        (Value::Decimal(..), _) | (_, Value::Decimal(..)) => {
            let dec = |v: &Value| match v {
                Value::Decimal(u, s) => (*u, *s),
                o => (o.as_i64().unwrap_or(0) as i128, 0),
            };
            let ((x, sx), (y, sy)) = (dec(a), dec(b));
            let s = sx.max(sy);
            Value::Decimal(
                crate::types::rescale(x, sx, s).saturating_add(crate::types::rescale(y, sy, s)),
                s,
            )
        }
        (Value::Double(_), _) | (_, Value::Double(_)) => {
            Value::Double(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0))
        }
        _ => Value::BigInt(
            a.as_i64()
                .unwrap_or(0)
                .saturating_add(b.as_i64().unwrap_or(0)),
        ),
    }
}

/// Session merges: two sessions' states combined.
fn agg_merge(c: &AggCall, a: AggState, b: AggState) -> AggState {
    match (a, b) {
        (AggState::Count(x), AggState::Count(y)) => AggState::Count(x + y),
        (AggState::Sum(x), AggState::Sum(y)) => {
            AggState::Sum(crate::expr::cast(add(&x, &y), &c.out_ty))
        }
        (AggState::Avg(s1, n1), AggState::Avg(s2, n2)) => AggState::Avg(s1 + s2, n1 + n2),
        (AggState::List(mut x), AggState::List(y)) => {
            for v in y {
                if x.len() < COLLECT_LIMIT && (c.kind == AggKind::CollectList || !x.contains(&v)) {
                    x.push(v);
                }
            }
            AggState::List(x)
        }
        (AggState::Pick(x), AggState::Pick(y)) => {
            // `a` is the older session.
            let mut st = AggState::Pick(x);
            agg_add(c, &mut st, y);
            st
        }
        (a, _) => a,
    }
}

fn agg_result(st: &AggState) -> Value {
    match st {
        AggState::Count(n) => Value::BigInt(*n),
        AggState::Sum(v) | AggState::Pick(v) => v.clone(),
        AggState::Avg(_, 0) => Value::Null,
        AggState::Avg(s, n) => Value::Double(s / *n as f64),
        AggState::List(l) => Value::Array(l.clone()),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroupRec {
    keys: Vec<Value>,
    args: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Acc {
    keys: Vec<Value>,
    ts: i64,
    states: Vec<AggState>,
}

/// A query compiled against the catalog.
#[derive(Debug)]
pub struct Plan {
    pub input: Source,
    where_: Option<CExpr>,
    body: Body,
    /// The result's columns (keys first), kind and window.
    pub output: Source,
    /// Whether the input is read as a table (deletes pass through).
    table_input: bool,
    /// A stream-table join: the table, and the key expression over the stream's scope.
    join: Option<JoinPlan>,
}

#[derive(Debug)]
struct JoinPlan {
    right: Source,
    /// Rows of the left side without a match are kept (LEFT, FULL).
    left_join: bool,
    /// Rows of the right side without a match are kept (RIGHT, FULL; table-table only).
    right_outer: bool,
    left_key: CExpr,
    /// Stream-stream joins: the key expression over the right stream's scope, and WITHIN
    /// (before, after, grace) in milliseconds.
    right_key: Option<CExpr>,
    within: Option<(i64, i64, Option<i64>)>,
    /// Width of the stream's part of the joined row.
    left_width: usize,
    /// Width of the table's part.
    right_width: usize,
}

#[derive(Debug)]
enum Body {
    Simple {
        proj: Vec<CExpr>,
        /// PARTITION BY: the new key (its expressions are also output columns).
        rekey: bool,
    },
    Agg {
        group: Vec<CExpr>,
        calls: Vec<AggCall>,
        proj: Vec<CExpr>,
        having: Option<CExpr>,
        window: Option<WindowSpec>,
        /// EMIT FINAL: one result per window, when it closes.
        emit_final: bool,
    },
}

impl Plan {
    /// For a simple query: the output row of an input row, or `None` if WHERE drops it.
    fn project(&self, row: &[Value]) -> Option<Vec<Value>> {
        if let Some(w) = &self.where_ {
            if !w.test(row) {
                return None;
            }
        }
        match &self.body {
            Body::Simple { proj, .. } => Some(proj.iter().map(|e| e.eval(row)).collect()),
            Body::Agg { .. } => None,
        }
    }

    fn agg_row(&self, acc: &Acc, window: Option<(i64, i64)>) -> Option<Vec<Value>> {
        let Body::Agg { proj, having, .. } = &self.body else {
            return None;
        };
        let mut row = vec![
            Value::BigInt(acc.ts),
            window.map(|w| Value::BigInt(w.0)).unwrap_or(Value::Null),
            window.map(|w| Value::BigInt(w.1)).unwrap_or(Value::Null),
        ];
        row.extend(acc.keys.iter().cloned());
        row.extend(acc.states.iter().map(agg_result));
        if let Some(h) = having {
            if !h.test(&row) {
                return None;
            }
        }
        Some(proj.iter().map(|e| e.eval(&row)).collect())
    }

    pub fn is_aggregate(&self) -> bool {
        matches!(self.body, Body::Agg { .. })
    }
}

/// Where a query's rows go.
pub enum Sink {
    Topic,
    /// Push queries: each output row into a bounded buffer; a client too slow to empty
    /// it is dropped (`overflowed`), rather than buffered without limit or allowed to stall
    /// the stream thread (which would cost its consumer group membership).
    Channel {
        tx: mpsc::Sender<Vec<Value>>,
        overflowed: Arc<std::sync::atomic::AtomicBool>,
    },
}

/// Raw record bytes; a null key or value reads as `Raw(None)` (strom-streams' `Option`
/// serde adds a tag byte, which topics written by other clients do not have).
#[derive(Debug, Clone)]
pub struct Raw(pub Option<Vec<u8>>);

impl strom_streams::Serde for Raw {
    fn to_bytes(&self) -> Vec<u8> {
        self.0.clone().unwrap_or_default()
    }
    fn from_bytes(data: &[u8]) -> std::result::Result<Self, strom_streams::SerdeError> {
        Ok(Raw(Some(data.to_vec())))
    }
    fn from_null() -> Option<Self> {
        Some(Raw(None))
    }
}

type OutRec = (Raw, Json<Option<Vec<Value>>>);

struct SourceProc {
    plan: Arc<Plan>,
}

impl Processor<Raw, Raw, Raw, Json<Option<Vec<Value>>>> for SourceProc {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Raw, Json<Option<Vec<Value>>>>,
        rec: Record<Raw, Raw>,
    ) -> strom_streams::Result<()> {
        let p = &self.plan;
        let (partition, offset) = (ctx.task().partition(), ctx.task().offset());
        let (keys, row) = match p.input.decode(
            rec.key.0.as_deref(),
            rec.value.0.as_deref(),
            rec.timestamp,
            partition,
            offset,
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "{}: skipping a record at {}-{partition}@{offset}: {e}",
                    p.output.name,
                    p.input.topic
                );
                return Ok(());
            }
        };
        match (&p.body, row) {
            (Body::Simple { rekey, .. }, row) => {
                let out = row.as_ref().and_then(|r| p.project(r));
                if out.is_none() && !p.table_input {
                    return Ok(());
                }
                // A table's row that is deleted or no longer matches WHERE is a delete.
                let key = match (&out, rekey) {
                    (Some(o), _) => p.output.key_bytes(&o[..p.output.key_cols().len()]),
                    (None, false) => p.input.key_bytes(&keys),
                    (None, true) => return Ok(()),
                };
                ctx.forward(Record {
                    key: Raw(key),
                    value: Json(out),
                    timestamp: rec.timestamp,
                });
            }
            (Body::Agg { group, calls, .. }, Some(row)) => {
                if let Some(w) = &p.where_ {
                    if !w.test(&row) {
                        return Ok(());
                    }
                }
                let keys: Vec<Value> = group.iter().map(|g| g.eval(&row)).collect();
                if keys.iter().any(Value::is_null) {
                    // ksqlDB drops rows whose grouping key is NULL.
                    return Ok(());
                }
                let args = calls
                    .iter()
                    .map(|c| c.arg.as_ref().map(|a| a.eval(&row)).unwrap_or(Value::Null))
                    .collect();
                let kb = serde_json::to_vec(&keys).unwrap_or_default();
                ctx.forward(Record {
                    key: Raw(Some(kb)),
                    value: Json(Some(
                        // Carried as a one-element row holding the GroupRec as JSON text.
                        vec![Value::String(
                            serde_json::to_string(&GroupRec { keys, args }).unwrap_or_default(),
                        )],
                    )),
                    timestamp: rec.timestamp,
                });
            }
            (Body::Agg { .. }, None) => {}
        }
        Ok(())
    }
}

/// The stream side of a stream-table join: decoded rows keyed by the join key (in the
/// table's key format), the key value appended for the joiner.
struct JoinLeftProc {
    plan: Arc<Plan>,
}

impl Processor<Raw, Raw, Raw, Json<Option<Vec<Value>>>> for JoinLeftProc {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Raw, Json<Option<Vec<Value>>>>,
        rec: Record<Raw, Raw>,
    ) -> strom_streams::Result<()> {
        let p = &self.plan;
        let Some(j) = &p.join else { return Ok(()) };
        let (partition, offset) = (ctx.task().partition(), ctx.task().offset());
        let row = match p.input.decode(
            rec.key.0.as_deref(),
            rec.value.0.as_deref(),
            rec.timestamp,
            partition,
            offset,
        ) {
            Ok((_, Some(row))) => row,
            Ok((_, None)) => return Ok(()),
            Err(e) => {
                tracing::warn!(
                    "{}: skipping a record at {}-{partition}@{offset}: {e}",
                    p.output.name,
                    p.input.topic
                );
                return Ok(());
            }
        };
        let kv = j.left_key.eval(&row);
        if kv.is_null() {
            // ksqlDB drops stream rows whose join key is NULL.
            return Ok(());
        }
        let kb = if j.right_key.is_some() {
            // Stream-stream: both sides are re-keyed here, any one encoding will do.
            serde_json::to_vec(&kv).unwrap_or_default()
        } else {
            match j.right.key_bytes(std::slice::from_ref(&kv)) {
                Some(kb) => kb,
                None => return Ok(()),
            }
        };
        let mut row = row;
        row.push(kv);
        ctx.forward(Record {
            key: Raw(Some(kb)),
            value: Json(Some(row)),
            timestamp: rec.timestamp,
        });
        Ok(())
    }
}

/// The right side of a stream-stream join: decoded rows keyed by the join key.
struct JoinRightProc {
    plan: Arc<Plan>,
}

impl Processor<Raw, Raw, Raw, Json<Option<Vec<Value>>>> for JoinRightProc {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Raw, Json<Option<Vec<Value>>>>,
        rec: Record<Raw, Raw>,
    ) -> strom_streams::Result<()> {
        let p = &self.plan;
        let Some(j) = &p.join else { return Ok(()) };
        let Some(rk) = &j.right_key else {
            return Ok(());
        };
        let (partition, offset) = (ctx.task().partition(), ctx.task().offset());
        let row = match j.right.decode(
            rec.key.0.as_deref(),
            rec.value.0.as_deref(),
            rec.timestamp,
            partition,
            offset,
        ) {
            Ok((_, Some(row))) => row,
            Ok((_, None)) => return Ok(()),
            Err(e) => {
                tracing::warn!(
                    "{}: skipping a record at {}-{partition}@{offset}: {e}",
                    p.output.name,
                    j.right.topic
                );
                return Ok(());
            }
        };
        let kv = rk.eval(&row);
        if kv.is_null() {
            return Ok(());
        }
        ctx.forward(Record {
            key: Raw(Some(serde_json::to_vec(&kv).unwrap_or_default())),
            value: Json(Some(row)),
            timestamp: rec.timestamp,
        });
        Ok(())
    }
}

/// After a table-table join: each change of the joined table decoded (both values with
/// the shared key), filtered and projected; deletes and rows that stop matching WHERE are
/// deletes of the result.
struct TableJoinProc {
    plan: Arc<Plan>,
}

type PairChange = strom_streams::Change<Json<(Option<Vec<u8>>, Option<Vec<u8>>)>>;

impl Processor<Raw, PairChange, Raw, Json<Option<Vec<Value>>>> for TableJoinProc {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Raw, Json<Option<Vec<Value>>>>,
        rec: Record<Raw, PairChange>,
    ) -> strom_streams::Result<()> {
        let p = &self.plan;
        let Some(j) = &p.join else { return Ok(()) };
        let key = rec.key.0.as_deref();
        let (keys, _) = match p.input.decode(key, None, rec.timestamp, 0, 0) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("{}: skipping a key: {e}", p.output.name);
                return Ok(());
            }
        };
        let out = rec.value.new.and_then(|pair| {
            let (l, r) = pair.0;
            // RIGHT / FULL: a right row without a left one has NULL left columns.
            let mut row = match l {
                Some(l) => p.input.decode(key, Some(&l), rec.timestamp, 0, 0).ok()?.1?,
                None if r.is_some() && j.right_outer => vec![Value::Null; j.left_width],
                None => return None,
            };
            let rrow = r.and_then(|r| {
                j.right
                    .decode(key, Some(&r), rec.timestamp, 0, 0)
                    .ok()
                    .and_then(|d| d.1)
            });
            match rrow {
                Some(rr) => row.extend(rr),
                None => row.extend(std::iter::repeat_n(Value::Null, j.right_width)),
            }
            let mut o = p.project(&row)?;
            // The key of a table-table join is the join key, also where the projected
            // key column comes from the side without a row.
            for (v, k) in o.iter_mut().zip(&keys).take(p.output.key_cols().len()) {
                if *v == Value::Null {
                    *v = k.clone();
                }
            }
            Some(o)
        });
        let out_key = match &out {
            Some(o) => p.output.key_bytes(&o[..p.output.key_cols().len()]),
            None => p.output.key_bytes(&keys),
        };
        ctx.forward(Record {
            key: Raw(out_key),
            value: Json(out),
            timestamp: rec.timestamp,
        });
        Ok(())
    }
}

/// After a join: WHERE and the projection over the joined row.
struct JoinedProc {
    plan: Arc<Plan>,
}

impl Processor<Raw, Json<Option<Vec<Value>>>, Raw, Json<Option<Vec<Value>>>> for JoinedProc {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Raw, Json<Option<Vec<Value>>>>,
        rec: Record<Raw, Json<Option<Vec<Value>>>>,
    ) -> strom_streams::Result<()> {
        let p = &self.plan;
        let Some(row) = rec.value.0 else {
            return Ok(());
        };
        let Some(out) = p.project(&row) else {
            return Ok(());
        };
        let key = p.output.key_bytes(&out[..p.output.key_cols().len()]);
        ctx.forward(Record {
            key: Raw(key),
            value: Json(Some(out)),
            timestamp: rec.timestamp,
        });
        Ok(())
    }
}

fn group_rec(v: &Json<Option<Vec<Value>>>) -> Option<GroupRec> {
    match v.0.as_ref()?.first()? {
        Value::String(s) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

/// Builds the Strom Streams topology of a plan.
pub fn build_topology(plan: Arc<Plan>, sink: Sink, store: &str) -> Result<Topology> {
    let b = StreamsBuilder::new();
    let st = |e: strom_streams::StreamsError| SqlError::server(format!("topology: {e}"));
    let table_join = plan.table_input && plan.join.is_some();
    // A table-table join reads both tables itself (below).
    let src = if table_join {
        None
    } else if plan.table_input {
        // A table's deletes (null values) must reach the query: read it as a table, whose
        // change stream carries them.
        b.table::<Raw, Raw>(
            &plan.input.topic,
            Materialized::in_memory(&format!("{store}-source")).without_logging(),
        )
        .map_err(st)?
        .to_change_stream()
        .map_values(|_, c: strom_streams::Change<Raw>| c.new.unwrap_or(Raw(None)))
        .into()
    } else if let Some((col, format)) = plan.input.timestamp.clone() {
        // Event time from a column: the extractor decodes the record; a record without a
        // usable time gets -1, which Strom Streams skips with a warning.
        let p = plan.clone();
        let idx = plan.input.columns.iter().position(|c| c.name == col);
        let extractor: strom_streams::TimestampExtractor =
            Arc::new(move |rec: &strom_client::ConsumerRecord| {
                let row = p
                    .input
                    .decode(
                        rec.key.as_deref(),
                        rec.value.as_deref(),
                        rec.timestamp,
                        0,
                        0,
                    )
                    .ok()
                    .and_then(|d| d.1);
                match (row.as_ref().zip(idx).and_then(|(r, i)| r.get(i)), &format) {
                    (Some(Value::String(s)), Some(f)) => {
                        crate::time::parse_pattern(s, f).unwrap_or(-1)
                    }
                    (Some(v), _) => v.as_i64().unwrap_or(-1),
                    (None, _) => -1,
                }
            });
        Some(b.stream_with_timestamps::<Raw, Raw>(&plan.input.topic, extractor))
    } else {
        Some(b.stream::<Raw, Raw>(&plan.input.topic))
    };
    let p = plan.clone();
    let rows = match (&plan.join, src) {
        (None, Some(src)) => src.process(move || Box::new(SourceProc { plan: p.clone() }), &[]),
        (Some(j), Some(src)) if j.right_key.is_some() => {
            let left = src.process(move || Box::new(JoinLeftProc { plan: p.clone() }), &[]);
            let pr = plan.clone();
            let right = b
                .stream::<Raw, Raw>(&j.right.topic)
                .process(move || Box::new(JoinRightProc { plan: pr.clone() }), &[]);
            let (before, after, grace) = j.within.unwrap_or((0, 0, None));
            let w = strom_streams::JoinWindows {
                before_ms: before,
                after_ms: after,
                grace_ms: grace.unwrap_or(DEFAULT_GRACE_MS),
            };
            let width = j.right_width;
            let combine = move |l: &Json<Option<Vec<Value>>>,
                                r: Option<&Json<Option<Vec<Value>>>>| {
                let Some(mut row) = l.0.clone() else {
                    return Json(None);
                };
                row.pop();
                match r.and_then(|r| r.0.clone()) {
                    Some(rr) => row.extend(rr),
                    None => row.extend(std::iter::repeat_n(Value::Null, width)),
                }
                Json(Some(row))
            };
            let name = format!("{store}-join");
            let joined = if j.left_join {
                left.left_join_windowed(&right, combine, w, &name)
            } else {
                left.join_windowed(&right, move |l, r| combine(l, Some(r)), w, &name)
            }
            .map_err(st)?;
            let p = plan.clone();
            joined.process(move || Box::new(JoinedProc { plan: p.clone() }), &[])
        }
        (Some(j), None) => {
            let left = b
                .table::<Raw, Raw>(
                    &plan.input.topic,
                    Materialized::persistent(&format!("{store}-left")),
                )
                .map_err(st)?;
            let right = b
                .table::<Raw, Raw>(
                    &j.right.topic,
                    Materialized::persistent(&format!("{store}-right")),
                )
                .map_err(st)?;
            type Pair = Json<(Option<Vec<u8>>, Option<Vec<u8>>)>;
            let joined = if j.left_join && j.right_outer {
                left.outer_join(&right, |l: Option<&Raw>, r: Option<&Raw>| -> Pair {
                    Json((l.and_then(|l| l.0.clone()), r.and_then(|r| r.0.clone())))
                })
            } else if j.right_outer {
                right.left_join(&left, |r: &Raw, l: Option<&Raw>| -> Pair {
                    Json((l.and_then(|l| l.0.clone()), r.0.clone()))
                })
            } else if j.left_join {
                left.left_join(&right, |l: &Raw, r: Option<&Raw>| -> Pair {
                    Json((l.0.clone(), r.and_then(|r| r.0.clone())))
                })
            } else {
                left.join(&right, |l: &Raw, r: &Raw| -> Pair {
                    Json((l.0.clone(), r.0.clone()))
                })
            }
            .map_err(st)?;
            joined
                .to_change_stream()
                .process(move || Box::new(TableJoinProc { plan: p.clone() }), &[])
        }
        (Some(j), Some(src)) => {
            let table = b
                .table::<Raw, Raw>(
                    &j.right.topic,
                    Materialized::persistent(&format!("{store}-right")),
                )
                .map_err(st)?;
            let left = src.process(move || Box::new(JoinLeftProc { plan: p.clone() }), &[]);
            let pc = plan.clone();
            let combine = move |l: &Json<Option<Vec<Value>>>, r: Option<&Raw>| {
                let Some(j) = &pc.join else { return Json(None) };
                let Some(mut row) = l.0.clone() else {
                    return Json(None);
                };
                let kv = row.pop().unwrap_or(Value::Null);
                let right = r
                    .and_then(|r| j.right.decode(None, r.0.as_deref(), 0, 0, 0).ok())
                    .and_then(|d| d.1);
                match right {
                    Some(mut rr) => {
                        // The table's key column is the join key.
                        if let Some(k) = rr.first_mut() {
                            *k = kv;
                        }
                        row.extend(rr);
                    }
                    None => row.extend(std::iter::repeat_n(Value::Null, j.right_width)),
                }
                Json(Some(row))
            };
            let joined = if j.left_join {
                left.left_join(&table, combine)
            } else {
                left.join(&table, move |l, r| combine(l, Some(r)))
            }
            .map_err(st)?;
            let p = plan.clone();
            joined.process(move || Box::new(JoinedProc { plan: p.clone() }), &[])
        }
        (None, None) => return Err(SqlError::server("a query without input")),
    };
    let out: strom_streams::KStream<Raw, Json<Option<Vec<Value>>>> = match &plan.body {
        Body::Simple { .. } => rows,
        Body::Agg {
            calls,
            window,
            emit_final,
            ..
        } => {
            let calls = Arc::new(calls.clone());
            let grouped = rows.group_by_key();
            let (c1, c2, c3) = (calls.clone(), calls.clone(), calls.clone());
            let init = move || {
                Json(Acc {
                    keys: Vec::new(),
                    ts: 0,
                    states: c1.iter().map(agg_init).collect(),
                })
            };
            let adder = move |_: &Raw, v: Json<Option<Vec<Value>>>, acc: Json<Acc>| {
                let mut acc = acc.0;
                if let Some(g) = group_rec(&v) {
                    acc.keys = g.keys;
                    for ((c, s), a) in c2.iter().zip(acc.states.iter_mut()).zip(g.args) {
                        agg_add(c, s, a);
                    }
                }
                Json(acc)
            };
            let m = Materialized::persistent(store);
            let p = plan.clone();
            match window.map(|w| w.kind) {
                None => {
                    let t = grouped.aggregate(init, adder, m).map_err(st)?;
                    t.to_stream().map(move |k, acc: Json<Acc>| {
                        let row = p.agg_row(&acc.0, None);
                        let key = row
                            .as_ref()
                            .and_then(|r| p.output.key_bytes(&r[..p.output.key_cols().len()]))
                            .or_else(|| p.output.key_bytes(&acc.0.keys))
                            .or(k.0);
                        (Raw(key), Json(row))
                    })
                }
                Some(kind @ (WindowKind::Tumbling { .. } | WindowKind::Hopping { .. })) => {
                    let (size, advance) = match kind {
                        WindowKind::Tumbling { size } => (size, size),
                        WindowKind::Hopping { size, advance } => (size, advance),
                        WindowKind::Session { gap } => (gap, gap),
                    };
                    let grace = window.and_then(|w| w.grace).unwrap_or(DEFAULT_GRACE_MS);
                    let tw = TimeWindows::of_size(size).advance_by(advance).grace(grace);
                    let mut t = grouped
                        .windowed_by(tw)
                        .aggregate(init, adder, m)
                        .map_err(st)?;
                    if *emit_final {
                        t = t
                            .suppress_until_window_closes(&format!("{store}-Suppress"))
                            .map_err(st)?;
                    }
                    t.to_stream().map(move |k: Windowed<Raw>, acc: Json<Acc>| {
                        windowed_out(&p, &acc.0, k.start, k.end)
                    })
                }
                Some(WindowKind::Session { gap }) => {
                    let grace = window.and_then(|w| w.grace).unwrap_or(DEFAULT_GRACE_MS);
                    let sw = SessionWindows::with_inactivity_gap(gap).grace(grace);
                    let merger = move |_: &Raw, a: Json<Acc>, b: Json<Acc>| {
                        let (a, b) = (a.0, b.0);
                        let keys = if a.keys.is_empty() {
                            b.keys.clone()
                        } else {
                            a.keys.clone()
                        };
                        Json(Acc {
                            keys,
                            ts: a.ts.max(b.ts),
                            states: c3
                                .iter()
                                .zip(a.states.into_iter().zip(b.states))
                                .map(|(c, (x, y))| agg_merge(c, x, y))
                                .collect(),
                        })
                    };
                    let mut t = grouped
                        .windowed_by_session(sw)
                        .aggregate(init, adder, merger, m)
                        .map_err(st)?;
                    if *emit_final {
                        t = t
                            .suppress_until_window_closes(&format!("{store}-Suppress"))
                            .map_err(st)?;
                    }
                    t.to_stream().map(move |k: Windowed<Raw>, acc: Json<Acc>| {
                        windowed_out(&p, &acc.0, k.start, k.end)
                    })
                }
            }
        }
    };
    let p = plan.clone();
    let sink = Arc::new(sink);
    let _ = out.process(
        move || {
            Box::new(SinkProc {
                plan: p.clone(),
                sink: sink.clone(),
            })
        },
        &[],
    );
    b.build().map_err(st)
}

/// The last step: each output row to the sink topic (deletes as null values) or to the
/// push query's channel.
struct SinkProc {
    plan: Arc<Plan>,
    sink: Arc<Sink>,
}

impl Processor<Raw, Json<Option<Vec<Value>>>, Raw, Raw> for SinkProc {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Raw, Raw>,
        rec: Record<Raw, Json<Option<Vec<Value>>>>,
    ) -> strom_streams::Result<()> {
        match &*self.sink {
            Sink::Topic => {
                let value = rec.value.0.map(|row| self.plan.output.encode(&row, None).1);
                ctx.task_mut().send(
                    &self.plan.output.topic,
                    None,
                    rec.key.0,
                    value,
                    rec.timestamp,
                );
            }
            Sink::Channel { tx, overflowed } => {
                use std::sync::atomic::Ordering;
                if let Some(row) = rec.value.0 {
                    if overflowed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(row) {
                        tracing::warn!(
                            "a push query's client is too slow: its {} buffered rows are full, it is dropped",
                            tx.max_capacity()
                        );
                        overflowed.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(())
    }
}

fn windowed_out(p: &Plan, acc: &Acc, start: i64, end: i64) -> OutRec {
    let row = p.agg_row(acc, Some((start, end)));
    let keys = match &row {
        Some(r) => r[..p.output.key_cols().len()].to_vec(),
        None => acc.keys.clone(),
    };
    let mut key = p.output.key_bytes(&keys).unwrap_or_default();
    if let Some(w) = &p.output.window {
        key.extend(format::window_suffix(w, start, end));
    }
    (Raw(Some(key)), Json(row))
}

/// One output column of a projection before keys are chosen.
struct Item {
    name: String,
    expr: CExpr,
    ty: SqlType,
    text: String,
    /// The source key column it refers to, if it is a plain reference to one.
    src_key: bool,
}

/// Compiles a query against the catalog into a plan writing `name` (its sink).
pub fn plan_query(
    catalog: &BTreeMap<String, Source>,
    q: &Query,
    name: &str,
    kind: Option<SourceKind>,
    props: &Props,
) -> Result<Plan> {
    if q.joins.len() > 1 {
        return Err(SqlError::stmt(
            "Only one JOIN per query is supported by Strom SQL yet",
        ));
    }
    let input = catalog
        .get(&q.from.name)
        .ok_or_else(|| SqlError::stmt(format!("{} does not exist.", q.from.name)))?
        .clone();
    let mut scope = Scope::default();
    input.scope(q.from.reference(), &mut scope);
    let mut join = None;
    let mut join_keys: Vec<String> = Vec::new();
    if let Some(j) = q.joins.first() {
        let right = catalog
            .get(&j.source.name)
            .ok_or_else(|| SqlError::stmt(format!("{} does not exist.", j.source.name)))?
            .clone();
        let stream_stream = right.kind == SourceKind::Stream;
        let table_table = input.kind == SourceKind::Table;
        if table_table && stream_stream {
            return Err(SqlError::stmt(
                "Invalid join order: a table cannot be joined with a stream; put the stream first (FROM stream JOIN table)",
            ));
        }
        if table_table && input.key_format != right.key_format {
            return Err(SqlError::stmt(format!(
                "Table-table joins need both tables' keys in one format: {} has {}, {} has {}",
                input.name,
                input.key_format.name(),
                right.name,
                right.key_format.name()
            )));
        }
        if stream_stream && j.within.is_none() {
            return Err(SqlError::stmt(
                "Stream-Stream joins must have a WITHIN clause specified. None was provided.",
            ));
        }
        if !stream_stream && j.within.is_some() {
            return Err(SqlError::stmt(
                "A join with a table does not take a WITHIN clause",
            ));
        }
        if !table_table && !matches!(j.kind, JoinKind::Inner | JoinKind::Left) {
            return Err(SqlError::stmt(
                "Strom SQL supports RIGHT and FULL OUTER joins between tables only; joins of a stream are INNER or LEFT",
            ));
        }
        if q.from.reference() == j.source.reference() {
            return Err(SqlError::stmt(
                "The sources of a join need different names: use aliases",
            ));
        }
        let left_width = scope.cols.len();
        let mut left_scope = Scope::default();
        input.scope(q.from.reference(), &mut left_scope);
        let mut right_scope = Scope::default();
        right.scope(j.source.reference(), &mut right_scope);
        right.scope(j.source.reference(), &mut scope);
        let Expr::BinaryOp {
            left: on_l,
            op: sqlparser::ast::BinaryOperator::Eq,
            right: on_r,
        } = &j.on
        else {
            return Err(SqlError::stmt(format!(
                "Unsupported join criteria: {}. The ON clause must be an equality of the two sources' expressions",
                j.on
            )));
        };
        let (left_key, right_key) = if stream_stream {
            // Either side of `=` may name either source.
            let try_sides = |a: &Expr, b: &Expr| -> Result<(CExpr, CExpr, SqlType, SqlType)> {
                let (l, lt) = Compiler::new(&left_scope).compile(a)?;
                let (r, rt) = Compiler::new(&right_scope).compile(b)?;
                Ok((l, r, lt, rt))
            };
            let (l, r, lt, rt) = try_sides(on_l, on_r).or_else(|_| try_sides(on_r, on_l))?;
            if lt != rt {
                return Err(SqlError::stmt(format!(
                    "Invalid join condition: types don't match. Got {on_l}{{{lt}}} = {on_r}{{{rt}}}"
                )));
            }
            for e in [on_l, on_r] {
                if let Some(n) = column_name(e) {
                    join_keys.push(n);
                }
            }
            (l, Some(r))
        } else {
            let rk = right.key_cols();
            let rkey = rk[0].0.to_owned();
            // ON a = b: one side the table's key column, the other an expression of the stream.
            let is_rkey = |e: &Expr| match e {
                Expr::Identifier(i) => crate::parser::normalize_ident(i) == rkey,
                Expr::CompoundIdentifier(p) => {
                    p.len() == 2
                        && crate::parser::normalize_ident(&p[0]) == j.source.reference()
                        && crate::parser::normalize_ident(&p[1]) == rkey
                }
                _ => false,
            };
            let other = if is_rkey(on_r) {
                on_l
            } else if is_rkey(on_l) {
                on_r
            } else {
                return Err(SqlError::stmt(format!(
                    "Invalid join condition: table-table and stream-table joins must join on the table's PRIMARY KEY {}.{rkey}: {}",
                    j.source.reference(),
                    j.on
                )));
            };
            if table_table {
                let lkey = input.key_cols()[0].0.to_owned();
                if column_name(other).as_deref() != Some(lkey.as_str()) {
                    return Err(SqlError::stmt(format!(
                        "Invalid join condition: table-table joins must join on both tables' PRIMARY KEYs ({}.{lkey} = {}.{rkey}): {}",
                        q.from.reference(),
                        j.source.reference(),
                        j.on
                    )));
                }
            }
            let (left_key, lt) = Compiler::new(&left_scope).compile(other)?;
            if lt != *rk[0].1 {
                return Err(SqlError::stmt(format!(
                    "Invalid join condition: types don't match. Got {other}{{{lt}}} = {rkey}{{{}}}",
                    rk[0].1
                )));
            }
            join_keys.push(rkey.clone());
            if let Some(n) = column_name(other) {
                join_keys.push(n);
            }
            (left_key, None)
        };
        join = Some(JoinPlan {
            right,
            left_join: matches!(j.kind, JoinKind::Left | JoinKind::Full),
            right_outer: matches!(j.kind, JoinKind::Right | JoinKind::Full),
            left_key,
            right_key,
            within: j.within,
            left_width,
            right_width: scope.cols.len() - left_width,
        });
    }
    let where_ = match &q.where_ {
        Some(w) => {
            let (c, t) = Compiler::new(&scope).compile(w)?;
            if t != SqlType::Boolean {
                return Err(SqlError::stmt(format!(
                    "Type error in WHERE expression: Should evaluate to boolean but is {w} ({t}) instead."
                )));
            }
            Some(c)
        }
        None => None,
    };
    let aggregate = !q.group_by.is_empty();
    if q.window.is_some() && !aggregate {
        return Err(SqlError::stmt("WINDOW clause requires a GROUP BY clause."));
    }
    if q.emit == Some(Emit::Final) && q.window.is_none() {
        return Err(SqlError::stmt(
            "EMIT FINAL is only supported for windowed aggregations.",
        ));
    }
    if q.having.is_some() && !aggregate {
        return Err(SqlError::stmt("HAVING requires GROUP BY."));
    }
    let mut agg_ctx = None;
    let mut group_c = Vec::new();
    if aggregate {
        let mut keys = Vec::new();
        for g in &q.group_by {
            let (c, t) = Compiler::new(&scope).compile(g)?;
            group_c.push(c);
            keys.push((g.to_string(), t));
        }
        agg_ctx = Some(AggContext {
            group_keys: keys,
            input: &scope,
            calls: Vec::new(),
            windowed: q.window.is_some(),
        });
    }
    let mut comp = Compiler {
        scope: &scope,
        agg: agg_ctx,
    };
    let src_keys: Vec<String> = input
        .key_cols()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let mut items: Vec<Item> = Vec::new();
    let mut gen = 0;
    for item in &q.select {
        match item {
            SelectItem::Star | SelectItem::QualifiedStar(_) if join.is_some() => {
                // A join's `*`: every column of both sources, named `<SOURCE>_<COLUMN>`.
                let Some(j) = &join else { continue };
                let only = match item {
                    SelectItem::QualifiedStar(q) => Some(q.as_str()),
                    _ => None,
                };
                let rref = q.joins[0].source.reference();
                let sides = [
                    (q.from.reference(), &input, 0usize),
                    (rref, &j.right, j.left_width),
                ];
                for (r, src, base) in sides {
                    if only.is_some_and(|o| o != r) {
                        continue;
                    }
                    for (i, c) in src.columns.iter().enumerate() {
                        items.push(Item {
                            name: format!("{r}_{}", c.name),
                            expr: CExpr::Col(base + i),
                            ty: c.ty.clone(),
                            text: format!("{r}.{}", c.name),
                            src_key: base > 0 && c.key,
                        });
                    }
                }
            }
            SelectItem::Star | SelectItem::QualifiedStar(_) => {
                if aggregate {
                    return Err(SqlError::stmt(
                        "SELECT * is not allowed with GROUP BY: name the columns",
                    ));
                }
                for (i, c) in input.columns.iter().enumerate() {
                    items.push(Item {
                        name: c.name.clone(),
                        expr: CExpr::Col(i),
                        ty: c.ty.clone(),
                        text: c.name.clone(),
                        src_key: c.key,
                    });
                }
                if input.window.is_some() {
                    let base = input.columns.len() + PSEUDO.len();
                    for (i, n) in ["WINDOWSTART", "WINDOWEND"].iter().enumerate() {
                        items.push(Item {
                            name: n.to_string(),
                            expr: CExpr::Col(base + i),
                            ty: SqlType::BigInt,
                            text: n.to_string(),
                            src_key: false,
                        });
                    }
                }
            }
            SelectItem::Expr { expr, alias } => {
                let (c, t) = comp.compile(expr)?;
                let col = column_name(expr);
                let name = match (alias, &col, &**expr) {
                    (Some(a), _, _) => a.clone(),
                    (None, Some(c), _) => c.clone(),
                    (
                        None,
                        None,
                        Expr::BinaryOp {
                            right,
                            op: sqlparser::ast::BinaryOperator::Arrow,
                            ..
                        },
                    ) => column_name(right).unwrap_or_else(|| format!("KSQL_COL_{gen}")),
                    _ => format!("KSQL_COL_{gen}"),
                };
                gen += 1;
                let src_key = !aggregate
                    && col.as_ref().is_some_and(|c| {
                        if join.is_some() {
                            join_keys.contains(c)
                        } else {
                            src_keys.contains(c)
                        }
                    });
                items.push(Item {
                    name,
                    expr: c,
                    ty: t,
                    text: expr.to_string(),
                    src_key,
                });
            }
        }
    }
    let having = match &q.having {
        Some(h) => {
            let (c, t) = comp.compile(h)?;
            if t != SqlType::Boolean {
                return Err(SqlError::stmt("HAVING must be a BOOLEAN expression"));
            }
            Some(c)
        }
        None => None,
    };
    let calls = comp.agg.map(|a| a.calls).unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for it in &items {
        if !seen.insert(it.name.clone()) {
            return Err(SqlError::stmt(format!(
                "Duplicate column name '{}': give one an alias with AS",
                it.name
            )));
        }
        if PSEUDO.contains(&it.name.as_str()) || it.name == "WINDOWSTART" || it.name == "WINDOWEND"
        {
            if (it.name == "WINDOWSTART" || it.name == "WINDOWEND") && input.window.is_some() {
                continue;
            }
            return Err(SqlError::stmt(format!(
                "Your projection contains a column named {} which is reserved: give it an alias with AS",
                it.name
            )));
        }
    }
    // Which projected items are the result's key columns.
    let key_idx: Vec<usize> = if aggregate || !q.partition_by.is_empty() {
        let by = if aggregate {
            &q.group_by
        } else {
            &q.partition_by
        };
        let mut v = Vec::new();
        for g in by {
            let text = g.to_string();
            let gname = column_name(g);
            let pos = items.iter().position(|it| {
                it.text == text || (gname.is_some() && column_name_of_text(&it.text) == gname)
            });
            match pos {
                Some(p) => v.push(p),
                None => {
                    return Err(SqlError::stmt(format!(
                        "Key missing from projection (ie, SELECT). The query used to build `{name}` must include the {} expression {text} in its projection (eg, SELECT {text}...).",
                        if aggregate { "grouping" } else { "partitioning" }
                    )))
                }
            }
        }
        v
    } else {
        items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.src_key)
            .map(|(i, _)| i)
            .collect()
    };
    let out_kind = kind.unwrap_or(if aggregate {
        SourceKind::Table
    } else {
        input.kind
    });
    if kind.is_some()
        && out_kind == SourceKind::Table
        && !aggregate
        && input.kind == SourceKind::Stream
    {
        return Err(SqlError::stmt(
            "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.",
        ));
    }
    if kind.is_some() && out_kind == SourceKind::Stream && aggregate {
        return Err(SqlError::stmt(
            "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.",
        ));
    }
    if kind.is_some() && out_kind == SourceKind::Table && key_idx.is_empty() {
        return Err(SqlError::stmt(format!(
            "Key missing from projection (ie, SELECT). The query used to build `{name}` must include the key columns {} in its projection (eg, SELECT {}...).",
            src_keys.join(", "),
            src_keys.join(", ")
        )));
    }
    // Keys first, then the rest, in projection order.
    let mut order: Vec<usize> = key_idx.clone();
    order.extend((0..items.len()).filter(|i| !key_idx.contains(i)));
    let mut columns = Vec::new();
    let mut proj = Vec::new();
    for i in order {
        let it = &items[i];
        if !key_idx.contains(&i) && (it.name == "WINDOWSTART" || it.name == "WINDOWEND") {
            continue;
        }
        columns.push(Column {
            name: it.name.clone(),
            ty: it.ty.clone(),
            key: key_idx.contains(&i),
        });
        proj.push(it.expr.clone());
    }
    let key_format = match props.get("KEY_FORMAT").or(props.get("FORMAT")) {
        Some(f) => Format::parse(f)?,
        None if input.key_format == Format::None => Format::Kafka,
        None => input.key_format,
    };
    let key_format = if columns.iter().any(|c| c.key) {
        key_format
    } else {
        Format::None
    };
    let value_format = match props.get("VALUE_FORMAT").or(props.get("FORMAT")) {
        Some(f) => Format::parse(f)?,
        None => input.value_format,
    };
    let output = Source {
        name: name.to_owned(),
        kind: out_kind,
        topic: props
            .get("KAFKA_TOPIC")
            .cloned()
            .unwrap_or_else(|| name.to_owned()),
        key_format,
        value_format,
        window: q
            .window
            .map(|w| w.kind)
            .or(if aggregate { None } else { input.window }),
        statement: String::new(),
        partitions: match props.get("PARTITIONS") {
            Some(p) => p
                .parse()
                .map_err(|_| SqlError::stmt(format!("PARTITIONS must be a number, got {p}")))?,
            None => input.partitions,
        },
        columns,
        timestamp: None,
        key_avro: None,
        value_avro: None,
    };
    key_format.check(&output.key_cols(), "key")?;
    value_format.check(&output.value_cols(), "value")?;
    let body = if aggregate {
        Body::Agg {
            group: group_c,
            calls,
            proj,
            having,
            window: q.window,
            emit_final: q.emit == Some(Emit::Final),
        }
    } else {
        Body::Simple {
            proj,
            rekey: !q.partition_by.is_empty(),
        }
    };
    if join.is_some() && aggregate {
        return Err(SqlError::stmt(
            "GROUP BY over a join is not supported by Strom SQL yet",
        ));
    }
    Ok(Plan {
        table_input: input.kind == SourceKind::Table,
        input,
        where_,
        body,
        output,
        join,
    })
}

fn column_name_of_text(t: &str) -> Option<String> {
    let last = t.rsplit('.').next()?;
    if last.chars().all(|c| c.is_alphanumeric() || c == '_') {
        Some(last.to_uppercase())
    } else {
        None
    }
}

/// A running persistent query.
pub struct RunningQuery {
    pub id: String,
    pub statement: String,
    pub sink: String,
    pub sink_topic: String,
    pub sources: Vec<String>,
    pub streams: Option<KafkaStreams>,
    pub plan: Arc<Plan>,
}

#[derive(Default)]
struct State {
    catalog: BTreeMap<String, Source>,
    queries: BTreeMap<String, RunningQuery>,
    /// commandId -> (status, message) of the commands applied (for /status).
    statuses: BTreeMap<String, (String, String)>,
    /// The command topic's next offset to apply: commands are applied in offset order,
    /// by the replay at start and then by the follower, whichever server wrote them.
    applied: i64,
    /// Commands this server recorded and waits for the follower to apply: the result.
    pending: std::collections::HashMap<i64, Option<Result<serde_json::Value>>>,
}

/// What executing one statement produced, as ksqlDB's entity JSON (`None`: no entity,
/// as for INSERT ... VALUES).
pub type Entity = Option<serde_json::Value>;

pub struct Engine {
    pub cfg: EngineConfig,
    state: Mutex<State>,
    admin: Admin,
    producer: Producer,
    command_topic: String,
    /// The command topic's applied offset, for statements waiting on the follower.
    applied_tx: tokio::sync::watch::Sender<i64>,
    /// Stops the follower at shutdown.
    stop_tx: tokio::sync::watch::Sender<bool>,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A record of the command topic: one statement that changed the catalog or queries.
#[derive(Debug, Serialize, Deserialize)]
struct Command {
    statement: String,
    #[serde(rename = "streamsProperties", default)]
    streams_properties: BTreeMap<String, String>,
}

pub fn command_topic(service_id: &str) -> String {
    format!("_confluent-ksql-{service_id}_command_topic")
}

fn status(
    text: &str,
    command_id: String,
    message: &str,
    seq: i64,
    query_id: Option<&str>,
) -> serde_json::Value {
    json!({
        "@type": "currentStatus",
        "statementText": text,
        "commandId": command_id,
        "commandStatus": {"status": "SUCCESS", "message": message, "queryId": query_id},
        "commandSequenceNumber": seq,
        "warnings": []
    })
}

/// ksqlDB's schema JSON of a column type.
pub fn schema_json(t: &SqlType) -> serde_json::Value {
    match t {
        SqlType::Array(i) => {
            json!({"type": "ARRAY", "fields": null, "memberSchema": schema_json(i)})
        }
        SqlType::Map(v) => json!({"type": "MAP", "fields": null, "memberSchema": schema_json(v)}),
        SqlType::Struct(fs) => json!({
            "type": "STRUCT",
            "fields": fs.iter().map(|(n, t)| json!({"name": n, "schema": schema_json(t)})).collect::<Vec<_>>(),
            "memberSchema": null
        }),
        SqlType::Decimal(p, s) => {
            json!({"type": "DECIMAL", "fields": null, "memberSchema": null, "parameters": {"precision": p, "scale": s}})
        }
        other => json!({"type": other.to_string(), "fields": null, "memberSchema": null}),
    }
}

/// `` `A` STRING, `B` INTEGER `` (the header schema of /query).
pub fn schema_string(cols: &[(String, SqlType)]) -> String {
    cols.iter()
        .map(|(n, t)| format!("`{n}` {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Engine {
    /// Connects to the cluster, creates the command topic if needed and replays it.
    pub async fn start(cfg: EngineConfig) -> Result<Arc<Engine>> {
        let admin = Admin::new(ClientConfig::new(&cfg.bootstrap))
            .await
            .map_err(SqlError::server)?;
        let mut pc = ProducerConfig::new(&cfg.bootstrap);
        pc.set("linger.ms", "1").map_err(SqlError::server)?;
        let producer = Producer::new(pc).await.map_err(SqlError::server)?;
        let engine = Arc::new(Engine {
            command_topic: command_topic(&cfg.service_id),
            cfg,
            state: Mutex::new(State::default()),
            admin,
            producer,
            applied_tx: tokio::sync::watch::channel(0).0,
            stop_tx: tokio::sync::watch::channel(false).0,
            follower: std::sync::Mutex::new(None),
        });
        engine.ensure_topic(&engine.command_topic, 1).await?;
        engine.replay().await?;
        let start = engine.state.lock().await.applied;
        let task = tokio::spawn(follow(
            Arc::downgrade(&engine),
            engine.cfg.bootstrap.clone(),
            engine.command_topic.clone(),
            start,
            engine.stop_tx.subscribe(),
        ));
        *engine.follower.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(engine)
    }

    /// Applies one record of the command topic (at `offset`), unless already applied;
    /// records its status and hands the result to the statement waiting for it.
    async fn apply_record(&self, offset: i64, value: Option<&[u8]>) {
        let mut st = self.state.lock().await;
        if offset < st.applied {
            return;
        }
        st.applied = offset + 1;
        let mut result = Err(SqlError::server("unreadable command"));
        match value.map(serde_json::from_slice::<Command>) {
            Some(Ok(cmd)) => match parser::parse(&cmd.statement) {
                Ok(parsed) => {
                    for p in parsed {
                        let key = command_id(&p.statement);
                        result = self
                            .apply(&mut st, &p, &cmd.streams_properties, offset)
                            .await;
                        let status = match &result {
                            Ok(e) => (
                                "SUCCESS".to_owned(),
                                e["commandStatus"]["message"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_owned(),
                            ),
                            Err(e) => {
                                tracing::warn!("applying '{}' failed: {e}", p.text);
                                ("ERROR".to_owned(), e.to_string())
                            }
                        };
                        st.statuses.insert(key, status);
                    }
                }
                Err(e) => tracing::warn!("skipping command {}: {e}", cmd.statement),
            },
            _ => tracing::warn!("skipping an unreadable command at offset {offset}"),
        }
        if let Some(slot) = st.pending.get_mut(&offset) {
            *slot = Some(result);
        }
        let applied = st.applied;
        drop(st);
        self.applied_tx.send_replace(applied);
    }

    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        if let Ok(t) = self.admin.describe_topics(&[topic.to_owned()]).await {
            if let Some(t) = t.first() {
                if !t.partitions.is_empty() {
                    return Ok(t.partitions.len() as i32);
                }
            }
        }
        let res = self
            .admin
            .create_topics(&[NewTopic::new(topic, partitions, -1)], false)
            .await
            .map_err(SqlError::server)?;
        for (_, r) in res {
            if let Err(e) = r {
                if !e.to_string().contains("TOPIC_ALREADY_EXISTS")
                    && !e.to_string().contains("already exists")
                {
                    return Err(SqlError::server(format!(
                        "cannot create topic {topic}: {e}"
                    )));
                }
            }
        }
        // Wait for leaders.
        for _ in 0..100 {
            if let Ok(t) = self.admin.describe_topics(&[topic.to_owned()]).await {
                if t.first().is_some_and(|t| {
                    !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0)
                }) {
                    return Ok(t[0].partitions.len() as i32);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(SqlError::server(format!("topic {topic} has no leaders")))
    }

    async fn topic_partitions(&self, topic: &str) -> Option<i32> {
        let t = self.admin.describe_topics(&[topic.to_owned()]).await.ok()?;
        let t = t.first()?;
        (!t.partitions.is_empty()).then_some(t.partitions.len() as i32)
    }

    /// Reads the command topic from the start and re-executes each statement.
    async fn replay(&self) -> Result<()> {
        let records = read_all(&self.cfg.bootstrap, &self.command_topic, true).await?;
        for r in records {
            self.apply_record(r.offset, r.value.as_deref()).await;
        }
        Ok(())
    }

    /// Appends a statement to the command topic; its offset is its sequence number.
    async fn record(&self, key: &str, text: &str, props: &BTreeMap<String, String>) -> Result<i64> {
        let cmd = Command {
            statement: text.to_owned(),
            streams_properties: props.clone(),
        };
        let value = serde_json::to_vec(&cmd).map_err(SqlError::server)?;
        let fut = self
            .producer
            .send(
                ProducerRecord::new(&self.command_topic)
                    .key(key.as_bytes().to_vec())
                    .value(value)
                    .partition(0),
            )
            .await
            .map_err(SqlError::server)?;
        let md = fut.await.map_err(SqlError::server)?;
        Ok(md.offset)
    }

    /// Executes the statements of a /ksql request. Returns the entities so far and the
    /// error that stopped it, if one did (with the failing statement's text).
    pub async fn execute(
        &self,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> (Vec<serde_json::Value>, Option<(SqlError, String)>) {
        let parsed = match parser::parse(text) {
            Ok(p) => p,
            Err(e) => return (Vec::new(), Some((e, text.to_owned()))),
        };
        let mut props = props.clone();
        let mut out = Vec::new();
        for p in parsed {
            match self.execute_one(&p, &mut props).await {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                Err(e) => return (out, Some((e, p.text.clone()))),
            }
        }
        (out, None)
    }

    async fn execute_one(
        &self,
        p: &Parsed,
        props: &mut BTreeMap<String, String>,
    ) -> Result<Entity> {
        let text = p.text.as_str();
        match &p.statement {
            Statement::Set { name, value } => {
                props.insert(name.clone(), value.clone());
                Ok(Some(json!({
                    "@type": "currentStatus", "statementText": text,
                    "commandStatus": {"status": "SUCCESS", "message": format!("Successfully changed local property '{name}' to '{value}'."), "queryId": null},
                    "commandSequenceNumber": -1, "warnings": []
                })))
            }
            Statement::Unset(name) => {
                props.remove(name);
                Ok(Some(json!({
                    "@type": "currentStatus", "statementText": text,
                    "commandStatus": {"status": "SUCCESS", "message": format!("Successfully unset local property '{name}'."), "queryId": null},
                    "commandSequenceNumber": -1, "warnings": []
                })))
            }
            Statement::Show { what, .. } => self.show(*what, text, props).await.map(Some),
            Statement::Describe { name, extended } => {
                let st = self.state.lock().await;
                let s = st
                    .catalog
                    .get(name)
                    .ok_or_else(|| SqlError::stmt(format!("Could not find STREAM/TABLE '{name}' in the Metastore")))?;
                let writers: Vec<serde_json::Value> = st
                    .queries
                    .values()
                    .filter(|q| q.sink == *name)
                    .map(|q| json!({"queryString": q.statement, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "state": "RUNNING"}))
                    .collect();
                let readers: Vec<serde_json::Value> = st
                    .queries
                    .values()
                    .filter(|q| q.sources.contains(name))
                    .map(|q| json!({"queryString": q.statement, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "state": "RUNNING"}))
                    .collect();
                Ok(Some(json!({
                    "@type": "sourceDescription",
                    "statementText": text,
                    "sourceDescription": {
                        "name": s.name,
                        "windowType": s.window.map(|w| match w { WindowKind::Tumbling{..} => "TUMBLING", WindowKind::Hopping{..} => "HOPPING", WindowKind::Session{..} => "SESSION" }),
                        "readQueries": readers,
                        "writeQueries": writers,
                        "fields": s.columns.iter().map(|c| {
                            let mut f = json!({"name": c.name, "schema": schema_json(&c.ty)});
                            if c.key { f["type"] = json!("KEY"); }
                            f
                        }).collect::<Vec<_>>(),
                        "type": s.kind.name(),
                        "timestamp": "",
                        "statistics": "",
                        "errorStats": "",
                        "extended": extended,
                        "keyFormat": s.key_format.name(),
                        "valueFormat": s.value_format.name(),
                        "topic": s.topic,
                        "partitions": s.partitions,
                        "replication": 1,
                        "statement": s.statement,
                        "sourceConstraints": []
                    },
                    "warnings": []
                })))
            }
            Statement::Explain(id) => {
                let st = self.state.lock().await;
                let q = st
                    .queries
                    .get(id)
                    .ok_or_else(|| SqlError::stmt(format!("Query with id:{id} does not exist, use SHOW QUERIES to view the full set of queries.")))?;
                Ok(Some(json!({
                    "@type": "queryDescription",
                    "statementText": text,
                    "queryDescription": {
                        "id": q.id,
                        "statementText": q.statement,
                        "windowType": q.plan.output.window.map(|w| format!("{w:?}")),
                        "fields": q.plan.output.columns.iter().map(|c| json!({"name": c.name, "schema": schema_json(&c.ty), "type": if c.key {"KEY"} else {"VALUE"}})).collect::<Vec<_>>(),
                        "sources": q.sources,
                        "sinks": [q.sink],
                        "topology": describe_plan(&q.plan),
                        "executionPlan": describe_plan(&q.plan),
                        "overriddenProperties": {},
                        "queryType": "PERSISTENT",
                        "state": if q.streams.as_ref().is_some_and(|s| s.is_running()) { "RUNNING" } else { "ERROR" }
                    },
                    "warnings": []
                })))
            }
            Statement::Select(_) => Err(SqlError::stmt(
                "The following statement types should be issued to the websocket endpoint '/query': SELECT (push and pull queries).",
            )),
            Statement::Print { .. } => Err(SqlError::stmt(
                "The following statement types should be issued to the websocket endpoint '/query': PRINT.",
            )),
            Statement::InsertValues {
                target,
                columns,
                values,
            } => {
                self.insert_values(target, columns.as_deref(), values).await?;
                Ok(None)
            }
            _ => {
                // Statements that change the catalog or queries: checked against the
                // current state, recorded in the command topic, then applied.
                // Every server sharing the service id follows the command topic and
                // applies the statement in its order; this one waits for its follower.
                let (seq, mut applied) = {
                    let mut st = self.state.lock().await;
                    self.validate(&st, p).await?;
                    let key = command_id(&p.statement);
                    let seq = self.record(&key, text, props).await?;
                    st.pending.insert(seq, None);
                    (seq, self.applied_tx.subscribe())
                };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    {
                        let mut st = self.state.lock().await;
                        if st.pending.get(&seq).is_some_and(Option::is_some) {
                            let res = st.pending.remove(&seq).flatten();
                            return res.unwrap_or_else(|| Err(SqlError::server("lost")))
                                .map(Some);
                        }
                    }
                    if tokio::time::timeout_at(deadline, applied.changed())
                        .await
                        .map_or(true, |r| r.is_err())
                    {
                        self.state.lock().await.pending.remove(&seq);
                        return Err(SqlError::server(format!(
                            "Timed out waiting for command {seq} of the command topic to be applied"
                        )));
                    }
                }
            }
        }
    }

    /// Checks a catalog statement without side effects, so nothing invalid reaches the
    /// command topic.
    async fn validate(&self, st: &State, p: &Parsed) -> Result<()> {
        match &p.statement {
            Statement::CreateSource {
                name,
                if_not_exists,
                or_replace,
                ..
            } => {
                if st.catalog.contains_key(name) && !*if_not_exists && !*or_replace {
                    return Err(already_exists(st, name));
                }
                self.source_from(p, false).await.map(|_| ())
            }
            Statement::CreateAs {
                kind,
                name,
                if_not_exists,
                or_replace,
                props: wp,
                query,
            } => {
                if st.catalog.contains_key(name) && !*if_not_exists && !*or_replace {
                    return Err(already_exists(st, name));
                }
                let plan = plan_query(&st.catalog, query, name, Some(*kind), wp)?;
                if plan.output.key_format.uses_registry()
                    || plan.output.value_format.uses_registry()
                {
                    self.registry_url()?;
                }
                Ok(())
            }
            Statement::InsertSelect { target, query } => {
                let t = st
                    .catalog
                    .get(target)
                    .ok_or_else(|| SqlError::stmt(format!("{target} does not exist.")))?;
                let plan = plan_query(&st.catalog, query, target, Some(t.kind), &Props::new())?;
                if plan.output.columns != t.columns {
                    return Err(SqlError::stmt(format!(
                        "Incompatible schema between results and sink. Result schema is {}, but sink schema is {}.",
                        columns_text(&plan.output.columns),
                        columns_text(&t.columns)
                    )));
                }
                Ok(())
            }
            Statement::Drop {
                kind,
                name,
                if_exists,
                ..
            } => match st.catalog.get(name) {
                None if *if_exists => Ok(()),
                None => Err(SqlError::stmt(format!("Source {name} does not exist."))),
                Some(s) if s.kind != *kind => Err(SqlError::stmt(format!(
                    "Incompatible data source type is {}, but statement was DROP {}",
                    s.kind.name(),
                    kind.name()
                ))),
                Some(_) => {
                    let users: Vec<&str> = st
                        .queries
                        .values()
                        .filter(|q| q.sink == *name || q.sources.contains(name))
                        .map(|q| q.id.as_str())
                        .collect();
                    if users.is_empty() {
                        Ok(())
                    } else {
                        Err(SqlError::stmt(format!(
                                "Cannot drop {name}.\nThe following queries read from or write to this source: [{}].\nYou need to terminate them before dropping {name}.",
                                users.join(", ")
                            )))
                    }
                }
            },
            Statement::Terminate(Some(id)) if !st.queries.contains_key(id) => {
                Err(SqlError::stmt(format!("Unknown queryId: {id}")))
            }
            _ => Ok(()),
        }
    }

    /// The source a CREATE STREAM/TABLE declares. AVRO: value columns left out are
    /// inferred from the registry's latest schema of `<topic>-value`; with `register`, the
    /// schema of declared columns is registered (as ksqlDB does), else only checked.
    async fn source_from(&self, p: &Parsed, register: bool) -> Result<Source> {
        let Statement::CreateSource {
            kind,
            name,
            columns,
            props: wp,
            ..
        } = &p.statement
        else {
            return Err(SqlError::stmt("not a CREATE STREAM/TABLE"));
        };
        let topic = wp.get("KAFKA_TOPIC").cloned().ok_or_else(|| {
            SqlError::stmt("Missing required property \"KAFKA_TOPIC\" which has no default value.")
        })?;
        let value_format = Format::parse(
            wp.get("VALUE_FORMAT")
                .or(wp.get("FORMAT"))
                .ok_or_else(|| SqlError::stmt("Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config."))?,
        )?;
        let mut cols: Vec<Column> = columns
            .iter()
            .filter(|c| c.key)
            .chain(columns.iter().filter(|c| !c.key))
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty.clone(),
                key: c.key,
            })
            .collect();
        let mut value_avro = None;
        if value_format.uses_registry() && !cols.iter().any(|c| !c.key) {
            let url = self.registry_url()?;
            let (schema, inferred) =
                crate::avro::infer(url, &format!("{topic}-value"), value_format, "")
                    .await
                    .map_err(SqlError::stmt)?;
            for (name, ty) in inferred {
                cols.push(Column {
                    name,
                    ty,
                    key: false,
                });
            }
            value_avro = Some(schema);
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &cols {
            if !seen.insert(&c.name) {
                return Err(SqlError::stmt(format!(
                    "Duplicate column names: {}",
                    c.name
                )));
            }
            if PSEUDO.contains(&c.name.as_str()) {
                return Err(SqlError::stmt(format!(
                    "'{}' is a reserved column name.",
                    c.name
                )));
            }
        }
        if *kind == SourceKind::Table && !cols.iter().any(|c| c.key) {
            return Err(SqlError::stmt(format!(
                "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.\nUse a partial schema to define the primary key and still load the value columns from the Schema Registry, for example:\n\tCREATE TABLE {name} (ID INT PRIMARY KEY) WITH (...);"
            )));
        }
        let key_format = match wp.get("KEY_FORMAT").or(wp.get("FORMAT")) {
            Some(f) => Format::parse(f)?,
            None => Format::Kafka,
        };
        let key_format = if cols.iter().any(|c| c.key) {
            key_format
        } else {
            Format::None
        };
        key_format.check(&pairs(&cols, true), "key")?;
        value_format.check(&pairs(&cols, false), "value")?;
        let partitions = match wp.get("PARTITIONS") {
            Some(n) => Some(
                n.parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| SqlError::stmt(format!("Invalid PARTITIONS: {n}")))?,
            ),
            None => None,
        };
        let existing = self.topic_partitions(&topic).await;
        let partitions = match (existing, partitions) {
            (Some(e), Some(p)) if e != p => {
                return Err(SqlError::stmt(format!(
                    "A Kafka topic with the name '{topic}' already exists, with different partition/replica configuration than required. KSQL expects {p} partitions (topic has {e})."
                )))
            }
            (Some(e), _) => e,
            (None, Some(p)) => p,
            (None, None) => {
                return Err(SqlError::stmt(format!(
                    "Kafka topic does not exist: {topic}"
                )))
            }
        };
        let window =
            match wp.get("WINDOW_TYPE").map(|w| w.to_uppercase()) {
                None => None,
                Some(w) => {
                    let size = wp.get("WINDOW_SIZE").and_then(|s| {
                        let mut it = s.split_whitespace();
                        let n: i64 = it.next()?.parse().ok()?;
                        let unit = it.next()?.to_uppercase();
                        Some(
                            n * match unit.trim_end_matches('S') {
                                "MILLISECOND" => 1,
                                "SECOND" => 1000,
                                "MINUTE" => 60_000,
                                "HOUR" => 3_600_000,
                                "DAY" => 86_400_000,
                                _ => return None,
                            },
                        )
                    });
                    Some(match (w.as_str(), size) {
                        ("SESSION", _) => WindowKind::Session { gap: 0 },
                        ("TUMBLING", Some(size)) => WindowKind::Tumbling { size },
                        ("HOPPING", Some(size)) => WindowKind::Hopping {
                            size,
                            advance: size,
                        },
                        _ => return Err(SqlError::stmt(
                            "WINDOW_TYPE TUMBLING or HOPPING needs WINDOW_SIZE, e.g. '10 SECONDS'",
                        )),
                    })
                }
            };
        let timestamp = match wp.get("TIMESTAMP") {
            None => None,
            Some(t) => {
                let col = t.to_uppercase();
                let format = wp.get("TIMESTAMP_FORMAT").cloned();
                let c = cols.iter().find(|c| c.name == col || c.name == *t).ok_or_else(|| {
                    SqlError::stmt(format!("The TIMESTAMP column set in the WITH clause does not exist in the schema: '{col}'"))
                })?;
                match (&c.ty, &format) {
                    (SqlType::BigInt | SqlType::Timestamp, _) => {}
                    (SqlType::String, Some(f)) => {
                        crate::time::format_pattern(0, f).map_err(SqlError::stmt)?;
                    }
                    (SqlType::String, None) => {
                        return Err(SqlError::stmt(format!(
                            "A TIMESTAMP column of type STRING needs TIMESTAMP_FORMAT: {}",
                            c.name
                        )))
                    }
                    (t, _) => {
                        return Err(SqlError::stmt(format!(
                            "Timestamp column, `{}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified. It is {t}",
                            c.name
                        )))
                    }
                }
                Some((c.name.clone(), format))
            }
        };
        cols.shrink_to_fit();
        let mut s = Source {
            timestamp,
            name: name.clone(),
            kind: *kind,
            topic,
            key_format,
            value_format,
            columns: cols,
            window,
            statement: p.text.clone(),
            partitions,
            key_avro: None,
            value_avro,
        };
        if register {
            self.register_schemas(&mut s).await?;
        } else if key_format.uses_registry() || value_format.uses_registry() {
            self.registry_url()?;
        }
        Ok(s)
    }

    fn registry_url(&self) -> Result<&str> {
        self.cfg.schema_registry_url.as_deref().ok_or_else(|| {
            SqlError::stmt("The AVRO and JSON_SR formats need a Schema Registry: set ksql.schema.registry.url in the server's configuration")
        })
    }

    /// Registers the schemas of an AVRO source's key (`<topic>-key`) and value
    /// (`<topic>-value`) generated from its columns, unless it already has them (inferred).
    async fn register_schemas(&self, s: &mut Source) -> Result<()> {
        if s.key_format.uses_registry() && s.key_avro.is_none() && !s.key_cols().is_empty() {
            let url = self.registry_url()?;
            let subject = format!("{}-key", s.topic);
            s.key_avro = Some(
                crate::avro::register(url, &subject, &s.key_cols(), true, s.key_format)
                    .await
                    .map_err(SqlError::stmt)?,
            );
        }
        if s.value_format.uses_registry() && s.value_avro.is_none() {
            let url = self.registry_url()?;
            let subject = format!("{}-value", s.topic);
            s.value_avro = Some(
                crate::avro::register(url, &subject, &s.value_cols(), false, s.value_format)
                    .await
                    .map_err(SqlError::stmt)?,
            );
        }
        Ok(())
    }

    /// Applies a catalog statement (live or replayed from the command topic).
    async fn apply(
        &self,
        st: &mut State,
        p: &Parsed,
        props: &BTreeMap<String, String>,
        seq: i64,
    ) -> Result<serde_json::Value> {
        let text = p.text.as_str();
        let key = command_id(&p.statement);
        match &p.statement {
            Statement::CreateSource {
                kind,
                name,
                if_not_exists,
                ..
            } => {
                if st.catalog.contains_key(name) && *if_not_exists {
                    return Ok(status(
                        text,
                        key,
                        &format!(
                            "Cannot add {} {name}: it already exists.",
                            kind.name().to_lowercase()
                        ),
                        seq,
                        None,
                    ));
                }
                let s = self.source_from(p, true).await?;
                self.ensure_topic(&s.topic, s.partitions).await?;
                st.catalog.insert(name.clone(), s);
                let what = if *kind == SourceKind::Stream {
                    "Stream"
                } else {
                    "Table"
                };
                Ok(status(text, key, &format!("{what} created"), seq, None))
            }
            Statement::CreateAs {
                kind,
                name,
                if_not_exists,
                props: wp,
                query,
                ..
            } => {
                if st.catalog.contains_key(name) && *if_not_exists {
                    return Ok(status(
                        text,
                        key,
                        &format!(
                            "Cannot add {} {name}: it already exists.",
                            kind.name().to_lowercase()
                        ),
                        seq,
                        None,
                    ));
                }
                let mut plan = plan_query(&st.catalog, query, name, Some(*kind), wp)?;
                plan.output.statement = text.to_owned();
                self.register_schemas(&mut plan.output).await?;
                let id = format!(
                    "{}_{}_{seq}",
                    if *kind == SourceKind::Stream {
                        "CSAS"
                    } else {
                        "CTAS"
                    },
                    name
                );
                let sink = plan.output.clone();
                self.start_query(st, id.clone(), text, plan, props).await?;
                st.catalog.insert(name.clone(), sink);
                Ok(status(
                    text,
                    key,
                    &format!("Created query with ID {id}"),
                    seq,
                    Some(&id),
                ))
            }
            Statement::InsertSelect { target, query } => {
                let t = st
                    .catalog
                    .get(target)
                    .cloned()
                    .ok_or_else(|| SqlError::stmt(format!("{target} does not exist.")))?;
                let mut plan = plan_query(&st.catalog, query, target, Some(t.kind), &Props::new())?;
                plan.output = t;
                let id = format!("INSERTQUERY_{seq}");
                self.start_query(st, id.clone(), text, plan, props).await?;
                Ok(status(
                    text,
                    key,
                    &format!("Created query with ID {id}"),
                    seq,
                    Some(&id),
                ))
            }
            Statement::Drop {
                name, delete_topic, ..
            } => {
                let Some(s) = st.catalog.remove(name) else {
                    return Ok(status(
                        text,
                        key,
                        &format!("Source `{name}` does not exist."),
                        seq,
                        None,
                    ));
                };
                if *delete_topic {
                    let _ = self
                        .admin
                        .delete_topics(std::slice::from_ref(&s.topic))
                        .await;
                }
                Ok(status(
                    text,
                    key,
                    &format!("Source `{name}` (topic: {}) was dropped.", s.topic),
                    seq,
                    None,
                ))
            }
            Statement::Terminate(id) => {
                let ids: Vec<String> = match id {
                    Some(id) => vec![id.clone()],
                    None => st.queries.keys().cloned().collect(),
                };
                for id in &ids {
                    if let Some(mut q) = st.queries.remove(id) {
                        if let Some(s) = q.streams.take() {
                            let _ = tokio::task::spawn_blocking(move || s.close()).await;
                        }
                    }
                }
                Ok(status(text, key, "Query terminated.", seq, None))
            }
            other => Err(SqlError::stmt(format!(
                "{other:?} is not a catalog statement"
            ))),
        }
    }

    fn streams_config(
        &self,
        app_id: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<StreamsConfig> {
        let mut c = StreamsConfig::new(app_id, &self.cfg.bootstrap);
        let set = |c: &mut StreamsConfig, k: &str, v: &str| {
            c.set(k, v)
                .map(|_| ())
                .map_err(|e| SqlError::stmt(format!("Invalid property {k}={v}: {e}")))
        };
        set(
            &mut c,
            "state.dir",
            &self.cfg.state_dir.display().to_string(),
        )?;
        set(&mut c, "commit.interval.ms", "2000")?;
        for (k, v) in &self.cfg.streams {
            set(&mut c, k, v)?;
        }
        for (k, v) in props {
            let k = k.strip_prefix("ksql.streams.").unwrap_or(k);
            match k {
                "auto.offset.reset" => set(&mut c, "consumer.auto.offset.reset", v)?,
                "processing.guarantee" | "commit.interval.ms" | "num.stream.threads" => {
                    set(&mut c, k, v)?
                }
                _ => {}
            }
        }
        Ok(c)
    }

    async fn start_query(
        &self,
        st: &mut State,
        id: String,
        text: &str,
        mut plan: Plan,
        props: &BTreeMap<String, String>,
    ) -> Result<()> {
        let parts = self
            .ensure_topic(&plan.output.topic, plan.output.partitions.max(1))
            .await?;
        plan.output.partitions = parts;
        let app_id = format!("_confluent-ksql-{}query_{id}", self.cfg.service_id);
        let mut config = self.streams_config(&app_id, props)?;
        // Persistent queries start at the earliest offset unless told otherwise.
        if !props.contains_key("auto.offset.reset")
            && !props.contains_key("ksql.streams.auto.offset.reset")
        {
            config
                .consumer_overrides
                .push(("auto.offset.reset".into(), "earliest".into()));
        }
        let plan = Arc::new(plan);
        let topology = build_topology(
            plan.clone(),
            Sink::Topic,
            &format!("{id}-Aggregate-Materialize"),
        )?;
        let mut streams = KafkaStreams::new(topology, config);
        streams
            .start()
            .await
            .map_err(|e| SqlError::server(format!("cannot start query {id}: {e}")))?;
        st.queries.insert(
            id.clone(),
            RunningQuery {
                id,
                statement: text.to_owned(),
                sink: plan.output.name.clone(),
                sink_topic: plan.output.topic.clone(),
                sources: std::iter::once(plan.input.name.clone())
                    .chain(plan.join.as_ref().map(|j| j.right.name.clone()))
                    .collect(),
                streams: Some(streams),
                plan,
            },
        );
        Ok(())
    }

    async fn show(
        &self,
        what: ShowWhat,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value> {
        let st = self.state.lock().await;
        Ok(match what {
            ShowWhat::Streams | ShowWhat::Tables => {
                let kind = if what == ShowWhat::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let list: Vec<serde_json::Value> = st
                    .catalog
                    .values()
                    .filter(|s| s.kind == kind)
                    .map(|s| json!({"type": s.kind.name(), "name": s.name, "topic": s.topic, "keyFormat": s.key_format.name(), "valueFormat": s.value_format.name(), "isWindowed": s.window.is_some()}))
                    .collect();
                if kind == SourceKind::Stream {
                    json!({"@type": "streams", "statementText": text, "streams": list, "warnings": []})
                } else {
                    json!({"@type": "tables", "statementText": text, "tables": list, "warnings": []})
                }
            }
            ShowWhat::Topics => {
                drop(st);
                let topics = self
                    .admin
                    .list_topics(false)
                    .await
                    .map_err(SqlError::server)?;
                let mut list: Vec<(String, usize)> = topics
                    .iter()
                    .filter(|t| !t.name.starts_with('_'))
                    .map(|t| (t.name.clone(), t.partitions.len()))
                    .collect();
                list.sort();
                json!({"@type": "kafka_topics", "statementText": text, "topics": list.iter().map(|(n, p)| json!({"name": n, "replicaInfo": vec![1; *p]})).collect::<Vec<_>>(), "warnings": []})
            }
            ShowWhat::Queries => {
                let list: Vec<serde_json::Value> = st
                    .queries
                    .values()
                    .map(|q| {
                        let state = if q.streams.as_ref().is_some_and(|s| s.is_running()) { "RUNNING" } else { "ERROR" };
                        json!({"queryString": q.statement, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "statusCount": {state: 1}, "queryType": "PERSISTENT", "state": state})
                    })
                    .collect();
                json!({"@type": "queries", "statementText": text, "queries": list, "warnings": []})
            }
            ShowWhat::Properties => {
                let mut list = vec![
                    json!({"name": "ksql.service.id", "scope": "KSQL", "value": self.cfg.service_id}),
                    json!({"name": "bootstrap.servers", "scope": "KSQL", "value": self.cfg.bootstrap}),
                ];
                for (k, v) in &self.cfg.streams {
                    list.push(json!({"name": format!("ksql.streams.{k}"), "scope": "STREAMS", "value": v}));
                }
                let overwritten: Vec<&String> = props.keys().collect();
                for (k, v) in props {
                    list.push(json!({"name": k, "scope": "SESSION", "value": v}));
                }
                json!({"@type": "properties", "statementText": text, "properties": list, "overwrittenProperties": overwritten, "defaultProperties": [], "warnings": []})
            }
        })
    }

    async fn insert_values(
        &self,
        target: &str,
        columns: Option<&[String]>,
        values: &[Expr],
    ) -> Result<()> {
        let s = {
            let st = self.state.lock().await;
            st.catalog.get(target).cloned().ok_or_else(|| {
                SqlError::stmt(format!(
                    "Cannot insert values into an unknown stream/table: {target}"
                ))
            })?
        };
        if s.window.is_some() {
            return Err(SqlError::stmt(format!(
                "Cannot insert values into windowed {target}"
            )));
        }
        let names: Vec<String> = match columns {
            Some(c) => c.to_vec(),
            None => s.columns.iter().map(|c| c.name.clone()).collect(),
        };
        if names.len() != values.len() {
            return Err(SqlError::stmt(format!(
                "Expected a value for each column. Expected Columns: [{}]. Got {} values.",
                names.join(", "),
                values.len()
            )));
        }
        let empty = Scope::default();
        let mut row = vec![Value::Null; s.columns.len()];
        let mut ts = None;
        for (n, e) in names.iter().zip(values) {
            let (c, _) = Compiler::new(&empty).compile(e)?;
            let v = c.eval(&[]);
            if n == "ROWTIME" {
                ts = v.as_i64();
                continue;
            }
            let i = s
                .columns
                .iter()
                .position(|c| &c.name == n)
                .ok_or_else(|| SqlError::stmt(format!("Column name {n} does not exist.")))?;
            let cv = crate::expr::cast(v.clone(), &s.columns[i].ty);
            if cv.is_null() && !v.is_null() {
                return Err(SqlError::stmt(format!(
                    "Expected type {} for field {n} but got {v}",
                    s.columns[i].ty
                )));
            }
            row[i] = cv;
        }
        let (key, value) = s.encode(&row, None);
        let mut rec = ProducerRecord::new(&s.topic).value(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(t) = ts {
            rec = rec.timestamp(t);
        }
        let fut = self.producer.send(rec).await.map_err(SqlError::server)?;
        fut.await.map_err(SqlError::server)?;
        Ok(())
    }

    /// Plans a SELECT for /query and /query-stream: a push query (EMIT CHANGES) runs as a
    /// transient Strom Streams application; a pull query reads the table to its end.
    pub async fn query(&self, text: &str, props: &BTreeMap<String, String>) -> Result<QueryStream> {
        let mut parsed = parser::parse(text)?;
        if parsed.len() != 1 {
            return Err(SqlError::stmt("Expected exactly one statement"));
        }
        let p = parsed.remove(0);
        match p.statement {
            Statement::Select(q) => {
                let catalog = self.state.lock().await.catalog.clone();
                let plan = plan_query(&catalog, &q, "QUERY", None, &Props::new())?;
                let columns: Vec<(String, SqlType)> = plan
                    .output
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.ty.clone()))
                    .collect();
                let id = format!(
                    "transient_{}_{}",
                    plan.input.name,
                    uuid::Uuid::new_v4().simple()
                );
                if q.emit.is_none() {
                    if plan.input.kind != SourceKind::Table || plan.is_aggregate() {
                        return Err(SqlError::stmt(
                            "Pull queries are only supported on tables without GROUP BY: add EMIT CHANGES for a push query.",
                        ));
                    }
                    let rows = self.pull(&plan, q.limit).await?;
                    return Ok(QueryStream {
                        id,
                        columns,
                        rows: RowSource::Done(rows),
                        limit: q.limit,
                        streams: None,
                        overflowed: Arc::default(),
                    });
                }
                let (tx, rx) = mpsc::channel(self.cfg.push_buffer_rows.max(1));
                let overflowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let app_id = format!("_confluent-ksql-{}{id}", self.cfg.service_id);
                let mut config = self.streams_config(&app_id, props)?;
                config.state_dir = self.cfg.state_dir.join("transient").join(&id);
                std::fs::create_dir_all(&config.state_dir).map_err(SqlError::server)?;
                config.commit_interval = Duration::from_millis(100);
                if !props.contains_key("auto.offset.reset")
                    && !props.contains_key("ksql.streams.auto.offset.reset")
                {
                    config
                        .consumer_overrides
                        .push(("auto.offset.reset".into(), "latest".into()));
                }
                let plan = Arc::new(plan);
                let sink = Sink::Channel {
                    tx,
                    overflowed: overflowed.clone(),
                };
                let topology = build_topology(plan, sink, "Aggregate-Materialize")?;
                let mut streams = KafkaStreams::new(topology, config);
                streams.start().await.map_err(SqlError::server)?;
                Ok(QueryStream {
                    id,
                    columns,
                    rows: RowSource::Live(rx),
                    limit: q.limit,
                    streams: Some(streams),
                    overflowed,
                })
            }
            Statement::Print {
                topic,
                from_beginning,
                limit,
            } => {
                if self.topic_partitions(&topic).await.is_none() {
                    return Err(SqlError::stmt(format!("Could not find topic '{topic}', KSQL uses uppercase.\nTo print a case-sensitive topic apply quotations, for example: print 'topic';")));
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let bootstrap = self.cfg.bootstrap.clone();
                tokio::spawn(print_topic(bootstrap, topic, from_beginning, tx));
                Ok(QueryStream {
                    id: String::new(),
                    columns: Vec::new(),
                    rows: RowSource::Print(rx),
                    limit,
                    streams: None,
                    overflowed: Arc::default(),
                })
            }
            _ => Err(SqlError::stmt(
                "/query takes a SELECT or PRINT statement; use /ksql for others",
            )),
        }
    }

    /// Pull query: the table's topic read to its end, the latest row per key.
    async fn pull(&self, plan: &Plan, limit: Option<u64>) -> Result<Vec<Vec<Value>>> {
        let records = read_all(&self.cfg.bootstrap, &plan.input.topic, true).await?;
        let mut latest: BTreeMap<Vec<u8>, Option<Vec<Value>>> = BTreeMap::new();
        for r in records {
            let key = r.key.as_deref().map(<[u8]>::to_vec).unwrap_or_default();
            match plan.input.decode(
                r.key.as_deref(),
                r.value.as_deref(),
                r.timestamp,
                r.partition,
                r.offset,
            ) {
                Ok((_, row)) => {
                    latest.insert(key, row);
                }
                Err(e) => tracing::warn!("pull query: skipping a record: {e}"),
            }
        }
        let mut out = Vec::new();
        for row in latest.into_values().flatten() {
            if let Some(o) = plan.project(&row) {
                out.push(o);
                if limit.is_some_and(|l| out.len() as u64 >= l) {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Stops every query (the server is shutting down); they resume from the command
    /// topic on the next start.
    pub async fn shutdown(&self) {
        self.stop_tx.send_replace(true);
        let follower = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(f) = follower {
            let _ = f.await;
        }
        let mut st = self.state.lock().await;
        let queries: Vec<RunningQuery> = std::mem::take(&mut st.queries).into_values().collect();
        for mut q in queries {
            if let Some(s) = q.streams.take() {
                let _ = tokio::task::spawn_blocking(move || s.close()).await;
            }
        }
    }

    /// /status: every applied command's status.
    pub async fn command_statuses(&self) -> BTreeMap<String, (String, String)> {
        self.state.lock().await.statuses.clone()
    }

    pub async fn query_count(&self) -> usize {
        self.state.lock().await.queries.len()
    }
}

fn already_exists(st: &State, name: &str) -> SqlError {
    let kind = st
        .catalog
        .get(name)
        .map(|s| s.kind.name().to_lowercase())
        .unwrap_or_default();
    SqlError::stmt(format!(
        "Cannot add {kind} '{name}': A {kind} with the same name already exists"
    ))
}

fn columns_text(cols: &[Column]) -> String {
    cols.iter()
        .map(|c| format!("`{}` {}{}", c.name, c.ty, if c.key { " KEY" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn command_id(s: &Statement) -> String {
    match s {
        Statement::CreateSource { kind, name, .. } | Statement::CreateAs { kind, name, .. } => {
            format!("{}/`{name}`/create", kind.name().to_lowercase())
        }
        Statement::Drop { kind, name, .. } => {
            format!("{}/`{name}`/drop", kind.name().to_lowercase())
        }
        Statement::InsertSelect { target, .. } => format!("stream/`{target}`/create"),
        Statement::Terminate(Some(id)) => format!("terminate/{id}/execute"),
        Statement::Terminate(None) => "terminate/ALL/execute".into(),
        _ => "cluster/CLUSTER/execute".into(),
    }
}

fn describe_plan(p: &Plan) -> String {
    let mut s = format!(
        " > [ SOURCE ] | Schema: {} | Topic: {}\n",
        columns_text(&p.input.columns),
        p.input.topic
    );
    if p.where_.is_some() {
        s.push_str("\t\t > [ FILTER ]\n");
    }
    match &p.body {
        Body::Simple { rekey: true, .. } => s.push_str("\t\t > [ REKEY ] (repartition)\n"),
        Body::Simple { .. } => {}
        Body::Agg {
            calls,
            window,
            having,
            ..
        } => {
            s.push_str("\t\t > [ REKEY ] (group by, repartition)\n");
            s.push_str(&format!(
                "\t\t > [ AGGREGATE ] | {} call(s){}\n",
                calls.len(),
                window
                    .map(|w| format!(" | window {:?}, grace {:?} ms", w.kind, w.grace))
                    .unwrap_or_default()
            ));
            if having.is_some() {
                s.push_str("\t\t > [ HAVING ]\n");
            }
        }
    }
    s.push_str(&format!(
        "\t\t > [ PROJECT ] | Schema: {}\n",
        columns_text(&p.output.columns)
    ));
    s.push_str(&format!("\t\t > [ SINK ] | Topic: {}\n", p.output.topic));
    s
}

/// Reads a whole topic up to its current end.
/// Follows the command topic from `start`, applying what any server sharing the service
/// id records (so every server runs every persistent query, each query's Strom Streams
/// group splitting the partitions between them), until `stop`.
async fn follow(
    engine: std::sync::Weak<Engine>,
    bootstrap: String,
    topic: String,
    start: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let tp = TopicPartition::new(&topic, 0);
    let mut consumer = loop {
        let mut cc = ConsumerConfig::new(&bootstrap);
        let _ = cc.set("fetch.max.wait.ms", "100");
        match Consumer::new(cc).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "command topic follower cannot connect");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    consumer.assign(std::slice::from_ref(&tp));
    if let Err(e) = consumer.seek(&tp, start) {
        tracing::warn!(error = %e, "command topic follower cannot seek");
    }
    loop {
        let records = tokio::select! {
            _ = stop.changed() => break,
            r = consumer.poll(Duration::from_millis(200)) => r,
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading the command topic");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(engine) = engine.upgrade() else {
            break;
        };
        for r in records {
            engine.apply_record(r.offset, r.value.as_deref()).await;
        }
    }
    let _ = consumer.close().await;
}

pub async fn read_all(
    bootstrap: &str,
    topic: &str,
    committed: bool,
) -> Result<Vec<strom_client::ConsumerRecord>> {
    let mut cc = ConsumerConfig::new(bootstrap);
    cc.set("auto.offset.reset", "earliest")
        .map_err(SqlError::server)?;
    cc.set("fetch.max.wait.ms", "50")
        .map_err(SqlError::server)?;
    if committed {
        cc.set("isolation.level", "read_committed")
            .map_err(SqlError::server)?;
    }
    let mut consumer = Consumer::new(cc).await.map_err(SqlError::server)?;
    let admin = Admin::new(ClientConfig::new(bootstrap))
        .await
        .map_err(SqlError::server)?;
    let t = admin
        .describe_topics(&[topic.to_owned()])
        .await
        .map_err(SqlError::server)?;
    let n = t.first().map(|t| t.partitions.len()).unwrap_or(0) as i32;
    let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
    let specs: Vec<(TopicPartition, i64)> = tps
        .iter()
        .map(|tp| (tp.clone(), strom_client::LATEST))
        .collect();
    let ends = consumer
        .client()
        .list_offsets(&specs, if committed { 1 } else { 0 })
        .await
        .map_err(SqlError::server)?;
    consumer.assign(&tps);
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done = tps.iter().all(|tp| {
            let end = ends.get(tp).map(|e| e.0).unwrap_or(0);
            end <= 0 || consumer.position(tp).is_some_and(|p| p >= end)
        });
        if done || tokio::time::Instant::now() > deadline {
            break;
        }
        out.extend(
            consumer
                .poll(Duration::from_millis(100))
                .await
                .map_err(SqlError::server)?,
        );
    }
    let _ = consumer.close().await;
    Ok(out)
}

async fn print_topic(
    bootstrap: String,
    topic: String,
    from_beginning: bool,
    tx: mpsc::UnboundedSender<String>,
) {
    let run = async {
        let mut cc = ConsumerConfig::new(&bootstrap);
        cc.set(
            "auto.offset.reset",
            if from_beginning { "earliest" } else { "latest" },
        )?;
        cc.set("fetch.max.wait.ms", "100")?;
        let mut consumer = Consumer::new(cc).await?;
        let admin = Admin::new(ClientConfig::new(&bootstrap)).await?;
        let t = admin.describe_topics(std::slice::from_ref(&topic)).await?;
        let n = t.first().map(|t| t.partitions.len()).unwrap_or(0) as i32;
        let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(&topic, p)).collect();
        consumer.assign(&tps);
        if !from_beginning {
            consumer.seek_to_end().await?;
        }
        let mut first = true;
        while !tx.is_closed() {
            for r in consumer.poll(Duration::from_millis(200)).await? {
                if first {
                    let _ = tx.send(format!(
                        "Key format: {}\nValue format: {}",
                        guess(&r.key),
                        guess(&r.value)
                    ));
                    first = false;
                }
                let line = format!(
                    "rowtime: {} Z, key: {}, value: {}, partition: {}",
                    crate::time::format_iso(r.timestamp)
                        .replace('T', " ")
                        .replace('-', "/"),
                    show_bytes(&r.key),
                    show_bytes(&r.value),
                    r.partition
                );
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
        Ok::<(), strom_client::Error>(())
    };
    if let Err(e) = run.await {
        tracing::warn!("PRINT {topic} stopped: {e}");
    }
}

fn guess(b: &Option<bytes::Bytes>) -> &'static str {
    match b.as_deref() {
        None => "¯\\_(ツ)_/¯ - no data processed",
        Some(d) if serde_json::from_slice::<serde_json::Value>(d).is_ok() => "JSON or KAFKA_STRING",
        Some(d) if std::str::from_utf8(d).is_ok() => "KAFKA_STRING",
        Some(_) => "KAFKA_BYTES",
    }
}

fn show_bytes(b: &Option<bytes::Bytes>) -> String {
    match b.as_deref() {
        None => "<null>".into(),
        Some(d) => match std::str::from_utf8(d) {
            Ok(s) => s.to_owned(),
            Err(_) => d.iter().map(|x| format!("{x:02x}")).collect(),
        },
    }
}

pub enum RowSource {
    Done(Vec<Vec<Value>>),
    Live(mpsc::Receiver<Vec<Value>>),
    Print(mpsc::UnboundedReceiver<String>),
}

/// The rows of a running /query: the header, then rows until the limit or the client
/// leaves; dropping it stops the transient query.
pub struct QueryStream {
    pub id: String,
    pub columns: Vec<(String, SqlType)>,
    pub rows: RowSource,
    pub limit: Option<u64>,
    pub streams: Option<KafkaStreams>,
    /// Set when the client fell so far behind that the row buffer filled: it is dropped.
    pub overflowed: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        if let Some(s) = self.streams.take() {
            // Closing joins the stream threads: off the async runtime.
            std::thread::spawn(move || s.close());
        }
    }
}
