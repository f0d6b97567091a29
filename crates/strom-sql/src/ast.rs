//! Statements of ksqlDB's language, as the parser produces them. Expressions stay
//! sqlparser's [`Expr`]; `expr.rs` compiles them against a schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use sqlparser::ast::Expr;

use crate::types::SqlType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    Stream,
    Table,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    /// `KEY` (streams) or `PRIMARY KEY` (tables).
    pub key: bool,
}

/// `WITH (...)` properties, names upper-cased, values as written (strings unquoted).
pub type Props = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub enum Statement {
    CreateSource {
        kind: SourceKind,
        name: String,
        or_replace: bool,
        if_not_exists: bool,
        columns: Vec<ColumnDef>,
        props: Props,
    },
    CreateAs {
        kind: SourceKind,
        name: String,
        or_replace: bool,
        if_not_exists: bool,
        props: Props,
        query: Box<Query>,
    },
    InsertSelect {
        target: String,
        query: Box<Query>,
    },
    InsertValues {
        target: String,
        columns: Option<Vec<String>>,
        values: Vec<Expr>,
    },
    Select(Box<Query>),
    Show {
        what: ShowWhat,
        extended: bool,
    },
    Describe {
        name: String,
        extended: bool,
    },
    Explain(String),
    Drop {
        kind: SourceKind,
        name: String,
        if_exists: bool,
        delete_topic: bool,
    },
    /// `None` is TERMINATE ALL.
    Terminate(Option<String>),
    Print {
        topic: String,
        from_beginning: bool,
        limit: Option<u64>,
    },
    Set {
        name: String,
        value: String,
    },
    Unset(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowWhat {
    Streams,
    Tables,
    Topics,
    Queries,
    Properties,
}

#[derive(Debug, Clone)]
pub enum SelectItem {
    Star,
    QualifiedStar(String),
    Expr {
        expr: Box<Expr>,
        alias: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct FromItem {
    pub name: String,
    pub alias: Option<String>,
}

impl FromItem {
    /// The name the query refers to this source by.
    pub fn reference(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Debug, Clone)]
pub struct Join {
    pub kind: JoinKind,
    pub source: FromItem,
    /// `WITHIN n unit` or `WITHIN (before, after)`, milliseconds, plus `GRACE PERIOD`.
    pub within: Option<(i64, i64, Option<i64>)>,
    pub on: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    Tumbling { size: i64 },
    Hopping { size: i64, advance: i64 },
    Session { gap: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub grace: Option<i64>,
    pub retention: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: FromItem,
    pub joins: Vec<Join>,
    pub window: Option<WindowSpec>,
    pub where_: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub having: Option<Expr>,
    /// `EMIT CHANGES` (a push query) or `EMIT FINAL`.
    pub emit: Option<Emit>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Changes,
    Final,
}

/// A statement with its own text (for the command topic and `statementText`).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub statement: Statement,
    pub text: String,
}
