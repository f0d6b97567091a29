//! ksqlDB's statements on sqlparser-rs: sqlparser tokenizes (with line and column) and
//! parses expressions and select items; this module drives its `Parser` for the statement
//! forms SQL does not have (`CREATE STREAM`, `WITH (...)`, `EMIT CHANGES`, `WINDOW
//! TUMBLING (...)`, `WITHIN`, `PARTITION BY`, `PRINT`, ...). Errors say where
//! (`line L:C`) and what was expected.

use sqlparser::ast::{self as sql, Expr};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::ast::*;
use crate::types::SqlType;
use crate::SqlError;

static DIALECT: GenericDialect = GenericDialect {};

/// Parses one or more statements separated by `;`.
pub fn parse(text: &str) -> Result<Vec<Parsed>, SqlError> {
    let parser = Parser::new(&DIALECT)
        .with_recursion_limit(64)
        .try_with_sql(text)
        .map_err(|e| from_parser_error(e, text))?;
    let mut p = P {
        p: parser,
        src: text,
        lines: line_starts(text),
        gt_debt: 0,
    };
    let mut out = Vec::new();
    loop {
        while p.p.consume_token(&Token::SemiColon) {}
        if p.peek() == Token::EOF {
            break;
        }
        let start = p.offset(&p.p.peek_token());
        let statement = p.statement().map_err(|e| p.err(e))?;
        let end_tok = p.p.peek_token();
        if end_tok.token != Token::SemiColon && end_tok.token != Token::EOF {
            return Err(p.expected("';' or the end of the statement", end_tok));
        }
        let end = if end_tok.token == Token::EOF {
            text.len()
        } else {
            p.offset(&end_tok)
        };
        out.push(Parsed {
            statement,
            text: format!("{};", text[start..end].trim()),
        });
    }
    if out.is_empty() {
        return Err(SqlError::parse(
            "line 1:1: Expected: a statement, found: EOF",
        ));
    }
    Ok(out)
}

/// sqlparser's message, `Expected: X, found: Y at Line: 1, Column: 8`, reworded as
/// `line 1:8: Expected: X, found: Y`.
fn from_parser_error(e: ParserError, _text: &str) -> SqlError {
    let msg = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => {
            return SqlError::parse("the statement nests too deeply")
        }
    };
    let msg = msg.trim_start_matches("sql parser error: ").to_owned();
    if let Some((what, at)) = msg.rsplit_once(" at Line: ") {
        if let Some((line, col)) = at.split_once(", Column: ") {
            return SqlError::parse(format!("line {}:{}: {what}", line.trim(), col.trim()));
        }
    }
    SqlError::parse(msg)
}

fn line_starts(s: &str) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(s.match_indices('\n').map(|(i, _)| i + 1));
    v
}

struct P<'a> {
    p: Parser<'a>,
    src: &'a str,
    lines: Vec<usize>,
    gt_debt: usize,
}

type R<T> = Result<T, ParserError>;

/// Words that end a FROM item (so they are not taken as its alias).
const CLAUSE_WORDS: &[&str] = &[
    "WHERE",
    "WINDOW",
    "GROUP",
    "HAVING",
    "EMIT",
    "PARTITION",
    "LIMIT",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "WITHIN",
    "ON",
];

impl<'a> P<'a> {
    fn peek(&self) -> Token {
        self.p.peek_token().token
    }

    /// Byte offset of a token's start in the source.
    fn offset(&self, t: &TokenWithSpan) -> usize {
        let loc = t.span.start;
        if loc.line == 0 {
            return self.src.len();
        }
        let ls = self.lines.get(loc.line as usize - 1).copied().unwrap_or(0);
        let line = &self.src[ls..];
        ls + line
            .char_indices()
            .nth(loc.column as usize - 1)
            .map(|(i, _)| i)
            .unwrap_or(line.len())
    }

    fn err(&self, e: ParserError) -> SqlError {
        let e = from_parser_error(e, self.src);
        match e {
            // sqlparser gives no position for the end of input: point after the last char.
            SqlError::Parse(m) if !m.starts_with("line ") && m.starts_with("Expected") => {
                let line = self.lines.len();
                let col = self.src[self.lines[line - 1]..].chars().count() + 1;
                SqlError::parse(format!("line {line}:{col}: {m}"))
            }
            other => other,
        }
    }

    fn expected(&self, what: &str, found: TokenWithSpan) -> SqlError {
        let loc = found.span.start;
        SqlError::parse(format!(
            "line {}:{}: Expected: {what}, found: {}",
            loc.line, loc.column, found.token
        ))
    }

    fn fail<T>(&self, what: &str) -> R<T> {
        self.p.expected(what, self.p.peek_token())
    }

    /// Whether the next token is the word `w` (unquoted, any case).
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
    }

    fn word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    fn words(&mut self, ws: &[&str]) -> bool {
        let idx = self.p.index();
        for w in ws {
            if !self.word(w) {
                while self.p.index() > idx {
                    self.p.prev_token();
                }
                return false;
            }
        }
        true
    }

    fn expect_word(&mut self, w: &str) -> R<()> {
        if self.word(w) {
            Ok(())
        } else {
            self.fail(w)
        }
    }

    fn expect(&mut self, t: Token) -> R<()> {
        self.p.expect_token(&t).map(|_| ())
    }

    /// An identifier: unquoted ones are upper-cased, as ksqlDB does.
    fn ident(&mut self) -> R<String> {
        let t = self.p.next_token();
        match t.token {
            Token::Word(w) => Ok(if w.quote_style.is_some() {
                w.value
            } else {
                w.value.to_uppercase()
            }),
            _ => self.p.expected("an identifier", t),
        }
    }

    fn statement(&mut self) -> R<Statement> {
        if self.word("CREATE") {
            return self.create();
        }
        if self.word("INSERT") {
            return self.insert();
        }
        if self.is_word("SELECT") {
            return Ok(Statement::Select(Box::new(self.query()?)));
        }
        if self.word("SHOW") || self.word("LIST") {
            let what = if self.word("STREAMS") {
                ShowWhat::Streams
            } else if self.word("TABLES") {
                ShowWhat::Tables
            } else if self.word("TOPICS") {
                ShowWhat::Topics
            } else if self.word("QUERIES") {
                ShowWhat::Queries
            } else if self.word("PROPERTIES") {
                ShowWhat::Properties
            } else {
                return self.fail("STREAMS, TABLES, TOPICS, QUERIES or PROPERTIES");
            };
            let extended = self.word("EXTENDED");
            return Ok(Statement::Show { what, extended });
        }
        if self.word("DESCRIBE") {
            let name = self.ident()?;
            let extended = self.word("EXTENDED");
            return Ok(Statement::Describe { name, extended });
        }
        if self.word("EXPLAIN") {
            return Ok(Statement::Explain(self.ident()?));
        }
        if self.word("DROP") {
            let kind = self.kind()?;
            let if_exists = self.words(&["IF", "EXISTS"]);
            let name = self.ident()?;
            let delete_topic = self.words(&["DELETE", "TOPIC"]);
            return Ok(Statement::Drop {
                kind,
                name,
                if_exists,
                delete_topic,
            });
        }
        if self.word("TERMINATE") {
            if self.word("ALL") {
                return Ok(Statement::Terminate(None));
            }
            return Ok(Statement::Terminate(Some(self.ident()?)));
        }
        if self.word("PRINT") {
            let topic = match self.peek() {
                Token::SingleQuotedString(_) => self.p.parse_literal_string()?,
                _ => {
                    // Topic names keep their case, quoted or not.
                    let t = self.p.next_token();
                    match t.token {
                        Token::Word(w) => w.value,
                        _ => return self.p.expected("a topic name", t),
                    }
                }
            };
            let from_beginning = self.words(&["FROM", "BEGINNING"]);
            let limit = if self.word("LIMIT") {
                Some(self.p.parse_literal_uint()?)
            } else {
                None
            };
            return Ok(Statement::Print {
                topic,
                from_beginning,
                limit,
            });
        }
        if self.word("SET") {
            let name = self.p.parse_literal_string()?;
            self.expect(Token::Eq)?;
            let value = self.p.parse_literal_string()?;
            return Ok(Statement::Set { name, value });
        }
        if self.word("UNSET") {
            return Ok(Statement::Unset(self.p.parse_literal_string()?));
        }
        self.fail("a statement (CREATE, INSERT, SELECT, SHOW, LIST, DESCRIBE, EXPLAIN, DROP, TERMINATE, PRINT, SET, UNSET)")
    }

    fn kind(&mut self) -> R<SourceKind> {
        if self.word("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.word("TABLE") {
            Ok(SourceKind::Table)
        } else {
            self.fail("STREAM or TABLE")
        }
    }

    fn create(&mut self) -> R<Statement> {
        let or_replace = self.words(&["OR", "REPLACE"]);
        let kind = self.kind()?;
        let if_not_exists = self.words(&["IF", "NOT", "EXISTS"]);
        let name = self.ident()?;
        let mut columns = Vec::new();
        if self.p.consume_token(&Token::LParen) {
            loop {
                columns.push(self.column(kind)?);
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect(Token::RParen)?;
        }
        let props = if self.word("WITH") {
            self.props()?
        } else {
            Props::new()
        };
        if self.word("AS") {
            if !columns.is_empty() {
                return self.fail("no column list with AS SELECT");
            }
            let query = self.query()?;
            return Ok(Statement::CreateAs {
                kind,
                name,
                or_replace,
                if_not_exists,
                props,
                query: Box::new(query),
            });
        }
        Ok(Statement::CreateSource {
            kind,
            name,
            or_replace,
            if_not_exists,
            columns,
            props,
        })
    }

    fn column(&mut self, kind: SourceKind) -> R<ColumnDef> {
        let name = self.ident()?;
        let ty = self.data_type()?;
        let key = match kind {
            SourceKind::Stream => self.word("KEY"),
            SourceKind::Table => {
                if self.word("PRIMARY") {
                    self.expect_word("KEY")?;
                    true
                } else if self.is_word("KEY") {
                    return self.fail("PRIMARY KEY (a table's key column is its PRIMARY KEY)");
                } else {
                    false
                }
            }
        };
        Ok(ColumnDef { name, ty, key })
    }

    fn data_type(&mut self) -> R<SqlType> {
        let t = self.p.next_token();
        let name = match &t.token {
            Token::Word(w) => w.value.to_uppercase(),
            _ => return self.p.expected("a type", t),
        };
        Ok(match name.as_str() {
            "BOOLEAN" => SqlType::Boolean,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::BigInt,
            "DOUBLE" => SqlType::Double,
            "STRING" | "VARCHAR" => SqlType::String,
            "TIMESTAMP" => SqlType::Timestamp,
            "DECIMAL" => {
                self.expect(Token::LParen)?;
                let p = self.p.parse_literal_uint()? as u32;
                self.expect(Token::Comma)?;
                let s = self.p.parse_literal_uint()? as u32;
                self.expect(Token::RParen)?;
                if p == 0 || s > p || p > 38 {
                    return self
                        .p
                        .expected("DECIMAL(precision, scale) with 0 < precision <= 38 and scale <= precision", t);
                }
                SqlType::Decimal(p, s)
            }
            "ARRAY" => {
                self.expect(Token::Lt)?;
                let inner = self.data_type()?;
                self.close_angle()?;
                SqlType::Array(Box::new(inner))
            }
            "MAP" => {
                self.expect(Token::Lt)?;
                let k = self.data_type()?;
                if k != SqlType::String {
                    return self.p.expected("MAP<STRING, ...> (map keys are strings)", t);
                }
                self.expect(Token::Comma)?;
                let v = self.data_type()?;
                self.close_angle()?;
                SqlType::Map(Box::new(v))
            }
            "STRUCT" => {
                self.expect(Token::Lt)?;
                let mut fields = Vec::new();
                loop {
                    let n = self.ident()?;
                    let ty = self.data_type()?;
                    fields.push((n, ty));
                    if !self.p.consume_token(&Token::Comma) {
                        break;
                    }
                }
                self.close_angle()?;
                SqlType::Struct(fields)
            }
            _ => {
                return self.p.expected(
                    "a type (BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL, STRING, TIMESTAMP, ARRAY, MAP, STRUCT)",
                    t,
                )
            }
        })
    }

    /// `>`; a `>>` token closes two nested types, the second `>` owed to the outer one.
    fn close_angle(&mut self) -> R<()> {
        if self.gt_debt > 0 {
            self.gt_debt -= 1;
            return Ok(());
        }
        let t = self.p.next_token();
        match t.token {
            Token::Gt => Ok(()),
            Token::ShiftRight => {
                self.gt_debt += 1;
                Ok(())
            }
            _ => self.p.expected(">", t),
        }
    }

    fn props(&mut self) -> R<Props> {
        self.expect(Token::LParen)?;
        let mut props = Props::new();
        loop {
            let k = self.ident()?;
            self.expect(Token::Eq)?;
            let t = self.p.next_token();
            let v = match t.token {
                Token::SingleQuotedString(s) => s,
                Token::Number(n, _) => n,
                Token::Word(w) => w.value,
                _ => return self.p.expected("a property value", t),
            };
            props.insert(k.to_uppercase(), v);
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect(Token::RParen)?;
        Ok(props)
    }

    fn insert(&mut self) -> R<Statement> {
        self.expect_word("INTO")?;
        let target = self.ident()?;
        let mut columns = None;
        if self.p.consume_token(&Token::LParen) {
            let mut cs = vec![self.ident()?];
            while self.p.consume_token(&Token::Comma) {
                cs.push(self.ident()?);
            }
            self.expect(Token::RParen)?;
            columns = Some(cs);
        }
        if self.word("VALUES") {
            self.expect(Token::LParen)?;
            let values = self.p.parse_comma_separated(Parser::parse_expr)?;
            self.expect(Token::RParen)?;
            return Ok(Statement::InsertValues {
                target,
                columns,
                values,
            });
        }
        if columns.is_some() {
            return self.fail("VALUES");
        }
        if !self.is_word("SELECT") {
            return self.fail("VALUES or SELECT");
        }
        Ok(Statement::InsertSelect {
            target,
            query: Box::new(self.query()?),
        })
    }

    fn source_item(&mut self) -> R<FromItem> {
        let name = self.ident()?;
        let alias = if self.word("AS") {
            Some(self.ident()?)
        } else {
            match self.peek() {
                Token::Word(w)
                    if w.quote_style.is_some()
                        || !CLAUSE_WORDS.iter().any(|c| w.value.eq_ignore_ascii_case(c)) =>
                {
                    Some(self.ident()?)
                }
                _ => None,
            }
        };
        Ok(FromItem { name, alias })
    }

    /// `n UNIT` in milliseconds.
    fn duration(&mut self) -> R<i64> {
        let n = self.p.parse_literal_uint()? as i64;
        let t = self.p.next_token();
        let unit = match &t.token {
            Token::Word(w) => w.value.to_uppercase(),
            _ => {
                return self.p.expected(
                    "a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)",
                    t,
                )
            }
        };
        let ms = match unit.trim_end_matches('S') {
            "MILLISECOND" => 1,
            "SECOND" => 1000,
            "MINUTE" => 60_000,
            "HOUR" => 3_600_000,
            "DAY" => 86_400_000,
            _ => {
                return self.p.expected(
                    "a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)",
                    t,
                )
            }
        };
        Ok(n.saturating_mul(ms))
    }

    fn window(&mut self) -> R<WindowSpec> {
        let kind_word = if self.word("TUMBLING") {
            0
        } else if self.word("HOPPING") {
            1
        } else if self.word("SESSION") {
            2
        } else {
            return self.fail("TUMBLING, HOPPING or SESSION");
        };
        self.expect(Token::LParen)?;
        let kind = match kind_word {
            0 => {
                self.expect_word("SIZE")?;
                WindowKind::Tumbling {
                    size: self.duration()?,
                }
            }
            1 => {
                self.expect_word("SIZE")?;
                let size = self.duration()?;
                self.expect(Token::Comma)?;
                self.expect_word("ADVANCE")?;
                self.expect_word("BY")?;
                let advance = self.duration()?;
                if advance > size || advance == 0 {
                    return self.fail("an ADVANCE BY no larger than the SIZE");
                }
                WindowKind::Hopping { size, advance }
            }
            _ => WindowKind::Session {
                gap: self.duration()?,
            },
        };
        let mut spec = WindowSpec {
            kind,
            grace: None,
            retention: None,
        };
        while self.p.consume_token(&Token::Comma) {
            if self.word("RETENTION") {
                spec.retention = Some(self.duration()?);
            } else if self.word("GRACE") {
                self.expect_word("PERIOD")?;
                spec.grace = Some(self.duration()?);
            } else {
                return self.fail("RETENTION or GRACE PERIOD");
            }
        }
        self.expect(Token::RParen)?;
        Ok(spec)
    }

    fn query(&mut self) -> R<Query> {
        self.expect_word("SELECT")?;
        let items = self.p.parse_comma_separated(Parser::parse_select_item)?;
        let mut select = Vec::new();
        for item in items {
            select.push(match item {
                sql::SelectItem::Wildcard(_) => SelectItem::Star,
                sql::SelectItem::QualifiedWildcard(
                    sql::SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => SelectItem::QualifiedStar(normalize_object_name(&n)),
                sql::SelectItem::QualifiedWildcard(..) => {
                    return self.fail("a column, expression or *")
                }
                sql::SelectItem::UnnamedExpr(expr) => SelectItem::Expr {
                    expr: Box::new(expr),
                    alias: None,
                },
                sql::SelectItem::ExprWithAlias { expr, alias } => SelectItem::Expr {
                    expr: Box::new(expr),
                    alias: Some(normalize_ident(&alias)),
                },
            });
        }
        self.expect_word("FROM")?;
        let from = self.source_item()?;
        let mut joins = Vec::new();
        loop {
            let kind = if self.word("JOIN") || self.words(&["INNER", "JOIN"]) {
                JoinKind::Inner
            } else if self.word("LEFT") {
                self.word("OUTER");
                self.expect_word("JOIN")?;
                JoinKind::Left
            } else if self.word("RIGHT") {
                self.word("OUTER");
                self.expect_word("JOIN")?;
                JoinKind::Right
            } else if self.word("FULL") {
                self.word("OUTER");
                self.expect_word("JOIN")?;
                JoinKind::Full
            } else {
                break;
            };
            let source = self.source_item()?;
            let within = if self.word("WITHIN") {
                let (before, after) = if self.p.consume_token(&Token::LParen) {
                    let b = self.duration()?;
                    self.expect(Token::Comma)?;
                    let a = self.duration()?;
                    self.expect(Token::RParen)?;
                    (b, a)
                } else {
                    let d = self.duration()?;
                    (d, d)
                };
                let grace = if self.words(&["GRACE", "PERIOD"]) {
                    Some(self.duration()?)
                } else {
                    None
                };
                Some((before, after, grace))
            } else {
                None
            };
            self.expect_word("ON")?;
            let on = self.p.parse_expr()?;
            joins.push(Join {
                kind,
                source,
                within,
                on,
            });
        }
        let window = if self.word("WINDOW") {
            Some(self.window()?)
        } else {
            None
        };
        let where_ = if self.word("WHERE") {
            Some(self.p.parse_expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        let mut partition_by = Vec::new();
        if self.words(&["GROUP", "BY"]) {
            group_by = self.p.parse_comma_separated(Parser::parse_expr)?;
        }
        if self.words(&["PARTITION", "BY"]) {
            partition_by = self.p.parse_comma_separated(Parser::parse_expr)?;
        }
        let having = if self.word("HAVING") {
            Some(self.p.parse_expr()?)
        } else {
            None
        };
        let emit = if self.word("EMIT") {
            if self.word("CHANGES") {
                Some(Emit::Changes)
            } else if self.word("FINAL") {
                Some(Emit::Final)
            } else {
                return self.fail("CHANGES or FINAL");
            }
        } else {
            None
        };
        let limit = if self.word("LIMIT") {
            Some(self.p.parse_literal_uint()?)
        } else {
            None
        };
        if !group_by.is_empty() && !partition_by.is_empty() {
            return self.fail("GROUP BY or PARTITION BY, not both");
        }
        Ok(Query {
            select,
            from,
            joins,
            window,
            where_,
            group_by,
            partition_by,
            having,
            emit,
            limit,
        })
    }
}

pub fn normalize_ident(i: &sql::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_uppercase()
    }
}

fn normalize_object_name(n: &sql::ObjectName) -> String {
    n.0.iter()
        .filter_map(|p| p.as_ident())
        .map(normalize_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether an expression is a plain column reference; its name if so.
pub fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(normalize_ident(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(normalize_ident),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Statement {
        let mut v = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(v.len(), 1);
        v.remove(0).statement
    }

    #[test]
    fn create_stream_with_keys_and_props() {
        match one("CREATE STREAM pageviews (id STRING KEY, `viewTime` BIGINT, tags ARRAY<STRING>, d DECIMAL(4, 2)) WITH (kafka_topic='pv', value_format='JSON', partitions=2);") {
            Statement::CreateSource { kind, name, columns, props, .. } => {
                assert_eq!(kind, SourceKind::Stream);
                assert_eq!(name, "PAGEVIEWS");
                assert_eq!(columns[0], ColumnDef { name: "ID".into(), ty: SqlType::String, key: true });
                assert_eq!(columns[1].name, "viewTime");
                assert_eq!(columns[2].ty, SqlType::Array(Box::new(SqlType::String)));
                assert_eq!(columns[3].ty, SqlType::Decimal(4, 2));
                assert_eq!(props["KAFKA_TOPIC"], "pv");
                assert_eq!(props["PARTITIONS"], "2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn windowed_query_clauses() {
        let s = "CREATE TABLE c AS SELECT id, COUNT(*) AS n FROM s WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 2 SECONDS) WHERE x > 1 GROUP BY id HAVING COUNT(*) > 1 EMIT CHANGES";
        match one(s) {
            Statement::CreateAs { query, .. } => {
                assert_eq!(
                    query.window,
                    Some(WindowSpec {
                        kind: WindowKind::Tumbling { size: 10_000 },
                        grace: Some(2000),
                        retention: None
                    })
                );
                assert_eq!(query.group_by.len(), 1);
                assert!(query.having.is_some());
                assert_eq!(query.emit, Some(Emit::Changes));
                assert_eq!(query.from.name, "S");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn joins_and_within() {
        match one("SELECT * FROM a x JOIN b y WITHIN (1 SECOND, 2 SECONDS) GRACE PERIOD 1 SECOND ON x.id = y.id EMIT CHANGES") {
            Statement::Select(q) => {
                assert_eq!(q.from.reference(), "X");
                assert_eq!(q.joins[0].within, Some((1000, 2000, Some(1000))));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn several_statements_keep_their_text() {
        let v = parse("SHOW STREAMS;\n  DROP TABLE IF EXISTS t DELETE TOPIC ;").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].text, "SHOW STREAMS;");
        assert_eq!(v[1].text, "DROP TABLE IF EXISTS t DELETE TOPIC;");
    }

    #[test]
    fn nested_types_close_with_shift_right() {
        match one("CREATE STREAM s (a ARRAY<ARRAY<INT>>, m MAP<STRING, STRUCT<x INT, y ARRAY<STRING>>>) WITH (kafka_topic='t', value_format='JSON');") {
            Statement::CreateSource { columns, .. } => {
                assert_eq!(columns[0].ty.to_string(), "ARRAY<ARRAY<INTEGER>>");
                assert_eq!(columns[1].ty.to_string(), "MAP<STRING, STRUCT<X INTEGER, Y ARRAY<STRING>>>");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prefixes_and_garbage_never_panic() {
        let stmts = [
            "CREATE TABLE t AS SELECT k, COUNT(*) AS n, WINDOWSTART AS ws FROM s WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, GRACE PERIOD 1 MINUTE) WHERE v > 1 GROUP BY k HAVING COUNT(*) > 2 EMIT CHANGES;",
            "CREATE STREAM s (id STRING KEY, v DECIMAL(4, 2), a ARRAY<MAP<STRING, INT>>) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON', PARTITIONS=2);",
            "INSERT INTO s (id, v) VALUES ('a', CASE WHEN 1 > 2 THEN 1.5 ELSE -2 END);",
            "SELECT a.x, b.y FROM a LEFT JOIN b WITHIN (1 SECOND, 2 HOURS) ON a.k = b.k PARTITION BY a.x EMIT CHANGES LIMIT 3;",
            "PRINT 'topic' FROM BEGINNING LIMIT 2; SET 'a'='b'; UNSET 'a'; TERMINATE ALL; DROP STREAM IF EXISTS x DELETE TOPIC;",
        ];
        for s in stmts {
            for i in 0..=s.len() {
                if s.is_char_boundary(i) {
                    let _ = parse(&s[..i]);
                }
            }
        }
        for junk in [
            "'",
            "`",
            "\"",
            "((((",
            "é;é",
            "\u{0}",
            "SELECT * FROM",
            "CREATE STREAM s (a ARRAY<INT>>>) WITH (k='v');",
            "SELECT 99999999999999999999999999999999999999999.9 FROM s;",
        ] {
            let _ = parse(junk);
        }
    }

    #[test]
    fn errors_point_at_the_position() {
        let e = parse("CREATE STREAM s (a INT) WITH (kafka_topic='t'").unwrap_err();
        assert_eq!(e.to_string(), "line 1:46: Expected: ), found: EOF");
        let e = parse("SELECT * FROM s\nWHERE a > EMIT CHANGES").unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        let e = parse("CREATE STREM s").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1:8: Expected: STREAM or TABLE, found: STREM"
        );
        let e = parse("SELECT * FROM s WINDOW TUMBLING (SIZE 1 FORTNIGHT)").unwrap_err();
        assert!(e.to_string().contains("a time unit"), "{e}");
        assert!(parse("").is_err());
        assert!(parse(&"(".repeat(500)).is_err());
    }
}
