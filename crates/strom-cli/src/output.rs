//! Output for the client subcommands: an aligned text table by default, JSON with
//! `--output json`, and the connection flags every client subcommand shares.

use anyhow::{bail, Result};
use serde_json::{Map, Value};

/// `--output`: how results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub(crate) enum Format {
    #[default]
    Table,
    Json,
}

/// Flags shared by every subcommand that talks to a broker.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnArgs {
    /// Broker(s) to bootstrap from, comma-separated.
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub(crate) bootstrap: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub(crate) output: Format,
    /// A Kafka client setting, e.g. -X request.timeout.ms=5000 (repeatable).
    #[arg(
        short = 'X',
        long = "property",
        value_name = "KEY=VALUE",
        global = true
    )]
    pub(crate) properties: Vec<String>,
    /// A client properties file, as Kafka's tools take it (`security.protocol`, `ssl.*`,
    /// `sasl.*`, ...); -X settings apply after it.
    #[arg(long = "command-config", value_name = "FILE", global = true)]
    pub(crate) command_config: Option<std::path::PathBuf>,
}

impl ConnArgs {
    pub(crate) fn client_config(&self) -> Result<strom_client::ClientConfig> {
        let mut c = strom_client::ClientConfig::new(&self.bootstrap);
        c.client_id = "strom-cli".into();
        c.api_timeout = std::time::Duration::from_secs(15);
        for (k, v) in self.pairs()? {
            if !c.set(&k, &v)? {
                bail!("unknown client setting '{k}'");
            }
        }
        Ok(c)
    }

    /// The settings of `--command-config`, then of each -X.
    pub(crate) fn pairs(&self) -> Result<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        if let Some(path) = &self.command_config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let (k, v) = line
                    .split_once('=')
                    .or_else(|| line.split_once(':'))
                    .ok_or_else(|| {
                        anyhow::anyhow!("{}: expected key=value, got '{line}'", path.display())
                    })?;
                pairs.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        for p in &self.properties {
            pairs.push(split_kv(p)?);
        }
        Ok(pairs)
    }
}

pub(crate) fn split_kv(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => bail!("expected KEY=VALUE, got '{s}'"),
    }
}

/// Rows with named columns, printed as a table or as a JSON array of objects.
#[derive(Debug, Default)]
pub(crate) struct Table {
    columns: Vec<&'static str>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    pub(crate) fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<Value>) {
        assert_eq!(
            cells.len(),
            self.columns.len(),
            "a row has one cell per column"
        );
        self.rows.push(cells);
    }

    pub(crate) fn print(&self, format: Format) {
        match format {
            Format::Json => {
                let items: Vec<Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        let obj: Map<String, Value> = self
                            .columns
                            .iter()
                            .map(|c| json_key(c))
                            .zip(r.iter().cloned())
                            .collect();
                        Value::Object(obj)
                    })
                    .collect();
                println!("{}", Value::Array(items));
            }
            Format::Table => print!("{}", self.render()),
        }
    }

    fn render(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(cell_text).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].len())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, items: Vec<&str>| {
            let last = items.len().saturating_sub(1);
            for (i, s) in items.iter().enumerate() {
                if i == last {
                    out.push_str(s);
                } else {
                    out.push_str(&format!("{s:<w$}  ", w = widths[i]));
                }
            }
            out.push('\n');
        };
        line(&mut out, self.columns.clone());
        for r in &cells {
            line(&mut out, r.iter().map(String::as_str).collect());
        }
        out
    }
}

/// `LOG-END-OFFSET` -> `log_end_offset` for JSON keys.
fn json_key(column: &str) -> String {
    column.to_ascii_lowercase().replace(['-', ' '], "_")
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Runs a client subcommand on a fresh runtime.
pub(crate) fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_and_json_uses_snake_keys() {
        let mut t = Table::new(&["TOPIC", "LOG-END-OFFSET"]);
        t.row(vec![json!("a-long-name"), json!(5)]);
        t.row(vec![json!("b"), Value::Null]);
        assert_eq!(
            t.render(),
            "TOPIC        LOG-END-OFFSET\na-long-name  5\nb            -\n"
        );
        assert_eq!(json_key("LOG-END-OFFSET"), "log_end_offset");
    }
}
