//! `strom sql`: the Strom SQL server (`strom sql server --config FILE`, ksqlDB's settings)
//! and an interactive shell against one (`strom sql [URL]`, as `ksql URL`): statements end
//! with `;` and may span lines, results print as tables, push queries stream their rows
//! until their LIMIT or Ctrl-C, and the history is kept in `~/.strom_sql_history`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use strom_sql::shell::{split_statements, Input, LineReader};
use tracing_subscriber::EnvFilter;

#[derive(Debug, clap::Args)]
pub(crate) struct SqlArgs {
    #[command(subcommand)]
    command: Option<SqlCommand>,
    /// The server the shell talks to.
    #[arg(default_value = "http://localhost:8088")]
    url: String,
    /// Run these statements and exit instead of reading them interactively.
    #[arg(long, short = 'e')]
    execute: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum SqlCommand {
    /// Run the SQL server with a ksqlDB-style properties file (listeners,
    /// bootstrap.servers, ksql.service.id, ksql.streams.*).
    Server {
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
}

pub(crate) fn run(args: SqlArgs) -> Result<()> {
    match args.command {
        Some(SqlCommand::Server { config }) => serve(config),
        None => shell(&args.url, args.execute.as_deref()),
    }
}

fn serve(config: PathBuf) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STROM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = strom_sql::server::ServerConfig::from_file(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom-sql")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        strom_sql::server::run(cfg, crate::server::shutdown_signal())
            .await
            .context("SQL server failed")
    })
}

/// host:port of an http:// URL.
fn authority(url: &str) -> Result<String> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("only http:// servers are supported, got '{url}'");
    };
    let a = rest.split('/').next().unwrap_or(rest);
    Ok(if a.contains(':') {
        a.to_owned()
    } else {
        format!("{a}:80")
    })
}

/// Sends a POST and calls `on_line` with each line of the (chunked) body as it arrives;
/// returns the status.
fn post(addr: &str, path: &str, body: &Value, on_line: impl FnMut(&str) -> bool) -> Result<u16> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    // Ctrl-C closes this connection (the server then ends the query) rather than the shell.
    *OPEN_REQUEST.lock().unwrap_or_else(|p| p.into_inner()) = s.try_clone().ok();
    let code = read_response(&mut s, addr, path, body, on_line);
    OPEN_REQUEST
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match code {
        Err(_) if INTERRUPTED.swap(false, Ordering::SeqCst) => {
            println!("Query terminated");
            Ok(200)
        }
        other => other,
    }
}

/// The connection of the request in flight, which Ctrl-C shuts.
static OPEN_REQUEST: Mutex<Option<TcpStream>> = Mutex::new(None);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C while a request (a push query) runs ends that request; otherwise it quits, as
/// before. (At the prompt, the line editor reads Ctrl-C itself: it clears the line.)
fn handle_ctrl_c() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                let open = OPEN_REQUEST
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                match open {
                    Some(s) => {
                        INTERRUPTED.store(true, Ordering::SeqCst);
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                    None => std::process::exit(130),
                }
            }
        });
    });
}

fn read_response(
    s: &mut TcpStream,
    addr: &str,
    path: &str,
    body: &Value,
    mut on_line: impl FnMut(&str) -> bool,
) -> Result<u16> {
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/vnd.ksql.v1+json\r\nAccept: application/vnd.ksqlapi.delimited.v1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status)?;
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if h.to_lowercase().starts_with("transfer-encoding:")
            && h.to_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let mut pending = String::new();
    let mut feed = |data: &str, pending: &mut String| -> bool {
        pending.push_str(data);
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            if !on_line(line.trim_end()) {
                return false;
            }
        }
        true
    };
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size)? == 0 {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    bail!("interrupted");
                }
                break;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut buf = vec![0; n + 2];
            r.read_exact(&mut buf)?;
            if !feed(&String::from_utf8_lossy(&buf[..n]), &mut pending) {
                return Ok(code);
            }
        }
    } else {
        let mut rest = String::new();
        r.read_to_string(&mut rest)?;
        feed(&rest, &mut pending);
    }
    if !pending.trim().is_empty() {
        on_line(pending.trim_end());
    }
    Ok(code)
}

fn render_table(columns: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let sep: String = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: &[String]| {
        let parts: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| format!(" {:<w$} ", cells.get(i).map(String::as_str).unwrap_or("")))
            .collect();
        format!("|{}|\n", parts.join("|"))
    };
    let mut out = sep.clone();
    out.push_str(&line(columns));
    out.push_str(&sep);
    for r in rows {
        out.push_str(&line(r));
    }
    out.push_str(&sep);
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints one /ksql entity as ksqlDB's CLI does, as a table where it is a list.
fn print_entity(e: &Value) {
    let list = |key: &str, cols: &[&str]| {
        let rows: Vec<Vec<String>> = e[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| cols.iter().map(|c| cell(&x[*c])).collect())
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
        print!("{}", render_table(&names, &rows));
    };
    match e["@type"].as_str().unwrap_or("") {
        "streams" => list(
            "streams",
            &["name", "topic", "keyFormat", "valueFormat", "isWindowed"],
        ),
        "tables" => list(
            "tables",
            &["name", "topic", "keyFormat", "valueFormat", "isWindowed"],
        ),
        "kafka_topics" => list("topics", &["name"]),
        "queries" => list(
            "queries",
            &["id", "queryType", "state", "sinks", "queryString"],
        ),
        "properties" => list("properties", &["name", "scope", "value"]),
        "sourceDescription" => {
            let d = &e["sourceDescription"];
            println!("Name                 : {}", cell(&d["name"]));
            println!("Type                 : {}", cell(&d["type"]));
            println!(
                "Kafka topic          : {} (partitions: {})",
                cell(&d["topic"]),
                cell(&d["partitions"])
            );
            println!("Key format           : {}", cell(&d["keyFormat"]));
            println!("Value format         : {}", cell(&d["valueFormat"]));
            let rows: Vec<Vec<String>> = d["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| {
                            let key = if f["type"] == "KEY" { " (key)" } else { "" };
                            vec![
                                cell(&f["name"]),
                                format!("{}{key}", cell(&f["schema"]["type"])),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print!("{}", render_table(&["Field".into(), "Type".into()], &rows));
        }
        "queryDescription" => {
            let d = &e["queryDescription"];
            println!("ID        : {}", cell(&d["id"]));
            println!("SQL       : {}", cell(&d["statementText"]));
            println!("State     : {}", cell(&d["state"]));
            println!("Execution plan\n{}", cell(&d["executionPlan"]));
        }
        _ => {
            let msg = &e["commandStatus"]["message"];
            if !msg.is_null() {
                println!(" {}", cell(msg));
            } else {
                println!("{e}");
            }
        }
    }
}

/// Runs one statement against the server and prints its result.
fn run_statement(addr: &str, stmt: &str, props: &serde_json::Map<String, Value>) -> Result<()> {
    let upper = stmt.trim_start().to_uppercase();
    if upper.starts_with("SELECT") {
        let mut columns: Vec<String> = Vec::new();
        let mut rows: Vec<Vec<String>> = Vec::new();
        let push = upper.contains("EMIT CHANGES");
        let mut error = None;
        let code = post(
            addr,
            "/query-stream",
            &json!({"sql": stmt, "properties": props}),
            |line| {
                if line.is_empty() {
                    return true;
                }
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    return true;
                };
                if v.get("columnNames").is_some() {
                    columns = v["columnNames"]
                        .as_array()
                        .map(|a| a.iter().map(cell).collect())
                        .unwrap_or_default();
                    if push {
                        print!(
                            "{}",
                            render_table(&columns, &[])
                                .lines()
                                .take(3)
                                .map(|l| format!("{l}\n"))
                                .collect::<String>()
                        );
                    }
                } else if let Some(a) = v.as_array() {
                    let r: Vec<String> = a.iter().map(cell).collect();
                    if push {
                        // Live rows: print each as it arrives.
                        let t = render_table(&columns, &[r]);
                        if let Some(l) = t.lines().nth(3) {
                            println!("{l}");
                        }
                        let _ = std::io::stdout().flush();
                    } else {
                        rows.push(r);
                    }
                } else if v.get("message").is_some() {
                    error = Some(cell(&v["message"]));
                }
                true
            },
        )?;
        if code != 200 {
            bail!("{}", error.unwrap_or_else(|| format!("HTTP {code}")));
        }
        if !push {
            print!("{}", render_table(&columns, &rows));
        }
        return Ok(());
    }
    if upper.starts_with("PRINT") {
        post(
            addr,
            "/query",
            &json!({"ksql": stmt, "streamsProperties": props}),
            |line| {
                println!("{line}");
                true
            },
        )?;
        return Ok(());
    }
    let mut body = String::new();
    let code = post(
        addr,
        "/ksql",
        &json!({"ksql": stmt, "streamsProperties": props}),
        |l| {
            body.push_str(l);
            body.push('\n');
            true
        },
    )?;
    let v: Value = serde_json::from_str(&body).with_context(|| format!("bad response: {body}"))?;
    if code != 200 {
        bail!("{}", cell(&v["message"]));
    }
    for e in v.as_array().into_iter().flatten() {
        print_entity(e);
    }
    Ok(())
}

fn shell(url: &str, execute: Option<&str>) -> Result<()> {
    let addr = authority(url)?;
    let mut props = serde_json::Map::new();
    let run = |stmt: &str, props: &mut serde_json::Map<String, Value>| {
        // SET / UNSET are the shell's own: they go with each later request.
        let upper = stmt.to_uppercase();
        if upper.starts_with("SET ") || upper.starts_with("UNSET ") {
            let parts: Vec<&str> = stmt.split('\'').collect();
            if upper.starts_with("SET ") && parts.len() >= 4 {
                props.insert(parts[1].to_owned(), Value::String(parts[3].to_owned()));
                println!(
                    "Successfully changed local property '{}' to '{}'.",
                    parts[1], parts[3]
                );
            } else if parts.len() >= 2 {
                props.remove(parts[1]);
                println!("Successfully unset local property '{}'.", parts[1]);
            }
            return;
        }
        if let Err(e) = run_statement(&addr, stmt, props) {
            println!("{e:#}");
        }
    };
    if let Some(text) = execute {
        let (stmts, rest) = split_statements(text);
        for s in stmts
            .iter()
            .map(String::as_str)
            .chain([rest.trim()].into_iter().filter(|r| !r.is_empty()))
        {
            run(s, &mut props);
        }
        return Ok(());
    }
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".strom_sql_history"));
    println!("Strom SQL shell, server {url}. End statements with ';'. 'exit' quits, 'history' lists past statements.");
    handle_ctrl_c();
    // Line editing and history on a terminal (rustyline), plain lines when piped.
    let mut input = LineReader::stdin(history);
    loop {
        match input.read()? {
            Input::Exit => break,
            Input::History(lines) => {
                for (i, l) in lines.iter().enumerate() {
                    println!("{:>4}  {l}", i + 1);
                }
            }
            Input::Statements(stmts) => {
                for s in stmts {
                    run(&s, &mut props);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_with_borders() {
        let t = render_table(
            &["A".into(), "LONGER".into()],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(
            t,
            "+-----+--------+\n| A   | LONGER |\n+-----+--------+\n| xyz | 1      |\n+-----+--------+\n"
        );
        assert_eq!(authority("http://h:8088/").unwrap(), "h:8088");
        assert!(authority("https://h").is_err());
    }
}
