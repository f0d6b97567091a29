//! A reader for Java `.properties` text as Kafka's `server.properties` uses it: `key=value`,
//! `key: value` or `key value`, `#`/`!` comments, blank lines, `\` line continuation and the
//! usual escapes. Pure function over text; no file I/O here.

/// A syntax error at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesSyntaxError {
    pub line: usize,
    pub reason: String,
}

/// Parses properties text into `(line, key, value)` in file order (later duplicates win when
/// the caller folds them into a map, as in Java). Values are trimmed on both sides.
pub fn parse_properties(text: &str) -> Result<Vec<(usize, String, String)>, PropertiesSyntaxError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let start_line = index + 1;
        let mut logical = first.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|reason| PropertiesSyntaxError {
            line: start_line,
            reason,
        })?;
        let value = unescape(value).map_err(|reason| PropertiesSyntaxError {
            line: start_line,
            reason,
        })?;
        out.push((start_line, key, value.trim().to_string()));
    }
    Ok(out)
}

/// A line continues when it ends in an odd number of backslashes.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or whitespace; whitespace around the separator goes.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (&line[..i], rest.trim_start());
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\u escape '\\u{hex}'"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_properties(text)
            .unwrap()
            .into_iter()
            .map(|(_, k, v)| (k, v))
            .collect()
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# comment\n! also comment\n\n  a=1\nb : 2\nc 3\nd=\ne = x = y \n";
        let expected = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", ""),
            ("e", "x = y"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs(text), expected);
    }

    #[test]
    fn continuation_and_escapes() {
        let text = "listeners=PLAINTEXT://:9092,\\\n    CONTROLLER://:9093\nk\\=ey=v\\u0041\\\\\n";
        let got = pairs(text);
        assert_eq!(got[0].1, "PLAINTEXT://:9092,CONTROLLER://:9093");
        assert_eq!(got[1], ("k=ey".to_string(), "vA\\".to_string()));
        let err = parse_properties("\n\nx=\\uZZ").unwrap_err();
        assert_eq!(err.line, 3);
    }
}
