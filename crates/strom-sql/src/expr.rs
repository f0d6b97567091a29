//! The expression evaluator: sqlparser expressions compiled against a schema into a small
//! typed tree ([`CExpr`]) evaluated per row. Column references become indexes, types are
//! checked once at compile time, and aggregate calls become slots of an aggregation (see
//! `engine.rs`). Runtime failures (a bad cast, a division by zero) yield NULL, as in
//! ksqlDB, never a panic.

use std::cmp::Ordering;

use sqlparser::ast::{
    self as sql, AccessExpr, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Subscript, UnaryOperator,
};

use crate::parser::normalize_ident;
use crate::types::{parse_decimal, rescale, SqlType, Value};
use crate::{Result, SqlError};

/// One column visible to expressions: its source's name or alias (for `s.col`), its name
/// and type.
#[derive(Debug, Clone)]
pub struct ScopeCol {
    pub source: Option<String>,
    pub name: String,
    pub ty: SqlType,
}

#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub cols: Vec<ScopeCol>,
}

impl Scope {
    pub fn push(&mut self, source: Option<&str>, name: &str, ty: SqlType) {
        self.cols.push(ScopeCol {
            source: source.map(str::to_owned),
            name: name.to_owned(),
            ty,
        });
    }

    fn find(&self, source: Option<&str>, name: &str) -> Result<Option<usize>> {
        let hits: Vec<usize> = self
            .cols
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name == name && (source.is_none() || c.source.as_deref() == source))
            .map(|(i, _)| i)
            .collect();
        match hits.len() {
            0 => Ok(None),
            1 => Ok(Some(hits[0])),
            _ => Err(SqlError::stmt(format!(
                "Column '{name}' is ambiguous: qualify it with its source"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Concat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Ucase,
    Lcase,
    Len,
    Substring,
    Concat,
    ConcatWs,
    Trim,
    Ltrim,
    Rtrim,
    Replace,
    ExtractJsonField,
    TimestampToString,
    StringToTimestamp,
    FormatTimestamp,
    ParseTimestamp,
    Abs,
    Round,
    Floor,
    Ceil,
    Coalesce,
    IfNull,
    Split,
    Instr,
    ArrayLength,
    AsValue,
    UnixTimestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Count,
    CountStar,
    Sum,
    Avg,
    Min,
    Max,
    LatestByOffset,
    EarliestByOffset,
    CollectList,
    CollectSet,
}

impl AggKind {
    pub fn from_name(n: &str) -> Option<AggKind> {
        Some(match n {
            "COUNT" => AggKind::Count,
            "SUM" => AggKind::Sum,
            "AVG" => AggKind::Avg,
            "MIN" => AggKind::Min,
            "MAX" => AggKind::Max,
            "LATEST_BY_OFFSET" => AggKind::LatestByOffset,
            "EARLIEST_BY_OFFSET" => AggKind::EarliestByOffset,
            "COLLECT_LIST" => AggKind::CollectList,
            "COLLECT_SET" => AggKind::CollectSet,
            _ => return None,
        })
    }
}

/// One aggregate call of a GROUP BY query: what it folds, over which input expression.
#[derive(Debug, Clone)]
pub struct AggCall {
    pub kind: AggKind,
    pub arg: Option<CExpr>,
    pub arg_ty: SqlType,
    pub out_ty: SqlType,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum CExpr {
    Col(usize),
    Lit(Value),
    Neg(Box<CExpr>),
    Not(Box<CExpr>),
    Bin(BinOp, Box<CExpr>, Box<CExpr>),
    IsNull(Box<CExpr>, bool),
    Between(Box<CExpr>, Box<CExpr>, Box<CExpr>, bool),
    InList(Box<CExpr>, Vec<CExpr>, bool),
    Like(Box<CExpr>, Box<CExpr>, bool),
    Case {
        operand: Option<Box<CExpr>>,
        whens: Vec<(CExpr, CExpr)>,
        else_: Option<Box<CExpr>>,
    },
    Cast(Box<CExpr>, SqlType),
    Func(Func, Vec<CExpr>),
    Field(Box<CExpr>, String),
    Index(Box<CExpr>, Box<CExpr>),
    Array(Vec<CExpr>),
}

/// What a GROUP BY projection compiles against: the grouping expressions (by their text),
/// the input scope that aggregate arguments read, and the aggregate calls found so far.
/// The row an aggregated expression reads is `[ROWTIME, WINDOWSTART, WINDOWEND, keys...,
/// aggregates...]`.
pub struct AggContext<'a> {
    pub group_keys: Vec<(String, SqlType)>,
    pub input: &'a Scope,
    pub calls: Vec<AggCall>,
    /// Aggregate results start here; set once every call is known (see `finish`).
    pub windowed: bool,
}

pub const AGG_FIXED: usize = 3;

pub struct Compiler<'a> {
    pub scope: &'a Scope,
    pub agg: Option<AggContext<'a>>,
}

fn err<T>(m: impl Into<String>) -> Result<T> {
    Err(SqlError::stmt(m))
}

fn numeric_result(a: &SqlType, b: &SqlType) -> Option<SqlType> {
    use SqlType::*;
    Some(match (a, b) {
        (Int, Int) => Int,
        (Int | BigInt, Int | BigInt) => BigInt,
        (Double, _) | (_, Double) if a.is_numeric() && b.is_numeric() => Double,
        (Decimal(p1, s1), Decimal(p2, s2)) => Decimal((*p1).max(*p2).min(38), (*s1).max(*s2)),
        (Decimal(p, s), Int | BigInt) | (Int | BigInt, Decimal(p, s)) => Decimal(*p, *s),
        _ => return None,
    })
}

/// `CAST` target types by sqlparser's rendering of them.
pub fn parse_type_text(t: &str) -> Option<SqlType> {
    let u = t.trim().to_uppercase();
    Some(match u.as_str() {
        "INT" | "INTEGER" => SqlType::Int,
        "BIGINT" => SqlType::BigInt,
        "DOUBLE" | "FLOAT" | "REAL" | "DOUBLE PRECISION" => SqlType::Double,
        "BOOLEAN" | "BOOL" => SqlType::Boolean,
        "STRING" | "VARCHAR" | "TEXT" => SqlType::String,
        "TIMESTAMP" => SqlType::Timestamp,
        _ => {
            let inner = u.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
            let (p, s) = inner.split_once(',')?;
            let (p, s): (u32, u32) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
            if p == 0 || p > 38 || s > p {
                return None;
            }
            SqlType::Decimal(p, s)
        }
    })
}

impl<'a> Compiler<'a> {
    pub fn new(scope: &'a Scope) -> Compiler<'a> {
        Compiler { scope, agg: None }
    }

    pub fn compile(&mut self, e: &Expr) -> Result<(CExpr, SqlType)> {
        if let Some(ctx) = &self.agg {
            let text = e.to_string();
            if let Some(i) = ctx.group_keys.iter().position(|(t, _)| *t == text) {
                return Ok((CExpr::Col(AGG_FIXED + i), ctx.group_keys[i].1.clone()));
            }
        }
        match e {
            Expr::Nested(inner) => self.compile(inner),
            Expr::Identifier(i) => self.column(None, &normalize_ident(i)),
            Expr::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(normalize_ident).collect();
                self.compound(&names)
            }
            Expr::Value(v) => literal(&v.value),
            Expr::UnaryOp { op, expr } => {
                let (c, t) = self.compile(expr)?;
                match op {
                    UnaryOperator::Not => {
                        bool_type(&t, "NOT")?;
                        Ok((CExpr::Not(Box::new(c)), SqlType::Boolean))
                    }
                    UnaryOperator::Minus if t.is_numeric() => Ok((CExpr::Neg(Box::new(c)), t)),
                    UnaryOperator::Plus if t.is_numeric() => Ok((c, t)),
                    _ => err(format!("Unsupported unary operator {op} on {t}")),
                }
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let (c, _) = self.compile(x)?;
                Ok((
                    CExpr::IsNull(Box::new(c), matches!(e, Expr::IsNotNull(_))),
                    SqlType::Boolean,
                ))
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (a, _) = self.compile(expr)?;
                let (l, _) = self.compile(low)?;
                let (h, _) = self.compile(high)?;
                Ok((
                    CExpr::Between(Box::new(a), Box::new(l), Box::new(h), *negated),
                    SqlType::Boolean,
                ))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let (a, _) = self.compile(expr)?;
                let l = list
                    .iter()
                    .map(|x| self.compile(x).map(|c| c.0))
                    .collect::<Result<_>>()?;
                Ok((CExpr::InList(Box::new(a), l, *negated), SqlType::Boolean))
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                any: false,
                ..
            } => {
                let (a, ta) = self.compile(expr)?;
                let (p, tp) = self.compile(pattern)?;
                if ta != SqlType::String || tp != SqlType::String {
                    return err("LIKE needs STRING operands");
                }
                Ok((
                    CExpr::Like(Box::new(a), Box::new(p), *negated),
                    SqlType::Boolean,
                ))
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = match operand {
                    Some(o) => Some(Box::new(self.compile(o)?.0)),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut ty: Option<SqlType> = None;
                for w in conditions {
                    let (c, tc) = self.compile(&w.condition)?;
                    if operand.is_none() {
                        bool_type(&tc, "WHEN")?;
                    }
                    let (r, tr) = self.compile(&w.result)?;
                    ty = Some(unify(ty, tr)?);
                    whens.push((c, r));
                }
                let else_ = match else_result {
                    Some(x) => {
                        let (c, t) = self.compile(x)?;
                        ty = Some(unify(ty, t)?);
                        Some(Box::new(c))
                    }
                    None => None,
                };
                Ok((
                    CExpr::Case {
                        operand,
                        whens,
                        else_,
                    },
                    ty.unwrap_or(SqlType::String),
                ))
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                let (c, _) = self.compile(expr)?;
                let ty = parse_type_text(&data_type.to_string())
                    .ok_or_else(|| SqlError::stmt(format!("Cannot CAST to {data_type}")))?;
                Ok((CExpr::Cast(Box::new(c), ty.clone()), ty))
            }
            Expr::Array(a) => {
                let mut items = Vec::new();
                let mut ty = None;
                for x in &a.elem {
                    let (c, t) = self.compile(x)?;
                    ty = Some(unify(ty, t)?);
                    items.push(c);
                }
                Ok((
                    CExpr::Array(items),
                    SqlType::Array(Box::new(ty.unwrap_or(SqlType::String))),
                ))
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let (mut c, mut t) = self.compile(root)?;
                for a in access_chain {
                    (c, t) = match a {
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            let (i, _) = self.compile(index)?;
                            match t {
                                SqlType::Array(inner) => {
                                    (CExpr::Index(Box::new(c), Box::new(i)), *inner)
                                }
                                SqlType::Map(inner) => {
                                    (CExpr::Index(Box::new(c), Box::new(i)), *inner)
                                }
                                other => return err(format!("Cannot index into {other}")),
                            }
                        }
                        AccessExpr::Dot(Expr::Identifier(f)) => field(c, &t, &normalize_ident(f))?,
                        _ => return err(format!("Unsupported access in {e}")),
                    };
                }
                Ok((c, t))
            }
            Expr::Function(f) => self.function(f),
            Expr::Trim {
                expr,
                trim_where: None,
                trim_what: None,
                trim_characters: None,
            } => {
                let (c, t) = self.compile(expr)?;
                string_arg(&t, "TRIM")?;
                Ok((CExpr::Func(Func::Trim, vec![c]), SqlType::String))
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let (c, t) = self.compile(expr)?;
                string_arg(&t, "SUBSTRING")?;
                let mut args = vec![c];
                args.push(match substring_from {
                    Some(f) => self.compile(f)?.0,
                    None => CExpr::Lit(Value::Int(1)),
                });
                if let Some(l) = substring_for {
                    args.push(self.compile(l)?.0);
                }
                Ok((CExpr::Func(Func::Substring, args), SqlType::String))
            }
            Expr::Ceil { expr, .. } | Expr::Floor { expr, .. } => {
                let (c, t) = self.compile(expr)?;
                let f = if matches!(e, Expr::Ceil { .. }) {
                    Func::Ceil
                } else {
                    Func::Floor
                };
                Ok((CExpr::Func(f, vec![c]), t))
            }
            other => err(format!("Unsupported expression: {other}")),
        }
    }

    fn column(&mut self, source: Option<&str>, name: &str) -> Result<(CExpr, SqlType)> {
        if let Some(ctx) = &self.agg {
            let fixed = match name {
                "ROWTIME" => Some(0),
                "WINDOWSTART" if ctx.windowed => Some(1),
                "WINDOWEND" if ctx.windowed => Some(2),
                _ => None,
            };
            if let Some(i) = fixed {
                return Ok((CExpr::Col(i), SqlType::BigInt));
            }
            // A qualified reference to a grouping column matches it unqualified too.
            if let Some(i) = ctx.group_keys.iter().position(|(t, _)| {
                t.eq_ignore_ascii_case(name) || t.rsplit('.').next() == Some(name)
            }) {
                return Ok((CExpr::Col(AGG_FIXED + i), ctx.group_keys[i].1.clone()));
            }
            return err(format!(
                "Non-aggregate SELECT expression(s) not part of GROUP BY: {name}"
            ));
        }
        match self.scope.find(source, name)? {
            Some(i) => Ok((CExpr::Col(i), self.scope.cols[i].ty.clone())),
            None => err(format!(
                "Column '{}{name}' cannot be resolved.",
                source.map(|s| format!("{s}.")).unwrap_or_default()
            )),
        }
    }

    fn compound(&mut self, names: &[String]) -> Result<(CExpr, SqlType)> {
        let qualified = names.len() >= 2
            && self
                .scope
                .cols
                .iter()
                .any(|c| c.source.as_deref() == Some(names[0].as_str()));
        let (mut c, mut t, rest) = if qualified {
            let (c, t) = self.column(Some(&names[0]), &names[1])?;
            (c, t, &names[2..])
        } else {
            let (c, t) = self.column(None, &names[0])?;
            (c, t, &names[1..])
        };
        for f in rest {
            (c, t) = field(c, &t, f)?;
        }
        Ok((c, t))
    }

    fn binary(&mut self, l: &Expr, op: &BinaryOperator, r: &Expr) -> Result<(CExpr, SqlType)> {
        if *op == BinaryOperator::Arrow {
            // ksqlDB's struct dereference: `col->field`.
            let (c, t) = self.compile(l)?;
            let name = match r {
                Expr::Identifier(i) => normalize_ident(i),
                _ => return err(format!("Expected a field name after ->, found {r}")),
            };
            return field(c, &t, &name);
        }
        let (a, ta) = self.compile(l)?;
        let (b, tb) = self.compile(r)?;
        let bop = match op {
            BinaryOperator::Plus => BinOp::Add,
            BinaryOperator::Minus => BinOp::Sub,
            BinaryOperator::Multiply => BinOp::Mul,
            BinaryOperator::Divide => BinOp::Div,
            BinaryOperator::Modulo => BinOp::Mod,
            BinaryOperator::Eq => BinOp::Eq,
            BinaryOperator::NotEq => BinOp::Ne,
            BinaryOperator::Lt => BinOp::Lt,
            BinaryOperator::LtEq => BinOp::Le,
            BinaryOperator::Gt => BinOp::Gt,
            BinaryOperator::GtEq => BinOp::Ge,
            BinaryOperator::And => BinOp::And,
            BinaryOperator::Or => BinOp::Or,
            BinaryOperator::StringConcat => BinOp::Concat,
            other => return err(format!("Unsupported operator {other}")),
        };
        let ty = match bop {
            BinOp::Add if ta == SqlType::String && tb == SqlType::String => {
                return Ok((
                    CExpr::Bin(BinOp::Concat, Box::new(a), Box::new(b)),
                    SqlType::String,
                ))
            }
            BinOp::Concat => SqlType::String,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                numeric_result(&ta, &tb).ok_or_else(|| {
                    SqlError::stmt(format!(
                        "Error processing expression: {l} {op} {r}. Unsupported arithmetic types. {ta} {tb}"
                    ))
                })?
            }
            BinOp::And | BinOp::Or => {
                bool_type(&ta, "AND/OR")?;
                bool_type(&tb, "AND/OR")?;
                SqlType::Boolean
            }
            _ => {
                let comparable = ta == tb
                    || (ta.is_numeric() && tb.is_numeric())
                    || matches!(
                        (&ta, &tb),
                        (SqlType::Timestamp, SqlType::String | SqlType::BigInt)
                            | (SqlType::String | SqlType::BigInt, SqlType::Timestamp)
                    );
                if !comparable {
                    return err(format!(
                        "Cannot compare {l} ({ta}) to {r} ({tb}) with {op}."
                    ));
                }
                SqlType::Boolean
            }
        };
        Ok((CExpr::Bin(bop, Box::new(a), Box::new(b)), ty))
    }

    fn function(&mut self, f: &sql::Function) -> Result<(CExpr, SqlType)> {
        let name = f.name.to_string().to_uppercase();
        let mut star = false;
        let mut args: Vec<&Expr> = Vec::new();
        match &f.args {
            FunctionArguments::None => {}
            FunctionArguments::List(l) => {
                for a in &l.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                        _ => return err(format!("Unsupported argument in {f}")),
                    }
                }
            }
            FunctionArguments::Subquery(_) => return err("Subqueries are not supported"),
        }
        if let Some(kind) = AggKind::from_name(&name) {
            return self.aggregate(kind, star, &args, &name);
        }
        let mut cs = Vec::new();
        let mut ts = Vec::new();
        for a in &args {
            let (c, t) = self.compile(a)?;
            cs.push(c);
            ts.push(t);
        }
        use SqlType as T;
        let arity = |lo: usize, hi: usize| -> Result<()> {
            if ts.len() < lo || ts.len() > hi {
                err(format!(
                    "Function {name} takes {} arguments, got {}",
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo} to {hi}")
                    },
                    ts.len()
                ))
            } else {
                Ok(())
            }
        };
        let (func, ty) = match name.as_str() {
            "UCASE" | "UPPER" => (Func::Ucase, T::String),
            "LCASE" | "LOWER" => (Func::Lcase, T::String),
            "LEN" | "LENGTH" => (Func::Len, T::Int),
            "SUBSTRING" | "SUBSTR" => {
                arity(2, 3)?;
                (Func::Substring, T::String)
            }
            "CONCAT" => (Func::Concat, T::String),
            "CONCAT_WS" => (Func::ConcatWs, T::String),
            "TRIM" => (Func::Trim, T::String),
            "LTRIM" => (Func::Ltrim, T::String),
            "RTRIM" => (Func::Rtrim, T::String),
            "REPLACE" => {
                arity(3, 3)?;
                (Func::Replace, T::String)
            }
            "EXTRACTJSONFIELD" => {
                arity(2, 2)?;
                (Func::ExtractJsonField, T::String)
            }
            "TIMESTAMPTOSTRING" => {
                arity(2, 3)?;
                (Func::TimestampToString, T::String)
            }
            "STRINGTOTIMESTAMP" => {
                arity(2, 3)?;
                (Func::StringToTimestamp, T::BigInt)
            }
            "FORMAT_TIMESTAMP" => {
                arity(2, 3)?;
                (Func::FormatTimestamp, T::String)
            }
            "PARSE_TIMESTAMP" => {
                arity(2, 3)?;
                (Func::ParseTimestamp, T::Timestamp)
            }
            "ABS" => (Func::Abs, ts.first().cloned().unwrap_or(T::Double)),
            "ROUND" => (
                Func::Round,
                match ts.first() {
                    Some(T::Double) if ts.len() == 1 => T::BigInt,
                    Some(t) => t.clone(),
                    None => T::BigInt,
                },
            ),
            "FLOOR" => (Func::Floor, ts.first().cloned().unwrap_or(T::Double)),
            "CEIL" => (Func::Ceil, ts.first().cloned().unwrap_or(T::Double)),
            "COALESCE" | "IFNULL" => {
                let mut ty = None;
                for t in &ts {
                    ty = Some(unify(ty, t.clone())?);
                }
                (
                    if name == "IFNULL" {
                        arity(2, 2)?;
                        Func::IfNull
                    } else {
                        Func::Coalesce
                    },
                    ty.unwrap_or(T::String),
                )
            }
            "SPLIT" => {
                arity(2, 2)?;
                (Func::Split, T::Array(Box::new(T::String)))
            }
            "INSTR" => {
                arity(2, 2)?;
                (Func::Instr, T::Int)
            }
            "ARRAY_LENGTH" => {
                arity(1, 1)?;
                (Func::ArrayLength, T::Int)
            }
            "AS_VALUE" => {
                arity(1, 1)?;
                (Func::AsValue, ts[0].clone())
            }
            "UNIX_TIMESTAMP" => {
                arity(0, 1)?;
                (Func::UnixTimestamp, T::BigInt)
            }
            _ => return err(format!("Can't find any functions with the name '{name}'")),
        };
        if matches!(
            func,
            Func::Ucase
                | Func::Lcase
                | Func::Len
                | Func::Trim
                | Func::Ltrim
                | Func::Rtrim
                | Func::Abs
                | Func::Floor
                | Func::Ceil
        ) {
            arity(1, 1)?;
        }
        if matches!(func, Func::Round) {
            arity(1, 2)?;
        }
        Ok((CExpr::Func(func, cs), ty))
    }

    fn aggregate(
        &mut self,
        kind: AggKind,
        star: bool,
        args: &[&Expr],
        name: &str,
    ) -> Result<(CExpr, SqlType)> {
        let Some(ctx) = self.agg.as_mut() else {
            return err(format!(
                "Aggregate function {name} is only allowed in the projection or HAVING of a GROUP BY query"
            ));
        };
        let input = ctx.input;
        let (kind, arg, arg_ty) = if star || (kind == AggKind::Count && args.is_empty()) {
            if kind != AggKind::Count {
                return err(format!("{name}(*) is not supported"));
            }
            (AggKind::CountStar, None, SqlType::BigInt)
        } else {
            if args.len() != 1 {
                return err(format!(
                    "Function {name} takes 1 argument, got {}",
                    args.len()
                ));
            }
            let mut inner = Compiler::new(input);
            let (c, t) = inner.compile(args[0])?;
            (kind, Some(c), t)
        };
        let out_ty = match kind {
            AggKind::Count | AggKind::CountStar => SqlType::BigInt,
            AggKind::Avg => SqlType::Double,
            AggKind::Sum => {
                if !arg_ty.is_numeric() {
                    return err(format!("SUM needs a numeric argument, got {arg_ty}"));
                }
                arg_ty.clone()
            }
            AggKind::CollectList | AggKind::CollectSet => SqlType::Array(Box::new(arg_ty.clone())),
            _ => arg_ty.clone(),
        };
        if kind == AggKind::Avg && !arg_ty.is_numeric() {
            return err(format!("AVG needs a numeric argument, got {arg_ty}"));
        }
        let slot = ctx.calls.len();
        ctx.calls.push(AggCall {
            kind,
            arg,
            arg_ty,
            out_ty: out_ty.clone(),
        });
        // Aggregate results follow the keys: [fixed..., keys..., aggregates...].
        Ok((CExpr::Col(AGG_FIXED + ctx.group_keys.len() + slot), out_ty))
    }
}

fn field(c: CExpr, t: &SqlType, name: &str) -> Result<(CExpr, SqlType)> {
    match t {
        SqlType::Struct(fields) => {
            let (n, ft) = fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .ok_or_else(|| SqlError::stmt(format!("Struct has no field '{name}'")))?;
            Ok((CExpr::Field(Box::new(c), n.clone()), ft.clone()))
        }
        other => err(format!("Cannot dereference field '{name}' of {other}")),
    }
}

fn string_arg(t: &SqlType, f: &str) -> Result<()> {
    if *t == SqlType::String {
        Ok(())
    } else {
        err(format!("Function {f} needs a STRING argument, got {t}"))
    }
}

fn bool_type(t: &SqlType, what: &str) -> Result<()> {
    if *t == SqlType::Boolean {
        Ok(())
    } else {
        err(format!("{what} needs a BOOLEAN, got {t}"))
    }
}

fn unify(a: Option<SqlType>, b: SqlType) -> Result<SqlType> {
    match a {
        None => Ok(b),
        Some(a) if a == b => Ok(a),
        Some(a) => numeric_result(&a, &b)
            .ok_or_else(|| SqlError::stmt(format!("Mismatched types: {a} and {b}"))),
    }
}

fn literal(v: &sql::Value) -> Result<(CExpr, SqlType)> {
    let (v, t) = match v {
        sql::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i32>() {
                (Value::Int(i), SqlType::Int)
            } else if let Ok(i) = n.parse::<i64>() {
                (Value::BigInt(i), SqlType::BigInt)
            } else if n.contains(['e', 'E']) {
                let d: f64 = n
                    .parse()
                    .map_err(|_| SqlError::stmt(format!("Bad number {n}")))?;
                (Value::Double(d), SqlType::Double)
            } else {
                let scale = n.split_once('.').map(|(_, f)| f.len()).unwrap_or(0) as u32;
                let digits = n.chars().filter(char::is_ascii_digit).count() as u32;
                let d = parse_decimal(n, scale)
                    .ok_or_else(|| SqlError::stmt(format!("Bad number {n}")))?;
                (d, SqlType::Decimal(digits.clamp(1, 38), scale))
            }
        }
        sql::Value::SingleQuotedString(s) => (Value::String(s.clone()), SqlType::String),
        sql::Value::Boolean(b) => (Value::Bool(*b), SqlType::Boolean),
        sql::Value::Null => (Value::Null, SqlType::String),
        other => return err(format!("Unsupported literal {other}")),
    };
    Ok((CExpr::Lit(v), t))
}

fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn s(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn like(text: &[char], pat: &[char]) -> bool {
    match pat.first() {
        None => text.is_empty(),
        Some('%') => (0..=text.len()).any(|i| like(&text[i..], &pat[1..])),
        Some('_') => !text.is_empty() && like(&text[1..], &pat[1..]),
        Some(c) => text.first() == Some(c) && like(&text[1..], &pat[1..]),
    }
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Value {
    use Value as V;
    match (a, b) {
        (V::Null, _) | (_, V::Null) => V::Null,
        (V::Int(x), V::Int(y)) => match op {
            BinOp::Add => x.checked_add(*y).map(V::Int),
            BinOp::Sub => x.checked_sub(*y).map(V::Int),
            BinOp::Mul => x.checked_mul(*y).map(V::Int),
            BinOp::Div => x.checked_div(*y).map(V::Int),
            _ => x.checked_rem(*y).map(V::Int),
        }
        .unwrap_or(V::Null),
        (V::Int(_) | V::BigInt(_), V::Int(_) | V::BigInt(_)) => {
            let (x, y) = (a.as_i64().unwrap_or(0), b.as_i64().unwrap_or(0));
            match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                BinOp::Div => x.checked_div(y),
                _ => x.checked_rem(y),
            }
            .map(V::BigInt)
            .unwrap_or(V::Null)
        }
        (V::Double(_), _) | (_, V::Double(_)) => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                return V::Null;
            };
            V::Double(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                _ => x % y,
            })
        }
        (V::Decimal(..) | V::Int(_) | V::BigInt(_), V::Decimal(..) | V::Int(_) | V::BigInt(_)) => {
            let dec = |v: &Value| match v {
                V::Decimal(u, s) => (*u, *s),
                other => (other.as_i64().unwrap_or(0) as i128, 0),
            };
            let ((x, sx), (y, sy)) = (dec(a), dec(b));
            let sc = sx.max(sy);
            let (x, y) = (rescale(x, sx, sc), rescale(y, sy, sc));
            match op {
                BinOp::Add => x.checked_add(y).map(|r| V::Decimal(r, sc)),
                BinOp::Sub => x.checked_sub(y).map(|r| V::Decimal(r, sc)),
                BinOp::Mul => x
                    .checked_mul(y)
                    .map(|r| V::Decimal(rescale(r, sc * 2, sc), sc)),
                BinOp::Div => 10i128
                    .checked_pow(sc)
                    .and_then(|m| x.checked_mul(m))
                    .and_then(|n| n.checked_div(y))
                    .map(|r| V::Decimal(r, sc)),
                _ => x.checked_rem(y).map(|r| V::Decimal(r, sc)),
            }
            .unwrap_or(V::Null)
        }
        _ => V::Null,
    }
}

/// CAST semantics: NULL when the value does not convert.
pub fn cast(v: Value, ty: &SqlType) -> Value {
    use Value as V;
    if v.is_null() {
        return V::Null;
    }
    match ty {
        SqlType::String => V::String(v.to_string()),
        SqlType::Boolean => match v {
            V::Bool(b) => V::Bool(b),
            V::String(s) => match s.trim().to_lowercase().as_str() {
                "true" | "yes" | "t" | "y" => V::Bool(true),
                "false" | "no" | "f" | "n" => V::Bool(false),
                _ => V::Null,
            },
            _ => V::Null,
        },
        SqlType::Int | SqlType::BigInt | SqlType::Timestamp => {
            let n = match &v {
                V::String(s) => s.trim().parse::<i64>().ok(),
                V::Bool(_) => None,
                other => other.as_i64(),
            };
            match (ty, n) {
                (_, None) => V::Null,
                (SqlType::Int, Some(n)) => i32::try_from(n).map(V::Int).unwrap_or(V::Null),
                (SqlType::BigInt, Some(n)) => V::BigInt(n),
                (_, Some(n)) => V::Timestamp(n),
            }
        }
        SqlType::Double => match &v {
            V::String(s) => s.trim().parse().map(V::Double).unwrap_or(V::Null),
            other => other.as_f64().map(V::Double).unwrap_or(V::Null),
        },
        SqlType::Decimal(_, scale) => match &v {
            V::Decimal(u, s) => V::Decimal(rescale(*u, *s, *scale), *scale),
            V::String(s) => parse_decimal(s, *scale).unwrap_or(V::Null),
            V::Int(_) | V::BigInt(_) => {
                V::Decimal(rescale(v.as_i64().unwrap_or(0) as i128, 0, *scale), *scale)
            }
            V::Double(d) => parse_decimal(&format!("{d}"), *scale).unwrap_or(V::Null),
            _ => V::Null,
        },
        _ => v,
    }
}

/// `$.a.b[0]` paths of EXTRACTJSONFIELD.
fn json_path<'j>(j: &'j serde_json::Value, path: &str) -> Option<&'j serde_json::Value> {
    let path = path.trim().strip_prefix('$')?;
    let mut cur = j;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let key = r[..end].trim();
            cur = if let Ok(i) = key.parse::<usize>() {
                cur.get(i)?
            } else {
                cur.get(key.trim_matches(['\'', '"']))?
            };
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

impl CExpr {
    /// Evaluates against a row laid out as the scope it was compiled for.
    pub fn eval(&self, row: &[Value]) -> Value {
        use Value as V;
        match self {
            CExpr::Col(i) => row.get(*i).cloned().unwrap_or(V::Null),
            CExpr::Lit(v) => v.clone(),
            CExpr::Neg(x) => match x.eval(row) {
                V::Int(i) => i.checked_neg().map(V::Int).unwrap_or(V::Null),
                V::BigInt(i) => i.checked_neg().map(V::BigInt).unwrap_or(V::Null),
                V::Double(d) => V::Double(-d),
                V::Decimal(u, s) => u.checked_neg().map(|n| V::Decimal(n, s)).unwrap_or(V::Null),
                _ => V::Null,
            },
            CExpr::Not(x) => truthy(&x.eval(row)).map(|b| V::Bool(!b)).unwrap_or(V::Null),
            CExpr::Bin(op, a, b) => {
                match op {
                    BinOp::And => {
                        let l = truthy(&a.eval(row));
                        if l == Some(false) {
                            return V::Bool(false);
                        }
                        let r = truthy(&b.eval(row));
                        return match (l, r) {
                            (_, Some(false)) => V::Bool(false),
                            (Some(true), Some(true)) => V::Bool(true),
                            _ => V::Null,
                        };
                    }
                    BinOp::Or => {
                        let l = truthy(&a.eval(row));
                        if l == Some(true) {
                            return V::Bool(true);
                        }
                        let r = truthy(&b.eval(row));
                        return match (l, r) {
                            (_, Some(true)) => V::Bool(true),
                            (Some(false), Some(false)) => V::Bool(false),
                            _ => V::Null,
                        };
                    }
                    _ => {}
                }
                let (x, y) = (a.eval(row), b.eval(row));
                match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                        arith(*op, &x, &y)
                    }
                    BinOp::Concat => match (x, y) {
                        (V::Null, _) | (_, V::Null) => V::Null,
                        (x, y) => V::String(format!("{x}{y}")),
                    },
                    _ => {
                        let (x, y) = coerce_ts(x, y);
                        let Some(o) = x.compare(&y) else {
                            return V::Null;
                        };
                        V::Bool(match op {
                            BinOp::Eq => o == Ordering::Equal,
                            BinOp::Ne => o != Ordering::Equal,
                            BinOp::Lt => o == Ordering::Less,
                            BinOp::Le => o != Ordering::Greater,
                            BinOp::Gt => o == Ordering::Greater,
                            _ => o != Ordering::Less,
                        })
                    }
                }
            }
            CExpr::IsNull(x, negated) => V::Bool(x.eval(row).is_null() != *negated),
            CExpr::Between(x, lo, hi, negated) => {
                let v = x.eval(row);
                match (v.compare(&lo.eval(row)), v.compare(&hi.eval(row))) {
                    (Some(a), Some(b)) => {
                        V::Bool((a != Ordering::Less && b != Ordering::Greater) != *negated)
                    }
                    _ => V::Null,
                }
            }
            CExpr::InList(x, list, negated) => {
                let v = x.eval(row);
                if v.is_null() {
                    return V::Null;
                }
                let found = list
                    .iter()
                    .any(|e| v.compare(&e.eval(row)) == Some(Ordering::Equal));
                V::Bool(found != *negated)
            }
            CExpr::Like(x, p, negated) => match (x.eval(row), p.eval(row)) {
                (V::String(t), V::String(p)) => {
                    let t: Vec<char> = t.chars().collect();
                    let p: Vec<char> = p.chars().collect();
                    V::Bool(like(&t, &p) != *negated)
                }
                _ => V::Null,
            },
            CExpr::Case {
                operand,
                whens,
                else_,
            } => {
                let op = operand.as_ref().map(|o| o.eval(row));
                for (c, r) in whens {
                    let hit = match &op {
                        Some(v) => v.compare(&c.eval(row)) == Some(Ordering::Equal),
                        None => truthy(&c.eval(row)) == Some(true),
                    };
                    if hit {
                        return r.eval(row);
                    }
                }
                else_.as_ref().map(|e| e.eval(row)).unwrap_or(V::Null)
            }
            CExpr::Cast(x, ty) => cast(x.eval(row), ty),
            CExpr::Field(x, name) => match x.eval(row) {
                V::Struct(fields) => fields
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .unwrap_or(V::Null),
                _ => V::Null,
            },
            CExpr::Index(x, i) => match (x.eval(row), i.eval(row)) {
                (V::Array(a), i) => {
                    // ksqlDB arrays are 1-based; negative indexes count from the end.
                    let Some(i) = i.as_i64() else {
                        return V::Null;
                    };
                    let idx = if i > 0 {
                        i - 1
                    } else if i < 0 {
                        a.len() as i64 + i
                    } else {
                        return V::Null;
                    };
                    usize::try_from(idx)
                        .ok()
                        .and_then(|i| a.get(i).cloned())
                        .unwrap_or(V::Null)
                }
                (V::Map(m), V::String(k)) => m
                    .into_iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v)
                    .unwrap_or(V::Null),
                _ => V::Null,
            },
            CExpr::Array(items) => V::Array(items.iter().map(|e| e.eval(row)).collect()),
            CExpr::Func(f, args) => {
                let vals: Vec<Value> = args.iter().map(|a| a.eval(row)).collect();
                call(*f, vals)
            }
        }
    }

    /// WHERE / HAVING: true only when the predicate is TRUE (NULL filters out).
    pub fn test(&self, row: &[Value]) -> bool {
        matches!(self.eval(row), Value::Bool(true))
    }
}

/// Comparing a TIMESTAMP with a string literal reads the string as a timestamp.
fn coerce_ts(x: Value, y: Value) -> (Value, Value) {
    match (&x, &y) {
        (Value::Timestamp(_), Value::String(s)) => {
            let t = crate::time::parse_iso(s)
                .map(Value::Timestamp)
                .unwrap_or(Value::Null);
            (x, t)
        }
        (Value::String(s), Value::Timestamp(_)) => {
            let t = crate::time::parse_iso(s)
                .map(Value::Timestamp)
                .unwrap_or(Value::Null);
            (t, y)
        }
        (Value::Timestamp(a), Value::BigInt(_)) => (Value::BigInt(*a), y),
        (Value::BigInt(_), Value::Timestamp(b)) => (x, Value::BigInt(*b)),
        _ => (x, y),
    }
}

fn call(f: Func, v: Vec<Value>) -> Value {
    use Value as V;
    let str_arg = |i: usize| v.get(i).and_then(s);
    match f {
        Func::Coalesce => v.into_iter().find(|x| !x.is_null()).unwrap_or(V::Null),
        Func::IfNull => v.into_iter().find(|x| !x.is_null()).unwrap_or(V::Null),
        Func::Concat => {
            let mut out = String::new();
            for x in &v {
                if !x.is_null() {
                    out.push_str(&x.to_string());
                }
            }
            V::String(out)
        }
        Func::ConcatWs => {
            let Some(sep) = str_arg(0) else {
                return V::Null;
            };
            let parts: Vec<String> = v[1..]
                .iter()
                .filter(|x| !x.is_null())
                .map(|x| x.to_string())
                .collect();
            V::String(parts.join(sep))
        }
        Func::UnixTimestamp => match v.first() {
            Some(V::Timestamp(t)) => V::BigInt(*t),
            Some(_) => V::Null,
            None => V::BigInt(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0),
            ),
        },
        _ if v.iter().any(Value::is_null) => V::Null,
        Func::AsValue => v.into_iter().next().unwrap_or(V::Null),
        Func::Ucase => str_arg(0)
            .map(|x| V::String(x.to_uppercase()))
            .unwrap_or(V::Null),
        Func::Lcase => str_arg(0)
            .map(|x| V::String(x.to_lowercase()))
            .unwrap_or(V::Null),
        Func::Len => str_arg(0)
            .map(|x| V::Int(x.chars().count() as i32))
            .unwrap_or(V::Null),
        Func::Trim => str_arg(0)
            .map(|x| V::String(x.trim().into()))
            .unwrap_or(V::Null),
        Func::Ltrim => str_arg(0)
            .map(|x| V::String(x.trim_start().into()))
            .unwrap_or(V::Null),
        Func::Rtrim => str_arg(0)
            .map(|x| V::String(x.trim_end().into()))
            .unwrap_or(V::Null),
        Func::Substring => {
            let Some(x) = str_arg(0) else {
                return V::Null;
            };
            let chars: Vec<char> = x.chars().collect();
            let n = chars.len() as i64;
            let pos = v[1].as_i64().unwrap_or(1);
            // 1-based; negative counts from the end.
            let start = if pos > 0 {
                pos - 1
            } else if pos < 0 {
                (n + pos).max(0)
            } else {
                0
            };
            let len = v.get(2).and_then(Value::as_i64).unwrap_or(n);
            let start = start.clamp(0, n) as usize;
            let end = (start as i64 + len.max(0)).clamp(0, n) as usize;
            V::String(chars[start..end].iter().collect())
        }
        Func::Replace => match (str_arg(0), str_arg(1), str_arg(2)) {
            (Some(a), Some(b), Some(c)) => V::String(a.replace(b, c)),
            _ => V::Null,
        },
        Func::Instr => match (str_arg(0), str_arg(1)) {
            (Some(a), Some(b)) => V::Int(
                a.find(b)
                    .map(|i| a[..i].chars().count() as i32 + 1)
                    .unwrap_or(0),
            ),
            _ => V::Null,
        },
        Func::Split => match (str_arg(0), str_arg(1)) {
            (Some(a), Some("")) => V::Array(a.chars().map(|c| V::String(c.to_string())).collect()),
            (Some(a), Some(d)) => V::Array(a.split(d).map(|p| V::String(p.into())).collect()),
            _ => V::Null,
        },
        Func::ArrayLength => match &v[0] {
            V::Array(a) => V::Int(a.len() as i32),
            _ => V::Null,
        },
        Func::ExtractJsonField => {
            let (Some(j), Some(p)) = (str_arg(0), str_arg(1)) else {
                return V::Null;
            };
            let Ok(j) = serde_json::from_str::<serde_json::Value>(j) else {
                return V::Null;
            };
            match json_path(&j, p) {
                Some(serde_json::Value::String(s)) => V::String(s.clone()),
                Some(serde_json::Value::Null) | None => V::Null,
                Some(other) => V::String(other.to_string()),
            }
        }
        Func::TimestampToString | Func::FormatTimestamp => {
            let Some(ms) = v[0].as_i64() else {
                return V::Null;
            };
            if !utc(v.get(2)) {
                return V::Null;
            }
            str_arg(1)
                .and_then(|p| crate::time::format_pattern(ms, p).ok())
                .map(V::String)
                .unwrap_or(V::Null)
        }
        Func::StringToTimestamp | Func::ParseTimestamp => {
            if !utc(v.get(2)) {
                return V::Null;
            }
            match (str_arg(0), str_arg(1)) {
                (Some(t), Some(p)) => match crate::time::parse_pattern(t, p) {
                    Ok(ms) if f == Func::ParseTimestamp => V::Timestamp(ms),
                    Ok(ms) => V::BigInt(ms),
                    Err(_) => V::Null,
                },
                _ => V::Null,
            }
        }
        Func::Abs => match &v[0] {
            V::Int(i) => V::Int(i.wrapping_abs()),
            V::BigInt(i) => V::BigInt(i.wrapping_abs()),
            V::Double(d) => V::Double(d.abs()),
            V::Decimal(u, s) => u
                .checked_abs()
                .map(|a| V::Decimal(a, *s))
                .unwrap_or(V::Null),
            _ => V::Null,
        },
        Func::Floor | Func::Ceil | Func::Round => match &v[0] {
            V::Double(d) => {
                let places = v.get(1).and_then(Value::as_i64);
                match (f, places) {
                    (Func::Floor, _) => V::Double(d.floor()),
                    (Func::Ceil, _) => V::Double(d.ceil()),
                    (_, None) => V::BigInt(d.round() as i64),
                    (_, Some(p)) => {
                        let m = 10f64.powi(p as i32);
                        V::Double((d * m).round() / m)
                    }
                }
            }
            V::Decimal(u, s) => {
                let to = match f {
                    Func::Round => v.get(1).and_then(Value::as_i64).unwrap_or(0).max(0) as u32,
                    _ => 0,
                };
                if to >= *s {
                    return V::Decimal(*u, *s);
                }
                let d = 10i128.saturating_pow(s - to);
                let q = match f {
                    Func::Floor => u.div_euclid(d),
                    Func::Ceil => u.saturating_neg().div_euclid(d).saturating_neg(),
                    _ => rescale(*u, *s, to),
                };
                V::Decimal(rescale(q, to, *s), *s)
            }
            other => other.clone(),
        },
    }
}

/// Only UTC is known (no time zone database): another zone yields NULL.
fn utc(tz: Option<&Value>) -> bool {
    match tz {
        None => true,
        Some(Value::String(z)) => {
            matches!(z.to_uppercase().as_str(), "UTC" | "GMT" | "Z" | "ETC/UTC")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, scope: &Scope, row: &[Value]) -> Result<Value> {
        let mut p = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
            .try_with_sql(src)
            .map_err(|e| SqlError::parse(e.to_string()))?;
        let e = p.parse_expr().map_err(|e| SqlError::parse(e.to_string()))?;
        let (c, _) = Compiler::new(scope).compile(&e)?;
        Ok(c.eval(row))
    }

    fn scope() -> (Scope, Vec<Value>) {
        let mut s = Scope::default();
        s.push(Some("S"), "NAME", SqlType::String);
        s.push(Some("S"), "AGE", SqlType::Int);
        s.push(Some("S"), "SCORE", SqlType::Double);
        s.push(Some("S"), "J", SqlType::String);
        s.push(Some("S"), "TS", SqlType::BigInt);
        (
            s,
            vec![
                Value::String(" Alice ".into()),
                Value::Int(30),
                Value::Double(2.5),
                Value::String(r#"{"a":{"b":[1,"x"]}}"#.into()),
                Value::BigInt(1_609_459_200_000),
            ],
        )
    }

    #[test]
    fn expressions_evaluate_like_ksqldb() {
        let (s, r) = scope();
        let cases: &[(&str, Value)] = &[
            ("age + 1", Value::Int(31)),
            ("age * score", Value::Double(75.0)),
            ("age / 0", Value::Null),
            ("age > 18 AND name IS NOT NULL", Value::Bool(true)),
            ("UCASE(TRIM(name))", Value::String("ALICE".into())),
            ("LEN(name)", Value::Int(7)),
            ("SUBSTRING(TRIM(name), 2, 3)", Value::String("lic".into())),
            (
                "CONCAT(TRIM(name), '-', age)",
                Value::String("Alice-30".into()),
            ),
            ("REPLACE(name, 'A', 'a')", Value::String(" alice ".into())),
            ("EXTRACTJSONFIELD(j, '$.a.b[1]')", Value::String("x".into())),
            ("EXTRACTJSONFIELD(j, '$.missing')", Value::Null),
            (
                "CASE WHEN age < 18 THEN 'minor' ELSE 'adult' END",
                Value::String("adult".into()),
            ),
            ("CASE age WHEN 30 THEN 1 END", Value::Int(1)),
            ("CAST(age AS STRING)", Value::String("30".into())),
            ("CAST('12' AS BIGINT) + 1", Value::BigInt(13)),
            ("CAST('x' AS INT)", Value::Null),
            ("CAST(score AS DECIMAL(4, 2))", Value::Decimal(250, 2)),
            ("CAST(1 AS DECIMAL(38, 38)) / 3", Value::Null),
            (
                "TIMESTAMPTOSTRING(ts, 'yyyy-MM-dd HH:mm')",
                Value::String("2021-01-01 00:00".into()),
            ),
            (
                "STRINGTOTIMESTAMP('2021-01-01', 'yyyy-MM-dd')",
                Value::BigInt(1_609_459_200_000),
            ),
            ("s.age BETWEEN 20 AND 30", Value::Bool(true)),
            ("age IN (1, 2)", Value::Bool(false)),
            ("TRIM(name) LIKE 'A%e'", Value::Bool(true)),
            ("1.5 + 1", Value::Decimal(25, 1)),
            ("NOT (age = 30)", Value::Bool(false)),
            ("-age % 7", Value::Int(-2)),
            ("SPLIT('a,b', ',')[2]", Value::String("b".into())),
        ];
        for (src, want) in cases {
            assert_eq!(&eval(src, &s, &r).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn compile_errors_are_clear() {
        let (s, r) = scope();
        let e = eval("nope + 1", &s, &r).unwrap_err();
        assert_eq!(e.to_string(), "Column 'NOPE' cannot be resolved.");
        let e = eval("name + 1", &s, &r).unwrap_err();
        assert!(
            e.to_string().contains("Unsupported arithmetic types"),
            "{e}"
        );
        let e = eval("FOO(1)", &s, &r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Can't find any functions with the name 'FOO'"
        );
        let e = eval("COUNT(*)", &s, &r).unwrap_err();
        assert!(e.to_string().contains("GROUP BY"), "{e}");
        let e = eval("name = 1", &s, &r).unwrap_err();
        assert!(e.to_string().contains("Cannot compare"), "{e}");
    }
}
