//! The PostgreSQL source in query mode (Confluent's JDBC source connector): each table is
//! queried every `poll.interval.ms` for the rows past its offset, in `batch.max.rows` pages.
//!
//! - `bulk`: the whole table at every poll (no offset);
//! - `incrementing`: rows with `incrementing.column.name` > the last one seen;
//! - `timestamp`: rows with `timestamp.column.name` (or the first non-null of several) newer
//!   than the last one seen and older than now minus `timestamp.delay.interval.ms`; a page
//!   never ends inside a run of equal timestamps (the run is read whole), so none is skipped;
//! - `timestamp+incrementing`: ordered by (timestamp, incrementing), exact paging.
//!
//! Source partition `{"table": "schema.table"}`, offset `{"incrementing": N}` and/or
//! `{"timestamp": millis, "timestamp_nanos": nanos of the second}` (Confluent's keys; the
//! offset keeps microseconds). Records go to `topic.prefix` + table name, with a null key and
//! the row as a struct named after the table.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_postgres::Client;

use super::catalog::{self, TableId};
use super::conn::{connect, jdbc_config, pg_error};
use super::types::{parse_timestamp_micros, quote_ident, timestamp_text_micros, Column, TextParam};
use super::types::{TIMESTAMPTZ_OID, TIMESTAMP_OID};
use crate::config::{get_list, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SourceOffsets, SourceTask, Task};
use crate::data::{JsonMap, Record, Schema, SourceRecord, Struct, Value};
use crate::error::{ConnectError, Result};

pub const JDBC_SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";
pub const SOURCE_CLASS: &str = "io.strom.connect.postgres.PostgresSourceConnector";

/// The task config key listing the tables of one task.
const TASK_TABLES: &str = "tables";

/// The query modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode> {
        Ok(match s.trim() {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            "timestamp+incrementing" => Mode::TimestampIncrementing,
            other => {
                return Err(ConnectError::InvalidConfig(format!(
                    "Invalid value {other} for configuration mode: String must be one of: bulk, incrementing, timestamp, timestamp+incrementing"
                )))
            }
        })
    }

    fn incrementing(self) -> bool {
        matches!(self, Mode::Incrementing | Mode::TimestampIncrementing)
    }

    fn timestamp(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// `table.include.list` (or Confluent's older `table.whitelist`).
fn included(props: &Props) -> Vec<String> {
    let l = get_list(props, "table.include.list");
    if l.is_empty() {
        get_list(props, "table.whitelist")
    } else {
        l
    }
}

fn excluded(props: &Props) -> Vec<String> {
    let l = get_list(props, "table.exclude.list");
    if l.is_empty() {
        get_list(props, "table.blacklist")
    } else {
        l
    }
}

/// The JDBC source connector for PostgreSQL.
#[derive(Debug, Default)]
pub struct PostgresSourceConnector {
    props: Props,
}

impl Connector for PostgresSourceConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define("connection.url", ConfigType::String, None, Importance::High, "JDBC connection URL (jdbc:postgresql://host:port/db) or a libpq connection string.")
            .define("connection.user", ConfigType::String, Some(""), Importance::High, "JDBC connection user.")
            .define("connection.password", ConfigType::Password, Some(""), Importance::High, "JDBC connection password.")
            .define("table.whitelist", ConfigType::List, Some(""), Importance::Medium, "List of tables to include in copying (the older name of table.include.list).")
            .define("table.include.list", ConfigType::List, Some(""), Importance::Medium, "List of tables to include in copying; empty: every table.")
            .define("table.blacklist", ConfigType::List, Some(""), Importance::Medium, "List of tables to exclude from copying (the older name of table.exclude.list).")
            .define("table.exclude.list", ConfigType::List, Some(""), Importance::Medium, "List of tables to exclude from copying.")
            .define("mode", ConfigType::String, None, Importance::High, "The mode for updating a table each time it is polled.")
            .one_of(&["bulk", "incrementing", "timestamp", "timestamp+incrementing"])
            .define("incrementing.column.name", ConfigType::String, Some(""), Importance::Medium, "The name of the strictly incrementing column to use to detect new rows.")
            .define("timestamp.column.name", ConfigType::List, Some(""), Importance::Medium, "Comma separated list of one or more timestamp columns to detect new or modified rows using the COALESCE SQL function.")
            .define("timestamp.delay.interval.ms", ConfigType::Long, Some("0"), Importance::High, "How long to wait after a row with certain timestamp appears before we include it in the result.")
            .at_least(0)
            .define("topic.prefix", ConfigType::String, None, Importance::High, "Prefix to prepend to table names to generate the name of the Kafka topic to publish data to.")
            .define("poll.interval.ms", ConfigType::Int, Some("5000"), Importance::High, "Frequency in ms to poll for new data in each table.")
            .at_least(1)
            .define("batch.max.rows", ConfigType::Int, Some("100"), Importance::Low, "Maximum number of rows to include in a single batch when polling for new data.")
            .at_least(1)
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(mode) = props.get("mode").and_then(|m| Mode::parse(m).ok()) else {
            return out;
        };
        let empty = |k: &str| props.get(k).is_none_or(|v| v.trim().is_empty());
        if mode.incrementing() && empty("incrementing.column.name") {
            out.push((
                "incrementing.column.name".to_owned(),
                format!("Mode {} needs incrementing.column.name", mode_name(mode)),
            ));
        }
        if mode.timestamp() && empty("timestamp.column.name") {
            out.push((
                "timestamp.column.name".to_owned(),
                format!("Mode {} needs timestamp.column.name", mode_name(mode)),
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
        let tables = included(&self.props);
        if tables.is_empty() {
            // The tables are found by the one task, at its start.
            return vec![self.props.clone()];
        }
        let n = max_tasks.clamp(1, tables.len());
        (0..n)
            .map(|i| {
                let mine: Vec<&str> = tables
                    .iter()
                    .skip(i)
                    .step_by(n)
                    .map(String::as_str)
                    .collect();
                let mut p = self.props.clone();
                p.insert(TASK_TABLES.to_owned(), mine.join(","));
                p
            })
            .collect()
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(PostgresSourceTask::default()))
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Bulk => "bulk",
        Mode::Incrementing => "incrementing",
        Mode::Timestamp => "timestamp",
        Mode::TimestampIncrementing => "timestamp+incrementing",
    }
}

/// One table a task copies.
#[derive(Debug)]
struct TableState {
    id: TableId,
    topic: String,
    columns: Vec<Column>,
    schema: Schema,
    /// The query, its parameters being the offset (and the delay).
    sql: String,
    /// The last incrementing value seen.
    incrementing: i64,
    /// The last timestamp seen, microseconds since the epoch.
    timestamp: Option<i64>,
    /// The timestamp-mode query of one whole run of equal timestamps.
    tie_sql: Option<String>,
    next_due: Instant,
    /// Bulk mode: rows read and not handed out yet.
    queued: VecDeque<SourceRecord>,
}

impl TableState {
    fn partition(&self) -> JsonMap {
        let mut m = JsonMap::new();
        m.insert("table".into(), json!(self.id.qualified()));
        m
    }
}

/// Reads its tables in turn.
#[derive(Default)]
pub struct PostgresSourceTask {
    props: Props,
    offsets: SourceOffsets,
    mode: Option<Mode>,
    client: Option<Client>,
    tables: Vec<TableState>,
    loaded: bool,
    batch_max_rows: usize,
    poll_interval: Duration,
}

impl PostgresSourceTask {
    fn mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Bulk)
    }

    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&jdbc_config(&self.props)?).await?);
        }
        self.client
            .as_ref()
            .ok_or_else(|| ConnectError::Task("no PostgreSQL connection".into()))
    }

    /// Finds the tables, their columns, and where each left off.
    async fn load(&mut self) -> Result<()> {
        let mode = self.mode();
        let listed = get_list(&self.props, TASK_TABLES);
        let listed = if listed.is_empty() {
            included(&self.props)
        } else {
            listed
        };
        let excluded = excluded(&self.props);
        let prefix = self.props.get("topic.prefix").cloned().unwrap_or_default();
        let inc_col = self
            .props
            .get("incrementing.column.name")
            .cloned()
            .unwrap_or_default();
        let ts_cols = get_list(&self.props, "timestamp.column.name");
        let client = self.client().await?;
        let mut ids = Vec::new();
        if listed.is_empty() {
            let mut skip = Vec::new();
            for e in &excluded {
                if let Some(id) = catalog::resolve(client, e).await? {
                    skip.push(id);
                }
            }
            ids = catalog::list_tables(client)
                .await?
                .into_iter()
                .filter(|t| !skip.contains(t))
                .collect();
        } else {
            for name in &listed {
                ids.push(
                    catalog::resolve(client, name).await?.ok_or_else(|| {
                        ConnectError::Task(format!("table {name} does not exist"))
                    })?,
                );
            }
        }
        let mut tables = Vec::new();
        for id in ids {
            let (columns, _) = catalog::columns(client, &id).await?;
            tables.push(build_table(mode, &prefix, id, columns, &inc_col, &ts_cols)?);
        }
        for t in &mut tables {
            if let Some(o) = self.offsets.offset(&t.partition()) {
                if let Some(i) = o.get("incrementing").and_then(|v| v.as_i64()) {
                    t.incrementing = i;
                }
                if let Some(ms) = o.get("timestamp").and_then(|v| v.as_i64()) {
                    let nanos = o
                        .get("timestamp_nanos")
                        .and_then(|v| v.as_i64())
                        .unwrap_or(ms.rem_euclid(1000) * 1_000_000);
                    let secs = ms.div_euclid(1000);
                    t.timestamp = Some(secs * 1_000_000 + nanos / 1000);
                }
            }
        }
        self.tables = tables;
        self.loaded = true;
        Ok(())
    }

    /// Queries the table at `i` once (one page).
    async fn query_table(&mut self, i: usize) -> Result<Vec<SourceRecord>> {
        let mode = self.mode();
        let limit = self.batch_max_rows;
        let delay_ms: i64 = get_parsed(&self.props, "timestamp.delay.interval.ms", 0)?;
        let delay = TextParam(Some(format!("{delay_ms} milliseconds")));
        let t = &self.tables[i];
        let ts = TextParam(Some(timestamp_text_micros(t.timestamp.unwrap_or(i64::MIN))));
        let inc = TextParam(Some(t.incrementing.to_string()));
        let limit_p = TextParam(Some(limit.to_string()));
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = match mode {
            Mode::Bulk => vec![],
            Mode::Incrementing => vec![&inc, &limit_p],
            Mode::Timestamp => vec![&ts, &delay, &limit_p],
            Mode::TimestampIncrementing => vec![&ts, &inc, &delay, &limit_p],
        };
        let sql = t.sql.clone();
        let client = self.client().await?;
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(|e| pg_error("query", &e))?;
        let mut rows: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|c| r.get::<_, Option<String>>(c))
                    .collect()
            })
            .collect();
        let full = rows.len() >= limit && mode != Mode::Bulk;
        if full && mode == Mode::Timestamp {
            // Never end a page inside a run of equal timestamps: the next query starts after
            // the last timestamp, so the rest of the run would be skipped.
            let ts_at = rows[0].len() - 1;
            let last = rows.last().and_then(|r| r[ts_at].clone());
            while rows.len() > 1 && rows[rows.len() - 2][ts_at] == last {
                rows.pop();
            }
            rows.pop();
            if rows.is_empty() {
                let run_ts = TextParam(last);
                let tie_sql = self.tables[i].tie_sql.clone().unwrap_or_default();
                let client = self.client().await?;
                rows = client
                    .query(&tie_sql, &[&run_ts, &delay])
                    .await
                    .map_err(|e| pg_error("query", &e))?
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|c| r.get::<_, Option<String>>(c))
                            .collect()
                    })
                    .collect();
            }
        }
        let t = &mut self.tables[i];
        let now = Instant::now();
        t.next_due = if full { now } else { now + self.poll_interval };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row_record(t, mode, &row)?);
        }
        Ok(out)
    }
}

fn build_table(
    mode: Mode,
    prefix: &str,
    id: TableId,
    columns: Vec<Column>,
    inc_col: &str,
    ts_cols: &[String],
) -> Result<TableState> {
    let find = |name: &str| {
        columns.iter().find(|c| c.name == name).ok_or_else(|| {
            ConnectError::Task(format!(
                "column {name} does not exist in table {}",
                id.qualified()
            ))
        })
    };
    let mut select: Vec<String> = columns
        .iter()
        .map(|c| Ok(format!("{}::text", quote_ident(&c.name)?)))
        .collect::<Result<_>>()?;
    let table = id.sql()?;
    let inc = if mode.incrementing() {
        find(inc_col)?;
        let q = quote_ident(inc_col)?;
        select.push(format!("{q}::text"));
        q
    } else {
        String::new()
    };
    let (ts_expr, ts_type) = if mode.timestamp() {
        let first = find(ts_cols.first().map(String::as_str).unwrap_or_default())?;
        let ty = match first.type_oid {
            TIMESTAMP_OID => "timestamp",
            TIMESTAMPTZ_OID => "timestamptz",
            _ => {
                return Err(ConnectError::Task(format!(
                    "timestamp column {} of {} is not a timestamp",
                    first.name,
                    id.qualified()
                )))
            }
        };
        let quoted: Vec<String> = ts_cols
            .iter()
            .map(|c| {
                find(c)?;
                quote_ident(c)
            })
            .collect::<Result<_>>()?;
        let expr = if quoted.len() == 1 {
            quoted[0].clone()
        } else {
            format!("COALESCE({})", quoted.join(", "))
        };
        select.push(format!("({expr})::text"));
        (expr, ty)
    } else {
        (String::new(), "")
    };
    let select = select.join(", ");
    let upper = format!("(now() - $DELAY::interval)::{ts_type}");
    let sql = match mode {
        Mode::Bulk => format!("SELECT {select} FROM {table}"),
        Mode::Incrementing => format!(
            "SELECT {select} FROM {table} WHERE {inc} > $1::int8 ORDER BY {inc} ASC LIMIT $2::int8"
        ),
        Mode::Timestamp => format!(
            "SELECT {select} FROM {table} WHERE {ts_expr} > $1::{ts_type} AND {ts_expr} < {} \
             ORDER BY {ts_expr} ASC LIMIT $3::int8",
            upper.replace("$DELAY", "$2")
        ),
        Mode::TimestampIncrementing => format!(
            "SELECT {select} FROM {table} WHERE {ts_expr} < {} AND \
             ({ts_expr} > $1::{ts_type} OR ({ts_expr} = $1::{ts_type} AND {inc} > $2::int8)) \
             ORDER BY {ts_expr} ASC, {inc} ASC LIMIT $4::int8",
            upper.replace("$DELAY", "$3")
        ),
    };
    let tie_sql = (mode == Mode::Timestamp).then(|| {
        format!(
            "SELECT {select} FROM {table} WHERE {ts_expr} = $1::{ts_type} AND {ts_expr} < {}",
            upper.replace("$DELAY", "$2")
        )
    });
    let mut schema = Schema::structure(Vec::new()).named(&id.name);
    for c in &columns {
        schema = schema.with_field(&c.name, c.schema());
    }
    Ok(TableState {
        topic: format!("{prefix}{}", id.name),
        id,
        columns,
        schema,
        sql,
        incrementing: -1,
        timestamp: None,
        tie_sql,
        next_due: Instant::now(),
        queued: VecDeque::new(),
    })
}

/// One row (the columns' text, then the incrementing and timestamp values the mode adds) as a
/// record; moves the table's offset past it.
fn row_record(t: &mut TableState, mode: Mode, row: &[Option<String>]) -> Result<SourceRecord> {
    let n = t.columns.len();
    let mut st = Struct::new(t.schema.clone());
    for (i, c) in t.columns.iter().enumerate() {
        st.values[i] = c.parse(row[i].as_deref())?;
    }
    let mut extra = row[n..].iter();
    let mut offset = JsonMap::new();
    if mode.incrementing() {
        let v = extra.next().cloned().flatten().ok_or_else(|| {
            ConnectError::Task(format!(
                "a row of {} has a null incrementing column",
                t.id.qualified()
            ))
        })?;
        t.incrementing = v
            .parse()
            .map_err(|_| ConnectError::Task(format!("incrementing value {v} is not an integer")))?;
        offset.insert("incrementing".into(), json!(t.incrementing));
    }
    if mode.timestamp() {
        let v = extra.next().cloned().flatten().ok_or_else(|| {
            ConnectError::Task(format!(
                "a row of {} has a null timestamp",
                t.id.qualified()
            ))
        })?;
        let micros = parse_timestamp_micros(&v)
            .ok_or_else(|| ConnectError::Task(format!("cannot read timestamp {v}")))?;
        t.timestamp = Some(micros);
        offset.insert("timestamp".into(), json!(micros.div_euclid(1000)));
        offset.insert(
            "timestamp_nanos".into(),
            json!(micros.rem_euclid(1_000_000) * 1000),
        );
    }
    Ok(SourceRecord {
        source_partition: t.partition(),
        source_offset: offset,
        record: Record::new(&t.topic, Some(t.schema.clone()), Value::Struct(st)),
    })
}

impl SourceTask for PostgresSourceTask {
    fn start(&mut self, props: &Props, offsets: &SourceOffsets) -> Result<()> {
        let mode = Mode::parse(props.get("mode").map(String::as_str).unwrap_or(""))?;
        jdbc_config(props)?;
        self.props = props.clone();
        self.offsets = offsets.clone();
        self.mode = Some(mode);
        self.batch_max_rows = get_parsed(props, "batch.max.rows", 100usize)?.max(1);
        self.poll_interval =
            Duration::from_millis(get_parsed(props, "poll.interval.ms", 5000u64)?.max(1));
        self.loaded = false;
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            if !self.loaded {
                self.load().await?;
            }
            // Bulk mode: hand out what the last query read.
            if let Some(t) = self.tables.iter_mut().find(|t| !t.queued.is_empty()) {
                let n = t.queued.len().min(self.batch_max_rows);
                return Ok(t.queued.drain(..n).collect());
            }
            let Some(i) = (0..self.tables.len()).min_by_key(|&i| self.tables[i].next_due) else {
                tokio::time::sleep(self.poll_interval).await;
                return Ok(Vec::new());
            };
            let due = self.tables[i].next_due;
            let now = Instant::now();
            if due > now {
                // At most a short wait per poll, so that the runtime stays responsive.
                tokio::time::sleep((due - now).min(Duration::from_millis(500))).await;
                return Ok(Vec::new());
            }
            let mut records = self.query_table(i).await?;
            if self.mode() == Mode::Bulk && records.len() > self.batch_max_rows {
                let rest = records.split_off(self.batch_max_rows);
                self.tables[i].queued.extend(rest);
            }
            Ok(records)
        })
    }

    fn stop(&mut self) {
        self.client = None;
    }
}
