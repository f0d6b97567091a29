//! The input side of the `strom sql` shell: lines from a terminal through rustyline (line
//! editing, Up/Down through the history, Ctrl-R search, Ctrl-C clears the statement being
//! typed, Ctrl-D quits) or from piped standard input; statements gathered across lines
//! until a `;` outside quotes; each statement appended to the history file
//! (`~/.strom_sql_history`, one statement per line), which a terminal session loads at
//! start.

use std::io::{BufRead, Write};
use std::path::PathBuf;

/// What the user asked for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Complete statements (each ending in `;`), in order.
    Statements(Vec<String>),
    /// `history`: the saved statements, oldest first.
    History(Vec<String>),
    /// `exit`, `quit`, Ctrl-D or the end of the input.
    Exit,
}

enum Lines {
    Terminal(Box<rustyline::DefaultEditor>),
    Plain(Box<dyn BufRead>),
}

pub struct LineReader {
    lines: Lines,
    history: Option<PathBuf>,
    buf: String,
}

/// Splits text into complete statements (ending in `;` outside quotes) and the rest.
pub fn split_statements(buf: &str) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in buf.chars() {
        cur.push(c);
        match (quote, c) {
            (None, '\'' | '`' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => out.push(std::mem::take(&mut cur).trim().to_owned()),
            _ => {}
        }
    }
    (out, cur)
}

impl LineReader {
    /// Reads the terminal with line editing when standard input is one, else plain
    /// lines from standard input.
    pub fn stdin(history: Option<PathBuf>) -> LineReader {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            if let Ok(mut ed) = rustyline::DefaultEditor::new() {
                for l in history.as_deref().map(read_history).unwrap_or_default() {
                    let _ = ed.add_history_entry(l);
                }
                return LineReader {
                    lines: Lines::Terminal(Box::new(ed)),
                    history,
                    buf: String::new(),
                };
            }
        }
        LineReader::from_reader(Box::new(std::io::BufReader::new(std::io::stdin())), history)
    }

    /// Reads plain lines (piped input, tests).
    pub fn from_reader(r: Box<dyn BufRead>, history: Option<PathBuf>) -> LineReader {
        LineReader {
            lines: Lines::Plain(r),
            history,
            buf: String::new(),
        }
    }

    fn prompt(&self) -> &'static str {
        if self.buf.trim().is_empty() {
            "strom> "
        } else {
            "    -> "
        }
    }

    /// One line, `None` at the end of the input; Ctrl-C drops the statement being typed.
    fn line(&mut self) -> std::io::Result<Option<String>> {
        let prompt = self.prompt();
        match &mut self.lines {
            Lines::Plain(r) => {
                print!("{prompt}");
                std::io::stdout().flush()?;
                let mut line = String::new();
                Ok((r.read_line(&mut line)? > 0).then_some(line))
            }
            Lines::Terminal(ed) => match ed.readline(prompt) {
                Ok(l) => Ok(Some(l + "\n")),
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    self.buf.clear();
                    Ok(Some(String::new()))
                }
                Err(rustyline::error::ReadlineError::Eof) => Ok(None),
                Err(e) => Err(std::io::Error::other(e)),
            },
        }
    }

    /// Reads until complete statements, a shell command or the end of the input.
    pub fn read(&mut self) -> std::io::Result<Input> {
        loop {
            let Some(line) = self.line()? else {
                return Ok(Input::Exit);
            };
            if self.buf.trim().is_empty() {
                match line.trim().trim_end_matches(';').to_lowercase().as_str() {
                    "exit" | "quit" => return Ok(Input::Exit),
                    "history" => {
                        let h = self.history.as_deref().map(read_history);
                        return Ok(Input::History(h.unwrap_or_default()));
                    }
                    _ => {}
                }
            }
            self.buf.push_str(&line);
            let (stmts, rest) = split_statements(&self.buf);
            self.buf = rest;
            if stmts.is_empty() {
                continue;
            }
            for s in &stmts {
                let one_line = s.replace('\n', " ");
                if let Lines::Terminal(ed) = &mut self.lines {
                    let _ = ed.add_history_entry(one_line.as_str());
                }
                if let Some(p) = &self.history {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p);
                    if let Ok(mut f) = f {
                        let _ = writeln!(f, "{one_line}");
                    }
                }
            }
            return Ok(Input::Statements(stmts));
        }
    }
}

fn read_history(p: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_on_semicolons_outside_quotes() {
        let (s, rest) = split_statements("SHOW STREAMS;\nSELECT ';' FROM x\nEMIT CHANGES; SELECT");
        assert_eq!(s, ["SHOW STREAMS;", "SELECT ';' FROM x\nEMIT CHANGES;"]);
        assert_eq!(rest, " SELECT");
    }

    #[test]
    fn piped_lines_make_statements_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let hist = dir.path().join("history");
        std::fs::write(&hist, "SHOW TOPICS;\n").unwrap();
        let input = "SELECT a,\n  b FROM t\nEMIT CHANGES LIMIT 1;\nhistory\nSHOW STREAMS; SHOW\nTABLES;\nexit\nSHOW QUERIES;\n";
        let mut r = LineReader::from_reader(
            Box::new(std::io::Cursor::new(input.as_bytes().to_vec())),
            Some(hist.clone()),
        );
        assert_eq!(
            r.read().unwrap(),
            Input::Statements(vec!["SELECT a,\n  b FROM t\nEMIT CHANGES LIMIT 1;".into()])
        );
        assert_eq!(
            r.read().unwrap(),
            Input::History(vec![
                "SHOW TOPICS;".into(),
                "SELECT a,   b FROM t EMIT CHANGES LIMIT 1;".into()
            ])
        );
        assert_eq!(
            r.read().unwrap(),
            Input::Statements(vec!["SHOW STREAMS;".into()])
        );
        assert_eq!(
            r.read().unwrap(),
            Input::Statements(vec!["SHOW\nTABLES;".into()])
        );
        assert_eq!(r.read().unwrap(), Input::Exit);
        assert_eq!(
            std::fs::read_to_string(&hist).unwrap(),
            "SHOW TOPICS;\nSELECT a,   b FROM t EMIT CHANGES LIMIT 1;\nSHOW STREAMS;\nSHOW TABLES;\n"
        );
        let mut empty = LineReader::from_reader(Box::new(std::io::Cursor::new(Vec::new())), None);
        assert_eq!(empty.read().unwrap(), Input::Exit);
    }
}
