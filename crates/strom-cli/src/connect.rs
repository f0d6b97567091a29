//! `strom connect`: runs a Connect worker (`standalone` and `distributed`, as
//! `connect-standalone.sh` and `connect-distributed.sh` take their files), and talks to a
//! running worker's REST API (`list`, `status`, `create`, `pause`, `resume`, `delete`), with
//! tables or `--output json`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use strom_registry::http_client::{request, Method};
use tracing_subscriber::EnvFilter;

use crate::output::{block_on, Format, Table};

#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    #[command(subcommand)]
    command: ConnectCmd,
}

#[derive(Debug, clap::Subcommand)]
enum ConnectCmd {
    /// Run a standalone worker: Kafka Connect's worker properties (bootstrap.servers,
    /// key.converter, value.converter, offset.storage.file.filename, listeners, ...) and one
    /// properties file per connector, as connect-standalone.sh takes them.
    Standalone {
        worker: PathBuf,
        #[arg(required = true)]
        connectors: Vec<PathBuf>,
    },
    /// Run a distributed worker: Kafka Connect's worker properties (bootstrap.servers,
    /// group.id, config/offset/status.storage.topic, listeners, ...), as
    /// connect-distributed.sh takes them; workers of one group.id share the connectors.
    Distributed { worker: PathBuf },
    /// Connectors of a worker with their state and tasks.
    List(RestArgs),
    /// One connector's state and its tasks'.
    Status {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Create a connector from a properties file (name=..., connector.class=..., ...) or a
    /// JSON file ({"name": ..., "config": {...}}).
    Create {
        file: PathBuf,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Pause a connector and its tasks.
    Pause {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Resume a paused or stopped connector.
    Resume {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Delete a connector.
    Delete {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
}

#[derive(Debug, clap::Args)]
struct RestArgs {
    /// The worker's REST API (its `listeners`).
    #[arg(long, default_value = "http://127.0.0.1:8083")]
    url: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

pub(crate) fn run(args: ConnectArgs) -> Result<()> {
    match args.command {
        ConnectCmd::Standalone { worker, connectors } => standalone(worker, connectors),
        ConnectCmd::Distributed { worker } => distributed(worker),
        ConnectCmd::List(rest) => block_on(async move {
            let body = call(&rest.url, Method::GET, "/connectors?expand=status", None).await?;
            let mut table = Table::new(&["NAME", "TYPE", "STATE", "TASKS", "WORKER"]);
            if let Some(map) = body.as_object() {
                for (name, c) in map {
                    let s = &c["status"];
                    table.row(vec![
                        json!(name),
                        s["type"].clone(),
                        s["connector"]["state"].clone(),
                        json!(task_states(&s["tasks"])),
                        s["connector"]["worker_id"].clone(),
                    ]);
                }
            }
            table.print(rest.output);
            Ok(())
        }),
        ConnectCmd::Status { name, rest } => block_on(async move {
            let s = call(
                &rest.url,
                Method::GET,
                &format!("/connectors/{name}/status"),
                None,
            )
            .await?;
            let mut table = Table::new(&["NAME", "TASK", "STATE", "WORKER", "TRACE"]);
            table.row(vec![
                s["name"].clone(),
                json!("-"),
                s["connector"]["state"].clone(),
                s["connector"]["worker_id"].clone(),
                s["connector"]["trace"].clone(),
            ]);
            for t in s["tasks"].as_array().into_iter().flatten() {
                table.row(vec![
                    s["name"].clone(),
                    t["id"].clone(),
                    t["state"].clone(),
                    t["worker_id"].clone(),
                    t["trace"].clone(),
                ]);
            }
            table.print(rest.output);
            Ok(())
        }),
        ConnectCmd::Create { file, rest } => block_on(async move {
            let body = connector_request(&file)?;
            let created = call(&rest.url, Method::POST, "/connectors", Some(body)).await?;
            let mut table = Table::new(&["NAME", "TYPE", "TASKS"]);
            table.row(vec![
                created["name"].clone(),
                created["type"].clone(),
                json!(created["tasks"].as_array().map_or(0, Vec::len)),
            ]);
            table.print(rest.output);
            Ok(())
        }),
        ConnectCmd::Pause { name, rest } => action(rest, Method::PUT, name, "pause"),
        ConnectCmd::Resume { name, rest } => action(rest, Method::PUT, name, "resume"),
        ConnectCmd::Delete { name, rest } => action(rest, Method::DELETE, name, ""),
    }
}

fn standalone(worker: PathBuf, connectors: Vec<PathBuf>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STROM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom-connect")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        strom_connect::standalone::run(&worker, &connectors, crate::server::shutdown_signal())
            .await
            .context("connect worker failed")
    })
}

fn distributed(worker: PathBuf) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STROM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom-connect")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        strom_connect::distributed::run(&worker, crate::server::shutdown_signal())
            .await
            .context("connect worker failed")
    })
}

/// `PUT /connectors/{name}/{verb}` (or DELETE of the connector), printing what was done.
fn action(rest: RestArgs, method: Method, name: String, verb: &'static str) -> Result<()> {
    block_on(async move {
        let path = if verb.is_empty() {
            format!("/connectors/{name}")
        } else {
            format!("/connectors/{name}/{verb}")
        };
        call(&rest.url, method, &path, None).await?;
        let mut table = Table::new(&["NAME", "DONE"]);
        table.row(vec![
            json!(name),
            json!(if verb.is_empty() { "deleted" } else { verb }),
        ]);
        table.print(rest.output);
        Ok(())
    })
}

fn task_states(tasks: &Value) -> String {
    tasks
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t["id"], t["state"].as_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The POST /connectors body of a properties or JSON file.
fn connector_request(file: &PathBuf) -> Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", file.display()))?;
        if v["name"].is_string() && v["config"].is_object() {
            return Ok(v);
        }
        bail!(
            "{}: expected {{\"name\": ..., \"config\": {{...}}}}",
            file.display()
        );
    }
    let props = strom_connect::config::read_properties(file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let config: serde_json::Map<String, Value> =
        props.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{}: no name=... property", file.display()))?;
    Ok(json!({ "name": name, "config": config }))
}

/// One REST call; an error status is an error with Kafka Connect's message.
async fn call(url: &str, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
    let body = body.map(|b| bytes::Bytes::from(b.to_string()));
    let (status, bytes) = request(url, method, path, body)
        .await
        .map_err(|e| anyhow::anyhow!("{e} (is a Connect worker at {url}? --url URL)"))?;
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    if !status.is_success() {
        let message = value["message"].as_str().unwrap_or("request failed");
        bail!("{message} (HTTP {status})");
    }
    Ok(value)
}
