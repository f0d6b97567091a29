//! The `strom` command: `strom server` runs a broker (broker and controller in one process,
//! like Kafka's KRaft combined mode); `topic`, `produce`, `consume`, `group`, `config` and
//! `perf` are clients on strom-client. Thin by design: it parses arguments and calls the crates.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

mod acl_cmd;
mod cluster;
mod config_cmd;
mod connect;
mod consume;
mod group;
mod http;
mod output;
mod perf;
mod produce;
mod rebalance;
mod registry;
mod schema;
mod server;
mod sql;
mod storage;
mod topic;

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
    /// Run a local multi-node cluster for development: `strom cluster start -n 3`; add and
    /// remove controllers of a dynamic quorum; describe the quorum.
    Cluster(cluster::ClusterArgs),
    /// Format log directories for a dynamic controller quorum (as kafka-storage.sh).
    Storage(storage::StorageArgs),
    /// Create, list, describe, delete and alter topics.
    Topic(topic::TopicArgs),
    /// Write lines from stdin or a file as records.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// List, describe (lag), delete consumer groups and reset their offsets.
    Group(group::GroupArgs),
    /// Show and change topic or broker configs.
    Config(config_cmd::ConfigArgs),
    /// Producer and consumer benchmarks (like kafka-*-perf-test).
    Perf(perf::PerfArgs),
    /// Run a Confluent-compatible Schema Registry against a cluster.
    Registry(registry::RegistryArgs),
    /// Register, show, list, delete and check schemas in a Schema Registry.
    Schema(schema::SchemaArgs),
    /// Run a Kafka Connect worker (standalone or distributed) and manage connectors over its REST API.
    Connect(connect::ConnectArgs),
    /// Add, remove and list ACLs (as kafka-acls.sh).
    Acl(acl_cmd::AclArgs),
    /// Set, delete and list SCRAM users (as kafka-configs.sh --entity-type users).
    User(acl_cmd::UserArgs),
    /// Strom SQL (ksqlDB's language and REST API): `strom sql server --config FILE`, or a
    /// shell against a server: `strom sql [URL]`.
    Sql(sql::SqlArgs),
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
        Command::Cluster(args) => cluster::run(args),
        Command::Storage(args) => storage::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Config(args) => config_cmd::run(args),
        Command::Perf(args) => perf::run(args),
        Command::Registry(args) => registry::run(args),
        Command::Connect(args) => connect::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Acl(args) => acl_cmd::run_acl(args),
        Command::User(args) => acl_cmd::run_user(args),
        Command::Sql(args) => sql::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
