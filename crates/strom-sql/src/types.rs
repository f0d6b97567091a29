//! ksqlDB's SQL types and the typed values the evaluator works on.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A column type, as ksqlDB names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Boolean,
    Int,
    BigInt,
    Double,
    /// DECIMAL(precision, scale).
    Decimal(u32, u32),
    String,
    Timestamp,
    Array(Box<SqlType>),
    /// MAP<STRING, V> (ksqlDB's map keys are strings).
    Map(Box<SqlType>),
    Struct(Vec<(String, SqlType)>),
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::Int => f.write_str("INTEGER"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            SqlType::String => f.write_str("STRING"),
            SqlType::Timestamp => f.write_str("TIMESTAMP"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
            SqlType::Map(t) => write!(f, "MAP<STRING, {t}>"),
            SqlType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (n, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n} {t}")?;
                }
                f.write_str(">")
            }
        }
    }
}

impl SqlType {
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            SqlType::Int | SqlType::BigInt | SqlType::Double | SqlType::Decimal(..)
        )
    }
}

/// A value of a column or an expression. `Null` is SQL's NULL of any type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i32),
    BigInt(i64),
    Double(f64),
    /// Unscaled value and scale: `Decimal(12345, 2)` is 123.45.
    Decimal(i128, u32),
    String(String),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Array(Vec<Value>),
    Map(Vec<(String, Value)>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::BigInt(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            Value::Decimal(u, s) => Some(*u as f64 / 10f64.powi(*s as i32)),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i as i64),
            Value::BigInt(i) | Value::Timestamp(i) => Some(*i),
            Value::Double(d) => Some(*d as i64),
            Value::Decimal(u, s) => Some((*u / 10i128.saturating_pow(*s)) as i64),
            _ => None,
        }
    }

    /// SQL comparison: `None` when either side is NULL or the types do not compare.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => None,
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::BigInt(a), Value::BigInt(b)) => Some(a.cmp(b)),
            (Value::Int(_) | Value::BigInt(_), Value::Int(_) | Value::BigInt(_)) => {
                Some(self.as_i64()?.cmp(&other.as_i64()?))
            }
            (Value::Decimal(a, sa), Value::Decimal(b, sb)) => {
                let s = (*sa).max(*sb);
                Some(rescale(*a, *sa, s).cmp(&rescale(*b, *sb, s)))
            }
            (Value::Array(a), Value::Array(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.compare(y)? {
                        Ordering::Equal => {}
                        o => return Some(o),
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => self.as_f64()?.partial_cmp(&other.as_f64()?),
        }
    }

    /// The value as JSON, as ksqlDB writes rows (decimals as numbers, timestamps as
    /// milliseconds in topics; see [`Value::to_rest_json`] for REST).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::BigInt(i) | Value::Timestamp(i) => J::from(*i),
            Value::Double(d) => serde_json::Number::from_f64(*d)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Decimal(..) => {
                let s = self.to_string();
                s.parse::<serde_json::Number>()
                    .map(J::Number)
                    .unwrap_or(J::String(s))
            }
            Value::String(s) => J::String(s.clone()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Map(m) | Value::Struct(m) => {
                J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// The value as the REST API shows it: timestamps as ISO-8601 strings, as ksqlDB does.
    pub fn to_rest_json(&self) -> serde_json::Value {
        match self {
            Value::Timestamp(ms) => serde_json::Value::String(crate::time::format_iso(*ms)),
            Value::Array(a) => {
                serde_json::Value::Array(a.iter().map(Value::to_rest_json).collect())
            }
            Value::Map(m) | Value::Struct(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.to_rest_json()))
                    .collect(),
            ),
            v => v.to_json(),
        }
    }

    /// Reads a JSON value as `ty`; `None` if it does not fit.
    pub fn from_json(j: &serde_json::Value, ty: &SqlType) -> Option<Value> {
        use serde_json::Value as J;
        if j.is_null() {
            return Some(Value::Null);
        }
        Some(match ty {
            SqlType::Boolean => match j {
                J::Bool(b) => Value::Bool(*b),
                J::String(s) => Value::Bool(s.eq_ignore_ascii_case("true")),
                _ => return None,
            },
            SqlType::Int => Value::Int(match j {
                J::Number(n) => i32::try_from(n.as_i64()?).ok()?,
                J::String(s) => s.trim().parse().ok()?,
                _ => return None,
            }),
            SqlType::BigInt => Value::BigInt(match j {
                J::Number(n) => n.as_i64()?,
                J::String(s) => s.trim().parse().ok()?,
                _ => return None,
            }),
            SqlType::Timestamp => Value::Timestamp(match j {
                J::Number(n) => n.as_i64()?,
                J::String(s) => crate::time::parse_iso(s)?,
                _ => return None,
            }),
            SqlType::Double => Value::Double(match j {
                J::Number(n) => n.as_f64()?,
                J::String(s) => s.trim().parse().ok()?,
                _ => return None,
            }),
            SqlType::Decimal(_, scale) => match j {
                J::Number(n) => parse_decimal(&n.to_string(), *scale)?,
                J::String(s) => parse_decimal(s, *scale)?,
                _ => return None,
            },
            SqlType::String => Value::String(match j {
                J::String(s) => s.clone(),
                other => other.to_string(),
            }),
            SqlType::Array(t) => match j {
                J::Array(a) => Value::Array(
                    a.iter()
                        .map(|e| Value::from_json(e, t))
                        .collect::<Option<_>>()?,
                ),
                _ => return None,
            },
            SqlType::Map(t) => match j {
                J::Object(o) => Value::Map(
                    o.iter()
                        .map(|(k, v)| Some((k.clone(), Value::from_json(v, t)?)))
                        .collect::<Option<_>>()?,
                ),
                _ => return None,
            },
            SqlType::Struct(fields) => match j {
                J::Object(o) => Value::Struct(
                    fields
                        .iter()
                        .map(|(n, t)| {
                            let v = lookup_ci(o, n).unwrap_or(&J::Null);
                            Some((n.clone(), Value::from_json(v, t)?))
                        })
                        .collect::<Option<_>>()?,
                ),
                _ => return None,
            },
        })
    }
}

/// A JSON object's field by name, exact first, then case-insensitively (ksqlDB matches
/// JSON fields to columns ignoring case).
pub fn lookup_ci<'a>(
    o: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    o.get(name).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

pub fn rescale(unscaled: i128, from: u32, to: u32) -> i128 {
    if to >= from {
        unscaled.saturating_mul(10i128.saturating_pow(to - from))
    } else {
        let d = 10i128.saturating_pow(from - to);
        // Round half away from zero, as BigDecimal's HALF_UP.
        let q = unscaled / d;
        let r = unscaled % d;
        if r.unsigned_abs() * 2 >= d.unsigned_abs() {
            q + unscaled.signum()
        } else {
            q
        }
    }
}

/// Parses "123.45" into a decimal of `scale`.
pub fn parse_decimal(s: &str, scale: u32) -> Option<Value> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut unscaled: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add((c as u8 - b'0') as i128)?;
    }
    let v = rescale(unscaled, frac.len() as u32, scale);
    Some(Value::Decimal(if neg { -v } else { v }, scale))
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(i) => write!(f, "{i}"),
            Value::Timestamp(ms) => f.write_str(&crate::time::format_iso(*ms)),
            Value::Double(d) => {
                if d.fract() == 0.0 && d.abs() < 1e15 {
                    write!(f, "{d:.1}")
                } else {
                    write!(f, "{d}")
                }
            }
            Value::Decimal(u, s) => {
                if *s == 0 {
                    return write!(f, "{u}");
                }
                let neg = *u < 0;
                let digits = u.unsigned_abs().to_string();
                let s = *s as usize;
                let padded = if digits.len() <= s {
                    format!("{}{}", "0".repeat(s + 1 - digits.len()), digits)
                } else {
                    digits
                };
                let (i, fr) = padded.split_at(padded.len() - s);
                write!(f, "{}{i}.{fr}", if neg { "-" } else { "" })
            }
            Value::String(s) => f.write_str(s),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_print_and_compare() {
        let d = parse_decimal("12.345", 2).unwrap();
        assert_eq!(d, Value::Decimal(1235, 2));
        assert_eq!(d.to_string(), "12.35");
        assert_eq!(parse_decimal("-0.05", 2).unwrap().to_string(), "-0.05");
        assert_eq!(parse_decimal("x", 2), None);
        assert_eq!(
            Value::Decimal(150, 2).compare(&Value::Decimal(15, 1)),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn json_round_trip_by_type() {
        let ty = SqlType::Struct(vec![
            ("A".into(), SqlType::Int),
            ("B".into(), SqlType::Array(Box::new(SqlType::String))),
        ]);
        let j = serde_json::json!({"a": 1, "B": ["x"]});
        let v = Value::from_json(&j, &ty).unwrap();
        assert_eq!(v.to_json(), serde_json::json!({"A": 1, "B": ["x"]}));
        assert_eq!(
            Value::from_json(&serde_json::json!("z"), &SqlType::Int),
            None
        );
    }
}
