//! What the connectors read from PostgreSQL's catalog: a table's schema and name resolved
//! through the search path, its columns, its primary key, the tables of the database.

use tokio_postgres::Client;

use super::conn::pg_error;
use super::types::{quote_ident, split_table_name, Column};
use crate::error::{ConnectError, Result};

/// A table by schema and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    /// `schema.table`, as partitions and topics name it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The quoted SQL name, `"schema"."table"`.
    pub fn sql(&self) -> Result<String> {
        Ok(format!(
            "{}.{}",
            quote_ident(&self.schema)?,
            quote_ident(&self.name)?
        ))
    }
}

/// Resolves a configured table name (`t`, `s.t`, `db.s.t`, parts optionally double-quoted)
/// through the search path; `None` when no such table exists.
pub async fn resolve(client: &Client, name: &str) -> Result<Option<TableId>> {
    let parts = split_table_name(name)?;
    let quoted = parts
        .iter()
        .map(|p| quote_ident(p))
        .collect::<Result<Vec<_>>>()?
        .join(".");
    let row = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
            &[&quoted],
        )
        .await
        .map_err(|e| pg_error("table lookup", &e))?;
    Ok(row.map(|r| TableId {
        schema: r.get(0),
        name: r.get(1),
    }))
}

/// The ordinary and partitioned tables outside the system schemas.
pub async fn list_tables(client: &Client) -> Result<Vec<TableId>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| pg_error("table list", &e))?;
    Ok(rows
        .iter()
        .map(|r| TableId {
            schema: r.get(0),
            name: r.get(1),
        })
        .collect())
}

/// The columns of a table in order, and the names of its primary key columns in key order.
pub async fn columns(client: &Client, t: &TableId) -> Result<(Vec<Column>, Vec<String>)> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, NOT a.attnotnull, \
             coalesce(array_position(i.indkey::int2[], a.attnum) + 1, 0)::int4 \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&t.schema, &t.name],
        )
        .await
        .map_err(|e| pg_error("column lookup", &e))?;
    if rows.is_empty() {
        return Err(ConnectError::Task(format!(
            "table {} does not exist or has no columns",
            t.qualified()
        )));
    }
    let mut key: Vec<(i32, String)> = Vec::new();
    let mut cols = Vec::with_capacity(rows.len());
    for r in &rows {
        let name: String = r.get(0);
        let oid: i64 = r.get(1);
        let key_pos: i32 = r.get(4);
        if key_pos > 0 {
            key.push((key_pos, name.clone()));
        }
        cols.push(Column {
            name,
            type_oid: oid as u32,
            type_modifier: r.get(2),
            nullable: r.get(3),
        });
    }
    key.sort();
    Ok((cols, key.into_iter().map(|(_, n)| n).collect()))
}
