//! The PostgreSQL sink (Confluent's JDBC sink connector): each `put` is written in one
//! transaction, in multi-row statements of at most `batch.size` rows:
//!
//! - `insert.mode=insert`: `INSERT`; `upsert`: `INSERT ... ON CONFLICT (pk) DO UPDATE`
//!   (within one statement the last record of a key wins); `update`: `UPDATE ... WHERE pk`;
//! - `pk.mode`: `none`, `kafka` (`__connect_topic`, `__connect_partition`,
//!   `__connect_offset`), `record_key` (the key struct's fields, or `pk.fields`; a primitive
//!   key is the one column `pk.fields` names), `record_value` (`pk.fields` of the value, or
//!   all of its fields);
//! - `delete.enabled=true` (needs `pk.mode=record_key`): a tombstone deletes the key's row;
//!   without it tombstones are skipped;
//! - `auto.create=true`: `CREATE TABLE IF NOT EXISTS` from the record schema (optional fields
//!   nullable, the key columns the primary key);
//! - `table.name.format` with `${topic}` (dots separate schema and table, as Confluent's do).
//!
//! Values are Connect structs with a schema; a Debezium change event envelope (a struct
//! named `*.Envelope` with `op` and `after`) is unwrapped: its `after` row is written, and a
//! `d` event deletes like a tombstone. Values go to the server in text form, read by each
//! column's input function; identifiers are always quoted.

use std::collections::{BTreeMap, HashMap, HashSet};

use strom_client::TopicPartition;
use tokio_postgres::{Client, Statement};

use super::catalog::TableId;
use super::conn::{connect, jdbc_config, pg_error};
use super::types::{quote_ident, split_table_name, sql_type, value_text, TextParam};
use crate::config::{get_bool, get_list, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SinkTask, Task};
use crate::data::{Record, Schema, SchemaType, SinkRecord, Value};
use crate::error::{ConnectError, Result};

pub const JDBC_SINK_CLASS: &str = "io.confluent.connect.jdbc.JdbcSinkConnector";
pub const SINK_CLASS: &str = "io.strom.connect.postgres.PostgresSinkConnector";

/// PostgreSQL's limit of parameters in one statement.
const MAX_PARAMS: usize = 65_535;
/// Prepared statements kept per task.
const STATEMENT_CACHE: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InsertMode {
    Insert,
    Upsert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

/// The JDBC sink connector for PostgreSQL.
#[derive(Debug, Default)]
pub struct PostgresSinkConnector {
    props: Props,
}

impl Connector for PostgresSinkConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define("connection.url", ConfigType::String, None, Importance::High, "JDBC connection URL (jdbc:postgresql://host:port/db) or a libpq connection string.")
            .define("connection.user", ConfigType::String, Some(""), Importance::High, "JDBC connection user.")
            .define("connection.password", ConfigType::Password, Some(""), Importance::High, "JDBC connection password.")
            .define("insert.mode", ConfigType::String, Some("insert"), Importance::High, "The insertion mode to use.")
            .one_of(&["insert", "upsert", "update"])
            .define("pk.mode", ConfigType::String, Some("none"), Importance::High, "The primary key mode.")
            .one_of(&["none", "kafka", "record_key", "record_value"])
            .define("pk.fields", ConfigType::List, Some(""), Importance::Medium, "List of comma-separated primary key field names.")
            .define("auto.create", ConfigType::Boolean, Some("false"), Importance::Medium, "Whether to automatically create the destination table based on record schema if it is found to be missing by issuing CREATE.")
            .define("auto.evolve", ConfigType::Boolean, Some("false"), Importance::Medium, "Whether to automatically add columns in the table schema (not supported: must be false).")
            .define("delete.enabled", ConfigType::Boolean, Some("false"), Importance::Medium, "Whether to treat null record values as deletes. Requires pk.mode to be record_key.")
            .define("table.name.format", ConfigType::String, Some("${topic}"), Importance::Medium, "A format string for the destination table name, which may contain '${topic}' as a placeholder for the originating topic name.")
            .define("batch.size", ConfigType::Int, Some("3000"), Importance::Medium, "Specifies how many records to attempt to batch together for insertion into the destination table, when possible.")
            .at_least(1)
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let get = |k: &str, d: &str| {
            props
                .get(k)
                .map(|s| s.trim().to_owned())
                .unwrap_or(d.into())
        };
        if get_bool(props, "delete.enabled", false).unwrap_or(false)
            && get("pk.mode", "none") != "record_key"
        {
            out.push((
                "delete.enabled".to_owned(),
                "Deletes are only supported for pk.mode record_key".to_owned(),
            ));
        }
        if get("insert.mode", "insert") != "insert" && get("pk.mode", "none") == "none" {
            out.push((
                "pk.mode".to_owned(),
                "insert.mode upsert and update need a primary key: pk.mode cannot be none"
                    .to_owned(),
            ));
        }
        if get_bool(props, "auto.evolve", false).unwrap_or(false) {
            out.push((
                "auto.evolve".to_owned(),
                "auto.evolve is not supported".to_owned(),
            ));
        }
        if let Err(e) = jdbc_config(props) {
            out.push(("connection.url".to_owned(), e.to_string()));
        }
        out
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone(); max_tasks.max(1)]
    }

    fn create_task(&self) -> Task {
        Task::Sink(Box::new(PostgresSinkTask::default()))
    }
}

/// A column to write: its name and the schema of its values.
type Column = (String, Schema);

/// One row change to write.
#[derive(Debug)]
enum Op {
    Upsert {
        table: TableId,
        /// Column names and schemas, the key columns first.
        columns: Vec<(String, Schema)>,
        key_len: usize,
        values: Vec<Option<String>>,
    },
    Delete {
        table: TableId,
        key_columns: Vec<String>,
        key: Vec<Option<String>>,
    },
}

#[derive(Default)]
pub struct PostgresSinkTask {
    props: Props,
    client: Option<Client>,
    insert_mode: Option<InsertMode>,
    pk_mode: Option<PkMode>,
    pk_fields: Vec<String>,
    auto_create: bool,
    delete_enabled: bool,
    table_format: String,
    batch_size: usize,
    created: HashSet<TableId>,
    statements: HashMap<String, Statement>,
}

fn parse_mode<T: Copy>(
    props: &Props,
    key: &str,
    default: &str,
    choices: &[(&str, T)],
) -> Result<T> {
    let v = props.get(key).map(|s| s.trim()).unwrap_or(default);
    choices
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(v))
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            ConnectError::InvalidConfig(format!("Invalid value {v} for configuration {key}"))
        })
}

impl PostgresSinkTask {
    fn table_for(&self, topic: &str) -> Result<TableId> {
        let name = self.table_format.replace("${topic}", topic);
        let mut parts = split_table_name(&name)?;
        let table = parts.pop().unwrap_or_default();
        Ok(TableId {
            schema: parts.pop().unwrap_or_else(|| "public".into()),
            name: table,
        })
    }

    /// The row change a record asks for (`None`: nothing to write).
    fn op(&self, sr: &SinkRecord) -> Result<Option<Op>> {
        let r = &sr.record;
        let table = self.table_for(&r.topic)?;
        let (value, delete) = unwrap_envelope(r);
        if delete || value.is_null() {
            if !self.delete_enabled {
                return Ok(None);
            }
            let (cols, vals) = self.key_columns(r)?;
            return Ok(Some(Op::Delete {
                table,
                key_columns: cols.into_iter().map(|(n, _)| n).collect(),
                key: vals,
            }));
        }
        let Value::Struct(st) = value else {
            return Err(ConnectError::Data(format!(
                "the PostgreSQL sink needs struct values with a schema; record {}-{} has a {} value",
                r.topic,
                sr.kafka_offset,
                value.type_name()
            )));
        };
        let mut columns: Vec<(String, Schema)> = Vec::new();
        let mut values: Vec<Option<String>> = Vec::new();
        match self.pk_mode.unwrap_or(PkMode::None) {
            PkMode::None => {}
            PkMode::Kafka => {
                columns.push(("__connect_topic".into(), Schema::new(SchemaType::String)));
                columns.push(("__connect_partition".into(), Schema::new(SchemaType::Int32)));
                columns.push(("__connect_offset".into(), Schema::new(SchemaType::Int64)));
                values.push(Some(r.topic.clone()));
                values.push(Some(r.kafka_partition.unwrap_or(0).to_string()));
                values.push(Some(sr.kafka_offset.to_string()));
            }
            PkMode::RecordKey => {
                let (c, v) = self.key_columns(r)?;
                columns = c;
                values = v;
            }
            PkMode::RecordValue => {
                let names: Vec<String> = if self.pk_fields.is_empty() {
                    st.schema.fields.iter().map(|f| f.name.clone()).collect()
                } else {
                    self.pk_fields.clone()
                };
                for n in names {
                    let i = st.schema.field_index(&n).ok_or_else(|| {
                        ConnectError::Data(format!("pk.fields: the value has no field {n}"))
                    })?;
                    let f = &st.schema.fields[i];
                    columns.push((n, f.schema.clone()));
                    values.push(value_text(Some(&f.schema), &st.values[i])?);
                }
            }
        }
        let key_len = columns.len();
        for (f, v) in st.schema.fields.iter().zip(&st.values) {
            if columns[..key_len].iter().any(|(n, _)| *n == f.name) {
                continue;
            }
            columns.push((f.name.clone(), f.schema.clone()));
            values.push(value_text(Some(&f.schema), v)?);
        }
        Ok(Some(Op::Upsert {
            table,
            columns,
            key_len,
            values,
        }))
    }

    /// The key columns and values of a record in `record_key` mode.
    fn key_columns(&self, r: &Record) -> Result<(Vec<Column>, Vec<Option<String>>)> {
        if self.pk_mode != Some(PkMode::RecordKey) {
            return Err(ConnectError::Data("deletes need pk.mode=record_key".into()));
        }
        match &r.key {
            Value::Struct(k) => {
                let names: Vec<String> = if self.pk_fields.is_empty() {
                    k.schema.fields.iter().map(|f| f.name.clone()).collect()
                } else {
                    self.pk_fields.clone()
                };
                let mut cols = Vec::new();
                let mut vals = Vec::new();
                for n in names {
                    let i = k.schema.field_index(&n).ok_or_else(|| {
                        ConnectError::Data(format!("pk.fields: the key has no field {n}"))
                    })?;
                    let f = &k.schema.fields[i];
                    cols.push((n, f.schema.clone()));
                    vals.push(value_text(Some(&f.schema), &k.values[i])?);
                }
                Ok((cols, vals))
            }
            Value::Null => Err(ConnectError::Data(format!(
                "a record of {} has no key, and pk.mode is record_key",
                r.topic
            ))),
            primitive => {
                let [name] = self.pk_fields.as_slice() else {
                    return Err(ConnectError::Data(
                        "a primitive key needs exactly one pk.fields name".into(),
                    ));
                };
                let schema = r.key_schema.clone().unwrap_or_else(|| {
                    Schema::new(match primitive {
                        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
                            SchemaType::Int64
                        }
                        _ => SchemaType::String,
                    })
                });
                let text = value_text(Some(&schema), primitive)?;
                Ok((vec![(name.clone(), schema)], vec![text]))
            }
        }
    }

    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&jdbc_config(&self.props)?).await?);
            self.statements.clear();
        }
        self.client
            .as_ref()
            .ok_or_else(|| ConnectError::Task("no PostgreSQL connection".into()))
    }

    /// The connection of the transaction in progress: never a new one, which would write
    /// outside the transaction (a lost connection makes the whole put retriable).
    fn live(&self) -> Result<&Client> {
        self.client
            .as_ref()
            .filter(|c| !c.is_closed())
            .ok_or_else(|| ConnectError::Retriable("PostgreSQL connection lost".into()))
    }

    async fn statement(&mut self, sql: String) -> Result<Statement> {
        if let Some(s) = self.statements.get(&sql) {
            return Ok(s.clone());
        }
        let client = self.live()?;
        let st = client
            .prepare(&sql)
            .await
            .map_err(|e| pg_error(&format!("prepare {sql}"), &e))?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql, st.clone());
        Ok(st)
    }

    async fn run(&mut self, sql: String, params: Vec<TextParam>) -> Result<()> {
        let st = self.statement(sql).await?;
        let client = self.live()?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client
            .execute(&st, &refs)
            .await
            .map_err(|e| pg_error("write", &e))?;
        Ok(())
    }

    async fn create_table(
        &mut self,
        table: &TableId,
        columns: &[(String, Schema)],
        key_len: usize,
    ) -> Result<()> {
        if !self.auto_create || self.created.contains(table) {
            return Ok(());
        }
        let mut defs = Vec::new();
        for (i, (n, s)) in columns.iter().enumerate() {
            let null = if s.optional && i >= key_len {
                ""
            } else {
                " NOT NULL"
            };
            defs.push(format!("{} {}{null}", quote_ident(n)?, sql_type(s)));
        }
        if key_len > 0 {
            let keys: Vec<String> = columns[..key_len]
                .iter()
                .map(|(n, _)| quote_ident(n))
                .collect::<Result<_>>()?;
            defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            table.sql()?,
            defs.join(", ")
        );
        let client = self.live()?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| pg_error("create table", &e))?;
        self.created.insert(table.clone());
        Ok(())
    }

    /// Writes a run of upserts of one table with the same columns.
    async fn write_rows(
        &mut self,
        table: &TableId,
        columns: &[(String, Schema)],
        key_len: usize,
        rows: Vec<Vec<Option<String>>>,
    ) -> Result<()> {
        self.create_table(table, columns, key_len).await?;
        let mode = self.insert_mode.unwrap_or(InsertMode::Insert);
        let names: Vec<String> = columns
            .iter()
            .map(|(n, _)| quote_ident(n))
            .collect::<Result<_>>()?;
        let t = table.sql()?;
        let rows = if mode == InsertMode::Insert || key_len == 0 {
            rows
        } else {
            // Within one statement a key may appear once: the last record of a key wins.
            let mut last: HashMap<Vec<Option<String>>, usize> = HashMap::new();
            for (i, r) in rows.iter().enumerate() {
                last.insert(r[..key_len].to_vec(), i);
            }
            rows.into_iter()
                .enumerate()
                .filter(|(i, r)| last.get(&r[..key_len]) == Some(i))
                .map(|(_, r)| r)
                .collect()
        };
        if mode == InsertMode::Update {
            let sets: Vec<String> = names[key_len..]
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} = ${}", i + 1))
                .collect();
            let wheres: Vec<String> = names[..key_len]
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} = ${}", names.len() - key_len + i + 1))
                .collect();
            if sets.is_empty() {
                return Ok(());
            }
            let sql = format!(
                "UPDATE {t} SET {} WHERE {}",
                sets.join(", "),
                wheres.join(" AND ")
            );
            for r in rows {
                let mut params: Vec<TextParam> =
                    r[key_len..].iter().cloned().map(TextParam).collect();
                params.extend(r[..key_len].iter().cloned().map(TextParam));
                self.run(sql.clone(), params).await?;
            }
            return Ok(());
        }
        let per_statement = self
            .batch_size
            .min(MAX_PARAMS / columns.len().max(1))
            .max(1);
        let conflict = if mode == InsertMode::Upsert {
            let updates: Vec<String> = names[key_len..]
                .iter()
                .map(|n| format!("{n} = EXCLUDED.{n}"))
                .collect();
            let action = if updates.is_empty() {
                "NOTHING".to_owned()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            };
            format!(" ON CONFLICT ({}) DO {action}", names[..key_len].join(", "))
        } else {
            String::new()
        };
        for chunk in rows.chunks(per_statement) {
            let mut sql = format!("INSERT INTO {t} ({}) VALUES ", names.join(", "));
            let mut p = 0;
            for (i, _) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..columns.len() {
                    if c > 0 {
                        sql.push(',');
                    }
                    p += 1;
                    sql.push_str(&format!("${p}"));
                }
                sql.push(')');
            }
            sql.push_str(&conflict);
            let params = chunk.iter().flatten().cloned().map(TextParam).collect();
            self.run(sql, params).await?;
        }
        Ok(())
    }

    async fn delete_rows(
        &mut self,
        table: &TableId,
        key_columns: &[String],
        keys: Vec<Vec<Option<String>>>,
    ) -> Result<()> {
        let names: Vec<String> = key_columns
            .iter()
            .map(|n| quote_ident(n))
            .collect::<Result<_>>()?;
        let t = table.sql()?;
        let per_statement = self.batch_size.min(MAX_PARAMS / names.len().max(1)).max(1);
        for chunk in keys.chunks(per_statement) {
            let mut p = 0;
            let tuples: Vec<String> = chunk
                .iter()
                .map(|_| {
                    let ps: Vec<String> = names
                        .iter()
                        .map(|_| {
                            p += 1;
                            format!("${p}")
                        })
                        .collect();
                    format!("({})", ps.join(","))
                })
                .collect();
            let sql = format!(
                "DELETE FROM {t} WHERE ({}) IN ({})",
                names.join(", "),
                tuples.join(",")
            );
            let params = chunk.iter().flatten().cloned().map(TextParam).collect();
            self.run(sql, params).await?;
        }
        Ok(())
    }

    /// Writes the ops in order, consecutive ops of one kind, table and columns together.
    async fn write(&mut self, ops: Vec<Op>) -> Result<()> {
        let mut i = 0;
        while i < ops.len() {
            match &ops[i] {
                Op::Upsert {
                    table,
                    columns,
                    key_len,
                    ..
                } => {
                    let (table, columns, key_len) = (table.clone(), columns.clone(), *key_len);
                    let mut rows = Vec::new();
                    while let Some(Op::Upsert {
                        table: t,
                        columns: c,
                        values,
                        ..
                    }) = ops.get(i)
                    {
                        if *t != table || *c != columns {
                            break;
                        }
                        rows.push(values.clone());
                        i += 1;
                    }
                    self.write_rows(&table, &columns, key_len, rows).await?;
                }
                Op::Delete {
                    table, key_columns, ..
                } => {
                    let (table, key_columns) = (table.clone(), key_columns.clone());
                    let mut keys = Vec::new();
                    while let Some(Op::Delete {
                        table: t,
                        key_columns: k,
                        key,
                    }) = ops.get(i)
                    {
                        if *t != table || *k != key_columns {
                            break;
                        }
                        keys.push(key.clone());
                        i += 1;
                    }
                    self.delete_rows(&table, &key_columns, keys).await?;
                }
            }
        }
        Ok(())
    }
}

/// A record's row: the value itself, or the `after` of a Debezium envelope; and whether it is
/// a delete (`op` = `d`).
fn unwrap_envelope(r: &Record) -> (&Value, bool) {
    if let Value::Struct(s) = &r.value {
        let is_envelope = s
            .schema
            .name
            .as_deref()
            .is_some_and(|n| n.ends_with(".Envelope"))
            && s.schema.field("after").is_some()
            && s.schema.field("op").is_some();
        if is_envelope {
            let op = s.get("op").and_then(Value::as_str).unwrap_or("");
            let after = s.get("after").unwrap_or(&Value::Null);
            return (after, op == "d");
        }
    }
    (&r.value, false)
}

impl SinkTask for PostgresSinkTask {
    fn start(&mut self, props: &Props) -> Result<()> {
        jdbc_config(props)?;
        self.props = props.clone();
        self.insert_mode = Some(parse_mode(
            props,
            "insert.mode",
            "insert",
            &[
                ("insert", InsertMode::Insert),
                ("upsert", InsertMode::Upsert),
                ("update", InsertMode::Update),
            ],
        )?);
        self.pk_mode = Some(parse_mode(
            props,
            "pk.mode",
            "none",
            &[
                ("none", PkMode::None),
                ("kafka", PkMode::Kafka),
                ("record_key", PkMode::RecordKey),
                ("record_value", PkMode::RecordValue),
            ],
        )?);
        self.pk_fields = get_list(props, "pk.fields");
        self.auto_create = get_bool(props, "auto.create", false)?;
        self.delete_enabled = get_bool(props, "delete.enabled", false)?;
        if self.delete_enabled && self.pk_mode != Some(PkMode::RecordKey) {
            return Err(ConnectError::InvalidConfig(
                "Deletes are only supported for pk.mode record_key".into(),
            ));
        }
        if self.insert_mode != Some(InsertMode::Insert) && self.pk_mode == Some(PkMode::None) {
            return Err(ConnectError::InvalidConfig(
                "insert.mode upsert and update need a primary key: pk.mode cannot be none".into(),
            ));
        }
        self.table_format = props
            .get("table.name.format")
            .cloned()
            .unwrap_or_else(|| "${topic}".into());
        self.batch_size = get_parsed(props, "batch.size", 3000usize)?.max(1);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut ops = Vec::with_capacity(records.len());
            for r in &records {
                if let Some(op) = self.op(r)? {
                    ops.push(op);
                }
            }
            if ops.is_empty() {
                return Ok(());
            }
            self.client()
                .await?
                .batch_execute("BEGIN")
                .await
                .map_err(|e| pg_error("begin", &e))?;
            let written = self.write(ops).await;
            let client = self.client.as_ref();
            match written {
                Ok(()) => {
                    let client = client.ok_or_else(|| {
                        ConnectError::Retriable("PostgreSQL connection lost".into())
                    })?;
                    client
                        .batch_execute("COMMIT")
                        .await
                        .map_err(|e| pg_error("commit", &e))?;
                    Ok(())
                }
                Err(e) => {
                    if let Some(c) = client.filter(|c| !c.is_closed()) {
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                    // A table created in the failed transaction is gone again.
                    self.created.clear();
                    Err(e)
                }
            }
        })
    }

    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> BoxFuture<'_, Result<()>> {
        // Every put is committed before it returns.
        Box::pin(async { Ok(()) })
    }

    fn stop(&mut self) {
        self.client = None;
    }
}
