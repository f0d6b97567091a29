//! Timestamps: epoch milliseconds to and from calendar fields (UTC), and the subset of
//! Java's `SimpleDateFormat` patterns that ksqlDB's TIMESTAMPTOSTRING / STRINGTOTIMESTAMP
//! take: `yyyy MM dd HH mm ss SSS` and quoted literals.

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day, hour, minute, second, millisecond) of epoch milliseconds, UTC.
pub fn fields(ms: i64) -> [i64; 7] {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    [
        y,
        m,
        d,
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    ]
}

pub fn from_fields(f: [i64; 7]) -> i64 {
    days_from_civil(f[0], f[1], f[2]) * 86_400_000
        + f[3] * 3_600_000
        + f[4] * 60_000
        + f[5] * 1000
        + f[6]
}

/// `2021-01-02T03:04:05.006`, as ksqlDB's REST API shows TIMESTAMP values.
pub fn format_iso(ms: i64) -> String {
    let f = fields(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        f[0], f[1], f[2], f[3], f[4], f[5], f[6]
    )
}

/// Reads `yyyy-MM-dd['T'HH:mm[:ss[.SSS]]][Z]`.
pub fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once('T').unwrap_or((s, ""));
    let mut f = [0i64; 7];
    let dp: Vec<&str> = date.split('-').collect();
    if dp.len() != 3 {
        return None;
    }
    for i in 0..3 {
        f[i] = dp[i].parse().ok()?;
    }
    if !time.is_empty() {
        let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
        let tp: Vec<&str> = hms.split(':').collect();
        if tp.len() < 2 || tp.len() > 3 {
            return None;
        }
        for (i, p) in tp.iter().enumerate() {
            f[3 + i] = p.parse().ok()?;
        }
        let m3: String = millis.chars().chain("000".chars()).take(3).collect();
        f[6] = m3.parse().ok()?;
    }
    valid(&f).then(|| from_fields(f))
}

fn valid(f: &[i64; 7]) -> bool {
    (1..=12).contains(&f[1])
        && (1..=31).contains(&f[2])
        && (0..24).contains(&f[3])
        && (0..60).contains(&f[4])
        && (0..60).contains(&f[5])
        && (0..1000).contains(&f[6])
}

enum Piece {
    Field(usize, usize),
    Lit(String),
}

fn compile(pattern: &str) -> Result<Vec<Piece>, String> {
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
            if i >= chars.len() {
                return Err(format!("unterminated quote in pattern '{pattern}'"));
            }
            i += 1;
            out.push(Piece::Lit(if lit.is_empty() { "'".into() } else { lit }));
            continue;
        }
        if c.is_ascii_alphabetic() {
            let mut n = 0;
            while i + n < chars.len() && chars[i + n] == c {
                n += 1;
            }
            let field = match c {
                'y' => 0,
                'M' => 1,
                'd' => 2,
                'H' => 3,
                'm' => 4,
                's' => 5,
                'S' => 6,
                'X' if n == 1 => {
                    out.push(Piece::Lit("Z".into()));
                    i += n;
                    continue;
                }
                other => {
                    return Err(format!(
                        "pattern letter '{other}' is not supported in '{pattern}' (use yyyy MM dd HH mm ss SSS)"
                    ))
                }
            };
            out.push(Piece::Field(field, n));
            i += n;
        } else {
            out.push(Piece::Lit(c.to_string()));
            i += 1;
        }
    }
    Ok(out)
}

/// TIMESTAMPTOSTRING in UTC.
pub fn format_pattern(ms: i64, pattern: &str) -> Result<String, String> {
    let f = fields(ms);
    let mut s = String::new();
    for p in compile(pattern)? {
        match p {
            Piece::Lit(l) => s.push_str(&l),
            Piece::Field(i, n) => {
                let v = if i == 0 && n == 2 { f[0] % 100 } else { f[i] };
                s.push_str(&format!("{v:0n$}"));
            }
        }
    }
    Ok(s)
}

/// STRINGTOTIMESTAMP in UTC.
pub fn parse_pattern(text: &str, pattern: &str) -> Result<i64, String> {
    let bad = || format!("'{text}' does not match the pattern '{pattern}'");
    let mut f = [1970, 1, 1, 0, 0, 0, 0];
    let mut rest = text;
    let pieces = compile(pattern)?;
    for (idx, p) in pieces.iter().enumerate() {
        match p {
            Piece::Lit(l) => rest = rest.strip_prefix(l.as_str()).ok_or_else(bad)?,
            Piece::Field(i, n) => {
                // Fixed width when the next piece is a field too; otherwise digits run.
                let next_is_field = matches!(pieces.get(idx + 1), Some(Piece::Field(..)));
                let len = if next_is_field {
                    *n
                } else {
                    rest.chars().take_while(|c| c.is_ascii_digit()).count()
                };
                if len == 0 || len > rest.len() || !rest.is_char_boundary(len) {
                    return Err(bad());
                }
                let (d, r) = rest.split_at(len);
                f[*i] = d.parse().map_err(|_| bad())?;
                rest = r;
            }
        }
    }
    if !rest.is_empty() || !valid(&f) {
        return Err(bad());
    }
    Ok(from_fields(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_patterns() {
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000");
        let t = 1_609_556_645_006; // 2021-01-02T03:04:05.006
        assert_eq!(format_iso(t), "2021-01-02T03:04:05.006");
        assert_eq!(parse_iso("2021-01-02T03:04:05.006"), Some(t));
        assert_eq!(
            format_pattern(t, "yyyy-MM-dd HH:mm:ss.SSS").unwrap(),
            "2021-01-02 03:04:05.006"
        );
        assert_eq!(
            parse_pattern("2021-01-02 03:04:05.006", "yyyy-MM-dd HH:mm:ss.SSS").unwrap(),
            t
        );
        assert_eq!(
            parse_pattern("20210102", "yyyyMMdd").unwrap(),
            1_609_545_600_000
        );
        assert!(parse_pattern("2021-13-02", "yyyy-MM-dd").is_err());
        assert!(parse_pattern("é2021", "yyyyMMdd").is_err());
        assert!(format_pattern(t, "yyyy G").is_err());
        assert_eq!(format_iso(-1), "1969-12-31T23:59:59.999");
    }
}
