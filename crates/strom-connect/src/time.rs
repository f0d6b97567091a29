//! Calendar arithmetic and the subset of Java's `SimpleDateFormat` patterns the timestamp
//! transforms use (`yyyy yy MM dd HH mm ss SSS`, quoted literals), always in UTC as Kafka's
//! transforms format them.

use crate::error::{ConnectError, Result};

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// One element of a parsed pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    Field(char, usize),
}

fn tokenize(pattern: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                lit.push(chars[i]);
                i += 1;
            }
            if lit.is_empty() {
                lit.push('\'');
            }
            out.push(Token::Literal(lit));
            i += 1;
        } else if c.is_ascii_alphabetic() {
            if !"yMdHmsS".contains(c) {
                return Err(ConnectError::InvalidConfig(format!(
                    "Illegal pattern character '{c}' in {pattern}"
                )));
            }
            let start = i;
            while i < chars.len() && chars[i] == c {
                i += 1;
            }
            out.push(Token::Field(c, i - start));
        } else {
            out.push(Token::Literal(c.to_string()));
            i += 1;
        }
    }
    Ok(out)
}

/// A checked date pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    tokens: Vec<Token>,
}

impl DateFormat {
    pub fn new(pattern: &str) -> Result<DateFormat> {
        Ok(DateFormat {
            tokens: tokenize(pattern)?,
        })
    }

    /// Formats epoch milliseconds in UTC.
    pub fn format(&self, millis: i64) -> String {
        let days = millis.div_euclid(86_400_000);
        let ms_of_day = millis.rem_euclid(86_400_000);
        let (y, mo, d) = civil_from_days(days);
        let mut out = String::new();
        for t in &self.tokens {
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Field(c, n) => {
                    let v = match c {
                        'y' if *n == 2 => y.rem_euclid(100),
                        'y' => y,
                        'M' => mo as i64,
                        'd' => d as i64,
                        'H' => ms_of_day / 3_600_000,
                        'm' => ms_of_day / 60_000 % 60,
                        's' => ms_of_day / 1000 % 60,
                        _ => ms_of_day % 1000,
                    };
                    out.push_str(&format!("{v:0width$}", width = *n));
                }
            }
        }
        out
    }

    /// Parses text in this pattern (UTC) into epoch milliseconds.
    pub fn parse(&self, text: &str) -> Result<i64> {
        let bad = || {
            ConnectError::Data(format!(
                "Could not parse timestamp: value ({text}) does not match pattern"
            ))
        };
        let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) =
            (1970i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0i64);
        let mut rest = text;
        for (i, t) in self.tokens.iter().enumerate() {
            match t {
                Token::Literal(l) => rest = rest.strip_prefix(l.as_str()).ok_or_else(bad)?,
                Token::Field(c, n) => {
                    // A field followed by another field has a fixed width; otherwise read digits.
                    let fixed = matches!(self.tokens.get(i + 1), Some(Token::Field(..)));
                    let len = if fixed {
                        *n
                    } else {
                        rest.chars().take_while(|c| c.is_ascii_digit()).count()
                    };
                    let digits = rest.get(..len).filter(|d| !d.is_empty()).ok_or_else(bad)?;
                    let v: i64 = digits.parse().map_err(|_| bad())?;
                    rest = &rest[len..];
                    match c {
                        'y' => y = v,
                        'M' => mo = u32::try_from(v).map_err(|_| bad())?,
                        'd' => d = u32::try_from(v).map_err(|_| bad())?,
                        'H' => h = v,
                        'm' => mi = v,
                        's' => s = v,
                        _ => ms = v,
                    }
                }
            }
        }
        let in_range = (-999_999..=999_999).contains(&y)
            && (1..=12).contains(&mo)
            && (1..=31).contains(&d)
            && (0..=23).contains(&h)
            && (0..=59).contains(&mi)
            && (0..=60).contains(&s)
            && (0..=999).contains(&ms);
        if !rest.is_empty() || !in_range {
            return Err(bad());
        }
        Ok(days_from_civil(y, mo, d) * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        let f = DateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSS").unwrap();
        // 2021-03-04T05:06:07.089Z
        let ms = 1_614_834_367_089;
        assert_eq!(f.format(ms), "2021-03-04T05:06:07.089");
        assert_eq!(f.parse("2021-03-04T05:06:07.089").unwrap(), ms);
        assert_eq!(DateFormat::new("yyyyMMdd").unwrap().format(0), "19700101");
        assert_eq!(
            DateFormat::new("yyyyMMdd")
                .unwrap()
                .parse("20240229")
                .unwrap(),
            days_from_civil(2024, 2, 29) * 86_400_000
        );
        assert!(f.parse("2021-03-04").is_err());
        // Bad input is an error, never a panic (no overflow, no split characters).
        assert!(f.parse("99999999999999999-03-04T05:06:07.089").is_err());
        assert!(f.parse("2021-03-04T25:06:07.089").is_err());
        assert!(DateFormat::new("yyyyMMdd")
            .unwrap()
            .parse("202é0101")
            .is_err());
        assert_eq!(DateFormat::new("yyyy").unwrap().format(i64::MAX).len(), 9);
        assert!(DateFormat::new("yyyy-QQ").is_err());
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
