//! The `strom` command: `strom server` runs a broker (broker and controller in one process,
//! like Kafka's KRaft combined mode). Thin by design: it parses arguments and calls the crates.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

mod server;

/// Keeps a malformed request's huge declared array from aborting the process (see strom-alloc).
#[global_allocator]
static ALLOCATOR: strom_alloc::Guard = strom_alloc::Guard;

#[derive(Debug, Parser)]
#[command(
    name = "strom",
    version,
    about = "Strom: a Kafka-compatible event-streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a single-node broker (data in ./strom-data, clients on 127.0.0.1:9092 by default).
    Server(ServerArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// A Kafka-style server.properties file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one setting, with Kafka's name: --set log.retention.hours=24 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    overrides: Vec<(String, String)>,
}

fn parse_key_value(s: &str) -> Result<(String, String)> {
    let Some((key, value)) = s.split_once('=') else {
        bail!("expected KEY=VALUE, got '{s}'");
    };
    let key = key.trim();
    if key.is_empty() {
        bail!("empty key in '{s}'");
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
