//! The PostgreSQL change data capture source (Debezium's job): logical replication with the
//! pgoutput plugin, read over an ordinary connection.
//!
//! At start it creates, when missing, the publication `publication.name` (for all tables, or
//! for the tables of `table.include.list` with `publication.autocreate.mode=filtered`) and
//! the logical replication slot `slot.name`. With `snapshot.mode=initial` (the default, as
//! Debezium's) and no offsets yet, it then reads the included tables' rows as `r` events, in
//! one repeatable-read transaction begun after the slot exists (a change racing the snapshot
//! may come twice; none is lost; an interrupted snapshot starts over). Each poll peeks at the slot's changes with
//! `pg_logical_slot_peek_binary_changes` (pgoutput, protocol 1), decodes them (see
//! `pgoutput`), and returns them as records; the slot is moved on with
//! `pg_replication_slot_advance` only once the runtime has committed the offsets of the
//! records returned (at least once: a crash before that sends the changes again). Peeking
//! always starts at the slot's position, so changes already returned but not yet committed
//! are skipped by their position; a small `offset.flush.interval.ms` keeps that short.
//!
//! Records, in Debezium's shape: topic `<topic.prefix>.<schema>.<table>`; key the primary key
//! struct (`...Key`); value the envelope struct (`...Envelope`) with `before`, `after`
//! (the row, `...Value`, its nullable columns optional), `source` (connector, name, db,
//! schema, table, txId, lsn, ts_ms), `op` (`c`, `u`, `d`) and `ts_ms`. A delete is a `d`
//! record then a tombstone (null value) with the same key; an update that changes the key is
//! a delete and tombstone of the old key then a create. Source partition `{"server": prefix}`,
//! offset `{"lsn": N}` (the end of the last transaction sent whole) plus, inside a
//! transaction, `{"tx_end": N, "event": i}` (how many of its records were sent).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio_postgres::Client;

use super::catalog::{self, TableId};
use super::conn::{connect, debezium_config, jdbc_config, pg_error};
use super::pgoutput::{decode, lsn_text, parse_lsn, Message, RelationColumn, TupleValue};
use super::types::{quote_ident, Column, TextParam};
use crate::config::{get_list, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SourceOffsets, SourceTask, Task};
use crate::data::{JsonMap, Record, Schema, SchemaType, SourceRecord, Struct, Value};
use crate::error::{ConnectError, Result};

pub const DEBEZIUM_POSTGRES_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";
pub const CDC_SOURCE_CLASS: &str = "io.strom.connect.postgres.PostgresCdcSourceConnector";

/// Debezium's placeholder for an unchanged TOASTed value that the server did not send.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";
/// Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The connection: `connection.url` when given, else Debezium's `database.*`.
fn pg_config(props: &Props) -> Result<tokio_postgres::Config> {
    if props
        .get("connection.url")
        .is_some_and(|u| !u.trim().is_empty())
    {
        jdbc_config(props)
    } else {
        debezium_config(props)
    }
}

/// The CDC connector (one task: a slot has one reader).
#[derive(Debug, Default)]
pub struct PostgresCdcSourceConnector {
    props: Props,
}

impl Connector for PostgresCdcSourceConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define("database.hostname", ConfigType::String, Some(""), Importance::High, "Resolvable hostname or IP address of the database server.")
            .define("database.port", ConfigType::Int, Some("5432"), Importance::High, "Port of the database server.")
            .define("database.user", ConfigType::String, Some(""), Importance::High, "Name of the database user to be used when connecting to the database.")
            .define("database.password", ConfigType::Password, Some(""), Importance::High, "Password of the database user to be used when connecting to the database.")
            .define("database.dbname", ConfigType::String, Some(""), Importance::High, "The name of the database from which the connector should capture changes.")
            .define("connection.url", ConfigType::String, Some(""), Importance::Medium, "Instead of database.*: a JDBC (jdbc:postgresql://host:port/db) or libpq connection string.")
            .define("connection.user", ConfigType::String, Some(""), Importance::Medium, "With connection.url: the user.")
            .define("connection.password", ConfigType::Password, Some(""), Importance::Medium, "With connection.url: the password.")
            .define("topic.prefix", ConfigType::String, None, Importance::High, "Topic prefix that identifies and provides a namespace for the particular database server/cluster capturing changes.")
            .define("table.include.list", ConfigType::List, Some(""), Importance::High, "The tables for which changes are to be captured (regular expressions matching schema.table).")
            .define("table.exclude.list", ConfigType::List, Some(""), Importance::Medium, "The tables for which changes are not to be captured (regular expressions matching schema.table).")
            .define("slot.name", ConfigType::String, Some("debezium"), Importance::Medium, "The name of the PostgreSQL logical decoding slot created for streaming changes.")
            .define("publication.name", ConfigType::String, Some("dbz_publication"), Importance::Medium, "The name of the PostgreSQL publication created for streaming changes when using pgoutput.")
            .define("publication.autocreate.mode", ConfigType::String, Some("all_tables"), Importance::Low, "Whether and how to create the publication: all_tables, filtered (the tables of table.include.list) or disabled.")
            .one_of(&["all_tables", "filtered", "disabled"])
            .define("plugin.name", ConfigType::String, Some("pgoutput"), Importance::Medium, "The logical decoding plugin (only pgoutput).")
            .one_of(&["pgoutput"])
            .define("max.batch.size", ConfigType::Int, Some("2048"), Importance::Medium, "Maximum size of each batch of source records.")
            .at_least(1)
            .define("max.queue.size", ConfigType::Int, Some("8192"), Importance::Medium, "Maximum number of changes read from the slot at once.")
            .at_least(1)
            .define("snapshot.mode", ConfigType::String, Some("initial"), Importance::Low, "The criteria for running a snapshot upon startup of the connector: initial (the tables' rows first, when no offsets exist) or no_data (changes only; also never).")
            .one_of(&["initial", "no_data", "never"])
            .define("poll.interval.ms", ConfigType::Long, Some("500"), Importance::Medium, "Time to wait for new change events to appear after receiving no events.")
            .at_least(1)
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(e) = pg_config(props) {
            let key = if props.get("connection.url").is_some_and(|u| !u.is_empty()) {
                "connection.url"
            } else {
                "database.hostname"
            };
            out.push((key.to_owned(), e.to_string()));
        }
        for k in ["table.include.list", "table.exclude.list"] {
            for p in get_list(props, k) {
                if let Err(e) = regex::Regex::new(&format!("^(?:{p})$")) {
                    out.push((
                        k.to_owned(),
                        format!("Invalid value {p} for configuration {k}: {e}"),
                    ));
                }
            }
        }
        out
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone()]
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(PostgresCdcSourceTask::default()))
    }
}

/// A captured table, from its Relation message.
#[derive(Debug, Clone)]
struct Relation {
    id: TableId,
    wire: Vec<RelationColumn>,
    columns: Vec<Column>,
    included: bool,
    topic: String,
    key_schema: Option<Schema>,
    /// The row schema, optional (as `before` and `after` hold it).
    row_schema: Schema,
    envelope: Schema,
}

/// One change of a transaction.
#[derive(Debug)]
enum Change {
    Insert(u32, Vec<TupleValue>),
    /// The old row when sent, and whether it is the key only ('K').
    Update(u32, Option<(Vec<TupleValue>, bool)>, Vec<TupleValue>),
    Delete(u32, Vec<TupleValue>, bool),
}

/// A transaction read from the slot.
#[derive(Debug)]
struct Txn {
    xid: u32,
    end_lsn: u64,
    commit_micros: i64,
    changes: Vec<Change>,
}

#[derive(Default)]
pub struct PostgresCdcSourceTask {
    props: Props,
    client: Option<Client>,
    ready: bool,
    prefix: String,
    slot: String,
    publication: String,
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
    max_batch: usize,
    queue_size: usize,
    poll_interval: Duration,
    relations: HashMap<u32, Relation>,
    /// The end of the last transaction whose records were all returned.
    returned_lsn: u64,
    /// Of the transaction being returned: its end and how many of its records were returned.
    partial: Option<(u64, usize)>,
    /// Records decoded and not returned yet, each with its transaction's end and index.
    queue: VecDeque<SourceRecord>,
    /// Returned records whose offsets are not committed yet.
    uncommitted: bool,
    /// Where the slot may be moved to (offsets committed up to there).
    advance_to: u64,
    /// Where the slot is.
    slot_lsn: u64,
    /// The last peek held at least `max.queue.size` changes, all already returned: peek
    /// again only once the slot has moved on.
    stale_backlog: bool,
    /// The initial snapshot is still to be taken (or finished).
    snapshot_needed: bool,
    snapshot: Option<Snapshot>,
}

/// The initial snapshot in progress: its own connection in one repeatable-read transaction,
/// the tables left, and whether a cursor is open on the current one.
struct Snapshot {
    client: Client,
    tables: VecDeque<u32>,
    current: Option<u32>,
}

/// The cursor the snapshot reads a table with.
const SNAPSHOT_CURSOR: &str = "strom_snapshot";

impl PostgresCdcSourceTask {
    fn partition(&self) -> JsonMap {
        let mut m = JsonMap::new();
        m.insert("server".into(), json!(self.prefix));
        m
    }

    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&pg_config(&self.props)?).await?);
        }
        self.client
            .as_ref()
            .ok_or_else(|| ConnectError::Task("no PostgreSQL connection".into()))
    }

    /// Creates the publication and the slot when missing; reads where the slot is.
    async fn set_up(&mut self) -> Result<()> {
        let mode = self
            .props
            .get("publication.autocreate.mode")
            .cloned()
            .unwrap_or_else(|| "all_tables".into());
        let tables = get_list(&self.props, "table.include.list");
        let (slot, publication) = (self.slot.clone(), self.publication.clone());
        let client = self.client().await?;
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&publication],
            )
            .await
            .map_err(|e| pg_error("publication lookup", &e))?
            .is_some();
        if !exists && mode != "disabled" {
            let target = if mode == "filtered" && !tables.is_empty() {
                let mut names = Vec::new();
                for t in &tables {
                    let id = catalog::resolve(client, t)
                        .await?
                        .ok_or_else(|| ConnectError::Task(format!("table {t} does not exist")))?;
                    names.push(id.sql()?);
                }
                format!("TABLE {}", names.join(", "))
            } else {
                "ALL TABLES".to_owned()
            };
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR {target}",
                    quote_ident(&publication)?
                ))
                .await
                .map_err(|e| pg_error("create publication", &e))?;
        }
        let row = client
            .query_opt(
                "SELECT plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots \
                 WHERE slot_name = $1 AND database = current_database()",
                &[&slot],
            )
            .await
            .map_err(|e| pg_error("slot lookup", &e))?;
        let confirmed = match row {
            Some(r) => {
                let plugin: Option<String> = r.get(0);
                if plugin.as_deref() != Some("pgoutput") {
                    return Err(ConnectError::Task(format!(
                        "replication slot {slot} uses the plugin {plugin:?}, not pgoutput"
                    )));
                }
                r.get::<_, Option<String>>(1)
            }
            None => client
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await
                .map_err(|e| pg_error("create replication slot", &e))?
                .get::<_, Option<String>>(0),
        };
        self.slot_lsn = confirmed.as_deref().and_then(parse_lsn).unwrap_or(0);
        // A crash after the offsets were committed but before the slot moved: move it now.
        if self.returned_lsn > self.slot_lsn {
            self.advance_to = self.returned_lsn;
            self.advance().await?;
        }
        self.ready = true;
        Ok(())
    }

    /// The next batch of the initial snapshot (`None`: the snapshot is complete). Each table
    /// is read whole through a cursor, all in one repeatable-read transaction begun after the
    /// slot exists, so every change after it comes from the slot (some twice: at least once).
    async fn snapshot_batch(&mut self) -> Result<Option<Vec<SourceRecord>>> {
        if self.snapshot.is_none() {
            let client = connect(&pg_config(&self.props)?).await?;
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(|e| pg_error("snapshot", &e))?;
            let mut tables = VecDeque::new();
            for id in catalog::list_tables(&client).await? {
                let q = id.qualified();
                let included = (self.include.is_empty()
                    || self.include.iter().any(|r| r.is_match(&q)))
                    && !self.exclude.iter().any(|r| r.is_match(&q));
                if !included {
                    continue;
                }
                let oid: i64 = client
                    .query_one("SELECT $1::text::regclass::oid::int8", &[&id.sql()?])
                    .await
                    .map_err(|e| pg_error("snapshot", &e))?
                    .get(0);
                let (columns, pk) = catalog::columns(&client, &id).await?;
                let wire = columns
                    .iter()
                    .map(|c| RelationColumn {
                        key: pk.contains(&c.name),
                        name: c.name.clone(),
                        type_oid: c.type_oid,
                        type_modifier: c.type_modifier,
                    })
                    .collect();
                let columns = columns
                    .into_iter()
                    .map(|c| Column {
                        nullable: c.nullable && !pk.contains(&c.name),
                        ..c
                    })
                    .collect();
                self.relations.insert(
                    oid as u32,
                    build_relation(&self.prefix, id, wire, columns, true),
                );
                tables.push_back(oid as u32);
            }
            self.snapshot = Some(Snapshot {
                client,
                tables,
                current: None,
            });
        }
        let db = pg_config(&self.props)?
            .get_dbname()
            .unwrap_or_default()
            .to_owned();
        loop {
            let Some(snap) = self.snapshot.as_mut() else {
                return Ok(None);
            };
            let Some(oid) = snap.current else {
                let Some(next) = snap.tables.pop_front() else {
                    snap.client
                        .batch_execute("COMMIT")
                        .await
                        .map_err(|e| pg_error("snapshot", &e))?;
                    self.snapshot = None;
                    self.snapshot_needed = false;
                    return Ok(None);
                };
                let rel = self.relations.get(&next).ok_or_else(|| {
                    ConnectError::Task(format!("snapshot: relation {next} vanished"))
                })?;
                let cols = rel
                    .columns
                    .iter()
                    .map(|c| Ok(format!("{}::text", quote_ident(&c.name)?)))
                    .collect::<Result<Vec<_>>>()?
                    .join(", ");
                snap.client
                    .batch_execute(&format!(
                        "DECLARE {SNAPSHOT_CURSOR} NO SCROLL CURSOR FOR SELECT {cols} FROM {}",
                        rel.id.sql()?
                    ))
                    .await
                    .map_err(|e| pg_error("snapshot", &e))?;
                snap.current = Some(next);
                continue;
            };
            let msgs = snap
                .client
                .simple_query(&format!(
                    "FETCH FORWARD {} FROM {SNAPSHOT_CURSOR}",
                    self.max_batch
                ))
                .await
                .map_err(|e| pg_error("snapshot", &e))?;
            let tuples: Vec<Vec<TupleValue>> = msgs
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| match r.get(i) {
                                Some(t) => TupleValue::Text(t.to_owned()),
                                None => TupleValue::Null,
                            })
                            .collect(),
                    ),
                    _ => None,
                })
                .collect();
            if tuples.is_empty() {
                snap.client
                    .batch_execute(&format!("CLOSE {SNAPSHOT_CURSOR}"))
                    .await
                    .map_err(|e| pg_error("snapshot", &e))?;
                snap.current = None;
                continue;
            }
            let now_micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0);
            let txn = Txn {
                xid: 0,
                end_lsn: self.returned_lsn,
                commit_micros: now_micros - PG_EPOCH_MICROS,
                changes: Vec::new(),
            };
            let mut records = Vec::with_capacity(tuples.len());
            for t in tuples {
                self.change_records(&txn, &Change::Insert(oid, t), &db, &mut records)?;
            }
            let mut offset = JsonMap::new();
            offset.insert("lsn".into(), json!(self.returned_lsn));
            offset.insert("snapshot".into(), json!(true));
            let out = records
                .into_iter()
                .map(|mut r| {
                    // A read of the snapshot: op `r`.
                    if let Value::Struct(e) = &mut r.value {
                        e.values[3] = Value::String("r".into());
                    }
                    SourceRecord {
                        source_partition: self.partition(),
                        source_offset: offset.clone(),
                        record: r,
                    }
                })
                .collect();
            return Ok(Some(out));
        }
    }

    async fn advance(&mut self) -> Result<()> {
        if self.advance_to <= self.slot_lsn {
            return Ok(());
        }
        let (slot, to) = (self.slot.clone(), self.advance_to);
        let client = self.client().await?;
        client
            .query(
                "SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::pg_lsn)",
                &[&slot, &TextParam(Some(lsn_text(to)))],
            )
            .await
            .map_err(|e| pg_error("advance replication slot", &e))?;
        self.slot_lsn = to;
        Ok(())
    }

    /// Peeks at the slot (more at a time while everything seen was already returned).
    async fn read_slot(&mut self) -> Result<Vec<Txn>> {
        let mut n = self.queue_size;
        loop {
            let (slot, publication) = (self.slot.clone(), self.publication.clone());
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2::int4, \
                     'proto_version', '1', 'publication_names', $3)",
                    &[&slot, &TextParam(Some(n.to_string())), &publication],
                )
                .await
                .map_err(|e| pg_error("read replication slot", &e))?;
            let got = rows.len();
            let mut txns = Vec::new();
            let mut current: Option<Txn> = None;
            for r in &rows {
                let data: Vec<u8> = r.get(0);
                let msg = decode(&data).map_err(|e| ConnectError::Task(e.to_string()))?;
                match msg {
                    Message::Begin { xid, timestamp, .. } => {
                        current = Some(Txn {
                            xid,
                            end_lsn: 0,
                            commit_micros: timestamp,
                            changes: Vec::new(),
                        })
                    }
                    Message::Commit {
                        end_lsn, timestamp, ..
                    } => {
                        if let Some(mut t) = current.take() {
                            t.end_lsn = end_lsn;
                            t.commit_micros = timestamp;
                            txns.push(t);
                        }
                    }
                    Message::Relation {
                        oid,
                        namespace,
                        name,
                        columns,
                        ..
                    } => self.relation(oid, namespace, name, columns).await?,
                    Message::Insert { relation, new } => {
                        push(&mut current, Change::Insert(relation, new))
                    }
                    Message::Update { relation, old, new } => push(
                        &mut current,
                        Change::Update(relation, old.map(|(k, t)| (t, k == b'K')), new),
                    ),
                    Message::Delete {
                        relation,
                        old,
                        kind,
                    } => push(&mut current, Change::Delete(relation, old, kind == b'K')),
                    Message::Truncate { relations, .. } => {
                        tracing::warn!(
                            "PostgreSQL CDC: TRUNCATE of {} table(s) is not captured",
                            relations.len()
                        );
                    }
                    Message::Origin { .. }
                    | Message::Type { .. }
                    | Message::LogicalMessage { .. } => {}
                }
            }
            let fresh = txns.iter().any(|t| t.end_lsn > self.returned_lsn);
            // Many changes already returned, not committed yet: decoding them again is the
            // cost of every peek until the slot moves; wait for the commit instead.
            self.stale_backlog = !fresh && got >= n;
            if fresh || got < n || self.uncommitted {
                return Ok(txns);
            }
            n = n.saturating_mul(2);
        }
    }

    /// A Relation message: (re)builds the table's schemas when its columns changed.
    async fn relation(
        &mut self,
        oid: u32,
        namespace: String,
        name: String,
        wire: Vec<RelationColumn>,
    ) -> Result<()> {
        let id = TableId {
            schema: namespace,
            name,
        };
        if self
            .relations
            .get(&oid)
            .is_some_and(|r| r.id == id && r.wire == wire)
        {
            return Ok(());
        }
        let qualified = id.qualified();
        let included = (self.include.is_empty()
            || self.include.iter().any(|r| r.is_match(&qualified)))
            && !self.exclude.iter().any(|r| r.is_match(&qualified));
        let client = self.client().await?;
        let nullable: HashMap<String, bool> = if included {
            catalog::columns(client, &id)
                .await
                .map(|(cols, _)| cols.into_iter().map(|c| (c.name, c.nullable)).collect())
                .unwrap_or_default()
        } else {
            HashMap::new()
        };
        let columns: Vec<Column> = wire
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                nullable: !c.key && nullable.get(&c.name).copied().unwrap_or(true),
            })
            .collect();
        self.relations.insert(
            oid,
            build_relation(&self.prefix, id, wire, columns, included),
        );
        Ok(())
    }

    /// The records of the transactions not returned yet, queued with their offsets.
    fn enqueue(&mut self, txns: Vec<Txn>) -> Result<()> {
        let db = pg_config(&self.props)?
            .get_dbname()
            .unwrap_or_default()
            .to_owned();
        let mut complete = self.returned_lsn;
        for t in txns {
            if t.end_lsn <= complete {
                continue;
            }
            let mut records = Vec::new();
            for c in &t.changes {
                self.change_records(&t, c, &db, &mut records)?;
            }
            let skip = match self.partial {
                Some((end, done)) if end == t.end_lsn => done,
                _ => 0,
            };
            let total = records.len();
            for (i, r) in records.into_iter().enumerate().skip(skip) {
                let last = i + 1 == total;
                let mut offset = JsonMap::new();
                offset.insert("lsn".into(), json!(if last { t.end_lsn } else { complete }));
                if !last {
                    offset.insert("tx_end".into(), json!(t.end_lsn));
                    offset.insert("event".into(), json!(i + 1));
                }
                offset.insert("txId".into(), json!(t.xid));
                self.queue.push_back(SourceRecord {
                    source_partition: self.partition(),
                    source_offset: offset,
                    record: r,
                });
            }
            complete = t.end_lsn;
            if total == 0 && !self.uncommitted && self.queue.is_empty() {
                // Nothing of ours in it: the slot can move past it now.
                self.advance_to = self.advance_to.max(t.end_lsn);
            }
        }
        Ok(())
    }

    fn change_records(&self, t: &Txn, c: &Change, db: &str, out: &mut Vec<Record>) -> Result<()> {
        let oid = match c {
            Change::Insert(o, _) | Change::Update(o, _, _) | Change::Delete(o, _, _) => *o,
        };
        let rel = self.relations.get(&oid).ok_or_else(|| {
            ConnectError::Task(format!(
                "a change of relation {oid} came before its Relation message"
            ))
        })?;
        if !rel.included {
            return Ok(());
        }
        let commit_ms = (t.commit_micros + PG_EPOCH_MICROS).div_euclid(1000);
        let source = {
            let mut s = Struct::new(source_schema());
            s.values = vec![
                Value::String(env!("CARGO_PKG_VERSION").into()),
                Value::String("postgresql".into()),
                Value::String(self.prefix.clone()),
                Value::Int64(commit_ms),
                Value::String(db.to_owned()),
                Value::String(rel.id.schema.clone()),
                Value::String(rel.id.name.clone()),
                Value::Int64(t.xid.into()),
                Value::Int64(t.end_lsn as i64),
            ];
            Value::Struct(s)
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let envelope = |before: Value, after: Value, op: &str| {
            let mut e = Struct::new(rel.envelope.clone());
            e.values = vec![
                before,
                after,
                source.clone(),
                Value::String(op.into()),
                Value::Int64(now_ms),
            ];
            Value::Struct(e)
        };
        let record = |key: Value, value: Option<Value>| {
            let mut r = Record::new(&rel.topic, None, Value::Null);
            r.key_schema = rel.key_schema.clone();
            r.key = key;
            if let Some(v) = value {
                r.value_schema = Some(rel.envelope.clone());
                r.value = v;
            }
            r.timestamp = Some(commit_ms);
            r
        };
        match c {
            Change::Insert(_, new) => {
                let row = row_value(rel, new, false)?;
                out.push(record(
                    key_value(rel, new)?,
                    Some(envelope(Value::Null, row, "c")),
                ));
            }
            Change::Update(_, old, new) => {
                let key = key_value(rel, new)?;
                let after = row_value(rel, new, false)?;
                match old {
                    Some((old, key_only)) if key_value(rel, old)? != key => {
                        let old_key = key_value(rel, old)?;
                        let before = row_value(rel, old, *key_only)?;
                        out.push(record(
                            old_key.clone(),
                            Some(envelope(before, Value::Null, "d")),
                        ));
                        out.push(record(old_key, None));
                        out.push(record(key, Some(envelope(Value::Null, after, "c"))));
                    }
                    Some((old, key_only)) => {
                        let before = row_value(rel, old, *key_only)?;
                        out.push(record(key, Some(envelope(before, after, "u"))));
                    }
                    None => out.push(record(key, Some(envelope(Value::Null, after, "u")))),
                }
            }
            Change::Delete(_, old, key_only) => {
                let key = key_value(rel, old)?;
                let before = row_value(rel, old, *key_only)?;
                out.push(record(
                    key.clone(),
                    Some(envelope(before, Value::Null, "d")),
                ));
                out.push(record(key, None));
            }
        }
        Ok(())
    }
}

/// A captured table's schemas and topic.
fn build_relation(
    prefix: &str,
    id: TableId,
    wire: Vec<RelationColumn>,
    columns: Vec<Column>,
    included: bool,
) -> Relation {
    let base = format!("{prefix}.{}", id.qualified());
    let mut row = Schema::structure(Vec::new()).named(&format!("{base}.Value"));
    for c in &columns {
        row = row.with_field(&c.name, c.schema());
    }
    let row_schema = row.optional();
    let key_cols: Vec<&Column> = columns
        .iter()
        .zip(&wire)
        .filter(|(_, w)| w.key)
        .map(|(c, _)| c)
        .collect();
    let key_schema = (!key_cols.is_empty()).then(|| {
        let mut k = Schema::structure(Vec::new()).named(&format!("{base}.Key"));
        for c in key_cols {
            k = k.with_field(&c.name, c.schema());
        }
        k
    });
    let envelope = Schema::structure(Vec::new())
        .named(&format!("{base}.Envelope"))
        .with_field("before", row_schema.clone())
        .with_field("after", row_schema.clone())
        .with_field("source", source_schema())
        .with_field("op", Schema::new(SchemaType::String))
        .with_field("ts_ms", Schema::new(SchemaType::Int64).optional());
    Relation {
        topic: base,
        id,
        wire,
        columns,
        included,
        key_schema,
        row_schema,
        envelope,
    }
}

fn push(current: &mut Option<Txn>, c: Change) {
    if let Some(t) = current.as_mut() {
        t.changes.push(c);
    }
}

/// Debezium's `source` block (the fields this connector fills).
fn source_schema() -> Schema {
    Schema::structure(Vec::new())
        .named("io.debezium.connector.postgresql.Source")
        .with_field("version", Schema::new(SchemaType::String))
        .with_field("connector", Schema::new(SchemaType::String))
        .with_field("name", Schema::new(SchemaType::String))
        .with_field("ts_ms", Schema::new(SchemaType::Int64))
        .with_field("db", Schema::new(SchemaType::String))
        .with_field("schema", Schema::new(SchemaType::String))
        .with_field("table", Schema::new(SchemaType::String))
        .with_field("txId", Schema::new(SchemaType::Int64).optional())
        .with_field("lsn", Schema::new(SchemaType::Int64).optional())
}

/// A column's value from a tuple. A value the server did not send (an unchanged TOASTed value,
/// or a non-key column of a key-only old row) is null when the column is nullable, else
/// Debezium's placeholder for strings and bytes and the zero value for others.
fn column_value(c: &Column, v: Option<&TupleValue>) -> Result<Value> {
    match v {
        Some(TupleValue::Null) => c.parse(None),
        Some(TupleValue::Text(t)) => c.parse(Some(t)),
        Some(TupleValue::Binary(_)) => Err(ConnectError::Task(
            "pgoutput sent a binary value, which was not asked for".into(),
        )),
        Some(TupleValue::Unchanged) | None => {
            let s = c.schema();
            Ok(match s.schema_type {
                _ if c.nullable => Value::Null,
                SchemaType::String => Value::String(UNAVAILABLE.into()),
                SchemaType::Bytes if s.logical().is_none() => {
                    Value::Bytes(UNAVAILABLE.as_bytes().to_vec())
                }
                SchemaType::Bytes => Value::Bytes(vec![0]),
                SchemaType::Boolean => Value::Boolean(false),
                SchemaType::Int16 => Value::Int16(0),
                SchemaType::Int32 => Value::Int32(0),
                SchemaType::Int64 => Value::Int64(0),
                SchemaType::Float32 => Value::Float32(0.0),
                SchemaType::Float64 => Value::Float64(0.0),
                _ => Value::Null,
            })
        }
    }
}

/// The row of a tuple; of a key-only tuple ('K'), whose other columns the server sends as
/// nulls, those columns are values not sent.
fn row_value(rel: &Relation, tuple: &[TupleValue], key_only: bool) -> Result<Value> {
    let mut s = Struct::new(rel.row_schema.clone());
    for (i, (c, w)) in rel.columns.iter().zip(&rel.wire).enumerate() {
        let sent = if key_only && !w.key {
            None
        } else {
            tuple.get(i)
        };
        s.values[i] = column_value(c, sent)?;
    }
    Ok(Value::Struct(s))
}

fn key_value(rel: &Relation, tuple: &[TupleValue]) -> Result<Value> {
    let Some(ks) = &rel.key_schema else {
        return Ok(Value::Null);
    };
    let mut s = Struct::new(ks.clone());
    let mut k = 0;
    for (i, (c, w)) in rel.columns.iter().zip(&rel.wire).enumerate() {
        if w.key {
            s.values[k] = column_value(c, tuple.get(i))?;
            k += 1;
        }
    }
    Ok(Value::Struct(s))
}

fn patterns(props: &Props, key: &str) -> Result<Vec<regex::Regex>> {
    get_list(props, key)
        .iter()
        .map(|p| {
            regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                ConnectError::InvalidConfig(format!(
                    "Invalid value {p} for configuration {key}: {e}"
                ))
            })
        })
        .collect()
}

impl SourceTask for PostgresCdcSourceTask {
    fn start(&mut self, props: &Props, offsets: &SourceOffsets) -> Result<()> {
        pg_config(props)?;
        self.props = props.clone();
        self.prefix = props
            .get("topic.prefix")
            .filter(|p| !p.trim().is_empty())
            .cloned()
            .ok_or_else(|| ConnectError::InvalidConfig("topic.prefix is required".into()))?;
        self.slot = props
            .get("slot.name")
            .cloned()
            .unwrap_or_else(|| "debezium".into());
        self.publication = props
            .get("publication.name")
            .cloned()
            .unwrap_or_else(|| "dbz_publication".into());
        self.include = patterns(props, "table.include.list")?;
        self.exclude = patterns(props, "table.exclude.list")?;
        self.max_batch = get_parsed(props, "max.batch.size", 2048usize)?.max(1);
        self.queue_size = get_parsed(props, "max.queue.size", 8192usize)?.max(1);
        self.poll_interval =
            Duration::from_millis(get_parsed(props, "poll.interval.ms", 500u64)?.max(1));
        let initial = props
            .get("snapshot.mode")
            .is_none_or(|m| m.trim() == "initial");
        let offset = offsets.offset(&self.partition());
        // No offsets yet, or a snapshot that did not finish: (again) from the start.
        self.snapshot_needed = initial
            && offset.is_none_or(|o| o.get("snapshot") == Some(&serde_json::Value::Bool(true)));
        self.snapshot = None;
        if let Some(o) = offset {
            self.returned_lsn = o.get("lsn").and_then(|v| v.as_u64()).unwrap_or(0);
            self.partial = match (
                o.get("tx_end").and_then(|v| v.as_u64()),
                o.get("event").and_then(|v| v.as_u64()),
            ) {
                (Some(end), Some(done)) => Some((end, done as usize)),
                _ => None,
            };
        }
        self.ready = false;
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            if !self.ready {
                self.set_up().await?;
            }
            if self.snapshot_needed {
                if let Some(batch) = self.snapshot_batch().await? {
                    self.uncommitted = true;
                    return Ok(batch);
                }
            }
            self.advance().await?;
            if self.queue.is_empty() && !(self.stale_backlog && self.uncommitted) {
                let txns = self.read_slot().await?;
                self.enqueue(txns)?;
                self.advance().await?;
            }
            if self.queue.is_empty() {
                tokio::time::sleep(self.poll_interval).await;
                return Ok(Vec::new());
            }
            let n = self.queue.len().min(self.max_batch);
            let batch: Vec<SourceRecord> = self.queue.drain(..n).collect();
            if let Some(last) = batch.last() {
                let o = &last.source_offset;
                self.returned_lsn = o.get("lsn").and_then(|v| v.as_u64()).unwrap_or(0);
                self.partial = o
                    .get("tx_end")
                    .and_then(|v| v.as_u64())
                    .zip(o.get("event").and_then(|v| v.as_u64()))
                    .map(|(e, d)| (e, d as usize));
            }
            self.uncommitted = true;
            Ok(batch)
        })
    }

    fn commit(&mut self) -> Result<()> {
        // Everything returned so far is committed: the slot may move past it (next poll).
        self.advance_to = self.advance_to.max(self.returned_lsn);
        self.uncommitted = false;
        Ok(())
    }

    fn stop(&mut self) {
        self.client = None;
        self.snapshot = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converter::{Converter, JsonConverter};
    use crate::postgres::pgoutput::RelationColumn;

    #[tokio::test]
    async fn change_events_convert_to_json() {
        let mut task = PostgresCdcSourceTask {
            prefix: "shop".into(),
            ..Default::default()
        };
        let wire = vec![
            RelationColumn {
                key: true,
                name: "id".into(),
                type_oid: 23,
                type_modifier: -1,
            },
            RelationColumn {
                key: false,
                name: "name".into(),
                type_oid: 25,
                type_modifier: -1,
            },
        ];
        let columns = vec![
            Column {
                name: "id".into(),
                type_oid: 23,
                type_modifier: -1,
                nullable: false,
            },
            Column {
                name: "name".into(),
                type_oid: 25,
                type_modifier: -1,
                nullable: false,
            },
        ];
        task.relations.insert(
            1,
            build_relation(
                "shop",
                TableId {
                    schema: "public".into(),
                    name: "t".into(),
                },
                wire,
                columns,
                true,
            ),
        );
        let t = Txn {
            xid: 7,
            end_lsn: 100,
            commit_micros: 0,
            changes: vec![],
        };
        let mut out = Vec::new();
        task.change_records(
            &t,
            &Change::Insert(
                1,
                vec![TupleValue::Text("1".into()), TupleValue::Text("a".into())],
            ),
            "db",
            &mut out,
        )
        .unwrap();
        task.change_records(
            &t,
            &Change::Delete(
                1,
                vec![TupleValue::Text("1".into()), TupleValue::Null],
                true,
            ),
            "db",
            &mut out,
        )
        .unwrap();
        let c = JsonConverter {
            schemas_enable: true,
        };
        for r in &out {
            c.from_connect("t", r.value_schema.as_ref(), &r.value)
                .unwrap();
            c.from_connect("t", r.key_schema.as_ref(), &r.key).unwrap();
        }
        assert_eq!(out.len(), 3);
        let op = |r: &Record| match &r.value {
            Value::Struct(e) => e.get("op").cloned(),
            _ => None,
        };
        assert_eq!(op(&out[0]), Some(Value::String("c".into())));
        assert_eq!(op(&out[1]), Some(Value::String("d".into())));
        // The tombstone: the key, no value.
        assert_eq!(
            (out[2].key.clone(), out[2].value.clone()),
            (out[1].key.clone(), Value::Null)
        );
        // The key-only old row: the required column not sent is Debezium's placeholder.
        let Value::Struct(e) = &out[1].value else {
            panic!("a struct was expected")
        };
        let Some(Value::Struct(before)) = e.get("before") else {
            panic!("a struct was expected")
        };
        assert_eq!(before.get("name"), Some(&Value::String(UNAVAILABLE.into())));
        assert_eq!(out[0].topic, "shop.public.t");
    }
}
